"""STA/LTA baseline: window scores, threshold tuning on train only, archive-mode coincidence (BW.UH fixture)."""

from __future__ import annotations

import csv

import numpy as np
import obspy
import pytest
from helpers import data_path, requires_data

from seisgrid.seismic import stalta

RATE = 100.0


def synthetic_windows(n=40, seed=0, samples=2500, snr=8.0):
    """(waveform, present, label, p_index): Gaussian noise; half the windows get a decaying 5-15 Hz burst."""
    rng = np.random.default_rng(seed)
    wave = rng.normal(0, 1, (n, 3, samples)).astype(np.float32)
    label = np.zeros(n, np.int8)
    label[: n // 2] = 1
    rng.shuffle(label)
    p_index = np.full(n, -1, np.int32)
    t = np.arange(samples) / RATE
    for i in np.flatnonzero(label):
        p = int(rng.integers(700, 2000))
        p_index[i] = p
        tt = np.clip(t - t[p], 0, None)
        burst = snr * np.sin(2 * np.pi * rng.uniform(5, 15) * tt) * np.exp(-tt / 2.0) * (t >= t[p])
        for c, scale in enumerate((1.0, 0.6, 0.6)):
            wave[i, c] += (scale * burst).astype(np.float32)
    present = np.ones((n, 3), bool)
    return wave, present, label, p_index


def test_window_scores_separate_events_from_noise():
    wave, present, label, _ = synthetic_windows()
    scores = stalta.window_scores(wave, present, sampling_rate=RATE, method="classic", freqmin=1, freqmax=20,
                                  sta=0.5, lta=5)
    assert scores.shape == (len(label),)
    assert scores[label == 1].min() > scores[label == 0].max()
    threshold = stalta.tune_threshold(scores, label)
    assert (stalta.predict(scores, threshold) == label).all()


def test_window_scores_recursive_and_missing_components():
    wave, present, label, _ = synthetic_windows(n=10, seed=1)
    present[:, 1:] = False
    wave[:, 1:] = 0.0
    s1 = stalta.window_scores(wave, present, method="recursive", freqmin=1, freqmax=20, sta=0.5, lta=5)
    s_z = stalta.window_scores(wave[:, :1], present[:, :1], method="recursive", freqmin=1, freqmax=20,
                               sta=0.5, lta=5)
    np.testing.assert_allclose(s1, s_z)  # absent components do not count
    none = stalta.window_scores(wave, np.zeros_like(present), freqmin=1, freqmax=20, sta=0.5, lta=5)
    assert (none == 0).all()


def test_tune_threshold_maximises_f1_and_ties():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1, 1])
    # F1 = 2TP / (2TP + FP + FN) at each threshold: 0.9 → 2/4, 0.8 → 4/5, 0.4 → 4/6, 0.35 → 6/7, 0.1 → 6/8
    assert stalta.tune_threshold(scores, labels) == 0.35
    # ties in F1 go to the higher threshold: 0.9 → 2/3 (TP 1, FN 1) and 0.2 → 2/3 (TP 2, FP 2)
    assert stalta.tune_threshold([0.9, 0.6, 0.5, 0.2], [1, 0, 0, 1]) == 0.9
    assert stalta.tune_threshold(scores, np.zeros(5)) == np.inf
    assert stalta.predict([0.39, 0.4], 0.4).tolist() == [0, 1]


def test_threshold_uses_train_split_only(tmp_path):
    from test_metrics import write_window_store

    from seisgrid.seismic.evaluate import evaluate

    url = write_window_store(tmp_path / "w.zarr")
    a = evaluate(url, methods=("stalta",), split="split")
    # flip every test label: the threshold (tuned on train) must not move
    import zarr

    group = zarr.open_group(str(url), mode="r+")
    lab = group["label"][:]
    split = group["split"][:].astype(str)
    lab[split == "test"] = 1 - lab[split == "test"]
    group["label"][:] = lab
    b = evaluate(url, methods=("stalta",), split="split")
    assert a["methods"][0]["threshold"] == b["methods"][0]["threshold"]
    assert a["methods"][0]["f1"] != b["methods"][0]["f1"]


def test_score_dataset_on_cluster_matches_in_process(dask_client):
    import xarray as xr

    wave, present, label, _ = synthetic_windows(n=24, seed=2)
    ds = xr.Dataset({"waveform": (("window", "component", "sample"), wave),
                     "present": (("window", "component"), present)}, attrs={"sampling_rate": RATE})
    ds = ds.chunk({"window": 8})
    on_cluster = stalta.score_dataset(ds, client=dask_client)
    direct = stalta.window_scores(wave, present)
    np.testing.assert_allclose(on_cluster, direct)


