"""DICOM export (issue 23): TID 1500 SR, SEG, Secondary Capture; dciodvfy; highdicom read-back."""

from __future__ import annotations

import re

import highdicom as hd
import numpy as np
import pydicom
import pytest

from nodeview.cli import main
from nodeview.core.export import DicomExportExistsError, export_dicom, read_source_series
from nodeview.core.export import codes as C
from nodeview.core.export.readback import find_derived_objects, findings_from_sr, labels_from_seg
from nodeview.core.io.study import open_study
from nodeview.core.report.render import select_findings

from .dicom_helpers import IDENTIFYING, dciodvfy_errors, default_detector, write_chest

#: the dciodvfy warnings these objects are known to get, and why they are acceptable
KNOWN_WARNINGS = (
    "Unrecognized defined term <99NODEVIEW>",  # NodeView's private coding scheme (declared in the SR)
    "attribute <Laterality>",  # a report page is of no side: Laterality is present and empty
    # anonymized: Patient ID is emptied; LIDC's own headers have an empty Study Time and Study ID, copied
    "needed to build DICOMDIR",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ct = write_chest(root / "ct")
    volume = open_study(ct)
    detector = default_detector()
    result = detector.detect(volume, min_score=0.0)
    return ct, volume, result, detector.info.threshold


def _check_valid(paths):
    for p in paths:
        errors, warnings = dciodvfy_errors(p)
        assert errors == [], (p.name, errors)
        unknown = [w for w in warnings if not any(k in w for k in KNOWN_WARNINGS)]
        assert unknown == [], (p.name, unknown)


def test_sr_seg_sc_valid_and_read_back(study, tmp_path):
    ct, volume, result, threshold = study
    keyed, _ = select_findings(result.findings, {}, threshold)
    assert len(keyed) >= 3
    reject = keyed[1].id
    reviews = {keyed[0].id: "accepted", reject: "rejected"}
    source = read_source_series([ct], volume)
    assert source.grid_matches
    out = export_dicom(tmp_path, volume, result, reviews, threshold, source, secondary_capture=True)
    assert out.seg_path is not None and len(out.sc_paths) >= 1
    _check_valid(out.paths)
    ct0 = pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True)
    kept = [f for f in keyed if f.id != reject]

    sr = hd.sr.srread(out.sr_path)
    assert sr.StudyInstanceUID == ct0.StudyInstanceUID and sr.SeriesInstanceUID != ct0.SeriesInstanceUID
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    planar = sr.content.get_planar_roi_measurement_groups()
    assert len(planar) == len(kept)
    by_uid = {e.tracking_uid: e for e in out.findings}
    for group, f in zip(planar, kept, strict=True):
        exp = by_uid[str(group.tracking_uid)]
        assert exp.finding_id == f.id and str(group.tracking_identifier) == f"Nodule {f.id}"
        assert group.roi.frame_of_reference_uid == ct0.FrameOfReferenceUID
        assert np.allclose(np.asarray(group.roi.value).reshape(3), f.center_xyz_mm, atol=1e-3)
        meas = {m.name.value: m.value for m in group.get_measurements()}
        assert float(meas[C.LONG_AXIS.value]) == pytest.approx(f.long_axis_mm, rel=1e-4)
        assert float(meas[C.NODULE_SCORE.value]) == pytest.approx(f.score, abs=1e-5)
        assert float(meas[C.MALIGNANCY.value]) == pytest.approx(f.malignancy, abs=1e-5)
        assert C.MALIGNANCY_LEGACY.value not in meas  # a model's score, not "Probability of cancer"
        evals = {e.name.value: e.value.meaning for e in group.get_qualitative_evaluations()}
        assert evals[C.NODULE_TYPE.value] == f.type
        assert evals[C.REVIEW.value] == ("accepted" if f.id == keyed[0].id else "unreviewed")
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    assert {str(g.tracking_uid) for g in volumetric} == {e.tracking_uid for e in out.findings if e.segment_number}
    assert all(g.referenced_segment.referenced_sop_instance_uid for g in volumetric)
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert ct0.SeriesInstanceUID in {s.SeriesInstanceUID for s in evidence}
    algo = [i for i in _walk(sr) if i.ConceptNameCodeSequence[0].CodeValue == "111001"]
    assert algo and result.model.name in algo[0].TextValue

    seg = hd.seg.segread(out.seg_path)
    assert seg.StudyInstanceUID == ct0.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct0.SeriesInstanceUID
    assert seg.SegmentationType == "BINARY"
    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    assert len(segments) == sum(1 for e in out.findings if e.segment_number)
    labels, names = labels_from_seg(out.seg_path, volume, ct0.FrameOfReferenceUID)
    voxel = float(np.prod(volume.spacing_zyx))
    for exp in out.findings:
        if exp.segment_number:
            f = next(f for f in kept if f.id == exp.finding_id)
            assert segments[exp.segment_number].TrackingUID == exp.tracking_uid
            assert names[exp.segment_number] == exp.tracking_id
            # the segment is the segmentation the finding was measured from (overlaps are rare)
            assert (labels == exp.segment_number).sum() * voxel == pytest.approx(f.volume_mm3, rel=0.05)
            k, j, i = volume.geometry.mm_to_voxel(f.center_xyz_mm)
            assert labels[k, j, i] == exp.segment_number

    sc = pydicom.dcmread(out.sc_paths[0])
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and sc.pixel_array.ndim == 3

    # NodeView reads its own SR back: same centres, scores and reviews, rejected one absent
    found = find_derived_objects([tmp_path])
    assert found.sr_paths == (str(out.sr_path),) and found.seg_paths == (str(out.seg_path),)
    report = findings_from_sr(out.sr_path, ct0.FrameOfReferenceUID)
    assert [lf.tracking_uid for lf in report.findings] == [str(g.tracking_uid) for g in planar]
    for lf, f in zip(report.findings, kept, strict=True):
        assert np.allclose(lf.finding.center_xyz_mm, f.center_xyz_mm, atol=1e-3)
        assert lf.finding.score == pytest.approx(f.score, abs=1e-5) and lf.finding.type == f.type
        assert lf.finding.volume_mm3 == pytest.approx(f.volume_mm3, rel=1e-4)
        assert lf.finding.lung_rads == f.lung_rads
        assert lf.finding.malignancy == pytest.approx(f.malignancy, abs=1e-5)
    assert report.findings[0].review == "accepted"
    assert report.algorithm.startswith(result.model.name) and report.seg_uid == seg.SOPInstanceUID
    # another frame of reference: nothing is placed on this series
    assert findings_from_sr(out.sr_path, "1.2.3.4").findings == ()


