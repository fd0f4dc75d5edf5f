"""The byte-exact miniSEED record index and record decoding, against ObsPy's own reading."""

import io
import warnings

import numpy as np
import obspy
import pytest
from archives import RECLEN, mseed_bytes
from obspy.io.mseed import InternalMSEEDError
from obspy.io.mseed.util import get_record_information

from seisgrid.seismic.mseed import decode_records, index_records


def _mseed() -> bytes:
    return mseed_bytes()


def test_index_matches_obspy_record_information():
    raw = _mseed()
    index = index_records(raw)
    assert len(index) == len(raw) // RECLEN and index.bad_spans == []
    for k in (0, 3, len(index) - 1):
        info = get_record_information(io.BytesIO(raw), offset=k * RECLEN)
        assert index.ids[k] == "XX.ABC.00.HHZ"
        assert index.start_ns[k] == info["starttime"].ns
        assert index.nsamples[k] == info["npts"]
        assert index.sampling_rate[k] == info["samp_rate"]
        assert index.encoding[k] == 11
    assert index.nsamples.sum() == 6000


def test_garbage_in_the_middle_is_located_and_the_records_after_it_are_kept():
    raw = _mseed()
    garbage = np.random.default_rng(1).integers(0, 256, 700, dtype=np.uint8).tobytes()
    bad = raw[: 5 * RECLEN] + garbage + raw[5 * RECLEN:]
    # ObsPy alone silently loses the records after the garbage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sum(tr.stats.npts for tr in obspy.read(io.BytesIO(bad))) < 6000
    index = index_records(bad)
    assert [(o, n) for o, n, _, _ in index.bad_spans] == [(5 * RECLEN, 700)]
    assert len(index) == len(raw) // RECLEN
    traces, failed = decode_records(bad, index)
    assert failed == []
    assert np.array_equal(np.concatenate([t.data for t in traces]), obspy.read(io.BytesIO(raw))[0].data)


def test_truncated_last_record_is_reported_with_its_bytes():
    raw = _mseed()
    cut = raw[: 7 * RECLEN + 100]
    index = index_records(cut)
    assert len(index) == 7
    (offset, nbytes, reason, kind), = index.bad_spans
    assert (offset, nbytes, kind) == (7 * RECLEN, 100, "truncated")
    assert "100 of 512" in reason


def test_corrupt_payload_is_isolated_to_its_record():
    raw = bytearray(_mseed())
    raw[3 * RECLEN + 100: 3 * RECLEN + 200] = np.random.default_rng(2).integers(0, 256, 100, dtype=np.uint8).tobytes()
    raw = bytes(raw)
    with pytest.raises(InternalMSEEDError):
        obspy.read(io.BytesIO(raw))  # ObsPy gives up on the whole buffer
    index = index_records(raw)
    traces, failed = decode_records(raw, index)
    assert [(o, n) for o, n, _ in failed] == [(3 * RECLEN, RECLEN)]
    assert sum(t.stats.npts for t in traces) == 6000 - index.nsamples[3]


def test_not_miniseed_and_empty():
    assert len(index_records(b"")) == 0
    text = index_records(b"station,lat,lon\nA,1,2\n" * 20)
    assert len(text) == 0 and text.bad_bytes == 22 * 20


@pytest.mark.parametrize("name", ["microsecond_wrap.mseed", "one_record_already_applied_time_correction.mseed",
                                  "single_record_negative_sr_fact_and_mult.mseed", "timingquality.mseed",
                                  "mseed_not_a_single_blkt_48byte_data_offset.mseed"])
def test_start_times_and_rates_agree_with_obspy_on_bundled_files(obspy_mseed_examples, name):
    path = next((p for p in obspy_mseed_examples if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} is not among ObsPy's bundled example files")
    raw = path.read_bytes()
    index = index_records(raw)
    stream = obspy.read(str(path))
    assert index.start_ns[0] == stream[0].stats.starttime.ns
    assert index.sampling_rate[0] == pytest.approx(stream[0].stats.sampling_rate)
    traces, failed = decode_records(raw, index)
    assert failed == []
    assert np.array_equal(traces[0].data, stream[0].data)


def test_full_seed_control_headers_are_classified(obspy_mseed_examples):
    path = next((p for p in obspy_mseed_examples if p.name == "fullseed.mseed"), None)
    if path is None:
        pytest.skip("fullseed.mseed is not among ObsPy's bundled example files")
    index = index_records(path.read_bytes())
    assert index.bad_spans and all(kind == "control" for *_, kind in index.bad_spans)
    assert index.bad_bytes + int(index.length.sum()) == path.stat().st_size
