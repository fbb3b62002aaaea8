"""The viewer as a radiologist reads (issue 24): never acting on the wrong study, the title, Detect
on non-CT, measurements per slice with undo, crosshair toggle, interpolated reformats, the findings
table, About, wheel and touchpad, the reading keys and overlays. Real event loop (pytest-qt);
pixels checked where the change is visual."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pydicom
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel

from nodeview import RESEARCH_NOTICE
from nodeview.core.detect.detector import DetectionResult
from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.views import ViewKind
from nodeview.qt.findings_panel import slider_position
from nodeview.qt.main_window import MainWindow
from nodeview.qt.slice_view import MEASURE_COLOUR

from .test_gui import _colour_near, _device_point, _grab
from .test_report import MODEL, _finding


# ---- studies ------------------------------------------------------------------------------------
def _write(folder, hu, **spec):
    spec.setdefault("spacing_zyx", (2.0, 1.0, 1.0))
    spec.setdefault("origin_xyz", (-32.0, -32.0, -20.0))
    write_series(hu, folder, SeriesSpec(**spec))
    return folder


def _set_tags(folder, **tags):
    """Add header values the writer has no option for (kernel, default window)."""
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(path)


def _block_volume(shape=(20, 64, 64)):
    hu = np.full(shape, -850, dtype=np.int16)
    hu[:, 20:44, 20:44] = 100  # a uniform block: ROI statistics are known
    return hu


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("reading")
    a = _write(root / "a", _block_volume(), series_description="Chest 2mm A", series_number=3)
    b = _write(
        root / "b",
        _block_volume(),
        series_description="",
        series_number=7,
        study_date="20240102",
        patient_name="MUSTERMANN^ERIKA",
        patient_id="PAT-12345",
        seed=5,
    )
    _set_tags(b, ConvolutionKernel="B45f", WindowCenter="-500", WindowWidth="1400")
    mr = _write(root / "mr", _block_volume(), modality="MR", series_description="T1 MR", seed=9)
    stripes = np.where((np.arange(16) % 2 == 0)[:, None, None], -1000, 1000) * np.ones((16, 48, 48))
    st = _write(root / "stripes", stripes.astype(np.int16), spacing_zyx=(5.0, 0.7, 0.7), seed=11)
    return {"a": a, "b": b, "mr": mr, "stripes": st}


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w.auto_pick_default = True
    qtbot.addWidget(w)
    w.resize(1500, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def _open(qtbot, window, path, timeout=30000):
    with qtbot.waitSignal(window.sigVolumeShown, timeout=timeout) as blocker:
        window.open_paths([str(path)])
    return blocker.args[0]


def _drag(view, a_mm, b_mm, button=Qt.MouseButton.LeftButton, mods=Qt.KeyboardModifier.NoModifier, steps=8):
    vp = view.viewport()
    QApplication.processEvents()  # deliver pending repaints and hover updates first, as a hand would
    # pyqtgraph drops a mouse move that comes within 1/mouseRateLimit s (10 ms) of the scene's last
    # one; a drag whose first move is dropped is a click. A hand never starts a drag that soon after
    # the last one, a fast test does: wait until the scene takes moves again.
    import pyqtgraph as pg
    from pyqtgraph.GraphicsScene.GraphicsScene import getMillis

    scene, limit_ms = view.scene(), 1000.0 / max(float(pg.getConfigOption("mouseRateLimit")), 1e-3)
    while getMillis() - scene._lastMoveEventTime < limit_ms:
        time.sleep(0.002)
    pa, pb = QPoint(*_device_point(view, *a_mm)), QPoint(*_device_point(view, *b_mm))
    QTest.mousePress(vp, button, mods, pa)
    for t in np.linspace(0, 1, steps)[1:]:
        p = QPointF(pa.x() + (pb.x() - pa.x()) * t, pa.y() + (pb.y() - pa.y()) * t)
        QApplication.sendEvent(
            vp, QMouseEvent(QEvent.Type.MouseMove, p, vp.mapToGlobal(p), Qt.MouseButton.NoButton, button, mods)
        )
    QTest.mouseRelease(vp, button, mods, pb)
    QApplication.processEvents()


def _click(view, p_mm):
    QTest.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(*_device_point(view, *p_mm))
    )


def _key(window, key, mods=Qt.KeyboardModifier.NoModifier, target=None):
    QTest.keyClick(target or window.viewer.views[ViewKind.AXIAL], key, mods)


def _fake_detection(window, scores=(0.9, 0.8, 0.3, 0.95)):
    """The detection worker's result, as it arrives for the study on screen."""
    c = window.volume.geometry.center_mm()
    findings = tuple(
        _finding(i + 1, c + np.array([6.0 * i - 9, 3.0 * i - 4, 0]), 4.0 + i, s) for i, s in enumerate(scores)
    )
    window._pending = "detect"
    window._task_study = window.study_generation
    window._detect_caution = ""
    window._on_task_finished(DetectionResult(findings, 9, MODEL, {"detect": 0.5}))


