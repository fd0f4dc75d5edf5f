"""Cross-validation of the heat-flow network, the five-model ensemble and the baselines (``seisgrid ghf train``).

What is measured
----------------
* **Folds.** ``random`` folds (as Liu et al. 2026) and ``spatial`` block folds: the training cells are
  grouped in ``block_degrees`` × ``block_degrees`` (lat × lon) blocks and whole blocks go to one fold.
  Heat-flow cells are spatially correlated, so with random folds most held-out cells have training
  neighbours a few tens of km away and the skill measured is partly interpolation skill; block folds hold
  out whole regions, which is closer to predicting Antarctica from the other continents. The report says
  how much the random folds overstate skill (R² and RMSE differences).
* **Early stopping** of each fold's network uses a seeded ``validation_fraction`` (10 %) random split
  of the fold's *training* part, never the test fold, so the test fold is untouched by model selection.
  The baselines are fitted on the same 90 % and see the same 10 % only to estimate their error variance.
* **Metrics** on the held-out cells: ``R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²``, RMSE (mW m⁻²) and
  ``NRMSE = RMSE / mean(ŷ)`` (the study's definition), pooled over all cells (each cell is held out once)
  and per fold (mean ± sd over folds).
* **Cross-fold sd** (the study's "cross-fold sd of mean predictions", 8.4 mW m⁻²): each of the ``k`` fold
  models predicts *every* training cell; per cell the standard deviation of the ``k`` predictions
  (population sd, ddof 0 — the same spread that enters the ensemble's between-model variance) is taken,
  and ``cross_fold_sd`` is its mean over all cells. ``fold_mean_sd`` is the other possible reading: the sd
  (ddof 0) over the ``k`` models of each model's mean prediction over all cells; ``mean_prediction`` is the
  mean of those means (the study: 67.0).
* **Calibration**: the fraction of held-out cells inside the central 68 % and 95 % Gaussian predictive
  intervals ``mean ± z·σ`` (goal: within ±3 points of nominal). The network's σ² is its total
  (aleatoric + epistemic) variance; the baselines have none of their own, so they get a homoscedastic σ²:
  their mean squared error on the fold's 10 % validation split.
* **Baselines** on the same folds: ordinary least squares on standardised features, and gradient-boosted
  regression trees (:class:`sklearn.ensemble.HistGradientBoostingRegressor`, LightGBM-style histogram
  GBRT as used by Lösing & Ebbing 2021; settings ``crossval.gbt_*``: 300 iterations, learning rate 0.05,
  31 leaves, ≥ 20 samples per leaf, no early stopping).

The ensemble
------------
The ``k`` models of the **random** folds form the ensemble (``crossval.ensemble_folds``), as in the study:
each was trained on 80 % of the cells drawn from every region, whereas a spatial-fold model lacks one fifth
of the regions. The spatial folds are there to measure skill honestly, not to make the map. Ensemble
prediction (:func:`ensemble_predict`) treats the ensemble as an equal-weight mixture: mean = mean of the
model means; variance = within-model (mean of the models' total variances) + between-model (variance of the
model means), i.e. the two standard deviations added in quadrature.

Each fold's network is one Dask task (``client``; None runs them here), the fitted model comes back as
its state and is rebuilt here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from seisgrid import config, storage
from seisgrid.cluster import run_tasks
from seisgrid.errors import ConfigError, SeisgridError, StorageError
from seisgrid.ghf.calibration import LEVELS, calibrate, coverage

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Sequence

    import pandas as pd
    import xarray as xr
    from distributed import Client
    from numpy.typing import ArrayLike
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    from seisgrid.cluster import LazyClient
    from seisgrid.ghf.bnn import FittedBNN, Hyperparameters
    from seisgrid.ghf.dataset import TrainingSet

logger = logging.getLogger("seisgrid")

METHODS = ("bnn", "linear", "gbt")
SCHEMES = ("random", "spatial")
METHOD_LABELS = {"bnn": "Bayesian DNN", "linear": "linear regression", "gbt": "gradient-boosted trees"}
GBT_KEYS = ("max_iter", "learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2_regularization")
TABLE_COLUMNS = ("method", "scheme", "r2", "rmse", "nrmse", "r2_fold_sd", "rmse_fold_sd", "cross_fold_sd",
                 "coverage_68", "coverage_95", "fold_mean_sd", "mean_prediction", "r2_fold_mean", "rmse_fold_mean",
                 "n_cells", "k")


def _setting(key: str, value, default):
    return config.get(f"crossval.{key}", default, override=value)


# --------------------------------------------------------------------------------------------- folds


def _check_k(n: int, k: int, what: str) -> int:
    k = int(k)
    if k < 2:
        raise ConfigError(f"k={k} folds: need at least 2")
    if n < k:
        raise ConfigError(f"k={k} folds but only {n} {what}: use fewer folds or more cells")
    return k


def _pairs(fold_of: np.ndarray, k: int) -> list:
    cells = np.arange(len(fold_of))
    return [(cells[fold_of != f], cells[fold_of == f]) for f in range(k)]


def random_folds(n: int, k: int = 5, seed: int = 0) -> list:
    """K random folds of ``n`` cells.

    Parameters
    ----------
    n : int
        Number of cells.
    k : int
        Number of folds (≥ 2, ≤ n); fold sizes differ by at most one.
    seed : int
        Seed of the permutation.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_idx, test_idx)`` per fold, sorted integer positions; the test folds partition ``0 … n−1``.
    """
    n = int(n)
    k = _check_k(n, k, "cells")
    fold_of = np.empty(n, dtype=np.int64)
    for f, part in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), k)):
        fold_of[part] = f
    return _pairs(fold_of, k)


def block_index(lat: ArrayLike, lon: ArrayLike, block_degrees: float = 5.0) -> np.ndarray:
    """Integer id of the ``block_degrees`` × ``block_degrees`` (lat × lon) block holding each cell.

    Blocks are aligned to −90° latitude and −180° longitude (longitudes are wrapped to [−180, 180)).
    """
    from seisgrid.ghf.grid import wrap_longitude

    size = float(block_degrees)
    if not size > 0:
        raise ConfigError(f"block_degrees={block_degrees}: must be a positive number of degrees")
    lat = np.asarray(lat, dtype=float)
    lon = wrap_longitude(lon)
    if lat.shape != lon.shape:
        raise SeisgridError(f"lat {lat.shape} and lon {lon.shape}: need one latitude per longitude")
    rows = np.floor((np.clip(lat, -90.0, 90.0) + 90.0) / size).astype(np.int64)
    cols = np.floor((lon + 180.0) / size).astype(np.int64)
    return rows * (math.ceil(360.0 / size) + 1) + cols


def spatial_block_folds(lat: ArrayLike, lon: ArrayLike, k: int = 5, block_degrees: float = 5.0, seed: int = 0) -> list:
    """K folds of whole spatial blocks, balanced by cell count.

    Parameters
    ----------
    lat, lon : array_like
        (n,) cell-centre coordinates, degrees.
    k : int
        Number of folds (≥ 2, ≤ the number of occupied blocks).
    block_degrees : float
        Block edge, degrees of latitude and of longitude (:func:`block_index`).
    seed : int
        Breaks ties between blocks of equal size (which fold they join).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_idx, test_idx)`` per fold; every block lies entirely in one test fold.

    Notes
    -----
    Blocks are assigned largest first, each to the fold with the fewest cells so far (longest-processing-time
    rule), which balances folds to within about one block; the seed orders blocks of equal size, so
    partitions change little with it.
    """
    blocks = block_index(lat, lon, block_degrees)
    ids, inverse, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    k = _check_k(len(ids), k, f"occupied {block_degrees}° blocks")
    order = np.random.default_rng(seed).permutation(len(ids))
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(k, dtype=np.int64)
    fold_of_block = np.empty(len(ids), dtype=np.int64)
    for b in order:
        f = int(np.argmin(load))
        fold_of_block[b] = f
        load[f] += counts[b]
    return _pairs(fold_of_block[inverse.ravel()], k)


def make_folds(scheme: str, lat: ArrayLike, lon: ArrayLike, k: int = 5, block_degrees: float = 5.0,
               seed: int = 0) -> list:
    """:func:`random_folds` (``scheme="random"``) or :func:`spatial_block_folds` (``"spatial"``)."""
    if scheme == "random":
        return random_folds(len(np.asarray(lat)), k, seed)
    if scheme == "spatial":
        return spatial_block_folds(lat, lon, k, block_degrees, seed)
    raise ConfigError(f"folds={scheme!r}: expected one of {list(SCHEMES)}")


def inner_split(train_idx: ArrayLike, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of a fold's training positions into (fit, early-stopping validation) parts.

    ``round(fraction × n)`` positions (at least one, and at least one left to fit) are validation.
    """
    train_idx = np.asarray(train_idx)
    if not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"validation_fraction={fraction}: must be between 0 and 1")
    if len(train_idx) < 2:
        raise SeisgridError(f"{len(train_idx)} training cells: too few to hold out an early-stopping split")
    n_val = min(max(1, round(float(fraction) * len(train_idx))), len(train_idx) - 1)
    perm = np.random.default_rng(seed).permutation(len(train_idx))
    return np.sort(train_idx[perm[n_val:]]), np.sort(train_idx[perm[:n_val]])


