"""Nodule candidate proposals: lung mask + multi-scale blob detection (shared by training and the app).

The detector (a ResNet-50 on patches) only looks where this module points, so it must find nearly
every nodule of 3-30 mm while returning at most a few hundred places per scan. Method:

1. Lung mask (:mod:`nodeview.core.detect.lung`), on a grid of about 1.4 mm in-plane; the search region is
   the mask's bounding box, and candidates must lie in the mask dilated by ``MARGIN_MM`` (the mask
   is already closed over 20 mm, which keeps juxta-pleural nodules).
2. HU clipped to [-1000, 300] (bone and contrast do not outshine nodules; calcified nodules still
   stand out) and set to -850 outside the lung mask, then differences of Gaussians at sigmas
   ``SIGMAS_MM`` in physical millimetres (the larger ones on a 2x coarser grid, halved along z
   only for thin slices). Thick slices are already blurred along z by their slice profile, so z
   is smoothed only by what is missing to reach each scale. For a sphere of radius r the
   response peaks near sigma = r / sqrt(3): the scales cover 3-30 mm.
3. Every local maximum of each scale's response (3x3x3 in the working grid) above
   ``MIN_RESPONSE_HU`` (typically 10-40 thousand per scan) gets shape and density features
   (:data:`FEATURE_NAMES`: response as a fraction of its own contrast, density, Hessian
   eigenvalue ratios, slice thickness) and a score from a small MLP fitted on annotated scans
   by ``training/engine/fit_ranker.py`` (weights: ``resources/models/nodeview-proposal-ranker.json``, read by
   :mod:`.ranker_weights`; a hand-made blobness rule found 36/45 validation nodules in the top
   400, the fitted ranker 38/45 in the top 300).
4. Greedy non-maximum suppression across scales, best score first; at most ``max_candidates``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..geometry import Geometry
from ..parallel import map_ordered
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from .lung import LungMask, block_mean, segment_lungs
from .ranker_weights import RankerWeightsError, bundled_ranker_weights
from .scores import logit, sigmoid

SIGMAS_MM = (0.9, 1.4, 2.2, 3.4, 5.2, 8.0, 12.0)
#: Scales at or above this sigma run on a 2x coarser grid (16x cheaper, same answer for big blobs).
COARSE_FROM_MM = 2.2
#: Slices at most half this thick are halved along z on the coarse grid too.
THIN_SLICE_MM = 3.0
#: A merged candidate moves to a finer scale's peak at most this far (see :func:`suppress`).
REFINE_MM = 2.0
MIN_RESPONSE_HU = 15.0
PARENCHYMA_HU = -850.0
MARGIN_MM = 6.0
DEFAULT_MAX_CANDIDATES = 300
#: After scoring, a candidate closer to a better one than this many times the better one's
#: predicted radius is the same lesion (:func:`merge_findings`). The proposer puts many peaks inside
#: a large nodule; at one radius, ones on opposite edges survived as extra findings.
MERGE_RADIUS_FACTOR = 1.5
#: The merged finding's centre is the score-weighted mean of the members scoring at least this
#: fraction of the best one (its edge candidates pull it back to the lesion's middle).
MERGE_SCORE_FRACTION = 0.9
#: Bumped whenever proposals change (training caches of mined patches are keyed on it).
PROPOSER_VERSION = 2


@dataclass(frozen=True)
class Candidate:
    """A place worth classifying.

    Args:
        center_xyz_mm: LPS mm.
        index_zyx: fractional voxel index in the volume.
        diameter_mm: blob diameter suggested by the scale that fired (2 * sqrt(3) * sigma).
        response: DoG response (HU-like units); larger is more blob-like and denser.
        rank_score: the proposal ranker's log-odds that this is a nodule (orders the candidates).
    """

    center_xyz_mm: tuple[float, float, float]
    index_zyx: tuple[float, float, float]
    diameter_mm: float
    response: float
    rank_score: float = 0.0


@dataclass(frozen=True)
class PeakTable:
    """Every local maximum of every scale's DoG response (before ranking and merging).

    Args:
        index_zyx: (N, 3) fractional volume indices.
        scale: (N,) index into the scale pairs of ``SIGMAS_MM``.
        sigma_mm: (N,) the scale's sigma (geometric mean of the pair).
        response: (N,) DoG response (HU-like).
        features: (N, len(FEATURE_NAMES)) ranking features (see :func:`peak_features`).
    """

    index_zyx: NDArray[np.float64]
    scale: NDArray[np.intp]
    sigma_mm: NDArray[np.float64]
    response: NDArray[np.float64]
    features: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.scale)

    @staticmethod
    def empty() -> PeakTable:
        z = np.zeros(0)
        return PeakTable(np.zeros((0, 3)), np.zeros(0, np.intp), z, z, np.zeros((0, len(FEATURE_NAMES))))


N_SCALES = len(SIGMAS_MM) - 1
FEATURE_NAMES = tuple(f"scale{n}" for n in range(N_SCALES)) + (
    "fraction",  # response / own contrast over aerated lung (spheres keep more than tubes)
    "log_response",
    "density",  # smoothed HU over aerated lung / 1000
    "hessian_mid",  # middle / most negative Hessian eigenvalue (1 for a sphere, 0 for a plate)
    "hessian_min",  # least negative / most negative (1 sphere, 0 tube); negative: not a maximum
    "thick_slices",  # slice spacing / 5 mm
    "thick_x_hessian_min",
    "thick_x_fraction",
)


def peak_features(
    response: NDArray[np.float64],
    contrast: NDArray[np.float64],
    eig_ratios: NDArray[np.float64],
    scale: int,
    slice_mm: float,
) -> NDArray[np.float64]:
    """Ranking features of the peaks of one scale (columns as ``FEATURE_NAMES``)."""
    n = len(response)
    out = np.zeros((n, len(FEATURE_NAMES)))
    out[:, scale] = 1.0
    fraction = np.clip(response / np.maximum(contrast, 50.0), 0.0, 2.0)
    thick = slice_mm / 5.0
    c = N_SCALES
    out[:, c] = fraction
    out[:, c + 1] = np.log(np.maximum(response, 1.0))
    out[:, c + 2] = np.clip(contrast, 0.0, 2000.0) / 1000.0
    out[:, c + 3] = eig_ratios[:, 0]
    out[:, c + 4] = eig_ratios[:, 1]
    out[:, c + 5] = thick
    out[:, c + 6] = thick * eig_ratios[:, 1]
    out[:, c + 7] = thick * fraction
    return out


def rank_scores(features: NDArray[np.float64]) -> NDArray[np.float64]:
    """The fitted ranker's log-odds that a peak lies on a nodule (a small MLP fitted by
    ``training/engine/fit_ranker.py`` on annotated scans; weights in a data file, :mod:`.ranker_weights`)."""
    ranker = bundled_ranker_weights()
    if ranker.features != FEATURE_NAMES:
        raise RankerWeightsError(
            "the proposal ranker was fitted on other features: re-run python -m training.engine.fit_ranker"
        )
    return ranker(features)


def fuse_logits(
    nodule_prob: NDArray[np.floating], rank_score: NDArray[np.floating], weight: float
) -> NDArray[np.float64]:
    """The fused log-odds (float64): ``logit(nodule_prob) + weight * rank_score``.

    The app's finding score is :func:`.scores.score_from_logit` of this; :func:`fuse_scores` is
    its plain sigmoid, the fused probability the model files' thresholds are calibrated in."""
    return np.asarray(logit(nodule_prob) + weight * np.asarray(rank_score, dtype=np.float64), dtype=np.float64)


