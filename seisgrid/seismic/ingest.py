"""miniSEED archive → Zarr v3 waveform store: parallel, lossless, gap-aware, resumable.

How it works
------------
1. **Scan** (one Dask task per new or changed file): index every record of the file byte by byte
   (:mod:`seisgrid.seismic.mseed`), group records by (channel, UTC day), note every byte that is not a
   readable record and any disagreement between the SDS file name and the record headers. The result
   is kept in the store's manifest (``_manifest/files``), so an unchanged file is never scanned twice.
2. **Plan** (driver): one task per (channel, day) listing the byte ranges of every file that holds
   samples of that day. A task whose inputs (files, sizes, versions, byte ranges) are unchanged since
   its manifest record (``_manifest/days/<id>/<day>``) is skipped.
3. **Write** (one Dask task per channel-day): decode the records with ObsPy, place samples on the
   channel's regular sample grid, and write the whole day — one Zarr shard — in one region write.
   The manifest record is written after the data, so an interrupted run redoes exactly the days
   without a record and ends with the same store as an uninterrupted one.
4. **Consolidate** (driver): per channel, merge the day records into segments, sample and gap counts
   (array attributes, read by ``seisgrid inventory`` and :class:`~seisgrid.seismic.store.Archive`).

Store layout: group ``NET.STA``, array ``NET.STA.LOC.CHA`` (1-D, the channel's own dtype: int32 for
integer encodings, float32/float64 for float encodings), sample ``i`` at ``origin + i / sampling_rate``.
``origin`` is midnight UTC of 1 January of the first year of data (or ``--origin``) plus the sub-sample
offset of the channel's first sample, so every day is ``samples_per_day`` samples and one shard.
Chunks hold ``chunk_seconds`` of samples (an hour), compressed with Blosc(zstd, byte shuffle).

Rules
-----
- **Gaps** are never filled with invented data: missing samples hold the fill value (int32:
  -2147483648, floats: NaN) and are excluded by the recorded segments (``attrs["segments"]``).
- **Overlaps** ("first wins"): traces are placed in order of start time, ties broken by source file URL
  and then by ObsPy's order within the file; a sample already placed is never replaced. Each
  overlapping trace counts one overlap; overlapped and conflicting (different value) samples are counted.
- **Timing**: a trace whose start falls between grid samples is placed at the nearest sample; the
  largest such shift (in samples) is recorded per day as ``max_snap_samples``.
- **Sampling rate and dtype** are fixed per channel by its data (the rate and dtype with the most samples
  of a file, the first data of a store); records with another rate or a dtype that cannot be cast
  losslessly are reported and not ingested (no silent resampling). Records above 5 kHz (the top of SEED's
  band codes; :data:`seisgrid.seismic.scan.MAX_SAMPLING_RATE`) or below one sample per day are reported
  and not ingested: in a corrupt header they are the usual symptom, and a day of 5 kHz samples is
  already 1.7 GB in one write task.
- **Corrupt records** (a Steim integrity check that fails, a sample count larger than the record can
  hold, a data offset outside the record, an invalid word order on a non-Steim record) are reported
  with their byte offset and not ingested; the indexer resynchronises at the next record header.
- **Channel names**: ids are ObsPy's ``NET.STA.LOC.CHA``; when the network and station codes are both
  empty (ObsPy's id ``...``) they are stored as ``--`` (``--.--.LOC.CHA``) so that the station group is
  a valid Zarr name; readers give such traces their empty codes back (:mod:`seisgrid.seismic.mseed`).

Which files are waveform data
-----------------------------
Every file under the source is listed (hidden files and the store itself, when it lies inside the
source, excepted); a folder whose files sit at SDS positions (``YEAR/NET/STA/CHA.TYPE/
NET.STA.LOC.CHA.TYPE.YEAR.DOY``) is recognised as an SDS tree (``source_layout: "sds"``). A file is
**not waveform data, skipped** — listed in ``files_not_waveform`` with the reason, not failed, and not
a reason for exit status 3 — only when both hold:

1. its extension names a known sidecar type: ``.csv .json .txt .md .yaml .yml .xml`` (StationXML,
   QuakeML) ``.log .png``, also gzipped (``catalog.csv.gz``) — :data:`~seisgrid.seismic.archive.SIDECAR_SUFFIXES`;
2. its content is not waveform data: for miniSEED, its first bytes are not a SEED record header (six
   digits or blanks, a quality or control-header letter, a blank); for ``--format`` other than MSEED,
   ObsPy cannot read it in that format.

Anything else that cannot be used stays **failed** with its reason (``files_failed``): an empty or
truncated ``.mseed``, a file without an extension that holds text, a ``.csv`` that starts with a SEED
header but is broken, ... So the synthetic archive's ``catalog.csv``, ``stations.csv``,
``transients.csv`` and ``archive.json`` are skipped, while ObsPy's deliberately broken test files
(``not.mseed``, ``emptyfile.mseed``, ...) are still reported as failed.

When no file gives waveform data — every file failed or is a sidecar, or nothing could be decoded —
:func:`ingest` raises :class:`NoWaveformDataError` naming the source and the reasons, and leaves
nothing behind: a store that this call created is removed; an existing store is kept. When some files
give data, the others are reported in the summary as before (the CLI exits with status 3).

Consolidated metadata
---------------------
At the end of every run (a resumed or a no-op rerun too) the metadata of the station groups and
channel arrays is consolidated into the root ``zarr.json`` (:func:`seisgrid.storage.consolidate_metadata`;
the manifest is left out, so the root stays small). xarray then opens the store without a listing
and without a warning (see :mod:`seisgrid.seismic.store`). The consolidated copy is a snapshot of the
last finished run; seisgrid itself always reads each node's own ``zarr.json``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import pathlib
import posixpath
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

import numcodecs.blosc
import numpy as np
import obspy
import zarr

from seisgrid import config, manifest, storage, versioned
from seisgrid.errors import ConfigError, SeisgridError, StorageError
from seisgrid.seismic.archive import SourceFile, find_files, source_layout
from seisgrid.seismic.layout import (
    DAY_NS,
    FILL_VALUES,
    MANIFEST,
    STORE_KIND,
    day_label,
    iso_ns,
    sample_position,
    station_of,
)
from seisgrid.seismic.mseed import (
    ENCODING_DTYPES,
    NS,
    channel_codes,
    decode_records,
    index_records,
    trace_id,
)
from seisgrid.seismic.mseed import read_mseed_bytes as _read_mseed_bytes
from seisgrid.seismic.scan import lossless_cast, read_other, scan_file, split_sidecars
from seisgrid.seismic.verify import repair as repair_store
from seisgrid.seismic.verify import verify

logger = logging.getLogger("seisgrid")

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import zarr.codecs  # loaded with zarr; named here so that the type checker knows zarr.codecs
    from distributed import Client

    from seisgrid.cluster import LazyClient

# ------------------------------------------------------------------------------------------ write
def _decode_source(data: bytes, source: dict, base: int, cid: str, lo_ns: int, hi_ns: int):
    """Traces of channel ``cid`` touching [lo_ns, hi_ns) in one source's bytes, and failures.

    ``data`` starts at file offset ``base``.

    Fast path: the scan already chose this day's records (``runs``) and counted their samples, so the
    runs are decoded at once; only when that fails or falls short are the records indexed again and
    a corrupt record isolated by bisection.
    """
    if source["format"].upper() != "MSEED":
        return [tr for tr in read_other(data, source["format"]) if trace_id(tr.stats) == cid], []
    view = np.frombuffer(data, dtype=np.uint8)
    blob = b"".join(view[o - base:o - base + n].tobytes() for o, n in source["runs"])
    try:
        traces = list(_read_mseed_bytes(blob))
        if sum(tr.stats.npts for tr in traces) == source["nsamples"]:
            return traces, []
    except Exception:  # a corrupt record: find it below
        pass
    index = index_records(data)
    ids = np.array(index.ids) if len(index) else np.zeros(0, dtype=str)
    keep = (ids == cid) & (index.start_ns < hi_ns) & (index.end_ns > lo_ns) & (index.sampling_rate > 0)
    keep &= np.isin(index.encoding, list(ENCODING_DTYPES))
    return decode_records(data, index.select(keep))


def _day_buffer(placed, first: int, spd: int, dtype, fill) -> np.ndarray:
    """The day's sample buffer, holding the fill value where no trace will cover it.

    A view of the first trace when it alone covers the whole day (the usual SDS case, no copy), else a
    new buffer filled only where no trace starts to cover it.
    """
    for start, _, _, tr, _ in placed[:1]:
        if start <= first and start + tr.stats.npts >= first + spd and tr.data.dtype == dtype:
            return tr.data[first - start:first - start + spd]
    values = np.empty(spd, dtype=dtype)
    filled_to = 0
    for start, _, _, tr, _ in placed:  # fill only what no trace will overwrite
        lo, hi = max(start - first, 0), min(start + tr.stats.npts - first, spd)
        if lo > filled_to:
            values[filled_to:lo] = fill
        filled_to = max(filled_to, hi)
    values[filled_to:] = fill
    return values


def _write_day(task: dict, values: np.ndarray, first: int, store_url: str, store_options: dict) -> dict:
    """Write a day's samples (whole shards) in one region write; ``{"shards": {key: checksum}}`` of what was written.

    The checksum of every shard as written (:class:`~seisgrid.storage.ChecksumStore`): ``seisgrid verify``
    checks the store against them. Without ``task["checksums"]`` nothing is recorded.
    """
    store = storage.zarr_store(store_url, store_options)
    recorder = storage.ChecksumStore(store) if task.get("checksums", True) else None
    # The whole shard is written at once; testing each chunk for "all fill value" first (the default)
    # would cost an extra pass over the day's samples for nothing.
    array = zarr.open_array(recorder or store, path=task["array_path"], mode="r+",
                            config={"write_empty_chunks": True})
    array[first:first + len(values)] = values
    if recorder is None:
        return {}
    prefix = f"{task['array_path']}/c/"
    return {"shards": {key[len(prefix) - 2:]: digest for key, digest in sorted(recorder.checksums.items())
                       if key.startswith(prefix)}}


def block_digests(values: np.ndarray, block: int, start_ns: int, rate: float) -> dict:
    """Content digests of a day's samples in blocks of ``block`` samples (``ingest.digest_seconds``: 10 min).

    Detection compares them between runs to find the hours whose samples changed (a new file, a rewritten
    one) and recomputes only the windows that read them (:mod:`seisgrid.seismic.detect`).

    Returns
    -------
    dict
        ``start_ns`` (the day's first sample), ``samples`` (per block), ``seconds`` and ``digests``
        (BLAKE2b, 8 bytes, hex; one per block, in order).
    """
    view = np.ascontiguousarray(values)
    digests = [hashlib.blake2b(view[a:a + block].tobytes(), digest_size=8).hexdigest()
               for a in range(0, len(view), block)]
    return {"start_ns": int(start_ns), "samples": int(block), "seconds": block / rate, "digests": digests}


def write_channel_day(task: dict, source_options: dict, store_url: str, store_options: dict) -> dict:
    """Decode, place and write one channel-day (step 3 of the module docstring); returns its record."""
    # One task per core: Blosc's own threads would only compete with the other workers.
    numcodecs.blosc.use_threads = False
    cid, day, ch = task["id"], task["day"], task["channel"]
    rate, spd, origin_ns = ch["sampling_rate"], ch["samples_per_day"], ch["origin_ns"]
    dtype, fill = np.dtype(ch["dtype"]), FILL_VALUES[ch["dtype"]]
    store_day = day - ch["origin_day"]
    first = store_day * spd
    day_start_ns = origin_ns + store_day * DAY_NS
    record = {"id": cid, "day": day_label(day), "fingerprint": task["fingerprint"],
              "sources": [s["url"] for s in task["sources"]], "samples": 0, "segments": [], "overlaps": 0,
              "overlap_samples": 0, "conflicting_samples": 0, "max_snap_samples": 0.0, "failed": []}
    placed: list[tuple[int, int, int, obspy.Trace, float]] = []  # (start_index, order, position, trace, snap)
    for order, source in enumerate(task["sources"]):
        try:
            fs, path = storage.filesystem(source["url"], source_options)
            lo = min(r[0] for r in source["runs"])
            hi = max(r[0] + r[1] for r in source["runs"])
            if source.get("gzip"):
                data = gzip.decompress(fs.cat_file(path))[lo:hi]
            else:
                data = fs.cat_file(path, start=lo, end=hi)
            traces, failed = _decode_source(data, source, lo, cid, day_start_ns - NS, day_start_ns + DAY_NS + NS)
        except Exception as exc:
            record["failed"].append({"url": source["url"], "nbytes": 0,
                                     "reason": f"cannot decode: {type(exc).__name__}: {exc}"})
            continue
        for offset, nbytes, reason in failed:
            record["failed"].append({"url": source["url"], "nbytes": nbytes, "reason": reason, "offset": lo + offset})
        for tr in traces:
            if tr.stats.npts == 0:
                continue
            if not math.isclose(tr.stats.sampling_rate, rate, rel_tol=1e-9):
                record["failed"].append({"url": source["url"], "nbytes": 0, "reason":
                                         f"trace at {tr.stats.starttime} has {tr.stats.sampling_rate} Hz, "
                                         f"channel {cid} is {rate} Hz: not ingested (no resampling)"})
                continue
            cast = lossless_cast(tr.data, dtype)
            if cast is None:
                record["failed"].append({"url": source["url"], "nbytes": 0, "reason":
                                         f"trace at {tr.stats.starttime} is {tr.data.dtype}, channel {cid} "
                                         f"is {dtype}: not ingested (values would change)"})
                continue
            tr.data = cast
            exact = sample_position(tr.stats.starttime.ns - origin_ns, rate)
            start = round(exact)
            placed.append((start, order, len(placed), tr, float(exact - start)))
    placed.sort(key=lambda p: (p[0], p[1], p[2]))
    values = _day_buffer(placed, first, spd, dtype, fill)
    # Traces sorted by start: whatever earlier traces cover of [lo, hi) is exactly [lo, covered_to),
    # because they all start at or before lo. So "first wins" needs no per-sample mask.
    segments: list[list[int]] = []
    covered_to = first
    for start, _, _, tr, snap in placed:
        lo, hi = max(start, first), min(start + tr.stats.npts, first + spd)
        if lo >= hi:
            continue
        record["max_snap_samples"] = max(record["max_snap_samples"], abs(snap))
        overlap_end = min(hi, covered_to) if segments else lo
        if overlap_end > lo:
            record["overlaps"] += 1
            record["overlap_samples"] += overlap_end - lo
            record["conflicting_samples"] += int(np.count_nonzero(
                values[lo - first:overlap_end - first] != tr.data[lo - start:overlap_end - start]))
        fresh = max(lo, overlap_end)
        if fresh < hi and not np.shares_memory(values, tr.data):
            values[fresh - first:hi - first] = tr.data[fresh - start:hi - start]
        if segments and segments[-1][1] >= lo:
            segments[-1][1] = max(segments[-1][1], hi)
        else:
            segments.append([lo, hi])
        covered_to = max(covered_to, hi)
    record["segments"] = segments
    record["samples"] = int(sum(b - a for a, b in segments))
    if record["samples"]:
        record["blocks"] = block_digests(values, max(1, round(rate * task.get("digest_seconds", 600))), day_start_ns,
                                         rate)
        record.update(_write_day(task, values, first, store_url, store_options))
    manifest.write_record(store_url, store_options, "days", cid, record["day"], record)
    return record


# ---------------------------------------------------------------------------------------- driver
def sub_sample_offset(first_ns: int, rate: float) -> int:
    """Nanoseconds between midnight's sample grid and a channel's first sample (0 for on-grid data)."""
    period = NS / rate
    frac = math.fmod(first_ns % DAY_NS, period)
    return 0 if frac < 0.5 or period - frac < 0.5 else round(frac)


def _channel_params(cid: str, first_ns: int, rate: float, dtype: str, origin, chunk_seconds, shard_seconds):
    spd = round(rate * 86400)
    if spd <= 0 or abs(rate * 86400 - spd) > 1e-6:
        raise SeisgridError(f"{cid}: sampling rate {rate} Hz gives a non-integer number of samples per day")
    first_day = first_ns // DAY_NS
    if origin:
        origin_day = int(np.datetime64(str(origin)[:10], "D").astype(np.int64))
    else:
        year = str(np.datetime64(int(first_day), "D"))[:4]
        origin_day = int(np.datetime64(f"{year}-01-01", "D").astype(np.int64))
    frac = sub_sample_offset(first_ns, rate)
    shard = round(rate * shard_seconds)
    chunk = max(1, round(rate * chunk_seconds))
    if spd % shard:
        shard = spd
    while shard % chunk:
        chunk -= 1
    net, sta, loc, cha = channel_codes(cid)  # the codes as the data have them (safe-name rule)
    return {"sampling_rate": rate, "dtype": dtype, "samples_per_day": spd, "origin_day": origin_day,
            "origin_ns": origin_day * DAY_NS + frac, "origin": iso_ns(origin_day * DAY_NS + frac),
            "chunk": chunk, "shard": shard, "network": net, "station": sta, "location": loc, "channel": cha}


def _prepare_arrays(root: zarr.Group, plan_channels: dict, last_day: dict, settings: dict, codec: dict):
    """Create (or check and extend) one array per channel; returns channel params by id, or raises per channel."""
    params, errors = {}, {}
    for cid, info in sorted(plan_channels.items()):
        station = station_of(cid)
        path = f"{station}/{cid}"
        try:
            try:
                array = cast("zarr.Array", root[path])  # station/channel nodes are arrays (created below)
                attrs: dict[str, Any] = dict(array.attrs)
                p = {k: attrs[k] for k in ("sampling_rate", "dtype", "samples_per_day", "origin_day", "origin_ns",
                                            "origin", "network", "station", "location", "channel")}
                p["chunk"], p["shard"] = array.chunks[0], (array.shards or array.chunks)[0]
                if (not math.isclose(p["sampling_rate"], info["sampling_rate"], rel_tol=1e-9)
                        or p["dtype"] != info["dtype"]):
                    raise SeisgridError(
                        f"{cid}: new files have {info['sampling_rate']} Hz {info['dtype']}, the store has "
                        f"{p['sampling_rate']} Hz {p['dtype']}")
            except KeyError:
                p = _channel_params(cid, info["first_ns"], info["sampling_rate"], info["dtype"], **settings)
                group = root.require_group(station)
                group.attrs.update({"network": p["network"], "station": p["station"]})
                array = group.create_array(
                    cid, shape=(p["samples_per_day"],), dtype=p["dtype"], chunks=(p["chunk"],),
                    shards=(p["shard"],), fill_value=FILL_VALUES[p["dtype"]],
                    compressors=zarr.codecs.BloscCodec(cname=codec["cname"], clevel=codec["clevel"],
                                                       shuffle="shuffle"),
                    dimension_names=[f"sample_{cid}"],
                    attributes={**p, "id": cid, "units": "counts", "segments": [], "samples": 0, "gaps": 0,
                                "gap_fill_value": None if p["dtype"] != "int32" else int(FILL_VALUES["int32"]),
                                "overlap_rule": "first wins: earliest start, then source URL, then file order"},
                )
            if info["first_day"] < p["origin_day"]:
                raise SeisgridError(
                    f"{cid}: data from {day_label(info['first_day'])} is before the channel's origin "
                    f"{p['origin']}; ingest into a new store with an earlier --origin")
            needed = (last_day[cid] - p["origin_day"] + 1) * p["samples_per_day"]
            if array.shape[0] < needed:
                array.resize((needed,))
            params[cid] = {**p, "array_path": path}
        except SeisgridError as exc:
            errors[cid] = str(exc)
        except Exception as exc:  # e.g. codes Zarr cannot use as names: this channel only, with the reason
            errors[cid] = f"{cid}: cannot create its array in the store ({type(exc).__name__}: {exc})"
    return params, errors


def consolidate(root: zarr.Group, day_records: Iterable[dict]) -> dict:
    """Merge each channel's day records into segments, samples and gaps (its array attributes).

    Parameters
    ----------
    root : zarr.Group
        The store, open for writing.
    day_records : iterable of dict
        Every day record (manifest) of the channels to consolidate.
    """
    by_channel = defaultdict(list)
    for rec in day_records:
        by_channel[rec["id"]].append(rec)
    out = {}
    for cid in sorted(by_channel):
        segments = sorted(s for rec in by_channel.get(cid, []) for s in rec["segments"])
        merged: list[list[int]] = []
        for a, b in segments:
            if merged and merged[-1][1] >= a:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        array = root[f"{station_of(cid)}/{cid}"]
        summary: dict[str, Any] = {"segments": merged, "samples": int(sum(b - a for a, b in merged)),
                                   "gaps": max(len(merged) - 1, 0)}
        if any(array.attrs.get(k) != v for k, v in summary.items()):
            array.attrs.update(summary)
        out[cid] = summary
    return out


def _open_store(store: str, options: dict) -> zarr.Group:
    """The waveform store at ``store``, created when missing; refuses stores seisgrid did not make."""
    root = storage.open_group(store, mode="a", options=options, use_consolidated=False)
    kind = root.attrs.get("kind")
    if kind not in (None, STORE_KIND):
        raise StorageError(f"{store}: is a {kind!r} store, not a waveform store")
    if kind is None:
        if list(root.keys()):
            raise StorageError(f"{store}: is a Zarr store seisgrid did not create; choose a new path")
        root.attrs.update({"kind": STORE_KIND, "format_version": 1})
    for sub in ("files", "days"):
        root.require_group(f"{MANIFEST}/{sub}")
    return root


def _plan(records: dict, root: zarr.Group, fmt: str):
    """Channels (kind from their earliest data), sources per (channel, day), and rejections per file."""
    plan_channels: dict[str, dict] = {}
    for url in sorted(records):
        for cid, ch in records[url]["channels"].items():
            cur = plan_channels.get(cid)
            if cur is None or ch["first_ns"] < cur["first_ns"]:
                plan_channels[cid] = {"sampling_rate": ch["sampling_rate"], "dtype": ch["dtype"],
                                      "first_ns": ch["first_ns"]}
    for cid, want in plan_channels.items():
        try:
            existing = root.get(f"{station_of(cid)}/{cid}")
        except Exception:  # an id Zarr cannot hold as a name: _prepare_arrays reports it per file
            existing = None
        want["frac_ns"] = (int(cast("int", existing.attrs["origin_ns"])) % DAY_NS if existing is not None
                           else sub_sample_offset(want["first_ns"], want["sampling_rate"]))
    task_sources = defaultdict(list)
    rejected = defaultdict(list)  # url → reasons
    for url in sorted(records):
        for cid, ch in records[url]["channels"].items():
            want = plan_channels[cid]
            if (not math.isclose(ch["sampling_rate"], want["sampling_rate"], rel_tol=1e-9)
                    or ch["dtype"] != want["dtype"]):
                rejected[url].append(f"{cid}: {ch['sampling_rate']} Hz {ch['dtype']} differs from the channel's "
                                     f"{want['sampling_rate']} Hz {want['dtype']}; not ingested (no resampling)")
                continue
            for day, entry in ch["days"].items():
                if entry["start_ns"] >= (int(day) + 1) * DAY_NS + want["frac_ns"]:
                    continue  # listed only through the one-sample widening: all its samples are in day + 1
                task_sources[(cid, int(day))].append({"url": url, "size": records[url]["size"],
                                                      "version": records[url]["version"], "format": fmt,
                                                      "gzip": records[url].get("gzip", False),
                                                      "runs": entry["runs"], "nsamples": entry["nsamples"]})
    for cid, day in task_sources:
        plan_channels[cid]["first_day"] = min(plan_channels[cid].get("first_day", day), day)
    return plan_channels, task_sources, rejected


def _report(records: dict, rejected: dict, day_records: list):
    """Every file with what could not be ingested and why.

    Returns ``(files_failed, files_warned, files_not_waveform, bytes_unread)``.
    """
    lost_in_tasks: defaultdict[str, dict[tuple[int | None, str], dict]] = defaultdict(dict)
    for rec in day_records:
        for failure in rec["failed"]:  # a record spanning midnight fails in both day tasks: count it once
            lost_in_tasks[failure["url"]][(failure.get("offset"), failure["reason"])] = failure
    files_failed, files_warned, files_not_waveform, bytes_unread = [], [], [], 0
    for url in sorted(records):
        rec = records[url]
        if rec["status"] == "not_waveform":
            files_not_waveform.append({"path": url, "reason": "; ".join(p["reason"] for p in rec["problems"]),
                                       "bytes": rec["size"]})
            continue
        task_failures = list(lost_in_tasks.get(url, {}).values())
        reasons = [p["reason"] for p in rec["problems"]] + rejected.get(url, []) + [f["reason"] for f in task_failures]
        unread = rec["bytes_unread"] + sum(f["nbytes"] for f in task_failures)
        bytes_unread += unread
        if rec["status"] == "failed" or (rejected.get(url) and len(rejected[url]) >= len(rec["channels"])):
            files_failed.append({"path": url, "reason": "; ".join(reasons), "bytes": unread or rec["size"]})
        elif reasons:
            files_warned.append({"path": url, "reason": "; ".join(reasons), "bytes": unread})
    return files_failed, files_warned, files_not_waveform, bytes_unread


COMPRESSORS = ("zstd", "lz4", "lz4hc", "blosclz", "zlib")  # numcodecs' Blosc codecs
class NoWaveformDataError(SeisgridError):
    """No input file gave waveform data, so nothing was ingested.

    ``summary`` is the ingest summary (every file found and why it was not used); the message names the
    source and the reasons.
    """

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def _waveform_formats() -> list[str]:
    from obspy.core.util.base import ENTRY_POINTS

    return sorted(ENTRY_POINTS["waveform"])


def _integer(name: str, value, minimum: int, maximum: int | None = None, hint: str = "") -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
        if isinstance(value, float) and value != number:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"ingest.{name}={value!r}: expected an integer{hint}") from None
    if number < minimum or (maximum is not None and number > maximum):
        span = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
        raise ConfigError(f"ingest.{name}={value!r}: expected an integer {span}{hint}")
    return number


def resolve_options(*, pattern: str | None = None, format: str | None = None, origin: str | None = None,
                    chunk_seconds: int | None = None, shard_seconds: int | None = None,
                    compressor: str | None = None, compression_level: int | None = None) -> dict:
    """The effective ingest options, checked: each argument, else ``seisgrid.ingest.<name>``.

    :func:`ingest` calls this before it touches anything; a command line or a pipeline step can call it
    before it starts a cluster.

    Returns
    -------
    dict
        ``format`` (upper case), ``pattern``, ``origin`` (``YYYY-MM-DD`` or None), ``chunk_seconds``,
        ``shard_seconds``, ``compressor``, ``compression_level``.

    Raises
    ------
    ConfigError
        A value is invalid; the message names the option, the value and the accepted values.
    """
    fmt = config.get("ingest.format", override=format)
    fmt = "MSEED" if fmt is None else str(fmt).strip().upper()
    formats = _waveform_formats()
    if fmt not in formats and fmt != "AUTO":
        raise ConfigError(f"ingest.format={fmt!r}: not an ObsPy waveform format; expected MSEED (default), "
                          f"AUTO (ObsPy guesses) or one of {', '.join(f for f in formats if f != 'MSEED')}")
    pattern = config.get("ingest.pattern", override=pattern)
    if pattern is not None and (not isinstance(pattern, str) or not pattern.strip()):
        raise ConfigError(f"ingest.pattern={pattern!r}: expected a file-name glob such as '*.D.*' (or none)")
    origin = config.get("ingest.origin", override=origin)
    if origin is not None and str(origin).strip():
        try:
            when = np.datetime64(str(origin).strip().rstrip("Z"))
            day = when.astype("datetime64[D]")
        except ValueError:
            raise ConfigError(f"ingest.origin={origin!r}: not a date; expected an ISO date such as 2021-01-01") \
                from None
        if when != day:
            raise ConfigError(f"ingest.origin={origin!r}: expected a date (sample axes start at midnight UTC), "
                              f"e.g. {day}")
        origin = str(day)
    else:
        origin = None
    chunk = _integer("chunk_seconds", config.get("ingest.chunk_seconds", override=chunk_seconds), 1,
                     hint=" of seconds per chunk, e.g. 3600")
    shard = _integer("shard_seconds", config.get("ingest.shard_seconds", override=shard_seconds), 1, 86400,
                     hint=" of seconds per shard that divides a day, e.g. 86400")
    if 86400 % shard:
        raise ConfigError(f"ingest.shard_seconds={shard}: must divide a day (86400 s), e.g. 86400, 43200 or 3600")
    if shard % chunk:
        raise ConfigError(f"ingest.chunk_seconds={chunk}: must divide shard_seconds={shard} (a shard holds "
                          "whole chunks), e.g. 3600 with shard_seconds 86400")
    codec = config.get("ingest.compressor", override=compressor)
    if str(codec).strip().lower() not in COMPRESSORS:
        raise ConfigError(f"ingest.compressor={codec!r}: not a Blosc codec; expected one of {', '.join(COMPRESSORS)}")
    level = _integer("compression_level", config.get("ingest.compression_level", override=compression_level),
                     0, 9, hint=" (Blosc levels: 0 = none, 9 = smallest)")
    return {"format": fmt, "pattern": pattern, "origin": origin, "chunk_seconds": chunk, "shard_seconds": shard,
            "compressor": str(codec).strip().lower(), "compression_level": level}


def _outside_store(files: list[SourceFile], source: str, store: str, source_options: dict,
                   store_options: dict) -> list[SourceFile]:
    """The files that are not part of the store itself (a store written inside its source folder)."""
    if storage.protocol(source) != storage.protocol(store):
        return files
    fs, _ = storage.filesystem(source, source_options)
    prefix = storage.filesystem(store, store_options)[1].rstrip("/") + "/"
    return [f for f in files if not fs._strip_protocol(f.url).startswith(prefix)]


def _examples(entries: list[dict], n: int = 3) -> str:
    shown = "; ".join(f"{posixpath.basename(e['path'])}: {e['reason'].removeprefix('not waveform data: ')[:160]}"
                      for e in entries[:n])
    return shown + (f"; … {len(entries) - n} more" if len(entries) > n else "")


def _no_data(source, result: dict, store_note: str) -> NoWaveformDataError:
    n = result["files_found"]
    parts = [f"{n} file{'s' if n != 1 else ''} found"]
    if result["files_failed"]:
        parts.append(f"{len(result['files_failed'])} failed ({_examples(result['files_failed'])})")
    if result["files_not_waveform"]:
        parts.append(f"{len(result['files_not_waveform'])} not waveform data, skipped "
                     f"({_examples(result['files_not_waveform'])})")
    if result["files_warned"]:
        parts.append(f"{len(result['files_warned'])} with problems ({_examples(result['files_warned'])})")
    what = "miniSEED" if result["format"] == "MSEED" else f"{result['format']} waveform"
    return NoWaveformDataError(f"no {what} data in {source}: {', '.join(parts)}; {store_note}", result)


def _reopened(root: zarr.Group, store: str, options: dict, run: versioned.Transaction | None) -> zarr.Group:
    """The driver's root group after a phase of tasks: the same one, or (icechunk engine) one opened anew.

    A group opened before :meth:`~seisgrid.versioned.Transaction.fork` belongs to the committed session
    and can no longer be written.
    """
    return root if run is None else _open_store(store, options)


def _remove_temporaries(store: str, array_paths: list[str]) -> int:
    """Delete the ``KEY.<uuid>.partial`` files that Zarr's LocalStore leaves when a worker dies mid-write.

    Zarr writes each shard of a local store to a temporary file and renames it; a worker killed between the
    two leaves the temporary file (never read as a chunk, but garbage). Called by the driver once every
    task of the run is done; object stores have no such files (a PUT is atomic).
    """
    if not storage.is_local(store):
        return 0
    root = pathlib.Path(storage.filesystem(store)[1])
    leftovers = [p for path in array_paths for p in (root / path / "c").glob("*.partial")]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        logger.info("removed %d temporary files of interrupted writes from %s", len(leftovers), store)
    return len(leftovers)


def _repair(store: str, options: dict, client, progress: bool, wanted: bool) -> dict | None:
    """Verify the store and prepare its bad days for rewriting (``ingest --repair``); None when not wanted."""
    if not wanted:
        return None
    report = verify(store, client=client, progress=progress)
    return {"problems": report["problem_counts"], **repair_store(store, report, options)}


def _repair_result(repaired: dict | None, task_sources: dict) -> dict:
    """The summary's ``repair`` entry: what was found and done, and the bad days no source holds any more."""
    if repaired is None:
        return {}
    planned = {(cid, day_label(day)) for cid, day in task_sources}
    unresolved = [d for d in repaired["days_to_rewrite"] if (d["channel"], d["day"]) not in planned]
    return {"repair": {**repaired, "unresolved": unresolved}}


def ingest(source: str, store: str, *, client: Client | LazyClient | None = None, pattern: str | None = None,
           format: str | None = None, origin: str | None = None, chunk_seconds: int | None = None,
           shard_seconds: int | None = None, compressor: str | None = None, compression_level: int | None = None,
           repair: bool = False, store_engine: str | None = None, progress: bool = True,
           files: list[SourceFile] | None = None) -> dict:
    """Ingest the waveform files under ``source`` into the Zarr store ``store``.

    Every option is checked (:func:`resolve_options`) and the files are listed before anything is
    written or a cluster is started.

    Parameters
    ----------
    source : str
        Folder (SDS tree or any tree), glob or file; local path or URL (``s3://...``).
    store : str
        Zarr store path or URL; created when missing, extended when it exists.
    client : distributed.Client or seisgrid.cluster.LazyClient, optional
        Run scan and write tasks on this cluster (a LazyClient is started only if there is work);
        without one they run in this process.
    pattern : str, optional
        File-name glob filter (default ``seisgrid.ingest.pattern``).
    format : str, optional
        ``MSEED`` (default, record-level checks) or another ObsPy format name (read whole).
    origin : str, optional
        ISO date where new channels' sample axes start (default: 1 January of their first year).
    chunk_seconds, shard_seconds : int, optional
        Seconds of samples per chunk (default 3600) and per shard (default 86400, one day); the shard
        divides a day and the chunk divides the shard.
    compressor, compression_level : str, int, optional
        Blosc codec (``zstd`` default, ``lz4``, ``lz4hc``, ``blosclz``, ``zlib``) and level 0-9
        (default 1) for new channels.
    repair : bool
        First check the store (:func:`seisgrid.seismic.verify.verify`) and rewrite exactly the days
        with a corrupt, missing or unchecked shard from the source files; delete stray and temporary
        objects. The summary then holds ``repair`` (the problems found, the days rewritten, and
        ``unresolved``: days that no source file holds any more).
    store_engine : {"zarr", "icechunk"}, optional
        How the store is written (default ``seisgrid.storage.engine``, ``zarr``): plain Zarr, each write
        visible as it lands; or an Icechunk repository (:mod:`seisgrid.versioned`) to which the run
        publishes everything at once as a new version (summary keys ``store_engine``, ``version``).
    progress : bool
        Show tqdm progress bars on stderr.
    files : list of SourceFile, optional
        The files of ``source`` to consider, as :func:`~seisgrid.seismic.archive.find_files` lists them
        (default: list them now). ``seisgrid watch`` passes the files that have stopped changing, so that
        a file still being written is left for a later run.

    Returns
    -------
    dict
        Summary: ``files_found, files_ok, files_skipped`` (unchanged since the last run, not scanned
        again), ``files_failed [{path, reason, bytes}], files_warned [{path, reason, bytes}],
        files_not_waveform [{path, reason, bytes}]`` (sidecar files such as ``catalog.csv``: skipped),
        ``source_layout`` (sds / folder / glob / file), ``files_scanned, tasks_run, tasks_skipped,
        channels, samples_written, bytes_unread, gaps, overlaps, overlap_samples,
        conflicting_samples, seconds, store, source``.

    Raises
    ------
    ConfigError
        An option is invalid (nothing was touched).
    StorageError
        ``source`` does not exist or holds no files; ``store`` is not a waveform store.
    NoWaveformDataError
        No file gave waveform data (every file failed or is not waveform data): nothing is left
        behind — a store this call created is removed, an existing store is kept. Its ``summary``
        lists every file with the reason.
    """
    t0 = time.perf_counter()
    opts = resolve_options(pattern=pattern, format=format, origin=origin, chunk_seconds=chunk_seconds,
                           shard_seconds=shard_seconds, compressor=compressor, compression_level=compression_level)
    fmt = opts["format"]
    source_options = storage.storage_options(source)
    store_options = storage.storage_options(store)
    listed = find_files(source, opts["pattern"]) if files is None else files
    files = _outside_store(listed, source, store, source_options, store_options)
    if not files:
        raise StorageError(f"{source}: no files found outside the store {store}")
    layout = source_layout(source, files)
    not_waveform, usable = split_sidecars(files, fmt, source_options, layout)

    def summary(**fields) -> dict:
        out = {"store": str(store), "source": str(source), "source_layout": layout, "format": fmt,
               "files_found": len(files), "files_ok": 0, "files_skipped": 0, "files_failed": [],
               "files_warned": [], "files_not_waveform": not_waveform, "files_scanned": 0, "tasks_run": 0,
               "tasks_failed": [],
               "tasks_skipped": 0, "channels": 0, "samples_written": 0, "bytes_unread": 0, "gaps": 0,
               "overlaps": 0, "overlap_samples": 0, "conflicting_samples": 0}
        out.update(fields)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out

    if not usable:
        raise _no_data(source, summary(), "nothing was written")

    engine = versioned.resolve_engine(store_engine)
    if repair and engine == "icechunk":
        raise ConfigError("ingest --repair: an Icechunk store is checked and versioned by Icechunk itself (every "
                          "version stays readable); --repair works on plain Zarr stores")
    store_existed = storage.exists(storage.join(store, "zarr.json"), store_options) or \
        storage.is_versioned(store, store_options)
    folder_before = storage.listing(store, store_options) if storage.exists(store, store_options) else None
    with versioned.publishing(store, store_options, engine, f"seisgrid ingest {source}") as (store_options, run):
        return _ingest_into(store, store_options, run, source, source_options, files, usable, not_waveform, summary,
                            opts, client, progress, repair, store_existed, folder_before, t0)


def _ingest_into(store: str, store_options: dict, run: versioned.Transaction | None, source: str,
                 source_options: dict, files: list, usable: list, not_waveform: list, summary: Callable,
                 opts: dict, client, progress: bool, repair: bool, store_existed: bool, folder_before, t0: float
                 ) -> dict:
    """The body of :func:`ingest` once the files are listed: scan, plan, write, consolidate (and publish)."""
    fmt = opts["format"]
    settings = {k: opts[k] for k in ("origin", "chunk_seconds", "shard_seconds")}
    codec = {"cname": opts["compressor"], "clevel": opts["compression_level"]}
    root = _open_store(store, store_options)
    repaired = _repair(store, store_options, client, progress, wanted=repair and store_existed)
    known = {rec["url"]: rec for rec in manifest.read_records(store, store_options, "files").values()}
    records, to_scan = {}, []
    for f in usable:
        rec = known.get(f.url)
        if rec and rec["size"] == f.size and rec["version"] == f.version and rec["format"] == fmt:
            records[f.url] = rec
        else:
            to_scan.append(f)
    scan_failures: list[dict] = []
    for rec in versioned.run_tasks(run, client, scan_file, to_scan, (fmt, source_options, store, store_options),
                                   "scan", progress=progress, failures=scan_failures):
        if rec is not None:
            records[rec["url"]] = rec

    root = _reopened(root, store, store_options, run)
    plan_channels, task_sources, rejected = _plan(records, root, fmt)
    last_day: dict[str, int] = {}
    for cid, day in task_sources:
        last_day[cid] = max(last_day.get(cid, day), day)
    channel_params, channel_errors = _prepare_arrays(
        root, {c: v for c, v in plan_channels.items() if c in last_day}, last_day, settings, codec)
    for url in sorted(records):
        rejected[url] += [channel_errors[cid] for cid in records[url]["channels"] if cid in channel_errors]

    done = {(rec["id"], rec["day"]): rec for rec in manifest.read_records(store, store_options, "days").values()}
    tasks, day_records = [], []
    checksums = bool(config.get("ingest.checksums", default=True))
    digest_seconds = float(config.get("ingest.digest_seconds", default=600))
    if not digest_seconds > 0:
        raise ConfigError(f"ingest.digest_seconds={digest_seconds}: must be > 0 (seconds of samples per digest)")
    for (cid, day), sources in sorted(task_sources.items()):
        if cid not in channel_params:
            continue
        params = channel_params[cid]
        fingerprint = hashlib.sha1(json.dumps([sources, params], sort_keys=True).encode()).hexdigest()
        previous = done.get((cid, day_label(day)))
        if previous and previous["fingerprint"] == fingerprint:
            day_records.append(previous)
            continue
        tasks.append({"id": cid, "day": day, "sources": sources, "fingerprint": fingerprint,
                      "channel": params, "array_path": params["array_path"], "checksums": checksums,
                      "digest_seconds": digest_seconds})
    write_failures: list[dict] = []
    new_records = [rec for rec in versioned.run_tasks(run, client, write_channel_day, tasks,
                                                      (source_options, store, store_options), "ingest",
                                                      progress=progress, failures=write_failures)
                   if rec is not None]
    tasks_failed = [{"channel": f["item"]["id"], "day": day_label(f["item"]["day"]),
                     "files": sorted({s["url"] for s in f["item"]["sources"]}), "error": f["error"]}
                    for f in write_failures]
    # Every planned channel, not only those written now: a run killed after a channel's last day but
    # before this step leaves that channel's summary stale, and the rerun has no task for it.
    fresh = {(rec["id"], rec["day"]) for rec in new_records}
    root = _reopened(root, store, store_options, run)
    summaries = consolidate(root, [rec for key, rec in done.items() if key[0] in channel_params and key not in fresh]
                            + new_records)

    # One manifest object per channel and per source folder from now on (seisgrid.manifest)
    _remove_temporaries(store, [p["array_path"] for p in channel_params.values()])
    manifest.merge_records(store, store_options, "files")
    manifest.merge_records(store, store_options, "days")
    files_failed, files_warned, scanned_not_waveform, bytes_unread = _report(records, rejected,
                                                                             day_records + new_records)
    files_not_waveform = sorted(not_waveform + scanned_not_waveform, key=lambda f: f["path"])
    files_failed = sorted(files_failed + [{"path": f["item"].url, "reason": f"could not be read: {f['error']}",
                                           "bytes": f["item"].size}
                                          for f in scan_failures], key=lambda f: f["path"])
    result = summary(
        files_ok=len(files) - len(files_failed) - len(files_not_waveform) - sum(1 for w in files_warned if w["bytes"]),
        files_skipped=len(usable) - len(to_scan),
        files_failed=files_failed, files_warned=files_warned, files_not_waveform=files_not_waveform,
        files_scanned=len(to_scan), tasks_run=len(tasks), tasks_skipped=len(day_records), tasks_failed=tasks_failed,
        channels=len(channel_params), samples_written=int(sum(r["samples"] for r in new_records)),
        bytes_unread=int(bytes_unread), gaps=int(sum(s["gaps"] for s in summaries.values())),
        overlaps=int(sum(r["overlaps"] for r in new_records)),
        overlap_samples=int(sum(r["overlap_samples"] for r in new_records)),
        conflicting_samples=int(sum(r["conflicting_samples"] for r in new_records)),
    )
    result.update(_repair_result(repaired, task_sources))
    if not any(r["samples"] for r in day_records + new_records):
        if not store_existed:  # this call made it: leave nothing behind
            storage.remove(store, store_options, keep=folder_before)
            note = f"nothing was written and {store} was not created"
        else:
            storage.consolidate_metadata(store, store_options, exclude=(MANIFEST,))
            note = f"nothing was written; the existing store {store} was kept"
        raise _no_data(source, result, note)
    # xarray (open_zarr, open_datatree) reads the stations and channels from the root without a listing
    storage.consolidate_metadata(store, store_options, exclude=(MANIFEST,))
    if run is not None:  # everything at once: readers see all of this run or none of it
        result.update(store_engine="icechunk", version=run.commit())
    result["seconds"] = round(time.perf_counter() - t0, 3)
    logger.info("ingested %s files into %s in %.1f s", len(files), store, result["seconds"])
    return result
