"""File › Export DICOM…: the reviewed findings as a TID 1500 SR, a SEG and (optionally) report pages
as Secondary Capture images, written by :func:`nodeview.core.export.export_dicom` in a worker.

The dialog only collects choices (folder, anonymize, Secondary Capture, a PACS to send to);
:func:`dicom_export_work` is the export itself, which ``MainWindow.start_dicom_export`` runs on the window's
task runner with the findings panel's threshold and review decisions.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
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
from ..core.report.render import review_of, select_findings

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.detect.detector import DetectionResult
    from ..core.volume import Volume


class DicomExportDialog(QDialog):
    """Folder, Anonymize and Secondary Capture choices; lists the findings that go into the SR."""

    def __init__(
        self,
        findings: Sequence[Finding],
        reviews: Mapping[int, str],
        threshold: float,
        folder: str,
        parent: QWidget | None = None,
        nodes: Sequence[Any] = (),
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export DICOM (SR, SEG)")
        self.setMinimumWidth(600)
        col = QVBoxLayout(self)
        form = QFormLayout()
        row = QHBoxLayout()
        self.folder_edit = QLineEdit(folder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.anonymize_box = QCheckBox("Anonymize (no patient name, ID, birth date or accession number)")
        form.addRow("", self.anonymize_box)
        self.sc_box = QCheckBox("Also the report pages as Secondary Capture images (visible in any PACS viewer)")
        form.addRow("", self.sc_box)
        self.send_combo = QComboBox()
        self.send_combo.addItem("(do not send)", None)
        for node in nodes:
            self.send_combo.addItem(f"{node.label}  ({node})", node)
        self.send_combo.setToolTip("C-STORE the objects to this PACS once written (File › Query PACS… › Settings)")
        form.addRow("Then send to", self.send_combo)
        col.addLayout(form)
        keyed, rejected = select_findings(findings, reviews, threshold)
        items = "".join(
            f"<li>Nodule {f.id}: {f.diameter_mm:.1f} mm, score {format_score(f.score)}, "
            f"{html.escape(review_of(reviews, f.id))}</li>"
            for f in keyed
        )
        text = (
            f"<b>{len(keyed)} finding(s) with nodule score ≥ {format_score(threshold)}</b> go into a TID 1500 "
            f"Structured Report, their segmentations into a DICOM SEG (new series of this study; existing files "
            f"are never replaced):<ul style='margin:2px'>{items}</ul>"
        )
        if rejected:
            text += "Rejected, left out: " + ", ".join(f"#{f.id}" for f in rejected) + "."
        self.contents = QLabel(text)
        self.contents.setWordWrap(True)
        col.addWidget(self.contents)
        col.addWidget(QLabel(f"<span style='color:#e74c3c'><b>{RESEARCH_NOTICE}</b></span>"))
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #e74c3c;")
        col.addWidget(self.error_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept_if_valid)
        buttons.rejected.connect(self.reject)
        col.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "DICOM export folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _accept_if_valid(self) -> None:
        if not self.folder():
            self.error_label.setText("Choose a folder.")
            return
        self.accept()

    def folder(self) -> str:
        return self.folder_edit.text().strip()

    def anonymize(self) -> bool:
        return self.anonymize_box.isChecked()

    def secondary_capture(self) -> bool:
        return self.sc_box.isChecked()

    def send_to(self) -> Any:
        """The PACS node to send the objects to, or None."""
        return self.send_combo.currentData()


def dicom_export_work(
    folder: str,
    volume: Volume,
    result: DetectionResult,
    reviews: dict[int, str],
    threshold: float,
    paths: list[str],
    local: str,
    anonymize: bool,
    secondary_capture: bool,
    send_to: Any = None,
    comparison: Any = None,
    prior_path: str | None = None,
    prior_volume: Volume | None = None,
) -> Callable[[Any, Any], Any]:
    """The worker function (``work(progress, stop)``) that exports one detection as SR and SEG.

    It reads the source series' headers, writes the objects into ``folder`` and returns the
    :class:`~nodeview.core.export.DicomExport`. With ``send_to`` (a :class:`~nodeview.core.pacs.PacsNode`)
    the objects are then sent with C-STORE as the AE title ``local``; a refusal fails the task with the
    PACS's reason (the files stay written). With a ``comparison`` made for these findings the SR carries
    it (and the prior's images as other evidence). :meth:`MainWindow.start_dicom_export` runs it as the
    window's ``"dicom"`` task.
    """

    def work(progress, stop):  # type: ignore[no-untyped-def]
        from ..core.export import NotExportableError, export_dicom, read_source_series

        source = read_source_series(paths, volume, should_stop=stop)
        prior_source = None
        if comparison is not None and prior_volume is not None and prior_path:
            try:
                prior_source = read_source_series([prior_path], prior_volume, should_stop=stop)
            except NotExportableError:  # a research-format prior: the SR names its date, not its images
                prior_source = None
        done = export_dicom(
            folder, volume, result, reviews, threshold, source,
            anonymize=anonymize, secondary_capture=secondary_capture, comparison=comparison,
            prior_source=prior_source, progress=progress, should_stop=stop,
        )  # fmt: skip
        if send_to is not None:
            from ..core.errors import NodeViewError
            from ..core.pacs import send

            sent = send(send_to, done.paths, local, should_stop=stop)
            if sent.failed:
                raise NodeViewError(f"written to {folder}, but {send_to.label} refused: {sent.failed[0]}")
        return done

    return work


__all__ = ["DicomExportDialog", "dicom_export_work"]
