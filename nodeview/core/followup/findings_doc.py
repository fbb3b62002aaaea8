"""The ``nodeview.findings/2`` JSON document, its migration from ``/1``, and reading either (Qt-free).

``nodeview.findings/2`` is ``nodeview.findings/1`` plus the follow-up reading. Every ``/1`` key
keeps its name and meaning (``lung_rads`` stays the baseline size-and-type hint), so a ``/1``
reader that ignores unknown keys reads ``/2``. Added:

==============================  ==================================================================
key                             meaning
==============================  ==================================================================
``study.study_date``            ISO date of the study (YYYY-MM-DD) or null
``findings[].solid_diameter_mm``  part-solid: mean diameter of the solid component; else null
``findings[].lung_rads_v2022``  ``{category, rule, management, mean_diameter_mm,
                                solid_diameter_mm}``: the suggestion with the comparison taken
                                into account (baseline rules without one); null when unmeasured
``findings[].change``           "new", "stable", "growing", "shrinking"; null without a comparison
``findings[].prior``            the matched prior finding ``{id, center_xyz_mm, diameter_mm,
                                volume_mm3, type, study_date, distance_mm, below_threshold}``
                                (centre in the *prior's* patient coordinates); null when new or
                                without a comparison
``findings[].vdt_days``         volume doubling time in days (negative: halving time); null when
                                undefined (new, no dates, equal volumes)
``comparison``                  null, or ``{prior_study_date, current_study_date, interval_days,
                                prior_series_uid, source ("images" | "findings json" |
                                "dicom sr"), registration {method, matrix_current_to_prior,
                                lung_surface_distance_mm {before, after}, nudge_mm, seconds},
                                line, caveats}``
``resolved``                    prior findings with no current match (``id, center_xyz_mm,
                                diameter_mm, volume_mm3, type``, prior coordinates); [] without
                                a comparison
``impression``                  ``{lung_rads_v2022, driving_finding, rule, management,
                                comparison, fleischner_2017, note}``
==============================  ==================================================================

Migration from ``/1`` (:func:`upgrade`): set ``schema`` to ``/2``; ``study.study_date`` null;
for each finding ``change``, ``prior``, ``vdt_days`` and ``solid_diameter_mm`` null and
``lung_rads_v2022`` from its type and diameter by the baseline rules (null when unmeasured);
``comparison`` null, ``resolved`` []; ``impression`` from those findings with the "no prior"
line. :func:`read_findings` accepts both and always returns the ``/2`` form.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..detect.detector import DetectionResult, findings_json
from ..detect.findings import Finding
from ..errors import InputError
from ..volume import Volume
from .compare import Comparison, solid_diameter_mm, suggestion_for
from .growth import iso_date
from .impression import build_impression

SCHEMA = "nodeview.findings/2"
SCHEMA_V1 = "nodeview.findings/1"
SCHEMAS = (SCHEMA_V1, SCHEMA)


def finding_entry(f: Finding, comparison: Comparison | None) -> dict[str, Any]:
    """One finding in ``/2`` form."""
    item = f.to_json()
    item["solid_diameter_mm"] = round(solid_diameter_mm(f), 2) if f.type == "part-solid" else None
    suggestion = suggestion_for(f, comparison)
    item["lung_rads_v2022"] = suggestion.to_json() if suggestion is not None else None
    change = comparison.changes.get(f.id) if comparison is not None else None
    item["change"] = change.change if change is not None else None
    item["prior"] = change.prior_json(comparison.prior_date) if change is not None and comparison else None
    vdt = change.vdt_days if change is not None else None
    item["vdt_days"] = round(vdt, 1) if vdt is not None else None
    return item


def resolved_entry(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "center_xyz_mm": [round(v, 2) for v in f.center_xyz_mm],
        "diameter_mm": round(f.diameter_mm, 2),
        "volume_mm3": round(f.volume_mm3, 1),
        "type": f.type,
    }


def findings_document(
    result: DetectionResult,
    volume: Volume,
    threshold: float,
    anonymize: bool,
    timings: Mapping[str, float],
    comparison: Comparison | None = None,
    excluded_from_impression: Sequence[int] = (),
) -> dict[str, Any]:
    """The ``/2`` document of a detection (findings with score >= ``threshold``), with the
    comparison when there is one. ``excluded_from_impression``: ids the reader rejected."""
    doc = findings_json(result, volume, threshold, anonymize, dict(timings))
    doc["schema"] = SCHEMA
    doc["study"]["study_date"] = iso_date(volume.patient.study_date)
    shown = [f for f in result.findings if f.score >= threshold]
    doc["findings"] = [finding_entry(f, comparison) for f in shown]
    doc["comparison"] = comparison.to_json() if comparison is not None else None
    doc["resolved"] = [resolved_entry(f) for f in comparison.resolved] if comparison is not None else []
    excluded = set(excluded_from_impression)
    doc["impression"] = build_impression([f for f in shown if f.id not in excluded], comparison).to_json()
    if comparison is not None:
        doc["caveats"] = list(doc.get("caveats", [])) + list(comparison.caveats)
    return doc


def finding_from_json(item: Mapping[str, Any]) -> Finding:
    """A :class:`Finding` from a ``/1`` or ``/2`` finding entry (what the JSON keeps)."""
    try:
        centre = tuple(float(v) for v in item["center_xyz_mm"])
        d = float(item["diameter_mm"])
        box = item.get("bbox_xyz_mm") or [[c - d / 2 for c in centre], [c + d / 2 for c in centre]]
        lo, hi = (tuple(float(v) for v in corner) for corner in box)
        kind = str(item.get("type", "unmeasured"))
        volume = float(item.get("volume_mm3", math.pi / 6 * d**3))
        solid_d = item.get("solid_diameter_mm")
        solid_fraction = (float(solid_d) / d) ** 3 if solid_d is not None and d > 0 else 0.0
        if len(centre) != 3 or len(lo) != 3 or len(hi) != 3:
            raise ValueError("positions must have 3 coordinates")
        return Finding(
            id=int(item["id"]),
            center_xyz_mm=centre,
            diameter_mm=d,
            bbox_min_xyz_mm=lo,
            bbox_max_xyz_mm=hi,
            score=float(item.get("score", 1.0)),
            malignancy=float(item.get("malignancy", 0.0)),
            type=kind,
            volume_mm3=volume,
            long_axis_mm=float(item.get("long_axis_mm", d)),
            short_axis_mm=float(item.get("short_axis_mm", d)),
            lung_rads=str(item.get("lung_rads", "")),
            side=str(item.get("side", "")),
            zone=str(item.get("zone", "")),
            model_diameter_mm=d,
            solid_fraction=solid_fraction,
            measured=item.get("measurement", "segmentation") == "segmentation",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"a finding in the findings file is malformed ({type(exc).__name__}: {exc})") from exc


def upgrade(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/1`` (or ``/2``) document in ``/2`` form (module docstring); ``/2`` comes back unchanged."""
    schema = doc.get("schema")
    if schema == SCHEMA:
        return dict(doc)
    if schema != SCHEMA_V1:
        raise InputError(f"not a NodeView findings file (schema {schema!r}; expected one of {', '.join(SCHEMAS)})")
    out = json.loads(json.dumps(doc))  # a deep copy
    out["schema"] = SCHEMA
    out.setdefault("study", {})["study_date"] = None
    findings = [finding_from_json(item) for item in out.get("findings", [])]
    out["findings"] = [
        {**item, **{k: v for k, v in finding_entry(f, None).items() if k not in item}}
        for item, f in zip(out.get("findings", []), findings, strict=True)
    ]
    out["comparison"] = None
    out["resolved"] = []
    out["impression"] = build_impression(findings, None).to_json()
    return dict(out)


