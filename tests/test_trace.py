"""Trace files: round trip, ring overflow accounting, and detection of torn or corrupt files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.safety.records import DETECTION_DTYPE, MAX_PERSONS
from cobotguard.safety.trace import (
    CYCLE_DTYPE,
    DETECTION_TRACE_DTYPE,
    Ring,
    TraceError,
    TraceRecorder,
    TraceWriter,
    read_trace,
)

STREAMS = {"cycles": CYCLE_DTYPE, "detections": DETECTION_TRACE_DTYPE}


def _cycles(n: int, start: int = 0) -> np.ndarray:
    records = np.zeros(n, dtype=CYCLE_DTYPE)
    records["cycle"] = np.arange(start, start + n)
    records["t_wake_ns"] = records["cycle"] * 1_000_000 + 17
    records["command"]["reason"] = records["cycle"] % 7
    records["robot"]["speed_mps"] = records["cycle"] * 0.25
    records["frame_counter"] = -1
    return records


def _write(path: Path, n: int = 50) -> None:
    with TraceWriter(path, {"producer": "test", "cycle_period_ns": 1_000_000}, STREAMS) as writer:
        writer.write("cycles", _cycles(n))
        frames = np.zeros(2, dtype=DETECTION_TRACE_DTYPE)
        frames["frame_counter"] = [254, 255]
        frames["persons"]["x_m"][:, :MAX_PERSONS] = 1.5
        writer.write("detections", frames)


def test_round_trip_keeps_header_dtypes_and_records(tmp_path: Path) -> None:
    path = tmp_path / "t.cgtrace"
    _write(path)
    trace = read_trace(path)
    assert trace.complete
    assert trace.header["producer"] == "test"
    assert trace.header["cycle_period_ns"] == 1_000_000
    assert trace.streams["cycles"].dtype == CYCLE_DTYPE
    assert trace.streams["detections"].dtype == DETECTION_TRACE_DTYPE
    np.testing.assert_array_equal(trace.streams["cycles"], _cycles(50))
    assert list(trace.streams["detections"]["frame_counter"]) == [254, 255]
    assert trace.summary is not None and trace.summary["records"] == {"cycles": 50, "detections": 2}


def test_detection_trace_dtype_carries_every_detection_field() -> None:
    for name in DETECTION_DTYPE.names or ():
        assert DETECTION_TRACE_DTYPE[name] == DETECTION_DTYPE[name]
    assert "cycle" in (DETECTION_TRACE_DTYPE.names or ())


def test_writer_rejects_wrong_dtype_and_unknown_stream(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "t", {}, STREAMS) as writer:
        with pytest.raises(TypeError):
            writer.write("cycles", np.zeros(1, dtype=DETECTION_TRACE_DTYPE))
        with pytest.raises(KeyError):
            writer.write("nope", _cycles(1))


@pytest.mark.requirement("SR-EVD-1")
@given(cut=st.integers(min_value=1, max_value=10_000))
def test_every_truncation_is_detected_with_its_offset(
    tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    path = tmp_path_factory.mktemp("trunc") / "t"
    _write(path)
    raw = path.read_bytes()
    keep = max(0, len(raw) - cut)
    path.write_bytes(raw[:keep])
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert str(path) in str(info.value)
    assert 0 <= info.value.offset <= keep


@pytest.mark.requirement("SR-EVD-1")
@given(data=st.data())
def test_every_flipped_bit_is_detected(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    path = tmp_path_factory.mktemp("flip") / "t"
    _write(path, n=5)
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    raw[position] ^= 1 << bit
    path.write_bytes(bytes(raw))
    with pytest.raises(TraceError):
        read_trace(path)


def test_incomplete_read_returns_records_before_the_tear(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _write(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-3])
    trace = read_trace(path, allow_incomplete=True)
    assert not trace.complete
    assert trace.error is not None and "END" in str(trace.error)
    assert len(trace.streams["cycles"]) == 50


def test_garbage_after_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _write(path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(TraceError, match="after the END chunk"):
        read_trace(path)


def test_not_a_trace_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_bytes(b"[robot]\nname = 'x'\n" * 3)
    with pytest.raises(TraceError, match="not a cobotguard trace"):
        read_trace(path)
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "missing")


def test_future_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _write(path)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<H", raw, 8, 99)
    path.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match="version 99"):
        read_trace(path)


@pytest.mark.requirement("SR-EVD-1")
def test_ring_counts_overflow_and_keeps_order() -> None:
    ring = Ring(CYCLE_DTYPE, capacity=4)
    one = np.zeros(1, dtype=CYCLE_DTYPE)
    accepted = []
    for i in range(6):
        one["cycle"] = i
        accepted.append(ring.push(one))
    assert accepted == [True] * 4 + [False] * 2
    assert ring.dropped == 2
    first, second = ring.pending()
    assert list(first["cycle"]) == [0, 1, 2, 3] and len(second) == 0
    ring.release(3)
    for i in (10, 11, 12):
        one["cycle"] = i
        ring.push(one)
    first, second = ring.pending()
    assert list(first["cycle"]) + list(second["cycle"]) == [3, 10, 11, 12]  # wrapped around
    one["cycle"] = 13
    assert not ring.push(one)
    assert ring.dropped == 3


def test_recorder_writes_everything_pushed_and_records_drops(tmp_path: Path) -> None:
    path = tmp_path / "t"
    writer = TraceWriter(path, {"producer": "test"}, STREAMS)
    recorder = TraceRecorder(writer, capacity={"cycles": 8, "detections": 4})
    ring = recorder.ring("cycles")
    one = np.zeros(1, dtype=CYCLE_DTYPE)
    for i in range(20):  # drain thread not started: the ring fills and the rest is counted
        one["cycle"] = i
        ring.push(one)
    recorder.drain()
    recorder.start()
    for i in range(20, 25):
        one["cycle"] = i
        ring.push(one)
    recorder.close(stopped_by="test")
    trace = read_trace(path)
    assert list(trace.streams["cycles"]["cycle"]) == list(range(8)) + list(range(20, 25))
    assert trace.dropped["cycles"] == 12
    assert trace.summary is not None and trace.summary["stopped_by"] == "test"
    assert trace.summary["dropped"]["cycles"] == 12


def test_large_write_is_split_into_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "t"
    with TraceWriter(path, {}, STREAMS) as writer:
        writer.write("cycles", _cycles(10_000))
    np.testing.assert_array_equal(read_trace(path).streams["cycles"], _cycles(10_000))


def test_drain_waits_for_the_loop_to_be_quiet(tmp_path: Path) -> None:
    """The drain thread asks `may_drain` and writes only once the loop says it can spare the lock."""
    import time

    answers = [False, False, False, True]
    asked: list[bool] = []
    written_at_answer: list[int] = []

    def may_drain() -> bool:
        answer = answers[min(len(asked), len(answers) - 1)]
        asked.append(answer)
        return answer

    writer = TraceWriter(tmp_path / "t", {}, STREAMS)
    recorder = TraceRecorder(writer, capacity=16, drain_interval_s=0.001, may_drain=may_drain)
    recorder.ring("cycles").push(_cycles(1))
    original_drain = recorder.drain

    def drain() -> int:
        written_at_answer.append(len(asked))
        return original_drain()

    recorder.drain = drain  # type: ignore[method-assign]
    recorder.start()
    give_up = time.monotonic() + 10
    while not written_at_answer and time.monotonic() < give_up:
        time.sleep(0.005)
    recorder.close()
    assert written_at_answer and written_at_answer[0] == 4  # drained right after the first "yes"
    assert len(read_trace(tmp_path / "t").streams["cycles"]) == 1


@pytest.mark.requirement("SR-EVD-1")
@given(cut=st.integers(min_value=1, max_value=2_000))
def test_a_tear_names_its_byte_and_the_intact_prefix(
    tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    path = tmp_path_factory.mktemp("tear") / "t"
    _write(path)
    whole = read_trace(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - cut])
    trace = read_trace(path, allow_incomplete=True)
    tear = trace.tear
    assert tear is not None and not trace.complete
    assert tear.offset == trace.error.offset and tear.offset <= len(raw) - cut  # type: ignore[union-attr]
    assert tear.records == {name: len(records) for name, records in trace.streams.items()}
    cycles = trace.streams["cycles"]
    assert tear.last_cycle == (int(cycles["cycle"][-1]) if len(cycles) else None)
    # the prefix is exactly the whole file's first records: nothing invented, nothing reordered
    for name, records in trace.streams.items():
        np.testing.assert_array_equal(records, whole.streams[name][: len(records)])
    text = tear.describe()
    assert f"byte {tear.offset}" in text and tear.how in text


def test_a_complete_trace_has_no_tear(tmp_path: Path) -> None:
    path = tmp_path / "t"
    _write(path)
    assert read_trace(path).tear is None
