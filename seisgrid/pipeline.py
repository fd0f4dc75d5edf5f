"""Declarative pipelines: a YAML file names its steps, their arguments and the cluster; ``seisgrid run``.

Example (``pipelines/demo.yaml``)::

    name: demo
    cluster: local
    vars: {output: demo-output}
    steps:
      - synth: {out: "{output}/archive", stations: 3, days: 1}
      - ingest: {source: "{output}/archive", store: "{output}/waveforms.zarr"}

A step is any step of :mod:`seisgrid.steps` (``seisgrid ghf map`` is ``ghf_map``); its keys are the
command's argument and option names (``--stride-seconds`` is ``stride_seconds``), so a pipeline step
reads like the command line. String values are formatted with ``vars`` (overridable with ``--set
output=/elsewhere``); ``{data}`` is the real-data folder (``$SEISGRID_DATA``, else ``../shared/data``)
unless the file defines ``data`` itself. The whole file is checked — top-level keys, step names, argument names,
required arguments — before the first step runs; the cluster starts when the first step needs one.

**Resuming.** Every run writes a run record (JSON; ``record:`` in the file, default ``{output}/run-record.json``):
per step its arguments, a fingerprint of them, of seisgrid's version and of the state of its inputs (size and
modification time of every file below an input path), its outputs, status, exit status, timings and summary;
the versions of the main libraries; never settings or credentials. A rerun skips a step that writes outputs
when its previous run finished (exit 0) with the same fingerprint and its outputs exist (a step that only
reads, such as ``inventory``, always runs), so a pipeline stopped at step 5 restarts at step 5; ``--force``
runs every step.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import reprlib
import sys
import time
from collections.abc import Mapping
from typing import Any

import yaml

from seisgrid import config, storage
from seisgrid.errors import ConfigError
from seisgrid.steps import Step, jsonable, pipeline_steps

PIPELINE_KEYS = {"name", "cluster", "vars", "steps", "record"}
RECORD_FORMAT = 1
#: Most values one argument of a pipeline step may hold (YAML aliases can make a short file a huge value).
MAX_ITEMS = 100_000


def _substitute(value, variables: dict):
    """``value`` with ``{var}`` filled in, inside lists too."""
    if isinstance(value, str):
        try:
            return value.format(**variables)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ConfigError(f"{_short(value)}: cannot fill in pipeline variables ({_short(exc)}); defined: "
                              f"{sorted(variables)}") from exc
    if isinstance(value, list):
        if _items(value) > MAX_ITEMS:
            raise ConfigError(f"{_short(value)}: more than {MAX_ITEMS} items (YAML aliases of aliases?)")
        return [_substitute(v, variables) for v in value]
    return value


def _items(value: Any) -> int:
    """Number of values inside ``value`` (lists and mappings, nested), counted up to just past :data:`MAX_ITEMS`."""
    count, stack = 0, [value]
    while stack and count <= MAX_ITEMS:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 160


def _short(value: Any) -> str:
    """``repr(value)``, shortened (YAML aliases can make a value huge)."""
    return _REPR.repr(value)


def _check_top_level(path: str, spec: dict) -> None:
    """Refuse wrong types of ``name``, ``cluster``, ``record`` (text) and ``vars`` (names → plain values)."""
    for key in ("name", "cluster", "record"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ConfigError(f"{path}: '{key}' must be text, not {_short(spec[key])}")
    variables = spec.get("vars") or {}
    if not isinstance(variables, dict):
        raise ConfigError(f"{path}: 'vars' must be a mapping of names to values")
    for name, value in variables.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{path}: vars: {_short(name)} is not a variable name (letters, digits, _)")
        if value is not None and not isinstance(value, (str, int, float)):
            raise ConfigError(f"{path}: vars: {name} must be a plain value (text or a number), not {_short(value)}")


def parse_overrides(items: list[str] | dict | None) -> dict:
    """``["VAR=VALUE", ...]`` (``--set``) as a dict; a dict is returned as it is."""
    if isinstance(items, dict) or items is None:
        return dict(items or {})
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected VAR=VALUE")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value
    return overrides


def load(path: str, overrides: dict | list | None = None) -> dict:
    """Read and check a pipeline YAML; substitute its ``vars`` into string arguments.

    Parameters
    ----------
    path : str
        Pipeline file.
    overrides : dict or list of str, optional
        Variables that replace the file's ``vars`` (``{"output": "/elsewhere"}`` or ``["output=/elsewhere"]``).

    Returns
    -------
    dict
        ``name``, ``cluster``, ``vars`` and ``steps`` (a list of (key, arguments)).

    Raises
    ------
    ConfigError
        The file cannot be read, is not YAML (read with ``yaml.safe_load``: a ``!!python/...`` tag is refused,
        never run), or its keys, steps or arguments are not a pipeline's.
    """
    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the pipeline as "
                          "UTF-8") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply to be a pipeline") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list):
        raise ConfigError(f"{path}: a pipeline needs a 'steps' list")
    unknown = sorted(map(str, set(spec) - PIPELINE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {_short(unknown)}; a pipeline has {sorted(PIPELINE_KEYS)}")
    _check_top_level(path, spec)
    data = config.data_dir()
    builtin = {"data": str(data)} if data is not None else {}
    variables = {**builtin, **(spec.get("vars") or {}), **parse_overrides(overrides)}
    table = pipeline_steps()
    steps = []
    for number, step in enumerate(spec["steps"], 1):
        if not isinstance(step, dict) or len(step) != 1:
            raise ConfigError(f"{path}: step {number} must be one mapping 'name: {{arguments}}'")
        (key, args), = step.items()
        if key not in table:
            raise ConfigError(f"{path}: step {number} {_short(key)} is not one of {', '.join(table)}")
        if args is not None and not isinstance(args, dict):
            raise ConfigError(f"{path}: step {number} {key!r}: arguments must be a mapping, not {_short(args)}")
        try:
            args = {k: _substitute(v, variables) for k, v in (args or {}).items()}
        except ConfigError as exc:
            raise ConfigError(f"{path}: step {number} {key!r}: {exc}") from exc
        try:
            table[key].validate(args)
        except ConfigError as exc:
            raise ConfigError(f"{path}: step {number} {str(exc).removeprefix('step ')}") from exc
        steps.append((key, args))
    if "record" in spec:
        record = _substitute(str(spec["record"]), variables)
    elif "output" in variables:
        record = storage.join(str(variables["output"]), "run-record.json")
    else:
        record = os.path.splitext(os.path.basename(path))[0] + ".run-record.json"
    return {"name": spec.get("name", path), "cluster": spec.get("cluster"), "vars": variables, "steps": steps,
            "record": record}


def _redact(text: str) -> str:
    """``text`` without credentials: user:password parts of URLs, configured keys and secrets (storage.redact)."""
    return storage.redact(text)


def _redacted(value: Any) -> Any:
    """``value`` (variables, arguments) with :func:`_redact` applied to its strings, inside lists and dicts too."""
    if isinstance(value, str):
        return _redact(value)
    if isinstance(value, Mapping):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("seisgrid", "numpy", "dask", "distributed", "zarr", "obspy", "xarray", "torch", "dask-jobqueue",
                 "s3fs"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _path_state(text: str) -> list | None:
    """Size and modification time of everything at or below the path ``text``; None when it is not one."""
    if not text or "\n" in text or len(text) > 4096:
        return None
    try:
        fs, root = storage.filesystem(text)
        if not fs.exists(root):
            return None
        if fs.isdir(root):
            entries = fs.find(root, detail=True)
        else:
            entries = {root: fs.info(root)}
    except Exception:  # noqa: BLE001  (not a path after all: a value such as "stalta" or "2021-01-01")
        return None
    state = []
    for name, info in sorted(entries.items()):
        stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("created")
        state.append([os.path.relpath(name, root) if name != root else "", info.get("size"), str(stamp)])
    return state


def _input_paths(step: Step, args: Mapping[str, Any]) -> dict[str, str]:
    """The argument values of ``step`` that may name inputs (``resnet:PATH`` counts as PATH)."""
    found = {}
    for name, value in args.items():
        if name in step.outputs:
            continue
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, str):
                found[f"{name}[{i}]"] = item.split(":", 1)[1] if re.match(r"^[a-z]+:(?!//)", item) else item
    return found


def fingerprint(step: Step, args: Mapping[str, Any]) -> str:
    """A hash of the step, its arguments, seisgrid's version and the state of its inputs.

    Every input path is listed (size and modification time of each file or object below it), also one an
    earlier step wrote: a file changed by hand between runs is seen. On object storage a listing costs one
    request per 1000 objects.
    """
    from seisgrid import __version__

    inputs = {name: _path_state(path) for name, path in sorted(_input_paths(step, args).items())}
    blob = json.dumps([step.key, jsonable(dict(args)), __version__, inputs], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _outputs_exist(step: Step, args: Mapping[str, Any]) -> bool:
    for name in step.outputs:
        path = args.get(name)
        if not isinstance(path, str):
            continue
        fs, root = storage.filesystem(path)
        if not (fs.exists(root) or fs.glob(root.rstrip("/") + ".*")):  # a prefix: catalog → catalog.xml, .csv
            return False
    return True


def _shrunk(value: Any) -> Any:
    """``value`` for the run record: lists longer than 50 items are counted, not kept."""
    if isinstance(value, dict):
        return {k: _shrunk(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return f"<{len(value)} items>" if len(value) > 50 else [_shrunk(v) for v in value]
    return value


def _write_record(url: str, record: dict) -> None:
    text = _redact(json.dumps(jsonable(record), indent=1, default=str))
    storage.write_bytes(url, text.encode())


def _read_record(url: str) -> dict:
    try:
        previous = storage.read_json(url)
    except (FileNotFoundError, OSError, ValueError):
        return {}
    return previous if isinstance(previous, dict) and previous.get("format") == RECORD_FORMAT else {}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run(path: str, cluster: str | None = None, overrides: dict | list | None = None, progress: bool = True,
        force: bool = False, record: str | None = None) -> dict:
    """Run every step of the pipeline at ``path`` on one cluster; skip those already done (see the module doc).

    Parameters
    ----------
    path : str
        Pipeline YAML file.
    cluster : str or distributed.Client, optional
        ``local``, a cluster profile (``slurm``, ``pbs``, ``PATH.yaml``) or a scheduler address (default:
        the file's ``cluster``, else ``seisgrid.cluster.default``). The cluster starts when the first step
        needs one and is shared by all steps.
    overrides : dict or list of str, optional
        Variables (``--set VAR=VALUE``).
    progress : bool
        Progress bars of the steps.
    force : bool
        Run every step, also those the run record shows done for the same inputs and parameters.
    record : str, optional
        Run record path or URL (default: the file's ``record``, else ``{output}/run-record.json``).

    Returns
    -------
    dict
        ``pipeline`` (its name), ``vars`` (user:password parts of URLs and configured credentials masked),
        ``record`` (its path) and ``steps``: a list of ``{"step": key, "result": dict, "status": "done" |
        "skipped"}``.
    """
    from seisgrid.cluster import client_scope

    spec = load(path, overrides)
    table = pipeline_steps()
    record_url = record or spec["record"]
    previous = [] if force else _read_record(record_url).get("steps", [])
    run_record = {"format": RECORD_FORMAT, "pipeline": spec["name"], "file": os.path.abspath(path),
                  "started": _now(), "versions": _versions(), "vars": spec["vars"],
                  "cluster": str(cluster or spec["cluster"] or config.get("cluster.default", "local")), "steps": []}
    results: list[dict] = []
    t_run = time.perf_counter()
    with client_scope(cluster or spec["cluster"], lazy=True) as client:
        for number, (key, args) in enumerate(spec["steps"]):
            step = table[key]
            fingerprint_now = fingerprint(step, args)
            entry: dict[str, Any] = {"step": key, "args": args, "fingerprint": fingerprint_now, "started": _now(),
                                     "outputs": {n: args[n] for n in step.outputs if isinstance(args.get(n), str)}}
            before = previous[number] if number < len(previous) else {}
            if (entry["outputs"] and before.get("step") == key and before.get("fingerprint") == fingerprint_now
                    and before.get("status") in ("done", "skipped") and before.get("exit_status") == 0
                    and _outputs_exist(step, args)):
                print(f"seisgrid run: {key}: skipped, done before with the same inputs and parameters "
                      f"(run record {_redact(record_url)}; --force runs it again)", file=sys.stderr)
                entry.update(status="skipped", exit_status=0, seconds=0.0, result=before.get("result", {}),
                             done=before.get("done", before.get("started")))
                results.append({"step": key, "result": before.get("result", {}), "status": "skipped"})
            else:
                print(f"seisgrid run: {key} {_redacted(args)}", file=sys.stderr)
                t0 = time.perf_counter()
                try:
                    result = step.call(args, client=client, progress=progress)
                except BaseException as exc:
                    entry.update(status="failed", seconds=round(time.perf_counter() - t0, 3),
                                 error=f"{type(exc).__name__}: {exc}")
                    run_record["steps"].append(entry)
                    run_record.update(finished=_now(), status="failed", seconds=round(time.perf_counter() - t_run, 3))
                    _write_record(record_url, run_record)
                    raise
                status = step.status(result)
                entry.update(status="done", exit_status=status, seconds=round(time.perf_counter() - t0, 3),
                             done=_now(), result=_shrunk({k: v for k, v in result.items() if k not in step.omit}))
                results.append({"step": key, "result": result, "status": "done"})
            run_record["steps"].append(entry)
            _write_record(record_url, run_record)  # after every step: a stopped run resumes from here
    run_record.update(finished=_now(), status="done", seconds=round(time.perf_counter() - t_run, 3))
    _write_record(record_url, run_record)
    return {"pipeline": spec["name"], "vars": _redacted(spec["vars"]), "record": _redact(record_url), "steps": results}


__all__ = ["fingerprint", "load", "parse_overrides", "run"]
