"""Atomic, versioned publishing (``seisgrid.versioned``, the icechunk store engine) on local disk and on the S3
server: a reader sees a run's writes all at once or not at all, earlier versions stay readable, two runs that
publish to one store conflict instead of interleaving, tasks on a real LocalCluster write through forks merged
on the driver, and a worker killed mid-task (or a whole run killed) changes nothing of what is published."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import zarr
from helpers import requires_moto, requires_s3fs

from seisgrid import storage
from seisgrid.cluster import run_tasks
from seisgrid.errors import StorageError

pytest.importorskip("icechunk")

from seisgrid import versioned  # noqa: E402  (after the skip: icechunk is an optional extra)
from seisgrid.versioned import ConflictError  # noqa: E402

PARTS, PART = 8, 50  # the test array: 8 regions of 50 samples, one chunk each


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.s3, requires_s3fs, requires_moto])])
def where(request, tmp_path):
    """``(url, storage options)`` of a fresh location: a folder, or a prefix of a fresh bucket on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "store"), None
    url = f"{request.getfixturevalue('s3_bucket')}/store"
    return url, storage.storage_options(url)


def content(store) -> dict[str, str]:
    """SHA-256 of every array's dtype, shape and values and every group's attributes, by path."""
    root = zarr.open_group(store, mode="r", zarr_format=3)
    out = {"": json.dumps(dict(root.attrs), sort_keys=True)}
    for path, node in root.members(max_depth=None):
        if isinstance(node, zarr.Array):
            values = np.ascontiguousarray(node[...])
            out[path] = hashlib.sha256(f"{values.dtype}{values.shape}".encode() + values.tobytes()).hexdigest()
        else:
            out[path] = json.dumps(dict(node.attrs), sort_keys=True)
    return out


def make_array(store, name: str = "data") -> None:
    root = zarr.open_group(store, mode="a", zarr_format=3)
    root.create_array(name, shape=(PARTS * PART,), chunks=(PART,), dtype="i4", fill_value=-1)


def write_part(part: int, fork: versioned.Fork, offset: int = 0, marker: str | None = None) -> dict:
    """A task: one region of ``data`` and one manifest group, through the fork; ``marker``: the first attempt
    of part 3 writes garbage there, then kills its own worker process."""
    store = versioned.task_store(fork)
    array = zarr.open_array(store, path="data", mode="r+")
    if marker and part == 3 and not os.path.exists(marker):
        array[part * PART:(part + 1) * PART] = 666
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    array[part * PART:(part + 1) * PART] = np.arange(PART) + 1000 * part + offset
    zarr.create_group(store, path=f"_manifest/days/ch{part}/day", attributes={"part": part, "offset": offset},
                      overwrite=True, zarr_format=3)
    return {"pid": os.getpid(), "fork": fork}


def expected_values(offset: int = 0) -> np.ndarray:
    return np.concatenate([np.arange(PART) + 1000 * p + offset for p in range(PARTS)]).astype("i4")


def publish(url, options, message, offset, client=None, marker=None) -> tuple[str, list[dict]]:
    """A whole run as ingest does it: the driver makes the array, tasks fill it through forks, one commit."""
    with versioned.begin(url, options, message=message) as run:
        if "data" not in zarr.open_group(run.store, mode="a", zarr_format=3):
            make_array(run.store)
        zarr.open_group(run.store, mode="r+", zarr_format=3).attrs["run"] = message
        fork = run.fork()
        results = run_tasks(client, write_part, list(range(PARTS)), args=(fork, offset, marker), progress=False,
                            items_per_task=1)
        assert run.merge([r["fork"] for r in results]) == (PARTS if client is not None else 1)
        return run.commit(), results


# ------------------------------------------------------------------------------------------ visibility


def test_a_reader_sees_none_of_a_run_before_its_commit_and_all_after(where):
    url, options = where
    first, _ = publish(url, options, "first", offset=0)
    before = versioned.open_readonly(url, options)
    published = content(before)
    run = versioned.begin(url, options, message="second")
    zarr.open_group(run.store, mode="r+").attrs["run"] = "second"
    make_array(run.store, "more")
    fork = pickle.loads(pickle.dumps(run.fork()))  # checkpoint on the run branch, then a task's copy
    zarr.open_array(fork.store, path="data", mode="r+")[:] = 7
    zarr.open_array(fork.store, path="more", mode="r+")[:PART] = 8
    run.merge([pickle.loads(pickle.dumps(fork))])
    during = versioned.open_readonly(url, options)
    assert content(during) == published  # the checkpoint is not on main
    assert content(versioned.open_readonly(url, options, first)) == published
    second = run.commit()
    after = versioned.open_readonly(url, options)
    root = zarr.open_group(after, mode="r")
    assert root.attrs["run"] == "second"
    assert (root["data"][:] == 7).all() and (root["more"][:PART] == 8).all() and (root["more"][PART:] == -1).all()
    assert content(before) == published  # a reader keeps the version it opened
    assert versioned.open_repository(url, options).list_branches() == {"main"}  # the run branch is gone
    assert second != first and [v.id for v in versioned.history(url, options) if v.published][:2] == [second, first]


