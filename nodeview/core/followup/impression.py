"""The impression of a report: overall Lung-RADS suggestion, its driving nodule, management and the
comparison line; with the Fleischner 2017 recommendation for when the exam is not screening (Qt-free).

The exam's Lung-RADS category is that of its most suspicious nodule (:func:`.lungrads.highest`);
among nodules of that category the largest drives it. With no reported nodule the suggestion is
category 1 ("no lung nodules" at the detector's operating point). Findings without a measurement
(no type) get no category and are named in the rule when they are all there is. Everything here is
a suggestion for the reader, who may override it; category 4X is never suggested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..detect.findings import Finding
from .compare import Comparison, suggestion_for
from .fleischner import FleischnerNodule, FleischnerSuggestion, fleischner
from .lungrads import MANAGEMENT, category_rank

NO_PRIOR_LINE = "No prior CT for comparison (baseline)."


@dataclass(frozen=True)
class Impression:
    """Attributes:
    category: suggested Lung-RADS v2022 category of the exam (None: nothing measurable).
    driving_finding: id of the nodule that sets it (None when there is none).
    rule: the row that fired for that nodule.
    management: v2022 management of the category.
    comparison: "Compared with CT of YYYY-MM-DD." or :data:`NO_PRIOR_LINE`.
    fleischner: the Fleischner 2017 suggestion (if the exam is an incidental finding, not screening).
    """

    category: str | None
    driving_finding: int | None
    rule: str
    management: str
    comparison: str
    fleischner: FleischnerSuggestion

    def to_json(self) -> dict[str, Any]:
        return {
            "lung_rads_v2022": self.category,
            "driving_finding": self.driving_finding,
            "rule": self.rule,
            "management": self.management,
            "comparison": self.comparison,
            "fleischner_2017": self.fleischner.to_json(),
            "note": "Suggestions for the reader, who may override them; category 4X is never suggested.",
        }

    def lines(self) -> list[str]:
        """The impression as text lines (report and GUI)."""
        if self.category is None:
            head = "Lung-RADS v2022 (suggested): none - " + self.rule
        else:
            driver = f", driven by nodule #{self.driving_finding}" if self.driving_finding is not None else ""
            head = f"Lung-RADS v2022 (suggested): {self.category}{driver} ({self.rule})"
        out = [head]
        if self.management:
            out.append(f"Management: {self.management}")
        out.append(self.comparison)
        if self.fleischner.applies:
            who = f" (nodule #{self.fleischner.driving_id})" if self.fleischner.driving_id is not None else ""
            out.append(
                f"If incidental (not screening), Fleischner 2017{who}: {self.fleischner.recommendation} "
                f"[{self.fleischner.rule}]"
            )
        return out


def build_impression(findings: Sequence[Finding], comparison: Comparison | None = None) -> Impression:
    """The impression for the reported (not rejected) findings of the current study."""
    line = comparison.comparison_line() if comparison is not None else NO_PRIOR_LINE
    flei = fleischner(
        [FleischnerNodule(f.type, f.diameter_mm, f.id) for f in findings if f.measured and f.type != "unmeasured"],
        None,
    )
    scored = [(f, s) for f in findings if (s := suggestion_for(f, comparison)) is not None]
    if not scored:
        if findings:
            rule = "the findings could not be measured; the reader categorises them"
            return Impression(None, None, rule, "", line, flei)
        rule = "no lung nodules found by the detector at its operating point"
        return Impression("1", None, rule, MANAGEMENT["1"], line, flei)
    f, s = max(scored, key=lambda fs: (category_rank(fs[1].category), fs[0].diameter_mm))
    return Impression(s.category, f.id, s.rule, s.management, line, flei)


__all__ = ["NO_PRIOR_LINE", "Impression", "build_impression"]
