"""Feature grid (seisgrid.ghf.features).

Readers on tiny files in the real formats, volcano distances against a direct haversine loop,
nearest-neighbour tectonic classes, mean curvature against analytic surfaces, and build_features end to
end (synthetic inputs; real data when present).
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import lzma
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import requires_data

from seisgrid.errors import InputFileError
from seisgrid.ghf import features as F
from seisgrid.ghf import grid

R = grid.EARTH_RADIUS_KM


# --------------------------------------------------------------------------------------------- tiny inputs


def _write_xyz(path, rows, header=None):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as f:
        if header:
            f.write(header + "\n")
        for r in rows:
            f.write("  ".join(f"{x:g}" for x in r) + "\n")


def _write_gdf(path, rows, *, gap=9999999.0, height_m=0.0):
    opener = {".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix, open)
    head = [
        "generating_institute     gfz-potsdam",
        "          modelname     test",
        "               unit     mgal",
        f"            gapvalue        {gap:.4f}",
        f"      height_over_ell      {height_m:.4f} m",
        "        grid_format     long_lat_value",
        " ",
        "          longitude    latitude    value",
        "end_of_head ============================================",
    ]
    with opener(path, "wt") as f:
        f.write("\n".join(head) + "\n")
        for r in rows:
            f.write(f"   {r[0]:12.4f} {r[1]:12.4f} {r[2]:18.6f}\n")


def _write_shc(path, nmin, nmax, values, epoch=2020.0):
    """An SHC model file (header ``nmin nmax N order step``, epochs, rows ``n m value``), one snapshot."""
    rows = [f"{n} {mm} {next(values):.4f}" for n in range(nmin, nmax + 1) for m in range(n + 1)
            for mm in ((m,) if m == 0 else (m, -m))]
    path.write_text("\n".join(["# test model", f"{nmin} {nmax} 1 1 1", f"{epoch:.1f}", *rows]) + "\n")


def _cell_centres(step):
    lon = np.arange(-180 + step / 2, 180, step)
    lat = np.arange(90 - step / 2, -90, -step)
    lo, la = np.meshgrid(lon, lat)
    return lo.ravel(), la.ravel()


def _gridline(step):
    lon = np.arange(-180, 180 + step / 2, step)
    lat = np.arange(90, -90 - step / 2, -step)
    lo, la = np.meshgrid(lon, lat)
    return lo.ravel(), la.ravel()


def _smooth(lon, lat, base, amp):
    return base + amp * np.sin(np.radians(lat)) * np.cos(np.radians(lon))


def write_synthetic_data(root):
    """Every source file build_features reads, tiny, in its real format and folder layout."""
    crust = root / "crust1_laske2013"
    crust.mkdir(parents=True)
    lo, la = _cell_centres(10.0)
    bd9 = -_smooth(lo, la, 30.0, 10.0)
    bd3 = np.where(la > 0, 0.5, -3.0)
    _write_xyz(crust / "xyz-bd3.gz", np.column_stack([lo, la, bd3]))
    _write_xyz(crust / "xyz-bd9.gz", np.column_stack([lo, la, bd9]))
    _write_xyz(crust / "xyz-th2.gz", np.column_stack([lo, la, np.where(la < -60, 2.0, -0.0)]))  # ice sheet

    litho = root / "litho1_pasyanos2014"
    litho.mkdir()
    rng = np.random.default_rng(1)
    n = 400
    nlat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    nlon = rng.uniform(-180, 180, n)
    data = np.zeros((19, 9, n))
    data[1, 0] = _smooth(nlon, nlat, 120.0, 60.0) * 1e3
    np.savez(litho / "litho_data.npz", litho1_mesh_coords=np.column_stack([nlat, nlat, nlon]), litho1_all_data=data)

    tomo = root / "tomography_iris_emc"
    tomo.mkdir()
    tlon, tlat = np.arange(0.0, 360.0, 10.0), np.arange(-90.0, 91.0, 10.0)
    lo2, la2 = np.meshgrid(tlon, tlat)
    for fname, base in (("SEMum_vs.nc", 4.5), ("SPani_vp.nc", 8.0)):
        v = np.stack([_smooth(lo2, la2, base + dz, 0.1) for dz in (-0.1, 0.0, 0.1)]).astype(np.float32)
        xr.Dataset({"v": (("depth", "latitude", "longitude"), v)},
                   coords={"depth": np.array([100.0, 150.0, 200.0], np.float32), "latitude": tlat.astype(np.float32),
                           "longitude": tlon.astype(np.float32)}).to_netcdf(tomo / fname)

    afq = root / "afq_alaghbary2022_features" / "global_xyz"
    afq.mkdir(parents=True)
    lo, la = _cell_centres(10.0)
    _write_xyz(afq / "CTD.xyz.gz", np.column_stack([lo, la, _smooth(lo, la, 30.0, 10.0)]), header="lon\tlat\tctd")
    lo, la = _gridline(10.0)
    _write_xyz(afq / "EIGEN-6C4_gravity_anomaly_bg.xyz.gz", np.column_stack([lo, la, _smooth(lo, la, 0.0, 200.0)]),
               header="lon\tlat\tmgal")
    rlo, rla = _gridline(20.0)
    classes = 1 + (np.abs(rlo.astype(int) // 20 + rla.astype(int) // 20) % 6)
    _write_xyz(afq / "REG.xyz.gz", np.column_stack([rlo, rla, classes]), header="lon\tlat\tclasses")

    topo = root / "topo_gravity_uieda"
    topo.mkdir()
    lo, la = _gridline(5.0)
    _write_gdf(topo / "etopo1.gdf.xz", np.column_stack([lo, la, _smooth(lo, la, -1000.0, 3000.0)]), gap=99999.0)
    g = F.normal_gravity(la, 10000.0) + _smooth(lo, la, 0.0, 50.0)
    _write_gdf(topo / "EIGEN-6C4-gravity-30m.gdf.bz2", np.column_stack([lo, la, g]), height_m=10000.0)

    mag = root / "magnetic_lcs1_olsen2017"
    mag.mkdir()
    _write_shc(mag / "IGRF14.shc", 1, 1, iter([-30000.0, -1500.0, 4500.0]))
    _write_shc(mag / "LCS-1.shc", 16, 17, iter(np.random.default_rng(2).normal(0.0, 1.0, 68)), epoch=2015.0)

    gvp = root / "gvp_volcanoes_votw467"
    gvp.mkdir()
    pd.DataFrame({"Volcano Number": [1, 2, 3, 4, 5], "Volcano Name": ["A", "B", "C", "Erebus", "E"],
                  "Latitude": [50.17, 19.4, -38.1, -77.53, 64.6],
                  "Longitude": [6.85, -155.3, 176.2, 167.17, -17.5]}).to_csv(
        gvp / "GVP_VOTW467_Holocene_volcanoes.csv", index=False)
    return root


def nearest_krige(lon, lat, values, *, res=None, client=None, name="value", progress=True, mask=None, **_):
    """Stand-in with the signature of kriging.krige_to_grid: nearest source point on the sphere."""
    from scipy.spatial import cKDTree

    glat, glon = grid.grid_coords(res)
    la2, lo2 = np.meshgrid(glat, glon, indexing="ij")
    _, idx = cKDTree(grid.unit_vectors(lat, lon)).query(grid.unit_vectors(la2.ravel(), lo2.ravel()))
    out = np.asarray(values)[idx].reshape(la2.shape).astype(np.float32)
    if mask is not None:
        out[~np.asarray(mask)] = np.nan
    return xr.DataArray(out, coords={"lat": glat, "lon": glon}, dims=("lat", "lon"), name=name,
                        attrs={"method": "stand-in nearest neighbour"})


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    return write_synthetic_data(tmp_path_factory.mktemp("ghfdata") / "ghf")


# --------------------------------------------------------------------------------------------- readers


def test_read_xyz_with_and_without_header(tmp_path):
    rows = [(-179.5, 89.5, -11.75), (-178.5, 89.5, -11.74), (0.5, -0.5, 3.0)]
    _write_xyz(tmp_path / "a.gz", rows)
    _write_xyz(tmp_path / "b.gz", rows, header="lon\tlat\tmgal")
    np.testing.assert_allclose(F.read_xyz(tmp_path / "a.gz"), rows)
    np.testing.assert_allclose(F.read_xyz(tmp_path / "b.gz"), rows)


def test_read_xyz_garbage_line_names_file_and_line(tmp_path):
    path = tmp_path / "CTD.xyz.gz"
    with gzip.open(path, "wt") as f:
        f.write("lon lat ctd\n1 2 3\n4 5 six\n7 8 9\n")
    with pytest.raises(InputFileError, match=r"CTD\.xyz\.gz: line 3: expected 3 numbers") as info:
        F.read_xyz(path)
    assert info.value.path == str(path)


def test_read_xyz_short_line(tmp_path):
    path = tmp_path / "x.xyz"
    path.write_text("1 2 3\n4 5\n")
    with pytest.raises(InputFileError, match="line 2"):
        F.read_xyz(path)


def test_missing_files_raise_input_file_error(tmp_path):
    with pytest.raises(InputFileError, match=r"xyz-bd9\.gz: file not found"):
        F.read_moho_depth(tmp_path)
    with pytest.raises(InputFileError, match=r"SEMum_vs\.nc: file not found"):
        F.read_vs_150km(tmp_path)
    with pytest.raises(InputFileError, match=r"litho_data\.npz: file not found"):
        F.read_lab_depth(tmp_path)
    with pytest.raises(InputFileError, match="GVP_VOTW467_Holocene_volcanoes.csv: file not found"):
        F.read_volcanoes(tmp_path)


def test_read_gdf_header_and_gaps(tmp_path):
    rows = [(-180.0, 90.0, 1.0), (-179.8, 90.0, 99999.0), (-179.6, 90.0, 3.5)]
    for name in ("t.gdf", "t.gdf.xz", "t.gdf.bz2"):
        _write_gdf(tmp_path / name, rows, gap=99999.0, height_m=10000.0)
        table, header = F.read_gdf(tmp_path / name)
        np.testing.assert_allclose(table, [rows[0], rows[2]])
        assert header["height_over_ell"] == "10000.0000 m"
    (tmp_path / "bad.gdf").write_text("no header here\n1 2 3\n")
    with pytest.raises(InputFileError, match="end_of_head"):
        F.read_gdf(tmp_path / "bad.gdf")


def test_crust1_readers(synthetic_dir):
    folder = synthetic_dir / "crust1_laske2013"
    moho = F.read_moho_depth(folder)
    thick = F.read_crustal_thickness(folder)
    bd3, bd9 = F.read_xyz(folder / "xyz-bd3.gz"), F.read_xyz(folder / "xyz-bd9.gz")
    np.testing.assert_allclose(moho.value, -bd9[:, 2])
    np.testing.assert_allclose(thick.value, bd3[:, 2] - bd9[:, 2])
    assert moho.units == thick.units == "km" and "CRUST1.0" in moho.source
    assert (moho.value > 0).all()


def test_lab_reader(synthetic_dir):
    lab = F.read_lab_depth(synthetic_dir / "litho1_pasyanos2014")
    with np.load(synthetic_dir / "litho1_pasyanos2014" / "litho_data.npz") as d:
        np.testing.assert_allclose(lab.value, d["litho1_all_data"][1, 0] / 1e3)
        np.testing.assert_allclose(lab.lon, d["litho1_mesh_coords"][:, 2])
        np.testing.assert_allclose(lab.lat, d["litho1_mesh_coords"][:, 0])
    assert "LITHO1.0" in lab.source


def test_tomography_reader_wraps_longitude_and_picks_150km(synthetic_dir, tmp_path):
    vs = F.read_vs_150km(synthetic_dir / "tomography_iris_emc")
    assert vs.lon.min() >= -180 and vs.lon.max() < 180
    ds = xr.open_dataset(synthetic_dir / "tomography_iris_emc" / "SEMum_vs.nc")
    expect = ds.v.sel(depth=150.0, latitude=20.0, longitude=350.0).item()
    k = np.flatnonzero((vs.lat == 20.0) & (vs.lon == -10.0))
    assert len(k) == 1 and vs.value[k[0]] == pytest.approx(expect)
    ds.isel(depth=[0, 2]).to_netcdf(tmp_path / "SEMum_vs.nc")
    with pytest.raises(InputFileError, match="no 150 km level"):
        F.read_vs_150km(tmp_path)


def test_prepare_points_collapses_poles_and_dateline():
    pts = F.SourcePoints("x", lon=np.array([-180.0, 180.0, 10.0, 20.0, 0.0]), lat=np.array([0.0, 0.0, 90.0, 90.0, 5.0]),
                         value=np.array([1.0, 3.0, 5.0, 7.0, np.nan]), long_name="x", units="1", source="s",
                         path="p", spacing_deg=1.0)
    lon, lat, value = F.prepare_points(pts)
    got = {(round(a, 6), round(b, 6)): c for a, b, c in zip(lon, lat, value, strict=True)}
    assert got == {(-180.0, 0.0): 2.0, (0.0, 90.0): 6.0}


# --------------------------------------------------------------------------------------------- volcanoes


def _haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def test_volcano_distance_and_index_match_direct_haversine(synthetic_dir):
    volc = F.read_volcanoes(synthetic_dir / "gvp_volcanoes_votw467")
    dist = F.volcano_distance(volc, res=2.0)
    rng = np.random.default_rng(0)
    for i, j in zip(rng.integers(0, dist.shape[0], 25), rng.integers(0, dist.shape[1], 25), strict=True):
        clat, clon = float(dist.lat[i]), float(dist.lon[j])
        direct = min(_haversine(clat, clon, la, lo) for la, lo in zip(volc.lat, volc.lon, strict=True))
        assert float(dist[i, j]) == pytest.approx(direct, rel=1e-5, abs=1e-2)
        for scale in (500.0, 1000.0, 2000.0):
            assert F.volcano_index(float(dist[i, j]), scale) == pytest.approx(math.exp(-direct / scale), rel=1e-5)


def test_volcano_reader_rejects_bad_coordinates(tmp_path):
    pd.DataFrame({"Volcano Number": [1, 2], "Latitude": [10.0, "north"], "Longitude": [20.0, 30.0]}).to_csv(
        tmp_path / "GVP_VOTW467_Holocene_volcanoes.csv", index=False)
    with pytest.raises(InputFileError, match=r"GVP_VOTW467_Holocene_volcanoes\.csv: row 3"):
        F.read_volcanoes(tmp_path)


# --------------------------------------------------------------------------------------------- tectonic classes


def test_tectonic_class_is_nearest_neighbour_never_a_blend():
    rng = np.random.default_rng(3)
    n = 300
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    codes = rng.choice([1, 3, 6], n).astype(float)
    pts = F.SourcePoints("tectonic_class", lon, lat, codes, "t", "1", "s", "p", 10.0)
    out = F.nearest_class(pts, res=5.0)
    assert out.dtype == np.int8
    assert set(np.unique(out.values)) <= {1, 3, 6}  # no 2, 4, 5 from averaging 1/3/6
    for i, j in zip(rng.integers(0, out.shape[0], 40), rng.integers(0, out.shape[1], 40), strict=True):
        d = grid.haversine_km(float(out.lat[i]), float(out.lon[j]), lat, lon)
        assert out.values[i, j] == codes[np.argmin(d)]


def test_tectonic_reader_rejects_unknown_class(tmp_path):
    folder = tmp_path / "global_xyz"
    folder.mkdir()
    _write_xyz(folder / "REG.xyz.gz", [(0, 0, 1), (2, 0, 7)], header="lon lat classes")
    with pytest.raises(InputFileError, match="outside 1-6"):
        F.read_tectonic_regions(tmp_path)


# --------------------------------------------------------------------------------------------- gravity


def test_normal_gravity_wgs84_values():
    assert F.normal_gravity(0.0) == pytest.approx(978032.53359, abs=1e-4)
    assert F.normal_gravity(90.0) == pytest.approx(983218.49378, abs=1e-3)
    # free-air gradient ≈ 0.3086 mGal/m near the surface
    assert (F.normal_gravity(45.0) - F.normal_gravity(45.0, 100.0)) / 100.0 == pytest.approx(0.3086, abs=2e-3)


def test_mean_curvature_of_sphere_cap_and_paraboloid():
    h = 0.01
    x = np.arange(-0.5, 0.5 + h / 2, h)
    xx, yy = np.meshgrid(x, x)
    radius = 2.0
    cap = np.sqrt(radius**2 - xx**2 - yy**2)
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(F.mean_curvature(cap, h, h)[inner], -1.0 / radius, rtol=1e-3)
    a, b = 0.7, -0.3
    par = a * xx**2 + b * yy**2
    fx, fy, fxx, fyy = 2 * a * xx, 2 * b * yy, 2 * a, 2 * b
    expect = ((1 + fx**2) * fyy + (1 + fy**2) * fxx) / (2 * (1 + fx**2 + fy**2) ** 1.5)
    np.testing.assert_allclose(F.mean_curvature(par, h, h), expect, rtol=1e-3, atol=1e-6)


def test_mean_curvature_on_the_sphere_up_to_the_poles():
    # f = R cos φ cos λ is linear in the ambient coordinates: its Hessian on the sphere is −f/R² · I,
    # fx = −sin λ, fy = −sin φ cos λ.
    lat, lon = grid.grid_coords(1.0)
    phi, lam = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    f = R * np.cos(phi) * np.cos(lam)
    fx, fy = -np.sin(lam), -np.sin(phi) * np.cos(lam)
    q = 1 + fx**2 + fy**2
    expect = -(f / R**2) * (2 + fx**2 + fy**2) / (2 * q**1.5)
    got = F.mean_curvature_sphere(f, lat, lon, chunk=10000)
    assert got.shape == f.shape
    np.testing.assert_allclose(got, expect, atol=2e-3 * np.abs(expect).max())
    # plus noise of 1e-3 of the field's range: the polar rows stay as quiet as the rest
    noisy = f + 1e-3 * R * np.random.default_rng(0).standard_normal(f.shape)
    err = np.abs(F.mean_curvature_sphere(noisy, lat, lon) - expect)
    assert err[[0, -1]].max() < 3 * err[80:100].max()


def test_gravity_disturbance_reader_subtracts_normal_gravity(tmp_path):
    lo, la = _gridline(5.0)
    _write_gdf(tmp_path / "EIGEN-6C4-gravity-30m.gdf.bz2",
               np.column_stack([lo, la, F.normal_gravity(la, 10000.0) + 7.0]), height_m=10000.0)
    pts = F.read_gravity_disturbance(tmp_path)
    np.testing.assert_allclose(pts.value, 7.0, atol=1e-6)
    assert pts.units == "mGal" and pts.attrs["height_m"] == 10000.0
    lat, lon = grid.grid_coords(5.0)
    flat = xr.DataArray(np.full((lat.size, lon.size), 7.0), coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))
    np.testing.assert_allclose(F.gravity_mean_curvature(flat, 10000.0), 0.0, atol=1e-12)


# --------------------------------------------------------------------------------------------- build_features


def _check_store(ds):
    for name, var in ds.data_vars.items():
        for key in ("source", "units", "long_name", "method"):
            assert var.attrs.get(key), f"{name} lacks {key}"
    assert not any("magnetic_anomaly" in s for s in ds.attrs["dropped_features"])  # built from LCS-1 now


def test_build_features_synthetic_with_stand_in(synthetic_dir, tmp_path):
    out = tmp_path / "features.zarr"
    report = F.build_features(str(out), data_dir=synthetic_dir.parent, res=5.0, krige=nearest_krige, progress=False)
    ds = xr.open_zarr(str(out))
    expected = {*F.KRIGED_READERS, "magnetic_anomaly", "tectonic_class", "volcano_distance", "land_fraction",
                "volcano_index_500km", "volcano_index_1000km", "volcano_index_2000km"}
    assert set(ds.data_vars) == expected
    assert ds.sizes == {"lat": 36, "lon": 72}
    _check_store(ds)
    assert ds.tectonic_class.dtype == np.int8
    assert ds.tectonic_class.attrs["flag_meanings"].split()[0] == "cratonic"
    assert "never interpolated" in ds.tectonic_class.attrs["method"]
    assert float(ds.moho_depth.min()) >= 20.0 - 1e-4 and float(ds.moho_depth.max()) <= 40.0 + 1e-4
    np.testing.assert_allclose(ds.volcano_index_1000km, np.exp(-ds.volcano_distance / 1000.0), rtol=1e-5)
    assert ds.magnetic_anomaly.attrs["units"] == "nT" and ds.magnetic_anomaly.attrs["degrees"] == "16-17"
    assert np.isfinite(ds.magnetic_anomaly).all() and float(abs(ds.magnetic_anomaly).max()) > 0.0
    names = [v["name"] for v in report["variables"]]
    assert set(names) == expected - {"land_fraction"}
    assert all(v["seconds"] >= 0 and v["units"] for v in report["variables"])
    assert json.loads(ds.attrs["feature_report"])["dropped_features"] == report["dropped_features"]
    json.dumps(report)  # the CLI prints it
    assert set(report.dataset.data_vars) == expected


def test_categorical_features_never_go_through_kriging(synthetic_dir):
    def refuse(*args, **kwargs):
        raise AssertionError("kriging called")

    report = F.build_features(data_dir=synthetic_dir, res=10.0, features=["tectonic_class", "volcano_index_500km"],
                              krige=refuse, volcano_scales_km=[500.0])
    ds = report.dataset
    assert set(ds.data_vars) == {"land_fraction", "tectonic_class", "volcano_distance", "volcano_index_500km"}
    reg = F.read_tectonic_regions(synthetic_dir / "afq_alaghbary2022_features")
    assert set(np.unique(ds.tectonic_class.values)) <= set(np.unique(reg.value).astype(int))


def test_cells_beyond_source_coverage_stay_nan(tmp_path):
    folder = tmp_path / "afq_alaghbary2022_features" / "global_xyz"
    folder.mkdir(parents=True)
    lo, la = np.meshgrid(np.arange(0.5, 60, 1.0), np.arange(0.5, 60, 1.0))
    _write_xyz(folder / "CTD.xyz.gz", np.column_stack([lo.ravel(), la.ravel(), 30.0 + 0 * lo.ravel()]),
               header="lon lat ctd")
    ds = F.build_features(data_dir=tmp_path, res=2.0, features=["curie_depth"], krige=nearest_krige).dataset
    assert float(ds.curie_depth.sel(lat=31.0, lon=31.0)) == 30.0
    assert np.isnan(float(ds.curie_depth.sel(lat=-45.0, lon=-121.0)))
    assert np.isnan(float(ds.curie_depth.sel(lat=31.0, lon=71.0)))  # 11° east of the last column
    assert "left NaN" in ds.curie_depth.attrs["method"]


def test_unknown_feature_name(synthetic_dir):
    from seisgrid.errors import ConfigError

    with pytest.raises(ConfigError, match="heat_flow_itself.*unknown"):
        F.build_features(data_dir=synthetic_dir, res=10.0, features=["heat_flow_itself"], krige=nearest_krige)


def test_build_features_with_real_kriging(synthetic_dir):
    report = F.build_features(data_dir=synthetic_dir, res=10.0, features=["moho_depth", "vp_150km"], progress=False,
                              n_closest=8)
    ds = report.dataset
    assert "ordinary kriging" in ds.moho_depth.attrs["method"] and "CRUST1.0" in ds.moho_depth.attrs["source"]
    assert np.isfinite(ds.moho_depth).all() and np.isfinite(ds.vp_150km).all()
    assert 18.0 < float(ds.moho_depth.min()) and float(ds.moho_depth.max()) < 42.0
    assert 7.85 < float(ds.vp_150km.min()) and float(ds.vp_150km.max()) < 8.15


@pytest.mark.s3
def test_build_features_to_s3_opens_with_open_zarr(synthetic_dir, s3_bucket):
    from seisgrid import storage

    url = f"{s3_bucket}/features.zarr"
    F.build_features(url, data_dir=synthetic_dir, res=10.0, features=["tectonic_class", "volcano"], krige=nearest_krige)
    ds = xr.open_zarr(url, storage_options=storage.storage_options(url))
    assert ds.tectonic_class.dtype == np.int8 and "volcano_index_2000km" in ds
    _check_store(ds)


@requires_data("ghf/crust1_laske2013")
@requires_data("ghf/afq_alaghbary2022_features")
@requires_data("ghf/gvp_volcanoes_votw467")
@requires_data("ghf/litho1_pasyanos2014")
def test_build_features_real_data_coarse(tmp_path):
    out = tmp_path / "real.zarr"
    report = F.build_features(str(out), res=10.0, progress=False,
                              features=["moho_depth", "crustal_thickness", "lab_depth", "curie_depth", "tectonic_class",
                                        "volcano"])
    ds = xr.open_zarr(str(out))
    _check_store(ds)
    assert 6.0 < float(ds.moho_depth.min()) and float(ds.moho_depth.max()) < 76.0
    assert 0.0 < float(ds.lab_depth.min()) and float(ds.lab_depth.max()) < 330.0
    # East Antarctica (90°E, 80°S) is cratonic (class 1) in SL2013sv
    assert int(ds.tectonic_class.sel(lat=-75.0, lon=95.0)) == 1
    # Erebus (167.2°E, 77.5°S) lies in the 10° cell centred at (165°E, 75°S)
    assert float(ds.volcano_distance.sel(lat=-75.0, lon=165.0)) < 400.0
    assert {v["name"] for v in report["variables"]} >= {"moho_depth", "volcano_index_500km"}


def test_ice_slab_correction_is_the_bouguer_slab_of_the_density_contrast():
    # 2πG·Δρ·H: 2π × 6.6743e-11 × 1753 kg m⁻³ × 1000 m = 7.35e-4 m s⁻² = 73.5 mGal per km of ice
    assert F.ice_slab_correction(1.0) == pytest.approx(2 * np.pi * 6.6743e-11 * 1753.0 * 1e3 * 1e5)
    assert F.ice_slab_correction(1.0) == pytest.approx(73.5, abs=0.1)
    assert F.ice_slab_correction(0.0) == 0.0
    assert F.ice_slab_correction(2.0, reduction_density=917.0) == 0.0


def test_cell_values_take_the_source_cell_holding_each_centre(synthetic_dir):
    ice = F.read_ice_thickness(synthetic_dir / "crust1_laske2013")
    assert ice.value.min() == 0.0  # "-0." read as 0
    field = F.cell_values(ice, res=5.0)
    lat, _ = grid.grid_coords(5.0)
    expected = np.where(lat < -60, 2.0, 0.0)  # the 10° cells south of 60° S hold ice; 5° centres never on an edge
    np.testing.assert_array_equal(field, np.broadcast_to(expected[:, None], field.shape))
    broken = dataclasses.replace(ice, lat=ice.lat[1:], lon=ice.lon[1:], value=ice.value[1:])
    with pytest.raises(InputFileError, match="complete regular grid"):
        F.cell_values(broken, res=5.0)


def test_ice_is_not_rock_in_the_bouguer_anomaly_and_the_topography(synthetic_dir):
    kw = {"data_dir": synthetic_dir, "res": 5.0, "features": ["bouguer_anomaly", "topography"], "progress": False}
    plain = F.build_features(**kw, bouguer_ice_correction=False).dataset
    corrected = F.build_features(**kw).dataset
    lat = corrected["lat"].values
    for name, under_ice in (("bouguer_anomaly", F.ice_slab_correction(2.0)), ("topography", -2000.0)):
        difference = (corrected[name] - plain[name]).values
        np.testing.assert_allclose(difference[lat < -60], under_ice, rtol=1e-5)
        np.testing.assert_allclose(difference[lat > -60], 0.0, atol=1e-3)
        assert "ice" in corrected[name].attrs["long_name"] and "CRUST1.0" in corrected[name].attrs["source"]


@requires_data("ghf/crust1_laske2013")
def test_real_crust1_ice_under_antarctica_and_greenland():
    ice = F.read_ice_thickness()
    assert len(ice) == 64800 and ice.value.min() == 0.0 and ice.value.max() == pytest.approx(4.1)
    assert int((ice.value > 0).sum()) == 7550  # the README's count of ice cells
    field = F.cell_values(ice, res=0.5)
    lat, lon = grid.grid_coords(0.5)
    at = dict(zip(("row", "col"), (np.searchsorted(lat, -80.25), np.searchsorted(lon, 100.25)), strict=True))
    assert field[at["row"], at["col"]] > 2.0  # East Antarctic plateau: km of ice
    assert F.ice_slab_correction(field).max() == pytest.approx(F.ice_slab_correction(4.1))
