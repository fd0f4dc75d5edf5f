"""Benchmark: STA/LTA samples/s through seisgrid's archive detection on the cluster vs ObsPy called directly.

On a synthetic archive (default 3 stations × 3 channels × 2 days at 100 Hz, ingested into a Zarr store
first, not timed) this measures, with the same number of cores N on both sides and in the same run:

1. **seisgrid** — :func:`seisgrid.seismic.stalta.detect_archive` on an N-worker LocalCluster (started
   before the clock, as a long-running cluster would be): one task per channel-day reads the day from
   the store (plus the LTA warm-up pad), bandpasses it, runs ObsPy's ``recursive_sta_lta`` and
   ``trigger_onset``, and the client runs ObsPy's ``coincidence_trigger``; throughput = samples through
   the CF (``info["samples"]``) / wall time of the call.
2. **baseline** — ObsPy directly: ``obspy.read`` of each source miniSEED day file, the same
   ``Trace.filter("bandpass")``, ``recursive_sta_lta`` and ``trigger_onset`` per trace, in a
   ``ProcessPoolExecutor(max_workers=N)`` (pool start-up included), then ``coincidence_trigger`` on
   the triggers; throughput = samples / wall.

Goal: ratio seisgrid / baseline ≥ 0.8. Medians over ``--repeats``. Human lines go to stderr; the last
stdout line is one JSON object. Full runs write ``benchmarks/results/stalta.json``, ``--quick``
``benchmarks/results/stalta-quick.json``.

Usage (from the repository root)::

    python benchmarks/stalta.py --quick
    python benchmarks/stalta.py --workers 2 --repeats 3
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log, median, provenance, work_folder, write_result

RATE = 100.0
GOAL_RATIO = 0.8
COMPONENTS = "ZNE"
# the same packages as benchmarks/ingest.py reports
VERSIONS = ("seisgrid", "obspy", "zarr", "dask", "distributed", "numpy", "numcodecs")


def cpu_scaling(workers: int, n: int = 3_000_000) -> dict:
    """Plain CPU work in 1 and in ``workers`` processes: speedup < workers shows a contended machine."""
    out = common.cpu_scaling(workers, n)
    return {"one_process_s": out["one_process_s"], "speedup": out["speedup"]}


def _obspy_file(path: str, params: dict):
    """ObsPy directly on one day file: read, bandpass, recursive STA/LTA, trigger_onset."""
    import obspy
    from obspy.signal.trigger import recursive_sta_lta, trigger_onset

    samples, triggers = 0, []
    for tr in obspy.read(path):
        tr.data = tr.data.astype("float64")
        tr.filter("bandpass", freqmin=params["freqmin"], freqmax=params["freqmax"], corners=params["corners"],
                  zerophase=False)
        rate = tr.stats.sampling_rate
        cf = recursive_sta_lta(tr.data, int(params["sta"] * rate), int(params["lta"] * rate))
        samples += tr.stats.npts
        for on, off in trigger_onset(cf, params["thr_on"], params["thr_off"],
                                     max_len=int(params["max_trigger_seconds"] * rate + 0.5)):
            triggers.append((tr.id, (tr.stats.starttime + on / rate).timestamp,
                             (tr.stats.starttime + off / rate).timestamp))
    return samples, triggers


def baseline(files: list[str], params: dict, workers: int) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        out = list(pool.map(_obspy_file, files, [params] * len(files)))
    wall = time.perf_counter() - t0
    return wall, sum(s for s, _ in out), sum(len(t) for _, t in out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 stations × 0.5 day, 1 repeat (about a minute)")
    parser.add_argument("--stations", type=int, default=None, help="stations, 3 channels each (default 3; --quick 2)")
    parser.add_argument("--days", type=float, default=None, help="days (default 2; --quick 0.5)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats, medians reported (default 3; --quick 1)")
    parser.add_argument("--workers", type=int, default=2, help="cores used by both sides (default 2)")
    parser.add_argument("--workdir", default=None, help="folder for archive and store (reused); default a temp dir")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/stalta[-quick].json)")
    args = parser.parse_args(argv)
    stations = (2 if args.quick else 3) if args.stations is None else args.stations
    days = (0.5 if args.quick else 2.0) if args.days is None else args.days
    repeats = (1 if args.quick else 3) if args.repeats is None else args.repeats
    workers = args.workers

    from seisgrid.cluster import client_scope
    from seisgrid.seismic.ingest import ingest
    from seisgrid.seismic.stalta import archive_params, detect_archive

    with work_folder(args.workdir, "seisgrid-bench-stalta-") as workdir:
        params = archive_params(components=COMPONENTS, min_stations=2)
        with client_scope("local", quiet=True, n_workers=workers, dashboard_address=":0") as client:
            archive = workdir / f"archive-{stations}x{days:g}d"
            if not (archive / "archive.json").exists():
                from seisgrid.seismic.synth import synthesize

                log(f"synthesizing {stations} stations × 3 channels × {days:g} days at {RATE:g} Hz ...")
                synthesize(str(archive), stations=stations, days=days, sampling_rates=[RATE], seed=0, client=client)
            files = sorted(p for p in glob.glob(str(archive / "**" / "*.D.*"), recursive=True) if os.path.isfile(p))
            store = workdir / f"store-{stations}x{days:g}d.zarr"
            if not store.exists():
                log(f"ingesting {len(files)} files into {store} ...")
                ingest(str(archive), str(store), pattern="*.D.*", client=client, progress=False)

            raw = {"seisgrid": [], "baseline": [], "cpu_scaling": []}
            detect_archive(str(store), client=client, components=COMPONENTS, min_stations=2)  # warm the workers
            for r in range(repeats):
                raw["cpu_scaling"].append(cpu_scaling(workers))
                wall_b, samples_b, trig_b = baseline(files, params, workers)
                raw["baseline"].append({"wall_s": round(wall_b, 4), "samples": samples_b, "station_triggers": trig_b})
                log(f"[{r + 1}/{repeats}] ObsPy pool ({workers}): {wall_b:7.2f} s "
                    f"{samples_b / wall_b:14,.0f} samples/s "
                    f"({trig_b} station triggers)")
                t0 = time.perf_counter()
                events, info = detect_archive(str(store), client=client, components=COMPONENTS, min_stations=2,
                                              return_info=True)
                wall_s = time.perf_counter() - t0
                raw["seisgrid"].append({"wall_s": round(wall_s, 4), "samples": info["samples"], "tasks": info["tasks"],
                                        "station_triggers": info["station_triggers"], "events": len(events)})
                log(f"[{r + 1}/{repeats}] seisgrid ({workers}):   {wall_s:7.2f} s {info['samples'] / wall_s:14,.0f} "
                    f"samples/s ({info['station_triggers']} station triggers, {len(events)} network events)")

        med = median
        t_s = med([x["wall_s"] for x in raw["seisgrid"]])
        t_b = med([x["wall_s"] for x in raw["baseline"]])
        value = raw["seisgrid"][0]["samples"] / t_s
        base = raw["baseline"][0]["samples"] / t_b
        ratio = value / base
        quick_flag = " --quick" if args.quick else ""
        result = {
            "metric": "stalta_throughput", "value": round(value, 1), "unit": "samples/s", "goal": GOAL_RATIO,
            "goal_meaning": "ratio = seisgrid detect_archive samples/s on an N-worker LocalCluster ÷ ObsPy "
                            "(read + bandpass + recursive_sta_lta + trigger_onset) in an N-process pool ≥ 0.8",
            "baseline": round(base, 1), "ratio": round(ratio, 4), "ratio_ok": ratio >= GOAL_RATIO,
            "medians": {"seisgrid_wall_s": t_s, "baseline_wall_s": t_b,
                        "cpu_scaling_speedup": med([x["speedup"] for x in raw["cpu_scaling"]])},
            "workers": workers, "repeats": repeats, "quick": args.quick,
            "inputs": {"stations": stations, "channels_per_station": 3, "days": days, "sampling_rate": RATE,
                       "files": len(files), "params": params},
            "raw": raw, **provenance("stalta", quick_flag, VERSIONS),
        }
        log(f"ObsPy: {base:14,.0f} samples/s; seisgrid: {value:14,.0f} samples/s; "
            f"ratio {ratio:.3f} (goal ≥ {GOAL_RATIO})")
        write_result(result, "stalta", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
