import json
import posixpath

import dask.config
import numpy as np
import pytest
import xarray as xr
from helpers import requires_moto, requires_s3fs

from seisgrid import storage
from seisgrid.errors import SeisgridError, StorageError

s3 = [pytest.mark.s3, requires_s3fs, requires_moto]


@pytest.fixture(params=["local", pytest.param("s3", marks=s3)])
def root(request, tmp_path):
    """The same store location as a local folder and as an ``s3://`` URL on the moto server."""
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("s3_bucket") + "/root"


def _roundtrip(root: str) -> dict:
    """Write a manifest and a small Zarr group under ``root``, read both back; what was seen."""
    manifest = {"files": ["a.mseed", "b.mseed"], "samples": 10, "nested": {"ok": True}}
    storage.write_bytes(storage.join(root, "meta", "manifest.json"), json.dumps(manifest).encode())
    # overwriting a whole file is allowed
    manifest["samples"] = 12
    storage.write_bytes(storage.join(root, "meta", "manifest.json"), json.dumps(manifest).encode())
    back = storage.read_json(storage.join(root, "meta", "manifest.json"))

    url = storage.join(root, "waves.zarr")
    group = storage.open_group(url, mode="w")
    station = group.create_group("SY.STA01")
    arr = station.create_array(
        "HHZ",
        shape=(12,),
        chunks=(5,),
        dtype="int32",
        fill_value=np.iinfo("int32").min,
        dimension_names=["sample"],
    )
    arr[:10] = np.arange(10, dtype="int32") - 3
    arr.attrs.update(starttime="2021-01-01T00:00:00", sampling_rate=100.0)

    reopened = storage.open_group(url, mode="r")
    data = reopened["SY.STA01/HHZ"][:]
    attrs = dict(reopened["SY.STA01/HHZ"].attrs)
    ds = xr.open_zarr(storage.zarr_store(storage.join(url, "SY.STA01"), read_only=True), mask_and_scale=False,
                      consolidated=False)

    fs, path = storage.filesystem(root)
    keys = sorted(posixpath.relpath(p, path) for p in fs.find(path))
    return {
        "manifest": back,
        "data": data.tolist(),
        "dtype": str(data.dtype),
        "attrs": attrs,
        "xarray": ds["HHZ"].values.tolist(),
        "keys": keys,
    }


EXPECTED_DATA = list(range(-3, 7)) + [np.iinfo("int32").min] * 2


def test_roundtrip(root):
    seen = _roundtrip(root)
    assert seen["manifest"]["samples"] == 12
    assert seen["manifest"]["nested"] == {"ok": True}
    assert seen["data"] == EXPECTED_DATA
    assert seen["dtype"] == "int32"
    assert seen["attrs"] == {"starttime": "2021-01-01T00:00:00", "sampling_rate": 100.0}
    assert seen["xarray"] == EXPECTED_DATA
    assert "meta/manifest.json" in seen["keys"]
    assert not [k for k in seen["keys"] if ".tmp" in k], "temporary files left behind"


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_local_and_s3_agree(tmp_path, s3_bucket):
    local = _roundtrip(str(tmp_path / "root"))
    remote = _roundtrip(s3_bucket + "/root")
    assert local == remote


def test_storage_options_local_is_empty():
    assert storage.storage_options("/some/path") == {}
    assert storage.storage_options("file:///some/path") == {}


