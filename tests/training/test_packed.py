"""Packed patch shards (pack_patches / packed) and the fine-tuning that reads them (train_packed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from training.data import pack_patches as P  # noqa: E402
from training.data.annotations import NoduleAnnotation, ScanRecord, read_records_csv  # noqa: E402
from training.data.dataset import PatchSet, load_or_mine  # noqa: E402
from training.data.packed import dequantise, quantise, read_pack, read_shard, write_shard  # noqa: E402
from training.engine import train_packed as TP  # noqa: E402


def test_quantisation_and_shards_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, 3, 8, 8)).astype(np.float16)
    q = quantise(x)
    assert q.dtype == np.uint8
    assert np.abs(dequantise(q) - x.astype(np.float32)).max() <= 0.5 / 127.5 + 1e-3
    arrays = {"patches": q, "nodule": np.array([1, 0, 0, 1, 0], np.int8), "scan": np.array([0, 0, 1, 1, 1], np.int32)}
    write_shard(tmp_path / "a.npz.xz", arrays)
    back = read_shard(tmp_path / "a.npz.xz")
    assert all(np.array_equal(back[k], v) for k, v in arrays.items())


def _part(centres, nodule, rank, from_proposal):
    n = len(centres)
    return PatchSet(
        patches=np.zeros((n, 3, 4, 4), np.float16),
        nodule=np.asarray(nodule, np.int8),
        malignant=np.full(n, -1, np.int8),
        diameter_mm=np.full(n, np.nan, np.float32),
        scan=np.zeros(n, np.int32),
        centre_xyz_mm=np.asarray(centres, np.float32),
        from_proposal=np.asarray(from_proposal, bool),
        scan_ids=["s"],
        rank_score=np.asarray(rank, np.float32),
    )


def test_select_rows_keeps_positives_hard_negatives_and_drops_near_misses():
    nod = NoduleAnnotation((0.0, 0.0, 0.0), 10.0)  # radius 5 mm
    rec = ScanRecord("s", "unused", (nod,))
    centres = [
        [1, 0, 0], [2, 0, 0], [3, 0, 0],  # three proposal hits, nearest first
        [7, 0, 0],  # a negative 7 mm away: within radius + 3 mm, left out
        [40, 0, 0], [50, 0, 0], [60, 0, 0], [70, 0, 0],  # negatives ranked 4, 3, 2, 1
        [0, 0, 0], [0.5, 0, 0],  # the ground-truth centre and one copy (not proposals)
    ]
    nodule = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]
    rank = [9, 9, 9, 9, 4, 3, 2, 1, np.nan, np.nan]
    from_prop = [True] * 8 + [False] * 2
    rows, ids = P.select_rows(_part(centres, nodule, rank, from_prop), rec, 2, 2, 1, 3.0, np.random.default_rng(0))
    kept = set(rows.tolist())
    assert {8, 9} <= kept  # every added positive
    assert {0, 1} <= kept and 2 not in kept  # the two nearest hits only
    assert 3 not in kept  # the near miss
    assert {4, 5} <= kept  # the two top-ranked negatives
    assert len(kept & {6, 7}) == 1  # and one random other
    assert ids[rows.tolist().index(0)] == 0 and ids[rows.tolist().index(4)] == -1


def test_pack_then_fine_tune_then_chunks_load(tiny_data, tmp_path):
    """The whole path on two small synthetic chests: mine and pack, fine-tune a step, pick, join, load."""
    csv, root = tiny_data
    out = tmp_path / "pack"
    assert P.main(["--data", str(csv), "--cache", str(tmp_path / "cache"), "--out", str(out),
                   "--negatives-top", "6", "--negatives-random", "2", "--positive-copies", "1", "--hits-per-nodule", "1"]) == 0
    arrays, ids = read_pack([out])
    records = read_records_csv(csv)
    assert ids == [r.scan_id for r in records]
    # each scan's rows are a selection of what load_or_mine mined (the same cache)
    mined, _ = load_or_mine(records[0], str(tmp_path / "cache"), positive_copies=1, max_candidates=300, seed=0,
                            positive_rotations="axial")
    first = arrays["scan"] == 0
    assert first.sum() <= len(mined)
    # every nodule's ground-truth patch and copy are in, labelled with its index
    added = first & ~arrays["from_proposal"]
    assert sorted(set(arrays["nodule_id"][added].tolist())) == list(range(len(records[0].nodules)))
    assert (arrays["nodule"][added] == 1).all()
    assert arrays["patches"].dtype == np.uint8
    # --no-malignancy: the same rows with every malignancy label unknown (a rule's label kept out of the loss)
    assert (arrays["malignant"][arrays["nodule"] == 1] >= 0).any()
    assert P.main(["--data", str(csv), "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "pack-nm"),
                   "--negatives-top", "6", "--negatives-random", "2", "--positive-copies", "1", "--hits-per-nodule", "1",
                   "--no-malignancy"]) == 0
    unlabelled, _ = read_pack([tmp_path / "pack-nm"])
    assert (unlabelled["malignant"] == -1).all()
    for k in arrays:
        if k != "malignant":
            assert np.array_equal(unlabelled[k], arrays[k], equal_nan=arrays[k].dtype.kind == "f"), k

    metrics = {}
    for lr in ("1e-4", "0"):
        run = tmp_path / f"run-{lr}"
        result = TP.train(TP.get_args_parser().parse_args(
            ["--train", str(out), "--val", str(out), "--out", str(run), "--steps", "1", "--batch-size", "6",
             "--eval-every", "1", "--mine-every", "1", "--lr", lr, "--chunk-mb", "30", "--device", "cpu", "--frozen-bn"]))
        metrics[lr] = result
        assert [h["step"] for h in result["history"]] == [0, 1]
        v = result["history"][0]["val"]
        assert v["nodules"] == sum(len(r.nodules) for r in records)
        assert 0.0 <= v["cpm_proxy"] <= 1.0 and 0.0 <= v["patch_auc"] <= 1.0
        assert len(result["chunks"]) >= 2  # ResNet-50 in float16 (~47 MB) in 30 MB chunks
    # lr 0 changes nothing: the kept weights are the starting weights (step 0 is never beaten)
    assert metrics["0"]["best_step"] == 0 and metrics["0"]["improved_on_start"] is False
    dest = tmp_path / "picked"
    TP.pick([str(tmp_path / "run-1e-4"), str(tmp_path / "run-0")], str(dest))
    picked = json.loads((dest / "picked.json").read_text())
    assert picked["picked"] in {"run-1e-4", "run-0"}
    state = TP.load_state(str(TP.join_chunks(dest, tmp_path / "joined.pt")))
    from training.models.nodule_net import NoduleNet

    NoduleNet().load_state_dict(state)  # every key, every shape


def test_validation_proxy_counts_nodules_and_false_positives_per_scan():
    """Two scans, three nodules (one never proposed); negatives set the thresholds of the FROC points."""

    class Fixed(torch.nn.Module):  # the nodule logit is the patch's mean value, scaled
        def forward(self, x):
            m = x.float().mean(dim=(1, 2, 3)) * 10
            return m, -m, m * 0

    def pat(v):
        return np.full((3, 4, 4), v, np.float32)

    # scan 0: nodule 0 hit by proposals scoring 0.6 and 0.2; nodule 1 only as an added ground-truth row
    # scan 1: nodule 0 hit at 0.9; negatives 0.8 (scan 0), 0.4 (scan 1), -0.5 (scan 1)
    vals = [0.6, 0.2, 0.5, 0.9, 0.8, 0.4, -0.5]
    val = TP.Packed.__new__(TP.Packed)
    val.patches = torch.from_numpy(quantise(np.stack([pat(v) for v in vals])))
    val.scan_ids = ["a", "b"]
    val.np = {
        "nodule": np.array([1, 1, 1, 1, 0, 0, 0], np.int8),
        "malignant": np.array([1, 1, -1, 0, -1, -1, -1], np.int8),
        "scan": np.array([0, 0, 0, 1, 0, 1, 1], np.int32),
        "nodule_id": np.array([0, 0, 1, 0, -1, -1, -1], np.int32),
        "from_proposal": np.array([1, 1, 0, 1, 1, 1, 1], bool),
    }
    val.n = len(vals)
    m = TP.validation_metrics(Fixed(), val, torch.device("cpu"))
    assert m["nodules"] == 3 and m["nodules_with_hit"] == 2
    s = m["sensitivity"]
    # 1/8, 1/4 FP/scan allow no FP (2 scans): threshold 0.8 -> only the 0.9 nodule; 1/2 and 1 FP/scan
    # allow one: threshold 0.4 -> 0.9 and 0.6; never more than 2 of 3 (one nodule has no proposal)
    assert s["0.125"] == s["0.25"] == pytest.approx(1 / 3)
    assert s["0.5"] == s["1.0"] == s["8.0"] == pytest.approx(2 / 3)
    assert m["cpm_proxy"] == pytest.approx((2 * (1 / 3) + 5 * (2 / 3)) / 7)
    # malignancy: best hits 0.6 (label 1, prob sigmoid(-6)) and 0.9 (label 0, sigmoid(-9)): malignant ranks higher
    assert m["malignancy_auc"] == 1.0
