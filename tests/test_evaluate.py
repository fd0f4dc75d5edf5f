"""``seisgrid evaluate``: every breakdown number checked by hand, the threshold rule, trained detectors on other stores.

The stores are tiny labelled-window stores written with :func:`seisgrid.seismic.windowstore.windows_dataset`
and :func:`~seisgrid.seismic.windowstore.write_windows`. Their waveforms are a 5 Hz background sinusoid
(plus 1 % noise) and, in some windows, a 1 s 10 Hz burst of amplitude A at 12 s: the classic STA/LTA
score of such a window is ≈ (A² + 1) / (0.1 A² + 1) (≈ 1.0 without burst, 9.2 for A = 10), so with a given
threshold which window is detected — and the order of the scores — is known by construction.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import requires_torch

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic import metrics, stalta
from seisgrid.seismic.evaluate import METHODS, evaluate, load_stalta, parse_methods
from seisgrid.seismic.windowstore import windows_dataset, write_windows

RATE, SAMPLES = 100.0, 2500
NAN = math.nan

OPTS = {"sampling_rate": RATE, "window_seconds": 25.0, "pre_p_seconds": [5.0, 11.0], "noise_margin_seconds": 5.0,
        "split_fractions": [0.7, 0.15, 0.15], "seed": 0, "split_grouping": "event+station", "test_regions": [],
        "test_networks": [], "catalog_noise_seconds": 60.0, "augment_snr_db": [0.0, 20.0],
        "augment_shift_seconds": 2.0, "augment_scale": [0.5, 2.0]}


def waveform(amplitude, rng):
    """(3, 2500): background sinusoid + 1 % noise + a burst of ``amplitude`` (None: none) at 12 s."""
    t = np.arange(SAMPLES) / RATE
    x = np.repeat(np.sin(2 * np.pi * 5 * t)[None], 3, axis=0) + rng.normal(0, 0.01, (3, SAMPLES))
    if amplitude:
        x[:, 1200:1300] += amplitude * np.sin(2 * np.pi * 10 * t[:100])
    return (x - x.mean(axis=1, keepdims=True)).astype(np.float32)


def write_store(path, rows, *, seed=0, new_variables=True, split_column=True):
    """A window store of ``rows`` (dicts: label, A, and optionally subclass, snr_db, distance_km, magnitude,
    region, network, split, augmented). ``new_variables=False`` writes a store as before ``subclass`` and
    ``distance_km`` existed; ``split_column=False`` one without split columns."""
    rng = np.random.default_rng(seed)
    n = len(rows)

    def col(key, default):
        return np.array([r.get(key, default) for r in rows])

    label = col("label", 0).astype(np.int8)
    cols = {
        "waveform": np.stack([waveform(r.get("A"), rng) for r in rows]), "present": np.ones((n, 3), bool),
        "label": label, "p_index": np.where(label == 1, 1200, -1), "s_index": np.full(n, -1),
        "start_time": np.array(["2021-01-01T00:00"] * n, dtype="datetime64[ns]"),
        "magnitude": col("magnitude", NAN).astype(float), "snr_db": col("snr_db", NAN).astype(float),
        "distance_km": col("distance_km", NAN).astype(float), "augmented": col("augmented", False).astype(bool),
        "source": np.array(["synthetic"] * n), "region": col("region", "A"), "network": col("network", "XA"),
        "station": np.array([f"S{i:02d}" for i in range(n)]), "event_id": np.array([f"ev{i}" for i in range(n)]),
        "subclass": col("subclass", ""), "split": col("split", "test"), "split_region": col("split", "test"),
    }
    ds = windows_dataset(cols, OPTS, {"synthetic": "synthetic"}, resampling="none")
    if not new_variables:
        ds = ds.drop_vars([v for v in ("subclass", "distance_km") if v in ds])
    if not split_column:
        ds = ds.drop_vars(["split", "split_region"])
    write_windows(ds, path, chunk=8)
    return str(path)


# The hand-checked store: 6 earthquakes (e0–e5) and 8 noise windows (n0–n7), all test windows.
# Burst amplitudes fix the STA/LTA score order: e0 9.2 > n0 8.0 > e2 6.5 > e3 5.3 > n2 4.5 > e5 3.7 > n5 2.9
# > e1 1.7 > e4 1.5 > the five windows without burst (≈ 1.0). Threshold 2: e0 e2 e3 e5 n0 n2 n5 detected.
HAND = [
    dict(name="e0", label=1, A=10, subclass="earthquake", snr_db=5, distance_km=10, magnitude=2.5, region="A",
         network="XA"),
    dict(name="e1", label=1, A=0.8, subclass="earthquake", snr_db=15, distance_km=30, magnitude=0.2, region="A",
         network="XA"),
    dict(name="e2", label=1, A=4, subclass="earthquake", snr_db=15, distance_km=NAN, magnitude=1.2, region="B",
         network="XB"),
    dict(name="e3", label=1, A=3, subclass="earthquake", snr_db=NAN, distance_km=150, region="B", network="XB"),
    dict(name="e4", label=1, A=0.6, subclass="earthquake", snr_db=45, distance_km=500, magnitude=0.7, region="B",
         network="XC"),
    dict(name="e5", label=1, A=2, subclass="earthquake", snr_db=25, distance_km=60, magnitude=0.8, region="A",
         network="XA"),
    dict(name="n0", label=0, A=6, subclass="icequake", region="A", network="XA"),
    dict(name="n1", label=0, A=None, subclass="icequake", region="B", network="XB"),
    dict(name="n2", label=0, A=2.5, subclass="icequake", region="B", network="XB"),
    dict(name="n3", label=0, A=None, subclass="quiet_noise", region="A", network="XA"),
    dict(name="n4", label=0, A=None, subclass="quiet_noise", region="B", network="XC"),
    dict(name="n5", label=0, A=1.5, subclass="pre_event_noise", region="A", network="XA"),
    dict(name="n6", label=0, A=None, subclass="pre_event_noise", region="B", network="XB"),
    dict(name="n7", label=0, A=None, subclass="", region="A", network="XA"),
]


@pytest.fixture(scope="module")
def hand_store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("hand") / "w.zarr", HAND)


def test_the_synthetic_scores_are_in_the_designed_order(hand_store):
    import xarray as xr

    scores = stalta.window_scores(xr.open_zarr(hand_store)["waveform"].values)
    order = [HAND[i]["name"] for i in np.argsort(-scores, kind="stable")]
    assert order[:9] == ["e0", "n0", "e2", "e3", "n2", "e5", "n5", "e1", "e4"]
    assert scores[np.argsort(-scores)[6]] > 2 > scores[np.argsort(-scores)[7]]


def test_every_breakdown_number_by_hand(hand_store, tmp_path):
    r = evaluate(hand_store, methods=["stalta:2"], split="split", out_dir=tmp_path / "ev", timing_windows=1)
    m = r["methods"][0]
    assert m["threshold"] == 2.0 and m["threshold_source"] == "given (stalta:THRESHOLD)"
    assert m["threshold_windows"] is None and "model" not in m  # nothing tuned, nothing saved
    # detected: e0 e2 e3 e5 (TP 4), n0 n2 n5 (FP 3); missed e1 e4 (FN 2); n1 n3 n4 n6 n7 (TN 5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (4, 3, 5, 2)
    assert m["precision"] == pytest.approx(4 / 7) and m["recall"] == pytest.approx(4 / 6)
    assert m["fpr"] == pytest.approx(3 / 8) and m["f1"] == pytest.approx(8 / 13)
    # ranks of the earthquakes 1, 3, 4, 6, 8, 9: AP = (1/1 + 2/3 + 3/4 + 4/6 + 5/8 + 6/9) / 6 = 35/48
    assert m["average_precision"] == pytest.approx(35 / 48)
    assert m["fpr_by_subclass"] == {
        "icequake": {"n": 3, "false_positives": 2, "fpr": pytest.approx(2 / 3)},  # n0, n2 of n0 n1 n2
        "quiet_noise": {"n": 2, "false_positives": 0, "fpr": 0.0},
        "pre_event_noise": {"n": 2, "false_positives": 1, "fpr": 0.5},  # n5
        "unknown": {"n": 1, "false_positives": 0, "fpr": 0.0}}  # n7: empty sub-class
    snr = {b["bin"]: (b["n"], b["detected"], b["recall"]) for b in m["recall_by_snr"]}
    assert snr == {"<10": (1, 1, 1.0), "10–20": (2, 1, 0.5), "20–30": (1, 1, 1.0), "30–40": (0, 0, None),
                   "≥40": (1, 0, 0.0), "unknown": (1, 1, 1.0)}  # e0 | e1 e2 | e5 | — | e4 | e3
    dist = {b["bin"]: (b["n"], b["detected"]) for b in m["recall_by_distance"]}
    assert dist == {"0–20": (1, 1), "20–50": (1, 0), "50–100": (1, 1), "100–200": (1, 1), "≥200": (1, 0),
                    "unknown": (1, 1)}  # e0 | e1 | e5 | e3 | e4 | e2
    assert [(b["min"], b["max"]) for b in m["recall_by_snr"]] == [
        (None, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0), (40.0, None), (None, None)]
    mag = {b["bin"]: (b["n"], b["detected"]) for b in m["recall_by_magnitude"]}
    assert mag == {"<0": (0, 0), "0–0.5": (1, 0), "0.5–1": (2, 1), "1–1.5": (1, 1), "1.5–2": (0, 0), "≥2": (1, 1),
                   "unknown": (1, 1)}  # — | e1 | e4 e5 | e2 | — | e0 | e3
    # M50: points (0.2, 0) (0.75, 0.5) (1.2, 1) (2.5, 1); the last below 50 % is 0.2 → 0.2 + 0.5 / 0.5 × 0.55
    assert m["m50"]["m50"] == pytest.approx(0.75) and m["m50"]["bound"] == "="
    assert r["bins"]["magnitude"][0] == [None, 0.0] and r["bins"]["magnitude"][-1] == [2.0, None]

    def counts(s):
        return (s["tp"], s["fp"], s["tn"], s["fn"], s["earthquakes"], s["noise"])

    # region A: e0 e1 e5, n0 n3 n5 n7; B: e2 e3 e4, n1 n2 n4 n6
    assert {k: counts(v) for k, v in m["by_region"].items()} == {"A": (2, 2, 2, 1, 3, 4), "B": (2, 1, 3, 1, 3, 4)}
    assert m["by_region"]["A"]["precision"] == 0.5 and m["by_region"]["B"]["fpr"] == 0.25
    # XA = region A; XB: e2 e3, n1 n2 n6; XC: e4, n4 (nothing flagged: precision undefined)
    assert {k: counts(v) for k, v in m["by_network"].items()} == {
        "XA": (2, 2, 2, 1, 3, 4), "XB": (2, 1, 2, 0, 2, 3), "XC": (0, 0, 1, 1, 1, 1)}
    assert m["by_network"]["XC"]["precision"] is None and m["by_network"]["XC"]["recall"] == 0.0

    assert r["test_noise_subclasses"] == {"icequake": 3, "quiet_noise": 2, "pre_event_noise": 2, "unknown": 1}
    assert r["test_regions"] == {"A": {"earthquake": 3, "noise": 4}, "B": {"earthquake": 3, "noise": 4}}
    assert r["bins"]["snr_db"][0] == [None, 10.0] and r["bins"]["distance_km"][-1] == [200.0, None]
    json.dumps(r, allow_nan=False)  # strict JSON: undefined values are null

    lines = r["table"].splitlines()
    assert lines[0] == ("| method | precision | recall | false-positive rate | FPR icequake (n=3) "
                        "| FPR quiet noise (n=2) | FPR pre-event noise (n=2) | FPR unknown (n=1) | F1 "
                        "| average precision | processing, hours per year of data (one core) |")
    assert lines[2].startswith("| STA/LTA | 57.1 % | 66.7 % | 37.5 % | 66.7 % | 0.0 % | 50.0 % | 0.0 % | 61.5 % "
                               "| 0.73 |")
    md = (tmp_path / "ev" / "results.md").read_text()
    assert r["table"] in md and r["breakdown_tables"] in md
    assert "| STA/LTA | 100.0 % (1/1) | 50.0 % (1/2) | 100.0 % (1/1) | — | 0.0 % (0/1) | 100.0 % (1/1) |" in md
    assert "| XC | STA/LTA | 1 | 1 | — | 0.0 % | 0.0 % | 0.0 % |" in md
    assert ("| STA/LTA | — | 0.0 % (0/1) | 50.0 % (1/2) | 100.0 % (1/1) | — | 100.0 % (1/1) | 100.0 % (1/1) |"
            in md) and "M50 (magnitude from which window recall stays ≥ 50 %): STA/LTA 0.75" in md


def test_an_older_store_without_subclass_or_distance_counts_them_unknown(tmp_path):
    url = write_store(tmp_path / "old.zarr", HAND, new_variables=False)
    m = evaluate(url, methods=["stalta:2"], split="split", timing_windows=1)
    row = m["methods"][0]
    assert row["fpr_by_subclass"]["unknown"] == {"n": 8, "false_positives": 3, "fpr": 3 / 8}
    assert all(row["fpr_by_subclass"][k]["fpr"] is None for k in metrics.NOISE_SUBCLASSES)
    assert row["recall_by_distance"][-1] == {"bin": "unknown", "min": None, "max": None, "n": 6, "detected": 4,
                                             "recall": pytest.approx(4 / 6)}
    assert "FPR icequake" not in m["table"]  # no sub-class columns for a store that has no sub-classes


# ------------------------------------------------------------------------------------ threshold rule
def split_rows(val_noise=True):
    """train: strong earthquakes (A 8–10) vs icequakes (A 3): max F1 there puts the threshold above the
    icequakes' 5.3; val: weak earthquakes (A 2.5) vs quiet noise: there it lies near 4.5; test: mixed."""
    rows = [dict(label=1, A=a, split="train") for a in (8, 9, 10, 8.5)]
    rows += [dict(label=0, A=3, split="train", subclass="icequake") for _ in range(4)]
    rows += [dict(label=1, A=2.5, split="val") for _ in range(3)]
    rows += [dict(label=0, A=None, split="val", subclass="quiet_noise") for _ in range(3 if val_noise else 0)]
    rows += [dict(label=1, A=a, split="test") for a in (10, 3, 1.2)]
    rows += [dict(label=0, A=a, split="test", subclass="icequake") for a in (None, 4)]
    return rows


