"""Heat-flow network with a Bayesian output layer (Liu et al. 2026): training (ELBO) and MC prediction.

The network is an MLP whose hidden layers are deterministic — ``Linear → BatchNorm1d → ReLU → Dropout``
each — and whose output layer (:class:`BayesianLinear`) has Gaussian variational weights and biases
(Bayes by backprop). The output layer has two units: the predicted mean and, through a softplus, the
predicted (aleatoric) variance of the standardised target.

Loss (per mini-batch of ``b`` rows, standardised units)::

    loss = mean_i [ ½ log 2π + ½ log v_i + (y_i − μ_i)² / (2 v_i) ]  +  β · KL(q ‖ p)

β (``kl_weight``) multiplies the whole KL, as the ``kl_weight`` of Keras / TensorFlow-Probability
variational layers does: the exact negative ELBO per training row is β = 1 / n_train (Bayes by backprop,
KL spread evenly over the batches), and the study's search range 1e-5–1e-3 brackets 1 / n_train ≈ 1.3e-4
for its ~7,400 training cells. (With the KL divided by n_train as well, β ≤ 1e-3 would leave the
posterior sds where they were initialised and the epistemic variance meaningless: median 0.06 mW² m⁻⁴ on
the real table, against ~1 with this loss.) ``p`` is N(0, ``prior_variance``) on every output-layer
weight and bias; the KL is the closed form for Gaussians (:func:`gaussian_kl`). During training the
output layer uses the *local* reparameterisation trick (pre-activations sampled per row: same per-row
distribution as a weight sample, lower-variance gradients); prediction draws ``T`` whole weight samples
(:meth:`FittedBNN.predict`), so every sample is one consistent function.

Prediction: the hidden layers run in eval mode (batch-norm running statistics, dropout off), then
``T`` (default ``seisgrid.bnn.mc_samples`` = 50) samples of the output-layer weights give means ``μ_t``
and variances ``v_t``:

    aleatoric = mean_t v_t,   epistemic = var_t μ_t (population variance, ddof 0),
    total = aleatoric + epistemic (law of total variance),

converted back to mW m⁻² (means: × target sd + target mean; variances: × target sd²).

Precision: float32 everywhere, CPU and GPU. The network is tiny (≤ 6 × 128 units), so a GPU step is
launch-bound and bf16 autocast would save nothing while coarsening the log-variance and the NLL.

Features and target are standardised with the statistics of the training rows passed to
:func:`fit_bnn` only (population sd; a constant column keeps sd 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from seisgrid import checkpoint, config
from seisgrid.errors import ConfigError, SeisgridError

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    import pandas as pd
    from numpy.typing import ArrayLike

logger = logging.getLogger("seisgrid")

#: Searched hyperparameters of the study: name -> (low, high, scale). ``int``: integer, uniform;
#: ``log``: log-uniform; ``linear``: uniform.
SEARCH_SPACE: dict[str, tuple[float, float, str]] = {
    "hidden_layers": (3, 6, "int"),
    "neurons": (32, 128, "int"),
    "learning_rate": (1e-4, 1e-2, "log"),
    "batch_size": (32, 128, "int"),
    "dropout": (0.05, 0.3, "linear"),
    "kl_weight": (1e-5, 1e-3, "log"),
    "prior_variance": (0.5, 1.5, "linear"),
    "l2": (1e-5, 1e-4, "log"),
}

VARIANCE_FLOOR = 1e-6  # standardised units: keeps log v and 1/v finite when the softplus underflows
_RHO_INIT = -5.0  # softplus(-5) ≈ 0.0067: the variational sds start small, the means carry the fit
_FORMAT = "seisgrid.ghf.bnn/1"


@dataclasses.dataclass
class Hyperparameters:
    """The study's eight searched hyperparameters and the training controls.

    Defaults are the ``bnn:`` section of ``seisgrid.yaml`` (:meth:`from_config` reads the effective
    settings, with environment and user overrides).

    Attributes
    ----------
    hidden_layers : int
        Hidden layers (3–6 in the search).
    neurons : int
        Units per hidden layer (32–128).
    learning_rate : float
        Adam learning rate (1e-4–1e-2).
    batch_size : int
        Rows per mini-batch (32–128).
    dropout : float
        Dropout probability after each hidden layer (0.05–0.3).
    kl_weight : float
        β, the weight of the KL term (1e-5–1e-3): loss = NLL (batch mean) + β · KL; see the module
        docstring.
    prior_variance : float
        Variance of the Gaussian prior N(0, σ²) on the output-layer weights and biases (0.5–1.5),
        standardised units.
    l2 : float
        Adam weight decay of the hidden layers' weight matrices (1e-5–1e-4): the gradient gains
        ``l2 · w`` (a penalty ``l2/2 · ‖w‖²``); biases, batch norm and the Bayesian layer are not decayed.
    max_epochs : int
        Most passes over the training rows.
    patience : int
        Early stopping: epochs without a lower validation loss before training stops.
    seed : int
        Seed of initialisation, shuffling, dropout, output-layer sampling and the internal validation split.
    nll_beta : float
        β of the β-NLL loss (Seitzer et al. 2022, ICLR, "On the pitfalls of heteroscedastic uncertainty
        estimation with probabilistic neural networks"): each row's Gaussian NLL is weighted by its
        predicted variance to the power β, held constant in the gradient. 0 is the study's plain NLL, under
        which rows with a large predicted variance barely pull on the mean; 0.5 balances mean and variance.
    """

    hidden_layers: int = 3
    neurons: int = 64
    learning_rate: float = 1e-3
    batch_size: int = 64
    dropout: float = 0.1
    kl_weight: float = 1e-4
    prior_variance: float = 1.0
    l2: float = 1e-5
    max_epochs: int = 300
    patience: int = 10
    seed: int = 0
    nll_beta: float = 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, float | int | str]) -> Hyperparameters:
        """Hyperparameters from a mapping (missing keys: defaults). Integers are rounded and cast.

        Raises
        ------
        ConfigError
            When ``d`` has keys that are not hyperparameters, or a value is not a number.
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"unknown BNN hyperparameter(s) {unknown}; expected some of {sorted(names)}")
        values: dict[str, Any] = {}  # int or float by field type
        for key, value in d.items():
            try:
                if names[key].type in ("int", int):
                    values[key] = round(float(value))
                else:
                    values[key] = float(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"BNN hyperparameter {key}={value!r} is not a number") from exc
        params = cls(**values)
        params.validate()
        return params

    @classmethod
    def from_config(cls, **overrides) -> Hyperparameters:
        """Hyperparameters from the effective ``seisgrid.bnn`` settings, then ``overrides``."""
        names = {f.name for f in dataclasses.fields(cls)}
        settings = {k: v for k, v in (config.get("bnn") or {}).items() if k in names}
        settings.update(overrides)
        return cls.from_dict(settings)

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no network can be trained with."""
        problems = []
        if self.hidden_layers < 1:
            problems.append(f"hidden_layers={self.hidden_layers} (≥ 1)")
        if self.neurons < 1:
            problems.append(f"neurons={self.neurons} (≥ 1)")
        if self.batch_size < 2:
            problems.append(f"batch_size={self.batch_size} (≥ 2: batch norm needs two rows)")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout={self.dropout} (in [0, 1))")
        for name in ("learning_rate", "prior_variance"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} (> 0)")
        for name in ("kl_weight", "l2"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name}={getattr(self, name)} (≥ 0)")
        if self.max_epochs < 1 or self.patience < 1:
            problems.append(f"max_epochs={self.max_epochs}, patience={self.patience} (≥ 1)")
        if problems:
            raise ConfigError("invalid BNN hyperparameters: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------ network


def gaussian_kl(mu_q: torch.Tensor, sd_q: torch.Tensor, prior_variance: float) -> torch.Tensor:
    """Closed-form KL(N(μ_q, sd_q²) ‖ N(0, σ_p²)) summed over all elements.

    KL = Σ [ log(σ_p / sd_q) + (sd_q² + μ_q²) / (2 σ_p²) − ½ ].
    """
    var_p = float(prior_variance)
    return (0.5 * math.log(var_p) - torch.log(sd_q) + (sd_q.pow(2) + mu_q.pow(2)) / (2.0 * var_p) - 0.5).sum()


def gaussian_nll(mean: torch.Tensor, variance: torch.Tensor, y: torch.Tensor, beta: float = 0.0) -> torch.Tensor:
    """Mean over rows of −log N(y; mean, variance) = ½ log 2π + ½ log v + (y − μ)² / (2 v).

    With ``beta`` > 0, the β-NLL of Seitzer et al. (2022): row terms weighted by ``variance.detach() ** beta``.
    """
    nll = 0.5 * (math.log(2.0 * math.pi) + torch.log(variance) + (y - mean).pow(2) / variance)
    if beta:
        nll = nll * variance.detach().pow(beta)
    return nll.mean()


class BayesianLinear(nn.Module):
    """Linear layer with factorised Gaussian variational weights and biases.

    q(w) = N(μ, softplus(ρ)²) per weight and bias; prior N(0, ``prior_variance``).

    In training mode the forward pass uses the local reparameterisation trick: the pre-activation of
    each row is drawn from N(x μ_Wᵀ + μ_b, x² sd_W²ᵀ + sd_b²). In eval mode it returns the output of
    the mean weights; :meth:`sample_weights` draws whole weight samples.
    """

    def __init__(self, in_features: int, out_features: int, prior_variance: float = 1.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.prior_variance = float(prior_variance)
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), _RHO_INIT))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_rho = nn.Parameter(torch.full((out_features,), _RHO_INIT))

    @property
    def weight_sd(self) -> torch.Tensor:
        """Posterior standard deviations of the weights, softplus(ρ), shape (out, in)."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sd(self) -> torch.Tensor:
        """Posterior standard deviations of the biases, softplus(ρ), shape (out,)."""
        return F.softplus(self.bias_rho)

    def kl(self) -> torch.Tensor:
        """KL(q ‖ p) of all weights and biases (closed form, nats)."""
        return (gaussian_kl(self.weight_mu, self.weight_sd, self.prior_variance)
                + gaussian_kl(self.bias_mu, self.bias_sd, self.prior_variance))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations of a batch: sampled per row in training mode, the mean weights' output in eval mode.

        Parameters
        ----------
        x : torch.Tensor
            (n, in_features) inputs.

        Returns
        -------
        torch.Tensor
            (n, out_features) pre-activations.
        """
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        if not self.training:
            return mean
        var = F.linear(x.pow(2), self.weight_sd.pow(2), self.bias_sd.pow(2))
        return mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean)

    def sample_weights(self, samples: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``samples`` draws of (weight, bias): shapes (samples, out, in) and (samples, out).

        The standard normals come from ``generator`` on the CPU, so a seed gives the same draws on any
        device.
        """
        eps_w = torch.randn((samples, self.out_features, self.in_features), generator=generator)
        eps_b = torch.randn((samples, self.out_features), generator=generator)
        device = self.weight_mu.device
        return (self.weight_mu + self.weight_sd * eps_w.to(device),
                self.bias_mu + self.bias_sd * eps_b.to(device))


