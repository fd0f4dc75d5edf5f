"""``seisgrid STEP ...``: one thin subcommand per pipeline step (parse, call the API, report).

Conventions: human output goes to stderr; ``--json`` prints one JSON object as the last line of
stdout. Exit status: 0 done, 3 done with some inputs rejected (listed in the JSON), 1 failure,
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from seisgrid import config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_options(parser: argparse.ArgumentParser, section: str, skip=(), types=None) -> None:
    """CLI flags for every key of ``seisgrid.<section>``: default and help come from seisgrid.yaml.

    The type follows the default's; ``types`` names it for keys whose default is null.
    """
    for name, default, help_text in config.option_specs(section):
        if name in skip or isinstance(default, dict):  # mappings are set in YAML or the environment only
            continue
        kwargs = {"default": None, "dest": name, "help": f"{help_text} (default: {default})"}
        if types and name in types:
            kwargs["type"] = types[name]
        elif isinstance(default, bool):
            kwargs["type"] = lambda s: s.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            kwargs["type"] = int
        elif isinstance(default, float):
            kwargs["type"] = float
        elif isinstance(default, list):
            numeric = default and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default)
            kwargs.update(type=float if numeric else str, nargs="+")
        parser.add_argument(_flag(name), **kwargs)


def _options(args: argparse.Namespace, section: str) -> dict:
    return {name: getattr(args, name) for name, _, _ in config.option_specs(section) if hasattr(args, name)}


def _common(parser: argparse.ArgumentParser, cluster: bool = True, cluster_default: str = "local") -> None:
    if cluster:
        help_text = ("'local' (a LocalCluster sized to this machine) or a scheduler address such as "
                     "tcp://127.0.0.1:8786" + ("; default: local" if cluster_default == "local" else
                                                "; default: read in this process"))
        parser.add_argument("--cluster", default=None if cluster_default == "local" else "none", help=help_text)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seisgrid", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")

    p = sub.add_parser("config", help="print the effective settings (YAML; --json for JSON)")
    _common(p, cluster=False)

    p = sub.add_parser("synth", help="write a synthetic SDS miniSEED archive with a truth catalog")
    p.add_argument("out", help="output folder or URL (s3://bucket/prefix)")
    _add_config_options(p, "synth")
    _common(p)

    p = sub.add_parser("ingest", help="miniSEED archive → Zarr waveform store (resumable)")
    p.add_argument("source", help="SDS tree, folder, glob or file; local or s3://")
    p.add_argument("store", help="Zarr store path or URL")
    _add_config_options(p, "ingest")
    _common(p)

    p = sub.add_parser("windows", help="labelled 25 s windows (earthquake/noise) from real sets or a store + catalog")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="real labelled-set folder (STEAD HDF5+CSV, PhaseNet npz, SeisBench; detected) or ingested store")
    p.add_argument("out", help="output Zarr store path or URL")
    p.add_argument("--catalog", default=None, help="truth catalog CSV (synth's catalog.csv format) for store sources")
    _add_config_options(p, "windows", types={"catalog_min_snr": float})
    _common(p)

    p = sub.add_parser("spectrograms", help="224×224 log-power spectrograms of a window store (NumPy or torch.stft)")
    p.add_argument("windows", help="labelled-window store (seisgrid windows)")
    p.add_argument("out", help="output Zarr store path or URL")
    _add_config_options(p, "spectrogram", types={"device": str})
    _common(p)

    p = sub.add_parser("evaluate", help="precision/recall/FPR/F1/hours per year of detection methods on the test windows")
    p.add_argument("windows", help="labelled-window store (seisgrid windows)")
    p.add_argument("--spectrograms", default=None, help="spectrogram store of the same windows (seisgrid spectrograms)")
    p.add_argument("--methods", default="stalta,forest", help="comma-separated: stalta, forest (default: both)")
    p.add_argument("--split", default="split_region", choices=["split_region", "split"],
                   help="split column: split_region (cross-region test; default) or split (by event and station)")
    p.add_argument("--out", default=None, help="folder for results.md, pr_curves.png, spectrograms.png and (forest) forest.joblib for detect --method forest")
    p.add_argument("--stride-seconds", type=float, default=None,
                   help="window step assumed for hours per year (default: half the window)")
    _common(p)

    p = sub.add_parser("train", help="train a spectrogram classifier (ResNet) as a task on the cluster → checkpoint")
    p.add_argument("spectrograms", help="spectrogram store (seisgrid spectrograms)")
    p.add_argument("--out", required=True, help="checkpoint path (writes OUT, OUT.json, OUT.png)")
    _add_config_options(p, "train", types={"max_windows": int, "threads": int, "device": str})
    _common(p)

    p = sub.add_parser("detect", help="slide a trained detector over every station-day of a store → picks → events → catalog")
    p.add_argument("store", help="ingested waveform store (seisgrid ingest)")
    p.add_argument("--model", default=None,
                   help="--method model: a checkpoint written by seisgrid train; --method forest: DIR/forest.joblib "
                        "written by seisgrid evaluate --methods forest --out DIR (joblib = pickle: only files you "
                        "made or trust); not used by --method stalta")
    p.add_argument("--method", default="model", choices=["model", "forest", "stalta"],
                   help="model (default): the trained classifier; forest: the Random Forest baseline, through the "
                        "same windows, probabilities store, picks, association and catalog; stalta: the STA/LTA + "
                        "coincidence baseline (settings seisgrid.stalta.archive_*) on the same archive, for the same scoring")
    p.add_argument("--out", required=True, help="catalog path: writes OUT.xml (QuakeML), OUT.csv and OUT.json")
    p.add_argument("--stations", default=None, help="stations CSV (network, station, latitude, longitude) to locate events")
    p.add_argument("--probabilities", default=None, help="probabilities store (default: OUT.probabilities.zarr)")
    p.add_argument("--start", default=None,
                   help="ISO time: windows (stalta: triggers) starting at or after it (default: the store's start); "
                        "windows already computed for the same settings are not computed again")
    p.add_argument("--end", default=None,
                   help="ISO time: windows (stalta: triggers) starting before it (exclusive; default: the store's end)")
    _add_config_options(p, "detect", skip=("score_tolerance_seconds",),
                        types={"threshold": float, "pick_offset_seconds": float, "device": str})
    _common(p)

    p = sub.add_parser("score", help="match a detected catalog to a truth catalog: precision, recall, false/station-day")
    p.add_argument("catalog", help="detected catalog (QuakeML or CSV from seisgrid detect)")
    p.add_argument("truth", help="truth catalog CSV (seisgrid synth's catalog.csv)")
    p.add_argument("--tolerance-seconds", type=float, default=None,
                   help="origin (or first-arrival) times match within this, s (default: detect.score_tolerance_seconds)")
    p.add_argument("--station-days", type=float, default=None,
                   help="station-days searched (default: from the catalog's .json or the archive's archive.json)")
    _common(p, cluster=False)

    p = sub.add_parser("explain", help="per-frequency-band importance of a trained model (band occlusion / IG)")
    p.add_argument("spectrograms", help="spectrogram store (seisgrid spectrograms)")
    p.add_argument("--model", required=True, help="checkpoint written by seisgrid train")
    p.add_argument("--out", default=None, help="folder for band_importance.md/.json/.png")
    _add_config_options(p, "explain", types={"device": str})
    _common(p)

    p = sub.add_parser("models", help="detection architectures and their parameter counts (2 classes)")
    _common(p, cluster=False)

    p = sub.add_parser("inventory", help="channels, spans, gaps and sample counts of a store")
    p.add_argument("store")
    _common(p, cluster_default="none")

    p = sub.add_parser("export", help="write miniSEED for any span of one channel of a store")
    p.add_argument("store")
    p.add_argument("--id", required=True, help="channel id NET.STA.LOC.CHA")
    p.add_argument("--start", required=True, help="ISO time, e.g. 2021-01-01T23:00:00")
    p.add_argument("--end", required=True, help="ISO time (exclusive)")
    p.add_argument("out", help="output .mseed path or URL")
    _common(p, cluster_default="none")

    _add_ghf_parsers(sub)

    p = sub.add_parser("run", help="run a pipeline YAML (e.g. pipelines/demo.yaml)")
    p.add_argument("pipeline")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                   help="override a pipeline variable (repeatable)")
    _common(p)
    return parser


def _add_ghf_parsers(sub) -> None:
    """``seisgrid ghf STEP``: the heat-flow half (compilation, feature grid, collinearity, maps)."""
    ghf = sub.add_parser("ghf", help="geothermal heat flow: heatflow, features, vif, maps, search, train, density, map, compare")
    steps = ghf.add_subparsers(dest="ghf_command", required=True, metavar="GHF_STEP")
    data_help = "folder of the real data (default: $SEISGRID_DATA/ghf, else ../shared/data/ghf)"

    p = steps.add_parser("heatflow", help="IHFC + NGHF + Antarctic heat flow → filtered, quality-weighted 0.5° cells (Zarr)")
    p.add_argument("out", help="output Zarr store path or URL")
    p.add_argument("--data", default=None, help=data_help)
    _add_config_options(p, "heatflow")
    _common(p, cluster=False)

    p = steps.add_parser("features", help="the 0.5° feature grid (kriged continuous features, tectonic classes, volcano indices) → Zarr")
    p.add_argument("out", help="output Zarr store path or URL")
    p.add_argument("--data", default=None, help=data_help)
    p.add_argument("--only", default=None, help="comma-separated feature names to build (default: all)")
    p.add_argument("--resolution", type=float, default=None, help="grid spacing in degrees (default: ghf.resolution, 0.5)")
    _add_config_options(p, "features")
    _add_config_options(p, "kriging")
    _common(p)

    p = steps.add_parser("vif", help="variance inflation factors over the training cells; drop the highest above the threshold")
    p.add_argument("features", help="feature grid store (seisgrid ghf features)")
    p.add_argument("heatflow", help="heat-flow grid store (seisgrid ghf heatflow)")
    p.add_argument("--png", default=None, help="bar chart path or URL (default: FEATURES without .zarr + .vif.png)")
    _add_config_options(p, "vif")
    _common(p, cluster=False)

    p = steps.add_parser("maps", help="global and south-polar maps (PNG) of every variable of grid stores")
    p.add_argument("stores", nargs="+", metavar="STORE", help="grid stores (seisgrid ghf features / heatflow)")
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--variables", default=None, help="comma-separated variable names (default: all)")
    _add_config_options(p, "maps")
    _common(p, cluster=False)
    _add_ghf_model_parsers(steps)


def _add_ghf_model_parsers(steps) -> None:
    """``seisgrid ghf search / train / density / map / compare``: the model half of the heat-flow study."""
    grids = ("features", "feature grid store (seisgrid ghf features)"), ("heatflow", "heat-flow grid store (seisgrid ghf heatflow)")

    def table_command(name, help_text, out_help, search_help=None):
        """A command reading the two grids into the model's table: grids, --out, [--search], the features."""
        p = steps.add_parser(name, help=help_text)
        for grid, grid_help in grids:
            p.add_argument(grid, help=grid_help)
        p.add_argument("--out", required=True, help=out_help)
        if search_help:
            p.add_argument("--search", default=None, help=search_help)
        p.add_argument("--variables", default=None, help="comma-separated features (default: the VIF selection)")
        p.add_argument("--regional-km", default=None,
                       help="comma-separated radii (km) of regional means added for every feature, e.g. 150,300,600 "
                            "(default: seisgrid.ghf.regional_km, none)")
        return p

    p = table_command("search", "particle swarm over the network's 8 hyperparameters, particles as Dask futures",
                      "folder for search.json, convergence.png and the swarm checkpoints (resumable)")
    _add_config_options(p, "pso", types={"particles": int, "max_epochs": int})
    _common(p)

    p = table_command("train", "5-fold CV (random and spatial blocks) of the network with baselines; the ensemble",
                      "folder for the ensemble (model_*.pt, ensemble.json) and crossval.json/.md",
                      "search.json of seisgrid ghf search: train its best hyperparameters")
    _add_config_options(p, "crossval", types={"max_epochs": int})
    _common(p)

    p = table_command("density", "the training-density experiment in the best-sampled 1300 km circle (DNN vs linear)",
                      "folder for density.json and density.png",
                      "search.json of seisgrid ghf search: use its best hyperparameters")
    _add_config_options(p, "density", types={"max_epochs": int})
    _common(p)

    p = steps.add_parser("map", help="Antarctic heat-flow map with uncertainties from the ensemble → Zarr, NetCDF, GeoTIFF, PNG")
    p.add_argument("ensemble", help="ensemble folder (seisgrid ghf train --out)")
    p.add_argument("features", help="feature grid store (seisgrid ghf features)")
    p.add_argument("--out", required=True, help="output Zarr store (NetCDF, GeoTIFF and PNG files are written beside it)")
    p.add_argument("--compare-with", default=None,
                   help="published map to compare with (default: Lösing & Ebbing 2021 in $SEISGRID_DATA/ghf when present)")
    _add_config_options(p, "ghf_map")
    _common(p, cluster=False)

    p = steps.add_parser("compare", help="compare two heat-flow maps (points or grids, any projection with lat/lon)")
    p.add_argument("ours", help="our map (seisgrid ghf map output) or any map")
    p.add_argument("other", help="the other map: CSV/text points, NetCDF/Zarr grid (1-D or 2-D lat/lon) or GeoTIFF")
    p.add_argument("--units", default=None, choices=["mW/m2", "W/m2"], help="units of OTHER (default: detected)")
    p.add_argument("--png", default=None, help="difference map PNG")
    _common(p, cluster=False)


