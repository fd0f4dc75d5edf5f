"""Training-density experiment (seisgrid.ghf.density).

ROI search against brute force, splits that never leak, a tiny experiment, and the written JSON and figure.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf import density
from seisgrid.ghf.bnn import Hyperparameters
from seisgrid.ghf.dataset import TrainingSet
from seisgrid.ghf.grid import empty_dataset, haversine_km

TINY = Hyperparameters(hidden_layers=1, neurons=8, batch_size=32, learning_rate=0.01, max_epochs=10, patience=4)


def _points(seed=0):
    """Uniform scatter over Europe/Africa plus a dense cluster at 44°N 20°E."""
    rng = np.random.default_rng(seed)
    lat = np.concatenate([rng.uniform(20, 60, 300), 44.0 + rng.normal(0, 1.0, 200)])
    lon = np.concatenate([rng.uniform(-20, 70, 300), 20.0 + rng.normal(0, 1.0, 200)])
    return lat, lon


def test_find_roi_finds_the_dense_cluster_and_matches_brute_force():
    lat, lon = _points()
    box = (0.0, 45.0, 28.0, 52.0)
    c_lat, c_lon, n = density.find_roi(lat, lon, radius_km=400.0, box=box, step_deg=1.0)
    assert abs(c_lat - 44.0) <= 2.0 and abs(c_lon - 20.0) <= 2.5
    assert n == int((haversine_km(c_lat, c_lon, lat, lon) <= 400.0).sum())
    # brute force over the same candidate grid with haversine distances
    best = max(int((haversine_km(a, b, lat, lon) <= 400.0).sum())
               for a in np.arange(28.0, 52.0 + 1e-9, 1.0) for b in np.arange(0.0, 45.0 + 1e-9, 1.0))
    assert n == best >= 200
    # the centre stays inside the box even when the densest place is outside it
    c_lat, c_lon, _ = density.find_roi(lat, lon, 400.0, box=(30.0, 40.0, 28.0, 30.0), step_deg=1.0)
    assert 30.0 <= c_lon <= 40.0 and 28.0 <= c_lat <= 30.0
    np.testing.assert_array_equal(density.roi_mask(lat, lon, 44.0, 20.0, 400.0),
                                  haversine_km(44.0, 20.0, lat, lon) <= 400.0)


def test_find_roi_errors():
    with pytest.raises(ConfigError, match="box"):
        density.find_roi([0.0], [0.0], box=(10, 0, 0, 10))
    with pytest.raises(ConfigError, match="radius_km"):
        density.find_roi([0.0], [0.0], radius_km=0)
    with pytest.raises(SeisgridError, match="latitudes"):
        density.find_roi([0.0, 1.0], [0.0])


def test_roi_splits_never_leak():
    inside, outside = np.arange(10, 60), np.concatenate([np.arange(10), np.arange(60, 100)])
    splits = density.roi_splits(inside, outside, [0.1, 0.5, 0.9], repeats=3, seed=2)
    assert len(splits) == 9
    for s in splits:
        train, val = s["train"], s["validation"]
        assert len(np.intersect1d(train, val)) == 0
        assert set(val) <= set(inside) and set(outside) <= set(train)
        assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
        assert s["n_train_roi"] == round(s["fraction"] * 50) == len(train) - len(outside)
    draws = [s["validation"] for s in splits if s["fraction"] == 0.5]
    assert not np.array_equal(draws[0], draws[1])  # repeats are different draws
    again = density.roi_splits(inside, outside, [0.1, 0.5, 0.9], repeats=3, seed=2)
    assert all(np.array_equal(a["train"], b["train"]) for a, b in zip(splits, again, strict=True))


def _synthetic_set(seed=0) -> TrainingSet:
    lat, lon = _points(seed)
    rng = np.random.default_rng(seed + 1)
    n = len(lat)
    a, b = rng.normal(size=n), rng.normal(size=n)
    target = 60 + 12 * a - 5 * b + 4 * rng.normal(size=n)
    return TrainingSet(features=pd.DataFrame({"a": a, "b": b}), target=target, weight=np.ones(n), lat=lat, lon=lon,
                       names=["a", "b"], categorical=[])


def test_density_experiment_tiny_on_cluster(dask_client):
    data = _synthetic_set()
    result = density.density_experiment(data, TINY, fractions=(0.2, 0.8), repeats=2, radius_km=500.0,
                                        step_deg=1.0, client=dask_client, samples=5, threads=1, progress=False)
    roi = result["roi"]
    assert roi["n_cells"] >= 200 and abs(roi["centre_lat"] - 44.0) <= 2 and roi["radius_km"] == 500.0
    assert [(r["fraction"], r["method"]) for r in result["rows"]] == [
        (0.2, "bnn"), (0.2, "linear"), (0.8, "bnn"), (0.8, "linear")]
    for row in result["rows"]:
        assert row["n_runs"] == 2 and row["n_train_roi"] + row["n_validation"] == roi["n_cells"]
        assert np.isfinite([row["r2_mean"], row["r2_sd"], row["nrmse_mean"], row["nrmse_sd"]]).all()
        assert row["r2_sd"] >= 0 and row["nrmse_mean"] > 0
    linear = [r for r in result["rows"] if r["method"] == "linear"]
    assert all(r["r2_mean"] > 0.7 for r in linear)  # the truth is linear
    assert len(result["runs"]) == 4
    # the same seed gives the same numbers in this process
    serial = density.density_experiment(data, TINY, fractions=(0.2, 0.8), repeats=2, radius_km=500.0,
                                        step_deg=1.0, samples=5, threads=1, progress=False)
    for a, b in zip(result["rows"], serial["rows"], strict=True):
        assert a["r2_mean"] == pytest.approx(b["r2_mean"], rel=1e-6)


def _grids(res=2.0, seed=0):
    rng = np.random.default_rng(seed)
    feats, hf = empty_dataset(res), empty_dataset(res)
    lat2, lon2 = np.meshgrid(feats.lat.values, feats.lon.values, indexing="ij")
    shape = lat2.shape
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    feats["a"] = (("lat", "lon"), a.astype(np.float32))
    feats["b"] = (("lat", "lon"), b.astype(np.float32))
    chosen = (lat2 > 20) & (lat2 < 60) & (lon2 > -20) & (lon2 < 70) & (rng.uniform(size=shape) < 0.6)
    target = 60 + 10 * a - 5 * b + 3 * rng.normal(size=shape)
    hf["heatflow"] = (("lat", "lon"), np.where(chosen, target, np.nan).astype(np.float32))
    return feats, hf


def test_run_density_writes_json_and_figure(tmp_path):
    feats, hf = _grids()
    out = tmp_path / "density"
    result = density.run_density(feats, hf, str(out), params=TINY.to_dict(), variables=["a", "b"],
                                 fractions=[0.3, 0.7], repeats=2, radius_km=800.0, step_deg=2.0, mc_samples=5,
                                 threads=1, progress=False)
    assert (out / "density.json").exists() and (out / "density.png").stat().st_size > 5000
    saved = json.loads((out / "density.json").read_text())
    assert saved["rows"] == result["rows"] and saved["figure"] == str(out / "density.png")
    assert set(saved["roi"]) >= {"centre_lat", "centre_lon", "radius_km", "n_cells"}
    for row in saved["rows"]:
        assert set(row) >= {"fraction", "method", "r2_mean", "r2_sd", "nrmse_mean", "nrmse_sd", "n_runs"}
    assert saved["params"]["neurons"] == TINY.neurons
    assert "met" in saved["goal"]
    with pytest.raises(ConfigError, match="fractions"):
        density.run_density(feats, hf, str(out), variables=["a", "b"], fractions=[0.0, 0.5], progress=False)
