"""Map comparison (seisgrid.ghf.compare).

Ours − other at the other map's points, files and the CLI, difference grids and maps, the Lösing & Ebbing
(2021) map.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from ghf_map_inputs import PNG, cell_points, predicted_map, quick_maps
from helpers import requires_data

from seisgrid.ghf import compare, mapping, published
from seisgrid.ghf.grid import haversine_km

rasterio = pytest.importorskip("rasterio")


@pytest.fixture(scope="module", autouse=True)
def _coast_cache(tmp_path_factory):
    with quick_maps(tmp_path_factory.mktemp("coast-cache")):
        yield


@pytest.fixture(scope="module")
def ds():
    return predicted_map()


def test_compare_identical_and_offset(ds):
    same = compare.compare_maps(ds, cell_points(ds))
    assert same["n"] == ds.attrs["n_cells"] and same["n_dropped"] == 0
    assert same["correlation"] == pytest.approx(1.0) and same["rms_difference"] == pytest.approx(0.0, abs=1e-9)
    assert same["max_distance_km"] == pytest.approx(41.698, abs=0.01)
    off = compare.compare_maps(ds, cell_points(ds, shift=7.0))
    assert off["mean_difference"] == pytest.approx(7.0) and off["median_difference"] == pytest.approx(7.0)
    assert off["rms_difference"] == pytest.approx(7.0) and off["correlation"] == pytest.approx(1.0)
    assert set(off["difference"].columns) == {"lat", "lon", "ours", "other", "difference", "distance_km"}
    grid = off["difference_grid"]
    assert np.array_equal(np.isfinite(grid.values), np.isfinite(ds.heatflow.values))
    np.testing.assert_allclose(grid.values[np.isfinite(grid.values)], 7.0)


def test_compare_cli_json(ds, tmp_path, capsys):
    from seisgrid.cli import main

    mapping.write_map(ds, str(tmp_path / "ours.zarr"), netcdf=False, geotiff=False)
    cell_points(ds, shift=1.5).to_csv(tmp_path / "other.csv", index=False)
    assert main(["ghf", "compare", str(tmp_path / "ours.zarr"), str(tmp_path / "other.csv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"n", "correlation", "rms_difference", "mean_difference"} <= set(result)
    assert result["mean_difference"] == pytest.approx(1.5) and result["n"] == ds.attrs["n_cells"]


def test_compare_drops_far_points(ds):
    points = cell_points(ds).iloc[:100].copy()
    far = pd.DataFrame({"lat": [-65.0, -61.0, -50.0], "lon": [-100.0, 150.0, 0.0], "value": [1.0, 2.0, 3.0]})
    result = compare.compare_maps(ds, pd.concat([points, far], ignore_index=True))
    assert result["n"] == 100 and result["n_other"] == 102 and result["n_dropped"] == 2  # -50° is outside
    assert result["rms_difference"] == pytest.approx(0.0, abs=1e-9)
    # points 0.1° north of cell centres (≈ 11 km): kept at 20 km, dropped at 5 km
    shifted = points.assign(lat=points.lat + 0.1)
    d = haversine_km(shifted.lat, shifted.lon, points.lat, points.lon)
    assert (d > 5).all() and (d < 20).all()
    assert compare.compare_maps(ds, shifted, max_distance_km=20.0)["n"] == 100
    none = compare.compare_maps(ds, shifted, max_distance_km=5.0)
    assert none["n"] == 0 and np.isnan(none["correlation"]) and none["n_dropped"] == 100


def test_compare_files_and_difference_png(ds, tmp_path):
    mapping.write_map(ds, str(tmp_path / "ours.zarr"), netcdf=True, geotiff=False)
    other = cell_points(ds, shift=-3.0)
    other["value"] = other["value"] / 1000.0
    other.rename(columns={"lat": "Latitude", "lon": "Longitude", "value": "GHF"}).to_csv(tmp_path / "other.csv",
                                                                                         index=False)
    png = tmp_path / "diff.png"
    result = compare.compare(str(tmp_path / "ours.zarr"), str(tmp_path / "other.csv"), out_png=str(png))
    assert result["n"] == ds.attrs["n_cells"] and result["mean_difference"] == pytest.approx(-3.0)
    assert result["units_rule"].startswith("magnitude") and result["png"] == str(png)
    assert png.read_bytes()[:8] == PNG
    json.dumps(result, allow_nan=False)
    nc = compare.compare(str(tmp_path / "ours.nc"), str(tmp_path / "other.csv"), units="W/m2")
    assert nc["mean_difference"] == pytest.approx(-3.0) and nc["units_rule"].startswith("given")


def test_difference_grid_averages_onto_cells():
    frame = pd.DataFrame({"lat": [-70.1, -70.2, -80.3], "lon": [10.1, 10.2, -5.0], "difference": [1.0, 3.0, -4.0]})
    grid = compare.difference_grid(frame, 0.5, -60.0)
    assert grid.sel(lat=-70.25, lon=10.25).item() == pytest.approx(2.0)
    assert grid.sel(lat=-80.25, lon=-4.75).item() == pytest.approx(-4.0)
    assert np.isfinite(grid.values).sum() == 2


@requires_data("ghf/loesing_ebbing2021")
def test_loesing_ebbing_map(ds):
    path = compare.loesing_ebbing_path()
    points = published.read_published_map(path)
    assert len(points) == 5463 and points.value.mean() == pytest.approx(63.34, abs=0.01)
    assert points.lat.max() == -60.5 and points.attrs["units_rule"].startswith("column name 'HF [mW/m2]'")
    result = compare.compare_maps(ds, points)
    assert 0 < result["n"] < len(points) and result["n_dropped"] > 0
    assert result["median_distance_km"] < 30.0


def test_area_weighted_statistics_weigh_cells_by_cos_latitude():
    lat = np.array([-60.0, -60.0, -89.0, -89.0])
    lon = np.array([-90.0, 90.0, -90.0, 90.0])  # West (270° E) and East (90° E) at each latitude
    ours = np.array([70.0, 50.0, 10.0, 10.0])
    other = np.array([60.0, 45.0, 30.0, 35.0])
    stats = compare.area_weighted_statistics(lat, lon, ours, other)
    w = np.cos(np.deg2rad(lat))
    assert stats["mean_ours"] == pytest.approx(np.sum(w * ours) / w.sum())  # near 60, not the plain mean 35
    assert stats["mean_ours"] > 55 and np.mean(ours) == 35
    assert stats["mean_difference"] == pytest.approx(np.sum(w * (ours - other)) / w.sum())
    assert stats["rms_difference"] == pytest.approx(np.sqrt(np.sum(w * (ours - other) ** 2) / w.sum()))
    assert stats["range_ours"] == [10.0, 70.0] and stats["range_other"] == [30.0, 60.0]
    assert stats["west"]["n"] == stats["east"]["n"] == 2
    assert stats["west"]["mean_ours"] > stats["east"]["mean_ours"]  # 70 vs 50 at 60° S dominate
    mo, mt = (np.sum(w * x) / w.sum() for x in (ours, other))
    cov, vo, vt = (np.sum(w * a * b) / w.sum() for a, b in
                   ((ours - mo, other - mt), (ours - mo, ours - mo), (other - mt, other - mt)))
    assert stats["correlation"] == pytest.approx(cov / np.sqrt(vo * vt))
    assert stats["correlation"] != pytest.approx(np.corrcoef(ours, other)[0, 1])  # the weights change it
    empty = compare.area_weighted_statistics(*(np.array([]),) * 4)
    assert np.isnan(empty["mean_ours"]) and empty["west"]["n"] == 0


def test_compare_reports_area_weighted_statistics(ds):
    other = cell_points(ds, shift=-5.0)  # other = ours + 5
    result = compare.compare_maps(ds, other)
    weighted = result["area_weighted"]
    assert weighted["mean_difference"] == pytest.approx(-5.0, abs=1e-6)
    assert weighted["correlation"] == pytest.approx(1.0)
    assert weighted["west"]["n"] + weighted["east"]["n"] == result["n"]


def test_rasters_are_averaged_onto_our_cells_not_matched_by_distance():
    lat = np.array([-80.25, -79.75])
    lon = np.array([10.25, 10.75, 11.25])
    ours = xr.Dataset({"heatflow": (("lat", "lon"), [[50.0, 60.0, np.nan], [70.0, 80.0, 90.0]])},
                      coords={"lat": lat, "lon": lon})
    # a raster twice as fine: 4 points per cell; the (−80.25, 11.25) cell is ocean for us but 3000 for it
    flat, flon = np.meshgrid(np.arange(-80.375, -79.5, 0.25), np.arange(10.125, 11.5, 0.25), indexing="ij")
    value = np.where((flon > 11.0) & (flat < -80.0), 3000.0, flat + 100.0)
    theirs = pd.DataFrame({"lat": flat.ravel(), "lon": flon.ravel(), "value": value.ravel()})
    theirs.attrs.update(format="netcdf", units_rule="test")
    cells = compare.on_our_cells(theirs, ours["heatflow"])
    assert len(cells) == 5 and (cells["points"] == 4).all() and cells.attrs["n_points"] == 20
    assert cells["value"].max() < 3000.0
    first = cells[(cells["lat"] == -80.25) & (cells["lon"] == 10.25)]
    assert first["value"].item() == pytest.approx(-80.25 + 100.0)
    result = compare.compare_maps(ours, theirs, lat_max=-60.0)
    assert result["n"] == 5 and result["matching"].startswith("raster averaged")
    assert result["area_weighted"]["range_other"][1] < 3000.0  # the ocean cell's value is never compared
    assert result["n_other"] == 24 and result["n_dropped"] == 4
    # the same values as points (a CSV) are matched by distance, as before
    theirs.attrs["format"] = "text"
    assert compare.compare_maps(ours, theirs, lat_max=-60.0)["matching"].startswith("each point")


@requires_data("ghf/lucazeau2019_grid")
def test_lucazeau_grid_is_compared_cell_for_cell_without_ridge_values():
    path = compare.published_map_paths()["lucazeau2019"]
    points = published.read_published_map(path)
    assert len(points) == 360 * 720 and points.attrs["format"] == "netcdf"
    south = points[points["lat"] <= -60.0]
    assert south["value"].max() > 2000.0  # Pacific-Antarctic ridge cells at 60.25° S
    # our map: every 0.5° cell south of 70° S (all land or grounded ice there)
    glat, glon = np.arange(-89.75, -69.9, 0.5), np.arange(-179.75, 180.0, 0.5)
    ours = xr.Dataset({"heatflow": (("lat", "lon"), np.full((glat.size, glon.size), 60.0))},
                      coords={"lat": glat, "lon": glon})
    result = compare.compare_maps(ours, points)
    assert result["n"] == glat.size * glon.size and result["median_distance_km"] == 0.0
    assert result["matching"].startswith("raster averaged")
    assert 30.0 < result["area_weighted"]["range_other"][0] and result["area_weighted"]["range_other"][1] < 200.0
    assert 55.0 < result["area_weighted"]["mean_other"] < 80.0
