"""training/engine/train_reranker.py: a tiny real run lowers the loss, resumes, stops on NaN, and the
exported ONNX file matches torch and loads in the app's re-ranker class."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from nodeview.core.detect.reranker import CubeSpec, Reranker  # noqa: E402
from training.engine import train_reranker as tr  # noqa: E402


def toy_cubes(n: int, seed: int) -> dict[str, np.ndarray]:
    """Half spheres (nodules, label = their index), half tubes along a random axis (vessels)."""
    rng = np.random.default_rng(seed)
    o = np.arange(16) - 7.5
    z, y, x = np.meshgrid(o, o, o, indexing="ij")
    cubes = np.full((n, 1, 16, 16, 16), -0.9, dtype=np.float32)
    label = np.full(n, -1, dtype=np.int32)
    for i in range(n):
        r = rng.uniform(1.5, 4.0)
        if i % 2 == 0:
            inside = x**2 + y**2 + z**2 <= r**2
            label[i] = i // 2 % 7
        else:
            a, b = [(y, x), (z, x), (z, y)][rng.integers(3)]
            inside = a**2 + b**2 <= (r * 0.6) ** 2
        cubes[i, 0][inside] = 0.3
    cubes += rng.normal(0, 0.05, cubes.shape).astype(np.float32)
    return {
        "cubes": cubes.astype(np.float16),
        "label": label,
        "proposal": np.ones(n, dtype=bool),
        "scan": (np.arange(n) // 14).astype(np.int32),
        "rank_score": np.zeros(n, dtype=np.float32),
    }


def args_for(tmp_path, steps: int, **kw):
    a = tr.get_args_parser().parse_args(["--data", "x", "--val-data", "y", "--out", str(tmp_path)])
    a.steps, a.batch_size, a.lr, a.no_progress, a.device = steps, 16, 3e-3, True, "cpu"
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_tiny_training_lowers_the_loss_and_separates_spheres_from_tubes(tmp_path):
    torch.manual_seed(0)
    data = toy_cubes(112, 0)
    net = tr.train(args_for(tmp_path, 60), data, tmp_path)
    history = [h["loss"] for h in __import__("json").loads((tmp_path / "history.json").read_text())]
    assert history[-1] < 0.6 * history[0], history
    test = toy_cubes(60, 1)
    logits = tr.score_cubes(net, test["cubes"], "cpu")
    from training.evaluation.metrics import roc_auc

    assert roc_auc(test["label"] >= 0, logits) > 0.9
    # resume at the end trains no further and returns the same weights
    again = tr.train(args_for(tmp_path, 60, resume=True), data, tmp_path)
    for p, q in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    # export: parity with torch, metadata the app reads
    chosen = {
        "top_k": 100,
        "keep": 50,
        "rerank_weight": 0.5,
        "cube_weight": 0.5,
        "rank_score_weight": 0.2,
        "threshold": 0.9,
    }
    out = tr.export(net, tmp_path / "rr.onnx", chosen, "a" * 64, {"validation": {"cpm": 0.5}})
    assert out["parity_max_abs"] < 1e-3
    rr = Reranker(tmp_path / "rr.onnx")
    assert rr.info.keep == 50 and rr.info.threshold == pytest.approx(0.9) and rr.info.nodule_model_sha256 == "a" * 64
    got = rr.score(test["cubes"].astype(np.float32))
    np.testing.assert_allclose(got, logits, rtol=1e-3, atol=1e-3)


def test_non_finite_loss_stops_training(tmp_path):
    data = toy_cubes(28, 0)
    data["cubes"][:] = np.float16(math.nan)
    with pytest.raises(FloatingPointError, match="non-finite"):
        tr.train(args_for(tmp_path, 5), data, tmp_path)


@pytest.mark.parametrize("light", [False, True])
def test_two_scale_network_learns_from_the_context_channel_and_exports(tmp_path, light):
    # channel 0 (the 18 mm cube) is noise only; the spheres and tubes are in channel 1
    torch.manual_seed(0)
    rng = np.random.default_rng(5)

    def two_channel(n: int, seed: int) -> dict[str, np.ndarray]:
        d = toy_cubes(n, seed)
        noise = rng.normal(-0.9, 0.05, d["cubes"].shape).astype(np.float16)
        d["cubes"] = np.concatenate([noise, d["cubes"]], axis=1)
        return d

    data = two_channel(112, 0)
    net = tr.train(args_for(tmp_path, 60, light_context=light), data, tmp_path)
    assert isinstance(net, tr.TwoScaleNet) and isinstance(net.context[0], torch.nn.AvgPool3d) == light
    test = two_channel(60, 1)
    logits = tr.score_cubes(net, test["cubes"], "cpu")
    from training.evaluation.metrics import roc_auc

    assert roc_auc(test["label"] >= 0, logits) > 0.9
    chosen = {
        "top_k": 100,
        "keep": 50,
        "rerank_weight": 1,
        "cube_weight": 0.5,
        "rank_score_weight": 0.2,
        "threshold": 0.9,
    }
    spec = CubeSpec(context_spacing_mm=3.0)
    out = tr.export(net, tmp_path / "rr2.onnx", chosen, "b" * 64, {}, spec)
    assert out["parity_max_abs"] < 1e-3
    rr = Reranker(tmp_path / "rr2.onnx")
    assert rr.info.spec == spec and rr.info.spec.channels == 2 and rr.info.version == ("3" if light else tr.VERSION)
    np.testing.assert_allclose(rr.score(test["cubes"].astype(np.float32)), logits, rtol=1e-3, atol=1e-3)
    # a one-channel network exported under a two-channel spec is refused by the app's class
    one = tr.train(args_for(tmp_path / "one", 2), toy_cubes(28, 0), tmp_path)
    tr.export(one, tmp_path / "bad.onnx", chosen, "b" * 64, {})
    import onnx

    proto = onnx.load(str(tmp_path / "bad.onnx"))
    proto.metadata_props.add(key="context_spacing_mm", value="3")
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    from nodeview.core.detect.reranker import RerankerError

    with pytest.raises(RerankerError, match="shape"):
        Reranker(tmp_path / "bad.onnx")


def test_fine_tuning_from_an_exported_reranker_starts_from_its_weights(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "resources" / "models" / "nodeview-reranker.onnx"
    torch.manual_seed(0)
    data = toy_cubes(112, 0)
    data["cubes"] = np.concatenate([data["cubes"], data["cubes"]], axis=1)
    # one step at a negligible rate: the network is the shipped file's, BatchNorms frozen
    a = args_for(tmp_path / "zero", 1, light_context=True, init_onnx=str(shipped), frozen_bn=True, lr=1e-12)
    (tmp_path / "zero").mkdir()
    net0 = tr.train(a, data, tmp_path / "zero")
    assert not any(m.training for m in net0.modules() if isinstance(m, torch.nn.BatchNorm3d))
    x = data["cubes"][:8].astype(np.float32)
    np.testing.assert_allclose(tr.score_cubes(net0, x, "cpu"), Reranker(shipped).score(x), rtol=1e-3, atol=1e-3)
    # a few steps move it and leave the (identity) BatchNorm statistics alone
    b = args_for(tmp_path, 5, light_context=True, init_onnx=str(shipped), frozen_bn=True, lr=1e-3)
    net = tr.train(b, data, tmp_path)
    bn = net.fine[0][1]
    assert torch.all(bn.running_mean == 0)
    assert not torch.allclose(net.head.weight, net0.head.weight)
    # the cascade of a file (--cascade-from): a one-point grid
    info = Reranker(shipped).info
    assert tr.cascade_of(str(shipped)) == {
        "rerank_weight": (info.rerank_weight,),
        "keep": (info.keep,),
        "cube_weight": (info.cube_weight,),
    }
    assert (info.keep, info.rerank_weight, info.cube_weight) == (300, 2.0, 2.0)  # the shipped file's (issue 21)


def test_hard_negatives_are_the_top_ranked_negative_proposals():
    data = {
        "scan": np.array([0, 0, 0, 0, 1, 1, 1], dtype=np.int32),
        "rank_score": np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.5, 0.4], dtype=np.float32),
        "label": np.array([0, -1, -1, -1, -1, -1, -1], dtype=np.int32),
        "proposal": np.array([True, True, True, True, True, True, False]),
    }
    assert sorted(tr.top_ranked_negatives(data, 1).tolist()) == [5]  # row 0 is a nodule, row 6 no proposal
    assert sorted(tr.top_ranked_negatives(data, 2).tolist()) == [1, 4, 5]
    assert sorted(tr.top_ranked_negatives(data, 3).tolist()) == [1, 3, 4, 5]
