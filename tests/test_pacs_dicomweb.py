"""DICOMweb PACS nodes (issue 23) against a real Orthanc with its DICOMweb plugin (Debian
``orthanc-dicomweb``). No mocks of the networking.

Round trip through the CLI: STOW-RS a synthetic CT -> QIDO-RS finds it (study filters, series) ->
WADO-RS retrieves it into the study cache -> the viewer's loader opens it with the source's voxels ->
detect + export SR/SEG -> STOW-RS them -> QIDO-RS lists them. Then cancel, and the clear errors.
"""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pydicom
import pytest

from nodeview.cli import main
from nodeview.core.errors import Cancelled, InputError
from nodeview.core.io.study import open_study
from nodeview.core.pacs import (
    ConnectionRefusedPacsError,
    DicomWebNode,
    PacsError,
    PacsTimeoutError,
    StudyCache,
    StudyQuery,
    echo,
    find_series,
    find_studies,
    retrieve,
)

from .dicom_helpers import write_chest
from .orthanc import free_port, start_orthanc, stop_orthanc


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-web"), {})
    if not server.dicomweb:
        stop_orthanc(server)
        pytest.skip("Orthanc's DICOMweb plugin is not installed (Debian orthanc-dicomweb; scripts/bootstrap.sh)")
    yield server
    stop_orthanc(server)


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    return write_chest(tmp_path_factory.mktemp("ct-web") / "ct", seed=21)


