"""Particle swarm optimisation of the network's hyperparameters, one Dask future per particle.

How a swarm runs
----------------
- **Global-best PSO** (pyswarms' ``GlobalBestPSO`` update): every iteration evaluates all particles, updates
  the personal bests (:func:`pyswarms.backend.operators.compute_pbest`) and the swarm's best
  (:class:`pyswarms.backend.topology.Star`), then moves the particles::

      v ← w·v + c1·r1·(pbest − x) + c2·r2·(gbest − x),   x ← clip(x + v, lower, upper)

  with r1, r2 ~ U(0, 1) per particle and dimension, and the inertia ``w`` falling linearly from
  ``w_start`` (first iteration) to ``w_end`` (last), 0.9 → 0.4 in the study.
- **Own loop, not pyswarms' optimisers**: pyswarms evaluates a swarm in one process or with a
  ``multiprocessing`` pool (which hangs in practice); here each particle's evaluation is one
  ``client.submit`` task, so a swarm spreads over every worker of a Dask cluster, and results are gathered
  per iteration. ``client=None`` evaluates the particles one after the other in this process.
- **Own random numbers**: pyswarms' generators and ``compute_velocity`` draw from NumPy's global random
  state, which a swarm can neither own nor checkpoint. The velocity and position update (a few lines) is
  therefore written here with a seeded :class:`numpy.random.Generator`, whose state is saved with the
  swarm; the update is the same formula as ``pyswarms.backend.operators.compute_velocity`` (a test checks
  it against pyswarms on the same r1, r2).
- **Bounds**: positions are clipped to the box (pyswarms' ``nearest`` strategy, not ``GlobalBestPSO``'s
  default ``periodic``, which would wrap a learning rate at the top of its range to the bottom), and
  velocities are clamped to ``velocity_clamp`` × the box size per dimension.
- **Checkpoints**: after every iteration the whole state (positions, velocities, personal and global
  bests, the generator's state, the history and the settings) is written as JSON (local path or
  ``s3://`` URL, atomic). A rerun with the same settings continues from it and ends in exactly the state
  an uninterrupted run reaches; other settings are refused.

The heat-flow search
--------------------
:func:`search` scores a particle by the validation RMSE (mW m⁻²) of a network trained with its
hyperparameters (:func:`seisgrid.ghf.bnn.validation_rmse`) on one seeded random train/validation split of
the training cells, and runs the study's four swarm configurations (:data:`STUDY_CONFIGURATIONS`). The
swarm lives in the unit hypercube; :func:`to_hyperparameters` maps a point to the eight hyperparameters
(integers rounded, learning rate, KL weight and L2 on a log scale).

pyswarms' ``Reporter`` calls :func:`logging.config.dictConfig` when it is imported or instantiated: it
puts INFO handlers on the root logger and opens ``report.log`` in the working directory. The pyswarms
parts used here are imported and instantiated inside :func:`_logging_untouched`, which suppresses that.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import logging.config
import math
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from seisgrid import config, storage
from seisgrid.cluster import resolve_client, run_tasks, share
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.figures import new_figure, save_png

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Mapping, Sequence

    import xarray as xr
    from distributed import Client
    from numpy.typing import ArrayLike

    from seisgrid.cluster import LazyClient
    from seisgrid.ghf.dataset import TrainingSet

logger = logging.getLogger("seisgrid")


@contextlib.contextmanager
def _logging_untouched():
    """Run pyswarms code without letting it reconfigure logging (see the module docstring)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    original = logging.config.dictConfig
    logging.config.dictConfig = lambda *args, **kwargs: None
    try:
        yield
    finally:
        logging.config.dictConfig = original
        root.handlers[:] = handlers
        root.setLevel(level)


with _logging_untouched():
    from pyswarms.backend.operators import compute_pbest
    from pyswarms.backend.swarms import Swarm
    from pyswarms.backend.topology import Star

    _STAR = Star()

#: The study's four swarm configurations: (c1, c2, m) = cognitive and social coefficients, swarm size.
STUDY_CONFIGURATIONS = ((2.0, 2.0, 20), (2.0, 2.0, 50), (2.8, 1.0, 20), (2.8, 1.0, 50))

CHECKPOINT_VERSION = 1



