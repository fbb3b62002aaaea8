"""Keeping patient data out of what NodeView prints, logs and names files after.

One rule, used by the report (file names, the header's series line), ``nodeview info`` and the
caveats of a detection: a free-text value (a SeriesDescription, a loader warning that names a
file) that contains the patient's name (or one of its parts), ID, birth date or accession
number is redacted. Matching is case-insensitive, on values and parts of at least 3 characters.
"""

from __future__ import annotations

import re
from typing import Protocol


class PatientInfo(Protocol):
    """What redaction needs of a patient (:class:`nodeview.core.volume.PatientInfo` has it); a
    protocol, so this module does not import the volume module that calls it."""

    @property
    def name(self) -> str: ...

    def identifying_strings(self) -> tuple[str, ...]: ...

#: What a redacted free-text value is replaced by.
REDACTED = "(redacted)"


def format_date(value: str) -> str:
    """``YYYYMMDD`` as ``YYYY-MM-DD``; anything else unchanged."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if re.fullmatch(r"\d{8}", value or "") else value


def format_name(value: str) -> str:
    """DICOM person name ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX`` (alphabetic group) as ``FAMILY, Given Middle``."""
    parts = [p.strip() for p in (value or "").split("=")[0].split("^")]
    family, given = parts[0], " ".join(p for p in parts[1:3] if p)
    return f"{family}, {given}" if family and given else family or given


def identifying_tokens(patient: PatientInfo) -> list[str]:
    """Patient strings and their parts (name components, formatted dates), lower case, >= 3 chars,
    longest first."""
    tokens: set[str] = set()
    for value in patient.identifying_strings():
        tokens.add(value)
        tokens.update(re.split(r"[\^=\s,]+", value))
        tokens.add(format_date(value))
    tokens.add(format_name(patient.name))
    return sorted({t.strip().lower() for t in tokens if len(t.strip()) >= 3}, key=len, reverse=True)


def contains_patient_text(text: str, patient: PatientInfo) -> bool:
    """True when ``text`` contains one of the patient's identifying strings (or a part of one)."""
    low = (text or "").lower()
    return any(token in low for token in identifying_tokens(patient))


def redact(text: str, patient: PatientInfo) -> str:
    """``text``, or :data:`REDACTED` when it contains patient data."""
    return REDACTED if contains_patient_text(text, patient) else text


def scrub(text: str, patient: PatientInfo) -> str:
    """``text`` with every identifying string (or part of one) replaced by ``[redacted]``: for
    messages worth keeping, such as a loader warning that names a file."""
    if not contains_patient_text(text, patient):
        return text
    for token in identifying_tokens(patient):  # longest first
        text = re.sub(re.escape(token), "[redacted]", text, flags=re.IGNORECASE)
    return text


__all__ = [
    "REDACTED",
    "contains_patient_text",
    "format_date",
    "format_name",
    "identifying_tokens",
    "redact",
    "scrub",
]
