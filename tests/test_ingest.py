"""miniSEED → Zarr ingest: lossless round trip, gaps/overlaps/mixed rates, bad files, resume, S3, CLI."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import obspy
import pytest
from archives import RECLEN, mseed_bytes, sds_path, trace, write_day_files
from helpers import raise_if_dask_computes, requires_moto, requires_s3fs

from seisgrid import open_archive
from seisgrid.cli import main
from seisgrid.seismic.ingest import NoWaveformDataError, ingest

SDS_FILES = "*.D.*"  # the synthetic archive keeps its truth files (catalog.csv, ...) beside the SDS tree


def _read(path) -> obspy.Stream:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return obspy.read(str(path))


def _store_samples(archive, tr: obspy.Trace) -> np.ndarray:
    got = archive.stream(tr.id, tr.stats.starttime, tr.stats.endtime + 0.5 / tr.stats.sampling_rate)
    return np.concatenate([t.data for t in got]) if len(got) else np.zeros(0, tr.data.dtype)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small synthetic archive with gaps, overlaps and two sampling rates (2 stations × 3 channels)."""
    from seisgrid.seismic.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    summary = synthesize(str(root / "archive"), stations=2, days=1.25, seed=7, sampling_rates=[20.0, 50.0],
                         gaps_per_day=1, overlaps_per_day=1, events_per_day=6, icequakes_per_day=6)
    meta = json.loads((root / "archive" / "archive.json").read_text())
    return root / "archive", summary, meta


@pytest.fixture(scope="module")
def synthetic_store(synthetic, tmp_path_factory):
    archive_dir, _, _ = synthetic
    store = tmp_path_factory.mktemp("store") / "waveforms.zarr"
    result = ingest(str(archive_dir), str(store), pattern=SDS_FILES, progress=False)
    return store, result


def test_round_trip_is_bit_exact_on_a_synthetic_archive(synthetic, synthetic_store):
    archive_dir, _, meta = synthetic
    store, result = synthetic_store
    archive = open_archive(str(store))
    overlaps = {(o["id"], obspy.UTCDateTime(o["start"]).ns) for o in meta["overlaps"]}
    assert result["files_failed"] == [] and result["bytes_unread"] == 0
    checked = 0
    for path in sorted(archive_dir.rglob("*.D.*")):
        for tr in _read(path):
            if (tr.id, tr.stats.starttime.ns) in overlaps:
                continue  # the appended duplicate loses under "first wins"; checked below
            got = _store_samples(archive, tr)
            assert got.dtype == tr.data.dtype == np.int32
            assert np.array_equal(got, tr.data), f"{path}: {tr}"
            checked += 1
    assert checked >= 12
    inventory = archive.inventory()
    by_id = {c["id"]: c for c in inventory["channels"]}
    for cid, expected in meta["expected_samples"].items():
        assert by_id[cid]["samples"] == expected
    assert inventory["samples"] == sum(meta["expected_samples"].values())
    assert result["samples_written"] == inventory["samples"]


def test_gaps_overlaps_and_mixed_rates_are_recorded(synthetic, synthetic_store):
    _, _, meta = synthetic
    store, result = synthetic_store
    archive = open_archive(str(store))
    rates = {archive.channel(cid)["sampling_rate"] for cid in archive.ids}
    assert rates == {20.0, 50.0}
    gaps = [(c["id"], g["start"][:23]) for c in archive.inventory()["channels"] for g in c["gaps"]]
    for gap in meta["gaps"]:
        assert (gap["id"], gap["start"][:23]) in gaps
    assert result["gaps"] == len(meta["gaps"])
    assert result["overlaps"] >= len(meta["overlaps"])
    assert result["conflicting_samples"] == sum(o["conflicting_samples"] for o in meta["overlaps"])
    # the first-wins rule keeps the original samples under each appended duplicate
    for overlap in meta["overlaps"]:
        stream = archive.stream(overlap["id"], overlap["start"], overlap["end"])
        assert len(stream) == 1 and stream[0].stats.npts == overlap["samples"]


