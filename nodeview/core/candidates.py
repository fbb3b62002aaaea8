"""Nodule candidate proposals: lung mask + multi-scale blob detection (shared by training and the app).

The detector (a ResNet-50 on patches) only looks where this module points, so it must find nearly
every nodule of 3-30 mm while returning at most a few hundred places per scan. Method:

1. Lung mask (:mod:`nodeview.core.lung`), on a grid of about 1.4 mm in-plane; the search region is
   the mask's bounding box, and candidates must lie in the mask dilated by ``MARGIN_MM`` (the mask
   is already closed over 20 mm, which keeps juxta-pleural nodules).
2. HU clipped to [-1000, 300] (bone and contrast do not outshine nodules; calcified nodules still
   stand out) and set to -850 outside the lung mask, then differences of Gaussians at sigmas
   ``SIGMAS_MM`` in physical millimetres (the larger ones on a 2x coarser grid). For a sphere of
   radius r the response peaks near sigma = r / sqrt(3): the scales cover 3-30 mm.
   Vessels respond less than blobs of the same calibre, because a DoG of a line is weaker.
3. Local maxima of each scale's response (3x3x3 in the working grid) above ``MIN_RESPONSE_HU``,
   ranked within their scale by blobness (response / own contrast over aerated lung: spheres
   beat tubes whatever their density), merged across scales best-of-each-scale first with a
   greedy non-maximum suppression by distance; at most ``max_candidates`` are returned.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .geometry import Geometry
from .lung import LungMask, block_mean, segment_lungs
from .progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress

SIGMAS_MM = (0.9, 1.4, 2.2, 3.4, 5.2, 8.0, 12.0)
#: Scales at or above this sigma run on a 2x coarser grid (16x cheaper, same answer for big blobs).
COARSE_FROM_MM = 2.2
MIN_RESPONSE_HU = 15.0
PARENCHYMA_HU = -850.0
MARGIN_MM = 6.0
DEFAULT_MAX_CANDIDATES = 400


@dataclass(frozen=True)
class Candidate:
    """A place worth classifying.

    Args:
        center_xyz_mm: LPS mm.
        index_zyx: fractional voxel index in the volume.
        diameter_mm: blob diameter suggested by the scale that fired (2 * sqrt(3) * sigma).
        response: DoG response (HU-like units); larger is more blob-like and denser.
    """

    center_xyz_mm: tuple[float, float, float]
    index_zyx: tuple[float, float, float]
    diameter_mm: float
    response: float


def propose(
    hu_zyx: NDArray[np.int16],
    geometry: Geometry,
    lung: LungMask | None = None,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> list[Candidate]:
    """Candidate nodule centres, strongest first (at most ``max_candidates``)."""
    steps = len(SIGMAS_MM) + 2
    progress(0, steps)
    if lung is None:
        lung = segment_lungs(hu_zyx, geometry)
    check_cancel(should_stop)
    progress(1, steps)
    if not lung.mask_zyx.any():
        progress(steps, steps)
        return []
    f = lung.factor
    spacing = np.array([geometry.spacing_zyx[0], geometry.spacing_zyx[1] * f, geometry.spacing_zyx[2] * f])
    margin_vox = np.maximum(1, np.round(MARGIN_MM / spacing)).astype(int)
    region = ndimage.maximum_filter(lung.mask_zyx, size=tuple(int(2 * m + 1) for m in margin_vox))
    # Crop to the region's bounding box. No room for the kernels is needed: outside the lung mask the
    # image is a constant (PARENCHYMA_HU), which is exactly what mode="nearest" extends at the edge.
    pad = np.array([2, 2, 2])
    nz = np.flatnonzero(region.any(axis=(1, 2)))
    ny = np.flatnonzero(region.any(axis=(0, 2)))
    nx = np.flatnonzero(region.any(axis=(0, 1)))
    lo = np.maximum([nz[0], ny[0], nx[0]] - pad, 0)
    hi = np.minimum(np.array([nz[-1], ny[-1], nx[-1]]) + pad + 1, region.shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    k0, k1 = crop[0].start, crop[0].stop
    y0, y1, x0, x1 = crop[1].start, crop[1].stop, crop[2].start, crop[2].stop
    work = block_mean(hu_zyx[k0:k1, y0 * f : y1 * f, x0 * f : x1 * f], f)
    np.clip(work, -1000, 300, out=work)
    # Lung-only image: outside the (closed) lung mask everything reads as aerated lung, so chest
    # wall and mediastinum cannot fire; nodules inside the closed mask keep their density.
    work[~lung.mask_zyx[crop]] = PARENCHYMA_HU
    search = region[crop]

    found: list[tuple[float, float, float, float, float, float]] = []  # rank, response, k, j, i, sigma
    pairs = list(itertools.pairwise(SIGMAS_MM))
    per_scale = max(8, max_candidates)
    coarse = block_mean3(work) if any(s0 >= COARSE_FROM_MM for s0, _ in pairs) else None
    coarse_search = ndimage.maximum_filter(search, size=2)[::2, ::2, ::2] if coarse is not None else None
    previous: NDArray[np.float32] | None = None
    for n, (s0, s1) in enumerate(pairs):
        check_cancel(should_stop)
        level = 1 if s0 >= COARSE_FROM_MM else 0
        grid = coarse if level else work
        mask = coarse_search if level else search
        assert grid is not None and mask is not None
        step = spacing * (2**level)
        if previous is None or previous.shape != grid.shape:
            previous = ndimage.gaussian_filter(grid, sigma=s0 / step, mode="nearest")
        current = ndimage.gaussian_filter(grid, sigma=s1 / step, mode="nearest")
        dog = previous - current
        peaks = (
            (dog == ndimage.maximum_filter(dog, size=3))
            & (dog > MIN_RESPONSE_HU)
            & mask[: dog.shape[0], : dog.shape[1], : dog.shape[2]]
        )
        kk, jj, ii = np.nonzero(peaks)
        values = dog[kk, jj, ii]
        # Blobness: the response as a fraction of the blob's own contrast over aerated lung. A
        # sphere keeps a larger fraction than a tube of the same calibre, whatever its density,
        # so faint ground-glass nodules rank with solid ones and above vessels.
        contrast = np.maximum(previous[kk, jj, ii] - PARENCHYMA_HU, 50.0)
        blobness = values / contrast * (0.25 + _hessian_blobness(previous, kk, jj, ii, step))
        best = np.argsort(-blobness, kind="stable")[:per_scale]
        scale = 2.0**level
        offset = (scale - 1) / 2.0  # centre of a coarse voxel in fine-grid units
        sigma = float(np.sqrt(s0 * s1))
        for rank, b in enumerate(best):
            found.append(
                (
                    float(rank),
                    float(values[b]),
                    kk[b] * scale + offset,
                    jj[b] * scale + offset,
                    ii[b] * scale + offset,
                    sigma,
                )
            )
        previous = current
        progress(n + 2, steps)
    candidates = _suppress(found, spacing, max_candidates)
    out = []
    for response, k, j, i, sigma in candidates:
        # working-grid index -> volume index (block centre)
        index = np.array([k + lo[0], (j + lo[1]) * f + (f - 1) / 2.0, (i + lo[2]) * f + (f - 1) / 2.0])
        xyz = geometry.index_to_mm(index)
        out.append(
            Candidate(
                center_xyz_mm=(float(xyz[0]), float(xyz[1]), float(xyz[2])),
                index_zyx=(float(index[0]), float(index[1]), float(index[2])),
                diameter_mm=float(2.0 * np.sqrt(3.0) * sigma),
                response=float(response),
            )
        )
    progress(steps, steps)
    return out


def _hessian_blobness(
    img: NDArray[np.float32],
    kk: NDArray[np.intp],
    jj: NDArray[np.intp],
    ii: NDArray[np.intp],
    spacing: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Shape at each peak from the Hessian of the smoothed image (finite differences).

    For a bright blob all three eigenvalues are negative and alike (ratio smallest/largest
    magnitude near 1); for a vessel one is near 0; for a plate two are. Returns that ratio, or 0
    where the peak is not a local maximum in every direction. Computed at the peaks only.
    """
    if len(kk) == 0:
        return np.zeros(0)
    shape = np.asarray(img.shape)
    k = np.clip(kk, 1, shape[0] - 2)
    j = np.clip(jj, 1, shape[1] - 2)
    i = np.clip(ii, 1, shape[2] - 2)
    f = img.astype(np.float64)
    c = f[k, j, i]
    sz, sy, sx = spacing
    h = np.empty((len(k), 3, 3))
    h[:, 0, 0] = (f[k + 1, j, i] + f[k - 1, j, i] - 2 * c) / sz**2
    h[:, 1, 1] = (f[k, j + 1, i] + f[k, j - 1, i] - 2 * c) / sy**2
    h[:, 2, 2] = (f[k, j, i + 1] + f[k, j, i - 1] - 2 * c) / sx**2
    h[:, 0, 1] = h[:, 1, 0] = (f[k + 1, j + 1, i] - f[k + 1, j - 1, i] - f[k - 1, j + 1, i] + f[k - 1, j - 1, i]) / (
        4 * sz * sy
    )
    h[:, 0, 2] = h[:, 2, 0] = (f[k + 1, j, i + 1] - f[k + 1, j, i - 1] - f[k - 1, j, i + 1] + f[k - 1, j, i - 1]) / (
        4 * sz * sx
    )
    h[:, 1, 2] = h[:, 2, 1] = (f[k, j + 1, i + 1] - f[k, j + 1, i - 1] - f[k, j - 1, i + 1] + f[k, j - 1, i - 1]) / (
        4 * sy * sx
    )
    eig = np.linalg.eigvalsh(h)  # ascending: most negative first
    largest = np.abs(eig[:, 0])
    ratio = np.where(eig[:, 2] < 0, np.abs(eig[:, 2]) / np.maximum(largest, 1e-9), 0.0)
    return np.asarray(ratio, dtype=np.float64)


