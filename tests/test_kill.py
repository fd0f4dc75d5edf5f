"""Killed workers and killed runs cost nothing: ingest, detection, a PSO search and the GHF feature build on a
LocalCluster whose worker processes are killed mid-task (by PID with SIGKILL, and with distributed's own
``distributed.chaos.KillWorker``, whose ``sys.exit`` mode exits 0 like a preempted cloud worker) end equal to
an uninterrupted run; SIGKILL of the whole ``seisgrid`` process mid-ingest, mid-detection and mid-``seisgrid
run`` followed by the same command ends equal to a clean run; and a hypothesis state machine (ingest some
files, kill at a random point, add files, rerun …) always ends with the store of a clean ingest of the same
files.

The figures of docs/reliability.md come from these tests: ``bash bin/test -m reliability tests/test_kill.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from archives import write_day_files
from distributed import Client
from distributed.chaos import KillWorker
from helpers import data_hashes, requires_torch

from seisgrid import cluster, manifest
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.verify import verify

pytestmark = pytest.mark.reliability

IDS = ("XX.A..HHZ", "XX.A..HHN", "XX.A..HHE", "XX.B..HHZ")
RATE = 100.0  # a channel-day task takes a few tenths of a second: long enough to be killed in the middle
KILLS = {"processes killed": 0}  # totals over the session, printed for docs/reliability.md


def outcome(store: str, clean: str, **figures) -> dict:
    """The figures of one killed run against its clean reference: objects compared, wrong, samples lost."""
    got, want = data_hashes(str(store)), data_hashes(str(clean))
    wrong = sum(got.get(k) != v for k, v in want.items()) + len(set(got) - set(want))
    from seisgrid.errors import StorageError
    from seisgrid.seismic.store import open_archive

    try:
        lost = open_archive(str(clean)).inventory()["samples"] - open_archive(str(store)).inventory()["samples"]
    except StorageError:  # not a waveform store (probabilities, feature grids): the hashes say it all
        lost = 0
    return {**figures, "objects_compared": len(want), "wrong_objects": wrong, "samples_lost": lost}


def new_cluster() -> Client:
    """A LocalCluster as seisgrid starts one (``--cluster local``): 2 worker processes, lost ones replaced."""
    return cluster.get_client("local", quiet=True, n_workers=2, threads_per_worker=1, dashboard_address=":0")


def close(client: Client) -> None:
    cluster = client.cluster
    client.close()
    cluster.close()


class PidKiller(threading.Thread):
    """Kill a worker process (SIGKILL, by PID) each time ``ready(n)`` first holds for n = 1 … ``kills``."""

    def __init__(self, client: Client, ready, kills: int = 2, timeout: float = 120.0) -> None:
        super().__init__(daemon=True)
        self.client, self.ready, self.kills, self.timeout = client, ready, kills, timeout
        self.killed: list[int] = []

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while len(self.killed) < self.kills and time.monotonic() < deadline:
            if self.ready(len(self.killed) + 1):
                try:
                    pids = sorted(self.client.run(os.getpid, nanny=False).values())
                except Exception:  # noqa: BLE001  (a worker is restarting: try again)
                    time.sleep(0.05)
                    continue
                if pids:
                    os.kill(pids[len(self.killed) % len(pids)], signal.SIGKILL)
                    self.killed.append(pids[0])
                    KILLS["processes killed"] += 1
            time.sleep(0.02)


def day_records_written(store: pathlib.Path) -> int:
    days = store / "_manifest" / "days"
    return len(list(days.glob("*/*/zarr.json"))) if days.exists() else 0


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill") / "sds"
    write_day_files(folder, ids=IDS, days=3, rate=RATE)
    clean = tmp_path_factory.mktemp("kill-clean") / "clean.zarr"
    summary = ingest(str(folder), str(clean), progress=False)
    return folder, clean, summary


COUNTS = ("tasks_run", "channels", "samples_written", "gaps", "overlaps", "files_found", "files_ok")


# --------------------------------------------------------------------------------------------- killed workers
def test_ingest_survives_workers_killed_by_pid(archive, tmp_path, reliability_figures):
    source, clean, clean_summary = archive
    store = tmp_path / "store.zarr"
    client = new_cluster()
    try:
        killer = PidKiller(client, lambda n: day_records_written(store) >= 3 * n)
        killer.start()
        result = ingest(str(source), str(store), client=client, progress=False)
        killer.join(timeout=5)
    finally:
        close(client)
    reliability_figures.update(outcome(store, clean, workers_killed=len(killer.killed)))
    assert len(killer.killed) == 2, "the kills should land in the middle of the run"
    assert result["tasks_failed"] == [] and {k: result[k] for k in COUNTS} == {k: clean_summary[k] for k in COUNTS}
    assert data_hashes(str(store)) == data_hashes(str(clean))
    assert verify(str(store), progress=False)["ok"]  # no chunk missing, no stray or temporary object


@pytest.mark.parametrize("mode", ["sys.exit", "segfault"])
def test_ingest_survives_distributed_kill_worker(archive, tmp_path, mode, reliability_figures):
    source, clean, clean_summary = archive
    store = tmp_path / "store.zarr"
    client = new_cluster()
    try:
        client.register_plugin(KillWorker(delay="3s", mode=mode), name="kill-worker")
        result = ingest(str(source), str(store), client=client, progress=False)
        restarts = len(client.run_on_scheduler(lambda dask_scheduler: [
            e for e in dask_scheduler.get_events("all") if e[1].get("action") == "remove-worker"]))
    finally:
        close(client)
    KILLS["processes killed"] += restarts
    reliability_figures.update(outcome(store, clean, workers_killed=restarts, kill_mode=mode))
    assert result["tasks_failed"] == [] and {k: result[k] for k in COUNTS} == {k: clean_summary[k] for k in COUNTS}
    assert data_hashes(str(store)) == data_hashes(str(clean))
    assert verify(str(store), progress=False)["ok"]


def _slow_sphere(x, target) -> float:
    time.sleep(0.3)
    return float(np.sum((np.asarray(x) - target) ** 2))


def test_pso_state_survives_killed_workers(reliability_figures):
    from test_ghf_pso import _state

    from seisgrid.ghf import pso

    kwargs = {"n_particles": 6, "iterations": 4, "c1": 2.0, "c2": 2.0, "seed": 3,
              "objective_args": (np.array([0.2, -0.1]),), "progress": False}
    bounds = ([-1, -1], [1, 1])
    clean = pso.particle_swarm(_slow_sphere, bounds, client=None, **kwargs)
    client = new_cluster()
    evaluated = []
    try:
        killer = PidKiller(client, lambda n: not evaluated and (time.sleep(0.8) or True))
        killer.start()
        killed_run = pso.particle_swarm(_slow_sphere, bounds, client=client, **kwargs)
        evaluated.append(1)
        killer.join(timeout=5)
    finally:
        close(client)
    reliability_figures.update(workers_killed=len(killer.killed), wrong_outputs=int(
        repr(_state(killed_run)) != repr(_state(clean))))
    assert killer.killed
    assert repr(_state(killed_run)) == repr(_state(clean))


def _kriging_now(dask_scheduler) -> bool:
    """Whether a kriging tile task is running (asked on the scheduler)."""
    return any(ts.state == "processing" and "krige" in ts.prefix.name for ts in dask_scheduler.tasks.values())


def test_ghf_feature_build_survives_killed_workers(tmp_path_factory, reliability_figures):
    from test_ghf_features import write_synthetic_data

    from seisgrid.ghf import features as F

    data = write_synthetic_data(tmp_path_factory.mktemp("ghf-kill") / "ghf")
    out = tmp_path_factory.mktemp("ghf-kill-out")
    kwargs = dict(data_dir=data, res=2.0, features=["moho_depth", "tectonic_class"], progress=False)
    clean_client = new_cluster()
    try:
        F.build_features(str(out / "clean.zarr"), client=clean_client, **kwargs)
    finally:
        close(clean_client)
    client = new_cluster()
    try:
        # a mean worker life of 3 s, as for ingest: at 1 s the task holding the shared kriging inputs
        # (cluster.share) could die on four workers in a row and end the build with KilledWorker
        client.register_plugin(KillWorker(delay="3s", mode="sys.exit"), name="kill-worker")
        # and one worker killed by PID while a kriging tile runs, so that a kill lands mid-task for sure
        killer = PidKiller(client, lambda n: client.run_on_scheduler(_kriging_now), kills=1)
        killer.start()
        F.build_features(str(out / "killed.zarr"), client=client, **kwargs)
        killer.join(timeout=5)
    finally:
        close(client)
    reliability_figures.update(outcome(out / "killed.zarr", out / "clean.zarr", workers_killed=len(killer.killed)))
    assert killer.killed
    assert data_hashes(str(out / "killed.zarr")) == data_hashes(str(out / "clean.zarr"))


@requires_torch
def test_detection_survives_killed_workers(tmp_path_factory, reliability_figures):
    from seisgrid.seismic import models
    from seisgrid.seismic.detect import detect
    from seisgrid.seismic.synth import synthesize

    tmp = tmp_path_factory.mktemp("detect-kill")
    synthesize(str(tmp / "archive"), stations=3, days=0.05, sampling_rates=[100.0], events_per_day=400, seed=18)
    ingest(str(tmp / "archive"), str(tmp / "store.zarr"), pattern="*.D.*", progress=False)
    model = str(tmp / "tiny.pt")
    import torch

    torch.manual_seed(0)
    models.save_checkpoint(model, models.build("tiny"), {"arch": "tiny", "window_seconds": 25.0,
                                                         "sampling_rate": 100.0, "threshold": 0.5})

    def run(name: str, client: Client) -> dict:
        return detect(str(tmp / "store.zarr"), model, str(tmp / name / "catalog.xml"),
                      stations=str(tmp / "archive" / "stations.csv"), stride_seconds=10.0, min_stations=1,
                      client=client, progress=False)

    clean_client = new_cluster()
    try:
        clean = run("clean", clean_client)
    finally:
        close(clean_client)
    client = new_cluster()
    try:
        killer = PidKiller(client, lambda n: time.sleep(1.0) or True, kills=1)
        killer.start()
        killed = run("killed", client)
        killer.join(timeout=5)
    finally:
        close(client)
    reliability_figures.update(outcome(killed["probabilities"], clean["probabilities"], workers_killed=len(
        killer.killed), catalog_differs=int(pathlib.Path(killed["catalog"]["csv"]).read_text()
                                            != pathlib.Path(clean["catalog"]["csv"]).read_text())))
    assert killer.killed and killed["tasks_failed"] == []
    assert pathlib.Path(killed["catalog"]["csv"]).read_text() == pathlib.Path(clean["catalog"]["csv"]).read_text()
    assert data_hashes(killed["probabilities"]) == data_hashes(clean["probabilities"])


# ------------------------------------------------------------------------------------------------ killed runs
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "seisgrid.cli", *args]


CLI_ENV = {**os.environ, "SEISGRID_CLUSTER__LOCAL__N_WORKERS": "1", "SEISGRID_CLUSTER__LOCAL__DASHBOARD_ADDRESS": ":0"}


def _kill_when(cmd: list[str], ready, timeout: float = 180.0) -> bool:
    """Start ``cmd`` in its own process group, SIGKILL the group once ``ready()``; whether it was still running."""
    proc = subprocess.Popen(cmd, env=CLI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    KILLS["processes killed"] += 1
    return running


def test_sigkill_mid_ingest_then_rerun_is_identical(archive, tmp_path, reliability_figures):
    source, clean, _ = archive
    store = tmp_path / "store.zarr"
    assert _kill_when(_cli("ingest", str(source), str(store), "--cluster", "local"),
                      lambda: day_records_written(store) >= 4)
    done = subprocess.run(_cli("ingest", str(source), str(store), "--json"), env=CLI_ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    reliability_figures.update(outcome(store, clean, runs_killed=1))
    assert 4 <= summary["tasks_skipped"] < 12 and summary["tasks_run"] + summary["tasks_skipped"] == 12
    assert data_hashes(str(store)) == data_hashes(str(clean))
    assert verify(str(store), progress=False)["ok"]


@requires_torch
def test_sigkill_mid_detection_then_rerun_is_identical(tmp_path, reliability_figures):
    from seisgrid.seismic import models
    from seisgrid.seismic.synth import synthesize

    synthesize(str(tmp_path / "archive"), stations=3, days=0.1, sampling_rates=[100.0], events_per_day=200, seed=18)
    ingest(str(tmp_path / "archive"), str(tmp_path / "store.zarr"), pattern="*.D.*", progress=False)
    import torch

    torch.manual_seed(0)
    model = str(tmp_path / "tiny.pt")
    models.save_checkpoint(model, models.build("tiny"), {"arch": "tiny", "window_seconds": 25.0,
                                                         "sampling_rate": 100.0, "threshold": 0.5})

    def command(name: str) -> list[str]:
        return _cli("detect", str(tmp_path / "store.zarr"), "--model", model, "--out",
                    str(tmp_path / name / "catalog.csv"), "--stations", str(tmp_path / "archive" / "stations.csv"),
                    "--stride-seconds", "10", "--min-stations", "1", "--json")

    clean = subprocess.run(command("clean"), env=CLI_ENV, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr
    probabilities = tmp_path / "killed" / "catalog.probabilities.zarr"
    assert _kill_when(command("killed"), lambda: day_records_written(probabilities) >= 1)
    again = subprocess.run(command("killed"), env=CLI_ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    first, second = (json.loads(p.stdout.splitlines()[-1]) for p in (clean, again))
    reliability_figures.update(outcome(second["probabilities"], first["probabilities"], runs_killed=1))
    assert second["tasks_skipped"] >= 1
    assert pathlib.Path(second["catalog"]["csv"]).read_text() == pathlib.Path(first["catalog"]["csv"]).read_text()
    assert data_hashes(second["probabilities"]) == data_hashes(first["probabilities"])


def test_sigkill_mid_pipeline_run_then_rerun_is_identical(archive, tmp_path, reliability_figures):
    source, clean, _ = archive
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"""# ingest, then an inventory of the store
name: killed
vars:
  output: {tmp_path / "out"}
