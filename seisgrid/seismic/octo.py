"""PyOcto (PyPI ``pyocto``) as the ``pyocto`` associator of :func:`seisgrid.seismic.associate.associate`.

:func:`group` hands the picks to :class:`pyocto.OctoAssociator` and returns which picks form each event;
the origin is then found by seisgrid's own grid search (:func:`seisgrid.seismic.associate.locate`), so the
two associators differ only in the grouping. The mapping of seisgrid's settings:

* stations in the local flat coordinates of the associate module (km east and north of the stations'
  centre), at depth 0 (no elevation);
* every pick is a P pick: ``n_picks`` = ``n_p_picks`` = ``min_stations``, no S picks required;
* :class:`pyocto.VelocityModel0D`: P velocity ``p_velocity_kms``, S velocity ``velocity_kms`` (the
  association's slowest velocity, 3.5 km/s), tolerance ``tolerance_seconds``;
* search volume ``x, y ∈ [−grid_radius_km, grid_radius_km]``, ``z ∈ [0, max(2 × depth_km, 20)]`` km;
  ``time_before`` = the largest P travel time inside that volume (its diagonal) so that no event is cut at
  a time-slice boundary; one thread (the caller may be a Dask task); PyOcto's other settings at their
  defaults (``min_node_size`` 10 km, ``pick_match_tolerance`` 1.5 s, ``min_interevent_time`` 3 s, ...).

PyOcto 0.1.5 and later declare ``numpy<2`` on Python ≤ 3.11 although the compiled module runs on numpy 2
(tested: numpy 2.4.6, pyocto 0.1.4 and 0.2.2); ``pyproject.toml`` installs 0.1.4 there and the newest
release on Python 3.12+. The API used here is the same in both.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

logger = logging.getLogger("seisgrid")


def group(stations: dict[str, tuple[float, float]], picks: list[tuple[str, int]], *, min_stations: int,
          p_velocity_kms: float, s_velocity_kms: float, tolerance_seconds: float, radius_km: float,
          depth_km: float) -> list[list[int]]:
    """Indices of the picks that PyOcto associates into each event (module docstring: the settings).

    Parameters
    ----------
    stations : dict
        ``{"NET.STA": (x_km, y_km)}`` in local flat coordinates.
    picks : list of (str, int)
        ``(station, time_ns)``; every station must be in ``stations``.
    min_stations : int
        Picks needed for an event.
    p_velocity_kms, s_velocity_kms : float
        Half-space velocities, km/s.
    tolerance_seconds : float
        Travel-time tolerance of the velocity model, s.
    radius_km : float
        Half-width of the square search area around the stations' centre, km.
    depth_km : float
        Nominal source depth; the search goes to ``max(2 × depth_km, 20)`` km.

    Returns
    -------
    list of list of int
        One list of pick indices per event, in PyOcto's order (by origin time).
    """
    if not picks:
        return []
    import pandas as pd
    import pyocto

    zmax = max(2.0 * depth_km, 20.0)
    model = pyocto.VelocityModel0D(p_velocity=p_velocity_kms, s_velocity=s_velocity_kms,
                                   tolerance=tolerance_seconds)
    time_before = math.hypot(2.0 * math.sqrt(2.0) * radius_km, zmax) / p_velocity_kms
    octo = pyocto.OctoAssociator(xlim=(-radius_km, radius_km), ylim=(-radius_km, radius_km), zlim=(0.0, zmax),
                                 velocity_model=model, time_before=time_before, n_picks=min_stations,
                                 n_p_picks=min_stations, n_s_picks=0, n_p_and_s_picks=0, n_threads=1)
    names = sorted(stations)
    table = pd.DataFrame({"id": names, "x": [stations[s][0] for s in names],
                          "y": [stations[s][1] for s in names], "z": 0.0})
    t_ref = min(t for _, t in picks)
    frame = pd.DataFrame({"station": [s for s, _ in picks],
                          "time": np.array([(t - t_ref) / 1e9 for _, t in picks], dtype=np.float64),
                          "phase": "P"})
    with warnings.catch_warnings():  # pyocto 0.1.4 on pandas 3.1: DataFrame.drop(inplace=True) is deprecated
        warnings.filterwarnings("ignore", message="The inplace keyword", module="pyocto")
        events, assignments = octo.associate(frame, table)
    if len(events) == 0:
        return []
    out: dict[int, list[int]] = {}
    for event_idx, pick_idx in zip(assignments["event_idx"], assignments["pick_idx"], strict=True):
        out.setdefault(int(event_idx), []).append(int(pick_idx))
    order = events.sort_values("time")["idx"].astype(int).tolist()
    return [sorted(out[i]) for i in order if i in out]


__all__ = ["group"]
