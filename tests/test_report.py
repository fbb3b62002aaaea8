"""PNG reports: layout for 0, 1 and 12 findings, key images centred and oriented on pixels,
anonymization (pixels' text, PNG chunks, JSON, file names), overwrite protection, atomic writes,
bundled fonts, and the batch CLI's exit codes."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont
from scipy import ndimage

from nodeview.core.detect.detector import DetectionResult, ModelInfo
from nodeview.core.detect.findings import Finding
from nodeview.core.detect.patches import PatchSpec
from nodeview.core.errors import InputError
from nodeview.core.geometry import Geometry
from nodeview.core.report import render as R
from nodeview.core.volume import PatientInfo, Volume
from nodeview.resources import resources_dir

PATIENT = PatientInfo(
    name="MUSTERMANN^ERIKA",
    patient_id="PAT-12345",
    birth_date="19600101",
    accession_number="ACC-98765",
    study_date="20260101",
)
CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPACING = (2.0, 0.75, 0.7)  # anisotropic: crops must resample to square millimetres
FIRST_INDEX = (32, 60, 70)  # finding 1, voxel index (k, j, i)
MODEL = ModelInfo(
    "model.onnx",
    "test-model",
    "1.2",
    "ab" * 32,
    PatchSpec.from_metadata({"patch_size": "64", "patch_spacing_mm": "0.75", "hu_window": "-1000,400"}),
    0.5,
    {},
)


def _finding(fid: int, centre, diameter: float, score: float, malignancy: float = 0.3) -> Finding:
    c = np.asarray(centre, dtype=float)
    r = diameter / 2
    return Finding(
        id=fid,
        center_xyz_mm=tuple(float(v) for v in c),
        diameter_mm=diameter,
        bbox_min_xyz_mm=tuple(float(v) for v in c - r),
        bbox_max_xyz_mm=tuple(float(v) for v in c + r),
        score=score,
        malignancy=malignancy,
        type="solid",
        volume_mm3=np.pi / 6 * diameter**3,
        long_axis_mm=diameter * 1.1,
        short_axis_mm=diameter * 0.9,
        lung_rads="4A",
        side="left" if c[0] > 0 else "right",
        zone="upper",
        model_diameter_mm=diameter,
    )


@pytest.fixture(scope="module")
def study():
    """64x128x128 voxels of aerated lung (-850 HU) on a flipped (HFP-like) grid with bright spheres:
    12 findings, and three small markers 15 mm to the patient's left, anterior and superior of finding 1."""
    shape = (64, 128, 128)
    g = Geometry(shape, SPACING, (40.0, 50.0, -60.0), np.diag([-1.0, -1.0, 1.0]))
    hu = np.full(shape, -850, dtype=np.int16)
    zz, yy, xx = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, SPACING, strict=True)], indexing="ij")

    def sphere(centre_xyz, diameter, value):
        k, j, i = g.mm_to_index(centre_xyz)
        inside = (zz - k * SPACING[0]) ** 2 + (yy - j * SPACING[1]) ** 2 + (xx - i * SPACING[2]) ** 2
        hu[inside <= (diameter / 2) ** 2] = value

    first = g.index_to_mm(FIRST_INDEX)
    findings = [_finding(1, first, 10.0, 0.97, 0.8)]
    # the others lie far from finding 1's three planes (different slice, row and column)
    others = [(k, j, i) for k in (6, 14, 52, 58) for j, i in ((18, 20), (100, 30), (30, 110))][:11]
    for n, index in enumerate(others, start=2):
        findings.append(_finding(n, g.index_to_mm(index), 6.0, 0.95 - 0.03 * n, 0.1 * (n % 10)))
    for f in findings:
        sphere(f.center_xyz_mm, f.diameter_mm, 100)
    for offset in ((15, 0, 0), (0, -15, 0), (0, 0, 15)):  # left, anterior, superior
        sphere(first + np.asarray(offset, dtype=float), 5.0, 100)
    volume = Volume(hu, g, description="Chest 1.0 B45f", series_uid="1.2.826.0.1.3680043.2.1125.1", patient=PATIENT)
    return volume, findings


def _render(study, n, reviews=None, anonymize=False, threshold=0.5):
    volume, findings = study
    return R.render_report(
        volume, findings[:n], reviews or {}, MODEL, threshold, anonymize=anonymize, created=CREATED, n_candidates=40
    )


