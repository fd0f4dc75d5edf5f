"""Ingest on the real data in SEISGRID_DATA (skipped, with the folder named, when it is absent)."""

import json

import numpy as np
import obspy
import pytest
from helpers import data_path, requires_data

from seisgrid import open_archive
from seisgrid.cli import main

UH = "seismic/obspy-uh-coincidence"


@requires_data(UH)
def test_bw_uh_records_ingest_losslessly_from_the_cli(tmp_path, capsys):
    source = data_path(UH)
    store = tmp_path / "uh.zarr"
    code = main(["ingest", str(source), str(store), "--format", "SLIST", "--pattern", "*.slist.gz", "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["files_ok"] == 8 and summary["files_failed"] == []
    archive = open_archive(str(store))
    assert archive.ids == ["BW.UH1..EHZ", "BW.UH1..SHZ", "BW.UH2..SHZ", "BW.UH3..SHE", "BW.UH3..SHN",
                           "BW.UH3..SHZ", "BW.UH4..EHZ"]
    rates = {cid: archive.channel(cid)["sampling_rate"] for cid in archive.ids}
    assert rates["BW.UH1..EHZ"] == 200.0 and rates["BW.UH1..SHZ"] == 50.0 and rates["BW.UH4..EHZ"] == 100.0
    total = 0
    for path in sorted(source.glob("*.slist.gz")):
        for tr in obspy.read(str(path)):
            got = archive.stream(tr.id, tr.stats.starttime, tr.stats.endtime + 0.5 / tr.stats.sampling_rate)
            assert len(got) == 1 and got[0].stats.starttime == tr.stats.starttime
            assert np.array_equal(got[0].data, tr.data), path.name
            total += tr.stats.npts
    assert archive.inventory()["samples"] == total == summary["samples_written"]
    # the two 10 s cut-outs of BW.UH1..EHZ are one channel with one gap between them
    (channel,) = [c for c in archive.inventory()["channels"] if c["id"] == "BW.UH1..EHZ"]
    assert len(channel["gaps"]) == 1


@requires_data(UH)
def test_slist_files_read_as_miniseed_are_reported_not_ingested(tmp_path):
    from seisgrid.seismic.ingest import NoWaveformDataError, ingest

    with pytest.raises(NoWaveformDataError) as info:  # nothing usable: an error, and no store left behind
        ingest(str(data_path(UH)), str(tmp_path / "x.zarr"), pattern="*.slist.gz", progress=False)
    assert len(info.value.summary["files_failed"]) == 8
    assert all("not miniSEED" in f["reason"] for f in info.value.summary["files_failed"])
    assert not (tmp_path / "x.zarr").exists()


PHASENET = "seismic/phasenet-ncedc"


@requires_data(PHASENET)
def test_windows_spectrograms_evaluate_from_the_cli_on_real_windows(tmp_path, capsys):
    windows, images = tmp_path / "w.zarr", tmp_path / "s.zarr"
    # northern California is a default test region: hold out the BG and NN networks only
    assert main(["windows", str(data_path(PHASENET)), str(windows), "--json", "--augment-factor", "0",
                 "--test-regions", "none", "--test-networks", "BG,NN"]) == 0
    built = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert built["sources"]["phasenet-ncedc"] == {"windows": 308, "earthquake": 154, "noise": 154}
    assert main(["spectrograms", str(windows), str(images), "--json", "--method", "torch"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["windows"] == 308
    assert main(["evaluate", str(windows), "--spectrograms", str(images), "--methods", "stalta,forest",
                 "--out", str(tmp_path / "eval"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {m["name"]: m for m in result["methods"]}
    assert set(rows) == {"stalta", "forest"}
    for row in rows.values():
        assert {"precision", "recall", "fpr", "f1", "hours_per_year"} <= set(row)
        assert row["tp"] + row["fn"] == result["test_earthquakes"] and row["fp"] + row["tn"] == result["test_noise"]
        assert 0.5 < row["recall"] <= 1.0 and row["hours_per_year"] > 0
    assert (tmp_path / "eval" / "pr_curves.png").exists() and (tmp_path / "eval" / "results.md").exists()
