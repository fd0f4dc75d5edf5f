"""Why the model decides: per-frequency-band importance of a spectrogram classifier (``seisgrid explain``).

The study (REFERENCE.md §A) reads SHAP values per frequency band. Two estimators, both over a set of
labelled spectrogram windows (``docs/windows-schema.md``; image rows are linear in frequency, row 0 =
``f_min`` = 1 Hz, row 223 = ``f_max`` = 45 Hz, see :mod:`seisgrid.seismic.spectrogram`):

**Band occlusion** (``method="occlusion"``, default)
    For each band, the rows whose frequency lies in ``[low, high)`` (the last band includes ``high``) of
    all three components are replaced by a baseline and the model's probability of *earthquake*
    (softmax, class 1) is measured again. On earthquake windows the importance is the mean **drop**
    ``P(x) − P(x with the band occluded)``; on noise windows the mean **rise**
    ``P(x with the band occluded) − P(x)``. Both are positive when the band carries evidence for the
    correct class (a band that only looks like noise on earthquake windows gives a negative value).
    Without labels every window is in one group ``all``, scored by the drop.

**Integrated gradients** (``method="integrated_gradients"``; SHAP-style)
    Attribution of ``P(earthquake)`` to every pixel along the straight path from the baseline image to
    the image (midpoint Riemann sum with ``ig_steps`` steps), summed over the pixels of each band (all
    components and columns). The per-pixel attributions add up to ``P(x) − P(baseline)`` (completeness),
    which is the property SHAP values share; the summed band values are the study's "SHAP values per
    frequency band" up to the choice of one baseline instead of a background set. Signs as above:
    earthquake windows report the mean attribution, noise windows its negative.

Baselines: ``"median"`` — per component and row, the median over the scored **noise** windows (all
scored windows when there are no labels or no noise windows) and all time columns: the band is replaced
by a flat, typical noise spectrum, so it keeps its usual level but loses its time structure and any
event energy; ``"zero"`` — 0, which is each normalised image's own median (images are robust z-scores).

Spread: the standard deviation over windows and a bootstrap confidence interval of the mean
(``bootstrap`` resamples of the windows, level ``ci``, seeded). ``share`` is the band's importance
over the sum of the absolute importances of its group.

GPU conventions (DESIGN.md): the device is picked once (:func:`seisgrid.seismic.models.pick_device`);
on CUDA the model runs in channels_last with bf16 autocast, on CPU in float32 — the same code.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from seisgrid import config, storage
from seisgrid.errors import ConfigError, SeisgridError, StorageError
from seisgrid.seismic.spectrogram import check_image_store
from seisgrid.seismic.windowstore import open_dataset

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    import numpy.typing as npt
    import pandas as pd
    import torch
    import xarray as xr
    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

SECTION = "explain"
METHODS = ("occlusion", "integrated_gradients")
BASELINES = ("median", "zero")
EARTHQUAKE_CLASS = 1
GROUPS = {1: "earthquake", 0: "noise"}
COLUMNS = ["band", "f_low_hz", "f_high_hz", "rows", "group", "n", "importance", "sd", "ci_low", "ci_high",
           "share", "method", "baseline"]


# ------------------------------------------------------------------------------------------ helpers
def _setting(name, override=None):
    return config.get(f"{SECTION}.{name}", override=override)


def band_label(low: float, high: float) -> str:
    """The band's name in tables and figures, e.g. ``"1–2 Hz"``."""
    return f"{low:g}–{high:g} Hz"


