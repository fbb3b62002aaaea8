"""Everything NodeView reads through SimpleITK: compressed DICOM pixels (GDCM) and the research
formats ``.mhd/.raw`` (LUNA16), ``.nii/.nii.gz`` and ``.nrrd``.

This is the only module that converts between SimpleITK's ``(x, y, z)`` spacing/origin/index order
and NodeView's convention (:mod:`nodeview.core.geometry`). SimpleITK arrays are already ``(z, y, x)``.
"""

# SimpleITK ships without type annotations.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import UnreadableFileError, UnsupportedDataError
from ..geometry import Geometry
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..volume import Volume

#: File name endings read as images through SimpleITK, and the format name NodeView reports.
SITK_FORMATS = {
    ".mhd": "metaimage",
    ".mha": "metaimage",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}


def sitk_format_of(path: str | os.PathLike[str]) -> str | None:
    """The format name when ``path`` is a research image file SimpleITK should read, else None."""
    name = Path(path).name.lower()
    for ending, fmt in SITK_FORMATS.items():
        if name.endswith(ending):
            return fmt
    return None


def read_compressed_dicom(path: str, name: str, syntax_name: str) -> NDArray[Any]:
    """Decode one DICOM file with GDCM. The result is rescaled (HU), shape (frames, rows, cols)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(path)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise UnreadableFileError(
            f"the {syntax_name} pixels of file {name} could not be decoded (damaged or unsupported)"
        ) from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UnsupportedDataError(f"file {name} is a colour image, not grey-scale CT data")
    return np.asarray(sitk.GetArrayFromImage(image))


def geometry_from_sitk(image: Any) -> Geometry:
    """NodeView geometry of a SimpleITK image (3D)."""
    size_xyz = image.GetSize()
    return Geometry(
        shape_zyx=(int(size_xyz[2]), int(size_xyz[1]), int(size_xyz[0])),
        spacing_zyx=np.asarray(image.GetSpacing(), dtype=np.float64)[::-1].copy(),
        origin_xyz=np.asarray(image.GetOrigin(), dtype=np.float64),
        direction=np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3),
    )


def read_image_file(
    path: str | os.PathLike[str],
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> Volume:
    """Read a ``.mhd/.mha``, ``.nii/.nii.gz`` or ``.nrrd`` volume as int16 HU.

    LUNA16 ``.mhd`` files store DICOM patient coordinates (LPS), which is NodeView's convention;
    NIfTI files are converted to LPS by SimpleITK's reader (its RAS-to-LPS flip happens there).
    """
    import SimpleITK as sitk

    path = Path(path)
    fmt = sitk_format_of(path)
    if fmt is None:
        raise UnsupportedDataError(f"{path.name} is not a .mhd, .nii, .nii.gz or .nrrd file")
    if not path.is_file():
        raise UnreadableFileError(f"{path} does not exist")
    progress(0, 2)
    check_cancel(should_stop)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise UnreadableFileError(f"file {path.name} could not be read (damaged, or its data file is missing)") from exc
    check_cancel(should_stop)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UnsupportedDataError(f"{path.name} is a colour or vector image, not grey-scale CT data")
    warnings: list[str] = []
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
        warnings.append("Only 1 image: a single slice, not a volume; 3D views and detection are limited.")
    elif image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    elif image.GetDimension() != 3:
        raise UnsupportedDataError(f"{path.name} has {image.GetDimension()} dimensions; NodeView shows 3D volumes")
    array = sitk.GetArrayFromImage(image)
    if array.dtype != np.int16:
        if np.issubdtype(array.dtype, np.floating):
            array = np.rint(array)
        lo, hi = float(array.min()), float(array.max())
        if lo < -32768 or hi > 32767:
            warnings.append(f"Values {lo:g}..{hi:g} exceed the int16 range and were clipped.")
        array = np.clip(array, -32768, 32767).astype(np.int16)
    if array.size and (array.min() >= 0 and array.max() <= 255):
        warnings.append("Values lie in 0..255: this looks like an 8-bit picture, not CT in Hounsfield units.")
    geometry = geometry_from_sitk(image)
    progress(2, 2)
    return Volume(
        hu_zyx=np.ascontiguousarray(array),
        geometry=geometry,
        modality="CT",
        description=path.name,
        source_format=fmt,
        warnings=tuple(warnings),
    )


def volume_to_sitk(volume: Volume) -> Any:
    """A SimpleITK image with the volume's HU and geometry (for writing .mhd/.nii or comparisons)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume.hu_zyx)
    image.SetSpacing([float(v) for v in volume.geometry.spacing_xyz])
    image.SetOrigin([float(v) for v in volume.geometry.origin_xyz])
    image.SetDirection([float(v) for v in volume.geometry.direction.reshape(-1)])
    return image
