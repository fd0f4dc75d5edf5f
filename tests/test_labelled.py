"""Labelled window sets: readers (generated slices in each real format, and the real folders), windowing,
resampling, split hygiene, augmentation, the Zarr schema, and windows cut from an ingested synthetic store."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import data_path, requires_data

from seisgrid.errors import ConfigError
from seisgrid.seismic.labelled import (
    Record,
    WindowsError,
    assign_region_splits,
    assign_splits,
    build_windows,
    cut_windows,
    detect_format,
    read_phasenet,
    read_seisbench,
    read_stead,
    resample,
)
from seisgrid.seismic.labelled.build import _options
from seisgrid.seismic.windowstore import SUBCLASSES

FS = 100.0


def _opts(**kw):
    return _options(None, kw)


def _signal(n, rate, p_sample, seed, amp=1000.0):
    """Noise with a decaying 5 Hz wavelet from ``p_sample`` on (three columns with distinct gains)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = rng.normal(0, 10.0, (n, 3))
    tp = p_sample / rate
    burst = np.where(t >= tp, np.sin(2 * np.pi * 5 * (t - tp)) * np.exp(-(t - tp) / 3), 0.0)
    return x + amp * burst[:, None] * np.array([1.0, 2.0, 3.0])


# ------------------------------------------------------------------------------- generated slices


@pytest.fixture
def stead_folder(tmp_path):
    folder = tmp_path / "stead-like"
    folder.mkdir()
    rows = []
    with h5py.File(folder / "waveforms.hdf5", "w") as f:
        g = f.create_group("earthquake/local")
        f.create_group("non_earthquake/noise")
        for i, (name, p) in enumerate([("AAA.XX_1_EV", 700), ("AAA.XX_2_EV", 400), ("BBB.XX_3_EV", 900)]):
            x = _signal(6000, FS, p, i).astype("float32")
            if i == 2:
                x[10, 1] = np.nan  # a bad record: skipped with a reason
            g.create_dataset(name, data=x)
            rows.append({"network_code": "XX", "receiver_code": name.split(".")[0], "receiver_latitude": 33.0,
                         "receiver_longitude": -117.0, "p_arrival_sample": float(p),
                         "s_arrival_sample": float(p + 800), "source_id": 100 + i,
                         "source_magnitude": 2.0 + i, "snr_db": "[40.1 35.0 38.2]",
                         "trace_start_time": f"2020-01-0{i + 1} 00:00:00.00",
                         "trace_category": "earthquake_local", "trace_name": name})
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)
    return folder


@pytest.fixture
def phasenet_folder(tmp_path):
    folder = tmp_path / "phasenet-like"
    (folder / "waveform_train").mkdir(parents=True)
    rows = []
    for i, (name, channels) in enumerate([("NC_AAA_2016111504021890.npz", "HHE_HHN_HHZ"),
                                          ("BG_BBB_2014071807051236.npz", "EHZ"),
                                          ("NN_CCC_2012082505145960.npz", "HNE_HNN_HNZ")]):
        x = _signal(9001, FS, 3000, 10 + i)
        if channels == "EHZ":
            x[:, :2] = 0.0  # single component: the Z slot of an E, N, Z layout
        np.savez(folder / "waveform_train" / name, data=x, itp=3000, its=3300, channels=channels)
        rows.append({"fname": name, "itp": 3000, "its": 3300, "channels": channels})
    pd.DataFrame(rows).to_csv(folder / "waveform.csv", index=False)
    return folder


@pytest.fixture
def seisbench_folder(tmp_path):
    folder = tmp_path / "seisbench-like"
    folder.mkdir()
    rate = 20.0
    rows = []
    with h5py.File(folder / "waveforms.hdf5", "w") as f:
        fmt = f.create_group("data_format")
        fmt["component_order"] = "ZNE"
        fmt["dimension_order"] = "CW"
        fmt["sampling_rate"] = 20
        bucket = np.zeros((3, 3, 1200))
        for i in range(3):
            bucket[i] = _signal(1200, rate, 300, 20 + i).T[[2, 1, 0]]  # ZNE
            rows.append({"trace_start_time": f"2007/01/0{i + 1} 01:42:45.08", "source_latitude_deg": -20.4,
                         "source_longitude_deg": -69.3, "source_depth_km": 80.0 + i, "source_magnitude": 1.5,
                         "trace_name": f"bucket0${i},:3,:1200", "station_network_code": "CX",
                         "station_code": "PB01", "station_latitude_deg": -21.04, "station_longitude_deg": -69.49})
        f.create_dataset("data/bucket0", data=bucket)
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)
    return folder