# ------------------------------------------------------------------------------------------- the swarm


def inertia_schedule(iterations: int, w_start: float = 0.9, w_end: float = 0.4) -> np.ndarray:
    """Inertia weight of each iteration: linear from ``w_start`` (first) to ``w_end`` (last).

    Parameters
    ----------
    iterations : int
        Number of iterations (≥ 1); one iteration gives ``[w_start]``.
    w_start, w_end : float
        First and last inertia weights.

    Returns
    -------
    numpy.ndarray
        (iterations,) weights.
    """
    if iterations < 1:
        raise ConfigError(f"PSO iterations = {iterations}: expected at least 1")
    if iterations == 1:
        return np.array([float(w_start)])
    return w_start + (w_end - w_start) * np.arange(iterations) / (iterations - 1)


def velocity_update(velocity: np.ndarray, position: np.ndarray, pbest_pos: np.ndarray, best_pos: np.ndarray,
                    w: float, c1: float, c2: float, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """The global-best velocity update ``w·v + c1·r1·(pbest − x) + c2·r2·(gbest − x)`` (unclamped).

    Parameters
    ----------
    velocity, position, pbest_pos : numpy.ndarray
        (n, d) velocities, positions and personal-best positions.
    best_pos : numpy.ndarray
        (d,) the swarm's best position.
    w, c1, c2 : float
        Inertia, cognitive and social coefficients.
    r1, r2 : numpy.ndarray
        (n, d) uniform random numbers in [0, 1).

    Returns
    -------
    numpy.ndarray
        (n, d) new velocities.
    """
    return w * velocity + c1 * r1 * (pbest_pos - position) + c2 * r2 * (best_pos - position)


def _bounds(bounds):
    try:
        lower, upper = (np.atleast_1d(np.asarray(b, dtype=float)) for b in bounds)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"PSO bounds {bounds!r}: expected (lower, upper) sequences of numbers") from exc
    if lower.shape != upper.shape or lower.ndim != 1 or not np.all(upper > lower):
        raise ConfigError(f"PSO bounds {bounds!r}: expected (lower, upper) of equal length with upper > lower")
    return lower, upper


def _jsonable(value):
    return json.loads(json.dumps(value))


def _state_dict(swarm: Swarm, rng: np.random.Generator, iteration: int, history: list, settings: dict) -> dict:
    return {
        "version": CHECKPOINT_VERSION,
        "config": settings,
        "iteration": iteration,
        "position": swarm.position.tolist(),
        "velocity": swarm.velocity.tolist(),
        "pbest_pos": swarm.pbest_pos.tolist(),
        "pbest_cost": swarm.pbest_cost.tolist(),
        "best_pos": np.asarray(swarm.best_pos).tolist(),
        "best_cost": float(swarm.best_cost),
        "rng_state": rng.bit_generator.state,
        "history": history,
    }


def _write_checkpoint(url: str, state: dict) -> None:
    # Python's json writes floats with repr(), so every float64 reads back bit for bit (inf as Infinity).
    storage.write_bytes(url, json.dumps(state).encode())


def _read_checkpoint(url: str) -> dict | None:
    fs, path = storage.filesystem(url)
    if not fs.exists(path):
        return None
    try:
        state = storage.read_json(url)
    except (ValueError, OSError) as exc:
        raise SeisgridError(f"PSO checkpoint {url}: unreadable ({exc}); remove it to start the swarm afresh") from exc
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise SeisgridError(f"PSO checkpoint {url}: not a version-{CHECKPOINT_VERSION} swarm checkpoint; "
                            "remove it to start the swarm afresh")
    return state


def _config_differences(saved: dict, wanted: dict) -> list[str]:
    keys = sorted(set(saved) | set(wanted))
    return [f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} here" for k in keys if saved.get(k) != wanted.get(k)]


