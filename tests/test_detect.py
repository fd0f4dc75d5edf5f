"""Archive detection (seisgrid.seismic.detect): a deterministic "oracle" model on a short synthetic archive
finds the strong catalog events, associates them across stations, writes QuakeML + CSV, and resumes."""

from __future__ import annotations

import pathlib

import numpy as np
import obspy
import pytest
import torch
import zarr

from seisgrid.seismic import models
from seisgrid.seismic.catalog import read_catalog, score
from seisgrid.seismic.detect import _runs, detect, model_settings
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.synth import synthesize

SEED = 18  # 20 events in 72 min; events 2 (M 2.2, SNR 32-150 at all 3 stations) and 5 (M 1.4, max SNR 38)


class Oracle(torch.nn.Module):
    """No training: logit(earthquake) = gain × (max over components and time of the 1–20 Hz mean z-score of
    the spectrogram, smoothed over 1 s, − level). Fires on strong band-limited energy (events, icequakes)."""

    def __init__(self, num_classes=2, in_channels=3, rows=97, level=1.5, gain=4.0):
        super().__init__()
        self.register_buffer("level", torch.tensor(float(level)))
        self.register_buffer("gain", torch.tensor(float(gain)))
        self.rows = rows

    def forward(self, x):
        band = x[:, :, : self.rows, :].float().mean(dim=2)
        f = torch.nn.functional.avg_pool1d(band, 10, stride=1).amax(dim=(1, 2))
        logit = self.gain * (f - self.level)
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("detect")
    models.ARCHITECTURES["oracle"] = Oracle
    synthesize(str(tmp / "archive"), stations=3, days=0.05, sampling_rates=[100.0], events_per_day=400, seed=SEED)
    ingest(str(tmp / "archive"), str(tmp / "store.zarr"), pattern="*.D.*", progress=False)
    model = str(tmp / "model" / "oracle.pt")
    models.save_checkpoint(model, Oracle(), {"arch": "oracle", "window_seconds": 25.0, "sampling_rate": 100.0,
                                             "threshold": 0.5, "pre_p_seconds": 8.0})
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
    assert result["station_days"] == pytest.approx(3 * 0.05, rel=0.02)  # from the catalog's JSON summary
    assert result["median_abs_dt_seconds"] < 2.0
    for ev in first["events"]:
        assert ev["n_stations"] >= 2 and ev["origin_time"] is not None and ev["latitude"] is not None

    # QuakeML opens in ObsPy with origins, picks and arrivals
    cat = obspy.read_events(first["catalog"]["quakeml"])
    assert len(cat) == first["n_events"] == len(read_catalog(first["catalog"]["csv"]))
    ev = cat[0]
    assert ev.preferred_origin() is not None and len(ev.picks) >= 2
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

    # a rerun runs nothing and writes the same catalog
    xml = pathlib.Path(first["catalog"]["quakeml"]).read_bytes()
    csv_text = pathlib.Path(first["catalog"]["csv"]).read_text()
    second = _run(tmp, model)
    assert second["tasks_run"] == 0 and second["tasks_skipped"] == 3
    assert pathlib.Path(second["catalog"]["csv"]).read_text() == csv_text
    assert pathlib.Path(second["catalog"]["quakeml"]).read_bytes() == xml

    # an interrupted run (one station-day without its manifest record) redoes exactly that station-day
    import shutil

    shutil.rmtree(pathlib.Path(first["probabilities"]) / "_manifest" / "days" / "SY.ST02")
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
                        "spectrogram": {"sampling_rate": 100.0, "stft_n_fft": 250, "stft_hop": 10, "band_hz": [1.0, 30.0],
                                        "dynamic_range_db": 80.0, "clip": 5.0, "image_size": [224, 224]}})
    p = s["spectrogram"]
    assert (p.n_fft, p.f_max, p.dynamic_range_db, s["threshold"], s["earthquake_index"]) == (250, 30.0, 80.0, 0.3, 1)
    s = model_settings({"arch": "x", "threshold": 0.8, "spectrogram": {"n_fft": 200, "hop": 10}})
    assert s["threshold"] == 0.8 and s["spectrogram"].n_fft == 200 and s["window_seconds"] == 25.0


def test_runs():
    above = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1], bool)
    assert _runs(above) == [(1, 3), (4, 5), (7, 10)]
    assert _runs(np.zeros(0, bool)) == []
