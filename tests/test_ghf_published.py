"""Published heat-flow maps (seisgrid.ghf.published).

Text tables, NetCDF/Zarr grids in any projection and GeoTIFF read as points in mW m⁻², the unit rule, errors.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import xarray as xr
from ghf_map_inputs import predicted_map

from seisgrid.errors import ConfigError, InputFileError
from seisgrid.ghf import mapping, published

rasterio = pytest.importorskip("rasterio")


@pytest.fixture(scope="module")
def ds():
    return predicted_map()


def test_read_csv_gz_with_units_in_column_names(tmp_path):
    path = tmp_path / "map.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("Lon,Lat,HF [mW/m2],HF_min [mW/m2],HF_max [mW/m2]\n")
        f.write("-180.0,-90.0,60.5,59.0,61.0\n190.0,-70.0,70.0,60.0,80.0\n10.0,-65.0,0.5,0.1,0.9\n")
    points = published.read_published_map(str(path))
    assert list(points.columns) == ["lat", "lon", "value"]
    np.testing.assert_allclose(points.value, [60.5, 70.0, 0.5])  # units from the name, not the magnitude
    np.testing.assert_allclose(points.lon, [-180.0, -170.0, 10.0])
    assert "column name 'HF [mW/m2]'" in points.attrs["units_rule"] and points.attrs["value_name"] == "HF [mW/m2]"
    assert published.read_published_map(str(path), value="HF_max [mW/m2]").value.iloc[0] == 61.0


def test_read_text_magnitude_rule_and_override(tmp_path):
    path = tmp_path / "points.xyz"
    path.write_text("# lon lat q\n0.0 -70.0 0.060\n10.0 -75.0 0.070\n20.0 -80.0 0.080\n")
    points = published.read_published_map(str(path))
    np.testing.assert_allclose(points.value, [60.0, 70.0, 80.0])
    assert points.attrs["units_rule"].startswith("magnitude: median |value| 0.07 < 1")
    given = published.read_published_map(str(path), units="mW/m2")
    np.testing.assert_allclose(given.value, [0.06, 0.07, 0.08])
    assert given.attrs["units_rule"].startswith("given: mW/m2")
    big = tmp_path / "named.txt"
    big.write_text("Longitude  Latitude  GHF\n0 -70 55\n1 -71 65\n")
    points = published.read_published_map(str(big))
    assert points.attrs["units_rule"].startswith("magnitude") and points.value.tolist() == [55.0, 65.0]
    np.testing.assert_allclose(published.read_published_map(str(big), units="W m-2").value, [55000.0, 65000.0])


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
    points = published.read_published_map(str(path))
    assert len(points) == lat.size
    np.testing.assert_allclose(np.sort(points.value), np.sort((50.0 + 0.5 * (lat + 90.0)).ravel()))
    assert points.attrs["units_rule"] == "attribute ghf.units 'W m-2' (×1000 to mW m-2)"
    # the same grid with only x/y and its CF grid mapping
    bare, _, _ = _polar_grid(with_latlon=False)
    bare.to_netcdf(tmp_path / "bare.nc")
    again = published.read_published_map(str(tmp_path / "bare.nc"))
    np.testing.assert_allclose(np.sort(again.value), np.sort(points.value))
    np.testing.assert_allclose(np.sort(again.lat), np.sort(points.lat), atol=1e-9)


def test_read_grid_1d_latlon_zarr_and_magnitude(tmp_path):
    lat, lon = np.array([-80.0, -70.0]), np.array([0.0, 90.0, 180.0])
    ds = xr.Dataset({"heat_flow": (("latitude", "longitude"), np.array([[0.05, 0.06, 0.07], [0.08, np.nan, 0.09]]))},
                    coords={"latitude": lat, "longitude": lon})
    ds.to_zarr(tmp_path / "g.zarr", zarr_format=3, consolidated=False)
    points = published.read_published_map(str(tmp_path / "g.zarr"))
    assert len(points) == 5 and points.attrs["units_rule"].startswith("magnitude")
    np.testing.assert_allclose(points.value, [50.0, 60.0, 70.0, 80.0, 90.0])
    np.testing.assert_allclose(points.lon, [0.0, 90.0, -180.0, 0.0, -180.0])


def test_read_geotiff_roundtrip(ds, tmp_path):
    path = mapping.write_geotiff(ds, str(tmp_path / "m.tif"), resolution_km=100.0)
    points = published.read_published_map(path)
    assert points.attrs["value_name"] == "heatflow" and points.attrs["units_rule"].startswith("band 1 units 'mW m-2'")
    assert points.lat.max() <= -60.0 and 15.0 < points.value.min() and points.value.max() < 100.0
    sd = published.read_published_map(path, value="total_sd")
    np.testing.assert_allclose(sd.value, np.sqrt(595.0), rtol=1e-6)


def test_read_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        published.read_published_map(str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("lon,lat,a,b\n0,-70,1,2\n")
    with pytest.raises(InputFileError, match="bad.csv: cannot tell the heat-flow column"):
        published.read_published_map(str(bad))
    assert published.read_published_map(str(bad), value="b").value.tolist() == [2.0]
    noll = tmp_path / "noll.csv"
    noll.write_text("easting,northing,hf\n0,-70,1\n")
    with pytest.raises(InputFileError, match="no longitude/latitude"):
        published.read_published_map(str(noll))
    with pytest.raises(ConfigError, match="units 'K'"):
        published.read_published_map(str(bad), value="b", units="K")