def _walk(ds):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def test_never_overwrites_and_anonymizes(study, tmp_path):
    ct, volume, result, threshold = study
    source = read_source_series([ct], volume)
    out = export_dicom(tmp_path, volume, result, {}, threshold, source, anonymize=True, secondary_capture=True)
    _check_valid(out.paths)
    for p in out.paths:
        data = p.read_bytes()
        assert not any(token in data for token in IDENTIFYING), p.name
        assert not re.search(r"DOE|12345", p.name)
    before = {p: p.read_bytes() for p in out.paths}
    with pytest.raises(DicomExportExistsError):
        export_dicom(tmp_path, volume, result, {}, threshold, source, anonymize=True, secondary_capture=True)
    assert {p: p.read_bytes() for p in out.paths} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in out.paths)  # no temporary left
    # the study identity stays: the objects belong to the source study
    assert pydicom.dcmread(out.sr_path).StudyInstanceUID == source.study_uid


def test_not_exportable_from_a_research_file(tmp_path):
    import SimpleITK as sitk

    from nodeview.core.export import NotExportableError

    img = sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16))
    sitk.WriteImage(img, str(tmp_path / "v.mha"))
    volume = open_study(tmp_path / "v.mha")
    with pytest.raises(NotExportableError, match="DICOM"):
        read_source_series([tmp_path / "v.mha"], volume)


