"""Lung-RADS v2022 and Fleischner 2017 helpers, row by row from the published tables.

Each case names the table row it exercises (ACR Lung-RADS v2022 assessment categories; Fleischner
2017, MacMahon et al., Radiology 2017, Table 1), and both sides of every size threshold are tested.
"""

from __future__ import annotations

import pytest

from nodeview.core.followup.fleischner import FleischnerNodule, fleischner, size_class
from nodeview.core.followup.lungrads import (
    MANAGEMENT,
    category_rank,
    highest,
    lung_rads,
    mean_diameter_mm,
    round_half_up,
)

# (row, kind, mean diameter, solid component, status, expected category)
LUNG_RADS_ROWS = [
    # Category 1
    ("1: calcified (benign pattern)", "calcified", 12.0, 0.0, "baseline", "1"),
    # Category 2, solid
    ("2: solid < 6 mm at baseline", "solid", 5.9, 0.0, "baseline", "2"),
    ("2: solid new < 4 mm", "solid", 3.9, 0.0, "new", "2"),
    # Category 2, part-solid
    ("2: part-solid < 6 mm total at baseline", "part-solid", 5.9, 3.0, "baseline", "2"),
    # Category 2, non-solid
    ("2: non-solid < 30 mm at baseline", "ground-glass", 29.9, 0.0, "baseline", "2"),
    ("2: non-solid < 30 mm new", "ground-glass", 29.9, 0.0, "new", "2"),
    ("2: non-solid < 30 mm growing", "ground-glass", 20.0, 0.0, "growing", "2"),
    ("2: non-solid >= 30 mm stable", "ground-glass", 30.0, 0.0, "stable", "2"),
    ("2: non-solid alias 'non-solid'", "non-solid", 10.0, 0.0, "baseline", "2"),
    # Category 3
    ("3: solid 6 to < 8 mm at baseline (lower edge)", "solid", 6.0, 0.0, "baseline", "3"),
    ("3: solid 6 to < 8 mm at baseline (upper edge)", "solid", 7.9, 0.0, "baseline", "3"),
    ("3: solid new 4 to < 6 mm (lower edge)", "solid", 4.0, 0.0, "new", "3"),
    ("3: solid new 4 to < 6 mm (upper edge)", "solid", 5.9, 0.0, "new", "3"),
    ("3: part-solid >= 6 mm total, solid < 6 mm at baseline", "part-solid", 6.0, 5.9, "baseline", "3"),
    ("3: part-solid new < 6 mm total", "part-solid", 5.9, 5.0, "new", "3"),
    ("3: non-solid >= 30 mm at baseline", "ground-glass", 30.0, 0.0, "baseline", "3"),
    ("3: non-solid >= 30 mm new", "ground-glass", 31.0, 0.0, "new", "3"),
    # Category 4A
    ("4A: solid 8 to < 15 mm at baseline (lower edge)", "solid", 8.0, 0.0, "baseline", "4A"),
    ("4A: solid 8 to < 15 mm at baseline (upper edge)", "solid", 14.9, 0.0, "baseline", "4A"),
    ("4A: solid growing < 8 mm", "solid", 7.9, 0.0, "growing", "4A"),
    ("4A: solid new 6 to < 8 mm (lower edge)", "solid", 6.0, 0.0, "new", "4A"),
    ("4A: solid new 6 to < 8 mm (upper edge)", "solid", 7.9, 0.0, "new", "4A"),
    ("4A: part-solid solid component 6 to < 8 mm at baseline", "part-solid", 12.0, 6.0, "baseline", "4A"),
    ("4A: part-solid solid component 6 to < 8 mm at baseline (upper)", "part-solid", 12.0, 7.9, "baseline", "4A"),
    ("4A: part-solid new, solid component < 4 mm", "part-solid", 8.0, 3.9, "new", "4A"),
    ("4A: part-solid growing, solid component < 4 mm", "part-solid", 8.0, 3.9, "growing", "4A"),
    # Category 4B
    ("4B: solid >= 15 mm at baseline", "solid", 15.0, 0.0, "baseline", "4B"),
    ("4B: solid new >= 8 mm", "solid", 8.0, 0.0, "new", "4B"),
    ("4B: solid growing >= 8 mm", "solid", 8.0, 0.0, "growing", "4B"),
    ("4B: part-solid solid component >= 8 mm at baseline", "part-solid", 14.0, 8.0, "baseline", "4B"),
    ("4B: part-solid new, solid component >= 4 mm", "part-solid", 8.0, 4.0, "new", "4B"),
    ("4B: part-solid growing, solid component >= 4 mm", "part-solid", 8.0, 4.0, "growing", "4B"),
]


@pytest.mark.parametrize(("row", "kind", "d", "solid", "status", "expected"), LUNG_RADS_ROWS, ids=[r[0] for r in LUNG_RADS_ROWS])
def test_lung_rads_v2022_rows(row, kind, d, solid, status, expected):
    s = lung_rads(kind, d, solid, status)
    assert s.category == expected, f"{row}: got {s.category} by rule {s.rule!r}"
    assert s.management == MANAGEMENT[expected]
    assert s.rule  # the rule that fired is always named


