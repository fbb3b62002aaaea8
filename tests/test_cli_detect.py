"""``nodeview detect``: JSON schema, thresholds, anonymization, exit codes."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnx")

from nodeview.cli import main
from nodeview.core.io.dicom_write import SeriesSpec, write_series

from .test_candidates import _chest
from .test_detector import GOOD_META, make_model


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("detect")
    hu, g, _, _, _ = _chest(0)
    write_series(hu, root / "ct", SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz),
                                            patient_id="PAT-12345", patient_name="DOE^JANE"))
    model = make_model(root / "m.onnx")
    return root / "ct", model


def test_detect_json_schema(study, tmp_path, capsys):
    ct, model = study
    out = tmp_path / "f.json"
    assert main(["detect", str(ct), "--model", str(model), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "nodeview.findings/2"
    assert set(doc["study"]) == {"series_uid", "modality", "shape_zyx", "spacing_zyx_mm", "patient_id", "study_date"}
    assert doc["study"]["patient_id"] == "PAT-12345"
    assert doc["model"]["name"] == GOOD_META["name"] and doc["threshold"] == 0.5
    assert set(doc["timings_s"]) == {"load", "detect"}
    scores = [f["score"] for f in doc["findings"]]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.5
    assert "Research use only" in capsys.readouterr().err


def test_min_score_zero_lists_every_candidate_and_anonymize(study, tmp_path):
    ct, model = study
    out = tmp_path / "all.json"
    assert main(["detect", str(ct), "--model", str(model), "--json", str(out), "--min-score", "0", "--anonymize"]) == 0
    text = out.read_text()
    doc = json.loads(text)
    assert "patient_id" not in doc["study"] and "PAT-12345" not in text and "DOE" not in text
    strict = tmp_path / "strict.json"
    assert main(["detect", str(ct), "--model", str(model), "--json", str(strict), "--min-score", "0.9"]) == 0
    assert len(doc["findings"]) > len(json.loads(strict.read_text())["findings"])


@pytest.mark.parametrize("case", ["no-model", "bad-model", "bad-input"])
def test_exit_2_with_one_line(study, tmp_path, capsys, case):
    ct, model = study
    args = {
        "no-model": ["detect", str(ct), "--model", str(tmp_path / "missing.onnx")],
        "bad-model": ["detect", str(ct), "--model", str(make_model(tmp_path / "b.onnx", {"name": "x"}))],
        "bad-input": ["detect", str(tmp_path), "--model", str(model)],
    }[case]
    (tmp_path / "note.txt").write_text("x")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nodeview:") and "\n" not in err and "Traceback" not in err


def test_internal_error_exit_1(study, monkeypatch, capsys):
    ct, model = study
    import nodeview.core.detect.detector as D

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(D.Detector, "detect", boom)
    assert main(["detect", str(ct), "--model", str(model)]) == 1
    assert "internal error" in capsys.readouterr().err