def _fixture_triggers():
    folder = data_path("seismic/obspy-uh-coincidence")
    with open(folder / "triggers_obspy_tests.csv") as f:
        return [(obspy.UTCDateTime(r["trigger_time_utc"]), float(r["duration_s"]), set(r["stations"].split(";")))
                for r in csv.DictReader(f)]


@requires_data("seismic/obspy-uh-coincidence")
def test_bw_uh_coincidence_fixture_reproduced(tmp_path, dask_client):
    from seisgrid.seismic.ingest import ingest

    src = data_path("seismic/obspy-uh-coincidence")
    store = str(tmp_path / "uh.zarr")
    ingest(str(src), store, format="SLIST", pattern="*.slist.gz", progress=False)
    events, info = stalta.detect_archive(store, client=dask_client, return_info=True, method="recursive",
                                         freqmin=10, freqmax=20, sta=0.5, lta=10, thr_on=3.5, thr_off=1,
                                         min_stations=3, components="Z")
    # one Z channel per station; UH1's 10 s 200 Hz EHZ cut-outs lose to its continuous SHZ
    assert info["channels"] == ["BW.UH1..SHZ", "BW.UH2..SHZ", "BW.UH3..SHZ", "BW.UH4..EHZ"]
    expected = _fixture_triggers()
    assert len(events) == len(expected) == 3
    for ev, (t, duration, stations) in zip(events, expected, strict=True):
        assert abs(obspy.UTCDateTime(ev["time"]) - t) < 0.1
        assert abs(ev["duration"] - duration) < 0.1
        assert set(ev["stations"]) == stations
    # and identical to ObsPy's coincidence_trigger on the whole continuous traces read directly
    from obspy.signal.trigger import coincidence_trigger

    st = obspy.Stream()
    for name in ("UH1._.SHZ", "UH2._.SHZ", "UH3._.SHZ", "UH4._.EHZ"):
        st += obspy.read(str(src / f"BW.{name}.D.2010.147.cut.slist.gz"))
    st.filter("bandpass", freqmin=10, freqmax=20)
    direct = coincidence_trigger("recstalta", 3.5, 1, st, 3, sta=0.5, lta=10, details=True, max_trigger_length=60)
    assert [str(e["time"]) for e in direct] == [e["time"] for e in events]
    np.testing.assert_allclose([e["cft_peak_wmean"] for e in direct], [e["cft_peak_wmean"] for e in events])
    # fewer stations required: at least as many triggers
    more = stalta.detect_archive(store, freqmin=10, freqmax=20, sta=0.5, lta=10, thr_on=3.5, thr_off=1,
                                 min_stations=2, method="recursive")
    assert len(more) >= 3


def test_detect_archive_across_midnight(tmp_path):
    """Day tasks split at midnight find the same triggers as ObsPy on the continuous trace."""
    from obspy.signal.trigger import coincidence_trigger

    from seisgrid.seismic.ingest import ingest

    rng = np.random.default_rng(5)
    rate, start = 20.0, obspy.UTCDateTime("2021-01-01T23:50:00")
    n = int(20 * 60 * rate)
    src = tmp_path / "src"
    src.mkdir()
    onsets = [300.0, 598.0, 900.0]  # s after start; 598 s triggers just before midnight (600 s)
    st = obspy.Stream()
    for k, sta in enumerate(("A", "B", "C")):
        data = rng.normal(0, 50, n)
        for t0 in onsets:
            i = int((t0 + 0.3 * k) * rate)
            m = int(6 * rate)
            data[i:i + m] += 2000 * np.exp(-np.arange(m) / (1.5 * rate)) * np.sin(np.arange(m) * 2.0)
        tr = obspy.Trace(np.round(data).astype(np.int32), header={"network": "XX", "station": sta,
                                                                 "channel": "BHZ", "sampling_rate": rate,
                                                                 "starttime": start})
        tr.write(str(src / f"{sta}.mseed"), format="MSEED")
        st += tr
    store = str(tmp_path / "s.zarr")
    ingest(str(src), store, progress=False)
    settings = dict(method="recursive", freqmin=1, freqmax=8, sta=0.5, lta=10, thr_on=3, thr_off=1.5,
                    min_stations=3, max_trigger_seconds=30, pad_seconds=30)
    events, info = stalta.detect_archive(store, return_info=True, **settings)
    assert info["tasks"] == 6  # 3 stations × 2 days
    st.filter("bandpass", freqmin=1, freqmax=8)
    direct = coincidence_trigger("recstalta", 3, 1.5, st, 3, sta=0.5, lta=10, max_trigger_length=30)
    assert len(direct) == 3
    assert [e["time"] for e in events] == [str(e["time"]) for e in direct]
    for ev, t0 in zip(events, onsets, strict=True):
        assert abs(obspy.UTCDateTime(ev["time"]) - (start + t0)) < 1.0