def test_round_trip(orthanc, ct, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    url = orthanc.dicomweb_url
    common = ["--url", url, "--cache", str(tmp_path / "cache")]
    study_uid = str(pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True).StudyInstanceUID)

    assert main(["pacs", "echo", *common]) == 0
    assert capsys.readouterr().out.startswith(f"QIDO-RS {url}: ok")
    assert main(["pacs", "send", *common, str(ct)]) == 0  # STOW-RS
    assert f"80 of 80 object(s) sent to {url}" in capsys.readouterr().err

    assert main(["pacs", "query", *common, "--patient-name", "DOE*", "--date", "20251201-20260131",
                 "--modality", "CT", "--json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert [r["study_uid"] for r in rows] == [study_uid]
    assert rows[0]["n_series"] == 1 and rows[0]["n_images"] == 80 and rows[0]["cached"] is False
    assert rows[0]["modalities"] == ["CT"]
    node = DicomWebNode(url + "/")
    assert node.url == url  # the trailing slash is dropped
    assert find_studies(node, StudyQuery(study_date="20260102-")) == []  # the date range excludes it
    assert find_studies(node, StudyQuery(patient_id="OTHER")) == []
    assert find_studies(node, StudyQuery(patient_name="NOBODY*")) == []
    assert find_studies(node, StudyQuery(accession_number="ACC-778899"))[0].study_uid == study_uid
    assert [(s.modality, s.n_images) for s in find_series(node, study_uid)] == [("CT", 80)]

    assert main(["pacs", "retrieve", *common, study_uid]) == 0  # WADO-RS
    out, err = capsys.readouterr()
    folder = out.strip()
    assert "WADO-RS: 80 instance(s) received, 0 failed" in err
    cache = StudyCache(tmp_path / "cache")
    assert cache.is_cached(study_uid) and folder == str(cache.folder(study_uid))
    [series_dir] = [p for p in cache.folder(study_uid).iterdir() if p.is_dir()]  # the C-GET layout
    assert len(list(series_dir.glob("*.dcm"))) == 80
    got, source = open_study(folder), open_study(ct)
    np.testing.assert_array_equal(got.hu_zyx, source.hu_zyx)
    np.testing.assert_allclose(got.geometry.origin_xyz, source.geometry.origin_xyz)

    export = tmp_path / "export"
    assert main(["detect", folder, "--dicom-out", str(export)]) == 0
    capsys.readouterr()
    assert main(["pacs", "send", *common, str(export)]) == 0  # the SR and SEG, by STOW-RS
    assert "2 of 2 object(s) sent" in capsys.readouterr().err
    assert sorted(s.modality for s in find_series(node, study_uid)) == ["CT", "SEG", "SR"]
    sr = next(s for s in find_series(node, study_uid) if s.modality == "SR")
    back = retrieve(node, study_uid, tmp_path / "back", series_uid=sr.series_uid)
    assert (back.method, back.n_received, back.n_failed) == ("WADO-RS", 1, 0)
    assert str(pydicom.dcmread(next((tmp_path / "back").rglob("*.dcm"))).Modality) == "SR"
    logged = "\n".join(r.getMessage() for r in caplog.records)  # no patient data in any log record
    assert "DOE" not in logged and "PAT-12345" not in logged


def test_retrieve_cancel_and_refused_objects(orthanc, ct, tmp_path):
    node = DicomWebNode(orthanc.dicomweb_url)
    study_uid = str(pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    if not find_studies(node, StudyQuery(patient_id="PAT-12345")):
        pytest.skip("needs the study stored by test_round_trip")
    seen: list[tuple[int, int]] = []
    cache = StudyCache(tmp_path / "cache")
    with pytest.raises(Cancelled):
        retrieve(node, study_uid, cache.folder(study_uid), progress=lambda d, t: seen.append((d, t)),
                 should_stop=lambda: len(seen) >= 4)  # fmt: skip
    total = seen[0][1]  # the CT's 80 images (+ the SR and SEG test_round_trip sent)
    assert seen[0][0] == 0 and total >= 80 and not cache.is_cached(study_uid)
    assert 0 < len(list(cache.folder(study_uid).rglob("*.dcm"))) < total
    with pytest.raises(InputError, match="WADO-RS"):
        retrieve(node, study_uid, tmp_path / "x", method="get")
    with pytest.raises(PacsError, match="no such series"):
        retrieve(node, study_uid, tmp_path / "x", series_uid="1.2.3.4")


def test_clear_errors(orthanc, capsys):
    with pytest.raises(ConnectionRefusedPacsError, match="connection refused"):
        echo(DicomWebNode(f"http://127.0.0.1:{free_port()}/dicom-web"))
    with pytest.raises(PacsError, match="HTTP 404: no DICOMweb service"):
        echo(DicomWebNode(f"http://127.0.0.1:{orthanc.http_port}/not-dicom-web"))
    with socket.socket() as silent:  # takes TCP connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        with pytest.raises(PacsTimeoutError):
            echo(DicomWebNode(f"http://127.0.0.1:{silent.getsockname()[1]}/dicom-web"), timeout_s=1.0)
    for bad in ("ftp://x/dicom-web", "pacs:8042", "http://h:99999/x", "http://h/x?PatientName=A"):
        with pytest.raises(InputError):
            DicomWebNode(bad)
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    assert main(["pacs", "echo", "--url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert "connection refused" in err and "\n" not in err
    assert main(["pacs", "query", "--url", "not a url"]) == 2
    assert "is not a DICOMweb URL" in capsys.readouterr().err


def test_gui_settings_keep_dicomweb_nodes(orthanc, qtbot, tmp_path):
    """Settings: a row with a URL is a DICOMweb node; saved, loaded back, and the query dialog's Test
    answers with a QIDO-RS request."""
    from PySide6.QtCore import QSettings

    from nodeview.core.pacs import PacsNode
    from nodeview.qt.pacs_dialog import PacsDialog, PacsSettingsDialog, load_nodes

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    dialog = PacsSettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog._add_row("Web", "", "", "", orthanc.dicomweb_url)
    dialog._add_row("Dimse", orthanc.aet, "127.0.0.1", str(orthanc.dicom_port), "")
    dialog._save()
    nodes = load_nodes(settings)
    assert nodes == [DicomWebNode(orthanc.dicomweb_url, "Web"), PacsNode(orthanc.aet, "127.0.0.1", orthanc.dicom_port,
                                                                         "Dimse")]  # fmt: skip
    query = PacsDialog(settings)
    qtbot.addWidget(query)
    with qtbot.waitSignal(query.sigEcho, timeout=20000) as echoed:
        query.test_button.click()
    assert echoed.args[0].startswith("QIDO-RS Web: ok")


def test_qido_key():
    from nodeview.core.pacs.dicomweb import qido_key

    assert qido_key("PAT-1_2.3~x") == "PAT-1_2.3~x"  # URL-safe: as is
    assert qido_key("NV 25^Ö/1") == "NV?25?*?1"
    assert qido_key(" DOE^J* ") == "DOE?J*"  # padding dropped, wildcards kept
    assert qido_key("ÅÄÖ7") == "*7"


#: a PatientID QIDO-RS must carry escaped (space, caret, slash, a non-ASCII letter), and its neighbours
HARD_ID = "NV 25^Ö/1"


def test_find_prior_studies_over_dicomweb(orthanc, tmp_path, caplog):
    """Issue 25: the patient's earlier studies by QIDO-RS on the real Orthanc DICOMweb service, newest
    first: a later study, the current one, another patient's, a case variant and IDs the wider QIDO
    key also matches are not offered; an ID with escaped characters is found; nothing identifying is
    logged."""
    from nodeview.core.io.dicom_write import SeriesSpec, write_series
    from nodeview.core.pacs import find_prior_studies, send

    caplog.set_level(logging.DEBUG)
    node = DicomWebNode(orthanc.dicomweb_url)
    hu = np.full((4, 16, 16), -800, np.int16)
    uids = {}
    for name, date, pid in (
        ("current", "20260101", HARD_ID), ("prior", "20250302", HARD_ID), ("older", "20240101", HARD_ID),
        ("later", "20270101", HARD_ID), ("case", "20250601", "nv 25^ö/1"), ("longer", "20250601", HARD_ID + "0"),
        ("dash", "20250601", "NV-25^Ö/1"), ("other", "20250601", "WEB-PAT-2"),
        ("plain", "20250302", "WEB-PAT-1"), ("plain-now", "20260101", "WEB-PAT-1"), ("plain-10", "20250302", "WEB-PAT-10"),
    ):  # fmt: skip
        files = write_series(hu, tmp_path / name, SeriesSpec(study_date=date, patient_id=pid, seed=len(uids) + 60,
                                                             patient_name="WEB^PRIOR"))  # fmt: skip
        assert send(node, files).failed == ()
        uids[name] = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    found = find_prior_studies(node, HARD_ID, uids["current"], "20260101")
    assert [(r.study_uid, r.date) for r in found] == [(uids["prior"], "20250302"), (uids["older"], "20240101")]
    assert all(r.patient_id == HARD_ID and r.modalities == ("CT",) and r.n_images == 4 for r in found)
    assert find_prior_studies(node, HARD_ID + " ", uids["current"], "20260101") == found  # LO padding
    assert [r.study_uid for r in find_prior_studies(node, "nv 25^ö/1", uids["current"], "20260101")] == [uids["case"]]
    assert find_prior_studies(node, HARD_ID, uids["older"], "20240101") == []
    assert find_prior_studies(node, "", uids["current"], "20260101") == []
    assert find_prior_studies(node, HARD_ID, uids["current"], "") == []
    # the query itself (the Query PACS dialog's): an ID or a name with escaped characters is found
    rows = find_studies(node, StudyQuery(patient_id=HARD_ID))
    assert sorted(r.study_uid for r in rows) == sorted(uids[k] for k in ("current", "prior", "older", "later", "case"))
    assert sorted(r.study_uid for r in find_studies(node, StudyQuery(patient_id="NV 25^Ö/1*", study_date="20250601"))) == sorted(
        uids[k] for k in ("case", "longer"))  # fmt: skip
    assert len(find_studies(node, StudyQuery(patient_name="web^prior", study_date="20250302"))) == 3  # case ignored
    assert find_studies(node, StudyQuery(patient_name="WEB PRIOR")) == []  # ? in the key, not in the answer
    plain = find_prior_studies(node, "WEB-PAT-1", uids["plain-now"], "20260101")
    assert [r.study_uid for r in plain] == [uids["plain"]]
    assert find_prior_studies(node, "WEB-PAT-1*", uids["plain-now"], "20260101") == []  # a wildcard is no ID
    with pytest.raises(ConnectionRefusedPacsError):
        find_prior_studies(DicomWebNode(f"http://127.0.0.1:{free_port()}/dicom-web"), HARD_ID, "1.2", "20260101")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged and "QIDO-RS studies" in logged  # the log was on, and it counts matches only
    for token in ("NV 25", "NV?25", "nv 25", "WEB-PAT", "WEB^PRIOR", "%5E"):
        assert token not in logged


def test_gui_prior_in_the_study_list_over_dicomweb(orthanc, qtbot, tmp_path):
    """File › Query PACS… on a DICOMweb node: selecting a study lists its patient's earlier study
    (QIDO-RS by PatientID) and offers "Retrieve with prior"."""
    from PySide6.QtCore import QSettings

    from nodeview.core.io.dicom_write import SeriesSpec, write_series
    from nodeview.core.pacs import send
    from nodeview.qt.pacs_dialog import PacsDialog, save_nodes

    node = DicomWebNode(orthanc.dicomweb_url, "Web")
    hu = np.full((4, 16, 16), -800, np.int16)
    for seed, (name, date) in enumerate((("now", "20260101"), ("then", "20250302")), start=80):
        files = write_series(hu, tmp_path / name, SeriesSpec(study_date=date, patient_id="GUI-WEB-1", seed=seed))
        assert send(node, files).failed == ()
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    save_nodes(settings, [node])
    dialog = PacsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.id_edit.setText("GUI-WEB-1")
    with qtbot.waitSignal(dialog.sigStudies, timeout=20000) as found:
        dialog.search_button.click()
    assert [s.date for s in found.args[0]] == ["20260101", "20250302"]
    with qtbot.waitSignal(dialog.sigPriors, timeout=20000) as priors:
        dialog.study_table.selectRow(0)
    assert [s.date for s in priors.args[0]] == ["20250302"]
    assert dialog.prior_label.text() == "Prior of this patient on this PACS: 2025-03-02"
    assert dialog.retrieve_prior_button.isEnabled()