def band_rows(bands: Sequence[tuple[float, float]], freqs: npt.ArrayLike) -> list[np.ndarray]:
    """Image rows of each band: rows with frequency in ``[low, high)``; the last band includes ``high``.

    Parameters
    ----------
    bands : sequence of (low, high)
        Frequency bands, Hz.
    freqs : array
        Frequency of each image row, Hz (ascending).

    Returns
    -------
    list of int arrays
        Row indices per band (a band without rows raises :class:`ConfigError`).
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    tol = 1e-6 * max(1.0, float(np.max(np.abs(freqs))))
    out = []
    for i, (low, high) in enumerate(bands):
        last = i == len(bands) - 1
        sel = (freqs >= low - tol) & ((freqs <= high + tol) if last else (freqs < high - tol))
        rows = np.flatnonzero(sel)
        if not len(rows):
            raise ConfigError(f"explain: band {band_label(low, high)} holds no image row (rows span "
                              f"{freqs[0]:g}–{freqs[-1]:g} Hz); change seisgrid.explain.bands")
        out.append(rows)
    return out


def _bands(bands) -> list[tuple[float, float]]:
    bands = _setting("bands", bands)
    try:
        out = [(float(lo), float(hi)) for lo, hi in bands]
    except (TypeError, ValueError):
        raise ConfigError(f"explain: bands {bands!r}: expected a list of [low, high] pairs in Hz") from None
    if not out or any(hi <= lo for lo, hi in out):
        raise ConfigError(f"explain: bands {bands!r}: expected at least one band with low < high")
    return out


def _row_freqs(images, n_rows: int, freqs=None) -> np.ndarray:
    if freqs is not None:
        return np.asarray(freqs, dtype=np.float64)
    coords = getattr(images, "coords", None)
    coord = coords.get("freq") if coords is not None and hasattr(coords, "get") else None
    if coord is not None:
        return np.asarray(coord.values, dtype=np.float64)
    f_min = float(config.get("spectrogram.f_min", 1.0))
    f_max = float(config.get("spectrogram.f_max", 45.0))
    return f_min + np.arange(n_rows) * (f_max - f_min) / (n_rows - 1)


def _as_numpy_images(images) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    elif hasattr(images, "values") and hasattr(images, "dims"):  # xarray
        images = images.values
    x = np.asarray(images)
    if x.ndim != 4:
        raise ConfigError(f"explain: images of shape {x.shape}: expected (window, component, freq, time)")
    return x


def _bootstrap_ci(values: np.ndarray, n_boot: int, level: float, rng) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    if n == 1 or n_boot < 1:
        return float(values.mean()), float(values.mean())
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # bounded memory: 256 resamples at a time
        k = min(256, n_boot - start)
        means[start:start + k] = values[rng.integers(0, n, size=(k, n))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _baseline_image(x: np.ndarray, baseline: str) -> np.ndarray:
    """Baseline of shape (component, freq, 1) broadcasting over time (float32)."""
    c, f = x.shape[1], x.shape[2]
    if baseline == "zero":
        return np.zeros((c, f, 1), dtype=np.float32)
    # median over windows and time columns, per component and row (float32 in blocks of rows: bounded memory)
    out = np.empty((c, f, 1), dtype=np.float32)
    for ci in range(c):
        comp = x[:, ci]  # (window, freq, time)
        out[ci, :, 0] = np.median(np.moveaxis(comp, 1, 0).reshape(f, -1).astype(np.float32), axis=1)
    return out


# ------------------------------------------------------------------------------------------ model runs
class _Runner:
    """The model on its device (moved there and set to eval mode) with the project's GPU conventions."""

    def __init__(self, model, device):
        import torch

        from seisgrid.seismic.models import pick_device

        self.torch = torch
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.cuda = self.device.type == "cuda"
        model = model.to(self.device).eval()
        if self.cuda:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    def _prep(self, xb):
        torch = self.torch
        xb = xb.to(self.device, dtype=torch.float32, non_blocking=True)
        return xb.contiguous(memory_format=torch.channels_last) if self.cuda else xb

    def _prob(self, xb):
        torch = self.torch
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            logits = self.model(xb)
        logits = logits.float()
        if logits.ndim != 2 or logits.shape[1] < 2:
            raise SeisgridError(f"explain: the model returned logits of shape {tuple(logits.shape)}: expected "
                                "(batch, classes ≥ 2) with class 1 = earthquake")
        return torch.softmax(logits, dim=1)[:, EARTHQUAKE_CLASS]

    def _index(self, rows):
        """Row selectors on the device: a slice for a contiguous band (the usual case), else an index tensor."""
        out = []
        for r in rows:
            if len(r) and np.array_equal(r, np.arange(r[0], r[-1] + 1)):
                out.append(slice(int(r[0]), int(r[-1]) + 1))
            else:
                out.append(self.torch.as_tensor(r, device=self.device))
        return out

    def occlusion(self, xb, rows, base) -> tuple[np.ndarray, np.ndarray]:
        """P(x) (batch,) and P(x with band b occluded) (bands, batch)."""
        torch = self.torch
        with torch.inference_mode():
            x = self._prep(xb)
            p0 = self._prob(x)
            out = []
            for r in self._index(rows):
                occ = x.clone()
                occ[:, :, r, :] = base[:, r, :]
                out.append(self._prob(occ))
            return p0.cpu().numpy(), torch.stack(out).cpu().numpy()

    def integrated_gradients(self, xb, rows, base, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """P(x) (batch,) and the summed attribution per band (bands, batch)."""
        torch = self.torch
        x = self._prep(xb)
        b = base.unsqueeze(0).expand_as(x)
        delta = x - b
        grads = torch.zeros_like(x)
        for k in range(steps):
            alpha = (k + 0.5) / steps
            xi = (b + alpha * delta).detach().requires_grad_(True)
            p = self._prob(xi)
            (g,) = torch.autograd.grad(p.sum(), xi)
            grads += g.float()
        attr = delta * grads / steps  # (batch, component, freq, time)
        per_row = attr.sum(dim=(1, 3))  # (batch, freq)
        bands = torch.stack([per_row[:, r].sum(dim=1) for r in self._index(rows)])
        with torch.inference_mode():
            p0 = self._prob(x.detach())
        return p0.cpu().numpy(), bands.detach().cpu().numpy()


# ------------------------------------------------------------------------------------------ the table
def band_importance(model: torch.nn.Module, images: np.ndarray | torch.Tensor | xr.DataArray,
                    labels: npt.ArrayLike | None = None, *, bands: Sequence[tuple[float, float]] | None = None,
                    method: str | None = None, baseline: str | None = None, batch_size: int | None = None,
                    device: str | torch.device | None = None, freqs: npt.ArrayLike | None = None,
                    ig_steps: int | None = None, bootstrap: int | None = None, ci: float | None = None,
                    seed: int | None = None) -> pd.DataFrame:
    """Importance of each frequency band for the model's earthquake/noise decision.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier taking (batch, component, freq, time) float32 images and returning logits
        (batch, classes ≥ 2), class 1 = earthquake (any architecture of
        :data:`seisgrid.seismic.models.ARCHITECTURES`).
    images : ndarray, torch.Tensor or xarray.DataArray, shape (window, component, freq, time)
        Normalised spectrogram images (float16 store values are fine). A DataArray's ``freq``
        coordinate gives the row frequencies.
    labels : array of int, optional
        1 earthquake, 0 noise per window; without labels every window is in one group ``all``.
    bands : list of (low, high), optional
        Bands in Hz (default ``seisgrid.explain.bands``: 1–2, 2–4, 4–8, 8–16, 16–32, 32–45 Hz).
    method : {"occlusion", "integrated_gradients"}, optional
        Estimator (see the module docstring; default ``seisgrid.explain.method``).
    baseline : {"median", "zero"}, optional
        Replacement values (default ``seisgrid.explain.baseline``): the typical noise spectrum (median
        over the noise windows, per component and row) or 0.
    batch_size : int, optional
        Windows per forward pass (default ``seisgrid.explain.batch_size``); integrated gradients use a
        quarter of it (backward passes keep the activations).
    device : str or torch.device, optional
        Default ``seisgrid.explain.device``, else CUDA when available, else CPU.
    freqs : array, optional
        Frequency of each image row, Hz (default: the DataArray coordinate, else the spectrogram
        configuration's rows linear from ``f_min`` to ``f_max``).
    ig_steps, bootstrap, ci, seed : optional
        Integrated-gradients steps, bootstrap resamples, confidence level, random seed.

    Returns
    -------
    pandas.DataFrame
        One row per (band, group), columns :data:`COLUMNS`: ``band`` (label), ``f_low_hz``,
        ``f_high_hz``, ``rows`` (image rows in the band), ``group`` (``earthquake``/``noise``/``all``),
        ``n`` (windows), ``importance`` (mean drop / rise of P(earthquake), probability units),
        ``sd``, ``ci_low``, ``ci_high`` (bootstrap interval of the mean), ``share`` (of the group's
        summed absolute importance), ``method``, ``baseline``. ``attrs`` hold ``p_mean`` per group and
        the settings.
    """
    import pandas as pd
    import torch

    method = str(_setting("method", method)).lower().replace("-", "_")
    if method in ("ig", "shap"):
        method = "integrated_gradients"
    if method not in METHODS:
        raise ConfigError(f"explain: method {method!r}: expected one of {list(METHODS)}")
    baseline = str(_setting("baseline", baseline)).lower()
    if baseline not in BASELINES:
        raise ConfigError(f"explain: baseline {baseline!r}: expected one of {list(BASELINES)}")
    batch_size = int(_setting("batch_size", batch_size))
    ig_steps = int(_setting("ig_steps", ig_steps))
    n_boot = int(_setting("bootstrap", bootstrap))
    level = float(_setting("ci", ci))
    seed = int(_setting("seed", seed))
    if batch_size < 1 or ig_steps < 1 or not 0 < level < 1:
        raise ConfigError(f"explain: batch_size={batch_size}, ig_steps={ig_steps}, ci={level}: expected "
                          "batch_size ≥ 1, ig_steps ≥ 1, 0 < ci < 1")
    band_list = _bands(bands)
    x = _as_numpy_images(images)
    freqs = _row_freqs(images, x.shape[2], freqs)
    if len(freqs) != x.shape[2]:
        raise ConfigError(f"explain: {len(freqs)} row frequencies for images with {x.shape[2]} rows")
    rows = band_rows(band_list, freqs)
    n = x.shape[0]
    if n == 0:
        raise SeisgridError("explain: no windows to score")
    if labels is None:
        y = None
    else:
        y = np.asarray(labels).astype(np.int64).ravel()
        if y.shape[0] != n:
            raise ConfigError(f"explain: {y.shape[0]} labels for {n} windows")

    runner = _Runner(model, _setting("device", device))
    ref = x if y is None or not np.any(y == 0) else x[y == 0]
    base = torch.from_numpy(_baseline_image(ref, baseline)).to(runner.device)
    p0 = np.empty(n, dtype=np.float64)
    effect = np.empty((len(rows), n), dtype=np.float64)  # drop of P(eq) (occlusion) / attribution (IG)
    # backward passes keep every activation: integrated gradients run a quarter of the batch at a time
    step = batch_size if method == "occlusion" else max(1, batch_size // 4)
    for start in range(0, n, step):
        xb = torch.from_numpy(np.ascontiguousarray(x[start:start + step], dtype=np.float32))
        if method == "occlusion":
            p, p_occ = runner.occlusion(xb, rows, base)
            effect[:, start:start + len(xb)] = p[None, :] - p_occ
        else:
            p, attr = runner.integrated_gradients(xb, rows, base, ig_steps)
            effect[:, start:start + len(xb)] = attr
        p0[start:start + len(xb)] = p

    rng = np.random.default_rng(seed)
    groups = [("all", np.arange(n), 1.0)] if y is None else \
        [(GROUPS[c], np.flatnonzero(y == c), 1.0 if c == 1 else -1.0) for c in (1, 0) if np.any(y == c)]
    records = []
    p_mean = {}
    for name, idx, sign in groups:
        p_mean[name] = float(p0[idx].mean())
        values = sign * effect[:, idx]  # (bands, windows): positive = evidence for the correct class
        total = float(np.abs(values.mean(axis=1)).sum())
        for b, ((low, high), r) in enumerate(zip(band_list, rows, strict=True)):
            v = values[b]
            lo, hi = _bootstrap_ci(v, n_boot, level, rng)
            mean = float(v.mean())
            records.append({"band": band_label(low, high), "f_low_hz": low, "f_high_hz": high, "rows": len(r),
                            "group": name, "n": len(idx), "importance": mean,
                            "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "ci_low": lo, "ci_high": hi,
                            "share": mean / total if total > 0 else math.nan, "method": method,
                            "baseline": baseline})
    table = pd.DataFrame.from_records(records, columns=COLUMNS)
    table.attrs.update({"p_mean": p_mean, "method": method, "baseline": baseline, "windows": n,
                        "ig_steps": ig_steps if method == "integrated_gradients" else None,
                        "bootstrap": n_boot, "ci": level, "seed": seed, "device": str(runner.device)})
    return table


# ------------------------------------------------------------------------------------------ outputs
def _fmt(v) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:+.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def to_markdown(table: pd.DataFrame) -> str:
    """The band table as Markdown: one row per band, earthquake and noise importance side by side."""
    groups = list(dict.fromkeys(table["group"]))
    head = ["band", "rows"]
    for g in groups:
        n = int(table.loc[table["group"] == g, "n"].iloc[0])
        head += [f"{g} (n={n}) importance", f"{round(100 * table.attrs.get('ci', 0.95))} % CI", "sd", "share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for band in dict.fromkeys(table["band"]):
        sub = table[table["band"] == band]
        cells = [band, str(int(sub["rows"].iloc[0]))]
        for g in groups:
            r = sub[sub["group"] == g].iloc[0]
            share = "—" if math.isnan(r["share"]) else f"{100 * r['share']:.1f} %"
            cells += [_fmt(float(r["importance"])), f"[{_fmt(float(r['ci_low']))}, {_fmt(float(r['ci_high']))}]",
                      f"{float(r['sd']):.4f}", share]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, path: str | os.PathLike, title: str | None = None) -> str:
    """Bar chart of importance per band (earthquake vs noise windows, bootstrap CI as error bars) → PNG."""
    from seisgrid.figures import new_figure, save_png

    bands = list(dict.fromkeys(table["band"]))
    groups = list(dict.fromkeys(table["group"]))
    colours = {"earthquake": "#c0392b", "noise": "#2c7fb8", "all": "#555555"}
    width = 0.8 / len(groups)
    fig = new_figure((7.5, 4.2))
    ax = fig.subplots()
    xs = np.arange(len(bands))
    for k, g in enumerate(groups):
        sub = table[table["group"] == g].set_index("band").loc[bands]
        mean = sub["importance"].to_numpy(float)
        err = np.vstack([mean - sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float) - mean])
        err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
        n = int(sub["n"].iloc[0])
        ax.bar(xs + (k - (len(groups) - 1) / 2) * width, mean, width, yerr=err, capsize=3,
               color=colours.get(g, None), label=f"{g} windows (n={n})")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(xs, bands, rotation=0)
    ax.set_xlabel("frequency band")
    method = table.attrs.get("method", "occlusion")
    ax.set_ylabel("mean drop of P(earthquake)\n(noise: mean rise)" if method == "occlusion"
                  else "integrated gradients, summed per band\n(noise: sign flipped)")
    ax.set_title(title or f"Band importance ({method}, baseline {table.attrs.get('baseline', '?')})")
    ax.legend(frameon=False)
    fig.tight_layout()
    return save_png(fig, str(path), dpi=120)


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _json_safe(v.item())
    return v


def records(table: pd.DataFrame) -> list[dict]:
    """The table as JSON-safe records (NaN → None)."""
    return [{k: _json_safe(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


# ------------------------------------------------------------------------------------------ explain
def select_windows(ds: xr.Dataset, split: str, subset: str | None, max_windows: int | None,
                   seed: int) -> np.ndarray:
    """Window indices of ``subset`` in column ``split``, at most ``max_windows`` (balanced by label, seeded)."""
    n = ds.sizes["window"]
    if subset in (None, "all"):
        idx = np.arange(n)
    else:
        if split not in ds:
            raise SeisgridError(f"explain: the store has no split column {split!r}; expected 'split' or "
                                "'split_region', or use subset 'all'")
        values = np.asarray(ds[split].values, dtype=object).astype(str)
        idx = np.flatnonzero(values == subset)
        if not len(idx):
            raise SeisgridError(f"explain: no window has {split} == {subset!r} (values: {sorted(set(values))})")
    if max_windows is None or len(idx) <= max_windows:
        return idx
    rng = np.random.default_rng(seed)
    if "label" not in ds:
        return np.sort(rng.choice(idx, size=max_windows, replace=False))
    y = ds["label"].values[idx]
    classes = [idx[y == c] for c in (1, 0) if np.any(y == c)]
    quota = max_windows // len(classes)
    picked, spare = [], []
    for members in classes:
        take = min(quota, len(members))
        perm = rng.permutation(members)
        picked.append(perm[:take])
        spare.append(perm[take:])
    rest = max_windows - sum(len(p) for p in picked)
    if rest > 0:  # a class with fewer windows than its quota leaves room for the others
        pool = np.concatenate(spare)
        picked.append(rng.choice(pool, size=min(rest, len(pool)), replace=False))
    return np.sort(np.concatenate(picked))


def _compute(model_path, spectrograms_url, split, subset, max_windows, device, options):
    """The table for ``explain`` (runs in this process or as a task on a Dask worker)."""
    from seisgrid.seismic.models import load_checkpoint, pick_device, require_spectrogram_input

    seed = int(_setting("seed", options.get("seed")))
    ds = open_dataset(spectrograms_url, "spectrogram store", "seisgrid spectrograms", ("image",),
                      consolidated=False)
    if "image" not in ds:
        raise StorageError(f"{spectrograms_url}: no 'image' variable; expected a spectrogram store "
                           "(docs/windows-schema.md)")
    check_image_store(ds, spectrograms_url)
    idx = select_windows(ds, split, subset, max_windows, seed)
    sub = ds.isel(window=idx)
    images = sub["image"].load()
    labels = sub["label"].values.astype(np.int64) if "label" in sub else None
    dev = pick_device(_setting("device", device))
    model, cfg = load_checkpoint(str(model_path), device=dev)
    require_spectrogram_input(cfg, str(model_path), "explain")
    check_image_store(ds, spectrograms_url, cfg, who=str(model_path))
    t0 = time.perf_counter()
    table = band_importance(model, images, labels, device=dev, **options)
    table.attrs["seconds"] = time.perf_counter() - t0
    table.attrs["arch"] = cfg.get("arch")
    return table


def _gpu_resources(client) -> dict:
    try:
        workers = client.scheduler_info()["workers"].values()
    except Exception:  # noqa: BLE001 - an old/odd client: no resources
        return {}
    return {"GPU": 1} if any("GPU" in (w.get("resources") or {}) for w in workers) else {}


def explain(model_path: str | os.PathLike, spectrograms_url: str | os.PathLike,
            out_dir: str | os.PathLike | None = None, *, split: str | None = None, subset: str | None = None,
            max_windows: int | None = None, device: str | None = None, client: Client | LazyClient | None = None,
            bands: Sequence[tuple[float, float]] | None = None, method: str | None = None,
            baseline: str | None = None, batch_size: int | None = None, ig_steps: int | None = None,
            bootstrap: int | None = None, ci: float | None = None, seed: int | None = None) -> dict:
    """Per-band importance of a trained model over the windows of a spectrogram store → table + PNG.

    Parameters
    ----------
    model_path : str
        Checkpoint written by :func:`seisgrid.seismic.models.save_checkpoint` (any architecture).
    spectrograms_url : str
        Spectrogram store (``docs/windows-schema.md``): ``image`` and ``label`` and the split column.
    out_dir : str, optional
        Folder (path or URL) for ``band_importance.md``, ``band_importance.json`` and
        ``band_importance.png``; nothing is written without it.
    split, subset : str, optional
        Windows with ``split == subset`` are scored (defaults ``split_region`` / ``test``; subset
        ``all`` scores every window).
    max_windows : int, optional
        At most this many windows, half per class where possible (default
        ``seisgrid.explain.max_windows``; ``0``/None in the configuration: all).
    device : str, optional
        Torch device (default: CUDA when available, else CPU).
    client : distributed.Client or LazyClient, optional
        When given, the computation runs as one task on a worker (holding ``resources={"GPU": 1}``
        when the cluster advertises GPUs); otherwise in this process.
    bands, method, baseline, batch_size, ig_steps, bootstrap, ci, seed : optional
        See :func:`band_importance` (defaults from ``seisgrid.explain``).

    Returns
    -------
    dict
        ``bands`` (JSON records of the table), ``table_markdown``, ``top_band`` per group, ``p_mean``
        per group, ``windows`` (count and per-group counts), ``method``, ``baseline``, ``arch``,
        ``device``, ``seconds``, ``outputs`` (paths written), ``model``, ``spectrograms``, ``split``,
        ``subset``.
    """
    split = str(_setting("split", split))
    subset = _setting("subset", subset)
    max_windows = _setting("max_windows", max_windows)
    max_windows = int(max_windows) if max_windows else None
    options = {"bands": bands, "method": method, "baseline": baseline, "batch_size": batch_size,
               "ig_steps": ig_steps, "bootstrap": bootstrap, "ci": ci, "seed": seed}
    if client is not None:
        from seisgrid.cluster import resolve_client

        started = resolve_client(client)
        assert started is not None  # resolve_client returns a Client for a Client or a LazyClient
        future = started.submit(_compute, str(model_path), str(spectrograms_url), split, subset, max_windows,
                                device, options, resources=_gpu_resources(started) or None, pure=False)
        table = future.result()
    else:
        table = _compute(model_path, spectrograms_url, split, subset, max_windows, device, options)

    md = to_markdown(table)
    recs = records(table)
    top = {}
    for g in dict.fromkeys(table["group"]):
        sub = table[table["group"] == g]
        top[g] = str(sub.loc[sub["importance"].idxmax(), "band"])
    counts = {g: int(table.loc[table["group"] == g, "n"].iloc[0]) for g in dict.fromkeys(table["group"])}
    result = {
        "model": str(model_path), "arch": table.attrs.get("arch"), "spectrograms": str(spectrograms_url),
        "split": split, "subset": subset, "windows": int(table.attrs["windows"]), "windows_per_group": counts,
        "method": table.attrs["method"], "baseline": table.attrs["baseline"], "device": table.attrs["device"],
        "p_mean": table.attrs["p_mean"], "top_band": top, "bands": recs, "table_markdown": md,
        "seconds": round(float(table.attrs.get("seconds", math.nan)), 3), "outputs": {},
    }
    if out_dir is not None:
        fs, root = storage.filesystem(str(out_dir))
        fs.makedirs(root, exist_ok=True)
        base = str(out_dir).rstrip("/")
        paths = {"markdown": f"{base}/band_importance.md", "json": f"{base}/band_importance.json",
                 "png": f"{base}/band_importance.png"}
        title = (f"Band importance of {result['arch'] or 'the model'} ({result['method']}, "
                 f"baseline {result['baseline']}; {subset} windows)")
        header = (f"# Frequency-band importance\n\nModel `{model_path}` ({result['arch']}), store "
                  f"`{spectrograms_url}`, {split} = {subset}, {result['windows']} windows, method "
                  f"{result['method']}, baseline {result['baseline']}. Importance: mean drop of P(earthquake) "
                  f"on earthquake windows, mean rise on noise windows (probability units).\n\n")
        with fs.open(storage.filesystem(paths["markdown"])[1], "w") as f:
            f.write(header + md)
        plot(table, paths["png"], title)
        result["outputs"] = paths
        with fs.open(storage.filesystem(paths["json"])[1], "w") as f:
            json.dump({k: v for k, v in result.items() if k != "table_markdown"}, f, indent=2)
    return result


__all__ = ["BASELINES", "COLUMNS", "METHODS", "band_importance", "band_rows", "explain", "plot", "records",
           "select_windows", "to_markdown"]