def _run_ghf(args) -> int:
    from seisgrid.errors import SeisgridError

    def names(text):
        return [n.strip() for n in text.split(",") if n.strip()] if text else None

    if args.ghf_command == "heatflow":
        from seisgrid.ghf.heatflow import build_heatflow

        options = {k: v for k, v in _options(args, "heatflow").items() if v is not None}
        result = build_heatflow(args.out, data_dir=args.data, **options)
        human = [f"{'step':<28} {'rows':>8} {'removed':>8}"]
        human += [f"{s['step']:<28} {s['rows']:>8,} {s['removed']:>8,}" for s in result["steps"]]
        human.append(f"{result['cells']:,} cells of {args.out}: mean {result['mean']:.1f}, sd {result['sd']:.1f} mW/m² "
                     f"(study: ~10,000 cells, 63.7 ± 25.3)")
        _emit(result, args.json, "\n".join(human))
        return EXIT_REJECTED if result["rejected"]["total"] else EXIT_OK
    if args.ghf_command == "features":
        from seisgrid.ghf.features import build_features

        options = {k: v for k, v in {**_options(args, "features"), **_options(args, "kriging")}.items() if v is not None}
        with _client(args, lazy=True) as client:
            result = build_features(args.out, data_dir=args.data, res=args.resolution, client=client,
                                    features=names(args.only), **options)
        human = [f"{v['name']:<26} {v['seconds']:>7.1f} s  {v['min']:>10.4g} … {v['max']:<10.4g} {v['units']:<8} {v['method']}"
                 for v in result["variables"]]
        human.append(f"feature grid written to {result['out']}")
        _emit(result, args.json, "\n".join(human))
        return EXIT_OK
    if args.ghf_command == "vif":
        from seisgrid.ghf.collinearity import vif_report

        png = args.png or str(args.features).rstrip("/").removesuffix(".zarr") + ".vif.png"
        result = vif_report(args.features, args.heatflow, out_png=png, threshold=args.threshold)
        human = [f"VIF over {result['n_cells']:,} training cells", f"{'feature':<26} {'initial':>10} {'final':>10}"]
        for name, value in result["initial"].items():
            final = result["final"].get(name)
            human.append(f"{name:<26} {value:>10.2f} {'dropped' if final is None else format(final, '.2f'):>10}")
        human.append("dropped (in order): " + (", ".join(d["feature"] for d in result["dropped"]) or "none"))
        human.append(f"chart: {result['png']}")
        _emit(result, args.json, "\n".join(human))
        return EXIT_OK
    if args.ghf_command == "maps":
        from seisgrid.ghf.maps import plot_stores

        import dask.config

        options = {f"seisgrid.maps.{k}": v for k, v in _options(args, "maps").items() if v is not None}
        with dask.config.set(options):  # the plotting functions read their settings from the configuration
            paths = plot_stores(args.stores, args.out, variables=names(args.variables))
        _emit({"figures": paths}, args.json, "\n".join(paths))
        return EXIT_OK
    if args.ghf_command == "search":
        from seisgrid.ghf.pso import search

        options = {k: v for k, v in _options(args, "pso").items() if v is not None}
        with _client(args) as client:
            result = search(args.features, args.heatflow, args.out, client=client, variables=names(args.variables),
                            regional_km=args.regional_km, **options)
        human = [f"c1={c['c1']} c2={c['c2']} m={c['particles']}: best validation RMSE {c['best_rmse']:.2f} mW/m²"
                 for c in result["configurations"]]
        human.append(f"best: {result['best_rmse']:.2f} mW/m² with {result['best']} (study: 19.65–19.94)")
        human.append(f"convergence: {result['figure']}")
        _emit(result, args.json, "\n".join(human))
        return EXIT_OK
    if args.ghf_command == "train":
        from seisgrid.ghf.crossval import train_ensemble

        options = {k: v for k, v in _options(args, "crossval").items() if v is not None}
        with _client(args) as client:
            result = train_ensemble(args.features, args.heatflow, args.out, search=args.search, client=client,
                                    variables=names(args.variables), regional_km=args.regional_km,
                                    **options)
        _emit(result, args.json, result.get("markdown") or json.dumps(result["table"], indent=1))
        return EXIT_OK
    if args.ghf_command == "density":
        from seisgrid.ghf.density import run_density

        options = {k: v for k, v in _options(args, "density").items() if v is not None}
        with _client(args) as client:
            result = run_density(args.features, args.heatflow, args.out, search=args.search, client=client,
                                 variables=names(args.variables), regional_km=args.regional_km,
                                    **options)
        roi = result["roi"]
        human = [f"ROI: {roi['radius_km']:g} km around {roi['centre_lat']:.2f}°N {roi['centre_lon']:.2f}°E, {roi['n_cells']} cells"]
        human += [f"{r['fraction']:>4.0%} {r['method']:<8} R² {r['r2_mean']:.3f} ± {r['r2_sd']:.3f}  "
                  f"NRMSE {r['nrmse_mean']:.3f} ± {r['nrmse_sd']:.3f}" for r in result["rows"]]
        human.append(f"figure: {result['figure']}")
        _emit(result, args.json, "\n".join(human))
        return EXIT_OK
    if args.ghf_command == "map":
        from seisgrid.ghf.mapping import build_map

        options = {k: v for k, v in _options(args, "ghf_map").items() if v is not None}
        result = build_map(args.ensemble, args.features, args.out, compare_with=args.compare_with, **options)
        human = [f"Antarctic map: {result['n_cells']:,} cells, {result['min']:.1f}–{result['max']:.1f} mW/m², "
                 f"mean {result['mean']:.1f}, mean total uncertainty {result['uncertainty_mean']:.1f} mW/m² "
                 "(study: 20–110, mean 65.6)"]
        comparison = result.get("comparison")
        if comparison:
            human.append(f"against {comparison.get('other', 'the published map')}: n {comparison['n']}, correlation "
                         f"{comparison['correlation']:.2f}, RMS difference {comparison['rms_difference']:.1f}, "
                         f"mean difference {comparison['mean_difference']:+.1f} mW/m²")
        human += [f"  {name}: {path}" for name, path in result["outputs"].items()]
        _emit(result, args.json, "\n".join(human))
        return EXIT_OK
    if args.ghf_command == "compare":
        from seisgrid.ghf.mapping import compare

        result = compare(args.ours, args.other, units=args.units, out_png=args.png)
        _emit(result, args.json, f"n {result['n']}, correlation {result['correlation']:.3f}, RMS difference "
                                  f"{result['rms_difference']:.2f}, mean difference {result['mean_difference']:+.2f} mW/m²")
        return EXIT_OK
    raise SeisgridError(f"unknown ghf step {args.ghf_command}")