def test_detect_format(stead_folder, phasenet_folder, seisbench_folder, tmp_path):
    assert detect_format(str(stead_folder)) == "stead"
    assert detect_format(str(phasenet_folder)) == "phasenet"
    assert detect_format(str(seisbench_folder)) == "seisbench"
    (tmp_path / "empty").mkdir()
    with pytest.raises(WindowsError, match="unknown format"):
        detect_format(str(tmp_path / "empty"))


def test_read_stead_component_order(stead_folder):
    recs = list(read_stead(stead_folder))
    assert len(recs) == 3
    raw = h5py.File(stead_folder / "waveforms.hdf5", "r")["earthquake/local/AAA.XX_1_EV"][()]
    r = recs[0]
    assert r.name == "AAA.XX_1_EV" and r.station == "AAA" and r.network == "XX"
    np.testing.assert_array_equal(r.data[0], raw[:, 2])  # Z from the third column (E, N, Z)
    np.testing.assert_array_equal(r.data[2], raw[:, 0])
    assert r.p_seconds == 7.0 and r.s_seconds == 15.0 and r.snr_db == pytest.approx(40.1)
    assert r.event_id.endswith(":100") and r.region == "southern-california"


def test_read_phasenet_single_component(phasenet_folder):
    recs = {r.name: r for r in read_phasenet(phasenet_folder)}
    assert len(recs) == 3
    single = recs["BG_BBB_2014071807051236.npz"]
    assert single.present.tolist() == [True, False, False]
    assert not single.data[1:].any()
    full = recs["NC_AAA_2016111504021890.npz"]
    assert full.present.all() and full.p_seconds == 30.0 and full.s_seconds == 33.0
    assert (full.network, full.station) == ("NC", "AAA")
    windows, skips, _ = cut_windows(single, _opts())
    assert not skips and all(w["present"].tolist() == [True, False, False] for w in windows)
    assert all(not w["waveform"][1:].any() for w in windows)  # missing components stay zeros


def test_read_seisbench_predicts_p(seisbench_folder):
    from obspy.geodetics import locations2degrees
    from obspy.taup import TauPyModel

    recs = list(read_seisbench(seisbench_folder))
    assert len(recs) == 3
    r = recs[0]
    assert r.sampling_rate == 20.0 and r.p_predicted and r.station == "PB01"
    deg = locations2degrees(-20.4, -69.3, -21.04, -69.49)
    expected = min(a.time for a in TauPyModel("iasp91").get_travel_times(80.0, deg, ["p", "P"]))
    assert r.p_seconds == pytest.approx(expected)
    raw = h5py.File(seisbench_folder / "waveforms.hdf5", "r")["data/bucket0"][0]
    np.testing.assert_array_equal(r.data, raw)  # already ZNE, channel-first
    assert r.region == "northern-chile"


def test_bad_records_are_counted(stead_folder, tmp_path):
    summary = build_windows([str(stead_folder)], str(tmp_path / "w.zarr"), progress=False, augment_factor=0)
    assert summary["skipped"] == [{"source": "stead-like", "record": "BBB.XX_3_EV",
                                   "reason": "NaN or infinite samples"}]
    base = Record("s", "r", np.zeros((3, 5000)), FS, np.ones(3, bool), p_seconds=10.0)
    assert cut_windows(base, _opts())[1][0].reason == "all-zero data"
    short = Record("s", "r", np.ones((3, 1000)), FS, np.ones(3, bool), p_seconds=2.0)
    assert "too short" in cut_windows(short, _opts())[1][0].reason


# --------------------------------------------------------------------------------------- windowing


def test_p_position_varies_per_record_within_the_jitter():
    rec = lambda name: Record("s", name, _signal(9001, FS, 3000, 1).T, FS, np.ones(3, bool), p_seconds=30.0)  # noqa: E731
    opts = _opts(pre_p_seconds=8.0, pre_p_jitter_seconds=3.0)
    positions = [cut_windows(rec(f"r{k}"), opts)[0][0]["p_index"] for k in range(20)]
    assert all(500 <= p <= 1100 for p in positions) and len(set(positions)) > 10
    assert positions == [cut_windows(rec(f"r{k}"), opts)[0][0]["p_index"] for k in range(20)]  # seeded


