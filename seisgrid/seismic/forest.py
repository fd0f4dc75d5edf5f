"""Random Forest baseline: spectral features of the labelled windows, scikit-learn, prediction on Dask.

Features (:func:`spectral_features`, documented in :data:`FEATURE_DOC`)
    From log-power spectrogram images ``(window, component, freq, time)`` — the 224×224 images of the
    spectrogram store, or :func:`waveform_images` computed from the waveforms when no spectrogram
    store is given. The frequency rows are split into ``bands`` equal bands (default 8). Per component:

    * ``mean_b``: mean log power of band b over the whole window (spectral shape, roll-off);
    * ``contrast_b``: max over time minus median over time of band b's log power (how impulsive the
      band is: an earthquake lifts some bands well above their own background for seconds);
    * ``peak_contrast``, ``time_std``: max minus median, and standard deviation, over time of the
      all-band mean log power (a broadband transient; its spread);
    * ``peak_position``: time of that maximum as a fraction of the window.

    Then across components: ``maxcomp_contrast_b``, the largest ``contrast_b`` of the components
    present. A missing component (``present`` False, or a constant image) gets the mean of the present
    components' features, so single-component records are usable and no signal is invented.

Model
    :class:`sklearn.ensemble.RandomForestClassifier` with ``class_weight="balanced"`` trained on the
    training split; saved with joblib next to a JSON config (:func:`save_model` / :func:`load_model`):
    ``seisgrid evaluate --out DIR`` saves the forest it scores as ``DIR/forest.joblib``, which
    ``seisgrid detect --method forest`` runs over an archive (:class:`seisgrid.seismic.detect.ForestScorer`).

Prediction on the cluster: :func:`predict_proba`
    dask-ml's :class:`~dask_ml.wrappers.ParallelPostFit` (:func:`postfit`) maps ``predict_proba`` over the
    row chunks of a Dask feature array. With a client the fitted model is scattered to every worker once
    and ParallelPostFit is given a reference to it (:class:`ModelRef`, a dataclass whose future Dask
    resolves inside each task): given the model itself, ParallelPostFit puts it into every task, and a
    300-tree forest (16 MB) then travels once per chunk (measured: 41 loads and 9.2 s for 40 chunks on 2
    workers, against 2 loads and 2.0 s scattered; dask-ml 2025.1.0, dask 2026.8.0). NumPy features without a
    client are predicted in this process, as ParallelPostFit itself does for non-Dask input.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import TYPE_CHECKING, Any

import numpy as np

from seisgrid import config
from seisgrid.errors import SeisgridError

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    import dask.array as da
    import xarray as xr
    from dask_ml.wrappers import ParallelPostFit
    from distributed import Client
    from sklearn.ensemble import RandomForestClassifier

logger = logging.getLogger("seisgrid")

FEATURE_DOC = {
    "mean_b": "mean log power of frequency band b over the window",
    "contrast_b": "max minus median over time of band b's log power",
    "peak_contrast": "max minus median over time of the all-band mean log power",
    "time_std": "standard deviation over time of the all-band mean log power",
    "peak_position": "time of the all-band maximum as a fraction of the window",
    "maxcomp_contrast_b": "largest contrast_b over the components present",
}


def feature_names(components: Sequence[str] = ("Z", "N", "E"), bands: int | None = None) -> list[str]:
    """Column names of :func:`spectral_features`, in order."""
    bands = int(config.get("forest.bands", override=bands))
    names = []
    for c in components:
        names += [f"{c}_mean_{b}" for b in range(bands)] + [f"{c}_contrast_{b}" for b in range(bands)]
        names += [f"{c}_peak_contrast", f"{c}_time_std", f"{c}_peak_position"]
    names += [f"maxcomp_contrast_{b}" for b in range(bands)]
    return names


def spectral_features(images: np.ndarray, present: np.ndarray | None = None, bands: int | None = None) -> np.ndarray:
    """Feature matrix of spectrogram images (see the module docstring).

    Parameters
    ----------
    images : ndarray, shape (window, component, freq, time)
        Log-power images (any float dtype; float16 from the spectrogram store is fine).
    present : ndarray of bool, shape (window, component), optional
        Components that exist; default: those whose image is not constant.
    bands : int, optional
        Equal frequency bands (default ``seisgrid.forest.bands``).

    Returns
    -------
    ndarray of float32, shape (window, 3 × (2 × bands + 3) + bands) for three components
    """
    bands = int(config.get("forest.bands", override=bands))
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise SeisgridError(f"images: expected (window, component, freq, time), got shape {x.shape}")
    n, c, f, t = x.shape
    if f < bands:
        raise SeisgridError(f"images have {f} frequency rows, fewer than {bands} bands")
    x = np.where(np.isfinite(x), x, np.nan)
    edges = np.linspace(0, f, bands + 1).astype(int)
    band = np.stack([np.nanmean(x[:, :, a:b, :], axis=2) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=2)
    # band: (n, c, bands, t)
    mean_b = np.nanmean(band, axis=3)
    contrast_b = np.nanmax(band, axis=3) - np.nanmedian(band, axis=3)
    total = np.nanmean(band, axis=2)  # (n, c, t)
    peak_contrast = np.nanmax(total, axis=2) - np.nanmedian(total, axis=2)
    time_std = np.nanstd(total, axis=2)
    peak_position = np.argmax(np.nan_to_num(total, nan=-np.inf), axis=2) / max(t - 1, 1)
    per = np.concatenate([mean_b, contrast_b, peak_contrast[..., None], time_std[..., None],
                          peak_position[..., None]], axis=2)  # (n, c, 2*bands + 3)
    if present is None:
        flat = x.reshape(n, c, -1)
        present = np.nanmax(flat, axis=2) > np.nanmin(flat, axis=2)
    present = np.asarray(present, bool)
    per = np.where(present[..., None], per, np.nan)
    with np.errstate(invalid="ignore"):
        fill = np.nanmean(per, axis=1, keepdims=True)  # mean over the present components
    per = np.where(np.isnan(per), fill, per)
    per = np.nan_to_num(per, nan=0.0)
    contrast_present = np.where(present[..., None], contrast_b, -np.inf)
    maxcomp = np.max(contrast_present, axis=1)
    maxcomp = np.where(np.isfinite(maxcomp), maxcomp, 0.0)
    return np.concatenate([per.reshape(n, -1), maxcomp], axis=1).astype(np.float32)


def waveform_images(waveform: np.ndarray, sampling_rate: float = 100.0, nperseg: int = 128,
                    noverlap: int = 112) -> np.ndarray:
    """Log10 power spectrograms of waveforms (window, component, sample) with SciPy (Hann window).

    Used by :func:`waveform_features` when no spectrogram store is given; returns
    (window, component, nperseg // 2 + 1, frames) float32 with rows from 0 Hz to Nyquist.
    """
    from scipy.signal import spectrogram

    x = np.asarray(waveform, dtype=np.float64)
    _, _, sxx = spectrogram(x, fs=sampling_rate, nperseg=nperseg, noverlap=noverlap, axis=-1, mode="psd")
    return np.log10(sxx + 1e-12).astype(np.float32)


def waveform_features(waveform: np.ndarray, present: np.ndarray | None = None, sampling_rate: float = 100.0,
                      bands: int | None = None) -> np.ndarray:
    """:func:`spectral_features` of :func:`waveform_images` (missing components: ``present``)."""
    return spectral_features(waveform_images(waveform, sampling_rate), present=present, bands=bands)


def _features_block(block, present_block, kind, rate, bands):
    if kind == "image":
        return spectral_features(block, present_block, bands=bands)
    return waveform_features(block, present_block, sampling_rate=rate, bands=bands)


def dataset_features(ds: xr.Dataset, bands: int | None = None) -> da.Array:
    """Lazy (dask) feature matrix of a spectrogram Dataset (``image``) or a window Dataset (``waveform``)."""
    import dask.array as da

    bands = int(config.get("forest.bands", override=bands))
    kind = "image" if "image" in ds else "waveform"
    if kind not in ds:
        raise SeisgridError("dataset has neither 'image' (spectrogram store) nor 'waveform' (window store)")
    arr = ds[kind].data
    if not isinstance(arr, da.Array):
        arr = da.from_array(np.asarray(arr), chunks=(256,) + (-1,) * (np.ndim(arr) - 1))
    arr = arr.rechunk({i: -1 for i in range(1, arr.ndim)})
    if "present" in ds:
        pres = ds["present"].data
        pres = pres if isinstance(pres, da.Array) else da.from_array(np.asarray(pres))
        pres = pres.rechunk((arr.chunks[0], -1))
    else:
        pres = None
    ncomp = arr.shape[1]
    nfeat = ncomp * (2 * bands + 3) + bands
    rate = float(ds.attrs.get("sampling_rate", 100.0))
    chunks = (arr.chunks[0], (nfeat,))
    meta = np.empty((0, 0), np.float32)
    if pres is None:
        return da.map_blocks(_features_block, arr, None, kind, rate, bands, drop_axis=list(range(2, arr.ndim)),
                             chunks=chunks, dtype=np.float32, meta=meta)
    # blockwise with explicit indices: map_blocks would align `present` with the trailing dimensions
    idx = "wc" + "xyz"[: arr.ndim - 2]
    out = da.blockwise(_features_block, "wf", arr, idx, pres, "wc", kind, None, rate, None, bands, None,
                       new_axes={"f": nfeat}, concatenate=True, dtype=np.float32, meta=meta)
    return out


def model_config(n_estimators: int | None = None, max_depth: int | None = None, min_samples_leaf: int | None = None,
                 seed: int | None = None) -> dict:
    """Keyword arguments of :class:`~sklearn.ensemble.RandomForestClassifier` from settings.

    Parameters
    ----------
    n_estimators, max_depth, min_samples_leaf, seed : int, optional
        Trees, their depth limit (None: unlimited), smallest leaf and random seed (defaults from
        ``seisgrid.forest``).

    Returns
    -------
    dict
        ``n_estimators``, ``max_depth``, ``min_samples_leaf``, ``random_state``.
    """
    return {
        "n_estimators": int(config.get("forest.n_estimators", override=n_estimators)),
        "max_depth": config.get("forest.max_depth", override=max_depth),
        "min_samples_leaf": int(config.get("forest.min_samples_leaf", override=min_samples_leaf)),
        "random_state": int(config.get("forest.seed", override=seed)),
    }


def train_forest(features: np.ndarray, labels: np.ndarray, n_jobs: int = 1,
                 **settings: int | None) -> RandomForestClassifier:
    """A class-balanced :class:`~sklearn.ensemble.RandomForestClassifier` fitted on (training) features.

    ``settings``: ``n_estimators``, ``max_depth``, ``min_samples_leaf``, ``seed`` (defaults from
    ``seisgrid.forest``).
    """
    from sklearn.ensemble import RandomForestClassifier

    y = np.asarray(labels).astype(int)
    if len(np.unique(y)) < 2:
        raise SeisgridError(f"training labels hold one class only ({np.unique(y).tolist()}): "
                            "need earthquakes and noise")
    cfg = model_config(**settings)
    model = RandomForestClassifier(class_weight="balanced", n_jobs=n_jobs, **cfg)
    model.fit(np.asarray(features, np.float32), y)
    return model


@dataclasses.dataclass
class ModelRef:
    """A fitted classifier as :class:`~dask_ml.wrappers.ParallelPostFit`'s estimator, sent once per worker.

    ``model`` is the classifier, or a :class:`distributed.Future` of it scattered to the workers; Dask resolves
    futures in the fields of a dataclass argument, so inside each task ``model`` is the classifier itself,
    taken from the worker's memory. ``classes_`` lets ParallelPostFit shape its output without the model.
    """

    model: Any
    classes_: np.ndarray

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of the rows of ``x`` (float32, as the forest was trained; no rows: none)."""
        if len(x) == 0:
            return np.empty((0, len(self.classes_)), np.float64)
        return self.model.predict_proba(np.asarray(x, np.float32))


def postfit(model: RandomForestClassifier, client: Client | None = None) -> ParallelPostFit:
    """:class:`~dask_ml.wrappers.ParallelPostFit` of a fitted classifier; with ``client`` the model is scattered.

    Parameters
    ----------
    model : sklearn classifier
        Fitted (``predict_proba``, ``classes_``).
    client : distributed.Client, optional
        The model is broadcast to its workers once; the wrapper's tasks refer to it (:class:`ModelRef`).

    Returns
    -------
    dask_ml.wrappers.ParallelPostFit
        Its ``predict_proba`` of a Dask array is a lazy ``(rows, classes)`` float64 array.
    """
    from dask_ml.wrappers import ParallelPostFit

    meta = np.empty((0, len(model.classes_)), np.float64)
    if client is None:
        return ParallelPostFit(estimator=ModelRef(model, model.classes_), predict_proba_meta=meta)
    ref = client.scatter(model, broadcast=True, hash=False)
    return ParallelPostFit(estimator=ModelRef(ref, model.classes_), predict_proba_meta=meta)


def predict_proba(model: RandomForestClassifier, features: np.ndarray | da.Array, client: Client | None = None,
                  chunk_rows: int = 4096) -> np.ndarray:
    """Earthquake probability (class 1) of each row.

    On the cluster when ``features`` is a Dask array or ``client`` is given: dask-ml's ``ParallelPostFit``
    over row chunks (``chunk_rows`` for NumPy input), the model scattered to the workers once
    (:func:`postfit`). Otherwise in this process.
    """
    import dask.array as da

    column = list(model.classes_).index(1)
    if not isinstance(features, da.Array) and client is None:
        x = np.asarray(features, np.float32)
        return model.predict_proba(x)[:, column] if len(x) else np.empty(0, np.float64)
    lazy: da.Array = (features if isinstance(features, da.Array)
                      else da.from_array(np.asarray(features, np.float32), chunks=(chunk_rows, -1)))
    if lazy.shape[0] == 0:
        return np.empty(0, np.float64)
    proba = postfit(model, client).predict_proba(lazy.rechunk({1: -1}))[:, column]
    if client is not None:
        return np.asarray(client.compute(proba).result())
    return np.asarray(proba.compute())


def predict(model: RandomForestClassifier, features: np.ndarray | da.Array, client: Client | None = None,
            threshold: float | None = None) -> np.ndarray:
    """1 (earthquake) where the probability is at least ``threshold``.

    ``threshold`` defaults to ``seisgrid.forest.threshold``, 0.5 when that is null.
    """
    threshold = config.get("forest.threshold", override=threshold)
    threshold = 0.5 if threshold is None else float(threshold)
    return (predict_proba(model, features, client=client) >= threshold).astype(np.int8)


def save_model(model: RandomForestClassifier, path: str | os.PathLike, extra: dict | None = None) -> dict:
    """Write ``path`` (joblib) and ``path`` + ``.json`` (model parameters, features, versions)."""
    import joblib
    import sklearn

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    meta = {
        "kind": "seisgrid.forest", "estimator": type(model).__name__,
        "params": {k: v for k, v in model.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))},
        "n_features": int(model.n_features_in_), "classes": [int(c) for c in model.classes_],
        "features": FEATURE_DOC, "sklearn": sklearn.__version__, **(extra or {}),
    }
    pathlib.Path(str(path) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_model(path: str | os.PathLike) -> tuple[RandomForestClassifier, dict]:
    """``(model, config)`` saved by :func:`save_model`: only load files you made or trust.

    joblib is pickle, so loading a forest file can run code that was put into it. seisgrid therefore
    unpickles a forest only from a path the user named (``seisgrid detect --method forest --model PATH``,
    ``seisgrid evaluate --methods forest:PATH``, the same keys of a pipeline step, this function; never one
    found in a folder or store by itself), and only after the JSON config next to it (``path + '.json'``)
    says it is a seisgrid forest. A pipeline file that names a forest is as trusted as that forest.

    Parameters
    ----------
    path : str or path
        The ``forest.joblib`` that ``seisgrid evaluate --methods forest --out DIR`` saved (local file).

    Returns
    -------
    tuple
        The fitted :class:`~sklearn.ensemble.RandomForestClassifier` and its config.

    Raises
    ------
    OSError, ValueError
        No config next to ``path``, or not JSON (the forest file itself is then not read).
    SeisgridError
        The config is not a seisgrid forest's (the forest file itself is then not read).
    """
    import joblib

    path = pathlib.Path(path)
    meta = json.loads(pathlib.Path(str(path) + ".json").read_text())  # no config: OSError, the file unread
    if not isinstance(meta, dict) or meta.get("kind") != "seisgrid.forest":
        raise SeisgridError(f"{path}.json: not a seisgrid forest model config; {path} is not loaded")
    return joblib.load(path), meta
