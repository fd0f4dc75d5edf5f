"""Comparison of heat-flow maps: ours − other at the other map's points, difference grids and maps.

:func:`compare` (``seisgrid ghf compare``) compares any two maps given as points (CSV/text) or grids
(NetCDF/Zarr with 1-D or 2-D lat/lon, GeoTIFF in any CRS; read by
:func:`seisgrid.ghf.published.read_published_map`): each point of the other map is matched to our
nearest cell on the sphere; statistics are of ours − other at the matched points (:func:`compare_maps`).
"""

from __future__ import annotations

import logging
import os
import pathlib

import numpy as np
import pandas as pd
import xarray as xr

from seisgrid import config
from seisgrid.errors import InputFileError, SeisgridError
from seisgrid.ghf import grid as ghf_grid
from seisgrid.ghf.published import _kind, dataset_points, read_published_map

logger = logging.getLogger("seisgrid")

UNITS = "mW m-2"

LOESING_EBBING = ("ghf", "loesing_ebbing2021", "HF_Min_Max_MaxAbs.csv.gz")
LUCAZEAU = ("ghf", "lucazeau2019_grid", "Lucazeau2019_GHF.nc")
#: The published maps of the shared data folder that ``ghf map`` compares with by default.
PUBLISHED_MAPS = {"loesing_ebbing2021": LOESING_EBBING, "lucazeau2019": LUCAZEAU}


def _setting(name: str, value, default):
    return config.get(f"ghf_map.{name}", default, override=value)


def _pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _our_points(ours, variable: str) -> tuple[pd.DataFrame, float | None, xr.DataArray | None]:
    """Our map as points (finite cells), its cell size in degrees and the (lat, lon) DataArray when a grid."""
    if isinstance(ours, pd.DataFrame):
        return ours, None, None
    if isinstance(ours, xr.DataArray):
        ours = ours.to_dataset(name=variable)
    if isinstance(ours, xr.Dataset):
        if variable in ours and set(ours[variable].dims) == {"lat", "lon"}:
            da = ours[variable].transpose("lat", "lon")
            lat2, lon2 = np.meshgrid(da["lat"].values, da["lon"].values, indexing="ij")
            values = da.values.astype(float)
            ok = np.isfinite(values)
            points = pd.DataFrame({"lat": lat2[ok], "lon": ghf_grid.wrap_longitude(lon2[ok]), "value": values[ok]})
            points.attrs.update(source=str(ours.attrs.get("source", "our map")), units_rule="our map (mW m-2)")
            lat = da["lat"].values
            return points, float(abs(lat[1] - lat[0])) if lat.size > 1 else None, da
        return dataset_points(ours, "our map", value=variable if variable in ours else None), None, None
    raise SeisgridError(f"map comparison: cannot use {type(ours).__name__} as a map (Dataset or points)")


GRIDDED_FORMATS = ("grid", "netcdf", "zarr", "geotiff")
"""Formats of :func:`~seisgrid.ghf.published.read_published_map` whose points are the cells of a raster."""


