"""Synthetic chest CT with annotated lung nodules (training data source (a)); no Qt, no torch.

Coordinates follow :mod:`nodeview.core.geometry`: arrays ``hu_zyx[k, j, i]`` of int16 HU, LPS mm
positions ``(x, y, z)``, ``origin_xyz`` = centre of voxel ``[0, 0, 0]``. Annotation centres are LPS
mm (= LUNA16 world coordinates) and survive any orientation the series is written in.

Anatomy (analytic, drawn per patient from the seed)
    Body outline with skin (+40 HU), subcutaneous fat (-100, thickness varying with angle; breasts
    in about 40 % of patients), chest-wall and paraspinal muscle (~50), a curved scanner table;
    12 rib pairs (cortex 700-1000 HU, marrow 150-300, costal cartilage anteriorly) following the
    thoracic cavity and descending anteriorly, so each axial slice cuts several ribs obliquely;
    thoracic spine with vertebral bodies (cancellous 280-380 HU in a cortical shell), discs,
    spinal canal, pedicles/laminae, spinous and transverse processes; sternum, scapulae and
    clavicles; mediastinal fat with heart (pericardial fat, myocardium, contrast-filled chambers
    when contrast is on), aorta (ascending, arch with branches, descending; ~40 HU plain or
    180-350 HU with contrast), pulmonary trunk and arteries, SVC, oesophagus; trachea and main
    bronchi (-1000 HU lumen, soft-tissue wall); lungs at about -850 HU with a gravity gradient,
    low-frequency texture, sometimes dependent density or emphysema, fissures (thin lines of the
    fissure's integrated density: two major, the right minor); pulmonary artery and vein trees
    grown from the hila by recursive partitioning of random lung points (a Kitaoka-style
    space-filling model; Murray's law radii, 6 mm at the hilum down to 0.5 mm), bronchi with walls
    along the larger arterial branches; diaphragm domes (right higher) with liver below the right
    lung, stomach (fluid with an air cap) and spleen below the left.

Acquisition
    Slice thickness 1, 1.25, 2.5 or 5 mm (sometimes overlapping reconstruction), pixel spacing
    0.55-0.9 mm chosen so the body fits a 512 field of view; the phantom is drawn on a fine z grid
    (<= 1.25 mm) and reduced with the slice-sensitivity profile (a box of the slice thickness
    softened by a Gaussian), then blurred in-plane with a Gaussian PSF (FWHM 0.6-1.0 mm);
    quantum noise sd 10-40 HU, white or in-plane correlated (and correlated between overlapping
    slices; each slice's noise is a shifted, flipped window of a bank of independent noise
    images); values clipped to [-1024, 3071];
    pixels outside the reconstruction circle set to -2000 or -3024 in some scans. Most scans are
    HFS with the identity orientation; some are FFS (identity, or rows running to patient right
    and slices stored inferior to superior along the flipped normal), always with a correct
    :class:`~nodeview.core.geometry.Geometry`.

Nodules (3-30 mm; ground glass up to 40 mm so the rule's large-GGN branch has examples)
    solid (+20..+60 HU), part-solid (ground-glass halo -600..-400 with a solid core),
    ground-glass (-720..-380 with internal texture), calcified (central, diffuse, popcorn or
    laminated calcium 400-1000 HU); margins smooth, lobulated (union of spheres) or spiculated
    (tapering radial spicules); locations isolated, juxta-pleural (centre 0.6-0.9 radius from the
    pleura, so the nodule abuts the chest wall) or juxta-vascular (touching a vessel). Nodules are
    rendered by supersampling each voxel's footprint (pixel x slice-sensitivity profile) plus the
    PSF and blended as ``out = max(bg, (1 - a) * bg + a * nodule_hu)``: the nodule replaces
    lung, denser background (vessels crossing a ground-glass nodule, the chest wall) shows
    through. ``diameter_mm`` is the equivalent-sphere diameter of the nodule body (spicules
    excluded); the centre is the centre of that body.

Malignancy rule (mirrors Lung-RADS v2022 risk categories; :func:`malignancy_probability`)
    ===========================  ==========================================  =============
    kind                         size (mm)                                   probability
    ===========================  ==========================================  =============
    calcified (any pattern)      any                                         0.01
    solid                        < 6 / 6-8 / 8-15 / >= 15                    0.01 / 0.02 /
                                                                             0.10 / 0.30
    part-solid                   total < 6                                   0.01
    part-solid (total >= 6)      solid component < 6 / 6-8 / >= 8            0.05 / 0.25 /
                                                                             0.50
    ground-glass                 < 30 / >= 30                                0.02 / 0.20
    ===========================  ==========================================  =============

    Margins multiply the odds (not for calcified nodules): lobulated x2, spiculated x10 (the
    Lung-RADS "4X" upgrade). ``malignancy_score`` stores the probability. The label is
    THRESHOLDED, not sampled: ``malignant = probability >= MALIGNANT_THRESHOLD`` (0.15, the
    Lung-RADS 4B risk level), so the label is a deterministic function of what the image shows
    (:func:`is_malignant`). ``generate_scan(..., label_mode="sample")`` instead draws the label
    from the probability with the scan's random generator.

API
    :func:`generate_scan` (deterministic given ``seed`` and the arguments) returns
    ``(Volume, [NoduleAnnotation])``; :func:`generate_scan_full` also returns the acquisition and
    nodule models and takes the options (kinds, locations, margins, sizes, noise, contrast,
    orientation, label mode); :func:`write_scan` writes the scan as a DICOM series with
    :func:`nodeview.core.io.dicom_write.write_series` and returns a
    :class:`~training.data.annotations.ScanRecord`. Nodules are drawn after the anatomy, so the same
    seed without nodules gives the same patient. The nodule renderer (:func:`sample_nodule`,
    :func:`render_nodule`, :func:`blend_values`, :func:`place_nodule`) is shared with
    :mod:`training.data.insert`.

Speed
    A 512 x 512 x 220-320 scan takes about 5-7 s on two CPU cores (the anatomy of each slice is
    painted in threads), plus about 1.5 s to write it as DICOM; 48 x 128 x 128 about 0.5-1 s.
    Work arrays are reused by later scans of the same thread.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.uid import generate_uid
from scipy import ndimage
from scipy.special import erf

from nodeview.core.geometry import Geometry
from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.volume import PatientInfo, Volume
from training.data.annotations import NoduleAnnotation, ScanRecord

__all__ = [
    "KINDS",
    "LOCATIONS",
    "MALIGNANT_THRESHOLD",
    "MARGINS",
    "Acquisition",
    "LungDistance",
    "NoduleModel",
    "NoduleRender",
    "SyntheticScan",
    "blend_nodule",
    "blend_values",
    "generate_scan",
    "generate_scan_full",
    "is_malignant",
    "malignancy_probability",
    "noise_gain",
    "place_nodule",
    "render_nodule",
    "sample_nodule",
    "ssp_weights",
    "write_scan",
]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

KINDS = ("solid", "part-solid", "ground-glass", "calcified")
MARGINS = ("smooth", "lobulated", "spiculated")
LOCATIONS = ("isolated", "juxta-pleural", "juxta-vascular")
CALCIFICATIONS = ("central", "diffuse", "popcorn", "laminated")

#: Probability at or above which a nodule is labelled malignant (Lung-RADS 4B: > 15 % risk).
MALIGNANT_THRESHOLD = 0.15
#: Odds multipliers of the margin (not applied to calcified nodules).
MARGIN_ODDS = {"smooth": 1.0, "unknown": 1.0, "lobulated": 2.0, "spiculated": 10.0}

SLICE_CHOICES_MM = ((1.0, 1.0), (1.25, 1.25), (1.25, 1.0), (2.5, 2.5), (2.5, 1.25), (5.0, 5.0))
_SLICE_WEIGHTS = (0.2, 0.3, 0.1, 0.15, 0.05, 0.2)
AIR_HU = -1000.0
HU_MIN, HU_MAX = -1024.0, 3071.0


# ================================================================================================
# Malignancy rule
# ================================================================================================
def malignancy_probability(
    diameter_mm: float, kind: str, margin: str = "smooth", solid_diameter_mm: float | None = None
) -> float:
    """Risk of malignancy under the written rule (module docstring), 0-1.

    Args:
        diameter_mm: equivalent diameter of the whole nodule.
        kind: solid, part-solid, ground-glass or calcified ("unknown" is treated as solid).
        margin: smooth, lobulated or spiculated ("unknown" = smooth).
        solid_diameter_mm: part-solid only: diameter of the solid component (default half the
            total diameter).
    """
    d = float(diameter_mm)
    if not math.isfinite(d) or d < 0:
        raise ValueError(f"diameter_mm must be a non-negative number, got {diameter_mm}")
    if margin not in MARGIN_ODDS:
        raise ValueError(f"margin must be one of {tuple(MARGIN_ODDS)}, got {margin!r}")
    if kind == "calcified":
        return 0.01
    if kind in ("solid", "unknown"):
        p = 0.01 if d < 6 else 0.02 if d < 8 else 0.10 if d < 15 else 0.30
    elif kind == "part-solid":
        s = 0.5 * d if solid_diameter_mm is None else float(solid_diameter_mm)
        p = 0.01 if d < 6 else 0.05 if s < 6 else 0.25 if s < 8 else 0.50
    elif kind == "ground-glass":
        p = 0.02 if d < 30 else 0.20
    else:
        raise ValueError(f"kind must be one of {KINDS} or 'unknown', got {kind!r}")
    odds = p / (1.0 - p) * MARGIN_ODDS[margin]
    return float(min(0.99, max(0.005, odds / (1.0 + odds))))


def is_malignant(
    diameter_mm: float,
    kind: str,
    margin: str = "smooth",
    solid_diameter_mm: float | None = None,
    threshold: float = MALIGNANT_THRESHOLD,
) -> bool:
    """The thresholded label: ``malignancy_probability(...) >= threshold`` (default 0.15)."""
    return malignancy_probability(diameter_mm, kind, margin, solid_diameter_mm) >= threshold


# ================================================================================================
# Nodule model, rendering and blending (shared with training.data.insert)
# ================================================================================================
@dataclass(frozen=True, eq=False)
class NoduleModel:
    """One synthetic nodule, in millimetres.

    Local coordinates are ``p_local = rotation.T @ (p_xyz - center_xyz_mm)``. The body is the
    union of ``lobes`` (x, y, z, r) in the stretched frame ``p_local / axes``; ``core`` (part-solid
    solid component) and ``calc`` (calcium) spheres live in the same frame; ``shell`` is an optional
    calcified ring (r_in, r_out) of the stretched radius; ``spicules`` rows are
    (start xyz, end xyz, r_start, r_end) in the unstretched local frame.
    """

    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float
    kind: str
    margin: str
    location: str
    calcification: str
    rotation: F64
    axes: F64
    lobes: F64
    core: F64
    calc: F64
    shell: tuple[float, float] | None
    spicules: F64
    body_hu: float
    core_hu: float
    calc_hu: float
    texture: F64
    solid_diameter_mm: float | None
    extent_mm: float
    fuzz_mm: float = 0.0

    def with_center(self, center_xyz_mm: Sequence[float], location: str | None = None) -> NoduleModel:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["center_xyz_mm"] = tuple(float(v) for v in center_xyz_mm)
        if location is not None:
            values["location"] = location
        return NoduleModel(**values)

    def probability(self) -> float:
        return malignancy_probability(self.diameter_mm, self.kind, self.margin, self.solid_diameter_mm)

    def annotation(self, malignant: bool | None = None, source: str = "synthetic") -> NoduleAnnotation:
        p = self.probability()
        return NoduleAnnotation(
            center_xyz_mm=(
                round(self.center_xyz_mm[0], 3),
                round(self.center_xyz_mm[1], 3),
                round(self.center_xyz_mm[2], 3),
            ),
            diameter_mm=round(self.diameter_mm, 3),
            malignant=(p >= MALIGNANT_THRESHOLD) if malignant is None else bool(malignant),
            malignancy_score=round(p, 4),
            kind=self.kind,
            margin=self.margin,
            location=self.location,
            source=source,
        )

    # ---- evaluation at local points -------------------------------------------------------------
    def _stretched(self, p: F64) -> F64:
        return p / self.axes

    def signed_distance(self, p: F64) -> tuple[F64, F64 | None, F64 | None]:
        """Approximate signed distances (mm, negative inside) to the outer surface, the solid core and
        the calcium, for local points ``p`` (n, 3)."""
        q = self._stretched(p)
        scale = float(self.axes.min())
        d_body = _spheres_distance(q, self.lobes) * scale
        d_out = d_body
        if len(self.spicules):
            d_out = np.minimum(d_out, _capsules_distance(p, self.spicules))
        d_core = _spheres_distance(q, self.core) * scale if len(self.core) else None
        d_calc = None
        if len(self.calc) or self.shell is not None:
            d_calc = _spheres_distance(q, self.calc) * scale if len(self.calc) else np.full(len(p), np.inf)
            if self.shell is not None:
                rho = np.sqrt(np.einsum("ij,ij->i", q, q))
                mid, half = 0.5 * (self.shell[0] + self.shell[1]), 0.5 * (self.shell[1] - self.shell[0])
                d_calc = np.minimum(d_calc, (np.abs(rho - mid) - half) * scale)
        return d_out, d_core, d_calc

    def material(self, p: F64, d: tuple[F64, F64 | None, F64 | None]) -> tuple[NDArray[np.bool_], F64]:
        """(inside, HU) at local points given their :meth:`signed_distance`."""
        d_out, d_core, d_calc = d
        inside = d_out < 0
        hu = np.full(len(p), self.body_hu, dtype=np.float64)
        if len(self.texture):
            for kx, ky, kz, phase, amp in self.texture:
                hu += amp * np.cos(p[:, 0] * kx + p[:, 1] * ky + p[:, 2] * kz + phase)
        if len(self.spicules):
            q = self._stretched(p)
            in_spicule_only = _spheres_distance(q, self.lobes) >= 0
            hu[in_spicule_only] = self.core_hu
        if d_core is not None:
            hu[d_core < 0] = self.core_hu
        if d_calc is not None:
            hu[d_calc < 0] = self.calc_hu
        return inside, hu


def _spheres_distance(q: F64, spheres: F64) -> F64:
    """Signed distance to a union of spheres (rows x, y, z, r)."""
    out = np.full(len(q), np.inf)
    for cx, cy, cz, r in spheres:
        d = np.sqrt((q[:, 0] - cx) ** 2 + (q[:, 1] - cy) ** 2 + (q[:, 2] - cz) ** 2) - r
        np.minimum(out, d, out=out)
    return out


def _capsules_distance(p: F64, caps: F64) -> F64:
    """Signed distance to a union of tapered capsules (rows: a xyz, b xyz, ra, rb)."""
    out = np.full(len(p), np.inf)
    for row in caps:
        a, b, ra, rb = row[0:3], row[3:6], row[6], row[7]
        ab = b - a
        length2 = float(ab @ ab) + 1e-12
        reach = math.sqrt(length2) + max(ra, rb)
        mid = 0.5 * (a + b)
        near = np.einsum("ij,ij->i", p - mid, p - mid) < (0.5 * reach + 2.0) ** 2
        if not near.any():
            continue
        pa = p[near] - a
        t = np.clip(pa @ ab / length2, 0.0, 1.0)
        dist = np.linalg.norm(pa - t[:, None] * ab, axis=1) - (ra + (rb - ra) * t)
        out[near] = np.minimum(out[near], dist)
    return out


def _random_rotation(rng: np.random.Generator) -> F64:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _unit_vectors(rng: np.random.Generator, n: int) -> F64:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _union_volume(spheres: F64, n: int = 40) -> float:
    """Volume of a union of spheres by a regular grid (relative error ~1 %)."""
    lo = (spheres[:, :3] - spheres[:, 3:4]).min(axis=0)
    hi = (spheres[:, :3] + spheres[:, 3:4]).max(axis=0)
    axes = [np.linspace(lo[a], hi[a], n) for a in range(3)]
    step = [(hi[a] - lo[a]) / (n - 1) for a in range(3)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = _spheres_distance(g, spheres) < 0
    return float(inside.sum() * step[0] * step[1] * step[2])


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


_KIND_P = {"solid": 0.55, "part-solid": 0.12, "ground-glass": 0.15, "calcified": 0.18}
_KIND_DIAMETER = {
    "solid": (3.0, 30.0),
    "part-solid": (6.0, 30.0),
    "ground-glass": (5.0, 40.0),
    "calcified": (3.0, 15.0),
}
_MARGIN_P = {
    "solid": (0.5, 0.3, 0.2),
    "part-solid": (0.45, 0.3, 0.25),
    "ground-glass": (0.7, 0.3, 0.0),
    "calcified": (0.7, 0.3, 0.0),
}
_LOCATION_P = (0.55, 0.25, 0.20)


def sample_nodule(
    rng: np.random.Generator,
    kind: str | None = None,
    diameter_mm: float | None = None,
    margin: str | None = None,
    location: str | None = None,
    calcification: str | None = None,
    kinds: Sequence[str] | None = None,
    diameter_range_mm: tuple[float, float] | None = None,
    center_xyz_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> NoduleModel:
    """Draw a nodule (kind, size, margin, shape, HU) from the distributions of the module docstring.

    Args:
        rng: random generator (the scan's).
        kind, diameter_mm, margin, location, calcification: fix that property instead of drawing it.
        kinds: draw the kind among these only (with the default relative frequencies).
        diameter_range_mm: clip the kind's diameter range to this (lo, hi).
        center_xyz_mm: LPS centre (usually set later with :meth:`NoduleModel.with_center`).
    """
    if kind is None:
        pool = [k for k in (kinds or KINDS)]
        for k in pool:
            if k not in KINDS:
                raise ValueError(f"unknown nodule kind {k!r}; use one of {KINDS}")
        w = np.array([_KIND_P[k] for k in pool])
        kind = pool[int(rng.choice(len(pool), p=w / w.sum()))]
    if kind not in KINDS:
        raise ValueError(f"unknown nodule kind {kind!r}; use one of {KINDS}")
    if diameter_mm is None:
        lo, hi = _KIND_DIAMETER[kind]
        if diameter_range_mm is not None:
            lo, hi = max(lo, diameter_range_mm[0]), min(hi, diameter_range_mm[1])
            if lo > hi:
                lo = hi = float(np.clip(diameter_range_mm[1], *_KIND_DIAMETER[kind]))
        diameter_mm = _log_uniform(rng, lo, hi) if hi > lo else lo
    d = float(diameter_mm)
    if margin is None:
        margin = MARGINS[int(rng.choice(3, p=np.array(_MARGIN_P[kind])))]
    if location is None:
        location = LOCATIONS[int(rng.choice(3, p=np.array(_LOCATION_P)))]
    if kind == "calcified":
        if calcification is None:
            calcification = CALCIFICATIONS[int(rng.choice(4, p=[0.35, 0.35, 0.2, 0.1]))]
        if calcification == "popcorn":
            margin = "lobulated"
    else:
        calcification = "none"

    # --- shape in a unit frame (main lobe radius 1), scaled to the target volume afterwards -----
    axes = np.clip(1.0 + rng.normal(0.0, 0.08, 3), 0.8, 1.25)
    axes = axes / np.prod(axes) ** (1.0 / 3.0)
    lobes = [[0.0, 0.0, 0.0, 1.0]]
    if margin == "lobulated":
        for u in _unit_vectors(rng, int(rng.integers(3, 7))):
            lobes.append([*(u * rng.uniform(0.55, 0.8)), rng.uniform(0.4, 0.6)])
    elif margin == "spiculated" and rng.random() < 0.5:
        for u in _unit_vectors(rng, int(rng.integers(2, 4))):
            lobes.append([*(u * rng.uniform(0.3, 0.5)), rng.uniform(0.55, 0.75)])
    lobes_a = np.asarray(lobes, dtype=np.float64)
    unit_volume = _union_volume(lobes_a) * float(np.prod(axes))
    scale = ((math.pi / 6.0) * d**3 / unit_volume) ** (1.0 / 3.0)
    lobes_a = lobes_a * scale
    radius = 0.5 * d

    # --- HU and components -----------------------------------------------------------------------
    core = np.zeros((0, 4))
    calc = np.zeros((0, 4))
    shell: tuple[float, float] | None = None
    texture_amp = 6.0
    solid_d: float | None = None
    solid_hu = float(rng.uniform(20.0, 60.0))
    if kind == "solid":
        body_hu = solid_hu
    elif kind == "ground-glass":
        body_hu = float(rng.uniform(-720.0, -380.0))
        texture_amp = float(rng.uniform(15.0, 35.0))
    elif kind == "part-solid":
        body_hu = float(rng.uniform(-600.0, -400.0))
        texture_amp = float(rng.uniform(12.0, 25.0))
        solid_d = float(d * rng.uniform(0.25, 0.7))
        rc = 0.5 * solid_d  # stretched frame: volume scales by prod(axes) == 1
        off = _unit_vectors(rng, 1)[0] * rng.uniform(0.0, 0.35) * rc
        core = np.array([[*off, rc]])
    else:  # calcified
        calc_hu = float(rng.uniform(400.0, 1000.0))
        body_hu = solid_hu
        if calcification == "diffuse":
            body_hu = float(rng.uniform(300.0, 700.0))
            calc_hu = body_hu
        elif calcification == "central":
            rc = min(0.8 * radius, max(0.4 * radius, 1.5))
            calc = np.array([[0.0, 0.0, 0.0, rc]])
        elif calcification == "popcorn":
            blobs = [[0.0, 0.0, 0.0, max(0.22 * radius, 1.0)]]
            for u in _unit_vectors(rng, int(rng.integers(3, 7))):
                blobs.append([*(u * rng.uniform(0.25, 0.6) * radius), max(rng.uniform(0.12, 0.22) * radius, 0.6)])
            calc = np.asarray(blobs)
        else:  # laminated: central nidus and one concentric ring
            calc = np.array([[0.0, 0.0, 0.0, max(0.25 * radius, 1.0)]])
            shell = (0.5 * radius, 0.62 * radius)
    core_hu = solid_hu  # part-solid core; also the density of spicules
    if kind == "calcified":
        core_hu = body_hu
    else:
        calc_hu = body_hu
    if kind == "ground-glass":
        core_hu = body_hu + 120.0  # strands of a ground-glass nodule are only a little denser

    # --- spicules ----------------------------------------------------------------------------------
    spicules = np.zeros((0, 8))
    if margin == "spiculated":
        n_sp = int(rng.integers(10, 25))
        rows = []
        for u in _unit_vectors(rng, n_sp):
            length = min(15.0, radius * rng.uniform(0.6, 1.6))
            start = u * radius * 0.75
            end = u * (radius + length)
            end = end + rng.normal(0.0, 0.12 * length, 3)  # slightly bent/curved look
            rb = max(0.5, radius * rng.uniform(0.1, 0.2))
            rows.append([*start, *end, rb, 0.25])
        spicules = np.asarray(rows)

    texture = np.zeros((0, 5))
    if texture_amp > 0:
        waves = []
        for u in _unit_vectors(rng, 4):
            k = 2.0 * math.pi / rng.uniform(2.0, 6.0)
            waves.append([*(u * k), rng.uniform(0, 2 * math.pi), texture_amp / 2.0])
        texture = np.asarray(waves)

    extent = float(np.max(np.linalg.norm(lobes_a[:, :3], axis=1) + lobes_a[:, 3]) * axes.max())
    if len(spicules):
        extent = max(extent, float(np.max(np.linalg.norm(spicules[:, 3:6], axis=1) + spicules[:, 6])))
    return NoduleModel(
        center_xyz_mm=tuple(float(v) for v in center_xyz_mm),  # type: ignore[arg-type]
        diameter_mm=d,
        kind=kind,
        margin=margin,
        location=location,
        calcification=calcification,
        rotation=_random_rotation(rng),
        axes=axes,
        lobes=lobes_a,
        core=core,
        calc=calc,
        shell=shell,
        spicules=spicules,
        body_hu=body_hu,
        core_hu=core_hu,
        calc_hu=calc_hu,
        texture=texture,
        solid_diameter_mm=solid_d,
        extent_mm=extent,
        fuzz_mm=float(rng.uniform(0.4, 1.2)) if kind in ("ground-glass", "part-solid") else 0.0,
    )


@dataclass(frozen=True)
class NoduleRender:
    """A nodule on a voxel grid: ``alpha`` (partial-volume occupancy 0-1) and ``material`` (HU) over
    the array region ``slices``."""

    slices: tuple[slice, slice, slice]
    alpha: F32
    material: F32


def ssp_weights(offsets_mm: F64, thickness_mm: float) -> F64:
    """Slice-sensitivity profile at offsets along the slice normal: a box of the slice thickness
    softened by a Gaussian (sigma = 0.15 x thickness); normalised to sum 1."""
    sigma = 0.15 * thickness_mm
    a = (offsets_mm + 0.5 * thickness_mm) / (math.sqrt(2.0) * sigma)
    b = (offsets_mm - 0.5 * thickness_mm) / (math.sqrt(2.0) * sigma)
    w = 0.5 * (erf(a) - erf(b))
    return np.asarray(w / max(float(w.sum()), 1e-12), dtype=np.float64)


def render_nodule(
    model: NoduleModel,
    geometry: Geometry,
    thickness_mm: float | None = None,
    psf_fwhm_mm: float = 0.8,
    oversample: int = 3,
) -> NoduleRender | None:
    """Partial-volume rendering of ``model`` on ``geometry``'s grid.

    Each voxel averages the nodule over its footprint: ``oversample`` x ``oversample`` points across
    the pixel and points along the slice normal weighted by the slice-sensitivity profile of
    ``thickness_mm`` (default: the slice spacing); voxels whose footprint cannot touch a surface
    are evaluated once. The result is blurred in-plane with a Gaussian PSF of ``psf_fwhm_mm``.
    Returns None when the nodule lies outside the grid.
    """
    sz, sy, sx = (float(v) for v in geometry.spacing_zyx)
    thick = float(thickness_mm) if thickness_mm else sz
    sigma_px = psf_fwhm_mm / 2.3548 / np.array([sy, sx])
    half_ssp = 0.5 * thick + 0.3 * thick
    reach = model.extent_mm + 1.0
    center_idx = geometry.mm_to_index(np.asarray(model.center_xyz_mm))
    fuzz = 2.5 * model.fuzz_mm
    pad = np.array([(half_ssp + fuzz) / sz, 3.0 * sigma_px[0] + 1 + fuzz / sy, 3.0 * sigma_px[1] + 1 + fuzz / sx])
    half = np.array([reach / sz, reach / sy, reach / sx]) + pad
    lo = np.floor(center_idx - half).astype(int)
    hi = np.ceil(center_idx + half).astype(int) + 1
    shape = np.asarray(geometry.shape_zyx)
    lo_c, hi_c = np.maximum(lo, 0), np.minimum(hi, shape)
    if np.any(hi_c <= lo_c):
        return None
    kk, jj, ii = (np.arange(lo_c[a], hi_c[a], dtype=np.float64) for a in range(3))
    grid = np.stack(np.meshgrid(kk, jj, ii, indexing="ij"), axis=-1).reshape(-1, 3)
    centre = np.asarray(model.center_xyz_mm)
    rot = model.rotation

    def local(idx: F64) -> F64:
        return np.asarray((geometry.index_to_mm(idx) - centre) @ rot, dtype=np.float64)

    p = local(grid)
    d = model.signed_distance(p)
    footprint = math.sqrt((0.5 * sx) ** 2 + (0.5 * sy) ** 2 + half_ssp**2) + 0.05
    near = np.abs(d[0]) < footprint
    for extra in d[1:]:
        if extra is not None:
            near |= np.abs(extra) < footprint
    inside, hu = model.material(p, d)
    alpha = inside.astype(np.float64)
    mat_sum = np.where(inside, hu, 0.0)

    idx_near = np.flatnonzero(near)
    if len(idx_near):
        n_xy = max(1, int(oversample))
        n_z = int(np.clip(math.ceil(2 * half_ssp / 0.4), 3, 11))
        offs_xy = (np.arange(n_xy) + 0.5) / n_xy - 0.5
        offs_z_mm = np.linspace(-half_ssp, half_ssp, n_z)
        wz = ssp_weights(offs_z_mm, thick)
        oz, oy, ox = np.meshgrid(offs_z_mm / sz, offs_xy, offs_xy, indexing="ij")
        offsets = np.stack([oz.ravel(), oy.ravel(), ox.ravel()], axis=-1)
        weights = np.repeat(wz, n_xy * n_xy) / (n_xy * n_xy)
        chunk = max(1, 200_000 // len(offsets))
        for start in range(0, len(idx_near), chunk):
            sel = idx_near[start : start + chunk]
            pts = (grid[sel][:, None, :] + offsets[None, :, :]).reshape(-1, 3)
            ps = local(pts)
            ds = model.signed_distance(ps)
            ins, hs = model.material(ps, ds)
            w = weights[None, :] * ins.reshape(len(sel), -1)
            alpha[sel] = w.sum(axis=1)
            mat_sum[sel] = (w * hs.reshape(len(sel), -1)).sum(axis=1)
    box = tuple(int(v) for v in hi_c - lo_c)
    alpha_b = alpha.reshape(box)
    mat_b = mat_sum.reshape(box)  # already alpha-weighted (sum of HU over occupied samples)
    if model.fuzz_mm > 0:  # ground glass fades into the lung over about a millimetre
        fz = model.fuzz_mm / np.array([sz, sy, sx])
        alpha_b = ndimage.gaussian_filter(alpha_b, fz, truncate=2.5)
        mat_b = ndimage.gaussian_filter(mat_b, fz, truncate=2.5)
    if psf_fwhm_mm > 0:
        alpha_b = ndimage.gaussian_filter(alpha_b, (0.0, *sigma_px), truncate=3.0)
        mat_b = ndimage.gaussian_filter(mat_b, (0.0, *sigma_px), truncate=3.0)
    material = np.where(alpha_b > 1e-6, mat_b / np.maximum(alpha_b, 1e-6), model.body_hu)
    alpha_b[alpha_b < 0.005] = 0.0  # far Gaussian tails: leave those voxels exactly as they were
    sl = (slice(int(lo_c[0]), int(hi_c[0])), slice(int(lo_c[1]), int(hi_c[1])), slice(int(lo_c[2]), int(hi_c[2])))
    return NoduleRender(sl, alpha_b.astype(np.float32), material.astype(np.float32))


def blend_values(bg: NDArray[np.floating], alpha: F32, material: F32) -> tuple[F32, NDArray[np.bool_]]:
    """``max(bg, (1 - a) * bg + a * nodule_hu)`` and where it differs from ``bg``: the nodule replaces
    lung; denser background (vessels crossing a ground-glass nodule, chest wall) shows through."""
    bg32 = np.asarray(bg, dtype=np.float32)
    new = bg32 + alpha * (material - bg32)
    changed = new > bg32
    return np.where(changed, new, bg32).astype(np.float32), changed


def blend_nodule(hu: F32, render: NoduleRender) -> NDArray[np.bool_]:
    """Blend a rendered nodule into the float HU array ``hu`` in place (see :func:`blend_values`).
    Returns where it changed, over ``render.slices``."""
    new, changed = blend_values(hu[render.slices], render.alpha, render.material)
    hu[render.slices] = new
    return changed


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


# ================================================================================================
# Patient anatomy
# ================================================================================================
@dataclass
class _Maps:
    """Angle-dependent quantities about the polar origin of a patient (grid or point arrays)."""

    bx: NDArray[np.float32]
    by: NDArray[np.float32]
    r: NDArray[np.float32]
    c2: NDArray[np.float32]
    s2p: NDArray[np.float32]
    s2a: NDArray[np.float32]
    sin: NDArray[np.float32]
    s_param: NDArray[np.float32]
    cav_mod: NDArray[np.float32]
    muscle0: NDArray[np.float32]
    cos2: NDArray[np.float32]
    fat0: NDArray[np.float32]
    breast: NDArray[np.float32]
    scap_zone: NDArray[np.float32]
    theta_side: NDArray[np.float32]
    t_cap: NDArray[np.float32]
    t_dome: NDArray[np.float32]
    dome_g: NDArray[np.float32]
    band_prof: NDArray[np.float32]


class _Patient:
    """One random patient: sizes, HU values and the organ layout, in a body frame.

    Body frame: ``bx = x - x_mid`` (mm, + patient left), ``by = y - y0`` (mm, + posterior), and the
    craniocaudal parameter ``t = (z_apex - z) / H`` (0 at the lung apices, 1 at the deepest
    costophrenic recess).
    """

    def __init__(self, rng: np.random.Generator, contrast: bool) -> None:
        u = rng.uniform
        self.contrast = contrast
        self.W = u(118.0, 150.0)
        self.Da = u(68.0, 92.0)
        self.Dp = u(82.0, 102.0)
        self.H = u(225.0, 285.0)
        self.x_mid = u(-15.0, 15.0)
        self.y0 = u(-25.0, 5.0)
        self.z_apex = u(-70.0, 10.0)
        # wall
        self.skin = u(1.5, 2.5)
        self.m_lat, self.m_ant, self.m_post, self.m_spine = u(9, 16), u(8, 15), u(16, 24), u(18, 28)
        self.fat = u(5.0, 32.0)
        self.fat_harm = rng.normal(0.0, 0.18, 4)
        self.fat_phase = rng.uniform(0, 2 * math.pi, 4)
        self.female = rng.random() < 0.4
        self.breast_mm = u(15.0, 55.0) if self.female else 0.0
        self.cav_harm = rng.normal(0.0, 0.015, 3)
        self.cav_phase = rng.uniform(0, 2 * math.pi, 3)
        # HU
        self.skin_hu = u(25, 55)
        self.fat_hu = u(-115, -88)
        self.muscle_hu = u(40, 62)
        self.med_fat_hu = u(-100, -70)
        self.lung_hu = u(-885, -825)
        self.lung_grad = u(15, 80)
        self.dep_hu = u(60, 260) if rng.random() < 0.3 else 0.0
        self.lung_tex = u(6.0, 16.0)
        self.emphysema = u(0.03, 0.12) if rng.random() < 0.15 else 0.0
        self.blood_hu = u(35, 50)
        self.aorta_hu = u(180, 350) if contrast else self.blood_hu
        self.pa_hu = u(160, 320) if contrast else self.blood_hu
        self.vein_hu = u(130, 260) if contrast else self.blood_hu
        self.myo_hu = u(80, 120) if contrast else u(40, 55)
        self.liver_hu = u(90, 125) if contrast else u(50, 70)
        self.spleen_hu = u(95, 130) if contrast else u(42, 55)
        self.cortex_hu = u(700, 1000)
        self.marrow_hu = u(150, 300)
        self.vert_hu = u(280, 380)
        self.disc_hu = u(70, 110)
        self.cart_hu = u(80, 150) if rng.random() < 0.7 else u(250, 450)
        self.csf_hu = u(15, 35)
        self.stomach_hu = u(5, 30)
        # mediastinum, heart, diaphragm, organs
        self.xm = u(-6.0, 2.0)
        self.heart = {
            "x": u(0.12, 0.22) * self.W,
            "y": -u(0.28, 0.4) * self.Da,
            "t": u(0.58, 0.64),
            "a": u(0.40, 0.47) * self.W,
            "b": 0.0,
            "c": u(0.17, 0.21) * self.H,
            "ang": math.radians(u(30, 45)),
            "fat": u(2.0, 7.0),
        }
        self.heart["b"] = self.heart["a"] * u(0.7, 0.82)
        self.t_dr = u(0.66, 0.74)
        self.t_dl = self.t_dr + u(0.02, 0.06)
        # spine levels (vertebra + disc), ~T1 centred at the apex
        dlev = 1.05 / 11.0
        t1 = u(-0.02, 0.03)
        self.levels = t1 - 0.5 * dlev + dlev * np.arange(-6, 20)  # boundaries (t), increasing
        self.rib_heads = t1 + dlev * (np.arange(12) + 0.3)
        self.rib_drop = u(100.0, 135.0)
        self.rib_hz, self.rib_hr = u(5.0, 6.5), u(2.6, 3.4)
        self.rib_ends = np.array([0.95, 0.96, 0.96, 0.96, 0.96, 0.96, 0.95, 0.9, 0.85, 0.8, 0.6, 0.45])
        self.canal_r = u(7.0, 8.5)
        self.spinous = u(22.0, 32.0)
        self.scap_d = u(10.0, 14.0)
        self.sternum_h = u(4.5, 6.0)
        # fissures (t at the posterior / anterior ends)
        self.fiss_l = (u(0.18, 0.26), u(0.82, 0.92))
        self.fiss_r = (u(0.24, 0.32), u(0.84, 0.94))
        self.fiss_minor = u(0.42, 0.5)
        self.fiss_amp = u(120.0, 260.0)
        self.fiss_tilt = u(0.03, 0.08)
        self.trachea_r = u(9.0, 12.0)
        self.t_carina = u(0.3, 0.36)

    # ---- profiles along t ----------------------------------------------------------------------
    _T = np.array([-0.5, -0.05, 0.0, 0.1, 0.2, 0.35, 0.5, 0.8, 1.0, 1.4])
    _PA = np.array([0.55, 0.5, 0.52, 0.68, 0.8, 0.92, 0.98, 1.02, 1.02, 0.98])
    _PB = np.array([0.6, 0.58, 0.6, 0.72, 0.82, 0.92, 0.98, 1.0, 1.0, 0.98])

    def cavity_axes(self, t: NDArray[np.floating] | float) -> tuple[F64, F64, F64]:
        a = self.W * np.interp(t, self._T, self._PA)
        pb = np.interp(t, self._T, self._PB)
        return a, self.Da * pb, self.Dp * pb

    def band_width(self, t: NDArray[np.floating] | float) -> F64:
        return np.interp(t, [-0.5, 0.0, 0.15, 0.3, 0.4, 0.5, 0.7, 1.0], [30, 30, 38, 44, 44, 30, 20, 16])

    def spine(self, t: NDArray[np.floating] | float) -> tuple[F64, F64, F64]:
        """(vertebral body half width, half depth, centre by) at ``t``."""
        tc = np.clip(t, -0.4, 1.4)
        av = 14.0 + 6.0 * tc
        bv = 9.0 + 5.0 * tc
        _, _, bp = self.cavity_axes(t)
        return av, bv, bp - bv - 3.0

    def aorta_desc(self, t: NDArray[np.floating] | float) -> tuple[F64, F64, F64]:
        """Descending aorta centre (bx, by) and radius at ``t`` (valid for t > 0.25)."""
        av, bv, yv = self.spine(t)
        r = np.interp(t, [0.2, 1.4], [12.5, 10.5])
        bx = av * 0.55 + r * 0.75
        by = yv - bv - 1.0 + np.interp(t, [0.2, 1.4], [0.0, 6.0])
        bx = bx * np.interp(t, [0.9, 1.4], [1.0, 0.4])
        return bx, by, r

    # ---- angle maps ------------------------------------------------------------------------------
    def maps(self, bx: NDArray[np.floating], by: NDArray[np.floating]) -> _Maps:
        bx, by = np.broadcast_arrays(np.asarray(bx, np.float32), np.asarray(by, np.float32))
        r = np.hypot(bx, by).astype(np.float32)
        r_safe = np.maximum(r, 1e-3)
        cos = bx / r_safe
        sin = by / r_safe
        post = (by > 0).astype(np.float32)
        theta = np.arctan2(by, bx)
        theta_side = np.arctan2(by, np.abs(bx)).astype(np.float32)
        s_param = ((0.5 * math.pi - theta_side) / math.pi).astype(np.float32)
        cav_mod = np.ones_like(r)
        for k, (amp, ph) in enumerate(zip(self.cav_harm, self.cav_phase, strict=True)):
            cav_mod += np.float32(amp) * np.cos((k + 2) * theta + ph).astype(np.float32)
        wp = np.clip(sin, 0, 1) ** 2
        wa = np.clip(-sin, 0, 1) ** 2
        wspine = np.clip(sin, 0, 1) ** 12
        scap = (_smoothstep(0.35, 0.55, theta_side) * (1.0 - _smoothstep(1.2, 1.4, theta_side))).astype(np.float32)
        muscle0 = self.m_lat + (self.m_post - self.m_lat) * wp + (self.m_ant - self.m_lat) * wa
        muscle0 = muscle0 + self.m_spine * wspine + 8.0 * scap
        fat0 = np.ones_like(r)
        for k, (amp, ph) in enumerate(zip(self.fat_harm, self.fat_phase, strict=True)):
            fat0 += np.float32(amp) * np.cos((k + 1) * theta + ph).astype(np.float32)
        fat0 = self.fat * np.clip(fat0, 0.4, 1.8) * (1.0 - 0.6 * wspine)
        breast = np.zeros_like(r)
        if self.female:
            for centre in (math.radians(-62.0), math.radians(-118.0)):
                diff = np.angle(np.exp(1j * (theta - centre)))
                breast += np.exp(-0.5 * (diff / math.radians(24.0)) ** 2).astype(np.float32)
            breast *= np.float32(self.breast_mm)
        # apex caps: the lungs start at (+-xa, ya) at t = 0 and widen like paraboloids
        xa, ya, rap = 0.42 * self.W, 0.12 * self.Dp, 45.0
        t_cap = 0.16 * ((np.abs(bx) - xa) ** 2 + (0.8 * (by - ya)) ** 2) / rap**2
        # diaphragm domes: right (bx < 0) higher; the periphery reaches the recesses
        sx, sy = 0.55 * self.W, 0.45 * (self.Da + self.Dp)
        t_per = np.interp(by, [-self.Da, 0.0, self.Dp], [0.88, 0.95, 1.0])
        domes = []
        for t_top, side in ((self.t_dr, -1.0), (self.t_dl, 1.0)):
            uu = ((bx - side * 0.5 * self.W) / sx) ** 2 + ((by - 0.05 * self.Dp) / sy) ** 2
            domes.append(t_top + (t_per - t_top) * np.clip(uu, 0, 1.6) ** 1.3)
        t_dome = np.where(bx < 0, domes[0], domes[1]).astype(np.float32)
        if t_dome.ndim == 2 and min(t_dome.shape) > 2:
            gy, gx = np.gradient(t_dome * self.H, by[:, 0], bx[0, :])
            dome_g = (1.0 / np.sqrt(1.0 + gx**2 + gy**2)).astype(np.float32)
        else:
            dome_g = np.full_like(r, 0.8)
        band_prof = self._band_profile(by)
        return _Maps(
            bx=bx,
            by=by,
            r=r,
            c2=(cos * cos).astype(np.float32),
            s2p=(sin * sin * post).astype(np.float32),
            s2a=(sin * sin * (1 - post)).astype(np.float32),
            sin=sin.astype(np.float32),
            s_param=s_param,
            cav_mod=cav_mod.astype(np.float32),
            muscle0=muscle0.astype(np.float32),
            cos2=(cos * cos).astype(np.float32),
            fat0=fat0.astype(np.float32),
            breast=breast.astype(np.float32),
            scap_zone=scap,
            theta_side=theta_side,
            t_cap=t_cap.astype(np.float32),
            t_dome=t_dome,
            dome_g=dome_g.astype(np.float32),
            band_prof=band_prof.astype(np.float32),
        )

    def _band_profile(self, by: NDArray[np.floating]) -> NDArray[np.float32]:
        rel = np.where(by < 0, by / self.Da, by / self.Dp)
        knots = [-1.1, -0.85, -0.6, -0.3, 0.1, 0.4, 0.8, 1.2]
        return np.interp(rel, knots, [0.12, 0.2, 0.55, 1.0, 1.0, 0.7, 0.5, 0.45]).astype(np.float32)

    # ---- shared geometry ---------------------------------------------------------------------------
    def cavity_d(self, m: _Maps, t: NDArray[np.floating] | float) -> NDArray[np.float32]:
        """Signed radial distance (mm) to the inner rib cage, positive outside."""
        a, ba, bp = self.cavity_axes(t)
        inv = m.c2 / np.float32(a) ** 2 + m.s2p / np.float32(bp) ** 2 + m.s2a / np.float32(ba) ** 2 + np.float32(1e-12)
        rc = np.float32(1.0) / np.sqrt(inv)
        return np.asarray(m.r - rc * m.cav_mod, dtype=np.float32)

    def heart_d(
        self, bx: NDArray[np.floating], by: NDArray[np.floating], t: NDArray[np.floating] | float, grow: float = 0.0
    ) -> NDArray[np.float32]:
        """Signed distance (mm) to the heart: ventricles (ellipsoid with its long axis towards the
        left-anterior) joined to the atria (smaller, posterior-right and higher)."""
        h = self.heart
        ca, sa = math.cos(h["ang"]), math.sin(h["ang"])
        dx, dy = bx - h["x"], by - h["y"]
        u = dx * ca - dy * sa  # along the long axis (towards left-anterior)
        v = dx * sa + dy * ca
        out = None
        for du, dv, dt, fa, fb, fc in ((0.0, 0.0, 0.0, 1.0, 1.0, 1.0), (-0.5, 0.45, -0.3, 0.62, 0.6, 0.72)):
            zz = (np.asarray(t) - (h["t"] + dt * h["c"] / self.H)) * self.H / (fc * h["c"])
            scale = np.sqrt(np.clip(1.0 - zz**2, 0.0, None)).astype(np.float32)
            a = fa * h["a"] * scale + 1e-3
            b = fb * h["b"] * scale + 1e-3
            rho = np.sqrt(((u - du * h["a"]) / a) ** 2 + ((v - dv * h["b"]) / b) ** 2)
            d = np.where(scale > 0.02, (rho - 1.0) * np.minimum(a, b) - grow, 1e3)
            out = d if out is None else np.minimum(out, d)
        return np.asarray(out, dtype=np.float32)

    def lung_occupancy(self, m: _Maps, t: NDArray[np.floating] | float, w: float = 1.0) -> F32:
        """Soft lung occupancy (both lungs) at the points of ``m`` and craniocaudal ``t``."""
        occ = _soft(self.cavity_d(m, t), w)
        occ *= _soft((m.t_cap - t) * self.H, w)
        occ *= _soft((np.asarray(t) - m.t_dome) * self.H * m.dome_g, w)
        band = self.band_width(t) * m.band_prof
        occ *= 1.0 - _soft(np.abs(m.bx - self.xm) - band, w)
        occ *= 1.0 - _soft(self.heart_d(m.bx, m.by, t, grow=self.heart["fat"]), w)
        av, bv, yv = self.spine(t)
        occ *= 1.0 - _soft(_ellipse_d(m.bx, m.by - (yv + 30.0), av + 6.0, bv + 36.0), w)
        ax, ay, ar = self.aorta_desc(t)
        da = np.hypot(m.bx - ax, m.by - ay) - (ar + 2.0)
        occ *= 1.0 - _soft(np.where(np.asarray(t) > 0.24, da, 1e3), w)
        return occ

    def side_of(self, bx: NDArray[np.floating]) -> NDArray[np.bool_]:
        """True for the patient's left lung."""
        return np.asarray(bx) > self.xm

    # ---- z landmarks -------------------------------------------------------------------------------
    def z_of(self, t: float) -> float:
        return self.z_apex - t * self.H

    def t_of(self, z: NDArray[np.floating] | float) -> F64:
        return np.asarray((self.z_apex - np.asarray(z)) / self.H)

    def xyz(self, bx: float, by: float, t: float) -> F64:
        return np.array([self.x_mid + bx, self.y0 + by, self.z_of(t)])


class _SmoothField:
    """Band-limited random field on a grid, evaluated slice by slice: a Gaussian-smoothed coarse
    random lattice (spacing ``scale_mm``) interpolated linearly, separably; about unit sd."""

    def __init__(
        self, rng: np.random.Generator, n_slices: int, dz: float, ny: int, nx: int, dyx: float, scale_mm: float
    ):
        def axis(n: int, step: float) -> tuple[NDArray[np.intp], F32, int]:
            pos = np.arange(n) * step / scale_mm + 1.0
            i0 = np.floor(pos).astype(np.intp)
            return i0, (pos - i0).astype(np.float32), int(i0.max()) + 3

        self.iz, self.fz, nzc = axis(n_slices, dz)
        self.iy, fy, nyc = axis(ny, dyx)
        self.ix, self.fx, nxc = axis(nx, dyx)
        self.fy = fy[:, None]
        coarse = ndimage.gaussian_filter(rng.standard_normal((nzc, nyc, nxc)), 0.7, mode="wrap")
        self.coarse = (coarse / coarse.std()).astype(np.float32)

    def slice(self, m: int) -> F32:
        c, f = self.coarse, self.fz[m]
        plane = c[self.iz[m]] * (1.0 - f) + c[self.iz[m] + 1] * f
        rows = plane[self.iy] * (1.0 - self.fy) + plane[self.iy + 1] * self.fy
        out = rows[:, self.ix]
        out += self.fx * (rows[:, self.ix + 1] - out)
        return out


# ================================================================================================
# Tubes: vessels, airways, great vessels (capsule chains painted on the fine grid)
# ================================================================================================
@dataclass
class _Tubes:
    """Segments (n, 8): x0 y0 z0 x1 y1 z1 r0 r1 (LPS mm), painted with ``hu``; mode "max" keeps
    denser background, "paint" replaces it."""

    segs: F64
    hu: float
    mode: str


def _polyline(points: Sequence[Sequence[float]], radii: Sequence[float], max_len: float = 12.0) -> F64:
    rows = []
    for (p0, r0), (p1, r1) in itertools.pairwise(zip(points, radii, strict=True)):
        a, b = np.asarray(p0, float), np.asarray(p1, float)
        n = max(1, int(math.ceil(np.linalg.norm(b - a) / max_len)))
        for k in range(n):
            f0, f1 = k / n, (k + 1) / n
            rows.append([*(a + (b - a) * f0), *(a + (b - a) * f1), r0 + (r1 - r0) * f0, r0 + (r1 - r0) * f1])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 8)


