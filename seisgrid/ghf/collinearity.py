"""Collinearity of the heat-flow features: variance inflation factors and iterative feature selection.

``VIF_i = 1 / (1 - R_i²)``, where ``R_i²`` is the coefficient of determination of an ordinary least-squares
regression (with intercept) of feature ``i`` on all the other features. The VIFs are the diagonal of the
inverse of the features' correlation matrix, which is what :func:`variance_inflation` computes (from a
singular value decomposition of the standardised table, so that exactly collinear features are recognised
and get ``inf`` instead of a meaningless huge number).

As in Liu et al. (2026), the feature with the highest VIF is dropped while any VIF exceeds the threshold
(``seisgrid.vif.threshold``, 8.0), recomputing after each drop; the VIFs are computed over the *training
cells* only (grid cells with a heat-flow value and every feature). The label-encoded tectonic class takes
part as a numeric column, as it did among the study's 15 candidates.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from seisgrid import config
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.figures import new_figure, save_png
from seisgrid.ghf.grid import open_grid

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

logger = logging.getLogger("seisgrid")

HEATFLOW_VARIABLE = "heatflow"

# Relative size (to the largest) below which an eigenvalue of the correlation matrix counts as zero:
# a feature loading on such a direction is an exact linear combination of the others (R² > 1 - 1e-10).
_COLLINEAR_RTOL = 1e-10


def threshold_default() -> float:
    """VIF above which features are dropped (``seisgrid.vif.threshold``, 8.0)."""
    return float(config.get("vif.threshold", 8.0))


def variance_inflation(frame: pd.DataFrame) -> pd.Series:
    """Variance inflation factor of every column of ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per observation (training cell), one numeric column per feature; no missing values.

    Returns
    -------
    pandas.Series
        ``VIF_i = 1 / (1 - R_i²)`` per column (dimensionless, ≥ 1), indexed by column name. Columns that are
        an exact linear combination of the others get ``inf`` (and a warning names them). A single column has
        VIF 1.

    Raises
    ------
    SeisgridError
        When the table is empty, has fewer rows than columns + 2, holds non-finite values, or has a constant
        column (its correlation with anything is undefined; the message names it).
    """
    if frame.shape[1] == 0:
        raise SeisgridError("VIF: the feature table has no columns; select at least one feature")
    columns = [str(c) for c in frame.columns]
    try:
        x = frame.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise SeisgridError(f"VIF: the feature table has non-numeric columns ({exc})") from exc
    n, p = x.shape
    if n < p + 2:
        raise SeisgridError(
            f"VIF: {n} rows for {p} features; regressing each feature on the others needs at least "
            f"{p + 2} rows (cells with a heat-flow value and every feature)"
        )
    bad = [c for c, ok in zip(columns, np.isfinite(x).all(axis=0), strict=True) if not ok]
    if bad:
        raise SeisgridError(
            f"VIF: feature(s) {', '.join(bad)} hold NaN or infinite values; drop those rows first "
            "(training_table keeps only cells where every feature is finite)"
        )
    std = x.std(axis=0)
    constant = [c for c, s, m in zip(columns, std, np.abs(x).max(axis=0), strict=True)
                if s <= 1e-12 * max(m, 1e-300)]
    if constant:
        raise SeisgridError(
            f"VIF: feature(s) {', '.join(constant)} are constant over the {n} training cells, so their "
            "VIF is undefined; remove them from the candidate features (seisgrid.vif.exclude)"
        )
    if p == 1:
        return pd.Series([1.0], index=columns, name="vif")
    z = (x - x.mean(axis=0)) / (std * np.sqrt(n))  # zᵀz is the correlation matrix
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    eig = s**2  # eigenvalues of the correlation matrix, descending; columns of vt.T the eigenvectors
    null = eig <= _COLLINEAR_RTOL * eig[0]
    loadings = vt.T**2
    vif = (loadings[:, ~null] / eig[~null]).sum(axis=1)
    collinear = loadings[:, null].sum(axis=1) > 1e-8
    vif[collinear] = np.inf
    if collinear.any():
        names = [c for c, flag in zip(columns, collinear, strict=True) if flag]
        logger.warning("VIF: feature(s) %s are exact linear combinations of the others (VIF = inf)",
                       ", ".join(names))
    return pd.Series(np.maximum(vif, 1.0), index=columns, name="vif")


def select_features(frame: pd.DataFrame, threshold: float | None = None) -> dict:
    """Drop the feature with the highest VIF while any VIF exceeds ``threshold``, recomputing each time.

    Parameters
    ----------
    frame : pandas.DataFrame
        Training table, one numeric column per candidate feature (:func:`training_table`).
    threshold : float, optional
        VIF limit; a feature is dropped only when its VIF is strictly above it. Default
        ``seisgrid.vif.threshold`` (8.0).

    Returns
    -------
    dict
        ``initial``: ``{feature: VIF}`` of all candidates; ``final``: ``{feature: VIF}`` of the kept ones;
        ``dropped``: ``[{"feature", "vif", "step"}, ...]`` in drop order (``vif`` as it was when dropped,
        ``step`` from 1); ``threshold``. VIFs are floats and may be ``inf``. On ties (e.g. two identical
        columns, both ``inf``) the first column in table order goes.
    """
    threshold = threshold_default() if threshold is None else float(threshold)
    if not threshold >= 1.0:
        raise ConfigError(f"VIF threshold {threshold}: must be ≥ 1 (VIF is never below 1)")
    vif = variance_inflation(frame)
    initial = {k: float(v) for k, v in vif.items()}
    kept = list(vif.index)
    dropped: list[dict[str, Any]] = []
    while len(kept) > 1 and vif.max() > threshold:
        worst = str(vif.idxmax())
        dropped.append({"feature": worst, "vif": float(vif[worst]), "step": len(dropped) + 1})
        logger.info("VIF step %d: dropping %s (VIF %.4g > %g)", len(dropped), worst, vif[worst], threshold)
        kept.remove(worst)
        vif = variance_inflation(frame[[c for c in frame.columns if str(c) in kept]])
    return {"initial": initial, "final": {k: float(v) for k, v in vif.items()}, "dropped": dropped,
            "threshold": threshold}


def excluded_patterns() -> list[str]:
    """Names (shell-style patterns) never used as VIF candidates (``seisgrid.vif.exclude``)."""
    value = config.get("vif.exclude", []) or []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def candidate_features(ds: xr.Dataset, exclude: Iterable[str] | None = None) -> list[str]:
    """The data variables of ``ds`` that are candidate model features, in dataset order.

    Every numeric (float or integer, not boolean) variable on the ``(lat, lon)`` grid whose name matches
    none of the ``exclude`` patterns (default :func:`excluded_patterns`: the heat-flow target and its
    counts and weights, the land fraction and other helper variables). Categorical variables (with
    ``flag_values``, e.g. the tectonic class) are kept as label-encoded numbers, as in the study.

    Parameters
    ----------
    ds : xarray.Dataset
        Feature grid (may also hold the heat-flow variables).
    exclude : list of str, optional
        Shell-style name patterns to leave out (``fnmatch``).
    """
    patterns = excluded_patterns() if exclude is None else list(exclude)
    out = []
    for name, da in ds.data_vars.items():
        if set(da.dims) != {"lat", "lon"} or da.dtype.kind not in "fiu":
            continue
        if any(fnmatch.fnmatchcase(str(name), pat) for pat in patterns):
            continue
        out.append(str(name))
    categorical = [n for n in out if "flag_values" in ds[n].attrs]
    if categorical:
        logger.info("VIF: categorical feature(s) %s enter as label-encoded numbers (as in the study)",
                    ", ".join(categorical))
    return out


def _check_same_grid(features: xr.Dataset, heatflow: xr.Dataset) -> None:
    for coord in ("lat", "lon"):
        if coord not in features.coords or coord not in heatflow.coords:
            raise SeisgridError(f"VIF: features and heat flow must both have a '{coord}' coordinate "
                                "(the seisgrid.ghf.grid grid)")
        a, b = np.asarray(features[coord]), np.asarray(heatflow[coord])
        if a.shape != b.shape or not np.allclose(a, b):
            raise SeisgridError(
                f"VIF: the feature grid and the heat-flow grid differ in '{coord}' ({a.size} vs {b.size} "
                "values); grid both on the same seisgrid.ghf resolution"
            )


def training_table(features: xr.Dataset, heatflow: xr.Dataset, variables: Iterable[str] | None = None, *,
                   quiet: bool = False) -> pd.DataFrame:
    """Feature values at the training cells: cells with a finite heat flow and every feature finite.

    Parameters
    ----------
    features : xarray.Dataset
        Feature grid on the :mod:`seisgrid.ghf.grid` ``(lat, lon)`` grid.
    heatflow : xarray.Dataset
        Gridded heat flow on the same grid, with the variable ``heatflow`` (mW m⁻²; NaN where no data).
    variables : list of str, optional
        Features to use; default :func:`candidate_features` of ``features``.
    quiet : bool
        Say how many cells lack a feature value at DEBUG instead of WARNING (for a caller that has
        already warned about the same cells).

    Returns
    -------
    pandas.DataFrame
        One row per training cell (index ``(lat, lon)``, degrees, in grid order), one column per feature.
        ``attrs`` hold ``n_heatflow_cells`` (cells with a heat-flow value) and ``missing`` (per feature, how
        many of those cells it lacks); such cells are left out and a warning says how many.
    """
    if HEATFLOW_VARIABLE not in heatflow:
        raise SeisgridError(f"VIF: the heat-flow dataset has no '{HEATFLOW_VARIABLE}' variable "
                            f"(it has {', '.join(map(str, heatflow.data_vars)) or 'none'})")
    _check_same_grid(features, heatflow)
    variables = candidate_features(features) if variables is None else [str(v) for v in variables]
    if not variables:
        raise SeisgridError("VIF: no candidate features in the feature dataset "
                            f"(variables: {', '.join(map(str, features.data_vars)) or 'none'})")
    missing_vars = [v for v in variables if v not in features]
    if missing_vars:
        raise SeisgridError(f"VIF: feature(s) {', '.join(missing_vars)} not in the feature dataset "
                            f"(it has {', '.join(map(str, features.data_vars))})")
    target = heatflow[HEATFLOW_VARIABLE].transpose("lat", "lon").values.astype(float)
    has_target = np.isfinite(target)
    keep = has_target.copy()
    columns, missing = {}, {}
    for name in variables:
        da = features[name]
        if set(da.dims) != {"lat", "lon"}:
            raise SeisgridError(f"VIF: feature {name} has dims {da.dims}, expected (lat, lon)")
        values = da.transpose("lat", "lon").values.astype(float)
        finite = np.isfinite(values)
        missing[name] = int((has_target & ~finite).sum())
        keep &= finite
        columns[name] = values
    rows, cols = np.nonzero(keep)
    lat, lon = np.asarray(features["lat"]), np.asarray(features["lon"])
    index = pd.MultiIndex.from_arrays([lat[rows], lon[cols]], names=["lat", "lon"])
    table = pd.DataFrame({name: values[rows, cols] for name, values in columns.items()}, index=index)
    n_target = int(has_target.sum())
    if len(table) < n_target:
        worst = {k: v for k, v in missing.items() if v}
        (logger.debug if quiet else logger.warning)(
            "training cells: %d of %d heat-flow cells lack a feature value and are left out (%s)",
            n_target - len(table), n_target, ", ".join(f"{k}: {v}" for k, v in worst.items()))
    table.attrs.update(n_heatflow_cells=n_target, missing=missing)
    return table


def plot_vif(initial: dict, final: dict, path: str | os.PathLike[str], threshold: float | None = None,
             dpi: int | None = None) -> str:
    """Bar chart of the VIFs before and after selection (log scale, threshold line), like the study's Fig. 3.

    Parameters
    ----------
    initial, final : dict
        ``{feature: VIF}`` before and after the iterative drop (:func:`select_features`).
    path : str
        PNG to write (local path or URL).
    threshold : float, optional
        Drawn as a dashed line; default ``seisgrid.vif.threshold``.
    dpi : int, optional
        Default ``seisgrid.maps.dpi``.

    Returns
    -------
    str
        ``path``.
    """
    threshold = threshold_default() if threshold is None else float(threshold)
    names = list(initial)
    before = np.array([initial[n] for n in names], dtype=float)
    after = np.array([final.get(n, np.nan) for n in names], dtype=float)
    finite = np.concatenate([before[np.isfinite(before)], after[np.isfinite(after)], [threshold]])
    cap = 10 ** np.ceil(np.log10(finite.max()) + 1)  # where infinite VIFs are drawn
    x = np.arange(len(names))
    width = 0.4
    fig = new_figure((max(6.0, 0.55 * len(names) + 2.0), 4.5))
    ax = fig.add_subplot()
    ax.bar(x - width / 2, np.where(np.isinf(before), cap, before), width, label="initial", color="tab:gray")
    ax.bar(x + width / 2, np.where(np.isinf(after), cap, after), width, label="after selection",
           color="tab:blue")
    for i in np.nonzero(np.isinf(before))[0]:
        ax.text(x[i] - width / 2, cap, "∞", ha="center", va="bottom")
    for i in np.nonzero(np.isnan(after))[0]:
        ax.text(x[i] + width / 2, 1.0, "dropped", rotation=90, ha="center", va="bottom", fontsize=7,
                color="tab:red")
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_ylim(0.8, cap * 4)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("variance inflation factor")
    ax.set_title("Feature collinearity (VIF)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return save_png(fig, str(path), dpi)


def vif_report(features_store: str | os.PathLike[str], heatflow_store: str | os.PathLike[str],
               out_png: str | os.PathLike[str] | None = None, threshold: float | None = None,
               variables: Iterable[str] | None = None) -> dict:
    """VIF selection over the training cells of two grid stores (``seisgrid ghf vif``).

    Parameters
    ----------
    features_store, heatflow_store : str
        Zarr stores (local paths or URLs; may be the same store) on the same ``(lat, lon)`` grid.
    out_png : str, optional
        Bar chart to write (:func:`plot_vif`); none when not given.
    threshold : float, optional
        Default ``seisgrid.vif.threshold`` (8.0).
    variables : list of str, optional
        Candidate features; default :func:`candidate_features`.

    Returns
    -------
    dict
        ``initial``, ``final``, ``dropped``, ``threshold`` (:func:`select_features`), ``n_cells`` (training
        cells), ``n_heatflow_cells``, ``missing`` (per feature) and ``png`` (path or None).
    """
    features = open_grid(features_store, "feature grid")
    heatflow = open_grid(heatflow_store, "gridded heat-flow")
    table = training_table(features, heatflow, variables)
    result = select_features(table, threshold)
    png = plot_vif(result["initial"], result["final"], out_png, result["threshold"]) if out_png else None
    result.update(n_cells=len(table), n_heatflow_cells=table.attrs["n_heatflow_cells"],
                  missing=table.attrs["missing"], png=png)
    return result
