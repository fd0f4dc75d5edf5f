"""SeisBench-format sets: bucketed ``waveforms.hdf5`` + ``metadata.csv`` (e.g. ``seisbench-ipoc-dummy``).

``trace_name`` like ``bucket0$0,:3,:1200``; component and dimension order and the sampling rate from
``data_format``. When the metadata has no P pick (``trace_p_arrival_sample`` /
``trace_P_arrival_sample``), **P is predicted** as the first P arrival (``p``/``P``) of
``obspy.taup.TauPyModel("iasp91")`` from the hypocentre (``source_*``) to the station (``station_*``;
elevation ignored), assuming the trace starts at ``trace_start_time``. Predicted picks can be off by a
second or more; ``s_index`` stays -1. ``distance_km`` from the source and station coordinates.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from seisgrid.seismic.labelled.base import (
    Reader,
    Record,
    Skip,
    _float,
    _hdf5_set_keys,
    _hdf5_set_metadata,
    _region_of,
    _timestamp,
    distance_km,
)
from seisgrid.seismic.windowstore import COMPONENTS

if TYPE_CHECKING:
    from obspy.taup import TauPyModel


def detect(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds a SeisBench-format set.

    Parameters
    ----------
    folder : pathlib.Path
        A local folder.

    Returns
    -------
    bool
        ``waveforms.hdf5`` (with a ``data_format`` group) + ``metadata.csv``.
    """
    if (folder / "waveforms.hdf5").exists() and (folder / "metadata.csv").exists():
        import h5py

        with h5py.File(folder / "waveforms.hdf5", "r") as f:
            return "data_format" in f
    return False


_TAUP: dict[str, TauPyModel] = {}


def _taup_p_seconds(depth_km, src_lat, src_lon, sta_lat, sta_lon) -> float | None:
    """First P arrival (p or P) in s after origin, iasp91, station elevation ignored."""
    from obspy.geodetics import locations2degrees
    from obspy.taup import TauPyModel

    if "iasp91" not in _TAUP:
        _TAUP["iasp91"] = TauPyModel("iasp91")
    values = [_float(v) for v in (depth_km, src_lat, src_lon, sta_lat, sta_lon)]
    if any(math.isnan(v) for v in values):
        return None
    depth, a, b, c, d = values
    degrees = locations2degrees(a, b, c, d)
    arrivals = _TAUP["iasp91"].get_travel_times(source_depth_in_km=max(depth, 0.0),
                                                distance_in_degree=degrees, phase_list=["p", "P"])
    return min(a.time for a in arrivals) if arrivals else None


def read_seisbench(folder: str | os.PathLike, names: Iterable[str] | None = None,
                   source: str | None = None) -> Iterator[Record | Skip]:
    """Records of a SeisBench-format folder (bucketed ``waveforms.hdf5`` + ``metadata.csv``).

    Component order from ``data_format/component_order`` (default ZNE), dimension order from
    ``data_format/dimension_order`` (``CW`` channel-first, or ``WC``), rate from
    ``trace_sampling_rate_hz`` or ``data_format/sampling_rate``. Without a P pick in the metadata, P is
    **predicted** with TauP (iasp91) from the hypocentre and station, assuming the trace starts at the
    origin time unless ``source_origin_time`` is given.

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
        One per metadata row: the record (``p_predicted`` when P comes from TauP), or why it cannot be used.
    """
    import h5py

    folder = pathlib.Path(folder)
    source = source or folder.name
    meta = _hdf5_set_metadata(folder, names)

    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)

    with h5py.File(folder / "waveforms.hdf5", "r") as f:
        fmt = f.get("data_format")
        comp_order = text(fmt["component_order"][()]) if fmt is not None and "component_order" in fmt else "ZNE"
        dim_order = text(fmt["dimension_order"][()]) if fmt is not None and "dimension_order" in fmt else "CW"
        default_rate = float(fmt["sampling_rate"][()]) if fmt is not None and "sampling_rate" in fmt else math.nan
        for row in meta.to_dict("records"):
            name = row["trace_name"]
            bucket, _, index = name.partition("$")
            try:
                i = int(index.split(",")[0]) if index else None
                x = np.asarray(f["data"][bucket][i] if i is not None else f["data"][bucket][()], dtype="float64")
            except (KeyError, ValueError, IndexError) as exc:
                yield Skip(source, name, f"trace not found in waveforms.hdf5 ({exc})")
                continue
            if dim_order.upper().startswith("W"):
                x = x.T
            comps = [{"1": "N", "2": "E"}.get(c, c) for c in comp_order.upper()]
            if x.ndim != 2 or x.shape[0] != len(comps) or sorted(comps) != ["E", "N", "Z"]:
                yield Skip(source, name, f"expected {len(comps)}×samples ({comp_order}), found {x.shape}")
                continue
            data = np.stack([x[comps.index(c)] for c in COMPONENTS])
            rate = _float(row.get("trace_sampling_rate_hz"))
            rate = default_rate if math.isnan(rate) else rate
            if math.isnan(rate) or rate <= 0:
                yield Skip(source, name, "no sampling rate (trace_sampling_rate_hz or data_format/sampling_rate)")
                continue
            start = _timestamp(row.get("trace_start_time"))
            p = s = None
            predicted = False
            for key in ("trace_p_arrival_sample", "trace_P_arrival_sample", "trace_Pg_arrival_sample"):
                if not math.isnan(_float(row.get(key))):
                    p = _float(row[key]) / rate
                    break
            for key in ("trace_s_arrival_sample", "trace_S_arrival_sample", "trace_Sg_arrival_sample"):
                if not math.isnan(_float(row.get(key))):
                    s = _float(row[key]) / rate
                    break
            if p is None:
                travel = _taup_p_seconds(row.get("source_depth_km"), row.get("source_latitude_deg"),
                                         row.get("source_longitude_deg"), row.get("station_latitude_deg"),
                                         row.get("station_longitude_deg"))
                if travel is not None:
                    origin = _timestamp(row.get("source_origin_time"))
                    offset = 0.0 if np.isnat(origin) or np.isnat(start) else (
                        (origin - start) / np.timedelta64(1, "ns") / 1e9)
                    p, predicted = offset + travel, True
            event = row.get("source_id")
            if event is None or (isinstance(event, float) and math.isnan(event)):
                event = row.get("source_origin_time", row.get("trace_start_time", name))
            yield Record(
                source=source, name=name, data=data, sampling_rate=rate, present=np.ones(3, bool),
                kind="event", p_seconds=p, s_seconds=s,
                network=str(row.get("station_network_code", "")), station=str(row.get("station_code", "")),
                event_id=f"{source}:{event}",
                region=_region_of(source, row.get("station_latitude_deg"), row.get("station_longitude_deg")),
                start_time=start, magnitude=_float(row.get("source_magnitude")), p_predicted=predicted,
                distance_km=distance_km(row.get("source_latitude_deg"), row.get("source_longitude_deg"),
                                        row.get("station_latitude_deg"), row.get("station_longitude_deg")),
            )


READER = Reader(detect=detect, keys=_hdf5_set_keys, read=read_seisbench, chunk=256)
