"""``--store-engine icechunk``: ingest and detection publish a run at once as a new version of an Icechunk
repository; readers see all of a run or none of it, earlier versions stay readable, two runs writing one store
conflict cleanly, and a worker killed mid-run (local disk and the S3 API server) changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zarr
from archives import write_day_files
from helpers import requires_moto, requires_s3fs

from seisgrid import cluster, versioned
from seisgrid.errors import StorageError
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.store import open_archive

pytest.importorskip("icechunk", reason="requires icechunk (pip install -e '.[icechunk]')")

IDS = ("XX.A..BHZ", "XX.A..BHN", "XX.A..BHE")


def content(store) -> dict[str, str]:
    """Hash of every array's values and attributes of a Zarr store (plain URL or any Store), manifest aside."""
    root = zarr.open_group(store, mode="r", use_consolidated=False) if not isinstance(store, str) else \
        open_archive(store).root
    out = {}
    for name, station in root.groups():
        if name == "_manifest":
            continue
        for cid, array in station.arrays():
            attrs = json.dumps(dict(array.attrs), sort_keys=True)
            out[cid] = hashlib.sha256(np.asarray(array[:]).tobytes() + attrs.encode()).hexdigest()
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("engine") / "sds"
    write_day_files(folder, ids=IDS, days=2, rate=50.0)
    return folder


@pytest.fixture(scope="module")
def plain(source, tmp_path_factory) -> str:
    store = str(tmp_path_factory.mktemp("engine-plain") / "plain.zarr")
    ingest(str(source), store, progress=False)
    return store


def test_ingest_publishes_one_version_equal_to_plain_zarr(source, plain, tmp_path):
    store = str(tmp_path / "store.ic")
    result = ingest(str(source), store, store_engine="icechunk", progress=False)
    assert result["store_engine"] == "icechunk" and result["tasks_run"] == 6
    assert content(store) == content(plain)
    assert open_archive(store).inventory() == {**open_archive(plain).inventory(), "store": store}
    published = [v for v in versioned.history(store) if v.published]
    assert [v.id for v in published][0] == result["version"] and len(published) == 2  # + "Repository initialized"
    rerun = ingest(str(source), store, store_engine="icechunk", progress=False)
    assert rerun["tasks_run"] == 0 and rerun["tasks_skipped"] == 6


def test_earlier_versions_stay_readable(tmp_path):
    src = tmp_path / "sds"
    write_day_files(src, ids=IDS[:1], days=1, rate=20.0)
    store = str(tmp_path / "store.ic")
    first = ingest(str(src), store, store_engine="icechunk", progress=False)
    write_day_files(src, ids=IDS[1:2], days=1, rate=20.0)
    second = ingest(str(src), store, store_engine="icechunk", progress=False)
    assert second["tasks_run"] == 1 and second["version"] != first["version"]
    assert set(content(versioned.open_readonly(store, version=first["version"]))) == {IDS[0]}
    assert set(content(store)) == {IDS[0], IDS[1]}


