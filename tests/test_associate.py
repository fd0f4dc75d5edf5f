"""The associator interface (seisgrid.seismic.associate: grid and PyOcto) and honest locations, on hand-made picks."""

from __future__ import annotations

import logging
import math

import obspy
import pytest

from seisgrid.errors import ConfigError
from seisgrid.seismic.associate import ASSOCIATORS, _to_latlon, _xy_km, associate, iso, locate

T0 = obspy.UTCDateTime("2021-01-01T00:00:00").ns
VP = 6.0
DEPTH = 10.0
# four stations around Ross Island, 20-30 km apart
STATIONS = {"SY.A": (-77.40, 166.70), "SY.B": (-77.60, 167.35), "SY.C": (-77.68, 166.55), "SY.D": (-77.38, 167.40)}
GRID = {"p_velocity_kms": VP, "depth_km": DEPTH, "grid_radius_km": 100.0, "grid_step_km": 2.0,
        "location_sigma_seconds": 0.3, "location_confidence": 0.68}
EVENT_KEYS = {"event_id", "first_arrival", "origin_time", "latitude", "longitude", "depth_km", "rms_seconds",
              "horizontal_uncertainty_km", "origin_uncertainty_seconds", "location_status", "n_stations", "stations",
              "probability", "associator", "picks"}


def _ns(seconds: float) -> int:
    return T0 + round(seconds * 1e6) * 1000  # µs: ISO times are read to the microsecond


def _arrivals(x_km: float, y_km: float, t0: float, stations: dict, jitter: dict | None = None) -> list[dict]:
    """P picks of a source at (x, y) km from the stations' centre, DEPTH deep, origin at t0 s."""
    xy, _ = _xy_km(stations)
    out = []
    for sta, (sx, sy) in xy.items():
        tt = math.sqrt((x_km - sx) ** 2 + (y_km - sy) ** 2 + DEPTH ** 2) / VP
        out.append({"station": sta, "time": iso(_ns(t0 + tt + (jitter or {}).get(sta, 0.0))), "probability": 0.9})
    return out


def _epicentre_km(ev: dict, x_km: float, y_km: float, stations: dict) -> float:
    lat, lon = _to_latlon(x_km, y_km, _xy_km(stations)[1])
    return obspy.geodetics.gps2dist_azimuth(ev["latitude"], ev["longitude"], lat, lon)[0] / 1000.0


SOURCES = [(4.0, -6.0, 100.0), (-8.0, 5.0, 400.0)]  # inside the network


def _picks() -> list[dict]:
    picks = []
    for x, y, t0 in SOURCES:
        picks += _arrivals(x, y, t0, STATIONS, jitter={"SY.A": 0.05, "SY.B": -0.08, "SY.C": 0.1, "SY.D": -0.03})
    # false picks: lone triggers, and two coincident ones on two stations only (fewer than min_stations)
    picks += [{"station": "SY.C", "time": iso(_ns(250.0))}, {"station": "SY.A", "time": iso(_ns(700.0))},
              {"station": "SY.B", "time": iso(_ns(702.0))}, {"station": "SY.D", "time": iso(_ns(1000.0))}]
    return picks


@pytest.mark.parametrize("which", ASSOCIATORS)
def test_events_located_within_tolerance_and_false_picks_left_out(which):
    events = associate(_picks(), STATIONS, associator=which, min_stations=3, velocity_kms=3.5, tolerance_seconds=3.0,
                       **GRID)
    assert len(events) == 2
    for ev, (x, y, t0) in zip(events, SOURCES, strict=True):
        assert set(ev) == EVENT_KEYS and ev["associator"] == which
        assert ev["stations"] == sorted(STATIONS) and ev["location_status"] == "located"
        assert abs(obspy.UTCDateTime(ev["origin_time"]) - obspy.UTCDateTime(iso(_ns(t0)))) < 0.5
        error = _epicentre_km(ev, x, y, STATIONS)
        assert error < 5.0
        assert 0 < ev["horizontal_uncertainty_km"] < 30 and error <= ev["horizontal_uncertainty_km"]
        assert 0 < ev["origin_uncertainty_seconds"] < 5
        assert all(abs(p["residual"]) < 0.5 for p in ev["picks"])
        assert ev["first_arrival"] == min(p["time"] for p in ev["picks"])
        assert ev["probability"] == 0.9  # only the true picks (probability 0.9) are in the events
    assert [ev["event_id"] for ev in events] == [1, 2]