def on_our_cells(theirs: pd.DataFrame, our_grid: xr.DataArray) -> pd.DataFrame:
    """Another raster's points averaged onto our predicted cells: one value per cell of ours.

    Each point goes to the cell of our regular (lat, lon) grid that contains it (cell edges half a spacing
    either side of the centres); points on a cell we did not predict (NaN: ocean, ice shelves) are dropped.
    A raster finer than ours is so block-averaged, one on the same grid (Lucazeau 2019's 0.5°) is matched
    cell for cell. Matching raster points by distance instead would count the other map's ocean cells next
    to our coastal cells (Lucazeau's ridge cells reach thousands of mW m⁻²) and, near the pole where 0.5° of
    longitude is a few km, several of its cells per cell of ours.

    Returns
    -------
    pandas.DataFrame
        ``lat``, ``lon`` (our cell centres), ``value`` (mean of the points in the cell) and ``points`` (how
        many); ``attrs`` copied from ``theirs`` plus ``n_points`` (points on our cells).
    """
    glat = our_grid["lat"].values.astype(float)
    glon = our_grid["lon"].values.astype(float)
    if glat.size < 2 or glon.size < 2:
        raise SeisgridError("map comparison: our grid needs at least 2 cells along lat and lon")
    dlat, dlon = float(glat[1] - glat[0]), float(glon[1] - glon[0])
    rows = np.floor((theirs["lat"].to_numpy() - (glat[0] - dlat / 2)) / dlat).astype(int)
    lon = ghf_grid.wrap_longitude(theirs["lon"].to_numpy())
    cols = np.floor(((lon - (glon[0] - dlon / 2)) % 360.0) / dlon).astype(int)
    inside = (rows >= 0) & (rows < glat.size) & (cols >= 0) & (cols < glon.size)
    values = our_grid.transpose("lat", "lon").values
    on_cell = np.zeros(len(theirs), dtype=bool)
    on_cell[inside] = np.isfinite(values[rows[inside], cols[inside]])
    frame = pd.DataFrame({"row": rows[on_cell], "col": cols[on_cell], "value": theirs["value"].to_numpy()[on_cell]})
    cells = frame.groupby(["row", "col"], sort=True)["value"].agg(["mean", "size"]).reset_index()
    row, col = cells["row"].to_numpy(), cells["col"].to_numpy()
    out = pd.DataFrame({"lat": glat[row], "lon": ghf_grid.wrap_longitude(glon[col]),
                        "value": cells["mean"].to_numpy(float), "points": cells["size"].to_numpy(int)})
    out.attrs.update(theirs.attrs, n_points=int(on_cell.sum()))
    return out


def default_max_distance_km(cell_deg: float | None = None) -> float:
    """0.75 × the grid's cell size at the equator, km (41.7 km for 0.5°).

    The largest half-diagonal of a 0.5° cell (at the equator, 0.707 × 55.6 km = 39.3 km; smaller towards the
    poles) is below this, so a point inside one of our cells always matches it, while points in cells we did
    not predict (ocean, ice shelves) match only when a predicted cell centre is about as close as that.

    Parameters
    ----------
    cell_deg : float, optional
        Cell size of our grid, degrees; default ``seisgrid.ghf.resolution``.

    Returns
    -------
    float
        The matching distance, km (great circle).
    """
    cell = float(ghf_grid.resolution() if cell_deg is None else cell_deg)
    return 0.75 * np.radians(cell) * ghf_grid.EARTH_RADIUS_KM


def area_weighted_statistics(lat: np.ndarray, lon: np.ndarray, ours: np.ndarray, other: np.ndarray) -> dict:
    """Statistics of two maps at matched points, each point weighted by cos(latitude) (its cell's area).

    On a regular lat/lon grid an equal weight per cell over-counts the cells near the pole, which are the
    smallest; the published maps' Antarctic figures are area-weighted.

    Parameters
    ----------
    lat, lon : numpy.ndarray
        Coordinates of the matched points (degrees; longitude in −180 … 180 or 0 … 360).
    ours, other : numpy.ndarray
        The two maps' values there (mW m⁻²).

    Returns
    -------
    dict
        ``correlation``, ``rms_difference``, ``mean_difference`` (ours − other), ``mean_ours``,
        ``mean_other``, ``range_ours`` and ``range_other`` ([min, max], unweighted), and ``west`` / ``east``:
        ``{"mean_ours", "mean_other", "n"}`` for West (180–360° E, i.e. longitudes west of Greenwich) and East
        (0–180° E) — NaN where there is no point.
    """
    lat, lon, ours, other = (np.asarray(x, dtype=float) for x in (lat, lon, ours, other))
    nan = float("nan")

    def mean(values: np.ndarray, weights: np.ndarray) -> float:
        return float(np.sum(weights * values) / np.sum(weights)) if values.size else nan

    w = np.cos(np.deg2rad(lat))
    out: dict = {"correlation": nan, "rms_difference": nan, "mean_difference": nan, "mean_ours": nan,
                 "mean_other": nan, "range_ours": [nan, nan], "range_other": [nan, nan]}
    if ours.size:
        mo, mt = mean(ours, w), mean(other, w)
        cov = mean((ours - mo) * (other - mt), w)
        var_o, var_t = mean((ours - mo) ** 2, w), mean((other - mt) ** 2, w)
        out.update(correlation=float(cov / np.sqrt(var_o * var_t)) if var_o > 0 and var_t > 0 else nan,
                   rms_difference=float(np.sqrt(mean((ours - other) ** 2, w))), mean_difference=mo - mt,
                   mean_ours=mo, mean_other=mt, range_ours=[float(ours.min()), float(ours.max())],
                   range_other=[float(other.min()), float(other.max())])
    west = np.mod(lon, 360.0) >= 180.0
    for name, part in (("west", west), ("east", ~west)):
        out[name] = {"mean_ours": mean(ours[part], w[part]), "mean_other": mean(other[part], w[part]),
                     "n": int(part.sum())}
    return out


