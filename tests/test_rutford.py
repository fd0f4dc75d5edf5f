"""Archive mode on 1000 Hz records like the Rutford ice stream: on-the-fly resampling to the model's rate,
de-spiking of dropouts, station grouping and coordinates across network-code quirks, and the real records."""

from __future__ import annotations

import pathlib

import numpy as np
import obspy
import pytest
from helpers import data_path, requires_data
from oracle import save_oracle

from seisgrid.seismic import models, stalta
from seisgrid.seismic.detect import detect
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.stationdata import (
    data_days,
    despike,
    read_component,
    station_channels,
    station_coordinates,
)
from seisgrid.seismic.store import Archive
from seisgrid.seismic.synth import synthesize

SEED = 8  # 6 events in 29 minutes; event 1 has SNR ≥ 10 at all three stations


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rutford")
    path = save_oracle(tmp / "oracle.pt")
    yield tmp, path
    models.ARCHITECTURES.pop("oracle", None)


def test_1000_hz_store_detected_with_a_100_hz_model_gives_the_100_hz_events(oracle):
    """The same synthetic network and events written at 100 Hz and at 1000 Hz: detect reads the 1000 Hz
    store at its rate and resamples each task's span to the model's 100 Hz (the windows' polyphase rule),
    so the events, their stations and picks are those of the 100 Hz store."""
    tmp, model = oracle
    out = {}
    for rate in (100.0, 1000.0):
        name = f"r{int(rate)}"
        synthesize(str(tmp / name), stations=3, days=0.02, sampling_rates=[rate], events_per_day=300, seed=SEED)
        ingest(str(tmp / name), str(tmp / f"{name}.zarr"), pattern="*.D.*", progress=False)
        assert Archive(str(tmp / f"{name}.zarr")).channel("SY.ST01..HHZ")["sampling_rate"] == rate
        out[rate] = detect(str(tmp / f"{name}.zarr"), model, str(tmp / name / "cat.xml"), stride_seconds=10.0,
                           stations=str(tmp / name / "stations.csv"), progress=False)
    slow, fast = out[100.0], out[1000.0]
    assert fast["settings"]["sampling_rate"] == 100.0
    assert slow["station_days"] == fast["station_days"] == pytest.approx(3 * 0.02, abs=1e-6)
    assert slow["windows_evaluated"] == fast["windows_evaluated"] > 0
    assert slow["n_events"] == fast["n_events"] >= 1
    for a, b in zip(slow["events"], fast["events"], strict=True):
        assert a["stations"] == b["stations"]
        assert abs(obspy.UTCDateTime(a["first_arrival"]) - obspy.UTCDateTime(b["first_arrival"])) < 0.1
        for pa, pb in zip(a["picks"], b["picks"], strict=True):
            assert pa["window_start"] == pb["window_start"] and pa["method"] == pb["method"]
    # the 100 Hz samples of the 1000 Hz store are the windows' polyphase resampling of its 1000 Hz samples
    from seisgrid.seismic.labelled.windowing import resample

    archive = Archive(str(tmp / "r1000.zarr"))
    lo = obspy.UTCDateTime("2021-01-01T00:10:00").ns
    at_1000 = read_component(archive, "SY.ST02..HHZ", lo, lo + 600 * 10**9, 1000.0)
    at_100 = read_component(archive, "SY.ST02..HHZ", lo, lo + 600 * 10**9, 100.0)
    assert at_1000.shape == (600_000,) and at_100.shape == (60_000,) and np.isfinite(at_100).all()
    expected = resample(at_1000.astype(np.float64), 1000.0, 100.0) + at_1000.astype(np.float64).mean()
    np.testing.assert_allclose(at_100, expected, rtol=0, atol=1e-3 * np.abs(expected).max())


