"""Which channels of a station make its Z/N/E components: one sensor per station, 1/2 → N/E.

One rule for every reader of channel ids (labelled windows from stores and event files; detection over a
store should use the same, see :func:`station_sensors`):

Component slot
    The last letter of the channel code: ``Z``, ``N``, ``E``; ``1`` goes to the N slot and ``2`` to the E
    slot with the orientation **unknown** (:attr:`Sensor.orientation_unknown`; horizontals named 1/2 are
    not rotated to north/east). Other letters (``R``, ``T``, ``U``, ``V``, ``W``, ...) are not used.
Sensor
    Location code + the first two letters of the channel code (band and instrument, e.g. ``00.HH``).
    Channels of two sensors are **never mixed**: one sensor per station, chosen by, in order,

    1. the most of the three slots filled (a 3-component sensor before a vertical-only one);
    2. instrument code (second letter): ``H`` (high-gain seismometer), ``L`` (low-gain), then any other
       letter alphabetically, ``N`` (accelerometer) last;
    3. band code (first letter): ``H``, ``B``, ``E``, ``S``, then any other letter alphabetically
       (so ``HH`` before ``BH`` before ``EH``);
    4. the most samples (when sample counts are given, e.g. of a waveform store);
    5. the location code (alphabetically, ``""`` first).

    Within the chosen sensor a slot holds ``N``/``E`` before ``1``/``2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: The component slots, in the window store's order.
SLOTS = ("Z", "N", "E")
_LETTER = {"Z": "Z", "N": "N", "E": "E", "1": "N", "2": "E"}
_BAND_ORDER = "HBES"
_INSTRUMENT_FIRST, _INSTRUMENT_LAST = "HL", "N"


def component_slot(channel: str) -> str | None:
    """The Z/N/E slot of a channel code (``HHZ`` → ``Z``, ``HH1`` → ``N``, ``HH2`` → ``E``), else None.

    Parameters
    ----------
    channel : str
        SEED channel code (or a full id ``NET.STA.LOC.CHA``).

    Returns
    -------
    str or None
        ``"Z"``, ``"N"`` or ``"E"``; None for any other last letter.
    """
    code = channel.rsplit(".", 1)[-1]
    return _LETTER.get(code[-1:].upper()) if code else None


@dataclass
class Sensor:
    """The chosen sensor of one station.

    Attributes
    ----------
    station : str
        ``NET.STA``.
    sensor : str
        ``LOC.BI`` (location code, band and instrument letters), e.g. ``.HH`` or ``00.BH``.
    channels : dict of str to str
        Slot (Z/N/E) → channel id ``NET.STA.LOC.CHA``.
    orientation_unknown : bool
        A horizontal slot holds a ``1``/``2`` channel.
    unused : list of str
        Channel ids of the station's other sensors (not used).
    """

    station: str
    sensor: str
    channels: dict[str, str]
    orientation_unknown: bool = False
    unused: list[str] = field(default_factory=list)


def _rank(sensor: tuple[str, str], slots: dict, samples: int) -> tuple:
    loc, code = sensor
    band, inst = (code + "  ")[0], (code + "  ")[1]
    inst_rank = (0, _INSTRUMENT_FIRST.index(inst), "") if inst in _INSTRUMENT_FIRST else \
        (2, 0, "") if inst == _INSTRUMENT_LAST else (1, 0, inst)
    band_rank = (0, _BAND_ORDER.index(band), "") if band in _BAND_ORDER else (1, 0, band)
    return (-len(slots), inst_rank, band_rank, -samples, loc)


def station_sensors(ids: Iterable[str], samples: Mapping[str, int] | None = None) -> dict[str, Sensor]:
    """One sensor per station and its Z/N/E channels (the rule: :mod:`seisgrid.seismic.channels`).

    Parameters
    ----------
    ids : iterable of str
        Channel ids ``NET.STA.LOC.CHA``.
    samples : mapping of str to int, optional
        Samples per channel id (e.g. of a waveform store): ties between otherwise equal sensors go to
        the one with the most samples; channels with 0 samples are not used.

    Returns
    -------
    dict of str to Sensor
        ``NET.STA`` → :class:`Sensor`, for stations with at least one Z/N/E/1/2 channel.
    """
    by_sensor: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for cid in sorted(set(ids)):
        parts = cid.split(".")
        if len(parts) != 4:
            continue
        net, sta, loc, cha = parts
        slot = component_slot(cha)
        n = None if samples is None else int(samples.get(cid, 0))
        if slot is None or n == 0:
            continue
        key = (f"{net}.{sta}", loc, cha[:-1])
        by_sensor.setdefault(key, {}).setdefault(slot, []).append(cid)
        counts[key] = counts.get(key, 0) + (n or 0)
    out: dict[str, Sensor] = {}
    for station in sorted({k[0] for k in by_sensor}):
        keys = [k for k in by_sensor if k[0] == station]
        best = min(keys, key=lambda k: _rank((k[1], k[2]), by_sensor[k], counts[k]))
        chosen: dict[str, str] = {}
        unknown = False
        for slot, cids in by_sensor[best].items():
            named = [c for c in cids if c[-1].upper() in "ZNE"]  # N/E before 1/2
            chosen[slot] = (named or cids)[0]
            unknown |= not named
        unused = sorted(c for k in keys for cs in by_sensor[k].values() for c in cs if c not in chosen.values())
        out[station] = Sensor(station, f"{best[1]}.{best[2]}", {s: chosen[s] for s in SLOTS if s in chosen},
                              unknown, unused)
    return out