class HeatFlowNet(nn.Module):
    """Deterministic MLP body and a two-unit :class:`BayesianLinear` head (mean, raw variance)."""

    def __init__(self, n_features: int, params: Hyperparameters):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(params.hidden_layers):
            layers += [nn.Linear(width, params.neurons), nn.BatchNorm1d(params.neurons), nn.ReLU(),
                       nn.Dropout(params.dropout)]
            width = params.neurons
        self.body = nn.Sequential(*layers)
        self.head = BayesianLinear(width, 2, params.prior_variance)

    @staticmethod
    def split(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, variance) from the head's two outputs; variance = softplus(raw) + floor."""
        return out[..., 0], F.softplus(out[..., 1]) + VARIANCE_FLOOR

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted mean and variance of the standardised target for a batch.

        Parameters
        ----------
        x : torch.Tensor
            (n, n_features) standardised features.

        Returns
        -------
        mean, variance : torch.Tensor
            (n,) each, in standardised target units (variance ≥ ``VARIANCE_FLOOR``).
        """
        return self.split(self.head(self.body(x)))

    def decayed_parameters(self) -> tuple[list, list]:
        """(hidden Linear weight matrices, every other parameter)."""
        decay = [m.weight for m in self.body if isinstance(m, nn.Linear)]
        ids = {id(p) for p in decay}
        return decay, [p for p in self.parameters() if id(p) not in ids]


def elbo_loss(model: HeatFlowNet, x: torch.Tensor, y: torch.Tensor, kl_weight: float, nll_beta: float = 0.0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training loss of one batch (standardised units): (loss, nll, kl).

    loss = NLL (mean over the batch) + ``kl_weight`` · KL(q ‖ p); ``kl_weight`` = 1 / n_train makes it
    the exact negative ELBO per training row.
    """
    mean, var = model(x)
    nll = gaussian_nll(mean, var, y, nll_beta)
    kl = model.head.kl()
    return nll + kl_weight * kl, nll, kl


