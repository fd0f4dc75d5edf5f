"""The two splits of the windows: ``split`` (event+station components) and ``split_region`` (held-out regions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seisgrid.errors import ConfigError


def _components(event_ids, stations) -> np.ndarray:
    """Connected-component id per window of the graph linking each window's event and station."""
    parent: dict = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    nodes = []
    for ev, st in zip(event_ids, stations, strict=True):
        a = ("st", st)
        find(a)
        if ev:
            b = find(("ev", ev))
            ra = find(a)
            if ra != b:
                parent[max(ra, b)] = min(ra, b)
        nodes.append(a)
    roots = [find(a) for a in nodes]
    index = {r: i for i, r in enumerate(sorted(set(roots)))}
    return np.array([index[r] for r in roots], dtype=np.int64)


def _greedy(comp: np.ndarray, names: list[str], fractions, rng) -> np.ndarray:
    ids, sizes = np.unique(comp, return_counts=True)
    order = rng.permutation(len(ids))
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, ties in seeded order
    fractions = np.asarray(fractions, dtype=float)
    fractions = fractions / fractions.sum()
    target = fractions * len(comp)
    filled = np.zeros(len(names))
    chosen = {}
    for j in order:
        k = int(np.argmax(target - filled))
        chosen[ids[j]] = names[k]
        filled[k] += sizes[j]
    return np.array([chosen[c] for c in comp], dtype=object)


def assign_splits(event_ids: Sequence[str], stations: Sequence[str],
                  fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0) -> np.ndarray:
    """``train``/``val``/``test`` per window, whole event+station components at a time.

    Parameters
    ----------
    event_ids, stations : sequence of str
        Per window; ``stations`` as ``NET.STA``; an empty event id links nothing.
    fractions : (float, float, float)
        Target shares of windows.
    seed : int

    Returns
    -------
    ndarray of object (str)
        ``train``, ``val`` or ``test`` per window.

    Raises
    ------
    seisgrid.errors.ConfigError
        ``fractions`` is not three shares ≥ 0 with a positive sum.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ConfigError(f"windows.split_fractions={list(fractions)}: "
                          "expected three shares ≥ 0, e.g. [0.7, 0.15, 0.15]")
    if len(stations) == 0:
        return np.array([], dtype=object)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    return _greedy(_components(event_ids, stations), ["train", "val", "test"], fractions, rng)


def split_groups(event_ids: Sequence[str], stations: Sequence[str], start_times: Sequence,
                 fractions: Sequence[float]) -> tuple[list, str]:
    """What ``split`` groups by: ``"event+station"`` or ``"event"``.

    ``"event+station"`` — no event and no station in two splits — unless that leaves one component too
    big for the split fractions, as in a dense network where every event is recorded at every station;
    then ``"event"``: earthquake windows grouped by event, noise windows without an event by station and
    hour (so neighbouring noise never straddles splits).

    Parameters
    ----------
    event_ids, stations : sequence of str
        Per window (``stations`` as ``NET.STA``).
    start_times : sequence of datetime64
        Per window (the hour groups noise windows without an event).
    fractions : sequence of float
        The split fractions (the first is train's).

    Returns
    -------
    keys : list of str
        Per-window keys for :func:`assign_splits` (as its ``event_ids``).
    grouping : str
        ``"event+station"`` or ``"event"``.
    """
    comp = _components(event_ids, stations)
    largest = np.bincount(comp).max() / len(comp) if len(comp) else 0.0
    if largest <= fractions[0] / sum(fractions) + 0.05:
        return list(event_ids), "event+station"
    keys = [ev or f"noise:{st}:{str(t)[:13]}" for ev, st, t in zip(event_ids, stations, start_times, strict=True)]
    return keys, "event"


def assign_region_splits(event_ids: Sequence[str], stations: Sequence[str], regions: Sequence[str],
                         networks: Sequence[str], test_regions: Sequence[str] = (),
                         test_networks: Sequence[str] = (),
                         fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0,
                         sources: Sequence[str] | None = None, start_times: Sequence | None = None) -> np.ndarray:
    """Cross-region split: components touching a held-out region or network are ``test``.

    The rest is train/val in the ratio of the first two ``fractions``. With ``sources`` (and
    ``start_times``), each source's windows are split train/val on their own, grouped as
    :func:`split_groups` does (so a one-station set such as PFO, one component, falls back to grouping by
    event and still gives val its share): val then holds a part of every training source instead of
    whole sources, which is what the threshold, early stopping and calibration need. Without them,
    whole components go to train or val.

    Parameters
    ----------
    event_ids, stations, regions, networks : sequence of str
        Per window (``stations`` as ``NET.STA``).
    test_regions, test_networks : sequence of str
        Held-out regions and networks.
    fractions : sequence of float
        Split fractions; the first two give the train/val ratio.
    seed : int

    Returns
    -------
    ndarray of object (str)
        ``train``, ``val`` or ``test`` per window.
    """
    comp = _components(event_ids, stations)
    held = np.isin(np.asarray(regions, dtype=object), list(test_regions)) | \
        np.isin(np.asarray(networks, dtype=object), list(test_networks))
    held_comp = np.isin(comp, np.unique(comp[held]))
    out = np.full(len(comp), "test", dtype=object)
    rest = ~held_comp
    if not rest.any():
        return out
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2]))
    if sources is None:
        out[rest] = _greedy(comp[rest], ["train", "val"], list(fractions[:2]), rng)
        return out
    source = np.asarray(sources, dtype=object)
    events, names = np.asarray(event_ids, dtype=object), np.asarray(stations, dtype=object)
    times = np.asarray(start_times if start_times is not None else [""] * len(source), dtype=object)
    for name in sorted(set(source[rest])):
        sel = np.flatnonzero(rest & (source == name))
        keys, grouping = split_groups(list(events[sel]), list(names[sel]), list(times[sel]), list(fractions[:2]))
        sub = _components(keys, keys if grouping == "event" else list(names[sel]))
        out[sel] = _greedy(sub, ["train", "val"], list(fractions[:2]), rng)
    return out
