"""Ordinary kriging onto the global grid (seisgrid.ghf.kriging).

Accuracy on a known smooth field, the dateline and the poles, agreement of tiles at their seams, the
nugget, Dask vs serial, bad input.
"""

from __future__ import annotations

import numpy as np
import pytest

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf import grid, kriging

SOURCE_RES = 3.0  # source nodes never coincide with the 2° test grid's cell centres
TEST_RES = 2.0
TOL = 0.05  # max |kriged − true| on the 2° grid; the field spans ~[2.5, 18] (0.3 % of it). The largest
# errors are next to the poles, where a lat/lon source grid crowds the 16 neighbours into one or two rows.
MEDIAN_TOL = 0.005


def field(lat, lon):
    """A smooth field on the sphere (degree ≤ 2 harmonics of the unit vector): no pole or dateline artefact."""
    x, y, z = np.moveaxis(grid.unit_vectors(lat, lon), -1, 0)
    return 10.0 + 3.0 * z + 2.0 * x + 1.5 * (x * x - y * y) + 2.0 * y * z


def source(res=SOURCE_RES, lon0=-180.0):
    lat, lon = grid.grid_coords(res)
    lon = lon - (-180.0) + lon0
    lo, la = np.meshgrid(lon, lat)
    return lo.ravel(), la.ravel(), field(la.ravel(), lo.ravel())


def truth(res=TEST_RES):
    lat, lon = grid.grid_coords(res)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    return field(la, lo)


@pytest.fixture(scope="module")
def variogram():
    lon, lat, values = source()
    return kriging.fit_variogram(lon, lat, values, model="gaussian")


@pytest.fixture(scope="module")
def reference(variogram):
    lon, lat, values = source()
    return kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=variogram, progress=False,
                                 return_variance=True)


def test_reproduces_smooth_field_everywhere(reference):
    out, variance = reference
    assert out.dims == ("lat", "lon") and out.dtype == np.float32 and out.shape == (90, 180)
    np.testing.assert_allclose(out.lat, grid.grid_coords(TEST_RES)[0])
    err = np.abs(out.values - truth())
    assert np.isfinite(out.values).all()
    assert err.max() < TOL, f"max error {err.max():.4f}"
    assert np.median(err) < MEDIAN_TOL
    # the dateline (first and last columns), the polar caps (outer rows)
    assert err[:, [0, 1, -2, -1]].max() < TOL
    assert err[[0, 1, -2, -1], :].max() < TOL
    assert (variance.values >= 0).all() and variance.name == "value_variance"
    assert "ordinary kriging (pykrige" in out.attrs["method"] and "n_closest" in out.attrs["method"]
    assert out.attrs["variogram_nugget"] > 0 and out.attrs["variogram_model"] == "gaussian"


def test_longitude_convention_does_not_matter(variogram, reference):
    lon, lat, values = source(lon0=0.0)  # nodes given in 0…360
    assert lon.max() > 180
    out = kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=variogram, progress=False)
    np.testing.assert_allclose(out.values, reference[0].values, atol=1e-5)


def test_tile_at_the_dateline_sees_points_across_it(variogram):
    # a regional source straddling the dateline, 160°E … 160°W, kriged only where the mask says
    lon, lat, values = source()
    keep = (np.abs(lon) >= 160.0) & (np.abs(lat) <= 40.0)
    glat, glon = grid.grid_coords(TEST_RES)
    mask = (np.abs(glon)[None, :] >= 166.0) & (np.abs(glat)[:, None] <= 34.0)
    out, variance = kriging.krige_to_grid(lon[keep], lat[keep], values[keep], res=TEST_RES, variogram=variogram,
                                          mask=mask, progress=False, return_variance=True)
    assert np.isnan(out.values[~mask]).all() and np.isnan(variance.values[~mask]).all()
    err = np.abs(out.values - truth())[mask]
    assert err.max() < TOL
    # columns on both sides of ±180° are continuous with each other
    west, east = out.values[:, -1], out.values[:, 0]
    rows = mask[:, 0]
    np.testing.assert_allclose(west[rows], east[rows], atol=0.2)


