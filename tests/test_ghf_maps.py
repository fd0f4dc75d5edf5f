"""Maps (seisgrid.ghf.maps): offline coastlines from the GLOBE land mask, global and south-polar PNGs."""

from __future__ import annotations

import pathlib
import socket
import urllib.request

import dask
import numpy as np
import pytest

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf import maps
from seisgrid.ghf.grid import empty_dataset, haversine_km

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def _coast_cache(tmp_path_factory):
    # The .npz cache goes to a temporary folder, not the user's ~/.cache.
    with dask.config.set({"seisgrid.maps.coast_cache": str(tmp_path_factory.mktemp("coast-cache"))}):
        yield


@pytest.fixture(scope="module")
def lines():
    return maps.coastlines()


@pytest.fixture(scope="module")
def grid():
    ds = empty_dataset(2.0)
    lat, lon = np.meshgrid(ds.lat, ds.lon, indexing="ij")
    field = 60.0 + 20.0 * np.sin(np.radians(2 * lon)) * np.cos(np.radians(lat))
    field[(lat > 0) & (lat < 20)] = np.nan  # blank cells stay blank
    ds["heatflow"] = (("lat", "lon"), field, {"long_name": "geothermal heat flow", "units": "mW m-2"})
    ds["tectonic_class"] = (("lat", "lon"), ((lon + 180) // 60).astype(np.int8),
                            {"long_name": "tectonic regionalisation", "flag_values": [0, 1, 2, 3, 4, 5],
                             "flag_meanings": "shield platform orogen rift oceanic_crust volcanic_arc"})
    ds["ice_free"] = (("lat", "lon"), lat > -60)
    return ds


def _nearest_km(lines, lat, lon):
    points = np.concatenate(lines)
    return float(haversine_km(lat, lon, points[:, 1], points[:, 0]).min())


def test_coastlines_cover_the_globe_within_range(lines):
    assert len(lines) > 100
    points = np.concatenate(lines)
    assert points.shape[1] == 2 and len(points) > 10_000
    assert (np.abs(points[:, 0]) <= 180).all() and (np.abs(points[:, 1]) <= 90).all()
    # the antimeridian is never crossed: consecutive vertices are at most a cell diagonal apart
    assert max(np.abs(np.diff(line, axis=0)).max() for line in lines) <= 0.25 + 1e-9


def test_antarctic_coast_closes_across_the_antimeridian(lines):
    south = [line for line in lines if line[:, 1].max() < -60]
    antarctica = max(south, key=len)
    assert antarctica[:, 0].min() == -180.0 and antarctica[:, 0].max() == 180.0
    # its two ends meet at the same latitude on either side of the antimeridian (one point at the pole)
    ends = antarctica[[0, -1]]
    assert sorted(ends[:, 0]) == [-180.0, 180.0] and ends[0, 1] == pytest.approx(ends[1, 1])
    assert -86 < antarctica[:, 1].min() and antarctica[:, 1].max() < -60


def test_coastlines_are_where_coasts_are(lines):
    assert _nearest_km(lines, -80.0, 120.0) > 500  # deep inside East Antarctica
    assert _nearest_km(lines, 0.0, -140.0) > 500  # open Pacific
    assert _nearest_km(lines, -34.36, 18.47) < 30  # Cape of Good Hope
    assert _nearest_km(lines, -66.66, 140.0) < 60  # Dumont d'Urville, Adélie Land


def test_coastline_cache_roundtrip_and_folder(tmp_path, lines):
    with dask.config.set({"seisgrid.maps.coast_cache": str(tmp_path)}):
        path = maps._cache_file(0.25)
    assert path.parent == tmp_path and path.suffix == ".npz"
    maps._write_cache(path, list(lines))
    back = maps._read_cache(path)
    assert len(back) == len(lines) and all(np.array_equal(a, b) for a, b in zip(back, lines, strict=True))
    with dask.config.set({"seisgrid.maps.coast_cache": ""}):
        assert maps._cache_file(0.25) is None
    path.write_bytes(b"garbage")
    assert maps._read_cache(path) is None
    with pytest.raises(ConfigError, match="coast_resolution"):
        maps.trace_coastlines(0.3333)


@pytest.mark.parametrize("name", ["heatflow", "tectonic_class"])
def test_plot_global_and_polar(tmp_path, grid, name):
    out_global = maps.plot_global(grid[name], tmp_path / "g.png")
    out_polar = maps.plot_south_polar(grid[name], tmp_path / "p.png", dpi=60)
    for out in (out_global, out_polar):
        data = pathlib.Path(out).read_bytes()
        assert data[:8] == PNG and len(data) > 10_000


def test_style_categorical_and_continuous(grid):
    values = grid["tectonic_class"].values.astype(float)
    style = maps._style(grid["tectonic_class"], values, None, None, None, False)
    assert list(style["ticks"]) == [0, 1, 2, 3, 4, 5] and style["ticklabels"][4] == "oceanic crust"
    assert style["mesh"]["cmap"].N == 6
    hf = grid["heatflow"]
    style = maps._style(hf, hf.values, None, 10, None, False)
    assert style["mesh"]["vmin"] == 10 and 75 < style["mesh"]["vmax"] <= 80 and style["ticks"] is None
    assert maps._label(hf) == "geothermal heat flow (mW m-2)"


def test_no_network_access(tmp_path, grid, monkeypatch):
    import cartopy

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    empty = tmp_path / "cartopy-data"
    empty.mkdir()
    monkeypatch.setitem(cartopy.config, "data_dir", str(empty))
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", str(empty))
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    maps.plot_global(grid["heatflow"], tmp_path / "g.png", dpi=50, projection="platecarree")
    maps.plot_south_polar(grid["tectonic_class"], tmp_path / "p.png", dpi=50)
    assert list(empty.iterdir()) == []  # nothing was downloaded into cartopy's data folder


def test_plot_dataset(tmp_path, grid):
    paths = maps.plot_dataset(grid, tmp_path / "maps", dpi=40)
    names = [p.rsplit("/", 1)[-1] for p in paths]
    assert names == ["heatflow_global.png", "heatflow_south_polar.png", "tectonic_class_global.png",
                     "tectonic_class_south_polar.png", "ice_free_global.png", "ice_free_south_polar.png"]
    assert all(pathlib.Path(p).read_bytes()[:8] == PNG for p in paths)
    assert len(maps.plot_dataset(grid, tmp_path / "only", variables=["heatflow"], polar=False, dpi=40)) == 1
    with pytest.raises(SeisgridError, match="curie_depth not in the dataset"):
        maps.plot_dataset(grid, tmp_path, variables=["curie_depth"])


def test_errors(tmp_path, grid):
    stacked = grid["heatflow"].expand_dims(sample=2)
    with pytest.raises(SeisgridError, match="expected \\(lat, lon\\)"):
        maps.plot_global(stacked, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="mollweide"):
        maps.plot_global(grid["heatflow"], tmp_path / "x.png", projection="mollweide")
    with pytest.raises(ConfigError, match="between −90 and 0"):
        maps.plot_south_polar(grid["heatflow"], tmp_path / "x.png", lat_max=10)
