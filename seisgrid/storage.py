"""One code path for local paths and object-store URLs (``s3://``): fsspec file systems and Zarr stores.

Storage options come from the configuration (``seisgrid.storage.<protocol>``), never from call sites,
so a path and an ``s3://`` URL behave the same everywhere.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import posixpath
import re
import uuid
from typing import TYPE_CHECKING, Literal

import fsspec
import zarr
from fsspec.core import split_protocol

from seisgrid import config
from seisgrid.errors import StorageError

if TYPE_CHECKING:
    from typing import Any

    from zarr.abc.store import Store


def protocol(url: str) -> str:
    """The fsspec protocol of ``url`` (``"file"`` for plain paths)."""
    return split_protocol(str(url))[0] or "file"


def is_local(url: str) -> bool:
    """Whether ``url`` is a plain path or a ``file://``/``local://`` URL (not an object store)."""
    return protocol(url) in ("file", "local")


#: Storage option holding an open versioned session (``--store-engine icechunk``, :mod:`seisgrid.versioned`):
#: a run's :class:`~seisgrid.versioned.Transaction` in the driver, a picklable ``Fork`` in its tasks. Anything
#: with a ``.store`` attribute. :func:`zarr_store` and :mod:`seisgrid.manifest` then read and write through it,
#: and :func:`filesystem` leaves it out of the fsspec options.
SESSION_OPTION = "seisgrid_session"


def is_versioned(url: str, options: dict | None = None) -> bool:
    """Whether ``url`` holds an Icechunk repository rather than a plain Zarr store (two existence checks)."""
    try:
        if exists(join(url, "zarr.json"), options):
            return False
        return exists(join(url, "refs", "branch.main"), options)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001  (an object store that fails after its retries)
        raise storage_error(url, "existence check", exc) from exc


def session_of(options: dict | None) -> Any:
    """The versioned session in ``options`` (see :data:`SESSION_OPTION`), or None for a plain store."""
    return (options or {}).get(SESSION_OPTION)


def storage_options(url: str, overrides: dict | None = None) -> dict:
    """The fsspec options for ``url`` from ``seisgrid.storage.<protocol>``, unset (null) entries dropped."""
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
        # botocore's Config: retry policy and timeouts (s3fs's own `retries` is another, inner loop)
        botocore_config = dict(options.pop("config_kwargs", None) or {})
        attempts, mode = options.pop("max_attempts", None), options.pop("retry_mode", None)
        if attempts is not None or mode is not None:
            botocore_config.setdefault("retries", {}).update(
                {k: v for k, v in (("max_attempts", attempts), ("mode", mode)) if v is not None})
        for key in ("connect_timeout", "read_timeout"):
            if key in options:
                botocore_config[key] = options.pop(key)
        if botocore_config:
            options["config_kwargs"] = botocore_config
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
    if not is_local(url) and protocol(url) not in ("http", "https") and re.search(_URL_USERINFO, url):
        raise StorageError(f"{redact(url, url)}: credentials in a {protocol(url)}:// URL are not used (and would "
                           "show in logs); give them as storage options or the usual environment variables")
    opts = storage_options(url) if options is None else options
    opts = {k: v for k, v in opts.items() if k != SESSION_OPTION}
    try:
        fs, path = fsspec.core.url_to_fs(url, **opts)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"{url}: cannot open ({exc}); for s3:// install seisgrid[cloud]") from exc
    return fs, path


def join(url: str, *parts: str) -> str:
    """Join path components onto a local path or URL."""
    url = str(url).rstrip("/")
    return posixpath.join(url, *parts) if not is_local(url) else str(pathlib.Path(url, *parts))


_URL_USERINFO = r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s\"']+)@"  # scheme://user:password@
#: Environment variables whose values are credentials (besides ``SEISGRID_*`` names holding SECRET, PASSWORD,
#: TOKEN or KEY, which the configuration reads): masked by :func:`redact`.
CREDENTIAL_ENVIRON = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")


def _credential_values(urls: tuple[str, ...]) -> list[str]:
    """The secrets :func:`redact` masks: configured storage credentials, their environment variables, URL users."""
    import re

    values = set(config.credential_values())
    for name, value in os.environ.items():
        upper = name.upper()
        if name in CREDENTIAL_ENVIRON or (upper.startswith(config.ENV_PREFIX) and any(
                word in upper for word in ("SECRET", "PASSWORD", "TOKEN", "KEY"))):
            values.add(value)
    for url in urls:
        found = re.match(_URL_USERINFO, str(url))
        if found:  # "user:password" and the password alone (botocore quotes a bucket name "user:pw@bucket")
            values.update((found.group(2), found.group(2).partition(":")[2]))
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)  # (short values would mask words)