def test_storage_options_s3_from_config():
    settings = {
        "seisgrid.storage.s3": {
            "endpoint_url": "http://127.0.0.1:9",
            "key": "k",
            "secret": None,
            "anon": False,
            "client_kwargs": {"region_name": "us-east-1"},
        }
    }
    with dask.config.set(settings):
        opts = storage.storage_options("s3://bucket/prefix")
        assert opts["endpoint_url"] == "http://127.0.0.1:9"
        assert opts["client_kwargs"] == {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:9"}
        assert opts["key"] == "k"
        assert "secret" not in opts  # unset entries are dropped
        assert "anon" not in opts  # anon: false is the s3fs default
        # the configuration itself is not changed by the call
        assert dask.config.get("seisgrid.storage.s3.client_kwargs") == {"region_name": "us-east-1"}
        # explicit overrides win over the configuration
        assert storage.storage_options("s3://b", {"key": "other"})["key"] == "other"


def test_storage_options_anonymous():
    with dask.config.set({"seisgrid.storage.s3": {"anon": True}}):
        assert storage.storage_options("s3://bucket")["anon"] is True


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_storage_options_follow_the_test_bucket(s3_server, s3_bucket):
    opts = storage.storage_options(s3_bucket)
    assert opts["endpoint_url"] == s3_server
    fs, path = storage.filesystem(s3_bucket)
    assert fs.exists(path)


def test_join():
    assert storage.join("s3://bucket/prefix/", "a", "b.json") == "s3://bucket/prefix/a/b.json"
    assert storage.join("/data/store", "a") == "/data/store/a"
    assert storage.protocol("s3://bucket") == "s3"
    assert storage.protocol("relative/path") == "file"
    assert storage.is_local("/x") and not storage.is_local("s3://x")


def test_missing_store_raises_storage_error(root):
    url = storage.join(root, "no-such-store.zarr")
    with pytest.raises(StorageError, match="no-such-store.zarr") as excinfo:
        storage.open_group(url, mode="r")
    assert url in str(excinfo.value)
    assert isinstance(excinfo.value, SeisgridError)
    with pytest.raises(StorageError, match="no-such-store.zarr"):
        storage.open_group(url, mode="r+")


def test_missing_file_is_file_not_found(root):
    with pytest.raises(FileNotFoundError):
        storage.read_json(storage.join(root, "missing.json"))


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_missing_bucket_raises_storage_error(s3_bucket):
    url = s3_bucket + "-missing/store.zarr"
    with pytest.raises(StorageError) as excinfo:
        storage.open_group(url, mode="r")
    assert url in str(excinfo.value)


def test_unknown_protocol_raises_storage_error():
    with pytest.raises(StorageError, match="nosuchproto://x"):
        storage.filesystem("nosuchproto://x/y")


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_workers_see_the_test_bucket(dask_client, s3_bucket):
    url = storage.join(s3_bucket, "from-worker.json")
    dask_client.submit(storage.write_bytes, url, b'{"a": 1}', pure=False).result()
    assert storage.read_json(url) == {"a": 1}
    assert dask_client.submit(storage.read_json, url, pure=False).result() == {"a": 1}


def test_consolidated_metadata_leaves_out_bookkeeping_and_is_stable(root):
    import warnings

    import zarr

    url = storage.join(root, "c.zarr")
    group = storage.open_group(url, mode="w")
    group.attrs.update(kind="test")
    station = group.create_group("SY.ST01", attributes={"station": "ST01"})
    arr = station.create_array("SY.ST01..HHZ", shape=(6,), chunks=(3,), dtype="float32", fill_value=np.nan,
                               dimension_names=["sample"])
    arr[:4] = np.arange(4, dtype="float32")
    group.create_group("_manifest/files/abc", attributes={"url": "x.mseed"})

    assert storage.consolidate_metadata(url, exclude=("_manifest",)) is True
    assert storage.consolidate_metadata(url, exclude=("_manifest",)) is False  # same bytes: not rewritten
    consolidated = zarr.open_group(storage.zarr_store(url, read_only=True), mode="r")
    assert list(consolidated.group_keys()) == ["SY.ST01"] and consolidated.attrs["kind"] == "test"
    exact = storage.open_group(url, mode="r", use_consolidated=False)
    assert sorted(exact.group_keys()) == ["SY.ST01", "_manifest"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(storage.zarr_store(url, read_only=True), group="SY.ST01")
    assert np.array_equal(ds["SY.ST01..HHZ"].values[:4], np.arange(4)) and np.isnan(ds["SY.ST01..HHZ"].values[4])

    # a change below the root shows only after the next consolidation
    storage.open_group(url, mode="r+", use_consolidated=False)["SY.ST01/SY.ST01..HHZ"].resize((9,))
    assert zarr.open_group(storage.zarr_store(url, read_only=True), mode="r")["SY.ST01/SY.ST01..HHZ"].shape == (6,)
    assert storage.consolidate_metadata(url, exclude=("_manifest",)) is True
    assert zarr.open_group(storage.zarr_store(url, read_only=True), mode="r")["SY.ST01/SY.ST01..HHZ"].shape == (9,)


def test_remove_whole_folder_or_only_new_entries(root):
    folder = storage.join(root, "made")
    storage.write_bytes(storage.join(folder, "old.txt"), b"kept")
    before = storage.listing(folder)
    storage.write_bytes(storage.join(folder, "new", "zarr.json"), b"{}")
    storage.write_bytes(storage.join(folder, "zarr.json"), b"{}")
    storage.remove(folder, keep=before)
    fs, path = storage.filesystem(folder)
    assert sorted(posixpath.basename(p) for p in fs.ls(path, detail=False)) == ["old.txt"]
    storage.remove(folder)
    assert not storage.exists(folder)
    assert storage.listing(storage.join(root, "never-made")) == set()
