"""VIF (seisgrid.ghf.collinearity): against direct least squares, iterative selection, training cells, chart."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from seisgrid.errors import SeisgridError, StorageError
from seisgrid.ghf import collinearity as col
from seisgrid.ghf.grid import empty_dataset


def _lstsq_vif(frame: pd.DataFrame) -> dict:
    """VIF_i = 1 / (1 - R_i²) from an ordinary least-squares fit (with intercept) of i on the others."""
    x = frame.to_numpy(float)
    out = {}
    for i, name in enumerate(frame.columns):
        y = x[:, i]
        a = np.column_stack([np.ones(len(y)), np.delete(x, i, axis=1)])
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        r2 = 1.0 - np.sum((y - a @ coef) ** 2) / np.sum((y - y.mean()) ** 2)
        out[name] = 1.0 / (1.0 - r2)
    return out


def _correlated(n=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.8 * a + 0.6 * rng.normal(size=n)
    c = rng.normal(size=n) * 5 + 100
    d = 0.5 * a - 0.3 * c / 5 + 0.3 * rng.normal(size=n)
    cls = rng.integers(0, 6, size=n).astype(float)  # a label-encoded class column
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "tectonic_class": cls})


def test_vif_matches_direct_least_squares():
    frame = _correlated()
    vif = col.variance_inflation(frame)
    expected = _lstsq_vif(frame)
    assert list(vif.index) == list(frame.columns)
    for name, value in expected.items():
        assert vif[name] == pytest.approx(value, rel=1e-9)
    assert vif["d"] > 4 and vif["c"] > 1.5 and 1.0 <= vif["tectonic_class"] < 1.1


def test_vif_scale_invariant_and_single_column():
    frame = _correlated()
    scaled = frame.assign(a=frame["a"] * 1e6 - 3e5, c=frame["c"] * 1e-4)
    pd.testing.assert_series_equal(col.variance_inflation(frame), col.variance_inflation(scaled), rtol=1e-8)
    assert col.variance_inflation(frame[["a"]]).tolist() == [1.0]


def test_iterative_drop_of_near_duplicate():
    rng = np.random.default_rng(7)
    n = 300
    frame = pd.DataFrame({name: rng.normal(size=n) for name in ("x1", "x2", "x3", "x4")})
    frame["x2_copy"] = frame["x2"] + 1e-3 * rng.normal(size=n)  # near duplicate: huge but finite VIF
    frame["x1_plus_x3"] = frame["x1"] + frame["x3"]  # exact linear combination: infinite VIF
    result = col.select_features(frame, threshold=8.0)
    assert list(result["initial"]) == list(frame.columns)
    assert [np.isinf(result["initial"][k]) for k in frame.columns] == [True, False, True, False, False, True]
    assert result["initial"]["x2"] > 1e5 and result["initial"]["x2_copy"] > 1e5
    assert result["initial"]["x4"] < 1.1
    dropped = result["dropped"]
    assert [d["step"] for d in dropped] == [1, 2]
    # ties at inf go to the first column in table order; then the larger of the two duplicates' VIFs
    assert dropped[0] == {"feature": "x1", "vif": np.inf, "step": 1}
    assert dropped[1]["feature"] in ("x2", "x2_copy") and dropped[1]["vif"] > 1e5
    assert set(result["final"]) == {"x3", "x4", "x1_plus_x3"} | ({"x2", "x2_copy"} - {dropped[1]["feature"]})
    assert 1.5 < result["final"]["x3"] < 3  # x3 and x1 + x3 correlate at about 1/sqrt(2): VIF ≈ 2
    # the final VIFs are those of the kept columns alone, by direct least squares
    for name, value in _lstsq_vif(frame[list(result["final"])]).items():
        assert result["final"][name] == pytest.approx(value, rel=1e-9)


def test_threshold_from_config_and_no_drop():
    frame = _correlated()
    result = col.select_features(frame)
    assert result["threshold"] == 8.0
    assert result["dropped"] == [] and result["final"] == result["initial"]
    strict = col.select_features(frame, threshold=1.5)
    assert strict["dropped"][0]["feature"] == max(result["initial"], key=result["initial"].get)


def test_constant_column_is_a_clear_error():
    frame = _correlated().assign(sea_level=3.0)
    with pytest.raises(SeisgridError, match="sea_level.*constant"):
        col.variance_inflation(frame)


def test_too_few_rows_and_nan_are_errors():
    frame = _correlated(n=5)
    with pytest.raises(SeisgridError, match="5 rows for 5 features"):
        col.variance_inflation(frame)
    frame = _correlated()
    frame.iloc[3, 1] = np.nan
    with pytest.raises(SeisgridError, match="b hold NaN"):
        col.variance_inflation(frame)


def _grids(res=10.0):
    feats = empty_dataset(res)
    shape = (feats.sizes["lat"], feats.sizes["lon"])
    rng = np.random.default_rng(3)
    topo = rng.normal(size=shape)
    topo[0, 0] = np.nan
    feats["topography"] = (("lat", "lon"), topo)
    feats["moho_depth"] = (("lat", "lon"), rng.normal(size=shape))
    feats["tectonic_class"] = (("lat", "lon"), rng.integers(0, 6, size=shape).astype(np.int8),
                               {"flag_values": list(range(6)), "flag_meanings": "a b c d e f"})
    feats["land_fraction"] = (("lat", "lon"), rng.uniform(size=shape))
    feats["moho_depth_variance"] = (("lat", "lon"), rng.uniform(size=shape))
    hf = empty_dataset(res)
    values = np.full(shape, np.nan)
    values[:, ::2] = 60.0 + rng.normal(size=(shape[0], (shape[1] + 1) // 2))
    hf["heatflow"] = (("lat", "lon"), values)
    hf["heatflow_count"] = (("lat", "lon"), np.isfinite(values).astype(np.int32))
    return feats, hf, values


def test_candidate_features_and_training_table(caplog):
    feats, hf, values = _grids()
    assert col.candidate_features(feats) == ["topography", "moho_depth", "tectonic_class"]
    assert col.candidate_features(xr.merge([feats, hf])) == ["topography", "moho_depth", "tectonic_class"]
    with caplog.at_level(logging.WARNING, logger="seisgrid"):
        table = col.training_table(feats, hf)
    assert "1 of" in caplog.text and "topography: 1" in caplog.text
    expected = np.isfinite(values) & np.isfinite(feats["topography"].values)
    assert len(table) == expected.sum() == table.attrs["n_heatflow_cells"] - 1
    assert list(table.columns) == ["topography", "moho_depth", "tectonic_class"]
    assert np.isfinite(table.to_numpy()).all()
    rows, cols = np.nonzero(expected)
    np.testing.assert_array_equal(table.index.get_level_values("lat"), feats.lat.values[rows])
    np.testing.assert_array_equal(table.index.get_level_values("lon"), feats.lon.values[cols])
    np.testing.assert_array_equal(table["moho_depth"], feats["moho_depth"].values[rows, cols])
    only = col.training_table(feats, hf, variables=["moho_depth"])
    assert len(only) == np.isfinite(values).sum()


def test_training_table_errors():
    feats, hf, _ = _grids()
    with pytest.raises(SeisgridError, match="no 'heatflow' variable"):
        col.training_table(feats, hf.rename(heatflow="q"))
    with pytest.raises(SeisgridError, match="curie_depth not in"):
        col.training_table(feats, hf, variables=["curie_depth"])
    with pytest.raises(SeisgridError, match="differ in 'lat'"):
        col.training_table(feats, _grids(res=5.0)[1])


def test_plot_vif_writes_png(tmp_path):
    frame = _correlated()
    frame["a_plus_c"] = frame["a"] + 2.0 * frame["c"]
    result = col.select_features(frame)
    path = col.plot_vif(result["initial"], result["final"], tmp_path / "vif.png")
    data = (tmp_path / "vif.png").read_bytes()
    assert path.endswith("vif.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_vif_report_from_zarr_stores(tmp_path):
    feats, hf, _ = _grids(res=5.0)
    noise = np.random.default_rng(5).normal(size=feats["moho_depth"].shape)
    feats["curie_depth"] = 2.0 * feats["moho_depth"] + 0.01 * noise  # near duplicate of moho_depth
    feats.to_zarr(tmp_path / "features.zarr", zarr_format=3, consolidated=False)
    hf.to_zarr(tmp_path / "heatflow.zarr", zarr_format=3, consolidated=False)
    result = col.vif_report(str(tmp_path / "features.zarr"), str(tmp_path / "heatflow.zarr"),
                            out_png=str(tmp_path / "fig3.png"))
    assert result["n_cells"] == result["n_heatflow_cells"] - 1 > 0
    assert [d["feature"] for d in result["dropped"]] in (["moho_depth"], ["curie_depth"])
    assert set(result["initial"]) == {"topography", "moho_depth", "tectonic_class", "curie_depth"}
    assert (tmp_path / "fig3.png").stat().st_size > 0 and result["png"] == str(tmp_path / "fig3.png")
    with pytest.raises(StorageError, match="not a feature grid"):
        col.vif_report(str(tmp_path / "missing.zarr"), str(tmp_path / "heatflow.zarr"))
