"""The one coordinate convention of NodeView. Every other module uses it; none restates it.

Array axis order
    A CT volume is a numpy array ``hu_zyx`` of shape ``(nz, ny, nx)``, indexed ``[k, j, i]``:
    ``k`` = slice, ``j`` = row (image y, top to bottom), ``i`` = column (image x, left to right).
    Names say the order: ``shape_zyx``, ``spacing_zyx``, ``index_zyx``.

Patient millimetres
    Positions are DICOM patient coordinates in millimetres, LPS: +x towards the patient's Left,
    +y Posterior, +z Superior (head). LUNA16 "world" coordinates are the same system. Positions
    are always ordered ``(x, y, z)`` and named ``*_xyz``.

Voxel to millimetres
    ``origin_xyz`` is the LPS position of the *centre* of voxel ``[0, 0, 0]``. ``direction`` is a
    3x3 matrix whose columns are the LPS unit vectors along increasing ``i``, ``j`` and ``k``
    (ITK's convention, the matrix SimpleITK's ``GetDirection()`` gives in row-major order). For
    DICOM, column 0 is the first ImageOrientationPatient triplet (along a row), column 1 the second
    (down a column), column 2 the slice normal; slices are stored in increasing order along it::

        xyz = origin_xyz + direction @ (spacing_xyz * [i, j, k])

Display (radiological convention) is derived here too: :meth:`Geometry.axis_labels` names the
patient direction each array axis points to, so views can flip to show the patient's right on the
screen's left, anterior up (axial/sagittal) and superior up (coronal/sagittal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Letter for the positive direction of each LPS axis, and for the negative one.
_POSITIVE = ("L", "P", "S")
_NEGATIVE = ("R", "A", "I")


def _as_float_array(values: ArrayLike, shape: tuple[int, ...], name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Geometry:
    """Where a ``(nz, ny, nx)`` voxel grid sits in patient space (LPS millimetres).

    Args:
        shape_zyx: number of voxels along k, j, i.
        spacing_zyx: voxel size in mm along k (slice step), j (row), i (column).
        origin_xyz: LPS mm of the centre of voxel ``[0, 0, 0]``.
        direction: 3x3; column c is the LPS unit vector of array axis c in (i, j, k) order.
    """

    shape_zyx: tuple[int, int, int]
    spacing_zyx: NDArray[np.float64]
    origin_xyz: NDArray[np.float64]
    direction: NDArray[np.float64] = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape_zyx)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape_zyx must be three positive sizes, got {self.shape_zyx}")
        object.__setattr__(self, "shape_zyx", shape)
        spacing = _as_float_array(self.spacing_zyx, (3,), "spacing_zyx")
        if np.any(spacing <= 0):
            raise ValueError(f"spacing_zyx must be positive, got {spacing.tolist()}")
        object.__setattr__(self, "spacing_zyx", spacing)
        object.__setattr__(self, "origin_xyz", _as_float_array(self.origin_xyz, (3,), "origin_xyz"))
        direction = _as_float_array(self.direction, (3, 3), "direction")
        norms = np.linalg.norm(direction, axis=0)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            raise ValueError(f"direction columns must be unit vectors, norms {norms.tolist()}")
        if abs(np.linalg.det(direction)) < 1e-3:
            raise ValueError("direction matrix is singular")
        object.__setattr__(self, "direction", direction)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Geometry):
            return NotImplemented
        return self.isclose(other, atol=0.0)

    __hash__ = None  # type: ignore[assignment]

    def isclose(self, other: Geometry, atol: float = 1e-4) -> bool:
        """Same grid within ``atol`` (mm for origin/spacing, unitless for direction)."""
        return (
            self.shape_zyx == other.shape_zyx
            and bool(np.allclose(self.spacing_zyx, other.spacing_zyx, rtol=0, atol=atol))
            and bool(np.allclose(self.origin_xyz, other.origin_xyz, rtol=0, atol=atol))
            and bool(np.allclose(self.direction, other.direction, rtol=0, atol=atol))
        )

    # ---- derived quantities -------------------------------------------------------------------
    @property
    def spacing_xyz(self) -> NDArray[np.float64]:
        """Spacing in (i, j, k) order, matching the columns of :attr:`direction`."""
        return self.spacing_zyx[::-1].copy()

    @property
    def affine(self) -> NDArray[np.float64]:
        """4x4 matrix mapping homogeneous ``[i, j, k, 1]`` to ``[x, y, z, 1]`` (LPS mm)."""
        out = np.eye(4)
        out[:3, :3] = self.direction * self.spacing_xyz[np.newaxis, :]
        out[:3, 3] = self.origin_xyz
        return out

    @property
    def slice_normal_xyz(self) -> NDArray[np.float64]:
        return self.direction[:, 2].copy()

    @property
    def is_axis_aligned(self) -> bool:
        """True when every array axis is within 1e-3 of an LPS axis (no obliquity)."""
        return bool(np.all(np.abs(np.abs(self.direction).max(axis=0) - 1.0) < 1e-3))

    @property
    def extent_zyx_mm(self) -> NDArray[np.float64]:
        """Physical size along each array axis, centre of first to centre of last voxel plus one step."""
        return np.asarray(self.shape_zyx, dtype=np.float64) * self.spacing_zyx

    # ---- conversions --------------------------------------------------------------------------
    def index_to_mm(self, index_zyx: ArrayLike) -> NDArray[np.float64]:
        """Voxel index (k, j, i), fractional allowed, shape (..., 3) → LPS mm (x, y, z), shape (..., 3)."""
        idx = np.asarray(index_zyx, dtype=np.float64)
        ijk = idx[..., ::-1] * self.spacing_xyz
        return np.asarray(ijk @ self.direction.T + self.origin_xyz, dtype=np.float64)

    def mm_to_index(self, point_xyz: ArrayLike) -> NDArray[np.float64]:
        """LPS mm (x, y, z), shape (..., 3) → fractional voxel index (k, j, i), shape (..., 3)."""
        pts = np.asarray(point_xyz, dtype=np.float64) - self.origin_xyz
        ijk = pts @ np.linalg.inv(self.direction).T / self.spacing_xyz
        return np.asarray(ijk[..., ::-1], dtype=np.float64)

    def mm_offset_to_index(self, offset_xyz: ArrayLike) -> NDArray[np.float64]:
        """A displacement in LPS mm, shape (..., 3) → the same displacement in fractional voxel
        index (k, j, i): ``mm_to_index(p + d) == mm_to_index(p) + mm_offset_to_index(d)``."""
        ijk = np.asarray(offset_xyz, dtype=np.float64) @ np.linalg.inv(self.direction).T / self.spacing_xyz
        return np.asarray(ijk[..., ::-1], dtype=np.float64)

    def mm_to_voxel(self, point_xyz: ArrayLike) -> tuple[int, int, int]:
        """Nearest voxel (k, j, i) to one LPS point; raises ``IndexError`` outside the volume."""
        idx = np.rint(self.mm_to_index(point_xyz)).astype(int)
        if idx.shape != (3,):
            raise ValueError("mm_to_voxel takes one point; use mm_to_index for arrays")
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.shape_zyx)):
            raise IndexError(f"point {np.asarray(point_xyz).tolist()} mm lies outside the volume")
        return int(idx[0]), int(idx[1]), int(idx[2])

    def contains_mm(self, point_xyz: ArrayLike) -> bool:
        idx = self.mm_to_index(point_xyz)
        return bool(np.all(idx > -0.5) and np.all(idx < np.asarray(self.shape_zyx) - 0.5))

    def center_mm(self) -> NDArray[np.float64]:
        return self.index_to_mm((np.asarray(self.shape_zyx, dtype=np.float64) - 1.0) / 2.0)

    # ---- display ------------------------------------------------------------------------------
    def dominant_axes_zyx(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """For array axes (k, j, i): the nearest LPS axis (0=x, 1=y, 2=z) and its sign (+1/-1).

        Each array axis gets a different LPS axis, even for strongly oblique volumes.
        """
        absd = np.abs(self.direction)
        chosen: dict[int, tuple[int, int]] = {}
        used: set[int] = set()
        # Assign the most confident columns first so two array axes never share an LPS axis.
        for col in sorted(range(3), key=lambda c: -float(absd[:, c].max())):
            order = np.argsort(-absd[:, col])
            lps = next(int(a) for a in order if int(a) not in used)
            used.add(lps)
            chosen[col] = (lps, 1 if self.direction[lps, col] >= 0 else -1)
        return chosen[2], chosen[1], chosen[0]

    def axis_labels(self) -> tuple[str, str, str]:
        """Patient direction letter of increasing k, j, i, e.g. ``('S', 'P', 'L')`` for axial HFS."""
        labels = []
        for lps, sign in self.dominant_axes_zyx():
            labels.append(_POSITIVE[lps] if sign > 0 else _NEGATIVE[lps])
        return labels[0], labels[1], labels[2]

    def orientation_code(self) -> str:
        """Three-letter LPS-style code of (i, j, k), as ITK/DICOM tools print it (e.g. ``LPS``)."""
        k, j, i = self.axis_labels()
        return i + j + k

    def to_dict(self) -> dict[str, object]:
        return {
            "shape_zyx": list(self.shape_zyx),
            "spacing_zyx_mm": [round(float(v), 6) for v in self.spacing_zyx],
            "origin_xyz_mm": [round(float(v), 4) for v in self.origin_xyz],
            "direction": [[round(float(v), 6) for v in row] for row in self.direction],
            "orientation": self.orientation_code(),
        }


def slice_normal(orientation: ArrayLike) -> NDArray[np.float64]:
    """Unit normal of a DICOM ImageOrientationPatient (row cosines, column cosines)."""
    iop = np.asarray(orientation, dtype=np.float64).reshape(2, 3)
    normal = np.cross(iop[0], iop[1])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        raise ValueError("ImageOrientationPatient row and column directions are parallel")
    return np.asarray(normal / norm, dtype=np.float64)


def direction_from_orientation(orientation: ArrayLike) -> NDArray[np.float64]:
    """3x3 direction (columns i, j, k) for slices of one DICOM orientation sorted along its normal."""
    iop = np.asarray(orientation, dtype=np.float64).reshape(2, 3)
    row = iop[0] / np.linalg.norm(iop[0])
    col = iop[1] / np.linalg.norm(iop[1])
    return np.stack([row, col, slice_normal(orientation)], axis=1)
