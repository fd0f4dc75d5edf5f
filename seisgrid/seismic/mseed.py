"""A byte-exact index of the miniSEED 2 records in a buffer, and decoding of chosen records with ObsPy.

Why this is hand-written: ObsPy (libmseed) decodes a buffer until the first byte range it cannot
parse and then either skips ahead in 128-byte steps or stops, returning what it had without saying
how many bytes it lost; one corrupt data payload raises for the whole buffer. To account for every
byte of every file we locate each record ourselves (the 48-byte fixed header and Blockette 1000 are
simple, fixed binary structures: SEED manual v2.4, ch. 8), then hand ObsPy only well-formed records,
bisecting when a payload fails to decode. Decoding itself is always ObsPy's.

Channel ids are ObsPy's ``NET.STA.LOC.CHA`` (each code as ObsPy decodes it; control characters such
as NUL padding dropped, path separators, dots and blanks replaced by ``_``) with one exception, the
**safe-name rule** (:func:`channel_id`): when the network *and* the station code are both empty — ObsPy
reads such records as id ``...`` — both are stored as ``--`` (id ``--.--.LOC.CHA``), because the
station's Zarr group ``NET.STA`` would otherwise be named ``.``, which is not a valid Zarr path. ``--``
cannot clash with a real code (a dash is not a SEED code character; FDSN services use it for an
empty code). Readers map it back: traces of such a channel carry empty codes again.
"""

from __future__ import annotations

import bisect
import io
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import obspy
from obspy.io.mseed.headers import ENCODINGS

if TYPE_CHECKING:
    import numpy.typing as npt
    from obspy.core.trace import Stats

FIXED_HEADER = 48
VALID_QUALITY = np.frombuffer(b"DRQM", dtype=np.uint8)
# Blockette 1000 encoding code → sample dtype as ObsPy returns it (SEED manual, appendix).
ENCODING_DTYPES = {code: str(np.dtype(spec[2])) for code, spec in ENCODINGS.items() if code != 0}
ASCII_ENCODING = 0
# ObsPy/libmseed decode records without Blockette 1000 (SEED < 2.4) as Steim-1; we assume the same.
FALLBACK_ENCODING = 10
#: Bytes per sample in a record of each fixed-width encoding (SEED manual, appendix). libmseed reads
#: ``nsamples`` × this many bytes from the record's data offset without checking that they are inside
#: the record, so a header with a corrupt sample count or data offset must never reach it.
SAMPLE_BYTES = {0: 1, 1: 2, 3: 4, 4: 4, 5: 8, 12: 3, 13: 2, 14: 2, 16: 2, 30: 2, 32: 2}
STEIM_SAMPLES_PER_WORD = {10: 4, 11: 7}  # the most samples a 4-byte Steim-1/Steim-2 word holds
CONTROL_TYPES = np.frombuffer(b"VAST", dtype=np.uint8)  # SEED volume/abbreviation/station/time-span headers
NS = 1_000_000_000
EMPTY_CODE = "--"  # stands for empty network and station codes when both are empty (safe-name rule)


