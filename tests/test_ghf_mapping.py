"""Antarctic map (seisgrid.ghf.mapping): prediction with uncertainties, outputs, summary, the map step."""

from __future__ import annotations

import json

import dask
import numpy as np
import pytest
import xarray as xr
from ghf_map_inputs import (
    NAMES,
    PNG,
    cell_points,
    expected_mean,
    feature_grid,
    predicted_map,
    quick_maps,
    stand_in_models,
)

from seisgrid import config
from seisgrid.errors import SeisgridError
from seisgrid.ghf import mapping

rasterio = pytest.importorskip("rasterio")


@pytest.fixture(scope="module", autouse=True)
def _coast_cache(tmp_path_factory):
    with quick_maps(tmp_path_factory.mktemp("coast-cache")):
        yield


@pytest.fixture(scope="module")
def features():
    return feature_grid()


@pytest.fixture(scope="module")
def models():
    return stand_in_models()


@pytest.fixture(scope="module")
def ds(models, features):
    return predicted_map(models, features)


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
        cells = ds.heatflow.values[np.isfinite(ds.heatflow.values)].astype(np.float32)
        assert set(np.round(finite, 3)) <= set(np.round(cells, 3))
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


# ---------------------------------------------------------------------------------------- the step


def test_build_map(models, features, tmp_path, monkeypatch):
    monkeypatch.setattr(mapping, "_load_ensemble", lambda d: (models, {"features": NAMES}))
    other = cell_points(mapping.predict_map(models, features, NAMES),
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
    assert {"zarr", "netcdf", "geotiff", "png_heatflow", "png_total_sd", "png_difference_le"} <= set(report["outputs"])
    assert len(report["comparisons"]) == 1 and report["calibration"] is None and report["applicability"] is None
    assert {"west", "east", "peninsula", "south_of_85", "lake_vostok_300km"} <= set(report["regions"])
    assert json.loads(xr.open_zarr(report["outputs"]["zarr"]).attrs["summary"])["n_cells"] == report["n_cells"]
    assert models[0].samples == 4
    skip = mapping.build_map("ensemble", features, str(tmp_path / "map2.zarr"), compare_with="none",
                             netcdf=False, geotiff=False, png_folder=str(tmp_path / "png2"))
    assert skip["comparison"] is None


def test_build_map_with_calibration_and_applicability(models, features, tmp_path, monkeypatch):
    from seisgrid.ghf.applicability import fit_applicability

    # training cells: the feature vectors of the map's cells north of 75° S only, so the south extrapolates
    region = features.sel(lat=slice(-75.0, -62.0))
    table = region[NAMES].to_dataframe().dropna()[NAMES]
    aoa = fit_applicability(table.iloc[::7])
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    (ensemble / "applicability.json").write_text(json.dumps(aoa.to_dict()))
    calibration = {"model_error_sd": 5.0, "levels": [0.68, 0.95], "coverage": [0.6, 0.9],
                   "coverage_calibrated": [0.68, 0.95], "fold_model_error_sd": [5.0], "scheme": "spatial"}
    manifest = {"features": NAMES, "calibration": calibration,
                "applicability": {"file": "applicability.json", "categories": {}, "threshold": aoa.threshold}}
    monkeypatch.setattr(mapping, "_load_ensemble", lambda d: (models, manifest))
    report = mapping.build_map(str(ensemble), features, str(tmp_path / "map.zarr"), samples=4, compare_with="none",
                               geotiff=False, png_folder=str(tmp_path / "png"))
    ds = xr.open_zarr(report["outputs"]["zarr"]).load()
    # stand-ins: aleatoric 500, epistemic 70 each, models' means spread by the offsets
    between = ds["total_sd"] ** 2 - ds["within_sd"] ** 2
    np.testing.assert_allclose(ds["mean_sd"] ** 2, 70.0 + between + 25.0, rtol=1e-5)
    np.testing.assert_allclose(ds["measurement_sd"] ** 2, ds["total_sd"] ** 2 + 25.0, rtol=1e-5)
    assert ds["mean_sd"].attrs["model_error_sd"] == 5.0
    outside = ds["outside_applicability"]
    assert set(np.unique(outside.values[np.isfinite(outside.values)])) == {0.0, 1.0}
    assert float(outside.sel(lat=slice(None, -85)).mean()) == 1.0  # far south of every training cell
    assert float(outside.sel(lat=slice(-74, -63)).mean()) < 0.1
    np.testing.assert_array_equal(outside.values == 1, ds["dissimilarity_index"].values > aoa.threshold)
    assert {"png_mean_sd", "png_outside_applicability", "png_dissimilarity_index"} <= set(report["outputs"])
    regions = report["regions"]
    assert regions["south_of_85"]["outside_applicability"] == 1.0
    assert regions["west_minus_east"] == pytest.approx(regions["west"]["mean"] - regions["east"]["mean"])
    assert report["calibration"]["model_error_sd"] == 5.0 and report["applicability"]["threshold"] == aoa.threshold


def test_region_statistics_area_weighted():
    lat, lon = np.array([-86.25, -80.25, -70.25]), np.array([-60.25, 100.25, 120.25])
    hf = np.full((3, 3), np.nan)
    hf[0, :] = 50.0          # south of 85° S
    hf[1, 1] = 90.0          # near Lake Vostok (80.25° S, 100.25° E is 330 km away: outside 300 km)
    hf[2, 0] = 80.0          # Peninsula box
    ds = xr.Dataset({"heatflow": (("lat", "lon"), hf)}, coords={"lat": lat, "lon": lon})
    r = mapping.region_statistics(ds)
    assert r["south_of_85"]["n"] == 3 and r["south_of_85"]["mean"] == pytest.approx(50.0)
    assert r["peninsula"]["n"] == 1 and r["peninsula"]["mean"] == 80.0
    w = np.cos(np.radians([-86.25, -70.25]))
    assert r["west"]["mean"] == pytest.approx(np.sum(w * [50.0, 80.0]) / w.sum())
    assert r["lake_vostok_300km"]["n"] == 0 and "mean" not in r["lake_vostok_300km"]
    assert r["west"]["study"].startswith("> 70")


def test_settings_declared():
    names = [name for name, _, _ in config.option_specs("ghf_map")]
    assert names == ["lat_max", "samples", "min_land_fraction", "geotiff_resolution_km", "compare_max_distance_km"]

