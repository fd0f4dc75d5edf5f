"""Archive detection (seisgrid.seismic.detect): a deterministic "oracle" model on a short synthetic archive
finds the strong catalog events, associates them across stations, writes QuakeML + CSV, and resumes."""

from __future__ import annotations

import pathlib

import numpy as np
import obspy
import pytest
import zarr
from oracle import SEED, save_oracle

from seisgrid.seismic import models
from seisgrid.seismic.catalog import read_catalog, score
from seisgrid.seismic.detect import (
    detect,
    model_settings,
    scorer_config,
)
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.synth import synthesize
from seisgrid.seismic.windowgrid import merge, runs, subtract, window_range


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("detect")
    synthesize(str(tmp / "archive"), stations=3, days=0.05, sampling_rates=[100.0], events_per_day=400, seed=SEED)
    ingest(str(tmp / "archive"), str(tmp / "store.zarr"), pattern="*.D.*", progress=False)
    model = save_oracle(tmp / "model" / "oracle.pt")
    yield tmp, model
    models.ARCHITECTURES.pop("oracle", None)


def _run(tmp, model, **kw):
    return detect(str(tmp / "store.zarr"), model, str(tmp / "out" / "catalog.xml"),
                  stations=str(tmp / "archive" / "stations.csv"), stride_seconds=10.0, progress=False, **kw)


def test_detect_finds_strong_events_writes_catalog_and_resumes(setup):
    tmp, model = setup
    first = _run(tmp, model)
    assert first["tasks_run"] == 3 and first["tasks_skipped"] == 0
    assert first["windows"] > 0

    # every true event with SNR >= 30 is found, on at least two stations, with a located origin
    result = score(first["catalog"]["quakeml"], str(tmp / "archive" / "catalog.csv"), tolerance_seconds=5.0)
    strong = result["recall_by_snr"][-1]
    assert strong["snr_min"] == 30.0 and strong["n"] >= 2 and strong["recall"] == 1.0
    assert result["precision"] == 1.0 and result["false_per_station_day"] == 0.0
    # station-days = data time: 3 stations × 72 minutes, whatever the stride (catalog's JSON summary)
    assert first["station_days"] == pytest.approx(3 * 0.05) and result["station_days"] == first["station_days"]
    assert result["median_abs_dt_seconds"] < 2.0
    assert first["warnings"] == [] and first["station_triggers"] == first["picks"] >= 2 * first["n_events"]
    for ev in first["events"]:  # located where the picks constrain an origin (associate.locate), else not
        assert ev["n_stations"] >= 2 and (ev["origin_time"] is None) == (ev["latitude"] is None)
        assert all(p["time"] for p in ev["picks"])
    # matching on first arrivals finds the same strong events, located or not
    by_arrival = score(first["catalog"]["quakeml"], str(tmp / "archive" / "catalog.csv"), tolerance_seconds=5.0,
                       match="arrival")
    assert by_arrival["recall_by_snr"][-1]["recall"] == 1.0 and by_arrival["precision"] == 1.0

    # QuakeML opens in ObsPy with origins, picks and arrivals
    cat = obspy.read_events(first["catalog"]["quakeml"])
    assert len(cat) == first["n_events"] == len(read_catalog(first["catalog"]["csv"]))
    for ev in cat:
        assert ev.preferred_origin() is not None and len(ev.picks) >= 2
        if ev.preferred_origin().latitude is not None:
            assert {a.pick_id for a in ev.preferred_origin().arrivals} == {p.resource_id for p in ev.picks}
        assert str(ev.resource_id).startswith("smi:seisgrid/event/")

    # probabilities: one array per station-day, one value per window start, NaN after the data end
    root = zarr.open_group(first["probabilities"], mode="r")
    arr = root["SY.ST01"]["2021-01-01"]
    assert arr.shape == (8640,) and arr.attrs["stride_seconds"] == 10.0
    probs = arr[:]
    evaluated = np.isfinite(probs)
    assert evaluated.sum() == (0.05 * 86400 - 25) // 10 + 1  # windows that fit in the 72 minutes
    assert ((probs[evaluated] >= 0) & (probs[evaluated] <= 1)).all()

    # with xarray alone: one station's days, found through the root's consolidated metadata, no warning
    import warnings

    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        station = xr.open_zarr(first["probabilities"], group="SY.ST01")
    np.testing.assert_array_equal(station["2021-01-01"].values, probs)

    # a rerun runs nothing and writes the same catalog
    xml = pathlib.Path(first["catalog"]["quakeml"]).read_bytes()
    csv_text = pathlib.Path(first["catalog"]["csv"]).read_text()
    second = _run(tmp, model)
    assert second["tasks_run"] == 0 and second["tasks_skipped"] == 3
    assert pathlib.Path(second["catalog"]["csv"]).read_text() == csv_text
    assert pathlib.Path(second["catalog"]["quakeml"]).read_bytes() == xml

    # an interrupted run (one station-day without its manifest record) redoes exactly that station-day
    from seisgrid import manifest

    day_records = manifest.read_records(first["probabilities"], {}, "days")
    assert manifest.drop_records(first["probabilities"], {}, "days", [k for k in day_records if k[0] == "SY.ST02"]) == 1
    third = _run(tmp, model)
    assert third["tasks_run"] == 1 and third["tasks_skipped"] == 2
    assert pathlib.Path(third["catalog"]["csv"]).read_text() == csv_text


