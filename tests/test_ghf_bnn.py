"""Bayesian-output-layer network (seisgrid.ghf.bnn).

KL / NLL / ELBO against closed forms, MC variance decomposition on toy problems with known noise, scalers,
persistence, determinism.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from seisgrid import config
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf.bnn import (
    SEARCH_SPACE,
    BayesianLinear,
    FittedBNN,
    HeatFlowNet,
    Hyperparameters,
    elbo_loss,
    fit_bnn,
    gaussian_kl,
    gaussian_nll,
    validation_rmse,
)

SMALL = {"hidden_layers": 2, "neurons": 16, "batch_size": 64, "learning_rate": 5e-3, "max_epochs": 20,
         "patience": 5}


def _linear_data(n=300, p=3, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * [1.0, 10.0, 100.0][:p] + 50.0
    y = 60.0 + 5.0 * (X[:, 0] - 50.0) + 0.3 * (X[:, 1] - 50.0) + rng.normal(scale=noise, size=n)
    return X, y


@pytest.fixture(scope="module")
def small_fit():
    X, y = _linear_data()
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    return fit_bnn(frame.iloc[:240], y[:240], frame.iloc[240:], y[240:], SMALL, threads=1), frame, y


@pytest.fixture(scope="module")
def sine_fit():
    """Toy data y = sin(x) + ε, x in [-3, 3], ε ~ N(0, σ(x)²) with σ = 0.25 for x < 0 and 0.5 for x > 0.

    β = 1 / n_train (the exact ELBO per row). Dropout 0: noise of training mode (dropout, batch-norm
    batch statistics) is learnt by the variance head as if it were data noise, which biases the
    aleatoric variance high when the noise is small.
    """
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, size=1200)
    sigma = np.where(x < 0, 0.25, 0.5)
    y = np.sin(x) + rng.normal(size=x.size) * sigma
    params = {"hidden_layers": 2, "neurons": 32, "batch_size": 128, "learning_rate": 1e-2, "dropout": 0.0,
              "kl_weight": 1.0 / 1000, "max_epochs": 80, "patience": 10, "seed": 1}
    return fit_bnn(x[:1000, None], y[:1000], x[1000:, None], y[1000:], params, threads=1)


# ------------------------------------------------------------------------------------ closed forms


def test_kl_of_bayesian_linear_matches_closed_form_and_torch():
    torch.manual_seed(0)
    layer = BayesianLinear(4, 2, prior_variance=0.7)
    with torch.no_grad():
        layer.weight_mu.normal_()
        layer.weight_rho.uniform_(-3, 1)
        layer.bias_rho.uniform_(-3, 1)
    mus = torch.cat([layer.weight_mu.flatten(), layer.bias_mu.flatten()]).double()
    sds = torch.nn.functional.softplus(torch.cat([layer.weight_rho.flatten(), layer.bias_rho.flatten()])).double()
    by_hand = sum(math.log(math.sqrt(0.7) / s) + (s ** 2 + m ** 2) / (2 * 0.7) - 0.5
                  for m, s in zip(mus.tolist(), sds.tolist(), strict=True))
    q = torch.distributions.Normal(mus, sds)
    p = torch.distributions.Normal(torch.zeros_like(mus), torch.full_like(mus, math.sqrt(0.7)))
    reference = torch.distributions.kl_divergence(q, p).sum().item()
    assert layer.kl().item() == pytest.approx(by_hand, rel=1e-5)
    assert layer.kl().item() == pytest.approx(reference, rel=1e-5)
    assert gaussian_kl(torch.zeros(3), torch.ones(3) * math.sqrt(0.7), 0.7).item() == pytest.approx(0.0, abs=1e-6)


def test_nll_is_the_gaussian_log_density():
    mean = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    var = torch.tensor([1.0, 0.25, 4.0], dtype=torch.float64)
    y = torch.tensor([0.5, 1.5, 0.0], dtype=torch.float64)
    logpdf = [-0.5 * math.log(2 * math.pi * v) - (yy - m) ** 2 / (2 * v)
              for m, v, yy in zip(mean.tolist(), var.tolist(), y.tolist(), strict=True)]
    assert gaussian_nll(mean, var, y).item() == pytest.approx(-np.mean(logpdf), rel=1e-12)
    torch_nll = torch.nn.functional.gaussian_nll_loss(mean, y, var, full=True, eps=0.0)
    assert gaussian_nll(mean, var, y).item() == pytest.approx(torch_nll.item(), rel=1e-12)


def test_beta_nll_weights_rows_by_their_variance_without_its_gradient():
    mean = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    var = torch.tensor([1.0, 4.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.5, 3.0], dtype=torch.float64)
    rows = 0.5 * (math.log(2 * math.pi) + torch.log(var) + (y - mean) ** 2 / var)
    beta = gaussian_nll(mean, var, y, beta=0.5)
    assert beta.item() == pytest.approx(float((rows.detach() * var.detach() ** 0.5).mean()), rel=1e-12)
    assert gaussian_nll(mean, var, y, beta=0.0).item() == pytest.approx(float(rows.detach().mean()), rel=1e-12)
    beta.backward()
    # d/dμ of v^β·(y−μ)²/(2v) with v^β held constant: −v^(β−1)·(y−μ), averaged over 2 rows
    expected = -(var.detach() ** -0.5) * (y - mean.detach()) / 2
    np.testing.assert_allclose(mean.grad.numpy(), expected.numpy(), rtol=1e-12)


def test_elbo_is_nll_plus_beta_kl():
    torch.manual_seed(0)
    model = HeatFlowNet(3, Hyperparameters(hidden_layers=2, neurons=8, prior_variance=1.3)).eval()
    x, y = torch.randn(20, 3), torch.randn(20)
    loss, nll, kl = elbo_loss(model, x, y, kl_weight=1e-3)
    mean, var = model(x)  # eval mode: posterior-mean weights, deterministic
    assert nll.item() == pytest.approx(gaussian_nll(mean, var, y).item(), rel=1e-6)
    assert kl.item() == pytest.approx(model.head.kl().item(), rel=1e-6)
    assert loss.item() == pytest.approx(nll.item() + 1e-3 * kl.item(), rel=1e-6)
    assert (var > 0).all()


def test_local_reparameterisation_has_the_weight_sample_moments():
    torch.manual_seed(0)
    layer = BayesianLinear(3, 2)
    with torch.no_grad():
        layer.weight_rho.fill_(-1.0)
        layer.bias_rho.fill_(-2.0)
    x = torch.tensor([[1.0, -2.0, 0.5]]).expand(20000, 3)
    layer.train()
    out = layer(x)
    expected_mean = layer.weight_mu @ x[0] + layer.bias_mu
    expected_var = layer.weight_sd.pow(2) @ x[0].pow(2) + layer.bias_sd.pow(2)
    assert torch.allclose(out.mean(0), expected_mean.detach(), atol=0.03)
    assert torch.allclose(out.var(0), expected_var.detach(), rtol=0.05)
    w, b = layer.sample_weights(20000, torch.Generator().manual_seed(1))
    sampled = torch.einsum("i,toi->to", x[0], w) + b
    assert torch.allclose(sampled.var(0), expected_var.detach(), rtol=0.05)


# ------------------------------------------------------------------------------------ MC prediction


def test_total_is_aleatoric_plus_epistemic(small_fit):
    fitted, frame, _ = small_fit
    pred = fitted.predict(frame, samples=7, seed=3)
    assert set(pred) == {"mean", "aleatoric", "epistemic", "total"}
    assert all(v.shape == (len(frame),) for v in pred.values())
    np.testing.assert_array_equal(pred["total"], pred["aleatoric"] + pred["epistemic"])
    assert (pred["aleatoric"] > 0).all() and (pred["epistemic"] >= 0).all()


def test_decomposition_matches_the_samples_by_hand(small_fit):
    """Aleatoric variance = mean of sampled variances, epistemic = ddof-0 variance of sampled means, in mW m⁻²."""
    fitted, frame, _ = small_fit
    x = torch.as_tensor((frame.to_numpy() - fitted.x_mean) / fitted.x_std, dtype=torch.float32)
    with torch.no_grad():
        w, b = fitted.model.head.sample_weights(5, torch.Generator().manual_seed(9))
        h = fitted.model.body.eval()(x)
        mu, var = HeatFlowNet.split(torch.einsum("ni,toi->tno", h, w) + b[:, None, :])
    pred = fitted.predict(frame, samples=5, seed=9)
    s = fitted.y_std
    np.testing.assert_allclose(pred["mean"], mu.double().mean(0).numpy() * s + fitted.y_mean, rtol=1e-6)
    np.testing.assert_allclose(pred["aleatoric"], var.double().mean(0).numpy() * s**2, rtol=1e-5)
    np.testing.assert_allclose(pred["epistemic"], mu.double().var(0, unbiased=False).numpy() * s**2,
                               rtol=1e-3, atol=1e-9 * s**2)


def test_aleatoric_recovers_known_noise_and_epistemic_grows_outside(sine_fit):
    left, right = np.linspace(-2.7, -0.3, 100)[:, None], np.linspace(0.3, 2.7, 100)[:, None]
    outside = np.concatenate([np.linspace(-9, -6, 50), np.linspace(6, 9, 50)])[:, None]
    pl, pr, pout = sine_fit.predict(left), sine_fit.predict(right), sine_fit.predict(outside)
    assert np.median(pl["aleatoric"]) == pytest.approx(0.25**2, rel=0.5)
    assert np.median(pr["aleatoric"]) == pytest.approx(0.5**2, rel=0.5)
    assert np.median(pr["aleatoric"]) > 2.5 * np.median(pl["aleatoric"])
    inside = np.concatenate([left, right])
    pin = sine_fit.predict(inside)
    assert np.sqrt(np.mean((pin["mean"] - np.sin(inside[:, 0])) ** 2)) < 0.15
    assert np.median(pout["epistemic"]) > 10 * np.median(pin["epistemic"])
    assert np.median(pin["epistemic"]) < 0.1 * np.median(pin["aleatoric"])


def test_rmse_and_mc_samples_default(small_fit):
    fitted, frame, y = small_fit
    pred = fitted.predict(frame.iloc[240:])
    assert fitted.rmse(frame.iloc[240:], y[240:]) == pytest.approx(np.sqrt(np.mean((pred["mean"] - y[240:]) ** 2)))
    assert fitted.rmse(frame.iloc[240:], y[240:]) < 0.3 * y.std()


# ------------------------------------------------------------------------------------ training


def test_history_and_early_stopping(small_fit):
    fitted, _, _ = small_fit
    h = fitted.history
    assert len(h["train_loss"]) == len(h["val_loss"]) == len(h["val_rmse"]) >= fitted.best_epoch >= 1
    assert h["val_loss"][fitted.best_epoch - 1] == min(h["val_loss"])
    stopped_early = len(h["val_loss"]) < SMALL["max_epochs"]
    assert not stopped_early or len(h["val_loss"]) - fitted.best_epoch == SMALL["patience"]


def test_best_weights_are_restored(small_fit):
    fitted, frame, y = small_fit
    xv = torch.as_tensor((frame.iloc[240:].to_numpy() - fitted.x_mean) / fitted.x_std, dtype=torch.float32)
    yv = torch.as_tensor((y[240:] - fitted.y_mean) / fitted.y_std, dtype=torch.float32)
    with torch.no_grad():
        loss, _, _ = elbo_loss(fitted.model.eval(), xv, yv, fitted.params.kl_weight)
    assert loss.item() == pytest.approx(fitted.history["val_loss"][fitted.best_epoch - 1], rel=1e-5)


def test_scalers_use_training_rows_only():
    X, y = _linear_data(n=200)
    a = fit_bnn(X[:150], y[:150], X[150:], y[150:], {**SMALL, "max_epochs": 2}, threads=1)
    b = fit_bnn(X[:150], y[:150], X[150:] * 3 + 7, y[150:] + 100, {**SMALL, "max_epochs": 2}, threads=1)
    c = fit_bnn(X[:150], y[:150], params={**SMALL, "max_epochs": 2}, threads=1)  # internal 10 % split
    for f in (a, b, c):
        np.testing.assert_allclose(f.x_mean, X[:150].mean(0))
        np.testing.assert_allclose(f.x_std, X[:150].std(0))
        assert f.y_mean == pytest.approx(y[:150].mean()) and f.y_std == pytest.approx(y[:150].std())


def test_same_seed_same_predictions_and_threads_restored():
    X, y = _linear_data(n=150)
    before = torch.get_num_threads()
    params = {**SMALL, "max_epochs": 4}
    a = fit_bnn(X, y, params=params, threads=1).predict(X)
    assert torch.get_num_threads() == before
    b = fit_bnn(X, y, params=params, threads=1).predict(X)
    c = fit_bnn(X, y, params={**params, "seed": 1}, threads=1).predict(X)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["mean"], c["mean"])


def test_global_rng_is_untouched():
    X, y = _linear_data(n=100)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_bnn(X, y, params={**SMALL, "max_epochs": 1}, threads=1)
    assert torch.equal(torch.rand(3), expected)


def test_dataframe_columns_are_matched_by_name(small_fit):
    fitted, frame, _ = small_fit
    assert fitted.feature_names == ["a", "b", "c"]
    np.testing.assert_array_equal(fitted.predict(frame[["c", "a", "b"]])["mean"], fitted.predict(frame)["mean"])
    with pytest.raises(SeisgridError, match="missing"):
        fitted.predict(frame[["a", "b"]])


def test_bad_inputs_are_reported():
    X, y = _linear_data(n=50)
    X[3, 1] = np.nan
    with pytest.raises(SeisgridError, match="row 3"):
        fit_bnn(X, y, params=SMALL)
    with pytest.raises(SeisgridError, match="values for"):
        fit_bnn(X[:, [0, 2]], y[:-1], params=SMALL)
    with pytest.raises(SeisgridError, match="both"):
        fit_bnn(X[:, [0, 2]], y, X[:, [0, 2]], params=SMALL)


# ------------------------------------------------------------------------------------ persistence


def test_save_load_round_trip(small_fit, tmp_path):
    fitted, frame, _ = small_fit
    paths = fitted.save(tmp_path / "model.pt")
    torch.load(paths["weights"], weights_only=True)  # tensors only
    loaded = FittedBNN.load(tmp_path / "model.pt")
    for key, value in fitted.predict(frame, seed=4).items():
        np.testing.assert_array_equal(loaded.predict(frame, seed=4)[key], value)
    assert loaded.params == fitted.params and loaded.best_epoch == fitted.best_epoch
    assert loaded.history == fitted.history and loaded.feature_names == fitted.feature_names
    rebuilt = FittedBNN.from_state(fitted.state())
    np.testing.assert_array_equal(rebuilt.predict(frame)["mean"], fitted.predict(frame)["mean"])
    with pytest.raises(SeisgridError, match="no BNN checkpoint"):
        FittedBNN.load(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------ hyperparameters


def test_hyperparameters_from_dict():
    p = Hyperparameters.from_dict({"hidden_layers": 4.6, "neurons": "100", "dropout": 0.2})
    assert p.hidden_layers == 5 and isinstance(p.hidden_layers, int) and p.neurons == 100 and p.dropout == 0.2
    assert Hyperparameters.from_dict(p.to_dict()) == p
    with pytest.raises(ConfigError, match="bogus"):
        Hyperparameters.from_dict({"neurons": 64, "bogus": 1})
    with pytest.raises(ConfigError, match="dropout"):
        Hyperparameters.from_dict({"dropout": 1.5})


def test_defaults_agree_with_the_yaml():
    from seisgrid.config import DEFAULTS_PATH

    with open(DEFAULTS_PATH) as f:
        section = yaml.safe_load(f)["seisgrid"]["bnn"]
    defaults = Hyperparameters().to_dict()
    assert {k: section[k] for k in defaults} == defaults
    assert section["mc_samples"] == 50
    assert Hyperparameters.from_config() == Hyperparameters()
    assert all(help_text for _, _, help_text in config.option_specs("bnn"))


def test_search_space_is_the_study_s():
    names = {f.name for f in dataclasses.fields(Hyperparameters)}
    assert set(SEARCH_SPACE) <= names and len(SEARCH_SPACE) == 8
    assert SEARCH_SPACE["hidden_layers"] == (3, 6, "int") and SEARCH_SPACE["kl_weight"][:2] == (1e-5, 1e-3)
    for low, high, scale in SEARCH_SPACE.values():
        assert low < high and scale in {"int", "log", "linear"}


def test_validation_rmse_objective():
    X, y = _linear_data(n=200)
    score = validation_rmse({**SMALL, "max_epochs": 3}, X[:160], y[:160], X[160:], y[160:])
    assert np.isfinite(score) and score > 0
    with pytest.raises(ConfigError):
        validation_rmse({"bogus": 1}, X[:160], y[:160], X[160:], y[160:])
