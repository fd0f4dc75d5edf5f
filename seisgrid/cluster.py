"""Dask clients and the task runner.

A client is a LocalCluster sized to the machine (default), an existing scheduler (``tcp://host:8786``) or
a batch-scheduler cluster through dask-jobqueue, described by a profile YAML (``cluster/slurm.yaml``,
``cluster/pbs.yaml``, ``cluster/slurm-gpu.yaml`` or a file of the user's): ``--cluster slurm``.
:func:`run_tasks` runs one Dask task per item with bounded work in flight, retries and failures recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import reprlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dask.config
from distributed import Client, LocalCluster

if TYPE_CHECKING:
    from distributed.deploy.spec import SpecCluster

from seisgrid import config
from seisgrid.errors import ClusterError, ConfigError

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
            cluster = LocalCluster(
                n_workers=int(n_workers),
                threads_per_worker=int(settings.get("threads_per_worker") or 1),
                memory_limit=settings.get("memory_limit", "auto"),
                dashboard_address=_free_dashboard_address(settings.get("dashboard_address", "127.0.0.1:8787")),
                processes=True,
            )
        keep_size(cluster, minimum=int(n_workers), maximum=int(n_workers))
        return cluster
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def keep_size(cluster: SpecCluster, **bounds: Any) -> None:
    """Keep ``cluster`` within ``bounds`` (``Cluster.adapt`` keywords), replacing workers that are lost.

    A Nanny restarts a worker that crashes or is killed, but not one that exits with status 0 (a
    preempted cloud worker, ``sys.exit(0)``, a batch job that ended): Nanny and worker are then gone, and
    a cluster sized once with ``scale`` stays one worker short for good, or with none at all, and the run
    waits forever. Adaptive sizing between fixed bounds starts a new worker (or batch job) in its place
    once the cluster forgets the lost one, after ``seisgrid.cluster.lost_worker_timeout``
    (distributed's ``deploy.lost-worker-timeout``, default 15 s, is set to it for this process).
    """
    timeout = config.get("cluster.lost_worker_timeout", default="5s")
    dask.config.set({"distributed.deploy.lost-worker-timeout": timeout})
    cluster.adapt(interval=config.get("cluster.adapt_interval", default="1s"), **bounds)


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
        ``slurm``, ``pbs``, ``slurm-gpu`` or any profile name or ``PATH.yaml``: a dask-jobqueue cluster
        from that profile (see :func:`load_profile`), adaptive between the profile's bounds;
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
    elif _is_profile(spec):
        client = _jobqueue_client(load_profile(spec), quiet=quiet)
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
            f"--cluster {spec!r}: expected 'local', a profile (slurm, pbs, slurm-gpu, PATH.yaml; folders "
            f"searched: {', '.join(map(str, profile_folders()))}) or a scheduler address such as tcp://127.0.0.1:8786"
        )
    if not quiet:
        print(f"seisgrid: Dask dashboard at {dashboard_link(client)}", file=sys.stderr)
    return client


JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}
PROFILE_KEYS = {"kind", "adapt", "jobs", "wait_for_workers", "wait_timeout", "jobqueue"}
ADAPT_KEYS = {"minimum", "maximum", "wait_count"}
# dask-jobqueue keys that are not in its jobqueue.yaml defaults for every kind
EXTRA_JOBQUEUE_KEYS = {"python", "resource-spec", "job-name", "project"}


def profile_folders() -> list[pathlib.Path]:
    """Folders searched for a profile given by name: ``seisgrid.cluster.profile_folders``, ./cluster, the checkout's."""
    folders = [pathlib.Path(os.path.expandvars(os.path.expanduser(str(f))))
               for f in (config.get("cluster.profile_folders", default=[]) or [])]
    folders += [pathlib.Path("cluster"), pathlib.Path(__file__).resolve().parents[1] / "cluster"]
    unique: list[pathlib.Path] = []
    for folder in folders:
        if folder.resolve() not in [u.resolve() for u in unique]:
            unique.append(folder)
    return unique


def _is_profile(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) or bool(re.fullmatch(r"[A-Za-z][\w-]*", spec))


def _import_jobqueue(spec: str) -> Any:
    """``dask_jobqueue``, imported without the Ctrl-C handler it installs.

    dask-jobqueue 0.9 sets ``signal.signal(SIGINT, lambda *_: sys.exit())`` when imported (for its
    runners): Ctrl-C would then end a command with exit status 0 and no message. Python's own handler
    (KeyboardInterrupt) is put back, so the command shuts its cluster down and says it was interrupted.
    """
    import signal
    import threading

    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ConfigError(f"--cluster {spec}: needs dask-jobqueue (pip install 'seisgrid[hpc]')") from exc
    handler = signal.getsignal(signal.SIGINT)
    if (threading.current_thread() is threading.main_thread()
            and getattr(handler, "__module__", "") == "dask_jobqueue.runner"):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return dask_jobqueue


def _profile_file(spec: str) -> pathlib.Path | None:
    if spec.endswith((".yaml", ".yml")):
        path = pathlib.Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"--cluster {spec}: no such profile file")
        return path
    for folder in profile_folders():
        for suffix in (".yaml", ".yml"):
            if (folder / f"{spec}{suffix}").is_file():
                return folder / f"{spec}{suffix}"
    return None


