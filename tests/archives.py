"""Tiny hand-built miniSEED inputs for tests that need exact control over bytes (bad files, edge cases).

Whole synthetic archives with a truth catalog come from :mod:`seisgrid.seismic.synth`.
"""

import io
import os

import numpy as np
import obspy

RECLEN = 512
TRACE_START = obspy.UTCDateTime(2020, 1, 1, 0, 0, 0, 5000)  # 5 ms after midnight: off the sample grid
DAY_FILES_START = obspy.UTCDateTime(2021, 1, 1)


def trace(npts=6000, rate=100.0, start=TRACE_START, seed=0,
          id="XX.ABC.00.HHZ") -> obspy.Trace:
    rng = np.random.default_rng(seed)
    net, sta, loc, cha = id.split(".")
    data = (np.cumsum(rng.normal(size=npts)) * 10).astype("int32")
    return obspy.Trace(data, header={"network": net, "station": sta, "location": loc, "channel": cha,
                                     "sampling_rate": rate, "starttime": obspy.UTCDateTime(start)})


def mseed_bytes(*traces, reclen=RECLEN) -> bytes:
    buf = io.BytesIO()
    obspy.Stream(list(traces) or [trace()]).write(buf, format="MSEED", encoding="STEIM2", reclen=reclen)
    return buf.getvalue()


def sds_path(root, tr: obspy.Trace) -> str:
    s, t = tr.stats, tr.stats.starttime
    path = os.path.join(str(root), f"{t.year}", s.network, s.station, f"{s.channel}.D",
                        f"{s.network}.{s.station}.{s.location}.{s.channel}.D.{t.year}.{t.julday:03d}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def write_day_files(root, ids=("XX.A..BHZ",), days=2, rate=20.0, start=DAY_FILES_START, seed=0):
    """One whole-day SDS file per channel and day; returns {path: trace}."""
    out = {}
    for k, cid in enumerate(ids):
        for d in range(days):
            tr = trace(int(rate * 86400), rate, start + 86400 * d, seed=seed + 100 * k + d, id=cid)
            path = sds_path(root, tr)
            with open(path, "wb") as f:
                f.write(mseed_bytes(tr))
            out[path] = tr
    return out