def test_despike_replaces_dropouts_only():
    rng = np.random.default_rng(0)
    x = 4000.0 + rng.normal(0, 20, 2000)
    x[[0, 500, 501, 1999]] = 0.0  # dropouts: at the ends and two in a row
    crossing = 30.0 * np.sin(np.arange(2000) * 0.3)  # a signal through 0: exact zeros that are data
    crossing[[100, 400]] = 0.0
    y = x.copy()
    assert despike(y, 10.0) == 4
    assert np.all(np.abs(y[[0, 500, 501, 1999]] - 4000.0) < 100) and np.array_equal(np.delete(y, [0, 500, 501, 1999]),
                                                                                   np.delete(x, [0, 500, 501, 1999]))
    c = crossing.copy()
    assert despike(c, 10.0) == 0 and np.array_equal(c, crossing)
    z = x.copy()
    assert despike(z, 0.0) == 0 and np.array_equal(z, x)  # off


def _write(folder: pathlib.Path, ids: list[str], seconds: float = 120.0, rate: float = 100.0, zero_at=()):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for cid in ids:
        net, sta, loc, cha = cid.split(".")
        data = (3000 + rng.normal(0, 10, int(seconds * rate))).astype(np.int32)
        data[list(zero_at)] = 0
        obspy.Trace(data, header={"network": net, "station": sta, "location": loc, "channel": cha,
                                  "sampling_rate": rate, "starttime": obspy.UTCDateTime("2009-01-21T04:00:00")}
                    ).write(str(folder / f"{cid}.mseed"), format="MSEED")


def test_station_groups_and_coordinates_across_network_codes(tmp_path, caplog):
    """Rutford's quirk (each station under its own ZZ or YG code) leaves one group per station; one station
    whose components carry two network codes is merged; the same code and components under two networks
    stay two stations. Coordinates come from a Name/Latitude/Longitude file, matched on the station code."""
    _write(tmp_path / "src", ["ZZ.ST01..EHZ", "ZZ.ST01..EHN", "ZZ.ST01..EHE", "YG.ST02..EHZ", "YG.ST02..EH1",
                              "YG.ST02..EH2",
                              "ZZ.ST03..EHZ", "YG.ST03..EHN", "YG.ST03..EHE",  # one station, split codes
                              "AA.ST04..HHZ", "BB.ST04..HHZ",  # two stations sharing a code
                              "ZZ.ST05..EHZ", "ZZ.ST05.10.BHZ", "ZZ.ST05.10.BHN", "ZZ.ST05.10.BHE"])
    ingest(str(tmp_path / "src"), str(tmp_path / "s.zarr"), progress=False)
    archive = Archive(str(tmp_path / "s.zarr"))
    with caplog.at_level("WARNING", logger="seisgrid"):
        groups = station_channels(archive)
    assert groups == {
        "AA.ST04": {"Z": "AA.ST04..HHZ"}, "BB.ST04": {"Z": "BB.ST04..HHZ"},
        "YG.ST02": {"Z": "YG.ST02..EHZ", "N": "YG.ST02..EH1", "E": "YG.ST02..EH2"},
        "YG.ST03": {"Z": "ZZ.ST03..EHZ", "N": "YG.ST03..EHN", "E": "YG.ST03..EHE"},
        "ZZ.ST01": {"Z": "ZZ.ST01..EHZ", "N": "ZZ.ST01..EHN", "E": "ZZ.ST01..EHE"},
        "ZZ.ST05": {"Z": "ZZ.ST05.10.BHZ", "N": "ZZ.ST05.10.BHN", "E": "ZZ.ST05.10.BHE"},  # one 3-C sensor
    }
    assert "grouped as one station YG.ST03" in caplog.text and "treated as different stations" in caplog.text
    assert station_channels(archive, "Z")["ZZ.ST05"] == {"Z": "ZZ.ST05.10.BHZ"}
    assert sum(data_days(archive, groups).values()) == pytest.approx(6 * 120 / 86400)

    (tmp_path / "Stations.txt").write_text("Latitude,Longitude,Elevation,Name\n-78.1454,-84.0391,307,ST01\n"
                                           "-78.1534,-84.0178,307,ST02\nbad,-83.9,307,ST03\n"
                                           "-78.15,-84.05,307,ST05\n")
    with caplog.at_level("WARNING", logger="seisgrid"):
        coords = station_coordinates(str(tmp_path / "Stations.txt"), groups)
    assert coords == {"ZZ.ST01": (-78.1454, -84.0391), "YG.ST02": (-78.1534, -84.0178),
                      "ZZ.ST05": (-78.15, -84.05)}
    assert "row 3: skipped" in caplog.text and "YG.ST03" in caplog.text  # reported, the rest used
    # an IRIS-style file (all YG) still matches the ZZ stations by code; NET.STA wins where it exists
    rows = [{"network": "YG", "station": "ST01", "latitude": 1.0, "longitude": 2.0},
            {"network": "AA", "station": "ST04", "latitude": 3.0, "longitude": 4.0},
            {"network": "BB", "station": "ST04", "latitude": 5.0, "longitude": 6.0}]
    assert station_coordinates(rows, groups) == {"ZZ.ST01": (1.0, 2.0), "AA.ST04": (3.0, 4.0),
                                                 "BB.ST04": (5.0, 6.0)}


