"""Proposal recall: which annotated nodules the shared candidate proposer finds, broken down.

The detector can only report a nodule the proposer points at, so this caps the CPM. For each
nodule it records whether a candidate lies within its radius (the LUNA16 hit rule used by
``nodeview.core.detect.candidates.recall``), whether it lies inside the lung search region, and the
rank of the nearest candidate; the summary groups recall by kind, location, size and slice
thickness. For a miss it tells the causes apart: ``peak_within_radius`` (did any DoG peak of any
scale, before ranking and merging, fall within the nodule's radius: if not, no ranker can find
it) and ``best_peak_rank`` (the best such peak's place among all the scan's peaks by the ranker's
score, before merging); the summary's ``peak_within_radius`` is the recall a perfect ranker would
reach.

    python -m training.evaluation.proposal_recall --data data/val/annotations.csv --out runs/recall-val.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from nodeview.core.detect.candidates import (
    DEFAULT_MAX_CANDIDATES,
    find_peaks,
    propose_from_peaks,
    rank_scores,
    recall,
)
from nodeview.core.detect.lung import segment_lungs
from nodeview.core.io.study import open_study
from training.data.annotations import read_records_csv


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="annotations CSV (training.data.annotations format)")
    p.add_argument("--out", help="per-nodule results as JSON")
    p.add_argument("--max-candidates", type=int, default=DEFAULT_MAX_CANDIDATES)
    p.add_argument("--limit", type=int, default=0, help="only the first N scans with nodules (0: all)")
    p.add_argument("--min-diameter", type=float, default=3.0, help="count nodules at least this big (mm)")
    p.add_argument(
        "--subvoxel", action="store_true", help="peak positions refined below the voxel (as propose(subvoxel=True))"
    )
    return p


def size_bin(d: float) -> str:
    return "3-6 mm" if d < 6 else "6-10 mm" if d < 10 else "10-20 mm" if d < 20 else ">=20 mm"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def rate(group: list[dict[str, Any]]) -> dict[str, Any]:
        hits = sum(r["hit"] for r in group)
        return {"n": len(group), "hits": hits, "recall": round(hits / len(group), 3) if group else None}

    out: dict[str, Any] = {"all": rate(rows)}
    for key in ("kind", "location", "size", "thickness_mm"):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[str(r[key])].append(r)
        out[key] = {k: rate(v) for k, v in sorted(groups.items())}
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    records = [r for r in read_records_csv(args.data) if r.nodules]
    if args.limit:
        records = records[: args.limit]
    rows: list[dict[str, Any]] = []
    n_cand: list[int] = []
    seconds: list[float] = []
    for rec in records:
        volume = open_study(rec.path)
        t0 = time.perf_counter()
        lung = segment_lungs(volume.hu_zyx, volume.geometry)
        peaks = find_peaks(volume.hu_zyx, volume.geometry, lung, subvoxel=args.subvoxel)
        cands = propose_from_peaks(peaks, volume.geometry, args.max_candidates)
        seconds.append(time.perf_counter() - t0)
        peak_mm = volume.geometry.index_to_mm(peaks.index_zyx) if len(peaks) else np.zeros((0, 3))
        peak_rank = np.empty(len(peaks), dtype=int)
        peak_rank[np.argsort(-rank_scores(peaks.features), kind="stable")] = np.arange(len(peaks))
        n_cand.append(len(cands))
        nodules = [n for n in rec.nodules if n.diameter_mm >= args.min_diameter]
        hits = recall(cands, [n.center_xyz_mm for n in nodules], [n.diameter_mm for n in nodules])
        pos = np.asarray([c.center_xyz_mm for c in cands]) if cands else np.zeros((0, 3))
        for n, hit in zip(nodules, hits, strict=True):
            d = np.linalg.norm(pos - np.asarray(n.center_xyz_mm), axis=1) if len(pos) else np.array([np.inf])
            nearest = int(np.argmin(d))
            idx = volume.geometry.mm_to_index(n.center_xyz_mm)
            within = np.linalg.norm(peak_mm - np.asarray(n.center_xyz_mm), axis=1) <= max(n.diameter_mm / 2.0, 1.5)
            rows.append(
                {
                    "scan_id": rec.scan_id,
                    "center_xyz_mm": list(n.center_xyz_mm),
                    "diameter_mm": n.diameter_mm,
                    "size": size_bin(n.diameter_mm),
                    "kind": n.kind,
                    "location": n.location,
                    "thickness_mm": round(float(volume.slice_thickness_mm or volume.spacing_zyx[0]), 2),
                    "in_lung_mask": bool(lung.contains_index(idx)),
                    "hit": bool(hit),
                    "nearest_mm": round(float(d[nearest]), 2),
                    "nearest_rank": nearest,
                    "peak_within_radius": bool(within.any()),
                    "best_peak_rank": int(peak_rank[within].min()) if within.any() else None,
                }
            )
    summary = summarise(rows)
    reachable = sum(r["peak_within_radius"] for r in rows)
    summary["peak_within_radius"] = {
        "n": len(rows),
        "hits": reachable,
        "recall": round(reachable / len(rows), 3) if rows else None,
    }
    summary["scans"] = len(records)
    summary["mean_candidates"] = round(float(np.mean(n_cand)), 1) if n_cand else 0
    summary["mean_seconds"] = round(float(np.mean(seconds)), 2) if seconds else 0
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"summary": summary, "nodules": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main(get_args_parser().parse_args())
