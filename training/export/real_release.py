"""Package a nodule model fine-tuned on real nodules: its ONNX metadata and a re-ranker bound to it.

The app uses the re-ranker beside the nodule model only when the re-ranker's
``nodule_model_sha256`` names that model's ``weights_sha256``, and then takes the operating
threshold from the re-ranker. So a new nodule model needs a copy of the shipped re-ranker (same
weights and cascade settings: keep, re-rank weight, cube weight, rank weight) bound to it, with
the operating threshold chosen for the new model on the real validation patients.

    python -m training.export.real_release metadata --run runs/real --source resources/models/nodeview-nodule.onnx \\
        --out runs/real/metadata.json
    python -m training.export.real_release bind --model runs/real/nodeview-nodule.onnx \\
        --reranker resources/models/nodeview-reranker.onnx --threshold 0.97 --fp-per-scan 1 \\
        --out runs/real/nodeview-reranker.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

MALIGNANCY_LABEL = (
    "LIDC-IDRI readers' max-voting malignancy rating (1-5) of the real nodules: >= 4 malignant, <= 2 benign, "
    "3 (indeterminate) left out of the malignancy loss. The score estimates the readers' consensus of suspicion, "
    "not pathology."
)


def metadata(run: Path, source: Path, version: str) -> dict[str, Any]:
    """The shipped model's scoring keys, with this run's version, data and malignancy meaning."""
    from training.export.onnx import read_metadata

    old = read_metadata(source)
    keep = ("operating_threshold", "operating_point", "rank_score_weight", "score")
    meta: dict[str, Any] = {k: old[k] for k in keep if k in old}
    meta["version"] = version
    meta["malignancy_label"] = MALIGNANCY_LABEL
    summary = run / "data_summary.json"
    if summary.is_file():
        meta["training_data"] = json.loads(summary.read_text())
    packed = run / "history.json"  # a train_packed run: its data counts and the validation step it kept
    if packed.is_file() and not summary.is_file():
        h = json.loads(packed.read_text())
        keys = ("steps", "stopped_at_time_limit", "train_patches", "train_positives", "train_nodules", "val_patches")
        meta["training_data"] = {k: h[k] for k in keys if k in h}
        meta["training_data"]["kept_step"] = h.get("best_step")
        meta["training_data"]["kept_step_val_proxy"] = h.get("best_val")
    meta["training"] = (
        "fine-tuned from the shipped version-3 ONNX weights (training/models/onnx_weights.py, BatchNorm frozen) "
        "on real LIDC nodules transplanted into real and synthetic chest CT (training/data/transplant.py, "
        "make_transplants.py); "
        "patient split training/splits/lidc-nodules-split.csv"
    )
    return meta


def bind(
    model: Path,
    reranker: Path,
    threshold: float,
    fp_per_scan: float,
    out: Path,
    version: str = "",
    calibration: str = "",
    top_k: int = 0,
) -> dict[str, str]:
    """A copy of ``reranker`` bound to ``model`` with ``threshold``; read back by the app's classes.

    ``threshold`` is in finding-score units (what ``evaluate_real`` reports and chooses); the file
    stores the fused probability it stands for (:mod:`nodeview.core.detect.scores`). ``version`` and
    ``calibration`` replace those metadata entries when given; ``top_k`` (when > 0) the number of
    proposals the re-ranker's CNN looks at (its ``keep`` best still go to the nodule model)."""
    import onnx

    from nodeview.core.detect.detector import Detector
    from nodeview.core.detect.scores import logit_from_score, sigmoid
    from training.export.onnx import read_metadata

    sha = read_metadata(model)["weights_sha256"]
    proto = onnx.load(str(reranker))
    fused_prob = float(sigmoid(logit_from_score(threshold)))
    new = {
        "nodule_model_sha256": sha,
        "operating_threshold": f"{fused_prob:.12g}",
        "operating_fp_per_scan": f"{fp_per_scan:g}",
        "calibration": (
            f"{reranker.name} (weights and cascade settings unchanged) bound to nodule model {sha[:12]}; operating "
            f"threshold: best sensitivity on the real validation patients at <= {fp_per_scan:g} FP/scan"
        ),
    }
    if calibration:
        new["calibration"] = calibration
    if version:
        new["version"] = version
    if top_k > 0:
        new["top_k"] = str(int(top_k))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in new]
    del proto.metadata_props[:]
    for k, v in [*kept, *new.items()]:
        proto.metadata_props.add(key=k, value=v)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    det = Detector(model, reranker=out)
    if det.reranker is None or abs(det.info.threshold - threshold) > 1e-6:
        raise RuntimeError(f"{out} does not bind to {model}")
    if top_k > 0 and det.reranker.info.top_k != top_k:
        raise RuntimeError(f"{out} reads back top_k {det.reranker.info.top_k}, not {top_k}")
    return new


