"""Axial, coronal and sagittal planes of a volume in radiological display convention (Qt-free).

Display coordinates of a view are millimetres on the screen: ``u`` to the right, ``v`` downwards,
``(0, 0)`` at the outer corner of the top-left displayed pixel. The conventions are those of the
viewers radiologists use:

========  ==================  ===================  ===================
view      slicing axis        screen right (+u)    screen down (+v)
========  ==================  ===================  ===================
axial     S-I (patient z)     patient Left         Posterior
coronal   A-P (patient y)     patient Left         Inferior
sagittal  R-L (patient x)     Posterior            Inferior
========  ==================  ===================  ===================

So the patient's right is on the screen's left, anterior is up in the axial view and on the left
in the sagittal view, and superior is up in the coronal and sagittal views. Each view is mapped
onto the nearest array axes (:meth:`Geometry.dominant_axes_zyx`); for oblique acquisitions the
planes follow the acquisition grid, as in most viewers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .geometry import Geometry


class ViewKind(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


#: (slicing LPS axis, (LPS axis, sign) for +u, (LPS axis, sign) for +v)
_CONVENTION: dict[ViewKind, tuple[int, tuple[int, int], tuple[int, int]]] = {
    ViewKind.AXIAL: (2, (0, +1), (1, +1)),
    ViewKind.CORONAL: (1, (0, +1), (2, -1)),
    ViewKind.SAGITTAL: (0, (1, +1), (2, -1)),
}
_LETTERS = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A", (2, 1): "S", (2, -1): "I"}


@dataclass(frozen=True)
class ViewPlane:
    """How one view of one volume maps array indices to screen millimetres and back.

    Attributes:
        kind: axial, coronal or sagittal.
        slice_axis: array axis (0=k, 1=j, 2=i) that the view scrolls through.
        u_axis, v_axis: array axes shown along screen right and screen down.
        u_flip, v_flip: True when the array index decreases towards screen right / down.
        shape_zyx, spacing_zyx: of the volume.
    """

    kind: ViewKind
    slice_axis: int
    u_axis: int
    v_axis: int
    u_flip: bool
    v_flip: bool
    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]

    @classmethod
    def for_geometry(cls, geometry: Geometry, kind: ViewKind) -> ViewPlane:
        slice_lps, (u_lps, u_sign), (v_lps, v_sign) = _CONVENTION[kind]
        dominant = geometry.dominant_axes_zyx()  # per array axis (k, j, i): (lps axis, sign)
        array_of_lps = {lps: (axis, sign) for axis, (lps, sign) in enumerate(dominant)}
        u_axis, u_arr_sign = array_of_lps[u_lps]
        v_axis, v_arr_sign = array_of_lps[v_lps]
        slice_axis, _ = array_of_lps[slice_lps]
        return cls(
            kind=kind,
            slice_axis=slice_axis,
            u_axis=u_axis,
            v_axis=v_axis,
            u_flip=u_arr_sign != u_sign,
            v_flip=v_arr_sign != v_sign,
            shape_zyx=geometry.shape_zyx,
            spacing_zyx=(
                float(geometry.spacing_zyx[0]),
                float(geometry.spacing_zyx[1]),
                float(geometry.spacing_zyx[2]),
            ),
        )

    # ---- sizes ---------------------------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return self.shape_zyx[self.slice_axis]

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """Size of one displayed pixel: (along u, along v) in mm."""
        return self.spacing_zyx[self.u_axis], self.spacing_zyx[self.v_axis]

    @property
    def size_px(self) -> tuple[int, int]:
        """Displayed image size: (width along u, height along v) in pixels."""
        return self.shape_zyx[self.u_axis], self.shape_zyx[self.v_axis]

    @property
    def size_mm(self) -> tuple[float, float]:
        (w, h), (pu, pv) = self.size_px, self.pixel_mm
        return w * pu, h * pv

    @property
    def slice_mm(self) -> float:
        return self.spacing_zyx[self.slice_axis]

    def edge_labels(self) -> dict[str, str]:
        """Patient direction letters at the screen edges: keys left, right, top, bottom."""
        _, (u_lps, u_sign), (v_lps, v_sign) = _CONVENTION[self.kind]
        return {
            "right": _LETTERS[(u_lps, u_sign)],
            "left": _LETTERS[(u_lps, -u_sign)],
            "bottom": _LETTERS[(v_lps, v_sign)],
            "top": _LETTERS[(v_lps, -v_sign)],
        }

    # ---- pixels --------------------------------------------------------------------------------
    def extract(self, volume_zyx: NDArray[np.int16], slice_index: int, slab: int = 1) -> NDArray[np.int16]:
        """The displayed image (rows = screen down, columns = screen right) at ``slice_index``.

        Args:
            volume_zyx: the HU array.
            slice_index: index along :attr:`slice_axis`.
            slab: number of slices for a maximum-intensity projection centred on the slice (1 = none).
        """
        n = self.n_slices
        if slab <= 1:
            plane = np.take(volume_zyx, int(np.clip(slice_index, 0, n - 1)), axis=self.slice_axis)
        else:
            lo = int(np.clip(slice_index - slab // 2, 0, n - 1))
            hi = int(np.clip(lo + slab, 1, n))
            index = [slice(None)] * 3
            index[self.slice_axis] = slice(lo, hi)
            plane = volume_zyx[tuple(index)].max(axis=self.slice_axis)
        # plane keeps the remaining axes in increasing order; make it (v, u)
        remaining = [a for a in range(3) if a != self.slice_axis]
        if remaining.index(self.v_axis) != 0:
            plane = plane.T
        if self.v_flip:
            plane = plane[::-1, :]
        if self.u_flip:
            plane = plane[:, ::-1]
        return np.ascontiguousarray(plane)

    # ---- coordinates ---------------------------------------------------------------------------
    def index_to_display(self, index_zyx: ArrayLike) -> NDArray[np.float64]:
        """Fractional voxel index (k, j, i), shape (..., 3) → (u, v, slice) with u, v in screen mm.

        ``u, v`` locate the voxel centre (so index 0 maps to half a pixel); ``slice`` is the
        fractional index along :attr:`slice_axis`.
        """
        idx = np.asarray(index_zyx, dtype=np.float64)
        (w, h), (pu, pv) = self.size_px, self.pixel_mm
        iu = idx[..., self.u_axis]
        iv = idx[..., self.v_axis]
        if self.u_flip:
            iu = (w - 1) - iu
        if self.v_flip:
            iv = (h - 1) - iv
        return np.stack([(iu + 0.5) * pu, (iv + 0.5) * pv, idx[..., self.slice_axis]], axis=-1)

    def display_to_index(self, u_mm: float, v_mm: float, slice_index: float) -> NDArray[np.float64]:
        """Screen mm (u, v) on slice ``slice_index`` → fractional voxel index (k, j, i)."""
        (w, h), (pu, pv) = self.size_px, self.pixel_mm
        iu = u_mm / pu - 0.5
        iv = v_mm / pv - 0.5
        if self.u_flip:
            iu = (w - 1) - iu
        if self.v_flip:
            iv = (h - 1) - iv
        out = np.zeros(3)
        out[self.u_axis], out[self.v_axis], out[self.slice_axis] = iu, iv, slice_index
        return out


def crossing_views(kind: ViewKind) -> tuple[ViewKind, ViewKind]:
    """The views whose planes show as the vertical (constant u) and horizontal (constant v) lines."""
    _, (u_lps, _), (v_lps, _) = _CONVENTION[kind]
    by_slice_axis = {conv[0]: k for k, conv in _CONVENTION.items()}
    return by_slice_axis[u_lps], by_slice_axis[v_lps]


def planes_for(geometry: Geometry) -> dict[ViewKind, ViewPlane]:
    return {kind: ViewPlane.for_geometry(geometry, kind) for kind in ViewKind}


def slab_slices(plane: ViewPlane, slab_mm: float) -> int:
    """Number of slices covering ``slab_mm`` along the view's slicing axis (at least 1)."""
    if slab_mm <= 0:
        return 1
    return max(1, round(slab_mm / plane.slice_mm))


