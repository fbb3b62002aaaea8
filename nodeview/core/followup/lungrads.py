"""Lung-RADS v2022 category suggestions for one nodule, with the rule that fired (Qt-free).

Written from the ACR Lung-RADS v2022 assessment table (American College of Radiology, November
2022). A suggestion for a reader, never a reading: the reader may override it, and category 4X
(a category 3 or 4 nodule with additional features that raise the suspicion of cancer, such as
spiculation) is never suggested automatically.

Sources checked (2026-12-04, issue 25)
    * ACR, "Lung-RADS Version 1.1 Assessment Categories" (2019), as reproduced in NCBI Bookshelf
      NBK568579, Appendix A Table 2 (https://ncbi.nlm.nih.gov/books/NBK568579/table/appa.tab2/):
      the size rows of categories 2 to 4B, which v2022 kept.
    * The v2022 notes (nodule growth "> 1.5 mm within a 12-month interval"; mean diameter to one
      decimal; "Size Thresholds: apply to nodules at first detection and that enlarge, reaching a
      higher size category ... even if not meeting the definition of growth, the nodule should be
      reclassified based on size"; juxtapleural nodules; stepped management of stable category 3
      and 4A nodules) as reproduced at https://www.yingbo777.com/home/lung-rads/ and summarised
      in Christensen J. et al., "ACR Lung-RADS v2022: Assessment Categories and Management
      Recommendations", CHEST 2024;165(3):738-753.
    The ACR's own v2022 PDF (acr.org) was not among the stored pages: the v2022 rows below are
    checked against these secondary reproductions, not against the ACR document itself.
    Discrepancy found and fixed: a "stable" nodule (growth <= 1.5 mm) that crossed a size
    threshold since the prior was stepped *down* (e.g. 5.8 -> 6.2 mm at 6 months gave 2); v2022
    reclassifies it by its new size (3) - :func:`lung_rads` takes the prior's size for this.

Conventions
    * Sizes are **mean diameters**: the average of the long and short axis on the same image,
      rounded to one decimal place (:func:`mean_diameter_mm`), as Lung-RADS asks. Thresholds
      apply to the rounded value ("< 6 mm" means at most 5.9 mm).
    * Part-solid nodules are classed by the total mean diameter *and* the mean diameter of the
      solid component.
    * ``status`` is how the nodule compares with a prior CT: ``baseline`` (no prior: the first
      screening round), ``new``, ``stable``, ``growing`` or ``shrinking`` (decreased). Growth is a
      mean-diameter increase of more than 1.5 mm within 12 months (:data:`GROWTH_MM`).

Rows (solid; part-solid by its solid component; non-solid = ground glass)
    ==========  ========================================================================
    category    rule
    ==========  ========================================================================
    1           calcified with a benign pattern (complete, central, popcorn, laminated)
    2           solid < 6 mm at baseline; solid new < 4 mm; part-solid < 6 mm (total) at
                baseline; non-solid < 30 mm at baseline, new or growing; non-solid >= 30 mm
                stable or slowly growing; juxta-pleural/perifissural solid < 10 mm with
                smooth margins and an oval, lentiform or triangular shape, at baseline or
                new; a category 3 nodule stable or smaller at a 6-month follow-up
    3           solid 6 to < 8 mm at baseline; solid new 4 to < 6 mm; part-solid >= 6 mm
                total with solid component < 6 mm at baseline; part-solid new < 6 mm total;
                non-solid >= 30 mm at baseline or new; a category 4A nodule stable or
                smaller at a 3-month follow-up
    4A          solid 8 to < 15 mm at baseline; solid growing < 8 mm; solid new 6 to < 8 mm;
                part-solid solid component 6 to < 8 mm at baseline; part-solid new or
                growing solid component < 4 mm
    4B          solid >= 15 mm at baseline; solid new or growing >= 8 mm; part-solid solid
                component >= 8 mm at baseline; part-solid new or growing solid component
                >= 4 mm
    ==========  ========================================================================

Management (v2022): 1 and 2: continue annual screening with LDCT in 12 months; 3: LDCT in 6
months; 4A: LDCT in 3 months, PET/CT may be considered with a solid nodule or solid component
>= 8 mm; 4B and 4X: diagnostic chest CT with or without contrast, PET/CT may be considered with
a solid nodule or solid component >= 8 mm, tissue sampling and/or referral for further clinical
evaluation.

What the table leaves to the reader, and what this helper does then (the rule text says so):
    * A stable category 4B nodule: the table has no down-grade; it stays 4B.
    * A non-solid nodule >= 30 mm that grows faster than "slowly": not in the table; suggested 3
      (as at baseline or new).
    * A part-solid nodule whose total grows while its solid component does not: classed as
      growing by its solid component.
    * A stable or smaller nodule whose size category (baseline rules) is above the prior's: it
      crossed a size threshold, so it is classed by its size and the stepped rules do not apply
      (v2022 "Size Thresholds"); without the prior's size the stepped rules apply as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

#: Lung-RADS growth: an increase in mean diameter of more than this, within 12 months.
GROWTH_MM = 1.5
CATEGORY_ORDER = ("0", "1", "2", "3", "4A", "4B", "4X")
STATUSES = ("baseline", "new", "stable", "growing", "shrinking")
KINDS = ("solid", "part-solid", "ground-glass", "calcified")
#: Alternative names accepted for the kinds.
KIND_ALIASES = {
    "non-solid": "ground-glass",
    "nonsolid": "ground-glass",
    "ggn": "ground-glass",
    "subsolid": "part-solid",
}

MANAGEMENT = {
    "0": "Comparison with a prior chest CT, or LDCT in 1-3 months.",
    "1": "Continue annual screening with LDCT in 12 months.",
    "2": "Continue annual screening with LDCT in 12 months.",
    "3": "LDCT in 6 months.",
    "4A": "LDCT in 3 months; PET/CT may be considered if there is a solid nodule or solid component >= 8 mm.",
    "4B": "Diagnostic chest CT with or without contrast; PET/CT may be considered if there is a solid nodule "
    "or solid component >= 8 mm; tissue sampling and/or referral for further clinical evaluation.",
    "4X": "Diagnostic chest CT with or without contrast; PET/CT may be considered if there is a solid nodule "
    "or solid component >= 8 mm; tissue sampling and/or referral for further clinical evaluation.",
}


@dataclass(frozen=True)
class LungRadsSuggestion:
    """A suggested category, the table row that gave it, and the management for it.

    Attributes:
        category: "1", "2", "3", "4A" or "4B" (never "4X": that is the reader's call).
        rule: the row of the v2022 table that fired, in words (shown to the reader).
        management: the v2022 management of the category.
        mean_diameter_mm: the size used, one decimal.
        solid_diameter_mm: the solid component used (part-solid), one decimal; else None.
    """

    category: str
    rule: str
    management: str
    mean_diameter_mm: float
    solid_diameter_mm: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "category": self.category,
            "rule": self.rule,
            "management": self.management,
            "mean_diameter_mm": self.mean_diameter_mm,
            "solid_diameter_mm": self.solid_diameter_mm,
        }


_OutFn = Callable[[str, str], LungRadsSuggestion]


def round_half_up(value: float, decimals: int = 1) -> float:
    """``value`` rounded half away from zero (5.95 -> 6.0), not Python's banker's rounding.

    Binary noise below 1e-9 is dropped first, so (6.3 + 5.6) / 2 = 5.9499999... counts as 5.95."""
    q = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(round(float(value), 9))).quantize(q, rounding=ROUND_HALF_UP))


def mean_diameter_mm(long_axis_mm: float, short_axis_mm: float) -> float:
    """Lung-RADS mean diameter: the average of long and short axis, to one decimal."""
    return round_half_up((float(long_axis_mm) + float(short_axis_mm)) / 2.0, 1)


def category_rank(category: str) -> int:
    """Order of suspicion: 0 < 1 < 2 < 3 < 4A < 4B < 4X."""
    return CATEGORY_ORDER.index(category)


def highest(categories: Iterable[str]) -> str | None:
    """The most suspicious category (the exam's category is that of its most suspicious nodule)."""
    found = [c for c in categories if c]
    return max(found, key=category_rank) if found else None


def normalise_kind(kind: str) -> str:
    k = kind.strip().lower()
    k = KIND_ALIASES.get(k, k)
    if k not in KINDS:
        raise ValueError(f"nodule kind must be one of {KINDS} (or {tuple(KIND_ALIASES)}), got {kind!r}")
    return k


def lung_rads(
    kind: str,
    mean_diameter: float,
    solid_diameter: float = 0.0,
    status: str = "baseline",
    *,
    interval_months: float | None = None,
    juxtapleural_benign: bool = False,
    prior_mean_diameter: float | None = None,
    prior_solid_diameter: float = 0.0,
) -> LungRadsSuggestion:
    """The Lung-RADS v2022 category suggested for one nodule.

    Args:
        kind: "solid", "part-solid", "ground-glass" (or "non-solid") or "calcified" (benign
            calcification pattern).
        mean_diameter: mean diameter in mm (rounded here to one decimal).
        solid_diameter: part-solid only: mean diameter of the solid component, mm.
        status: "baseline", "new", "stable", "growing" or "shrinking" (see the module docstring).
        interval_months: time since the prior CT, for the stepped rules of stable nodules
            (category 3 stable at >= 6 months -> 2; category 4A stable at >= 3 months -> 3; half a
            month early still counts, as follow-up scans are rarely to the day). None: unknown,
            the stepped rules do not apply.
        juxtapleural_benign: a juxta-pleural or perifissural solid nodule with smooth margins and
            an oval, lentiform or triangular shape (the reader's judgement).
        prior_mean_diameter, prior_solid_diameter: the nodule's size on the prior CT (mm), for a
            stable nodule that crossed a size threshold (v2022 "Size Thresholds"); None: unknown.
    """
    k = normalise_kind(kind)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    d = round_half_up(mean_diameter, 1)
    s = round_half_up(solid_diameter, 1) if k == "part-solid" else None

    def out(category: str, rule: str) -> LungRadsSuggestion:
        return LungRadsSuggestion(category, rule, MANAGEMENT[category], d, s)

    if k == "calcified":
        return out("1", "calcified nodule (benign calcification pattern)")
    if k == "solid" and juxtapleural_benign and d < 10.0 and status in ("baseline", "new"):
        return out("2", f"juxta-pleural/perifissural solid < 10 mm, benign shape and margins, {status}")
    if status in ("stable", "shrinking"):
        prior = None
        if prior_mean_diameter is not None:
            prior = (round_half_up(prior_mean_diameter, 1), round_half_up(prior_solid_diameter, 1))
        return _stable(k, d, s or 0.0, status, interval_months, out, prior)
    if k == "solid":
        return _solid(d, status, out)
    if k == "part-solid":
        return _part_solid(d, s or 0.0, status, out)
    return _non_solid(d, status, out)


def _solid(d: float, status: str, out: _OutFn) -> LungRadsSuggestion:
    if status == "baseline":
        if d < 6:
            return out("2", "solid < 6 mm at baseline")
        if d < 8:
            return out("3", "solid 6 to < 8 mm at baseline")
        if d < 15:
            return out("4A", "solid 8 to < 15 mm at baseline")
        return out("4B", "solid >= 15 mm at baseline")
    if status == "new":
        if d < 4:
            return out("2", "solid new < 4 mm")
        if d < 6:
            return out("3", "solid new 4 to < 6 mm")
        if d < 8:
            return out("4A", "solid new 6 to < 8 mm")
        return out("4B", "solid new >= 8 mm")
    # growing
    if d < 8:
        return out("4A", "solid growing < 8 mm")
    return out("4B", "solid growing >= 8 mm")


def _part_solid(d: float, s: float, status: str, out: _OutFn) -> LungRadsSuggestion:
    if status == "baseline":
        if d < 6:
            return out("2", "part-solid < 6 mm total mean diameter at baseline")
        if s < 6:
            return out("3", "part-solid >= 6 mm total with solid component < 6 mm at baseline")
        if s < 8:
            return out("4A", "part-solid with solid component 6 to < 8 mm at baseline")
        return out("4B", "part-solid with solid component >= 8 mm at baseline")
    if status == "new" and d < 6:
        return out("3", "part-solid new < 6 mm total mean diameter")
    if s < 4:
        return out("4A", f"part-solid {status} with solid component < 4 mm")
    return out("4B", f"part-solid {status} with solid component >= 4 mm")


def _non_solid(d: float, status: str, out: _OutFn) -> LungRadsSuggestion:
    if d < 30:
        return out("2", f"non-solid (ground glass) < 30 mm, {status}")
    if status in ("baseline", "new"):
        return out("3", f"non-solid (ground glass) >= 30 mm, {status}")
    return out("3", "non-solid >= 30 mm growing: not in the v2022 table unless slowly growing (2); suggested as if new")


def _by_size(k: str, d: float, s: float, out: _OutFn) -> LungRadsSuggestion:
    """The size category by the baseline rows."""
    if k == "solid":
        return _solid(d, "baseline", out)
    if k == "part-solid":
        return _part_solid(d, s, "baseline", out)
    return _non_solid(d, "baseline", out)


def _stable(
    k: str,
    d: float,
    s: float,
    status: str,
    interval_months: float | None,
    out: _OutFn,
    prior: tuple[float, float] | None = None,
) -> LungRadsSuggestion:
    """Stable or smaller: the size category of a baseline nodule, then v2022's stepped rules
    (unless the nodule crossed a size threshold since the prior: then its size category)."""
    if k == "ground-glass" and d >= 30:
        return out("2", f"non-solid >= 30 mm, {status} (stable or slowly growing)")
    base = _by_size(k, d, s, out)
    word = "stable" if status == "stable" else "decreased in size"
    if prior is not None:
        before = _by_size(k, prior[0], prior[1], out)
        if category_rank(base.category) > category_rank(before.category):
            return out(
                base.category,
                f"{base.rule}; crossed a size threshold since the prior ({prior[0]:.1f} mm, category "
                f"{before.category}) without growing > {GROWTH_MM} mm: reclassified by size (v2022)",
            )
    months = f"{interval_months:.1f}" if interval_months is not None else "unknown"
    if base.category == "3" and interval_months is not None and interval_months >= 6 - 0.5:
        return out("2", f"category 3 by size ({base.rule}), {word} at a {months}-month follow-up")
    if base.category == "4A" and interval_months is not None and interval_months >= 3 - 0.5:
        return out("3", f"category 4A by size ({base.rule}), {word} at a {months}-month follow-up")
    if base.category == "4B":
        return out("4B", f"{base.rule}; {word}: the v2022 table has no down-grade for 4B, the reader decides")
    return out(base.category, f"{base.rule}; {word} (interval {months} months)")


__all__ = [
    "CATEGORY_ORDER",
    "GROWTH_MM",
    "MANAGEMENT",
    "LungRadsSuggestion",
    "category_rank",
    "highest",
    "lung_rads",
    "mean_diameter_mm",
    "round_half_up",
]