def test_earlier_versions_stay_readable(where):
    url, options = where
    ids, contents = [], []
    for k in range(3):
        sid, _ = publish(url, options, f"run {k}", offset=k)
        ids.append(sid)
        contents.append(content(versioned.open_readonly(url, options)))
    assert len({json.dumps(c, sort_keys=True) for c in contents}) == 3
    for sid, expected in zip(ids, contents, strict=True):
        assert content(versioned.open_readonly(url, options, sid)) == expected
    assert content(versioned.open_readonly(url, options, "main")) == contents[-1]
    history = versioned.history(url, options)
    published = [v for v in history if v.published]
    assert [v.id for v in published] == [*ids[::-1], history[-1].id]
    assert [v.message for v in published[:3]] == ["run 2", "run 1", "run 0"]
    assert all(v.time.tzinfo is not None for v in history)
    # each run also left one checkpoint (the driver's array and attributes, before the tasks' forks)
    checkpoints = [v for v in history if not v.published]
    assert [v.message for v in checkpoints] == ["run 2 (step 1)", "run 1 (step 1)", "run 0 (step 1)"]
    with pytest.raises(StorageError, match="no version 'NOSUCHVERSION'"):
        versioned.open_readonly(url, options, "NOSUCHVERSION")


# ------------------------------------------------------------------------------------------- conflicts


