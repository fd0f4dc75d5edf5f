"""Near-real-time detection: follow a folder (or ``s3://`` prefix) where miniSEED files land → catalog.

``seisgrid watch SOURCE STORE --model MODEL --out CATALOG`` polls ``SOURCE`` every ``poll_seconds`` and
runs a **cycle** whenever a file has appeared or changed:

1. **Settled files only.** A local file counts once its size and mtime have stayed the same for
   ``settle_seconds`` (its mtime tells how long at first sight): a file still being copied is left for a
   later cycle. An object on S3 is whole once listed (a PUT is atomic). While a file that was
   ingested before is being rewritten, the cycle waits for it (ingesting without it would drop its
   samples from the store until it settles).
2. **Ingest** (:func:`seisgrid.seismic.ingest.ingest` with the settled files): the ingest manifest's
   rules decide what is new — an unchanged file is never scanned again, a rewritten one is scanned again
   and its channel-days are rewritten; files may arrive in any order, late or twice.
3. **Detect** (:func:`seisgrid.seismic.detect.detect` over the whole store): a station-day computed
   before keeps every window whose data did not change. Ingest records a digest of every hour of samples
   (:func:`seisgrid.seismic.ingest.block_digests`), and detection recomputes exactly the windows, and the
   picks, that read a changed hour within the reach of a window and its pick
   (:func:`seisgrid.seismic.detect.context`: the STA/LTA warm-up before, the look-ahead after). So an
   event at a file boundary is picked once, with the data of both files, and the final catalog is the
   one a batch run over all the files gives.
4. **Catalog**: association over all picks, QuakeML + CSV + JSON each replaced whole
   (:func:`seisgrid.seismic.catalog.write_catalog`), never half-written. Events that are new since the
   previous cycle are logged with the latency from the arrival of the cycle's files.

Everything a cycle has done is in the stores' manifests, so Ctrl-C and a restart resume where it
stopped: the first cycle after a start ingests what arrived meanwhile and computes what is missing.
Latency (file first seen settled → its events in the catalog) is reported per file and cycle.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from typing import TYPE_CHECKING, Any

from seisgrid import config, storage
from seisgrid.errors import ConfigError, SeisgridError, StorageError
from seisgrid.seismic.archive import SourceFile, find_files

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")


@dataclasses.dataclass
class _Sighting:
    size: int
    version: str
    first_seen: float  # wall-clock time the file was first seen with this size and version
    stable_since: float  # monotonic time since which it has not changed, as far as we know


def _mtime(version: str) -> float:
    """A local file's mtime from its version tag (``find_files``: the mtime), else now (not yet settled)."""
    try:
        return float(version)
    except ValueError:
        return time.time()


def event_key(event: dict) -> str:
    """What identifies an event between two catalogs of the same archive: its time and stations."""
    return f"{event.get('origin_time') or event.get('first_arrival')}|{','.join(event.get('stations') or [])}"


