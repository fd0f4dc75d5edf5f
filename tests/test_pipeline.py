"""The demo pipeline (the README's first command) and the pipeline runner's errors."""

import json
import pathlib

import pytest

from seisgrid.cli import main
from seisgrid.errors import ConfigError, StorageError
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


SMALL = """
name: small
cluster: none
vars: {{output: {out}}}
steps:
  - synth: {{out: "{{output}}/archive", stations: 2, days: 0.02, seed: 4, sampling_rates: [20.0]}}
  - ingest: {{source: "{{output}}/archive", store: "{{output}}/w.zarr", pattern: "*.D.*"}}
  - inventory: {{store: "{{output}}/w.zarr"}}
"""


def _small(tmp_path) -> pathlib.Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL.format(out=tmp_path / "out"))
    return path


def _record(tmp_path) -> dict:
    return json.loads((tmp_path / "out" / "run-record.json").read_text())


def test_rerun_skips_finished_steps_and_reruns_what_changed(tmp_path, capsys):
    pipeline = _small(tmp_path)
    assert main(["run", str(pipeline)]) == 0
    first = _record(tmp_path)
    assert [s["status"] for s in first["steps"]] == ["done", "done", "done"] and first["status"] == "done"
    assert first["versions"]["seisgrid"] and first["versions"]["dask"] and first["steps"][1]["seconds"] >= 0
    assert first["steps"][1]["outputs"] == {"store": str(tmp_path / "out" / "w.zarr")}
    capsys.readouterr()
    assert main(["run", str(pipeline)]) == 0
    second = _record(tmp_path)
    # synth and ingest are done for the same inputs; inventory writes nothing, so it runs every time
    assert [s["status"] for s in second["steps"]] == ["skipped", "skipped", "done"]
    assert "skipped, done before" in capsys.readouterr().err
    # a changed input file: ingest runs again (synth's own inputs did not change)
    day_file = sorted((tmp_path / "out" / "archive").rglob("*.D.*"))[0]
    day_file.write_bytes(day_file.read_bytes())  # same bytes, new modification time
    assert main(["run", str(pipeline)]) == 0
    assert [s["status"] for s in _record(tmp_path)["steps"]] == ["skipped", "done", "done"]
    # a deleted output: its step runs again
    import shutil

    shutil.rmtree(tmp_path / "out" / "w.zarr")
    assert main(["run", str(pipeline)]) == 0
    assert [s["status"] for s in _record(tmp_path)["steps"]] == ["skipped", "done", "done"]
    assert main(["run", str(pipeline), "--force"]) == 0
    assert [s["status"] for s in _record(tmp_path)["steps"]] == ["done", "done", "done"]


def test_a_failed_step_is_recorded_and_the_rerun_starts_there(tmp_path, monkeypatch):
    pipeline = _small(tmp_path)
    from seisgrid.seismic import store as store_module

    def broken(*_args, **_kwargs):
        raise StorageError("w.zarr: disk went away")

    monkeypatch.setattr(store_module, "inventory", broken)
    assert main(["run", str(pipeline)]) == 1
    record = _record(tmp_path)
    assert record["status"] == "failed" and record["steps"][-1]["status"] == "failed"
    assert record["steps"][-1]["error"] == "StorageError: w.zarr: disk went away"
    monkeypatch.undo()
    assert main(["run", str(pipeline)]) == 0
    assert [s["status"] for s in _record(tmp_path)["steps"]] == ["skipped", "skipped", "done"]


def test_run_record_holds_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("SEISGRID_STORAGE__S3__SECRET", "planted-secret-7f3a")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(SMALL.format(out=tmp_path / "out").replace(
        'stations: 2', 'stations: 1').replace("steps:", "record: '{output}/r.json'\nsteps:"))
    assert main(["run", str(pipeline), "--set", "note=https://user:pass@example.org/x"]) == 0
    text = (tmp_path / "out" / "r.json").read_text()
    assert "planted-secret-7f3a" not in text and "user:pass" not in text and "***@example.org" in text


@pytest.mark.parametrize(("text", "message"), [
    ("steps: []\nclustr: local\n", r"unknown key\(s\) \['clustr'\]"),
    ("steps:\n  - ingest: {source: a, store: b, strore: c}\n", r"step 1 'ingest': unknown argument\(s\) \['strore'\]"),
    ("steps:\n  - ingest: {source: a}\n", r"missing argument\(s\) \['store'\]"),
    ("vars: [1]\nsteps: []\n", "'vars' must be a mapping"),
])
def test_pipeline_validation_names_the_key_or_step(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(str(bad))


def test_detection_pipeline_loads(tmp_path):
    spec = load(str(DEMO.parent / "detection.yaml"), [f"archive={tmp_path}/a", f"output={tmp_path}/o",
                                                      "model=/m.pt"])
    assert [key for key, _ in spec["steps"]] == ["ingest", "inventory", "detect"]
    assert dict(spec["steps"])["detect"]["model"] == "/m.pt"
