"""Reading TID 1500 SRs and SEGs back onto an open series (Qt-free).

:func:`find_derived_objects` looks for SR and SEG files among the paths a study was opened from
(discovery skips them as non-image objects). :func:`findings_from_sr` turns a TID 1500 measurement
report - NodeView's or another tool's - into :class:`~nodeview.core.detect.findings.Finding` objects:
every planar measurement group whose region is an SCOORD3D POINT (or any 3D graphic: its centroid)
in the open series' frame of reference becomes a finding (except a comparison's *resolved* groups:
prior-only findings, returned with their location in :attr:`LoadedComparison.resolved`); a
volumetric group with the same tracking UID adds its volume. Values NodeView writes (long/short
axis, diameter, nodule score, malignancy score (NV0016, or DCM "Probability of cancer" as written before
2026-12-04), type, Lung-RADS hint, review status) are read back where present; other reports'
findings get what they carry, the rest neutral (score 1, malignancy 0, type "unmeasured").
:func:`labels_from_seg` resamples a SEG that references the open series into a label volume
(``uint8``, or ``uint16`` beyond 255 segments: segment numbers) on the volume grid, for an overlay.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from ..detect.findings import Finding
from ..errors import InputError
from ..io.dicom import iter_input_files
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..volume import Volume
from . import codes

SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
}
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
Labels = NDArray[np.unsignedinteger[Any]]  # segment numbers on the volume grid, 0 = none
_TAGS = ["Modality", "SOPClassUID", "FrameOfReferenceUID", "ReferencedSeriesSequence"]


@dataclass(frozen=True)
class LoadedChange:
    """A finding's comparison with the prior study, as an SR carries it (issue 25).

    Attributes:
        change: "new", "stable", "growing", "shrinking" or "resolved".
        prior_tracking_id: the prior finding's tracking identifier ("Nodule N"), "" when new.
        prior_diameter_mm, prior_volume_mm3: the prior finding's size (None when new).
        diameter_change_mm: current minus prior mean diameter (None when new).
        vdt_days: volume doubling time (None when undefined).
        lung_rads: the Lung-RADS v2022 suggestion given the change ("" when none).
        center_xyz_mm, frame_of_reference_uid: where a resolved finding was (its group's SCOORD3D
            point, LPS mm) and in which frame of reference: the prior's, or the current one when
            the SR mapped it there (:mod:`.followup_sr`); None and "" for a current finding's change
            and for SRs that gave a resolved finding no location.
    """

    change: str
    prior_tracking_id: str = ""
    prior_diameter_mm: float | None = None
    prior_volume_mm3: float | None = None
    diameter_change_mm: float | None = None
    vdt_days: float | None = None
    lung_rads: str = ""
    center_xyz_mm: tuple[float, float, float] | None = None
    frame_of_reference_uid: str = ""


@dataclass(frozen=True)
class LoadedComparison:
    """The comparison study an SR names, and its prior-only (resolved) findings."""

    study_date: str  # ISO YYYY-MM-DD, "" when not said
    study_uid: str
    series_uid: str
    interval_days: int | None
    line: str
    resolved: tuple[LoadedChange, ...] = ()


@dataclass(frozen=True)
class LoadedImpression:
    """The impression an SR carries: the exam's Lung-RADS suggestion and what drives it."""

    category: str  # "" when none
    driving_tracking_id: str
    rule: str
    management: str
    fleischner: str


@dataclass(frozen=True)
class LoadedFinding:
    """A finding read from an SR, with where it came from (it was loaded, not detected)."""

    finding: Finding
    tracking_uid: str
    tracking_id: str
    review: str  # accepted, rejected, unreviewed
    segment_number: int  # in the SR's referenced SEG, 0 when none
    sr_path: str
    change: LoadedChange | None = None  # when the SR compared it with a prior


