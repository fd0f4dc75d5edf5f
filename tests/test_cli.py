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
