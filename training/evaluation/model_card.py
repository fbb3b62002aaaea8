"""Write the model's metadata JSON (for export) and its model card from measured results.

    python -m training.evaluation.model_card metadata --run runs/default --out runs/default/metadata.json
    python -m training.evaluation.model_card card --run runs/default --onnx resources/models/nodeview-nodule.onnx \\
        --lidc-json runs/default/lidc.json --out resources/models/nodeview-nodule.md

Every number in the card comes from files the pipeline wrote (``data_summary.json``,
``history.json``, ``eval-val/metrics.json``, ``eval-test/metrics.json``, the LIDC detection JSON,
the ONNX metadata), so the card cannot drift from what was measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from nodeview.core.detect.scores import SCORE_TEMPERATURE, score_from_probability
from training.data.lidc_xml import IRRELEVANT_RADIUS_MM, find_lidc_xml, lidc_irrelevant_marks, near_any

#: The bundled demo (LIDC-IDRI-0002 with its readers' XML): LUNA16's irrelevant findings for the card.
DEMO_LIDC = Path(__file__).resolve().parents[2] / "resources" / "demo" / "LIDC-IDRI-0002"
LIDC_CONSENSUS_XYZ = (59.8, 71.6, -104.0)  # 071.xml consensus of 2 readers (training/data/lidc_xml.py)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def metadata(run: Path, version: str = "1") -> dict[str, Any]:
    val = _load(run / "eval-val" / "metrics.json")
    test = _load(run / "eval-test" / "metrics.json")
    data = _load(run / "data_summary.json")
    weight = float(val.get("rank_weight", 0.0))
    return {
        "version": version,
        "operating_threshold": round(val["threshold"], 4),
        "operating_point": "highest validation sensitivity at <= 1 false positive per scan",
        # nodeview.core.detect.candidates.fuse_scores: the finding score the threshold applies to
        "rank_score_weight": str(weight),
        "score": (
            f"sigmoid(logit(nodule_prob) + {weight} x proposal rank log-odds), weight chosen on validation by CPM"
            if weight
            else "nodule_prob"
        ),
        "training_data": json.dumps({"train": data["train"], "validation": data["validation"]}),
        # cpm_by_slice (when evaluated): the app quotes it when it warns about thick slices
        "metrics_test": json.dumps(
            {
                k: test[k]
                for k in (
                    "cpm",
                    "sensitivity_at_fp_rates",
                    "candidate_roc_auc",
                    "malignancy_auc",
                    "fps_per_scan_at_threshold",
                    "sensitivity_at_threshold",
                    "scans",
                    "nodules",
                    "cpm_by_slice",
                )
                if k in test
            }
        ),
        "malignancy_label": "synthetic Lung-RADS-like rule: malignant when risk >= 0.15 (training/data/synth/nodules.py)",
    }


def _fmt(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) and np.isfinite(v) else str(v)


def _metadata_note(meta: dict[str, Any], test: dict[str, Any]) -> list[str]:
    """Say so when the file's metadata holds other figures than this card (a pipeline change after
    export, e.g. how findings are merged, re-measured without re-exporting the same weights)."""
    try:
        exported = json.loads(meta.get("metrics_test", "{}"))
    except ValueError:
        return []
    if "cpm" not in exported or round(float(exported["cpm"]), 3) == round(float(test["cpm"]), 3):
        return []
    lines = [
        "- **Metadata:** the file's `metrics_test` holds the figures measured when it was exported",
        f"  (test CPM {float(exported['cpm']):.3f}). The tables below re-measure the same weights with the",
        f"  current pipeline (test CPM {float(test['cpm']):.3f}). The app quotes the metadata in its",
        "  thick-slice caution.",
    ]
    return lines


def _with_ci(value: Any, interval: Any) -> str:
    """``0.706 (0.609-0.804)``: a figure with its 95 % bootstrap interval when evaluated with one."""
    if isinstance(interval, dict):
        interval = (interval.get("low"), interval.get("high"))
    if not interval or None in interval:
        return _fmt(value)
    return f"{_fmt(value)} ({_fmt(float(interval[0]))}–{_fmt(float(interval[1]))})"


def _interval_lines(test: dict[str, Any]) -> list[str]:
    ci = test.get("cpm_ci95")
    if not ci:
        return []
    return [
        f"The intervals are 95 % percentile bootstraps ({ci['n_bootstrap']} samples): the CPM's resamples the scans,",
        "as the LUNA16 evaluation does, and the malignancy AUC's the nodules. With a few dozen scans they are wide.",
        "Two models scored on the same scans are compared with a paired bootstrap of their difference",
        "(`python -m training.evaluation.compare`), which is much narrower; `training/README.md` gives v3 against v2.",
        "",
    ]


def group_lines(test: dict[str, Any]) -> list[str]:
    """The test set by nodule size, type and location at the operating threshold (``evaluate.py``'s
    ``by_group_at_threshold``): where the misses are."""
    groups = test.get("by_group_at_threshold")
    if not groups:
        return []
    lines = [
        "Test nodules by size, type, location and slice thickness at the operating threshold. *Proposed* means",
        "a candidate lies within the nodule's radius before NMS; *found* means a finding at or above the threshold does:",
        "",
        "| group | nodules | proposed | found | sensitivity |",
        "|---|---|---|---|---|",
    ]
    for key in ("size", "kind", "location", "slice"):
        label = "slice thickness" if key == "slice" else key
        for name, row in groups.get(key, {}).items():
            lines.append(
                f"| {label}: {name} | {row['nodules']} | {row['proposed']} | {row['found']} | {_fmt(row['sensitivity'])} |"
            )
    return [*lines, ""]


def slice_lines(val: dict[str, Any], test: dict[str, Any]) -> list[str]:
    """CPM of thin- and thick-slice scans apart (``evaluate.py``'s ``cpm_by_slice``): LUNA16 kept
    only scans with slices of at most 2.5 mm, so the thin-slice row follows its scan selection."""
    if "cpm_by_slice" not in test:
        return []
    lines = [
        "CPM by slice thickness. LUNA16 kept only scans with slices of at most 2.5 mm; the synthetic sets",
        "also have 5 mm scans, which the headline CPM above includes:",
        "",
        "| set | slices | scans | nodules | CPM (95% CI) | sens @1 FP/scan | sens @8 FP/scan |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in (("validation", val), ("test", test)):
        for group, row in m.get("cpm_by_slice", {}).items():
            rates = row["sensitivity_at_fp_rates"]
            lines.append(
                f"| {name} | {group} | {row['scans']} | {row['nodules']} | {_with_ci(row['cpm'], row.get('cpm_ci95'))} | "
                f"{_fmt(rates['1.0'])} | "
                f"{_fmt(rates['8.0'])} |"
            )
    return [*lines, ""]


def proposal_lines(run: Path) -> list[str]:
    """What the proposals reach (``runs/.../recall-val.json`` from ``training.evaluation.proposal_recall``)."""
    path = run / "recall-val.json"
    if not path.exists():
        return [
            "- **Proposals:** detection sensitivity is capped by NodeView's candidate proposals (not measured here)."
        ]
    s = _load(path)["summary"]
    by_t = ", ".join(f"{k} mm: {v['hits']}/{v['n']}" for k, v in s["thickness_mm"].items())
    by_size = ", ".join(f"{k}: {v['hits']}/{v['n']}" for k, v in s["size"].items())
    return [
        "- **Proposals:** detection sensitivity is capped by NodeView's candidate proposals. On the synthetic",
        f"  validation set they reach {s['all']['hits']}/{s['all']['n']} nodules ({_fmt(s['all']['recall'])}) with"
        f" {s['mean_candidates']:.0f} candidates per scan; by slice thickness {by_t}; by size {by_size}.",
        *_proposer_note(run),
    ]


def _score_lines(meta: dict[str, Any]) -> list[str]:
    """What the finding score is (``rank_score_weight`` in the metadata, see ``fuse_scores``)."""
    weight = float(meta.get("rank_score_weight", 0.0))
    if not weight:
        return [
            f"- **Finding score:** `score = sigmoid(logit(nodule_prob) / {SCORE_TEMPERATURE:g})` (`nodeview.core.detect.scores`)."
        ]
    return [
        f"- **Finding score:** `score = sigmoid((logit(nodule_prob) + {weight:g} × rank) / {SCORE_TEMPERATURE:g})`,"
        " where `rank` is the",
        "  proposal ranker's log-odds for the candidate (`nodeview.core.detect.candidates.fuse_logits`, `nodeview.core.detect.scores`).",
        "  The weight was chosen on validation by CPM. The score orders and thresholds the findings; it is not a",
        "  calibrated probability.",
    ]


def _proposer_note(run: Path) -> list[str]:
    """Which proposer mined the patches of the last training stage (its data summary says)."""
    recall = _fmt(_load(run / "data_summary.json")["validation"]["proposal_recall"])
    if (run / "args.json").exists() and _load(run / "args.json").get("weights", "none") not in ("none", "imagenet"):
        return [
            "  The first training stage used patches mined with an earlier hand-ranked proposer; the fine-tunes",
            f"  used the current proposer's (recall {recall} on validation at the candidates per scan above).",
        ]
    return [
        "  The weights were trained on patches mined with the earlier hand-ranked proposer (400 per scan,",
        f"  recall {recall} on validation); retraining with the current proposer (`reproduce.sh train`) is",
        "  the next step.",
    ]


def training_stages(run: Path) -> list[str]:
    """One line per training stage: a run whose ``--weights`` is another run's file is a fine-tune of it.

    Reads ``args.json`` (written by ``train.py``) and ``history.json`` of each run. A run without
    ``args.json`` (older runs) is described from its history alone.
    """
    args = _load(run / "args.json") if (run / "args.json").exists() else {}
    history = _load(run / "history.json")
    last = history[-1]
    weights = str(args.get("weights", "none"))
    earlier: list[str] = []
    base = Path(weights).parent
    if weights not in ("none", "imagenet") and (base / "history.json").exists() and base.resolve() != run.resolve():
        earlier = training_stages(base)
    what = f"{last['epoch']} epochs"
    if args:
        what += f" of {args['steps_per_epoch']} steps, batch {args['batch_size']}, peak learning rate {args['lr']:g}"
        what += ", from scratch" if weights == "none" else f", fine-tuned from `{weights}`"
        if args.get("hard_negative_fraction", 0) > 0:
            what += (
                f"; {args['hard_negative_fraction']:.0%} of each batch's negatives drawn from the hardest"
                f" {args['hard_pool']:.0%} of {args['mine_subset']} negatives scored at the start of each epoch"
            )
        if args.get("ignore_near_mm", 0) > 0:
            what += f"; negatives within a nodule's radius + {args['ignore_near_mm']:g} mm left out"
        if args.get("positive_weighting") == "nodule":
            what += "; positives drawn so that every nodule weighs the same"
        if args.get("positive_rotations") == "axial":
            what += "; positive copies rotated about the patient z axis only (axial plane kept, as at inference)"
        what += f"; patches from {args['max_candidates']} proposals per scan"
    return [
        *earlier,
        f"- **Training stage {len(earlier) + 1}:** {what}. At its last epoch: training loss"
        f" {_fmt(last['train_loss'])}, validation loss {_fmt(last.get('val_loss', float('nan')))}, validation"
        f" accuracy {_fmt(last.get('val_acc', float('nan')))} at 0.5.",
    ]


def _cascade_row(name: str, m: dict[str, Any]) -> str:
    """A table row of the cascade's figures on one set (``train_reranker.report``)."""
    d = m["paired_difference"]
    return (
        f"| {name} | {m['scans']} | {m['nodules']} | {_with_ci(m['cpm'], m['cpm_ci95'])} |"
        f" {_fmt(m['cpm_nodule_model_alone'])} | {d['estimate']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}) |"
        f" {_fmt(m['sensitivity_at_threshold'])} | {_fmt(m['fps_per_scan_at_threshold'], 2)} |"
    )


def reranker_lines(onnx_path: Path, results_json: Path | None) -> list[str]:
    """The section on the proposal re-ranker beside the model (``training/engine/train_reranker.py``), when
    its file was calibrated for this model; the app then uses its score and threshold."""
    from training.export.onnx import read_metadata

    path = onnx_path.with_name("nodeview-reranker.onnx")
    if not path.exists():
        return []
    rr, meta = read_metadata(path), read_metadata(onnx_path)
    if rr.get("nodule_model_sha256") != meta["weights_sha256"]:
        return []
    lines = [
        "## In the app: with the proposal re-ranker",
        "",
        f"`{path.name}` (version {rr.get('version', '?')}, {path.stat().st_size / 1e3:.0f} kB, `training/engine/train_reranker.py`)"
        " was calibrated for these",
        "weights, so the app uses it (`nodeview.core.detect.reranker`):",
        "",
        f"1. a small 3D CNN scores a {rr['cube_size']}-voxel cube of {rr['cube_spacing_mm']} mm"
        + (
            f" and one of {rr['context_spacing_mm']} mm (the block-averaged volume, for context)"
            if rr.get("context_spacing_mm")
            else ""
        )
        + f" around each of the top {rr['top_k']} proposals (`cube_logit`)"
        + (
            " (the proposals' peak positions refined below the voxel: `proposal_positions` = `subvoxel`)"
            if rr.get("proposal_positions") == "subvoxel"
            else ""
        )
        + ";",
        f"2. the best {rr['keep']} by `rank + {float(rr['rerank_weight']):g} × cube_logit` go to this network;",
        f"3. **finding score:** `score = sigmoid((logit(nodule_prob) + {float(rr['rank_score_weight']):g} × rank +"
        f" {float(rr['cube_weight']):g} × cube_logit) / {SCORE_TEMPERATURE:g})` (`nodeview.core.detect.scores`: the"
        " fused log-odds, tempered so that the top findings do not all read 1.000; a monotonic map, so the"
        " ranking and the operating point are those of the fused probability the file is calibrated in);",
        f"4. **operating threshold:** `score >= {score_from_probability(float(rr['operating_threshold'])):.3f}`"
        f" (fused probability {float(rr['operating_threshold']):.4f}, the file's `operating_threshold`: the highest"
        f" validation sensitivity at no more than {rr.get('operating_fp_per_scan', '?')} false positives per scan).",
        "",
        "The weights and the number kept were chosen on validation by CPM. Without the re-ranker file the app",
        "falls back to this network alone, with the score and threshold above.",
        "",
    ]
    if rr.get("calibration"):
        lines += [f"Calibration: {rr['calibration']}.", ""]
    if results_json is not None and results_json.exists():
        res = _load(results_json)
        lines += [
            "| set | scans | nodules | CPM with the re-ranker (95% CI) | this network alone | paired difference (95% CI) |"
            " sensitivity at threshold | FPs/scan at threshold |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in ("validation", "test"):
            if name not in res:
                continue
            lines.append(_cascade_row(name, res[name]))
        if "test" in res:
            sizes = res["test"]["by_size_at_threshold"]
            lines += [
                "",
                "Test nodules at the threshold, by size (proposed: among the candidates this network saw): "
                + "; ".join(
                    f"{k} {sizes[k]['found']}/{sizes[k]['nodules']} found ({sizes[k]['proposed']} proposed)"
                    for k in ("3-5 mm", "5-10 mm", ">= 10 mm")
                    if k in sizes
                )
                + ".",
            ]
        for name in ("validation", "test"):
            slices = res.get(name, {}).get("cpm_by_slice", {})
            if slices:
                lines += [
                    "",
                    f"CPM by slice thickness ({name}; this network alone in brackets): "
                    + "; ".join(
                        f"{k}: {_fmt(v['cpm'])} ({_fmt(v['cpm_nodule_model_alone'])}), {v['scans']} scans"
                        for k, v in slices.items()
                    )
                    + ".",
                ]
        lines += [
            "",
            "The tables below (Results) measure this network alone, as `training/evaluation/evaluate.py` does; the",
            "LIDC-IDRI-0002 figures at their end are the app's, with the re-ranker.",
            "",
        ]
    return lines


def heldout_lines(results_json: Path | None) -> list[str]:
    """The section on more held-out sets (``training/engine/evaluate_cascade.py``), when its results exist."""
    if results_json is None or not results_json.exists():
        return []
    res = _load(results_json)
    lines = [
        "## In the app: more held-out scans",
        "",
        "Measured with `training/engine/evaluate_cascade.py` on the exported files (these weights and the re-ranker,",
        "as the app runs them). Sets of more synthetic scans, from seeds never used for training, generated",
        "after the first test result was known. No weight, setting or threshold of these files was chosen on",
        "them. The `val` sets are fresh validation scans that decided whether proposed changes were adopted,",
        "each by a rule written down before its figures were seen (`val4` adopted this re-ranker; see",
        "`training/README.md`). A set that pools several folders is also shown per folder: 40 scans leave a",
        "wide interval.",
        "",
        "| set | scans | nodules | CPM (95% CI) | this network alone | paired difference (95% CI) |"
        " sensitivity at threshold | FPs/scan at threshold | malignancy AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for name, m in res["sets"].items():
        rows.append((name, m))
        rows += [(f"{name}: {Path(part).parent.name}", p) for part, p in m.get("parts", {}).items()]
    lines += [_cascade_row(name, m) + f" {_fmt(m['malignancy_auc'])} |" for name, m in rows]
    against = [(name, m["against"]) for name, m in res["sets"].items() if "against" in m]
    if against:
        lines += [
            "",
            f"Against the previous re-ranker file (`{Path(against[0][1]['other']).name}` in `"
            f"{Path(against[0][1]['other']).parent}`), paired over the same scans: "
            + "; ".join(
                f"{name} {a['cpm_other']:.3f} → {a['cpm']:.3f}, {a['estimate']:+.3f} ({a['low']:+.3f} to {a['high']:+.3f})"
                for name, a in against
            )
            + ".",
        ]
    lines += [
        "",
        "CPM to four decimals (the project's target: at least 0.85): "
        + "; ".join(f"{name} {m['cpm']:.4f}" for name, m in res["sets"].items())
        + ".",
    ]
    for name, m in res["sets"].items():
        slices = m.get("cpm_by_slice", {})
        if slices:
            lines += [
                "",
                f"CPM by slice thickness ({name}): "
                + "; ".join(f"{k}: {_fmt(v['cpm'])}, {v['scans']} scans" for k, v in slices.items())
                + ".",
            ]
        sizes = m.get("by_size_at_threshold", {})
        if sizes:
            lines += [
                "",
                f"Nodules found at the threshold ({name}; proposed: among the candidates this network saw): "
                + "; ".join(
                    f"{k} {v['found']}/{v['nodules']} ({v['proposed']} proposed)" for k, v in sorted(sizes.items())
                )
                + ".",
            ]
    return [*lines, ""]


def lidc_lines(lidc_json: Path | None, lidc_dir: Path | None = DEMO_LIDC) -> list[str]:
    """The LIDC-IDRI-0002 subsection: the app's findings on it (``nodeview detect --json``); with the
    series' LIDC XML in ``lidc_dir`` (the bundled demo holds it), the false positives by LUNA16's rule too."""
    if not lidc_json or not lidc_json.exists():
        return []
    lines: list[str] = []
    doc = _load(lidc_json)
    findings = doc["findings"]
    near = [f for f in findings if np.linalg.norm(np.subtract(f["center_xyz_mm"], LIDC_CONSENSUS_XYZ)) <= 12.3]
    lines += [
        "### LIDC-IDRI-0002 (the one real scan with a reader-marked nodule)",
        "",
        "The nodule is ground glass. The readers rated its malignancy 4.5 of 5. Its consensus centre is",
        "(59.8, 71.6, -104.0) mm LPS, and its equivalent diameter is 24.6 mm.",
        "",
        f"- At the operating threshold: {len(findings)} finding(s), {len(near)} within the nodule radius.",
        f"- False positives at the operating threshold: {len(findings) - len(near)}.",
    ]
    if lidc_dir is not None and find_lidc_xml(lidc_dir):
        marks = lidc_irrelevant_marks(lidc_dir)
        off = [f for f in findings if f not in near]
        small = [f for f in off if near_any(f["center_xyz_mm"], marks, IRRELEVANT_RADIUS_MM)]
        lines.append(
            f"- Of those, {len(small)} lie within {IRRELEVANT_RADIUS_MM:g} mm of the readers' marks of nodules < 3 mm"
            f" or non-nodules in the series' LIDC XML: {len(off) - len(small)} false positive(s) by LUNA16's rule"
            " (such findings are neither hits nor false positives)."
        )
    all_json = lidc_json.with_name("lidc-all.json")
    if all_json.exists():
        every = _load(all_json)["findings"]  # --min-score 0: every scored candidate after NMS
        ranked = sorted(every, key=lambda f: -f["score"])
        on = [
            (r, f)
            for r, f in enumerate(ranked)
            if np.linalg.norm(np.subtract(f["center_xyz_mm"], LIDC_CONSENSUS_XYZ)) <= 12.3
        ]
        if on:
            r, f = on[0]
            lines.append(
                f"- Best-scoring candidate on the nodule (from `--min-score 0`): score {f['score']:.3f} against the"
                f" threshold {doc['threshold']:.3f}, rank {r + 1} of {len(ranked)}, at {f['center_xyz_mm']} mm,"
                f" {f['diameter_mm']:.1f} mm, {f['type']}, malignancy {f['malignancy']:.2f}."
            )
        else:
            lines.append(f"- No candidate among {len(ranked)} lies within the nodule radius.")
    for f in near[:1]:
        lines.append(
            f"- Found at {f['center_xyz_mm']} mm: score {f['score']:.3f}, diameter {f['diameter_mm']:.1f} mm,"
            f" type {f['type']}, malignancy {f['malignancy']:.2f}."
            + (
                " The low malignancy follows the synthetic rule for ground glass under 30 mm, not the readers."
                if f["malignancy"] < 0.5
                else ""
            )
        )
    return [*lines, ""]


def refresh(
    card_path: Path,
    onnx_path: Path,
    lidc_json: Path | None,
    reranker_results: Path | None = None,
    heldout: Path | None = None,
    lidc_only: bool = False,
) -> str:
    """``card_path``'s text with its app sections made again from new results: the re-ranker and
    the held-out scans (up to "## Training data") and LIDC-IDRI-0002 (up to "## Limits"). The
    ResNet-50's own sections, which need its training run folder, are kept as they are; use this
    when only the re-ranker beside the model changed. ``lidc_only``: the LIDC-IDRI-0002 section only."""
    text = card_path.read_text()

    def replace(text: str, begin: str, end: str, new: list[str]) -> str:
        i = text.index(begin)
        j = text.index(end, i)
        return text[:i] + "\n".join(new) + "\n" + text[j:]

    if not lidc_only:
        app = [*reranker_lines(onnx_path, reranker_results), *heldout_lines(heldout)]
        text = replace(text, "## In the app: with the proposal re-ranker", "## Training data", app)
    return replace(text, "### LIDC-IDRI-0002", "## Limits", lidc_lines(lidc_json))


def card(
    run: Path,
    onnx_path: Path,
    lidc_json: Path | None,
    reranker_results: Path | None = None,
    heldout: Path | None = None,
) -> str:
    from training.export.onnx import read_metadata

    meta = read_metadata(onnx_path)
    val = _load(run / "eval-val" / "metrics.json")
    test = _load(run / "eval-test" / "metrics.json")
    data = _load(run / "data_summary.json")
    lines = [
        f"# Model card: {meta['name']} v{meta['version']}",
        "",
        "> **Research use only. Not a medical device. Its output is not a diagnosis and must not be used for",
        "> clinical decisions.**",
        "",
        "## What it is",
        "",
        f"- **Architecture:** {meta.get('architecture', 'ResNet-50')}, trained from scratch (no ImageNet weights",
        "  could be downloaded).",
        f"- **Input:** 2.5D patches of {meta['patch_size']} px at {meta['patch_spacing_mm']} mm, HU window {meta['hu_window']}",
        "  mapped to [-1, 1]. The patches are three orthogonal planes through each candidate from NodeView's",
        "  proposals.",
        "- **Outputs:**",
        "  - `nodule_prob`: the probability that the candidate is a nodule of at least 3 mm.",
        "  - `malignancy_prob`: the probability of malignancy **as defined by the synthetic label rule** (below).",
        "  - `diameter_mm`.",
        *_score_lines(meta),
        f"- **Operating threshold:** `score >= {score_from_probability(float(meta['operating_threshold'])):.3f}`"
        f" (fused probability {float(meta['operating_threshold']):.4f}, the file's `operating_threshold`). This is"
        " the highest validation sensitivity at no more than 1 false positive per scan.",
        *_metadata_note(meta, test),
        f"- **File:** `{onnx_path.name}`, {onnx_path.stat().st_size / 1e6:.1f} MB. The weights are stored as float16",
        "  and computed in float32. Weights sha256: `" + meta["weights_sha256"] + "`.",
        "",
        *reranker_lines(onnx_path, reranker_results),
        *heldout_lines(heldout),
        "## Training data",
        "",
        "- **Synthetic chest CTs** from `training/data/synth/`:",
        "  - seeds 0–159 for training; validation and test seeds are disjoint;",
        "  - slices of 1–5 mm, noise, several kinds of nodule;",
        "  - solid, part-solid, ground-glass, calcified, spiculated, juxta-pleural and juxta-vascular",
        "    nodules of 3–40 mm.",
        "- **Nodules inserted into real CT:** synthetic nodules inserted into two slabs of LIDC-IDRI-0002 that",
        "  stay at least 20 mm from its own reader-marked nodule. So that nodule was never seen in training.",
        f"- **Training set:** {data['train']['scans']} scans, {data['train']['patches']} patches, of which"
        f" {data['train']['nodule_patches']} are nodule patches (including rotated copies).",
        f"- **Validation set:** {data['validation']['scans']} scans.",
        "- **Malignancy label (synthetic):** a written Lung-RADS-like risk rule from size, type and margin.",
        "  A nodule is labelled malignant when the risk is at least 0.15. The rule calls calcified nodules",
        "  benign and ground glass under 30 mm low-risk. **It is not pathology.** On real data the score",
        '  means "looks like what the rule calls high-risk", nothing more.',
        *training_stages(run),
        "",
        "## Results",
        "",
        "Measured by `training/evaluation/evaluate.py`. Candidates are NodeView's own proposals after the app's 3D NMS,",
        "which merges each lesion's candidates into one finding, so a nodule that the proposals miss counts",
        "as a miss and the false positives are findings the app would list. A hit is a prediction within the",
        "nodule radius (the LUNA16 rule).",
        "",
        "| set | scans | nodules | CPM (95% CI) | sens @1 FP/scan | candidate ROC-AUC | malignancy AUC (95% CI) |"
        " FPs/scan at threshold | sensitivity at threshold |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in (("validation", val), ("held-out synthetic test", test)):
        lines.append(
            f"| {name} | {m['scans']} | {m['nodules']} | {_with_ci(m['cpm'], m.get('cpm_ci95'))} |"
            f" {_fmt(m['sensitivity_at_fp_rates']['1.0'])} | {_fmt(m['candidate_roc_auc'])} |"
            f" {_with_ci(m['malignancy_auc'], m.get('malignancy_auc_ci95'))} | {_fmt(m['fps_per_scan_at_threshold'], 2)} | "
            f"{_fmt(m['sensitivity_at_threshold'])} |"
        )
    rates = ", ".join(f"{k}: {_fmt(v)}" for k, v in test["sensitivity_at_fp_rates"].items())
    lines += [
        "",
        f"Sensitivity of the test set at each FP/scan rate (used for the CPM): {rates}.",
        "",
        *_interval_lines(test),
        *group_lines(test),
        *slice_lines(val, test),
        "Malignancy AUC is per nodule: the malignancy of the best-scoring candidate that hits each found nodule",
        f"({val.get('malignancy_auc_nodules', '?')} validation and {test.get('malignancy_auc_nodules', '?')} test nodules),"
        " as the app reports one finding per nodule. Per candidate it is"
        f" {_fmt(val.get('malignancy_auc_candidates', float('nan')))} (validation) and"
        f" {_fmt(test.get('malignancy_auc_candidates', float('nan')))} (test): off-centre candidates inside large"
        " nodules weigh heavily there.",
        "",
    ]
    lines += lidc_lines(lidc_json)
    lines += [
        "## Limits",
        "",
        "- **Data:** trained on synthetic anatomy plus slabs of one real patient. Performance on real",
        "  screening CT is unknown until it is measured on LUNA16/LIDC (the loaders are in `training/`).",
        *proposal_lines(run),
        "- **Malignancy:** the malignancy score reflects a synthetic rule, not histology.",
        "- **Sizes:** sizes and volumes come from a threshold segmentation around the finding. Check them",
        "  on the images.",
        "",
        "Reproduce: `bash training/reproduce.sh all` (see `training/README.md`).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["metadata", "card", "refresh"], help="refresh: the app sections of the --out card")
    p.add_argument("--run", type=Path, default=Path("runs/default"))
    p.add_argument("--onnx", type=Path)
    p.add_argument("--lidc-json", type=Path)
    p.add_argument("--reranker-results", type=Path, help="training/engine/train_reranker.py results.json (card only)")
    p.add_argument("--heldout", type=Path, help="training/engine/evaluate_cascade.py results (card only)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--lidc-only", action="store_true", help="refresh: the LIDC-IDRI-0002 section only")
    p.add_argument("--model-version", default="1", help="the model's version in its metadata (metadata only)")
    args = p.parse_args()
    if args.what == "metadata":
        text = json.dumps(metadata(args.run, args.model_version), indent=2)
    elif args.what == "refresh":
        text = refresh(args.out, args.onnx, args.lidc_json, args.reranker_results, args.heldout, args.lidc_only)
    else:
        text = card(args.run, args.onnx, args.lidc_json, args.reranker_results, args.heldout)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text)
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