def particle_swarm(objective: Callable[..., float], bounds: tuple[ArrayLike, ArrayLike], *, n_particles: int,
                   iterations: int, c1: float, c2: float, w_start: float = 0.9, w_end: float = 0.4, seed: int = 0,
                   client: Client | LazyClient | None = None, checkpoint: str | None = None, progress: bool = True,
                   objective_args: Iterable = (), callback: Callable[[dict], object] | None = None,
                   velocity_clamp: float | None = 0.5, context: dict | None = None,
                   cost_hint: Callable[[np.ndarray], float] | None = None, desc: str | None = None) -> dict:
    """Minimise ``objective`` over a box with a global-best particle swarm, one Dask task per particle.

    Parameters
    ----------
    objective : callable
        ``objective(position, *objective_args) -> float``; ``position`` is a (d,) float array. A top-level
        (picklable) function for a cluster. NaN costs count as +inf.
    bounds : (array_like, array_like)
        Lower and upper corners of the search box, (d,) each.
    n_particles : int
        Swarm size (the study's m).
    iterations : int
        Iterations; each evaluates every particle once.
    c1, c2 : float
        Cognitive (personal best) and social (swarm best) coefficients.
    w_start, w_end : float
        Inertia weight of the first and of the last iteration (linear in between).
    seed : int
        Seed of the swarm's generator (initial positions and velocities, r1 and r2).
    client : distributed.Client, LazyClient or None
        Cluster the particles are evaluated on (``client.submit``); None: in this process, in turn.
    checkpoint : str, optional
        JSON file (path or URL) written after every iteration. When it exists and holds a swarm with the
        same settings, the run continues from it; other settings raise :class:`ConfigError`.
    progress : bool
        Progress bar over the evaluations (stderr); the cluster layer prints the dashboard link
        when it starts or connects to a cluster (:func:`seisgrid.cluster.get_client`).
    objective_args : tuple
        Further arguments of ``objective``; on a cluster each is sent to the cluster once (Futures
        are passed on as they are).
    callback : callable, optional
        ``callback(record)`` after each iteration has been checkpointed, with the iteration's history
        record plus ``best_position``. An exception it raises stops the run (a rerun resumes).
    velocity_clamp : float or None
        Largest velocity component as a fraction of the box size per dimension; None: no clamp.
    context : dict, optional
        JSON-able settings that define the objective (data, fixed parameters); part of the checkpoint's
        settings, so a checkpoint of another objective is refused.
    cost_hint : callable, optional
        ``cost_hint(position) -> float``, the expected relative cost of an evaluation: on a cluster the
        particles are submitted (and prioritised) longest first, so that long ones do not start last.
    desc : str, optional
        Progress bar label.

    Returns
    -------
    dict
        ``best_position`` (list), ``best_cost``, ``history`` (one record per iteration: ``iteration``
        (1-based), ``inertia``, ``best_cost`` (the swarm's best so far), ``min_cost``, ``mean_cost``
        (finite costs of that iteration), ``seconds`` (wall), ``particle_seconds`` (per particle, in the
        worker)), ``position``, ``velocity``, ``pbest_pos``, ``pbest_cost`` (final state), ``rng_state``,
        ``iteration`` (iterations done), ``resumed_from`` (iterations found in the checkpoint),
        ``evaluations`` (this call), ``config`` and ``checkpoint``.
    """
    lower, upper = _bounds(bounds)
    n_particles, iterations = int(n_particles), int(iterations)
    if n_particles < 1:
        raise ConfigError(f"PSO particles = {n_particles}: expected at least 1")
    weights = inertia_schedule(iterations, w_start, w_end)
    dims = lower.size
    settings = _jsonable({
        "n_particles": n_particles, "iterations": iterations, "dimensions": dims, "c1": float(c1), "c2": float(c2),
        "w_start": float(w_start), "w_end": float(w_end), "seed": int(seed),
        "velocity_clamp": None if velocity_clamp is None else float(velocity_clamp),
        "lower": lower.tolist(), "upper": upper.tolist(), "context": context or {},
    })
    span = upper - lower
    vmax = None if velocity_clamp is None else float(velocity_clamp) * span

    rng = np.random.default_rng(int(seed))
    saved = _read_checkpoint(checkpoint) if checkpoint else None
    if saved is not None:
        differences = _config_differences(saved["config"], settings)
        if differences:
            raise ConfigError(f"PSO checkpoint {checkpoint} holds a different swarm ({'; '.join(differences)}); "
                              "pass the same settings to resume it, or remove it (or choose another output) to "
                              "start afresh")
        rng.bit_generator.state = saved["rng_state"]
        swarm = Swarm(position=np.asarray(saved["position"], float), velocity=np.asarray(saved["velocity"], float),
                      pbest_pos=np.asarray(saved["pbest_pos"], float),
                      pbest_cost=np.asarray(saved["pbest_cost"], float),
                      best_pos=np.asarray(saved["best_pos"], float), best_cost=float(saved["best_cost"]))
        start, history = int(saved["iteration"]), list(saved["history"])
        logger.info("PSO: resuming %s after iteration %d of %d", checkpoint, start, iterations)
    else:
        position = lower + rng.random((n_particles, dims)) * span
        velocity = (rng.random((n_particles, dims)) * 2.0 - 1.0) * (vmax if vmax is not None else span)
        swarm = Swarm(position=position, velocity=velocity, pbest_pos=position.copy(),
                      pbest_cost=np.full(n_particles, np.inf), best_pos=position[0].copy(), best_cost=np.inf)
        start, history = 0, []

    evaluations = 0
    if start < iterations:
        from tqdm.auto import tqdm

        client = resolve_client(client)
        args = tuple(objective_args)
        if client is not None:
            from distributed import Future

            # pure=False (in share): a content-hashed key shared with an earlier swarm's (released) copy can
            # be deleted on the workers under this swarm's tasks ("lost dependencies").
            args = tuple(a if isinstance(a, Future) else share(client, a) for a in args)
        label = desc or f"PSO c1={c1:g} c2={c2:g} m={n_particles}"
        bar = tqdm(total=(iterations - start) * n_particles, desc=label, unit="particle", file=sys.stderr,
                   disable=not progress)
        try:
            for it in range(start, iterations):
                t0 = time.perf_counter()
                costs, seconds = _evaluate_swarm(objective, swarm.position, args, client, bar, cost_hint)
                evaluations += n_particles
                costs = np.where(np.isnan(costs), np.inf, costs)
                if not np.all(np.isfinite(costs)):
                    logger.warning("PSO iteration %d: %d of %d particles had no finite cost", it + 1,
                                   int((~np.isfinite(costs)).sum()), n_particles)
                swarm.current_cost = costs
                swarm.pbest_pos, swarm.pbest_cost = compute_pbest(swarm)
                swarm.best_pos, swarm.best_cost = _STAR.compute_gbest(swarm)
                swarm.best_pos = np.array(swarm.best_pos, dtype=float)
                swarm.best_cost = float(swarm.best_cost)

                r1, r2 = rng.random((2, n_particles, dims))
                velocity = velocity_update(swarm.velocity, swarm.position, swarm.pbest_pos, swarm.best_pos,
                                           weights[it], c1, c2, r1, r2)
                if vmax is not None:
                    velocity = np.clip(velocity, -vmax, vmax)
                swarm.velocity = velocity
                swarm.position = np.clip(swarm.position + velocity, lower, upper)

                finite = costs[np.isfinite(costs)]
                record = {"iteration": it + 1, "inertia": float(weights[it]), "best_cost": swarm.best_cost,
                          "min_cost": float(finite.min()) if finite.size else math.inf,
                          "mean_cost": float(finite.mean()) if finite.size else math.inf,
                          "seconds": round(time.perf_counter() - t0, 4),
                          "particle_seconds": [round(float(s), 4) for s in seconds]}
                history.append(record)
                if checkpoint:
                    _write_checkpoint(checkpoint, _state_dict(swarm, rng, it + 1, history, settings))
                bar.set_postfix(best=f"{swarm.best_cost:.4g}")
                logger.debug("PSO %s iteration %d: best %.5g, mean %.5g", label, it + 1, record["best_cost"],
                             record["mean_cost"])
                if callback is not None:
                    callback({**record, "best_position": swarm.best_pos.tolist()})
        finally:
            bar.close()

    state = _state_dict(swarm, rng, len(history), history, settings)
    return {
        "best_position": state["best_pos"], "best_cost": state["best_cost"], "history": history,
        "position": state["position"], "velocity": state["velocity"], "pbest_pos": state["pbest_pos"],
        "pbest_cost": state["pbest_cost"], "rng_state": state["rng_state"], "iteration": state["iteration"],
        "resumed_from": start, "evaluations": evaluations, "config": settings, "checkpoint": checkpoint,
    }


