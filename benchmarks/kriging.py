"""Benchmark: seconds per feature of ordinary kriging onto the global 0.5° grid, on 1 and 2 Dask workers.

One feature = :func:`seisgrid.ghf.kriging.krige_to_grid` from source points to all 259,200 cells of the
global 0.5° grid, everything included: cleaning, the variogram fit (``variogram_model: auto``: three
models fitted and compared by leave-one-out RMSE, in the client) and the tiled kriging (one Dask task
per tile). Sources, as the feature grid uses them:

- **1°**: CRUST1.0 Moho depth (``crust1_laske2013/xyz-bd9.gz``, 64,800 nodes) from the real-data folder,
  or, where that folder is absent, a smooth synthetic field on the same nodes;
- **2°** (full runs): SEMum Vs at 150 km (``tomography_iris_emc/SEMum_vs.nc``, 2°, pole rows merged), or a
  synthetic field on a 2° grid.

Each source is kriged in-process serially (``client=None``, the baseline), on a LocalCluster with 1
worker and on one with 2 workers (1 thread each; both started before the clock and warmed up), repeats
interleaved; medians reported. Parallel efficiency = t1 / (2 · t2) of the medians; the per-repeat values
(t1 and t2 measured back to back) are listed too, to set beside each repeat's CPU check. Goals: ≤ 60 s per feature on 2
workers, efficiency ≥ 0.8. A 2-process CPU check and the load average before every repeat flag a busy
machine (``busy``); the numbers are then pessimistic.

Human lines go to stderr; the last stdout line is one JSON object. Full runs write
``benchmarks/results/kriging.json``, ``--quick`` ``benchmarks/results/kriging-quick.json``.

Usage (from the repository root)::

    python benchmarks/kriging.py --quick     # the 1° source, 1 repeat (about a minute)
    python benchmarks/kriging.py             # 1° and 2° sources, 5 repeats
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import busy_machine, load_average, log, median, provenance, write_result

GOAL_SECONDS = 60.0
GOAL_EFFICIENCY = 0.8
RES = 0.5
VERSIONS = ("seisgrid", "pykrige", "numpy", "scipy", "xarray", "dask", "distributed")


def _synthetic(res: float):
    from seisgrid.ghf import grid

    lat, lon = grid.grid_coords(res)
    lo, la = np.meshgrid(lon, lat)
    x, y, z = np.moveaxis(grid.unit_vectors(la, lo), -1, 0)
    values = 35.0 + 8.0 * z + 5.0 * x * y + 4.0 * np.sin(3.0 * x) * np.cos(2.0 * y) + 3.0 * np.sin(5.0 * z)
    return lo.ravel(), la.ravel(), values.ravel()


def load_sources(quick: bool) -> dict:
    """``{label: (lon, lat, values, description)}`` for the benchmark's sources."""
    from seisgrid import config

    data = config.data_dir()
    ghf = data / "ghf" if data else None
    sources = {}
    crust = ghf / "crust1_laske2013" / "xyz-bd9.gz" if ghf else None
    if crust is not None and crust.exists():
        lon, lat, values = np.loadtxt(crust).T
        sources["1deg"] = (lon, lat, values, f"CRUST1.0 Moho depth, 1° ({crust})")
    else:
        sources["1deg"] = (*_synthetic(1.0), "synthetic smooth field on 1° nodes (real-data folder absent)")
    if quick:
        return sources
    semum = ghf / "tomography_iris_emc" / "SEMum_vs.nc" if ghf else None
    if semum is not None and semum.exists():
        import xarray as xr

        with xr.open_dataset(semum) as ds:
            v = ds.v.sel(depth=150).load()
        lo, la = np.meshgrid(v.longitude.values, v.latitude.values)
        sources["2deg"] = (lo.ravel(), la.ravel(), v.values.astype(float).ravel(), f"SEMum Vs at 150 km, 2° ({semum})")
    else:
        sources["2deg"] = (*_synthetic(2.0), "synthetic smooth field on 2° nodes (real-data folder absent)")
    return sources


