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
    import SimpleITK as sitk

    from nodeview.core.io.sitk import volume_to_sitk

    pair = cached_pair("coarse")
    root = tmp_path_factory.mktemp("prior")
    sitk.WriteImage(volume_to_sitk(pair.prior), str(root / "prior.mha"))
    return pair, root / "prior.mha"


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
    assert window.prior_dock.isVisible() and window.viewer.maximised == ViewKind.AXIAL
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
