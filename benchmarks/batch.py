"""Batch detection throughput: studies per minute, ``nodeview batch`` on 1 and 2 Dask workers
against a plain sequential loop, in one run.

    python benchmarks/batch.py [--studies 6] [--workers 1 2] [--model M.onnx] [--keep DIR]

Studies: synthetic chests (80 x 160 x 160, 1.25 x 0.75 x 0.75 mm, six nodules each; the tests'
``_chest``), written once as DICOM series. Each engine processes all of them from scratch into
its own output folder: PNG report + findings JSON per study, as ``nodeview detect --report-dir``
writes them.

* **sequential**: ``nodeview detect S1 S2 ... --report-dir OUT`` in this process (one detector,
  every core for each study), the reference;
* **batch, N workers**: ``run_batch`` with a fresh ``LocalCluster`` of N worker processes (cores
  shared out: ``cores // N`` threads per study), cluster start-up and model loading included.

Prints seconds, studies per minute, the ratio to the sequential loop (run before and after the
batches; the mean of the two is the reference) and the median seconds one study took inside its
worker (without cluster start-up and scheduling). Needs the ``batch``
extra. Always exits 0. Run it on a quiet machine: other processes shift the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_studies(root: Path, n: int) -> list[Path]:
    from tests.batch.studies import write_chest

    folders = []
    for k in range(n):
        folder = root / f"study{k:03d}" / "ct"
        if not folder.is_dir() or not any(folder.iterdir()):
            write_chest(folder, seed=100 + k)
        folders.append(folder)
    return folders


def sequential(folders: list[Path], model: str, out: Path) -> float:
    from nodeview.cli import main

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["detect", *map(str, folders), "--report-dir", str(out), "--model", model])
    seconds = time.perf_counter() - t0
    if code != 0:
        print(f"  sequential loop exited {code}")
    return seconds


def batch(root: Path, model: str, out: Path, workers: int) -> tuple[float, int, float]:
    """(wall seconds, studies ok, median seconds of one study inside its worker)."""
    import statistics

    from nodeview.batch.engine import BatchOptions, run_batch

    t0 = time.perf_counter()
    result = run_batch(
        BatchOptions(source=str(root), out_dir=str(out), model=model, workers=workers), stream=io.StringIO()
    )
    per_study = statistics.median(float(r["seconds"]) for r in result.rows if r.get("seconds") not in (None, ""))
    return time.perf_counter() - t0, result.ok, per_study


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=6)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", default=str(REPO / "resources" / "models" / "nodeview-nodule.onnx"))
    p.add_argument("--keep", help="write the studies here and reuse them next time")
    args = p.parse_args()
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("benchmarks/batch.py needs the batch extra: pip install 'nodeview[batch]'")
        return 0
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nv-batch-bench-"))
    try:
        root = work / "studies"
        t = time.perf_counter()
        folders = write_studies(root, args.studies)
        print(f"{len(folders)} synthetic chest studies (80 x 160 x 160) in {root} ({time.perf_counter() - t:.1f} s)")
        print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
        n = len(folders)
        rows = []
        outputs = work / "outputs"
        shutil.rmtree(outputs, ignore_errors=True)
        # the sequential reference runs first and last: its mean is the reference (the machine's load drifts)
        seq1 = sequential(folders, args.model, outputs / "sequential-1")
        for w in args.workers:
            seconds, ok, per_study = batch(root, args.model, outputs / f"batch-{w}", w)
            rows.append((f"nodeview batch, {w} worker(s)", seconds, ok, per_study))
        seq2 = sequential(folders, args.model, outputs / "sequential-2")
        seq = (seq1 + seq2) / 2
        rows.insert(0, ("sequential loop (detect --report-dir)", seq, n, seq / n))
        print(f"sequential loop runs: {seq1:.1f} s before the batches, {seq2:.1f} s after")
        print(f"{'engine':<40} {'seconds':>8} {'studies/min':>12} {'vs sequential':>14} {'s/study in worker':>18}")
        for name, seconds, ok, per_study in rows:
            rate = 60 * ok / seconds
            print(f"{name:<40} {seconds:8.1f} {rate:12.2f} {seq / seconds:13.2f}x {per_study:18.1f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
