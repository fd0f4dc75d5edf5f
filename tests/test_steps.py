"""The step table drives the command line, pipelines and summaries; steps import their modules lazily;
plugins add steps through entry points; arguments are checked before any cluster starts."""

import inspect
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from seisgrid.cli import build_parser, main
from seisgrid.errors import ConfigError
from seisgrid.pipeline import load
from seisgrid.steps import BUILTIN_STEPS, EXIT_USAGE, Step, pipeline_steps, registry

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("step", BUILTIN_STEPS, ids=lambda s: s.name)
def test_every_argument_reaches_a_parameter_of_the_step_function(step):
    parameters = inspect.signature(step.function()).parameters
    for arg in step.args:
        assert arg.keyword in parameters, f"{step.name}: --{arg.name} feeds no parameter {arg.keyword!r}"


def test_options_the_function_does_not_take_are_settings_while_it_runs(tmp_path, monkeypatch):
    import dask.config

    import seisgrid.ghf.collinearity as collinearity

    seen = {}

    def fake_vif_report(features_store, heatflow_store, out_png=None, threshold=None, variables=None):
        seen.update(threshold=threshold, exclude=dask.config.get("seisgrid.vif.exclude"), png=out_png)
        return {}

    monkeypatch.setattr(collinearity, "vif_report", fake_vif_report)
    registry()["ghf vif"].call({"features": "f.zarr", "heatflow": "h.zarr", "threshold": 5.0, "exclude": ["a*"]})
    assert seen == {"threshold": 5.0, "exclude": ["a*"], "png": "f.vif.png"}
    assert dask.config.get("seisgrid.vif.exclude") != ["a*"]


def test_the_parser_has_one_command_per_step_and_plain_help():
    parser = build_parser()
    for step in registry().values():
        required = [x for a in step.args if a.required for x in ("--" + a.name.replace("_", "-"), "Y")]
        args = parser.parse_args([*step.name.split(), *["X"] * sum(a.positional for a in step.args), *required])
        assert args.step is step
    text = parser.format_help()
    assert "``" not in text and "ghf" in text and "run" in text


def test_pipeline_files_load_and_name_real_steps_and_arguments():
    for path in sorted(ROOT.joinpath("pipelines").glob("*.yaml")):
        spec = load(str(path))  # load refuses unknown steps and arguments
        assert spec["steps"], path


