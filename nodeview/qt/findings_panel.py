"""The findings panel: the detector's findings as a table, accept/reject, and the operating point.

State (the detection result, each finding's review status, the threshold) lives here; the views
only receive the list of findings to draw (score >= threshold, not rejected).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import RESEARCH_NOTICE
from ..core.detect.findings import format_score

if TYPE_CHECKING:
    from ..core.detect.detector import DetectionResult
    from ..core.detect.findings import Finding


COLUMNS = ["#", "Location", "Diam. (mm)", "Volume (mm³)", "Type", "Nodule score", "Malignancy", "Lung-RADS", "Review"]
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
#: The operating-point slider runs evenly in the log-odds of the finding score over this range
#: (scores 0.0067 to 0.99995; fused log-odds -20 to 40, see ``nodeview.core.detect.scores``), in steps
#: fine enough that a position shows as the three-decimal score it is nearest to.
SLIDER_LOGIT_RANGE = (-5.0, 10.0)
SLIDER_STEPS = 6000


def slider_score(position: int) -> float:
    """The threshold at a slider position."""
    lo, hi = SLIDER_LOGIT_RANGE
    logit = lo + (hi - lo) * position / SLIDER_STEPS
    return 1.0 / (1.0 + math.exp(-logit))


def slider_position(score: float) -> int:
    """The slider position nearest to a threshold (clamped to the slider's range)."""
    lo, hi = SLIDER_LOGIT_RANGE
    p = min(max(score, 1e-9), 1.0 - 1e-9)
    logit = math.log(p / (1.0 - p))
    return round(min(max((logit - lo) / (hi - lo), 0.0), 1.0) * SLIDER_STEPS)


class FindingsPanel(QWidget):
    """Shows a :class:`DetectionResult`; emits what the views should draw and where to go."""

    sigVisibleChanged = Signal(object)  # list[Finding] to draw
    sigFocus = Signal(object)  # Finding to centre on

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: DetectionResult | None = None
        self.status: dict[int, str] = {}
        self.threshold = 0.5
        col = QVBoxLayout(self)
        self.summary = QLabel("No detection yet. Press Detect (Ctrl+D).")
        self.summary.setWordWrap(True)
        col.addWidget(self.summary)
        self.caveats = QLabel("")
        self.caveats.setWordWrap(True)
        self.caveats.setStyleSheet("color: #e67e22")
        self.caveats.setVisible(False)
        col.addWidget(self.caveats)
        row = QHBoxLayout()
        row.addWidget(QLabel("Operating point"))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setValue(slider_position(0.5))
        self.slider.setToolTip(
            "Lower: more sensitive, more false positives. Higher: fewer findings. "
            "The scale is even in log-odds, so the crowded scores near 1 get most of its length."
        )
        self.slider.valueChanged.connect(lambda v: self.set_threshold(slider_score(v)))
        row.addWidget(self.slider, 1)
        self.threshold_label = QLabel("score ≥ 0.50")
        row.addWidget(self.threshold_label)
        col.addLayout(row)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.cellClicked.connect(lambda r, _c: self._focus_row(r))
        col.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.accept_button = QPushButton("Accept (A)")
        self.reject_button = QPushButton("Reject (X)")
        self.accept_button.clicked.connect(lambda: self.review_selected(ACCEPTED))
        self.reject_button.clicked.connect(lambda: self.review_selected(REJECTED))
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.reject_button)
        col.addLayout(buttons)
        for key, status in (("A", ACCEPTED), ("X", REJECTED)):
            shortcut = QShortcut(QKeySequence(key), self.table)
            shortcut.activated.connect(lambda s=status: self.review_selected(s))
        notice = QLabel(f"<span style='color:#e74c3c'><b>{RESEARCH_NOTICE}</b></span>")
        notice.setWordWrap(True)
        col.addWidget(notice)

    # ---- state -------------------------------------------------------------------------------
    def set_result(self, result: DetectionResult | None) -> None:
        self.result = result
        self.status = {f.id: PENDING for f in result.findings} if result else {}
        if result is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(slider_position(result.model.threshold))
            self.slider.blockSignals(False)
            self.threshold = result.model.threshold
        caveats = result.caveats if result else ()
        self.caveats.setText("\n".join(f"Caution: {c}" for c in caveats))
        self.caveats.setVisible(bool(caveats))
        self._refresh()

    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold
        self._refresh()

    def review_selected(self, status: str) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        finding = self.shown()[rows[0].row()]
        self.status[finding.id] = status
        self._refresh(keep_row=rows[0].row())

    def review(self, finding_id: int, status: str) -> None:
        self.status[finding_id] = status
        self._refresh()

    def shown(self) -> list[Finding]:
        """Findings in the table: score >= threshold (rejected ones stay listed, marked)."""
        if self.result is None:
            return []
        return [f for f in self.result.findings if f.score >= self.threshold]

    def visible(self) -> list[Finding]:
        """Findings drawn in the views: shown and not rejected."""
        return [f for f in self.shown() if self.status.get(f.id) != REJECTED]

    def accepted(self) -> list[Finding]:
        return [f for f in self.shown() if self.status.get(f.id) == ACCEPTED]

    # ---- view --------------------------------------------------------------------------------
    def _refresh(self, keep_row: int | None = None) -> None:
        self.threshold_label.setText(f"score ≥ {format_score(self.threshold)}")
        shown = self.shown()
        self.table.setRowCount(len(shown))
        for row, f in enumerate(shown):
            status = self.status.get(f.id, PENDING)
            values = [
                str(f.id),
                f.location,
                f"{f.diameter_mm:.1f}",
                f"{f.volume_mm3:.0f}",
                f.type,
                format_score(f.score),
                f"{f.malignancy:.2f}",
                f.lung_rads or "-",
                status,
            ]
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if status == REJECTED:
                    font = QFont()
                    font.setStrikeOut(True)
                    item.setFont(font)
                    item.setForeground(QColor(140, 140, 140))
                elif status == ACCEPTED and c == len(values) - 1:
                    item.setForeground(QColor(90, 200, 90))
                self.table.setItem(row, c, item)
        if keep_row is not None and keep_row < len(shown):
            self.table.selectRow(keep_row)
        if self.result is not None:
            n_acc = len(self.accepted())
            n_rej = sum(1 for f in shown if self.status.get(f.id) == REJECTED)
            loaded_from = self.result.model.metadata.get("loaded_from")
            if loaded_from:  # read back from a structured report (nodeview.qt.dicom_readback)
                self.summary.setText(
                    f"<b>Loaded, not detected</b>: {len(shown)} finding(s) ({n_acc} accepted, {n_rej} rejected) "
                    f"from {html.escape(loaded_from)} · {html.escape(self.result.model.name)}"
                )
            else:
                self.summary.setText(
                    f"{len(shown)} finding(s) at score ≥ {format_score(self.threshold)} "
                    f"({n_acc} accepted, {n_rej} rejected) "
                    f"from {self.result.n_candidates} candidates · model {self.result.model.label}"
                )
        self.sigVisibleChanged.emit(self.visible())

    def _focus_row(self, row: int) -> None:
        shown = self.shown()
        if 0 <= row < len(shown):
            self.sigFocus.emit(shown[row])
