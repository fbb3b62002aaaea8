"""Evaluation metrics for the nodule detector and the malignancy classifier (pure numpy).

Two families:

* **Binary classification over candidates** (nodule vs. not, malignant vs. benign):
  :func:`confusion`, :func:`classification_report`, :func:`roc_curve`, :func:`roc_auc`,
  :func:`threshold_for_sensitivity` and :func:`malignancy_auc`. A sample is predicted positive
  when ``score >= threshold``.
* **Detection, per scan, with the LUNA16 rules**: :func:`froc`, :func:`cpm`,
  :func:`operating_point` and :func:`nodule_hits`; :func:`froc_bootstrap` and
  :func:`auc_bootstrap` give percentile-bootstrap confidence intervals.

LUNA16 detection rules implemented here (after ``noduleCADEvaluationLIDC.py`` of the LUNA16
challenge):

* A prediction *hits* a ground-truth nodule when its Euclidean distance to the nodule centre is
  ``<= diameter_mm / 2``. (The LUNA16 script uses a strict ``<``; here a prediction exactly on
  the sphere counts as a hit. Only predictions at exactly that distance differ.)
* Each nodule counts once, with the score of its highest-scoring hit. The other hits on that
  nodule are ignored: neither true nor false positives. As in LUNA16 a prediction that hits two
  overlapping nodules may be the best hit of both.
* A prediction hitting an *irrelevant finding* (LUNA16 ``annotations_excluded.csv``) and no
  nodule is ignored. Irrelevant findings without a positive diameter get 10 mm, as in LUNA16.
* Every other prediction is a false positive.
* Nodules never hit count in the denominator of the sensitivity (they can never be found).

All coordinates are millimetres (LPS, the LUNA16 world frame); only distances matter.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "LUNA16_FP_RATES",
    "FROCBootstrap",
    "FROCResult",
    "GroundTruth",
    "Interval",
    "NoduleHits",
    "OperatingPoint",
    "PairedDifference",
    "Prediction",
    "auc_bootstrap",
    "classification_report",
    "confusion",
    "cpm",
    "cpm_difference_bootstrap",
    "froc",
    "froc_bootstrap",
    "is_unknown_label",
    "malignancy_auc",
    "nodule_hits",
    "operating_point",
    "roc_auc",
    "roc_curve",
    "sensitivity_at",
    "threshold_for_sensitivity",
]

#: The seven FP-per-scan rates whose mean sensitivity is the LUNA16 CPM score.
LUNA16_FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

#: Diameter LUNA16 gives to irrelevant findings whose diameter is unknown (-1 in the CSV).
IRRELEVANT_DEFAULT_DIAMETER_MM = 10.0


# --------------------------------------------------------------------------------------------
# Binary classification
# --------------------------------------------------------------------------------------------


def _binary_inputs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Validate and convert labels (0/1 or bool) and scores (finite floats) to 1-D arrays."""
    t = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if t.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y_true and y_score must be 1-D, got shapes {t.shape} and {s.shape}")
    if t.shape != s.shape:
        raise ValueError(f"y_true and y_score differ in length: {t.shape[0]} vs {s.shape[0]}")
    if t.size == 0:
        raise ValueError("empty input: need at least one sample")
    if t.dtype != np.bool_:
        tf = t.astype(np.float64)
        if not np.all((tf == 0) | (tf == 1)):
            raise ValueError("y_true must contain only 0/1 (or booleans)")
        t = tf == 1
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score contains NaN or infinite values")
    return t.astype(np.bool_), s


def _ratio(num: float, den: float) -> float:
    """``num / den``, or NaN when ``den == 0`` (the metric is undefined)."""
    return float(num) / float(den) if den else math.nan


def confusion(y_true: ArrayLike, y_score: ArrayLike, threshold: float) -> dict[str, int]:
    """Confusion counts for the rule "positive when ``score >= threshold``".

    Args:
        y_true: 1-D labels, 0/1 or booleans (1 = positive).
        y_score: 1-D finite scores, same length.
        threshold: decision threshold; a score equal to it is predicted positive.

    Returns:
        ``{"tp": int, "fp": int, "tn": int, "fn": int}``.

    Raises:
        ValueError: on empty, mismatched or non-binary input, or non-finite scores.
    """
    t, s = _binary_inputs(y_true, y_score)
    p = s >= threshold
    return {
        "tp": int(np.sum(t & p)),
        "fp": int(np.sum(~t & p)),
        "tn": int(np.sum(~t & ~p)),
        "fn": int(np.sum(t & ~p)),
    }


