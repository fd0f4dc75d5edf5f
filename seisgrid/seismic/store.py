"""Reading an ingested waveform store: inventory, ObsPy streams for any span, lazy xarray views.

With xarray alone
-----------------
Each station is a Zarr group ``NET.STA`` holding one 1-D array per channel, and the root's
consolidated metadata lists them (written at the end of every ingest run), so::

    import xarray as xr
    ds = xr.open_zarr("waveforms.zarr", group="SY.ST01")       # one station: a variable per channel
    tree = xr.open_datatree("waveforms.zarr", engine="zarr")   # every station, lazily

open without a warning. ``xr.open_zarr("waveforms.zarr")`` without ``group`` is an empty Dataset: the
root holds no arrays. Those views index samples (dimension ``sample_<id>``), show gaps as the fill
value (int32 -2147483648; pass ``use_zarr_fill_value_as_mask=True`` for NaN) and have no time
coordinate; :meth:`Archive.to_dataset` (one station, a lazy ``time`` coordinate, gaps masked on
request) and :meth:`Archive.to_dataarray` (one channel) add them. A store written before consolidated
metadata existed opens with ``consolidated=False`` (or is consolidated by any ingest run over it).

Errors: an unparseable time raises :class:`~seisgrid.errors.ConfigError` naming the argument; an
unknown channel or station raises :class:`~seisgrid.errors.StorageError` naming it.
"""

from __future__ import annotations

import difflib
import io
import math
from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import obspy
import xarray as xr

from seisgrid import manifest, storage
from seisgrid.errors import ConfigError, SeisgridError, StorageError
from seisgrid.seismic.layout import (
    DAY_NS,
    FILL_VALUES,
    MANIFEST,
    NS,
    STORE_KIND,
    channel_codes,
    iso_ns,
    sample_offset_ns,
    sample_position,
    store_id,
)

if TYPE_CHECKING:
    import datetime
    import os
    from typing import TypeAlias

    #: A time argument: ISO 8601 string, UTCDateTime, datetime, numpy datetime64 or epoch seconds.
    TimeLike: TypeAlias = str | obspy.UTCDateTime | datetime.datetime | np.datetime64 | float


def _to_ns(t, name: str = "time") -> int:
    """Nanoseconds since 1970 of a time argument; ConfigError naming ``name`` when it is not a time."""
    if isinstance(t, obspy.UTCDateTime):
        return t.ns
    if isinstance(t, (np.datetime64,)):
        return int(t.astype("datetime64[ns]").astype(np.int64))
    try:
        if isinstance(t, bool) or not isinstance(t, (str, int, float)) and not hasattr(t, "isoformat"):
            raise TypeError
        if isinstance(t, str) and not t.strip():
            raise ValueError
        return obspy.UTCDateTime(t).ns
    except Exception:
        raise ConfigError(f"{name}={t!r}: not a time; expected an ISO 8601 UTC time such as "
                          "2021-01-01T23:50:00 (or a date such as 2021-01-01)") from None


def _span(start, end, ordered: bool = False) -> tuple[int | None, int | None]:
    """Both times in ns (None stays None); with ``ordered``, ConfigError unless start < end."""
    lo = _to_ns(start, "start") if start is not None else None
    hi = _to_ns(end, "end") if end is not None else None
    if ordered and lo is not None and hi is not None and hi <= lo:
        raise ConfigError(f"end={end!r} is not after start={start!r}: expected start < end")
    return lo, hi