def test_windows_and_noise_margin():
    opts = _opts(pre_p_seconds=5.0, pre_p_jitter_seconds=0.0)
    rec = Record("s", "r", _signal(9001, FS, 3000, 1).T, FS, np.ones(3, bool), p_seconds=30.0,
                 start_time=np.datetime64(0, "ns"))
    windows, skips, no_noise = cut_windows(rec, opts)
    assert not skips and no_noise == 0
    quake, noise = windows
    assert quake["label"] == 1 and quake["p_index"] == 500 and quake["waveform"].shape == (3, 2500)
    assert quake["s_index"] == -1  # S (unset) unknown
    start = (noise["start_time"] - np.datetime64(0, "ns")) / np.timedelta64(1, "ns") / 1e9
    assert noise["label"] == 0 and noise["p_index"] == -1
    assert start + opts["window_seconds"] <= 30.0 - opts["noise_margin_seconds"]
    # an earlier P than pre_p_seconds: the window starts at the record start
    early = Record("s", "r", _signal(6000, FS, 300, 2).T, FS, np.ones(3, bool), p_seconds=3.0)
    w, _, nn = cut_windows(early, opts)
    assert w[0]["p_index"] == 300 and nn == 1 and len(w) == 1
    # more noise per record only when it fits before P - margin
    w, _, _ = cut_windows(rec, _opts(noise_per_record=3, pre_p_seconds=5.0, pre_p_jitter_seconds=0.0))
    assert len(w) == 2
    np.testing.assert_allclose(quake["waveform"].mean(axis=1), 0, atol=1e-2)


def test_resample_preserves_low_and_suppresses_high():
    # 20 → 100 Hz: a 1 Hz sine survives, no spectral images appear above the old Nyquist (10 Hz)
    t = np.arange(1200) / 20.0
    y = resample(np.sin(2 * np.pi * 1.0 * t), 20.0, 100.0)
    assert y.shape == (6000,)
    t100 = np.arange(6000) / 100.0
    core = slice(500, -500)
    np.testing.assert_allclose(y[core], np.sin(2 * np.pi * t100[core]), atol=0.02)
    y8 = resample(np.sin(2 * np.pi * 8.0 * t), 20.0, 100.0)
    spec = np.abs(np.fft.rfft(y8 * np.hanning(6000)))
    f = np.fft.rfftfreq(6000, 0.01)
    assert spec[f > 11].max() < 0.01 * spec.max()  # the 12 Hz image is suppressed
    # 200 → 100 Hz: a 70 Hz component (above the new Nyquist) does not alias to 30 Hz
    t200 = np.arange(4000) / 200.0
    z = resample(np.sin(2 * np.pi * 2.0 * t200) + np.sin(2 * np.pi * 70.0 * t200), 200.0, 100.0)
    spec = np.abs(np.fft.rfft(z * np.hanning(len(z))))
    f = np.fft.rfftfreq(len(z), 0.01)
    assert spec[np.argmin(abs(f - 30))] < 0.01 * spec[np.argmin(abs(f - 2))]


# ------------------------------------------------------------------------------------------ splits


def _assert_hygiene(split, events, stations):
    for values in (events, stations):
        owner = {}
        for v, s in zip(values, split, strict=True):
            if v:
                assert owner.setdefault(v, s) == s, f"{v} in {owner[v]} and {s}"


def test_assign_splits_hygiene():
    rng = np.random.default_rng(5)
    n = 600
    events = [f"e{rng.integers(300)}" for _ in range(n)]
    stations = [f"XX.S{rng.integers(80)}" for _ in range(n)]
    events = [e if i % 7 else "" for i, e in enumerate(events)]  # some windows without event
    split = assign_splits(events, stations, (0.7, 0.15, 0.15), seed=3)
    _assert_hygiene(split, events, stations)
    np.testing.assert_array_equal(split, assign_splits(events, stations, (0.7, 0.15, 0.15), seed=3))
    # one event per station pair chain: disjoint groups get all three splits near their shares
    events = [f"e{i}" for i in range(300)]
    stations = [f"XX.S{i // 3}" for i in range(300)]
    split = assign_splits(events, stations, (0.7, 0.15, 0.15), seed=0)
    counts = {s: int((split == s).sum()) for s in ("train", "val", "test")}
    assert counts == {"train": 210, "val": 45, "test": 45}


