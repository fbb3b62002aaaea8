"""The viewer, headless (offscreen Qt): opening, scrolling, window/level, crosshair sync on pixels,
drag-and-drop, the series picker, cancel, leaks, and GUI responsiveness while loading."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.views import ViewKind
from nodeview.core.windowing import PRESETS
from nodeview.qt.main_window import MainWindow
from nodeview.qt.series_picker import SeriesPicker
from nodeview.qt.slice_view import VIEW_COLOURS

from . import synthetic_series as syn


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings)
    w.auto_pick_default = True
    qtbot.addWidget(w)
    w.resize(1500, 600)
    w.show()
    qtbot.waitExposed(w)
    return w


def _open(qtbot, window, path, timeout=30000):
    with qtbot.waitSignal(window.sigVolumeShown, timeout=timeout) as blocker:
        window.open_paths([str(path)])
    return blocker.args[0]


def _grab(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return buf.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


def _device_point(view, u_mm, v_mm) -> tuple[int, int]:
    p = view.view_box.mapViewToDevice(QPointF(u_mm, v_mm))
    return round(p.x()), round(p.y())


def test_open_synthetic_series_shows_three_views(qtbot, window, tmp_path):
    _, truth = syn.plain(tmp_path / "s")
    volume = _open(qtbot, window, tmp_path / "s")
    np.testing.assert_array_equal(volume.hu_zyx, truth.hu_zyx)
    assert window.stack.currentIndex() == 1
    for kind, view in window.viewer.views.items():
        assert view.image_item.image is not None
        assert view.isVisible(), kind
    assert "/20" in window.viewer.views[ViewKind.AXIAL].info_text
    assert window.viewer.views[ViewKind.AXIAL].edge_text["left"] == "R"


def test_scroll_wheel_keys_and_slice_label(qtbot, window, tmp_path):
    syn.plain(tmp_path / "s")
    _open(qtbot, window, tmp_path / "s")
    ctl = window.controller
    axial = window.viewer.views[ViewKind.AXIAL]
    start = ctl.slice_index(ViewKind.AXIAL)
    before = axial.image_item.image.copy()
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_Up)
    assert ctl.slice_index(ViewKind.AXIAL) == start + 1
    assert not np.array_equal(axial.image_item.image, before)
    qtbot.keyClick(axial, Qt.Key.Key_PageDown)
    assert ctl.slice_index(ViewKind.AXIAL) == max(start + 1 - 10, 0)
    ctl.scroll(ViewKind.AXIAL, 1000)
    assert ctl.slice_index(ViewKind.AXIAL) == 19
    assert axial.info_text.startswith("20/20")
    # scrolling the axial view moves the horizontal line of the coronal view (the axial plane)
    coronal = window.viewer.views[ViewKind.CORONAL]
    u, v, _ = ctl.planes[ViewKind.CORONAL].index_to_display(ctl.cursor)
    assert coronal.h_line.value() == pytest.approx(v)


def test_window_presets_keys_drag_and_numeric_entry(qtbot, window, tmp_path):
    syn.plain(tmp_path / "s")
    _open(qtbot, window, tmp_path / "s")
    ctl = window.controller
    for key, name in zip([Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4], PRESETS, strict=True):
        qtbot.keyClick(window.viewer.views[ViewKind.AXIAL], key)
        assert ctl.window == PRESETS[name]
        for view in window.viewer.views.values():
            assert tuple(view.image_item.levels) == pytest.approx(PRESETS[name].levels)
    old = ctl.window
    window.viewer.views[ViewKind.CORONAL].sigWindowDrag.emit(40.0, -20.0)  # right-drag
    assert ctl.window.width > old.width and ctl.window.center > old.center
    window.level_box.setValue(-500)
    window.width_box.setValue(1200)
    assert (ctl.window.center, ctl.window.width) == (-500, 1200)
    assert window.preset_box.currentText() == "custom"


def _colour_near(img: np.ndarray, x: int, y: int, colour, radius=2, tol=60) -> bool:
    patch = img[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1].reshape(-1, 3).astype(int)
    target = np.array([colour.red(), colour.green(), colour.blue()])
    return bool((np.abs(patch - target).sum(axis=1) < tol).any())


def _assert_vertical_line_at_cursor(window, kind: ViewKind, line_kind: ViewKind) -> None:
    """The vertical crosshair line of view ``kind`` (coloured as ``line_kind``) is drawn at the cursor."""
    view = window.viewer.views[kind]
    u, v, _ = window.controller.planes[kind].index_to_display(window.controller.cursor)
    x, y = _device_point(view, u, v)
    img = _grab(view.viewport())
    probe_y = y + 25 if y + 25 < img.shape[0] else y - 25
    assert _colour_near(img, x, probe_y, VIEW_COLOURS[line_kind])
    assert not _colour_near(img, x + 15, probe_y, VIEW_COLOURS[line_kind], radius=1)


def test_crosshair_sync_checked_on_pixels(qtbot, window, tmp_path):
    syn.plain(tmp_path / "s", shape=(30, 64, 64))
    _open(qtbot, window, tmp_path / "s")
    window.apply_preset("mediastinum")
    views = window.viewer.views
    axial = views[ViewKind.AXIAL]
    plane = window.controller.planes[ViewKind.AXIAL]
    # click at a point in the axial view: 30 % across, 70 % down
    u_mm, v_mm = plane.size_mm[0] * 0.3, plane.size_mm[1] * 0.7
    x, y = _device_point(axial, u_mm, v_mm)
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    qtbot.wait(50)
    cursor = window.controller.cursor
    expected = plane.display_to_index(u_mm, v_mm, window.controller.slice_index(ViewKind.AXIAL))
    np.testing.assert_allclose(cursor[1:], expected[1:], atol=0.6)
    # coronal: the sagittal (yellow) line sits at the clicked left-right position, and only there
    _assert_vertical_line_at_cursor(window, ViewKind.CORONAL, ViewKind.SAGITTAL)
    # sagittal: the coronal (green) line sits at the clicked anterior-posterior position
    _assert_vertical_line_at_cursor(window, ViewKind.SAGITTAL, ViewKind.CORONAL)
    # and the coronal view now shows the clicked coronal slice
    assert window.controller.slice_index(ViewKind.CORONAL) == round(expected[1])


def test_zoom_pan_keep_crosshair_coherent(qtbot, window, tmp_path):
    syn.plain(tmp_path / "s")
    _open(qtbot, window, tmp_path / "s")
    axial = window.viewer.views[ViewKind.AXIAL]
    ctl = window.controller
    u, v, _ = ctl.planes[ViewKind.AXIAL].index_to_display(ctl.cursor)
    axial.view_box.scaleBy((0.5, 0.5))
    axial.view_box.translateBy(x=5, y=-3)
    assert axial.v_line.value() == pytest.approx(u) and axial.h_line.value() == pytest.approx(v)
    x, y = _device_point(axial, u, v)
    assert 0 <= x < axial.width() and 0 <= y < axial.height()
    axial.reset_zoom()
    rect = axial.view_box.viewRect()
    assert rect.width() >= ctl.planes[ViewKind.AXIAL].size_mm[0]


def test_drag_and_drop_folder_opens_it(qtbot, window, tmp_path):
    _, truth = syn.shuffled_names(tmp_path / "dropped")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped"))])
    event = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=30000) as blocker:
        window.dropEvent(event)
    np.testing.assert_array_equal(blocker.args[0].hu_zyx, truth.hu_zyx)
    assert window._recent()[0] == str(tmp_path / "dropped")


def test_series_picker_choice_is_loaded(qtbot, window, tmp_path, monkeypatch):
    _, truth = syn.thin_and_thick(tmp_path / "two")
    thick_uid = truth.other_series[0].series_uid
    window.auto_pick_default = False
    shown = {}

    def choose_thick(self):
        shown["rows"] = self.table.rowCount()
        shown["preselected"] = self.selected_series().n_images
        self.select(next(s for s in self.series if s.series_uid == thick_uid))
        return 1

    monkeypatch.setattr(SeriesPicker, "exec", choose_thick)
    volume = _open(qtbot, window, tmp_path / "two")
    assert shown == {"rows": 2, "preselected": 40}  # the thin series is preselected
    assert volume.series_uid == thick_uid and volume.shape_zyx[0] == 8


def test_bad_input_shows_message_and_keeps_state(qtbot, window, tmp_path):
    (tmp_path / "junk.txt").write_text("not dicom")
    with qtbot.waitSignal(window.sigLoadFailed, timeout=10000) as blocker:
        window.open_paths([str(tmp_path)])
    assert "no CT images" in blocker.args[0]
    assert window.volume is None and window.stack.currentIndex() == 0


@pytest.fixture(scope="module")
def big_series(tmp_path_factory):
    """A 300-slice 512x512 series (about 160 MB) for cancel and responsiveness tests."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(1)
    hu = rng.normal(-500, 300, size=(300, 512, 512)).astype(np.int16)
    write_series(hu, folder, SeriesSpec(spacing_zyx=(1.0, 0.7, 0.7), file_names="shuffled"))
    return folder


