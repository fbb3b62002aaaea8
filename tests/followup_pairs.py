"""Prior/current study pairs with known truth, for the follow-up tests (a helper module, not tests).

One synthetic patient (``training.data.synth``, noise-free anatomy) is the *prior*. The *current*
study is the same patient moved: the anatomy resampled through a known rigid transform
``current_to_prior`` (a shift and a small rotation), so a correct registration recovers that
matrix. Nodules are rendered crisply on each study's own grid after that (not resampled): one
stable, some grown by known volumes, one new (current only), one resolved (prior only). Each
study gets its own noise. Sizes are the renderer's equivalent-sphere diameters, volumes
``pi / 6 * d**3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from nodeview.core.detect.lung import segment_lungs
from nodeview.core.followup.registration import apply, rigid_matrix
from nodeview.core.geometry import Geometry
from nodeview.core.volume import PatientInfo, Volume

PRIOR_DATE, CURRENT_DATE = "20250302", "20260305"  # 368 days apart
INTERVAL_DAYS = 368


@dataclass(frozen=True)
class TruthNodule:
    name: str
    prior_diameter_mm: float | None  # None: new
    current_diameter_mm: float | None  # None: resolved
    prior_xyz: tuple[float, float, float] | None
    current_xyz: tuple[float, float, float] | None
    change: str  # new, stable, growing, shrinking, resolved

    @property
    def vdt_days(self) -> float | None:
        if self.prior_diameter_mm is None or self.current_diameter_mm is None:
            return None
        ratio = (self.current_diameter_mm / self.prior_diameter_mm) ** 3
        return None if ratio == 1.0 else INTERVAL_DAYS * math.log(2) / math.log(ratio)


@dataclass(frozen=True, eq=False)
class Pair:
    prior: Volume
    current: Volume
    current_to_prior: NDArray[np.float64]
    nodules: tuple[TruthNodule, ...]


# name, prior diameter, current diameter, change
PLAN: tuple[tuple[str, float | None, float | None, str], ...] = (
    ("stable", 8.0, 8.0, "stable"),
    ("grown", 6.0, 9.0, "growing"),
    ("grown-more", 10.0, 14.0, "growing"),
    ("new", None, 8.0, "new"),
    ("resolved", 9.0, None, "resolved"),
)


def _noise(shape: tuple[int, ...], sd: float, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * sd).astype(np.float32)


def _to_volume(hu: NDArray[np.float32], geometry: Geometry, date: str, name: str) -> Volume:
    arr = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return Volume(
        arr,
        geometry,
        description=name,
        series_uid=f"1.2.826.0.1.3680043.10.1011.{abs(hash(name)) % 10**8}",
        source_format="synthetic",
        patient=PatientInfo(name="SYNTHETIC^PAIR", patient_id="SYNTH-PAIR", study_date=date),
    )


def _centres(anatomy: NDArray[np.float32], geometry: Geometry, n: int, seed: int) -> list[NDArray[np.float64]]:
    """``n`` points deep in the lungs (>= 15 mm from their boundary), clear of vessels for 9 mm,
    >= 30 mm apart."""
    lung = segment_lungs(np.clip(anatomy, -1024, 3071).astype(np.int16), geometry)
    depth = ndimage.distance_transform_edt(lung.full_resolution(geometry.shape_zyx), sampling=geometry.spacing_zyx)
    cand = np.argwhere(depth >= 15.0)
    rng = np.random.default_rng(seed)
    rng.shuffle(cand)
    half = np.ceil(9.0 / geometry.spacing_zyx).astype(int)
    chosen: list[NDArray[np.float64]] = []
    for c in cand[:20000]:
        p = geometry.index_to_mm(c.astype(np.float64))
        if any(np.linalg.norm(p - q) < 30.0 for q in chosen):
            continue
        lo, hi = c - half, c + half + 1
        if np.mean(anatomy[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] > -500) > 0.03:
            continue
        chosen.append(p)
        if len(chosen) == n:
            return chosen
    raise RuntimeError("not enough room in the lungs for the test nodules")


def resample_through(array: NDArray[np.float32], geometry: Geometry, current_to_prior: NDArray[np.float64],
                     default: float = -1000.0) -> NDArray[np.float32]:
    """``out(p) = array(M p)`` on the same grid (linear interpolation, SimpleITK)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetSpacing([float(v) for v in geometry.spacing_xyz])
    image.SetOrigin([float(v) for v in geometry.origin_xyz])
    image.SetDirection([float(v) for v in geometry.direction.reshape(-1)])
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in current_to_prior[:3, :3].reshape(-1)])
    transform.SetTranslation([float(v) for v in current_to_prior[:3, 3]])
    out = sitk.Resample(image, image, transform, sitk.sitkLinear, default, sitk.sitkFloat32)
    return np.asarray(sitk.GetArrayFromImage(out), dtype=np.float32)