def test_stalta_threshold_is_chosen_on_val_and_saved(tmp_path):
    import xarray as xr

    url = write_store(tmp_path / "w.zarr", split_rows())
    r = evaluate(url, methods=["stalta"], split="split", out_dir=tmp_path / "ev", timing_windows=1)
    m = r["methods"][0]
    ds = xr.open_zarr(url)
    split = np.asarray(ds["split"].values, dtype=object).astype(str)
    scores = stalta.window_scores(ds["waveform"].values)
    val = split == "val"
    assert m["threshold"] == stalta.tune_threshold(scores[val], ds["label"].values[val])
    assert 4 < m["threshold"] < 5  # the val earthquakes' score, not the train optimum (> 5.3)
    assert stalta.tune_threshold(scores[split == "train"], ds["label"].values[split == "train"]) > 5.3
    assert m["threshold_source"] == "max F1 on the val windows of split (3 earthquake, 3 noise)"
    assert m["threshold_windows"] == {"part": "val", "windows": 6, "earthquakes": 3, "noise": 3}
    saved = load_stalta(m["model"])
    assert m["model"] == str(tmp_path / "ev" / "stalta.json")
    assert saved["threshold"] == m["threshold"] and saved["settings"] == stalta.window_params()
    assert saved["split"] == "split" and saved["windows_store"] == url

    # the test labels never move the threshold
    import zarr

    group = zarr.open_group(url, mode="r+")
    lab = group["label"][:]
    lab[split == "test"] = 1 - lab[split == "test"]
    group["label"][:] = lab
    again = evaluate(url, methods=["stalta"], split="split", timing_windows=1)["methods"][0]
    assert again["threshold"] == m["threshold"] and again["f1"] != m["f1"]