@dataclass(frozen=True)
class LoadedReport:
    """What an SR held for the open series."""

    path: str
    findings: tuple[LoadedFinding, ...]
    algorithm: str  # "name version" of the algorithm that made it, "" when not said
    observer: str
    seg_uid: str = ""  # the SEG its volumetric groups reference
    skipped: int = 0  # groups not on this series (other frame of reference, 2D only)
    notes: tuple[str, ...] = field(default=())
    comparison: LoadedComparison | None = None  # the prior study it was compared with
    impression: LoadedImpression | None = None
    frame_of_reference_uid: str = ""  # the one its findings were read in
    threshold: float | None = None  # the operating threshold its summary group states


@dataclass(frozen=True)
class DerivedObjects:
    """SR and SEG files found beside a study."""

    sr_paths: tuple[str, ...]
    seg_paths: tuple[str, ...]


def find_derived_objects(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> DerivedObjects:
    """SR and SEG files under ``paths`` (headers only; unreadable files are ignored)."""
    files = iter_input_files(paths)
    srs, segs = [], []
    for n, path in enumerate(files):
        check_cancel(should_stop)
        progress(n + 1, len(files))
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
        except Exception:  # not DICOM, damaged: nothing to read back
            continue
        sop = str(ds.get("SOPClassUID", ""))
        if sop in SR_CLASSES:
            srs.append(str(path))
        elif sop == SEG_CLASS:
            segs.append(str(path))
    return DerivedObjects(tuple(srs), tuple(segs))


def _value(item: Any) -> float | None:
    try:
        return float(item.value)
    except (AttributeError, TypeError, ValueError):
        return None


def _find(items: Sequence[Any], name: Any) -> Any:
    for it in items:
        if codes.same_code(it.name, name):
            return it
    return None


def _code_meaning(items: Sequence[Any], name: Any, table: dict[str, Any]) -> str | None:
    it = _find(items, name)
    if it is None:
        return None
    for key, code in table.items():
        if codes.same_code(it.value, code):
            return str(key)
    return str(getattr(it.value, "meaning", "")) or None


def findings_from_sr(path: str | os.PathLike[str], volume_for_uid: str | None, first_id: int = 1) -> LoadedReport:
    """The findings of the TID 1500 SR at ``path`` that lie in frame of reference ``volume_for_uid``
    (None: in the frame of reference of its first finding, e.g. a prior's SR read without its images)."""
    try:
        sr = hd.sr.srread(path)
    except Exception as exc:
        raise InputError(f"{os.path.basename(path)} is not a readable structured report ({exc})") from exc
    try:
        report: Any = sr.content
        planar = report.get_planar_roi_measurement_groups()
        volumetric = report.get_volumetric_roi_measurement_groups()
    except (AttributeError, ValueError, TypeError) as exc:
        raise InputError(f"{os.path.basename(path)} is not a TID 1500 measurement report ({exc})") from exc
    volumes: dict[str, float] = {}
    seg_uid = ""
    for group in volumetric:
        uid = str(group.tracking_uid or "")
        vol = _value(_find(group.get_measurements(), codes.VOLUME))
        if uid and vol is not None:
            volumes[uid] = vol
        ref = group.referenced_segment
        if ref is not None:
            seg_uid = str(ref.referenced_sop_instance_uid)
    if volume_for_uid is None:
        frames = [
            str(g.roi.frame_of_reference_uid)
            for g in planar
            if not _is_resolved(g) and g.roi is not None and hasattr(g.roi, "frame_of_reference_uid")
        ]
        volume_for_uid = frames[0] if frames else ""
    loaded: list[LoadedFinding] = []
    skipped = 0
    for group in planar:
        if _is_resolved(group):  # a prior-only finding: part of the comparison, not of this study
            continue
        region = group.roi
        if region is None or not hasattr(region, "frame_of_reference_uid"):
            skipped += 1
            continue
        if str(region.frame_of_reference_uid) != volume_for_uid:
            skipped += 1
            continue
        points = np.asarray(region.value, dtype=np.float64).reshape(-1, 3)
        centre = points.mean(axis=0)
        meas = group.get_measurements()
        evals = group.get_qualitative_evaluations()
        long_axis = _value(_find(meas, codes.LONG_AXIS))
        short_axis = _value(_find(meas, codes.SHORT_AXIS))
        diameter = _value(_find(meas, codes.DIAMETER))
        if diameter is None and long_axis is not None:
            diameter = (long_axis + (short_axis if short_axis is not None else long_axis)) / 2.0
        if diameter is None and len(points) > 1:
            diameter = float(2 * np.linalg.norm(points - centre, axis=1).max())
        diameter = float(diameter) if diameter is not None else 6.0
        long_axis = long_axis if long_axis is not None else diameter
        short_axis = short_axis if short_axis is not None else diameter
        uid = str(group.tracking_uid or "")
        volume_mm3 = volumes.get(uid, float(np.pi / 6.0 * diameter**3))
        kind = _code_meaning(evals, codes.NODULE_TYPE, codes.NODULE_TYPES) or "unmeasured"
        measured = _code_meaning(evals, codes.MEASURED_BY, codes.MEASUREMENTS) == "segmentation"
        review = _code_meaning(evals, codes.REVIEW, codes.REVIEW_STATES) or "unreviewed"
        lung_rads = _code_meaning(evals, codes.LUNG_RADS, codes.LUNG_RADS_VALUES) or ""
        score = _value(_find(meas, codes.NODULE_SCORE))
        malignancy = _value(_find(meas, codes.MALIGNANCY) or _find(meas, codes.MALIGNANCY_LEGACY))
        solid = _value(_find(meas, codes.SOLID_DIAMETER)) if kind == "part-solid" else None
        solid_fraction = min(1.0, (solid / diameter) ** 3) if solid is not None and diameter > 0 else 0.0
        r = diameter / 2.0
        finding = Finding(
            id=first_id + len(loaded),
            center_xyz_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
            diameter_mm=diameter,
            bbox_min_xyz_mm=(float(centre[0] - r), float(centre[1] - r), float(centre[2] - r)),
            bbox_max_xyz_mm=(float(centre[0] + r), float(centre[1] + r), float(centre[2] + r)),
            score=1.0 if score is None else score,
            malignancy=0.0 if malignancy is None else malignancy,
            type=kind if kind in codes.NODULE_TYPES else "unmeasured",
            volume_mm3=volume_mm3,
            long_axis_mm=long_axis,
            short_axis_mm=short_axis,
            lung_rads=lung_rads if lung_rads in codes.LUNG_RADS_VALUES else "",
            side="",
            zone="",
            model_diameter_mm=diameter,
            solid_fraction=solid_fraction,
            measured=measured,
        )
        loaded.append(
            LoadedFinding(
                finding, uid, str(group.tracking_identifier or ""), review, 0, os.fspath(path), _change_of(group)
            )
        )
    algorithm, observer = _provenance(sr)
    comparison = _comparison_of(sr, report)
    threshold = None
    for group in report.get_image_measurement_groups():  # NodeView's summary group states it
        value = _value(_find(group.get_measurements(), codes.OPERATING_THRESHOLD))
        threshold = value if value is not None else threshold
    return LoadedReport(
        os.fspath(path), tuple(loaded), algorithm, observer, seg_uid, skipped,
        comparison=comparison, impression=_impression_of(sr), frame_of_reference_uid=volume_for_uid,
        threshold=threshold,
    )  # fmt: skip


def _texts(group: Any) -> dict[tuple[str, str], str]:
    """TEXT items directly in a measurement group's container: {(code, scheme): text}."""
    out: dict[tuple[str, str], str] = {}
    for item in group[0].get("ContentSequence", []) if len(group) else []:
        if item.get("ValueType") == "TEXT" and item.get("ConceptNameCodeSequence"):
            c = item.ConceptNameCodeSequence[0]
            out[(str(c.CodeValue), str(c.CodingSchemeDesignator))] = str(item.get("TextValue", ""))
    return out


def _change_of(group: Any) -> LoadedChange | None:
    """The comparison items of a measurement group (None when it has none)."""
    evals = group.get_qualitative_evaluations()
    change = _code_meaning(evals, codes.QUALITATIVE_DIFFERENCE, codes.CHANGES)
    if change not in codes.CHANGES:
        return None
    meas = group.get_measurements()
    vdt = _value(_find(meas, codes.VDT))
    return LoadedChange(
        change=str(change),
        prior_tracking_id=_texts(group).get(
            (codes.PRIOR_TRACKING_ID.value, codes.PRIOR_TRACKING_ID.scheme_designator), ""
        ),
        prior_diameter_mm=_value(_find(meas, codes.PRIOR_DIAMETER)),
        prior_volume_mm3=_value(_find(meas, codes.PRIOR_VOLUME)),
        diameter_change_mm=_value(_find(meas, codes.DIAMETER_CHANGE)),
        vdt_days=vdt,
        lung_rads=_code_meaning(evals, codes.LUNG_RADS_FOLLOWUP, codes.LUNG_RADS_VALUES) or "",
    )


def _root_container(sr: Dataset, concept: Any) -> Dataset | None:
    for item in sr.get("ContentSequence", []):
        names = item.get("ConceptNameCodeSequence")
        if item.get("ValueType") == "CONTAINER" and names and codes.same_code(_as_code(names[0]), concept):
            return item  # type: ignore[no-any-return]
    return None


def _as_code(item: Dataset) -> Any:
    return hd.sr.CodedConcept(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))


