"""Metrics against hand-computed confusion matrices, hours per year, the table, figures and evaluate()."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seisgrid.seismic import metrics


def write_window_store(path, n=64, seed=0):
    """A tiny labelled-window store following docs/windows-schema.md (noise + impulsive synthetic events)."""
    import pandas as pd
    import xarray as xr
    from test_stalta import synthetic_windows

    wave, present, label, p_index = synthetic_windows(n=n, seed=seed)
    # a few events are weak: the methods cannot be perfect
    weak = np.flatnonzero(label == 1)[::4]
    wave[weak] = np.random.default_rng(seed + 1).normal(0, 1, wave[weak].shape) + 0.15 * (wave[weak] - 0)
    wave -= wave.mean(axis=2, keepdims=True)
    split = np.array(["train", "val", "test", "train"] * (n // 4))
    region = np.where(np.arange(n) % 2 == 0, "train", "test")
    ds = xr.Dataset(
        {
            "waveform": (("window", "component", "sample"), wave.astype(np.float32)),
            "present": (("window", "component"), present),
            "label": ("window", label),
            "p_index": ("window", p_index),
            "s_index": ("window", np.full(n, -1, np.int32)),
            "source": ("window", np.array(["synthetic"] * n)),
            "region": ("window", np.array(["synthetic"] * n)),
            "network": ("window", np.array(["SY"] * n)),
            "station": ("window", np.array([f"S{i % 8:02d}" for i in range(n)])),
            "event_id": ("window", np.array([f"ev{i}" for i in range(n)])),
            "start_time": ("window", pd.date_range("2021-01-01", periods=n, freq="min").values),
            "magnitude": ("window", np.full(n, np.nan, np.float32)),
            "snr_db": ("window", np.full(n, np.nan, np.float32)),
            "split": ("window", split),
            "split_region": ("window", region),
            "augmented": ("window", np.zeros(n, bool)),
        },
        coords={"component": ["Z", "N", "E"]},
        attrs={"sampling_rate": 100.0, "window_seconds": 25.0, "noise_margin_seconds": 5.0,
               "resampling": "none", "components": "ZNE"},
    ).chunk({"window": 16})
    ds.to_zarr(str(path), mode="w", zarr_format=3, consolidated=False)
    return str(path)


# ------------------------------------------------------------------------------------------ metrics
def test_confusion_and_scores_hand_computed():
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    p = [1, 0, 1, 1, 0, 0, 0, 0]
    s = metrics.scores(y, p)
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (2, 1, 3, 2)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 4)
    assert s["fpr"] == pytest.approx(1 / 4)
    assert s["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))


def test_edge_cases():
    # nothing predicted positive: precision undefined, recall 0, F1 0
    s = metrics.scores([1, 0, 1], [0, 0, 0])
    assert math.isnan(s["precision"]) and s["recall"] == 0 and s["fpr"] == 0 and s["f1"] == 0
    # all labels one class (noise): recall undefined
    s = metrics.scores([0, 0, 0], [0, 1, 0])
    assert math.isnan(s["recall"]) and s["precision"] == 0 and s["fpr"] == pytest.approx(1 / 3)
    # all earthquakes, all found: FPR undefined
    s = metrics.scores([1, 1], [1, 1])
    assert s["precision"] == s["recall"] == s["f1"] == 1 and math.isnan(s["fpr"])
    s = metrics.scores([0, 0], [0, 0])
    assert math.isnan(s["f1"]) and math.isnan(s["precision"])
    with pytest.raises(ValueError):
        metrics.confusion_matrix([1, 0], [1])


def test_pr_curve():
    c = metrics.pr_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert c["average_precision"] == pytest.approx(0.8333333)
    assert c["recall"][0] == 1.0 and c["precision"][-1] == 1.0
    assert math.isnan(metrics.pr_curve([0, 0], [0.1, 0.2])["average_precision"])


def test_hours_per_year():
    assert metrics.windows_per_year(25, 25) == int((365.25 * 86400 - 25) // 25) + 1
    # 100 windows in 2 s on 4 cores = 0.08 core-seconds per window
    h = metrics.hours_per_year(2.0, 100, 25.0, 12.5, cores=4)
    assert h == pytest.approx(0.08 * metrics.windows_per_year(25, 12.5) / 3600)
    assert metrics.hours_per_year(1, 10, 25, 25, 2) == pytest.approx(2 * metrics.hours_per_year(1, 10, 25, 25, 1))
    with pytest.raises(ValueError):
        metrics.hours_per_year(1, 0, 25, 25)


def test_results_table():
    t = metrics.results_table({"STA/LTA": {"precision": 0.783, "recall": 0.621, "fpr": 0.217, "f1": 0.69,
                                           "hours_per_year": 0.5},
                               "X": {"precision": float("nan"), "recall": 0.0, "fpr": None, "f1": 0,
                                     "hours_per_year": 12.34}})
    lines = t.strip().splitlines()
    assert lines[0].startswith("| method | precision | recall | false-positive rate |")
    assert lines[2] == "| STA/LTA | 78.3 % | 62.1 % | 21.7 % | 69.0 % | 0.5 |"
    assert lines[3] == "| X | — | 0.0 % | — | 0.0 % | 12.3 |"
    cost = metrics.results_table({"A": {"precision": 1, "recall": 1, "fpr": 0, "f1": 1, "hours_per_year": 1.0,
                                        "windows_per_second": 1234.5, "parameters": 151202, "gmacs": 0.369},
                                  "B": {"precision": 1, "recall": 1, "fpr": 0, "f1": 1, "hours_per_year": 1.0}})
    lines = cost.strip().splitlines()
    assert lines[0].endswith("| windows/s (measured) | parameters | G multiply-adds per window |")
    assert lines[2].endswith("| 1,234.5 | 151,202 | 0.37 |") and lines[3].endswith("| — | — | — |")


def test_bins_and_breakdowns_hand_computed():
    assert metrics.bin_name(None, 10.0) == "<10" and metrics.bin_name(10.0, 20.0) == "10–20"
    assert metrics.bin_name(40.0, None) == "≥40"
    bins = [(0.0, 10.0), (10.0, None)]
    # half-open bins; NaN and values outside every bin (negative) are unknown
    assert metrics.assign_bins([0, 9.99, 10, 1e9, np.nan, -1], bins).tolist() == [
        "0–10", "0–10", "≥10", "≥10", "unknown", "unknown"]
    y = [1, 1, 1, 1, 0, 0, 0]
    p = [1, 0, 1, 0, 1, 0, 1]
    values = [5, 5, 50, np.nan, 5, 5, 5]  # noise windows' values do not count
    assert metrics.recall_by_bin(y, p, values, bins) == [
        {"bin": "0–10", "min": 0.0, "max": 10.0, "n": 2, "detected": 1, "recall": 0.5},
        {"bin": "≥10", "min": 10.0, "max": None, "n": 1, "detected": 1, "recall": 1.0},
        {"bin": "unknown", "min": None, "max": None, "n": 1, "detected": 0, "recall": 0.0}]
    groups = ["earthquake"] * 4 + ["icequake", "icequake", None]
    by = metrics.fpr_by_group(y, p, groups)
    assert list(by) == ["icequake", "quiet_noise", "pre_event_noise", "unknown"]
    assert by["icequake"] == {"n": 2, "false_positives": 1, "fpr": 0.5}
    assert by["unknown"] == {"n": 1, "false_positives": 1, "fpr": 1.0} and math.isnan(by["quiet_noise"]["fpr"])
    sg = metrics.scores_by_group(y, p, ["a", "a", "b", "b", "a", "b", "b"])
    assert (sg["a"]["tp"], sg["a"]["fn"], sg["a"]["fp"], sg["a"]["earthquakes"], sg["a"]["noise"]) == (1, 1, 1, 2, 1)
    assert (sg["b"]["tp"], sg["b"]["fn"], sg["b"]["fp"], sg["b"]["tn"]) == (1, 1, 1, 1)
    with pytest.raises(ValueError):
        metrics.recall_by_bin([1], [1, 0], [1], bins)


def test_m50_interpolates_where_recall_last_rises_through_half():
    # per bin (mean magnitude, recall): <0 (-0.25, 0.5: a chance match) | 0–0.5 (0.25, 0) | 0.5–1 (0.7, 0.25)
    # | 1–1.5 (1.2, 1) | 1.5–2 empty | ≥2 (2.5, 1); NaN left out. Last point below 50 %: 0.7 → between 0.7 and
    # 1.2: 0.7 + (0.5 - 0.25) / (1 - 0.25) × 0.5 = 0.8667
    mags = [-0.3, -0.2, 0.2, 0.3, 0.6, 0.8, 0.7, 0.7, 1.1, 1.3, 2.5, np.nan]
    hits = [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]
    r = metrics.m50(mags, hits)
    assert r["m50"] == pytest.approx(0.867) and r["bound"] == "=" and r["level"] == 0.5
    assert [(p["bin"], p["magnitude"], p["n"], p["recall"]) for p in r["points"]] == [
        ("<0", -0.25, 2, 0.5), ("0–0.5", 0.25, 2, 0.0), ("0.5–1", 0.7, 4, 0.25), ("1–1.5", 1.2, 2, 1.0),
        ("≥2", 2.5, 1, 1.0)]
    assert metrics.m50_text(r) == "0.87"
    assert metrics.m50(mags, hits, level=0.2)["m50"] == pytest.approx(0.25 + 0.2 / 0.25 * 0.45)  # 0–0.5 → 0.5–1
    # every bin at or above 50 %: below the first point; the last bin below: above the last point
    low = metrics.m50([0.2, 1.2], [1, 1])
    assert (low["m50"], low["bound"], metrics.m50_text(low)) == (0.2, "<", "< 0.20")
    high = metrics.m50([0.2, 2.4, 2.6], [1, 0, 0])
    assert (high["m50"], high["bound"], metrics.m50_text(high)) == (2.5, ">", "> 2.50")
    none = metrics.m50([np.nan], [1])
    assert none["m50"] is None and none["points"] == [] and metrics.m50_text(none) == "—"
    with pytest.raises(ValueError):
        metrics.m50([1.0, 2.0], [1])
    # a recall curve that rises, falls below 50 % and rises again: the last crossing counts
    assert metrics.m50([0.2, 0.7, 1.2, 1.7], [0, 1, 0, 1])["m50"] == pytest.approx(1.45)


def test_results_table_with_subclasses_and_breakdowns():
    row = {"precision": 0.5, "recall": 1.0, "fpr": 0.25, "f1": 2 / 3, "hours_per_year": 1.0,
           "average_precision": 0.875, "fpr_by_subclass": {"icequake": {"fpr": 0.5}, "quiet_noise": {"fpr": None}},
           "recall_by_snr": [{"bin": "<10", "n": 2, "detected": 1, "recall": 0.5},
                             {"bin": "unknown", "n": 0, "detected": 0, "recall": None}],
           "by_region": {"r1": {"earthquakes": 2, "noise": 4, "precision": 0.5, "recall": 1.0, "fpr": 0.25,
                                "f1": 2 / 3}}}
    t = metrics.results_table({"M": row}, {"icequake": 2, "quiet_noise": 0})
    assert t.splitlines()[0] == ("| method | precision | recall | false-positive rate | FPR icequake (n=2) "
                                 "| FPR quiet noise (n=0) | F1 | average precision "
                                 "| processing, hours per year of data (one core) |")
    assert t.splitlines()[2] == "| M | 50.0 % | 100.0 % | 25.0 % | 50.0 % | — | 66.7 % | 0.88 | 1 |"
    b = metrics.breakdown_tables({"M": row})
    assert "| method | <10 (n=2) | unknown (n=0) |\n|---|---|---|\n| M | 50.0 % (1/2) | — |" in b
    assert "| r1 | M | 2 | 4 | 50.0 % | 100.0 % | 25.0 % | 66.7 % |" in b
    assert "distance" not in b and "By network" not in b  # breakdowns a method lacks are left out
    row["recall_by_magnitude"] = metrics.recall_by_bin([1, 1, 1], [0, 1, 1], [0.7, 1.2, np.nan], [(0.5, 1.0),
                                                                                            (1.0, None)])
    row["m50"] = metrics.m50([0.7, 1.2], [0, 1], [(0.5, 1.0), (1.0, None)])
    b = metrics.breakdown_tables({"M": row})
    assert ("### Recall by magnitude (window store `magnitude`; bins [min, max))\n\n| method | 0.5–1 (n=1) "
            "| ≥1 (n=1) | unknown (n=1) |\n|---|---|---|---|\n| M | 0.0 % (0/1) | 100.0 % (1/1) | 100.0 % (1/1) |\n\n"
            "M50 (magnitude from which window recall stays ≥ 50 %): M 0.95\n") in b


def test_figures(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    path = metrics.plot_pr_curves({"a": (y, y + rng.normal(0, 0.5, 50))}, tmp_path / "pr.png", {"a": (0.5, 0.6)})
    images = rng.normal(size=(6, 3, 20, 30))
    panel = metrics.plot_spectrogram_panel(images, [1, 1, 1, 0, 0, 0], tmp_path / "panel.png")
    for p in (path, panel):
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------- evaluate
def test_evaluate_both_methods_same_test_windows(tmp_path):
    from seisgrid.seismic.evaluate import evaluate

    url = write_window_store(tmp_path / "w.zarr", n=96)
    out = evaluate(url, methods=("stalta", "forest"), split="split_region", out_dir=tmp_path / "eval",
                   forest_options={"n_estimators": 30})
    assert [m["name"] for m in out["methods"]] == ["stalta", "forest"]
    assert out["test_windows"] == 48 and out["cores"] == 1
    for m in out["methods"]:
        assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == 48
        assert 0.5 < m["recall"] <= 1 and 0.5 < m["precision"] <= 1
        assert m["hours_per_year"] > 0
    assert "| STA/LTA |" in out["table"] and "| Random Forest |" in out["table"]
    results_md = (tmp_path / "eval" / "results.md").read_text()
    assert out["table"] in results_md and out["breakdown_tables"] in results_md
    assert all(m["average_precision"] is not None for m in out["methods"])
    assert len(out["figures"]) == 2 and all(p.endswith(".png") for p in out["figures"])
    import json

    json.dumps(out)  # JSON-ready (NaN → None)


def test_evaluate_with_spectrogram_store(tmp_path):
    import xarray as xr

    from seisgrid.seismic import forest
    from seisgrid.seismic.evaluate import evaluate

    url = write_window_store(tmp_path / "w.zarr", n=64)
    ds = xr.open_zarr(url)
    images = forest.waveform_images(ds.waveform.values)
    spec = ds.drop_vars(["waveform", "present"]).assign(
        image=(("window", "component", "freq", "time"), images.astype(np.float16)))
    spec.chunk({"window": 16}).to_zarr(str(tmp_path / "s.zarr"), mode="w", zarr_format=3, consolidated=False)
    out = evaluate(url, str(tmp_path / "s.zarr"), methods=("forest",), split="split",
                   forest_options={"n_estimators": 20})
    assert out["methods"][0]["recall"] > 0.5
    from seisgrid.errors import SeisgridError

    with pytest.raises(SeisgridError):
        evaluate(url, methods=("nope",))
