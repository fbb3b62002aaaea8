"""Real nodules in real lungs (training data source (e)); no Qt, no torch.

Real LIDC nodule crops (``../shared/data/lidc-nodules``: int16 HU NIfTI at native spacing, binary
mask, readers' max-voting ratings) are transplanted into chest CT backgrounds: real scans (slabs of
LIDC-IDRI-0002 at least 20 mm from its own nodule, the two kernels of Lung-PET-CT-Dx-A0001 below
its boxed tumour, see :func:`real_backgrounds`) and the synthetic chest CTs of
:mod:`training.data.synth.generator` (generated without nodules).

How one nodule goes in (:func:`transplant`):

* **Geometry.** SimpleITK reads the crop's origin/direction as LPS mm. The crop is placed by a
  rigid map ``q = R(-theta) (p - c_target) + c_crop`` (``c_crop`` the mask's centroid, ``R`` a
  rotation about the patient z axis), evaluated at the centre of every target voxel in a box, so
  crop HU, mask and blend weight are resampled **together** onto the target grid (trilinear). The
  annotation centre is ``c_target``: the placed mask's centroid (tests: within 1 mm).
* **Blend.** ``out = (1 - w) bg + w crop`` with ``w`` the mask dilated by two voxels in-plane and
  one in z (within the crop), smoothed in-plane (Gaussian, 0.8 voxel, on the crop grid; in z the trilinear resampling
  fades it over one crop slice beyond the nodule's end slices), so the edge is soft and
  the nodule's own margin (spicules, ground glass fading out) comes with it. Outside ``w > 0`` the
  target keeps its exact values.
* **Noise.** The target's noise (sd and in-plane correlation, :func:`training.data.insert.estimate_noise`
  on parenchyma around the site) is matched: a crop noisier than the target is smoothed in-plane
  first, and correlated noise is added where the blend left less than the target's variance,
  ``sd_add^2 = sd_t^2 - (1 - w)^2 sd_t^2 - w^2 sd_c^2``.
* **Where.** Isolated nodules: inside the lung mask (:func:`nodeview.core.detect.lung.segment_lungs`), at
  least radius + 3 mm from its boundary, over parenchyma: in a sphere of radius + 2 mm at most 12 %
  of the background above -400 HU (large vessels, walls) and at most 2 % below -950 HU after a 3 x 3 in-plane mean
  (airways, air pockets), median between -950 and -650 HU; 4 mm clear of other nodules and of ``avoid``.
* **Juxta-pleural crops** (the mask touches a large > -300 HU component that reaches the crop's
  in-plane border: the chest wall of the source patient) go against the target's pleura with their
  own wall context: the part of the source wall within 4 mm of the mask joins the blend with a
  weight tapering to 0 over those 4 mm, and the crop is rotated about z so that its wall direction
  points along the target's outward pleural normal, at the crop's own centroid-to-wall distance
  from the target's wall.

Records use :mod:`training.data.annotations` (LPS mm centre, the readers' diameter, malignancy from the
max-voting rating: >= 4 malignant, <= 2 benign, 3 unknown (None); ``malignancy_score`` the rating;
``kind`` from the texture rating; ``margin`` from spiculation/lobulation; ``location``
juxta-pleural or isolated; ``source = "transplant"``). ``transplants.csv`` beside the annotations
names the crop file of every placed nodule.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from nodeview.core.detect.lung import LungMask, segment_lungs
from nodeview.core.geometry import Geometry
from nodeview.core.volume import Volume
from training.data.annotations import NoduleAnnotation, ScanRecord
from training.data.insert import _context, estimate_noise, lung_distance
from training.data.real_split import malignant_label, texture_kind
from training.data.synth.placement import LungDistance
from training.data.synth.scanner import noise_gain

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

WALL_HU = -300.0
CONTEXT_MM = 4.0


@dataclass(frozen=True)
class RealNodule:
    """A real nodule crop with its mask, ratings and (for juxta-pleural crops) its wall."""

    name: str
    patient_id: str
    hu_zyx: NDArray[np.int16]
    mask_zyx: NDArray[np.bool_]
    geometry: Geometry
    diameter_mm: float
    malignancy: float
    texture: int
    spiculation: int
    lobulation: int
    centroid_xyz: F64
    wall_zyx: NDArray[np.bool_] | None = None  # source wall voxels within CONTEXT_MM of the mask
    wall_dir_xy: F64 | None = None  # unit LPS (x, y) vector from the centroid towards the wall
    wall_dist_mm: float = 0.0  # centroid to the first wall voxel along wall_dir_xy

    @property
    def juxta_pleural(self) -> bool:
        return self.wall_zyx is not None

    @property
    def mask_diameter_mm(self) -> float:
        return equivalent_diameter(self.mask_zyx, self.geometry.spacing_zyx)

    def annotation(self, center_xyz: Sequence[float]) -> NoduleAnnotation:
        margin = "spiculated" if self.spiculation >= 3 else ("lobulated" if self.lobulation >= 3 else "smooth")
        return NoduleAnnotation(
            center_xyz_mm=(float(center_xyz[0]), float(center_xyz[1]), float(center_xyz[2])),
            diameter_mm=float(self.diameter_mm),
            malignant=malignant_label(self.malignancy),
            malignancy_score=float(self.malignancy),
            kind=texture_kind(self.texture),
            margin=margin,
            location="juxta-pleural" if self.juxta_pleural else "isolated",
            source="transplant",
        )


def equivalent_diameter(mask: NDArray[np.bool_], spacing_zyx: Sequence[float]) -> float:
    vol = float(np.count_nonzero(mask)) * float(np.prod(np.asarray(spacing_zyx, dtype=np.float64)))
    return float((6.0 * vol / math.pi) ** (1.0 / 3.0))


def _index_grid_to_mm(geometry: Geometry, idx_zyx: F64) -> F64:
    return np.asarray(geometry.index_to_mm(idx_zyx), dtype=np.float64)


def load_nodule(root: str | Path, row: dict[str, str]) -> RealNodule:
    """Read one crop (``images/``) and its mask (``masks/``) from ``lidc-nodules``."""
    import SimpleITK as sitk  # type: ignore[import-untyped]

    root = Path(root)
    img = sitk.ReadImage(str(root / "images" / row["file"]))
    msk = sitk.ReadImage(str(root / "masks" / row["file"]))
    hu = sitk.GetArrayFromImage(img).astype(np.int16)
    mask = sitk.GetArrayFromImage(msk) > 0
    sx, sy, sz = img.GetSpacing()
    geom = Geometry(
        tuple(int(v) for v in hu.shape),  # type: ignore[arg-type]
        np.array([sz, sy, sx], dtype=np.float64),
        np.asarray(img.GetOrigin(), dtype=np.float64),
        np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3),
    )
    if not mask.any():
        raise ValueError(f"{row['file']}: empty mask")
    centroid = _index_grid_to_mm(geom, np.argwhere(mask).mean(axis=0))
    nodule = RealNodule(
        name=row["file"].replace(".nii.gz", ""),
        patient_id=row["patient_id"],
        hu_zyx=hu,
        mask_zyx=mask,
        geometry=geom,
        diameter_mm=float(row["diameter_mm"]),
        malignancy=float(row["malignancy_1to5"]),
        texture=int(float(row["texture_1to5"])),
        spiculation=int(float(row.get("spiculation_1to5") or 1)),
        lobulation=int(float(row.get("lobulation_1to5") or 1)),
        centroid_xyz=centroid,
    )
    return _with_wall(nodule)


def _with_wall(n: RealNodule) -> RealNodule:
    """Find the source chest wall touching the mask (juxta-pleural crops)."""
    hu, mask, sp = n.hu_zyx, n.mask_zyx, n.geometry.spacing_zyx
    high = (hu > WALL_HU) & ~mask
    comp, k = ndimage.label(high)
    if k == 0:
        return n
    border = np.zeros(hu.shape, dtype=bool)
    border[:, 0, :] = border[:, -1, :] = border[:, :, 0] = border[:, :, -1] = True
    near = ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool), iterations=2)
    sizes = ndimage.sum_labels(np.ones(hu.shape), comp, index=np.arange(1, k + 1))
    wall = np.zeros(hu.shape, dtype=bool)
    for lab in range(1, k + 1):
        part = comp == lab
        if sizes[lab - 1] >= 0.08 * hu.size and (part & border).any() and (part & near).any():
            wall |= part
    if not wall.any():
        return n
    dist = ndimage.distance_transform_edt(~mask, sampling=sp)
    context = wall & (dist <= CONTEXT_MM)
    pts = _index_grid_to_mm(n.geometry, np.argwhere(context))
    v = (pts.mean(axis=0) - n.centroid_xyz)[:2]
    if float(np.linalg.norm(v)) < 1e-3:
        return n
    u = v / np.linalg.norm(v)
    # march from the centroid along u (in mm) to the first wall voxel
    s = np.arange(0.0, 40.0, 0.25)
    line = n.centroid_xyz[None, :] + s[:, None] * np.array([u[0], u[1], 0.0])[None, :]
    idx = np.asarray(n.geometry.mm_to_index(line))
    on = ndimage.map_coordinates(wall.astype(np.float32), idx.T, order=0, mode="constant", cval=0.0) > 0.5
    if not on.any():
        return n
    return dataclasses.replace(n, wall_zyx=context, wall_dir_xy=u, wall_dist_mm=float(s[np.argmax(on)]))


def read_nodule_table(root: str | Path) -> list[dict[str, str]]:
    with open(Path(root) / "nodules.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------------------------
# the blend


def blend_weight(n: RealNodule) -> tuple[F32, F32]:
    """The soft blend weights on the crop grid, padded by two empty slices above and below (the
    weight fades out beyond the crop's own z extent): (nodule: the mask dilated two voxels in-plane
    and one in z (within the crop),
    smoothed; wall context: for juxta-pleural crops the source wall within CONTEXT_MM of the mask,
    tapering from 1 at the mask to 0, smoothed; zeros otherwise)."""
    m = ndimage.binary_dilation(n.mask_zyx, structure=np.ones((1, 3, 3), bool), iterations=2)
    m = ndimage.binary_dilation(m, structure=np.ones((3, 1, 1), bool)).astype(np.float32)
    ctx = np.zeros_like(m)
    if n.wall_zyx is not None:
        dist = ndimage.distance_transform_edt(~n.mask_zyx, sampling=n.geometry.spacing_zyx)
        taper = np.clip(1.0 - dist / CONTEXT_MM, 0.0, 1.0).astype(np.float32)
        ctx = np.where(n.wall_zyx, taper, 0.0).astype(np.float32)

    def soft(a: F32) -> F32:
        a = np.pad(a, ((2, 2), (0, 0), (0, 0)))
        return np.clip(ndimage.gaussian_filter(a, sigma=(0.0, 0.8, 0.8), truncate=2.5), 0.0, 1.0).astype(np.float32)

    return soft(m), soft(ctx)


def _rotation(theta: float) -> F64:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Placement:
    centre_xyz: F64
    theta: float


def _box(target: Geometry, n: RealNodule, centre_xyz: F64) -> tuple[slice, slice, slice] | None:
    ext = np.asarray(n.geometry.shape_zyx, dtype=np.float64) * n.geometry.spacing_zyx
    r_xy = 0.5 * math.hypot(ext[1], ext[2]) + 1.0
    r_z = 0.5 * ext[0] + 2.0 * float(n.geometry.spacing_zyx[0]) + 1.0
    corners = np.array([[dx, dy, dz] for dx in (-r_xy, r_xy) for dy in (-r_xy, r_xy) for dz in (-r_z, r_z)])
    idx = np.asarray(target.mm_to_index(centre_xyz[None, :] + corners))
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, np.asarray(target.shape_zyx))
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def resample_to_target(
    n: RealNodule, target: Geometry, placement: Placement
) -> tuple[tuple[slice, slice, slice], F32, F32, F32] | None:
    """(box, crop HU, blend weight, mask occupancy) on the target voxels of ``box``; the weight of a
    juxta-pleural crop is a stack (nodule weight, minus the wall-context weight)."""
    box = _box(target, n, placement.centre_xyz)
    if box is None:
        return None
    zz, yy, xx = np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij")
    idx = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    p = _index_grid_to_mm(target, idx)
    rot = _rotation(-placement.theta)
    q = (p - placement.centre_xyz[None, :]) @ rot.T + n.centroid_xyz[None, :]
    src = np.asarray(n.geometry.mm_to_index(q)).T
    shape = tuple(s.stop - s.start for s in box)
    hu = ndimage.map_coordinates(n.hu_zyx.astype(np.float32), src, order=1, mode="nearest").reshape(shape)
    occ = ndimage.map_coordinates(n.mask_zyx.astype(np.float32), src, order=1, mode="constant", cval=0.0)
    src_w = src.copy()
    src_w[0] += 2.0  # blend_weight pads two slices in z
    w_nod, w_ctx = blend_weight(n)
    w = ndimage.map_coordinates(w_nod, src_w, order=1, mode="constant", cval=0.0).reshape(shape)
    if n.wall_zyx is not None:
        c = ndimage.map_coordinates(w_ctx, src_w, order=1, mode="constant", cval=0.0).reshape(shape)
        w = np.stack([w, -c])  # the context weight travels negated; transplant() gates it by the target's wall
    return box, hu.astype(np.float32), w.astype(np.float32), occ.reshape(shape).astype(np.float32)


def crop_noise(n: RealNodule) -> float:
    """Noise sd of the crop's own parenchyma (HU); 0 when the crop has too little of it."""
    sd, _ = estimate_noise(n.hu_zyx)
    v = n.hu_zyx.astype(np.float32)
    ok = (v[:, :, 3:] > -950) & (v[:, :, 3:] < -650) & (v[:, :, :-3] > -950) & (v[:, :, :-3] < -650)
    return sd if int(ok.sum()) >= 200 else 0.0