def test_without_val_noise_the_threshold_falls_back_to_train_and_says_so(tmp_path):
    url = write_store(tmp_path / "w.zarr", split_rows(val_noise=False))
    r = evaluate(url, methods=["stalta", "forest"], split="split", timing_windows=1,
                 forest_options={"n_estimators": 10})
    st, fo = r["methods"]
    assert st["threshold"] > 5.3  # between the train icequakes and earthquakes
    assert st["threshold_source"] == ("max F1 on the train windows of split (4 earthquake, 4 noise); "
                                      "the val windows (3 earthquake, 0 noise) lack a class")
    assert st["threshold_windows"]["part"] == "train"
    assert fo["threshold_source"].endswith("; in-sample: the detector was fitted on them")


# ---------------------------------------------------------------------- trained detectors, any store
def test_saved_detectors_score_another_store_without_training(tmp_path):
    rng = np.random.default_rng(3)
    train_rows = [dict(label=1, A=float(rng.uniform(3, 10)), split=s) for s in ["train"] * 12 + ["val"] * 4]
    train_rows += [dict(label=0, A=None, split=s, subclass="quiet_noise") for s in ["train"] * 8 + ["val"] * 4]
    train_rows += [dict(label=0, A=1.5, split="train", subclass="pre_event_noise") for _ in range(4)]
    train_rows += [dict(label=1, A=6, split="test"), dict(label=0, A=None, split="test")]
    url = write_store(tmp_path / "a.zarr", train_rows)
    fitted = evaluate(url, methods=["stalta", "forest"], split="split", out_dir=tmp_path / "ev",
                      timing_windows=1, forest_options={"n_estimators": 20})
    st, fo = fitted["methods"]
    assert st["model"].endswith("stalta.json") and fo["model"].endswith("forest.joblib")

    # another store: no split column, one augmented window (left out), icequakes the training never saw
    other = [dict(label=1, A=a, region="R", network="YY") for a in (10, 5, 0.8)]
    other += [dict(label=0, A=a, subclass="icequake", region="R", network="YY") for a in (None, 8)]
    other += [dict(label=0, A=None, subclass="quiet_noise", region="R", network="YY"),
              dict(label=1, A=10, augmented=True, region="R", network="YY")]
    url_b = write_store(tmp_path / "b.zarr", other, seed=5, split_column=False)
    r = evaluate(url_b, methods=[f"stalta:{st['model']}", f"forest:{fo['model']}", "stalta:2"], subset="all",
                 out_dir=tmp_path / "ev-b", timing_windows=1)
    assert r["subset"] == "all" and r["test_windows"] == 6 and r["augmented_left_out"] == 1
    assert r["train_windows"] == 0 and r["val_windows"] == 0
    loaded_st, loaded_fo, given = r["methods"]
    assert loaded_st["threshold"] == st["threshold"] and loaded_st["threshold_source"].startswith("saved in ")
    assert loaded_fo["threshold"] == fo["threshold"] and loaded_fo["model"] == fo["model"]
    assert given["display_name"] == "STA/LTA (2)"  # two STA/LTA rows, told apart
    for m in r["methods"]:
        assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == 6 and "warning" not in m
    # by construction (threshold 2): A 10, 5 and the icequake of A 8 detected; A 0.8 missed
    assert (given["tp"], given["fp"], given["tn"], given["fn"]) == (2, 1, 2, 1)
    assert given["fpr_by_subclass"]["icequake"] == {"n": 2, "false_positives": 1, "fpr": 0.5}
    assert sorted(p.name for p in (tmp_path / "ev-b").iterdir()) == ["pr_curves.png", "results.md", "spectrograms.png"]

    # scoring the training store itself with subset all: a warning in the row
    same = evaluate(url, methods=[f"forest:{fo['model']}"], subset="all", timing_windows=1)["methods"][0]
    assert "train/val windows are among the windows scored" in same["warning"]


