"""Configuration: commented defaults in ``seisgrid.yaml`` read through :mod:`dask.config`.

Precedence (highest first): explicit arguments / CLI flags > environment variables
``SEISGRID_<SECTION>__<KEY>`` and ``DASK_SEISGRID__...`` > user YAML files that dask.config reads
(``~/.config/dask/``) > the package defaults.
"""

from __future__ import annotations

import copy
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import dask.config
import yaml

DEFAULTS_PATH = pathlib.Path(__file__).with_name("seisgrid.yaml")
ENV_PREFIX = "SEISGRID_"


def _load_defaults() -> dict:
    with open(DEFAULTS_PATH) as f:
        return yaml.safe_load(f)


def _environment_overrides(environ=None) -> dict:
    # dask.config.collect_env only knows the DASK_ prefix: translate SEISGRID_X__Y to DASK_SEISGRID__X__Y.
    environ = os.environ if environ is None else environ
    renamed = {
        "DASK_SEISGRID__" + key[len(ENV_PREFIX):]: value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX)
    }
    return dask.config.collect_env(renamed)


_defaults_registered = False


def refresh(environ: Mapping[str, str] | None = None) -> None:
    """(Re)load the ``seisgrid`` settings: package defaults < user YAML / ``DASK_SEISGRID__*`` < ``SEISGRID_*``.

    The whole ``seisgrid`` namespace is rebuilt, so a second call with another environment does not keep
    values from the first (values set at run time with :func:`dask.config.set` are dropped too).

    Parameters
    ----------
    environ : mapping, optional
        Environment to read instead of :data:`os.environ` (used by tests).
    """
    global _defaults_registered
    environ = os.environ if environ is None else environ
    defaults = _load_defaults()
    if not _defaults_registered:
        # Registered once, so that dask.config.refresh() elsewhere keeps the seisgrid defaults.
        dask.config.update_defaults(defaults)
        _defaults_registered = True
    user = dask.config.collect(env=environ).get("seisgrid") or {}
    fresh = dask.config.merge(defaults, {"seisgrid": user}, _environment_overrides(environ))
    dask.config.config["seisgrid"] = fresh["seisgrid"]


def get(key: str, default: object = None, override: object = None) -> Any:
    """Effective value of ``seisgrid.<key>``; ``override`` (a CLI flag or argument) wins when not None."""
    if override is not None:
        return override
    return dask.config.get(f"seisgrid.{key}", default=default)


def effective() -> dict:
    """The whole effective ``seisgrid`` configuration as a plain dict."""
    return copy.deepcopy(dict(dask.config.get("seisgrid")))


def data_dir() -> pathlib.Path | None:
    """Folder of the real third-party data: ``SEISGRID_DATA``/config, else ``../shared/data`` when it exists."""
    configured = os.environ.get("SEISGRID_DATA") or get("data")
    if configured:
        return pathlib.Path(configured)
    here = pathlib.Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "shared" / "data", pathlib.Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


refresh()


def option_specs(section: str) -> list[tuple[str, object, str]]:
    """``(name, default, help)`` for every key of ``seisgrid.<section>`` in ``seisgrid.yaml``.

    The help text is the key's trailing comment in the YAML, so an option is declared once — in the
    commented defaults file — and the API, the configuration and the CLI all read it from there.
    """
    defaults = _load_defaults()["seisgrid"].get(section) or {}
    helps: dict[str, str] = {}
    inside = False
    with open(DEFAULTS_PATH) as f:
        for line in f:
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if indent == 2 and stripped.startswith(f"{section}:"):
                inside = True
                continue
            if inside and stripped and indent <= 2 and not stripped.startswith("#"):
                break
            if inside and indent == 4 and ":" in stripped and not stripped.startswith("#"):
                key = stripped.split(":", 1)[0]
                helps[key] = stripped.split("#", 1)[1].strip() if "#" in stripped else ""
    return [(key, value, helps.get(key, "")) for key, value in defaults.items()]
