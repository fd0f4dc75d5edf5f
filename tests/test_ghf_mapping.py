"""Antarctic map (seisgrid.ghf.mapping): prediction with uncertainties, outputs, summary, map comparison."""

from __future__ import annotations

import gzip
import json

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import requires_data

from seisgrid import config
from seisgrid.errors import ConfigError, InputFileError, SeisgridError
from seisgrid.ghf import mapping
from seisgrid.ghf.grid import grid_coords, haversine_km

rasterio = pytest.importorskip("rasterio")

NAMES = ["f_lat", "f_lon"]
PNG = b"\x89PNG\r\n\x1a\n"


class StandIn:
    """A model with FittedBNN's predict contract and known outputs: mean = 40 + f_lat/10 + f_lon/100 + offset."""

    def __init__(self, offset, aleatoric, epistemic):
        self.offset, self.aleatoric, self.epistemic = offset, aleatoric, epistemic
        self.samples = None

    def predict(self, X, samples=50, seed=0):
        self.samples, self.seed = samples, seed
        n = len(X)
        a, e = np.full(n, float(self.aleatoric)), np.full(n, float(self.epistemic))
        return {"mean": 40.0 + X[:, 0] / 10.0 + X[:, 1] / 100.0 + self.offset, "aleatoric": a, "epistemic": e,
                "total": a + e}


def expected_mean(lat, lon):
    return 40.0 + (-lat) / 10.0 + (lon + 180.0) / 100.0


@pytest.fixture(scope="module", autouse=True)
def _coast_cache(tmp_path_factory):
    with dask.config.set({"seisgrid.maps.coast_cache": str(tmp_path_factory.mktemp("coast-cache")),
                          "seisgrid.maps.dpi": 40}):
        yield


@pytest.fixture(scope="module")
def features():
    """Feature grid south of 50° S: land (fraction 1) south of 70° S and in a 0–30° E lobe to 62° S."""
    lat, lon = grid_coords(0.5)
    lat = lat[lat <= -50.0]
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = np.where((la <= -70.0) | ((la <= -62.0) & (lo > 0.0) & (lo < 30.0)), 1.0, 0.2)
    f_lon = lo + 180.0
    f_lon[(la == -80.25) & (lo < 0.0)] = np.nan  # a missing feature keeps a land cell out
    ds = xr.Dataset({"f_lat": (("lat", "lon"), -la), "f_lon": (("lat", "lon"), f_lon),
                     "land_fraction": (("lat", "lon"), land.astype(np.float32))},
                    coords={"lat": lat, "lon": lon})
    return ds


@pytest.fixture(scope="module")
def models():
    return [StandIn(-5.0, 400.0, 50.0), StandIn(5.0, 600.0, 90.0)]


@pytest.fixture(scope="module")
def ds(models, features):
    return mapping.predict_map(models, features, NAMES, lat_max=-60.0, samples=7)


def expected_cells(features, lat_max=-60.0):
    region = features.sel(lat=slice(None, lat_max))
    keep = (region.land_fraction >= 0.5) & np.isfinite(region.f_lat) & np.isfinite(region.f_lon)
    return keep.transpose("lat", "lon").values


# ---------------------------------------------------------------------------------------- prediction


def test_predict_map_variables_and_uncertainties(ds, models, features):
    assert list(mapping.MAP_VARIABLES) == [v for v in ds.data_vars]
    assert all(m.samples == 7 for m in models)
    assert ds.lat.max() <= -60.0 and ds.sizes["lon"] == 720
    keep = expected_cells(features)
    hf = ds.heatflow.transpose("lat", "lon").values
    assert np.array_equal(np.isfinite(hf), keep)
    assert ds.attrs["n_cells"] == keep.sum() > 1000
    la, lo = np.meshgrid(ds.lat, ds.lon, indexing="ij")
    np.testing.assert_allclose(hf[keep], expected_mean(la, lo)[keep])
    # aleatoric: mean of 400, 600; epistemic: mean of 50, 90; between: population variance of ±5 = 25
    for name, variance in (("aleatoric_sd", 500.0), ("epistemic_sd", 70.0), ("within_sd", 570.0),
                           ("between_sd", 25.0), ("total_sd", 595.0)):
        values = ds[name].values[keep]
        np.testing.assert_allclose(values, np.sqrt(variance), err_msg=name)
        assert ds[name].attrs["units"] == "mW m-2" and "standard deviation" in ds[name].attrs["long_name"]
    np.testing.assert_allclose(ds.total_sd.values ** 2, ds.within_sd.values ** 2 + ds.between_sd.values ** 2)
    assert ds.attrs["models"] == 2 and ds.attrs["samples"] == 7 and ds.attrs["features"] == "f_lat,f_lon"
    assert "standard deviations" in ds.attrs["uncertainty"]


