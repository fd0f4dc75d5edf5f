"""Fuzzed miniSEED input to the ingest path (issue 14, "Fuzzed input").

Valid miniSEED files — written here with ObsPy (Steim-1, Steim-2, INT32, FLOAT32; one crosses midnight) and a
few of ObsPy's own example files (big and little endian, INT16, FLOAT64, 4096-byte records) — are mutated with
seeded random numbers: byte flips anywhere, byte edits aimed at the fixed header and Blockette 1000 fields,
truncations, duplicated and shuffled records, garbage before, inside and after the records, a record with a
huge sample count. Every case puts the mutated file next to a GOOD file of another station and runs
:func:`seisgrid.seismic.ingest.ingest` in this process, three ways: into a new store (A), into a store that
already holds the good file (B: the run after new files arrived), and alone (C). The properties:

* **no crash**: ingest returns its summary (or, for the mutated file alone, raises
  :class:`~seisgrid.seismic.ingest.NoWaveformDataError` and leaves no store behind); no task fails and no
  reason shows an exception that the scan or write step caught as "cannot read"/"cannot decode";
* **no hang**: each case (all three runs) ends within :data:`CASE_SECONDS` (a SIGALRM timer);
* **reported or ingested, never silently wrong**: the mutated file is in ``files_failed``/``files_warned``
  with a reason, or its data are in the store. When it is *not* reported, ObsPy reads it without an error or
  a warning (but those of :data:`TOLERATED`), the store holds exactly what ObsPy decodes from it (every
  sample at its place under the first-wins overlap rule), and every record of the base file that the
  mutation left whole is in the store. When it is reported, the samples that the store and ObsPy both have
  are equal;
* **good data unharmed**: the good channel holds exactly the samples of a clean ingest of the good file alone;
  in B its shard objects (and its array metadata) are byte-identical before and after;
* :func:`seisgrid.seismic.verify.verify` passes on the store after every run.

The cases are deterministic (``numpy.random.default_rng([SEED, kind, case])``): 32 by default, 304 under
``-m reliability``. The counts per kind are printed at the end with ``-s`` (a Markdown table: cases tried,
mutated file reported, its data ingested, no data when alone, crashes, wrong results, records left whole by
the mutation and how many of those the store lacks — allowed only when the file is reported)::

    bash bin/test tests/test_fuzz_mseed.py -s                    # default run
    bash bin/test -m reliability tests/test_fuzz_mseed.py -s     # the long run

``FOUND`` at the end keeps each problem the fuzzing found as a fixed case (each failed before its fix).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import math
import pathlib
import signal
import time
import warnings

import numpy as np
import obspy
import pytest
import zarr
from archives import trace
from helpers import write_reliability_figures

from seisgrid.seismic.ingest import NoWaveformDataError, ingest
from seisgrid.seismic.layout import sample_position, station_of
from seisgrid.seismic.mseed import index_records, trace_id
from seisgrid.seismic.store import open_archive
from seisgrid.seismic.verify import verify

SEED = 14
CASE_SECONDS = 20  # the bound on one case (its three ingest runs, checks included)
GOOD_ID = "YY.GOOD.10.BHN"
DEFAULT, RELIABILITY = "default", "reliability"
CASES_PER_KIND = {DEFAULT: 2, RELIABILITY: 19}
RUNS = [pytest.param(DEFAULT, id=DEFAULT),
        pytest.param(RELIABILITY, id=RELIABILITY, marks=pytest.mark.reliability)]
# ObsPy's libmseed log callback cannot decode a message that quotes a non-UTF-8 record code: Python reports
# it as an "exception ignored" (seisgrid reads such records again, see seisgrid.seismic.mseed.read_mseed_bytes)
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
#: ObsPy's example files used as bases (besides the files written here).
OBSPY_BASES = ("int32_Steim1_bigEndian.mseed", "int16_INT16_littleEndian.mseed", "float64_Float64_bigEndian.mseed",
               "BW.BGLD.__.EHE.D.2008.001.first_10_records", "test.mseed")
#: Outcome counts per (run, kind): tried, reported, ingested, alone_no_data, crashes, wrong (printed with -s).
COUNTS: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
SLOWEST: dict[tuple[str, str], float] = collections.defaultdict(float)  # seconds of the slowest case


COLUMNS = ("tried", "reported", "ingested", "alone_no_data", "crashes", "wrong", "intact_records",
           "intact_records_lost")


@pytest.fixture(scope="module", autouse=True)
def _print_counts():
    """Print the outcome counts per kind at the end (``-s``), as a Markdown table per run."""
    yield
    for run in (DEFAULT, RELIABILITY):
        kinds = [kind for kind in KINDS if (run, kind) in COUNTS]
        if not kinds:
            continue
        figures = {kind: {**dict(COUNTS[(run, kind)]), "slowest_seconds": round(SLOWEST[(run, kind)], 2)}
                   for kind in kinds}
        write_reliability_figures(f"tests/test_fuzz_mseed.py [{run}]", figures)
        total: collections.Counter = collections.Counter()
        print(f"\n\nminiSEED fuzz cases, {run} run (mutated file reported / its data ingested / no data when "
              "alone / crashes / wrong results; base records left whole, and of those not in the store):\n")
        print("| kind | " + " | ".join(COLUMNS) + " | slowest case (s) |")
        print("|---" * (len(COLUMNS) + 2) + "|")
        for kind in kinds + ["total"]:
            counts = total if kind == "total" else COUNTS[(run, kind)]
            slowest = max(SLOWEST[(run, k)] for k in kinds) if kind == "total" else SLOWEST[(run, kind)]
            if kind != "total":
                total.update(counts)
            print(f"| {kind} | " + " | ".join(str(counts.get(c, 0)) for c in COLUMNS) + f" | {slowest:.1f} |")


# ------------------------------------------------------------------------------------------ base files
def _write(tr: obspy.Trace, encoding: str, reclen: int) -> bytes:
    buf = io.BytesIO()
    tr.write(buf, format="MSEED", encoding=encoding, reclen=reclen)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bases(obspy_mseed_examples) -> dict[str, bytes]:
    """Valid miniSEED files to mutate, by name: written here, and ObsPy's examples that are installed."""
    float_trace = trace(npts=2000, rate=50.0, seed=3, id="XX.FLT.00.HNZ")
    float_trace.data = (float_trace.data / 7.0).astype("float32")
    out = {
        "steim2": _write(trace(npts=6000, id="XX.ABC.00.HHZ"), "STEIM2", 512),
        # 100 s at 40 Hz from 23:59:00: records on both sides of midnight
        "steim1-midnight": _write(trace(npts=4000, rate=40.0, start="2020-01-01T23:59:00", seed=1,
                                        id="XX.ABC.00.HHE"), "STEIM1", 512),
        "int32": _write(trace(npts=1000, rate=20.0, seed=2, id="XX.INT..BHZ"), "INT32", 256),
        "float32": _write(float_trace, "FLOAT32", 1024),
    }
    by_name = {p.name: p for p in obspy_mseed_examples}
    for name in OBSPY_BASES:
        if name in by_name:
            out[name] = by_name[name].read_bytes()
    return out