def test_methods_are_checked_before_anything_runs(tmp_path):
    assert set(METHODS) >= {"stalta", "forest", "resnet"}
    assert parse_methods(["stalta", "forest:f.joblib", "stalta"]) == [
        ("stalta", None, METHODS["stalta"]), ("forest", "f.joblib", METHODS["forest"])]
    for bad in (["nope"], ["resnet"], ["resnet:"], []):
        with pytest.raises(ConfigError, match="unknown"):
            parse_methods(bad)
    with pytest.raises(ConfigError, match="subset 'all'"):
        parse_methods(["stalta"], "all")
    with pytest.raises(ConfigError, match="subset 'some'"):
        parse_methods(["stalta:3"], "some")
    url = write_store(tmp_path / "w.zarr", HAND[:4])
    with pytest.raises(SeisgridError, match="cannot load the forest"):
        evaluate(url, methods=["forest:" + str(tmp_path / "missing.joblib")], subset="all")
    (tmp_path / "x.json").write_text('{"kind": "other"}')
    with pytest.raises(SeisgridError, match="not a seisgrid STA/LTA threshold"):
        evaluate(url, methods=[f"stalta:{tmp_path / 'x.json'}"], subset="all")
    # the checkpoint says which input it takes, so it is read first
    with pytest.raises(SeisgridError, match="whatever.pt: no checkpoint there"):
        evaluate(url, methods=["resnet:whatever.pt"], subset="all")


