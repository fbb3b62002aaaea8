"""The work of one study, as a Dask worker runs it (plain Python: no Dask import, no Qt).

:func:`process_study` opens the series, runs the detector, renders the report and writes the
study's output folder, and returns its summary row. It never raises for a bad study: any error
becomes a ``failed`` row with a one-line reason, so one broken study cannot stop the batch (only
the loss of the worker process itself reaches Dask, which then reruns the study elsewhere).

One :class:`~nodeview.core.detect.detector.Detector` (one onnxruntime session) per worker process and
model, kept in a module-level cache (:func:`detector_for`); the Dask worker plugin preloads it.

Outputs: ``OUT/<date>_<description>_<key12>/`` holding the PNG report page(s) and the
``nodeview.findings/1`` JSON (:func:`nodeview.core.report.write_report`, the files
``nodeview detect --report-dir`` writes), DICOM SR/SEG when :mod:`nodeview.core.export` exists
(detected at run time; :func:`_export_dicom`),
and ``.nodeview-batch.json`` (the study's key: the folder is the batch's own). The folder is
built under ``OUT/.partial/`` and renamed into place, so a study's folder is complete or absent.
A folder of that name that is not this study's batch output is never touched (the study fails).

``NODEVIEW_BATCH_TRACE=FILE``: each execution appends ``KEY PID`` to FILE (how the tests count
the work done: a resumed batch must not redo a study).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import NodeViewError
from .manifest import FAILED, OK
from .plan import StudyTask

log = logging.getLogger(__name__)

MARKER = ".nodeview-batch.json"
PARTIAL = ".partial"
_CATEGORY_ORDER = ("1", "2", "3", "4A", "4B", "4X")
_detectors: dict[tuple[str, int], Any] = {}
_detectors_lock = threading.Lock()


@dataclass(frozen=True)
class WorkerOptions:
    """What every study of a batch shares (sent with each task)."""

    model: str
    out_dir: str
    model_sha256: str
    threads: int = 0  #: inference/array threads per study (0: NODEVIEW_THREADS, else the worker decides)
    anonymize: bool = False
    min_score: float | None = None
    max_voxels: int = 0  #: 0: no limit
    export_dicom: bool = True  #: SR/SEG when the export module exists


def detector_for(model: str, threads: int) -> Any:
    """The worker's detector for ``model`` (created once per process and thread count)."""
    from ..core.detect.detector import Detector

    with _detectors_lock:
        key = (model, threads)
        if key not in _detectors:
            _detectors[key] = Detector(model, threads=threads or None)
        return _detectors[key]


def loaded_detectors() -> int:
    return len(_detectors)


def _trace(key: str) -> None:
    target = os.environ.get("NODEVIEW_BATCH_TRACE")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"{key} {os.getpid()}\n")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, NodeViewError):
        return text or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {text}" if text else f"internal error: {type(exc).__name__}"


def top_category(categories: list[str]) -> str:
    """The highest Lung-RADS hint among ``categories`` ("" when none)."""
    ranked = [c for c in categories if c in _CATEGORY_ORDER]
    return max(ranked, key=_CATEGORY_ORDER.index) if ranked else ""


def folder_name(stem: str, key: str) -> str:
    """``<date>_<description>_<key12>`` from the report's patient-free stem (see ``default_stem``)."""
    base = re.sub(r"_[0-9a-f]{8}$", "", stem.removeprefix("nodeview-report_"))
    return f"{base}_{key[:12]}"


def _open(task: StudyTask) -> Any:
    from ..core.io.study import open_study, scan

    if not task.series:
        return open_study(list(task.files))
    source = scan(list(task.files))
    assert source.discovery is not None
    discovery = source.discovery
    uid = task.series.split("#")[0]
    for wanted in (task.series, uid):
        with contextlib.suppress(NodeViewError):
            series = discovery.find(wanted)
            break
    else:
        series = discovery.default_series()
    from ..core.io.dicom import load_series

    return load_series(series)