def test_model_settings_from_spectrogram_store_attrs():
    cfg = {"arch": "x", "data": {"spectrogram_attrs": {"stft_n_fft": 256, "stft_hop": 10, "band_hz": [2.0, 40.0],
                                                       "image_size": [224, 224], "clip": 4.0},
                                 "windows_attrs": {"window_seconds": 30.0, "sampling_rate": 100.0,
                                                   "pre_p_seconds": 7.0}},
           "classes": ["earthquake", "noise"]}
    s = model_settings(cfg)
    assert s["window_seconds"] == 30.0 and s["pre_p_seconds"] == 7.0 and s["threshold"] is None
    p = s["spectrogram"]
    assert (p.n_fft, p.f_min, p.f_max, p.clip, p.size) == (256, 2.0, 40.0, 4.0, 224)
    assert s["earthquake_index"] == 0
    # the shape train.py writes: the store's attributes under "spectrogram"
    s = model_settings({"arch": "x", "classes": ["noise", "earthquake"], "window_seconds": 25.0, "threshold": 0.3,
                        "spectrogram": {"sampling_rate": 100.0, "stft_n_fft": 250, "stft_hop": 10,
                                        "band_hz": [1.0, 30.0], "dynamic_range_db": 80.0, "clip": 5.0,
                                        "image_size": [224, 224]}})
    p = s["spectrogram"]
    assert (p.n_fft, p.f_max, p.dynamic_range_db, s["threshold"], s["earthquake_index"]) == (250, 30.0, 80.0, 0.3, 1)
    s = model_settings({"arch": "x", "threshold": 0.8, "spectrogram": {"n_fft": 200, "hop": 10}})
    assert s["threshold"] == 0.8 and s["spectrogram"].n_fft == 200 and s["window_seconds"] == 25.0


def testruns():
    above = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1], bool)
    assert runs(above) == [(1, 3), (4, 5), (7, 10)]
    assert runs(np.zeros(0, bool)) == []


def test_window_intervals():
    day = obspy.UTCDateTime("2021-01-01").ns // 86_400_000_000_000
    assert window_range(day, None, None, 5 * 10**9) == (0, 17280)
    # windows starting in [00:00:07, 00:01:00): starts 10 s, 15 s, ..., 55 s
    lo, hi = obspy.UTCDateTime("2021-01-01T00:00:07").ns, obspy.UTCDateTime("2021-01-01T00:01:00").ns
    assert window_range(day, lo, hi, 5 * 10**9) == (2, 12)
    assert window_range(day, None, obspy.UTCDateTime("2020-12-31").ns, 5 * 10**9) == (0, 0)
    assert window_range(day, obspy.UTCDateTime("2020-12-31").ns, obspy.UTCDateTime("2021-01-03").ns,
                        10**10) == (0, 8640)
    assert merge([[5, 8], [0, 2], [2, 3], [7, 9], [4, 4]]) == [[0, 3], [5, 9]]
    assert subtract(0, 10, [[2, 4], [6, 12]]) == [[0, 2], [4, 6]]
    assert subtract(3, 5, [[0, 10]]) == [] and subtract(3, 5, []) == [[3, 5]]


def _window_starts(events):
    return [obspy.UTCDateTime(p["window_start"]) for ev in events for p in ev["picks"]]


