"""The series strip: a thumbnail of every image series of a multi-series study.

Click a thumbnail (or drag it into a view) to open that series. Thumbnails are the middle image of
each series in a lung window, decoded in a background thread (headers were read by discovery; one
image per series is read here) and handed to the GUI thread as arrays through a queued signal.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QByteArray, QMimeData, QObject, QSize, Qt, Signal
from PySide6.QtGui import QDrag, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

if TYPE_CHECKING:
    from ..core.io.dicom import Discovery, SeriesInfo

log = logging.getLogger(__name__)

MIME_SERIES = "application/x-nodeview-series"
THUMB_PX = 96


def series_label(s: SeriesInfo) -> str:
    number = f"Se {s.series_number}" if s.series_number is not None else "Se ?"
    desc = s.description.strip() or "(no description)"
    return f"{number} {s.modality or '?'}\n{desc}\n{s.n_images} images"


def thumbnail(s: SeriesInfo, size: int = THUMB_PX) -> np.ndarray | None:
    """The middle image of a series as uint8 grey (lung window), at most ``size`` px; None if unreadable."""
    import pydicom

    frames = [s.frames[i] for i in s.plan.order] if s.plan.order else list(s.frames)
    if not frames:
        return None
    fr = frames[len(frames) // 2]
    try:
        ds = pydicom.dcmread(fr.path, force=True)
        pixels = ds.pixel_array
    except Exception as exc:  # compressed without a codec, damaged: no thumbnail, never a crash
        log.info("no thumbnail for a series: %s", type(exc).__name__)
        return None
    if pixels.ndim == 3:
        pixels = pixels[min(fr.frame, pixels.shape[0] - 1)]
    hu = pixels.astype(np.float32) * fr.slope + fr.intercept
    lo, hi = (-1350.0, 150.0) if s.is_ct else (float(np.percentile(hu, 1)), float(np.percentile(hu, 99)) + 1e-3)
    grey = np.clip((hu - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    step = max(1, int(np.ceil(max(grey.shape) / size)))
    return np.ascontiguousarray(grey[::step, ::step])


class _Thumbs(QObject):
    ready = Signal(str, object)  # series key, uint8 array


class SeriesStrip(QListWidget):
    """Thumbnails of the series of the study; emits the series to open."""

    sigOpenSeries = Signal(object)  # SeriesInfo

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.TopToBottom)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.setMovement(QListWidget.Movement.Static)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setMinimumWidth(THUMB_PX + 40)
        self.setToolTip("Click a series to open it, or drag it into a view")
        self.series: dict[str, SeriesInfo] = {}
        self._signals = _Thumbs()
        self._signals.ready.connect(self._set_thumb)
        self._generation = 0
        self.itemClicked.connect(self._clicked)

    def set_discovery(self, discovery: Discovery | None, current_key: str | None = None) -> None:
        self.clear()
        self.series = {}
        self._generation += 1
        if discovery is None:
            return
        shown = [s for s in discovery.series if not s.is_localizer]
        for s in shown:
            item = QListWidgetItem(series_label(s))
            item.setData(Qt.ItemDataRole.UserRole, s.key)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            self.addItem(item)
            self.series[s.key] = s
            if s.key == current_key:
                item.setSelected(True)
        generation = self._generation
        signals = self._signals

        def work() -> None:
            for s in shown:
                img = thumbnail(s)
                if img is not None:
                    signals.ready.emit(f"{generation}:{s.key}", img)

        threading.Thread(target=work, name="nodeview-thumbnails", daemon=True).start()

    def mark_current(self, key: str | None) -> None:
        for n in range(self.count()):
            item = self.item(n)
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) == key)

    def _set_thumb(self, tagged_key: str, img: np.ndarray) -> None:
        gen, _, key = tagged_key.partition(":")
        if int(gen) != self._generation:
            return  # thumbnails of a study no longer listed
        h, w = img.shape
        qimage = QImage(img.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
        for n in range(self.count()):
            item = self.item(n)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                item.setIcon(QIcon(QPixmap.fromImage(qimage)))

    def thumbnails_done(self) -> bool:
        return all(not self.item(n).icon().isNull() for n in range(self.count()))

    def _clicked(self, item: QListWidgetItem) -> None:
        s = self.series.get(item.data(Qt.ItemDataRole.UserRole))
        if s is not None:
            self.sigOpenSeries.emit(s)

    def mimeData(self, items):  # type: ignore[no-untyped-def,override]
        data = QMimeData()
        if items:
            data.setData(MIME_SERIES, QByteArray(str(items[0].data(Qt.ItemDataRole.UserRole)).encode()))
        return data

    def startDrag(self, actions) -> None:  # type: ignore[no-untyped-def]
        item = self.currentItem()
        if item is None:
            return
        drag = QDrag(self)
        drag.setMimeData(self.mimeData([item]))
        if not item.icon().isNull():
            drag.setPixmap(item.icon().pixmap(THUMB_PX, THUMB_PX))
        drag.exec(Qt.DropAction.CopyAction)