def compare_maps(ours: xr.Dataset | xr.DataArray | pd.DataFrame, other: pd.DataFrame | xr.Dataset, *,
                 lat_max: float | None = None, max_distance_km: float | None = None,
                 variable: str = "heatflow") -> dict:
    """Compare our map with another at the other map's points (nearest of our cells on the sphere).

    Parameters
    ----------
    ours : xarray.Dataset, xarray.DataArray or pandas.DataFrame
        Our map (grid with ``variable`` on (lat, lon), or that DataArray; cells with finite values are used)
        or points (``lat``, ``lon``, ``value``).
    other : pandas.DataFrame or xarray.Dataset
        The other map: points from :func:`~seisgrid.ghf.published.read_published_map` or a grid (see
        :func:`~seisgrid.ghf.published.dataset_points`).
    lat_max : float, optional
        Only points at or south of this latitude (both maps); default ``seisgrid.ghf_map.lat_max``.
    max_distance_km : float, optional
        Points of the other map farther than this (great circle) from our nearest cell centre / point are
        dropped; default ``seisgrid.ghf_map.compare_max_distance_km``, and when that is 0 or null
        :func:`default_max_distance_km` of our grid.
    variable : str
        Our map's variable.

    Returns
    -------
    dict
        ``n`` (matched points), ``n_other`` (other's points in the domain), ``n_dropped`` (farther than the
        limit), ``correlation`` (Pearson), ``rms_difference``, ``mean_difference`` (ours − other),
        ``median_difference``, ``sd_difference``, ``mean_ours``, ``mean_other`` (at the matched points; all
        mW m⁻², points weighted equally), ``area_weighted`` (the same weighted by cos latitude, with ranges
        and West/East means: :func:`area_weighted_statistics`), ``max_distance_km``, ``median_distance_km``,
        ``lat_max``,
        ``units_rule`` (how the other map's units were decided), ``difference``: a DataFrame of the matched
        points (``lat``, ``lon`` of the other map, ``ours``, ``other``, ``difference``, ``distance_km``), and
        when ``ours`` is a grid ``difference_grid``: ours − other on our cells for maps (other at its
        nearest point; see :func:`plot_difference`).
    """
    from scipy.spatial import cKDTree

    lat_max = float(_setting("lat_max", lat_max, -60.0))
    mine, cell_deg, our_grid = _our_points(ours, variable)
    theirs = other if isinstance(other, pd.DataFrame) else _our_points(other, variable)[0]
    limit = _setting("compare_max_distance_km", max_distance_km, 0.0)
    limit = float(limit) if limit not in (None, "", "null") else 0.0
    if limit <= 0:
        limit = default_max_distance_km(cell_deg)
    mine = mine[mine["lat"] <= lat_max]
    theirs = theirs[theirs["lat"] <= lat_max]
    n_other = len(theirs)
    cell_matched = our_grid is not None and theirs.attrs.get("format") in GRIDDED_FORMATS
    if our_grid is not None and cell_matched and not theirs.empty:
        theirs = on_our_cells(theirs, our_grid)
    if mine.empty:
        raise SeisgridError(f"map comparison: our map has no finite value south of {lat_max}°")
    if theirs.empty:
        name = other.attrs.get("source", "points") if isinstance(other, pd.DataFrame) else "grid"
        raise SeisgridError(f"map comparison: the other map ({name}) has no point south of {lat_max}°")
    tree = cKDTree(ghf_grid.unit_vectors(mine["lat"].to_numpy(), mine["lon"].to_numpy()))
    chord, index = tree.query(ghf_grid.unit_vectors(theirs["lat"].to_numpy(), theirs["lon"].to_numpy()))
    distance = 2.0 * ghf_grid.EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    keep = distance <= limit
    ours_v = mine["value"].to_numpy()[index[keep]]
    other_v = theirs["value"].to_numpy()[keep]
    diff = ours_v - other_v
    n = int(keep.sum())
    nan = float("nan")
    result = {
        "n": n,
        "n_other": n_other,
        "n_dropped": n_other - int(theirs.attrs["n_points"]) if cell_matched else int((~keep).sum()),
        "correlation": _pearson(ours_v, other_v) if n >= 2 else nan,
        "rms_difference": float(np.sqrt(np.mean(diff ** 2))) if n else nan,
        "mean_difference": float(diff.mean()) if n else nan,
        "median_difference": float(np.median(diff)) if n else nan,
        "sd_difference": float(diff.std()) if n else nan,
        "mean_ours": float(ours_v.mean()) if n else nan,
        "mean_other": float(other_v.mean()) if n else nan,
        "max_distance_km": float(limit),
        "median_distance_km": float(np.median(distance[keep])) if n else nan,
        "lat_max": lat_max,
        "units_rule": str(theirs.attrs.get("units_rule", "given as points")),
        "matching": ("raster averaged onto our cells (on_our_cells)" if cell_matched
                     else f"each point to our nearest cell centre within {limit:.1f} km"),
        "area_weighted": area_weighted_statistics(theirs["lat"].to_numpy()[keep], theirs["lon"].to_numpy()[keep],
                                                  ours_v, other_v),
    }
    if not n:
        logger.warning("map comparison: no point of the other map within %.1f km of our cells", limit)
    result["difference"] = pd.DataFrame({"lat": theirs["lat"].to_numpy()[keep], "lon": theirs["lon"].to_numpy()[keep],
                                         "ours": ours_v, "other": other_v, "difference": diff,
                                         "distance_km": distance[keep]})
    if our_grid is not None:
        result["difference_grid"] = _difference_on_cells(our_grid.sel(lat=slice(None, lat_max)), theirs, limit)
    return result


