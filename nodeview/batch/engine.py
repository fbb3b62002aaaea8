"""Run a batch on Dask distributed: plan, skip what the manifest has, map the rest, collect, summarise.

One code path for every engine: ``--workers N`` starts a :class:`distributed.LocalCluster` of N
worker processes, ``--scheduler tcp://HOST:8786`` connects to a running cluster, and neither
starts a LocalCluster sized to this machine. Each study is one task
(:func:`.worker.process_study`), mapped with ``retries`` so that a study whose worker process
died (killed, out of memory) runs again elsewhere; a study that fails by itself comes back as a
``failed`` row and is not retried.

Threads: a local worker runs one study at a time (one Dask thread) and gives it ``cores // N``
threads for onnxruntime and the array pool (``NODEVIEW_THREADS``, ``OMP_NUM_THREADS``), so N
workers use the cores once. On a remote cluster ``--threads`` sets the same, else each worker
takes its cores divided by its Dask threads (:class:`NodeViewWorkerPlugin`).

Memory: each local worker gets ``memory_limit`` (default: the machine's memory shared out);
Dask restarts a worker that passes it, and a series above the voxel budget is refused before
its pixels are read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import InputError, NodeViewError
from .manifest import FAILED, OK, Manifest, write_summary
from .plan import DEFAULT_MAX_VOXELS, Plan, plan
from .worker import PARTIAL, WorkerOptions, process_study

log = logging.getLogger(__name__)
GIB = 1 << 30
#: memory a local worker is planned with when --workers is not given (a 300-slice scan peaks well below)
WORKER_MEMORY = 3 * GIB
EXTRA_MESSAGE = "nodeview batch needs the optional 'batch' extra (Dask distributed): pip install 'nodeview[batch]'"


def require_dask() -> None:
    """Raise a one-line :class:`NodeViewError` when Dask distributed is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise NodeViewError(EXTRA_MESSAGE) from exc


@dataclass(frozen=True)
class BatchOptions:
    source: str
    out_dir: str
    model: str
    workers: int | None = None
    scheduler: str | None = None
    retry_failed: bool = False
    anonymize: bool = False
    min_score: float | None = None
    max_voxels: int = DEFAULT_MAX_VOXELS
    memory_limit: str | int = "auto"
    threads: int = 0
    dashboard: bool = False
    export_dicom: bool = True
    retries: int = 2


@dataclass
class BatchResult:
    planned: int
    already_done: int
    ran: int
    ok: int
    failed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def all_ok(self) -> bool:
        return all(r.get("status") == OK for r in self.rows)


