"""Check a waveform store against the checksums and sample counts recorded when it was written.

Every ingest task records, in its channel-day's manifest record, the SHA-256 of each shard it wrote
(computed from the bytes as they were written, :class:`seisgrid.storage.ChecksumStore`). :func:`verify`
reads every shard object of the store and checks, per channel:

=============== ==========================================================================================
``corrupt``     a shard whose bytes differ from its recorded checksum (a flipped byte, a truncated object)
``missing``     a shard that a day record lists but the store does not hold
``no_checksum`` a day with samples whose record has no checksums (written before seisgrid recorded them)
``unrecorded``  a shard object that no day record accounts for (a run killed between a write and its
                record, or a stray object)
``temporary``   a leftover temporary file of an interrupted write (Zarr's ``KEY.<uuid>.partial``)
``counts``      the channel's sample count or segments (array attributes, read by ``seisgrid inventory``)
                disagree with the sum of its day records
=============== ==========================================================================================

A store passes when there is no problem. ``seisgrid ingest SOURCE STORE --repair`` (:func:`repair`
first, then a normal ingest) rewrites exactly the days with problems from the source files.

The work is one task per channel (:func:`seisgrid.cluster.run_tasks`), so a cluster verifies a large
store in parallel; shard objects are read in batches through fsspec, the same for a folder and ``s3://``.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from seisgrid import manifest, storage
from seisgrid.cluster import run_tasks
from seisgrid.errors import StorageError
from seisgrid.seismic.layout import MANIFEST, STORE_KIND, station_of

if TYPE_CHECKING:
    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

PROBLEM_KINDS = ("corrupt", "missing", "no_checksum", "unrecorded", "temporary", "counts")
#: Problems whose day ``--repair`` rewrites from the sources (after dropping its record).
REWRITE_KINDS = ("corrupt", "missing", "no_checksum")
#: Problems whose object ``--repair`` deletes (a later write of the same day puts the right one back).
DELETE_KINDS = ("unrecorded", "temporary")
READ_BATCH_BYTES = 256 * 2**20  # shard bytes held at once per task


def _epoch_day(label: str) -> int:
    import numpy as np

    return int(np.datetime64(label, "D").astype(np.int64))


def _merge(segments: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for a, b in sorted(segments):
        if merged and merged[-1][1] >= a:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _listing(fs, base: str, cid: str) -> tuple[dict[str, int], list[dict]]:
    """Shard objects of an array (key → size) and its leftover temporary files (as problems)."""
    present: dict[str, int] = {}
    problems: list[dict] = []
    chunk_dir = posixpath.join(base, "c")
    if not fs.exists(chunk_dir):
        return present, problems
    for path, info in fs.find(chunk_dir, detail=True).items():
        key = path[len(base) + 1:]
        if key.endswith(".partial"):
            problems.append({"channel": cid, "day": None, "key": key, "kind": "temporary",
                             "detail": "temporary file of an interrupted write"})
        else:
            present[key] = int(info.get("size") or 0)
    return present, problems


def _expected(channel: dict, problems: list[dict]) -> dict[str, tuple[str, str | None]]:
    """Shard key → (day, recorded checksum) of every day with samples; days without checksums as problems."""
    shard, spd = channel["shard"], channel["samples_per_day"]
    expected: dict[str, tuple[str, str | None]] = {}
    for record in channel["records"]:
        if not record.get("samples"):
            continue
        first = (_epoch_day(record["day"]) - channel["origin_day"]) * spd
        digests = record.get("shards")
        if digests is None:
            problems.append({"channel": channel["id"], "day": record["day"], "key": None, "kind": "no_checksum",
                             "detail": "day record has no shard checksums (written before seisgrid recorded them)"})
        for i in range(first // shard, (first + spd) // shard):
            expected[f"c/{i}"] = (record["day"], None if digests is None else digests.get(f"c/{i}"))
    return expected


def _batches(keys: list[str], sizes: dict[str, int], limit: int):
    """``keys`` in consecutive batches of at most ``limit`` bytes (at least one key each)."""
    batch: list[str] = []
    total = 0
    for key in keys:
        batch.append(key)
        total += sizes[key]
        if total >= limit:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def verify_channel(channel: dict, store_url: str, options: dict) -> dict:
    """Check one channel's shards and counts (see the module docstring); one task of :func:`verify`.

    Parameters
    ----------
    channel : dict
        ``id, path`` (array path in the store), ``shard`` (samples per shard), ``samples_per_day``,
        ``origin_day``, ``samples`` and ``segments`` (its array attributes) and ``records`` (its day
        records).
    store_url, options : str, dict
        The store and its storage options.

    Returns
    -------
    dict
        ``id, shards_checked, bytes_checked, problems [{channel, day, key, kind, detail}]``.
    """
    fs, root = storage.filesystem(store_url, options)
    base = posixpath.join(root.rstrip("/"), channel["path"])
    cid = channel["id"]
    present, problems = _listing(fs, base, cid)
    expected = _expected(channel, problems)
    stray = sorted(set(present) - set(expected))
    problems += [{"channel": cid, "day": None, "key": key, "kind": "unrecorded",
                  "detail": "shard object that no day record accounts for"} for key in stray]
    ordered = sorted(expected, key=lambda k: int(k.split("/")[1]))
    problems += [{"channel": cid, "day": expected[key][0], "key": key, "kind": "missing",
                  "detail": "shard listed by the day record is not in the store"}
                 for key in ordered if key not in present]
    checked = nbytes = 0
    for batch in _batches([k for k in ordered if k in present], present, READ_BATCH_BYTES):
        blobs = fs.cat([posixpath.join(base, k) for k in batch], on_error="return")
        for key in batch:
            day, digest = expected[key]
            blob = blobs.get(posixpath.join(base, key))
            if isinstance(blob, FileNotFoundError):  # deleted since the listing
                problems.append({"channel": cid, "day": day, "key": key, "kind": "missing",
                                 "detail": "shard listed by the day record is not in the store"})
                continue
            if not isinstance(blob, bytes):
                raise storage.storage_error(f"{store_url}/{channel['path']}/{key}", "read", blob)
            checked += 1
            nbytes += len(blob)
            if digest is not None and storage.checksum(blob) != digest:
                problems.append({"channel": cid, "day": day, "key": key, "kind": "corrupt",
                                 "detail": f"checksum differs from the one recorded at write time ({len(blob)} bytes)"})
    segments = _merge([s for r in channel["records"] for s in r.get("segments", [])])
    samples = sum(b - a for a, b in segments)
    if samples != channel["samples"] or segments != [list(s) for s in channel["segments"]]:
        problems.append({"channel": cid, "day": None, "key": None, "kind": "counts",
                         "detail": f"array attributes say {channel['samples']} samples in "
                                   f"{len(channel['segments'])} segments, the day records {samples} in "
                                   f"{len(segments)}"})
    return {"id": cid, "shards_checked": checked, "bytes_checked": nbytes, "problems": problems}


def _channels(store: str, options: dict) -> list[dict]:
    root = storage.open_group(store, mode="r", options=options, use_consolidated=False)
    if root.attrs.get("kind") != STORE_KIND:
        raise StorageError(f"{store}: not a seisgrid waveform store (seisgrid verify checks stores written by "
                           "seisgrid ingest)")
    by_channel: defaultdict[str, list[dict]] = defaultdict(list)
    for (group, _), record in manifest.read_records(store, options, "days").items():
        by_channel[group].append(record)
    channels = []
    for station_name, station in root.groups():
        if station_name == MANIFEST:
            continue
        for cid, array in station.arrays():
            attrs: dict[str, Any] = dict(array.attrs)
            channels.append({"id": cid, "path": f"{station_name}/{cid}", "shard": (array.shards or array.chunks)[0],
                             "samples_per_day": attrs["samples_per_day"], "origin_day": attrs["origin_day"],
                             "samples": int(attrs.get("samples", 0)), "segments": attrs.get("segments", []),
                             "records": sorted(by_channel.get(cid, []), key=lambda r: r["day"])})
    return sorted(channels, key=lambda c: c["id"])


def verify(store: str, *, client: Client | LazyClient | None = None, progress: bool = True) -> dict:
    """Check every shard of a waveform store against its recorded checksum, and the sample counts.

    Parameters
    ----------
    store : str
        Waveform store path or URL (``s3://...``), written by :func:`seisgrid.seismic.ingest.ingest`.
    client : distributed.Client or seisgrid.cluster.LazyClient, optional
        Run one task per channel on this cluster; without one, in this process.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``store, ok`` (no problem), ``channels, days, shards_checked, bytes_checked, problems
        [{channel, day, key, kind, detail}], problem_counts {kind: n}, tasks_failed, seconds,
        gb_per_second``.

    Raises
    ------
    StorageError
        ``store`` is not a seisgrid waveform store.
    """
    t0 = time.perf_counter()
    options = storage.storage_options(store)
    if storage.is_versioned(store, options):
        raise StorageError(f"{store}: is an Icechunk repository (--store-engine icechunk), which checks its own "
                           "objects and keeps every version; seisgrid verify checks plain Zarr stores")
    channels = _channels(store, options)
    failures: list[dict] = []
    results = [r for r in run_tasks(client, verify_channel, channels, (store, options), "verify", unit="channel",
                                    progress=progress, failures=failures) if r is not None]
    problems = sorted((p for r in results for p in r["problems"]),
                      key=lambda p: (p["channel"], p["day"] or "", p["key"] or "", p["kind"]))
    counts = {kind: sum(p["kind"] == kind for p in problems) for kind in PROBLEM_KINDS}
    seconds = time.perf_counter() - t0
    nbytes = sum(r["bytes_checked"] for r in results)
    tasks_failed = [{"channel": f["item"]["id"], "error": f["error"]} for f in failures]
    return {"store": str(store), "ok": not problems and not tasks_failed, "channels": len(channels),
            "days": sum(len(c["records"]) for c in channels),
            "shards_checked": sum(r["shards_checked"] for r in results),
            "bytes_checked": nbytes, "problems": problems, "problem_counts": counts, "tasks_failed": tasks_failed,
            "seconds": round(seconds, 3), "gb_per_second": round(nbytes / 1e9 / seconds, 3) if seconds else None}


def repair(store: str, report: dict, options: dict | None = None) -> dict:
    """Prepare the days of a :func:`verify` report for rewriting by the next ingest run.

    Drops the day records of ``corrupt``, ``missing`` and ``no_checksum`` days (so the ingest that follows
    rewrites them from their sources) and deletes ``unrecorded`` and ``temporary`` objects. ``counts`` is
    fixed by the ingest run itself, which recomputes every channel's attributes.

    Returns
    -------
    dict
        ``days_to_rewrite [{channel, day}]`` and ``objects_deleted``.
    """
    options = storage.storage_options(store) if options is None else options
    rewrite = sorted({(p["channel"], p["day"]) for p in report["problems"] if p["kind"] in REWRITE_KINDS})
    manifest.drop_records(store, options, "days", rewrite)
    fs, root = storage.filesystem(store, options)
    doomed = [posixpath.join(root.rstrip("/"), station_of(p["channel"]), p["channel"], p["key"])
              for p in report["problems"] if p["kind"] in DELETE_KINDS]
    for path in doomed:
        if fs.exists(path):
            fs.rm(path)
    if rewrite or doomed:
        logger.info("repair %s: %d days to rewrite, %d objects deleted", store, len(rewrite), len(doomed))
    return {"days_to_rewrite": [{"channel": c, "day": d} for c, d in rewrite], "objects_deleted": len(doomed)}


def describe(report: dict) -> str:
    """A person's summary of a :func:`verify` report."""
    head = (f"{report['store']}: {'OK' if report['ok'] else 'PROBLEMS'} — {report['channels']} channels, "
            f"{report['days']} channel-days, {report['shards_checked']} shards "
            f"({report['bytes_checked'] / 1e6:,.1f} MB) checked in {report['seconds']:.1f} s")
    lines = [head]
    lines += ["  " + " ".join(str(part) for part in (p["kind"].upper(), p["channel"], p["day"], p["key"]) if part)
              + f": {p['detail']}" for p in report["problems"][:50]]
    if len(report["problems"]) > 50:
        lines.append(f"  … {len(report['problems']) - 50} more (--json lists all)")
    lines += [f"  TASK FAILED {t['channel']}: {t['error']}" for t in report.get("tasks_failed", [])]
    if not report["ok"]:
        lines.append("  to rewrite these days from the source files: seisgrid ingest SOURCE STORE --repair")
    return "\n".join(lines)
