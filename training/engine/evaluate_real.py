"""Evaluate the exported detector end to end, as the app runs it, on real-nodule sets and real scans.

Every scan goes through :class:`nodeview.core.detect.detector.Detector` (lungs, proposals, re-ranker,
patches, ResNet-50, fused score, NMS) with ``min_score=0`` and, as in the app, one finding per lesion:
the findings scoring within the detector's segmentation margin of its operating threshold are
segmented and those falling in one lesion merged (``--scores-only`` skips this, as evaluations before
2026-12-04 did; they counted a lesion's fragments as separate findings). The findings (centre, score,
malignancy) are cached per model pair and mode under ``--cache``. For each ``--set`` (transplanted real
LIDC nodules, or any annotations CSV):

* FROC and CPM (LUNA16 rules, :mod:`training.evaluation.metrics`) with a 95 % bootstrap interval (scans
  resampled);
* at the operating threshold: sensitivity overall, by size (3-6, 6-10, >= 10 mm) and by texture
  (ground-glass, part-solid, solid), false positives per scan;
* malignancy AUC with a 95 % bootstrap interval (nodules resampled) over the nodules a finding
  hits, the finding's ``malignancy`` against the readers' label (rating >= 4 malignant, <= 2
  benign, 3 left out);
* by background (``by_background``, when the set's folder has the ``transplants.csv`` of
  :mod:`training.data.make_transplants`): CPM, sensitivity and false positives per scan on the
  LIDC-IDRI-0002 slabs, the A0001 slabs and the synthetic chests apart. The two real patients'
  anatomy is in every split (only the nodules are split by patient), so a model trained on the
  training transplants has seen those backgrounds' false-positive sites; the synthetic chests of
  each split are new anatomy;
* ``recall_any_score``: the share of nodules some finding hits at any score (the proposals, the
  re-ranker's kept ones and NMS together: what caps the sensitivity);
* with ``--against-model``: the other detector's CPM on the same scans and the paired bootstrap
  interval of the difference. ``--against-cache DIR`` reads the other cascade's findings from an
  earlier run's cache (``DIR/NAME/<scan>.json``, same mode) instead of running it: the way to compare
  two proposal rankers, which are one bundled file rather than a model argument (run the old one first).

The operating threshold is ``--threshold``, or chosen on the set named by ``--choose-on`` (the
highest sensitivity at no more than ``--fp-per-scan`` false positives per scan) and applied
unchanged to every other set; default: the model's own. ``--real-ct`` adds the two real scans:
LIDC-IDRI-0002 (its readers' nodule found? false positives, LUNA16's way: a finding on a reader's mark of a
nodule < 3 mm or of a non-nodule in the series' LIDC XML is neither a hit nor a false positive) and both kernels of
Lung-PET-CT-Dx-A0001 (the boxed tumour found? false positives outside the box).

    python -m training.engine.evaluate_real --set val=data/real-val/annotations.csv --choose-on val \\
        --real-ct ../shared/data/real-ct --out training/results/real-val-shipped.json
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from nodeview.core.detect.detector import Detector, file_sha256
from nodeview.core.detect.models import proposal_ranker_path
from nodeview.core.io.study import open_study
from training.data.annotations import ScanRecord, read_records_csv
from training.data.lidc_xml import IRRELEVANT_RADIUS_MM, lidc_irrelevant_marks, near_any
from training.evaluation.metrics import (
    auc_bootstrap,
    cpm,
    cpm_difference_bootstrap,
    froc,
    froc_bootstrap,
    nodule_hits,
    operating_point,
)

SIZE_BINS = (("3-6 mm", 3.0, 6.0), ("6-10 mm", 6.0, 10.0), (">=10 mm", 10.0, np.inf))
KINDS = ("ground-glass", "part-solid", "solid")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", action="append", default=[], metavar="NAME=CSV", help="a named annotations CSV")
    p.add_argument("--model", default="resources/models/nodeview-nodule.onnx")
    p.add_argument("--reranker", default="auto")
    p.add_argument("--against-model", help="another nodule model: paired CPM difference on every set")
    p.add_argument("--against-reranker", default="auto")
    p.add_argument(
        "--against-cache", help="the other cascade's cached findings (DIR/NAME/<scan>.json of an earlier run)"
    )
    p.add_argument("--threshold", type=float, help="operating threshold (default: chosen or the model's own)")
    p.add_argument("--choose-on", help="set name on which the threshold is chosen")
    p.add_argument("--fp-per-scan", type=float, default=1.0)
    p.add_argument("--real-ct", help="folder with LIDC-IDRI-0002 (+ readers CSV) and Lung-PET-CT-Dx-A0001")
    p.add_argument("--min-diameter", type=float, default=3.0)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cache", default="runs/evalreal")
    p.add_argument(
        "--scores-only",
        action="store_true",
        help="no segmentation, no lesion grouping (the candidates after NMS, as evaluations before 2026-12-04)",
    )
    p.add_argument("--out", help="results JSON")
    return p


# ---------------------------------------------------------------------------------------------
def _key(det: Detector) -> str:
    """The cache key: the nodule model, the re-ranker and the proposal ranker's weights (all three
    change the findings)."""
    rr = det.reranker.info.path if det.reranker is not None else ""
    ranker = file_sha256(proposal_ranker_path())[:8]
    return file_sha256(det.info.path)[:12] + ("-" + file_sha256(rr)[:8] if rr else "-none") + "-p" + ranker


def cached_predictions(records: list[ScanRecord], folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Findings of every scan from an earlier run's cache folder (all scans must be there)."""
    missing = [r.scan_id for r in records if not (folder / f"{r.scan_id}.json").is_file()]
    if missing:
        raise SystemExit(f"--against-cache: {len(missing)} scans missing in {folder} (e.g. {missing[0]})")
    return {r.scan_id: json.loads((folder / f"{r.scan_id}.json").read_text())["findings"] for r in records}


