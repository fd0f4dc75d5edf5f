"""Benchmark: the cost of scale: scheduler cost per task, parallel efficiency, S3 vs disk, ingest vs its floor.

Four sections (issue 13), each a section of the JSON result:

1. **scheduler** — :func:`seisgrid.cluster.run_tasks` with ``int`` as the no-op function (the scheduler's
   process can import it) over ``range(n)``, results streamed to an ``on_result`` callback, on a
   ``SubprocessCluster`` (scheduler and 2 one-thread workers each in their own process, so that this
   process's memory is the client's alone). Sizes: 10^4 and 10^5 items one per task, 10^6 items in batches
   of 100 (``items_per_task``), and in full mode 10^6 in batches of 10 when it is predicted to fit in
   5 minutes. Per size: wall seconds, tasks, overhead per task (ms; goal ≤ 1) and per item, seconds to the
   first result, peak client RSS growth during the call (sampled every 20 ms in a thread; goal ≤ 500 MB
   at 10^6 items and flat), and CPU milliseconds per task in the client, the scheduler and the workers.
   Dask's own floor on the same cluster (``client.map`` + ``gather``: every task submitted at once) is the
   ``baseline``; a sweep of ``cluster.tasks_in_flight_per_thread`` shows whether the bounded in-flight
   window limits the rate. From these: the scheduler time of a 1 PB archive (~10^7 channel-days) one item
   per task versus in batches of 100.
2. **parallel_efficiency** — ingest (:func:`seisgrid.seismic.ingest.ingest` of a synthetic SDS archive into
   a fresh store) and one PSO iteration (:func:`seisgrid.ghf.pso.particle_swarm`, 8 particles, a fixed-cost
   FFT objective) on a LocalCluster with 1 and with 2 workers (started before the clock) and on the local
   SLURM (``cluster/slurm-local.sh``) with 2 one-core jobs (``cluster/slurm.yaml`` with ``jobs: 2``); the
   SLURM start-up (from ``get_client`` until 2 workers are connected) is timed apart from the work.
   Efficiency = t1 / (2 · t2) with t1 the 1-worker LocalCluster; goal ≥ 0.8.
3. **s3_vs_local** — the same ingest with the same 2-worker LocalCluster into a local folder and into
   ``s3://BUCKET/store-R.zarr`` on the local S3 API server (``cluster/s3-local.sh``, moto); ratio = S3
   seconds ÷ local seconds.
4. **ingest_floor** — the whole command ``python -m seisgrid.cli ingest ARCHIVE STORE --pattern '*.D.*'
   --json`` (2-worker LocalCluster, wall time including interpreter and cluster start-up) against its
   floor: ObsPy decoding every day file plus encoding its samples with the store's codec (Blosc zstd
   level 1, byte shuffle, on one-hour int32 chunks of 360000 samples) in a 2-process pool; goal ≥ 0.8 of
   the floor's throughput. And ``--compressor lz4``: throughput against ObsPy decoding alone (goal ≥ 0.5),
   and both settings' compression ratio (raw int32 bytes ÷ bytes of the store's chunk files).

Every measurement is repeated ``--repeats`` times (interleaved) and the medians reported; the
scheduler sizes stop repeating once a size has used its time budget (``--size-budget``). The 1-minute
load average and a 2-process CPU check are recorded at the start and the end (``busy``): another
process on the machine makes every figure pessimistic.

Human lines go to stderr; the last stdout line is one JSON object (``metric``, ``value``, ``unit``,
``goal``, ``baseline``, ``ratio``, the four sections, ``goals``: every figure with its goal). Full runs
write ``benchmarks/results/scale.json``, ``--quick`` runs ``benchmarks/results/scale-quick.json``.

Usage (from the repository root; SLURM started first with ``bash cluster/slurm-local.sh start``)::

    python benchmarks/scale.py --quick                        # about 4 minutes on 2 cores
    python benchmarks/scale.py --workdir /tmp/bench-scale     # up to ~25 minutes; the archive is kept
    python benchmarks/scale.py --sections scheduler --sizes 10000:1,1000000:100
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO,
    busy_machine,
    cpu_scaling,
    load_average,
    log,
    median,
    provenance,
    work_folder,
    write_result,
)
from ingest import PATTERN, archive_files, baseline, fresh, make_archive

BENCHMARKS = Path(__file__).resolve().parent
SECTIONS = ("floor", "scheduler", "efficiency", "s3")
CHUNK = 360_000  # samples per store chunk: one hour at 100 Hz
PB_CHANNEL_DAYS = 10**7  # a 1 PB archive: ~10^7 channel-days
GOAL_MS_PER_TASK = 1.0
GOAL_RSS_MB = 500.0
GOAL_EFFICIENCY = 0.8
GOAL_FLOOR_RATIO = 0.8
GOAL_LZ4_RATIO = 0.5
K10_BUDGET_S = 300.0
JOB_NAME = "seisgrid-scale"
VERSIONS = ("seisgrid", "dask", "distributed", "dask-jobqueue", "obspy", "zarr", "numcodecs", "numpy", "s3fs",
            "moto", "psutil")


def _r(x, digits=4):
    return None if x is None else round(float(x), digits)


# ---------------------------------------------------------------------------------------- 1 scheduler
class RssSampler:
    """Peak RSS of this process, sampled every ``interval`` seconds in a daemon thread while in the block."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.before = self.peak = self.after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        import psutil

        return psutil.Process().memory_info().rss

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    def __enter__(self):
        self.before = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.after = self.rss()
        self.peak = max(self.peak, self.after)
        return False


