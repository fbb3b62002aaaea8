"""A real prior/current pair from LIDC-IDRI-0002: the scan, with a real nodule of another LIDC patient
transplanted into its lung, is the prior; the current is a copy with the patient shifted and rotated
(a known rigid transform), the reader-marked nodule grown and the transplanted one grown more.
Skipped when the shared data are absent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nodeview.core.detect.findings import measure_finding
from nodeview.core.detect.lung import segment_lungs
from nodeview.core.followup.compare import compare_findings
from nodeview.core.followup.registration import apply, register, rigid_matrix

from .conftest import SHARED_DATA, need
from .followup_pairs import deep_lung_point, grow_nodule, moved_copy, registration_error_mm, transplant

#: the nodule as two LIDC readers marked it (``LIDC-IDRI-0002-readers.csv``, mean of both), mm
NODULE_XYZ = (59.8, 71.7, -103.2)
NODULE_RADIUS_MM = 17.0
SCALE = 1.12  # linear: volume x 1.405
DAYS = 182
#: a real solid nodule of another LIDC patient (``lidc-nodules``: 10.9 mm), transplanted into the lung
TRANSPLANT = "LIDC-IDRI-0011_R_10.nii.gz"
TRANSPLANT_SCALE = 1.25  # linear, between prior and current: volume x 1.95


@pytest.fixture(scope="module")
def real_pair(lidc_volume):
    from dataclasses import replace

    base = lidc_volume
    matrix = rigid_matrix((2.5, -2.0, 4.0), (9.0, -12.0, 14.0), base.geometry.center_mm())  # current -> prior
    folder = need(SHARED_DATA / "lidc-nodules")
    image, mask = str(folder / "images" / TRANSPLANT), str(folder / "masks" / TRANSPLANT)
    spot = deep_lung_point(base, NODULE_XYZ)
    prior_hu = transplant(base.hu_zyx.astype(np.float32), base.geometry, image, mask, spot)
    prior = replace(base, hu_zyx=np.clip(np.rint(prior_hu), -1024, 3071).astype(np.int16))
    grown = grow_nodule(prior, NODULE_XYZ, NODULE_RADIUS_MM, SCALE)
    grown = transplant(grown, base.geometry, image, mask, spot, TRANSPLANT_SCALE)
    current = moved_copy(prior, matrix, grown, study_date="20000701", seed=5)  # 182 days after 2000-01-01
    return prior, current, matrix, spot


@pytest.mark.slow
def test_real_pair_registration_error_at_the_nodule_and_growth(real_pair):
    prior, current, truth, spot = real_pair
    reg = register(current, prior)
    nodule_current = apply(np.linalg.inv(truth), np.asarray([NODULE_XYZ]))
    spot_current = apply(np.linalg.inv(truth), np.asarray([spot]))
    # the nodule, lung points 4 cm around it, and the transplanted nodule
    points = np.vstack([nodule_current, nodule_current + [[40, 0, 0], [0, 40, 0], [0, 0, 40], [-40, 0, 0]],
                        spot_current])
    error = registration_error_mm(reg.current_to_prior, truth, points)
    print(f"real pair: registration error {np.round(error, 2)} mm (nodule first, transplant last); lung surface "
          f"{reg.surface_before_mm:.2f} -> {reg.surface_after_mm:.2f} mm in {reg.seconds:.1f} s")
    assert error[0] <= 2.0 and error[-1] <= 2.0 and error.max() <= 2.5

    lung_p = segment_lungs(prior.hu_zyx, prior.geometry)
    lung_c = segment_lungs(current.hu_zyx, current.geometry)
    before = [measure_finding(prior, lung_p, NODULE_XYZ, 33.0, 1.0, 0.5, finding_id=1),
              measure_finding(prior, lung_p, spot, 11.0, 1.0, 0.5, finding_id=2)]
    # the current findings in the other order: matching, not numbering, pairs them
    after = [measure_finding(current, lung_c, tuple(spot_current[0]), 11.0 * TRANSPLANT_SCALE, 1.0, 0.5, finding_id=1),
             measure_finding(current, lung_c, tuple(nodule_current[0]), 33.0 * SCALE, 1.0, 0.5, finding_id=2)]
    cmp = compare_findings(after, before, reg, current.patient.study_date, prior.patient.study_date)
    assert cmp.changes[1].prior.id == 2 and cmp.changes[2].prior.id == 1 and cmp.resolved == ()
    t = cmp.changes[1]
    truth_t = DAYS * math.log(2) / math.log(TRANSPLANT_SCALE**3)
    print(f"real pair, transplanted nodule: diameter {t.prior.diameter_mm:.1f} -> {after[0].diameter_mm:.1f} mm, "
          f"VDT {t.vdt_days:.0f} d (truth {truth_t:.0f} d)")
    assert t.change == "growing" and t.vdt_days == pytest.approx(truth_t, rel=0.35)
    before, after = before[0], after[1]
    change = cmp.changes[2]
    truth_vdt = DAYS * math.log(2) / math.log(SCALE**3)
    print(f"real pair: diameter {before.diameter_mm:.1f} -> {after.diameter_mm:.1f} mm, volume "
          f"{before.volume_mm3:.0f} -> {after.volume_mm3:.0f} mm3, VDT {change.vdt_days:.0f} d (truth {truth_vdt:.0f} d)")
    assert cmp.interval_days == DAYS
    assert change.change == "growing" and change.prior is not None and change.distance_mm < 3.0
    assert change.vdt_days == pytest.approx(truth_vdt, rel=0.35)
