"""Benchmark: seconds per PSO iteration of the heat-flow search (20 particles) on 1 and 2 Dask workers.

One iteration = :func:`seisgrid.ghf.pso.particle_swarm` with ``iterations=1``: 20 particles, each one
Dask task that trains the Bayesian network with its hyperparameters on one train/validation split of the
real training cells (:func:`seisgrid.ghf.pso.ghf_problem`: 80/20 random split, ``max_epochs`` from
``seisgrid.pso.max_epochs``) and returns the validation RMSE. The swarm is seeded, so every run trains the
same 20 networks. The training arrays are scattered to the workers before the clock; the workers have
imported torch (warm-up). Particles are submitted longest-first by their expected cost
(``cost_hint``: steps per epoch × layer work).

Runs on a LocalCluster with 1 worker and one with 2 workers (1 thread each, both started before the
clock), repeats interleaved, medians reported. Parallel efficiency = t1 / (2 · t2). Each particle's
training time (in its worker) is recorded: particles with different hyperparameters (and early stopping)
take different times, so 20 tasks on 2 workers cannot always split evenly. ``imbalance`` gives the best
2-worker time those task times allow (max(sum / 2, longest)), and list-scheduling simulations of the
measured times submitted in particle order versus longest-first. Goals: ≤ 30 s per iteration on 2
workers, efficiency ≥ 0.8. A 2-process CPU check and the load average before every repeat flag a busy
machine (``busy``). On a machine with CUDA the workers train on the GPU (``device`` in the result).

The stores: ``--features`` / ``--heatflow`` (``seisgrid ghf features`` / ``heatflow`` outputs); otherwise
they are built from the real-data folder into ``--workdir`` (or a temporary folder) first, which takes
several minutes.

Human lines go to stderr; the last stdout line is one JSON object. Full runs write
``benchmarks/results/pso.json``, ``--quick`` ``benchmarks/results/pso-quick.json``.

Usage (from the repository root)::

    python benchmarks/pso.py --features F.zarr --heatflow H.zarr --quick   # 4 particles, 5 epochs
    python benchmarks/pso.py --features F.zarr --heatflow H.zarr           # 20 particles, seisgrid.pso.max_epochs
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import busy_machine, load_average, log, median, provenance, write_result

GOAL_SECONDS = 30.0
GOAL_EFFICIENCY = 0.8
VERSIONS = ("seisgrid", "torch", "pyswarms", "numpy", "dask", "distributed")


def stores(args, folder: Path) -> tuple[str, str, str]:
    """Feature and heat-flow stores: as given, or built into ``folder``; and how they were found."""
    if args.features and args.heatflow:
        return args.features, args.heatflow, "given"
    from seisgrid.cluster import client_scope
    from seisgrid.ghf.features import build_features
    from seisgrid.ghf.heatflow import build_heatflow

    features, heatflow = args.features or str(folder / "features.zarr"), args.heatflow or str(folder / "heatflow.zarr")
    t0 = time.perf_counter()
    if not args.heatflow:
        log(f"building the heat-flow grid {heatflow} …")
        build_heatflow(heatflow)
    if not args.features:
        log(f"building the feature grid {features} (kriging; several minutes) …")
        with client_scope("local", lazy=True, quiet=True, dashboard_address=":0") as client:
            build_features(features, client=client, progress=False)
    return features, heatflow, f"built in {time.perf_counter() - t0:.0f} s"


def _warm(dask_worker=None):
    import torch  # noqa: F401

    import seisgrid.ghf.bnn  # noqa: F401
    return True


def one_iteration(problem, args, particles: int, seed: int, client) -> dict:
    from seisgrid.ghf import pso

    t0 = time.perf_counter()
    run = pso.particle_swarm(problem["objective"], problem["bounds"], n_particles=particles, iterations=1,
                             c1=2.0, c2=2.0, seed=seed, client=client, progress=False, objective_args=args,
                             cost_hint=problem["cost_hint"])
    wall = time.perf_counter() - t0
    record = run["history"][0]
    return {"wall_s": round(wall, 3), "particle_seconds": record["particle_seconds"],
            "best_rmse": record["best_cost"], "mean_rmse": record["mean_cost"]}


def makespan(times, workers: int) -> float:
    """Wall time of list scheduling ``times`` (in that order) on ``workers`` identical workers."""
    free = [0.0] * workers
    for t in times:
        heapq.heappush(free, heapq.heappop(free) + t)
    return max(free)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 particles, 5 epochs each, 1 repeat (about a minute)")
    parser.add_argument("--features", default=None, help="feature grid store (default: build one)")
    parser.add_argument("--heatflow", default=None, help="heat-flow grid store (default: build one)")
    parser.add_argument("--workdir", default=None, help="folder for built stores (default: a temporary folder)")
    parser.add_argument("--particles", type=int, default=None, help="particles per iteration (default 20; --quick 4)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="epochs cap per particle (default seisgrid.pso.max_epochs; --quick 5)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats, medians reported (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the swarm and the networks")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/pso[-quick].json)")
    args = parser.parse_args(argv)
    particles = args.particles or (4 if args.quick else 20)
    repeats = args.repeats or 1

    import torch

    from seisgrid import config
    from seisgrid.cluster import client_scope
    from seisgrid.ghf import pso
    from seisgrid.ghf.dataset import load_training_set

    max_epochs = args.max_epochs or (5 if args.quick else config.get("pso.max_epochs"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    flags = (" --quick" if args.quick else "") + "".join(
        f" --{k} {v}" for k, v in (("particles", args.particles), ("max-epochs", args.max_epochs),
                                    ("repeats", args.repeats)) if v is not None)

    with common.work_folder(args.workdir, "seisgrid-pso-bench-") as folder:
        features, heatflow, found = stores(args, folder)
        data = load_training_set(features, heatflow)
        problem = pso.ghf_problem(data, val_fraction=0.2, seed=args.seed, max_epochs=max_epochs)
        log(f"{len(data)} training cells ({problem['n_train']} train / {problem['n_validation']} validation), "
            f"{len(data.names)} features; {particles} particles, max_epochs {problem['fixed']['max_epochs']}; "
            f"device {device}")
        rng = np.random.default_rng(args.seed)
        unit = problem["bounds"][0] + rng.random((particles, len(problem["space"])))  # the swarm's first positions
        hyperparameters = [pso.to_hyperparameters(u, problem["space"]) for u in unit]
        hints = [problem["cost_hint"](u) for u in unit]

        raw = {"1": [], "2": []}
        checks, loads = [], []
        with client_scope("local", quiet=True, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c1, \
                client_scope("local", quiet=True, n_workers=2, threads_per_worker=1, dashboard_address=":0") as c2:
            clients = {"1": c1, "2": c2}
            scattered = {}
            for key, client in clients.items():
                client.run(_warm)
                scattered[key] = tuple(client.scatter([a], broadcast=True, hash=False)[0] for a in problem["args"])
            for r in range(repeats):
                checks.append(common.cpu_scaling(2))
                loads.append(load_average())
                for key, client in clients.items():
                    out = one_iteration(problem, scattered[key], particles, args.seed, client)
                    raw[key].append(out)
                    log(f"[{r + 1}/{repeats}] {key} worker(s): {out['wall_s']:7.2f} s per iteration; particles "
                        f"{min(out['particle_seconds']):.1f}–{max(out['particle_seconds']):.1f} s, best validation "
                        f"RMSE {out['best_rmse']:.2f}")
    busy = busy_machine(checks, loads, "so the seconds are pessimistic and the efficiency may be low")

    t1 = median([o["wall_s"] for o in raw["1"]])
    t2 = median([o["wall_s"] for o in raw["2"]])
    efficiency = round(t1 / (2.0 * t2), 4)
    # per-particle times from the 1-worker runs (no other training competes for the core there)
    per_particle = np.median(np.array([o["particle_seconds"] for o in raw["1"]]), axis=0)
    order_lpt = sorted(range(particles), key=lambda i: -hints[i])
    total, longest = float(per_particle.sum()), float(per_particle.max())
    best_2 = max(total / 2.0, longest)
    imbalance = {
        "sum_particle_s": round(total, 3), "longest_particle_s": round(longest, 3),
        "best_possible_2_workers_s": round(best_2, 3),
        "best_possible_efficiency": round(total / (2.0 * best_2), 4),
        "simulated_2_workers_in_particle_order_s": round(makespan(per_particle, 2), 3),
        "simulated_2_workers_longest_first_by_hint_s": round(makespan(per_particle[order_lpt], 2), 3),
        "simulated_2_workers_longest_first_by_measured_s": round(makespan(np.sort(per_particle)[::-1], 2), 3),
        "hint_time_spearman": round(float(_spearman(hints, per_particle)), 3),
        "overhead_1_worker_s": round(t1 - total, 3),
    }
    particles_table = [{"hyperparameters": hp, "hint": round(h, 2), "seconds": round(float(s), 3)}
                       for hp, h, s in zip(hyperparameters, hints, per_particle, strict=True)]
    log(f"1 worker {t1:.2f} s, 2 workers {t2:.2f} s per iteration; efficiency {efficiency:.3f}; per particle "
        f"{per_particle.min():.1f}–{per_particle.max():.1f} s (median {statistics.median(per_particle):.1f}); "
        f"the imbalance allows at best {imbalance['best_possible_efficiency']:.3f}")
    result = {
        "metric": "pso_seconds_per_iteration", "value": t2, "unit": "s", "goal": GOAL_SECONDS,
        "goal_meaning": f"seconds for one PSO iteration ({particles} particles, each training the network on one "
                        "train/validation split of the real 0.5° grid) on 2 workers ≤ 30; parallel efficiency "
                        "t1 / (2·t2) ≥ 0.8",
        "goal_ok": t2 <= GOAL_SECONDS,
        "baseline": t1, "ratio": round(t1 / t2, 4), "ratio_meaning": "1-worker seconds ÷ 2-worker seconds (speed-up)",
        "efficiency": efficiency, "efficiency_goal": GOAL_EFFICIENCY, "efficiency_ok": efficiency >= GOAL_EFFICIENCY,
        "workers_1_s": t1, "workers_2_s": t2, "device": device, "gpu": gpu,
        "particles": particles, "max_epochs": problem["fixed"]["max_epochs"], "patience": problem["fixed"]["patience"],
        "training_cells": len(data), "n_train": problem["n_train"], "n_validation": problem["n_validation"],
        "features": list(data.names), "stores": {"features": str(features), "heatflow": str(heatflow), "found": found},
        "particle_seconds": {"min": round(float(per_particle.min()), 3),
                             "median": round(float(statistics.median(per_particle)), 3),
                             "max": round(float(per_particle.max()), 3), "sum": round(total, 3)},
        "imbalance": imbalance, "per_particle": particles_table,
        "efficiency_per_repeat": [round(a["wall_s"] / (2.0 * b["wall_s"]), 4)
                                  for a, b in zip(raw["1"], raw["2"], strict=True)],
        "repeats": repeats, "quick": args.quick, "busy": busy,
        "raw": {"runs": raw, "cpu_scaling": checks, "load_average": loads},
        **provenance("pso", flags + " --features F --heatflow H", VERSIONS, {"gpu": gpu}),
    }
    log(f"{t2:.2f} s per iteration on 2 workers (goal ≤ {GOAL_SECONDS:g}); efficiency {efficiency:.3f} "
        f"(goal ≥ {GOAL_EFFICIENCY})")
    write_result(result, "pso", args.quick, args.output)
    return 0


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(ra) > 1 else float("nan")


if __name__ == "__main__":
    sys.exit(main())
