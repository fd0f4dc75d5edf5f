"""Association, catalog files and scoring (seisgrid.seismic.associate / catalog), on hand-made data."""

from __future__ import annotations

import math

import obspy
import pytest

from seisgrid.seismic.associate import associate, iso, locate
from seisgrid.seismic.catalog import from_stalta, read_catalog, score, write_catalog

T0 = obspy.UTCDateTime("2021-01-01T00:00:00").ns


def t(seconds: float) -> str:
    return iso(T0 + round(seconds * 1e9))


# three stations on a line, 0.5° of latitude (~55.6 km) apart
STATIONS = {"SY.A": (-77.0, 167.0), "SY.B": (-77.5, 167.0), "SY.C": (-78.0, 167.0)}


def test_associate_groups_by_travel_time_and_min_stations():
    picks = [
        {"station": "SY.A", "time": t(100.0), "probability": 0.9},
        {"station": "SY.B", "time": t(104.0), "probability": 0.7},   # A-B: 55.6 km / 3.5 + 3 = 18.9 s
        {"station": "SY.C", "time": t(130.0), "probability": 0.8},   # too late for A and B: alone
        {"station": "SY.A", "time": t(500.0)},                       # alone: no event with min_stations 2
        {"station": "SY.B", "time": t(900.0)}, {"station": "SY.C", "time": t(905.0)},
        {"station": "SY.A", "time": t(935.0)},                       # 35 s after B: > 18.9 s
    ]
    events = associate(picks, STATIONS, min_stations=2, velocity_kms=3.5, tolerance_seconds=3.0)
    assert [e["stations"] for e in events] == [["SY.A", "SY.B"], ["SY.B", "SY.C"]]
    assert [e["event_id"] for e in events] == [1, 2]
    assert events[0]["first_arrival"] == t(100.0) and events[0]["probability"] == 0.8
    # located only where the picks constrain an origin (associate.locate); never half located
    assert all((e["origin_time"] is None) == (e["latitude"] is None) for e in events)
    assert associate(picks, STATIONS, min_stations=3) == []
    # without coordinates: a fixed window, no location
    free = associate(picks[:3], None, min_stations=3, max_travel_seconds=30.0)
    assert len(free) == 1 and free[0]["origin_time"] is None and free[0]["first_arrival"] == t(100.0)


def test_locate_recovers_an_origin_on_the_grid():
    # an event below station B at 10 km depth, origin at 50 s: P times sqrt(d² + 10²) / 6
    from seisgrid.seismic.associate import _xy_km

    xy, _ = _xy_km(STATIONS)
    picks = []
    for sta, (x, y) in xy.items():
        d = math.hypot(x - 0.0, y - 0.0)
        picks.append({"station": sta, "time": T0 + round((50.0 + math.hypot(d, 10.0) / 6.0) * 1e9)})
    loc = locate(picks, STATIONS, p_velocity_kms=6.0, depth_km=10.0, grid_radius_km=100.0, grid_step_km=5.0)
    assert loc["rms_seconds"] < 0.01
    assert abs(obspy.UTCDateTime(loc["origin_time"]) - obspy.UTCDateTime(t(50.0))) < 0.01
    assert loc["latitude"] == pytest.approx(-77.5, abs=0.05) and loc["longitude"] == pytest.approx(167.0, abs=0.3)


TRUTH = [  # one row per event and station, as synth's catalog.csv (snr per station; the event's is the max)
    {"event_id": 1, "origin_time": t(0), "p_time": t(5), "snr": 50.0},
    {"event_id": 1, "origin_time": t(0), "p_time": t(4), "snr": 20.0},
    {"event_id": 2, "origin_time": t(100), "p_time": t(108), "snr": 5.0},
    {"event_id": 3, "origin_time": t(200), "p_time": t(203), "snr": 0.5},
    {"event_id": 4, "origin_time": t(300), "p_time": t(310), "snr": 2.0},
    {"event_id": 5, "origin_time": t(400), "p_time": t(402), "snr": 40.0},
]


def _ev(origin=None, first=None):
    return {"origin_time": None if origin is None else t(origin), "first_arrival": None if first is None else t(first)}


