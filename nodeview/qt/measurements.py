"""Measurements a reader makes on a slice: distance, angle and ellipse ROI (mean/SD HU, area).

Each measurement belongs to one view and one slice, and lives in screen millimetres of that view
(:mod:`nodeview.core.views`), so it is shown only on its slice and reads the same at any zoom.
:class:`MeasurementStore` keeps them with an undo stack (add and delete are both undoable).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QObject, Signal

from ..core.views import ViewKind, ViewPlane

DISTANCE, ANGLE, ELLIPSE = "distance", "angle", "ellipse"
KINDS = (DISTANCE, ANGLE, ELLIPSE)
Point = tuple[float, float]


@dataclass(frozen=True)
class Measurement:
    """One measurement. ``points_mm`` are (u, v) screen mm of its view: 2 for a distance (ends),
    3 for an angle (arm end, vertex, arm end), 2 for an ellipse (corners of its bounding box)."""

    id: int
    kind: str
    view: ViewKind
    slice_index: int
    points_mm: tuple[Point, ...]
    text: str

    def describe(self) -> str:
        return f"{self.view.value} slice {self.slice_index + 1}: {self.kind} {self.text}"


def distance_mm(points: tuple[Point, ...]) -> float:
    (u0, v0), (u1, v1) = points[:2]
    return math.hypot(u1 - u0, v1 - v0)


def angle_deg(points: tuple[Point, ...]) -> float:
    """The angle at the vertex (the second point) between the two arms, 0-180 degrees."""
    (ua, va), (uv, vv), (ub, vb) = points[:3]
    a = (ua - uv, va - vv)
    b = (ub - uv, vb - vv)
    na, nb = math.hypot(*a), math.hypot(*b)
    if na == 0 or nb == 0:
        return 0.0
    c = (a[0] * b[0] + a[1] * b[1]) / (na * nb)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def ellipse_stats(
    points: tuple[Point, ...], plane: ViewPlane, image_vu: NDArray[np.int16]
) -> tuple[float, float, float, int]:
    """Mean HU, SD HU, area (mm²) and pixel count of the ellipse inscribed in the box ``points``.

    Args:
        points: two corners (u, v) in screen mm.
        plane: the view's plane (pixel size).
        image_vu: the displayed slice at native resolution (rows v, columns u), HU.
    """
    (u0, v0), (u1, v1) = points[:2]
    pu, pv = plane.pixel_mm
    cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
    ru, rv = abs(u1 - u0) / 2, abs(v1 - v0) / 2
    area = math.pi * ru * rv
    if ru <= 0 or rv <= 0:
        return math.nan, math.nan, 0.0, 0
    h, w = image_vu.shape
    c_lo, c_hi = max(0, int((cu - ru) / pu)), min(w, int((cu + ru) / pu) + 1)
    r_lo, r_hi = max(0, int((cv - rv) / pv)), min(h, int((cv + rv) / pv) + 1)
    if c_lo >= c_hi or r_lo >= r_hi:
        return math.nan, math.nan, area, 0
    uu = (np.arange(c_lo, c_hi) + 0.5) * pu
    vv = (np.arange(r_lo, r_hi) + 0.5) * pv
    inside = ((uu[None, :] - cu) / ru) ** 2 + ((vv[:, None] - cv) / rv) ** 2 <= 1.0
    values = image_vu[r_lo:r_hi, c_lo:c_hi][inside].astype(np.float64)
    if values.size == 0:
        return math.nan, math.nan, area, 0
    return float(values.mean()), float(values.std()), area, int(values.size)


class MeasurementStore(QObject):
    """All measurements of the study on screen, with undo (Ctrl+Z) of adds and deletes."""

    sigChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.items: list[Measurement] = []
        self._undo: list[tuple[str, Measurement, int]] = []  # ("add"|"delete", item, list position)
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, m: Measurement) -> None:
        self.items.append(m)
        self._undo.append(("add", m, len(self.items) - 1))
        self.sigChanged.emit()

    def delete(self, measurement_id: int) -> bool:
        for n, m in enumerate(self.items):
            if m.id == measurement_id:
                del self.items[n]
                self._undo.append(("delete", m, n))
                self.sigChanged.emit()
                return True
        return False

    def undo(self) -> bool:
        """Reverse the last add or delete; False when there is nothing to undo."""
        if not self._undo:
            return False
        op, m, pos = self._undo.pop()
        if op == "add":
            self.items = [x for x in self.items if x.id != m.id]
        else:
            self.items.insert(min(pos, len(self.items)), m)
        self.sigChanged.emit()
        return True

    def clear(self) -> None:
        """Forget everything (another study was opened): nothing to undo either."""
        self.items.clear()
        self._undo.clear()
        self.sigChanged.emit()

    def on_slice(self, view: ViewKind, slice_index: int) -> list[Measurement]:
        return [m for m in self.items if m.view == view and m.slice_index == slice_index]