def _jobqueue_section(where: str, kind: str, jobqueue: Any) -> dict:
    """The profile's ``jobqueue.<kind>`` mapping, checked.

    Only dask-jobqueue's keys; lists of text (script lines, arguments) and mappings where its defaults are, one
    value elsewhere.
    """
    section = jobqueue.get(kind) or {} if isinstance(jobqueue, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: jobqueue.{kind} must be a mapping of dask-jobqueue settings")
    defaults = {k.replace("_", "-"): v for k, v in dask.config.get(f"jobqueue.{kind}", default={}).items()}
    known = set(defaults) | EXTRA_JOBQUEUE_KEYS
    unknown = sorted(str(k) for k in section if str(k).replace("_", "-") not in known)
    if unknown:
        raise ConfigError(f"{where}: jobqueue.{kind}: unknown dask-jobqueue key(s) {unknown}; expected some of "
                          f"{sorted(known)}")
    for key, value in section.items():
        default = defaults.get(str(key).replace("_", "-"))
        if value is None:
            continue
        if isinstance(default, list) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{where}: jobqueue.{kind}.{key}: expected a list of text (one line or argument "
                              f"each), not {reprlib.repr(value)}")
        if isinstance(default, dict) and not isinstance(value, dict):
            raise ConfigError(f"{where}: jobqueue.{kind}.{key}: expected a mapping, not {reprlib.repr(value)}")
        if not isinstance(default, (list, dict)) and isinstance(value, (list, dict)):
            raise ConfigError(f"{where}: jobqueue.{kind}.{key}: expected one value (text or a number), not "
                              f"{reprlib.repr(value)}")
    return section


def load_profile(spec: str) -> dict:
    """The cluster profile ``spec`` (a name such as ``slurm`` or a ``PATH.yaml``), checked.

    A profile names the dask-jobqueue ``kind`` (slurm, pbs), how many jobs (``adapt: {minimum, maximum,
    wait_count}`` or a fixed ``jobs``), ``wait_for_workers``, and ``jobqueue.<kind>``: dask-jobqueue's own
    keys (as in its ``jobqueue.yaml``), which override the user's dask-jobqueue configuration. A name is
    looked up as ``NAME.yaml`` in :func:`profile_folders`; ``slurm`` or ``pbs`` without a file means
    dask-jobqueue's configuration as it is, adaptive from 0 to 4 jobs.

    Returns
    -------
    dict
        The profile, with ``path`` (the file, or None) and ``options`` (the keyword arguments for the
        dask-jobqueue cluster class).

    Raises
    ------
    ConfigError
        Unreadable file, unknown key (named with the file), unknown kind or a bad value.
    """
    _import_jobqueue(spec)  # registers its jobqueue.yaml defaults in dask.config
    path = _profile_file(spec)
    if path is None:
        if spec not in JOBQUEUE_CLASSES:
            raise ConfigError(f"--cluster {spec}: no profile {spec}.yaml in {', '.join(map(str, profile_folders()))}; "
                              "expected 'local', a profile (slurm, pbs, slurm-gpu, PATH.yaml) or a scheduler "
                              "address such as tcp://127.0.0.1:8786")
        raw: Any = {"kind": spec}
    else:
        raw = config.read_yaml(path, "cluster profile")
    where = str(path) if path else f"profile {spec!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a cluster profile is a mapping with keys {sorted(PROFILE_KEYS)}")
    unknown = sorted(map(str, set(raw) - PROFILE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(PROFILE_KEYS)}")
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in JOBQUEUE_CLASSES:
        raise ConfigError(f"{where}: kind {reprlib.repr(kind)}: expected one of {sorted(JOBQUEUE_CLASSES)}")
    if not isinstance(raw.get("adapt") or {}, dict):
        raise ConfigError(f"{where}: adapt: expected a mapping with keys {sorted(ADAPT_KEYS)}, not "
                          f"{reprlib.repr(raw['adapt'])}")
    adapt = {"minimum": 0, "maximum": 4, **{k: v for k, v in (raw.get("adapt") or {}).items() if v is not None}}
    if set(adapt) - ADAPT_KEYS:
        raise ConfigError(f"{where}: adapt: unknown key(s) {sorted(map(str, set(adapt) - ADAPT_KEYS))}; "
                          f"expected {sorted(ADAPT_KEYS)}")
    jobs = raw.get("jobs")
    for name, value in [*(("adapt." + k, v) for k, v in adapt.items()), ("jobs", jobs),
                        ("wait_for_workers", raw.get("wait_for_workers")), ("wait_timeout", raw.get("wait_timeout"))]:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ConfigError(f"{where}: {name}: {reprlib.repr(value)} is not a whole number ≥ 0")
    if adapt["maximum"] < adapt["minimum"]:
        raise ConfigError(f"{where}: adapt: maximum {adapt['maximum']} < minimum {adapt['minimum']}")
    section = _jobqueue_section(where, kind, raw.get("jobqueue") or {})
    options = {str(k).replace("-", "_"): v for k, v in section.items() if v is not None}
    if "name" in options:  # the job's name; a cluster's `name` is something else in dask-jobqueue
        options["job_name"] = options.pop("name")
    return {"path": path, "kind": kind, "adapt": adapt, "jobs": jobs,
            "wait_for_workers": int(raw.get("wait_for_workers") or 0),
            "wait_timeout": float(raw.get("wait_timeout") or 600), "options": options}


def jobqueue_cluster(profile: dict) -> Any:
    """A dask-jobqueue cluster (no jobs submitted yet) for a profile from :func:`load_profile`."""
    dask_jobqueue = _import_jobqueue(profile["kind"])
    options = dict(profile["options"])
    # the same worker environment as the LocalCluster's (seisgrid.cluster.local.worker_environ), before the
    # profile's own prologue lines, which may change it
    environ = config.get("cluster.local.worker_environ", default={}) or {}
    prologue = options.get("job_script_prologue",
                           dask.config.get(f"jobqueue.{profile['kind']}.job-script-prologue", default=[])) or []
    options["job_script_prologue"] = [f"export {k}={v}" for k, v in environ.items()] + list(prologue)
    scheduler = dict(options.pop("scheduler_options", None) or
                     dask.config.get(f"jobqueue.{profile['kind']}.scheduler-options", default={}) or {})
    cls = getattr(dask_jobqueue, JOBQUEUE_CLASSES[profile["kind"]])
    try:
        scheduler["dashboard_address"] = _free_dashboard_address(scheduler.get("dashboard_address",
                                                                               "127.0.0.1:8787"))
        return cls(scheduler_options=scheduler, **options)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError, OSError, RuntimeError) as exc:
        # RuntimeError: "Cluster failed to start" (e.g. a network interface that is not there)
        raise ConfigError(f"{profile['path'] or profile['kind']}: dask-jobqueue refused the profile ({exc})") from exc


