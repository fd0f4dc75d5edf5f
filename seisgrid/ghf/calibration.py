"""Calibrating the network's intervals under spatial-block cross-validation: the model-error term.

The Bayesian network's predictive variance (aleatoric + epistemic) is calibrated where the test cells
resemble the training cells: under random folds 70 % / 93 % of held-out cells fall in its 68 % / 95 %
intervals. Under spatial-block folds, which hold out whole 5° × 5° regions as a map of Antarctica must,
the intervals are too narrow (62–64 % / 88–90 %): away from the training cells the network's mean is
wrong by more than its epistemic variance admits. That missing part is the **model error** of the mean,
an additive variance τ²:

    calibrated variance = aleatoric + epistemic + τ².

τ is fitted on the out-of-fold predictions of the spatial-block cross-validation as the value whose
Gaussian intervals come closest to their nominal coverage at every level at once (the smallest
largest-deviation over ``levels``, 68 % and 95 %). Coverage is a step function of τ, so it is searched on
a fixed grid (``step`` mW m⁻² wide, from 0 to three times the residual sd) rather than by a gradient-based
optimiser. A variance-matching fit (mean of z² = 1) was tried first: the residuals' heavy tails then
push the 68 % interval to 75 % coverage.

Honest coverage of the calibrated intervals comes from **cross-fitting**: each fold's τ is fitted on the
other folds' held-out cells only and applied to its own (:func:`calibrate`), so no cell's interval was
tuned on that cell.

τ² is attributed to the mapped mean, not to single measurements: the aleatoric variance is the scatter
of a measurement around its cell's mean and is fitted directly by the network's loss, whereas the
network's error about the cell mean is exactly what spatial-block folds expose. The map therefore reports
``mean_sd = sqrt(epistemic + between + τ²)`` (uncertainty of the mapped mean) beside the calibrated spread
of one measurement (``measurement_sd``), see :mod:`seisgrid.ghf.mapping`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

from seisgrid.errors import SeisgridError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

LEVELS = (0.68, 0.95)


def coverage(y: ArrayLike, mean: ArrayLike, variance: ArrayLike, levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Share of ``y`` inside the central Gaussian intervals ``mean ± z·sqrt(variance)`` at each level.

    ``z = Φ⁻¹((1 + level)/2)``; a zero variance is an interval of one point. No input checks here (the
    callers check): :func:`seisgrid.ghf.crossval.interval_coverage` is the checked, dict-returning form.
    """
    distance = np.abs(np.asarray(y, dtype=float) - np.asarray(mean, dtype=float))
    sd = np.sqrt(np.asarray(variance, dtype=float))
    return np.array([float(np.mean(distance <= norm.ppf(0.5 + float(level) / 2.0) * sd)) for level in levels])


def _checked(y, mean, variance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, mean, variance = (np.asarray(a, dtype=float).ravel() for a in (y, mean, variance))
    if not y.shape == mean.shape == variance.shape:
        raise SeisgridError(f"calibration: {y.size} observations, {mean.size} means, {variance.size} variances")
    if y.size < 2:
        raise SeisgridError(f"calibration: {y.size} held-out cells, need at least 2")
    ok = np.isfinite(y) & np.isfinite(mean) & np.isfinite(variance)
    if not ok.all():
        raise SeisgridError(f"calibration: {int((~ok).sum())} held-out cells have non-finite values")
    if np.any(variance <= 0):
        raise SeisgridError("calibration: predictive variances must be positive")
    return y, mean, variance


def fit_model_error(y: ArrayLike, mean: ArrayLike, variance: ArrayLike, *, levels: Sequence[float] = LEVELS,
                    step: float = 0.05) -> float:
    """The model-error sd τ (units of ``y``) that brings the intervals' coverage closest to ``levels``.

    Parameters
    ----------
    y, mean, variance : array_like
        (n,) held-out observations, predictive means and predictive variances.
    levels : sequence of float
        Nominal coverages; τ minimises the largest ``|coverage − level|`` over them (ties: the smallest τ).
    step : float
        Grid spacing of τ, units of ``y``.

    Returns
    -------
    float
        τ ≥ 0; 0 when the intervals are already as wide as they should be (or too wide: τ never narrows).
    """
    y, mean, variance = _checked(y, mean, variance)
    residual = y - mean
    taus = np.arange(0.0, 3.0 * float(np.std(residual)) + step, step)
    target = np.asarray(levels, dtype=float)
    errors = [float(np.max(np.abs(coverage(y, mean, variance + tau * tau, levels) - target))) for tau in taus]
    return float(taus[int(np.argmin(errors))])


def calibrate(y: ArrayLike, mean: ArrayLike, variance: ArrayLike, test_indices: Sequence[ArrayLike], *,
              levels: Sequence[float] = LEVELS, step: float = 0.05) -> dict:
    """Fit τ on out-of-fold predictions and measure the calibrated coverage by cross-fitting.

    Parameters
    ----------
    y, mean, variance : array_like
        (n,) observations and the out-of-fold predictive means and variances of a cross-validation.
    test_indices : list of array_like
        Each fold's held-out rows (they partition ``0 … n−1``).
    levels, step
        As in :func:`fit_model_error`.

    Returns
    -------
    dict
        JSON-ready: ``model_error_sd`` (τ fitted on every held-out cell: the value to apply to new
        predictions), ``fold_model_error_sd`` (τ of each fold, fitted on the other folds),
        ``levels``, ``coverage`` (before), ``coverage_calibrated`` (cross-fitted: each fold's cells with
        the τ of the other folds) and ``method``.
    """
    y, mean, variance = _checked(y, mean, variance)
    folds = [np.asarray(t, dtype=int) for t in test_indices]
    if sum(len(t) for t in folds) != y.size or np.unique(np.concatenate(folds)).size != y.size:
        raise SeisgridError("calibration: test_indices must partition the held-out cells")
    crossed = np.empty_like(variance)
    fold_taus = []
    for held_out in folds:
        rest = np.setdiff1d(np.arange(y.size), held_out)
        tau = fit_model_error(y[rest], mean[rest], variance[rest], levels=levels, step=step)
        fold_taus.append(tau)
        crossed[held_out] = variance[held_out] + tau * tau
    tau = fit_model_error(y, mean, variance, levels=levels, step=step)
    return {
        "model_error_sd": tau,
        "fold_model_error_sd": fold_taus,
        "levels": [float(level) for level in levels],
        "coverage": coverage(y, mean, variance, levels).tolist(),
        "coverage_calibrated": coverage(y, mean, crossed, levels).tolist(),
        "method": ("calibrated variance = predictive variance + tau^2; tau minimises the largest deviation of "
                   f"the Gaussian intervals' coverage from {[float(v) for v in levels]} on the out-of-fold "
                   f"predictions (grid step {step:g}); coverage_calibrated is cross-fitted (each fold with the "
                   "tau of the other folds)"),
    }
