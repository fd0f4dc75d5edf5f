"""Published heat-flow maps read as points: text tables, NetCDF/Zarr grids in any projection, GeoTIFF.

:func:`read_published_map` reads

* text tables (CSV, ``;``- or tab-separated, or whitespace-separated ``.txt``/``.xyz``/``.dat``...;
  compressed ``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst`` fine): columns lon/longitude/x, lat/latitude/y
  and HF/GHF/heat flow/q/value, case-insensitive, units in brackets like ``HF [mW/m2]``; headerless files
  are read as lon, lat, value (the GMT xyz convention);
* NetCDF (``.nc``, ``.grd``, ...) and Zarr (``.zarr`` or a folder) grids (:func:`dataset_points`): 1-D or
  2-D lat/lon coordinates, or x/y in the CRS of a CF grid mapping (e.g. EPSG:3031 polar stereographic);
* GeoTIFF (``.tif``) in any CRS, one band (picked by description or number).

Each gives a DataFrame of points: ``lat``, ``lon`` (degrees, lon in [−180, 180)) and ``value`` in mW m⁻².

Unit rule, first that applies: the units the caller gives (``mW/m2`` or ``W/m2``, and spellings like
``mW m-2``) > the units in the file (bracketed in the column name, the variable's ``units`` attribute, the
GeoTIFF band's units) > magnitude: median |value| < 1 means W m⁻² (×1000 to mW m⁻²), else mW m⁻². The
result's ``units_rule`` attribute records which rule decided.
"""

from __future__ import annotations

import io
import logging
import os
import pathlib
import re

import numpy as np
import pandas as pd
import xarray as xr

from seisgrid import storage
from seisgrid.errors import ConfigError, InputFileError, SeisgridError
from seisgrid.ghf import grid as ghf_grid

logger = logging.getLogger("seisgrid")

