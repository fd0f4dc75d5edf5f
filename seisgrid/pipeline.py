"""Declarative pipelines: a YAML file names its steps, their arguments and the cluster; ``seisgrid run``.

Example (``pipelines/demo.yaml``)::

    name: demo
    cluster: local
    vars: {output: demo-output}
    steps:
      - synth: {out: "{output}/archive", stations: 3, days: 1}
      - ingest: {source: "{output}/archive", store: "{output}/waveforms.zarr"}

String arguments are formatted with ``vars`` (overridable with ``--set output=/elsewhere``).
"""

from __future__ import annotations

import inspect
import sys

import yaml

from seisgrid.cluster import client_scope
from seisgrid.errors import ConfigError
from seisgrid.ghf.collinearity import vif_report
from seisgrid.ghf.crossval import train_ensemble
from seisgrid.ghf.density import run_density
from seisgrid.ghf.features import build_features
from seisgrid.ghf.heatflow import build_heatflow
from seisgrid.ghf.mapping import build_map
from seisgrid.ghf.pso import search
from seisgrid.seismic.catalog import score
from seisgrid.seismic.detect import detect
from seisgrid.seismic.evaluate import evaluate
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.labelled import build_windows
from seisgrid.seismic.spectrogram import spectrograms
from seisgrid.seismic.store import Archive
from seisgrid.seismic.synth import synthesize
from seisgrid.seismic.train import train


def _inventory(store):
    return Archive(store).inventory()


def _ghf_vif(features, heatflow, png=None, threshold=None):
    return vif_report(features, heatflow, out_png=png, threshold=threshold)


def _ghf_maps(stores, out, variables=None):
    # cartopy is imported only when maps are drawn
    from seisgrid.ghf.maps import plot_stores

    return {"figures": plot_stores(stores, out, variables=variables)}


STEPS = {"synth": synthesize, "ingest": ingest, "inventory": _inventory, "windows": build_windows,
         "spectrograms": spectrograms, "train": train, "evaluate": evaluate, "detect": detect, "score": score,
         "ghf_heatflow": build_heatflow, "ghf_features": build_features, "ghf_vif": _ghf_vif,
         "ghf_maps": _ghf_maps, "ghf_search": search, "ghf_train": train_ensemble, "ghf_density": run_density,
         "ghf_map": build_map}


def _substitute(value, variables: dict):
    """``value`` with ``{var}`` filled in, inside lists too."""
    if isinstance(value, str):
        return value.format(**variables)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    return value


def load(path: str, overrides: dict | None = None) -> dict:
    """Read a pipeline YAML and substitute its ``vars`` into string arguments."""
    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline ({exc})") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list):
        raise ConfigError(f"{path}: a pipeline needs a 'steps' list")
    variables = {**(spec.get("vars") or {}), **(overrides or {})}
    steps = []
    for number, step in enumerate(spec["steps"], 1):
        if not isinstance(step, dict) or len(step) != 1:
            raise ConfigError(f"{path}: step {number} must be one mapping 'name: {{arguments}}'")
        (name, args), = step.items()
        if name not in STEPS:
            raise ConfigError(f"{path}: step {number} {name!r} is not one of {', '.join(STEPS)}")
        args = {k: _substitute(v, variables) for k, v in (args or {}).items()}
        steps.append((name, args))
    return {"name": spec.get("name", path), "cluster": spec.get("cluster"), "vars": variables, "steps": steps}


def run(path: str, cluster=None, overrides: dict | None = None, progress: bool = True) -> dict:
    """Run every step of the pipeline at ``path`` on one cluster; returns each step's result."""
    spec = load(path, overrides)
    results = []
    with client_scope(cluster or spec["cluster"]) as client:
        for name, args in spec["steps"]:
            print(f"seisgrid run: {name} {args}", file=sys.stderr)
            parameters = inspect.signature(STEPS[name]).parameters
            if "client" in parameters:
                args = {**args, "client": client}
            if "progress" in parameters:
                args = {**args, "progress": progress}
            results.append({"step": name, "result": STEPS[name](**args)})
    return {"pipeline": spec["name"], "vars": spec["vars"], "steps": results}