class Watcher:
    """The state of one ``seisgrid watch``: the files seen, and one :meth:`cycle` at a time.

    Parameters are those of :func:`watch`.
    """

    def __init__(self, source: str, store: str, model_path: str | None, out_catalog: str, *,
                 settle_seconds: float = 0.0, pattern: str | None = None, store_engine: str | None = None,
                 client: Client | LazyClient | None = None, progress: bool = False,
                 detect_options: dict | None = None) -> None:
        self.source, self.store, self.model_path, self.out_catalog = str(source), str(store), model_path, out_catalog
        self.settle_seconds = float(settle_seconds)
        self.pattern, self.store_engine, self.client, self.progress = pattern, store_engine, client, progress
        self.detect_options = dict(detect_options or {})
        self.sightings: dict[str, _Sighting] = {}
        self.ingested: dict[str, tuple[int, str]] = {}  # url → (size, version) at the last cycle
        self.events: set[str] = set()
        self.started = False

    def _list(self) -> list[SourceFile]:
        fs, _ = storage.filesystem(self.source)
        fs.invalidate_cache()  # object stores: a fresh listing every poll (s3fs caches listings)
        try:
            return find_files(self.source, self.pattern)
        except StorageError:  # an empty or missing folder: nothing has arrived yet
            return []

    def poll(self) -> tuple[list[SourceFile], list[SourceFile]]:
        """List the source: ``(settled, fresh)`` — every settled file, and those new or changed since the last cycle.

        ``fresh`` is empty while a file ingested before is being rewritten (the cycle waits for it).
        """
        now, mono = time.time(), time.monotonic()
        listed = self._list()
        local = storage.is_local(self.source)
        for f in listed:
            seen = self.sightings.get(f.url)
            if seen is None or (seen.size, seen.version) != (f.size, f.version):
                # unchanged since: a local file's mtime (its last write); an object store's object is
                # whole from the moment it is listed (a PUT is atomic), so it needs no settling
                age = max(0.0, now - _mtime(f.version)) if local else self.settle_seconds
                self.sightings[f.url] = _Sighting(f.size, f.version, now, mono - age)
        present = {f.url for f in listed}
        for url in set(self.sightings) - present:
            del self.sightings[url]
        settled = [f for f in listed if mono - self.sightings[f.url].stable_since >= self.settle_seconds]
        unsettled = {f.url for f in listed} - {f.url for f in settled}
        if unsettled & set(self.ingested):
            return settled, []
        fresh = [f for f in settled if self.ingested.get(f.url) != (f.size, f.version)]
        for url in set(self.ingested) - present:  # a file removed: its samples stay in the store (ingest never deletes)
            del self.ingested[url]
        return settled, fresh

    def cycle(self) -> dict | None:
        """One poll; when files arrived (or on the first call: resume), ingest them, detect, write the catalog.

        Returns
        -------
        dict or None
            None when nothing arrived; else ``files`` (the new or changed ones), ``ingest`` and ``detect``
            summaries (without per-item lists), ``new_events``, ``n_events``, ``windows``, ``seconds``
            (``ingest``, ``detect``, ``total``), ``latency_seconds`` (per file: from first seen to the
            catalog written) and ``catalog``.
        """
        from seisgrid.seismic.detect import detect
        from seisgrid.seismic.ingest import ingest

        settled, fresh = self.poll()
        if not settled or (not fresh and self.started):
            return None
        resumed = not self.started and storage.exists(self.store, storage.storage_options(self.store))
        self.started = True
        t0 = time.perf_counter()
        try:
            ingested = ingest(self.source, self.store, client=self.client, pattern=self.pattern,
                              store_engine=self.store_engine, progress=self.progress, files=settled)
            t1 = time.perf_counter()
            options: dict[str, Any] = dict(self.detect_options)
            if options.get("method") != "stalta":  # (the STA/LTA baseline writes no probabilities store)
                options["store_engine"] = self.store_engine
            found = detect(self.store, self.model_path, self.out_catalog, client=self.client,
                           progress=self.progress, **options)
        except SeisgridError as exc:  # e.g. only files without waveform data so far: wait for the next file
            logger.error("watch: %s; waiting for the next file", exc)
            for f in settled:
                self.ingested[f.url] = (f.size, f.version)
            return None
        t2 = time.perf_counter()
        done = time.time()
        for f in settled:
            self.ingested[f.url] = (f.size, f.version)
        keys = {event_key(ev): ev for ev in found["events"]}
        new = [ev for key, ev in keys.items() if key not in self.events]
        self.events = set(keys)
        # files that were in the store before this watcher started have no arrival to measure from
        latency = {} if resumed else {f.url: round(done - self.sightings[f.url].first_seen, 3) for f in fresh}
        result = {
            "files": [f.url for f in fresh], "resumed": resumed, "new_events": new, "n_events": found["n_events"],
            "windows": found.get("windows", 0), "tasks_run": found.get("tasks_run"),
            "seconds": {"ingest": round(t1 - t0, 3), "detect": round(t2 - t1, 3), "total": round(t2 - t0, 3)},
            "latency_seconds": latency, "catalog": found["catalog"], "finished_at": done,
            "ingest": {k: v for k, v in ingested.items() if not isinstance(v, list)} | {
                "files_failed": ingested.get("files_failed", [])},
            "detect": {k: v for k, v in found.items() if k not in ("events", "tasks", "settings")},
        }
        for ev in new:
            logger.warning("watch: new event %s at %s (%d stations)", ev.get("origin_time") or ev.get("first_arrival"),
                           ",".join(ev.get("stations") or []), len(ev.get("stations") or []))
        for failed in ingested.get("files_failed", []):
            logger.warning("watch: %s not ingested: %s", failed["path"], failed["reason"])
        worst = max(latency.values(), default=None)
        logger.warning("watch: %d file(s) → ingest %.1f s, detect %d windows %.1f s → %d events (%d new)%s",
                       len(fresh), t1 - t0, found.get("windows", 0), t2 - t1, found["n_events"], len(new),
                       f"; latency ≤ {worst:.1f} s" if worst is not None else "")
        return result


