"""DICOM export and read-back (issue 23): TID 1500 SR, SEG and Secondary Capture (Qt-free)."""

from __future__ import annotations

from .dicom_export import DicomExport, DicomExportError, DicomExportExistsError, ExportedFinding, export_dicom
from .source import NotExportableError, SourceSeries, read_source_series

__all__ = [
    "DicomExport",
    "DicomExportError",
    "DicomExportExistsError",
    "ExportedFinding",
    "NotExportableError",
    "SourceSeries",
    "export_dicom",
    "read_source_series",
]
