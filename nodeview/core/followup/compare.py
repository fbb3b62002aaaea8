"""Compare a current study's findings with a prior's: change, prior size, VDT, Lung-RADS (Qt-free).

:func:`compare_findings` takes the findings of both studies (already detected, or the prior's
read from its findings JSON), the registration between the studies and their dates, and says
for each current finding whether it is new, stable, growing or shrinking
(:mod:`.growth`), which prior finding it was, its volume doubling time, and its Lung-RADS v2022
suggestion given that change (:mod:`.lungrads`); prior findings left unmatched are *resolved*.

Prior candidates below the prior's operating threshold (``prior_candidates``) are a second
chance for a current finding the reported prior findings do not explain: a nodule the detector
scored just under the threshold last time is not "new". Such a match is marked
``prior_below_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..detect.findings import Finding
from ..progress import ProgressFn, StopFn, never_stop, no_progress
from ..volume import Volume
from .growth import classify_change, interval_days, iso_date, volume_doubling_time_days
from .lungrads import LungRadsSuggestion, lung_rads, round_half_up
from .matching import Pair, match_findings
from .registration import Registration, register

DAYS_PER_MONTH = 365.25 / 12
#: mean lung-surface distance (mm) after registration above which the comparison says to check it
SURFACE_WARN_MM = 4.0


@dataclass(frozen=True)
class FindingChange:
    """What a current finding was in the prior study.

    Attributes:
        finding_id: the current finding.
        change: "new", "stable", "growing" or "shrinking".
        prior: the matched prior finding (None when new).
        distance_mm: distance between the current centre mapped into the prior and the prior
            centre (registration residual plus any real shift).
        diameter_change_mm: current minus prior mean diameter, one decimal each.
        vdt_days: volume doubling time (None when undefined, :mod:`.growth`).
        prior_below_threshold: the prior finding scored under the prior's operating threshold.
    """

    finding_id: int
    change: str
    prior: Finding | None = None
    distance_mm: float | None = None
    diameter_change_mm: float | None = None
    vdt_days: float | None = None
    prior_below_threshold: bool = False

    def prior_json(self, prior_date: str | None) -> dict[str, Any] | None:
        if self.prior is None:
            return None
        p = self.prior
        return {
            "id": p.id,
            "center_xyz_mm": [round(v, 2) for v in p.center_xyz_mm],
            "diameter_mm": round(p.diameter_mm, 2),
            "volume_mm3": round(p.volume_mm3, 1),
            "type": p.type,
            "study_date": iso_date(prior_date),
            "distance_mm": None if self.distance_mm is None else round(self.distance_mm, 2),
            "below_threshold": self.prior_below_threshold,
        }


@dataclass(frozen=True)
class Comparison:
    """The result of comparing two studies (immutable; crosses threads as it is)."""

    registration: Registration
    current_date: str | None
    prior_date: str | None
    changes: dict[int, FindingChange]
    resolved: tuple[Finding, ...]
    prior_series_uid: str = ""
    source: str = "images"  # "images": the prior study was read; "findings json"/"dicom sr": only its findings
    caveats: tuple[str, ...] = field(default=())
    #: the prior findings' frame of reference and study when known without its images (a prior SR names them)
    prior_frame_of_reference_uid: str = ""
    prior_study_uid: str = ""

    @property
    def interval_days(self) -> int | None:
        return interval_days(self.prior_date, self.current_date)

    @property
    def interval_months(self) -> float | None:
        days = self.interval_days
        return None if days is None else days / DAYS_PER_MONTH

    def comparison_line(self) -> str:
        prior = iso_date(self.prior_date)
        return f"Compared with CT of {prior}." if prior else "Compared with a prior CT of unknown date."

    def to_json(self) -> dict[str, Any]:
        return {
            "prior_study_date": iso_date(self.prior_date),
            "current_study_date": iso_date(self.current_date),
            "interval_days": self.interval_days,
            "prior_series_uid": self.prior_series_uid,
            "source": self.source,
            "registration": self.registration.to_json(),
            "line": self.comparison_line(),
            "caveats": list(self.caveats),
        }


def solid_diameter_mm(f: Finding) -> float:
    """Mean diameter of a part-solid finding's solid component (the measure :mod:`..findings` uses)."""
    return f.diameter_mm * f.solid_fraction ** (1.0 / 3.0) if f.type == "part-solid" else 0.0


