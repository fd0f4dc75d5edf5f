"""Safe by default (issue 14, item 7): nothing seisgrid reads runs code, and credentials never leave the process.

* Checkpoints load with ``torch.load(..., weights_only=True)`` — explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
  cannot switch it off — and a file with a pickled call in it is refused unrun; a joblib (pickle) forest is
  read only from the path given, and only after its seisgrid ``.json``. A scan of the package's source checks
  that no other unsafe load (pickle, unsafe YAML loaders) exists.
* YAML is read with ``yaml.safe_load``: a pipeline file or a cluster profile with a ``!!python/...`` tag is a
  ConfigError naming the file, and the tag's call never runs.
* Planted credentials (``AWS_SECRET_ACCESS_KEY``, ``SEISGRID_STORAGE__S3__SECRET``, the access key id, and a
  user:password in URLs) are looked for in everything real commands against the S3 API server on loopback
  give out: stdout (``--json``), stderr with the log (``-v``; the workers' logs too), the run record of
  ``seisgrid run``, the objects of the store written, exception messages, and the task keys, task prefixes,
  task groups and task-stream records of a real LocalCluster's scheduler (what the dashboard names tasks by).
"""

from __future__ import annotations

import ast
import json
import logging
import os
import pathlib
import subprocess
import sys
import textwrap

import dask.config
import pytest
from helpers import requires_jobqueue, requires_moto, requires_s3fs, requires_torch

from seisgrid import storage
from seisgrid.cli import main
from seisgrid.errors import ConfigError, SeisgridError, StorageError

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "seisgrid"

# planted credentials: unique strings that appear nowhere else
SECRET_AWS = "sgPlantedAwsSecret7Qx2"  # AWS_SECRET_ACCESS_KEY
SECRET_CFG = "sgPlantedCfgSecret4Lm9"  # SEISGRID_STORAGE__S3__SECRET (the one s3fs uses)
PASSWORD = "sgPlantedPassword3Vt8"  # the password of a user:password URL
ACCESS_KEY = "SGPLANTEDACCESSKEY5"  # AWS_ACCESS_KEY_ID and SEISGRID_STORAGE__S3__KEY
SECRETS = (SECRET_AWS, SECRET_CFG, PASSWORD)
CREDENTIALS = (*SECRETS, ACCESS_KEY)
USERINFO = f"planted-user:{PASSWORD}"
SDS = "*.D.*"


def leaks(text: str, planted: tuple[str, ...] = CREDENTIALS) -> list[str]:
    """The planted credentials found in ``text``."""
    return [value for value in planted if value in text]


