"""The global regular (lat, lon) grid every GHF dataset lives on, great-circle distances and the land mask.

Cells are ``resolution`` degrees wide; coordinates are cell centres (for 0.5°: lat −89.75 … 89.75
ascending, lon −179.75 … 179.75), so a point belongs to exactly one cell and cell indices are integer
arithmetic. Everything else in :mod:`seisgrid.ghf` takes its grid from here.
"""

from __future__ import annotations

import functools
import lzma
import os
import zipfile
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from seisgrid import config, storage
from seisgrid.errors import InputFileError, StorageError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), km

#: What damaged or foreign files raise inside the libraries that read them (decompressors, netCDF/HDF5, GDAL,
#: Zarr codecs, pandas, NumPy): readers turn these into an error naming the file and the reason.
READ_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError,
                                            OverflowError, RuntimeError, zipfile.BadZipFile, lzma.LZMAError,
                                            zlib.error)


def resolution() -> float:
    """Grid spacing in degrees (``seisgrid.ghf.resolution``, 0.5)."""
    return float(config.get("ghf.resolution", 0.5))


def grid_coords(res: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (ascending) and longitudes of the global grid, degrees.

    Parameters
    ----------
    res : float, optional
        Cell size in degrees; 180 must be a multiple of it. Default :func:`resolution`.

    Returns
    -------
    lat, lon : numpy.ndarray
        ``180/res`` latitudes from ``-90 + res/2`` and ``360/res`` longitudes from ``-180 + res/2``.
    """
    res = resolution() if res is None else float(res)
    n_lat = round(180.0 / res)
    if not np.isclose(n_lat * res, 180.0):
        raise ValueError(f"grid resolution {res}° does not divide 180°")
    lat = -90.0 + res * (np.arange(n_lat) + 0.5)
    lon = -180.0 + res * (np.arange(2 * n_lat) + 0.5)
    return lat, lon


def empty_dataset(res: float | None = None) -> xr.Dataset:
    """A Dataset with only the grid's ``lat``/``lon`` coordinates (CF attributes), to add variables to."""
    lat, lon = grid_coords(res)
    ds = xr.Dataset(coords={"lat": ("lat", lat), "lon": ("lon", lon)})
    ds.lat.attrs.update(units="degrees_north", standard_name="latitude", long_name="cell-centre latitude")
    ds.lon.attrs.update(units="degrees_east", standard_name="longitude", long_name="cell-centre longitude")
    ds.attrs.update(grid_resolution_deg=float(lat[1] - lat[0]), conventions="CF-1.8")
    return ds


def wrap_longitude(lon: ArrayLike) -> np.ndarray:
    """Longitudes mapped into [-180, 180) degrees."""
    return (np.asarray(lon, dtype=float) + 180.0) % 360.0 - 180.0


def cell_index(lat: ArrayLike, lon: ArrayLike, res: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row (lat) and column (lon) index of the cell holding each point (degrees).

    Longitudes are wrapped; lat = 90 goes to the last row.
    """
    res = resolution() if res is None else float(res)
    n_lat = round(180.0 / res)
    i = np.floor((np.asarray(lat, dtype=float) + 90.0) / res).astype(np.int64)
    j = np.floor((wrap_longitude(lon) + 180.0) / res).astype(np.int64)
    return np.clip(i, 0, n_lat - 1), np.clip(j, 0, 2 * n_lat - 1)


def haversine_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> np.ndarray:
    """Great-circle distance in km between points (degrees; NumPy broadcasting), haversine formula."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def unit_vectors(lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """(…, 3) Cartesian unit vectors of points given in degrees, for chord-distance KD-trees."""
    la, lo = np.radians(np.asarray(lat, dtype=float)), np.radians(np.asarray(lon, dtype=float))
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


@functools.lru_cache(maxsize=1)
def _globe_mask():
    # global-land-mask ships a 1/120° GLOBE land/ocean mask (MIT, PyPI): an offline land mask and the
    # source of the coastlines drawn on maps (cartopy cannot download Natural Earth here).
    from global_land_mask import globe

    return globe._mask, globe._lat, globe._lon


def is_land(lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """True where a point lies on land (GLOBE 1 km mask; Antarctica and its grounded ice count as land)."""
    mask, mlat, mlon = _globe_mask()
    lat = np.asarray(lat, dtype=float)
    lon = wrap_longitude(lon)
    i = np.clip(np.round((lat - mlat[0]) / (mlat[1] - mlat[0])).astype(np.int64), 0, len(mlat) - 1)
    j = np.clip(np.round((lon - mlon[0]) / (mlon[1] - mlon[0])).astype(np.int64), 0, len(mlon) - 1)
    return ~mask[i, j]


def land_fraction(res: float | None = None) -> xr.DataArray:
    """Fraction of each grid cell that is land (mean of the 1 km mask's pixels inside it), 0–1."""
    mask, mlat, _mlon = _globe_mask()
    lat, lon = grid_coords(res)
    res_deg = float(lat[1] - lat[0])
    step = round(res_deg / abs(mlat[1] - mlat[0]))
    n_lat, n_lon = mask.shape[0] // step, mask.shape[1] // step
    # Ocean share from the mask itself (rows from 90°N down): inverting the 0.9 GB mask first would copy it.
    ocean = mask[: n_lat * step, : n_lon * step].reshape(n_lat, step, n_lon, step).mean(axis=(1, 3))
    frac = (1.0 - ocean)[::-1]  # ascending latitude like the grid
    out = xr.DataArray(frac.astype(np.float32), coords={"lat": lat, "lon": lon}, dims=("lat", "lon"),
                       name="land_fraction")
    out.attrs.update(units="1", source="global-land-mask 1.0.0 (GLOBE 1 km land/ocean mask)",
                     method="share of 1/120° land pixels per cell")
    return out


def open_grid(url: str | os.PathLike[str], what: str = "grid") -> xr.Dataset:
    """A GHF grid store (local path or URL) opened with :func:`xarray.open_zarr` and read; errors name the URL.

    The grids are small (a 0.5° variable is 1 MB), so every variable is read here: a damaged chunk (garbage or
    truncated bytes) is reported now, naming the store and the variable, not as a codec error deep inside
    a later computation.

    Parameters
    ----------
    url : str or path
        Zarr store written by ``seisgrid ghf heatflow`` / ``features`` (or any Dataset on this grid).
    what : str
        What the store should be, for the error message (e.g. "feature grid").

    Raises
    ------
    StorageError
        Not a Zarr store, or a variable that cannot be read.
    """
    import warnings

    try:
        with warnings.catch_warnings():  # consolidated metadata is used when the store has it
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata")
            ds = xr.open_zarr(storage.zarr_store(str(url), read_only=True))
    except READ_ERRORS as exc:  # also a damaged coordinate chunk (read here, for the index)
        raise StorageError(f"{url}: not a {what} Zarr store ({type(exc).__name__}: {exc})") from exc
    for name, variable in ds.variables.items():
        try:
            variable.load()
        except READ_ERRORS as exc:
            raise StorageError(f"{url}: variable {name} of the {what} cannot be read ({type(exc).__name__}: {exc}); "
                               "the store is damaged: write it again with the command that made it") from exc
    return ds


def open_netcdf(path: str | os.PathLike[str], what: str = "NetCDF file", **kwargs: Any) -> xr.Dataset:
    """A local NetCDF file opened with :func:`xarray.open_dataset` (lazily), checked first; errors name the file.

    Parameters
    ----------
    path : str or path
        Local file.
    what : str
        What the file should be, for messages.
    **kwargs
        Passed to :func:`xarray.open_dataset`.

    Raises
    ------
    InputFileError
        No such file, not NetCDF, or a classic-format file shorter than its header says (the netCDF library
        would read the missing part as zeros, silently).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise InputFileError(path, f"no such file; expected a {what}")
    damage = _classic_netcdf_damage(path)
    if damage:
        raise InputFileError(path, f"{damage}; a truncated or damaged copy? fetch the {what} again")
    try:
        return xr.open_dataset(path, **kwargs)
    except READ_ERRORS as exc:
        raise InputFileError(path, f"cannot open as a {what} ({type(exc).__name__}: {exc})") from exc


def _classic_netcdf_damage(path: str) -> str | None:
    """Why a classic-format (CDF-1/CDF-2) NetCDF file is damaged, or None (other formats: None).

    SciPy's reader maps every variable onto the file and fails when the file ends before a variable does.
    """
    import warnings

    from scipy.io import netcdf_file

    with open(path, "rb") as f:
        if f.read(4) not in (b"CDF\x01", b"CDF\x02"):
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "cannot close a netcdf_file opened with mmap=True ..."
            nc = netcdf_file(path, "r", mmap=True)
            nc.variables.clear()  # drop the maps, so that close() can unmap the file
            nc.close()
    except READ_ERRORS as exc:
        return f"not a complete classic NetCDF file ({type(exc).__name__}: {exc})"
    return None
