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