class Payload:
    """Unpickled, it creates ``marker`` (``open(marker, "w")``): proof that a load ran code."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


# ------------------------------------------------------------------------------------ the source itself


def _calls(tree: ast.AST):
    """``(dotted name, call node, enclosing function name)`` of every call in ``tree``."""

    def dotted(node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        return "?"

    def walk(node: ast.AST, function: str):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                yield dotted(child.func), child, function
            yield from walk(child, inner)

    yield from walk(tree, "<module>")


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def _unsafe_loads() -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """Unsafe deserialising calls in the package (file, function, call) and counts of the safe ones."""
    unsafe, safe = [], {"torch.load": 0, "yaml.safe_load": 0}
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE.parent))
        for name, call, function in _calls(ast.parse(path.read_text(), str(path))):
            last = name.rsplit(".", 1)[-1]
            if name == "torch.load" or (last == "load" and "EQTransformer" in name):  # SeisBench passes kwargs on
                if _keyword(call, "weights_only") is True:
                    safe["torch.load"] += 1
                else:
                    unsafe.append((where, function, name))
            elif name.startswith("yaml."):
                if last == "safe_load":
                    safe["yaml.safe_load"] += 1
                elif last in ("load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all"):
                    loader = _keyword(call, "Loader")
                    if not (isinstance(loader, ast.Attribute) and loader.attr in ("SafeLoader", "CSafeLoader")):
                        unsafe.append((where, function, name))
            elif name in ("pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load",
                          "joblib.load", "pd.read_pickle", "pandas.read_pickle", "torch.jit.load", "torch.hub.load",
                          "marshal.loads", "shelve.open", "eval", "exec"):
                unsafe.append((where, function, name))
            elif last == "load" and _keyword(call, "allow_pickle") not in (None, False):
                unsafe.append((where, function, name))
    return unsafe, safe


def test_the_only_unsafe_load_in_the_package_is_the_forest_of_a_given_path():
    unsafe, safe = _unsafe_loads()
    # joblib (pickle) in one place: forest.load_model, which reads its .json first (tested below)
    assert unsafe == [("seisgrid/seismic/forest.py", "load_model", "joblib.load")]
    # the scan sees the loads it must: checkpoint.read and peers.load_eqt; config, cluster profiles, pipelines,
    # labelled-window sidecars
    assert safe["torch.load"] >= 2 and safe["yaml.safe_load"] >= 4, safe


# ------------------------------------------------------------------------------------------ checkpoints


@requires_torch
@pytest.mark.parametrize("loader", ["checkpoint.read", "models.load_checkpoint", "FittedBNN.load"])
def test_a_checkpoint_with_pickled_code_is_refused_unrun(tmp_path, monkeypatch, loader):
    import torch

    from seisgrid import checkpoint
    from seisgrid.ghf.bnn import FittedBNN
    from seisgrid.seismic import models

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch's default would then unpickle anything
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": Payload(marker)}, path)
    (tmp_path / "evil.pt.json").write_text(json.dumps({"arch": "tiny"}))
    load = {"checkpoint.read": checkpoint.read, "models.load_checkpoint": models.load_checkpoint,
            "FittedBNN.load": FittedBNN.load}[loader]
    with pytest.raises(SeisgridError, match=r"evil\.pt: not a .*tensors only, refused unread") as caught:
        load(str(path))
    assert "open" in str(caught.value)  # the global it refused
    assert not marker.exists()
    # the payload is live: the load seisgrid does not do runs it
    with pytest.warns(UserWarning, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        torch.load(path)
    assert marker.exists()


@requires_torch
def test_eqtransformer_weights_with_pickled_code_are_refused_unrun(tmp_path, monkeypatch):
    pytest.importorskip("seisbench")
    import torch

    from seisgrid.seismic.peers import load_eqt

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    torch.save({"payload": Payload(marker)}, tmp_path / "evil.pt.v1")
    (tmp_path / "evil.json.v1").write_text(json.dumps({"model_args": {}}))
    with pytest.raises(SeisgridError, match=r"evil\.pt\.v1: cannot load it as SeisBench EQTransformer weights"):
        load_eqt(str(tmp_path / "evil"))
    assert not marker.exists()


def test_a_forest_is_unpickled_only_after_its_seisgrid_config(tmp_path):
    import joblib

    from seisgrid.seismic import forest

    marker = tmp_path / "ran"
    path = tmp_path / "forest.joblib"
    joblib.dump(Payload(marker), path)
    with pytest.raises(OSError):  # no .json next to it (evaluate and detect name the path in their messages)
        forest.load_model(path)
    for config in ('{"kind": "other"}', "[1, 2]"):
        pathlib.Path(f"{path}.json").write_text(config)
        with pytest.raises(SeisgridError, match="not a seisgrid forest model config; .* is not loaded"):
            forest.load_model(path)
    assert not marker.exists()
    assert "joblib is pickle" in forest.load_model.__doc__ and "a path the user named" in forest.load_model.__doc__


# ------------------------------------------------------------------------------------------------- YAML


TAGS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:builtins.open ["{marker}", "w"]',
    '!!python/object/new:builtins.open ["{marker}", "w"]',
    "!!python/name:os.system",
]


@pytest.mark.parametrize("tag", TAGS)
def test_a_pipeline_file_cannot_run_code(tmp_path, capsys, tag):
    from seisgrid.pipeline import load

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"name: evil\nsteps:\n  - synth:\n      out: {tag.format(marker=marker)}\n      stations: 1\n")
    with pytest.raises(ConfigError, match=r"evil\.yaml: .*not valid .*YAML.*python/(object|name)"):
        load(str(evil))
    assert main(["run", str(evil), "--cluster", "none"]) == 2  # a usage error, before anything runs
    err = capsys.readouterr().err
    assert f"seisgrid run: usage error: {evil}: " in err and "python/" in err and "line 4" in err
    assert not marker.exists() and not (tmp_path / "archive").exists()


@requires_jobqueue
@pytest.mark.parametrize("tag", TAGS[:2])
def test_a_cluster_profile_cannot_run_code(tmp_path, tag):
    from seisgrid.cluster import load_profile

    marker = tmp_path / "ran"
    evil = tmp_path / "evil-profile.yaml"
    evil.write_text(f"kind: slurm\njobs: {tag.format(marker=marker)}\n")
    with pytest.raises(ConfigError, match=r"evil-profile\.yaml: .*cluster profile .*python/object/apply"):
        load_profile(str(evil))
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ credentials


def test_seisgrid_config_prints_no_credentials(monkeypatch, capsys):
    from seisgrid import config

    monkeypatch.setenv("SEISGRID_STORAGE__S3__KEY", ACCESS_KEY)
    monkeypatch.setenv("SEISGRID_STORAGE__S3__SECRET", SECRET_CFG)
    config.refresh()
    try:
        assert config.get("storage.s3.secret") == SECRET_CFG  # still there for the code that needs it
        for argv in (["config"], ["config", "--json"]):
            assert main(argv) == 0
            out, err = capsys.readouterr()
            assert leaks(out + err) == []
        shown = json.loads(out.strip().splitlines()[-1])["seisgrid"]
        assert shown["storage"]["s3"]["secret"] == shown["storage"]["s3"]["key"] == "***"
        assert shown["storage"]["s3"]["max_attempts"] == config.get("storage.s3.max_attempts")
    finally:
        monkeypatch.undo()
        config.refresh()


def test_redact_masks_urls_configured_credentials_and_their_quoted_forms(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_AWS)
    url = f"s3://{USERINFO}@bucket/w.zarr"
    with dask.config.set({"seisgrid.storage.s3.secret": SECRET_CFG, "seisgrid.storage.s3.key": ACCESS_KEY}):
        text = storage.redact(f'{url}: Invalid bucket name "{USERINFO}@bucket"; {SECRET_AWS} {SECRET_CFG} '
                              f"{ACCESS_KEY} https://u:{PASSWORD}@example.org/x", url)
    assert leaks(text) == [] and text.count("***") == 6 and "s3://***@bucket/w.zarr" in text


# --- real commands against the S3 API server on loopback


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from seisgrid.seismic.synth import synthesize

    folder = tmp_path_factory.mktemp("safety") / "archive"
    synthesize(str(folder), stations=1, days=0.02, sampling_rates=[20.0], seed=3)
    return folder


@pytest.fixture
def planted(s3_server, tmp_path):
    """The environment of a ``seisgrid`` command with every credential planted (moto accepts any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SEISGRID_", "DASK_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_AWS, "AWS_DEFAULT_REGION": "us-east-1",
        "SEISGRID_STORAGE__S3__ENDPOINT_URL": s3_server, "SEISGRID_STORAGE__S3__KEY": ACCESS_KEY,
        "SEISGRID_STORAGE__S3__SECRET": SECRET_CFG, "SEISGRID_STORAGE__S3__MAX_ATTEMPTS": "2",
        "SEISGRID_CLUSTER__LOCAL__N_WORKERS": "1", "SEISGRID_CLUSTER__LOCAL__DASHBOARD_ADDRESS": "127.0.0.1:0",
        "HOME": str(tmp_path),  # no user dask/seisgrid YAML of this machine
    })
    return env