def test_predict_map_default_combiner_is_consistent(models, features):
    out = mapping.predict_map(models, features, NAMES, lat_max=-65.0, samples=3)
    keep = np.isfinite(out.heatflow.values)
    assert out.lat.max() <= -65.0 and keep.sum() == expected_cells(features, -65.0).sum()
    la, lo = np.meshgrid(out.lat, out.lon, indexing="ij")
    np.testing.assert_allclose(out.heatflow.values[keep], expected_mean(la, lo)[keep])
    np.testing.assert_allclose(out.total_sd.values[keep] ** 2,
                               out.within_sd.values[keep] ** 2 + out.between_sd.values[keep] ** 2)
    np.testing.assert_allclose(out.within_sd.values[keep] ** 2,
                               out.aleatoric_sd.values[keep] ** 2 + out.epistemic_sd.values[keep] ** 2)


def test_predict_map_errors(models, features):
    with pytest.raises(SeisgridError, match="not in the feature grid"):
        mapping.predict_map(models, features, ["nope"])
    with pytest.raises(SeisgridError, match="no cell south"):
        mapping.predict_map(models, features, NAMES, min_land_fraction=2.0)
    with pytest.raises(SeisgridError, match="lacks 'between'"):
        mapping.predict_map(models, features, NAMES,
                            ensemble_predict=lambda m, X, samples: {"mean": X[:, 0], "aleatoric": X[:, 0],
                                                                     "epistemic": X[:, 0]})


# ---------------------------------------------------------------------------------------- outputs


def test_write_map_zarr_netcdf_geotiff(ds, tmp_path):
    out = tmp_path / "antarctica.zarr"
    paths = mapping.write_map(ds, str(out), geotiff_resolution_km=50.0)
    assert set(paths) == {"zarr", "netcdf", "geotiff"}
    back = xr.open_zarr(paths["zarr"])
    xr.testing.assert_allclose(back.load(), ds)
    assert back.heatflow.attrs["units"] == "mW m-2" and back.attrs["samples"] == 7
    with xr.open_dataset(paths["netcdf"]) as nc:
        xr.testing.assert_allclose(nc.load(), ds)
    assert paths["geotiff"] == str(tmp_path / "antarctica_epsg3031.tif")
    with rasterio.open(paths["geotiff"]) as src:
        assert src.count == 6 and src.crs.to_epsg() == 3031
        assert list(src.descriptions) == list(mapping.MAP_VARIABLES)
        assert src.res == (50000.0, 50000.0) and src.tags(1)["units"] == "mW m-2"
        bands = src.read()
        # centre pixels straddle the pole; the corners lie north of 60° S
        assert np.isnan(bands[:, 0, 0]).all()
        finite = bands[0][np.isfinite(bands[0])]
        assert finite.size > 1000
        assert set(np.round(finite, 3)) <= set(np.round(ds.heatflow.values[np.isfinite(ds.heatflow.values)].astype(np.float32), 3))
        np.testing.assert_allclose(bands[1][np.isfinite(bands[1])], np.sqrt(595.0), rtol=1e-6)


def test_geotiff_pixels_take_their_cell(ds):
    from pyproj import Transformer

    bands, transform, names = mapping.polar_stereo_raster(ds, ["heatflow"], resolution_km=25.0)
    assert names == ["heatflow"] and bands.shape[1] == bands.shape[2]
    rows, cols = np.nonzero(np.isfinite(bands[0]))
    pick = np.linspace(0, rows.size - 1, 50).astype(int)
    x = transform.c + (cols[pick] + 0.5) * transform.a
    y = transform.f + (rows[pick] + 0.5) * transform.e
    lon, lat = Transformer.from_crs("EPSG:3031", "EPSG:4326", always_xy=True).transform(x, y)
    cell = ds.heatflow.sel(lat=xr.DataArray(lat), lon=xr.DataArray(lon), method="nearest").values
    # nearest-by-coordinate equals containing cell away from boundaries; allow a few boundary pixels
    assert np.mean(np.isclose(bands[0][rows[pick], cols[pick]], cell, rtol=1e-6)) > 0.9


