"""STEAD-style sets: ``waveforms.hdf5`` + ``metadata.csv`` (e.g. ``stead-eqt-sample``).

Datasets (samples, 3) in component order E, N, Z at 100 Hz, keyed by ``trace_name`` under ``data/`` (full
STEAD) or ``earthquake/local/`` and ``non_earthquake/noise/`` (the EQTransformer sample); manual P and S
picks in ``p_arrival_sample`` / ``s_arrival_sample``. ``trace_sampling_rate_hz`` gives the rate when
present (default 100 Hz). Sub-classes: the window around P ``earthquake``, its pre-P noise
``pre_event_noise``, noise records (``trace_category`` containing ``noise``) ``quiet_noise``;
``distance_km`` from ``source_distance_km`` (else from the source and receiver coordinates).
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from collections.abc import Iterable, Iterator

import numpy as np

from seisgrid.seismic.labelled.base import (
    Reader,
    Record,
    Skip,
    WindowsError,
    _float,
    _hdf5_set_keys,
    _hdf5_set_metadata,
    _region_of,
    _timestamp,
    distance_km,
)


def detect(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds a STEAD-style set (checked after SeisBench, see :data:`~.base.REGISTRY`).

    Parameters
    ----------
    folder : pathlib.Path
        A local folder.

    Returns
    -------
    bool
        ``waveforms.hdf5`` + ``metadata.csv`` with ``earthquake``/``non_earthquake``/``data`` groups.

    Raises
    ------
    WindowsError
        ``waveforms.hdf5`` + ``metadata.csv`` whose HDF5 file has none of these groups (nor SeisBench's
        ``data_format``): an HDF5 set no reader can use.
    """
    if (folder / "waveforms.hdf5").exists() and (folder / "metadata.csv").exists():
        import h5py

        with h5py.File(folder / "waveforms.hdf5", "r") as f:
            if any(k in f for k in ("earthquake", "non_earthquake", "data")):
                return True
        raise WindowsError(f"{folder}/waveforms.hdf5: neither SeisBench (data_format group) nor STEAD "
                           "(earthquake/non_earthquake/data groups)")
    return False


def read_stead(folder: str | os.PathLike, names: Iterable[str] | None = None,
               source: str | None = None) -> Iterator[Record | Skip]:
    """Records of a STEAD-style folder (``waveforms.hdf5`` + ``metadata.csv``), E,N,Z → Z,N,E.

    Parameters
    ----------
    folder : str or path-like
        The local folder.
    names : iterable of str, optional
        Only these ``trace_name`` values (default all), read in ``trace_name`` order.
    source : str, optional
        Source name of the records (default the folder name).

    Yields
    ------
    Record or Skip
        One per metadata row: the record, or why it cannot be used.
    """
    import h5py

    folder = pathlib.Path(folder)
    source = source or folder.name
    meta = _hdf5_set_metadata(folder, names)
    with h5py.File(folder / "waveforms.hdf5", "r") as f:
        for row in meta.to_dict("records"):
            name = row["trace_name"]
            dset = None
            for group in ("data", "earthquake/local", "non_earthquake/noise"):
                if f"{group}/{name}" in f:
                    dset = f[f"{group}/{name}"]
                    break
            if dset is None:
                yield Skip(source, name, "trace_name not found in waveforms.hdf5")
                continue
            x = np.asarray(dset[()], dtype="float64")
            if x.ndim != 2 or 3 not in x.shape:
                yield Skip(source, name, f"expected (samples, 3) data, found shape {x.shape}")
                continue
            if x.shape[1] != 3:
                x = x.T
            data = x.T[[2, 1, 0]]  # E, N, Z -> Z, N, E
            category = str(row.get("trace_category", ""))
            is_noise = "noise" in category
            p, s = _float(row.get("p_arrival_sample")), _float(row.get("s_arrival_sample"))
            snr = str(row.get("snr_db", ""))
            snr_values = [v for v in (_float(t) for t in re.split(r"[\s\[\],]+", snr) if t) if not math.isnan(v)]
            rate = _float(row.get("trace_sampling_rate_hz"))
            rate = 100.0 if math.isnan(rate) else rate
            dist = _float(row.get("source_distance_km"))
            if math.isnan(dist):
                dist = distance_km(row.get("source_latitude"), row.get("source_longitude"),
                                   row.get("receiver_latitude"), row.get("receiver_longitude"))
            yield Record(
                source=source, name=name, data=data, sampling_rate=rate,
                present=np.ones(3, bool), kind="noise" if is_noise else "event",
                p_seconds=None if math.isnan(p) else p / rate,
                s_seconds=None if math.isnan(s) else s / rate,
                network=str(row.get("network_code", "")), station=str(row.get("receiver_code", "")),
                event_id="" if is_noise else f"{source}:{row.get('source_id', name)}",
                region=_region_of(source, row.get("receiver_latitude"), row.get("receiver_longitude")),
                start_time=_timestamp(row.get("trace_start_time")),
                magnitude=_float(row.get("source_magnitude")),
                snr_db=max(snr_values) if snr_values else math.nan,
                distance_km=math.nan if is_noise else dist,
            )


READER = Reader(detect=detect, keys=_hdf5_set_keys, read=read_stead, chunk=256)
