"""The comparison with a prior study and the impression, as TID 1500 SR content (Qt-free).

:func:`~.dicom_export.export_dicom` calls these when a prior was compared (issue 25); the codes are
in :mod:`.codes` (its docstring has the table).

Per current finding (in its planar group, TID 1410)
    the change as a qualitative evaluation (DCM 111049 "Qualitative Difference": SCT new finding /
    no significant change / increase in size / decrease in size), the Lung-RADS v2022 suggestion
    given the change, and - when it was matched - measurements of the prior finding (mean diameter
    mm, volume mm3), the diameter change (mm), the volume doubling time (UCUM ``d``, only when
    defined: :mod:`nodeview.core.followup.growth`) and the prior finding's tracking identifier
    (TEXT "Nodule N", as the prior's own SR names it).
Per prior-only finding
    a planar measurement group (TID 1410) "Prior nodule N (resolved)" with the change *resolved*
    (99NODEVIEW NV0601), the prior's diameter and volume, the prior finding's tracking identifier
    and its location: an SCOORD3D POINT at the prior finding's centre in the *prior's* frame of
    reference (the prior's images are the SR's other evidence when they were at hand), with a TID
    1502 time point context naming the prior study, as the current findings' groups place their
    centres in the current frame. When the prior's frame of reference is not known (only its
    findings JSON was given) the point is the prior centre mapped into the *current* frame through
    the registration (identity: scanner coordinates, as the matching assumed), where a reader looks
    for it on the current images; its frame of reference UID says which. (SRs written before this
    had a TID 1501 group without a location; :mod:`.readback` reads both.)
At the root of the report, after the imaging measurements
    a container LN 18834-2 "Radiology Comparison study": the prior's study date (DATE), its Study
    and Series Instance UIDs (UIDREF, when known), the interval (d) and the comparison line; the
    prior images themselves are referenced in the SR's PertinentOtherEvidenceSequence when they are
    at hand. A container DCM 121072 "Impressions": the exam's Lung-RADS v2022 suggestion (CODE),
    the nodule that sets it (TEXT tracking identifier), the rule (DCM 121073 Impression), the
    management (DCM 121075 Recommendation) and the Fleischner 2017 suggestion when it applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import (
    ContainerContentItem,
    DateContentItem,
    NumContentItem,
    RelationshipTypeValues,
    TextContentItem,
    UIDRefContentItem,
)
from pydicom.sequence import Sequence as DicomSequence

from ..detect.findings import Finding
from ..followup.compare import Comparison, FindingChange, suggestion_for
from ..followup.growth import iso_date, parse_study_date
from ..followup.impression import Impression
from . import codes

CONTAINS = RelationshipTypeValues.CONTAINS


def _num(name: Any, value: float, unit: Any, algo: hd.sr.AlgorithmIdentification) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, algorithm_id=algo)


def _text(name: Any, value: str) -> TextContentItem:
    return TextContentItem(name=name, value=value[:1024], relationship_type=CONTAINS)


def finding_items(
    f: Finding,
    change: FindingChange | None,
    comparison: Comparison,
    algo: hd.sr.AlgorithmIdentification,
) -> tuple[list[hd.sr.Measurement], list[hd.sr.QualitativeEvaluation], list[TextContentItem]]:
    """What a current finding's planar group adds: (measurements, evaluations, text items)."""
    measurements: list[hd.sr.Measurement] = []
    evaluations: list[hd.sr.QualitativeEvaluation] = []
    texts: list[TextContentItem] = []
    if change is None:  # not covered by the comparison (e.g. added after it): no claim
        return measurements, evaluations, texts
    evaluations.append(hd.sr.QualitativeEvaluation(codes.QUALITATIVE_DIFFERENCE, codes.CHANGES[change.change]))
    suggestion = suggestion_for(f, comparison)
    if suggestion is not None and suggestion.category in codes.LUNG_RADS_VALUES:
        evaluations.append(
            hd.sr.QualitativeEvaluation(codes.LUNG_RADS_FOLLOWUP, codes.LUNG_RADS_VALUES[suggestion.category])
        )
    if change.prior is not None:
        measurements.append(_num(codes.PRIOR_DIAMETER, change.prior.diameter_mm, codes.MM, algo))
        measurements.append(_num(codes.PRIOR_VOLUME, change.prior.volume_mm3, codes.MM3, algo))
        if change.diameter_change_mm is not None:
            measurements.append(_num(codes.DIAMETER_CHANGE, change.diameter_change_mm, codes.MM, algo))
        if change.vdt_days is not None:
            measurements.append(_num(codes.VDT, change.vdt_days, codes.DAYS, algo))
        texts.append(_text(codes.PRIOR_TRACKING_ID, f"Nodule {change.prior.id}"))
    return measurements, evaluations, texts


