"""Near-real-time detection (seisgrid.seismic.watch): files fed one by one — in order, out of order, late,
rewritten, with a restart — give exactly the batch run's catalog, and only changed windows are recomputed."""

from __future__ import annotations

import os
import pathlib
import random
import shutil

import numpy as np
import obspy
import pytest
from helpers import requires_s3fs
from oracle import SEED, save_oracle

from seisgrid.seismic import detect as detect_mod
from seisgrid.seismic import windowgrid
from seisgrid.seismic.detect import detect
from seisgrid.seismic.ingest import ingest
from seisgrid.seismic.synth import station_files, synthesize
from seisgrid.seismic.watch import Watcher, watch

PIECE_SECONDS = 1800.0  # 72 min of synthetic data → 3 pieces per station (the last one short)
DETECT = {"stride_seconds": 10.0}


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("watch")
    synthesize(str(tmp / "archive"), stations=3, days=0.05, sampling_rates=[100.0], events_per_day=400, seed=SEED)
    model = save_oracle(tmp / "oracle.pt")
    pieces = [pathlib.Path(path) for _, _, path in station_files(tmp / "archive", tmp / "pieces", PIECE_SECONDS)]
    ingest(str(tmp / "pieces"), str(tmp / "batch.zarr"), progress=False)
    batch = detect(str(tmp / "batch.zarr"), model, str(tmp / "batch" / "catalog"),
                   stations=str(tmp / "archive" / "stations.csv"), progress=False, **DETECT)
    assert batch["n_events"] >= 2 and batch["picks"] >= 6
    return tmp, model, pieces, (tmp / "batch" / "catalog.csv").read_text()


def _watcher(tmp, model, name):
    return Watcher(str(tmp / name / "incoming"), str(tmp / name / "store.zarr"), model,
                   str(tmp / name / "catalog"),
                   detect_options={"stations": str(tmp / "archive" / "stations.csv"), **DETECT})


def _deliver(path: pathlib.Path, folder: pathlib.Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, folder / (path.name + ".part"))
    os.replace(folder / (path.name + ".part"), folder / path.name)  # as a careful producer does


def test_files_in_order_with_a_restart_and_a_rewrite_give_the_batch_catalog(feed):
    tmp, model, pieces, batch_csv = feed
    order = sorted(pieces, key=lambda p: (p.name.split(".", 1)[1], p.name))  # time, then station
    watcher = _watcher(tmp, model, "in-order")
    incoming = tmp / "in-order" / "incoming"
    windows = []
    for i, piece in enumerate(order):
        if i == len(order) // 2:  # Ctrl-C, then `seisgrid watch` again: a new watcher resumes
            watcher = _watcher(tmp, model, "in-order")
        _deliver(piece, incoming)
        result = watcher.cycle()
        assert result is not None and result["files"]
        windows.append(result["windows"])
        assert (tmp / "in-order" / "catalog.csv").exists()
    assert (tmp / "in-order" / "catalog.csv").read_text() == batch_csv
    # each file costs its own windows and the reach around them (one station's 30 min / 10 s = 180), not the day's
    assert max(windows) < 250, windows
    # a file rewritten with the same samples: scanned and written again, nothing recomputed
    shutil.copyfile(order[0], incoming / "tmp")
    os.replace(incoming / "tmp", incoming / order[0].name)
    os.utime(incoming / order[0].name, (1e9, 1e9))
    again = watcher.cycle()
    assert again is not None and again["files"] == [str(incoming / order[0].name)]
    assert again["ingest"]["files_scanned"] == 1 and again["windows"] == 0
    assert watcher.cycle() is None  # nothing new
    assert (tmp / "in-order" / "catalog.csv").read_text() == batch_csv


def test_files_out_of_order_and_late_give_the_batch_catalog(feed):
    tmp, model, pieces, batch_csv = feed
    order = list(pieces)
    random.Random(5).shuffle(order)
    late = min(order, key=lambda p: p.name.split(".", 1)[1])  # a first-piece file, delivered last
    order.remove(late)
    watcher = _watcher(tmp, model, "shuffled")
    for piece in [*order, late]:
        _deliver(piece, tmp / "shuffled" / "incoming")
        assert watcher.cycle() is not None
    assert (tmp / "shuffled" / "catalog.csv").read_text() == batch_csv