@pytest.mark.reliability
def test_a_killed_run_publishes_nothing_and_the_rerun_completes(source, plain, tmp_path):
    store = tmp_path / "store.ic"
    env = {**os.environ, "SEISGRID_CLUSTER__LOCAL__N_WORKERS": "1", "SEISGRID_CLUSTER__LOCAL__DASHBOARD_ADDRESS": ":0",
           "ICECHUNK_LOG": "error"}
    cmd = [sys.executable, "-m", "seisgrid.cli", "ingest", str(source), str(store), "--store-engine", "icechunk"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    # chunks land in the repository while the run works: kill it once some have
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((store / "chunks").glob("*"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the kill should land in the middle of the run"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # readers of main see the repository as it was before the run: nothing
    with pytest.raises(zarr.errors.GroupNotFoundError):  # not even the root group
        zarr.open_group(versioned.open_readonly(str(store)), mode="r")
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert content(str(store)) == content(plain)
    assert len(versioned.discard_runs(str(store), older_than=__import__("datetime").timedelta(0))) == 1


def test_two_runs_writing_one_store_conflict_cleanly(tmp_path):
    sources = []
    for k, cid in enumerate(("XX.A..BHZ", "XX.B..BHZ")):
        sources.append(tmp_path / f"sds{k}")
        write_day_files(sources[-1], ids=(cid,), days=2, rate=20.0, seed=k)
    store = str(tmp_path / "store.ic")
    ingest(str(sources[0]), str(tmp_path / "seed.zarr"), progress=False)  # (imports warmed up)
    barrier, outcomes = threading.Barrier(2), {}

    def run(k: int) -> None:
        barrier.wait()
        try:
            outcomes[k] = ingest(str(sources[k]), store, store_engine="icechunk", progress=False)
        except StorageError as exc:
            outcomes[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    won = [k for k, v in outcomes.items() if isinstance(v, dict)]
    lost = [v for v in outcomes.values() if isinstance(v, versioned.ConflictError)]
    # both may also publish one after the other when the first finishes before the second begins
    if len(won) == 2:
        assert set(content(store)) == {"XX.A..BHZ", "XX.B..BHZ"}
        return
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "moved while this run was writing" in str(lost[0]) and store in str(lost[0])
    assert set(content(store)) == {("XX.A..BHZ", "XX.B..BHZ")[won[0]]}  # exactly the winner's data


def test_a_repository_another_run_is_creating_is_waited_for(tmp_path, monkeypatch):
    # the window the concurrent test above can hit: snapshots/ written, refs/branch.main not yet
    store = tmp_path / "store.ic"
    (store / "snapshots").mkdir(parents=True)
    finished = threading.Event()

    def finish_creating() -> None:
        time.sleep(0.3)
        (store / "snapshots").rmdir()
        versioned.open_repository(str(store), create=True)
        finished.set()

    thread = threading.Thread(target=finish_creating)
    thread.start()
    repo = versioned.open_repository(str(store), create=True)
    thread.join()
    assert finished.is_set() and "main" in repo.list_branches()

    # a half-created repository nobody finishes is named as such, after the wait
    stalled = tmp_path / "stalled.ic"
    (stalled / "snapshots").mkdir(parents=True)
    monkeypatch.setattr(versioned, "CREATION_WAIT_SECONDS", 0.2)
    with pytest.raises(StorageError, match="stalled.ic: holds an unfinished Icechunk repository"):
        versioned.open_repository(str(stalled), create=True)


def test_zarr_engine_refuses_an_icechunk_store_and_back(source, plain, tmp_path):
    store = str(tmp_path / "store.ic")
    ingest(str(source), store, store_engine="icechunk", progress=False)
    with pytest.raises(StorageError, match="is an Icechunk repository"):
        ingest(str(source), store, progress=False)
    with pytest.raises(StorageError, match="plain Zarr store"):
        ingest(str(source), plain, store_engine="icechunk", progress=False)
    with pytest.raises(Exception, match="--repair works on plain Zarr"):
        ingest(str(source), store, store_engine="icechunk", repair=True, progress=False)
    from seisgrid.seismic.verify import verify

    with pytest.raises(StorageError, match="is an Icechunk repository"):
        verify(store, progress=False)


@pytest.mark.reliability
def test_a_worker_killed_mid_run_changes_nothing(source, plain, tmp_path):
    from distributed.chaos import KillWorker

    client = cluster.get_client("local", quiet=True, n_workers=2, threads_per_worker=1, dashboard_address=":0")
    try:
        client.register_plugin(KillWorker(delay="2s", mode="segfault"), name="kill-worker")
        result = ingest(str(source), str(tmp_path / "store.ic"), client=client, store_engine="icechunk",
                        progress=False)
    finally:
        client.close()
        client.cluster.close()
    assert result["tasks_failed"] == []
    assert content(str(tmp_path / "store.ic")) == content(plain)


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_ingest_to_icechunk_on_s3_with_a_killed_worker(source, plain, s3_bucket):
    from distributed.chaos import KillWorker

    store = f"{s3_bucket}/engine.ic"
    client = cluster.get_client("local", quiet=True, n_workers=2, threads_per_worker=1, dashboard_address=":0")
    try:
        client.register_plugin(KillWorker(delay="2s", mode="sys.exit"), name="kill-worker")
        result = ingest(str(source), store, client=client, store_engine="icechunk", progress=False)
    finally:
        client.close()
        client.cluster.close()
    assert result["tasks_failed"] == [] and versioned.is_icechunk(store)
    assert content(store) == content(plain)
    assert [v.id for v in versioned.history(store) if v.published][0] == result["version"]


def test_detect_publishes_its_probabilities_at_once(tmp_path):
    pytest.importorskip("torch")
    import torch

    from seisgrid.seismic import models
    from seisgrid.seismic.detect import detect
    from seisgrid.seismic.synth import synthesize

    synthesize(str(tmp_path / "archive"), stations=2, days=0.02, sampling_rates=[100.0], events_per_day=200, seed=3)
    ingest(str(tmp_path / "archive"), str(tmp_path / "store.ic"), pattern="*.D.*", store_engine="icechunk",
           progress=False)
    torch.manual_seed(0)
    model = str(tmp_path / "tiny.pt")
    models.save_checkpoint(model, models.build("tiny"), {"arch": "tiny", "window_seconds": 25.0,
                                                         "sampling_rate": 100.0, "threshold": 0.5})
    kwargs = dict(stride_seconds=10.0, min_stations=1, progress=False)
    plain = detect(str(tmp_path / "store.ic"), model, str(tmp_path / "plain" / "catalog.csv"), **kwargs)
    versioned_run = detect(str(tmp_path / "store.ic"), model, str(tmp_path / "ic" / "catalog.csv"),
                           store_engine="icechunk", **kwargs)
    assert versioned_run["version"] and versioned_run["tasks_run"] == plain["tasks_run"] == 2
    assert (pathlib.Path(versioned_run["catalog"]["csv"]).read_text()
            == pathlib.Path(plain["catalog"]["csv"]).read_text())
    probabilities = zarr.open_group(versioned.open_readonly(versioned_run["probabilities"]), mode="r")
    reference = zarr.open_group(plain["probabilities"], mode="r", use_consolidated=False)
    for station, group in reference.groups():
        if station == "_manifest":
            continue
        for day, array in group.arrays():
            np.testing.assert_array_equal(probabilities[f"{station}/{day}"][:], array[:])
    again = detect(str(tmp_path / "store.ic"), model, str(tmp_path / "ic" / "catalog.csv"), store_engine="icechunk",
                   **kwargs)
    assert again["tasks_run"] == 0