# ------------------------------------------------------------------------------------------- metrics


def _pair(y: ArrayLike, y_hat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, y_hat = np.asarray(y, dtype=float).ravel(), np.asarray(y_hat, dtype=float).ravel()
    if y.shape != y_hat.shape or y.size == 0:
        raise SeisgridError(f"observed ({y.size}) and predicted ({y_hat.size}) values: need the same, non-zero number")
    return y, y_hat


def r2(y: ArrayLike, y_hat: ArrayLike) -> float:
    """Coefficient of determination ``1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` (NaN when y is constant)."""
    y, y_hat = _pair(y, y_hat)
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - y_hat) ** 2)) / total if total > 0 else float("nan")


def rmse(y: ArrayLike, y_hat: ArrayLike) -> float:
    """Root-mean-square error, in the units of ``y`` (mW m⁻²)."""
    y, y_hat = _pair(y, y_hat)
    return float(np.sqrt(np.mean((y - y_hat) ** 2)))


def nrmse(y: ArrayLike, y_hat: ArrayLike) -> float:
    """RMSE normalised by the mean prediction, ``RMSE / mean(ŷ)`` (Liu et al. 2026), dimensionless."""
    y, y_hat = _pair(y, y_hat)
    return rmse(y, y_hat) / float(np.mean(y_hat))


