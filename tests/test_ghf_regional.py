"""Regional means (seisgrid.ghf.regional).

Great-circle disc means against brute force, across the dateline and the poles, NaN handling, names, and
their use in the training and prediction tables.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf import regional
from seisgrid.ghf.dataset import load_training_set, prediction_table
from seisgrid.ghf.grid import empty_dataset, grid_coords, haversine_km


def brute_force(values, lat, lon, radius_km):
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    out = np.full(values.shape, np.nan)
    for i in range(len(lat)):
        for j in range(len(lon)):
            near = (haversine_km(lat[i], lon[j], la, lo) <= radius_km) & np.isfinite(values)
            if near.any():
                out[i, j] = values[near].mean()
    return out


@pytest.mark.parametrize("res, radius_km", [(10.0, 900.0), (10.0, 2500.0), (6.0, 1700.0), (15.0, 9000.0)])
def test_regional_mean_equals_brute_force(res, radius_km):
    lat, lon = grid_coords(res)
    rng = np.random.default_rng(int(radius_km))
    values = rng.normal(size=(len(lat), len(lon)))
    values[rng.random(values.shape) < 0.3] = np.nan
    got = regional.regional_mean(values, lat, lon, radius_km)
    expected = brute_force(values, lat, lon, radius_km)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_regional_mean_wraps_the_dateline_and_spans_the_pole():
    lat, lon = grid_coords(10.0)
    values = np.zeros((len(lat), len(lon)))
    values[:, 0] = 1.0  # the column at −175°
    got = regional.regional_mean(values, lat, lon, 1200.0)
    east = np.flatnonzero(lon == 175.0)[0]
    equator = np.flatnonzero(lat == 5.0)[0]
    assert got[equator, east] > 0  # the disc at 175° E reaches −175° across the dateline
    assert got[equator, np.flatnonzero(lon == 5.0)[0]] == 0
    # Across the pole: (85° S, 175° W) and (85° S, 5° E) are 10° (1112 km) apart through it.
    values = np.zeros((len(lat), len(lon)))
    values[0, np.flatnonzero(lon == 5.0)[0]] = 1.0
    got = regional.regional_mean(values, lat, lon, 1200.0)
    assert got[0, 0] > 0
    assert regional.regional_mean(values, lat, lon, 1000.0)[0, 0] == 0


def test_regional_mean_of_a_radius_smaller_than_a_cell_is_the_cell_itself():
    lat, lon = grid_coords(5.0)
    values = np.arange(len(lat) * len(lon), dtype=float).reshape(len(lat), len(lon))
    values[3, 4] = np.nan
    got = regional.regional_mean(values, lat, lon, 10.0)
    assert np.isnan(got[3, 4])
    mask = np.isfinite(values)
    np.testing.assert_array_equal(got[mask], values[mask])


def test_regional_mean_input_errors():
    lat, lon = grid_coords(10.0)
    with pytest.raises(SeisgridError, match="do not match"):
        regional.regional_mean(np.zeros((3, 3)), lat, lon, 100.0)
    with pytest.raises(SeisgridError, match="evenly spaced"):
        regional.regional_mean(np.zeros((len(lat), 3)), lat, [0.0, 10.0, 200.0], 100.0)


def test_names_and_radii():
    assert regional.regional_name("moho_depth", 300) == "moho_depth_regional300km"
    assert regional.parse_regional_name("moho_depth_regional300km") == ("moho_depth", 300.0)
    assert regional.parse_regional_name("lab_depth_regional12.5km") == ("lab_depth", 12.5)
    assert regional.parse_regional_name("moho_depth") is None
    assert regional.radii("150,300") == [150.0, 300.0]
    assert regional.radii([600]) == [600.0]
    assert regional.radii(None) == [] and regional.radii([]) == []
    with pytest.raises(ConfigError, match="not a number"):
        regional.radii("150,far")
    with pytest.raises(ConfigError, match="positive"):
        regional.radii([-5])


def _grids(res=2.0, seed=0, n_cells=300):
    rng = np.random.default_rng(seed)
    feats, hf = empty_dataset(res), empty_dataset(res)
    shape = (feats.sizes["lat"], feats.sizes["lon"])
    lat2, lon2 = np.meshgrid(feats.lat.values, feats.lon.values, indexing="ij")
    feats["a"] = (("lat", "lon"), (np.sin(np.radians(lon2)) + 0.2 * rng.normal(size=shape)).astype(np.float32))
    feats["b"] = (("lat", "lon"), (np.cos(np.radians(lat2)) + 0.2 * rng.normal(size=shape)).astype(np.float32))
    feats["kind"] = (("lat", "lon"), rng.integers(0, 3, shape).astype(np.float32), {"flag_values": [0, 1, 2]})
    chosen = np.zeros(shape, bool)
    chosen[rng.integers(5, shape[0] - 5, n_cells), rng.integers(0, shape[1], n_cells)] = True
    target = 60 + 10 * feats["a"].values + 5 * feats["b"].values
    hf["heatflow"] = (("lat", "lon"), np.where(chosen, target, np.nan).astype(np.float32))
    return feats, hf


def test_training_and_prediction_tables_with_regional_means():
    feats, hf = _grids()
    data = load_training_set(feats, hf, variables=["a", "b", "kind"], regional_km=[500, 1500])
    assert data.names == ["a", "b", "kind", "a_regional500km", "b_regional500km", "a_regional1500km",
                          "b_regional1500km"]  # the categorical feature gets none
    assert data.categorical == ["kind"]
    expected = regional.regional_mean(feats["a"].values, feats.lat.values, feats.lon.values, 1500.0)
    rows = np.searchsorted(feats.lat.values, data.lat)
    cols = np.searchsorted(feats.lon.values, data.lon)
    np.testing.assert_allclose(data.features["a_regional1500km"], expected[rows, cols], rtol=1e-6)
    assert "a_regional500km" not in feats  # the caller's dataset is left alone

    # The prediction table derives the same columns from the base features, with discs across lat_max.
    feats["land_fraction"] = xr.full_like(feats["a"], 1.0)
    table, lat, lon = prediction_table(feats, data.names, lat_max=-60.0)
    assert list(table.columns) == data.names and lat.max() < -60
    rows, cols = np.searchsorted(feats.lat.values, lat), np.searchsorted(feats.lon.values, lon)
    np.testing.assert_allclose(table["a_regional1500km"], expected[rows, cols], rtol=1e-6)


def test_regional_means_from_configuration_and_errors():
    import dask.config

    feats, hf = _grids()
    with dask.config.set({"seisgrid.ghf.regional_km": [800]}):
        data = load_training_set(feats, hf, variables=["a"])
    assert data.names == ["a", "a_regional800km"]
    with pytest.raises(SeisgridError, match="base feature nope is not in the feature grid"):
        regional.add_regional_means(feats, ["nope_regional100km"])