def _difference_on_cells(da: xr.DataArray, theirs: pd.DataFrame, limit: float) -> xr.DataArray:
    """Ours − other on our finite cells, the other map taken at its nearest point (for the difference map).

    A point map sparser than our cells (Lösing & Ebbing: 55 km spacing, our cells a few km wide near the
    pole) would leave most cells blank if only the cells holding a point were shown, so each of our cells
    takes the nearest point within max(``limit``, 1.5 × the other map's median point spacing).
    """
    from scipy.spatial import cKDTree

    uv = ghf_grid.unit_vectors(theirs["lat"].to_numpy(), theirs["lon"].to_numpy())
    tree = cKDTree(uv)
    radius = limit
    if len(theirs) > 1:
        chord = tree.query(uv, k=2)[0][:, 1]
        spacing = 2.0 * ghf_grid.EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
        radius = max(limit, 1.5 * float(np.median(spacing)))
    values = da.values.astype(float)
    cells = np.isfinite(values)
    la, lo = np.meshgrid(da["lat"].values, da["lon"].values, indexing="ij")
    chord, index = tree.query(ghf_grid.unit_vectors(la[cells], lo[cells]))
    near = 2.0 * ghf_grid.EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0)) <= radius
    field = np.full(values.shape, np.nan)
    diff = values[cells] - theirs["value"].to_numpy()[index]
    field[cells] = np.where(near, diff, np.nan)
    return xr.DataArray(field, coords={"lat": da["lat"], "lon": da["lon"]}, dims=("lat", "lon"), name="difference",
                        attrs={"units": UNITS, "long_name": "heat-flow difference, ours − other (nearest point)",
                               "search_radius_km": radius})


