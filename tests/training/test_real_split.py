"""The committed patient split of the real LIDC nodules: by patient, complete, reproducible."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from tests.conftest import SHARED_DATA
from training.real_split import DEFAULT_SPLIT_CSV, SPLITS, make_split, malignant_label, read_split, texture_kind

NODULES = SHARED_DATA / "lidc-nodules" / "nodules.csv"


def test_split_file_one_split_per_patient() -> None:
    with open(DEFAULT_SPLIT_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    pids = [r["patient_id"] for r in rows]
    assert len(pids) == len(set(pids)), "a patient appears twice (in two splits)"
    assert {r["split"] for r in rows} == set(SPLITS)
    counts = Counter(r["split"] for r in rows)
    n = len(rows)
    for split, frac in zip(SPLITS, (0.6, 0.2, 0.2), strict=True):
        assert abs(counts[split] / n - frac) < 0.03


def test_every_nodule_patient_assigned_and_file_reproducible() -> None:
    if not NODULES.exists():
        pytest.skip(f"shared test data not found: {NODULES}")
    with open(NODULES, newline="") as fh:
        rows = list(csv.DictReader(fh))
    split = read_split()
    missing = {r["patient_id"] for r in rows} - set(split)
    assert not missing
    assert make_split(rows, 21) == split  # the committed file is what the documented command writes
    for s in ("val", "test"):  # stratified: every split holds malignant, benign and non-solid nodules
        mine = [r for r in rows if split[r["patient_id"]] == s]
        assert any(float(r["malignancy_1to5"]) >= 4 for r in mine)
        assert any(float(r["malignancy_1to5"]) <= 2 for r in mine)
        assert any(int(r["texture_1to5"]) <= 3 for r in mine)


def test_labels() -> None:
    assert [malignant_label(r) for r in (1, 2, 3, 4, 5)] == [False, False, None, True, True]
    assert [texture_kind(t) for t in (1, 2, 3, 4, 5)] == ["ground-glass", "part-solid", "part-solid", "solid", "solid"]
