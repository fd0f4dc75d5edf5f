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

from seisgrid.errors import ConfigError

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


def read_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """The YAML file at ``path``, read with :func:`yaml.safe_load`.

    Plain data only: tags such as ``!!python/object`` are refused, never run.

    Parameters
    ----------
    path : str or path-like
        A local file.
    what : str
        What the file should be, for messages (e.g. "pipeline", "cluster profile").

    Returns
    -------
    object
        The document (None for an empty file).

    Raises
    ------
    seisgrid.errors.ConfigError
        Naming the file and the problem: it cannot be read, is not UTF-8 text, is not valid YAML (with the
        line and column) or is nested too deeply.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
                          "UTF-8") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: the {what} is not valid YAML ({exc}); fix the place named "
                          "(indent with spaces, not tabs)") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: the {what} is nested too deeply to be a {what}") from exc


def get(key: str, default: object = None, override: object = None) -> Any:
    """Effective value of ``seisgrid.<key>``; ``override`` (a CLI flag or argument) wins when not None."""
    if override is not None:
        return override
    return dask.config.get(f"seisgrid.{key}", default=default)


#: Names of storage options (``seisgrid.storage.<protocol>.<name>``, also inside ``client_kwargs`` and the
#: like) whose values are credentials: never printed, logged or recorded.
CREDENTIAL_KEYS = frozenset({"key", "secret", "token", "password", "session_token", "access_key", "secret_key",
                             "aws_access_key_id", "aws_secret_access_key", "aws_session_token"})


def _credentials(value: Any, found: list[str] | None = None, mask: bool = False) -> Any:
    """``value`` (a storage section) with the credentials masked as ``***`` (``mask``); their values into ``found``."""
    if isinstance(value, Mapping):
        masked = {}
        for k, v in value.items():
            if str(k).lower().replace("-", "_") in CREDENTIAL_KEYS and v is not None and not isinstance(v, Mapping):
                if found is not None:
                    found.append(str(v))
                masked[k] = "***" if mask else v
            else:
                masked[k] = _credentials(v, found, mask)
        return masked
    return value


def credential_values() -> list[str]:
    """The credential values set in ``seisgrid.storage`` (:data:`CREDENTIAL_KEYS`), to mask in messages."""
    found: list[str] = []
    _credentials(get("storage", default={}) or {}, found)
    return found


def effective() -> dict:
    """The whole effective ``seisgrid`` configuration as a plain dict; credentials set in ``storage`` show as ``***``.

    (:data:`CREDENTIAL_KEYS`: ``seisgrid config`` prints this, so a key or secret from the environment or a
    YAML file never reaches a terminal, a log or a ``--json`` consumer.)
    """
    settings = copy.deepcopy(dict(dask.config.get("seisgrid")))
    if isinstance(settings.get("storage"), Mapping):
        settings["storage"] = _credentials(settings["storage"], mask=True)
    return settings


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