def detect_scan(det: Detector, path: str, cache: Path, lesions: bool = True) -> dict[str, Any]:
    """Findings (centre, score, malignancy, diameter) of one scan at min_score 0, cached. With
    ``lesions`` (the app's default) the findings near and above the operating threshold are
    segmented and grouped one per lesion; without, the candidates after NMS (scores only)."""
    if cache.is_file():
        return dict(json.loads(cache.read_text()))
    vol = open_study(path)
    t = time.perf_counter()
    # segment_from=None: the app's own default (SEGMENT_MARGIN_LOGIT below the operating threshold);
    # 2.0 is above every finding score, so nothing is segmented or grouped
    res = det.detect(vol, min_score=0.0, segment_from=None if lesions else 2.0)
    out = {
        "seconds": time.perf_counter() - t,
        "findings": [
            {
                "center_xyz_mm": list(f.center_xyz_mm),
                "score": float(f.score),
                "malignancy": float(f.malignancy),
                "diameter_mm": float(f.model_diameter_mm),
            }
            for f in res.findings
        ],
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def predictions(
    det: Detector, records: list[ScanRecord], cache: Path, lesions: bool = True
) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for n, rec in enumerate(records):
        out[rec.scan_id] = detect_scan(det, rec.path, cache / f"{rec.scan_id}.json", lesions)["findings"]
        print(f"  {n + 1}/{len(records)} {rec.scan_id}: {len(out[rec.scan_id])} findings", flush=True)
    return out


def slice_thickness(path: str) -> float:
    """SliceThickness (else the slice step) of a DICOM series folder, from two headers."""
    import pydicom

    files = sorted(p for p in Path(path).rglob("*") if p.is_file())[:2]
    ds = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    if getattr(ds[0], "SliceThickness", None):
        return float(ds[0].SliceThickness)
    return abs(float(ds[1].ImagePositionPatient[2]) - float(ds[0].ImagePositionPatient[2])) if len(ds) > 1 else 0.0


def background_groups(annotations_csv: str | Path) -> dict[str, str]:
    """scan id -> "LIDC-IDRI-0002" / "A0001" / "synthetic" from the set's ``transplants.csv`` (empty if none)."""
    path = Path(annotations_csv).parent / "transplants.csv"
    if not path.is_file():
        return {}
    out = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            bg = row.get("background", "")
            out[row["scan_id"]] = (
                "LIDC-IDRI-0002" if bg.startswith("lidc0002") else "A0001" if bg.startswith("a0001") else "synthetic"
            )
    return out


def _pairs(findings: list[dict[str, Any]]) -> list[tuple[tuple[float, ...], float]]:
    return [(tuple(f["center_xyz_mm"]), f["score"]) for f in findings]


def set_report(
    records: list[ScanRecord],
    preds: dict[str, list[dict[str, Any]]],
    threshold: float,
    min_d: float,
    n_boot: int,
    thickness: bool = True,
    backgrounds: dict[str, str] | None = None,
) -> dict[str, Any]:
    truths = {r.scan_id: [n for n in r.nodules if n.diameter_mm >= min_d] for r in records}
    pairs = {k: _pairs(v) for k, v in preds.items()}
    result = froc(pairs, truths)
    score, at_rates = cpm(result)
    boot = froc_bootstrap(pairs, truths, n_bootstrap=n_boot)
    found: list[tuple[Any, bool]] = []
    fps = 0
    fps_of: dict[str, int] = {}
    mal_y, mal_s, mal_key = [], [], []
    reached = 0
    for r in records:
        nods = truths[r.scan_id]
        hits = nodule_hits(pairs[r.scan_id], nods, threshold)
        fps += hits.n_false_positives
        fps_of[r.scan_id] = hits.n_false_positives
        found.extend(zip(nods, hits.found, strict=True))
        any_hit = nodule_hits(pairs[r.scan_id], nods, -1.0)
        reached += any_hit.n_found
        for k, (n, b) in enumerate(zip(nods, any_hit.best_prediction, strict=True)):
            if b >= 0 and n.malignant is not None:
                mal_y.append(int(n.malignant))
                mal_s.append(preds[r.scan_id][b]["malignancy"])
                mal_key.append(f"{r.scan_id}#{k}")

    def sens(group: list[tuple[Any, bool]]) -> dict[str, Any]:
        k = sum(f for _, f in group)
        return {"n": len(group), "found": k, "sensitivity": (k / len(group)) if group else None}

    by_size = {name: sens([x for x in found if lo <= x[0].diameter_mm < hi]) for name, lo, hi in SIZE_BINS}
    by_kind = {k: sens([x for x in found if x[0].kind == k]) for k in KINDS}
    by_kind["ground-glass+part-solid"] = sens([x for x in found if x[0].kind in ("ground-glass", "part-solid")])
    by_location = {loc: sens([x for x in found if x[0].location == loc]) for loc in ("isolated", "juxta-pleural")}
    by_thickness: dict[str, Any] = {}
    thick = {r.scan_id: slice_thickness(r.path) for r in records} if thickness else {}
    for name, test in (("<= 2.5 mm", lambda t: t <= 2.5), ("> 2.5 mm", lambda t: t > 2.5)):
        ids = [r.scan_id for r in records if thick and test(thick[r.scan_id])]
        if not ids:
            continue
        sub_truth = {k: truths[k] for k in ids}
        sub_found = [x for r in records if r.scan_id in ids for x in found if any(x[0] is n for n in truths[r.scan_id])]
        by_thickness[name] = {
            "scans": len(ids),
            "cpm": float(cpm(froc({k: pairs[k] for k in ids}, sub_truth))[0]) if any(sub_truth.values()) else None,
            "at_threshold": sens(sub_found),
        }
    by_background: dict[str, Any] = {}
    for group in sorted(set((backgrounds or {}).values())):
        ids = [r.scan_id for r in records if (backgrounds or {}).get(r.scan_id) == group]
        if not ids:
            continue
        sub_truth = {k: truths[k] for k in ids}
        sub_found = [x for k in ids for x in found if any(x[0] is n for n in truths[k])]
        by_background[group] = {
            "scans": len(ids),
            "cpm": float(cpm(froc({k: pairs[k] for k in ids}, sub_truth))[0]) if any(sub_truth.values()) else None,
            "at_threshold": sens(sub_found),
            "fps_per_scan": sum(fps_of[k] for k in ids) / len(ids),
        }
    mal: dict[str, Any] = {"n": len(mal_y), "malignant": int(sum(mal_y))}
    if 0 < sum(mal_y) < len(mal_y):
        iv = auc_bootstrap(mal_y, mal_s, n_bootstrap=n_boot)
        mal.update(auc=iv.estimate, ci95=[iv.low, iv.high])
    # per nodule (scan#index among the nodules >= min_d, label, malignancy of the best hit): for paired comparisons
    mal["nodules"] = [[k, y, float(v)] for k, y, v in zip(mal_key, mal_y, mal_s, strict=True)]
    return {
        "scans": len(records),
        "nodules": sum(len(v) for v in truths.values()),
        "cpm": float(score),
        "cpm_ci95": [float(boot.cpm.low), float(boot.cpm.high)],
        "recall_any_score": reached / max(1, sum(len(v) for v in truths.values())),
        "sensitivity_at_fp_rates": {str(k): float(v) for k, v in at_rates.items()},
        "threshold": threshold,
        "sensitivity_at_threshold": sens(found),
        "fps_per_scan_at_threshold": fps / max(1, len(records)),
        "by_size": by_size,
        "by_texture": by_kind,
        "by_location": by_location,
        "by_slice_thickness": by_thickness,
        "by_background": by_background,
        "malignancy_auc": mal,
    }


# ---------------------------------------------------------------------------------------------
def a0001_box_mm(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The union of the VOC tumour boxes of A0001 in LPS mm (min_xyz, max_xyz)."""
    import pydicom

    boxes = {p.stem: p for p in (root / "annotations").glob("*.xml")}
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for f in sorted(root.glob("chest-5mm-kernel-*/**/*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        xml = boxes.get(str(ds.SOPInstanceUID))
        if xml is None:
            continue
        ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
        for b in ET.parse(xml).iter("bndbox"):
            x0, x1 = (float(b.findtext(k) or 0) for k in ("xmin", "xmax"))
            y0, y1 = (float(b.findtext(k) or 0) for k in ("ymin", "ymax"))
            pts = np.array(
                [
                    [ipp[0] + x0 * col_mm, ipp[1] + y0 * row_mm, ipp[2]],
                    [ipp[0] + x1 * col_mm, ipp[1] + y1 * row_mm, ipp[2]],
                ]
            )
            lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
    return lo, hi


def real_scan_report(
    det: Detector, real_ct: Path, threshold: float, cache: Path, lesions: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with open(real_ct / "LIDC-IDRI-0002-readers.csv", newline="") as fh:
        readers = list(csv.DictReader(fh))
    centre = np.mean([[float(r[f"centroid_{a}_mm"]) for a in "xyz"] for r in readers], axis=0)
    radius = max(10.0, 0.5 * float(np.mean([float(r["approx_diameter_mm"]) for r in readers])))
    got = detect_scan(det, str(real_ct / "LIDC-IDRI-0002"), cache / "real-LIDC-IDRI-0002.json", lesions)
    kept = [f for f in got["findings"] if f["score"] >= threshold]
    on = [f for f in kept if np.linalg.norm(np.asarray(f["center_xyz_mm"]) - centre) <= radius]
    marks = lidc_irrelevant_marks(real_ct / "LIDC-IDRI-0002")
    off = [f for f in kept if f not in on]
    irrelevant = [f for f in off if near_any(f["center_xyz_mm"], marks, IRRELEVANT_RADIUS_MM)]
    out["LIDC-IDRI-0002"] = {
        "nodule_found": bool(on),
        "findings_on_nodule": len(on),
        # LUNA16's rule: a finding on a reader's mark of a nodule < 3 mm or of a non-nodule is
        # neither a hit nor a false positive
        "false_positives": len(off) - len(irrelevant),
        "findings_on_small_or_non_nodule_marks": len(irrelevant),
        "findings_off_the_nodule": len(off),
        "best_nodule_score": max((f["score"] for f in on), default=None),
        "malignancy_of_best": max(on, key=lambda f: f["score"])["malignancy"] if on else None,
        "seconds": got["seconds"],
        "hit_radius_mm": radius,
    }
    a1 = real_ct / "Lung-PET-CT-Dx-A0001"
    lo, hi = a0001_box_mm(a1)
    lo, hi = lo - 5.0, hi + 5.0
    for kernel in ("L", "B"):
        got = detect_scan(det, str(a1 / f"chest-5mm-kernel-{kernel}"), cache / f"real-A0001-{kernel}.json", lesions)
        kept = [f for f in got["findings"] if f["score"] >= threshold]
        inside = [
            f
            for f in kept
            if np.all(np.asarray(f["center_xyz_mm"]) >= lo) and np.all(np.asarray(f["center_xyz_mm"]) <= hi)
        ]
        out[f"A0001-{kernel}"] = {
            "tumour_found": bool(inside),
            "findings_in_tumour_box": len(inside),
            "false_positives": len(kept) - len(inside),
            "seconds": got["seconds"],
        }
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    det = Detector(args.model, threads=args.threads or None, reranker=args.reranker)
    other = (
        Detector(args.against_model, threads=args.threads or None, reranker=args.against_reranker)
        if args.against_model
        else None
    )
    lesions = not args.scores_only
    mode = "-scores" if args.scores_only else "-lesions"
    cache = Path(args.cache) / (_key(det) + mode)
    sets = {}
    groups: dict[str, dict[str, str]] = {}
    for spec in args.set:
        name, _, path = spec.partition("=")
        sets[name] = read_records_csv(path)
        groups[name] = background_groups(path)
    preds = {name: predictions(det, recs, cache / name, lesions) for name, recs in sets.items()}
    threshold = args.threshold if args.threshold is not None else det.info.threshold
    chosen_how = "given" if args.threshold is not None else "the model's operating threshold"
    if args.choose_on:
        recs = sets[args.choose_on]
        truths = {r.scan_id: [n for n in r.nodules if n.diameter_mm >= args.min_diameter] for r in recs}
        op = operating_point(froc({k: _pairs(v) for k, v in preds[args.choose_on].items()}, truths), args.fp_per_scan)
        threshold = float(op.threshold)
        chosen_how = f"best sensitivity on {args.choose_on} at <= {args.fp_per_scan} FP/scan"
    results: dict[str, Any] = {
        "model": args.model,
        "model_label": det.info.label,
        "reranker": det.reranker.info.path if det.reranker is not None else None,
        "threshold": threshold,
        "threshold_chosen": chosen_how,
        "findings": "one per lesion (as the app)" if lesions else "scores only (candidates after NMS)",
        "sets": {},
    }
    for name, recs in sets.items():
        rep = set_report(recs, preds[name], threshold, args.min_diameter, args.bootstrap, backgrounds=groups[name])
        if other is not None:
            o_preds = (
                cached_predictions(recs, Path(args.against_cache) / name)
                if args.against_cache
                else predictions(other, recs, Path(args.cache) / (_key(other) + mode) / name, lesions)
            )
            truths = {r.scan_id: [n for n in r.nodules if n.diameter_mm >= args.min_diameter] for r in recs}
            base = {k: _pairs(v) for k, v in o_preds.items()}
            new = {k: _pairs(v) for k, v in preds[name].items()}
            d = cpm_difference_bootstrap(base, new, truths, n_bootstrap=args.bootstrap)
            rep["against"] = {
                "model": args.against_model,
                "cpm_other": float(cpm(froc(base, truths))[0]),
                "difference": d.estimate,
                "ci95": [d.low, d.high],
            }
            o_mal = {"nodules": malignancy_of_nodules(recs, o_preds, args.min_diameter)}
            mal_diff = malignancy_difference(o_mal, rep["malignancy_auc"], args.bootstrap)
            if mal_diff is not None:
                rep["against"]["malignancy_auc"] = mal_diff
        results["sets"][name] = rep
        print(summary(name, rep), flush=True)
    if args.real_ct:
        results["real_scans"] = real_scan_report(det, Path(args.real_ct), threshold, cache / "real", lesions)
        print(json.dumps(results["real_scans"]), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))
    return results


def malignancy_of_nodules(
    records: list[ScanRecord], preds: dict[str, list[dict[str, Any]]], min_d: float
) -> list[list[Any]]:
    """[scan#index, label, malignancy of the best finding on it] for each rated nodule >= min_d a finding reaches."""
    out: list[list[Any]] = []
    for r in records:
        nods = [n for n in r.nodules if n.diameter_mm >= min_d]
        hits = nodule_hits(_pairs(preds[r.scan_id]), nods, -1.0)
        for k, (n, b) in enumerate(zip(nods, hits.best_prediction, strict=True)):
            if b >= 0 and n.malignant is not None:
                out.append([f"{r.scan_id}#{k}", int(n.malignant), float(preds[r.scan_id][b]["malignancy"])])
    return out


def malignancy_difference(base: dict[str, Any], new: dict[str, Any], n_boot: int) -> dict[str, Any] | None:
    """Paired malignancy AUC difference over the nodules both cascades reach (None without both classes)."""
    from training.evaluation.metrics import auc_difference_bootstrap

    b = {k: v for k, _, v in base.get("nodules", [])}
    common = [(k, y, v) for k, y, v in new.get("nodules", []) if k in b]
    ys = [y for _, y, _ in common]
    if not 0 < sum(ys) < len(ys):
        return None
    d = auc_difference_bootstrap(ys, [b[k] for k, _, _ in common], [v for _, _, v in common], n_bootstrap=n_boot)
    return {"nodules": len(common), "difference": d.estimate, "ci95": [d.low, d.high]}


def summary(name: str, r: dict[str, Any]) -> str:
    lo, hi = r["cpm_ci95"]
    s = r["sensitivity_at_threshold"]
    gg = r["by_texture"]["ground-glass+part-solid"]
    mal = r["malignancy_auc"]
    line = (
        f"{name}: {r['scans']} scans, {r['nodules']} nodules, CPM {r['cpm']:.3f} ({lo:.3f}-{hi:.3f}); at "
        f"{r['threshold']:.4f}: sensitivity {s['sensitivity']:.3f}, {r['fps_per_scan_at_threshold']:.2f} FP/scan, "
        f"GGO+part-solid {gg['found']}/{gg['n']}; malignancy AUC {mal.get('auc', float('nan')):.3f}"
    )
    if "against" in r:
        a = r["against"]
        line += f"; against {a['cpm_other']:.3f}: {a['difference']:+.3f} ({a['ci95'][0]:+.3f} to {a['ci95'][1]:+.3f})"
        if "malignancy_auc" in a:
            m = a["malignancy_auc"]
            line += f"; malignancy AUC {m['difference']:+.3f} ({m['ci95'][0]:+.3f} to {m['ci95'][1]:+.3f})"
    return line


if __name__ == "__main__":
    main(get_args_parser().parse_args())