def block_mean3(a: NDArray[np.float32]) -> NDArray[np.float32]:
    """2x2x2 block mean (edges cropped)."""
    nz, ny, nx = (d // 2 * 2 for d in a.shape)
    v = a[:nz, :ny, :nx]
    out = v[0::2, 0::2, 0::2] + v[1::2, 0::2, 0::2] + v[0::2, 1::2, 0::2] + v[0::2, 0::2, 1::2]
    out += v[1::2, 1::2, 0::2] + v[1::2, 0::2, 1::2] + v[0::2, 1::2, 1::2] + v[1::2, 1::2, 1::2]
    return np.asarray(out * np.float32(0.125), dtype=np.float32)


def _suppress(
    found: list[tuple[float, float, float, float, float, float]], spacing: NDArray[np.float64], limit: int
) -> list[tuple[float, float, float, float, float]]:
    """Greedy NMS over all scales, best of each scale first (interleaved by per-scale rank).

    Ranking within each scale keeps large faint blobs (ground glass) from being crowded out by
    the many small, high-contrast vessel peaks. A peak is dropped when a kept one lies within the
    smaller of their two radii (the same blob at another scale); a small nodule beside a large
    structure survives. Returns (response, k, j, i, sigma) tuples.
    """
    if not found:
        return []
    arr = np.asarray(found, dtype=np.float64)
    arr = arr[np.lexsort((-arr[:, 1], arr[:, 0]))][:, 1:]
    pos = arr[:, 1:4] * spacing
    radius = np.maximum(np.sqrt(3.0) * arr[:, 4], 2.0)
    kept: list[int] = []
    kept_pos = np.empty((0, 3))
    kept_radius = np.empty(0)
    for n in range(len(arr)):
        if kept:
            d = np.linalg.norm(kept_pos - pos[n], axis=1)
            if np.any(d < np.minimum(kept_radius, radius[n])):  # the same blob seen at another scale
                continue
        kept.append(n)
        kept_pos = np.vstack([kept_pos, pos[n]])
        kept_radius = np.append(kept_radius, radius[n])
        if len(kept) >= limit:
            break
    return [tuple(arr[n]) for n in kept]


def recall(
    candidates: list[Candidate], centres_xyz_mm: list[tuple[float, float, float]], diameters_mm: list[float]
) -> list[bool]:
    """Which nodules have a candidate within their radius (at least 1.5 mm)."""
    if not candidates:
        return [False] * len(centres_xyz_mm)
    cand = np.asarray([c.center_xyz_mm for c in candidates])
    hits = []
    for centre, diameter in zip(centres_xyz_mm, diameters_mm, strict=True):
        d = np.linalg.norm(cand - np.asarray(centre), axis=1)
        hits.append(bool(np.any(d <= max(diameter / 2.0, 1.5))))
    return hits
