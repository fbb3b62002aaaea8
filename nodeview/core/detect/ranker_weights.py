"""Weights of the proposal ranker: a one-hidden-layer MLP over ``candidates.FEATURE_NAMES``.

Learned weights are data, not code: they live in ``resources/models/nodeview-proposal-ranker.json``
(:data:`.models.RANKER_WEIGHTS_FILE`), written by ``python -m training.engine.fit_ranker``. The file holds its
format (:data:`FORMAT`), the feature names, the arrays ``mean``, ``std`` (per feature), ``w1``
(features x hidden), ``b1`` (hidden), ``w2`` (hidden), the scalar ``b2``, a summary of the fit, and
the sha256 of all of that (:func:`weights_sha256`). :func:`read_ranker_weights` checks the format
and the sha256: a file edited by hand or damaged is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import NodeViewError
from .models import proposal_ranker_path

FORMAT = "nodeview.proposal-ranker/1"
REFIT = "python -m training.engine.fit_ranker"


class RankerWeightsError(NodeViewError):
    """The proposal ranker's weights file is missing, of another format, or fails its sha256."""


@dataclass(frozen=True)
class RankerWeights:
    features: tuple[str, ...]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    w1: NDArray[np.float64]
    b1: NDArray[np.float64]
    w2: NDArray[np.float64]
    b2: float
    sha256: str
    summary: dict[str, Any]

    def __call__(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log-odds that each row of ``features`` (n, len(self.features)) is a peak on a nodule."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        return np.asarray(hidden @ self.w2 + self.b2, dtype=np.float64)


def weights_sha256(doc: dict[str, Any]) -> str:
    """sha256 of the document without its ``sha256`` key, as canonical JSON (sorted keys, no spaces)."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def weights_document(
    features: tuple[str, ...],
    mean: NDArray[np.float64],
    std: NDArray[np.float64],
    w1: NDArray[np.float64],
    b1: NDArray[np.float64],
    w2: NDArray[np.float64],
    b2: float,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """The JSON document of a fitted ranker, its sha256 included (arrays rounded to 6 decimals)."""

    def arr(a: NDArray[np.float64]) -> Any:
        return np.round(np.asarray(a, dtype=np.float64), 6).tolist()

    doc: dict[str, Any] = {
        "format": FORMAT,
        "model": "one-hidden-layer MLP: relu(((x - mean) / std) @ w1 + b1) @ w2 + b2 = log-odds",
        "features": list(features),
        "mean": arr(mean),
        "std": arr(std),
        "w1": arr(w1),
        "b1": arr(b1),
        "w2": arr(w2),
        "b2": round(float(b2), 6),
        "summary": summary,
    }
    doc["sha256"] = weights_sha256(doc)
    return doc


def write_ranker_weights(path: str | os.PathLike[str], doc: dict[str, Any]) -> None:
    """Write ``doc`` (from :func:`weights_document`) atomically, one array per line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()]
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    tmp.replace(out)


def read_ranker_weights(path: str | os.PathLike[str]) -> RankerWeights:
    """Load and check a weights file: its format is :data:`FORMAT`, its sha256 matches its content,
    and the arrays have the shapes the features say. Raises :class:`RankerWeightsError`."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RankerWeightsError(f"cannot read the proposal ranker's weights {p}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise RankerWeightsError(f"{p.name}: format {found!r}, this NodeView reads {FORMAT!r}")
    actual = weights_sha256(doc)
    if doc.get("sha256") != actual:
        raise RankerWeightsError(
            f"{p.name}: its content has sha256 {actual[:16]}... but the file records {str(doc.get('sha256'))[:16]}...: "
            f"it was edited or damaged; restore it, or write a new one with `{REFIT}`"
        )
    try:
        features = tuple(str(f) for f in doc["features"])
        n = len(features)
        weights = RankerWeights(
            features=features,
            mean=np.asarray(doc["mean"], dtype=np.float64).reshape(n),
            std=np.asarray(doc["std"], dtype=np.float64).reshape(n),
            w1=np.asarray(doc["w1"], dtype=np.float64).reshape(n, -1),
            b1=np.asarray(doc["b1"], dtype=np.float64).reshape(-1),
            w2=np.asarray(doc["w2"], dtype=np.float64).reshape(-1),
            b2=float(doc["b2"]),
            sha256=actual,
            summary=dict(doc.get("summary", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RankerWeightsError(f"{p.name}: malformed weights ({exc})") from exc
    if not (weights.w1.shape[1] == weights.b1.size == weights.w2.size):
        raise RankerWeightsError(f"{p.name}: hidden sizes disagree (w1 {weights.w1.shape}, b1 {weights.b1.size})")
    return weights


@lru_cache(maxsize=1)
def bundled_ranker_weights() -> RankerWeights:
    """The bundled weights (:func:`.models.proposal_ranker_path`), read and checked once."""
    return read_ranker_weights(proposal_ranker_path())
