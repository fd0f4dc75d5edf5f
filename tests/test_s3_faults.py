"""Object storage that fails: the S3 API server of ``cluster/s3-local.sh`` injects HTTP 500, 503 SlowDown and
dropped connections at a seeded rate (``cluster/s3_server.py``); ingest, detection, labelled windows,
spectrograms and the GHF feature grid written or read through it end byte-identical to a fault-free run, and a
permanent failure is a named :class:`StorageError` for that task alone, which a rerun completes."""

from __future__ import annotations

import hashlib
import pathlib
import posixpath
import re

import dask.config
import pytest
from helpers import requires_moto, requires_s3fs

from seisgrid import storage
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.synth import synthesize

pytestmark = [pytest.mark.s3, requires_s3fs, requires_moto]

SDS = "*.D.*"
FAULT_RATE = 0.2  # of every request; the slower steps (many small objects) run at SLOW_STEP_RATE
SLOW_STEP_RATE = 0.05
# fault runs retry fast: the jittered backoff of botocore's standard mode grows to 20 s between attempts
FAST_RETRIES = {"seisgrid.storage.s3.max_attempts": 10}


def differing(a: dict[str, str], b: dict[str, str]) -> int:
    """How many objects differ between two :func:`object_hashes` (missing or extra ones included)."""
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b))


def object_hashes(url: str) -> dict[str, str]:
    """SHA-256 of every object below ``url``, by key relative to it.

    In Zarr metadata (``zarr.json``) the run's own record is set aside first: its timings (``"seconds"``)
    and the store's own location (two runs write two stores) — every chunk and attribute else must match.
    """
    fs, root = storage.filesystem(url)
    fs.invalidate_cache()
    keys = fs.find(root)
    blobs = fs.cat(keys)
    hashes = {}
    for key in keys:
        blob = blobs[key]
        if key.endswith("zarr.json"):
            text = blob.decode().replace(url.rstrip("/"), "<store>").replace(url.rsplit("/", 1)[0], "<folder>")
            blob = re.sub(r'(\\*"seconds\\*": )[0-9.e+-]+', r"\g<1>0", text).encode()
        hashes[posixpath.relpath(key, root)] = hashlib.sha256(blob).hexdigest()
    return hashes


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s3faults") / "archive"
    synthesize(str(folder), stations=2, days=0.02, sampling_rates=[50.0], events_per_day=400, seed=5)
    return folder


def test_ingest_through_injected_faults_is_byte_identical(archive, s3_bucket, s3_faults, reliability_figures):
    clean = f"{s3_bucket}/clean.zarr"
    ingest(str(archive), clean, pattern=SDS, progress=False)
    s3_faults.set(rate=FAULT_RATE, seed=1)
    with dask.config.set(FAST_RETRIES):
        faulty = f"{s3_bucket}/faulty.zarr"
        result = ingest(str(archive), faulty, pattern=SDS, progress=False)
    state = s3_faults.off()
    reliability_figures.update(faults_injected=state["injected"], fault_rate=FAULT_RATE,
                               wrong_objects=differing(object_hashes(faulty), object_hashes(clean)))
    assert sum(state["injected"].values()) >= 20, state  # the faults did happen, of every kind
    assert all(state["injected"][kind] > 0 for kind in ("http500", "http503", "drop")), state
    assert result["tasks_failed"] == [] and result["files_failed"] == []
    # the manifest's file records name the run's own store; everything else must match byte for byte
    assert object_hashes(faulty) == object_hashes(clean)


def test_permanent_failure_is_named_and_the_rerun_completes(archive, s3_bucket, s3_faults, reliability_figures):
    clean = f"{s3_bucket}/clean.zarr"
    ingest(str(archive), clean, pattern=SDS, progress=False)
    url = f"{s3_bucket}/outage.zarr"
    channel = "SY.ST01/SY.ST01..BHZ"
    s3_faults.set(fail_prefix=f"{url.removeprefix('s3://')}/{channel}/c")
    with dask.config.set({"seisgrid.storage.s3.max_attempts": 2, "seisgrid.cluster.task_retries": 1}):
        result = ingest(str(archive), url, pattern=SDS, progress=False)
    reliability_figures.update(faults_injected=s3_faults.off()["injected"], permanent_outage="one array")
    (failed,) = result["tasks_failed"]
    assert failed["channel"] == "SY.ST01..BHZ" and failed["files"][0].endswith("SY.ST01..BHZ.D.2021.001")
    assert "StorageError" in failed["error"] and f"{url}/{channel}/c/0" in failed["error"]
    assert "after 2 attempts" in failed["error"] and "testing" not in failed["error"]  # no credentials
    assert result["channels"] == 6 and result["samples_written"] > 0  # the other channel-days went on
    again = ingest(str(archive), url, pattern=SDS, progress=False)
    assert again["tasks_run"] == 1 and again["tasks_failed"] == []
    assert object_hashes(url) == object_hashes(clean)


