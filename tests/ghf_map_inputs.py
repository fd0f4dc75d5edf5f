"""Synthetic inputs shared by the Antarctic map tests (test_ghf_mapping, test_ghf_published, test_ghf_compare).

A stand-in ensemble with known outputs, a feature grid, the map they predict and a map's cells as points.

Import as ``from ghf_map_inputs import ...`` (``tests/`` is on ``sys.path``; conftest.py makes sure of it).
"""

from __future__ import annotations

import contextlib

import dask
import numpy as np
import pandas as pd
import xarray as xr

from seisgrid.ghf import mapping
from seisgrid.ghf.grid import grid_coords

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


@contextlib.contextmanager
def quick_maps(coast_cache):
    """South-polar PNGs at low resolution with coastlines cached in ``coast_cache``."""
    with dask.config.set({"seisgrid.maps.coast_cache": str(coast_cache), "seisgrid.maps.dpi": 40}):
        yield


def feature_grid() -> xr.Dataset:
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


def stand_in_models() -> list[StandIn]:
    return [StandIn(-5.0, 400.0, 50.0), StandIn(5.0, 600.0, 90.0)]


def predicted_map(models=None, features=None) -> xr.Dataset:
    """The stand-in ensemble's map on :func:`feature_grid` south of 60° S, 7 Monte Carlo samples."""
    models = stand_in_models() if models is None else models
    features = feature_grid() if features is None else features
    return mapping.predict_map(models, features, NAMES, lat_max=-60.0, samples=7)


def cell_points(ds, shift=0.0):
    """The map's finite heat-flow cells as points (lat, lon, value − ``shift``)."""
    hf = ds.heatflow.transpose("lat", "lon")
    la, lo = np.meshgrid(hf.lat, hf.lon, indexing="ij")
    ok = np.isfinite(hf.values)
    return pd.DataFrame({"lat": la[ok], "lon": lo[ok], "value": hf.values[ok] - shift})