def classification_report(y_true: ArrayLike, y_score: ArrayLike, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1, sensitivity and specificity at one threshold.

    Zero divisions return ``nan`` (never 0, never a warning), so an undefined metric cannot be
    mistaken for a bad one:

    * ``precision = tp / (tp + fp)``: nan when nothing is predicted positive.
    * ``recall = sensitivity = tp / (tp + fn)``: nan when there are no positives.
    * ``specificity = tn / (tn + fp)``: nan when there are no negatives.
    * ``f1 = 2 tp / (2 tp + fp + fn)`` (equal to the harmonic mean of precision and recall when
      both are defined; 0 when there are positives but none is found): nan only when there are
      no positives and nothing is predicted positive.
    * ``accuracy = (tp + tn) / n`` is always defined (the input may not be empty).

    Args:
        y_true: 1-D labels, 0/1 or booleans.
        y_score: 1-D finite scores.
        threshold: positive when ``score >= threshold``.

    Returns:
        The six metrics above, plus ``threshold``, ``n`` and the four counts (as floats).

    Raises:
        ValueError: on invalid input (see :func:`confusion`).
    """
    c = confusion(y_true, y_score, threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    n = tp + fp + tn + fn
    recall = _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, n),
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": recall,
        "specificity": _ratio(tn, tn + fp),
        "threshold": float(threshold),
        "n": float(n),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
    }


def _require_both_classes(t: NDArray[np.bool_]) -> tuple[int, int]:
    n_pos = int(t.sum())
    n_neg = int(t.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC analysis needs both classes, got {n_pos} positive and {n_neg} negative samples")
    return n_pos, n_neg


def roc_curve(
    y_true: ArrayLike, y_score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC curve at every distinct score.

    Point ``i`` is the rule "positive when ``score >= thresholds[i]``". Thresholds are the
    distinct scores in decreasing order, preceded by ``+inf`` (the point (0, 0)); the last point
    is (1, 1). Tied scores give one diagonal step, so the trapezoidal area under the curve
    equals :func:`roc_auc`. No point is dropped.

    Args:
        y_true: 1-D labels, 0/1 or booleans.
        y_score: 1-D finite scores.

    Returns:
        ``(fpr, tpr, thresholds)``, three arrays of equal length.

    Raises:
        ValueError: when a class is missing, or on invalid input.
    """
    t, s = _binary_inputs(y_true, y_score)
    n_pos, n_neg = _require_both_classes(t)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    t_sorted = t[order]
    # last index of each run of equal scores
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(t_sorted)[last]
    fps = (last + 1) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds.astype(np.float64)


def _average_ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties given the mean of the ranks they span (like ``scipy.stats.rankdata``)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.r_[0, np.nonzero(np.diff(xs))[0] + 1]
    ends = np.r_[starts[1:], xs.size]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # mean of starts+1 .. ends
    ranks_sorted = np.repeat(mean_rank, ends - starts)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Exact area under the ROC curve, ties counted one half (Mann-Whitney U / (n+ n-)).

    ``AUC = P(s+ > s-) + 0.5 P(s+ = s-)`` over all positive/negative pairs, computed from
    average ranks in O(n log n): ``U = R+ - n+ (n+ + 1) / 2``, ``AUC = U / (n+ n-)``.

    Args:
        y_true: 1-D labels, 0/1 or booleans.
        y_score: 1-D finite scores.

    Returns:
        The AUC in [0, 1] (1: perfect ranking, 0: perfectly inverted, 0.5: chance or all tied).

    Raises:
        ValueError: when a class is missing, or on invalid input.
    """
    t, s = _binary_inputs(y_true, y_score)
    n_pos, n_neg = _require_both_classes(t)
    ranks = _average_ranks(s)
    u = float(ranks[t].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (float(n_pos) * float(n_neg))


def threshold_for_sensitivity(y_true: ArrayLike, y_score: ArrayLike, target_sensitivity: float) -> float:
    """The highest threshold whose sensitivity (``score >= threshold``) reaches a target.

    The highest such threshold also has the best specificity among thresholds meeting the
    target. It is always one of the positives' scores.

    Args:
        y_true: 1-D labels, 0/1 or booleans.
        y_score: 1-D finite scores.
        target_sensitivity: in (0, 1].

    Returns:
        The threshold, a float.

    Raises:
        ValueError: when the target is outside (0, 1], there are no positives, or the input is
            invalid.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    t, s = _binary_inputs(y_true, y_score)
    pos = np.sort(s[t])[::-1]
    if pos.size == 0:
        raise ValueError("no positive samples: sensitivity is undefined")
    # sensitivity at threshold pos[k] is (#positives >= pos[k]) / n_pos; ties counted together
    n_at_or_above = np.searchsorted(-pos, -pos, side="right")
    ok = n_at_or_above / pos.size >= target_sensitivity
    return float(pos[int(np.argmax(ok))])


def is_unknown_label(label: Any) -> bool:
    """True for a missing label: None or NaN (anything else, e.g. 0/1/True/False, is known)."""
    if label is None:
        return True
    try:
        return bool(np.isnan(label))
    except TypeError:
        return False


def malignancy_auc(labels: Sequence[Any], scores: ArrayLike) -> float:
    """ROC AUC of malignancy scores, skipping nodules whose label is unknown.

    Args:
        labels: per nodule: True/1 malignant, False/0 benign, None or NaN unknown (skipped).
        scores: per nodule, the malignancy score (finite where the label is known).

    Returns:
        :func:`roc_auc` over the nodules with a known label.

    Raises:
        ValueError: when lengths differ, or fewer than one benign and one malignant nodule
            have a known label.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] != len(labels):
        raise ValueError(f"labels and scores differ in length: {len(labels)} vs {s.shape}")
    keep = np.array([not is_unknown_label(v) for v in labels], dtype=bool)
    known = np.array([float(v) for v, k in zip(labels, keep, strict=True) if k], dtype=np.float64)
    if known.size == 0:
        raise ValueError("no nodule has a known malignancy label")
    return roc_auc(known, s[keep])


# --------------------------------------------------------------------------------------------
# Detection (LUNA16 FROC)
# --------------------------------------------------------------------------------------------


class Prediction(NamedTuple):
    """One detector output: centre (mm) and score. Any ``(center, score)`` pair works too."""

    center_xyz_mm: tuple[float, float, float]
    score: float


class GroundTruth(NamedTuple):
    """A nodule or irrelevant finding: centre and diameter (mm). ``NoduleAnnotation`` works too."""

    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float


def _predictions_arrays(predictions: Sequence[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(N, 3) centres and (N,) scores from ``(center, score)`` pairs or objects with those attributes."""
    centers = np.zeros((len(predictions), 3), dtype=np.float64)
    scores = np.zeros(len(predictions), dtype=np.float64)
    for i, p in enumerate(predictions):
        if hasattr(p, "center_xyz_mm") and hasattr(p, "score"):
            c, sc = p.center_xyz_mm, p.score
        else:
            c, sc = p
        centers[i] = np.asarray(c, dtype=np.float64).reshape(3)
        scores[i] = float(sc)
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(scores))):
        raise ValueError("predictions contain NaN or infinite centres or scores")
    return centers, scores