def _cpu_seconds(client) -> dict:
    """CPU seconds so far of this process, the scheduler's and the workers' (summed)."""
    return {"client": time.process_time(), "scheduler": client.run_on_scheduler(time.process_time),
            "workers": sum(client.run(time.process_time).values())}


def run_size(client, n: int, per_task: int) -> dict:
    """One ``run_tasks`` call over ``range(n)`` with ``per_task`` items per task: wall, first result, RSS, CPU."""
    from seisgrid.cluster import run_tasks

    seen = [0]
    first = [None]
    t0 = 0.0

    def on_result(_i, _value):
        if first[0] is None:
            first[0] = time.perf_counter() - t0
        seen[0] += 1

    tasks = math.ceil(n / per_task)
    cpu0 = _cpu_seconds(client)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        run_tasks(client, int, range(n), progress=False, items_per_task=per_task, on_result=on_result)
        wall = time.perf_counter() - t0
    cpu1 = _cpu_seconds(client)
    if seen[0] != n:
        raise SystemExit(f"run_tasks gave {seen[0]} results for {n} items")
    return {"n": n, "items_per_task": per_task, "tasks": tasks, "wall_s": _r(wall),
            "ms_per_task": _r(1e3 * wall / tasks), "us_per_item": _r(1e6 * wall / n, 3),
            "first_result_s": _r(first[0]), "rss_before_mb": _r(rss.before / 2**20, 1),
            "rss_peak_growth_mb": _r((rss.peak - rss.before) / 2**20, 2),
            "rss_after_growth_mb": _r((rss.after - rss.before) / 2**20, 2),
            "cpu_ms_per_task": {k: _r(1e3 * (cpu1[k] - cpu0[k]) / tasks) for k in cpu0}}


def dask_floor(client, n: int) -> dict:
    """Dask's own per-task cost on the same cluster: ``client.map(int, range(n))`` + ``gather`` (all at once)."""
    t0 = time.perf_counter()
    futures = client.map(int, range(n), pure=False)
    client.gather(futures)
    wall = time.perf_counter() - t0
    del futures
    return {"n": n, "wall_s": _r(wall), "ms_per_task": _r(1e3 * wall / n)}


def summarise_size(runs: list[dict]) -> dict:
    keys = ("wall_s", "ms_per_task", "us_per_item", "first_result_s", "rss_peak_growth_mb", "rss_after_growth_mb")
    out = {k: median([r[k] for r in runs]) for k in keys}
    out["cpu_ms_per_task"] = {k: median([r["cpu_ms_per_task"][k] for r in runs]) for k in runs[0]["cpu_ms_per_task"]}
    out.update(n=runs[0]["n"], items_per_task=runs[0]["items_per_task"], tasks=runs[0]["tasks"], runs=len(runs))
    return out


def section_scheduler(sizes: list[tuple[int, int]], repeats: int, budget_s: float, quick: bool,
                      try_k10: bool) -> dict:
    import dask.config
    from distributed import Client
    from distributed.deploy.subprocess import SubprocessCluster

    from seisgrid import config
    from seisgrid.cluster import run_tasks, tasks_in_flight

    log("== 1 scheduler: run_tasks(client, int, range(n), items_per_task=k, on_result=...) on a SubprocessCluster")
    t0 = time.perf_counter()
    local = SubprocessCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(local)
    try:
        client.wait_for_workers(2)
        start_s = time.perf_counter() - t0
        threads = sum(client.nthreads().values())
        in_flight = tasks_in_flight(client)
        run_tasks(client, int, range(1000), progress=False, on_result=lambda i, v: None)  # warm-up
        log(f"cluster up in {start_s:.1f} s: {threads} worker threads, {in_flight} tasks in flight")
        raw: dict[str, list] = {}
        floors = []
        floor_n = 2000 if quick else 5000
        for r in range(repeats):
            floors.append(dask_floor(client, floor_n))
            log(f"[{r + 1}/{repeats}] dask floor (client.map + gather, {floor_n} tasks): "
                f"{floors[-1]['ms_per_task']:.3f} ms per task")
            for n, k in sizes:
                key = f"{n}x{k}"
                done = raw.setdefault(key, [])
                if done and sum(x["wall_s"] for x in done) > budget_s:
                    continue  # this size has had its time
                done.append(run_size(client, n, k))
                x = done[-1]
                log(f"[{r + 1}/{repeats}] n={n:>8,} k={k:<3} {x['tasks']:>7,} tasks {x['wall_s']:8.2f} s  "
                    f"{x['ms_per_task']:.3f} ms/task  {x['us_per_item']:8.2f} µs/item  first result "
                    f"{x['first_result_s']:.3f} s  RSS +{x['rss_peak_growth_mb']:.1f} MB  CPU ms/task "
                    f"{x['cpu_ms_per_task']}")
        sizes_out = {key: summarise_size(runs) for key, runs in raw.items()}

        k10 = None
        if try_k10:
            ones = [s for s in sizes_out.values() if s["items_per_task"] == 1]
            per_task = max(ones, key=lambda s: s["n"])["ms_per_task"] if ones else None
            predicted = None if per_task is None else 1.2 * 10**5 * per_task / 1e3
            if predicted is not None and predicted <= K10_BUDGET_S:
                log(f"n=10^6 k=10: predicted {predicted:.0f} s, running once")
                runs = [run_size(client, 10**6, 10)]
                raw["1000000x10"] = runs
                sizes_out["1000000x10"] = summarise_size(runs)
                k10 = {"run": True, "predicted_s": _r(predicted, 1)}
            else:
                k10 = {"run": False, "predicted_s": _r(predicted, 1),
                       "why": f"predicted {predicted:.0f} s > {K10_BUDGET_S:.0f} s at the measured per-task cost"}
                log(f"n=10^6 k=10 skipped: {k10['why']}")

        sweep = []
        sweep_n = 1000 if quick else 3000
        for per_thread in (4, 16, 64):
            with dask.config.set({"seisgrid.cluster.tasks_in_flight_per_thread": per_thread}):
                x = run_size(client, sweep_n, 1)
                x.update(tasks_in_flight_per_thread=per_thread, tasks_in_flight=tasks_in_flight(client))
            sweep.append(x)
            log(f"in-flight sweep: {per_thread:>2}/thread ({x['tasks_in_flight']} in flight): "
                f"{x['ms_per_task']:.3f} ms/task")
    finally:
        client.close()
        local.close()
    return {"cluster": "distributed.deploy.subprocess.SubprocessCluster(n_workers=2, threads_per_worker=1)",
            "cluster_start_s": _r(start_s, 3), "worker_threads": threads,
            "tasks_in_flight": in_flight,
            "tasks_in_flight_per_thread": int(config.get("cluster.tasks_in_flight_per_thread", default=4)),
            "sizes": sizes_out, "n_1e6_items_per_task_10": k10,
            "dask_floor": {"ms_per_task": median([f["ms_per_task"] for f in floors]), "n": floor_n,
                           "meaning": "client.map(int, range(n)) + client.gather: every task submitted at once"},
            "in_flight_sweep": sweep, "raw": {"sizes": raw, "dask_floor": floors}}