def test_assign_region_splits():
    events = ["a", "b", "c", "d", "e", ""]
    stations = ["XX.S1", "XX.S2", "BG.S3", "YY.S4", "XX.S1", "BG.S3"]
    regions = ["r1", "r1", "r1", "far", "r1", "r1"]
    networks = [s.split(".")[0] for s in stations]
    out = assign_region_splits(events, stations, regions, networks, ["far"], ["BG"], seed=0)
    assert out[2] == out[5] == out[3] == "test"
    assert set(out[[0, 1, 4]]) <= {"train", "val"} and out[0] == out[4]


def test_region_split_gives_val_a_share_of_every_training_source():
    # a one-station source with 40 events (one component: PFO-like), a 10-station noise source, a test region
    events = [f"e{i}" for i in range(40)] + [""] * 20 + ["t1"]
    stations = ["AZ.PFO"] * 40 + [f"ZZ.S{i % 10}" for i in range(20)] + ["NC.X"]
    regions = ["south"] * 40 + ["ice"] * 20 + ["north"]
    sources = ["pfo"] * 40 + ["rutford"] * 20 + ["ncedc"]
    times = np.array(["2020-01-01T00"] * 61, dtype="datetime64[ns]")
    networks = [s.split(".")[0] for s in stations]
    whole = assign_region_splits(events, stations, regions, networks, ["north"], [], seed=0)
    assert len(set(whole[:40])) == 1  # without sources the one-station set is one block
    out = assign_region_splits(events, stations, regions, networks, ["north"], [], seed=0,
                               sources=sources, start_times=times)
    assert out[60] == "test" and "test" not in out[:60]
    for part in (out[:40], out[40:60]):
        assert 0.05 < np.mean(part == "val") < 0.35  # val gets its share of each source
    for st in set(stations[40:60]):  # the noise source still splits whole stations
        assert len({o for o, s in zip(out[40:60], stations[40:60], strict=True) if s == st}) == 1


# ---------------------------------------------------------------------------------- build + schema


def _check_schema(ds: xr.Dataset):
    assert ds.sizes["component"] == 3 and ds.sizes["sample"] == 2500
    assert list(ds.component.values) == ["Z", "N", "E"]
    assert ds.waveform.dims == ("window", "component", "sample") and ds.waveform.dtype == np.float32
    assert ds.present.dims == ("window", "component") and ds.present.dtype == bool
    assert ds.label.dtype == np.int8 and set(np.unique(ds.label.values)) <= {0, 1}
    for name in ("p_index", "s_index"):
        assert ds[name].dtype == np.int32
    for name in ("source", "region", "network", "station", "event_id", "subclass", "split", "split_region"):
        assert ds[name].dims == ("window",) and ds[name].dtype.kind in "OUT"
    assert set(ds.subclass.values) <= set(SUBCLASSES)
    assert all(SUBCLASSES[c] == label for c, label in zip(ds.subclass.values, ds.label.values, strict=True))
    assert ds.distance_km.dtype == np.float32
    assert ds.start_time.dtype == "datetime64[ns]"
    assert ds.magnitude.dtype == np.float32 and ds.snr_db.dtype == np.float32
    assert ds.augmented.dtype == bool
    assert ds.waveform.encoding["chunks"] == (256, 3, 2500) and ds.label.encoding["chunks"] == (256,)
    for key in ("sampling_rate", "window_seconds", "noise_margin_seconds", "resampling", "components",
                "source_counts"):
        assert key in ds.attrs
    assert ds.attrs["sampling_rate"] == 100.0 and "resample_poly" in ds.attrs["resampling"]
    assert set(ds.split.values) <= {"train", "val", "test"}
    assert set(ds.split_region.values) <= {"train", "val", "test"}


