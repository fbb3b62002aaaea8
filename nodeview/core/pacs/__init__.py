"""DICOM networking (issue 23): echo, query, retrieve, send (DIMSE, or DICOMweb for a :class:`DicomWebNode`),
the study cache and the CAD node (Qt-free)."""

from __future__ import annotations

from .cache import StudyCache, default_cache_dir
from .dicomweb import DicomWebNode
from .net import (
    DATE_PRESETS,
    LocalAE,
    PacsNode,
    date_range,
    echo,
    find_series,
    find_studies,
    retrieve,
    send,
)
from .priors import find_prior_studies
from .records import (
    AssociationRejectedError,
    ConnectionRefusedPacsError,
    PacsError,
    PacsTimeoutError,
    RetrieveResult,
    SendResult,
    SeriesRow,
    StudyQuery,
    StudyRow,
)

__all__ = [
    "DATE_PRESETS",
    "AssociationRejectedError",
    "ConnectionRefusedPacsError",
    "DicomWebNode",
    "LocalAE",
    "PacsError",
    "PacsNode",
    "PacsTimeoutError",
    "RetrieveResult",
    "SendResult",
    "SeriesRow",
    "StudyCache",
    "StudyQuery",
    "StudyRow",
    "date_range",
    "default_cache_dir",
    "echo",
    "find_prior_studies",
    "find_series",
    "find_studies",
    "retrieve",
    "send",
]