def transplant(
    hu_zyx: NDArray[np.int16],
    geometry: Geometry,
    n: RealNodule,
    placement: Placement,
    seed: int,
    noise: tuple[float, float] | None = None,
) -> tuple[NDArray[np.bool_], F64] | None:
    """Blend ``n`` into ``hu_zyx`` (in place) at ``placement``.

    Returns ``(changed-voxel mask over the whole volume, placed mask centroid in LPS mm)``, or None
    when the nodule would leave the grid.
    """
    res = resample_to_target(n, geometry, placement)
    if res is None:
        return None
    box, crop_hu, w, occ = res
    if occ.max() < 0.5:
        return None
    bg = hu_zyx[box].astype(np.float32)
    if w.ndim == 4:  # juxta-pleural: the source wall replaces only the target's own wall (tissue)
        tissue = np.clip((bg + 700.0) / 400.0, 0.0, 1.0)
        w = np.maximum(w[0], -w[1] * tissue).astype(np.float32)
    sp = np.asarray(geometry.spacing_zyx, dtype=np.float64)
    if noise is None:
        centre_idx = np.asarray(geometry.mm_to_index(placement.centre_xyz))
        noise = estimate_noise(_context(hu_zyx, centre_idx, sp, 25.0))
    sd_t, corr = noise
    sd_c = crop_noise(n)
    if sd_c > 1.3 * sd_t and sd_t > 0:  # smooth a noisier crop in-plane towards the target's noise
        sigma = float(np.clip(sd_c / (sd_t * 2.0 * math.sqrt(math.pi)), 0.0, 1.5))
        if sigma >= 0.3:
            crop_hu = ndimage.gaussian_filter(crop_hu, (0.0, sigma, sigma), truncate=2.5)
            sd_c = sd_c / max(1.0, 2.0 * math.sqrt(math.pi) * sigma)
    out = (1.0 - w) * bg + w * crop_hu
    deficit = sd_t**2 - (1.0 - w) ** 2 * sd_t**2 - w**2 * sd_c**2
    add = np.sqrt(np.clip(deficit, 0.0, None)).astype(np.float32)
    rnd = np.random.default_rng([int(seed), 0x7A5, 1]).standard_normal(w.shape).astype(np.float32)
    if corr > 0:
        rnd = ndimage.gaussian_filter(rnd, (0.0, corr, corr), truncate=3.0) / np.float32(noise_gain(corr))
    out = out + add * rnd
    changed = w > 1e-3
    region = hu_zyx[box]
    region[changed] = np.clip(np.rint(out[changed]), -1024, 3071).astype(np.int16)
    full = np.zeros(hu_zyx.shape, dtype=bool)
    full[box] = changed
    inside = np.argwhere(occ >= 0.5) + np.array([s.start for s in box])
    weights = occ[occ >= 0.5]
    centroid_idx = (inside * weights[:, None]).sum(axis=0) / weights.sum()
    return full, _index_grid_to_mm(geometry, centroid_idx)


