"""Benchmark: ``seisgrid verify`` throughput, the cost of the per-shard checksum on ingest, Icechunk vs Zarr.

On a synthetic SDS archive (default 3 stations × 3 channels × 4 days at 100 Hz, Steim-2; its store is about
350 MB in 36 one-day shards) this measures (issue 14, "Benchmark"):

1. **verify** — :func:`seisgrid.seismic.verify.verify` of one finished store (written once by
   :func:`seisgrid.seismic.ingest.ingest` on the 2-worker cluster) on local disk and on the local S3 API
   server (``cluster/s3-local.sh``: moto on 127.0.0.1, started on a free port and stopped at the end), each
   in this process (``client=None``) and on a 2-worker LocalCluster (1 thread each, started before the clock).
   Throughput = shard bytes checked ÷ wall seconds of the call (GB/s, 10^9 bytes). The local store is in the
   page cache (just written and read before), so the local figure is hashing + file-system overhead, not disk.
   The **baseline** is the floor of the work: :func:`seisgrid.storage.checksum` (SHA-256) of the same shard
   bytes already in memory, in this process on one core; ratio = verify ÷ floor.
2. **checksums** — ingest of the same archive into a fresh local store with ``ingest.checksums`` true and
   false (``dask.config.set({"seisgrid.ingest.checksums": ...})`` in this process: ``ingest`` reads it in the
   driver and passes it in every task, so it holds on the cluster too), in this process and on the cluster;
   ratio = median seconds with ÷ median without, goal ≤ 1.05. The order of the two settings alternates
   between repeats. Once, an in-process store written without checksums is verified, to show the option took
   effect (every shard ``no_checksum``). Before the timed runs each setting ingests one station-day untimed in
   each mode (one-time costs of a first run). The floor: SHA-256 of the store's shard bytes in memory, as a
   ratio (``floor_ratio`` = 1 + its CPU seconds ÷ the ingest's CPU seconds without checksums).
3. **icechunk** — the same ingest with ``store_engine="icechunk"`` against plain Zarr (``store_engine="zarr"``),
   fresh local stores, in this process and on the cluster; ratio = Icechunk seconds ÷ Zarr seconds. Runs only
   when :func:`~seisgrid.seismic.ingest.ingest` has a ``store_engine`` parameter; otherwise the section says
   ``"skipped": "ingest has no store_engine yet"``.

Every measurement is repeated ``--repeats`` times (default 5), interleaved (so drift hits all alike), and
the medians reported, with every raw timing. Besides wall seconds every run records CPU seconds (this
process, which holds the driver and the LocalCluster's scheduler, plus the workers' processes); the ratios
are given on both (``ratio``, ``cpu_ratio``): on a shared machine the CPU ratio shows the cost of the work
itself, the wall ratio mostly the other load. The 1-minute load average and a 2-process CPU check are
recorded at the start and the end (``busy``): another process on the 2 cores makes every figure
pessimistic, and the checksum ratio (a few per cent at most) noisier.

Human lines go to stderr; the last stdout line is one JSON object (``metric``, ``value``, ``unit``, ``goal``,
``baseline``, ``ratio``, the three sections, ``goals``). Full runs write ``benchmarks/results/verify.json``,
``--quick`` runs ``benchmarks/results/verify-quick.json``.

Usage (from the repository root)::

    python benchmarks/verify.py --quick                       # 3 stations × 1 day, 1 repeat (under a minute)
    python benchmarks/verify.py                               # 3 stations × 4 days, 5 repeats (about 4.5 minutes)
    python benchmarks/verify.py --workdir /tmp/bench-verify   # the archive is kept and reused
    python benchmarks/verify.py --sections checksums --repeats 7
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
from ingest import PATTERN, archive_files, fresh, make_archive

SECTIONS = ("verify", "checksums", "icechunk")
GOAL_CHECKSUM_RATIO = 1.05
S3_SCRIPT = REPO / "cluster" / "s3-local.sh"
VERSIONS = ("seisgrid", "zarr", "icechunk", "fsspec", "s3fs", "moto", "numcodecs", "dask", "distributed", "obspy",
            "numpy")


def _r(x, digits=4):
    return None if x is None else round(float(x), digits)


# ------------------------------------------------------------------------------------------ helpers
def _warm_worker(dask_worker=None):
    import numcodecs  # noqa: F401
    import obspy  # noqa: F401
    import zarr  # noqa: F401

    import seisgrid.seismic.ingest  # noqa: F401
    import seisgrid.seismic.verify  # noqa: F401

    return True


@contextlib.contextmanager
def local_client(workers: int):
    """A ``workers``-worker LocalCluster (one thread each), its workers up and warm before it is yielded."""
    from seisgrid.cluster import get_client

    client = get_client("local", n_workers=workers, threads_per_worker=1, dashboard_address=":0", quiet=True)
    try:
        client.wait_for_workers(workers)
        client.run(_warm_worker)
        yield client
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(folder: str, port: int | None):
    """The local S3 API server of ``cluster/s3-local.sh`` (moto), its exports set in ``os.environ`` (so the
    clusters started inside inherit them) and in seisgrid's configuration; stopped and unset on exit.

    Yields ``(exports, bucket)``.
    """
    from seisgrid import config

    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        env = {**os.environ, "SEISGRID_S3_PORT": str(port or free_port()), "SEISGRID_S3_DIR": folder,
               "PYTHON": sys.executable}
        started = subprocess.run(["bash", str(S3_SCRIPT), "start"], env=env, capture_output=True, text=True,
                                 check=False)
        if started.returncode == 0 or port:
            break
    if started.returncode != 0:
        raise RuntimeError(f"cluster/s3-local.sh start failed: {started.stderr[-2000:]}")
    exports = dict(re.findall(r"(\w+)=(\S+)", "\n".join(ln for ln in started.stdout.splitlines()
                                                        if ln.startswith("export "))))
    saved = {k: os.environ.get(k) for k in exports}
    os.environ.update(exports)
    config.refresh()
    bucket = env.get("SEISGRID_S3_BUCKET", "seisgrid")
    log(f"S3 server: {exports.get('SEISGRID_STORAGE__S3__ENDPOINT_URL')} (bucket s3://{bucket})")
    try:
        yield exports, bucket
    finally:
        subprocess.run(["bash", str(S3_SCRIPT), "stop"], env=env, capture_output=True, check=False)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        config.refresh()
        log("S3 server: stopped")


def store_bytes(store: str) -> dict:
    """Objects and bytes of a store, and of its shard objects (``STATION/CHANNEL/c/...``; the manifest aside)."""
    from seisgrid import storage

    fs, root = storage.filesystem(store, storage.storage_options(store))
    sizes = {p: int(info["size"]) for p, info in fs.find(root, detail=True).items()}
    base = root.rstrip("/") + "/"
    shards = {p: n for p, n in sizes.items()
              if "c" in p[len(base):].split("/")[:-1] and not p[len(base):].startswith("_")}
    return {"objects": len(sizes), "bytes": sum(sizes.values()), "shard_objects": len(shards),
            "shard_bytes": sum(shards.values())}


def hash_floor(store: Path, repeats: int) -> dict:
    """SHA-256 (:func:`seisgrid.storage.checksum`) of every shard file of a local store, bytes already in memory."""
    from seisgrid import storage

    base = str(store)
    info = store_bytes(base)
    blobs = []
    for p in sorted(store.rglob("*")):
        rel = p.relative_to(store).parts
        if p.is_file() and "c" in rel[:-1] and not rel[0].startswith("_"):
            blobs.append(p.read_bytes())
    nbytes = sum(len(b) for b in blobs)
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for b in blobs:
            storage.checksum(b)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu = median(walls), median(cpus)
    assert nbytes == info["shard_bytes"], (nbytes, info)
    return {"bytes": nbytes, "shards": len(blobs), "wall_s": _r(wall), "gb_per_s": _r(nbytes / 1e9 / wall, 3),
            "cpu_s": _r(cpu), "gb_per_cpu_s": _r(nbytes / 1e9 / cpu, 3),
            "raw_wall_s": [_r(w) for w in walls], "raw_cpu_s": [_r(c) for c in cpus],
            "meaning": "seisgrid.storage.checksum (SHA-256) of every shard's bytes, already in memory, one core"}


def cpu_seconds(client) -> float:
    """CPU seconds so far of this process (the driver, and a LocalCluster's scheduler) plus the cluster's workers.

    Other load on the cores stretches wall time but hardly CPU time: the CPU figures show what the work costs
    when the machine is shared.
    """
    total = time.process_time()
    if client is not None:
        total += sum(client.run(time.process_time).values())
    return total


def timed_verify(store: str, client) -> dict:
    from seisgrid.seismic.verify import verify

    cpu0 = cpu_seconds(client)
    t0 = time.perf_counter()
    out = verify(store, client=client, progress=False)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(client) - cpu0
    if not out["ok"]:
        raise SystemExit(f"verify {store} found problems: {out['problem_counts']} {out['tasks_failed'][:3]}")
    return {"wall_s": _r(wall), "verify_seconds": out["seconds"], "bytes_checked": out["bytes_checked"],
            "shards_checked": out["shards_checked"], "channels": out["channels"], "days": out["days"],
            "gb_per_s": _r(out["bytes_checked"] / 1e9 / wall, 3), "cpu_s": _r(cpu),
            "gb_per_cpu_s": _r(out["bytes_checked"] / 1e9 / cpu, 3)}


def timed_ingest(archive: Path, store: str, client, **kwargs) -> dict:
    from seisgrid.seismic.ingest import ingest

    cpu0 = cpu_seconds(client)
    t0 = time.perf_counter()
    out = ingest(str(archive), store, pattern=PATTERN, client=client, progress=False, **kwargs)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(client) - cpu0
    if out.get("tasks_failed") or out.get("files_failed"):
        raise SystemExit(f"ingest into {store} failed: {out.get('tasks_failed') or out.get('files_failed')}")
    return {"wall_s": _r(wall), "cpu_s": _r(cpu), "ingest_seconds": out.get("seconds"),
            "samples_written": out["samples_written"], **({"store_engine": out["store_engine"]}
                                                          if "store_engine" in out else {}),
            "tasks_run": out["tasks_run"]}


def warm_up(archive: Path, workdir: Path, client, **kwargs) -> None:
    """One untimed ingest of one station-day (its 3 day files: a task for each worker) into a scratch store: the
    first run in a process pays one-time costs (imports, codec set-up) that would otherwise fall on whichever
    setting is timed first."""
    parts = Path(archive_files(archive)[0]).name.split(".")  # NET.STA.LOC.CHA.D.YEAR.DAY
    first = ".".join(parts[:3] + ["*"] + parts[4:])
    store = fresh(workdir / "warm-up.zarr")
    from seisgrid.seismic.ingest import ingest

    ingest(str(archive), str(store), pattern=first, client=client, progress=False, **kwargs)
    fresh(store)


def _remove(store: str) -> None:
    if store.startswith("s3://"):
        from seisgrid import storage

        fs, root = storage.filesystem(store, storage.storage_options(store))
        with contextlib.suppress(FileNotFoundError):
            fs.rm(root, recursive=True)
    else:
        fresh(Path(store))


# ------------------------------------------------------------------------------------------ 1 verify
def section_verify(archive: Path, workdir: Path, repeats: int, client, bucket: str | None, s3_error: str | None
                   ) -> dict:
    log("== 1 verify: one store on local disk and on the S3 server, in process and on the 2-worker cluster")
    stores = {"local": str(fresh(workdir / "verify.zarr"))}
    if bucket:
        stores["s3"] = f"s3://{bucket}/verify-bench.zarr"
    out: dict = {"stores": {}}
    for where, store in stores.items():
        _remove(store)
        written = timed_ingest(archive, store, client)
        size = store_bytes(store)
        out["stores"][where] = {"url": store, "ingest": written, **size}
        log(f"{where}: ingested in {written['wall_s']:.2f} s (2 workers): {size['bytes'] / 1e6:,.1f} MB in "
            f"{size['objects']} objects, {size['shard_objects']} shards ({size['shard_bytes'] / 1e6:,.1f} MB)")
    out["hash_floor"] = hash_floor(Path(stores["local"]), max(3, repeats))
    log(f"floor: SHA-256 of {out['hash_floor']['shards']} shards in memory: {out['hash_floor']['wall_s']:.3f} s, "
        f"{out['hash_floor']['gb_per_s']:.2f} GB/s (one core)")
    modes = {"in_process": None, "cluster_2w": client}
    raw: dict = {f"{w}_{m}": [] for w in stores for m in modes}
    for r in range(repeats):
        for where, store in stores.items():
            for mode, c in modes.items():
                raw[f"{where}_{mode}"].append(timed_verify(store, c))
                x = raw[f"{where}_{mode}"][-1]
                log(f"[{r + 1}/{repeats}] verify {where:<5} {mode:<10}: {x['wall_s']:7.2f} s  "
                    f"{x['gb_per_s']:6.3f} GB/s ({x['cpu_s']:.2f} CPU s; {x['shards_checked']} shards)")
    results = {}
    for key, runs in raw.items():
        wall = median([x["wall_s"] for x in runs])
        nbytes = runs[0]["bytes_checked"]
        cpu = median([x["cpu_s"] for x in runs])
        results[key] = {"wall_s": wall, "gb_per_s": _r(nbytes / 1e9 / wall, 3), "bytes_checked": nbytes,
                        "cpu_s": cpu, "gb_per_cpu_s": _r(nbytes / 1e9 / cpu, 3),
                        "shards_checked": runs[0]["shards_checked"],
                        "ratio_to_hash_floor": _r(nbytes / 1e9 / wall / out["hash_floor"]["gb_per_s"], 3)}
    if "s3" not in stores:
        results["s3"] = {"error": s3_error or "not measured"}
    else:
        out["stores"]["s3"]["url"] = stores["s3"]
        for mode in modes:
            results[f"s3_{mode}"]["s3_over_local_seconds"] = _r(results[f"s3_{mode}"]["wall_s"]
                                                                / results[f"local_{mode}"]["wall_s"], 3)
    for where, store in stores.items():
        if where == "s3":
            _remove(store)  # moto keeps everything in memory
    out.update(results=results, meaning=(
        "GB/s = shard bytes checked (10^9) ÷ wall seconds of verify(store, client, progress=False); in_process: "
        "client=None, cluster_2w: LocalCluster 2 workers × 1 thread started before the clock; local store in the "
        "page cache; s3: moto behind cluster/s3_server.py on 127.0.0.1 (one Python process on the same cores, in "
        "memory, no faults); ratio_to_hash_floor: verify GB/s ÷ SHA-256 of the same bytes in memory on one core"),
        raw=raw)
    return out


# ---------------------------------------------------------------------------------------- 2 checksums
def _checked_without(store: str) -> dict:
    from seisgrid.seismic.verify import verify

    report = verify(store, client=None, progress=False)
    return {"ok": report["ok"], "problem_counts": {k: v for k, v in report["problem_counts"].items() if v},
            "shards_checked": report["shards_checked"]}


def section_checksums(archive: Path, workdir: Path, repeats: int, client) -> dict:
    import dask.config

    log("== 2 checksum cost: ingest with ingest.checksums true vs false, fresh store each time")
    modes = {"in_process": None, "cluster_2w": client}
    raw: dict = {f"{m}_{s}": [] for m in modes for s in ("on", "off")}
    sanity = floor = None
    for c in modes.values():
        for on in (True, False):
            with dask.config.set({"seisgrid.ingest.checksums": on}):
                warm_up(archive, workdir, c)
    for r in range(repeats):
        order = (True, False) if r % 2 == 0 else (False, True)
        for mode, c in modes.items():
            for on in order:
                store = str(fresh(workdir / f"checksums-{mode}.zarr"))
                with dask.config.set({"seisgrid.ingest.checksums": on}):
                    raw[f"{mode}_{'on' if on else 'off'}"].append(timed_ingest(archive, store, c))
                if sanity is None and not on and c is None:
                    sanity = _checked_without(store)
                    log(f"store written without checksums, verified: ok={sanity['ok']} {sanity['problem_counts']}")
                if floor is None and on:
                    floor = hash_floor(Path(store), 3)
                fresh(Path(store))
            a, b = raw[f"{mode}_on"][-1], raw[f"{mode}_off"][-1]
            log(f"[{r + 1}/{repeats}] {mode:<10}: with checksums {a['wall_s']:6.2f} s ({a['cpu_s']:6.2f} CPU s), "
                f"without {b['wall_s']:6.2f} s ({b['cpu_s']:6.2f} CPU s)")
    results = {}
    for mode in modes:
        on = median([x["wall_s"] for x in raw[f"{mode}_on"]])
        off = median([x["wall_s"] for x in raw[f"{mode}_off"]])
        paired = [a["wall_s"] / b["wall_s"] for a, b in zip(raw[f"{mode}_on"], raw[f"{mode}_off"], strict=True)]
        cpu_on = median([x["cpu_s"] for x in raw[f"{mode}_on"]])
        cpu_off = median([x["cpu_s"] for x in raw[f"{mode}_off"]])
        results[mode] = {"with_s": on, "without_s": off, "ratio": _r(on / off),
                         "paired_ratios": [_r(p) for p in paired], "paired_median_ratio": _r(median(paired)),
                         "goal": GOAL_CHECKSUM_RATIO,
                         "ok": on / off <= GOAL_CHECKSUM_RATIO,
                         "cpu_with_s": cpu_on, "cpu_without_s": cpu_off, "cpu_ratio": _r(cpu_on / cpu_off),
                         "cpu_ok": cpu_on / cpu_off <= GOAL_CHECKSUM_RATIO,
                         "floor_ratio": _r(1 + floor["cpu_s"] / cpu_off)}
    return {"results": results, "sanity_no_checksums_store": sanity, "hash_floor": floor,
            "samples_written": raw["in_process_on"][0]["samples_written"],
            "meaning": "ratio = median ingest seconds with ingest.checksums true ÷ false, same archive, fresh local "
                       "store each run, order alternating between repeats; in_process: client=None; cluster_2w: "
                       "LocalCluster 2 workers × 1 thread started before the clock (the option is read in the "
                       "driver and passed in each task); paired_ratios: with ÷ without within each repeat (the two "
                       "runs of a repeat are back to back, so their ratio is less exposed to drifting load; "
                       "paired_median_ratio: their median); cpu_*: CPU "
                       "seconds of this process (driver and scheduler) plus the workers, which other load on the "
                       "cores hardly changes; floor_ratio: 1 + CPU seconds of SHA-256 over the store's shard bytes "
                       "in memory ÷ CPU seconds without checksums (what the hashing alone must cost)",
            "raw": raw}


# ----------------------------------------------------------------------------------------- 3 icechunk
def section_icechunk(archive: Path, workdir: Path, repeats: int, client) -> dict:
    from seisgrid.seismic.ingest import ingest

    if "store_engine" not in inspect.signature(ingest).parameters:
        log("== 3 Icechunk vs Zarr: skipped (ingest has no store_engine yet)")
        return {"skipped": "ingest has no store_engine yet"}
    log("== 3 Icechunk vs plain Zarr ingest, fresh local stores")
    modes = {"in_process": None, "cluster_2w": client}
    raw: dict = {f"{m}_{e}": [] for m in modes for e in ("zarr", "icechunk")}
    sizes = {}
    for c in modes.values():
        for engine in ("zarr", "icechunk"):
            warm_up(archive, workdir, c, store_engine=engine)
    for r in range(repeats):
        order = ("zarr", "icechunk") if r % 2 == 0 else ("icechunk", "zarr")
        for mode, c in modes.items():
            for engine in order:
                store = str(fresh(workdir / f"engine-{mode}-{engine}.zarr"))
                raw[f"{mode}_{engine}"].append(timed_ingest(archive, store, c, store_engine=engine))
                if engine not in sizes:
                    found = [p for p in Path(store).rglob("*") if p.is_file()]
                    sizes[engine] = {"objects": len(found), "bytes": sum(p.stat().st_size for p in found)}
                fresh(Path(store))
            log(f"[{r + 1}/{repeats}] {mode:<10}: zarr {raw[f'{mode}_zarr'][-1]['wall_s']:6.2f} s, icechunk "
                f"{raw[f'{mode}_icechunk'][-1]['wall_s']:6.2f} s")
    results = {}
    for mode in modes:
        z = median([x["wall_s"] for x in raw[f"{mode}_zarr"]])
        ice = median([x["wall_s"] for x in raw[f"{mode}_icechunk"]])
        cz = median([x["cpu_s"] for x in raw[f"{mode}_zarr"]])
        cice = median([x["cpu_s"] for x in raw[f"{mode}_icechunk"]])
        paired = [a["wall_s"] / b["wall_s"] for a, b in zip(raw[f"{mode}_icechunk"], raw[f"{mode}_zarr"], strict=True)]
        results[mode] = {"zarr_s": z, "icechunk_s": ice, "ratio": _r(ice / z),
                         "paired_median_ratio": _r(median(paired)), "cpu_zarr_s": cz,
                         "cpu_icechunk_s": cice, "cpu_ratio": _r(cice / cz)}
    return {"results": results, "store_sizes": sizes,
            "meaning": "ratio = median ingest seconds with store_engine='icechunk' ÷ 'zarr', same archive, fresh "
                       "local store each run, order alternating between repeats; paired_median_ratio: median of the "
                       "ratios within each repeat; cpu_ratio: on CPU seconds (this process + the workers); "
                       "in_process: client=None; cluster_2w: LocalCluster 2 workers × 1 thread started before the "
                       "clock",
            "raw": raw}


# --------------------------------------------------------------------------------------------- main
def goals_table(result: dict) -> list[dict]:
    rows = []

    def add(figure, value, goal, ok, unit=""):
        rows.append({"figure": figure, "value": value, "unit": unit, "goal": goal, "ok": ok})

    ver = result.get("verify")
    if ver:
        for key, x in ver["results"].items():
            if "gb_per_s" in x:
                add(f"verify {key}", x["gb_per_s"], None, None, "GB/s")
        add("SHA-256 floor, one core", ver["hash_floor"]["gb_per_s"], None, None, "GB/s")
        add("SHA-256 floor per CPU second", ver["hash_floor"]["gb_per_cpu_s"], None, None, "GB/s")
    chk = result.get("checksums")
    if chk:
        for mode, x in chk["results"].items():
            add(f"ingest with ÷ without checksums, {mode}", x["ratio"], f"≤ {GOAL_CHECKSUM_RATIO}", x["ok"])
            add(f"same, median of paired ratios, {mode}", x["paired_median_ratio"], f"≤ {GOAL_CHECKSUM_RATIO}",
                x["paired_median_ratio"] <= GOAL_CHECKSUM_RATIO)
            add(f"same, CPU seconds, {mode}", x["cpu_ratio"], f"≤ {GOAL_CHECKSUM_RATIO}", x["cpu_ok"])
            add(f"same, SHA-256 alone (floor), {mode}", x["floor_ratio"], None, None)
    ice = result.get("icechunk")
    if ice and "results" in ice:
        for mode, x in ice["results"].items():
            add(f"ingest icechunk ÷ zarr, {mode}", x["ratio"], None, None)
            add(f"same, median of paired ratios, {mode}", x["paired_median_ratio"], None, None)
            add(f"same, CPU seconds, {mode}", x["cpu_ratio"], None, None)
    return rows


def headline(result: dict) -> dict:
    ver = result.get("verify")
    if not ver:
        chk = result.get("checksums")
        if not chk:
            return {"metric": "verify", "value": None, "unit": None, "goal": None, "baseline": None, "ratio": None}
        x = chk["results"]["in_process"]
        return {"metric": "ingest_checksum_cost_in_process", "value": x["with_s"], "unit": "s",
                "goal": GOAL_CHECKSUM_RATIO, "baseline": x["without_s"], "ratio": x["ratio"],
                "ratio_meaning": "ingest seconds with checksums ÷ without"}
    x = ver["results"]["local_in_process"]
    return {"metric": "verify_gb_per_s_local_in_process", "value": x["gb_per_s"], "unit": "GB/s", "goal": None,
            "goal_meaning": "no goal for throughput (issue 14 asks for the figure); the checksum-cost goal "
                            f"(≤ {GOAL_CHECKSUM_RATIO}) is in `goals`",
            "baseline": ver["hash_floor"]["gb_per_s"],
            "baseline_meaning": "SHA-256 of the same shard bytes already in memory, one core",
            "ratio": x["ratio_to_hash_floor"], "ratio_meaning": "verify GB/s ÷ SHA-256 floor GB/s"}


def run_sections(args, sections, repeats, stations, days, workdir: Path, result: dict) -> None:
    archive, synth = make_archive(workdir, stations, days, 2)
    files = archive_files(archive)
    result["archive"] = {"stations": stations, "channels_per_station": 3, "days": days, "sampling_rate": 100.0,
                         "encoding": "STEIM2", "files": len(files),
                         "bytes": sum(os.path.getsize(f) for f in files), "path": str(archive), "synth": synth}
    with contextlib.ExitStack() as stack:
        bucket = s3_error = None
        if "verify" in sections and not args.no_s3:
            try:  # before the cluster: its workers inherit the server's environment
                _, bucket = stack.enter_context(s3_server(args.s3_dir or str(workdir / "s3-local"), args.s3_port))
            except Exception as exc:  # noqa: BLE001  (recorded: the local figures are still measured)
                s3_error = f"{type(exc).__name__}: {exc}"
                log(f"S3 server not started: {s3_error}")
        elif args.no_s3:
            s3_error = "skipped (--no-s3)"
        t0 = time.perf_counter()
        client = stack.enter_context(local_client(2))
        result["cluster_start_s"] = _r(time.perf_counter() - t0, 3)
        if "verify" in sections:
            result["verify"] = section_verify(archive, workdir, repeats, client, bucket, s3_error)
            result["load_average"]["after_verify"] = load_average()
        if "checksums" in sections:
            result["checksums"] = section_checksums(archive, workdir, repeats, client)
            result["load_average"]["after_checksums"] = load_average()
        if "icechunk" in sections:
            result["icechunk"] = section_icechunk(archive, workdir, repeats, client)
            result["load_average"]["after_icechunk"] = load_average()


def source_info() -> dict:
    """Which seisgrid was measured: its folder and the repository's commit (``dirty``: uncommitted changes)."""
    import seisgrid

    info = {"seisgrid_path": str(Path(seisgrid.__file__).resolve().parent), "git_head": None, "dirty": None}
    if Path(info["seisgrid_path"]) != REPO / "seisgrid":
        info["note"] = "seisgrid imported from outside this repository (PYTHONPATH)"
        return info
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "seisgrid"], cwd=REPO, capture_output=True,
                               text=True, timeout=10)
        info.update(git_head=head.stdout.strip() or None, dirty=bool(dirty.stdout.strip()))
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 stations × 1 day, 1 repeat (under a minute)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats, medians reported (default 5; --quick 1)")
    parser.add_argument("--stations", type=int, default=None, help="stations of the archive (default 3)")
    parser.add_argument("--days", type=int, default=None, help="days of the archive (default 4; --quick 1)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--no-s3", action="store_true", help="verify on local disk only")
    parser.add_argument("--s3-port", type=int, default=None, help="port of the local S3 server (default a free one)")
    parser.add_argument("--s3-dir", default=None, help="folder of the S3 server's pid and log (default in the workdir)")
    parser.add_argument("--workdir", default=None,
                        help="folder for the archive (reused when already there) and the stores; default a temp dir")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/verify[-quick].json)")
    args = parser.parse_args(argv)

    repeats = args.repeats or (1 if args.quick else 5)
    stations = args.stations or 3
    days = args.days or (1 if args.quick else 4)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; expected some of {list(SECTIONS)}")

    t_start = time.perf_counter()
    checks = [cpu_scaling(2)]
    result: dict = {"load_average": {"start": load_average()}}
    log(f"start: load average {result['load_average']['start']}, 2-process CPU check {checks[0]['speedup']:.2f}×; "
        f"sections {sections}, {repeats} repeat(s), {stations} stations × {days} days")
    with work_folder(args.workdir, "seisgrid-bench-verify-") as workdir:
        with tempfile.TemporaryDirectory(prefix="seisgrid-verify-s3-") if args.s3_dir is None else \
                contextlib.nullcontext(args.s3_dir) as s3_dir:
            args.s3_dir = s3_dir
            run_sections(args, sections, repeats, stations, days, workdir, result)
        for name in ("verify.zarr", "checksums-in_process.zarr", "checksums-cluster_2w.zarr"):
            if (workdir / name).exists():
                shutil.rmtree(workdir / name)
    checks.append(cpu_scaling(2))
    result["load_average"]["end"] = load_average()
    loads = [v for v in result["load_average"].values() if v]
    busy = busy_machine(checks, loads, "so every time is pessimistic and the checksum ratio noisier")

    flags = (" --quick" if args.quick else "") + "".join(
        f" --{k} {v}" for k, v in (("repeats", args.repeats), ("stations", args.stations), ("days", args.days))
        if v is not None)
    if args.sections != ",".join(SECTIONS):
        flags += f" --sections {args.sections}"
    if args.no_s3:
        flags += " --no-s3"
    out = {**headline(result), "goals": goals_table(result), "repeats": repeats, "quick": args.quick,
           "sections": sections, "busy": busy, "cpu_scaling": checks, **result,
           "total_seconds": _r(time.perf_counter() - t_start, 1), "source": source_info(),
           **provenance("verify", flags, VERSIONS)}
    for row in out["goals"]:
        state = "—" if row["ok"] is None else ("met" if row["ok"] else "NOT met")
        log(f"{row['figure']:<48} {row['value']!s:>10} {row['unit']:<4} goal {row['goal'] or '—':<8} {state}")
    write_result(out, "verify", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