# ------------------------------------------------------------------------------------------ helpers


def _pick_device(device) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _torch_threads(threads):
    if not threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _as_matrix(X, feature_names=None, what: str = "X") -> tuple[np.ndarray, list | None]:
    """(n, p) float64 array and the column names (DataFrames are reordered to ``feature_names``)."""
    names = None
    if hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
        if feature_names is not None:
            missing = [n for n in feature_names if n not in names]
            if missing:
                raise SeisgridError(f"{what}: features {missing} missing (the network was trained on "
                                    f"{feature_names})")
            X = X[list(feature_names)]
            names = list(feature_names)
        X = X.to_numpy()
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise SeisgridError(f"{what}: expected a (rows, features) table, got shape {X.shape}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise SeisgridError(f"{what}: {int(bad.sum())} of {len(X)} rows have NaN or infinite features "
                            f"(first at row {int(np.flatnonzero(bad)[0])}); drop or fill them first")
    return X, names


def _as_target(y, n: int, what: str = "y") -> np.ndarray:
    y = np.asarray(y, dtype=float).reshape(-1)
    if len(y) != n:
        raise SeisgridError(f"{what}: {len(y)} values for {n} feature rows")
    bad = ~np.isfinite(y)
    if bad.any():
        raise SeisgridError(f"{what}: {int(bad.sum())} NaN or infinite target values "
                            f"(first at row {int(np.flatnonzero(bad)[0])})")
    return y