def watch(source: str | os.PathLike, store: str | os.PathLike, model_path: str | os.PathLike | None = None,
          out_catalog: str | os.PathLike | None = None, *, stations: str | os.PathLike | None = None,
          method: str | None = None, poll_seconds: float | None = None, settle_seconds: float | None = None,
          idle_exit_seconds: float | None = None, max_cycles: int | None = None, pattern: str | None = None,
          store_engine: str | None = None, client: Client | LazyClient | None = None, progress: bool = False,
          on_cycle: Callable[[dict], None] | None = None, **detect_options: Any) -> dict:
    """Follow ``source`` and keep the catalog ``out_catalog`` up to date as files land (module docstring).

    Parameters
    ----------
    source : str
        Folder or ``s3://`` prefix where miniSEED files land (any layout ``seisgrid ingest`` reads).
    store : str
        Waveform store the files are ingested into (created on the first file).
    model_path : str
        Detector, as ``seisgrid detect --model`` (a checkpoint; DIR/forest.joblib with ``method="forest"``).
    out_catalog : str
        Catalog path: ``STEM.xml``, ``STEM.csv`` and ``STEM.json``, replaced whole after every cycle.
    stations : str, optional
        Station coordinates (as ``seisgrid detect --stations``).
    method : str, optional
        ``model`` (default), ``forest``, ``eqt`` or ``stalta``, as ``seisgrid detect --method``.
    poll_seconds, settle_seconds : float, optional
        Seconds between listings of ``source`` (default ``seisgrid.watch.poll_seconds``) and how long a
        file's size and version must stay unchanged before it is ingested (``seisgrid.watch.settle_seconds``).
    idle_exit_seconds : float, optional
        Stop after this long without a new file (default: never; Ctrl-C stops).
    max_cycles : int, optional
        Stop after this many cycles that did work.
    pattern : str, optional
        File-name glob of the files to ingest (as ``seisgrid ingest --pattern``).
    store_engine : {"zarr", "icechunk"}, optional
        How the waveform and probabilities stores are written (as ``seisgrid ingest``/``detect``).
    client : distributed.Client or LazyClient, optional
        Cluster for ingest and detection tasks; None: in this process (the lowest latency on one machine).
    progress : bool
        Progress bars of each cycle's ingest and detect.
    on_cycle : callable, optional
        Called with every cycle's result (benchmarks, tests).
    **detect_options
        Any option of :func:`seisgrid.seismic.detect.detect` (``stride_seconds``, ``threshold``, ...).

    Returns
    -------
    dict
        ``cycles`` (their results, without the events), ``n_events``, ``files``, ``catalog``,
        ``latency_seconds`` (``median``, ``max`` over files), ``stopped`` (why).
    """
    if not model_path and method != "stalta" or not out_catalog:
        raise ConfigError("watch: needs --model (unless --method stalta) and --out (the catalog)")
    poll = float(config.get("watch.poll_seconds", override=poll_seconds))
    settle = float(config.get("watch.settle_seconds", override=settle_seconds))
    options = {"stations": stations, "method": method, **detect_options}
    watcher = Watcher(str(source), str(store), None if model_path is None else str(model_path), str(out_catalog),
                      settle_seconds=settle, pattern=pattern, store_engine=store_engine, client=client,
                      progress=progress, detect_options={k: v for k, v in options.items() if v is not None})
    cycles: list[dict] = []
    last_work = time.monotonic()
    stopped = "max_cycles"
    logger.warning("watch: following %s every %.1f s (Ctrl-C stops; a restart resumes)", source, poll)
    try:
        while max_cycles is None or len(cycles) < max_cycles:
            result = watcher.cycle()
            if result is not None:
                cycles.append(result)
                last_work = time.monotonic()
                if on_cycle is not None:
                    on_cycle(result)
                continue
            if idle_exit_seconds is not None and time.monotonic() - last_work >= idle_exit_seconds:
                stopped = "idle"
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        stopped = "interrupted"
        logger.warning("watch: stopped; `seisgrid watch` with the same arguments resumes")
    latencies = sorted(v for c in cycles for v in c["latency_seconds"].values())
    return {
        "source": str(source), "store": str(store), "catalog": cycles[-1]["catalog"] if cycles else None,
        "cycles": [{k: v for k, v in c.items() if k != "new_events"} | {"new_events": len(c["new_events"])}
                   for c in cycles],
        "n_events": cycles[-1]["n_events"] if cycles else 0, "files": len(watcher.ingested),
        "latency_seconds": {"median": statistics.median(latencies) if latencies else None,
                            "max": latencies[-1] if latencies else None},
        "stopped": stopped,
    }


__all__ = ["Watcher", "event_key", "watch"]