def test_the_whole_obspy_example_folder_in_one_store(obspy_mseed_examples, tmp_path):
    # one run over every file ObsPy ships (encodings, broken files, NUL-padded and empty codes, channels
    # whose kind differs between files): each problem is reported per file, nothing stops the run
    folder = obspy_mseed_examples[0].parent
    while folder.name != "data":
        folder = folder.parent
    result = ingest(str(folder), str(tmp_path / "all.zarr"), progress=False)
    assert result["files_found"] >= len(obspy_mseed_examples) and result["channels"] >= 20
    reported = {pathlib.Path(f["path"]).name for f in result["files_failed"] + result["files_warned"]}
    assert {"not.mseed", "brokenlastrecord.mseed", "nan_float64.mseed"} <= reported
    assert all(f["reason"] for f in result["files_failed"] + result["files_warned"])
    assert ".GRA1..BHZ" in open_archive(str(tmp_path / "all.zarr")).ids  # NUL-padded station code, as ObsPy reads it


def test_round_trip_on_obspy_example_files(obspy_mseed_examples, tmp_path):
    # every trace ObsPy reads from its example files reads back bit-identical (NaN payloads included);
    # ObsPy reads nan_float32.mseed as id "..." (every code empty): stored as "--.--.." (safe-name rule)
    checked, files = 0, set()
    for path in obspy_mseed_examples:
        try:
            stream = _read(path)
        except Exception:
            continue  # ObsPy itself cannot read it: covered by the bad-file tests
        store = tmp_path / f"{path.name}.zarr"
        try:
            ingest(str(path), str(store), progress=False)
        except NoWaveformDataError:
            assert not store.exists()
            continue  # e.g. ASCII log records only: nothing to compare
        archive = open_archive(str(store))
        for tr in stream:
            if tr.stats.npts == 0 or tr.data.dtype.kind not in "if":
                continue
            expected = tr.data.astype(archive.channel(tr.id)["dtype"])
            got = _store_samples(archive, tr)
            assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), f"{path.name}: {tr}"
            checked += 1
            files.add(path.name)
    assert checked >= 40
    assert "nan_float32.mseed" in files


def test_bad_files_are_reported_and_good_ones_ingested(tmp_path):
    src = tmp_path / "sds"
    good = write_day_files(src, ids=("XX.A..BHZ", "XX.B..BHZ"), days=1)
    tr = trace(3000, 20.0, obspy.UTCDateTime(2021, 1, 1), id="XX.C..BHZ")
    raw = mseed_bytes(tr)
    (src / "empty.mseed").write_bytes(b"")
    (src / "notes.txt").write_text("not a waveform\n" * 10)  # a sidecar: skipped, not failed
    (src / "notes").write_text("not a waveform\n" * 10)  # no sidecar extension: fails
    (src / "truncated.mseed").write_bytes(raw[: 3 * RECLEN + 200])
    garbage = raw[: 2 * RECLEN] + b"\xde\xad\xbe\xef" * 100 + raw[2 * RECLEN:]
    (src / "garbage.mseed").write_bytes(garbage)
    corrupt = bytearray(raw)
    corrupt[RECLEN + 64: RECLEN + 200] = np.random.default_rng(0).integers(0, 256, 136, dtype=np.uint8).tobytes()
    (src / "corrupt.mseed").write_bytes(bytes(corrupt))
    mislabelled = src / "2021" / "XX" / "D" / "BHZ.D" / "XX.D..BHZ.D.2021.001"
    mislabelled.parent.mkdir(parents=True)
    mislabelled.write_bytes(mseed_bytes(trace(2000, 20.0, obspy.UTCDateTime(2021, 1, 1), id="XX.E..BHZ")))

    result = ingest(str(src), str(tmp_path / "store.zarr"), progress=False)
    failed = {pathlib.Path(f["path"]).name: f for f in result["files_failed"]}
    warned = {pathlib.Path(f["path"]).name: f for f in result["files_warned"]}
    assert "empty file" in failed["empty.mseed"]["reason"]
    assert "not miniSEED" in failed["notes"]["reason"] and "notes.txt" not in failed
    (skipped,) = result["files_not_waveform"]
    assert skipped["path"].endswith("notes.txt") and "not waveform data" in skipped["reason"]
    assert warned["truncated.mseed"]["bytes"] == 200 and "truncated record" in warned["truncated.mseed"]["reason"]
    assert warned["garbage.mseed"]["bytes"] == 400
    assert warned["corrupt.mseed"]["bytes"] == RECLEN and "corrupt record" in warned["corrupt.mseed"]["reason"]
    assert "disagree with the SDS path" in warned[mislabelled.name]["reason"]
    archive = open_archive(str(tmp_path / "store.zarr"))
    assert {"XX.A..BHZ", "XX.B..BHZ", "XX.C..BHZ", "XX.E..BHZ"} <= set(archive.ids)
    for good_trace in good.values():
        assert np.array_equal(_store_samples(archive, good_trace), good_trace.data)
    # garbage.mseed holds every record of tr: nothing of it is lost despite the garbage
    got = archive.stream("XX.C..BHZ")
    assert sum(t.stats.npts for t in got) == tr.stats.npts
    assert np.array_equal(np.concatenate([t.data for t in got]), tr.data)