@pytest.mark.slow
def test_real_lidc_export(lidc_dir, lidc_volume, tmp_path):
    detector = default_detector()
    result = detector.detect(lidc_volume, min_score=0.0)
    source = read_source_series([lidc_dir], lidc_volume)
    out = export_dicom(tmp_path, lidc_volume, result, {}, detector.info.threshold, source)
    _check_valid(out.paths)
    keyed, _ = select_findings(result.findings, {}, detector.info.threshold)
    assert len(hd.sr.srread(out.sr_path).content.get_planar_roi_measurement_groups()) == len(keyed)
    if out.seg_path is not None:
        seg = hd.seg.segread(out.seg_path)
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == lidc_volume.series_uid
    loaded = findings_from_sr(out.sr_path, source.frame_of_reference_uid)
    assert len(loaded.findings) == len(keyed)


def test_cli_report_dir_and_dicom_out_per_study(study, tmp_path, capsys):
    """``detect --report-dir --dicom-out``: each study gets its report and its SR/SEG (the single-study
    ``detect PATH --dicom-out DIR --json F`` path runs in tests/test_pacs_orthanc.py's round trip)."""
    ct, _, _, _ = study
    with pytest.raises(SystemExit) as exc:  # argparse: --secondary-capture needs --dicom-out
        main(["detect", str(ct), "--secondary-capture"])
    assert exc.value.code == 2
    code = main(["detect", str(ct), "--report-dir", str(tmp_path / "r"), "--dicom-out", str(tmp_path / "d"),
                 "--anonymize"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    out = captured.out.split()
    assert any(p.endswith(".png") for p in out) and any(p.endswith("_SR.dcm") for p in out)
    assert sorted(p.name[-7:] for p in (tmp_path / "d").iterdir()) == ["SEG.dcm", "_SR.dcm"]
    assert all(b"PAT-12345" not in p.read_bytes() for p in (tmp_path / "d").iterdir())
    assert "1 of 1 report(s) written" in captured.err


def test_read_back_another_tools_sr(tmp_path):
    """A TID 1500 SR not written by NodeView: a 3D point with only a diameter becomes a loaded finding
    with neutral values; a group in another frame of reference and a 2D-only group are skipped."""
    from pydicom.sr.codedict import codes

    from nodeview.core.io.dicom_write import SeriesSpec, write_series

    files = write_series(np.full((4, 16, 16), -800, np.int16), tmp_path / "ct", SeriesSpec(seed=21))
    cts = [pydicom.dcmread(f) for f in files]
    for_uid = cts[0].FrameOfReferenceUID

    def group(n, region, diameter=None):
        meas = (
            [hd.sr.Measurement(codes.SCT.Diameter, diameter, hd.sr.CodedConcept("mm", "UCUM", "mm"))]
            if diameter
            else []
        )
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"lesion {n}"),
            referenced_region=region, finding_type=codes.SCT.Nodule, measurements=meas,
        )  # fmt: skip

    point = hd.sr.ImageRegion3D(hd.sr.GraphicTypeValues3D.POINT, np.array([[-170.0, -172.0, -298.0]]), for_uid)
    elsewhere = hd.sr.ImageRegion3D(hd.sr.GraphicTypeValues3D.POINT, np.array([[0.0, 0.0, 0.0]]), "1.2.3.4.5")
    flat = hd.sr.ImageRegion(hd.sr.GraphicTypeValues.POINT, np.array([[3.0, 4.0]]),
                             source_image=hd.sr.SourceImageForRegion.from_source_image(cts[0]))  # fmt: skip
    observer = hd.sr.ObserverContext(codes.DCM.Person, hd.sr.PersonObserverIdentifyingAttributes("Reader^A"))
    report = hd.sr.MeasurementReport(
        hd.sr.ObservationContext(observer_person_context=observer), codes.LN.CTUnspecifiedBodyRegion,
        [group(1, point, 7.5), group(2, elsewhere), group(3, flat)],
    )  # fmt: skip
    sr = hd.sr.Comprehensive3DSR(cts, report, hd.UID(), 5, hd.UID(), 1, manufacturer="Other")
    path = tmp_path / "other_sr.dcm"
    sr.save_as(path)
    loaded = findings_from_sr(path, for_uid)
    assert loaded.skipped == 2 and len(loaded.findings) == 1
    lf = loaded.findings[0]
    assert lf.tracking_id == "lesion 1" and lf.review == "unreviewed"
    assert lf.finding.center_xyz_mm == (-170.0, -172.0, -298.0)
    assert lf.finding.diameter_mm == 7.5 and lf.finding.type == "unmeasured" and lf.finding.score == 1.0


