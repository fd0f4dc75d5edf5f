"""``seisgrid STEP ...``: the command line, built from the step table of :mod:`seisgrid.steps`.

Conventions: human output goes to stderr when ``--json`` is given (else stdout); ``--json`` prints one
JSON object as the last line of stdout. Exit status: 0 done, 3 done with some inputs rejected or tasks failed
(listed in the JSON), 1 failure, 2 usage error (a bad argument or setting; found before any cluster starts),
130 interrupted (Ctrl-C or SIGTERM; the cluster it started is shut down, its batch jobs cancelled).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from seisgrid.steps import EXIT_FAILURE, EXIT_USAGE, Arg, Step, jsonable, registry

DESCRIPTION = ("seisgrid: miniSEED archives → Zarr → earthquake detection, and geothermal heat-flow maps, "
               "on Dask. Every STEP is also a step of `seisgrid run PIPELINE.yaml`.")
CLUSTER_HELP = ("'local' (a LocalCluster sized to this machine), a cluster profile (slurm, pbs, slurm-gpu: "
                "cluster/*.yaml; or PATH.yaml; dask-jobqueue) or a scheduler address such as tcp://127.0.0.1:8786")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _boolean(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


def _add_argument(parser: argparse.ArgumentParser, arg: Arg) -> None:
    kwargs: dict[str, Any] = {"help": arg.help}
    for key in ("nargs", "action", "metavar", "choices", "type"):
        if getattr(arg, key) is not None:
            kwargs[key] = getattr(arg, key)
    if arg.positional:
        parser.add_argument(arg.name, **kwargs)
        return
    if arg.default is not None and not callable(arg.default):
        shown = ",".join(arg.default) if isinstance(arg.default, list) else arg.default
        kwargs["help"] += f" (default: {shown})" if "default:" not in arg.help else ""
    parser.add_argument(_flag(arg.name), dest=arg.name, default=None, required=arg.required, **kwargs)


def _add_option(parser: argparse.ArgumentParser, step: Step, name: str, default, help_text: str) -> None:
    """A ``--flag`` for a key of ``seisgrid.yaml``: default and help from the YAML, type from the default."""
    kwargs: dict[str, Any] = {"default": None, "dest": name, "help": f"{help_text} (default: {default})"}
    if name in step.config_types:
        kwargs["type"] = step.config_types[name]
    elif isinstance(default, bool):
        kwargs["type"] = _boolean
    elif isinstance(default, (int, float)):
        kwargs["type"] = type(default)
    elif isinstance(default, list):
        numeric = default and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default)
        kwargs.update(type=float if numeric else str, nargs="+")
    parser.add_argument(_flag(name), **kwargs)


def _add_step(subparsers, step: Step, name: str) -> None:
    parser = subparsers.add_parser(name, help=step.help, description=step.help)
    for arg in step.args:
        _add_argument(parser, arg)
    for _, option, default, help_text in step.options():
        _add_option(parser, step, option, default, help_text)
    if step.cluster == "lazy":
        parser.add_argument("--cluster", default=None, help=CLUSTER_HELP + "; default: local, started only "
                                                                           "when there is work for it")
    elif step.cluster == "scheduler":
        parser.add_argument("--cluster", default="none", help=CLUSTER_HELP + "; default: none (read here)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    parser.set_defaults(step=step)


def build_parser() -> argparse.ArgumentParser:
    """The ``seisgrid`` argument parser: one subcommand per step (``seisgrid ghf STEP`` for the ``ghf`` group)."""
    parser = argparse.ArgumentParser(prog="seisgrid", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="STEP")
    groups: dict[str, argparse._SubParsersAction] = {}
    for step in registry().values():
        group, _, name = step.name.rpartition(" ")
        if not group:
            _add_step(commands, step, name)
            continue
        if group not in groups:
            members = [s.name.rpartition(" ")[2] for s in registry().values() if s.name.startswith(group + " ")]
            group_parser = commands.add_parser(group, help=f"{group} steps: {', '.join(members)}")
            groups[group] = group_parser.add_subparsers(dest="group_command", required=True,
                                                        metavar=f"{group.upper()}_STEP")
        _add_step(groups[group], step, name)
    return parser


def _emit(step: Step, result: dict, as_json: bool) -> None:
    human = step.describe(result)
    if human:
        print(human, file=sys.stderr if as_json else sys.stdout)
    if as_json:
        shown = {k: v for k, v in result.items() if k not in step.omit}
        print(redact(json.dumps(jsonable(shown), default=str, allow_nan=False)))


def _quiet_distributed(verbose: int) -> None:
    if verbose == 0 and "distributed" not in sys.modules:
        # distributed logs cluster start-up at INFO in this process and in every worker; keep the
        # terminal for progress bars and results unless asked (-v). Workers inherit the environment.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        import dask.config

        dask.config.set({"logging.distributed": os.environ["DASK_LOGGING__DISTRIBUTED"]})


def run_step(step: Step, args: argparse.Namespace) -> int:
    """Run ``step`` with parsed command-line ``args``; print its summary (and JSON); return the exit status."""
    from seisgrid.cluster import client_scope

    values = {name: getattr(args, name) for name in step.keys() if getattr(args, name, None) is not None}
    if step.cluster == "none":
        result = step.call(values)
    else:
        # lazy: validation inside the step happens before any cluster starts; a step with nothing to
        # compute (a rerun of ingest on a finished store) never starts one. "--cluster none": run here.
        with client_scope(args.cluster, lazy=step.cluster == "lazy") as client:
            result = step.call(values, client=client)
    _emit(step, result, args.json)
    return step.status(result)


class _Redact(logging.Filter):
    """Masks credentials in every log record (botocore's DEBUG log prints the access key id)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = urls

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), *self.urls), None
        return True


def redact(text: str, *urls: str) -> str:
    """:func:`seisgrid.storage.redact` (imported when needed: ``seisgrid --help`` stays light)."""
    from seisgrid.storage import redact as mask

    return mask(text, *urls)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a batch job's walltime, ``kill``) ends a command as Ctrl-C does: its cluster is shut down."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seisgrid`` command; returns the exit status."""
    from seisgrid.errors import ConfigError, SeisgridError

    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_distributed(args.verbose)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    name = args.step.name
    if argv is None:  # the command itself, not a call from Python
        _interrupt_on_sigterm()
    urls = [v for v in vars(args).values() if isinstance(v, str) and "://" in v]
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Redact(urls))
    try:
        return run_step(args.step, args)
    except ConfigError as exc:
        print(redact(f"seisgrid {name}: usage error: {exc}", *urls), file=sys.stderr)
        return EXIT_USAGE
    except SeisgridError as exc:
        print(redact(f"seisgrid {name}: error: {exc}", *urls), file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a library's own error: its traceback, without credentials
        import traceback

        print(redact("".join(traceback.format_exception(exc)), *urls), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"seisgrid {name}: interrupted; the cluster was shut down; rerun the same command to resume",
              file=sys.stderr)
        return 130


__all__ = ["build_parser", "main", "run_step"]

if __name__ == "__main__":
    sys.exit(main())