def _jobqueue_client(profile: dict, quiet: bool = False) -> Client:
    cluster = jobqueue_cluster(profile)
    try:
        if profile["jobs"] is not None:  # a fixed number of jobs, kept: a job that ends is replaced
            keep_size(cluster, minimum_jobs=profile["jobs"], maximum_jobs=profile["jobs"])
            sizing = f"{profile['jobs']} jobs"
        else:
            adapt = profile["adapt"]
            keep_size(cluster, minimum_jobs=adapt["minimum"], maximum_jobs=adapt["maximum"],
                      **({"wait_count": adapt["wait_count"]} if "wait_count" in adapt else {}))
            sizing = f"adaptive, {adapt['minimum']}–{adapt['maximum']} jobs"
        client = Client(cluster)
        if not quiet:
            options = {**dask.config.get(f"jobqueue.{profile['kind']}"), **profile["options"]}
            print(f"seisgrid: {profile['kind'].upper()} cluster from {profile['path'] or 'dask-jobqueue settings'} "
                  f"({sizing} of {options.get('cores')} cores, {options.get('memory')}, walltime "
                  f"{options.get('walltime')}; `seisgrid cluster script --cluster {profile['path'] or profile['kind']}`"
                  " shows the job script)", file=sys.stderr)
        if profile["wait_for_workers"]:
            try:
                client.wait_for_workers(profile["wait_for_workers"], timeout=profile["wait_timeout"])
            except TimeoutError as exc:
                raise ClusterError(f"{profile['path'] or profile['kind']}: {profile['wait_for_workers']} worker(s) "
                                   f"did not connect within {profile['wait_timeout']} s; see squeue/qstat and the job "
                                   "logs (log-directory)") from exc
        return client
    except BaseException:
        cluster.close()
        raise


