"""Helpers shared by the benchmark scripts in this folder.

The scripts (``ingest.py``, ``spectrogram.py``, ``stalta.py``) are run as ``python benchmarks/NAME.py``
from the repository root; each puts this folder on ``sys.path`` and imports this module as ``common``.
Human lines go to stderr (:func:`log`); the last stdout line of a run is its one JSON result
(:func:`write_result`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def log(msg: str) -> None:
    """Print a human-readable line to stderr, flushed at once.

    Parameters
    ----------
    msg : str
        The line to print.
    """
    print(msg, file=sys.stderr, flush=True)


def versions(names) -> dict:
    """Installed versions of some distributions.

    Parameters
    ----------
    names : iterable of str
        Distribution names, in the order wanted in the result.

    Returns
    -------
    dict
        ``{name: version}``, with ``None`` for a distribution that is not installed.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine(extra: dict | None = None) -> dict:
    """A description of this machine: CPU counts and model, platform, Python version.

    Parameters
    ----------
    extra : dict, optional
        Further fields, added after the standard ones (e.g. ``{"gpu": ...}``).

    Returns
    -------
    dict
        ``cpu_count``, ``cpus_usable`` (this process's CPU affinity), ``cpu_model`` (from
        ``/proc/cpuinfo``, ``None`` where unknown), ``platform``, ``python``, then ``extra``.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu_count": os.cpu_count(), "cpus_usable": usable, "cpu_model": cpu_model,
            "platform": platform.platform(), "python": platform.python_version()}
    if extra:
        info.update(extra)
    return info


def _spin(n: int) -> float:
    """Seconds taken by ``n`` iterations of a pure-Python loop."""
    t0 = time.perf_counter()
    s = 0
    for i in range(n):
        s += i
    return time.perf_counter() - t0


def cpu_scaling(workers: int = 2, n: int = 3_000_000) -> dict:
    """Pure-Python CPU work in 1 and in ``workers`` processes at once.

    Shows whether the machine really gave this run ``workers`` cores: other load on a shared machine
    shows as a speedup below ``workers``.

    Parameters
    ----------
    workers : int, default 2
        Processes run at once.
    n : int, default 3_000_000
        Loop iterations per process.

    Returns
    -------
    dict
        ``one_process_s``, ``{workers}_processes_s`` (wall seconds) and ``speedup``
        (``workers · one / many``).
    """
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_spin, [1000] * workers))  # start the processes
        t0 = time.perf_counter()
        list(pool.map(_spin, [n]))
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(_spin, [n] * workers))
        many = time.perf_counter() - t0
    return {"one_process_s": round(one, 4), f"{workers}_processes_s": round(many, 4),
            "speedup": round(workers * one / many, 3)}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded to 0.01.

    Returns
    -------
    list of float or None
        ``None`` where the platform does not report them.
    """
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def median(xs):
    """The median of ``xs``.

    Parameters
    ----------
    xs : sequence of numbers

    Returns
    -------
    number or None
        ``None`` for an empty sequence.
    """
    return statistics.median(xs) if xs else None


@contextlib.contextmanager
def work_folder(path: str | os.PathLike | None, prefix: str):
    """A folder to work in: the one given (made if missing, kept), or a temporary one (removed after).

    Parameters
    ----------
    path : str or path-like or None
        The folder (e.g. ``--workdir``); ``None`` for a new temporary folder.
    prefix : str
        Name prefix of the temporary folder.

    Yields
    ------
    pathlib.Path
        The folder (resolved where given).
    """
    if path:
        folder = Path(path).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as temp:
            yield Path(temp)


def busy_machine(scaling: list, loads: list, consequence: str) -> bool:
    """Whether other load shared the cores during a run (a 2-process speed-up below 1.6 in any
    :func:`cpu_scaling` check, or a 1-minute load average above half the cores + 0.5); logs a note."""
    speedups = [s["speedup"] for s in scaling]
    busy = min(speedups) < 1.6 or max((la[0] for la in loads if la), default=0) > 0.5 * (os.cpu_count() or 1) + 0.5
    if busy:
        log(f"NOTE: the machine was busy (2-process speedups {speedups}, load averages {loads}): "
            f"other processes shared the cores, {consequence}")
    return busy


def provenance(script: str, flags: str, packages, machine_extra: dict | None = None) -> dict:
    """The fields every result carries: ``machine``, ``versions`` of ``packages``, the ``command`` that
    reproduces it (``python benchmarks/SCRIPT.py FLAGS``) and the UTC ``date``."""
    from datetime import UTC, datetime

    return {"machine": machine(machine_extra), "versions": versions(packages),
            "command": f"python benchmarks/{script}.py{flags}",
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def write_result(result: dict, name: str, quick: bool, output: str | os.PathLike | None = None) -> Path:
    """Write a benchmark's JSON result, log where, and print it as the last stdout line.

    Parameters
    ----------
    result : dict
        The result (JSON-serialisable).
    name : str
        The benchmark's name: the default path is ``benchmarks/results/NAME.json``, or
        ``NAME-quick.json`` when ``quick``.
    quick : bool
        Whether this was a ``--quick`` run.
    output : str or path-like, optional
        Path to write instead of the default.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    out = Path(output) if output else RESULTS / (f"{name}-quick.json" if quick else f"{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    print(json.dumps(result))
    return out