def extrapolation(sched: dict) -> dict:
    sizes = sched["sizes"].values()
    ones = [s for s in sizes if s["items_per_task"] == 1]
    batched = [s for s in sizes if s["items_per_task"] == 100]
    one = max(ones, key=lambda s: s["n"]) if ones else None
    hundred = max(batched, key=lambda s: s["n"]) if batched else None
    out = {"channel_days": PB_CHANNEL_DAYS}
    if one:
        secs = PB_CHANNEL_DAYS * one["ms_per_task"] / 1e3
        out["one_item_per_task"] = {"tasks": PB_CHANNEL_DAYS, "ms_per_task": one["ms_per_task"],
                                    "measured_at_n": one["n"], "scheduler_s": _r(secs, 1),
                                    "scheduler_h": _r(secs / 3600, 2)}
    if hundred:
        tasks = PB_CHANNEL_DAYS // 100
        secs = tasks * hundred["ms_per_task"] / 1e3
        out["items_per_task_100"] = {"tasks": tasks, "ms_per_task": hundred["ms_per_task"],
                                     "measured_at_n": hundred["n"], "scheduler_s": _r(secs, 1),
                                     "scheduler_h": _r(secs / 3600, 3)}
    if one and hundred:
        out["speedup"] = _r(out["one_item_per_task"]["scheduler_s"] / out["items_per_task_100"]["scheduler_s"], 1)
    out["note"] = (
        "Scheduler time only (no-op tasks, measured on this 2-core machine with a 2-thread cluster), not the "
        "work: a real channel-day task costs seconds, so the per-task overhead matters against it, not alone. "
        "run_tasks gets to the batched figure by putting items_per_task items into one Dask task "
        "(run_tasks(..., items_per_task=100) or seisgrid.cluster.items_per_task: 100), retrying each item "
        "inside the task, and by bounding the work in flight: at most cluster.tasks_in_flight_per_thread × "
        f"worker threads tasks are submitted at once (here {sched['tasks_in_flight_per_thread']} × "
        f"{sched['worker_threads']} = {sched['tasks_in_flight']}), the next one as each finishes, each future "
        "released as its result reaches on_result, and the batches generated lazily from a range, so neither "
        "the client nor the scheduler ever holds 10^7 tasks or results.")
    return out