def test_build_windows_generated(stead_folder, phasenet_folder, seisbench_folder, tmp_path):
    out = str(tmp_path / "windows.zarr")
    sources = [str(stead_folder), str(phasenet_folder), str(seisbench_folder)]
    summary = build_windows(sources, out, seed=4, progress=False, test_regions=["northern-chile"],
                            test_networks=["BG"])
    ds = xr.open_zarr(out).load()
    _check_schema(ds)
    assert summary["windows"] == ds.sizes["window"]
    real = ~ds.augmented.values
    from_phasenet = real & (ds.source.values == "phasenet-like")
    assert from_phasenet.sum() == 6 and ds.label.values[from_phasenet].sum() == 3
    assert summary["sources"]["stead-like"]["earthquake"] == 2
    assert summary["formats"] == {"stead-like": "stead", "phasenet-like": "phasenet", "seisbench-like": "seisbench"}
    assert summary["p_predicted"] == 3
    assert summary["subclasses"]["phasenet-like"] == {"earthquake": 3, "pre_event_noise": 3}
    seis = real & (ds.source.values == "seisbench-like") & (ds.label.values == 1)
    assert np.all((ds.distance_km.values[seis] > 60) & (ds.distance_km.values[seis] < 75))  # ~69 km apart
    assert np.isnan(ds.distance_km.values[from_phasenet]).all()
    stations = [f"{a}.{b}" for a, b in zip(ds.network.values, ds.station.values, strict=True)]
    _assert_hygiene(ds.split.values[real], ds.event_id.values[real], np.array(stations)[real])
    # augmentation only in train (both splits), made of train windows
    aug = ds.augmented.values
    assert aug.sum() == summary["augmented"] > 0
    assert set(ds.split.values[aug]) == {"train"} and set(ds.split_region.values[aug]) == {"train"}
    train_events = set(ds.event_id.values[real & (ds.split.values == "train")])
    assert set(ds.event_id.values[aug]) <= train_events
    assert (ds.label.values[aug] == 1).all() and (ds.p_index.values[aug] >= 0).all()
    # the cross-region split holds out the chosen region and network
    held = (ds.region.values == "northern-chile") | (ds.network.values == "BG")
    assert (ds.split_region.values[held & real] == "test").all()
    # deterministic for a seed
    out2 = str(tmp_path / "windows2.zarr")
    build_windows(sources, out2, seed=4, progress=False, test_regions=["northern-chile"], test_networks=["BG"])
    ds2 = xr.open_zarr(out2).load()
    np.testing.assert_array_equal(ds.waveform.values, ds2.waveform.values)
    np.testing.assert_array_equal(ds.split.values, ds2.split.values)


def test_build_windows_on_dask(phasenet_folder, tmp_path, dask_client):
    local = build_windows([str(phasenet_folder)], str(tmp_path / "a.zarr"), progress=False)
    remote = build_windows([str(phasenet_folder)], str(tmp_path / "b.zarr"), client=dask_client, progress=False)
    assert local["sources"] == remote["sources"]
    a, b = xr.open_zarr(tmp_path / "a.zarr").load(), xr.open_zarr(tmp_path / "b.zarr").load()
    np.testing.assert_array_equal(a.waveform.values, b.waveform.values)


def test_unknown_option(tmp_path, phasenet_folder):
    with pytest.raises(ConfigError, match="unknown option"):
        build_windows([str(phasenet_folder)], str(tmp_path / "x.zarr"), window_length=3)


# --------------------------------------------------------------------------- synthetic store + catalog


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    from seisgrid.seismic.ingest import ingest
    from seisgrid.seismic.synth import synthesize

    root = tmp_path_factory.mktemp("synthwin")
    archive, store = root / "archive", root / "store.zarr"
    synthesize(str(archive), stations=2, days=0.1, sampling_rates=[100.0], events_per_day=200, seed=1)
    ingest(str(archive), str(store), pattern="*.D.*", progress=False)
    return archive, store


