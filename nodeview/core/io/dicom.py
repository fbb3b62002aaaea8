"""DICOM study I/O: discover series in a folder, sort and stack one series into a HU volume.

Two steps, each with progress and cancel callbacks (they run in a worker thread):

* :func:`discover` reads headers only (``stop_before_pixels``) of every file under the given
  paths, skips and counts what is not a usable image, and groups image frames into series by
  SeriesInstanceUID + orientation + image size (+ pixel spacing); localizers are split out.
* :func:`load_series` reads the pixels of one series, converts each frame to int16 HU with its
  own RescaleSlope/Intercept and stacks the frames in order of ImagePositionPatient projected on
  the slice normal - never by file name or InstanceNumber.

Pixels are decoded by reading the native PixelData element directly at the offset discovery
found (uncompressed little-endian, the common case), by pydicom (RLE, deflate, big endian) or by
SimpleITK's GDCM (JPEG lossless, JPEG-LS, JPEG 2000, JPEG extended) - no GPL codec involved.

Geometry follows :mod:`nodeview.core.geometry`. Irregular stacks are made regular and said so:
gaps and uneven steps are resampled by linear interpolation along the normal (the filled slices
are listed in ``Volume.interpolated_slices``); a gantry tilt is corrected by shifting each slice
in-plane onto an orthogonal grid; duplicate positions keep one image each. Input files are only
ever opened for reading.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import struct
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
import pydicom.dataset
import pydicom.filereader
import pydicom.uid
from numpy.typing import NDArray

from ..errors import GeometryError, NoImagesError, UnreadableFileError
from ..geometry import Geometry, direction_from_orientation, slice_normal
from ..limits import (
    MAX_ABS_INTERCEPT,
    MAX_ABS_POSITION_MM,
    MAX_FRAMES_PER_FILE,
    MAX_GAP_MM,
    MAX_GAP_STEPS,
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    PIXEL_SPACING_RANGE_MM,
    SLOPE_RANGE,
    budget_error,
)
from ..privacy import redact, scrub
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..volume import PatientInfo, Volume
from .sitk import read_compressed_dicom

log = logging.getLogger(__name__)

#: Transfer syntaxes pydicom decodes without plugins.
_PYDICOM_NATIVE = {
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.5",  # RLE Lossless
}
_RAW_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
#: Objects that carry no image to show: segmentations, RT, reports, presentation states, ...
_NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "DOC", "RWV"}
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
#: Slice thickness at or below which a series counts as "thin" when picking the default series.
THIN_SLICE_MM = 2.5
#: Fewer slices than this get a "too few slices" warning.
MIN_VOLUME_SLICES = 10
_TILT_TOLERANCE_DEG = 0.5
#: Row and column direction cosines further than this from perpendicular are refused.
_ORTHOGONALITY_TOLERANCE = 0.01
_SPACING_TOLERANCE = 0.05  # relative: steps within 5 % of the median step count as regular

# ------------------------------------------------------------------------------------------------
# Data describing what discovery found
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameRef:
    """One 2D image: a single-frame file, or one frame of a multi-frame file (headers only)."""

    path: str
    frame: int
    n_frames_in_file: int
    position_xyz: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    slice_thickness: float | None
    slope: float
    intercept: float
    instance_number: int | None
    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    pixel_offset: int | None  # file offset of the PixelData element header, when known
    series_uid: str
    is_localizer: bool = False
    position_known: bool = True
    sop_instance_uid: str = ""  # identifies the image (batch detection keys its manifest by it)
    frame_of_reference: str = ""
    #: why this image cannot be used (an implausible header value), None when it can
    problem: str | None = None


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class SeriesInfo:
    """One series as discovery found it (headers only). ``frames`` are in discovery order."""

    key: str
    series_uid: str
    modality: str
    description: str
    series_number: int | None
    is_localizer: bool
    rows: int
    columns: int
    orientation: tuple[float, float, float, float, float, float]
    slice_thickness_mm: float | None
    spacing_zyx_mm: tuple[float, float, float]
    patient_position: str
    transfer_syntaxes: tuple[str, ...]
    warnings: tuple[str, ...]
    frames: tuple[FrameRef, ...] = field(repr=False)
    plan: StackPlan = field(repr=False)
    patient: PatientInfo = field(default_factory=PatientInfo, repr=False)

    @property
    def n_images(self) -> int:
        return len(self.frames)

    @property
    def is_ct(self) -> bool:
        return self.modality in ("CT", "")

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """Shape the loaded volume will have (after gap filling)."""
        return (self.plan.n_slices, self.rows, self.columns)

    def to_dict(self) -> dict[str, object]:
        """Non-identifying summary (safe to print or log): a description or warning containing
        patient data is redacted as in the report (:mod:`.privacy`)."""
        return {
            "series_uid": self.series_uid,
            "modality": redact(self.modality, self.patient) or "unknown",
            "description": redact(self.description, self.patient),
            "series_number": self.series_number,
            "localizer": self.is_localizer,
            "images": self.n_images,
            "size_zyx": list(self.shape_zyx),
            "spacing_zyx_mm": [round(v, 4) for v in self.spacing_zyx_mm],
            "slice_thickness_mm": self.slice_thickness_mm,
            "patient_position": redact(self.patient_position, self.patient),
            "transfer_syntaxes": [_syntax_name(ts) for ts in self.transfer_syntaxes],
            "warnings": [scrub(w, self.patient) for w in self.warnings],
        }


@dataclass(frozen=True)
class Discovery:
    """Every series found under the input paths, plus what was skipped."""

    series: tuple[SeriesInfo, ...]
    n_files: int
    skipped: tuple[SkippedFile, ...]

    def default_series(self) -> SeriesInfo:
        """The series a reader most likely wants: the largest thin CT series (localizers excluded)."""
        candidates = [s for s in self.series if not s.is_localizer] or list(self.series)
        if not candidates:
            raise NoImagesError(self.no_images_message())
        return max(candidates, key=_default_rank)

    def find(self, uid_or_key: str) -> SeriesInfo:
        """The series with this SeriesInstanceUID (or discovery key)."""
        for s in self.series:
            if uid_or_key in (s.key, s.series_uid):
                return s
        raise NoImagesError(f"no series with UID {uid_or_key} here")

    def no_images_message(self) -> str:
        if self.n_files == 0:
            return "this folder holds no files"
        reasons = sorted({s.reason for s in self.skipped})
        detail = f" ({'; '.join(reasons[:3])})" if reasons else ""
        return f"no CT images found among {self.n_files} file(s){detail}"

    def to_dict(self) -> dict[str, object]:
        return {
            "files": self.n_files,
            "skipped": len(self.skipped),
            "skipped_reasons": _count_reasons(self.skipped),
            "series": [s.to_dict() for s in self.series],
        }


def _default_rank(s: SeriesInfo) -> tuple[bool, bool, bool, bool, int]:
    thin = s.slice_thickness_mm is None or s.slice_thickness_mm <= THIN_SLICE_MM
    return (s.plan.error is None, s.is_ct, s.n_images >= MIN_VOLUME_SLICES, thin, s.n_images)


def _count_reasons(skipped: Iterable[SkippedFile]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for s in skipped:
        out[s.reason] += 1
    return dict(out)


# ------------------------------------------------------------------------------------------------
# Discovery
# ------------------------------------------------------------------------------------------------
def iter_input_files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders (recursively, hidden entries skipped) into a sorted file list."""
    return collect_input_files(paths)[0]


