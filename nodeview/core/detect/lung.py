"""Lung segmentation from HU: the region where nodule candidates are searched (Qt- and torch-free).

Method (classic threshold + connectivity, fast enough for the interactive path):

1. Work on a grid downsampled to about 1.4 mm in-plane (block mean), keeping every slice.
2. Air-like voxels (< -400 HU) that do not touch the in-plane border of their slice are inside
   the body; the outside air and the table gap touch the border.
3. 3D connected components: keep the large ones (the lungs, possibly joined by the trachea).
4. Fill holes slice by slice (vessels, nodules inside the lung) and close with a ~20 mm square so
   juxta-pleural nodules that indent the lung wall stay inside the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..geometry import Geometry
from ..parallel import map_chunks

AIR_THRESHOLD_HU = -400
MIN_LUNG_ML = 30.0
CLOSING_MM = 20.0
#: Slices per piece of slice-by-slice work on the thread pool (at least).
_SLAB = 8


@dataclass(frozen=True)
class LungMask:
    """A lung mask on a (possibly coarser) grid, with the factor back to the volume grid.

    ``mask_zyx[k, j, i]`` covers volume voxels ``[k, j*f:(j+1)*f, i*f:(i+1)*f]`` with ``f = factor``.
    """

    mask_zyx: NDArray[np.bool_]
    factor: int
    volume_ml: float

    def contains_index(self, index_zyx: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Whether fractional volume indices (..., 3) fall inside the mask."""
        idx = np.rint(np.asarray(index_zyx, dtype=np.float64)).astype(int)
        k = idx[..., 0]
        j = idx[..., 1] // self.factor
        i = idx[..., 2] // self.factor
        shape = self.mask_zyx.shape
        inside = (k >= 0) & (k < shape[0]) & (j >= 0) & (j < shape[1]) & (i >= 0) & (i < shape[2])
        out = np.zeros(k.shape, dtype=bool)
        out[inside] = self.mask_zyx[k[inside], j[inside], i[inside]]
        return out

    @cached_property
    def extent_zyx(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
        """Inclusive (first, last) mask index along each axis of ``mask_zyx``; None when empty.

        Computed once: findings ask for it one by one, and each reduction over the mask costs
        milliseconds."""
        if not self.mask_zyx.any():
            return None
        out = []
        for axes in ((1, 2), (0, 2), (0, 1)):
            idx = np.flatnonzero(self.mask_zyx.any(axis=axes))
            out.append((int(idx[0]), int(idx[-1])))
        return out[0], out[1], out[2]

    def full_resolution(self, shape_zyx: tuple[int, int, int]) -> NDArray[np.bool_]:
        """The mask on the volume grid (nearest neighbour)."""
        f = self.factor
        up = self.mask_zyx.repeat(f, axis=1).repeat(f, axis=2) if f > 1 else self.mask_zyx
        out = np.zeros(shape_zyx, dtype=bool)
        ny, nx = min(up.shape[1], shape_zyx[1]), min(up.shape[2], shape_zyx[2])
        out[:, :ny, :nx] = up[:, :ny, :nx]
        return out


def downsample_factor(spacing_yx: tuple[float, float], target_mm: float = 1.4) -> int:
    return max(1, int(round(target_mm / max(min(spacing_yx), 1e-3))))


def block_mean(hu_zyx: NDArray[np.int16], factor: int) -> NDArray[np.float32]:
    """In-plane block mean by ``factor`` (edges cropped), as float32 (slabs of slices in parallel)."""
    if factor == 1:
        return hu_zyx.astype(np.float32)
    nz, ny, nx = hu_zyx.shape
    ny2, nx2 = ny // factor, nx // factor
    total = np.empty((nz, ny2, nx2), dtype=np.float32)

    def run(k0: int, k1: int) -> None:
        part = total[k0:k1]
        part[...] = 0.0
        for dj in range(factor):  # strided sums: much faster than reshape().mean() on a view
            for di in range(factor):
                part += hu_zyx[k0:k1, dj : ny2 * factor : factor, di : nx2 * factor : factor]
        part *= np.float32(1.0 / factor**2)

    map_chunks(run, nz, _SLAB)
    return total


def segment_lungs(hu_zyx: NDArray[np.int16], geometry: Geometry) -> LungMask:
    """Segment the lungs of a chest CT. Returns an empty mask when there are none (not a chest).

    The slice-by-slice steps (block mean, border test, closing, hole filling) run on slabs of
    slices in parallel threads (:mod:`.parallel`); the result does not depend on the thread count.
    """
    factor = downsample_factor((float(geometry.spacing_zyx[1]), float(geometry.spacing_zyx[2])))
    small = block_mean(hu_zyx, factor)
    voxel_ml = float(geometry.spacing_zyx[0] * geometry.spacing_zyx[1] * geometry.spacing_zyx[2]) * factor**2 / 1000
    air = small < AIR_THRESHOLD_HU
    del small
    inside = air & ~_touching_slice_border(air)
    comp, n = ndimage.label(inside)
    if n == 0:
        return LungMask(np.zeros_like(inside), factor, 0.0)
    sizes = np.bincount(comp[inside], minlength=n + 1)[1:] * voxel_ml  # (only labelled voxels: 5x faster)
    keep_threshold = max(MIN_LUNG_ML, 0.1 * float(sizes.max()))
    keep_lut = np.zeros(n + 1, dtype=bool)
    keep_lut[np.flatnonzero(sizes >= keep_threshold) + 1] = True
    mask = keep_lut[comp]
    del comp
    if not mask.any():
        return LungMask(mask, factor, 0.0)
    size_px = max(3, int(round(CLOSING_MM / (float(geometry.spacing_zyx[1]) * factor))) | 1)
    region = np.empty_like(mask)

    def close(k0: int, k1: int) -> None:
        part = mask[k0:k1]
        closed = ndimage.minimum_filter(
            ndimage.maximum_filter(part, size=(1, size_px, size_px)), size=(1, size_px, size_px)
        )
        region[k0:k1] = closed | part

    map_chunks(close, mask.shape[0], _SLAB)
    filled = ~_touching_slice_border(~region)  # fill holes slice by slice
    return LungMask(filled, factor, float(np.count_nonzero(filled)) * voxel_ml)


def _touching_slice_border(binary: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Voxels of ``binary`` connected, within their own slice, to that slice's edge."""
    out = np.empty_like(binary)

    def run(k0: int, k1: int) -> None:
        for k in range(k0, k1):
            labels, n = ndimage.label(binary[k])
            edge = np.zeros(n + 1, dtype=bool)
            for border in (labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1]):
                edge[border] = True
            edge[0] = False
            out[k] = edge[labels]

    map_chunks(run, binary.shape[0], _SLAB)
    return out
