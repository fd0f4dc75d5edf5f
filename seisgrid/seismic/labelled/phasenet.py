"""PhaseNet NCEDC sets: ``.npz`` files (+ ``waveform.csv``), e.g. ``phasenet-ncedc``.

``data`` (samples, 3) at 100 Hz, column order from ``channels`` (``EHE_EHN_EHZ``); single-channel files
(``EHZ``) hold the channel in the Z slot of an E, N, Z layout and two all-zero columns, which are flagged
absent. P at ``itp`` (3000), S at ``its``. The file name ``NET_STA_YYYYMMDDHHMMSScc[_nn].npz`` gives
network, station and the event id (file times within 60 s are one event).
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from seisgrid.seismic.labelled.base import Reader, Record, Skip, _region_of, folder_files
from seisgrid.seismic.windowstore import COMPONENTS

_PHASENET_NAME = re.compile(r"^(?P<net>[A-Za-z0-9]+)_(?P<sta>[A-Za-z0-9]+)_(?P<time>\d{8,16})(?:_\d+)?\.npz$")


def _phasenet_files(folder) -> dict[str, pathlib.Path]:
    return folder_files(folder, ".npz")


def detect(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds PhaseNet ``.npz`` files.

    Parameters
    ----------
    folder : pathlib.Path
        A local folder.

    Returns
    -------
    bool
        ``*.npz`` files in ``folder`` or one level below.
    """
    return any(folder.glob("*.npz")) or any(folder.glob("*/*.npz"))


def _phasenet_keys(folder) -> list[str]:
    return sorted(_phasenet_files(folder))


def _phasenet_events(names) -> dict[str, str]:
    """Event id per file: file times within 60 s of each other (at several stations) are one event."""
    times = []
    for name in names:
        m = _PHASENET_NAME.match(name)
        if m:
            stamp = m["time"].ljust(16, "0")
            t = pd.Timestamp(f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:"
                             f"{stamp[12:14]}.{stamp[14:16]}")
            times.append((t, m["time"], name))
    times.sort()
    events, last, current = {}, None, None
    for t, stamp, name in times:
        if last is None or (t - last).total_seconds() > 60.0:
            current = stamp
        events[name] = current
        last = t
    return events


def read_phasenet(folder: str | os.PathLike, names: Iterable[str] | None = None, source: str | None = None,
                  events: dict[str, str] | None = None) -> Iterator[Record | Skip]:
    """Records of a PhaseNet NCEDC folder (``*.npz``, optional ``waveform.csv``).

    Column order comes from ``channels`` (last letter E/N/Z, 1→N, 2→E); with fewer than three channel
    names the columns are the E, N, Z slots. All-zero columns are flagged absent, never invented.

    Parameters
    ----------
    folder : str or path-like
        The local folder (``*.npz`` in it or one level below).
    names : iterable of str, optional
        Only these file names (default all), read in sorted order.
    source : str, optional
        Source name of the records (default the folder name).
    events : dict of str to str, optional
        File name → event id (default: from the file times of the whole folder, 60 s apart or more).

    Yields
    ------
    Record or Skip
        One per file: the record, or why it cannot be used.
    """
    folder = pathlib.Path(folder)
    source = source or folder.name
    files = _phasenet_files(folder)
    table = {}
    if (folder / "waveform.csv").exists():
        for row in pd.read_csv(folder / "waveform.csv").to_dict("records"):
            table[str(row["fname"])] = row
    wanted = sorted(files) if names is None else sorted(names)
    events = events if events is not None else _phasenet_events(sorted(files))
    for name in wanted:
        path = files.get(name)
        if path is None:
            yield Skip(source, name, "listed but no such .npz file")
            continue
        try:
            with np.load(path) as d:
                x = np.asarray(d["data"], dtype="float64")
                itp = int(d["itp"]) if "itp" in d.files else None
                its = int(d["its"]) if "its" in d.files else None
                channels = str(d["channels"]) if "channels" in d.files else ""
        except Exception as exc:  # noqa: BLE001 (any unreadable file is reported and skipped)
            yield Skip(source, name, f"unreadable .npz ({type(exc).__name__}: {exc})")
            continue
        row = table.get(name, {})
        if itp is None and "itp" in row:
            itp = int(row["itp"])
        if its is None and "its" in row and not pd.isna(row["its"]):
            its = int(row["its"])
        channels = channels or str(row.get("channels", ""))
        if x.ndim != 2 or x.shape[1] != 3:
            yield Skip(source, name, f"expected data of shape (samples, 3), found {x.shape}")
            continue
        codes = [c for c in channels.split("_") if c]
        if len(codes) == 3:
            order = [{"1": "N", "2": "E"}.get(c[-1].upper(), c[-1].upper()) for c in codes]
        else:
            order = ["E", "N", "Z"]
        if sorted(order) != ["E", "N", "Z"]:
            yield Skip(source, name, f"cannot map channels {channels!r} to Z/N/E")
            continue
        named = {("1" if c[-1] == "1" else "2" if c[-1] == "2" else c[-1].upper()) for c in codes}
        named = {{"1": "N", "2": "E"}.get(c, c) for c in named} or set(COMPONENTS)
        data = np.zeros((3, x.shape[0]))
        present = np.zeros(3, bool)
        for col, comp in enumerate(order):
            k = COMPONENTS.index(comp)
            data[k] = x[:, col]
            present[k] = comp in named and bool(np.any(x[:, col] != 0))
        m = _PHASENET_NAME.match(name)
        net, sta = (m["net"], m["sta"]) if m else ("", pathlib.Path(name).stem)
        yield Record(
            source=source, name=name, data=data, sampling_rate=100.0, present=present, kind="event",
            p_seconds=None if itp is None else itp / 100.0, s_seconds=None if its is None else its / 100.0,
            network=net, station=sta, event_id=f"{source}:{events.get(name, pathlib.Path(name).stem)}",
            region=_region_of(source),
        )


def _task_events(keys: list[str]) -> dict:
    return {"events": _phasenet_events(keys)}


def _read_task_keys(path, keys, source=None, events=None):
    """:func:`read_phasenet` of one task's keys, with the folder's ``events`` cut down to them."""
    events = {k: v for k, v in (events or {}).items() if k in set(keys)}
    return read_phasenet(path, keys, source=source, events=events or None)


READER = Reader(detect=detect, keys=_phasenet_keys, read=_read_task_keys, chunk=64, extra=_task_events)