_BOX_CLASSES = ((6, 10, 10), (8, 14, 14), (12, 20, 20), (16, 28, 28))


def _capsule_occupancy(az: F32, ay: F32, ax: F32, seg: F32, inv_w: np.float32) -> F32:
    """Soft occupancy of tapered capsules; ``az, ay, ax`` are coordinates relative to each capsule's
    start, shaped to broadcast over (batch, z, y, x); ``seg`` rows are dz, dy, dx, r0, r1."""
    dz, dy, dx, r0, r1 = (seg[:, i].reshape(-1, 1, 1, 1) for i in range(5))
    l2 = dz * dz + dy * dy + dx * dx + np.float32(1e-9)
    qd = (az * dz + ay * dy) + ax * dx
    t = qd / l2
    np.clip(t, 0.0, 1.0, out=t)
    q2 = (az * az + ay * ay) + ax * ax
    dist2 = q2 - t * (2.0 * qd - t * l2)
    np.maximum(dist2, 0.0, out=dist2)
    occ = np.sqrt(dist2)
    occ -= r0 + (r1 - r0) * t
    occ *= -inv_w
    occ += np.float32(0.5)
    np.clip(occ, 0.0, 1.0, out=occ)
    return occ


def _paint_tubes(
    fine: F32, origin_zyx: F64, spacing_zyx: F64, tubes: _Tubes, edge_mm: float, z_range: tuple[int, int] | None = None
) -> None:
    """Paint capsules (linearly tapered radius) with a soft edge of ``edge_mm``, only into slices
    ``z_range`` when given. Small capsules are evaluated in batches of fixed-size boxes."""
    segs = np.asarray(tubes.segs, dtype=np.float64)
    if len(segs) == 0:
        return
    nz, ny, nx = fine.shape
    k_lo, k_hi = z_range if z_range is not None else (0, nz)
    hu = np.float32(tubes.hu)
    inv_w = np.float32(1.0 / edge_mm)
    org = np.asarray(origin_zyx, dtype=np.float64)
    sp = np.asarray(spacing_zyx, dtype=np.float64)
    p0 = segs[:, [2, 1, 0]]  # (z, y, x)
    p1 = segs[:, [5, 4, 3]]
    rmax = np.maximum(segs[:, 6], segs[:, 7])[:, None] + edge_mm
    lo = np.floor((np.minimum(p0, p1) - rmax - org) / sp).astype(np.int64)
    hi = np.ceil((np.maximum(p0, p1) + rmax - org) / sp).astype(np.int64) + 1
    live = (hi[:, 0] > k_lo) & (lo[:, 0] < k_hi) & (hi[:, 1] > 0) & (lo[:, 1] < ny) & (hi[:, 2] > 0) & (lo[:, 2] < nx)
    dims = hi - lo
    todo = live.copy()
    seg32 = np.concatenate([p1 - p0, segs[:, 6:8]], axis=1).astype(np.float32)
    upper = np.array([k_hi, ny, nx])
    lower = np.array([k_lo, 0, 0])

    def apply(idx: int, occ_box: F32, base: NDArray[np.int64]) -> None:
        a = np.maximum(base, lower)
        b = np.minimum(base + np.asarray(occ_box.shape), upper)
        if np.any(b <= a):
            return
        o = occ_box[a[0] - base[0] : b[0] - base[0], a[1] - base[1] : b[1] - base[1], a[2] - base[2] : b[2] - base[2]]
        sub = fine[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
        if tubes.mode == "max":
            np.maximum(sub, sub + o * (hu - sub), out=sub)
        else:
            sub += o * (hu - sub)

    for box in _BOX_CLASSES:
        sel = np.flatnonzero(todo & np.all(dims <= np.asarray(box), axis=1))
        if len(sel) == 0:
            continue
        todo[sel] = False
        batch = max(8, 250_000 // int(np.prod(box)))
        kz, ky, kx = (np.arange(n, dtype=np.float32) for n in box)
        for start in range(0, len(sel), batch):
            ids = sel[start : start + batch]
            base = lo[ids]
            rel = (org + base * sp - p0[ids]).astype(np.float32)  # position of the box corner
            az = (rel[:, 0:1] + kz[None, :] * np.float32(sp[0]))[:, :, None, None]
            ay = (rel[:, 1:2] + ky[None, :] * np.float32(sp[1]))[:, None, :, None]
            ax = (rel[:, 2:3] + kx[None, :] * np.float32(sp[2]))[:, None, None, :]
            occ = _capsule_occupancy(az, ay, ax, seg32[ids], inv_w)
            for n, idx in enumerate(ids):
                if occ[n].any():
                    apply(int(idx), occ[n], base[n])
    for idx in np.flatnonzero(todo):
        base = np.maximum(lo[idx], lower)
        top = np.minimum(hi[idx], upper)
        if np.any(top <= base):
            continue
        rel = (org + base * sp - p0[idx]).astype(np.float32)
        kz, ky, kx = (np.arange(top[a] - base[a], dtype=np.float32) * np.float32(sp[a]) + rel[a] for a in range(3))
        occ = _capsule_occupancy(
            kz[None, :, None, None], ky[None, None, :, None], kx[None, None, None, :], seg32[idx : idx + 1], inv_w
        )
        apply(int(idx), occ[0], base)


def _grow_tree(
    rng: np.random.Generator, root: F64, points: F64, r_root: float, r_min: float, first_dir: F64 | None = None
) -> tuple[F64, NDArray[np.intp]]:
    """Space-filling vessel tree by recursive partitioning of ``points`` (Kitaoka-style).

    Each branch heads for the centroid of the points it supplies and covers 35-50 % of the way;
    its points are then split in two by the plane through their centroid across their widest
    spread (perpendicular to the branch); children radii follow Murray's law with flow
    proportional to the number of points supplied. A branch supplying <= 2 points ends at them.
    All branches of one generation are processed together.

    Returns:
        ``(segments, generation)``: rows x0 y0 z0 x1 y1 z1 r0 r1 (LPS mm), and each row's generation.
    """
    pts = np.asarray(points, dtype=np.float64)
    n_all = len(pts)
    node = np.zeros(n_all, dtype=np.intp)
    alive = np.ones(n_all, dtype=bool)
    p0 = np.asarray(root, dtype=np.float64)[None, :]
    pdir = np.zeros((1, 3)) if first_dir is None else np.asarray(first_dir, dtype=np.float64)[None, :]
    radius = np.array([r_root])
    rows: list[F64] = []
    gens: list[NDArray[np.intp]] = []
    gen = 0
    while len(p0) and alive.any():
        n_nodes = len(p0)
        idx = np.flatnonzero(alive)
        nd = node[idx]
        cnt = np.bincount(nd, minlength=n_nodes).astype(np.float64)
        cen = np.stack([np.bincount(nd, weights=pts[idx, a], minlength=n_nodes) for a in range(3)], 1)
        cen /= np.maximum(cnt, 1.0)[:, None]
        v = cen - p0
        dist = np.linalg.norm(v, axis=1)
        u = v / np.maximum(dist, 1e-9)[:, None]
        back = (np.abs(pdir).sum(axis=1) > 0) & ((u * pdir).sum(axis=1) < 0.25)
        u[back] = u[back] + 0.9 * pdir[back]
        u /= np.maximum(np.linalg.norm(u, axis=1), 1e-9)[:, None]
        terminal = (cnt <= 2) | (radius < r_min * 1.15) | (dist < 1e-3)
        frac = rng.uniform(0.35, 0.5, n_nodes)
        extra = rng.uniform(1.0, 4.0, n_nodes)
        length = np.where(terminal, dist + extra, np.maximum(frac * dist, 1.5 * radius))
        p1 = p0 + u * length[:, None]
        r_end = np.where(terminal, np.maximum(0.6 * radius, 0.8 * r_min), 0.96 * radius)
        keep = cnt > 0
        rows.append(np.concatenate([p0, p1, radius[:, None], r_end[:, None]], axis=1)[keep])
        gens.append(np.full(int(keep.sum()), gen, dtype=np.intp))
        # split the points of every non-terminal branch
        split = ~terminal & keep
        alive[idx[terminal[nd]]] = False
        idx = np.flatnonzero(alive)
        if len(idx) == 0:
            break
        nd = node[idx]
        x = pts[idx] - cen[nd]
        x_perp = x - (x * u[nd]).sum(axis=1)[:, None] * u[nd]
        cov = np.zeros((n_nodes, 3, 3))
        for a in range(3):
            for b_ in range(a, 3):
                cov[:, a, b_] = cov[:, b_, a] = np.bincount(nd, weights=x_perp[:, a] * x_perp[:, b_], minlength=n_nodes)
        cov[~split] = np.eye(3)
        axis = np.linalg.eigh(cov)[1][:, :, -1]
        side = (x * axis[nd]).sum(axis=1) > 0
        n_true = np.bincount(nd, weights=side.astype(np.float64), minlength=n_nodes)
        degenerate = (n_true == 0) | (n_true == cnt)
        if degenerate[nd].any():  # all points on one side: alternate them
            side = np.where(degenerate[nd], (np.arange(len(idx)) % 2) == 0, side)
            n_true = np.bincount(nd, weights=side.astype(np.float64), minlength=n_nodes)
        rank = np.cumsum(split) - 1
        node[idx] = 2 * rank[nd] + (~side).astype(np.intp)
        parents = np.flatnonzero(split)
        n_child = np.stack([n_true[parents], cnt[parents] - n_true[parents]], axis=1).ravel()
        parent = np.repeat(parents, 2)
        p0 = p1[parent]
        pdir = u[parent]
        radius = radius[parent] * (n_child / cnt[parent]) ** (1.0 / 3.0)
        gen += 1
    return np.concatenate(rows) if rows else np.zeros((0, 8)), np.concatenate(gens) if gens else np.zeros(0, np.intp)


# ================================================================================================
# The scene: paints the patient on a fine-z grid
# ================================================================================================
class _Scene:
    """Paints one patient onto the canonical (LPS-aligned) grid: ``i`` -> +x, ``j`` -> +y, ``k`` -> +z."""

    def __init__(self, patient: _Patient, origin_zyx: F64, spacing_zyx: F64, fine_dz: float, n_fine: int) -> None:
        self.p = patient
        self.origin = origin_zyx
        self.spacing = spacing_zyx
        self.dz = fine_dz
        self.n_fine = n_fine

    def setup(self, rng: np.random.Generator, ny: int, nx: int) -> None:
        p = self.p
        self.ny, self.nx = ny, nx
        sy, sx = float(self.spacing[1]), float(self.spacing[2])
        self.px = min(sy, sx)
        self.edge = self.px
        y = self.origin[1] + sy * np.arange(ny)
        x = self.origin[2] + sx * np.arange(nx)
        bx = (x - p.x_mid).astype(np.float32)[None, :]
        by = (y - p.y0).astype(np.float32)[:, None]
        self.m_full = p.maps(np.broadcast_to(bx, (ny, nx)), np.broadcast_to(by, (ny, nx)))
        t_all = p.t_of(self.origin[0] + self.dz * np.arange(self.n_fine))
        self.t_range = (float(t_all.min()), float(t_all.max()))
        self.table_top = self._table_top()
        # paint only inside the body's bounding box (over all slices), plus a margin
        body = np.zeros((ny, nx), dtype=bool)
        for t in np.linspace(self.t_range[0], self.t_range[1], 12):
            body |= self._body_d(self.m_full, float(t)) < 3.0 * self.px
        rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
        if len(rows) == 0:
            rows, cols = np.arange(ny), np.arange(nx)
        self.j0, self.i0 = max(0, int(rows[0]) - 3), max(0, int(cols[0]) - 3)
        j1, i1 = min(ny, int(rows[-1]) + 4), min(nx, int(cols[-1]) + 4)
        self.crop = (slice(self.j0, j1), slice(self.i0, i1))
        self.cy, self.cx = j1 - self.j0, i1 - self.i0
        self.m = _Maps(**{k: np.ascontiguousarray(v[self.crop]) for k, v in self.m_full.__dict__.items()})
        self.lung_base = (p.lung_hu + p.lung_grad * _smoothstep(-p.Da, p.Dp, by[self.crop[0]])).astype(np.float32)
        self.tex = _SmoothField(rng, self.n_fine, self.dz, self.cy, self.cx, self.px, 9.0)
        self.emph = _SmoothField(rng, self.n_fine, self.dz, self.cy, self.cx, self.px, 3.5) if p.emphysema > 0 else None
        self.fiss_w = max(self.dz, self.px) * 0.9

    # ---- helpers -----------------------------------------------------------------------------
    def wall(self, m: _Maps, t: float) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(muscle thickness, fat thickness) in mm outside the rib cage at ``t``."""
        p = self.p
        mus = m.muscle0 + np.float32(20.0 * (1.0 - _smoothstep(0.0, 0.15, t))) * m.cos2
        fat = m.fat0 * np.float32(1.0 + 0.5 * _smoothstep(0.8, 1.25, t))
        if p.female:
            bump = float(_smoothstep(0.22, 0.38, t) * (1.0 - _smoothstep(0.6, 0.8, t)))
            if bump > 0:
                fat = fat + m.breast * np.float32(bump)
        return mus, fat

    def _body_d(self, m: _Maps, t: float, table: bool = True, d_c: F32 | None = None) -> NDArray[np.float32]:
        """Signed distance to the skin surface (flattened against the table top)."""
        p = self.p
        mus, fat = self.wall(m, t)
        d_b = (p.cavity_d(m, t) if d_c is None else d_c) - (mus + fat + np.float32(p.skin))
        if table:
            d_b = np.maximum(d_b, m.by - self._table_y(m.bx))
        return d_b

    def _table_y(self, bx: NDArray[np.floating]) -> NDArray[np.float32]:
        return np.asarray(self.table_top - (np.asarray(bx) ** 2) / (2.0 * 1100.0), dtype=np.float32)

    def _table_top(self) -> float:
        """The table top (by at the midline): the 75th percentile over the scan of the body's
        posterior extent, so the back is flattened against it at most levels."""
        p = self.p
        bx = np.linspace(-80.0, 80.0, 17, dtype=np.float32)[None, :]
        by = np.linspace(0.0, 320.0, 321, dtype=np.float32)[:, None]
        m = p.maps(np.broadcast_to(bx, (321, 17)), np.broadcast_to(by, (321, 17)))
        ext = []
        for t in np.linspace(self.t_range[0], self.t_range[1], 24):
            inside = np.flatnonzero((self._body_d(m, float(t), table=False) < 0).any(axis=1))
            if len(inside):
                ext.append(float(by[inside[-1], 0]))
        return float(np.percentile(ext, 75)) if ext else 150.0

    def table(self) -> tuple[F32, F32]:
        """(occupancy, HU) of the scanner table on one slice (the same on every slice)."""
        m = self.m_full
        yy = m.by - self._table_y(m.bx) - 1.0
        lateral = _soft(np.abs(m.bx) - 225.0, self.edge)
        occ = np.zeros_like(yy)
        hu = np.full_like(yy, -1000.0)
        for lo, hi, val in ((0.0, 2.0, 180.0), (2.0, 28.0, -880.0), (28.0, 31.0, 180.0)):
            o = _soft(np.abs(yy - 0.5 * (lo + hi)) - 0.5 * (hi - lo), self.edge) * lateral
            hu = hu + o * (val - hu)
            occ = np.maximum(occ, o)
        return occ.astype(np.float32), hu.astype(np.float32)

    def _lung(self, m: _Maps, d_c: F32, t: float) -> F32:
        """:meth:`_Patient.lung_occupancy` on the crop, with the keep-outs evaluated in their boxes."""
        p, w, H = self.p, self.edge, self.p.H
        occ = _soft(d_c, w)
        occ *= _soft((m.t_cap - np.float32(t)) * np.float32(H), w)
        occ *= _soft((np.float32(t) - m.t_dome) * np.float32(H) * m.dome_g, w)
        band = np.float32(p.band_width(t)) * m.band_prof
        occ *= 1.0 - _soft(np.abs(m.bx - np.float32(p.xm)) - band, w)
        h = p.heart
        if abs(t - h["t"]) * H < 1.3 * h["c"]:
            r = 1.2 * max(h["a"], h["b"]) + h["fat"] + 3.0
            sl = self._box(h["x"], h["y"], r, r)
            mm = self._sub(sl)
            occ[sl] *= 1.0 - _soft(p.heart_d(mm.bx, mm.by, t, grow=h["fat"]), w)
        av, bv, yv = (float(v) for v in p.spine(t))
        sl = self._box(0.0, yv + 30.0, av + 8.0, bv + 38.0)
        mm = self._sub(sl)
        occ[sl] *= 1.0 - _soft(_ellipse_d(mm.bx, mm.by - (yv + 30.0), av + 6.0, bv + 36.0), w)
        if t > 0.24:
            ax, ay, ar = (float(v) for v in p.aorta_desc(t))
            sl = self._box(ax, ay, ar + 4.0, ar + 4.0)
            mm = self._sub(sl)
            occ[sl] *= 1.0 - _soft(np.hypot(mm.bx - ax, mm.by - ay) - (ar + 2.0), w)
        return occ

    # ---- one fine slice ------------------------------------------------------------------------
    def paint(self, out_full: F32, m_index: int, z: float) -> None:
        p, m, w = self.p, self.m, self.edge
        t = float(p.t_of(z))
        H = p.H
        out_full.fill(AIR_HU)
        out = out_full[self.crop]
        d_c = p.cavity_d(m, t)
        mus, _ = self.wall(m, t)
        d_b = self._body_d(m, t, d_c=d_c)
        _paint(out, _soft(d_b, w), p.skin_hu)
        _paint(out, _soft(d_b + np.float32(p.skin), w), p.fat_hu)
        if p.female:
            bump = float(_smoothstep(0.22, 0.38, t) * (1.0 - _smoothstep(0.6, 0.8, t)))
            if bump > 0.05:
                gland = _soft(d_c - mus - np.float32(0.55 * bump) * m.breast, w) * (m.breast > 3.0)
                _paint(out, gland * _soft(d_b + 3.0, w), self.p.muscle_hu * 0.2 - 30.0)
        _paint(out, _soft(d_c - mus, w), p.muscle_hu)
        neck = float(_smoothstep(-0.05, 0.12, t))
        _paint(out, _soft(d_c - 1.5, w), neck * p.med_fat_hu + (1 - neck) * 25.0)
        if t > min(p.t_dr, p.t_dl) - 0.03:
            self._abdomen(out, m, d_c, t)
        # lungs
        if -0.01 < t < 1.1:
            lung = self._lung(m, d_c, t)
            val = self.lung_base + np.float32(p.lung_tex) * self.tex.slice(m_index)
            if p.dep_hu > 0:
                dep = np.exp(np.minimum(d_c, 0.0) / np.float32(6.0)) * np.clip((m.sin - 0.3) / 0.7, 0.0, 1.0)
                val += np.float32(p.dep_hu) * dep
            self._add_fissures(val, m, t)
            if self.emph is not None:
                e = self.emph.slice(m_index)
                thr = np.float32(2.3 - 6.0 * p.emphysema + 0.6 * t)
                mix = np.clip((e - thr) * 2.0, 0.0, 1.0)
                val += mix * (np.float32(-975.0) - val)
            _paint(out, lung, val)
        # heart
        h = p.heart
        if abs(t - h["t"]) * H < 1.3 * h["c"]:
            r = 1.2 * max(h["a"], h["b"]) + h["fat"] + 3.0
            sl = self._box(h["x"], h["y"], r, r)
            mm = self._sub(sl)
            cut = _soft((np.float32(t) - mm.t_dome) * np.float32(H) * mm.dome_g + 2.0, w)
            cut *= _soft(d_c[sl] + 2.0, w)
            sub = out[sl]
            _paint(sub, _soft(p.heart_d(mm.bx, mm.by, t, grow=h["fat"]), w) * cut, p.med_fat_hu - 10.0)
            _paint(sub, _soft(p.heart_d(mm.bx, mm.by, t), w) * cut, p.myo_hu)
            if p.contrast:
                _paint(sub, _soft(p.heart_d(mm.bx, mm.by, t, grow=-7.0), w) * cut, 0.5 * (p.aorta_hu + p.pa_hu))
        self._spine(out, t)
        self._ribs(out, m, d_c, t)
        self._sternum(out, t)
        self._scapulae(out, m, d_c, t)

    def _box(self, bx: float, by: float, hx: float, hy: float) -> tuple[slice, slice]:
        """Crop-relative (rows, columns) covering body-frame box centre (bx, by), half sizes (hx, hy)."""
        p = self.p
        sy, sx = float(self.spacing[1]), float(self.spacing[2])
        j0 = int(np.clip(math.floor((p.y0 + by - hy - self.origin[1]) / sy) - self.j0, 0, self.cy))
        j1 = int(np.clip(math.ceil((p.y0 + by + hy - self.origin[1]) / sy) + 1 - self.j0, 0, self.cy))
        i0 = int(np.clip(math.floor((p.x_mid + bx - hx - self.origin[2]) / sx) - self.i0, 0, self.cx))
        i1 = int(np.clip(math.ceil((p.x_mid + bx + hx - self.origin[2]) / sx) + 1 - self.i0, 0, self.cx))
        return slice(j0, max(j0, j1)), slice(i0, max(i0, i1))

    def _sub(self, sl: tuple[slice, slice]) -> _Maps:
        m = self.m
        return _Maps(**{k: (v[sl] if isinstance(v, np.ndarray) and v.ndim == 2 else v) for k, v in m.__dict__.items()})

    def _abdomen(self, out: F32, m: _Maps, d_c: F32, t: float) -> None:
        p, w, H = self.p, self.edge, self.p.H
        dd = (m.t_dome - np.float32(t)) * np.float32(H) * m.dome_g  # > 0 above the diaphragm
        if float(dd.min()) > 2 * w:
            return
        _paint(out, _soft(dd, w) * _soft(d_c, w), p.muscle_hu)
        inner = _soft(dd + 4.0, w) * _soft(d_c + 3.0, w)
        _paint(out, inner, -45.0)
        x_lv = float(np.interp(t - p.t_dr, [0.0, 0.08, 0.25, 0.6], [0.35 * p.W, 0.2 * p.W, 0.0, -0.25 * p.W]))
        _paint(out, inner * _soft(m.bx - x_lv, w), p.liver_hu)
        for cx, cy, ct, sa, sb, sc, kind in (
            (0.62 * p.W, 0.5 * p.Dp, p.t_dl + 0.13, 0.22 * p.W, 0.3 * p.Dp, 0.11 * H, "spleen"),
            (0.4 * p.W, -0.12 * p.Da, p.t_dl + 0.12, 0.3 * p.W, 0.42 * p.Da, 0.12 * H, "stomach"),
        ):
            zz = (t - ct) * H / sc
            if abs(zz) >= 1:
                continue
            s = math.sqrt(1 - zz * zz)
            sl = self._box(cx, cy, sa * s + 3, sb * s + 3)
            mm = self._sub(sl)
            sub = out[sl]
            inn = inner[sl]
            d = _ellipse_d(mm.bx - cx, mm.by - cy, sa * s, sb * s)
            if kind == "spleen":
                _paint(sub, _soft(d, w) * inn, p.spleen_hu)
            else:
                _paint(sub, _soft(d, w) * inn, p.muscle_hu)
                lumen = _soft(d + 3.0, w) * inn
                _paint(sub, lumen, p.stomach_hu)
                air = _soft((mm.by - (cy - 0.15 * sb * s)), w) * lumen
                _paint(sub, air, AIR_HU)

    def _add_fissures(self, val: F32, m: _Maps, t: float) -> None:
        """Add the major fissures (oblique) and the right minor fissure (nearly horizontal) to the lung
        HU ``val``: thin lines with a triangular profile of the fissure's integrated density."""
        p, H, wf = self.p, self.p.H, self.fiss_w
        by = m.by[:, 0].astype(np.float64)
        bx = m.bx[0, :].astype(np.float64)
        xq = 0.04 * (bx / p.W) ** 2 + p.fiss_tilt * np.abs(bx - p.xm) / p.W
        span = 0.8 * (p.Dp + p.Da)
        amp = np.float32(p.fiss_amp / wf)
        cols_l = np.flatnonzero(bx > p.xm)
        cols_r = np.flatnonzero(bx <= p.xm)
        t_major_r = None
        for cols, (t_post, t_ant) in ((cols_l, p.fiss_l), (cols_r, p.fiss_r)):
            if len(cols) == 0:
                continue
            slope = (t_ant - t_post) / span
            t_row = t_post + slope * (0.8 * p.Dp - by)
            if cols is cols_r:
                t_major_r = (t_row, slope)
            norm = 1.0 / math.sqrt(1.0 + (H * slope) ** 2)
            reach = wf / (H * norm)
            rows = np.flatnonzero((t - t_row > -reach) & (t - t_row < xq.max() + reach))
            if len(rows) == 0:
                continue
            rs, cs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
            tf = t_row[rs, None] + xq[None, cs]
            dist = np.abs(t - tf) * (H * norm)
            val[rs, cs] += (np.clip(1.0 - dist / wf, 0.0, 1.0) * amp).astype(np.float32)
        cols = np.flatnonzero(bx < p.xm - 20.0)
        if len(cols) and t_major_r is not None:
            th = p.fiss_minor + 0.03 * (by / p.Da)
            rows = np.flatnonzero(np.abs(t - th) * H < wf)
            if len(rows):
                rs, cs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
                dist = np.abs(t - th[rs, None]) * H
                anterior = t < (t_major_r[0][rs, None] + xq[None, cs])
                tri = np.clip(1.0 - dist / wf, 0.0, 1.0) * amp * anterior
                val[rs, cs] += tri.astype(np.float32)

    def _spine(self, out: F32, t: float) -> None:
        p, w = self.p, self.edge
        av, bv, yv = (float(v) for v in p.spine(t))
        rc = p.canal_r
        canal_y = yv + bv + 1.5 + rc
        sl = self._box(0.0, yv + 20.0, av + 40.0, bv + 30.0 + p.spinous)
        mm = self._sub(sl)
        sub = out[sl]
        lev = int(np.searchsorted(p.levels, t)) - 1
        lev = int(np.clip(lev, 0, len(p.levels) - 2))
        phase = (t - p.levels[lev]) / (p.levels[lev + 1] - p.levels[lev])
        bx, by = mm.bx, mm.by
        d_vb = _ellipse_d(bx, by - yv, av, bv)
        if phase > 0.84:
            _paint(sub, _soft(d_vb, w), p.disc_hu)
        else:
            _paint(sub, _soft(d_vb, w), p.cortex_hu)
            if 0.05 < phase < 0.79:
                _paint(sub, _soft(d_vb + 1.3, w), p.vert_hu)
        bone = 0.55 * p.cortex_hu + 0.45 * p.marrow_hu
        rr = np.hypot(bx, by - canal_y)
        ring = _soft(np.abs(rr - (rc + 2.6)) - 2.6, w) * _soft(canal_y - 0.5 * rc - by, w)
        _paint(sub, ring, bone)
        if phase > 0.2:
            lsp = p.spinous
            cy = canal_y + rc + 2.0 + 0.5 * lsp
            _paint(sub, _soft(np.maximum(np.abs(bx) - 3.5, np.abs(by - cy) - 0.5 * lsp), w), bone)
        if phase < 0.55:
            ca, sa = math.cos(math.radians(25)), math.sin(math.radians(25))
            for side in (-1.0, 1.0):
                ux, uy = side * bx - (rc + 1.0), by - (canal_y - 3.0)
                along = ux * ca + uy * sa
                across = -ux * sa + uy * ca
                d = np.maximum(np.abs(along - 11.0) - 11.0, np.abs(across) - 4.0)
                _paint(sub, _soft(d, w), bone)
        _paint(sub, _soft(rr - rc, w), p.csf_hu)

    def _ribs(self, out: F32, m: _Maps, d_c: F32, t: float) -> None:
        p, w, H = self.p, self.edge, self.p.H
        gap, hr, hz = 1.0, p.rib_hr, p.rib_hz
        band = (d_c > -1.0) & (d_c < gap + 2 * hr + 1.5) & (m.s_param > 0.02) & (m.s_param < 0.985)
        idx = np.nonzero(band)
        if len(idx[0]) == 0:
            return
        s = m.s_param[idx]
        dc = d_c[idx]
        # the rib neck runs nearly level from the head, the shaft descends most steeply laterally,
        # the costal cartilage rises again towards the sternum
        drop = 0.5 - 0.5 * np.cos(np.pi * np.clip((s - 0.05) / 0.7, 0.0, 1.0)) - 1.2 * np.maximum(s - 0.75, 0.0)
        t_head = np.float32(t) - np.float32(p.rib_drop / H) * drop
        heads = p.rib_heads.astype(np.float32)
        n = np.clip(np.searchsorted(heads, t_head), 1, len(heads) - 1)
        n = np.where(np.abs(t_head - heads[n - 1]) < np.abs(t_head - heads[n]), n - 1, n)
        dz = (t_head - heads[n]) * np.float32(H)
        s_end = p.rib_ends[n].astype(np.float32)
        q = np.sqrt((dz / hz) ** 2 + ((dc - (gap + hr)) / hr) ** 2)
        arc = np.float32(math.pi) * m.r[idx]
        occ = _soft((q - 1.0) * hr, w) * _soft((s - s_end) * arc, w) * _soft((0.035 - s) * arc, w)
        if not occ.any():
            return
        cart = (s > s_end - 0.2) & (n < 10)
        vals = out[idx]
        vals += occ * (np.where(cart, np.float32(p.cart_hu), np.float32(p.cortex_hu)) - vals)
        inner = _soft((q - 1.0) * hr + 1.2, w) * occ * ~cart
        vals += inner * (np.float32(p.marrow_hu) - vals)
        out[idx] = vals

    def _sternum(self, out: F32, t: float) -> None:
        if not 0.1 < t < 0.8:
            return
        p, w = self.p, self.edge
        _, ba, _ = p.cavity_axes(t)
        hs = p.sternum_h
        ys = -float(ba) - 1.0 - hs
        half = float(np.interp(t, [0.1, 0.22, 0.3, 0.7, 0.8], [22.0, 20.0, 13.0, 12.0, 5.0]))
        taper = float(_smoothstep(0.1, 0.13, t))
        sl = self._box(0.0, ys, half + 3, hs + 3)
        mm = self._sub(sl)
        d = _ellipse_d(mm.bx, mm.by - ys, half * taper + 0.01, hs)
        _paint(out[sl], _soft(d, w), p.cortex_hu)
        _paint(out[sl], _soft(d + 1.2, w), p.marrow_hu)

    def _scapulae(self, out: F32, m: _Maps, d_c: F32, t: float) -> None:
        if not -0.3 < t < 0.45:
            return
        p, w = self.p, self.edge
        lo = float(np.interp(t, [-0.3, 0.2, 0.45], [0.42, 0.52, 0.8]))
        hi = float(np.interp(t, [-0.3, 0.2, 0.45], [1.3, 1.22, 0.84]))
        th = 6.0 if t < 0.02 else 3.0
        band = (d_c > p.scap_d - 2) & (d_c < p.scap_d + th + 2) & (m.theta_side > lo - 0.1) & (m.theta_side < hi + 0.1)
        idx = np.nonzero(band)
        if len(idx[0]) == 0:
            return
        dc, th_s, r = d_c[idx], m.theta_side[idx], m.r[idx]
        d = np.maximum(np.abs(dc - (p.scap_d + 0.5 * th)) - 0.5 * th, np.maximum(lo - th_s, th_s - hi) * r)
        vals = out[idx]
        vals += _soft(d, w) * (np.float32(0.6 * p.cortex_hu + 0.4 * p.marrow_hu) - vals)
        out[idx] = vals


# ================================================================================================
# Tubes of one patient (great vessels, airways, lung vessel trees)
# ================================================================================================
def _sample_lung_points(p: _Patient, rng: np.random.Generator, n: int, left: bool) -> F64:
    pts: list[F64] = []
    have = 0
    for _ in range(40):
        k = max(2000, 3 * n)
        bx = rng.uniform(-1.1 * p.W, 1.1 * p.W, k)
        bx = np.abs(bx) if left else -np.abs(bx)
        by = rng.uniform(-1.05 * p.Da, 1.05 * p.Dp, k)
        t = rng.uniform(0.0, 1.02, k)
        m = p.maps(bx, by)
        keep = (p.lung_occupancy(m, t) > 0.5) & (p.side_of(bx) == left)
        if keep.any():
            pts.append(np.stack([bx[keep], by[keep], t[keep]], axis=-1))
            have += int(keep.sum())
        if have >= n:
            break
    if not pts:
        return np.zeros((0, 3))
    allp = np.concatenate(pts)[:n]
    return np.stack([p.x_mid + allp[:, 0], p.y0 + allp[:, 1], p.z_apex - allp[:, 2] * p.H], axis=-1)


def _lung_at(p: _Patient, xyz: F64) -> F32:
    """Analytic lung occupancy at LPS points (n, 3)."""
    xyz = np.atleast_2d(xyz)
    bx, by = xyz[:, 0] - p.x_mid, xyz[:, 1] - p.y0
    return p.lung_occupancy(p.maps(bx, by), p.t_of(xyz[:, 2]))


def _build_tubes(p: _Patient, rng: np.random.Generator, px: float) -> list[_Tubes]:
    W, Da = p.W, p.Da
    _, bv, yv = (float(v) for v in p.spine(0.15))
    y_tr = yv - bv - 21.0
    xyz = p.xyz
    tubes: list[_Tubes] = []
    carina = xyz(-1.0, y_tr - 3.0, p.t_carina)

    # oesophagus and great vessels
    eso = _polyline(
        [xyz(6, y_tr + 15, -0.6), xyz(8, y_tr + 16, 0.5), xyz(0.25 * W, -0.05 * Da, p.t_dl + 0.09)], [7, 7, 8]
    )
    tubes.append(_Tubes(eso, p.muscle_hu * 0.8, "max"))
    aorta_pts = [
        xyz(0.03 * W, -0.1 * Da, 0.52),
        xyz(-0.08 * W, -0.35 * Da, 0.42),
        xyz(-0.07 * W, -0.33 * Da, 0.3),
        xyz(0.0, -0.2 * Da, 0.22),
        xyz(0.1 * W, 0.0, 0.2),
    ]
    aorta_r = [14.0, 15.0, 15.0, 14.0, 13.0]
    for tt in (0.27, 0.4, 0.6, 0.8, 1.0, 1.2, 1.45):
        bx, by, r = (float(v) for v in p.aorta_desc(tt))
        aorta_pts.append(xyz(bx, by, tt))
        aorta_r.append(r)
    tubes.append(_Tubes(_polyline(aorta_pts, aorta_r), p.aorta_hu, "max"))
    branches = [
        (
            [xyz(-0.02 * W, -0.22 * Da, 0.22), xyz(-0.1 * W, -0.2 * Da, 0.05), xyz(-0.14 * W, -0.1 * Da, -0.6)],
            [6.5, 6, 5],
        ),
        ([xyz(0.04 * W, -0.12 * Da, 0.21), xyz(0.09 * W, -0.12 * Da, -0.6)], [4.5, 4]),
        ([xyz(0.09 * W, 0.0, 0.21), xyz(0.16 * W, 0.02 * Da, 0.02), xyz(0.45 * W, -0.05 * Da, -0.12)], [5.5, 5, 4.5]),
    ]
    for pts, radii in branches:
        tubes.append(_Tubes(_polyline(pts, radii), p.aorta_hu, "max"))
    svc = _polyline([xyz(-0.22 * W, -0.25 * Da, -0.6), xyz(-0.2 * W, -0.22 * Da, 0.48)], [9, 10])
    tubes.append(_Tubes(svc, p.vein_hu, "max"))
    ra_root = xyz(-0.3 * W, y_tr - 4.0, 0.4)
    la_root = xyz(0.29 * W, y_tr + 4.0, 0.36)
    bif = xyz(0.05 * W, -0.12 * Da, 0.36)
    trunk = _polyline([xyz(0.14 * W, -0.5 * Da, 0.5), xyz(0.08 * W, -0.3 * Da, 0.42), bif], [14, 14, 13])
    rpa = _polyline([bif, xyz(-0.15 * W, -0.05 * Da, 0.37), ra_root], [11, 10, 8])
    lpa = _polyline([bif, xyz(0.2 * W, 0.0, 0.33), la_root], [10, 9, 8])
    for seg in (trunk, rpa, lpa):
        tubes.append(_Tubes(seg, p.pa_hu, "max"))
    h = p.heart
    la = xyz(0.05 * W, h["y"] + 0.5 * h["b"], h["t"] - 0.06)
    rv_root = xyz(-0.27 * W, -0.05 * Da, 0.52)
    lv_root = xyz(0.27 * W, 0.0, 0.5)
    for root in (rv_root, lv_root):
        tubes.append(_Tubes(_polyline([root, la], [7, 8]), p.vein_hu, "max"))

    # trachea and main bronchi
    tr_top = xyz(-2.0, y_tr, -0.6)
    r_tr = p.trachea_r
    aw_roots = {False: xyz(-0.27 * W, y_tr + 2.0, 0.38), True: xyz(0.27 * W, y_tr + 8.0, 0.41)}
    walls = [_polyline([tr_top, carina], [r_tr, r_tr])]
    lumens = [_polyline([tr_top, carina], [r_tr - 2.0, r_tr - 2.0])]

    # lung vessel trees and the bronchi along the arteries
    density = float(np.clip((0.75 / px) ** 2, 0.05, 1.0))
    r_min = max(0.5, 0.25 * px)
    art_segs: list[list[float]] = []
    vein_segs: list[list[float]] = []
    for left in (False, True):
        n_pts = int(4000 * density * (0.9 if left else 1.1))
        n_pts = max(n_pts, 40)
        for kind, root in (("artery", la_root if left else ra_root), ("vein", lv_root if left else rv_root)):
            pts = _sample_lung_points(p, rng, n_pts, left)
            if len(pts) < 8:
                continue
            first = pts.mean(axis=0) - root
            first /= np.linalg.norm(first)
            segs, gens = _grow_tree(rng, root, pts, 6.0, r_min, first)
            # branches heading for the centroid of a curved region can cut through the heart or the
            # mediastinum: beyond the hilum keep only segments whose middle lies in the lung
            in_lung = _lung_at(p, 0.5 * (segs[:, 0:3] + segs[:, 3:6])) > 0.5
            ok = in_lung | (gens <= 1)
            segs, gens = segs[ok], gens[ok]
            (art_segs if kind == "artery" else vein_segs).extend(segs.tolist())
            if kind != "artery":
                continue
            ref = rng.standard_normal(3)
            ref /= np.linalg.norm(ref)
            aw_min = max(1.3, 0.8 * px)
            main_end = None
            tree = [
                (row[0:3], row[3:6], float(row[6]), float(row[7]), int(g)) for row, g in zip(segs, gens, strict=True)
            ]
            cand = [(a, b, r0, gen) for a, b, r0, _r1, gen in tree if r0 >= aw_min and gen <= 9]
            offs = []
            for a, b, r0, _gen in cand:
                d = b - a
                d = d / (np.linalg.norm(d) + 1e-9)
                o = ref - (ref @ d) * d
                offs.append(o / (np.linalg.norm(o) + 1e-9) * (2.0 * r0 + 0.4))
            if cand:
                probe = np.array(
                    [[a + o, b + o, 0.5 * (a + b) + o] for (a, b, _, _), o in zip(cand, offs, strict=True)]
                )
                inside = _lung_at(p, probe.reshape(-1, 3)).reshape(-1, 3).min(axis=1) >= 0.5
            for ((a, b, r0, gen), off), ok in zip(zip(cand, offs, strict=True), inside if cand else [], strict=True):
                if gen > 0 and not ok:
                    continue  # bronchi stay inside the lung
                rb = r0
                wall_t = max(0.5, 0.17 * rb)
                walls.append(np.array([[*(a + off), *(b + off), rb, rb * 0.96]]))
                lumens.append(np.array([[*(a + off), *(b + off), rb - wall_t, rb * 0.96 - wall_t]]))
                if gen == 0:
                    main_end = a + off
            end = main_end if main_end is not None else aw_roots[left]
            r_main = 7.0 if not left else 6.0
            walls.append(_polyline([carina, end], [r_main, r_main * 0.9]))
            lumens.append(_polyline([carina, end], [r_main - 1.5, r_main * 0.9 - 1.5]))
    tubes.append(_Tubes(np.asarray(art_segs).reshape(-1, 8), p.pa_hu, "max"))
    tubes.append(_Tubes(np.asarray(vein_segs).reshape(-1, 8), p.vein_hu, "max"))
    tubes.append(_Tubes(np.concatenate(walls), p.muscle_hu * 0.7, "max"))
    tubes.append(_Tubes(np.concatenate(lumens), AIR_HU, "paint"))
    # clavicles
    for side in (-1.0, 1.0):
        _, ba, _ = p.cavity_axes(0.08)
        pts = [
            xyz(side * 20.0, -float(ba) - 10.0, 0.06),
            xyz(side * 0.55 * W, -0.65 * Da, -0.02),
            xyz(side * 0.85 * W, -0.15 * Da, -0.12),
        ]
        tubes.append(_Tubes(_polyline(pts, [7, 6, 6.5]), p.cortex_hu, "max"))
        tubes.append(_Tubes(_polyline(pts, [5.5, 4.5, 5]), p.marrow_hu, "paint"))
    return tubes


# ================================================================================================
# Acquisition and the generator
# ================================================================================================
@dataclass(frozen=True)
class Acquisition:
    """How a synthetic scan was acquired and reconstructed (all drawn from the seed unless given)."""

    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    slice_thickness_mm: float
    psf_fwhm_mm: float
    noise_sd_hu: float
    noise_corr_px: float
    pad_value: int | None
    patient_position: str
    orientation: tuple[float, float, float, float, float, float]
    contrast: bool
    origin_zyx: tuple[float, float, float]


_IDENTITY_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_FLIPPED_IOP = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _sample_acquisition(
    rng: np.random.Generator,
    p: _Patient,
    contrast: bool,
    shape_zyx: Sequence[int] | None,
    spacing_zyx: Sequence[float] | None,
    thickness: float | None,
    noise_sd: float | None,
    position: str | None,
) -> Acquisition:
    # every draw happens whatever is overridden, so overrides never shift the other random choices
    pos_draw, flip_draw = rng.random(), rng.random()
    pair = SLICE_CHOICES_MM[int(rng.choice(len(SLICE_CHOICES_MM), p=np.array(_SLICE_WEIGHTS)))]
    psf = float(rng.uniform(0.6, 1.0))
    sd_draw = float(rng.uniform(10.0, 40.0))
    corr = float(rng.uniform(0.5, 1.1)) if rng.random() < 0.6 else 0.0
    pad_draw = rng.random()
    fov_margin = float(rng.uniform(15.0, 70.0))
    t_top, t_bot = -float(rng.uniform(0.05, 0.15)), float(rng.uniform(1.02, 1.15))
    t_jitter = float(rng.uniform(-1.0, 1.0))
    xy_jitter = rng.uniform(-5.0, 5.0, 2)

    position = position or ("HFS" if pos_draw < 0.85 else "FFS")
    orientation = _FLIPPED_IOP if (position.startswith("FF") and flip_draw < 0.5) else _IDENTITY_IOP
    if spacing_zyx is not None:
        step = float(spacing_zyx[0])
        thick = float(thickness) if thickness else step
    elif thickness:
        thick = step = float(thickness)
    else:
        thick, step = pair
    nz = ny = nx = 0
    if shape_zyx is not None:
        nz, ny, nx = (int(v) for v in shape_zyx)
    else:
        ny = nx = 512
    if spacing_zyx is not None:
        sy, sx = float(spacing_zyx[1]), float(spacing_zyx[2])
    else:
        half_width = 1.06 * p.W + max(p.m_lat, 12.0) + 1.5 * p.fat + p.skin + 8.0
        fov = 2.0 * half_width + fov_margin
        px = fov / nx
        if nx >= 256:
            px = float(np.clip(px, 0.55, 0.9))
        sy = sx = round(px, 4)
    span_t = t_bot - t_top
    if nz == 0:
        nz = max(1, int(round(span_t * p.H / step)))
    cover_t = nz * step / p.H
    if cover_t >= span_t:
        t_c = 0.5 * (t_top + t_bot)
    else:
        slack = 0.5 * (min(1.25, t_bot + 0.1) - max(-0.2, t_top - 0.05) - cover_t)
        t_c = 0.5 + 0.5 * max(0.0, slack) * t_jitter
    z_center = p.z_of(t_c)
    oz = z_center - 0.5 * (nz - 1) * step
    oy = -0.5 * (ny - 1) * sy + float(xy_jitter[0])
    ox = -0.5 * (nx - 1) * sx + float(xy_jitter[1])
    pad = None if pad_draw < 0.4 else (-2000 if pad_draw < 0.7 else -3024)
    return Acquisition(
        shape_zyx=(nz, ny, nx),
        spacing_zyx=(step, sy, sx),
        slice_thickness_mm=thick,
        psf_fwhm_mm=psf,
        noise_sd_hu=sd_draw if noise_sd is None else float(noise_sd),
        noise_corr_px=corr,
        pad_value=pad,
        patient_position=position,
        orientation=orientation,
        contrast=contrast,
        origin_zyx=(float(oz), float(oy), float(ox)),
    )


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
    if n_target > 0:
        lung = _lung_distance(p, canon)
        taken: list[tuple[F64, float]] = []
        for _ in range(n_target):
            loc = None if not locations else str(locations[int(rng.integers(len(locations)))])
            mar = None if not margins else str(margins[int(rng.integers(len(margins)))])
            model = sample_nodule(rng, kinds=kinds, diameter_range_mm=diameter_range_mm, location=loc, margin=mar)
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


def _gauss_taps(sigma: float) -> F64:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    return np.asarray(k / k.sum())


def _blur2d(src: F32, sigma_yx: Sequence[float], out: F32, tmp: F32) -> None:
    """Separable Gaussian blur of a 2-D slice with short kernels (edges replicated); ``src`` and
    ``tmp`` are overwritten scratch space, the result goes to ``out``."""
    for axis, (sigma, a, b) in enumerate(((sigma_yx[1], src, tmp), (sigma_yx[0], tmp, out))):
        k = _gauss_taps(float(sigma)).astype(np.float32)
        r = len(k) // 2
        np.multiply(a, k[r], out=b)
        for d in range(1, r + 1):
            w = k[r + d]
            if axis == 0:
                b[:, d:] += w * a[:, :-d]
                b[:, :-d] += w * a[:, d:]
                b[:, :d] += w * a[:, :1]
                b[:, -d:] += w * a[:, -1:]
            else:
                b[d:] += w * a[:-d]
                b[:-d] += w * a[d:]
                b[:d] += w * a[:1]
                b[-d:] += w * a[-1:]


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


def noise_gain(corr_px: float) -> float:
    """Standard deviation of white unit noise after the in-plane Gaussian of ``corr_px``."""
    if corr_px <= 0:
        return 1.0
    radius = int(3.0 * corr_px + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / corr_px) ** 2)
    k /= k.sum()
    return float((k**2).sum())  # variance factor (sum k^2)^2 for the separable 2-D kernel: sd = sum k^2


def _add_noise(out: F32, sd: float, corr_px: float, z_corr: float, seed: int) -> None:
    """Add quantum noise of standard deviation ``sd``: in-plane Gaussian-correlated when
    ``corr_px > 0``; adjacent slices correlated by ``z_corr`` (overlapping reconstruction).

    Each slice's noise is a randomly shifted and flipped window of one of a bank of independent
    noise images (much cheaper than fresh noise for every voxel; neighbouring slices use
    independent windows)."""
    nz, ny, nx = out.shape
    rng = np.random.default_rng([int(seed), 0x5EED])
    n_bank, pad = min(nz + 2, 24), 32
    bank = rng.standard_normal((n_bank, ny + pad, nx + pad), dtype=np.float32)
    if corr_px > 0:
        bank = ndimage.gaussian_filter(bank, (0.0, corr_px, corr_px), truncate=3.0, mode="wrap")
        bank *= np.float32(1.0 / noise_gain(corr_px))
    picks = rng.integers(n_bank, size=nz + 2)
    offs = rng.integers(pad + 1, size=(nz + 2, 2))
    flips = rng.integers(4, size=nz + 2)

    def window(k: int) -> F32:
        v = bank[picks[k], offs[k, 0] : offs[k, 0] + ny, offs[k, 1] : offs[k, 1] + nx]
        if flips[k] & 1:
            v = v[::-1]
        if flips[k] & 2:
            v = v[:, ::-1]
        return v

    rho = float(np.clip(z_corr, 0.0, 0.6))
    a = (1.0 - math.sqrt(1.0 - 2.0 * rho * rho)) / (2.0 * rho) if rho > 0 else 0.0
    scale = np.float32(sd / math.sqrt(1.0 + 2.0 * a * a))
    a32 = np.float32(a)
    for k in range(nz):
        if a > 0:
            out[k] += scale * (window(k + 1) + a32 * (window(k) + window(k + 2)))
        else:
            out[k] += scale * window(k + 1)


def write_scan(
    out_dir: str | Path,
    seed: int,
    shape_zyx: Sequence[int] | None = None,
    spacing_zyx: Sequence[float] | None = None,
    n_nodules: tuple[int, int] | int = (0, 4),
    scan_id: str | None = None,
    **options: object,
) -> ScanRecord:
    """Generate the scan of ``seed`` and write it as one DICOM series into ``out_dir``.

    File names are shuffled in about 40 % of scans; stored values are signed when the scan holds
    padding below -1024 HU (and in some other scans), with RescaleIntercept -1024.

    Returns:
        A :class:`ScanRecord` whose ``path`` is ``out_dir`` (opens with
        :func:`nodeview.core.io.study.open_study`), ``fold = seed % 10``, ``source = "synthetic"``.
    """
    scan = generate_scan_full(seed, shape_zyx, spacing_zyx, n_nodules, **options)  # type: ignore[arg-type]
    vol = scan.volume
    naming = np.random.default_rng([int(seed), 3])
    shuffled = bool(naming.random() < 0.4)
    signed = bool(naming.random() < 0.3) or int(vol.hu_zyx.min()) < -1024
    d = vol.geometry.direction
    spec = SeriesSpec(
        spacing_zyx=tuple(float(v) for v in vol.geometry.spacing_zyx),  # type: ignore[arg-type]
        origin_xyz=tuple(float(v) for v in vol.geometry.origin_xyz),  # type: ignore[arg-type]
        orientation=tuple(float(v) for v in (*d[:, 0], *d[:, 1])),
        patient_position=vol.patient_position,
        series_uid=vol.series_uid,
        study_uid=str(generate_uid(entropy_srcs=["nodeview-synth-ct", "study", str(seed)])),
        frame_of_reference_uid=str(generate_uid(entropy_srcs=["nodeview-synth-ct", "for", str(seed)])),
        series_description=vol.description,
        slice_thickness=vol.slice_thickness_mm,
        rescale_intercept=-1024.0,
        pixel_representation=1 if signed else 0,
        file_names="shuffled" if shuffled else "instance",
        patient_name=vol.patient.name,
        patient_id=vol.patient.patient_id,
        accession_number=f"SYN{seed:07d}",
        seed=int(seed),
    )
    write_series(vol.hu_zyx, out_dir, spec)
    return ScanRecord(
        scan_id=scan_id or f"synth-{seed:06d}",
        path=str(out_dir),
        nodules=tuple(scan.annotations),
        fold=int(seed) % 10,
        series_uid=vol.series_uid,
        source="synthetic",
    )