@dataclass
class RecordIndex:
    """The records found in a buffer, as parallel NumPy arrays, and the byte spans that are not records.

    Times are integer nanoseconds since 1970 (header start time with the time correction and the
    Blockette 1001 microseconds applied, as libmseed does).
    """

    offset: np.ndarray
    length: np.ndarray
    ids: list  # "NET.STA.LOC.CHA" of every record
    start_ns: np.ndarray
    nsamples: np.ndarray
    sampling_rate: np.ndarray
    encoding: np.ndarray
    bad_spans: list = field(default_factory=list)  # (offset, nbytes, reason, kind: garbage/truncated/corrupt/control)
    size: int = 0
    notes: list = field(default_factory=list)  # reasons to warn about records that are kept (odd headers)

    def __len__(self) -> int:
        return len(self.offset)

    @property
    def end_ns(self) -> np.ndarray:
        """Time just after each record's last sample (start of the next sample)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            duration = np.where(self.sampling_rate > 0, self.nsamples / self.sampling_rate, 0.0)
        return self.start_ns + np.round(duration * NS).astype(np.int64)

    @property
    def bad_bytes(self) -> int:
        """Number of bytes of the buffer that are not inside a well-formed record (sum of ``bad_spans``)."""
        return int(sum(span[1] for span in self.bad_spans))

    def select(self, mask: npt.ArrayLike) -> RecordIndex:
        """The records where ``mask`` is true, in order.

        Parameters
        ----------
        mask : array-like of bool
            One entry per record.

        Returns
        -------
        RecordIndex
            The chosen records, with no ``bad_spans`` and the same ``size``.
        """
        mask = np.asarray(mask)
        return RecordIndex(
            self.offset[mask], self.length[mask], [i for i, m in zip(self.ids, mask, strict=True) if m],
            self.start_ns[mask], self.nsamples[mask], self.sampling_rate[mask], self.encoding[mask],
            [], self.size,
        )


def _u16(buf, pos, little):
    lo, hi = (buf[pos], buf[pos + 1]) if little else (buf[pos + 1], buf[pos])
    return lo.astype(np.int64) | (hi.astype(np.int64) << 8)


def _i16(buf, pos, little):
    v = _u16(buf, pos, little)
    return np.where(v >= 32768, v - 65536, v)


def _i32(buf, pos, little):
    b = [buf[pos + k].astype(np.int64) for k in range(4)]
    if not little:
        b = b[::-1]
    v = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)
    return np.where(v >= 2**31, v - 2**32, v)


def _candidate_headers(buf: np.ndarray, offsets: np.ndarray):
    """Which offsets hold a plausible fixed header; with its byte order, record length and fields."""
    n = len(buf)
    offsets = offsets[offsets + 64 <= n]
    if len(offsets) == 0:
        return offsets, {}
    o = offsets
    seq = np.stack([buf[o + k] for k in range(6)])
    seq_ok = np.all(((seq >= 48) & (seq <= 57)) | (seq == 32) | (seq == 0), axis=0)
    ok = seq_ok & np.isin(buf[o + 6], VALID_QUALITY) & ((buf[o + 7] == 32) | (buf[o + 7] == 0))
    year_be = _u16(buf, o + 20, little=False)
    little = ~((year_be >= 1900) & (year_be <= 2100))
    year = np.where(little, _u16(buf, o + 20, True), year_be)
    day = np.where(little, _u16(buf, o + 22, True), _u16(buf, o + 22, False))
    hour, minute, second = buf[o + 24], buf[o + 25], buf[o + 26]
    ok &= (year >= 1900) & (year <= 2100) & (day >= 1) & (day <= 366)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 60)

    def field16(pos, signed=False):
        fn = _i16 if signed else _u16
        return np.where(little, fn(buf, o + pos, True), fn(buf, o + pos, False))

    fields = {
        "little": little, "year": year, "day": day, "hour": hour, "minute": minute, "second": second,
        "fract": field16(28), "nsamples": field16(30), "factor": field16(32, True),
        "multiplier": field16(34, True), "activity": buf[o + 36],
        "time_correction": np.where(little, _i32(buf, o + 40, True), _i32(buf, o + 40, False)),
        "data_offset": field16(44), "first_blockette": field16(46),
    }
    # Walk up to four blockettes looking for 1000 (record length, encoding) and 1001 (microseconds).
    reclen = np.zeros(len(o), dtype=np.int64)
    encoding = np.full(len(o), -1, dtype=np.int64)
    word_order = np.full(len(o), -1, dtype=np.int64)
    micro = np.zeros(len(o), dtype=np.int64)
    pos = fields["first_blockette"].copy()
    for _ in range(4):
        inside = (pos >= FIXED_HEADER) & (pos + 8 <= 64 * 4) & (o + pos + 8 <= n)
        p = np.where(inside, o + pos, 0)
        btype = np.where(little, _u16(buf, p, True), _u16(buf, p, False))
        nxt = np.where(little, _u16(buf, p + 2, True), _u16(buf, p + 2, False))
        is1000 = inside & (btype == 1000)
        encoding = np.where(is1000, buf[p + 4], encoding)
        word_order = np.where(is1000, buf[p + 5], word_order)
        reclen = np.where(is1000 & (buf[p + 6] >= 7) & (buf[p + 6] <= 20),
                          np.left_shift(1, buf[p + 6].astype(np.int64)), reclen)
        is1001 = inside & (btype == 1001)
        micro = np.where(is1001, buf[p + 5].astype(np.int8).astype(np.int64), micro)
        pos = np.where(inside & (nxt > pos), nxt, 0)
    fields.update(reclen=reclen, encoding=encoding, word_order=word_order, micro=micro)
    return o[ok], {k: v[ok] for k, v in fields.items()}


def _start_ns(f) -> np.ndarray:
    base = _year_starts(f["year"].astype("int64"))
    t = base + (f["day"] - 1) * 86400 * NS + f["hour"].astype(np.int64) * 3600 * NS
    t += f["minute"].astype(np.int64) * 60 * NS + f["second"].astype(np.int64) * NS
    t += f["fract"] * 100_000 + f["micro"] * 1000
    applied = (f["activity"] & 0x02) != 0
    t += np.where(applied, 0, f["time_correction"] * 100_000)
    return t


def _year_starts(year: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(year, return_inverse=True)
    starts = np.array([np.datetime64(f"{y:04d}-01-01", "ns").astype(np.int64) for y in uniq])
    return starts[inverse]


def _rates(factor, multiplier) -> np.ndarray:
    f = factor.astype(float)
    m = multiplier.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.select(
            [(f > 0) & (m > 0), (f > 0) & (m < 0), (f < 0) & (m > 0), (f < 0) & (m < 0)],
            [f * m, -f / m, -m / f, 1.0 / (f * m)], default=0.0,
        )
    return rate


def _code(raw: bytes) -> str:
    text = "".join(c for c in raw.decode("ascii", "ignore") if 32 <= ord(c) < 127).strip()
    return "".join("_" if c in "/\\. " else c for c in text)


def channel_id(net: str, sta: str, loc: str, cha: str) -> str:
    """The store id of a channel from its codes: ``NET.STA.LOC.CHA``.

    Network and station are stored as ``--`` when both are empty (the safe-name rule of the module
    docstring).
    """
    if not net and not sta:
        net = sta = EMPTY_CODE
    return f"{net}.{sta}.{loc}.{cha}"


def channel_codes(cid: str) -> tuple[str, str, str, str]:
    """The (network, station, location, channel) codes of a store id, as the data had them.

    The inverse of :func:`channel_id`: ``--.--`` gives empty network and station codes.
    """
    net, sta, loc, cha = cid.split(".")
    if net == sta == EMPTY_CODE:
        net = sta = ""
    return net, sta, loc, cha


def store_id(obspy_id: str) -> str:
    """The store id of a channel that ObsPy names ``obspy_id`` (``...`` → ``--.--..``; others unchanged)."""
    parts = str(obspy_id).split(".")
    return channel_id(*parts) if len(parts) == 4 else str(obspy_id)


def trace_id(stats: Stats) -> str:
    """The store id of an ObsPy trace read from any format: each code cleaned as for miniSEED records."""
    return channel_id(*(_code(str(stats.get(k, "") or "").encode("utf-8", "ignore"))
                        for k in ("network", "station", "location", "channel")))


def starts_like_seed(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) begins like a SEED record.

    That is a 6-character sequence number (digits, blanks or NULs), then a data-quality (D, R, Q, M) or
    control-header (V, A, S, T) type and a blank or NUL. Text, JSON, images, ... never do.
    """
    if len(head) < 8:
        return False
    seq_ok = all(48 <= b <= 57 or b in (32, 0) for b in head[:6])
    return seq_ok and (head[6] in VALID_QUALITY.tobytes() or head[6] in CONTROL_TYPES.tobytes()) and head[7] in (32, 0)