@pytest.fixture(scope="module")
def good_file() -> bytes:
    return _write(trace(npts=6000, seed=5, id=GOOD_ID), "STEIM2", 512)


@pytest.fixture(scope="module")
def good_reference(good_file, tmp_path_factory) -> list[tuple[int, np.ndarray]]:
    """(start ns, samples) of each trace of the good channel after a clean ingest of the good file alone."""
    root = tmp_path_factory.mktemp("good")
    (root / "src").mkdir()
    (root / "src" / "good.mseed").write_bytes(good_file)
    ingest(str(root / "src"), str(root / "store.zarr"), progress=False)
    return _channel_traces(root / "store.zarr", GOOD_ID)


def _channel_traces(store, cid: str) -> list[tuple[int, np.ndarray]]:
    return [(tr.stats.starttime.ns, tr.data.copy()) for tr in open_archive(str(store)).stream(cid)]


# ---------------------------------------------------------------------------------------------- records
class Records:
    """The records of a valid base file: offsets, lengths, byte order and Blockette 1000 position."""

    def __init__(self, data: bytes):
        index = index_records(data)
        assert len(index) and not index.bad_spans, "a base file must be clean miniSEED"
        self.offset = index.offset.tolist()
        self.length = index.length.tolist()
        self.little, self.b1000 = [], []
        for o in self.offset:
            little = not 1900 <= int.from_bytes(data[o + 20:o + 22], "big") <= 2100
            order = "little" if little else "big"
            self.little.append(little)
            pos, found = int.from_bytes(data[o + 46:o + 48], order), None
            for _ in range(4):
                if not 48 <= pos <= 248:
                    break
                if int.from_bytes(data[o + pos:o + pos + 2], order) == 1000:
                    found = o + pos
                    break
                pos = int.from_bytes(data[o + pos + 2:o + pos + 4], order)
            self.b1000.append(found)

    def __len__(self) -> int:
        return len(self.offset)

    def pieces(self, data: bytes) -> list[bytes]:
        return [data[o:o + n] for o, n in zip(self.offset, self.length, strict=True)]


