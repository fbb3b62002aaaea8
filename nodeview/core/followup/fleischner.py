"""Fleischner Society 2017 recommendations for incidental pulmonary nodules (Qt-free).

Written from MacMahon H. et al., "Guidelines for Management of Incidental Pulmonary Nodules
Detected on CT Images: From the Fleischner Society 2017", Radiology 2017;284:228-243, Table 1.
A suggestion for a reader, with the row that fired; never a reading.

Sources checked (2026-12-04, issue 25): Table 1 as reproduced verbatim, row by row, in World J
Radiol 2017;9(7):304-311, Tables 1-4 (https://wjgnet.com/1949-8470/tables/v9/i7/304.htm, citing
MacMahon et al.), with its note "Dimensions are average of long and short axes, rounded to the
nearest millimeter" (https://learnem.org/radiology-measurements-follow-up/), and the Radiopaedia
and radiology.ae summaries. Every row text and size class below agrees with them; no discrepancy
was found. The Radiology article itself (doi:10.1148/radiol.2017161659) was not among the stored
pages: the check is against these reproductions of its table.

Scope (from the guideline): incidental nodules in adults aged 35 or more. It does **not** apply
to lung cancer screening (use Lung-RADS), to patients with a known primary cancer, or to
immunocompromised patients; :func:`fleischner` says so when told.

Sizes: the average of long and short axis, **rounded to the nearest millimetre** (the guideline's
note); "< 6 mm" is <= 5 after rounding, "6-8 mm" is 6, 7 or 8, "> 8 mm" is 9 or more.

Table 1 (risk: low or high, by smoking, exposure, age, emphysema, family history, ...)
    ==============================  =======  =====================================================
    nodule                          size     recommendation
    ==============================  =======  =====================================================
    solid single, low risk          < 6 mm   No routine follow-up.
    solid single, high risk         < 6 mm   Optional CT at 12 months.
    solid single, low risk          6-8 mm   CT at 6-12 months, then consider CT at 18-24 months.
    solid single, high risk         6-8 mm   CT at 6-12 months, then CT at 18-24 months.
    solid single, low/high risk     > 8 mm   Consider CT at 3 months, PET/CT, or tissue sampling.
    solid multiple, low risk        < 6 mm   No routine follow-up.
    solid multiple, high risk       < 6 mm   Optional CT at 12 months.
    solid multiple, low risk        6-8 mm   CT at 3-6 months, then consider CT at 18-24 months.
    solid multiple, high risk       6-8 mm   CT at 3-6 months, then at 18-24 months.
    solid multiple, low risk        > 8 mm   CT at 3-6 months, then consider CT at 18-24 months.
    solid multiple, high risk       > 8 mm   CT at 3-6 months, then at 18-24 months.
    ground glass single             < 6 mm   No routine follow-up.
    ground glass single             >= 6 mm  CT at 6-12 months to confirm persistence, then CT
                                             every 2 years until 5 years.
    part solid single               < 6 mm   No routine follow-up.
    part solid single               >= 6 mm  CT at 3-6 months to confirm persistence. If
                                             unchanged and solid component remains < 6 mm,
                                             annual CT should be performed for 5 years.
    subsolid multiple               < 6 mm   CT at 3-6 months. If stable, consider CT at 2 and
                                             4 years.
    subsolid multiple               >= 6 mm  CT at 3-6 months. Subsequent management based on
                                             the most suspicious nodule(s).
    ==============================  =======  =====================================================

Multiple nodules: the guideline manages them by the most suspicious nodule; here each nodule is
looked up in the "multiple" rows of its type and the most urgent row wins. Calcified nodules
(benign) are left out. Risk unknown: both the low- and the high-risk text are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .lungrads import normalise_kind, round_half_up

RISKS = ("low", "high")


@dataclass(frozen=True)
class FleischnerNodule:
    """One incidental nodule: kind ("solid", "part-solid", "ground-glass", "calcified"), mean
    diameter (mm) and an id to name the one that drives the recommendation."""

    kind: str
    mean_diameter_mm: float
    id: int = 0


@dataclass(frozen=True)
class FleischnerSuggestion:
    """The recommendation, the row that fired, and whether the guideline applies at all.

    Attributes:
        recommendation: the table's text ("" when it does not apply).
        rule: the row, in words.
        applies: False for screening, age < 35, known cancer or immunocompromise.
        driving_id: the nodule whose row was used (None when none).
        urgency: 0 (no routine follow-up) .. 4 (consider CT at 3 months, PET/CT or sampling), to
            compare rows.
    """

    recommendation: str
    rule: str
    applies: bool = True
    driving_id: int | None = None
    urgency: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "recommendation": self.recommendation,
            "rule": self.rule,
            "applies": self.applies,
            "driving_finding": self.driving_id,
        }


def size_class(mean_diameter_mm: float, subsolid: bool) -> str:
    """The table's size column after rounding to the nearest mm: "<6", "6-8", ">8" (solid) or
    "<6", ">=6" (subsolid)."""
    d = round_half_up(mean_diameter_mm, 0)
    if d < 6:
        return "<6"
    if subsolid:
        return ">=6"
    return "6-8" if d <= 8 else ">8"


_SOLID = {
    # (multiple, size, risk) -> (text, urgency)
    (False, "<6", "low"): ("No routine follow-up.", 0),
    (False, "<6", "high"): ("Optional CT at 12 months.", 1),
    (False, "6-8", "low"): ("CT at 6-12 months, then consider CT at 18-24 months.", 2),
    (False, "6-8", "high"): ("CT at 6-12 months, then CT at 18-24 months.", 2),
    (False, ">8", "low"): ("Consider CT at 3 months, PET/CT, or tissue sampling.", 4),
    (False, ">8", "high"): ("Consider CT at 3 months, PET/CT, or tissue sampling.", 4),
    (True, "<6", "low"): ("No routine follow-up.", 0),
    (True, "<6", "high"): ("Optional CT at 12 months.", 1),
    (True, "6-8", "low"): ("CT at 3-6 months, then consider CT at 18-24 months.", 3),
    (True, "6-8", "high"): ("CT at 3-6 months, then at 18-24 months.", 3),
    (True, ">8", "low"): ("CT at 3-6 months, then consider CT at 18-24 months.", 3),
    (True, ">8", "high"): ("CT at 3-6 months, then at 18-24 months.", 3),
}
_SUBSOLID = {
    # (multiple, kind, size) -> (text, urgency); risk does not enter these rows
    (False, "ground-glass", "<6"): ("No routine follow-up.", 0),
    (False, "ground-glass", ">=6"): (
        "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years.",
        2,
    ),
    (False, "part-solid", "<6"): ("No routine follow-up.", 0),
    (False, "part-solid", ">=6"): (
        "CT at 3-6 months to confirm persistence. If unchanged and solid component remains < 6 mm, "
        "annual CT should be performed for 5 years.",
        3,
    ),
    (True, "subsolid", "<6"): ("CT at 3-6 months. If stable, consider CT at 2 and 4 years.", 3),
    (True, "subsolid", ">=6"): ("CT at 3-6 months. Subsequent management based on the most suspicious nodule(s).", 3),
}


def _row(n: FleischnerNodule, kind: str, multiple: bool, risk: str | None) -> FleischnerSuggestion:
    count = "multiple" if multiple else "single"
    if kind == "solid":
        size = size_class(n.mean_diameter_mm, subsolid=False)
        risks = RISKS if risk is None else (risk,)
        rows = [_SOLID[(multiple, size, r)] for r in risks]
        if risk is None and rows[0][0] != rows[1][0]:
            text = f"Low risk: {rows[0][0]} High risk: {rows[1][0]}"
        else:
            text = rows[-1][0]
        urgency = max(u for _, u in rows)
        risk_word = "risk unknown" if risk is None else f"{risk} risk"
        rule = f"solid, {count}, {size.replace('<6', '< 6').replace('>8', '> 8')} mm, {risk_word}"
        return FleischnerSuggestion(text, rule, True, n.id, urgency)
    size = size_class(n.mean_diameter_mm, subsolid=True)
    key_kind = "subsolid" if multiple else kind
    text, urgency = _SUBSOLID[(multiple, key_kind, size)]
    name = {"ground-glass": "ground glass", "part-solid": "part solid", "subsolid": "subsolid"}[key_kind]
    rule = f"{name}, {count}, {size.replace('<6', '< 6').replace('>=6', '>= 6')} mm"
    return FleischnerSuggestion(text, rule, True, n.id, urgency)


def fleischner(
    nodules: Sequence[FleischnerNodule],
    risk: str | None = None,
    *,
    screening: bool = False,
    age_years: float | None = None,
    known_cancer: bool = False,
    immunocompromised: bool = False,
) -> FleischnerSuggestion:
    """The Fleischner 2017 recommendation for a patient's incidental nodules.

    Args:
        nodules: every nodule of the exam (calcified ones are ignored: benign).
        risk: "low", "high" or None (unknown: both texts where they differ).
        screening: a lung cancer screening exam (the guideline does not apply: use Lung-RADS).
        age_years, known_cancer, immunocompromised: exclusions of the guideline.
    """
    if risk is not None and risk not in RISKS:
        raise ValueError(f"risk must be one of {RISKS} or None, got {risk!r}")
    reasons = []
    if screening:
        reasons.append("a lung cancer screening exam (use Lung-RADS)")
    if age_years is not None and age_years < 35:
        reasons.append("a patient younger than 35")
    if known_cancer:
        reasons.append("a patient with a known primary cancer")
    if immunocompromised:
        reasons.append("an immunocompromised patient")
    if reasons:
        return FleischnerSuggestion("", "Fleischner 2017 does not apply to " + " and ".join(reasons), applies=False)
    kinds = [(n, normalise_kind(n.kind)) for n in nodules]
    kinds = [(n, k) for n, k in kinds if k != "calcified"]
    if not kinds:
        return FleischnerSuggestion("No routine follow-up.", "no non-calcified nodule", True, None, 0)
    multiple = len(kinds) > 1
    rows = [_row(n, k, multiple, risk) for n, k in kinds]
    # the most urgent row; among equals the larger nodule (the more suspicious)
    sizes = {n.id: n.mean_diameter_mm for n, _ in kinds}
    return max(rows, key=lambda r: (r.urgency, sizes.get(r.driving_id or 0, 0.0)))


__all__ = ["FleischnerNodule", "FleischnerSuggestion", "fleischner", "size_class"]
