"""A real screenshot under Xvfb: ``nodeview LIDC-IDRI-0002 --screenshot`` in lung window, and a
check that all three views show lungs the right way up (not blank, not mirrored, not flipped).

The expected pictures are built here independently of NodeView's view code: LIDC-IDRI-0002 is
stored axis-aligned (ImageOrientationPatient 1,0,0,0,1,0), so the radiological axial view is the
slice array as stored, the coronal view is ``hu[:, j, :]`` with superior up, and the sagittal view
is ``hu[:, :, i]`` with superior up and anterior on the left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from .conftest import LIDC_DIR

pytestmark = pytest.mark.xvfb


def _load_png(path) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_Grayscale8)
    w, h = image.width(), image.height()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return buf.reshape(h, image.bytesPerLine())[:, :w].copy()


def _resize(img: np.ndarray, shape=(96, 96)) -> np.ndarray:
    rows = np.linspace(0, img.shape[0] - 1, shape[0]).round().astype(int)
    cols = np.linspace(0, img.shape[1] - 1, shape[1]).round().astype(int)
    return img[np.ix_(rows, cols)].astype(np.float64)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-9))


def _image_box(panel: np.ndarray) -> np.ndarray:
    """The rendered CT image inside one view panel: the bounding box of non-black pixels."""
    body = panel > 20
    rows = np.where(body.mean(axis=1) > 0.2)[0]
    cols = np.where(body.mean(axis=0) > 0.2)[0]
    return panel[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _lung_window_u8(hu: np.ndarray) -> np.ndarray:
    return np.clip((hu.astype(np.float64) + 1350) / 1500 * 255, 0, 255)


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a real X server: run under xvfb-run")
@pytest.mark.skipif(shutil.which("xvfb-run") is None and not os.environ.get("DISPLAY"), reason="no Xvfb")
def test_real_screenshot_of_lidc_in_lung_window(tmp_path, lidc_volume):
    out = tmp_path / "lidc.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["QT_QPA_PLATFORM"] = "xcb"
    env["NODEVIEW_SETTINGS_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "nodeview", str(LIDC_DIR), "--screenshot", str(out), "--window", "lung",
         "--size", "1800x700"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert result.returncode == 0, result.stderr
    shot = _load_png(out)
    assert shot.shape[1] >= 1700
    # The three views share the central area equally (layout 1x3); crop each panel.
    top, bottom = int(shot.shape[0] * 0.12), int(shot.shape[0] * 0.93)
    third = shot.shape[1] // 3
    panels = [shot[top:bottom, n * third + 4 : (n + 1) * third - 4] for n in range(3)]
    hu = lidc_volume.hu_zyx
    k, j, i = (np.asarray(hu.shape) - 1) // 2  # the viewer opens at the volume centre
    expected = {
        "axial": _lung_window_u8(hu[round((hu.shape[0] - 1) / 2)]),
        "coronal": _lung_window_u8(hu[:, round((hu.shape[1] - 1) / 2), :])[::-1, :],
        "sagittal": _lung_window_u8(hu[:, :, round((hu.shape[2] - 1) / 2)])[::-1, :],
    }
    for (name, exp), panel in zip(expected.items(), panels, strict=True):
        shown = _resize(_image_box(panel))
        exp_small = _resize(exp)
        assert shown.std() > 30, f"{name} view looks blank"
        variants = {
            "correct": exp_small,
            "left-right mirrored": exp_small[:, ::-1],
            "upside down": exp_small[::-1, :],
            "rotated 180": exp_small[::-1, ::-1],
        }
        scores = {v: _corr(shown, e) for v, e in variants.items()}
        best = max(scores, key=scores.get)
        assert best == "correct" and scores["correct"] > 0.8, (name, scores)
        # lungs: dark fields inside the body outline (dark pixels in the central region of the image)
        centre = shown[24:72, 24:72]
        dark = (centre < 140).mean()  # aerated lung ~85, soft tissue ~236 in lung window
        # the sagittal view opens at the midline (trachea, heart, spine): less lung there
        assert (0.08 if name == "sagittal" else 0.15) < dark < 0.8, (name, dark)
    # heart anterior in the axial view: the middle of the upper half is brighter (mediastinum)
    axial = _resize(_image_box(panels[0]))
    anterior_mid = axial[25:48, 40:56].mean()
    posterior_lungs = axial[48:70, 15:35].mean()
    assert anterior_mid > posterior_lungs + 40


def _load_rgb(path) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return buf.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a real X server: run under xvfb-run")
def test_quick_start_screenshot_shows_the_findings(tmp_path):
    """``nodeview DEMO --detect --screenshot``: the picture a new user sees first has the detector's
    boxes in the views and the findings table beside them (issue 24)."""
    from .conftest import DEMO_DIR, need

    demo = need(DEMO_DIR)
    out = tmp_path / "quick.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["QT_QPA_PLATFORM"] = "xcb"
    env["NODEVIEW_SETTINGS_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "nodeview", str(demo), "--detect", "--screenshot", str(out), "--size", "1800x800"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr
    shot = _load_rgb(out)
    h, w, _ = shot.shape
    # the findings dock on the right: a table with a selected (blue) row
    right = shot[:, int(w * 0.62) :]
    r, g, b = (right[..., c].astype(int) for c in range(3))
    blue = (b > 120) & (r < 80) & (g > 70) & (g < 130) & (b - r > 70)  # the selected row (the top finding)
    assert blue.sum() > 2000, f"no selected row in a findings table ({int(blue.sum())} px)"
    # the views: saturated box colours (the malignancy scale runs green-yellow-red), in all three views
    views = shot[int(h * 0.08) : int(h * 0.9), : int(w * 0.6)]
    r, g, b = (views[..., c].astype(int) for c in range(3))
    saturated = (np.maximum(r, g) > 180) & (b < 90) & (np.abs(r - g) + np.maximum(r, g) - b > 150)
    thirds = np.array_split(saturated, 3, axis=1)
    assert all(t.sum() > 150 for t in thirds), [int(t.sum()) for t in thirds]
