"""A prior study's findings from NodeView's own DICOM SR, for a follow-up comparison (Qt-free).

``nodeview detect CURRENT --prior-json PRIOR`` takes the prior's findings JSON or, read here, the
SR NodeView wrote for the prior (:mod:`.dicom_export`): a Comprehensive 3D SR whose Manufacturer is
NodeView, holding a TID 1500 report. :func:`read_prior_findings` tells the two apart by the DICOM
preamble ("DICM" at byte 128) and returns the same :class:`~nodeview.core.followup.findings_doc.
FindingsFile` either way:

* the findings: the SR's planar groups (centre, axes, mean diameter, type, solid component, score,
  malignancy score, how they were measured, the volume from the volumetric group with the
  same tracking UID) in the frame of reference they are written in, with the ids the prior's
  report gave them ("Nodule 7" is finding 7, so the comparison names them as the prior did); a
  group the reader rejected is left out, and the comparison's own groups (a prior-only finding
  of an SR that was itself a follow-up) are not findings of that study;
* none below the threshold: the SR lists only the reported findings;
* the study date and Study Instance UID (the SR belongs to the prior's study), the series of the
  CT images it references, the operating threshold its summary group states, and its frame of
  reference (so the follow-up SR can name the prior study and place the resolved findings there).

Anything else is refused with one line (:class:`~nodeview.core.errors.InputError`): a DICOM object
that is no structured report, an SR of another class (a Comprehensive SR has no 3D points), an SR
another tool wrote, or one that is not a TID 1500 report.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pydicom
from pydicom.uid import UID

from ..errors import InputError
from ..followup.findings_doc import SCHEMA, FindingsFile, finding_entry, read_findings
from ..followup.growth import iso_date
from .dicom_export import MANUFACTURER
from .readback import SEG_CLASS, SR_CLASSES, findings_from_sr

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
_NODULE = re.compile(r"Nodule (\d+)")


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts like a DICOM Part 10 file (128-byte preamble, then "DICM")."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_prior_findings(path: str | os.PathLike[str]) -> FindingsFile:
    """The prior's findings from its findings JSON (``/1`` or ``/2``) or its NodeView DICOM SR."""
    return prior_findings_from_sr(path) if is_dicom_file(path) else read_findings(path)


def _sop_name(sop: str) -> str:
    name = UID(sop).name if sop else ""
    return name if name and name != sop else f"SOP class {sop or 'unknown'}"


def _check(ds: Any, name: str) -> None:
    sop = str(ds.get("SOPClassUID", ""))
    what = "--prior-json takes the prior's findings JSON or the DICOM SR NodeView wrote for it"
    if sop not in SR_CLASSES:
        raise InputError(f"{name} is a {_sop_name(sop)} object, not a structured report: {what}")
    if sop != COMPREHENSIVE_3D_SR:
        raise InputError(
            f"{name} is a {_sop_name(sop)}, not a Comprehensive 3D SR (NodeView writes its findings as 3D "
            f"points in one): {what}"
        )
    maker = str(ds.get("Manufacturer", "")).strip()
    if maker != MANUFACTURER:
        raise InputError(f"{name} was written by {maker or 'an unnamed manufacturer'}, not by NodeView: {what}")


def _image_series(ds: Any) -> str:
    """The series of the images the SR was made from (its evidence, not the SEG)."""
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.get("ReferencedSeriesSequence", []):
            classes = {str(r.get("ReferencedSOPClassUID", "")) for r in series.get("ReferencedSOPSequence", [])}
            if classes and SEG_CLASS not in classes:
                return str(series.get("SeriesInstanceUID", ""))
    return ""


def prior_findings_from_sr(path: str | os.PathLike[str]) -> FindingsFile:
    """The prior's findings from the NodeView SR at ``path`` (module docstring)."""
    name = os.path.basename(os.fspath(path))
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:
        raise InputError(f"{name} is not a readable DICOM file ({type(exc).__name__})") from exc
    _check(ds, name)
    report = findings_from_sr(path, None)
    kept = [lf for lf in report.findings if lf.review != "rejected"]
    ids = [_NODULE.fullmatch(lf.tracking_id) for lf in kept]
    numbers = [int(m.group(1)) for m in ids if m is not None]
    if len(numbers) == len(kept) and len(set(numbers)) == len(numbers):
        findings = [lf.finding.with_id(n) for lf, n in zip(kept, numbers, strict=True)]
    else:  # not named as NodeView names them: numbered in order
        findings = [lf.finding.with_id(n + 1) for n, lf in enumerate(kept)]
    date = str(ds.get("StudyDate", "")) or None
    series_uid = _image_series(ds)
    threshold = report.threshold if report.threshold is not None else 0.0
    document = {
        "schema": SCHEMA,
        "source": "dicom sr",
        "study": {"series_uid": series_uid, "study_date": iso_date(date)},
        "threshold": threshold,
        "findings": [finding_entry(f, None) for f in findings],
    }
    return FindingsFile(
        tuple(findings),
        (),
        date,
        series_uid,
        threshold,
        document,
        source="dicom sr",
        frame_of_reference_uid=report.frame_of_reference_uid,
        study_uid=str(ds.get("StudyInstanceUID", "")),
    )


__all__ = ["COMPREHENSIVE_3D_SR", "is_dicom_file", "prior_findings_from_sr", "read_prior_findings"]