def test_dropouts_removed_before_detection(tmp_path):
    """A record with dropouts (exact zeros 3000 counts from the DC) reads clean, at its rate and resampled."""
    _write(tmp_path / "src", ["ZZ.ST09..EHZ"], seconds=60.0, rate=1000.0, zero_at=(10_000, 30_000, 30_001))
    ingest(str(tmp_path / "src"), str(tmp_path / "s.zarr"), progress=False)
    archive = Archive(str(tmp_path / "s.zarr"))
    lo = obspy.UTCDateTime("2009-01-21T04:00:00").ns
    raw = read_component(archive, "ZZ.ST09..EHZ", lo, lo + 60 * 10**9, 1000.0)
    clean = read_component(archive, "ZZ.ST09..EHZ", lo, lo + 60 * 10**9, 1000.0, despike_factor=10.0)
    assert (raw == 0).sum() == 3 and (clean == 0).sum() == 0 and abs(clean - 3000).max() < 100
    resampled = read_component(archive, "ZZ.ST09..EHZ", lo, lo + 60 * 10**9, 100.0, despike_factor=10.0)
    assert resampled.shape == (6000,) and abs(resampled[100:-100] - 3000).max() < 20


@requires_data("seismic/rutford-icestream")
def test_real_rutford_records(tmp_path):
    """Three of the ten real stations (ZZ.ST01 with 1 dropout instant, YG.ST02 without, ZZ.ST09 with 6): codes
    kept as they are, one 3-C group each, coordinates from Stations_Rutford.txt, dropouts removed, and fewer
    single-station STA/LTA triggers once they are (ST09: 10 → 4)."""
    src = data_path("seismic/rutford-icestream")
    store = str(tmp_path / "rutford.zarr")
    ingest(str(src / "2009" / "021"), store, pattern="*ST0[129]_*", progress=False)
    archive = Archive(store)
    groups = station_channels(archive)
    assert sorted(groups) == ["YG.ST02", "ZZ.ST01", "ZZ.ST09"] and all(len(g) == 3 for g in groups.values())
    assert archive.channel("ZZ.ST01..EHZ")["sampling_rate"] == 1000.0
    assert sum(data_days(archive, groups).values()) == pytest.approx(3 * 1800 / 86400)
    coords = station_coordinates(str(src / "Stations_Rutford.txt"), groups)
    assert coords["ZZ.ST01"] == (-78.1454, -84.0391) and set(coords) == set(groups)
    lo = obspy.UTCDateTime("2009-01-21T04:00:00").ns
    z = read_component(archive, "ZZ.ST09..EHZ", lo, lo + 1800 * 10**9, 1000.0)
    assert (z == 0).sum() == 6 and (read_component(archive, "ZZ.ST09..EHZ", lo, lo + 1800 * 10**9, 1000.0,
                                                   despike_factor=10.0) == 0).sum() == 0
    counts = {}
    for factor in (0.0, 10.0):
        _, info = stalta.detect_archive(store, return_info=True, despike=factor, min_stations=1)
        counts[factor] = info["station_triggers"]
        assert info["station_days"] == pytest.approx(3 * 1800 / 86400)
    assert info["despiked"] == 7 and counts[10.0] < counts[0.0]  # Z dropouts: 1 on ST01, 6 on ST09