def _children(container: Dataset) -> list[tuple[Any, Dataset]]:
    return [
        (_as_code(i.ConceptNameCodeSequence[0]), i)
        for i in container.get("ContentSequence", [])
        if i.get("ConceptNameCodeSequence")
    ]


def _comparison_of(sr: Dataset, report: Any) -> LoadedComparison | None:
    """The LN 18834-2 comparison container and the resolved (prior-only) groups."""
    container = _root_container(sr, codes.COMPARISON)
    if container is None:
        return None
    date = study_uid = series_uid = line = ""
    interval: int | None = None
    for concept, item in _children(container):
        if codes.same_code(concept, codes.STUDY_DATE) and item.get("Date"):
            d = str(item.Date)
            date = f"{d[:4]}-{d[4:6]}-{d[6:8]}"
        elif codes.same_code(concept, codes.STUDY_UID):
            study_uid = str(item.get("UID", ""))
        elif codes.same_code(concept, codes.SERIES_UID):
            series_uid = str(item.get("UID", ""))
        elif codes.same_code(concept, codes.INTERVAL) and item.get("MeasuredValueSequence"):
            interval = int(round(float(item.MeasuredValueSequence[0].NumericValue)))
        elif codes.same_code(concept, codes.COMPARISON_LINE):
            line = str(item.get("TextValue", ""))
    resolved = []
    for group in report.get_planar_roi_measurement_groups():  # located (TID 1410)
        change = _change_of(group)
        if change is not None and change.change == "resolved":
            region = group.roi
            if region is not None and hasattr(region, "frame_of_reference_uid"):
                centre = np.asarray(region.value, dtype=np.float64).reshape(-1, 3).mean(axis=0)
                change = replace(
                    change,
                    center_xyz_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
                    frame_of_reference_uid=str(region.frame_of_reference_uid),
                )
            resolved.append(change)
    for group in report.get_image_measurement_groups():  # SRs written before resolved findings had a location
        change = _change_of(group)
        if change is not None and change.change == "resolved":
            resolved.append(change)
    return LoadedComparison(date, study_uid, series_uid, interval, line, tuple(resolved))