def difference_grid(difference: pd.DataFrame, res: float | None = None, lat_max: float | None = None) -> xr.DataArray:
    """Mean of ours − other per grid cell (south of ``lat_max``) of the matched points, NaN elsewhere.

    Parameters
    ----------
    difference : pandas.DataFrame
        Matched points with ``lat``, ``lon`` and ``difference`` (the ``difference`` of :func:`compare_maps`).
    res : float, optional
        Grid cell size, degrees; default ``seisgrid.ghf.resolution``.
    lat_max : float, optional
        Northern edge; default ``seisgrid.ghf_map.lat_max``.

    Returns
    -------
    xarray.DataArray
        ``difference`` (mW m⁻²) on the (lat, lon) cells up to the row holding ``lat_max``; NaN in cells
        without a matched point.
    """
    lat_max = float(_setting("lat_max", lat_max, -60.0))
    ds = ghf_grid.empty_dataset(res)
    region = ds.sel(lat=slice(None, lat_max + float(ds.attrs["grid_resolution_deg"])))
    i, j = ghf_grid.cell_index(difference["lat"].to_numpy(), difference["lon"].to_numpy(), res)
    n_lon = ds.sizes["lon"]
    flat = i * n_lon + j
    size = ds.sizes["lat"] * n_lon
    total = np.bincount(flat, weights=difference["difference"].to_numpy(float), minlength=size)
    count = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total / count).reshape(ds.sizes["lat"], n_lon)[: region.sizes["lat"]]
    return xr.DataArray(mean, coords={"lat": region["lat"], "lon": region["lon"]}, dims=("lat", "lon"),
                        name="difference", attrs={"units": UNITS, "long_name": "heat-flow difference, ours − other"})


def plot_difference(result: dict | pd.DataFrame, path: str, *, title: str | None = None, res: float | None = None,
                    lat_max: float | None = None, vmax: float | None = None) -> str:
    """South-polar PNG of ours − other on our grid cells.

    Parameters
    ----------
    result : dict or pandas.DataFrame
        :func:`compare_maps` result — its ``difference_grid`` (our cells, other map at its nearest point)
        when our map was a grid, else its ``difference`` points averaged per cell — or that DataFrame.
    path : str
        PNG to write (local path or URL).
    title : str, optional
        Default: "ours − other (n, r, RMS)".
    res : float, optional
        Grid cell size, degrees; default ``seisgrid.ghf.resolution``.
    lat_max : float, optional
        Map edge; default ``seisgrid.ghf_map.lat_max``.
    vmax : float, optional
        Colour limit (symmetric about 0); default the 98th percentile of |difference|.

    Returns
    -------
    str
        ``path``.
    """
    from seisgrid.ghf.maps import plot_south_polar

    frame = result["difference"] if isinstance(result, dict) else result
    if frame.empty:
        raise SeisgridError(f"{path}: no matched points to map")
    lat_max = float(_setting("lat_max", lat_max, -60.0))
    if isinstance(result, dict) and result.get("difference_grid") is not None:
        da = result["difference_grid"]
    else:
        da = difference_grid(frame, res, lat_max)
    if vmax is None:
        vmax = float(np.percentile(np.abs(frame["difference"]), 98)) or 1.0
    if title is None and isinstance(result, dict):
        title = (f"ours − other: n {result['n']}, r {result['correlation']:.2f}, RMS {result['rms_difference']:.1f}, "
                 f"mean {result['mean_difference']:+.1f} mW m⁻²")
    return plot_south_polar(da, path, title=title, cmap="RdBu_r", vmin=-vmax, vmax=vmax, lat_max=lat_max)


