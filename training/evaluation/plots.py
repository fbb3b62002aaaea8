"""Evaluation plots (PNG) for training reports: history, ROC, FROC, confusion matrix.

Every function draws on its own ``matplotlib.figure.Figure`` rendered by the Agg canvas (no
``pyplot``, no global backend switch, safe next to a Qt application), writes a PNG of exactly
``figsize * dpi`` pixels atomically (temporary file in the same folder, then ``os.replace``)
and returns its path. Every figure carries a small "research use only" footer.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator
from numpy.typing import ArrayLike

from training.evaluation.metrics import (
    LUNA16_FP_RATES,
    FROCBootstrap,
    FROCResult,
    cpm,
    is_unknown_label,
    roc_auc,
    roc_curve,
    sensitivity_at,
)

__all__ = [
    "FOOTER",
    "plot_confusion_matrix",
    "plot_froc",
    "plot_history",
    "plot_malignancy_roc",
    "plot_roc",
]

FOOTER = "Research use only. Not a medical device; not for diagnosis."
DEFAULT_DPI = 100
_FOOTER_BAND = 0.05  # fraction of the figure height kept free for the footer

PathLike = str | os.PathLike[str]


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, path: PathLike, dpi: int) -> Path:
    """Add the footer, lay out, and write the PNG atomically; return its path."""
    fig.text(0.99, 0.012, FOOTER, ha="right", va="bottom", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0.0, _FOOTER_BAND, 1.0, 1.0))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of one history key, skipping epochs where it is missing/None/NaN."""
    xs: list[float] = []
    ys: list[float] = []
    for i, row in enumerate(history):
        v = row.get(key)
        if v is None or is_unknown_label(v):
            continue
        xs.append(float(row.get("epoch", i + 1)))
        ys.append(float(v))
    return np.asarray(xs), np.asarray(ys)


def _keys_with(history: Sequence[Mapping[str, Any]], needle: str) -> list[str]:
    keys: list[str] = []
    for row in history:
        for k in row:
            if needle in k.lower() and k not in keys:
                keys.append(k)
    return keys


