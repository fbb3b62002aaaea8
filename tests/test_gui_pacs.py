"""GUI (issue 23): File › Query PACS… against a real Orthanc: Test (C-ECHO), query, series, retrieve
into the cache and open in the viewer, cached studies marked, errors shown without freezing.

With ``NODEVIEW_SCREENSHOT=out.png`` (run under xvfb-run) the dialog with its results is saved
there: that is how the README's screenshot is made."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import QSettings

from nodeview.core.pacs import LocalAE, PacsNode, send
from nodeview.qt.main_window import MainWindow
from nodeview.qt.pacs_dialog import PacsDialog, load_nodes, save_nodes

from .dicom_helpers import write_chest
from .orthanc import free_port, start_orthanc, stop_orthanc


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    port = free_port()
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-gui"), {"nodeview": ["NODEVIEW", "127.0.0.1", port]})
    ct = write_chest(tmp_path_factory.mktemp("ct") / "ct")
    send(server.node(), sorted(ct.iterdir()), LocalAE("NODEVIEW", port))
    yield server, port, ct
    stop_orthanc(server)


def open_dialog(qtbot, tmp_path: Path, port: int, nodes: list[PacsNode]) -> tuple[MainWindow, PacsDialog]:
    """A main window with these PACS nodes (settings in tmp_path) and its File › Query PACS… dialog open."""
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    save_nodes(settings, nodes)
    settings.setValue("pacs/local_port", port)
    settings.setValue("pacs/cache_dir", str(tmp_path / "cache"))
    window = MainWindow(settings)
    window.auto_pick_default = True
    qtbot.addWidget(window)
    window.show()
    window.open_pacs_dialog()
    dialog = window.findChild(PacsDialog)
    assert dialog is not None and dialog.isVisible()
    return window, dialog


def test_query_retrieve_open(qtbot, tmp_path, pacs):
    server, port, ct = pacs
    nodes = [PacsNode(server.aet, "127.0.0.1", server.dicom_port, "Test PACS"),
             PacsNode("NOBODY", "127.0.0.1", free_port(), "Switched off")]  # fmt: skip
    window, dialog = open_dialog(qtbot, tmp_path, port, nodes)
    assert [n.label for n in load_nodes(window.settings)] == ["Test PACS", "Switched off"]
    dialog.resize(1100, 640)

    # a node that is switched off: a clear error, and the dialog stays usable
    dialog.node_combo.setCurrentIndex(1)
    with qtbot.waitSignal(dialog.sigFailed, timeout=20000) as failed:
        dialog.test_button.click()
    assert "connection refused" in failed.args[0] and "connection refused" in dialog.status_label.text()
    dialog.node_combo.setCurrentIndex(0)
    with qtbot.waitSignal(dialog.sigEcho, timeout=20000) as echoed:
        dialog.test_button.click()
    assert echoed.args[0].startswith("C-ECHO Test PACS: ok")

    dialog.name_edit.setText("DOE*")
    dialog.modality_combo.setCurrentText("CT")
    dialog.date_combo.setCurrentText("between")
    dialog.date_from.setDate(dialog.date_from.date().fromString("2025-12-01", "yyyy-MM-dd"))
    dialog.date_to.setDate(dialog.date_to.date().fromString("2026-01-31", "yyyy-MM-dd"))
    assert dialog.query().study_date == "20251201-20260131"
    with qtbot.waitSignal(dialog.sigStudies, timeout=20000) as found:
        dialog.search_button.click()
    study_uid = str(pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    assert [s.study_uid for s in found.args[0]] == [study_uid]
    assert dialog.study_table.item(0, 0).text() == "" and dialog.study_table.item(0, 2).text() == "DOE JANE"
    with qtbot.waitSignal(dialog.sigSeries, timeout=20000) as series:
        dialog.study_table.selectRow(0)
    assert [(s.modality, s.n_images) for s in series.args[0]] == [("CT", 80)]
    assert dialog.series_table.rowCount() == 1

    dialog.series_table.clearSelection()
    with qtbot.waitSignal(window.sigVolumeShown, timeout=90000) as shown:
        dialog.retrieve_button.click()
    assert shown.args[0].series_uid == series.args[0][0].series_uid
    assert Path(window.source_paths[0]).is_relative_to(tmp_path / "cache")
    assert "80 image(s) retrieved" in dialog.status_label.text()

    with qtbot.waitSignal(dialog.sigStudies, timeout=20000):
        dialog.search_button.click()
    assert dialog.study_table.item(0, 0).text() == "●"  # now in the local cache

    # detect, export with "then send to" the PACS: the SR and SEG arrive there; retrieving the study
    # again (the cache is behind the PACS now) opens it with the SR's findings loaded, not detected
    from nodeview.core.pacs import find_series

    with qtbot.waitSignal(window.sigDetectionDone, timeout=120000):
        window.detect()
    n_shown = len(window.findings_panel.shown())
    with qtbot.waitSignal(window.sigDicomExported, timeout=60000):
        assert window.start_dicom_export(str(tmp_path / "export"), False, False, send_to=load_nodes(window.settings)[0])
    local = LocalAE("NODEVIEW", port)
    assert sorted(s.modality for s in find_series(server.node(), study_uid, local)) == ["CT", "SEG", "SR"]
    with qtbot.waitSignal(dialog.sigStudies, timeout=20000):
        dialog.search_button.click()
    dialog.study_table.selectRow(0)
    qtbot.waitUntil(lambda: dialog.series_table.rowCount() == 3 and not dialog.runner.busy, timeout=20000)
    dialog.series_table.clearSelection()
    with qtbot.waitSignal(window.sigFindingsLoaded, timeout=90000) as loaded:
        dialog.retrieve_button.click()
    assert len(loaded.args[0][0].findings) == n_shown
    assert "Loaded, not detected" in window.findings_panel.summary.text()
    qtbot.waitUntil(lambda: window.readback.labels is not None, timeout=30000)

    shot = os.environ.get("NODEVIEW_SCREENSHOT")
    if shot:
        dialog.study_table.selectRow(0)
        qtbot.waitUntil(lambda: dialog.series_table.rowCount() >= 1 and not dialog.runner.busy, timeout=20000)
        dialog.grab().save(shot)
    dialog.close()


def test_settings_dialog_validates_and_saves(qtbot, tmp_path):
    from nodeview.qt.pacs_dialog import PacsSettingsDialog, local_ae

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    dialog = PacsSettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog._add_row("Main PACS", "BAD\\AET", "pacs.local", "4242")
    dialog._save()
    assert "not a valid AE title" in dialog.error_label.text() and load_nodes(settings) == []
    dialog.table.item(0, 1).setText("ORTHANC")
    dialog.ae_edit.setText("MYVIEW")
    dialog.port_spin.setValue(11999)
    dialog._save()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert [(n.label, str(n)) for n in load_nodes(settings)] == [("Main PACS", "ORTHANC@pacs.local:4242")]
    assert (local_ae(settings).ae_title, local_ae(settings).port) == ("MYVIEW", 11999)


def test_prior_in_the_study_list_retrieve_with_prior(qtbot, tmp_path):
    """Issue 25: selecting a study lists its patient's earlier studies (C-FIND by PatientID on the real
    Orthanc); "Retrieve with prior" brings both into the cache and opens them as current and prior
    (registered, in the prior panel)."""
    port = free_port()
    server = start_orthanc(tmp_path / "orthanc", {"nodeview": ["NODEVIEW", "127.0.0.1", port]})
    try:
        local = LocalAE("NODEVIEW", port)
        current = write_chest(tmp_path / "ct" / "current")
        prior = write_chest(tmp_path / "ct" / "prior", study_date="20250302", study_uid="2.25.5252001",
                            series_uid="2.25.5252002")  # fmt: skip
        for folder in (current, prior):
            assert send(server.node(), sorted(folder.iterdir()), local).failed == ()
        window, dialog = open_dialog(
            qtbot, tmp_path, port, [PacsNode(server.aet, "127.0.0.1", server.dicom_port, "Test PACS")]
        )
        dialog.id_edit.setText("PAT-12345")
        with qtbot.waitSignal(dialog.sigStudies, timeout=20000) as found:
            dialog.search_button.click()
        assert [s.date for s in found.args[0]] == ["20260101", "20250302"]
        with qtbot.waitSignal(dialog.sigPriors, timeout=20000) as priors:
            dialog.study_table.selectRow(0)
        assert [s.study_uid for s in priors.args[0]] == ["2.25.5252001"]
        assert dialog.prior_label.text() == "Prior of this patient on this PACS: 2025-03-02"
        assert dialog.retrieve_prior_button.isEnabled()
        assert dialog.retrieve_prior_button.text() == "Retrieve with prior (found: 2025-03-02)"
        with qtbot.waitSignal(dialog.sigPriors, timeout=20000) as priors:  # the older study has none
            dialog.study_table.selectRow(1)
        assert priors.args[0] == [] and not dialog.retrieve_prior_button.isEnabled()
        assert dialog.prior_label.text() == "No earlier study of this patient on this PACS"
        with qtbot.waitSignal(dialog.sigPriors, timeout=20000):
            dialog.study_table.selectRow(0)
        panel = window.prior_dock.panel
        with qtbot.waitSignal(window.sigVolumeShown, timeout=90000) as shown:
            dialog.retrieve_prior_button.click()
        assert shown.args[0].patient.study_date == "20260101"
        qtbot.waitUntil(lambda: panel.registration is not None, timeout=180_000)
        assert panel.prior.patient.study_date == "20250302" and panel.prior.series_uid == "2.25.5252002"
        assert Path(panel.prior_path).is_relative_to(tmp_path / "cache")
        dialog.close()
    finally:
        stop_orthanc(server)
