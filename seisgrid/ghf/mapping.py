"""The Antarctic heat-flow map: ensemble predictions with uncertainties, outputs, summary.

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

:func:`build_map` compares the map with a published one (Lösing & Ebbing 2021 by default) through
:mod:`seisgrid.ghf.compare`; published maps are read by :mod:`seisgrid.ghf.published`.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import posixpath
import tempfile
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from seisgrid import storage
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf import grid as ghf_grid
from seisgrid.ghf.compare import (
    UNITS,
    _jsonable,
    _pearson,
    _setting,
    compare_maps,
    plot_difference,
    published_map_paths,
)
from seisgrid.ghf.published import read_published_map

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from affine import Affine

    from seisgrid.ghf.applicability import Applicability

logger = logging.getLogger("seisgrid")

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
    "aleatoric_sd": "aleatoric uncertainty (data noise, mean over models of the predicted variance), "
                    "standard deviation",
    "epistemic_sd": "epistemic uncertainty (variance over Monte Carlo samples of the Bayesian output layer, "
                    "mean over models), standard deviation",
    "within_sd": "within-model uncertainty (aleatoric + epistemic variance), standard deviation",
    "between_sd": "between-model uncertainty (variance of the fold models' means), standard deviation",
}

#: Written when the ensemble carries a spatial-block calibration (:mod:`seisgrid.ghf.calibration`).
CALIBRATED_VARIABLES = {
    "mean_sd": "uncertainty of the mapped mean heat flow itself: epistemic + between-model + calibrated "
               "model-error variance (spatial-block CV), standard deviation",
    "measurement_sd": "spread of one heat-flow measurement about the map, calibrated under spatial-block CV: "
                      "total + model-error variance, standard deviation",
}

#: Written when the ensemble carries an area of applicability (:mod:`seisgrid.ghf.applicability`); unitless.
APPLICABILITY_VARIABLES = {
    "dissimilarity_index": "dissimilarity index (Meyer & Pebesma 2021): distance of the cell's standardised "
                           "feature vector to the nearest training cell over the mean distance between "
                           "training cells",
    "outside_applicability": "1 where the dissimilarity index exceeds the threshold set on the training cells "
                             "(the network extrapolates there), 0 inside the area of applicability",
}

#: Regions of the map report (:func:`region_statistics`): West = 180–360° E (west of Greenwich), East = 0–180° E,
#: the Antarctic Peninsula as the box north of 75° S between 280 and 310° E, and the pole south of 85° S;
#: Lake Vostok (77.5° S, 106.0° E) within 300 km, where the study notes local anomalies.
REGIONS = {
    "west": "180-360° E",
    "east": "0-180° E",
    "peninsula": "north of 75° S, 280-310° E",
    "south_of_85": "south of 85° S",
    "lake_vostok_300km": "within 300 km of Lake Vostok (77.5° S, 106.0° E)",
}
LAKE_VOSTOK = (-77.5, 106.0)

#: The study's statements per region, for the report beside ours.
STUDY_REGIONS = {
    "west": "> 70 mW m-2 (West Antarctica high)",
    "east": "low (East Antarctica below the West)",
    "lake_vostok_300km": "anomalies near Lake Vostok",
}


# ------------------------------------------------------------------------------------------ prediction


def _open_features(features_store) -> xr.Dataset:
    if isinstance(features_store, xr.Dataset):
        return features_store
    return ghf_grid.open_grid(features_store, "feature grid")


def predict_map(models: Sequence, features_store: str | xr.Dataset, feature_names: Sequence[str], *,
                lat_max: float | None = None, samples: int | None = None, min_land_fraction: float | None = None,
                ensemble_predict: Callable[..., dict] | None = None, model_error_sd: float | None = None,
                applicability: tuple[Applicability, dict] | None = None) -> xr.Dataset:
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
    model_error_sd : float, optional
        τ of the spatial-block calibration (:func:`seisgrid.ghf.calibration.calibrate`); adds ``mean_sd`` and
        ``measurement_sd`` (:data:`CALIBRATED_VARIABLES`).
    applicability : (Applicability, dict), optional
        The area of applicability of the ensemble and the categories of its one-hot encoded features; adds
        ``dissimilarity_index`` and ``outside_applicability`` (:data:`APPLICABILITY_VARIABLES`).

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
        from seisgrid.ghf.crossval import ensemble_predict as default_predict

        ensemble_predict = default_predict
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
    variables = dict(MAP_VARIABLES)
    extra_attrs: dict[str, dict[str, Any]] = {}
    if model_error_sd is not None:
        tau2 = float(model_error_sd) ** 2
        values["mean_sd"] = np.sqrt(epistemic + between + tau2)
        values["measurement_sd"] = np.sqrt(within + between + tau2)
        variables.update(CALIBRATED_VARIABLES)
        extra_attrs.update({name: {"model_error_sd": float(model_error_sd)} for name in CALIBRATED_VARIABLES})
    if applicability is not None:
        from seisgrid.ghf.applicability import one_hot

        aoa, categories = applicability
        di = aoa.dissimilarity(one_hot(table, list(categories), categories))
        values["dissimilarity_index"] = di
        values["outside_applicability"] = (di > aoa.threshold).astype(float)
        variables.update(APPLICABILITY_VARIABLES)
        extra_attrs.update({name: {"units": "1", "threshold": float(aoa.threshold)}
                            for name in APPLICABILITY_VARIABLES})

    glat, glon = region["lat"].values, region["lon"].values
    rows, cols = np.searchsorted(glat, lat), np.searchsorted(glon, lon)
    ds = xr.Dataset(coords={"lat": ("lat", glat, dict(region["lat"].attrs)),
                            "lon": ("lon", glon, dict(region["lon"].attrs))})
    ds["lat"].attrs.setdefault("units", "degrees_north")
    ds["lon"].attrs.setdefault("units", "degrees_east")
    for name, long_name in variables.items():
        field = np.full((glat.size, glon.size), np.nan)
        field[rows, cols] = values[name]
        attrs: dict[str, Any] = {"units": UNITS, "long_name": long_name}
        if name == "heatflow":
            attrs["standard_name"] = "upward_geothermal_heat_flux_at_ground_level"
        elif name not in APPLICABILITY_VARIABLES:
            attrs["description"] = "standard deviation; square it for the variance in mW2 m-4"
        attrs.update(extra_attrs.get(name, {}))
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


def _all_variables() -> list[str]:
    return [*MAP_VARIABLES, *CALIBRATED_VARIABLES, *APPLICABILITY_VARIABLES]


def _parent(url: str) -> str:
    url = str(url).rstrip("/")
    return str(pathlib.Path(url).parent) if storage.is_local(url) else posixpath.dirname(url)


def _stem(url: str) -> str:
    name = posixpath.basename(str(url).rstrip("/"))
    for suffix in (".zarr", ".nc", ".csv.gz", ".gz", ".csv", ".txt", ".tif", ".tiff"):
        name = name.removesuffix(suffix)
    return name or "map"


def polar_stereo_raster(ds: xr.Dataset, variables: Sequence[str] | None = None, resolution_km: float | None = None,
                        lat_max: float | None = None) -> tuple[np.ndarray, Affine, list[str]]:
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

    names = [v for v in _all_variables() if v in ds] if variables is None else list(variables)
    res_m = float(_setting("geotiff_resolution_km", resolution_km, 10.0)) * 1000.0
    if res_m <= 0:
        raise ConfigError(f"GeoTIFF resolution {res_m / 1000} km: must be positive "
                          "(seisgrid.ghf_map.geotiff_resolution_km)")
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


def write_geotiff(ds: xr.Dataset, path: str | os.PathLike[str], *, variables: Sequence[str] | None = None,
                  resolution_km: float | None = None, lat_max: float | None = None) -> str:
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


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike[str]) -> str:
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


def write_map(ds: xr.Dataset, out: str | os.PathLike[str], *, netcdf: bool = True, geotiff: bool = True,
              png_folder: str | os.PathLike[str] | None = None, geotiff_resolution_km: float | None = None,
              lat_max: float | None = None) -> dict:
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
        shade = ds["outside_applicability"] if "outside_applicability" in ds else None
        label = "grey: outside the area of applicability (the network extrapolates)" if shade is not None else ""
        for name in (v for v in _all_variables() if v in ds):
            title = f"{name}: {ds[name].attrs.get('long_name', name)}"
            cmap = "inferno" if name == "heatflow" else None
            paths[f"png_{name}"] = plot_south_polar(ds[name], storage.join(str(png_folder), f"{stem}_{name}.png"),
                                                    title=_wrap(title), cmap=cmap, lat_max=edge,
                                                    shade=None if name in APPLICABILITY_VARIABLES else shade,
                                                    shade_label=label)
    return paths


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ------------------------------------------------------------------------------------------ summary

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
    out: dict[str, Any] = {
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


def region_statistics(ds: xr.Dataset) -> dict:
    """Area-weighted (cos lat) statistics of the map per region of :data:`REGIONS`, beside the study's words.

    Returns
    -------
    dict
        Per region: ``definition``, ``n`` (cells), ``mean``, ``min``, ``max`` of ``heatflow``; ``mean_sd``
        (area-weighted mean of the uncertainty of the mapped mean) and ``outside_applicability`` (share of
        the region's cells outside the area of applicability) when the map has them; ``study`` where the
        study says something about the region. Also ``west_minus_east`` (mW m⁻²).
    """
    hf = ds["heatflow"].transpose("lat", "lon").values.astype(float)
    lat2, lon2 = np.meshgrid(ds["lat"].values.astype(float), ds["lon"].values.astype(float), indexing="ij")
    lon360 = np.mod(lon2, 360.0)
    vostok_km = ghf_grid.haversine_km(lat2, lon2, *LAKE_VOSTOK)
    masks = {"west": lon360 >= 180.0, "east": lon360 < 180.0,
             "peninsula": (lat2 > -75.0) & (lon360 >= 280.0) & (lon360 <= 310.0), "south_of_85": lat2 < -85.0,
             "lake_vostok_300km": vostok_km <= 300.0}
    weights = np.cos(np.radians(lat2))
    extra = {name: ds[name].transpose("lat", "lon").values.astype(float)
             for name in ("mean_sd", "outside_applicability") if name in ds}
    out: dict[str, Any] = {}
    for name, mask in masks.items():
        cells = mask & np.isfinite(hf)
        entry: dict[str, Any] = {"definition": REGIONS[name], "n": int(cells.sum())}
        if cells.any():
            w = weights[cells]
            entry.update(mean=float(np.sum(w * hf[cells]) / np.sum(w)), min=float(hf[cells].min()),
                         max=float(hf[cells].max()))
            for key, field in extra.items():
                entry[key] = float(np.sum(w * field[cells]) / np.sum(w))
        if name in STUDY_REGIONS:
            entry["study"] = STUDY_REGIONS[name]
        out[name] = entry
    if "mean" in out["west"] and "mean" in out["east"]:
        out["west_minus_east"] = out["west"]["mean"] - out["east"]["mean"]
    return out


# ------------------------------------------------------------------------------------------ the step

def _load_ensemble(ensemble_dir):
    from seisgrid.ghf.crossval import load_ensemble

    models, manifest = load_ensemble(ensemble_dir)
    if "features" not in manifest:
        raise SeisgridError(f"{ensemble_dir}: the ensemble manifest names no features")
    return models, manifest


def _load_applicability(ensemble_dir, manifest: dict) -> tuple[Applicability, dict] | None:
    from seisgrid.ghf.applicability import Applicability

    entry = manifest.get("applicability")
    if not entry:
        logger.warning("%s: the ensemble has no area of applicability (trained before it existed); rerun "
                       "seisgrid ghf train for the dissimilarity layer", ensemble_dir)
        return None
    path = storage.join(str(ensemble_dir).rstrip("/"), entry["file"])
    categories = {name: list(values) for name, values in (entry.get("categories") or {}).items()}
    return Applicability.from_dict(storage.read_json(path)), categories


def _comparisons(ds, compare_with, *, lat_max, max_distance_km, png_folder, out, outputs) -> list:
    """Compare with each published map: ``compare_with`` None → every shared one; a path, list, or "none"."""
    if compare_with is None:
        others = list(published_map_paths().values())
        if not others:
            logger.info("no published map under the data folder: no comparison")
    elif isinstance(compare_with, str):
        others = [] if compare_with.strip().lower() in ("", "none", "false") else \
            [p.strip() for p in compare_with.split(",") if p.strip()]
    else:
        others = [str(p) for p in compare_with]
    results = []
    for other_path in others:
        result = compare_maps(ds, read_published_map(other_path), lat_max=lat_max, max_distance_km=max_distance_km)
        if result["n"]:
            png = storage.join(png_folder, f"{_stem(out)}_minus_{_stem(other_path)}.png")
            outputs[f"png_difference_{_stem(other_path)}"] = result["png"] = plot_difference(result, png,
                                                                                             lat_max=lat_max)
        comparison = _jsonable(result)
        comparison["other"] = other_path
        results.append(comparison)
    return results


def build_map(ensemble_dir: str | os.PathLike[str], features_store: str | xr.Dataset, out: str | os.PathLike[str], *,
              samples: int | None = None, compare_with: str | None = None,
              png_folder: str | os.PathLike[str] | None = None, lat_max: float | None = None,
              min_land_fraction: float | None = None, geotiff_resolution_km: float | None = None,
              compare_max_distance_km: float | None = None, netcdf: bool = True, geotiff: bool = True) -> dict:
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
    compare_with : str or list of str, optional
        Published maps to compare with (:func:`~seisgrid.ghf.published.read_published_map`; a list or
        comma-separated paths); default: every shared published map under ``data_dir()/ghf``
        (:data:`~seisgrid.ghf.compare.PUBLISHED_MAPS`: Lösing & Ebbing 2021, Lucazeau 2019). ``""`` or
        ``"none"``: no comparison.
    png_folder : str, optional
        Folder of the PNG maps; default the store's folder.
    netcdf, geotiff : bool
        Write these too.

    Returns
    -------
    dict
        JSON-able report: ``n_cells``, ``min``, ``max``, ``mean`` (area-weighted), ``uncertainty_mean``,
        ``summary`` (:func:`summary`), ``reference`` (the study's figures), ``outputs`` (name → path),
        ``comparisons`` (one :func:`~seisgrid.ghf.compare.compare_maps` result per published map, with ``other``
        and ``png``), ``comparison`` (the first, None without one), ``regions`` (:func:`region_statistics`),
        ``calibration`` and ``applicability`` (from the ensemble; None for ensembles trained without them),
        ``models``, ``features``, ``samples``, ``seconds``.
    """
    t0 = time.perf_counter()
    out = str(out).rstrip("/")
    lat_max = float(_setting("lat_max", lat_max, -60.0))
    samples = int(_setting("samples", samples, 50))
    models, manifest = _load_ensemble(ensemble_dir)
    names = list(manifest["features"])
    calibration = manifest.get("calibration") or {}
    ds = predict_map(models, features_store, names, lat_max=lat_max, samples=samples,
                     min_land_fraction=min_land_fraction, model_error_sd=calibration.get("model_error_sd"),
                     applicability=_load_applicability(ensemble_dir, manifest))
    ds.attrs["ensemble"] = str(ensemble_dir)
    if isinstance(features_store, str):
        ds.attrs["feature_grid"] = features_store
    stats = summary(ds)
    stats["regions"] = region_statistics(ds)
    ds.attrs["summary"] = json.dumps({k: v for k, v in stats.items() if k != "reference"})
    png_folder = _parent(out) if png_folder is None else str(png_folder)
    outputs = write_map(ds, out, netcdf=netcdf, geotiff=geotiff, png_folder=png_folder,
                        geotiff_resolution_km=geotiff_resolution_km, lat_max=lat_max)
    comparisons = _comparisons(ds, compare_with, lat_max=lat_max, max_distance_km=compare_max_distance_km,
                               png_folder=png_folder, out=out, outputs=outputs)
    report = {
        "n_cells": stats["n_cells"],
        "min": stats["min"],
        "max": stats["max"],
        "mean": stats["mean"],
        "uncertainty_mean": stats.get("uncertainty_mean"),
        "summary": stats,
        "reference": dict(REFERENCE),
        "outputs": outputs,
        "comparison": comparisons[0] if comparisons else None,
        "comparisons": comparisons,
        "regions": stats["regions"],
        "calibration": calibration or None,
        "applicability": {k: v for k, v in (manifest.get("applicability") or {}).items() if k != "categories"} or None,
        "models": len(models),
        "features": names,
        "samples": samples,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    logger.info("Antarctic map: %d cells, %.1f–%.1f mW m-2, mean %.1f (study: 20–110, mean 65.6)",
                stats["n_cells"], stats["min"], stats["max"], stats["mean"])
    return report