def _f(v: Any, d: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{d}f}"


def _row(name: str, r: dict[str, Any]) -> str:
    s = r["sensitivity_at_threshold"]
    size = r["by_size"]
    tex = r["by_texture"]
    mal = r["malignancy_auc"]
    auc = f"{_f(mal.get('auc'))} ({_f(mal['ci95'][0])}–{_f(mal['ci95'][1])})" if "auc" in mal else "n/a"
    cells = [
        name,
        str(r["scans"]),
        str(r["nodules"]),
        f"{_f(r['cpm'])} ({_f(r['cpm_ci95'][0])}–{_f(r['cpm_ci95'][1])})",
        f"{s['found']}/{s['n']} ({_f(s['sensitivity'])})",
        f"{r['fps_per_scan_at_threshold']:.2f}",
        *(f"{size[k]['found']}/{size[k]['n']}" for k in ("3-6 mm", "6-10 mm", ">=10 mm")),
        *(f"{tex[k]['found']}/{tex[k]['n']}" for k in ("ground-glass", "part-solid", "solid")),
        auc,
        _f(r.get("recall_any_score")),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| set | scans | nodules | CPM (95% CI) | found at threshold | FPs/scan | 3-6 mm | 6-10 mm | >= 10 mm "
    "| ground-glass | part-solid | solid | malignancy AUC (95% CI) | reached at any score |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def results_table(results: list[tuple[str, Path]]) -> str:
    """Markdown rows from ``evaluate_real`` results files: (label, path) each; every set in a file."""
    lines = [HEADER]
    for label, path in results:
        doc = json.loads(Path(path).read_text())
        for name, r in doc["sets"].items():
            lines.append(_row(f"{label} {name}" if label else name, r))
    return "\n".join(lines)


def real_scan_lines(label: str, path: Path) -> str:
    doc = json.loads(Path(path).read_text())
    rs = doc.get("real_scans")
    if not rs:
        return ""
    lidc = rs["LIDC-IDRI-0002"]
    parts = [
        f"{label} at `score >= {doc['threshold']:.4f}`: LIDC-IDRI-0002 nodule "
        f"{'found' if lidc['nodule_found'] else 'missed'} ({lidc['findings_on_nodule']} finding(s) on it), "
        f"{lidc['false_positives']} false positive(s)"
    ]
    for k in ("L", "B"):
        a = rs[f"A0001-{k}"]
        parts.append(
            f"A0001 kernel {k}: tumour {'found' if a['tumour_found'] else 'missed'}, "
            f"{a['false_positives']} false positive(s)"
        )
    return "; ".join(parts) + "."


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m training.export.real_release", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("metadata")
    m.add_argument("--run", type=Path, required=True)
    m.add_argument("--source", type=Path, default=Path("resources/models/nodeview-nodule.onnx"))
    m.add_argument("--model-version", default="4")
    m.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("bind")
    b.add_argument("--model", type=Path, required=True)
    b.add_argument("--reranker", type=Path, default=Path("resources/models/nodeview-reranker.onnx"))
    b.add_argument("--threshold", type=float, required=True)
    b.add_argument("--fp-per-scan", type=float, default=1.0)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--version", default="", help="the bound file's version (default: the source's)")
    b.add_argument("--calibration", default="", help="the bound file's calibration note (default: generated)")
    b.add_argument("--top-k", type=int, default=0, help="proposals the re-ranker looks at (default: the source's)")
    t = sub.add_parser("table", help="markdown table of evaluate_real results (model card, README)")
    t.add_argument("results", nargs="+", metavar="LABEL=JSON")
    args = p.parse_args(argv)
    if args.what == "table":
        pairs = [(lab, Path(f)) for lab, _, f in (r.partition("=") for r in args.results)]
        print(results_table(pairs))
        for lab, f in pairs:
            line = real_scan_lines(lab, f)
            if line:
                print("\n" + line)
        return {}
    if args.what == "metadata":
        meta = metadata(args.run, args.source, args.model_version)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(meta, indent=1))
        return meta
    return bind(
        args.model,
        args.reranker,
        args.threshold,
        args.fp_per_scan,
        args.out,
        args.version,
        args.calibration,
        args.top_k,
    )


if __name__ == "__main__":
    out = main()
    if out:
        print(json.dumps(out, indent=1, default=str)[:2000])
