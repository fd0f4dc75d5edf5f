"""Window stores as sources (merging stores built separately), stores without the sub-class variables, and
empty held-out region/network lists."""

from __future__ import annotations

import numpy as np
import obspy
import pytest
import xarray as xr

from seisgrid.seismic.labelled import build_windows, detect_format
from seisgrid.seismic.labelled.build import _options
from seisgrid.seismic.windowstore import distance_of, open_dataset, subclass_of


def _phasenet_like(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(["NC_AAA_2016111504021890.npz", "NC_BBB_2016111504021990.npz",
                              "BG_CCC_2014071807051236.npz"]):
        x = rng.normal(0, 10.0, (9001, 3))
        x[3000:3400] += 500 * np.sin(np.arange(400) / 3.0)[:, None]
        np.savez(folder / name, data=x, itp=3000, its=3300, channels="HHE_HHN_HHZ")
        del i
    return folder


def _pfo_like(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for k, start in enumerate(["2010-01-01T00:00:00", "2011-01-01T00:00:00"]):
        t = np.arange(16100) / 100.0
        x = rng.normal(0, 20.0, 16100) + np.where(t >= 100, 5000 * np.sin(50 * (t - 100)) * np.exp(-(t - 100) / 5), 0)
        nominal = obspy.UTCDateTime(start)
        tr = obspy.Trace(x.astype(np.int32), header={"network": "AZ", "station": f"PF{k}", "channel": "HHZ",
                                                     "sampling_rate": 100.0, "starttime": nominal})
        fmt = "%Y-%m-%dT%H_%M_%S.%f"
        tr.write(str(folder / f"AZ.PF{k}..HHZ_{nominal.strftime(fmt)[:-3]}_{(nominal + 161).strftime(fmt)[:-3]}.mseed"),
                 format="MSEED")
    return folder


@pytest.fixture
def two_stores(tmp_path):
    a, b = str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")
    build_windows([str(_phasenet_like(tmp_path / "pn"))], a, progress=False, seed=1)
    build_windows([str(_pfo_like(tmp_path / "pfo"))], b, progress=False, seed=2, augment_factor=0)
    return a, b


def test_merge_window_stores(two_stores, tmp_path):
    a, b = two_stores
    assert detect_format(a) == "windows"
    out = str(tmp_path / "merged.zarr")
    summary = build_windows([a, b], out, progress=False, seed=3, test_regions=["none"], test_networks=["BG"])
    ds = open_dataset(out).load()
    parts = [open_dataset(p).load() for p in (a, b)]
    real = ~ds.augmented.values
    assert real.sum() == sum(int((~p.augmented.values).sum()) for p in parts)
    assert summary["formats"] == {"pn": "phasenet", "pfo": "pfo"}
    assert summary["subclasses"] == {"pfo": {"earthquake": 2, "pre_event_noise": 2},
                                     "pn": {"earthquake": 3, "pre_event_noise": 3}}
    assert summary["warnings"] == [] and summary["no_noise"] == 0
    for part in parts:  # every window comes back with its waveform, picks and provenance
        keep = ~part.augmented.values
        for i in np.flatnonzero(keep):
            j = np.flatnonzero((ds.event_id.values == part.event_id.values[i]) & real
                               & (ds.station.values == part.station.values[i])
                               & (ds.subclass.values == part.subclass.values[i]))
            assert len(j) == 1
            np.testing.assert_allclose(ds.waveform.values[j[0]], part.waveform.values[i], atol=1e-3)
            assert ds.p_index.values[j[0]] == part.p_index.values[i]
            assert ds.region.values[j[0]] == part.region.values[i]
    # split again over everything: BG held out, no region held out (the value "none")
    assert ds.attrs["test_regions"] == [] and ds.attrs["test_networks"] == ["BG"]
    assert set(ds.split_region.values[real & (ds.network.values == "BG")]) == {"test"}
    assert set(ds.split_region.values[real & (ds.network.values != "BG")]) <= {"train", "val"}
    assert summary["augmented"] > 0 and set(ds.split.values[~real]) == {"train"}


def test_empty_test_lists():
    for value in (["none"], ["[]"], "none", []):
        opts = _options(None, {"test_regions": value, "test_networks": value})
        assert opts["test_regions"] == [] and opts["test_networks"] == []
    assert _options(None, {"test_regions": ["antarctica"]})["test_regions"] == ["antarctica"]
    # one comma-separated text (a pipeline variable) is a list too
    assert _options(None, {"test_regions": "a, b-c"})["test_regions"] == ["a", "b-c"]
    assert _options(None, {"test_regions": ["a,b", "c"]})["test_regions"] == ["a", "b", "c"]


def test_old_store_without_subclass(two_stores, tmp_path):
    a, _ = two_stores
    old = str(tmp_path / "old.zarr")
    ds = xr.open_zarr(a).load().drop_vars(["subclass", "distance_km"])
    for name in ds.variables:
        ds[name].encoding.clear()
    ds.to_zarr(old, mode="w", zarr_format=3, consolidated=False)
    opened = open_dataset(old)
    assert set(subclass_of(opened)) == {"earthquake", "unknown"} and np.isnan(distance_of(opened)).all()
    summary = build_windows([old], str(tmp_path / "again.zarr"), progress=False, augment_factor=0)
    assert summary["subclasses"] == {"pn": {"earthquake": 3, "unknown": 3}}


def test_warns_when_the_region_split_leaves_nothing_to_train_on(two_stores, tmp_path):
    _, b = two_stores  # PFO-like: network AZ only
    summary = build_windows([b], str(tmp_path / "held.zarr"), progress=False, augment_factor=0,
                            test_regions=["none"], test_networks=["AZ"])
    assert any(w.startswith("split_region: no train earthquake or noise windows") for w in summary["warnings"])
    fine = build_windows([b], str(tmp_path / "fine.zarr"), progress=False, augment_factor=0,
                         test_regions=["none"], test_networks=["none"])
    assert not any(w.startswith("split_region") for w in fine["warnings"])