def test_score_by_hand():
    detected = [
        _ev(origin=1.0),      # matches 1 (dt 1 s)
        _ev(origin=-2.0),     # also near 1, farther: one-to-one → false
        _ev(origin=104.0),    # dt 4 s: matches 2 with tolerance 5
        _ev(first=310.5),     # not located: first arrival vs first P of 4 (310) → match
        _ev(origin=700.0),    # false
    ]
    r = score(detected, TRUTH, tolerance_seconds=5.0, station_days=2.0)
    assert r["matched"] == 3 and r["detected"] == 5 and r["true"] == 5 and r["false"] == 2
    assert r["precision"] == pytest.approx(3 / 5) and r["recall"] == pytest.approx(3 / 5)
    assert r["false_per_station_day"] == pytest.approx(2 / 2.0)
    bins = {(b["snr_min"], b["snr_max"]): (b["n"], b["recall"]) for b in r["recall_by_snr"]}
    assert bins == {(0.0, 1.0): (1, 0.0), (1.0, 3.0): (1, 1.0), (3.0, 10.0): (1, 1.0), (10.0, 30.0): (0, None),
                    (30.0, None): (2, 0.5)}
    assert [(m["event_id"], m["truth_event_id"]) for m in r["matches"]] == [(None, "1"), (None, "2"), (None, "4")]
    tight = score(detected, TRUTH, tolerance_seconds=2.0, station_days=2.0)
    assert tight["matched"] == 2 and tight["recall"] == pytest.approx(2 / 5)


MAGNITUDES = [-0.3, -0.2, 0.2, 0.3, 0.6, 0.8, 0.7, 0.7, 1.1, 1.3, 2.5, None]  # event k + 1 at 100 k s
FOUND = [0, 4, 8, 9, 10, 11]  # the detected ones (index): a chance match at M -0.3, one of four at M 0.5–1


def test_score_by_magnitude_and_m50():
    truth = [{"event_id": k + 1, "origin_time": t(100 * k), "p_time": t(100 * k + 5), "snr": 10.0,
              "magnitude": "" if m is None else m} for k, m in enumerate(MAGNITUDES)]
    detected = [_ev(origin=100 * k + 1) for k in FOUND]
    r = score(detected, truth, tolerance_seconds=5.0, station_days=1.0)
    assert r["matched"] == 6 and r["recall"] == pytest.approx(6 / 12) and r["precision"] == 1.0
    bins = {(b["magnitude_min"], b["magnitude_max"]): (b["n"], b["detected"], b["recall"], b["magnitude_mean"])
            for b in r["recall_by_magnitude"]}
    assert bins == {(None, 0.0): (2, 1, 0.5, -0.25), (0.0, 0.5): (2, 0, 0.0, 0.25), (0.5, 1.0): (4, 1, 0.25, 0.7),
                    (1.0, 1.5): (2, 2, 1.0, 1.2), (1.5, 2.0): (0, 0, None, None), (2.0, None): (1, 1, 1.0, 2.5)}
    # the last bin below 50 % (0.7, 25 %) and the next (1.2, 100 %): 0.7 + 0.25 / 0.75 × 0.5; the event without a
    # magnitude counts in recall, in no magnitude bin
    assert r["m50"] == pytest.approx(0.867) and r["m50_bound"] == "="
    wide = score(detected, truth, tolerance_seconds=5.0, station_days=1.0, magnitude_bins=[(None, 1.0), (1.0, None)])
    assert [b["recall"] for b in wide["recall_by_magnitude"]] == [pytest.approx(2 / 8), 1.0]
    assert wide["m50"] == pytest.approx(0.35 + 0.25 / 0.75 * (1.633 - 0.35), abs=1e-3)  # means 0.35, 1.633
    assert score(detected, TRUTH, tolerance_seconds=5.0)["m50"] is None  # no magnitudes: no M50