def _is_resolved(group: Any) -> bool:
    change = _code_meaning(group.get_qualitative_evaluations(), codes.QUALITATIVE_DIFFERENCE, codes.CHANGES)
    return change == "resolved"


def _impression_of(sr: Dataset) -> LoadedImpression | None:
    """The DCM 121072 Impressions container NodeView writes."""
    container = _root_container(sr, codes.IMPRESSIONS)
    if container is None:
        return None
    category = driver = rule = management = fleischner = ""
    for concept, item in _children(container):
        if codes.same_code(concept, codes.EXAM_LUNG_RADS) and item.get("ConceptCodeSequence"):
            value = _as_code(item.ConceptCodeSequence[0])
            category = next((k for k, c in codes.LUNG_RADS_VALUES.items() if codes.same_code(value, c)), "")
        elif codes.same_code(concept, codes.DRIVING_FINDING):
            driver = str(item.get("TextValue", ""))
        elif codes.same_code(concept, codes.IMPRESSION):
            rule = str(item.get("TextValue", ""))
        elif codes.same_code(concept, codes.RECOMMENDATION):
            management = str(item.get("TextValue", ""))
        elif codes.same_code(concept, codes.FLEISCHNER):
            fleischner = str(item.get("TextValue", ""))
    return LoadedImpression(category, driver, rule, management, fleischner)


