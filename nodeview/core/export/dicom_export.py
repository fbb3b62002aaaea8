"""DICOM export of a reviewed detection: TID 1500 SR, binary SEG, Secondary Capture report pages (Qt-free).

What is written (all in the source study: same StudyInstanceUID, each object a new series)
    * ``STEM_SR.dcm``: a Comprehensive 3D SR holding a TID 1500 Imaging Measurement Report. Each
      reported finding that the reader did not reject (score >= threshold, as in the PNG report) is
      a *planar* measurement group (TID 1410) with a tracking identifier ("Nodule N") and tracking
      UID, its centre as an SCOORD3D POINT in the CT's FrameOfReferenceUID, long axis, short axis
      and mean diameter (mm; a part-solid finding also the mean diameter of its solid component,
      99NODEVIEW NV0009), nodule score and malignancy score (NV0016), and qualitative
      evaluations nodule type, Lung-RADS v2022 hint, review status and how its size was measured.
      When the finding has a segmentation, a *volumetric* group (TID 1411) with the same tracking
      identifier and UID holds the volume (mm3) and references its segment in the SEG. Algorithm
      identification = the model's name and version (plus the re-ranker's); the observer is a
      device (NodeView and the model). Evidence = the CT series (and the SEG). After the
      measurements, a DCM 121072 "Impressions" container: the exam's Lung-RADS v2022 suggestion,
      the nodule that drives it, the rule and the management (:mod:`nodeview.core.followup.impression`).
      When a prior was compared (``comparison``), each finding also carries its change, the prior
      finding's size and the VDT, each prior-only finding is a "resolved" group located at the prior
      finding's centre (in the prior's frame of reference), and an LN 18834-2
      "Radiology Comparison study" container names the prior (date, Study/Series Instance UID);
      the prior's images are other evidence (:mod:`.followup_sr`).
    * ``STEM_SEG.dcm``: a binary DICOM Segmentation with one segment per segmented finding (same
      tracking identifier and UID as in the SR), the nodule segmentation NodeView measured the
      finding from (:func:`finding_mask`), in the source CT images' grid, referencing them. Empty
      frames are omitted.
    * ``STEM_SC-pK.dcm`` (optional): each PNG report page as a Secondary Capture image.

Rules
    Files are written atomically and exclusively: a temporary file in the target folder, then a
    hard link to the final name, which fails rather than replace an existing file; all targets are
    checked before anything is written. With ``anonymize`` the report's rules apply: patient name,
    ID, birth date and accession number are emptied (and other patient identifiers removed) in
    every object, and the study date stays, so the objects still belong to the study.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from ... import __version__
from ..detect.detector import DetectionResult, ModelInfo
from ..detect.findings import Finding, _touches_limit, segment_nodule
from ..detect.lung import LungMask, segment_lungs
from ..errors import InputError, NodeViewError
from ..followup.compare import Comparison, solid_diameter_mm
from ..followup.impression import build_impression
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..report.render import (
    ACCEPTED,
    REJECTED,
    UNREVIEWED,
    contains_patient_data,
    default_stem,
    review_of,
    select_findings,
)
from ..volume import Volume
from . import codes, followup_sr
from .source import SourceSeries

MANUFACTURER = "NodeView"
SERIES_NUMBERS = {"SR": 9701, "SEG": 9702, "SC": 9703}
#: attributes emptied (type 2) or removed (the rest) by ``anonymize``
_EMPTIED = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber")
_REMOVED = (
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "PatientAddress", "PatientTelephoneNumbers", "MilitaryRank", "EthnicGroup", "PatientComments", "IssuerOfPatientID",
    "MedicalRecordLocator", "PatientBirthTime", "ReferringPhysicianName", "RequestingPhysician", "OperatorsName",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "InstitutionName", "InstitutionAddress",
)  # fmt: skip


class DicomExportExistsError(InputError):
    """A file the export would write already exists (exports never replace files)."""


class DicomExportError(NodeViewError):
    """The objects could not be built or written."""


@dataclass(frozen=True)
class ExportedFinding:
    """One finding as exported: its tracking identifier/UID and segment number (0: none)."""

    finding_id: int
    tracking_id: str
    tracking_uid: str
    segment_number: int
    review: str


@dataclass(frozen=True)
class DicomExport:
    """What :func:`export_dicom` wrote."""

    sr_path: Path
    seg_path: Path | None
    sc_paths: tuple[Path, ...]
    findings: tuple[ExportedFinding, ...]
    study_uid: str
    notes: tuple[str, ...] = ()

    @property
    def paths(self) -> list[Path]:
        return [self.sr_path, *([self.seg_path] if self.seg_path else []), *self.sc_paths]


# ---- masks ---------------------------------------------------------------------------------------
def finding_mask(
    volume: Volume, lung: LungMask, finding: Finding
) -> tuple[NDArray[np.bool_], tuple[slice, slice, slice]] | None:
    """The nodule segmentation the finding was measured from (its ``voxels``; for a finding without
    them, the region-growing loop of :func:`nodeview.core.detect.findings.segment_nodule` at its
    centre), as a mask and its box in the volume; None when the finding was not segmented (its
    sizes are the model's estimate)."""
    if not finding.measured:
        return None
    if finding.voxels is not None and len(finding.voxels) and volume.hu_zyx.size > int(finding.voxels[-1]):
        # the lesion's own voxels (one finding per lesion: the union of its candidates' masks)
        idx = np.stack(np.unravel_index(finding.voxels, volume.shape_zyx), axis=1)
        lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
        lesion = np.zeros(tuple(int(v) for v in hi - lo), dtype=bool)
        lesion[tuple((idx - lo).T)] = True
        return lesion, tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]
    diameter = float(np.clip(finding.model_diameter_mm, 3.0, 40.0))
    mask, box = segment_nodule(volume, finding.center_xyz_mm, diameter, lung)
    for _ in range(2):
        if not mask.any() or diameter >= 40.0 or not _touches_limit(mask, box, volume, finding.center_xyz_mm, diameter):
            break
        diameter = min(40.0, diameter * 1.6)
        mask, box = segment_nodule(volume, finding.center_xyz_mm, diameter, lung)
    return (mask, box) if mask.any() else None