# ---- 1. never the wrong study -------------------------------------------------------------------
def test_ctrl_d_while_the_next_study_opens_does_not_detect_on_the_previous(qtbot, window, studies, monkeypatch):
    import nodeview.core.io.study as study

    _open(qtbot, window, studies["a"])
    assert window.detect_action.isEnabled()
    real_scan, release, started = study.scan, threading.Event(), threading.Event()

    def slow_scan(*args, **kwargs):  # B's header read, held until the test lets it go
        started.set()
        release.wait(20)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(study, "scan", slow_scan)
    done = []
    window.sigDetectionDone.connect(done.append)
    window.open_paths([str(studies["b"])])
    qtbot.waitUntil(started.is_set, timeout=5000)
    window.activateWindow()
    _key(window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier, target=window)
    window.detect_action.trigger()
    window.detect()
    assert not window.detect_action.isEnabled() and not window.export_report_action.isEnabled()
    assert not window.export_dicom_action.isEnabled()
    window.export_dicom()  # File › Export DICOM… refuses too
    assert window._pending == "scan"  # B's load was not cancelled by a detection on A
    assert window.loading_overlay.isVisible() and not window.start_page.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: window.volume is not None and window.volume.description == "", timeout=30000)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=30000)
    assert done == [] and window._pending is None and window.findings_panel.result is None
    assert not window.loading_overlay.isVisible()


def test_cancelled_open_says_so_and_names_the_study_still_shown(qtbot, window, studies, monkeypatch):
    import nodeview.core.io.study as study

    _open(qtbot, window, studies["a"])
    real_scan, release = study.scan, threading.Event()

    def slow_scan(*args, **kwargs):
        release.wait(20)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(study, "scan", slow_scan)
    window.open_paths([str(studies["b"])])
    QTest.keyClick(window.viewer.views[ViewKind.AXIAL], Qt.Key.Key_Escape)  # "Cancel (Esc)" on the overlay
    release.set()
    qtbot.waitUntil(lambda: not window.banner.isHidden() and "cancelled" in window.banner.text(), timeout=20000)
    assert "Still showing Chest 2mm A" in window.banner.text()
    assert window.volume.description == "Chest 2mm A" and "Chest 2mm A" in window.windowTitle()
    assert window.detect_action.isEnabled()