def test_the_score_command_prints_recall_by_magnitude_and_m50(tmp_path, capsys):
    from seisgrid.cli import main

    with open(tmp_path / "truth.csv", "w") as f:
        f.write("event_id,origin_time,p_time,snr,magnitude\n")
        f.writelines(f"{k + 1},{t(100 * k)},{t(100 * k + 5)},10,{'' if m is None else m}\n"
                     for k, m in enumerate(MAGNITUDES))
    events = [{"event_id": n + 1, "origin_time": t(100 * k + 1), "first_arrival": t(100 * k + 3), "picks": []}
              for n, k in enumerate(FOUND)]
    write_catalog(events, tmp_path / "cat", summary={"station_days": 1.0})
    assert main(["score", str(tmp_path / "cat.xml"), str(tmp_path / "truth.csv")]) == 0
    out = capsys.readouterr().out
    assert "recall 50.0 % (6 of 12 true events)" in out
    assert "  M 0.5–1: recall 25.0 % of 4\n" in out and "  M ≥2: recall 100.0 % of 1\n" in out
    assert "  M50 (magnitude from which recall stays ≥ 50 %): 0.87" in out


def test_stalta_triggers_score_on_first_arrivals():
    triggers = [{"time": obspy.UTCDateTime(t(4.5)), "duration": 3.0, "stations": ["A", "B"],
                 "trace_ids": ["SY.A..HHZ", "SY.B..HHZ"], "coincidence_sum": 2.0},
                {"time": obspy.UTCDateTime(t(402.0)), "duration": 2.0, "stations": ["A", "C"],
                 "trace_ids": ["SY.A..HHZ", "SY.C..HHZ"], "coincidence_sum": 2.0}]
    events = from_stalta(triggers)
    assert events[0]["stations"] == ["SY.A", "SY.B"] and events[0]["origin_time"] is None
    r = score(events, TRUTH, tolerance_seconds=1.0, station_days=1.0)
    assert r["matched"] == 2 and r["precision"] == 1.0 and r["recall"] == pytest.approx(0.4)


def test_catalog_files_round_trip(tmp_path):
    picks = [{"station": "SY.A", "time": t(100.0), "probability": 0.9, "channel": "SY.A..HHZ", "residual": 0.1},
             {"station": "SY.B", "time": t(104.0), "probability": 0.7, "channel": "SY.B..HHZ", "residual": -0.1}]
    located = {"event_id": 1, "origin_time": t(95.0), "first_arrival": t(100.0), "latitude": -77.3,
               "longitude": 167.0, "depth_km": 10.0, "rms_seconds": 0.1, "n_stations": 2,
               "stations": ["SY.A", "SY.B"], "probability": 0.8, "picks": picks}
    events = [located] + from_stalta([{"time": t(600.0), "trace_ids": ["SY.C..HHZ", "SY.A..HHZ"]}])
    events[1]["event_id"] = 2
    paths = write_catalog(events, str(tmp_path / "cat.csv"), summary={"station_days": 4.0})
    assert paths["quakeml"].endswith("cat.xml") and paths["csv"].endswith("cat.csv")
    cat = obspy.read_events(paths["quakeml"])
    assert len(cat) == 2
    assert len(cat[0].picks) == 2 and len(cat[0].preferred_origin().arrivals) == 2
    assert cat[0].picks[0].waveform_id.channel_code == "HHZ"
    assert cat[1].preferred_origin().latitude is None and cat[1].preferred_origin().time == obspy.UTCDateTime(t(600))
    for path in (paths["quakeml"], paths["csv"]):
        back = read_catalog(path)
        assert len(back) == 2 and back[1]["origin_time"] is None
        assert obspy.UTCDateTime(back[1]["first_arrival"]) == obspy.UTCDateTime(t(600))
        assert obspy.UTCDateTime(back[0]["origin_time"]) == obspy.UTCDateTime(events[0]["origin_time"])
    # station-days from the catalog's JSON summary
    truth = [{"event_id": 1, "origin_time": events[0]["origin_time"], "snr": 3.0}]
    r = score(paths["csv"], truth, tolerance_seconds=1.0)
    assert r["station_days"] == 4.0 and r["false_per_station_day"] == pytest.approx(1 / 4.0)


