"""PACS networking and the CAD node against a real Orthanc (issue 23). No mocks of DICOM networking.

The round trip: store a synthetic CT (C-STORE) -> query (C-FIND, study and series) -> retrieve
(C-GET into the cache) -> detect -> export SR + SEG -> send them (C-STORE) -> query them back and
retrieve the SR (C-MOVE to NodeView's own storage SCP) -> check its content. The node: Orthanc
sends a study to it (REST ``/modalities/{name}/store``) and the SR arrives in Orthanc; a broken
series fails without stopping the node; an interrupted series is resumed after a restart.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time

import highdicom as hd
import pydicom
import pytest

from nodeview.cli import main
from nodeview.core.errors import Cancelled
from nodeview.core.pacs import (
    AssociationRejectedError,
    ConnectionRefusedPacsError,
    LocalAE,
    PacsNode,
    PacsTimeoutError,
    StudyCache,
    StudyQuery,
    echo,
    find_series,
    find_studies,
    retrieve,
)
from nodeview.core.pacs.node import CadNode

from .dicom_helpers import write_chest
from .orthanc import free_port, start_orthanc, stop_orthanc

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def ports():
    return {"nodeview": free_port(), "node": free_port()}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, ports):
    t0 = time.perf_counter()
    server = start_orthanc(
        tmp_path_factory.mktemp("orthanc"),
        {"nodeview": ["NODEVIEW", "127.0.0.1", ports["nodeview"]], "cadnode": ["CADNODE", "127.0.0.1", ports["node"]]},
    )
    TIMINGS["orthanc start"] = time.perf_counter() - t0
    yield server
    stop_orthanc(server)
    print("\nround-trip timings (s):", json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    return write_chest(tmp_path_factory.mktemp("ct") / "ct")


def _study_uid(ct_dir):
    return str(pydicom.dcmread(next(ct_dir.iterdir()), stop_before_pixels=True).StudyInstanceUID)


def test_echo_and_clear_errors(orthanc, ports):
    local = LocalAE("NODEVIEW", ports["nodeview"])
    assert echo(orthanc.node(), local) < 5
    with pytest.raises(AssociationRejectedError, match="unknown AE"):
        echo(PacsNode("NOSUCHAE", "127.0.0.1", orthanc.dicom_port), local)
    with pytest.raises(ConnectionRefusedPacsError, match="connection refused"):
        echo(PacsNode("X", "127.0.0.1", free_port()), local)
    # a port that takes TCP connections but never speaks DICOM: a timeout, said as such
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        with pytest.raises(PacsTimeoutError, match="within 1 s"):
            echo(PacsNode("X", "127.0.0.1", silent.getsockname()[1]), local, timeout_s=1.0)


def test_cli_echo_exit_codes(orthanc, capsys):
    assert main(["pacs", "echo", "--node", f"127.0.0.1:{orthanc.dicom_port}:{orthanc.aet}"]) == 0
    assert capsys.readouterr().out.startswith(f"C-ECHO 127.0.0.1:{orthanc.dicom_port}:{orthanc.aet}: ok")
    assert main(["pacs", "echo", "--node", f"127.0.0.1:{orthanc.dicom_port}:WRONGAE"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown AE" in err and "\n" not in err
    assert main(["pacs", "echo", "--node", "not-a-node"]) == 2
    assert "HOST:PORT:AET" in capsys.readouterr().err


def test_node_command_starts_answers_and_stops(tmp_path):
    """``nodeview node`` as a process: it listens (C-ECHO answers) and exits 0 on SIGTERM."""
    import signal
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodeview", "node", "--ae", "CADTEST", "--port", str(port), "--work-dir",
         str(tmp_path / "q")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert "NodeView CAD node CADTEST on port" in proc.stdout.readline()
        _wait(lambda: _echo_ok(PacsNode("CADTEST", "127.0.0.1", port)), 30, "the node to answer C-ECHO")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def _echo_ok(node):
    try:
        return echo(node, LocalAE("NODEVIEW", 0), timeout_s=2) > 0
    except Exception:
        return False


def test_round_trip(orthanc, ports, ct, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    node = f"127.0.0.1:{orthanc.dicom_port}:{orthanc.aet}"
    common = ["--node", node, "--ae", "NODEVIEW", "--port", str(ports["nodeview"]), "--cache", str(tmp_path / "cache")]
    study_uid = _study_uid(ct)

    t = time.perf_counter()
    assert main(["pacs", "send", *common, str(ct)]) == 0
    TIMINGS["store CT (80 images)"] = time.perf_counter() - t
    assert "80 of 80 object(s) sent" in capsys.readouterr().err

    t = time.perf_counter()
    assert main(["pacs", "query", *common, "--patient-name", "DOE*", "--date", "20251201-20260131",
                 "--modality", "CT", "--json"]) == 0  # fmt: skip
    TIMINGS["query"] = time.perf_counter() - t
    rows = json.loads(capsys.readouterr().out)
    assert [r["study_uid"] for r in rows] == [study_uid]
    assert rows[0]["n_series"] == 1 and rows[0]["n_images"] == 80 and rows[0]["cached"] is False
    local = LocalAE("NODEVIEW", ports["nodeview"])
    assert find_studies(orthanc.node(), StudyQuery(study_date="20260102-"), local) == []  # date range excludes
    assert find_studies(orthanc.node(), StudyQuery(patient_id="OTHER"), local) == []
    assert find_studies(orthanc.node(), StudyQuery(accession_number="ACC-778899"), local)[0].study_uid == study_uid
    series = find_series(orthanc.node(), study_uid, local)
    assert [(s.modality, s.n_images) for s in series] == [("CT", 80)]

    t = time.perf_counter()
    assert main(["pacs", "retrieve", *common, study_uid, "--method", "get"]) == 0
    TIMINGS["retrieve C-GET"] = time.perf_counter() - t
    out, err = capsys.readouterr()
    folder = out.strip()
    assert "C-GET: 80 instance(s) received, 0 failed" in err
    assert StudyCache(tmp_path / "cache").is_cached(study_uid)
    assert main(["pacs", "query", *common, "--patient-id", "PAT-12345", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["cached"] is True

    t = time.perf_counter()
    export_dir = tmp_path / "export"
    assert main(["detect", folder, "--dicom-out", str(export_dir), "--json", str(tmp_path / "f.json")]) == 0
    TIMINGS["detect + export"] = time.perf_counter() - t
    capsys.readouterr()
    n_findings = len(json.loads((tmp_path / "f.json").read_text())["findings"])

    t = time.perf_counter()
    assert main(["pacs", "send", *common, str(export_dir)]) == 0
    TIMINGS["send SR + SEG"] = time.perf_counter() - t
    assert "2 of 2 object(s) sent" in capsys.readouterr().err

    series = find_series(orthanc.node(), study_uid, local)
    assert sorted(s.modality for s in series) == ["CT", "SEG", "SR"]
    sr_series = next(s for s in series if s.modality == "SR")
    t = time.perf_counter()
    got = retrieve(orthanc.node(), study_uid, tmp_path / "back", local, series_uid=sr_series.series_uid, method="move")
    TIMINGS["retrieve SR C-MOVE"] = time.perf_counter() - t
    assert got.method == "C-MOVE" and got.n_received == 1
    sr = hd.sr.srread(next((tmp_path / "back").rglob("*.dcm")))
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == n_findings > 0
    assert sr.StudyInstanceUID == study_uid
    # no patient data in any log record (pynetdicom's included)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "DOE" not in logged and "PAT-12345" not in logged


def test_retrieve_cancel_leaves_no_cached_study(orthanc, ports, ct, tmp_path):
    local = LocalAE("NODEVIEW", ports["nodeview"])
    study_uid = _study_uid(ct)
    if not find_studies(orthanc.node(), StudyQuery(patient_id="PAT-12345"), local):
        pytest.skip("needs the study stored by test_round_trip")
    seen = []

    def progress(done, total):
        seen.append(done)

    cache = StudyCache(tmp_path / "cache")
    with pytest.raises(Cancelled):
        retrieve(orthanc.node(), study_uid, cache.folder(study_uid), local, method="get", progress=progress,
                 should_stop=lambda: len(seen) >= 3)  # fmt: skip
    assert not cache.is_cached(study_uid)
    n_files = len(list(cache.folder(study_uid).rglob("*.dcm")))
    assert 0 < n_files < 80  # stopped part way
    assert cache.enforce_limit() == [] and not cache.folder(study_uid).exists()  # incomplete leftovers go


def test_cache_limit_and_clear(tmp_path, capsys):
    cache = StudyCache(tmp_path / "c", limit_bytes=2500)
    for n, uid in enumerate(["1.2.3", "1.2.4", "1.2.5"]):
        f = cache.folder(uid) / "1.2" / "x.dcm"
        f.parent.mkdir(parents=True)
        f.write_bytes(b"x" * 1000)
        cache.mark_complete(uid, ["1.2"], 1)
        t = time.time() - 100 + n
        import os

        os.utime(cache.folder(uid) / ".nodeview-cache.json", (t, t))
    cache.touch("1.2.3")  # opened just now: most recently used
    assert cache.enforce_limit() == ["1.2.4"]
    assert cache.is_cached("1.2.3") and cache.is_cached("1.2.5")
    (tmp_path / "c" / "not-ours").mkdir()
    assert main(["pacs", "cache", "--cache", str(tmp_path / "c"), "--clear"]) == 0
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["not-ours"]  # only NodeView's folders


def _wait(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_node_receives_detects_sends_back(orthanc, ports, tmp_path):
    from nodeview.core.io.dicom_write import SeriesSpec, write_series

    local = LocalAE("NODEVIEW", ports["nodeview"])
    good = write_chest(tmp_path / "good", seed=3, patient_id="NODE-1")
    hu = pydicom.dcmread(next(good.iterdir())).pixel_array[None].repeat(3, axis=0).astype("int16") - 1024
    bad = tmp_path / "bad"  # every slice at the same position: the series cannot become a volume
    write_series(hu, bad, SeriesSpec(positions_xyz=[(0.0, 0.0, 0.0)] * 3, patient_id="NODE-2", seed=9))
    events = []
    node = CadNode(tmp_path / "queue", LocalAE("CADNODE", ports["node"]), orthanc.node(), settle_s=2.0,
                   on_event=events.append)  # fmt: skip
    node.start()
    try:
        for folder in (bad, good):
            assert main(["pacs", "send", "--node", f"127.0.0.1:{orthanc.dicom_port}:{orthanc.aet}",
                         str(folder)]) == 0  # fmt: skip
        t = time.perf_counter()
        for folder in (bad, good):
            [found] = orthanc.rest("/tools/lookup", _study_uid(folder).encode(), "POST")
            orthanc.rest("/modalities/cadnode/store", {"Resources": [found["ID"]], "Synchronous": True}, "POST")
        good_uid = _study_uid(good)

        def sr_in_orthanc():
            return [s for s in find_series(orthanc.node(), good_uid, local) if s.modality == "SR"]

        [sr] = _wait(sr_in_orthanc, 240, "the node's SR in Orthanc")
        TIMINGS["node: Orthanc send -> SR back"] = time.perf_counter() - t
        assert any(s.modality == "SEG" for s in find_series(orthanc.node(), good_uid, local))
        _wait(lambda: len(events) >= 2, 60, "both series processed")
        by_status = {e.status: e for e in events}
        assert set(by_status) == {"done", "failed"}, events
        assert "sent to" in by_status["done"].detail
        states = {node.state(k)["status"] for k in node.series_keys()}
        assert states == {"done", "failed"}
        assert all(
            "NODE-" not in json.dumps(node.state(k)) for k in node.series_keys()
        )  # no patient data on disk state
    finally:
        node.stop()


def test_node_resumes_an_interrupted_series(orthanc, ports, tmp_path):
    """A series left "processing" by a crash is processed when the node starts again."""
    ct = write_chest(tmp_path / "ct", seed=5, patient_id="NODE-3")
    ds = pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True)
    key = CadNode.key_of(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
    queue = tmp_path / "queue" / "series" / key
    shutil.copytree(ct, queue / "images")
    (queue / "state.json").write_text(json.dumps({"status": "processing", "study_uid": str(ds.StudyInstanceUID),
                                                  "series_uid": str(ds.SeriesInstanceUID), "modality": "CT",
                                                  "attempts": 1}))  # fmt: skip
    events = []
    node = CadNode(tmp_path / "queue", LocalAE("CADNODE", free_port()), orthanc.node(), settle_s=1.0,
                   on_event=events.append)  # fmt: skip
    node.start()
    try:
        _wait(lambda: events, 240, "the resumed series")
    finally:
        node.stop()
    assert events[0].status == "done", events
    assert node.state(key)["attempts"] == 2
    local = LocalAE("NODEVIEW", ports["nodeview"])
    assert any(s.modality == "SR" for s in find_series(orthanc.node(), str(ds.StudyInstanceUID), local))


def test_node_queue_is_bounded(tmp_path):
    """With max_pending=1, images of a second series are refused (0xA700: the sender retries later)
    while the first is still receiving; images of the accepted series keep coming in."""
    from nodeview.core.pacs import send

    first = write_chest(tmp_path / "a", seed=11)
    second = write_chest(tmp_path / "b", seed=12)
    port = free_port()
    node = CadNode(tmp_path / "queue", LocalAE("CADNODE", port), None, settle_s=600, max_pending=1)
    node.start()
    try:
        target = PacsNode("CADNODE", "127.0.0.1", port)
        files_a = sorted(first.iterdir())
        assert send(target, files_a[:40], LocalAE("NODEVIEW", 0)).n_sent == 40
        refused = send(target, sorted(second.iterdir())[:3], LocalAE("NODEVIEW", 0))
        assert refused.n_sent == 0 and all("0xA700" in line for line in refused.failed)
        assert send(target, files_a[40:], LocalAE("NODEVIEW", 0)).n_sent == 40
        [key] = node.series_keys()
        assert node.state(key)["status"] == "receiving" and len(list((node.series_dir(key) / "images").iterdir())) == 80
    finally:
        node.stop()


def test_find_prior_studies_by_patient_id(orthanc, ports, tmp_path, caplog):
    """Issue 25: the prior in the PACS study list - the patient's earlier studies by PatientID (C-FIND
    on the real Orthanc), newest first; a later study, the current one and another patient's are not
    offered; nothing identifying is logged."""
    import numpy as np

    from nodeview.core.io.dicom_write import SeriesSpec, write_series
    from nodeview.core.pacs import find_prior_studies, send

    caplog.set_level(logging.DEBUG)
    local = LocalAE("NODEVIEW", ports["nodeview"])
    hu = np.full((4, 16, 16), -800, np.int16)
    uids = {}
    for name, date, pid in (("current", "20260101", "PRIOR-PAT-1"), ("prior", "20250302", "PRIOR-PAT-1"),
                            ("older", "20240101", "PRIOR-PAT-1"), ("later", "20270101", "PRIOR-PAT-1"),
                            ("other", "20250601", "PRIOR-PAT-2"), ("wild", "20250601", "PRIOR-PAT-10")):  # fmt: skip
        files = write_series(hu, tmp_path / name, SeriesSpec(study_date=date, patient_id=pid, seed=len(uids) + 40,
                                                             patient_name="PRIOR^PAT"))  # fmt: skip
        assert send(orthanc.node(), files, local).failed == ()
        uids[name] = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    found = find_prior_studies(orthanc.node(), "PRIOR-PAT-1", uids["current"], "20260101", local)
    assert [(r.study_uid, r.date) for r in found] == [(uids["prior"], "20250302"), (uids["older"], "20240101")]
    assert find_prior_studies(orthanc.node(), "PRIOR-PAT-1*", uids["current"], "20260101", local) == []
    assert find_prior_studies(orthanc.node(), "PRIOR-PAT-1", uids["older"], "20240101", local) == []
    assert find_prior_studies(orthanc.node(), "", uids["current"], "20260101", local) == []
    assert "PRIOR-PAT" not in caplog.text and "PRIOR^PAT" not in caplog.text
