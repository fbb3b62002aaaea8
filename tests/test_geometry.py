import numpy as np
import pytest

from nodeview.core.geometry import Geometry, direction_from_orientation, slice_normal


def test_index_mm_round_trip_oblique_anisotropic():
    theta = np.radians(20)
    rot = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    g = Geometry((30, 40, 50), (2.5, 0.7, 0.6), (-100.0, 20.0, -300.0), rot)
    idx = np.array([[0, 0, 0], [29, 39, 49], [3.5, 7.25, 11.0]])
    mm = g.index_to_mm(idx)
    np.testing.assert_allclose(g.mm_to_index(mm), idx, atol=1e-9)
    # voxel [0,0,0] centre is the origin; one step along i moves 0.6 mm along direction column 0
    np.testing.assert_allclose(mm[0], g.origin_xyz)
    np.testing.assert_allclose(g.index_to_mm([0, 0, 1]) - g.origin_xyz, 0.6 * rot[:, 0])
    np.testing.assert_allclose(g.index_to_mm([1, 0, 0]) - g.origin_xyz, 2.5 * rot[:, 2])


def test_affine_matches_index_to_mm():
    g = Geometry((5, 6, 7), (3.0, 2.0, 1.0), (1.0, 2.0, 3.0))
    ijk1 = np.array([4.0, 5.0, 2.0, 1.0])  # i, j, k
    np.testing.assert_allclose((g.affine @ ijk1)[:3], g.index_to_mm([2.0, 5.0, 4.0]))


def test_axis_labels_standard_and_flipped():
    axial = Geometry((10, 10, 10), (1, 1, 1), (0, 0, 0))
    assert axial.axis_labels() == ("S", "P", "L")
    assert axial.orientation_code() == "LPS"
    flipped = Geometry((10, 10, 10), (1, 1, 1), (0, 0, 0), np.diag([-1.0, 1.0, -1.0]))
    assert flipped.axis_labels() == ("I", "P", "R")
    sag = Geometry((10, 10, 10), (1, 1, 1), (0, 0, 0), direction_from_orientation((0, 1, 0, 0, 0, -1)))
    assert sag.axis_labels() == ("R", "I", "P")  # normal = (0,1,0) x (0,0,-1) = -x


def test_mm_to_voxel_outside_raises():
    g = Geometry((5, 5, 5), (1, 1, 1), (0, 0, 0))
    assert g.mm_to_voxel((4.4, 0.4, 2.0)) == (2, 0, 4)
    with pytest.raises(IndexError):
        g.mm_to_voxel((10, 0, 0))


def test_invalid_geometry_rejected():
    with pytest.raises(ValueError):
        Geometry((5, 5, 5), (0, 1, 1), (0, 0, 0))
    with pytest.raises(ValueError):
        Geometry((5, 5, 5), (1, 1, 1), (0, 0, 0), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        slice_normal((1, 0, 0, 1, 0, 0))