# --------------------------------------------------------------------------------------------
# placement


@dataclass
class Site:
    """A background ready for placement: HU, geometry, lung mask and distance, allowed z range."""

    volume: Volume
    lung: LungMask
    dist: LungDistance
    allowed: Callable[[F64], bool]


def make_site(volume: Volume, allowed: Callable[[F64], bool] | None = None, lung: LungMask | None = None) -> Site:
    mask = lung if lung is not None else segment_lungs(volume.hu_zyx, volume.geometry)
    if not mask.mask_zyx.any():
        raise ValueError("no lungs found in the background")
    return Site(volume, mask, lung_distance(mask, volume.geometry), allowed or (lambda _p: True))


def _sphere(hu: NDArray[np.int16], geometry: Geometry, centre_idx: F64, radius_mm: float) -> F32:
    sp = np.asarray(geometry.spacing_zyx, dtype=np.float64)
    half = np.ceil(radius_mm / sp).astype(int)
    c = np.rint(centre_idx).astype(int)
    lo, hi = c - half, c + half + 1
    if np.any(lo < 0) or np.any(hi > np.asarray(hu.shape)):
        return np.zeros(0, dtype=np.float32)
    # a 3 x 3 in-plane mean first: noise alone never reaches airway values, an airway lumen does
    block = ndimage.uniform_filter(hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float32), (1, 3, 3))
    g = np.stack(np.meshgrid(*(np.arange(-h, h + 1) for h in half), indexing="ij"), -1) * sp
    return block[np.linalg.norm(g + (c - centre_idx) * sp, axis=-1) <= radius_mm]


