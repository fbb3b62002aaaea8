"""The finding score: fused log-odds mapped to 0-1 without a plateau at 1 (Qt-free).

The cascade adds log-odds: the ResNet-50's ``logit(nodule_prob)``, the proposal ranker's
``rank_score`` and the re-ranker's ``cube_logit``, each with its weight
(:func:`.candidates.fuse_logits`). The sum of a strong finding is 10-30, and ``sigmoid`` of that
is 0.99995-1.0: stored as float32 or printed with four decimals, the top findings all read
``1.0000`` and their order is lost.

The **finding score** is therefore ``sigmoid(fused log-odds / SCORE_TEMPERATURE)``, computed in
float64: a monotonic map, so the ranking and the operating point are exactly those of the fused
probability the model files are calibrated in (their ``operating_threshold`` metadata is a fused
probability; :func:`score_from_probability` converts it). With a temperature of 4 the shipped
cascade's threshold (fused probability 0.9963, log-odds 5.59) is a finding score of 0.80, and a
finding at log-odds 12 scores 0.953: the top findings spread over 0.8-0.999 instead of crowding
into the last 1e-5. The score orders and thresholds findings; it is not a calibrated probability.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Divides the fused log-odds before the sigmoid (see the module docstring).
SCORE_TEMPERATURE = 4.0
#: ``nodule_prob`` is clipped to [P_CLIP, 1 - P_CLIP] before its logit (a float32 sigmoid saturates).
P_CLIP = 1e-7


def logit(p: ArrayLike) -> NDArray[np.float64]:
    """``log(p / (1 - p))`` in float64, ``p`` clipped to [P_CLIP, 1 - P_CLIP]."""
    q = np.clip(np.asarray(p, dtype=np.float64), P_CLIP, 1.0 - P_CLIP)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def sigmoid(x: ArrayLike) -> NDArray[np.float64]:
    """Overflow-free logistic function in float64."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))), dtype=np.float64)


def score_from_logit(fused_logit: ArrayLike) -> NDArray[np.float64]:
    """The finding score of fused log-odds: ``sigmoid(logit / SCORE_TEMPERATURE)`` (float64)."""
    return sigmoid(np.asarray(fused_logit, dtype=np.float64) / SCORE_TEMPERATURE)


def score_from_probability(fused_prob: float) -> float:
    """A fused probability (a model file's ``operating_threshold``) in finding-score units.

    0 and 1 stay 0 and 1 (a threshold that keeps everything or nothing)."""
    if fused_prob <= 0.0 or fused_prob >= 1.0:
        return float(min(max(fused_prob, 0.0), 1.0))
    return float(score_from_logit(np.log(fused_prob) - np.log1p(-fused_prob)))


def logit_from_score(score: float) -> float:
    """The fused log-odds of a finding score (inverse of :func:`score_from_logit`)."""
    s = min(max(float(score), 1e-300), 1.0 - 1e-16)
    return float(SCORE_TEMPERATURE * (np.log(s) - np.log1p(-s)))


__all__ = ["SCORE_TEMPERATURE", "logit", "logit_from_score", "score_from_logit", "score_from_probability", "sigmoid"]