def _result(study, n):
    volume, findings = study
    return DetectionResult(tuple(findings[:n]), 40, MODEL, {"detect": 1.0})


# ---- layout ------------------------------------------------------------------------------------
def test_zero_findings_one_page_says_so(study):
    (page,) = _render(study, 0)
    assert page.image.size[0] == R.PAGE_WIDTH and page.image.height <= R.MAX_PAGE_HEIGHT
    assert page.crops == () and page.overview_box is not None
    text = "\n".join(page.texts)
    assert "No findings with nodule score ≥ 0.500." in text and "page 1 of 1" in text


def test_one_finding_one_page_with_four_key_images(study):
    (page,) = _render(study, 1)
    assert page.image.size[0] == R.PAGE_WIDTH and page.image.height <= R.MAX_PAGE_HEIGHT
    assert [c.view for c in page.crops] == ["axial", "coronal", "sagittal", "zoom"]
    assert {c.finding_id for c in page.crops} == {1}
    for c in page.crops:  # inside the page, not overlapping the overview
        x0, y0, x1, y1 = c.box
        assert 0 <= x0 < x1 <= R.PAGE_WIDTH and 0 <= y0 < y1 <= page.image.height
        assert y0 > page.overview_box[3]
    text = "\n".join(page.texts)
    assert R.DISCLAIMER in text and "test-model v1.2" in text and "nodule score ≥ 0.500" in text


def test_twelve_findings_paginate(study):
    pages = _render(study, 12, reviews={2: R.ACCEPTED, 5: R.REJECTED})
    n = len(pages)
    assert n >= 3
    keyed = [f.id for f in study[1] if f.id != 5]
    seen = [c.finding_id for p in pages for c in p.crops]
    assert sorted(set(seen)) == keyed and all(seen.count(i) == 4 for i in keyed)  # 4 images each, once
    assert 5 not in seen  # rejected: listed, no key images
    for k, page in enumerate(pages, start=1):
        assert page.image.size[0] == R.PAGE_WIDTH and page.image.height <= R.MAX_PAGE_HEIGHT
        assert len({c.finding_id for c in page.crops}) <= R.ROWS_PER_PAGE
        text = "\n".join(page.texts)
        assert f"page {k} of {n}" in text and "Research use only, not a diagnosis" in text
        assert "MUSTERMANN, ERIKA" in text  # every page says whose it is
    first = "\n".join(pages[0].texts)
    assert "Rejected by the reader (no key images)" in first and "p. 2" in first and "accepted" in first
    assert "Key images for accepted and unreviewed findings" in first


def test_key_images_centred_on_the_finding_and_oriented(study):
    """Brightest blob at each crop's centre (±1.5 px), round (square mm pixels), and the markers on
    the side the viewer shows them: patient left on the right, anterior and superior up."""
    (page,) = _render(study, 1)
    rgb = np.asarray(page.image).astype(int)
    grey = (rgb.max(axis=2) - rgb.min(axis=2) < 12) & (rgb.mean(axis=2) > 200)  # bright and not a coloured box
    expected = {  # view -> offsets (dx, dy) sign of the markers visible in it
        "axial": [(1, 0), (0, -1)],  # left -> right; anterior -> up
        "coronal": [(1, 0), (0, -1)],  # left -> right; superior -> up
        "sagittal": [(-1, 0), (0, -1)],  # anterior -> left; superior -> up
        "zoom": [],
    }
    for crop in page.crops:
        x0, y0, x1, y1 = crop.box
        labels, n = ndimage.label(grey[y0:y1, x0:x1])
        cx, cy = crop.centre_xy[0] - x0, crop.centre_xy[1] - y0
        at_centre = labels[int(cy), int(cx)]
        assert at_centre > 0, crop.view
        ys, xs = np.nonzero(labels == at_centre)
        assert abs(xs.mean() + 0.5 - cx) <= 1.5 and abs(ys.mean() + 0.5 - cy) <= 1.5, crop.view
        width, height = np.ptp(xs) + 1, np.ptp(ys) + 1
        assert abs(width - height) <= 0.2 * width, (crop.view, width, height)  # round: square mm pixels (2 mm slices)
        assert abs(width * crop.mm_per_px - 10.0) < 1.5, crop.view  # 10 mm across
        centroids = [np.array(c) for c in ndimage.center_of_mass(labels > 0, labels, range(1, n + 1))]
        markers = [(c[1] + 0.5 - cx, c[0] + 0.5 - cy) for c in centroids]
        markers = [m for m in markers if 12.0 < np.hypot(*m) * crop.mm_per_px < 18.0]  # 15 mm away
        signs = sorted((int(np.sign(round(dx / 10))), int(np.sign(round(dy / 10)))) for dx, dy in markers)
        assert signs == sorted(expected[crop.view]), (crop.view, markers)


