"""Benchmark: the two associators (``grid``, ``pyocto``) on the same pick lists, scored against synthetic truth.

Isolates association: no waveforms are read. For each seed, :func:`seisgrid.seismic.synth.synthesize` draws a
5-station network and its earthquakes (``catalog.csv``: per event and station the true P and S times);
networks of 2, 3 and 5 stations are its first stations. A pick list is made from the truth at a noise
level (seeded, the same list for every associator):

* each true arrival at a network station is missed with probability ``miss``; otherwise it is picked at
  its P time — or, with probability ``s_confusion``, at its S time (a detector that triggers on S) — plus
  Gaussian jitter of σ ``jitter_s``;
* false picks (noise triggers, icequakes) arrive as a Poisson process of ``false_per_hour`` per station.

Every associator gets the same list and the same ``min_stations``, location settings and coordinates
(:func:`seisgrid.seismic.associate.associate`); the catalog is scored with
:func:`seisgrid.seismic.catalog.score` (5 s; located events on origin time, the others on first arrival)
against the **associable** true events (at least ``min_stations`` stations picked, so every associator can
reach recall 1). Reported per case: picks in, events out, precision, recall, F1, and for matched located
events the median origin-time error, epicentre error, the share of matched events located and the share
whose true epicentre lies within the stated ``horizontal_uncertainty_km`` (honesty of the error).
Medians over seeds. Writes ``benchmarks/results/associate.json`` (``--quick``: ``associate-quick.json``).

Usage (from the repository root)::

    .venv/bin/python benchmarks/associate.py            # 3 seeds, about 8 minutes on 2 shared cores
    .venv/bin/python benchmarks/associate.py --quick    # 2 seeds
    .venv/bin/python benchmarks/associate.py --quick --pyocto-tolerance 1.5   # also PyOcto at 1.5 s
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, median, provenance, work_folder, write_result

VERSIONS = ("seisgrid", "pyocto", "numpy", "obspy")
NOISE = {  # name: (jitter σ s, false picks per station-hour, miss probability, S-confusion probability)
    "low": (0.1, 2.0, 0.05, 0.0),
    "medium": (0.3, 10.0, 0.10, 0.05),
    "high": (0.8, 40.0, 0.20, 0.15),
}
NETWORKS = ((2, 2), (3, 2), (5, 2), (5, 3))  # (stations, min_stations)
ASSOCIATORS = {"grid": ("grid", {}), "pyocto": ("pyocto", {})}  # with the settings' defaults (tolerance 3 s)
DAYS = 0.25
EVENTS_PER_DAY = 240.0


def synth_truth(folder: Path, seed: int) -> tuple[list[dict], dict]:
    """Truth rows of ``catalog.csv`` and station coordinates of a 5-station synthetic archive."""
    from seisgrid.seismic.associate import read_stations
    from seisgrid.seismic.synth import synthesize

    out = folder / f"synth-{seed}"
    synthesize(str(out), stations=5, days=DAYS, seed=seed, sampling_rates=[20.0], events_per_day=EVENTS_PER_DAY,
               icequakes_per_day=0.0, gaps_per_day=0.0, overlaps_per_day=0.0)
    with open(out / "catalog.csv") as f:
        rows = list(csv.DictReader(f))
    return rows, read_stations(str(out / "stations.csv"))


def make_picks(rows: list[dict], stations: list[str], level: str, seed: int, span: tuple[int, int]):
    """Pick list (seeded) and the ids of the true events with at least one pick per station picked."""
    import obspy

    from seisgrid.seismic.associate import iso

    jitter, false_rate, miss, s_conf = NOISE[level]
    rng = np.random.default_rng([seed, len(stations), list(NOISE).index(level)])
    picks, picked = [], {}
    for row in rows:
        if row["station"] not in stations:
            continue
        if rng.random() < miss:
            continue
        phase = "s_time" if rng.random() < s_conf else "p_time"
        t = obspy.UTCDateTime(row[phase]).ns + round(rng.normal(0.0, jitter) * 1e9)
        picks.append({"station": row["station"], "time": iso(t), "truth": row["event_id"]})
        picked.setdefault(row["event_id"], set()).add(row["station"])
    hours = (span[1] - span[0]) / 3.6e12
    for sta in stations:
        for t in rng.uniform(span[0], span[1], rng.poisson(false_rate * hours)):
            picks.append({"station": sta, "time": iso(int(t)), "truth": None})
    return picks, picked


def evaluate(events: list[dict], truth: list[dict], coords_truth: dict, station_days: float) -> dict:
    """Scores of one catalog (module docstring)."""
    import obspy
    from obspy.geodetics import gps2dist_azimuth

    from seisgrid.seismic.catalog import score

    r = score(events, truth, tolerance_seconds=5.0, station_days=station_days)
    by_id = {ev["event_id"]: ev for ev in events}
    dt, dx, inside, located = [], [], [], 0
    for m in r["matches"]:
        ev = by_id[m["event_id"]]
        if ev.get("latitude") is None:
            continue
        located += 1
        true = coords_truth[m["truth_event_id"]]
        dt.append(abs(obspy.UTCDateTime(ev["origin_time"]) - obspy.UTCDateTime(true["origin_time"])))
        d = gps2dist_azimuth(ev["latitude"], ev["longitude"], float(true["latitude"]),
                             float(true["longitude"]))[0] / 1000.0
        dx.append(d)
        inside.append(d <= ev["horizontal_uncertainty_km"])
    return {"events": len(events), "true": r["true"], "matched": r["matched"], "precision": r["precision"],
            "recall": r["recall"], "f1": r["f1"], "false_per_station_day": r["false_per_station_day"],
            "located_share": located / r["matched"] if r["matched"] else None,
            "origin_error_s": median(dt), "location_error_km": median(dx),
            "within_uncertainty": float(np.mean(inside)) if inside else None}


def run(seeds: list[int], folder: Path, associators: dict) -> list[dict]:
    """One record per (seed, network, noise level, associator)."""
    import obspy

    from seisgrid.seismic.associate import associate

    logging.getLogger("seisgrid").setLevel(logging.ERROR)
    records = []
    for seed in seeds:
        rows, coords = synth_truth(folder, seed)
        start = obspy.UTCDateTime("2021-01-01").ns  # synth's default start
        span = (start, start + round(DAYS * 86400e9))
        events_truth = {r["event_id"]: r for r in rows}
        names = sorted(coords)
        for n_sta, need in NETWORKS:
            net = names[:n_sta]
            net_coords = {s: coords[s] for s in net}
            for level in NOISE:
                picks, picked = make_picks(rows, net, level, seed, span)
                ok = {e for e, stas in picked.items() if len(stas) >= need}
                truth = [r for r in rows if r["event_id"] in ok and r["station"] in net]
                for name, (which, extra) in associators.items():
                    t0 = time.perf_counter()
                    events = associate(picks, net_coords, associator=which, min_stations=need, **extra)
                    seconds = time.perf_counter() - t0
                    rec = {"seed": seed, "stations": n_sta, "min_stations": need, "noise": level,
                           "associator": name, "picks": len(picks), "seconds": round(seconds, 3),
                           **evaluate(events, truth, events_truth, n_sta * DAYS)}
                    records.append(rec)
                    log(f"seed {seed} {n_sta} sta (min {need}) {level:6s} {name:14s} picks {len(picks):4d} "
                        f"events {rec['events']:4d} P {rec['precision'] or 0:.3f} R {rec['recall'] or 0:.3f} "
                        f"({seconds:.2f} s)")
    return records


def summarise(records: list[dict]) -> list[dict]:
    """Medians over seeds per (stations, min_stations, noise, associator)."""
    keys = ("picks", "events", "true", "precision", "recall", "f1", "false_per_station_day", "origin_error_s",
            "location_error_km", "located_share", "within_uncertainty", "seconds")
    groups: dict = {}
    for r in records:
        groups.setdefault((r["stations"], r["min_stations"], r["noise"], r["associator"]), []).append(r)
    table = []
    for (n_sta, need, level, name), rs in groups.items():
        row = {"stations": n_sta, "min_stations": need, "noise": level, "associator": name, "seeds": len(rs)}
        for k in keys:
            vals = [r[k] for r in rs if r[k] is not None and not (isinstance(r[k], float) and math.isnan(r[k]))]
            m = median(vals)
            row[k] = round(m, 4) if isinstance(m, float) else m
        table.append(row)
    return table


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (module docstring) and write its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="synthetic networks (medians over them)")
    ap.add_argument("--pyocto-tolerance", type=float, action="append", default=[],
                    help="also run pyocto with this travel-time tolerance, s (repeatable)")
    ap.add_argument("--quick", action="store_true", help="2 seeds; writes associate-quick.json")
    ap.add_argument("--workdir", help="folder for the synthetic archives (default: a temporary one)")
    ap.add_argument("--output", help="result path (default benchmarks/results/associate[-quick].json)")
    args = ap.parse_args(argv)
    seeds = list(range(1, (2 if args.quick else args.seeds) + 1))
    associators = dict(ASSOCIATORS)
    for tol in args.pyocto_tolerance:
        associators[f"pyocto-tol{tol:g}"] = ("pyocto", {"tolerance_seconds": tol})
    t0 = time.perf_counter()
    with work_folder(args.workdir, "seisgrid-associate-") as folder:
        records = run(seeds, folder, associators)
    table = summarise(records)
    log(f"{'sta':>3} {'min':>3} {'noise':6} {'associator':14} {'picks':>6} {'events':>6} {'true':>5} "
        f"{'prec':>6} {'recall':>6} {'dt0 s':>6} {'dx km':>6} {'loc%':>5} {'in-err':>6}")
    for r in table:
        def f(v, fmt):
            return format(v, fmt) if v is not None else "-"
        log(f"{r['stations']:>3} {r['min_stations']:>3} {r['noise']:6} {r['associator']:14} {f(r['picks'], '6.0f')} "
            f"{f(r['events'], '6.0f')} {f(r['true'], '5.0f')} {f(r['precision'], '6.3f')} {f(r['recall'], '6.3f')} "
            f"{f(r['origin_error_s'], '6.2f')} {f(r['location_error_km'], '6.1f')} {f(r['located_share'], '5.2f')} "
            f"{f(r['within_uncertainty'], '6.2f')}")
    flags = (" --quick" if args.quick else (f" --seeds {args.seeds}" if args.seeds != 3 else "")) + "".join(
        f" --pyocto-tolerance {t:g}" for t in args.pyocto_tolerance)
    result = {"benchmark": "associate", "noise_levels": {k: dict(zip(("jitter_s", "false_per_station_hour", "miss",
                                                                      "s_confusion"), v, strict=True))
                                                         for k, v in NOISE.items()},
              "days": DAYS, "events_per_day": EVENTS_PER_DAY, "seeds": seeds, "tolerance_seconds": 5.0,
              "seconds": round(time.perf_counter() - t0, 1), "table": table, "records": records,
              **provenance("associate", flags, VERSIONS)}
    write_result(result, "associate", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
