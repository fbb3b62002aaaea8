"""One finding per lesion on REAL nodules: large, lobulated and part-solid LIDC crops
(``../shared/data/lidc-nodules``) transplanted with ``training/transplant.py`` into the chest phantom
of ``test_candidates``; candidates spread over each (as the proposer leaves them on a large or
part-solid nodule) must come back as exactly one finding measured on the whole nodule. Skipped when
the shared data is absent."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from nodeview.core.geometry import Geometry
from nodeview.core.volume import Volume

from .conftest import SHARED_DATA, need
from .test_candidates import _chest
from .test_lesions import _lesion_step

transplant = pytest.importorskip("training.transplant")

NODULES = SHARED_DATA / "lidc-nodules"


def _background() -> Volume:
    """The phantom chest without its own nodules (lungs refilled with noisy parenchyma)."""
    rng = np.random.default_rng(11)
    _, g, _, _, lungs = _chest(0)
    shape = g.shape_zyx
    y, x = np.mgrid[0 : shape[1], 0 : shape[2]].astype(np.float32)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[:, ((y * 0.75 - 60) / 55) ** 2 + ((x * 0.75 - 60) / 58) ** 2 < 1] = 40
    hu[lungs] = -850
    hu += rng.normal(0, 15, shape).astype(np.float32)
    geometry = Geometry(g.shape_zyx, g.spacing_zyx, g.origin_xyz)
    return Volume(np.rint(hu).astype(np.int16), geometry, series_uid="1.2.3.9", description="background")


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
        ("LIDC-IDRI-0108_R_1.nii.gz", "lobulated"),  # 14.8 mm, lobulation 5
        ("LIDC-IDRI-0194_R_1.nii.gz", "part-solid"),  # 20.5 mm, part solid
        ("LIDC-IDRI-0223_R_1.nii.gz", "part-solid"),  # 16.8 mm, part solid
    ],
)
def test_transplanted_real_nodule_is_one_finding(name, what):
    row = _row(name)
    nodule = transplant.load_nodule(NODULES, row)
    background = _background()
    site = transplant.make_site(background)
    placement = transplant.place(site, nodule, np.random.default_rng(7), [])
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
    assert 0.6 * d <= f.diameter_mm <= 1.4 * d, (f.diameter_mm, d, f.long_axis_mm, f.short_axis_mm)
    if what == "part-solid":
        assert f.type in ("part-solid", "ground-glass"), f.type
