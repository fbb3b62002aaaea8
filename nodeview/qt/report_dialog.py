"""File › Export report…: where to write the PNG report, whether to anonymize, what goes in.

The dialog only collects choices; :meth:`MainWindow.export_report` checks for an existing report
(asking before replacing it) and writes it in a worker with :func:`nodeview.core.report.render.write_report`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .. import RESEARCH_NOTICE
from ..core.detect.findings import Finding, format_score
from ..core.report.render import ACCEPTED, contains_patient_data, default_stem, review_of, select_findings
from ..core.volume import Volume


class ReportDialog(QDialog):
    """Folder, file name (without extension) and the Anonymize choice; lists the findings that go in."""

    def __init__(
        self,
        volume: Volume,
        findings: Sequence[Finding],
        reviews: Mapping[int, str],
        threshold: float,
        folder: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export report")
        self.setMinimumWidth(640)
        self.volume = volume
        col = QVBoxLayout(self)
        form = QFormLayout()
        row = QHBoxLayout()
        self.folder_edit = QLineEdit(folder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.name_edit = QLineEdit(default_stem(volume))
        self.name_edit.setToolTip("File name without extension: NAME.png (NAME-p2.png, …) and NAME.json")
        form.addRow("File name", self.name_edit)
        files = QLabel("Writes NAME.png (NAME-p2.png, … when there are more pages) and the NAME.json sidecar.")
        files.setStyleSheet("color: gray;")
        form.addRow("", files)
        self.anonymize_box = QCheckBox("Anonymize (no patient name, ID, birth date or accession number)")
        form.addRow("", self.anonymize_box)
        col.addLayout(form)
        col.addWidget(QLabel(self._contents_html(findings, reviews, threshold)))
        notice = QLabel(f"<span style='color:#e74c3c'><b>{RESEARCH_NOTICE}</b></span>")
        col.addWidget(notice)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #e74c3c;")
        self.error_label.setWordWrap(True)
        col.addWidget(self.error_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept_if_valid)
        buttons.rejected.connect(self.reject)
        col.addWidget(buttons)

    @staticmethod
    def _contents_html(findings: Sequence[Finding], reviews: Mapping[int, str], threshold: float) -> str:
        keyed, rejected = select_findings(findings, reviews, threshold)
        if not keyed and not rejected:
            return f"No findings with nodule score ≥ {format_score(threshold)}: the report says so, with the overview."
        items = "".join(
            f"<li>#{f.id} {html.escape(f.location)}, {f.diameter_mm:.1f} mm, score {format_score(f.score)} — "
            f"{'accepted' if review_of(reviews, f.id) == ACCEPTED else 'unreviewed'}</li>"
            for f in keyed
        )
        text = (
            f"<b>{len(keyed)} finding(s) with nodule score ≥ {format_score(threshold)} get key images</b> "
            f"(accepted and unreviewed):<ul style='margin:2px'>{items}</ul>"
        )
        if rejected:
            ids = ", ".join(f"#{f.id}" for f in rejected)
            text += f"Rejected, listed without key images: {ids}."
        return text

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Report folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _accept_if_valid(self) -> None:
        message = self.problem()
        if message:
            self.error_label.setText(message)
            return
        self.accept()

    def problem(self) -> str:
        """Why the choices cannot be used, or "" when they can."""
        name = self.stem()
        if not self.folder_edit.text().strip():
            return "Choose a folder."
        if not name or Path(name).name != name or name in (".", ".."):
            return "The file name must be a plain name (no folders)."
        if self.anonymize() and contains_patient_data(name, self.volume):
            return "The file name contains patient data; choose another name for an anonymized report."
        return ""

    # ---- the choices -------------------------------------------------------------------------
    def folder(self) -> str:
        return self.folder_edit.text().strip()

    def stem(self) -> str:
        name = self.name_edit.text().strip()
        return name[:-4] if name.lower().endswith(".png") else name

    def anonymize(self) -> bool:
        return self.anonymize_box.isChecked()


__all__ = ["ReportDialog"]