_TEXT_SUFFIXES = {".csv", ".txt", ".xyz", ".dat", ".tsv", ".asc", ".xy", ".lst"}
_NETCDF_SUFFIXES = {".nc", ".nc4", ".netcdf", ".cdf", ".grd", ".h5", ".hdf5"}
_TIFF_SUFFIXES = {".tif", ".tiff", ".gtiff"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst"}

_LON_NAMES = ("lon", "longitude", "long", "lng", "lons", "nav_lon", "x")
_LAT_NAMES = ("lat", "latitude", "lats", "nav_lat", "y")
_VALUE_NAMES = ("hf", "ghf", "heatflow", "heat_flow", "heatflux", "heat_flux", "geothermal_heat_flow",
                "geothermal_heat_flux", "q", "qs", "q0", "hfd", "value", "values", "z", "band1", "band_1")


def _unit_factor(text) -> float | None:
    """Factor to mW m⁻² for a units string (1 for mW m⁻², 1000 for W m⁻²), None when not recognised."""
    if text is None:
        return None
    t = str(text).strip().replace("⁻", "-").replace("²", "2")
    t = re.sub(r"[\s*^·]", "", t)
    if not t or t.startswith("MW"):  # megawatts: not a heat-flow unit
        return None
    low = t.lower()
    if low.startswith(("mw", "milliwatt")):
        return 1.0
    if low == "w" or low.startswith(("w/", "wm", "watt")):
        return 1000.0
    return None


def _split_name(column: str) -> tuple[str, str | None]:
    """``"HF [mW/m2]"`` → (``"hf"``, ``"mW/m2"``): normalised base name and the bracketed units."""
    text = str(column).strip()
    match = re.match(r"^(.*?)\s*[\[(]([^\])]*)[\])]\s*$", text)
    base, unit = (match.group(1), match.group(2).strip()) if match else (text, None)
    return re.sub(r"[^0-9a-z]+", "_", base.lower()).strip("_"), unit


def _pick(candidates: dict, preferred, what: str, path, given=None, exclude=()):
    """Name among ``candidates`` (original name → normalised) for ``what``; ``given`` wins."""
    if given is not None:
        for original, norm in candidates.items():
            if str(given) == str(original) or str(given).lower() == norm:
                return original
        raise InputFileError(path, f"no {what} column/variable {given!r} (has {', '.join(map(str, candidates))})")
    for name in preferred:
        for original, norm in candidates.items():
            if norm == name and original not in exclude:
                return original
    return None


def _convert_units(values: np.ndarray, units, found, where: str) -> tuple[np.ndarray, str]:
    """Values in mW m⁻² and the rule that decided: ``units`` given > units found in the file > magnitude."""
    if units is not None:
        factor = _unit_factor(units)
        if factor is None:
            raise ConfigError(f"units {units!r}: expected mW/m2 or W/m2")
        return values * factor, f"given: {units} (×{factor:g} to mW m-2)"
    factor = _unit_factor(found)
    if factor is not None:
        return values * factor, f"{where} {found!r} (×{factor:g} to mW m-2)"
    finite = values[np.isfinite(values)]
    median = float(np.median(np.abs(finite))) if finite.size else float("nan")
    if found is not None:
        logger.warning("units %r (%s) not recognised: deciding by magnitude", found, where)
    if median < 1.0:
        return values * 1000.0, f"magnitude: median |value| {median:.4g} < 1, taken as W m-2 (×1000 to mW m-2)"
    return values, f"magnitude: median |value| {median:.4g} ≥ 1, taken as mW m-2"


def _points(lat, lon, value, path, units, found, where, fmt, value_name) -> pd.DataFrame:
    lat = np.asarray(lat, float).reshape(-1)
    lon = np.asarray(lon, float).reshape(-1)
    value = np.asarray(value, float).reshape(-1)
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(value)
    if not ok.any():
        raise InputFileError(path, "no point with finite latitude, longitude and value")
    if np.abs(lat[ok]).max() > 90.0 + 1e-9:
        raise InputFileError(path, f"latitudes up to {np.abs(lat[ok]).max():.4g}: not degrees "
                                   "(projected coordinates? give lat=/lon= of the geographic ones)")
    converted, rule = _convert_units(value[ok], units, found, where)
    points = pd.DataFrame({"lat": lat[ok], "lon": ghf_grid.wrap_longitude(lon[ok]), "value": converted})
    points.attrs.update(source=str(path), format=fmt, value_name=str(value_name), units_rule=rule,
                        n_dropped=int((~ok).sum()))
    logger.info("%s: %d points of %s (%s)", path, len(points), value_name, rule)
    return points


def _kind(path: str) -> tuple[str, str]:
    name = str(path).rstrip("/").lower()
    compression = ""
    suffix = pathlib.PurePosixPath(name).suffix
    if suffix in _COMPRESSION_SUFFIXES:
        compression = suffix
        name = name[: -len(suffix)]
        suffix = pathlib.PurePosixPath(name).suffix
    if suffix == ".zarr":
        return "zarr", compression
    if suffix in _NETCDF_SUFFIXES:
        return "netcdf", compression
    if suffix in _TIFF_SUFFIXES:
        return "geotiff", compression
    if storage.is_local(path) and os.path.isdir(path):
        return "zarr", compression
    return "text", compression


def _read_text(path, units, lat, lon, value) -> pd.DataFrame:
    fs, fpath = storage.filesystem(str(path))
    try:
        with fs.open(fpath, "rb", compression="infer") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except ghf_grid.READ_ERRORS as exc:  # also a truncated or damaged .gz, .bz2, .xz, .zip
        raise InputFileError(path, f"cannot read ({type(exc).__name__}: {exc}); a damaged or truncated "
                                   "file?") from exc
    text = raw.decode("utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", ">", "%"))]
    if not lines:
        raise InputFileError(path, "no data lines")
    first = lines[0]
    sep = next((s for s in (",", ";", "\t") if s in first), r"\s+")
    tokens = [t for t in re.split(sep, first.strip()) if t != ""]

    def is_number(t):
        try:
            float(t)
            return True
        except ValueError:
            return False

    headerless = all(is_number(t) for t in tokens)
    try:
        frame = pd.read_csv(io.StringIO("\n".join(lines)), sep=sep, header=None if headerless else 0,
                            engine="python" if sep == r"\s+" else "c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputFileError(path, f"not a table of points ({exc})") from exc
    if headerless:
        if frame.shape[1] < 3:
            raise InputFileError(path, f"{frame.shape[1]} columns without a header; expected lon, lat, value")
        # Headerless files follow the GMT xyz convention: lon, lat, value.
        frame = frame.iloc[:, :3]
        frame.columns = ["lon", "lat", "value"]
    frame.columns = [str(c).strip() for c in frame.columns]
    split = {c: _split_name(c) for c in frame.columns}
    norm = {c: s[0] for c, s in split.items()}
    lon_col = _pick(norm, _LON_NAMES, "longitude", path, lon)
    lat_col = _pick(norm, _LAT_NAMES, "latitude", path, lat)
    if lon_col is None or lat_col is None:
        raise InputFileError(path, f"no longitude/latitude columns among {', '.join(frame.columns)} "
                                   "(expected lon/longitude and lat/latitude; give lat=/lon=)")
    value_col = _pick(norm, _VALUE_NAMES, "value", path, value, exclude=(lon_col, lat_col))
    if value_col is None:
        rest = [c for c in frame.columns if c not in (lon_col, lat_col) and pd.api.types.is_numeric_dtype(frame[c])]
        if len(rest) != 1:
            raise InputFileError(path, f"cannot tell the heat-flow column among {', '.join(rest) or 'none'} "
                                       "(expected HF/GHF/heat flow/q/value; give value=)")
        value_col = rest[0]
    for col, what in ((lon_col, "longitude"), (lat_col, "latitude")):
        if norm[col] in ("x", "y") and lon is None and lat is None:
            limit = 360.0 if what == "longitude" else 90.0
            if np.nanmax(np.abs(_numeric(frame[col]))) > limit:
                raise InputFileError(path, f"column {col} looks projected, not {what} in degrees; give lat=/lon=")
    numbers = {c: _numeric(frame[c]) for c in (lon_col, lat_col, value_col)}
    return _points(numbers[lat_col], numbers[lon_col], numbers[value_col], path, units, split[value_col][1],
                   f"column name {value_col!r}: units", "text", value_col)


def _numeric(column: pd.Series) -> np.ndarray:
    """A column as float64; text that is not a number is NaN (dropped as not finite, counted in ``n_dropped``).

    Integers too large for a float (pandas keeps them as Python ints) become ±inf, also dropped.
    """
    try:
        return pd.to_numeric(column, errors="coerce").to_numpy(float)
    except OverflowError:
        return pd.to_numeric(column.astype(str), errors="coerce").to_numpy(float)


def _norm(name) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def _find_coordinate(ds: xr.Dataset, kind: str, given):
    if given is not None:
        if given not in ds.variables:
            return None
        return str(given)
    units = {"lat": ("degrees_north", "degree_north", "degrees_n", "degree_n"),
             "lon": ("degrees_east", "degree_east", "degrees_e", "degree_e")}[kind]
    standard = {"lat": "latitude", "lon": "longitude"}[kind]
    names = {"lat": ("lat", "latitude", "lats", "nav_lat"),
             "lon": ("lon", "longitude", "long", "lons", "nav_lon")}[kind]
    found = [str(n) for n, v in ds.variables.items()
             if v.attrs.get("standard_name") == standard or str(v.attrs.get("units", "")).lower() in units]
    found += [str(n) for n in ds.variables if _norm(n) in names and str(n) not in found]
    return found[0] if found else None


def _crs_from(ds: xr.Dataset, var: xr.DataArray):
    mapping = var.attrs.get("grid_mapping")
    candidates = [mapping] if mapping in ds.variables else []
    candidates += [n for n in ("crs", "spatial_ref", "polar_stereographic") if n in ds.variables]
    for name in candidates:
        attrs = ds[name].attrs
        for key in ("crs_wkt", "spatial_ref", "proj4", "proj4text"):
            if attrs.get(key):
                return attrs[key]
        if attrs.get("epsg_code") or attrs.get("EPSG"):
            return f"EPSG:{str(attrs.get('epsg_code') or attrs.get('EPSG')).split(':')[-1]}"
    return None


def dataset_points(ds: xr.Dataset, path: str = "dataset", *, units: str | None = None, lat: str | None = None,
                   lon: str | None = None, value: str | int | None = None, fmt: str = "grid") -> pd.DataFrame:
    """Points (lat, lon, value in mW m⁻²) of a gridded map: 1-D or 2-D lat/lon, or x/y with a CF grid mapping.

    Parameters
    ----------
    ds : xarray.Dataset
        The grid.
    path : str
        Name for messages and the result's ``source``.
    units, lat, lon, value
        As in :func:`read_published_map`.
    fmt : str
        Format recorded in the result's attributes.

    Returns
    -------
    pandas.DataFrame
        As :func:`read_published_map`.
    """
    lat_name = _find_coordinate(ds, "lat", lat)
    lon_name = _find_coordinate(ds, "lon", lon)
    if (lat is not None and lat_name is None) or (lon is not None and lon_name is None):
        raise InputFileError(path, f"no variable {lat if lat_name is None else lon!r} "
                                   f"(has {', '.join(map(str, ds.variables))})")
    skip = {lat_name, lon_name}
    if value is not None:
        if value not in ds.data_vars and value not in ds.variables:
            raise InputFileError(path, f"no variable {value!r} (has {', '.join(map(str, ds.data_vars))})")
        value_name = str(value)
    else:
        gridded = {str(n): _norm(n) for n, v in ds.data_vars.items()
                   if v.ndim >= 1 and str(n) not in skip and not str(n).endswith(("_bnds", "_bounds"))
                   and v.dtype.kind in "fiu"}
        value_name = _pick(gridded, _VALUE_NAMES, "value", path)
        if value_name is None:
            hits = [n for n in gridded if any(s in str(ds[n].attrs.get("standard_name", "")) + " " +
                                              str(ds[n].attrs.get("long_name", "")).lower()
                                              for s in ("heat_flux", "heat_flow", "heat flow", "heat flux"))]
            hits = hits or [n for n in gridded if ds[n].ndim >= 2]
            if len(hits) != 1:
                raise InputFileError(path, f"cannot tell the heat-flow variable among {', '.join(gridded) or 'none'} "
                                           "(give value=)")
            value_name = hits[0]
    var = ds[value_name]
    extra = [d for d in var.dims if var.sizes[d] == 1]
    var = var.squeeze(extra) if extra else var
    if lat_name is None or lon_name is None:
        crs = _crs_from(ds, var)
        if crs is None or var.ndim != 2:
            raise InputFileError(path, "no latitude/longitude coordinates (1-D or 2-D) and no CF grid mapping "
                                       f"among {', '.join(map(str, ds.variables))}; give lat=/lon=")
        from pyproj import CRS, Transformer

        ydim, xdim = var.dims
        xx, yy = np.meshgrid(ds[xdim].values.astype(float), ds[ydim].values.astype(float))
        glon, glat = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True).transform(xx, yy)
        lat_arr = xr.DataArray(glat, dims=(ydim, xdim))
        lon_arr = xr.DataArray(glon, dims=(ydim, xdim))
    else:
        lat_arr, lon_arr = ds[lat_name], ds[lon_name]
        lat_arr = lat_arr.squeeze([d for d in lat_arr.dims if lat_arr.sizes[d] == 1 and d not in var.dims])
        lon_arr = lon_arr.squeeze([d for d in lon_arr.dims if lon_arr.sizes[d] == 1 and d not in var.dims])
    lat_arr, lon_arr = lat_arr.reset_coords(drop=True), lon_arr.reset_coords(drop=True)
    v, la, lo = xr.broadcast(var.reset_coords(drop=True), lat_arr, lon_arr)
    if set(v.dims) - set(lat_arr.dims) - set(lon_arr.dims):
        raise InputFileError(path, f"{value_name} has dimensions {var.dims} beyond its lat/lon ones; select one "
                                   "slice first")
    v, la, lo = v.transpose(*v.dims), la.transpose(*v.dims), lo.transpose(*v.dims)
    return _points(la.values, lo.values, v.values, path, units, var.attrs.get("units"),
                   f"attribute {value_name}.units", fmt, value_name)


