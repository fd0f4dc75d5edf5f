"""Training-density experiment (Liu et al. 2026, Fig. 5): how skill falls as a region's data thin out.

A region of interest (ROI) is the circle of ``radius_km`` (1300 km) holding the most training cells, its
centre searched on a grid over a box (0–45° E, 28–52° N; the study found ≈ 21° E, 43° N). For each
fraction (10 %, 20 %, … 90 %) and repeat, that fraction of the ROI cells (a seeded random draw) joins all
cells outside the ROI for training, and the remaining ROI cells are the validation set. The network
(:func:`seisgrid.ghf.bnn.fit_bnn`) and ordinary least squares on standardised features are fitted on the
same training cells and scored on the same ROI validation cells by R² and NRMSE (= RMSE / mean(ŷ)).

Early stopping of the network uses a seeded 10 % random split of the *training* cells (mostly outside
the ROI), never the ROI validation cells. Each (fraction, repeat) run is one Dask task.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import numpy as np

from seisgrid import config, storage
from seisgrid.cluster import run_tasks
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.figures import new_figure, save_png
from seisgrid.ghf import crossval as cv
from seisgrid.ghf.grid import EARTH_RADIUS_KM, unit_vectors

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Sequence

    import xarray as xr
    from distributed import Client
    from numpy.typing import ArrayLike

    from seisgrid.cluster import LazyClient
    from seisgrid.ghf.bnn import FittedBNN, Hyperparameters
    from seisgrid.ghf.dataset import TrainingSet

logger = logging.getLogger("seisgrid")

DEFAULT_BOX = (0.0, 45.0, 28.0, 52.0)
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
METHODS = ("bnn", "linear")
METHOD_LABELS = {"bnn": "Bayesian DNN", "linear": "linear regression"}


def _setting(key: str, value, default):
    return config.get(f"density.{key}", default, override=value)


def _box(box) -> tuple[float, float, float, float]:
    values = tuple(float(v) for v in box)
    if len(values) != 4 or not (values[0] <= values[1] and values[2] <= values[3]):
        raise ConfigError(f"box={list(box)}: expected [lon_min, lon_max, lat_min, lat_max] with min ≤ max")
    if not (-90.0 <= values[2] and values[3] <= 90.0):
        raise ConfigError(f"box={list(box)}: latitudes must lie in [-90, 90]")
    return values


def find_roi(lat: ArrayLike, lon: ArrayLike, radius_km: float = 1300.0, box: Sequence[float] = DEFAULT_BOX,
             step_deg: float = 0.5) -> tuple:
    """The centre, on a grid over ``box``, of the circle of ``radius_km`` holding the most cells.

    Parameters
    ----------
    lat, lon : array_like
        (n,) training-cell centres, degrees.
    radius_km : float
        Great-circle radius of the circle, km.
    box : sequence of 4 float
        ``(lon_min, lon_max, lat_min, lat_max)``, degrees: where centres are tried (every cell counts,
        inside the box or not).
    step_deg : float
        Spacing of the candidate centres, degrees (both edges of the box included).

    Returns
    -------
    (centre_lat, centre_lon, n_cells) : (float, float, int)
        The first best centre in (lat, lon) order and the number of cells within ``radius_km`` of it.
    """
    lon_min, lon_max, lat_min, lat_max = _box(box)
    step = float(step_deg)
    if not step > 0:
        raise ConfigError(f"step_deg={step_deg}: must be positive")
    if not float(radius_km) > 0:
        raise ConfigError(f"radius_km={radius_km}: must be positive")
    lat, lon = np.asarray(lat, dtype=float).ravel(), np.asarray(lon, dtype=float).ravel()
    if lat.shape != lon.shape or lat.size == 0:
        raise SeisgridError(f"find_roi: {lat.size} latitudes and {lon.size} longitudes; need the same, non-zero number")
    lats = lat_min + step * np.arange(int(np.floor((lat_max - lat_min) / step + 1e-9)) + 1)
    lons = lon_min + step * np.arange(int(np.floor((lon_max - lon_min) / step + 1e-9)) + 1)
    grid_lat, grid_lon = np.meshgrid(lats, lons, indexing="ij")
    centres = unit_vectors(grid_lat.ravel(), grid_lon.ravel())
    points = unit_vectors(lat, lon)
    # Within the radius ⇔ the dot product of unit vectors ≥ cos(angle); a small tolerance keeps cells
    # exactly on the circle (equal to haversine within rounding).
    threshold = np.cos(float(radius_km) / EARTH_RADIUS_KM) - 1e-12
    counts = np.zeros(len(centres), dtype=np.int64)
    for start in range(0, len(centres), 512):
        counts[start:start + 512] = (centres[start:start + 512] @ points.T >= threshold).sum(axis=1)
    best = int(np.argmax(counts))
    return float(grid_lat.ravel()[best]), float(grid_lon.ravel()[best]), int(counts[best])


def roi_mask(lat: ArrayLike, lon: ArrayLike, centre_lat: float, centre_lon: float, radius_km: float) -> np.ndarray:
    """True for cells within ``radius_km`` (great circle) of the centre (same test as :func:`find_roi`)."""
    threshold = np.cos(float(radius_km) / EARTH_RADIUS_KM) - 1e-12
    return unit_vectors(lat, lon) @ unit_vectors(centre_lat, centre_lon) >= threshold


def roi_splits(inside: ArrayLike, outside: ArrayLike, fractions: Iterable[float], repeats: int,
               seed: int = 0) -> list:
    """Training and validation cells of every (fraction, repeat) run.

    Parameters
    ----------
    inside, outside : array_like of int
        Positions of the cells inside and outside the ROI.
    fractions : sequence of float
        Shares of the ROI cells kept in training; ``round(fraction × n)`` cells, at least 1 and leaving at
        least 2 for validation.
    repeats : int
        Draws per fraction; draw ``r`` of fraction ``i`` uses the seed ``[seed, i, r]``.
    seed : int
        Base seed.

    Returns
    -------
    list of dict
        In (fraction, repeat) order: ``fraction``, ``repeat``, ``n_train_roi``, ``train`` (all ``outside``
        cells + the kept ROI cells, sorted) and ``validation`` (the other ROI cells, sorted).
    """
    inside, outside = np.asarray(inside, dtype=np.int64), np.asarray(outside, dtype=np.int64)
    n_roi = len(inside)
    out = []
    for fi, fraction in enumerate(fractions):
        n_keep = min(max(1, round(float(fraction) * n_roi)), n_roi - 2)
        for r in range(int(repeats)):
            perm = np.random.default_rng([seed, fi, r]).permutation(inside)
            out.append({"fraction": float(fraction), "repeat": r, "n_train_roi": int(n_keep),
                        "train": np.sort(np.concatenate([outside, perm[:n_keep]])),
                        "validation": np.sort(perm[n_keep:])})
    return out


def _run_task(item, X, y, params, samples, validation_fraction, fit_model, threads):
    """One (fraction, repeat) run (a Dask task): network and linear regression, scored on the ROI rest."""
    run, train_idx, val_idx, split_seed = item
    fit_idx, stop_idx = cv.inner_split(train_idx, validation_fraction, split_seed)
    threads = cv._worker_threads(threads)
    model = cv.fit_network(X[fit_idx], y[fit_idx], X[stop_idx], y[stop_idx], cv._with_seed(params, run),
                           fit_model=fit_model, threads=threads)
    scores = {"bnn": model.predict(X[val_idx], samples=samples, seed=run)["mean"]}
    # The linear model needs no early stopping: it is fitted on every training cell.
    with cv._thread_limit(threads):
        scores["linear"] = cv.fit_baseline("linear", X[train_idx], y[train_idx]).predict(X[val_idx])
    out = {}
    for method, y_hat in scores.items():
        out[method] = {"r2": cv.r2(y[val_idx], y_hat), "nrmse": cv.nrmse(y[val_idx], y_hat),
                       "rmse": cv.rmse(y[val_idx], y_hat)}
    out["best_epoch"] = getattr(model, "best_epoch", None)
    return out


def density_experiment(training_set: TrainingSet, params: Hyperparameters | dict | None = None, *,
                       fractions: Sequence[float] | None = None, repeats: int | None = None,
                       radius_km: float | None = None, box: Sequence[float] | None = None,
                       step_deg: float | None = None, client: Client | LazyClient | None = None,
                       seed: int | None = None, samples: int | None = None, validation_fraction: float | None = None,
                       max_epochs: int | None = None, fit_model: Callable[..., FittedBNN] | None = None,
                       threads: int | None = None, progress: bool = True) -> dict:
    """Keep a fraction of the ROI's cells in training and score the network and linear regression on the rest.

    Parameters
    ----------
    training_set : seisgrid.ghf.dataset.TrainingSet
        Training cells.
    params : Hyperparameters or dict, optional
        Network settings; default the ``bnn`` settings. Run ``i`` trains with ``seed = params.seed + i``.
    fractions : sequence of float
        Shares of the ROI cells kept in training, each in (0, 1) (``density.fractions``: 0.1 … 0.9).
    repeats : int
        Random draws per fraction (``density.repeats``, 5).
    radius_km, box, step_deg
        ROI search (:func:`find_roi`; ``density.*``: 1300 km, 0–45° E × 28–52° N, 0.5°).
    client : distributed.Client or LazyClient, optional
        One task per (fraction, repeat); None: in this process.
    seed : int
        Seed of the draws and the early-stopping splits (``density.seed``, 0).
    samples, validation_fraction, max_epochs
        Monte Carlo samples per prediction (``density.mc_samples``), the share of training cells held out
        for early stopping (``density.validation_fraction``, 0.1), a cap on the network's epochs
        (``density.max_epochs``; None: the ``bnn`` setting).
    fit_model, threads, progress
        As in :func:`seisgrid.ghf.crossval.cross_validate`.

    Returns
    -------
    dict
        ``roi`` (``centre_lat``, ``centre_lon``, ``radius_km``, ``n_cells``, ``box``), ``rows`` (per fraction
        and method: ``fraction``, ``method``, ``r2_mean``, ``r2_sd``, ``nrmse_mean``, ``nrmse_sd``,
        ``rmse_mean``, ``n_runs``, ``n_train_roi``, ``n_validation``; sds are population sds over repeats),
        ``runs`` (every run's scores), ``params``, ``repeats``, ``seed``.
    """
    fractions = [float(f) for f in _setting("fractions", fractions, list(DEFAULT_FRACTIONS))]
    if not fractions or not all(0.0 < f < 1.0 for f in fractions):
        raise ConfigError(f"fractions={fractions}: each must be between 0 and 1 (exclusive)")
    repeats = int(_setting("repeats", repeats, 5))
    if repeats < 1:
        raise ConfigError(f"repeats={repeats}: need at least 1")
    radius_km = float(_setting("radius_km", radius_km, 1300.0))
    box = _box(_setting("box", box, list(DEFAULT_BOX)))
    step_deg = float(_setting("step_deg", step_deg, 0.5))
    seed = int(_setting("seed", seed, 0))
    samples = int(_setting("mc_samples", samples, 50))
    validation_fraction = float(_setting("validation_fraction", validation_fraction, 0.1))
    max_epochs = _setting("max_epochs", max_epochs, None)
    if fit_model is None:
        params = cv._hyperparameters(params, int(max_epochs) if max_epochs not in (None, "", "null") else None)

    X = training_set.features.to_numpy(dtype=np.float32)
    y = np.asarray(training_set.target, dtype=np.float64)
    centre_lat, centre_lon, n_roi = find_roi(training_set.lat, training_set.lon, radius_km, box, step_deg)
    inside = np.flatnonzero(roi_mask(training_set.lat, training_set.lon, centre_lat, centre_lon, radius_km))
    outside = np.setdiff1d(np.arange(len(y)), inside)
    if len(inside) != n_roi:
        raise SeisgridError(f"ROI membership changed between search and selection ({n_roi} vs {len(inside)} cells)")
    if n_roi < 4:
        raise SeisgridError(f"only {n_roi} training cells within {radius_km:g} km of the best centre "
                            f"({centre_lat:.2f}°N, {centre_lon:.2f}°E): too few for the experiment; "
                            "widen radius_km or move the box")
    logger.info("density ROI: %d cells within %g km of %.2f°N %.2f°E", n_roi, radius_km, centre_lat, centre_lon)

    splits = roi_splits(inside, outside, fractions, repeats, seed)
    items = [(i, s["train"], s["validation"], [seed, i, 1]) for i, s in enumerate(splits)]
    meta = [{"fraction": s["fraction"], "repeat": s["repeat"], "n_train_roi": s["n_train_roi"],
             "n_validation": len(s["validation"]), "n_train": len(s["train"])} for s in splits]
    results = run_tasks(client, _run_task, items,
                        args=(X, y, params, samples, validation_fraction, fit_model, threads),
                        desc="density runs", unit="run", progress=progress)
    runs = [{**m, **res} for m, res in zip(meta, results, strict=True)]
    rows = []
    for fraction in fractions:
        mine = [run for run in runs if run["fraction"] == fraction]
        for method in METHODS:
            r2s = np.array([run[method]["r2"] for run in mine])
            nrmses = np.array([run[method]["nrmse"] for run in mine])
            rows.append({"fraction": fraction, "method": method, "r2_mean": float(r2s.mean()),
                         "r2_sd": float(r2s.std()), "nrmse_mean": float(nrmses.mean()),
                         "nrmse_sd": float(nrmses.std()),
                         "rmse_mean": float(np.mean([run[method]["rmse"] for run in mine])),
                         "n_runs": len(mine), "n_train_roi": mine[0]["n_train_roi"],
                         "n_validation": mine[0]["n_validation"]})
    return {"roi": {"centre_lat": centre_lat, "centre_lon": centre_lon, "radius_km": radius_km, "n_cells": n_roi,
                    "box": list(box), "step_deg": step_deg},
            "rows": rows, "runs": runs, "params": cv._params_dict(params), "repeats": repeats, "seed": seed,
            "fractions": fractions, "mc_samples": samples, "validation_fraction": validation_fraction,
            "n_cells": len(y)}


def plot_density(result: dict, path: str | os.PathLike[str], dpi: int | None = None) -> str:
    """R² and NRMSE against training density (mean ± sd bands), network vs linear regression (cf. Fig. 5).

    Parameters
    ----------
    result : dict
        :func:`density_experiment` output (its ``rows`` and ``roi``).
    path : str
        PNG to write (local path or URL).
    dpi : int, optional
        Default ``seisgrid.maps.dpi``.

    Returns
    -------
    str
        ``path``.
    """
    colours = {"bnn": "tab:blue", "linear": "tab:orange"}
    fig = new_figure((10, 4))
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "r2", "R²"), (axes[1], "nrmse", "NRMSE")):
        for method in METHODS:
            rows = sorted((r for r in result["rows"] if r["method"] == method), key=lambda r: r["fraction"])
            if not rows:
                continue
            x = np.array([100 * r["fraction"] for r in rows])
            m = np.array([r[f"{metric}_mean"] for r in rows])
            s = np.array([r[f"{metric}_sd"] for r in rows])
            ax.plot(x, m, "o-", color=colours[method], label=METHOD_LABELS[method])
            ax.fill_between(x, m - s, m + s, color=colours[method], alpha=0.2, linewidth=0)
        ax.set_xlabel("ROI cells kept in training (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    roi = result["roi"]
    fig.suptitle(f"Training density: {roi['radius_km']:g} km around {roi['centre_lat']:.1f}°N "
                 f"{roi['centre_lon']:.1f}°E ({roi['n_cells']} cells); "
                 f"mean ± sd of {result.get('repeats', '?')} repeats")
    fig.tight_layout()
    return save_png(fig, str(path), dpi)


def run_density(features_store: str | xr.Dataset, heatflow_store: str | xr.Dataset, out: str | os.PathLike[str], *,
                params: Hyperparameters | dict | None = None, search: str | os.PathLike[str] | None = None,
                client: Client | LazyClient | None = None, variables: Sequence[str] | None = None,
                regional_km: Sequence[float] | str | None = None, radius_km: float | None = None,
                box: Sequence[float] | None = None, step_deg: float | None = None,
                fractions: Sequence[float] | None = None, repeats: int | None = None, seed: int | None = None,
                mc_samples: int | None = None, validation_fraction: float | None = None,
                max_epochs: int | None = None, fit_model: Callable[..., FittedBNN] | None = None,
                threads: int | None = None, progress: bool = True) -> dict:
    """The training-density experiment on two grid stores (``seisgrid ghf density``).

    Parameters
    ----------
    features_store, heatflow_store : str or xarray.Dataset
        Grids of ``seisgrid ghf features`` / ``heatflow``.
    out : str
        Folder (path or URL) for ``density.json`` and ``density.png``.
    params : Hyperparameters or dict, optional
        Network settings; default ``search``'s best, else the ``bnn`` settings.
    search : str, optional
        ``search.json`` of ``seisgrid ghf search``.
    client, variables
        Dask client (one task per run); features (default the VIF selection).
    regional_km : list of float or str, optional
        Radii of regional means, as in :func:`seisgrid.ghf.dataset.load_training_set`.
    radius_km, box, step_deg, fractions, repeats, seed, mc_samples, validation_fraction, max_epochs
        As in :func:`density_experiment` (``density.*`` settings).
    fit_model, threads, progress
        As in :func:`seisgrid.ghf.crossval.cross_validate`.

    Returns
    -------
    dict
        JSON-able: ``roi``, ``rows``, ``runs``, ``params``, ``figure`` and ``json`` (paths), ``goal``
        (DNN R² ≥ 0.50 at every fraction above 0.4).
    """
    from seisgrid.ghf.dataset import load_training_set

    if params is None and search is not None:
        params = cv.params_from_search(search)
    data = load_training_set(features_store, heatflow_store, variables, regional_km)
    result = density_experiment(data, params, fractions=fractions, repeats=repeats, radius_km=radius_km, box=box,
                                step_deg=step_deg, client=client, seed=seed, samples=mc_samples,
                                validation_fraction=validation_fraction, max_epochs=max_epochs,
                                fit_model=fit_model, threads=threads, progress=progress)
    out = str(out).rstrip("/")
    result["features"] = list(data.names)
    result["figure"] = plot_density(result, storage.join(out, "density.png"))
    result["json"] = storage.join(out, "density.json")
    above = [r["r2_mean"] for r in result["rows"] if r["method"] == "bnn" and r["fraction"] > 0.4 + 1e-9]
    result["goal"] = {"r2_min_above_40_percent": 0.5, "bnn_r2_min": min(above) if above else None,
                      "met": bool(above) and min(above) >= 0.5, "study": "0.41–0.45"}
    storage.write_bytes(result["json"], cv._json_bytes(result))
    return json.loads(cv._json_bytes(result))
