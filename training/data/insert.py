"""Synthetic nodules inserted into real chest CT (training data source (b)); no Qt, no torch.

The nodule model, partial-volume renderer, placement rules and malignancy rule are those of
:mod:`training.data.synth` (see its docstring). Here the background is a real scan, so vessels,
fissures, texture and noise around the nodule are real:

* centres are placed inside the lungs found by :func:`nodeview.core.detect.lung.segment_lungs`, at least
  radius + 3 mm from the lung boundary and over parenchyma (isolated), 0.6-0.9 radius from the
  pleura found by marching towards the nearest boundary until tissue (juxta-pleural), or touching
  a vessel found by thresholding > -300 HU inside the lung (juxta-vascular); nodules keep 4 mm
  apart from each other and from the ``avoid`` annotations (e.g. the scan's own nodules);
* each voxel becomes ``out = max(bg, (1 - a) * bg + a * nodule_hu)`` with ``a`` the supersampled
  partial-volume occupancy (slice-sensitivity profile of the series' slice thickness, Gaussian
  in-plane PSF), so denser real structures show through ground glass;
* blending removes part of the real noise where the nodule replaces the background, so noise is
  added back there with standard deviation ``sd * sqrt(1 - (1 - a)^2)``; ``sd`` and the in-plane
  correlation are estimated from the parenchyma around each nodule (lag-1 and lag-3 differences);
* voxels outside the nodules' render boxes, and inside them where the nodule adds nothing, keep
  their exact original values; the geometry is unchanged.

The scan's own nodules are not annotated by insertion: pass them as ``avoid`` (and to
:func:`write_inserted` as ``existing``, which also puts them in the record), or use scans without
nodules. Use different real scans for training, validation and test data (seed ranges in
:mod:`training.data.make_data`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.uid import generate_uid
from scipy import ndimage

from nodeview.core.detect.lung import LungMask, segment_lungs
from nodeview.core.geometry import Geometry
from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.volume import Volume
from training.data.annotations import NoduleAnnotation, ScanRecord
from training.data.synth.arrays import HU_MAX, HU_MIN
from training.data.synth.nodules import (
    KINDS,
    LOCATIONS,
    MALIGNANT_THRESHOLD,
    blend_values,
    render_nodule,
    sample_nodule,
)
from training.data.synth.placement import LungDistance, place_nodule
from training.data.synth.scanner import noise_gain

__all__ = ["estimate_noise", "insert_nodules", "lung_distance", "write_inserted"]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


def lung_distance(mask: LungMask, geometry: Geometry, cell_mm: float = 4.0) -> LungDistance:
    """Distance to the lung boundary from a :class:`LungMask`, on a ~``cell_mm`` coarse grid."""
    sz, sy, _ = (float(v) for v in geometry.spacing_zyx)
    f = int(mask.factor)
    s_in = max(1, int(round(cell_mm / (sy * f))))
    s_z = max(1, int(round(0.75 * cell_mm / sz)))
    coarse = mask.mask_zyx[::s_z, ::s_in, ::s_in]
    return LungDistance.from_mask(coarse, (s_z, f * s_in, f * s_in), geometry.spacing_zyx)


def estimate_noise(values: NDArray[np.floating], lo: float = -950.0, hi: float = -650.0) -> tuple[float, float]:
    """(noise sd in HU, in-plane Gaussian correlation in pixels) from lung parenchyma in ``values``
    (a (z, y, x) block): robust spread of differences along rows at lags 1 and 3."""
    v = np.asarray(values, dtype=np.float32)

    def diff_sd(lag: int) -> float:
        a, b = v[:, :, lag:], v[:, :, :-lag]
        ok = (a > lo) & (a < hi) & (b > lo) & (b < hi)
        d = (a - b)[ok]
        if d.size < 200:
            return float("nan")
        return float(1.4826 * np.median(np.abs(d - np.median(d))))

    d1, d3 = diff_sd(1), diff_sd(3)
    if not (math.isfinite(d1) and math.isfinite(d3)) or d3 <= 0:
        return 20.0, 0.6
    sd = d3 / math.sqrt(2.0)
    rho1 = float(np.clip(1.0 - (d1 / d3) ** 2, 0.0, 0.9))
    corr = math.sqrt(-1.0 / (4.0 * math.log(rho1))) if rho1 > 0.01 else 0.0
    return float(np.clip(sd, 2.0, 80.0)), float(np.clip(corr, 0.0, 1.5))


def insert_nodules(
    volume: Volume,
    seed: int,
    n: int,
    kinds: Sequence[str] = KINDS,
    *,
    locations: Sequence[str] | None = None,
    margins: Sequence[str] | None = None,
    diameter_range_mm: tuple[float, float] | None = None,
    psf_fwhm_mm: float = 0.8,
    avoid: Sequence[NoduleAnnotation] = (),
    lung_mask: LungMask | None = None,
    label_mode: str = "threshold",
) -> tuple[Volume, list[NoduleAnnotation]]:
    """Insert ``n`` synthetic nodules into the lungs of a real scan.

    Args:
        volume: the real CT (any orientation; its geometry is kept).
        seed: random seed (deterministic result for the same volume and arguments).
        n: nodules to insert; fewer come back when the lungs have no room left.
        kinds: kinds to draw from (default all of ``synth.nodules.KINDS``).
        locations: locations to draw from (default 55 % isolated, 25 % juxta-pleural,
            20 % juxta-vascular); a location that cannot be placed falls back to isolated unless
            given explicitly.
        margins: margins to draw from (default by kind).
        diameter_range_mm: restrict diameters to (lo, hi).
        psf_fwhm_mm: in-plane PSF of the rendering (real scans: ~0.6-1.0 mm).
        avoid: existing nodules (LPS centres, diameters) to keep away from.
        lung_mask: a precomputed ``segment_lungs`` result for ``volume``.
        label_mode: "threshold" or "sample", as in :func:`training.data.synth.generator.generate_scan_full`.

    Returns:
        ``(new volume, annotations)`` with ``source="inserted"`` annotations in LPS mm.
    """
    if label_mode not in ("threshold", "sample"):
        raise ValueError(f"label_mode must be 'threshold' or 'sample', got {label_mode!r}")
    for loc in locations or ():
        if loc not in LOCATIONS:
            raise ValueError(f"unknown location {loc!r}; use one of {LOCATIONS}")
    geom = volume.geometry
    hu = volume.hu_zyx
    rng = np.random.default_rng(seed)
    mask = lung_mask if lung_mask is not None else segment_lungs(hu, geom)
    if not mask.mask_zyx.any():
        raise ValueError("no lungs found in the volume; cannot insert nodules")
    lung = lung_distance(mask, geom)
    sp = np.asarray(geom.spacing_zyx, dtype=np.float64)
    thickness = float(volume.slice_thickness_mm or sp[0])
    out = hu.copy()
    taken: list[tuple[F64, float]] = []
    for ann in avoid:
        if geom.contains_mm(ann.center_xyz_mm):
            taken.append((geom.mm_to_index(ann.center_xyz_mm), 0.5 * float(ann.diameter_mm)))
    annotations: list[NoduleAnnotation] = []
    for index in range(int(n)):
        loc = None if not locations else str(locations[int(rng.integers(len(locations)))])
        mar = None if not margins else str(margins[int(rng.integers(len(margins)))])
        model = sample_nodule(rng, kinds=kinds, diameter_range_mm=diameter_range_mm, location=loc, margin=mar)
        radius = 0.5 * model.diameter_mm
        location = model.location
        centre = place_nodule(rng, hu, sp, lung, radius, location, taken)
        if centre is None and location != "isolated" and not locations:
            location = "isolated"
            centre = place_nodule(rng, hu, sp, lung, radius, location, taken)
        label_draw = float(rng.random())
        if centre is None:
            continue
        model = model.with_center(geom.index_to_mm(centre), location)
        render = render_nodule(model, geom, thickness, psf_fwhm_mm)
        if render is None:
            continue
        region = out[render.slices]
        bg = region.astype(np.float32)
        new, changed = blend_values(bg, render.alpha, render.material)
        sd, corr = estimate_noise(_context(hu, centre, sp, 25.0))
        noise = np.random.default_rng([int(seed), 0x1A5E, index]).standard_normal(bg.shape).astype(np.float32)
        if corr > 0:
            noise = ndimage.gaussian_filter(noise, (0.0, corr, corr), truncate=3.0) / np.float32(noise_gain(corr))
        lost = np.sqrt(np.clip(1.0 - (1.0 - render.alpha) ** 2, 0.0, 1.0))
        new = np.where(changed, new + np.float32(sd) * lost * noise, new)
        new = np.clip(np.rint(new), HU_MIN, HU_MAX)
        region[changed] = new[changed].astype(np.int16)
        taken.append((centre, max(radius, 0.7 * model.extent_mm)))
        prob = model.probability()
        malignant = prob >= MALIGNANT_THRESHOLD if label_mode == "threshold" else label_draw < prob
        annotations.append(model.annotation(malignant=malignant, source="inserted"))
    new_uid = str(generate_uid(entropy_srcs=["nodeview-inserted", volume.series_uid, str(seed)]))
    result = dataclasses.replace(
        volume,
        hu_zyx=out,
        description=(volume.description + " + inserted nodules").strip(),
        series_uid=new_uid,
        warnings=(),
    )
    return result, annotations


def _context(hu: NDArray[np.int16], centre: F64, sp: F64, half_mm: float) -> NDArray[np.int16]:
    c = np.rint(centre).astype(int)
    half = np.maximum(1, np.ceil(half_mm / sp)).astype(int)
    half[0] = max(1, min(half[0], 6))
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, np.asarray(hu.shape))
    return hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]


def write_inserted(
    out_dir: str | Path,
    source: Volume | str | Path,
    seed: int,
    n: int,
    scan_id: str | None = None,
    existing: Sequence[NoduleAnnotation] = (),
    **options: object,
) -> ScanRecord:
    """Insert nodules into a real scan and write the result as one DICOM series into ``out_dir``.

    Args:
        out_dir: destination folder of the series.
        source: the real scan (a Volume, or a path :func:`nodeview.core.io.study.open_study` opens).
        seed: insertion seed; also seeds the UIDs.
        n: nodules to insert.
        scan_id: record id (default ``ins-<seed>``).
        existing: the scan's own nodules: kept clear of and included in the record.
        **options: passed to :func:`insert_nodules`.

    Returns:
        A :class:`ScanRecord` (``source="inserted"``, ``fold = seed % 10``) with the inserted and
        the ``existing`` nodules.
    """
    if isinstance(source, Volume):
        volume = source
    else:
        from nodeview.core.io.study import open_study

        volume = open_study(source)
    new, annotations = insert_nodules(volume, seed, n, avoid=existing, **options)  # type: ignore[arg-type]
    hu, geom = new.hu_zyx, new.geometry
    d = geom.direction
    if float(np.cross(d[:, 0], d[:, 1]) @ d[:, 2]) < 0:  # left-handed (e.g. from NIfTI): store slices reversed
        hu = np.ascontiguousarray(hu[::-1])
        origin = geom.index_to_mm((geom.shape_zyx[0] - 1, 0, 0))
    else:
        origin = geom.origin_xyz
    signed = int(hu.min()) < -1024
    spec = SeriesSpec(
        spacing_zyx=tuple(float(v) for v in geom.spacing_zyx),  # type: ignore[arg-type]
        origin_xyz=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        orientation=tuple(float(v) for v in (*d[:, 0], *d[:, 1])),
        patient_position=new.patient_position or "HFS",
        series_uid=new.series_uid,
        study_uid=str(generate_uid(entropy_srcs=["nodeview-inserted", "study", new.series_uid])),
        frame_of_reference_uid=str(generate_uid(entropy_srcs=["nodeview-inserted", "for", new.series_uid])),
        series_description=new.description[:64] or "CT + inserted nodules",
        slice_thickness=new.slice_thickness_mm,
        rescale_intercept=-1024.0,
        pixel_representation=1 if signed else 0,
        file_names="instance",
        patient_name="INSERTED^CT",
        patient_id=f"INS-{seed:07d}",
        patient_birth_date="",
        accession_number=f"INS{seed:07d}",
        seed=int(seed),
    )
    write_series(hu, out_dir, spec)
    return ScanRecord(
        scan_id=scan_id or f"ins-{seed:07d}",
        path=str(out_dir),
        nodules=tuple(annotations) + tuple(existing),
        fold=int(seed) % 10,
        series_uid=new.series_uid,
        source="inserted",
    )
