"""Reading an ingested waveform store: inventory, ObsPy streams for any span, lazy xarray views."""

from __future__ import annotations

import io
import math

import dask.array as da
import numpy as np
import obspy
import xarray as xr

from seisgrid import storage
from seisgrid.errors import SeisgridError, StorageError
from seisgrid.seismic.layout import (
    NS,
    STORE_KIND,
    iso_ns,
    sample_offset_ns,
    sample_position,
)


def _to_ns(t) -> int:
    return obspy.UTCDateTime(t).ns


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

    def __init__(self, url, storage_options=None):
        self.url = str(url)
        self.options = storage.storage_options(self.url) if storage_options is None else storage_options
        self.root = storage.open_group(self.url, mode="r", options=self.options)
        if self.root.attrs.get("kind") != STORE_KIND:
            raise StorageError(f"{self.url}: not a seisgrid waveform store (run `seisgrid ingest` first)")
        self._arrays = {}
        for station_name, station in self.root.groups():
            if station_name.startswith("_"):
                continue
            for cid, array in station.arrays():
                self._arrays[cid] = array

    def __repr__(self):
        return f"<seisgrid.Archive {self.url}: {len(self.ids)} channels>"

    @property
    def ids(self) -> list[str]:
        """Channel ids ``NET.STA.LOC.CHA`` in the store, sorted."""
        return sorted(self._arrays)

    def _array(self, cid: str):
        try:
            return self._arrays[cid]
        except KeyError:
            raise SeisgridError(f"{cid}: no such channel in {self.url}; channels: {', '.join(self.ids)}") from None

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

    def inventory(self) -> dict:
        """Per channel: rate, dtype, span, samples and gaps (with times); and the store's total samples."""
        channels = []
        for cid in self.ids:
            attrs = self.channel(cid)
            segs = attrs["segments"]
            gaps = [{"start": iso_ns(self._time(attrs, a[1])), "end": iso_ns(self._time(attrs, b[0])),
                     "samples": int(b[0] - a[1])} for a, b in zip(segs, segs[1:])]
            channels.append({
                "id": cid, "sampling_rate": attrs["sampling_rate"], "dtype": attrs["dtype"],
                "start": iso_ns(self._time(attrs, segs[0][0])) if segs else None,
                "end": iso_ns(self._time(attrs, segs[-1][1])) if segs else None,
                "samples": int(attrs["samples"]), "segments": len(segs), "gaps": gaps,
            })
        return {"store": self.url, "channels": channels, "samples": int(sum(c["samples"] for c in channels))}

    def stream(self, cid: str, start=None, end=None) -> obspy.Stream:
        """The samples of ``cid`` in [start, end) as an ObsPy Stream, one Trace per contiguous segment.

        Parameters
        ----------
        cid : str
            Channel id ``NET.STA.LOC.CHA``.
        start, end : str or obspy.UTCDateTime, optional
            Span (default: everything). May cross day boundaries and gaps.
        """
        attrs = self.channel(cid)
        array = self._array(cid)
        lo = self._index(attrs, _to_ns(start), up=True) if start is not None else 0
        hi = self._index(attrs, _to_ns(end), up=True) if end is not None else array.shape[0]
        net, sta, loc, cha = cid.split(".")
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

    def to_dataarray(self, cid: str, start=None, end=None, masked: bool = False) -> xr.DataArray:
        """A lazy, dask-backed view of ``cid`` (dimension ``sample``, lazy ``time`` coordinate).

        Nothing is read until computed. ``masked=True`` returns float64 with NaN in gaps.
        """
        attrs = self.channel(cid)
        array = self._array(cid)
        segs = attrs["segments"]
        lo = self._index(attrs, _to_ns(start), up=True) if start is not None else (segs[0][0] if segs else 0)
        hi = self._index(attrs, _to_ns(end), up=True) if end is not None else (segs[-1][1] if segs else 0)
        lo, hi = max(lo, 0), min(max(hi, lo), array.shape[0])
        data = da.from_zarr(array, chunks=array.chunks)[lo:hi]
        if masked:
            index = da.arange(lo, hi, chunks=data.chunks)
            valid = da.zeros_like(index, dtype=bool)
            for a, b in segs:
                valid = valid | ((index >= a) & (index < b))
            data = da.where(valid, data.astype("float64"), np.nan)
        index = da.arange(lo, hi, chunks=data.chunks, dtype="int64")
        period_ns = NS / attrs["sampling_rate"]
        if period_ns.is_integer():  # the usual rates: exact integer nanoseconds
            offsets = index * int(period_ns)
        else:
            offsets = (index * period_ns).round().astype("int64")
        time = (offsets + attrs["origin_ns"]).astype("datetime64[ns]")
        return xr.DataArray(
            data, dims=("sample",), coords={"time": ("sample", time)}, name=cid,
            attrs={k: attrs[k] for k in ("id", "sampling_rate", "origin", "dtype", "units") if k in attrs}
            | {"first_sample": lo},
        )

    def export(self, cid: str, start, end, out: str) -> dict:
        """Write ``cid`` between ``start`` and ``end`` to a miniSEED file (local path or URL)."""
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
        fs, path = storage.filesystem(out)
        with fs.open(path, "wb") as f:
            f.write(b"".join(pieces))
        return {"path": out, "traces": len(stream), "samples": int(sum(tr.stats.npts for tr in stream))}
