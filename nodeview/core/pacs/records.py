"""What the PACS clients (DIMSE in :mod:`.net`, DICOMweb in :mod:`.dicomweb`) share: errors, query
keys, result rows, and how a received instance is written to the cache (Qt-free)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from ..errors import NodeViewError


class PacsError(NodeViewError):
    """A PACS operation failed; the message says why, in one line."""


class ConnectionRefusedPacsError(PacsError):
    pass


class PacsTimeoutError(PacsError):
    pass


class AssociationRejectedError(PacsError):
    pass


@dataclass(frozen=True)
class StudyQuery:
    """Study-level C-FIND keys; empty = any. Names may use * and ? wildcards."""

    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""  # DICOM range, see date_range
    modality: str = ""
    accession_number: str = ""
    description: str = ""


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    date: str
    time: str
    description: str
    modalities: tuple[str, ...]
    n_series: int | None
    n_images: int | None
    patient_name: str = field(repr=False, default="")
    patient_id: str = field(repr=False, default="")
    accession_number: str = field(repr=False, default="")


@dataclass(frozen=True)
class SeriesRow:
    study_uid: str
    series_uid: str
    modality: str
    number: int | None
    description: str
    n_images: int | None


@dataclass(frozen=True)
class RetrieveResult:
    folder: Path
    n_received: int
    n_failed: int
    method: str  # "C-GET" or "C-MOVE"


def instance_path(folder: Path, ds: Dataset) -> Path:
    """Where a received instance is written: ``folder/<series UID>/<SOP instance UID>.dcm`` (UIDs only)."""
    series = re.sub(r"[^0-9.]", "_", str(ds.get("SeriesInstanceUID", "unknown")))
    sop = re.sub(r"[^0-9.]", "_", str(ds.SOPInstanceUID))
    return folder / series / f"{sop}.dcm"


def write_received(folder: Path, ds: Dataset, file_meta: Any) -> Path:
    """Write one received instance atomically (temporary file, fsync, rename); a copy already there
    is replaced by the same instance (same SOP Instance UID)."""
    path = instance_path(folder, ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    ds.file_meta = file_meta
    try:
        ds.save_as(tmp, enforce_file_format=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


@dataclass(frozen=True)
class SendResult:
    n_sent: int
    failed: tuple[str, ...]  # file names (never patient data) with the reason
