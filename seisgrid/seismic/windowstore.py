"""The labelled-window store: schema constants, the Dataset of window columns, writing and opening.

Schema: ``docs/windows-schema.md``. :mod:`seisgrid.seismic.labelled` builds the windows and writes the
store with :func:`windows_dataset` and :func:`write_windows`; its users (spectrograms, training,
evaluation, attribution) open it, or a spectrogram store, with :func:`open_dataset`. This module imports
nothing from :mod:`seisgrid.seismic.labelled`, so opening a store does not pull in the dataset readers.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from seisgrid import storage
from seisgrid.errors import StorageError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    import xarray as xr

__all__ = ["COMPONENTS", "EARTHQUAKE", "NOISE", "SUBCLASSES", "distance_of", "open_dataset", "subclass_of",
           "windows_dataset", "write_windows"]

#: Component order of ``waveform`` and ``present`` (the ``component`` coordinate).
COMPONENTS = ("Z", "N", "E")
#: ``kind`` attribute of a window store.
KIND = "seisgrid-windows"
#: ``label`` values.
NOISE, EARTHQUAKE = 0, 1
#: ``subclass`` values and their label: ``earthquake`` (1); ``pre_event_noise`` (0, the pre-P part of an event
#: record), ``quiet_noise`` (0, away from any known event: noise records, continuous records), ``icequake`` (0,
#: ice events and synth's icequake-like transients: the noise that looks like earthquakes).
SUBCLASSES = {"earthquake": EARTHQUAKE, "pre_event_noise": NOISE, "quiet_noise": NOISE, "icequake": NOISE}
#: ``subclass`` of windows of stores written before the variable existed (and of unknown noise).
UNKNOWN_SUBCLASS = "unknown"


def windows_dataset(cols: dict, opts: dict, formats: dict, *, resampling: str) -> xr.Dataset:
    """The labelled-window Dataset (``docs/windows-schema.md``) of window columns.

    Parameters
    ----------
    cols : dict of str to ndarray
        One array per variable, first axis ``window``: ``waveform`` (window, 3, sample), ``present``
        (window, 3), ``label``, ``p_index``, ``s_index``, ``start_time``, ``magnitude``, ``snr_db``,
        ``augmented``, ``distance_km``, and the strings ``source``, ``region``, ``network``, ``station``,
        ``event_id``, ``subclass``, ``split``, ``split_region``.
    opts : dict
        Build options (``seisgrid.windows`` keys, ``seed`` and ``split_grouping``; optional
        ``orientation_unknown``: source → NET.STA list whose N/E slots hold 1/2 channels), recorded as
        attributes.
    formats : dict of str to str
        Source name → format, recorded as the ``formats`` attribute.
    resampling : str
        How the waveforms were resampled (the ``resampling`` attribute).

    Returns
    -------
    xarray.Dataset
        Variables as in ``cols`` (strings as object arrays), coordinate ``component`` (Z, N, E) and the
        attributes of the schema (``kind="seisgrid-windows"``, rate, lengths, per-source counts, ...).
    """
    import xarray as xr

    n_win = cols["waveform"].shape[-1]
    one = ("window",)
    data_vars = {
        "waveform": (("window", "component", "sample"), cols["waveform"].astype("float32"),
                     {"units": "counts", "long_name": "ground motion, mean removed, resampled"}),
        "present": (("window", "component"), cols["present"].astype(bool)),
        "label": (one, cols["label"].astype(np.int8), {"flag_values": "0 1", "flag_meanings": "noise earthquake"}),
        "p_index": (one, cols["p_index"].astype(np.int32), {"missing": -1}),
        "s_index": (one, cols["s_index"].astype(np.int32), {"missing": -1}),
        "start_time": (one, cols["start_time"].astype("datetime64[ns]")),
        "magnitude": (one, cols["magnitude"].astype(np.float32)),
        "snr_db": (one, cols["snr_db"].astype(np.float32), {"units": "dB"}),
        "augmented": (one, cols["augmented"].astype(bool)),
        "distance_km": (one, cols["distance_km"].astype(np.float32),
                        {"units": "km", "long_name": "epicentral distance, NaN unknown"}),
    }
    for key in ("source", "region", "network", "station", "event_id", "subclass", "split", "split_region"):
        data_vars[key] = (one, np.asarray([str(v) for v in cols[key]], dtype=object))
    counts = {}
    for s in sorted(set(cols["source"])):
        sel = cols["source"] == s
        counts[s] = {"earthquake": int((cols["label"][sel] == 1).sum()), "noise": int((cols["label"][sel] == 0).sum())}
    attrs = {
        "kind": KIND, "sampling_rate": opts["sampling_rate"], "window_seconds": opts["window_seconds"],
        "window_samples": int(n_win), "pre_p_seconds": opts["pre_p_seconds"],
        "noise_margin_seconds": opts["noise_margin_seconds"], "resampling": resampling,
        "components": "".join(COMPONENTS), "source_counts": counts, "formats": formats,
        "split_fractions": opts["split_fractions"], "seed": opts["seed"], "split_grouping": opts["split_grouping"],
        "test_regions": opts["test_regions"], "test_networks": opts["test_networks"],
        "noise_assumption": "noise windows are pre-P segments of event records ending at least "
                            f"{opts['noise_margin_seconds']:g} s before P (pfo sources: screened for "
                            "transients by STA/LTA), store times at least "
                            f"{opts['catalog_noise_seconds']:g} s from any catalog P/S, or store times outside "
                            "an STA/LTA trigger mask (no catalog); they may contain unseen events. icequake "
                            "windows are ice events, label 0 by their source's class",
        "augmentation": f"train only: real earthquakes mixed into real noise at {opts['augment_snr_db']} dB, "
                        f"shifts ±{opts['augment_shift_seconds']:g} s, scale {opts['augment_scale']}",
        "p_prediction": "SeisBench records without picks: first P of TauP iasp91 (p_index predicted)",
        "subclasses": "earthquake (label 1); pre_event_noise: pre-P part of an event record; quiet_noise: away "
                      "from any known event (noise records, continuous records); icequake: ice events and "
                      "icequake-like transients (label 0); p_index of icequake windows is the ice event's P",
        "orientation_unknown": opts.get("orientation_unknown", {}),
    }
    ds = xr.Dataset(data_vars, coords={"component": ("component", np.array(COMPONENTS, dtype=object))},
                    attrs=attrs)
    return ds


def write_windows(ds: xr.Dataset, out: str | os.PathLike, chunk: int) -> None:
    """Write a window Dataset as a Zarr v3 store with consolidated metadata (overwriting ``out``).

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`windows_dataset`.
    out : str or path-like
        Store path or URL (:func:`seisgrid.storage.zarr_store`).
    chunk : int
        Windows per chunk of every variable (other dimensions in one chunk).
    """
    import zarr

    store = storage.zarr_store(str(out))
    encoding = {name: {"chunks": (chunk,) + ds[name].shape[1:]} for name in ds.data_vars}
    with warnings.catch_warnings():
        # Consolidated metadata (so a plain xarray.open_zarr finds every variable in one read) is not
        # in the Zarr v3 spec yet; zarr warns on write only.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=zarr.errors.ZarrUserWarning)
        ds.to_zarr(store, mode="w", zarr_format=3, consolidated=True, encoding=encoding)


def open_dataset(url: str | os.PathLike, what: str = "labelled-window store", make: str = "seisgrid windows",
                 required: Iterable[str] = (), **open_kwargs: Any) -> xr.Dataset:
    """A window or spectrogram store (local or URL) as an xarray Dataset.

    Errors name the URL, what was expected and the command that makes one.

    Parameters
    ----------
    url : str or path-like
        Store path or URL.
    what, make : str
        What the store should be and the command that makes one (for the error messages).
    required : iterable of str
        Variables the store must hold.
    **open_kwargs
        Passed to :func:`xarray.open_zarr` (e.g. ``chunks=None`` for lazily indexed arrays without Dask).

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    seisgrid.errors.StorageError
        Not a Zarr store, or a ``required`` variable is missing.
    """
    import xarray as xr

    try:
        with warnings.catch_warnings():  # consolidated metadata is used when the store has it
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata")
            ds = xr.open_zarr(storage.zarr_store(str(url), read_only=True), **open_kwargs)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise StorageError(f"{url}: not a {what} ({exc}); run `{make}` first") from exc
    missing = [name for name in required if name not in ds]
    if missing:
        raise StorageError(f"{url}: no {', '.join(missing)} variable(s); expected a {what} (`{make}`)")
    return ds


def subclass_of(ds: xr.Dataset) -> np.ndarray:
    """The ``subclass`` of every window; stores written before the variable existed give it from ``label``.

    Parameters
    ----------
    ds : xarray.Dataset
        A window store (or a spectrogram store, which copies the 1-D variables).

    Returns
    -------
    ndarray of object (str)
        ``ds.subclass`` when present; else ``earthquake`` for label 1 and ``unknown``
        (:data:`UNKNOWN_SUBCLASS`) for label 0.
    """
    if "subclass" in ds:
        return np.asarray(ds["subclass"].values, dtype=object)
    label = np.asarray(ds["label"].values)
    return np.where(label == EARTHQUAKE, "earthquake", UNKNOWN_SUBCLASS).astype(object)


def distance_of(ds: xr.Dataset) -> np.ndarray:
    """The epicentral distance (km) of every window; NaN when unknown or the store has no ``distance_km``.

    Parameters
    ----------
    ds : xarray.Dataset
        A window or spectrogram store.

    Returns
    -------
    ndarray of float32
    """
    if "distance_km" in ds:
        return np.asarray(ds["distance_km"].values, dtype=np.float32)
    return np.full(ds.sizes["window"], np.nan, dtype=np.float32)