def interval_coverage(y: ArrayLike, mean: ArrayLike, variance: ArrayLike, levels: Iterable[float] = LEVELS) -> dict:
    """Fraction of observations inside the central Gaussian predictive intervals.

    Parameters
    ----------
    y, mean, variance : array_like
        (n,) observations, predictive means and predictive variances (units of y and their square).
    levels : sequence of float
        Nominal coverages in (0, 1); the interval is ``mean ± z·sqrt(variance)``, ``z = Φ⁻¹((1 + level)/2)``.

    Returns
    -------
    dict
        ``{level: fraction}``; a calibrated model has fractions close to the levels.
    """
    y, mean = _pair(y, mean)
    variance = np.asarray(variance, dtype=float).ravel()
    if variance.shape != y.shape:
        raise SeisgridError(f"{variance.size} variances for {y.size} observations")
    if np.any(variance < 0):
        raise SeisgridError("negative predictive variances")
    levels = [float(level) for level in levels]
    for level in levels:
        if not 0.0 < level < 1.0:
            raise ConfigError(f"interval level {level}: must be between 0 and 1")
    out = dict(zip(levels, coverage(y, mean, variance, levels).tolist(), strict=True))
    return out


def _scores(y, mean, variance=None) -> dict:
    out = {"r2": r2(y, mean), "rmse": rmse(y, mean), "nrmse": nrmse(y, mean)}
    if variance is not None:
        for level, fraction in interval_coverage(y, mean, variance).items():
            out[f"coverage_{round(level * 100)}"] = fraction
    return out


# ------------------------------------------------------------------------------------------ ensemble


def ensemble_predict(models: Iterable[FittedBNN], X: ArrayLike | pd.DataFrame, samples: int = 50) -> dict:
    """Ensemble prediction of fitted networks as an equal-weight mixture.

    Parameters
    ----------
    models : sequence of FittedBNN
        Objects with ``predict(X, samples=, seed=)`` returning ``mean``, ``aleatoric``, ``epistemic`` and
        ``total`` (mW m⁻², mW² m⁻⁴); model ``i`` samples with seed ``i``.
    X : array_like
        (n, p) features in the models' column order.
    samples : int
        Monte Carlo samples of each model's Bayesian output layer.

    Returns
    -------
    dict of numpy.ndarray
        (n,) ``mean`` (mean of the model means), ``aleatoric`` and ``epistemic`` (means over models),
        ``within`` (mean of the models' total variances), ``between`` (population variance of the model
        means, ddof 0) and ``total = within + between`` — the within- and between-model standard
        deviations added in quadrature, the variance of the mixture.
    """
    models = list(models)
    if not models:
        raise SeisgridError("ensemble_predict: no models")
    if not hasattr(X, "columns"):  # DataFrames pass as they are: FittedBNN reorders named columns
        X = np.asarray(X, dtype=np.float32)
    preds = [m.predict(X, samples=samples, seed=i) for i, m in enumerate(models)]
    means = np.stack([np.asarray(p["mean"], dtype=float) for p in preds])
    out = {"mean": means.mean(axis=0)}
    for key in ("aleatoric", "epistemic"):
        out[key] = np.mean([np.asarray(p[key], dtype=float) for p in preds], axis=0)
    out["within"] = np.mean([np.asarray(p["total"], dtype=float) for p in preds], axis=0)
    out["between"] = means.var(axis=0)
    out["total"] = out["within"] + out["between"]
    return out


# ------------------------------------------------------------------------------------ cross-validation


def _hyperparameters(params, max_epochs=None):
    from seisgrid.ghf import bnn

    if params is None:
        params = bnn.Hyperparameters.from_config()
    elif isinstance(params, dict):
        params = bnn.Hyperparameters.from_dict(params)
    if max_epochs is not None:
        params = dataclasses.replace(params, max_epochs=int(max_epochs))
    return params


def _params_dict(params):
    if params is None:
        return None
    if hasattr(params, "to_dict"):
        return params.to_dict()
    if dataclasses.is_dataclass(params):
        return dataclasses.asdict(params)
    return dict(params) if isinstance(params, dict) else repr(params)


def _with_seed(params: Hyperparameters | dict | None, offset: int) -> Hyperparameters | dict | None:
    if dataclasses.is_dataclass(params) and hasattr(params, "seed"):
        return dataclasses.replace(params, seed=int(params.seed) + int(offset))
    return params