def background_ok(hu: NDArray[np.int16], geometry: Geometry, centre_idx: F64, radius_mm: float) -> bool:
    """Parenchyma, not airway or large vessel: in the sphere of radius + 2 mm around the site (3 x 3
    in-plane means) at most 12 % above -400 HU, at most 2 % below -950 HU, median -950..-650 HU."""
    v = _sphere(hu, geometry, centre_idx, radius_mm + 2.0)
    if v.size < 8:
        return False
    return (
        float(np.mean(v > -400)) <= 0.12
        and float(np.mean(v < -950)) <= 0.02
        and -950.0 <= float(np.median(v)) <= -650.0
    )


def _free(c_mm: F64, r: float, taken: Sequence[tuple[F64, float]]) -> bool:
    return all(float(np.linalg.norm(c_mm - o)) >= r + ro + 4.0 for o, ro in taken)


def _lps_dir(geometry: Geometry, v_zyx_mm: F64) -> F64:
    """A direction given in mm along array axes (z, y, x) as an LPS vector."""
    return np.asarray(geometry.direction @ np.array([v_zyx_mm[2], v_zyx_mm[1], v_zyx_mm[0]]), dtype=np.float64)


def place(
    site: Site,
    n: RealNodule,
    rng: np.random.Generator,
    taken: Sequence[tuple[F64, float]],
    tries: int = 120,
) -> Placement | None:
    """A placement for ``n`` in ``site`` (juxta-pleural crops against the pleura), or None."""
    hu, geom = site.volume.hu_zyx, site.volume.geometry
    sp = np.asarray(geom.spacing_zyx, dtype=np.float64)
    r = 0.5 * max(n.diameter_mm, n.mask_diameter_mm)
    if n.juxta_pleural and n.wall_dir_xy is not None:
        for c in site.dist.random_points(rng, 0.5 * r + 1.0, r + 8.0, tries):
            step = 0.75 / sp
            grad = np.array([(site.dist.at(c + e * step)[0] - site.dist.at(c - e * step)[0]) / 1.5 for e in np.eye(3)])
            u = -_lps_dir(geom, grad)
            u[2] = 0.0
            if np.linalg.norm(u) < 0.2:
                continue
            u /= np.linalg.norm(u)
            c_mm = _index_grid_to_mm(geom, c)
            s = np.arange(0.0, 3.0 * r + 20.0, 0.3)
            line = np.asarray(geom.mm_to_index(c_mm[None, :] + s[:, None] * u[None, :]))
            vals = ndimage.map_coordinates(hu, line.T, order=1, mode="nearest")
            hit = np.flatnonzero(vals > -350)
            if len(hit) == 0 or hit[0] == 0:
                continue
            wall_mm = c_mm + float(s[hit[0]]) * u
            beyond = ndimage.map_coordinates(hu, np.asarray(geom.mm_to_index(wall_mm + 5.0 * u))[:, None], order=1)
            if float(beyond[0]) < -300:  # a vessel, not the chest wall
                continue
            centre = wall_mm - n.wall_dist_mm * u
            theta = math.atan2(u[1], u[0]) - math.atan2(n.wall_dir_xy[1], n.wall_dir_xy[0])
            if not site.allowed(centre) or not _free(centre, r, taken):
                continue
            ci = np.asarray(geom.mm_to_index(centre))
            if not bool(site.lung.contains_index(ci)) or hu[tuple(np.rint(ci).astype(int))] > -500:
                continue
            return Placement(centre, float(theta))
        return None
    for c in site.dist.random_points(rng, r + 3.0, np.inf, tries):
        c_mm = _index_grid_to_mm(geom, c)
        if not site.allowed(c_mm) or not _free(c_mm, r, taken):
            continue
        if not bool(site.lung.contains_index(c)) or not background_ok(hu, geom, c, r):
            continue
        return Placement(c_mm, float(rng.uniform(0.0, 2.0 * math.pi)))
    return None


