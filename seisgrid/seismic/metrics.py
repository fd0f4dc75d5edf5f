"""Detection metrics, the study's results table, processing cost per year of data, and figures.

Conventions: label 1 = earthquake (positive), 0 = noise. A ratio whose denominator is zero is
undefined and returned as NaN (``None`` in JSON, "—" in the table): precision with no positive
prediction, recall with no positive label, false-positive rate with no negative label. F1 is
``2 TP / (2 TP + FP + FN)`` (0 when there are positives but none is found, NaN when there are no
positives at all and none predicted).

Processing hours per year of data (:func:`hours_per_year`)
    The wall time **one core** needs to process **one year of continuous 3-component 100 Hz data
    from one station**, extrapolated from a measured run: the year (365.25 days) is cut into windows
    of ``window_seconds`` every ``stride_seconds`` (``floor((year - window) / stride) + 1`` windows),
    each costing the measured core-seconds per window ``seconds × cores / windows``. On N cores the
    wall time is this figure ÷ N. It is the study's "processing, hours per year of data" stated per
    core, so figures measured on different machines and core counts are comparable.
"""

from __future__ import annotations

import math

import numpy as np

YEAR_SECONDS = 365.25 * 86_400


def _ratio(num, den) -> float:
    return float(num) / float(den) if den else math.nan


def confusion_matrix(labels, predictions) -> dict:
    """``{"tp", "fp", "tn", "fn"}`` counts for binary labels and predictions (1 earthquake, 0 noise)."""
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(predictions).astype(bool).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and predictions ({p.size}) differ in length")
    return {"tp": int(np.sum(y & p)), "fp": int(np.sum(~y & p)), "tn": int(np.sum(~y & ~p)),
            "fn": int(np.sum(y & ~p))}


def precision(cm: dict) -> float:
    """TP / (TP + FP); NaN when nothing is predicted positive."""
    return _ratio(cm["tp"], cm["tp"] + cm["fp"])


def recall(cm: dict) -> float:
    """TP / (TP + FN); NaN when there is no positive label."""
    return _ratio(cm["tp"], cm["tp"] + cm["fn"])


def false_positive_rate(cm: dict) -> float:
    """FP / (FP + TN); NaN when there is no negative label."""
    return _ratio(cm["fp"], cm["fp"] + cm["tn"])


def f1_score(cm: dict) -> float:
    """2 TP / (2 TP + FP + FN); NaN when there are no positives and none predicted."""
    return _ratio(2 * cm["tp"], 2 * cm["tp"] + cm["fp"] + cm["fn"])


def scores(labels, predictions) -> dict:
    """Confusion counts plus ``precision``, ``recall``, ``fpr``, ``f1`` (fractions, NaN if undefined)."""
    cm = confusion_matrix(labels, predictions)
    return {**cm, "precision": precision(cm), "recall": recall(cm), "fpr": false_positive_rate(cm),
            "f1": f1_score(cm)}