def _truth_arrays(
    truths: Sequence[Any], *, default_diameter: float | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(M, 3) centres and (M,) radii from ``(center, diameter)`` pairs or annotation objects."""
    centers = np.zeros((len(truths), 3), dtype=np.float64)
    radii = np.zeros(len(truths), dtype=np.float64)
    for i, g in enumerate(truths):
        if hasattr(g, "center_xyz_mm") and hasattr(g, "diameter_mm"):
            c, d = g.center_xyz_mm, g.diameter_mm
        else:
            c, d = g
        d = float(d) if d is not None else math.nan
        if not d > 0:  # also catches NaN
            if default_diameter is None:
                raise ValueError(f"ground-truth nodule {i} has no positive diameter ({d})")
            d = default_diameter
        centers[i] = np.asarray(c, dtype=np.float64).reshape(3)
        radii[i] = d / 2.0
    if not np.all(np.isfinite(centers)):
        raise ValueError("ground truth contains NaN or infinite centres")
    return centers, radii


def _hit_matrix(
    pred_centers: NDArray[np.float64], centers: NDArray[np.float64], radii: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """``hit[i, j]``: prediction i within radius j of finding j (distance <= radius)."""
    if pred_centers.shape[0] == 0 or centers.shape[0] == 0:
        return np.zeros((pred_centers.shape[0], centers.shape[0]), dtype=bool)
    d2 = np.sum((pred_centers[:, None, :] - centers[None, :, :]) ** 2, axis=-1)
    # compare squared distances; a tiny relative slack keeps "exactly on the radius" a hit
    # despite rounding in the coordinate differences
    r2 = radii[None, :] ** 2
    return np.asarray(d2 <= r2 * (1.0 + 1e-12), dtype=np.bool_)


@dataclass(frozen=True)
class _ScanMatch:
    best_index: NDArray[np.int64]  # per nodule: index of its highest-scoring hit, -1 if none
    is_fp: NDArray[np.bool_]  # per prediction: hits no nodule and no irrelevant finding
    is_ignored: NDArray[np.bool_]  # per prediction: neither TP nor FP (extra hit / irrelevant)


def _match_scan(
    predictions: Sequence[Any], truths: Sequence[Any], irrelevant: Sequence[Any] | None
) -> tuple[_ScanMatch, NDArray[np.float64]]:
    pc, ps = _predictions_arrays(predictions)
    tc, tr = _truth_arrays(truths)
    hits = _hit_matrix(pc, tc, tr)
    best = np.full(tc.shape[0], -1, dtype=np.int64)
    for j in range(tc.shape[0]):
        idx = np.nonzero(hits[:, j])[0]
        if idx.size:
            # highest score; on ties, the first listed prediction
            best[j] = idx[int(np.argmax(ps[idx]))]
    hits_nodule = np.asarray(hits.any(axis=1), dtype=np.bool_)
    if irrelevant:
        ic, ir = _truth_arrays(irrelevant, default_diameter=IRRELEVANT_DEFAULT_DIAMETER_MM)
        hits_irrelevant = np.asarray(_hit_matrix(pc, ic, ir).any(axis=1), dtype=np.bool_)
    else:
        hits_irrelevant = np.zeros(pc.shape[0], dtype=bool)
    is_fp = ~hits_nodule & ~hits_irrelevant
    is_best = np.zeros(pc.shape[0], dtype=bool)
    is_best[best[best >= 0]] = True
    is_ignored = ~is_fp & ~is_best
    return _ScanMatch(best, is_fp, is_ignored), ps


@dataclass(frozen=True)
class FROCResult:
    """A per-scan FROC curve.

    Point ``i`` is the rule "keep predictions with ``score >= thresholds[i]``": it has
    ``fps_per_scan[i]`` false positives per scan and finds ``sensitivity[i]`` of the nodules.
    Point 0 is (0, 0) at threshold ``+inf``; thresholds are then the distinct scores of the
    counted predictions (each found nodule's best hit, and the false positives) in decreasing
    order. ``fps_per_scan`` and ``sensitivity`` never decrease.

    Attributes:
        fps_per_scan: false positives per scan at each point.
        sensitivity: fraction of all nodules found at each point.
        thresholds: score threshold of each point.
        n_nodules: nodules in the denominator (all ground-truth nodules of all scans).
        n_scans: scans in the denominator of ``fps_per_scan``.
        n_false_positives: false positives at the lowest threshold.
        n_ignored: predictions ignored (extra hits on a nodule, hits on irrelevant findings).
    """

    fps_per_scan: NDArray[np.float64]
    sensitivity: NDArray[np.float64]
    thresholds: NDArray[np.float64]
    n_nodules: int
    n_scans: int
    n_false_positives: int = 0
    n_ignored: int = 0


def froc(
    predictions_by_scan: Mapping[Hashable, Sequence[Any]],
    truths_by_scan: Mapping[Hashable, Sequence[Any]],
    irrelevant_by_scan: Mapping[Hashable, Sequence[Any]] | None = None,
) -> FROCResult:
    """Per-scan FROC curve with the LUNA16 matching rules (see the module docstring).

    The evaluated scans are the keys of ``truths_by_scan``; list every scan there, with an
    empty list when it has no nodule, because the FP rate is divided by their number. A scan
    missing from ``predictions_by_scan`` has no predictions.

    Args:
        predictions_by_scan: scan id -> predictions, each ``(center_xyz_mm, score)`` or an
            object with ``center_xyz_mm`` and ``score`` (e.g. :class:`Prediction`).
        truths_by_scan: scan id -> nodules, each ``(center_xyz_mm, diameter_mm)`` or an object
            with those attributes (e.g. :class:`GroundTruth`, ``NoduleAnnotation``).
        irrelevant_by_scan: optional scan id -> irrelevant findings (LUNA16 excluded
            annotations), same format; predictions hitting them are ignored unless they hit
            a nodule.

    Returns:
        The :class:`FROCResult`.

    Raises:
        ValueError: when there is no scan or no nodule, a prediction or irrelevant finding is
            keyed by a scan absent from ``truths_by_scan``, or values are invalid.
    """
    return _froc_curve(_matched_scans(predictions_by_scan, truths_by_scan, irrelevant_by_scan))


class _ScanScores(NamedTuple):
    tp: NDArray[np.float64]  # score of each found nodule's best hit
    fp: NDArray[np.float64]  # scores of the false positives
    n_nodules: int
    n_ignored: int


def _matched_scans(
    predictions_by_scan: Mapping[Hashable, Sequence[Any]],
    truths_by_scan: Mapping[Hashable, Sequence[Any]],
    irrelevant_by_scan: Mapping[Hashable, Sequence[Any]] | None,
) -> list[_ScanScores]:
    """Each evaluated scan's matched scores, in the order of ``truths_by_scan`` (the inputs of
    :func:`froc`, validated as it documents)."""
    if not truths_by_scan:
        raise ValueError("truths_by_scan is empty: no scan to evaluate")
    irrelevant_by_scan = irrelevant_by_scan or {}
    for name, mapping in (("predictions_by_scan", predictions_by_scan), ("irrelevant_by_scan", irrelevant_by_scan)):
        unknown = [k for k in mapping if k not in truths_by_scan]
        if unknown:
            raise ValueError(f"{name} has scans absent from truths_by_scan: {unknown[:5]!r}")
    if sum(len(v) for v in truths_by_scan.values()) == 0:
        raise ValueError("no ground-truth nodule: sensitivity is undefined")
    out = []
    for scan, truths in truths_by_scan.items():
        match, scores = _match_scan(predictions_by_scan.get(scan, ()), truths, irrelevant_by_scan.get(scan))
        found = match.best_index[match.best_index >= 0]
        out.append(_ScanScores(scores[found], scores[match.is_fp], len(truths), int(match.is_ignored.sum())))
    return out


def _froc_curve(per_scan: Sequence[_ScanScores]) -> FROCResult:
    """The FROC curve of a list of scans (a scan may appear more than once: the bootstrap)."""
    n_scans = len(per_scan)
    n_nodules = sum(s.n_nodules for s in per_scan)
    tp = np.concatenate([s.tp for s in per_scan]) if per_scan else np.zeros(0)
    fp = np.concatenate([s.fp for s in per_scan]) if per_scan else np.zeros(0)
    thresholds = np.unique(np.r_[tp, fp])[::-1]
    # counts of scores >= each threshold
    tp_sorted = np.sort(tp)
    fp_sorted = np.sort(fp)
    n_tp = tp_sorted.size - np.searchsorted(tp_sorted, thresholds, side="left")
    n_fp = fp_sorted.size - np.searchsorted(fp_sorted, thresholds, side="left")
    return FROCResult(
        fps_per_scan=np.r_[0.0, n_fp / n_scans].astype(np.float64),
        sensitivity=np.r_[0.0, n_tp / n_nodules].astype(np.float64),
        thresholds=np.r_[np.inf, thresholds].astype(np.float64),
        n_nodules=int(n_nodules),
        n_scans=int(n_scans),
        n_false_positives=int(fp.size),
        n_ignored=sum(s.n_ignored for s in per_scan),
    )


def _froc_upper_envelope(result: FROCResult) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FROC points with strictly increasing FP rate; a vertical run keeps its top point."""
    fps = np.asarray(result.fps_per_scan, dtype=np.float64)
    sens = np.asarray(result.sensitivity, dtype=np.float64)
    # fps and sens are non-decreasing, so the last point of each equal-fps run is its maximum
    last = np.r_[np.nonzero(np.diff(fps))[0], fps.size - 1]
    return fps[last], sens[last]


def sensitivity_at(result: FROCResult, fp_per_scan: float | ArrayLike) -> NDArray[np.float64]:
    """Sensitivity interpolated on the FROC curve at FP rates (the CPM convention).

    Linear interpolation of sensitivity against FPs/scan between the curve's points
    (``np.interp``), the curve starting at (0, 0). Where several points share one FP rate
    (nodules found without a new false positive) the highest sensitivity is used. Beyond the
    last point (the lowest threshold) the sensitivity stays at its final value.

    Args:
        result: a :func:`froc` result.
        fp_per_scan: one or more FP-per-scan rates (>= 0).

    Returns:
        The sensitivities, an array shaped like ``fp_per_scan``.
    """
    x = np.asarray(fp_per_scan, dtype=np.float64)
    fps, sens = _froc_upper_envelope(result)
    return np.asarray(np.interp(x, fps, sens), dtype=np.float64)


def cpm(result: FROCResult, fp_rates: Sequence[float] = LUNA16_FP_RATES) -> tuple[float, dict[float, float]]:
    """LUNA16 Competition Performance Metric: mean sensitivity at given FP-per-scan rates.

    Convention (exactly): the FROC curve is the piecewise-linear curve through
    ``(fps_per_scan[i], sensitivity[i])``, starting at (0, 0), as LUNA16's
    ``noduleCADEvaluationLIDC.py`` draws it (``sklearn.metrics.roc_curve`` over the counted
    candidates, rescaled to FPs/scan and sensitivity, then ``np.interp``). The sensitivity at a
    rate r is ``np.interp(r, fps, sens)`` on that curve, taking the top of any vertical step at
    r, and holding the last sensitivity for r beyond the curve's end (the detector never
    reaches that many FPs/scan: its sensitivity at its lowest threshold counts). The LUNA16
    script evaluates the same interpolation on ``np.linspace(0.125, 8, 10001)`` and CPM
    scripts derived from it read the nearest grid point; that grid step (0.0007875 FPs/scan)
    is the only difference from evaluating at r exactly, as done here.

    Args:
        result: a :func:`froc` result.
        fp_rates: the FP-per-scan rates; default the LUNA16 seven, 1/8 to 8.

    Returns:
        ``(mean sensitivity, {rate: sensitivity})``.

    Raises:
        ValueError: when ``fp_rates`` is empty or has a negative rate.
    """
    rates = [float(r) for r in fp_rates]
    if not rates or min(rates) < 0:
        raise ValueError(f"fp_rates must be non-empty and non-negative, got {fp_rates!r}")
    sens = sensitivity_at(result, rates)
    per_rate = {r: float(v) for r, v in zip(rates, sens, strict=True)}
    return float(np.mean(sens)), per_rate


def _check_bootstrap(n_bootstrap: int, confidence: float) -> None:
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _scan_resamples(per_scan: Sequence[_ScanScores], n_bootstrap: int, seed: int) -> list[NDArray[np.int64]]:
    """The bootstrap samples of the scans (indices drawn with replacement, as many as there are
    scans) that hold at least one nodule; a sample without one has no sensitivity."""
    rng = np.random.default_rng(seed)
    n = len(per_scan)
    nodules = np.asarray([s.n_nodules for s in per_scan])
    draws = [rng.integers(0, n, size=n) for _ in range(n_bootstrap)]
    kept = [idx for idx in draws if nodules[idx].sum() > 0]
    if not kept:
        raise ValueError("no bootstrap sample has a nodule")
    return kept


class Interval(NamedTuple):
    """A point estimate with a bootstrap confidence interval."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class FROCBootstrap:
    """Bootstrap confidence intervals of a FROC curve and its CPM (:func:`froc_bootstrap`).

    Attributes:
        cpm: the CPM of all scans with its interval.
        sensitivity: per CPM rate, the sensitivity with its interval.
        fp_grid: FPs/scan at which the band is given (log-spaced, 1/8 to 8).
        band_low, band_high: the interval of the sensitivity at each ``fp_grid`` rate.
        confidence: e.g. 0.95 for the 2.5th to 97.5th percentiles.
        n_bootstrap: samples drawn.
        n_used: samples with at least one nodule (the others have no sensitivity).
    """

    cpm: Interval
    sensitivity: dict[float, Interval]
    fp_grid: NDArray[np.float64]
    band_low: NDArray[np.float64]
    band_high: NDArray[np.float64]
    confidence: float
    n_bootstrap: int
    n_used: int


def froc_bootstrap(
    predictions_by_scan: Mapping[Hashable, Sequence[Any]],
    truths_by_scan: Mapping[Hashable, Sequence[Any]],
    irrelevant_by_scan: Mapping[Hashable, Sequence[Any]] | None = None,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
) -> FROCBootstrap:
    """Percentile bootstrap over scans of the FROC curve and the CPM, as LUNA16 reports them.

    Each sample draws as many scans as there are, with replacement (the LUNA16 evaluation
    script's ``computeFROC_bootstrap`` resamples scans the same way), and recomputes the curve:
    the scans, not the nodules, are the independent units, since a scan's false positives and
    nodules come together. The interval is the ``(1 - confidence) / 2`` and ``(1 + confidence)
    / 2`` quantiles of the samples; the estimate is the value on all scans (:func:`froc`,
    :func:`cpm`). A sample with no nodule has no sensitivity and is left out (``n_used``).

    Raises:
        ValueError: as :func:`froc`, or when ``n_bootstrap < 1`` or ``confidence`` is not in (0, 1).
    """
    _check_bootstrap(n_bootstrap, confidence)
    per_scan = _matched_scans(predictions_by_scan, truths_by_scan, irrelevant_by_scan)
    rates = [float(r) for r in fp_rates]
    estimate, per_rate = cpm(_froc_curve(per_scan), rates)
    grid = np.geomspace(0.125, 8.0, 97)  # every 1/16 of a doubling; holds the seven LUNA16 rates
    at_rates: list[NDArray[np.float64]] = []
    on_grid: list[NDArray[np.float64]] = []
    for idx in _scan_resamples(per_scan, n_bootstrap, seed):
        curve = _froc_curve([per_scan[i] for i in idx])
        at_rates.append(sensitivity_at(curve, rates))
        on_grid.append(sensitivity_at(curve, grid))
    q = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    sens = np.asarray(at_rates)
    cpm_lo, cpm_hi = np.quantile(sens.mean(axis=1), q)
    rate_q = np.quantile(sens, q, axis=0)
    band = np.quantile(np.asarray(on_grid), q, axis=0)
    return FROCBootstrap(
        cpm=Interval(float(estimate), float(cpm_lo), float(cpm_hi)),
        sensitivity={
            r: Interval(per_rate[r], float(lo), float(hi))
            for r, lo, hi in zip(rates, rate_q[0], rate_q[1], strict=True)
        },
        fp_grid=grid,
        band_low=np.asarray(band[0], dtype=np.float64),
        band_high=np.asarray(band[1], dtype=np.float64),
        confidence=float(confidence),
        n_bootstrap=int(n_bootstrap),
        n_used=len(at_rates),
    )


class PairedDifference(NamedTuple):
    """CPM of model B minus that of model A on the same scans, with a paired bootstrap interval.

    ``p_not_better`` is the share of samples in which B's CPM is not above A's: a one-sided
    bootstrap p-value for "B is better".
    """

    estimate: float
    low: float
    high: float
    p_not_better: float
    n_used: int


def cpm_difference_bootstrap(
    predictions_a: Mapping[Hashable, Sequence[Any]],
    predictions_b: Mapping[Hashable, Sequence[Any]],
    truths_by_scan: Mapping[Hashable, Sequence[Any]],
    irrelevant_by_scan: Mapping[Hashable, Sequence[Any]] | None = None,
    *,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
) -> PairedDifference:
    """Paired percentile bootstrap of ``CPM(B) - CPM(A)``: each sample draws scans with
    replacement and scores both models on the same draw, so what the scans share (hard scans,
    easy ones) cancels and the interval is much narrower than the two models' own intervals.
    """
    _check_bootstrap(n_bootstrap, confidence)
    a = _matched_scans(predictions_a, truths_by_scan, irrelevant_by_scan)
    b = _matched_scans(predictions_b, truths_by_scan, irrelevant_by_scan)
    rates = [float(r) for r in fp_rates]
    estimate = cpm(_froc_curve(b), rates)[0] - cpm(_froc_curve(a), rates)[0]
    diffs = []
    for idx in _scan_resamples(a, n_bootstrap, seed):
        cpm_a = float(np.mean(sensitivity_at(_froc_curve([a[i] for i in idx]), rates)))
        cpm_b = float(np.mean(sensitivity_at(_froc_curve([b[i] for i in idx]), rates)))
        diffs.append(cpm_b - cpm_a)
    d = np.asarray(diffs)
    lo, hi = np.quantile(d, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return PairedDifference(float(estimate), float(lo), float(hi), float(np.mean(d <= 1e-12)), len(diffs))


def _auc_statistic_bootstrap(
    t: np.ndarray, statistic: Any, n_bootstrap: int, confidence: float, seed: int
) -> Interval:
    """``statistic(index)`` on all samples and its percentile bootstrap interval (samples resampled
    with replacement; a resample holding one class only has no AUC and is left out)."""
    _check_bootstrap(n_bootstrap, confidence)
    estimate = statistic(np.arange(t.size))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_bootstrap):
        i = rng.integers(0, t.size, size=t.size)
        if t[i].all() or not t[i].any():
            continue
        values.append(statistic(i))
    if not values:
        raise ValueError("no bootstrap sample holds both classes")
    lo, hi = np.quantile(values, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return Interval(float(estimate), float(lo), float(hi))


def auc_bootstrap(
    y_true: ArrayLike, y_score: ArrayLike, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """ROC-AUC with a percentile bootstrap interval (samples resampled with replacement; a
    sample holding one class only has no AUC and is left out)."""
    _check_bootstrap(n_bootstrap, confidence)
    t, s = _binary_inputs(y_true, y_score)
    return _auc_statistic_bootstrap(t, lambda i: roc_auc(t[i], s[i]), n_bootstrap, confidence, seed)


def auc_difference_bootstrap(
    y_true: ArrayLike,
    score_base: ArrayLike,
    score_new: ArrayLike,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """ROC-AUC of ``score_new`` minus that of ``score_base`` on the same samples, with a paired
    percentile bootstrap interval (the samples resampled together for both scorings)."""
    _check_bootstrap(n_bootstrap, confidence)
    t, a = _binary_inputs(y_true, score_base)
    _, b = _binary_inputs(y_true, score_new)
    return _auc_statistic_bootstrap(
        t, lambda i: roc_auc(t[i], b[i]) - roc_auc(t[i], a[i]), n_bootstrap, confidence, seed
    )


class OperatingPoint(NamedTuple):
    """A usable detector setting: keep predictions with ``score >= threshold``."""

    threshold: float
    fps_per_scan: float
    sensitivity: float


def operating_point(result: FROCResult, fp_per_scan: float) -> OperatingPoint:
    """The threshold with the best sensitivity at no more than ``fp_per_scan`` FPs per scan.

    Unlike :func:`cpm` this does not interpolate: it returns an actual point of the curve,
    i.e. a threshold you can deploy. Among points with ``fps_per_scan <= fp_per_scan`` it picks
    the highest sensitivity, then the lowest FP rate, then the highest threshold. When only
    the (0, 0) point qualifies, the threshold is ``+inf`` (report nothing).

    Args:
        result: a :func:`froc` result.
        fp_per_scan: the FP budget per scan (>= 0).

    Returns:
        The :class:`OperatingPoint`.

    Raises:
        ValueError: when ``fp_per_scan`` is negative or NaN.
    """
    if not fp_per_scan >= 0:
        raise ValueError(f"fp_per_scan must be >= 0, got {fp_per_scan}")
    fps = np.asarray(result.fps_per_scan)
    sens = np.asarray(result.sensitivity)
    ok = np.nonzero(fps <= fp_per_scan + 1e-12)[0]
    # lexicographic: max sensitivity, then min fps, then max threshold (earliest index)
    best = min(ok, key=lambda i: (-sens[i], fps[i], i))
    return OperatingPoint(float(result.thresholds[best]), float(fps[best]), float(sens[best]))


@dataclass(frozen=True)
class NoduleHits:
    """Which nodules one scan's predictions find at a threshold.

    Attributes:
        found: per nodule, whether a kept prediction hits it.
        best_prediction: per nodule, index (into the input predictions) of its highest-scoring
            kept hit, -1 when missed.
        best_score: per nodule, that hit's score, NaN when missed.
        false_positives: indices of kept predictions hitting no nodule or irrelevant finding.
        ignored: indices of kept predictions that are neither TP nor FP (extra hits on a
            nodule, hits on irrelevant findings).
        n_kept: predictions with ``score >= threshold``.
    """

    found: list[bool]
    best_prediction: list[int]
    best_score: list[float]
    false_positives: list[int]
    ignored: list[int]
    n_kept: int

    @property
    def n_found(self) -> int:
        """Number of nodules found."""
        return sum(self.found)

    @property
    def n_false_positives(self) -> int:
        """Number of false positives."""
        return len(self.false_positives)


def nodule_hits(
    predictions: Sequence[Any],
    truths: Sequence[Any],
    threshold: float,
    irrelevant: Sequence[Any] | None = None,
) -> NoduleHits:
    """Match one scan's predictions (``score >= threshold``) to its nodules, LUNA16 rules.

    Args:
        predictions: ``(center_xyz_mm, score)`` pairs or objects with those attributes.
        truths: ``(center_xyz_mm, diameter_mm)`` pairs or annotation objects.
        threshold: predictions scoring below it are dropped first.
        irrelevant: optional irrelevant findings, same format as ``truths``.

    Returns:
        The :class:`NoduleHits`; indices refer to the input ``predictions``.
    """
    _, all_scores = _predictions_arrays(predictions)
    kept = np.nonzero(all_scores >= threshold)[0]
    match, scores = _match_scan([predictions[int(i)] for i in kept], truths, irrelevant)
    best_pred = [int(kept[b]) if b >= 0 else -1 for b in match.best_index]
    return NoduleHits(
        found=[b >= 0 for b in best_pred],
        best_prediction=best_pred,
        best_score=[float(scores[b]) if b >= 0 else math.nan for b in match.best_index],
        false_positives=[int(i) for i in kept[match.is_fp]],
        ignored=[int(i) for i in kept[match.is_ignored]],
        n_kept=int(kept.size),
    )