# ------------------------------------------------------------------------------- 2 parallel efficiency
def fft_objective(x, n, rounds):
    """A PSO objective of fixed cost: ``rounds`` FFT smoothing passes over ``n`` samples, cost near ``|x - 0.3|²``."""
    x = np.asarray(x, dtype=float)
    rng = np.random.default_rng(12345)
    signal = rng.standard_normal(n)
    kernel = np.exp(-np.linspace(0.0, 8.0, n // 2 + 1) * (1.0 + float(np.abs(x).sum())))
    for _ in range(rounds):
        signal = np.fft.irfft(np.fft.rfft(signal) * kernel, n)
        signal /= signal.std() + 1e-12
    return float(np.sum((x - 0.3) ** 2) + 1e-6 * abs(float(signal[:16].mean())))


def calibrate_objective(target_s: float, n: int = 2**18) -> dict:
    """FFT rounds for one evaluation of :func:`fft_objective` to take about ``target_s`` here."""
    x = np.zeros(4)
    fft_objective(x, n, 2)
    t0 = time.perf_counter()
    fft_objective(x, n, 20)
    per_round = (time.perf_counter() - t0) / 20
    rounds = max(1, round(target_s / per_round))
    t0 = time.perf_counter()
    fft_objective(x, n, rounds)
    return {"n": n, "rounds": rounds, "in_process_s": _r(time.perf_counter() - t0)}


def _warm_worker(dask_worker=None):
    import numcodecs  # noqa: F401
    import obspy  # noqa: F401
    import zarr  # noqa: F401

    import seisgrid.ghf.pso  # noqa: F401
    import seisgrid.seismic.ingest  # noqa: F401

    return True


def timed_ingest(archive: Path, store: str, client) -> dict:
    from seisgrid.seismic.ingest import ingest

    t0 = time.perf_counter()
    out = ingest(str(archive), store, pattern=PATTERN, client=client, progress=False)
    wall = time.perf_counter() - t0
    if out["tasks_failed"] or out["files_failed"]:
        raise SystemExit(f"ingest into {store} failed: {out['tasks_failed'] or out['files_failed']}")
    return {"wall_s": _r(wall), "samples_written": out["samples_written"], "tasks_run": out["tasks_run"]}


def timed_pso(client, objective: dict, seed: int) -> dict:
    from seisgrid.ghf import pso

    t0 = time.perf_counter()
    run = pso.particle_swarm(fft_objective, ([-1.0] * 4, [1.0] * 4), n_particles=8, iterations=1, c1=2.0, c2=2.0,
                             seed=seed, client=client, progress=False,
                             objective_args=(objective["n"], objective["rounds"]))
    wall = time.perf_counter() - t0
    secs = run["history"][0]["particle_seconds"]
    return {"wall_s": _r(wall), "sum_particle_s": _r(sum(secs)), "max_particle_s": _r(max(secs)),
            "best_cost": run["best_cost"]}


def slurm_profile(folder: Path) -> str:
    import yaml

    profile = yaml.safe_load((REPO / "cluster" / "slurm.yaml").read_text())
    profile["jobs"] = 2
    profile["wait_for_workers"] = 2
    section = profile["jobqueue"]["slurm"]
    section.update({"name": JOB_NAME, "memory": "2GiB", "walltime": "00:20:00",
                    "log-directory": str(folder / "slurm-logs"),
                    "scheduler-options": {"dashboard_address": "127.0.0.1:0"},
                    "job-script-prologue": [f"export PYTHONPATH={BENCHMARKS}"],
                    "worker-extra-args": ["--lifetime", "18m", "--lifetime-stagger", "1m"]})
    path = folder / "slurm-scale.yaml"
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def squeue_jobs(name: str | None = None) -> list[str] | None:
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.splitlines()
    return [ln for ln in lines if name is None or name in ln]


def slurm_answers() -> str | None:
    """None when SLURM answers, else why not."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo: {exc}"
    if out.returncode != 0 or not out.stdout.strip():
        return f"sinfo: {out.stderr.strip() or 'no node'}"
    return None


@contextlib.contextmanager
def local_client(workers: int):
    from seisgrid.cluster import get_client

    client = get_client("local", n_workers=workers, threads_per_worker=1, quiet=True, dashboard_address=":0")
    try:
        client.wait_for_workers(workers)
        client.run(_warm_worker)
        yield client
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def _slurm_runs(profile_path: str, archive: Path, workdir: Path, repeats: int, objective: dict) -> dict:
    from seisgrid.cluster import get_client

    out: dict = {"ingest": [], "pso": []}
    t0 = time.perf_counter()
    client = get_client(profile_path, quiet=True)
    out["startup_s"] = _r(time.perf_counter() - t0, 3)
    cluster = client.cluster
    try:
        out["workers"] = len(client.nthreads())
        log(f"SLURM: 2 jobs up in {out['startup_s']:.1f} s ({squeue_jobs(JOB_NAME)})")
        client.run(_warm_worker)
        for r in range(repeats):
            store = fresh(workdir / "eff-slurm.zarr")
            out["ingest"].append(timed_ingest(archive, str(store), client))
            fresh(store)
            out["pso"].append(timed_pso(client, objective, seed=r))
            log(f"[{r + 1}/{repeats}] SLURM 2 jobs: ingest {out['ingest'][-1]['wall_s']:.2f} s, "
                f"PSO iteration {out['pso'][-1]['wall_s']:.2f} s")
    finally:
        client.close()
        cluster.close()
    deadline = time.monotonic() + 60
    while squeue_jobs(JOB_NAME) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = squeue_jobs(JOB_NAME)
    if left:
        subprocess.run(["scancel", "--name", JOB_NAME], capture_output=True, check=False)
    out["jobs_left_after_close"] = left
    out["squeue_after_close"] = squeue_jobs()
    return out


def section_efficiency(archive: Path, workdir: Path, repeats: int, objective: dict, use_slurm: bool) -> dict:
    log(f"== 2 parallel efficiency: ingest and one PSO iteration (8 particles, {objective['rounds']} FFT rounds "
        f"of {objective['n']} samples ≈ {objective['in_process_s']:.2f} s each)")
    raw: dict = {"ingest_1": [], "ingest_2": [], "pso_1": [], "pso_2": []}
    with local_client(1) as c1, local_client(2) as c2:
        for r in range(repeats):
            for nw, client in ((1, c1), (2, c2)):
                store = fresh(workdir / f"eff-{nw}w.zarr")
                raw[f"ingest_{nw}"].append(timed_ingest(archive, str(store), client))
                fresh(store)
                raw[f"pso_{nw}"].append(timed_pso(client, objective, seed=r))
                log(f"[{r + 1}/{repeats}] local {nw} worker(s): ingest {raw[f'ingest_{nw}'][-1]['wall_s']:.2f} s, "
                    f"PSO iteration {raw[f'pso_{nw}'][-1]['wall_s']:.2f} s")
    med = {k: median([x["wall_s"] for x in v]) for k, v in raw.items()}
    out = {
        "ingest": {"t1_s": med["ingest_1"], "t2_s": med["ingest_2"],
                   "efficiency": _r(med["ingest_1"] / (2 * med["ingest_2"]))},
        "pso": {"t1_s": med["pso_1"], "t2_s": med["pso_2"], "efficiency": _r(med["pso_1"] / (2 * med["pso_2"])),
                "particle_slowdown_2_workers": _r(median([x["sum_particle_s"] for x in raw["pso_2"]])
                                                  / median([x["sum_particle_s"] for x in raw["pso_1"]])),
                "particles": 8, "iterations": 1, "objective": {**objective, "function": "benchmarks/scale.py "
                                                                                        "fft_objective"}},
        "goal": GOAL_EFFICIENCY, "meaning": "t1 / (2 · t2), t1: LocalCluster with 1 worker, t2: 2 workers (or 2 "
                                            "one-core SLURM jobs); clusters started before the clock; "
                                            "particle_slowdown_2_workers: summed particle seconds (in the workers) "
                                            "with 2 workers ÷ with 1 (above 1: the cores were shared)",
    }
    why = slurm_answers() if use_slurm else "skipped (--no-slurm)"
    if why is None:
        log("SLURM: starting 2 one-core jobs from cluster/slurm.yaml (jobs: 2, wait_for_workers: 2)")
        with tempfile.TemporaryDirectory(prefix="seisgrid-scale-slurm-") as folder:
            try:
                slurm = _slurm_runs(slurm_profile(Path(folder)), archive, workdir, repeats, objective)
            except Exception as exc:  # noqa: BLE001  (recorded: the other sections go on)
                log(f"SLURM failed: {type(exc).__name__}: {exc}")
                slurm = {"error": f"{type(exc).__name__}: {exc}", "jobs_left_after_close": squeue_jobs(JOB_NAME)}
        if "error" not in slurm:
            ts_ing = median([x["wall_s"] for x in slurm["ingest"]])
            ts_pso = median([x["wall_s"] for x in slurm["pso"]])
            slurm.update(ingest_t2_s=ts_ing, pso_t2_s=ts_pso,
                         ingest_efficiency=_r(med["ingest_1"] / (2 * ts_ing)),
                         pso_efficiency=_r(med["pso_1"] / (2 * ts_pso)))
            raw["slurm_ingest"], raw["slurm_pso"] = slurm.pop("ingest"), slurm.pop("pso")
        out["slurm"] = slurm
    else:
        log(f"SLURM not measured: {why}")
        out["slurm"] = {"error": why}
    out["raw"] = raw
    return out


# ------------------------------------------------------------------------------------------ 3 S3
def _start_s3(port: int, folder: str) -> tuple[dict, dict]:
    env = {**os.environ, "SEISGRID_S3_PORT": str(port), "SEISGRID_S3_DIR": folder, "PYTHON": sys.executable}
    started = subprocess.run(["bash", str(REPO / "cluster" / "s3-local.sh"), "start"], env=env, capture_output=True,
                             text=True, check=False)
    if started.returncode != 0:
        raise RuntimeError(f"cluster/s3-local.sh start failed: {started.stderr[-2000:]}")
    lines = [ln for ln in started.stdout.splitlines() if ln.startswith("export ")]
    return dict(re.findall(r"(\w+)=(\S+)", "\n".join(lines))), env


def _s3_remove(fs, url: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fs.rm(url, recursive=True)


def section_s3(archive: Path, workdir: Path, repeats: int, port: int, folder: str) -> dict:
    from seisgrid import config

    log(f"== 3 S3 vs local disk: the same ingest into a folder and into s3:// on the local S3 server (port {port})")
    exports, env = _start_s3(port, folder)
    saved = {k: os.environ.get(k) for k in exports}
    os.environ.update(exports)  # before the cluster starts: its workers inherit them
    config.refresh()
    raw: dict = {"local": [], "s3": []}
    try:
        import boto3
        import s3fs

        endpoint = exports["SEISGRID_STORAGE__S3__ENDPOINT_URL"]
        bucket = f"seisgrid-scale-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=bucket)
        fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=endpoint,
                               client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
        with local_client(2) as client:
            for r in range(repeats):
                store = fresh(workdir / "s3cmp-local.zarr")
                raw["local"].append(timed_ingest(archive, str(store), client))
                fresh(store)
                url = f"s3://{bucket}/store-{r}.zarr"
                raw["s3"].append(timed_ingest(archive, url, client))
                raw["s3"][-1]["stored_bytes"] = int(sum(fs.du(url, total=False).values()))
                _s3_remove(fs, url)  # moto keeps everything in memory
                log(f"[{r + 1}/{repeats}] local {raw['local'][-1]['wall_s']:.2f} s, S3 {raw['s3'][-1]['wall_s']:.2f} s")
    finally:
        subprocess.run(["bash", str(REPO / "cluster" / "s3-local.sh"), "stop"], env=env, capture_output=True,
                       check=False)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        config.refresh()
    t_local = median([x["wall_s"] for x in raw["local"]])
    t_s3 = median([x["wall_s"] for x in raw["s3"]])
    return {"local_s": t_local, "s3_s": t_s3, "ratio": _r(t_s3 / t_local), "goal": None,
            "meaning": "S3 seconds ÷ local-disk seconds, same archive, same 2-worker LocalCluster (started before "
                       "the clock); S3: moto behind cluster/s3_server.py on 127.0.0.1 (in memory, no faults)",
            "server": {"endpoint": exports.get("SEISGRID_STORAGE__S3__ENDPOINT_URL"), "dir": folder},
            "raw": raw}


# ------------------------------------------------------------------------------------ 4 ingest floor
def _decode_encode(path: str, cname: str) -> tuple[int, int, int]:
    """ObsPy decoding of one file, then its int32 samples encoded in one-hour chunks with Blosc(cname, 1, shuffle)."""
    import numcodecs.blosc
    import obspy
    from numcodecs import Blosc

    numcodecs.blosc.use_threads = False  # one core per pool process, as a Dask worker thread gets
    codec = Blosc(cname=cname, clevel=1, shuffle=Blosc.SHUFFLE)
    samples = raw = stored = 0
    for trace in obspy.read(path):
        data = np.ascontiguousarray(trace.data, dtype=np.int32)
        for k in range(0, data.size, CHUNK):
            stored += len(codec.encode(data[k:k + CHUNK]))
        samples += data.size
        raw += data.nbytes
    return samples, raw, stored


def floor(files: list[str], workers: int, cname: str) -> dict:
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_decode_encode, files, [cname] * len(files)))
    wall = time.perf_counter() - t0
    samples, raw, stored = (sum(p[i] for p in parts) for i in range(3))
    return {"wall_s": _r(wall), "samples": samples, "compression_ratio": _r(raw / stored, 3)}


def chunk_bytes(store: Path) -> int:
    """Bytes of the store's chunk (shard) files: ``ARRAY/c/...``, the manifest (``_*``) aside."""
    total = 0
    for p in store.rglob("*"):
        rel = p.relative_to(store).parts
        if p.is_file() and "c" in rel[:-1] and not rel[0].startswith("_"):
            total += p.stat().st_size
    return total


def cli_ingest(archive: Path, store: Path, workers: int, extra: list[str]) -> dict:
    import json

    env = dict(os.environ)
    env.update({"SEISGRID_CLUSTER__LOCAL__N_WORKERS": str(workers),
                "SEISGRID_CLUSTER__LOCAL__DASHBOARD_ADDRESS": ":0",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))})
    command = [sys.executable, "-m", "seisgrid.cli", "ingest", str(archive), str(store), "--pattern", PATTERN,
               "--json", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}")
    out = json.loads([ln for ln in proc.stdout.splitlines() if ln.strip()][-1])
    stored = chunk_bytes(store)
    return {"wall_s": _r(wall), "ingest_seconds": out["seconds"], "samples_written": out["samples_written"],
            "chunk_bytes": stored, "compression_ratio": _r(4 * out["samples_written"] / stored, 3)}