def test_store_windows_have_p_where_catalog_says(synthetic_store, tmp_path):
    archive, store = synthetic_store
    out = str(tmp_path / "syn.zarr")
    summary = build_windows([str(store)], out, catalog=str(archive / "catalog.csv"), progress=False,
                            augment_factor=0)
    ds = xr.open_zarr(out).load()
    _check_schema(ds)
    cat = pd.read_csv(archive / "catalog.csv", dtype={"event_id": str})
    cat["p_time"] = pd.to_datetime(cat["p_time"], format="ISO8601").dt.tz_localize(None)
    cat["s_time"] = pd.to_datetime(cat["s_time"], format="ISO8601").dt.tz_localize(None)
    quakes = ds.label.values == 1
    assert quakes.sum() == len(cat) - len(summary["skipped"]) and quakes.sum() > 0
    assert set(ds.region.values) == {"synthetic"} and set(ds.source.values) == {"store.zarr"}
    for i in np.flatnonzero(quakes):
        eid = ds.event_id.values[i].split(":")[-1]
        row = cat[(cat.event_id == eid) & (cat.station == f"SY.{ds.station.values[i]}")].iloc[0]
        p = ds.start_time.values[i] + np.timedelta64(int(ds.p_index.values[i]) * 10_000_000, "ns")
        assert abs((p - row.p_time.to_datetime64()) / np.timedelta64(1, "ms")) <= 10.0
    assert not any("no Z/N/E data" in s["reason"] for s in summary["skipped"])
    for i in np.flatnonzero(quakes):  # distance_km from the catalog's distance_km
        eid = ds.event_id.values[i].split(":")[-1]
        row = cat[(cat.event_id == eid) & (cat.station == f"SY.{ds.station.values[i]}")].iloc[0]
        assert ds.distance_km.values[i] == pytest.approx(row.distance_km, rel=1e-5)
    # sub-classes: noise windows holding a synth transient (icequake) are icequake, the others quiet_noise
    tr = pd.read_csv(archive / "transients.csv")
    tr["time"] = pd.to_datetime(tr["time"], format="ISO8601").dt.tz_localize(None)
    for i in np.flatnonzero(~quakes):
        t0 = ds.start_time.values[i]
        times = tr[tr.station == f"SY.{ds.station.values[i]}"].time.to_numpy("datetime64[ns]")
        holds = np.any((times >= t0) & (times <= t0 + np.timedelta64(25, "s")))
        assert ds.subclass.values[i] == ("icequake" if holds else "quiet_noise")
    assert "icequake" in set(ds.subclass.values)
    # noise windows are ≥ 60 s from every catalog P and S
    picks = np.concatenate([cat.p_time.to_numpy("datetime64[ns]"), cat.s_time.to_numpy("datetime64[ns]")])
    noise = np.flatnonzero(~quakes)
    assert len(noise) > 0
    for i in noise:
        t0 = ds.start_time.values[i]
        t1 = t0 + np.timedelta64(25, "s")
        gap = np.minimum(np.abs(picks - t0), np.abs(picks - t1)) / np.timedelta64(1, "s")
        inside = (picks >= t0) & (picks <= t1)
        assert not inside.any() and gap.min() >= 60.0
    # loud events show up right after P on Z
    loud = cat[cat.snr > 100]
    for i in np.flatnonzero(quakes):
        eid = ds.event_id.values[i].split(":")[-1]
        if eid in set(loud.event_id):
            z = ds.waveform.values[i, 0]
            p = ds.p_index.values[i]
            assert np.abs(z[p:p + 200]).max() > 5 * np.abs(z[: p - 20]).std()


def test_store_without_catalog_gives_quiet_noise_outside_triggers(synthetic_store, tmp_path):
    from seisgrid.seismic.stalta import detect_archive

    _, store = synthetic_store
    out = str(tmp_path / "quiet.zarr")
    summary = build_windows([str(store)], out, progress=False, augment_factor=0, store_noise_per_station=20)
    ds = xr.open_zarr(out).load()
    _check_schema(ds)
    assert set(ds.subclass.values) == {"quiet_noise"} and (ds.label.values == 0).all()
    assert summary["skipped"] == [] and summary["warnings"] == []
    counts = pd.Series(ds.station.values).value_counts()
    assert (counts <= 20).all() and len(counts) == 2
    pad = np.timedelta64(5, "s")
    for trig in detect_archive(str(store), min_stations=1):
        on = np.datetime64(pd.Timestamp(trig["time"]).tz_localize(None), "ns") - pad
        off = on + np.timedelta64(int((trig["duration"]) * 1e9), "ns") + 2 * pad
        own = np.isin(ds.station.values, trig["stations"])  # with 2 stations every trigger masks its own station
        hit = (ds.start_time.values < off) & (ds.start_time.values + np.timedelta64(25, "s") > on)
        assert not (hit & (own | (trig["coincidence_sum"] >= 2))).any()
    # every window lies in recorded data: the synthetic channel-days have gaps, none is cut across one
    assert not np.any(np.all(ds.waveform.values == 0, axis=-1) & ds.present.values)