# ---- anonymization -----------------------------------------------------------------------------
LONG_STRINGS = ["MUSTERMANN^ERIKA", "MUSTERMANN", "PAT-12345", "19600101", "1960-01-01", "ACC-98765"]
ALL_STRINGS = [*LONG_STRINGS, "ERIKA"]


def _png_text_chunks(data: bytes) -> dict[str, str]:
    """Every tEXt, zTXt and iTXt chunk, decompressed."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _tkey, _, text = rest.partition(b"\0")
            out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
    return out


def _assert_no_patient_data(paths, pages):
    for path in paths:
        assert not any(s.lower() in path.name.lower() for s in ALL_STRINGS), path.name
        data = path.read_bytes()
        assert not any(s.lower().encode() in data.lower() for s in LONG_STRINGS), path.name
        if path.suffix == ".png":
            chunks = _png_text_chunks(data)
            joined = "\n".join(f"{k}={v}" for k, v in chunks.items()).lower()
            assert not any(s.lower() in joined for s in ALL_STRINGS), chunks
        else:
            text = data.decode("utf-8").lower()
            assert not any(s.lower() in text for s in ALL_STRINGS)
    drawn = "\n".join(t for p in pages for t in p.texts).lower()
    assert not any(s.lower() in drawn for s in ALL_STRINGS)


def test_anonymized_report_has_no_patient_data_anywhere(study, tmp_path):
    volume, _ = study
    paths = R.write_report(
        tmp_path, volume, _result(study, 12), {3: R.ACCEPTED, 4: R.REJECTED}, 0.5, anonymize=True, created=CREATED
    )
    assert [p.suffix for p in paths] == [".png"] * (len(paths) - 1) + [".json"] and len(paths) >= 4
    pages = _render(study, 12, {3: R.ACCEPTED, 4: R.REJECTED}, anonymize=True)
    assert len(pages) == len(paths) - 1
    _assert_no_patient_data(paths, pages)
    assert "anonymized" in pages[0].texts and "2026-01-01" in pages[0].texts  # study date stays
    doc = json.loads(paths[-1].read_text())
    assert "patient_id" not in doc["study"] and doc["report"]["anonymized"] is True


def test_not_anonymized_shows_patient_in_header_only(study, tmp_path):
    """The counter-check: without --anonymize the header and JSON do carry the patient; the PNG
    chunks and the file name never do."""
    volume, _ = study
    paths = R.write_report(tmp_path, volume, _result(study, 1), {}, 0.5, created=CREATED)
    (page,) = _render(study, 1)
    assert {"MUSTERMANN, ERIKA", "PAT-12345", "1960-01-01"} <= set(page.texts)
    assert json.loads(paths[-1].read_text())["study"]["patient_id"] == "PAT-12345"
    for path in paths:
        assert not any(s.lower() in path.name.lower() for s in ALL_STRINGS)
    chunks = _png_text_chunks(paths[0].read_bytes())
    assert not any(s.lower() in "\n".join(chunks.values()).lower() for s in ALL_STRINGS)


def test_description_with_patient_name_is_redacted(study):
    volume, findings = study
    named = Volume(volume.hu_zyx, volume.geometry, description="CT Mustermann chest", series_uid="9.9", patient=PATIENT)
    stem = R.default_stem(named)
    assert "mustermann" not in stem.lower() and stem.startswith("nodeview-report_20260101_series_")
    (page,) = R.render_report(named, findings[:1], {}, MODEL, 0.5, anonymize=True, created=CREATED)
    assert "(redacted)" in page.texts and not any("mustermann" in t.lower() for t in page.texts)
    assert R.default_stem(volume) == (
        "nodeview-report_20260101_Chest-1.0-B45f_" + hashlib.sha1(volume.series_uid.encode()).hexdigest()[:8]
    )
    with pytest.raises(InputError, match="patient data"):
        R.write_report("/nonexistent", volume, _result(study, 0), {}, 0.5, stem="erika-report", anonymize=True)


# ---- files -------------------------------------------------------------------------------------
def test_png_chunks_and_json_sidecar(study, tmp_path):
    volume, _ = study
    paths = R.write_report(
        tmp_path,
        volume,
        _result(study, 3),
        {1: R.ACCEPTED, 2: R.REJECTED},
        0.5,
        created=CREATED,
        timings={"load": 1.0, "detect": 2.5},
    )
    chunks = _png_text_chunks(paths[0].read_bytes())
    assert chunks["Software"] == "NodeView 0.1.0" and chunks["nodeview-version"] == "0.1.0"
    assert chunks["model-sha256"] == MODEL.sha256 and "not a diagnosis" in chunks["Disclaimer"]
    assert datetime.fromisoformat(chunks["Creation Time"]) == CREATED
    doc = json.loads(paths[-1].read_text())
    assert doc["schema"] == "nodeview.findings/2" and doc["threshold"] == 0.5
    assert {f["id"]: f["review"] for f in doc["findings"]} == {1: "accepted", 2: "rejected", 3: "unreviewed"}
    assert {"center_xyz_mm", "diameter_mm", "lung_rads", "measurement"} <= set(doc["findings"][0])
    assert doc["report"]["pages"] == [paths[0].name] and doc["timings_s"] == {"load": 1.0, "detect": 2.5}
    with Image.open(paths[0]) as im:
        assert im.size[0] == R.PAGE_WIDTH and im.mode == "RGB"


def test_overwrite_protection_and_no_temporary_files(study, tmp_path):
    volume, _ = study
    json_only, tmp_path = tmp_path / "other", tmp_path / "reports"
    first = R.write_report(tmp_path, volume, _result(study, 12), {}, 0.5, created=CREATED)
    assert len(first) >= 4
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(R.ReportExistsError, match="already exists"):
        R.write_report(tmp_path, volume, _result(study, 1), {}, 0.5, created=CREATED)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched
    json_only.mkdir()
    (json_only / (R.default_stem(volume) + ".json")).write_text("{}")
    with pytest.raises(R.ReportExistsError):
        R.write_report(json_only, volume, _result(study, 1), {}, 0.5)
    # overwrite: the shorter report replaces the old one, its extra pages go
    second = R.write_report(tmp_path, volume, _result(study, 1), {}, 0.5, overwrite=True, created=CREATED)
    assert sorted(tmp_path.iterdir()) == sorted(second) and len(second) == 2
    assert not list(tmp_path.glob("*.tmp-*"))


def test_failed_write_leaves_no_temporary_file_and_no_report(study, tmp_path, monkeypatch):
    volume, _ = study
    real_fsync, calls = R.os.fsync, []

    def full_disk(fd):  # the first page is written, the second hits a full disk
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(R.os, "fsync", full_disk)
    with pytest.raises(R.ReportWriteError, match="No space left"):
        R.write_report(tmp_path, volume, _result(study, 12), {}, 0.5)
    assert list(tmp_path.iterdir()) == []


def test_report_claimed_at_the_rename_rolls_back_a_half_set(study, tmp_path, monkeypatch):
    """Another run claims the JSON name after the early check: this run removes its pages again."""
    import nodeview.core.outputs as O

    volume, _ = study
    real_claim = O._claim

    def racing_claim(tmp, final):
        if final.suffix == ".json":
            final.write_text("{}")  # the other run got there first
        return real_claim(tmp, final)

    monkeypatch.setattr(O, "_claim", racing_claim)
    with pytest.raises(R.ReportExistsError, match="already exists"):
        R.write_report(tmp_path, volume, _result(study, 12), {}, 0.5)
    assert [p.name for p in tmp_path.iterdir()] == [R.default_stem(volume) + ".json"]  # only the other run's


def test_pages_left_by_a_killed_run_do_not_block_a_rerun(study, tmp_path):
    import os
    import time

    volume, _ = study
    stem = R.default_stem(volume)
    orphan = tmp_path / f"{stem}.png"
    orphan.write_bytes(b"half")
    hidden_tmp = tmp_path / f".{stem}.json.nodeview-tmp-999999-0123abcd"  # a killed run's temporary file
    hidden_tmp.write_bytes(b"x")
    with pytest.raises(R.ReportExistsError):  # too fresh: maybe another run is writing it right now
        R.write_report(tmp_path, volume, _result(study, 1), {}, 0.5)
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    written = R.write_report(tmp_path, volume, _result(study, 1), {}, 0.5)
    assert sorted(tmp_path.iterdir()) == sorted(written) and orphan.read_bytes() != b"half"


def test_fonts_are_bundled_truetype(monkeypatch, tmp_path):
    font = R.load_font(18, bold=True)
    assert isinstance(font, ImageFont.FreeTypeFont)
    assert Path(font.path).parent == resources_dir() / "fonts" and font.getname()[0] == "DejaVu Sans"
    assert (resources_dir() / "fonts" / "LICENSE-DejaVu.txt").is_file()
    monkeypatch.setenv("NODEVIEW_RESOURCES", str(tmp_path))
    with pytest.raises(R.FontMissingError, match="DejaVuSans"):
        R.load_font(18)


def test_characters_the_font_lacks_become_question_marks_not_boxes(study):
    volume, findings = study
    cjk = Volume(volume.hu_zyx, volume.geometry, patient=PatientInfo(name="YAMADA^TARO=山田^太郎", patient_id="ID-山1"))
    (page,) = R.render_report(cjk, findings[:0], {}, MODEL, 0.5, anonymize=False, created=CREATED)
    assert "YAMADA, TARO" in page.texts and "ID-?1" in page.texts  # the ideographic group is not shown
    assert not any("山" in t for t in page.texts) and "≥" in "".join(page.texts)  # DejaVu has ≥


def test_unknown_review_status_is_refused(study):
    with pytest.raises(ValueError, match="review status"):
        _render(study, 1, reviews={1: "maybe"})


# ---- batch CLI ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dicom_studies(tmp_path_factory):
    pytest.importorskip("onnx")
    from nodeview.core.io.dicom_write import SeriesSpec, write_series

    from .test_detector import make_model

    root = tmp_path_factory.mktemp("batch")
    hu = np.full((16, 64, 64), -850, dtype=np.int16)
    hu[6:10, 28:36, 28:36] = 40
    for n in (1, 2):
        write_series(
            hu,
            root / f"study{n}",
            SeriesSpec(
                spacing_zyx=(2.0, 1.0, 1.0),
                origin_xyz=(-32.0, -32.0, -16.0),
                seed=n,
                series_description=f"Study {n}",
                patient_name="MUSTERMANN^ERIKA",
                patient_id="PAT-12345",
            ),
        )
    (root / "broken").mkdir()
    (root / "broken" / "note.txt").write_text("not a scan")
    return root, make_model(root / "m.onnx")


@pytest.fixture
def fast_detect(monkeypatch):
    """The detector's flow without its (slow, toy-model) work: one finding at the study's centre."""
    import nodeview.core.detect.detector as D

    def detect(self, volume, progress=lambda d, n: None, should_stop=lambda: False, **kwargs):
        progress(100, 100)
        finding = _finding(1, volume.geometry.center_mm(), 8.0, 0.9)
        return DetectionResult((finding,), 5, self.info, {}, D.detection_caveats(volume, self.info))

    monkeypatch.setattr(D.Detector, "detect", detect)


def test_batch_reports_continue_after_a_bad_study_and_exit_2(dicom_studies, fast_detect, tmp_path, capsys):
    from nodeview.cli import main

    root, model = dicom_studies
    out = tmp_path / "reports"
    args = [
        "detect",
        str(root / "study1"),
        str(root / "broken"),
        str(root / "study2"),
        "--model",
        str(model),
        "--report-dir",
        str(out),
        "--anonymize",
    ]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "[2/3]" in captured.err and "FAILED" in captured.err and "2 of 3 report(s) written" in captured.err
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and len(list(out.glob("*.json"))) == 2
    assert sorted(Path(p) for p in captured.out.split()) == sorted(out.iterdir())
    for p in out.iterdir():
        assert b"PAT-12345" not in p.read_bytes() and b"MUSTERMANN" not in p.read_bytes()
    assert "PAT-12345" not in captured.err + captured.out and "MUSTERMANN" not in captured.err + captured.out
    # again: the reports exist -> each study fails unless --overwrite
    good = ["detect", str(root / "study1"), str(root / "study2"), "--model", str(model), "--report-dir", str(out)]
    assert main(good) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*good, "--overwrite"]) == 0
    assert main(["detect", str(root / "study1"), "--model", str(model), "--report-dir", str(tmp_path / "new")]) == 0


def test_batch_internal_error_exit_1_and_usage_errors(dicom_studies, monkeypatch, tmp_path, capsys):
    import nodeview.core.detect.detector as D
    from nodeview.cli import main

    root, model = dicom_studies

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(D.Detector, "detect", boom)
    assert main(["detect", str(root / "study1"), "--model", str(model), "--report-dir", str(tmp_path)]) == 1
    assert "internal error" in capsys.readouterr().err
    for bad in (["--report-dir", str(tmp_path), "--json", str(tmp_path / "x.json")], ["--overwrite"]):
        with pytest.raises(SystemExit) as exc:
            main(["detect", str(root / "study1"), "--model", str(model), *bad])
        assert exc.value.code == 2


# ---- caveats ------------------------------------------------------------------------------------
def test_thick_slices_get_a_caveat_in_the_report_and_json(study, tmp_path):
    import dataclasses

    from nodeview.core.detect.detector import detection_caveats

    volume, findings = study
    assert detection_caveats(volume, MODEL) == ()  # 2 mm slices: nothing to say
    thick = dataclasses.replace(volume, slice_thickness_mm=5.0)
    (generic,) = detection_caveats(thick, MODEL)  # no per-slice figures in this model's metadata
    assert generic.startswith("Slices are 5 mm thick") and "2.5 mm" in generic and "CPM" not in generic
    by_slice = {"<= 2.5 mm": {"cpm": 0.743}, "> 2.5 mm": {"cpm": 0.404}}
    measured = dataclasses.replace(MODEL, metadata={**MODEL.metadata, "metrics_test": json.dumps({"cpm_by_slice": by_slice})})
    (caveat,) = detection_caveats(thick, measured)
    assert "(test CPM 0.40, against 0.74 on thinner slices)" in caveat
    broken = dataclasses.replace(MODEL, metadata={**MODEL.metadata, "metrics_test": "not json"})
    assert detection_caveats(thick, broken) == (generic,)

    result = DetectionResult(tuple(findings[:2]), 40, MODEL, {"detect": 1.0}, (caveat,))
    paths = R.write_report(tmp_path, thick, result, {}, 0.5, created=CREATED)
    assert json.loads(paths[-1].read_text())["caveats"] == [caveat]
    pages = R.render_report(thick, findings[:2], {}, MODEL, 0.5, anonymize=False, created=CREATED, caveats=(caveat,))
    text = " ".join(pages[0].texts)
    assert "Caution:" in text and "thinner slices" in text
    plain = R.render_report(thick, findings[:2], {}, MODEL, 0.5, anonymize=False, created=CREATED)
    assert "Caution:" not in " ".join(plain[0].texts)


def test_batch_reports_say_the_thick_slice_caution(dicom_studies, fast_detect, tmp_path, capsys):
    from nodeview.cli import main
    from nodeview.core.io.dicom_write import SeriesSpec, write_series

    root, model = dicom_studies
    hu = np.full((8, 64, 64), -850, dtype=np.int16)
    write_series(hu, tmp_path / "thick", SeriesSpec(spacing_zyx=(5.0, 1.0, 1.0), origin_xyz=(-32.0, -32.0, -20.0)))
    args = ["detect", str(root / "study1"), str(tmp_path / "thick"), "--model", str(model), "--report-dir",
            str(tmp_path / "out")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("caution: Slices are 5 mm thick") == 1  # the 2 mm study gets none
    docs = [json.loads(p.read_text())["caveats"] for p in (tmp_path / "out").glob("*.json")]
    thick = sorted(sum("mm thick" in c for c in caveats) for caveats in docs)
    assert thick == [0, 1]  # and in the sidecars: none for the 2 mm study, one for the 5 mm one
    # the loader's own warning (8 slices are too few) travels with the 5 mm study too
    assert sum(any("Only 8 slices" in c for c in caveats) for caveats in docs) == 1


def test_report_says_what_the_malignancy_score_was_trained_on(study):
    import dataclasses

    volume, findings = study
    meaning = "LIDC-IDRI readers' max-voting malignancy rating (1-5): >= 4 malignant, <= 2 benign. Not pathology"
    model = dataclasses.replace(MODEL, metadata={**MODEL.metadata, "malignancy_label": meaning})
    assert model.malignancy_meaning == meaning
    text = " ".join(R.render_report(volume, findings[:1], {}, model, 0.5, anonymize=True, created=CREATED)[0].texts)
    assert "Malignancy score: the model's estimate; its training label: LIDC-IDRI readers'" in text
    assert "Not pathology." in text
    plain = " ".join(R.render_report(volume, findings[:1], {}, MODEL, 0.5, anonymize=True, created=CREATED)[0].texts)
    assert "training label" not in plain  # a file that does not say gets no such line