def box_on_slice(
    plane: ViewPlane,
    geometry: Geometry,
    bbox_min_xyz: ArrayLike,
    bbox_max_xyz: ArrayLike,
    slice_index: int,
) -> tuple[float, float, float, float] | None:
    """Where an LPS box cuts one view's slice: ``(u0, v0, u1, v1)`` in screen mm, or None.

    The box's 8 corners go to voxel indices; the slice cuts the box when its index lies within
    the box's extent along the view's slicing axis (half a voxel of tolerance). The rectangle is
    the box's extent in the two in-plane axes (for the axis-aligned boxes findings use, that is
    the exact intersection).
    """
    lo = np.asarray(bbox_min_xyz, dtype=np.float64)
    hi = np.asarray(bbox_max_xyz, dtype=np.float64)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    display = plane.index_to_display(geometry.mm_to_index(corners))
    s_lo, s_hi = display[:, 2].min(), display[:, 2].max()
    if not (s_lo - 0.5 <= slice_index <= s_hi + 0.5):
        return None
    (pu, pv) = plane.pixel_mm
    # index_to_display gives voxel centres; the box edges are already voxel edges in mm terms
    u0, u1 = float(display[:, 0].min()), float(display[:, 0].max())
    v0, v1 = float(display[:, 1].min()), float(display[:, 1].max())
    if u1 - u0 < pu:
        u0, u1 = (u0 + u1 - pu) / 2, (u0 + u1 + pu) / 2
    if v1 - v0 < pv:
        v0, v1 = (v0 + v1 - pv) / 2, (v0 + v1 + pv) / 2
    return u0, v0, u1, v1
