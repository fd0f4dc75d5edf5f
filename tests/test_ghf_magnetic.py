"""Satellite magnetic anomaly ΔF (seisgrid.ghf.magnetic).

Tiny SHC files in the real format: two axial dipoles give ΔF = |B_lith| = |g10| sqrt(1 + 3 cos²θ) exactly;
ΔF is linear in the lithospheric coefficients; ``nmin`` drops degrees; malformed files name themselves.
Real data (LCS-1, IGRF-14) when present: the README's Kursk and Bangui figures, and build_features.
"""

from __future__ import annotations

import dask.config
import numpy as np
import pytest
from helpers import data_path, requires_data

from seisgrid.errors import ConfigError, InputFileError
from seisgrid.ghf import features as F
from seisgrid.ghf import grid
from seisgrid.ghf import magnetic as M

A = M.REFERENCE_RADIUS_KM


def write_shc(path, coeffs, nmin, nmax, epochs=(2015.0,), header="# test model"):
    """An SHC file: ``coeffs`` maps (n, m) (m < 0: h_n^|m|) to one value per epoch; others are 0."""
    lines = [header, f"{nmin} {nmax} {len(epochs)} 2 1", "  " + " ".join(f"{e:.1f}" for e in epochs)]
    for n in range(nmin, nmax + 1):
        for m in range(n + 1):
            for mm in (m,) if m == 0 else (m, -m):
                values = coeffs.get((n, mm), [0.0] * len(epochs))
                values = values if isinstance(values, (list, tuple)) else [values]
                lines.append(f"{n:3d} {mm:4d} " + " ".join(f"{v:.6f}" for v in values))
    path.write_text("\n".join(lines) + "\n")
    return path


def random_coeffs(nmin, nmax, seed):
    rng = np.random.default_rng(seed)
    return {(n, mm): float(rng.normal(0.0, 10.0)) for n in range(nmin, nmax + 1)
            for m in range(n + 1) for mm in ((m,) if m == 0 else (m, -m))}


@pytest.fixture
def dipoles(tmp_path):
    main = write_shc(tmp_path / "IGRF14.shc", {(1, 0): -30000.0}, 1, 1)
    lith = write_shc(tmp_path / "LCS-1.shc", {(1, 0): -30.0}, 1, 1)
    return lith, main


@pytest.fixture
def igrf_like(tmp_path):
    """A tilted dipole with some quadrupole, so the main-field direction varies in all three components."""
    coeffs = {(1, 0): -29400.0, (1, 1): -1450.0, (1, -1): 4650.0, (2, 0): -2500.0, (2, 1): 3000.0, (2, -1): -2900.0}
    return write_shc(tmp_path / "main.shc", coeffs, 1, 2)


# --------------------------------------------------------------------------------------------- synthesis


def test_axial_dipoles_give_the_analytic_anomaly(dipoles):
    lith, main = dipoles
    lat, lon = grid.grid_coords(10.0)
    df = M.scalar_anomaly(lat, lon, lith, main, nmin=1)
    assert df.shape == (18, 36)
    theta = np.radians(90.0 - lat)
    expect = 30.0 * np.sqrt(1.0 + 3.0 * np.cos(theta) ** 2)
    np.testing.assert_allclose(df, np.broadcast_to(expect[:, None], df.shape), rtol=1e-10)
    # a dipole falls off as (a/r)³
    np.testing.assert_allclose(M.scalar_anomaly(lat, lon, lith, main, nmin=1, radius_km=2 * A), df / 8.0, rtol=1e-10)


def test_points_match_the_grid(dipoles, igrf_like, tmp_path):
    lith = write_shc(tmp_path / "lith.shc", random_coeffs(2, 4, seed=3), 2, 4)
    lat, lon = grid.grid_coords(15.0)
    on_grid = M.scalar_anomaly(lat, lon, lith, igrf_like, nmin=2)
    la2, lo2 = np.meshgrid(lat, lon, indexing="ij")
    at_points = M.scalar_anomaly(la2, lo2, lith, igrf_like, nmin=2, points=True)
    assert at_points.shape == la2.shape
    np.testing.assert_allclose(at_points, on_grid, rtol=1e-12, atol=1e-12)


