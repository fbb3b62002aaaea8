"""The patient split of the real LIDC nodules (``../shared/data/lidc-nodules``): train / val / test.

Written once, before any model saw the nodules, and committed as
``training/splits/lidc-nodules-split.csv`` (``patient_id,split``)::

    python -m training.data.real_split --nodules ../shared/data/lidc-nodules/nodules.csv \\
        --out training/splits/lidc-nodules-split.csv --seed 21

By patient (a patient's nodules all fall in one split), about 60 / 20 / 20 %, seeded, stratified
by each patient's strongest nodule: malignancy class (any rating >= 4 malignant, else any <= 2
benign, else indeterminate), any non-solid nodule (texture 1-3), largest diameter >= 10 mm.
Within each stratum the patients are shuffled with the seed and dealt out in proportion.

**The test patients are used once**, for the final numbers of the shipped model; thresholds,
checkpoints and settings are chosen on the validation patients only.

Texture of the readers' max-voting rating: 1 ground-glass, 2-3 part-solid, 4-5 solid
(:func:`texture_kind`). Malignancy (LIDC convention): >= 4 malignant, <= 2 benign, 3 indeterminate
(:func:`malignant_label`, None for 3).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
FRACTIONS = (0.6, 0.2, 0.2)
DEFAULT_SPLIT_CSV = Path(__file__).resolve().parents[1] / "splits" / "lidc-nodules-split.csv"


def texture_kind(texture_1to5: int) -> str:
    """ground-glass (1), part-solid (2-3) or solid (4-5)."""
    if texture_1to5 <= 1:
        return "ground-glass"
    return "part-solid" if texture_1to5 <= 3 else "solid"


def malignant_label(rating: float) -> bool | None:
    """LIDC convention: >= 4 malignant, <= 2 benign, 3 indeterminate (None)."""
    if rating >= 4:
        return True
    if rating <= 2:
        return False
    return None


def read_nodules(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def stratum(rows: list[dict[str, str]]) -> tuple[str, bool, bool]:
    ratings = [float(r["malignancy_1to5"]) for r in rows]
    mal = "malignant" if max(ratings) >= 4 else ("benign" if min(ratings) <= 2 else "indeterminate")
    non_solid = any(int(r["texture_1to5"]) <= 3 for r in rows)
    large = max(float(r["diameter_mm"]) for r in rows) >= 10.0
    return mal, non_solid, large


def make_split(rows: list[dict[str, str]], seed: int) -> dict[str, str]:
    """patient_id -> split."""
    by_patient: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_patient[r["patient_id"]].append(r)
    strata: dict[tuple[str, bool, bool], list[str]] = defaultdict(list)
    for pid in sorted(by_patient):
        strata[stratum(by_patient[pid])].append(pid)
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    carry = np.zeros(len(SPLITS))
    for key in sorted(strata):
        pids = list(strata[key])
        rng.shuffle(pids)
        # largest-remainder dealing, carrying the rounding over strata so the totals stay near 60/20/20
        want = carry + len(pids) * np.asarray(FRACTIONS)
        counts = np.floor(want).astype(int)
        rest = len(pids) - counts.sum()
        for i in np.argsort(-(want - counts), kind="stable")[:rest]:
            counts[i] += 1
        carry = want - counts
        k = 0
        for split, c in zip(SPLITS, counts, strict=True):
            for pid in pids[k : k + c]:
                out[pid] = split
            k += c
    return out


def write_split(split: dict[str, str], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "split"])
        for pid in sorted(split):
            w.writerow([pid, split[pid]])
    return out


def read_split(path: str | Path = DEFAULT_SPLIT_CSV) -> dict[str, str]:
    with open(path, newline="") as fh:
        return {r["patient_id"]: r["split"] for r in csv.DictReader(fh)}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.data.real_split", description=__doc__.splitlines()[0])
    p.add_argument("--nodules", required=True, help="lidc-nodules/nodules.csv")
    p.add_argument("--out", default=str(DEFAULT_SPLIT_CSV))
    p.add_argument("--seed", type=int, default=21)
    return p


def main(args: argparse.Namespace) -> dict[str, int]:
    rows = read_nodules(args.nodules)
    split = make_split(rows, args.seed)
    write_split(split, args.out)
    counts = {s: sum(1 for v in split.values() if v == s) for s in SPLITS}
    nod = {s: sum(1 for r in rows if split[r["patient_id"]] == s) for s in SPLITS}
    print("patients", counts, "nodules", nod)
    return counts


if __name__ == "__main__":
    main(get_args_parser().parse_args())
