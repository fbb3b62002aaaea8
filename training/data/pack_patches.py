"""Labelled 2.5D patches packed small enough to travel to a GPU machine (a few tens of MB a shard).

A GPU machine lent for a few minutes cannot reach ``data/`` (gigabytes of DICOM): this writes the
patches that training needs, mined exactly as ``train.py`` mines them (``dataset.load_or_mine``:
the app's proposals and patches, the LUNA16 hit rule, ground-truth positives and their copies
rotated about z), as compact shards that ``train_packed.py`` reads with nothing but numpy and torch.

Per scan it keeps
  * every ground-truth positive and its rotated copies (``--positive-copies``);
  * up to ``--hits-per-nodule`` proposal hits per nodule (the detector's own, off-centre views);
  * the ``--negatives-top`` negatives the proposal ranker ranks highest (the hard sites: pleura,
    vessels at the hila, recesses) and ``--negatives-random`` others, leaving out negatives within a
    nodule's radius + ``--ignore-near-mm`` (the nodule seen off centre, ``dataset.near_nodule``).

Patches are quantised to uint8 over the patch window ([-1, 1] -> 0..255, about 5.5 HU a step,
well under CT noise) and each shard is an LZMA-compressed ``.npz``. Every row keeps its scan and
nodule index so that training can weigh nodules alike and validation can score per nodule.

    python -m training.data.pack_patches --data data/real-train/annotations.csv --cache runs/cache-gpu \
        --out runs/pack/train --part 0 --parts 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.data.annotations import read_records_csv
from training.data.dataset import UNKNOWN, PatchSet, hit_radius_mm, label_candidates, load_or_mine
from training.data.packed import FIELDS, quantise, write_shard


def select_rows(
    part: PatchSet,
    record: Any,
    hits_per_nodule: int,
    negatives_top: int,
    negatives_random: int,
    ignore_near_mm: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.intp], NDArray[np.int32]]:
    """Rows of one scan's patch set to keep, and each row's nodule index in the scan (-1: none)."""
    n = len(part)
    centres = part.centre_xyz_mm.astype(np.float64)
    nodule_id = np.full(n, -1, dtype=np.int32)
    prop = np.flatnonzero(part.from_proposal)
    added = np.flatnonzero(~part.from_proposal)
    if len(prop):
        nodule_id[prop] = label_candidates(centres[prop], record.nodules)
    # added rows are each nodule's ground-truth centre followed by its copies, nodule by nodule
    if len(added) and record.nodules:
        per = len(added) // len(record.nodules)
        nodule_id[added] = np.repeat(np.arange(len(record.nodules), dtype=np.int32), per)[: len(added)]
    keep: list[NDArray[np.intp]] = [added]
    for k, nod in enumerate(record.nodules):
        hits = prop[nodule_id[prop] == k]
        if len(hits):
            d = np.linalg.norm(centres[hits] - np.asarray(nod.center_xyz_mm), axis=1)
            keep.append(hits[np.argsort(d, kind="stable")[:hits_per_nodule]])
    neg = prop[part.nodule[prop] == 0]
    if record.nodules and len(neg):
        near = np.zeros(len(neg), dtype=bool)
        for nod in record.nodules:
            d = np.linalg.norm(centres[neg] - np.asarray(nod.center_xyz_mm), axis=1)
            near |= d <= hit_radius_mm(nod) + ignore_near_mm
        neg = neg[~near]
    if len(neg):
        score = np.nan_to_num(part.rank_score[neg], nan=-np.inf)
        order = neg[np.argsort(-score, kind="stable")]
        top, rest = order[:negatives_top], order[negatives_top:]
        keep.append(top)
        if len(rest) and negatives_random:
            keep.append(np.sort(rng.choice(rest, min(negatives_random, len(rest)), replace=False)))
    rows = np.unique(np.concatenate(keep)).astype(np.intp)
    return rows, nodule_id[rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="annotation CSV")
    p.add_argument("--cache", required=True, help="patch cache folder (dataset.load_or_mine)")
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--positive-copies", type=int, default=2)
    p.add_argument("--max-candidates", type=int, default=300)
    p.add_argument("--hits-per-nodule", type=int, default=3)
    p.add_argument("--negatives-top", type=int, default=60)
    p.add_argument("--negatives-random", type=int, default=20)
    p.add_argument("--ignore-near-mm", type=float, default=3.0)
    p.add_argument("--shard-mb", type=float, default=14.0, help="start a new shard above this compressed size")
    p.add_argument("--part", type=int, default=0, help="this process's share of the scans (0-based)")
    p.add_argument("--parts", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-malignancy",
        action="store_true",
        help="store every malignancy label as unknown (e.g. synthetic scans, whose label is a rule, mixed with "
        "real nodules whose label is the readers' rating)",
    )
    args = p.parse_args(argv)
    records = read_records_csv(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pending: dict[str, list[NDArray[Any]]] = {f: [] for f in FIELDS}
    ids: list[str] = []
    shard = 0
    raw = 0
    total_rows = 0
    total_bytes = 0

    def flush() -> None:
        nonlocal pending, ids, shard, raw, total_bytes
        if not ids:
            return
        arrays = {f: np.concatenate(v) for f, v in pending.items()}
        name = f"p{args.part}-{shard:03d}"
        size = write_shard(out / f"{name}.npz.xz", arrays)
        (out / f"{name}.json").write_text(json.dumps({"scan_ids": ids, "rows": len(arrays["nodule"])}))
        print(f"{name}: {len(ids)} scans, {len(arrays['nodule'])} patches, {size / 1e6:.1f} MB", flush=True)
        total_bytes += size
        pending = {f: [] for f in FIELDS}
        ids = []
        shard += 1
        raw = 0

    for n, rec in enumerate(records):
        if n % args.parts != args.part:
            continue
        part, _ = load_or_mine(
            rec,
            args.cache,
            positive_copies=args.positive_copies,
            max_candidates=args.max_candidates,
            seed=args.seed * 100003 + n,
            positive_rotations="axial",
        )
        rng = np.random.default_rng(args.seed * 7919 + n)
        rows, nod_id = select_rows(
            part, rec, args.hits_per_nodule, args.negatives_top, args.negatives_random, args.ignore_near_mm, rng
        )
        sub = part.subset(rows)
        pending["patches"].append(quantise(sub.patches))
        pending["nodule"].append(sub.nodule)
        pending["malignant"].append(np.full_like(sub.malignant, UNKNOWN) if args.no_malignancy else sub.malignant)
        pending["diameter_mm"].append(sub.diameter_mm)
        pending["scan"].append(np.full(len(rows), len(ids), dtype=np.int32))
        pending["nodule_id"].append(nod_id)
        pending["from_proposal"].append(sub.from_proposal)
        pending["rank_score"].append(sub.rank_score.astype(np.float32))
        ids.append(rec.scan_id)
        total_rows += len(rows)
        raw += len(rows) * sub.patches[0].size
        # about 0.5 compressed bytes per raw patch byte (measured on the real transplants)
        if raw * 0.5 > args.shard_mb * 1e6:
            flush()
    flush()
    print(json.dumps({"part": args.part, "patches": total_rows, "mb": round(total_bytes / 1e6, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