def transplant_many(
    volume: Volume,
    nodules: Sequence[RealNodule],
    seed: int,
    *,
    site: Site | None = None,
    avoid: Sequence[NoduleAnnotation] = (),
) -> tuple[Volume, list[NoduleAnnotation], list[str]]:
    """Transplant ``nodules`` into a copy of ``volume``; returns (volume, annotations, crop names)
    of the nodules that found a place (deterministic for the same arguments)."""
    site = site or make_site(volume)
    rng = np.random.default_rng([int(seed), 0x7A5])
    hu = volume.hu_zyx.copy()
    work = dataclasses.replace(site, volume=dataclasses.replace(volume, hu_zyx=hu))
    taken: list[tuple[F64, float]] = [
        (np.asarray(a.center_xyz_mm, dtype=np.float64), 0.5 * a.diameter_mm) for a in avoid
    ]
    anns: list[NoduleAnnotation] = []
    names: list[str] = []
    for i, n in enumerate(nodules):
        pl = place(work, n, rng, taken)
        if pl is None:
            continue
        done = transplant(hu, volume.geometry, n, pl, seed=int(seed) * 1000 + i)
        if done is None:
            continue
        _, centroid = done
        taken.append((centroid, 0.5 * max(n.diameter_mm, n.mask_diameter_mm)))
        anns.append(n.annotation(centroid))
        names.append(n.name)
    return dataclasses.replace(volume, hu_zyx=hu, warnings=()), anns, names