def test_a_changed_hour_recomputes_only_the_windows_that_read_it(feed, tmp_path):
    tmp, model, pieces, _ = feed
    source = tmp_path / "incoming"
    for piece in pieces:
        _deliver(piece, source)
    out = str(tmp_path / "catalog")
    first = watch(str(source), str(tmp_path / "store.zarr"), model, out, max_cycles=1, settle_seconds=0,
                  stations=str(tmp / "archive" / "stations.csv"), **DETECT)
    assert first["cycles"][0]["windows"] > 0 and first["catalog"]["csv"].endswith("catalog.csv")
    # one station's third piece replaced by a quieter copy: its hour changes, the other hours do not
    victim = sorted(pieces, key=lambda p: p.name.split(".", 1)[1])[-1]  # a last (short) piece
    st = obspy.read(str(victim))
    for tr in st:
        tr.data = (tr.data // 2).astype(tr.data.dtype)
    st.write(str(source / "tmp.mseed"), format="MSEED")
    os.replace(source / "tmp.mseed", source / victim.name)
    again = watch(str(source), str(tmp_path / "store.zarr"), model, out, max_cycles=1, settle_seconds=0,
                  stations=str(tmp / "archive" / "stations.csv"), **DETECT)
    cycle = again["cycles"][0]
    assert cycle["resumed"] and cycle["latency_seconds"] == {}
    # the windows that read the changed samples (30 min of them) plus the reach around them
    reach = detect_mod.context({"stride_seconds": 10.0, "window_seconds": 25.0, "min_windows": 2,
                                "refine_lta": 10.0, "pick_method": "stalta"})
    most = (1800e9 + reach["before_ns"] + reach["after_ns"]) / 10e9 + 1
    assert 0 < cycle["windows"] <= most, (cycle["windows"], most)


@requires_s3fs
def test_watch_follows_an_s3_prefix(feed, s3_bucket, tmp_path):
    """Files uploaded to an s3:// prefix one after another: each listing sees the new object (no stale
    s3fs listing cache), objects need no settling (a PUT is atomic), the catalog follows."""
    from seisgrid import storage

    tmp, model, pieces, _ = feed
    source = f"{s3_bucket}/incoming"
    watcher = Watcher(source, str(tmp_path / "store.zarr"), model, str(tmp_path / "catalog"),
                      settle_seconds=30.0, detect_options=DETECT)
    first = sorted(pieces)[:2]
    for piece in first:
        storage.write_bytes(f"{source}/{piece.name}", piece.read_bytes())
    result = watcher.cycle()
    assert result is not None and sorted(result["files"]) == [f"{source}/{p.name}" for p in first]
    assert watcher.cycle() is None
    storage.write_bytes(f"{source}/{pieces[-1].name}", pieces[-1].read_bytes())
    result = watcher.cycle()
    assert result is not None and result["files"] == [f"{source}/{pieces[-1].name}"] and result["windows"] > 0
    assert (tmp_path / "catalog.csv").exists()


def test_a_file_still_being_written_waits_until_it_settles(feed, tmp_path):
    tmp, model, pieces, _ = feed
    source = tmp_path / "incoming"
    source.mkdir()
    watcher = Watcher(str(source), str(tmp_path / "store.zarr"), model, str(tmp_path / "catalog"),
                      settle_seconds=3600.0, detect_options=DETECT)
    shutil.copyfile(pieces[0], source / pieces[0].name)
    assert watcher.cycle() is None and not (tmp_path / "store.zarr").exists()
    watcher.settle_seconds = 0.0
    assert watcher.cycle() is not None and (tmp_path / "store.zarr").exists()


def test_watch_runs_the_stalta_baseline_too(feed, tmp_path):
    tmp, _, pieces, _ = feed
    for piece in pieces:
        _deliver(piece, tmp_path / "incoming")
    summary = watch(str(tmp_path / "incoming"), str(tmp_path / "store.zarr"), None, str(tmp_path / "catalog"),
                    method="stalta", max_cycles=1, settle_seconds=0)
    assert summary["cycles"][0]["files"] and summary["n_events"] >= 1
    assert (tmp_path / "catalog.xml").exists()


def test_block_digests_change_only_where_samples_change():
    from seisgrid.seismic.ingest import block_digests

    values = np.arange(100, dtype=np.int32)
    a = block_digests(values, 30, 0, 10.0)
    values[45] += 1
    b = block_digests(values, 30, 0, 10.0)
    assert len(a["digests"]) == 4 and a["seconds"] == 3.0
    assert [x == y for x, y in zip(a["digests"], b["digests"], strict=True)] == [True, False, True, True]


def test_invalid_windows_cover_the_reach_of_a_change():
    reach = {"before_ns": 7, "after_ns": 25}
    day = 0
    # window k (start 10k) reads [10k − 7, 10k + 25); a change in [100, 110) touches k = 8 … 11
    assert windowgrid.invalid_windows([(100, 110)], day, 10, reach) == [[8, 12]]
    before, now = {"c": [[0, 5, "x"], [5, 9, "y"]]}, {"c": [[0, 5, "x"], [5, 9, "z"], [9, 12, "w"]]}
    assert windowgrid.changed_spans(before, now) == [(5, 9), (9, 12)]