#: the grid of the pair the truth tests use: fine enough to measure 6-14 mm nodules to about 1 mm
FINE = {"shape_zyx": (160, 320, 320), "spacing_zyx": (1.5, 1.0, 1.0)}
#: a quick pair for the GUI (registration and display only)
COARSE = {"shape_zyx": (72, 192, 192), "spacing_zyx": (3.0, 2.0, 2.0)}


@lru_cache(maxsize=2)
def cached_pair(kind: str = "fine") -> Pair:
    """One pair per kind per test session (it takes seconds to make)."""
    return make_pair(**(FINE if kind == "fine" else COARSE))  # type: ignore[arg-type]


def make_pair(
    seed: int = 7,
    shape_zyx: tuple[int, int, int] = (160, 320, 320),
    spacing_zyx: tuple[float, float, float] = (1.5, 1.0, 1.0),
    angles_deg: tuple[float, float, float] = (2.0, -1.5, 3.0),
    shift_mm: tuple[float, float, float] = (12.0, -8.0, 15.0),
    noise_sd: float = 12.0,
) -> Pair:
    """A prior/current pair with the nodules of :data:`PLAN` (module docstring)."""
    from training.data.synth.generator import generate_scan_full
    from training.data.synth.nodules import blend_nodule, render_nodule, sample_nodule

    scan = generate_scan_full(seed, shape_zyx, spacing_zyx, n_nodules=0, noise_sd_hu=0, contrast=False,
                              patient_position="HFS", workers=2)
    g = scan.volume.geometry
    anatomy = scan.volume.hu_zyx.astype(np.float32)
    matrix = rigid_matrix(angles_deg, shift_mm, g.center_mm())  # current -> prior

    # the current anatomy: the prior resampled through the transform (same grid)
    current_anatomy = resample_through(anatomy, g, matrix)

    centres = _centres(anatomy, g, len(PLAN), seed)
    rng = np.random.default_rng(seed + 1)
    prior_hu, current_hu = anatomy.copy(), current_anatomy
    inverse = np.linalg.inv(matrix)
    truth = []
    for (name, d_prior, d_current, change), c_prior in zip(PLAN, centres, strict=True):
        c_current = apply(inverse, c_prior)
        shape_seed = int(rng.integers(1 << 30))
        for d, c, hu in ((d_prior, c_prior, prior_hu), (d_current, c_current, current_hu)):
            if d is None:
                continue
            model = sample_nodule(np.random.default_rng(shape_seed), kind="solid", diameter_mm=d, margin="smooth",
                                  location="isolated").with_center(c)
            render = render_nodule(model, g, thickness_mm=spacing_zyx[0], psf_fwhm_mm=0.8)
            assert render is not None
            blend_nodule(hu, render)
        truth.append(TruthNodule(
            name, d_prior, d_current,
            tuple(float(v) for v in c_prior) if d_prior is not None else None,  # type: ignore[arg-type]
            tuple(float(v) for v in c_current) if d_current is not None else None,  # type: ignore[arg-type]
            change,
        ))
    prior_hu += _noise(g.shape_zyx, noise_sd, seed + 10)
    current_hu += _noise(g.shape_zyx, noise_sd, seed + 11)
    prior = _to_volume(prior_hu, g, PRIOR_DATE, "prior")
    current = _to_volume(current_hu, g, CURRENT_DATE, "current")
    return Pair(prior, current, matrix, tuple(truth))


def registration_error_mm(found: NDArray[np.float64], truth: NDArray[np.float64], points_xyz: NDArray[np.float64]) -> NDArray[np.float64]:
    """Distance (mm) between where two current->prior matrices send each point."""
    return np.asarray(np.linalg.norm(apply(found, points_xyz) - apply(truth, points_xyz), axis=-1))


def grow_nodule(volume: Volume, centre_xyz: tuple[float, float, float], radius_mm: float,
                scale: float) -> NDArray[np.float32]:
    """The volume's HU with the nodule around ``centre_xyz`` magnified by ``scale`` about its centre
    (linear; volume x ``scale**3``): inside ``radius_mm * scale`` each voxel takes the larger of its
    own HU and the HU found at ``centre + (p - centre) / scale``; the nodule's margin comes along."""
    g = volume.geometry
    hu = volume.hu_zyx.astype(np.float32)
    reach = radius_mm * scale
    c_idx = g.mm_to_index(centre_xyz)
    half = np.ceil(reach / g.spacing_zyx).astype(int) + 1
    lo = np.maximum(np.floor(c_idx).astype(int) - half, 0)
    hi = np.minimum(np.ceil(c_idx).astype(int) + half + 1, g.shape_zyx)
    idx = np.indices(tuple(hi - lo), dtype=np.float64).reshape(3, -1).T + lo
    p = g.index_to_mm(idx)
    d = np.linalg.norm(p - np.asarray(centre_xyz), axis=1)
    inside = d <= reach
    src = g.mm_to_index(np.asarray(centre_xyz) + (p[inside] - np.asarray(centre_xyz)) / scale)
    values = ndimage.map_coordinates(hu, src.T, order=1, mode="nearest")
    box = hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].reshape(-1)
    box[inside] = np.maximum(box[inside], values)
    hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = box.reshape(tuple(hi - lo))
    return hu


