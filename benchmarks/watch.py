"""Benchmark: ``seisgrid watch`` latency per arriving station-hour file, and station-streams per machine.

A synthetic network (``synth.synthesize``: ``--stations`` stations, 100 Hz, Z/N/E, events and icequakes) is
cut into **station-hour files** (one miniSEED file per station and hour, its three channels) — what a
station at a research camp delivers. A producer thread drops them into an empty folder, one at a time,
hour by hour and station by station (written under a temporary name, then renamed, as a careful
producer does), and waits for the watcher to publish the catalog that includes the file before it drops
the next one, so every file meets an idle watcher, as in real time when files arrive an hour apart.
:func:`seisgrid.seismic.watch.watch` follows the folder in this process (poll ``--poll-seconds``, settle
``--settle-seconds``) with a ResNet-18 checkpoint (``--model``, default an untrained ResNet-18: the cost
does not depend on the weights; its picks are reported) at the default 5 s stride and precision.

**Latency** of a file = the catalog's publication time − the time the producer renamed the file into
the folder (poll and settle delays included), per file; the median and max over files are reported, and
the first hour's files separately (the first hour includes loading the model).

**Station-streams one machine keeps up with** = 3600 s ÷ the median busy time a station-hour file costs
(ingest + detect + catalog, without the poll and settle waits): as many stations as deliver an hour
of data in the hour it takes to process it, with every core busy. Cycles of one file each are what a
real network's staggered deliveries give; the figure also holds when files arrive together (a cycle's
cost grows with its files).

Goal (issue 17): median latency ≤ 10 s per station-hour file for 3 stations with the ResNet-18 on 2 cores.

Usage (from the repository root)::

    python benchmarks/watch.py --quick    # 3 stations × 2 hours, about 2 minutes on 2 cores
    python benchmarks/watch.py            # 3 stations × 4 hours
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, busy_machine, cpu_scaling, load_average, log, median, provenance, work_folder, write_result

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GOAL_SECONDS = 10.0
VERSIONS = ("seisgrid", "torch", "numpy", "obspy", "zarr", "pyocto")


def untrained_checkpoint(path: Path, arch: str) -> str:
    """A checkpoint of an untrained ``arch`` with the window settings of training (25 s at 100 Hz)."""
    import torch

    from seisgrid.seismic import models

    torch.manual_seed(0)
    models.save_checkpoint(str(path), models.build(arch, 2), {"arch": arch, "window_seconds": 25.0,
                                                              "sampling_rate": 100.0, "pre_p_seconds": 8.0})
    return str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 hours of 3 stations (~2 min on 2 cores)")
    parser.add_argument("--stations", type=int, default=3)
    parser.add_argument("--hours", type=int, default=None, help="hours of data (default 4; --quick 2)")
    parser.add_argument("--model", default=None, help="checkpoint (default: an untrained ResNet-18)")
    parser.add_argument("--poll-seconds", type=float, default=None, help="default seisgrid.watch.poll_seconds")
    parser.add_argument("--settle-seconds", type=float, default=None, help="default seisgrid.watch.settle_seconds")
    parser.add_argument("--precision", default=None, help="detect precision (default seisgrid.detect.precision)")
    parser.add_argument("--workdir", default=None, help="folder for the archive and stores (default: a temp folder)")
    parser.add_argument("--output", default=None, help="result path (default benchmarks/results/watch[-quick].json)")
    args = parser.parse_args(argv)

    import torch

    from seisgrid import config
    from seisgrid.seismic import models
    from seisgrid.seismic.synth import station_files, synthesize
    from seisgrid.seismic.watch import watch

    hours = args.hours or (2 if args.quick else 4)
    loads, scaling = [load_average()], [cpu_scaling()]
    with work_folder(args.workdir, "seisgrid-watch-") as work:
        for name in ("archive", "hours", "incoming", "store.zarr", "catalog.probabilities.zarr"):
            shutil.rmtree(work / name, ignore_errors=True)
        synthesize(str(work / "archive"), stations=args.stations, days=hours / 24, sampling_rates=[100.0],
                   events_per_day=200, seed=3)
        files = [(k, station, Path(path)) for k, station, path in station_files(work / "archive", work / "hours", 3600)]
        model = args.model or untrained_checkpoint(work / "resnet18.pt", "resnet18")
        arch = models.load_checkpoint(model, "cpu")[1]["arch"]
        incoming = work / "incoming"
        incoming.mkdir()
        delivered: dict[str, float] = {}
        published: dict[str, float] = {}
        busy: dict[str, float] = {}
        picks: list[int] = []
        done = threading.Event()
        cycle_done = threading.Condition()

        def on_cycle(result: dict) -> None:
            with cycle_done:
                for url in result["files"]:
                    published[url] = result["finished_at"]
                    busy[url] = result["seconds"]["total"] / len(result["files"])
                picks.append(result["detect"]["picks"])
                cycle_done.notify_all()

        def produce() -> None:
            try:
                for _, _, path in files:
                    target = incoming / path.name
                    shutil.copyfile(path, incoming / f".{path.name}.part")  # hidden while written
                    os.replace(incoming / f".{path.name}.part", target)
                    delivered[str(target)] = time.time()
                    with cycle_done:
                        cycle_done.wait_for(lambda t=str(target): t in published, timeout=300)
                    time.sleep(0.2)
            finally:
                done.set()

        producer = threading.Thread(target=produce, daemon=True)
        options = {"precision": args.precision} if args.precision else {}
        t0 = time.perf_counter()
        producer.start()
        summary = watch(str(incoming), str(work / "store.zarr"), model, str(work / "catalog"),
                        poll_seconds=args.poll_seconds, settle_seconds=args.settle_seconds,
                        max_cycles=len(files) + 5, idle_exit_seconds=15.0, on_cycle=on_cycle, **options)
        wall = time.perf_counter() - t0
        producer.join(timeout=5)
        latency = {Path(u).name: round(published[u] - delivered[u], 3) for u in delivered if u in published}
        first_hour = {path.name for hour, _, path in files if hour == 0}
        later = [v for k, v in latency.items() if k not in first_hour]
        per_file_busy = [v for k, v in ((Path(u).name, b) for u, b in busy.items()) if k not in first_hour]
        precision = models.pick_precision(args.precision or config.get("detect.precision", "auto"), "cpu")
        loads.append(load_average())
        scaling.append(cpu_scaling())
        machine_busy = busy_machine(scaling, loads, "latencies are upper bounds")
        med = median(later)
        result = {
            "metric": "watch_latency_median_seconds",
            "value": med,
            "unit": "s",
            "value_meaning": f"median latency from a station-hour file landing in the folder to the catalog "
                             f"that includes it, over the files after the first hour ({len(later)} files), "
                             f"{arch} in {precision} on {torch.get_num_threads()} CPU threads",
            "goal": GOAL_SECONDS,
            "goal_meaning": "median ≤ 10 s per station-hour file, 3 stations, ResNet-18, 2 cores (issue 17)",
            "goal_ok": med is not None and med <= GOAL_SECONDS,
            "latency_seconds": {"median": med, "max": max(later) if later else None,
                                "first_hour": sorted(v for k, v in latency.items() if k in first_hour)},
            "busy_seconds_per_file": {"median": median(per_file_busy), "max": max(per_file_busy, default=None)},
            "streams_kept_up_with": round(3600 / median(per_file_busy), 1) if per_file_busy else None,
            "streams_meaning": "station-streams (3 channels at 100 Hz) this machine detects on in real time: 3600 s "
                               "÷ the median busy time per station-hour file (ingest + detect + catalog)",
            "per_file": latency,
            "files": len(files), "stations": args.stations, "hours": hours, "arch": arch,
            "model": "untrained (cost does not depend on the weights)" if not args.model else str(args.model),
            "precision": precision, "torch_threads": torch.get_num_threads(),
            "poll_seconds": float(config.get("watch.poll_seconds", override=args.poll_seconds)),
            "settle_seconds": float(config.get("watch.settle_seconds", override=args.settle_seconds)),
            "stride_seconds": float(config.get("detect.stride_seconds")),
            "picks_final": picks[-1] if picks else None, "events_final": summary["n_events"],
            "cycles": len(summary["cycles"]), "wall_seconds": round(wall, 1),
            "machine_busy": machine_busy, "cpu_scaling": scaling, "load_average": loads, "quick": args.quick,
            **provenance("watch", (" --quick" if args.quick else "")
                         + "".join(f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                   if k not in ("quick", "workdir", "output") and v is not None), VERSIONS),
        }
        log(f"latency per station-hour file after the first hour: median {med} s, "
            f"max {result['latency_seconds']['max']} s; busy per file {result['busy_seconds_per_file']['median']} s "
            f"→ {result['streams_kept_up_with']} streams in real time")
    write_result(result, "watch", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
