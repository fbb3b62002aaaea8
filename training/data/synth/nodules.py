"""The synthetic nodule: the malignancy rule (Lung-RADS v2022 risk categories), the nodule's shape
model, its rendering through the scanner's slice profile and PSF, and blending into a scan.
Shared with :mod:`training.data.insert`. See :mod:`training.data.synth` for the rules in full."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.special import erf

from nodeview.core.geometry import Geometry
from training.data.annotations import NoduleAnnotation
from training.data.synth.arrays import F32, F64

KINDS = ("solid", "part-solid", "ground-glass", "calcified")
MARGINS = ("smooth", "lobulated", "spiculated")
LOCATIONS = ("isolated", "juxta-pleural", "juxta-vascular")
CALCIFICATIONS = ("central", "diffuse", "popcorn", "laminated")

#: Probability at or above which a nodule is labelled malignant (Lung-RADS 4B: > 15 % risk).
MALIGNANT_THRESHOLD = 0.15
#: Odds multipliers of the margin (not applied to calcified nodules).
MARGIN_ODDS = {"smooth": 1.0, "unknown": 1.0, "lobulated": 2.0, "spiculated": 10.0}

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