def test_a_result_for_another_study_is_dropped(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    window._pending = "detect"
    window._task_study = window.study_generation  # detection started on A...
    _open(qtbot, window, studies["b"])  # ...B is shown before the result arrives
    window._pending = "detect"
    c = window.volume.geometry.center_mm()
    window._on_task_finished(DetectionResult((_finding(1, c, 6.0, 0.99),), 9, MODEL, {}))
    assert window.findings_panel.result is None and window.controller.findings == []


def test_title_identifies_the_series_without_patient_data(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    assert "Chest 2mm A" in window.windowTitle() and "CT" in window.windowTitle()
    _open(qtbot, window, studies["b"])  # no description: number, date and kernel
    title = window.windowTitle()
    assert "series 7" in title and "2024-01-02" in title and "B45f" in title
    assert "MUSTERMANN" not in title and "PAT-12345" not in title


# ---- 2. CT only ---------------------------------------------------------------------------------
def test_detect_is_not_offered_on_mr(qtbot, window, studies):
    _open(qtbot, window, studies["mr"])
    assert not window.detect_action.isEnabled()
    assert "MR" in window.detect_action.toolTip() and "CT" in window.detect_action.toolTip()
    assert "CT only" in window.banner.text()
    window.detect()
    assert window._pending is None  # refused
    window.detect(force=True)  # forced (quick start, scripts): runs, with a caution
    assert window._pending == "detect" and "MR series" in window._detect_caution
    window.cancel_work()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=30000)
    window._pending, window._task_study = "detect", window.study_generation
    window._detect_caution = "This is a MR series."
    window._on_task_finished(DetectionResult((), 0, MODEL, {}))
    assert not window.findings_panel.caveats.isHidden() and "MR series" in window.findings_panel.caveats.text()


# ---- 3. measurements ----------------------------------------------------------------------------
def test_distance_is_kept_on_its_slice_listed_and_undone(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    axial = window.viewer.views[ViewKind.AXIAL]
    ctl = window.controller
    _key(window, Qt.Key.Key_D)
    assert axial.mode == "distance"
    k = ctl.slice_index(ViewKind.AXIAL)
    _drag(axial, (10.0, 10.0), (40.0, 50.0))
    qtbot.waitUntil(lambda: len(ctl.measurements.items) == 1, timeout=3000)
    m = ctl.measurements.items[0]
    assert m.kind == "distance" and m.slice_index == k and m.view == ViewKind.AXIAL
    length = math.dist(*m.points_mm)
    assert length == pytest.approx(50.0, abs=1.5) and m.text == f"{length:.1f} mm"
    assert window.measure_dock.isVisible() and window.measure_panel.list.count() == 1
    mid = _device_point(axial, *np.mean(m.points_mm, axis=0))
    qtbot.waitUntil(lambda: _colour_near(_grab(axial.viewport()), *mid, MEASURE_COLOUR, tol=90), timeout=3000)
    _key(window, Qt.Key.Key_Up)  # the next slice: the ruler is not there
    assert ctl.slice_index(ViewKind.AXIAL) == k + 1 and axial.measurement_items() == []
    qtbot.waitUntil(lambda: not _colour_near(_grab(axial.viewport()), *mid, MEASURE_COLOUR, tol=90), timeout=3000)
    _key(window, Qt.Key.Key_Down)
    assert len(axial.measurement_items()) == 1
    window.undo_action.trigger()  # Ctrl+Z
    assert ctl.measurements.items == [] and axial.measurement_items() == []
    window.undo_action.trigger()  # nothing left to undo: no error
    # delete from the list, then undo the delete
    _drag(axial, (10.0, 10.0), (20.0, 10.0))
    qtbot.waitUntil(lambda: len(ctl.measurements.items) == 1, timeout=3000)
    window.measure_panel.list.setCurrentRow(0)
    window.measure_panel.delete_selected()
    assert ctl.measurements.items == []
    ctl.measurements.undo()
    assert len(ctl.measurements.items) == 1 and len(axial.measurement_items()) == 1


def test_angle_by_clicks_and_ellipse_roi_statistics(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    axial = window.viewer.views[ViewKind.AXIAL]
    ctl = window.controller
    _key(window, Qt.Key.Key_N)
    for p in ((10.0, 30.0), (30.0, 30.0), (30.0, 10.0)):  # a right angle at (30, 30)
        _click(axial, p)
    qtbot.waitUntil(lambda: len(ctl.measurements.items) == 1, timeout=3000)
    angle = ctl.measurements.items[0]
    assert angle.kind == "angle" and float(angle.text.rstrip("°")) == pytest.approx(90.0, abs=2.0)
    _key(window, Qt.Key.Key_E)
    _drag(axial, (26.0, 26.0), (38.0, 34.0))  # inside the uniform 100 HU block (mm 20..44)
    qtbot.waitUntil(lambda: len(ctl.measurements.items) == 2, timeout=3000)
    roi = ctl.measurements.items[1]
    (u0, v0), (u1, v1) = roi.points_mm
    area = math.pi * abs(u1 - u0) * abs(v1 - v0) / 4
    assert roi.text == f"mean 100 HU, SD 0, {area:.0f} mm²"
    assert area == pytest.approx(math.pi * 6 * 4, rel=0.2)
    _key(window, Qt.Key.Key_Escape)
    assert axial.mode == "crosshair"


# ---- 4. crosshair -------------------------------------------------------------------------------
def test_crosshair_toggle_hides_the_lines_on_screen(qtbot, window, studies):
    from nodeview.qt.slice_view import VIEW_COLOURS

    _open(qtbot, window, studies["a"])
    axial = window.viewer.views[ViewKind.AXIAL]
    ctl = window.controller
    u, v, _ = ctl.planes[ViewKind.AXIAL].index_to_display(ctl.cursor)
    x, y = _device_point(axial, u, 5.0)  # on the vertical line, over the dark lung background
    colour = VIEW_COLOURS[ViewKind.SAGITTAL]
    assert _colour_near(_grab(axial.viewport()), x, y, colour, tol=90)
    _key(window, Qt.Key.Key_H)
    qtbot.waitUntil(lambda: not _colour_near(_grab(axial.viewport()), x, y, colour, tol=90), timeout=3000)
    assert not window.crosshair_action.isChecked()
    _key(window, Qt.Key.Key_H)
    qtbot.waitUntil(lambda: _colour_near(_grab(axial.viewport()), x, y, colour, tol=90), timeout=3000)


# ---- 5. interpolated reformats ------------------------------------------------------------------
def test_coronal_of_thick_slices_is_interpolated_on_screen(qtbot, window, studies):
    _open(qtbot, window, studies["stripes"])  # slices alternate -1000 / +1000 HU, 5 mm apart
    window.controller.set_window(window.presets()["lung"].__class__(0.0, 2000.0))
    coronal = window.viewer.views[ViewKind.CORONAL]
    plane = window.controller.planes[ViewKind.CORONAL]
    w_mm, h_mm = plane.size_mm

    def mid_grey_fraction() -> float:
        img = _grab(coronal.viewport())
        x0, y0 = _device_point(coronal, w_mm * 0.3, h_mm * 0.2)
        x1, y1 = _device_point(coronal, w_mm * 0.7, h_mm * 0.8)
        grey = img[y0:y1, x0:x1, 0].astype(int)
        return float(((grey > 50) & (grey < 205)).mean())

    qtbot.waitUntil(lambda: mid_grey_fraction() > 0.3, timeout=3000)  # linear ramps between slices
    window.interpolate_action.trigger()  # nearest neighbour: only black and white
    qtbot.waitUntil(lambda: mid_grey_fraction() < 0.05, timeout=3000)


def test_sagittal_cache_gives_the_same_pixels(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    ctl = window.controller
    assert ctl.source.wait(10) and ctl.source.cached(ViewKind.SAGITTAL)
    assert ctl.source.cache_bytes == ctl.volume.hu_zyx.nbytes
    plane = ctl.planes[ViewKind.SAGITTAL]
    for i in (0, 17, plane.n_slices - 1):
        for slab in (1, 5):
            np.testing.assert_array_equal(
                ctl.source.extract(ViewKind.SAGITTAL, i, slab), plane.extract(ctl.volume.hu_zyx, i, slab)
            )


# ---- 6. findings table --------------------------------------------------------------------------
def test_findings_table_fits_sorts_follows_arrows_and_clears(qtbot, window, studies):
    window.resize(1800, 800)
    _open(qtbot, window, studies["a"])
    _fake_detection(window)
    panel, ctl = window.findings_panel, window.controller
    table = panel.table
    qtbot.waitUntil(lambda: window.findings_dock.isVisible(), timeout=3000)
    # Detect goes to the top finding
    top = max(panel.shown(), key=lambda f: f.score)
    assert panel.finding_at(table.currentRow()).id == top.id
    box = (np.asarray(top.bbox_min_xyz_mm) + np.asarray(top.bbox_max_xyz_mm)) / 2
    np.testing.assert_allclose(ctl.cursor_mm(), box, atol=0.6)
    # every column fits (no horizontal scrolling) and together they use the table's whole width (not the
    # width the table had before the dock was laid out: columns of a few pixels, texts elided to "...")
    qtbot.waitUntil(
        lambda: abs(sum(table.columnWidth(c) for c in range(table.columnCount())) - table.viewport().width()) <= 1,
        timeout=3000,
    )
    # sortable: by diameter, ascending
    table.sortByColumn(2, Qt.SortOrder.AscendingOrder)
    diam = [panel.finding_at(r).diameter_mm for r in range(table.rowCount())]
    assert diam == sorted(diam)
    # arrow keys move the views to the finding of the new row
    table.setFocus()
    table.setCurrentCell(0, 0)
    QTest.keyClick(table, Qt.Key.Key_Down)
    f = panel.finding_at(table.currentRow())
    assert table.currentRow() == 1
    box = (np.asarray(f.bbox_min_xyz_mm) + np.asarray(f.bbox_max_xyz_mm)) / 2
    np.testing.assert_allclose(ctl.cursor_mm(), box, atol=0.6)
    # the operating point: a mark at the model's threshold, and a reset exactly to it
    assert panel.slider.mark == slider_position(MODEL.threshold)
    panel.slider.setValue(panel.slider.value() + 37)
    assert panel.threshold != MODEL.threshold
    panel.reset_button.click()
    assert panel.threshold == MODEL.threshold
    # another study: the summary of this one goes
    _open(qtbot, window, studies["b"])
    assert panel.result is None and "No detection yet" in panel.summary.text() and table.rowCount() == 0
    assert not window.export_report_action.isEnabled()


# ---- 7. about -----------------------------------------------------------------------------------
# (tests/test_gui_detection.py::test_about_shows_model_card_section: size and rendered Markdown)


# ---- 8. wheel and touchpad ----------------------------------------------------------------------
def _wheel(view, angle_y=0, pixel_y=0):
    vp = view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    ev = QWheelEvent(
        pos,
        vp.mapToGlobal(pos),
        QPoint(0, pixel_y),
        QPoint(0, angle_y),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(vp, ev)


def test_wheel_honours_the_angle_delta_and_touchpad_distance(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    ctl, axial = window.controller, window.viewer.views[ViewKind.AXIAL]
    k = ctl.slice_index(ViewKind.AXIAL)
    for _ in range(3):
        _wheel(axial, angle_y=30)  # a high-resolution wheel: quarter notches
    assert ctl.slice_index(ViewKind.AXIAL) == k
    _wheel(axial, angle_y=30)
    assert ctl.slice_index(ViewKind.AXIAL) == k + 1
    _wheel(axial, angle_y=-240)  # two notches at once
    assert ctl.slice_index(ViewKind.AXIAL) == k - 1
    for _ in range(8):  # a touchpad swipe: 8 events of 4 px is not 8 slices
        _wheel(axial, angle_y=8, pixel_y=4)
    assert ctl.slice_index(ViewKind.AXIAL) == k - 1 + 1


# ---- 9. polish ----------------------------------------------------------------------------------
def test_findings_columns_fill_the_table_when_first_shown(qtbot):
    """A detection fills the panel while it is hidden; when it first shows, its resize event comes before
    the table's viewport has its width: the columns must still fill the table (they were a few pixels
    wide, every text elided, in the app's screenshot of the demo)."""
    from nodeview.qt.findings_panel import FindingsPanel

    panel = FindingsPanel()
    qtbot.addWidget(panel)
    findings = tuple(_finding(i + 1, np.array([10.0 * i, 0.0, 0.0]), 4.0 + i, 0.9 - 0.1 * i) for i in range(4))
    panel.set_result(DetectionResult(findings, 9, MODEL, {"detect": 0.5}))
    panel.resize(700, 400)
    panel.show()
    qtbot.waitExposed(panel)
    table = panel.table

    def used() -> int:
        return sum(table.columnWidth(c) for c in range(table.columnCount()))

    qtbot.waitUntil(lambda: table.viewport().width() > 600 and abs(used() - table.viewport().width()) <= 1, timeout=3000)


def test_texts_do_not_overlap_in_a_narrow_view(qtbot, window, studies):
    _open(qtbot, window, studies["b"])
    for view in window.viewer.views.values():
        for w in (160, 220, 400, 700):
            layout = view.text_layout(w, 300)
            assert {"title", "info", "top", "bottom", "left", "right"} <= set(layout)
            items = list(layout.items())
            for n, (name_a, (a, _)) in enumerate(items):
                for name_b, (b, _) in items[n + 1 :]:
                    assert not a.intersects(b), (view.kind, w, name_a, name_b)
    # and on screen: a narrow 1x3 window still draws the bottom letter clear of the slice text
    window.resize(700, 500)
    axial = window.viewer.views[ViewKind.AXIAL]
    qtbot.waitUntil(lambda: axial.viewport().width() < 260, timeout=3000)
    vp = axial.viewport()
    layout = axial.text_layout(vp.width(), vp.height())
    assert not layout["bottom"][0].intersects(layout["info"][0])


def test_no_study_no_study_actions_and_one_research_notice(qtbot, window, studies):
    assert not window.detect_action.isEnabled() and not window.preset_box.isEnabled()
    assert not window.mode_actions["distance"].isEnabled() and not window.level_box.isEnabled()
    assert "Ctrl+D" in window.detect_action.toolTip() and window.detect_action.statusTip()
    _open(qtbot, window, studies["a"])
    assert window.detect_action.isEnabled() and window.mode_actions["distance"].isEnabled()
    _fake_detection(window)
    qtbot.waitUntil(lambda: window.findings_dock.isVisible(), timeout=3000)
    notices = [lab for lab in window.findChildren(QLabel) if RESEARCH_NOTICE in lab.text() and lab.isVisible()]
    assert len(notices) == 1
    assert RESEARCH_NOTICE not in window.statusBar().currentMessage()


# ---- reading conventions ------------------------------------------------------------------------
def test_keys_home_end_shift_arrows_invert_minip(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    ctl, axial = window.controller, window.viewer.views[ViewKind.AXIAL]
    _key(window, Qt.Key.Key_Home)
    assert ctl.slice_index(ViewKind.AXIAL) == 0
    _key(window, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    assert ctl.slice_index(ViewKind.AXIAL) == 10
    _key(window, Qt.Key.Key_End)
    assert ctl.slice_index(ViewKind.AXIAL) == ctl.planes[ViewKind.AXIAL].n_slices - 1
    # invert: the lung (dark) turns bright on screen
    x, y = _device_point(axial, 5.0, 5.0)
    before = int(_grab(axial.viewport())[y, x, 0])
    _key(window, Qt.Key.Key_I)
    qtbot.waitUntil(lambda: int(_grab(axial.viewport())[y, x, 0]) > before + 60, timeout=3000)
    # MinIP beside MIP
    window.set_slab(10.0, "MinIP")
    assert "MinIP 10 mm" in axial.info_text
    thin = ctl.planes[ViewKind.AXIAL].extract(ctl.volume.hu_zyx, ctl.slice_index(ViewKind.AXIAL))
    assert (axial.image_item.image <= thin).all()
    _key(window, Qt.Key.Key_P)  # P cycles the thickness (S is the scroll mode now)
    assert ctl.slab_mm == 15.0 and ctl.slab_mode == "MinIP"


def test_mouse_modes_by_key(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    ctl, axial = window.controller, window.viewer.views[ViewKind.AXIAL]
    _key(window, Qt.Key.Key_W)
    before = ctl.window
    _drag(axial, (20.0, 20.0), (40.0, 30.0))
    assert ctl.window != before
    _key(window, Qt.Key.Key_S)
    k = ctl.slice_index(ViewKind.AXIAL)
    _drag(axial, (30.0, 40.0), (30.0, 20.0))  # drag up: scroll towards the top of the list
    assert ctl.slice_index(ViewKind.AXIAL) > k
    _key(window, Qt.Key.Key_Z)
    range_before = axial.view_box.viewRange()
    _drag(axial, (30.0, 20.0), (30.0, 40.0))
    assert axial.view_box.viewRange() != range_before
    _key(window, Qt.Key.Key_Escape)
    assert axial.mode == "crosshair"


def test_corner_overlays_dicom_window_tags_and_key_images(qtbot, window, studies):
    from nodeview.qt.reading import TagBrowser

    _open(qtbot, window, studies["b"])
    axial, ctl = window.viewer.views[ViewKind.AXIAL], window.controller
    top, bottom = ctl.corner_texts(ViewKind.AXIAL)
    text = " ".join(top + bottom)
    assert "2024-01-02" in text and "B45f" in text and "Se 7" in text and "W 1500" in text and "Zoom" in text
    assert "MUSTERMANN" not in text and "PAT-12345" not in text
    window.patient_overlay_action.trigger()  # the user enables it
    assert "MUSTERMANN" in " ".join(ctl.corner_texts(ViewKind.AXIAL)[0])
    window.patient_overlay_action.trigger()
    _key(window, Qt.Key.Key_O)
    assert not axial.show_corners and not any(k.startswith("tr") for k in axial.text_layout(400, 400))
    # the DICOM header's window as a preset
    window.dicom_preset_action.trigger()
    assert (ctl.window.center, ctl.window.width) == (-500.0, 1400.0)
    assert window.preset_box.currentText() == "DICOM default"
    # F12: the current slice's header, patient tags included (there only)
    window.tags_action.trigger()
    browser = window.tag_browser
    assert isinstance(browser, TagBrowser) and browser.value_of("PatientName") == "MUSTERMANN^ERIKA"
    assert browser.value_of("ConvolutionKernel") == "B45f"
    browser.filter.setText("kernel")
    assert sum(not browser.table.isRowHidden(r) for r in range(browser.table.rowCount())) == 1
    browser.close()
    # K: key images for the report
    _key(window, Qt.Key.Key_K)
    assert len(ctl.key_images) == 1 and "key image" in axial.title_text
    img = ctl.render_key_image(ctl.key_images[0])
    assert img.dtype == np.uint8 and img.shape == axial.image_item.image.shape
    _key(window, Qt.Key.Key_K)  # again: unmarked
    assert ctl.key_images == []


def test_cine_plays_and_stops(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    ctl = window.controller
    window.cine_fps_box.setValue(30)
    k = ctl.slice_index(ViewKind.AXIAL)
    _key(window, Qt.Key.Key_C)
    assert window.cine_action.isChecked()
    qtbot.waitUntil(lambda: ctl.slice_index(ViewKind.AXIAL) != k, timeout=3000)
    _key(window, Qt.Key.Key_C)
    assert not ctl.cine_timer.isActive() and not window.cine_action.isChecked()


def test_key_images_are_saved_with_the_report(qtbot, window, studies, tmp_path):
    from PIL import Image

    _open(qtbot, window, studies["b"])
    _fake_detection(window)
    ctl = window.controller
    _key(window, Qt.Key.Key_K)
    window.viewer.views[ViewKind.CORONAL].setFocus()
    QTest.keyClick(window.viewer.views[ViewKind.CORONAL], Qt.Key.Key_K)
    assert [k.view for k in ctl.key_images] == [ViewKind.AXIAL, ViewKind.CORONAL]
    assert window.measure_panel.keys.count() == 2
    with qtbot.waitSignal(window.sigReportWritten, timeout=30000) as blocker:
        window.save_report(str(tmp_path / "out"), "case-b", anonymize=True)
    names = [p.name for p in blocker.args[0]]
    assert names[0] == "case-b.png" and names[-1] == "case-b.json"
    assert "case-b-key1.png" in names and "case-b-key2.png" in names
    key1 = tmp_path / "out" / "case-b-key1.png"
    with Image.open(key1) as im:
        grey = np.asarray(im)
    shown = ctl.render_key_image(ctl.key_images[0])
    scale = grey.shape[1] // shown.shape[1]
    sampled = grey[scale // 2 : shown.shape[0] * scale : scale, scale // 2 :: scale].astype(int)
    diff = np.abs(sampled - shown.astype(int))
    assert np.median(diff) <= 1 and np.percentile(diff, 90) <= 10  # the slice, enlarged (bilinear)
    assert b"MUSTERMANN" not in key1.read_bytes() and b"PAT-12345" not in key1.read_bytes()
    assert "2 key image(s)" in window.statusBar().currentMessage()


def test_series_strip_click_and_drop_open_the_other_series(qtbot, window, tmp_path):
    from PySide6.QtCore import QByteArray, QMimeData
    from PySide6.QtGui import QDropEvent

    from nodeview.qt.series_strip import MIME_SERIES

    folder = tmp_path / "study"
    hu = _block_volume()
    _write(folder, hu, series_description="thin", series_number=2, file_names="uid", seed=21)
    _write(
        folder,
        hu[::2].copy(),
        spacing_zyx=(4.0, 1.0, 1.0),
        series_description="thick",
        series_number=3,
        file_names="uid",
        seed=22,
    )
    first = _open(qtbot, window, folder)
    strip = window.series_strip
    assert window.series_dock.isVisible() and strip.count() == 2
    qtbot.waitUntil(strip.thumbnails_done, timeout=10000)
    other = next(s for s in strip.series.values() if s.series_uid != first.series_uid)
    row = next(n for n in range(strip.count()) if strip.item(n).data(Qt.ItemDataRole.UserRole) == other.key)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=30000) as blocker:
        strip.itemClicked.emit(strip.item(row))
    assert blocker.args[0].series_uid == other.series_uid and other.description in window.windowTitle()
    assert strip.count() == 2 and strip.item(row).isSelected()
    # drag the first one back into the axial view
    back = next(s for s in strip.series.values() if s.series_uid == first.series_uid)
    mime = QMimeData()
    mime.setData(MIME_SERIES, QByteArray(back.key.encode()))
    axial = window.viewer.views[ViewKind.AXIAL]
    pos = QPointF(axial.mapTo(window, axial.rect().center()))
    event = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=30000) as blocker:
        window.dropEvent(event)
    assert blocker.args[0].series_uid == first.series_uid


def test_single_series_study_has_no_strip(qtbot, window, studies):
    _open(qtbot, window, studies["a"])
    assert not window.series_dock.isVisible() and window.series_strip.count() == 0