def pr_curve(labels, scores_) -> dict:
    """Precision-recall curve of continuous scores: ``precision``, ``recall``, ``thresholds`` (lists)
    and ``average_precision`` (scikit-learn's step-wise area)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y = np.asarray(labels).astype(int)
    s = np.asarray(scores_, np.float64)
    if y.min(initial=0) == y.max(initial=0):
        return {"precision": [], "recall": [], "thresholds": [], "average_precision": math.nan}
    p, r, t = precision_recall_curve(y, s)
    return {"precision": p.tolist(), "recall": r.tolist(), "thresholds": t.tolist(),
            "average_precision": float(average_precision_score(y, s))}


def windows_per_year(window_seconds: float, stride_seconds: float) -> int:
    """Windows of ``window_seconds`` every ``stride_seconds`` in 365.25 days of continuous data."""
    if window_seconds <= 0 or stride_seconds <= 0:
        raise ValueError("window_seconds and stride_seconds must be positive")
    return int(math.floor((YEAR_SECONDS - window_seconds) / stride_seconds)) + 1


def hours_per_year(seconds: float, windows: int, window_seconds: float, stride_seconds: float,
                   cores: int = 1) -> float:
    """Processing hours per year of data, per core (see the module docstring for the definition).

    Parameters
    ----------
    seconds : float
        Measured wall time of the run, s.
    windows : int
        3-component windows processed in that time.
    window_seconds, stride_seconds : float
        Window length and step between window starts when scanning continuous data, s.
    cores : int
        Cores the measured run used.

    Returns
    -------
    float
        Hours one core needs for one station-year of 3-component 100 Hz data:
        ``seconds × cores / windows × windows_per_year(window_seconds, stride_seconds) / 3600``.
    """
    if windows <= 0:
        raise ValueError("windows must be positive")
    return seconds * cores / windows * windows_per_year(window_seconds, stride_seconds) / 3600.0


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _hours(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def results_table(methods: dict) -> str:
    """Markdown table shaped like the study's: one row per method.

    ``methods`` maps a display name to a dict with ``precision``, ``recall``, ``fpr``, ``f1``
    (fractions) and ``hours_per_year``.
    """
    lines = ["| method | precision | recall | false-positive rate | F1 | processing, hours per year of data (one core) |",
             "|---|---|---|---|---|---|"]
    for name, m in methods.items():
        lines.append(f"| {name} | {_pct(m.get('precision'))} | {_pct(m.get('recall'))} | {_pct(m.get('fpr'))} "
                     f"| {_pct(m.get('f1'))} | {_hours(m.get('hours_per_year'))} |")
    return "\n".join(lines) + "\n"


def plot_pr_curves(curves: dict, path, operating_points: dict | None = None) -> str:
    """PNG of precision-recall curves: ``curves`` maps a method name to ``(labels, scores)``.

    ``operating_points`` (optional) maps names to ``(recall, precision)`` of the chosen threshold.
    """
    from seisgrid.figures import new_figure, save_png

    fig = new_figure((5, 4.5))
    ax = fig.subplots()
    for name, (labels, s) in curves.items():
        c = pr_curve(labels, s)
        if not c["precision"]:
            continue
        line, = ax.step(c["recall"], c["precision"], where="post", label=f"{name} (AP {c['average_precision']:.2f})")
        if operating_points and name in operating_points:
            r, p = operating_points[name]
            ax.plot([r], [p], "o", color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Precision-recall on the test windows")
    fig.tight_layout()
    return save_png(fig, path, dpi=120)


def plot_spectrogram_panel(images, labels, path, n: int = 3, component: int = 0, extent=None,
                           titles=None) -> str:
    """PNG panel: ``n`` earthquake (top row) and ``n`` noise (bottom row) spectrograms of one component.

    ``images`` is (window, component, freq, time) with frequency rows increasing upwards;
    ``extent`` = (t0, t1, f0, f1) labels the axes in s and Hz when known.
    """
    from seisgrid.figures import new_figure, save_png

    images = np.asarray(images, np.float32)
    labels = np.asarray(labels).astype(int)
    rows = [np.flatnonzero(labels == 1)[:n], np.flatnonzero(labels == 0)[:n]]
    fig = new_figure((3 * n, 6))
    axes = fig.subplots(2, n, squeeze=False)
    for r, (idx, name) in enumerate(zip(rows, ("earthquake", "noise"))):
        for k in range(n):
            ax = axes[r][k]
            if k >= len(idx):
                ax.axis("off")
                continue
            ax.imshow(images[idx[k], component], origin="lower", aspect="auto", cmap="magma", extent=extent)
            ax.set_title(f"{name} #{idx[k]}" if titles is None else titles[idx[k]], fontsize=9)
            if extent is not None:
                ax.set_xlabel("time (s)")
                ax.set_ylabel("frequency (Hz)")
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.tight_layout()
    return save_png(fig, path, dpi=100)
