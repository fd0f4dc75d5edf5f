"""Random Forest baseline: features, class-balanced training, prediction on a real LocalCluster, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from test_stalta import synthetic_windows

from seisgrid.errors import SeisgridError
from seisgrid.seismic import forest


def _features(n=80, seed=0):
    wave, present, label, _ = synthetic_windows(n=n, seed=seed, snr=4.0)
    return forest.waveform_features(wave, present), label


def test_spectral_features_shape_and_missing_components():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 3, 64, 40)).astype(np.float16)
    f = forest.spectral_features(images, bands=8)
    assert f.shape == (5, 3 * (2 * 8 + 3) + 8) == (5, len(forest.feature_names(bands=8)))
    assert np.isfinite(f).all()
    # a constant (missing) component is replaced by the mean of the present ones
    images[:, 2] = 0
    g = forest.spectral_features(images, bands=8)
    per = 2 * 8 + 3
    np.testing.assert_allclose(g[:, 2 * per:3 * per], (g[:, :per] + g[:, per:2 * per]) / 2, rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(SeisgridError):
        forest.spectral_features(images[:, :, :4], bands=8)


def test_forest_trains_and_predicts():
    X, y = _features()
    Xt, yt = _features(n=40, seed=9)
    model = forest.train_forest(X, y, n_estimators=50, seed=0)
    assert model.class_weight == "balanced"
    pred = forest.predict(model, Xt, threshold=0.5)
    assert (pred == yt).mean() >= 0.9
    with pytest.raises(SeisgridError):
        forest.train_forest(X, np.zeros_like(y))


def test_predict_on_cluster_equals_in_process(dask_client):
    import dask.array as da

    X, y = _features()
    model = forest.train_forest(X, y, n_estimators=30, seed=1)
    direct = model.predict_proba(X)[:, 1]
    on_cluster = forest.predict_proba(model, da.from_array(X, chunks=(17, -1)), client=dask_client)
    np.testing.assert_array_equal(on_cluster, direct)
    np.testing.assert_array_equal(forest.predict_proba(model, X, client=dask_client), direct)
    # the features themselves computed chunk by chunk on the cluster match too
    import xarray as xr

    wave, present, _, _ = synthetic_windows(n=30, seed=3)
    ds = xr.Dataset({"waveform": (("window", "component", "sample"), wave),
                     "present": (("window", "component"), present)}, attrs={"sampling_rate": 100.0})
    lazy = forest.dataset_features(ds.chunk({"window": 7}))
    np.testing.assert_allclose(dask_client.compute(lazy).result(), forest.waveform_features(wave, present),
                               rtol=1e-6)


def test_parallel_postfit_scatters_the_model_and_predicts_the_same(dask_client):
    import pickle

    import dask.array as da
    from dask_ml.wrappers import ParallelPostFit
    from distributed import Future

    X, y = _features()
    model = forest.train_forest(X, y, n_estimators=40, seed=2)
    direct = model.predict_proba(X)
    wrapper = forest.postfit(model, dask_client)
    assert isinstance(wrapper, ParallelPostFit) and isinstance(wrapper.estimator.model, Future)
    lazy = wrapper.predict_proba(da.from_array(X, chunks=(13, -1)))
    # the tasks refer to the scattered model: the graph (7 chunks) is smaller than one copy of the model
    assert len(pickle.dumps(dict(lazy.__dask_graph__()))) < len(pickle.dumps(model)) / 2
    np.testing.assert_array_equal(dask_client.compute(lazy).result(), direct)
    # without a client: ParallelPostFit on Dask's local scheduler, and plain NumPy in process
    np.testing.assert_array_equal(forest.predict_proba(model, da.from_array(X, chunks=(13, -1))), direct[:, 1])
    np.testing.assert_array_equal(forest.predict_proba(model, X), direct[:, 1])
    assert forest.predict_proba(model, X[:0]).shape == (0,)


def test_save_and_load(tmp_path):
    import json

    X, y = _features(n=40)
    model = forest.train_forest(X, y, n_estimators=10)
    meta = forest.save_model(model, tmp_path / "m" / "forest.joblib", {"split": "split_region"})
    assert json.loads((tmp_path / "m" / "forest.joblib.json").read_text())["n_features"] == X.shape[1]
    loaded, cfg = forest.load_model(tmp_path / "m" / "forest.joblib")
    assert cfg == meta
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