def test_juxtapleural_benign_shape_is_2_below_10_mm():
    # Category 2 row: juxta-pleural nodule < 10 mm mean diameter, solid, smooth, oval/lentiform/triangular
    assert lung_rads("solid", 9.9, status="baseline", juxtapleural_benign=True).category == "2"
    assert lung_rads("solid", 9.9, status="new", juxtapleural_benign=True).category == "2"
    assert "juxta-pleural" in lung_rads("solid", 9.9, juxtapleural_benign=True).rule
    # at 10 mm the size rows apply again (8-15 mm at baseline: 4A; new >= 8 mm: 4B)
    assert lung_rads("solid", 10.0, juxtapleural_benign=True).category == "4A"
    assert lung_rads("solid", 10.0, status="new", juxtapleural_benign=True).category == "4B"
    # a growing juxta-pleural nodule is not benign by shape (solid growing >= 8 mm: 4B)
    assert lung_rads("solid", 9.0, status="growing", juxtapleural_benign=True).category == "4B"
    # without the benign shape, a 9 mm baseline solid nodule is 4A
    assert lung_rads("solid", 9.0).category == "4A"


def test_stepped_management_of_stable_nodules():
    # Category 2 row: "category 3 nodule stable or decreased in size at 6-month follow-up CT"
    assert lung_rads("solid", 7.0, status="stable", interval_months=6).category == "2"
    assert lung_rads("solid", 7.0, status="shrinking", interval_months=6).category == "2"
    # Category 3 row: "category 4A nodule stable or decreased in size at 3-month follow-up CT"
    assert lung_rads("solid", 10.0, status="stable", interval_months=3).category == "3"
    # too early for the step: the size category stays
    assert lung_rads("solid", 7.0, status="stable", interval_months=3).category == "3"
    assert lung_rads("solid", 10.0, status="stable", interval_months=1).category == "4A"
    assert lung_rads("solid", 10.0, status="stable", interval_months=None).category == "4A"
    # small stable nodules stay 2; a stable 4B is left to the reader (no down-grade in the table)
    assert lung_rads("solid", 4.0, status="stable", interval_months=12).category == "2"
    s = lung_rads("solid", 16.0, status="stable", interval_months=12)
    assert s.category == "4B" and "reader" in s.rule


def test_size_threshold_crossed_without_growth_is_reclassified_by_size():
    """v2022 "Size Thresholds": a nodule that enlarges into a higher size category is reclassified by
    size even without growth > 1.5 mm - the stepped down-grade is for a nodule that *was* 3 or 4A."""
    crossed = lung_rads("solid", 6.2, status="stable", interval_months=6, prior_mean_diameter=5.8)
    assert crossed.category == "3" and "crossed a size threshold" in crossed.rule
    assert lung_rads("solid", 8.4, status="stable", interval_months=3, prior_mean_diameter=7.6).category == "4A"
    assert lung_rads("solid", 15.2, status="stable", interval_months=12, prior_mean_diameter=14.0).category == "4B"
    # part-solid: the solid component crossed 6 mm without growth of the nodule
    assert lung_rads("part-solid", 12.0, 6.3, "stable", interval_months=3, prior_mean_diameter=11.5,
                     prior_solid_diameter=5.5).category == "4A"  # fmt: skip
    # the same size category as before: the stepped rules still apply
    assert lung_rads("solid", 7.0, status="stable", interval_months=6, prior_mean_diameter=6.5).category == "2"
    assert lung_rads("solid", 10.0, status="stable", interval_months=3, prior_mean_diameter=10.2).category == "3"
    # smaller than before (a lower size category): the step down as before
    assert lung_rads("solid", 7.0, status="shrinking", interval_months=6, prior_mean_diameter=9.0).category == "2"


def test_mean_diameter_one_decimal_half_up():
    # "mean diameter ... to one decimal": 5.95 is 6.0, so category 3, not 2
    assert mean_diameter_mm(6.3, 5.6) == 6.0  # (6.3 + 5.6) / 2 = 5.95
    assert lung_rads("solid", (6.3 + 5.6) / 2).category == "3"
    assert mean_diameter_mm(6.2, 5.6) == 5.9
    assert lung_rads("solid", 5.94).category == "2"
    assert round_half_up(2.25, 1) == 2.3 and round_half_up(2.35, 1) == 2.4  # not banker's rounding
    assert lung_rads("solid", 7.96).mean_diameter_mm == 8.0


def test_4x_is_never_automatic_and_categories_order():
    every = {lung_rads(k, d, s, st).category for _, k, d, s, st, _ in LUNG_RADS_ROWS}
    assert "4X" not in every
    assert highest(["2", "4A", "3"]) == "4A" and highest(["4B", "4X"]) == "4X" and highest([]) is None
    assert category_rank("4A") < category_rank("4B")


def test_bad_kind_and_status_are_refused():
    with pytest.raises(ValueError):
        lung_rads("cavitary", 5.0)
    with pytest.raises(ValueError):
        lung_rads("solid", 5.0, status="bigger")