def test_ingest_from_an_s3_source_through_faults(archive, s3_bucket, s3_faults, tmp_path, reliability_figures):
    fs, _ = storage.filesystem(s3_bucket)
    fs.put(str(archive), f"{s3_bucket.removeprefix('s3://')}/archive", recursive=True)
    clean = tmp_path / "clean.zarr"
    ingest(f"{s3_bucket}/archive", str(clean), pattern=SDS, progress=False)
    s3_faults.set(rate=FAULT_RATE, seed=2)
    with dask.config.set(FAST_RETRIES):
        result = ingest(f"{s3_bucket}/archive", str(tmp_path / "faulty.zarr"), pattern=SDS, progress=False)
    injected = s3_faults.off()["injected"]
    reliability_figures.update(faults_injected=injected, fault_rate=FAULT_RATE, wrong_objects=differing(
        object_hashes(str(tmp_path / "faulty.zarr")), object_hashes(str(clean))))
    assert sum(injected.values()) > 0
    assert result["tasks_failed"] == []
    assert object_hashes(str(tmp_path / "faulty.zarr")) == object_hashes(str(clean))


def test_detection_windows_and_spectrograms_on_s3_through_faults(archive, s3_bucket, s3_faults, tmp_path,
                                                                 reliability_figures):
    from seisgrid.seismic.detect import detect
    from seisgrid.seismic.labelled import build_windows
    from seisgrid.seismic.spectrogram import spectrograms

    store = f"{s3_bucket}/w.zarr"
    ingest(str(archive), store, pattern=SDS, progress=False)
    catalog = str(archive / "catalog.csv")

    def run(prefix: str) -> dict:
        build_windows([store], f"{prefix}/windows.zarr", catalog=catalog, progress=False)
        spectrograms(f"{prefix}/windows.zarr", f"{prefix}/spectrograms.zarr", progress=False)
        found = detect(store, method="stalta", out_catalog=str(tmp_path / prefix.rsplit("/", 1)[-1] / "catalog.xml"),
                       min_stations=2, progress=False)
        return {"n_events": found["n_events"], "samples": found["samples"], "triggers": found["station_triggers"],
                "csv": pathlib.Path(found["catalog"]["csv"]).read_text()}

    clean = run(f"{s3_bucket}/clean")
    s3_faults.set(rate=SLOW_STEP_RATE, seed=3)
    with dask.config.set(FAST_RETRIES):
        faulty = run(f"{s3_bucket}/faulty")
    injected = s3_faults.off()["injected"]
    reliability_figures.update(faults_injected=injected, fault_rate=SLOW_STEP_RATE, wrong_objects=sum(
        differing(object_hashes(f"{s3_bucket}/faulty/{n}"), object_hashes(f"{s3_bucket}/clean/{n}"))
        for n in ("windows.zarr", "spectrograms.zarr")) + int(faulty != clean))
    assert sum(injected.values()) > 0
    assert faulty == clean and clean["triggers"] > 0 and clean["samples"] > 0
    for name in ("windows.zarr", "spectrograms.zarr"):
        assert object_hashes(f"{s3_bucket}/faulty/{name}") == object_hashes(f"{s3_bucket}/clean/{name}"), name


def test_ghf_features_to_s3_through_faults(s3_bucket, s3_faults, tmp_path_factory, reliability_figures):
    from test_ghf_features import nearest_krige, write_synthetic_data

    from seisgrid.ghf import features as F

    data = write_synthetic_data(tmp_path_factory.mktemp("ghfdata") / "ghf")
    kwargs = dict(data_dir=data, res=10.0, features=["tectonic_class", "volcano"], krige=nearest_krige,
                  progress=False)
    F.build_features(f"{s3_bucket}/clean.zarr", **kwargs)
    s3_faults.set(rate=FAULT_RATE, seed=4)
    with dask.config.set(FAST_RETRIES):
        F.build_features(f"{s3_bucket}/faulty.zarr", **kwargs)
    injected = s3_faults.off()["injected"]
    clean, faulty = object_hashes(f"{s3_bucket}/clean.zarr"), object_hashes(f"{s3_bucket}/faulty.zarr")
    reliability_figures.update(faults_injected=injected, fault_rate=FAULT_RATE, wrong_objects=differing(faulty, clean))
    assert sum(injected.values()) > 0
    assert faulty.keys() == clean.keys()
    different = [k for k in clean if clean[k] != faulty[k]]
    assert not different, different