def test_no_finding_still_makes_a_valid_report(study, tmp_path):
    """Nothing at the operating point: an SR that says so (summary: 0 findings at the threshold), no SEG."""
    ct, volume, result, _ = study
    source = read_source_series([ct], volume)
    out = export_dicom(tmp_path, volume, result, {}, 2.0, source)
    assert out.seg_path is None and out.findings == () and out.paths == [out.sr_path]
    _check_valid(out.paths)
    sr = hd.sr.srread(out.sr_path)
    assert sr.content.get_planar_roi_measurement_groups() == []
    values = {m.name.value: float(m.value) for g in sr.content.get_image_measurement_groups()  # TID 1501
              for m in g.get_measurements()}  # fmt: skip
    assert values[C.FINDING_COUNT.value] == 0 and values[C.OPERATING_THRESHOLD.value] == 2.0
    assert findings_from_sr(out.sr_path, source.frame_of_reference_uid).findings == ()


def test_sr_carries_the_comparison_and_reads_it_back(study, tmp_path):
    """Issue 25: with a comparison the SR says, per finding, the change, the prior's size and the VDT;
    the prior-only finding as resolved; the comparison study (date, UIDs, other evidence); the
    impression. dciodvfy passes and NodeView's read-back returns all of it."""
    from dataclasses import replace
    from datetime import date

    from nodeview.core.followup.compare import compare_findings, suggestion_for
    from nodeview.core.followup.impression import build_impression
    from nodeview.core.followup.registration import Registration

    ct, volume, result, threshold = study
    keyed, _ = select_findings(result.findings, {}, threshold)
    assert len(keyed) >= 3 and all(f.measured for f in keyed[:2])
    prior_dir = write_chest(tmp_path / "prior", seed=1, study_date="20250302")
    prior_volume = open_study(prior_dir)
    prior_source = read_source_series([prior_dir], prior_volume)
    a, b = keyed[0], keyed[1]
    shrink = 0.6  # b was 60 % of its diameter a year before: growing
    far = (a.center_xyz_mm[0], a.center_xyz_mm[1], a.center_xyz_mm[2] + 60.0)
    prior = [
        replace(a, id=1),  # stable
        replace(b, id=2, diameter_mm=b.diameter_mm * shrink, volume_mm3=b.volume_mm3 * shrink**3,
                long_axis_mm=b.long_axis_mm * shrink, short_axis_mm=b.short_axis_mm * shrink),
        replace(a, id=3, center_xyz_mm=far, diameter_mm=5.0, volume_mm3=65.4),  # resolved
    ]  # fmt: skip
    comp = compare_findings(
        keyed, prior, Registration.identity(), volume.patient.study_date, "20250302",
        prior_series_uid=prior_volume.series_uid,
    )  # fmt: skip
    assert comp.changes[a.id].change == "stable" and comp.changes[b.id].change == "growing"
    assert [f.id for f in comp.resolved] == [3]
    new_ids = [f.id for f in keyed if comp.changes[f.id].change == "new"]
    assert new_ids

    source = read_source_series([ct], volume)
    out = export_dicom(tmp_path / "out", volume, result, {}, threshold, source, comparison=comp,
                       prior_source=prior_source)  # fmt: skip
    _check_valid(out.paths)
    sr = pydicom.dcmread(out.sr_path)
    other = sr.PertinentOtherEvidenceSequence[0]
    assert other.StudyInstanceUID == prior_source.study_uid != source.study_uid
    assert other.ReferencedSeriesSequence[0].SeriesInstanceUID == prior_volume.series_uid
    assert len(other.ReferencedSeriesSequence[0].ReferencedSOPSequence) == len(prior_source.datasets)
    root = [i.ConceptNameCodeSequence[0].CodeValue for i in sr.ContentSequence]
    assert "18834-2" in root and "121072" in root  # comparison study, impressions
    scheme = [(i.CodingSchemeDesignator, i.CodeValue) for i in _walk(sr) for i in i.ConceptNameCodeSequence]
    assert ("DCM", "111049") in scheme  # Qualitative Difference

    report = findings_from_sr(out.sr_path, source.frame_of_reference_uid)
    by_id = {lf.tracking_id: lf for lf in report.findings}
    for f in keyed:
        got, want = by_id[f"Nodule {f.id}"].change, comp.changes[f.id]
        assert got is not None and got.change == want.change
        if want.prior is None:
            assert got.prior_tracking_id == "" and got.prior_diameter_mm is None and got.vdt_days is None
            continue
        assert got.prior_tracking_id == f"Nodule {want.prior.id}"
        assert got.prior_diameter_mm == pytest.approx(want.prior.diameter_mm, rel=1e-5)
        assert got.prior_volume_mm3 == pytest.approx(want.prior.volume_mm3, rel=1e-5)
        assert got.diameter_change_mm == pytest.approx(want.diameter_change_mm, abs=1e-6)
        assert (got.vdt_days is None) == (want.vdt_days is None)
    grown = by_id[f"Nodule {b.id}"].change
    days = (date(2026, 1, 1) - date(2025, 3, 2)).days  # the synthetic chest is of 2026-01-01
    assert grown.vdt_days == pytest.approx(days * np.log(2) / np.log(1 / shrink**3), rel=1e-4)
    want_category = suggestion_for(b, comp)
    assert want_category is not None and grown.lung_rads == want_category.category
    assert report.comparison is not None
    assert report.comparison.study_date == "2025-03-02" and report.comparison.interval_days == days
    assert report.comparison.study_uid == prior_source.study_uid
    assert report.comparison.series_uid == prior_volume.series_uid
    assert report.comparison.line == "Compared with CT of 2025-03-02."
    assert [(r.change, r.prior_tracking_id) for r in report.comparison.resolved] == [("resolved", "Nodule 3")]
    assert report.comparison.resolved[0].prior_diameter_mm == pytest.approx(5.0)
    impression = build_impression(keyed, comp)
    assert report.impression is not None
    assert report.impression.category == impression.category
    assert report.impression.driving_tracking_id == f"Nodule {impression.driving_finding}"
    assert report.impression.management == impression.management and report.impression.rule == impression.rule

    from nodeview.core.export.readback import comparison_summary

    line = comparison_summary([report])
    assert line.startswith("Compared with CT of 2025-03-02: ") and "1 growing" in line and "1 resolved" in line
    assert f"Lung-RADS v2022 (suggested): {impression.category}, Nodule {impression.driving_finding}." in line

    # anonymized: the comparison stays, no patient data in the SR (the prior's headers anonymized too)
    anon = export_dicom(tmp_path / "anon", volume, result, {}, threshold, source, comparison=comp,
                        prior_source=prior_source, anonymize=True)  # fmt: skip
    _check_valid(anon.paths)
    assert not any(token in anon.sr_path.read_bytes() for token in IDENTIFYING)
    assert findings_from_sr(anon.sr_path, source.frame_of_reference_uid).comparison == report.comparison

    # without a comparison: no change items, no comparison container, the impression still there
    plain = export_dicom(tmp_path / "plain", volume, result, {}, threshold, source)
    back = findings_from_sr(plain.sr_path, source.frame_of_reference_uid)
    assert back.comparison is None and all(lf.change is None for lf in back.findings)
    assert back.impression is not None and back.impression.category == build_impression(keyed).category