def job_script(cluster: str = "slurm") -> dict:
    """The batch script dask-jobqueue submits for each worker job of the profile ``cluster``.

    Parameters
    ----------
    cluster : str
        A profile name (``slurm``, ``pbs``, ``slurm-gpu``) or ``PATH.yaml``.

    Returns
    -------
    dict
        ``profile`` (its file), ``kind`` and ``script`` (the text of ``Cluster.job_script()``).
    """
    profile = load_profile(cluster)
    profile["options"].setdefault("scheduler_options", {})["dashboard_address"] = ":0"
    jq = jobqueue_cluster(profile)
    try:
        return {"profile": str(profile["path"]) if profile["path"] else None, "kind": profile["kind"],
                "script": jq.job_script()}
    finally:
        jq.close()


def dashboard_link(client: Client) -> str:
    """The dashboard URL of ``client``'s scheduler, with the host it listens on when that is loopback.

    (A dask-jobqueue scheduler's own link names its network address even when the dashboard listens on
    127.0.0.1 only.)
    """
    link = client.dashboard_link
    try:
        host = client.cluster.scheduler.http_server.address
        port = client.scheduler_info()["services"]["dashboard"]
    except Exception:  # noqa: BLE001  (a remote scheduler: its own link)
        return link
    if str(host).startswith("127."):
        return re.sub(r"//[^/]+/", f"//{host}:{port}/", link, count=1)
    return link


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


def _local_threads(client: Client) -> int | None:
    """Worker threads now connected, from a scheduler in this process (LocalCluster, dask-jobqueue).

    Read without a round trip to the scheduler; None for a scheduler elsewhere.
    """
    workers = getattr(getattr(getattr(client, "cluster", None), "scheduler", None), "workers", None)
    if not isinstance(workers, dict):
        return None
    return sum(getattr(ws, "nthreads", 0) for ws in list(workers.values()))