def _ids(buf, offsets) -> list[str]:
    # A file holds few distinct channels: decode each distinct 12-byte code block once.
    blocks = buf[offsets[:, None] + np.arange(8, 20)].view("S12").ravel()
    unique, inverse = np.unique(blocks, return_inverse=True)
    names = []
    for block in unique.tolist():
        h = block.ljust(12, b" ")
        # as ObsPy: each field decoded on its own, non-ASCII bytes dropped; control characters (NUL
        # padding) dropped too, and path separators replaced, because ids name Zarr groups and arrays
        sta, loc, cha, net = (_code(h[a:b]) for a, b in ((0, 5), (5, 7), (7, 10), (10, 12)))
        names.append(channel_id(net, sta, loc, cha))
    return [names[i] for i in inverse.ravel().tolist()]


def index_records(data: bytes | np.ndarray) -> RecordIndex:
    """Locate every miniSEED 2 record in ``data`` and every byte span that is not one.

    Parameters
    ----------
    data : bytes or uint8 array
        A whole miniSEED file (or any buffer).

    Returns
    -------
    RecordIndex
        Records in file order; ``bad_spans`` lists ``(offset, nbytes, reason, kind)`` for every byte
        not inside a well-formed record; kind is ``garbage``, ``truncated``, ``corrupt`` (a record whose
        header cannot describe its bytes: its samples would lie outside it, or its word order is invalid) or
        ``control`` (SEED volume/station control headers, i.e. metadata of a full SEED volume).
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    n = len(buf)
    if n < FIXED_HEADER + 16:
        bad = [(0, n, f"{n} bytes: too short for a miniSEED record", "garbage")] if n else []
        return _make_index(buf, np.zeros(0, np.int64), {}, bad, n)
    # Fast path: fixed record length throughout (the usual case) — check every header at once.
    first, f0 = _candidate_headers(buf, np.array([0]))
    if len(first) and f0["reclen"][0] > 0:
        reclen = int(f0["reclen"][0])
        grid = np.arange(0, n - n % reclen, reclen)
        found, fields = _candidate_headers(buf, grid)
        if len(found) == len(grid) and n % reclen == 0 and np.all(fields["reclen"] == reclen):
            return _make_index(buf, *_drop_corrupt(found, fields, []), n)
    # Slow path: walk the buffer, resynchronising on the next plausible header after bad bytes.
    cand = np.arange(0, max(n - 63, 0))
    sync = (buf[cand + 6, None] == VALID_QUALITY).any(axis=1) if len(cand) else np.zeros(0, bool)
    cand, fields_all = _candidate_headers(buf, cand[sync])
    by_offset = {int(o): i for i, o in enumerate(cand)}
    keep, bad, pos = [], [], 0
    cand_list = cand.tolist()
    while pos < n:
        i = by_offset.get(pos)
        j = bisect.bisect_right(cand_list, pos)
        nxt = cand_list[j] if j < len(cand_list) else n  # the next record header (or the end)
        if i is not None:
            length = int(fields_all["reclen"][i]) or _length_without_b1000(pos, cand_list, n)
            if length and pos + length <= nxt:  # whole, and no other record header inside it
                fields_all["reclen"][i] = length
                keep.append(i)
                pos += length
                continue
            if length and nxt == n:
                bad.append((pos, n - pos, f"truncated record: {n - pos} of {length} bytes present", "truncated"))
                break
            what = (f"a record header that says {length} bytes, but the next record header follows"
                    if length else "a record header without Blockette 1000 and of unknown length")
            bad.append((pos, nxt - pos, f"{nxt - pos} bytes: {what}", "garbage"))
            pos = nxt
            continue
        if pos + 7 <= n and buf[pos + 6] in CONTROL_TYPES:
            bad.append((pos, nxt - pos, f"{nxt - pos} bytes of SEED control headers (metadata)", "control"))
        else:
            bad.append((pos, nxt - pos, f"{nxt - pos} bytes that are not miniSEED records", "garbage"))
        pos = nxt
    idx = np.array(keep, dtype=np.int64)
    return _make_index(buf, *_drop_corrupt(cand[idx], {k: v[idx] for k, v in fields_all.items()}, bad), n)


def _drop_corrupt(offsets: np.ndarray, f: dict, bad: list) -> tuple[np.ndarray, dict, list]:
    """Move records whose header cannot describe their bytes to the bad spans (kind ``corrupt``).

    A data offset outside the record; more samples than the bytes after the data offset can hold (for
    fixed-width encodings libmseed would read past the record; for Steim, a sample count that no payload can
    hold); a Blockette 1000 word order other than 0 or 1 in a record that is not Steim-compressed (libmseed
    reads such samples as big-endian, and nothing tells whether they are: a Steim record's integrity check
    does, see :func:`read_mseed_bytes`, so those are kept with a note, see :func:`_make_index`).
    """
    if len(offsets) == 0:
        return offsets, f, bad
    reclen, start, nsamples = f["reclen"], f["data_offset"], f["nsamples"]
    encoding = np.where(f["encoding"] < 0, FALLBACK_ENCODING, f["encoding"])
    width, per_word = np.zeros(256, np.int64), np.zeros(256, np.int64)
    width[list(SAMPLE_BYTES)] = list(SAMPLE_BYTES.values())
    per_word[list(STEIM_SAMPLES_PER_WORD)] = list(STEIM_SAMPLES_PER_WORD.values())
    space = np.maximum(reclen - start, 0)
    most = np.where(width[encoding] > 0, space // np.maximum(width[encoding], 1),
                    np.where(per_word[encoding] > 0, space // 4 * per_word[encoding], np.iinfo(np.int64).max))
    order = f["word_order"]
    wrong_order = (order > 1) & (per_word[encoding] == 0)
    outside = (nsamples > 0) & ((start < FIXED_HEADER) | (start > reclen))
    overflow = ~outside & (nsamples > most)
    corrupt = wrong_order | outside | overflow
    if not corrupt.any():
        return offsets, f, bad
    for k in np.flatnonzero(corrupt).tolist():
        o, n = int(offsets[k]), int(reclen[k])
        if wrong_order[k]:
            why = f"word order {int(order[k])} in Blockette 1000 (0 or 1): the byte order of its samples is unknown"
        elif outside[k]:
            why = f"data offset {int(start[k])} outside the record"
        else:
            why = f"{int(nsamples[k])} samples do not fit in the {n - int(start[k])} bytes after the data offset"
        bad.append((o, n, f"corrupt record header at byte {o} ({n} bytes): {why}", "corrupt"))
    keep = ~corrupt
    return offsets[keep], {k: v[keep] for k, v in f.items()}, sorted(bad)


def _length_without_b1000(pos: int, candidates: list, n: int) -> int:
    """Record length of a header without Blockette 1000; 0 when it cannot be known.

    The distance to the next header (or the end of the buffer) when that is a power of two, as libmseed
    infers it.
    """
    j = bisect.bisect_right(candidates, pos)
    length = (candidates[j] if j < len(candidates) else n) - pos
    return length if length >= 128 and length & (length - 1) == 0 else 0


def _make_index(buf, offsets, f, bad, size) -> RecordIndex:
    if len(offsets) == 0:
        return RecordIndex(np.zeros(0, np.int64), np.zeros(0, np.int64), [], np.zeros(0, np.int64),
                           np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), list(bad), size)
    notes = []
    odd = np.flatnonzero(f["word_order"] > 1)  # only Steim records are left with one (_drop_corrupt)
    if len(odd):
        notes.append(f"{len(odd)} Steim records (the first at byte {int(offsets[odd[0]])}) have word order "
                     f"{int(f['word_order'][odd[0]])} in Blockette 1000 (0 or 1): read as big-endian, as libmseed "
                     "does (in the wrong byte order, a Steim record fails to decode and is reported)")
    return RecordIndex(
        offset=offsets.astype(np.int64), length=f["reclen"].astype(np.int64), ids=_ids(buf, offsets),
        start_ns=_start_ns(f) if len(offsets) else np.zeros(0, np.int64),
        nsamples=f["nsamples"].astype(np.int64), sampling_rate=_rates(f["factor"], f["multiplier"]),
        encoding=np.where(f["encoding"] < 0, FALLBACK_ENCODING, f["encoding"]).astype(np.int64),
        bad_spans=list(bad), size=size, notes=notes,
    )


def read_mseed_bytes(blob: bytes) -> obspy.Stream:
    """ObsPy's decoding of a buffer of whole miniSEED records.

    Warnings are silenced (callers check sample counts), except libmseed's failed data integrity check
    (a Steim record whose last decoded sample differs from the one its first frame records: its samples
    are wrong), which raises ``ValueError`` with libmseed's message. Record codes are not used (the
    callers know the channel of each record).
    """
    stream, messages = _read_noting(blob)
    if any(m.startswith("Failed to decode") for m in messages):
        # ObsPy drops libmseed's messages about a record whose codes are not UTF-8 (its callback cannot decode
        # them): read such records again with those bytes blanked, so that their messages are seen
        stream, messages = _read_noting(_ascii_codes(blob))
    for message in messages:
        if "integrity check" in message:
            raise ValueError(message)
    return stream


def _read_noting(blob: bytes) -> tuple[obspy.Stream, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = obspy.read(io.BytesIO(blob), format="MSEED")
    return stream, [str(w.message).strip() for w in caught]


def _ascii_codes(blob: bytes) -> bytes:
    """``blob`` with the non-ASCII bytes of its records' codes replaced by blanks."""
    buf = np.frombuffer(blob, dtype=np.uint8).copy()
    codes = index_records(buf).offset[:, None] + np.arange(8, 20)
    buf[codes[buf[codes] >= 128]] = ord(" ")
    return buf.tobytes()


