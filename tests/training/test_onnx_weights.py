"""The shipped ONNX model converted back to torch computes what onnxruntime computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.models.nodule_net import NoduleNet
from training.models.onnx_weights import _bn_name, _module_name, frozen_batchnorm, parity, state_dict_from_onnx

ONNX = Path(__file__).resolve().parents[2] / "resources" / "models" / "nodeview-nodule.onnx"


def test_names() -> None:
    assert _module_name("/model/backbone/layer1/layer1.0/downsample/downsample.0/Conv_output_0") == (
        "backbone.layer1.0.downsample.0"
    )
    assert _module_name("/model/backbone/conv1/Conv_output_0") == "backbone.conv1"
    assert _bn_name("backbone.layer1.0.downsample.0") == "backbone.layer1.0.downsample.1"
    assert _bn_name("backbone.layer3.2.conv2") == "backbone.layer3.2.bn2"
    assert _bn_name("backbone.conv1") == "backbone.bn1"


def test_converted_model_matches_onnxruntime() -> None:
    model = NoduleNet()
    model.load_state_dict(state_dict_from_onnx(ONNX))
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(-0.6, 0.4, (4, 3, 64, 64)), -1, 1).astype(np.float32)
    diff = parity(model, ONNX, x)
    assert max(diff.values()) < 1e-3, diff
    # frozen BatchNorm: a training step leaves the running statistics alone
    model.train()
    frozen_batchnorm(model)
    before = model.backbone.bn1.running_mean.clone()
    model(torch.from_numpy(x))
    assert torch.equal(before, model.backbone.bn1.running_mean)


def test_shipped_reranker_converted_back_matches_onnxruntime() -> None:
    import onnxruntime as ort

    from training.engine.train_reranker import CubeNet, TwoScaleNet
    from training.models.onnx_weights import reranker_state_from_onnx

    path = ONNX.with_name("nodeview-reranker.onnx")
    net = TwoScaleNet(8, light=True)
    net.load_state_dict(reranker_state_from_onnx(path, net))
    x = np.random.default_rng(1).uniform(-1, 1, (6, 2, 16, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"cubes": x})[0]
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # another architecture is refused, not silently half-loaded
    import pytest

    with pytest.raises(ValueError, match="convolutions"):
        reranker_state_from_onnx(path, CubeNet(8))
