"""training/engine/evaluate_cascade.py: the shipped cascade on pooled annotated sets, measured as the app runs it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from nodeview.core.detect.detector import Detector
from nodeview.core.io.study import open_study
from training.data.annotations import read_records_csv, write_records_csv
from training.engine import evaluate_cascade as EC
from training.engine import train_reranker as tr

MODEL = "resources/models/nodeview-nodule.onnx"


@pytest.fixture(scope="module")
def two_csvs(tiny_data, tmp_path_factory):
    csv, _ = tiny_data
    root = tmp_path_factory.mktemp("parts")
    records = read_records_csv(csv)
    return [write_records_csv([r], root / f"part{i}" / "annotations.csv") for i, r in enumerate(records)]


def _assert_the_app_finds(det, record, preds):
    """The app's detector on ``record`` gives the evaluated findings (count, best five's scores and places).

    Training scores findings by the fused probability the model files' thresholds are stated in; the
    app shows the same number in finding-score units (``nodeview.core.detect.scores``, a monotonic map)."""
    from nodeview.core.detect.scores import score_from_probability

    evaluated = preds[record.scan_id]
    app = det.detect(open_study(record.path), segment_from=2.0).findings
    assert len(app) == len(evaluated)
    # the app's best five are evaluated findings at the same places and scores (training's float32
    # fused probabilities tie near 1 where the app's scores do not, so the order among ties may differ)
    for f in app[:5]:
        centre, score = min(evaluated, key=lambda p: float(np.linalg.norm(np.subtract(f.center_xyz_mm, p[0]))))
        assert np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) < 0.5
        assert f.score == pytest.approx(score_from_probability(score), abs=0.02)


def test_pooled_and_per_part_reports(two_csvs, tmp_path):
    a, b = two_csvs
    args = EC.get_args_parser().parse_args(
        ["--set", f"both={a},{b}", "--set", f"first={a}", "--cache", str(tmp_path / "cache"),
         "--out", str(tmp_path / "out.json"), "--no-progress"]
    )
    res = EC.main(args)["sets"]
    both, first = res["both"], res["first"]
    assert both["scans"] == 2 and both["nodules"] == 12 and first["scans"] == 1
    assert set(both["parts"]) == {str(a), str(b)} and "parts" not in first
    assert both["parts"][str(a)]["cpm"] == pytest.approx(first["cpm"])
    assert sum(p["nodules"] for p in both["parts"].values()) == both["nodules"]
    lo, hi = both["cpm_ci95"]
    assert 0.0 <= lo <= both["cpm"] <= hi <= 1.0
    assert sum(g["scans"] for g in both["cpm_by_slice"].values()) == 2
    assert sum(both["scans_by_slice_thickness_mm"].values()) == 2
    assert sum(r["nodules"] for r in both["by_size_at_threshold"].values()) == 12
    assert (tmp_path / "out.json").stat().st_size > 500
    # the thicknesses are cached: a rerun reads no headers
    assert len(list((tmp_path / "cache").glob("thickness-*.json"))) == 2


def test_a_scan_pooled_twice_is_refused(two_csvs, tmp_path):
    a, _ = two_csvs
    det = Detector(MODEL)
    part, _ = EC.load_part(a, det, MODEL, tmp_path, True)
    with pytest.raises(SystemExit, match="same scan twice"):
        EC.pool([part, part])
    with pytest.raises(SystemExit, match="NAME=CSV"):
        EC.parse_sets(["no-equals-sign"])


def test_the_evaluated_findings_are_the_apps(two_csvs, tmp_path):
    """The cascade as evaluated (cached cubes, re-ranking, fused score, merging) gives the
    findings the app's detector shows on the same scan."""
    a, _ = two_csvs
    det = Detector(MODEL)
    assert det.reranker is not None
    rr = det.reranker.info
    (records, data, scores), _ = EC.load_part(a, det, MODEL, tmp_path, True)
    logits = scores["cube_logit"]
    full = tr.build_split(  # cached, context cubes included
        records, tmp_path / f"cubes-{EC.part_name(a)}.npz", rr.top_k, False, 0, True, rr.spec
    )
    assert full["cubes"].shape[1] == rr.spec.channels
    np.testing.assert_allclose(logits, det.reranker.score(full["cubes"].astype(np.float32)), atol=1e-5)
    preds, _ = tr.predictions(data, scores, logits, rr.rerank_weight, rr.keep, rr.rank_score_weight, rr.cube_weight)
    _assert_the_app_finds(det, records[0], preds)


