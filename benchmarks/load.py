"""Load-time and peak-memory benchmark: NodeView vs SimpleITK vs a minimal pydicom loader.

Writes a synthetic uncompressed (Explicit VR Little Endian) int16 CT series with shuffled file
names, then times, in the same run and with a warm file cache, reading it back as an int16 HU
``(z, y, x)`` array by:

* ``nodeview``   - ``nodeview.core.io.study.open_study(folder)`` (discovery + load, what the viewer does);
* ``simpleitk``  - ``ImageSeriesReader``: GetGDCMSeriesFileNames + SetOutputPixelType(sitkInt16) +
  Execute + GetArrayFromImage (file name discovery included);
* ``minimal``    - for each file ``pydicom.dcmread`` (full read), ImagePositionPatient z and
  ``pixel_array`` rescaled to int16, sorted by z, ``np.stack`` (the simplest correct loader);
* ``minimal-raw``- the same with a ``stop_before_pixels`` header parse and ``np.fromfile`` of the raw
  pixel bytes at the PixelData offset.

The methods run alternately (the order is reversed on every other repeat); each result is checked
against SimpleITK's array (and the written phantom). Peak memory is measured per method in a fresh
subprocess: increase of the peak RSS (``VmHWM``, reset at the baseline; ``ru_maxrss`` would carry the
parent's peak into the child) above the baseline after imports and a one-file warm-up, and
separately the ``tracemalloc`` peak (Python and numpy allocations; not SimpleITK's C++ buffers).

Run from the repository root::

    .venv/bin/python benchmarks/load.py [--slices 300] [--size 512] [--repeats 5] [--keep DIR]

It always exits 0: the PASS/MISS lines are information, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from nodeview.core.io.dicom_write import SeriesSpec, expected_hu, write_series  # noqa: E402
from nodeview.core.io.study import open_study  # noqa: E402

MB = 1e6  # decimal megabytes: 300 x 512 x 512 x 2 bytes = 157.3 MB
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
TARGET_SPEED_VS_SITK = 1.0
TARGET_SPEED_VS_MINIMAL = 1.5
TARGET_MEMORY_VS_VOLUME = 1.2


# ------------------------------------------------------------------------------------------------
# Synthetic series
# ------------------------------------------------------------------------------------------------
def make_phantom(n_slices: int, size: int, seed: int = 0) -> np.ndarray:
    """Chest-like int16 HU volume: air -1000, body ellipse 40, two lungs -850, spine 400, noise sd 20."""
    rng = np.random.default_rng(seed)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # y: rows (anterior -> posterior), x: columns
    body = (xx / 0.85) ** 2 + (yy / 0.62) ** 2 <= 1.0
    spine = xx**2 + ((yy - 0.42) / 1.1) ** 2 <= 0.09**2
    vol = np.empty((n_slices, size, size), dtype=np.int16)
    for k in range(n_slices):
        zn = 2.0 * k / max(n_slices - 1, 1) - 1.0  # -1 inferior .. 1 superior
        s = float(np.sqrt(max(0.0, 1.0 - ((zn - 0.1) / 0.95) ** 2)))  # lungs taper towards both ends
        img = np.where(body, np.float32(40.0), np.float32(-1000.0))
        if s > 0.05:
            right = ((xx + 0.40) / (0.30 * s)) ** 2 + ((yy + 0.02) / (0.45 * s)) ** 2 <= 1.0  # larger
            left = ((xx - 0.40) / (0.26 * s)) ** 2 + ((yy + 0.02) / (0.42 * s)) ** 2 <= 1.0
            img[right | left] = -850.0
        img[spine] = 400.0
        img += rng.standard_normal((size, size), dtype=np.float32) * np.float32(20.0)
        vol[k] = np.rint(img).astype(np.int16)
    return vol


def series_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def prepare_series(args: argparse.Namespace) -> tuple[Path, np.ndarray | None, bool]:
    """(folder, expected int16 HU or None when an existing series is reused, folder is temporary)."""
    if args.keep:
        folder = Path(args.keep).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        existing = series_files(folder)
        if existing:
            if len(existing) != args.slices:
                sys.exit(f"{folder} holds {len(existing)} files, expected {args.slices}; give an empty folder")
            print(f"Reusing the {len(existing)} files in {folder} (not regenerated, not checked against the phantom)")
            return folder, None, False
        temporary = False
    else:
        folder = Path(tempfile.mkdtemp(prefix="nodeview-bench-"))
        temporary = True
    spec = SeriesSpec(transfer_syntax=EXPLICIT_VR_LE, file_names="shuffled", seed=0)
    t0 = time.perf_counter()
    phantom = make_phantom(args.slices, args.size)
    t1 = time.perf_counter()
    write_series(phantom, folder, spec)
    t2 = time.perf_counter()
    expected = expected_hu(phantom, spec).astype(np.int16)
    print(
        f"Wrote {args.slices} x {args.size} x {args.size} int16 CT series (Explicit VR LE, shuffled names) "
        f"to {folder}: phantom {t1 - t0:.1f} s, writing {t2 - t1:.1f} s"
    )
    return folder, expected, temporary


def warm_file_cache(folder: Path) -> int:
    total = 0
    for p in series_files(folder):
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
    return total


# ------------------------------------------------------------------------------------------------
# The loaders (each returns an int16 HU array, z ascending)
# ------------------------------------------------------------------------------------------------
def load_nodeview(folder: Path) -> np.ndarray:
    return open_study(folder).hu_zyx


def load_simpleitk(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetOutputPixelType(sitk.sitkInt16)
    image = reader.Execute()
    return sitk.GetArrayFromImage(image)


def _to_hu(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    if slope == 1.0 and intercept.is_integer():
        return (stored.astype(np.int32) + int(intercept)).astype(np.int16)
    return np.rint(stored * slope + intercept).astype(np.int16)


def load_minimal(folder: Path) -> np.ndarray:
    slices = []
    for path in series_files(folder):
        ds = pydicom.dcmread(path)
        z = float(ds.ImagePositionPatient[2])
        hu = _to_hu(ds.pixel_array, float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0)))
        slices.append((z, hu))
    slices.sort(key=lambda item: item[0])
    return np.stack([hu for _, hu in slices])


def load_minimal_raw(folder: Path) -> np.ndarray:
    slices = []
    for path in series_files(folder):
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)  # leaves fp at the PixelData tag
            head = fp.read(12)
            if head[:4] != b"\xe0\x7f\x10\x00":
                raise ValueError(f"{path.name}: PixelData not where expected")
            if head[4:6] not in (b"OW", b"OB"):  # implicit VR: 8-byte element header
                fp.seek(-4, os.SEEK_CUR)
            dtype = "<i2" if ds.PixelRepresentation == 1 else "<u2"
            stored = np.fromfile(fp, dtype=dtype, count=ds.Rows * ds.Columns).reshape(ds.Rows, ds.Columns)
        z = float(ds.ImagePositionPatient[2])
        hu = _to_hu(stored, float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0)))
        slices.append((z, hu))
    slices.sort(key=lambda item: item[0])
    return np.stack([hu for _, hu in slices])


METHODS: dict[str, tuple[str, Callable[[Path], np.ndarray]]] = {
    "nodeview": ("(a) NodeView open_study", load_nodeview),
    "simpleitk": ("(b) SimpleITK ImageSeriesReader", load_simpleitk),
    "minimal": ("(c) minimal: dcmread full", load_minimal),
    "minimal-raw": ("(c2) minimal: header + fromfile", load_minimal_raw),
}


# ------------------------------------------------------------------------------------------------
# Timing (in this process) and memory (one fresh subprocess per method and measure)
# ------------------------------------------------------------------------------------------------
def one_file_warmup(folder: Path, fn: Callable[[Path], np.ndarray]) -> None:
    """Run a loader on a one-file copy of the series: lazy imports and first-call set-up, untimed."""
    with tempfile.TemporaryDirectory(prefix="nodeview-bench-warm-") as tmp:
        shutil.copy2(series_files(folder)[0], Path(tmp) / "one.dcm")
        fn(Path(tmp))


def time_methods(folder: Path, repeats: int, expected: np.ndarray | None) -> dict[str, list[float]]:
    names = list(METHODS)
    for name in names:
        one_file_warmup(folder, METHODS[name][1])
    times: dict[str, list[float]] = {name: [] for name in names}
    reference: np.ndarray | None = None
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            t0 = time.perf_counter()
            arr = METHODS[name][1](folder)
            dt = time.perf_counter() - t0
            times[name].append(dt)
            if reference is None:
                reference = load_simpleitk(folder) if name != "simpleitk" else arr
                if expected is not None:
                    assert np.array_equal(reference, expected), "SimpleITK's array differs from the written phantom"
            assert arr.dtype == np.int16 and arr.shape == reference.shape, (name, arr.dtype, arr.shape)
            assert np.array_equal(arr, reference), f"{name}'s array differs from SimpleITK's"
            del arr
        print(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in order), flush=True)
    return times


def _vm_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def child_measure(method: str, folder: Path, mode: str) -> dict[str, float]:
    """Runs in a fresh interpreter: the peak memory one loader needs, above the post-import baseline."""
    fn = METHODS[method][1]
    one_file_warmup(folder, fn)
    gc.collect()
    if mode == "tracemalloc":
        tracemalloc.start()
        arr = fn(folder)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"tracemalloc_peak": float(peak), "result_bytes": float(arr.nbytes)}
    # ru_maxrss is the kernel's RSS high-water mark, but a child inherits its parent's (this big
    # benchmark process) across fork/exec, so it reads 0 here. VmHWM is the same counter for this
    # process image only, and writing "5" to /proc/self/clear_refs resets it to the current RSS.
    base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    hwm_reset = _reset_hwm()
    base_rss = (_vm_kb("VmRSS") or 0) * 1024
    arr = fn(folder)
    peak_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_hwm = (_vm_kb("VmHWM") or 0) * 1024
    return {
        "rss_increase": float(peak_hwm - base_rss) if hwm_reset else float(peak_maxrss - base_maxrss),
        "rss_source": 1.0 if hwm_reset else 0.0,  # 1: VmHWM - VmRSS, 0: ru_maxrss delta
        "maxrss_increase": float(peak_maxrss - base_maxrss),
        "baseline_rss": float(base_rss),
        "result_bytes": float(arr.nbytes),
    }


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _vm_kb("VmHWM") is not None


def measure_memory(folder: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in METHODS:
        out[name] = {}
        for mode in ("rss", "tracemalloc"):
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", name, "--child-mode", mode, str(folder)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(f"  memory of {name} ({mode}) failed:\n{proc.stderr[-2000:]}")
                continue
            out[name].update(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(
            f"  {name}: peak RSS +{out[name].get('rss_increase', float('nan')) / MB:.0f} MB, "
            f"tracemalloc peak {out[name].get('tracemalloc_peak', float('nan')) / MB:.0f} MB",
            flush=True,
        )
    return out


def profile_nodeview(folder: Path) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    load_nodeview(folder)
    prof.disable()
    stats = pstats.Stats(prof).strip_dirs()
    print("\ncProfile of open_study (one run), top 20 by total time in the function itself:")
    stats.sort_stats("tottime").print_stats(20)
    print("top 20 by cumulative time:")
    stats.sort_stats("cumulative").print_stats(20)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def report(times: dict[str, list[float]], memory: dict[str, dict[str, float]] | None, volume_bytes: int) -> None:
    med = {n: statistics.median(t) for n, t in times.items()}
    best = {n: min(t) for n, t in times.items()}
    header = (
        f"{'method':<34}{'median s':>9}{'min s':>8}{'vs SITK':>9}{'vs minimal':>11}"
        f"{'peak RSS MB':>13}{'RSS/vol':>9}{'tracemalloc MB':>16}{'tm/vol':>8}"
    )
    print("\n" + header)
    print("-" * len(header))
    for name, (label, _) in METHODS.items():
        mem = (memory or {}).get(name, {})
        rss, tm = mem.get("rss_increase"), mem.get("tracemalloc_peak")
        print(
            f"{label:<34}{med[name]:>9.2f}{best[name]:>8.2f}{med[name] / med['simpleitk']:>8.2f}x"
            f"{med[name] / med['minimal']:>10.2f}x"
            + (f"{rss / MB:>13.0f}{rss / volume_bytes:>8.2f}x" if rss is not None else f"{'-':>13}{'-':>9}")
            + (f"{tm / MB:>16.0f}{tm / volume_bytes:>7.2f}x" if tm is not None else f"{'-':>16}{'-':>8}")
        )
    print(
        f"\nint16 volume: {volume_bytes / MB:.1f} MB. Ratios are of medians. Peak RSS = ru_maxrss increase over the "
        "baseline after imports (fresh process per method; VmHWM - VmRSS, i.e. ru_maxrss for that process "
        "alone); tracemalloc sees Python/numpy allocations only "
        "(not SimpleITK's C++ image buffer)."
    )
    print("\nTargets (NodeView):")
    r_sitk = med["nodeview"] / med["simpleitk"]
    r_min = med["nodeview"] / med["minimal"]
    print(
        f"  speed  <= {TARGET_SPEED_VS_SITK:.1f}x SimpleITK      : {r_sitk:.2f}x  "
        f"{'PASS' if r_sitk <= TARGET_SPEED_VS_SITK else 'MISS'}"
    )
    print(
        f"  speed  <= {TARGET_SPEED_VS_MINIMAL:.1f}x minimal read   : {r_min:.2f}x  "
        f"{'PASS' if r_min <= TARGET_SPEED_VS_MINIMAL else 'MISS'}"
    )
    rss = (memory or {}).get("nodeview", {}).get("rss_increase")
    if rss is None:
        print("  memory <= 1.2x int16 volume   : not measured")
    else:
        r_mem = rss / volume_bytes
        print(
            f"  memory <= {TARGET_MEMORY_VS_VOLUME:.1f}x int16 volume   : {r_mem:.2f}x  "
            f"{'PASS' if r_mem <= TARGET_MEMORY_VS_VOLUME else 'MISS'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512, help="rows = columns")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="write the series here and keep it (reused when present)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method memory subprocesses")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one open_study run")
    parser.add_argument("--child", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", choices=["rss", "tracemalloc"], default="rss", help=argparse.SUPPRESS)
    parser.add_argument("folder", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child_measure(args.child, Path(args.folder), args.child_mode)))
        return 0

    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, pydicom {pydicom.__version__}, "
        f"SimpleITK {sitk.Version.VersionString()} ({sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads), "
        f"{os.cpu_count()} CPUs"
    )
    folder, expected, temporary = prepare_series(args)
    try:
        files = series_files(folder)
        first = pydicom.dcmread(files[0], stop_before_pixels=True)
        n, rows, cols = len(files), int(first.Rows), int(first.Columns)
        volume_bytes = n * rows * cols * 2
        size = warm_file_cache(folder)
        print(f"Warm-up read of {n} files ({size / MB:.0f} MB) done; timing {args.repeats} repeats, alternating order")
        times = time_methods(folder, args.repeats, expected)
        del expected
        print("NodeView's array equals SimpleITK's (and every other method's) array: OK")
        memory = None
        if not args.no_memory:
            print("Peak memory, one fresh subprocess per method and measure:")
            memory = measure_memory(folder)
        report(times, memory, volume_bytes)
        if args.profile:
            profile_nodeview(folder)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
