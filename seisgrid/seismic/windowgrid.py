"""The window grid of a day and intervals of window indices, for detection and its incremental reruns.

Window ``k`` of day ``d`` (days since 1970) starts at ``d + k × stride`` and lasts one window length;
the stride divides a day. Intervals are ``[a, b)`` pairs of window indices (end exclusive), kept sorted
and merged (:func:`merge`). A changed stretch of samples ``[a, b)`` (ns) makes a window invalid when the
data the window and its pick read, ``[start − before, start + after)``, meets it (:func:`invalid_windows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from seisgrid.seismic.layout import DAY_NS


def runs(above: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) index pairs of runs of True (end exclusive)."""
    if not len(above):
        return []
    padded = np.concatenate(([False], above, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def merge(intervals: Iterable[Sequence[int]]) -> list[list[int]]:
    """Sorted, merged (touching ones joined) ``[a, b)`` intervals; empty ones dropped."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in intervals if b > a):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def subtract(k0: int, k1: int, done: Iterable[Sequence[int]]) -> list[list[int]]:
    """The parts of ``[k0, k1)`` outside the intervals ``done``."""
    out, a = [], k0
    for lo, hi in merge(done):
        if hi <= a or lo >= k1:
            continue
        if lo > a:
            out.append([a, lo])
        a = max(a, hi)
    if a < k1:
        out.append([a, k1])
    return out


def overlap(intervals: Iterable[Sequence[int]], k0: int, k1: int) -> int:
    """Number of indices of ``intervals`` inside ``[k0, k1)``."""
    return sum(max(0, min(b, k1) - max(a, k0)) for a, b in intervals)


def window_range(day: int, lo_ns: int | None, hi_ns: int | None, stride_ns: int) -> tuple[int, int]:
    """Indices ``[k0, k1)`` of the windows of ``day`` starting in ``[lo_ns, hi_ns)``.

    Window ``k`` starts at ``day + k × stride``; a bound of None is unbounded.
    """
    day0, n_day = day * DAY_NS, DAY_NS // stride_ns
    k0 = 0 if lo_ns is None else -((day0 - lo_ns) // stride_ns)  # ceil
    k1 = n_day if hi_ns is None else -((day0 - hi_ns) // stride_ns)
    return int(min(max(k0, 0), n_day)), int(min(max(k1, 0), n_day))


def data_windows(spans: list[tuple[int, int]], window_ns: int, stride_ns: int) -> dict[int, list[list[int]]]:
    """Per day, the merged intervals ``[k0, k1)`` of the windows that lie inside a data span.

    Only those can hold a complete component (a window is evaluated when one does). Window ``k`` of day
    ``d`` covers ``[d + k × stride, d + k × stride + window)``; the stride divides a day, so window ``K``
    counted from 1970 is window ``K mod n`` of day ``K div n``.
    """
    n_day = DAY_NS // stride_ns
    out: dict[int, list[list[int]]] = {}
    for a, b in spans:
        first = -(-a // stride_ns)  # the first window starting at or after a
        last = (b - window_ns) // stride_ns + 1  # after the last window ending at or before b
        for day in range(first // n_day, (last - 1) // n_day + 1):
            k0, k1 = max(first - day * n_day, 0), min(last - day * n_day, n_day)
            if k0 < k1:
                out.setdefault(day, []).append([k0, k1])
    return {day: merge(iv) for day, iv in sorted(out.items())}


def changed_spans(before: dict, now: dict) -> list[tuple[int, int]]:
    """The time spans ``[a, b)`` (ns) of the content blocks that differ between two ``inputs``."""
    out: set[tuple[int, int]] = set()
    for cid in set(before) | set(now):
        old = {(a, b): digest for a, b, digest in before.get(cid, [])}
        new = {(a, b): digest for a, b, digest in now.get(cid, [])}
        out |= {span for span in set(old) | set(new) if old.get(span) != new.get(span)}
    return sorted(out)


def invalid_windows(changed: list[tuple[int, int]], day: int, stride_ns: int, reach: dict) -> list[list[int]]:
    """The windows of ``day`` whose probability or pick reads data in a ``changed`` span.

    ``reach``: ``before_ns`` and ``after_ns`` of :func:`seisgrid.seismic.detect.context`.
    """
    day0, n_day = day * DAY_NS, DAY_NS // stride_ns
    out = []
    for a, b in changed:  # window k reads [day0 + k·stride − before, day0 + k·stride + after)
        k_lo = (a - reach["after_ns"] - day0) // stride_ns + 1
        k_hi = -((day0 - b - reach["before_ns"]) // stride_ns)  # ceil((b + before − day0) / stride)
        out.append([max(k_lo, 0), min(k_hi, n_day)])
    return merge(out)


__all__ = ["changed_spans", "data_windows", "invalid_windows", "merge", "overlap", "runs", "subtract", "window_range"]