def test_recalibrated_subvoxel_copy_runs_in_the_app_as_evaluated(two_csvs, tmp_path):
    """training/engine/recalibrate.py: a copy of the shipped re-ranker file with settings chosen again for
    sub-voxel proposals; the app reads the flag and its findings are the evaluated ones."""
    from nodeview.core.detect.reranker import Reranker
    from training.engine import recalibrate as RC

    a, b = two_csvs
    out = tmp_path / "recal" / "nodeview-reranker.onnx"
    res = RC.main(RC.get_args_parser().parse_args(
        ["--subvoxel-peaks", "--val-data", str(a), "--test-data", str(b), "--cache", str(tmp_path / "cache"),
         "--out", str(out), "--no-progress"]
    ))
    shipped = Detector(MODEL).reranker
    assert shipped is not None and not shipped.info.subvoxel_peaks
    copy = Reranker(out).info
    assert copy.subvoxel_peaks and copy.metadata["weights_sha256"] == shipped.info.metadata["weights_sha256"]
    assert copy.keep == res["chosen"]["keep"] and copy.threshold == pytest.approx(res["chosen"]["threshold"], rel=1e-5)
    assert {"validation", "test"} <= set(res) and out.with_suffix(".json").exists()
    # the sub-voxel proposals are cached apart from the voxel ones
    assert len(list((tmp_path / "cache").glob(f"cubes-{EC.part_name(a)}-*.npz"))) == 1
    det = Detector(MODEL, reranker=out)
    (records, data, scores), _ = EC.load_part(a, det, MODEL, tmp_path / "cache", True)
    preds = EC.cascade_predictions((records, data, scores), det)
    _assert_the_app_finds(det, records[0], preds)
    # measured against the shipped file: the paired difference of the two cascades on the same scans
    both = EC.main(EC.get_args_parser().parse_args(
        ["--set", f"a={a}", "--reranker", str(out), "--against", shipped.info.path, "--cache", str(tmp_path / "cache"),
         "--no-progress"]
    ))["sets"]["a"]["against"]
    assert both["cpm"] == pytest.approx(res["validation"]["cpm"])
    assert both["low"] <= both["estimate"] <= both["high"]
    assert both["estimate"] == pytest.approx(both["cpm"] - both["cpm_other"], abs=1e-9)


def test_recalibrating_only_the_cube_weight_keeps_the_files_rerank_settings(two_csvs, tmp_path):
    """recalibrate --keep-rerank --cube-weights: only the cube weight (and the threshold) is chosen, from the
    weights given; the copy loads in the app with the file's keep and re-rank weight."""
    from nodeview.core.detect.reranker import Reranker
    from training.engine import recalibrate as RC

    a, _ = two_csvs
    out = tmp_path / "cw" / "nodeview-reranker.onnx"
    argv = ["--val-data", str(a), "--keep-rerank", "--cube-weights", "0.5", "2", "--fp-per-scan", "1"]
    res = RC.main(RC.get_args_parser().parse_args([*argv, "--cache", str(tmp_path / "cache"), "--out", str(out)]))
    shipped = Detector(MODEL).reranker
    assert shipped is not None
    grid = res["chosen"]["grid"]
    assert [(g["rerank_weight"], g["keep"], g["cube_weight"]) for g in grid] == [
        (shipped.info.rerank_weight, shipped.info.keep, 0.5),
        (shipped.info.rerank_weight, shipped.info.keep, 2.0),
    ]
    copy = Reranker(out).info
    assert copy.keep == shipped.info.keep and copy.rerank_weight == shipped.info.rerank_weight
    assert copy.cube_weight == res["chosen"]["cube_weight"] in (0.5, 2.0)
    assert copy.metadata["weights_sha256"] == shipped.info.metadata["weights_sha256"]


def test_scoring_only_the_rows_the_cascade_can_keep_changes_no_figure(two_csvs, tmp_path):
    """``load_part`` has the nodule model score only the rows ``rows_to_score`` names (about a third of
    the top_k); the report is the one computed from every row's scores."""
    a, _ = two_csvs
    det = Detector(MODEL)
    assert det.reranker is not None
    rr = det.reranker.info
    (records, data, scores), thick = EC.load_part(a, det, MODEL, tmp_path, True)
    needed = tr.rows_to_score(data, scores["cube_logit"], (rr.rerank_weight,), rr.keep)
    assert np.array_equal(np.isnan(scores["nodule_prob"]), ~needed) and needed.sum() >= min(len(needed), 300)
    full = tr.nodule_scores(records, data, MODEL, tmp_path / "full.npz", True)
    assert not np.isnan(full["nodule_prob"]).any()
    np.testing.assert_array_equal(full["nodule_prob"][needed], scores["nodule_prob"][needed])
    chosen = EC.chosen_of(det)
    logits = scores["cube_logit"]
    got = tr.report("a", records, data, scores, logits, chosen, rr.rank_score_weight, thickness=thick)
    want = tr.report("a", records, data, {**full, "cube_logit": logits}, logits, chosen, rr.rank_score_weight,
                     thickness=thick)
    assert got["by_size_at_threshold"] == want["by_size_at_threshold"]
    for key in ("cpm", "cpm_nodule_model_alone", "sensitivity_at_threshold", "fps_per_scan_at_threshold",
                "malignancy_auc", "sensitivity_at_fp_rates"):
        assert got[key] == pytest.approx(want[key], nan_ok=True), key