def _jsonable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("difference", "difference_grid")}


def _open_our_map(path: str, variable: str):
    kind, _ = _kind(path)
    if kind == "zarr":
        return ghf_grid.open_grid(path, "heat-flow map")
    if kind == "netcdf":
        with ghf_grid.open_netcdf(path, "NetCDF map") as ds:
            try:
                return ds.load()
            except ghf_grid.READ_ERRORS as exc:
                raise InputFileError(path, f"cannot read the NetCDF map ({type(exc).__name__}: {exc}); a damaged "
                                           "file?") from exc
    return read_published_map(path)


def compare(our_map_path: str | os.PathLike[str], other_map_path: str | os.PathLike[str], *,
            out_png: str | None = None, units: str | None = None, lat_max: float | None = None,
            max_distance_km: float | None = None, lat: str | None = None, lon: str | None = None,
            value: str | int | None = None, variable: str = "heatflow") -> dict:
    """``seisgrid ghf compare OURS OTHER``: compare two maps read from files.

    Parameters
    ----------
    our_map_path : str
        Our map: the Zarr store (or NetCDF) of ``seisgrid ghf map``, or any map
        :func:`~seisgrid.ghf.published.read_published_map` reads.
    other_map_path : str
        The other map (points or grid, see :func:`~seisgrid.ghf.published.read_published_map`).
    out_png : str, optional
        Write the difference map here (:func:`plot_difference`).
    units : str, optional
        Units of the other map (``mW/m2`` or ``W/m2``); default: detected.
    lat_max, max_distance_km, variable
        As in :func:`compare_maps`.
    lat, lon, value : str, optional
        Column / variable names of the other map (:func:`~seisgrid.ghf.published.read_published_map`).

    Returns
    -------
    dict
        :func:`compare_maps`'s statistics (JSON-able: no ``difference``) plus ``ours``, ``other`` and ``png``.
    """
    ours = _open_our_map(str(our_map_path), variable)
    other = read_published_map(other_map_path, units=units, lat=lat, lon=lon, value=value)
    result = compare_maps(ours, other, lat_max=lat_max, max_distance_km=max_distance_km, variable=variable)
    if out_png and result["n"]:
        result["png"] = plot_difference(result, out_png, lat_max=lat_max)
    report = _jsonable(result)
    report.update(ours=str(our_map_path), other=str(other_map_path))
    return report



def loesing_ebbing_path() -> str | None:
    """Path of the Lösing & Ebbing (2021) map under ``config.data_dir()``, or None when absent.

    Returns
    -------
    str or None
        ``data_dir()/ghf/loesing_ebbing2021/HF_Min_Max_MaxAbs.csv.gz`` when that file exists, else None.
    """
    root = config.data_dir()
    if root is None:
        return None
    path = pathlib.Path(root).joinpath(*LOESING_EBBING)
    return str(path) if path.exists() else None



def published_map_paths() -> dict[str, str]:
    """The shared published maps present under ``config.data_dir()``: ``{name: path}`` (:data:`PUBLISHED_MAPS`)."""
    root = config.data_dir()
    if root is None:
        return {}
    paths = {name: pathlib.Path(root).joinpath(*parts) for name, parts in PUBLISHED_MAPS.items()}
    return {name: str(path) for name, path in paths.items() if path.exists()}
