"""Shared basics of the synthetic generator: array types, HU constants and small painting helpers."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

AIR_HU = -1000.0
HU_MIN, HU_MAX = -1024.0, 3071.0

# ================================================================================================
# Small array helpers
# ================================================================================================
def _soft(d: NDArray[np.floating], w: float) -> F32:
    """Occupancy 0-1 from a signed distance in mm (positive outside), a ramp of width ``w``."""
    out = np.asarray(d, dtype=np.float32) * np.float32(-1.0 / w)
    out += np.float32(0.5)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _paint(dst: F32, occ: NDArray[np.floating], hu: float | NDArray[np.floating]) -> None:
    """Painter's compositing in place: ``dst = dst + occ * (hu - dst)``."""
    dst += occ * (np.asarray(hu, dtype=np.float32) - dst)


def _smoothstep(e0: float, e1: float, x: NDArray[np.floating] | float) -> NDArray[np.float64]:
    u = np.clip((np.asarray(x, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return np.asarray(u * u * (3.0 - 2.0 * u))


def _ellipse_d(u: NDArray[np.floating], v: NDArray[np.floating], a: object, b: object) -> NDArray[np.float32]:
    """Approximate signed distance (mm) to an axis-aligned ellipse with semi-axes a, b (scalars or
    arrays broadcasting with u, v)."""
    a32 = np.maximum(np.asarray(a, dtype=np.float32), np.float32(1e-3))
    b32 = np.maximum(np.asarray(b, dtype=np.float32), np.float32(1e-3))
    rho = np.sqrt((np.asarray(u, np.float32) / a32) ** 2 + (np.asarray(v, np.float32) / b32) ** 2)
    return np.asarray((rho - np.float32(1.0)) * np.minimum(a32, b32), dtype=np.float32)
