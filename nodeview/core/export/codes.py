"""The coded concepts NodeView's SR and SEG use (Qt-free).

Standard codes (SNOMED CT ``SCT``, DICOM ``DCM``, LOINC ``LN``, UCUM units) where one exists; the
rest are in NodeView's private coding scheme :data:`SCHEME` (``99NODEVIEW``), which every SR names
in its CodingSchemeIdentificationSequence. Reading back (:mod:`.readback`) uses the same table.

The comparison with a prior study (issue 25, :mod:`.followup_sr`)
    ========================================  ===============================================================
    what                                      code
    ========================================  ===============================================================
    change of a finding (concept name)        DCM 111049 "Qualitative Difference" (as in the Chest CAD SR)
    new / stable / growing / shrinking        SCT 129721008 "New finding" (CID 6002), SCT 129723006 "No
                                              significant changes in the finding", SCT 15454001 "Increase in
                                              size", SCT 19776001 "Decrease in size" (CID 6134, Chest
                                              Qualitative Temporal Difference Type)
    resolved (prior-only finding)             99NODEVIEW NV0601 (no standard code for "no longer seen")
    prior diameter / prior volume / VDT       99NODEVIEW NV0010 / NV0011 / NV0012 (UCUM mm, mm3, d)
    diameter change, prior tracking id        99NODEVIEW NV0013 (mm), NV0014 (TEXT "Nodule N" of the prior)
    malignancy score of a finding             99NODEVIEW NV0016 (before 2026-12-04: DCM 111047 "Probability of
                                              cancer", still read back)
    Lung-RADS with the comparison             99NODEVIEW NV0015 (values: :data:`LUNG_RADS_VALUES`)
    comparison container                      LN 18834-2 "Radiology Comparison study" holding DCM 111060
                                              "Study Date" (DATE), DCM 110180 "Study Instance UID" and DCM
                                              112002 "Series Instance UID" (UIDREF, when known), NV0021 the
                                              interval (d) and NV0022 the comparison line (TEXT)
    impression container                      DCM 121072 "Impressions" holding NV0030 the exam's Lung-RADS
                                              category (CODE), NV0031 the driving nodule (TEXT tracking id),
                                              DCM 121073 "Impression" (TEXT, the rule), DCM 121075
                                              "Recommendation" (TEXT, the management), NV0033 Fleischner 2017
    ========================================  ===============================================================
"""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

SCHEME = "99NODEVIEW"
SCHEME_NAME = "NodeView private codes"


def _nv(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, SCHEME, meaning)


PROCEDURE = CodedConcept("25045-6", "LN", "CT unspecified body region")
NODULE = codes.SCT.Nodule
LUNG = codes.SCT.Lung
ABNORMAL_STRUCTURE = codes.SCT.MorphologicallyAbnormalStructure
ALGORITHM_FAMILY = codes.DCM.ArtificialIntelligence
DEVICE = codes.DCM.Device

LONG_AXIS = codes.SCT.LongAxis
SHORT_AXIS = codes.SCT.ShortAxis
DIAMETER = codes.SCT.Diameter
VOLUME = codes.SCT.Volume
#: the model's malignancy score. What it estimates depends on the model (the bundled one: the LIDC readers'
#: rating >= 4 rather than <= 2, suspicion on CT, not pathology; its card), so not DCM "Probability of cancer"
MALIGNANCY = _nv("NV0016", "Malignancy suspicion score (model estimate)")
#: what NodeView wrote for the malignancy score before 2026-12-04; read back, never written
MALIGNANCY_LEGACY = codes.DCM.ProbabilityOfCancer
NODULE_SCORE = _nv("NV0001", "Nodule detection score")
NODULE_TYPE = _nv("NV0002", "Nodule type")
LUNG_RADS = _nv("NV0003", "Lung-RADS v2022 category hint")
REVIEW = _nv("NV0004", "Review status")
MEASURED_BY = _nv("NV0005", "Size measured by")
FINDING_COUNT = _nv("NV0006", "Number of reported findings")
OPERATING_THRESHOLD = _nv("NV0007", "Operating threshold of the nodule score")
SUMMARY_FINDING = _nv("NV0008", "Lung nodule detection")
SOLID_DIAMETER = _nv("NV0009", "Mean diameter of the solid component")  # part-solid findings

# ---- the comparison with a prior study (issue 25) ----
QUALITATIVE_DIFFERENCE = codes.DCM.QualitativeDifference
CHANGES = {
    "new": codes.SCT.NewFinding,
    "stable": codes.SCT.NoSignificantChangesInTheFinding,
    "growing": codes.SCT.IncreaseInSize,
    "shrinking": codes.SCT.DecreaseInSize,
    "resolved": _nv("NV0601", "Resolved (not seen on the current study)"),
}
PRIOR_DIAMETER = _nv("NV0010", "Mean diameter on the comparison study")
PRIOR_VOLUME = _nv("NV0011", "Volume on the comparison study")
VDT = _nv("NV0012", "Volume doubling time")
DIAMETER_CHANGE = _nv("NV0013", "Mean diameter change since the comparison study")
PRIOR_TRACKING_ID = _nv("NV0014", "Tracking identifier on the comparison study")
LUNG_RADS_FOLLOWUP = _nv("NV0015", "Lung-RADS v2022 suggestion with the comparison")
COMPARISON = CodedConcept("18834-2", "LN", "Radiology Comparison study")
STUDY_DATE = codes.DCM.StudyDate
STUDY_UID = codes.DCM.StudyInstanceUID
SERIES_UID = codes.DCM.SeriesInstanceUID
INTERVAL = _nv("NV0021", "Interval since the comparison study")
COMPARISON_LINE = _nv("NV0022", "Comparison")
IMPRESSIONS = codes.DCM.Impressions
EXAM_LUNG_RADS = _nv("NV0030", "Lung-RADS v2022 suggestion for the exam")
DRIVING_FINDING = _nv("NV0031", "Finding that sets the exam category")
IMPRESSION = codes.DCM.Impression
RECOMMENDATION = codes.DCM.Recommendation
FLEISCHNER = _nv("NV0033", "Fleischner 2017 suggestion if incidental")

MM = CodedConcept("mm", "UCUM", "millimeter")
DAYS = CodedConcept("d", "UCUM", "day")
MM3 = CodedConcept("mm3", "UCUM", "cubic millimeter")
NO_UNITS = CodedConcept("1", "UCUM", "no units")
FINDINGS_UNIT = CodedConcept("{findings}", "UCUM", "findings")

NODULE_TYPES = {
    name: _nv(f"NV01{k:02d}", name)
    for k, name in enumerate(("solid", "part-solid", "ground-glass", "calcified", "unmeasured"))
}
REVIEW_STATES = {name: _nv(f"NV02{k:02d}", name) for k, name in enumerate(("accepted", "unreviewed", "rejected"))}
LUNG_RADS_VALUES = {
    name: _nv(f"NV03{k:02d}", f"Lung-RADS {name}") for k, name in enumerate(("1", "2", "3", "4A", "4B"))
}
MEASUREMENTS = {"segmentation": _nv("NV0401", "segmentation"), "model estimate": _nv("NV0402", "model estimate")}


def same_code(a: object, b: CodedConcept) -> bool:
    """Whether a coded concept (highdicom's or a pydicom Code) is ``b`` (value and scheme)."""
    return bool(getattr(a, "value", None) == b.value and getattr(a, "scheme_designator", None) == b.scheme_designator)
