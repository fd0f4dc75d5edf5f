"""One code path for local paths and object-store URLs (``s3://``): fsspec file systems and Zarr stores.

Storage options come from the configuration (``seisgrid.storage.<protocol>``), never from call sites,
so a path and an ``s3://`` URL behave the same everywhere.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import posixpath
import uuid

import fsspec
import zarr
from fsspec.core import split_protocol

from seisgrid import config
from seisgrid.errors import StorageError


def protocol(url: str) -> str:
    """The fsspec protocol of ``url`` (``"file"`` for plain paths)."""
    return split_protocol(str(url))[0] or "file"


def is_local(url: str) -> bool:
    return protocol(url) in ("file", "local")


def storage_options(url: str, overrides: dict | None = None) -> dict:
    """fsspec options for ``url`` from ``seisgrid.storage.<protocol>``, unset (null) entries dropped."""
    options = copy.deepcopy(dict(config.get(f"storage.{protocol(url)}", default={}) or {}))
    options.update(copy.deepcopy(overrides or {}))
    options = {k.replace("-", "_"): v for k, v in options.items() if v is not None}
    if protocol(url) == "s3":
        endpoint = options.pop("endpoint_url", None)
        if endpoint:
            options.setdefault("client_kwargs", {})["endpoint_url"] = endpoint
            options["endpoint_url"] = endpoint
        if not options.get("anon"):
            options.pop("anon", None)
    return options


def filesystem(url: str, options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """``(fs, path)`` for a local path or URL.

    Parameters
    ----------
    url : str
        Local path or URL such as ``s3://bucket/prefix``.
    options : dict, optional
        Storage options; default: :func:`storage_options` of ``url``.
    """
    url = str(url)
    opts = storage_options(url) if options is None else options
    try:
        fs, path = fsspec.core.url_to_fs(url, **opts)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"{url}: cannot open ({exc}); for s3:// install seisgrid[cloud]") from exc
    return fs, path


def join(url: str, *parts: str) -> str:
    """Join path components onto a local path or URL."""
    url = str(url).rstrip("/")
    return posixpath.join(url, *parts) if not is_local(url) else str(pathlib.Path(url, *parts))


def zarr_store(url: str, options: dict | None = None, read_only: bool = False):
    """A Zarr v3 store for ``url``: LocalStore for paths, FsspecStore (async fsspec) for URLs."""
    url = str(url)
    if is_local(url):
        path = split_protocol(url)[1]
        return zarr.storage.LocalStore(path, read_only=read_only)
    opts = storage_options(url) if options is None else options
    return zarr.storage.FsspecStore.from_url(url, storage_options=opts, read_only=read_only)


def open_group(url: str, mode: str = "r", options: dict | None = None) -> zarr.Group:
    """Open (``mode="r"``/``"r+"``) or create (``"a"``/``"w"``) the Zarr v3 group at ``url``."""
    try:
        store = zarr_store(url, options, read_only=(mode == "r"))
        return zarr.open_group(store, mode=mode, zarr_format=3)
    except FileNotFoundError as exc:
        raise StorageError(f"{url}: no Zarr store there ({exc})") from exc


def read_json(url: str, options: dict | None = None):
    fs, path = filesystem(url, options)
    with fs.open(path, "rb") as f:
        return json.load(f)


def read_csv_rows(url: str, what: str, options: dict | None = None) -> list[dict]:
    """Rows of a CSV file (local path or URL) as dicts; a missing file raises :class:`StorageError`
    naming it and ``what`` it should hold."""
    import csv
    import io

    fs, path = filesystem(url, options)
    try:
        with fs.open(path, "r") as f:
            return list(csv.DictReader(io.StringIO(f.read())))
    except FileNotFoundError:
        raise StorageError(f"{url}: no {what} there") from None


def write_bytes(url: str, data: bytes, options: dict | None = None) -> None:
    """Write a whole file; on object stores a single PUT (atomic), locally via a temp file + rename."""
    fs, path = filesystem(url, options)
    if is_local(url):
        # Object stores have no folders (and makedirs on s3 would create a missing bucket).
        parent = posixpath.dirname(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with fs.open(tmp, "wb") as f:
                f.write(data)
            fs.mv(tmp, path)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)
    else:
        fs.pipe_file(path, data)
