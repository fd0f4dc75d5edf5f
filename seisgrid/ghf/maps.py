"""Maps of GHF grid variables (features, gridded heat flow), global and south-polar stereographic.

Coastlines come from data installed with seisgrid, never from a download: cartopy's ``ax.coastlines()`` and
``cartopy.feature`` fetch Natural Earth shapefiles at run time, so they are not used. Instead the 1/120°
GLOBE land/ocean mask shipped by ``global-land-mask`` (:func:`seisgrid.ghf.grid._globe_mask`) is averaged
to a coarser grid (``seisgrid.maps.coast_resolution``, 0.25°) and the 0.5 contour of that land fraction is
traced with ``contourpy`` (matplotlib's contouring library). The polylines are cached in-process and in an
``.npz`` file (``seisgrid.maps.coast_cache``). As in the GLOBE mask, Antarctica's grounded ice counts as land
and its floating ice shelves as ocean, so the Antarctic line is close to the grounding line.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot state, no display)
and written through :mod:`seisgrid.storage`, so the output folder may be a local path or an ``s3://`` URL.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import pathlib
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from seisgrid import config, storage
from seisgrid.errors import ConfigError, SeisgridError, StorageError
from seisgrid.figures import new_figure, save_png

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from matplotlib.colors import Colormap

logger = logging.getLogger("seisgrid")

_CACHE_VERSION = 1  # bump when the tracing changes, so stale .npz files are not read


# ------------------------------------------------------------------------------------------- coastlines


def trace_coastlines(resolution_deg: float) -> list[np.ndarray]:
    """Trace the coastline (0.5 contour of the land fraction) of the GLOBE mask averaged to ``resolution_deg``.

    Parameters
    ----------
    resolution_deg : float
        Cell size in degrees of the land-fraction grid that is contoured; 180 must be a multiple of it and
        it must be a multiple of the mask's 1/120°.

    Returns
    -------
    list of numpy.ndarray
        Polylines, each ``(n, 2)`` of (lon, lat) in degrees, lon in [−180, 180]. Closed rings repeat their
        first vertex. Lines crossing the antimeridian are cut there: one part ends at lon = 180 and the other
        starts at lon = −180 at the same latitude, so no segment spans the map and projections centred on a
        pole (where both ends are one point) see the ring closed.
    """
    import contourpy

    from seisgrid.ghf.grid import land_fraction

    res = float(resolution_deg)
    steps = res * 120.0
    if res <= 0 or not np.isclose(steps, round(steps)) or not np.isclose(180.0 / res, round(180.0 / res)):
        raise ConfigError(f"coastline resolution {res}°: must be a multiple of 1/120° that divides 180° "
                          "(e.g. 0.1, 0.25, 0.5; seisgrid.maps.coast_resolution)")
    frac = land_fraction(res)
    z = frac.values.astype(np.float64)
    # Columns at exactly −180 and 180 hold the mean of the two cells either side of the antimeridian, so
    # contours meet the map edge at the same latitude from both sides instead of stopping half a cell short.
    seam = 0.5 * (z[:, :1] + z[:, -1:])
    z = np.hstack([seam, z, seam])
    lon = np.concatenate([[-180.0], frac.lon.values, [180.0]])
    generator = contourpy.contour_generator(lon, frac.lat.values, z, line_type="Separate")
    lines = [np.asarray(line, dtype=np.float64) for line in generator.lines(0.5) if len(line) >= 2]
    logger.info("coastlines: %d polylines, %d vertices traced at %g°", len(lines),
                sum(len(line) for line in lines), res)
    return lines


def _cache_folder() -> pathlib.Path | None:
    configured = config.get("maps.coast_cache")
    if configured == "":
        return None
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "seisgrid"


def _cache_file(res: float) -> pathlib.Path | None:
    folder = _cache_folder()
    return None if folder is None else folder / f"coastlines-globe-{res:g}deg-v{_CACHE_VERSION}.npz"


def _read_cache(path: pathlib.Path) -> list[np.ndarray] | None:
    try:
        with np.load(path) as data:
            points, offsets = data["points"], data["offsets"]
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("coastlines: ignoring unreadable cache %s (%s)", path, exc)
        return None
    return [points[a:b] for a, b in itertools.pairwise(offsets)]


def _write_cache(path: pathlib.Path, lines: list[np.ndarray]) -> None:
    offsets = np.concatenate([[0], np.cumsum([len(line) for line in lines])]).astype(np.int64)
    points = np.concatenate(lines) if lines else np.empty((0, 2))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(tmp, points=points, offsets=offsets)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home is no reason to fail a map
        logger.warning("coastlines: cannot write cache %s (%s)", path, exc)
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=4)
def _coastlines_cached(res: float) -> tuple[np.ndarray, ...]:
    path = _cache_file(res)
    lines = _read_cache(path) if path is not None and path.exists() else None
    if lines is None:
        lines = trace_coastlines(res)
        if path is not None:
            _write_cache(path, lines)
    for line in lines:
        line.setflags(write=False)
    return tuple(lines)


def coastlines(resolution_deg: float | None = None) -> list[np.ndarray]:
    """Coastline polylines traced from the offline GLOBE land mask (no download), cached.

    Parameters
    ----------
    resolution_deg : float, optional
        Degrees; default ``seisgrid.maps.coast_resolution`` (0.25). See :func:`trace_coastlines`.

    Returns
    -------
    list of numpy.ndarray
        Read-only ``(n, 2)`` arrays of (lon, lat) in degrees, lon in [−180, 180], lat in [−90, 90].
    """
    res = float(config.get("maps.coast_resolution", 0.25) if resolution_deg is None else resolution_deg)
    return list(_coastlines_cached(res))


def _projected_coastlines(projection, lat_limit: float | None = None) -> list[np.ndarray]:
    """Coastlines in ``projection``'s coordinates, optionally only the parts south of ``lat_limit``."""
    import cartopy.crs as ccrs

    lines = coastlines()
    if not lines:
        return []
    sizes = np.array([len(line) for line in lines])
    points = np.concatenate(lines)
    xy = projection.transform_points(ccrs.PlateCarree(), points[:, 0], points[:, 1])[:, :2]
    keep = np.isfinite(xy).all(axis=1)
    if lat_limit is not None:
        keep &= points[:, 1] <= lat_limit
    out: list[np.ndarray] = []
    for part, ok in zip(np.split(xy, np.cumsum(sizes)[:-1]), np.split(keep, np.cumsum(sizes)[:-1]), strict=True):
        # Runs of kept vertices; points near the opposite pole of a polar projection are left out.
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        out.extend(part[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= 2)
    return out


def _draw_coastlines(ax, lat_limit: float | None = None) -> None:
    from matplotlib.collections import LineCollection

    # Already in projection coordinates (the axes' data coordinates): cheaper than letting cartopy project
    # thousands of lines, and the lines never cross the antimeridian, so no cutting is needed.
    segments = _projected_coastlines(ax.projection, lat_limit)
    ax.add_collection(LineCollection(segments, colors="black", linewidths=0.5, zorder=3), autolim=False)


# ------------------------------------------------------------------------------------------- colours


def _label(da: xr.DataArray) -> str:
    name = str(da.attrs.get("long_name") or da.name or "value")
    units = da.attrs.get("units")
    return f"{name} ({units})" if units not in (None, "", "1") else name


def _categories(da: xr.DataArray, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    flags = da.attrs.get("flag_values")
    if flags is None:
        flags = np.unique(values[np.isfinite(values)])
    flags = np.atleast_1d(np.asarray(flags, dtype=float))
    meanings = da.attrs.get("flag_meanings")
    if isinstance(meanings, str):
        meanings = meanings.split()
    if meanings is None or len(meanings) != len(flags):
        if meanings is not None:
            logger.warning("map of %s: %d flag_meanings for %d flag_values; using the values as names",
                           da.name, len(meanings), len(flags))
        meanings = [f"{v:g}" for v in flags]
    order = np.argsort(flags)
    return flags[order], [str(meanings[i]).replace("_", " ") for i in order]


def _style(da: xr.DataArray, values: np.ndarray, cmap, vmin, vmax, categorical: bool) -> dict:
    """Keyword arguments of ``pcolormesh`` and colour-bar settings for ``values``."""
    import matplotlib
    from matplotlib.colors import BoundaryNorm, ListedColormap

    categorical = categorical or "flag_values" in da.attrs
    if categorical:
        flags, names = _categories(da, values)
        if len(flags) == 0:
            flags, names = np.array([0.0]), ["0"]
        base = matplotlib.colormaps[cmap or ("tab10" if len(flags) <= 10 else "tab20")]
        colours = [base(i % base.N) for i in range(len(flags))]
        mids = 0.5 * (flags[1:] + flags[:-1])
        bounds = np.concatenate([[flags[0] - 0.5], mids, [flags[-1] + 0.5]])
        return {"mesh": {"cmap": ListedColormap(colours), "norm": BoundaryNorm(bounds, len(flags))},
                "ticks": flags, "ticklabels": names}
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        logger.warning("map of %s: no finite values", da.name)
        finite = np.array([0.0, 1.0])
    robust = bool(config.get("maps.robust", True))
    low, high = np.percentile(finite, [2, 98]) if robust else (finite.min(), finite.max())
    vmin = float(low) if vmin is None else float(vmin)
    vmax = float(high) if vmax is None else float(vmax)
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmin + 0.5
    return {"mesh": {"cmap": cmap or config.get("maps.cmap", "viridis"), "vmin": vmin, "vmax": vmax},
            "ticks": None, "ticklabels": None}


# ------------------------------------------------------------------------------------------- figures


def _grid_values(da: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(da, xr.DataArray):
        raise SeisgridError(f"map: expected an xarray.DataArray, got {type(da).__name__}")
    if set(da.dims) != {"lat", "lon"}:
        raise SeisgridError(f"map of {da.name}: dims {da.dims}, expected (lat, lon) "
                            "(select other dimensions first, e.g. da.isel(sample=0))")
    da = da.transpose("lat", "lon")
    return np.asarray(da["lon"], float), np.asarray(da["lat"], float), np.asarray(da.values, dtype=float)


def _save(fig, path, dpi: int | None) -> str:
    logger.debug("map written: %s", path)
    return save_png(fig, path, dpi, pad_inches=0.1)


def _colorbar(fig, mesh, ax, style, da, orientation):
    bar = fig.colorbar(mesh, ax=ax, orientation=orientation, shrink=0.7, pad=0.05)
    bar.set_label(_label(da))
    if style["ticks"] is not None:
        bar.set_ticks(style["ticks"], labels=style["ticklabels"])
        if orientation == "horizontal" and len(style["ticks"]) > 4:
            bar.ax.tick_params(axis="x", labelrotation=30)
    return bar


def _global_projection(name: str | None):
    import cartopy.crs as ccrs

    name = str(name or config.get("maps.projection", "robinson")).lower()
    projections = {"robinson": ccrs.Robinson, "platecarree": ccrs.PlateCarree}
    if name not in projections:
        raise ConfigError(f"map projection {name!r}: expected one of {', '.join(projections)} "
                          "(seisgrid.maps.projection)")
    return projections[name]()


def plot_global(da: xr.DataArray, path: str | os.PathLike[str], title: str | None = None,
                cmap: str | Colormap | None = None, vmin: float | None = None, vmax: float | None = None,
                categorical: bool = False, projection: str | None = None, dpi: int | None = None) -> str:
    """Global map of a ``(lat, lon)`` grid variable with offline coastlines, written as PNG.

    Parameters
    ----------
    da : xarray.DataArray
        Values on a regular (lat, lon) grid of cell centres, degrees; NaN cells are left blank.
    path : str
        PNG to write (local path or URL).
    title : str, optional
        Default: the ``long_name`` attribute or the variable name.
    cmap : str or matplotlib colormap, optional
        Default ``seisgrid.maps.cmap`` (continuous) or ``tab10``/``tab20`` (categorical).
    vmin, vmax : float, optional
        Colour limits in the variable's units; default the 2nd/98th percentiles (``seisgrid.maps.robust``)
        or the extremes.
    categorical : bool
        Discrete colours with one colour-bar entry per class. Implied by a ``flag_values`` attribute
        (names from ``flag_meanings``).
    projection : str, optional
        ``robinson`` or ``platecarree``; default ``seisgrid.maps.projection``.
    dpi : int, optional
        Default ``seisgrid.maps.dpi``.

    Returns
    -------
    str
        ``path``.
    """
    import cartopy.crs as ccrs

    lon, lat, values = _grid_values(da)
    style = _style(da, values, cmap, vmin, vmax, categorical)
    fig = new_figure((10.0, 6.0))
    ax = fig.add_subplot(projection=_global_projection(projection))
    mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(values), transform=ccrs.PlateCarree(),
                         shading="nearest", **style["mesh"])
    _draw_coastlines(ax)
    ax.set_global()
    ax.gridlines(linewidth=0.3, color="gray", alpha=0.5)
    ax.set_title(title if title is not None else str(da.attrs.get("long_name") or da.name or ""))
    _colorbar(fig, mesh, ax, style, da, "horizontal")
    return _save(fig, path, dpi)


def plot_south_polar(da: xr.DataArray, path: str | os.PathLike[str], title: str | None = None,
                     cmap: str | Colormap | None = None, vmin: float | None = None, vmax: float | None = None,
                     categorical: bool = False, lat_max: float | None = None, dpi: int | None = None,
                     shade: xr.DataArray | None = None, shade_label: str = "") -> str:
    """South-polar stereographic map (Antarctica) of a ``(lat, lon)`` grid variable, written as PNG.

    Parameters
    ----------
    da : xarray.DataArray
        Values on a regular (lat, lon) grid of cell centres, degrees; NaN cells are left blank.
    path : str
        PNG to write (local path or URL).
    lat_max : float, optional
        Northern edge of the (circular) map, degrees; default ``seisgrid.maps.polar_lat_max`` (−60).
        Colour limits (when not given) come from the values south of it.
    title, cmap, vmin, vmax, categorical, dpi
        As in :func:`plot_global`.
    shade : xarray.DataArray, optional
        Cells (same grid as ``da``) where this is true or 1 are greyed out, e.g. outside the area of
        applicability; ``shade_label`` is written under the map.

    Returns
    -------
    str
        ``path``.
    """
    import cartopy.crs as ccrs
    import matplotlib.path as mpath
    from matplotlib.colors import ListedColormap

    lat_max = float(config.get("maps.polar_lat_max", -60.0) if lat_max is None else lat_max)
    if not -90.0 < lat_max < 0.0:
        raise ConfigError(f"south-polar map edge {lat_max}°: must lie between −90 and 0 "
                          "(seisgrid.maps.polar_lat_max)")
    lon, lat, values = _grid_values(da)
    step = float(np.abs(np.diff(lat)).max()) if lat.size > 1 else 0.0
    rows = lat <= lat_max + step  # one row beyond the edge so the mesh reaches it
    if not rows.any():
        raise SeisgridError(f"map of {da.name}: no grid rows south of {lat_max}°")
    lat, values = lat[rows], values[rows]
    style = _style(da, values, cmap, vmin, vmax, categorical)
    fig = new_figure((7.0, 7.6))
    ax = fig.add_subplot(projection=ccrs.SouthPolarStereo())
    ax.set_extent([-180.0, 180.0, -90.0, lat_max], crs=ccrs.PlateCarree())
    theta = np.linspace(0.0, 2.0 * np.pi, 256)
    ax.set_boundary(mpath.Path(np.column_stack([np.sin(theta), np.cos(theta)]) * 0.5 + 0.5),
                    transform=ax.transAxes)
    mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(values), transform=ccrs.PlateCarree(),
                         shading="nearest", **style["mesh"])
    if shade is not None:
        _, _, shaded = _grid_values(shade.astype(np.float32))
        shaded = np.where(np.asarray(shaded[rows], dtype=float) > 0.5, 1.0, np.nan)
        ax.pcolormesh(lon, lat, np.ma.masked_invalid(shaded), transform=ccrs.PlateCarree(), shading="nearest",
                      cmap=ListedColormap(["0.55"]), alpha=0.6, vmin=0.0, vmax=1.0)
        if shade_label:
            ax.text(0.5, -0.02, shade_label, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    _draw_coastlines(ax, lat_limit=lat_max + 5.0)
    ax.gridlines(linewidth=0.3, color="gray", alpha=0.5)
    ax.set_title(title if title is not None else str(da.attrs.get("long_name") or da.name or ""))
    _colorbar(fig, mesh, ax, style, da, "horizontal")
    return _save(fig, path, dpi)


def map_variables(ds: xr.Dataset) -> list[str]:
    """Data variables of ``ds`` that can be mapped: numeric or boolean, on the ``(lat, lon)`` grid."""
    return [str(n) for n, da in ds.data_vars.items() if set(da.dims) == {"lat", "lon"} and da.dtype.kind in "biuf"]


def plot_dataset(ds: xr.Dataset, folder: str | os.PathLike[str], variables: Iterable[str] | None = None,
                 polar: bool = True, dpi: int | None = None) -> list[str]:
    """One global and (``polar``) one south-polar PNG per variable of a GHF grid dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Feature grid and/or gridded heat flow on the ``(lat, lon)`` grid.
    folder : str
        Output folder (local path or URL); files are ``NAME_global.png`` and ``NAME_south_polar.png``.
    variables : list of str, optional
        Default :func:`map_variables` (every numeric grid variable).
    polar : bool
        Also draw the south-polar maps.
    dpi : int, optional
        Default ``seisgrid.maps.dpi``.

    Returns
    -------
    list of str
        Paths written, in variable order (global before polar).
    """
    names = map_variables(ds) if variables is None else [str(v) for v in variables]
    unknown = [n for n in names if n not in ds]
    if unknown:
        raise SeisgridError(f"maps: variable(s) {', '.join(unknown)} not in the dataset "
                            f"(it has {', '.join(map(str, ds.data_vars)) or 'none'})")
    paths = []
    for name in names:
        da = ds[name]
        if da.dtype.kind == "b":
            da = da.astype(np.float32)
        paths.append(plot_global(da, storage.join(str(folder), f"{name}_global.png"), dpi=dpi))
        if polar:
            paths.append(plot_south_polar(da, storage.join(str(folder), f"{name}_south_polar.png"), dpi=dpi))
        logger.info("maps: %s done", name)
    return paths


def plot_stores(stores: Sequence[str | os.PathLike[str]], folder: str | os.PathLike[str],
                variables: Sequence[str] | None = None, polar: bool = True, dpi: int | None = None) -> list[str]:
    """Maps of every variable of one or more grid stores (``seisgrid ghf maps``).

    Parameters
    ----------
    stores : list of str
        Zarr grid stores (``seisgrid ghf features`` / ``heatflow``), local paths or URLs.
    folder : str
        Output folder (local path or URL) for ``NAME_global.png`` and ``NAME_south_polar.png``.
    variables : list of str, optional
        Only these variables (each must exist in one of the stores); default: every map variable.
    polar, dpi
        As in :func:`plot_dataset`; the other ``seisgrid.maps`` settings (projection, colours) come
        from the configuration.

    Returns
    -------
    list of str
        The PNG paths written.

    Raises
    ------
    SeisgridError
        A store that cannot be read (named with the reason; the maps of the other stores are written first),
        or a variable in none of the stores.
    """
    report = plot_stores_report(stores, folder, variables, polar=polar, dpi=dpi)
    if report["rejected"]:
        raise StorageError("; ".join(f"{r['store']}: {r['reason']}" for r in report["rejected"]))
    return report["figures"]


def plot_stores_report(stores: Sequence[str | os.PathLike[str]], folder: str | os.PathLike[str],
                       variables: Sequence[str] | None = None, polar: bool = True, dpi: int | None = None) -> dict:
    """:func:`plot_stores` that goes on past a store it cannot read: the others are still mapped.

    Returns
    -------
    dict
        ``figures``: the PNG paths written; ``rejected``: ``{"store", "reason"}`` of each store that cannot be
        read (missing, not a grid store, a damaged variable), in the order given.

    Raises
    ------
    ConfigError
        A variable asked for is in none of the stores read (and no store was rejected).
    """
    from seisgrid.ghf.grid import open_grid

    wanted = list(variables) if variables else None
    paths: list[str] = []
    found: set[str] = set()
    rejected = []
    for url in stores:
        try:
            ds = open_grid(url, "grid")
        except SeisgridError as exc:
            logger.warning("ghf maps: %s left out: %s", url, exc)
            rejected.append({"store": str(url), "reason": str(exc).removeprefix(f"{url}: ")})
            continue
        names = map_variables(ds) if wanted is None else [v for v in wanted if v in ds.data_vars]
        found.update(names)
        if names:
            paths += plot_dataset(ds, folder, variables=names, polar=polar, dpi=dpi)
    missing = sorted(set(wanted or ()) - found)
    if missing and not rejected:
        raise ConfigError(f"variables {', '.join(missing)} are in none of {', '.join(map(str, stores))}")
    return {"figures": paths, "rejected": rejected}
