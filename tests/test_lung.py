import numpy as np

from nodeview.core.detect.lung import block_mean, segment_lungs


def test_lidc_lungs_contain_the_reader_nodule(lidc_volume):
    mask = segment_lungs(lidc_volume.hu_zyx, lidc_volume.geometry)
    assert 3000 < mask.volume_ml < 8000  # two adult lungs (this includes the trachea)
    for centre in [(60.08, 73.09, -103.94), (59.54, 70.25, -102.44)]:  # ground-glass nodule at the pleura
        assert mask.contains_index(lidc_volume.geometry.mm_to_index(centre))
    full = mask.full_resolution(lidc_volume.shape_zyx)
    assert full.shape == lidc_volume.shape_zyx
    # inside the mask the tissue is mostly aerated lung; outside (body wall) it is not
    k = 130
    assert np.median(lidc_volume.hu_zyx[k][full[k]]) < -700
    assert not full[k, 5, 5] and not full[k, 256, 256 - 200]


def test_closed_chest_lungs_and_juxtapleural_nodule():
    """A tiny chest: body ellipse, two lungs, a nodule stuck to the pleura of the left lung."""
    from nodeview.core.geometry import Geometry

    z, y, x = np.mgrid[0:30, 0:96, 0:96].astype(float)
    hu = np.full(z.shape, -1000, dtype=np.int16)
    hu[((y - 48) / 40) ** 2 + ((x - 48) / 44) ** 2 < 1] = 40  # body
    for cx in (28, 68):  # lungs
        hu[((y - 46) / 26) ** 2 + ((x - cx) / 14) ** 2 + ((z - 15) / 16) ** 2 < 1] = -850
    nodule = ((y - 46) ** 2 + (x - 81) ** 2 + (z - 15) ** 2) < 4**2  # at the lateral wall of the left lung
    hu[nodule] = 30
    g = Geometry(hu.shape, (2.0, 1.5, 1.5), (0, 0, 0))
    mask = segment_lungs(hu, g)
    full = mask.full_resolution(hu.shape)
    assert np.median(hu[full]) < -700
    assert 0.8 < full[hu == -850].mean() <= 1.0
    assert mask.contains_index(np.array([15.0, 46.0, 81.0]))  # juxta-pleural nodule kept by the closing
    assert not full[15, 46, 48]  # mediastinum between the lungs is not lung


def test_no_lungs_in_soft_tissue_block():
    from nodeview.core.geometry import Geometry

    hu = np.full((10, 64, 64), 40, dtype=np.int16)
    hu[:, :5, :] = -1000  # outside air touching the border only
    assert segment_lungs(hu, Geometry(hu.shape, (1, 1, 1), (0, 0, 0))).volume_ml == 0


def test_block_mean_matches_reshape_mean():
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1000, size=(3, 9, 11)).astype(np.int16)
    ref = hu[:, :8, :10].astype(np.float32).reshape(3, 4, 2, 5, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(block_mean(hu, 2), ref, rtol=1e-6)
