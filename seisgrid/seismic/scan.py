"""Step 1 of an ingest (:mod:`seisgrid.seismic.ingest`): index each source file, record by record.

One task per new or changed file: read its bytes (gunzipped when gzip), index every miniSEED record
(:mod:`seisgrid.seismic.mseed`) — or read the whole file with ObsPy for other formats — and group the
records by (channel, UTC day) with their byte runs, sample counts and spans. Bytes that are not a
readable record are reported with the reason, and so are records with a sampling rate above
:data:`MAX_SAMPLING_RATE` (5 kHz) or below one sample per day, which are not ingested. The result is one
manifest record per file (:mod:`seisgrid.manifest`, section ``files``, grouped by the file's folder), so
an unchanged file is never scanned twice. Also here: which files are sidecars, not waveform data (see the
ingest module docstring).
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import obspy

from seisgrid import manifest, storage
from seisgrid.seismic.archive import SourceFile, parse_sds_name, sidecar_suffix
from seisgrid.seismic.layout import DAY_NS
from seisgrid.seismic.mseed import (
    ASCII_ENCODING,
    ENCODING_DTYPES,
    NS,
    RecordIndex,
    index_records,
    starts_like_seed,
    trace_id,
)

if TYPE_CHECKING:
    import numpy.typing as npt

GZIP_MAGIC = b"\x1f\x8b"

#: Records with a higher sampling rate are reported and not ingested: SEED's highest band codes (F, G) end
#: at 5 kHz, and a write task holds a whole day of a channel's samples (at 5 kHz, 432 million) in memory, so
#: a corrupt rate factor (up to 32767 × 32767 Hz) must not reach it.
MAX_SAMPLING_RATE = 5000.0
#: Records with a lower sampling rate (less than one sample per day) are reported and not ingested: a
#: channel's days hold a whole number of samples, and a corrupt rate (down to 1 / 32767² Hz) would make one
#: record span millennia.
MIN_SAMPLING_RATE = 1 / 86400

CHANNEL_DTYPES = {"int16": "int32", "int32": "int32", "int64": "int32", "float32": "float32", "float64": "float64"}


def lossless_cast(data: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray | None:
    """``data`` as ``dtype`` when no value changes (int64 text formats fit int32), else None."""
    if np.can_cast(data.dtype, dtype, casting="safe"):
        return data.astype(dtype, copy=False)
    if data.dtype.kind in "iu" and np.dtype(dtype).kind == "i" and data.size:
        info = np.iinfo(dtype)
        if data.min() >= info.min and data.max() <= info.max:
            return data.astype(dtype)
    return None


def file_key(url: str) -> str:
    """The manifest key of a source file: 24 hex digits of the SHA-1 of its URL (a valid Zarr name)."""
    return hashlib.sha1(url.encode()).hexdigest()[:24]


def _runs(offsets: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    """Merge adjacent (offset, length) byte spans into [offset, nbytes] runs."""
    if len(offsets) == 0:
        return []
    breaks = np.flatnonzero(offsets[1:] != offsets[:-1] + lengths[:-1]) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(offsets)]))
    run_end = offsets[ends - 1] + lengths[ends - 1]
    return [[int(a), int(b - a)] for a, b in zip(offsets[starts], run_end, strict=True)]


def _days_touched(start_ns, end_ns, rate):
    """First and last UTC day (since 1970) of spans (scalars or arrays).

    The start is widened by one sample because a channel's days begin up to one sample after midnight
    (its origin's offset).
    """
    start_ns, end_ns, rate = np.asarray(start_ns), np.asarray(end_ns), np.asarray(rate, dtype=float)
    pad = np.where(rate > 0, NS / np.where(rate > 0, rate, 1), 0).astype(np.int64)
    return (start_ns - pad) // DAY_NS, (np.maximum(end_ns, start_ns + 1) - 1) // DAY_NS


# -------------------------------------------------------------------------------------------- scan
def scan_file(source: SourceFile, fmt: str, source_options: dict, store_url: str, store_options: dict) -> dict:
    """Index one file and store the result in the manifest; see the module docstring (step 1).

    Returns
    -------
    dict
        ``url, size, version, format, channels{id: {sampling_rate, dtype, days{day: {...}}}},
        problems[{reason, nbytes}], bytes_unread, bytes_skipped, status`` (ok / warned / failed /
        not_waveform: a sidecar file that is not readable as ``fmt``, see the module docstring).
    """
    record: dict[str, Any] = {"url": source.url, "size": source.size, "version": source.version, "format": fmt,
                              "channels": {}, "problems": [], "bytes_unread": 0, "bytes_skipped": 0}
    try:
        fs, path = storage.filesystem(source.url, source_options)
        data = fs.cat_file(path)
        if data[:2] == GZIP_MAGIC:  # ObsPy unzips only files it opens by name; we read bytes
            data = gzip.decompress(data)
            record["gzip"] = True
        suffix = sidecar_suffix(source.url)
        if len(data) == 0 and suffix:
            _not_waveform(record, f"an empty {suffix} file", 0)
        elif len(data) == 0:
            record["problems"].append({"reason": "empty file (0 bytes)", "nbytes": 0})
        elif fmt.upper() == "MSEED":
            _scan_mseed(data, source.url, record)
        else:
            _scan_other(data, fmt, record)
            if suffix and not record["channels"] and record["bytes_unread"] == len(data):
                _not_waveform(record, f"a {suffix} file not readable as {fmt}", len(data))
    except Exception as exc:  # unreadable file: report it, never stop the other files
        record["problems"].append({"reason": f"cannot read: {type(exc).__name__}: {exc}", "nbytes": source.size})
        record["bytes_unread"] = source.size
    record["status"] = (
        "not_waveform" if record.get("not_waveform")
        else "failed" if not record["channels"] else "warned" if record["problems"] else "ok"
    )
    manifest.write_record(store_url, store_options, "files", file_key(posixpath.dirname(source.url)),
                          file_key(source.url), record)
    return record


def _not_waveform(record: dict, what: str, nbytes: int) -> None:
    """Mark a scanned file as a sidecar that holds no waveform data: skipped, not failed."""
    record.update(not_waveform=True, bytes_unread=0, bytes_skipped=nbytes, channels={},
                  problems=[{"reason": f"not waveform data: {what}", "nbytes": nbytes, "skipped": True}])


def _scan_mseed(data: bytes, url: str, record: dict) -> None:
    index = index_records(data)
    for offset, nbytes, reason, kind in index.bad_spans:
        problem = {"reason": f"bytes {offset}-{offset + nbytes - 1}: {reason}", "nbytes": nbytes}
        if kind == "control":  # metadata of a full SEED volume: accounted for, not waveform data
            problem["skipped"] = True
            record["bytes_skipped"] += nbytes
        else:
            record["bytes_unread"] += nbytes
        record["problems"].append(problem)
    record["problems"] += [{"reason": note, "nbytes": 0} for note in index.notes]
    if len(index) == 0:
        if (index.bad_bytes == len(data) and not record["bytes_skipped"]
                and not any(kind == "corrupt" for *_, kind in index.bad_spans)):
            record["problems"] = [{"reason": f"not miniSEED: no record header found in {len(data)} bytes",
                                   "nbytes": len(data)}]
        return
    waveform = (index.encoding != ASCII_ENCODING) & (index.sampling_rate > 0) & (index.nsamples > 0)
    waveform &= np.isin(index.encoding, list(ENCODING_DTYPES))
    if (~waveform).any():
        skipped = index.select(~waveform)
        skipped_ids = sorted(set(skipped.ids))
        nbytes = int(skipped.length.sum())
        record["problems"].append({
            "reason": f"{len(skipped)} non-waveform records (ASCII/log, zero rate or unknown encoding) of "
                      f"{', '.join(skipped_ids)} not ingested", "nbytes": nbytes, "skipped": True})
        record["bytes_skipped"] += nbytes
    unfit = waveform & ((index.sampling_rate > MAX_SAMPLING_RATE) | (index.sampling_rate < MIN_SAMPLING_RATE))
    if unfit.any():
        odd = index.select(unfit)
        nbytes = int(odd.length.sum())
        record["problems"].append({
            "reason": f"{len(odd)} records of {', '.join(sorted(set(odd.ids)))} (the first at byte "
                      f"{int(odd.offset[0])}) have a sampling rate of {float(odd.sampling_rate.min()):g} to "
                      f"{float(odd.sampling_rate.max()):g} Hz, outside one sample per day to "
                      f"{MAX_SAMPLING_RATE:g} Hz: not ingested", "nbytes": nbytes})
        record["bytes_unread"] += nbytes
    index = index.select(waveform & ~unfit)
    _odd_codes(data, index, record)
    ids = np.array(index.ids)
    end_ns = index.end_ns
    for cid in sorted(set(index.ids)):
        mask = ids == cid
        rates = np.unique(index.sampling_rate[mask])
        dtypes = sorted({ENCODING_DTYPES[int(e)] for e in np.unique(index.encoding[mask])})
        rate, dtype = _main_kind(index.sampling_rate[mask], index.encoding[mask], index.nsamples[mask])
        channel: dict[str, Any] = {"sampling_rate": rate, "dtype": dtype,
                                   "days": {}, "first_ns": int(index.start_ns[mask].min())}
        if len(rates) > 1 or len({CHANNEL_DTYPES[d] for d in dtypes}) > 1:
            record["problems"].append({"reason": f"{cid}: records mix sampling rates {rates.tolist()} or "
                                                 f"encodings {dtypes}; only the kind with the most samples "
                                                 f"({rate:g} Hz {dtype}) is ingested", "nbytes": 0})
        rows_of_channel = np.flatnonzero(mask)
        first_days, last_days = _days_touched(index.start_ns[rows_of_channel], end_ns[rows_of_channel],
                                              index.sampling_rate[rows_of_channel])
        for d in range(int(first_days.min()), int(last_days.max()) + 1):
            rows = rows_of_channel[(first_days <= d) & (last_days >= d)]
            if not len(rows):
                continue
            channel["days"][str(d)] = {
                "runs": _runs(index.offset[rows], index.length[rows]),
                "nrecords": len(rows), "nsamples": int(index.nsamples[rows].sum()),
                "start_ns": int(index.start_ns[rows].min()), "end_ns": int(end_ns[rows].max()),
            }
        record["channels"][cid] = channel
    sds = parse_sds_name(url)
    if sds is not None:
        found = sorted(record["channels"])
        if found and found != [sds.id]:
            record["problems"].append({"reason": f"header codes {', '.join(found)} disagree with the SDS path "
                                                 f"({sds.id}); ingested under the header codes", "nbytes": 0})
        sds_day = int((np.datetime64(f"{sds.year:04d}-01-01") - np.datetime64("1970-01-01")).astype(int)) + sds.doy - 1
        first_days = {int(c["first_ns"]) // DAY_NS for c in record["channels"].values()}
        if first_days and sds_day not in first_days and not any(
                str(sds_day) in c["days"] for c in record["channels"].values()):
            record["problems"].append({"reason": f"no data of day {sds.year}.{sds.doy:03d} named by the SDS path",
                                       "nbytes": 0})


def _main_kind(rates: np.ndarray, encodings: np.ndarray, nsamples: np.ndarray) -> tuple[float, str]:
    """The (sampling rate, channel dtype) of a channel's records that holds the most samples.

    So one record with a corrupt rate or encoding does not decide the channel's kind (ties: the lower rate,
    then the dtype first by name).
    """
    names = sorted(set(CHANNEL_DTYPES.values()))
    rate_values, rate_of = np.unique(rates, return_inverse=True)
    codes, code_of = np.unique(encodings, return_inverse=True)
    dtype_of = np.array([names.index(CHANNEL_DTYPES[ENCODING_DTYPES[int(c)]]) for c in codes])[code_of]
    best = int(np.argmax(np.bincount(rate_of * len(names) + dtype_of, weights=nsamples)))
    return float(rate_values[best // len(names)]), names[best % len(names)]


def _odd_codes(data: bytes, index: RecordIndex, record: dict) -> None:
    """Warn about records whose codes hold bytes that are not ASCII text (a corrupt header, most likely).

    Such bytes are dropped from the channel id (as ObsPy does, :mod:`seisgrid.seismic.mseed`), so the
    records are ingested, but under codes the file does not quite say. NUL padding is common and allowed.
    """
    if not len(index):
        return
    codes = np.frombuffer(data, dtype=np.uint8)[index.offset[:, None] + np.arange(8, 20)]
    odd = np.flatnonzero(((codes < 32) & (codes != 0) | (codes >= 127)).any(axis=1))
    if len(odd):
        ids = sorted({index.ids[k] for k in odd.tolist()})
        record["problems"].append({"reason": f"{len(odd)} records (the first at byte {int(index.offset[odd[0]])}) "
                                             f"have non-ASCII bytes in their codes; ingested as {', '.join(ids)}",
                                   "nbytes": 0})


def read_other(data: bytes, fmt: str) -> obspy.Stream:
    """The traces of a whole file in ObsPy format ``fmt`` (formats without record-level indexing)."""
    import io

    return obspy.read(io.BytesIO(data), format=None if fmt.upper() == "AUTO" else fmt.upper())


def _scan_other(data: bytes, fmt: str, record: dict) -> None:
    try:
        stream = read_other(data, fmt)
    except Exception as exc:
        record["problems"].append({"reason": f"not readable as {fmt}: {type(exc).__name__}: {exc}",
                                   "nbytes": len(data)})
        record["bytes_unread"] = len(data)
        return
    for tr in stream:
        dtype = CHANNEL_DTYPES.get(str(tr.data.dtype))
        if dtype is not None and lossless_cast(tr.data, dtype) is None:
            dtype = "float64" if tr.data.dtype.kind == "f" else None
        if dtype is None or tr.stats.sampling_rate <= 0:
            record["problems"].append({"reason": f"{tr.id}: unsupported dtype {tr.data.dtype} or rate", "nbytes": 0})
            continue
        channel = record["channels"].setdefault(
            trace_id(tr.stats), {"sampling_rate": float(tr.stats.sampling_rate), "dtype": dtype, "days": {},
                                 "first_ns": tr.stats.starttime.ns})
        start = tr.stats.starttime.ns
        end = start + round(tr.stats.npts / tr.stats.sampling_rate * NS)
        channel["first_ns"] = min(channel["first_ns"], start)
        d0, d1 = _days_touched(start, end, tr.stats.sampling_rate)
        for d in range(int(d0), int(d1) + 1):
            entry = channel["days"].setdefault(str(d), {"runs": [[0, len(data)]], "nrecords": 0, "nsamples": 0,
                                                        "start_ns": start, "end_ns": end})
            entry["nrecords"] += 1
            entry["nsamples"] += tr.stats.npts
            entry["start_ns"], entry["end_ns"] = min(entry["start_ns"], start), max(entry["end_ns"], end)



HEAD_BYTES = 4096  # bytes read from a sidecar-named file to see whether it starts like a SEED record



def _head(source: SourceFile, options: dict) -> bytes:
    """The first bytes of a file, gunzipped when it is gzip."""
    fs, path = storage.filesystem(source.url, options)
    raw = fs.cat_file(path, start=0, end=HEAD_BYTES)
    if raw[:2] == GZIP_MAGIC:
        try:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, 64)
        except zlib.error:
            return raw
    return raw


def split_sidecars(files: list[SourceFile], fmt: str, options: dict,
                   layout: str) -> tuple[list[dict], list[SourceFile]]:
    """(reports of sidecar files that are not waveform data, the other files).

    For miniSEED, a file is a sidecar when its extension says so and its first bytes are not a SEED
    record header; other formats are decided in the scan.
    """
    if fmt != "MSEED":  # other formats: decided by reading the file in its scan task
        return [], list(files)
    skipped, keep = [], []
    for f in files:
        suffix = sidecar_suffix(f.url)
        if suffix is None:
            keep.append(f)
            continue
        try:
            head = _head(f, options)
        except Exception:  # unreadable: its scan reports why
            keep.append(f)
            continue
        if starts_like_seed(head):
            keep.append(f)
            continue
        where = " beside the SDS tree" if layout == "sds" else ""
        skipped.append({"path": f.url,
                        "reason": f"not waveform data: a {suffix} file{where} that does not start like a SEED record",
                        "bytes": f.size})
    return skipped, keep
