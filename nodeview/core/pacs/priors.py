"""The prior study of a patient on a PACS (Qt-free).

:func:`find_prior_studies` asks the node for the patient's studies (study-level C-FIND, or QIDO-RS
for a :class:`~.dicomweb.DicomWebNode`, keyed by PatientID with StudyDate up to the day before the
current study) and keeps those that really are earlier studies of that patient: the same PatientID
(a PACS may match wildcards in the key, or match case-insensitively), an earlier StudyDate, another
StudyInstanceUID; newest first. The local-disk counterpart is
:func:`nodeview.core.followup.priors.find_local_priors`. Nothing here logs patient data (the
C-FIND/QIDO-RS log lines count matches only).

QIDO-RS key
    A QIDO-RS query travels in a URL, so a PatientID's spaces, carets, slashes, ``&`` or non-ASCII
    letters are percent-escaped, and Orthanc 1.10 with its DICOMweb plugin 1.7 then matches the
    escapes literally: ``PatientID=A%20B`` finds nothing for patient ``A B`` (seen on the test
    fixture's Orthanc). :func:`qido_patient_key` therefore writes each such character as the
    single-character wildcard ``?`` (a run of non-ASCII characters as ``*``: Orthanc's ``?`` matches
    one byte, not one UTF-8 letter), which any conformant server matches as well; the exact-ID
    filter above removes what the wider key lets in.
"""

from __future__ import annotations

import re
from datetime import timedelta

from ..followup.growth import parse_study_date
from .dicomweb import DicomWebNode
from .net import LocalAE, PacsNode, find_studies
from .records import StudyQuery, StudyRow

#: characters a URL query carries as themselves (RFC 3986 "unreserved"); the rest are escaped
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]")


def qido_patient_key(patient_id: str) -> str:
    """A QIDO-RS PatientID key that finds ``patient_id`` on any server (module docstring):
    URL-safe characters as themselves, every other ASCII character ``?``, a non-ASCII run ``*``."""
    out: list[str] = []
    for ch in patient_id.strip():
        if _URL_SAFE.fullmatch(ch):
            out.append(ch)
        elif ord(ch) < 128:
            out.append("?")
        elif not out or out[-1] != "*":
            out.append("*")
    return "".join(out)


def find_prior_studies(
    node: PacsNode | DicomWebNode,
    patient_id: str,
    current_study_uid: str,
    current_date: str,
    local: LocalAE | None = None,
    timeout_s: float = 10.0,
) -> list[StudyRow]:
    """Earlier studies of ``patient_id`` on ``node``, newest first; [] without an ID or a date."""
    day = parse_study_date(current_date)
    patient_id = patient_id.strip()  # LO: leading and trailing spaces are not significant
    if not patient_id or day is None:
        return []
    before = (day - timedelta(days=1)).strftime("%Y%m%d")
    key = qido_patient_key(patient_id) if isinstance(node, DicomWebNode) else patient_id
    query = StudyQuery(patient_id=key, study_date=f"-{before}")
    rows = find_studies(node, query, local or LocalAE(), timeout_s)
    out = []
    for r in rows:
        d = parse_study_date(r.date)
        if r.patient_id.strip() == patient_id and r.study_uid != current_study_uid and d is not None and d < day:
            out.append(r)
    return sorted(out, key=lambda r: (r.date, r.time), reverse=True)


__all__ = ["find_prior_studies", "qido_patient_key"]