# ------------------------------------------------------------------------------------------ fitted


class FittedBNN:
    """A trained network with its scalers.

    Attributes
    ----------
    params : Hyperparameters
    history : dict
        Per epoch: ``train_loss`` (mean batch loss), ``val_loss`` (validation loss, same definition, with
        the output layer at its posterior means and the network in eval mode), ``val_rmse`` (mW m⁻²,
        posterior-mean prediction), all standardised-unit losses.
    best_epoch : int
        Epoch (1-based) whose weights were restored: ``history[k][best_epoch - 1]``.
    feature_names : list of str or None
        Column names when trained on a DataFrame (prediction DataFrames are reordered to them).
    x_mean, x_std : numpy.ndarray
        (p,) feature scalers (training rows only).
    y_mean, y_std : float
        Target scalers, mW m⁻².
    """

    def __init__(self, model: HeatFlowNet, params: Hyperparameters, x_mean, x_std, y_mean, y_std,
                 history=None, best_epoch=0, feature_names=None, device=None):
        self.model = model.eval()
        self.params = params
        self.x_mean = np.asarray(x_mean, dtype=float)
        self.x_std = np.asarray(x_std, dtype=float)
        self.y_mean, self.y_std = float(y_mean), float(y_std)
        self.history = history or {"train_loss": [], "val_loss": [], "val_rmse": []}
        self.best_epoch = int(best_epoch)
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.device = _pick_device(device)
        self.model.to(self.device)

    def _standardise(self, X) -> torch.Tensor:
        X, _ = _as_matrix(X, self.feature_names)
        if X.shape[1] != len(self.x_mean):
            raise SeisgridError(f"X has {X.shape[1]} features; the network was trained on {len(self.x_mean)}")
        return torch.as_tensor((X - self.x_mean) / self.x_std, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def predict(self, X: ArrayLike | pd.DataFrame, samples: int | None = None, seed: int = 0,
                batch_rows: int = 65536) -> dict:
        """Monte Carlo prediction with ``samples`` draws of the output-layer weights.

        Parameters
        ----------
        X : array-like or pandas.DataFrame
            (n, p) features, same units and columns as in training.
        samples : int, optional
            T, the number of weight samples; default ``seisgrid.bnn.mc_samples`` (50).
        seed : int
            Seed of the weight samples (the same seed gives the same result).
        batch_rows : int
            Rows per forward pass (memory bound: samples × rows × 2 floats).

        Returns
        -------
        dict of numpy.ndarray, each (n,)
            ``mean`` (mW m⁻², mean over samples of the predicted means), ``aleatoric`` (mean of the
            predicted variances), ``epistemic`` (variance over samples of the predicted means, ddof 0)
            and ``total`` (their sum); variances in mW² m⁻⁴.
        """
        samples = int(config.get("bnn.mc_samples", 50) if samples is None else samples)
        if samples < 1:
            raise ConfigError(f"samples={samples}: need at least one Monte Carlo sample")
        x = self._standardise(X)
        self.model.eval()
        generator = torch.Generator().manual_seed(int(seed))
        # One weight draw per sample for all rows: every chunk of rows sees the same T functions.
        weight, bias = self.model.head.sample_weights(samples, generator)
        out: dict[str, list[torch.Tensor]] = {k: [] for k in ("mean", "aleatoric", "epistemic")}
        for start in range(0, max(len(x), 1), batch_rows):
            h = self.model.body(x[start:start + batch_rows])
            mu, var = HeatFlowNet.split(torch.einsum("ni,toi->tno", h, weight) + bias[:, None, :])
            out["mean"].append(mu.mean(0))
            out["aleatoric"].append(var.mean(0))
            out["epistemic"].append(mu.var(0, unbiased=False))
        result = {k: torch.cat(v).double().cpu().numpy() for k, v in out.items()}
        result["mean"] = result["mean"] * self.y_std + self.y_mean
        result["aleatoric"] = result["aleatoric"] * self.y_std ** 2
        result["epistemic"] = result["epistemic"] * self.y_std ** 2
        result["total"] = result["aleatoric"] + result["epistemic"]
        return result

    def rmse(self, X: ArrayLike | pd.DataFrame, y: ArrayLike, samples: int | None = None, seed: int = 0) -> float:
        """Root-mean-square error of the MC mean prediction, mW m⁻²."""
        mean = self.predict(X, samples=samples, seed=seed)["mean"]
        y = _as_target(y, len(mean))
        return float(np.sqrt(np.mean((mean - y) ** 2)))

    # ---------------------------------------------------------------- persistence

    def state(self) -> dict:
        """Everything to rebuild the model: ``{"config": JSON-able dict, "tensors": {name: tensor}}``."""
        cfg = {
            "format": _FORMAT,
            "params": self.params.to_dict(),
            "n_features": len(self.x_mean),
            "feature_names": self.feature_names,
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "best_epoch": self.best_epoch,
            "history": {k: [float(v) for v in vals] for k, vals in self.history.items()},
        }
        tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        tensors["x_mean"] = torch.as_tensor(self.x_mean, dtype=torch.float64)
        tensors["x_std"] = torch.as_tensor(self.x_std, dtype=torch.float64)
        return {"config": cfg, "tensors": tensors}

    @classmethod
    def from_state(cls, state: dict, device: str | torch.device | None = None) -> FittedBNN:
        """Rebuild from :meth:`state` output."""
        cfg, tensors = state["config"], state["tensors"]
        if cfg.get("format") != _FORMAT:
            raise SeisgridError(f"not a seisgrid BNN state (format {cfg.get('format')!r}, expected {_FORMAT!r})")
        params = Hyperparameters.from_dict(cfg["params"])
        model = HeatFlowNet(int(cfg["n_features"]), params)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        return cls(model, params, tensors["x_mean"].numpy(), tensors["x_std"].numpy(), cfg["y_mean"],
                   cfg["y_std"], history=cfg.get("history"), best_epoch=cfg.get("best_epoch", 0),
                   feature_names=cfg.get("feature_names"), device=device)

    def save(self, path: str | os.PathLike[str]) -> dict:
        """Write ``path`` (tensors, ``torch.save``) and ``path + '.json'`` (config); local path or URL.

        Returns
        -------
        dict
            ``{"weights": path, "config": path + ".json"}``.
        """
        state = self.state()
        return checkpoint.write(str(path), state["tensors"], state["config"])

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device | None = None) -> FittedBNN:
        """Read what :meth:`save` wrote (tensors with ``torch.load(..., weights_only=True)``)."""
        cfg, tensors = checkpoint.read(str(path), "BNN checkpoint", "tensors + .json config, written by FittedBNN.save")
        return cls.from_state({"config": cfg, "tensors": tensors}, device=device)


