"""The generator: a whole synthetic scan (anatomy, nodules, acquisition, noise) from a seed;
:func:`generate_scan` and :func:`generate_scan_full`."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from pydicom.uid import generate_uid

from nodeview.core.geometry import Geometry
from nodeview.core.volume import PatientInfo, Volume
from training.data.annotations import NoduleAnnotation
from training.data.synth.anatomy import _build_tubes, _Patient, _Scene
from training.data.synth.arrays import F32, F64, HU_MAX, HU_MIN
from training.data.synth.nodules import (
    LOCATIONS,
    MALIGNANT_THRESHOLD,
    MARGINS,
    NoduleModel,
    blend_nodule,
    render_nodule,
    sample_nodule,
    ssp_weights,
)
from training.data.synth.placement import LungDistance, place_nodule
from training.data.synth.scanner import (
    _FLIPPED_IOP,
    _IDENTITY_IOP,
    Acquisition,
    _add_noise,
    _blur2d,
    _sample_acquisition,
)
from training.data.synth.vessels import _paint_tubes

#: Diameters of the solid masses ``generate_scan_full(masses=...)`` adds (a mass is over 30 mm).
MASS_DIAMETER_MM = (32.0, 60.0)


def _run_chunks(fn: Callable[[int, int], None], n: int, workers: int) -> None:
    """Call ``fn(lo, hi)`` over ``range(n)`` split in contiguous chunks, on ``workers`` threads."""
    if workers <= 1 or n < 8:
        fn(0, n)
        return
    bounds = np.linspace(0, n, 2 * workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
        for f in futures:
            f.result()


@dataclass(frozen=True, eq=False)
class SyntheticScan:
    """Everything :func:`generate_scan_full` produced (the Volume, annotations and how they were made)."""

    volume: Volume
    annotations: list[NoduleAnnotation]
    acquisition: Acquisition
    nodules: list[NoduleModel]
    seed: int


def generate_scan(
    seed: int,
    shape_zyx: Sequence[int] | None = None,
    spacing_zyx: Sequence[float] | None = None,
    n_nodules: tuple[int, int] | int = (0, 4),
    **options: object,
) -> tuple[Volume, list[NoduleAnnotation]]:
    """A synthetic chest CT and its nodules, deterministic given the arguments.

    Args:
        seed: the scan's random seed (see :mod:`training.data.make_data` for the train/validation/test
            seed ranges).
        shape_zyx: (slices, rows, columns); default: 512 x 512 with as many slices as the chest
            needs at the drawn slice spacing. Small matrices get large pixels (the body still fits).
        spacing_zyx: (slice step, row, column) mm; default drawn (module docstring).
        n_nodules: (min, max) inclusive, or an exact count. Nodules that cannot be placed are
            dropped, so fewer may come back.
        **options: see :func:`generate_scan_full` (kinds, locations, diameter_range_mm,
            slice_thickness_mm, noise_sd_hu, contrast, patient_position, label_mode, workers).

    Returns:
        ``(volume, annotations)``; annotation centres are LPS mm.
    """
    scan = generate_scan_full(seed, shape_zyx, spacing_zyx, n_nodules, **options)  # type: ignore[arg-type]
    return scan.volume, scan.annotations


def generate_scan_full(
    seed: int,
    shape_zyx: Sequence[int] | None = None,
    spacing_zyx: Sequence[float] | None = None,
    n_nodules: tuple[int, int] | int = (0, 4),
    *,
    kinds: Sequence[str] | None = None,
    locations: Sequence[str] | None = None,
    margins: Sequence[str] | None = None,
    diameter_range_mm: tuple[float, float] | None = None,
    slice_thickness_mm: float | None = None,
    noise_sd_hu: float | None = None,
    contrast: bool | None = None,
    patient_position: str | None = None,
    orientation: Sequence[float] | None = None,
    label_mode: str = "threshold",
    workers: int | None = None,
    masses: int = 0,
) -> SyntheticScan:
    """:func:`generate_scan` with everything that went into the scan.

    Args:
        kinds: nodule kinds to draw from (default all of :data:`KINDS`).
        locations: nodule locations to draw from (default: 55 % isolated, 25 % juxta-pleural,
            20 % juxta-vascular).
        margins: nodule margins to draw from (default: by kind, module docstring).
        diameter_range_mm: restrict nodule diameters to (lo, hi).
        slice_thickness_mm: nominal slice thickness (default: drawn, or the slice step).
        noise_sd_hu: quantum noise standard deviation (default drawn 10-40 HU); 0 = noise-free.
        contrast: intravenous contrast (default: drawn, 30 %).
        patient_position: "HFS" or "FFS" (default: 85 % HFS).
        orientation: ImageOrientationPatient, (1, 0, 0, 0, 1, 0) or (-1, 0, 0, 0, 1, 0) (rows to
            the patient's right, slices stored along -z); default: the identity, flipped for half
            of the FFS scans.
        label_mode: "threshold" (default: ``malignant = p >= MALIGNANT_THRESHOLD``) or "sample"
            (``malignant ~ Bernoulli(p)`` with the scan's generator).
        workers: threads (default: up to 4, the CPU count).
        masses: the first this many lesions of the scan are solid masses of
            :data:`MASS_DIAMETER_MM` (log-uniform; above every kind's nodule range), placed isolated
            or against the pleura, as the lung allows. 0 (the default) draws exactly what earlier
            versions drew for a seed.
    """
    if label_mode not in ("threshold", "sample"):
        raise ValueError(f"label_mode must be 'threshold' or 'sample', got {label_mode!r}")
    if isinstance(n_nodules, int):
        n_lo = n_hi = n_nodules
    else:
        n_lo, n_hi = (int(v) for v in n_nodules)
    if n_lo < 0 or n_hi < n_lo:
        raise ValueError(f"n_nodules must be (min, max) with 0 <= min <= max, got {n_nodules}")
    for loc in locations or ():
        if loc not in LOCATIONS:
            raise ValueError(f"unknown location {loc!r}; use one of {LOCATIONS}")
    for mar in margins or ():
        if mar not in MARGINS:
            raise ValueError(f"unknown margin {mar!r}; use one of {MARGINS}")
    if orientation is not None:
        orientation = tuple(float(v) for v in orientation)
        if orientation not in (_IDENTITY_IOP, _FLIPPED_IOP):
            raise ValueError(f"orientation must be {_IDENTITY_IOP} or {_FLIPPED_IOP}, got {orientation}")
    workers = int(workers or min(4, os.cpu_count() or 1))
    rng = np.random.default_rng(seed)
    contrast_draw = bool(rng.random() < 0.3)
    p = _Patient(rng, contrast_draw if contrast is None else bool(contrast))
    p.y0 = float(rng.uniform(-10.0, 10.0)) - 0.5 * (p.Dp - p.Da) - 8.0
    acq = _sample_acquisition(
        rng, p, p.contrast, shape_zyx, spacing_zyx, slice_thickness_mm, noise_sd_hu, patient_position
    )
    if orientation is not None:
        acq = dataclasses.replace(acq, orientation=orientation)
    nz, ny, nx = acq.shape_zyx
    sz, sy, sx = acq.spacing_zyx
    thick = acq.slice_thickness_mm

    oz, oy, ox = acq.origin_zyx
    out = _render_anatomy(p, rng, acq, workers)

    # ---- nodules ----------------------------------------------------------------------------------
    canon = Geometry((nz, ny, nx), np.array([sz, sy, sx]), np.array([ox, oy, oz]))
    n_target = int(rng.integers(n_lo, n_hi + 1))
    models: list[NoduleModel] = []
    annotations: list[NoduleAnnotation] = []
    if max(n_target, int(masses)) > 0:
        lung = _lung_distance(p, canon)
        taken: list[tuple[F64, float]] = []
        for n in range(max(n_target, int(masses))):
            loc = None if not locations else str(locations[int(rng.integers(len(locations)))])
            mar = None if not margins else str(margins[int(rng.integers(len(margins)))])
            if n < int(masses):
                mass_d = float(np.exp(rng.uniform(*np.log(MASS_DIAMETER_MM))))
                mass_loc = loc or ("juxta-pleural" if rng.random() < 0.5 else "isolated")
                model = sample_nodule(rng, kind="solid", diameter_mm=mass_d, location=mass_loc, margin=mar)
            else:
                model = sample_nodule(
                    rng, kinds=kinds, diameter_range_mm=diameter_range_mm, location=loc, margin=mar
                )
            radius = 0.5 * model.diameter_mm
            location = model.location
            centre = place_nodule(rng, out, canon.spacing_zyx, lung, radius, location, taken)
            if centre is None and location != "isolated" and not locations:
                location = "isolated"
                centre = place_nodule(rng, out, canon.spacing_zyx, lung, radius, location, taken)
            label_draw = float(rng.random())
            if centre is None:
                continue
            model = model.with_center(canon.index_to_mm(centre), location)
            render = render_nodule(model, canon, thick, acq.psf_fwhm_mm)
            if render is None:
                continue
            blend_nodule(out, render)
            taken.append((centre, max(radius, 0.7 * model.extent_mm)))
            prob = model.probability()
            malignant = prob >= MALIGNANT_THRESHOLD if label_mode == "threshold" else label_draw < prob
            models.append(model)
            annotations.append(model.annotation(malignant=malignant))

    # ---- noise, clipping, reconstruction circle ---------------------------------------------------
    if acq.noise_sd_hu > 0:
        z_corr = max(0.0, 1.0 - sz / thick) if thick > sz * 1.05 else 0.0
        _add_noise(out, acq.noise_sd_hu, acq.noise_corr_px, z_corr, seed)
    np.clip(out, HU_MIN, HU_MAX, out=out)
    if acq.pad_value is not None:
        jj = (np.arange(ny) - 0.5 * (ny - 1)) * sy
        ii = (np.arange(nx) - 0.5 * (nx - 1)) * sx
        outside = (jj[:, None] ** 2 + ii[None, :] ** 2) > (0.5 * min(ny * sy, nx * sx)) ** 2
        out[:, outside] = acq.pad_value
    hu = np.empty(out.shape, dtype=np.int16)
    np.rint(out, out=out)
    hu[...] = out

    # ---- orientation as written ------------------------------------------------------------------
    if acq.orientation == _FLIPPED_IOP:
        hu = np.ascontiguousarray(hu[::-1, :, ::-1])
        origin = canon.index_to_mm((nz - 1, 0, nx - 1))
        geometry = Geometry((nz, ny, nx), np.array([sz, sy, sx]), origin, np.diag([-1.0, 1.0, -1.0]))
    else:
        geometry = canon
    volume = Volume(
        hu_zyx=hu,
        geometry=geometry,
        modality="CT",
        description=f"NodeView synthetic chest CT {thick:g} mm",
        series_uid=str(generate_uid(entropy_srcs=["nodeview-synth-ct", "series", str(seed)])),
        patient_position=acq.patient_position,
        source_format="synthetic",
        slice_thickness_mm=thick,
        patient=PatientInfo(name="SYNTHETIC^CT", patient_id=f"SYNTH-{seed:06d}"),
    )
    return SyntheticScan(volume, annotations, acq, models, int(seed))


_LOCAL = threading.local()


def _scratch(shape: tuple[int, int, int]) -> F32:
    """A float32 work array, reused by later scans of the same thread (fresh memory is slow to
    touch the first time; a data-generation process writes thousands of scans)."""
    n = int(np.prod(shape))
    buf = getattr(_LOCAL, "buffer", None)
    if buf is None or buf.size < n:
        buf = np.empty(int(n * 1.25), dtype=np.float32)  # headroom: scans differ in length
        _LOCAL.buffer = buf
    return buf[:n].reshape(shape)


def _render_anatomy(p: _Patient, rng: np.random.Generator, acq: Acquisition, workers: int) -> F32:
    """The noise-free scan on the output grid (canonical orientation): anatomy on a fine z grid,
    slice-sensitivity profile, table, in-plane PSF."""
    nz, ny, nx = acq.shape_zyx
    sz, sy, sx = acq.spacing_zyx
    thick = acq.slice_thickness_mm
    px = min(sy, sx)
    n_sub = max(1, int(math.ceil(sz / 1.25 - 1e-6)))
    dz = sz / n_sub
    half = int(math.ceil(0.95 * thick / dz))
    n_fine = (nz - 1) * n_sub + 2 * half + 1
    oz, oy, ox = acq.origin_zyx
    fine_origin = np.array([oz - half * dz, oy, ox])
    fine_spacing = np.array([dz, sy, sx])
    scene = _Scene(p, fine_origin, fine_spacing, dz, n_fine)
    scene.setup(rng, ny, nx)
    tubes = _build_tubes(p, rng, px)
    fine = _scratch((n_fine, ny, nx))

    def paint_range(lo: int, hi: int) -> None:
        for m in range(lo, hi):
            scene.paint(fine[m], m, float(fine_origin[0] + m * dz))

    _run_chunks(paint_range, n_fine, workers)
    edge = 0.5 * (px + dz)

    def tubes_range(lo: int, hi: int) -> None:
        for tube in tubes:
            _paint_tubes(fine, fine_origin, fine_spacing, tube, edge, (lo, hi))

    _run_chunks(tubes_range, n_fine, workers)

    # slice-sensitivity profile, table and in-plane PSF, slice by slice and in place: output slice k
    # only reads fine slices >= k, so it can overwrite fine slice k
    weights = ssp_weights(dz * np.arange(-half, half + 1, dtype=np.float64), thick)
    terms = [(j, np.float32(wj)) for j, wj in enumerate(weights) if wj >= 1e-3]
    t_occ, t_hu = scene.table()
    t_rows = np.flatnonzero(t_occ.any(axis=1))
    t_sl = slice(int(t_rows[0]), int(t_rows[-1]) + 1) if len(t_rows) else slice(0, 0)
    t_occ, t_hu = t_occ[t_sl], t_hu[t_sl]
    sigma = acq.psf_fwhm_mm / 2.3548 / np.array([sy, sx])
    acc = np.empty((ny, nx), dtype=np.float32)
    tmp = np.empty((ny, nx), dtype=np.float32)
    for k in range(nz):
        base = k * n_sub
        j0, w0 = terms[0]
        np.multiply(fine[base + j0], w0, out=acc)
        for j, wj in terms[1:]:
            np.multiply(fine[base + j], wj, out=tmp)
            acc += tmp
        band = acc[t_sl]
        np.maximum(band, band + t_occ * (t_hu - band), out=band)
        _blur2d(acc, sigma, fine[k], tmp)
    return fine[:nz]

def _lung_distance(p: _Patient, geometry: Geometry) -> LungDistance:
    """Distance to the lung boundary of the analytic lungs, on a ~4 mm coarse grid of ``geometry``
    (canonical orientation)."""
    nz, ny, nx = geometry.shape_zyx
    sz, sy, sx = (float(v) for v in geometry.spacing_zyx)
    stride = (max(1, int(round(3.0 / sz))), max(1, int(round(4.0 / sy))), max(1, int(round(4.0 / sx))))
    kk = np.arange(0, nz, stride[0])
    jj = np.arange(0, ny, stride[1])
    ii = np.arange(0, nx, stride[2])
    ox, oy, oz = (float(v) for v in geometry.origin_xyz)
    bx = (ox + ii * sx - p.x_mid).astype(np.float32)[None, :]
    by = (oy + jj * sy - p.y0).astype(np.float32)[:, None]
    m = p.maps(np.broadcast_to(bx, (len(jj), len(ii))), np.broadcast_to(by, (len(jj), len(ii))))
    mask = np.zeros((len(kk), len(jj), len(ii)), dtype=bool)
    for n, k in enumerate(kk):
        mask[n] = p.lung_occupancy(m, float(p.t_of(oz + k * sz))) > 0.5
    return LungDistance.from_mask(mask, stride, (sz, sy, sx))
