"""Write train / val / test sets of real LIDC nodules transplanted into chest CTs (source (e)).

Each split uses only the nodules of its own patients (``training/splits/lidc-nodules-split.csv``),
so a patient's nodules never appear in two splits. The split's nodules are shuffled with the seed
and dealt into scans of ``--per-scan`` nodules; each scan's background is drawn from the real
slabs of :func:`training.data.transplant.real_backgrounds` (LIDC-IDRI-0002 clear of its nodule,
Lung-PET-CT-Dx-A0001 kernels L and B below its tumour) and synthetic chest CTs (``--synthetic-fraction``,
generated with no nodules from seeds inside the split's range of :mod:`training.data.make_data`).
``--copies K`` places every nodule K times (different scans, backgrounds and rotations; training).

    python -m training.data.make_transplants --split train --out data/real-train --copies 2 --seed 0
    python -m training.data.make_transplants --split val --out data/real-val --seed 0
    python -m training.data.make_transplants --split test --out data/real-test --seed 0

Layout (what ``training.engine.train`` / ``evaluate`` / ``proposal_recall`` read)::

    DIR/annotations.csv                 all scans (training.data.annotations format, paths relative)
    DIR/scans/<scan_id>/                one DICOM series per scan
    DIR/scans/<scan_id>.csv             that scan's record (an interrupted run resumes)
    DIR/transplants.csv                 scan_id, crop file, patient_id, centre (LPS mm) of every nodule

The real backgrounds are 2 patients: their non-nodule anatomy appears in every split (only the
nodules are split by patient), so false-positive counts on LIDC-IDRI-0002 and A0001 are not on
unseen anatomy.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import dataclasses
import time
from pathlib import Path

import numpy as np

from training.data.annotations import ScanRecord, read_records_csv, write_records_csv
from training.data.make_data import SEED_RANGES
from training.data.real_split import DEFAULT_SPLIT_CSV, read_split

SPLIT_SEED_START = {"train": SEED_RANGES["train"][0] + 7000, "val": 10_700, "test": 27_000}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.data.make_transplants", description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("train", "val", "test"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nodules", default="../shared/data/lidc-nodules", help="the lidc-nodules folder")
    p.add_argument("--real-ct", default="../shared/data/real-ct", help="folder with LIDC-IDRI-0002 and A0001")
    p.add_argument("--split-csv", default=str(DEFAULT_SPLIT_CSV))
    p.add_argument("--per-scan", type=int, nargs=2, default=(5, 8), metavar=("MIN", "MAX"))
    p.add_argument("--copies", type=int, default=1, help="placements of every nodule")
    p.add_argument("--synthetic-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="only the first N scans (quick runs)")
    p.add_argument("--scan-ids", help="a file of scan ids (one a line): write and list only those scans")
    p.add_argument(
        "--shard",
        nargs=2,
        type=int,
        metavar=("K", "N"),
        help="write only scans i with i %% N == K (parallel runs);"
        " annotations.csv then lists this shard's scans: rerun without --shard to collect all",
    )
    return p


def plan(args: argparse.Namespace) -> list[tuple[str, str, list[dict[str, str]]]]:
    """(scan_id, background name, nodule rows) for every scan of the run; deterministic."""
    from training.data.transplant import read_nodule_table

    split = read_split(args.split_csv)
    rows = [r for r in read_nodule_table(args.nodules) if split.get(r["patient_id"]) == args.split]
    rng = np.random.default_rng([args.seed, 21, ("train", "val", "test").index(args.split)])
    scans: list[tuple[str, str, list[dict[str, str]]]] = []
    real_names = ["lidc0002-k0-155", "lidc0002-k215-261", "a0001L-k0-37", "a0001B-k0-37"]
    real_p = np.array([0.35, 0.15, 0.25, 0.25])
    synth_seed = SPLIT_SEED_START[args.split] + 100 * args.seed
    for copy in range(args.copies):
        order = rng.permutation(len(rows))
        k = 0
        while k < len(order):
            m = int(rng.integers(args.per_scan[0], args.per_scan[1] + 1))
            group = [rows[i] for i in order[k : k + m]]
            k += m
            if rng.random() < args.synthetic_fraction:
                bg = f"synthetic-{synth_seed}"
                synth_seed += 1
            else:
                bg = str(rng.choice(real_names, p=real_p))
            scans.append((f"tx-{args.split}-{args.seed}-{copy}-{len(scans):04d}", bg, group))
    if getattr(args, "scan_ids", None):
        wanted = set(Path(args.scan_ids).read_text().split())
        scans = [s for s in scans if s[0] in wanted]
    return scans[: args.limit] if args.limit else scans


def main(args: argparse.Namespace) -> list[ScanRecord]:
    from nodeview.core.detect.lung import segment_lungs
    from training.data.transplant import load_nodule, make_site, real_backgrounds, record, transplant_many, write_volume

    scans = plan(args)
    out: Path = args.out
    (out / "scans").mkdir(parents=True, exist_ok=True)
    backgrounds = real_backgrounds(args.real_ct)
    lungs: dict[str, object] = {}
    records: list[ScanRecord] = []
    placed: list[dict[str, object]] = []
    t0 = time.time()
    for i, (scan_id, bg, group) in enumerate(scans):
        folder = out / "scans" / scan_id
        rec_csv = folder.with_suffix(".csv")
        if args.shard and i % args.shard[1] != args.shard[0]:
            continue
        tx_csv = folder.with_suffix(".tx.csv")
        if rec_csv.is_file() and tx_csv.is_file():
            recs = read_records_csv(rec_csv)
            records.append(dataclasses.replace(recs[0], path=f"scans/{scan_id}"))
            with open(tx_csv, newline="") as fh:
                placed.extend(csv.DictReader(fh))
            continue
        if bg.startswith("synthetic-"):
            from training.data.synth.generator import generate_scan_full

            volume = generate_scan_full(int(bg.split("-")[1]), n_nodules=0, workers=1).volume
            site = make_site(volume)
        else:
            volume = backgrounds[bg]
            if bg not in lungs:
                lungs[bg] = segment_lungs(volume.hu_zyx, volume.geometry)
            site = make_site(volume, lung=lungs[bg])  # type: ignore[arg-type]
        nodules = [load_nodule(args.nodules, r) for r in group]
        seed = args.seed * 100_000 + i
        new, anns, names = transplant_many(volume, nodules, seed, site=site)
        write_volume(new, folder, seed=("train", "val", "test").index(args.split) * 10_000_000 + seed)
        rec = record(scan_id, f"scans/{scan_id}", anns, fold=i % 10)
        write_records_csv([rec], rec_csv)
        by_name = {r["file"].replace(".nii.gz", ""): r for r in group}
        rows = [
            {
                "scan_id": scan_id,
                "background": bg,
                "file": by_name[nm]["file"],
                "patient_id": by_name[nm]["patient_id"],
                "x_mm": a.center_xyz_mm[0],
                "y_mm": a.center_xyz_mm[1],
                "z_mm": a.center_xyz_mm[2],
                "location": a.location,
            }
            for a, nm in zip(anns, names, strict=True)
        ]
        with open(tx_csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["scan_id"])
            w.writeheader()
            w.writerows(rows)
        placed.extend(rows)  # type: ignore[arg-type]
        records.append(rec)
        took = time.time() - t0
        print(f"{i + 1}/{len(scans)} {scan_id} {bg}: {len(anns)}/{len(group)} placed ({took:.0f} s)", flush=True)
    write_records_csv(records, out / "annotations.csv")
    with open(out / "transplants.csv", "w", newline="") as fh:
        fields = ["scan_id", "background", "file", "patient_id", "x_mm", "y_mm", "z_mm", "location"]
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(placed)  # type: ignore[arg-type]
    n_nod = sum(len(r.nodules) for r in records)
    print(f"{len(records)} scans, {n_nod} nodules placed of {sum(len(g) for _, _, g in scans)} -> {out}")
    return records


if __name__ == "__main__":
    main(get_args_parser().parse_args())
