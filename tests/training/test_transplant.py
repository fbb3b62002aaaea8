"""Real nodules transplanted into lungs keep their HU, size and position; placement avoids airways."""

from __future__ import annotations

import numpy as np
import pytest

from nodeview.core.geometry import Geometry
from nodeview.core.volume import Volume
from tests.conftest import SHARED_DATA
from training.transplant import (
    Placement,
    RealNodule,
    equivalent_diameter,
    load_nodule,
    make_site,
    place,
    read_nodule_table,
    transplant,
    transplant_many,
)

NODULES = SHARED_DATA / "lidc-nodules"
REAL_CT = SHARED_DATA / "real-ct"


def phantom(seed: int = 0) -> tuple[Volume, np.ndarray]:
    """A chest-like phantom: body, two lungs of noisy parenchyma, an airway tube through the right
    lung (returned as a mask), and a few vessels."""
    rng = np.random.default_rng(seed)
    shape = (48, 192, 192)
    sp = np.array([1.5, 1.0, 1.0])
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, sp, strict=True)), indexing="ij")
    hu = np.full(shape, -1000.0)
    body = ((x - 96) / 90) ** 2 + ((y - 96) / 80) ** 2 <= 1
    hu[body] = 40.0
    lungs = np.zeros(shape, bool)
    for cx in (55.0, 137.0):
        lungs |= ((x - cx) / 32) ** 2 + ((y - 96) / 55) ** 2 <= 1
    hu[lungs] = -850.0
    airway = lungs & ((x - 55.0) ** 2 + (y - 80.0) ** 2 <= 5.0**2)
    hu[airway] = -1000.0
    for cx, cy in ((140.0, 70.0), (130.0, 120.0)):
        hu[lungs & ((x - cx) ** 2 + (y - cy) ** 2 <= 2.0**2)] = 40.0
    hu = hu + rng.normal(0, 15, shape)
    hu[~body] = -1000
    geom = Geometry(shape, sp, np.array([-96.0, -96.0, -100.0]), np.eye(3))
    return Volume(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), geom, slice_thickness_mm=1.5), airway


