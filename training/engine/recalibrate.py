"""Re-calibrate the shipped cascade for a change in the proposals, without retraining a network.

The re-ranker file carries the cascade's settings (``train_reranker.calibrate``: re-rank weight,
kept count, cube weight, operating threshold). A change upstream of the networks, such as
sub-voxel peak positions (``--subvoxel-peaks``), moves every proposal, so those settings are
chosen again on the validation set by the same grid and rule, and a copy of the re-ranker file is
written with them: the same weights (its ``weights_sha256`` is unchanged), the new settings,
``proposal_positions`` telling the app which proposals they were chosen for, and the headline
figures of the re-calibrated cascade. The app then runs the changed cascade as it runs any
re-ranker file. Measure the copy against the original with ``evaluate_cascade --against``.

    python -m training.engine.recalibrate --subvoxel-peaks --val-data data/val/annotations.csv \\
        --test-data data/test/annotations.csv --out runs/recalibrated/nodeview-reranker.onnx
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from nodeview.core.detect.detector import Detector
from training.engine import evaluate_cascade as ec
from training.engine import train_reranker as tr

#: metadata the copy replaces (everything else, the weights among it, is kept)
REPLACED = (
    "version",
    "keep",
    "rerank_weight",
    "cube_weight",
    "operating_threshold",
    "operating_fp_per_scan",
    "proposal_positions",
    "metrics",
    "calibration",
)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resources/models/nodeview-nodule.onnx")
    p.add_argument("--reranker", default="auto", help="the re-ranker file to re-calibrate (default: beside the model)")
    p.add_argument("--val-data", required=True, help="validation annotation CSV (the settings are chosen here)")
    p.add_argument("--test-data", help="held-out annotation CSV (reported in the metadata, never used for a choice)")
    p.add_argument("--subvoxel-peaks", action="store_true", help="proposals with sub-voxel peak positions")
    p.add_argument(
        "--fp-per-scan",
        type=float,
        help="the operating threshold: best validation sensitivity at no more FPs per scan than this "
        "(default: the source file's operating_fp_per_scan)",
    )
    p.add_argument(
        "--cube-weights",
        type=float,
        nargs="+",
        help="the cube weights tried (default: the calibration grid's, train_reranker.GRID)",
    )
    p.add_argument(
        "--keep-rerank",
        action="store_true",
        help="keep the file's re-rank weight and kept count; choose only the cube weight and the threshold",
    )
    p.add_argument("--cache", default="runs/cascade", help="cubes, scores and slice thicknesses (shared)")
    p.add_argument("--out", required=True, help="the re-calibrated copy of the re-ranker file")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    det = Detector(args.model, reranker=args.reranker)
    if det.reranker is None:
        raise SystemExit(f"no re-ranker calibrated for {args.model} beside it; pass --reranker")
    info = det.reranker.info
    cache = Path(args.cache)
    rank_weight = info.rank_score_weight
    search = dict(tr.GRID)
    if getattr(args, "keep_rerank", False):
        search.update(rerank_weight=(info.rerank_weight,), keep=(info.keep,))
    if getattr(args, "cube_weights", None):
        search["cube_weight"] = tuple(args.cube_weights)
    grid = (search["rerank_weight"], int(max(search["keep"])))  # every row the calibration grid can keep
    (records, data, scores), thick = ec.load_part(
        Path(args.val_data), det, args.model, cache, args.no_progress, subvoxel=args.subvoxel_peaks, grid=grid
    )
    logits = scores["cube_logit"]
    fp_per_scan = args.fp_per_scan or float(info.metadata.get("operating_fp_per_scan", "0.5"))
    chosen = tr.calibrate(data, scores, logits, tr.truths_of(records, data), rank_weight, fp_per_scan, search)
    chosen.update(top_k=info.top_k, rank_score_weight=rank_weight)
    results: dict[str, Any] = {"source": info.path, "subvoxel_peaks": args.subvoxel_peaks, "chosen": chosen}
    results["validation"] = tr.report("validation", records, data, scores, logits, chosen, rank_weight, thickness=thick)
    if args.test_data:
        (t_records, t_data, t_scores), t_thick = ec.load_part(
            Path(args.test_data),
            det,
            args.model,
            cache,
            args.no_progress,
            subvoxel=args.subvoxel_peaks,
            grid=((chosen["rerank_weight"],), chosen["keep"]),
        )
        results["test"] = tr.report(
            "test", t_records, t_data, t_scores, t_scores["cube_logit"], chosen, rank_weight, thickness=t_thick
        )
    headline = {
        k: {m: results[k][m] for m in ("cpm", "cpm_ci95", "cpm_nodule_model_alone", "cpm_by_slice")}
        for k in ("validation", "test")
        if k in results
    }
    results["written"] = write_copy(Path(info.path), Path(args.out), chosen, args.subvoxel_peaks, headline)
    results["seconds"] = time.perf_counter() - t0
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    return results


def write_copy(
    source: Path, target: Path, chosen: dict[str, Any], subvoxel: bool, headline: dict[str, Any]
) -> dict[str, Any]:
    """``source`` with the re-calibrated settings in its metadata; checked to load in the app's class."""
    import onnx

    from nodeview.core.detect.reranker import Reranker

    proto = onnx.load(str(source))
    old = {p.key: p.value for p in proto.metadata_props}
    meta = {
        "version": f"{old.get('version', '1')}.{'subvoxel' if subvoxel else 'recalibrated'}",
        "keep": str(chosen["keep"]),
        "rerank_weight": f"{chosen['rerank_weight']:g}",
        "cube_weight": f"{chosen['cube_weight']:g}",
        "operating_threshold": f"{chosen['threshold']:.6g}",
        "operating_fp_per_scan": f"{chosen.get('fp_per_scan', 1.0):g}",
        "proposal_positions": "subvoxel" if subvoxel else "voxel",
        "metrics": json.dumps(headline),
        "calibration": (
            f"re-calibrated by training/engine/recalibrate.py from {source.name} (weights unchanged) for proposals "
            f"with {'sub-voxel' if subvoxel else 'voxel'} peak positions"
        ),
    }
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in REPLACED]
    del proto.metadata_props[:]
    for k, v in kept:
        proto.metadata_props.add(key=k, value=v)
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(target)
    loaded = Reranker(target).info  # the app's own check of the file
    if loaded.subvoxel_peaks != subvoxel or loaded.keep != chosen["keep"]:
        raise RuntimeError(f"{target} does not read back as written")
    return {"path": str(target), "bytes": target.stat().st_size, "metadata": meta}


if __name__ == "__main__":
    result = main(get_args_parser().parse_args())
    print(json.dumps({k: result[k] for k in ("chosen", "seconds")}, indent=1, default=float))
    for name in ("validation", "test"):
        if name in result:
            print(ec.summary_line(name, result[name]))
