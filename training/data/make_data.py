"""Write a training data set without internet: synthetic chest CTs (source a) and synthetic nodules
inserted into real CT (source b), as DICOM series plus ``annotations.csv``.

Usage::

    python -m training.data.make_data --out DIR --synthetic N --seed S \\
        [--insert-into PATH [--insert-into PATH ...] --inserted M] [--small]

Seed ranges (disjoint, so train, validation and test scans never share a seed)::

    split        synthetic seeds        inserted seeds
    train        0 - 9 999              1 000 000 - 1 009 999
    validation   10 000 - 10 999        1 010 000 - 1 010 999
    test         20 000 - 29 999        1 020 000 - 1 029 999   (held out)

Synthetic scan ``i`` of a run uses seed ``S + i``; inserted scan ``j`` uses ``1 000 000 + S + j``.
A run whose seeds would leave the split of ``S`` is refused; ``--split NAME`` without ``--seed``
starts at the split's first seed. :func:`split_of_seed` tells the split of any seed. The real scans
given to ``--insert-into`` must also differ between splits (a patient must not appear in two).

Layout::

    DIR/annotations.csv                      all scans of the run (training.data.annotations format)
    DIR/synthetic/synth-<seed>/              one DICOM series per scan
    DIR/synthetic/synth-<seed>.csv           that scan's record (lets an interrupted run resume)
    DIR/inserted/ins-<seed>/, ins-<seed>.csv

Paths in ``annotations.csv`` are relative to ``DIR`` (``read_records_csv`` resolves them);
``fold = seed % 10``. The output is deterministic: the same arguments write byte-identical files.
Scans whose record file already exists are not regenerated (``--overwrite`` regenerates them).

``--small`` writes 48 x 128 x 128 synthetic scans and crops real scans to their 48 central slices
(quick experiments and tests). ``--existing CSV`` gives the real scans' own nodules (a records CSV
whose paths match the ``--insert-into`` paths): they are kept clear of and copied into the records.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrix products: threads only cost here

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from training.data.annotations import NoduleAnnotation, ScanRecord, read_records_csv, write_records_csv

SPLITS = ("train", "validation", "test")
#: Synthetic seed range [start, stop) of each split; inserted scans add INSERTED_OFFSET.
SEED_RANGES = {"train": (0, 10_000), "validation": (10_000, 11_000), "test": (20_000, 30_000)}
INSERTED_OFFSET = 1_000_000
SMALL_SHAPE = (48, 128, 128)


def split_of_seed(seed: int) -> str | None:
    """The split a synthetic or inserted seed belongs to, or None outside every range."""
    s = seed - INSERTED_OFFSET if seed >= INSERTED_OFFSET else seed
    for name, (lo, hi) in SEED_RANGES.items():
        if lo <= s < hi:
            return name
    return None


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.data.make_data",
        description="Write synthetic and nodule-inserted chest CT (DICOM) with annotations.csv.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Seed ranges: train 0-9999, validation 10000-10999, test 20000-29999 "
        f"(inserted scans: +{INSERTED_OFFSET}).",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="synthetic scans to write")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="first seed (default: start of --split)")
    p.add_argument("--split", choices=SPLITS, default=None, help="split the seeds must belong to")
    p.add_argument(
        "--insert-into",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="real CT (DICOM folder or file) to insert nodules into; repeatable",
    )
    p.add_argument(
        "--inserted",
        type=int,
        default=0,
        metavar="M",
        help="nodule-inserted scans to write (round-robin over --insert-into)",
    )
    p.add_argument(
        "--nodules",
        type=int,
        nargs=2,
        default=(0, 4),
        metavar=("MIN", "MAX"),
        help="nodules per synthetic scan (default 0 4)",
    )
    p.add_argument(
        "--masses",
        type=int,
        default=0,
        metavar="K",
        help="synthetic scans: the first K lesions are solid masses of 32-60 mm (default 0: none)",
    )
    p.add_argument(
        "--insert-nodules",
        type=int,
        nargs=2,
        default=(1, 4),
        metavar=("MIN", "MAX"),
        help="nodules inserted per real scan (default 1 4)",
    )
    p.add_argument(
        "--existing", type=Path, default=None, metavar="CSV", help="records CSV with the real scans' own nodules"
    )
    p.add_argument(
        "--label-mode",
        choices=("threshold", "sample"),
        default="threshold",
        help="malignancy label: probability >= 0.15 (default) or sampled from it",
    )
    p.add_argument("--small", action="store_true", help="small matrices (48x128x128) for quick runs")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1; each scan uses threads)")
    p.add_argument("--overwrite", action="store_true", help="regenerate scans whose record exists")
    return p


@dataclasses.dataclass(frozen=True)
class _Job:
    kind: str  # "synthetic" or "inserted"
    seed: int
    out: Path  # the scan folder
    source: str = ""  # inserted: the real scan
    n_min: int = 0
    n_max: int = 4
    small: bool = False
    label_mode: str = "threshold"
    threads: int = 0
    existing: tuple[NoduleAnnotation, ...] = ()
    masses: int = 0

    @property
    def scan_id(self) -> str:
        return self.out.name

    @property
    def record_csv(self) -> Path:
        return self.out.with_suffix(".csv")


_SOURCES: dict[tuple[str, bool], object] = {}


def _load_source(path: str, small: bool) -> tuple[object, object]:
    """(Volume, LungMask) of a real scan, cached per process."""
    key = (path, small)
    if key not in _SOURCES:
        from nodeview.core.detect.lung import segment_lungs
        from nodeview.core.geometry import Geometry
        from nodeview.core.io.study import open_study

        vol = open_study(path)
        if small and vol.shape_zyx[0] > SMALL_SHAPE[0]:
            k0 = (vol.shape_zyx[0] - SMALL_SHAPE[0]) // 2
            k1 = k0 + SMALL_SHAPE[0]
            g = vol.geometry
            geom = Geometry((k1 - k0, *g.shape_zyx[1:]), g.spacing_zyx, g.index_to_mm((k0, 0, 0)), g.direction)
            vol = dataclasses.replace(vol, hu_zyx=np.ascontiguousarray(vol.hu_zyx[k0:k1]), geometry=geom)
        _SOURCES[key] = (vol, segment_lungs(vol.hu_zyx, vol.geometry))
    return _SOURCES[key]  # type: ignore[return-value]


def _run_job(job: _Job) -> ScanRecord:
    """Write one scan (or reuse it) and return its record with the path relative to its folder."""
    if job.record_csv.is_file():
        recs = read_records_csv(job.record_csv)
        if len(recs) == 1 and Path(recs[0].path).is_dir():
            return dataclasses.replace(recs[0], path=job.out.name)
    if job.kind == "synthetic":
        from training.data.synth.dicom import write_scan

        shape = SMALL_SHAPE if job.small else None
        rec = write_scan(
            job.out,
            job.seed,
            shape,
            None,
            (job.n_min, job.n_max),
            scan_id=job.scan_id,
            label_mode=job.label_mode,
            workers=job.threads or None,
            masses=job.masses,
        )
    else:
        from training.data.insert import write_inserted

        volume, mask = _load_source(job.source, job.small)
        n = int(np.random.default_rng([job.seed, 78]).integers(job.n_min, job.n_max + 1))
        rec = write_inserted(
            job.out,
            volume,
            job.seed,
            n,
            scan_id=job.scan_id,
            existing=job.existing,  # type: ignore[arg-type]
            lung_mask=mask,
            label_mode=job.label_mode,
        )
    rec = dataclasses.replace(rec, path=job.out.name)
    write_records_csv([rec], job.record_csv)
    return rec


def _progress(total: int) -> Callable[[str], None]:
    try:
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total, unit="scan", desc="make_data")

        def step(msg: str) -> None:
            bar.set_postfix_str(msg)
            bar.update(1)
            if bar.n >= total:
                bar.close()

        return step
    start = time.monotonic()
    done = [0]

    def step_print(msg: str) -> None:
        done[0] += 1
        print(f"[{done[0]}/{total}] {msg} ({time.monotonic() - start:.0f} s)", flush=True)

    return step_print


def _check_seeds(first: int, count: int, what: str) -> None:
    if count <= 0:
        return
    split = split_of_seed(first)
    if split is None or split_of_seed(first + count - 1) != split:
        ranges = ", ".join(f"{k} {lo}-{hi - 1}" for k, (lo, hi) in SEED_RANGES.items())
        raise SystemExit(
            f"make_data: {what} seeds {first}..{first + count - 1} do not lie in one split ({ranges}); "
            "choose --seed/--split so that they do"
        )


def _existing_for(records: Sequence[ScanRecord], source: Path) -> tuple[NoduleAnnotation, ...]:
    want = source.resolve()
    for rec in records:
        if Path(rec.path).resolve() == want:
            return tuple(rec.nodules)
    return ()


def main(args: argparse.Namespace) -> int:
    """Run :func:`get_args_parser`'s command line; returns the exit status."""
    if args.synthetic < 0 or args.inserted < 0:
        raise SystemExit("make_data: --synthetic and --inserted must be >= 0")
    if args.inserted and not args.insert_into:
        raise SystemExit("make_data: --inserted needs --insert-into PATH")
    if args.insert_into and not args.inserted:
        raise SystemExit("make_data: --insert-into needs --inserted M")
    for path in args.insert_into:
        if not path.exists():
            raise SystemExit(f"make_data: {path} does not exist")
    seed = args.seed if args.seed is not None else SEED_RANGES[args.split or "train"][0]
    if args.split is not None and split_of_seed(seed) != args.split:
        raise SystemExit(f"make_data: seed {seed} is not in the {args.split} range {SEED_RANGES[args.split]}")
    _check_seeds(seed, args.synthetic, "synthetic")
    _check_seeds(seed, args.inserted, "inserted")
    lo, hi = args.nodules
    ilo, ihi = args.insert_nodules
    if not (0 <= lo <= hi and 0 <= ilo <= ihi):
        raise SystemExit("make_data: nodule counts must be 0 <= MIN <= MAX")
    existing = read_records_csv(args.existing) if args.existing else []

    out: Path = args.out
    workers = max(1, int(args.workers))
    threads = 1 if workers > 1 else 0
    jobs: list[_Job] = []
    for i in range(args.synthetic):
        s = seed + i
        jobs.append(
            _Job(
                "synthetic",
                s,
                out / "synthetic" / f"synth-{s:06d}",
                n_min=lo,
                n_max=hi,
                small=args.small,
                label_mode=args.label_mode,
                threads=threads,
                masses=max(0, int(args.masses)),
            )
        )
    for j in range(args.inserted):
        s = INSERTED_OFFSET + seed + j
        src = args.insert_into[j % len(args.insert_into)]
        jobs.append(
            _Job(
                "inserted",
                s,
                out / "inserted" / f"ins-{s:07d}",
                source=str(src),
                n_min=ilo,
                n_max=ihi,
                small=args.small,
                label_mode=args.label_mode,
                threads=threads,
                existing=_existing_for(existing, src),
            )
        )
    if args.overwrite:
        for job in jobs:
            job.record_csv.unlink(missing_ok=True)
    for sub in {job.out.parent for job in jobs}:
        sub.mkdir(parents=True, exist_ok=True)

    step = _progress(len(jobs))
    records: list[ScanRecord] = []

    def collect(job: _Job, rec: ScanRecord) -> None:
        records.append(dataclasses.replace(rec, path=f"{job.out.parent.name}/{job.out.name}"))
        step(f"{job.scan_id}: {len(rec.nodules)} nodules")

    if workers == 1:
        for job in jobs:
            collect(job, _run_job(job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for job, rec in zip(jobs, pool.map(_run_job, jobs), strict=True):
                collect(job, rec)
    csv_path = write_records_csv(records, out / "annotations.csv")
    n_nod = sum(len(r.nodules) for r in records)
    n_mal = sum(1 for r in records for a in r.nodules if a.malignant)
    print(f"make_data: {len(records)} scans, {n_nod} nodules ({n_mal} malignant) -> {csv_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
