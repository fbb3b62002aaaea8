"""Write real, standards-conformant DICOM series from an int16 HU array.

Used by tests, benchmarks and the synthetic-training-data generator. The geometry follows
:mod:`nodeview.core.geometry`: ``hu_zyx[k, j, i]`` is slice ``k``, image row ``j``, image column
``i``; positions are LPS millimetres; ``origin_xyz`` is the centre of voxel ``[0, 0, 0]``.

Slice ``k`` is written with::

    ImagePositionPatient = origin_xyz + k * spacing_z * normal      (normal = row x col of the IOP)

unless :attr:`SeriesSpec.positions_xyz` gives the position of every slice explicitly (gaps, gantry
tilt, duplicates, descending order). ``PixelSpacing = [spacing_y, spacing_x]`` (row spacing, then
column spacing) and the stored pixel value is ``round((HU - intercept) / slope)``, clipped to the
range ``bits_stored`` and ``pixel_representation`` allow (see :func:`expected_hu`).

Every file is written atomically (a temporary file in the destination folder, then
:func:`os.replace`) and never silently replaces a different existing file. UIDs that are not given
are derived deterministically from :attr:`SeriesSpec.seed` (and the series number, description and
modality), so writing the same spec twice produces byte-identical files; use distinct seeds for
distinct data sets.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from ..geometry import slice_normal

__all__ = [
    "CT_IMAGE_STORAGE",
    "ENHANCED_CT_IMAGE_STORAGE",
    "IMPLEMENTATION_CLASS_UID",
    "MR_IMAGE_STORAGE",
    "SECONDARY_CAPTURE_IMAGE_STORAGE",
    "SUPPORTED_TRANSFER_SYNTAXES",
    "SeriesSpec",
    "expected_hu",
    "slice_positions",
    "stored_values",
    "write_enhanced_multiframe",
    "write_localizer",
    "write_series",
]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
ENHANCED_CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2.1")
MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
SECONDARY_CAPTURE_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.7")

#: Transfer syntaxes :func:`write_series` can encode with pydicom alone.
SUPPORTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    str(ExplicitVRLittleEndian),
    str(ImplicitVRLittleEndian),
    str(DeflatedExplicitVRLittleEndian),
    str(RLELossless),
)

#: Identifies files written by this module (file meta ImplementationClassUID).
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["nodeview", "dicom_write", "implementation"])
_IMPLEMENTATION_VERSION_NAME = "NODEVIEW_0_1"

_FILE_NAME_STYLES = ("instance", "shuffled", "uid", "noext")
_SOP_CLASS_BY_MODALITY = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE}
_STUDY_TIME = "120000"

# Tags used as dimension index pointers in the enhanced multi-frame object.
_TAG_FRAME_CONTENT_SEQUENCE = 0x00209111
_TAG_STACK_ID = 0x00209056
_TAG_IN_STACK_POSITION_NUMBER = 0x00209057


@dataclass(frozen=True)
class SeriesSpec:
    """How to write a series: geometry, encoding, identifiers and file naming.

    Args:
        spacing_zyx: slice step along the normal, row spacing and column spacing, in mm.
        origin_xyz: LPS mm of the centre of voxel ``[0, 0, 0]`` (ImagePositionPatient of slice 0).
        orientation: ImageOrientationPatient: row direction cosines, then column direction cosines.
        positions_xyz: explicit ImagePositionPatient (LPS mm) of each slice in array order; overrides
            ``origin_xyz`` and ``spacing_zyx[0]`` for positions (gaps, tilt, duplicates, descending).
        patient_position: DICOM PatientPosition (HFS, FFS, HFP, ...).
        modality: DICOM Modality. "CT" writes CT Image Storage, "MR" MR Image Storage, anything
            else Secondary Capture Image Storage (with the image-plane attributes kept).
        series_uid: SeriesInstanceUID; derived from ``seed`` when None.
        study_uid: StudyInstanceUID; derived from ``seed`` when None.
        frame_of_reference_uid: FrameOfReferenceUID; derived from ``seed`` when None.
        series_description: SeriesDescription.
        series_number: SeriesNumber.
        image_type: ImageType values.
        slice_thickness: nominal SliceThickness in mm; ``spacing_zyx[0]`` when None.
        rescale_slope: RescaleSlope (HU per stored unit).
        rescale_intercept: RescaleIntercept in HU.
        pixel_representation: 0 stores unsigned values, 1 two's-complement signed values.
        bits_stored: BitsStored, 8 to 16 (BitsAllocated is always 16); values are clipped to fit.
        transfer_syntax: one of :data:`SUPPORTED_TRANSFER_SYNTAXES`.
        file_names: "instance" (``IM0001.dcm``, numbered in array order), "shuffled" (random
            names, written in random order, both deterministic by ``seed``), "uid"
            (``<SOPInstanceUID>.dcm``) or "noext" (``IM0001``, no extension).
        instance_numbers: InstanceNumber of each slice in array order; ``1..n`` when None.
        patient_name: PatientName.
        patient_id: PatientID.
        patient_birth_date: PatientBirthDate (YYYYMMDD).
        accession_number: AccessionNumber.
        study_date: StudyDate, SeriesDate and ContentDate (YYYYMMDD).
        seed: seeds generated UIDs and shuffled file names.
    """

    spacing_zyx: tuple[float, float, float] = (1.25, 0.7, 0.7)
    origin_xyz: tuple[float, float, float] = (-179.0, -179.0, -300.0)
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    positions_xyz: Sequence[tuple[float, float, float]] | None = None
    patient_position: str = "HFS"
    modality: str = "CT"
    series_uid: str | None = None
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series_description: str = "Synthetic CT"
    series_number: int = 1
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    slice_thickness: float | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = -1024.0
    pixel_representation: int = 0
    bits_stored: int = 16
    transfer_syntax: str = str(ExplicitVRLittleEndian)
    file_names: str = "instance"
    instance_numbers: Sequence[int] | None = None
    patient_name: str = "SYNTHETIC^PATIENT"
    patient_id: str = "NV-SYNTH-0001"
    patient_birth_date: str = "19600101"
    accession_number: str = "ACC0001"
    study_date: str = "20260101"
    seed: int = 0


# ---- public helpers ---------------------------------------------------------------------------
def stored_values(hu: NDArray[Any], spec: SeriesSpec) -> NDArray[np.int32]:
    """Stored pixel values for HU under ``spec``: ``round((HU - intercept) / slope)``, clipped.

    Args:
        hu: Hounsfield units (any shape, integer or float).
        spec: supplies slope, intercept, bits stored and pixel representation.

    Returns:
        int32 array of the values written to PixelData (same shape as ``hu``).
    """
    _check_encoding(spec)
    lo, hi = _stored_range(spec.bits_stored, spec.pixel_representation)
    scaled = (np.asarray(hu, dtype=np.float64) - spec.rescale_intercept) / spec.rescale_slope
    return np.clip(np.rint(scaled), lo, hi).astype(np.int32)


def expected_hu(hu: NDArray[Any], spec: SeriesSpec) -> NDArray[np.float64]:
    """HU a correct reader decodes (``stored * slope + intercept``) from what ``spec`` writes.

    Equals ``hu`` whenever slope is 1, the intercept is an integer and the values fit the stored
    range; otherwise shows the effect of rounding and clipping.

    Args:
        hu: Hounsfield units (any shape).
        spec: the encoding.

    Returns:
        float64 HU, same shape as ``hu``.
    """
    stored = stored_values(hu, spec).astype(np.float64)
    return np.asarray(stored * spec.rescale_slope + spec.rescale_intercept, dtype=np.float64)


def slice_positions(n_slices: int, spec: SeriesSpec) -> NDArray[np.float64]:
    """ImagePositionPatient (LPS mm) of each of ``n_slices`` slices in array order, shape (n, 3)."""
    if spec.positions_xyz is not None:
        pos = np.asarray(spec.positions_xyz, dtype=np.float64)
        if pos.shape != (n_slices, 3):
            raise ValueError(f"positions_xyz must have shape ({n_slices}, 3), got {pos.shape}")
        if not np.all(np.isfinite(pos)):
            raise ValueError("positions_xyz contains non-finite values")
        return pos
    _, normal = _orientation_vectors(spec.orientation)
    origin = np.asarray(spec.origin_xyz, dtype=np.float64)
    steps = np.arange(n_slices, dtype=np.float64)[:, np.newaxis] * float(spec.spacing_zyx[0])
    return np.asarray(origin + steps * normal, dtype=np.float64)


# ---- writers ----------------------------------------------------------------------------------
def write_series(hu_zyx: NDArray[np.int16], out_dir: str | Path, spec: SeriesSpec = SeriesSpec()) -> list[Path]:
    """Write one single-frame-per-file DICOM series.

    Args:
        hu_zyx: Hounsfield units, shape ``(n_slices, rows, columns)``; slice ``k`` goes to
            ``origin + k * spacing_z * normal`` or to ``spec.positions_xyz[k]``.
        out_dir: destination folder (created if missing).
        spec: geometry, encoding and identifiers.

    Returns:
        The written paths in array order (``paths[k]`` holds slice ``k``), whatever the naming
        style and the order the files were written in.

    Raises:
        ValueError: inconsistent spec or array.
        FileExistsError: a destination file exists with different content (files written before
            the conflict are kept; no temporary files are left).
    """
    hu = _check_volume(hu_zyx)
    _check_spec(spec)
    n = hu.shape[0]
    positions = slice_positions(n, spec)
    instance_numbers = _instance_numbers(n, spec)
    series_uid, study_uid, for_uid = _series_uids(spec)
    sop_uids = [_uid(spec.seed, series_uid, "sop", str(k)) for k in range(n)]
    names = _file_names(n, spec, sop_uids)
    order = list(range(n))
    if spec.file_names == "shuffled":
        np.random.default_rng([spec.seed, 2]).shuffle(order)

    base = _base_dataset(spec, series_uid, study_uid, for_uid)
    _, normal = _orientation_vectors(spec.orientation)
    window = _window(hu, spec.modality)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in names]
    for k in order:
        ds = _copy_dataset(base)
        ds.SOPInstanceUID = sop_uids[k]
        ds.InstanceNumber = instance_numbers[k]
        ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
        ds.SliceLocation = _ds(float(positions[k] @ normal))
        _set_window(ds, window)
        _set_pixels(ds, stored_values(hu[k], spec), spec)
        _publish(_encode(ds, spec.transfer_syntax), paths[k])
    return paths


def write_localizer(
    hu_yx: NDArray[np.int16],
    out_dir: str | Path,
    *,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    spec: SeriesSpec = SeriesSpec(),
    pixel_spacing_yx: tuple[float, float] = (1.25, 0.7),
    position_xyz: tuple[float, float, float] | None = None,
    series_number: int = 99,
    series_description: str = "Topogram",
    file_name: str = "LOC0001.dcm",
) -> Path:
    """Write one coronal CT localizer (scout) image.

    ImageType is ``ORIGINAL\\PRIMARY\\LOCALIZER``, ImageOrientationPatient ``(1,0,0, 0,0,-1)``:
    image columns run towards the patient's left, image rows towards the feet.

    Args:
        hu_yx: Hounsfield units, shape ``(rows, columns)``; row 0 is the most superior.
        out_dir: destination folder (created if missing).
        series_uid: SeriesInstanceUID; derived from ``spec.seed`` (and distinct from the axial
            series UID derived from the same spec) when None.
        study_uid: StudyInstanceUID; ``spec.study_uid`` or the one derived from ``spec.seed``.
        frame_of_reference_uid: FrameOfReferenceUID; likewise from ``spec``.
        spec: patient/study identifiers, encoding and seed (its geometry fields are ignored).
        pixel_spacing_yx: mm between rows (along z) and between columns (along x).
        position_xyz: LPS mm of the centre of the top-left pixel; when None, ``spec.origin_xyz``
            with y = 0 and z raised so the bottom row lies at ``spec.origin_xyz`` z.
        series_number: SeriesNumber.
        series_description: SeriesDescription.
        file_name: name of the file inside ``out_dir``.

    Returns:
        Path of the written file.

    Raises:
        ValueError: bad array or spec.
        FileExistsError: a different file of that name exists.
    """
    img = np.asarray(hu_yx)
    if img.ndim != 2 or img.size == 0 or not np.issubdtype(img.dtype, np.integer):
        raise ValueError(f"hu_yx must be a non-empty 2-D integer array, got {img.dtype} {img.shape}")
    row_mm, col_mm = (float(v) for v in pixel_spacing_yx)
    if row_mm <= 0 or col_mm <= 0:
        raise ValueError(f"pixel_spacing_yx must be positive, got {pixel_spacing_yx}")
    orientation = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    if position_xyz is None:
        ox, _, oz = spec.origin_xyz
        position_xyz = (ox, 0.0, oz + (img.shape[0] - 1) * row_mm)
    loc_spec = _replace(
        spec,
        orientation=orientation,
        spacing_zyx=(row_mm, row_mm, col_mm),
        positions_xyz=None,
        series_number=series_number,
        series_description=series_description,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        modality="CT",
        file_names="instance",
        instance_numbers=None,
    )
    _check_spec(loc_spec)
    _, default_study, default_for = _series_uids(spec)
    series = series_uid or _uid(spec.seed, "localizer-series", str(series_number), series_description)
    base = _base_dataset(loc_spec, series, study_uid or default_study, frame_of_reference_uid or default_for)
    ds = _copy_dataset(base)
    ds.SOPInstanceUID = _uid(spec.seed, series, "sop", "0")
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [_ds(v) for v in position_xyz]
    ds.SliceThickness = ""
    del ds.SliceLocation
    ds.GantryDetectorTilt = _ds(0.0)
    _set_window(ds, _window(img, "CT"))
    _set_pixels(ds, stored_values(img, loc_spec), loc_spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / file_name
    _publish(_encode(ds, loc_spec.transfer_syntax), path)
    return path


def write_enhanced_multiframe(hu_zyx: NDArray[np.int16], out_path: str | Path, spec: SeriesSpec = SeriesSpec()) -> Path:
    """Write the volume as one Enhanced CT Image Storage object (1.2.840.10008.5.1.4.1.1.2.1).

    Frame ``k`` is slice ``k``. The shared functional groups hold PixelMeasuresSequence
    (PixelSpacing, SliceThickness), PlaneOrientationSequence, PixelValueTransformationSequence
    (RescaleSlope, RescaleIntercept, RescaleType ``HU``), FrameVOILUTSequence and
    CTImageFrameTypeSequence; the per-frame groups hold PlanePositionSequence
    (ImagePositionPatient) and FrameContentSequence (StackID "1", InStackPositionNumber ranked
    along the slice normal, DimensionIndexValues). ``spec.file_names`` and
    ``spec.instance_numbers`` are ignored.

    Args:
        hu_zyx: Hounsfield units, shape ``(frames, rows, columns)``.
        out_path: destination file (parent folders created if missing).
        spec: geometry, encoding and identifiers; ``spec.modality`` must be "CT".

    Returns:
        ``Path(out_path)``.

    Raises:
        ValueError: inconsistent spec or array, or a modality other than CT.
        FileExistsError: a different file exists at ``out_path``.
    """
    if spec.modality != "CT":
        raise ValueError(f"Enhanced CT objects need modality CT, got {spec.modality!r}")
    hu = _check_volume(hu_zyx)
    _check_spec(spec)
    n = hu.shape[0]
    positions = slice_positions(n, spec)
    series_uid, study_uid, for_uid = _series_uids(spec)
    _, normal = _orientation_vectors(spec.orientation)

    ds = _base_dataset(spec, series_uid, study_uid, for_uid)
    ds.SOPClassUID = ENHANCED_CT_IMAGE_STORAGE
    ds.SOPInstanceUID = _uid(spec.seed, series_uid, "enhanced-sop")
    ds.InstanceNumber = 1
    for keyword in (
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "SliceLocation",
        "RescaleSlope",
        "RescaleIntercept",
        "KVP",
        "ConvolutionKernel",
        "ReconstructionDiameter",
        "DataCollectionDiameter",
        "GantryDetectorTilt",
        "AcquisitionDate",
        "AcquisitionTime",
    ):
        if keyword in ds:
            delattr(ds, keyword)
    image_type = tuple(spec.image_type[:4]) + ("NONE",) * max(0, 4 - len(spec.image_type))
    ds.ImageType = list(image_type)
    ds.DeviceSerialNumber = "0001"
    ds.AcquisitionDateTime = spec.study_date + _STUDY_TIME
    ds.ContentQualification = "RESEARCH"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.AcquisitionContextSequence = DicomSequence()

    dim_uid = _uid(spec.seed, series_uid, "dimension-organization")
    org = Dataset()
    org.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = DicomSequence([org])
    ds.DimensionOrganizationType = "3D"
    dims = []
    for pointer, label in ((_TAG_STACK_ID, "Stack ID"), (_TAG_IN_STACK_POSITION_NUMBER, "In-Stack Position")):
        item = Dataset()
        item.DimensionOrganizationUID = dim_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = _TAG_FRAME_CONTENT_SEQUENCE
        item.DimensionDescriptionLabel = label
        dims.append(item)
    ds.DimensionIndexSequence = DicomSequence(dims)

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds(spec.spacing_zyx[1]), _ds(spec.spacing_zyx[2])]
    measures.SliceThickness = _ds(_slice_thickness(spec))
    if spec.positions_xyz is None:
        measures.SpacingBetweenSlices = _ds(spec.spacing_zyx[0])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    plane = Dataset()
    plane.ImageOrientationPatient = [_ds(v) for v in spec.orientation]
    shared.PlaneOrientationSequence = DicomSequence([plane])
    transform = Dataset()
    transform.RescaleIntercept = _ds(spec.rescale_intercept)
    transform.RescaleSlope = _ds(spec.rescale_slope)
    transform.RescaleType = "HU"
    shared.PixelValueTransformationSequence = DicomSequence([transform])
    voi = Dataset()
    _set_window(voi, _window(hu, "CT"))
    shared.FrameVOILUTSequence = DicomSequence([voi])
    frame_type = Dataset()
    frame_type.FrameType = list(image_type)
    frame_type.PixelPresentation = "MONOCHROME"
    frame_type.VolumetricProperties = "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    shared.CTImageFrameTypeSequence = DicomSequence([frame_type])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    along = positions @ normal
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(along, kind="stable")] = np.arange(1, n + 1)
    per_frame = []
    for k in range(n):
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [_ds(v) for v in positions[k]]
        item.PlanePositionSequence = DicomSequence([pos])
        content = Dataset()
        content.FrameAcquisitionNumber = 1
        content.FrameReferenceDateTime = spec.study_date + _STUDY_TIME
        content.FrameAcquisitionDateTime = spec.study_date + _STUDY_TIME
        content.FrameAcquisitionDuration = 500.0
        content.StackID = "1"
        content.InStackPositionNumber = int(ranks[k])
        content.DimensionIndexValues = [1, int(ranks[k])]
        item.FrameContentSequence = DicomSequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = n
    _set_pixels(ds, stored_values(hu, spec), spec)

    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _publish(_encode(ds, spec.transfer_syntax), path)
    return path


# ---- validation -------------------------------------------------------------------------------
def _check_volume(hu_zyx: NDArray[Any]) -> NDArray[Any]:
    hu = np.asarray(hu_zyx)
    if hu.ndim != 3 or hu.size == 0:
        raise ValueError(f"hu_zyx must be a non-empty 3-D array, got shape {hu.shape}")
    if not np.issubdtype(hu.dtype, np.integer):
        raise ValueError(f"hu_zyx must hold integers (int16 HU), got {hu.dtype}")
    if hu.shape[1] > 0xFFFF or hu.shape[2] > 0xFFFF:
        raise ValueError(f"image too large for DICOM Rows/Columns: {hu.shape[1:]}")
    return hu


def _check_encoding(spec: SeriesSpec) -> None:
    if spec.pixel_representation not in (0, 1):
        raise ValueError(f"pixel_representation must be 0 or 1, got {spec.pixel_representation}")
    if not 8 <= spec.bits_stored <= 16:
        raise ValueError(f"bits_stored must be 8..16 (BitsAllocated is 16), got {spec.bits_stored}")
    if not math.isfinite(spec.rescale_slope) or spec.rescale_slope == 0:
        raise ValueError(f"rescale_slope must be finite and non-zero, got {spec.rescale_slope}")
    if not math.isfinite(spec.rescale_intercept):
        raise ValueError(f"rescale_intercept must be finite, got {spec.rescale_intercept}")


def _check_spec(spec: SeriesSpec) -> None:
    _check_encoding(spec)
    if len(spec.spacing_zyx) != 3 or not all(math.isfinite(v) and v > 0 for v in spec.spacing_zyx):
        raise ValueError(f"spacing_zyx must be three positive sizes in mm, got {spec.spacing_zyx}")
    if len(spec.origin_xyz) != 3 or not all(math.isfinite(v) for v in spec.origin_xyz):
        raise ValueError(f"origin_xyz must be three finite mm values, got {spec.origin_xyz}")
    _orientation_vectors(spec.orientation)
    if str(spec.transfer_syntax) not in SUPPORTED_TRANSFER_SYNTAXES:
        raise ValueError(
            f"transfer_syntax {spec.transfer_syntax} not supported; use one of {SUPPORTED_TRANSFER_SYNTAXES}"
        )
    if spec.file_names not in _FILE_NAME_STYLES:
        raise ValueError(f"file_names must be one of {_FILE_NAME_STYLES}, got {spec.file_names!r}")
    if spec.slice_thickness is not None and not spec.slice_thickness > 0:
        raise ValueError(f"slice_thickness must be positive, got {spec.slice_thickness}")
    if not spec.modality:
        raise ValueError("modality must not be empty")


def _orientation_vectors(orientation: Sequence[float]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(2x3 row/column cosines, unit normal); raises ValueError unless orthonormal."""
    iop = np.asarray(orientation, dtype=np.float64)
    if iop.shape != (6,) or not np.all(np.isfinite(iop)):
        raise ValueError(f"orientation must be six finite direction cosines, got {orientation}")
    rc = iop.reshape(2, 3)
    norms = np.linalg.norm(rc, axis=1)
    if np.any(np.abs(norms - 1.0) > 1e-4) or abs(float(rc[0] @ rc[1])) > 1e-4:
        raise ValueError(f"orientation rows/columns must be orthonormal, got {orientation}")
    return rc, slice_normal(iop)


