"""Compare two evaluations of the same scans: is model B's CPM really above model A's?

    python -m training.evaluation.compare --data data/test/annotations.csv \\
        --a runs/hardneg/eval-test --b runs/stage3a/eval-test [--bootstrap 2000] [--out cmp.json]

Reads each evaluation's ``predictions.csv`` (written by ``training/evaluation/evaluate.py``: the findings
the app would show, ``evaluated == 1``, at their ``finding_*_mm`` centres when given, with their
``score``) and the nodules (>= 3 mm) of the
annotations CSV, and reports both CPMs and ``CPM(B) - CPM(A)`` with a paired 95 % bootstrap
interval over scans (:func:`training.evaluation.metrics.cpm_difference_bootstrap`), overall and per slice
thickness group. Pairing matters: on 40 scans one model's CPM interval is about +-0.1 wide, but
much of that spread is which scans were drawn, and it cancels in the difference. Research use only.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from nodeview.core.detect.detector import SLICE_GROUPS, slice_group
from training.data.annotations import read_records_csv
from training.evaluation.metrics import cpm, cpm_difference_bootstrap, froc

Preds = dict[str, list[tuple[tuple[float, float, float], float]]]
Truths = dict[str, list[tuple[tuple[float, float, float], float]]]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, help="annotation CSV the evaluations used (repeatable)")
    p.add_argument("--a", required=True, help="evaluation folder (or its predictions.csv) of model A, the reference")
    p.add_argument("--b", required=True, help="evaluation folder (or its predictions.csv) of model B")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the comparison as JSON")
    return p


def read_predictions(path: str | Path, scan_ids: list[str]) -> Preds:
    """The findings of an ``evaluate.py`` ``predictions.csv`` (its ``evaluated`` rows), by scan."""
    path = Path(path)
    if path.is_dir():
        path = path / "predictions.csv"
    preds: Preds = {sid: [] for sid in scan_ids}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"scan_id", "x_mm", "y_mm", "z_mm", "score", "evaluated"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the columns {sorted(missing)}: written by an older evaluate.py? re-run it")
        for row in reader:
            if row["evaluated"] != "1":
                continue
            sid = row["scan_id"]
            if sid not in preds:
                raise ValueError(f"{path}: scan {sid!r} is not in the annotations given with --data")
            # the finding's (merged) centre where the evaluation wrote it, else the candidate's
            key = "finding_{}" if row.get("finding_x_mm") else "{}"
            centre = tuple(float(row[key.format(a)]) for a in ("x_mm", "y_mm", "z_mm"))
            preds[sid].append(((centre[0], centre[1], centre[2]), float(row["score"])))
    return preds


def compare(
    preds_a: Preds, preds_b: Preds, truths: Truths, n_bootstrap: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Both CPMs and their paired difference with its interval."""
    d = cpm_difference_bootstrap(preds_a, preds_b, truths, n_bootstrap=n_bootstrap, seed=seed)
    return {
        "scans": len(truths),
        "nodules": sum(len(v) for v in truths.values()),
        "cpm_a": cpm(froc(preds_a, truths))[0],
        "cpm_b": cpm(froc(preds_b, truths))[0],
        "difference": d.estimate,
        "difference_ci95": [d.low, d.high],
        "p_not_better": d.p_not_better,
        "n_bootstrap": n_bootstrap,
        "n_used": d.n_used,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    records = [r for path in args.data for r in read_records_csv(path)]
    ids = [r.scan_id for r in records]
    truths: Truths = {
        r.scan_id: [(n.center_xyz_mm, n.diameter_mm) for n in r.nodules if n.diameter_mm >= 3.0] for r in records
    }
    a = read_predictions(args.a, ids)
    b = read_predictions(args.b, ids)
    out: dict[str, Any] = {"a": str(args.a), "b": str(args.b), "all": compare(a, b, truths, args.bootstrap, args.seed)}
    # per slice group, where the evaluations recorded each scan's thickness
    metrics = Path(args.b) / "metrics.json" if Path(args.b).is_dir() else Path(args.b).with_name("metrics.json")
    if metrics.exists():
        per_scan = json.loads(metrics.read_text()).get("per_scan", {})
        thickness = {sid: v.get("slice_thickness_mm") for sid, v in per_scan.items()}
        for group in SLICE_GROUPS:
            sel = [sid for sid in ids if thickness.get(sid) is not None and slice_group(thickness[sid]) == group]
            if sel and any(truths[s] for s in sel):
                sub_a, sub_b = {s: a[s] for s in sel}, {s: b[s] for s in sel}
                out[group] = compare(sub_a, sub_b, {s: truths[s] for s in sel}, args.bootstrap, args.seed)
    for name, row in out.items():
        if isinstance(row, dict):
            lo, hi = row["difference_ci95"]
            print(
                f"{name:>10}: {row['scans']} scans, {row['nodules']} nodules"
                f"  CPM A {row['cpm_a']:.3f}  B {row['cpm_b']:.3f}"
                f"  B-A {row['difference']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}; B not better in"
                f" {100 * row['p_not_better']:.1f}% of samples)"
            )
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())
