"""The ResNet-50 nodule model: weight options, freezing, ONNX export with metadata and parity."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnx")

from training.export import onnx as export_onnx  # noqa: E402
from training.models.nodule_net import NoduleNet, WeightsUnavailable, build_model  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("none").eval()


def test_forward_shapes(model):
    with torch.no_grad():
        nodule, malignancy, log_d = model(torch.zeros(4, 3, 64, 64))
    assert nodule.shape == malignancy.shape == log_d.shape == (4,)


def test_imagenet_weights_load_or_fail_fast_and_clearly():
    t = time.perf_counter()
    try:
        net = build_model("imagenet")
    except WeightsUnavailable as exc:
        assert "--weights none" in str(exc)
    else:  # a machine with the weights cached or downloadable
        assert isinstance(net, NoduleNet)
    assert time.perf_counter() - t < 30


def test_weights_from_local_files(tmp_path, model):
    x = torch.rand(2, 3, 64, 64)
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    again = build_model(str(tmp_path / "ckpt.pt")).eval()
    with torch.no_grad():
        for a, b in zip(model(x), again(x), strict=True):
            torch.testing.assert_close(a, b)
    from torchvision.models import resnet50

    plain = resnet50(weights=None)
    torch.save(plain.state_dict(), tmp_path / "resnet50.pth")
    loaded = build_model(str(tmp_path / "resnet50.pth"))
    torch.testing.assert_close(loaded.backbone.conv1.weight, plain.conv1.weight)
    with pytest.raises(FileNotFoundError):
        build_model(str(tmp_path / "missing.pt"))


def test_freeze_stages(model):
    net = NoduleNet()
    net.freeze_up_to("layer2")
    assert not any(p.requires_grad for p in net.backbone.layer2.parameters())
    assert all(p.requires_grad for p in net.backbone.layer3.parameters())
    assert all(p.requires_grad for p in net.nodule_head.parameters())
    net.freeze_up_to(None)
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("storage", ["fp32", "fp16"])
def test_onnx_export_parity_metadata_and_size(tmp_path, model, storage):
    path = export_onnx.export(model, tmp_path / f"m_{storage}.onnx", storage=storage,
                              metadata={"operating_threshold": 0.42, "training_data": "unit test"})
    meta = export_onnx.read_metadata(path)
    for key in ("name", "version", "input", "outputs", "patch_size", "patch_spacing_mm", "hu_window",
                "weights_sha256", "research_use_only", "operating_threshold", "training_data"):
        assert key in meta, key
    assert meta["weights_sha256"] == export_onnx.weights_sha256(model)
    result = export_onnx.parity(model, path)
    if storage == "fp32":
        assert all(result[f"{k}_allclose"] == 1.0 for k in export_onnx.OUTPUTS), result
        assert path.stat().st_size > 80e6
    else:  # float16 weights: probabilities stay within 1e-3, file is half the size
        assert result["nodule_prob_max_abs"] < 1e-3 and result["malignancy_prob_max_abs"] < 1e-3, result
        assert path.stat().st_size < 50e6
    speed = export_onnx.cpu_speed(path, batch=8, repeats=1)
    assert speed["ms_per_patch"] > 0
    assert np.isfinite(speed["ms_per_patch"])