def _resolved_points(sr):
    """{tracking identifier: (SCOORD3D point, its frame of reference UID)} of the SR's resolved groups."""
    out = {}
    for group in _walk(sr):
        kids = list(group.get("ContentSequence", []))
        texts = [k for k in kids if k.get("ValueType") == "TEXT"]
        ids = [str(k.TextValue) for k in texts if k.ConceptNameCodeSequence[0].CodeValue == "112039"]  # Tracking Id.
        points = [k for k in kids if k.get("ValueType") == "SCOORD3D"]
        if ids and ids[0].startswith("Prior nodule") and points:
            out[ids[0]] = ([float(v) for v in points[0].GraphicData], str(points[0].ReferencedFrameOfReferenceUID))
    return out


def test_resolved_findings_carry_a_location(study, tmp_path):
    """Issue 25: a prior-only finding's group in the SR has a location a reader can go to: the prior
    finding's centre as an SCOORD3D POINT in the prior's frame of reference (the prior's images are
    the SR's other evidence) with a time point context naming the prior; without the prior's frame of
    reference, the prior centre mapped into the current frame through the registration. dciodvfy
    passes, the read-back returns the location and does not take the resolved groups for findings of
    the current study."""
    from dataclasses import replace

    from nodeview.core.followup.compare import compare_findings
    from nodeview.core.followup.registration import Registration, rigid_matrix

    ct, volume, result, threshold = study
    keyed, _ = select_findings(result.findings, {}, threshold)
    prior_dir = write_chest(tmp_path / "prior", seed=1, study_date="20250302")
    prior_volume = open_study(prior_dir)
    prior_source = read_source_series([prior_dir], prior_volume)
    source = read_source_series([ct], volume)
    assert prior_source.frame_of_reference_uid != source.frame_of_reference_uid
    # the patient lay 14 mm further left, 9 mm lower and turned 4 degrees a year before
    reg = Registration(rigid_matrix((0.0, 0.0, 4.0), (14.0, -6.0, -9.0), (0.0, 0.0, 0.0)), "test")
    prior = [replace(f, id=n + 1, center_xyz_mm=tuple(float(v) for v in reg.to_prior(f.center_xyz_mm)))
             for n, f in enumerate(keyed)]  # fmt: skip
    gone = [(-95.5, -40.25, -150.0), (70.0, 30.0, -120.5)]  # where the two resolved nodules were (prior mm)
    prior += [replace(keyed[0], id=len(prior) + 1 + k, center_xyz_mm=c, diameter_mm=4.0 + k, volume_mm3=33.5 + k)
              for k, c in enumerate(gone)]  # fmt: skip
    comp = compare_findings(keyed, prior, reg, volume.patient.study_date, "20250302",
                            prior_series_uid=prior_volume.series_uid)  # fmt: skip
    assert {c.change for c in comp.changes.values()} == {"stable"}
    resolved_ids = [f.id for f in comp.resolved]
    assert resolved_ids == [len(keyed) + 1, len(keyed) + 2]

    out = export_dicom(tmp_path / "with-prior", volume, result, {}, threshold, source, comparison=comp,
                       prior_source=prior_source)  # fmt: skip
    _check_valid(out.paths)
    sr = pydicom.dcmread(out.sr_path)
    points = _resolved_points(sr)
    assert sorted(points) == [f"Prior nodule {i} (resolved)" for i in resolved_ids]
    for i, centre in zip(resolved_ids, gone, strict=True):
        xyz, frame = points[f"Prior nodule {i} (resolved)"]
        np.testing.assert_allclose(xyz, centre, atol=1e-3)  # FL: float32
        assert frame == prior_source.frame_of_reference_uid
    other = sr.PertinentOtherEvidenceSequence[0]  # the images that frame of reference belongs to
    assert other.ReferencedSeriesSequence[0].SeriesInstanceUID == prior_volume.series_uid
    times = [str(i.TextValue) for i in _walk(sr) if i.get("ValueType") == "TEXT"
             and i.ConceptNameCodeSequence[0].CodeValue == "C2348792"]  # fmt: skip
    assert times == ["prior CT 2025-03-02"] * 2  # TID 1502 Time Point, on the resolved groups only
    report = findings_from_sr(out.sr_path, source.frame_of_reference_uid)
    assert len(report.findings) == len(keyed) and report.skipped == 0
    assert [lf.tracking_id for lf in report.findings] == [f"Nodule {f.id}" for f in keyed]
    assert report.comparison is not None
    back = report.comparison.resolved
    assert [r.prior_tracking_id for r in back] == [f"Nodule {i}" for i in resolved_ids]
    for r, centre, k in zip(back, gone, range(2), strict=True):
        assert r.change == "resolved" and r.frame_of_reference_uid == prior_source.frame_of_reference_uid
        np.testing.assert_allclose(r.center_xyz_mm, centre, atol=1e-3)
        assert r.prior_diameter_mm == pytest.approx(4.0 + k) and r.prior_volume_mm3 == pytest.approx(33.5 + k)

    # the prior's frame of reference known without its images (the prior's SR named it)
    named_for = "1.2.826.0.1.3680043.10.1045.7"
    named = export_dicom(tmp_path / "named", volume, result, {}, threshold, source,
                         comparison=replace(comp, prior_frame_of_reference_uid=named_for))  # fmt: skip
    _check_valid(named.paths)
    assert {f for _, f in _resolved_points(pydicom.dcmread(named.sr_path)).values()} == {named_for}

    # not known (only the prior's findings JSON): mapped into the current frame through the registration,
    # where the reader looks on the current images; still not a finding of the current study
    mapped = export_dicom(tmp_path / "mapped", volume, result, {}, threshold, source, comparison=comp)
    _check_valid(mapped.paths)
    report = findings_from_sr(mapped.sr_path, source.frame_of_reference_uid)
    assert len(report.findings) == len(keyed) and report.comparison is not None
    assert len(report.comparison.resolved) == 2
    for r, centre in zip(report.comparison.resolved, gone, strict=True):
        assert r.frame_of_reference_uid == source.frame_of_reference_uid
        np.testing.assert_allclose(r.center_xyz_mm, reg.to_current(centre), atol=1e-3)
        np.testing.assert_allclose(reg.to_prior(r.center_xyz_mm), centre, atol=1e-3)
    names = {i.ConceptNameCodeSequence[0].CodeValue for i in _walk(pydicom.dcmread(mapped.sr_path))
             if "ConceptNameCodeSequence" in i}  # fmt: skip
    assert "C2348792" not in names  # no prior time point: the location is on the current study


def test_sr_written_before_the_malignancy_code_changed_reads_back(study, tmp_path, monkeypatch):
    """SRs NodeView wrote before 2026-12-04 hold the malignancy as DCM "Probability of cancer": still read."""
    ct, volume, result, threshold = study
    keyed, _ = select_findings(result.findings, {}, threshold)
    monkeypatch.setattr(C, "MALIGNANCY", C.MALIGNANCY_LEGACY)
    out = export_dicom(tmp_path, volume, result, {}, threshold, read_source_series([ct], volume))
    monkeypatch.undo()
    sr = hd.sr.srread(out.sr_path)
    group = sr.content.get_planar_roi_measurement_groups()[0]
    assert C.MALIGNANCY_LEGACY.value in {m.name.value for m in group.get_measurements()}
    frame = pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True).FrameOfReferenceUID
    report = findings_from_sr(out.sr_path, frame)
    assert [lf.finding.malignancy for lf in report.findings] == pytest.approx([f.malignancy for f in keyed], abs=1e-5)
