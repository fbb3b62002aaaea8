"""Register a prior CT to the current one on the lungs: rigid, then affine (SimpleITK; Qt-free).

Convention
    The result is one 4x4 matrix ``current_to_prior`` in LPS millimetres (:mod:`..geometry`):
    ``p_prior = M @ [x, y, z, 1]`` for a point ``(x, y, z)`` of the current study. The current
    study is ITK's *fixed* image, the prior the *moving* one, so ITK's transform is this matrix.
    Its inverse maps prior points into the current study.

Method
    1. Both volumes are block-averaged to about :data:`TARGET_SPACING_MM` (integer factors per
       axis) and their lungs segmented there with :func:`nodeview.core.detect.lung.segment_lungs`.
    2. Start: the translation that aligns the two lung masks' centres of mass.
    3. Rigid (Euler 3D), then affine (12 parameters, started from the rigid result): mean squares
       of HU clipped to [-1000, 200], sampled in the current lungs dilated by 10 mm (so the lung
       boundary, which carries the signal, is inside), regular-step gradient descent, two
       resolution levels (x2 shrink with 4 mm smoothing, then the working grid).
    4. Quality: the mean distance (mm) from the current lung surface, mapped into the prior, to
       the prior lung surface (:class:`SurfaceProbe`), before (lung centres aligned) and after.
       On the working grid it is about 1 mm for a perfect alignment, more when breathing or
       posture differ; a value far above the "before" one means the registration failed.

A reader can nudge the result by a translation in mm (:meth:`Registration.nudged`); the quality
is re-measured at once (milliseconds).

Progress runs over 100 steps: downsampling and lungs 0-20, rigid 20-60, affine 60-95, quality
95-100. ``should_stop`` is polled at every optimiser iteration; the optimiser then stops and
:class:`~nodeview.core.errors.Cancelled` is raised.
"""

# SimpleITK ships without type annotations.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ..detect.lung import segment_lungs
from ..errors import InputError
from ..geometry import Geometry
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..volume import Volume

TARGET_SPACING_MM = 2.5
CLIP_HU = (-1000.0, 200.0)
MASK_DILATION_MM = 10.0
CROP_MARGIN_MM = 25.0
SURFACE_POINTS = 6000
#: fraction of the working grid's voxels the metric samples (those in the dilated lung mask count) at
#: the coarse level (x2 shrink) and the fine level: 20,000-50,000 points a level for a chest
SAMPLING = (0.10, 0.02)
GRADIENT_FILTERS = False


class RegistrationError(InputError):
    """The two studies cannot be registered (no lungs in one of them, or the optimiser failed)."""


# ---- matrices ------------------------------------------------------------------------------------
def apply(matrix: NDArray[np.float64], points_xyz: ArrayLike) -> NDArray[np.float64]:
    """Map LPS points (..., 3) through a 4x4 matrix."""
    p = np.asarray(points_xyz, dtype=np.float64)
    return np.asarray(p @ matrix[:3, :3].T + matrix[:3, 3], dtype=np.float64)


def translation(offset_xyz: ArrayLike) -> NDArray[np.float64]:
    m = np.eye(4)
    m[:3, 3] = np.asarray(offset_xyz, dtype=np.float64)
    return m