def local_layout(workers: int | None, cores: int | None = None, memory: int | None = None) -> tuple[int, int]:
    """``(worker processes, threads per study)`` for this machine: N workers share the cores once."""
    cores = cores or os.cpu_count() or 1
    if workers is None:
        if memory is None:
            try:
                import psutil

                memory = int(psutil.virtual_memory().total)
            except ImportError:
                memory = 8 * GIB
        workers = max(1, min(cores, memory // WORKER_MEMORY))
    workers = max(1, workers)
    return workers, max(1, cores // workers)


class Progress:
    """``batch: 5/12 done, 1 failed, 7 remaining, 3.4 studies/min`` on stderr (redrawn on a terminal)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.ok = self.failed = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def rate(self) -> float:
        minutes = (time.perf_counter() - self.t0) / 60
        return self.done / minutes if minutes > 0 else 0.0

    def line(self) -> str:
        return (
            f"batch: {self.done}/{self.total} done, {self.failed} failed, {self.total - self.done} remaining, "
            f"{self.rate():.1f} studies/min"
        )

    def update(self, row: dict[str, Any]) -> None:
        if row.get("status") == OK:
            self.ok += 1
        else:
            self.failed += 1
        if self.tty:
            self.stream.write(f"\r{self.line()}\x1b[K")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            outcome = "ok" if row.get("status") == OK else f"FAILED: {row.get('reason', '')}"
            self.stream.write(f"{self.line()}  [{row.get('study', '')}: {outcome}]\n")
        self.stream.flush()


def _check_out_dir(opts: BatchOptions) -> Path:
    out = Path(opts.out_dir).resolve()
    src = Path(opts.source).resolve()
    if out == src or (src.is_dir() and src in out.parents):
        raise InputError(f"--out {opts.out_dir} holds the input: choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {opts.out_dir} is a file")
    return out


def _client_for(opts: BatchOptions, log_stream: TextIO) -> tuple[Any, Any, int]:
    """``(client, cluster or None, threads per study)``."""
    from distributed import Client, LocalCluster

    if opts.scheduler:
        client = Client(opts.scheduler, timeout="30s")
        return client, None, opts.threads
    workers, threads = local_layout(opts.workers)
    threads = opts.threads or threads
    env = {k: str(threads) for k in ("NODEVIEW_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=opts.memory_limit,
        dashboard_address=":8787" if opts.dashboard else None,
        env=env,
        silence_logs=logging.ERROR,
    )
    print(
        f"batch: local cluster of {workers} worker process(es), 1 study at a time each, {threads} thread(s) per study",
        file=log_stream,
    )
    return Client(cluster), cluster, threads


def _model_id(model: str) -> tuple[str, float]:
    """Load the model once here (a bad model stops the batch before any study): its id and threshold."""
    from ..core.detect.detector import Detector

    info = Detector(model, threads=1).info
    rr = f"+{info.reranker.name}:{info.reranker.version}" if info.reranker is not None else ""
    return f"{info.sha256}{rr}", info.threshold


def run_batch(
    opts: BatchOptions,
    client: Any = None,
    on_result: Callable[[dict[str, Any], Any], None] | None = None,
    stream: TextIO | None = None,
) -> BatchResult:
    """Run the batch; ``client``: an existing :class:`distributed.Client` (else one is made from
    ``opts``); ``on_result(row, client)`` after each study (progress hooks, tests)."""
    require_dask()
    out = _check_out_dir(opts)
    with _locked(out):
        _clean_partial(out)
        return _run(opts, out, client, on_result, stream or sys.stderr)


def _run(
    opts: BatchOptions,
    out: Path,
    client: Any,
    on_result: Callable[[dict[str, Any], Any], None] | None,
    log_stream: TextIO,
) -> BatchResult:
    from distributed import as_completed

    t0 = time.perf_counter()
    model_id, _ = _model_id(opts.model)
    found: Plan = plan(opts.source)
    manifest = Manifest(out)
    todo = [t for t in found.tasks if not manifest.is_done(t.key, model_id, opts.retry_failed)]
    already = len(found.tasks) - len(todo)
    print(
        f"batch: {len(found.tasks)} series found in {found.files} file(s) ({found.skipped_series} localizer/non-CT "
        f"left out, {len(found.problems)} input problem(s)); {already} already done (manifest), {len(todo)} to run",
        file=log_stream,
    )
    rows_now: dict[str, dict[str, Any]] = {}
    own_client = cluster = None
    progress = Progress(len(todo), log_stream)
    if todo:
        wopts = WorkerOptions(
            model=os.path.abspath(opts.model),
            out_dir=str(out),
            model_sha256=model_id,
            threads=opts.threads,
            anonymize=opts.anonymize,
            min_score=opts.min_score,
            max_voxels=opts.max_voxels,
            export_dicom=opts.export_dicom,
        )
        out.mkdir(parents=True, exist_ok=True)
        if client is None:
            own_client, cluster, threads = _client_for(opts, log_stream)
            client = own_client
            wopts = replace(wopts, threads=threads)
            if opts.scheduler or opts.dashboard:
                with contextlib.suppress(Exception):  # no dashboard (bokeh missing)
                    print(f"batch: Dask dashboard {client.dashboard_link}", file=log_stream)
        futures: list[Any] = []
        try:
            from .dask_plugin import NodeViewWorkerPlugin

            client.register_plugin(NodeViewWorkerPlugin(wopts.model, wopts.threads))
            run = uuid.uuid4().hex[:8]
            futures = client.map(
                process_study,
                todo,
                opts=wopts,
                key=[f"nodeview-study-{t.key[:16]}-{run}" for t in todo],
                retries=opts.retries,
                pure=False,
            )
            by_key = {f.key: t for f, t in zip(futures, todo, strict=True)}
            for future in as_completed(futures):
                task = by_key[future.key]
                try:
                    row = future.result()
                except Exception as exc:  # the worker process was lost more often than allowed
                    row = {
                        "key": task.key,
                        "study": task.short if opts.anonymize else task.source,
                        "slices": task.slices or "",
                        "model_sha256": model_id,
                        "status": FAILED,
                        "reason": f"worker lost: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    }
                row["model_sha256"] = model_id
                manifest.append(row)
                rows_now[task.key] = row
                progress.update(row)
                future.release()
                if on_result is not None:
                    on_result(row, client)
        except KeyboardInterrupt:
            if futures:
                client.cancel(futures)
            print(
                f"\nbatch: interrupted; {progress.done} finished and recorded. Run the same command to continue.",
                file=log_stream,
            )
            raise
        finally:
            if own_client is not None:
                own_client.close()
            if cluster is not None:
                cluster.close()
            _clean_partial(out)
    rows = [rows_now.get(t.key) or manifest.records.get(t.key) or {} for t in found.tasks]
    rows += [
        {"key": p.key, "study": p.key[:12] if opts.anonymize else p.source, "status": FAILED, "reason": p.reason}
        for p in found.problems
    ]
    summary = write_summary(out, rows)
    ok = sum(1 for r in rows if r.get("status") == OK)
    result = BatchResult(
        planned=len(found.tasks),
        already_done=already,
        ran=len(todo),
        ok=ok,
        failed=len(rows) - ok,
        rows=rows,
        summary=summary,
        seconds=time.perf_counter() - t0,
    )
    rate = f", {progress.rate():.1f} studies/min" if todo else ""
    print(
        f"batch: {ok} ok, {result.failed} failed of {len(rows)}; summary in {summary[0]}{rate}",
        file=log_stream,
    )
    return result


def _clean_partial(out: Path) -> None:
    """Remove ``OUT/.partial`` (what a worker killed mid-study left; no study of this run is running)."""
    shutil.rmtree(out / PARTIAL, ignore_errors=True)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` for the run: a second batch into the same folder is refused."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows: no lock
            pass
        except OSError as exc:
            raise InputError(f"another nodeview batch is writing to {out}") from exc
        yield


__all__ = ["EXTRA_MESSAGE", "BatchOptions", "BatchResult", "Progress", "local_layout", "require_dask", "run_batch"]
