"""Growth between two studies: change class, volume doubling time, study interval (Qt-free).

Definitions
    * Change of a matched nodule, from Lung-RADS v2022: **growing** when its mean diameter (one
      decimal, :func:`.lungrads.mean_diameter_mm`) increased by more than 1.5 mm
      (:data:`.lungrads.GROWTH_MM`); **shrinking** when it decreased by more than 1.5 mm; else
      **stable**. Lung-RADS counts growth within 12 months; over a longer interval the change is
      still classed the same way and the interval is reported beside it (the reader judges slow
      growth).
    * Volume doubling time ``VDT = dt * ln 2 / ln(V2 / V1)`` in days, from the segmented volumes
      (mm3) and ``dt`` the days between the study dates. None (JSON null) when undefined: a date
      missing, ``dt <= 0``, a volume missing or not positive, or ``V2 == V1``. A negative VDT is a
      volume *halving* time (the nodule shrank); it is reported as it is.
"""

from __future__ import annotations

import math
import re
from datetime import date

from .lungrads import GROWTH_MM, round_half_up

CHANGES = ("new", "stable", "growing", "shrinking")
RESOLVED = "resolved"


def parse_study_date(value: str | None) -> date | None:
    """A DICOM ``YYYYMMDD`` (or ISO ``YYYY-MM-DD``) date, None when absent or invalid."""
    if not value:
        return None
    m = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", value.strip())
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def iso_date(value: str | None) -> str | None:
    d = parse_study_date(value)
    return d.isoformat() if d else None


def interval_days(prior_date: str | None, current_date: str | None) -> int | None:
    """Days from the prior study to the current one; None when a date is unknown."""
    a, b = parse_study_date(prior_date), parse_study_date(current_date)
    return None if a is None or b is None else (b - a).days


def classify_change(prior_mean_mm: float, current_mean_mm: float, threshold_mm: float = GROWTH_MM) -> str:
    """ "growing", "shrinking" or "stable" from two mean diameters (each rounded to one decimal)."""
    delta = round_half_up(current_mean_mm, 1) - round_half_up(prior_mean_mm, 1)
    if delta > threshold_mm + 1e-9:
        return "growing"
    if delta < -threshold_mm - 1e-9:
        return "shrinking"
    return "stable"


def volume_doubling_time_days(
    prior_volume_mm3: float | None, current_volume_mm3: float | None, days: float | None
) -> float | None:
    """``days * ln 2 / ln(V2 / V1)``; None when undefined (module docstring)."""
    if days is None or days <= 0 or prior_volume_mm3 is None or current_volume_mm3 is None:
        return None
    v1, v2 = float(prior_volume_mm3), float(current_volume_mm3)
    if not (v1 > 0 and v2 > 0) or not (math.isfinite(v1) and math.isfinite(v2)) or v1 == v2:
        return None
    return float(days) * math.log(2.0) / math.log(v2 / v1)


__all__ = [
    "CHANGES",
    "RESOLVED",
    "classify_change",
    "interval_days",
    "iso_date",
    "parse_study_date",
    "volume_doubling_time_days",
]