def rigid_matrix(angles_deg_xyz: ArrayLike, shift_xyz: ArrayLike, centre_xyz: ArrayLike) -> NDArray[np.float64]:
    """Rotation about ``centre`` (x, then y, then z, degrees) followed by a shift: a 4x4 matrix."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg_xyz, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    r = rz @ ry @ rx
    c = np.asarray(centre_xyz, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(shift_xyz, dtype=np.float64)
    return m


def _itk_to_matrix(transform: Any) -> NDArray[np.float64]:
    """4x4 of a SimpleITK Euler3D/Affine transform: ``A (p - c) + c + t``."""
    a = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.asarray(transform.GetCenter(), dtype=np.float64)
    t = np.asarray(transform.GetTranslation(), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = c + t - a @ c
    return m


# ---- working grid --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Coarse:
    """A study on the working grid: clipped HU (float32), its geometry and its lung mask."""

    hu_zyx: NDArray[np.float32]
    geometry: Geometry
    lung_zyx: NDArray[np.bool_]


def block_mean_3d(hu_zyx: NDArray[Any], factors: tuple[int, int, int]) -> NDArray[np.float32]:
    """Mean over ``factors`` blocks (edges cropped), float32: SimpleITK's multi-threaded BinShrink
    (on int16 it rounds each mean to a whole HU, which registration does not notice)."""
    import SimpleITK as sitk

    fz, fy, fx = factors
    if fz == fy == fx == 1:
        return np.asarray(hu_zyx, dtype=np.float32)
    shrunk = sitk.BinShrink(sitk.GetImageFromArray(np.ascontiguousarray(hu_zyx)), [int(fx), int(fy), int(fz)])
    return np.asarray(sitk.GetArrayFromImage(shrunk), dtype=np.float32)


def coarse_study(volume: Volume, target_mm: float = TARGET_SPACING_MM) -> Coarse:
    """Block-average ``volume`` to about ``target_mm`` and segment its lungs there."""
    g = volume.geometry
    factors = tuple(max(1, int(round(target_mm / float(s)))) for s in g.spacing_zyx)
    fz, fy, fx = factors
    small = block_mean_3d(volume.hu_zyx, (fz, fy, fx))
    if min(small.shape) < 4:
        raise RegistrationError("the study is too small to register (fewer than 4 slices at the working grid)")
    origin = g.index_to_mm(((fz - 1) / 2.0, (fy - 1) / 2.0, (fx - 1) / 2.0))
    geometry = Geometry(small.shape, g.spacing_zyx * np.asarray(factors, dtype=np.float64), origin, g.direction)
    lung = segment_lungs(np.clip(np.rint(small), -32768, 32767).astype(np.int16), geometry)
    mask = lung.full_resolution(small.shape)
    np.clip(small, *CLIP_HU, out=small)
    return Coarse(small, geometry, mask)


def _to_sitk(array: NDArray[Any], geometry: Geometry) -> Any:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing([float(v) for v in geometry.spacing_xyz])
    image.SetOrigin([float(v) for v in geometry.origin_xyz])
    image.SetDirection([float(v) for v in geometry.direction.reshape(-1)])
    return image


def lung_centroid_mm(coarse: Coarse) -> NDArray[np.float64]:
    idx = np.argwhere(coarse.lung_zyx)
    if len(idx) == 0:
        raise RegistrationError("no lungs found in one of the studies: it cannot be registered on the lungs")
    return coarse.geometry.index_to_mm(idx.mean(axis=0))


# ---- quality -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SurfaceProbe:
    """Mean distance from the current lung surface (points, mm) to the prior lung surface.

    ``distance_zyx`` is the Euclidean distance (mm) to the prior's lung surface on the prior's
    working grid; points mapped outside it take the nearest edge value.
    """

    points_xyz: NDArray[np.float64]
    distance_zyx: NDArray[np.float32]
    prior_geometry: Geometry

    @classmethod
    def build(cls, current: Coarse, prior: Coarse, n_points: int = SURFACE_POINTS) -> SurfaceProbe:
        pts = np.argwhere(_surface(current.lung_zyx))
        if len(pts) > n_points:
            pts = pts[np.linspace(0, len(pts) - 1, n_points).astype(int)]
        surface = _surface(prior.lung_zyx)
        dist = ndimage.distance_transform_edt(~surface, sampling=prior.geometry.spacing_zyx).astype(np.float32)
        return cls(current.geometry.index_to_mm(pts.astype(np.float64)), dist, prior.geometry)

    def mean_mm(self, current_to_prior: NDArray[np.float64]) -> float:
        if len(self.points_xyz) == 0:
            return float("nan")
        idx = self.prior_geometry.mm_to_index(apply(current_to_prior, self.points_xyz))
        values = ndimage.map_coordinates(self.distance_zyx, idx.T, order=1, mode="nearest")
        return float(np.mean(values))


def _surface(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    return np.asarray(mask & ~ndimage.binary_erosion(mask), dtype=bool)


# ---- the result ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Registration:
    """Where each current point lies in the prior, and how well the lungs line up.

    Attributes:
        current_to_prior: 4x4, LPS mm, the affine result with the reader's nudge applied.
        method: what produced it ("rigid+affine on the lungs", "identity", ...).
        surface_before_mm: mean lung-surface distance with the lung centres aligned.
        surface_after_mm: the same after registration (and nudge).
        nudge_mm: the reader's translation (prior space, mm) applied after the registration.
        seconds: time taken.
    """

    current_to_prior: NDArray[np.float64]
    method: str
    surface_before_mm: float | None = None
    surface_after_mm: float | None = None
    nudge_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    registered_matrix: NDArray[np.float64] | None = field(default=None, repr=False)
    probe: SurfaceProbe | None = field(default=None, repr=False)

    @classmethod
    def identity(cls, method: str = "identity (no prior images: scanner coordinates)") -> Registration:
        return cls(np.eye(4), method)

    def to_prior(self, points_xyz: ArrayLike) -> NDArray[np.float64]:
        return apply(self.current_to_prior, points_xyz)

    def to_current(self, points_xyz: ArrayLike) -> NDArray[np.float64]:
        return apply(np.asarray(np.linalg.inv(self.current_to_prior), dtype=np.float64), points_xyz)

    def nudged(self, nudge_mm: ArrayLike) -> Registration:
        """The registration with the prior moved by ``nudge_mm`` (replaces any earlier nudge)."""
        base = self.registered_matrix if self.registered_matrix is not None else self.current_to_prior
        offset = np.asarray(nudge_mm, dtype=np.float64).reshape(3)
        matrix = translation(offset) @ base
        after = self.probe.mean_mm(matrix) if self.probe is not None else self.surface_after_mm
        return replace(
            self,
            current_to_prior=matrix,
            nudge_mm=(float(offset[0]), float(offset[1]), float(offset[2])),
            surface_after_mm=after,
            registered_matrix=base,
        )

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None or not np.isfinite(v) else round(float(v), 2)

        return {
            "method": self.method,
            "matrix_current_to_prior": [[round(float(v), 6) for v in row] for row in self.current_to_prior],
            "lung_surface_distance_mm": {"before": r(self.surface_before_mm), "after": r(self.surface_after_mm)},
            "nudge_mm": [round(v, 2) for v in self.nudge_mm],
            "seconds": round(self.seconds, 2),
        }


# ---- registration --------------------------------------------------------------------------------
def register(
    current: Volume,
    prior: Volume,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
    *,
    target_mm: float = TARGET_SPACING_MM,
    affine: bool = True,
    iterations: int = 80,
) -> Registration:
    """Register ``prior`` to ``current`` on the lungs (module docstring). Returns the mapping of
    current points into the prior."""
    import SimpleITK as sitk

    t0 = time.perf_counter()
    progress(0, 100)
    cur = coarse_study(current, target_mm)
    check_cancel(should_stop)
    progress(10, 100)
    pri = coarse_study(prior, target_mm)
    check_cancel(should_stop)
    progress(20, 100)
    c_cur, c_pri = lung_centroid_mm(cur), lung_centroid_mm(pri)

    fixed_c, moving_c = _crop_to_lungs(cur, CROP_MARGIN_MM), _crop_to_lungs(pri, CROP_MARGIN_MM)
    fixed = _to_sitk(fixed_c.hu_zyx, fixed_c.geometry)
    moving = _to_sitk(moving_c.hu_zyx, moving_c.geometry)
    size = 2 * np.maximum(1, np.rint(MASK_DILATION_MM / cur.geometry.spacing_zyx)).astype(int) + 1
    dilated = ndimage.maximum_filter(fixed_c.lung_zyx.view(np.uint8), size=tuple(int(v) for v in size))  # a cube
    mask = _to_sitk(dilated, fixed_c.geometry)

    rigid = sitk.Euler3DTransform()
    rigid.SetCenter([float(v) for v in c_cur])
    rigid.SetTranslation([float(v) for v in c_pri - c_cur])
    start = _itk_to_matrix(rigid)
    rigid = _run(fixed, moving, mask, rigid, iterations, progress, should_stop, (20, 60), learning_rate=2.0)
    result: Any = rigid
    if affine:
        aff = sitk.AffineTransform(3)
        aff.SetCenter(rigid.GetCenter())
        aff.SetMatrix(rigid.GetMatrix())
        aff.SetTranslation(rigid.GetTranslation())
        result = _run(fixed, moving, mask, aff, iterations, progress, should_stop, (60, 95), learning_rate=1.0)
    matrix = _itk_to_matrix(result)
    probe = SurfaceProbe.build(fixed_c, moving_c)
    before, after = probe.mean_mm(start), probe.mean_mm(matrix)
    if not np.isfinite(matrix).all():
        raise RegistrationError("the registration diverged (non-finite transform)")
    progress(100, 100)
    return Registration(
        matrix,
        "rigid+affine on the lungs" if affine else "rigid on the lungs",
        before,
        after,
        seconds=time.perf_counter() - t0,
        registered_matrix=matrix,
        probe=probe,
    )


def _crop_to_lungs(coarse: Coarse, margin_mm: float) -> Coarse:
    """The part of the working grid around the lungs (plus ``margin_mm``): the optimiser's cost
    grows with the image, not with the mask."""
    extent = [np.flatnonzero(coarse.lung_zyx.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    pad = np.ceil(margin_mm / coarse.geometry.spacing_zyx).astype(int)
    lo = [max(int(e[0]) - int(p), 0) for e, p in zip(extent, pad, strict=True)]
    hi = [min(int(e[-1]) + int(p) + 1, n) for e, p, n in zip(extent, pad, coarse.hu_zyx.shape, strict=True)]
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    g = coarse.geometry
    geometry = Geometry(
        (hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), g.spacing_zyx, g.index_to_mm(np.asarray(lo, float)), g.direction
    )
    return Coarse(np.ascontiguousarray(coarse.hu_zyx[box]), geometry, np.ascontiguousarray(coarse.lung_zyx[box]))


def _run(
    fixed: Any,
    moving: Any,
    mask: Any,
    initial: Any,
    iterations: int,
    progress: ProgressFn,
    should_stop: StopFn,
    span: tuple[int, int],
    learning_rate: float,
) -> Any:
    """One registration stage; returns the optimised transform (same type as ``initial``)."""
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricFixedMask(mask)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel(list(SAMPLING), seed=12345)
    if not GRADIENT_FILTERS:  # gradients at the sampled points only, not of the whole image per level
        reg.SetMetricUseFixedImageGradientFilter(False)
        reg.SetMetricUseMovingImageGradientFilter(False)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=learning_rate,
        minStep=0.01,
        numberOfIterations=iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([4.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(initial, inPlace=True)
    lo, hi = span
    total = 2 * iterations
    state = {"n": 0, "stopped": False}

    def on_iteration() -> None:
        state["n"] += 1
        progress(lo + (hi - lo) * min(state["n"], total) // total, 100)
        if should_stop():
            state["stopped"] = True
            reg.StopRegistration()

    reg.AddCommand(sitk.sitkIterationEvent, on_iteration)
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as exc:
        check_cancel(should_stop)
        raise RegistrationError(f"the registration failed ({exc})") from exc
    check_cancel(should_stop)
    progress(hi, 100)
    return initial


__all__ = [
    "Coarse",
    "Registration",
    "RegistrationError",
    "SurfaceProbe",
    "apply",
    "coarse_study",
    "register",
    "rigid_matrix",
    "translation",
]