def section_floor(archive: Path, workdir: Path, repeats: int, workers: int) -> dict:
    files = archive_files(archive)
    log(f"== 4 ingest against its floor: {len(files)} day files, {workers} processes / workers")
    raw: dict = {"decode": [], "floor_zstd": [], "floor_lz4": [], "ingest_zstd": [], "ingest_lz4": []}
    for r in range(repeats):
        wall, samples = baseline(files, workers)
        raw["decode"].append({"wall_s": _r(wall), "samples": samples})
        for cname in ("zstd", "lz4"):
            raw[f"floor_{cname}"].append(floor(files, workers, cname))
        for cname in ("zstd", "lz4"):
            store = fresh(workdir / f"floor-{cname}.zarr")
            raw[f"ingest_{cname}"].append(cli_ingest(archive, store, workers, ["--compressor", cname]))
            fresh(store)
        log(f"[{r + 1}/{repeats}] decode {raw['decode'][-1]['wall_s']:.2f} s, decode+zstd "
            f"{raw['floor_zstd'][-1]['wall_s']:.2f} s, decode+lz4 {raw['floor_lz4'][-1]['wall_s']:.2f} s, "
            f"ingest zstd {raw['ingest_zstd'][-1]['wall_s']:.2f} s, ingest lz4 {raw['ingest_lz4'][-1]['wall_s']:.2f} s")
    samples = raw["decode"][0]["samples"]
    t = {k: median([x["wall_s"] for x in v]) for k, v in raw.items()}
    rate = {k: samples / v for k, v in t.items()}
    written = raw["ingest_zstd"][0]["samples_written"]
    if written != samples:
        log(f"WARNING: ingest wrote {written:,} samples, ObsPy decoded {samples:,}")
    return {
        "files": len(files), "samples": samples, "workers": workers,
        "seconds": t, "samples_per_s": {k: _r(v, 0) for k, v in rate.items()},
        "zstd_vs_floor": {"ratio": _r(rate["ingest_zstd"] / rate["floor_zstd"]), "goal": GOAL_FLOOR_RATIO},
        "lz4_vs_decode": {"ratio": _r(rate["ingest_lz4"] / rate["decode"]), "goal": GOAL_LZ4_RATIO},
        "zstd_vs_decode": _r(rate["ingest_zstd"] / rate["decode"]),
        "lz4_vs_floor_lz4": _r(rate["ingest_lz4"] / rate["floor_lz4"]),
        "compression_ratio": {"ingest_zstd": median([x["compression_ratio"] for x in raw["ingest_zstd"]]),
                              "ingest_lz4": median([x["compression_ratio"] for x in raw["ingest_lz4"]]),
                              "floor_zstd": median([x["compression_ratio"] for x in raw["floor_zstd"]]),
                              "floor_lz4": median([x["compression_ratio"] for x in raw["floor_lz4"]]),
                              "steim2_files": _r(4 * samples / sum(os.path.getsize(f) for f in files), 3)},
        "ingest_inside_s": {c: median([x["ingest_seconds"] for x in raw[f"ingest_{c}"]]) for c in ("zstd", "lz4")},
        "meaning": "floor: ObsPy decoding + Blosc(zstd, clevel=1, shuffle) of one-hour int32 chunks in a "
                   f"{workers}-process pool (blosc threads off), wall from pool start to shut-down; ingest: the "
                   "whole `python -m seisgrid.cli ingest ... --json [--compressor lz4]` with a "
                   f"{workers}-worker LocalCluster; ratios are throughputs (samples/s); compression ratio = "
                   "raw int32 bytes ÷ bytes of the store's chunk files",
        "raw": raw,
    }


