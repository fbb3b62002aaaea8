"""Evaluate the shipped detector (the nodule model and its re-ranker, as the app runs them) on annotated sets.

``train_reranker.py`` reports the cascade on the validation and test sets it was built with. This
script measures the exported files on any other annotated sets, for example more held-out scans
generated after the fact: the re-ranker's weights, kept count and threshold come from its ONNX
metadata, exactly as :class:`nodeview.core.detect.detector.Detector` reads them, and the cascade's steps
are ``train_reranker``'s (the same proposals, cubes, re-ranking, fused score and merging as the
app). Each set may pool several annotation files; every file is also reported on its own.

For every set and part: CPM with a bootstrap interval (scans resampled), the paired difference
against the nodule model alone (its own 300 proposals, as without a re-ranker), sensitivity at the
7 LUNA16 FP rates, by slice thickness, by size at the operating threshold, FPs per scan there, and
the malignancy AUC per found nodule. Cubes, model scores and slice thicknesses are cached in
``--cache``, so a rerun needs no images.

    python -m training.engine.evaluate_cascade \\
        --set test=data/test/annotations.csv,data/test2/annotations.csv,data/test3/annotations.csv \\
        --set val2=data/val2/annotations.csv --out training/results/cascade-heldout.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from nodeview.core.detect.detector import Detector
from training.data.annotations import ScanRecord, read_records_csv
from training.engine import train_reranker as tr
from training.evaluation import evaluate as ev
from training.evaluation.metrics import cpm, cpm_difference_bootstrap, froc

Part = tuple[list[ScanRecord], dict[str, np.ndarray], dict[str, np.ndarray]]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--set",
        action="append",
        required=True,
        metavar="NAME=CSV[,CSV...]",
        help="a named set pooling one or more annotation files (repeat for more sets)",
    )
    p.add_argument("--model", default="resources/models/nodeview-nodule.onnx")
    p.add_argument("--reranker", default="auto", help="re-ranker file (default: the one beside the model)")
    p.add_argument("--cache", default="runs/cascade", help="cubes, scores and slice thicknesses")
    p.add_argument(
        "--against",
        metavar="RERANKER",
        help="another re-ranker file for the same nodule model: also report the paired CPM difference over its "
        "cascade on every set (for example a re-calibrated file against the shipped one)",
    )
    p.add_argument("--out", help="results as JSON")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_sets(specs: list[str]) -> dict[str, list[Path]]:
    sets: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, files = spec.partition("=")
        paths = [Path(f) for f in files.split(",") if f]
        if not sep or not name or not paths:
            raise SystemExit(f"--set {spec!r}: expected NAME=CSV[,CSV...]")
        if name in sets:
            raise SystemExit(f"--set {name!r} given twice")
        sets[name] = paths
    return sets


def part_name(csv: Path) -> str:
    """A cache and report name for one annotation file: its folder's name, and a digest of its path."""
    digest = hashlib.sha256(str(csv.resolve()).encode()).hexdigest()[:8]
    return f"{csv.parent.name or 'set'}-{digest}"


def slice_thicknesses(records: list[ScanRecord], cache: Path) -> dict[str, float]:
    """Each scan's slice thickness (``evaluate.slice_thickness_mm``), cached so that reports need no images."""
    known: dict[str, float] = json.loads(cache.read_text()) if cache.exists() else {}
    missing = [r for r in records if r.scan_id not in known]
    if missing:
        known.update({r.scan_id: ev.slice_thickness_mm(r) for r in missing})
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=1))
    return known


def load_part(
    csv: Path,
    det: Detector,
    model: str,
    cache: Path,
    quiet: bool,
    subvoxel: bool | None = None,
    grid: tuple[tuple[float, ...], int] | None = None,
) -> tuple[Part, dict[str, float]]:
    """Cubes of the re-ranker's top_k proposals, the re-ranker's ``cube_logit`` on them (a key of
    the scores) and the nodule model's scores (cached) on the rows the cascade can send it: those
    kept under the file's settings, or under any of ``grid`` = (re-rank weights, kept count), and
    the nodule model's own first 300 (``train_reranker.rows_to_score``; other rows NaN). The
    proposals' peak positions are those the re-ranker file asks for, unless ``subvoxel`` says
    otherwise (re-calibration)."""
    assert det.reranker is not None
    info = det.reranker.info
    records = read_records_csv(csv)
    name = part_name(csv)
    thick = slice_thicknesses(records, cache / f"thickness-{name}.json")
    subvoxel = info.subvoxel_peaks if subvoxel is None else subvoxel
    data = tr.build_split(records, cache / f"cubes-{name}.npz", info.top_k, False, 0, quiet, info.spec, subvoxel)
    # the re-ranker's logits, once per file (pooled sets reuse them), a chunk of float32 cubes at a time
    cubes = data["cubes"]
    chunks = [det.reranker.score(cubes[s : s + 4096].astype(np.float32)) for s in range(0, len(cubes), 4096)]
    logits = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    weights, keep = grid if grid is not None else ((info.rerank_weight,), info.keep)
    needed = tr.rows_to_score(data, logits, weights, keep)
    scores = tr.nodule_scores(records, data, model, cache / f"scores-{name}.npz", quiet, needed)
    scores = {**scores, "cube_logit": logits}
    rows = {k: v for k, v in data.items() if k != "cubes"}  # the reports need no cubes
    return (records, rows, scores), thick


