"""Registration, matching, growth and VDT: units, and a synthetic prior/current pair with known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nodeview.core.detect.findings import Finding, measure_finding
from nodeview.core.detect.lung import segment_lungs
from nodeview.core.errors import Cancelled
from nodeview.core.followup.compare import compare_findings, compare_studies, suggestion_for
from nodeview.core.followup.growth import (
    classify_change,
    interval_days,
    parse_study_date,
    volume_doubling_time_days,
)
from nodeview.core.followup.matching import gate_mm, match_findings
from nodeview.core.followup.registration import Registration, register, rigid_matrix, translation

from .followup_pairs import INTERVAL_DAYS, cached_pair, registration_error_mm


def _finding(fid: int, xyz, d: float, volume: float | None = None, kind: str = "solid") -> Finding:
    v = math.pi / 6 * d**3 if volume is None else volume
    c = tuple(float(a) for a in xyz)
    return Finding(fid, c, d, tuple(a - d / 2 for a in c), tuple(a + d / 2 for a in c), 0.9, 0.2, kind, v, d, d,
                   "", "right", "upper", d)


# ---- growth ----------------------------------------------------------------------------------------
def test_growth_threshold_is_more_than_1_5_mm_on_one_decimal_means():
    assert classify_change(6.0, 7.5) == "stable"  # exactly 1.5 mm: not growth
    assert classify_change(6.0, 7.6) == "growing"
    assert classify_change(6.04, 7.56) == "growing"  # 6.0 -> 7.6 after rounding to one decimal
    assert classify_change(6.05, 7.54) == "stable"  # 6.1 -> 7.5
    assert classify_change(9.0, 7.4) == "shrinking" and classify_change(9.0, 7.5) == "stable"


def test_vdt_formula_and_undefined_cases():
    assert volume_doubling_time_days(100.0, 200.0, 100) == pytest.approx(100.0)
    assert volume_doubling_time_days(100.0, 400.0, 365) == pytest.approx(182.5)
    assert volume_doubling_time_days(200.0, 100.0, 100) == pytest.approx(-100.0)  # halving time
    for args in [(100.0, 100.0, 100), (0.0, 100.0, 100), (100.0, 200.0, 0), (100.0, 200.0, None),
                 (None, 200.0, 100), (100.0, -5.0, 100)]:
        assert volume_doubling_time_days(*args) is None
    assert interval_days("20250302", "2026-03-05") == 368
    assert interval_days("", "20260305") is None and parse_study_date("20251341") is None


# ---- matching --------------------------------------------------------------------------------------
def test_hungarian_beats_greedy_and_the_gate_scales_with_size():
    ident = Registration.identity()
    # greedy would give current 1 the prior at 3 mm (prior 11) and leave current 2 without a match
    prior = [_finding(11, (0, 0, 0), 6), _finding(12, (-9, 0, 0), 6)]
    current = [_finding(1, (3, 0, 0), 6), _finding(2, (-3, 0, 0), 6)]
    pairs = {p.current_id: p.prior_id for p in match_findings(current, prior, ident)}
    assert pairs == {1: 11, 2: 12}
    # a 4 mm nodule 12 mm away is out of its gate (11 mm); a 20 mm nodule 12 mm away is matched (23 mm)
    assert gate_mm(4, 4) == pytest.approx(11.0) and gate_mm(20, 18) == pytest.approx(23.0)
    assert match_findings([_finding(1, (12, 0, 0), 4)], [_finding(9, (0, 0, 0), 4)], ident) == []
    assert len(match_findings([_finding(1, (12, 0, 0), 20)], [_finding(9, (0, 0, 0), 18)], ident)) == 1


def test_matching_goes_through_the_transform():
    shift = translation((30.0, 0.0, 0.0))  # the prior is 30 mm to the left of the current
    reg = Registration(shift, "test")
    current, prior = [_finding(1, (0, 0, 0), 6)], [_finding(5, (30, 0, 0), 6)]
    assert match_findings(current, prior, Registration.identity()) == []
    (pair,) = match_findings(current, prior, reg)
    assert pair.prior_id == 5 and pair.distance_mm == pytest.approx(0.0)
    assert np.allclose(reg.to_current(reg.to_prior([[1.0, 2.0, 3.0]])), [[1.0, 2.0, 3.0]])


def test_compare_findings_changes_resolved_vdt_and_second_chance():
    ident = Registration.identity()
    prior = [_finding(1, (0, 0, 0), 6.0), _finding(2, (50, 0, 0), 8.0), _finding(3, (0, 60, 0), 5.0)]
    below = [_finding(7, (0, 0, 80), 5.0)]  # under the prior's threshold
    current = [_finding(1, (1, 0, 0), 8.0), _finding(2, (50, 1, 0), 8.2), _finding(3, (100, 0, 0), 7.0),
               _finding(4, (0, 0, 81), 5.2)]
    cmp = compare_findings(current, prior, ident, "20260302", "20250302", prior_candidates=below)
    assert {k: c.change for k, c in cmp.changes.items()} == {1: "growing", 2: "stable", 3: "new", 4: "stable"}
    assert cmp.changes[4].prior_below_threshold and cmp.changes[4].prior.id == 7
    assert [f.id for f in cmp.resolved] == [3]
    expected = 365 * math.log(2) / math.log((8.0 / 6.0) ** 3)
    assert cmp.changes[1].vdt_days == pytest.approx(expected)
    assert cmp.changes[3].vdt_days is None and cmp.changes[1].diameter_change_mm == 2.0
    assert cmp.comparison_line() == "Compared with CT of 2025-03-02."
    # Lung-RADS with the change: solid growing 8 mm -> 4B; new 7 mm -> 4A; stable 8.2 mm over 12 months -> 3
    assert suggestion_for(current[0], cmp).category == "4B"
    assert suggestion_for(current[2], cmp).category == "4A"
    assert suggestion_for(current[1], cmp).category == "3"
    assert suggestion_for(current[1], None).category == "4A"  # without a prior: baseline rules
    doc = cmp.changes[1].prior_json(cmp.prior_date)
    assert doc["id"] == 1 and doc["study_date"] == "2025-03-02" and doc["diameter_mm"] == 6.0


def test_missing_dates_give_no_vdt_and_say_why():
    cmp = compare_findings([_finding(1, (0, 0, 0), 8.0)], [_finding(1, (0, 0, 0), 6.0)], Registration.identity(),
                           "", "20250302")
    assert cmp.changes[1].change == "growing" and cmp.changes[1].vdt_days is None
    assert any("date" in c for c in cmp.caveats)


# ---- a synthetic pair with truth -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair():
    return cached_pair("fine")


@pytest.fixture(scope="module")
def registered(pair):
    steps = []
    reg = register(pair.current, pair.prior, progress=lambda d, n: steps.append(d))
    assert steps[-1] == 100 and steps == sorted(steps)
    return reg


def _measured(volume, truths, which: str) -> list[Finding]:
    lung = segment_lungs(volume.hu_zyx, volume.geometry)
    out = []
    rng = np.random.default_rng(3)
    for n, t in enumerate(truths):
        centre = t.current_xyz if which == "current" else t.prior_xyz
        d = t.current_diameter_mm if which == "current" else t.prior_diameter_mm
        if centre is None:
            continue
        jitter = rng.uniform(-1.0, 1.0, 3)  # a detector's centre is never exact
        out.append(measure_finding(volume, lung, tuple(np.asarray(centre) + jitter), d, 0.9, 0.3, finding_id=n + 1))
    return out


def test_registration_recovers_the_known_motion(pair, registered):
    points = np.array([t.current_xyz for t in pair.nodules if t.current_xyz is not None])
    error = registration_error_mm(registered.current_to_prior, pair.current_to_prior, points)
    print(f"registration error at the nodules: {np.round(error, 2)} mm; lung surface "
          f"{registered.surface_before_mm:.2f} -> {registered.surface_after_mm:.2f} mm")
    assert error.max() <= 1.0
    assert registered.surface_after_mm < registered.surface_before_mm
    assert registered.surface_after_mm < 2.0


def test_pair_matching_growth_and_vdt_against_truth(pair, registered):
    current = _measured(pair.current, pair.nodules, "current")
    prior = _measured(pair.prior, pair.nodules, "prior")
    cmp = compare_findings(current, prior, registered, pair.current.patient.study_date, pair.prior.patient.study_date)
    assert cmp.interval_days == INTERVAL_DAYS
    names = {n + 1: t for n, t in enumerate(pair.nodules)}
    for fid, change in cmp.changes.items():
        truth = names[fid]
        assert change.change == truth.change, f"{truth.name}: {change}"
        if truth.change != "new":
            assert change.prior is not None and change.prior.id == fid  # the same nodule
    assert [names[f.id].name for f in cmp.resolved] == ["resolved"]
    for fid, change in cmp.changes.items():
        truth = names[fid]
        if truth.change == "growing":
            print(f"{truth.name}: VDT {change.vdt_days:.0f} d, truth {truth.vdt_days:.0f} d")
            assert change.vdt_days == pytest.approx(truth.vdt_days, rel=0.4)
        elif truth.change == "stable":
            assert change.vdt_days is None or abs(change.vdt_days) > 2000  # no real volume change
        else:
            assert change.vdt_days is None


def test_compare_studies_end_to_end_and_nudge(pair):
    current = _measured(pair.current, pair.nodules, "current")
    prior = _measured(pair.prior, pair.nodules, "prior")
    cmp = compare_studies(pair.current, pair.prior, current, prior)
    assert sorted(c.change for c in cmp.changes.values()) == ["growing", "growing", "new", "stable"]
    reg = cmp.registration
    off = reg.nudged((6.0, 0.0, 0.0))
    assert off.surface_after_mm > reg.surface_after_mm + 1.0  # the quality shows a bad nudge
    back = off.nudged((0.0, 0.0, 0.0))
    assert np.allclose(back.current_to_prior, reg.current_to_prior)
    assert np.allclose(off.to_prior([[0.0, 0.0, 0.0]]) - reg.to_prior([[0.0, 0.0, 0.0]]), [[6.0, 0.0, 0.0]])
    doc = cmp.to_json()
    assert doc["prior_study_date"] == "2025-03-02" and doc["registration"]["lung_surface_distance_mm"]["after"] < 2


def test_registration_cancel():
    pair = cached_pair("coarse")
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        register(pair.current, pair.prior, should_stop=stop)


def test_rigid_matrix_is_a_rotation_about_the_centre():
    m = rigid_matrix((0, 0, 90), (0, 0, 0), (10, 0, 0))
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3))
    assert np.allclose(m[:3, :3] @ np.array([10, 0, 0]) + m[:3, 3], [10, 0, 0])
