"""The core detector with a real (tiny, hand-built) ONNX model: metadata checks, findings at the
right places with sensible measurements, NMS, cancel, the findings JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from nodeview.core.detect.detector import MASS_CAVEAT, Detector, ModelError, findings_json  # noqa: E402
from nodeview.core.detect.findings import lung_rads_hint  # noqa: E402
from nodeview.core.errors import Cancelled  # noqa: E402
from nodeview.core.volume import Volume  # noqa: E402

from .test_candidates import _chest  # noqa: E402

GOOD_META = {
    "name": "test-centre-density",
    "version": "0",
    "patch_size": "64",
    "patch_spacing_mm": "0.75",
    "hu_window": "-1000,400",
    "outputs": json.dumps({"nodule_prob": "p", "malignancy_prob": "p", "diameter_mm": "mm"}),
    "weights_sha256": "0" * 64,
    "operating_threshold": "0.5",
}


def make_model(path, meta=GOOD_META, size=64, outputs=("nodule_prob", "malignancy_prob", "diameter_mm")):
    """nodule_prob = sigmoid(12 * (mean of the central 6x6 of all planes + 0.45)): dense centre -> high."""
    c0, c1 = size // 2 - 3, size // 2 + 3
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [2], [c0, c0]),
        helper.make_tensor("ends", TensorProto.INT64, [2], [c1, c1]),
        helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("rax", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("shift", TensorProto.FLOAT, [], [0.45]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [12.0]),
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("eight", TensorProto.FLOAT, [], [8.0]),
    ]
    nodes = [
        helper.make_node("Slice", ["patches", "starts", "ends", "axes"], ["centre"]),
        helper.make_node("ReduceMean", ["centre", "rax"], ["m"], keepdims=0),
        helper.make_node("Add", ["m", "shift"], ["m1"]),
        helper.make_node("Mul", ["m1", "gain"], ["m2"]),
        helper.make_node("Sigmoid", ["m2"], [outputs[0]]),
        helper.make_node("Mul", [outputs[0], "half"], [outputs[1]]),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "eight"], [outputs[2]]),
    ]
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N"]) for o in outputs], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def chest_volume():
    from nodeview.core.geometry import Geometry

    hu, g, centres, diameters, _ = _chest(0)
    return Volume(hu, Geometry(g.shape_zyx, g.spacing_zyx, g.origin_xyz), series_uid="1.2.3", description="chest"), centres, diameters


def test_detects_the_nodules_with_measurements(tmp_path, chest_volume):
    volume, centres, diameters = chest_volume
    detector = Detector(make_model(tmp_path / "m.onnx"))
    assert detector.info.spec.size == 64 and detector.info.threshold == 0.5
    progress = []
    result = detector.detect(volume, progress=lambda d, n: progress.append((d, n)))
    assert progress[-1] == (100, 100) and result.n_candidates > 0
    found = [f for f in result.findings if f.score >= 0.5]
    assert [f.id for f in result.findings] == list(range(1, len(result.findings) + 1))
    assert all(a.score >= b.score for a, b in zip(result.findings, result.findings[1:], strict=False))
    for centre, diameter in zip(centres, diameters, strict=True):
        if diameter < 8:
            continue  # the toy model's 6-pixel centre window is tuned for larger blobs
        near = [f for f in found if np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) <= diameter / 2]
        assert near, (centre, diameter)
        best = near[0]
        assert 0.5 * diameter <= best.diameter_mm <= 1.6 * diameter, (diameter, best)
        assert best.volume_mm3 > 0 and best.long_axis_mm >= best.short_axis_mm > 0
        lo, hi = np.array(best.bbox_min_xyz_mm), np.array(best.bbox_max_xyz_mm)
        assert np.all(lo <= np.asarray(centre) + 1.5) and np.all(hi >= np.asarray(centre) - 1.5)
    ggo = min(found, key=lambda f: np.linalg.norm(np.subtract(f.center_xyz_mm, centres[5])))
    assert ggo.type in ("ground-glass", "part-solid")
    solid = min(found, key=lambda f: np.linalg.norm(np.subtract(f.center_xyz_mm, centres[3])))
    assert solid.type == "solid" and solid.lung_rads in ("4A", "4B")
    # the left-lung nodule (x > 0 in this phantom) is on the patient's left
    left = min(found, key=lambda f: np.linalg.norm(np.subtract(f.center_xyz_mm, centres[4])))
    assert left.side == "left"
    assert set(result.timings_s) == {"lungs", "proposals", "patches", "inference", "postprocess"}
    # 1.25 mm slices: no thick-slice caveat; a mass among the findings (this test model scores the
    # phantom's mediastinum high) is said to be measured on its part inside the lung
    assert result.caveats == ((MASS_CAVEAT,) if any(f.category == "mass" for f in found) else ())


def test_findings_json_schema_and_anonymize(tmp_path, chest_volume):
    volume, _, _ = chest_volume
    result = Detector(make_model(tmp_path / "m.onnx")).detect(volume)
    doc = findings_json(result, volume, 0.5, anonymize=True, timings={"load": 0.1, "detect": 1.0})
    assert doc["schema"] == "nodeview.findings/1" and "patient_id" not in doc["study"]
    assert doc["caveats"] == list(result.caveats)
    assert not any("thick" in c for c in doc["caveats"])
    assert set(doc["model"]) == {"name", "version", "sha256"}
    f = doc["findings"][0]
    assert {"id", "center_xyz_mm", "diameter_mm", "bbox_xyz_mm", "score", "malignancy", "type", "volume_mm3",
            "lung_rads"} <= set(f)
    assert all(x["score"] >= 0.5 for x in doc["findings"])
    doc2 = findings_json(result, volume, 0.0, anonymize=False, timings={})
    assert "patient_id" in doc2["study"] and len(doc2["findings"]) == len(result.findings)
    json.dumps(doc2)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"drop": "patch_size"}, "metadata lacks patch_size"),
        ({"set": ("patch_size", "48")}, "does not match patch_size"),
        ({"set": ("hu_window", "abc")}, "malformed"),
        ({"set": ("operating_threshold", "7")}, "not a probability"),
    ],
)
def test_models_with_wrong_metadata_are_refused(tmp_path, change, message):
    meta = dict(GOOD_META)
    if "drop" in change:
        meta.pop(change["drop"])
    else:
        key, value = change["set"]
        meta[key] = value
    with pytest.raises(ModelError, match=message):
        Detector(make_model(tmp_path / "bad.onnx", meta))


def test_not_a_model_and_wrong_outputs(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        Detector(tmp_path / "junk.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        Detector(tmp_path / "none.onnx")
    with pytest.raises(ModelError, match="outputs"):
        Detector(make_model(tmp_path / "o.onnx", outputs=("a", "b", "c")))


def test_cancel(tmp_path, chest_volume):
    volume, _, _ = chest_volume
    detector = Detector(make_model(tmp_path / "m.onnx"))
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        detector.detect(volume, should_stop=stop)


def test_lung_rads_hint_table():
    assert [lung_rads_hint("solid", d) for d in (5, 7, 10, 20)] == ["2", "3", "4A", "4B"]
    assert lung_rads_hint("part-solid", 5) == "2"
    assert [lung_rads_hint("part-solid", 12, s) for s in (4, 7, 9)] == ["3", "4A", "4B"]
    assert [lung_rads_hint("ground-glass", d) for d in (10, 35)] == ["2", "3"]
    assert lung_rads_hint("calcified", 12) == "1"


def test_bundled_default_model_loads_and_detects(chest_volume):
    """The committed default model passes the metadata checks, says what it is, and runs end to end."""
    import hashlib

    from nodeview.core.detect.models import default_model_path

    path = default_model_path()
    detector = Detector(path)
    info = detector.info
    assert info.name.startswith("nodeview-nodule") and 0.5 < info.threshold < 1.0
    assert info.spec.size == 64 and info.spec.spacing_mm == pytest.approx(0.75)
    meta = info.metadata
    assert "research" in meta["research_use_only"].lower()
    assert len(info.sha256) == 64 and info.sha256 != hashlib.sha256(b"").hexdigest()
    # the card beside it states this file's threshold, finding score and weights
    card = Path(path).with_suffix(".md").read_text()
    assert f"`score >= {info.threshold:.3f}`" in card and info.sha256 in card
    assert (f"{info.rank_weight:g} × rank" in card) if info.rank_weight else ("`score` = `nodule_prob`" in card)
    result = detector.detect(chest_volume[0], min_score=0.0)
    assert result.n_candidates > 0 and result.findings
    scores = [f.score for f in result.findings]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert all(0.0 <= f.malignancy <= 1.0 and f.diameter_mm > 0 for f in result.findings)


def test_only_findings_near_the_operating_point_are_segmented(tmp_path, chest_volume):
    from nodeview.core.detect.scores import score_from_logit

    volume = chest_volume[0]
    detector = Detector(make_model(tmp_path / "m.onnx"))  # threshold 0.5: fused log-odds 0
    # by default, from 4 fused log-odds below the operating threshold
    assert detector.segment_from_default() == pytest.approx(float(score_from_logit(-4.0)))
    scores = sorted(f.score for f in detector.detect(volume, min_score=0.0).findings)
    cut = scores[len(scores) // 2]
    result = detector.detect(volume, min_score=0.0, segment_from=cut)
    low = [f for f in result.findings if f.score < cut]
    high = [f for f in result.findings if f.score >= cut]
    assert low and high
    assert all(not f.measured and f.type == "unmeasured" and f.lung_rads == "" for f in low)
    assert all(f.measured == (f.type != "unmeasured") for f in result.findings)
    assert sum(f.measured for f in high) >= len(high) // 2
    everything = detector.detect(volume, min_score=0.0, segment_from=0.0)
    assert sum(f.measured for f in everything.findings) > sum(f.measured for f in result.findings)


def test_fuse_scores_adds_the_ranker_log_odds():
    from nodeview.core.detect.candidates import fuse_scores

    p = np.array([0.5, 0.9, 0.01, 1.0, 0.0], np.float32)
    r = np.array([2.0, -4.0, 0.0, 3.0, -3.0])
    assert np.array_equal(fuse_scores(p, r, 0.0), p)  # weight 0: the model's probability unchanged
    fused = fuse_scores(p, r, 0.5)
    expected = [1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(-(np.log(9.0) - 2.0))), 0.01]
    np.testing.assert_allclose(fused[:3], expected, rtol=1e-6)
    assert 0.0 <= fused[4] < fused[3] <= 1.0 and np.all(np.isfinite(fused))  # saturated inputs stay in range
    # monotone in both inputs
    assert fuse_scores(np.array([0.6]), np.array([1.0]), 0.3) > fuse_scores(np.array([0.6]), np.array([0.5]), 0.3)
    assert fuse_scores(np.array([0.7]), np.array([1.0]), 0.3) > fuse_scores(np.array([0.6]), np.array([1.0]), 0.3)


def test_rank_score_weight_from_metadata_sets_the_finding_scores(tmp_path, chest_volume, monkeypatch):
    """A model with ``rank_score_weight`` scores findings by the fused score; NMS, the threshold and
    the findings use it, and the model's own probabilities are what it is fused from."""
    import nodeview.core.detect.detector as D
    from nodeview.core.detect.candidates import fuse_logits
    from nodeview.core.detect.scores import score_from_logit

    volume = chest_volume[0]
    plain = Detector(make_model(tmp_path / "plain.onnx")).detect(volume, min_score=0.0)
    meta = dict(GOOD_META, rank_score_weight="0.5")
    detector = Detector(make_model(tmp_path / "fused.onnx", meta))
    assert detector.info.rank_weight == 0.5
    seen = {}
    real_nms = D.nms_3d

    def spy(candidates, scores):
        seen["ranks"] = np.array([c.rank_score for c in candidates])
        seen["scores"] = {k: v.copy() for k, v in scores.items()}
        return real_nms(candidates, scores)

    monkeypatch.setattr(D, "nms_3d", spy)
    fused = detector.detect(volume, min_score=0.0)
    expected = score_from_logit(fuse_logits(seen["scores"]["nodule_prob"], seen["ranks"], 0.5))
    np.testing.assert_allclose(seen["scores"]["score"], expected, rtol=1e-12)
    assert not np.allclose(seen["scores"]["score"], seen["scores"]["nodule_prob"])
    assert {round(f.score, 5) for f in fused.findings} <= {round(float(s), 5) for s in expected}
    assert [f.score for f in fused.findings] != [f.score for f in plain.findings]
    for bad in ("-1", "abc", "11"):
        with pytest.raises(ModelError, match=r"rank_score_weight|malformed"):
            Detector(make_model(tmp_path / "bad.onnx", dict(GOOD_META, rank_score_weight=bad)))


def test_thick_slices_get_a_caveat(tmp_path, chest_volume):
    import dataclasses

    volume, _, _ = chest_volume
    thick = dataclasses.replace(volume, slice_thickness_mm=5.0)  # the nominal thickness decides
    result = Detector(make_model(tmp_path / "m.onnx")).detect(thick, min_score=0.5)
    caveat, *rest = result.caveats
    assert caveat.startswith("Slices are 5 mm thick") and "thin-slice series" in caveat
    assert rest == ([MASS_CAVEAT] if any(f.category == "mass" and f.score >= 0.5 for f in result.findings) else [])