def _provenance(sr: Dataset) -> tuple[str, str]:
    """The algorithm (``name version``) and the device observer's name, the first each SR gives."""
    found: dict[str, str] = {}
    wanted = {
        "111001": "name",
        "111003": "version",
        "121012": "observer",
    }  # Algorithm Name/Version, Device Observer Name
    for item in _walk(sr):
        concept = item.get("ConceptNameCodeSequence")
        key = wanted.get(str(concept[0].CodeValue)) if concept else None
        if key and key not in found:
            found[key] = str(item.get("TextValue", ""))
            if len(found) == len(wanted):
                break
    algorithm = f"{found.get('name', '')} {found.get('version', '')}".strip()
    return algorithm, found.get("observer", "")


def _walk(ds: Dataset) -> Any:
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def sr_references_series(path: str | os.PathLike[str], series_uid: str) -> bool:
    """Whether the SR names ``series_uid`` in its evidence (or says nothing about it)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    listed = set()
    for seq in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in ds.get(seq, []):
            for series in study.get("ReferencedSeriesSequence", []):
                listed.add(str(series.get("SeriesInstanceUID", "")))
    return not listed or series_uid in listed


def labels_from_seg(path: str | os.PathLike[str], volume: Volume, for_uid: str) -> tuple[Labels, dict[int, str]]:
    """The SEG's segments as a label volume on ``volume``'s grid (frames placed by their
    ImagePositionPatient; a frame not on a volume slice is left out) and ``{segment: label}``."""
    seg = pydicom.dcmread(path)
    if str(seg.get("FrameOfReferenceUID", "")) != for_uid:
        raise InputError(f"{os.path.basename(path)} is in another frame of reference than the open series")
    if int(seg.Rows) != volume.shape_zyx[1] or int(seg.Columns) != volume.shape_zyx[2]:
        raise InputError(f"{os.path.basename(path)} is not on the open series' image grid")
    pixels = np.asarray(seg.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[None]
    n_segments = len(seg.get("SegmentSequence", []))
    labels: Labels = np.zeros(volume.shape_zyx, dtype=np.uint8 if n_segments < 256 else np.uint16)
    for n, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        index = volume.geometry.mm_to_index(position)
        k = int(np.rint(index[0]))
        if abs(index[0] - k) > 0.1 or np.abs(index[1:]).max() > 0.1 or not 0 <= k < volume.shape_zyx[0]:
            continue
        labels[k][(pixels[n] > 0) & (labels[k] == 0)] = number
    names = {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in seg.SegmentSequence}
    return labels, names


def loaded_result(reports: Sequence[LoadedReport]) -> tuple[Any, dict[int, str]]:
    """The findings of ``reports`` as a :class:`~nodeview.core.detect.detector.DetectionResult` the
    findings panel can show (threshold 0: every loaded finding is listed), numbered 1..n, and their
    review states ``{id: status}``. The "model" is named after the SR's algorithm and says "loaded"."""
    from ..detect.detector import DetectionResult, ModelInfo
    from ..detect.patches import PatchSpec

    findings: list[Finding] = []
    reviews: dict[int, str] = {}
    for report in reports:
        for lf in report.findings:
            f = lf.finding.with_id(len(findings) + 1)
            findings.append(f)
            reviews[f.id] = lf.review
    algorithm = next((r.algorithm for r in reports if r.algorithm), "") or "another tool"
    names = ", ".join(os.path.basename(r.path) for r in reports)
    metadata = {"loaded_from": names}
    summary = comparison_summary(reports)
    if summary:
        metadata["comparison"] = summary
    model = ModelInfo(
        path=names, name=f"loaded from SR ({algorithm})", version="-", sha256="", spec=PatchSpec(), threshold=0.0,
        metadata=metadata,
    )  # fmt: skip
    return DetectionResult(tuple(findings), len(findings), model, {}), reviews


