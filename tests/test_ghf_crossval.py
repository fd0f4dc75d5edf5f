"""Cross-validation (seisgrid.ghf.crossval).

Folds never leak, metrics against hand values, calibration on synthetic Gaussian data, the ensemble's
variance decomposition, and cross-validation end to end with a tiny network, in this process and on a
cluster, and the written ensemble.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf import crossval as cv
from seisgrid.ghf.bnn import FittedBNN, Hyperparameters
from seisgrid.ghf.dataset import TrainingSet, load_training_set, prediction_table
from seisgrid.ghf.grid import empty_dataset

TINY = Hyperparameters(hidden_layers=1, neurons=8, batch_size=32, learning_rate=0.01, max_epochs=15, patience=5)


def _assert_partition(folds, n):
    tests = [np.asarray(t) for _, t in folds]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(n))  # union = all, no cell twice
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n))


@pytest.mark.parametrize(("n", "k"), [(10, 2), (103, 5), (50, 10)])
def test_random_folds_never_leak(n, k):
    folds = cv.random_folds(n, k, seed=3)
    assert len(folds) == k
    _assert_partition(folds, n)
    sizes = [len(t) for _, t in folds]
    assert max(sizes) - min(sizes) <= 1
    again = cv.random_folds(n, k, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = cv.random_folds(n, k, seed=4)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_spatial_block_folds_never_leak_and_keep_blocks_whole():
    rng = np.random.default_rng(0)
    lat = rng.uniform(-80, 80, 2000)
    lon = rng.uniform(-180, 180, 2000)
    folds = cv.spatial_block_folds(lat, lon, k=5, block_degrees=10.0, seed=1)
    _assert_partition(folds, len(lat))
    blocks = cv.block_index(lat, lon, 10.0)
    fold_of = np.empty(len(lat), int)
    for f, (_, test) in enumerate(folds):
        fold_of[test] = f
    for block in np.unique(blocks):
        assert len(np.unique(fold_of[blocks == block])) == 1  # no block split across folds
    sizes = np.array([len(t) for _, t in folds])
    assert sizes.max() - sizes.min() <= np.bincount(np.unique(blocks, return_inverse=True)[1].ravel()).max()
    # cells 1° apart in one 10° block share a block; across the block edge they do not
    assert cv.block_index([1.0, 2.0, 10.5], [1.0, 2.0, 1.0], 10.0).tolist()[:2] == [cv.block_index(1.0, 1.0, 10.0)] * 2
    assert cv.block_index(10.5, 1.0, 10.0) != cv.block_index(1.0, 1.0, 10.0)
    # longitudes are wrapped: 190°E is −170°E
    assert cv.block_index(0.0, 190.0, 5.0) == cv.block_index(0.0, -170.0, 5.0)


def test_fold_errors_name_the_problem():
    with pytest.raises(ConfigError, match="k=1"):
        cv.random_folds(10, 1)
    with pytest.raises(ConfigError, match="only 3 cells"):
        cv.random_folds(3, 5)
    with pytest.raises(ConfigError, match="occupied 5.0° blocks"):
        cv.spatial_block_folds([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], k=2, block_degrees=5.0)
    with pytest.raises(ConfigError, match="folds='blocks'"):
        cv.make_folds("blocks", [0.0], [0.0])
    fit, val = cv.inner_split(np.arange(100, 200), 0.1, seed=0)
    assert len(val) == 10 and len(fit) == 90 and len(np.intersect1d(fit, val)) == 0
    assert set(fit) | set(val) == set(range(100, 200))


def test_metrics_against_hand_values():
    y, y_hat = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0])
    assert cv.r2(y, y_hat) == pytest.approx(1 - 1 / 5)  # SS_res 1, SS_tot 5
    assert cv.rmse(y, y_hat) == pytest.approx(0.5)
    assert cv.nrmse(y, y_hat) == pytest.approx(0.5 / 2.75)  # RMSE / mean(ŷ)
    assert cv.r2(y, y) == 1.0 and cv.rmse(y, y) == 0.0
    # z(68 %) = 0.994, z(95 %) = 1.960: 0 and 0.9 are inside both, 1.5 only the 95 % interval, 3 neither
    assert cv.interval_coverage([0.0, 0.9, 1.5, 3.0], np.zeros(4), np.ones(4)) == {0.68: 0.5, 0.95: 0.75}
    assert cv.interval_coverage([0.0, 1.8, 3.0], np.zeros(3), np.full(3, 4.0), levels=(0.68,)) == {0.68: 2 / 3}
    with pytest.raises(SeisgridError, match="same"):
        cv.rmse([1.0, 2.0], [1.0])


def test_interval_coverage_on_synthetic_gaussian_data():
    rng = np.random.default_rng(42)
    n = 20000
    mean = rng.uniform(40, 90, n)
    sd = rng.uniform(5, 30, n)  # heteroscedastic, as the network's variances
    y = mean + sd * rng.standard_normal(n)
    cov = cv.interval_coverage(y, mean, sd ** 2)
    # binomial sampling sd: sqrt(0.68·0.32/n) ≈ 0.0033, sqrt(0.95·0.05/n) ≈ 0.0015; allow ~4 sd
    assert cov[0.68] == pytest.approx(0.68, abs=0.015)
    assert cov[0.95] == pytest.approx(0.95, abs=0.007)
    too_wide = cv.interval_coverage(y, mean, 4 * sd ** 2)  # sd twice too large
    assert too_wide[0.68] > 0.90 and too_wide[0.95] > 0.99
    too_narrow = cv.interval_coverage(y, mean, sd ** 2 / 4)
    assert too_narrow[0.68] < 0.45 and too_narrow[0.95] < 0.70
    wrong_sd = cv.interval_coverage(y, mean, np.full(n, np.mean(sd) ** 2) / 4)
    assert abs(wrong_sd[0.68] - 0.68) > 0.1


class _Fixed:
    """Stand-in model with known predictions: mean, aleatoric and epistemic arrays."""

    def __init__(self, mean, aleatoric, epistemic):
        self.values = {"mean": np.asarray(mean, float), "aleatoric": np.asarray(aleatoric, float),
                       "epistemic": np.asarray(epistemic, float)}
        self.calls = []

    def predict(self, X, samples=50, seed=0):
        self.calls.append((len(X), samples, seed))
        out = dict(self.values)
        out["total"] = out["aleatoric"] + out["epistemic"]
        return out


def test_ensemble_variance_decomposition():
    models = [_Fixed([60.0, 10.0], [100.0, 4.0], [10.0, 1.0]),
              _Fixed([70.0, 10.0], [200.0, 4.0], [30.0, 1.0]),
              _Fixed([80.0, 10.0], [300.0, 4.0], [50.0, 1.0])]
    out = cv.ensemble_predict(models, np.zeros((2, 3)), samples=7)
    np.testing.assert_allclose(out["mean"], [70.0, 10.0])
    np.testing.assert_allclose(out["aleatoric"], [200.0, 4.0])
    np.testing.assert_allclose(out["epistemic"], [30.0, 1.0])
    np.testing.assert_allclose(out["within"], [230.0, 5.0])
    np.testing.assert_allclose(out["between"], [200.0 / 3.0, 0.0])  # var of (60, 70, 80), ddof 0
    np.testing.assert_allclose(out["total"], out["within"] + out["between"])
    # sds in quadrature: sqrt(total) = hypot(within sd, between sd)
    np.testing.assert_allclose(np.sqrt(out["total"]), np.hypot(np.sqrt(out["within"]), np.sqrt(out["between"])))
    assert [m.calls[0] for m in models] == [(2, 7, 0), (2, 7, 1), (2, 7, 2)]
    with pytest.raises(SeisgridError, match="no models"):
        cv.ensemble_predict([], np.zeros((2, 3)))


def _synthetic_set(n=240, seed=0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(-50, 50, n), rng.uniform(-100, 100, n)
    a, b = rng.normal(size=n), rng.normal(size=n)
    c = np.sin(np.radians(lat) * 3) + 0.3 * rng.normal(size=n)
    target = 62 + 12 * a - 6 * b + 8 * c + 5 * rng.normal(size=n)
    features = pd.DataFrame({"a": a, "b": b, "c": c})
    return TrainingSet(features=features, target=target, weight=np.ones(n), lat=lat, lon=lon,
                       names=["a", "b", "c"], categorical=[])


def _table(result):
    return {m: {k: v for k, v in s.items()} for m, s in result["methods"].items()}


def test_cross_validate_serial_and_on_cluster_agree(dask_client):
    data = _synthetic_set()
    kw = {"folds": "spatial", "k": 4, "block_degrees": 20.0, "seed": 1, "samples": 10, "threads": 1,
          "progress": False}
    serial = cv.cross_validate(data, TINY, **kw)
    assert set(serial["methods"]) == {"bnn", "linear", "gbt"}
    assert len(serial["models"]) == 4 and all(isinstance(m, FittedBNN) for m in serial["models"])
    _assert_partition([(np.setdiff1d(np.arange(len(data)), t), t) for t in serial["test_indices"]], len(data))
    for row in serial["folds"]:
        assert row["n_train"] + row["n_early_stopping"] + row["n_test"] == len(data)
        assert 1 <= row["best_epoch"] <= row["epochs"] <= TINY.max_epochs
    bnn = serial["methods"]["bnn"]
    for key in ("r2", "rmse", "nrmse", "cross_fold_sd", "coverage_68", "coverage_95", "r2_fold_sd"):
        assert np.isfinite(bnn[key])
    assert 0.0 <= bnn["coverage_68"] <= bnn["coverage_95"] <= 1.0
    # the linear truth: linear regression explains most of the variance out of sample
    assert serial["methods"]["linear"]["r2"] > 0.6 and serial["methods"]["linear"]["rmse"] < 9
    # cross-fold sd: mean over cells of the sd of the fold models' predictions
    preds = np.stack([m.predict(data.features.to_numpy(np.float32), samples=10, seed=i)["mean"]
                      for i, m in enumerate(serial["models"])])
    assert bnn["cross_fold_sd"] == pytest.approx(float(np.mean(preds.std(axis=0))), rel=1e-6)
    # out-of-fold predictions are each fold model's prediction of its own test cells
    for f, test in enumerate(serial["test_indices"]):
        np.testing.assert_allclose(serial["predictions"]["bnn"]["mean"][test], preds[f][test], rtol=1e-6)

    clustered = cv.cross_validate(data, TINY, client=dask_client, **kw)
    for method, scores in _table(serial).items():
        for key, value in scores.items():
            assert clustered["methods"][method][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (method, key)


def _grids(n_cells=260, seed=0, res=2.0):
    """A feature grid and a heat-flow grid on a coarse global grid: ``n_cells`` random cells with heat flow."""
    rng = np.random.default_rng(seed)
    feats, hf = empty_dataset(res), empty_dataset(res)
    shape = (feats.sizes["lat"], feats.sizes["lon"])
    lat2, lon2 = np.meshgrid(feats.lat.values, feats.lon.values, indexing="ij")
    a = np.sin(np.radians(lon2) * 2) + 0.3 * rng.normal(size=shape)
    b = np.cos(np.radians(lat2) * 3) + 0.3 * rng.normal(size=shape)
    c = rng.normal(size=shape)
    for name, values in (("a", a), ("b", b), ("c", c)):
        feats[name] = (("lat", "lon"), values.astype(np.float32))
    target = 60 + 15 * a - 8 * b + 4 * c + 4 * rng.normal(size=shape)
    chosen = np.zeros(shape, bool)
    rows = rng.integers(10, shape[0] - 10, n_cells)
    cols = rng.integers(0, shape[1], n_cells)
    chosen[rows, cols] = True
    hf["heatflow"] = (("lat", "lon"), np.where(chosen, target, np.nan).astype(np.float32))
    return feats, hf


def test_train_ensemble_writes_table_models_and_reloads(tmp_path):
    feats, hf = _grids()
    out = tmp_path / "ens"
    report = cv.train_ensemble(feats, hf, str(out), params=TINY.to_dict(), k=3, block_degrees=30.0,
                               variables=["a", "b", "c"], mc_samples=5, threads=1, gbt_max_iter=50,
                               progress=False)
    assert json.loads(json.dumps(report)) == report  # JSON-able
    assert {"table", "ensemble", "out", "overstatement", "markdown"} <= set(report)
    assert {(r["method"], r["scheme"]) for r in report["table"]} == {
        (m, s) for m in ("bnn", "linear", "gbt") for s in ("random", "spatial")}
    for row in report["table"]:
        assert set(cv.TABLE_COLUMNS) <= set(row)
    assert set(report["overstatement"]) == {"bnn", "linear", "gbt"}
    random_bnn = next(r for r in report["table"] if r["method"] == "bnn" and r["scheme"] == "random")
    assert report["overstatement"]["bnn"]["r2"] == pytest.approx(
        random_bnn["r2"] - next(r["r2"] for r in report["table"] if r["method"] == "bnn" and r["scheme"] == "spatial"))
    for name in ("ensemble.json", "crossval.json", "crossval.md", "model_0.pt", "model_2.pt", "model_2.pt.json"):
        assert (out / name).exists(), name
    assert "| Bayesian DNN | random |" in (out / "crossval.md").read_text()
    saved = json.loads((out / "crossval.json").read_text())
    assert saved["table"] == report["table"]

    models, manifest = cv.load_ensemble(str(out))
    assert len(models) == 3 and manifest["features"] == ["a", "b", "c"] and manifest["folds"] == "random"
    assert manifest["params"]["neurons"] == TINY.neurons
    X = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    pred = cv.ensemble_predict(models, X, samples=5)
    np.testing.assert_allclose(pred["total"], pred["within"] + pred["between"])
    assert np.all(pred["between"] > 0)

    # the spatial-block calibration and the area of applicability travel with the ensemble
    spatial = json.loads((out / "crossval.json").read_text())["calibration"]
    assert manifest["calibration"] == spatial and spatial["scheme"] == "spatial"
    assert spatial["model_error_sd"] >= 0 and len(spatial["fold_model_error_sd"]) == 3
    assert "Spatial-block calibration" in (out / "crossval.md").read_text()
    from seisgrid.ghf.applicability import Applicability

    aoa = Applicability.from_dict(json.loads((out / manifest["applicability"]["file"]).read_text()))
    assert aoa.threshold == manifest["applicability"]["threshold"] and len(aoa.training) == report["n_cells"]

    with pytest.raises(SeisgridError, match="no ensemble there"):
        cv.load_ensemble(str(tmp_path / "nothing"))


def test_train_ensemble_with_regional_means_predicts_from_the_base_features(tmp_path):
    feats, hf = _grids()
    out = tmp_path / "ens"
    report = cv.train_ensemble(feats, hf, str(out), params=TINY.to_dict(), k=2, block_degrees=30.0,
                               variables=["a", "b"], regional_km="1500", mc_samples=3, threads=1,
                               gbt_max_iter=20, progress=False)
    assert report["features"] == ["a", "b", "a_regional1500km", "b_regional1500km"]
    models, manifest = cv.load_ensemble(str(out))
    table, lat, _ = prediction_table(feats, manifest["features"], lat_max=-60.0)
    assert list(table.columns) == manifest["features"]
    assert len(table) == int((feats.lat < -60).sum()) * feats.sizes["lon"]
    pred = cv.ensemble_predict(models, table.to_numpy(np.float32), samples=3)
    assert np.all(np.isfinite(pred["mean"]))


def test_load_training_set_warns_once_about_cells_lacking_a_feature(caplog):
    feats, hf = _grids()
    has_heatflow = np.argwhere(np.isfinite(hf["heatflow"].values))
    c = feats["c"].values.copy()
    c[tuple(has_heatflow[:3].T)] = np.nan
    feats["c"] = (("lat", "lon"), c)
    with caplog.at_level(logging.WARNING, logger="seisgrid"):
        data = load_training_set(feats, hf)  # VIF selection, then the table of the selected features
    assert len(data) == len(has_heatflow) - 3
    warnings = [r for r in caplog.records if "lack a feature value" in r.getMessage()]
    assert len(warnings) == 1 and "c: 3" in warnings[0].getMessage()


def test_params_from_search(tmp_path):
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"best": {"neurons": 40, "hidden_layers": 4}, "best_rmse": 19.0}))
    assert cv.params_from_search(str(path)) == {"neurons": 40, "hidden_layers": 4}
    path.write_text(json.dumps({"best_rmse": 19.0}))
    with pytest.raises(SeisgridError, match="no 'best'"):
        cv.params_from_search(str(path))


def test_gbt_settings_from_config():
    settings = cv.gbt_settings(max_iter=10)
    assert settings == {"max_iter": 10, "learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                        "l2_regularization": 0.0}