def redact(text: str, *urls: str) -> str:
    """``text`` with credentials masked as ``***``, for messages, logs and records.

    Masked: the user:password part of every URL in ``text``; the configured storage credentials
    (``seisgrid.storage.<protocol>.key``/``secret``/``token``/..., :func:`seisgrid.config.credential_values`)
    and the values of the credential environment variables (:data:`CREDENTIAL_ENVIRON`, ``SEISGRID_*SECRET*``
    and the like) wherever they occur; the user:password of ``urls`` also where a library quoted it without
    its URL (botocore: ``Invalid bucket name "user:password@bucket"``).

    Parameters
    ----------
    text : str
        A message, log line or serialized record.
    *urls : str
        URLs the text is about (their user:password parts are masked wherever they occur).

    Returns
    -------
    str
        ``text`` without credentials.
    """
    import re

    text = str(text)
    for value in _credential_values(urls):
        text = text.replace(value, "***")
    return re.sub(_URL_USERINFO, r"\1***@", text)


def storage_error(url: str, operation: str, exc: BaseException) -> StorageError:
    """A :class:`StorageError` for ``operation`` on the object ``url`` that failed with ``exc`` after its retries.

    The message names the object and the cause with credentials masked (:func:`redact`): a user:password in
    ``url`` and configured keys or secrets that a library put into its error text.
    """
    attempts = ""
    if protocol(url) == "s3":
        retries = storage_options(url).get("config_kwargs", {}).get("retries", {})
        attempts = f" after {retries.get('max_attempts')} attempts"
    return StorageError(redact(f"{url}: {operation} failed{attempts} ({type(exc).__name__}: {exc})", url))


class NamedErrorStore(zarr.storage.WrapperStore):
    """A Zarr store whose failures (after the object store's own retries) name the object and the operation.

    Zarr passes an object store's errors on as they come (``OSError: [Errno 16] Service Unavailable``),
    which does not say which of millions of objects, or whether a read or a write, failed.
    """

    def __init__(self, store: Store, url: str) -> None:
        super().__init__(store)
        self._url = url.rstrip("/")

    def _with_store(self, store: Store) -> NamedErrorStore:
        return type(self)(store, self._url)

    def _error(self, key: str, operation: str, exc: Exception) -> StorageError:
        return storage_error(f"{self._url}/{key}", operation, exc)

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:  # noqa: D102
        try:
            return await self._store.get(key, prototype, byte_range)
        except Exception as exc:  # noqa: BLE001  (a missing key is None, not an exception)
            raise self._error(key, "read", exc) from exc

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> Any:  # noqa: D102
        try:
            return await self._store.get_partial_values(prototype, key_ranges)
        except Exception as exc:  # noqa: BLE001
            raise self._error(",".join(sorted({k for k, _ in key_ranges})), "read", exc) from exc

    async def set(self, key: str, value: Any) -> None:  # noqa: D102
        try:
            await self._store.set(key, value)
        except Exception as exc:  # noqa: BLE001
            raise self._error(key, "write", exc) from exc

    async def delete(self, key: str) -> None:  # noqa: D102
        try:
            await self._store.delete(key)
        except Exception as exc:  # noqa: BLE001
            raise self._error(key, "delete", exc) from exc

    async def exists(self, key: str) -> bool:  # noqa: D102
        try:
            return await self._store.exists(key)
        except Exception as exc:  # noqa: BLE001
            raise self._error(key, "existence check", exc) from exc