class Archive:
    """An ingested waveform store (see :mod:`seisgrid.seismic.ingest` for the layout).

    Parameters
    ----------
    url : str
        Store path or URL (``s3://...``).
    storage_options : dict, optional
        fsspec options; default from ``seisgrid.storage.<protocol>``.

    Examples
    --------
    >>> archive = seisgrid.open_archive("store.zarr")          # doctest: +SKIP
    >>> archive.ids                                            # doctest: +SKIP
    ['SY.ST01..HHE', ...]
    >>> st = archive.stream("SY.ST01..HHZ", "2021-01-01T23:50", "2021-01-02T00:10")  # doctest: +SKIP
    >>> archive.to_dataarray("SY.ST01..HHZ")                   # lazy, dask-backed  # doctest: +SKIP
    """

    def __init__(self, url: str | os.PathLike, storage_options: dict | None = None) -> None:
        self.url = str(url)
        self.options = storage.storage_options(self.url) if storage_options is None else storage_options
        # Each node's own zarr.json, not the consolidated copy: exact even while an ingest runs.
        self.root = storage.open_group(self.url, mode="r", options=self.options, use_consolidated=False)
        if self.root.attrs.get("kind") != STORE_KIND:
            raise StorageError(f"{self.url}: not a seisgrid waveform store (run `seisgrid ingest` first)")
        self._arrays = {}
        self._stations: dict[str, list[str]] = {}
        self._blocks: dict[str, list[tuple[int, int, str]]] | None = None
        for station_name, station in self.root.groups():
            if station_name == MANIFEST:
                continue
            for cid, array in station.arrays():
                self._arrays[cid] = array
                self._stations.setdefault(station_name, []).append(cid)

    def __repr__(self) -> str:
        return f"<seisgrid.Archive {self.url}: {len(self.ids)} channels>"

    @property
    def ids(self) -> list[str]:
        """Channel ids ``NET.STA.LOC.CHA`` in the store, sorted."""
        return sorted(self._arrays)

    @property
    def stations(self) -> list[str]:
        """Station groups ``NET.STA`` in the store, sorted."""
        return sorted(self._stations)

    def _array(self, cid: str):
        array = self._arrays.get(cid)
        if array is None:  # ObsPy's id of a channel stored under the safe-name rule ("..." → "--.--..")
            array = self._arrays.get(store_id(cid))
        if array is None:
            raise StorageError(_unknown("channel", cid, self.url, self.ids))
        return array

    def channel(self, cid: str) -> dict:
        """Attributes of channel ``cid``: sampling_rate, origin, dtype, segments (sample index pairs), ..."""
        return dict(self._array(cid).attrs)

    def _time(self, attrs, index: int) -> int:
        return attrs["origin_ns"] + sample_offset_ns(index, attrs["sampling_rate"])

    def _index(self, attrs, t_ns: int, up: bool) -> int:
        exact = sample_position(t_ns - attrs["origin_ns"], attrs["sampling_rate"])
        return math.ceil(exact) if up else math.floor(exact)

    def segments(self, cid: str) -> list[tuple[int, int]]:
        """Contiguous data spans of ``cid`` as (first, end) sample indices (end exclusive)."""
        return [tuple(s) for s in self.channel(cid)["segments"]]

    def content_blocks(self) -> dict[str, list[tuple[int, int, str]]]:
        """Per channel id, ``(start_ns, end_ns, digest)`` of every block of samples ingest wrote.

        Blocks are the store's chunks (an hour) with a digest of their samples
        (:func:`seisgrid.seismic.ingest.block_digests`): a block whose digest is unchanged holds the same
        samples. A day ingested before blocks were recorded is one block whose digest is its manifest
        fingerprint (its input files), so any change of its inputs changes the whole day.
        """
        if self._blocks is None:
            blocks: dict[str, list[tuple[int, int, str]]] = {}
            for (cid, label), record in manifest.read_store_records(self.root.store, "days").items():
                day_ns = int(np.datetime64(label, "D").astype("datetime64[ns]").astype(np.int64))
                found = record.get("blocks")
                if not record.get("samples"):
                    continue
                if found:
                    step = round(found["seconds"] * NS)
                    blocks.setdefault(cid, []).extend(
                        (found["start_ns"] + i * step, found["start_ns"] + (i + 1) * step, digest)
                        for i, digest in enumerate(found["digests"]))
                else:
                    blocks.setdefault(cid, []).append((day_ns, day_ns + DAY_NS, str(record.get("fingerprint"))))
            self._blocks = {cid: sorted(b) for cid, b in blocks.items()}
        return self._blocks

    def inventory(self) -> dict:
        """Per channel: rate, dtype, span, samples and gaps (with times); and the store's total samples."""
        channels = []
        for cid in self.ids:
            attrs = self.channel(cid)
            segs = attrs["segments"]
            gaps = [{"start": iso_ns(self._time(attrs, a[1])), "end": iso_ns(self._time(attrs, b[0])),
                     "samples": int(b[0] - a[1])} for a, b in zip(segs, segs[1:], strict=False)]
            channels.append({
                "id": cid, "sampling_rate": attrs["sampling_rate"], "dtype": attrs["dtype"],
                "start": iso_ns(self._time(attrs, segs[0][0])) if segs else None,
                "end": iso_ns(self._time(attrs, segs[-1][1])) if segs else None,
                "samples": int(attrs["samples"]), "segments": len(segs), "gaps": gaps,
            })
        return {"store": self.url, "channels": channels, "samples": int(sum(c["samples"] for c in channels))}

    def stream(self, cid: str, start: TimeLike | None = None, end: TimeLike | None = None) -> obspy.Stream:
        """The samples of ``cid`` in [start, end) as an ObsPy Stream, one Trace per contiguous segment.

        Parameters
        ----------
        cid : str
            Channel id ``NET.STA.LOC.CHA``.
        start, end : str or obspy.UTCDateTime, optional
            Span (default: everything). May cross day boundaries and gaps.
        """
        lo_ns, hi_ns = _span(start, end)
        attrs = self.channel(cid)
        array = self._array(cid)
        lo = self._index(attrs, lo_ns, up=True) if lo_ns is not None else 0
        hi = self._index(attrs, hi_ns, up=True) if hi_ns is not None else array.shape[0]
        net, sta, loc, cha = (attrs[k] for k in ("network", "station", "location", "channel")) \
            if "network" in attrs else channel_codes(attrs.get("id", cid))
        traces = []
        for a, b in attrs["segments"]:
            a, b = max(a, lo), min(b, hi)
            if a >= b:
                continue
            header = {"network": net, "station": sta, "location": loc, "channel": cha,
                      "sampling_rate": attrs["sampling_rate"],
                      "starttime": obspy.UTCDateTime(ns=self._time(attrs, a))}
            data = np.asarray(array[a:b])
            # Zarr returns a dtype whose byteorder reads "<" rather than native "="; ObsPy's miniSEED
            # writer then byte-swaps the samples. A view with the canonical dtype avoids that.
            traces.append(obspy.Trace(data.view(np.dtype(data.dtype.name)), header=header))
        return obspy.Stream(traces)

    def _bounds(self, attrs, start, end) -> tuple[int, int]:
        """Sample range [lo, hi) of a span (default: the channel's data), not clipped to the array."""
        lo_ns, hi_ns = _span(start, end)
        segs = attrs["segments"]
        lo = self._index(attrs, lo_ns, up=True) if lo_ns is not None else (segs[0][0] if segs else 0)
        hi = self._index(attrs, hi_ns, up=True) if hi_ns is not None else (segs[-1][1] if segs else 0)
        lo = max(lo, 0)
        return lo, max(hi, lo)

    def _samples(self, cid: str, attrs, lo: int, hi: int, masked: bool):
        """Lazy samples [lo, hi) of ``cid``; beyond the array's end: the fill value (NaN when masked)."""
        array = self._array(cid)
        inside = min(hi, array.shape[0])
        data = da.from_zarr(array, chunks=array.chunks)[lo:max(inside, lo)]
        if hi > max(inside, lo):
            pad = da.full(hi - max(inside, lo), FILL_VALUES[attrs["dtype"]], dtype=data.dtype,
                          chunks=array.chunks[0])
            data = da.concatenate([data, pad])
        if masked:
            index = da.arange(lo, hi, chunks=data.chunks)
            valid = da.zeros_like(index, dtype=bool)
            for a, b in attrs["segments"]:
                valid = valid | ((index >= a) & (index < b))
            data = da.where(valid, data.astype("float64"), np.nan)
        return data

    @staticmethod
    def _times(attrs, lo: int, hi: int, chunks):
        index = da.arange(lo, hi, chunks=chunks, dtype="int64")
        period_ns = NS / attrs["sampling_rate"]
        if period_ns.is_integer():  # the usual rates: exact integer nanoseconds
            offsets = index * int(period_ns)
        else:
            offsets = (index * period_ns).round().astype("int64")
        return (offsets + attrs["origin_ns"]).astype("datetime64[ns]")

    def to_dataarray(self, cid: str, start: TimeLike | None = None, end: TimeLike | None = None,
                     masked: bool = False) -> xr.DataArray:
        """A lazy, dask-backed view of ``cid`` (dimension ``sample``, lazy ``time`` coordinate).

        Nothing is read until computed. ``masked=True`` returns float64 with NaN in gaps.
        """
        attrs = self.channel(cid)
        lo, hi = self._bounds(attrs, start, end)
        hi = min(hi, self._array(cid).shape[0])
        lo = min(lo, hi)
        data = self._samples(cid, attrs, lo, hi, masked)
        return xr.DataArray(
            data, dims=("sample",), coords={"time": ("sample", self._times(attrs, lo, hi, data.chunks))},
            name=attrs.get("id", cid),
            attrs={k: attrs[k] for k in ("id", "sampling_rate", "origin", "dtype", "units") if k in attrs}
            | {"first_sample": lo},
        )

    def to_dataset(self, station: str, start: TimeLike | None = None, end: TimeLike | None = None,
                   masked: bool = False) -> xr.Dataset:
        """A lazy, dask-backed Dataset of one station: a variable per channel, a lazy ``time`` coordinate.

        Channels on the same sample grid (same rate and origin: the usual components of a station)
        share the dimension ``sample`` over the union of their spans; a channel without data at the
        start or end of it holds the fill value there (NaN with ``masked=True``, which also turns gaps
        into NaN). Channels on other grids get their own dimension ``sample_<id>`` and coordinate
        ``time_<id>``.

        Parameters
        ----------
        station : str
            Station group ``NET.STA`` (see :attr:`stations`).
        start, end : str or obspy.UTCDateTime, optional
            Span (default: all data of the station).
        masked : bool
            float64 with NaN in gaps instead of the channels' own dtype with the fill value.
        """
        cids = self._stations.get(station)
        if cids is None:
            raise StorageError(_unknown("station", station, self.url, self.stations))
        attrs = {cid: self.channel(cid) for cid in sorted(cids)}
        grids: dict[tuple, list[str]] = {}
        for cid, a in attrs.items():
            grids.setdefault((a["sampling_rate"], a["origin_ns"]), []).append(cid)
        main = max(grids.values(), key=len)
        variables, coords = {}, {}
        for members in grids.values():
            bounds = [self._bounds(attrs[c], start, end) for c in members]
            lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)  # equal when start/end are given
            shared = members is main
            dim = "sample" if shared else f"sample_{members[0]}"
            for cid in members:
                data = self._samples(cid, attrs[cid], lo, hi, masked)
                if not shared:
                    dim = f"sample_{cid}"
                    coords[f"time_{cid}"] = (dim, self._times(attrs[cid], lo, hi, data.chunks))
                variables[cid] = xr.Variable((dim,), data, attrs={
                    k: attrs[cid][k] for k in ("id", "sampling_rate", "origin", "dtype", "units") if k in attrs[cid]})
            if shared:
                coords["time"] = ("sample", self._times(attrs[members[0]], lo, hi, data.chunks))
                first_sample = lo
        return xr.Dataset(variables, coords=coords,
                          attrs={"station": station, "store": self.url, "first_sample": first_sample})

    def export(self, cid: str, start: TimeLike, end: TimeLike, out: str) -> dict:
        """Write ``cid`` between ``start`` and ``end`` to a miniSEED file (local path or URL).

        Raises ConfigError for an unparseable time or ``end`` not after ``start``, StorageError for an
        unknown channel, SeisgridError when the span holds no data; nothing is written then.
        """
        if not str(out or "").strip():
            raise ConfigError(f"out={out!r}: expected the path or URL of the miniSEED file to write")
        _span(start, end, ordered=True)
        stream = self.stream(cid, start, end)
        if not stream:
            raise SeisgridError(f"{cid}: no data between {start} and {end} in {self.url}")
        pieces = []
        for tr in stream:
            encodings = {"int32": ("STEIM2", "INT32"), "float32": ("FLOAT32",),
                         "float64": ("FLOAT64",)}[str(tr.data.dtype)]
            for encoding in encodings:  # Steim-2 cannot hold differences beyond 30 bits: then plain int32
                buf = io.BytesIO()
                try:
                    tr.write(buf, format="MSEED", encoding=encoding, reclen=4096)
                except Exception:
                    continue
                pieces.append(buf.getvalue())
                break
        storage.write_bytes(str(out), b"".join(pieces))  # parent folders made; atomic
        return {"path": str(out), "id": cid, "traces": len(stream),
                "samples": int(sum(tr.stats.npts for tr in stream))}