def add_items(group: Any, items: Sequence[Any]) -> None:
    """Append content items to a measurement group's container (highdicom has no slot for TEXT)."""
    if items:
        group[0].ContentSequence.extend(items)


def resolved_groups(
    comparison: Comparison,
    algo: hd.sr.AlgorithmIdentification,
    current_for_uid: str,
    prior_for_uid: str = "",
) -> list[Any]:
    """One TID 1410 group per prior-only finding, located in the prior's frame of reference
    ``prior_for_uid`` or, when that is unknown, mapped into the current one (module docstring)."""
    groups: list[Any] = []
    prior_day = iso_date(comparison.prior_date)
    for p in comparison.resolved:
        if prior_for_uid:
            centre, frame = np.asarray(p.center_xyz_mm, dtype=np.float64), prior_for_uid
            when = hd.sr.TimePointContext(f"prior CT {prior_day}" if prior_day else "prior CT")
        else:
            centre, frame, when = comparison.registration.to_current(p.center_xyz_mm), current_for_uid, None
        point = hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POINT,
            graphic_data=np.asarray([centre], dtype=np.float64),
            frame_of_reference_uid=frame,
        )
        tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"Prior nodule {p.id} (resolved)")
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_region=point,
            time_point_context=when,
            finding_type=codes.NODULE,
            finding_category=codes.ABNORMAL_STRUCTURE,
            algorithm_id=algo,
            finding_sites=[hd.sr.FindingSite(anatomic_location=codes.LUNG)],
            measurements=[
                _num(codes.PRIOR_DIAMETER, p.diameter_mm, codes.MM, algo),
                _num(codes.PRIOR_VOLUME, p.volume_mm3, codes.MM3, algo),
            ],
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(codes.QUALITATIVE_DIFFERENCE, codes.CHANGES["resolved"]),
            ],
        )
        add_items(group, [_text(codes.PRIOR_TRACKING_ID, f"Nodule {p.id}")])
        groups.append(group)
    return groups


def comparison_container(comparison: Comparison, prior_study_uid: str = "") -> ContainerContentItem:
    """LN 18834-2 "Radiology Comparison study" with the prior's date, UIDs, interval and line."""
    items: list[Any] = []
    day = parse_study_date(comparison.prior_date)
    if day is not None:
        items.append(DateContentItem(name=codes.STUDY_DATE, value=day, relationship_type=CONTAINS))
    if prior_study_uid:
        items.append(UIDRefContentItem(name=codes.STUDY_UID, value=prior_study_uid, relationship_type=CONTAINS))
    if comparison.prior_series_uid:
        items.append(
            UIDRefContentItem(name=codes.SERIES_UID, value=comparison.prior_series_uid, relationship_type=CONTAINS)
        )
    days = comparison.interval_days
    if days is not None:
        items.append(
            NumContentItem(name=codes.INTERVAL, value=float(days), unit=codes.DAYS, relationship_type=CONTAINS)
        )
    items.append(_text(codes.COMPARISON_LINE, comparison.comparison_line()))
    container = ContainerContentItem(name=codes.COMPARISON, relationship_type=CONTAINS)
    container.ContentSequence = DicomSequence(items)
    return container


def impression_container(impression: Impression, tracking_ids: Mapping[int, str]) -> ContainerContentItem:
    """DCM 121072 "Impressions": the exam's suggestion, its driving nodule, rule and management."""
    items: list[Any] = []
    if impression.category in codes.LUNG_RADS_VALUES:
        items.append(
            hd.sr.CodeContentItem(
                name=codes.EXAM_LUNG_RADS,
                value=codes.LUNG_RADS_VALUES[impression.category],
                relationship_type=CONTAINS,
            )
        )
    if impression.driving_finding is not None:
        driver = tracking_ids.get(impression.driving_finding, f"Nodule {impression.driving_finding}")
        items.append(_text(codes.DRIVING_FINDING, driver))
    items.append(_text(codes.IMPRESSION, impression.rule or "-"))
    if impression.management:
        items.append(_text(codes.RECOMMENDATION, impression.management))
    if impression.fleischner.applies and impression.fleischner.recommendation:
        items.append(_text(codes.FLEISCHNER, f"{impression.fleischner.recommendation} [{impression.fleischner.rule}]"))
    container = ContainerContentItem(name=codes.IMPRESSIONS, relationship_type=CONTAINS)
    container.ContentSequence = DicomSequence(items)
    return container


__all__ = ["add_items", "comparison_container", "finding_items", "impression_container", "resolved_groups"]