def pool(parts: list[Part]) -> Part:
    """One part of several: scan numbers offset, arrays concatenated; a scan may appear only once."""
    records = [r for p in parts for r in p[0]]
    ids = [r.scan_id for r in records]
    if len(set(ids)) != len(ids):
        raise SystemExit("a set pools the same scan twice: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1})))
    datas, offset = [], 0
    for _, data, _ in parts:
        datas.append({**data, "scan": data["scan"] + offset})
        offset += len(data["scan_ids"])
    data = {k: np.concatenate([d[k] for d in datas]) for k in datas[0]}
    scores = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
    return records, data, scores


def chosen_of(det: Detector) -> dict[str, Any]:
    """The cascade's settings as ``train_reranker.calibrate`` chose them (read from the re-ranker file)."""
    assert det.reranker is not None
    rr = det.reranker.info
    return {
        "rerank_weight": rr.rerank_weight,
        "keep": rr.keep,
        "cube_weight": rr.cube_weight,
        "threshold": rr.threshold,
    }


def cascade_predictions(part: Part, det: Detector) -> dict[str, list[Any]]:
    """The app's findings (centre, score) per scan under ``det``'s cascade settings."""
    assert det.reranker is not None
    _, data, scores = part
    c = chosen_of(det)
    rank_weight = det.reranker.info.rank_score_weight
    preds, _ = tr.predictions(
        data, scores, scores["cube_logit"], c["rerank_weight"], c["keep"], rank_weight, c["cube_weight"]
    )
    return preds


def against(part: Part, det: Detector, other_part: Part, other: Detector) -> dict[str, Any]:
    """Paired CPM difference of ``det``'s cascade over ``other``'s on the same scans (scans resampled)."""
    truths = tr.truths_of(part[0], part[1])
    new, base = cascade_predictions(part, det), cascade_predictions(other_part, other)
    base_cpm, new_cpm = cpm(froc(base, truths))[0], cpm(froc(new, truths))[0]
    diff = cpm_difference_bootstrap(base, new, truths, n_bootstrap=2000)
    return {
        "other": other.reranker.info.path if other.reranker is not None else "",
        "cpm_other": float(base_cpm),
        "cpm": float(new_cpm),
        "estimate": diff.estimate,
        "low": diff.low,
        "high": diff.high,
        "p_not_better": diff.p_not_better,
    }


def evaluate_part(part: Part, name: str, det: Detector, thick: dict[str, float]) -> dict[str, Any]:
    assert det.reranker is not None
    rr = det.reranker.info
    records, data, scores = part
    chosen = chosen_of(det)
    logits = scores["cube_logit"]
    result = tr.report(name, records, data, scores, logits, chosen, rr.rank_score_weight, thickness=thick)
    groups = [thick[r.scan_id] for r in records]
    result["scans_by_slice_thickness_mm"] = {f"{t:g}": groups.count(t) for t in sorted(set(groups))}
    return result


def main(args: argparse.Namespace) -> dict[str, Any]:
    sets = parse_sets(args.set)
    det = Detector(args.model, reranker=args.reranker)
    if det.reranker is None:
        raise SystemExit(f"no re-ranker calibrated for {args.model} beside it; pass --reranker")
    other = Detector(args.model, reranker=args.against) if args.against else None
    cache = Path(args.cache)
    loaded: dict[Path, tuple[Part, dict[str, float]]] = {}
    loaded_other: dict[Path, Part] = {}
    results: dict[str, Any] = {"model": det.info.label, "reranker": det.reranker.info.path, "sets": {}}
    for name, files in sets.items():
        for csv in files:
            if csv not in loaded:
                loaded[csv] = load_part(csv, det, args.model, cache, args.no_progress)
            if other is not None and csv not in loaded_other:
                loaded_other[csv] = load_part(csv, other, args.model, cache, args.no_progress)[0]
        thick = {k: v for csv in files for k, v in loaded[csv][1].items()}
        part = pool([loaded[csv][0] for csv in files])
        entry = evaluate_part(part, name, det, thick)
        if len(files) > 1:
            entry["parts"] = {str(csv): evaluate_part(loaded[csv][0], str(csv), det, thick) for csv in files}
        if other is not None:
            entry["against"] = against(part, det, pool([loaded_other[csv] for csv in files]), other)
        results["sets"][name] = entry
        print(summary_line(name, entry), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))
    return results


def summary_line(name: str, r: dict[str, Any]) -> str:
    lo, hi = r["cpm_ci95"]
    d = r["paired_difference"]
    return (
        f"{name}: {r['scans']} scans, {r['nodules']} nodules, CPM {r['cpm']:.3f} ({lo:.3f}-{hi:.3f}), "
        f"nodule model alone {r['cpm_nodule_model_alone']:.3f}, paired {d['estimate']:+.3f} "
        f"({d['low']:+.3f} to {d['high']:+.3f}), at threshold sensitivity {r['sensitivity_at_threshold']:.3f} "
        f"with {r['fps_per_scan_at_threshold']:.2f} FPs/scan, malignancy AUC {r['malignancy_auc']:.3f}"
        + (against_line(r["against"]) if "against" in r else "")
    )


def against_line(a: dict[str, Any]) -> str:
    return (
        f"; against {Path(a['other']).name}: {a['cpm_other']:.4f} -> {a['cpm']:.4f}, "
        f"paired {a['estimate']:+.4f} ({a['low']:+.4f} to {a['high']:+.4f})"
    )


if __name__ == "__main__":
    main(get_args_parser().parse_args())