# ---- names and files -----------------------------------------------------------------------------
def export_stem(volume: Volume) -> str:
    """``nodeview-dicom_<date>_<description>_<hash>`` (no patient data, as :func:`report.default_stem`)."""
    return default_stem(volume).replace("nodeview-report_", "nodeview-dicom_", 1)


def export_paths(out_dir: str | os.PathLike[str], stem: str, n_pages: int = 0) -> list[Path]:
    folder = Path(out_dir)
    return [folder / f"{stem}_SR.dcm", folder / f"{stem}_SEG.dcm"] + [
        folder / f"{stem}_SC-p{k}.dcm" for k in range(1, n_pages + 1)
    ]


def write_exclusive(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then hard-link it to ``path``:
    atomic, and it fails with :class:`FileExistsError` rather than replace an existing file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def encode(ds: Dataset) -> bytes:
    """A dataset as DICOM file bytes (preamble and file meta included)."""
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# ---- identity ------------------------------------------------------------------------------------
def anonymized_copy(ds: Dataset) -> Dataset:
    """A copy of a source header with the report's anonymization applied (study UID and date kept)."""
    out = Dataset()
    out.update(ds)
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta
    for keyword in _EMPTIED:
        if keyword in out:
            setattr(out, keyword, "")
    for keyword in _REMOVED:
        if keyword in out:
            delattr(out, keyword)
    return out


def _uid() -> str:
    """A fresh UID (two exports never share one)."""
    return str(hd.UID())


def algorithm_name_version(model: ModelInfo) -> tuple[str, str]:
    """The model's name and version (with the re-ranker's), as the algorithm identification."""
    name = model.name if model.reranker is None else f"{model.name} + {model.reranker.name}"
    version = model.version if model.reranker is None else f"{model.version} + {model.reranker.version}"
    return name[:64], version[:64]


def _algorithm(model: ModelInfo) -> hd.sr.AlgorithmIdentification:
    name, version = algorithm_name_version(model)
    return hd.sr.AlgorithmIdentification(name=name, version=version)


# ---- SEG -----------------------------------------------------------------------------------------
def build_seg(
    source: SourceSeries,
    volume: Volume,
    masks: Sequence[tuple[ExportedFinding, NDArray[np.bool_], tuple[slice, slice, slice]]],
    model: ModelInfo,
    datasets: Sequence[Dataset],
) -> hd.seg.Segmentation:
    """A binary SEG, one segment per mask (later findings do not overwrite earlier ones)."""
    shape = (len(datasets), *volume.shape_zyx[1:])
    labels = np.zeros(shape, dtype=np.uint8 if len(masks) < 256 else np.uint16)
    row_of_slice = {k: n for n, k in enumerate(source.slice_index)}
    for exp, mask, box in masks:
        for dk in range(mask.shape[0]):
            n = row_of_slice.get(box[0].start + dk)
            if n is None:
                continue
            frame = labels[n, box[1], box[2]]
            frame[(mask[dk]) & (frame == 0)] = exp.segment_number
    name, version = algorithm_name_version(model)
    algo = hd.AlgorithmIdentificationSequence(name=name, family=codes.ALGORITHM_FAMILY, version=version)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=exp.segment_number,
            segment_label=exp.tracking_id,
            segmented_property_category=codes.ABNORMAL_STRUCTURE,
            segmented_property_type=codes.NODULE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
            tracking_uid=exp.tracking_uid,
            tracking_id=exp.tracking_id,
            anatomic_regions=[codes.LUNG],
        )
        for exp, _, _ in masks
    ]
    return hd.seg.Segmentation(
        source_images=list(datasets),
        pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=_uid(),
        series_number=SERIES_NUMBERS["SEG"],
        sop_instance_uid=_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=f"NodeView {model.name}"[:64],
        software_versions=f"nodeview {__version__}",
        device_serial_number="0",
        series_description="NodeView nodule segmentation (research use only)",
        content_label="NODULES",
        content_description="NodeView nodules - research use only",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        omit_empty_frames=True,
    )


