"""What the viewer shows about a loaded series besides its pixels: title, corner overlays, tags.

The loader's :class:`~nodeview.core.volume.Volume` carries the pixels and the geometry; the few
header values a reader expects to see (series number, date, kernel, the scanner's default
window) are read here from the first image's header, in the load worker, so the GUI thread never
touches a file. Identifying tags (patient name, ID, birth date) are kept only for the corner
overlay when the user enables them in the settings and for the tag browser (F12); never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.windowing import Window

if TYPE_CHECKING:
    from ..core.io.dicom import SeriesInfo
    from ..core.volume import Volume

log = logging.getLogger(__name__)

#: Tags shown only in the tag browser and (when enabled) the overlay; never in the title or logs.
IDENTIFYING_KEYWORDS = frozenset(
    {"PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber", "PatientAddress"}
)


@dataclass(frozen=True)
class SeriesHeader:
    """Header values of one series, for display. Empty strings when unknown."""

    series_number: str = ""
    series_date: str = ""
    kernel: str = ""
    manufacturer: str = ""
    slice_thickness_mm: float | None = None
    default_window: Window | None = None
    patient_name: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    #: file of each volume slice k (None: interpolated or not DICOM), for the tag browser
    slice_files: tuple[str | None, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:  # never print identifying values
        return f"SeriesHeader(series {self.series_number!r}, {self.series_date!r}, kernel {self.kernel!r})"


def _first_value(value: object) -> object:
    try:
        from pydicom.multival import MultiValue

        if isinstance(value, MultiValue | list | tuple):
            return value[0] if len(value) else None
    except ImportError:  # pragma: no cover
        pass
    return value


def _format_date(value: str) -> str:
    v = value.strip()
    if len(v) == 8 and v.isdigit():
        return f"{v[:4]}-{v[4:6]}-{v[6:]}"
    return v


def read_series_header(series: SeriesInfo, volume: Volume) -> SeriesHeader:
    """Read the display values from the series' first image header (headers only, no pixels)."""
    import pydicom

    plan = series.plan
    frames = [series.frames[i] for i in plan.order] if plan.order else list(series.frames)
    if not frames:
        return SeriesHeader()
    try:
        ds = pydicom.dcmread(frames[0].path, stop_before_pixels=True, force=True)
    except Exception as exc:  # a header the loader read once; show what we can
        log.info("could not re-read a header for display: %s", type(exc).__name__)
        return SeriesHeader(slice_files=_slice_files(series, volume))
    window = None
    try:
        centre, width = _first_value(ds.get("WindowCenter")), _first_value(ds.get("WindowWidth"))
        if centre is not None and width is not None and float(str(width)) > 0:
            window = Window(float(str(centre)), float(str(width)))
    except (TypeError, ValueError):
        window = None
    kernel = ds.get("ConvolutionKernel", "")
    kernel = "/".join(str(k) for k in kernel) if not isinstance(kernel, str) else kernel
    number = ds.get("SeriesNumber", "")
    date = str(ds.get("SeriesDate", "") or ds.get("AcquisitionDate", "") or ds.get("StudyDate", ""))
    thickness = ds.get("SliceThickness", None)
    try:
        thickness_mm = float(thickness) if thickness not in (None, "") else None
    except (TypeError, ValueError):
        thickness_mm = None
    return SeriesHeader(
        series_number="" if number in (None, "") else str(number),
        series_date=_format_date(date),
        kernel=str(kernel).strip(),
        manufacturer=str(ds.get("Manufacturer", "")).strip(),
        slice_thickness_mm=thickness_mm,
        default_window=window,
        patient_name=str(ds.get("PatientName", "")),
        patient_id=str(ds.get("PatientID", "")),
        slice_files=_slice_files(series, volume),
    )


def _slice_files(series: SeriesInfo, volume: Volume) -> tuple[str | None, ...]:
    """The file shown as each slice k: the frame whose position along the normal is nearest."""
    plan = series.plan
    if not plan.order:
        return ()
    t = np.asarray(plan.t_mm, dtype=np.float64)
    n = volume.shape_zyx[0]
    interpolated = set(volume.interpolated_slices)
    files: list[str | None] = []
    for k in range(n):
        if k in interpolated:
            files.append(None)
            continue
        nearest = int(np.argmin(np.abs(t - k * plan.step_mm))) if len(t) else 0
        files.append(series.frames[plan.order[nearest]].path)
    return tuple(files)


def study_title(volume: Volume, header: SeriesHeader | None) -> str:
    """Identifies the series on screen without patient data.

    The series description when there is one; otherwise series number, date and kernel.
    """
    parts: list[str] = []
    if volume.description.strip():
        parts.append(volume.description.strip())
        if header is not None and header.series_number:
            parts.append(f"series {header.series_number}")
    elif header is not None and (header.series_number or header.series_date or header.kernel):
        if header.series_number:
            parts.append(f"series {header.series_number}")
        if header.series_date:
            parts.append(header.series_date)
        if header.kernel:
            parts.append(f"kernel {header.kernel}")
    else:
        parts.append(f"unnamed series {volume.series_uid[-8:]}" if volume.series_uid else "unnamed series")
    if header is not None and header.series_date and volume.description.strip():
        parts.append(header.series_date)
    parts.append(volume.modality or "unknown modality")
    return " · ".join(parts)


def read_tags(path: str) -> list[tuple[str, str, str, str]]:
    """Every data element of a file's header: (tag, keyword, VR, value), sequences summarised."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    rows: list[tuple[str, str, str, str]] = []
    for elem in ds.iterall():
        if elem.VR == "SQ":
            value = f"<sequence of {len(elem.value)} item(s)>"
        else:
            text = str(elem.value)
            value = text if len(text) <= 200 else text[:200] + "…"
        rows.append((f"({elem.tag.group:04X},{elem.tag.element:04X})", elem.keyword or elem.name, str(elem.VR), value))
    return rows
