"""Trace files: a JSON header followed by CRC-protected chunks of fixed-size records in named streams.

Layout (all integers little-endian):

    preamble   MAGIC (8 bytes) | format version u16 | flags u16 (0) | header length u32 | header CRC-32 u32
    header     UTF-8 JSON object: "format", "format_version", "streams" (name, id and numpy dtype
               description of each stream) plus what the producer puts there (config checksum short and
               long, reaction_time_ns, cycle_period_ns, producer, the configuration itself, ...)
    chunks     sync u32 | kind u16 | stream id u16 | record count u32 | payload length u32 | CRC-32 u32,
               then the payload. The CRC covers the first 16 bytes of the chunk head and the payload.
               DATA chunks carry `count` records of the stream's dtype; DROPPED chunks carry a u64: the
               records of that stream lost so far to a full ring buffer; the END chunk (one, last) carries a
               JSON summary and marks a cleanly closed file.

A torn, truncated or corrupt file is detected on read, and the error names the file and byte offset.
The CRC is the standard CRC-32 (zlib); this is integrity against storage faults, not a safety code.

Writing from the real-time loop goes through `Ring`s (preallocated, no allocation per record, overflow
counted) drained to a `TraceWriter` by the non-real-time thread of a `TraceRecorder`.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cobotguard.safety.records import COMMAND_DTYPE, DETECTION_DTYPE, MAX_SENSORS, ROBOT_STATE_DTYPE

MAGIC = b"\x89CGTRACE"  # high byte first, like PNG: a text-mode copy or a non-trace file fails at once
FORMAT_NAME = "cobotguard-trace"
FORMAT_VERSION = 1

_PREAMBLE = struct.Struct("<8sHHII")
_CHUNK_HEAD = struct.Struct("<IHHIII")
_CHUNK_SYNC = 0x4B434743  # b"CGCK"
_END_STREAM_ID = 0xFFFF
MAX_CHUNK_RECORDS = 4096  # bounds one chunk, so a drain pass holds the interpreter lock only briefly

KIND_DATA = 1
KIND_DROPPED = 2
KIND_END = 3
_KIND_NAMES = {KIND_DATA: "DATA", KIND_DROPPED: "DROPPED", KIND_END: "END"}

# The controller's per-cycle record: stage timestamps, every input the step saw (for replay), its output.
CYCLE_DTYPE = np.dtype(
    [
        ("cycle", np.int64),  # step index: the Python executor numbers releases (gaps: skipped releases),
        # the compiled loop numbers every step (tick or data; skipped releases show in t_scheduled_ns)
        ("t_scheduled_ns", np.int64),  # release time t0 + k * period (data step: when the data was readable)
        ("t_wake_ns", np.int64),  # the loop woke up (wake-up latency = t_wake - t_scheduled)
        ("t_inputs_ns", np.int64),  # ports polled, inputs assembled
        ("now_ns", np.int64),  # the time given to the step
        ("t_step_start_ns", np.int64),
        ("t_step_end_ns", np.int64),
        ("t_command_written_ns", np.int64),  # command handed to the robot port
        ("overrun", np.int32),  # overrun input of the step: the previous cycle missed its deadline
        ("reset_input", np.int32),  # reset input level given to the step
        ("link_fault", np.int32),  # Reason of a link/receive error given to the step this cycle (0: none)
        ("new_frames", np.uint32),  # bit i: a new frame of sensor i entered this cycle ("detections" stream)
        ("frame_counter", np.int32, (MAX_SENSORS,)),  # counter of the frame held per sensor, -1: none
        ("robot", ROBOT_STATE_DTYPE),  # the robot state given to the step
        ("command_seq", np.int64),  # sequence number of the command sent this cycle
        ("command", COMMAND_DTYPE),  # the step's output
        ("trigger", np.int32),  # what released this step: 0 the tick (a release), 1 data readable, 2 reset
    ]
)

# Each new detection frame as received, tagged with the cycle that took it in.
DETECTION_TRACE_DTYPE = np.dtype(
    [*((name, DETECTION_DTYPE[name]) for name in DETECTION_DTYPE.names or ()), ("cycle", np.int64)]
)


class TraceError(ValueError):
    """A trace file is unreadable: names the file, the byte offset and what was expected."""

    def __init__(self, path: str | os.PathLike[str], offset: int, message: str) -> None:
        super().__init__(f"{path}: byte {offset}: {message}")
        self.path = str(path)
        self.offset = offset
        self.message = message


def _dtype_descr(dtype: np.dtype) -> Any:
    return np.lib.format.dtype_to_descr(np.dtype(dtype))


def _dtype_from_descr(descr: Any) -> np.dtype:
    def as_tuples(d: Any) -> Any:
        # JSON turned the description's tuples into lists: [name, format or nested list, shape?]
        if isinstance(d, str):
            return d
        fields = []
        for f in d:
            name, fmt, *shape = f
            fields.append((name, as_tuples(fmt), *(tuple(s) for s in shape)))
        return fields

    return np.lib.format.descr_to_dtype(as_tuples(descr))


def header_for_config(cfg: Any, producer: str, **extra: Any) -> dict[str, Any]:
    """Standard header of a trace made under `cfg`: checksums, budget numbers, the config itself."""
    from cobotguard.safety.budget import reaction_time_ns
    from cobotguard.safety.checksum import config_checksum
    from cobotguard.safety.config import ns

    short, long = config_checksum(cfg)
    header: dict[str, Any] = {
        "producer": producer,
        "config_name": cfg.name,
        "config_checksum": short,
        "config_checksum_long": long,
        "reaction_time_ns": int(reaction_time_ns(cfg)),
        "cycle_period_ns": ns(cfg.controller.cycle_period_ms),
        "config": cfg.model_dump(mode="json"),
    }
    header.update(extra)
    return header


class TraceWriter:
    """Writes a trace file; `write` appends CRC-protected chunks, `close` writes the END chunk and syncs."""

    def __init__(
        self, path: str | os.PathLike[str], header: Mapping[str, Any], streams: Mapping[str, np.dtype]
    ) -> None:
        if not streams:
            raise ValueError("a trace needs at least one stream")
        if len(streams) >= _END_STREAM_ID:
            raise ValueError("too many streams")
        self.path = Path(path)
        self.dtypes = {name: np.dtype(dt) for name, dt in streams.items()}
        self._ids = {name: i for i, name in enumerate(self.dtypes)}
        self.records = dict.fromkeys(self.dtypes, 0)
        self.dropped = dict.fromkeys(self.dtypes, 0)
        full_header = dict(header)
        full_header["format"] = FORMAT_NAME
        full_header["format_version"] = FORMAT_VERSION
        full_header["streams"] = [
            {"name": name, "id": self._ids[name], "dtype": _dtype_descr(dt)}
            for name, dt in self.dtypes.items()
        ]
        self.header = full_header
        blob = json.dumps(full_header, sort_keys=True, allow_nan=False).encode()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._file.write(_PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(blob), zlib.crc32(blob)))
        self._file.write(blob)
        self._file.flush()
        self._closed = False

    def _chunk(self, kind: int, stream_id: int, count: int, payload: bytes | memoryview) -> None:
        head = _CHUNK_HEAD.pack(_CHUNK_SYNC, kind, stream_id, count, len(payload), 0)[:16]
        crc = zlib.crc32(payload, zlib.crc32(head))
        self._file.write(head + struct.pack("<I", crc))
        self._file.write(payload)

    def write(self, stream: str, records: np.ndarray) -> None:
        """Append records (an array of the stream's dtype) to a stream."""
        if self._closed:
            raise ValueError(f"{self.path}: trace already closed")
        dtype = self.dtypes.get(stream)
        if dtype is None:
            raise KeyError(f"{self.path}: unknown stream {stream!r}; declared: {sorted(self.dtypes)}")
        if records.dtype != dtype:
            raise TypeError(f"{self.path}: stream {stream!r} takes {dtype}, got {records.dtype}")
        flat = np.ascontiguousarray(records).reshape(-1)
        for start in range(0, len(flat), MAX_CHUNK_RECORDS):
            part = flat[start : start + MAX_CHUNK_RECORDS]
            self._chunk(KIND_DATA, self._ids[stream], len(part), part.view(np.uint8).data)
        self.records[stream] += len(flat)

    def note_dropped(self, stream: str, total: int) -> None:
        """Record that `total` records of a stream have been lost so far (ring buffer overflow)."""
        if total != self.dropped[stream]:
            self.dropped[stream] = total
            self._chunk(KIND_DROPPED, self._ids[stream], 0, struct.pack("<Q", total))

    def flush(self) -> None:
        """Push buffered chunks to the operating system (a crash after this loses nothing written)."""
        self._file.flush()

    def close(self, **summary: Any) -> None:
        """Write the END chunk (record and drop counts plus `summary`), flush, fsync and close."""
        if self._closed:
            return
        end = {"records": self.records, "dropped": self.dropped, **summary}
        self._chunk(KIND_END, _END_STREAM_ID, 0, json.dumps(end, sort_keys=True, allow_nan=False).encode())
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._closed = True

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Tear:
    """Where reading a damaged trace stopped, how, and what had been read intact before that byte."""

    offset: int  # byte offset of the first damaged or missing chunk
    how: str  # what was found there (a torn chunk, a CRC mismatch, no END chunk, ...)
    records: dict[str, int]  # intact records read per stream before the tear
    last_cycle: int | None  # the `cycle` field of the last intact "cycles" record, if any

    def describe(self) -> str:
        """One plain sentence: the byte, what was wrong there, and the intact prefix before it."""
        counts = ", ".join(f"{n} {name!r} records" for name, n in self.records.items()) or "no records"
        cycle = "" if self.last_cycle is None else f", the last intact cycle is {self.last_cycle}"
        return f"torn at byte {self.offset} ({self.how}); intact before it: {counts}{cycle}"

    def as_json(self) -> dict[str, Any]:
        """The tear as a JSON-serialisable object."""
        return {
            "offset": self.offset,
            "how": self.how,
            "records": self.records,
            "last_cycle": self.last_cycle,
        }


@dataclass
class Trace:
    """A trace read back: header, records per stream, records lost to overflow, and the END summary."""

    path: str
    header: dict[str, Any]
    streams: dict[str, np.ndarray]
    dropped: dict[str, int]
    summary: dict[str, Any] | None  # the END chunk's JSON; None when the file was not closed cleanly
    error: TraceError | None = field(default=None)  # what stopped reading (only with allow_incomplete)

    @property
    def complete(self) -> bool:
        """True when the file was closed cleanly and read to its END without error."""
        return self.summary is not None and self.error is None

    @property
    def tear(self) -> Tear | None:
        """Where and how an incompletely read trace stopped (None for a complete one)."""
        if self.error is None:
            return None
        cycles = self.streams.get("cycles")
        last_cycle = None
        if cycles is not None and cycles.size and "cycle" in (cycles.dtype.names or ()):
            last_cycle = int(cycles["cycle"][-1])
        records = {name: int(records.size) for name, records in self.streams.items()}
        return Tear(self.error.offset, self.error.message, records, last_cycle)


def _read_header(path: str, data: memoryview) -> tuple[dict[str, Any], int]:
    if len(data) < _PREAMBLE.size:
        raise TraceError(
            path, 0, f"file too short for a trace preamble ({len(data)} of {_PREAMBLE.size} bytes)"
        )
    magic, version, flags, length, crc = _PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise TraceError(path, 0, f"not a cobotguard trace (magic {bytes(magic)!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise TraceError(path, 8, f"trace format version {version}, this reader knows {FORMAT_VERSION}")
    if flags != 0:
        raise TraceError(path, 10, f"preamble flags 0x{flags:04x}, expected 0 (corrupt, or a newer writer)")
    start = _PREAMBLE.size
    if start + length > len(data):
        raise TraceError(path, start, f"header truncated: {len(data) - start} of {length} bytes present")
    blob = bytes(data[start : start + length])
    if zlib.crc32(blob) != crc:
        raise TraceError(path, start, "header CRC mismatch (corrupt header)")
    try:
        header = json.loads(blob)
    except ValueError as exc:
        raise TraceError(path, start, f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("streams"), list):
        raise TraceError(path, start, "header has no 'streams' list")
    return header, start + length


def read_trace(path: str | os.PathLike[str], allow_incomplete: bool = False) -> Trace:
    """Read a whole trace file.

    Raises TraceError on any corruption, and on a file that was not closed cleanly (no END chunk). With
    `allow_incomplete`, a damaged tail is not raised: the records before it are returned and `.error` says
    where reading stopped (for traces of a crashed or still-running producer). A bad header always raises.
    """
    path_s = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TraceError(path_s, 0, f"cannot read: {exc.strerror}") from None
    data = memoryview(raw)
    header, offset = _read_header(path_s, data)
    dtypes: dict[int, tuple[str, np.dtype]] = {}
    for entry in header["streams"]:
        try:
            dtypes[int(entry["id"])] = (str(entry["name"]), _dtype_from_descr(entry["dtype"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TraceError(path_s, _PREAMBLE.size, f"bad stream description {entry!r}: {exc}") from None
    parts: dict[str, list[np.ndarray]] = {name: [] for name, _ in dtypes.values()}
    dropped = dict.fromkeys(parts, 0)
    summary: dict[str, Any] | None = None
    error: TraceError | None = None
    try:
        while offset < len(data):
            if summary is not None:
                raise TraceError(path_s, offset, f"{len(data) - offset} bytes after the END chunk")
            kind, stream_id, count, payload, next_offset = _read_chunk(path_s, data, offset)
            if kind == KIND_END:
                try:
                    summary = json.loads(bytes(payload))
                except ValueError:
                    raise TraceError(path_s, offset, "END chunk is not valid JSON") from None
            else:
                if stream_id not in dtypes:
                    raise TraceError(path_s, offset, f"chunk for undeclared stream id {stream_id}")
                name, dtype = dtypes[stream_id]
                if kind == KIND_DATA:
                    if len(payload) != count * dtype.itemsize:
                        raise TraceError(
                            path_s,
                            offset,
                            f"DATA chunk of {name!r}: {len(payload)} bytes for {count} records of "
                            f"{dtype.itemsize} bytes",
                        )
                    parts[name].append(np.frombuffer(payload, dtype=dtype, count=count))
                elif kind == KIND_DROPPED:
                    if len(payload) != 8:
                        raise TraceError(path_s, offset, f"DROPPED chunk of {len(payload)} bytes, expected 8")
                    dropped[name] = max(dropped[name], struct.unpack("<Q", payload)[0])
            offset = next_offset
        if summary is None:
            raise TraceError(
                path_s, offset, "no END chunk: trace not closed (producer crashed or still running)"
            )
    except TraceError as exc:
        if not allow_incomplete:
            raise
        error = exc
    streams = {
        name: (np.concatenate(chunks) if chunks else np.zeros(0, dtype=dt))
        for (name, dt), chunks in zip(dtypes.values(), parts.values(), strict=True)
    }
    return Trace(path_s, header, streams, dropped, summary, error)


def _read_chunk(path: str, data: memoryview, offset: int) -> tuple[int, int, int, memoryview, int]:
    remaining = len(data) - offset
    if remaining < _CHUNK_HEAD.size:
        raise TraceError(
            path, offset, f"torn chunk head: {remaining} of {_CHUNK_HEAD.size} bytes (truncated file)"
        )
    sync, kind, stream_id, count, length, crc = _CHUNK_HEAD.unpack_from(data, offset)
    if sync != _CHUNK_SYNC:
        raise TraceError(
            path, offset, f"bad chunk sync word 0x{sync:08x}, expected 0x{_CHUNK_SYNC:08x} (corrupt)"
        )
    if kind not in _KIND_NAMES:
        raise TraceError(path, offset, f"unknown chunk kind {kind}")
    start = offset + _CHUNK_HEAD.size
    if start + length > len(data):
        raise TraceError(
            path,
            offset,
            f"torn {_KIND_NAMES[kind]} chunk: {len(data) - start} of {length} payload bytes (truncated file)",
        )
    payload = data[start : start + length]
    if zlib.crc32(payload, zlib.crc32(data[offset : offset + 16])) != crc:
        raise TraceError(path, offset, f"{_KIND_NAMES[kind]} chunk CRC mismatch (corrupt data)")
    return kind, stream_id, count, payload, start + length


RING_HEAD, RING_TAIL, RING_DROPPED = 0, 1, 2  # indices into Ring.counters


class Ring:
    """A preallocated single-producer single-consumer ring of records.

    The real-time thread calls `push` (one record copied into a preallocated slot), or `claim`, writes
    the slot in place, then `commit`; when the ring is full the record is dropped and counted in
    `dropped`, never lost silently.
    The drain thread reads committed slots in place and then releases them.
    head, tail and dropped live in one int64 array, `counters`, so that compiled code without the
    interpreter (safety.cycle) can produce into the ring while a Python thread drains it: the producer
    writes the slot, then head; the consumer reads head, then the slots (x86-64 and aarch64 keep a
    thread's stores in order for another thread's matching loads only with the barrier each side's
    system call or lock gives; both sides make one per pass).
    """

    def __init__(self, dtype: np.dtype, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be at least 1")
        self.buf = np.zeros(capacity, dtype=dtype)
        self.capacity = capacity
        self.counters = np.zeros(3, dtype=np.int64)

    @property
    def head(self) -> int:
        """Records pushed (written by the producer only)."""
        return int(self.counters[RING_HEAD])

    @property
    def tail(self) -> int:
        """Records released (written by the consumer only)."""
        return int(self.counters[RING_TAIL])

    @property
    def dropped(self) -> int:
        """Records lost because the ring was full (written by the producer only)."""
        return int(self.counters[RING_DROPPED])

    def push(self, record: np.ndarray) -> bool:
        """Copy `record` (a 1-element array of the ring's dtype) into the next slot; False when full."""
        head = self.head
        if head - self.tail >= self.capacity:
            self.counters[RING_DROPPED] += 1
            return False
        self.buf[head % self.capacity] = record[0]
        self.counters[RING_HEAD] = head + 1  # publish after the copy: never a half-written slot
        return True

    def is_full(self) -> bool:
        """True when the next `push` or `claim` would drop its record."""
        return self.head - self.tail >= self.capacity

    def claim(self) -> int:
        """Slot for the next record (write `buf[slot]`, then `commit`); -1 when full (counted)."""
        if self.head - self.tail >= self.capacity:
            self.counters[RING_DROPPED] += 1
            return -1
        return self.head % self.capacity

    def commit(self) -> None:
        """Publish the record written into the slot from `claim`."""
        self.counters[RING_HEAD] += 1

    def pending(self) -> tuple[np.ndarray, np.ndarray]:
        """The committed, unreleased records as (up to) two views: before and after the wrap point."""
        head, tail, cap = self.head, self.tail, self.capacity
        start, end = tail % cap, tail % cap + (head - tail)
        if end <= cap:
            return self.buf[start:end], self.buf[0:0]
        return self.buf[start:cap], self.buf[0 : end - cap]

    def release(self, count: int) -> None:
        """Give `count` records back to the producer (consumer only)."""
        self.counters[RING_TAIL] += count


class TraceRecorder:
    """Rings filled by the real-time loop, drained to a TraceWriter by a background thread.

    Usage: `rec = TraceRecorder(writer, capacity=...)`, `rec.ring("cycles").push(record)` from the loop,
    `rec.start()` before and `rec.close()` after (close drains everything, records the drop counts and
    closes the file). The drain thread wakes every `drain_interval_s` and flushes after each pass.
    `may_drain()`, when given, says when the loop can spare the interpreter lock (between its cycles):
    Python threads share one lock, and a drain pass that holds it when the loop wakes delays the loop.
    """

    QUIET_POLL_S = 0.0001  # how often the drain thread asks `may_drain` while waiting for a quiet moment
    QUIET_GIVE_UP_S = 0.05  # drain anyway after waiting this long (rather than let a ring fill up)

    def __init__(
        self,
        writer: TraceWriter,
        capacity: int | Mapping[str, int] = 16384,
        drain_interval_s: float = 0.02,
        may_drain: Callable[[], bool] | None = None,
    ) -> None:
        self.writer = writer
        caps = capacity if isinstance(capacity, Mapping) else dict.fromkeys(writer.dtypes, capacity)
        self.rings = {name: Ring(writer.dtypes[name], int(caps.get(name, 1024))) for name in writer.dtypes}
        self._interval = drain_interval_s
        self._may_drain = may_drain
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # serialises drain passes (thread vs. close)

    def ring(self, stream: str) -> Ring:
        """The ring of one stream (look it up once, before the loop)."""
        return self.rings[stream]

    def start(self) -> None:
        """Start the drain thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="trace-drain", daemon=True)
            self._thread.start()

    def drain(self) -> int:
        """Write every committed record to the file now; returns how many were written."""
        written = 0
        with self._lock:
            for name, ring in self.rings.items():
                for part in ring.pending():
                    if len(part):
                        self.writer.write(name, part)
                        ring.release(len(part))
                        written += len(part)
                self.writer.note_dropped(name, ring.dropped)
            self.writer.flush()
        return written

    def _run(self) -> None:
        import time

        while not self._stop.wait(self._interval):
            if self._may_drain is not None:
                give_up = time.monotonic() + self.QUIET_GIVE_UP_S
                while not self._may_drain() and time.monotonic() < give_up and not self._stop.is_set():
                    time.sleep(self.QUIET_POLL_S)
            self.drain()

    def close(self, **summary: Any) -> None:
        """Stop the drain thread, write what is left, record drop counts and close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.drain()
        self.writer.close(**summary)

    @property
    def dropped(self) -> dict[str, int]:
        """Records lost per stream because a ring was full."""
        return {name: ring.dropped for name, ring in self.rings.items()}