def _evaluate_particle(position, objective, *args):
    """``(objective(position, *args), seconds)``: the task each particle runs."""
    t0 = time.perf_counter()
    cost = float(objective(position, *args))
    return cost, time.perf_counter() - t0


def _evaluate_swarm(objective, positions, args, client, bar, cost_hint):
    """Costs and evaluation seconds of every particle (in particle order), longest expected first."""
    priorities = None if cost_hint is None else [float(cost_hint(p)) for p in positions]
    results = run_tasks(client, _evaluate_particle, list(positions), (objective, *args), priorities=priorities,
                        bar=bar)
    costs, seconds = (np.array(column, dtype=float) for column in zip(*results, strict=True))
    return costs, seconds


# ------------------------------------------------------------------------- hyperparameters ↔ unit cube


def _search_space(space=None) -> dict:
    if space is not None:
        return dict(space)
    from seisgrid.ghf.bnn import SEARCH_SPACE

    return dict(SEARCH_SPACE)


def to_hyperparameters(unit: ArrayLike, space: Mapping[str, tuple[float, float, str]] | None = None) -> dict:
    """The hyperparameters at a point of the unit hypercube.

    Parameters
    ----------
    unit : array_like
        (d,) coordinates in [0, 1] (clipped), one per entry of ``space`` in its order.
    space : dict, optional
        ``{name: (low, high, kind)}`` with kind ``"int"`` (each integer low…high gets an equal share of
        [0, 1]), ``"log"`` (log-uniform) or ``"linear"``; default :data:`seisgrid.ghf.bnn.SEARCH_SPACE`.

    Returns
    -------
    dict
        ``{name: value}``, ints for ``"int"`` entries, floats otherwise, always within [low, high].
    """
    space = _search_space(space)
    position: np.ndarray = np.clip(np.asarray(unit, dtype=float).ravel(), 0.0, 1.0)
    if position.size != len(space):
        raise ConfigError(f"PSO position has {position.size} coordinates; the search space has {len(space)} "
                          f"({list(space)})")
    out: dict[str, int | float] = {}
    for u, (name, (low, high, kind)) in zip(position, space.items(), strict=True):
        if kind == "int":
            low, high = int(low), int(high)
            out[name] = int(min(high, low + math.floor(u * (high - low + 1))))
        elif kind == "log":
            out[name] = float(min(high, max(low, math.exp(math.log(low) + u * (math.log(high) - math.log(low))))))
        elif kind == "linear":
            out[name] = float(min(high, max(low, low + u * (high - low))))
        else:
            raise ConfigError(f"search space entry {name}: kind {kind!r}; expected int, log or linear")
    return out