def _strict_json(value):
    """``value`` with non-finite floats as null: strict JSON (``json.dumps`` would write Infinity/NaN)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def _emit(result: dict, as_json: bool, human: str | None = None) -> None:
    if human:
        print(human, file=sys.stderr if as_json else sys.stdout)
    if as_json:
        print(json.dumps(_strict_json(result), default=str, allow_nan=False))


def _describe_inventory(inv: dict) -> str:
    lines = [f"{inv['store']}: {len(inv['channels'])} channels, {inv['samples']:,} samples"]
    for c in inv["channels"]:
        lines.append(f"  {c['id']:<18} {c['sampling_rate']:>7g} Hz {c['dtype']:<7} {c['start']} → {c['end']}"
                     f"  {c['samples']:>12,} samples  {len(c['gaps'])} gaps")
    return "\n".join(lines)


def _describe_windows(r: dict) -> str:
    lines = [f"{r['windows']} windows written to {r['out']}: {r['labels']}"]
    for name in ("sources", "splits", "split_region"):
        lines.append(f"  {name}: {r[name]}")
    if r["skipped"]:
        reasons = sorted(r["skipped_reasons"].items(), key=lambda kv: -kv[1])
        shown = "; ".join(f"{n} × {reason}" for reason, n in reasons[:5])
        lines.append(f"  skipped {len(r['skipped'])} records: {shown}" + (" ..." if len(reasons) > 5 else ""))
    return "\n".join(lines)


def _describe_ingest(r: dict) -> str:
    lines = [f"ingested {r['source']} → {r['store']} in {r['seconds']:.1f} s: {r['files_ok']}/{r['files_found']} "
             f"files ok ({r['files_skipped']} unchanged), {r['tasks_run']} channel-days written, "
             f"{r['tasks_skipped']} up to date, {r['samples_written']:,} samples, {r['gaps']} gaps, "
             f"{r['overlaps']} overlaps ({r['conflicting_samples']} conflicting samples)"]
    for f in r["files_failed"]:
        lines.append(f"  FAILED {f['path']}: {f['reason']}")
    for f in r["files_warned"]:
        lines.append(f"  WARNING {f['path']}: {f['reason']}")
    return "\n".join(lines)


def _client(args, **kwargs):
    """The command's cluster; ``--cluster none`` (default of the read-only commands): no cluster."""
    import contextlib

    from seisgrid.cluster import client_scope

    if args.cluster == "none":
        return contextlib.nullcontext(None)
    return client_scope(args.cluster, **kwargs)