@pytest.mark.parametrize("which", ASSOCIATORS)
def test_two_stations_give_events_without_an_invented_location(which):
    two = {k: STATIONS[k] for k in ("SY.A", "SY.B")}
    picks = [p for p in _picks() if p["station"] in two]
    events = associate(picks, two, associator=which, min_stations=2, **GRID)
    true = [ev for ev in events if ev["probability"] == 0.9]
    assert len(true) == 2
    for ev, (_x, _y, t0) in zip(true, SOURCES, strict=True):
        assert set(ev) == EVENT_KEYS
        assert ev["origin_time"] is None and ev["latitude"] is None and ev["longitude"] is None
        assert ev["depth_km"] is None and ev["horizontal_uncertainty_km"] is None
        assert ev["location_status"].startswith("not located: 2 station(s)")
        # the arrivals stay: first arrival = earliest pick, so scoring can match on arrivals
        arrivals = sorted(p["time"] for p in picks if p.get("probability") == 0.9
                          and abs(obspy.UTCDateTime(p["time"]) - obspy.UTCDateTime(iso(_ns(t0)))) < 20)
        assert ev["first_arrival"] == arrivals[0] and sorted(p["time"] for p in ev["picks"]) == arrivals
        assert all("residual" not in p for p in ev["picks"])


def test_a_source_the_network_cannot_range_is_not_located():
    # a compact 3-station network (≈ 10 km) and a source 90 km away: the direction is known, the distance not
    tight = {"SY.A": (-77.50, 167.00), "SY.B": (-77.55, 167.15), "SY.C": (-77.45, 167.20)}
    picks = _arrivals(90.0, 10.0, 50.0, tight)
    loc = locate(picks, tight, **{**GRID, "grid_radius_km": 120.0})
    assert loc["location_status"].startswith("not located: the 68% confidence region reaches the edge")
    assert loc["origin_time"] is None and loc["latitude"] is None
    # the same picks with a source inside that network are located
    inside = locate(_arrivals(1.0, 2.0, 50.0, tight), tight, **{**GRID, "grid_radius_km": 120.0})
    assert inside["location_status"] == "located" and inside["horizontal_uncertainty_km"] < 20


def test_pyocto_prefers_the_travel_time_consistent_pick():
    # a false trigger on D 3.5 s before its true P: PyOcto keeps the pick that fits the source (grid takes the
    # earliest pick consistent with the inter-station window, the false one, and then cannot locate the event)
    picks = _picks()[:4] + [{"station": "SY.D", "time": iso(_ns(100.5))}]
    (ev,) = associate(picks, STATIONS, associator="pyocto", min_stations=3, **GRID)
    d = [p for p in ev["picks"] if p["station"] == "SY.D"]
    assert len(d) == 1 and d[0].get("probability") == 0.9


def test_settings_are_checked_and_bad_picks_skipped(caplog):
    with pytest.raises(ConfigError, match="associator 'hypo'"):
        associate(_picks(), STATIONS, associator="hypo")
    with pytest.raises(ConfigError, match="pyocto.*station coordinates"):
        associate(_picks(), None, associator="pyocto")
    with pytest.raises(ConfigError, match="location_confidence"):
        locate(_picks()[:4], STATIONS, **{**GRID, "location_confidence": 1.5})
    bad = [{"station": "SY.A", "time": "not a time"}, {"time": iso(_ns(5.0))}]
    with caplog.at_level(logging.WARNING, logger="seisgrid"):
        events = associate(bad + _picks(), STATIONS, associator="grid", min_stations=3, **GRID)
    assert len(events) == 2 and "2 pick(s) skipped" in caplog.text
    # without coordinates: time-window association, no location
    free = associate(_picks(), None, associator="grid", min_stations=3, max_travel_seconds=20.0)
    assert len(free) == 2 and all(ev["origin_time"] is None for ev in free)
    assert free[0]["location_status"] == "not located: no station coordinates"
