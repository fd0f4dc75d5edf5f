"""The Antarctic heat-flow map: ensemble predictions with uncertainties, outputs, summary, comparison with published maps.

``seisgrid ghf map`` (:func:`build_map`) predicts every 0.5° cell south of 60° S on land or grounded ice with
the cross-validation ensemble (:mod:`seisgrid.ghf.crossval`) and writes

* a Zarr store (opens with :func:`xarray.open_zarr`) and a NetCDF file beside it: ``heatflow`` (ensemble
  mean) and the uncertainties as **standard deviations** in mW m⁻² — ``aleatoric_sd``, ``epistemic_sd``,
  ``within_sd`` (√(aleatoric + epistemic), averaged over models as variances), ``between_sd`` (spread of the
  models' means) and ``total_sd`` = √(within variance + between variance);
* a multi-band GeoTIFF in EPSG:3031 (Antarctic Polar Stereographic), one band per variable. Polar
  stereographic is the CRS of the published Antarctic grids (BedMachine, Martos 2017, Shen 2020, Quantarctica)
  so the file drops into the same GIS projects, and it has no singular pole: a lat/lon raster (EPSG:4326)
  would stretch the 0.5° cells near the pole into slivers across the whole width of the image. Each pixel
  takes the value of the 0.5° cell holding its centre (nearest cell, no interpolation, so values stay the
  model's);
* south-polar PNG maps of each variable (:func:`seisgrid.ghf.maps.plot_south_polar`, offline coastlines).

:func:`compare` (``seisgrid ghf compare``) compares any two maps given as points (CSV/text) or grids
(NetCDF/Zarr with 1-D or 2-D lat/lon, GeoTIFF in any CRS): each point of the other map is matched to our
nearest cell on the sphere; statistics are of ours − other at the matched points.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import posixpath
import re
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from seisgrid import config, storage
from seisgrid.errors import ConfigError, InputFileError, SeisgridError
from seisgrid.ghf import grid as ghf_grid

logger = logging.getLogger("seisgrid")

UNITS = "mW m-2"
VARIANCE_UNITS = "mW2 m-4"

#: The study's Antarctic figures (Liu et al. 2026, The Cryosphere 20, 1543), for reports beside ours.
REFERENCE = {
    "source": "Liu et al. (2026), The Cryosphere 20, 1543: PSO-optimised Bayesian DNN, 5-fold ensemble",
    "min": 20.0,
    "max": 110.0,
    "mean": 65.6,
    "uncertainty_range": [0.0, 60.0],
    "median_aleatoric_variance": 650.0,
    "median_epistemic_variance": 70.0,
    "correlation_mean_uncertainty": 0.47,
}

#: Map variables (all in mW m⁻²) with their long names, in output (and GeoTIFF band) order.
MAP_VARIABLES = {
    "heatflow": "geothermal heat flow, ensemble mean",
    "total_sd": "total uncertainty (within- and between-model in quadrature), standard deviation",
    "aleatoric_sd": "aleatoric uncertainty (data noise, mean over models of the predicted variance), standard deviation",
    "epistemic_sd": "epistemic uncertainty (variance over Monte Carlo samples of the Bayesian output layer, "
                    "mean over models), standard deviation",
    "within_sd": "within-model uncertainty (aleatoric + epistemic variance), standard deviation",
    "between_sd": "between-model uncertainty (variance of the fold models' means), standard deviation",
}

LOESING_EBBING = ("ghf", "loesing_ebbing2021", "HF_Min_Max_MaxAbs.csv.gz")

_TEXT_SUFFIXES = {".csv", ".txt", ".xyz", ".dat", ".tsv", ".asc", ".xy", ".lst"}
_NETCDF_SUFFIXES = {".nc", ".nc4", ".netcdf", ".cdf", ".grd", ".h5", ".hdf5"}
_TIFF_SUFFIXES = {".tif", ".tiff", ".gtiff"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst"}

_LON_NAMES = ("lon", "longitude", "long", "lng", "lons", "nav_lon", "x")
_LAT_NAMES = ("lat", "latitude", "lats", "nav_lat", "y")
_VALUE_NAMES = ("hf", "ghf", "heatflow", "heat_flow", "heatflux", "heat_flux", "geothermal_heat_flow",
                "geothermal_heat_flux", "q", "qs", "q0", "hfd", "value", "values", "z", "band1", "band_1")


def _setting(name: str, value, default):
    return config.get(f"ghf_map.{name}", default, override=value)


# ------------------------------------------------------------------------------------------ prediction


def _open_features(features_store) -> xr.Dataset:
    if isinstance(features_store, xr.Dataset):
        return features_store
    return ghf_grid.open_grid(features_store, "feature grid")


def predict_map(models, features_store, feature_names, *, lat_max: float | None = None, samples: int | None = None,
                min_land_fraction: float | None = None, ensemble_predict=None) -> xr.Dataset:
    """Predict heat flow and its uncertainties on every land / grounded-ice grid cell south of ``lat_max``.

    Parameters
    ----------
    models : sequence
        Fitted models (the cross-validation ensemble); see
        :func:`seisgrid.ghf.crossval.ensemble_predict` for the contract.
    features_store : str or xarray.Dataset
        Feature grid (``seisgrid ghf features``): store path/URL or the Dataset.
    feature_names : list of str
        Features in the models' column order.
    lat_max : float, optional
        Northern limit, degrees; default ``seisgrid.ghf_map.lat_max`` (−60).
    samples : int, optional
        Monte Carlo samples per model; default ``seisgrid.ghf_map.samples`` (50).
    min_land_fraction : float, optional
        Cells need this share of land in the GLOBE mask (its ``land_fraction`` variable; when the feature
        grid lacks it, the cell centre must be on land); default ``seisgrid.ghf_map.min_land_fraction``.
    ensemble_predict : callable, optional
        ``f(models, X, samples=...) -> dict`` with ``mean`` and the variances ``aleatoric``, ``epistemic``,
        ``between`` (and optionally ``within``); default :func:`seisgrid.ghf.crossval.ensemble_predict`.

    Returns
    -------
    xarray.Dataset
        On the grid rows with lat ≤ ``lat_max`` (all longitudes), NaN off land and where a feature is
        missing: ``heatflow`` (mean) and ``aleatoric_sd``, ``epistemic_sd``, ``within_sd``, ``between_sd``,
        ``total_sd`` — standard deviations in mW m⁻², ``total_sd = sqrt(within_var + between_var)``.
    """
    from seisgrid.ghf.dataset import prediction_table

    lat_max = float(_setting("lat_max", lat_max, -60.0))
    samples = int(_setting("samples", samples, 50))
    min_land_fraction = float(_setting("min_land_fraction", min_land_fraction, 0.5))
    names = [str(n) for n in feature_names]
    features = _open_features(features_store)
    if "land_fraction" not in features:
        logger.warning("feature grid has no land_fraction: keeping cells whose centre is on land (GLOBE mask)")
        lat2, lon2 = np.meshgrid(features["lat"].values, features["lon"].values, indexing="ij")
        land = ghf_grid.is_land(lat2, lon2).astype(np.float32)
        features = features.assign(land_fraction=(("lat", "lon"), land))
    table, lat, lon = prediction_table(features, names, lat_max=lat_max, min_land_fraction=min_land_fraction)
    region = features.sel(lat=slice(None, lat_max))
    if not len(table):
        raise SeisgridError(f"no cell south of {lat_max}° has land (≥ {min_land_fraction}) and every feature of "
                            f"{', '.join(names)}; check the feature grid")
    if ensemble_predict is None:  # imported here: crossval needs torch, map comparison does not
        from seisgrid.ghf.crossval import ensemble_predict
    combine = ensemble_predict
    t0 = time.perf_counter()
    pred = combine(models, table.to_numpy(dtype=float), samples=samples)
    logger.info("predicted %d cells with %d models × %d samples in %.1f s", len(table), len(models), samples,
                time.perf_counter() - t0)
    n = len(table)

    def column(key, fallback=None):
        value = pred.get(key, fallback) if fallback is not None else pred.get(key)
        if value is None:
            raise SeisgridError(f"ensemble prediction lacks {key!r} (has {', '.join(pred)})")
        value = np.asarray(value, dtype=float).reshape(-1)
        if value.shape != (n,):
            raise SeisgridError(f"ensemble prediction {key!r} has {value.size} values for {n} cells")
        return value

    mean = column("mean")
    aleatoric = np.clip(column("aleatoric"), 0.0, None)
    epistemic = np.clip(column("epistemic"), 0.0, None)
    within = np.clip(column("within", aleatoric + epistemic), 0.0, None)
    between = np.clip(column("between"), 0.0, None)
    values = {"heatflow": mean, "total_sd": np.sqrt(within + between), "aleatoric_sd": np.sqrt(aleatoric),
              "epistemic_sd": np.sqrt(epistemic), "within_sd": np.sqrt(within), "between_sd": np.sqrt(between)}

    glat, glon = region["lat"].values, region["lon"].values
    rows, cols = np.searchsorted(glat, lat), np.searchsorted(glon, lon)
    ds = xr.Dataset(coords={"lat": ("lat", glat, dict(region["lat"].attrs)),
                            "lon": ("lon", glon, dict(region["lon"].attrs))})
    ds["lat"].attrs.setdefault("units", "degrees_north")
    ds["lon"].attrs.setdefault("units", "degrees_east")
    for name, long_name in MAP_VARIABLES.items():
        field = np.full((glat.size, glon.size), np.nan)
        field[rows, cols] = values[name]
        attrs = {"units": UNITS, "long_name": long_name}
        if name == "heatflow":
            attrs["standard_name"] = "upward_geothermal_heat_flux_at_ground_level"
        else:
            attrs["description"] = "standard deviation; square it for the variance in mW2 m-4"
        ds[name] = (("lat", "lon"), field, attrs)
    ds.attrs.update(
        title="Antarctic geothermal heat flow with uncertainties",
        Conventions="CF-1.8",
        source="seisgrid ghf map: ensemble of Bayesian neural networks (deterministic hidden layers, "
               "Bayesian output layer) from k-fold cross-validation",
        method="mean = mean of the models' means; aleatoric and epistemic = means over models of each model's "
               "predicted variance and of the variance over its Monte Carlo samples; within = aleatoric + epistemic; "
               "between = variance of the models' means; total = within + between (in quadrature)",
        uncertainty="all *_sd variables are standard deviations in mW m-2 (square roots of the variances)",
        models=len(models),
        samples=samples,
        features=",".join(names),
        lat_max=lat_max,
        min_land_fraction=min_land_fraction,
        n_cells=int(n),
        grid_resolution_deg=float(glat[1] - glat[0]) if glat.size > 1 else float(ghf_grid.resolution()),
    )
    return ds


# ------------------------------------------------------------------------------------------ outputs


def _parent(url: str) -> str:
    url = str(url).rstrip("/")
    return str(pathlib.Path(url).parent) if storage.is_local(url) else posixpath.dirname(url)


def _stem(url: str) -> str:
    name = posixpath.basename(str(url).rstrip("/"))
    for suffix in (".zarr", ".nc", ".csv.gz", ".gz", ".csv", ".txt", ".tif", ".tiff"):
        name = name.removesuffix(suffix)
    return name or "map"


def polar_stereo_raster(ds: xr.Dataset, variables=None, resolution_km: float | None = None,
                        lat_max: float | None = None):
    """Resample the map's (lat, lon) cells onto a regular EPSG:3031 raster by nearest cell.

    Parameters
    ----------
    ds : xarray.Dataset
        Map on a regular (lat, lon) grid of cell centres (ascending).
    variables : list of str, optional
        Default: the :data:`MAP_VARIABLES` present in ``ds``.
    resolution_km : float, optional
        Pixel size, km; default ``seisgrid.ghf_map.geotiff_resolution_km`` (10).
    lat_max : float, optional
        The raster is the square around the circle of this latitude; pixels north of it are NaN. Default:
        the dataset's ``lat_max`` attribute, else its northern edge.

    Returns
    -------
    bands : numpy.ndarray
        ``(len(variables), n, n)`` float32, row 0 at the top (largest y).
    transform : affine.Affine
        Pixel-corner transform, metres.
    variables : list of str
    """
    from affine import Affine
    from pyproj import Transformer

    names = [v for v in MAP_VARIABLES if v in ds] if variables is None else list(variables)
    res_m = float(_setting("geotiff_resolution_km", resolution_km, 10.0)) * 1000.0
    if res_m <= 0:
        raise ConfigError(f"GeoTIFF resolution {res_m / 1000} km: must be positive (seisgrid.ghf_map.geotiff_resolution_km)")
    lat = np.asarray(ds["lat"].values, float)
    lon = np.asarray(ds["lon"].values, float)
    step = float(lat[1] - lat[0]) if lat.size > 1 else float(ghf_grid.resolution())
    edge = float(ds.attrs.get("lat_max", lat.max() + step / 2)) if lat_max is None else float(lat_max)
    to_ps = Transformer.from_crs("EPSG:4326", "EPSG:3031", always_xy=True)
    x_edge, y_edge = to_ps.transform(0.0, edge)
    half = int(np.ceil(np.hypot(x_edge, y_edge) / res_m))
    centres = (np.arange(2 * half) + 0.5) * res_m - half * res_m
    x, y = np.meshgrid(centres, centres[::-1])
    plon, plat = Transformer.from_crs("EPSG:3031", "EPSG:4326", always_xy=True).transform(x, y)
    i = np.floor((plat - (lat[0] - step / 2)) / step).astype(np.int64)
    lon_step = float(lon[1] - lon[0]) if lon.size > 1 else 360.0
    j = np.floor((ghf_grid.wrap_longitude(plon) - (lon[0] - lon_step / 2)) / lon_step).astype(np.int64) % lon.size
    inside = (i >= 0) & (i < lat.size) & (plat <= edge)
    i = np.clip(i, 0, lat.size - 1)
    bands = np.full((len(names), x.shape[0], x.shape[1]), np.nan, np.float32)
    for k, name in enumerate(names):
        values = ds[name].transpose("lat", "lon").values
        bands[k][inside] = values[i[inside], j[inside]]
    return bands, Affine(res_m, 0.0, -half * res_m, 0.0, -res_m, half * res_m), names


def write_geotiff(ds: xr.Dataset, path, *, variables=None, resolution_km: float | None = None,
                  lat_max: float | None = None) -> str:
    """Write the map as a multi-band float32 GeoTIFF in EPSG:3031, one named band per variable.

    Parameters
    ----------
    ds : xarray.Dataset
        Map from :func:`predict_map`.
    path : str
        GeoTIFF to write (local path or URL).
    variables, resolution_km, lat_max
        As in :func:`polar_stereo_raster`.

    Returns
    -------
    str
        ``path``.
    """
    try:
        from rasterio.io import MemoryFile
    except ImportError as exc:
        raise SeisgridError(f"{path}: writing a GeoTIFF needs rasterio (pip install rasterio)") from exc
    bands, transform, names = polar_stereo_raster(ds, variables, resolution_km, lat_max)
    profile = {"driver": "GTiff", "height": bands.shape[1], "width": bands.shape[2], "count": len(names),
               "dtype": "float32", "crs": "EPSG:3031", "transform": transform, "nodata": np.nan,
               "compress": "deflate", "predictor": 3, "tiled": True, "blockxsize": 256, "blockysize": 256}
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(bands)
            for k, name in enumerate(names, start=1):
                dst.set_band_description(k, name)
                dst.update_tags(k, units=str(ds[name].attrs.get("units", UNITS)),
                                long_name=str(ds[name].attrs.get("long_name", name)))
            dst.units = tuple(str(ds[n].attrs.get("units", UNITS)) for n in names)
            dst.update_tags(**{k: str(ds.attrs[k]) for k in ("title", "source", "method", "uncertainty", "models",
                                                             "samples") if k in ds.attrs},
                            resampling="nearest 0.5-degree cell")
        data = bytes(memory.getbuffer())
    storage.write_bytes(str(path), data)
    logger.info("GeoTIFF written: %s (%d bands, %d × %d pixels)", path, len(names), bands.shape[2], bands.shape[1])
    return str(path)


def write_netcdf(ds: xr.Dataset, path) -> str:
    """Write the map as compressed NetCDF-4 (local path or URL, via a temporary local file)."""
    encoding = {name: {"zlib": True, "complevel": 4, "_FillValue": np.nan} for name in ds.data_vars}
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "map.nc")
        _clean(ds).to_netcdf(local, engine="netcdf4", encoding=encoding)
        with open(local, "rb") as f:
            storage.write_bytes(str(path), f.read())
    logger.info("NetCDF written: %s", path)
    return str(path)


def _clean(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    for name in ds.variables:
        ds[name].encoding = {}
    return ds


def write_map(ds: xr.Dataset, out, *, netcdf: bool = True, geotiff: bool = True, png_folder=None,
              geotiff_resolution_km: float | None = None, lat_max: float | None = None) -> dict:
    """Write the map: Zarr store, and beside it NetCDF, GeoTIFF (EPSG:3031) and south-polar PNGs.

    Parameters
    ----------
    ds : xarray.Dataset
        Map from :func:`predict_map`.
    out : str
        Zarr store (local path or URL); the NetCDF is ``STEM.nc`` and the GeoTIFF ``STEM_epsg3031.tif`` in
        the same folder (``STEM``: the store's name without ``.zarr``).
    netcdf, geotiff : bool
        Also write these. The GeoTIFF needs rasterio; without it a warning is logged and it is skipped.
    png_folder : str, optional
        Folder for ``STEM_VARIABLE.png`` south-polar maps of every variable; None: no PNGs.
    geotiff_resolution_km : float, optional
        Pixel size of the GeoTIFF; default ``seisgrid.ghf_map.geotiff_resolution_km``.
    lat_max : float, optional
        Northern edge of the GeoTIFF and the PNG maps; default the dataset's ``lat_max`` attribute.

    Returns
    -------
    dict of str
        ``zarr``, ``netcdf``, ``geotiff`` and ``png_VARIABLE`` → path written.
    """
    import zarr

    out = str(out).rstrip("/")
    folder, stem = _parent(out), _stem(out)
    paths = {"zarr": out}
    clean = _clean(ds)
    encoding = {name: {"chunks": clean[name].shape} for name in clean.data_vars}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=zarr.errors.ZarrUserWarning)
        clean.to_zarr(storage.zarr_store(out), mode="w", zarr_format=3, consolidated=True, encoding=encoding)
    logger.info("map written to %s", out)
    if netcdf:
        paths["netcdf"] = write_netcdf(ds, storage.join(folder, f"{stem}.nc"))
    if geotiff:
        try:
            import rasterio  # noqa: F401
        except ImportError:
            logger.warning("rasterio is not installed: no GeoTIFF written (pip install rasterio)")
        else:
            paths["geotiff"] = write_geotiff(ds, storage.join(folder, f"{stem}_epsg3031.tif"),
                                             resolution_km=geotiff_resolution_km, lat_max=lat_max)
    if png_folder is not None:
        from seisgrid.ghf.maps import plot_south_polar

        edge = float(ds.attrs.get("lat_max", -60.0)) if lat_max is None else float(lat_max)
        for name in (v for v in MAP_VARIABLES if v in ds):
            title = f"{name}: {ds[name].attrs.get('long_name', name)}"
            cmap = "inferno" if name == "heatflow" else None
            paths[f"png_{name}"] = plot_south_polar(ds[name], storage.join(str(png_folder), f"{stem}_{name}.png"),
                                                    title=_wrap(title), cmap=cmap, lat_max=edge)
    return paths


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ------------------------------------------------------------------------------------------ summary


def _pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def summary(ds: xr.Dataset) -> dict:
    """Summary statistics of a map, beside the study's (:data:`REFERENCE`).

    ``mean`` and ``uncertainty_mean`` are **area-weighted** (weights cos(lat), the relative area of a
    regular lat/lon cell), because 0.5° cells shrink towards the pole and a plain cell mean would let the
    high plateau around the pole count several times over; ``mean_unweighted`` and
    ``uncertainty_mean_unweighted`` are the plain cell means. Medians and the correlation are plain over cells.

    Parameters
    ----------
    ds : xarray.Dataset
        Map from :func:`predict_map` (``heatflow`` and ``total_sd``; the other ``*_sd`` when present).

    Returns
    -------
    dict
        ``n_cells``, ``min``, ``max``, ``mean``, ``mean_unweighted``, ``median``, ``sd`` (plain),
        ``uncertainty_mean``, ``uncertainty_mean_unweighted``, ``uncertainty_min``, ``uncertainty_max``,
        ``median_aleatoric_variance``, ``median_epistemic_variance``, ``median_between_variance`` (mW² m⁻⁴),
        ``correlation_mean_uncertainty`` (Pearson r of heatflow and total_sd), ``weighting``, ``reference``.
    """
    if "heatflow" not in ds:
        raise SeisgridError(f"map summary: no heatflow variable (has {', '.join(map(str, ds.data_vars))})")
    hf = ds["heatflow"].transpose("lat", "lon").values.astype(float)
    weights = np.broadcast_to(np.cos(np.radians(ds["lat"].values.astype(float)))[:, None], hf.shape)
    ok = np.isfinite(hf)
    if not ok.any():
        raise SeisgridError("map summary: the map has no finite heat-flow value")
    w = weights[ok]
    values = hf[ok]

    def field(name):
        return ds[name].transpose("lat", "lon").values.astype(float)[ok] if name in ds else None

    total = field("total_sd")
    out = {
        "n_cells": int(ok.sum()),
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(np.sum(w * values) / np.sum(w)),
        "mean_unweighted": float(values.mean()),
        "median": float(np.median(values)),
        "sd": float(values.std()),
    }
    if total is not None:
        good = np.isfinite(total)
        out.update(uncertainty_mean=float(np.sum(w[good] * total[good]) / np.sum(w[good])),
                   uncertainty_mean_unweighted=float(total[good].mean()),
                   uncertainty_min=float(total[good].min()), uncertainty_max=float(total[good].max()),
                   correlation_mean_uncertainty=_pearson(values[good], total[good]))
    for key, name in (("median_aleatoric_variance", "aleatoric_sd"), ("median_epistemic_variance", "epistemic_sd"),
                      ("median_between_variance", "between_sd")):
        sd = field(name)
        if sd is not None:
            out[key] = float(np.nanmedian(sd ** 2))
    out["weighting"] = ("mean, uncertainty_mean: area-weighted (cos lat); *_unweighted: plain cell means; "
                        "median, sd, correlation: plain over cells")
    out["reference"] = dict(REFERENCE)
    return out


# ------------------------------------------------------------------------------------------ reading maps


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
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc})") from exc
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
            if np.nanmax(np.abs(pd.to_numeric(frame[col], errors="coerce"))) > limit:
                raise InputFileError(path, f"column {col} looks projected, not {what} in degrees; give lat=/lon=")
    numbers = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(float) for c in (lon_col, lat_col, value_col)}
    return _points(numbers[lat_col], numbers[lon_col], numbers[value_col], path, units, split[value_col][1],
                   f"column name {value_col!r}: units", "text", value_col)


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
    names = {"lat": ("lat", "latitude", "lats", "nav_lat"), "lon": ("lon", "longitude", "long", "lons", "nav_lon")}[kind]
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


def dataset_points(ds: xr.Dataset, path="dataset", *, units=None, lat=None, lon=None, value=None,
                   fmt: str = "grid") -> pd.DataFrame:
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


def read_published_map(path, *, units=None, lat=None, lon=None, value=None) -> pd.DataFrame:
    """A heat-flow map as points: text tables, NetCDF/Zarr grids (any projection with lat/lon) or GeoTIFF.

    Parameters
    ----------
    path : str
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
    if kind == "text":
        return _read_text(path, units, lat, lon, value)
    if kind == "geotiff":
        return _read_geotiff(path, units, value)
    if kind == "netcdf":
        if not storage.is_local(path):
            raise InputFileError(path, "NetCDF maps are read from local files only; copy it here first")
        if not os.path.exists(path):
            raise InputFileError(path, "no such file")
        try:
            ds = xr.open_dataset(path)
        except (OSError, ValueError) as exc:
            raise InputFileError(path, f"cannot open as NetCDF ({exc})") from exc
        with ds:
            return dataset_points(ds, path, units=units, lat=lat, lon=lon, value=value, fmt="netcdf")
    try:
        ds = ghf_grid.open_grid(path, "map")
    except SeisgridError as exc:
        raise InputFileError(path, f"cannot open as a Zarr grid ({exc})") from exc
    return dataset_points(ds, path, units=units, lat=lat, lon=lon, value=value, fmt="zarr")


# ------------------------------------------------------------------------------------------ comparison


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


def default_max_distance_km(cell_deg: float | None = None) -> float:
    """0.75 × the grid's cell size at the equator, km (41.7 km for 0.5°).

    The largest half-diagonal of a 0.5° cell (at the equator, 0.707 × 55.6 km = 39.3 km; smaller towards the
    poles) is below this, so a point inside one of our cells always matches it, while points in cells we did
    not predict (ocean, ice shelves) match only when a predicted cell centre is about as close as that.
    """
    cell = float(ghf_grid.resolution() if cell_deg is None else cell_deg)
    return 0.75 * np.radians(cell) * ghf_grid.EARTH_RADIUS_KM


def compare_maps(ours, other, *, lat_max: float | None = None, max_distance_km: float | None = None,
                 variable: str = "heatflow") -> dict:
    """Compare our map with another at the other map's points (nearest of our cells on the sphere).

    Parameters
    ----------
    ours : xarray.Dataset or pandas.DataFrame
        Our map (grid with ``variable`` on (lat, lon); cells with finite values are used) or points
        (``lat``, ``lon``, ``value``).
    other : pandas.DataFrame or xarray.Dataset
        The other map: points from :func:`read_published_map` or a grid (see :func:`dataset_points`).
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
        mW m⁻², points weighted equally), ``max_distance_km``, ``median_distance_km``, ``lat_max``,
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
    if mine.empty:
        raise SeisgridError(f"map comparison: our map has no finite value south of {lat_max}°")
    if theirs.empty:
        raise SeisgridError(f"map comparison: the other map ({other.attrs.get('source', 'points') if isinstance(other, pd.DataFrame) else 'grid'}) "
                            f"has no point south of {lat_max}°")
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
        "n_other": len(theirs),
        "n_dropped": int((~keep).sum()),
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
    """ours − other on our finite cells, the other map taken at its nearest point (for the difference map).

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
    """Mean of ours − other per grid cell (south of ``lat_max``) of the matched points, NaN elsewhere."""
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


def plot_difference(result, path, *, title: str | None = None, res: float | None = None,
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
        if not os.path.exists(path):
            raise InputFileError(path, "no such file")
        try:
            return xr.open_dataset(path).load()
        except (OSError, ValueError) as exc:
            raise InputFileError(path, f"cannot open as NetCDF ({exc})") from exc
    return read_published_map(path)


def compare(our_map_path, other_map_path, *, out_png=None, units=None, lat_max: float | None = None,
            max_distance_km: float | None = None, lat=None, lon=None, value=None, variable: str = "heatflow") -> dict:
    """``seisgrid ghf compare OURS OTHER``: compare two maps read from files.

    Parameters
    ----------
    our_map_path : str
        Our map: the Zarr store (or NetCDF) of ``seisgrid ghf map``, or any map :func:`read_published_map` reads.
    other_map_path : str
        The other map (points or grid, see :func:`read_published_map`).
    out_png : str, optional
        Write the difference map here (:func:`plot_difference`).
    units : str, optional
        Units of the other map (``mW/m2`` or ``W/m2``); default: detected.
    lat_max, max_distance_km, variable
        As in :func:`compare_maps`.
    lat, lon, value : str, optional
        Column / variable names of the other map (:func:`read_published_map`).

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


# ------------------------------------------------------------------------------------------ the step


def loesing_ebbing_path():
    """Path of the Lösing & Ebbing (2021) map under ``config.data_dir()``, or None when absent."""
    root = config.data_dir()
    if root is None:
        return None
    path = pathlib.Path(root).joinpath(*LOESING_EBBING)
    return str(path) if path.exists() else None


def _load_ensemble(ensemble_dir):
    from seisgrid.ghf.crossval import load_ensemble

    models, manifest = load_ensemble(ensemble_dir)
    if "features" not in manifest:
        raise SeisgridError(f"{ensemble_dir}: the ensemble manifest names no features")
    return models, manifest


def build_map(ensemble_dir, features_store, out, *, samples: int | None = None, compare_with=None, png_folder=None,
              lat_max: float | None = None, min_land_fraction: float | None = None,
              geotiff_resolution_km: float | None = None, compare_max_distance_km: float | None = None,
              netcdf: bool = True, geotiff: bool = True) -> dict:
    """``seisgrid ghf map``: predict the Antarctic map with the ensemble, write it, summarise and compare it.

    Parameters
    ----------
    ensemble_dir : str
        Folder of the cross-validation ensemble (``seisgrid ghf train --out``).
    features_store : str or xarray.Dataset
        Feature grid (``seisgrid ghf features``).
    out : str
        Zarr store to write; NetCDF, GeoTIFF and (by default) PNGs go beside it (:func:`write_map`).
    samples, lat_max, min_land_fraction, geotiff_resolution_km, compare_max_distance_km
        Defaults from ``seisgrid.ghf_map``.
    compare_with : str, optional
        A published map to compare with (:func:`read_published_map`); default: Lösing & Ebbing (2021) in
        ``data_dir()/ghf/loesing_ebbing2021`` when present. ``""`` or ``"none"``: no comparison.
    png_folder : str, optional
        Folder of the PNG maps; default the store's folder.
    netcdf, geotiff : bool
        Write these too.

    Returns
    -------
    dict
        JSON-able report: ``n_cells``, ``min``, ``max``, ``mean`` (area-weighted), ``uncertainty_mean``,
        ``summary`` (:func:`summary`), ``reference`` (the study's figures), ``outputs`` (name → path),
        ``comparison`` (:func:`compare_maps` statistics with ``other`` and ``png``; None without one),
        ``models``, ``features``, ``samples``, ``seconds``.
    """
    t0 = time.perf_counter()
    out = str(out).rstrip("/")
    lat_max = float(_setting("lat_max", lat_max, -60.0))
    samples = int(_setting("samples", samples, 50))
    models, manifest = _load_ensemble(ensemble_dir)
    names = list(manifest["features"])
    ds = predict_map(models, features_store, names, lat_max=lat_max, samples=samples,
                     min_land_fraction=min_land_fraction)
    ds.attrs["ensemble"] = str(ensemble_dir)
    if isinstance(features_store, str):
        ds.attrs["feature_grid"] = features_store
    stats = summary(ds)
    ds.attrs["summary"] = json.dumps({k: v for k, v in stats.items() if k != "reference"})
    png_folder = _parent(out) if png_folder is None else str(png_folder)
    outputs = write_map(ds, out, netcdf=netcdf, geotiff=geotiff, png_folder=png_folder,
                        geotiff_resolution_km=geotiff_resolution_km, lat_max=lat_max)
    if compare_with is None:
        compare_with = loesing_ebbing_path()
        if compare_with is None:
            logger.info("no Lösing & Ebbing (2021) map under the data folder: no comparison")
    elif str(compare_with).strip().lower() in ("", "none", "false"):
        compare_with = None
    comparison = None
    if compare_with:
        other = read_published_map(compare_with)
        result = compare_maps(ds, other, lat_max=lat_max, max_distance_km=compare_max_distance_km)
        if result["n"]:
            png = storage.join(png_folder, f"{_stem(out)}_minus_{_stem(compare_with)}.png")
            outputs["png_difference"] = result["png"] = plot_difference(result, png, lat_max=lat_max)
        comparison = _jsonable(result)
        comparison["other"] = str(compare_with)
    report = {
        "n_cells": stats["n_cells"],
        "min": stats["min"],
        "max": stats["max"],
        "mean": stats["mean"],
        "uncertainty_mean": stats.get("uncertainty_mean"),
        "summary": stats,
        "reference": dict(REFERENCE),
        "outputs": outputs,
        "comparison": comparison,
        "models": len(models),
        "features": names,
        "samples": samples,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    logger.info("Antarctic map: %d cells, %.1f–%.1f mW m-2, mean %.1f (study: 20–110, mean 65.6)",
                stats["n_cells"], stats["min"], stats["max"], stats["mean"])
    return report
