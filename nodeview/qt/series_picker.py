"""Dialog to choose one series when a folder holds several (scout, thin, thick reconstructions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from ..core.io.dicom import Discovery, SeriesInfo


COLUMNS = ["Description", "Modality", "Images", "Thickness (mm)", "Size z×y×x", "Warnings"]


class SeriesPicker(QDialog):
    def __init__(self, discovery: Discovery, default: SeriesInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.resize(980, 360)
        self.series = list(discovery.series)
        col = QVBoxLayout(self)
        skipped = f", {len(discovery.skipped)} file(s) skipped" if discovery.skipped else ""
        col.addWidget(
            QLabel(
                f"{len(self.series)} series found in {discovery.n_files} file(s){skipped}. "
                "The largest thin CT series is preselected."
            )
        )
        self.table = QTableWidget(len(self.series), len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for row, s in enumerate(self.series):
            desc = s.description or "(no description)"
            if s.is_localizer:
                desc += "  [localizer]"
            thick = f"{s.slice_thickness_mm:g}" if s.slice_thickness_mm is not None else "?"
            values = [
                desc,
                s.modality or "?",
                str(s.n_images),
                thick,
                "×".join(map(str, s.shape_zyx)),
                " ".join(s.warnings),
            ]
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip("\n".join(s.warnings) if c == 5 and s.warnings else text)
                self.table.setItem(row, c, item)
        self.table.horizontalHeader().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnsToContents()
        self.table.selectRow(self.series.index(default))
        self.table.doubleClicked.connect(self.accept)
        col.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        col.addWidget(buttons)

    def select(self, series: SeriesInfo) -> None:
        self.table.selectRow(self.series.index(series))

    def selected_series(self) -> SeriesInfo:
        rows = self.table.selectionModel().selectedRows()
        return self.series[rows[0].row()] if rows else self.series[0]
