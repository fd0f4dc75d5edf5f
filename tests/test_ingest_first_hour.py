"""What new users hit in their first hour with ingest / inventory / export / xarray, each on real files,
real Zarr stores and tiny data: sidecar files beside an SDS tree, empty channel codes, a source with
nothing usable, invalid options, bad export arguments, and opening the store with xarray alone."""

import gzip
import json
import pathlib
import shutil
import warnings

import numpy as np
import obspy
import pytest
import xarray as xr
from archives import RECLEN, mseed_bytes, sds_path, trace, write_day_files
from helpers import raise_if_dask_computes

from seisgrid import open_archive
from seisgrid.cluster import LazyClient
from seisgrid.errors import ConfigError, SeisgridError, StorageError
from seisgrid.seismic.archive import is_sds_path, sidecar_suffix
from seisgrid.seismic.ingest import NoWaveformDataError, ingest
from seisgrid.seismic.mseed import channel_id, store_id
from seisgrid.seismic.store import export, inventory

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _names(entries) -> set[str]:
    return {pathlib.Path(e["path"]).name for e in entries}


# ------------------------------------------------------------------------------ 1. sidecar files


def test_plain_ingest_of_a_synthetic_archive_skips_its_truth_files(tmp_path, capsys):
    from seisgrid.cli import main
    from seisgrid.seismic.synth import synthesize

    out = tmp_path / "archive"
    synthesize(str(out), stations=1, days=0.02, seed=3, sampling_rates=[20.0], events_per_day=10,
               icequakes_per_day=0)
    result = ingest(str(out), str(tmp_path / "w.zarr"), progress=False)  # no --pattern
    assert result["source_layout"] == "sds"
    assert result["files_failed"] == [] and result["files_warned"] == [] and result["bytes_unread"] == 0
    assert _names(result["files_not_waveform"]) == {"catalog.csv", "stations.csv", "transients.csv", "archive.json"}
    assert all("not waveform data" in f["reason"] and "SDS tree" in f["reason"] for f in result["files_not_waveform"])
    assert result["files_found"] == 7 and result["files_ok"] == 3 and result["channels"] == 3
    # the command a new user types: done, exit status 0 (not 3)
    code = main(["ingest", str(out), str(tmp_path / "cli.zarr"), "--json", "--cluster", "none"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["files_failed"] == [] and len(summary["files_not_waveform"]) == 4


def test_sidecar_rule_needs_the_extension_and_non_seed_content(tmp_path):
    src = tmp_path / "src"
    good = write_day_files(src, days=1)
    (src / "notes.txt").write_text("station notes\n" * 20)
    (src / "catalog.csv.gz").write_bytes(gzip.compress(b"event_id,origin_time\n1,2021-01-01T00:00:00\n"))
    (src / "empty.json").write_bytes(b"")
    (src / "station.xml").write_text('<?xml version="1.0"?><FDSNStationXML/>')
    hidden = trace(2000, 20.0, obspy.UTCDateTime(2021, 1, 1), id="XX.Q..BHZ")
    (src / "records.csv").write_bytes(mseed_bytes(hidden))  # a sidecar name, but miniSEED inside: ingested
    (src / "README").write_text("no extension: not a known sidecar type\n" * 20)  # fails
    cut = mseed_bytes(trace(3000, 20.0, obspy.UTCDateTime(2021, 1, 1), id="XX.R..BHZ"))
    (src / "broken.txt").write_bytes(cut[: RECLEN + 100])  # starts like SEED: reported, not skipped

    result = ingest(str(src), str(tmp_path / "s.zarr"), progress=False)
    assert _names(result["files_not_waveform"]) == {"notes.txt", "catalog.csv.gz", "empty.json", "station.xml"}
    failed, warned = _names(result["files_failed"]), _names(result["files_warned"])
    assert "README" in failed and "not miniSEED" in result["files_failed"][0]["reason"]
    assert "broken.txt" in warned and "records.csv" not in failed | warned
    archive = open_archive(str(tmp_path / "s.zarr"))
    assert {"XX.A..BHZ", "XX.Q..BHZ", "XX.R..BHZ"} <= set(archive.ids)
    assert np.array_equal(archive.stream("XX.Q..BHZ")[0].data, hidden.data)
    (tr,) = good.values()
    assert np.array_equal(archive.stream("XX.A..BHZ")[0].data, tr.data)
    # a rerun: the same report, nothing scanned again
    again = ingest(str(src), str(tmp_path / "s.zarr"), progress=False)
    assert again["files_scanned"] == 0 and again["files_not_waveform"] == result["files_not_waveform"]


def test_sidecar_and_sds_helpers():
    assert sidecar_suffix("a/catalog.CSV") == ".csv" and sidecar_suffix("x/q.xml.gz") == ".xml"
    assert sidecar_suffix("XX.A..BHZ.D.2021.001") is None and sidecar_suffix("data.mseed") is None
    assert is_sds_path("/r/2021/XX/A/BHZ.D/XX.A..BHZ.D.2021.001")
    assert not is_sds_path("/r/XX.A..BHZ.D.2021.001")  # SDS name, not in an SDS tree
    assert not is_sds_path("/r/2020/XX/A/BHZ.D/XX.A..BHZ.D.2021.001")  # year folder disagrees


def test_a_store_inside_its_source_folder_is_not_ingested_as_input(tmp_path):
    src = tmp_path / "src"
    write_day_files(src, days=1)
    first = ingest(str(src), str(src / "w.zarr"), progress=False)
    again = ingest(str(src), str(src / "w.zarr"), progress=False)
    assert first["files_found"] == again["files_found"] == 1
    assert again["files_failed"] == [] and again["tasks_run"] == 0


# ----------------------------------------------------------------------- 2. empty channel codes


def test_empty_codes_are_stored_under_the_safe_name(obspy_mseed_examples, tmp_path):
    path = next((p for p in obspy_mseed_examples if p.name == "nan_float32.mseed"), None)
    if path is None:
        pytest.skip("nan_float32.mseed is not among ObsPy's bundled example files")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (expected,) = obspy.read(str(path))
    assert expected.id == "..."  # every code empty: the station group would be "."
    result = ingest(str(path), str(tmp_path / "nan.zarr"), progress=False)
    assert result["files_failed"] == [] and result["channels"] == 1
    archive = open_archive(str(tmp_path / "nan.zarr"))
    assert archive.ids == ["--.--.."] and archive.stations == ["--.--"]
    for cid in ("--.--..", "..."):  # ObsPy's id finds it too
        (got,) = archive.stream(cid)
        assert got.id == "..."  # the codes as the data have them
        assert got.data.dtype == np.float32 and got.data.tobytes() == expected.data.tobytes()  # NaNs too
    assert archive.inventory()["channels"][0]["samples"] == expected.stats.npts
    assert channel_id("", "", "", "") == store_id("...") == "--.--.."
    assert store_id(".GRA1..BHZ") == ".GRA1..BHZ" and store_id("XX.A..BHZ") == "XX.A..BHZ"  # others: ObsPy's


# ------------------------------------------------------------------------- 3. nothing usable


def test_a_source_without_waveform_data_raises_and_leaves_no_store(tmp_path):
    client = LazyClient("local")
    store = tmp_path / "out.zarr"
    with pytest.raises(NoWaveformDataError, match="README.md") as info:
        ingest(str(README), str(store), client=client, progress=False)
    message = str(info.value)
    assert str(README) in message and "not waveform data" in message and "nothing was written" in message
    assert info.value.summary["files_found"] == 1 and not store.exists() and not client.started

    notes = tmp_path / "notes"  # no sidecar extension: scanned, fails
    notes.write_text("hello\n" * 50)
    with pytest.raises(NoWaveformDataError, match="not miniSEED") as info:
        ingest(str(notes), str(store), progress=False)
    assert isinstance(info.value, SeisgridError) and not store.exists()
    assert _names(info.value.summary["files_failed"]) == {"notes"}

    folder = tmp_path / "made-by-the-user.zarr"  # an empty folder that existed: kept, left empty
    folder.mkdir()
    with pytest.raises(NoWaveformDataError):
        ingest(str(notes), str(folder), progress=False)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_an_existing_store_is_kept_when_a_new_source_gives_nothing(tmp_path):
    src = tmp_path / "sds"
    (tr,) = write_day_files(src, days=1).values()
    store = tmp_path / "w.zarr"
    ingest(str(src), str(store), progress=False)
    junk = tmp_path / "junk.mseed"
    junk.write_bytes(b"junk" * 100)
    with pytest.raises(NoWaveformDataError, match="existing store"):
        ingest(str(junk), str(store), progress=False)
    archive = open_archive(str(store))
    assert archive.ids == ["XX.A..BHZ"] and np.array_equal(archive.stream("XX.A..BHZ")[0].data, tr.data)
    # some files usable: unchanged behaviour, the rejects are listed
    shutil.copy(junk, src / "junk.mseed")
    result = ingest(str(src), str(tmp_path / "mixed.zarr"), progress=False)
    assert _names(result["files_failed"]) == {"junk.mseed"} and result["files_ok"] == 1


# ------------------------------------------------------------------------ 4. invalid options


@pytest.mark.parametrize("bad, option, accepted", [
    ({"compressor": "foo"}, "compressor='foo'", "zstd, lz4"),
    ({"compression_level": 10}, "compression_level=10", "from 0 to 9"),
    ({"compression_level": -1}, "compression_level=-1", "from 0 to 9"),
    ({"compression_level": "high"}, "compression_level='high'", "integer"),
    ({"chunk_seconds": 0}, "chunk_seconds=0", "≥ 1"),
    ({"chunk_seconds": 1.5}, "chunk_seconds=1.5", "integer"),
    ({"shard_seconds": -86400}, "shard_seconds=-86400", "from 1 to 86400"),
    ({"shard_seconds": 7}, "shard_seconds=7", "divide a day"),
    ({"chunk_seconds": 7000, "shard_seconds": 3600}, "chunk_seconds=7000", "divide shard_seconds=3600"),
    ({"format": "NOPE"}, "format='NOPE'", "SLIST"),
    ({"origin": "notadate"}, "origin='notadate'", "2021-01-01"),
    ({"origin": "2021-01-01T12:00"}, "origin='2021-01-01T12:00'", "midnight"),
    ({"pattern": ""}, "pattern=''", "glob"),
])
def test_invalid_ingest_options_raise_config_error_before_any_work(tmp_path, bad, option, accepted):
    src = tmp_path / "sds"
    write_day_files(src, days=1)
    client = LazyClient("local")
    with pytest.raises(ConfigError) as info:
        ingest(str(src), str(tmp_path / "w.zarr"), client=client, progress=False, **bad)
    assert f"ingest.{option}" in str(info.value) and accepted in str(info.value)
    assert not client.started and not (tmp_path / "w.zarr").exists()


def test_other_blosc_codecs_and_levels_are_accepted(tmp_path):
    src = tmp_path / "sds"
    (tr,) = write_day_files(src, days=1).values()
    ingest(str(src), str(tmp_path / "w.zarr"), compressor="LZ4", compression_level=9, chunk_seconds=1800,
           shard_seconds=43200, progress=False)
    archive = open_archive(str(tmp_path / "w.zarr"))
    array = archive._array("XX.A..BHZ")
    assert array.chunks == (20 * 1800,) and array.shards == (20 * 43200,)
    assert np.array_equal(archive.stream("XX.A..BHZ")[0].data, tr.data)


# --------------------------------------------------------------------- 5. export and inventory


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    files = write_day_files(root / "sds", ids=("XX.A..BHZ", "XX.A..BHN"), days=1)
    ingest(str(root / "sds"), str(root / "w.zarr"), progress=False)
    return root / "w.zarr", files


@pytest.mark.parametrize("start, end, argument", [
    ("notatime", "2021-01-01T01:00:00", "start='notatime'"),
    ("2021-01-01T00:00:00", "2021-13-45", "end='2021-13-45'"),
    ("", "2021-01-01T01:00:00", "start=''"),
])
def test_export_rejects_a_time_that_is_not_one(small_store, tmp_path, start, end, argument):
    store, _ = small_store
    out = tmp_path / "cut.mseed"
    with pytest.raises(ConfigError) as info:
        export(str(store), "XX.A..BHZ", start, end, str(out))
    assert argument in str(info.value) and "2021-01-01T" in str(info.value)  # names it, shows an example
    with pytest.raises(ConfigError, match=argument.split("=")[0]):
        open_archive(str(store)).stream("XX.A..BHZ", start, end)
    assert not out.exists()


def test_export_rejects_an_unknown_channel_and_an_empty_span(small_store, tmp_path):
    store, _ = small_store
    out = tmp_path / "cut.mseed"
    with pytest.raises(StorageError, match=r"'XX\.A\.\.BHX'.*did you mean XX\.A\.\.BH[NZ]"):
        export(str(store), "XX.A..BHX", "2021-01-01T00:00:00", "2021-01-01T01:00:00", str(out))
    with pytest.raises(ConfigError, match="not after start"):
        export(str(store), "XX.A..BHZ", "2021-01-01T01:00:00", "2021-01-01T00:00:00", str(out))
    with pytest.raises(SeisgridError, match="no data"):
        export(str(store), "XX.A..BHZ", "2022-01-01", "2022-01-02", str(out))
    with pytest.raises(StorageError, match="no Zarr store|not a seisgrid"):
        inventory(str(tmp_path / "missing.zarr"))
    assert not out.exists()


def test_module_level_inventory_and_export(small_store, tmp_path):
    store, files = small_store
    inv = inventory(str(store))
    assert inv == open_archive(str(store)).inventory()
    assert [c["id"] for c in inv["channels"]] == ["XX.A..BHN", "XX.A..BHZ"]
    out = tmp_path / "new" / "folder" / "cut.mseed"  # its folder is made
    done = export(str(store), "XX.A..BHZ", "2021-01-01T01:00:00", "2021-01-01T01:10:00", str(out))
    assert done["traces"] == 1 and done["samples"] == 20 * 600 and done["id"] == "XX.A..BHZ"
    (tr,) = [t for t in files.values() if t.id == "XX.A..BHZ"]
    exported = obspy.read(str(out))[0]
    assert np.array_equal(exported.data, tr.data[20 * 3600:20 * 4200])


# --------------------------------------------------------------------------------- 6. xarray


def test_xarray_opens_the_store_without_warnings(tmp_path):
    src = tmp_path / "sds"
    files = write_day_files(src, ids=("XX.A..BHZ", "XX.A..BHN", "XX.B..BHZ"), days=1)
    store = tmp_path / "w.zarr"
    ingest(str(src), str(store), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the consolidated-metadata RuntimeWarning would fail the test
        ds = xr.open_zarr(str(store), group="XX.A")
        tree = xr.open_datatree(str(store), engine="zarr")
    assert set(ds.data_vars) == {"XX.A..BHZ", "XX.A..BHN"}
    assert set(tree.children) == {"XX.A", "XX.B"}  # the manifest is not part of the view
    for tr in files.values():
        station = ".".join(tr.id.split(".")[:2])
        assert np.array_equal(tree[station][tr.id].values[: tr.stats.npts], tr.data)
    assert np.array_equal(ds["XX.A..BHZ"].values, next(t for t in files.values() if t.id == "XX.A..BHZ").data)

    # a later run (new day) rewrites the consolidated view; a no-op rerun leaves it byte for byte
    write_day_files(src, ids=("XX.A..BHZ",), days=1, start=obspy.UTCDateTime(2021, 1, 2), seed=5)
    ingest(str(src), str(store), progress=False)
    before = (store / "zarr.json").read_bytes()
    assert ingest(str(src), str(store), progress=False)["tasks_run"] == 0
    assert (store / "zarr.json").read_bytes() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(str(store), group="XX.A")
    assert ds["XX.A..BHZ"].shape == (2 * 20 * 86400,) and ds["XX.A..BHN"].shape == (20 * 86400,)


def test_to_dataset_is_lazy_and_shares_the_station_grid(tmp_path):
    src = tmp_path / "sds"
    long_ = trace(20 * 7200, 20.0, obspy.UTCDateTime(2021, 1, 1), id="XX.A..BHZ")
    short = trace(20 * 3600, 20.0, obspy.UTCDateTime(2021, 1, 1, 0, 30), id="XX.A..BHN", seed=4)
    for tr in (long_, short):
        with open(sds_path(src, tr), "wb") as f:
            f.write(mseed_bytes(tr))
    ingest(str(src), str(tmp_path / "w.zarr"), progress=False)
    archive = open_archive(str(tmp_path / "w.zarr"))
    with raise_if_dask_computes():
        ds = archive.to_dataset("XX.A")
        masked = archive.to_dataset("XX.A", masked=True)
        window = archive.to_dataset("XX.A", "2021-01-01T00:40:00", "2021-01-01T00:50:00")
    assert ds.sizes["sample"] == 20 * 7200 and str(ds.time[0].values)[:19] == "2021-01-01T00:00:00"
    assert np.array_equal(ds["XX.A..BHZ"].values, long_.data)
    assert np.array_equal(ds["XX.A..BHN"].values[20 * 1800:20 * 5400], short.data)
    assert (ds["XX.A..BHN"].values[: 20 * 1800] == np.iinfo(np.int32).min).all()  # no data yet: fill value
    assert np.isnan(masked["XX.A..BHN"].values[: 20 * 1800]).all() and np.isnan(masked["XX.A..BHN"].values[-1])
    assert window.sizes["sample"] == 20 * 600
    assert np.array_equal(window["XX.A..BHN"].values, short.data[20 * 600:20 * 1200])
    with pytest.raises(StorageError, match="'XX.C'.*no such station"):
        archive.to_dataset("XX.C")
