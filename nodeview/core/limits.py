"""Sanity limits NodeView checks from headers before it allocates anything.

A value outside them is a damaged or hostile header, never a scan: the image (or the series, or
the file) is refused with a message saying which limit it broke. The voxel budget can be changed
with the environment variable ``NODEVIEW_MAX_VOXELS``.
"""

from __future__ import annotations

import os

#: Frames one file may claim.
MAX_FRAMES_PER_FILE = 20_000
#: Rows and Columns of a usable image.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 2, 16_384
#: Plausible PixelSpacing (mm).
PIXEL_SPACING_RANGE_MM = (1e-3, 100.0)
#: ImagePositionPatient coordinates beyond this (mm, 100 m) are damage, not a position.
MAX_ABS_POSITION_MM = 1e5
#: Plausible |RescaleSlope| and |RescaleIntercept|.
SLOPE_RANGE = (1e-6, 1e4)
MAX_ABS_INTERCEPT = 1e6
#: A gap along the slice normal is filled by interpolation only up to this many steps and mm;
#: a larger gap splits the series into parts (never interpolated into anatomy).
MAX_GAP_STEPS, MAX_GAP_MM = 4.0, 20.0
#: Default voxel budget of one volume (int16: 2 GB); ``NODEVIEW_MAX_VOXELS`` changes it.
DEFAULT_MAX_VOXELS = 1_000_000_000


def max_voxels() -> int:
    """The voxel budget of one volume: ``NODEVIEW_MAX_VOXELS`` or :data:`DEFAULT_MAX_VOXELS`."""
    try:
        value = int(float(os.environ.get("NODEVIEW_MAX_VOXELS", DEFAULT_MAX_VOXELS)))
    except ValueError:
        return DEFAULT_MAX_VOXELS
    return value if value > 0 else DEFAULT_MAX_VOXELS


def budget_error(n_slices: int, rows: int, columns: int) -> str | None:
    """A message when a volume of this size exceeds :func:`max_voxels`, else None."""
    voxels = n_slices * rows * columns
    limit = max_voxels()
    if voxels <= limit:
        return None
    return (
        f"this series would need {n_slices} x {rows} x {columns} voxels ({voxels * 2 / 2**30:.1f} GiB), more than "
        f"NodeView's limit of {limit:,} voxels (set NODEVIEW_MAX_VOXELS to change it)"
    )

#: Largest plausible voxel step (mm) of a research-format volume (.mhd, .nii, .nrrd).
MAX_VOXEL_STEP_MM = 100.0