def checksum(data: bytes | memoryview) -> str:
    """The checksum seisgrid records for a stored object: ``"sha256:<hex digest>"``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ChecksumStore(zarr.storage.WrapperStore):
    """A Zarr store that records the checksum of every object written through it.

    ``checksums`` maps each key written to :func:`checksum` of its bytes, computed from the bytes in
    hand as they are written (no read-back). Zarr writes a whole shard in one ``set``, so a writer of
    whole shards gets one checksum per shard; the last write of a key wins.
    """

    def __init__(self, store: Store, checksums: dict[str, str] | None = None) -> None:
        super().__init__(store)
        self.checksums: dict[str, str] = {} if checksums is None else checksums

    def _with_store(self, store: Store) -> ChecksumStore:
        return type(self)(store, self.checksums)

    async def set(self, key: str, value: Any) -> None:  # noqa: D102
        await self._store.set(key, value)
        self.checksums[key] = checksum(value.as_buffer_like())  # (no copy of the shard)


def zarr_store(url: str, options: dict | None = None, read_only: bool = False) -> Store:
    """A Zarr v3 store for ``url``: LocalStore for paths, FsspecStore (async fsspec) for URLs.

    An object store's failures (after the retries of ``seisgrid.storage.s3``) raise :class:`StorageError`
    naming the object and the operation.
    """
    url = str(url)
    session = session_of(options)
    if session is not None:
        return session.store
    if read_only and is_versioned(url, options):  # an Icechunk repository: read its latest version
        from seisgrid.versioned import open_readonly  # (builds on this module: imported only when needed)

        return open_readonly(url, options)
    if is_local(url):
        path = split_protocol(url)[1]
        return zarr.storage.LocalStore(path, read_only=read_only)
    opts = storage_options(url) if options is None else options
    return NamedErrorStore(zarr.storage.FsspecStore.from_url(url, storage_options=opts, read_only=read_only), url)


def open_group(url: str, mode: Literal["r", "r+", "a", "w", "w-"] = "r", options: dict | None = None,
               use_consolidated: bool | None = None) -> zarr.Group:
    """Open (``mode="r"``/``"r+"``) or create (``"a"``/``"w"``) the Zarr v3 group at ``url``.

    ``use_consolidated=False`` ignores consolidated metadata (see :func:`consolidate_metadata`) and
    reads every node's own ``zarr.json``: what writers and exact readers of a store being updated want.
    """
    try:
        store = zarr_store(url, options, read_only=(mode == "r"))
        return zarr.open_group(store, mode=mode, zarr_format=3, use_consolidated=use_consolidated)
    except FileNotFoundError as exc:
        raise StorageError(f"{url}: no Zarr store there ({exc})") from exc


def exists(url: str, options: dict | None = None) -> bool:
    """Whether a file or folder (object or prefix) exists at ``url``."""
    fs, path = filesystem(url, options)
    return fs.exists(path)


def listing(url: str, options: dict | None = None) -> set[str]:
    """The entries directly under the folder ``url``; empty when there is no such folder.

    Entries are full paths as the file system names them.
    """
    fs, path = filesystem(url, options)
    try:
        return set(fs.ls(path, detail=False)) if fs.isdir(path) else set()
    except FileNotFoundError:
        return set()


def remove(url: str, options: dict | None = None, keep: set[str] | None = None) -> None:
    """Delete the folder ``url`` with everything below it, or only the entries not in ``keep``.

    With ``keep`` (a :func:`listing` taken earlier, possibly empty) delete only the entries that are not
    in it and leave the folder itself.
    """
    fs, path = filesystem(url, options)
    if not fs.exists(path):
        return
    if keep is None:
        fs.rm(path, recursive=True)
        return
    for entry in fs.ls(path, detail=False):
        if entry not in keep:
            fs.rm(entry, recursive=True)


CONSOLIDATED_KIND = {"kind": "inline", "must_understand": False}


def consolidate_metadata(url: str, options: dict | None = None, exclude: tuple[str, ...] = ()) -> bool:
    """Write Zarr v3 consolidated metadata of the group at ``url`` into its ``zarr.json``.

    The top-level members named in ``exclude`` (and everything below them) are left out.

    Readers that look for consolidated metadata at the root (xarray's ``open_zarr``/``open_datatree``)
    then open any group without listing the store and without a warning. Unlike
    ``zarr.consolidate_metadata``, bookkeeping groups (a manifest with one group per file) can be
    left out, so the root stays small; a reader that opens the root with consolidated metadata does
    not see them (open with ``use_consolidated=False`` to reach them). The listing is sorted, so the
    same hierarchy always gives the same bytes; the root is rewritten only when they change.
    Consolidated metadata is a snapshot: call this again after every change of the hierarchy.

    Returns
    -------
    bool
        Whether ``zarr.json`` was rewritten.
    """
    if session_of(options) is not None:  # an Icechunk store lists from its snapshot in memory: nothing to gain
        return False
    fs, root = filesystem(url, options)
    root = root.rstrip("/")
    root_key = f"{root}/zarr.json"
    current = fs.cat_file(root_key)
    root_meta = json.loads(current)
    members: dict[str, dict] = {}
    groups = [""]
    while groups:
        parent = groups.pop()
        base = f"{root}/{parent}" if parent else root
        children = sorted(p.rstrip("/") for p in fs.ls(base, detail=False))
        candidates = []
        for child in children:
            name = posixpath.basename(child)
            if name == "zarr.json" or (not parent and name in exclude):
                continue
            candidates.append(f"{child}/zarr.json")
        blobs = fs.cat(candidates, on_error="omit") if candidates else {}
        for key in candidates:
            blob = blobs.get(key)
            if blob is None:  # a folder that is not a Zarr node (an array's chunk folder "c", ...)
                continue
            meta = json.loads(blob)
            rel = posixpath.relpath(posixpath.dirname(key), root)
            if meta.get("node_type") == "group":
                meta.pop("consolidated_metadata", None)
                meta["consolidated_metadata"] = {**CONSOLIDATED_KIND, "metadata": {}}
                groups.append(rel)
            members[rel] = meta
    root_meta.pop("consolidated_metadata", None)
    node_type = root_meta.pop("node_type", "group")
    root_meta["consolidated_metadata"] = {**CONSOLIDATED_KIND, "metadata": dict(sorted(members.items()))}
    root_meta["node_type"] = node_type
    blob = json.dumps(root_meta, indent=2).encode()
    if blob == current:
        return False
    write_bytes(join(url, "zarr.json"), blob, options)
    return True


def read_json(url: str, options: dict | None = None) -> Any:
    """The JSON document in the file at ``url`` (local path or URL), decoded."""
    fs, path = filesystem(url, options)
    with fs.open(path, "rb") as f:
        return json.load(f)


def read_csv_rows(url: str, what: str, options: dict | None = None) -> list[dict]:
    """Rows of a CSV file (local path or URL) as dicts.

    A missing file raises :class:`StorageError` naming it and ``what`` it should hold.
    """
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
