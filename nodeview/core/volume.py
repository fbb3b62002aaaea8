"""The CT volume NodeView works on: int16 Hounsfield units on a :class:`Geometry` grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .geometry import Geometry


@dataclass(frozen=True)
class PatientInfo:
    """Identifying data. Kept for the report header; never logged, never shown in ``repr``."""

    name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_description: str = ""
    #: identifying values of other files found with this series (another spelling, a damaged
    #: header): redaction covers them too
    other_identifiers: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return "PatientInfo(<redacted>)"

    __str__ = __repr__

    def identifying_strings(self) -> tuple[str, ...]:
        """Every non-empty identifying value, for anonymization checks."""
        own = (self.name, self.patient_id, self.birth_date, self.accession_number)
        return tuple(dict.fromkeys(v for v in (*own, *self.other_identifiers) if v))


@dataclass(frozen=True, eq=False)
class Volume:
    """A loaded CT series.

    Args:
        hu_zyx: int16 Hounsfield units, shape ``geometry.shape_zyx`` (see :mod:`.geometry`).
        geometry: where the grid sits in patient space (LPS mm).
        modality: DICOM Modality ("CT", "MR", ...) or "" when unknown.
        description: SeriesDescription (or the file name for non-DICOM formats).
        series_uid: SeriesInstanceUID ("" for non-DICOM formats).
        patient_position: DICOM PatientPosition (HFS, FFS, ...) or "" when unknown.
        source_format: "dicom", "dicom-multiframe", "metaimage", "nifti", "nrrd".
        warnings: what the loader noticed and how it dealt with it, one sentence each.
        interpolated_slices: k indices filled by interpolation (gaps or uneven spacing).
        slice_thickness_mm: nominal SliceThickness, when known.
        patient: identifying data (never logged).
    """

    hu_zyx: NDArray[np.int16]
    geometry: Geometry
    modality: str = "CT"
    description: str = ""
    series_uid: str = ""
    patient_position: str = ""
    source_format: str = "dicom"
    warnings: tuple[str, ...] = ()
    interpolated_slices: tuple[int, ...] = ()
    slice_thickness_mm: float | None = None
    patient: PatientInfo = field(default_factory=PatientInfo)

    def __post_init__(self) -> None:
        if self.hu_zyx.dtype != np.int16:
            raise TypeError(f"hu_zyx must be int16, got {self.hu_zyx.dtype}")
        if tuple(self.hu_zyx.shape) != self.geometry.shape_zyx:
            raise ValueError(f"array shape {self.hu_zyx.shape} != geometry {self.geometry.shape_zyx}")

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.geometry.shape_zyx

    @property
    def spacing_zyx(self) -> NDArray[np.float64]:
        return self.geometry.spacing_zyx

    def hu_at_mm(self, point_xyz: NDArray[np.float64] | tuple[float, float, float]) -> int:
        """HU of the voxel nearest to an LPS point (raises ``IndexError`` outside)."""
        k, j, i = self.geometry.mm_to_voxel(point_xyz)
        return int(self.hu_zyx[k, j, i])

    def summary(self) -> dict[str, object]:
        """Non-identifying description, safe to log or print: a description or warning that
        contains patient data is redacted (:mod:`.privacy`)."""
        from .privacy import redact, scrub

        return {
            "series_uid": self.series_uid,
            "modality": redact(self.modality, self.patient),
            "description": redact(self.description, self.patient),
            "patient_position": redact(self.patient_position, self.patient),
            "source_format": self.source_format,
            "slice_thickness_mm": self.slice_thickness_mm,
            **self.geometry.to_dict(),
            "hu_range": [int(self.hu_zyx.min()), int(self.hu_zyx.max())] if self.hu_zyx.size else None,
            "interpolated_slices": list(self.interpolated_slices),
            "warnings": [scrub(w, self.patient) for w in self.warnings],
        }