@pytest.mark.parametrize("tile_degrees", [20.0, 44.0])
def test_tiles_agree_at_seams(variogram, reference, tile_degrees):
    lon, lat, values = source()
    one = kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=variogram, tile_degrees=360.0,
                                progress=False)  # one task (split into systems of ≤ max_points_per_tile inside)
    assert one.attrs["n_tiles"] == 1
    tiled = kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=variogram, tile_degrees=tile_degrees,
                                  progress=False)
    assert tiled.attrs["n_tiles"] > 1
    np.testing.assert_allclose(tiled.values, one.values, atol=1e-5)
    np.testing.assert_allclose(reference[0].values, one.values, atol=1e-5)
    # no step at the tile edges: the jump between the columns on either side of a seam is the true one
    size = round(tile_degrees / TEST_RES)
    seams = np.arange(size, tiled.shape[1], size)
    jump = np.diff(tiled.values, axis=1)[:, seams - 1]
    true_jump = np.diff(truth(), axis=1)[:, seams - 1]
    assert np.abs(jump - true_jump).max() < 2 * TOL


def test_split_tiles_when_too_many_points(variogram, reference):
    lon, lat, values = source()
    out = kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=variogram, max_points_per_tile=64,
                                progress=False)
    assert "at most" in out.attrs["method"]
    systems = int(out.attrs["method"].split(" systems")[0].rsplit("(", 1)[1])
    assert systems > out.attrs["n_tiles"]
    np.testing.assert_allclose(out.values, reference[0].values, atol=1e-5)


def test_dense_source_is_averaged_into_cells(variogram):
    lon, lat, values = source(res=0.5)  # 16 points per 2° cell
    out = kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=variogram, progress=False)
    assert out.attrs["aggregated"] is True and out.attrs["n_source_points"] == lon.size
    assert np.abs(out.values - truth()).max() < TOL


def test_nugget_smooths_noise(variogram):
    lon, lat, values = source()
    rng = np.random.default_rng(0)
    noisy = values + rng.normal(0.0, 1.0, values.size)
    sharp = dict(variogram, nugget=1e-6)
    smooth = dict(variogram, nugget=1.0)  # the noise variance
    err_sharp = kriging.krige_to_grid(lon, lat, noisy, res=TEST_RES, variogram=sharp, progress=False).values - truth()
    err_smooth = kriging.krige_to_grid(lon, lat, noisy, res=TEST_RES, variogram=smooth, progress=False).values - truth()
    assert np.sqrt(np.mean(err_smooth**2)) < 0.7 * np.sqrt(np.mean(err_sharp**2))


def test_zero_nugget_is_raised_to_the_floor(variogram):
    lon, lat, values = source()
    out = kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=dict(variogram, nugget=0.0),
                                nugget_floor=0.01, tile_degrees=90.0, progress=False)
    assert out.attrs["variogram_nugget"] == pytest.approx(0.01 * variogram["psill"], rel=1e-6)
    assert np.abs(out.values - truth()).max() < 5 * TOL


def test_dask_tiles_match_serial(dask_client, variogram, reference):
    lon, lat, values = source()
    out, variance = kriging.krige_to_grid(lon, lat, values, res=TEST_RES, variogram=variogram, client=dask_client,
                                          progress=False, return_variance=True)
    np.testing.assert_allclose(out.values, reference[0].values, atol=1e-6)
    np.testing.assert_allclose(variance.values, reference[1].values, atol=1e-6)


def test_nan_values_are_dropped(variogram, reference):
    lon, lat, values = source()
    bad = values.copy()
    bad[::7] = np.nan
    lat_bad = lat.copy()
    lat_bad[3] = np.nan
    keep = np.isfinite(bad) & np.isfinite(lat_bad)
    with_nan = kriging.krige_to_grid(lon, lat_bad, bad, res=TEST_RES, variogram=variogram, progress=False)
    without = kriging.krige_to_grid(lon[keep], lat[keep], values[keep], res=TEST_RES, variogram=variogram,
                                    progress=False)
    np.testing.assert_array_equal(with_nan.values, without.values)
    assert with_nan.attrs["n_source_points"] == keep.sum()