def _gather(view: np.ndarray, spans) -> bytes:
    """Concatenate byte spans, copying runs of adjacent spans in one piece."""
    pieces, run_start, run_end = [], None, None
    for o, n in spans:
        if run_end == o:
            run_end = o + n
            continue
        if run_start is not None:
            pieces.append(view[run_start:run_end].tobytes())
        run_start, run_end = o, o + n
    if run_start is not None:
        pieces.append(view[run_start:run_end].tobytes())
    return b"".join(pieces)


def decode_records(
    buf: bytes | np.ndarray, records: RecordIndex
) -> tuple[list[obspy.Trace], list[tuple[int, int, str]]]:
    """Decode the given records of ``buf`` with ObsPy, isolating records whose payload is corrupt.

    Returns
    -------
    traces : list of obspy.Trace
    failed : list of (offset, nbytes, reason)
        Records ObsPy could not decode, or that decoded to fewer samples than their header says.
    """
    view = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    traces, failed = [], []

    def attempt(lo, hi):  # records lo..hi-1
        blob = _gather(view, zip(records.offset[lo:hi].tolist(), records.length[lo:hi].tolist(), strict=True))
        expected = int(records.nsamples[lo:hi].sum())
        try:
            stream = read_mseed_bytes(blob)
            decoded = sum(tr.stats.npts for tr in stream)
            if decoded == expected:
                traces.extend(stream)
                return
            reason = f"decoded {decoded} of {expected} samples"
        except Exception as exc:  # libmseed reports corrupt payloads as InternalMSEEDError, others vary
            reason = str(exc).strip().splitlines()[-1][:200]
        if hi - lo == 1:
            o, n = int(records.offset[lo]), int(records.length[lo])
            failed.append((o, n, f"corrupt record at byte {o}: {reason}"))
            return
        mid = (lo + hi) // 2
        attempt(lo, mid)
        attempt(mid, hi)

    if len(records):
        attempt(0, len(records))
    return traces, failed