def test_store_noise_only_where_data_exist(tmp_path):
    from seisgrid.seismic.ingest import ingest

    folder = tmp_path / "short-files"
    folder.mkdir()
    rng = np.random.default_rng(0)
    starts = [obspy_time("2021-03-01T00:00:00"), obspy_time("2021-03-03T00:00:00")]
    for k, start in enumerate(starts):  # two 20-minute files two days apart
        for cha in ("HHZ", "HHN", "HHE"):
            tr = obspy_trace(rng.normal(0, 50, 120000).astype(np.int32), "XX", "AAA", cha, 100.0, start)
            tr.write(str(folder / f"f{k}{cha}.mseed"), format="MSEED")
    store = tmp_path / "short.zarr"
    ingest(str(folder), str(store), progress=False)
    cat = tmp_path / "catalog.csv"
    pd.DataFrame([{"event_id": "1", "station": "XX.AAA", "p_time": "2021-03-01T00:10:00",
                   "s_time": "2021-03-01T00:10:05"}]).to_csv(cat, index=False)
    summary = build_windows([str(store)], str(tmp_path / "w.zarr"), catalog=str(cat), progress=False,
                            augment_factor=0, catalog_noise_ratio=5)
    ds = xr.open_zarr(tmp_path / "w.zarr").load()
    assert summary["skipped"] == [] and (ds.subclass.values == "quiet_noise").sum() == 5
    t = ds.start_time.values[ds.label.values == 0]
    inside = [(t >= np.datetime64(s.datetime) + np.timedelta64(5, "s"))
              & (t + np.timedelta64(30, "s") <= np.datetime64(s.datetime) + np.timedelta64(1200, "s"))
              for s in starts]
    assert np.all(inside[0] | inside[1])
    # a catalog whose picks cover all the data: 0 noise windows, named in the warnings
    pd.DataFrame([{"event_id": str(i), "station": "XX.AAA", "p_time": str(np.datetime64(s.datetime)
                                                                          + np.timedelta64(60 * m, "s"))}
                  for i, (s, m) in enumerate((s, m) for s in starts for m in range(1, 20, 2))]).to_csv(cat, index=False)
    summary = build_windows([str(store)], str(tmp_path / "w2.zarr"), catalog=str(cat), progress=False,
                            augment_factor=0)
    assert summary["labels"]["noise"] == 0
    assert summary["warnings"] == ["short.zarr: 0 noise windows although noise was requested (no 25 s of "
                                   "recorded data at least 60 s from every catalog P and S)"]


def obspy_time(text):
    import obspy

    return obspy.UTCDateTime(text)


def obspy_trace(data, net, sta, cha, rate, start):
    import obspy

    return obspy.Trace(data, header={"network": net, "station": sta, "channel": cha, "sampling_rate": rate,
                                     "starttime": start})


# ------------------------------------------------------------------------------------------ real data


@requires_data("seismic/stead-eqt-sample")
def test_real_stead():
    recs = list(read_stead(data_path("seismic/stead-eqt-sample")))
    assert len(recs) == 50 and all(isinstance(r, Record) for r in recs)
    assert {r.station for r in recs} == {"109C"}
    assert all(4.0 <= r.p_seconds <= 9.0 and r.present.all() for r in recs)


@requires_data("seismic/phasenet-ncedc")
def test_real_phasenet():
    recs = list(read_phasenet(data_path("seismic/phasenet-ncedc")))
    assert len(recs) == 154 and all(isinstance(r, Record) for r in recs)
    assert sum(int(r.present.sum() == 1) for r in recs) == 39
    assert len({(r.network, r.station) for r in recs}) == 108
    assert all(r.p_seconds == 30.0 for r in recs)


@requires_data("seismic/seisbench-ipoc-dummy")
def test_real_seisbench():
    recs = list(read_seisbench(data_path("seismic/seisbench-ipoc-dummy")))
    assert len(recs) == 100 and all(isinstance(r, Record) for r in recs)
    assert all(r.sampling_rate == 20.0 and r.p_predicted and 0.0 < r.p_seconds < 60.0 for r in recs)