def _unknown(kind: str, name: str, url: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
    listed = ", ".join(known[:12]) + (f", … ({len(known)} in all)" if len(known) > 12 else "")
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{name!r}: no such {kind} in {url}{hint} ({kind}s: {listed or 'none'})"


def open_archive(store: str | os.PathLike, storage_options: dict | None = None) -> Archive:
    """The :class:`Archive` of an ingested store (path or URL)."""
    return Archive(store, storage_options=storage_options)


def inventory(store: str | os.PathLike, storage_options: dict | None = None) -> dict:
    """Channels, spans, gaps and sample counts of an ingested waveform store.

    Parameters
    ----------
    store : str
        Store path or URL (``s3://...``).
    storage_options : dict, optional
        fsspec options; default from ``seisgrid.storage.<protocol>``.

    Returns
    -------
    dict
        ``store``, ``samples`` (all channels) and ``channels``: per channel ``id, sampling_rate, dtype,
        start, end, samples, segments, gaps [{start, end, samples}]``.

    Raises
    ------
    StorageError
        ``store`` does not exist or is not a waveform store.
    """
    return Archive(store, storage_options=storage_options).inventory()


def export(store: str | os.PathLike, channel_id: str, start: TimeLike, end: TimeLike, out: str,
           storage_options: dict | None = None) -> dict:
    """Write one channel of an ingested store between two times to a miniSEED file.

    Parameters
    ----------
    store : str
        Store path or URL.
    channel_id : str
        ``NET.STA.LOC.CHA`` as in :func:`inventory` (ObsPy's ``...`` is found as ``--.--..``).
    start, end : str or obspy.UTCDateTime
        ISO 8601 UTC times, e.g. ``2021-01-01T23:50:00``; the span may cross days and gaps.
    out : str
        miniSEED file to write (path or URL); its folder is created when missing.
    storage_options : dict, optional
        fsspec options of the store; default from ``seisgrid.storage.<protocol>``.

    Returns
    -------
    dict
        ``path, id, traces`` (one per contiguous segment) and ``samples``.

    Raises
    ------
    ConfigError
        ``start``/``end`` is not a time, or ``end`` is not after ``start`` (checked before the store
        is opened).
    StorageError
        The store cannot be opened, or it has no channel ``channel_id``.
    SeisgridError
        No data of the channel in the span.
    """
    _span(start, end, ordered=True)
    return Archive(store, storage_options=storage_options).export(channel_id, start, end, out)
