"""The prior beside the current study: registered in a worker, resliced and synchronised, nudged."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt

from nodeview.core.views import ViewKind
from nodeview.core.windowing import Window
from nodeview.qt.main_window import MainWindow

from .followup_pairs import cached_pair


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    from nodeview.core.io.dicom_write import SeriesSpec, write_series

    pair = cached_pair("coarse")
    root = tmp_path_factory.mktemp("prior")
    g = pair.prior.geometry
    write_series(pair.prior.hu_zyx, root / "prior", SeriesSpec(
        spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz), patient_id="PAIR-1",
        patient_name="PAIR^TEST", study_date=pair.prior.patient.study_date))
    g = pair.current.geometry  # the current study beside it, for the prior found automatically
    write_series(pair.current.hu_zyx, root / "current", SeriesSpec(
        spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz), patient_id="PAIR-1",
        patient_name="PAIR^TEST", study_date=pair.current.patient.study_date, seed=2))
    return pair, root / "prior"


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NODEVIEW_SETTINGS_DIR", str(tmp_path))
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1400, 700)
    w.show()
    yield w
    w.prior_dock.panel.runner.cancel()
    w.prior_dock.panel.runner.wait(30.0)


def _prior_pixel(panel, xyz_mm):
    """HU of the prior view's image at the current-study point ``xyz_mm`` (the crosshair there)."""
    plane = panel._plane
    u, v, _ = plane.index_to_display(panel.current.geometry.mm_to_index(xyz_mm))
    du, dv = plane.pixel_mm
    return int(panel.view.image_item.image[int(v // dv), int(u // du)])


def test_open_prior_registers_in_a_worker_and_stays_in_step(qtbot, window, pair_files):
    pair, prior_path = pair_files
    window.show_volume(pair.current)
    panel = window.prior_dock.panel
    progress = []
    panel.runner.sigProgress.connect(lambda d, n: progress.append(d))
    window.open_prior(str(prior_path))
    assert window.prior_dock.isVisible() and window.viewer.maximised is None  # three views, beside the prior's three
    qtbot.waitUntil(lambda: panel.registration is not None, timeout=180_000)
    assert progress and max(progress) <= 100
    assert "lung surfaces" in panel.quality.text() and panel.registration.surface_after_mm < 3.0
    truth = np.asarray(pair.current_to_prior)
    stable = next(t for t in pair.nodules if t.change == "stable")
    new = next(t for t in pair.nodules if t.change == "new")
    error = np.linalg.norm(panel.registration.to_prior([stable.current_xyz])[0] - (truth[:3, :3] @ stable.current_xyz + truth[:3, 3]))
    assert error < 2.0

    # the crosshair on the stable nodule: the prior view shows the nodule there, on the same slice
    window.controller.set_cursor_mm(np.asarray(stable.current_xyz))
    qtbot.waitUntil(lambda: panel.view.slice_index == window.controller.slice_index(ViewKind.AXIAL))
    assert _prior_pixel(panel, stable.current_xyz) > -400
    assert panel.view.v_line.value() == pytest.approx(window.viewer.views[ViewKind.AXIAL].v_line.value())
    # where the new nodule is, the prior shows lung
    window.controller.set_cursor_mm(np.asarray(new.current_xyz))
    qtbot.waitUntil(lambda: panel.view.slice_index == window.controller.slice_index(ViewKind.AXIAL))
    assert _prior_pixel(panel, new.current_xyz) < -500

    # scrolling in the prior view moves the current study (the controller owns the state)
    before = window.controller.slice_index(ViewKind.AXIAL)
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key.Key_Up)
    qtbot.waitUntil(lambda: window.controller.slice_index(ViewKind.AXIAL) == before + 1)
    assert panel.view.slice_index == before + 1

    # window/level and zoom follow
    window.controller.set_window(Window(-500, 1200))
    assert tuple(panel.view.image_item.levels) == pytest.approx((-1100, 100))
    axial = window.viewer.views[ViewKind.AXIAL]
    axial.zoom_to(100.0, 120.0, 60.0)
    qtbot.waitUntil(lambda: abs(panel.view.view_box.viewRect().center().x() - axial.view_box.viewRect().center().x()) < 1.0)

    # the nudge: Shift+Right moves the prior 1 mm along x, and the quality is re-measured
    reg0 = panel.registration
    qtbot.keyClick(panel.view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert panel.nudge() == (1.0, 0.0, 0.0)
    assert np.allclose(panel.registration.to_prior([[0.0, 0.0, 0.0]]) - reg0.to_prior([[0.0, 0.0, 0.0]]), [[1.0, 0, 0]])
    panel.nudge_boxes[1].setValue(8.0)
    assert panel.registration.nudge_mm == (1.0, 8.0, 0.0)
    assert panel.registration.surface_after_mm > reg0.surface_after_mm
    # the view shows pixels, not an empty panel
    image = panel.view.grab().toImage()
    assert image.width() > 100 and not image.isNull()

    # another current study drops the prior
    window.show_volume(pair.prior)
    assert panel.registration is None and panel.prior is None


def test_open_prior_without_a_current_study_says_so(qtbot, window, tmp_path):
    window.open_prior(str(tmp_path))
    assert not window.prior_dock.isVisible()
    assert "current study first" in window.statusBar().currentMessage()


def test_bad_prior_fails_with_a_message(qtbot, window, pair_files, tmp_path):
    pair, _ = pair_files
    window.show_volume(pair.current)
    (tmp_path / "note.txt").write_text("not a study")
    failed = []
    window.prior_dock.panel.sigFailed.connect(failed.append)
    window.open_prior(str(tmp_path))
    qtbot.waitUntil(lambda: bool(failed), timeout=60_000)
    assert "could not be opened" in window.prior_dock.panel.title.text()


def test_compare_findings_and_report_with_the_comparison(qtbot, window, pair_files, tmp_path):
    """Detect (a small real ONNX model), compare with the prior through the registration, export."""
    import json

    pytest.importorskip("onnx")
    from .test_detector import make_model

    pair, prior_path = pair_files
    window.settings.setValue("model_path", str(make_model(tmp_path / "m.onnx")))
    window.show_volume(pair.current)
    panel = window.prior_dock.panel
    window.open_prior(str(prior_path))
    qtbot.waitUntil(lambda: panel.registration is not None, timeout=180_000)
    assert not panel.compare_button.isEnabled()  # nothing detected yet
    with qtbot.waitSignal(window.sigDetectionDone, timeout=120_000):
        window.detect()
    qtbot.waitUntil(panel.compare_button.isEnabled, timeout=10_000)
    with qtbot.waitSignal(panel.sigCompared, timeout=180_000):
        qtbot.mouseClick(panel.compare_button, Qt.MouseButton.LeftButton)
    cmp = panel.comparison
    result = window.findings_panel.result
    assert cmp is not None and panel.comparison_for(result) is cmp
    shown = [f for f in result.findings if f.score >= window.findings_panel.threshold]
    assert set(cmp.changes) == {f.id for f in shown}
    assert panel.changes.text().startswith("Compared with CT of 2025-03-02.")
    assert len(panel.changes.text().splitlines()) <= 13
    # the same model on the same anatomy: most findings are found again where the registration puts them
    matched = [c for c in cmp.changes.values() if c.prior is not None]
    from nodeview.core.followup.matching import gate_mm

    diameters = {f.id: f.diameter_mm for f in result.findings}
    assert matched and all(c.distance_mm <= gate_mm(diameters[k], c.prior.diameter_mm) for k, c in cmp.changes.items()
                           if c.prior is not None)
    # most matches are close: the same anatomy, registered
    assert np.median([c.distance_mm for c in matched]) <= 8.0
    # a nudge re-matches at once
    before = {k: c.distance_mm for k, c in cmp.changes.items() if c.prior is not None}
    panel.set_nudge((3.0, 0.0, 0.0))
    assert panel.comparison is not cmp and panel.comparison.registration.nudge_mm == (3.0, 0.0, 0.0)
    assert any(panel.comparison.changes[k].distance_mm != d for k, d in before.items()
               if panel.comparison.changes[k].prior is not None)
    panel.set_nudge((0.0, 0.0, 0.0))
    # the report of this detection carries the comparison
    with qtbot.waitSignal(window.sigReportWritten, timeout=120_000) as written:
        window.save_report(str(tmp_path / "reports"), "followup-report", anonymize=True)
    doc = json.loads(written.args[0][-1].read_text())
    assert doc["comparison"]["prior_study_date"] == "2025-03-02"
    assert doc["impression"]["comparison"] == "Compared with CT of 2025-03-02."
    assert {f["id"] for f in doc["findings"]} == set(cmp.changes)


def _rendered_grey(view, u_mm, v_mm, offset_px=3):
    """Grey level of the view as drawn on screen, ``offset_px`` right and down of the screen-mm
    point (beside the crosshair lines, which pass through the point)."""
    from PySide6.QtCore import QPointF

    image = view.grab().toImage()
    point = view.mapFromScene(view.view_box.mapViewToScene(QPointF(u_mm, v_mm)))
    ratio = image.devicePixelRatio()
    colour = image.pixelColor(int((point.x() + offset_px) * ratio), int((point.y() + offset_px) * ratio))
    return colour.red()


def _grey_std(view) -> float:
    """Standard deviation of the view's grey levels as drawn on screen."""
    image = view.grab().toImage()
    grey = image.convertToFormat(image.Format.Format_Grayscale8)
    return float(np.asarray(grey.constBits()).astype(float).std())


def _zoom_both(qtbot, window, prior_view, kind, u, v, size_mm=30.0):
    """Zoom the current study's view of ``kind`` on (u, v): the prior's view of that kind follows."""
    current = window.viewer.views[kind]
    current.zoom_to(float(u), float(v), size_mm)
    qtbot.waitUntil(lambda: abs(prior_view.view_box.viewRect().center().x() - u) < 1.0
                    and abs(prior_view.view_box.viewRect().center().y() - v) < 1.0)  # fmt: skip
    assert prior_view.view_box.viewRect().width() < 80.0


def test_prior_found_beside_and_shown_in_three_views(qtbot, window, pair_files):
    """Issue 25: File › "Compare with prior (found: DATE)" offers the prior found beside the current
    study (same PatientID, earlier date); the prior shows in axial, coronal and sagittal, each resliced
    through the registration at the current cursor: the stable nodule is drawn bright in all three,
    the new nodule's place is lung in all three; scrolling a prior view moves the current study."""
    import os

    pair, prior_path = pair_files
    finder = window.prior_finder
    assert not finder.action.isEnabled()
    with qtbot.waitSignal(window.sigVolumeShown, timeout=60_000):
        window.open_paths([str(prior_path.parent / "current")])
    qtbot.waitUntil(finder.action.isEnabled, timeout=60_000)
    assert finder.action.text() == "Compare with prior (found: 2025-03-02)"
    assert "Prior study found: CT of 2025-03-02" in window.statusBar().currentMessage()
    assert "PAIR" not in finder.action.text() and "PAIR" not in window.statusBar().currentMessage()
    assert finder.action in window.menuBar().actions()[0].menu().actions()
    panel = window.prior_dock.panel
    finder.action.trigger()
    qtbot.waitUntil(lambda: panel.registration is not None, timeout=180_000)
    assert window.viewer.maximised is None and panel.prior_path == str(prior_path.resolve())
    assert set(panel.views) == {ViewKind.AXIAL, ViewKind.CORONAL, ViewKind.SAGITTAL}

    stable = next(t for t in pair.nodules if t.change == "stable")
    new = next(t for t in pair.nodules if t.change == "new")
    window.controller.set_cursor_mm(np.asarray(stable.current_xyz))
    qtbot.waitUntil(lambda: all(panel.views[k].slice_index == window.controller.slice_index(k) for k in panel.views))
    idx = window.volume.geometry.mm_to_index(stable.current_xyz)
    for kind, view in panel.views.items():
        plane = window.controller.planes[kind]
        assert view.image_item.image.shape == plane.extract(window.volume.hu_zyx, 0).shape  # the current's plane
        u, v, _ = plane.index_to_display(idx)
        du, dv = plane.pixel_mm
        assert view.image_item.image[int(v // dv), int(u // du)] > -400, kind  # the nodule in the data
        _zoom_both(qtbot, window, view, kind, u, v)
        assert _rendered_grey(view, u, v) > 150, kind  # and on screen (lung window: tissue is bright)
        assert view.h_line.value() == pytest.approx(v) and view.v_line.value() == pytest.approx(u)
    idx = window.volume.geometry.mm_to_index(new.current_xyz)
    window.controller.set_cursor_mm(np.asarray(new.current_xyz))
    qtbot.waitUntil(lambda: all(panel.views[k].slice_index == window.controller.slice_index(k) for k in panel.views))
    for kind, view in panel.views.items():
        plane = window.controller.planes[kind]
        u, v, _ = plane.index_to_display(idx)
        du, dv = plane.pixel_mm
        assert view.image_item.image[int(v // dv), int(u // du)] < -500, kind  # lung: not there a year ago
        _zoom_both(qtbot, window, view, kind, u, v)
        assert _rendered_grey(view, u, v) < 110, kind
        # anatomy drawn, not an empty view (waited for: under a loaded machine the zoomed view can be
        # grabbed once before its image item has repainted)
        qtbot.waitUntil(lambda view=view: _grey_std(view) > 20, timeout=10_000)

    # scrolling the prior's coronal view moves the current study's coronal slice
    before = window.controller.slice_index(ViewKind.CORONAL)
    panel.views[ViewKind.CORONAL].sigScroll.emit(1)
    qtbot.waitUntil(lambda: window.controller.slice_index(ViewKind.CORONAL) != before)
    qtbot.waitUntil(lambda: panel.views[ViewKind.CORONAL].slice_index == window.controller.slice_index(ViewKind.CORONAL))

    shot = os.environ.get("NODEVIEW_SCREENSHOT")
    if shot:
        window.controller.set_cursor_mm(np.asarray(stable.current_xyz))
        qtbot.waitUntil(lambda: panel.views[ViewKind.AXIAL].slice_index == window.controller.slice_index(ViewKind.AXIAL))
        for view in window.viewer.views.values():
            view.reset_zoom()
        window.grab().save(shot)
