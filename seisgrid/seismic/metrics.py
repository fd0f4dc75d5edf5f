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

Breakdowns (:func:`fpr_by_group`, :func:`recall_by_bin`, :func:`scores_by_group`)
    The same predictions split by a property of each window: the false-positive rate per noise
    sub-class (``icequake``, ``quiet_noise``, ``pre_event_noise``; :data:`NOISE_SUBCLASSES`), recall per
    signal-to-noise bin (:data:`SNR_DB_BINS`, dB of the window store's ``snr_db``) and per epicentral
    distance bin (:data:`DISTANCE_KM_BINS`, km of ``distance_km``), per magnitude bin
    (:data:`MAGNITUDE_BINS`, the event's ``magnitude``), and every score per region or network. Bins are
    half-open ``[min, max)`` (None: open end); a window whose value is unknown (NaN, a sub-class missing
    from an older store) or outside every bin is counted in its own ``unknown`` bin, never dropped.

M50 (:func:`m50`)
    The magnitude from which recall stays at or above 50 %: per magnitude bin with events, the point
    (mean magnitude of its events, recall); between consecutive points recall is interpolated linearly;
    M50 is where this curve crosses 50 % for the last time, between the last point below 50 % and the
    next one. When every point is at or above 50 % it lies below the first point (``bound`` ``"<"``,
    the value that point's magnitude); when the last point is below 50 %, above the last one (``">"``).
    The figure that answers "which events does a detector find": a lower M50 finds smaller events.

Figures: :func:`pr_curves_figure`, :func:`spectrogram_panel_figure` and :func:`history_figure` build a
Matplotlib figure (Agg, no pyplot, see :mod:`seisgrid.figures`); :func:`plot_pr_curves`,
:func:`plot_spectrogram_panel` and :func:`seisgrid.seismic.train.plot_history` write it as PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np

if TYPE_CHECKING:
    import os

    import numpy.typing as npt
    from matplotlib.figure import Figure

YEAR_SECONDS = 365.25 * 86_400


def _ratio(num, den) -> float:
    return float(num) / float(den) if den else math.nan


def confusion_matrix(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> dict:
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


def scores(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> dict:
    """Confusion counts plus ``precision``, ``recall``, ``fpr``, ``f1`` (fractions, NaN if undefined)."""
    cm = confusion_matrix(labels, predictions)
    return {**cm, "precision": precision(cm), "recall": recall(cm), "fpr": false_positive_rate(cm),
            "f1": f1_score(cm)}


def pr_curve(labels: npt.ArrayLike, scores_: npt.ArrayLike) -> dict:
    """Precision-recall curve of continuous scores.

    Returns ``precision``, ``recall``, ``thresholds`` (lists) and ``average_precision`` (scikit-learn's
    step-wise area).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y = np.asarray(labels).astype(int)
    s = np.asarray(scores_, np.float64)
    if y.min(initial=0) == y.max(initial=0):
        return {"precision": [], "recall": [], "thresholds": [], "average_precision": math.nan}
    p, r, t = precision_recall_curve(y, s)
    return {"precision": p.tolist(), "recall": r.tolist(), "thresholds": t.tolist(),
            "average_precision": float(average_precision_score(y, s))}


# --------------------------------------------------------------------------------------- breakdowns
#: Noise sub-classes (window store ``subclass``) whose false-positive rates are reported separately.
NOISE_SUBCLASSES = ("icequake", "quiet_noise", "pre_event_noise")
#: Group and bin name of windows whose value is unknown or outside every bin.
UNKNOWN = "unknown"
#: Recall bins of the window SNR (``snr_db``, dB): ``[min, max)``, None an open end.
SNR_DB_BINS: tuple[tuple[float | None, float | None], ...] = (
    (None, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0), (40.0, None))
#: Recall bins of the epicentral distance (``distance_km``, km): ``[min, max)``, None an open end.
DISTANCE_KM_BINS: tuple[tuple[float | None, float | None], ...] = (
    (0.0, 20.0), (20.0, 50.0), (50.0, 100.0), (100.0, 200.0), (200.0, None))
#: Recall bins of the magnitude (window store ``magnitude``, truth catalog ``magnitude``): ``[min, max)``.
#: They cover the synthetic archives' magnitudes (-0.5 to 3.0, :mod:`seisgrid.seismic.synthwaves`) and the
#: study's detection thresholds (M 0.8 to 1.5) in half-magnitude steps.
MAGNITUDE_BINS: tuple[tuple[float | None, float | None], ...] = (
    (None, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, None))


def bin_name(low: float | None, high: float | None) -> str:
    """Name of the bin ``[low, high)``: ``"10–20"``, ``"<10"`` (no lower end), ``"≥40"`` (no upper end)."""
    if low is None and high is None:
        return "all"
    if low is None:
        return f"<{high:g}"
    if high is None:
        return f"≥{low:g}"
    return f"{low:g}–{high:g}"


def assign_bins(values: npt.ArrayLike, bins: Sequence[tuple[float | None, float | None]]) -> np.ndarray:
    """Bin name (:func:`bin_name`) of each value; :data:`UNKNOWN` for NaN or a value outside every bin."""
    v = np.asarray(values, np.float64).ravel()
    out = np.full(v.shape, UNKNOWN, dtype=object)
    finite = np.isfinite(v)
    for low, high in bins:
        inside = finite & (v >= (-np.inf if low is None else low)) & (v < (np.inf if high is None else high))
        out[inside & (out == UNKNOWN)] = bin_name(low, high)
    return out


def recall_by_bin(labels: npt.ArrayLike, predictions: npt.ArrayLike, values: npt.ArrayLike,
                  bins: Sequence[tuple[float | None, float | None]]) -> list[dict]:
    """Recall of the earthquake windows per bin of a window property (e.g. SNR, distance).

    Parameters
    ----------
    labels, predictions : array_like
        1 earthquake, 0 noise, per window.
    values : array_like of float
        The property per window (NaN unknown); only earthquake windows count.
    bins : sequence of (min, max)
        Half-open bins ``[min, max)``; None an open end.

    Returns
    -------
    list of dict
        One per bin in order, then the :data:`UNKNOWN` bin (NaN or outside every bin): ``bin`` (name),
        ``min``, ``max`` (None for an open end and for the unknown bin), ``n`` (earthquake windows),
        ``detected`` (of them predicted earthquake), ``recall`` (NaN when ``n`` is 0).
    """
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(predictions).astype(bool).ravel()
    names = assign_bins(values, bins)
    if not y.shape == p.shape == names.shape:
        raise ValueError(f"labels ({y.size}), predictions ({p.size}) and values ({names.size}) differ in length")
    out = []
    for low, high, name in [(lo, hi, bin_name(lo, hi)) for lo, hi in bins] + [(None, None, UNKNOWN)]:
        sel = y & (names == name)
        n, hit = int(sel.sum()), int((sel & p).sum())
        out.append({"bin": name, "min": low, "max": high, "n": n, "detected": hit, "recall": _ratio(hit, n)})
    return out


def m50(magnitudes: npt.ArrayLike, detected: npt.ArrayLike,
        bins: Sequence[tuple[float | None, float | None]] = MAGNITUDE_BINS, level: float = 0.5) -> dict:
    """The magnitude from which recall stays at or above ``level`` (M50; module docstring).

    Parameters
    ----------
    magnitudes : array_like of float
        Magnitude of each true event (or earthquake window); NaN ones are left out.
    detected : array_like of bool
        Whether each was detected.
    bins : sequence of (min, max)
        Half-open magnitude bins ``[min, max)``; None an open end. Values outside every bin are left out.
    level : float
        Recall to reach (0.5: M50).

    Returns
    -------
    dict
        ``m50`` (float, None without any binned magnitude), ``bound`` (``"="`` interpolated, ``"<"`` recall is
        at or above ``level`` in every bin: M50 lies below ``m50``, the first point's magnitude; ``">"``
        below ``level`` in the last bin: above ``m50``, the last point's magnitude; None), ``level`` and
        ``points`` (per bin with events: ``bin``, ``magnitude`` (mean of its events), ``n``, ``recall``).
    """
    v = np.asarray(magnitudes, np.float64).ravel()
    hit = np.asarray(detected).astype(bool).ravel()
    if v.shape != hit.shape:
        raise ValueError(f"magnitudes ({v.size}) and detected ({hit.size}) differ in length")
    names = assign_bins(v, bins)
    xs: list[float] = []
    ys: list[float] = []
    points = []
    for low, high in bins:
        sel = names == bin_name(low, high)
        if sel.any():
            xs.append(round(float(v[sel].mean()), 3))
            ys.append(float(hit[sel].mean()))
            points.append({"bin": bin_name(low, high), "magnitude": xs[-1], "n": int(sel.sum()), "recall": ys[-1]})
    out: dict = {"m50": None, "bound": None, "level": level, "points": points}
    below = [i for i, y in enumerate(ys) if y < level]
    if not ys:
        return out
    if not below:
        return {**out, "m50": xs[0], "bound": "<"}
    i = below[-1]
    if i == len(ys) - 1:
        return {**out, "m50": xs[i], "bound": ">"}
    return {**out, "m50": round(xs[i] + (level - ys[i]) * (xs[i + 1] - xs[i]) / (ys[i + 1] - ys[i]), 3),
            "bound": "="}


def m50_text(result: Mapping) -> str:
    """:func:`m50`'s result as text: ``"1.23"``, ``"< -0.21"``, ``"> 2.40"`` or ``"—"``."""
    if result.get("m50") is None:
        return "—"
    prefix = {"<": "< ", ">": "> "}.get(result.get("bound") or "", "")
    return f"{prefix}{result['m50']:.2f}"


def _group_names(groups, n: int) -> np.ndarray:
    g = np.asarray(groups, dtype=object).ravel()
    if g.size != n:
        raise ValueError(f"{g.size} groups for {n} windows")
    return np.array([UNKNOWN if v is None or str(v) in ("", "nan", "None") else str(v) for v in g], dtype=object)


def fpr_by_group(labels: npt.ArrayLike, predictions: npt.ArrayLike, groups: npt.ArrayLike,
                 names: Sequence[str] = NOISE_SUBCLASSES) -> dict:
    """False-positive rate of the noise windows per group (e.g. noise sub-class).

    Parameters
    ----------
    labels, predictions : array_like
        1 earthquake, 0 noise, per window.
    groups : array_like of str
        Group per window; empty or None is :data:`UNKNOWN`. Only noise windows count.
    names : sequence of str
        Groups always reported, in this order (``n`` 0 and ``fpr`` NaN when absent); other groups of
        noise windows follow in sorted order.

    Returns
    -------
    dict
        Group → ``{"n": noise windows, "false_positives": of them predicted earthquake, "fpr": ratio}``.
    """
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(predictions).astype(bool).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and predictions ({p.size}) differ in length")
    g = _group_names(groups, y.size)
    order = list(names) + sorted(set(g[~y]) - set(names))
    out = {}
    for name in order:
        sel = ~y & (g == name)
        n, fp = int(sel.sum()), int((sel & p).sum())
        out[name] = {"n": n, "false_positives": fp, "fpr": _ratio(fp, n)}
    return out


def scores_by_group(labels: npt.ArrayLike, predictions: npt.ArrayLike, groups: npt.ArrayLike) -> dict:
    """:func:`scores` of the windows of each group (e.g. region, network), groups in sorted order.

    Returns
    -------
    dict
        Group (empty or None: :data:`UNKNOWN`) → :func:`scores` plus ``earthquakes`` and ``noise`` (window
        counts).
    """
    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(predictions).astype(int).ravel()
    g = _group_names(groups, y.size)
    out = {}
    for name in sorted(set(g)):
        sel = g == name
        out[name] = {**scores(y[sel], p[sel]), "earthquakes": int(y[sel].sum()), "noise": int((1 - y[sel]).sum())}
    return out


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


def _ap(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _subclass_title(name: str) -> str:
    return name.replace("_", " ").replace("pre event", "pre-event")


def results_table(methods: Mapping[str, Mapping], noise_subclasses: Mapping[str, int] | None = None) -> str:
    """Markdown table shaped like the study's: one row per method.

    Parameters
    ----------
    methods : mapping of str to dict
        Display name → ``precision``, ``recall``, ``fpr``, ``f1`` (fractions) and ``hours_per_year``; optionally
        ``average_precision`` and ``fpr_by_subclass`` (:func:`fpr_by_group`).
    noise_subclasses : mapping of str to int, optional
        Noise sub-class → its number of noise windows: one column "FPR <sub-class> (n=N)" each after the
        false-positive rate. An "average precision" column follows F1 when a method has one.

    Returns
    -------
    str
        The table, "—" for undefined values.
    """
    subs = dict(noise_subclasses or {})
    with_ap = any("average_precision" in m for m in methods.values())
    head = ["method", "precision", "recall", "false-positive rate"]
    head += [f"FPR {_subclass_title(k)} (n={n})" for k, n in subs.items()] + ["F1"]
    head += ["average precision"] * with_ap + ["processing, hours per year of data (one core)"]
    with_cost = any("gmacs" in m for m in methods.values())
    head += ["windows/s (measured)", "parameters", "G multiply-adds per window"] * with_cost
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in methods.items():
        by_sub = m.get("fpr_by_subclass") or {}
        cells = [name, _pct(m.get("precision")), _pct(m.get("recall")), _pct(m.get("fpr"))]
        cells += [_pct((by_sub.get(k) or {}).get("fpr")) for k in subs] + [_pct(m.get("f1"))]
        cells += [_ap(m.get("average_precision"))] * with_ap + [_hours(m.get("hours_per_year"))]
        if with_cost:
            rate, params, gmacs = m.get("windows_per_second"), m.get("parameters"), m.get("gmacs")
            cells += ["—" if rate is None else f"{rate:,.1f}", "—" if params is None else f"{params:,}",
                      "—" if gmacs is None else f"{gmacs:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bin_table(methods: Mapping[str, Mapping], key: str) -> list[str]:
    rows = [(name, m[key]) for name, m in methods.items() if m.get(key)]
    if not rows:
        return []
    bins = rows[0][1]
    head = ["method"] + [f"{b['bin']} (n={b['n']})" for b in bins]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entries in rows:
        cells = [_pct(b["recall"]) + (f" ({b['detected']}/{b['n']})" if b["n"] else "") for b in entries]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return lines


def _group_table(methods: Mapping[str, Mapping], key: str, what: str) -> list[str]:
    rows = [(group, name, s) for name, m in methods.items() for group, s in (m.get(key) or {}).items()]
    if not rows:
        return []
    lines = [f"| {what} | method | earthquake windows | noise windows | precision | recall "
             "| false-positive rate | F1 |", "|---|---|---|---|---|---|---|---|"]
    for group, name, s in sorted(rows, key=lambda r: r[0]):  # stable: methods in their order per group
        lines.append(f"| {group} | {name} | {s['earthquakes']} | {s['noise']} | {_pct(s.get('precision'))} "
                     f"| {_pct(s.get('recall'))} | {_pct(s.get('fpr'))} | {_pct(s.get('f1'))} |")
    return lines


def _m50_lines(methods: Mapping[str, Mapping]) -> list[str]:
    shown = [f"{name} {m50_text(m['m50'])}" for name, m in methods.items() if m.get("m50") and m["m50"]["points"]]
    return ["", "M50 (magnitude from which window recall stays ≥ 50 %): " + "; ".join(shown)] if shown else []


def breakdown_tables(methods: Mapping[str, Mapping]) -> str:
    """Markdown sections of the breakdowns: recall by SNR, distance and magnitude, scores by region and network.

    ``methods`` maps a display name to a dict with ``recall_by_snr``, ``recall_by_distance`` and
    ``recall_by_magnitude`` (:func:`recall_by_bin`), ``m50`` (:func:`m50`), ``by_region`` and ``by_network``
    (:func:`scores_by_group`); missing ones are left out. Recall cells read "percent (detected/n)"; "—" for an
    empty bin.
    """
    sections = [
        ("Recall by signal-to-noise ratio (window store `snr_db`, dB; bins [min, max))",
         _bin_table(methods, "recall_by_snr")),
        ("Recall by epicentral distance (window store `distance_km`, km; bins [min, max))",
         _bin_table(methods, "recall_by_distance")),
        ("Recall by magnitude (window store `magnitude`; bins [min, max))",
         _bin_table(methods, "recall_by_magnitude") + _m50_lines(methods)),
        ("By region", _group_table(methods, "by_region", "region")),
        ("By network", _group_table(methods, "by_network", "network")),
    ]
    return "".join(f"\n### {title}\n\n" + "\n".join(lines) + "\n" for title, lines in sections if lines)


# ------------------------------------------------------------------------------------------ figures
# Each figure has a builder that returns the Matplotlib Figure (for inspection and tests) and a
# ``plot_*`` function that draws it and writes the PNG through seisgrid.figures.save_png.

OPERATING_POINT_LABEL = ("operating point: the method's tuned threshold\n"
                         "(its precision and recall on the test windows)")
AP_LEGEND_TITLE = "AP = average precision (area under the step curve)"
BEST_EPOCH_LABEL = "best epoch {epoch} (weights kept)"


def _finite_point(point) -> tuple[float, float] | None:
    """``(recall, precision)`` as floats, or None when missing or not finite."""
    if point is None:
        return None
    try:
        r, p = (float(v) for v in point)
    except (TypeError, ValueError):
        return None
    return (r, p) if math.isfinite(r) and math.isfinite(p) else None


def pr_curves_figure(curves: Mapping[str, tuple], operating_points: Mapping[str, tuple] | None = None) -> Figure:
    """Figure of precision-recall curves, one per method, with their operating points.

    Parameters
    ----------
    curves : mapping of str to (labels, scores)
        Method name → test labels (1 earthquake, 0 noise) and continuous scores (higher = more
        earthquake-like). Methods whose labels hold a single class have no curve and are left out.
    operating_points : mapping of str to (recall, precision), optional
        Method name → recall and precision of the method's tuned threshold on the same windows; drawn
        as a dot in the curve's colour and explained in the legend. Missing or non-finite points are
        not drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One axes (recall on x, precision on y, both fractions 0–1) and a figure legend below it: one
        entry per method with its average precision (and its operating point's values), plus one
        entry explaining the operating-point dot.
    """
    from matplotlib.lines import Line2D

    from seisgrid.figures import new_figure

    points = dict(operating_points or {})
    fig = new_figure((6.0, 6.6), layout="constrained")
    ax = fig.subplots()
    handles, marked, counts = [], False, None
    size = 11.0  # dots shrink method by method: coinciding operating points stay visible as rings
    for name, (labels, s) in curves.items():
        if counts is None:
            y = np.asarray(labels).astype(bool).ravel()
            counts = (int(y.sum()), int(y.size - y.sum()))
        c = pr_curve(labels, s)
        if not c["precision"]:
            continue
        text = f"{name}: AP {c['average_precision']:.2f}"
        point = _finite_point(points.get(name))
        if point is not None:
            text += f"; operating point: precision {point[1]:.2f}, recall {point[0]:.2f}"
        line, = ax.step(c["recall"], c["precision"], where="post", label=text)
        if point is not None:
            ax.plot([point[0]], [point[1]], "o", ms=size, mfc=line.get_color(), mec="k", mew=1.0, zorder=3,
                    clip_on=False)
            size, marked = max(size - 3.0, 5.0), True
        handles.append(line)
    if marked:
        handles.append(Line2D([], [], ls="none", marker="o", ms=8, mfc="white", mec="k", mew=1.0,
                              label=OPERATING_POINT_LABEL))
    if not handles:
        ax.text(0.5, 0.5, "no method has test windows of both classes", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
    ax.set_xlabel("recall = TP / (TP + FN)\n(fraction of the test earthquake windows detected)")
    ax.set_ylabel("precision = TP / (TP + FP)\n(fraction of the detections that are earthquakes)")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    title = "Precision–recall on the test windows"
    if counts is not None:
        title += f"\n({counts[0]} earthquake and {counts[1]} noise windows)"
    ax.set_title(title, fontsize=10)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=1, fontsize=8, title=AP_LEGEND_TITLE,
                   title_fontsize=8, frameon=False)
    return fig


def plot_pr_curves(curves: Mapping[str, tuple], path: str | os.PathLike,
                   operating_points: Mapping[str, tuple] | None = None) -> str:
    """PNG of precision-recall curves (:func:`pr_curves_figure`) written to ``path``.

    Parameters
    ----------
    curves : mapping of str to (labels, scores)
        Method name → test labels and continuous scores.
    path : str or path-like
        Local path or URL of the PNG.
    operating_points : mapping of str to (recall, precision), optional
        The tuned threshold's recall and precision per method.

    Returns
    -------
    str
        ``path``.
    """
    from seisgrid.figures import save_png

    return save_png(pr_curves_figure(curves, operating_points), str(path), dpi=120)


def _component_name(components, component: int, n_components: int) -> str:
    if components is not None:
        return str(list(components)[component])
    if n_components == 3:  # the store convention (docs/windows-schema.md): component = Z, N, E
        return "ZNE"[component]
    return f"component {component % n_components}"


def _pixel_edges(centres, n: int) -> tuple[float, float] | None:
    """Outer edges of ``n`` pixels centred at evenly spaced ``centres`` (None when they do not match)."""
    if centres is None:
        return None
    c = np.asarray(centres, np.float64).ravel()
    if c.size != n or not np.all(np.isfinite(c)):
        return None
    half = (c[-1] - c[0]) / (2 * (n - 1)) if n > 1 else 0.5
    return float(c[0] - half), float(c[-1] + half)


def _value_range(shown) -> tuple[float, float]:
    """Shared colour range of the shown images: 1st–99th percentile of their finite values."""
    values = np.concatenate([np.ravel(v) for v in shown]) if shown else np.zeros(1)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [1, 99]))
    return (lo, hi) if hi > lo else (lo - 1.0, lo + 1.0)


def spectrogram_panel_figure(images: npt.ArrayLike, labels: npt.ArrayLike, n: int = 3, component: int = 0,
                             extent: Sequence[float] | None = None, titles: Sequence[str] | None = None, *,
                             stations: Sequence[str] | None = None, components: Sequence[str] | None = None,
                             times: npt.ArrayLike | None = None, freqs: npt.ArrayLike | None = None,
                             window_seconds: float | None = None, colorbar_label: str | None = None,
                             value_range: tuple[float, float] | None = None,
                             window_ids: Sequence[int] | np.ndarray | None = None) -> Figure:
    """Figure of ``n`` earthquake (top row) and ``n`` noise (bottom row) spectrograms of one component.

    Parameters
    ----------
    images : array_like, shape (window, component, freq, time)
        Spectrogram images, frequency rows increasing upwards.
    labels : array_like, shape (window,)
        1 earthquake, 0 noise; the first ``n`` of each class are shown.
    n : int
        Images per row.
    component : int
        Index of the component shown.
    extent : tuple of float, optional
        ``(t0, t1, f0, f1)``: outer pixel edges in s and Hz (Matplotlib ``imshow`` extent), used for an
        axis whose pixel centres (``times`` / ``freqs``) are not given.
    titles : sequence of str, optional
        One title per window (indexed like ``images``); replaces the default title.
    stations : sequence of str, optional
        Station id (``NET.STA``) per window, named in the default titles.
    components : sequence of str, optional
        Component names of the images' component axis (default Z, N, E for 3 components).
    times, freqs : array_like, optional
        Pixel-centre time (s after the window start) of each column and frequency (Hz) of each row,
        e.g. the spectrogram store's ``time`` and ``freq`` coordinates.
    window_seconds : float, optional
        Window length, s: the time axis then spans 0 … ``window_seconds``.
    colorbar_label : str, optional
        Quantity and units of the pixel values, for the shared colour bar.
    value_range : tuple of float, optional
        ``(vmin, vmax)`` of the shared colour scale (default: 1st–99th percentile of the shown images).
    window_ids : sequence or array of int, optional
        Window number in the store of each image, named in the default titles (default: the position
        in ``images``).

    Returns
    -------
    matplotlib.figure.Figure
        2 × ``n`` image axes (titled with label, station and component; axes in s and Hz when known,
        else in image columns and rows) and one colour bar shared by all images.
    """
    from seisgrid.figures import new_figure

    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images of shape {images.shape}: expected (window, component, freq, time)")
    labels = np.asarray(labels).astype(int).ravel()
    if labels.size != images.shape[0]:
        raise ValueError(f"{labels.size} labels for {images.shape[0]} images")
    n_components, n_f, n_t = images.shape[1:]
    if not -n_components <= component < n_components:
        raise ValueError(f"component {component}: the images have {n_components} components")
    comp = _component_name(components, component, n_components)
    x_edges = _pixel_edges(times, n_t) or (None if extent is None else (float(extent[0]), float(extent[1])))
    y_edges = _pixel_edges(freqs, n_f) or (None if extent is None else (float(extent[2]), float(extent[3])))
    image_extent = (*(x_edges or (-0.5, n_t - 0.5)), *(y_edges or (-0.5, n_f - 0.5)))
    rows = [np.flatnonzero(labels == 1)[:n], np.flatnonzero(labels == 0)[:n]]
    shown = [images[i, component] for i in np.concatenate(rows)]
    vmin, vmax = value_range if value_range is not None else _value_range(shown)

    fig = new_figure((3.2 * n + 1.6, 7.0), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    im = None
    for r, (idx, name) in enumerate(zip(rows, ("earthquake", "noise"), strict=True)):
        for k in range(n):
            ax = axes[r][k]
            if k >= len(idx):
                ax.axis("off")
                continue
            w = int(idx[k])
            img = images[w, component]
            im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma", extent=image_extent,
                           vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None:
                title = str(titles[w])
            else:
                parts = [name] + ([str(stations[w])] if stations is not None else []) + [comp]
                title = " · ".join(parts) + f"\nwindow {w if window_ids is None else int(window_ids[w])}"
            ax.set_title(title, fontsize=9)
            if x_edges is not None:
                ax.set_xlabel("time after window start (s)", fontsize=8)
                if window_seconds:
                    ax.set_xlim(0, float(window_seconds))
            else:
                ax.set_xlabel("time (image column)", fontsize=8)
            if k == 0:
                ax.set_ylabel("frequency (Hz)" if y_edges is not None else "frequency (image row)", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.set_facecolor("0.85")  # outside the image: before the first / after the last STFT frame centre
            if not np.any(img):
                ax.text(0.5, 0.5, f"{comp} absent\n(all zero)", ha="center", va="center", color="w",
                        transform=ax.transAxes, fontsize=9)
    if im is not None:
        bar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9, pad=0.02)
        bar.set_label(colorbar_label or "pixel value", fontsize=9)
        bar.ax.tick_params(labelsize=8)
    fig.suptitle(f"Spectrograms, component {comp}: earthquake (top) and noise (bottom) windows", fontsize=10)
    if x_edges is not None and window_seconds and (x_edges[0] > 0 or x_edges[1] < float(window_seconds)):
        fig.supxlabel(f"grey: {max(x_edges[0], 0):.2g} s at the start and "
                      f"{max(float(window_seconds) - x_edges[1], 0):.2g} s "
                      "at the end of the window, where no spectrogram column (STFT frame centre) lies", fontsize=8)
    return fig


class PanelOptions(TypedDict, total=False):
    """Keyword options of :func:`spectrogram_panel_figure` that :func:`plot_spectrogram_panel` passes on."""

    stations: Sequence[str] | None
    components: Sequence[str] | None
    times: npt.ArrayLike | None
    freqs: npt.ArrayLike | None
    window_seconds: float | None
    colorbar_label: str | None
    value_range: tuple[float, float] | None
    window_ids: Sequence[int] | np.ndarray | None


def plot_spectrogram_panel(images: npt.ArrayLike, labels: npt.ArrayLike, path: str | os.PathLike, n: int = 3,
                           component: int = 0, extent: Sequence[float] | None = None,
                           titles: Sequence[str] | None = None, **options: Unpack[PanelOptions]) -> str:
    """PNG panel of spectrograms (:func:`spectrogram_panel_figure`) written to ``path``.

    Parameters
    ----------
    images : array_like, shape (window, component, freq, time)
        Spectrogram images, frequency rows increasing upwards.
    labels : array_like, shape (window,)
        1 earthquake, 0 noise.
    path : str or path-like
        Local path or URL of the PNG.
    n, component, extent, titles
        As for :func:`spectrogram_panel_figure`.
    **options
        Keyword options of :func:`spectrogram_panel_figure` (``stations``, ``components``, ``times``,
        ``freqs``, ``window_seconds``, ``colorbar_label``, ``value_range``, ``window_ids``).

    Returns
    -------
    str
        ``path``.
    """
    from seisgrid.figures import save_png

    fig = spectrogram_panel_figure(images, labels, n=n, component=component, extent=extent, titles=titles,
                                   **options)
    return save_png(fig, str(path), dpi=100)


def _series(history: Sequence[Mapping], key: str) -> np.ndarray:
    return np.array([np.nan if h.get(key) is None else float(h[key]) for h in history], np.float64)


def history_figure(history: Sequence[Mapping], best_epoch: int | None = None, title: str = "") -> Figure:
    """Figure of a training run: loss per epoch (left), validation scores and train accuracy (right).

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch with ``epoch``, ``train_loss``, ``train_accuracy`` and, when there is a
        validation set, ``val_loss``, ``val_precision``, ``val_recall``, ``val_f1`` (None = undefined).
    best_epoch : int, optional
        Epoch whose weights were kept: a dashed line on both axes, ringed points and a legend entry.
    title : str
        Figure title (the best epoch is appended).

    Returns
    -------
    matplotlib.figure.Figure
        Two axes and one figure legend below them (outside the axes, so it covers no curve).
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from seisgrid.figures import new_figure

    ep = np.array([int(h["epoch"]) for h in history])
    fig = new_figure((10, 4.6), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    series = [(a1, "train_loss", "train loss", "C0", "o-"), (a1, "val_loss", "val loss", "C1", "o-"),
              (a2, "val_precision", "val precision", "C2", "o-"), (a2, "val_recall", "val recall", "C3", "o-"),
              (a2, "val_f1", "val F1", "C4", "o-"), (a2, "train_accuracy", "train accuracy", "grey", ":")]
    handles = []
    best = np.flatnonzero(ep == best_epoch) if best_epoch else np.array([], int)
    for ax, key, label, colour, style in series:
        if not any(key in h for h in history):
            continue
        y = _series(history, key)
        line, = ax.plot(ep, y, style, color=colour, ms=4, label=label)
        handles.append(line)
        if best.size and np.isfinite(y[best[0]]):
            ax.plot(ep[best[0]], y[best[0]], "o", ms=10, mfc="none", mec="k", mew=1.2, zorder=3)
    for ax in (a1, a2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="k", lw=1.0, ls="--", zorder=1)
    if best_epoch:
        handles.append(Line2D([], [], color="k", lw=1.0, ls="--", marker="o", ms=10, mfc="none", mec="k",
                              label=BEST_EPOCH_LABEL.format(epoch=best_epoch)))
    a1.set_ylabel("cross-entropy loss (nats per window)")
    a1.set_title("loss")
    a2.set_ylim(0, 1.02)
    a2.set_ylabel("score (fraction, 0–1)")
    a2.set_title("validation scores at threshold 0.5; train accuracy")
    if title or best_epoch:
        fig.suptitle(" — ".join(t for t in (title, f"best epoch {best_epoch}" if best_epoch else "") if t),
                     fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles) if len(handles) <= 7 else 4,
               fontsize=8, frameon=False)
    return fig
