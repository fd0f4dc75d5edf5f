"""The demo pipeline (the README's first command) and the pipeline runner's errors."""

import json
import pathlib

import pytest

from seisgrid.cli import main
from seisgrid.errors import ConfigError
from seisgrid.pipeline import load

DEMO = pathlib.Path(__file__).resolve().parent.parent / "pipelines" / "demo.yaml"


@pytest.mark.slow
def test_demo_pipeline_runs_end_to_end(tmp_path, capsys):
    code = main(["run", str(DEMO), "--set", f"output={tmp_path}", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    steps = {s["step"]: s["result"] for s in result["steps"]}
    assert steps["ingest"]["files_failed"] == [] and steps["ingest"]["files_ok"] == 9
    assert steps["inventory"]["samples"] == steps["ingest"]["samples_written"] == steps["synth"]["samples"]
    assert (tmp_path / "archive" / "catalog.csv").exists()
    assert (tmp_path / "waveforms.zarr" / "zarr.json").exists()


def test_pipeline_errors_name_the_file_and_step(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - frobnicate: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: step 1 'frobnicate'"):
        load(str(bad))
    with pytest.raises(ConfigError, match="cannot read pipeline"):
        load(str(tmp_path / "missing.yaml"))
    assert main(["run", str(bad)]) == 2  # a bad pipeline file is a usage error


def test_train_detector_recipe_reads_the_shared_data_folder(tmp_path, monkeypatch):
    recipe = DEMO.parent / "train-detector.yaml"
    monkeypatch.setenv("SEISGRID_DATA", str(tmp_path / "data"))
    spec = load(str(recipe), ["output=/out", "test_regions=none"])
    steps = dict(spec["steps"])
    assert steps["ingest"]["source"] == f"{tmp_path}/data/seismic/rutford-icestream"
    assert f"{tmp_path}/data/seismic/thwaites-icequakes" in steps["windows"]["sources"]
    assert steps["windows"]["test_regions"] == "none" and steps["windows"]["test_networks"] == "none"
    assert steps["train"]["out"] == "/out/detector.pt" and "resnet:/out/detector.pt" in steps["evaluate"]["methods"]
    # a file that defines data itself keeps its own
    own = tmp_path / "own.yaml"
    own.write_text("vars: {data: /mine}\nsteps:\n  - inventory: {store: '{data}/x.zarr'}\n")
    assert dict(load(str(own))["steps"])["inventory"]["store"] == "/mine/x.zarr"