def test_anomaly_flips_sign_with_the_lithospheric_coefficients(igrf_like, tmp_path):
    coeffs = random_coeffs(2, 5, seed=7)
    plus = write_shc(tmp_path / "plus.shc", coeffs, 2, 5)
    minus = write_shc(tmp_path / "minus.shc", {k: -v for k, v in coeffs.items()}, 2, 5)
    lat, lon = grid.grid_coords(10.0)
    df = M.scalar_anomaly(lat, lon, plus, igrf_like, nmin=2)
    assert np.abs(df).max() > 1.0
    np.testing.assert_allclose(M.scalar_anomaly(lat, lon, minus, igrf_like, nmin=2), -df, rtol=1e-12, atol=1e-12)


def test_nmin_drops_the_lower_degrees(igrf_like, tmp_path):
    coeffs = random_coeffs(1, 2, seed=11)
    both = write_shc(tmp_path / "both.shc", coeffs, 1, 2)
    only2 = write_shc(tmp_path / "only2.shc", {k: v for k, v in coeffs.items() if k[0] == 2}, 2, 2)
    lat, lon = grid.grid_coords(10.0)
    np.testing.assert_allclose(M.scalar_anomaly(lat, lon, both, igrf_like, nmin=2),
                               M.scalar_anomaly(lat, lon, only2, igrf_like, nmin=2), rtol=1e-12, atol=1e-12)
    assert not np.allclose(M.scalar_anomaly(lat, lon, both, igrf_like, nmin=1),
                           M.scalar_anomaly(lat, lon, both, igrf_like, nmin=2))
    with pytest.raises(ValueError, match="degrees 2-2"):
        M.scalar_anomaly(lat, lon, only2, igrf_like, nmin=1)


def test_main_field_is_interpolated_between_snapshots(tmp_path):
    from chaosmagpy.data_utils import dyear_to_mjd

    path = write_shc(tmp_path / "igrf.shc", {(1, 0): [-30000.0, -29000.0], (1, 1): [-1000.0, -2000.0]}, 1, 1,
                     epochs=(2015.0, 2025.0))
    model = M.read_shc(path)
    t0, t1 = float(dyear_to_mjd(2015.0)), float(dyear_to_mjd(2025.0))
    c, how = M.coefficients_at(model, 7305.0)
    w = (7305.0 - t0) / (t1 - t0)
    np.testing.assert_allclose(c[:2], [-30000.0 + 1000.0 * w, -1000.0 - 1000.0 * w])
    assert "linear" in how
    c, how = M.coefficients_at(model, t1)
    np.testing.assert_allclose(c[:2], [-29000.0, -2000.0])
    assert "snapshot" in how
    with pytest.raises(ValueError, match="outside"):
        M.coefficients_at(model, t1 + 1.0)
    lith = write_shc(tmp_path / "LCS-1.shc", {(1, 0): -30.0}, 1, 1)
    with pytest.raises(ConfigError, match="outside"):
        M.magnetic_anomaly_grid(tmp_path, 30.0, model=lith.name, main_field=path.name, nmin=1, epoch=2030.0)


def test_grid_dataarray_attributes_and_settings(dipoles):
    lith, _ = dipoles
    da = M.magnetic_anomaly_grid(lith.parent, 10.0, nmin=1)
    lat, lon = grid.grid_coords(10.0)
    assert da.name == "magnetic_anomaly" and da.dims == ("lat", "lon") and da.dtype == np.float32
    np.testing.assert_array_equal(da.lat, lat)
    np.testing.assert_array_equal(da.lon, lon)
    expect = 30.0 * np.sqrt(1.0 + 3.0 * np.cos(np.radians(90.0 - lat)) ** 2)
    np.testing.assert_allclose(da.isel(lon=0), expect, rtol=1e-6)
    assert da.attrs["units"] == "nT" and da.attrs["degrees"] == "1-1" and da.attrs["n_coefficients"] == 3
    assert "LCS-1" in da.attrs["source"] and "10.5281/zenodo.14012302" in da.attrs["source"]
    assert da.attrs["long_name"] == "scalar lithospheric magnetic anomaly (total-field ΔF)"
    assert da.attrs["resolution_km"] == pytest.approx(np.pi * A, abs=0.1)
    assert da.attrs["source_file"] == "LCS-1.shc" and "chaosmagpy" in da.attrs["method"]
    assert "snapshot" in da.attrs["method"] or "static" in da.attrs["method"]
    # settings: seisgrid.features.magnetic.<key>, an argument wins
    with dask.config.set({"seisgrid.features.magnetic.nmin": 2}), pytest.raises(ConfigError, match="nmin 2"):
        M.magnetic_anomaly_grid(lith.parent, 10.0)
    with dask.config.set({"seisgrid.features.magnetic.nmin": 2}):
        assert M.magnetic_anomaly_grid(lith.parent, 30.0, nmin=1).attrs["degrees"] == "1-1"


