"""2.5D patches around candidates: the model's input, shared by training and the app (one copy).

A patch is three orthogonal planes through the candidate centre, in patient axes, resampled to
isotropic millimetres by trilinear interpolation, stacked as the three input channels:

    channel 0: axial plane     rows +y (posterior), columns +x (patient left)
    channel 1: coronal plane   rows -z (superior first), columns +x
    channel 2: sagittal plane  rows -z, columns +y

Each plane is ``size`` x ``size`` pixels of ``spacing_mm``, centred on the candidate (the centre
lies between the two middle pixels). HU are mapped linearly from ``HU_WINDOW`` to [-1, 1] and
clipped. Points outside the volume read as air (-1000 HU).

The model's ONNX metadata records ``size``, ``spacing_mm`` and ``HU_WINDOW``; the detector refuses
a model whose values differ from what it extracts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ..geometry import Geometry
from ..parallel import chunks, map_ordered

HU_WINDOW = (-1000.0, 400.0)
OUTSIDE_HU = -1000.0


@dataclass(frozen=True)
class PatchSpec:
    """Patch geometry: ``size`` pixels per side, ``spacing_mm`` per pixel, HU window."""

    size: int = 64
    spacing_mm: float = 0.75
    hu_window: tuple[float, float] = HU_WINDOW

    @property
    def field_mm(self) -> float:
        return self.size * self.spacing_mm

    def to_metadata(self) -> dict[str, str]:
        return {
            "patch_size": str(self.size),
            "patch_spacing_mm": f"{self.spacing_mm:g}",
            "hu_window": f"{self.hu_window[0]:g},{self.hu_window[1]:g}",
            "patch_layout": "3 channels: axial(+y rows,+x cols), coronal(-z rows,+x cols), sagittal(-z rows,+y cols)",
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> PatchSpec:
        lo, hi = (float(v) for v in meta["hu_window"].split(","))
        return cls(size=int(meta["patch_size"]), spacing_mm=float(meta["patch_spacing_mm"]), hu_window=(lo, hi))


DEFAULT_SPEC = PatchSpec()

# Unit vectors (LPS) of each plane's rows and columns.
_PLANES = (
    (np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])),  # axial: rows +y, cols +x
    (np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0])),  # coronal: rows -z, cols +x
    (np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])),  # sagittal: rows -z, cols +y
)


def _plane_offsets_mm(spec: PatchSpec) -> NDArray[np.float64]:
    """LPS mm of every patch pixel relative to the centre: shape (3 planes, size, size, 3)."""
    offsets = (np.arange(spec.size, dtype=np.float64) - (spec.size - 1) / 2.0) * spec.spacing_mm
    planes = []
    for row_dir, col_dir in _PLANES:
        planes.append(offsets[:, None, None] * row_dir + offsets[None, :, None] * col_dir)  # (size, size, 3)
    return np.stack(planes)


def patch_points_mm(
    centres_xyz_mm: ArrayLike, spec: PatchSpec = DEFAULT_SPEC, rotations: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """LPS mm of every patch pixel: shape (N, 3 planes, size, size, 3).

    ``rotations`` (N, 3, 3), optional: rotate each patch's planes about its centre (training
    augmentation; the detector never rotates).
    """
    centres = np.atleast_2d(np.asarray(centres_xyz_mm, dtype=np.float64))
    stacked = _plane_offsets_mm(spec)  # (3, size, size, 3)
    if rotations is None:
        return np.asarray(centres[:, None, None, None, :] + stacked[None], dtype=np.float64)
    rotated = np.einsum("nab,pijb->npija", np.asarray(rotations, dtype=np.float64), stacked)
    return np.asarray(centres[:, None, None, None, :] + rotated, dtype=np.float64)


#: Candidates per map_coordinates call: chunks run on the array thread pool (the call releases the GIL).
_CHUNK = 32


def extract_patches(
    hu_zyx: NDArray[np.int16],
    geometry: Geometry,
    centres_xyz_mm: ArrayLike,
    spec: PatchSpec = DEFAULT_SPEC,
    rotations: NDArray[np.float64] | None = None,
) -> NDArray[np.float32]:
    """Patches for N centres: float32 array (N, 3, size, size) in [-1, 1].

    The voxel index of every patch pixel is the centre's index plus the pixel's offset mapped
    through the (linear) mm-to-index transform, so only N centres and one plane grid go through
    the geometry; chunks of candidates are interpolated in parallel threads.
    """
    centres = np.atleast_2d(np.asarray(centres_xyz_mm, dtype=np.float64)).reshape(-1, 3)
    n = centres.shape[0]
    out = np.empty((n, 3, spec.size, spec.size), dtype=np.float32)
    if n == 0:
        return out
    centre_index = geometry.mm_to_index(centres)  # (N, 3) fractional (k, j, i)
    offsets = _plane_offsets_mm(spec)
    if rotations is None:
        offset_index = geometry.mm_offset_to_index(offsets)[None]  # (1, 3, size, size, 3)
    else:
        rotated = np.einsum("nab,pijb->npija", np.asarray(rotations, dtype=np.float64), offsets)
        offset_index = geometry.mm_offset_to_index(rotated)  # (N, 3, size, size, 3)

    def run(start: int, stop: int) -> None:
        per = offset_index if offset_index.shape[0] == 1 else offset_index[start:stop]
        coords = np.empty((3, stop - start) + offsets.shape[:3], dtype=np.float64)
        for axis in range(3):
            coords[axis] = centre_index[start:stop, axis, None, None, None] + per[..., axis]
        # map_coordinates on the int16 array directly (measured here: 3x faster than a numpy gather)
        values = ndimage.map_coordinates(
            hu_zyx, coords.reshape(3, -1), order=1, mode="constant", cval=OUTSIDE_HU, output=np.float32
        )
        out[start:stop] = normalise_hu(values.reshape(stop - start, 3, spec.size, spec.size), spec)

    map_ordered(lambda ab: run(*ab), chunks(n, max(1, -(-n // _CHUNK))))
    return out


def normalise_hu(hu: NDArray[np.float32], spec: PatchSpec = DEFAULT_SPEC) -> NDArray[np.float32]:
    lo, hi = spec.hu_window
    out = np.asarray(
        (np.asarray(hu, dtype=np.float32) - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - 1.0, dtype=np.float32
    )
    np.clip(out, -1.0, 1.0, out=out)
    return np.asarray(out, dtype=np.float32)