def test_cancel_during_load(qtbot, window, big_series):
    with qtbot.waitSignal(window.runner.sigCancelled, timeout=30000):
        window.open_paths([str(big_series)])
        qtbot.waitUntil(lambda: window.progress.value() > 0 or window.runner.generation > 1, timeout=10000)
        window.cancel_button.click()
    assert window.volume is None and not window.progress.isVisible()
    # the app is still usable afterwards
    assert window.runner.busy is False


def test_gui_responsive_while_300_slices_load(qtbot, window, big_series):
    """A 10 ms QTimer on the GUI thread never waits more than 100 ms while the series loads."""
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    try:
        with qtbot.waitSignal(window.sigVolumeShown, timeout=60000):
            last[0] = time.perf_counter()
            window.open_paths([str(big_series)])
    finally:
        timer.stop()
    # the final hand-over (building the three views of a new volume) is included
    assert len(gaps) > 10
    print(f"\nGUI timer: {len(gaps)} ticks, longest gap {max(gaps) * 1000:.1f} ms, median {np.median(gaps) * 1000:.1f} ms")
    assert max(gaps) <= 0.100, f"longest GUI stall {max(gaps) * 1000:.0f} ms"


def test_no_leaked_widgets(qtbot, tmp_path):
    syn.plain(tmp_path / "s")
    app = QApplication.instance()
    before = len(app.topLevelWidgets())
    for _ in range(2):
        w = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
        w.auto_pick_default = True
        w.show()
        with qtbot.waitSignal(w.sigVolumeShown, timeout=30000):
            w.open_paths([str(tmp_path / "s")])
        w.close()
        w.deleteLater()
        qtbot.wait(50)
    QApplication.sendPostedEvents(None, 0)
    qtbot.wait(50)
    assert len(app.topLevelWidgets()) <= before


def test_signal_emits_do_not_leak_references():
    """Regression for PySide6 6.12.0 on CPython 3.11: each emit leaked a reference to True."""
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        sig = Signal(bool)

    e = Emitter()
    e.sig.connect(lambda v: None)
    before = sys.getrefcount(True)
    for _ in range(2000):
        e.sig.emit(True)
    assert abs(sys.getrefcount(True) - before) < 10


def test_about_mentions_research_use_and_licence(window):
    text = window.about_text()
    assert "Research use only" in text and "CC BY 3.0" in text and "LIDC" in text


def test_mip_slab_changes_image(qtbot, window, tmp_path):
    syn.plain(tmp_path / "s", shape=(30, 64, 64))
    _open(qtbot, window, tmp_path / "s")
    axial = window.viewer.views[ViewKind.AXIAL]
    thin = axial.image_item.image.copy()
    window.set_slab(10.0)
    thick = axial.image_item.image
    assert (thick >= thin).all() and (thick > thin).any()
    assert "MIP 10 mm" in axial.info_text