def test_sub_day_span_then_whole_day_computes_only_the_rest(setup):
    tmp, model = setup
    t0 = obspy.UTCDateTime("2021-01-01T00:20:00")
    t1 = obspy.UTCDateTime("2021-01-01T00:50:00")
    out = tmp / "span" / "catalog.xml"

    def run(**kw):
        return detect(str(tmp / "store.zarr"), model, str(out), stations=str(tmp / "archive" / "stations.csv"),
                      stride_seconds=10.0, progress=False, **kw)

    part = run(start=str(t0), end=str(t1))
    assert part["tasks_run"] == 3 and part["windows"] > 0
    assert part["station_days"] == pytest.approx(3 * 180 * 10 / 86400)  # windows starting in the 30 min only
    assert part["n_events"] >= 1 and all(t0 <= w < t1 for w in _window_starts(part["events"]))
    probs = zarr.open_group(part["probabilities"], mode="r")["SY.ST01"]["2021-01-01"][:]
    assert np.flatnonzero(np.isfinite(probs)).tolist() == list(range(120, 300))

    # the same span again: nothing to run, the same catalog
    csv_part = pathlib.Path(part["catalog"]["csv"]).read_text()
    again = run(start=str(t0), end=str(t1))
    assert again["tasks_run"] == 0 and pathlib.Path(again["catalog"]["csv"]).read_text() == csv_part

    # the whole day: the record is not complete for it, so each station-day computes the two missing parts
    whole = run()
    assert whole["tasks_run"] == 3 and whole["tasks_skipped"] == 0
    assert [t["spans"] for t in whole["tasks"]] == [[[0, 430]]] * 3  # the windows inside the 72 minutes of data
    assert whole["windows"] < 3 * (0.05 * 86400 / 10)  # the span's windows were not computed again
    fresh = _run(tmp, model)  # a single whole-day run (first test's store): the same events
    assert whole["n_events"] == fresh["n_events"]
    for a, b in zip(whole["events"], fresh["events"], strict=True):
        assert a["stations"] == b["stations"]
        assert abs(obspy.UTCDateTime(a["first_arrival"]) - obspy.UTCDateTime(b["first_arrival"])) < 0.05
    # every event of the span run is an event of the whole day
    arrivals = [obspy.UTCDateTime(e["first_arrival"]) for e in whole["events"]]
    for ev in part["events"]:
        assert min(abs(obspy.UTCDateTime(ev["first_arrival"]) - t) for t in arrivals) < 0.05
    # a span inside what is done runs nothing and reports that span only
    inner = run(start="2021-01-01T00:00:00", end=str(t0))
    assert inner["tasks_run"] == 0 and inner["tasks_skipped"] == 3
    assert all(w < t0 for w in _window_starts(inner["events"]))


def test_forest_from_evaluate_detects_on_the_archive(setup):
    """A forest trained (``evaluate --out``) on windows cut from this archive with its catalog runs over the
    archive through the same tasks, stores, picks, association and catalog as the model."""
    from seisgrid.errors import ConfigError
    from seisgrid.seismic.evaluate import evaluate
    from seisgrid.seismic.labelled import build_windows
    from seisgrid.seismic.spectrogram import spectrograms

    tmp, _ = setup
    build_windows([str(tmp / "store.zarr")], str(tmp / "windows.zarr"), catalog=str(tmp / "archive" / "catalog.csv"),
                  progress=False, augment_factor=0)
    spectrograms(str(tmp / "windows.zarr"), str(tmp / "spec.zarr"))
    ev = evaluate(str(tmp / "windows.zarr"), str(tmp / "spec.zarr"), methods=("forest",), split="split",
                  out_dir=str(tmp / "eval"), forest_options={"n_estimators": 100}, timing_windows=1)
    forest_path = ev["methods"][0]["model"]
    assert forest_path == str(tmp / "eval" / "forest.joblib")
    method, cfg = scorer_config(forest_path)
    assert method == "forest" and cfg["features_from"] == "spectrograms"
    assert model_settings(cfg)["threshold"] == ev["methods"][0]["threshold"]  # detect's default threshold

    out = tmp / "forest" / "catalog.xml"
    kw = {"stations": str(tmp / "archive" / "stations.csv"), "stride_seconds": 10.0, "progress": False}
    with pytest.raises(ConfigError, match="use --method forest"):
        detect(str(tmp / "store.zarr"), forest_path, str(out), method="model", **kw)
    # the val windows of this 72-minute archive hold no noise, so the forest's threshold is an untuned 0.5,
    # at which noise windows near events (P(earthquake) 0.3-0.6 here) join the triggers: set one
    kw["threshold"] = 0.7
    first = detect(str(tmp / "store.zarr"), forest_path, str(out), method="forest", **kw)
    assert first["method"] == "forest" and first["tasks_run"] == 3 and first["settings"]["device"] == "cpu"
    result = score(first["catalog"]["quakeml"], str(tmp / "archive" / "catalog.csv"), tolerance_seconds=5.0)
    strong = result["recall_by_snr"][-1]
    assert strong["snr_min"] == 30.0 and strong["n"] >= 2 and strong["recall"] == 1.0
    cat = obspy.read_events(first["catalog"]["quakeml"])
    assert len(cat) == first["n_events"] and str(cat.resource_id).endswith("/forest")
    assert all(ev.preferred_origin() is not None and len(ev.picks) >= 2 for ev in cat)
    probs = zarr.open_group(first["probabilities"], mode="r")["SY.ST02"]["2021-01-01"][:]
    assert np.isfinite(probs).sum() == (0.05 * 86400 - 25) // 10 + 1
    # resumes like the model: a rerun runs nothing (method inferred from the file)
    second = detect(str(tmp / "store.zarr"), forest_path, str(out), **kw)
    assert second["tasks_run"] == 0 and second["n_events"] == first["n_events"]