def moved_copy(volume: Volume, current_to_prior: NDArray[np.float64], hu: NDArray[np.float32] | None = None,
               study_date: str = "", noise_sd: float = 8.0, seed: int = 0) -> Volume:
    """A current study made from ``volume`` (or its HU ``hu``): resampled through the known transform
    (the patient moved), with fresh noise (resampling smooths the original's)."""
    g = volume.geometry
    moved = resample_through(volume.hu_zyx.astype(np.float32) if hu is None else hu, g, current_to_prior, -1024.0)
    moved += _noise(g.shape_zyx, noise_sd, seed)
    from dataclasses import replace

    return replace(
        volume,
        hu_zyx=np.clip(np.rint(moved), -1024, 3071).astype(np.int16),
        series_uid=volume.series_uid + ".9",
        patient=replace(volume.patient, study_date=study_date or volume.patient.study_date),
    )


def transplant(hu: NDArray[np.float32], geometry: Geometry, image_path: str, mask_path: str,
               centre_xyz: tuple[float, float, float], scale: float = 1.0) -> NDArray[np.float32]:
    """Blend a real nodule crop (``lidc-nodules``: HU image and mask, NIfTI) into ``hu`` (in place)
    with its mask centroid at ``centre_xyz``, magnified by ``scale``: through the mask with a soft
    (linearly interpolated) edge, ``max(bg, bg + a * (nodule - bg))`` so the nodule replaces lung."""
    import SimpleITK as sitk

    from nodeview.core.io.sitk import geometry_from_sitk

    img, msk = sitk.ReadImage(image_path), sitk.ReadImage(mask_path)
    crop_g = geometry_from_sitk(img)
    crop = sitk.GetArrayFromImage(img).astype(np.float32)
    mask = (sitk.GetArrayFromImage(msk) > 0).astype(np.float32)
    centroid = crop_g.index_to_mm(np.argwhere(mask > 0).mean(axis=0))
    reach = 0.5 * float(np.max(crop_g.extent_zyx_mm)) * scale + 2.0
    c_idx = geometry.mm_to_index(centre_xyz)
    half = np.ceil(reach / geometry.spacing_zyx).astype(int)
    lo = np.maximum(np.floor(c_idx).astype(int) - half, 0)
    hi = np.minimum(np.ceil(c_idx).astype(int) + half + 1, geometry.shape_zyx)
    idx = np.indices(tuple(hi - lo), dtype=np.float64).reshape(3, -1).T + lo
    p = geometry.index_to_mm(idx)
    src = crop_g.mm_to_index(centroid + (p - np.asarray(centre_xyz)) / scale)
    alpha = ndimage.map_coordinates(mask, src.T, order=1, mode="constant", cval=0.0)
    values = ndimage.map_coordinates(crop, src.T, order=1, mode="nearest")
    box = hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    bg = box.reshape(-1)
    new = np.maximum(bg, bg + alpha * (values - bg))
    hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = new.reshape(box.shape)
    return hu


def deep_lung_point(volume: Volume, avoid_xyz: tuple[float, float, float], min_depth_mm: float = 20.0,
                    min_distance_mm: float = 60.0) -> tuple[float, float, float]:
    """A point deep in the lungs (>= ``min_depth_mm`` from the lung boundary), clear of vessels
    for 8 mm, at least ``min_distance_mm`` from ``avoid_xyz``: where a transplanted nodule goes."""
    g = volume.geometry
    lung = segment_lungs(volume.hu_zyx, g)
    depth = ndimage.distance_transform_edt(lung.full_resolution(g.shape_zyx), sampling=g.spacing_zyx)
    half = np.ceil(8.0 / g.spacing_zyx).astype(int)
    for c in np.argwhere(depth >= min_depth_mm)[::97]:
        p = g.index_to_mm(c.astype(np.float64))
        if np.linalg.norm(p - np.asarray(avoid_xyz)) < min_distance_mm:
            continue
        lo, hi = c - half, c + half + 1
        if np.mean(volume.hu_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] > -500) < 0.02:
            return (float(p[0]), float(p[1]), float(p[2]))
    raise RuntimeError("no room for a transplanted nodule")
