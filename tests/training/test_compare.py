"""training/evaluation/compare.py: paired comparison of two evaluations from their predictions.csv files."""

from __future__ import annotations

import csv
import json

import pytest

from training.evaluation import compare as C

HEADER = ["scan_id", "x_mm", "y_mm", "z_mm", "nodule_prob", "rank_score", "score", "malignancy_prob",
          "diameter_mm", "is_nodule", "from_proposal", "evaluated"]


def _write_eval(folder, rows, thickness):
    folder.mkdir()
    with open(folder / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for sid, xyz, score, evaluated in rows:
            w.writerow([sid, *xyz, 0.5, 0.0, score, 0.5, 6.0, 0, 1, evaluated])
    per_scan = {sid: {"slice_thickness_mm": t} for sid, t in thickness.items()}
    (folder / "metrics.json").write_text(json.dumps({"per_scan": per_scan}))


def _annotations(tmp_path):
    path = tmp_path / "ann.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scan_id", "path", "x_mm", "y_mm", "z_mm", "diameter_mm"])
        w.writerow(["s1", str(tmp_path / "s1"), 0, 0, 0, 6.0])
        w.writerow(["s2", str(tmp_path / "s2"), 0, 0, 0, 6.0])
        w.writerow(["s2", str(tmp_path / "s2"), 50, 50, 50, 2.0])  # under 3 mm: not counted
    return path


def test_compare_reads_evaluated_findings_and_pairs_the_scans(tmp_path, capsys):
    ann = _annotations(tmp_path)
    thickness = {"s1": 1.0, "s2": 5.0}
    # A: s1 found, s2 missed with a false positive; a row not evaluated (suppressed by NMS) is ignored
    _write_eval(tmp_path / "a", [("s1", (0, 0, 0), 0.9, 1), ("s2", (40, 0, 0), 0.8, 1), ("s2", (0, 0, 0), 0.99, 0)],
                thickness)
    _write_eval(tmp_path / "b", [("s1", (0, 0, 0), 0.9, 1), ("s2", (1, 0, 0), 0.95, 1)], thickness)
    args = C.get_args_parser().parse_args(["--data", str(ann), "--a", str(tmp_path / "a"), "--b",
                                           str(tmp_path / "b"), "--bootstrap", "500", "--out",
                                           str(tmp_path / "cmp.json")])
    out = C.main(args)
    row = out["all"]
    assert (row["scans"], row["nodules"]) == (2, 2)
    assert row["cpm_a"] == pytest.approx(0.5) and row["cpm_b"] == pytest.approx(1.0)
    assert row["difference"] == pytest.approx(0.5) and row["difference_ci95"] == [0.0, 1.0]
    # per slice group: s2 alone is the thick group, where A finds nothing
    assert out["> 2.5 mm"]["cpm_a"] == 0.0 and out["> 2.5 mm"]["difference"] == 1.0
    assert out["<= 2.5 mm"]["difference"] == 0.0
    assert json.loads((tmp_path / "cmp.json").read_text())["all"]["difference"] == pytest.approx(0.5)
    assert "B-A +0.500" in capsys.readouterr().out


def test_compare_rejects_old_or_foreign_predictions(tmp_path):
    ann = _annotations(tmp_path)
    old = tmp_path / "old.csv"
    old.write_text("scan_id,x_mm,y_mm,z_mm,nodule_prob\ns1,0,0,0,0.9\n")
    with pytest.raises(ValueError, match=r"older evaluate\.py"):
        C.read_predictions(old, ["s1", "s2"])
    _write_eval(tmp_path / "x", [("s9", (0, 0, 0), 0.9, 1)], {})
    with pytest.raises(ValueError, match="s9"):
        C.main(C.get_args_parser().parse_args(["--data", str(ann), "--a", str(tmp_path / "x"), "--b",
                                               str(tmp_path / "x")]))


def test_compare_uses_the_merged_finding_centres(tmp_path):
    """evaluate.py writes each finding's merged centre (finding_*_mm) beside its best candidate's:
    the hit is judged at the finding's centre, as the app shows it."""
    ann = _annotations(tmp_path)
    header = [*HEADER, "finding_x_mm", "finding_y_mm", "finding_z_mm"]
    folder = tmp_path / "m"
    folder.mkdir()
    with open(folder / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        # candidate 4 mm off s1's 6 mm nodule (a miss), merged centre 1 mm off (a hit)
        w.writerow(["s1", 4, 0, 0, 0.5, 0.0, 0.9, 0.5, 6.0, 0, 1, 1, 1, 0, 0])
        w.writerow(["s1", 9, 9, 9, 0.5, 0.0, 0.3, 0.5, 6.0, 0, 1, 0, "", "", ""])
    preds = C.read_predictions(folder, ["s1", "s2"])
    assert preds == {"s1": [((1.0, 0.0, 0.0), 0.9)], "s2": []}
    out = C.main(C.get_args_parser().parse_args(["--data", str(ann), "--a", str(folder), "--b", str(folder),
                                                 "--bootstrap", "20"]))
    assert out["all"]["cpm_a"] == 0.5  # s1's nodule found at the merged centre, s2's missed
