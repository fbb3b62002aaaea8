"""The real-set report: CPM, sensitivity by size and texture, FPs per scan, malignancy AUC."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from training.data.annotations import NoduleAnnotation, ScanRecord
from training.engine.evaluate_real import malignancy_difference, malignancy_of_nodules, set_report


def nod(x: float, d: float, kind: str, malignant: bool | None) -> NoduleAnnotation:
    return NoduleAnnotation((x, 0.0, 0.0), d, malignant=malignant, kind=kind)


def test_set_report_counts() -> None:
    records = [
        ScanRecord("a", "a", (nod(0, 4, "ground-glass", True), nod(50, 12, "solid", False))),
        ScanRecord("b", "b", (nod(0, 8, "part-solid", None), nod(50, 7, "solid", True))),
    ]
    f = lambda x, s, m: {"center_xyz_mm": [x, 0.0, 0.0], "score": s, "malignancy": m}  # noqa: E731
    preds = {
        "a": [f(0.5, 0.9, 0.8), f(50, 0.95, 0.1), f(100, 0.7, 0.5)],  # both found; one FP at 0.7
        "b": [f(0.0, 0.3, 0.5), f(51, 0.99, 0.9), f(-80, 0.2, 0.5)],  # part-solid below threshold
    }
    r = set_report(records, preds, threshold=0.5, min_d=3.0, n_boot=50, thickness=False)
    assert r["nodules"] == 4 and r["scans"] == 2
    assert r["sensitivity_at_threshold"]["found"] == 3
    assert r["fps_per_scan_at_threshold"] == 0.5
    assert r["by_size"]["3-6 mm"] == {"n": 1, "found": 1, "sensitivity": 1.0}
    assert r["by_size"]["6-10 mm"]["found"] == 1 and r["by_size"]["6-10 mm"]["n"] == 2
    assert r["by_texture"]["ground-glass+part-solid"]["found"] == 1
    assert r["recall_any_score"] == 1.0
    # malignancy over hit nodules with a known label: 0.8 (M), 0.1 (B), 0.9 (M) -> AUC 1
    assert r["malignancy_auc"]["n"] == 3 and r["malignancy_auc"]["auc"] == 1.0
    assert r["malignancy_auc"]["nodules"] == [["a#0", 1, 0.8], ["a#1", 0, 0.1], ["b#1", 1, 0.9]]
    assert malignancy_of_nodules(records, preds, 3.0) == r["malignancy_auc"]["nodules"]
    # paired against another cascade's malignancy on the same nodules: the benign one now ranks above a malignant one
    other = {"a": [f(0.5, 0.9, 0.2), f(50, 0.95, 0.5), f(100, 0.7, 0.5)], "b": preds["b"]}
    base = {"nodules": malignancy_of_nodules(records, other, 3.0)}
    d = malignancy_difference(base, r["malignancy_auc"], 200)
    assert d is not None and d["nodules"] == 3 and d["difference"] == pytest.approx(0.5)
    assert 0.0 <= r["cpm_ci95"][0] <= r["cpm"] <= r["cpm_ci95"][1] <= 1.0


def test_plan_uses_only_the_split_patients() -> None:
    import pytest

    from tests.conftest import SHARED_DATA
    from training.data.make_transplants import plan
    from training.data.real_split import DEFAULT_SPLIT_CSV, read_split
    from training.data.transplant import read_nodule_table

    nodules = SHARED_DATA / "lidc-nodules"
    if not (nodules / "nodules.csv").exists():
        pytest.skip("shared real data not found")
    split = read_split()
    table = read_nodule_table(nodules)
    for name in ("val", "test"):
        args = argparse.Namespace(
            split=name,
            nodules=str(nodules),
            split_csv=str(DEFAULT_SPLIT_CSV),
            seed=0,
            copies=1,
            per_scan=(5, 8),
            synthetic_fraction=0.3,
            limit=0,
        )
        scans = plan(args)
        files = [r["file"] for _, _, g in scans for r in g]
        assert {split[r["patient_id"]] for _, _, g in scans for r in g} == {name}
        assert sorted(files) == sorted(r["file"] for r in table if split[r["patient_id"]] == name)  # each once
        assert plan(args) == scans  # deterministic
        assert np.all([5 <= len(g) <= 8 for _, _, g in scans[:-1]])


def test_results_table_rows_come_from_the_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from training.export.real_release import results_table

    records = [ScanRecord("a", "a", (nod(0, 4, "ground-glass", True), nod(50, 12, "solid", False)))]
    preds = {"a": [{"center_xyz_mm": [0.0, 0.0, 0.0], "score": 0.9, "malignancy": 0.7}]}
    rep = set_report(records, preds, threshold=0.5, min_d=3.0, n_boot=20, thickness=False)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"threshold": 0.5, "sets": {"val": rep}}))
    table = results_table([("real", path)]).splitlines()
    assert len(table) == 3 and table[2].startswith("| real val | 1 | 2 |")
    assert "| 1/2 (0.500) | 0.00 | 1/1 | 0/0 | 0/1 | 1/1 | 0/0 | 0/1 | n/a |" in table[2]


def test_set_report_by_background(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from training.engine.evaluate_real import background_groups

    (tmp_path / "transplants.csv").write_text(
        "scan_id,background,file\na,lidc0002-k0-155,n1\na,lidc0002-k0-155,n2\nb,synthetic-10700,n3\nc,a0001B-k0-37,n4\n"
    )
    groups = background_groups(tmp_path / "annotations.csv")
    assert groups == {"a": "LIDC-IDRI-0002", "b": "synthetic", "c": "A0001"}
    assert background_groups(tmp_path / "elsewhere" / "annotations.csv") == {}
    records = [
        ScanRecord("a", "a", (nod(0, 6, "solid", True),)),
        ScanRecord("b", "b", (nod(0, 6, "solid", False),)),
    ]
    f = lambda x, s: {"center_xyz_mm": [x, 0.0, 0.0], "score": s, "malignancy": 0.5}  # noqa: E731
    preds = {"a": [f(0, 0.9), f(60, 0.8), f(90, 0.7)], "b": [f(0, 0.2)]}
    r = set_report(records, preds, threshold=0.5, min_d=3.0, n_boot=20, thickness=False, backgrounds=groups)
    bg = r["by_background"]
    assert set(bg) == {"LIDC-IDRI-0002", "synthetic"}  # no scan of A0001 in this set
    assert bg["LIDC-IDRI-0002"]["fps_per_scan"] == 2 and bg["LIDC-IDRI-0002"]["at_threshold"]["found"] == 1
    assert bg["synthetic"]["fps_per_scan"] == 0 and bg["synthetic"]["at_threshold"]["found"] == 0
    assert r["fps_per_scan_at_threshold"] == 1.0


def test_bind_takes_a_finding_score_threshold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """evaluate_real chooses thresholds in finding-score units; the bound file stores the fused
    probability, and the app reads the same finding score back."""
    from pathlib import Path

    import onnx

    from nodeview.core.detect.detector import Detector
    from nodeview.core.detect.scores import score_from_probability
    from training.export.real_release import bind

    models = Path(__file__).resolve().parents[2] / "resources" / "models"
    out = tmp_path / "rr.onnx"
    bind(models / "nodeview-nodule.onnx", models / "nodeview-reranker.onnx", 0.7379, 1.0, out)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert score_from_probability(float(meta["operating_threshold"])) == pytest.approx(0.7379, abs=1e-9)
    assert Detector(models / "nodeview-nodule.onnx", reranker=out).info.threshold == pytest.approx(0.7379, abs=1e-9)


def test_bind_can_change_how_many_proposals_the_reranker_sees(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``bind --top-k``: the copy's re-ranker looks at that many proposals; keep and weights unchanged."""
    from pathlib import Path

    from nodeview.core.detect.detector import Detector
    from training.export.real_release import bind

    models = Path(__file__).resolve().parents[2] / "resources" / "models"
    source = Detector(models / "nodeview-nodule.onnx").reranker
    assert source is not None
    out = tmp_path / "rr.onnx"
    bind(models / "nodeview-nodule.onnx", models / "nodeview-reranker.onnx", 0.8, 1.0, out, top_k=source.info.top_k + 7)
    bound = Detector(models / "nodeview-nodule.onnx", reranker=out).reranker
    assert bound is not None and bound.info.top_k == source.info.top_k + 7
    assert (bound.info.keep, bound.info.cube_weight) == (source.info.keep, source.info.cube_weight)