def _instance_numbers(n: int, spec: SeriesSpec) -> list[int]:
    if spec.instance_numbers is None:
        return list(range(1, n + 1))
    numbers = [int(v) for v in spec.instance_numbers]
    if len(numbers) != n:
        raise ValueError(f"instance_numbers must have {n} values, got {len(numbers)}")
    return numbers


# ---- identifiers and names ----------------------------------------------------------------------
def _uid(seed: int, *parts: str) -> str:
    return str(generate_uid(entropy_srcs=["nodeview-synthetic", str(seed), *parts]))


def _series_uids(spec: SeriesSpec) -> tuple[str, str, str]:
    """(SeriesInstanceUID, StudyInstanceUID, FrameOfReferenceUID) of ``spec``."""
    series = spec.series_uid or _uid(
        spec.seed, "series", str(spec.series_number), spec.series_description, spec.modality
    )
    study = spec.study_uid or _uid(spec.seed, "study")
    frame = spec.frame_of_reference_uid or _uid(spec.seed, "frame-of-reference")
    return series, study, frame


def _file_names(n: int, spec: SeriesSpec, sop_uids: list[str]) -> list[str]:
    width = max(4, len(str(n)))
    if spec.file_names == "instance":
        return [f"IM{k + 1:0{width}d}.dcm" for k in range(n)]
    if spec.file_names == "noext":
        return [f"IM{k + 1:0{width}d}" for k in range(n)]
    if spec.file_names == "uid":
        return [f"{uid}.dcm" for uid in sop_uids]
    rng = np.random.default_rng([spec.seed, 1])
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = "".join(f"{b:02X}" for b in rng.integers(0, 256, size=6)) + ".dcm"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


