"""Everything NodeView reads through SimpleITK: compressed DICOM pixels (GDCM) and the research
formats ``.mhd/.raw`` (LUNA16), ``.nii/.nii.gz`` and ``.nrrd``.

This is the only module that converts between SimpleITK's ``(x, y, z)`` spacing/origin/index order
and NodeView's convention (:mod:`nodeview.core.geometry`). SimpleITK arrays are already ``(z, y, x)``.
"""

# SimpleITK ships without type annotations.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import gzip
import math
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import GeometryError, UnreadableFileError, UnsupportedDataError
from ..geometry import Geometry
from ..limits import MAX_VOXEL_STEP_MM, PIXEL_SPACING_RANGE_MM, budget_error
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
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise UnreadableFileError(f"{path} is not a regular file")
    progress(0, 2)
    check_cancel(should_stop)
    _check_header(path, fmt)
    check_cancel(should_stop)
    try:
        image = sitk.ReadImage(str(path))
    except Exception as exc:  # SimpleITK raises RuntimeError, a damaged header other types
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
    try:
        geometry = geometry_from_sitk(image)
    except ValueError as exc:
        raise GeometryError(f"{path.name} does not describe a valid volume ({exc})") from exc
    progress(2, 2)
    return Volume(
        hu_zyx=np.ascontiguousarray(array),
        geometry=geometry,
        modality="CT",
        description=path.name,
        source_format=fmt,
        warnings=tuple(warnings),
    )


def _check_header(path: Path, fmt: str) -> None:
    """Size, spacing and data-length checks from the header alone, before any pixel is allocated.

    Raises:
        UnreadableFileError: the header cannot be read, or the data are shorter (or, for .mhd,
            of another length) than the header's size says (a truncated or mismatched file).
        UnsupportedDataError: a size of 0, more voxels than the budget, an implausible spacing.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as exc:
        raise UnreadableFileError(f"file {path.name} could not be read (damaged header)") from exc
    size = tuple(int(v) for v in reader.GetSize())
    if not size or min(size) < 1:
        raise UnsupportedDataError(f"{path.name} declares an image size of {size}: nothing to show")
    voxels = math.prod(size)
    n_slices = voxels // max(size[0] * (size[1] if len(size) > 1 else 1), 1)
    error = budget_error(n_slices, size[1] if len(size) > 1 else 1, size[0])
    if error:
        raise UnsupportedDataError(f"{path.name}: {error}")
    spacing = [float(v) for v in reader.GetSpacing()]
    if not all(math.isfinite(v) and PIXEL_SPACING_RANGE_MM[0] <= v <= MAX_VOXEL_STEP_MM for v in spacing[:3]):
        raise UnsupportedDataError(f"{path.name} declares an implausible voxel spacing {spacing} mm")
    bytes_per_voxel = _pixel_bytes().get(reader.GetPixelID(), 0) * reader.GetNumberOfComponents()
    if bytes_per_voxel:
        _check_data_length(path, fmt, voxels * bytes_per_voxel)


def _check_data_length(path: Path, fmt: str, needed: int) -> None:
    name = path.name.lower()
    if fmt == "nifti":
        if name.endswith(".gz"):
            available = _gzip_length(path)
            offset = _nifti_vox_offset(_gzip_head(path))
        else:
            available = path.stat().st_size
            with open(path, "rb") as fh:
                offset = _nifti_vox_offset(fh.read(352))
        if offset is not None and available < offset + needed:
            raise UnreadableFileError(
                f"file {path.name} is truncated: it holds {max(available - offset, 0)} of {needed} bytes of voxels"
            )
    elif fmt == "metaimage":
        fields = _mhd_fields(path)
        if fields.get("compresseddata", "false").lower() == "true":
            return
        data_file = fields.get("elementdatafile", "")
        if not data_file or data_file.upper() == "LOCAL" or data_file.upper().startswith("LIST") or "%" in data_file:
            return
        data = path.parent / data_file
        if not data.is_file():
            raise UnreadableFileError(f"the data file {data_file} of {path.name} is missing")
        try:
            header_size = int(fields.get("headersize", "0"))
        except ValueError:
            header_size = 0
        actual = data.stat().st_size - max(header_size, 0)
        if actual < needed or (header_size >= 0 and actual != needed):
            raise UnreadableFileError(
                f"{path.name} says DimSize x element size is {needed} bytes but {data_file} holds {actual}"
            )


def _mhd_fields(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    with open(path, "rb") as fh:
        text = fh.read(64 * 1024).decode("latin-1")
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    return fields


def _nifti_vox_offset(head: bytes) -> int | None:
    """Byte offset of the voxels in a NIfTI-1 or NIfTI-2 header, None when not recognised."""
    if len(head) >= 348 and struct.unpack("<i", head[:4])[0] == 348:
        return int(struct.unpack("<f", head[108:112])[0])
    if len(head) >= 348 and struct.unpack(">i", head[:4])[0] == 348:
        return int(struct.unpack(">f", head[108:112])[0])
    if len(head) >= 176 and struct.unpack("<i", head[:4])[0] == 540:
        return int(struct.unpack("<q", head[168:176])[0])
    return None


def _gzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(352)
    except (OSError, EOFError) as exc:
        raise UnreadableFileError(f"file {path.name} is not a readable .gz file") from exc


def _gzip_length(path: Path) -> int:
    """Length of the decompressed stream; a truncated or damaged stream is an error."""
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFileError(
            f"file {path.name} is truncated or damaged (its compressed stream ends early)"
        ) from exc
    return total


def _pixel_bytes() -> dict[int, int]:
    try:
        import SimpleITK as sitk
    except ImportError:  # pragma: no cover - SimpleITK is a dependency
        return {}
    return {
        sitk.sitkUInt8: 1,
        sitk.sitkInt8: 1,
        sitk.sitkUInt16: 2,
        sitk.sitkInt16: 2,
        sitk.sitkUInt32: 4,
        sitk.sitkInt32: 4,
        sitk.sitkUInt64: 8,
        sitk.sitkInt64: 8,
        sitk.sitkFloat32: 4,
        sitk.sitkFloat64: 8,
    }




def volume_to_sitk(volume: Volume) -> Any:
    """A SimpleITK image with the volume's HU and geometry (for writing .mhd/.nii or comparisons)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume.hu_zyx)
    image.SetSpacing([float(v) for v in volume.geometry.spacing_xyz])
    image.SetOrigin([float(v) for v in volume.geometry.origin_xyz])
    image.SetDirection([float(v) for v in volume.geometry.direction.reshape(-1)])
    return image