@pytest.mark.slow
def test_real_scans_are_scored_one_finding_per_lesion(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As the app: A0001's tumour (kernel B, 5 mm) is one finding inside its box at the operating
    threshold; scores only (no grouping, as evaluations before 2026-12-04) counts its fragments."""
    from nodeview.core.detect.detector import Detector
    from nodeview.core.detect.models import default_model_path
    from tests.conftest import SHARED_DATA
    from training.engine.evaluate_real import a0001_box_mm, detect_scan

    a1 = SHARED_DATA / "real-ct" / "Lung-PET-CT-Dx-A0001"
    if not a1.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    det = Detector(default_model_path())
    lo, hi = a0001_box_mm(a1)
    lo, hi = lo - 5.0, hi + 5.0
    counts = {}
    for lesions in (True, False):
        got = detect_scan(det, str(a1 / "chest-5mm-kernel-B"), tmp_path / f"{lesions}.json", lesions)
        kept = [f for f in got["findings"] if f["score"] >= det.info.threshold]
        counts[lesions] = sum(
            bool(np.all(np.asarray(f["center_xyz_mm"]) >= lo) and np.all(np.asarray(f["center_xyz_mm"]) <= hi))
            for f in kept
        )
    assert counts[True] == 1
    assert counts[False] > 1


def test_near_any() -> None:
    from training.engine.evaluate_real import near_any

    marks = [(0.0, 0.0, 0.0), (10.0, 0.0, 0.0)]
    assert near_any((10.0, 3.0, 4.0), marks, 5.0)
    assert not near_any((10.0, 3.0, 4.1), marks, 5.0)
    assert not near_any((0.0, 0.0, 0.0), [], 5.0)


@pytest.mark.slow
def test_lidc_0002_counts_false_positives_the_luna16_way(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The readers' < 3 mm and non-nodule marks come from the series' LIDC XML (25 non-nodule marks in
    it); at the operating threshold the shipped cascade finds the nodule, and its findings off the
    nodule that sit on such marks are not counted as false positives (LUNA16's irrelevant findings)."""
    import re

    from nodeview.core.detect.detector import Detector
    from nodeview.core.detect.models import default_model_path
    from tests.conftest import SHARED_DATA
    from training.data.lidc_xml import find_lidc_xml
    from training.engine.evaluate_real import lidc_irrelevant_marks, real_scan_report

    real_ct = SHARED_DATA / "real-ct"
    if not (real_ct / "LIDC-IDRI-0002").is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    xml = find_lidc_xml(real_ct / "LIDC-IDRI-0002")[0].read_text()
    marks = lidc_irrelevant_marks(real_ct / "LIDC-IDRI-0002")
    assert len(marks) >= len(re.findall(r"<nonNodule>", xml)) == 25
    det = Detector(default_model_path())
    rep = real_scan_report(det, real_ct, det.info.threshold, tmp_path)["LIDC-IDRI-0002"]
    assert rep["nodule_found"] and rep["findings_on_nodule"] == 1
    assert rep["false_positives"] == rep["findings_off_the_nodule"] - rep["findings_on_small_or_non_nodule_marks"]
    assert rep["false_positives"] <= 1


def test_mass_extent_reads_the_radiologists_slice_boxes_and_measures_the_tumour() -> None:
    """The slice boxes of ``training.evaluation.mass_extent`` span the box ``evaluate_real`` counts
    findings in, and the finding on A0001's tumour (kernel L) is one mass finding, half of it in the
    boxes. It covers little of the boxed tissue: the tumour's bulk lies outside the lung mask
    (training/README.md, 2026-12-05)."""
    from nodeview.core.detect.detector import Detector
    from nodeview.core.detect.models import default_model_path
    from nodeview.core.io.study import open_study
    from tests.conftest import SHARED_DATA
    from training.engine.evaluate_real import a0001_box_mm
    from training.evaluation.mass_extent import measure_kernel, slice_boxes

    a1 = SHARED_DATA / "real-ct" / "Lung-PET-CT-Dx-A0001"
    if not a1.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    series = a1 / "chest-5mm-kernel-L"
    volume = open_study([series])
    boxes = slice_boxes(series, volume, a1 / "annotations")
    assert len(boxes) == 11
    corners = np.asarray(
        [
            volume.geometry.index_to_mm((k, j, i))
            for k, (x0, y0, x1, y1) in boxes.items()
            for j in (y0, y1)
            for i in (x0, x1)
        ]
    )
    lo, hi = a0001_box_mm(a1)  # the union over both kernels' boxes holds this kernel's
    assert np.all(corners.min(axis=0) >= lo - 1.0) and np.all(corners.max(axis=0) <= hi + 1.0)
    got = measure_kernel(Detector(default_model_path()), series, a1 / "annotations")
    assert got["findings_on_tumour"] == 1 and got["category"] == "mass"
    assert 0.0 < got["boxed_tissue_covered"] < 0.1 and got["voxels_in_boxes"] >= 0.4