def _export_dicom(
    folder: Path, task: StudyTask, volume: Any, result: Any, threshold: float, anonymize: bool
) -> tuple[list[str], list[str]]:
    """DICOM SR (TID 1500) and SEG through :mod:`nodeview.core.export` (issue 23) when it is installed:
    its ``read_source_series`` and ``export_dicom``. Returns (file names written, notes); nothing
    when the module is absent or the study is not a DICOM series."""
    if importlib.util.find_spec("nodeview.core.export") is None or volume.source_format != "dicom":
        return [], []
    module = importlib.import_module("nodeview.core.export")
    export, read_source = getattr(module, "export_dicom", None), getattr(module, "read_source_series", None)
    if export is None or read_source is None:
        return [], []
    source = read_source(list(task.files), volume)
    done = export(folder, volume, result, {}, threshold, source, anonymize=anonymize)
    return [p.name for p in done.paths], list(getattr(done, "notes", ()))


def _place(staging: Path, final: Path, key: str) -> None:
    """Rename the finished ``staging`` folder to ``final``; replace only this study's own output."""
    if final.exists():
        marker = final / MARKER
        try:
            owner = json.loads(marker.read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != key:
            raise NodeViewError(f"{final.name} exists in the output folder and is not this study's batch output")
        old = final.with_name(f"{PARTIAL}-old-{key[:12]}-{os.getpid()}")
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)


def process_study(task: StudyTask, opts: WorkerOptions) -> dict[str, Any]:
    """Detect, report and write one study; the summary row (status ``ok`` or ``failed``)."""
    from ..core.report.render import default_stem, write_report

    _trace(task.key)
    t0 = time.perf_counter()
    row: dict[str, Any] = {
        "key": task.key,
        "study": task.short if opts.anonymize else task.source,
        "series": "",
        "slices": task.slices or "",
        "model_sha256": opts.model_sha256,
        "status": FAILED,
        "reason": "",
        "output": "",
        "worker_pid": os.getpid(),
    }
    staging = Path(opts.out_dir) / PARTIAL / f"{task.key[:16]}-{os.getpid()}"
    try:
        if opts.max_voxels and task.voxels > opts.max_voxels:
            raise NodeViewError(_too_large(task.voxels, opts.max_voxels))
        threads = opts.threads or int(os.environ.get("NODEVIEW_THREADS", "0") or 0)
        if threads:
            os.environ["NODEVIEW_THREADS"] = str(threads)  # the array thread pool of this process
        detector = detector_for(opts.model, threads)
        t_load0 = time.perf_counter()
        volume = _open(task)
        t_load = time.perf_counter() - t_load0
        voxels = int(volume.hu_zyx.size)
        row["slices"] = int(volume.shape_zyx[0])
        row["series"] = volume.series_uid if not opts.anonymize else task.short
        if opts.max_voxels and voxels > opts.max_voxels:
            raise NodeViewError(_too_large(voxels, opts.max_voxels))
        t1 = time.perf_counter()
        result = detector.detect(volume, min_score=0.0)
        t_detect = time.perf_counter() - t1
        threshold = detector.info.threshold if opts.min_score is None else opts.min_score
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        stem = default_stem(volume)
        write_report(
            staging,
            volume,
            result,
            {},
            threshold,
            stem=stem,
            anonymize=opts.anonymize,
            timings={"load": t_load, "detect": t_detect},
        )
        dicom: list[str] = []
        if opts.export_dicom:
            try:
                dicom, notes = _export_dicom(staging, task, volume, result, threshold, opts.anonymize)
                row["reason"] = "; ".join(notes)
            except Exception as exc:  # the report stands; say why the DICOM objects are missing
                row["reason"] = f"no DICOM SR/SEG: {_one_line(exc)}"
        (staging / MARKER).write_text(json.dumps({"key": task.key, "model_sha256": opts.model_sha256}) + "\n")
        final = Path(opts.out_dir) / folder_name(stem, task.key)
        _place(staging, final, task.key)
        shown = [f for f in result.findings if f.score >= threshold]
        row.update(
            status=OK,
            findings=len(shown),
            top_score=round(max((f.score for f in result.findings), default=0.0), 4),
            top_malignancy=round(max((f.malignancy for f in shown), default=0.0), 4) if shown else "",
            suggested_category=top_category([f.lung_rads for f in shown]),
            output=final.name,
            report=f"{stem}.json",
            dicom=dicom,
        )
    except BaseException as exc:
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not the study's fault
            raise
        row["reason"] = _one_line(exc)
        log.debug("study %s failed", task.short, exc_info=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _too_large(voxels: int, budget: int) -> str:
    return f"too large: {voxels / 1e6:.0f} M voxels, above the budget of {budget / 1e6:.0f} M (--max-voxels)"


__all__ = ["MARKER", "WorkerOptions", "detector_for", "folder_name", "process_study", "top_category"]