def test_fit_variogram_is_seeded_and_auto_picks_a_model():
    lon, lat, values = source()
    a = kriging.fit_variogram(lon, lat, values, model="auto", max_points=500, seed=3)
    b = kriging.fit_variogram(lon, lat, values, model="auto", max_points=500, seed=3)
    assert a == b
    assert set(a["cv_rmse"]) == set(kriging.MODELS)
    assert a["model"] == min(a["cv_rmse"], key=a["cv_rmse"].get)
    assert max(a["cv_rmse"].values()) < 0.01  # every model predicts left-out nodes of the smooth field well
    assert a["nugget"] > 0 and a["range"] > 0 and a["range_km"] == pytest.approx(np.radians(a["range"]) * 6371.0088)
    assert a["parameters"] == [a["psill"], a["range"], a["nugget"]]


def test_duplicates_and_pole_rows_are_merged(variogram):
    # a grid with a pole row: 36 nodes at lat 90 are one place
    lat = np.repeat(np.arange(-90.0, 91.0, 10.0), 36)
    lon = np.tile(np.arange(0.0, 360.0, 10.0), 19)
    values = field(lat, lon)
    out = kriging.krige_to_grid(lon, lat, values, res=10.0, variogram=dict(variogram, range=40.0), progress=False)
    assert np.isfinite(out.values).all()
    top = field(np.full(out.lon.size, out.lat.values[-1]), out.lon.values)
    assert np.abs(out.values[-1] - top).max() < 0.1


def test_constant_field():
    lon, lat, _ = source()
    out = kriging.krige_to_grid(lon, lat, np.full(lon.size, 4.5), res=10.0, progress=False)
    assert (out.values == np.float32(4.5)).all()


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.zeros(5), np.zeros(4), np.zeros(5)), "different lengths"),
        ((np.zeros(5), np.zeros(5), np.full(5, np.nan)), "all 5 points have a NaN"),
        ((np.array([0.0, 10.0]), np.array([0.0, 10.0]), np.array([1.0, 2.0])), "at least 3"),
        ((np.array([0.0, 10.0, 20.0]), np.array([0.0, 95.0, 10.0]), np.ones(3)), "latitude 95"),
    ],
)
def test_bad_input_raises_a_clear_error(args, message):
    with pytest.raises(SeisgridError, match=message):
        kriging.krige_to_grid(*args, res=10.0, progress=False)
    with pytest.raises(kriging.KrigingInputError, match=message):
        kriging.fit_variogram(*args)


def test_bad_options_raise_config_errors(variogram):
    lon, lat, values = source(res=10.0)
    with pytest.raises(ConfigError, match="variogram_model"):
        kriging.fit_variogram(lon, lat, values, model="cubic")
    with pytest.raises(ConfigError, match="pykrige_backend"):
        kriging.krige_to_grid(lon, lat, values, res=10.0, pykrige_backend="vectorized", progress=False)
    with pytest.raises(ConfigError, match="expected a dict"):
        kriging.krige_to_grid(lon, lat, values, res=10.0, variogram={"model": "gaussian"}, progress=False)
    with pytest.raises(kriging.KrigingInputError, match="mask: shape"):
        kriging.krige_to_grid(lon, lat, values, res=10.0, mask=np.ones((3, 3), bool), progress=False)


def test_empty_mask_computes_nothing_and_starts_no_cluster(variogram):
    from seisgrid.cluster import LazyClient

    lon, lat, values = source(res=10.0)
    never = LazyClient("tcp://127.0.0.1:9", timeout="1s")  # would fail if it were started
    out = kriging.krige_to_grid(lon, lat, values, res=10.0, variogram=variogram, client=never,
                                mask=np.zeros((18, 36), bool), progress=False)
    assert np.isnan(out.values).all() and out.attrs["n_tiles"] == 0 and not never.started
