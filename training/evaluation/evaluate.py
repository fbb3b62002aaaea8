"""Evaluate a trained model on annotated scans: candidate classification, per-scan FROC/CPM,
malignancy AUC, and plots.

    python -m training.evaluation.evaluate --checkpoint runs/default/checkpoint.pt --data data/test/annotations.csv \\
        --out runs/default/eval-test [--threshold T | --fp-per-scan 1.0]

Candidates are the app's proposals (``nodeview.core.detect.candidates``), so the FROC measures the whole
pipeline: a nodule the proposals miss is a miss. They are scored after the app's 3D NMS
(``--no-nms``: every proposal), so the FROC counts the findings the app shows. A hit is a
prediction within the nodule radius (LUNA16). The operating threshold is given, or chosen as the
best sensitivity at no more than ``--fp-per-scan`` false positives per scan on this data (use the
validation set to choose it, then pass ``--threshold`` for the test set). The score is the model's
``nodule_prob``, or with ``--rank-weight W`` the app's finding score that adds W times the proposal
ranker's log-odds (:func:`nodeview.core.detect.candidates.fuse_scores`); ``--choose-rank-weight`` picks W on
this data (validation) by CPM, like the threshold. Writes
``metrics.json``, ``predictions.csv`` and PNG plots (ROC, FROC, confusion matrix, malignancy ROC).
The CPM (overall and per slice group) and the malignancy AUC come with 95 % percentile-bootstrap
intervals (``--bootstrap`` samples: scans resampled for the CPM as LUNA16 does, nodules for the
AUC); with 24-40 scans they are wide, and they say how far apart two models must be to differ.
Research use only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodeview.core.detect.candidates import fuse_scores, merge_findings
from nodeview.core.detect.detector import SLICE_GROUPS, THIN_SLICE_MAX_MM, slice_group
from nodeview.core.io.study import scan
from training.data.annotations import NoduleAnnotation, ScanRecord, read_records_csv
from training.data.dataset import PatchSet, load_or_mine
from training.evaluation.metrics import (
    LUNA16_FP_RATES,
    FROCBootstrap,
    auc_bootstrap,
    classification_report,
    cpm,
    froc,
    froc_bootstrap,
    malignancy_auc,
    nodule_hits,
    operating_point,
    roc_auc,
)
from training.models.nodule_net import build_model, predict

#: weights tried by ``--choose-rank-weight``
RANK_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a NodeView nodule model (research use only)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", action="append", required=True, help="annotation CSV (repeatable)")
    p.add_argument("--cache", default="runs/cache")
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, help="operating threshold on the finding score (see --rank-weight)")
    p.add_argument("--fp-per-scan", type=float, default=1.0, help="choose the threshold at this FP rate")
    p.add_argument("--max-candidates", type=int, default=400)
    p.add_argument(
        "--rank-weight",
        type=float,
        default=0.0,
        help="weight of the proposal ranker's log-odds in the finding score (0: nodule_prob alone)",
    )
    p.add_argument(
        "--choose-rank-weight",
        action="store_true",
        help=f"choose the rank weight on this data (best CPM of {', '.join(map(str, RANK_WEIGHTS))})",
    )
    p.add_argument("--label", default="model")
    p.add_argument(
        "--no-nms",
        action="store_true",
        help="score every proposal; by default only those the app's 3D NMS keeps (the findings it shows)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap samples for the 95%% intervals of the CPM and malignancy AUC (0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--quiet", action="store_true")
    return p


def finding_score(scores: dict[str, np.ndarray]) -> np.ndarray:
    """The score the app ranks and thresholds findings by: ``score`` when fused, else ``nodule_prob``."""
    return scores.get("score", scores["nodule_prob"])


def with_rank_weight(ps: PatchSet, scores: dict[str, np.ndarray], weight: float) -> dict[str, np.ndarray]:
    """``scores`` plus ``score``, the app's finding score at this rank weight."""
    if weight and np.isnan(ps.rank_score[ps.from_proposal]).any():
        raise ValueError("rank scores are missing: load the patches with need_rank_scores=True")
    return {**scores, "score": fuse_scores(scores["nodule_prob"], ps.rank_score, weight)}