def test_write_map_pngs(ds, tmp_path):
    paths = mapping.write_map(ds, str(tmp_path / "m.zarr"), netcdf=False, geotiff=False,
                              png_folder=str(tmp_path / "png"))
    pngs = {k: v for k, v in paths.items() if k.startswith("png_")}
    assert set(pngs) == {f"png_{v}" for v in mapping.MAP_VARIABLES}
    for path in pngs.values():
        with open(path, "rb") as f:
            assert f.read(8) == PNG


# ---------------------------------------------------------------------------------------- summary


def test_summary_known_field():
    lat = np.array([-80.25, -60.25])
    lon = np.array([0.25, 0.75])
    hf = np.array([[40.0, 60.0], [80.0, np.nan]])
    sd = np.array([[10.0, 20.0], [30.0, np.nan]])
    ds = xr.Dataset({"heatflow": (("lat", "lon"), hf), "total_sd": (("lat", "lon"), sd),
                     "aleatoric_sd": (("lat", "lon"), sd), "epistemic_sd": (("lat", "lon"), sd / 10.0)},
                    coords={"lat": lat, "lon": lon})
    s = mapping.summary(ds)
    w = np.cos(np.radians([-80.25, -80.25, -60.25]))
    assert s["n_cells"] == 3 and s["min"] == 40.0 and s["max"] == 80.0 and s["median"] == 60.0
    assert s["mean"] == pytest.approx(np.sum(w * [40, 60, 80]) / w.sum())
    assert s["mean_unweighted"] == pytest.approx(60.0)
    assert s["uncertainty_mean"] == pytest.approx(np.sum(w * [10, 20, 30]) / w.sum())
    assert s["uncertainty_mean_unweighted"] == pytest.approx(20.0)
    assert s["median_aleatoric_variance"] == pytest.approx(400.0)
    assert s["median_epistemic_variance"] == pytest.approx(4.0)
    assert s["correlation_mean_uncertainty"] == pytest.approx(1.0)
    assert s["reference"]["mean"] == 65.6 and s["reference"]["min"] == 20.0 and s["reference"]["max"] == 110.0
    json.dumps(s)


def test_summary_of_predicted_map(ds):
    s = mapping.summary(ds)
    assert s["n_cells"] == ds.attrs["n_cells"]
    assert s["median_aleatoric_variance"] == pytest.approx(500.0)
    assert s["median_epistemic_variance"] == pytest.approx(70.0)
    assert s["uncertainty_mean"] == pytest.approx(np.sqrt(595.0))
    assert np.isnan(s["correlation_mean_uncertainty"])  # constant uncertainty


# ---------------------------------------------------------------------------------------- reading maps


def test_read_csv_gz_with_units_in_column_names(tmp_path):
    path = tmp_path / "map.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("Lon,Lat,HF [mW/m2],HF_min [mW/m2],HF_max [mW/m2]\n")
        f.write("-180.0,-90.0,60.5,59.0,61.0\n190.0,-70.0,70.0,60.0,80.0\n10.0,-65.0,0.5,0.1,0.9\n")
    points = mapping.read_published_map(str(path))
    assert list(points.columns) == ["lat", "lon", "value"]
    np.testing.assert_allclose(points.value, [60.5, 70.0, 0.5])  # units from the name, not the magnitude
    np.testing.assert_allclose(points.lon, [-180.0, -170.0, 10.0])
    assert "column name 'HF [mW/m2]'" in points.attrs["units_rule"] and points.attrs["value_name"] == "HF [mW/m2]"
    assert mapping.read_published_map(str(path), value="HF_max [mW/m2]").value.iloc[0] == 61.0