def collect_input_files(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> tuple[list[Path], list[SkippedFile]]:
    """Regular files under ``paths`` (sorted), and what was skipped: FIFOs, sockets, device files,
    broken or looping links found inside folders are never opened, only counted.

    Raises:
        UnreadableFileError: a path given directly does not exist or is not a file or folder.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    skipped: list[SkippedFile] = []
    for p in map(Path, paths):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            reason = "is a broken symbolic link" if os.path.islink(p) else "does not exist"
            raise UnreadableFileError(f"{p} {reason}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnreadableFileError(f"{p} is a symbolic link loop") from None
            raise UnreadableFileError(f"{p} cannot be read ({exc.strerror or exc})") from None
        if stat.S_ISDIR(st.st_mode):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    path = Path(root) / name
                    kind = _special_kind(path)
                    if kind is None:
                        out.append(path)
                    else:
                        skipped.append(SkippedFile(str(path), kind))
        elif stat.S_ISREG(st.st_mode):
            out.append(p)
        else:
            raise UnreadableFileError(f"{p} is {_kind_of_mode(st.st_mode)}, not a file or folder")
    return out, skipped


def _kind_of_mode(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def _special_kind(path: Path) -> str | None:
    """None for a regular file (links followed), else why it is skipped without being opened."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(path):
            return "broken symbolic link"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return "link to a folder (not followed)"
    return f"{_kind_of_mode(st.st_mode).removeprefix('a ')}, not a file"


def discover(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> Discovery:
    """Find the DICOM image series under ``paths`` (a folder, a list of files or one file).

    Args:
        paths: folder(s) searched recursively, or files.
        progress: called as ``progress(files_done, files_total)``.
        should_stop: polled between files; when it returns True, :class:`Cancelled` is raised.

    Returns:
        A :class:`Discovery`; raises :class:`NoImagesError` when no image was found.
    """
    files, special = collect_input_files(paths)
    frames: list[FrameRef] = []
    meta: dict[str, dict[str, Any]] = {}
    identifiers: set[str] = set()  # every file's patient strings: a damaged header must not escape redaction
    skipped: list[SkippedFile] = list(special)
    for n, path in enumerate(files):
        check_cancel(should_stop)
        ds_for_ids = None
        try:
            ds, offset, size = _read_header(path)
            ds_for_ids = ds
            try:
                file_frames, series_meta = _frames_from_header(path, ds, offset, meta, size)
            except _Skip:
                raise
            except Exception as exc:  # values of the wrong type or shape in a damaged header
                log.debug("damaged header in %s", path.name, exc_info=True)
                raise _Skip("damaged header") from exc
        except _Skip as skip:
            skipped.append(SkippedFile(str(path), skip.reason))
            if ds_for_ids is not None:
                identifiers.update(_identifiers(ds_for_ids))
        else:
            identifiers.update(_identifiers(ds))
            frames.extend(file_frames)
            meta.setdefault(series_meta["group_uid"], series_meta)
        progress(n + 1, len(files))
    series = [_with_identifiers(s, identifiers) for s in _group_series(frames, meta)]
    discovery = Discovery(tuple(series), len(files) + len(special), tuple(skipped))
    if not discovery.series:
        raise NoImagesError(discovery.no_images_message())
    return discovery


_T_PATIENT_IDS = (0x00100010, 0x00100020, 0x00100030, 0x00080050)  # name, ID, birth date, accession


def _identifiers(ds: Any) -> set[str]:
    out = set()
    for tag in _T_PATIENT_IDS:
        text = _raw_text(ds, tag)
        if text and len(text) <= 64:
            out.add(text)
    return out


def _with_identifiers(series: SeriesInfo, identifiers: set[str]) -> SeriesInfo:
    others = tuple(sorted(identifiers - set(series.patient.identifying_strings())))
    if not others:
        return series
    return replace(series, patient=replace(series.patient, other_identifiers=others))


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _read_header(path: Path) -> tuple[Any, int | None, int]:
    """Header-only read; returns the dataset, the file offset of the PixelData element and the file size.

    The file is opened non-blocking and checked to be a regular file before anything is read, so
    a FIFO or a device that replaced a file after the folder was listed cannot block discovery.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _Skip(f"cannot be read ({exc.strerror or exc})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Skip(f"{_kind_of_mode(st.st_mode).removeprefix('a ')}, not a file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        fp = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    try:
        with fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            head = fp.read(132)
            fp.seek(0)
            has_magic = len(head) == 132 and head[128:132] == b"DICM"
            if has_magic:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
            else:
                ds = _read_headless(fp, head)
            offset = fp.tell()
    except _Skip:
        raise
    except OSError as exc:
        raise _Skip(f"cannot be read ({exc.strerror or exc})") from exc
    except Exception as exc:  # pydicom raises many types on garbage input
        raise _Skip("not a DICOM file or a damaged header") from exc
    return ds, offset, int(st.st_size)


def _read_headless(fp: BinaryIO, head: bytes) -> Any:
    """A DICOM data set without preamble/"DICM" (old files, raw dumps): sniff its encoding."""
    if len(head) < 8:
        raise _Skip("not a DICOM file")
    group_le = struct.unpack("<H", head[:2])[0]
    little = group_le <= 0x00FF  # first group is 0x0002 or 0x0008 in practice
    explicit = head[4:6] in _VR_CODES
    if group_le not in (0x0002, 0x0008) and struct.unpack(">H", head[:2])[0] not in (0x0002, 0x0008):
        raise _Skip("not a DICOM file")
    fp.seek(0)
    ds = pydicom.filereader.read_dataset(
        fp, is_implicit_VR=not explicit, is_little_endian=little, stop_when=_at_pixel_data
    )
    if "SOPClassUID" not in ds and "Rows" not in ds:
        raise _Skip("not a DICOM file")
    meta = pydicom.dataset.FileMetaDataset()
    syntax = ("1.2.840.10008.1.2.1" if explicit else "1.2.840.10008.1.2") if little else "1.2.840.10008.1.2.2"
    meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    ds.file_meta = meta
    return ds


_VR_CODES = {
    v.encode()
    for v in (
        "AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
    ).split()
}


def _at_pixel_data(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) == 0x7FE00010


def _get(ds: Any, keyword: str, default: Any = None) -> Any:
    try:
        value = ds.get(keyword, default)
    except Exception:  # a malformed value raises on access
        return default
    return default if value is None or value == "" else value


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(np.isfinite(out)):
        return None
    return out


def _functional(ds: Any, frame: int, seq: str, keyword: str) -> Any:
    """A value from the per-frame, then shared functional groups of an enhanced multi-frame file."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = _get(ds, groups)
        if items is None or len(items) <= index:
            continue
        inner = _get(items[index], seq)
        if inner is not None and len(inner) > 0:
            value = _get(inner[0], keyword)
            if value is not None:
                return value
    return None


def _raw_text(ds: Any, tag: int) -> str | None:
    """A text element's value straight from the raw bytes, skipping pydicom's per-value conversion.

    Discovery reads the same dozen numeric fields from hundreds of files; parsing their raw
    bytes is several times faster than pydicom's lazy conversion. Falls back to the converted
    value when the element was already converted.
    """
    try:
        elem = ds.get_item(tag)
    except Exception:
        return None
    if elem is None:
        return None
    value = elem.value
    if value is None:
        return None
    if isinstance(value, bytes):
        text = value.decode("latin-1").strip(" \x00")
    elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value).strip()
    return text or None


def _raw_floats(ds: Any, tag: int, n: int) -> tuple[float, ...] | None:
    text = _raw_text(ds, tag)
    if text is None:
        return None
    try:
        out = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    if len(out) != n or not all(np.isfinite(out)):
        return None
    return out


def _raw_float(ds: Any, tag: int) -> float | None:
    values = _raw_floats(ds, tag, 1)
    return values[0] if values else None


def _raw_int(ds: Any, tag: int) -> int | None:
    value = _raw_float(ds, tag)
    return int(value) if value is not None else None


# Tags read from every file (raw parsing).
_T_MODALITY, _T_SERIES_UID, _T_IMAGE_TYPE = 0x00080060, 0x0020000E, 0x00080008
_T_IPP, _T_IOP, _T_SPACING, _T_IMAGER_SPACING = 0x00200032, 0x00200037, 0x00280030, 0x00181164
_T_THICKNESS, _T_SLOPE, _T_INTERCEPT, _T_INSTANCE = 0x00180050, 0x00281053, 0x00281052, 0x00200013
_T_FRAMES, _T_PHOTOMETRIC, _T_SPACING_BETWEEN = 0x00280008, 0x00280004, 0x00180088
_T_SOP_UID = 0x00080018


def _series_meta(ds: Any, series_uid: str, modality: str) -> dict[str, Any]:
    """Per-series fields, read once from the first file of each series."""
    return {
        "series_uid": series_uid,
        "group_uid": series_uid,
        "modality": modality,
        "description": _clean_text(_get(ds, "SeriesDescription", "") or _get(ds, "ProtocolName", "") or "", 64),
        "series_number": _int_or_none(_get(ds, "SeriesNumber")),
        "patient_position": _clean_text(_get(ds, "PatientPosition", ""), 16),
        "patient": PatientInfo(
            name=str(_get(ds, "PatientName", "")),
            patient_id=str(_get(ds, "PatientID", "")),
            birth_date=str(_get(ds, "PatientBirthDate", "")),
            accession_number=str(_get(ds, "AccessionNumber", "")),
            study_date=str(_get(ds, "StudyDate", "")),
            study_description=str(_get(ds, "StudyDescription", "")),
        ),
    }


_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_T_FRAME_OF_REFERENCE = 0x00200052


def _clean_text(value: Any, max_len: int) -> str:
    """A short free-text header value, or "" when it is damaged: longer than its VR allows or
    holding control characters (a corrupted length swallows the following elements, patient data
    included, into the value)."""
    text = str(value).strip()
    if len(text) > max_len or any(ord(c) < 32 for c in text):
        return ""
    return text


def _frames_from_header(
    path: Path, ds: Any, offset: int | None, known: dict[str, dict[str, Any]], file_size: int | None = None
) -> tuple[list[FrameRef], dict[str, Any]]:
    """The frames of one file; ``known`` maps series UIDs already seen to their metadata.

    Sizes and frame counts are checked against :data:`MAX_FRAMES_PER_FILE`, :data:`MAX_IMAGE_SIZE`
    and the file size before any per-frame work; implausible geometry or rescale values mark the
    frame with a ``problem`` (the series leaves it out, or is refused when every frame has one).
    """
    file_meta = getattr(ds, "file_meta", None)
    modality = _clean_text(_raw_text(ds, _T_MODALITY) or "", 16).upper()
    if modality in _NON_IMAGE_MODALITIES:
        raise _Skip(f"not an image ({modality} object)")
    if "DirectoryRecordSequence" in ds or _raw_text(file_meta, 0x00020002) == _DICOMDIR_SOP_CLASS:
        raise _Skip("DICOMDIR index (images are read from the folders)")
    rows, cols = _int_or_none(_get(ds, "Rows")), _int_or_none(_get(ds, "Columns"))
    if not rows or not cols:
        raise _Skip("no image in the file")
    if not (MIN_IMAGE_SIZE <= rows <= MAX_IMAGE_SIZE and MIN_IMAGE_SIZE <= cols <= MAX_IMAGE_SIZE):
        raise _Skip(f"implausible image size ({rows} x {cols} pixels)")
    samples = int(_get(ds, "SamplesPerPixel", 1))
    photometric = (_raw_text(ds, _T_PHOTOMETRIC) or "MONOCHROME2").upper()
    if samples != 1 or not photometric.startswith("MONOCHROME"):
        raise _Skip("colour image, not grey-scale CT data")
    bits_allocated = int(_get(ds, "BitsAllocated", 16))
    if bits_allocated not in (8, 16, 32):
        raise _Skip(f"unsupported {bits_allocated}-bit pixels")
    frames_text = _raw_text(ds, _T_FRAMES)
    try:
        n_frames = int(float(frames_text)) if frames_text else 1
    except (ValueError, OverflowError) as exc:
        raise _Skip("damaged header (NumberOfFrames)") from exc
    n_frames = max(n_frames, 1)
    syntax = _raw_text(file_meta, 0x00020010) or "1.2.840.10008.1.2"
    if n_frames > MAX_FRAMES_PER_FILE:
        raise _Skip(f"implausible NumberOfFrames ({n_frames})")
    if n_frames > 1 and file_size is not None and offset is not None:
        available = file_size - offset
        needed = n_frames * rows * cols * (bits_allocated // 8) if syntax in _UNCOMPRESSED else n_frames * 8
        if needed > available + 16:
            raise _Skip(f"claims {n_frames} frames but holds only {max(available, 0)} bytes of pixel data")
    is_localizer = "LOCALIZER" in (_raw_text(ds, _T_IMAGE_TYPE) or "").upper()
    series_uid = _raw_text(ds, _T_SERIES_UID) or f"no-uid:{path.parent}"
    common = known.get(series_uid) or _series_meta(ds, series_uid, modality)
    instance = _raw_int(ds, _T_INSTANCE)
    sop_uid = _raw_text(ds, _T_SOP_UID) or ""
    frame_of_reference = _raw_text(ds, _T_FRAME_OF_REFERENCE) or ""
    enhanced = n_frames > 1 or "SharedFunctionalGroupsSequence" in ds
    frames: list[FrameRef] = []
    for f in range(n_frames):
        problems: list[str] = []
        pos_value = _functional(ds, f, "PlanePositionSequence", "ImagePositionPatient") if enhanced else None
        ori_value = _functional(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient") if enhanced else None
        spacing_value = _functional(ds, f, "PixelMeasuresSequence", "PixelSpacing") if enhanced else None
        thick = _functional(ds, f, "PixelMeasuresSequence", "SliceThickness") if enhanced else None
        slope_value = _functional(ds, f, "PixelValueTransformationSequence", "RescaleSlope") if enhanced else None
        intercept_value = (
            _functional(ds, f, "PixelValueTransformationSequence", "RescaleIntercept") if enhanced else None
        )
        per_frame_position = pos_value is not None
        pos_present, pos = _vector(pos_value if pos_value is not None else _raw_text(ds, _T_IPP), 3)
        _, ori = _vector(ori_value if ori_value is not None else _raw_text(ds, _T_IOP), 6)
        spacing_present, spacing = _vector(
            spacing_value
            if spacing_value is not None
            else (_raw_text(ds, _T_SPACING) or _raw_text(ds, _T_IMAGER_SPACING)),
            2,
        )
        thick = thick if thick is not None else _raw_float(ds, _T_THICKNESS)
        slope_present, slope = _scalar(slope_value if slope_value is not None else _raw_text(ds, _T_SLOPE))
        intercept_present, intercept = _scalar(
            intercept_value if intercept_value is not None else _raw_text(ds, _T_INTERCEPT)
        )
        if pos is not None and max(abs(v) for v in pos) > MAX_ABS_POSITION_MM:
            pos = None
        position_known = pos is not None
        if pos_present and pos is None:
            common["invalid_position"] = True
        ori = _checked_orientation(ori, common, problems)
        if ori is None:
            ori = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
            common["missing_orientation"] = True
        if spacing is not None and not all(
            PIXEL_SPACING_RANGE_MM[0] <= v <= PIXEL_SPACING_RANGE_MM[1] for v in spacing
        ):
            problems.append(f"PixelSpacing {spacing[0]:g} x {spacing[1]:g} mm is not plausible")
            spacing = (1.0, 1.0)
        elif spacing is None and spacing_present:
            problems.append("PixelSpacing is not a pair of numbers")
            spacing = (1.0, 1.0)
        if slope_present and (slope is None or not SLOPE_RANGE[0] <= abs(slope) <= SLOPE_RANGE[1]):
            problems.append(
                "RescaleSlope is not a number" if slope is None else f"RescaleSlope {slope:g} is not usable"
            )
        if intercept_present and (intercept is None or abs(intercept) > MAX_ABS_INTERCEPT):
            problems.append(
                "RescaleIntercept is not a number"
                if intercept is None
                else f"RescaleIntercept {intercept:g} is not usable"
            )
        if pos is None:
            # No position at all: stack by instance/frame number. Said loudly in the warnings.
            step = _float_or(thick, 1.0)
            number = instance or 0
            pos = tuple(float(v) for v in np.asarray(slice_normal(ori)) * step * (number + f))
        elif n_frames > 1 and not per_frame_position:
            # Classic multi-frame without per-frame positions: frames are equally spaced.
            step = _float_or(_raw_float(ds, _T_SPACING_BETWEEN), _float_or(thick, 1.0))
            pos = tuple(float(v) for v in np.asarray(pos) + np.asarray(slice_normal(ori)) * step * f)
            common["assumed_frame_spacing"] = step
        if spacing is None:
            spacing = (1.0, 1.0)
            common["missing_spacing"] = True
        frames.append(
            FrameRef(
                path=str(path),
                frame=f,
                n_frames_in_file=n_frames,
                position_xyz=(float(pos[0]), float(pos[1]), float(pos[2])),
                orientation=tuple(float(v) for v in ori),  # type: ignore[arg-type]
                rows=int(rows),
                columns=int(cols),
                pixel_spacing=(float(spacing[0]), float(spacing[1])),
                slice_thickness=_float_or(thick, None),
                slope=slope if slope is not None and not problems else 1.0,
                intercept=intercept if intercept is not None and not problems else 0.0,
                instance_number=instance,
                transfer_syntax=syntax,
                bits_allocated=bits_allocated,
                bits_stored=int(_get(ds, "BitsStored", bits_allocated)),
                pixel_representation=int(_get(ds, "PixelRepresentation", 0)),
                pixel_offset=offset,
                series_uid=series_uid,
                is_localizer=is_localizer,
                position_known=position_known,
                sop_instance_uid=sop_uid,
                frame_of_reference=frame_of_reference,
                problem="; ".join(problems) or None,
            )
        )
    return frames, common


def _text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        text = value.decode("latin-1")
    elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.strip(" \x00")
    return text or None


def _vector(value: Any, n: int) -> tuple[bool, tuple[float, ...] | None]:
    """``(present, values)``: values None when the element is absent or not ``n`` finite numbers."""
    text = _text_of(value)
    if text is None:
        return False, None
    try:
        out = tuple(float(v) for v in text.split("\\"))
    except (ValueError, OverflowError):
        return True, None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return True, None
    return True, out


def _scalar(value: Any) -> tuple[bool, float | None]:
    present, values = _vector(value, 1)
    return present, (values[0] if values else None)


def _checked_orientation(
    ori: tuple[float, ...] | None, common: dict[str, Any], problems: list[str]
) -> tuple[float, ...] | None:
    """Unit, perpendicular row and column cosines; None when absent or degenerate (axial is then
    assumed); non-unit vectors are normalised (and said), non-perpendicular ones are a problem."""
    if ori is None:
        return None
    row, col = np.asarray(ori[:3], dtype=np.float64), np.asarray(ori[3:], dtype=np.float64)
    n_row, n_col = float(np.linalg.norm(row)), float(np.linalg.norm(col))
    if n_row < 0.1 or n_col < 0.1:
        return None
    if abs(n_row - 1.0) > 0.01 or abs(n_col - 1.0) > 0.01:
        common["nonunit_orientation"] = (n_row, n_col)
    row, col = row / n_row, col / n_col
    cos = float(abs(row @ col))
    if cos > 0.95:  # (nearly) parallel: no usable orientation at all
        return None
    if cos > _ORTHOGONALITY_TOLERANCE:
        angle = float(np.degrees(np.arccos(min(1.0, cos))))
        problems.append(
            f"ImageOrientationPatient row and column directions are {angle:.1f} degrees apart, not perpendicular"
        )
    return tuple(float(v) for v in (*row, *col))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or(value: Any, default: float | None) -> Any:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def _group_series(frames: list[FrameRef], meta: dict[str, dict[str, Any]]) -> Iterator[SeriesInfo]:
    groups: dict[tuple[Any, ...], list[FrameRef]] = defaultdict(list)
    damaged: list[tuple[tuple[Any, ...], FrameRef]] = []
    for fr in frames:
        uid = fr.series_uid
        key = (
            uid,
            fr.is_localizer,
            tuple(round(v, 3) for v in fr.orientation),
            fr.rows,
            fr.columns,
            tuple(round(v, 3) for v in fr.pixel_spacing),
            fr.frame_of_reference,
        )
        if fr.problem is None:
            groups[key].append(fr)
        else:
            damaged.append((key, fr))
    for key, fr in damaged:
        # an image with an implausible value joins the largest group of its series (which leaves it
        # out and says so) rather than forming a part of its own
        siblings = [k for k in groups if k[0] == key[0] and k[3:5] == key[3:5] and k[6] == key[6]]
        groups[max(siblings, key=lambda k: len(groups[k])) if siblings else key].append(fr)
    # Each group: leave out images that cannot be used, then split at gaps too large to interpolate.
    parts: list[tuple[tuple[Any, ...], list[FrameRef], list[str]]] = []
    for key, members in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
        kept, left_out = _usable_frames(members)
        runs = _split_at_gaps(kept)
        for run in runs:
            run_notes = list(left_out)
            if len(runs) > 1:
                run_notes.append(
                    f"The slices are interrupted by a gap of more than {MAX_GAP_STEPS:g} slice steps or "
                    f"{MAX_GAP_MM:g} mm: such gaps are never interpolated."
                )
            parts.append((key, run, run_notes))
    parts_per_uid: dict[str, int] = defaultdict(int)
    for_per_uid: dict[str, set[str]] = defaultdict(set)
    groups_per_uid: dict[str, int] = defaultdict(int)
    for key, _, _ in parts:
        parts_per_uid[key[0]] += 1
        for_per_uid[key[0]].add(key[6])
    for key in groups:
        groups_per_uid[key[0]] += 1
    seen_parts: dict[str, int] = defaultdict(int)
    for key, members, extra in parts:
        uid = key[0]
        m = meta[uid]
        seen_parts[uid] += 1
        notes: list[str] = []
        if parts_per_uid[uid] > 1:
            what = "image orientations, sizes or pixel spacings"
            if len(for_per_uid[uid]) > 1:
                what = "frames of reference (FrameOfReferenceUID), " + what
            why = f"mixes {what}" if groups_per_uid[uid] > 1 else "has gaps too large to interpolate"
            notes.append(
                f"This series {why}; it was split into {parts_per_uid[uid]} parts (this is part {seen_parts[uid]})."
            )
        notes.extend(extra)
        notes.extend(_header_warnings(m, members))
        plan = plan_stack(members)
        notes.extend(plan.warnings)
        first = members[0]
        thick_values = [f.slice_thickness for f in members if f.slice_thickness is not None]
        is_localizer = first.is_localizer or _looks_like_localizer(
            first, members, [p[1] for p in parts if p[0][0] == uid]
        )
        syntaxes = tuple(sorted({f.transfer_syntax for f in members}))
        yield SeriesInfo(
            key=f"{uid}#{seen_parts[uid]}" if parts_per_uid[uid] > 1 else uid,
            series_uid=m["series_uid"] if not str(m["series_uid"]).startswith("no-uid:") else "",
            modality=m["modality"],
            description=m["description"],
            series_number=m["series_number"],
            is_localizer=is_localizer,
            rows=first.rows,
            columns=first.columns,
            orientation=first.orientation,
            slice_thickness_mm=float(np.median(thick_values)) if thick_values else None,
            spacing_zyx_mm=(plan.step_mm, first.pixel_spacing[0], first.pixel_spacing[1]),
            patient_position=m["patient_position"],
            transfer_syntaxes=syntaxes,
            warnings=tuple(notes),
            frames=tuple(members),
            plan=plan,
            patient=m["patient"],
        )


def _usable_frames(members: list[FrameRef]) -> tuple[list[FrameRef], list[str]]:
    """Leave out images with an implausible header value, and images without a valid position when
    others have one (a guessed position would invent a tilt or a gap). When every image has a
    problem, all are kept and the plan refuses the series with the first problem."""
    notes: list[str] = []
    usable = [f for f in members if f.problem is None]
    if not usable:
        return members, notes
    if len(usable) < len(members):
        bad = [f for f in members if f.problem is not None]
        notes.append(
            f"{len(bad)} image(s) were left out because of implausible header values "
            f"({bad[0].problem}, file {os.path.basename(bad[0].path)})."
        )
    positioned = [f for f in usable if f.position_known]
    if positioned and len(positioned) < len(usable):
        notes.append(
            f"{len(usable) - len(positioned)} image(s) have no valid ImagePositionPatient (missing, not a number or "
            f"absurd) and were left out rather than placed by guess."
        )
        usable = positioned
    return usable, notes


def _split_at_gaps(members: list[FrameRef]) -> list[list[FrameRef]]:
    """Runs of frames separated by gaps along the normal too large to interpolate."""
    if len(members) < 3 or not all(f.position_known for f in members):
        return [members]
    normal = slice_normal(members[0].orientation)
    t = np.asarray([f.position_xyz for f in members], dtype=np.float64) @ normal
    order = np.argsort(t, kind="stable")
    ts = t[order]
    steps = np.diff(ts)
    positive = steps[steps > 0.01]
    if len(positive) == 0:
        return [members]
    step = float(np.median(positive))
    limit = max(min(MAX_GAP_STEPS * step, MAX_GAP_MM), 1.5 * step)
    cuts = [i + 1 for i, d in enumerate(steps) if d > limit]
    if not cuts:
        return [members]
    runs: list[list[FrameRef]] = []
    for lo, hi in zip([0, *cuts], [*cuts, len(members)], strict=True):
        # each run again: its own median step may be smaller, making a gap it kept too large
        runs.extend(_split_at_gaps([members[int(i)] for i in order[lo:hi]]))
    return runs


def _looks_like_localizer(first: FrameRef, members: list[FrameRef], siblings: list[list[FrameRef]]) -> bool:
    """A lone image whose series also holds a larger stack of another orientation (a scout)."""
    if len(members) > 2:
        return False
    return any(
        len(g) > 2 * len(members)
        and (g[0].orientation, g[0].rows, g[0].columns) != (first.orientation, first.rows, first.columns)
        for g in siblings
        if g is not members
    )


def _header_warnings(m: dict[str, Any], members: list[FrameRef]) -> list[str]:
    out = []
    modality = m["modality"]
    if modality == "":
        out.append("The images carry no Modality; they are treated as CT.")
    elif modality != "CT":
        out.append(
            f"Modality is {modality}, not CT: values are not Hounsfield units and nodule detection does not apply."
        )
    if m.get("missing_orientation"):
        out.append("Some images have no valid ImageOrientationPatient; axial orientation was assumed.")
    if m.get("nonunit_orientation"):
        n_row, n_col = m["nonunit_orientation"]
        out.append(
            f"ImageOrientationPatient is not made of unit vectors (lengths {n_row:.3g} and {n_col:.3g}); "
            "they were normalised."
        )
    if m.get("missing_spacing"):
        out.append("Some images have no PixelSpacing; 1 mm pixels were assumed, so distances are not reliable.")
    if not all(f.position_known for f in members):
        out.append(
            "Some images have no ImagePositionPatient; they were ordered by instance number, "
            "so slice positions are not reliable."
        )
    if m.get("assumed_frame_spacing"):
        out.append(
            f"Multi-frame images without per-frame positions: frames assumed {m['assumed_frame_spacing']:g} mm apart."
        )
    return out


# ------------------------------------------------------------------------------------------------
# Stack geometry: sorting, duplicates, gaps, uneven steps, gantry tilt (headers only)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StackPlan:
    """How the frames of a series become a regular stack (computed from headers only)."""

    order: tuple[int, ...]  # indices into frames, one per unique position, ascending along the normal
    t_mm: tuple[float, ...]  # their positions along the normal, relative to the first
    step_mm: float
    n_slices: int  # slices after regularisation
    regular: bool
    tilt_deg: float
    warnings: tuple[str, ...]
    error: str | None = None  # set when the frames cannot form a volume; load_series raises it


def plan_stack(frames: Sequence[FrameRef]) -> StackPlan:
    """Sort frames along the slice normal and work out duplicates, gaps, uneven steps and tilt."""
    if not frames:
        raise NoImagesError("the series holds no images")
    normal = slice_normal(frames[0].orientation)
    pos = np.asarray([f.position_xyz for f in frames], dtype=np.float64)
    t = pos @ normal
    inst = [f.instance_number if f.instance_number is not None else 0 for f in frames]
    order = sorted(range(len(frames)), key=lambda i: (t[i], inst[i], frames[i].frame, frames[i].path))
    notes: list[str] = []
    thickness = next((f.slice_thickness for f in frames if f.slice_thickness), None)

    # Duplicates: same position (within 0.01 mm) - keep the first image of each position.
    unique: list[int] = []
    duplicates: list[float] = []
    for i in order:
        if unique and abs(t[i] - t[unique[-1]]) < 0.01:
            duplicates.append(float(pos[i][2]))
            continue
        unique.append(i)
    if duplicates and len(unique) == 1:
        error = (
            f"All {len(frames)} images lie at the same position (z = {pos[0][2]:.1f} mm): they do not form "
            "a volume (perhaps repeated or dynamic scans of one slice)."
        )
        return StackPlan(tuple(unique), (0.0,), float(thickness or 1.0), 1, True, 0.0, (error,), error)
    if duplicates:
        zs = ", ".join(f"{z:.1f}" for z in sorted(set(duplicates))[:5])
        notes.append(
            f"{len(duplicates)} image(s) share a slice position with another image (z = {zs} mm); "
            "one image per position was kept."
        )
    tu = t[unique] - t[unique[0]]
    if len(unique) == 1:
        step = float(thickness or 1.0)
        notes.append("Only 1 image: a single slice, not a volume; 3D views and detection are limited.")
        refusal = _frames_error(frames) or budget_error(1, frames[0].rows, frames[0].columns)
        if refusal:
            notes.append(refusal[0].upper() + refusal[1:] + ".")
        return StackPlan(tuple(unique), (0.0,), step, 1, True, 0.0, tuple(notes), refusal)
    if len(unique) < MIN_VOLUME_SLICES:
        notes.append(f"Only {len(unique)} slices: too few for reliable 3D views and nodule detection.")

    steps = np.diff(tu)
    step = float(np.median(steps))
    regular = bool(np.all(np.abs(steps - step) <= _SPACING_TOLERANCE * step))
    n_slices = len(unique)
    if not regular:
        n_slices = round(float(tu[-1]) / step) + 1
        gap_notes, uneven = [], False
        z_of = pos[unique][:, 2]
        for s_i, s in enumerate(steps):
            ratio = s / step
            if ratio > 1.5 and abs(ratio - round(ratio)) <= 0.15:
                missing = round(ratio) - 1
                gap_notes.append(f"{missing} between z = {z_of[s_i]:.1f} and {z_of[s_i + 1]:.1f} mm")
            elif abs(ratio - 1.0) > _SPACING_TOLERANCE:
                uneven = True
        if gap_notes:
            notes.append(
                "Missing slice(s): "
                + "; ".join(gap_notes[:5])
                + (f" (and {len(gap_notes) - 5} more gaps)" if len(gap_notes) > 5 else "")
                + ". The gaps were filled by linear interpolation; do not measure there."
            )
        if uneven:
            notes.append(
                f"Uneven slice spacing (steps {steps.min():.2f}-{steps.max():.2f} mm): resampled to a regular "
                f"{step:.2f} mm grid by linear interpolation."
            )

    # Gantry tilt: the stack advances at an angle to the slice normal.
    span = pos[unique[-1]] - pos[unique[0]]
    tilt = 0.0
    if np.linalg.norm(span) > 1e-6:
        cos = float(abs(span @ normal) / np.linalg.norm(span))
        tilt = float(np.degrees(np.arccos(min(1.0, cos))))
    if tilt > _TILT_TOLERANCE_DEG:
        notes.append(
            f"Gantry tilt of {tilt:.1f} degrees: each slice was shifted in-plane (linear interpolation) "
            "onto an orthogonal grid, so the volume keeps its true anatomy."
        )
    refusal = _frames_error(frames) or budget_error(n_slices, frames[0].rows, frames[0].columns)
    if refusal:
        notes.append(refusal[0].upper() + refusal[1:] + ".")
    return StackPlan(tuple(unique), tuple(float(v) for v in tu), step, n_slices, regular, tilt, tuple(notes), refusal)


def _frames_error(frames: Sequence[FrameRef]) -> str | None:
    """Why the series is refused when none of its images can be used, else None."""
    if all(f.problem for f in frames):
        return f"the images of this series cannot be used: {frames[0].problem}"
    return None


# ------------------------------------------------------------------------------------------------
# Loading pixels
# ------------------------------------------------------------------------------------------------
def load_series(
    series: SeriesInfo,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> Volume:
    """Read the pixels of one discovered series into an int16 HU :class:`Volume`.

    Args:
        series: from :func:`discover`.
        progress: called as ``progress(images_done, images_total)``.
        should_stop: polled between images; :class:`Cancelled` is raised when it returns True.

    Raises:
        UnreadableFileError: when no image of the series can be decoded.
        GeometryError: when the images do not form a volume.
    """
    plan = series.plan
    if plan.error:
        raise GeometryError(plan.error)
    frames = [series.frames[i] for i in plan.order]
    notes = list(series.warnings)
    stack = np.empty((len(frames), series.rows, series.columns), dtype=np.int16)
    good = np.ones(len(frames), dtype=bool)
    decoder = _Decoder()
    failures: list[str] = []
    for n, fr in enumerate(frames):
        check_cancel(should_stop)
        try:
            decoder.decode_into(fr, stack[n])
        except UnreadableFileError as exc:
            good[n] = False
            failures.append(str(exc))
        progress(n + 1, len(frames))
    notes.extend(decoder.notes)
    if not good.any():
        raise UnreadableFileError(failures[0] if len(failures) == 1 else f"no image could be read: {failures[0]}")
    if failures:
        notes.append(
            f"{len(failures)} image(s) could not be read and were left out ({failures[0]}"
            + (f"; and {len(failures) - 1} more" if len(failures) > 1 else "")
            + ")."
        )
    positions = np.asarray([f.position_xyz for f in frames], dtype=np.float64)
    t = np.asarray(plan.t_mm, dtype=np.float64)
    if not good.all():
        stack, positions, t = stack[good], positions[good], t[good]
    first = frames[int(np.argmax(good))]
    direction = direction_from_orientation(first.orientation)
    row_dir, col_dir = direction[:, 0], direction[:, 1]
    spacing_y, spacing_x = first.pixel_spacing
    if plan.tilt_deg > _TILT_TOLERANCE_DEG:
        _correct_tilt(stack, positions, row_dir, col_dir, spacing_y, spacing_x)
    step = plan.step_mm
    interpolated: tuple[int, ...] = ()
    t = t - t[0]
    if len(t) > 1:
        steps = np.diff(t)
        if not np.all(np.abs(steps - step) <= _SPACING_TOLERANCE * step):
            if failures:  # the plan's warnings already describe gaps present in the headers
                notes.append("The left-out images were filled by linear interpolation; do not measure there.")
            stack, interpolated = _regularise(stack, t, step)
    try:
        geometry = Geometry(
            shape_zyx=(stack.shape[0], stack.shape[1], stack.shape[2]),
            spacing_zyx=np.array([step, spacing_y, spacing_x]),
            origin_xyz=positions[0],
            direction=direction,
        )
    except ValueError as exc:
        raise GeometryError(f"the images do not form a valid volume ({exc})") from exc
    return Volume(
        hu_zyx=stack,
        geometry=geometry,
        modality=series.modality or "CT",
        description=series.description,
        series_uid=series.series_uid,
        patient_position=series.patient_position,
        source_format="dicom-multiframe" if first.n_frames_in_file > 1 else "dicom",
        warnings=tuple(dict.fromkeys(notes)),
        interpolated_slices=interpolated,
        slice_thickness_mm=series.slice_thickness_mm,
        patient=series.patient,
    )


def _correct_tilt(
    stack: NDArray[np.int16],
    positions: NDArray[np.float64],
    row_dir: NDArray[np.float64],
    col_dir: NDArray[np.float64],
    spacing_y: float,
    spacing_x: float,
) -> None:
    """Shift each slice in-plane so voxel (j, i) of every slice lies on the normal through slice 0's."""
    fill = int(stack.min())
    for k in range(1, stack.shape[0]):
        delta = positions[k] - positions[0]
        shift_x = float(delta @ row_dir) / spacing_x  # columns
        shift_y = float(delta @ col_dir) / spacing_y  # rows
        # out[j, i] = slice[j - shift_y, i - shift_x]
        stack[k] = _shift_2d(stack[k], shift_y, shift_x, fill)
    positions[:] = positions[0] + np.outer(
        (positions - positions[0]) @ np.cross(row_dir, col_dir), np.cross(row_dir, col_dir)
    )


def _shift_2d(img: NDArray[np.int16], dy: float, dx: float, fill: int) -> NDArray[np.int16]:
    """Bilinear shift: ``out[j, i] = img[j - dy, i - dx]``; outside values become ``fill``."""
    out = img.astype(np.float32)
    for axis, d in ((0, dy), (1, dx)):
        if abs(d) < 1e-6:
            continue
        whole = int(np.floor(d))
        frac = d - whole
        a = _shift_int(out, whole, axis, fill)
        b = _shift_int(out, whole + 1, axis, fill)
        out = (1.0 - frac) * a + frac * b
    return np.asarray(np.rint(out), dtype=np.int16)


def _shift_int(img: NDArray[np.float32], n: int, axis: int, fill: float) -> NDArray[np.float32]:
    out = np.full_like(img, fill)
    size = img.shape[axis]
    if abs(n) >= size:
        return out
    src = [slice(None)] * 2
    dst = [slice(None)] * 2
    if n >= 0:
        src[axis], dst[axis] = slice(0, size - n), slice(n, size)
    else:
        src[axis], dst[axis] = slice(-n, size), slice(0, size + n)
    out[tuple(dst)] = img[tuple(src)]
    return out


def _regularise(
    stack: NDArray[np.int16], t: NDArray[np.float64], step: float
) -> tuple[NDArray[np.int16], tuple[int, ...]]:
    """Resample slices at positions ``t`` (ascending, mm) onto the grid ``0, step, 2 step, ...``."""
    n = round(float(t[-1]) / step) + 1
    out = np.empty((n, *stack.shape[1:]), dtype=np.int16)
    interpolated = []
    for m in range(n):
        target = m * step
        hi = int(np.searchsorted(t, target))
        if hi < len(t) and abs(t[hi] - target) <= 0.1 * step:
            out[m] = stack[hi]
            continue
        if hi > 0 and abs(t[hi - 1] - target) <= 0.1 * step:
            out[m] = stack[hi - 1]
            continue
        lo = max(hi - 1, 0)
        hi = min(hi, len(t) - 1)
        w = 0.0 if hi == lo else (target - t[lo]) / (t[hi] - t[lo])
        out[m] = np.rint((1.0 - w) * stack[lo] + w * stack[hi]).astype(np.int16)
        interpolated.append(m)
    return out, tuple(interpolated)


class _Decoder:
    """Decodes one frame into an int16 HU slice; caches whole multi-frame files while in use."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._cache_path: str | None = None
        self._cache: NDArray[Any] | None = None
        self._cache_is_hu = False

    def decode_into(self, fr: FrameRef, out: NDArray[np.int16]) -> None:
        name = os.path.basename(fr.path)
        raw = self._raw_native(fr) if fr.pixel_offset is not None else None
        if raw is not None:
            _to_hu(raw, fr, out)
            return
        arr, is_hu = self._decode_file(fr)
        frame = arr[fr.frame] if arr.ndim == 3 else arr
        if frame.shape != out.shape:
            raise UnreadableFileError(f"file {name} holds an image of size {frame.shape}, expected {out.shape}")
        if is_hu:
            np.copyto(out, np.clip(np.rint(frame), -32768, 32767).astype(np.int16))
        else:
            _to_hu(frame, fr, out)

    def _raw_native(self, fr: FrameRef) -> NDArray[Any] | None:
        """Uncompressed little-endian pixels straight from the file, or None when not applicable."""
        if fr.bits_allocated not in (8, 16) or fr.pixel_offset is None:
            return None
        declared_native = fr.transfer_syntax in _RAW_LITTLE_ENDIAN
        frame_bytes = fr.rows * fr.columns * (fr.bits_allocated // 8)
        with open(fr.path, "rb") as fp:
            fp.seek(fr.pixel_offset)
            header = fp.read(12)
            if len(header) < 8:
                if declared_native:
                    raise UnreadableFileError(f"file {os.path.basename(fr.path)} is truncated (no pixel data)")
                return None
            group, element = struct.unpack("<HH", header[:4])
            if (group, element) != (0x7FE0, 0x0010):
                return None
            if header[4:6] in (b"OW", b"OB", b"UN"):
                (length,) = struct.unpack("<I", header[8:12])
                data_start = fr.pixel_offset + 12
            else:
                (length,) = struct.unpack("<I", header[4:8])
                data_start = fr.pixel_offset + 8
            if length == 0xFFFFFFFF:  # encapsulated (compressed) pixel data
                return None
            expected = frame_bytes * fr.n_frames_in_file
            if not declared_native:
                if length != expected:
                    return None
                note = (
                    f"File {os.path.basename(fr.path)} declares {_syntax_name(fr.transfer_syntax)} but holds "
                    "uncompressed pixels; they were read as uncompressed."
                )
                if note not in self.notes:
                    self.notes.append(note)
            fp.seek(data_start + fr.frame * frame_bytes)
            buf = fp.read(frame_bytes)
        if len(buf) < frame_bytes or length < expected:
            raise UnreadableFileError(f"file {os.path.basename(fr.path)} is truncated (pixel data incomplete)")
        if length >= 2 * expected and length % expected <= 1:  # trailing padding is fine, twice the data is not
            raise UnreadableFileError(
                f"file {os.path.basename(fr.path)} holds {length // expected} times the pixel bytes its header "
                f"describes (BitsAllocated {fr.bits_allocated} does not match the data)"
            )
        signed = fr.pixel_representation == 1
        dtype = {8: ("<i1" if signed else "<u1"), 16: ("<i2" if signed else "<u2")}[fr.bits_allocated]
        raw = np.frombuffer(buf, dtype=dtype).reshape(fr.rows, fr.columns)
        return _mask_bits(raw, fr)

    def _decode_file(self, fr: FrameRef) -> tuple[NDArray[Any], bool]:
        if self._cache_path == fr.path and self._cache is not None:
            return self._cache, self._cache_is_hu
        name = os.path.basename(fr.path)
        if fr.transfer_syntax in _PYDICOM_NATIVE:
            arr, is_hu = self._pydicom_pixels(fr.path, name), False
        else:
            arr, is_hu = read_compressed_dicom(fr.path, name, _syntax_name(fr.transfer_syntax)), True
        if fr.n_frames_in_file > 1:
            self._cache_path, self._cache, self._cache_is_hu = fr.path, arr, is_hu
        return arr, is_hu

    @staticmethod
    def _pydicom_pixels(path: str, name: str) -> NDArray[Any]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, force=True)
                arr = ds.pixel_array
        except Exception as exc:
            raise UnreadableFileError(_pixel_error(name, exc)) from exc
        return np.asarray(arr)


def _pixel_error(name: str, exc: Exception) -> str:
    text = str(exc).lower()
    if "truncat" in text or "less than expected" in text or "not enough" in text or "too short" in text:
        return f"file {name} is truncated"
    return f"the pixels of file {name} could not be decoded"


def _mask_bits(raw: NDArray[Any], fr: FrameRef) -> NDArray[Any]:
    """Honour BitsStored: drop junk in unused high bits and sign-extend from the true sign bit."""
    bits = fr.bits_stored
    if bits >= fr.bits_allocated or bits <= 0:
        return raw
    unused = fr.bits_allocated - bits
    if fr.pixel_representation == 1:
        wide = raw.astype(np.int32) << (32 - bits)
        return np.asarray(wide >> (32 - bits))
    return np.asarray(raw.astype(np.uint32) & ((1 << bits) - 1)) if unused else raw


def _to_hu(raw: NDArray[Any], fr: FrameRef, out: NDArray[np.int16]) -> None:
    if fr.slope == 1.0 and float(fr.intercept).is_integer():
        intercept = int(fr.intercept)
        if raw.dtype.itemsize <= 2 and int(raw.min()) + intercept >= -32768 and int(raw.max()) + intercept <= 32767:
            np.add(raw, np.int32(intercept), out=out, casting="unsafe")  # one pass, no int32 temporary
            return
        hu = raw.astype(np.int32) + intercept
    else:
        hu = np.rint(raw.astype(np.float64) * fr.slope + fr.intercept)
    np.copyto(out, np.clip(hu, -32768, 32767).astype(np.int16))


_SYNTAX_NAMES = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.5": "RLE Lossless",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
}


def _syntax_name(uid: str) -> str:
    return _SYNTAX_NAMES.get(uid, uid)


__all__ = [
    "Discovery",
    "FrameRef",
    "SeriesInfo",
    "SkippedFile",
    "discover",
    "iter_input_files",
    "load_series",
    "plan_stack",
]
