"""File › Export report… in the viewer: enabled after detection, the dialog's choices, the findings
panel's reviews and threshold in the report, the write in a worker, and asking before replacing."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QSettings

from nodeview.core.detect.detector import DetectionResult
from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.qt.findings_panel import slider_position
from nodeview.qt.main_window import MainWindow
from nodeview.qt.report_dialog import ReportDialog

from .test_report import MODEL, _finding


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui-report")
    hu = np.full((20, 64, 64), -850, dtype=np.int16)
    hu[8:12, 28:34, 28:34] = 40
    write_series(
        hu,
        root / "ct",
        SeriesSpec(
            spacing_zyx=(2.0, 1.0, 1.0),
            origin_xyz=(-32.0, -32.0, -20.0),
            patient_name="MUSTERMANN^ERIKA",
            patient_id="PAT-12345",
        ),
    )
    return root / "ct"


@pytest.fixture
def window(qtbot, tmp_path, small_study):
    w = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w.auto_pick_default = True
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.sigVolumeShown, timeout=30000):
        w.open_paths([str(small_study)])
    return w


def _finish_detection(window):
    """What the detection worker's result does (the detector itself is tested elsewhere)."""
    c = window.volume.geometry.center_mm()
    findings = tuple(_finding(i, c + np.array([6.0 * i - 12, 0, 0]), 6.0, s) for i, s in ((1, 0.9), (2, 0.8), (3, 0.3)))
    window._pending = "detect"
    window._task_study = window.study_generation
    window._on_task_finished(DetectionResult(findings, 9, MODEL, {"detect": 0.5}))


def test_export_writes_reviews_and_threshold_and_asks_before_replacing(qtbot, window, tmp_path, monkeypatch):
    assert not window.export_report_action.isEnabled()
    _finish_detection(window)
    assert window.export_report_action.isEnabled()
    panel = window.findings_panel
    panel.review(1, "accepted")
    panel.review(2, "rejected")
    panel.slider.setValue(slider_position(0.2))  # finding 3 (score 0.3) is now in
    with qtbot.waitSignal(window.sigReportWritten, timeout=30000) as blocker:
        window.save_report(str(tmp_path / "out"), "case-a", anonymize=True)
    paths = blocker.args[0]
    assert [p.name for p in paths] == ["case-a.png", "case-a.json"]
    doc = json.loads(paths[-1].read_text())
    assert doc["min_score"] == pytest.approx(0.2, abs=0.002)  # the slider position nearest 0.2
    assert doc["threshold"] == window.findings_panel.result.model.threshold  # the model's operating threshold
    assert {f["id"]: f["review"] for f in doc["findings"]} == {1: "accepted", 2: "rejected", 3: "unreviewed"}
    assert "patient_id" not in doc["study"] and b"PAT-12345" not in paths[0].read_bytes()
    assert "Report saved" in window.statusBar().currentMessage()
    # the same name again: the window asks; "No" keeps the old report
    before = paths[0].read_bytes()
    asked = []
    monkeypatch.setattr(window, "confirm_overwrite", lambda existing: asked.append(existing) or False)
    window.save_report(str(tmp_path / "out"), "case-a", anonymize=False)
    assert asked and asked[0][0].name == "case-a.json" and paths[0].read_bytes() == before
    assert not window.runner.busy and window.statusBar().currentMessage() == "Report not saved"
    monkeypatch.setattr(window, "confirm_overwrite", lambda existing: True)
    with qtbot.waitSignal(window.sigReportWritten, timeout=30000):
        window.save_report(str(tmp_path / "out"), "case-a", anonymize=False)
    assert json.loads(paths[-1].read_text())["study"]["patient_id"] == "PAT-12345"


def test_dialog_lists_what_goes_in_and_refuses_a_name_with_patient_data(qtbot, window, tmp_path):
    _finish_detection(window)
    window.findings_panel.review(2, "rejected")
    result = window.findings_panel.result
    dialog = ReportDialog(window.volume, result.findings, window.report_reviews(), 0.5, str(tmp_path), window)
    qtbot.addWidget(dialog)
    text = dialog.findChildren(type(dialog.error_label))
    contents = " ".join(label.text() for label in text)
    assert "1 finding(s) with nodule score ≥ 0.500 get key images" in contents and "#2" in contents
    assert dialog.stem().startswith("nodeview-report_") and "12345" not in dialog.stem()
    assert dialog.problem() == ""
    dialog.name_edit.setText("mustermann-ct.png")
    assert dialog.stem() == "mustermann-ct" and dialog.problem() == ""
    dialog.anonymize_box.setChecked(True)
    assert "patient data" in dialog.problem()
    dialog._accept_if_valid()
    assert not dialog.result() and "patient data" in dialog.error_label.text()


def test_findings_panel_shows_the_detection_caveats(window):
    panel = window.findings_panel
    _finish_detection(window)
    assert panel.caveats.isHidden()  # no caveat, no line
    c = window.volume.geometry.center_mm()
    window._pending = "detect"
    window._task_study = window.study_generation
    caveat = "Slices are 5 mm thick: the detector finds fewer nodules."
    window._on_task_finished(DetectionResult((_finding(1, c, 6.0, 0.9),), 9, MODEL, {}, (caveat,)))
    assert not panel.caveats.isHidden() and panel.caveats.text() == f"Caution: {caveat}"
