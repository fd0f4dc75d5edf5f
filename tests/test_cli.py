"""Command-line conventions: config output, JSON last line, usage errors, synth from the CLI."""

import json

import pytest
import yaml

from seisgrid.cli import main


def test_config_prints_effective_settings(capsys, monkeypatch):
    assert main(["config"]) == 0
    settings = yaml.safe_load(capsys.readouterr().out)
    assert settings["seisgrid"]["ingest"]["chunk_seconds"] == 3600
    assert main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["seisgrid"]["synth"]["seed"] == 0


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["ingest"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_synth_from_the_cli_with_a_cluster_address(dask_client, tmp_path, capsys):
    out = tmp_path / "archive"
    code = main(["synth", str(out), "--stations", "2", "--days", "0.05", "--seed", "5", "--sampling-rates", "20",
                 "--cluster", dask_client.scheduler.address, "--json"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["files"] == 6 and summary["stations"] == 2
    assert "dashboard" in captured.err
    assert (out / "catalog.csv").exists()


def test_inventory_of_a_missing_store_fails_with_the_path(tmp_path, capsys):
    assert main(["inventory", str(tmp_path / "nothing.zarr")]) == 1
    assert "nothing.zarr" in capsys.readouterr().err


def test_stalta_detection_on_an_archive_is_scored_against_the_truth(tmp_path, capsys):
    from seisgrid.seismic.ingest import ingest
    from seisgrid.seismic.synth import synthesize

    archive, store = tmp_path / "archive", tmp_path / "store.zarr"
    synthesize(str(archive), stations=3, days=0.05, sampling_rates=[100.0], events_per_day=600, seed=18)
    ingest(str(archive), str(store), pattern="*.D.*", progress=False)
    import dask.config

    # the synthetic events are local: a 2–20 Hz band and two stations (ObsPy's example uses 10–20 Hz, 3)
    with dask.config.set({"seisgrid.stalta.archive_freqmin": 2.0, "seisgrid.stalta.min_stations": 2}):
        assert main(["detect", str(store), "--method", "stalta", "--out", str(tmp_path / "cat"), "--json",
                     "--cluster", "none"]) == 0
    detected = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert detected["method"] == "stalta" and detected["station_days"] == pytest.approx(3 * 0.05)
    assert main(["score", str(tmp_path / "cat.xml"), str(archive / "catalog.csv"), "--json"]) == 0
    score = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"precision", "recall", "false_per_station_day", "recall_by_snr"} <= set(score)
    strongest = score["recall_by_snr"][-1]
    assert strongest["n"] >= 1 and strongest["recall"] > 0  # the loudest events trigger a network
    assert main(["detect", str(store), "--out", str(tmp_path / "x")]) == 2  # no --model: a usage error
    capsys.readouterr()
    assert main(["detect", str(store), "--method", "forest", "--model", str(tmp_path / "none.joblib"),
                 "--out", str(tmp_path / "x"), "--cluster", "none"]) == 1
    assert "none.joblib: no detector there" in capsys.readouterr().err
