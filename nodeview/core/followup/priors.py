"""Finding the prior study of a patient beside the current one (Qt-free).

:func:`find_local_priors` searches the folder that holds the current study (its parent) and, when
that holds no prior, the folder above (a patient folder with one sub-folder per study and one per
series is the usual layout, e.g. what a PACS retrieve or a CD export gives) for CT series of the
**same PatientID** with an **earlier StudyDate**; they are offered newest first, one per study
date (that date's series with the most images). The PACS counterpart is
:func:`nodeview.core.pacs.priors.find_prior_studies`.

Rules
    * No PatientID or no StudyDate on the current study: nothing is offered (a prior is never
      guessed from names or folders).
    * The search reads headers only and stops at :data:`MAX_FILES` files (a parent folder holding a
      whole archive is not searched: the current study's own paths are, then).
    * Nothing here logs or returns patient data: a candidate is its folder, series UID, date and size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..errors import Cancelled, NodeViewError
from ..io.dicom import SeriesInfo, discover, iter_input_files
from ..progress import ProgressFn, StopFn, never_stop, no_progress
from ..volume import PatientInfo
from .growth import iso_date, parse_study_date

#: the most files the search reads headers of
MAX_FILES = 20_000


@dataclass(frozen=True)
class PriorCandidate:
    """An earlier study of the same patient, found on disk.

    Attributes:
        path: the folder holding the series' files (what ``open_study``/``--prior`` take).
        series_uid: the series to open there.
        study_date: DICOM ``YYYYMMDD``.
        n_images: images in the series.
    """

    path: str
    series_uid: str
    study_date: str
    n_images: int

    @property
    def label(self) -> str:
        """``2025-03-02, 80 images`` (no patient data)."""
        return f"{iso_date(self.study_date)}, {self.n_images} images"


#: how many folders up from the current study the search goes
LEVELS = 2


def search_roots(current_paths: Sequence[str | os.PathLike[str]], level: int = 1) -> list[Path]:
    """Where to look: the folder ``level`` steps above each current path (deduplicated; a file
    counts from its folder)."""
    roots: list[Path] = []
    for p in current_paths:
        path = Path(p).resolve()
        folder = path if path.is_dir() else path.parent
        for _ in range(level):
            folder = folder.parent
        if folder not in roots:
            roots.append(folder)
    return roots


def _folder(series: SeriesInfo) -> str:
    return os.path.commonpath([os.path.dirname(f.path) for f in series.frames])


def find_local_priors(
    current_paths: Sequence[str | os.PathLike[str]],
    patient: PatientInfo,
    current_series_uid: str = "",
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> list[PriorCandidate]:
    """Earlier CT studies of ``patient`` (same PatientID, earlier StudyDate) beside the current
    study, newest first (module docstring)."""
    current_date = parse_study_date(patient.study_date)
    if not patient.patient_id or current_date is None:
        return []
    candidates: list[Sequence[str | os.PathLike[str]]] = [
        search_roots(current_paths, level) for level in range(1, LEVELS + 1)
    ]
    searched = False
    for roots in candidates:  # nearest first; a folder too big to search ends the climb
        if len(iter_input_files(roots)) > MAX_FILES:
            break
        searched = True
        found = _priors_under(roots, patient, current_series_uid, current_date, progress, should_stop)
        if found:
            return found
    if not searched:  # the parent is an archive: the current study's own paths (several studies in it?)
        return _priors_under(list(current_paths), patient, current_series_uid, current_date, progress, should_stop)
    return []


def _priors_under(
    roots: Sequence[str | os.PathLike[str]],
    patient: PatientInfo,
    current_series_uid: str,
    current_date: date,
    progress: ProgressFn,
    should_stop: StopFn,
) -> list[PriorCandidate]:
    try:
        found = discover(roots, progress, should_stop)
    except Cancelled:
        raise
    except NodeViewError:  # no images there, an unreadable folder: nothing to offer
        return []
    by_date: dict[str, list[SeriesInfo]] = {}
    for s in found.series:
        day = parse_study_date(s.patient.study_date)
        if (
            s.series_uid == current_series_uid
            or s.patient.patient_id != patient.patient_id
            or day is None
            or day >= current_date
            or not s.is_ct
            or s.is_localizer
            or s.plan.n_slices < 2
        ):
            continue
        by_date.setdefault(day.strftime("%Y%m%d"), []).append(s)
    out = []
    for day_text, series in sorted(by_date.items(), reverse=True):
        best = max(series, key=lambda s: (s.n_images, -(s.slice_thickness_mm or 99.0)))
        out.append(PriorCandidate(_folder(best), best.series_uid, day_text, best.n_images))
    return out


__all__ = ["MAX_FILES", "PriorCandidate", "find_local_priors", "search_roots"]