def tasks_in_flight(client: Client) -> int:
    """How many tasks :func:`run_tasks` keeps submitted at once on ``client``'s cluster.

    ``cluster.tasks_in_flight_per_thread`` × the threads of the workers now connected, at least
    ``cluster.min_tasks_in_flight`` (an adaptive cluster may have no worker yet).
    """
    threads = _local_threads(client)
    if threads is None:
        try:
            threads = sum(client.nthreads().values())
        except Exception:  # noqa: BLE001  (a client that cannot say: the minimum)
            threads = 0
    per_thread = int(config.get("cluster.tasks_in_flight_per_thread", default=16))
    return max(int(config.get("cluster.min_tasks_in_flight", default=8)), per_thread * threads)


def _identity(value: Any) -> Any:
    return value


def share(client: Client, value: Any) -> Any:
    """A future of ``value`` that tasks on ``client``'s cluster take as an argument (sent to the cluster once).

    ``client.scatter`` would need a worker already connected (an adaptive cluster may have none: it
    fails with "No valid workers found") and a scattered value is gone for good once every worker holding
    it has died or retired; the value of a task is computed again from its task when that happens.
    """
    return client.submit(_identity, value, pure=False)


def task_retries() -> int:
    """How often :func:`run_tasks` retries a failed task (``seisgrid.cluster.task_retries``)."""
    return int(config.get("cluster.task_retries", default=2))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _attempt(fn: Callable, item: Any, args: tuple, retries: int) -> tuple[bool, Any]:
    """``(True, fn(item, *args))``, or ``(False, the exception)`` once ``retries`` more tries failed too."""
    for attempt in range(retries + 1):
        try:
            return True, fn(item, *args)
        except Exception as exc:  # noqa: BLE001  (returned: the runner records or raises it)
            if attempt == retries:
                return False, exc
    raise AssertionError("unreachable")


def _run_batch(fn: Callable, batch: list, args: tuple, retries: int) -> list[tuple[bool, Any]]:
    """One Dask task of :func:`run_tasks`: :func:`_attempt` for each item of ``batch``."""
    return [_attempt(fn, item, args, retries) for item in batch]


def run_tasks(client: Client | LazyClient | None, fn: Callable, items: Sequence, args: tuple = (),
              desc: str = "tasks", unit: str = "task", progress: bool = True,
              priorities: Sequence[int] | None = None, bar: Any = None,
              failures: list | None = None, retries: int | None = None, items_per_task: int | None = None,
              on_result: Callable[[int, Any], None] | None = None) -> list:
    """``[fn(item, *args) for item in items]`` as Dask tasks (results in item order) with a tqdm bar.

    Parameters
    ----------
    client : distributed.Client, LazyClient or None
        The cluster (a LazyClient starts only when there are items); None runs in this process.
    fn, items, args
        ``fn(item, *args)`` for every item; ``args`` are passed to every call.
    desc, unit, progress
        Progress bar label, unit and whether to show it (stderr).
    priorities : list of int, optional
        Dask scheduling priority per item (higher runs first), e.g. longest tasks first so the last
        task does not run alone; items are also submitted in that order.
    bar : tqdm.tqdm, optional
        An open progress bar to advance instead of a new one (it is left open).
    failures : list, optional
        Given: an item that still fails after its retries is appended here as ``{"index", "item",
        "error"}`` (its result is None) and the others go on. Not given: the first such failure is
        raised and the tasks still pending are cancelled.
    retries : int, optional
        Retries of an item whose call raised (default ``seisgrid.cluster.task_retries``). A worker that
        dies under a task is not a failure of its items: the scheduler reruns the task elsewhere, up to
        ``distributed.scheduler.allowed-failures`` times, before they count as failed (``KilledWorker``).
    items_per_task : int, optional
        Items per Dask task (default ``seisgrid.cluster.items_per_task``, 1). The scheduler costs a
        fraction of a millisecond per task: many tiny items (10^6 and more) run in batches.
    on_result : callable, optional
        ``on_result(index, result)`` as each result arrives, which is then not kept (an empty list is
        returned): with ``items`` a lazy sequence (a ``range``) and no ``priorities``, the client's memory
        stays flat in the number of items.

    At most ``cluster.tasks_in_flight_per_thread`` × the cluster's threads (at least
    ``cluster.min_tasks_in_flight``) tasks are submitted at a time; each next one is submitted as one
    finishes, and each future is released as soon as its result is taken. Holding every future to the end
    costs client memory at archive scale, and lets a retiring worker (``--lifetime``, adaptive scaling)
    lose finished results the scheduler then recomputes.
    """
    from tqdm.auto import tqdm

    results: list = [None] * len(items) if on_result is None else []
    if not len(items):
        return results
    retries = task_retries() if retries is None else int(retries)
    per_task = max(1, int(items_per_task or config.get("cluster.items_per_task", default=1)))
    client = resolve_client(client)
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(items), desc=desc, unit=unit, file=sys.stderr, disable=not progress)

    def record(i: int, ok: bool, value: Any) -> None:
        if ok:
            if on_result is None:
                results[i] = value
            else:
                on_result(i, value)
        elif failures is None:
            raise value
        else:
            logger.warning("%s: item %d failed: %s", desc, i, _error_text(value))
            failures.append({"index": i, "item": items[i], "error": _error_text(value)})

    batches: Iterable[list[int]]
    if priorities is None:  # lazily: no list as long as the items
        batches = (list(range(k, min(k + per_task, len(items)))) for k in range(0, len(items), per_task))
    else:
        order = sorted(range(len(items)), key=lambda i: -priorities[i])
        batches = (order[k:k + per_task] for k in range(0, len(order), per_task))
    try:
        if client is None:
            for batch in batches:
                for i in batch:
                    record(i, *_attempt(fn, items[i], args, retries))
                    bar.update()
        else:
            _run_on_cluster(client, fn, items, args, batches, priorities, retries, record, bar)
    finally:
        if own_bar:
            bar.close()
    return results