def test_bad_settings():
    from seisgrid.errors import ConfigError

    wave, present, _, _ = synthetic_windows(n=2)
    with pytest.raises(ConfigError):
        stalta.window_scores(wave, present, method="nope")
    with pytest.raises(ConfigError):
        stalta.window_scores(wave, present, freqmin=1, freqmax=60)
    with pytest.raises(ConfigError):
        stalta.window_scores(wave, present, sta=0.5, lta=30)


def _two_station_store(tmp_path, rate=20.0):
    """Stations A and B, Z only, 10 minutes on 1 January and 10 minutes on 3 January (nothing between), each
    piece with two strong onsets 0.3 s apart across the stations."""
    from seisgrid.seismic.ingest import ingest

    rng = np.random.default_rng(7)
    src = tmp_path / "src"
    src.mkdir()
    n = int(600 * rate)
    for k, sta in enumerate(("A", "B")):
        traces = []
        for day in ("2021-01-01", "2021-01-03"):
            data = rng.normal(0, 50, n)
            for t0 in (200.0, 400.0):
                i, m = int((t0 + 0.3 * k) * rate), int(6 * rate)
                data[i:i + m] += 2000 * np.exp(-np.arange(m) / (1.5 * rate)) * np.sin(np.arange(m) * 2.0)
            traces.append(obspy.Trace(np.round(data).astype(np.int32), header={
                "network": "XX", "station": sta, "channel": "BHZ", "sampling_rate": rate,
                "starttime": obspy.UTCDateTime(day)}))
        obspy.Stream(traces).write(str(src / f"{sta}.mseed"), format="MSEED")
    store = str(tmp_path / "s.zarr")
    ingest(str(src), store, progress=False)
    return store


def test_small_network_is_warned_tasks_only_where_data_exist(tmp_path, caplog):
    """Two stations and the default coincidence sum of 3: no event, and a warning that says what to set;
    tasks only for the days with data; station-days = data time (40 minutes on 2 stations)."""
    from seisgrid.seismic.detect import detect

    store = _two_station_store(tmp_path)
    settings = dict(freqmin=1, freqmax=8, sta=0.5, lta=10, thr_on=3, thr_off=1.5, max_trigger_seconds=30)
    with caplog.at_level("WARNING", logger="seisgrid"):
        events, info = stalta.detect_archive(store, return_info=True, **settings)
    assert events == [] and info["tasks"] == 4  # 2 stations × the 2 days with data, not 3 days
    assert info["station_days"] == pytest.approx(2 * 1200 / 86400, abs=1e-6)
    assert len(info["warnings"]) == 1 and "2 stations" in info["warnings"][0]
    assert "--min-stations" in info["warnings"][0] and "seisgrid.stalta.min_stations" in info["warnings"][0]
    assert info["warnings"][0] in caplog.text
    events, info = stalta.detect_archive(store, return_info=True, min_stations=2, **settings)
    assert len(events) == 4 and info["warnings"] == []
    # through detect --method stalta: --min-stations is the coincidence sum; the summary keeps the warnings
    import dask

    with dask.config.set({"seisgrid.stalta.archive_freqmin": 1, "seisgrid.stalta.archive_freqmax": 8,
                          "seisgrid.stalta.thr_on": 3, "seisgrid.stalta.thr_off": 1.5}):
        warned = detect(store, out_catalog=str(tmp_path / "st" / "cat"), method="stalta")
        fine = detect(store, out_catalog=str(tmp_path / "st2" / "cat"), method="stalta", min_stations=2)
    assert warned["n_events"] == 0 and warned["warnings"] and fine["n_events"] == 4 and fine["warnings"] == []
    assert fine["station_days"] == info["station_days"]