# ---- SR ------------------------------------------------------------------------------------------
def _measurement(name: Any, value: float, unit: Any, algo: hd.sr.AlgorithmIdentification) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, algorithm_id=algo)


def build_sr(
    datasets: Sequence[Dataset],
    source: SourceSeries,
    exported: Sequence[tuple[ExportedFinding, Finding]],
    model: ModelInfo,
    seg: hd.seg.Segmentation | None,
    threshold: float,
    comparison: Comparison | None = None,
    prior_datasets: Sequence[Dataset] = (),
) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 SR (module docstring); with ``comparison`` it carries the change of each finding,
    the prior-only findings and the comparison study (:mod:`.followup_sr`); ``prior_datasets``
    (the prior's image headers, when at hand) are referenced as other evidence."""
    algo = _algorithm(model)
    name, version = algorithm_name_version(model)
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=hd.UID(),
        name=f"NodeView {__version__}",
        manufacturer_name=MANUFACTURER,
        model_name=f"{name} {version}"[:64],
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DEVICE, observer_identifying_attributes=device
        )
    )
    groups: list[Any] = []
    for exp, f in exported:
        tracking = hd.sr.TrackingIdentifier(uid=exp.tracking_uid, identifier=exp.tracking_id)
        point = hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POINT,
            graphic_data=np.asarray([f.center_xyz_mm], dtype=np.float64),
            frame_of_reference_uid=source.frame_of_reference_uid,
        )
        measurements = [
            _measurement(codes.LONG_AXIS, f.long_axis_mm, codes.MM, algo),
            _measurement(codes.SHORT_AXIS, f.short_axis_mm, codes.MM, algo),
            _measurement(codes.DIAMETER, f.diameter_mm, codes.MM, algo),
            _measurement(codes.NODULE_SCORE, f.score, codes.NO_UNITS, algo),
            _measurement(codes.MALIGNANCY, f.malignancy, codes.NO_UNITS, algo),
        ]
        if f.type == "part-solid":  # what Lung-RADS sizes a part-solid nodule by (and a follow-up compares)
            measurements.append(_measurement(codes.SOLID_DIAMETER, solid_diameter_mm(f), codes.MM, algo))
        evaluations = [
            hd.sr.QualitativeEvaluation(
                codes.NODULE_TYPE, codes.NODULE_TYPES.get(f.type, codes.NODULE_TYPES["unmeasured"])
            ),
            hd.sr.QualitativeEvaluation(codes.REVIEW, codes.REVIEW_STATES[exp.review]),
            hd.sr.QualitativeEvaluation(
                codes.MEASURED_BY, codes.MEASUREMENTS["segmentation" if f.measured else "model estimate"]
            ),
        ]
        if f.lung_rads in codes.LUNG_RADS_VALUES:
            evaluations.append(hd.sr.QualitativeEvaluation(codes.LUNG_RADS, codes.LUNG_RADS_VALUES[f.lung_rads]))
        texts: list[Any] = []
        if comparison is not None:
            more, more_evals, texts = followup_sr.finding_items(f, comparison.changes.get(f.id), comparison, algo)
            measurements += more
            evaluations += more_evals
        site = [hd.sr.FindingSite(anatomic_location=codes.LUNG)]
        planar = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_region=point,
            finding_type=codes.NODULE,
            finding_category=codes.ABNORMAL_STRUCTURE,
            algorithm_id=algo,
            finding_sites=site,
            measurements=measurements,
            qualitative_evaluations=evaluations,
        )
        followup_sr.add_items(planar, texts)
        groups.append(planar)
        if seg is not None and exp.segment_number:
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(uid=exp.tracking_uid, identifier=exp.tracking_id),
                    referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, exp.segment_number),
                    finding_type=codes.NODULE,
                    finding_category=codes.ABNORMAL_STRUCTURE,
                    algorithm_id=algo,
                    finding_sites=site,
                    measurements=[_measurement(codes.VOLUME, f.volume_mm3, codes.MM3, algo)],
                )
            )
    # a summary group (TID 1501): how many findings were reported at which threshold; with no finding
    # it is what says that the detector ran and found none (TID 1500 needs at least one group)
    groups.append(
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="NodeView summary"),
            finding_type=codes.SUMMARY_FINDING,
            algorithm_id=algo,
            finding_sites=[hd.sr.FindingSite(anatomic_location=codes.LUNG)],
            measurements=[
                _measurement(codes.FINDING_COUNT, len(exported), codes.FINDINGS_UNIT, algo),
                _measurement(codes.OPERATING_THRESHOLD, threshold, codes.NO_UNITS, algo),
            ],
        )
    )
    if comparison is not None:
        prior_for = str(prior_datasets[0].get("FrameOfReferenceUID", "")) if prior_datasets else ""
        groups += followup_sr.resolved_groups(
            comparison, algo, source.frame_of_reference_uid, prior_for or comparison.prior_frame_of_reference_uid
        )
    report = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=codes.PROCEDURE, imaging_measurements=groups
    )
    # the comparison study and the impression follow the imaging measurements at the root
    prior_study = str(prior_datasets[0].StudyInstanceUID) if prior_datasets else ""
    if comparison is not None:
        named = prior_study or comparison.prior_study_uid  # without the prior's images, e.g. from its SR
        report[0].ContentSequence.append(followup_sr.comparison_container(comparison, named))
    impression = build_impression([f for _, f in exported], comparison)  # the reported, not rejected, findings
    tracking_ids = {exp.finding_id: exp.tracking_id for exp, _ in exported}
    report[0].ContentSequence.append(followup_sr.impression_container(impression, tracking_ids))
    evidence: list[Dataset] = list(datasets) + ([seg] if seg is not None else [])
    if prior_study and prior_study != str(datasets[0].StudyInstanceUID):
        evidence += list(prior_datasets)  # highdicom lists another study's images as other evidence
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=_uid(),
        series_number=SERIES_NUMBERS["SR"],
        sop_instance_uid=_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="NodeView CAD findings (research use only)",
    )
    scheme = Dataset()
    scheme.CodingSchemeDesignator = codes.SCHEME
    scheme.CodingSchemeName = codes.SCHEME_NAME
    scheme.CodingSchemeResponsibleOrganization = "NodeView"
    sr.CodingSchemeIdentificationSequence = DicomSequence([scheme])  # type: ignore[assignment]
    return sr