# --------------------------------------------------------------------------------------------
# backgrounds


def slab(volume: Volume, k0: int, k1: int, description: str) -> Volume:
    g = volume.geometry
    geom = Geometry((k1 - k0, *g.shape_zyx[1:]), g.spacing_zyx, g.index_to_mm((k0, 0, 0)), g.direction)
    return dataclasses.replace(
        volume, hu_zyx=np.ascontiguousarray(volume.hu_zyx[k0:k1]), geometry=geom, description=description
    )


def clear_slabs(volume: Volume, avoid_z: tuple[float, float], margin_mm: float, min_mm: float) -> list[tuple[int, int]]:
    """Runs of slices at least ``margin_mm`` from the patient z range ``avoid_z``, ``min_mm`` long."""
    g = volume.geometry
    k = np.arange(g.shape_zyx[0])
    z = np.asarray(g.index_to_mm(np.stack([k, 0 * k, 0 * k], 1)))[:, 2]
    lo, hi = sorted(avoid_z)
    keep = np.flatnonzero((z < lo - margin_mm) | (z > hi + margin_mm))
    runs = np.split(keep, np.flatnonzero(np.diff(keep) > 1) + 1) if len(keep) else []
    step = float(g.spacing_zyx[0])
    return [(int(r[0]), int(r[-1]) + 1) for r in runs if len(r) * step >= min_mm]