def fit_network(X_fit: ArrayLike, y_fit: ArrayLike, X_val: ArrayLike, y_val: ArrayLike,
                params: Hyperparameters | dict | None, *, fit_model: Callable[..., FittedBNN] | None = None,
                threads: int | None = None) -> FittedBNN:
    """Fit one network: :func:`seisgrid.ghf.bnn.fit_bnn` (default) or ``fit_model`` with the same call."""
    if fit_model is None:
        from seisgrid.ghf.bnn import fit_bnn

        return fit_bnn(X_fit, y_fit, X_val, y_val, params, threads=threads)
    return fit_model(X_fit, y_fit, X_val, y_val, params, threads=threads)


def _portable(model):
    """A picklable form of a fitted model for the trip back from a worker: its state when it has one."""
    if hasattr(model, "state") and hasattr(type(model), "from_state"):
        return ("state", type(model), model.state())
    return ("object", None, model)


def _restore(packed):
    kind, cls, value = packed
    return cls.from_state(value) if kind == "state" else value


def _worker_threads(threads):
    """``threads``, or inside a Dask task the worker's thread count.

    Torch would otherwise use every core in every worker process.
    """
    if threads is not None:
        return int(threads)
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


def _epochs(model):
    history = getattr(model, "history", None)
    if isinstance(history, dict):
        return len(next(iter(history.values()), []))
    return len(history) if history is not None and hasattr(history, "__len__") else None


def _fold_task(item, X, y, params, samples, fit_model, threads, baselines, gbt, seed):
    """One fold (a Dask task): the network and the baselines; every model predicts all cells.

    The network is fitted on the fit part with early stopping on the validation part.
    """
    fold, fit_idx, val_idx = item
    threads = _worker_threads(threads)
    model = fit_network(X[fit_idx], y[fit_idx], X[val_idx], y[val_idx], _with_seed(params, fold),
                        fit_model=fit_model, threads=threads)
    pred = model.predict(X, samples=samples, seed=fold)
    preds = {"bnn": {key: np.asarray(pred[key], dtype=float) for key in ("mean", "aleatoric", "epistemic", "total")}}
    for method in ("linear", "gbt") if baselines else ():
        preds[method] = _baseline_fold(method, X, y, fit_idx, val_idx, gbt, seed + fold, threads)
    return {"model": _portable(model), "preds": preds, "best_epoch": getattr(model, "best_epoch", None),
            "epochs": _epochs(model)}


def gbt_settings(**overrides) -> dict:
    """Settings of the gradient-boosted-trees baseline: ``crossval.gbt_*`` with non-None ``overrides``."""
    defaults = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                "l2_regularization": 0.0}
    out = {}
    for key in GBT_KEYS:
        value = _setting(f"gbt_{key}", overrides.get(key), defaults[key])
        out[key] = float(value) if key in ("learning_rate", "l2_regularization") else int(value)
    return out