def seisgrid(env: dict, *argv: str, expect: int) -> tuple[str, str]:
    """Run the ``seisgrid`` command; ``(stdout, stderr)``, after checking its exit status."""
    done = subprocess.run([sys.executable, "-m", "seisgrid.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == expect, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout, done.stderr


def store_objects(url: str) -> str:
    """Every object below ``url``, decoded as text as far as it goes (metadata, manifest records)."""
    fs, root = storage.filesystem(url)
    fs.invalidate_cache()
    return "\n".join(blob.decode("utf-8", "replace") for blob in fs.cat(fs.find(root)).values())


def _assert_clean(what: str, text: str, planted: tuple[str, ...] = CREDENTIALS) -> None:
    assert leaks(text, planted) == [], f"{what} holds credentials: {leaks(text, planted)}"


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_ingest_to_s3_shows_no_credentials(archive, s3_bucket, planted):
    store = f"{s3_bucket}/w.zarr"
    out, err = seisgrid(planted, "-v", "ingest", str(archive), store, "--pattern", SDS, "--cluster", "none",
                        "--json", expect=0)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["files_ok"] == 3 and summary["tasks_failed"] == [] and summary["store"] == store
    _assert_clean("ingest --json", out)
    _assert_clean("ingest -v stderr", err)
    _assert_clean("the store's objects", store_objects(store))


@pytest.fixture
def planted_here(s3_bucket, monkeypatch):
    """This process with every credential planted (``s3_bucket``'s server; moto accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_AWS)
    settings = {"seisgrid.storage.s3.secret": SECRET_CFG, "seisgrid.storage.s3.key": ACCESS_KEY,
                "seisgrid.storage.s3.max_attempts": 2, "seisgrid.cluster.task_retries": 0}
    with dask.config.set(settings):
        yield s3_bucket


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_storage_failures_show_no_credentials(archive, planted_here, s3_faults, caplog, capsys):
    import traceback

    from seisgrid.seismic.ingest import ingest
    from seisgrid.seismic.store import open_archive

    store = f"{planted_here}/w.zarr"
    printed = {}
    # DEBUG: botocore's and s3fs's own logs too (botocore names the access key id, not a secret, in its signed
    # headers, so the debug records are searched for the secrets only)
    with caplog.at_level(logging.DEBUG):
        ingest(str(archive), store, pattern=SDS, progress=False)
        # the store in an outage: a StorageError, raised and printed
        s3_faults.set(fail_prefix=f"{store.removeprefix('s3://')}/")
        with pytest.raises(StorageError) as caught:
            open_archive(store)
        assert main(["inventory", store, "--json"]) == 1
        printed["inventory in an outage"] = capsys.readouterr()
        # one channel in an outage during an ingest: that task fails (exit 3), named; the rest is written
        again = f"{planted_here}/outage.zarr"
        s3_faults.set(fail_prefix=f"{again.removeprefix('s3://')}/SY.ST01/SY.ST01..BHZ/c")
        assert main(["ingest", str(archive), again, "--pattern", SDS, "--cluster", "none", "--json"]) == 3
        printed["ingest in an outage"] = capsys.readouterr()
        s3_faults.off()
    debug_log = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    caplog.clear()
    # a user:password in the store's URL
    bad = f"s3://{USERINFO}@{planted_here.removeprefix('s3://')}/w.zarr"
    with caplog.at_level(logging.INFO):
        with pytest.raises(StorageError) as caught_url:
            open_archive(bad)
        assert main(["inventory", bad, "--json"]) == 1
        printed["inventory of a user:password URL"] = capsys.readouterr()
    assert str(caught.value).startswith(store) and "failed after 2 attempts" in str(caught.value)
    assert str(caught_url.value).startswith("s3://***@")
    assert f"seisgrid inventory: error: {store}" in printed["inventory in an outage"].err
    (failed,) = json.loads(printed["ingest in an outage"].out.strip().splitlines()[-1])["tasks_failed"]
    assert "StorageError" in failed["error"] and "SY.ST01..BHZ" in printed["ingest in an outage"].out
    assert "seisgrid inventory: error: s3://***@" in printed["inventory of a user:password URL"].err
    outputs = {f"{what} ({stream})": text for what, result in printed.items()
               for stream, text in (("stdout", result.out), ("stderr", result.err))}
    outputs.update({"a StorageError": f"{caught.value}\n{caught.value!r}",
                    "a StorageError's traceback, causes included": "".join(traceback.format_exception(caught.value)),
                    "the StorageError of a user:password URL": f"{caught_url.value}\n{caught_url.value!r}",
                    "the log above DEBUG": "\n".join(r.getMessage() for r in caplog.records),
                    "the objects of a store written in an outage": store_objects(again)})
    for what, text in outputs.items():
        _assert_clean(what, text)
    _assert_clean("the DEBUG log", debug_log, SECRETS)
    assert len(outputs) == 11


PRELOAD = '''
"""Scheduler preload of tests/test_safety.py: every task key, prefix, group and task-stream record, at close."""
import json

from distributed.diagnostics.plugin import SchedulerPlugin


class Names(SchedulerPlugin):
    name = "seisgrid-test-names"

    def __init__(self, scheduler):
        self.scheduler, self.keys, self.prefixes, self.groups = scheduler, set(), set(), set()
        self.stream = scheduler._task_stream_plugin()  # what the dashboard's task stream shows

    def transition(self, key, start, finish, *args, **kwargs):
        self.keys.add(str(key))
        ts = self.scheduler.tasks.get(key)
        if ts is not None:
            self.prefixes.add(str(ts.prefix.name))
            self.groups.add(str(ts.group_key))

    async def close(self):
        prefixes = self.prefixes | set(map(str, self.scheduler.task_prefixes))
        names = {"keys": sorted(self.keys), "prefixes": sorted(prefixes), "groups": sorted(self.groups),
                 "task_stream": [dict(m) for m in self.stream.buffer]}
        with open(OUT, "w") as f:
            json.dump(names, f, default=str)


def dask_setup(scheduler):
    scheduler.add_plugin(Names(scheduler))
'''


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_a_pipeline_on_a_local_cluster_shows_no_credentials(archive, s3_bucket, planted, tmp_path):
    names_file = tmp_path / "scheduler-names.json"
    preload = tmp_path / "names_preload.py"
    preload.write_text(f"OUT = {str(names_file)!r}\n" + textwrap.dedent(PRELOAD))
    env = {**planted, "DASK_DISTRIBUTED__SCHEDULER__PRELOAD": json.dumps([str(preload)])}
    store = f"{s3_bucket}/w.zarr"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(textwrap.dedent(f"""
        name: safety
        cluster: local
        vars: {{output: "{tmp_path / 'out'}", store: "{store}", mirror: "https://{USERINFO}@example.org/archive"}}
        steps:
          - ingest: {{source: "{archive}", store: "{{store}}", pattern: "{SDS}"}}
          - inventory: {{store: "{{store}}"}}
    """))
    out, err = seisgrid(env, "-v", "run", str(pipeline), "--json", expect=0)
    result = json.loads(out.strip().splitlines()[-1])
    assert [s["status"] for s in result["steps"]] == ["done", "done"]
    assert result["vars"]["mirror"] == "https://***@example.org/archive"
    assert "Dask dashboard at http" in err  # the run was on the LocalCluster
    record_text = (tmp_path / "out" / "run-record.json").read_text()
    assert json.loads(record_text)["vars"]["mirror"] == "https://***@example.org/archive"
    names = json.loads(names_file.read_text())
    assert any(k.startswith("write_channel_day-") for k in names["keys"]), names["prefixes"]
    assert "write_channel_day" in names["prefixes"] and names["task_stream"]
    outputs = {"run --json": out, "run -v stderr (with the workers' logs)": err, "run record": record_text,
               "store objects": store_objects(store), "task keys": "\n".join(names["keys"]),
               "task prefixes": "\n".join(names["prefixes"]), "task groups": "\n".join(names["groups"]),
               "task stream": json.dumps(names["task_stream"], default=str)}
    for what, text in outputs.items():
        _assert_clean(what, text)


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_a_failed_pipeline_step_shows_no_credentials(planted_here, tmp_path, capsys):
    failing = tmp_path / "failing.yaml"
    failing.write_text(textwrap.dedent(f'''
        cluster: none
        vars: {{output: "{tmp_path / 'out'}"}}
        steps:
          - inventory: {{store: "s3://{USERINFO}@{planted_here.removeprefix('s3://')}/w.zarr"}}
    '''))
    assert main(["run", str(failing), "--json"]) == 1
    out, err = capsys.readouterr()
    assert "seisgrid run: inventory {'store': 's3://***@" in err and "seisgrid run: error: s3://***@" in err
    record = json.loads((tmp_path / "out" / "run-record.json").read_text())
    assert record["status"] == "failed" and record["steps"][0]["error"].startswith("StorageError: s3://***@")
    _assert_clean("a failed run's stdout and stderr", out + err)
    _assert_clean("a failed run's record", json.dumps(record))


@pytest.mark.s3
@requires_s3fs
@requires_moto
def test_ingest_to_a_user_password_url_shows_no_credentials(archive, planted_here, capsys):
    bad = f"s3://{USERINFO}@{planted_here.removeprefix('s3://')}/x.zarr"
    assert main(["ingest", str(archive), bad, "--pattern", SDS, "--cluster", "none", "--json"]) in (1, 2)
    out, err = capsys.readouterr()
    _assert_clean("ingest to a user:password URL", out + err)
