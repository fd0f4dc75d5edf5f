"""Atomic, versioned stores (``--store-engine icechunk``): a run publishes all of its writes at once, or none.

A store written with the ``icechunk`` engine is an `Icechunk <https://icechunk.io>`_ 1.1 repository: every
published version of the Zarr hierarchy stays readable by its snapshot id, readers of the branch (``main``) see
one whole version at a time, and two runs that write the same store at once do not interleave: the first to
publish wins, the other gets :class:`ConflictError` and publishes nothing. Plain Zarr (:mod:`seisgrid.storage`)
stays the default engine.

How a run writes (:func:`begin`)::

    with versioned.begin(url, options, message="ingest 2021") as run:
        root = zarr.open_group(run.store, mode="a")       # the driver's own writes (metadata, attributes)
        ...
        fork = run.fork()                                 # picklable: an argument of every Dask task
        forks = run_tasks(client, write_day, days, args=(fork,))   # each task writes into fork.store and
        run.merge(forks)                                  # returns its fork; the driver merges them
        snapshot = run.commit()                           # publish: the branch moves to the new version

A run works on a branch of its own (``seisgrid-run.<UTC time>.<id>``), made from the branch tip at
:func:`begin`. :meth:`Transaction.fork` commits the driver's writes made since the last fork to that run
branch first (Icechunk 1.1 forks only a session without uncommitted changes), so a task sees the arrays the
driver made and a fork carries no more than its own task's writes. These checkpoints are invisible to readers of
the branch. :meth:`Transaction.commit` commits what is left and moves the branch, compare-and-swap, from the
version the run started from to the run's last snapshot: the single update readers can see. Had another run
published in between, the swap fails and :class:`ConflictError` says so; the run branch is deleted.

A task killed with its worker loses only its fork copy: Dask reruns the task from the fork the driver sent,
and the chunks the dead task had written are referenced by no snapshot. A run killed as a whole leaves its run
branch behind, never a half-published branch (:func:`discard_runs` deletes old run branches). Chunks of
unpublished work stay in storage until Icechunk's ``expire_snapshots`` and ``garbage_collect`` remove them.

Reading: :func:`open_readonly` (the branch tip, or any earlier version, tag or branch), :func:`history`
(published versions and checkpoints), :func:`attributes_under` (the attributes of every group below a path,
as seisgrid's manifest is read, through any Zarr store).

Storage: local paths and ``s3://bucket/prefix`` URLs, with the storage options seisgrid gives s3fs
(:func:`seisgrid.storage.storage_options`): ``key``/``secret``/``token`` (otherwise the ``AWS_*`` environment),
``anon``, ``endpoint_url`` (``client_kwargs``), ``region_name``, retries (``config_kwargs``) and ``read_timeout``.
On local disk Icechunk does not make the branch update atomic across processes; :meth:`Transaction.commit`
holds an exclusive file lock (``.seisgrid-publish.lock`` in the repository) while it checks and moves the
branch, so seisgrid runs on one machine (or a file system with working ``flock``) still conflict cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsspec.core import split_protocol

from seisgrid import storage
from seisgrid.errors import StorageError

if TYPE_CHECKING:
    import icechunk
    from zarr.abc.store import Store

#: Engines of ``--store-engine``.
ENGINES = ("zarr", "icechunk")
#: Branch names of runs in progress start with this.
RUN_PREFIX = "seisgrid-run."
#: Key of seisgrid's entry in a snapshot's commit metadata (``{"run": run branch, "step": n}``).
METADATA_KEY = "seisgrid"
#: Lock file (local repositories) held while a run publishes.
LOCK_NAME = ".seisgrid-publish.lock"
_RUN_TIME = "%Y%m%dT%H%M%SZ"


class ConflictError(StorageError):
    """Another run published to the branch while this one was writing; nothing of this run was published.

    Attributes
    ----------
    url, branch : str
        The store and its branch.
    expected, actual : str
        The snapshot the run started from, and the one the branch points at now.
    """

    def __init__(self, url: str, branch: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{url}: branch {branch!r} moved while this run was writing: the run started from version {expected}, "
            f"the branch is now at {actual} (another run published first). Nothing of this run was published and "
            f"the branch holds the other run's version unchanged; run the command again to write on top of it "
            f"(the store's history lists its versions).")
        self.url, self.branch, self.expected, self.actual = url, branch, expected, actual


def _icechunk() -> Any:
    try:
        import icechunk
    except ImportError as exc:
        raise StorageError("the icechunk store engine needs the icechunk package: "
                           "pip install 'seisgrid[icechunk]'") from exc
    if "ICECHUNK_LOG" not in os.environ:
        # Icechunk warns on every open of a local repository that its file system storage is not safe for
        # concurrent commits; seisgrid holds a lock while it publishes (see the module docstring).
        os.environ["ICECHUNK_LOG"] = "error"
        icechunk.set_logs_filter("error")
    return icechunk


def _error(url: str, what: str, exc: BaseException) -> StorageError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0].removeprefix("x ").strip() if lines else type(exc).__name__  # (Icechunk: "  x what failed")
    return StorageError(f"{url}: {what} failed ({first})")


# ------------------------------------------------------------------------------------------- storage


def _local_path(url: str) -> str:
    return os.path.abspath(os.path.expanduser(split_protocol(str(url))[1]))


def _get(options: dict, *keys: str) -> Any:
    """``options[k0][k1]...``, None where a level is missing."""
    value: Any = options
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def s3_storage_kwargs(url: str, options: dict | None = None) -> dict:
    """Keyword arguments of ``icechunk.s3_storage`` for ``url`` from seisgrid's s3fs storage options.

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix``; the prefix is the repository's root.
    options : dict, optional
        s3fs options as :func:`seisgrid.storage.storage_options` makes them (default: those of ``url``).

    Returns
    -------
    dict
        ``bucket``, ``prefix``, ``region``; ``endpoint_url``, ``allow_http`` (an ``http://`` endpoint) and
        ``force_path_style`` (custom endpoints; ``config_kwargs.s3.addressing_style`` overrides) when an endpoint
        is set, with ``region`` ``us-east-1`` unless one is given; ``anonymous=True``, or
        ``access_key_id``/``secret_access_key``/``session_token``, or ``from_env=True``;
        ``network_stream_timeout_seconds`` from ``read_timeout``.
    """
    opts = storage.storage_options(url) if options is None else options
    bucket, _, prefix = str(url).split("://", 1)[1].partition("/")
    if not bucket:
        raise StorageError(f"{url}: no bucket in the URL (s3://bucket/prefix)")
    region = (_get(opts, "client_kwargs", "region_name") or opts.get("region_name") or opts.get("region")
              or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    kwargs: dict[str, Any] = {"bucket": bucket, "prefix": prefix.strip("/") or None, "region": region}
    endpoint = opts.get("endpoint_url") or _get(opts, "client_kwargs", "endpoint_url")
    if endpoint:
        style = _get(opts, "config_kwargs", "s3", "addressing_style")
        kwargs.update(endpoint_url=str(endpoint), allow_http=str(endpoint).startswith("http://"),
                      force_path_style=style != "virtual")
        # S3-compatible servers ignore the region, but without one Icechunk asks the EC2 metadata service
        kwargs["region"] = region or "us-east-1"
    if opts.get("anon"):
        kwargs["anonymous"] = True
    elif opts.get("key") and opts.get("secret"):
        kwargs.update(access_key_id=opts["key"], secret_access_key=opts["secret"], session_token=opts.get("token"))
    else:
        kwargs["from_env"] = True
    timeout = _get(opts, "config_kwargs", "read_timeout")
    if timeout is not None:
        kwargs["network_stream_timeout_seconds"] = max(1, int(timeout))
    return kwargs


def _storage(url: str, options: dict | None) -> Any:
    ic = _icechunk()
    if storage.is_local(url):
        return ic.local_filesystem_storage(_local_path(url))
    if storage.protocol(url) == "s3":
        return ic.s3_storage(**s3_storage_kwargs(url, options))
    raise StorageError(f"{url}: the icechunk store engine writes local paths and s3:// URLs only")


def _config(url: str, options: dict | None) -> Any:
    """Repository settings of this process: the request retries of ``config_kwargs`` (s3)."""
    if storage.is_local(url):
        return None
    opts = storage.storage_options(url) if options is None else options
    attempts = _get(opts, "config_kwargs", "retries", "max_attempts")
    if attempts is None:
        return None
    ic = _icechunk()
    retries = ic.StorageRetriesSettings(max_tries=max(1, int(attempts)))
    return ic.RepositoryConfig(storage=ic.StorageSettings(retries=retries))


def is_icechunk(url: str, options: dict | None = None) -> bool:
    """Whether an Icechunk repository is at ``url`` (local path or ``s3://``); nothing is created.

    Parameters
    ----------
    url : str
        Local path or ``s3://bucket/prefix``.
    options : dict, optional
        Storage options; default: :func:`seisgrid.storage.storage_options` of ``url``.

    Returns
    -------
    bool
        False for a missing location, a plain Zarr store or anything else.
    """
    url = str(url)
    if storage.is_local(url) and not os.path.isdir(_local_path(url)):
        return False  # (Icechunk's check would create the folder)
    if not storage.is_local(url) and storage.protocol(url) != "s3":
        return False
    try:
        return bool(_icechunk().Repository.exists(_storage(url, options)))
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001  (IcechunkError: credentials, network)
        raise _error(url, "checking for an Icechunk repository", exc) from exc


# What Icechunk writes into a repository's folder; a folder holding only these and no branch yet is another
# run's repository half-way through Repository.create (snapshots/ lands before refs/branch.main/ref.json).
_REPOSITORY_LAYOUT = frozenset({"snapshots", "refs", "manifests", "chunks", "transactions", "config.yaml",
                                LOCK_NAME})
CREATION_WAIT_SECONDS = 10.0


def _is_repository_layout(entries: set[str]) -> bool:
    return {posixpath.basename(entry.rstrip("/")) for entry in entries} <= _REPOSITORY_LAYOUT


def _creation_finishes(url: str, options: dict | None) -> bool:
    """Whether the repository another run is creating at ``url`` gets its branch within a few seconds."""
    deadline = time.monotonic() + CREATION_WAIT_SECONDS
    while time.monotonic() < deadline:
        if is_icechunk(url, options):
            return True
        time.sleep(0.05)
    return False


def open_repository(url: str, options: dict | None = None, *, create: bool = False) -> icechunk.Repository:
    """The Icechunk repository at ``url``; with ``create``, a new one where there is none.

    Parameters
    ----------
    url : str
        Local path or ``s3://bucket/prefix``.
    options : dict, optional
        Storage options (s3fs style); default: :func:`seisgrid.storage.storage_options` of ``url``.
    create : bool
        Create the repository when ``url`` is empty or missing.

    Returns
    -------
    icechunk.Repository

    Raises
    ------
    StorageError
        No repository there (and not ``create``), a location that holds something else (a plain Zarr store),
        or a storage failure; the message names ``url``.
    """
    url = str(url)
    ic = _icechunk()
    _storage(url, options)  # (only local paths and s3://)
    if is_icechunk(url, options):
        try:
            return ic.Repository.open(_storage(url, options), config=_config(url, options))
        except Exception as exc:  # noqa: BLE001
            raise _error(url, "opening the Icechunk repository", exc) from exc
    entries = storage.listing(url, options)
    if entries and _is_repository_layout(entries):
        if _creation_finishes(url, options):
            return ic.Repository.open(_storage(url, options), config=_config(url, options))
        raise StorageError(f"{url}: holds an unfinished Icechunk repository (no branch after "
                           f"{CREATION_WAIT_SECONDS:g} s); a run that creates it was stopped: delete the folder")
    if entries:
        what = "a plain Zarr store" if storage.exists(storage.join(url, "zarr.json"), options) else "other files"
        raise StorageError(f"{url}: holds {what}, not an Icechunk repository; write to a new location or use "
                           "the zarr store engine for this one")
    if not create:
        raise StorageError(f"{url}: no Icechunk repository there (a run with the icechunk store engine creates it)")
    try:
        return ic.Repository.create(_storage(url, options), config=_config(url, options))
    except Exception as exc:  # noqa: BLE001  (another run created it first)
        if is_icechunk(url, options):
            return ic.Repository.open(_storage(url, options), config=_config(url, options))
        raise _error(url, "creating an Icechunk repository", exc) from exc


# --------------------------------------------------------------------------------------------- reading


def _lookup(repo: Any, url: str, version: str | None, as_of: dt.datetime | None) -> dict[str, Any]:
    """``readonly_session`` arguments for ``version``: a branch, else a tag, else a snapshot id."""
    if version is None or version in repo.list_branches():
        return {"branch": version or "main", "as_of": as_of}
    if as_of is not None:
        raise StorageError(f"{url}: as_of needs a branch, and {version!r} is none")
    if version in repo.list_tags():
        return {"tag": version}
    return {"snapshot_id": version}


def open_readonly(url: str, options: dict | None = None, version: str | None = None, *,
                  as_of: dt.datetime | None = None) -> Store:
    """A read-only Zarr store of one version of the repository at ``url``.

    The store stays on that version while runs publish newer ones; it can be pickled to Dask tasks.

    Parameters
    ----------
    url : str
        Local path or ``s3://bucket/prefix``.
    options : dict, optional
        Storage options; default: :func:`seisgrid.storage.storage_options` of ``url``.
    version : str, optional
        A branch name, a tag name or a snapshot id (:func:`history`); default: the tip of ``main``.
    as_of : datetime, optional
        With a branch: the version the branch pointed at at that time.

    Returns
    -------
    zarr.abc.store.Store
        Open it with ``zarr.open_group(store, mode="r")``.
    """
    repo = open_repository(url, options)
    where = _lookup(repo, url, version, as_of)
    try:
        return repo.readonly_session(**where).store
    except Exception as exc:  # noqa: BLE001
        raise StorageError(f"{url}: no version {version!r} (not a branch, tag or snapshot id there: "
                           f"{str(_error(url, 'lookup', exc)).split('(', 1)[-1]}; the history lists the versions"
                           ) from exc


@dataclass(frozen=True)
class Version:
    """One snapshot of a repository's history.

    Attributes
    ----------
    id : str
        Snapshot id (a ``version`` of :func:`open_readonly`).
    time : datetime
        When it was written (UTC).
    message : str
        Its commit message.
    metadata : dict
        Its commit metadata.
    published : bool
        Whether readers of the branch saw it: the last snapshot of a run (or one not written by seisgrid).
        A run's checkpoints before its last snapshot were never the branch's tip.
    """

    id: str
    time: dt.datetime
    message: str
    metadata: dict = field(default_factory=dict)
    published: bool = True


def _run_of(metadata: dict) -> str | None:
    entry = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return entry.get("run") if isinstance(entry, dict) else None


def history(url: str, options: dict | None = None, *, branch: str = "main") -> list[Version]:
    """The versions of ``branch``, newest first.

    Parameters
    ----------
    url : str
        Local path or ``s3://bucket/prefix``.
    options : dict, optional
        Storage options; default: :func:`seisgrid.storage.storage_options` of ``url``.
    branch : str
        The branch.

    Returns
    -------
    list of Version
        Every snapshot in the branch's ancestry; ``published`` marks those readers could see.
    """
    repo = open_repository(url, options)
    try:
        infos = list(repo.ancestry(branch=branch))
    except Exception as exc:  # noqa: BLE001
        raise _error(url, f"reading the history of branch {branch!r}", exc) from exc
    versions = []
    for i, info in enumerate(infos):
        metadata = dict(info.metadata or {})
        run = _run_of(metadata)
        newer_run = _run_of(dict(infos[i - 1].metadata or {})) if i else None
        versions.append(Version(id=info.id, time=info.written_at, message=info.message, metadata=metadata,
                                published=run is None or i == 0 or newer_run != run))
    return versions


def attributes_under(store: Store, prefix: str) -> dict[str, dict]:
    """The attributes of every Zarr group strictly below ``prefix``, by path relative to it.

    One listing of the prefix and one concurrent read of each group's ``zarr.json``, through any Zarr store:
    on an Icechunk store both come from the snapshot already in memory (no request per group), on a plain
    store they are the store's own listing and reads. Groups without attributes are left out.

    Parameters
    ----------
    store : zarr.abc.store.Store
        Any Zarr v3 store (an Icechunk session's, a :func:`seisgrid.storage.zarr_store`).
    prefix : str
        Path of a group in the store (``"_manifest/days"``).

    Returns
    -------
    dict
        ``{"<child>/<grandchild>": attributes}``.
    """
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    base = prefix.strip("/")

    async def read() -> dict[str, dict]:
        if base and not await store.exists(f"{base}/zarr.json"):  # (Icechunk lists only below existing nodes)
            return {}
        keys = [key async for key in store.list_prefix(f"{base}/" if base else "")
                if key.endswith("/zarr.json") and key != f"{base}/zarr.json"]
        prototype = default_buffer_prototype()
        blobs = await asyncio.gather(*(store.get(key, prototype) for key in keys))
        found = {}
        for key, blob in zip(keys, blobs, strict=True):
            meta = json.loads(blob.to_bytes()) if blob is not None else {}
            if meta.get("node_type") == "group" and meta.get("attributes"):
                found[key[len(base) + 1 if base else 0:-len("/zarr.json")]] = meta["attributes"]
        return found

    return sync(read())


# --------------------------------------------------------------------------------------------- writing


class Fork:
    """A picklable share of a run for one Dask task: write through :attr:`store`, return the fork.

    Every task that receives a pickled fork works on a copy of its own; the driver merges the copies the
    tasks return (:meth:`Transaction.merge`). A copy that is never returned (a task that failed, a worker that
    died) is simply not part of the run.
    """

    def __init__(self, session: Any) -> None:
        self._session = session

    @property
    def store(self) -> Store:
        """The Zarr store to write this task's chunks and groups into (arrays the driver made are there)."""
        return self._session.store

    def __getstate__(self) -> dict:
        return {"session": self._session}

    def __setstate__(self, state: dict) -> None:
        self._session = state["session"]


def task_store(target: str | Fork, options: dict | None = None, read_only: bool = False) -> Store:
    """The Zarr store a task writes to: a fork's (icechunk engine), or the plain store at a URL (zarr engine).

    Parameters
    ----------
    target : str or Fork
        A store URL, or a :class:`Fork` of a :class:`Transaction`.
    options : dict, optional
        Storage options of a URL (ignored for a fork).
    read_only : bool
        Open a URL read-only (a fork is always writable).

    Returns
    -------
    zarr.abc.store.Store
    """
    if isinstance(target, Fork):
        return target.store
    return storage.zarr_store(target, options, read_only=read_only)


def _fork_in(args: tuple) -> Fork | None:
    for arg in args:
        session = storage.session_of(arg) if isinstance(arg, dict) else None
        if isinstance(session, Fork):
            return session
    return None


def returning_fork(fn: Callable, item: Any, *args: Any) -> tuple[Any, Fork | None]:
    """``(fn(item, *args), the fork in args)``: a task of :func:`run_tasks` that hands its writes back."""
    return fn(item, *args), _fork_in(args)


def run_tasks(run: Transaction | None, client: Any, fn: Callable, items: Sequence, args: tuple = (),
              *posargs: Any, **kwargs: Any) -> list:
    """:func:`seisgrid.cluster.run_tasks` for tasks that write to a store, plain or versioned.

    Without a run (``run`` None: the zarr engine) it is ``cluster.run_tasks`` as it is. With one, every
    storage-options dict in ``args`` that holds the run (:data:`seisgrid.storage.SESSION_OPTION`) is given a
    :meth:`Transaction.fork` instead; each task returns its fork with its result, and the forks are merged
    into the run before the results are returned (failed items are None, as in ``cluster.run_tasks``).
    """
    from seisgrid.cluster import run_tasks as cluster_run_tasks

    if run is None:
        return cluster_run_tasks(client, fn, items, args, *posargs, **kwargs)
    fork = run.fork()
    task_args = tuple({**arg, storage.SESSION_OPTION: fork}
                      if isinstance(arg, dict) and storage.session_of(arg) is run else arg for arg in args)
    task = functools.update_wrapper(functools.partial(returning_fork, fn), fn)  # tasks keep fn's name
    pairs = cluster_run_tasks(client, task, items, task_args, *posargs, **kwargs)
    run.merge(pair[1] for pair in pairs if pair is not None)
    return [None if pair is None else pair[0] for pair in pairs]


def _run_name() -> str:
    return f"{RUN_PREFIX}{dt.datetime.now(dt.UTC).strftime(_RUN_TIME)}.{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def _publish_lock(url: str) -> Iterator[None]:
    """An exclusive ``flock`` of the repository's lock file (local repositories; object stores: none)."""
    if not storage.is_local(url):
        yield
        return
    try:
        import fcntl
    except ImportError:  # (not POSIX)
        yield
        return
    with open(os.path.join(_local_path(url), LOCK_NAME), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Transaction:
    """One run's writes to an Icechunk repository, published at once by :meth:`commit` (see :func:`begin`).

    Attributes
    ----------
    url, branch : str
        The store and the branch the run publishes to.
    base : str
        The snapshot the branch pointed at when the run began (the compare of the compare-and-swap).
    run_branch : str
        The branch the run works on until it publishes.
    repository : icechunk.Repository
    """

    def __init__(self, repository: icechunk.Repository, url: str, branch: str, message: str,
                 metadata: dict | None = None) -> None:
        self.repository, self.url, self.branch, self.message = repository, url, branch, message
        self.metadata = dict(metadata or {})
        self.run_branch = _run_name()
        self._steps = 0
        self._state = "open"
        try:
            self.base = repository.lookup_branch(branch)
            repository.create_branch(self.run_branch, self.base)
            self._session = repository.writable_session(self.run_branch)
        except Exception as exc:  # noqa: BLE001
            raise _error(url, f"starting a run on branch {branch!r}", exc) from exc

    def _check_open(self) -> None:
        if self._state != "open":
            raise StorageError(f"{self.url}: this run is already {self._state}; begin a new one")

    @property
    def store(self) -> Store:
        """The driver's Zarr store: what it writes joins the run, what it reads includes merged forks.

        Take it again after :meth:`fork` and :meth:`checkpoint`: each starts a new session. A store (or a Zarr
        group opened on one) taken before belongs to the committed session: writes through it fail
        ("cannot write to read-only store"), reads see the checkpoint, not the forks merged since.
        """
        self._check_open()
        return self._session.store

    @property
    def session(self) -> icechunk.Session:
        """The driver's Icechunk session (as :attr:`store`, a new one after each checkpoint)."""
        self._check_open()
        return self._session

    def _commit_metadata(self) -> dict:
        return {**self.metadata, METADATA_KEY: {"run": self.run_branch, "step": self._steps}}

    def checkpoint(self, message: str | None = None) -> str | None:
        """Commit the writes so far to the run branch (invisible to readers of :attr:`branch`).

        Parameters
        ----------
        message : str, optional
            Commit message; default: the run's message with the step number.

        Returns
        -------
        str or None
            The new snapshot id; None when there was nothing to commit.
        """
        self._check_open()
        if not self._session.has_uncommitted_changes:
            return None
        self._steps += 1
        try:
            snapshot = self._session.commit(message or f"{self.message} (step {self._steps})",
                                            metadata=self._commit_metadata())
            self._session = self.repository.writable_session(self.run_branch)
        except Exception as exc:  # noqa: BLE001
            raise _error(self.url, f"checkpoint of run branch {self.run_branch!r}", exc) from exc
        return snapshot

    def fork(self) -> Fork:
        """A :class:`Fork` for Dask tasks, on top of everything the driver wrote so far (checkpointed first).

        Pass the same fork to every task of a phase (each task unpickles a copy of its own), merge the forks
        the tasks return with :meth:`merge` before the driver writes again.

        Returns
        -------
        Fork
        """
        self.checkpoint()
        return Fork(self._session.fork())

    def merge(self, forks: Iterable[Fork | None]) -> int:
        """Add the writes of the forks tasks returned to the run (None entries, e.g. failed tasks, are skipped).

        A fork returned several times (the items of one Dask task, or a run without a cluster) is merged once.

        Parameters
        ----------
        forks : iterable of Fork or None
            What the tasks returned.

        Returns
        -------
        int
            How many distinct forks were merged.
        """
        self._check_open()
        distinct = {id(f): f for f in forks if f is not None}
        try:
            for fork in distinct.values():
                self._session.merge(fork._session)
        except Exception as exc:  # noqa: BLE001
            raise _error(self.url, "merging the tasks' writes", exc) from exc
        return len(distinct)

    def commit(self, message: str | None = None) -> str:
        """Publish the run: one update of :attr:`branch` to the run's last snapshot.

        Parameters
        ----------
        message : str, optional
            Commit message of the last snapshot; default: the message of :func:`begin`.

        Returns
        -------
        str
            The snapshot id readers of the branch now see (:attr:`base` when the run wrote nothing).

        Raises
        ------
        ConflictError
            Another run published to the branch since this one began; nothing of this run is visible, and the
            run is aborted.
        StorageError
            The store failed (after Icechunk's retries) and the branch did not move: the run stays open and
            ``commit()`` can be called again.
        """
        self._check_open()
        if self._session.has_uncommitted_changes:
            self._steps += 1
            try:
                self._session.commit(message or self.message, metadata=self._commit_metadata())
            except Exception as exc:  # noqa: BLE001
                raise _error(self.url, f"commit to run branch {self.run_branch!r}", exc) from exc
        tip = None
        try:
            tip = self.repository.lookup_branch(self.run_branch)
            with _publish_lock(self.url):
                if tip != self.base:
                    self.repository.reset_branch(self.branch, tip, from_snapshot_id=self.base)
        except Exception as exc:  # noqa: BLE001  (the compare-and-swap failed: who moved the branch?)
            try:
                actual = self.repository.lookup_branch(self.branch)
            except Exception:  # noqa: BLE001
                actual = None
            if actual is None or actual == self.base:  # nothing moved: a storage failure, the run stays open
                raise StorageError(f"{_error(self.url, f'publishing to branch {self.branch!r}', exc)}; the run's "
                                   f"writes are kept on branch {self.run_branch!r}: commit again") from exc
            if actual != tip:
                self.abort()
                raise ConflictError(self.url, self.branch, self.base, actual) from exc
            # actual == tip: the update landed, only its answer was lost
        self._state = "committed"
        self._delete_run_branch()
        return tip

    def _delete_run_branch(self) -> None:
        with contextlib.suppress(Exception):
            self.repository.delete_branch(self.run_branch)

    def abort(self) -> None:
        """Drop the run: nothing is published and the run branch is deleted."""
        if self._state == "open":
            self._state = "aborted"
            self._delete_run_branch()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leaving the block without :meth:`commit` (or with an exception) aborts the run."""
        self.abort()


def begin(url: str, options: dict | None = None, *, message: str, branch: str = "main",
          metadata: dict | None = None, create: bool = True) -> Transaction:
    """Start a run that writes to the repository at ``url`` and publishes at once with :meth:`Transaction.commit`.

    Parameters
    ----------
    url : str
        Local path or ``s3://bucket/prefix``.
    options : dict, optional
        Storage options; default: :func:`seisgrid.storage.storage_options` of ``url``.
    message : str
        Commit message of the published version (``"ingest /data/sds"``).
    branch : str
        The branch to publish to.
    metadata : dict, optional
        JSON-serialisable commit metadata (seisgrid adds its own entry under :data:`METADATA_KEY`).
    create : bool
        Create the repository when ``url`` is empty or missing.

    Returns
    -------
    Transaction
        Also a context manager: leaving the block without a commit aborts the run.
    """
    url = str(url)
    return Transaction(open_repository(url, options, create=create), url, branch, message, metadata)


def resolve_engine(engine: str | None) -> str:
    """``engine``, else ``seisgrid.storage.engine`` (default ``zarr``), checked against :data:`ENGINES`."""
    from seisgrid import config
    from seisgrid.errors import ConfigError

    chosen = str(config.get("storage.engine", override=engine) or "zarr").strip().lower()
    if chosen not in ENGINES:
        raise ConfigError(f"store engine {engine!r}: expected one of {', '.join(ENGINES)}")
    return chosen


@contextlib.contextmanager
def publishing(url: str, options: dict, engine: str, message: str) -> Iterator[tuple[dict, Transaction | None]]:
    """``(options, run)`` for a step that writes the store at ``url`` with ``engine``.

    ``zarr``: the options as they are and no run (every write is visible as it lands). ``icechunk``: a run
    (:func:`begin`) and the options holding it (:data:`seisgrid.storage.SESSION_OPTION`), so that
    :func:`seisgrid.storage.zarr_store`, :mod:`seisgrid.manifest` and :func:`run_tasks` write into the run;
    the step calls ``run.commit()`` at its end, and leaving the block without it (an exception, Ctrl-C)
    publishes nothing.
    """
    if engine != "icechunk":
        if storage.is_versioned(url, options):
            raise StorageError(f"{url}: is an Icechunk repository; write to it with --store-engine icechunk "
                               "(seisgrid.storage.engine: icechunk)")
        yield options, None
        return
    with begin(url, options, message=message) as run:
        yield {**options, storage.SESSION_OPTION: run}, run


def discard_runs(url: str, options: dict | None = None, *,
                 older_than: dt.timedelta = dt.timedelta(days=1)) -> list[str]:
    """Delete the branches of runs that began more than ``older_than`` ago and never published (killed runs).

    A run still writing after that long loses its branch and fails at its next checkpoint or commit.

    Parameters
    ----------
    url : str
        Local path or ``s3://bucket/prefix``.
    options : dict, optional
        Storage options; default: :func:`seisgrid.storage.storage_options` of ``url``.
    older_than : timedelta
        Age of the run branches to delete.

    Returns
    -------
    list of str
        The deleted branch names.
    """
    repo = open_repository(url, options)
    cutoff = dt.datetime.now(dt.UTC) - older_than
    deleted = []
    for name in sorted(repo.list_branches()):
        if not name.startswith(RUN_PREFIX):
            continue
        try:
            started = dt.datetime.strptime(name[len(RUN_PREFIX):].split(".")[0], _RUN_TIME).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        if started < cutoff:
            repo.delete_branch(name)
            deleted.append(name)
    return deleted
