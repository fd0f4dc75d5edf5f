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