def test_cli_exit_status_and_json(tmp_path, capsys):
    src = tmp_path / "sds"
    write_day_files(src, days=1)
    assert main(["ingest", str(src), str(tmp_path / "a.zarr"), "--json", "--cluster", _local_address()]) == 0
    clean = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert clean["files_ok"] == 1 and clean["files_failed"] == [] and clean["samples_written"] == 20 * 86400
    assert main(["inventory", str(tmp_path / "a.zarr"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["samples"] == 20 * 86400
    (src / "junk.mseed").write_bytes(b"junk" * 100)
    code = main(["ingest", str(src), str(tmp_path / "b.zarr"), "--json", "--cluster", _local_address()])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(out)
    assert code == 3
    assert summary["files_ok"] == 1 and summary["files_failed"][0]["path"].endswith("junk.mseed")
    for key in ("samples_written", "gaps", "overlaps", "seconds"):
        assert key in summary
    assert main(["ingest", str(tmp_path / "missing"), str(tmp_path / "c.zarr"), "--cluster", _local_address()]) == 1


_CLUSTER = {}


def _local_address():
    """Scheduler address of a small LocalCluster shared by the CLI tests (started once)."""
    if "client" not in _CLUSTER:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
        _CLUSTER["client"] = Client(cluster, set_as_default=False)
    return _CLUSTER["client"].scheduler.address


def test_rerun_skips_done_work_and_adds_new_files(tmp_path):
    src = tmp_path / "sds"
    write_day_files(src, ids=("XX.A..BHZ", "XX.A..BHN"), days=2)
    store = str(tmp_path / "store.zarr")
    first = ingest(str(src), store, progress=False)
    assert first["tasks_run"] == 4
    again = ingest(str(src), store, progress=False)
    assert again["tasks_run"] == 0 and again["files_scanned"] == 0 and again["samples_written"] == 0
    assert again["tasks_skipped"] == 4
    new = write_day_files(src, ids=("XX.A..BHZ",), days=1, start=obspy.UTCDateTime(2021, 1, 3), seed=99)
    third = ingest(str(src), store, progress=False)
    assert third["files_scanned"] == 1 and third["tasks_run"] == 1
    archive = open_archive(store)
    (path, tr), = new.items()
    assert np.array_equal(_store_samples(archive, tr), tr.data)
    assert archive.inventory()["samples"] == 5 * 20 * 86400


def _tree(path: pathlib.Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_interrupted_ingest_resumes_to_the_same_store(tmp_path):
    src = tmp_path / "sds"
    write_day_files(src, ids=("XX.A..BHZ", "XX.A..BHN", "XX.A..BHE"), days=4)
    clean = tmp_path / "clean.zarr"
    ingest(str(src), str(clean), progress=False)

    resumed = tmp_path / "resumed.zarr"
    cmd = [sys.executable, "-m", "seisgrid.cli", "ingest", str(src), str(resumed), "--cluster", "local"]
    env = {**os.environ, "SEISGRID_CLUSTER__LOCAL__N_WORKERS": "1", "SEISGRID_CLUSTER__LOCAL__DASHBOARD_ADDRESS": ":0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    days = resumed / "_manifest" / "days"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        written = list(days.rglob("zarr.json")) if days.exists() else []
        if len([p for p in written if p.parent.name.startswith("20")]) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = [p for p in days.rglob("zarr.json") if p.parent.name.startswith("20")] if days.exists() else []
    assert 0 < len(partial) < 12, "the interruption should land in the middle of the run"
    result = ingest(str(src), str(resumed), progress=False)
    assert result["tasks_skipped"] >= len(partial) and result["tasks_run"] == 12 - result["tasks_skipped"]
    assert _tree(resumed) == _tree(clean)


def test_rerun_repairs_a_summary_left_stale_by_a_kill_before_consolidation(tmp_path):
    src = tmp_path / "sds"
    write_day_files(src, ids=("XX.A..BHZ", "XX.A..BHN"), days=2)
    store = str(tmp_path / "store.zarr")
    ingest(str(src), store, progress=False)
    clean = _tree(tmp_path / "store.zarr")
    import zarr

    # the state a kill leaves between the last channel-day task and the consolidation step
    zarr.open_group(store, mode="r+")["XX.A/XX.A..BHZ"].attrs.update({"segments": [], "samples": 0, "gaps": 0})
    result = ingest(str(src), store, progress=False)
    assert result["tasks_run"] == 0
    assert _tree(tmp_path / "store.zarr") == clean


def test_ingest_on_a_dask_cluster_matches_in_process(dask_client, tmp_path):
    src = tmp_path / "sds"
    write_day_files(src, ids=("XX.A..BHZ", "XX.B..BHZ"), days=2)
    ingest(str(src), str(tmp_path / "local.zarr"), progress=False)
    ingest(str(src), str(tmp_path / "dask.zarr"), client=dask_client, progress=False)
    assert _tree(tmp_path / "local.zarr") == _tree(tmp_path / "dask.zarr")


def test_lazy_view_over_a_year_computes_nothing(tmp_path):
    src = tmp_path / "sds"
    first = trace(20 * 600, 20.0, obspy.UTCDateTime(2021, 1, 1), id="XX.A..BHZ")
    last = trace(20 * 600, 20.0, obspy.UTCDateTime(2021, 12, 31, 12), id="XX.A..BHZ", seed=3)
    for tr in (first, last):
        with open(sds_path(src, tr), "wb") as f:
            f.write(mseed_bytes(tr))
    ingest(str(src), str(tmp_path / "year.zarr"), progress=False)
    archive = open_archive(str(tmp_path / "year.zarr"))
    with raise_if_dask_computes():
        view = archive.to_dataarray("XX.A..BHZ")
        masked = archive.to_dataarray("XX.A..BHZ", masked=True)
        window = view.isel(sample=slice(100, 20 * 86400 * 200))
        doubled = (window.astype("float64") * 2).mean()
    assert view.sizes["sample"] > 20 * 86400 * 364
    assert view.chunks[0][0] == 20 * 3600
    assert np.array_equal(view[: first.stats.npts].values, first.data)
    assert np.isnan(masked[first.stats.npts + 5].values)
    assert np.isfinite(float(doubled))
    assert str(view.time[0].values)[:19] == "2021-01-01T00:00:00"


def test_export_across_midnight_and_a_gap(tmp_path):
    src = tmp_path / "sds"
    write_day_files(src, days=2)
    # cut a gap out of day two by overwriting its file with two pieces
    day2 = sorted(src.rglob("*.002"))[0]
    whole = _read(day2)[0]
    pieces = [whole.slice(whole.stats.starttime, whole.stats.starttime + 600 - 0.05),
              whole.slice(whole.stats.starttime + 900)]
    day2.write_bytes(mseed_bytes(*pieces))
    ingest(str(src), str(tmp_path / "s.zarr"), progress=False)
    out = tmp_path / "cut.mseed"
    assert main(["export", str(tmp_path / "s.zarr"), "--id", "XX.A..BHZ", "--start", "2021-01-01T23:55:00",
                 "--end", "2021-01-02T00:20:00", str(out)]) == 0
    exported = _read(out)
    assert len(exported) == 2
    assert exported[0].stats.starttime == obspy.UTCDateTime("2021-01-01T23:55:00")
    assert exported[1].stats.endtime == obspy.UTCDateTime("2021-01-02T00:19:59.95")
    day1 = _read(sorted(src.rglob("*.001"))[0])[0]
    expected = np.concatenate([day1.slice(obspy.UTCDateTime("2021-01-01T23:55:00")).data, pieces[0].data])
    assert np.array_equal(exported[0].data, expected)
    assert np.array_equal(exported[1].data, pieces[1].slice(endtime=obspy.UTCDateTime("2021-01-02T00:19:59.95")).data)


@requires_s3fs
@requires_moto
def test_ingest_into_s3_gives_the_same_readback(synthetic, synthetic_store, s3_bucket):
    archive_dir, _, _ = synthetic
    local_store, local_result = synthetic_store
    # source on S3 too: synthesize straight into the bucket, then ingest bucket → bucket
    url = f"{s3_bucket}/waveforms.zarr"
    result = ingest(str(archive_dir), url, pattern=SDS_FILES, progress=False)
    assert result["samples_written"] == local_result["samples_written"]
    remote, local = open_archive(url), open_archive(str(local_store))
    assert remote.inventory()["channels"] == local.inventory()["channels"]
    cid = local.ids[0]
    for a, b in zip(remote.stream(cid), local.stream(cid), strict=True):
        assert a.stats.starttime == b.stats.starttime and np.array_equal(a.data, b.data)
    again = ingest(str(archive_dir), url, pattern=SDS_FILES, progress=False)
    assert again["tasks_run"] == 0


@requires_s3fs
@requires_moto
def test_s3_source_and_store(s3_bucket):
    from seisgrid.seismic.synth import synthesize

    src = f"{s3_bucket}/archive"
    synthesize(src, stations=1, days=0.1, seed=3, sampling_rates=[20.0], events_per_day=10, icequakes_per_day=0)
    result = ingest(src, f"{s3_bucket}/w.zarr", pattern=SDS_FILES, progress=False)
    assert result["files_failed"] == [] and result["channels"] == 3
    archive = open_archive(f"{s3_bucket}/w.zarr")
    assert archive.inventory()["samples"] == result["samples_written"] > 0


def test_conflicting_new_files_leave_the_store_intact(tmp_path):
    src = tmp_path / "sds"
    good = write_day_files(src, days=1)
    store = str(tmp_path / "store.zarr")
    ingest(str(src), store, progress=False)
    before = _tree(tmp_path / "store.zarr")
    # a later file claims the same channel at another sampling rate: reported, nothing rewritten
    other = trace(40 * 3600, 40.0, obspy.UTCDateTime(2021, 1, 2), id="XX.A..BHZ")
    with open(sds_path(src, other), "wb") as f:
        f.write(mseed_bytes(other))
    result = ingest(str(src), store, progress=False)
    (failed,) = result["files_failed"]
    assert failed["path"].endswith(".002") and "40.0 Hz" in failed["reason"] and "20.0 Hz" in failed["reason"]
    after = _tree(tmp_path / "store.zarr")
    data_keys = [k for k in before if not k.startswith(("_manifest/files", "_manifest/merged/files"))]
    assert all(after[k] == before[k] for k in data_keys)
    (tr,) = good.values()
    assert np.array_equal(_store_samples(open_archive(store), tr), tr.data)
