"""Tests of seisgrid.seismic.synth: layout, determinism, truth bookkeeping and physics of the synthetic archive."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import obspy
import pandas as pd
import pytest
import scipy.signal
from obspy import UTCDateTime
from obspy.io.mseed.util import get_record_information

from seisgrid.cluster import LazyClient
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic import synth

SMALL = dict(stations=2, days=0.1, seed=3, sampling_rates=[20.0], events_per_day=120,
             icequakes_per_day=48, gaps_per_day=0, overlaps_per_day=0, record_length=512)

CATALOG_COLUMNS = ["event_id", "origin_time", "latitude", "longitude", "depth_km", "magnitude",
                   "station", "distance_km", "p_time", "s_time", "snr"]


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mseed_files(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in root.rglob("*.D.*") if p.is_file())


def _meta(root: pathlib.Path) -> dict:
    return json.loads((root / "archive.json").read_text())


def _events(origin_ns, lat, lon, depth, mag):
    return {
        "origin_ns": np.array(origin_ns, dtype=np.int64),
        "latitude": np.array(lat, dtype=float),
        "longitude": np.array(lon, dtype=float),
        "depth_km": np.array(depth, dtype=float),
        "magnitude": np.array(mag, dtype=float),
    }


def _bandpass(x, fs, lo=2.0, hi=None):
    """Causal band-pass (nothing of a loud arrival leaks to the time before it)."""
    hi = hi or min(20.0, 0.4 * fs)
    sos = scipy.signal.butter(4, [lo, hi], btype="bandpass", fs=fs, output="sos")
    return scipy.signal.sosfilt(sos, np.asarray(x, dtype=float))


# ------------------------------------------------------------------------------------ determinism


def test_same_seed_identical_bytes_different_seed_differs(tmp_path):
    params = dict(SMALL, gaps_per_day=1, overlaps_per_day=1)
    synth.synthesize(tmp_path / "a", **params)
    synth.synthesize(tmp_path / "b", **params)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert len([k for k in a if ".D." in k]) == 2 * 3
    for name in a:
        assert a[name] == b[name], name

    synth.synthesize(tmp_path / "c", **dict(params, seed=4))
    c = _files(tmp_path / "c")
    assert c["catalog.csv"] != a["catalog.csv"]
    assert all(c[name] != a[name] for name in a if ".D." in name)


# ----------------------------------------------------------------------------------------- layout


def test_sds_layout_and_files_read_back(tmp_path):
    out = tmp_path / "arch"
    summary = synth.synthesize(out, **SMALL)
    meta = _meta(out)
    expected_paths = {
        f"2021/SY/ST{s:02d}/BH{c}.D/SY.ST{s:02d}..BH{c}.D.2021.001" for s in (1, 2) for c in "ZNE"
    }
    assert {p.relative_to(out).as_posix() for p in _mseed_files(out)} == expected_paths
    assert set(meta["files"]) == expected_paths
    for name in ("catalog.csv", "stations.csv", "transients.csv", "archive.json"):
        assert (out / name).is_file()

    n = round(0.1 * 86400 * 20)
    for path in _mseed_files(out):
        st = obspy.read(str(path))
        assert len(st) == 1
        tr = st[0]
        assert tr.stats.mseed.encoding == "STEIM2"
        assert tr.stats.mseed.record_length == 512
        assert tr.data.dtype == np.int32
        assert tr.stats.npts == n == meta["file_samples"][path.relative_to(out).as_posix()]
        assert tr.stats.sampling_rate == 20.0
        assert tr.stats.location == ""
        assert tr.stats.starttime == UTCDateTime("2021-01-01")
        assert tr.id in meta["expected_samples"]

    assert summary["files"] == 6 and summary["stations"] == 2
    assert summary["events"] == round(120 * 0.1) == meta["counts"]["events"]
    assert summary["samples"] == 6 * n == sum(meta["expected_samples"].values())
    assert summary["catalog"] == str(out / "catalog.csv")
    assert summary["gaps"] == summary["overlaps"] == 0
    for key in ("out", "icequakes", "seconds"):
        assert key in summary

    stations = pd.read_csv(out / "stations.csv", keep_default_na=False)
    assert list(stations.columns) == ["network", "station", "latitude", "longitude", "elevation_m",
                                      "sampling_rate"]
    assert list(stations.station) == ["ST01", "ST02"]
    assert stations.latitude.between(-78.0, -77.0).all()
    assert stations.longitude.between(165.5, 168.5).all()
    assert meta["parameters"]["seed"] == 3 and meta["parameters"]["days"] == 0.1


def test_partial_days_span_two_files(tmp_path):
    out = tmp_path / "arch"
    synth.synthesize(out, **dict(SMALL, stations=1, start="2021-03-01T22:00:00", days=0.125))
    z = sorted(p.name for p in _mseed_files(out) if p.name.startswith("SY.ST01..BHZ"))
    assert z == ["SY.ST01..BHZ.D.2021.060", "SY.ST01..BHZ.D.2021.061"]
    first = obspy.read(str(out / "2021/SY/ST01/BHZ.D/SY.ST01..BHZ.D.2021.060"))[0]
    second = obspy.read(str(out / "2021/SY/ST01/BHZ.D/SY.ST01..BHZ.D.2021.061"))[0]
    assert first.stats.starttime == UTCDateTime("2021-03-01T22:00:00")
    assert first.stats.npts == 2 * 3600 * 20
    assert second.stats.starttime == UTCDateTime("2021-03-02T00:00:00")
    assert second.stats.npts == 3600 * 20


def test_mixed_sampling_rates_give_channel_codes(tmp_path):
    out = tmp_path / "arch"
    synth.synthesize(out, **dict(SMALL, stations=3, days=0.02, sampling_rates=[20.0, 50.0]))
    stations = pd.read_csv(out / "stations.csv")
    assert list(stations.sampling_rate) == [20.0, 50.0, 20.0]
    for sta, rate in (("ST01", 20.0), ("ST02", 50.0), ("ST03", 20.0)):
        for c in "ZNE":
            tr = obspy.read(str(out / f"2021/SY/{sta}/BH{c}.D/SY.{sta}..BH{c}.D.2021.001"))[0]
            assert tr.stats.sampling_rate == rate
            assert tr.stats.channel == f"BH{c}"
            assert tr.stats.npts == round(0.02 * 86400 * rate)
    assert synth.channel_codes(100.0) == ["HHZ", "HHN", "HHE"]
    assert synth.channel_codes(80.0)[0] == "HHZ"
    assert synth.channel_codes(40.0)[0] == "BHZ"
    assert synth.channel_codes(10.0)[0] == "BHZ"
    assert synth.channel_codes(1.0)[0] == "LHZ"


def test_high_and_low_rate_stations(tmp_path):
    out = tmp_path / "arch"
    synth.synthesize(out, **dict(SMALL, stations=2, days=0.01, sampling_rates=[100.0, 1.0],
                                 icequakes_per_day=200))
    hh = obspy.read(str(out / "2021/SY/ST01/HHZ.D/SY.ST01..HHZ.D.2021.001"))[0]
    lh = obspy.read(str(out / "2021/SY/ST02/LHE.D/SY.ST02..LHE.D.2021.001"))[0]
    assert (hh.stats.sampling_rate, hh.stats.npts) == (100.0, 86400)
    assert (lh.stats.sampling_rate, lh.stats.npts) == (1.0, 864)


# ---------------------------------------------------------------------------------- truth catalog


def test_catalog_columns_and_moveout(tmp_path):
    out = tmp_path / "arch"
    synth.synthesize(out, **dict(SMALL, stations=4))
    cat = pd.read_csv(out / "catalog.csv")
    assert list(cat.columns) == CATALOG_COLUMNS
    assert len(cat) == 12 * 4
    assert set(cat.station) == {"SY.ST01", "SY.ST02", "SY.ST03", "SY.ST04"}
    origin = pd.to_datetime(cat.origin_time)
    p = pd.to_datetime(cat.p_time)
    s = pd.to_datetime(cat.s_time)
    assert (origin < p).all() and (p < s).all()
    assert origin.min() >= pd.Timestamp("2021-01-01", tz="UTC")
    assert (s.max() - pd.Timestamp("2021-01-01", tz="UTC")).total_seconds() < 0.1 * 86400
    assert cat.depth_km.between(2, 20).all()
    assert cat.magnitude.between(-0.5, 3.0).all()
    assert (cat.snr >= 0).all() and cat.snr.notna().all()

    # travel times of a homogeneous half-space: t = sqrt(Δ² + h²) / v
    hypo = np.hypot(cat.distance_km, cat.depth_km)
    tp = (p - origin).dt.total_seconds()
    ts = (s - origin).dt.total_seconds()
    np.testing.assert_allclose(tp, hypo / 6.0, atol=2e-3)
    np.testing.assert_allclose(ts, hypo / 3.46, atol=2e-3)

    # moveout: within each event, P and S times increase with distance, and differ between stations
    for _, ev in cat.groupby("event_id"):
        ev = ev.sort_values("distance_km")
        assert pd.to_datetime(ev.p_time).is_monotonic_increasing
        assert pd.to_datetime(ev.s_time).is_monotonic_increasing
        assert pd.to_datetime(ev.p_time).nunique() == 4
        assert ev[["origin_time", "latitude", "longitude", "depth_km", "magnitude"]].nunique().max() == 1


def test_snr_matches_the_data(tmp_path, monkeypatch):
    """Loud events are loud in the files, a sub-noise event is not visible; SNR falls with distance."""
    start = UTCDateTime("2021-01-01").ns
    fake = _events(
        [start + 600 * 10**9, start + 1800 * 10**9, start + 3000 * 10**9],
        [-77.5, -77.6, -78.2], [167.0, 167.3, 166.0], [8.0, 10.0, 12.0], [2.5, 1.8, -0.4],
    )
    monkeypatch.setattr(synth, "_draw_events", lambda rng, n, lo, hi, *law: fake)
    out = tmp_path / "arch"
    synth.synthesize(out, **dict(SMALL, stations=3, days=0.05, icequakes_per_day=0))
    cat = pd.read_csv(out / "catalog.csv")
    assert cat[cat.event_id == 1].snr.min() > 30
    assert cat[cat.event_id == 3].snr.max() < 1
    for _, row in cat.iterrows():
        sta = row.station.split(".")[1]
        tp = UTCDateTime(row.p_time)
        ts = UTCDateTime(row.s_time)
        ratios = []
        for c in "ZNE":
            tr = obspy.read(str(out / f"2021/SY/{sta}/BH{c}.D/SY.{sta}..BH{c}.D.2021.001"))[0]
            x = _bandpass(tr.data, 20.0)
            i_p, i_s = (math.ceil((t - tr.stats.starttime) * 20.0) for t in (tp, ts))
            # noise: 10 s ending 0.1 s before P (a band-limited onset spreads over ± a sample)
            noise = np.sqrt(np.mean(x[i_p - 202 : i_p - 2] ** 2))
            signal = max(np.sqrt(np.mean(x[i : i + 40] ** 2)) for i in (i_p, i_s))
            ratios.append(signal / noise)
        measured = max(ratios)  # signal + noise over noise
        if row.snr > 10:
            assert measured > 0.5 * row.snr
        if row.snr < 0.2:
            assert measured < 2.0


def test_icequakes_listed_and_present(tmp_path):
    out = tmp_path / "arch"
    synth.synthesize(out, **dict(SMALL, stations=2, days=0.05, events_per_day=0, icequakes_per_day=200))
    tq = pd.read_csv(out / "transients.csv")
    assert list(tq.columns)[:5] == ["transient_id", "station", "time", "amplitude_counts", "duration_s"]
    assert len(tq) == 2 * round(200 * 0.05)
    assert list(tq.transient_id) == list(range(1, len(tq) + 1))
    assert tq.duration_s.between(0.2, 1.0).all()
    assert tq.amplitude_counts.between(30, 3000).all()
    assert pd.to_datetime(tq.time).is_monotonic_increasing
    for _, q in tq.iterrows():
        sta = q.station.split(".")[1]
        peaks = []
        for c in "ZNE":
            tr = obspy.read(str(out / f"2021/SY/{sta}/BH{c}.D/SY.{sta}..BH{c}.D.2021.001"))[0]
            x = _bandpass(tr.data, 20.0, lo=3.0)
            i = int(round((UTCDateTime(q.time) - tr.stats.starttime) * 20))
            before = np.abs(x[max(0, i - 100) : i - 2]).max()
            after = np.abs(x[i : i + int(q.duration_s * 20) + 2]).max()
            peaks.append((before, after))
        if q.amplitude_counts > 100:  # well above the ~3 count background
            assert max(a for _, a in peaks) > 0.3 * q.amplitude_counts
            assert max(a for _, a in peaks) > 3 * max(b for b, _ in peaks)


# --------------------------------------------------------------------------------- gaps, overlaps


def test_gaps_match_archive_json(tmp_path):
    out = tmp_path / "arch"
    summary = synth.synthesize(out, **dict(SMALL, days=0.25, gaps_per_day=2))
    meta = _meta(out)
    assert summary["gaps"] == len(meta["gaps"]) == 2 * 3 * 2
    found = []
    for path in _mseed_files(out):
        st = obspy.read(str(path))
        assert len(st) == 3  # two gaps → three traces
        for net, sta, loc, cha, t0, t1, delta, nsamp in st.get_gaps():
            assert delta > 0
            found.append({
                "id": f"{net}.{sta}.{loc}.{cha}",
                "start": str(t0 + 1 / 20.0),  # ObsPy: last sample before, first sample after
                "end": str(t1),
                "samples": int(round(nsamp)),
            })
        rel = path.relative_to(out).as_posix()
        assert sum(tr.stats.npts for tr in st) == meta["file_samples"][rel]
        assert meta["expected_samples"][st[0].id] == meta["file_samples"][rel]
    def key(g):
        return g["id"], g["start"]

    assert sorted(found, key=key) == sorted(meta["gaps"], key=key)
    for g in meta["gaps"]:
        seconds = UTCDateTime(g["end"]) - UTCDateTime(g["start"])
        assert 60 <= seconds <= 600
        assert g["samples"] == round(seconds * 20)
        day = UTCDateTime("2021-01-01")
        assert UTCDateTime(g["start"]) - day >= 60 and day + 0.25 * 86400 - UTCDateTime(g["end"]) >= 60


def test_overlaps_listed_and_first_wins(tmp_path):
    out = tmp_path / "arch"
    summary = synth.synthesize(out, **dict(SMALL, stations=1, days=0.2, gaps_per_day=1, overlaps_per_day=2))
    meta = _meta(out)
    assert summary["overlaps"] == len(meta["overlaps"]) == 3 * 2
    total = round(0.2 * 86400 * 20)
    for path in _mseed_files(out):
        st = obspy.read(str(path))
        cid = st[0].id
        overlaps = sorted((o for o in meta["overlaps"] if o["id"] == cid), key=lambda o: o["start"])
        gaps = [g for g in meta["gaps"] if g["id"] == cid]
        assert len(overlaps) == 2 and len(gaps) == 1
        main, dups = st[:2], st[2:]  # main data (split by the gap) first, duplicates appended
        assert [str(tr.stats.starttime) for tr in dups] == [o["start"] for o in overlaps]
        assert any(g[6] < 0 for g in st.get_gaps())  # ObsPy sees overlaps
        for tr, o in zip(dups, overlaps, strict=True):
            assert 5 <= o["samples"] / 20 <= 60
            assert tr.stats.npts == o["samples"]
            assert str(tr.stats.endtime + 1 / 20) == o["end"]
            original = next(m for m in main if m.stats.starttime <= tr.stats.starttime <= m.stats.endtime)
            i = int(round((tr.stats.starttime - original.stats.starttime) * 20))
            differ = np.count_nonzero(original.data[i : i + tr.stats.npts] != tr.data)
            assert differ == o["conflicting_samples"] and 1 <= differ <= 5
        # samples present after resolving overlaps: total minus the gap
        times = np.concatenate([np.round((tr.times("timestamp")) * 20).astype(np.int64) for tr in st])
        assert len(np.unique(times)) == total - gaps[0]["samples"] == meta["expected_samples"][cid]
        assert sum(tr.stats.npts for tr in st) == meta["expected_samples"][cid] + sum(o["samples"] for o in overlaps)

        # "first wins" at record level: every duplicate record starts no earlier than the main record
        # holding its first sample, so the original (earlier in the file) samples are kept
        records, offset, size = [], 0, path.stat().st_size
        while offset < size:
            info = get_record_information(str(path), offset)
            records.append((offset, info["starttime"], info["npts"]))
            offset += info["record_length"]
        n_main = 0
        covered = 0
        for _, _, npts in records:
            if covered >= sum(m.stats.npts for m in main):
                break
            covered += npts
            n_main += 1
        main_records, dup_records = records[:n_main], records[n_main:]
        assert dup_records
        for _, start, npts in dup_records:
            holder = [s for _, s, n in main_records if s <= start < s + n / 20]
            assert len(holder) == 1
            end = start + (npts - 1) / 20
            assert all(not (s > start and s <= end) for _, s, _ in main_records), \
                "duplicate record spans two main records"


def test_too_many_gaps_for_a_short_day(tmp_path):
    # known before any file is written or a cluster started: a ConfigError, not a failed task
    client = LazyClient("local")
    with pytest.raises(ConfigError, match="gaps_per_day"):
        synth.synthesize(tmp_path / "x", client=client, **dict(SMALL, days=0.01, gaps_per_day=3))
    assert not client.started and not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------- midnight


def test_event_crossing_midnight_is_continuous(tmp_path, monkeypatch):
    """An event whose P arrives before midnight and S after: the waveform in the two day files is
    exactly the event waveform (noise removed by differencing with an event-free archive)."""
    midnight = UTCDateTime("2021-01-02")
    params = dict(SMALL, stations=2, start="2021-01-01T23:50:00", days=20 / 1440, icequakes_per_day=0)
    # put the event 25 km north of ST01, 6 km deep: P reaches ST01 1.5 s before midnight, S 1.6 s after
    stations = synth._draw_stations(np.random.default_rng(params["seed"]), 2)
    lat = float(stations["latitude"][0]) + 25.0 / synth.KM_PER_DEG
    travel = math.hypot(25.0, 6.0) / synth.VP
    origin = midnight.ns - round((travel + 1.5) * 1e9)
    fake = _events([origin], [lat], [float(stations["longitude"][0])], [6.0], [2.5])
    monkeypatch.setattr(synth, "_draw_events", lambda rng, n, lo, hi, *law: fake)
    synth.synthesize(tmp_path / "with", **params)
    monkeypatch.setattr(synth, "_draw_events", lambda rng, n, lo, hi, *law: _events([], [], [], [], []))
    synth.synthesize(tmp_path / "without", **params)

    cat = pd.read_csv(tmp_path / "with" / "catalog.csv")
    assert len(cat) == 2
    crossing = 0
    for sta in ("ST01", "ST02"):
        row = cat[cat.station == f"SY.{sta}"].iloc[0]
        if not UTCDateTime(row.p_time) < midnight < UTCDateTime(row.s_time):
            continue
        crossing += 1
        for c in "ZNE":
            parts = {}
            for name in ("with", "without"):
                st = obspy.Stream()
                for doy in ("001", "002"):
                    st += obspy.read(str(tmp_path / name / f"2021/SY/{sta}/BH{c}.D/SY.{sta}..BH{c}.D.2021.{doy}"))
                assert len(st) == 2
                assert st[1].stats.starttime == st[0].stats.endtime + 1 / 20.0 == midnight
                st.merge(method=0)
                assert len(st) == 1 and not np.ma.isMaskedArray(st[0].data)
                parts[name] = st[0]
            diff = parts["with"].data.astype(np.int64) - parts["without"].data.astype(np.int64)
            t = parts["with"].times("utcdatetime")
            i_mid = int(np.searchsorted(t, midnight))
            i_s = int(np.searchsorted(t, UTCDateTime(row.s_time)))
            # the event is there on both sides of midnight: strong S and coda after, P coda before
            assert np.abs(diff[i_mid - 40 : i_mid]).max() > 20
            assert np.abs(diff[i_s : i_s + 40]).max() > 1000
            # and it is one continuous waveform: no jump at midnight beyond the local variation
            steps = np.abs(np.diff(diff[i_mid - 60 : i_mid + 60].astype(float)))
            assert steps[59] <= np.sort(steps)[-3] + 2
    assert crossing >= 1


# ------------------------------------------------------------------------------------------- noise


def test_noise_spectrum_microseism_dominates(tmp_path):
    out = tmp_path / "arch"
    synth.synthesize(out, **dict(SMALL, stations=1, days=0.05, events_per_day=0, icequakes_per_day=0))
    for c in "ZNE":
        tr = obspy.read(str(out / f"2021/SY/ST01/BH{c}.D/SY.ST01..BH{c}.D.2021.001"))[0]
        f, pxx = scipy.signal.welch(tr.data.astype(float), fs=20.0, nperseg=4096)
        df = f[1] - f[0]
        micro = pxx[(f >= 0.1) & (f < 1.0)].sum() * df
        high = pxx[(f >= 1.0) & (f < 5.0)].sum() * df
        assert micro > 100 * high
        peak = f[np.argmax(np.where(f > 0.05, pxx, 0))]
        assert 0.1 <= peak <= 0.35
        assert 0.5 < np.sqrt(high) < 30  # a few counts of broadband background
        assert abs(np.mean(tr.data)) < 0.2 * np.std(tr.data)


# -------------------------------------------------------------------------------- distributed, fs


def test_distributed_output_identical(tmp_path):
    from distributed import Client, LocalCluster

    params = dict(SMALL, stations=2, days=0.15, start="2021-01-01T22:00:00", gaps_per_day=1,
                  overlaps_per_day=1)
    synth.synthesize(tmp_path / "local", **params)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            summary = synth.synthesize(tmp_path / "dist", client=client, **params)
    assert summary["files"] == 2 * 3 * 2
    a, b = _files(tmp_path / "local"), _files(tmp_path / "dist")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_fsspec_url_output(tmp_path):
    import fsspec

    url = "memory://seisgrid-synth-test/arch"
    summary = synth.synthesize(url, **dict(SMALL, stations=1, days=0.02))
    fs = fsspec.filesystem("memory")
    try:
        names = fs.find("/seisgrid-synth-test/arch")
        assert "/seisgrid-synth-test/arch/archive.json" in names
        assert "/seisgrid-synth-test/arch/2021/SY/ST01/BHZ.D/SY.ST01..BHZ.D.2021.001" in names
        assert summary["catalog"] == url + "/catalog.csv"
        synth.synthesize(tmp_path / "local", **dict(SMALL, stations=1, days=0.02))
        local = (tmp_path / "local" / "2021/SY/ST01/BHZ.D/SY.ST01..BHZ.D.2021.001").read_bytes()
        assert fs.cat("/seisgrid-synth-test/arch/2021/SY/ST01/BHZ.D/SY.ST01..BHZ.D.2021.001") == local
    finally:
        fs.rm("/seisgrid-synth-test", recursive=True)


@pytest.mark.s3
def test_s3_output(s3_bucket):
    from seisgrid import storage

    url = f"{s3_bucket}/synth"
    summary = synth.synthesize(url, **dict(SMALL, stations=1, days=0.02))
    assert summary["files"] == 3
    meta = storage.read_json(f"{url}/archive.json")
    fs, root = storage.filesystem(url)
    for rel in meta["files"]:
        with fs.open(f"{root}/{rel}", "rb") as f:
            tr = obspy.read(f)[0]
        assert tr.stats.mseed.encoding == "STEIM2"


# ---------------------------------------------------------------------------------- config, errors


def test_defaults_from_config(tmp_path):
    import dask.config

    settings = {"seisgrid.synth": {**SMALL, "stations": 1, "days": 0.01, "network": "XX",
                                   "start": "2022-02-03", "seed": 0}}
    with dask.config.set(settings):
        summary = synth.synthesize(tmp_path / "arch", stations=2)
    assert summary["stations"] == 2
    assert (tmp_path / "arch/2022/XX/ST02/BHZ.D/XX.ST02..BHZ.D.2022.034").is_file()


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"days": 0}, "days"),
        ({"days": -1}, "days"),
        ({"stations": 0}, "stations"),
        ({"stations": -1}, "stations"),
        ({"stations": 2.5}, "stations"),
        ({"sampling_rates": [-100.0]}, "sampling_rates"),
        ({"sampling_rates": ["fast"]}, "sampling_rates"),
        ({"days": "a week"}, "days"),
        ({"events_per_day": -3}, "events_per_day"),
        ({"b_value": -1}, "b_value"),
        ({"magnitude_range": [2.0, 1.0]}, "magnitude_range"),
        ({"magnitude_range": [0.0]}, "magnitude_range"),
        ({"overlaps_per_day": float("nan")}, "overlaps_per_day"),
        ({"sampling_rates": [0.0]}, "sampling_rates"),
        ({"sampling_rates": [5000.0]}, "sampling_rates"),
        ({"sampling_rates": []}, "sampling_rates"),
        ({"record_length": 1000}, "record_length"),
        ({"network": "TOOLONG"}, "network"),
        ({"start": "not a date"}, "start"),
        ({"gaps_per_day": -1}, "gaps_per_day"),
        ({"seed": -5}, "seed"),
    ],
)
def test_bad_parameters(tmp_path, bad, match):
    # checked before the client is resolved: a LazyClient (what the CLI passes) is never started
    client = LazyClient("local")
    with pytest.raises(ConfigError, match=match) as info:
        synth.synthesize(tmp_path / "x", client=client, **dict(SMALL, **bad))
    assert isinstance(info.value, SeisgridError)
    assert not client.started
    assert not (tmp_path / "x").exists()


def test_b_value_shapes_only_the_magnitudes():
    from seisgrid.seismic import synthwaves

    lo, hi = synth.MAG_RANGE
    draws = {b: synthwaves._draw_events(np.random.default_rng(7), 4000, 0, 10**12, b) for b in (1.0, 0.0)}
    u = np.random.default_rng(7)
    # b = 1 (the default) is the truncated Gutenberg-Richter law of every archive so far
    assert np.array_equal(draws[1.0]["magnitude"], synthwaves._draw_events(u, 4000, 0, 10**12)["magnitude"])
    assert np.mean(draws[1.0]["magnitude"] < 0.0) == pytest.approx(0.68, abs=0.03)
    flat = draws[0.0]["magnitude"]  # b = 0: uniform on the range, the same times and places
    assert lo <= flat.min() and flat.max() <= hi
    assert np.histogram(flat, bins=7, range=(lo, hi))[0] == pytest.approx(np.full(7, 4000 / 7), rel=0.15)
    for key in ("origin_ns", "latitude", "longitude", "depth_km"):
        assert np.array_equal(draws[0.0][key], draws[1.0][key])
    narrow = synthwaves._draw_events(np.random.default_rng(7), 4000, 0, 10**12, 0.0, (0.0, 2.5))["magnitude"]
    assert narrow.min() >= 0.0 and narrow.max() <= 2.5 and np.mean(narrow < 1.25) == pytest.approx(0.5, abs=0.03)


def test_sds_relpath():
    assert synth.sds_relpath("SY", "ST01", "", "HHZ", 2021, 5) == "2021/SY/ST01/HHZ.D/SY.ST01..HHZ.D.2021.005"
    assert math.isclose(synth.MAG_RANGE[1] - synth.MAG_RANGE[0], 3.5)
