"""Particle swarm (seisgrid.ghf.pso).

The generic swarm on known functions (in process and as Dask futures), checkpoint / resume, the
hyperparameter mapping and the heat-flow search end to end on a tiny grid.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from seisgrid.errors import ConfigError
from seisgrid.ghf import pso

TARGET = np.array([0.3, -0.2, 0.55])


def sphere(x, centre):
    return float(np.sum((np.asarray(x) - centre) ** 2))


def rosenbrock(x):
    return float((1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2)


def _state(result):
    """The swarm's final state without wall-clock times."""
    keep = ("best_position", "best_cost", "position", "velocity", "pbest_pos", "pbest_cost", "rng_state",
            "iteration", "config")
    history = [{k: v for k, v in h.items() if k not in ("seconds", "particle_seconds")} for h in result["history"]]
    return {**{k: result[k] for k in keep}, "history": history}


def test_import_leaves_root_logging_alone(tmp_path):
    code = (
        "import logging, os\n"
        "root = logging.getLogger()\n"
        "before = (list(root.handlers), root.level)\n"
        "import seisgrid.ghf.pso\n"
        "from seisgrid.ghf.pso import _STAR\n"
        "assert (list(root.handlers), root.level) == before, (root.handlers, root.level)\n"
        "assert not logging.getLogger('seisgrid').disabled\n"
        "assert not os.path.exists('report.log'), 'pyswarms opened report.log'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "report.log").exists()


def test_inertia_schedule():
    np.testing.assert_allclose(pso.inertia_schedule(5), [0.9, 0.775, 0.65, 0.525, 0.4])
    np.testing.assert_allclose(pso.inertia_schedule(1), [0.9])
    np.testing.assert_allclose(pso.inertia_schedule(3, 1.0, 0.5), [1.0, 0.75, 0.5])
    with pytest.raises(ConfigError):
        pso.inertia_schedule(0)


def test_history_records_the_inertia_used():
    result = pso.particle_swarm(sphere, ([-1] * 3, [1] * 3), n_particles=4, iterations=4, c1=2, c2=2,
                                objective_args=(TARGET,), progress=False)
    assert [h["inertia"] for h in result["history"]] == pytest.approx([0.9, 0.9 - 0.5 / 3, 0.9 - 1 / 3, 0.4])
    assert [h["iteration"] for h in result["history"]] == [1, 2, 3, 4]
    best = [h["best_cost"] for h in result["history"]]
    assert best == sorted(best, reverse=True)  # the swarm's best never gets worse
    assert all(h["min_cost"] <= h["mean_cost"] for h in result["history"])


def test_velocity_update_is_pyswarms_update():
    with pso._logging_untouched():
        from pyswarms.backend.handlers import VelocityHandler
        from pyswarms.backend.operators import compute_velocity
        from pyswarms.backend.swarms import Swarm

        handler = VelocityHandler(strategy="unmodified")
    rng = np.random.default_rng(5)
    x, v, pbest = rng.random((3, 6, 3))
    best = rng.random(3)
    swarm = Swarm(position=x, velocity=v, pbest_pos=pbest, best_pos=best, options={"c1": 2.8, "c2": 1.0, "w": 0.7})
    np.random.seed(11)
    theirs = compute_velocity(swarm, None, handler)
    np.random.seed(11)
    r1 = np.random.uniform(0, 1, (6, 3))
    r2 = np.random.uniform(0, 1, (6, 3))
    np.testing.assert_allclose(pso.velocity_update(v, x, pbest, best, 0.7, 2.8, 1.0, r1, r2), theirs, rtol=1e-14)


def test_rosenbrock_in_process():
    result = pso.particle_swarm(rosenbrock, ([-2, -2], [2, 2]), n_particles=30, iterations=60, c1=2.0, c2=2.0,
                                seed=0, progress=False)
    assert result["best_cost"] < 1e-2
    np.testing.assert_allclose(result["best_position"], [1.0, 1.0], atol=0.1)
    assert result["evaluations"] == 30 * 60


def test_sphere_on_cluster_equals_in_process(dask_client):
    kwargs = {"n_particles": 12, "iterations": 20, "c1": 2.0, "c2": 2.0, "seed": 3, "objective_args": (TARGET,),
              "progress": False}
    bounds = ([-1] * 3, [1] * 3)
    on_cluster = pso.particle_swarm(sphere, bounds, client=dask_client, **kwargs)
    assert on_cluster["best_cost"] < 1e-3
    np.testing.assert_allclose(on_cluster["best_position"], TARGET, atol=0.03)
    assert all(len(h["particle_seconds"]) == 12 for h in on_cluster["history"])
    in_process = pso.particle_swarm(sphere, bounds, client=None, **kwargs)
    assert _state(on_cluster) == _state(in_process)
    # longest-first submission changes the order of the tasks, not the result
    hinted = pso.particle_swarm(sphere, bounds, client=dask_client, cost_hint=lambda p: float(p[0]), **kwargs)
    assert _state(hinted) == _state(in_process)


def test_positions_stay_in_bounds():
    seen = []
    pso.particle_swarm(lambda x: -float(x.sum()), ([0, 0], [1, 2]), n_particles=8, iterations=6, c1=2.8, c2=1.0,
                       progress=False, callback=seen.append)
    best = np.array([s["best_position"] for s in seen])
    assert np.all(best >= [0, 0]) and np.all(best <= [1, 2])
    np.testing.assert_allclose(best[-1], [1, 2], atol=0.05)  # the corner is the minimum


class _Interrupt:
    def __init__(self, after):
        self.after = after

    def __call__(self, record):
        if record["iteration"] == self.after:
            raise KeyboardInterrupt


def test_resume_after_interruption_gives_the_uninterrupted_state(dask_client, tmp_path):
    kwargs = {"n_particles": 6, "iterations": 6, "c1": 2.8, "c2": 1.0, "seed": 7, "objective_args": (TARGET,),
                  "progress": False, "client": dask_client}
    bounds = ([-1] * 3, [1] * 3)
    whole = pso.particle_swarm(sphere, bounds, checkpoint=str(tmp_path / "whole.json"), **kwargs)
    assert whole["resumed_from"] == 0 and whole["evaluations"] == 36

    checkpoint = str(tmp_path / "swarm.json")
    with pytest.raises(KeyboardInterrupt):
        pso.particle_swarm(sphere, bounds, checkpoint=checkpoint, callback=_Interrupt(3), **kwargs)
    saved = json.loads((tmp_path / "swarm.json").read_text())
    assert saved["iteration"] == 3 and len(saved["history"]) == 3

    resumed = pso.particle_swarm(sphere, bounds, checkpoint=checkpoint, **kwargs)
    assert resumed["resumed_from"] == 3 and resumed["evaluations"] == 18
    assert _state(resumed) == _state(whole)

    again = pso.particle_swarm(sphere, bounds, checkpoint=checkpoint, **kwargs)  # finished: nothing to do
    assert again["evaluations"] == 0 and _state(again) == _state(whole)


def test_checkpoint_of_another_swarm_is_refused(tmp_path):
    checkpoint = str(tmp_path / "swarm.json")
    kwargs = {"n_particles": 4, "iterations": 2, "seed": 1, "objective_args": (TARGET,), "progress": False,
              "checkpoint": checkpoint}
    pso.particle_swarm(sphere, ([-1] * 3, [1] * 3), c1=2.0, c2=2.0, **kwargs)
    with pytest.raises(ConfigError, match=r"different swarm.*c1: 2\.0 there, 2\.8 here"):
        pso.particle_swarm(sphere, ([-1] * 3, [1] * 3), c1=2.8, c2=2.0, **kwargs)
    with pytest.raises(ConfigError, match="context"):
        pso.particle_swarm(sphere, ([-1] * 3, [1] * 3), c1=2.0, c2=2.0, context={"data": "other"}, **kwargs)


def test_bad_bounds_refused():
    with pytest.raises(ConfigError, match="upper > lower"):
        pso.particle_swarm(sphere, ([0, 1], [1, 1]), n_particles=2, iterations=1, c1=2, c2=2, progress=False)


def test_unit_cube_to_hyperparameters():
    from seisgrid.ghf.bnn import SEARCH_SPACE

    assert list(SEARCH_SPACE) == ["hidden_layers", "neurons", "learning_rate", "batch_size", "dropout",
                                  "kl_weight", "prior_variance", "l2"]
    low = pso.to_hyperparameters(np.zeros(8))
    high = pso.to_hyperparameters(np.ones(8))
    assert low == pytest.approx({"hidden_layers": 3, "neurons": 32, "learning_rate": 1e-4, "batch_size": 32,
                                 "dropout": 0.05, "kl_weight": 1e-5, "prior_variance": 0.5, "l2": 1e-5})
    assert high == pytest.approx({"hidden_layers": 6, "neurons": 128, "learning_rate": 1e-2, "batch_size": 128,
                                  "dropout": 0.3, "kl_weight": 1e-3, "prior_variance": 1.5, "l2": 1e-4})
    mid = pso.to_hyperparameters(np.full(8, 0.5))
    assert mid["learning_rate"] == pytest.approx(1e-3)  # log scale: the geometric mean
    assert mid["kl_weight"] == pytest.approx(1e-4)
    assert mid["l2"] == pytest.approx(math.sqrt(1e-5 * 1e-4))
    assert mid["dropout"] == pytest.approx(0.175)
    # each of the 4 layer counts gets a quarter of [0, 1]
    layers = [pso.to_hyperparameters(np.r_[u, np.zeros(7)])["hidden_layers"]
              for u in (0.0, 0.24, 0.26, 0.74, 0.76, 1.0)]
    assert layers == [3, 3, 4, 5, 6, 6]
    rng = np.random.default_rng(0)
    for unit in rng.random((50, 8)):
        params = pso.to_hyperparameters(unit)
        for name, (lo, hi, kind) in SEARCH_SPACE.items():
            assert lo <= params[name] <= hi
            assert isinstance(params[name], int) == (kind == "int")
        again = pso.to_hyperparameters(pso.from_hyperparameters(params))
        assert again == pytest.approx(params, rel=1e-12)
    assert pso.to_hyperparameters(np.full(8, 1.5)) == high  # outside the cube: clipped
    with pytest.raises(ConfigError, match="8"):
        pso.to_hyperparameters(np.zeros(3))


def test_configurations():
    assert pso.STUDY_CONFIGURATIONS == ((2.0, 2.0, 20), (2.0, 2.0, 50), (2.8, 1.0, 20), (2.8, 1.0, 50))
    assert pso.parse_configurations(["2,2,20", [2.8, 1.0, 50], "2.8:1:20"]) == [(2.0, 2.0, 20), (2.8, 1.0, 50),
                                                                                (2.8, 1.0, 20)]
    for bad in (["2,2"], ["a,b,c"], [[2, 2, 0]], []):
        with pytest.raises(ConfigError):
            pso.parse_configurations(bad)


def _tiny_grids(res=10.0):
    from seisgrid.ghf.grid import empty_dataset

    feats = empty_dataset(res)
    shape = (feats.sizes["lat"], feats.sizes["lon"])
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, *shape))
    feats["moho_depth"] = (("lat", "lon"), 35.0 + 5.0 * a)
    feats["curie_depth"] = (("lat", "lon"), 25.0 + 4.0 * b)
    hf = empty_dataset(res)
    values = 60.0 + 8.0 * a - 5.0 * b + rng.normal(scale=2.0, size=shape)
    values[:, 1::3] = np.nan
    hf["heatflow"] = (("lat", "lon"), values)
    return feats, hf