# --------------------------------------------------------------------------------------------- bad input


def test_missing_file_names_it(tmp_path, dipoles):
    with pytest.raises(InputFileError, match="nope.shc.*not found"):
        M.read_shc(tmp_path / "nope.shc")
    lith, _ = dipoles
    with pytest.raises(InputFileError, match="IGRF13.shc"):
        M.magnetic_anomaly_grid(lith.parent, 30.0, main_field="IGRF13.shc", nmin=1)


@pytest.mark.parametrize("damage", ["cut_rows", "cut_mid_row", "bad_token", "short_row", "empty", "no_rows",
                                    "bad_header"])
def test_malformed_file_names_it(tmp_path, damage):
    path = write_shc(tmp_path / "model.shc", random_coeffs(1, 3, seed=5), 1, 3, epochs=(2015.0, 2020.0))
    lines = path.read_text().splitlines()
    text = {
        "cut_rows": "\n".join(lines[:-2]) + "\n",
        "cut_mid_row": "\n".join(lines)[:-12],
        "bad_token": "\n".join(lines[:5] + [lines[5].replace(lines[5].split()[2], "abc")] + lines[6:]) + "\n",
        "short_row": "\n".join(lines[:5] + [" ".join(lines[5].split()[:3])] + lines[6:]) + "\n",
        "empty": "# only a comment\n",
        "no_rows": "\n".join(lines[:3]) + "\n",
        "bad_header": "\n".join(lines[:1] + ["3 1 2 2 1"] + lines[2:]) + "\n",
    }[damage]
    path.write_text(text)
    with pytest.raises(InputFileError, match="model.shc") as info:
        M.read_shc(path)
    assert info.value.reason


# --------------------------------------------------------------------------------------------- real data

REAL = "ghf/magnetic_lcs1_olsen2017"


@pytest.fixture(scope="module")
def real_models():
    folder = data_path(REAL)
    return M.read_shc(folder / "LCS-1.shc"), M.read_shc(folder / "IGRF14.shc")


@requires_data(REAL)
def test_real_models_read(real_models):
    lith, main = real_models
    assert lith.parameters["nmax"] == 185 and lith.coeffs.shape == (34595, 1)
    assert main.parameters["nmax"] == 13 and main.coeffs.shape == (195, 27) and 7305.0 in main.time


@requires_data(REAL)
def test_real_kursk_and_bangui(real_models):
    lith, main = real_models
    # the README's figures are the values at the 1° cell centres (50.5°N, 36.5°E) and (5.5°N, 18.5°E)
    df = M.scalar_anomaly([50.5, 5.5], [36.5, 18.5], lith, main, points=True)
    np.testing.assert_allclose(df, [1360.0, -296.0], atol=1.0)
    kursk, bangui = M.scalar_anomaly([51.0, 6.0], [37.0, 18.5], lith, main, points=True)
    assert kursk > 1000.0 and bangui < -200.0
    box = M.scalar_anomaly(np.arange(50.0, 52.01, 0.5), np.arange(36.0, 38.01, 0.5), lith, main)
    assert box.max() > 1500.0


@requires_data(REAL)
def test_build_features_real_magnetic_anomaly():
    report = F.build_features(res=5.0, features=["magnetic_anomaly"], progress=False)
    ds = report.dataset
    da = ds["magnetic_anomaly"]
    assert da.shape == (36, 72) and da.dtype == np.float32 and np.isfinite(da).all()
    assert da.attrs["units"] == "nT" and "LCS-1" in da.attrs["source"] and "Olsen" in da.attrs["source"]
    assert da.attrs["degrees"] == "16-185" and da.attrs["resolution_km"] == pytest.approx(108.2, abs=0.1)
    assert -800.0 < float(da.min()) < 0.0 < float(da.max()) < 1700.0
    entry = next(v for v in report["variables"] if v["name"] == "magnetic_anomaly")
    assert entry["n_points"] == 185 * 187 - 255 and entry["units"] == "nT"
    assert not any("magnetic_anomaly" in s for s in ds.attrs["dropped_features"])
    assert "magnetic_anomaly" not in report["dropped_features"]