def test_pipeline_errors_name_the_file_step_and_argument(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - synth: {out: x}\n  - ingest: {source: a, store: b, windows_url: c}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: step 2 'ingest': unknown argument\(s\) \['windows_url'\]"):
        load(str(bad))
    bad.write_text("steps:\n  - export: {store: s.zarr, id: SY.A..HHZ, out: x.mseed}\n")
    with pytest.raises(ConfigError, match=r"step 1 'export': missing argument\(s\) \['start', 'end'\]"):
        load(str(bad))
    bad.write_text("steps:\n  - synth: {out: a}\n  - detect: {store: s.zarr, out: c}\n")
    with pytest.raises(ConfigError, match=r"step 2 'detect': --method model needs --model"):
        load(str(bad))
    bad.write_text("vars: {}\nsteps:\n  - synth: {out: '{output}/a'}\n")
    with pytest.raises(ConfigError, match="step 1 'synth'.*output"):
        load(str(bad))
    assert main(["run", str(bad)]) == EXIT_USAGE


def test_a_pipeline_runs_export_and_score_steps_without_importing_torch(tmp_path):
    """Any step is a pipeline step (export, score ...), and running a pipeline imports only what its steps need."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(textwrap.dedent("""\
        name: tiny
        cluster: none
        vars: {output: out}
        steps:
          - synth: {out: "{output}/archive", stations: 3, days: 0.02, seed: 3, sampling_rates: [100.0]}
          - ingest: {source: "{output}/archive", store: "{output}/w.zarr"}
          - inventory: {store: "{output}/w.zarr"}
          - export: {store: "{output}/w.zarr", id: SY.ST01..HHZ, start: "2021-01-01T00:05",
                     end: "2021-01-01T00:06", out: "{output}/x.mseed"}
          - detect: {store: "{output}/w.zarr", method: stalta, out: "{output}/stalta"}
          - score: {catalog: "{output}/stalta.xml", truth: "{output}/archive/catalog.csv"}
        """))
    code = textwrap.dedent(f"""\
        import json, sys
        from seisgrid.cli import main
        status = main(["run", {str(pipeline)!r}, "--set", "output={tmp_path}", "--json"])
        print(json.dumps({{"status": status, "torch": "torch" in sys.modules}}))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    run_result, status = json.loads(lines[-2]), json.loads(lines[-1])
    assert status == {"status": 0, "torch": False}, out.stderr[-2000:]
    steps = {s["step"]: s["result"] for s in run_result["steps"]}
    assert steps["export"]["samples"] == 100 * 60
    assert steps["detect"]["method"] == "stalta" and steps["score"]["true"] >= 0
    assert "[export] wrote" in out.stderr and "[score] precision" in out.stderr
    assert (tmp_path / "x.mseed").exists() and (tmp_path / "stalta.xml").exists()


def test_a_bad_value_is_a_usage_error_before_any_cluster_starts(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "a"), "--stations", "-1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "stations" in err and "dashboard" not in err
    assert not (tmp_path / "a").exists()
    assert main(["detect", str(tmp_path / "s.zarr"), "--method", "stalta", "--threshold", "0.5",
                 "--out", str(tmp_path / "c")]) == EXIT_USAGE
    assert "threshold" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "c")]) == EXIT_USAGE
    assert "--model" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "m.pt"), "--epochs", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "epochs=0" in err and "dashboard" not in err
    assert main(["evaluate", str(tmp_path / "w.zarr"), "--methods", "stalta,magic"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "magic" in err and "dashboard" not in err


def test_score_reads_as_percentages(tmp_path, capsys):
    from seisgrid.steps import registry

    text = registry()["score"].describe({
        "precision": 0.9129, "recall": 0.5, "false_per_station_day": 1.23456, "matched": 21, "detected": 23,
        "true": 42, "tolerance_seconds": 5.0,
        "recall_by_snr": [{"snr_min": 0, "snr_max": 2.0, "recall": 0.25, "n": 8},
                          {"snr_min": 2.0, "snr_max": None, "recall": None, "n": 0}]})
    assert "precision 91.3 % (21 of 23" in text and "recall 50.0 % (21 of 42" in text
    assert "station-day 1.23" in text and "SNR 0–2: recall 25.0 % of 8" in text and "SNR 2–∞: recall — of 0" in text


def test_plugin_steps_come_from_entry_points(tmp_path, monkeypatch, capsys):
    (tmp_path / "seisgrid_plugin_example.py").write_text(textwrap.dedent("""\
        from seisgrid.steps import Arg, Step

        def greet(name, shout=False):
            return {"greeting": ("HELLO " if shout else "hello ") + name}

        STEP = Step("greet", "say hello", "seisgrid_plugin_example:greet",
                    (Arg("name", "who", positional=True), Arg("shout", "louder", action="store_true")),
                    cluster="none", summary=lambda r: r["greeting"])
        """))
    dist = tmp_path / "seisgrid_plugin_example-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: seisgrid-plugin-example\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[seisgrid.steps]\ngreet = seisgrid_plugin_example:STEP\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "greet" in registry(refresh=True) and "greet" in pipeline_steps()
        assert main(["greet", "world", "--shout", "--json"]) == 0
        assert _last_json(capsys) == {"greeting": "HELLO world"}
    finally:
        monkeypatch.undo()
        assert "greet" not in registry(refresh=True)


def test_a_plugin_cannot_replace_a_builtin_step(monkeypatch, caplog):
    import seisgrid.steps as steps

    monkeypatch.setattr(steps, "_plugin_steps", lambda: [Step("ingest", "impostor", "os:getcwd")])
    try:
        assert steps.registry(refresh=True)["ingest"].help != "impostor"
        assert "ignored" in caplog.text
    finally:
        monkeypatch.undo()
        steps.registry(refresh=True)