def test_score_matches_on_arrivals_with_pick_times():
    """An event located ~100 km off with its origin 20 s early (two stations cannot constrain it) is a
    miss on origins but a hit on arrivals: its earliest pick is 0.1 s after the true first P."""
    truth = [{"event_id": "a", "origin_time": t(0), "p_time": t(6.0), "station": "SY.A"},
             {"event_id": "a", "origin_time": t(0), "p_time": t(7.5), "station": "SY.B"},
             {"event_id": "b", "origin_time": t(500), "p_time": t(504.0)}]
    bad_origin = {"event_id": 1, "origin_time": t(-20.0), "first_arrival": t(6.1), "latitude": -76.0,
                  "picks": [{"station": "SY.B", "time": t(7.6)}, {"station": "SY.A", "time": t(6.1)}]}
    unlocated = {"event_id": 2, "origin_time": None, "first_arrival": None,
                 "picks": [{"station": "SY.A", "time": t(504.3)}]}  # pick times, not first_arrival, are used
    by_origin = score([bad_origin, unlocated], truth, tolerance_seconds=5.0, station_days=1.0)
    assert by_origin["match"] == "origin" and by_origin["matched"] == 1  # the unlocated one, on arrivals
    by_arrival = score([bad_origin, unlocated], truth, tolerance_seconds=5.0, station_days=1.0, match="arrival")
    assert by_arrival["matched"] == 2 and by_arrival["recall"] == 1.0 and by_arrival["false_per_station_day"] == 0
    assert sorted(m["dt_seconds"] for m in by_arrival["matches"]) == [0.1, 0.3]
    from seisgrid.errors import ConfigError

    with pytest.raises(ConfigError, match="expected one of"):
        score([bad_origin], truth, match="picks")


def test_truth_from_quakeml_and_csv_rows_left_out(tmp_path):
    """QuakeML truth (analyst picks, an event without an origin); CSV rows without times are reported and
    left out while the others are scored."""
    from obspy.core.event import Arrival, Catalog, Event, Origin, Pick, WaveformStreamID

    def pick(seconds, sta, phase):
        return Pick(time=obspy.UTCDateTime(t(seconds)), phase_hint=phase,
                    waveform_id=WaveformStreamID(network_code="SY", station_code=sta))

    located = Event(origins=[Origin(time=obspy.UTCDateTime(t(0)), latitude=-77.2, longitude=167.0)],
                    picks=[pick(9.0, "B", "S"), pick(5.0, "A", "P"), pick(6.0, "B", "P")])
    no_phase_hint = Event(picks=[pick(302.0, "A", None), pick(303.0, "B", None)])
    no_phase_hint.origins.append(Origin(time=obspy.UTCDateTime(t(300)),
                                        arrivals=[Arrival(pick_id=no_phase_hint.picks[1].resource_id, phase="P")]))
    picks_only = Event(picks=[pick(600.5, "A", None), pick(601.0, "C", None)])  # no phases named: all count
    empty = Event()
    path = tmp_path / "truth.xml"
    Catalog(events=[located, no_phase_hint, picks_only, empty]).write(str(path), format="QUAKEML")
    skipped: list = []
    from seisgrid.seismic.catalog import read_truth

    true = read_truth(str(path), skipped=skipped)
    assert [(e["origin_ns"], e["first_p_ns"]) for e in true] == [
        (T0, T0 + 5 * 10**9), (T0 + 300 * 10**9, T0 + 303 * 10**9), (None, T0 + 600_500_000_000)]
    assert len(skipped) == 1 and "neither an origin nor a P pick" in skipped[0]
    detected = [_ev(origin=0.5), {"origin_time": t(290.0), "first_arrival": t(303.2)}, _ev(first=601.0)]
    r = score(detected, str(path), tolerance_seconds=2.0, station_days=1.0)
    assert r["matched"] == 2 and r["truth_skipped"] == skipped  # the 290 s origin is 10 s off
    by_arrival = score(detected, str(path), tolerance_seconds=2.0, match="arrival")
    assert by_arrival["matched"] == 2 and by_arrival["no_arrival"] == 1  # the origin-only event has no arrival

    rows = tmp_path / "truth.csv"
    rows.write_text("event_id,origin_time,p_time,snr\n1,2021-01-01T00:00:00,2021-01-01T00:00:05,12\n"
                    "2,,,3\n3,yesterday,,\n")
    r = score([_ev(first=5.2)], str(rows), tolerance_seconds=1.0, station_days=1.0)
    assert r["true"] == 1 and r["matched"] == 1 and len(r["truth_skipped"]) == 2
    assert "row 2: neither origin_time nor p_time" in r["truth_skipped"][0]
