"""The shipped ONNX ResNet-50 back to a torch state dict of :class:`training.models.nodule_net.NoduleNet`.

The shipped model's torch checkpoint is not in this checkout; its ONNX file is. The exporter
(``torch.onnx.export(dynamo=False)`` in eval mode) folded every BatchNorm into the preceding
convolution (conv weight scaled by ``gamma / sqrt(var + eps)``, a bias added) and stored the
weights as float16 (``export_onnx._fp16_storage``). So the conversion gives each convolution the
folded weight and its BatchNorm the identity statistics (``running_mean = 0``,
``running_var = 1 - eps``, ``weight = 1``) with the folded bias as ``bias``: in eval mode the torch
model computes exactly what the ONNX graph computes (parity checked against onnxruntime by
:func:`parity`). Fine-tune it with the BatchNorms frozen (``train --frozen-bn``): batch statistics
would renormalise the folded layers.

    python -m training.models.onnx_weights --onnx resources/models/nodeview-nodule.onnx \
        --out runs/shipped/model_state.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.models.nodule_net import NoduleNet


def _module_name(conv_output: str) -> str:
    """'/model/backbone/layer1/layer1.0/downsample/downsample.0/Conv_output_0' -> 'backbone.layer1.0.downsample.0'."""
    segs = conv_output.strip("/").split("/")[:-1]
    if segs and segs[0] == "model":
        segs = segs[1:]
    parts: list[str] = []
    for seg in segs:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def _bn_name(conv: str) -> str:
    if conv.endswith("downsample.0"):
        return conv[:-1] + "1"
    head, _, last = conv.rpartition(".")
    return f"{head}.{last.replace('conv', 'bn')}" if head else last.replace("conv", "bn")


def onnx_initializers(path: str | Path) -> tuple[Any, dict[str, np.ndarray]]:
    """(graph, name -> float32 array), the fp16-stored initializers under their cast names."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    g = proto.graph
    raw = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    values = dict(raw)
    for node in g.node:
        if node.op_type == "Cast" and node.input[0] in raw:
            values[node.output[0]] = raw[node.input[0]].astype(np.float32)
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
    return g, values