@requires_data("seismic/phasenet-ncedc")
@requires_data("seismic/stead-eqt-sample")
@requires_data("seismic/seisbench-ipoc-dummy")
def test_real_build(tmp_path):
    base = data_path("seismic")
    sources = [str(base / n) for n in ("stead-eqt-sample", "phasenet-ncedc", "seisbench-ipoc-dummy")]
    summary = build_windows(sources, str(tmp_path / "w.zarr"), progress=False)
    assert summary["skipped"] == []
    assert summary["sources"]["phasenet-ncedc"]["noise"] == 154
    assert summary["sources"]["stead-eqt-sample"]["earthquake"] == 50
    assert summary["sources"]["seisbench-ipoc-dummy"]["earthquake"] == 100
    for split in ("train", "val", "test"):
        assert summary["splits"][split]["earthquake"] > 0 and summary["splits"][split]["noise"] > 0
    assert summary["split_region"]["test"]["noise"] > 0 and summary["split_region"]["test"]["earthquake"] > 0
    assert summary["subclasses"] == {"phasenet-ncedc": {"earthquake": 154, "pre_event_noise": 154},
                                     "seisbench-ipoc-dummy": {"earthquake": 100, "pre_event_noise": 2},
                                     "stead-eqt-sample": {"earthquake": 50}}
    # the STEAD sample's P comes 4–9 s into each record: no pre-P noise window, and the summary says so
    # and with the default test regions (northern California held out) these three sets leave train no noise
    assert summary["warnings"][0] == ("stead-eqt-sample: 0 noise windows although noise was requested "
                                      "(50 event records too short before P)")
    assert summary["warnings"][1].startswith("split_region: no train noise windows") and len(summary["warnings"]) == 2
    ds = xr.open_zarr(tmp_path / "w.zarr")
    _check_schema(ds)
    quakes = (ds.label.values == 1) & (ds.source.values == "stead-eqt-sample") & ~ds.augmented.values
    assert np.all(ds.distance_km.values[quakes] > 0)  # from source_distance_km


@requires_data("seismic/rutford-icestream")
def test_real_rutford_quiet_noise(tmp_path):
    """Two Rutford stations ingested (1000 Hz, a ZZ and a YG station): quiet noise under the trigger mask,
    region from Stations_Rutford.txt, zero-sample dropouts de-spiked (detect's rule)."""
    from seisgrid.seismic.ingest import ingest

    folder = data_path("seismic/rutford-icestream")
    store = tmp_path / "rutford.zarr"
    ingest(str(folder), str(store), pattern="2009021_040000_ST0[24]_*.m", progress=False)
    out = str(tmp_path / "w.zarr")
    summary = build_windows([str(store)], out, progress=False, augment_factor=0,
                            stations=str(folder / "Stations_Rutford.txt"))
    ds = xr.open_zarr(out).load()
    assert summary["warnings"] == [] and summary["skipped"] == []
    assert set(ds.subclass.values) == {"quiet_noise"} and set(ds.region.values) == {"antarctica-rutford"}
    assert sorted(set(zip(ds.network.values, ds.station.values, strict=True))) == [("YG", "ST02"), ("ZZ", "ST04")]
    assert 60 <= ds.sizes["window"] <= 144 and ds.present.values.all()
    # the de-spike rule at the native rate: ST04's 8 isolated zeros lie 15,192 counts from its DC level
    from seisgrid.seismic.labelled.store import plan, read_store

    opts = _opts(stations=str(folder / "Stations_Rutford.txt"))
    tasks, _ = plan(str(store), None, opts, np.random.default_rng(0))
    st04 = next(t for t in tasks if t["station"] == "ZZ.ST04")
    raw = read_store(st04, {**opts, "despike": 0.0})
    clean = read_store(st04, opts)
    zeros = sum(int((r.data == 0).sum()) for r in raw)
    assert zeros > 0 and sum(int((r.data == 0).sum()) for r in clean) == 0


def test_augmentation_noise_drawn_per_subclass_and_band_limited():
    from seisgrid.seismic.labelled.augment import _bandpass, draw_noise

    rng = np.random.default_rng(0)
    pool = np.arange(100)
    noise_class = np.array(["pre_event_noise"] * 90 + ["icequake"] * 10, dtype=object)
    by_class = [draw_noise(pool, noise_class, rng) >= 90 for _ in range(2000)]
    uniform = [draw_noise(pool, None, rng) >= 90 for _ in range(2000)]
    assert 0.45 < np.mean(by_class) < 0.55  # 10 icequakes are drawn as often as 90 pre-event windows
    assert 0.07 < np.mean(uniform) < 0.13
    # the band-limited event keeps 5-10 Hz and loses 30 Hz
    rate, t = 100.0, np.arange(2500) / 100.0
    x = np.stack([np.sin(2 * np.pi * 7 * t) + np.sin(2 * np.pi * 30 * t)] * 3)
    y = _bandpass(x, rate, rng, {"augment_bandpass_low_hz": [4.0, 4.0], "augment_bandpass_high_hz": [12.0, 12.0]})
    spec = np.abs(np.fft.rfft(y[0, 500:2000]))
    freqs = np.fft.rfftfreq(1500, 1 / rate)
    assert spec[np.argmin(abs(freqs - 30))] < 0.01 * spec[np.argmin(abs(freqs - 7))]