def _run_on_cluster(client: Client, fn: Callable, items: Sequence, args: tuple, batches: Iterable[list[int]],
                    priorities: Sequence[int] | None, retries: int, record: Callable, bar: Any) -> None:
    import itertools
    import uuid

    from distributed import as_completed

    pending = iter(batches)
    position: dict = {}
    # (not as_completed(with_results=True): its background gathers broke a tornado stream under load here)
    running = as_completed([])
    name = getattr(fn, "__name__", "task")
    target = tasks_in_flight(client)

    def submit(count: int) -> None:
        group = list(itertools.islice(pending, count))
        if not group:
            return
        # the dashboard names the tasks by their function, not by the batch wrapper
        keys = [f"{name}-{uuid.uuid4().hex}" for _ in group]
        payloads = [[items[i] for i in batch] for batch in group]
        if priorities is None:  # one message to the scheduler for the whole group
            futures = client.map(_run_batch, [fn] * len(group), payloads, [args] * len(group),
                                 [retries] * len(group), key=keys, retries=retries)
        else:
            futures = [client.submit(_run_batch, fn, payload, args, retries, key=key, retries=retries,
                                     priority=max(priorities[i] for i in batch))
                       for key, payload, batch in zip(keys, payloads, group, strict=True)]
        for future, batch in zip(futures, group, strict=True):
            position[future] = batch
            running.add(future)

    submit(target)
    try:
        for done in running.batches():
            for future in done:
                batch = position.pop(future)
                try:
                    outcomes = future.result()
                except Exception as exc:  # noqa: BLE001  (KilledWorker, a cancelled future, an unpicklable result)
                    outcomes = [(False, exc)] * len(batch)
                future.release()  # the result is ours now: the cluster may forget it
                for i, (ok, value) in zip(batch, outcomes, strict=True):
                    record(i, ok, value)
                    bar.update()
            if len(position) <= target // 2:  # refill in one message, not one per finished task
                if _local_threads(client) is not None:  # an adaptive cluster grows: more threads, more in flight
                    target = tasks_in_flight(client)  # (no scheduler round trip inside the loop)
                submit(target - len(position))
    finally:
        client.cancel([f for f in position if not f.done()])