def _run(args) -> int:
    from seisgrid.errors import SeisgridError

    if args.command == "ghf":
        return _run_ghf(args)
    if args.command == "config":
        import yaml

        settings = config.effective()
        _emit({"seisgrid": settings}, args.json, None if args.json else yaml.safe_dump({"seisgrid": settings}, sort_keys=False).rstrip())
        return EXIT_OK
    if args.command == "synth":
        from seisgrid.seismic.synth import synthesize

        with _client(args) as client:
            result = synthesize(args.out, client=client, **_options(args, "synth"))
        _emit(result, args.json, f"synthetic archive written to {result['out']} ({result['files']} files, "
                                  f"{result['events']} events; truth: {result['catalog']})")
        return EXIT_OK
    if args.command == "ingest":
        from seisgrid.seismic.ingest import ingest

        options = _options(args, "ingest")
        options["format"] = options.pop("format", None)
        with _client(args, lazy=True) as client:  # a rerun with nothing to do starts no cluster
            result = ingest(args.source, args.store, client=client, **options)
        _emit(result, args.json, _describe_ingest(result))
        return EXIT_REJECTED if result["files_failed"] or result["bytes_unread"] else EXIT_OK
    if args.command == "windows":
        from seisgrid.seismic.labelled import build_windows

        options = {k: v for k, v in _options(args, "windows").items() if v is not None}
        with _client(args, lazy=True) as client:
            result = build_windows(args.sources, args.out, catalog=args.catalog, client=client, **options)
        _emit(result, args.json, _describe_windows(result))
        return EXIT_OK
    if args.command == "spectrograms":
        from seisgrid.seismic.spectrogram import spectrograms

        options = {k: v for k, v in _options(args, "spectrogram").items() if v is not None}
        with _client(args) as client:
            result = spectrograms(args.windows, args.out, client=client, **options)
        _emit(result, args.json, f"{result['windows']} spectrograms ({result['method']} on {result['device']}) "
                                  f"written to {result['output']} in {result['seconds']:.1f} s")
        return EXIT_OK
    if args.command == "evaluate":
        from seisgrid.seismic.evaluate import evaluate

        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        with _client(args, lazy=True) as client:
            result = evaluate(args.windows, args.spectrograms, methods=methods, split=args.split, client=client,
                              out_dir=args.out, stride_seconds=args.stride_seconds)
        _emit(result, args.json, result["table"])
        return EXIT_OK
    if args.command == "train":
        from seisgrid.seismic.train import train

        options = {k: v for k, v in _options(args, "train").items() if v is not None}
        with _client(args) as client:
            result = train(args.spectrograms, out=args.out, client=client, **options)
        _emit(result, args.json, f"trained {result.get('arch', '')} for {result['epochs_run']} epochs (best {result['best_epoch']}), "
                                  f"threshold {result['threshold']:.3f}; checkpoint {result['checkpoint']}")
        return EXIT_OK
    if args.command == "detect" and args.method == "stalta":
        from seisgrid.seismic.catalog import from_stalta, write_catalog
        from seisgrid.seismic.stalta import detect_archive

        with _client(args) as client:
            triggers, info = detect_archive(args.store, args.start, args.end, client=client, return_info=True)
        events = from_stalta(triggers)
        # one channel per station and component letter (seisgrid.stalta.components, Z): tasks = station-days
        info["station_days"] = info["tasks"]
        paths = write_catalog(events, args.out, summary={"method": "stalta", **info}, method="stalta")
        result = {"method": "stalta", "n_events": len(events), "catalog": paths, **info}
        _emit(result, args.json, f"{len(events)} STA/LTA coincidence events; catalog {paths}")
        return EXIT_OK
    if args.command == "detect":
        from seisgrid.seismic.detect import detect

        if not args.model:
            raise SeisgridError(f"seisgrid detect: --method {args.method} needs --model (a checkpoint of seisgrid "
                                "train, or DIR/forest.joblib of seisgrid evaluate --out DIR for --method forest)")
        options = {k: v for k, v in _options(args, "detect").items() if v is not None}
        with _client(args) as client:
            result = detect(args.store, args.model, args.out, stations=args.stations,
                            probabilities_url=args.probabilities, start=args.start, end=args.end,
                            client=client, method=args.method, **options)
        _emit(result, args.json, f"{result['n_events']} events from {result['picks']} picks in {result['station_days']} station-days ({result['tasks_run']} run, "
                                  f"{result['tasks_skipped']} up to date); catalog {result['catalog']}")
        return EXIT_OK
    if args.command == "score":
        from seisgrid.seismic.catalog import score

        result = score(args.catalog, args.truth, tolerance_seconds=args.tolerance_seconds,
                       station_days=args.station_days)
        def fmt(x):
            return "—" if x is None else format(x, ".3f")

        human = [f"precision {fmt(result['precision'])}, recall {fmt(result['recall'])}, "
                 f"false detections per station-day {fmt(result['false_per_station_day'])}"]
        human += [f"  SNR {b['snr_min']}–{b['snr_max'] if b['snr_max'] is not None else '∞'}: recall "
                  f"{fmt(b['recall'])} of {b['n']}"
                  for b in result["recall_by_snr"]]
        _emit({k: v for k, v in result.items() if k != "matches"}, args.json, "\n".join(human))
        return EXIT_OK
    if args.command == "explain":
        from seisgrid.seismic.attribution import explain

        options = {k: v for k, v in _options(args, "explain").items() if v is not None}
        with _client(args, lazy=True) as client:
            result = explain(args.model, args.spectrograms, args.out, client=client, **options)
        _emit(result, args.json, result["table_markdown"])
        return EXIT_OK
    if args.command == "models":
        from seisgrid.seismic.models import list_models

        rows = list_models()
        _emit({"models": rows}, args.json, "\n".join(f"{r['arch']:<10} {r['parameters']:>12,} parameters" for r in rows))
        return EXIT_OK
    if args.command == "inventory":
        from seisgrid.seismic.store import Archive

        with _client(args):  # reads are small; a given cluster is used as the default scheduler
            inv = Archive(args.store).inventory()
        _emit(inv, args.json, _describe_inventory(inv))
        return EXIT_OK
    if args.command == "export":
        from seisgrid.seismic.store import Archive

        with _client(args):
            result = Archive(args.store).export(args.id, args.start, args.end, args.out)
        _emit(result, args.json, f"wrote {result['traces']} traces, {result['samples']:,} samples to {result['path']}")
        return EXIT_OK
    if args.command == "run":
        from seisgrid.pipeline import run

        overrides = {}
        for item in args.set:
            if "=" not in item:
                raise SystemExit(f"seisgrid run: --set {item!r}: expected VAR=VALUE")
            key, value = item.split("=", 1)
            overrides[key] = value
        result = run(args.pipeline, cluster=args.cluster, overrides=overrides)
        human = [f"pipeline {result['pipeline']} done; outputs:"]
        for step in result["steps"]:
            r = step["result"]
            if step["step"] == "inventory":
                human.append(_describe_inventory(r))
            elif step["step"] == "ingest":
                human.append(_describe_ingest(r))
            elif step["step"] == "synth":
                human.append(f"synthetic archive: {r['out']} (truth catalog {r['catalog']})")
            elif step["step"] == "windows":
                human.append(_describe_windows(r))
            elif step["step"] == "spectrograms":
                human.append(f"spectrograms: {r['output']} ({r['windows']} windows, {r['method']})")
            elif step["step"] == "train":
                human.append(f"detector: {r['checkpoint']} ({r['arch']}, {r['epochs_run']} epochs, training curves {r['figure']})")
            elif step["step"] == "detect":
                human.append(f"catalog: {r['catalog']} ({r['n_events']} events from {r['picks']} picks)")
            elif step["step"] == "score":
                human.append(f"scored against the truth: precision {r['precision']}, recall {r['recall']}, "
                             f"false detections per station-day {r['false_per_station_day']}")
            elif step["step"] == "ghf_heatflow":
                human.append(f"heat-flow grid: {r['out']} ({r['cells']:,} cells, {r['mean']:.1f} ± {r['sd']:.1f} mW/m²)")
            elif step["step"] == "ghf_features":
                human.append(f"feature grid: {r['out']} ({len(r['variables'])} variables)")
            elif step["step"] == "ghf_vif":
                human.append(f"VIF: kept {', '.join(r['final'])}; dropped "
                             f"{', '.join(d['feature'] for d in r['dropped']) or 'none'} (chart {r['png']})")
            elif step["step"] == "ghf_maps":
                human.append(f"maps: {len(r['figures'])} PNG files, e.g. {r['figures'][0] if r['figures'] else '-'}")
            elif step["step"] == "ghf_search":
                human.append(f"PSO search: best validation RMSE {r['best_rmse']:.2f} mW/m² ({r['json']})")
            elif step["step"] == "ghf_train":
                human.append(f"ensemble and cross-validation: {r['out']}\n" + (r.get("markdown") or ""))
            elif step["step"] == "ghf_density":
                human.append(f"training-density experiment: {r['figure']}")
            elif step["step"] == "ghf_map":
                human.append(f"Antarctic map: {r['outputs']} (mean {r['mean']:.1f} mW/m²)")
            elif step["step"] == "evaluate":
                human.append("evaluation on the held-out windows:\n" + r["table"]
                             + "".join(f"\n  figure: {f}" for f in r["figures"]))
        _emit(result, args.json, "\n".join(human))
        failed = any(s["step"] == "ingest" and s["result"]["files_failed"] for s in result["steps"])
        return EXIT_REJECTED if failed else EXIT_OK
    raise AssertionError(args.command)


def main(argv=None) -> int:
    from seisgrid.errors import SeisgridError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose == 0 and "distributed" not in sys.modules:
        # distributed logs cluster start-up at INFO in this process and in every worker; keep the
        # terminal for progress bars and results unless asked (-v). Workers inherit the environment.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        import dask.config

        dask.config.set({"logging.distributed": os.environ["DASK_LOGGING__DISTRIBUTED"]})
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except SeisgridError as exc:
        print(f"seisgrid {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"seisgrid {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