steps:
  - ingest:
      source: {source}
      store: "{{output}}/store.zarr"
  - inventory:
      store: "{{output}}/store.zarr"
""")
    store = tmp_path / "out" / "store.zarr"
    assert _kill_when(_cli("run", str(pipeline)), lambda: day_records_written(store) >= 5)
    done = subprocess.run(_cli("run", str(pipeline), "--json"), env=CLI_ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "run-record.json").read_text())
    reliability_figures.update(outcome(store, clean, runs_killed=1))
    assert [s["status"] for s in record["steps"]] == ["done", "done"]
    assert data_hashes(str(store)) == data_hashes(str(clean))
    assert verify(str(store), progress=False)["ok"]


# ----------------------------------------------------------------------------------- hypothesis state machine
def _ingest_quietly(source: str, store: str) -> None:
    ingest(source, store, progress=False)


def _kill_in_the_middle(source: pathlib.Path, store: pathlib.Path, fraction: float) -> None:
    """Ingest in a forked child and SIGKILL it ``fraction`` of the way through its day tasks (by records)."""
    files = len(list(source.rglob("*.D.*")))
    target = max(1, int(fraction * files))
    child = multiprocessing.get_context("fork").Process(target=_ingest_quietly, args=(str(source), str(store)))
    child.start()
    deadline = time.monotonic() + 60
    while child.is_alive() and time.monotonic() < deadline and day_records_written(store) < target:
        time.sleep(0.005)
    if child.is_alive():
        os.kill(child.pid, signal.SIGKILL)
        KILLS["processes killed"] += 1
    child.join()


def test_state_machine_kill_add_rerun_always_equals_a_clean_ingest(tmp_path_factory, reliability_figures):
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

    pool = [(cid, day) for cid in ("XX.A..BHZ", "XX.A..BHN", "XX.C..BHZ") for day in range(4)]
    stats = {"runs": 0, "kills": 0, "checks": 0}

    class IngestKillRerun(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.root = tmp_path_factory.mktemp("machine")
            self.source = self.root / "sds"
            self.store = self.root / "store.zarr"
            self.added: set[tuple[str, int]] = set()
            self.clean_run = False

        def _write(self, files: list[tuple[str, int]]) -> None:
            from archives import DAY_FILES_START, mseed_bytes, sds_path, trace

            for cid, day in files:
                tr = trace(int(20.0 * 86400), 20.0, DAY_FILES_START + 86400 * day, seed=pool.index((cid, day)), id=cid)
                path = sds_path(self.source, tr)
                with open(path, "wb") as f:
                    f.write(mseed_bytes(tr))
                self.added.add((cid, day))

        @rule(picks=st.sets(st.sampled_from(pool), min_size=1, max_size=4))
        def add_files(self, picks) -> None:
            self._write(sorted(picks))
            self.clean_run = False

        @rule(fraction=st.floats(0.0, 1.0))
        def ingest_and_kill(self, fraction) -> None:
            if self.added:
                _kill_in_the_middle(self.source, self.store, fraction)
                stats["kills"] += 1
                self.clean_run = False

        @rule()
        def rerun(self) -> None:
            if self.added:
                ingest(str(self.source), str(self.store), progress=False)
                stats["runs"] += 1
                self.clean_run = True

        @invariant()
        def store_equals_a_clean_ingest(self) -> None:
            if not self.clean_run:
                return
            reference = self.root / f"reference-{len(self.added)}-{stats['checks']}.zarr"
            ingest(str(self.source), str(reference), progress=False)
            stats["checks"] += 1
            assert data_hashes(str(self.store)) == data_hashes(str(reference))
            assert verify(str(self.store), progress=False)["ok"]
            assert ({k for k in manifest.read_records(str(self.store), {}, "days")}
                    == {k for k in manifest.read_records(str(reference), {}, "days")})

    IngestKillRerun.TestCase.settings = settings(max_examples=12, stateful_step_count=6, deadline=None,
                                                 derandomize=True, suppress_health_check=list(HealthCheck))
    IngestKillRerun.TestCase().runTest()
    reliability_figures.update(runs_killed=stats["kills"], reruns=stats["runs"], stores_compared=stats["checks"],
                               wrong_stores=0)
    assert stats["kills"] > 0 and stats["checks"] > 0