def test_read_text_magnitude_rule_and_override(tmp_path):
    path = tmp_path / "points.xyz"
    path.write_text("# lon lat q\n0.0 -70.0 0.060\n10.0 -75.0 0.070\n20.0 -80.0 0.080\n")
    points = mapping.read_published_map(str(path))
    np.testing.assert_allclose(points.value, [60.0, 70.0, 80.0])
    assert points.attrs["units_rule"].startswith("magnitude: median |value| 0.07 < 1")
    given = mapping.read_published_map(str(path), units="mW/m2")
    np.testing.assert_allclose(given.value, [0.06, 0.07, 0.08])
    assert given.attrs["units_rule"].startswith("given: mW/m2")
    big = tmp_path / "named.txt"
    big.write_text("Longitude  Latitude  GHF\n0 -70 55\n1 -71 65\n")
    points = mapping.read_published_map(str(big))
    assert points.attrs["units_rule"].startswith("magnitude") and points.value.tolist() == [55.0, 65.0]
    np.testing.assert_allclose(mapping.read_published_map(str(big), units="W m-2").value, [55000.0, 65000.0])


def _polar_grid(units="W m-2", with_latlon=True):
    from pyproj import Transformer

    x = np.arange(-2_000_000.0, 2_000_001.0, 100_000.0)
    xx, yy = np.meshgrid(x, x)
    lon, lat = Transformer.from_crs("EPSG:3031", "EPSG:4326", always_xy=True).transform(xx, yy)
    value = (50.0 + 0.5 * (lat + 90.0)) / 1000.0  # W m-2
    ds = xr.Dataset({"ghf": (("y", "x"), value, {"units": units}),
                     "crs": ((), 0, {"grid_mapping_name": "polar_stereographic", "crs_wkt": "EPSG:3031"})},
                    coords={"x": x, "y": x})
    ds["ghf"].attrs["grid_mapping"] = "crs"
    if with_latlon:
        ds = ds.assign_coords(lat=(("y", "x"), lat, {"units": "degrees_north"}),
                              lon=(("y", "x"), lon, {"units": "degrees_east"}))
    return ds, lat, lon


def test_read_netcdf_polar_stereographic_2d_latlon_in_w(tmp_path):
    ds, lat, _ = _polar_grid()
    path = tmp_path / "polar.nc"
    ds.to_netcdf(path)
    points = mapping.read_published_map(str(path))
    assert len(points) == lat.size
    np.testing.assert_allclose(np.sort(points.value), np.sort((50.0 + 0.5 * (lat + 90.0)).ravel()))
    assert points.attrs["units_rule"] == "attribute ghf.units 'W m-2' (×1000 to mW m-2)"
    # the same grid with only x/y and its CF grid mapping
    bare, _, _ = _polar_grid(with_latlon=False)
    bare.to_netcdf(tmp_path / "bare.nc")
    again = mapping.read_published_map(str(tmp_path / "bare.nc"))
    np.testing.assert_allclose(np.sort(again.value), np.sort(points.value))
    np.testing.assert_allclose(np.sort(again.lat), np.sort(points.lat), atol=1e-9)


def test_read_grid_1d_latlon_zarr_and_magnitude(tmp_path):
    lat, lon = np.array([-80.0, -70.0]), np.array([0.0, 90.0, 180.0])
    ds = xr.Dataset({"heat_flow": (("latitude", "longitude"), np.array([[0.05, 0.06, 0.07], [0.08, np.nan, 0.09]]))},
                    coords={"latitude": lat, "longitude": lon})
    ds.to_zarr(tmp_path / "g.zarr", zarr_format=3, consolidated=False)
    points = mapping.read_published_map(str(tmp_path / "g.zarr"))
    assert len(points) == 5 and points.attrs["units_rule"].startswith("magnitude")
    np.testing.assert_allclose(points.value, [50.0, 60.0, 70.0, 80.0, 90.0])
    np.testing.assert_allclose(points.lon, [0.0, 90.0, -180.0, 0.0, -180.0])


def test_read_geotiff_roundtrip(ds, tmp_path):
    path = mapping.write_geotiff(ds, str(tmp_path / "m.tif"), resolution_km=100.0)
    points = mapping.read_published_map(path)
    assert points.attrs["value_name"] == "heatflow" and points.attrs["units_rule"].startswith("band 1 units 'mW m-2'")
    assert points.lat.max() <= -60.0 and 15.0 < points.value.min() and points.value.max() < 100.0
    sd = mapping.read_published_map(path, value="total_sd")
    np.testing.assert_allclose(sd.value, np.sqrt(595.0), rtol=1e-6)


