"""PFO-style position-labelled windows: onset re-derived by STA/LTA, pre-event noise screened for
transients, event groups of overlapping windows; on generated windows and the AZ.PFO set."""

from __future__ import annotations

import numpy as np
import obspy
import pytest
import xarray as xr
from helpers import data_path, requires_data

from seisgrid.seismic.labelled import Record, build_windows, detect_format
from seisgrid.seismic.labelled.build import _options
from seisgrid.seismic.labelled.pfo import event_groups, plan, read_pfo

RATE = 100.0


def _burst(t, at, amp, freq, decay):
    return np.where(t >= at, amp * np.sin(2 * np.pi * freq * (t - at)) * np.exp(-(t - at) / decay), 0.0)


def _window(folder, start, seed, transient_at=None, event_at=100.0, delay=0.0):
    """A 161 s HHZ window named by its nominal span; data start ``delay`` s after the nominal start."""
    rng = np.random.default_rng(seed)
    n = int((161.0 - delay) * RATE)
    t = np.arange(n) / RATE + delay
    x = rng.normal(0, 20.0, n)
    if event_at is not None:
        x += _burst(t, event_at, 5000.0, 8.0, 5.0)
    if transient_at is not None:
        x += _burst(t, transient_at, 600.0, 10.0, 0.4)
    nominal = obspy.UTCDateTime(start)
    tr = obspy.Trace(x.astype(np.int32), header={"network": "AZ", "station": "PFO", "channel": "HHZ",
                                                 "sampling_rate": RATE, "starttime": nominal + delay})
    fmt = "%Y-%m-%dT%H_%M_%S.%f"
    name = f"AZ.PFO..HHZ_{nominal.strftime(fmt)[:-3]}_{(nominal + 161).strftime(fmt)[:-3]}.mseed"
    tr.write(str(folder / name), format="MSEED")
    return name


@pytest.fixture
def pfo_folder(tmp_path):
    folder = tmp_path / "pfo-like"
    (folder / "mseed").mkdir(parents=True)
    names = {
        "transient": _window(folder / "mseed", "2010-01-01T00:00:00", 1, transient_at=30.0),
        "overlap": _window(folder / "mseed", "2010-01-01T00:01:00", 2),        # starts 60 s later: same group
        "clean": _window(folder / "mseed", "2011-05-05T12:00:00", 3),
        "quiet": _window(folder / "mseed", "2012-05-05T12:00:00", 4, event_at=None),  # no trigger: nominal
        "late": _window(folder / "mseed", "2013-05-05T12:00:00", 5, event_at=100.0, delay=24.77),
    }
    return folder, names


def _records(folder, **options) -> dict[str, Record]:
    opts = _options(None, options)
    tasks, _ = plan(str(folder), None, opts, np.random.default_rng(0))
    return {r.name: r for t in tasks for r in read_pfo(t, opts)}


def test_onset_screen_and_groups(pfo_folder):
    folder, names = pfo_folder
    assert detect_format(str(folder)) == "pfo"
    recs = _records(folder)
    first = recs[names["transient"]]
    assert first.p_seconds == pytest.approx(100.0, abs=0.3) and first.p_predicted
    assert first.present.tolist() == [True, False, False] and first.region == "southern-california"
    # candidates from 15 s: [15, 40) holds the transient at 30 s → dropped; [40, 65) kept
    assert [t for t, _ in first.screened] == [15.0] and "transient in pre-event noise" in first.screened[0][1]
    assert first.noise_offsets == [40.0]
    assert recs[names["clean"]].noise_offsets == [15.0] and recs[names["clean"]].screened == []
    # no trigger → the nominal 100 s; data starting late → nominal 100 s is 75.23 s of trace time
    assert recs[names["quiet"]].p_seconds == pytest.approx(100.0)
    assert recs[names["late"]].p_seconds == pytest.approx(75.23, abs=0.3)
    # noise ends by 95 s nominal: 70.23 s of the late trace → candidates [15, 40), [40, 65)
    assert recs[names["late"]].noise_offsets == [15.0]
    # overlapping windows are one event group
    assert recs[names["transient"]].event_id == recs[names["overlap"]].event_id != recs[names["clean"]].event_id
    assert event_groups(list(names.values()))[names["overlap"]] == "2010-01-01T00:00:00"
    # screening off: the first candidate is kept
    assert _records(folder, noise_screen_ratio=0)[names["transient"]].noise_offsets == [15.0]


def test_build_pfo(pfo_folder, tmp_path):
    folder, names = pfo_folder
    out = str(tmp_path / "w.zarr")
    summary = build_windows([str(folder)], out, progress=False, augment_factor=0, noise_per_record=2)
    ds = xr.open_zarr(out).load()
    assert summary["subclasses"] == {"pfo-like": {"earthquake": 5, "pre_event_noise": 10}}
    assert summary["skipped_reasons"] == {"transient in pre-event noise (STA/LTA ≥ 4)": 1}
    quakes = ds.label.values == 1
    assert (ds.present.values[:, 0]).all() and not ds.present.values[:, 1:].any()
    assert np.all((ds.p_index.values[quakes] >= 500) & (ds.p_index.values[quakes] <= 1100))
    assert (ds.subclass.values[~quakes] == "pre_event_noise").all() and (ds.p_index.values[~quakes] == -1).all()


@requires_data("seismic/pfo-anza-windows")
def test_real_pfo():
    folder = data_path("seismic/pfo-anza-windows")
    assert detect_format(str(folder)) == "pfo"
    recs = list(_records(folder).values())
    assert len(recs) == 1205 and all(isinstance(r, Record) for r in recs)
    onsets = np.array([r.p_seconds for r in recs])
    assert 99.5 <= np.median(onsets) <= 101.5  # README: median 100.53 s
    assert len({r.event_id for r in recs}) == 1205 - 35  # 35 overlapping pairs share an event
    dropped = sum(len(r.screened) for r in recs)
    assert 150 <= dropped <= 400 and sum(not r.noise_offsets for r in recs) < 50
