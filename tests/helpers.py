"""Test helpers in the style of ``xarray.tests``: skip markers for optional parts and real data, and a
Dask scheduler that fails the test when something computes that should only build a graph.

Import from test modules as ``from helpers import requires_s3fs, raise_if_dask_computes`` (``tests/`` is on
``sys.path``; conftest.py makes sure of it).
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib

import dask
import pytest

from seisgrid import config


def _importable(modname: str) -> bool:
    try:
        return importlib.util.find_spec(modname) is not None
    except (ImportError, ValueError):
        return False


def _importorskip(modname: str, extra: str):
    """``(has_mod, requires_mod)``: whether ``modname`` imports, and a skipif marker naming what to install."""
    has = _importable(modname)
    return has, pytest.mark.skipif(
        not has, reason=f"requires {modname} (pip install -e '.[{extra}]')"
    )


has_s3fs, requires_s3fs = _importorskip("s3fs", "cloud")
has_moto, requires_moto = _importorskip("moto", "dev")
has_boto3, requires_boto3 = _importorskip("boto3", "dev")
has_torch, requires_torch = _importorskip("torch", "gpu")
has_jobqueue, requires_jobqueue = _importorskip("dask_jobqueue", "hpc")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (it can be taken before it is bound: callers retry)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_path(subfolder: str = "") -> pathlib.Path | None:
    """``seisgrid.config.data_dir() / subfolder`` when that exists, else None."""
    root = config.data_dir()
    if root is None:
        return None
    path = root / subfolder if subfolder else root
    return path if path.exists() else None


def requires_data(subfolder: str = ""):
    """Skip marker for tests that read real third-party data under ``data_dir()/subfolder``.

    The skip reason names the missing folder and how to point seisgrid at it (``SEISGRID_DATA``).
    """
    root = config.data_dir()
    if root is None:
        where = f"$SEISGRID_DATA/{subfolder}" if subfolder else "$SEISGRID_DATA"
        reason = (
            f"real data folder {where} not found: SEISGRID_DATA is not set and ../shared/data "
            "does not exist beside the checkout"
        )
    else:
        folder = root / subfolder if subfolder else root
        reason = f"real data folder {folder} not found (set SEISGRID_DATA to the data folder)"
    return pytest.mark.skipif(data_path(subfolder) is None, reason=reason)


class CountingScheduler:
    """A Dask scheduler that counts ``compute`` calls and raises past ``max_computes``.

    Reference: xarray.tests.CountingScheduler (https://stackoverflow.com/questions/53289286/).
    """

    def __init__(self, max_computes: int = 0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many computes. Total: {self.total_computes} > max: {self.max_computes}."
            )
        return dask.get(dsk, keys, **kwargs)


def raise_if_dask_computes(max_computes: int = 0):
    """Context manager: any Dask compute beyond ``max_computes`` inside it raises ``RuntimeError``.

    Use it around code that should only build a graph (e.g. opening a year of data lazily).
    The context value is the :class:`CountingScheduler`, so ``.total_computes`` can be checked.
    """
    scheduler = CountingScheduler(max_computes)
    return _SchedulerContext(scheduler)


class _SchedulerContext:
    def __init__(self, scheduler: CountingScheduler):
        self.scheduler = scheduler
        self._set = None

    def __enter__(self) -> CountingScheduler:
        self._set = dask.config.set(scheduler=self.scheduler)
        self._set.__enter__()
        return self.scheduler

    def __exit__(self, *exc):
        return self._set.__exit__(*exc)


def write_reliability_figures(key: str, figures: dict) -> None:
    """Merge ``figures`` under ``key`` into the JSON file ``$SEISGRID_RELIABILITY_REPORT`` (when set).

    docs/reliability.md is made from that file; see the ``reliability_figures`` fixture of conftest.py.
    """
    import json
    import os

    path = os.environ.get("SEISGRID_RELIABILITY_REPORT")
    if not path or not figures:
        return
    report = pathlib.Path(path)
    data = json.loads(report.read_text()) if report.exists() else {}
    data[key] = figures
    report.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def data_hashes(url: str) -> dict[str, str]:
    """SHA-256 of every object of a store (path or URL) but its manifest and root metadata, by relative key.

    Two stores with equal hashes hold the same shards and array metadata, whatever their manifests say.
    """
    import hashlib

    from seisgrid import storage

    fs, root = storage.filesystem(url)
    fs.invalidate_cache()
    base = root.rstrip("/")
    keys = [k for k in fs.find(base) if "/" in k[len(base) + 1:] and not k[len(base) + 1:].startswith("_")]
    return {k[len(base) + 1:]: hashlib.sha256(b).hexdigest() for k, b in fs.cat(keys).items()} if keys else {}