def _edit_value(rng) -> int:
    """A new byte for a header edit: a flip of some bits, or an extreme value."""
    mode = rng.integers(4)
    return int(rng.integers(1, 256)) if mode == 0 else int(rng.choice([0x00, 0xFF, 0x7F, 0x80])) if mode == 1 \
        else -1  # -1: xor with a random non-zero byte (modes 2 and 3)


def _edit(buf: bytearray, pos: int, rng) -> None:
    value = _edit_value(rng)
    buf[pos] = buf[pos] ^ int(rng.integers(1, 256)) if value < 0 else value


def _header_edit(first: int, last: int, records_per_case: int = 3):
    """A mutation that edits 1-3 bytes of fixed-header bytes [first, last] in 1-``records_per_case`` records."""
    def mutate(rng, data: bytes, rec: Records) -> bytes:
        buf = bytearray(data)
        for r in rng.choice(len(rec), size=min(len(rec), int(rng.integers(1, records_per_case + 1))), replace=False):
            for _ in range(int(rng.integers(1, 4))):
                _edit(buf, rec.offset[r] + int(rng.integers(first, last + 1)), rng)
        return bytes(buf)
    return mutate


def _b1000_edit(fields: tuple[int, ...]):
    """A mutation that edits Blockette 1000 bytes (4 encoding, 5 word order, 6 record length exponent)."""
    def mutate(rng, data: bytes, rec: Records) -> bytes:
        buf = bytearray(data)
        for r in rng.choice(len(rec), size=min(len(rec), int(rng.integers(1, 3))), replace=False):
            if rec.b1000[r] is None:
                continue
            field = int(rng.choice(fields))
            if field == 6 and rng.random() < 0.5:  # another plausible length: 2^7 ... 2^16
                buf[rec.b1000[r] + 6] = int(rng.integers(7, 17))
            else:
                _edit(buf, rec.b1000[r] + field, rng)
        return bytes(buf)
    return mutate


def flip_one(rng, data: bytes, rec: Records) -> bytes:
    buf = bytearray(data)
    buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
    return bytes(buf)


def flip_many(rng, data: bytes, rec: Records) -> bytes:
    buf = bytearray(data)
    for pos in rng.integers(len(buf), size=int(rng.integers(2, 17))):
        buf[int(pos)] ^= int(rng.integers(1, 256))
    return bytes(buf)


def huge_nsamples(rng, data: bytes, rec: Records) -> bytes:
    buf = bytearray(data)
    r = int(rng.integers(len(rec)))
    n = int(rng.choice([0xFFFF, 0x8000, 0x7FFF, int(rng.integers(10_000, 0x10000))]))
    buf[rec.offset[r] + 30:rec.offset[r] + 32] = n.to_bytes(2, "little" if rec.little[r] else "big")
    return bytes(buf)


def truncate(rng, data: bytes, rec: Records) -> bytes:
    mode = int(rng.integers(5))
    if mode == 0:
        return b""
    if mode == 1:  # shorter than a fixed header plus a blockette
        return data[:int(rng.integers(1, 64))]
    if mode == 2:  # inside a record, past its header
        r = int(rng.integers(len(rec)))
        return data[:rec.offset[r] + int(rng.integers(64, rec.length[r]))]
    if mode == 3:  # one byte short
        return data[:-1]
    return data[:int(rng.integers(1, len(data)))]