# ------------------------------------------------------------------------------------------ training


def _split_validation(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = max(1, round(0.1 * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def fit_bnn(X_train: ArrayLike | pd.DataFrame, y_train: ArrayLike, X_val: ArrayLike | pd.DataFrame | None = None,
            y_val: ArrayLike | None = None, params: Hyperparameters | Mapping[str, float | int | str] | None = None,
            *, device: str | torch.device | None = None, threads: int | None = None,
            progress: bool = False) -> FittedBNN:
    """Train the network: Adam on the ELBO loss, early stopping on the validation loss.

    Parameters
    ----------
    X_train : array-like or pandas.DataFrame
        (n, p) training features (any units; standardised here with these rows' mean and sd).
    y_train : array-like
        (n,) training heat flow, mW m⁻² (standardised with these rows' mean and sd).
    X_val, y_val : optional
        Validation rows for early stopping (scaled with the training statistics). When absent, a
        seeded 10 % of the training rows is held out for it (the scalers still come from all of
        ``X_train``, the caller's training fold).
    params : Hyperparameters or dict, optional
        Default :meth:`Hyperparameters.from_config`.
    device : str, optional
        ``cuda`` when available, else ``cpu``.
    threads : int, optional
        ``torch.set_num_threads`` during the call (restored afterwards).
    progress : bool
        Log one line per epoch at INFO (else DEBUG).

    Returns
    -------
    FittedBNN
        With the weights of the epoch of lowest validation loss restored. On CPU the same inputs and
        seed give the same network.

    Notes
    -----
    Loss per batch = Gaussian NLL (mean over the batch) + β · KL(q ‖ p), standardised units;
    β = ``params.kl_weight`` (1 / n_train: the exact negative ELBO per row; see the module
    docstring). Batches are slices of a seeded permutation of preloaded tensors; a trailing batch of
    one row is skipped (batch norm needs two).
    """
    if params is None:
        params = Hyperparameters.from_config()
    elif not isinstance(params, Hyperparameters):
        params = Hyperparameters.from_dict(params)
    params.validate()
    X, names = _as_matrix(X_train, what="X_train")
    y = _as_target(y_train, len(X), "y_train")
    if len(X) < 4:
        raise SeisgridError(f"X_train: {len(X)} rows; need at least 4 to train and validate")
    if (X_val is None) != (y_val is None):
        raise SeisgridError("give both X_val and y_val, or neither")

    x_mean, x_std = X.mean(axis=0), X.std(axis=0)
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_mean, y_std = float(y.mean()), float(y.std())
    y_std = y_std if y_std > 0 else 1.0

    if X_val is None:
        fit_rows, val_rows = _split_validation(len(X), params.seed)
        Xf, yf, Xv, yv = X[fit_rows], y[fit_rows], X[val_rows], y[val_rows]
    else:
        Xf, yf = X, y
        Xv, _ = _as_matrix(X_val, names, what="X_val")
        if Xv.shape[1] != X.shape[1]:
            raise SeisgridError(f"X_val has {Xv.shape[1]} features, X_train {X.shape[1]}")
        yv = _as_target(y_val, len(Xv), "y_val")

    dev = _pick_device(device)
    log = logger.info if progress else logger.debug
    t0 = time.perf_counter()
    with _torch_threads(threads), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(params.seed)

        def tensor(a):
            return torch.as_tensor(a, dtype=torch.float32, device=dev)

        xf, yf_t = tensor((Xf - x_mean) / x_std), tensor((yf - y_mean) / y_std)
        xv, yv_t = tensor((Xv - x_mean) / x_std), tensor((yv - y_mean) / y_std)
        n = len(xf)
        model = HeatFlowNet(X.shape[1], params).to(dev)
        decay, rest = model.decayed_parameters()
        # The fused kernel saves ~25 % of a CPU step; a small MLP is bound by per-op overhead.
        optimizer = torch.optim.Adam([{"params": decay, "weight_decay": params.l2},
                                      {"params": rest, "weight_decay": 0.0}], lr=params.learning_rate,
                                     fused=True)
        shuffle = torch.Generator().manual_seed(params.seed)
        history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_rmse": []}
        best_loss, best_epoch, best_state, waited = math.inf, 0, None, 0
        bs = params.batch_size
        for epoch in range(1, params.max_epochs + 1):
            model.train()
            order = torch.randperm(n, generator=shuffle).to(dev)
            total, batches = torch.zeros((), device=dev), 0
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                if len(idx) < 2:
                    continue
                loss, _, _ = elbo_loss(model, xf[idx], yf_t[idx], params.kl_weight, params.nll_beta)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()  # no per-step host sync on a GPU
                batches += 1
            model.eval()
            with torch.no_grad():
                val_loss_t, _, _ = elbo_loss(model, xv, yv_t, params.kl_weight, params.nll_beta)
                val_loss = float(val_loss_t)
                val_rmse = float(torch.sqrt(((model(xv)[0] - yv_t) ** 2).mean())) * y_std
            history["train_loss"].append(float(total) / max(batches, 1))
            history["val_loss"].append(val_loss)
            history["val_rmse"].append(val_rmse)
            log("bnn epoch %d: train loss %.4f, val loss %.4f, val RMSE %.2f mW m-2", epoch,
                history["train_loss"][-1], val_loss, val_rmse)
            if not math.isfinite(val_loss):
                logger.warning("bnn: validation loss is %s at epoch %d; stopping (learning rate %g too high?)",
                               val_loss, epoch, params.learning_rate)
                break
            if val_loss < best_loss:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
                if waited >= params.patience:
                    break
        if best_state is None:
            raise SeisgridError("bnn: training diverged in the first epoch (non-finite validation loss); "
                                f"lower the learning rate ({params.learning_rate:g})")
        model.load_state_dict(best_state)
    logger.debug("bnn: %d epochs in %.2f s, best epoch %d (val RMSE %.2f mW m-2)", len(history["val_loss"]),
                 time.perf_counter() - t0, best_epoch, history["val_rmse"][best_epoch - 1])
    return FittedBNN(model, params, x_mean, x_std, y_mean, y_std, history=history, best_epoch=best_epoch,
                     feature_names=names, device=dev)


def validation_rmse(params: Hyperparameters | Mapping[str, float | int | str], X_train: ArrayLike | pd.DataFrame,
                    y_train: ArrayLike, X_val: ArrayLike | pd.DataFrame, y_val: ArrayLike, *,
                    threads: int | None = 1, device: str | torch.device | None = None) -> float:
    """PSO objective: validation RMSE (mW m⁻², MC mean prediction) of a network trained with ``params``.

    Trains on ``(X_train, y_train)`` with early stopping on ``(X_val, y_val)``. ``params`` is a
    :class:`Hyperparameters` or a dict (integer hyperparameters are rounded). A network whose training
    diverges scores ``inf``.
    """
    try:
        fitted = fit_bnn(X_train, y_train, X_val, y_val, params, device=device, threads=threads)
    except ConfigError:
        raise
    except SeisgridError as exc:
        logger.warning("bnn objective: %s; scoring inf", exc)
        return math.inf
    score = fitted.rmse(X_val, y_val)
    return score if math.isfinite(score) else math.inf


__all__ = [
    "SEARCH_SPACE",
    "VARIANCE_FLOOR",
    "BayesianLinear",
    "FittedBNN",
    "HeatFlowNet",
    "Hyperparameters",
    "elbo_loss",
    "fit_bnn",
    "gaussian_kl",
    "gaussian_nll",
    "validation_rmse",
]