# ---- Secondary Capture ---------------------------------------------------------------------------
def build_secondary_captures(ref: Dataset, pages: Sequence[Any]) -> list[Dataset]:
    """One Secondary Capture image (RGB) per PNG report page (``ReportPage`` objects)."""
    series_uid = _uid()
    out: list[Dataset] = []
    for n, page in enumerate(pages, start=1):
        rgb = np.asarray(page.image.convert("RGB"), dtype=np.uint8)
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ref,
            pixel_array=rgb,
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBERS["SC"],
            sop_instance_uid=_uid(),
            instance_number=n,
            manufacturer=MANUFACTURER,
            patient_orientation=("L", "F"),  # required by highdicom for PATIENT; emptied below: a page has none
            series_description="NodeView report (research use only)",
            transfer_syntax_uid=JPEGLSLossless,
        )
        sc.PatientOrientation = ""  # type: ignore[assignment]
        sc.Laterality = ""  # type 2C: the report is of no one side
        out.append(sc)
    return out


# ---- the export ----------------------------------------------------------------------------------
def export_dicom(
    out_dir: str | os.PathLike[str],
    volume: Volume,
    result: DetectionResult,
    reviews: Mapping[int, str],
    threshold: float,
    source: SourceSeries,
    *,
    anonymize: bool = False,
    secondary_capture: bool = False,
    stem: str | None = None,
    created: datetime | None = None,
    comparison: Comparison | None = None,
    prior_source: SourceSeries | None = None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> DicomExport:
    """Write the SR (always), the SEG (when a reported finding was segmented and the source grid
    allows it) and, with ``secondary_capture``, the report pages; see the module docstring.

    Args:
        out_dir: folder (created if missing).
        volume, result: the study on screen and its detection.
        reviews: finding id -> review status (the findings panel's; missing = unreviewed).
        threshold: the operating threshold (nodule score) the reader chose.
        source: the CT images' headers (:func:`.source.read_source_series`).
        anonymize: the report's anonymization rules.
        comparison: the comparison with a prior study, made for these reported findings; the SR
            then carries it (:mod:`.followup_sr`).
        prior_source: the prior's image headers: its Study Instance UID goes into the comparison
            container and its images into the SR's PertinentOtherEvidenceSequence.
    """
    stem = stem or export_stem(volume)
    created = created or datetime.now().astimezone()
    if Path(stem).name != stem or not re.fullmatch(r"[\w.\-]+", stem):
        raise InputError(f"export name {stem!r} must be a plain file name")
    if anonymize and contains_patient_data(stem, volume):
        raise InputError("the export name contains patient data; choose another name for an anonymized export")
    keyed, _rejected = select_findings(result.findings, reviews, threshold)
    datasets = [anonymized_copy(ds) for ds in source.datasets] if anonymize else list(source.datasets)
    progress(5, 100)
    pages: list[Any] = []
    if secondary_capture:
        from ..report.render import render_report

        pages = render_report(
            volume, result.findings, reviews, result.model, threshold, anonymize=anonymize, created=created,
            n_candidates=result.n_candidates, caveats=result.caveats, should_stop=should_stop,
        )  # fmt: skip
    targets = export_paths(out_dir, stem, len(pages))
    existing = [p for p in targets if p.exists()]
    if existing:
        raise DicomExportExistsError(
            f"{existing[0].name} already exists in {existing[0].parent}: DICOM exports never replace files"
        )
    check_cancel(should_stop)
    progress(20, 100)
    lung = segment_lungs(volume.hu_zyx, volume.geometry) if any(f.measured for f in keyed) else None
    exported: list[tuple[ExportedFinding, Finding]] = []
    masks: list[tuple[ExportedFinding, NDArray[np.bool_], tuple[slice, slice, slice]]] = []
    notes: list[str] = []
    segment = 0
    for f in keyed:
        check_cancel(should_stop)
        found = finding_mask(volume, lung, f) if (lung is not None and source.grid_matches) else None
        if found is not None:
            segment += 1
        exp = ExportedFinding(
            f.id, f"Nodule {f.id}", _uid(), segment if found is not None else 0, _review(reviews, f.id)
        )
        exported.append((exp, f))
        if found is not None:
            masks.append((exp, *found))
    if not source.grid_matches and keyed:
        notes.append("no SEG: the source images are not the volume's slices one to one (resampled or multi-frame)")
    progress(50, 100)
    try:
        seg = build_seg(source, volume, masks, result.model, datasets) if masks else None
        progress(70, 100)
        prior_datasets: list[Dataset] = []
        if comparison is not None and prior_source is not None:
            prior_datasets = [anonymized_copy(d) if anonymize else d for d in prior_source.datasets]
        sr = build_sr(datasets, source, exported, result.model, seg, threshold, comparison, prior_datasets)
        scs = build_secondary_captures(datasets[0], pages) if pages else []
    except (ValueError, TypeError) as exc:
        raise DicomExportError(f"the DICOM objects could not be built: {exc}") from exc
    progress(85, 100)
    objects: list[tuple[Path, Dataset]] = [(targets[0], sr)]
    if seg is not None:
        objects.append((targets[1], seg))
    objects += list(zip(targets[2:], scs, strict=True))
    folder = Path(out_dir)
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, ds in objects:
            write_exclusive(path, encode(ds))
            written.append(path)
    except FileExistsError as exc:
        _remove(written)
        raise DicomExportExistsError(f"{Path(exc.filename or '').name} appeared in {folder} while exporting") from exc
    except OSError as exc:
        _remove(written)
        raise DicomExportError(f"cannot write DICOM files to {folder}: {exc.strerror or exc}") from exc
    progress(100, 100)
    return DicomExport(
        targets[0],
        targets[1] if seg is not None else None,
        tuple(targets[2:]),
        tuple(e for e, _ in exported),
        str(datasets[0].StudyInstanceUID),
        tuple(notes),
    )


def _review(reviews: Mapping[int, str], finding_id: int) -> str:
    status = review_of(reviews, finding_id)
    return status if status in (ACCEPTED, UNREVIEWED, REJECTED) else UNREVIEWED


def _remove(paths: Sequence[Path]) -> None:
    """Undo a partial export (files this call created, nothing else)."""
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()
