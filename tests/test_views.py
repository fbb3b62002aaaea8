"""Radiological display mapping of the three views, for head-first, feet-first and flipped grids."""

import numpy as np
import pytest

from nodeview.core.geometry import Geometry
from nodeview.core.views import ViewKind, planes_for, slab_slices
from nodeview.core.windowing import PRESETS, Window


def _volume_with_markers(direction):
    """Marker voxels at known LPS extremes so flips are visible."""
    g = Geometry((20, 30, 40), (2.0, 0.8, 0.7), (-10.0, -20.0, -30.0), direction)
    return g


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0]), np.diag([1.0, 1.0, -1.0]),
                                       np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])])
def test_screen_directions_follow_radiological_convention(direction):
    g = _volume_with_markers(direction)
    planes = planes_for(g)
    centre = (np.asarray(g.shape_zyx) - 1) / 2
    # Moving towards patient Left must move right on axial and coronal screens, etc.
    expectations = {
        ViewKind.AXIAL: {"u": np.array([1.0, 0, 0]), "v": np.array([0, 1.0, 0])},   # +u = L, +v = P
        ViewKind.CORONAL: {"u": np.array([1.0, 0, 0]), "v": np.array([0, 0, -1.0])},  # +u = L, +v = I
        ViewKind.SAGITTAL: {"u": np.array([0, 1.0, 0]), "v": np.array([0, 0, -1.0])},  # +u = P, +v = I
    }
    for kind, plane in planes.items():
        d0 = plane.index_to_display(centre)
        for screen_axis, lps_dir in expectations[kind].items():
            step = g.mm_to_index(g.index_to_mm(centre) + 3.0 * lps_dir)
            d1 = plane.index_to_display(step)
            delta = d1 - d0
            col = 0 if screen_axis == "u" else 1
            assert delta[col] == pytest.approx(3.0, abs=1e-6), (kind, screen_axis, delta)
            assert delta[1 - col] == pytest.approx(0.0, abs=1e-6)


def test_extract_matches_index_to_display():
    g = Geometry((6, 7, 8), (2.0, 1.0, 0.5), (0, 0, 0), np.diag([-1.0, 1.0, -1.0]))
    vol = np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8)
    for plane in planes_for(g).values():
        for idx in [(0, 0, 0), (5, 6, 7), (2, 3, 4)]:
            u, v, s = plane.index_to_display(idx)
            img = plane.extract(vol, int(s))
            col = int(u / plane.pixel_mm[0])
            row = int(v / plane.pixel_mm[1])
            assert img.shape == (plane.size_px[1], plane.size_px[0])
            assert img[row, col] == vol[idx]
            back = plane.display_to_index(u, v, s)
            np.testing.assert_allclose(back, idx)


def test_labels_and_slab():
    g = Geometry((10, 10, 10), (1.25, 0.7, 0.7), (0, 0, 0))
    planes = planes_for(g)
    assert planes[ViewKind.AXIAL].edge_labels() == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    assert planes[ViewKind.CORONAL].edge_labels() == {"right": "L", "left": "R", "bottom": "I", "top": "S"}
    assert planes[ViewKind.SAGITTAL].edge_labels() == {"right": "P", "left": "A", "bottom": "I", "top": "S"}
    assert slab_slices(planes[ViewKind.AXIAL], 10) == 8
    assert slab_slices(planes[ViewKind.CORONAL], 0) == 1
    vol = np.zeros((10, 10, 10), dtype=np.int16)
    vol[3, 5, 5] = 500
    axial = planes[ViewKind.AXIAL]
    assert axial.extract(vol, 5).max() == 0
    assert axial.extract(vol, 5, slab=5).max() == 500  # MIP over slices 3..7


def test_window_presets():
    assert PRESETS["lung"].levels == (-1350, 150)
    assert Window(40, 400).to_uint8(np.array([-160, 40, 240], dtype=np.int16)).tolist() == [0, 127, 255]
    with pytest.raises(ValueError):
        Window(0, 0)


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, 1.0, -1.0])])
def test_box_on_slice_matches_voxels(direction):
    """A finding box at known mm is drawn over exactly its voxels, in every view, HFS and FFS."""
    from nodeview.core.views import box_on_slice

    g = Geometry((40, 50, 60), (2.5, 0.8, 0.6), (-20.0, -20.0, -50.0), direction)
    lo_idx, hi_idx = np.array([10, 20, 30]), np.array([14, 26, 40])  # inclusive voxel range (k, j, i)
    corners = g.index_to_mm(np.stack([lo_idx - 0.5, hi_idx + 0.5]))
    lo_mm, hi_mm = corners.min(axis=0), corners.max(axis=0)
    vol = np.zeros(g.shape_zyx, dtype=np.int16)
    vol[10:15, 20:27, 30:41] = 1
    for plane in planes_for(g).values():
        s_inside = round(plane.index_to_display((12, 23, 35))[2])
        rect = box_on_slice(plane, g, lo_mm, hi_mm, s_inside)
        assert rect is not None
        img = plane.extract(vol, s_inside)
        rows, cols = np.nonzero(img)
        pu, pv = plane.pixel_mm
        assert rect[0] == pytest.approx(cols.min() * pu, abs=1e-6)
        assert rect[2] == pytest.approx((cols.max() + 1) * pu, abs=1e-6)
        assert rect[1] == pytest.approx(rows.min() * pv, abs=1e-6)
        assert rect[3] == pytest.approx((rows.max() + 1) * pv, abs=1e-6)
        far = 0 if s_inside > plane.n_slices // 2 else plane.n_slices - 1
        assert box_on_slice(plane, g, lo_mm, hi_mm, far) is None
