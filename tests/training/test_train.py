"""A tiny real training run: mining, balanced sampling, augmentation, checkpoint, resume, NaN stop."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from training.data.annotations import NoduleAnnotation, ScanRecord  # noqa: E402
from training.data.dataset import axial_rotations, cache_key, label_candidates, random_rotations  # noqa: E402
from training.engine import train as T  # noqa: E402


def _args(csv, root, out, **extra):
    argv = ["--data", str(csv), "--val-fraction", "0.5", "--cache", str(root / "cache"), "--out", str(out),
            "--epochs", "3", "--batch-size", "16", "--steps-per-epoch", "6", "--positive-copies", "2",
            "--max-candidates", "150", "--lr", "3e-4", "--quiet", "--threads", "2"]
    for k, v in extra.items():
        flag = f"--{k.replace('_', '-')}"
        argv += [flag] if v is True else [flag, str(v)]
    return T.get_args_parser().parse_args(argv)


def test_tiny_training_lowers_the_loss_and_resumes(tiny_data, tmp_path):
    csv, root = tiny_data
    result = T.main(_args(csv, root, tmp_path / "run"))
    history = result["history"]
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"], [h["train_loss"] for h in history]
    assert all(np.isfinite(h["val_loss"]) for h in history)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert {"model", "optimizer", "lr_scheduler", "args", "epoch", "history"} <= set(ckpt)
    assert (tmp_path / "run" / "loss_accuracy.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "run" / "data_summary.json").read_text())
    assert summary["train"]["proposal_recall"] == 1.0
    # resume: one more epoch continues the same history
    more = T.main(_args(csv, root, tmp_path / "run", epochs=4, resume=tmp_path / "run" / "checkpoint.pt"))
    assert len(more["history"]) == 4 and more["history"][:3] == history


def test_non_finite_loss_stops(tiny_data, tmp_path, monkeypatch):
    csv, root = tiny_data
    real_batch = T._batch

    def poisoned(ps, idx, device):
        x, *rest = real_batch(ps, idx, device)
        x[0, 0, 0, 0] = float("nan")
        return (x, *rest)

    monkeypatch.setattr(T, "_batch", poisoned)
    with pytest.raises(SystemExit, match="non-finite loss"):
        T.main(_args(csv, root, tmp_path / "nan", epochs=1, no_augment=True))


def test_labels_and_rotations():
    centres = np.array([[0.0, 0, 0], [4.9, 0, 0], [20.0, 0, 0]])
    nodules = (NoduleAnnotation((0.0, 0.0, 0.0), 10.0), NoduleAnnotation((21.0, 0.0, 0.0), 4.0))
    assert label_candidates(centres, nodules).tolist() == [0, 0, 1]
    r = random_rotations(50, np.random.default_rng(0))
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0)


def test_axial_rotations_keep_the_slice_plane_and_the_cache_key():
    from nodeview.core.detect.patches import DEFAULT_SPEC

    r = axial_rotations(200, np.random.default_rng(1))
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0)
    np.testing.assert_array_equal(r[:, 2], np.broadcast_to([0.0, 0.0, 1.0], (200, 3)))  # z maps to z
    np.testing.assert_array_equal(r[:, :, 2], np.broadcast_to([0.0, 0.0, 1.0], (200, 3)))
    angles = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    assert angles.min() < -2.5 and angles.max() > 2.5  # the whole circle, not a narrow range
    rec = ScanRecord("s", "some/path", (NoduleAnnotation((1.0, 2.0, 3.0), 6.0),))
    # "3d" is how every cache before the option was written: its key must not change
    assert cache_key(rec, DEFAULT_SPEC, 8, 300) == cache_key(rec, DEFAULT_SPEC, 8, 300, "3d")
    assert cache_key(rec, DEFAULT_SPEC, 8, 300, "axial") != cache_key(rec, DEFAULT_SPEC, 8, 300)


def test_augment_flips_are_physically_consistent():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 3, 8, 8)
    x[:, 0, 2, 6] = 1  # axial: posterior-left marker (row +y, col +x)
    x[:, 1, 2, 6] = 1  # coronal: superior-left marker
    out, d = T.augment(x, torch.full((64,), 10.0), gen)
    # a left-right flip moves the marker in the axial AND coronal planes together
    axial_right = out[:, 0, :, :4].sum(dim=(1, 2)) > out[:, 0, :, 4:].sum(dim=(1, 2))
    coronal_right = out[:, 1, :, :4].sum(dim=(1, 2)) > out[:, 1, :, 4:].sum(dim=(1, 2))
    assert torch.equal(axial_right, coronal_right) and 5 < int(axial_right.sum()) < 59
    assert torch.all((d > 8.9) & (d < 11.1))


def test_evaluate_writes_metrics_and_plots(tiny_data, tmp_path):
    from training.evaluation import evaluate as E

    csv, root = tiny_data
    T.main(_args(csv, root, tmp_path / "run", epochs=1))
    args = E.get_args_parser().parse_args(["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--data", str(csv),
                                           "--cache", str(root / "cache"), "--out", str(tmp_path / "eval"),
                                           "--max-candidates", "60", "--quiet"])
    metrics = E.main(args)
    assert metrics["scans"] == 2 and metrics["nodules"] == 12
    assert 0.0 <= metrics["cpm"] <= 1.0 and set(metrics["sensitivity_at_fp_rates"]) == {
        "0.125", "0.25", "0.5", "1.0", "2.0", "4.0", "8.0"}
    cls = metrics["candidate_classification"]
    for key in ("accuracy", "precision", "recall", "f1", "sensitivity", "specificity"):
        assert key in cls
    for png in ("roc.png", "froc.png", "confusion_matrix.png", "malignancy_roc.png"):
        assert (tmp_path / "eval" / png).stat().st_size > 1000, png
    assert (tmp_path / "eval" / "predictions.csv").read_text().count("\n") > 50
    # the breakdown covers every nodule once per grouping and agrees with the overall figures
    groups = metrics["by_group_at_threshold"]
    for rows in groups.values():
        assert sum(r["nodules"] for r in rows.values()) == metrics["nodules"]
        found = sum(r["found"] for r in rows.values())
        assert found == round(metrics["sensitivity_at_threshold"] * metrics["nodules"])
        assert all(r["found"] <= r["proposed"] <= r["nodules"] for r in rows.values())
    assert "slice" in groups  # the tiny scans' thickness, read from their DICOM headers
    by_slice = metrics["cpm_by_slice"]
    assert sum(g["scans"] for g in by_slice.values()) == 2
    assert sum(g["nodules"] for g in by_slice.values()) == metrics["nodules"]
    assert all(isinstance(v["slice_thickness_mm"], float) for v in metrics["per_scan"].values())
    # bootstrap intervals (scans resampled), around the estimates
    ci = metrics["cpm_ci95"]
    assert ci["n_bootstrap"] == 1000 and ci["resampled"] == "scans" and 0 < ci["n_used"] <= 1000
    assert 0.0 <= ci["low"] <= metrics["cpm"] <= ci["high"] <= 1.0
    for rate, (lo, hi) in ci["sensitivity_at_fp_rates"].items():
        assert lo <= metrics["sensitivity_at_fp_rates"][rate] <= hi
    for g in by_slice.values():
        assert g["cpm_ci95"][0] <= g["cpm"] <= g["cpm_ci95"][1]
    if "malignancy_auc_ci95" in metrics:
        lo, hi = metrics["malignancy_auc_ci95"]
        assert lo <= metrics["malignancy_auc"] <= hi


def test_sensitivity_by_group_hand_computed():
    from training.data.annotations import NoduleAnnotation as N
    from training.evaluation.evaluate import sensitivity_by_group, size_group

    assert [size_group(d) for d in (3.0, 4.99, 5.0, 9.9, 10.0, 30.0)] == [
        "3-5 mm", "3-5 mm", "5-10 mm", "5-10 mm", ">= 10 mm", ">= 10 mm"]
    nodules = [N((0, 0, 0), 4.0, kind="solid", location="isolated"),
               N((0, 0, 0), 4.5, kind="calcified", location="juxta-pleural"),
               N((0, 0, 0), 12.0, kind="solid", location="juxta-pleural")]
    got = sensitivity_by_group(nodules, proposed=[True, False, True], found=[False, False, True])
    assert list(got["size"]) == ["3-5 mm", ">= 10 mm"]  # ordered by size, empty groups left out
    assert got["size"]["3-5 mm"] == {"nodules": 2, "proposed": 1, "found": 0, "sensitivity": 0.0}
    assert got["size"][">= 10 mm"] == {"nodules": 1, "proposed": 1, "found": 1, "sensitivity": 1.0}
    assert got["kind"]["solid"] == {"nodules": 2, "proposed": 2, "found": 1, "sensitivity": 0.5}
    assert got["location"]["juxta-pleural"]["sensitivity"] == 0.5


def test_slice_groups_and_cpm_by_slice_hand_computed(tmp_path):
    import SimpleITK as sitk

    from training.data.annotations import NoduleAnnotation as N
    from training.data.annotations import ScanRecord
    from training.evaluation.evaluate import cpm_by_slice, sensitivity_by_group, slice_group, slice_thickness_mm

    assert [slice_group(t) for t in (1.0, 2.5, 2.6, 5.0)] == ["<= 2.5 mm", "<= 2.5 mm", "> 2.5 mm", "> 2.5 mm"]
    nodules = [N((0, 0, 0), 4.0), N((0, 0, 0), 8.0), N((0, 0, 0), 12.0)]
    got = sensitivity_by_group(nodules, [True, True, False], [True, False, False], slice_mm=[1.25, 5.0, 5.0])
    assert got["slice"] == {"<= 2.5 mm": {"nodules": 1, "proposed": 1, "found": 1, "sensitivity": 1.0},
                            "> 2.5 mm": {"nodules": 2, "proposed": 1, "found": 0, "sensitivity": 0.0}}
    assert "slice" not in sensitivity_by_group(nodules, [True] * 3, [True] * 3)
    # thin scan: its nodule is the top prediction (sensitivity 1 at every rate); thick scan: only a
    # false positive, so nothing is found there; each group's CPM is computed on its own scans
    truths = {"thin": [((0.0, 0.0, 0.0), 6.0)], "thick": [((50.0, 0.0, 0.0), 6.0)]}
    preds = {"thin": [((1.0, 0.0, 0.0), 0.9)], "thick": [((0.0, 40.0, 0.0), 0.95)]}
    by = cpm_by_slice(preds, truths, {"thin": 1.0, "thick": 5.0})
    assert by["<= 2.5 mm"]["cpm"] == 1.0 and by["> 2.5 mm"]["cpm"] == 0.0
    assert by["<= 2.5 mm"]["scans"] == by["> 2.5 mm"]["nodules"] == 1
    # header-only thickness of an image file: its z spacing
    image = sitk.Image(8, 8, 4, sitk.sitkInt16)
    image.SetSpacing((0.7, 0.7, 1.8))
    sitk.WriteImage(image, str(tmp_path / "scan.mhd"))
    assert slice_thickness_mm(ScanRecord("s", str(tmp_path / "scan.mhd"))) == pytest.approx(1.8)


def test_hard_negative_mining_and_near_miss_exclusion(tiny_data, tmp_path):
    from training.data.annotations import read_records_csv
    from training.data.dataset import PatchSet, near_nodule

    csv, root = tiny_data
    result = T.main(_args(csv, root, tmp_path / "hard", epochs=1, hard_negative_fraction=0.5, mine_subset=64,
                          hard_pool=0.25, ignore_near_mm=4, positive_weighting="nodule",
                          positive_rotations="axial", thick_slice_weight=3))
    assert np.isfinite(result["history"][-1]["train_loss"])
    saved = json.loads((tmp_path / "hard" / "args.json").read_text())
    assert saved["positive_weighting"] == "nodule" and saved["positive_rotations"] == "axial"
    # the axial copies were mined into their own cache files, beside the "3d" ones
    from nodeview.core.detect.patches import DEFAULT_SPEC
    from training.data.annotations import read_records_csv as _read

    for rec in _read(csv):
        key = cache_key(rec, DEFAULT_SPEC, 2, 150, "axial")
        assert (root / "cache" / f"{rec.scan_id}-{key}.npz").exists()
    summary = json.loads((tmp_path / "hard" / "data_summary.json").read_text())
    assert summary["train"]["negatives_left_out_near_nodules"] >= 0
    assert summary["train"]["thick_slice_scans"] >= 0  # counted from the headers when the option is set

    # near_nodule: outside the radius but within radius + margin, per scan
    rec = read_records_csv(csv)[0]
    nod = rec.nodules[0]
    c = np.asarray(nod.center_xyz_mm, dtype=np.float32)
    r = max(nod.diameter_mm / 2, 1.5)
    offsets = np.array([[0, 0, 0], [r + 1.0, 0, 0], [r + 3.5, 0, 0], [r + 5.0, 0, 0]], dtype=np.float32)
    far = np.array([[1e4, 1e4, 1e4]], dtype=np.float32)
    centres = np.concatenate([c + offsets, far, c[None]])
    n = len(centres)
    ps = PatchSet(np.zeros((n, 3, 2, 2), np.float16), np.zeros(n, np.int8), np.zeros(n, np.int8),
                  np.zeros(n, np.float32), np.array([0] * 5 + [1], np.int32), centres, np.ones(n, bool),
                  [rec.scan_id, "other-scan"])
    got = near_nodule(ps, [rec], 4.0)
    others = [x for x in rec.nodules[1:] if np.linalg.norm(np.asarray(x.center_xyz_mm) - c) < r + 10]
    if not others:  # the expected pattern holds when no second nodule is close by
        assert got.tolist() == [False, True, True, False, False, False]
    assert not near_nodule(ps, [rec], 0.0).any()

    # mining keeps the top-scored negatives
    class Fixed(torch.nn.Module):
        def forward(self, x):
            s = x.flatten(1).mean(1)
            return s, s, s

    patches = np.zeros((10, 3, 2, 2), np.float16)
    patches[:, 0, 0, 0] = np.arange(10)
    ps2 = PatchSet(patches, np.zeros(10, np.int8), np.zeros(10, np.int8), np.zeros(10, np.float32),
                   np.zeros(10, np.int32), np.zeros((10, 3), np.float32), np.ones(10, bool), ["s"])
    args = T.get_args_parser().parse_args(["--data", "x", "--mine-subset", "6", "--hard-pool", "0.5"])
    hard = T.mine_hard_negatives(Fixed(), ps2, np.array([1, 3, 5, 7, 9]), args, np.random.default_rng(0),
                                 torch.device("cpu"))
    assert sorted(hard.tolist()) == [7, 9]  # round(5 * 0.5) = 2 kept: the two highest scores


def test_evaluation_applies_the_apps_nms_per_scan():
    from nodeview.core.detect.candidates import merge_findings
    from training.data.dataset import PatchSet
    from training.evaluation.evaluate import app_nms

    centres = np.array([[0, 0, 0], [3, 0, 0], [30, 0, 0], [0, 0, 0], [1, 0, 0]], np.float32)
    n = len(centres)
    ps = PatchSet(
        np.zeros((n, 3, 2, 2), np.float16),
        np.zeros(n, np.int8),
        np.zeros(n, np.int8),
        np.zeros(n, np.float32),
        np.array([0, 0, 0, 1, 1], np.int32),
        centres,
        np.array([True, True, True, True, False]),  # the last is an added ground-truth copy
        ["a", "b"],
    )
    scores = {"nodule_prob": np.array([0.5, 0.9, 0.8, 0.7, 0.99]), "diameter_mm": np.full(n, 8.0)}
    # scan a: 0 and 1 are 3 mm apart (< 4 mm radius): the better, 1, stays; 2 is far; scan b: 3 alone
    keep, centres_out = app_nms(ps, scores)
    assert keep.tolist() == [False, True, True, True, False]
    assert [m.index for m in merge_findings(centres[:3], scores["nodule_prob"][:3], scores["diameter_mm"][:3])] == [1, 2]
    # finding 1's centre: 0 scores 0.5 < 0.9 * 0.9, so it stays at candidate 1; the others are their own
    np.testing.assert_allclose(centres_out, centres)
    scores["nodule_prob"][0] = 0.85  # now within the score fraction: the centre moves to the weighted mean
    keep, centres_out = app_nms(ps, scores)
    assert keep.tolist() == [False, True, True, True, False]
    np.testing.assert_allclose(centres_out[1], [3 * 0.9 / (0.9 + 0.85), 0, 0], rtol=1e-6)


def test_cache_keeps_rank_scores_and_fills_in_old_caches(tiny_data, tmp_path):
    """Mined patches keep each proposal's ranker score; a cache written before that field existed
    loads with nan scores and, when they are needed, gets them from the proposals run again."""
    from nodeview.core.detect.candidates import propose
    from nodeview.core.detect.patches import DEFAULT_SPEC
    from nodeview.core.io.study import open_study
    from training.data.annotations import read_records_csv
    from training.data.dataset import cache_key, load_or_mine

    csv, _ = tiny_data
    record = read_records_csv(csv)[0]
    part, _ = load_or_mine(record, tmp_path / "cache", positive_copies=1, max_candidates=40)
    volume = open_study(record.path)
    expected = [c.rank_score for c in propose(volume.hu_zyx, volume.geometry, max_candidates=40)]
    np.testing.assert_allclose(part.rank_score[part.from_proposal], expected, rtol=1e-6)
    assert np.isnan(part.rank_score[~part.from_proposal]).all()
    # an old cache: the same file without rank_score
    path = tmp_path / "cache" / f"{record.scan_id}-{cache_key(record, DEFAULT_SPEC, 1, 40)}.npz"
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if k != "rank_score"}
    np.savez(path, **old)
    again, _ = load_or_mine(record, tmp_path / "cache", positive_copies=1, max_candidates=40)
    assert np.isnan(again.rank_score).all()
    filled, _ = load_or_mine(record, tmp_path / "cache", positive_copies=1, max_candidates=40, need_rank_scores=True)
    np.testing.assert_allclose(filled.rank_score[filled.from_proposal], expected, rtol=1e-6)
    with np.load(path) as z:
        assert "rank_score" in z.files  # written back
    # a cache whose candidates are not what the proposals give now is refused, not silently mixed
    old["centre_xyz_mm"] = old["centre_xyz_mm"] + 1.0
    np.savez(path, **old)
    with pytest.raises(RuntimeError, match="differ from the cached"):
        load_or_mine(record, tmp_path / "cache", positive_copies=1, max_candidates=40, need_rank_scores=True)


def test_evaluate_chooses_the_rank_weight_and_scores_like_the_app(tiny_data, tmp_path):
    import csv as csv_module

    from nodeview.core.detect.candidates import fuse_scores
    from training.evaluation import evaluate as E

    csv, root = tiny_data
    T.main(_args(csv, root, tmp_path / "run", epochs=1))
    common = ["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--data", str(csv), "--cache",
              str(root / "cache"), "--max-candidates", "60", "--quiet"]
    chosen = E.main(E.get_args_parser().parse_args(common + ["--out", str(tmp_path / "a"), "--choose-rank-weight"]))
    tried = chosen["cpm_by_rank_weight"]
    assert set(tried) == {str(w) for w in E.RANK_WEIGHTS}
    assert chosen["cpm"] == max(tried.values()) and tried[str(chosen["rank_weight"])] == chosen["cpm"]
    fixed = E.main(E.get_args_parser().parse_args(common + ["--out", str(tmp_path / "b"), "--rank-weight", "0.75"]))
    assert fixed["rank_weight"] == 0.75 and fixed["cpm"] == pytest.approx(tried["0.75"])
    with open(tmp_path / "b" / "predictions.csv") as fh:
        rows = [r for r in csv_module.DictReader(fh) if r["from_proposal"] == "1"]
    p = np.array([float(r["nodule_prob"]) for r in rows])
    rank = np.array([float(r["rank_score"]) for r in rows])
    score = np.array([float(r["score"]) for r in rows])
    assert np.all(np.isfinite(rank)) and not np.allclose(score, p)
    mid = (p > 0.01) & (p < 0.99)  # the CSV rounds to 5 decimals: compare where that does not saturate
    assert mid.sum() >= 5
    np.testing.assert_allclose(score[mid], fuse_scores(p[mid], rank[mid], 0.75), atol=1e-3)


def test_nodule_balanced_weights_give_each_nodule_the_same_share():
    from training.data.dataset import PatchSet

    # scan 0: a large nodule with 6 positive patches and a small one with 2; scan 1: one nodule with
    # the small one's diameter (another scan: another nodule); one negative
    scan = np.array([0] * 6 + [0, 0] + [1] + [0], np.int32)
    diam = np.array([20.0] * 6 + [3.5, 3.5] + [3.5] + [np.nan], np.float32)
    nodule = np.array([1] * 9 + [0], np.int8)
    n = len(scan)
    ps = PatchSet(np.zeros((n, 3, 2, 2), np.float16), nodule, np.zeros(n, np.int8), diam, scan,
                  np.zeros((n, 3), np.float32), np.ones(n, bool), ["a", "b"])
    pos = np.flatnonzero(nodule == 1)
    w = T.nodule_balanced_weights(ps, pos)
    assert w.sum() == pytest.approx(1.0)
    assert w[:6].sum() == pytest.approx(1 / 3) and w[6:8].sum() == pytest.approx(1 / 3)
    assert w[8] == pytest.approx(1 / 3)
    args = T.get_args_parser().parse_args(["--data", "x"])
    assert args.positive_weighting == "patch"  # the default draws patches uniformly, as before


def test_thick_slice_weights_scale_the_draws_of_thick_scans():
    from training.data.dataset import PatchSet

    scan = np.array([0, 0, 1, 1, 1, 2], np.int32)  # scans a, b, c; b is thick
    n = len(scan)
    ps = PatchSet(np.zeros((n, 3, 2, 2), np.float16), np.zeros(n, np.int8), np.zeros(n, np.int8),
                  np.full(n, np.nan, np.float32), scan, np.zeros((n, 3), np.float32), np.ones(n, bool),
                  ["a", "b", "c"])
    w = T.thick_slice_weights(ps, {"b"}, 3.0)
    np.testing.assert_array_equal(w, [1, 1, 3, 3, 3, 1])
    idx = np.array([0, 2, 5])
    np.testing.assert_allclose(T._draw_probabilities(None, w, idx), [0.2, 0.6, 0.2])
    # with nodule-balanced positives the two multiply
    np.testing.assert_allclose(T._draw_probabilities(np.array([0.5, 0.25, 0.25]), w, idx), [1 / 3, 1 / 2, 1 / 6])
    assert T._draw_probabilities(None, None, idx) is None  # weight 1: the draws stay as before
    assert T.get_args_parser().parse_args(["--data", "x"]).thick_slice_weight == 1.0
