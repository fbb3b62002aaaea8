"""The default model's findings on LIDC-IDRI-0002, kept as a golden file (``tests/golden/``).

``tests/test_golden_findings.py`` compares a fresh detection with the golden: the same findings
(centres, diameters, scores, malignancy) to 1e-6, so a refactoring that changes what the app finds
fails. The golden records the sha256 of the bundled nodule model and re-ranker it was made with;
after retraining either (or changing the proposals on purpose), regenerate it with::

    PYTHONPATH=$PWD python -m tests.golden_findings

(reads ``../shared/data/real-ct/LIDC-IDRI-0002``, or the folder given as the first argument) and
commit the new ``tests/golden/lidc-0002-findings.json`` with the reason in the message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "lidc-0002-findings.json"
LIDC_DIR = REPO.parent / "shared" / "data" / "real-ct" / "LIDC-IDRI-0002"
REGENERATE = "PYTHONPATH=$PWD python -m tests.golden_findings"
SCHEMA = "nodeview.golden-findings/1"


def bundled_models() -> dict[str, str]:
    """The sha256 of the bundled nodule model and re-ranker files (the golden's inputs)."""
    from nodeview.core.detect.detector import file_sha256
    from nodeview.core.detect.models import default_model_path
    from nodeview.core.detect.reranker import RERANKER_FILE

    model = Path(default_model_path())
    reranker = model.with_name(RERANKER_FILE)
    return {
        "model_file": model.name,
        "model_sha256": file_sha256(model),
        "reranker_file": reranker.name,
        "reranker_sha256": file_sha256(reranker) if reranker.is_file() else "",
    }


def compute(study: Path = LIDC_DIR) -> dict[str, Any]:
    """Every scored finding (``min_score=0``) of the default model on ``study``, full precision."""
    from nodeview.core.detect.detector import Detector
    from nodeview.core.detect.models import default_model_path
    from nodeview.core.io.study import open_study

    volume = open_study(study)
    detector = Detector(default_model_path())
    result = detector.detect(volume, min_score=0.0)
    return {
        "schema": SCHEMA,
        "regenerate": REGENERATE,
        "study": study.name,
        **bundled_models(),
        "model": detector.info.to_dict(),
        "threshold": detector.info.threshold,
        "n_candidates": result.n_candidates,
        "findings": [
            {
                "center_xyz_mm": list(f.center_xyz_mm),
                "diameter_mm": f.diameter_mm,
                "score": f.score,
                "malignancy": f.malignancy,
                "measured": f.measured,
            }
            for f in result.findings
        ],
    }


def dumps(doc: dict[str, Any]) -> str:
    """The golden as text: one line per finding, so a diff shows which findings changed."""
    head = {k: v for k, v in doc.items() if k != "findings"}
    lines = [json.dumps(f) for f in doc["findings"]]
    text = json.dumps(head, indent=1)[:-2] + ',\n "findings": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    assert json.loads(text) == doc
    return text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    study = Path(args[0]) if args else LIDC_DIR
    if not study.is_dir():
        print(f"golden_findings: no study at {study}", file=sys.stderr)
        return 2
    doc = compute(study)
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(dumps(doc))
    print(f"wrote {GOLDEN.relative_to(REPO)}: {len(doc['findings'])} findings of {doc['model_file']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