# ---- dataset construction -----------------------------------------------------------------------
def _ds(value: float) -> str:
    """A DS string (at most 16 characters) for ``value``."""
    v = float(value)
    if v == 0.0:
        v = 0.0  # no "-0.0"
    return str(format_number_as_ds(v))


def _slice_thickness(spec: SeriesSpec) -> float:
    return float(spec.slice_thickness if spec.slice_thickness is not None else spec.spacing_zyx[0])


def _gantry_tilt_deg(orientation: Sequence[float]) -> float:
    """Tilt of the image plane about the patient x axis, in degrees (0 for axial images)."""
    rc, _ = _orientation_vectors(orientation)
    if abs(abs(float(rc[0, 0])) - 1.0) > 1e-4:
        return 0.0
    col = rc[1]
    return math.degrees(math.atan2(-float(col[2]), float(col[1]))) if abs(col[1]) > 1e-6 else 0.0


def _replace(spec: SeriesSpec, **changes: Any) -> SeriesSpec:
    values = {name: getattr(spec, name) for name in spec.__dataclass_fields__}
    values.update(changes)
    return SeriesSpec(**values)


def _copy_dataset(ds: Dataset) -> Dataset:
    """A copy with new element objects (pydicom assigns to an existing element in place).

    Values are shared: nothing here mutates a value in place, it only assigns new ones.
    """
    out = Dataset()
    for elem in ds:
        out.add(DataElement(elem.tag, elem.VR, elem.value))
    return out