def from_hyperparameters(params: Mapping[str, float],
                         space: Mapping[str, tuple[float, float, str]] | None = None) -> np.ndarray:
    """The point of the unit hypercube for some hyperparameters (inverse of :func:`to_hyperparameters`).

    Integers map to the middle of their share of [0, 1], so ``to_hyperparameters`` gives them back.

    Parameters
    ----------
    params : dict
        ``{name: value}`` with at least every name of ``space``.
    space : dict, optional
        As :func:`to_hyperparameters`.

    Returns
    -------
    numpy.ndarray
        (d,) coordinates in [0, 1].
    """
    space = _search_space(space)
    unit = []
    for name, (low, high, kind) in space.items():
        if name not in params:
            raise ConfigError(f"hyperparameter {name} missing (have {sorted(params)})")
        value = float(params[name])
        if kind == "int":
            u = (round(value) - int(low) + 0.5) / (int(high) - int(low) + 1)
        elif kind == "log":
            u = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            u = (value - low) / (high - low)
        unit.append(min(1.0, max(0.0, u)))
    return np.array(unit)


def _ghf_cost(unit, X_train, y_train, X_val, y_val, space, fixed) -> float:
    """Validation RMSE (mW m⁻²) of a network trained with the hyperparameters at ``unit``."""
    from seisgrid.ghf.bnn import Hyperparameters, validation_rmse

    params = Hyperparameters.from_dict({**fixed, **to_hyperparameters(unit, space)})
    return validation_rmse(params, X_train, y_train, X_val, y_val, threads=1)