def comparison_summary(reports: Sequence[LoadedReport]) -> str:
    """One line for the reader: what the SRs say about the comparison and the impression, e.g.
    "Compared with CT of 2025-03-02: 1 growing, 2 stable, 1 resolved. Lung-RADS v2022 (suggested):
    4B, Nodule 3." ("" when they carry neither)."""
    parts: list[str] = []
    for report in reports:
        if report.comparison is not None:
            counts: dict[str, int] = {}
            for lf in report.findings:
                if lf.change is not None:
                    counts[lf.change.change] = counts.get(lf.change.change, 0) + 1
            if report.comparison.resolved:
                counts["resolved"] = len(report.comparison.resolved)
            changes = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
            line = report.comparison.line.rstrip(".") or "Compared with a prior CT"
            parts.append(f"{line}: {changes or 'no findings'}.")
        if report.impression is not None and report.impression.category:
            driver = f", {report.impression.driving_tracking_id}" if report.impression.driving_tracking_id else ""
            parts.append(f"Lung-RADS v2022 (suggested): {report.impression.category}{driver}.")
    return " ".join(parts)


def read_back(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    volume: Volume,
    for_uid: str,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> tuple[list[LoadedReport], Labels | None, list[str]]:
    """Everything under ``paths`` that belongs on the open series: the SRs' findings (in its frame
    of reference), one label volume of the SEGs referencing it, and one line per object that could
    not be used (no patient data in them)."""
    found = find_derived_objects(paths, progress, should_stop)
    reports: list[LoadedReport] = []
    problems: list[str] = []
    for path in found.sr_paths:
        check_cancel(should_stop)
        try:
            report = findings_from_sr(path, for_uid)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if report.findings:
            reports.append(report)
    labels: Labels | None = None
    for path in found.seg_paths:
        check_cancel(should_stop)
        try:
            seg_labels, _ = labels_from_seg(path, volume, for_uid)
        except (InputError, ValueError, AttributeError, IndexError) as exc:
            problems.append(f"{os.path.basename(path)}: {exc}")
            continue
        labels = seg_labels if labels is None else np.where(labels > 0, labels, seg_labels)
    return reports, labels, problems


def frame_of_reference_uid(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], series_uid: str) -> str:
    """The FrameOfReferenceUID of the series ``series_uid`` under ``paths`` ("" when none is said)."""
    for path in iter_input_files(paths):
        try:
            ds = pydicom.dcmread(
                path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID", "FrameOfReferenceUID"]
            )
        except Exception:
            continue
        if str(ds.get("SeriesInstanceUID", "")) == series_uid and ds.get("FrameOfReferenceUID"):
            return str(ds.FrameOfReferenceUID)
    return ""