def a0001_tumour_z(root: str | Path) -> tuple[float, float]:
    """Patient z range (mm) of the slices whose SOPInstanceUID has a VOC XML tumour box."""
    import pydicom

    root = Path(root)
    boxed = {p.stem for p in (root / "annotations").glob("*.xml")}
    zs = []
    for f in sorted(root.glob("chest-5mm-kernel-*/**/*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if str(ds.SOPInstanceUID) in boxed:
            zs.append(float(ds.ImagePositionPatient[2]))
    if not zs:
        raise ValueError(f"no boxed slice found under {root}")
    return min(zs), max(zs)


LIDC_0002_NODULE_Z = (-120.75, -87.0)


def real_backgrounds(real_ct: str | Path, margin_mm: float = 20.0) -> dict[str, Volume]:
    """Slabs of the real scans clear of their own lesions by ``margin_mm`` (name -> Volume)."""
    from nodeview.core.io.study import open_study

    real_ct = Path(real_ct)
    out: dict[str, Volume] = {}
    lidc = open_study(real_ct / "LIDC-IDRI-0002")
    for k0, k1 in clear_slabs(lidc, LIDC_0002_NODULE_Z, margin_mm, 50.0):
        out[f"lidc0002-k{k0}-{k1}"] = slab(lidc, k0, k1, "LIDC-IDRI-0002 slab")
    a1 = real_ct / "Lung-PET-CT-Dx-A0001"
    tz = a0001_tumour_z(a1)
    for kernel in ("L", "B"):
        vol = open_study(a1 / f"chest-5mm-kernel-{kernel}")
        for k0, k1 in clear_slabs(vol, tz, margin_mm, 50.0):
            out[f"a0001{kernel}-k{k0}-{k1}"] = slab(vol, k0, k1, f"A0001 kernel {kernel} slab")
    return out


def write_volume(volume: Volume, out_dir: str | Path, seed: int, tag: str = "TRANSPLANT") -> None:
    """One DICOM series (the format :func:`nodeview.core.io.study.open_study` and training read)."""
    from pydicom.uid import generate_uid

    from nodeview.core.io.dicom_write import SeriesSpec, write_series

    geom = volume.geometry
    hu = volume.hu_zyx
    d = geom.direction
    origin = geom.origin_xyz
    if float(np.cross(d[:, 0], d[:, 1]) @ d[:, 2]) < 0:
        hu = np.ascontiguousarray(hu[::-1])
        origin = geom.index_to_mm((geom.shape_zyx[0] - 1, 0, 0))
    uid = str(generate_uid(entropy_srcs=["nodeview-transplant", str(seed)]))
    spec = SeriesSpec(
        spacing_zyx=tuple(float(v) for v in geom.spacing_zyx),  # type: ignore[arg-type]
        origin_xyz=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        orientation=tuple(float(v) for v in (*d[:, 0], *d[:, 1])),
        patient_position=volume.patient_position or "HFS",
        series_uid=uid,
        study_uid=str(generate_uid(entropy_srcs=["nodeview-transplant", "study", uid])),
        frame_of_reference_uid=str(generate_uid(entropy_srcs=["nodeview-transplant", "for", uid])),
        series_description=(volume.description + " + real nodules")[:64],
        slice_thickness=volume.slice_thickness_mm,
        rescale_intercept=-1024.0,
        pixel_representation=1,
        file_names="instance",
        patient_name=f"{tag}^CT",
        patient_id=f"{tag[:3]}-{seed:07d}",
        patient_birth_date="",
        accession_number=f"{tag[:3]}{seed:07d}",
        seed=int(seed),
    )
    write_series(hu, out_dir, spec)


def record(scan_id: str, path: str, anns: Sequence[NoduleAnnotation], fold: int) -> ScanRecord:
    return ScanRecord(scan_id=scan_id, path=path, nodules=tuple(anns), fold=fold, source="transplant")