def _write_gap_archive(folder: pathlib.Path, t0: obspy.UTCDateTime, p_offset: float, dc: float = 20000.0) -> None:
    """Two stations × Z/N/E at 100 Hz with a large DC offset: data 0-300 s, a gap, data 420-900 s, and an
    event whose P arrives ``p_offset`` s after the data restart (both stations, 0.4 s apart)."""
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    for k, sta in enumerate(("GA", "GB")):
        for comp in "ZNE":
            traces = []
            for a, b in ((0.0, 300.0), (420.0, 900.0)):
                n = int((b - a) * 100)
                tt = a + np.arange(n) / 100.0
                x = dc + 50.0 * rng.standard_normal(n)
                dt = tt - (420.0 + p_offset + 0.4 * k)
                on = dt >= 0
                x[on] += 4000.0 * np.sin(2 * np.pi * 6.0 * dt[on]) * np.exp(-dt[on] / 3.0)
                traces.append(obspy.Trace(x.astype(np.int32), header={
                    "network": "XG", "station": sta, "channel": f"HH{comp}", "sampling_rate": 100.0,
                    "starttime": t0 + a}))
            obspy.Stream(traces).write(str(folder / f"XG.{sta}.HH{comp}.mseed"), format="MSEED", encoding="STEIM2")


def test_pick_after_a_gap_is_the_onset_not_the_restart(setup, tmp_path):
    """Refinement on a record that restarts 15 s before P, at a DC offset of 20,000 counts: the pick is the P
    onset, not the first sample after the gap (the STA/LTA is per segment, demeaned, and silent during the
    LTA warm-up); only the station-day with data is a task; station-days are the data time."""
    _, model = setup
    t0 = obspy.UTCDateTime("2021-03-01T00:00:00")
    _write_gap_archive(tmp_path / "gap", t0, p_offset=15.0)
    ingest(str(tmp_path / "gap"), str(tmp_path / "gap.zarr"), progress=False)
    out = detect(str(tmp_path / "gap.zarr"), model, str(tmp_path / "cat" / "gap.xml"), stride_seconds=5.0,
                 progress=False, min_stations=2, max_travel_seconds=5.0)
    assert out["tasks_run"] == 2  # one station-day each: no task for days without data
    assert out["station_days"] == pytest.approx(2 * 780 / 86400, abs=1e-6)
    picks = [p for ev in out["events"] for p in ev["picks"]]
    near = [p for p in picks if abs(obspy.UTCDateTime(p["time"]) - (t0 + 420)) < 60]
    assert len(near) == 2 and {p["method"] for p in near} == {"stalta"}
    for p in sorted(near, key=lambda p: p["station"]):
        onset = t0 + 435.0 + (0.4 if p["station"] == "XG.GB" else 0.0)
        assert abs(obspy.UTCDateTime(p["time"]) - onset) < 0.3, (p, onset)
