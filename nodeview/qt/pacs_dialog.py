"""File › Query PACS…: query a PACS, list its studies and series, retrieve one into the local cache
and open it; PACS settings (nodes, NodeView's AE title and port, cache size) with Test (C-ECHO).

Every network call runs in a worker (:class:`~nodeview.qt.tasks.TaskRunner`): the dialog never
freezes, and a retrieve shows its progress and can be cancelled. The networking itself is
:mod:`nodeview.core.pacs`; settings live in the application's QSettings under ``pacs/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QDate, QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import RESEARCH_NOTICE
from .tasks import TaskRunner

STUDY_COLUMNS = ("Cached", "Date", "Patient", "Patient ID", "Description", "Modalities", "Series", "Images")
SERIES_COLUMNS = ("#", "Modality", "Description", "Images")
MODALITIES = ("any", "CT", "MR", "SR", "SEG", "OT")


# ---- settings ------------------------------------------------------------------------------------
def load_nodes(settings: QSettings) -> list[Any]:
    """The PACS nodes saved in the settings: DIMSE (AE title, host, port) or DICOMweb (a URL); bad
    entries are dropped."""
    from ..core.errors import InputError
    from ..core.pacs import DicomWebNode, PacsNode

    try:
        items = json.loads(str(settings.value("pacs/nodes", "[]") or "[]"))
    except ValueError:
        return []
    nodes = []
    for it in items if isinstance(items, list) else []:
        try:
            if it.get("url"):
                nodes.append(DicomWebNode(str(it["url"]), str(it.get("name", ""))))
                continue
            nodes.append(PacsNode(str(it["ae_title"]), str(it["host"]), int(it["port"]), str(it.get("name", ""))))
        except (KeyError, TypeError, ValueError, InputError):
            continue
    return nodes


def save_nodes(settings: QSettings, nodes: list[Any]) -> None:
    settings.setValue(
        "pacs/nodes",
        json.dumps([_node_doc(n) for n in nodes]),
    )


def _node_doc(n: Any) -> dict[str, Any]:
    if hasattr(n, "url"):  # DICOMweb
        return {"name": n.name, "url": n.url}
    return {"name": n.name, "ae_title": n.ae_title, "host": n.host, "port": n.port}


def local_ae(settings: QSettings) -> Any:
    from ..core.pacs import LocalAE

    return LocalAE(str(settings.value("pacs/local_ae", "NODEVIEW")), int(settings.value("pacs/local_port", 11112)))


def study_cache(settings: QSettings) -> Any:
    from ..core.pacs import StudyCache

    root = str(settings.value("pacs/cache_dir", "") or "") or None
    limit_gb = float(settings.value("pacs/cache_limit_gb", 20.0))
    return StudyCache(root, int(limit_gb * 1024**3))


class PacsSettingsDialog(QDialog):
    """PACS nodes (name, AE title, host, port; or name and DICOMweb URL), NodeView's AE title and port,
    the cache."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS settings")
        self.settings = settings
        col = QVBoxLayout(self)
        col.addWidget(QLabel("<b>PACS nodes</b>"))
        self.table = QTableWidget(0, 5, self)
        self.table.setHorizontalHeaderLabels(["Name", "AE title", "Host", "Port", "or DICOMweb URL"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for n in load_nodes(settings):
            if hasattr(n, "url"):
                self._add_row(n.name, "", "", "", n.url)
            else:
                self._add_row(n.name, n.ae_title, n.host, str(n.port), "")
        col.addWidget(self.table)
        row = QHBoxLayout()
        add = QPushButton("Add")
        add.clicked.connect(lambda: self._add_row("", "", "", "104"))
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        col.addLayout(row)
        form = QFormLayout()
        self.ae_edit = QLineEdit(str(settings.value("pacs/local_ae", "NODEVIEW")))
        form.addRow("NodeView AE title", self.ae_edit)
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(int(settings.value("pacs/local_port", 11112)))
        form.addRow("NodeView storage port (C-MOVE)", self.port_spin)
        self.limit_spin = QDoubleSpinBox()
        self.limit_spin.setRange(0.1, 10000)
        self.limit_spin.setSuffix(" GB")
        self.limit_spin.setValue(float(settings.value("pacs/cache_limit_gb", 20.0)))
        form.addRow("Cache size limit", self.limit_spin)
        cache = study_cache(settings)
        clear = QPushButton(f"Clear cache ({cache.size_bytes() / 1e6:.0f} MB)")
        clear.clicked.connect(lambda: (cache.clear(), clear.setText("Clear cache (0 MB)")))
        form.addRow(str(cache.root), clear)
        col.addLayout(form)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #e74c3c;")
        col.addWidget(self.error_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        col.addWidget(buttons)

    def _add_row(self, *values: str) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, v in enumerate(values):
            self.table.setItem(r, c, QTableWidgetItem(v))

    def nodes(self) -> list[Any]:
        from ..core.pacs import DicomWebNode, PacsNode

        out: list[Any] = []
        for r in range(self.table.rowCount()):
            cells = [(self.table.item(r, c).text() if self.table.item(r, c) else "").strip() for c in range(5)]
            if not any(cells):
                continue
            name, aet, host, port, url = cells
            if url:  # a DICOMweb node: the URL is all it needs
                out.append(DicomWebNode(url, name))
                continue
            if not port.isdigit():
                raise ValueError(f"row {r + 1}: the port must be a number")
            out.append(PacsNode(aet, host, int(port), name))
        return out

    def _save(self) -> None:
        from ..core.errors import InputError
        from ..core.pacs import LocalAE

        try:
            nodes = self.nodes()
            LocalAE(self.ae_edit.text().strip(), self.port_spin.value())
        except (InputError, ValueError) as exc:
            self.error_label.setText(str(exc))
            return
        save_nodes(self.settings, nodes)
        self.settings.setValue("pacs/local_ae", self.ae_edit.text().strip())
        self.settings.setValue("pacs/local_port", self.port_spin.value())
        self.settings.setValue("pacs/cache_limit_gb", self.limit_spin.value())
        self.accept()


# ---- the query dialog ----------------------------------------------------------------------------
class PacsDialog(QDialog):
    """Query → studies → series → retrieve (into the cache) → open in the viewer."""

    sigOpenStudy = Signal(str)  # folder of a retrieved study
    sigOpenWithPrior = Signal(str, str)  # folders of a retrieved study and of its prior
    sigPriors = Signal(object)  # list[StudyRow]: the selected study's earlier studies (same PatientID)
    sigStudies = Signal(object)  # list[StudyRow] shown
    sigSeries = Signal(object)  # list[SeriesRow] shown
    sigEcho = Signal(str)  # the Test result line
    sigRetrieved = Signal(object)  # RetrieveResult
    sigFailed = Signal(str)

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query PACS")
        self.setMinimumSize(1000, 640)
        self.settings = settings
        self.runner = TaskRunner(self)
        self.runner.sigProgress.connect(self._on_progress)
        self.runner.sigFinished.connect(self._on_finished)
        self.runner.sigFailed.connect(self._on_failed)
        self.runner.sigCancelled.connect(lambda: self._done("Cancelled"))
        self._then: Callable[[Any], None] | None = None
        self.studies: list[Any] = []
        self.series: list[Any] = []
        self.priors: list[Any] = []  # earlier studies of the selected study's patient, newest first

        col = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("PACS"))
        self.node_combo = QComboBox()
        self.node_combo.setMinimumWidth(280)
        top.addWidget(self.node_combo, 1)
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("C-ECHO (a QIDO-RS query for a DICOMweb node)")
        self.test_button.clicked.connect(self.test_node)
        top.addWidget(self.test_button)
        settings_button = QPushButton("Settings…")
        settings_button.clicked.connect(self.edit_settings)
        top.addWidget(settings_button)
        col.addLayout(top)

        grid = QGridLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. DOE* (wildcards * ?)")
        self.id_edit = QLineEdit()
        self.accession_edit = QLineEdit()
        self.description_edit = QLineEdit()
        self.modality_combo = QComboBox()
        self.modality_combo.addItems(MODALITIES)
        self.date_combo = QComboBox()
        self.date_combo.addItems(["any", "today", "yesterday", "last 7 days", "between"])
        self.date_from = QDateEdit(QDate.currentDate().addDays(-30))
        self.date_to = QDateEdit(QDate.currentDate())
        for d in (self.date_from, self.date_to):
            d.setCalendarPopup(True)
            d.setDisplayFormat("yyyy-MM-dd")
            d.setEnabled(False)
        self.date_combo.currentTextChanged.connect(
            lambda t: [d.setEnabled(t == "between") for d in (self.date_from, self.date_to)]
        )
        for r, c, label, widget in (
            (0, 0, "Patient name", self.name_edit),
            (0, 2, "Patient ID", self.id_edit),
            (0, 4, "Accession", self.accession_edit),
            (1, 0, "Study date", self.date_combo),
            (1, 2, "Modality", self.modality_combo),
            (1, 4, "Description", self.description_edit),
        ):
            grid.addWidget(QLabel(label), r, c)
            grid.addWidget(widget, r, c + 1)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        grid.addLayout(dates, 2, 1)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        grid.addWidget(self.search_button, 2, 5)
        col.addLayout(grid)

        self.study_table = self._table(STUDY_COLUMNS)
        self.study_table.itemSelectionChanged.connect(self._study_selected)
        self.study_table.cellDoubleClicked.connect(lambda r, c: self.retrieve())
        col.addWidget(self.study_table, 3)
        self.series_table = self._table(SERIES_COLUMNS)
        col.addWidget(self.series_table, 2)
        prior_row = QHBoxLayout()
        self.prior_label = QLabel("")
        self.prior_label.setToolTip("Earlier studies of the same patient (Patient ID) on this PACS")
        prior_row.addWidget(self.prior_label, 1)
        self.retrieve_prior_button = QPushButton("Retrieve with prior")
        self.retrieve_prior_button.setToolTip(
            "Retrieve the selected study and the patient's newest earlier study; open them as current and prior"
        )
        self.retrieve_prior_button.clicked.connect(self.retrieve_with_prior)
        self.retrieve_prior_button.setEnabled(False)
        prior_row.addWidget(self.retrieve_prior_button)
        col.addLayout(prior_row)

        bottom = QHBoxLayout()
        self.status_label = QLabel(f"<span style='color:gray'>{RESEARCH_NOTICE}</span>")
        self.status_label.setWordWrap(True)
        bottom.addWidget(self.status_label, 1)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        bottom.addWidget(self.progress)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.cancel_button.hide()
        bottom.addWidget(self.cancel_button)
        self.send_button = QPushButton("Send files…")
        self.send_button.setToolTip("C-STORE DICOM files (e.g. an exported SR and SEG) to this PACS")
        self.send_button.clicked.connect(self.send_files_dialog)
        bottom.addWidget(self.send_button)
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.setToolTip("C-GET (C-MOVE if the PACS has no C-GET) into the local cache")
        self.retrieve_button.clicked.connect(self.retrieve)
        bottom.addWidget(self.retrieve_button)
        col.addLayout(bottom)
        self.reload_nodes()

    @staticmethod
    def _table(columns: tuple[str, ...]) -> QTableWidget:
        table = QTableWidget(0, len(columns))
        table.setHorizontalHeaderLabels(list(columns))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setStretchLastSection(True)
        return table

    # ---- state -------------------------------------------------------------------------------
    def reload_nodes(self) -> None:
        self.node_combo.clear()
        for n in load_nodes(self.settings):
            self.node_combo.addItem(f"{n.label}  ({n})", n)
        if self.node_combo.count() == 0:
            self.status_label.setText("No PACS configured: press Settings… to add one.")

    def node(self) -> Any:
        return self.node_combo.currentData()

    def edit_settings(self) -> None:
        if PacsSettingsDialog(self.settings, self).exec():
            self.reload_nodes()

    def query(self) -> Any:
        """The query the form describes."""
        from datetime import date

        from ..core.pacs import StudyQuery, date_range

        def py(d: QDateEdit) -> date:
            q = d.date()
            return date(q.year(), q.month(), q.day())

        modality = self.modality_combo.currentText()
        return StudyQuery(
            patient_name=self.name_edit.text().strip(),
            patient_id=self.id_edit.text().strip(),
            study_date=date_range(self.date_combo.currentText(), start=py(self.date_from), end=py(self.date_to)),
            modality="" if modality == "any" else modality,
            accession_number=self.accession_edit.text().strip(),
            description=self.description_edit.text().strip(),
        )

    # ---- actions (each runs in the worker) ---------------------------------------------------
    def _start(self, text: str, work: Any, then: Callable[[Any], None], cancellable: bool = False) -> bool:
        node = self.node()
        if node is None:
            self.status_label.setText("Choose a PACS first (Settings…).")
            return False
        if self.runner.busy:
            self.status_label.setText("Busy: wait, or cancel the retrieve.")
            return False
        self._then = then
        self.status_label.setText(text)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.setVisible(cancellable)
        self.runner.start(work)
        return True

    def test_node(self) -> None:
        from ..core.pacs import echo

        node, local = self.node(), local_ae(self.settings)

        def show(seconds: Any) -> None:
            kind = "QIDO-RS" if hasattr(node, "url") else "C-ECHO"
            line = f"{kind} {node.label}: ok ({1000 * float(seconds):.0f} ms)"
            self._done(line)
            self.sigEcho.emit(line)

        self._start(f"Testing {node}…" if node else "", lambda p, s: echo(node, local), show)

    def search(self) -> None:
        from ..core.errors import InputError
        from ..core.pacs import find_studies

        try:
            query = self.query()
        except InputError as exc:
            self.status_label.setText(str(exc))
            return
        node, local = self.node(), local_ae(self.settings)
        self._start("Searching…", lambda p, s: find_studies(node, query, local), self._show_studies)

    def _show_studies(self, rows: Any) -> None:
        self.study_table.clearSelection()  # a new list: pick a study again to list its series
        self.studies = list(rows)
        cache = study_cache(self.settings)
        self.study_table.setRowCount(len(self.studies))
        for r, s in enumerate(self.studies):
            date = f"{s.date[:4]}-{s.date[4:6]}-{s.date[6:]}" if len(s.date) == 8 else s.date
            values = ["●" if cache.is_cached(s.study_uid) else "", date, s.patient_name.replace("^", " "), s.patient_id,
                      s.description, ", ".join(s.modalities), _n(s.n_series), _n(s.n_images)]  # fmt: skip
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                if c == 0:
                    item.setToolTip("in the local cache" if v else "")
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.study_table.setItem(r, c, item)
        self.study_table.resizeColumnsToContents()
        self.series_table.setRowCount(0)
        self._done(f"{len(self.studies)} study(ies) found (● = already in the local cache)")
        self.sigStudies.emit(self.studies)

    def selected_study(self) -> Any:
        rows = self.study_table.selectionModel().selectedRows()
        return self.studies[rows[0].row()] if rows else None

    def selected_series(self) -> Any:
        rows = self.series_table.selectionModel().selectedRows()
        return self.series[rows[0].row()] if rows else None

    def _study_selected(self) -> None:
        from ..core.pacs import PacsError, find_prior_studies, find_series

        study = self.selected_study()
        self._set_priors([], None)
        if study is None or self.runner.busy:
            return
        node, local = self.node(), local_ae(self.settings)

        def work(progress, stop):  # type: ignore[no-untyped-def]
            series = find_series(node, study.study_uid, local)
            try:  # the patient's earlier studies: a PACS that refuses the query still lists the series
                priors = find_prior_studies(node, study.patient_id, study.study_uid, study.date, local)
            except PacsError:
                priors = None
            return series, priors, study

        self._start("Listing series…", work, self._show_series)

    def _set_priors(self, priors: list[Any] | None, study: Any) -> None:
        """Show what the PACS holds from before ``study`` (None: it could not be asked)."""
        self.priors = list(priors or [])
        self.retrieve_prior_button.setEnabled(bool(self.priors))
        if study is None:
            self.prior_label.setText("")
            self.retrieve_prior_button.setText("Retrieve with prior")
            return
        if priors is None:
            self.prior_label.setText("Earlier studies of this patient: the PACS did not answer")
        elif not self.priors:
            self.prior_label.setText("No earlier study of this patient on this PACS")
        else:
            newest = self.priors[0]
            more = f" (+{len(self.priors) - 1} older)" if len(self.priors) > 1 else ""
            self.prior_label.setText(f"Prior of this patient on this PACS: {_iso(newest.date)}{more}")
            self.retrieve_prior_button.setText(f"Retrieve with prior (found: {_iso(newest.date)})")
        self.sigPriors.emit(list(self.priors))

    def _show_series(self, found: Any) -> None:
        rows, priors, study = found
        if study is not self.selected_study():  # the selection moved on while the PACS answered
            return
        self._set_priors(priors, study)
        self.series = list(rows)
        self.series_table.setRowCount(len(self.series))
        for r, s in enumerate(self.series):
            for c, v in enumerate([_n(s.number), s.modality, s.description, _n(s.n_images)]):
                self.series_table.setItem(r, c, QTableWidgetItem(v))
        self.series_table.resizeColumnsToContents()
        self._done(f"{len(self.series)} series")
        self.sigSeries.emit(self.series)

    def retrieve(self) -> None:
        """Retrieve the selected study (or only the selected series) into the cache, then open it."""
        from ..core.pacs import retrieve

        study = self.selected_study()
        if study is None:
            self.status_label.setText("Select a study first.")
            return
        series = self.selected_series()
        node, local, cache = self.node(), local_ae(self.settings), study_cache(self.settings)
        series_uid = series.series_uid if series is not None else None
        folder = cache.folder(study.study_uid)
        if series_uid is None and cache.is_current(study.study_uid, study.n_images):
            cache.touch(study.study_uid)  # the PACS has nothing new for it (e.g. no SR added since)
            self._done("Opened from the local cache")
            self.sigOpenStudy.emit(str(folder))
            return

        def work(progress, stop):  # type: ignore[no-untyped-def]
            result = retrieve(node, study.study_uid, folder, local, series_uid=series_uid, progress=progress,
                              should_stop=stop)  # fmt: skip
            if series_uid is None and result.n_failed == 0:
                cache.mark_complete(study.study_uid, sorted(p.name for p in folder.iterdir() if p.is_dir()),
                                    result.n_received)  # fmt: skip
            cache.enforce_limit(keep=study.study_uid)
            return result

        def opened(result: Any) -> None:
            self._done(f"{result.method}: {result.n_received} image(s) retrieved, {result.n_failed} failed")
            self.sigRetrieved.emit(result)
            if result.n_received:
                self.sigOpenStudy.emit(str(folder))

        self._start("Retrieving…", work, opened, cancellable=True)

    def retrieve_with_prior(self) -> None:
        """Retrieve the selected study and the newest prior of its patient into the cache (each
        only when the cache is behind the PACS), then open them as current and prior."""
        from ..core.pacs import retrieve

        study = self.selected_study()
        if study is None or not self.priors:
            self.status_label.setText("Select a study with a prior first.")
            return
        prior = self.priors[0]
        node, local, cache = self.node(), local_ae(self.settings), study_cache(self.settings)

        def work(progress, stop):  # type: ignore[no-untyped-def]
            received = 0
            for row in (study, prior):
                folder = cache.folder(row.study_uid)
                if cache.is_current(row.study_uid, row.n_images):
                    cache.touch(row.study_uid)
                    continue
                result = retrieve(node, row.study_uid, folder, local, progress=progress, should_stop=stop)
                if result.n_failed == 0:
                    cache.mark_complete(row.study_uid, sorted(p.name for p in folder.iterdir() if p.is_dir()),
                                        result.n_received)  # fmt: skip
                received += result.n_received
            cache.enforce_limit(keep=study.study_uid)
            return received

        def opened(received: Any) -> None:
            self._done(f"{received} image(s) retrieved; opening the study with its prior of {_iso(prior.date)}")
            self.sigOpenWithPrior.emit(str(cache.folder(study.study_uid)), str(cache.folder(prior.study_uid)))

        self._start("Retrieving the study and its prior…", work, opened, cancellable=True)

    def send_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Send DICOM files", "", "DICOM (*.dcm);;All files (*)")
        if files:
            self.send_files(files)

    def send_files(self, files: list[str]) -> None:
        from ..core.pacs import send

        node, local = self.node(), local_ae(self.settings)

        def sent(result: Any) -> None:
            failed = f", {len(result.failed)} refused: {result.failed[0]}" if result.failed else ""
            self._done(f"{result.n_sent} object(s) sent to {node.label}{failed}")

        self._start("Sending…", lambda p, s: send(node, files, local, progress=p, should_stop=s), sent, True)

    # ---- worker results ----------------------------------------------------------------------
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_finished(self, result: object) -> None:
        then, self._then = self._then, None
        if then is not None:
            then(result)

    def _on_failed(self, message: str) -> None:
        self._then = None
        self._done(f"<span style='color:#e74c3c'>{message}</span>")
        self.sigFailed.emit(message)

    def _done(self, text: str) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.status_label.setText(text)

    def closeEvent(self, event: Any) -> None:
        if self.runner.busy:
            if QMessageBox.question(self, "Cancel?", "A PACS operation is running. Cancel it?") != (
                QMessageBox.StandardButton.Yes
            ):
                event.ignore()
                return
            self.runner.cancel()
        super().closeEvent(event)


def _n(value: Any) -> str:
    return "" if value is None else str(value)


def _iso(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 else d


__all__ = ["PacsDialog", "PacsSettingsDialog", "load_nodes", "local_ae", "save_nodes", "study_cache"]
