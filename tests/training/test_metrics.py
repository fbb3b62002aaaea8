"""Metrics and plots for the nodule detector and malignancy classifier, on hand-computed cases."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from training.data.annotations import NoduleAnnotation
from training.evaluation.metrics import (
    LUNA16_FP_RATES,
    GroundTruth,
    Prediction,
    auc_bootstrap,
    auc_difference_bootstrap,
    classification_report,
    confusion,
    cpm,
    cpm_difference_bootstrap,
    froc,
    froc_bootstrap,
    malignancy_auc,
    nodule_hits,
    operating_point,
    roc_auc,
    roc_curve,
    sensitivity_at,
    threshold_for_sensitivity,
)

# --------------------------------------------------------------------------------------------
# Binary classification
# --------------------------------------------------------------------------------------------

# 10 samples, 4 positives then 6 negatives.
Y10 = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
S10 = [0.9, 0.8, 0.4, 0.3, 0.7, 0.5, 0.2, 0.1, 0.35, 0.6]
# Threshold 0.5, positive when score >= 0.5:
#   positives 0.9, 0.8 -> TP = 2;  0.4, 0.3 -> FN = 2
#   negatives 0.7, 0.5 (equal counts as positive), 0.6 -> FP = 3;  0.2, 0.1, 0.35 -> TN = 3
#   accuracy    = (2 + 3) / 10 = 0.5
#   precision   = 2 / (2 + 3)  = 0.4
#   recall      = 2 / (2 + 2)  = 0.5 = sensitivity
#   specificity = 3 / (3 + 3)  = 0.5
#   F1          = 2 * 0.4 * 0.5 / (0.4 + 0.5) = 0.4 / 0.9 = 4/9  (= 2TP / (2TP + FP + FN) = 4/9)
# AUC: negatives below each positive: 0.9 -> 6, 0.8 -> 6, 0.4 -> 3 (0.2, 0.1, 0.35),
#   0.3 -> 2 (0.2, 0.1); no ties; AUC = 17 / (4 * 6) = 17/24.


def test_confusion_and_report_hand_computed() -> None:
    assert confusion(Y10, S10, 0.5) == {"tp": 2, "fp": 3, "tn": 3, "fn": 2}
    r = classification_report(Y10, S10, 0.5)
    assert r["accuracy"] == pytest.approx(0.5)
    assert r["precision"] == pytest.approx(0.4)
    assert r["recall"] == pytest.approx(0.5)
    assert r["sensitivity"] == pytest.approx(0.5)
    assert r["specificity"] == pytest.approx(0.5)
    assert r["f1"] == pytest.approx(4 / 9)
    assert (r["tp"], r["fp"], r["tn"], r["fn"], r["n"]) == (2, 3, 3, 2, 10)
    # booleans work like 0/1
    assert confusion(np.array(Y10, dtype=bool), S10, 0.5) == confusion(Y10, S10, 0.5)


def test_report_zero_divisions_are_nan() -> None:
    # nothing predicted positive: precision undefined; positives exist so F1 = 0
    r = classification_report([1, 0, 0], [0.2, 0.1, 0.3], threshold=0.9)
    assert math.isnan(r["precision"])
    assert r["recall"] == 0.0 and r["f1"] == 0.0 and r["specificity"] == 1.0
    # no positives at all, nothing predicted positive: recall and F1 undefined
    r = classification_report([0, 0], [0.1, 0.2], threshold=0.5)
    assert math.isnan(r["recall"]) and math.isnan(r["sensitivity"]) and math.isnan(r["f1"])
    assert r["accuracy"] == 1.0 and r["specificity"] == 1.0
    # no negatives: specificity undefined
    assert math.isnan(classification_report([1, 1], [0.1, 0.9], 0.5)["specificity"])


def test_classification_input_validation() -> None:
    with pytest.raises(ValueError, match="0/1"):
        confusion([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="length"):
        confusion([0, 1], [0.1], 0.5)
    with pytest.raises(ValueError, match="empty"):
        confusion([], [], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        confusion([0, 1], [0.1, math.nan], 0.5)


def _pairwise_auc(y: list[int], s: list[float]) -> float:
    pos = [b for a, b in zip(y, s, strict=True) if a == 1]
    neg = [b for a, b in zip(y, s, strict=True) if a == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_hand_computed_and_ties() -> None:
    assert roc_auc(Y10, S10) == pytest.approx(17 / 24)
    # Ties: positives 0.5, 0.5, 0.8; negatives 0.5, 0.2, 0.8.
    #   each 0.5 positive: tie with 0.5 (1/2) + beats 0.2 (1) + loses to 0.8 -> 1.5, twice -> 3
    #   0.8 positive: beats 0.5 and 0.2 (2) + tie with 0.8 (1/2) -> 2.5
    #   AUC = (3 + 2.5) / 9 = 11/18
    y = [1, 1, 0, 0, 1, 0]
    s = [0.5, 0.5, 0.5, 0.2, 0.8, 0.8]
    assert roc_auc(y, s) == pytest.approx(11 / 18)
    assert _pairwise_auc(y, s) == pytest.approx(11 / 18)
    assert roc_auc([0, 1, 0, 1], [0.3] * 4) == 0.5  # all tied


def test_roc_auc_matches_bruteforce_on_random_tied_scores() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        s = rng.integers(0, 5, n).astype(float)  # coarse scores: many ties
        yl, sl = y.tolist(), s.tolist()
        assert roc_auc(yl, sl) == pytest.approx(_pairwise_auc(yl, sl), abs=1e-12)
        fpr, tpr, _ = roc_curve(yl, sl)
        assert np.trapezoid(tpr, fpr) == pytest.approx(_pairwise_auc(yl, sl), abs=1e-12)


def test_roc_curve_points_with_ties() -> None:
    # thresholds 0.8: TP 1/3, FP 1/3;  0.5: TP 3/3, FP 2/3;  0.2: all
    fpr, tpr, thr = roc_curve([1, 1, 0, 0, 1, 0], [0.5, 0.5, 0.5, 0.2, 0.8, 0.8])
    np.testing.assert_allclose(fpr, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.8, 0.5, 0.2])


def test_roc_perfect_inverted_and_one_class() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    fpr, tpr, _ = roc_curve([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1, 1])
    for fn in (roc_auc, roc_curve):
        with pytest.raises(ValueError, match="both classes"):
            fn([1, 1, 1], [0.1, 0.2, 0.3])
        with pytest.raises(ValueError, match="both classes"):
            fn([0, 0], [0.1, 0.2])


def test_threshold_for_sensitivity() -> None:
    # positive scores, descending: 0.9, 0.8, 0.4, 0.3 -> sensitivities 1/4, 2/4, 3/4, 4/4
    assert threshold_for_sensitivity(Y10, S10, 0.5) == 0.8
    assert threshold_for_sensitivity(Y10, S10, 0.7) == 0.4
    assert threshold_for_sensitivity(Y10, S10, 0.75) == 0.4
    assert threshold_for_sensitivity(Y10, S10, 1.0) == 0.3
    assert threshold_for_sensitivity([1, 1, 1, 0], [0.9, 0.9, 0.1, 0.5], 0.5) == 0.9  # tie: 2/3
    for target in (0.5, 0.7, 0.75, 1.0):
        t = threshold_for_sensitivity(Y10, S10, target)
        assert classification_report(Y10, S10, t)["sensitivity"] >= target
    with pytest.raises(ValueError):
        threshold_for_sensitivity(Y10, S10, 0.0)
    with pytest.raises(ValueError, match="positive"):
        threshold_for_sensitivity([0, 0], [0.1, 0.2], 0.5)


def test_malignancy_auc_skips_unknown_labels() -> None:
    # known: malignant 0.9, 0.4; benign 0.2, 0.6 -> pairs won: 0.9>0.2, 0.9>0.6, 0.4>0.2 = 3/4
    labels = [True, False, None, 1, 0, math.nan]
    scores = [0.9, 0.2, 0.5, 0.4, 0.6, 0.1]
    assert malignancy_auc(labels, scores) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="both classes"):
        malignancy_auc([True, None, True], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="known"):
        malignancy_auc([None, None], [0.1, 0.2])


# --------------------------------------------------------------------------------------------
# Detection: FROC / CPM with the LUNA16 rules
# --------------------------------------------------------------------------------------------

TRUTHS = {
    "A": [((0.0, 0.0, 0.0), 10.0), ((50.0, 0.0, 0.0), 6.0)],  # A1 radius 5, A2 radius 3
    "B": [((0.0, 0.0, 0.0), 8.0)],  # B1 radius 4
}
IRRELEVANT = {"B": [((30.0, 30.0, 30.0), 6.0)]}  # radius 3
PREDICTIONS = {
    "A": [
        ((3.0, 4.0, 0.0), 0.9),  # p1: distance 5 from A1 = radius exactly -> hit A1 (best)
        ((1.0, 0.0, 0.0), 0.6),  # p2: distance 1 from A1 -> second hit on A1: ignored
        ((100.0, 0.0, 0.0), 0.7),  # p3: FP
        ((50.0, 0.0, 2.0), 0.5),  # p4: distance 2 from A2 -> hit A2
        ((20.0, 0.0, 0.0), 0.2),  # p5: FP
    ],
    "B": [
        ((0.0, 0.0, 4.5), 0.9),  # p6: distance 4.5 > 4 from B1 -> FP
        ((30.0, 31.0, 30.0), 0.95),  # p7: hits the irrelevant finding -> ignored
        ((-60.0, 0.0, 0.0), 0.5),  # p8: FP
    ],
}


def test_froc_toy_example_hand_computed() -> None:
    """2 scans, 3 nodules (A1, A2 in scan A; B1 in scan B, never found).

    Counted: TP (best hit per nodule) A1 = 0.9, A2 = 0.5; FP = 0.9 (p6), 0.7 (p3), 0.5 (p8),
    0.2 (p5); ignored: p2 (second hit on A1), p7 (irrelevant finding). Sensitivity = TP / 3,
    FPs/scan = FP / 2:

        threshold  TP  FP  FPs/scan  sensitivity
          +inf      0   0    0.0        0
          0.9       1   1    0.5       1/3
          0.7       1   2    1.0       1/3
          0.5       2   3    1.5       2/3
          0.2       2   4    2.0       2/3

    CPM (linear interpolation of that curve; held at 2/3 beyond 2 FPs/scan):
        1/8 -> 1/3 * (1/8) / (1/2) = 1/12;  1/4 -> 1/6;  1/2 -> 1/3;  1 -> 1/3;
        2 -> 2/3;  4 -> 2/3;  8 -> 2/3
        sum = (1 + 2 + 4 + 4 + 8 + 8 + 8) / 12 = 35/12;  CPM = 35/12 / 7 = 5/12.
    Also sensitivity at 1.25 FPs/scan = (1/3 + 2/3) / 2 = 1/2.
    """
    r = froc(PREDICTIONS, TRUTHS, IRRELEVANT)
    assert (r.n_nodules, r.n_scans, r.n_false_positives, r.n_ignored) == (3, 2, 4, 2)
    np.testing.assert_allclose(r.fps_per_scan, [0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(r.sensitivity, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_array_equal(r.thresholds, [np.inf, 0.9, 0.7, 0.5, 0.2])

    mean, per_rate = cpm(r)
    assert list(per_rate) == list(LUNA16_FP_RATES)
    expected = [1 / 12, 1 / 6, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3]
    np.testing.assert_allclose(list(per_rate.values()), expected)
    assert mean == pytest.approx(5 / 12)
    assert sensitivity_at(r, 1.25) == pytest.approx(0.5)

    # operating points are real curve points (no interpolation)
    assert operating_point(r, 1.0) == (0.9, 0.5, pytest.approx(1 / 3))  # best sens, fewest FPs
    assert operating_point(r, 2.0) == (0.5, 1.5, pytest.approx(2 / 3))
    assert operating_point(r, 0.25) == (math.inf, 0.0, 0.0)


def test_froc_double_hits_are_not_false_positives() -> None:
    truths = {"s": [((0.0, 0.0, 0.0), 10.0)]}
    preds = {"s": [((0.0, 0.0, 0.0), 0.9), ((1.0, 0.0, 0.0), 0.8), ((0.0, 2.0, 0.0), 0.7)]}
    r = froc(preds, truths)
    assert r.n_false_positives == 0 and r.n_ignored == 2
    np.testing.assert_allclose(r.fps_per_scan, [0, 0])
    np.testing.assert_allclose(r.sensitivity, [0, 1])
    assert cpm(r)[0] == 1.0


def test_froc_irrelevant_findings_ignored() -> None:
    without = froc(PREDICTIONS, TRUTHS)  # p7 (0.95) is now a false positive
    assert without.n_false_positives == 5 and without.n_ignored == 1
    np.testing.assert_allclose(without.fps_per_scan[:2], [0, 0.5])
    np.testing.assert_allclose(without.sensitivity[:2], [0, 0])
    # an irrelevant finding without diameter (LUNA16 writes -1) gets 10 mm
    r = froc({"s": [((4.0, 0.0, 0.0), 0.9)]}, {"s": [((50.0, 0.0, 0.0), 4.0)]}, {"s": [((0.0, 0.0, 0.0), -1.0)]})
    assert r.n_false_positives == 0 and r.n_ignored == 1
    # a prediction on both a nodule and an irrelevant finding is the nodule's hit
    r = froc({"s": [((0.0, 0.0, 0.0), 0.9)]}, {"s": [((0.0, 0.0, 0.0), 4.0)]}, {"s": [((1.0, 0.0, 0.0), 4.0)]})
    assert r.sensitivity[-1] == 1.0 and r.n_ignored == 0


def test_hit_exactly_at_radius() -> None:
    truth = [((10.0, 20.0, 30.0), 8.0)]
    on_sphere = [((14.0, 20.0, 30.0), 0.5)]
    beyond = [((14.0 + 1e-6, 20.0, 30.0), 0.5)]
    assert nodule_hits(on_sphere, truth, 0.0).found == [True]
    assert nodule_hits(beyond, truth, 0.0).found == [False]
    assert nodule_hits(beyond, truth, 0.0).false_positives == [0]
    assert froc({"s": on_sphere}, {"s": truth}).sensitivity[-1] == 1.0


def test_nodule_hits_report() -> None:
    # threshold 0.5 keeps p1, p2, p3, p4 (p5 = 0.2 dropped)
    h = nodule_hits(PREDICTIONS["A"], TRUTHS["A"], 0.5)
    assert h.found == [True, True] and h.best_prediction == [0, 3]
    assert h.best_score == [0.9, 0.5]
    assert h.false_positives == [2] and h.ignored == [1] and h.n_kept == 4
    assert (h.n_found, h.n_false_positives) == (2, 1)
    h = nodule_hits(PREDICTIONS["A"], TRUTHS["A"], 0.65)  # p1, p3 kept
    assert h.found == [True, False] and h.best_prediction == [0, -1]
    assert math.isnan(h.best_score[1])
    # scan B, irrelevant finding passed: p7 ignored; p6, p8 FPs; B1 missed
    h = nodule_hits(PREDICTIONS["B"], TRUTHS["B"], 0.0, IRRELEVANT["B"])
    assert h.found == [False] and h.false_positives == [0, 2] and h.ignored == [1]


def test_froc_accepts_objects_and_validates() -> None:
    truths = {"s": [NoduleAnnotation((0.0, 0.0, 0.0), 6.0)], "empty": []}
    preds = {"s": [Prediction((1.0, 1.0, 1.0), 0.8), Prediction((9.0, 9.0, 9.0), 0.3)]}
    r = froc(preds, truths, {"s": [GroundTruth((40.0, 0.0, 0.0), 5.0)]})
    assert r.n_scans == 2 and r.n_nodules == 1
    np.testing.assert_allclose(r.fps_per_scan, [0, 0, 0.5])
    np.testing.assert_allclose(r.sensitivity, [0, 1, 1])
    with pytest.raises(ValueError, match="absent"):
        froc({"other": []}, truths)
    with pytest.raises(ValueError, match="no ground-truth nodule"):
        froc({}, {"s": []})
    with pytest.raises(ValueError, match="empty"):
        froc({}, {})


def test_cpm_holds_last_sensitivity_and_vertical_steps_take_the_top() -> None:
    # one scan, 2 nodules found with 0 FPs, then nothing: curve (0,0) -> (0,1/2) -> (0,1)
    truths = {"s": [((0.0, 0.0, 0.0), 4.0), ((20.0, 0.0, 0.0), 4.0)]}
    preds = {"s": [((0.0, 0.0, 0.0), 0.9), ((20.0, 0.0, 0.0), 0.8)]}
    mean, per_rate = cpm(froc(preds, truths))
    assert mean == 1.0 and set(per_rate.values()) == {1.0}
    mean, _ = cpm(froc({}, truths))  # nothing predicted
    assert mean == 0.0


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _check_png(path: Path, figsize: tuple[float, float], dpi: int) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    img = mpimg.imread(path)
    assert img.shape[:2] == (round(figsize[1] * dpi), round(figsize[0] * dpi))
    assert float(img[..., :3].std()) > 0.01  # not blank
    assert not list(path.parent.glob("*.tmp"))  # atomic write left no temporary file


def test_froc_bootstrap_two_scans_hand_computed() -> None:
    """Scan A: its nodule found at 0.9, no false positive. Scan B: its nodule missed, one false
    positive at 0.8. A sample of two scans drawn with replacement is AA (p 1/4: sensitivity 1
    at every rate, CPM 1), BB (p 1/4: CPM 0) or AB/BA (p 1/2: the full data's curve). So the
    2.5th percentile of the CPM is 0, the 97.5th is 1, and about a quarter of samples have CPM 1.
    """
    preds = {"A": [((0.0, 0.0, 0.0), 0.9)], "B": [((50.0, 0.0, 0.0), 0.8)]}
    truths = {"A": [((0.0, 0.0, 0.0), 6.0)], "B": [((0.0, 0.0, 0.0), 6.0)]}
    full_cpm, full_rates = cpm(froc(preds, truths))
    # full data: TP 0.9 first (sensitivity 1/2 at 0 FPs/scan), then the FP (1/2 FP per scan)
    assert full_cpm == pytest.approx(0.5)
    b = froc_bootstrap(preds, truths, n_bootstrap=2000, seed=3)
    assert b.cpm == (pytest.approx(0.5), 0.0, 1.0)
    assert (b.n_bootstrap, b.n_used, b.confidence) == (2000, 2000, 0.95)
    for r, interval in b.sensitivity.items():
        assert interval == (pytest.approx(full_rates[r]), 0.0, 1.0)
    assert b.fp_grid[0] == pytest.approx(0.125) and b.fp_grid[-1] == pytest.approx(8.0)
    assert all(np.any(np.isclose(b.fp_grid, r)) for r in LUNA16_FP_RATES)
    np.testing.assert_allclose(b.band_low, 0.0)
    np.testing.assert_allclose(b.band_high, 1.0)
    # the share of all-A samples (about 1/4) shows through a 60 % interval's upper end: the
    # 80th percentile lies among the CPM-1 samples, the 70th among the CPM-0.5 ones
    assert froc_bootstrap(preds, truths, n_bootstrap=2000, seed=3, confidence=0.6).cpm.high == 1.0
    assert froc_bootstrap(preds, truths, n_bootstrap=2000, seed=3, confidence=0.4).cpm.high == pytest.approx(0.5)
    # deterministic for a seed
    again = froc_bootstrap(preds, truths, n_bootstrap=2000, seed=3)
    assert again.cpm == b.cpm
    np.testing.assert_array_equal(again.band_low, b.band_low)


def test_froc_bootstrap_identical_scans_give_a_point_interval() -> None:
    """When every scan is alike, every sample is the full data: the interval is the estimate."""
    scan = [((0.0, 0.0, 0.0), 0.9), ((30.0, 0.0, 0.0), 0.7), ((0.0, 40.0, 0.0), 0.3), ((9.0, 9.0, 9.0), 0.2)]
    truth = [((0.0, 0.0, 0.0), 8.0), ((9.0, 9.0, 9.0), 4.0)]
    preds = {k: scan for k in "abcde"}
    truths = {k: truth for k in "abcde"}
    b = froc_bootstrap(preds, truths, n_bootstrap=50)
    assert b.cpm.low == pytest.approx(b.cpm.estimate) and b.cpm.high == pytest.approx(b.cpm.estimate)
    full = froc(preds, truths)
    np.testing.assert_allclose(b.band_low, sensitivity_at(full, b.fp_grid))
    np.testing.assert_allclose(b.band_high, sensitivity_at(full, b.fp_grid))


def test_froc_bootstrap_skips_samples_without_nodules_and_validates() -> None:
    preds = {"A": [((0.0, 0.0, 0.0), 0.9)], "B": [((50.0, 0.0, 0.0), 0.8)]}
    truths = {"A": [((0.0, 0.0, 0.0), 6.0)], "B": []}
    b = froc_bootstrap(preds, truths, n_bootstrap=4000, seed=1)
    # samples BB (p 1/4) have no nodule
    assert 0.7 * 4000 < b.n_used < 0.8 * 4000
    assert b.cpm.low <= b.cpm.estimate <= b.cpm.high
    with pytest.raises(ValueError, match="n_bootstrap"):
        froc_bootstrap(preds, truths, n_bootstrap=0)
    with pytest.raises(ValueError, match="confidence"):
        froc_bootstrap(preds, truths, confidence=1.0)
    with pytest.raises(ValueError, match="no ground-truth nodule"):
        froc_bootstrap(preds, {"A": [], "B": []})


def test_cpm_difference_bootstrap_hand_computed() -> None:
    """Scans s1 and s2, a nodule each. Model A finds s1's at 0.9 and misses s2's, with a false
    positive at 0.8 there: CPM 1/2 (sensitivity 1/2 from 0 FPs/scan on). Model B finds both,
    no false positive: CPM 1. Paired samples: s1 s1 (p 1/4) -> B - A = 0; s2 s2 (p 1/4) -> 1;
    s1 s2 (p 1/2) -> 1/2. So the interval is [0, 1] and B is not better in about 1/4 of samples.
    """
    truths = {"s1": [((0.0, 0.0, 0.0), 6.0)], "s2": [((0.0, 0.0, 0.0), 6.0)]}
    a = {"s1": [((0.0, 0.0, 0.0), 0.9)], "s2": [((40.0, 0.0, 0.0), 0.8)]}
    b = {"s1": [((0.0, 0.0, 0.0), 0.9)], "s2": [((1.0, 0.0, 0.0), 0.95)]}
    d = cpm_difference_bootstrap(a, b, truths, n_bootstrap=4000, seed=2)
    assert d.estimate == pytest.approx(0.5)
    assert (d.low, d.high) == (pytest.approx(0.0), pytest.approx(1.0))
    assert 0.21 < d.p_not_better < 0.29 and d.n_used == 4000
    # a model against itself: no difference in any sample
    same = cpm_difference_bootstrap(b, b, truths, n_bootstrap=100)
    assert same == (0.0, 0.0, 0.0, 1.0, 100)
    with pytest.raises(ValueError, match="n_bootstrap"):
        cpm_difference_bootstrap(a, b, truths, n_bootstrap=0)


def test_auc_bootstrap() -> None:
    est = auc_bootstrap(Y10, S10, n_bootstrap=500, seed=0)
    assert est.estimate == pytest.approx(17 / 24)
    assert 0.0 <= est.low < est.estimate < est.high <= 1.0
    # perfect separation stays perfect in every sample
    assert auc_bootstrap([1, 1, 0, 0, 0], [0.9, 0.8, 0.3, 0.2, 0.1], n_bootstrap=200) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="both classes"):
        auc_bootstrap([1, 1], [0.5, 0.6])


def test_auc_difference_bootstrap_is_paired() -> None:
    y = [1, 1, 1, 0, 0, 0, 1, 0]
    base = [0.6, 0.4, 0.7, 0.5, 0.3, 0.2, 0.45, 0.65]
    better = [0.9, 0.8, 0.7, 0.1, 0.3, 0.2, 0.6, 0.5]  # separates perfectly
    d = auc_difference_bootstrap(y, base, better, n_bootstrap=400, seed=0)
    assert d.estimate == pytest.approx(1.0 - roc_auc(np.array(y), np.array(base)))
    assert 0.0 <= d.low < d.estimate < d.high  # never negative: the new scores separate every resample
    # the same scores: exactly 0 in every resample
    assert auc_difference_bootstrap(y, base, base, n_bootstrap=100) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="both classes"):
        auc_difference_bootstrap([1, 1], [0.5, 0.6], [0.5, 0.6])


def test_plots_write_readable_pngs(tmp_path: Path) -> None:
    from training.evaluation import plots

    assert "research use only" in plots.FOOTER.lower()
    dpi = 60
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.2 / e + 0.01 * e,
            "train_acc": 1 - 0.5 / e,
            "val_acc": 0.9 - 0.4 / e,
        }
        for e in range(1, 8)
    ]
    history[3]["val_acc"] = None  # missing values are skipped
    r = froc(PREDICTIONS, TRUTHS, IRRELEVANT)
    cases = [
        (plots.plot_history, (history,), (10.0, 4.0), "history.png"),
        (plots.plot_roc, (Y10, S10), (5.0, 5.0), "roc.png"),
        (plots.plot_froc, (r,), (6.0, 4.5), "froc.png"),
        (plots.plot_confusion_matrix, (confusion(Y10, S10, 0.5),), (5.0, 4.5), "cm.png"),
        (plots.plot_malignancy_roc, ([True, False, None, 1, 0], [0.9, 0.2, 0.5, 0.4, 0.6]), (5.0, 5.0), "mal.png"),
    ]
    for fn, args, figsize, name in cases:
        out = fn(*args, tmp_path / "sub" / name, figsize=figsize, dpi=dpi)
        assert out == tmp_path / "sub" / name
        _check_png(out, figsize, dpi)
    # the FROC with its bootstrap band
    band = froc_bootstrap(PREDICTIONS, TRUTHS, IRRELEVANT, n_bootstrap=50)
    out = plots.plot_froc(r, tmp_path / "froc-band.png", band=band, figsize=(6.0, 4.5), dpi=dpi)
    _check_png(out, (6.0, 4.5), dpi)
    # overwrite in place works; a square matrix with names works too
    out = plots.plot_confusion_matrix(
        [[5, 1, 0], [2, 7, 1], [0, 0, 0]], tmp_path / "sub" / "cm.png", class_names=("a", "b", "c"), dpi=dpi
    )
    _check_png(out, (5.5, 5.0), dpi)
    with pytest.raises(ValueError, match="names"):
        plots.plot_confusion_matrix([[1, 2], [3, 4]], tmp_path / "x.png", class_names=("a",))
