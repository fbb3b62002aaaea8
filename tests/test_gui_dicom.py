"""GUI (issue 23): File › Export DICOM… writes SR + SEG with the panel's reviews; opening the folder
again shows the SR's findings as loaded (not detected) and the SEG as an overlay."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from nodeview.qt.dicom_export_dialog import DicomExportDialog
from nodeview.qt.main_window import MainWindow

from .dicom_helpers import write_chest


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings)
    w.auto_pick_default = True
    qtbot.addWidget(w)
    w.resize(1400, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_export_then_read_back(qtbot, window, tmp_path):
    study = write_chest(tmp_path / "study" / "ct")
    with qtbot.waitSignal(window.sigVolumeShown, timeout=30000):
        window.open_paths([str(study.parent)])
    assert not window.export_dicom_action.isEnabled()
    with qtbot.waitSignal(window.sigDetectionDone, timeout=120000):
        window.detect()
    assert window.export_dicom_action.isEnabled()
    panel = window.findings_panel
    shown = panel.shown()
    assert len(shown) >= 3
    panel.review(shown[0].id, "accepted")
    panel.review(shown[1].id, "rejected")
    dialog = DicomExportDialog(panel.result.findings, window.report_reviews(), panel.threshold, "", window)
    assert f"Rejected, left out: #{shown[1].id}" in dialog.contents.text()
    dialog.close()
    out = study.parent / "nodeview-dicom"
    with qtbot.waitSignal(window.sigDicomExported, timeout=60000) as blocker:
        assert window.start_dicom_export(str(out), anonymize=False, secondary_capture=False)
    export = blocker.args[0]
    assert export.seg_path is not None and len(export.findings) == len(shown) - 1

    # open the same folder again: the SR's findings come back, marked as loaded, with their reviews
    with qtbot.waitSignal(window.sigFindingsLoaded, timeout=60000) as loaded:
        window.open_paths([str(study.parent)])
    reports = loaded.args[0]
    assert len(reports) == 1 and len(reports[0].findings) == len(shown) - 1
    assert "Loaded, not detected" in panel.summary.text()
    assert panel.table.rowCount() == len(shown) - 1
    kept = [f for f in shown if f.id != shown[1].id]
    got = panel.result.findings
    assert np.allclose([f.center_xyz_mm for f in got], [f.center_xyz_mm for f in kept], atol=1e-3)
    assert panel.status[got[0].id] == "accepted"
    drawn = window.controller.findings
    assert len(drawn) == len(kept)
    # the SEG is drawn: centre the views on the first finding and look at the overlay there
    qtbot.waitUntil(lambda: window.readback.labels is not None, timeout=30000)
    window.controller.focus_finding(got[0])
    rgba = window.readback.overlay_image(next(iter(window.controller.views)))
    assert rgba is not None and (rgba[..., 3] > 0).sum() > 5
    item = next(iter(window.readback._items.values()))
    assert item.isVisible()


def test_export_with_a_prior_carries_the_comparison(qtbot, window, tmp_path):
    """File › Export DICOM after Compare findings: the SR carries each finding's change and the
    comparison study (its Study Instance UID from the prior's images)."""
    import pydicom

    from nodeview.core.export.readback import findings_from_sr

    study = write_chest(tmp_path / "study" / "ct")
    prior = write_chest(tmp_path / "prior" / "ct", study_date="20250302", study_uid="2.25.4242001",
                        series_uid="2.25.4242002")  # fmt: skip
    with qtbot.waitSignal(window.sigVolumeShown, timeout=30000):
        window.open_paths([str(study.parent)])
    panel = window.prior_dock.panel
    window.open_prior(str(prior))
    qtbot.waitUntil(lambda: panel.registration is not None, timeout=180_000)
    with qtbot.waitSignal(window.sigDetectionDone, timeout=120000):
        window.detect()
    qtbot.waitUntil(panel.compare_button.isEnabled, timeout=10_000)
    with qtbot.waitSignal(panel.sigCompared, timeout=180_000):
        panel.compare()
    cmp = panel.comparison
    assert cmp is not None and cmp.changes
    out = study.parent / "nodeview-dicom"  # beside the series: opening the folder again reads it back
    with qtbot.waitSignal(window.sigDicomExported, timeout=60000) as blocker:
        assert window.start_dicom_export(str(out), anonymize=False, secondary_capture=False)
    export = blocker.args[0]
    sr = pydicom.dcmread(export.sr_path)
    assert sr.PertinentOtherEvidenceSequence[0].StudyInstanceUID == "2.25.4242001"
    back = findings_from_sr(export.sr_path, pydicom.dcmread(next(study.iterdir())).FrameOfReferenceUID)
    assert back.comparison is not None and back.comparison.study_uid == "2.25.4242001"
    assert back.comparison.series_uid == "2.25.4242002" and back.comparison.study_date == "2025-03-02"
    by_track = {lf.tracking_id: lf.change for lf in back.findings}
    assert {k: c.change for k, c in cmp.changes.items()} == {
        exp.finding_id: by_track[exp.tracking_id].change for exp in export.findings
    }
    assert len(back.comparison.resolved) == len(cmp.resolved)

    # opening the folder again: the loaded findings say what the comparison was
    with qtbot.waitSignal(window.sigFindingsLoaded, timeout=60000) as loaded:
        window.open_paths([str(study.parent)])
    assert loaded.args[0][0].comparison.study_uid == "2.25.4242001"
    summary = window.findings_panel.summary.text()
    assert "Loaded, not detected" in summary and "Compared with CT of 2025-03-02: " in summary
    n_stable = sum(1 for c in cmp.changes.values() if c.change == "stable")
    assert (f"{n_stable} stable" in summary) == (n_stable > 0) and "Lung-RADS v2022 (suggested)" in summary