@dataclass(frozen=True)
class FindingsFile:
    """A findings file read back: the reported findings, the rest (below the threshold), the
    study date and series, and the document in ``/2`` form. ``source`` says what it was read
    from ("findings json", or "dicom sr": :mod:`nodeview.core.export.prior_sr`), and
    ``frame_of_reference_uid`` and ``study_uid`` the findings' frame of reference and study when the
    file names them (an SR does)."""

    findings: tuple[Finding, ...]
    below_threshold: tuple[Finding, ...]
    study_date: str | None  # YYYYMMDD
    series_uid: str
    threshold: float
    document: dict[str, Any]
    source: str = "findings json"
    frame_of_reference_uid: str = ""
    study_uid: str = ""


def read_findings(path: str | os.PathLike[str]) -> FindingsFile:
    """Read a ``nodeview.findings/1`` or ``/2`` file (e.g. the prior's). Bad input: :class:`InputError`."""
    name = os.path.basename(os.fspath(path))
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except FileNotFoundError as exc:
        raise InputError(f"findings file {name} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"findings file {name} is not readable JSON ({type(exc).__name__})") from exc
    if not isinstance(raw, dict):
        raise InputError(f"findings file {name} is not a NodeView findings document")
    doc = upgrade(raw)
    threshold = float(doc.get("threshold", 0.0) or 0.0)
    items = [finding_from_json(item) for item in doc.get("findings", [])]
    date = doc.get("study", {}).get("study_date")
    return FindingsFile(
        tuple(f for f in items if f.score >= threshold),
        tuple(f for f in items if f.score < threshold),
        date.replace("-", "") if isinstance(date, str) else None,
        str(doc.get("study", {}).get("series_uid", "")),
        threshold,
        doc,
    )


__all__ = [
    "SCHEMA",
    "SCHEMAS",
    "SCHEMA_V1",
    "FindingsFile",
    "finding_entry",
    "finding_from_json",
    "findings_document",
    "read_findings",
    "resolved_entry",
    "upgrade",
]