def _ghf_cost_hint(space, n_train):
    """Relative training time per epoch of the network at a unit point: optimiser steps × layer work."""

    def hint(unit):
        p = to_hyperparameters(unit, space)
        steps = n_train / max(1, int(p.get("batch_size", 64)))
        return steps * int(p.get("hidden_layers", 3)) * (1.0 + int(p.get("neurons", 64)) / 64.0)

    return hint


# ------------------------------------------------------------------------------------- the GHF search


def parse_configurations(configurations: Iterable[str | Sequence[float]]) -> list[tuple[float, float, int]]:
    """Swarm configurations as ``[(c1, c2, m), …]`` from lists/tuples or ``"C1,C2,M"`` strings.

    Parameters
    ----------
    configurations : iterable
        Entries such as ``[2.0, 2.0, 20]`` or ``"2,2,20"`` (the command line's form).

    Returns
    -------
    list of tuple
    """
    out = []
    for entry in configurations:
        items = entry.replace(":", ",").split(",") if isinstance(entry, str) else list(entry)
        try:
            c1, c2, m = (float(items[0]), float(items[1]), int(float(items[2])))
            if len(items) != 3 or m < 1 or c1 < 0 or c2 < 0:
                raise ValueError
        except (ValueError, IndexError, TypeError):
            raise ConfigError(f"PSO configuration {entry!r}: expected c1, c2, m (e.g. 2,2,20) with m ≥ 1") from None
        out.append((c1, c2, m))
    if not out:
        raise ConfigError("PSO configurations: none given; expected e.g. [[2, 2, 20]]")
    return out


