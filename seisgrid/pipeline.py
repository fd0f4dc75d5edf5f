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
unless the file defines ``data`` itself. The whole file is checked — step names, argument names, required arguments —
before the first step runs; the cluster starts when the first step needs one.
"""

from __future__ import annotations

import sys

import yaml

from seisgrid import config
from seisgrid.errors import ConfigError
from seisgrid.steps import pipeline_steps


def _substitute(value, variables: dict):
    """``value`` with ``{var}`` filled in, inside lists too."""
    if isinstance(value, str):
        try:
            return value.format(**variables)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"{value!r}: cannot fill in pipeline variables ({exc!r}); defined: "
                              f"{sorted(variables)}") from exc
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    return value


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
    """
    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list):
        raise ConfigError(f"{path}: a pipeline needs a 'steps' list")
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
            raise ConfigError(f"{path}: step {number} {key!r} is not one of {', '.join(table)}")
        if args is not None and not isinstance(args, dict):
            raise ConfigError(f"{path}: step {number} {key!r}: arguments must be a mapping, not {args!r}")
        try:
            args = {k: _substitute(v, variables) for k, v in (args or {}).items()}
        except ConfigError as exc:
            raise ConfigError(f"{path}: step {number} {key!r}: {exc}") from exc
        try:
            table[key].validate(args)
        except ConfigError as exc:
            raise ConfigError(f"{path}: step {number} {str(exc).removeprefix('step ')}") from exc
        steps.append((key, args))
    return {"name": spec.get("name", path), "cluster": spec.get("cluster"), "vars": variables, "steps": steps}


def run(path: str, cluster: str | None = None, overrides: dict | list | None = None, progress: bool = True) -> dict:
    """Run every step of the pipeline at ``path`` on one cluster.

    Parameters
    ----------
    path : str
        Pipeline YAML file.
    cluster : str or distributed.Client, optional
        ``local`` or a scheduler address (default: the file's ``cluster``, else ``seisgrid.cluster.default``).
        The cluster starts when the first step needs one and is shared by all steps.
    overrides : dict or list of str, optional
        Variables (``--set VAR=VALUE``).
    progress : bool
        Progress bars of the steps.

    Returns
    -------
    dict
        ``pipeline`` (its name), ``vars`` and ``steps``: a list of ``{"step": key, "result": dict}``.
    """
    from seisgrid.cluster import client_scope

    spec = load(path, overrides)
    table = pipeline_steps()
    results = []
    with client_scope(cluster or spec["cluster"], lazy=True) as client:
        for key, args in spec["steps"]:
            print(f"seisgrid run: {key} {args}", file=sys.stderr)
            results.append({"step": key, "result": table[key].call(args, client=client, progress=progress)})
    return {"pipeline": spec["name"], "vars": spec["vars"], "steps": results}


__all__ = ["load", "parse_overrides", "run"]