def test_two_runs_publishing_at_once_conflict_and_the_store_holds_one(where):
    url, options = where
    publish(url, options, "base", offset=0)
    base = versioned.history(url, options)[0].id
    runs = [versioned.begin(url, options, message=f"writer {k}") for k in range(2)]
    for k, run in enumerate(runs):
        fork = run.fork()
        zarr.open_array(fork.store, path="data", mode="r+")[:] = expected_values(100 + k)
        zarr.open_group(fork.store, mode="r+").attrs["run"] = f"writer {k}"
        make_array(fork.store, f"only-{k}")
        run.merge([fork])
    outcome: list = [None, None]
    barrier = threading.Barrier(2)

    def commit(k: int) -> None:
        barrier.wait()
        try:
            outcome[k] = runs[k].commit()
        except ConflictError as exc:
            outcome[k] = exc

    threads = [threading.Thread(target=commit, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [k for k in range(2) if isinstance(outcome[k], str)]
    assert len(won) == 1, outcome
    winner, loser = won[0], 1 - won[0]
    error = outcome[loser]
    assert isinstance(error, ConflictError) and isinstance(error, StorageError)
    assert error.url == url and error.branch == "main" and error.expected == base and error.actual == outcome[winner]
    assert url in str(error) and "'main'" in str(error) and "Nothing of this run was published" in str(error)
    assert "run the command again" in str(error)
    root = zarr.open_group(versioned.open_readonly(url, options), mode="r")
    assert root.attrs["run"] == f"writer {winner}"
    assert (root["data"][:] == expected_values(100 + winner)).all()
    assert f"only-{winner}" in root and f"only-{loser}" not in root
    assert versioned.history(url, options)[0].id == outcome[winner]
    assert versioned.open_repository(url, options).list_branches() == {"main"}
    with pytest.raises(StorageError, match="already aborted"):
        runs[loser].commit()


# ----------------------------------------------------------------------------------------- distributed


def test_tasks_on_a_cluster_write_through_forks_merged_on_the_driver(where, dask_client, tmp_path):
    url, options = where
    sid, results = publish(url, options, "on the cluster", offset=0, client=dask_client)
    assert len({r["pid"] for r in results}) == 2 and os.getpid() not in {r["pid"] for r in results}
    local, _ = publish(str(tmp_path / "in-process"), None, "on the cluster", offset=0)
    store = versioned.open_readonly(url, options)
    assert content(store) == content(versioned.open_readonly(str(tmp_path / "in-process")))
    assert (zarr.open_array(store, path="data", mode="r")[:] == expected_values()).all()
    manifest = versioned.attributes_under(store, "_manifest/days")
    assert manifest == {f"ch{p}/day": {"part": p, "offset": 0} for p in range(PARTS)}


@pytest.fixture(scope="module")
def killable_client():
    """A LocalCluster of its own (2 worker processes × 1 thread) whose nannies restart a killed worker.

    Not ``dask_client``: while that fixture has ``dask.config`` hold ``scheduler=<the Client>``, a nanny cannot
    start a new worker process (it pickles the configuration for it: "Can't pickle local object
    'BaseIOStream.write.<locals>.<lambda>'"), and the session's cluster would stay one worker short.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client, client.as_current():
        yield client


def test_a_worker_killed_mid_task_leaves_a_commit_equal_to_the_clean_run(where, killable_client, tmp_path):
    url, options = where
    clean = str(tmp_path / "clean")
    publish(clean, None, "run", offset=0)
    marker = str(tmp_path / "killed.pid")
    _, results = publish(url, options, "run", offset=0, client=killable_client, marker=marker)
    killed = int(open(marker).read())
    assert results[3]["pid"] != killed  # part 3 ran again, on a live worker
    assert content(versioned.open_readonly(url, options)) == content(versioned.open_readonly(clean))
    assert versioned.open_repository(url, options).list_branches() == {"main"}
    killable_client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


# ---------------------------------------------------------------------------------------- killed runs


def test_a_killed_run_publishes_nothing_and_its_branch_can_be_discarded(tmp_path):
    url = str(tmp_path / "store")
    first, _ = publish(url, None, "first", offset=0)
    published = content(versioned.open_readonly(url))
    script = textwrap.dedent(f"""
        import os, signal, zarr
        from seisgrid import versioned
        run = versioned.begin({url!r}, message="killed")
        zarr.open_group(run.store, mode="r+").attrs["run"] = "killed"
        fork = run.fork()
        zarr.open_array(fork.store, path="data", mode="r+")[:] = 5
        run.merge([fork])
        run.checkpoint()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert content(versioned.open_readonly(url)) == published
    assert versioned.history(url)[0].id == first
    left = versioned.open_repository(url).list_branches() - {"main"}
    assert len(left) == 1 and next(iter(left)).startswith(versioned.RUN_PREFIX)
    assert versioned.discard_runs(url) == []  # younger than a day: could still be running
    assert versioned.discard_runs(url, older_than=dt.timedelta(0)) == sorted(left)
    assert versioned.open_repository(url).list_branches() == {"main"}
    second, _ = publish(url, None, "after", offset=1)  # the next run publishes normally
    assert versioned.history(url)[0].id == second


def test_leaving_the_block_without_commit_or_with_an_exception_publishes_nothing(tmp_path):
    url = str(tmp_path / "store")
    first, _ = publish(url, None, "first", offset=0)
    with pytest.raises(RuntimeError, match="boom"), versioned.begin(url, message="failing") as run:
        zarr.open_array(run.store, path="data", mode="r+")[:] = 9
        raise RuntimeError("boom")
    with versioned.begin(url, message="forgotten") as run:
        zarr.open_array(run.store, path="data", mode="r+")[:] = 9
    assert versioned.history(url)[0].id == first
    assert (zarr.open_array(versioned.open_readonly(url), path="data", mode="r")[:] == expected_values()).all()
    assert versioned.open_repository(url).list_branches() == {"main"}
    with versioned.begin(url, message="nothing") as run:  # a run that wrote nothing publishes nothing
        assert run.commit() == first
    assert versioned.history(url)[0].id == first


# ------------------------------------------------------------------------------------- storage, layout


def test_is_icechunk_and_plain_zarr_stores_are_not_taken_for_repositories(tmp_path):
    missing = tmp_path / "missing"
    assert not versioned.is_icechunk(str(missing)) and not missing.exists()  # nothing created
    with pytest.raises(StorageError, match="no Icechunk repository there"):
        versioned.open_repository(str(missing))
    plain = str(tmp_path / "plain.zarr")
    make_array(storage.zarr_store(plain))
    assert not versioned.is_icechunk(plain)
    with pytest.raises(StorageError, match="plain Zarr store, not an Icechunk repository"):
        versioned.begin(plain, message="x")
    url = str(tmp_path / "repo")
    publish(url, None, "first", offset=0)
    assert versioned.is_icechunk(url) and versioned.is_icechunk(f"file://{url}")
    with pytest.raises(StorageError, match="local paths and s3:// URLs only"):
        versioned.begin("gs://bucket/store", {}, message="x")


def test_s3_storage_options_become_icechunk_s3_storage_arguments():
    url = "s3://bucket/deep/store.zarr"
    options = storage.storage_options(url, {"endpoint_url": "http://127.0.0.1:5555", "key": "K", "secret": "S"})
    kwargs = versioned.s3_storage_kwargs(url, options)
    assert kwargs == {"bucket": "bucket", "prefix": "deep/store.zarr", "region": kwargs["region"],
                      "endpoint_url": "http://127.0.0.1:5555", "allow_http": True, "force_path_style": True,
                      "access_key_id": "K", "secret_access_key": "S", "session_token": None,
                      "network_stream_timeout_seconds": 60}
    assert kwargs["region"]  # a custom endpoint always gets one (no EC2 metadata lookup)
    anon = versioned.s3_storage_kwargs("s3://bucket", {"anon": True, "client_kwargs": {
        "endpoint_url": "https://s3.example.org", "region_name": "eu-west-1"},
        "config_kwargs": {"s3": {"addressing_style": "virtual"}}})
    assert anon == {"bucket": "bucket", "prefix": None, "region": "eu-west-1", "endpoint_url": "https://s3.example.org",
                    "allow_http": False, "force_path_style": False, "anonymous": True}
    assert versioned.s3_storage_kwargs("s3://bucket/p", {})["from_env"] is True
    assert "key" not in json.dumps(versioned.s3_storage_kwargs("s3://bucket/p", {}))
    with pytest.raises(StorageError, match="no bucket"):
        versioned.s3_storage_kwargs("s3:///p", {})


def test_attributes_under_reads_the_manifest_alike_from_plain_and_icechunk_stores(tmp_path):
    records = {f"NET.ST{k}..HHZ/2021-01-0{d}": {"samples": 100 * k + d, "segments": [[0, k]]}
               for k in range(3) for d in range(1, 4)}
    plain = storage.zarr_store(str(tmp_path / "plain.zarr"))
    with versioned.begin(str(tmp_path / "repo"), message="manifest") as run:
        for store in (plain, run.store):
            zarr.create_group(store, zarr_format=3)
            zarr.create_group(store, path="_manifest/days", zarr_format=3)
            for path, record in records.items():
                zarr.create_group(store, path=f"_manifest/days/{path}", attributes=record, zarr_format=3)
        assert versioned.attributes_under(run.store, "_manifest/days") == records  # uncommitted writes too
        run.commit()
    assert versioned.attributes_under(plain, "_manifest/days") == records
    assert versioned.attributes_under(versioned.open_readonly(str(tmp_path / "repo")), "_manifest/days/") == records
    assert versioned.attributes_under(plain, "_manifest/nothing") == {}


# --------------------------------------------------------------------------------------- flaky storage


def _fast_retries(url: str, attempts: int) -> dict:
    options = storage.storage_options(url)
    options.setdefault("config_kwargs", {}).setdefault("retries", {})["max_attempts"] = attempts
    return options


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_a_run_publishes_through_injected_s3_faults(s3_bucket, s3_faults, tmp_path):
    url = f"{s3_bucket}/store"
    options = _fast_retries(url, 10)
    clean = str(tmp_path / "clean")
    publish(clean, None, "run", offset=0)
    s3_faults.set(rate=0.2, seed=3)
    sid, _ = publish(url, options, "run", offset=0)
    state = s3_faults.off()
    assert sum(state["injected"].values()) >= 3, state
    assert versioned.history(url, options)[0].id == sid
    assert content(versioned.open_readonly(url, options)) == content(versioned.open_readonly(clean))


def test_a_failed_publish_leaves_the_run_open_and_commit_can_be_called_again(tmp_path, monkeypatch):
    # (an S3 outage of the branch's ref object would do the same, but the AWS SDK inside Icechunk retries a 503
    # for ~20 s per request whatever its retry settings say)
    url = str(tmp_path / "store")
    first, _ = publish(url, None, "first", offset=0)
    run = versioned.begin(url, message="second")
    fork = run.fork()
    zarr.open_array(fork.store, path="data", mode="r+")[:] = 2
    run.merge([fork])

    def outage(*args, **kwargs):
        raise OSError("503 SlowDown")

    with monkeypatch.context() as patch:
        patch.setattr(run, "repository", _Proxy(run.repository, reset_branch=outage))
        with pytest.raises(StorageError, match="commit again") as error:
            run.commit()
    assert not isinstance(error.value, ConflictError) and run.run_branch in str(error.value)
    assert versioned.history(url)[0].id == first  # nothing published
    second = run.commit()
    assert versioned.history(url)[0].id == second
    assert (zarr.open_array(versioned.open_readonly(url), path="data", mode="r")[:] == 2).all()
    assert versioned.open_repository(url).list_branches() == {"main"}


class _Proxy:
    """``target`` with some attributes replaced."""

    def __init__(self, target, **replaced):
        self._target, self._replaced = target, replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(self._target, name)