def fuse_scores(
    nodule_prob: NDArray[np.floating], rank_score: NDArray[np.floating], weight: float
) -> NDArray[np.float32]:
    """Fused probability: the classifier's log-odds plus ``weight`` times the proposal ranker's
    log-odds (:attr:`Candidate.rank_score`), mapped back to 0-1.

    The ranker sees the whole DoG scale space and the classifier a 64 mm patch, so each catches
    mistakes of the other. ``weight`` is chosen on validation scans (``training/evaluation/evaluate.py
    --choose-rank-weight``) and shipped in the model's metadata (``rank_score_weight``); 0 gives
    the classifier's probability unchanged. Model files state their ``operating_threshold`` in
    these units (training compares float32 values of it); the app shows the finding score
    :func:`.scores.score_from_logit` of :func:`fuse_logits`, a monotonic map of the same number.
    """
    if weight == 0.0:
        return np.asarray(nodule_prob, dtype=np.float32)
    return np.asarray(sigmoid(fuse_logits(nodule_prob, rank_score, weight)), dtype=np.float32)


def propose(
    hu_zyx: NDArray[np.int16],
    geometry: Geometry,
    lung: LungMask | None = None,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
    refine_until: int | None = None,
    subvoxel: bool = False,
) -> list[Candidate]:
    """Candidate nodule centres, most nodule-like first (at most ``max_candidates``; see
    :func:`suppress` for ``refine_until`` and :func:`find_peaks` for ``subvoxel``)."""
    peaks = find_peaks(hu_zyx, geometry, lung, progress, should_stop, subvoxel)
    return propose_from_peaks(peaks, geometry, max_candidates, refine_until)