def test_read_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        mapping.read_published_map(str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("lon,lat,a,b\n0,-70,1,2\n")
    with pytest.raises(InputFileError, match="bad.csv: cannot tell the heat-flow column"):
        mapping.read_published_map(str(bad))
    assert mapping.read_published_map(str(bad), value="b").value.tolist() == [2.0]
    noll = tmp_path / "noll.csv"
    noll.write_text("easting,northing,hf\n0,-70,1\n")
    with pytest.raises(InputFileError, match="no longitude/latitude"):
        mapping.read_published_map(str(noll))
    with pytest.raises(ConfigError, match="units 'K'"):
        mapping.read_published_map(str(bad), value="b", units="K")


# ---------------------------------------------------------------------------------------- comparison


def _cell_points(ds, shift=0.0):
    hf = ds.heatflow.transpose("lat", "lon")
    la, lo = np.meshgrid(hf.lat, hf.lon, indexing="ij")
    ok = np.isfinite(hf.values)
    return pd.DataFrame({"lat": la[ok], "lon": lo[ok], "value": hf.values[ok] - shift})


def test_compare_identical_and_offset(ds):
    same = mapping.compare_maps(ds, _cell_points(ds))
    assert same["n"] == ds.attrs["n_cells"] and same["n_dropped"] == 0
    assert same["correlation"] == pytest.approx(1.0) and same["rms_difference"] == pytest.approx(0.0, abs=1e-9)
    assert same["max_distance_km"] == pytest.approx(41.698, abs=0.01)
    off = mapping.compare_maps(ds, _cell_points(ds, shift=7.0))
    assert off["mean_difference"] == pytest.approx(7.0) and off["median_difference"] == pytest.approx(7.0)
    assert off["rms_difference"] == pytest.approx(7.0) and off["correlation"] == pytest.approx(1.0)
    assert set(off["difference"].columns) == {"lat", "lon", "ours", "other", "difference", "distance_km"}
    grid = off["difference_grid"]
    assert np.array_equal(np.isfinite(grid.values), np.isfinite(ds.heatflow.values))
    np.testing.assert_allclose(grid.values[np.isfinite(grid.values)], 7.0)


def test_compare_cli_json(ds, tmp_path, capsys):
    from seisgrid.cli import main

    mapping.write_map(ds, str(tmp_path / "ours.zarr"), netcdf=False, geotiff=False)
    _cell_points(ds, shift=1.5).to_csv(tmp_path / "other.csv", index=False)
    assert main(["ghf", "compare", str(tmp_path / "ours.zarr"), str(tmp_path / "other.csv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"n", "correlation", "rms_difference", "mean_difference"} <= set(result)
    assert result["mean_difference"] == pytest.approx(1.5) and result["n"] == ds.attrs["n_cells"]


def test_compare_drops_far_points(ds):
    points = _cell_points(ds).iloc[:100].copy()
    far = pd.DataFrame({"lat": [-65.0, -61.0, -50.0], "lon": [-100.0, 150.0, 0.0], "value": [1.0, 2.0, 3.0]})
    result = mapping.compare_maps(ds, pd.concat([points, far], ignore_index=True))
    assert result["n"] == 100 and result["n_other"] == 102 and result["n_dropped"] == 2  # -50° is outside
    assert result["rms_difference"] == pytest.approx(0.0, abs=1e-9)
    # points 0.1° north of cell centres (≈ 11 km): kept at 20 km, dropped at 5 km
    shifted = points.assign(lat=points.lat + 0.1)
    d = haversine_km(shifted.lat, shifted.lon, points.lat, points.lon)
    assert (d > 5).all() and (d < 20).all()
    assert mapping.compare_maps(ds, shifted, max_distance_km=20.0)["n"] == 100
    none = mapping.compare_maps(ds, shifted, max_distance_km=5.0)
    assert none["n"] == 0 and np.isnan(none["correlation"]) and none["n_dropped"] == 100


def test_compare_files_and_difference_png(ds, tmp_path):
    mapping.write_map(ds, str(tmp_path / "ours.zarr"), netcdf=True, geotiff=False)
    other = _cell_points(ds, shift=-3.0)
    other["value"] = other["value"] / 1000.0
    other.rename(columns={"lat": "Latitude", "lon": "Longitude", "value": "GHF"}).to_csv(tmp_path / "other.csv",
                                                                                         index=False)
    png = tmp_path / "diff.png"
    result = mapping.compare(str(tmp_path / "ours.zarr"), str(tmp_path / "other.csv"), out_png=str(png))
    assert result["n"] == ds.attrs["n_cells"] and result["mean_difference"] == pytest.approx(-3.0)
    assert result["units_rule"].startswith("magnitude") and result["png"] == str(png)
    assert png.read_bytes()[:8] == PNG
    json.dumps(result, allow_nan=False)
    nc = mapping.compare(str(tmp_path / "ours.nc"), str(tmp_path / "other.csv"), units="W/m2")
    assert nc["mean_difference"] == pytest.approx(-3.0) and nc["units_rule"].startswith("given")


def test_difference_grid_averages_onto_cells():
    frame = pd.DataFrame({"lat": [-70.1, -70.2, -80.3], "lon": [10.1, 10.2, -5.0], "difference": [1.0, 3.0, -4.0]})
    grid = mapping.difference_grid(frame, 0.5, -60.0)
    assert grid.sel(lat=-70.25, lon=10.25).item() == pytest.approx(2.0)
    assert grid.sel(lat=-80.25, lon=-4.75).item() == pytest.approx(-4.0)
    assert np.isfinite(grid.values).sum() == 2


# ---------------------------------------------------------------------------------------- the step


def test_build_map(models, features, tmp_path, monkeypatch):
    monkeypatch.setattr(mapping, "_load_ensemble", lambda d: (models, {"features": NAMES}))
    other = _cell_points(mapping.predict_map(models, features, NAMES),
                         shift=2.0)
    other.rename(columns={"lat": "Lat", "lon": "Lon", "value": "HF [mW/m2]"}).to_csv(tmp_path / "le.csv", index=False)
    with dask.config.set({"seisgrid.ghf_map.geotiff_resolution_km": 100.0}):
        report = mapping.build_map("ensemble", features, str(tmp_path / "map.zarr"), samples=4,
                                   compare_with=str(tmp_path / "le.csv"), png_folder=str(tmp_path / "png"))
    json.dumps(report)  # NaN (e.g. r of a constant uncertainty) is written as null by the CLI
    assert {"min", "max", "mean", "uncertainty_mean", "outputs", "comparison", "reference"} <= set(report)
    assert report["uncertainty_mean"] == pytest.approx(np.sqrt(595.0))
    assert report["comparison"]["mean_difference"] == pytest.approx(2.0)
    assert report["comparison"]["n"] == report["n_cells"] and report["comparison"]["correlation"] == pytest.approx(1.0)
    assert {"zarr", "netcdf", "geotiff", "png_heatflow", "png_total_sd", "png_difference"} <= set(report["outputs"])
    assert json.loads(xr.open_zarr(report["outputs"]["zarr"]).attrs["summary"])["n_cells"] == report["n_cells"]
    assert models[0].samples == 4
    skip = mapping.build_map("ensemble", features, str(tmp_path / "map2.zarr"), compare_with="none",
                             netcdf=False, geotiff=False, png_folder=str(tmp_path / "png2"))
    assert skip["comparison"] is None


def test_settings_declared():
    names = [name for name, _, _ in config.option_specs("ghf_map")]
    assert names == ["lat_max", "samples", "min_land_fraction", "geotiff_resolution_km", "compare_max_distance_km"]


@requires_data("ghf/loesing_ebbing2021")
def test_loesing_ebbing_map(ds):
    path = mapping.loesing_ebbing_path()
    points = mapping.read_published_map(path)
    assert len(points) == 5463 and points.value.mean() == pytest.approx(63.34, abs=0.01)
    assert points.lat.max() == -60.5 and points.attrs["units_rule"].startswith("column name 'HF [mW/m2]'")
    result = mapping.compare_maps(ds, points)
    assert 0 < result["n"] < len(points) and result["n_dropped"] > 0
    assert result["median_distance_km"] < 30.0
