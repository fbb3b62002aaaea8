"""Detection in the viewer: worker run, overlays on pixels, slider, review, focus, cancel, stale results."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from PySide6.QtCore import QSettings

from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.views import box_on_slice
from nodeview.qt.findings_panel import slider_position
from nodeview.qt.main_window import MainWindow
from nodeview.qt.viewer import malignancy_colour

from .test_candidates import _chest
from .test_detector import GOOD_META, make_model
from .test_gui import _colour_near, _device_point, _grab


@pytest.fixture(scope="module")
def chest_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui-detect")
    hu, g, centres, diameters, _ = _chest(0)
    write_series(hu, root / "ct", SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz)))
    meta = {**GOOD_META, "malignancy_label": "half the nodule probability (a test model), not pathology"}
    return root / "ct", make_model(root / "m.onnx", meta), centres, diameters


@pytest.fixture
def window(qtbot, tmp_path, chest_study):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue("model_path", str(chest_study[1]))
    w = MainWindow(settings)
    w.auto_pick_default = True
    qtbot.addWidget(w)
    w.resize(1600, 700)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.sigVolumeShown, timeout=30000):
        w.open_paths([str(chest_study[0])])
    return w


def _detect(qtbot, window):
    with qtbot.waitSignal(window.sigDetectionDone, timeout=60000) as blocker:
        window.detect_action.trigger()
    return blocker.args[0]


def test_detect_draws_boxes_where_the_findings_are(qtbot, window, chest_study):
    _, _, centres, diameters = chest_study
    result = _detect(qtbot, window)
    panel = window.findings_panel
    assert window.findings_dock.isVisible() and panel.table.rowCount() == len(panel.shown()) > 0
    # the malignancy column says what the score was trained on (the model file's malignancy_label)
    tip = panel.table.horizontalHeaderItem(6).toolTip()
    assert result.model.malignancy_meaning and result.model.malignancy_meaning in tip
    assert "not pathology" in tip
    # focus the finding nearest the 15 mm solid nodule: all views centre on it and draw its box
    target = min(panel.shown(), key=lambda f: np.linalg.norm(np.subtract(f.center_xyz_mm, centres[3])))
    panel.select_finding(target.id)
    ctl = window.controller
    # the views centre on the nodule's extent (its box), not on the detector's peak near its margin
    box_centre = (np.asarray(target.bbox_min_xyz_mm) + np.asarray(target.bbox_max_xyz_mm)) / 2
    qtbot.waitUntil(lambda: np.allclose(ctl.cursor_mm(), box_centre, atol=1.0), timeout=5000)
    colour = malignancy_colour(target.malignancy)
    for kind, view in window.viewer.views.items():
        rect = box_on_slice(ctl.planes[kind], ctl.volume.geometry, target.bbox_min_xyz_mm, target.bbox_max_xyz_mm,
                            ctl.slice_index(kind))
        assert rect is not None
        assert any(abs(r.x() - rect[0]) < 1e-6 and abs(r.y() - rect[1]) < 1e-6 for r in view.overlay_rects()), kind
        img = _grab(view.viewport())
        x0, y0 = _device_point(view, rect[0], rect[1])
        x1, y1 = _device_point(view, rect[2], rect[3])
        mid_y = (y0 + y1) // 2
        assert _colour_near(img, x0, mid_y, colour, radius=2, tol=90), kind  # left edge of the box
        assert _colour_near(img, x1, mid_y, colour, radius=2, tol=90), kind  # right edge
    assert result.n_candidates > 0


def test_slider_filters_live_and_review(qtbot, window):
    _detect(qtbot, window)
    panel = window.findings_panel
    panel.slider.setValue(slider_position(0.2))
    assert panel.threshold == pytest.approx(0.2, abs=0.002) and "score ≥ 0.200" in panel.threshold_label.text()
    many = len(panel.shown())
    panel.slider.setValue(slider_position(0.95))
    few = len(panel.shown())
    assert many > few
    drawn_before = sum(len(v.overlay_rects()) for v in window.viewer.views.values())
    panel.slider.setValue(slider_position(0.2))
    first = panel.shown()[0]
    panel.review(first.id, "rejected")
    assert first not in panel.visible() and first in panel.shown()
    assert first not in window.controller.findings
    panel.review(first.id, "accepted")
    assert panel.accepted() == [first] and first in window.controller.findings
    assert "accepted" in panel.table.item(0, 8).text()
    assert drawn_before >= 0


def test_cancel_detection(qtbot, window):
    with qtbot.waitSignal(window.runner.sigCancelled, timeout=60000):
        window.detect_action.trigger()
        window.cancel_work()
    assert window.findings_panel.result is None


def test_stale_detection_result_is_ignored(qtbot, window, chest_study, tmp_path):
    """Opening another study while detection runs: the old result never reaches the panel."""
    hu, g, _, _, _ = _chest(1)
    write_series(hu, tmp_path / "other", SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz),
                                                   seed=5, series_description="other"))
    done = []
    window.sigDetectionDone.connect(done.append)
    window.detect_action.trigger()
    with qtbot.waitSignal(window.sigVolumeShown, timeout=60000):
        window.open_paths([str(tmp_path / "other")])
    qtbot.wait(500)
    window.runner.wait(30)
    qtbot.wait(200)
    assert done == [] and window.findings_panel.result is None
    assert window.volume.description == "other"


def test_missing_model_is_a_clear_message(qtbot, window, tmp_path):
    window.settings.setValue("model_path", str(tmp_path / "none.onnx"))
    messages = []
    window.sigLoadFailed.connect(messages.append)
    window.auto_pick_default = True
    window.detect()
    assert messages and "No nodule model" in messages[0]


def test_about_shows_model_card_section(qtbot, window):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from nodeview.qt.widgets import AboutDialog

    seen = {}

    def look():
        dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, AboutDialog) and w.isVisible())
        avail = dialog.screen().availableGeometry()
        seen["size"] = (dialog.frameGeometry().width(), dialog.frameGeometry().height(), avail.height())
        seen["text"] = dialog.card.toPlainText()
        seen["markdown"] = dialog.card.toMarkdown()
        dialog.accept()

    from pathlib import Path

    Path(window.model_path()).with_suffix(".md").write_text(
        "# Model card: test\n\n**Research use only.**\n\n| split | CPM |\n|---|---|\n| test | 0.70 |\n"
        + "\n".join(f"- line {n}" for n in range(200)), encoding="utf-8"
    )
    QTimer.singleShot(200, look)
    window.show_about()
    w, h, screen_h = seen["size"]
    assert h <= screen_h  # the OK button is on screen
    # the card is rendered Markdown: headings and tables become text, not '#' and '|' source
    text = seen["text"]
    assert "Model card: test" in text and "# Model card" not in text and "|---" not in text and "**" not in text
    assert "line 199" in text  # all of it, in the scrolling browser
