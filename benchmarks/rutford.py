"""Experiment: every archive detector over the real Rutford ice-stream records (no catalog: rates and a figure).

The data (``$SEISGRID_DATA/seismic/rutford-icestream``: 2009-01-21 04:00–04:30 UTC, 10 stations × 3
components at 1000 Hz, 7 stations under network ``ZZ`` and 3 under ``YG``, isolated zero samples) are
ingested as they are into a waveform store; then, on one LocalCluster (``--workers`` processes),

1. **STA/LTA**: ``detect --method stalta`` with the package settings (``seisgrid.stalta.archive_*``:
   recursive 0.5 s / 10 s in 10–20 Hz, on 3.5 / off 1, coincidence of 3 stations; dropouts removed);
2. **Random Forest**: ``detect --method forest`` with a forest saved by ``seisgrid evaluate --out``;
3. **eqt**: ``detect --method eqt`` with EQTransformer's ``--eqt`` weights (default ``pnw``; needs the
   ``peers`` extra), its threshold 0.5 (``peers.eqt_threshold``), through the same tasks;
4. **model**: ``detect`` with a classifier checkpoint (``--model``, e.g. the final ResNet). Without
   ``--model`` / ``--forest`` both are made here from the shared labelled sets (STEAD sample, PhaseNet
   NCEDC, SeisBench IPOC dummy): ``seisgrid windows`` → ``spectrograms`` → ``evaluate --methods forest
   --out`` (the forest) and ``train --arch tiny --split split_region`` (a 47 k-parameter net, a few CPU
   minutes: a stand-in, not the study's ResNet), reused from ``--workdir`` when there.

Model and forest run at their trained rate (100 Hz): ``detect`` reads the 1000 Hz store and resamples
each task's span on the fly; stations are located with ``Stations_Rutford.txt`` (matched on the station
code, since the files say ZZ/YG). There is no catalog, so per method the result gives **events per hour**
(network events ÷ the 0.5 h of record), **station triggers per hour** (STA/LTA: single-station triggers;
model/forest: station picks, i.e. runs of ≥ ``min_windows`` windows above the threshold), per
station-hour too, the station-days (data time) and the wall seconds. A figure shows a sample of the
model's events (Z, ±10 s around each event's first arrival, on its nearest stations, 2 Hz high-pass,
each trace scaled to its maximum, picks marked) to inspect by eye, filled up with the model's
highest-P windows (at least a window apart) when it has fewer events than ``--sample``:
``benchmarks/results/rutford-events.png``. Each method runs cold (its catalog folder is removed first).

Writes ``benchmarks/results/rutford.json`` (``--quick``: ``rutford-quick.json``, the first 10 minutes).

Usage (from the repository root; about 6 minutes on 2 shared cores: 3 to make the windows, forest and tiny
net, 2.5 for the three detectors; with ``--model`` and ``--forest`` given, the detectors only)::

    python benchmarks/rutford.py --workdir /tmp/rutford
    python benchmarks/rutford.py --workdir /tmp/rutford --model resnet50.pt --forest evaluation/forest.joblib
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, log, provenance, work_folder, write_result

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

START = "2009-01-21T04:00:00"
SETS = ("stead-eqt-sample", "phasenet-ncedc", "seisbench-ipoc-dummy")


def _seisgrid(*args: str) -> None:
    """Run a seisgrid command in a subprocess (its own cluster: none), failing loudly."""
    cmd = [sys.executable, "-c", "import sys; from seisgrid.cli import main; sys.exit(main())", *args,
           "--cluster", "none"]
    log("$ seisgrid " + " ".join(args))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in (0, 3):
        raise SystemExit(f"seisgrid {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def detectors(workdir: Path, data: Path, model: str | None, forest: str | None) -> tuple[str, str, dict]:
    """``(model, forest, seconds)``: the given files, or a tiny net and a forest made here (reused)."""
    seconds: dict = {}
    if model and forest:
        return model, forest, seconds
    windows, spec = workdir / "windows.zarr", workdir / "spectrograms.zarr"
    t0 = time.perf_counter()
    if not windows.exists():
        # the three first sets with the regions they were measured on (the defaults hold out northern
        # California, whose PhaseNet windows are all the noise these sets have)
        _seisgrid("windows", *(str(data / s) for s in SETS), str(windows), "--test-regions",
                  "southern-california,northern-chile", "--test-networks", "BG,NN")
    if not spec.exists():
        _seisgrid("spectrograms", str(windows), str(spec))
    seconds["windows_and_spectrograms"] = round(time.perf_counter() - t0, 1)
    if not forest:
        forest = str(workdir / "evaluation" / "forest.joblib")
        if not Path(forest).exists():
            t0 = time.perf_counter()
            _seisgrid("evaluate", str(windows), "--spectrograms", str(spec), "--methods", "forest", "--out",
                      str(workdir / "evaluation"))
            seconds["forest"] = round(time.perf_counter() - t0, 1)
    if not model:
        model = str(workdir / "tiny.pt")
        if not Path(model).exists():
            t0 = time.perf_counter()
            _seisgrid("train", str(spec), "--arch", "tiny", "--split", "split_region", "--epochs", "15",
                      "--patience", "5", "--out", model)
            seconds["train_tiny"] = round(time.perf_counter() - t0, 1)
    return model, forest, seconds


def _rates(result: dict, hours: float, station_hours: float) -> dict:
    n, trig = int(result["n_events"]), int(result["station_triggers"])
    return {"events": n, "events_per_hour": round(n / hours, 2), "station_triggers": trig,
            "triggers_per_hour": round(trig / hours, 2), "triggers_per_station_hour": round(trig / station_hours, 2),
            "station_days": result["station_days"], "seconds": result["seconds"],
            "warnings": result.get("warnings", [])}


def sample_events(events: list[dict], n: int) -> list[dict]:
    """``n`` events spread evenly over the list (time order), all when fewer."""
    if len(events) <= n:
        return list(events)
    return [events[i] for i in np.linspace(0, len(events) - 1, n).round().astype(int)]


def event_panels(events: list[dict], coords: dict) -> list[dict]:
    """Figure panels of events: centred on the first arrival, picks marked, stations nearest the origin."""
    import obspy

    panels = []
    for ev in events:
        picks = {p["station"]: obspy.UTCDateTime(p["time"]) for p in ev["picks"]}
        first = min(picks, key=lambda s: picks[s])
        located = ev.get("latitude") is not None
        panels.append({"t0": obspy.UTCDateTime(ev["first_arrival"]), "picks": picks,
                       "near": (ev["latitude"], ev["longitude"]) if located else coords.get(first),
                       "title": f"event {str(ev['first_arrival'])[11:22]}  {ev['n_stations']} stations  "
                                f"P={ev.get('probability') or 0:.2f}" + ("  located" if located else "")})
    return panels


def top_window_panels(probabilities: str, coords: dict, n: int, window_seconds: float = 25.0) -> list[dict]:
    """Figure panels of the ``n`` highest-P windows (at least a window apart), centred on each window."""
    import obspy
    import zarr

    root = zarr.open_group(probabilities, mode="r")
    found = []
    for station in (k for k in root.keys() if not k.startswith("_")):
        for day in root[station].keys():
            arr = root[station][day]
            p = arr[:]
            start, stride = obspy.UTCDateTime(arr.attrs["start"]), float(arr.attrs["stride_seconds"])
            found += [(float(p[k]), start + k * stride, station) for k in np.flatnonzero(np.isfinite(p))]
    panels: list[dict] = []
    for prob, t, station in sorted(found, key=lambda x: -x[0]):
        if len(panels) == n:
            break
        if any(abs(t + window_seconds / 2 - q["t0"]) < window_seconds for q in panels):
            continue
        panels.append({"t0": t + window_seconds / 2, "picks": {}, "near": coords.get(station), "first": station,
                       "title": f"window {str(t)[11:19]} at {station}  P={prob:.2f} (highest P, no event)"})
    return panels


def events_figure(store: str, panels: list[dict], coords: dict, path: Path, per_panel: int = 4) -> str:
    """Z waveforms ±10 s around each panel's time on its nearest stations (2 Hz high-pass), picks in red."""
    from seisgrid import figures
    from seisgrid.seismic.stationdata import despike, station_channels
    from seisgrid.seismic.store import Archive

    archive = Archive(store)
    zs = {k: v["Z"] for k, v in station_channels(archive, "Z").items()}
    cols = 2
    rows = max(1, math.ceil(len(panels) / cols))
    fig = figures.new_figure((7.0 * cols, 2.8 * rows))
    fig.subplots_adjust(hspace=0.5)
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        t0, picks, near_to = panel["t0"], panel["picks"], panel["near"]

        def distance(station: str, near_to=near_to) -> float:
            if near_to is None or station not in coords:
                return math.inf
            lat, lon = coords[station]
            return math.hypot(lat - near_to[0], (lon - near_to[1]) * math.cos(math.radians(lat)))

        near = sorted(zs, key=lambda s: (s not in picks and s != panel.get("first"), distance(s)))[:per_panel]
        for row, station in enumerate(near):
            for tr in archive.stream(zs[station], t0 - 10, t0 + 10):
                tr.data = tr.data.astype(np.float64)
                despike(tr.data, 10.0)
                tr.detrend("demean")
                tr.filter("highpass", freq=2.0)
                y = tr.data / (np.abs(tr.data).max() or 1.0)
                ax.plot(tr.times() + (tr.stats.starttime - t0), row + 0.45 * y, lw=0.4, color="k")
            if station in picks:
                ax.plot([picks[station] - t0] * 2, [row - 0.5, row + 0.5], color="tab:red", lw=1.0)
        ax.set_yticks(range(len(near)), near, fontsize=7)
        ax.set_xlim(-10, 10)
        ax.set_title(panel["title"], fontsize=8)
        ax.tick_params(labelsize=7)
    if not panels:
        fig.add_subplot(1, 1, 1).set_title("nothing to show")
    fig.supxlabel("s from the event's first arrival (red: picks) or from the window's centre", fontsize=8)
    return figures.save_png(fig, str(path))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="classifier checkpoint (default: a tiny net trained here)")
    parser.add_argument("--forest", default=None, help="forest.joblib of seisgrid evaluate --out (default: made here)")
    parser.add_argument("--methods", default="stalta,forest,eqt,model",
                        help="comma-separated, of stalta,forest,eqt,model")
    parser.add_argument("--eqt", default="pnw", help="EQTransformer weights for method eqt (default pnw)")
    parser.add_argument("--quick", action="store_true", help="the first 10 minutes only")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    parser.add_argument("--sample", type=int, default=8, help="model events in the figure (default 8)")
    parser.add_argument("--workdir", default=None, help="folder for the store, detectors, catalogs (reused)")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/rutford[-quick].json)")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    import obspy

    from seisgrid import config
    from seisgrid.cluster import client_scope
    from seisgrid.seismic.detect import detect
    from seisgrid.seismic.ingest import ingest
    from seisgrid.seismic.stationdata import station_channels, station_coordinates
    from seisgrid.seismic.store import Archive

    data = config.data_dir()
    rutford = data / "seismic" / "rutford-icestream" if data else None
    if rutford is None or not rutford.exists():
        raise SystemExit("the Rutford records are not there: set SEISGRID_DATA (seismic/rutford-icestream)")
    end = str(obspy.UTCDateTime(START) + (600 if args.quick else 1800))
    hours = (obspy.UTCDateTime(end) - obspy.UTCDateTime(START)) / 3600.0
    with work_folder(args.workdir, "seisgrid-rutford-") as workdir:
        store = str(workdir / "rutford.zarr")
        t0 = time.perf_counter()
        ingest(str(rutford / "2009"), store, progress=False)
        ingest_s = round(time.perf_counter() - t0, 1)
        groups = station_channels(Archive(store))
        stations_file = str(rutford / "Stations_Rutford.txt")
        coords = station_coordinates(stations_file, groups)
        station_hours = len(groups) * hours
        model, forest, prep = (None, None, {})
        if {"forest", "model"} & set(methods):
            model, forest, prep = detectors(workdir, data / "seismic", args.model, args.forest)
        runs: dict = {}
        model_events: list = []
        with client_scope("local", quiet=True, n_workers=args.workers, dashboard_address=":0") as client:
            for method in methods:
                shutil.rmtree(workdir / "catalogs" / method, ignore_errors=True)  # a cold run: nothing reused
                out = str(workdir / "catalogs" / method / "rutford")
                log(f"detect --method {method} ...")
                if method == "stalta":
                    r = detect(store, out_catalog=out, method="stalta", start=START, end=end, client=client)
                else:
                    detector = {"model": model, "forest": forest, "eqt": args.eqt}[method]
                    r = detect(store, detector, out, method=method,
                               stations=stations_file, start=START, end=end, client=client, progress=False,
                               probabilities_url=str(workdir / "catalogs" / method / "p.zarr"))
                runs[method] = _rates(r, hours, station_hours)
                runs[method]["catalog"] = r["catalog"]["quakeml"]
                if method != "stalta":
                    runs[method]["detector"] = detector
                    runs[method]["threshold"] = r["settings"]["threshold"]
                    runs[method]["located"] = sum(e.get("latitude") is not None for e in r["events"])
                if method == "model":
                    model_events = r["events"]
                log(f"  {method}: {runs[method]['events']} events ({runs[method]['events_per_hour']}/h), "
                    f"{runs[method]['station_triggers']} station triggers, {runs[method]['seconds']} s")
        sample = sample_events(model_events, args.sample)
        figure, panels = None, []
        if "model" in methods:  # the model's events, filled up with its highest-P windows when it has fewer
            panels = event_panels(sample, coords)
            panels += top_window_panels(str(workdir / "catalogs" / "model" / "p.zarr"), coords,
                                        args.sample - len(panels))
            figure = events_figure(store, panels, coords, RESULTS / ("rutford-events-quick.png" if args.quick
                                                                     else "rutford-events.png"))
        flags = (" --quick" if args.quick else "") + (f" --model {args.model}" if args.model else "") + \
            (f" --forest {args.forest}" if args.forest else "")
        result = {
            "metric": "rutford_events_per_hour", "unit": "network events per hour of record (no catalog)",
            "span": {"start": START, "end": end, "hours": hours, "stations": len(groups),
                     "station_hours": station_hours},
            "methods": runs, "ingest_seconds": ingest_s, "detector_preparation_seconds": prep,
            "figure": figure, "figure_panels": [p["title"] for p in panels],
            **provenance("rutford", flags, ["seisgrid", "obspy", "torch", "scikit-learn", "dask"]),
        }
        write_result(result, "rutford", args.quick, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
