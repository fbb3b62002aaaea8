"""Follow-up output: nodeview.findings/2 (and reading /1), ``detect --prior``, and the report's impression."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from nodeview.cli import main
from nodeview.core.detect.detector import DetectionResult, ModelInfo
from nodeview.core.detect.findings import Finding
from nodeview.core.detect.patches import PatchSpec
from nodeview.core.errors import InputError
from nodeview.core.followup.compare import compare_findings
from nodeview.core.followup.findings_doc import SCHEMA, read_findings, upgrade
from nodeview.core.followup.registration import Registration
from nodeview.core.geometry import Geometry
from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.report import render as R
from nodeview.core.volume import PatientInfo, Volume

from .followup_pairs import cached_pair
from .test_candidates import _chest
from .test_detector import make_model

MODEL = ModelInfo("m.onnx", "test-model", "1", "cd" * 32,
                  PatchSpec.from_metadata({"patch_size": "64", "patch_spacing_mm": "0.75", "hu_window": "-1000,400"}),
                  0.5, {})


def _finding(fid, xyz, d, score=0.9, kind="solid"):
    c = tuple(float(a) for a in xyz)
    return Finding(fid, c, d, tuple(a - d / 2 for a in c), tuple(a + d / 2 for a in c), score, 0.3, kind,
                   math.pi / 6 * d**3, d, d, "4A", "left", "upper", d)


V1_DOC = {
    "schema": "nodeview.findings/1",
    "study": {"series_uid": "1.2.3", "modality": "CT", "shape_zyx": [10, 10, 10], "spacing_zyx_mm": [1, 1, 1]},
    "model": {"name": "m", "version": "1", "sha256": "x"},
    "threshold": 0.5,
    "research_use_only": "Research use only. Not a medical device. Not a diagnosis.",
    "caveats": [],
    "findings": [
        {"id": 1, "center_xyz_mm": [1.0, 2.0, 3.0], "diameter_mm": 9.0, "bbox_xyz_mm": [[-3.5, -2.5, -1.5], [5.5, 6.5, 7.5]],
         "score": 0.9, "malignancy": 0.2, "type": "solid", "volume_mm3": 381.7, "long_axis_mm": 10.0,
         "short_axis_mm": 8.0, "lung_rads": "4A", "side": "left", "zone": "upper", "measurement": "segmentation"},
        {"id": 2, "center_xyz_mm": [40.0, 2.0, 3.0], "diameter_mm": 5.0, "bbox_xyz_mm": [[37.5, -0.5, 0.5], [42.5, 4.5, 5.5]],
         "score": 0.3, "malignancy": 0.1, "type": "solid", "volume_mm3": 65.4, "long_axis_mm": 5.0,
         "short_axis_mm": 5.0, "lung_rads": "2", "side": "left", "zone": "upper", "measurement": "segmentation"},
    ],
    "timings_s": {},
}


# ---- the document --------------------------------------------------------------------------------
def test_upgrade_from_v1_keeps_every_v1_key_and_adds_the_v2_ones():
    doc = upgrade(V1_DOC)
    assert doc["schema"] == SCHEMA and V1_DOC["schema"] == "nodeview.findings/1"  # the input is not modified
    assert doc["study"]["study_date"] is None and doc["comparison"] is None and doc["resolved"] == []
    first = doc["findings"][0]
    for key, value in V1_DOC["findings"][0].items():
        assert first[key] == value
    assert first["change"] is None and first["prior"] is None and first["vdt_days"] is None
    assert first["lung_rads_v2022"]["category"] == "4A"  # solid 9 mm at baseline
    assert doc["impression"]["lung_rads_v2022"] == "4A" and doc["impression"]["comparison"].startswith("No prior")
    assert upgrade(doc) == doc


def test_read_findings_v1_and_bad_files(tmp_path):
    path = tmp_path / "prior.json"
    path.write_text(json.dumps(V1_DOC))
    read = read_findings(path)
    assert [f.id for f in read.findings] == [1] and [f.id for f in read.below_threshold] == [2]
    assert read.findings[0].volume_mm3 == pytest.approx(381.7) and read.study_date is None
    bad = tmp_path / "bad.json"
    for text in ("{not json", json.dumps({"schema": "other/1"}), "[1, 2]",
                 json.dumps({**V1_DOC, "findings": [{"id": 1}]})):
        bad.write_text(text)
        with pytest.raises(InputError):
            read_findings(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_findings(tmp_path / "missing.json")


# ---- the command line ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("followup-cli")
    hu, g, _, _, _ = _chest(0)
    write_series(hu, root / "ct", SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz),
                                            patient_id="PAT-1", patient_name="DOE^JANE", study_date="20260301"))
    return root / "ct", make_model(root / "m.onnx")


def test_prior_json_v1_of_the_same_study_is_all_stable(small_study, tmp_path, capsys):
    ct, model = small_study
    first = tmp_path / "first.json"
    assert main(["detect", str(ct), "--model", str(model), "--json", str(first)]) == 0
    doc = json.loads(first.read_text())
    assert doc["schema"] == SCHEMA and doc["comparison"] is None and doc["findings"]
    assert all(f["change"] is None and f["vdt_days"] is None for f in doc["findings"])
    # make it a /1 file from last year, as an older NodeView wrote it
    v1 = {k: v for k, v in doc.items() if k not in ("comparison", "resolved", "impression")}
    v1["schema"] = "nodeview.findings/1"
    v1["study"] = {k: v for k, v in doc["study"].items() if k != "study_date"}
    v1["findings"] = [{k: v for k, v in f.items() if k in V1_DOC["findings"][0]} for f in doc["findings"]]
    prior = tmp_path / "prior-v1.json"
    prior.write_text(json.dumps(v1))
    out = tmp_path / "out.json"
    capsys.readouterr()
    assert main(["detect", str(ct), "--model", str(model), "--prior-json", str(prior), "--prior-date", "2025-03-01",
                 "--json", str(out)]) == 0
    doc2 = json.loads(out.read_text())
    assert {f["change"] for f in doc2["findings"]} == {"stable"} and doc2["resolved"] == []
    bad = [(f["id"], f["prior"]) for f in doc2["findings"] if f["prior"]["id"] != f["id"] or f["prior"]["distance_mm"] > 0.011]
    assert not bad
    assert doc2["comparison"]["source"] == "findings json" and doc2["comparison"]["interval_days"] == 365
    assert doc2["impression"]["comparison"] == "Compared with CT of 2025-03-01."
    err = capsys.readouterr().err
    assert "without registration" in err and "Compared with CT of 2025-03-01" in err


@pytest.mark.parametrize("args", [["--prior-date", "2025-01-01"], ["--prior-json", "x.json", "--prior-date", "soon"]])
def test_bad_prior_arguments_exit_2(small_study, args, capsys, tmp_path):
    ct, model = small_study
    with pytest.raises(SystemExit) if args[0] == "--prior-date" else _no_raise():
        rc = main(["detect", str(ct), "--model", str(model), *args])
        assert rc == 2
    assert capsys.readouterr().err.strip()


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow
def test_detect_with_prior_on_the_synthetic_pair_matches_the_truth(tmp_path, capsys):
    """The bundled model on both studies of the pair, registration, matching: changes as made."""
    from nodeview.core.detect.models import default_model_path

    if not Path(default_model_path()).is_file():
        pytest.skip("the bundled model is not in this checkout")
    pair = cached_pair("fine")
    for name, vol in (("prior", pair.prior), ("current", pair.current)):
        g = vol.geometry
        write_series(vol.hu_zyx, tmp_path / name, SeriesSpec(
            spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz), patient_id="PAIR-1",
            patient_name="PAIR^TEST", study_date=vol.patient.study_date, seed=1 if name == "prior" else 2))
    prior_json = tmp_path / "prior.json"
    assert main(["detect", str(tmp_path / "prior"), "--json", str(prior_json)]) == 0
    out = tmp_path / "out.json"
    assert main(["detect", str(tmp_path / "current"), "--prior", str(tmp_path / "prior"), "--prior-json",
                 str(prior_json), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["comparison"]["source"] == "images" and doc["comparison"]["interval_days"] == 368
    assert doc["comparison"]["registration"]["lung_surface_distance_mm"]["after"] < 2.0
    truth_current = [t for t in pair.nodules if t.current_xyz is not None]
    for t in truth_current:
        near = [f for f in doc["findings"] if np.linalg.norm(np.subtract(f["center_xyz_mm"], t.current_xyz)) < 5]
        assert len(near) == 1, f"{t.name} not found by the detector"
        f = near[0]
        assert f["change"] == t.change, t.name
        if t.prior_xyz is not None:
            assert np.linalg.norm(np.subtract(f["prior"]["center_xyz_mm"], t.prior_xyz)) < 5
        if t.change == "growing":
            assert f["vdt_days"] == pytest.approx(t.vdt_days, rel=0.4)
            assert f["lung_rads_v2022"]["category"] == "4B"  # solid growing >= 8 mm
    resolved = [t for t in pair.nodules if t.change == "resolved"]
    assert len(doc["resolved"]) == 1
    assert np.linalg.norm(np.subtract(doc["resolved"][0]["center_xyz_mm"], resolved[0].prior_xyz)) < 5
    assert doc["impression"]["lung_rads_v2022"] == "4B"
    assert doc["impression"]["comparison"] == "Compared with CT of 2025-03-02."


# ---- the report ----------------------------------------------------------------------------------
def test_report_impression_and_comparison(tmp_path):
    shape = (40, 96, 96)
    g = Geometry(shape, (2.0, 1.0, 1.0), (-48.0, -48.0, -40.0))
    hu = np.full(shape, -850, dtype=np.int16)
    volume = Volume(hu, g, description="chest", patient=PatientInfo(name="A^B", patient_id="P1", study_date="20260302"))
    current = [_finding(1, (10, 0, 0), 9.0), _finding(2, (-20, 10, 5), 6.5), _finding(3, (0, -20, -10), 5.0)]
    prior = [_finding(11, (10, 0, 0), 6.0), _finding(13, (0, -20, -10), 5.0), _finding(14, (-30, -30, 0), 7.0)]
    cmp = compare_findings(current, prior, Registration.identity("identity (test)"), "20260302", "20250302")
    result = DetectionResult(tuple(current), 30, MODEL, {"detect": 1.0})
    paths = R.write_report(tmp_path, volume, result, {3: R.REJECTED}, 0.5, comparison=cmp,
                           created=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    pages = R.render_report(volume, result.findings, {3: R.REJECTED}, MODEL, 0.5, anonymize=False,
                            created=datetime(2026, 3, 2, 9, 0, tzinfo=UTC), comparison=cmp)
    text = " ".join(pages[0].texts)
    assert "Impression (suggested; the reader may override)" in text
    assert "Lung-RADS v2022 (suggested): 4B, driven by nodule #1 (solid growing >= 8 mm)" in text
    assert "Compared with CT of 2025-03-02." in text and "Management: Diagnostic chest CT" in text
    assert "growing" in text and "resolved" in text and "new" in text
    vdt = 365 * math.log(2) / math.log((9.0 / 6.0) ** 3)
    assert f"{vdt:,.0f}" in text
    rows = [" ".join(p.texts) for p in pages]
    assert any("6.0 mm, growing" in r and f"{vdt:,.0f} days" in r for r in rows)
    doc = json.loads(paths[-1].read_text())
    assert doc["schema"] == SCHEMA and doc["impression"]["driving_finding"] == 1
    assert [r["id"] for r in doc["resolved"]] == [14]
    by_id = {f["id"]: f for f in doc["findings"]}
    assert by_id[1]["change"] == "growing" and by_id[1]["prior"]["id"] == 11
    assert by_id[1]["vdt_days"] == pytest.approx(vdt, abs=0.1) and by_id[2]["change"] == "new"
    assert by_id[3]["review"] == "rejected"


def test_report_without_prior_says_baseline():
    shape = (20, 64, 64)
    volume = Volume(np.full(shape, -850, dtype=np.int16), Geometry(shape, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    pages = R.render_report(volume, [_finding(1, (30, 30, 20), 7.0)], {}, MODEL, 0.5, anonymize=True,
                            created=datetime(2026, 3, 2, tzinfo=UTC))
    text = " ".join(pages[0].texts)
    assert "No prior CT for comparison (baseline)." in text and "(suggested): 3" in text


def test_prior_images_with_report_dir_and_same_day(small_study, tmp_path, capsys):
    """--prior with images and --report-dir: registered (here the study with itself), report written."""
    ct, model = small_study
    out = tmp_path / "reports"
    assert main(["detect", str(ct), "--model", str(model), "--prior", str(ct), "--report-dir", str(out)]) == 0
    doc = json.loads(next(out.glob("*.json")).read_text())
    assert doc["comparison"]["source"] == "images" and doc["comparison"]["interval_days"] == 0
    assert {f["change"] for f in doc["findings"]} == {"stable"} and doc["resolved"] == []
    assert all(f["vdt_days"] is None for f in doc["findings"])
    assert doc["comparison"]["registration"]["lung_surface_distance_mm"]["after"] < 1.5
    err = capsys.readouterr().err
    assert "not older than the current one" in err


def test_gui_prior_arguments_are_checked_before_qt(tmp_path, capsys):
    assert main(["--prior", str(tmp_path)]) == 2
    assert "needs the current study" in capsys.readouterr().err
    assert main([str(tmp_path), "--prior", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_prior_without_lungs_is_bad_input(small_study, tmp_path, capsys):
    """A prior that is not a chest CT cannot be registered on the lungs: one line, exit 2."""
    import SimpleITK as sitk

    water = sitk.GetImageFromArray(np.zeros((24, 64, 64), dtype=np.int16))
    water.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(water, str(tmp_path / "water.mha"))
    ct, model = small_study
    capsys.readouterr()
    assert main(["detect", str(ct), "--model", str(model), "--prior", str(tmp_path / "water.mha")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nodeview:") and "no lungs" in err and "\n" not in err


def test_detect_prior_dicom_out_sr_carries_the_comparison(small_study, tmp_path, capsys):
    """``detect CURRENT --prior PRIOR --dicom-out DIR``: the SR says each finding's change and prior
    size, names the comparison study (date, Study Instance UID, its images as other evidence), carries
    the impression; dciodvfy passes and NodeView's read-back gives the comparison back."""
    import pydicom

    from nodeview.core.export.readback import findings_from_sr

    from .dicom_helpers import dciodvfy_errors

    ct, model = small_study
    hu, g, _, _, _ = _chest(0)  # the same chest a year before, another study
    prior = tmp_path / "prior"
    write_series(hu, prior, SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz),
                                       patient_id="PAT-1", patient_name="DOE^JANE", study_date="20250301", seed=7))
    out, dicom = tmp_path / "out.json", tmp_path / "dicom"
    assert main(["detect", str(ct), "--model", str(model), "--prior", str(prior), "--dicom-out", str(dicom),
                 "--json", str(out)]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["schema"] == SCHEMA and doc["findings"]
    sr_path = next(dicom.glob("*_SR.dcm"))
    errors, _ = dciodvfy_errors(sr_path)
    assert errors == []
    sr = pydicom.dcmread(sr_path)
    prior_study = pydicom.dcmread(next(prior.iterdir()), stop_before_pixels=True).StudyInstanceUID
    assert sr.PertinentOtherEvidenceSequence[0].StudyInstanceUID == prior_study != sr.StudyInstanceUID
    back = findings_from_sr(sr_path, pydicom.dcmread(next(ct.iterdir())).FrameOfReferenceUID)
    assert back.comparison is not None
    assert back.comparison.study_date == "2025-03-01" and back.comparison.study_uid == prior_study
    assert back.comparison.interval_days == 365 and back.comparison.resolved == ()
    by_track = {lf.tracking_id: lf.change for lf in back.findings}
    for f in doc["findings"]:
        change = by_track[f"Nodule {f['id']}"]
        assert change is not None and change.change == f["change"] == "stable"
        assert change.prior_diameter_mm == pytest.approx(f["prior"]["diameter_mm"], abs=0.01)
        assert change.prior_tracking_id == f"Nodule {f['prior']['id']}"
        assert (change.vdt_days is None) == (f["vdt_days"] is None)
        if f["vdt_days"] is not None:
            assert change.vdt_days == pytest.approx(f["vdt_days"], abs=0.06)
    assert back.impression is not None and back.impression.category == doc["impression"]["lung_rads_v2022"]
    assert back.impression.management == doc["impression"]["management"]
    assert b"DOE^JANE" not in capsys.readouterr().err.encode()


def _other_srs(ct_dir, out_dir):
    """Two SRs --prior-json must refuse: another tool's Comprehensive 3D SR (a TID 1500 report with a
    3D point), and a Comprehensive SR (no 3D points) that even says NodeView made it."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    cts = [pydicom.dcmread(p) for p in sorted(ct_dir.iterdir())[:4]]
    observer = hd.sr.ObserverContext(codes.DCM.Person, hd.sr.PersonObserverIdentifyingAttributes("Reader^A"))
    context = hd.sr.ObservationContext(observer_person_context=observer)
    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="lesion 1")
    point = hd.sr.ImageRegion3D(hd.sr.GraphicTypeValues3D.POINT, np.array([[1.0, 2.0, 3.0]]),
                                cts[0].FrameOfReferenceUID)  # fmt: skip
    planar = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(tracking, referenced_region=point,
                                                                  finding_type=codes.SCT.Nodule)  # fmt: skip
    other = hd.sr.Comprehensive3DSR(cts, hd.sr.MeasurementReport(context, codes.LN.CTUnspecifiedBodyRegion, [planar]),
                                    hd.UID(), 5, hd.UID(), 1, manufacturer="OtherCAD")  # fmt: skip
    diameter = hd.sr.Measurement(codes.SCT.Diameter, 6.0, hd.sr.CodedConcept("mm", "UCUM", "mm"))
    flat = hd.sr.MeasurementsAndQualitativeEvaluations(tracking, measurements=[diameter])
    comprehensive = hd.sr.ComprehensiveSR(cts, hd.sr.MeasurementReport(context, codes.LN.CTUnspecifiedBodyRegion,
                                                                       [flat]),
                                          hd.UID(), 6, hd.UID(), 1, manufacturer="NodeView")  # fmt: skip
    out_dir.mkdir()
    other.save_as(out_dir / "other3d.dcm")
    comprehensive.save_as(out_dir / "comprehensive.dcm")
    return out_dir / "other3d.dcm", out_dir / "comprehensive.dcm"


def test_prior_json_takes_the_priors_nodeview_sr(small_study, tmp_path, capsys):
    """``detect CURRENT --prior-json PRIOR_SR.dcm``: the SR NodeView's own writer made for the prior
    (the same chest a year before, one nodule 60 % of its size then, one not there then, one there
    then and not now) gives the comparison: growing with its VDT, stable, new, resolved, the prior's
    ids, date and series; the follow-up SR places the resolved nodule in the prior's frame of
    reference. An SR that is not NodeView's, not a Comprehensive 3D SR, or no SR: one line, exit 2."""
    from dataclasses import replace

    import pydicom

    from nodeview.core.detect.detector import Detector
    from nodeview.core.export import export_dicom, read_source_series
    from nodeview.core.export.prior_sr import read_prior_findings
    from nodeview.core.export.readback import findings_from_sr
    from nodeview.core.followup.compare import solid_diameter_mm
    from nodeview.core.io.study import open_study

    from .dicom_helpers import dciodvfy_errors

    ct, model = small_study
    hu, g, _, _, _ = _chest(0)  # the same chest a year before, another study
    prior_dir = tmp_path / "prior"
    write_series(hu, prior_dir, SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz),
                                           patient_id="PAT-1", patient_name="DOE^JANE", study_date="20250301", seed=7))  # fmt: skip
    prior_volume = open_study(prior_dir)
    detector = Detector(str(model))
    detected = detector.detect(prior_volume, min_score=0.0)
    threshold = detector.info.threshold
    reported = [f for f in detected.findings if f.score >= threshold]
    nodules = sorted((f for f in reported if f.measured and f.type == "solid" and 4.5 <= f.diameter_mm <= 30),
                     key=lambda f: -f.diameter_mm)  # fmt: skip
    assert len(nodules) >= 3
    grow, keep, absent = nodules[:3]
    k = 0.6  # grow's diameter a year before
    assert grow.diameter_mm * (1 - k) > 2.0  # a Lung-RADS growth (> 1.5 mm)
    far = (0.5, -40.25, 30.0)  # where the resolved nodule was: 25 mm and more from every finding
    assert min(np.linalg.norm(np.subtract(f.center_xyz_mm, far)) for f in reported) > 25
    gone = replace(keep, center_xyz_mm=far, diameter_mm=7.0, volume_mm3=179.6, long_axis_mm=8.0, short_axis_mm=6.0,
                   type="part-solid", solid_fraction=0.6**3, measured=False, voxels=None)  # fmt: skip
    prior_findings = [replace(f, diameter_mm=f.diameter_mm * k, volume_mm3=f.volume_mm3 * k**3,
                              long_axis_mm=f.long_axis_mm * k, short_axis_mm=f.short_axis_mm * k) if f is grow else f
                      for f in reported if f is not absent] + [gone]  # fmt: skip
    prior_findings = [f.with_id(21 + n) for n, f in enumerate(prior_findings)]  # the prior's own numbering
    prior_id = {f.center_xyz_mm: f.id for f in prior_findings}
    prior_result = DetectionResult(tuple(prior_findings), detected.n_candidates, detected.model, {})
    prior_sr = export_dicom(tmp_path / "prior-dicom", prior_volume, prior_result, {}, threshold,
                            read_source_series([prior_dir], prior_volume)).sr_path  # fmt: skip
    prior_for = str(pydicom.dcmread(next(prior_dir.iterdir()), stop_before_pixels=True).FrameOfReferenceUID)

    back = read_prior_findings(prior_sr)  # the reader itself: ids, sizes, solid component, date, series
    assert back.source == "dicom sr" and back.frame_of_reference_uid == prior_for
    assert back.study_date == "20250301" and back.series_uid == prior_volume.series_uid
    prior_study = str(pydicom.dcmread(next(prior_dir.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    assert back.study_uid == prior_study
    assert back.threshold == pytest.approx(threshold) and back.below_threshold == ()
    assert sorted(f.id for f in back.findings) == [f.id for f in prior_findings]
    want = {f.id: f for f in prior_findings}
    for f in back.findings:
        np.testing.assert_allclose(f.center_xyz_mm, want[f.id].center_xyz_mm, atol=1e-3)
        assert f.diameter_mm == pytest.approx(want[f.id].diameter_mm, rel=1e-6)
        estimate = math.pi / 6 * want[f.id].diameter_mm ** 3  # not segmented: no volumetric group, a sphere
        assert f.volume_mm3 == pytest.approx(want[f.id].volume_mm3 if f.measured else estimate, rel=1e-6)
        assert (f.type, f.measured) == (want[f.id].type, want[f.id].measured)
    got_gone = next(f for f in back.findings if f.type == "part-solid")
    assert solid_diameter_mm(got_gone) == pytest.approx(0.6 * 7.0, rel=1e-6)

    out, dicom = tmp_path / "out.json", tmp_path / "current-dicom"
    capsys.readouterr()
    assert main(["detect", str(ct), "--model", str(model), "--prior-json", str(prior_sr), "--json", str(out),
                 "--dicom-out", str(dicom)]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    comp = doc["comparison"]
    assert comp["source"] == "dicom sr" and comp["prior_study_date"] == "2025-03-01" and comp["interval_days"] == 365
    assert comp["prior_series_uid"] == prior_volume.series_uid
    by_centre = {tuple(f["center_xyz_mm"]): f for f in doc["findings"]}

    def current(f):
        return by_centre[tuple(round(v, 2) for v in f.center_xyz_mm)]

    grown = current(grow)
    assert grown["change"] == "growing" and grown["prior"]["id"] == prior_id[grow.center_xyz_mm]
    assert grown["prior"]["diameter_mm"] == pytest.approx(grow.diameter_mm * k, abs=0.01)
    assert grown["prior"]["volume_mm3"] == pytest.approx(grow.volume_mm3 * k**3, abs=0.1)
    vdt = 365 * math.log(2) / math.log(grown["volume_mm3"] / (grow.volume_mm3 * k**3))
    assert grown["vdt_days"] == pytest.approx(vdt, abs=0.2)
    assert grown["lung_rads_v2022"]["rule"]  # the follow-up rules ran on it
    stable = current(keep)
    assert stable["change"] == "stable" and stable["prior"]["id"] == prior_id[keep.center_xyz_mm]
    assert stable["prior"]["distance_mm"] < 0.01 and stable["vdt_days"] is None  # equal volumes: undefined
    assert current(absent)["change"] == "new" and current(absent)["prior"] is None
    assert current(absent)["vdt_days"] is None
    others = [f for f in reported if f not in (grow, keep, absent)]
    assert all(current(f)["change"] == "stable" for f in others)
    [resolved] = doc["resolved"]
    assert resolved["id"] == prior_id[far] and resolved["type"] == "part-solid"
    np.testing.assert_allclose(resolved["center_xyz_mm"], far, atol=0.01)
    err = capsys.readouterr().err
    assert "without registration" in err and "1 growing" in err and "1 new" in err and "1 resolved" in err
    assert "DOE" not in err and "PAT-1" not in err

    # the follow-up SR: valid, and the resolved nodule located in the prior's frame of reference
    sr_path = next(dicom.glob("*_SR.dcm"))
    assert dciodvfy_errors(sr_path)[0] == []
    report = findings_from_sr(sr_path, pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True).FrameOfReferenceUID)
    assert report.comparison is not None and report.comparison.study_date == "2025-03-01"
    assert (report.comparison.study_uid, report.comparison.series_uid) == (prior_study, prior_volume.series_uid)
    [loc] = report.comparison.resolved
    assert loc.frame_of_reference_uid == prior_for and loc.prior_tracking_id == f"Nodule {prior_id[far]}"
    np.testing.assert_allclose(loc.center_xyz_mm, far, atol=1e-3)
    assert len(report.findings) == len(doc["findings"])

    # with the prior's images too: registered on the lungs, the SR's findings matched through it
    out2 = tmp_path / "out2.json"
    assert main(["detect", str(ct), "--model", str(model), "--prior", str(prior_dir), "--prior-json", str(prior_sr),
                 "--json", str(out2)]) == 0  # fmt: skip
    doc2 = json.loads(out2.read_text())
    assert doc2["comparison"]["source"] == "images"
    assert doc2["comparison"]["registration"]["lung_surface_distance_mm"]["after"] < 1.5
    assert [(f["change"], (f["prior"] or {}).get("id")) for f in doc2["findings"]] == [
        (f["change"], (f["prior"] or {}).get("id")) for f in doc["findings"]]  # fmt: skip
    assert [r["id"] for r in doc2["resolved"]] == [prior_id[far]]
    capsys.readouterr()

    # what --prior-json refuses, each in one line
    other3d, comprehensive = _other_srs(prior_dir, tmp_path / "others")
    cases = [(other3d, "was written by OtherCAD, not by NodeView"),
             (comprehensive, "is a Comprehensive SR Storage, not a Comprehensive 3D SR"),
             (next(prior_dir.iterdir()), "is a CT Image Storage object, not a structured report")]  # fmt: skip
    for path, message in cases:
        assert main(["detect", str(ct), "--model", str(model), "--prior-json", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("nodeview:") and message in err and "\n" not in err, err
        assert "DOE" not in err and "PAT-1" not in err