# --------------------------------------------------------------------------------------------- main
def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        n, _, k = part.partition(":")
        sizes.append((int(float(n)), int(k or 1)))
    return sizes


def goals_table(result: dict) -> list[dict]:
    rows = []

    def add(figure, value, goal, ok, unit=""):
        rows.append({"figure": figure, "value": value, "unit": unit, "goal": goal, "ok": ok})

    sched = result.get("scheduler")
    if sched:
        for key, s in sched["sizes"].items():
            add(f"scheduler {key}: overhead per task", s["ms_per_task"], f"≤ {GOAL_MS_PER_TASK} ms",
                s["ms_per_task"] <= GOAL_MS_PER_TASK, "ms")
            ok = s["rss_peak_growth_mb"] <= GOAL_RSS_MB if s["n"] >= 10**6 else None
            add(f"scheduler {key}: peak client RSS growth", s["rss_peak_growth_mb"], f"≤ {GOAL_RSS_MB:g} MB at 10^6",
                ok, "MB")
    eff = result.get("parallel_efficiency")
    if eff:
        for what in ("ingest", "pso"):
            add(f"efficiency local {what}", eff[what]["efficiency"], f"≥ {GOAL_EFFICIENCY}",
                eff[what]["efficiency"] >= GOAL_EFFICIENCY)
        slurm = eff.get("slurm") or {}
        for what in ("ingest", "pso"):
            value = slurm.get(f"{what}_efficiency")
            add(f"efficiency SLURM {what}", value, f"≥ {GOAL_EFFICIENCY}",
                None if value is None else value >= GOAL_EFFICIENCY)
        add("SLURM start-up", slurm.get("startup_s"), None, None, "s")
    s3 = result.get("s3_vs_local")
    if s3:
        add("S3 ÷ local ingest seconds", s3.get("ratio"), None, None)
    fl = result.get("ingest_floor")
    if fl:
        add("ingest zstd ÷ floor (decode+zstd)", fl["zstd_vs_floor"]["ratio"], f"≥ {GOAL_FLOOR_RATIO}",
            fl["zstd_vs_floor"]["ratio"] >= GOAL_FLOOR_RATIO)
        add("ingest lz4 ÷ ObsPy decode", fl["lz4_vs_decode"]["ratio"], f"≥ {GOAL_LZ4_RATIO}",
            fl["lz4_vs_decode"]["ratio"] >= GOAL_LZ4_RATIO)
        add("compression ratio zstd", fl["compression_ratio"]["ingest_zstd"], None, None)
        add("compression ratio lz4", fl["compression_ratio"]["ingest_lz4"], None, None)
    return rows