def test_search_end_to_end(dask_client, tmp_path):
    feats, hf = _tiny_grids()
    out = tmp_path / "search"
    kwargs = {"configurations": ["2,2,4", [2.8, 1.0, 4]], "iterations": 2, "max_epochs": 3, "client": dask_client,
                  "variables": ["moho_depth", "curie_depth"], "progress": False}
    report = pso.search(feats, hf, str(out), **kwargs)
    assert set(report) >= {"best", "best_rmse", "configurations", "figure", "out", "json"}
    assert [(c["c1"], c["c2"], c["particles"]) for c in report["configurations"]] == [(2.0, 2.0, 4), (2.8, 1.0, 4)]
    assert all(len(c["history"]) == 2 for c in report["configurations"])
    assert report["best_rmse"] == min(c["best_rmse"] for c in report["configurations"])
    assert 0 < report["best_rmse"] < 100
    assert set(report["best"]) == {"hidden_layers", "neurons", "learning_rate", "batch_size", "dropout",
                                   "kl_weight", "prior_variance", "l2"}
    assert report["fixed"]["max_epochs"] == 3
    assert report["n_train"] + report["n_validation"] == int(np.isfinite(hf["heatflow"].values).sum())
    saved = json.loads((out / "search.json").read_text())
    assert saved["best"] == report["best"] and saved["best_rmse"] == report["best_rmse"]
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(out.glob("swarm_*.json"))) == 2

    rerun = pso.search(feats, hf, str(out), **kwargs)  # finished swarms: read back, nothing trained
    assert [c["resumed_from"] for c in rerun["configurations"]] == [2, 2]
    assert rerun["best"] == report["best"] and rerun["best_rmse"] == report["best_rmse"]
