"""Read-back in the viewer: TID 1500 SR findings and SEG overlays found beside the open series.

After a DICOM series is shown, :class:`ReadBack` looks (in its own worker, so a detection can run
at the same time) for SR and SEG files among the paths the study was opened from
(:func:`nodeview.core.export.readback.read_back`). When the series on screen is still the one it
looked for and no detection has been shown yet, the SR's findings go to the findings panel, marked
"loaded from SR" (not detected), with their review states, so that yesterday's review continues; a
SEG referencing the series is drawn as a translucent overlay on the three views. A detection run
afterwards replaces the loaded findings in the panel (the overlay stays until another series opens).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Signal, SignalInstance
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QStatusBar

from ..core.volume import Volume
from .findings_panel import FindingsPanel
from .tasks import TaskRunner
from .viewer import ViewerController

log = logging.getLogger(__name__)
OVERLAY_RGB = np.array(
    [[0, 0, 0], [0, 200, 255], [255, 120, 0], [200, 0, 255], [0, 255, 120], [255, 220, 0], [255, 60, 120]], np.uint8
)


class ReadBackHost(Protocol):
    """What the read-back needs of the window it serves (the main window; a QObject, which parents
    it): the study on screen, its views, the findings panel and dock, the export actions it enables,
    the signal that says findings were loaded, the status bar."""

    volume: Volume | None
    controller: ViewerController
    findings_panel: FindingsPanel
    findings_dock: QDockWidget
    export_report_action: QAction
    export_dicom_action: QAction
    sigFindingsLoaded: SignalInstance

    def statusBar(self) -> QStatusBar: ...


class ReadBack(QObject):
    """Looks for SR/SEG objects of the series on screen and shows what it finds."""

    sigDone = Signal(object)  # (reports, labels or None, problems) once applied (or dropped)

    def __init__(self, window: ReadBackHost) -> None:
        super().__init__(window)  # type: ignore[call-overload]
        self.window = window
        self.runner = TaskRunner(self)
        self.runner.sigFinished.connect(self._on_finished)
        self.runner.sigFailed.connect(lambda msg: log.info("read-back failed: %s", msg))
        self._volume: Volume | None = None
        self.labels: np.ndarray | None = None
        self.loaded_reports: list[Any] = []
        self._items: dict[Any, pg.ImageItem] = {}
        window.controller.sigCursorChanged.connect(lambda _c: self.refresh_overlay())

    def start(self, paths: Sequence[str | os.PathLike[str]], volume: Volume) -> None:
        self.clear_overlay()
        self.loaded_reports = []
        self._volume = volume
        if volume.source_format != "dicom" or not volume.series_uid or not paths:
            return
        items = list(paths)

        def work(progress, stop):  # type: ignore[no-untyped-def]
            from ..core.export.readback import frame_of_reference_uid, read_back

            for_uid = frame_of_reference_uid(items, volume.series_uid)
            if not for_uid:
                return [], None, []
            return read_back(items, volume, for_uid, progress, stop)

        self.runner.start(work)

    def _on_finished(self, result: object) -> None:
        reports, labels, problems = result  # type: ignore[misc]
        window = self.window
        if window.volume is not self._volume:  # another series is on screen now: drop it
            return
        for line in problems:
            log.info("read-back: %s", line)
        if reports and window.findings_panel.result is None:
            from ..core.export.readback import loaded_result

            loaded, reviews = loaded_result(reports)
            window.findings_panel.set_result(loaded)
            for fid, status in reviews.items():
                if status in ("accepted", "rejected"):
                    window.findings_panel.review(fid, status)
            window.findings_dock.show()
            window.export_report_action.setEnabled(True)
            window.export_dicom_action.setEnabled(True)
            self.loaded_reports = list(reports)
            window.statusBar().showMessage(
                f"Loaded {len(loaded.findings)} finding(s) from {len(reports)} structured report(s) "
                "(loaded, not detected)",
                10000,
            )
            window.sigFindingsLoaded.emit(list(reports))
        if labels is not None:
            self.labels = labels
            self.refresh_overlay()
        self.sigDone.emit(result)

    # ---- the SEG overlay ---------------------------------------------------------------------
    def clear_overlay(self) -> None:
        self.labels = None
        for item in self._items.values():
            item.setVisible(False)

    def overlay_image(self, kind: Any) -> np.ndarray | None:
        """The RGBA overlay of the view ``kind`` at its current slice (None when no SEG)."""
        controller = self.window.controller
        if self.labels is None or controller.volume is None or kind not in controller.planes:
            return None
        plane = controller.planes[kind]
        lab = plane.extract(self.labels, controller.slice_index(kind))  # type: ignore[arg-type]
        rgba = np.zeros((*lab.shape, 4), np.uint8)
        on = lab > 0
        rgba[..., :3] = OVERLAY_RGB[np.where(on, 1 + (lab.astype(np.int64) - 1) % (len(OVERLAY_RGB) - 1), 0)]
        rgba[..., 3] = np.where(on, 110, 0).astype(np.uint8)
        return rgba

    def refresh_overlay(self) -> None:
        controller = self.window.controller
        for kind, view in controller.views.items():
            rgba = self.overlay_image(kind)
            item = self._items.get(kind)
            if rgba is None:
                if item is not None:
                    item.setVisible(False)
                continue
            if item is None:
                item = pg.ImageItem()
                item.setZValue(5)
                view.view_box.addItem(item)
                self._items[kind] = item
            item.setImage(rgba, autoLevels=False, levels=(0, 255))
            w_mm, h_mm = controller.planes[kind].size_mm
            item.setRect(QRectF(0.0, 0.0, w_mm, h_mm))
            item.setVisible(True)


__all__ = ["ReadBack"]
