"""Event miniSEED files + picks (QuakeML or CSV): file → event matching, the P rule, channels (one sensor,
1/2 → N/E), the source class (icequake), regions and distances; on generated files and the Thwaites set."""

from __future__ import annotations

import math

import numpy as np
import obspy
import pandas as pd
import pytest
import xarray as xr
from helpers import data_path, requires_data
from obspy.core.event import Catalog, Event, Origin, Pick, WaveformStreamID

from seisgrid.errors import ConfigError
from seisgrid.seismic.channels import component_slot, station_sensors
from seisgrid.seismic.labelled import (
    WindowsError,
    build_windows,
    detect_format,
    read_picks,
    read_stations,
    region_of,
)
from seisgrid.seismic.labelled.build import _options
from seisgrid.seismic.labelled.eventfiles import plan, read_events

RATE = 200.0
T0 = obspy.UTCDateTime("2020-07-01T10:00:00")
#: event id → (origin offset after T0 in s, lat, lon); each event file starts 6 s before its origin, 40 s long
EVENTS = {"ev1": (0.0, -76.6, -103.4), "ev2": (600.0, -76.6, -103.4), "ev3": (1200.0, -76.6, -103.4)}
STATIONS = {"AAA": (-76.62, -103.30), "BBB": (-76.58, -103.45), "CCC": (-76.55, -103.40)}