def state_dict_from_onnx(path: str | Path) -> dict[str, torch.Tensor]:
    graph, values = onnx_initializers(path)
    model = NoduleNet()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    done: set[str] = set()
    for node in graph.node:
        if node.op_type == "Conv":
            conv = _module_name(node.output[0])
            bn = _bn_name(conv)
            w = values[node.input[1]]
            b = values[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            for key, arr in ((f"{conv}.weight", w),):
                if tuple(state[key].shape) != arr.shape:
                    raise ValueError(f"{key}: shape {arr.shape} != {tuple(state[key].shape)}")
                state[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
            eps = 1e-5
            state[f"{bn}.weight"] = torch.ones(w.shape[0])
            state[f"{bn}.bias"] = torch.from_numpy(np.asarray(b, dtype=np.float32))
            state[f"{bn}.running_mean"] = torch.zeros(w.shape[0])
            state[f"{bn}.running_var"] = torch.full((w.shape[0],), 1.0 - eps)
            done.update({f"{conv}.weight", f"{bn}.weight", f"{bn}.bias", f"{bn}.running_mean", f"{bn}.running_var"})
    for head in ("nodule_head", "malignancy_head", "diameter_head"):
        for p in ("weight", "bias"):
            key = f"{head}.{p}"
            arr = values[f"model.{key}"]
            state[key] = torch.from_numpy(np.asarray(arr, dtype=np.float32).reshape(state[key].shape))
            done.add(key)
    missing = [k for k in state if k not in done and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"not found in the ONNX graph: {missing[:5]}")
    return state


def reranker_state_from_onnx(path: str | Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """An exported re-ranker (``training.engine.train_reranker.export``) back to ``net``'s state dict.

    The re-ranker's convolutions have no names in the ONNX graph (``onnx::Conv_129``), so they are
    matched in order: the graph's Conv nodes run in the order of ``net``'s ``Conv3d`` modules (the
    fine tower, then the context tower). As for the ResNet-50, every BatchNorm was folded into its
    convolution: it gets the identity statistics and the folded bias (fine-tune with the
    BatchNorms frozen). ``net`` must have the exported architecture (shapes are checked)."""
    graph, values = onnx_initializers(path)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    convs = [name for name, m in net.named_modules() if isinstance(m, nn.Conv3d)]
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    if len(nodes) != len(convs):
        raise ValueError(f"{len(nodes)} convolutions in the ONNX graph, {len(convs)} in the network")
    done: set[str] = set()
    eps = 1e-5
    for conv, node in zip(convs, nodes, strict=True):
        w = values[node.input[1]]
        b = values[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
        if tuple(state[f"{conv}.weight"].shape) != w.shape:
            raise ValueError(f"{conv}.weight: shape {w.shape} != {tuple(state[f'{conv}.weight'].shape)}")
        head, _, last = conv.rpartition(".")
        bn = f"{head}.{int(last) + 1}"  # conv_block: Conv3d, BatchNorm3d, ReLU
        state[f"{conv}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32))
        state[f"{bn}.weight"] = torch.ones(w.shape[0])
        state[f"{bn}.bias"] = torch.from_numpy(np.array(b, dtype=np.float32))
        state[f"{bn}.running_mean"] = torch.zeros(w.shape[0])
        state[f"{bn}.running_var"] = torch.full((w.shape[0],), 1.0 - eps)
        done.update({f"{conv}.weight", f"{bn}.weight", f"{bn}.bias", f"{bn}.running_mean", f"{bn}.running_var"})
    for key in ("head.weight", "head.bias"):
        state[key] = torch.from_numpy(np.array(values[key], dtype=np.float32).reshape(state[key].shape))
        done.add(key)
    missing = [k for k in state if k not in done and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"not found in the ONNX graph: {missing[:5]}")
    return state


def frozen_batchnorm(model: nn.Module) -> nn.Module:
    """Put every BatchNorm in eval mode (running statistics, no updates); call after ``model.train()``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def parity(model: NoduleNet, onnx_path: str | Path, patches: np.ndarray) -> dict[str, float]:
    """Max abs difference between the converted torch model and onnxruntime on ``patches``."""
    import onnxruntime as ort

    from training.models.nodule_net import ExportWrapper

    x = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
    with torch.no_grad():
        ref = [t.numpy() for t in ExportWrapper(model.eval()).eval()(x)]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"patches": x.numpy()})
    names = [o.name for o in sess.get_outputs()]
    return {f"{n}_max_abs": float(np.max(np.abs(a - b))) for n, a, b in zip(names, ref, got, strict=True)}


def real_patches(n: int = 16) -> np.ndarray:
    """Patches around the proposals of the bundled LIDC-IDRI-0002 (the app's own extraction)."""
    from nodeview.core.detect.candidates import propose
    from nodeview.core.detect.lung import segment_lungs
    from nodeview.core.detect.patches import extract_patches
    from nodeview.core.io.study import open_study

    root = Path(__file__).resolve().parents[2]
    vol = open_study(root / "resources" / "demo" / "LIDC-IDRI-0002")
    lung = segment_lungs(vol.hu_zyx, vol.geometry)
    cands = propose(vol.hu_zyx, vol.geometry, lung=lung, max_candidates=n)
    centres = np.asarray([c.center_xyz_mm for c in cands[:n]])
    return np.asarray(extract_patches(vol.hu_zyx, vol.geometry, centres), dtype=np.float32)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.models.onnx_weights", description=__doc__.splitlines()[0])
    p.add_argument("--onnx", default="resources/models/nodeview-nodule.onnx")
    p.add_argument("--out", required=True, help="state dict (.pt) to write")
    p.add_argument("--patches", type=int, default=16, help="real patches for the parity check")
    p.add_argument(
        "--half-out", help="also a float16 copy (.pt): the ONNX file's own precision, half the bytes to carry"
    )
    return p


def main(args: argparse.Namespace) -> dict[str, float]:
    state = state_dict_from_onnx(args.onnx)
    model = NoduleNet()
    model.load_state_dict(state)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    if args.half_out:
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        torch.save(half, args.half_out)
    result = parity(model, args.onnx, real_patches(args.patches))
    (out.parent / "parity.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    if max(result.values()) > 1e-3:
        raise SystemExit(f"converted model differs from the ONNX file: {result}")
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