def run_sections(args, sections, sizes, repeats, stations, days, workdir: Path, result: dict) -> None:
    archive = None
    if {"floor", "efficiency", "s3"} & set(sections):
        archive, synth = make_archive(workdir, stations, days, 2)
        result["archive"] = {"stations": stations, "channels_per_station": 3, "days": days, "sampling_rate": 100.0,
                             "files": len(archive_files(archive)), "path": str(archive), "synth": synth}
    if "floor" in sections:  # first: its process pools fork this process before any client thread exists
        result["ingest_floor"] = section_floor(archive, workdir, repeats, 2)
        result["load_average"]["after_floor"] = load_average()
    if "scheduler" in sections:
        budget = args.size_budget if args.size_budget is not None else (60.0 if args.quick else 150.0)
        result["scheduler"] = section_scheduler(sizes, repeats, budget, args.quick,
                                                try_k10=not args.quick and args.sizes is None)
        result["scheduler"]["size_budget_s"] = budget
        result["extrapolation_1pb"] = extrapolation(result["scheduler"])
        result["load_average"]["after_scheduler"] = load_average()
    if "efficiency" in sections:
        objective = calibrate_objective(0.4 if args.quick else 1.0)
        result["parallel_efficiency"] = section_efficiency(archive, workdir, repeats, objective, not args.no_slurm)
        result["load_average"]["after_efficiency"] = load_average()
    if "s3" in sections:
        try:
            result["s3_vs_local"] = section_s3(archive, workdir, repeats, args.s3_port, args.s3_dir)
        except Exception as exc:  # noqa: BLE001  (recorded: the result is still written)
            log(f"S3 section failed: {type(exc).__name__}: {exc}")
            result["s3_vs_local"] = {"error": f"{type(exc).__name__}: {exc}"}
        result["load_average"]["after_s3"] = load_average()


