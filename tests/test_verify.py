"""``seisgrid verify`` and ``ingest --repair``: per-shard checksums recorded at write time find flipped bytes,
deleted shards, stray and temporary objects and count mismatches; repair rewrites exactly those days from the
sources; the manifest is merged per channel (:mod:`seisgrid.manifest`) and reads the same as per-day records."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys

import pytest
from archives import write_day_files
from helpers import data_hashes, requires_moto, requires_s3fs

from seisgrid import manifest, storage
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.verify import PROBLEM_KINDS, verify

IDS = ("XX.A..BHZ", "XX.A..BHN")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("verify") / "sds"
    write_day_files(folder, ids=IDS, days=3)
    return folder


@pytest.fixture(scope="module")
def clean(source, tmp_path_factory) -> str:
    store = str(tmp_path_factory.mktemp("verify-clean") / "clean.zarr")
    ingest(str(source), store, progress=False)
    return store


def _copy(tmp_path, source) -> str:
    store = str(tmp_path / "store.zarr")
    ingest(str(source), store, progress=False)
    return store


def test_a_clean_store_verifies(clean):
    report = verify(clean, progress=False)
    assert report["ok"] and report["problems"] == [] and report["tasks_failed"] == []
    assert report["channels"] == 2 and report["days"] == 6 and report["shards_checked"] == 6
    assert report["bytes_checked"] == sum(p.stat().st_size for p in pathlib.Path(clean).rglob("c/*"))
    assert set(report["problem_counts"]) == set(PROBLEM_KINDS)


def test_every_day_record_holds_the_checksum_of_its_shard(clean):
    records = manifest.read_records(clean, {}, "days")
    assert len(records) == 6
    for (cid, _), record in records.items():
        (key, digest), = record["shards"].items()
        blob = (pathlib.Path(clean) / cid.rsplit(".", 2)[0] / cid / key).read_bytes()
        assert digest == "sha256:" + hashlib.sha256(blob).hexdigest()


def test_flipped_bytes_deleted_shard_and_leftovers_are_named_and_repaired(tmp_path, source, clean):
    store = _copy(tmp_path, source)
    shards = sorted(pathlib.Path(store).rglob("c/*"))
    flipped = bytearray(shards[0].read_bytes())
    flipped[len(flipped) // 2] ^= 0x01  # one bit
    shards[0].write_bytes(bytes(flipped))
    shards[4].unlink()
    (shards[1].parent / "1.5f3a.partial").write_bytes(b"half a shard")
    (shards[1].parent / "7").write_bytes(b"stray")  # an object no day record accounts for

    report = verify(store, progress=False)
    assert not report["ok"]
    kinds = {(p["kind"], p["channel"], p["day"], p["key"]) for p in report["problems"]}
    first, fifth = (s.relative_to(store).parts for s in (shards[0], shards[4]))
    assert ("corrupt", first[1], "2021-01-01", "c/0") in kinds
    assert ("missing", fifth[1], "2021-01-02", "c/1") in kinds
    assert ("temporary", first[1], None, "c/1.5f3a.partial") in kinds
    assert ("unrecorded", first[1], None, "c/7") in kinds
    assert len(kinds) == 4

    result = ingest(str(source), store, progress=False, repair=True)
    assert result["tasks_run"] == 2 and result["tasks_skipped"] == 4  # exactly the two bad days
    assert result["repair"]["objects_deleted"] == 2 and result["repair"]["unresolved"] == []
    assert sorted((d["channel"], d["day"]) for d in result["repair"]["days_to_rewrite"]) == sorted(
        [(first[1], "2021-01-01"), (fifth[1], "2021-01-02")])
    assert verify(store, progress=False)["ok"]
    assert data_hashes(store) == data_hashes(clean)


def test_a_day_whose_source_is_gone_is_reported_unresolved(tmp_path):
    src = tmp_path / "sds"
    files = write_day_files(src, ids=IDS[:1], days=2)
    store = str(tmp_path / "store.zarr")
    ingest(str(src), store, progress=False)
    shard = sorted(pathlib.Path(store).rglob("c/*"))[1]
    shard.write_bytes(shard.read_bytes()[:-10])  # truncated
    pathlib.Path(sorted(files)[1]).unlink()  # the second day's source file is gone
    result = ingest(str(src), store, progress=False, repair=True)
    assert result["repair"]["problems"]["corrupt"] == 1
    assert result["repair"]["unresolved"] == [{"channel": IDS[0], "day": "2021-01-02"}]


def test_counts_and_records_without_checksums_are_found(tmp_path, source):
    store = _copy(tmp_path, source)
    records = manifest.read_records(store, {}, "days")
    key = sorted(records)[0]
    legacy = {k: v for k, v in records[key].items() if k != "shards"}
    manifest.write_record(store, {}, "days", key[0], key[1], legacy)  # as seisgrid wrote it before checksums
    import zarr

    array = zarr.open_group(store, mode="r+", use_consolidated=False)[f"XX.A/{key[0]}"]
    array.attrs["samples"] = 12
    report = verify(store, progress=False)
    assert report["problem_counts"]["no_checksum"] == 1 and report["problem_counts"]["counts"] == 1
    result = ingest(str(source), store, progress=False, repair=True)
    assert result["tasks_run"] == 1
    assert verify(store, progress=False)["ok"]


def test_verify_from_the_command_line(tmp_path, source):
    store = _copy(tmp_path, source)
    cmd = [sys.executable, "-m", "seisgrid.cli", "verify", store, "--json", "--cluster", "local"]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1])["ok"] is True
    assert "OK — 2 channels" in ok.stderr and "dashboard" in ok.stderr
    next(pathlib.Path(store).rglob("c/2")).unlink()
    bad = subprocess.run([c for c in cmd if c != "--json"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 3
    assert "MISSING XX.A..BH" in bad.stdout and "--repair" in bad.stdout
    repaired = subprocess.run([sys.executable, "-m", "seisgrid.cli", "ingest", str(source), store, "--repair"],
                              capture_output=True, text=True, timeout=120)
    assert repaired.returncode == 0, repaired.stderr
    assert "repair: 1 missing; 1 days rewritten" in repaired.stdout


def test_not_a_waveform_store_is_refused(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["kind"] = "something"
    from seisgrid.errors import StorageError

    with pytest.raises(StorageError, match="not a seisgrid waveform store"):
        verify(str(tmp_path / "other.zarr"), progress=False)


# ------------------------------------------------------------------------------------------- manifest
def test_merged_manifest_reads_the_same_as_per_day_records(tmp_path):
    url, records = str(tmp_path / "m.zarr"), {}
    for c in range(3):
        for d in range(5):
            record = {"id": f"N.S..C{c}", "day": f"2021-01-0{d + 1}", "samples": d}
            manifest.write_record(url, {}, "days", record["id"], record["day"], record)
            records[(record["id"], record["day"])] = record
    assert manifest.read_records(url, {}, "days") == records
    assert manifest.merge_records(url, {}, "days") == 15
    assert not list((tmp_path / "m.zarr" / "_manifest" / "days").iterdir())  # per-day objects merged away
    assert len(list((tmp_path / "m.zarr" / "_manifest" / "merged" / "days").glob("*/zarr.json"))) == 3
    assert manifest.read_records(url, {}, "days") == records
    # a newer per-day record wins over the merged one; merging again keeps one object per group
    manifest.write_record(url, {}, "days", "N.S..C0", "2021-01-01", {"id": "N.S..C0", "samples": 99})
    assert manifest.read_records(url, {}, "days")[("N.S..C0", "2021-01-01")]["samples"] == 99
    assert manifest.merge_records(url, {}, "days") == 1
    assert manifest.read_records(url, {}, "days")[("N.S..C0", "2021-01-01")]["samples"] == 99
    assert manifest.drop_records(url, {}, "days", [("N.S..C0", "2021-01-01"), ("N.S..C9", "x")]) == 1
    assert len(manifest.read_records(url, {}, "days")) == 14


def test_records_written_before_the_merge_existed_still_read(tmp_path):
    """Stores of earlier versions hold one Zarr group per record (flat for files): they read unchanged."""
    import zarr

    url = str(tmp_path / "old.zarr")
    zarr.create_group(url, path="_manifest/files/abc", attributes={"url": "x.mseed"}, zarr_format=3)
    zarr.create_group(url, path="_manifest/days/N.S..C/2021-01-01", attributes={"id": "N.S..C"}, zarr_format=3)
    assert manifest.read_records(url, {}, "files") == {("", "abc"): {"url": "x.mseed"}}
    assert manifest.merge_records(url, {}, "files") == 1
    assert manifest.read_records(url, {}, "files") == {("", "abc"): {"url": "x.mseed"}}
    assert manifest.read_records(url, {}, "days") == {("N.S..C", "2021-01-01"): {"id": "N.S..C"}}


def test_an_ingested_store_keeps_one_manifest_object_per_channel_and_folder(clean):
    root = pathlib.Path(clean) / "_manifest"
    assert sorted(p.parent.name for p in (root / "merged" / "days").glob("*/zarr.json")) == sorted(IDS)
    assert len(list((root / "merged" / "files").glob("*/zarr.json"))) == 2  # one per SDS folder
    assert not list((root / "days").rglob("*/zarr.json")) and not list((root / "files").rglob("*/zarr.json"))


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_verify_and_repair_on_s3(source, clean, s3_bucket):
    store = f"{s3_bucket}/verify.zarr"
    ingest(str(source), store, progress=False)
    assert verify(store, progress=False)["ok"]
    fs, root = storage.filesystem(store)
    key = sorted(k for k in fs.find(root) if "/c/" in k)[3]
    blob = bytearray(fs.cat_file(key))
    blob[7] ^= 0x80
    fs.pipe_file(key, bytes(blob))
    report = verify(store, progress=False)
    assert [p["kind"] for p in report["problems"]] == ["corrupt"]
    result = ingest(str(source), store, progress=False, repair=True)
    assert result["tasks_run"] == 1
    assert verify(store, progress=False)["ok"]
    assert data_hashes(store) == data_hashes(clean)
