"""One finding per lesion on REAL nodules: large, lobulated and part-solid LIDC crops
(``../shared/data/lidc-nodules``) transplanted with ``training/data/transplant.py`` into a real lung
background (LIDC-IDRI-0002 more than 20 mm below its own nodule); candidates spread over each (as the proposer leaves them on a large or
part-solid nodule) must come back as exactly one finding measured on the whole nodule. Skipped when
the shared data is absent."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from nodeview.core.detect.findings import _largest_section_axes
from nodeview.core.volume import Volume

from .conftest import SHARED_DATA, need
from .test_lesions import _lesion_step

transplant = pytest.importorskip("training.data.transplant")

NODULES = SHARED_DATA / "lidc-nodules"


@pytest.fixture(scope="module")
def lidc_slab(lidc_volume) -> Volume:
    """LIDC-IDRI-0002 below its own nodule (more than 20 mm clear of it): a real lung background."""
    (k0, k1), *_ = transplant.clear_slabs(lidc_volume, transplant.LIDC_0002_NODULE_Z, 20.0, 80.0)
    return transplant.slab(lidc_volume, k0, k1, "LIDC-IDRI-0002 slab")


@pytest.fixture(scope="module")
def lidc_site(lidc_slab):
    return transplant.make_site(lidc_slab)


def _row(name: str) -> dict[str, str]:
    with open(need(NODULES) / "nodules.csv", newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    return rows[name]


@pytest.mark.parametrize(
    "name, what",
    [
        ("LIDC-IDRI-0772_R_1.nii.gz", "large"),  # 30.6 mm, solid
        ("LIDC-IDRI-0697_R_1.nii.gz", "large"),  # 27.4 mm, solid
        ("LIDC-IDRI-0023_R_1.nii.gz", "lobulated"),  # 22.8 mm, lobulation 4
        # these three leaked into vessels, pleura and chest wall (measured 1.7-2.4x too large) until the
        # lesion was opened with a ball of half its depth and held to the lung's local hull
        ("LIDC-IDRI-0108_R_1.nii.gz", "lobulated"),  # 14.8 mm, lobulation 5: vessels attached
        ("LIDC-IDRI-0194_R_1.nii.gz", "part-solid"),  # 20.5 mm, part solid, cavity: a vessel attached
        ("LIDC-IDRI-0223_R_1.nii.gz", "part-solid"),  # 16.8 mm, part solid, broad base on the chest wall
    ],
)
def test_transplanted_real_nodule_is_one_finding(name, what, lidc_slab, lidc_site):
    row = _row(name)
    nodule = transplant.load_nodule(NODULES, row)
    background = lidc_slab
    placement = transplant.place(lidc_site, nodule, np.random.default_rng(7), [])
    if placement is None:
        pytest.skip(f"{name} found no place in the phantom")
    hu = background.hu_zyx.copy()
    done = transplant.transplant(hu, background.geometry, nodule, placement, seed=7)
    assert done is not None
    changed, centre = done
    volume = Volume(hu, background.geometry, series_uid="1.2.3.10", description="transplant")
    g = volume.geometry
    d = max(float(row["diameter_mm"]), nodule.mask_diameter_mm)
    # candidates on the nodule's denser voxels (ground glass included), the centroid first
    idx = np.argwhere(changed & (hu > -650))
    near = np.linalg.norm(g.index_to_mm(idx) - centre, axis=1) < 0.4 * d
    idx = idx[near]
    pick = idx[np.random.default_rng(0).choice(len(idx), 5, replace=False)]
    pts = np.vstack([centre, g.index_to_mm(pick)])
    findings = _lesion_step(volume, pts)
    assert len(findings) == 1, [(f.center_xyz_mm, round(f.diameter_mm, 1), f.type) for f in findings]
    (f,) = findings
    assert f.measured and np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) < 0.3 * d
    # the finding's diameter is the mean axis of the largest axial section: compare it with the same
    # measure of the readers' mask (a flat lesion, e.g. 0194 at 30 x 40 mm over 20 mm of z, is much
    # wider than its equivalent sphere of 23.5 mm)
    section = np.mean(_largest_section_axes(np.argwhere(nodule.mask_zyx), tuple(nodule.geometry.spacing_zyx[1:])))
    assert 0.7 * section <= f.diameter_mm <= 1.3 * section, (f.diameter_mm, section, f.long_axis_mm, f.short_axis_mm)
    if what == "part-solid":
        assert f.type in ("part-solid", "ground-glass"), f.type
