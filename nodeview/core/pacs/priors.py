"""The prior study of a patient on a PACS (Qt-free).

:func:`find_prior_studies` asks the node for the patient's studies (study-level C-FIND, or QIDO-RS
for a :class:`~.dicomweb.DicomWebNode`, keyed by PatientID with StudyDate up to the day before the
current study) and keeps those that really are earlier studies of that patient: the same PatientID
(a PACS may match wildcards in the key, or ignore case: Orthanc does), an earlier StudyDate,
another StudyInstanceUID; newest first. Over QIDO-RS an ID with characters a URL escapes (a space,
``^``, ``/``, a non-ASCII letter) is sent as a key Orthanc matches too (:func:`.dicomweb.qido_key`).
The local-disk counterpart is :func:`nodeview.core.followup.priors.find_local_priors`. Nothing here
logs patient data (the C-FIND/QIDO-RS log lines count matches only).
"""

from __future__ import annotations

from datetime import timedelta

from ..followup.growth import parse_study_date
from .dicomweb import DicomWebNode
from .net import LocalAE, PacsNode, find_studies
from .records import StudyQuery, StudyRow


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
    query = StudyQuery(patient_id=patient_id, study_date=f"-{before}")
    rows = find_studies(node, query, local or LocalAE(), timeout_s)
    out = []
    for r in rows:
        d = parse_study_date(r.date)
        if r.patient_id.strip() == patient_id and r.study_uid != current_study_uid and d is not None and d < day:
            out.append(r)
    return sorted(out, key=lambda r: (r.date, r.time), reverse=True)


__all__ = ["find_prior_studies"]
