"""Match current findings to prior findings through a registration (Qt-free).

Each current centre is mapped into the prior study (:meth:`.registration.Registration.to_prior`)
and compared with every prior centre. A pair is allowed when their distance is within the gate

    gate = GATE_MIN_MM + GATE_PER_DIAMETER * max(current diameter, prior diameter)

(8 mm plus three quarters of the larger diameter: a small nodule must lie close to where it was,
a large one may have grown off-centre). The cost of a pair is its distance divided by its gate,
and the pairs are chosen together by the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`), so two nodules close together cannot both take
the same prior nodule. Pairs outside the gate are never made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..detect.findings import Finding
from .registration import Registration

GATE_MIN_MM = 8.0
GATE_PER_DIAMETER = 0.75
_FORBIDDEN = 1e6


@dataclass(frozen=True)
class Pair:
    """A current finding matched to a prior finding; ``distance_mm`` after registration."""

    current_id: int
    prior_id: int
    distance_mm: float
    gate_mm: float


def gate_mm(current_diameter_mm: float, prior_diameter_mm: float) -> float:
    return GATE_MIN_MM + GATE_PER_DIAMETER * max(float(current_diameter_mm), float(prior_diameter_mm))


def match_findings(current: Sequence[Finding], prior: Sequence[Finding], registration: Registration) -> list[Pair]:
    """The optimal one-to-one pairs within the gate (module docstring), by current id."""
    if not current or not prior:
        return []
    c_in_prior = registration.to_prior(np.asarray([f.center_xyz_mm for f in current], dtype=np.float64))
    p = np.asarray([f.center_xyz_mm for f in prior], dtype=np.float64)
    dist = np.linalg.norm(c_in_prior[:, None, :] - p[None, :, :], axis=-1)
    gates = GATE_MIN_MM + GATE_PER_DIAMETER * np.maximum(
        np.asarray([f.diameter_mm for f in current])[:, None], np.asarray([f.diameter_mm for f in prior])[None, :]
    )
    allowed = dist <= gates
    cost = np.where(allowed, dist / gates, _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    pairs = [
        Pair(current[r].id, prior[c].id, float(dist[r, c]), float(gates[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if allowed[r, c]
    ]
    return sorted(pairs, key=lambda q: q.current_id)


__all__ = ["GATE_MIN_MM", "GATE_PER_DIAMETER", "Pair", "gate_mm", "match_findings"]
