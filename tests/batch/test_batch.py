"""nodeview batch: planning and content keys, the manifest, one study on its own, and a real Dask
LocalCluster of 2 worker processes over 12 small studies (one broken, one worker killed mid-run),
resumed without redoing work, with findings identical to ``nodeview detect``."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nodeview.batch.manifest import COLUMNS, Manifest, write_summary
from nodeview.batch.plan import plan, read_list_file, series_key
from nodeview.batch.worker import MARKER, WorkerOptions, process_study, top_category
from nodeview.cli import DEFAULT_MAX_VOXELS as CLI_MAX_VOXELS
from nodeview.cli import main as cli_main
from nodeview.core.io.dicom import discover

from ..synthetic_series import plain, with_localizer
from .studies import archive, write_broken

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "resources" / "models" / "nodeview-nodule.onnx")
needs_model = pytest.mark.skipif(not os.path.isfile(MODEL), reason="no bundled model")


# ---- planning -----------------------------------------------------------------------------------
def test_content_key_follows_the_images_not_the_path(tmp_path):
    plain(tmp_path / "a" / "s1", seed=1)
    shutil.copytree(tmp_path / "a" / "s1", tmp_path / "b" / "moved")
    keys = {t.source: t.key for t in plan(tmp_path).tasks}
    assert len(plan(tmp_path).tasks) == 1  # the same series twice: one study
    assert len(set(keys.values())) == 1
    key = plan(tmp_path / "a").tasks[0].key
    assert plan(tmp_path / "b").tasks[0].key == key  # moved: same key
    # a file that changes (another size) changes the key
    victim = sorted((tmp_path / "b" / "moved").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"\0\0")
    assert plan(tmp_path / "b").tasks[0].key != key
    series = discover(tmp_path / "a").default_series()
    assert all(fr.sop_instance_uid for fr in series.frames)  # keyed by SOP instance UIDs
    assert series_key(series) == key


def test_plan_leaves_out_localizers_and_lists_problems(tmp_path):
    with_localizer(tmp_path / "tree" / "x")
    found = plan(tmp_path / "tree")
    assert len(found.tasks) == 1 and found.skipped_series == 1 and found.tasks[0].slices > 1
    assert found.tasks[0].source == str(tmp_path / "tree" / "x")
    listing = tmp_path / "studies.txt"
    listing.write_text("# archive\ntree/x\n\nmissing/folder\n")
    assert read_list_file(listing) == [str(tmp_path / "tree/x"), str(tmp_path / "missing/folder")]
    found = plan(listing)
    assert len(found.tasks) == 1 and len(found.problems) == 1
    assert "does not exist" in found.problems[0].reason


def test_manifest_skips_done_keys_and_survives_a_cut_line(tmp_path):
    m = Manifest(tmp_path)
    m.append({"key": "a", "status": "ok", "model_sha256": "m1"})
    m.append({"key": "b", "status": "failed", "model_sha256": "m1", "reason": "x"})
    with open(tmp_path / "manifest.jsonl", "a") as fh:
        fh.write('{"key": "c", "stat')  # a crash mid-write
    again = Manifest(tmp_path)
    assert set(again.records) == {"a", "b"}
    assert again.is_done("a", "m1", False) and not again.is_done("a", "m2", False)  # another model: redo
    assert again.is_done("b", "m1", False) and not again.is_done("b", "m1", True)  # --retry-failed
    assert not again.is_done("c", "m1", False)
    files = write_summary(tmp_path, [again.records["a"], again.records["b"]])
    with open(files[0]) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS) and [r["status"] for r in rows] == ["ok", "failed"]


def test_top_category_and_cli_budget():
    from nodeview.batch.plan import DEFAULT_MAX_VOXELS

    assert top_category(["2", "4A", "3"]) == "4A" and top_category([]) == "" and top_category(["", "1"]) == "1"
    assert CLI_MAX_VOXELS == DEFAULT_MAX_VOXELS


# ---- one study, no cluster ----------------------------------------------------------------------
@needs_model
def test_one_study_outputs_budget_and_foreign_folders(tmp_path):
    plain(tmp_path / "in" / "s", seed=3)
    task = plan(tmp_path / "in").tasks[0]
    opts = WorkerOptions(model=MODEL, out_dir=str(tmp_path / "out"), model_sha256="m", threads=1)
    row = process_study(task, opts)
    assert row["status"] == "ok", row
    folder = tmp_path / "out" / row["output"]
    assert json.loads((folder / MARKER).read_text())["key"] == task.key
    assert (folder / row["report"]).is_file() and list(folder.glob("*.png"))
    assert not any((tmp_path / "out" / ".partial").iterdir())
    # rerun: its own folder is replaced
    assert process_study(task, opts)["status"] == "ok"
    # a folder of that name that is not this study's output is never touched
    other = tmp_path / "out2" / row["output"]
    other.mkdir(parents=True)
    (other / "keep.dcm").write_bytes(b"precious")
    failed = process_study(task, WorkerOptions(model=MODEL, out_dir=str(tmp_path / "out2"), model_sha256="m"))
    assert failed["status"] == "failed" and "not this study's batch output" in failed["reason"]
    assert (other / "keep.dcm").read_bytes() == b"precious" and sorted(os.listdir(other)) == ["keep.dcm"]
    # voxel budget: refused before any pixel is read
    small = WorkerOptions(model=MODEL, out_dir=str(tmp_path / "out3"), model_sha256="m", max_voxels=1000)
    refused = process_study(task, small)
    assert refused["status"] == "failed" and refused["reason"].startswith("too large")
    assert not (tmp_path / "out3").exists() or not any(p.name != ".partial" for p in (tmp_path / "out3").iterdir())


@needs_model
def test_broken_study_is_one_failed_row(tmp_path):
    write_broken(tmp_path / "in" / "b")
    task = plan(tmp_path / "in").tasks[0]
    row = process_study(task, WorkerOptions(model=MODEL, out_dir=str(tmp_path / "out"), model_sha256="m"))
    assert row["status"] == "failed" and "same position" in row["reason"] and "\n" not in row["reason"]


def test_cli_says_when_the_extra_is_missing(tmp_path):
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from nodeview.cli import main\n"
        f"sys.exit(main(['batch', {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "pip install 'nodeview[batch]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_out_inside_the_input_is_refused(tmp_path):
    pytest.importorskip("distributed")
    plain(tmp_path / "in" / "s", seed=1)
    assert cli_main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "in" / "results")]) == 2
    assert not (tmp_path / "in" / "results").exists()


# ---- the Dask run -------------------------------------------------------------------------------
def _executions(trace: Path) -> list[str]:
    return trace.read_text().split("\n")[:-1] if trace.exists() else []


@needs_model
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_dask_batch_kill_resume_retry_and_parity_with_detect(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from nodeview.batch.engine import BatchOptions, run_batch

    root = archive(tmp_path / "archive", chests=2, phantoms=9, broken=1)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("NODEVIEW_BATCH_TRACE", str(trace))  # inherited by the worker processes
    monkeypatch.setenv("NODEVIEW_THREADS", "1")
    out = tmp_path / "out"
    opts = BatchOptions(source=str(root), out_dir=str(out), model=MODEL, threads=1)
    killed: list[int] = []

    def kill_a_busy_worker(row, client):
        if killed:
            return
        pids = client.run(os.getpid)
        busy = [addr for addr, keys in client.processing().items() if keys and addr in pids]
        if busy:
            killed.append(pids[busy[0]])
            os.kill(pids[busy[0]], signal.SIGKILL)

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="3GB"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        first = run_batch(opts, client=client, on_result=kill_a_busy_worker)
        assert killed, "no worker was busy to kill"
        assert first.planned == 12 and first.ran == 12 and len(first.rows) == 12
        assert first.ok == 11 and first.failed == 1
        broken = [r for r in first.rows if r["status"] == "failed"]
        assert "same position" in broken[0]["reason"]
        runs = _executions(trace)
        keys = [line.split()[0] for line in runs]
        assert set(keys) == {r["key"] for r in first.rows}
        assert str(killed[0]) in {line.split()[1] for line in runs}  # the killed worker had been working
        assert len(keys) >= 12  # the killed worker's study ran again elsewhere

        # every study has its folder; summary CSV and Parquet list all twelve
        for r in first.rows:
            if r["status"] == "ok":
                folder = out / r["output"]
                assert (folder / r["report"]).is_file() and (folder / MARKER).is_file() and list(folder.glob("*.png"))
        with open(out / "summary.csv") as fh:
            table = list(csv.DictReader(fh))
        assert len(table) == 12 and sum(r["status"] == "ok" for r in table) == 11
        chests = [r for r in table if r["slices"] == "80"]
        assert len(chests) == 2 and all(int(r["findings"]) > 0 and r["suggested_category"] for r in chests)
        pq = pytest.importorskip("pyarrow.parquet")
        assert pq.read_table(out / "summary.parquet").num_rows == 12
        assert not (out / ".partial").exists()

        # resumed: nothing to do, nothing done
        trace.unlink()
        again = run_batch(opts, client=client)
        assert again.ran == 0 and again.already_done == 12 and _executions(trace) == []
        assert [r["key"] for r in again.rows] == [r["key"] for r in first.rows]

        # interrupted: the manifest lost its last 3 records; only those 3 studies run again
        lines = (out / "manifest.jsonl").read_text().splitlines()
        lost = [json.loads(line)["key"] for line in lines[-3:]]
        (out / "manifest.jsonl").write_text("\n".join(lines[:-3]) + "\n")
        resumed = run_batch(opts, client=client)
        assert resumed.ran == 3 and sorted(line.split()[0] for line in _executions(trace)) == sorted(lost)
        assert resumed.ok == 11

        # --retry-failed: only the broken study runs again
        trace.unlink()
        retry = run_batch(BatchOptions(**{**opts.__dict__, "retry_failed": True}), client=client)
        assert [line.split()[0] for line in _executions(trace)] == [broken[0]["key"]] and retry.failed == 1

    # the inputs are untouched
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before

    # the same findings as `nodeview detect` on the same study (with every core: thread counts do not matter)
    monkeypatch.delenv("NODEVIEW_THREADS")
    chest = next(r for r in first.rows if r["status"] == "ok" and r["slices"] == 80)
    assert cli_main(["detect", chest["study"], "--json", str(tmp_path / "detect.json")]) == 0
    expected = json.loads((tmp_path / "detect.json").read_text())
    got = json.loads((out / chest["output"] / chest["report"]).read_text())
    for f in got["findings"]:
        assert f.pop("review") == "unreviewed"
    assert got["findings"] == expected["findings"] and len(expected["findings"]) > 0
    assert got["model"] == expected["model"] and got["threshold"] == expected["threshold"]


def test_importing_the_package_loads_neither_dask_nor_qt_nor_torch():
    code = (
        "import sys, nodeview.batch, nodeview.batch.worker\n"
        "bad = [m for m in ('distributed', 'dask', 'PySide6', 'pyqtgraph', 'torch') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_model
def test_dicom_sr_and_seg_beside_the_report_when_the_export_module_exists(tmp_path):
    pytest.importorskip("nodeview.core.export")  # issue 23; detected at run time
    from .studies import write_chest

    write_chest(tmp_path / "in" / "c", seed=0)
    task = plan(tmp_path / "in").tasks[0]
    row = process_study(task, WorkerOptions(model=MODEL, out_dir=str(tmp_path / "out"), model_sha256="m"))
    assert row["status"] == "ok" and not row["reason"].startswith("no DICOM"), row
    names = row["dicom"]
    assert any(n.endswith("_SR.dcm") for n in names) and any(n.endswith("_SEG.dcm") for n in names)
    assert all((tmp_path / "out" / row["output"] / n).is_file() for n in names)