# ---- Fleischner 2017, Table 1 --------------------------------------------------------------------
# (row, nodules [(kind, mean diameter)], risk, expected recommendation (start of the text))
FLEISCHNER_ROWS = [
    ("solid single < 6 mm, low risk", [("solid", 5.4)], "low", "No routine follow-up."),
    ("solid single < 6 mm, high risk", [("solid", 5.4)], "high", "Optional CT at 12 months."),
    ("solid single 6-8 mm, low risk", [("solid", 5.5)], "low", "CT at 6-12 months, then consider CT at 18-24 months."),
    ("solid single 6-8 mm, high risk", [("solid", 8.4)], "high", "CT at 6-12 months, then CT at 18-24 months."),
    ("solid single > 8 mm, low risk", [("solid", 8.5)], "low", "Consider CT at 3 months, PET/CT, or tissue sampling."),
    ("solid single > 8 mm, high risk", [("solid", 20.0)], "high", "Consider CT at 3 months, PET/CT, or tissue sampling."),
    ("solid multiple < 6 mm, low risk", [("solid", 4.0), ("solid", 5.0)], "low", "No routine follow-up."),
    ("solid multiple < 6 mm, high risk", [("solid", 4.0), ("solid", 5.0)], "high", "Optional CT at 12 months."),
    ("solid multiple 6-8 mm, low risk", [("solid", 4.0), ("solid", 7.0)], "low", "CT at 3-6 months, then consider CT at 18-24 months."),
    ("solid multiple 6-8 mm, high risk", [("solid", 4.0), ("solid", 7.0)], "high", "CT at 3-6 months, then at 18-24 months."),
    ("solid multiple > 8 mm, low risk", [("solid", 9.0), ("solid", 4.0)], "low", "CT at 3-6 months, then consider CT at 18-24 months."),
    ("solid multiple > 8 mm, high risk", [("solid", 9.0), ("solid", 4.0)], "high", "CT at 3-6 months, then at 18-24 months."),
    ("subsolid single ground glass < 6 mm", [("ground-glass", 5.4)], "high", "No routine follow-up."),
    ("subsolid single ground glass >= 6 mm", [("ground-glass", 5.5)], "low", "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years."),
    ("subsolid single part solid < 6 mm", [("part-solid", 5.0)], "high", "No routine follow-up."),
    ("subsolid single part solid >= 6 mm", [("part-solid", 6.0)], "low", "CT at 3-6 months to confirm persistence. If unchanged and solid component remains < 6 mm, annual CT should be performed for 5 years."),
    ("subsolid multiple < 6 mm", [("ground-glass", 4.0), ("part-solid", 5.0)], "low", "CT at 3-6 months. If stable, consider CT at 2 and 4 years."),
    ("subsolid multiple >= 6 mm", [("ground-glass", 4.0), ("ground-glass", 12.0)], "high", "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s)."),
]


@pytest.mark.parametrize(("row", "nodules", "risk", "expected"), FLEISCHNER_ROWS, ids=[r[0] for r in FLEISCHNER_ROWS])
def test_fleischner_2017_rows(row, nodules, risk, expected):
    items = [FleischnerNodule(k, d, id=n + 1) for n, (k, d) in enumerate(nodules)]
    s = fleischner(items, risk)
    assert s.applies
    assert s.recommendation == expected, f"{row}: rule {s.rule!r}"
    assert s.rule and s.driving_id in {n.id for n in items}


def test_fleischner_rounds_to_the_nearest_mm_and_names_the_driving_nodule():
    assert size_class(5.49, subsolid=False) == "<6" and size_class(5.5, subsolid=False) == "6-8"
    assert size_class(8.49, subsolid=False) == "6-8" and size_class(8.5, subsolid=False) == ">8"
    s = fleischner([FleischnerNodule("solid", 4.0, id=1), FleischnerNodule("solid", 10.0, id=2)], "low")
    assert s.driving_id == 2 and "multiple" in s.rule and "> 8" in s.rule


def test_fleischner_risk_unknown_gives_both_texts():
    s = fleischner([FleischnerNodule("solid", 4.0)], None)
    assert "Low risk: No routine follow-up." in s.recommendation and "High risk: Optional CT at 12 months." in s.recommendation
    # the > 8 mm row is the same for both risks: one text
    assert fleischner([FleischnerNodule("solid", 12.0)], None).recommendation.startswith("Consider CT at 3 months")


def test_fleischner_exclusions_and_calcified():
    n = [FleischnerNodule("solid", 7.0)]
    for kwargs, word in [({"screening": True}, "screening"), ({"age_years": 30}, "35"),
                         ({"known_cancer": True}, "cancer"), ({"immunocompromised": True}, "immunocompromised")]:
        s = fleischner(n, "low", **kwargs)
        assert not s.applies and word in s.rule and s.recommendation == ""
    assert fleischner([FleischnerNodule("calcified", 9.0)], "high").recommendation == "No routine follow-up."
    with pytest.raises(ValueError):
        fleischner(n, "medium")
