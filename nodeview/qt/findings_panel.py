"""The findings panel: the detector's findings as a table, accept/reject, and the operating point.

State (the detection result, each finding's review status, the threshold) lives here; the views
only receive the list of findings to draw (score >= threshold, not rejected).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QPainter, QPaintEvent, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.detect.findings import format_score

if TYPE_CHECKING:
    from ..core.detect.detector import DetectionResult
    from ..core.detect.findings import Finding


COLUMNS = ["#", "Location", "Diam. (mm)", "Vol. (mm³)", "Type", "Score", "Malig.", "Lung-RADS", "Review"]
COLUMN_TIPS = [
    "Finding number (the label of its box)",
    "Lobe or region",
    "Equivalent diameter in mm",
    "Volume in mm³",
    "Solid, part-solid or ground-glass",
    "Nodule score (detector confidence)",
    "Malignancy estimate (0-1)",
    "Lung-RADS category suggested by size and type",
    "Your review: pending, accepted (A) or rejected (X)",
]
#: columns that sort by number rather than by text
NUMERIC_COLUMNS = {0, 2, 3, 5, 6}
FINDING_ROLE = Qt.ItemDataRole.UserRole + 1
MIN_COLUMN_PX = 28
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


class _SortItem(QTableWidgetItem):
    """A table cell that sorts by its numeric value when it has one."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return super().__lt__(other)


