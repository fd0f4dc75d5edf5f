"""Regional means of feature grids: the mean of every cell within a great-circle radius.

A cell's own value says what lies beneath it; heat flow also depends on the region around it (a rift
shoulder, a craton margin, the far field of a volcanic province). Regional means add that context to the
model's table: for a selected feature ``moho_depth`` and a radius of 300 km the column
``moho_depth_regional300km`` holds, at every cell, the mean of the cells whose centres lie within 300 km
(great circle, :data:`seisgrid.ghf.grid.EARTH_RADIUS_KM`) of its centre, NaN cells left out. The study
(REFERENCE.md §B) does not use them, so they are off by default (``seisgrid.ghf.regional_km: []``); on the
real grid, 150/300/600 km means of the VIF-selected features lower the network's cross-validated RMSE
(README: "Regional means").

The columns are not part of the feature store: :func:`add_regional_means` derives them from it whenever a
table is built, from the name alone, so a model trained with them predicts from any store holding the base
features.

Computation: for a disc centred on latitude φ₀ the cells of source row φ within the disc form one run of
longitudes |Δλ| ≤ Δλ_max(φ₀, φ) (spherical law of cosines), so each row's sum is a difference of two
cumulative sums along longitude (wrapped across the dateline). The cost is one vectorised gather per grid
row instead of a neighbour search per cell (SciPy/scikit-learn ball trees would need ~10⁸ pairs at 600 km).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf.grid import EARTH_RADIUS_KM

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import ArrayLike

_NAME = re.compile(r"^(?P<base>.+)_regional(?P<km>\d+(?:\.\d+)?)km$")


def regional_name(base: str, radius_km: float) -> str:
    """Column name of the ``radius_km`` regional mean of feature ``base``: ``{base}_regional{radius}km``."""
    return f"{base}_regional{float(radius_km):g}km"


def parse_regional_name(name: str) -> tuple[str, float] | None:
    """``(base, radius_km)`` of a :func:`regional_name`, or None for any other name."""
    match = _NAME.match(str(name))
    return (match["base"], float(match["km"])) if match else None


def radii(value: str | Iterable[float | str] | None) -> list[float]:
    """Radii in km from a list, a comma-separated string or None (no regional means).

    Raises
    ------
    ConfigError
        For a radius that is not a positive number.
    """
    if value in (None, "", "null"):
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        try:
            km = float(item)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"regional radius {item!r} is not a number of km") from exc
        if not km > 0:
            raise ConfigError(f"regional radius {km:g} km: must be positive")
        out.append(km)
    return out


def regional_mean(values: ArrayLike, lat: ArrayLike, lon: ArrayLike, radius_km: float) -> np.ndarray:
    """Mean of the finite cells whose centres lie within ``radius_km`` of each cell centre.

    Parameters
    ----------
    values : array-like
        (n_lat, n_lon) values on a regular global grid (NaN: no value).
    lat, lon : array-like
        Cell-centre latitudes and longitudes, degrees; longitudes evenly spaced around the whole circle.
    radius_km : float
        Great-circle radius, km.

    Returns
    -------
    numpy.ndarray
        (n_lat, n_lon) float64; NaN where no finite cell lies within the radius.
    """
    v = np.asarray(values, dtype=float)
    lat_rad: np.ndarray = np.radians(np.asarray(lat, dtype=float))
    lon = np.asarray(lon, dtype=float)
    n_lat, n_lon = v.shape
    if (len(lat_rad), len(lon)) != v.shape:
        raise SeisgridError(f"regional mean: values {v.shape} do not match lat ({len(lat_rad)}) × lon ({len(lon)})")
    step = 360.0 / n_lon
    if not np.allclose(np.diff(lon), step):
        raise SeisgridError("regional mean: longitudes must be evenly spaced around the whole circle")
    finite = np.isfinite(v)
    # Cumulative sums along longitude over three copies of each row: any wrapped run is one difference.
    tiled = np.concatenate([np.where(finite, v, 0.0)] * 3, axis=1)
    tiled_n = np.concatenate([finite.astype(float)] * 3, axis=1)
    zeros = np.zeros((n_lat, 1))
    cum_v = np.concatenate([zeros, np.cumsum(tiled, axis=1)], axis=1)
    cum_n = np.concatenate([zeros, np.cumsum(tiled_n, axis=1)], axis=1)
    ring_v, ring_n = cum_v[:, n_lon], cum_n[:, n_lon]

    cos_r = math.cos(radius_km / EARTH_RADIUS_KM)
    sin_lat, cos_lat = np.sin(lat_rad), np.cos(lat_rad)
    columns = np.arange(n_lon)
    total = np.empty_like(v)
    count = np.empty_like(v)
    for i in range(n_lat):
        # cos Δλ_max = (cos r − sin φ₀ sin φ) / (cos φ₀ cos φ); > 1: the row misses the disc, < −1: whole ring.
        with np.errstate(divide="ignore", invalid="ignore"):
            c = (cos_r - sin_lat[i] * sin_lat) / (cos_lat[i] * cos_lat)
        rows = np.flatnonzero(c <= 1.0 + 1e-12)
        whole = c[rows] <= -1.0
        half = np.degrees(np.arccos(np.clip(c[rows], -1.0, 1.0)))
        k = np.floor(half / step + 1e-9).astype(int)
        k = np.where(whole | (2 * k + 1 >= n_lon), -1, k)  # -1: the whole ring
        part = rows[k >= 0]
        kk = k[k >= 0][:, None]
        lo = n_lon + columns[None, :] - kk
        hi = n_lon + columns[None, :] + kk + 1
        sums = (cum_v[part[:, None], hi] - cum_v[part[:, None], lo]).sum(axis=0)
        counts = (cum_n[part[:, None], hi] - cum_n[part[:, None], lo]).sum(axis=0)
        ring = rows[k < 0]
        total[i] = sums + ring_v[ring].sum()
        count[i] = counts + ring_n[ring].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def add_regional_means(features: xr.Dataset, names: Iterable[str]) -> xr.Dataset:
    """``features`` with every regional-mean column among ``names`` that it lacks, computed from its base.

    Parameters
    ----------
    features : xarray.Dataset
        Feature grid (``lat``, ``lon``).
    names : list of str
        Columns wanted; those parsed by :func:`parse_regional_name` and absent from ``features`` are added.

    Raises
    ------
    SeisgridError
        When the base feature of a regional column is not in ``features``.
    """
    added = {}
    for name in names:
        parsed = parse_regional_name(name)
        if name in features or parsed is None:
            continue
        base, km = parsed
        if base not in features:
            raise SeisgridError(f"regional mean {name}: its base feature {base} is not in the feature grid "
                                f"(it has {', '.join(map(str, features.data_vars))})")
        grid = features[base].transpose("lat", "lon")
        values = regional_mean(grid.values, features["lat"].values, features["lon"].values, km)
        added[name] = xr.DataArray(values.astype(np.float32), dims=("lat", "lon"), attrs={
            "long_name": f"mean of {base} within {km:g} km", "units": grid.attrs.get("units", ""),
            "method": f"mean of the finite cells whose centres lie within {km:g} km (great circle)"})
    return features.assign(added) if added else features


__all__ = ["add_regional_means", "parse_regional_name", "radii", "regional_mean", "regional_name"]