def plot_history(
    history: Sequence[Mapping[str, Any]],
    path: PathLike,
    *,
    loss_keys: Sequence[str] | None = None,
    metric_keys: Sequence[str] | None = None,
    title: str = "Training history",
    figsize: tuple[float, float] = (11.0, 4.5),
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Loss curves (left) and accuracy curves (right) over epochs.

    Args:
        history: one dict per epoch, e.g. ``{"epoch": 1, "train_loss": .., "val_loss": ..,
            "train_acc": .., "val_acc": ..}``; the x value is ``epoch`` (else the 1-based
            position). Missing, None or NaN values are skipped.
        path: the PNG to write.
        loss_keys: keys for the left panel; default every key containing "loss".
        metric_keys: keys for the right panel; default every key containing "acc".
        title: figure title.
        figsize: inches; the PNG is ``figsize * dpi`` pixels.
        dpi: resolution.

    Returns:
        The path written.

    Raises:
        ValueError: when ``history`` is empty.
    """
    if not history:
        raise ValueError("history is empty")
    loss_keys = list(loss_keys) if loss_keys is not None else _keys_with(history, "loss")
    metric_keys = list(metric_keys) if metric_keys is not None else _keys_with(history, "acc")
    fig = _new_figure(figsize)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, keys, ylabel in ((ax_loss, loss_keys, "loss"), (ax_acc, metric_keys, "accuracy")):
        drawn = False
        for key in keys:
            x, y = _series(history, key)
            if x.size == 0:
                continue
            style = "--" if key.lower().startswith(("val", "valid", "test")) else "-"
            ax.plot(x, y, style, marker="o" if x.size <= 30 else None, ms=3, lw=1.5, label=key)
            drawn = True
        if ylabel == "loss" and "val_loss" in keys:
            x, y = _series(history, "val_loss")
            if x.size:
                i = int(np.argmin(y))
                ax.plot([x[i]], [y[i]], "*", color="crimson", ms=11, zorder=5, label=f"best val_loss (epoch {x[i]:g})")
        if ylabel == "accuracy" and drawn:
            ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=max(1.0, ax.get_ylim()[1]))
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {ylabel} recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel.capitalize())
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return _finish(fig, path, dpi)


def _draw_roc(ax: Any, y_true: ArrayLike, y_score: ArrayLike, label: str) -> float:
    fpr, tpr, _ = roc_curve(y_true, y_score)
    auc = roc_auc(y_true, y_score)
    ax.plot(fpr, tpr, lw=2, color="tab:blue", label=f"{label} (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="0.5", lw=1, label="chance (AUC = 0.500)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return auc


def plot_roc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    path: PathLike,
    *,
    label: str = "model",
    title: str = "ROC curve",
    figsize: tuple[float, float] = (6.0, 6.0),
    dpi: int = DEFAULT_DPI,
) -> Path:
    """ROC curve with the AUC (:func:`training.evaluation.metrics.roc_auc`) in the legend.

    Args:
        y_true: 1-D labels, 0/1 or booleans.
        y_score: 1-D finite scores.
        path: the PNG to write.
        label: legend name of the curve.
        title: axes title.
        figsize: inches; the PNG is ``figsize * dpi`` pixels.
        dpi: resolution.

    Returns:
        The path written.

    Raises:
        ValueError: when a class is missing (see :func:`training.evaluation.metrics.roc_curve`).
    """
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    _draw_roc(ax, y_true, y_score, label)
    ax.set_title(title)
    return _finish(fig, path, dpi)


def plot_malignancy_roc(
    labels: Sequence[Any],
    scores: ArrayLike,
    path: PathLike,
    *,
    title: str = "Malignancy ROC",
    figsize: tuple[float, float] = (6.0, 6.0),
    dpi: int = DEFAULT_DPI,
) -> Path:
    """ROC of malignancy scores over nodules with a known label (None/NaN labels skipped).

    Args:
        labels: per nodule: True/1 malignant, False/0 benign, None or NaN unknown.
        scores: per nodule malignancy score.
        path: the PNG to write.
        title: axes title; the counts of malignant, benign and skipped nodules are appended.
        figsize: inches; the PNG is ``figsize * dpi`` pixels.
        dpi: resolution.

    Returns:
        The path written.

    Raises:
        ValueError: on mismatched lengths or when a class is missing among the known labels.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] != len(labels):
        raise ValueError(f"labels and scores differ in length: {len(labels)} vs {s.shape}")
    keep = np.array([not is_unknown_label(v) for v in labels], dtype=bool)
    y = np.array([float(v) for v, k in zip(labels, keep, strict=True) if k], dtype=np.float64)
    n_mal = int(np.sum(y == 1))
    n_ben = int(y.size - n_mal)
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    _draw_roc(ax, y, s[keep], "malignancy")
    ax.set_title(f"{title}\n{n_mal} malignant, {n_ben} benign, {int((~keep).sum())} unknown (skipped)", fontsize=10)
    return _finish(fig, path, dpi)


def _fraction_label(x: float) -> str:
    return f"1/{round(1 / x)}" if 0 < x < 1 else f"{x:g}"