def headline(result: dict) -> dict:
    sched = result.get("scheduler")
    if not sched:
        return {"metric": "scale", "value": None, "unit": None, "goal": None, "baseline": None, "ratio": None}
    ones = [s for s in sched["sizes"].values() if s["items_per_task"] == 1]
    one = max(ones, key=lambda s: s["n"]) if ones else next(iter(sched["sizes"].values()))
    base = sched["dask_floor"]["ms_per_task"]
    return {"metric": f"run_tasks_ms_per_task_n{one['n']}_k{one['items_per_task']}", "value": one["ms_per_task"],
            "unit": "ms", "goal": GOAL_MS_PER_TASK,
            "goal_meaning": "scheduler + client overhead per Dask task of run_tasks (no-op tasks) ≤ 1 ms; the other "
                            "goals in `goals`",
            "goal_ok": one["ms_per_task"] <= GOAL_MS_PER_TASK, "baseline": base,
            "baseline_meaning": "Dask's own ms per task on the same cluster (client.map + gather, all at once)",
            "ratio": _r(one["ms_per_task"] / base) if base else None,
            "ratio_meaning": "run_tasks ms per task ÷ Dask's own"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 stations × 1 day, scheduler up to 10^5 items, 1 repeat (about 4 minutes)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats, medians reported (default 3; --quick 1)")
    parser.add_argument("--stations", type=int, default=None, help="stations of the archive (default 3)")
    parser.add_argument("--days", type=int, default=None, help="days of the archive (default 7; --quick 1)")
    parser.add_argument("--sizes", default=None,
                        help="scheduler sizes N:ITEMS_PER_TASK,... (default 10000:1,100000:1,1000000:100; "
                             "--quick 10000:1,100000:100)")
    parser.add_argument("--size-budget", type=float, default=None,
                        help="seconds after which a scheduler size is not repeated (default 150; --quick 60)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--no-slurm", action="store_true", help="skip the SLURM part of the efficiency section")
    parser.add_argument("--s3-port", type=int, default=5599, help="port of the local S3 server (default 5599)")
    parser.add_argument("--s3-dir", default="/tmp/scale-s3", help="folder of the local S3 server's pid and log")
    parser.add_argument("--workdir", default=None,
                        help="folder for the archive (reused when already there) and the stores; default a temp dir")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/scale[-quick].json)")
    args = parser.parse_args(argv)

    repeats = args.repeats or (1 if args.quick else 3)
    stations = args.stations or 3
    days = args.days or (1 if args.quick else 7)
    sizes = parse_sizes(args.sizes) if args.sizes else (
        [(10**4, 1), (10**5, 100)] if args.quick else [(10**4, 1), (10**5, 1), (10**6, 100)])
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; expected some of {list(SECTIONS)}")

    t_start = time.perf_counter()
    checks = [cpu_scaling(2)]
    result: dict = {"load_average": {"start": load_average()}}
    log(f"start: load average {result['load_average']['start']}, 2-process CPU check "
        f"{checks[0]['speedup']:.2f}×; sections {sections}, {repeats} repeat(s)")
    with work_folder(args.workdir, "seisgrid-bench-scale-") as workdir:
        run_sections(args, sections, sizes, repeats, stations, days, workdir, result)
    checks.append(cpu_scaling(2))
    result["load_average"]["end"] = load_average()
    loads = [v for v in result["load_average"].values() if v]
    busy = busy_machine(checks, loads, "so every time is pessimistic and the efficiencies may be low")

    flags = (" --quick" if args.quick else "") + "".join(
        f" --{k} {v}" for k, v in (("repeats", args.repeats), ("stations", args.stations), ("days", args.days),
                                    ("sizes", args.sizes), ("size-budget", args.size_budget)) if v is not None)
    if args.sections != ",".join(SECTIONS):
        flags += f" --sections {args.sections}"
    out = {**headline(result), "goals": goals_table(result), "repeats": repeats, "quick": args.quick,
           "sections": sections, "busy": busy, "cpu_scaling": checks, **result,
           "total_seconds": _r(time.perf_counter() - t_start, 1), **provenance("scale", flags, VERSIONS)}
    for row in out["goals"]:
        state = "—" if row["ok"] is None else ("met" if row["ok"] else "NOT met")
        log(f"{row['figure']:<48} {row['value']!s:>10} {row['unit']:<3} goal {row['goal'] or '—':<18} {state}")
    write_result(out, "scale", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
