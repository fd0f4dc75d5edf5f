"""The waveform store's layout and time grid, shared by the writer (ingest) and the reader (store).

Sample ``i`` of a channel is at ``origin_ns + i / sampling_rate``; times are integer nanoseconds since
1970 and converted with exact rational arithmetic (floats lose samples after years at 100 Hz).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from seisgrid.manifest import MANIFEST
from seisgrid.seismic.mseed import EMPTY_CODE, NS, channel_codes, channel_id, store_id

__all__ = ["NS", "DAY_NS", "MANIFEST", "STORE_KIND", "FILL_VALUES", "EMPTY_CODE", "sample_position",
           "sample_offset_ns", "day_label", "iso_ns", "channel_id", "channel_codes", "store_id", "station_of"]

DAY_NS = 86400 * NS
STORE_KIND = "seisgrid-waveforms"
FILL_VALUES: dict[str, int | np.floating] = {"int32": np.iinfo(np.int32).min, "float32": np.float32("nan"),
                                             "float64": np.float64("nan")}


def sample_position(dt_ns: int, rate: float) -> Fraction:
    """Exact sample position of a time ``dt_ns`` after a channel's origin (floats lose samples after years)."""
    return Fraction(int(dt_ns)) * Fraction(rate).limit_denominator(1_000_000) / NS


def sample_offset_ns(index: int, rate: float) -> int:
    """Nanoseconds from a channel's origin to sample ``index`` (exact rational arithmetic, rounded)."""
    return round(Fraction(int(index)) * NS / Fraction(rate).limit_denominator(1_000_000))


def day_label(epoch_day: int) -> str:
    """``YYYY-MM-DD`` of a day counted since 1970-01-01."""
    return str(np.datetime64(int(epoch_day), "D"))


def iso_ns(t_ns: int) -> str:
    """ISO 8601 UTC time with nanoseconds, e.g. ``2021-01-01T00:00:00.000000000Z``."""
    return str(np.datetime64(int(t_ns), "ns")) + "Z"


def station_of(cid: str) -> str:
    """The station group ``NET.STA`` that holds channel ``cid`` (a store id, see :func:`channel_id`)."""
    net, sta = cid.split(".")[:2]
    return f"{net}.{sta}"
