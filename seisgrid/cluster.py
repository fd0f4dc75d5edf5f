"""Dask clients: a LocalCluster sized to the machine (default) or an existing scheduler address."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask.config
from distributed import Client, LocalCluster

from seisgrid import config
from seisgrid.errors import ConfigError

logger = logging.getLogger("seisgrid")


LOCAL_OPTIONS = ("n_workers", "threads_per_worker", "memory_limit", "dashboard_address")


def _local_cluster(**overrides) -> LocalCluster:
    unknown = sorted(set(overrides) - set(LOCAL_OPTIONS))
    if unknown:
        raise ConfigError(
            f"local cluster options {unknown}: unknown; expected some of {list(LOCAL_OPTIONS)}"
        )
    settings = dict(config.get("cluster.local", default={}) or {})
    settings.update({k: v for k, v in overrides.items() if v is not None})
    n_workers = settings.get("n_workers") or os.cpu_count() or 1
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", default={}),
               **{k: str(v) for k, v in (settings.get("worker_environ") or {}).items()}}
    # The Nanny sets pre-spawn variables in this process's os.environ before spawning a worker and never
    # restores them (distributed's Nanny docstring: "poisoning the process running the Nanny"): a library
    # imported afterwards here (torch, imported when a step runs) would start with OMP_NUM_THREADS=1.
    before = {name: os.environ.get(name) for name in environ}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            return LocalCluster(
                n_workers=int(n_workers),
                threads_per_worker=int(settings.get("threads_per_worker") or 1),
                memory_limit=settings.get("memory_limit", "auto"),
                dashboard_address=_free_dashboard_address(settings.get("dashboard_address", "127.0.0.1:8787")),
                processes=True,
            )
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _free_dashboard_address(address: str | None) -> str | None:
    """``address`` (``host:port``), or ``host:0`` (a free port) when that port is taken, said in one line."""
    import socket

    if not address or ":" not in str(address):
        return address
    host, _, port = str(address).rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return address
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host or "0.0.0.0", int(port)))  # noqa: S104  (only where the user asked for every interface)
        except OSError:
            print(f"seisgrid: port {port} is in use (another Dask dashboard?); the dashboard takes a free port "
                  "(the link below)", file=sys.stderr)
            return f"{host}:0"
    return address


def get_client(
    spec: str | Client | None = None, *, quiet: bool = False, timeout: str = "20s", **local_overrides
) -> Client:
    """A :class:`distributed.Client` for ``spec``.

    Parameters
    ----------
    spec : str or Client, optional
        ``"local"`` (default from ``seisgrid.cluster.default``): a new LocalCluster with one worker
        process per core; ``tcp://host:port`` (or ``host:port``): connect to a running scheduler;
        an existing Client is returned as it is.
    quiet : bool
        Do not print the dashboard link.
    timeout : str
        How long to wait for a scheduler given by address (Dask time string, e.g. ``"20s"``).
    **local_overrides
        ``n_workers``, ``threads_per_worker``, ``memory_limit``, ``dashboard_address`` for "local".
    """
    if isinstance(spec, Client):
        return spec
    spec = spec or config.get("cluster.default", "local")
    spec = str(spec).strip()
    if spec == "local":
        local = _local_cluster(**local_overrides)
        try:
            client = Client(local)
        except BaseException:
            local.close()
            raise
    elif "://" in spec or ":" in spec:
        try:
            client = Client(spec, timeout=timeout)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--cluster {spec}: no scheduler answered within {timeout} ({exc}); "
                "start one (dask scheduler) or use --cluster local"
            ) from exc
    else:
        raise ConfigError(
            f"--cluster {spec!r}: expected 'local' or a scheduler address such as tcp://127.0.0.1:8786"
        )
    if not quiet:
        print(f"seisgrid: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
    return client


class LazyClient:
    """A client that connects (or starts its LocalCluster) only when first asked for.

    Commands pass one to steps that may find nothing to compute — a rerun of ``ingest`` on a finished
    store — so those never pay for starting a cluster.
    """

    def __init__(self, spec: str | Client | None = None, **kwargs) -> None:
        self.spec, self.kwargs = spec, kwargs
        self._client: Client | None = None

    @property
    def started(self) -> bool:
        """Whether the client was started (or connected)."""
        return self._client is not None

    def get(self) -> Client:
        """The client, started now if needed (prints the dashboard link then)."""
        if self._client is None:
            self._client = get_client(self.spec, **self.kwargs)
        return self._client

    def close(self) -> None:
        """Close the client and the LocalCluster it started (not a Client it was given)."""
        if self._client is not None and not isinstance(self.spec, Client):
            cluster = self._client.cluster
            self._client.close()
            if cluster is not None:
                cluster.close()
        self._client = None


def resolve_client(client: Client | LazyClient | None) -> Client | None:
    """A :class:`distributed.Client` from a Client, a :class:`LazyClient` (started now) or None."""
    return client.get() if isinstance(client, LazyClient) else client


@contextlib.contextmanager
def client_scope(spec: str | Client | None = None, lazy: bool = False,
                 **kwargs) -> Iterator[Client | LazyClient | None]:
    """Context manager: a client for ``spec`` (a :class:`LazyClient` when ``lazy``).

    It is closed with its LocalCluster on exit unless ``spec`` is an existing Client; ``"none"`` yields
    None (work runs in this process).
    """
    if isinstance(spec, Client):
        yield spec
        return
    if isinstance(spec, str) and spec.strip().lower() == "none":
        yield None
        return
    client = LazyClient(spec, **kwargs)
    try:
        yield client if lazy else client.get()
    finally:
        client.close()


def tasks_in_flight(client: Client) -> int:
    """How many tasks :func:`run_tasks` keeps submitted at once on ``client``'s cluster.

    ``cluster.tasks_in_flight_per_thread`` × the threads of the workers now connected, at least
    ``cluster.min_tasks_in_flight`` (an adaptive cluster may have no worker yet).
    """
    try:
        threads = sum(client.nthreads().values())
    except Exception:  # noqa: BLE001  (a client that cannot say: the minimum)
        threads = 0
    per_thread = int(config.get("cluster.tasks_in_flight_per_thread", default=4))
    return max(int(config.get("cluster.min_tasks_in_flight", default=8)), per_thread * threads)


def run_tasks(client: Client | LazyClient | None, fn: Callable, items: Sequence, args: tuple = (),
              desc: str = "tasks", unit: str = "task", progress: bool = True,
              priorities: Sequence[int] | None = None, bar: Any = None) -> list:
    """``[fn(item, *args) for item in items]`` as Dask tasks (results in item order) with a tqdm bar.

    Parameters
    ----------
    client : distributed.Client, LazyClient or None
        The cluster (a LazyClient starts only when there are items); None runs in this process.
    fn, items, args
        One task per item (one ``client.submit`` each); ``args`` are passed to every call.
    desc, unit, progress
        Progress bar label, unit and whether to show it (stderr).
    priorities : list of int, optional
        Dask scheduling priority per item (higher runs first), e.g. longest tasks first so the last
        task does not run alone; items are also submitted in that order.
    bar : tqdm.tqdm, optional
        An open progress bar to advance instead of a new one (it is left open).

    At most ``cluster.tasks_in_flight_per_thread`` × the cluster's threads (at least
    ``cluster.min_tasks_in_flight``) tasks are submitted at a time; each next one is submitted as one
    finishes, and each future is released as soon as its result is taken. Holding every future to the end
    costs client memory at archive scale, and lets a retiring worker (``--lifetime``, adaptive scaling)
    lose finished results the scheduler then recomputes. Futures still pending when a task fails are
    cancelled, so a failure does not leave work running.
    """
    from tqdm.auto import tqdm

    results = [None] * len(items)
    if not items:
        return results
    client = resolve_client(client)
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(items), desc=desc, unit=unit, file=sys.stderr, disable=not progress)
    try:
        if client is None:
            for i, item in enumerate(items):
                results[i] = fn(item, *args)
                bar.update()
        else:
            from distributed import as_completed

            order = list(range(len(items)))
            if priorities is not None:
                order.sort(key=lambda i: -priorities[i])
            pending = iter(order)
            position: dict = {}

            def submit_next() -> bool:
                i = next(pending, None)
                if i is None:
                    return False
                future = client.submit(fn, items[i], *args, pure=False,
                                       priority=0 if priorities is None else priorities[i])
                position[future] = i
                running.add(future)
                return True

            running = as_completed([])
            for _ in range(tasks_in_flight(client)):
                if not submit_next():
                    break
            try:
                for future in running:
                    results[position.pop(future)] = future.result()
                    future.release()  # the result is ours now: the cluster may forget it
                    bar.update()
                    submit_next()
            finally:
                client.cancel([f for f in position if not f.done()])
    finally:
        if own_bar:
            bar.close()
    return results