class ThresholdSlider(QSlider):
    """The operating-point slider with a tick at the model's own threshold."""

    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.mark: int | None = None

    def set_mark(self, position: int | None) -> None:
        self.mark = position
        self.update()

    def mark_x(self) -> int | None:
        """Viewport x of the mark (the handle's centre at that position), or None."""
        if self.mark is None:
            return None
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        groove = self.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, self
        )
        handle = self.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, self
        )
        span = groove.width() - handle.width()
        x = QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), self.mark, span)
        return groove.x() + x + handle.width() // 2

    def paintEvent(self, ev: QPaintEvent) -> None:
        super().paintEvent(ev)
        x = self.mark_x()
        if x is None:
            return
        painter = QPainter(self)
        painter.fillRect(QRect(x - 1, 0, 3, self.height()), QColor(255, 176, 0))
        painter.end()


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
        self.slider = ThresholdSlider()
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setValue(slider_position(0.5))
        self.slider.setToolTip(
            "Lower: more sensitive, more false positives. Higher: fewer findings. The orange mark is "
            "the model's own threshold. The scale is even in log-odds, so the crowded scores near 1 get "
            "most of its length."
        )
        self.slider.valueChanged.connect(self._on_slider)
        row.addWidget(self.slider, 1)
        self.threshold_label = QLabel("score ≥ 0.50")
        row.addWidget(self.threshold_label)
        self.reset_button = QPushButton("Model threshold")
        self.reset_button.setToolTip("Return the operating point exactly to the model's threshold")
        self.reset_button.clicked.connect(self.reset_threshold)
        self.reset_button.setEnabled(False)
        row.addWidget(self.reset_button)
        col.addLayout(row)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(COLUMN_TIPS):
            header_item = self.table.horizontalHeaderItem(c)
            if header_item is not None:
                header_item.setToolTip(tip)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        header.setMinimumSectionSize(MIN_COLUMN_PX)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(5, Qt.SortOrder.DescendingOrder)
        self.table.currentCellChanged.connect(lambda r, _c, _pr, _pc: self._focus_row(r))
        self.table.cellClicked.connect(lambda r, _c: self._focus_row(r))
        col.addWidget(self.table, 1)
        # the columns are fitted whenever the table's own viewport resizes (the panel resizing, the dock
        # first showing, the vertical scroll bar coming and going): the panel's resize event alone comes
        # before the table's layout has settled
        self.table.viewport().installEventFilter(self)
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

    # ---- state -------------------------------------------------------------------------------
    def set_result(self, result: DetectionResult | None, extra_caveats: tuple[str, ...] = ()) -> None:
        """Show a detection (None: none, e.g. another study was opened; the summary says so)."""
        self.result = result
        self.status = {f.id: PENDING for f in result.findings} if result else {}
        if result is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(slider_position(result.model.threshold))
            self.slider.blockSignals(False)
            self.threshold = result.model.threshold
            self.slider.set_mark(slider_position(result.model.threshold))
        else:
            self.slider.set_mark(None)
            self.summary.setText("No detection yet for this study. Press Detect (Ctrl+D).")
        self.reset_button.setEnabled(result is not None)
        header_item = self.table.horizontalHeaderItem(COLUMNS.index("Malig."))
        if header_item is not None:
            meaning = result.model.malignancy_meaning if result is not None else ""
            tip = COLUMN_TIPS[COLUMNS.index("Malig.")]
            header_item.setToolTip(f"{tip}; the model's training label: {meaning}" if meaning else tip)
        caveats = (*extra_caveats, *(result.caveats if result else ()))
        self.caveats.setText("\n".join(f"Caution: {c}" for c in caveats))
        self.caveats.setVisible(bool(caveats))
        self._refresh()

    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold
        self._refresh()

    def _on_slider(self, position: int) -> None:
        self.set_threshold(slider_score(position))

    def reset_threshold(self) -> None:
        """Back to the model's threshold exactly (the slider's steps cannot hit it)."""
        if self.result is None:
            return
        self.slider.blockSignals(True)
        self.slider.setValue(slider_position(self.result.model.threshold))
        self.slider.blockSignals(False)
        self.set_threshold(self.result.model.threshold)

    def select_top(self) -> Finding | None:
        """Select the finding with the highest score and send the views to it."""
        shown = self.shown()
        if not shown:
            return None
        top = max(shown, key=lambda f: f.score)
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)
        self.select_finding(top.id)
        return top

    def select_finding(self, finding_id: int) -> None:
        for row in range(self.table.rowCount()):
            if self.finding_at(row) is not None and self.finding_at(row).id == finding_id:  # type: ignore[union-attr]
                self.table.setCurrentCell(row, 0)
                self.table.selectRow(row)
                self._focus_row(row)
                return

    def finding_at(self, row: int) -> Finding | None:
        """The finding shown in a table row (rows may be sorted by any column)."""
        item = self.table.item(row, 0)
        if item is None or self.result is None:
            return None
        fid = item.data(FINDING_ROLE)
        return next((f for f in self.result.findings if f.id == fid), None)

    def review_selected(self, status: str) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        finding = self.finding_at(rows[0].row())
        if finding is None:
            return
        self.status[finding.id] = status
        self._refresh(keep_id=finding.id)

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
    def _refresh(self, keep_id: int | None = None) -> None:
        self.threshold_label.setText(f"score ≥ {format_score(self.threshold)}")
        shown = self.shown()
        if keep_id is None:
            current = self.finding_at(self.table.currentRow()) if self.table.currentRow() >= 0 else None
            keep_id = current.id if current is not None else None
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)  # fill, then sort once
        self.table.blockSignals(True)
        self.table.setRowCount(len(shown))
        for row, f in enumerate(shown):
            status = self.status.get(f.id, PENDING)
            values: list[tuple[str, object]] = [
                (str(f.id), f.id),
                (f.location, None),
                (f"{f.diameter_mm:.1f}", f.diameter_mm),
                (f"{f.volume_mm3:.0f}", f.volume_mm3),
                (f.type, None),
                (format_score(f.score), f.score),
                (f"{f.malignancy:.2f}", f.malignancy),
                (f.lung_rads or "-", None),
                (status, None),
            ]
            for c, (text, number) in enumerate(values):
                item = _SortItem(text)
                item.setToolTip(text)
                if number is not None:
                    item.setData(Qt.ItemDataRole.UserRole, float(number))  # type: ignore[arg-type]
                if c == 0:
                    item.setData(FINDING_ROLE, f.id)
                if status == REJECTED:
                    font = QFont()
                    font.setStrikeOut(True)
                    item.setFont(font)
                    item.setForeground(QColor(140, 140, 140))
                elif status == ACCEPTED and c == len(values) - 1:
                    item.setForeground(QColor(90, 200, 90))
                self.table.setItem(row, c, item)
        self.table.setSortingEnabled(sorting)
        self._fit_columns()
        if keep_id is not None:
            for row in range(self.table.rowCount()):
                f2 = self.finding_at(row)
                if f2 is not None and f2.id == keep_id:
                    self.table.setCurrentCell(row, 0)
                    self.table.selectRow(row)
                    break
        self.table.blockSignals(False)
        if self.result is not None:
            n_acc = len(self.accepted())
            n_rej = sum(1 for f in shown if self.status.get(f.id) == REJECTED)
            loaded_from = self.result.model.metadata.get("loaded_from")
            if loaded_from:  # read back from a structured report (nodeview.qt.dicom_readback)
                compared = self.result.model.metadata.get("comparison")  # the SR's comparison, when it has one
                self.summary.setText(
                    f"<b>Loaded, not detected</b>: {len(shown)} finding(s) ({n_acc} accepted, {n_rej} rejected) "
                    f"from {html.escape(loaded_from)} · {html.escape(self.result.model.name)}"
                    + (f"<br>{html.escape(compared)}" if compared else "")
                )
            else:
                self.summary.setText(
                    f"{len(shown)} finding(s) at score ≥ {format_score(self.threshold)} "
                    f"({n_acc} accepted, {n_rej} rejected) "
                    f"from {self.result.n_candidates} candidates · model {self.result.model.label}"
                )
        self.sigVisibleChanged.emit(self.visible())

    def _fit_columns(self) -> None:
        """Fit every column into the table's width: contents' widths when they fit (Location takes
        what is left), otherwise all narrowed in proportion, texts and headers elided (full text
        in the tooltips). Never a horizontal scroll bar."""
        header = self.table.horizontalHeader()
        n = self.table.columnCount()
        wanted = [max(self.table.sizeHintForColumn(c), header.sectionSizeHint(c)) for c in range(n)]
        avail = max(self.table.viewport().width(), 1)
        total = sum(wanted)
        if total <= avail:
            widths = list(wanted)
            widths[1] += avail - total
        else:
            scale = avail / total
            widths = [max(MIN_COLUMN_PX, int(w * scale)) for w in wanted]
            widths[1] = max(MIN_COLUMN_PX, widths[1] - (sum(widths) - avail))
        for c, w in enumerate(widths):
            header.resizeSection(c, w)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _focus_row(self, row: int) -> None:
        finding = self.finding_at(row) if row >= 0 else None
        if finding is not None:
            self.sigFocus.emit(finding)
