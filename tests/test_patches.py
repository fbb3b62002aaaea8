"""2.5D patches: planes through the right point, in patient axes, whatever the storage order."""

import numpy as np

from nodeview.core.detect.patches import DEFAULT_SPEC, PatchSpec, extract_patches, normalise_hu
from nodeview.core.geometry import Geometry


def _volume_with_marker(direction=None):
    g = Geometry((40, 80, 80), (1.25, 0.7, 0.7), (-28.0, -28.0, -25.0), np.eye(3) if direction is None else direction)
    hu = np.full(g.shape_zyx, -850, dtype=np.int16)
    centre_mm = np.array([3.0, -2.0, 1.5])
    # a 10 mm sphere, plus a small bright tag 6 mm to the patient's left and one 6 mm superior
    k, j, i = np.meshgrid(*[np.arange(s) for s in g.shape_zyx], indexing="ij")
    mm = g.index_to_mm(np.stack([k, j, i], axis=-1).reshape(-1, 3)).reshape(*g.shape_zyx, 3)
    hu[np.linalg.norm(mm - centre_mm, axis=-1) < 5] = 40
    hu[np.linalg.norm(mm - (centre_mm + [6, 0, 0]), axis=-1) < 1.5] = 400
    hu[np.linalg.norm(mm - (centre_mm + [0, 0, 6]), axis=-1) < 1.5] = 400
    return hu, g, centre_mm


def _pixel_of(spec, d_row_mm, d_col_mm):
    c = (spec.size - 1) / 2.0
    return round(c + d_row_mm / spec.spacing_mm), round(c + d_col_mm / spec.spacing_mm)


def test_planes_and_orientation():
    hu, g, centre = _volume_with_marker()
    patch = extract_patches(hu, g, [centre])
    assert patch.shape == (1, 3, 64, 64) and patch.dtype == np.float32
    assert patch.min() >= -1 and patch.max() <= 1
    mid = DEFAULT_SPEC.size // 2
    for ch in range(3):  # sphere in the middle of every plane
        assert patch[0, ch, mid - 2 : mid + 2, mid - 2 : mid + 2].mean() > normalise_hu(np.float32(0))
    left_tag = _pixel_of(DEFAULT_SPEC, 0, 6)  # +x is along columns in axial and coronal
    assert patch[0, 0][left_tag] > 0.5 and patch[0, 1][left_tag] > 0.5
    superior_tag = _pixel_of(DEFAULT_SPEC, -6, 0)  # superior is up (rows -z) in coronal and sagittal
    assert patch[0, 1][superior_tag] > 0.5 and patch[0, 2][superior_tag] > 0.5


def test_same_patch_for_flipped_storage():
    hu, g, centre = _volume_with_marker()
    flipped_g = Geometry(g.shape_zyx, g.spacing_zyx, g.index_to_mm([39, 79, 79]), np.diag([-1.0, -1.0, -1.0]))
    flipped_hu = np.ascontiguousarray(hu[::-1, ::-1, ::-1])
    a = extract_patches(hu, g, [centre])
    b = extract_patches(flipped_hu, flipped_g, [centre])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_batch_equals_single_and_outside_is_air():
    hu, g, centre = _volume_with_marker()
    centres = [centre, centre + [5, 5, 5], [500.0, 0.0, 0.0]]
    batch = extract_patches(hu, g, centres)
    for n, c in enumerate(centres):
        np.testing.assert_allclose(batch[n], extract_patches(hu, g, [c])[0])
    assert np.all(batch[2] == -1.0)  # far outside: air
    assert extract_patches(hu, g, np.zeros((0, 3))).shape == (0, 3, 64, 64)


def test_spec_metadata_round_trip():
    spec = PatchSpec(48, 1.0, (-1100.0, 300.0))
    assert PatchSpec.from_metadata(spec.to_metadata()) == spec


def test_rotation_identity_and_quarter_turn():
    hu, g, centre = _volume_with_marker()
    plain = extract_patches(hu, g, [centre])
    same = extract_patches(hu, g, [centre], rotations=np.eye(3)[None])
    np.testing.assert_allclose(plain, same, atol=1e-6)
    # a quarter turn about z (x -> y): the axial plane turns, the left tag moves to a posterior spot
    rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    turned = extract_patches(hu, g, [centre], rotations=rz[None])
    tag = _pixel_of(DEFAULT_SPEC, -6, 0)  # rows now run along -x: the left tag sits 6 mm "up"
    assert turned[0, 0][tag] > 0.5
