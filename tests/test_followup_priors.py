"""Issue 25: the prior found automatically - beside the current study on disk (same PatientID,
earlier StudyDate) and ``nodeview detect CURRENT --prior auto``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nodeview.cli import main
from nodeview.core.followup.priors import find_local_priors
from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.io.study import open_study

from .test_candidates import _chest

PATIENT = {"patient_id": "PAT-777", "patient_name": "ROE^RICHARD"}


def _small(folder, date, seed, **spec):
    hu = np.full((6, 24, 24), -800, np.int16)
    write_series(hu, folder, SeriesSpec(study_date=date, seed=seed, **{**PATIENT, **spec}))
    return folder


def test_local_priors_same_patient_earlier_newest_first(tmp_path):
    root = tmp_path / "patient"
    current = _small(root / "s2026" / "ct", "20260301", 1)
    _small(root / "s2025" / "ct", "20250302", 2)
    _small(root / "s2024" / "ct", "20240115", 3)
    _small(root / "s2024" / "ct-thin", "20240115", 4)  # the same day, another series: one offer per date
    _small(root / "s2027" / "ct", "20270101", 5)  # later: not a prior
    _small(root / "other" / "ct", "20250101", 6, patient_id="PAT-999")  # another patient
    volume = open_study(current)
    found = find_local_priors([current], volume.patient, volume.series_uid)
    assert [c.study_date for c in found] == ["20250302", "20240115"]
    assert found[0].path == str((root / "s2025" / "ct").resolve())
    assert open_study([found[0].path], series_uid=found[0].series_uid).patient.study_date == "20250302"
    assert found[0].label == "2025-03-02, 6 images"
    assert all("PAT" not in c.label and "ROE" not in c.label for c in found)
    # opened from the patient folder itself (several studies in it): the same offers
    assert [c.study_date for c in find_local_priors([root / "s2026"], volume.patient, volume.series_uid)] == [
        "20250302", "20240115"]  # fmt: skip


def test_no_patient_id_or_date_offers_nothing(tmp_path):
    current = _small(tmp_path / "a" / "ct", "20260301", 1, patient_id="")
    _small(tmp_path / "b" / "ct", "20250301", 2, patient_id="")
    volume = open_study(current)
    assert find_local_priors([current], volume.patient, volume.series_uid) == []
    nodate = _small(tmp_path / "c" / "ct", "", 3)
    volume = open_study(nodate)
    assert find_local_priors([nodate], volume.patient, volume.series_uid) == []


@pytest.fixture(scope="module")
def patient_folder(tmp_path_factory):
    pytest.importorskip("onnx")
    from .test_detector import make_model

    root = tmp_path_factory.mktemp("auto")
    hu, g, _, _, _ = _chest(0)
    geo = {"spacing_zyx": tuple(g.spacing_zyx), "origin_xyz": tuple(g.origin_xyz)}
    for name, date, seed in (("current", "20260301", 11), ("prior", "20250301", 12), ("older", "20230301", 13)):
        write_series(hu, root / "patient" / name, SeriesSpec(study_date=date, seed=seed, **PATIENT, **geo))
    write_series(hu, root / "patient" / "someone-else", SeriesSpec(study_date="20251201", seed=14, patient_id="X-1",
                                                                   **geo))  # fmt: skip
    return root / "patient", make_model(root / "m.onnx")


def test_detect_prior_auto(patient_folder, tmp_path, capsys):
    folder, model = patient_folder
    out = tmp_path / "out.json"
    assert main(["detect", str(folder / "current"), "--model", str(model), "--prior", "auto", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["comparison"]["prior_study_date"] == "2025-03-01" and doc["comparison"]["source"] == "images"
    assert {f["change"] for f in doc["findings"]} == {"stable"} and doc["resolved"] == []
    err = capsys.readouterr().err
    assert "prior found: CT of 2025-03-01" in err and "1 older one(s) not used" in err
    assert "PAT-777" not in err and "ROE" not in err


def test_detect_prior_auto_without_a_prior_exits_2(patient_folder, tmp_path, capsys):
    folder, model = patient_folder
    alone = tmp_path / "alone" / "ct"
    hu = np.full((6, 24, 24), -800, np.int16)
    write_series(hu, alone, SeriesSpec(study_date="20260301", seed=21, **PATIENT))
    assert main(["detect", str(alone), "--model", str(model), "--prior", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nodeview: --prior auto: no earlier study") and "\n" not in err
    assert "PAT-777" not in err


def test_gui_prior_auto_screenshot(patient_folder, tmp_path):
    """``nodeview CURRENT --prior auto --screenshot``: the prior found beside is opened, registered and
    drawn in its three views (the dock's pixels are not blank); with no prior: exit 2, one line."""
    import os
    import subprocess
    import sys

    from PySide6.QtGui import QImage

    folder, _ = patient_folder
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NODEVIEW_SETTINGS_DIR": str(tmp_path / "settings")}
    run = subprocess.run([sys.executable, "-m", "nodeview", str(folder / "current"), "--prior", "auto",
                          "--screenshot", str(out), "--size", "1400x800"], env=env, capture_output=True, text=True,
                         timeout=240)  # fmt: skip
    assert run.returncode == 0, run.stderr
    image = QImage(str(out)).convertToFormat(QImage.Format.Format_Grayscale8)
    w, h = image.width(), image.height()
    grey = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h).reshape(h, -1)[:, :w]
    dock = grey[:, int(w * 0.68) :]  # the prior's three views, right of the current study's
    assert dock.std() > 25 and (dock > 150).mean() > 0.02  # anatomy drawn (bright body, dark lungs)
    assert "PAT-777" not in run.stderr and "ROE" not in run.stderr
    alone = tmp_path / "alone" / "ct"  # (two folders up is this test's own folder: no other study there)
    write_series(np.full((6, 40, 40), -800, np.int16), alone, SeriesSpec(study_date="20260301", seed=31, **PATIENT))
    run = subprocess.run([sys.executable, "-m", "nodeview", str(alone), "--prior", "auto", "--screenshot",
                          str(tmp_path / "none.png")], env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert run.returncode == 2 and "--prior auto: no earlier study" in run.stderr
    assert not (tmp_path / "none.png").exists()
