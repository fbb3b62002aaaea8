"""The coded concepts NodeView's SR and SEG use (Qt-free).

Standard codes (SNOMED CT ``SCT``, DICOM ``DCM``, LOINC ``LN``, UCUM units) where one exists; the
rest are in NodeView's private coding scheme :data:`SCHEME` (``99NODEVIEW``), which every SR names
in its CodingSchemeIdentificationSequence. Reading back (:mod:`.readback`) uses the same table.
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
MALIGNANCY = codes.DCM.ProbabilityOfCancer
NODULE_SCORE = _nv("NV0001", "Nodule detection score")
NODULE_TYPE = _nv("NV0002", "Nodule type")
LUNG_RADS = _nv("NV0003", "Lung-RADS v2022 category hint")
REVIEW = _nv("NV0004", "Review status")
MEASURED_BY = _nv("NV0005", "Size measured by")
FINDING_COUNT = _nv("NV0006", "Number of reported findings")
OPERATING_THRESHOLD = _nv("NV0007", "Operating threshold of the nodule score")
SUMMARY_FINDING = _nv("NV0008", "Lung nodule detection")

MM = CodedConcept("mm", "UCUM", "millimeter")
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
