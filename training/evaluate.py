"""Evaluate a trained model on annotated scans: candidate classification, per-scan FROC/CPM,
malignancy AUC, and plots.

    python -m training.evaluate --checkpoint runs/default/checkpoint.pt --data data/test/annotations.csv \\
        --out runs/default/eval-test [--threshold T | --fp-per-scan 1.0]

Candidates are the app's proposals (``nodeview.core.candidates``), so the FROC measures the whole
pipeline: a nodule the proposals miss is a miss. They are scored after the app's 3D NMS
(``--no-nms``: every proposal), so the FROC counts the findings the app shows. A hit is a
prediction within the nodule radius (LUNA16). The operating threshold is given, or chosen as the
best sensitivity at no more than ``--fp-per-scan`` false positives per scan on this data (use the
validation set to choose it, then pass ``--threshold`` for the test set). Writes
``metrics.json``, ``predictions.csv`` and PNG plots (ROC, FROC, confusion matrix, malignancy ROC). Research use only.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodeview.core.candidates import nms_indices

from .annotations import ScanRecord, read_records_csv
from .dataset import PatchSet, load_or_mine
from .metrics import (
    LUNA16_FP_RATES,
    classification_report,
    cpm,
    froc,
    malignancy_auc,
    nodule_hits,
    operating_point,
    roc_auc,
)
from .model import build_model
from .train import predict


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a NodeView nodule model (research use only)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", action="append", required=True, help="annotation CSV (repeatable)")
    p.add_argument("--cache", default="runs/cache")
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, help="operating threshold on the nodule probability")
    p.add_argument("--fp-per-scan", type=float, default=1.0, help="choose the threshold at this FP rate")
    p.add_argument("--max-candidates", type=int, default=400)
    p.add_argument("--label", default="model")
    p.add_argument(
        "--no-nms",
        action="store_true",
        help="score every proposal; by default only those the app's 3D NMS keeps (the findings it shows)",
    )
    p.add_argument("--quiet", action="store_true")
    return p


def app_nms(ps: PatchSet, scores: dict[str, np.ndarray]) -> np.ndarray:
    """Mask of the proposal candidates that the app's 3D NMS keeps, scan by scan.

    The detector merges candidates closer than the larger predicted radius after scoring
    (:func:`nodeview.core.candidates.nms_indices`); evaluating after the same step measures the
    findings the app shows rather than the raw candidates.
    """
    keep = np.zeros(len(ps), dtype=bool)
    for s in range(len(ps.scan_ids)):
        rows = np.flatnonzero((ps.scan == s) & ps.from_proposal)
        kept = nms_indices(ps.centre_xyz_mm[rows], scores["nodule_prob"][rows], scores["diameter_mm"][rows])
        keep[rows[kept]] = True
    return keep


def evaluate_patchset(
    ps: PatchSet,
    records: list[ScanRecord],
    scores: dict[str, np.ndarray],
    threshold: float | None,
    fp_per_scan: float,
    nms: bool = True,
) -> dict[str, Any]:
    """Metrics for proposal candidates (``from_proposal``) of the given scans, after the app's
    3D NMS unless ``nms`` is False."""
    keep = app_nms(ps, scores) if nms else ps.from_proposal.copy()
    prob = scores["nodule_prob"][keep]
    label = ps.nodule[keep].astype(int)
    scan = ps.scan[keep]
    centres = ps.centre_xyz_mm[keep].astype(float)
    by_id = {r.scan_id: r for r in records}
    preds: dict[str, list[tuple[tuple[float, float, float], float]]] = {sid: [] for sid in ps.scan_ids}
    for c, p, s in zip(centres, prob, scan, strict=True):
        preds[ps.scan_ids[s]].append((tuple(c), float(p)))
    truths = {
        sid: [(n.center_xyz_mm, n.diameter_mm) for n in by_id[sid].nodules if n.diameter_mm >= 3.0]
        for sid in ps.scan_ids
    }
    result = froc(preds, truths)
    score, per_rate = cpm(result)
    if threshold is None:
        threshold = operating_point(result, fp_per_scan).threshold
        if not np.isfinite(threshold):
            threshold = 1.0
    report = classification_report(label, prob, threshold) if len(set(label.tolist())) == 2 else {}
    auc = roc_auc(label, prob) if len(set(label.tolist())) == 2 else float("nan")
    # Malignancy per nodule, as the app reports it: the best-scoring candidate that hits each
    # found nodule (3D NMS keeps that one). Per candidate it is also given, but there a large
    # nodule with many hitting candidates (off-centre ones included) outweighs a small one.
    mal_known = keep & (ps.nodule == 1) & (ps.malignant >= 0)
    mal_auc_candidates = (
        malignancy_auc(ps.malignant[mal_known].tolist(), scores["malignancy_prob"][mal_known])
        if len(set(ps.malignant[mal_known].tolist())) == 2
        else float("nan")
    )
    mal_prob = scores["malignancy_prob"][keep]
    index_of: dict[str, list[int]] = {sid: [] for sid in ps.scan_ids}
    for n, s in enumerate(scan):
        index_of[ps.scan_ids[s]].append(n)
    nodule_labels: list[int] = []
    nodule_scores: list[float] = []
    for sid in ps.scan_ids:
        rated = [n for n in by_id[sid].nodules if n.diameter_mm >= 3.0]
        hits = nodule_hits(preds[sid], truths[sid], 0.0)
        for nod, best in zip(rated, hits.best_prediction, strict=True):
            if best >= 0 and nod.malignant is not None:
                nodule_labels.append(int(nod.malignant))
                nodule_scores.append(float(mal_prob[index_of[sid][best]]))
    mal_auc = malignancy_auc(nodule_labels, nodule_scores) if len(set(nodule_labels)) == 2 else float("nan")
    per_scan = {}
    for sid in ps.scan_ids:
        hits = nodule_hits(preds[sid], truths[sid], threshold)
        per_scan[sid] = {
            "nodules": len(truths[sid]),
            "found": int(sum(hits.found)),
            "false_positives": len(hits.false_positives),
        }
    fps = float(np.mean([v["false_positives"] for v in per_scan.values()])) if per_scan else 0.0
    return {
        "threshold": float(threshold),
        "candidates": int(keep.sum()),
        "scans": len(ps.scan_ids),
        "nodules": int(result.n_nodules),
        "cpm": float(score),
        "sensitivity_at_fp_rates": {str(k): float(v) for k, v in per_rate.items()},
        "fps_per_scan_at_threshold": fps,
        "sensitivity_at_threshold": (sum(v["found"] for v in per_scan.values()) / max(1, result.n_nodules)),
        "candidate_roc_auc": float(auc),
        "candidate_classification": {
            k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in report.items()
        },
        "malignancy_auc": float(mal_auc),
        "malignancy_auc_nodules": len(nodule_labels),
        "malignancy_auc_candidates": float(mal_auc_candidates),
        "per_scan": per_scan,
        "_froc": result,
        "_evaluated": keep,
        "_malignancy_nodules": (nodule_labels, nodule_scores),
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    from .plots import plot_confusion_matrix, plot_froc, plot_malignancy_roc, plot_roc

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [r for path in args.data for r in read_records_csv(path)]
    parts = [load_or_mine(r, args.cache, max_candidates=args.max_candidates)[0] for r in records]
    ps = PatchSet.concat(parts)
    model = build_model(args.checkpoint)
    scores = predict(model, ps, torch.device("cpu"))
    metrics = evaluate_patchset(ps, records, scores, args.threshold, args.fp_per_scan, nms=not args.no_nms)
    metrics["nms"] = not args.no_nms
    result = metrics.pop("_froc")
    nodule_labels, nodule_scores = metrics.pop("_malignancy_nodules")
    keep = metrics.pop("_evaluated")
    label = ps.nodule[keep].astype(int)
    prob = scores["nodule_prob"][keep]
    if len(set(label.tolist())) == 2:
        plot_roc(label, prob, out / "roc.png", label=args.label, title="Candidate ROC (nodule vs not)")
        plot_confusion_matrix(
            metrics["candidate_classification"],
            out / "confusion_matrix.png",
            class_names=("not nodule", "nodule"),
            title=f"Candidates at threshold {metrics['threshold']:.3f}",
        )
    plot_froc(result, out / "froc.png", label=args.label, title="FROC (per scan, LUNA16 hit rule)")
    if len(set(nodule_labels)) == 2:
        plot_malignancy_roc(nodule_labels, nodule_scores, out / "malignancy_roc.png")
    with open(out / "predictions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "scan_id",
                "x_mm",
                "y_mm",
                "z_mm",
                "nodule_prob",
                "malignancy_prob",
                "diameter_mm",
                "is_nodule",
                "from_proposal",
                "evaluated",
            ]
        )
        for i in range(len(ps)):
            c = ps.centre_xyz_mm[i]
            writer.writerow(
                [
                    ps.scan_ids[ps.scan[i]],
                    *(f"{v:.2f}" for v in c),
                    f"{scores['nodule_prob'][i]:.5f}",
                    f"{scores['malignancy_prob'][i]:.5f}",
                    f"{scores['diameter_mm'][i]:.2f}",
                    int(ps.nodule[i]),
                    int(ps.from_proposal[i]),
                    int(keep[i]),
                ]
            )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if not args.quiet:
        print(json.dumps({k: v for k, v in metrics.items() if k != "per_scan"}, indent=2))
    return metrics


__all__ = ["LUNA16_FP_RATES", "evaluate_patchset", "get_args_parser", "main"]

if __name__ == "__main__":
    main(get_args_parser().parse_args())
