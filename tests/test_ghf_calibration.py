"""Model-error calibration of the network's intervals (seisgrid.ghf.calibration)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from seisgrid.errors import SeisgridError
from seisgrid.ghf import calibration


def overconfident(n=4000, tau=6.0, seed=0):
    """Residuals with variance 100 + tau², predicted variance 100: the model misses a tau² term."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, np.sqrt(100.0 + tau * tau), n)
    return y, np.zeros(n), np.full(n, 100.0)


def test_coverage_is_the_share_inside_the_gaussian_interval():
    y = np.array([0.0, 0.5, 1.5, 2.5])
    cov = calibration.coverage(y, np.zeros(4), np.ones(4), levels=(0.68, 0.95))
    assert cov.tolist() == [0.5, 0.75]  # z 0.994 and 1.960
    assert norm.ppf(0.84) < 1.0


def test_fit_model_error_recovers_the_missing_variance():
    y, mean, variance = overconfident()
    tau = calibration.fit_model_error(y, mean, variance)
    assert tau == pytest.approx(6.0, abs=1.2)
    cov = calibration.coverage(y, mean, variance + tau * tau)
    assert np.all(np.abs(cov - [0.68, 0.95]) <= 0.015)


def test_fit_model_error_never_narrows_wide_intervals():
    rng = np.random.default_rng(1)
    y = rng.normal(0.0, 5.0, 2000)
    assert calibration.fit_model_error(y, np.zeros_like(y), np.full_like(y, 100.0)) == 0.0


def test_calibrate_cross_fits_each_fold_on_the_others():
    y, mean, variance = overconfident(n=3000, seed=2)
    folds = np.array_split(np.arange(3000), 5)
    result = calibration.calibrate(y, mean, variance, folds)
    json.dumps(result)
    assert len(result["fold_model_error_sd"]) == 5
    for fold, tau in zip(folds, result["fold_model_error_sd"], strict=True):
        rest = np.setdiff1d(np.arange(3000), fold)
        assert tau == calibration.fit_model_error(y[rest], mean[rest], variance[rest])
    assert result["coverage"][0] < 0.62 and result["coverage"][1] < 0.92
    assert np.all(np.abs(np.array(result["coverage_calibrated"]) - [0.68, 0.95]) <= 0.03)


def test_bad_input_is_named():
    y, mean, variance = overconfident(n=10)
    with pytest.raises(SeisgridError, match="partition"):
        calibration.calibrate(y, mean, variance, [np.arange(5)])
    variance[3] = np.nan
    with pytest.raises(SeisgridError, match="non-finite"):
        calibration.fit_model_error(y, mean, variance)
    with pytest.raises(SeisgridError, match="positive"):
        calibration.fit_model_error(y[:3], mean[:3], np.zeros(3))
