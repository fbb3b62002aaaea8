"""Where a nodule goes: distance to the lung boundary and the placement of isolated,
juxta-pleural and juxta-vascular nodules, in array index space on any Geometry (shared with
:mod:`training.data.insert`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from training.data.synth.arrays import F32, F64
from training.data.synth.nodules import LOCATIONS, _unit_vectors


# ================================================================================================
# Nodule placement (shared with training.data.insert): works in array index space on any Geometry
# ================================================================================================
@dataclass(frozen=True)
class LungDistance:
    """Distance (mm) from inside the lung to the nearest non-lung voxel, on a coarse grid whose
    voxel ``c`` covers array index ``c * stride``. Outside the lung the distance is 0."""

    dist_mm: F32
    stride_zyx: tuple[int, int, int]

    @staticmethod
    def from_mask(
        mask: NDArray[np.bool_], stride_zyx: tuple[int, int, int], spacing_zyx: Sequence[float]
    ) -> LungDistance:
        sampling = [float(spacing_zyx[a]) * stride_zyx[a] for a in range(3)]
        dist = np.zeros(mask.shape, dtype=np.float32)
        where = np.argwhere(mask)
        if len(where):
            lo, hi = where.min(axis=0), where.max(axis=0) + 1
            box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
            padded = np.pad(mask[box], 1, constant_values=False)
            dist[box] = ndimage.distance_transform_edt(padded, sampling=sampling)[1:-1, 1:-1, 1:-1]
        return LungDistance(dist.astype(np.float32), stride_zyx)

    def at(self, idx_zyx: F64) -> F64:
        idx = np.atleast_2d(np.asarray(idx_zyx, dtype=np.float64)) / np.asarray(self.stride_zyx)
        return np.asarray(ndimage.map_coordinates(self.dist_mm, idx.T, order=1, mode="constant", cval=0.0))

    def random_points(self, rng: np.random.Generator, min_mm: float, max_mm: float, n: int) -> F64:
        """Up to ``n`` random array indices whose lung distance lies in [min_mm, max_mm]."""
        cand = np.flatnonzero((self.dist_mm.ravel() >= min_mm) & (self.dist_mm.ravel() <= max_mm))
        if len(cand) == 0:
            return np.zeros((0, 3))
        pick = rng.choice(cand, size=min(n, len(cand)), replace=False)
        coarse = np.stack(np.unravel_index(pick, self.dist_mm.shape), axis=-1).astype(np.float64)
        jitter = rng.uniform(-0.5, 0.5, coarse.shape)
        return (coarse + jitter) * np.asarray(self.stride_zyx)


def _sample_field(field_zyx: F32, idx: F64) -> F64:
    return np.asarray(ndimage.map_coordinates(field_zyx, np.atleast_2d(idx).T, order=1, mode="nearest"))


def _sphere_values(field_zyx: F32, center_idx: F64, radius_mm: float, spacing: F64) -> F32:
    half = np.ceil(radius_mm / spacing).astype(int)
    c = np.rint(center_idx).astype(int)
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, np.asarray(field_zyx.shape))
    if np.any(hi <= lo):
        return np.zeros(0, np.float32)
    sub = field_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    zz, yy, xx = (((np.arange(lo[a], hi[a]) - center_idx[a]) * spacing[a]) for a in range(3))
    r2 = zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2
    return np.asarray(sub[r2 <= radius_mm**2])


def _inside_grid(idx: F64, radius_mm: float, spacing: F64, shape: Sequence[int]) -> bool:
    margin = radius_mm / spacing
    return bool(np.all(idx - margin >= -0.5) and np.all(idx + margin <= np.asarray(shape) - 0.5))


def place_nodule(
    rng: np.random.Generator,
    field_zyx: F32,
    spacing_zyx: Sequence[float],
    lung: LungDistance,
    radius_mm: float,
    location: str,
    taken: Sequence[tuple[F64, float]] = (),
    tries: int = 80,
) -> F64 | None:
    """A nodule centre (array index, fractional) for ``location``, or None when none was found.

    ``field_zyx`` is the background HU the nodule goes into (noise-free synthetic field, or the real
    scan); ``lung`` gives the distance to the lung boundary. Isolated: at least radius + 3 mm from
    the boundary and over parenchyma. Juxta-pleural: the centre lies 0.6-0.9 radius from the pleura
    (found by marching towards the nearest boundary until tissue), so the nodule abuts the wall.
    Juxta-vascular: the centre sits 0.6-0.9 radius from the edge of a vessel (> -300 HU) found
    inside the lung. ``taken`` are (centre index, radius mm) of nodules already placed (kept 4 mm
    apart).
    """
    sp = np.asarray(spacing_zyx, dtype=np.float64)
    r = float(radius_mm)
    shape = field_zyx.shape

    def free(c: F64) -> bool:
        for other, r_other in taken:
            if np.linalg.norm((c - other) * sp) < r + r_other + 4.0:
                return False
        return _inside_grid(c, r + 1.0, sp, shape)

    def parenchyma_fraction(c: F64, rad: float) -> float:
        vals = _sphere_values(field_zyx, c, rad, sp)
        return float(np.mean(vals > -400)) if len(vals) else 1.0

    if location == "isolated":
        for c in lung.random_points(rng, r + 3.0, np.inf, tries):
            if free(c) and parenchyma_fraction(c, r + 1.0) <= 0.12 and _sample_field(field_zyx, c)[0] < -500:
                return c
        return None

    if location == "juxta-pleural":
        for c in lung.random_points(rng, 0.5 * r + 1.0, r + 8.0, tries):
            step = 0.75 / sp  # index offsets for a 0.75 mm central difference
            grad = np.array([(lung.at(c + e * step)[0] - lung.at(c - e * step)[0]) / 1.5 for e in np.eye(3)])
            grad[0] = 0.0  # march within the slice: the nodule abuts the pleura in its own slice
            if np.linalg.norm(grad) < 0.2:
                continue
            u_mm = -grad / np.linalg.norm(grad)  # towards the nearest boundary, in mm space
            s = np.arange(0.0, 3.0 * r + 20.0, 0.3)
            line = c[None, :] + (s[:, None] * u_mm[None, :]) / sp
            vals = _sample_field(field_zyx, line)
            hit = np.flatnonzero(vals > -350)
            if len(hit) == 0 or hit[0] == 0:
                continue
            s_hit = float(s[hit[0]])
            beyond = _sample_field(field_zyx, c + (s_hit + 4.0) * u_mm / sp)[0]
            if beyond < -300:  # a vessel, not the chest wall
                continue
            centre = c + (s_hit - rng.uniform(0.6, 0.9) * r) * u_mm / sp
            if not free(centre) or _sample_field(field_zyx, centre)[0] > -500:
                continue
            if parenchyma_fraction(centre, r) > 0.45:
                continue
            return centre
        return None

    if location == "juxta-vascular":
        for c in lung.random_points(rng, r + 6.0, np.inf, tries):
            half = np.ceil(6.0 / sp).astype(int)
            ci = np.rint(c).astype(int)
            lo, hi = np.maximum(ci - half, 0), np.minimum(ci + half + 1, np.asarray(shape))
            sub = field_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            ves = np.argwhere(sub > -300)
            if len(ves) == 0:
                continue
            v = ves[int(rng.integers(len(ves)))] + lo
            u = _unit_vectors(rng, 1)[0]
            s = np.arange(0.0, 10.0, 0.25)
            vals = _sample_field(field_zyx, v[None, :] + (s[:, None] * u[None, :]) / sp)
            out = np.flatnonzero(vals < -600)
            if len(out) == 0:
                continue
            centre = v + (float(s[out[0]]) + rng.uniform(0.6, 0.9) * r) * u / sp
            if not free(centre) or lung.at(centre)[0] < r + 2.0:
                continue
            if _sample_field(field_zyx, centre)[0] > -500 or parenchyma_fraction(centre, r) > 0.35:
                continue
            return centre
        return None
    raise ValueError(f"location must be one of {LOCATIONS}, got {location!r}")