def duplicate(rng, data: bytes, rec: Records) -> bytes:
    pieces = rec.pieces(data)
    for _ in range(int(rng.integers(1, 4))):
        piece = pieces[int(rng.integers(len(pieces)))]
        pieces.insert(int(rng.integers(len(pieces) + 1)), piece)
    return b"".join(pieces)


def shuffle(rng, data: bytes, rec: Records) -> bytes:
    pieces = rec.pieces(data)
    if len(pieces) == 1:  # one record: shuffle it with a copy of itself and a copy of its first half
        pieces += [pieces[0], pieces[0][:len(pieces[0]) // 2]]
    return b"".join(pieces[i] for i in rng.permutation(len(pieces)))


def _garbage(rng, data: bytes, rec: Records) -> bytes:
    """Random bytes, zeros, text, or the start of a real record (a header that promises more bytes)."""
    mode = int(rng.integers(4))
    n = int(rng.integers(1, 3000))
    if mode == 0:
        return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
    if mode == 1:
        return bytes(n)
    if mode == 2:
        return (b"fuzzed text, not miniSEED\n" * (n // 26 + 1))[:n]
    r = int(rng.integers(len(rec)))
    return data[rec.offset[r]:rec.offset[r] + int(rng.integers(8, rec.length[r]))]


def garbage_append(rng, data: bytes, rec: Records) -> bytes:
    return data + _garbage(rng, data, rec)


def garbage_prepend(rng, data: bytes, rec: Records) -> bytes:
    return _garbage(rng, data, rec) + data


def garbage_insert(rng, data: bytes, rec: Records) -> bytes:
    at = rec.offset[int(rng.integers(len(rec)))] if rng.random() < 0.5 else int(rng.integers(len(data)))
    return data[:at] + _garbage(rng, data, rec) + data[at:]


#: kind → mutation(rng, base bytes, base records) → mutated bytes. Header byte positions: SEED manual ch. 8.
KINDS = {
    "flip 1 byte": flip_one,
    "flip 2-16 bytes": flip_many,
    "header: start time": _header_edit(20, 29),
    "header: sample rate factor/multiplier": _header_edit(32, 35),
    "header: number of samples": _header_edit(30, 31),
    "header: data/blockette offsets": _header_edit(39, 47),
    "header: codes and quality": _header_edit(6, 19),
    "blockette 1000: record length/word order": _b1000_edit((5, 6)),
    "blockette 1000: encoding": _b1000_edit((4,)),
    "huge sample count": huge_nsamples,
    "truncated": truncate,
    "duplicated records": duplicate,
    "shuffled records": shuffle,
    "garbage appended": garbage_append,
    "garbage prepended": garbage_prepend,
    "garbage inserted": garbage_insert,
}


# -------------------------------------------------------------------------------------------- one case
class CaseTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise :class:`CaseTimeout` in this (main) thread after ``seconds``."""
    def on_alarm(signum, frame):
        raise CaseTimeout(f"case still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _shard_hashes(store: pathlib.Path, cid: str) -> dict[str, str]:
    folder = store / station_of(cid) / cid
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _internal_errors(result: dict) -> list[str]:
    """Exceptions that ingest caught and reported as a file's reason or a failed task (bugs, not bad input)."""
    errors = [f"task failed: {t}" for t in result["tasks_failed"]]
    for entry in result["files_failed"] + result["files_warned"]:
        if any(s in entry["reason"] for s in ("cannot read:", "cannot decode:", "could not be read:")):
            errors.append(f"{entry['path']}: {entry['reason'][:300]}")
    return errors


def _check_store(store: pathlib.Path, good_reference, problems: list[str], label: str) -> None:
    report = verify(str(store), progress=False)
    if not report["ok"]:
        problems.append(f"{label}: verify failed: {report['problem_counts']} {report['tasks_failed']}")
    if good_reference is not None:
        got = _channel_traces(store, GOOD_ID)
        if len(got) != len(good_reference) or any(
                a[0] != b[0] or not np.array_equal(a[1], b[1]) for a, b in zip(got, good_reference, strict=False)):
            problems.append(f"{label}: the good channel {GOOD_ID} differs from a clean ingest of the good file")


#: ObsPy warnings that need no report: the header field is odd, but it does not change what the samples are
#: and ObsPy, libmseed and seisgrid read it the same way (the samples and their times are compared).
#: A fractional second of 10000 or more is read as extra seconds (real files carry 10000: ObsPy's
#: microsecond_wrap.mseed); the count of blockettes in the fixed header is not used to find them.
TOLERATED = ("fractional second", "Number of blockettes in fixed header")


def _obspy_view(data: bytes) -> tuple[obspy.Stream | None, str]:
    """ObsPy's decoding of the mutated file, and its complaint (an error or warning), '' when none."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stream = obspy.read(io.BytesIO(data), format="MSEED")
        except Exception as exc:
            return None, f"ObsPy cannot read it: {type(exc).__name__}: {exc}"
    complaints = [str(w.message) for w in caught if not any(t in str(w.message) for t in TOLERATED)]
    return stream, "; ".join(complaints)[:300]


def _expected_samples(traces: list[obspy.Trace], origin_ns: int, rate: float):
    """Store index → value by the first-wins rule (earliest start, then file order); conflicting indices."""
    placed = sorted(((round(sample_position(tr.stats.starttime.ns - origin_ns, rate)), k, tr)
                     for k, tr in enumerate(traces)), key=lambda p: (p[0], p[1]))
    values: dict[int, object] = {}
    conflicts: set[int] = set()
    for start, _, tr in placed:
        for i, v in enumerate(tr.data.tolist()):
            if start + i in values:
                if values[start + i] != v and not (v != v and values[start + i] != values[start + i]):
                    conflicts.add(start + i)
            else:
                values[start + i] = v
    return values, conflicts


def _compare_with_obspy(store: pathlib.Path, data: bytes, problems: list[str], reported: bool) -> None:
    """The mutated file's samples in the store against ObsPy's decoding of it.

    Not reported: the store must hold exactly what ObsPy decodes, and ObsPy must not complain. Reported (and
    ObsPy does not complain): every sample that both hold at the same place must be the same, unless ObsPy's
    records disagree there.
    """
    stream, complaint = _obspy_view(data)
    if stream is None or complaint:  # then ObsPy's reading is no reference: it may decode garbage as samples
        if not reported:
            problems.append(f"not reported, but {complaint}")
        return
    prefix = "reported, but" if reported else "not reported, but"
    root = zarr.open_group(str(store), mode="r")
    by_id: dict[str, list[obspy.Trace]] = collections.defaultdict(list)
    for tr in stream:
        by_id[trace_id(tr.stats)].append(tr)
    for cid, traces in by_id.items():
        try:
            array = root[f"{station_of(cid)}/{cid}"]
        except KeyError:
            if not reported:
                problems.append(f"not reported, but channel {cid} is not in the store")
            continue
        attrs = dict(array.attrs)
        if reported and not math.isclose(attrs["sampling_rate"], traces[0].stats.sampling_rate, rel_tol=1e-9):
            continue  # ObsPy's first trace has another rate than the one the channel was given
        values, conflicts = _expected_samples(traces, attrs["origin_ns"], attrs["sampling_rate"])
        stored = {i for a, b in attrs["segments"] for i in range(a, b)}
        if not reported and stored != set(values):
            problems.append(f"not reported, but {cid} holds {len(stored)} samples where ObsPy decodes "
                            f"{len(values)} ({len(stored - set(values))} extra, {len(set(values) - stored)} missing)")
            continue
        differ = 0
        for lo, hi in attrs["segments"]:  # (a record with a far-off start time: years between segments)
            have = np.asarray(array[lo:hi])
            check = np.array([i in values and i not in conflicts for i in range(lo, hi)], dtype=bool)
            want = np.array([values.get(i, 0) for i in range(lo, hi)], dtype=have.dtype)
            if not np.array_equal(have[check], want[check], equal_nan=have.dtype.kind == "f"):
                differ += int(np.sum(have[check] != want[check]))
        if differ:
            problems.append(f"{prefix} {cid} holds other values than ObsPy decodes ({differ} samples)")


def _intact_records(store: pathlib.Path, base: bytes, data: bytes) -> tuple[int, int, int]:
    """Records of the base file still whole in the mutated file: (how many, how many the store lacks, samples
    of theirs that the store holds with another value).

    A record is kept when the store's segments cover every sample of it. Another value is right only where a
    mutated record overlaps it with other values and wins by the first-wins rule (``conflicting_samples``).
    """
    root = zarr.open_group(str(store), mode="r")
    intact = lost = differ = 0
    for piece in Records(base).pieces(base):
        if piece not in data:
            continue
        intact += 1
        tr = obspy.read(io.BytesIO(piece), format="MSEED")[0]
        cid = trace_id(tr.stats)
        try:
            array = root[f"{station_of(cid)}/{cid}"]
        except KeyError:
            lost += 1
            continue
        attrs = dict(array.attrs)
        if not math.isclose(attrs["sampling_rate"], tr.stats.sampling_rate, rel_tol=1e-9):
            lost += 1
            continue
        first = round(sample_position(tr.stats.starttime.ns - attrs["origin_ns"], attrs["sampling_rate"]))
        last = first + tr.stats.npts
        covered = 0
        for a, b in attrs["segments"]:
            lo, hi = max(a, first), min(b, last)
            if lo < hi:
                covered += hi - lo
                have, want = np.asarray(array[lo:hi]), tr.data[lo - first:hi - first]
                differ += int(np.sum((have != want) & ~(np.isnan(have) & np.isnan(want)) if have.dtype.kind == "f"
                                     else have != want))
        lost += covered < tr.stats.npts
    return intact, lost, differ


def run_case(workdir: pathlib.Path, data: bytes, good_file: bytes, good_reference, base: bytes | None = None,
             reasons: list[str] | None = None) -> tuple[collections.Counter, list[str]]:
    """Run the three ingests of one mutated file (module docstring); (outcome counts, property violations).

    With the ``base`` file it was made from, also count the base records left whole and those the store lacks.
    ``reasons`` (a list) receives the reasons given for the mutated file in run A.
    """
    outcome: collections.Counter = collections.Counter(tried=1)
    problems: list[str] = []
    src = workdir / "src"
    src.mkdir(parents=True)
    (src / "good.mseed").write_bytes(good_file)
    fuzz = src / "fuzz.mseed"
    mutated_ids = set(index_records(data).ids)
    reference = None if GOOD_ID in mutated_ids else good_reference  # a mutated code that became the good one's

    # B, first run: a store that holds the good file only
    store_b = workdir / "b.zarr"
    ingest(str(src), str(store_b), progress=False)
    before = _shard_hashes(store_b, GOOD_ID)
    fuzz.write_bytes(data)

    # A: the good and the mutated file into a new store
    store_a = workdir / "a.zarr"
    result = ingest(str(src), str(store_a), progress=False)
    problems += _internal_errors(result)
    reported = [e for e in result["files_failed"] + result["files_warned"] if e["path"].endswith("fuzz.mseed")]
    if any(e["path"].endswith("good.mseed") for e in result["files_failed"] + result["files_warned"]):
        problems.append("A: the good file was reported")
    if reasons is not None:
        reasons += [e["reason"] for e in reported]
    if any(not e["reason"].strip() for e in reported):
        problems.append("A: the mutated file was reported without a reason")
    ingested = [cid for cid in open_archive(str(store_a)).ids if cid != GOOD_ID]
    outcome["reported"] += bool(reported)
    outcome["ingested"] += bool(ingested)
    if not reported and not ingested:
        problems.append("A: the mutated file was neither reported nor ingested")
    if GOOD_ID not in mutated_ids:
        _compare_with_obspy(store_a, data, problems, bool(reported))
        if base is not None:
            intact, lost, differ = _intact_records(store_a, base, data)
            outcome["intact_records"] += intact
            outcome["intact_records_lost"] += lost
            if lost and not reported:
                problems.append(f"not reported, but {lost} of its {intact} intact records are not in the store")
            if differ and not result["conflicting_samples"]:
                problems.append(f"{differ} samples of records the mutation left whole are stored with other values")
    _check_store(store_a, reference, problems, "A")

    # B, second run: the mutated file arrives next to data already written
    result = ingest(str(src), str(store_b), progress=False)
    problems += [f"B: {e}" for e in _internal_errors(result)]
    if reference is not None and _shard_hashes(store_b, GOOD_ID) != before:
        problems.append("B: the good channel's objects changed when the mutated file was added")
    _check_store(store_b, reference, problems, "B")

    # C: the mutated file alone
    alone = workdir / "alone"
    alone.mkdir()
    (alone / "fuzz.mseed").write_bytes(data)
    store_c = workdir / "c.zarr"
    try:
        result = ingest(str(alone), str(store_c), progress=False)
    except NoWaveformDataError:
        outcome["alone_no_data"] += 1
        if store_c.exists():
            problems.append("C: no waveform data, but the store was left behind")
    else:
        problems += [f"C: {e}" for e in _internal_errors(result)]
        _check_store(store_c, None, problems, "C")
    return outcome, problems


def _run_kind(run: str, kind: str, bases: dict[str, bytes], good_file: bytes, good_reference,
              tmp_path: pathlib.Path) -> None:
    k = list(KINDS).index(kind)
    names = sorted(bases)
    if kind == "shuffled records":  # shuffling needs records to shuffle: prefer bases with several
        names = [n for n in names if len(Records(bases[n])) > 1] or names
    failures = []
    for case in range(CASES_PER_KIND[run]):
        rng = np.random.default_rng([SEED, k, case])
        name = names[(case + k) % len(names)]
        data = KINDS[kind](rng, bases[name], Records(bases[name]))
        label = f"{kind} #{case} on {name} ({len(data)} bytes)"
        t0 = time.perf_counter()
        try:
            with _time_limit(CASE_SECONDS):
                outcome, problems = run_case(tmp_path / f"case{case}", data, good_file, good_reference,
                                             bases[name])
        except CaseTimeout as exc:
            outcome, problems = collections.Counter(tried=1, crashes=1), [f"hang: {exc}"]
        except Exception as exc:  # noqa: BLE001 - a crash is a finding: record it and go on with the cases
            outcome, problems = collections.Counter(tried=1, crashes=1), [f"crash: {type(exc).__name__}: {exc}"]
        else:
            seconds = time.perf_counter() - t0
            if seconds > CASE_SECONDS:
                problems.append(f"hang: the case took {seconds:.1f} s")
            crash = any(p.startswith("hang") or "task failed" in p or "cannot " in p or "could not be read" in p
                        for p in problems)
            outcome["crashes"] += crash
            outcome["wrong"] += bool(problems) and not crash
        COUNTS[(run, kind)].update(outcome)
        SLOWEST[(run, kind)] = max(SLOWEST[(run, kind)], time.perf_counter() - t0)
        if problems:
            failures.append(f"{label}: " + " | ".join(problems))
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(900, method="thread")
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("run", RUNS)
def test_fuzzed_miniseed_is_reported_or_ingested_and_never_harms_good_data(run, kind, bases, good_file,
                                                                           good_reference, tmp_path):
    _run_kind(run, kind, bases, good_file, good_reference, tmp_path)


def test_base_files_ingest_cleanly(bases, good_file, good_reference, tmp_path):
    """The unmutated base files pass every property and are not reported (the fuzz cases' control)."""
    for name, data in sorted(bases.items()):
        outcome, problems = run_case(tmp_path / name.replace(".", "_"), data, good_file, good_reference)
        assert not problems, f"{name}: {problems}"
        assert outcome["ingested"] and not outcome["reported"], name


# ------------------------------------------------------------------------- what the fuzzing found (regressions)
def _set(data: bytes, pos: int, value: bytes) -> bytes:
    return data[:pos] + value + data[pos + len(value):]


def _b1000(data: bytes, record: int, field: int, value: int) -> bytes:
    rec = Records(data)
    return _set(data, rec.b1000[record] + field, bytes([value]))


def _every_record(data: bytes, pos: int, value: bytes) -> bytes:
    for offset in Records(data).offset:
        data = _set(data, offset + pos, value)
    return data


#: name → (base, mutation of the base, words of the reason, base records the store must hold): what the cases
#: above found, and how ingest went before the fix.
FOUND = {
    # a flipped bit in a Steim difference: the record's later samples were all off, stored without a report
    # (libmseed's failed integrity check was only a warning, silenced)
    "Steim payload byte": ("steim2", lambda d: _set(d, 3 * 512 + 200, bytes([d[3 * 512 + 200] ^ 0x10])),
                           "integrity check", 10),
    # libmseed read 200 INT32 samples from a 256-byte record: past its end (the next records, or memory after
    # the buffer), stored without a report
    "INT32 sample count past the record": ("int32", lambda d: _set(d, 2 * 256 + 30, (200).to_bytes(2, "big")),
                                           "do not fit", 19),
    # a record length of 1024 swallowed the next 512-byte record: lost without a report
    "record length over the next record": ("steim2", lambda d: _b1000(d, 2, 6, 10),
                                           "the next record header follows", 10),
    # a record length past the end of the file: every record after it was dropped as "truncated"
    "record length past the end": ("steim2", lambda d: _b1000(d, 2, 6, 15), "the next record header follows", 10),
    # an invalid word order (ObsPy: "invalid miniSEED"): stored without a report, as big-endian whatever the
    # samples were; now INT32 records are refused, and Steim records kept with a warning (their integrity
    # check fails in the wrong byte order), as in ObsPy's record_with_invalid_word_order.mseed (IU.COR, 1995)
    "word order 7, INT32": ("int32", lambda d: _b1000(d, 2, 5, 7), "byte order of its samples is unknown", 19),
    "word order 7, Steim-2": ("steim2", lambda d: _b1000(d, 2, 5, 7), "read as big-endian", 10),
    # 32767 × 200 Hz: the write task asked for a day buffer of 2 TiB (MemoryError, a failed task); a rate a
    # little above 5 kHz allocates it (gigabytes per task)
    "sampling rate of 6.5 MHz": ("int32", lambda d: _every_record(d, 32, (32767).to_bytes(2, "big")
                                                                  + (200).to_bytes(2, "big")), "to 5000 Hz", 0),
    # 1 / 32767² Hz: the records' end times overflowed int64 (NumPy's invalid cast), and they were planned
    # into no day at all: neither ingested nor reported
    "sampling rate of 1 / 32767² Hz": ("int32", lambda d: _every_record(d, 32, (-32767).to_bytes(2, "big", signed=True)
                                                                        + (-32767).to_bytes(2, "big", signed=True)),
                                       "outside one sample per day", 0),
    # one record at 36 Hz made the rest of the 100 Hz file be rejected as "another rate"
    "one record of another rate": ("steim2", lambda d: _set(d, 32, (36).to_bytes(2, "big")), "the most samples", 10),
    # ObsPy: "invalid miniSEED"; the byte is dropped from the id as ObsPy does, now with a warning
    # the same in a record whose station code holds a byte that is not UTF-8: ObsPy lost libmseed's warning
    "Steim payload byte and a non-ASCII code": ("steim2", lambda d: _set(_set(d, 3 * 512 + 11, b"\xc9"), 3 * 512 + 200,
                                                                          bytes([d[3 * 512 + 200] ^ 0x10])),
                                                "integrity check", 10),
    "non-ASCII byte in a code": ("steim2", lambda d: _set(d, 4 * 512 + 11, b"\xc3"), "non-ASCII", 10),
}


@pytest.mark.parametrize("name", list(FOUND))
def test_what_the_fuzzing_found_is_reported_and_the_other_records_kept(name, bases, good_file, good_reference,
                                                                       tmp_path):
    base_name, mutate, words, kept = FOUND[name]
    base = bases[base_name]
    data = mutate(base)
    reasons: list[str] = []
    outcome, problems = run_case(tmp_path, data, good_file, good_reference, base, reasons)
    assert not problems
    assert reasons and words in " ".join(reasons), reasons
    assert outcome["intact_records"] - outcome["intact_records_lost"] == kept, dict(outcome)