def _read_geotiff(path, units, value) -> pd.DataFrame:
    try:
        import rasterio
    except ImportError as exc:
        raise InputFileError(path, "reading a GeoTIFF needs rasterio (pip install rasterio)") from exc
    from pyproj import Transformer

    try:
        src = rasterio.open(str(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputFileError(path, f"cannot open as a raster ({exc})") from exc
    with src:
        descriptions = [d or "" for d in src.descriptions]
        band = 1
        if value is not None:
            if str(value).isdigit():
                band = int(value)
                if not 1 <= band <= src.count:
                    raise InputFileError(path, f"no band {band}: the file has {src.count} band(s)")
            elif value in descriptions:
                band = descriptions.index(value) + 1
            else:
                raise InputFileError(path, f"no band {value!r} (bands: {', '.join(descriptions) or src.count})")
        else:
            named = {str(i): _norm(d) for i, d in enumerate(descriptions, start=1) if d}
            hit = _pick(named, _VALUE_NAMES, "band", path)
            band = int(hit) if hit else 1
        data = src.read(band).astype(float)
        if src.nodata is not None and np.isfinite(src.nodata):
            data[data == src.nodata] = np.nan
        found = src.units[band - 1] if src.units and src.units[band - 1] else src.tags(band).get("units")
        rows, cols = np.mgrid[0: src.height, 0: src.width]
        t = src.transform
        x = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c
        y = t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f
        if src.crs is None:
            raise InputFileError(path, "raster without a CRS: cannot place its pixels")
        if src.crs.is_geographic:
            lon, lat = x, y
        else:
            lon, lat = Transformer.from_crs(src.crs.to_wkt(), "EPSG:4326", always_xy=True).transform(x, y)
        name = descriptions[band - 1] or f"band {band}"
    return _points(lat, lon, data, path, units, found, f"band {band} units", "geotiff", name)


def read_published_map(path: str | os.PathLike[str], *, units: str | None = None, lat: str | None = None,
                       lon: str | None = None, value: str | int | None = None) -> pd.DataFrame:
    """A heat-flow map as points: text tables, NetCDF/Zarr grids (any projection with lat/lon) or GeoTIFF.

    Parameters
    ----------
    path : str or os.PathLike
        CSV / whitespace text (``.gz`` etc. fine; columns lon/longitude/x, lat/latitude/y and
        HF/GHF/heat flow/q/value, case-insensitive, units in brackets like ``HF [mW/m2]``; headerless files
        are read as lon, lat, value), NetCDF (``.nc``, ``.grd``), Zarr (``.zarr`` or a folder) or GeoTIFF.
    units : str, optional
        ``"mW/m2"`` or ``"W/m2"`` (and spellings like ``mW m-2``): overrides detection.
    lat, lon, value : str, optional
        Column / variable (GeoTIFF: band description or number) names, when detection does not find them.

    Returns
    -------
    pandas.DataFrame
        Columns ``lat``, ``lon`` (degrees, lon in [−180, 180)) and ``value`` (mW m⁻²), finite rows only;
        ``attrs``: ``source``, ``format``, ``value_name``, ``units_rule`` (which rule decided the units:
        given, the file's units, or magnitude — median |value| < 1 means W m⁻², ×1000) and ``n_dropped``.
    """
    path = str(path)
    kind, _ = _kind(path)
    try:
        if kind == "text":
            return _read_text(path, units, lat, lon, value)
        if kind == "geotiff":
            return _read_geotiff(path, units, value)
        if kind == "netcdf":
            if not storage.is_local(path):
                raise InputFileError(path, "NetCDF maps are read from local files only; copy it here first")
            with ghf_grid.open_netcdf(path, "NetCDF map") as ds:
                return dataset_points(ds, path, units=units, lat=lat, lon=lon, value=value, fmt="netcdf")
        try:
            ds = ghf_grid.open_grid(path, "map")
        except SeisgridError as exc:
            raise InputFileError(path, f"cannot open as a Zarr grid ({exc})") from exc
        return dataset_points(ds, path, units=units, lat=lat, lon=lon, value=value, fmt="zarr")
    except SeisgridError:
        raise
    except ghf_grid.READ_ERRORS as exc:  # the file's bytes, deep inside a reader (damaged data, odd types)
        raise InputFileError(path, f"cannot read as a {kind} map ({type(exc).__name__}: {exc}); a damaged file, "
                                   "or give lat=/lon=/value= and units=") from exc

