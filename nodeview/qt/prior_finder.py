"""The prior found beside the current study (issue 25): File › "Compare with prior (found: DATE)".

After a DICOM series is shown, :class:`PriorFinder` looks in its own worker (headers only) for an
earlier study of the same patient in the folder that holds it
(:func:`nodeview.core.followup.priors.find_local_priors`). When one is found the menu entry names
its date and is enabled, and the status bar says so (the prompt; nothing opens by itself). Choosing
it opens that series as the prior: registered and shown beside the current study. Nothing here
shows or logs the patient's name or ID.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QStatusBar

from ..core.followup.growth import iso_date
from ..core.volume import Volume
from .tasks import TaskRunner

log = logging.getLogger(__name__)
NONE_FOUND = "Compare with prior (none found beside this study)"


class PriorHost(Protocol):
    """What the finder needs of the window it serves (the main window; a QObject, which parents the
    finder and its action): the study on screen, opening a prior, the status bar."""

    volume: Volume | None

    def open_prior(self, path: str, series_uid: str | None = None) -> None: ...

    def statusBar(self) -> QStatusBar: ...


class PriorFinder(QObject):
    """Finds the prior of the study on screen and offers it in the File menu."""

    sigFound = Signal(object)  # list[PriorCandidate] (empty: none), for the study on screen

    def __init__(self, window: PriorHost) -> None:
        super().__init__(window)  # type: ignore[call-overload]
        self.window = window
        self.runner = TaskRunner(self)
        self.runner.sigFinished.connect(self._on_finished)
        self.runner.sigFailed.connect(lambda msg: log.info("prior search failed: %s", msg))
        self.candidates: list[Any] = []
        self._volume: Volume | None = None
        self.action = QAction(NONE_FOUND, window)
        self.action.setEnabled(False)
        self.action.setToolTip("An earlier study of the same patient (PatientID) in the folder holding this one")
        self.action.triggered.connect(self.compare)

    def start(self, paths: Sequence[str | os.PathLike[str]], volume: Volume) -> None:
        """Search beside ``paths`` for priors of ``volume`` (a DICOM series; others have no patient ID)."""
        self.candidates = []
        self._volume = volume
        self.action.setText(NONE_FOUND)
        self.action.setEnabled(False)
        if volume.source_format != "dicom" or not paths or not volume.patient.patient_id:
            self.runner.cancel()
            self.sigFound.emit([])  # nothing to look for: said at once
            return
        items = list(paths)

        def work(progress, stop):  # type: ignore[no-untyped-def]
            from ..core.followup.priors import find_local_priors

            return find_local_priors(items, volume.patient, volume.series_uid, should_stop=stop)

        self.runner.start(work)

    def _on_finished(self, result: object) -> None:
        if self.window.volume is not self._volume:  # another study is on screen now
            return
        self.candidates = list(result)  # type: ignore[call-overload]
        if self.candidates:
            best = self.candidates[0]
            self.action.setText(f"Compare with prior (found: {iso_date(best.study_date)})")
            self.action.setEnabled(True)
            more = f" ({len(self.candidates) - 1} older)" if len(self.candidates) > 1 else ""
            self.window.statusBar().showMessage(
                f"Prior study found: CT of {iso_date(best.study_date)}{more} — File › Compare with prior", 10000
            )
        self.sigFound.emit(list(self.candidates))

    def compare(self) -> None:
        """Open the newest prior found as the prior study."""
        if not self.candidates or self.window.volume is not self._volume:
            return
        best = self.candidates[0]
        self.window.open_prior(best.path, series_uid=best.series_uid)


__all__ = ["NONE_FOUND", "PriorFinder"]