def fit_baseline(method: str, X_fit: ArrayLike, y_fit: ArrayLike, gbt: dict | None = None, seed: int = 0,
                 threads: int | None = None) -> Pipeline | HistGradientBoostingRegressor:
    """A fitted baseline: ``"linear"`` (standardised OLS) or ``"gbt"`` (HistGradientBoostingRegressor).

    ``threads`` limits the BLAS/OpenMP threads of the fit (the trees' OpenMP loops otherwise take every
    core, and spin badly on a shared machine).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if method == "linear":
        from sklearn.linear_model import LinearRegression

        model = make_pipeline(StandardScaler(), LinearRegression())
    elif method == "gbt":
        from sklearn.ensemble import HistGradientBoostingRegressor

        model = HistGradientBoostingRegressor(**(gbt or gbt_settings()), early_stopping=False, random_state=seed)
    else:
        raise ConfigError(f"baseline {method!r}: expected linear or gbt")
    with _thread_limit(threads):
        return model.fit(X_fit, y_fit)


def _thread_limit(threads):
    if not threads:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(threads))


def _baseline_fold(method, X, y, fit_idx, val_idx, gbt, seed, threads=None):
    model = fit_baseline(method, X[fit_idx], y[fit_idx], gbt, seed, threads)
    with _thread_limit(threads):
        mean = model.predict(X)
    sigma2 = float(np.mean((y[val_idx] - mean[val_idx]) ** 2))
    return {"mean": mean, "total": np.full(len(y), sigma2)}


def _summarise(y, folds, preds, k) -> tuple:
    """Pooled and per-fold scores of one method from its per-fold predictions of all cells."""
    oof_mean, oof_var = np.empty(len(y)), np.empty(len(y))
    per_fold = []
    for (_, test), pred in zip(folds, preds, strict=True):
        oof_mean[test], oof_var[test] = pred["mean"][test], pred["total"][test]
        per_fold.append(_scores(y[test], pred["mean"][test], pred["total"][test]))
    pooled = _scores(y, oof_mean, oof_var)
    all_means = np.stack([p["mean"] for p in preds])
    fold_means = all_means.mean(axis=1)
    pooled.update(
        r2_fold_mean=float(np.mean([f["r2"] for f in per_fold])),
        r2_fold_sd=float(np.std([f["r2"] for f in per_fold])),
        rmse_fold_mean=float(np.mean([f["rmse"] for f in per_fold])),
        rmse_fold_sd=float(np.std([f["rmse"] for f in per_fold])),
        cross_fold_sd=float(np.mean(all_means.std(axis=0))),
        fold_mean_sd=float(np.std(fold_means)),
        mean_prediction=float(np.mean(fold_means)),
        n_cells=len(y), k=k,
    )
    return pooled, per_fold, oof_mean, oof_var


def cross_validate(training_set: TrainingSet, params: Hyperparameters | dict | None = None, *, folds: str = "random",
                   k: int | None = None, block_degrees: float | None = None,
                   client: Client | LazyClient | None = None, seed: int | None = None,
                   baselines: bool = True, samples: int | None = None, validation_fraction: float | None = None,
                   gbt: dict | None = None, max_epochs: int | None = None,
                   fit_model: Callable[..., FittedBNN] | None = None, threads: int | None = None,
                   progress: bool = True) -> dict:
    """K-fold cross-validation of the network (and baselines) on one fold scheme.

    Parameters
    ----------
    training_set : seisgrid.ghf.dataset.TrainingSet
        Training cells (features, target in mW m⁻², lat/lon).
    params : seisgrid.ghf.bnn.Hyperparameters or dict, optional
        Network settings; default ``Hyperparameters()``. Fold ``i`` trains with ``seed = params.seed + i``.
    folds : {"random", "spatial"}
        Fold scheme (:func:`random_folds`, :func:`spatial_block_folds`).
    k, block_degrees, seed, samples, validation_fraction
        Folds (``crossval.k``, 5), block edge in degrees (``crossval.block_degrees``, 5.0), seed of folds
        and inner splits (``crossval.seed``, 0), Monte Carlo samples per prediction (``crossval.mc_samples``,
        50) and the share of each fold's training part held out for early stopping
        (``crossval.validation_fraction``, 0.1).
    client : distributed.Client or LazyClient, optional
        One task per fold's network; None: in this process.
    baselines : bool
        Also fit linear regression and gradient-boosted trees (:func:`fit_baseline`) on the same folds.
    gbt : dict, optional
        HistGradientBoostingRegressor settings; default :func:`gbt_settings`.
    max_epochs : int, optional
        Override of ``params.max_epochs``.
    fit_model : callable, optional
        Replaces :func:`seisgrid.ghf.bnn.fit_bnn` (same call, same ``predict`` contract): other networks,
        tests. Must be importable on the workers when a client is used.
    threads : int, optional
        Torch threads per fit (``fit_bnn``'s ``threads``).
    progress : bool
        Progress bar over folds.

    Returns
    -------
    dict
        ``scheme``, ``k``, ``block_degrees``, ``seed``, ``n_cells``, ``params`` (dict), ``methods``
        (per method: pooled ``r2``, ``rmse``, ``nrmse``, ``coverage_68``, ``coverage_95``, per-fold
        ``r2_fold_mean``/``_sd``, ``rmse_fold_mean``/``_sd``, ``cross_fold_sd``, ``fold_mean_sd``,
        ``mean_prediction``), ``folds`` (per fold: sizes, ``best_epoch``, ``epochs`` and each method's
        scores), ``test_indices`` and ``predictions`` (per method: out-of-fold ``mean`` and ``variance``
        arrays) and ``models`` (the fitted fold networks, in fold order). Not JSON as a whole:
        :func:`train_ensemble` writes the JSON parts.
    """
    k = int(_setting("k", k, 5))
    block_degrees = float(_setting("block_degrees", block_degrees, 5.0))
    seed = int(_setting("seed", seed, 0))
    samples = int(_setting("mc_samples", samples, 50))
    validation_fraction = float(_setting("validation_fraction", validation_fraction, 0.1))
    if fit_model is None:
        params = _hyperparameters(params, max_epochs)
    X = training_set.features.to_numpy(dtype=np.float32)
    y = np.asarray(training_set.target, dtype=np.float64)
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise SeisgridError("training set has missing or infinite feature/target values; rebuild it with "
                            "load_training_set (it keeps only complete cells)")
    fold_pairs = make_folds(folds, training_set.lat, training_set.lon, k, block_degrees, seed)
    splits = [inner_split(train, validation_fraction, seed + 1000 + f) for f, (train, _) in enumerate(fold_pairs)]
    items = [(f, fit_idx, val_idx) for f, (fit_idx, val_idx) in enumerate(splits)]
    logger.info("cross-validation (%s folds, k=%d): %d cells, fold sizes %s", folds, k, len(y),
                [len(t) for _, t in fold_pairs])
    gbt = (gbt or gbt_settings()) if baselines else None
    results = run_tasks(client, _fold_task, items,
                        args=(X, y, params, samples, fit_model, threads, baselines, gbt, seed),
                        desc=f"{folds} folds", unit="fold", progress=progress)
    preds = {method: [r["preds"][method] for r in results] for method in results[0]["preds"]}
    methods, per_fold, predictions = {}, {}, {}
    for method, method_preds in preds.items():
        methods[method], per_fold[method], oof_mean, oof_var = _summarise(y, fold_pairs, method_preds, k)
        predictions[method] = {"mean": oof_mean, "variance": oof_var}
    fold_rows = []
    for f, ((_, test), (fit_idx, val_idx), result) in enumerate(zip(fold_pairs, splits, results, strict=True)):
        row = {"fold": f, "n_train": len(fit_idx), "n_early_stopping": len(val_idx), "n_test": len(test),
               "best_epoch": result["best_epoch"], "epochs": result["epochs"]}
        row.update({method: per_fold[method][f] for method in per_fold})
        fold_rows.append(row)
    return {"scheme": folds, "k": k, "block_degrees": block_degrees if folds == "spatial" else None,
            "seed": seed, "n_cells": len(y), "validation_fraction": validation_fraction, "mc_samples": samples,
            "params": _params_dict(params), "gbt": gbt if baselines else None, "methods": methods,
            "folds": fold_rows, "test_indices": [t for _, t in fold_pairs], "predictions": predictions,
            "models": [_restore(r["model"]) for r in results]}


# ------------------------------------------------------------------------------------------ ensemble


def params_from_search(path: str | os.PathLike[str]) -> dict:
    """The best hyperparameters of a ``seisgrid ghf search`` result (``search.json``'s ``best``)."""
    try:
        report = storage.read_json(str(path))
    except FileNotFoundError:
        raise StorageError(f"{path}: no search.json there (seisgrid ghf search --out writes one)") from None
    best = report.get("best") if isinstance(report, dict) else None
    if isinstance(best, dict) and isinstance(best.get("params"), dict):
        best = best["params"]
    if not isinstance(best, dict) or not best:
        raise SeisgridError(f"{path}: no 'best' hyperparameters in it (expected the output of seisgrid ghf search)")
    from seisgrid.ghf.bnn import Hyperparameters

    names = {f.name for f in dataclasses.fields(Hyperparameters)}
    return {key: value for key, value in best.items() if key in names}


def _table_rows(runs: dict) -> list:
    rows = []
    for method in METHODS:
        for scheme in SCHEMES:
            result = runs.get(scheme)
            if result is None or method not in result["methods"]:
                continue
            scores = result["methods"][method]
            rows.append({"method": method, "scheme": scheme,
                         **{key: scores.get(key) for key in TABLE_COLUMNS[2:]}})
    return rows


def overstatement(runs: dict) -> dict:
    """How much random folds overstate skill relative to spatial-block folds, per method.

    ``r2`` = R²(random) − R²(spatial); ``rmse`` = RMSE(spatial) − RMSE(random) (mW m⁻²) and ``rmse_percent``
    the same relative to the random-fold RMSE; positive values mean the random folds look better.
    """
    out: dict[str, dict[str, float]] = {}
    if not all(s in runs for s in SCHEMES):
        return out
    for method in runs["random"]["methods"]:
        a, b = runs["random"]["methods"][method], runs["spatial"]["methods"].get(method)
        if b is None:
            continue
        out[method] = {"r2": a["r2"] - b["r2"], "rmse": b["rmse"] - a["rmse"],
                       "rmse_percent": 100.0 * (b["rmse"] - a["rmse"]) / a["rmse"],
                       "nrmse": b["nrmse"] - a["nrmse"]}
    return out


def markdown_table(rows: list, overstated: dict | None = None) -> str:
    """The cross-validation table (rows of :func:`train_ensemble`'s ``table``) as Markdown."""
    def fmt(value, digits):
        return ("–" if value is None or (isinstance(value, float) and not math.isfinite(value))
                else f"{value:.{digits}f}")

    lines = [("| method | folds | R² | RMSE (mW m⁻²) | NRMSE | fold sd of R² | fold sd of RMSE | cross-fold sd "
              "(mW m⁻²) | in 68 % interval | in 95 % interval |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {METHOD_LABELS.get(r['method'], r['method'])} | {r['scheme']} | {fmt(r['r2'], 3)} | "
                     f"{fmt(r['rmse'], 2)} | {fmt(r['nrmse'], 3)} | {fmt(r['r2_fold_sd'], 3)} | "
                     f"{fmt(r['rmse_fold_sd'], 2)} | {fmt(r['cross_fold_sd'], 2)} | {fmt(r['coverage_68'], 3)} | "
                     f"{fmt(r['coverage_95'], 3)} |")
    if overstated:
        lines.append("")
        lines.append("Random folds overstate skill relative to spatial-block folds by:")
        for method, d in overstated.items():
            lines.append(f"- {METHOD_LABELS.get(method, method)}: R² +{d['r2']:.3f}, RMSE "
                         f"{d['rmse']:.2f} mW m⁻² lower ({d['rmse_percent']:.1f} % of the random-fold RMSE)")
    return "\n".join(lines) + "\n"


def _json_bytes(value) -> bytes:
    def clean(v):
        if isinstance(v, dict):
            return {str(key): clean(x) for key, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.ndarray):
            return clean(v.tolist())
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(value), indent=1).encode()


def _load_model(url: str):
    from seisgrid.ghf.bnn import FittedBNN

    try:
        return FittedBNN.load(url)
    except SeisgridError as exc:
        raise StorageError(f"{url}: ensemble model missing or unreadable ({exc}); rerun seisgrid ghf train") from exc


def _spatial_calibration(data, spatial: dict, out: str) -> tuple[dict, dict]:
    """Model-error calibration and area of applicability from the spatial-block run (written beside the models)."""
    from seisgrid.ghf.applicability import fit_applicability, one_hot

    predicted = spatial["predictions"]["bnn"]
    calibration = {"scheme": "spatial", **calibrate(data.target, predicted["mean"], predicted["variance"],
                                                    spatial["test_indices"], levels=LEVELS)}
    categories = {name: sorted(int(v) for v in np.unique(data.features[name])) for name in data.categorical}
    labels = np.empty(len(data), dtype=int)
    for fold, held_out in enumerate(spatial["test_indices"]):
        labels[held_out] = fold
    aoa = fit_applicability(one_hot(data.features, list(data.categorical), categories), labels)
    path = storage.join(out, "applicability.json")
    storage.write_bytes(path, _json_bytes(aoa.to_dict()))
    applicability = {"file": "applicability.json", "folds": "spatial", "categories": categories,
                     "threshold": aoa.threshold, "mean_distance": aoa.mean_distance,
                     "training_outside": float(np.mean(aoa.training_di > aoa.threshold))}
    return calibration, applicability


def _calibration_markdown(calibration: dict) -> str:
    before, after = calibration["coverage"], calibration["coverage_calibrated"]
    levels = " / ".join(f"{round(level * 100)} %" for level in calibration["levels"])
    return (f"\nSpatial-block calibration: model-error sd τ = {calibration['model_error_sd']:.2f} mW m⁻² "
            f"(folds {', '.join(f'{t:.2f}' for t in calibration['fold_model_error_sd'])}); coverage of the "
            f"{levels} intervals {' / '.join(f'{v:.3f}' for v in before)} → "
            f"{' / '.join(f'{v:.3f}' for v in after)} (cross-fitted).\n")


def train_ensemble(features_store: str | xr.Dataset, heatflow_store: str | xr.Dataset, out: str | os.PathLike[str],
                   *, params: Hyperparameters | dict | None = None, search: str | os.PathLike[str] | None = None,
                   k: int | None = None, block_degrees: float | None = None,
                   client: Client | LazyClient | None = None, variables: Sequence[str] | None = None,
                   regional_km: Sequence[float] | str | None = None,
                   seed: int | None = None, mc_samples: int | None = None, validation_fraction: float | None = None,
                   ensemble_folds: str | None = None, max_epochs: int | None = None,
                   gbt_max_iter: int | None = None, gbt_learning_rate: float | None = None,
                   gbt_max_leaf_nodes: int | None = None, gbt_min_samples_leaf: int | None = None,
                   gbt_l2_regularization: float | None = None, fit_model: Callable[..., FittedBNN] | None = None,
                   threads: int | None = None, progress: bool = True) -> dict:
    """Cross-validate with random and spatial-block folds and write the ensemble (``seisgrid ghf train``).

    Parameters
    ----------
    features_store, heatflow_store : str or xarray.Dataset
        Grids of ``seisgrid ghf features`` / ``heatflow`` (see :func:`seisgrid.ghf.dataset.load_training_set`).
    out : str
        Folder (path or URL) for ``model_{i}.pt``, ``ensemble.json``, ``crossval.json`` and ``crossval.md``.
    params : Hyperparameters or dict, optional
        Network settings; default: ``search``'s best, else ``Hyperparameters()``.
    search : str, optional
        ``search.json`` of ``seisgrid ghf search``; its ``best`` hyperparameters are trained.
    k, block_degrees, seed, mc_samples, validation_fraction, max_epochs
        As in :func:`cross_validate` (``crossval.*`` settings); ``max_epochs`` caps the network's epochs.
    ensemble_folds : {"random", "spatial"}
        Whose fold models form the ensemble (``crossval.ensemble_folds``, random as in the study).
    client : distributed.Client or LazyClient, optional
        Fold networks as Dask tasks.
    variables : list of str, optional
        Features; default the VIF selection.
    regional_km : list of float or str, optional
        Radii of regional means, as in :func:`seisgrid.ghf.dataset.load_training_set`.
    gbt_max_iter, gbt_learning_rate, gbt_max_leaf_nodes, gbt_min_samples_leaf, gbt_l2_regularization
        Gradient-boosted-trees baseline settings (``crossval.gbt_*``).
    fit_model, threads, progress
        As in :func:`cross_validate`.

    Returns
    -------
    dict
        JSON-able: ``out``, ``n_cells``, ``features``, ``params``, ``table`` (rows method × scheme with
        ``r2``, ``rmse``, ``nrmse``, ``r2_fold_sd``, ``rmse_fold_sd``, ``cross_fold_sd``, ``coverage_68``,
        ``coverage_95``, ``mean_prediction``), ``overstatement`` (:func:`overstatement`), ``folds``
        (per scheme, per fold), ``ensemble`` (``folds``, ``models``, ``manifest`` paths), ``crossval_json``,
        ``crossval_md``, ``markdown`` (the table) and ``goal`` (validation RMSE ≤ 18 mW m⁻²).
    """
    from seisgrid.ghf.dataset import load_training_set

    ensemble_folds = str(_setting("ensemble_folds", ensemble_folds, "random"))
    if ensemble_folds not in SCHEMES:
        raise ConfigError(f"ensemble_folds={ensemble_folds!r}: expected one of {list(SCHEMES)}")
    max_epochs = _setting("max_epochs", max_epochs, None)
    max_epochs = int(max_epochs) if max_epochs not in (None, "", "null") else None
    if params is None and search is not None:
        params = params_from_search(search)
    if fit_model is None:
        params = _hyperparameters(params, max_epochs)
    gbt = gbt_settings(max_iter=gbt_max_iter, learning_rate=gbt_learning_rate, max_leaf_nodes=gbt_max_leaf_nodes,
                       min_samples_leaf=gbt_min_samples_leaf, l2_regularization=gbt_l2_regularization)
    data = load_training_set(features_store, heatflow_store, variables, regional_km)
    runs = {}
    for scheme in SCHEMES:
        runs[scheme] = cross_validate(data, params, folds=scheme, k=k, block_degrees=block_degrees, client=client,
                                      seed=seed, samples=mc_samples, validation_fraction=validation_fraction,
                                      gbt=gbt, fit_model=fit_model, threads=threads, progress=progress)
    out = str(out).rstrip("/")
    chosen = runs[ensemble_folds]
    model_names = [f"model_{i}.pt" for i in range(len(chosen["models"]))]
    model_paths = [storage.join(out, name) for name in model_names]
    for model, path in zip(chosen["models"], model_paths, strict=True):
        model.save(path)  # FittedBNN.save: local path or URL
    calibration, applicability = _spatial_calibration(data, runs["spatial"], out)
    rows = _table_rows(runs)
    overstated = overstatement(runs)
    fold_metrics = {scheme: run["folds"] for scheme, run in runs.items()}
    manifest = {
        "features": list(data.names), "categorical": list(data.categorical), "params": chosen["params"],
        "folds": ensemble_folds, "k": chosen["k"], "seed": chosen["seed"], "block_degrees": chosen["block_degrees"],
        "models": model_names, "mc_samples": chosen["mc_samples"], "n_cells": len(data),
        "target": {"mean": float(np.mean(data.target)), "sd": float(np.std(data.target))},
        "fold_metrics": chosen["folds"], "scores": chosen["methods"]["bnn"],
        "variance": "total = within (mean of the models' aleatoric + epistemic) + between (variance of model means)",
        "calibration": calibration, "applicability": applicability,
    }
    manifest_path = storage.join(out, "ensemble.json")
    storage.write_bytes(manifest_path, _json_bytes(manifest))
    markdown = markdown_table(rows, overstated) + _calibration_markdown(calibration)
    bnn_random = runs["random"]["methods"]["bnn"]["rmse"]
    report = {
        "out": out, "n_cells": len(data), "features": list(data.names), "params": chosen["params"],
        "gbt": gbt, "k": chosen["k"], "block_degrees": runs["spatial"]["block_degrees"],
        "table": rows, "overstatement": overstated, "folds": fold_metrics, "calibration": calibration,
        "applicability": applicability,
        "cross_fold_sd_definition": "mean over all training cells of the population sd (ddof 0) of the k fold "
                                    "models' mean predictions; fold_mean_sd: sd of the k models' mean "
                                    "predictions over all cells",
        "ensemble": {"folds": ensemble_folds, "models": model_paths, "manifest": manifest_path},
        "goal": {"rmse_max": 18.0, "rmse_random": bnn_random, "met": bool(bnn_random <= 18.0), "study_rmse": 19.65},
    }
    report["crossval_json"] = storage.join(out, "crossval.json")
    report["crossval_md"] = storage.join(out, "crossval.md")
    report["markdown"] = markdown
    storage.write_bytes(report["crossval_json"], _json_bytes(report))
    storage.write_bytes(report["crossval_md"], markdown.encode())
    logger.info("cross-validation written to %s", out)
    return json.loads(_json_bytes(report))


def load_ensemble(out: str | os.PathLike[str]) -> tuple[list, dict]:
    """The ensemble written by :func:`train_ensemble`: ``(models, manifest)`` (``ensemble.json`` as a dict)."""
    manifest_path = storage.join(str(out).rstrip("/"), "ensemble.json")
    try:
        manifest = storage.read_json(manifest_path)
    except FileNotFoundError:
        raise StorageError(f"{manifest_path}: no ensemble there (seisgrid ghf train --out writes one)") from None
    names = manifest.get("models") or []
    if not names:
        raise StorageError(f"{manifest_path}: lists no models")
    models = [_load_model(storage.join(str(out).rstrip("/"), name)) for name in names]
    return models, manifest
