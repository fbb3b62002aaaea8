"""Export a trained NoduleNet to ONNX with the metadata the app needs, and check it.

    python -m training.export.onnx --checkpoint runs/default/checkpoint.pt --out resources/models/nodeview-nodule.onnx

The graph takes ``patches`` (N, 3, S, S) float32 and returns ``nodule_prob``, ``malignancy_prob``
(sigmoid probabilities) and ``diameter_mm``. ``metadata_props`` carry: name, version, input spec,
patch size/spacing/HU window (``nodeview.core.detect.patches.PatchSpec``), output meanings, operating
threshold, training-data summary, headline metrics, and the sha256 of the weights.

Storage: ``--storage fp16`` keeps each weight as float16 followed by a Cast to float32, halving
the file (ResNet-50: ~94 MB -> ~47 MB) while onnxruntime still computes in float32 (the casts of
constants are folded when the session loads). The parity check compares against torch at
rtol 1e-3 / atol 1e-5 for fp32 storage and reports the fp16-storage deviation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from nodeview.core.detect.patches import DEFAULT_SPEC, PatchSpec
from training.models.nodule_net import ExportWrapper, NoduleNet, build_model

MODEL_NAME = "nodeview-nodule-resnet50"
OUTPUTS = {
    "nodule_prob": "probability that the candidate is a lung nodule >= 3 mm (sigmoid of the nodule head)",
    "malignancy_prob": "probability that the nodule is malignant under the training label rule (see model card)",
    "diameter_mm": "estimated nodule diameter in millimetres",
}


def weights_sha256(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export(
    model: NoduleNet,
    out: str | Path,
    spec: PatchSpec = DEFAULT_SPEC,
    metadata: dict[str, Any] | None = None,
    storage: str = "fp32",
    opset: int = 17,
) -> Path:
    """Write the ONNX file atomically; returns its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    wrapper = ExportWrapper(model).eval()
    dummy = torch.zeros(2, 3, spec.size, spec.size)
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(tmp),
        input_names=["patches"],
        output_names=list(OUTPUTS),
        dynamic_axes={"patches": {0: "batch"}, **{k: {0: "batch"} for k in OUTPUTS}},
        opset_version=opset,
        dynamo=False,
    )
    proto = onnx.load(str(tmp))
    if storage == "fp16":
        proto = _fp16_storage(proto)
    meta = {
        "name": MODEL_NAME,
        "version": "1",
        "framework": f"torch {torch.__version__}",
        "architecture": "torchvision resnet50 backbone + 3 linear heads",
        "input": json.dumps({"name": "patches", "shape": ["N", 3, spec.size, spec.size], "dtype": "float32"}),
        "outputs": json.dumps(OUTPUTS),
        "weights_sha256": weights_sha256(model),
        "weights_storage": storage,
        "research_use_only": "Research use only. Not a medical device. Not a diagnosis.",
        **spec.to_metadata(),
        **{k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()},
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    return out


def _fp16_storage(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Store float32 initializers as float16, each followed by a Cast back to float32."""
    graph = proto.graph
    new_inits, casts = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) == 0:
            new_inits.append(init)
            continue
        arr = numpy_helper.to_array(init).astype(np.float16)
        half = numpy_helper.from_array(arr, name=init.name + "_fp16")
        new_inits.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast"))
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return proto


def parity(model: NoduleNet, onnx_path: str | Path, n: int = 8, seed: int = 0) -> dict[str, float]:
    """Max abs / rel difference between torch and onnxruntime (CPU) on random patches."""
    import onnxruntime as ort

    torch.manual_seed(seed)
    spec = read_spec(onnx_path)
    x = torch.rand(n, 3, spec.size, spec.size) * 2 - 1
    with torch.no_grad():
        ref = [t.numpy() for t in ExportWrapper(model.eval()).eval()(x)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"patches": x.numpy()})
    out: dict[str, float] = {}
    for name, a, b in zip(OUTPUTS, ref, got, strict=True):
        out[f"{name}_max_abs"] = float(np.max(np.abs(a - b)))
        out[f"{name}_max_rel"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-6)))
        out[f"{name}_allclose"] = float(np.allclose(b, a, rtol=1e-3, atol=1e-5))
    return out


def cpu_speed(onnx_path: str | Path, batch: int = 64, threads: int = 2, repeats: int = 3) -> dict[str, float]:
    """Milliseconds per patch with onnxruntime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    spec = read_spec(onnx_path)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, spec.size, spec.size)).astype(np.float32)
    session.run(None, {"patches": x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, {"patches": x})
        times.append(time.perf_counter() - t)
    return {"ms_per_patch": 1000 * float(np.median(times)) / batch, "batch": batch, "threads": threads}


def read_metadata(onnx_path: str | Path) -> dict[str, str]:
    proto = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def read_spec(onnx_path: str | Path) -> PatchSpec:
    return PatchSpec.from_metadata(read_metadata(onnx_path))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Export a NodeView checkpoint to ONNX (research use only)")
    p.add_argument("--checkpoint", required=True, help="training checkpoint (.pt) or state dict")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--storage", choices=["fp32", "fp16"], default="fp16")
    p.add_argument("--metadata-json", help="JSON file of extra metadata (threshold, data summary, metrics)")
    return p


def main(args: argparse.Namespace) -> dict[str, Any]:
    model = build_model(args.checkpoint)
    extra = json.loads(Path(args.metadata_json).read_text()) if args.metadata_json else {}
    out = export(model, args.out, metadata=extra, storage=args.storage)
    report = {"path": str(out), "bytes": out.stat().st_size, "parity": parity(model, out), "speed": cpu_speed(out)}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