@requires_torch
def test_a_trained_resnet_scores_another_store(tmp_path):
    from test_train import FAST

    from seisgrid.seismic import spectrogram
    from seisgrid.seismic import train as tr

    rows = [dict(label=i % 2, A=8 if i % 2 else None, split=["train", "train", "val", "test"][i // 2 % 4])
            for i in range(16)]
    url = write_store(tmp_path / "a.zarr", rows)
    spectrogram.spectrograms(url, str(tmp_path / "a-spec.zarr"), method="numpy", progress=False)
    ckpt = str(tmp_path / "tiny.pt")
    tr.train(str(tmp_path / "a-spec.zarr"), "tiny", ckpt, epochs=1, split="split", **FAST)
    url_b = write_store(tmp_path / "b.zarr", HAND, split_column=False)
    spectrogram.spectrograms(url_b, str(tmp_path / "b-spec.zarr"), method="numpy", progress=False)
    r = evaluate(url_b, str(tmp_path / "b-spec.zarr"), methods=[f"resnet:{ckpt}"], subset="all", timing_windows=1)
    m = r["methods"][0]
    assert m["threshold"] == json.loads(open(ckpt + ".json").read())["threshold"]
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == len(HAND) and m["display_name"] == "tiny"
    assert set(m["fpr_by_subclass"]) == {"icequake", "quiet_noise", "pre_event_noise", "unknown"}


def test_a_forest_of_spectrogram_images_reloads_on_another_store(tmp_path):
    from seisgrid.seismic import spectrogram

    rows = [dict(label=i % 2, A=8 if i % 2 else None, split=["train", "train", "val", "test"][i // 2 % 4])
            for i in range(16)]
    url = write_store(tmp_path / "a.zarr", rows)
    spectrogram.spectrograms(url, str(tmp_path / "a-spec.zarr"), method="numpy", progress=False)
    fo = evaluate(url, str(tmp_path / "a-spec.zarr"), methods=["forest"], split="split", out_dir=tmp_path / "ev",
                  timing_windows=1, forest_options={"n_estimators": 10})["methods"][0]
    assert json.loads(open(fo["model"] + ".json").read())["features_from"] == "spectrograms"
    url_b = write_store(tmp_path / "b.zarr", HAND, split_column=False)
    with pytest.raises(SeisgridError, match="--spectrograms"):
        evaluate(url_b, methods=[f"forest:{fo['model']}"], subset="all")
    spectrogram.spectrograms(url_b, str(tmp_path / "b-spec.zarr"), method="numpy", progress=False)
    m = evaluate(url_b, str(tmp_path / "b-spec.zarr"), methods=[f"forest:{fo['model']}"], subset="all",
                 timing_windows=1)["methods"][0]
    assert m["threshold"] == fo["threshold"] and m["timed"] == "features from spectrogram images + prediction"
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == len(HAND)