def _base_dataset(spec: SeriesSpec, series_uid: str, study_uid: str, for_uid: str) -> Dataset:
    """The attributes every image of the series shares (no pixels, no per-slice values)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = _SOP_CLASS_BY_MODALITY.get(spec.modality, SECONDARY_CAPTURE_IMAGE_STORAGE)
    # Patient
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.patient_birth_date
    ds.PatientSex = "O"
    # General study
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = spec.study_date
    ds.StudyTime = _STUDY_TIME
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = spec.accession_number
    ds.StudyDescription = "Synthetic chest"
    # General series
    ds.Modality = spec.modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.series_description
    ds.SeriesDate = spec.study_date
    ds.SeriesTime = _STUDY_TIME
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = spec.patient_position
    # Frame of reference
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    # General equipment
    ds.Manufacturer = "NodeView"
    ds.ManufacturerModelName = "Synthetic"
    ds.SoftwareVersions = "nodeview 0.1"
    # General image
    ds.ImageType = list(spec.image_type)
    ds.AcquisitionNumber = 1
    ds.ContentDate = spec.study_date
    ds.ContentTime = _STUDY_TIME
    ds.AcquisitionDate = spec.study_date
    ds.AcquisitionTime = _STUDY_TIME
    # Image plane
    ds.ImageOrientationPatient = [_ds(v) for v in spec.orientation]
    ds.PixelSpacing = [_ds(spec.spacing_zyx[1]), _ds(spec.spacing_zyx[2])]
    ds.SliceThickness = _ds(_slice_thickness(spec))
    ds.SliceLocation = _ds(0.0)
    # Modality-specific image modules
    ds.RescaleIntercept = _ds(spec.rescale_intercept)
    ds.RescaleSlope = _ds(spec.rescale_slope)
    if spec.modality == "CT":
        ds.KVP = _ds(120.0)
        ds.ConvolutionKernel = "STANDARD"
        ds.GantryDetectorTilt = _ds(_gantry_tilt_deg(spec.orientation))
    elif spec.modality == "MR":
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = _ds(500.0)
        ds.EchoTime = _ds(15.0)
        ds.EchoTrainLength = 1
        ds.MagneticFieldStrength = _ds(1.5)
        ds.SpacingBetweenSlices = _ds(spec.spacing_zyx[0])
    else:
        ds.ConversionType = "WSD"
    return ds


def _window(values: NDArray[Any], modality: str) -> tuple[list[float], list[float], list[str]]:
    if modality == "CT":
        return [-600.0, 40.0], [1500.0, 400.0], ["LUNG", "MEDIASTINUM"]
    lo, hi = float(np.min(values)), float(np.max(values))
    return [round((lo + hi) / 2.0, 1)], [max(1.0, hi - lo)], ["FULL RANGE"]


def _set_window(ds: Dataset, window: tuple[list[float], list[float], list[str]]) -> None:
    centers, widths, names = window
    ds.WindowCenter = [_ds(v) for v in centers] if len(centers) > 1 else _ds(centers[0])
    ds.WindowWidth = [_ds(v) for v in widths] if len(widths) > 1 else _ds(widths[0])
    ds.WindowCenterWidthExplanation = names if len(names) > 1 else names[0]


def _stored_range(bits_stored: int, pixel_representation: int) -> tuple[int, int]:
    if pixel_representation == 1:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def _set_pixels(ds: Dataset, stored: NDArray[np.int32], spec: SeriesSpec) -> None:
    """Image Pixel module plus native little-endian PixelData (one frame or several)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(stored.shape[-2])
    ds.Columns = int(stored.shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = spec.pixel_representation
    dtype = "<i2" if spec.pixel_representation == 1 else "<u2"
    ds.PixelData = np.ascontiguousarray(stored.astype(dtype)).tobytes()
    ds["PixelData"].VR = "OW"


def _encode(ds: Dataset, transfer_syntax: str) -> bytes:
    """The complete Part 10 file (preamble, DICM, file meta, data set) as bytes."""
    ts = UID(str(transfer_syntax))
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian  # the native PixelData just set
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    if ts == RLELossless:
        # Encapsulates one RLE fragment per frame and sets the transfer syntax.
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    meta.TransferSyntaxUID = ts
    ds.preamble = b"\x00" * 128
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# ---- atomic publication -------------------------------------------------------------------------
def _same_content(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _publish(data: bytes, dest: Path) -> None:
    """Atomically create ``dest`` with ``data``.

    An existing identical file is left as it is; an existing different one raises
    ``FileExistsError``. The data go to a hidden temporary file in the same folder first, then
    :func:`os.replace` moves it into place, so readers never see a partial file and no temporary
    file survives an error.
    """
    if dest.exists() or dest.is_symlink():
        if _same_content(dest, data):
            return
        raise FileExistsError(f"{dest} exists with different content; not overwriting it")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        if dest.exists():  # created meanwhile by someone else
            if _same_content(dest, data):
                tmp.unlink()
                return
            raise FileExistsError(f"{dest} exists with different content; not overwriting it")
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