def propose_from_peaks(
    peaks: PeakTable, geometry: Geometry, max_candidates: int = DEFAULT_MAX_CANDIDATES, refine_until: int | None = None
) -> list[Candidate]:
    """:func:`propose` on a peak table already found (ranked, then merged by :func:`suppress`)."""
    if len(peaks) == 0:
        return []
    score = rank_scores(peaks.features)
    centres = geometry.index_to_mm(peaks.index_zyx)
    kept = suppress(centres, peaks.sigma_mm, score, max_candidates, refine_until)
    out = []
    for n, at in kept:
        index = peaks.index_zyx[at]
        xyz = centres[at]
        out.append(
            Candidate(
                center_xyz_mm=(float(xyz[0]), float(xyz[1]), float(xyz[2])),
                index_zyx=(float(index[0]), float(index[1]), float(index[2])),
                diameter_mm=float(2.0 * np.sqrt(3.0) * peaks.sigma_mm[n]),
                response=float(peaks.response[n]),
                rank_score=float(score[n]),
            )
        )
    return out


def find_peaks(
    hu_zyx: NDArray[np.int16],
    geometry: Geometry,
    lung: LungMask | None = None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
    subvoxel: bool = False,
) -> PeakTable:
    """Every DoG peak in the lungs with its ranking features (shared by :func:`propose` and training).

    The Gaussian smoothings of all scales, then the peaks of each scale, run on the array thread
    pool (:mod:`.parallel`); the result does not depend on the number of threads.

    With ``subvoxel`` each peak's position is refined below the working grid's voxel
    (:func:`subvoxel_offsets`): the coarse scales run on grids of up to about 3 mm, which otherwise
    put a small nodule's centre up to 1.6 mm off. The features, and so the ranking, are unchanged.
    """
    steps = 4
    progress(0, steps)
    if lung is None:
        lung = segment_lungs(hu_zyx, geometry)
    check_cancel(should_stop)
    progress(1, steps)
    extent = lung.extent_zyx
    if extent is None:
        progress(steps, steps)
        return PeakTable.empty()
    f = lung.factor
    spacing = np.array([geometry.spacing_zyx[0], geometry.spacing_zyx[1] * f, geometry.spacing_zyx[2] * f])
    margin_vox = np.maximum(1, np.round(MARGIN_MM / spacing)).astype(int)
    # Crop to the search region's bounding box: the lung mask's box grown by the margin (what the
    # dilation below reaches) and 2 voxels. No room for the kernels is needed: outside the lung mask
    # the image is a constant (PARENCHYMA_HU), which is exactly what mode="nearest" extends at the edge.
    shape = np.asarray(lung.mask_zyx.shape)
    pad = np.array([2, 2, 2])
    first = np.array([e[0] for e in extent])
    last = np.array([e[1] for e in extent])
    lo = np.maximum(first - margin_vox - pad, 0)
    hi = np.minimum(last + margin_vox + pad + 1, shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    k0, k1 = crop[0].start, crop[0].stop
    y0, y1, x0, x1 = crop[1].start, crop[1].stop, crop[2].start, crop[2].stop
    lung_crop = lung.mask_zyx[crop]
    # candidates must lie in the lung mask dilated by the margin (the crop holds all of the mask)
    search = ndimage.maximum_filter(lung_crop, size=tuple(int(2 * m + 1) for m in margin_vox))
    work = block_mean(hu_zyx[k0:k1, y0 * f : y1 * f, x0 * f : x1 * f], f)
    np.clip(work, -1000, 300, out=work)
    # Lung-only image: outside the (closed) lung mask everything reads as aerated lung, so chest
    # wall and mediastinum cannot fire; nodules inside the closed mask keep their density.
    work[~lung_crop] = PARENCHYMA_HU

    pairs = list(itertools.pairwise(SIGMAS_MM))
    # The coarse grid halves z only for thin slices: thick slices are already coarse in z.
    fz = 2 if spacing[0] * 2 <= THIN_SLICE_MM else 1
    levels = [1 if s0 >= COARSE_FROM_MM else 0 for s0, _ in pairs]
    grids: list[NDArray[np.float32]] = [work]
    masks: list[NDArray[np.bool_]] = [search]
    factors = [np.ones(3)]
    if 1 in levels:
        grids.append(block_mean3(work, fz))
        masks.append(ndimage.maximum_filter(search, size=(fz, 2, 2))[::fz, ::2, ::2])
        factors.append(np.array([fz, 2.0, 2.0]))
    steps_mm = [spacing * fac for fac in factors]
    # Thick slices are already blurred along z by the slice profile (a box of the slice spacing,
    # sigma ~ spacing / sqrt(12)): smooth z only by what is missing to reach each scale.
    intrinsic = np.array([spacing[0] / np.sqrt(12.0), 0.0, 0.0])

    def smooth(job: tuple[int, float]) -> NDArray[np.float32]:
        level, sigma_mm = job
        check_cancel(should_stop)
        applied = np.sqrt(np.maximum(sigma_mm**2 - intrinsic**2, 0.0))
        return np.asarray(ndimage.gaussian_filter(grids[level], sigma=tuple(applied / steps_mm[level]), mode="nearest"))

    # every (grid, sigma) smoothing the scale pairs need, the big fine-grid ones first
    jobs = sorted({(lv, s) for lv, pair in zip(levels, pairs, strict=True) for s in pair}, key=lambda j: (j[0], j[1]))
    smoothed = dict(zip(jobs, map_ordered(smooth, jobs), strict=True))
    check_cancel(should_stop)
    progress(2, steps)

    def scale_peaks(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        check_cancel(should_stop)
        (s0, s1), level = pairs[n], levels[n]
        previous, current, mask = smoothed[(level, s0)], smoothed[(level, s1)], masks[level]
        dog = previous - current
        kk, jj, ii = _local_maxima(dog, (dog > MIN_RESPONSE_HU) & mask[: dog.shape[0], : dog.shape[1], : dog.shape[2]])
        values = dog[kk, jj, ii].astype(np.float64)
        # Shape and density at each peak: the response as a fraction of the blob's own contrast
        # over aerated lung (a sphere keeps more than a tube of the same calibre, whatever its
        # density) and the Hessian eigenvalue ratios of the smoothed image.
        contrast = previous[kk, jj, ii].astype(np.float64) - PARENCHYMA_HU
        features = peak_features(
            values, contrast, _hessian_ratios(previous, kk, jj, ii, steps_mm[level]), n, float(spacing[0])
        )
        fac = factors[level]
        at = np.stack([kk, jj, ii], axis=1).astype(np.float64)
        if subvoxel:
            at += subvoxel_offsets(dog, kk, jj, ii)
        fine = at * fac + (fac - 1) / 2.0  # centre of a coarse voxel, fine-grid units
        # working-grid index -> volume index (block centre)
        index = np.stack(
            [fine[:, 0] + lo[0], (fine[:, 1] + lo[1]) * f + (f - 1) / 2.0, (fine[:, 2] + lo[2]) * f + (f - 1) / 2.0],
            axis=1,
        )
        return index, values, features

    tables = map_ordered(scale_peaks, list(range(len(pairs))))
    progress(3, steps)
    sigma = [float(np.sqrt(s0 * s1)) for s0, s1 in pairs]
    progress(steps, steps)
    return PeakTable(
        index_zyx=np.concatenate([t[0] for t in tables]),
        scale=np.concatenate([np.full(len(t[1]), n, dtype=np.intp) for n, t in enumerate(tables)]),
        sigma_mm=np.concatenate([np.full(len(t[1]), sigma[n]) for n, t in enumerate(tables)]),
        response=np.concatenate([t[1] for t in tables]),
        features=np.concatenate([t[2] for t in tables]),
    )


def _local_maxima(
    image: NDArray[np.float32], where: NDArray[np.bool_]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Indices (C order) of the voxels in ``where`` that are >= all 26 neighbours.

    The same voxels as ``where & (image == maximum_filter(image, size=3))`` (at the array edge a
    missing neighbour is the voxel itself, as the filter's default "reflect" mode has it), but
    only the voxels in ``where`` (a few percent) are compared, and each comparison drops the
    voxels that already failed: ~5x faster than the full-volume filter.
    """
    kk, jj, ii = np.nonzero(where)
    flat = image.ravel()
    nz, ny, nx = image.shape
    values = flat[(kk * ny + jj) * nx + ii]
    for dk, dj, di in itertools.product((-1, 0, 1), repeat=3):
        if dk == dj == di == 0 or len(kk) == 0:
            continue
        k = np.clip(kk + dk, 0, nz - 1) if dk else kk
        j = np.clip(jj + dj, 0, ny - 1) if dj else jj
        i = np.clip(ii + di, 0, nx - 1) if di else ii
        keep = values >= flat[(k * ny + j) * nx + i]
        kk, jj, ii, values = kk[keep], jj[keep], ii[keep], values[keep]
    return kk, jj, ii


def subvoxel_offsets(
    image: NDArray[np.float32], kk: NDArray[np.intp], jj: NDArray[np.intp], ii: NDArray[np.intp]
) -> NDArray[np.float64]:
    """(N, 3) offsets in voxels, within +-0.5, from each peak to the maximum of a Gaussian through it
    and its two neighbours on each axis (a parabola through the logarithms; a parabola through the
    values themselves where one of the three is not positive). 0 on the array's edge and where the
    three values do not curve down."""
    out = np.zeros((len(kk), 3))
    if len(kk) == 0:
        return out
    index = (kk, jj, ii)
    centre = image[index].astype(np.float64)
    for axis in range(3):
        n = image.shape[axis]
        below, above = list(index), list(index)
        below[axis] = np.maximum(index[axis] - 1, 0)
        above[axis] = np.minimum(index[axis] + 1, n - 1)
        a = image[tuple(below)].astype(np.float64)
        b = image[tuple(above)].astype(np.float64)
        positive = (a > 0) & (b > 0) & (centre > 0)
        fa, fb, fc = (np.where(positive, np.log(np.where(positive, v, 1.0)), v) for v in (a, b, centre))
        curve = fa - 2.0 * fc + fb
        ok = (index[axis] > 0) & (index[axis] < n - 1) & (curve < 0)
        offset = 0.5 * (fa - fb) / np.where(ok, curve, -1.0)
        out[:, axis] = np.where(ok, np.clip(offset, -0.5, 0.5), 0.0)
    return out


def _hessian_ratios(
    img: NDArray[np.float32],
    kk: NDArray[np.intp],
    jj: NDArray[np.intp],
    ii: NDArray[np.intp],
    spacing: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Shape at each peak from the Hessian of the smoothed image (finite differences).

    Returns (N, 2): the middle and the least negative eigenvalue, each divided by the magnitude
    of the most negative one. A bright blob has (1, 1); a vessel (1, 0); a plate (0, 0); a value
    below 0 means the peak is not a maximum in that direction. Computed at the peaks only.
    """
    if len(kk) == 0:
        return np.zeros((0, 2))
    shape = np.asarray(img.shape)
    k = np.clip(kk, 1, shape[0] - 2)
    j = np.clip(jj, 1, shape[1] - 2)
    i = np.clip(ii, 1, shape[2] - 2)

    def f(a: NDArray[np.intp], b: NDArray[np.intp], d: NDArray[np.intp]) -> NDArray[np.float64]:
        return np.asarray(img[a, b, d], dtype=np.float64)  # gather, then float64 (not the whole image)

    c = f(k, j, i)
    sz, sy, sx = spacing
    h = np.empty((len(k), 3, 3))
    h[:, 0, 0] = (f(k + 1, j, i) + f(k - 1, j, i) - 2 * c) / sz**2
    h[:, 1, 1] = (f(k, j + 1, i) + f(k, j - 1, i) - 2 * c) / sy**2
    h[:, 2, 2] = (f(k, j, i + 1) + f(k, j, i - 1) - 2 * c) / sx**2
    h[:, 0, 1] = h[:, 1, 0] = (f(k + 1, j + 1, i) - f(k + 1, j - 1, i) - f(k - 1, j + 1, i) + f(k - 1, j - 1, i)) / (
        4 * sz * sy
    )
    h[:, 0, 2] = h[:, 2, 0] = (f(k + 1, j, i + 1) - f(k + 1, j, i - 1) - f(k - 1, j, i + 1) + f(k - 1, j, i - 1)) / (
        4 * sz * sx
    )
    h[:, 1, 2] = h[:, 2, 1] = (f(k, j + 1, i + 1) - f(k, j + 1, i - 1) - f(k, j - 1, i + 1) + f(k, j - 1, i - 1)) / (
        4 * sy * sx
    )
    eig = np.linalg.eigvalsh(h)  # ascending: most negative first
    scale = np.maximum(-eig[:, :1], 1e-9)
    return np.asarray(np.clip(-eig[:, 1:] / scale, -1.0, 1.0), dtype=np.float64)


def block_mean3(a: NDArray[np.float32], fz: int = 2) -> NDArray[np.float32]:
    """(fz)x2x2 block mean, fz 1 or 2 (edges cropped)."""
    nz, ny, nx = a.shape[0] // fz * fz, a.shape[1] // 2 * 2, a.shape[2] // 2 * 2
    v = a[:nz, :ny, :nx]
    out = v[0::fz, 0::2, 0::2] + v[0::fz, 1::2, 0::2] + v[0::fz, 0::2, 1::2] + v[0::fz, 1::2, 1::2]
    if fz == 2:
        out += v[1::2, 0::2, 0::2] + v[1::2, 1::2, 0::2] + v[1::2, 0::2, 1::2] + v[1::2, 1::2, 1::2]
    return np.asarray(out * np.float32(1.0 / (4 * fz)), dtype=np.float32)


def suppress(
    centres_xyz_mm: NDArray[np.float64],
    sigma_mm: NDArray[np.float64],
    score: NDArray[np.float64],
    limit: int,
    refine_until: int | None = None,
) -> list[tuple[int, int]]:
    """Greedy NMS over all scales, best score first.

    A peak is dropped when a kept one lies within the smaller of their two radii (the same blob
    seen at another scale); a small nodule beside a large structure survives. Coarse scales
    localise worse (they run on a 2x grid), so a kept peak takes the position of the finest-scale
    peak it absorbed within ``min(radius / 2, REFINE_MM)``. Returns (kept index, index whose
    position is used) pairs, best first.

    With ``refine_until`` = R, the first R kept peaks stop being refined once an (R+1)-th is
    kept, so they sit exactly where ``suppress(..., limit=R)`` puts them; the detector's
    re-ranker asks for more candidates without moving the first ``DEFAULT_MAX_CANDIDATES``.
    """
    order = np.argsort(-score, kind="stable")
    frozen = limit if refine_until is None else refine_until
    pos = np.asarray(centres_xyz_mm, dtype=np.float64)
    sigma = np.asarray(sigma_mm, dtype=np.float64)
    radius = np.maximum(np.sqrt(3.0) * sigma, 1.5)
    kept: list[int] = []
    where: list[int] = []
    kept_pos = np.empty((limit, 3))
    kept_radius = np.empty(limit)
    for n in order:
        m = len(kept)
        if m:
            d = np.linalg.norm(kept_pos[:m] - pos[n], axis=1)
            same = d < np.minimum(kept_radius[:m], radius[n])  # the same blob at another scale
            if np.any(same):
                owner = int(np.flatnonzero(same)[np.argmin(d[same])])
                refinable = owner >= frozen or m <= frozen
                near = d[owner] <= min(kept_radius[owner] / 2.0, REFINE_MM)
                if refinable and sigma[n] < sigma[where[owner]] and near:
                    where[owner] = int(n)
                continue
        if m >= limit:
            break
        kept_pos[m] = pos[n]
        kept_radius[m] = radius[n]
        kept.append(int(n))
        where.append(int(n))
    return list(zip(kept, where, strict=True))


@dataclass(frozen=True)
class MergedFinding:
    """One finding after :func:`merge_findings`.

    Args:
        index: the best-scoring candidate of the group (its score, diameter and malignancy are
            the finding's).
        members: every candidate merged into it, ``index`` first, then best score first.
        center_xyz_mm: the score-weighted mean centre of the members scoring at least
            ``MERGE_SCORE_FRACTION`` of the best score.
    """

    index: int
    members: tuple[int, ...]
    center_xyz_mm: tuple[float, float, float]


def merge_findings(
    centres_xyz_mm: NDArray[np.floating],
    score: NDArray[np.floating],
    diameter_mm: NDArray[np.floating],
    factor: float = MERGE_RADIUS_FACTOR,
) -> list[MergedFinding]:
    """3D non-maximum suppression after scoring that merges each lesion's candidates into one finding.

    Best score first, each candidate joins the nearest kept finding that it lies closer to than
    ``factor`` times that finding's predicted radius (or its own radius, if larger; radii at
    least 2 mm); otherwise it starts a finding of its own. The finding keeps the best member's
    scores and takes the score-weighted centre of its high-scoring members. The detector applies
    it to the model's scores and ``training/evaluation/evaluate.py`` applies the same function, so the FROC
    measures the findings the app shows.
    """
    if len(score) == 0:
        return []
    centres = np.asarray(centres_xyz_mm, dtype=np.float64).reshape(-1, 3)
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    radius = np.maximum(np.asarray(diameter_mm, dtype=np.float64) / 2.0, 2.0)
    kept: list[int] = []
    members: list[list[int]] = []
    for i in order:
        if kept:
            d = np.linalg.norm(centres[kept] - centres[i], axis=1)
            reach = np.maximum(factor * radius[kept], radius[i])
            inside = np.flatnonzero(d < reach)
            if inside.size:
                members[int(inside[np.argmin(d[inside])])].append(int(i))
                continue
        kept.append(int(i))
        members.append([int(i)])
    out = []
    for k, group in zip(kept, members, strict=True):
        g = np.asarray(group)
        g = g[s[g] >= MERGE_SCORE_FRACTION * s[k]]  # holds k itself
        w = np.maximum(s[g], 1e-12)
        c = (centres[g] * w[:, None]).sum(axis=0) / w.sum()
        out.append(MergedFinding(k, tuple(group), (float(c[0]), float(c[1]), float(c[2]))))
    return out


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
