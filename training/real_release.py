"""Package a nodule model fine-tuned on real nodules: its ONNX metadata and a re-ranker bound to it.

The app uses the re-ranker beside the nodule model only when the re-ranker's
``nodule_model_sha256`` names that model's ``weights_sha256``, and then takes the operating
threshold from the re-ranker. So a new nodule model needs a copy of the shipped re-ranker (same
weights and cascade settings: keep, re-rank weight, cube weight, rank weight) bound to it, with
the operating threshold chosen for the new model on the real validation patients.

    python -m training.real_release metadata --run runs/real --source resources/models/nodeview-nodule.onnx \\
        --out runs/real/metadata.json
    python -m training.real_release bind --model runs/real/nodeview-nodule.onnx \\
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
    from training.export_onnx import read_metadata

    old = read_metadata(source)
    keep = ("operating_threshold", "operating_point", "rank_score_weight", "score")
    meta: dict[str, Any] = {k: old[k] for k in keep if k in old}
    meta["version"] = version
    meta["malignancy_label"] = MALIGNANCY_LABEL
    summary = run / "data_summary.json"
    if summary.is_file():
        meta["training_data"] = json.loads(summary.read_text())
    meta["training"] = (
        "fine-tuned from the shipped version-3 ONNX weights (training/onnx_weights.py, BatchNorm frozen) on real "
        "LIDC nodules transplanted into real and synthetic chest CT (training/transplant.py, make_transplants.py); "
        "patient split training/splits/lidc-nodules-split.csv"
    )
    return meta


def bind(model: Path, reranker: Path, threshold: float, fp_per_scan: float, out: Path) -> dict[str, str]:
    """A copy of ``reranker`` bound to ``model`` with ``threshold``; read back by the app's classes."""
    import onnx

    from nodeview.core.detector import Detector
    from training.export_onnx import read_metadata

    sha = read_metadata(model)["weights_sha256"]
    proto = onnx.load(str(reranker))
    new = {
        "nodule_model_sha256": sha,
        "operating_threshold": f"{threshold:.6g}",
        "operating_fp_per_scan": f"{fp_per_scan:g}",
        "calibration": (
            f"{reranker.name} (weights and cascade settings unchanged) bound to nodule model {sha[:12]}; operating "
            f"threshold: best sensitivity on the real validation patients at <= {fp_per_scan:g} FP/scan"
        ),
    }
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in new]
    del proto.metadata_props[:]
    for k, v in [*kept, *new.items()]:
        proto.metadata_props.add(key=k, value=v)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    det = Detector(model, reranker=out)
    if det.reranker is None or abs(det.info.threshold - float(new["operating_threshold"])) > 1e-9:
        raise RuntimeError(f"{out} does not bind to {model}")
    return new


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m training.real_release", description=__doc__.splitlines()[0])
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
    args = p.parse_args(argv)
    if args.what == "metadata":
        meta = metadata(args.run, args.source, args.model_version)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(meta, indent=1))
        return meta
    return bind(args.model, args.reranker, args.threshold, args.fp_per_scan, args.out)


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=str)[:2000])
