import dask
import dask.array as da
import pytest
from distributed import Client, LocalCluster

from seisgrid import cluster
from seisgrid.errors import ConfigError, SeisgridError


def _square(x):
    return x * x


def test_local_client_prints_dashboard_and_computes(capfd):
    with cluster.client_scope("local", n_workers=1, dashboard_address=":0") as client:
        assert len(client.scheduler_info()["workers"]) == 1
        assert client.submit(_square, 7).result() == 49
        # the new client is the default scheduler while it is open
        assert da.arange(10, chunks=5).sum().compute() == 45
        local_cluster = client.cluster
    assert "dashboard" in capfd.readouterr().err
    assert local_cluster.status.name == "closed"


def test_workers_get_one_thread_per_library_and_this_process_keeps_its_environment(monkeypatch):
    """distributed sets the workers' pre-spawn variables in the parent's os.environ; a library imported
    later in this process (torch, when a step runs) must not inherit OMP_NUM_THREADS=1 from that."""
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    with cluster.client_scope("local", n_workers=1, dashboard_address=":0") as client:
        assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "4"
        worker_env = client.run(lambda: {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    # distributed: a variable already set in the environment wins over the configured one
    assert list(worker_env.values()) == [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "4"}]


def test_get_client_local_honours_config(capfd):
    settings = {"seisgrid.cluster.local": {"n_workers": 1, "threads_per_worker": 1, "dashboard_address": ":0"}}
    with dask.config.set(settings):
        client = cluster.get_client("local", quiet=True)
    try:
        info = client.scheduler_info()["workers"]
        assert len(info) == 1
        assert all(w["nthreads"] == 1 for w in info.values())
    finally:
        client.close()
        client.cluster.close()
    assert "dashboard" not in capfd.readouterr().err


def test_connect_by_scheduler_address(capfd):
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as lc:
        with cluster.client_scope(lc.scheduler_address) as client:
            assert client.submit(_square, 3).result() == 9
            assert client.cluster is None  # not ours: client_scope must not close it
        # the cluster is still running after the scope
        with Client(lc.scheduler_address) as other:
            assert other.submit(_square, 4).result() == 16
    assert "dashboard" in capfd.readouterr().err


def test_existing_client_passes_through(dask_client):
    assert cluster.get_client(dask_client) is dask_client
    with cluster.client_scope(dask_client) as client:
        assert client is dask_client
    assert dask_client.status == "running"


def test_dask_client_fixture_is_real(dask_client):
    workers = dask_client.scheduler_info()["workers"]
    assert len(workers) == 2
    pids = set(dask_client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2
    assert dask_client.submit(_square, 5).result() == 25
    # within the test the fixture's client is the default scheduler
    assert da.ones(4, chunks=2).sum().compute() == 4


@pytest.mark.parametrize("spec", ["nonsense", "slurmm", "local-ish"])
def test_bad_spec_raises_config_error(spec):
    with pytest.raises(ConfigError) as excinfo:
        cluster.get_client(spec)
    message = str(excinfo.value)
    assert spec in message
    assert "local" in message and "tcp://" in message
    assert isinstance(excinfo.value, SeisgridError)


def test_unknown_local_option_raises_config_error():
    with pytest.raises(ConfigError, match="n_wrokers"):
        cluster.get_client("local", n_wrokers=2)


def test_unreachable_scheduler_raises_config_error():
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(ConfigError, match="no scheduler answered") as excinfo:
        cluster.get_client(address, timeout="1s")
    assert address in str(excinfo.value)


def test_raise_if_dask_computes():
    from helpers import raise_if_dask_computes

    x = da.arange(100, chunks=10)
    with raise_if_dask_computes():
        y = (x + 1).sum()  # building a graph computes nothing
    with pytest.raises(RuntimeError, match="Too many computes"), raise_if_dask_computes():
        y.compute()
    with raise_if_dask_computes(max_computes=1) as counter:
        assert int(y.compute()) == 5050
    assert counter.total_computes == 1


def test_raise_if_dask_computes_wins_over_a_client(dask_client):
    from helpers import raise_if_dask_computes

    with pytest.raises(RuntimeError, match="Too many computes"), raise_if_dask_computes():
        da.ones(4, chunks=2).sum().compute()


def _slow_square(x):
    import time

    time.sleep(0.05)
    return x * x


class _CountingBar:
    def __init__(self):
        self.n = 0

    def update(self, n=1):
        self.n += n


def test_run_tasks_bounds_work_in_flight_and_releases_results(dask_client, monkeypatch):
    bar, submitted, most = _CountingBar(), [0], [0]
    real_map = dask_client.map

    def counting_map(func, *iterables, **kwargs):  # a spy on the real client: how far ahead of the results it runs
        submitted[0] += len(iterables[0])
        most[0] = max(most[0], submitted[0] - bar.n)
        return real_map(func, *iterables, **kwargs)

    monkeypatch.setattr(dask_client, "map", counting_map)
    with dask.config.set({"seisgrid.cluster.tasks_in_flight_per_thread": 1, "seisgrid.cluster.min_tasks_in_flight": 3}):
        assert cluster.tasks_in_flight(dask_client) == 3  # 2 workers × 1 thread, at least 3
        out = cluster.run_tasks(dask_client, _slow_square, list(range(20)), bar=bar)
    assert out == [x * x for x in range(20)] and bar.n == 20 and submitted[0] == 20
    assert most[0] <= 3  # never more than 3 submitted ahead of the results taken
    # every future was released: the scheduler keeps none of the 20 results
    assert dask_client.run_on_scheduler(
        lambda dask_scheduler: sum(k.startswith("_slow_square") for k in map(str, dask_scheduler.tasks))) == 0


def test_dashboard_on_loopback_and_a_free_port_when_taken(capfd):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        client = cluster.get_client("local", n_workers=1, dashboard_address=f"127.0.0.1:{port}")
        try:
            link = client.dashboard_link
        finally:
            client.close()
            client.cluster.close()
    err = capfd.readouterr().err
    assert f"port {port} is in use" in err and "127.0.0.1" in link and f":{port}/" not in link
    assert "already in use" not in err  # not distributed's raw warning


# ------------------------------------------------------------------------------------------- the runner


def _fail_on_odd(x):
    if x % 2:
        raise ValueError(f"odd {x}")
    return x * 10


def _fail_until_marked(path):
    """Fails the first two calls for ``path`` (counted in the file), then returns its number of calls."""
    import pathlib

    marker = pathlib.Path(path)
    calls = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(calls))
    if calls < 3:
        raise OSError(f"flaky {calls}")
    return calls


@pytest.mark.parametrize("on_cluster", [False, True])
@pytest.mark.parametrize("per_task", [1, 3])
def test_run_tasks_records_failures_and_goes_on(dask_client, on_cluster, per_task):
    failures: list = []
    results = cluster.run_tasks(dask_client if on_cluster else None, _fail_on_odd, list(range(10)), progress=False,
                                failures=failures, retries=1, items_per_task=per_task)
    assert results == [0, None, 20, None, 40, None, 60, None, 80, None]
    assert [(f["index"], f["item"]) for f in sorted(failures, key=lambda f: f["index"])] == [(i, i) for i in
                                                                                            (1, 3, 5, 7, 9)]
    assert all(f["error"].startswith("ValueError: odd") for f in failures)
    with pytest.raises(ValueError, match="odd"):  # without a failures list the first failure is raised
        cluster.run_tasks(dask_client if on_cluster else None, _fail_on_odd, [0, 1, 2], progress=False, retries=0)


@pytest.mark.parametrize("on_cluster", [False, True])
def test_run_tasks_retries_an_item_then_succeeds(dask_client, tmp_path, on_cluster):
    paths = [str(tmp_path / f"{on_cluster}-{i}") for i in range(3)]
    failures: list = []
    assert cluster.run_tasks(dask_client if on_cluster else None, _fail_until_marked, paths, progress=False,
                             retries=2, failures=failures) == [3, 3, 3]
    assert failures == []
    again: list = []  # one retry is not enough for a fresh marker: recorded as failed
    cluster.run_tasks(dask_client if on_cluster else None, _fail_until_marked, [str(tmp_path / "x")],
                      progress=False, retries=1, failures=again)
    assert len(again) == 1 and "OSError: flaky 2" in again[0]["error"]


def _client_peak_bytes(client, n: int) -> int:
    import tracemalloc

    seen = [0]

    def count(_i, _value):
        seen[0] += 1

    tracemalloc.start()
    try:
        # int: a function the scheduler's own process can import (not one of this test module)
        cluster.run_tasks(client, int, range(n), progress=False, items_per_task=100, on_result=count)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen[0] == n
    return peak


def test_client_memory_is_flat_in_the_number_of_items():
    from distributed import Client
    from distributed.deploy.subprocess import SubprocessCluster

    # The scheduler in its own process (as on HPC, where it is not the client's), so that only the client's
    # memory is traced; distributed keeps the last `low-level-log-length` messages it sent (1000 by default:
    # ~2 MB), which the test shortens so that the log is full from the first hundred tasks.
    with dask.config.set({"distributed.admin.low-level-log-length": 50}):
        local = SubprocessCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
        client = Client(local)
    try:
        _client_peak_bytes(client, 10**3)  # warm up: imports, connections, the full message log
        small, large = _client_peak_bytes(client, 10**4), _client_peak_bytes(client, 10**5)
    finally:
        client.close()
        local.close()
    # 10× the items (100 → 1000 tasks): holding results or futures would cost ≥ 100 B per item (≥ 9 MB more)
    assert large - small < 2**20, (small, large)