def sphere_nodule(d_mm: float = 8.0, hu_in: float = 20.0) -> RealNodule:
    sp = np.array([1.0, 0.7, 0.7])
    shape = (int(d_mm / sp[0]) + 3, 44, 44)
    geom = Geometry(shape, sp, np.array([10.0, 20.0, -50.0]), np.eye(3))
    c = (np.asarray(shape) - 1) / 2
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    r = np.sqrt(((zz - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2 + ((xx - c[2]) * sp[2]) ** 2)
    mask = r <= d_mm / 2
    rng = np.random.default_rng(1)
    hu = np.where(mask, hu_in, -850.0) + rng.normal(0, 20, shape)
    return RealNodule(
        name="sphere",
        patient_id="P",
        hu_zyx=np.rint(hu).astype(np.int16),
        mask_zyx=mask,
        geometry=geom,
        diameter_mm=d_mm,
        malignancy=4.0,
        texture=5,
        spiculation=1,
        lobulation=1,
        centroid_xyz=np.asarray(geom.index_to_mm(np.argwhere(mask).mean(axis=0))),
    )


def placed_stats(before: np.ndarray, after: np.ndarray, n: RealNodule, geom: Geometry, pl: Placement):
    from training.transplant import resample_to_target

    """(mean HU of the placed nodule, of the source nodule, placed equivalent diameter).

    Both without the rim, where resampling mixes nodule and parenchyma (partial volume): placed, the
    target voxels whose trilinear mask occupancy is >= 0.99; source, the mask eroded in-plane by one
    voxel."""
    from scipy import ndimage

    box, _, _, occ = resample_to_target(n, geom, pl)  # type: ignore[misc]
    mean_hu = float(after[box][occ >= 0.99].mean())
    core = ndimage.binary_erosion(n.mask_zyx, structure=np.ones((1, 3, 3), bool))
    src = float(n.hu_zyx[core if core.any() else n.mask_zyx].mean())
    diameter = equivalent_diameter(occ >= 0.5, geom.spacing_zyx)
    return mean_hu, src, diameter


def test_phantom_keeps_hu_size_position_and_avoids_airway() -> None:
    vol, airway = phantom()
    site = make_site(vol)
    n = sphere_nodule()
    rng = np.random.default_rng(3)
    airway_xy = np.array([-96.0 + 55.0, -96.0 + 80.0])
    for _ in range(25):
        pl = place(site, n, rng, [])
        assert pl is not None
        ci = np.rint(vol.geometry.mm_to_index(pl.centre_xyz)).astype(int)
        assert site.lung.mask_zyx.any() and not airway[tuple(ci)]
        # the nodule (radius 4 mm) stays clear of the 5 mm airway
        assert np.linalg.norm(pl.centre_xyz[:2] - airway_xy) > 5.0 + 4.0
    pl = place(site, n, np.random.default_rng(0), [])
    assert pl is not None
    hu = vol.hu_zyx.copy()
    done = transplant(hu, vol.geometry, n, pl, seed=0)
    assert done is not None
    changed, centroid = done
    assert np.linalg.norm(centroid - pl.centre_xyz) < 1.0  # truth within 1 mm of the placed mask
    mean_hu, src, diameter = placed_stats(vol.hu_zyx, hu, n, vol.geometry, pl)
    assert abs(mean_hu - src) < 30.0
    assert abs(diameter - n.mask_diameter_mm) <= float(max(vol.geometry.spacing_zyx))
    assert np.array_equal(hu[~changed], vol.hu_zyx[~changed])  # the rest of the scan is untouched


def test_deterministic_with_seed() -> None:
    vol, _ = phantom()
    n = sphere_nodule()
    a, anns_a, _ = transplant_many(vol, [n, n], seed=7)
    b, anns_b, _ = transplant_many(vol, [n, n], seed=7)
    c, _, _ = transplant_many(vol, [n, n], seed=8)
    assert anns_a == anns_b and len(anns_a) == 2
    assert np.array_equal(a.hu_zyx, b.hu_zyx)
    assert not np.array_equal(a.hu_zyx, c.hu_zyx)


@pytest.fixture(scope="module")
def real_parts():  # type: ignore[no-untyped-def]
    if not (NODULES / "nodules.csv").exists() or not REAL_CT.exists():
        pytest.skip("shared real data not found")
    from training.transplant import real_backgrounds

    rows = read_nodule_table(NODULES)
    bgs = real_backgrounds(REAL_CT)
    return rows, bgs


def test_real_nodules_into_real_lungs(real_parts) -> None:  # type: ignore[no-untyped-def]
    rows, bgs = real_parts
    # LIDC-IDRI-0002's slabs stay >= 20 mm from its own nodule; A0001's slabs from its tumour
    for name, vol in bgs.items():
        z = [vol.geometry.index_to_mm((k, 0, 0))[2] for k in (0, vol.shape_zyx[0] - 1)]
        if name.startswith("lidc0002"):
            assert min(z) > -87.0 + 20 - 1e-6 or max(z) < -120.75 - 20 + 1e-6
    picks = [r for r in rows if 8.0 <= float(r["diameter_mm"]) <= 20.0][:6]
    nods = [load_nodule(NODULES, r) for r in picks]
    vol = bgs["lidc0002-k0-155"]
    site = make_site(vol)
    rng = np.random.default_rng(0)
    taken: list = []
    placed = 0
    for i, n in enumerate(nods):
        pl = place(site, n, rng, taken)
        if pl is None:
            continue
        hu = vol.hu_zyx.copy()
        done = transplant(hu, vol.geometry, n, pl, seed=i)
        assert done is not None
        _, centroid = done
        assert np.linalg.norm(centroid - pl.centre_xyz) < 1.0
        mean_hu, src, diameter = placed_stats(vol.hu_zyx, hu, n, vol.geometry, pl)
        assert abs(mean_hu - src) < max(60.0, 0.1 * abs(src)), (n.name, mean_hu, src)
        tol = float(max(vol.geometry.spacing_zyx.max(), n.geometry.spacing_zyx.max()))
        assert abs(diameter - n.mask_diameter_mm) <= tol, (n.name, diameter, n.mask_diameter_mm)
        taken.append((centroid, 0.5 * n.diameter_mm))
        placed += 1
    assert placed >= 4