def _trace(net, sta, cha, start, n, onset, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    x = rng.normal(0, 20.0, n)
    if onset is not None:
        x += np.where(t >= onset, 3000.0 * np.sin(2 * np.pi * 15 * (t - onset)) * np.exp(-(t - onset) / 0.5), 0)
    return obspy.Trace((x + 1000).astype(np.int32), header={
        "network": net, "station": sta, "location": "", "channel": cha, "sampling_rate": RATE, "starttime": start})


def _write_event_files(folder, per_station_files=False):
    """Event files: HHZ/HH1/HH2 at every station, plus a BH sensor at AAA (must not be mixed in)."""
    (folder / "waves").mkdir(parents=True)
    for k, (eid, (dt, _, _)) in enumerate(EVENTS.items()):
        start = T0 + dt - 6.0
        n = int(40 * RATE)
        st = obspy.Stream()
        for j, sta in enumerate(STATIONS):
            for cha in ("HHZ", "HH1", "HH2"):
                st += _trace("XX", sta, cha, start, n, 6.0 + 1.0 + j, 100 * k + 10 * j + len(st))
        for cha in ("BHZ", "BHN"):  # a second, 2-component sensor at AAA
            st += _trace("XX", "AAA", cha, start, n, 7.0, 999)
        if per_station_files:
            for sta in STATIONS:
                st.select(station=sta).write(str(folder / "waves" / f"{eid}.{sta}.mseed"), format="MSEED")
        else:
            st.write(str(folder / "waves" / f"{start.strftime('%Y%m%d%H%M%S')}.m"), format="MSEED")
    # a file of no event (a day later)
    obspy.Stream([_trace("XX", "AAA", "HHZ", T0 + 86400, int(40 * RATE), None, 5)]).write(
        str(folder / "waves" / "stray.mseed"), format="MSEED")


def _picks():
    """ev1: P at AAA, S only at BBB, nothing at CCC; ev2: P at every station; ev3: no picks (origin only)."""
    rows = []
    for eid, (dt, lat, lon) in EVENTS.items():
        origin = T0 + dt
        if eid == "ev1":
            rows += [(eid, origin, lat, lon, "AAA", "P", origin + 1.0),
                     (eid, origin, lat, lon, "AAA", "S", origin + 1.7),
                     (eid, origin, lat, lon, "BBB", "S", origin + 2.0 * 1.73)]
        elif eid == "ev2":
            rows += [(eid, origin, lat, lon, sta, "Pg", origin + 1.0 + j) for j, sta in enumerate(STATIONS)]
    return rows


def _catalog():
    cat = Catalog()
    picks = _picks()
    for eid, (dt, lat, lon) in EVENTS.items():
        ev = Event(resource_id=f"smi:local/{eid}")
        ev.origins.append(Origin(time=T0 + dt, latitude=lat, longitude=lon, depth=2000.0))
        for _, _, _, _, sta, phase, t in (p for p in picks if p[0] == eid):
            ev.picks.append(Pick(time=t, phase_hint=phase, waveform_id=WaveformStreamID(network_code="",
                                                                                        station_code=sta)))
        cat.append(ev)
    return cat


def _write_quakeml(folder):
    _catalog().write(str(folder / "events.xml"), format="QUAKEML")


def _write_csv(folder):
    rows = [{"event_id": e, "origin_time": str(o), "latitude": la, "longitude": lo, "depth_m": 2000.0,
             "station": s, "phase": ph, "pick_time": str(t)} for e, o, la, lo, s, ph, t in _picks()]
    rows.append({"event_id": "ev2", "station": "AAA", "phase": "P", "pick_time": "not a time"})
    pd.DataFrame(rows).to_csv(folder / "picks.csv", index=False)


@pytest.fixture
def quakeml_folder(tmp_path):
    folder = tmp_path / "ice-events"
    _write_event_files(folder)
    _write_quakeml(folder)
    return folder


def _records(folder, **options):
    opts = _options(None, options)
    tasks, skips = plan(str(folder), None, opts, np.random.default_rng(0))
    out = [r for t in tasks for r in read_events(t, opts)]
    return out, skips


def test_channel_rule():
    assert [component_slot(c) for c in ("HHZ", "HH1", "HH2", "BHE", "HHR")] == ["Z", "N", "E", "E", None]
    sensors = station_sensors(["XX.A..HHZ", "XX.A..HH1", "XX.A..HH2", "XX.A..BHZ", "XX.A..BHN", "XX.A..BHE",
                               "XX.A.00.EHZ", "XX.B..BHZ", "XX.B..HHZ", "XX.C..HNZ", "XX.C..HNN", "XX.C..HNE",
                               "XX.C..EHZ", "XX.D..HHZ", "XX.D..HHN", "XX.D..HHE", "XX.D..HH1"])
    a = sensors["XX.A"]  # HH (3 slots) before BH (3 slots): band H first; never a mix
    assert a.channels == {"Z": "XX.A..HHZ", "N": "XX.A..HH1", "E": "XX.A..HH2"} and a.orientation_unknown
    assert "XX.A..BHZ" in a.unused and a.sensor == ".HH"
    assert sensors["XX.B"].channels == {"Z": "XX.B..HHZ"}
    assert sensors["XX.C"].channels == {"Z": "XX.C..HNZ", "N": "XX.C..HNN", "E": "XX.C..HNE"}  # 3C accelerometer
    assert sensors["XX.D"].channels["N"] == "XX.D..HHN" and not sensors["XX.D"].orientation_unknown
    # samples break ties between equal sensors and drop empty channels
    tied = station_sensors(["XX.E..HHZ", "XX.E.10.HHZ"], samples={"XX.E..HHZ": 5, "XX.E.10.HHZ": 50})
    assert tied["XX.E"].channels == {"Z": "XX.E.10.HHZ"}
    assert station_sensors(["XX.F..HHZ"], samples={"XX.F..HHZ": 0}) == {}


def test_detect_and_picks(quakeml_folder, tmp_path):
    assert detect_format(str(quakeml_folder)) == "events"
    events, skips, path = read_picks(quakeml_folder)
    assert path.name == "events.xml" and not skips
    assert set(events) == {"ev1", "ev2", "ev3"} and events["ev3"]["picks"] == []
    assert events["ev1"]["origin"] == (T0).ns and events["ev2"]["picks"][0][2] == "P"  # Pg is a P
    _write_csv(quakeml_folder)  # two pick files: QuakeML first
    assert read_picks(quakeml_folder)[2].name == "events.xml"
    csv_events, csv_skips, _ = read_picks(quakeml_folder, "picks.csv")
    assert set(csv_events) == {"ev1", "ev2"} and len(csv_skips) == 1 and "row 8" in csv_skips[0].name
    empty = tmp_path / "nopicks"
    empty.mkdir()
    with pytest.raises(WindowsError, match="no pick files"):
        read_picks(empty)


def test_records_follow_the_p_rule(quakeml_folder):
    recs, skips = _records(quakeml_folder)
    assert [s.name for s in skips] == ["stray.mseed"] and "no event" in skips[0].reason
    stems = {(T0 + dt - 6.0).strftime("%Y%m%d%H%M%S"): eid for eid, (dt, _, _) in EVENTS.items()}
    got = {f"{r.name.split(':')[1]}/{stems[r.name.split(':')[0]]}": r for r in recs}
    reasons = {k: r.reason for k, r in got.items() if not hasattr(r, "data")}
    # ev1: AAA P pick; BBB S only → P = origin + (S - origin) / 1.73; CCC no pick → skipped; ev3: all skipped
    aaa = got["XX.AAA/ev1"]
    assert aaa.p_seconds == pytest.approx(7.0) and aaa.s_seconds == pytest.approx(7.7) and not aaa.p_predicted
    bbb = got["XX.BBB/ev1"]
    assert bbb.p_seconds == pytest.approx(8.0, abs=1e-6) and bbb.p_predicted
    assert "no P or S pick" in reasons["XX.CCC/ev1"]
    assert all("no P or S pick" in reasons[f"XX.{s}/ev3"] for s in STATIONS)
    assert [got[f"XX.{s}/ev2"].p_seconds for s in STATIONS] == pytest.approx([7.0, 8.0, 9.0])
    # one sensor (HH, not the BH pair), 1/2 in the N/E slots, orientation flagged
    assert aaa.present.all() and aaa.orientation_unknown and aaa.sampling_rate == RATE
    assert np.abs(aaa.data[0, int(7.0 * RATE):int(7.3 * RATE)]).max() > 1000
    # region from the event's coordinates (no station file), distance unknown without station coordinates
    assert aaa.region == "antarctica-thwaites" and math.isnan(aaa.distance_km)
    # unpicked stations placed at the origin when asked
    recs, _ = _records(quakeml_folder, unpicked_stations="origin")
    ev3 = [r for r in recs if r.event_id.endswith(":ev3")]
    assert len(ev3) == 3 and all(r.p_seconds == pytest.approx(6.0) and r.p_predicted for r in ev3)


def test_csv_picks_and_files_per_station(tmp_path):
    folder = tmp_path / "csv-events"
    _write_event_files(folder, per_station_files=True)
    _write_csv(folder)
    stations = tmp_path / "stations.csv"
    pd.DataFrame([{"network": "XX", "station": s, "latitude": a, "longitude": b}
                  for s, (a, b) in STATIONS.items()]).to_csv(stations, index=False)
    recs, skips = _records(folder, stations=str(stations))
    quakes = [r for r in recs if hasattr(r, "data")]
    assert len(quakes) == 5  # ev1: AAA, BBB; ev2: all three (ev3 has no picks and no origin in the CSV)
    assert any("unusable pick" in s.reason for s in skips)
    aaa = next(r for r in quakes if r.station == "AAA" and r.event_id.endswith("ev1"))
    assert aaa.distance_km == pytest.approx(
        obspy.geodetics.gps2dist_azimuth(-76.6, -103.4, -76.62, -103.30)[0] / 1000.0)
    assert aaa.region == "antarctica-thwaites"


@pytest.mark.filterwarnings("ignore:Evaluation mode None is not mappable")
@pytest.mark.filterwarnings("ignore:Cannot check whether Nordic format")  # the S-file of ev3 has no phase lines
def test_nordic_s_files(tmp_path):
    folder = tmp_path / "nordic-events"
    _write_event_files(folder)
    for k, ev in enumerate(_catalog()):  # one SEISAN S-file per event
        Catalog([ev]).write(str(folder / f"01-10{k:02d}-00L.S202007"), format="NORDIC")
    assert detect_format(str(folder)) == "events"
    events, _, _ = read_picks(folder)
    assert len(events) == 3 and sorted(len(e["picks"]) for e in events.values()) == [0, 3, 3]
    assert set(events) == {str(T0 + dt) for dt, _, _ in EVENTS.values()}  # stable ids: origin times
    recs, skips = _records(folder)
    assert sum(hasattr(r, "data") for r in recs) == 5 and [s.name for s in skips] == ["stray.mseed"]


def test_icequake_class_and_build(quakeml_folder, tmp_path):
    out = str(tmp_path / "w.zarr")
    summary = build_windows([str(quakeml_folder)], out, progress=False, augment_factor=0,
                            source_class=["ice-events=icequake"])
    ds = xr.open_zarr(out).load()
    assert summary["formats"] == {"ice-events": "events"}
    assert set(ds.subclass.values) == {"icequake"} and (ds.label.values == 0).all()
    assert (ds.p_index.values >= 0).all() and ds.sizes["window"] == 5
    assert ds.attrs["orientation_unknown"] == {"ice-events": ["XX.AAA", "XX.BBB", "XX.CCC"]}
    assert summary["warnings"] == []  # the icequake windows are noise: the source gave noise windows
    # the same from a labels.yaml sidecar; earthquake by default
    (quakeml_folder / "labels.yaml").write_text("class: icequake\n")
    assert build_windows([str(quakeml_folder)], out, progress=False, augment_factor=0)["subclasses"] == \
        {"ice-events": {"icequake": 5}}
    (quakeml_folder / "labels.yaml").unlink()
    summary = build_windows([str(quakeml_folder)], out, progress=False, augment_factor=0)
    assert summary["subclasses"] == {"ice-events": {"earthquake": 5}}
    assert summary["warnings"] == ["ice-events: 0 noise windows although noise was requested "
                                   "(5 event records too short before P) (skipped: 4 × no P or S pick for this "
                                   "station (unpicked_stations=skip); 1 × no event's picks or origin inside the "
                                   "file span)"]
    with pytest.raises(ConfigError, match="SOURCE=CLASS"):
        build_windows([str(quakeml_folder)], out, progress=False, source_class=["icequake"])
    with pytest.raises(ConfigError, match="class must be one of"):
        build_windows([str(quakeml_folder)], out, progress=False, source_class=["ice-events=glacier"])


def test_regions_and_stations_files(tmp_path):
    assert region_of(-76.6, -103.4) == "antarctica-thwaites"
    assert region_of(-78.14, -83.93) == "antarctica-rutford"
    assert region_of(-70.0, 10.0) == "antarctica"
    assert region_of(47.3, -122.1) == "cell-45N-125W" and region_of(-33.9, 151.2) == "cell-35S-150E"
    assert region_of(None, 3.0) == "unknown"
    table = tmp_path / "Stations.txt"
    table.write_text("Latitude,Longitude,Elevation,Name\n-78.1454,-84.0391,307,ST01\n")
    assert read_stations(table) == {"ST01": (-78.1454, -84.0391)}
    with pytest.raises(WindowsError, match="latitude"):
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\n")
        read_stations(bad)


@requires_data("seismic/thwaites-icequakes")
def test_real_thwaites():
    folder = data_path("seismic/thwaites-icequakes")
    assert detect_format(str(folder)) == "events"
    recs, skips = _records(folder)
    quakes = [r for r in recs if hasattr(r, "data")]
    # 370 (event, station) pairs have a pick in the QuakeML; the other 1,730 station records are skipped
    assert len(quakes) == 370 and len(skips) + len(recs) - len(quakes) == 1730
    assert {r.sampling_rate for r in quakes} == {200.0} and all(r.present.all() for r in quakes)
    assert all(r.orientation_unknown and r.region == "antarctica-thwaites" for r in quakes)
    assert len({r.event_id for r in quakes}) == 277
    # P picks fall 6.6–9.4 s after the window start (README); P placed from S lies in the same range
    p = np.array([r.p_seconds for r in quakes])
    assert p.min() > 6.0 and p.max() < 10.0
