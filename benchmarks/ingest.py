"""Benchmark: miniSEED → Zarr ingest throughput against ObsPy reading the same files.

On a synthetic SDS archive (default 3 stations × 3 channels × 7 days at 100 Hz, Steim2) this measures,
on the same files and with the same number of cores:

1. **baseline** — ObsPy reading every day file (``obspy.read(path)``, samples summed) in a
   ``ProcessPoolExecutor(max_workers=N)``, timed from before the pool starts to after it is shut down;
2. **ingest** — the whole command ``python -m seisgrid.cli ingest ARCHIVE STORE --pattern '*.D.*' --json``
   into a fresh store with an N-worker LocalCluster, wall time including interpreter and cluster
   start-up; throughput = ``samples_written`` / wall;
3. **parallel efficiency** — the same command with 1 worker and with N workers: ``t1 / (N · tN)``;
4. **rerun** — the same command again on the finished store (every file and day skipped): wall time and
   its fraction of the first run.

Each is repeated ``--repeats`` times (interleaved, so drift hits all alike) and the medians reported.
Human lines go to stderr; the last stdout line is one JSON object (``metric``, ``value``, ``unit``,
``goal``, ``baseline``, ``ratio``, ...). Full runs write ``benchmarks/results/ingest.json``, ``--quick``
runs ``benchmarks/results/ingest-quick.json``.

Usage (from the repository root)::

    python benchmarks/ingest.py --quick          # about a minute on 2 cores
    python benchmarks/ingest.py                  # 3 stations × 7 days, 3 repeats
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO,
    cpu_scaling,
    load_average,
    log,
    median,
    provenance,
    work_folder,
    write_result,
)

PATTERN = "*.D.*"
RATE = 100.0
GOAL_RATIO = 0.5
GOAL_EFFICIENCY = 0.8
VERSIONS = ("seisgrid", "obspy", "zarr", "dask", "distributed", "numpy", "numcodecs")


# ------------------------------------------------------------------------------------------ archive
def archive_files(archive: Path) -> list[str]:
    return sorted(p for p in glob.glob(str(archive / "**" / PATTERN), recursive=True) if os.path.isfile(p))


def make_archive(workdir: Path, stations: int, days: int, workers: int) -> tuple[Path, dict]:
    """The synthetic archive for these sizes under ``workdir``: made once, reused when complete."""
    archive = workdir / f"archive-{stations}x{days}d-{int(RATE)}hz"
    done = archive / "archive.json"  # written last by synthesize
    if done.exists():
        log(f"archive: reusing {archive}")
        return archive, {"reused": True, "seconds": None}
    from seisgrid.cluster import client_scope
    from seisgrid.seismic.synth import synthesize

    if archive.exists():
        shutil.rmtree(archive)
    log(f"archive: synthesizing {stations} stations × 3 channels × {days} days at {RATE:g} Hz in {archive} ...")
    t0 = time.perf_counter()
    with client_scope("local", quiet=True, n_workers=workers, dashboard_address=":0") as client:
        result = synthesize(str(archive), stations=stations, days=days, sampling_rates=[RATE], seed=0,
                            client=client)
    seconds = time.perf_counter() - t0
    log(f"archive: {result['files']} files, {result['samples']:,} samples in {seconds:.1f} s")
    return archive, {"reused": False, "seconds": round(seconds, 3)}


# ----------------------------------------------------------------------------------------- baseline
def _read_samples(path: str) -> int:
    import obspy

    return sum(tr.stats.npts for tr in obspy.read(path))


def baseline(files: list[str], workers: int) -> tuple[float, int]:
    """ObsPy reading every file in a process pool; wall time including pool start-up and shut-down."""
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        samples = sum(pool.map(_read_samples, files))
    return time.perf_counter() - t0, samples


# ------------------------------------------------------------------------------------------- ingest
def ingest_command(archive: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "seisgrid.cli", "ingest", str(archive), str(store), "--pattern", PATTERN, "--json"]


def run_ingest(archive: Path, store: Path, workers: int) -> tuple[float, dict]:
    """The whole ``seisgrid ingest`` command in a new interpreter; (wall seconds, its JSON summary)."""
    env = dict(os.environ)
    env.update({"SEISGRID_CLUSTER__LOCAL__N_WORKERS": str(workers),
                "SEISGRID_CLUSTER__LOCAL__DASHBOARD_ADDRESS": ":0",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))})
    t0 = time.perf_counter()
    proc = subprocess.run(ingest_command(archive, store), env=env, cwd=REPO, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return wall, json.loads(lines[-1])


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 stations × 2 days, 1 repeat (about a minute on 2 cores)")
    parser.add_argument("--stations", type=int, default=None, help="stations (3 channels each; default 3)")
    parser.add_argument("--days", type=int, default=None, help="days per channel (default 7; --quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats, medians reported (default 3; --quick 1)")
    parser.add_argument("--workers", type=int, default=2, help="cores used by both sides (default 2)")
    parser.add_argument("--workdir", default=None,
                        help="folder for the archive (reused when already there) and the stores; default a temp dir")
    parser.add_argument("--output", default=None,
                        help="JSON result path (default benchmarks/results/ingest[-quick].json)")
    args = parser.parse_args(argv)

    stations = 3 if args.stations is None else args.stations
    days = (2 if args.quick else 7) if args.days is None else args.days
    repeats = (1 if args.quick else 3) if args.repeats is None else args.repeats
    workers = args.workers
    if min(stations, days, repeats, workers) < 1:
        parser.error("--stations, --days, --repeats and --workers must be ≥ 1")

    with work_folder(args.workdir, "seisgrid-bench-ingest-") as workdir:
        archive, synth_info = make_archive(workdir, stations, days, workers)
        files = archive_files(archive)
        nbytes = sum(os.path.getsize(f) for f in files)
        log(f"inputs: {len(files)} files, {nbytes / 2**20:.1f} MiB; {workers} workers; {repeats} repeat(s)")

        raw = {"baseline": [], "ingest": [], "ingest_1worker": [], "rerun": [], "cpu_scaling": [],
               "load_average": [load_average()]}
        samples = None
        for r in range(repeats):
            raw["cpu_scaling"].append(cpu_scaling(workers, n=5_000_000))
            log(f"[{r + 1}/{repeats}] CPU check: {workers} processes ran {raw['cpu_scaling'][-1]['speedup']:.2f}× "
                f"one (load average {load_average()})")
            wall, n = baseline(files, workers)
            raw["baseline"].append({"wall_s": round(wall, 4), "samples": n})
            samples = n if samples is None else samples
            log(f"[{r + 1}/{repeats}] obspy pool ({workers}): {wall:7.2f} s  {n / wall:14,.0f} samples/s")

            for label, nw in (("ingest", workers), ("ingest_1worker", 1)):
                store = fresh(workdir / f"store-{nw}w.zarr")
                wall, out = run_ingest(archive, store, nw)
                raw[label].append({"wall_s": round(wall, 4), "ingest_seconds": out["seconds"], "workers": nw,
                                   "samples_written": out["samples_written"], "tasks_run": out["tasks_run"],
                                   "files_scanned": out["files_scanned"]})
                log(f"[{r + 1}/{repeats}] ingest ({nw}):      {wall:7.2f} s  {out['samples_written'] / wall:14,.0f} "
                    f"samples/s  (inside ingest(): {out['seconds']:.2f} s)")
                if out["samples_written"] != samples:
                    log(f"WARNING: ingest wrote {out['samples_written']:,} samples, ObsPy read {samples:,}")
                if label == "ingest":
                    wall, out = run_ingest(archive, store, nw)
                    raw["rerun"].append({"wall_s": round(wall, 4), "ingest_seconds": out["seconds"], "workers": nw,
                                         "samples_written": out["samples_written"], "tasks_run": out["tasks_run"],
                                         "tasks_skipped": out["tasks_skipped"], "files_scanned": out["files_scanned"]})
                    log(f"[{r + 1}/{repeats}] rerun ({nw}):       {wall:7.2f} s  "
                        f"({out['tasks_skipped']} days skipped, {out['tasks_run']} run)")
                fresh(store)
            raw["load_average"].append(load_average())

        t_base = median([x["wall_s"] for x in raw["baseline"]])
        t_ing = median([x["wall_s"] for x in raw["ingest"]])
        t_one = median([x["wall_s"] for x in raw["ingest_1worker"]])
        t_rerun = median([x["wall_s"] for x in raw["rerun"]])
        in_ing = median([x["ingest_seconds"] for x in raw["ingest"]])
        in_one = median([x["ingest_seconds"] for x in raw["ingest_1worker"]])
        written = raw["ingest"][0]["samples_written"]
        value = written / t_ing
        base = samples / t_base
        ratio = value / base
        efficiency = t_one / (workers * t_ing)
        rerun_fraction = t_rerun / t_ing

        quick_flag = " --quick" if args.quick else ""
        extra = "".join(f" --{k} {v}" for k, v in (("stations", args.stations), ("days", args.days),
                                                    ("repeats", args.repeats)) if v is not None)
        if workers != 2:
            extra += f" --workers {workers}"
        result = {
            "metric": "ingest_throughput",
            "value": round(value, 1),
            "unit": "samples/s",
            "goal": GOAL_RATIO,
            "goal_meaning": "ratio = ingest (whole command) samples/s ÷ ObsPy process-pool read samples/s ≥ 0.5; "
                            "parallel_efficiency ≥ 0.8",
            "baseline": round(base, 1),
            "ratio": round(ratio, 4),
            "ratio_ok": ratio >= GOAL_RATIO,
            "parallel_efficiency": round(efficiency, 4),
            "parallel_efficiency_goal": GOAL_EFFICIENCY,
            "parallel_efficiency_ok": efficiency >= GOAL_EFFICIENCY,
            "rerun_fraction": round(rerun_fraction, 4),
            "medians": {
                "baseline_wall_s": t_base, "ingest_wall_s": t_ing, "ingest_1worker_wall_s": t_one,
                "rerun_wall_s": t_rerun,
                "ingest_inside_s": in_ing, "ingest_1worker_inside_s": in_one,
                "startup_overhead_s": round(t_ing - in_ing, 3),
                "ingest_inside_samples_per_s": round(written / in_ing, 1),
                "parallel_efficiency_inside": round(in_one / (workers * in_ing), 4),
                "ingest_1worker_samples_per_s": round(written / t_one, 1),
                "cpu_scaling_speedup": median([x["speedup"] for x in raw["cpu_scaling"]]),
            },
            "workers": workers,
            "repeats": repeats,
            "quick": args.quick,
            "inputs": {"stations": stations, "channels_per_station": 3, "days": days, "sampling_rate": RATE,
                       "encoding": "STEIM2", "files": len(files), "bytes": nbytes, "samples": samples,
                       "samples_written": written, "archive": str(archive), "synth": synth_info},
            "raw": raw,
            **provenance("ingest", f"{quick_flag}{extra}", VERSIONS),
            "ingest_command": "SEISGRID_CLUSTER__LOCAL__N_WORKERS=N SEISGRID_CLUSTER__LOCAL__DASHBOARD_ADDRESS=:0 "
                              f"python -m seisgrid.cli ingest ARCHIVE STORE --pattern '{PATTERN}' --json",
        }
        contended = result["medians"]["cpu_scaling_speedup"] < GOAL_EFFICIENCY * workers
        result["machine_contended"] = contended
        if contended:
            log(f"WARNING: {workers} processes of plain CPU work ran only "
                f"{result['medians']['cpu_scaling_speedup']:.2f}× "
                f"as fast as one: the machine did not give this run {workers} free cores (other load?); "
                "the parallel efficiency and the ratio are not trustworthy")
        log(f"ObsPy pool:  {base:14,.0f} samples/s ({t_base:.2f} s)")
        log(f"ingest:      {value:14,.0f} samples/s ({t_ing:.2f} s whole command, {in_ing:.2f} s inside ingest())")
        log(f"ratio {ratio:.3f} (goal ≥ {GOAL_RATIO}); parallel efficiency 1→{workers} workers {efficiency:.3f} "
            f"(goal ≥ {GOAL_EFFICIENCY}); rerun {t_rerun:.2f} s = {rerun_fraction:.1%} of the first run")

        write_result(result, "ingest", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