def one_feature(lon, lat, values, client) -> tuple[float, dict]:
    from seisgrid.ghf.kriging import krige_to_grid

    t0 = time.perf_counter()
    out = krige_to_grid(lon, lat, values, res=RES, client=client, progress=False)
    wall = time.perf_counter() - t0
    assert out.shape == (360, 720) and bool(np.isfinite(out.values).all())
    return wall, dict(out.attrs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 1° source only, 1 repeat (about a minute)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats, medians reported (default 5; --quick 1)")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/kriging[-quick].json)")
    args = parser.parse_args(argv)
    repeats = (1 if args.quick else 5) if args.repeats is None else args.repeats

    from seisgrid.cluster import client_scope
    from seisgrid.ghf.kriging import fit_variogram

    sources = load_sources(args.quick)
    raw = {label: {"serial": [], "1": [], "2": []} for label in sources}
    checks, loads, attrs, fit_s = [], [], {}, {}
    for label, (lon, lat, values, what) in sources.items():
        t0 = time.perf_counter()
        fit = fit_variogram(lon, lat, values)
        fit_s[label] = round(time.perf_counter() - t0, 3)
        log(f"{label}: {what}; {lon.size:,} points; variogram {fit['model']} (cv_rmse {fit.get('cv_rmse')}) "
            f"in {fit_s[label]:.2f} s")
    with client_scope("local", quiet=True, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c1, \
            client_scope("local", quiet=True, n_workers=2, threads_per_worker=1, dashboard_address=":0") as c2:
        clients = {"1": c1, "2": c2}
        for client in clients.values():  # import pykrige & co. on the workers before the clock
            lon, lat, values, _ = sources["1deg"]
            one_feature(lon[::50], lat[::50], values[::50], client)
        for r in range(repeats):
            checks.append(common.cpu_scaling(2))
            loads.append(load_average())
            for label, (lon, lat, values, _) in sources.items():
                for key, client in (("serial", None), ("1", c1), ("2", c2)):
                    wall, attrs[label] = one_feature(lon, lat, values, client)
                    raw[label][key].append(round(wall, 3))
                    log(f"[{r + 1}/{repeats}] {label} {'in-process serial' if key == 'serial' else key + ' worker(s)'}:"
                        f" {wall:6.2f} s per feature")
    busy = busy_machine(checks, loads, "so the seconds are pessimistic and the efficiency may be low")

    per_source = {}
    for label in sources:
        t_serial, t1, t2 = (median(raw[label][k]) for k in ("serial", "1", "2"))
        per_source[label] = {"source": sources[label][3], "points": int(sources[label][0].size),
                             "serial_s": t_serial, "workers_1_s": t1, "workers_2_s": t2,
                             "efficiency": round(t1 / (2.0 * t2), 4), "variogram_fit_s": fit_s[label],
                             "efficiency_per_repeat": [round(a / (2.0 * b), 4)
                                                       for a, b in zip(raw[label]["1"], raw[label]["2"], strict=True)],
                             "method": attrs[label]["method"], "variogram_model": attrs[label]["variogram_model"]}
        log(f"{label}: serial {t_serial:.2f} s, 1 worker {t1:.2f} s, 2 workers {t2:.2f} s per feature; "
            f"efficiency {per_source[label]['efficiency']:.3f}")
    main_src = per_source["1deg"]
    value = main_src["workers_2_s"]
    efficiency = min(s["efficiency"] for s in per_source.values())
    result = {
        "metric": "kriging_seconds_per_feature", "value": value, "unit": "s", "goal": GOAL_SECONDS,
        "goal_meaning": "seconds to krige one feature (1° source, 64,800 points) onto the global 0.5° grid "
                        "(259,200 cells) on 2 workers ≤ 60; parallel efficiency t1 / (2·t2) ≥ 0.8",
        "goal_ok": value <= GOAL_SECONDS,
        "baseline": main_src["serial_s"], "ratio": round(main_src["serial_s"] / value, 4),
        "ratio_meaning": "in-process serial seconds ÷ 2-worker seconds (speed-up)",
        "efficiency": efficiency, "efficiency_goal": GOAL_EFFICIENCY, "efficiency_ok": efficiency >= GOAL_EFFICIENCY,
        "per_source": per_source, "grid_resolution_deg": RES, "cells": 360 * 720,
        "repeats": repeats, "quick": args.quick, "busy": busy,
        "raw": {"seconds": raw, "cpu_scaling": checks, "load_average": loads},
        **provenance("kriging", " --quick" if args.quick else "", VERSIONS),
    }
    log(f"{value:.2f} s per feature on 2 workers (goal ≤ {GOAL_SECONDS:g}); efficiency {efficiency:.3f} "
        f"(goal ≥ {GOAL_EFFICIENCY})")
    write_result(result, "kriging", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