def _fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def split_train_validation(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One seeded random split of ``n`` rows: ``(train_index, validation_index)``, both sorted.

    Parameters
    ----------
    n : int
        Rows.
    val_fraction : float
        Share held out for validation, in (0, 1); at least one row each side.
    seed : int
        Seed of the permutation.
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction = {val_fraction}: expected a share between 0 and 1")
    perm = np.random.default_rng(int(seed)).permutation(n)
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def plot_convergence(configurations: list[dict], out_png: str, dpi: int | None = None) -> str:
    """The study's Fig. 4: best validation RMSE against iteration, one line per swarm configuration.

    Parameters
    ----------
    configurations : list of dict
        Entries of :func:`search`'s report (``c1``, ``c2``, ``particles``, ``history``).
    out_png : str
        PNG path or URL.
    dpi : int, optional
        Default ``seisgrid.maps.dpi``.

    Returns
    -------
    str
        ``out_png``.
    """
    fig = new_figure((6.5, 4.2))
    ax = fig.add_subplot()
    for c in configurations:
        its = [h["iteration"] for h in c["history"]]
        best = [h["best_rmse"] if h["best_rmse"] is not None else np.nan for h in c["history"]]
        ax.plot(its, best, marker="o" if len(its) < 15 else None, ms=3,
                label=f"c1={c['c1']:g}, c2={c['c2']:g}, m={c['particles']}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("best validation RMSE (mW m$^{-2}$)")
    ax.set_title("PSO convergence")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return save_png(fig, out_png, dpi)


def _swarm_name(c1, c2, m) -> str:
    return f"swarm_c1-{c1:g}_c2-{c2:g}_m-{m}.json"


def ghf_problem(data: TrainingSet, *, val_fraction: float = 0.2, seed: int = 0, max_epochs: int | None = None) -> dict:
    """The heat-flow objective of a swarm: a particle's cost is the validation RMSE of its network.

    Parameters
    ----------
    data : seisgrid.ghf.dataset.TrainingSet
        Training cells.
    val_fraction : float
        Share held out by :func:`split_train_validation` (one seeded random split).
    seed : int
        Seed of the split and of every particle's network (initialisation, shuffling, dropout).
    max_epochs : int, optional
        Cap on each particle's training epochs; None: ``seisgrid.bnn.max_epochs``.

    Returns
    -------
    dict
        ``objective`` (top-level function of a unit-cube point), ``args`` (its further arguments: training
        and validation arrays, the search space, the fixed hyperparameters), ``bounds`` (the unit cube),
        ``cost_hint`` (relative training time per epoch of a point, for longest-first submission),
        ``space``, ``fixed``, ``context`` (what a checkpoint must match: data fingerprint, features, space,
        fixed settings), ``n_train``, ``n_validation``.
    """
    from seisgrid.ghf.bnn import Hyperparameters

    space = _search_space()
    X = data.features.to_numpy(dtype=np.float64)
    y = np.asarray(data.target, dtype=np.float64)
    train, val = split_train_validation(len(y), val_fraction, seed)
    X_train, y_train, X_val, y_val = X[train], y[train], X[val], y[val]
    logger.info("PSO: %d training and %d validation cells (random split, seed %d), %d features",
                len(train), len(val), seed, X.shape[1])
    # Resolved here, not in the workers, whose configuration may differ from this process's.
    defaults = Hyperparameters.from_config().to_dict()
    fixed = {"max_epochs": int(defaults["max_epochs"] if max_epochs is None else max_epochs),
             "patience": int(defaults["patience"]), "seed": int(seed)}
    context = {"data": _fingerprint(X_train, y_train, X_val, y_val), "variables": list(data.names),
               "space": {k: list(v) for k, v in space.items()}, "fixed": fixed}
    return {"objective": _ghf_cost, "args": (X_train, y_train, X_val, y_val, space, fixed),
            "bounds": (np.zeros(len(space)), np.ones(len(space))), "cost_hint": _ghf_cost_hint(space, len(train)),
            "space": space, "fixed": fixed, "context": context, "n_train": len(train),
            "n_validation": len(val)}


def search(features_store: str | xr.Dataset, heatflow_store: str | xr.Dataset, out: str | os.PathLike[str], *,
           configurations: Iterable[str | Sequence[float]] | None = None, iterations: int | None = None,
           particles: int | None = None, client: Client | LazyClient | None = None,
           val_fraction: float | None = None, seed: int | None = None, variables: Sequence[str] | None = None,
           regional_km: Sequence[float] | str | None = None, max_epochs: int | None = None,
           w_start: float | None = None, w_end: float | None = None, progress: bool = True) -> dict:
    """PSO search of the network's hyperparameters (``seisgrid ghf search``), the study's four swarms.

    Every particle is scored by the validation RMSE of a network trained with its hyperparameters
    (:func:`seisgrid.ghf.bnn.validation_rmse`) on **one seeded random split** of the training cells
    (``val_fraction`` held out; the same split for every particle and configuration). All particles of a
    search train from the same weight seed, so they differ by their hyperparameters only. Each
    configuration runs :func:`particle_swarm` in the unit hypercube of :data:`seisgrid.ghf.bnn.SEARCH_SPACE`
    with a checkpoint under ``out``: an interrupted search resumes where it stopped.

    Parameters
    ----------
    features_store, heatflow_store : str or xarray.Dataset
        Feature and heat-flow grids (stores or open Datasets), as :func:`seisgrid.ghf.dataset.load_training_set`.
    out : str
        Folder (path or URL) for ``search.json``, ``convergence.png`` and one checkpoint per configuration.
    configurations : list, optional
        ``(c1, c2, m)`` per swarm (or ``"C1,C2,M"`` strings); default ``seisgrid.pso.configurations``
        (the study's four).
    iterations : int, optional
        Iterations per swarm; default ``seisgrid.pso.iterations``.
    particles : int, optional
        Swarm size for every configuration instead of its own m.
    client : distributed.Client, LazyClient or None
        Cluster for the particles; None: this process.
    val_fraction : float, optional
        Share of the training cells held out; default ``seisgrid.pso.val_fraction`` (0.2).
    seed : int, optional
        Seed of the split, the swarms and the networks' initialisation; default ``seisgrid.pso.seed``.
    variables : list of str, optional
        Features; default the VIF selection.
    regional_km : list of float or str, optional
        Radii of regional means, as in :func:`seisgrid.ghf.dataset.load_training_set`.
    max_epochs : int, optional
        Cap on each particle's training epochs; default ``seisgrid.pso.max_epochs`` (null there: the
        network's default).
    w_start, w_end : float, optional
        Inertia of the first and last iteration; default ``seisgrid.pso.w_start`` / ``w_end`` (0.9, 0.4).
    progress : bool
        Progress bars (stderr).

    Returns
    -------
    dict
        ``best`` (the eight searched hyperparameters of the lowest validation RMSE), ``best_rmse``
        (mW m⁻²), ``best_configuration``, ``configurations`` (per swarm: ``c1``, ``c2``, ``particles``,
        ``best_rmse``, ``best``, ``history`` with ``iteration``, ``inertia``, ``best_rmse``, ``mean_rmse``,
        ``seconds``; ``checkpoint``, ``resumed_from``), ``fixed`` (non-searched settings of every
        particle), ``split``, ``variables``, ``n_train``, ``n_validation``, ``iterations``, ``figure``,
        ``json``, ``out`` and ``reference`` (the study's figures). Also written to ``out/search.json``.
    """
    from seisgrid.ghf.dataset import load_training_set

    configurations = parse_configurations(config.get("pso.configurations", override=configurations)
                                          or STUDY_CONFIGURATIONS)
    iterations = int(config.get("pso.iterations", override=iterations))
    particles = config.get("pso.particles", override=particles)
    val_fraction = float(config.get("pso.val_fraction", override=val_fraction))
    seed = int(config.get("pso.seed", override=seed))
    max_epochs = config.get("pso.max_epochs", override=max_epochs)
    w_start = float(config.get("pso.w_start", 0.9, override=w_start))
    w_end = float(config.get("pso.w_end", 0.4, override=w_end))

    data = load_training_set(features_store, heatflow_store, variables, regional_km)
    problem = ghf_problem(data, val_fraction=val_fraction, seed=seed, max_epochs=max_epochs)
    client = resolve_client(client)
    args = problem["args"]
    if client is not None:  # once for all configurations
        args = tuple(share(client, a) for a in args)

    space, fixed, context = problem["space"], problem["fixed"], problem["context"]
    results = []
    for c1, c2, m in configurations:
        n = int(particles) if particles else int(m)
        checkpoint = storage.join(str(out), _swarm_name(c1, c2, n))
        run = particle_swarm(_ghf_cost, problem["bounds"], n_particles=n, iterations=iterations, c1=c1, c2=c2,
                             w_start=w_start, w_end=w_end, seed=seed, client=client, checkpoint=checkpoint,
                             progress=progress, objective_args=args, context=context, cost_hint=problem["cost_hint"])
        history = [{"iteration": h["iteration"], "inertia": h["inertia"], "best_rmse": h["best_cost"],
                    "min_rmse": h["min_cost"], "mean_rmse": h["mean_cost"], "seconds": h["seconds"],
                    "particle_seconds": h["particle_seconds"]} for h in run["history"]]
        results.append({"c1": c1, "c2": c2, "particles": n, "best_rmse": run["best_cost"],
                        "best": to_hyperparameters(run["best_position"], space),
                        "best_position": run["best_position"], "history": history, "checkpoint": checkpoint,
                        "resumed_from": run["resumed_from"]})
        logger.info("PSO c1=%g c2=%g m=%d: best validation RMSE %.3f mW m-2", c1, c2, n, run["best_cost"])

    winner = min(results, key=lambda r: r["best_rmse"])
    figure = plot_convergence(_finite(copy.deepcopy(results)), storage.join(str(out), "convergence.png"))
    json_path = storage.join(str(out), "search.json")
    report = _finite({
        "best": winner["best"], "best_rmse": winner["best_rmse"],
        "best_configuration": {"c1": winner["c1"], "c2": winner["c2"], "particles": winner["particles"]},
        "configurations": results, "fixed": fixed, "search_space": context["space"],
        "split": {"kind": "random", "val_fraction": val_fraction, "seed": seed},
        "variables": list(data.names), "n_train": problem["n_train"], "n_validation": problem["n_validation"],
        "iterations": iterations, "w_start": w_start, "w_end": w_end,
        "figure": figure, "json": json_path, "out": str(out),
        "reference": {"final_validation_rmse": [19.65, 19.94], "iterations": 100,
                      "configurations": [list(c) for c in STUDY_CONFIGURATIONS],
                      "note": "Liu et al. 2026: symmetric coefficients best; differences < 0.3 mW m-2"},
    })
    storage.write_bytes(json_path, (json.dumps(report, indent=1) + "\n").encode())
    return report