def plot_froc(
    result: FROCResult,
    path: PathLike,
    *,
    fp_rates: Sequence[float] = LUNA16_FP_RATES,
    label: str = "detector",
    title: str = "FROC",
    band: FROCBootstrap | None = None,
    figsize: tuple[float, float] = (7.0, 5.5),
    dpi: int = DEFAULT_DPI,
) -> Path:
    """FROC curve on a log2 FPs/scan axis from 1/8 to 8, CPM points marked, CPM in the title.

    The curve drawn is the one :func:`training.evaluation.metrics.cpm` interpolates (linear in FPs/scan,
    sampled densely, so it bends on the log axis exactly as LUNA16's plots do).

    Args:
        result: a :func:`training.evaluation.metrics.froc` result.
        path: the PNG to write.
        fp_rates: the CPM rates, marked and annotated.
        label: legend name of the curve.
        title: title prefix; ``CPM = ...`` and the nodule/scan counts are appended.
        band: a :func:`training.evaluation.metrics.froc_bootstrap` result: its interval is shaded and the
            CPM's interval added to the title.
        figsize: inches; the PNG is ``figsize * dpi`` pixels.
        dpi: resolution.

    Returns:
        The path written.
    """
    rates = [float(r) for r in fp_rates]
    score, per_rate = cpm(result, rates)
    x_min = min([0.125, *[r for r in rates if r > 0]])
    x_max = max([8.0, *rates])
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    lo, hi = x_min / 1.2, x_max * 1.2  # margin so the end markers and labels are not clipped
    xs = np.geomspace(lo, hi, 2001)
    ax.plot(xs, sensitivity_at(result, xs), lw=2, color="tab:blue", label=label)
    interval = ""
    if band is not None:
        pct = round(100 * band.confidence)
        ax.fill_between(
            band.fp_grid,
            band.band_low,
            band.band_high,
            color="tab:blue",
            alpha=0.15,
            lw=0,
            label=f"{pct}% bootstrap interval ({band.n_used} samples of the scans)",
        )
        interval = f" ({pct}% CI {band.cpm.low:.3f}-{band.cpm.high:.3f})"
    pr = np.array([r for r in rates if r > 0])
    ps = np.array([per_rate[r] for r in pr])
    ax.plot(pr, ps, "o", color="crimson", ms=6, zorder=5, label="CPM operating points")
    for r, v in zip(pr, ps, strict=True):
        ax.annotate(
            f"{v:.2f}",
            (r, v),
            textcoords="offset points",
            xytext=(0, -15),
            ha="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo, hi)
    ticks = sorted({t for t in (*rates, *LUNA16_FP_RATES) if x_min <= t <= x_max})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([_fraction_label(t) for t in ticks])
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("average false positives per scan")
    ax.set_ylabel("sensitivity")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title(
        f"{title} - CPM = {score:.3f}{interval}\n{result.n_nodules} nodules, {result.n_scans} scans",
        fontsize=11,
    )
    return _finish(fig, path, dpi)


def _confusion_matrix(counts: Mapping[str, int] | ArrayLike) -> np.ndarray:
    if isinstance(counts, Mapping):
        m = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]], dtype=np.int64)
    else:
        m = np.asarray(counts)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
        m = m.astype(np.int64)
    if np.any(m < 0):
        raise ValueError("confusion counts must be non-negative")
    return m


def plot_confusion_matrix(
    counts: Mapping[str, int] | ArrayLike,
    path: PathLike,
    *,
    class_names: Sequence[str] = ("negative", "positive"),
    title: str = "Confusion matrix",
    figsize: tuple[float, float] = (5.5, 5.0),
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Confusion matrix: counts and row percentages in each cell, coloured by row fraction.

    Rows are the true class, columns the predicted class; a row's percentages sum to 100 %
    (so the diagonal shows per-class recall: specificity and sensitivity for binary).

    Args:
        counts: a :func:`training.evaluation.metrics.confusion` dict (``tp``, ``fp``, ``tn``, ``fn``;
            drawn as ``[[tn, fp], [fn, tp]]``) or a square matrix ``[true][predicted]``.
        path: the PNG to write.
        class_names: names of the classes, in matrix order (negative first for a dict).
        title: axes title.
        figsize: inches; the PNG is ``figsize * dpi`` pixels.
        dpi: resolution.

    Returns:
        The path written.

    Raises:
        ValueError: on a non-square matrix, negative counts, or a wrong number of names.
    """
    m = _confusion_matrix(counts)
    k = m.shape[0]
    if len(class_names) != k:
        raise ValueError(f"{k} classes but {len(class_names)} class names")
    row_tot = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, row_tot, out=np.zeros(m.shape, dtype=np.float64), where=row_tot > 0)
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("fraction of true class")
    for i in range(k):
        for j in range(k):
            pct = "n/a" if row_tot[i, 0] == 0 else f"{100.0 * frac[i, j]:.1f}%"
            ax.text(
                j,
                i,
                f"{m[i, j]}\n{pct}",
                ha="center",
                va="center",
                fontsize=12,
                color="white" if frac[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(k), labels=list(class_names))
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    n = int(m.sum())
    acc = float(np.trace(m)) / n if n else math.nan
    ax.set_title(f"{title}\nn = {n}, accuracy = {acc:.3f}", fontsize=11)
    return _finish(fig, path, dpi)