def suggestion_for(f: Finding, comparison: Comparison | None) -> LungRadsSuggestion | None:
    """The Lung-RADS v2022 suggestion for a finding, given its change when there is a comparison
    (None for an unmeasured finding: no type, no category)."""
    if f.type not in ("solid", "part-solid", "ground-glass", "calcified"):
        return None
    status, months = "baseline", None
    prior_d: float | None = None
    prior_s = 0.0
    change = comparison.changes.get(f.id) if comparison is not None else None
    if comparison is not None and change is not None:  # a finding the comparison did not cover: baseline rules
        status = change.change
        months = comparison.interval_months
        if change.prior is not None and change.prior.type == f.type:  # its size last time (size thresholds)
            prior_d, prior_s = change.prior.diameter_mm, solid_diameter_mm(change.prior)
    return lung_rads(
        f.type, f.diameter_mm, solid_diameter_mm(f), status, interval_months=months,
        prior_mean_diameter=prior_d, prior_solid_diameter=prior_s,
    )  # fmt: skip


def _change(current: Finding, prior: Finding, pair: Pair, days: int | None, below: bool) -> FindingChange:
    vdt = None
    if current.measured and prior.measured:
        vdt = volume_doubling_time_days(prior.volume_mm3, current.volume_mm3, days)
    return FindingChange(
        current.id,
        classify_change(prior.diameter_mm, current.diameter_mm),
        prior,
        pair.distance_mm,
        round(round_half_up(current.diameter_mm, 1) - round_half_up(prior.diameter_mm, 1), 1),
        vdt,
        below,
    )


def compare_findings(
    current: Sequence[Finding],
    prior: Sequence[Finding],
    registration: Registration,
    current_date: str | None,
    prior_date: str | None,
    *,
    prior_candidates: Sequence[Finding] = (),
    prior_series_uid: str = "",
    source: str = "images",
    caveats: Sequence[str] = (),
    prior_frame_of_reference_uid: str = "",
    prior_study_uid: str = "",
) -> Comparison:
    """Match ``current`` to ``prior`` (both the reported findings) through ``registration``."""
    days = interval_days(prior_date, current_date)
    notes = list(caveats)
    if days is None:
        notes.append("A study date is missing: no volume doubling times.")
    elif days <= 0:
        notes.append("The prior study is not older than the current one: no volume doubling times.")
    by_id = {f.id: f for f in prior}
    changes: dict[int, FindingChange] = {}
    for pair in match_findings(current, prior, registration):
        cur = next(f for f in current if f.id == pair.current_id)
        changes[cur.id] = _change(cur, by_id[pair.prior_id], pair, days, False)
    reported_ids = {f.id for f in prior}
    extra = [f for f in prior_candidates if f.id not in reported_ids]
    unmatched = [f for f in current if f.id not in changes]
    if extra and unmatched:
        extra_by_id = {f.id: f for f in extra}
        for pair in match_findings(unmatched, extra, registration):
            cur = next(f for f in unmatched if f.id == pair.current_id)
            changes[cur.id] = _change(cur, extra_by_id[pair.prior_id], pair, days, True)
    for f in current:
        if f.id not in changes:
            changes[f.id] = FindingChange(f.id, "new")
    matched_prior = {c.prior.id for c in changes.values() if c.prior is not None and not c.prior_below_threshold}
    resolved = tuple(f for f in prior if f.id not in matched_prior)
    return Comparison(
        registration,
        current_date,
        prior_date,
        changes,
        resolved,
        prior_series_uid=prior_series_uid,
        source=source,
        caveats=tuple(notes),
        prior_frame_of_reference_uid=prior_frame_of_reference_uid,
        prior_study_uid=prior_study_uid,
    )


def compare_studies(
    current: Volume,
    prior: Volume,
    current_findings: Sequence[Finding],
    prior_findings: Sequence[Finding],
    *,
    prior_candidates: Sequence[Finding] = (),
    prior_date: str | None = None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> Comparison:
    """Register ``prior`` to ``current`` (:func:`.registration.register`) and compare the findings.
    ``prior_date`` replaces the prior's study date (e.g. an anonymized prior without one)."""
    reg = register(current, prior, progress, should_stop)
    caveats = []
    if reg.surface_after_mm is not None and reg.surface_after_mm > SURFACE_WARN_MM:
        caveats.append(
            f"The lungs line up to {reg.surface_after_mm:.1f} mm on average after registration: check the "
            "matches on the images (a nudge can correct a shift)."
        )
    return compare_findings(
        current_findings,
        prior_findings,
        reg,
        current.patient.study_date,
        prior_date or prior.patient.study_date,
        prior_candidates=prior_candidates,
        prior_series_uid=prior.series_uid,
        source="images",
        caveats=caveats,
    )


__all__ = ["Comparison", "FindingChange", "compare_findings", "compare_studies", "solid_diameter_mm", "suggestion_for"]