def app_nms(ps: PatchSet, scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The findings the app's 3D NMS makes of the proposal candidates, scan by scan.

    The detector merges each lesion's candidates after scoring
    (:func:`nodeview.core.detect.candidates.merge_findings`); evaluating after the same step measures
    the findings the app shows rather than the raw candidates. Returns the mask of the candidates
    that head a finding and, per row, the centre (mm) of the finding it heads (the merged centre;
    other rows keep their own centre).
    """
    keep = np.zeros(len(ps), dtype=bool)
    centres = ps.centre_xyz_mm.astype(np.float64).copy()
    for s in range(len(ps.scan_ids)):
        rows = np.flatnonzero((ps.scan == s) & ps.from_proposal)
        for m in merge_findings(ps.centre_xyz_mm[rows], finding_score(scores)[rows], scores["diameter_mm"][rows]):
            keep[rows[m.index]] = True
            centres[rows[m.index]] = m.center_xyz_mm
    return keep, centres


#: nodule size groups of :func:`sensitivity_by_group` (mm, lower bound inclusive)
SIZE_GROUPS = ((3.0, 5.0, "3-5 mm"), (5.0, 10.0, "5-10 mm"), (10.0, math.inf, ">= 10 mm"))
#: LUNA16 kept only scans with slices at most this thick (mm); thicker scans are reported apart
#: (the app warns on them: the same constant, and :func:`slice_group` names the two groups)
LUNA16_MAX_SLICE_MM = THIN_SLICE_MAX_MM


def slice_thickness_mm(record: ScanRecord) -> float:
    """The scan's slice thickness from its headers alone (no pixels): DICOM SliceThickness of the
    series ``open_study`` would load, else its slice spacing; for image files (.mhd, .nii) the z
    spacing."""
    source = scan(record.path)
    if source.image_file is not None:
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(source.image_file)
        reader.ReadImageInformation()
        return float(reader.GetSpacing()[2])
    series = source.default_series()
    if series is None:
        raise ValueError(f"{record.scan_id}: no image series found")
    return float(series.slice_thickness_mm or series.spacing_zyx_mm[0])


def size_group(diameter_mm: float) -> str:
    return next(name for lo, hi, name in SIZE_GROUPS if lo <= diameter_mm < hi)


def sensitivity_by_group(
    nodules: list[NoduleAnnotation],
    proposed: list[bool],
    found: list[bool],
    slice_mm: list[float] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per nodule size, type and location (and the slice thickness of its scan, when
    ``slice_mm`` gives it per nodule): how many nodules, how many the proposals reach (a
    candidate within the nodule's radius) and how many are found at the operating threshold."""
    out: dict[str, dict[str, dict[str, float]]] = {"size": {}, "kind": {}, "location": {}}
    if slice_mm is not None:
        out["slice"] = {}
    thickness = slice_mm if slice_mm is not None else [math.nan] * len(nodules)
    for nod, was_proposed, was_found, mm in zip(nodules, proposed, found, thickness, strict=True):
        keys = [("size", size_group(nod.diameter_mm)), ("kind", nod.kind), ("location", nod.location)]
        if slice_mm is not None:
            keys.append(("slice", slice_group(mm)))
        for group, key in keys:
            row = out[group].setdefault(key, {"nodules": 0, "proposed": 0, "found": 0})
            row["nodules"] += 1
            row["proposed"] += int(was_proposed)
            row["found"] += int(was_found)
    for rows in out.values():
        for row in rows.values():
            row["sensitivity"] = row["found"] / row["nodules"]
    out["size"] = {name: out["size"][name] for _, _, name in SIZE_GROUPS if name in out["size"]}
    if "slice" in out:
        out["slice"] = {name: out["slice"][name] for name in SLICE_GROUPS if name in out["slice"]}
    return out


def cpm_by_slice(
    preds: dict[str, list[tuple[tuple[float, float, float], float]]],
    truths: dict[str, list[tuple[tuple[float, float, float], float]]],
    slice_mm: dict[str, float],
) -> dict[str, dict[str, Any]]:
    """FROC/CPM of the scans in each slice-thickness group on their own: ``<= 2.5 mm`` follows the
    LUNA16 protocol's scan selection."""
    out: dict[str, dict[str, Any]] = {}
    for name in SLICE_GROUPS:
        ids = [sid for sid in truths if slice_group(slice_mm[sid]) == name]
        if not ids:
            continue
        result = froc({sid: preds[sid] for sid in ids}, {sid: truths[sid] for sid in ids})
        score, per_rate = cpm(result)
        out[name] = {
            "scans": len(ids),
            "nodules": int(result.n_nodules),
            "cpm": float(score),
            "sensitivity_at_fp_rates": {str(k): float(v) for k, v in per_rate.items()},
        }
    return out


def evaluate_patchset(
    ps: PatchSet,
    records: list[ScanRecord],
    scores: dict[str, np.ndarray],
    threshold: float | None,
    fp_per_scan: float,
    nms: bool = True,
    slice_mm: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Metrics for proposal candidates (``from_proposal``) of the given scans, after the app's
    3D NMS unless ``nms`` is False. With ``slice_mm`` (scan id to slice thickness) the
    breakdown has a slice-thickness group and ``cpm_by_slice`` the CPM per group."""
    keep, finding_centres = app_nms(ps, scores) if nms else (ps.from_proposal.copy(), ps.centre_xyz_mm.astype(float))
    prob = finding_score(scores)[keep]
    label = ps.nodule[keep].astype(int)
    scan = ps.scan[keep]
    centres = finding_centres[keep]
    by_id = {r.scan_id: r for r in records}
    preds: dict[str, list[tuple[tuple[float, float, float], float]]] = {sid: [] for sid in ps.scan_ids}
    for c, p, s in zip(centres, prob, scan, strict=True):
        preds[ps.scan_ids[s]].append((tuple(c), float(p)))
    rated = {sid: [n for n in by_id[sid].nodules if n.diameter_mm >= 3.0] for sid in ps.scan_ids}  # LUNA16: >= 3 mm
    truths = {sid: [(n.center_xyz_mm, n.diameter_mm) for n in rated[sid]] for sid in ps.scan_ids}
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
        hits = nodule_hits(preds[sid], truths[sid], 0.0)
        for nod, best in zip(rated[sid], hits.best_prediction, strict=True):
            if best >= 0 and nod.malignant is not None:
                nodule_labels.append(int(nod.malignant))
                nodule_scores.append(float(mal_prob[index_of[sid][best]]))
    mal_auc = malignancy_auc(nodule_labels, nodule_scores) if len(set(nodule_labels)) == 2 else float("nan")
    per_scan = {}
    rated_nodules: list[NoduleAnnotation] = []
    proposed: list[bool] = []
    found: list[bool] = []
    nodule_slice_mm: list[float] = []
    for si, sid in enumerate(ps.scan_ids):
        hits = nodule_hits(preds[sid], truths[sid], threshold)
        per_scan[sid] = {
            "nodules": len(truths[sid]),
            "found": int(sum(hits.found)),
            "false_positives": len(hits.false_positives),
        }
        if slice_mm is not None:
            per_scan[sid]["slice_thickness_mm"] = slice_mm[sid]
        # every proposal of the scan, before NMS: does any reach the nodule at all?
        every = [(tuple(c), 1.0) for c in ps.centre_xyz_mm[(ps.scan == si) & ps.from_proposal].astype(float)]
        rated_nodules += rated[sid]
        proposed += nodule_hits(every, truths[sid], 0.0).found
        found += hits.found
        if slice_mm is not None:
            nodule_slice_mm += [slice_mm[sid]] * len(rated[sid])
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
        "by_group_at_threshold": sensitivity_by_group(
            rated_nodules, proposed, found, nodule_slice_mm if slice_mm is not None else None
        ),
        **({"cpm_by_slice": cpm_by_slice(preds, truths, slice_mm)} if slice_mm is not None else {}),
        "per_scan": per_scan,
        "_froc": result,
        "_matched": (preds, truths),
        "_evaluated": keep,
        "_finding_centres": finding_centres,
        "_malignancy_nodules": (nodule_labels, nodule_scores),
    }


def add_intervals(
    metrics: dict[str, Any],
    preds: dict[str, list[tuple[tuple[float, float, float], float]]],
    truths: dict[str, list[tuple[tuple[float, float, float], float]]],
    malignancy: tuple[list[int], list[float]],
    slice_mm: dict[str, float] | None,
    n_bootstrap: int,
    seed: int = 0,
) -> FROCBootstrap:
    """Add 95 % bootstrap intervals to ``metrics`` (from :func:`evaluate_patchset`): ``cpm_ci95``
    (with the interval of each FP rate's sensitivity), ``cpm_by_slice[group]["cpm_ci95"]`` and
    ``malignancy_auc_ci95``. Returns the overall FROC bootstrap (the FROC plot draws its band)."""
    boot = froc_bootstrap(preds, truths, n_bootstrap=n_bootstrap, seed=seed)
    metrics["cpm_ci95"] = {
        "low": boot.cpm.low,
        "high": boot.cpm.high,
        "sensitivity_at_fp_rates": {str(r): [v.low, v.high] for r, v in boot.sensitivity.items()},
        "resampled": "scans",
        "n_bootstrap": boot.n_bootstrap,
        "n_used": boot.n_used,
        "seed": seed,
    }
    for name, row in metrics.get("cpm_by_slice", {}).items():
        if slice_mm is None:
            break
        ids = [sid for sid in truths if slice_group(slice_mm[sid]) == name]
        g = froc_bootstrap({s: preds[s] for s in ids}, {s: truths[s] for s in ids}, n_bootstrap=n_bootstrap, seed=seed)
        row["cpm_ci95"] = [g.cpm.low, g.cpm.high]
    labels, scores = malignancy
    if len(set(labels)) == 2:
        auc = auc_bootstrap(labels, scores, n_bootstrap=n_bootstrap, seed=seed)
        metrics["malignancy_auc_ci95"] = [auc.low, auc.high]
    return boot


def main(args: argparse.Namespace) -> dict[str, Any]:
    from training.evaluation.plots import plot_confusion_matrix, plot_froc, plot_malignancy_roc, plot_roc

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [r for path in args.data for r in read_records_csv(path)]
    fused = bool(args.rank_weight) or args.choose_rank_weight
    parts = [
        load_or_mine(r, args.cache, max_candidates=args.max_candidates, need_rank_scores=fused)[0] for r in records
    ]
    ps = PatchSet.concat(parts)
    slice_mm = {r.scan_id: slice_thickness_mm(r) for r in records}
    model = build_model(args.checkpoint)
    raw = predict(model, ps, torch.device("cpu"))
    weights = RANK_WEIGHTS if args.choose_rank_weight else (args.rank_weight,)
    tried = {}
    for w in weights:
        scores = with_rank_weight(ps, raw, w)
        metrics = evaluate_patchset(
            ps, records, scores, args.threshold, args.fp_per_scan, nms=not args.no_nms, slice_mm=slice_mm
        )
        tried[w] = (metrics["cpm"], scores, metrics)
    weight = max(tried, key=lambda w: (round(tried[w][0], 9), -w))  # best CPM; ties: the smaller weight
    _, scores, metrics = tried[weight]
    metrics["rank_weight"] = float(weight)
    if args.choose_rank_weight:
        metrics["cpm_by_rank_weight"] = {str(w): float(v[0]) for w, v in tried.items()}
    metrics["nms"] = not args.no_nms
    result = metrics.pop("_froc")
    nodule_labels, nodule_scores = metrics.pop("_malignancy_nodules")
    preds, truths = metrics.pop("_matched")
    band = (
        add_intervals(metrics, preds, truths, (nodule_labels, nodule_scores), slice_mm, args.bootstrap, args.seed)
        if args.bootstrap > 0
        else None
    )
    keep = metrics.pop("_evaluated")
    finding_centres = metrics.pop("_finding_centres")
    label = ps.nodule[keep].astype(int)
    prob = finding_score(scores)[keep]
    if len(set(label.tolist())) == 2:
        plot_roc(label, prob, out / "roc.png", label=args.label, title="Candidate ROC (nodule vs not)")
        plot_confusion_matrix(
            metrics["candidate_classification"],
            out / "confusion_matrix.png",
            class_names=("not nodule", "nodule"),
            title=f"Candidates at threshold {metrics['threshold']:.3f}",
        )
    plot_froc(result, out / "froc.png", label=args.label, title="FROC (per scan, LUNA16 hit rule)", band=band)
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
                "rank_score",
                "score",
                "malignancy_prob",
                "diameter_mm",
                "is_nodule",
                "from_proposal",
                "evaluated",
                "finding_x_mm",
                "finding_y_mm",
                "finding_z_mm",
            ]
        )
        for i in range(len(ps)):
            c = ps.centre_xyz_mm[i]
            writer.writerow(
                [
                    ps.scan_ids[ps.scan[i]],
                    *(f"{v:.2f}" for v in c),
                    f"{scores['nodule_prob'][i]:.5f}",
                    f"{ps.rank_score[i]:.4f}",
                    f"{finding_score(scores)[i]:.5f}",
                    f"{scores['malignancy_prob'][i]:.5f}",
                    f"{scores['diameter_mm'][i]:.2f}",
                    int(ps.nodule[i]),
                    int(ps.from_proposal[i]),
                    int(keep[i]),
                    *((f"{v:.2f}" for v in finding_centres[i]) if keep[i] else ("", "", "")),
                ]
            )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if not args.quiet:
        print(json.dumps({k: v for k, v in metrics.items() if k != "per_scan"}, indent=2))
    return metrics


__all__ = [
    "LUNA16_FP_RATES",
    "LUNA16_MAX_SLICE_MM",
    "RANK_WEIGHTS",
    "SIZE_GROUPS",
    "SLICE_GROUPS",
    "add_intervals",
    "cpm_by_slice",
    "evaluate_patchset",
    "finding_score",
    "get_args_parser",
    "main",
    "sensitivity_by_group",
    "slice_thickness_mm",
]

if __name__ == "__main__":
    main(get_args_parser().parse_args())
