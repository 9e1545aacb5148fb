"""The compiled receiver and encoder (safety.link.compiled) against the sans-IO reference Endpoint.

Both get the same byte streams: valid frames, every fault class, chunks split and merged at random, and
garbage. They must accept the same frames (same decoded records), reject with the same Reasons at the
same point, and end in the same receiver state.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from link_support import CONNECTION_ID, POLICY, commands, detections, robot_states

from cobotguard.safety.link import (
    NEED_DATA,
    Command,
    Detections,
    Endpoint,
    Header,
    LinkError,
    LinkPolicy,
    Received,
    RobotState,
    Role,
    cobs_encode,
    encode_frame,
    encode_payload,
    encode_raw_frame,
)
from cobotguard.safety.link import compiled as cl
from cobotguard.safety.link.codec import MAX_FRAME_BYTES, PROTOCOL_VERSION
from cobotguard.safety.link.crc import TABLE
from cobotguard.safety.link.messages import MessageType, SyncReply, SyncRequest
from cobotguard.safety.records import COMMAND_DTYPE, ROBOT_STATE_DTYPE, empty_detections

MS = 1_000_000
ROLES = [Role.CONTROLLER, Role.SENSOR_RECEIVER, Role.ROBOT]


class CompiledReceiver:
    """The compiled kernels behind the reference's feed/events interface (test glue only)."""

    def __init__(self, role: Role, policy: LinkPolicy, connection_id: int = CONNECTION_ID) -> None:
        self.role = role
        self.rx = cl.new_receivers([role], [connection_id], [policy], 0)
        self.buffers = cl.new_buffers(1)
        self.raw = np.zeros(MAX_FRAME_BYTES, dtype=np.uint8)
        self.u32, self.f32 = cl.float_scratch()

    def feed(self, data: bytes, t_rx: int) -> list[tuple[str, object]]:
        """Events for one chunk: ("accepted", record bytes) or ("error", reason)."""
        arr = np.frombuffer(data, dtype=np.uint8)
        events: list[tuple[str, object]] = []
        pos, n = 0, arr.shape[0]
        while pos < n:
            pos = cl.feed(self.rx, 0, self.buffers, arr, pos, n, t_rx, self.raw, TABLE, cl.REASON_TABLE)
            event = int(self.rx[0]["event"])
            if event == cl.EVENT_ACCEPTED:
                events.append(("accepted", self._record()))
            elif event == cl.EVENT_ERROR:
                events.append(("error", int(self.rx[0]["error_reason"])))
                break
        return events

    def _record(self) -> object:
        kind = int(self.rx[0]["message_type"])
        if kind == int(MessageType.ROBOT_STATE):
            out = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
            cl.decode_robot_state(self.rx, 0, self.raw, out)
            return out
        if kind == int(MessageType.DETECTIONS):
            det = empty_detections(1)
            cl.decode_detections(self.rx, 0, self.raw, det, 0, self.u32, self.f32)
            return det
        if kind == int(MessageType.SYNC_REPLY):
            return (
                "sync_reply",
                int(cl.sync_reply_request_seq(self.raw)),
                int(cl.sync_reply_request_t_ns(self.raw)),
                int(cl.sync_reply_received_ns(self.raw)),
                int(self.rx[0]["t_sent_ns"]),
            )
        return ("command", int(self.rx[0]["seq"]))

    def watchdog(self, now: int) -> list[tuple[str, object]]:
        """("error", LINK_TIMEOUT) when the watchdog latched now."""
        if cl.check_watchdog(self.rx, 0, now):
            return [("error", int(self.rx[0]["error_reason"]))]
        return []

    @property
    def state(self) -> int:
        return int(self.rx[0]["state"])


def reference_feed(ep: Endpoint, data: bytes, t_rx: int) -> list[tuple[str, object]]:
    ep.feed(data, t_rx)
    events: list[tuple[str, object]] = []
    while (event := ep.next_event()) is not NEED_DATA:
        if isinstance(event, Received):
            if isinstance(event.message, Command):
                events.append(("accepted", ("command", event.seq)))
            elif isinstance(event.message, SyncReply):
                m = event.message
                reply = ("sync_reply", m.request_seq, m.request_t_ns, m.t_request_received_ns)
                reply += (event.t_sent_ns,)
                events.append(("accepted", reply))
            else:
                events.append(("accepted", event.to_record()))
        else:
            assert isinstance(event, LinkError)
            events.append(("error", int(event.reason)))
    return events


def same_records(a: np.ndarray, b: np.ndarray) -> bool:
    """Field by field, nested records included; NaN equals NaN."""
    if a.dtype.names is None:
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    return all(same_records(a[name], b[name]) for name in a.dtype.names)


def same_events(a: list[tuple[str, object]], b: list[tuple[str, object]]) -> bool:
    if len(a) != len(b):
        return False
    for (ka, va), (kb, vb) in zip(a, b, strict=True):
        if ka != kb:
            return False
        if isinstance(va, np.ndarray):
            assert isinstance(vb, np.ndarray)
            if not same_records(va, vb):
                return False
        elif va != vb:
            return False
    return True


def run_both(role: Role, policy: LinkPolicy, steps: list[tuple[bytes, int]]) -> None:
    """Feed both receivers the same chunks; compare events and state after every chunk and watchdog."""
    ref = Endpoint(role, CONNECTION_ID, policy, 0)
    fast = CompiledReceiver(role, policy)
    state_codes = cl.STATE_CODES
    for data, t in steps:
        expected = reference_feed(ep=ref, data=data, t_rx=t)
        got = fast.feed(data, t)
        assert same_events(got, expected), (data.hex(), t, got, expected)
        err = ref.check_watchdog(t)
        wd = [("error", int(err.reason))] if err is not None else []
        assert fast.watchdog(t) == wd
        assert fast.state == state_codes[ref.state]
        if ref.error is not None:
            assert int(fast.rx[0]["error_reason"]) == int(ref.error.reason)


# ---------------------------------------------------------------- streams


def _frames_for(role: Role, draw: st.DrawFn) -> list[bytes]:
    """The peer's frames for this role's receiver, with link faults mixed in."""
    if role is Role.CONTROLLER:
        messages: st.SearchStrategy = robot_states
    elif role is Role.SENSOR_RECEIVER:
        messages = st.builds(
            detections,
            person_count=st.integers(0, 20),
            frame_counter=st.integers(0, 255),
            seed=st.integers(0, 9),
        ) | st.builds(
            SyncReply,
            st.integers(0, 0xFFFFFFFF),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(-(2**63), 2**63 - 1),
        )
    else:
        messages = commands
    n = draw(st.integers(1, 8))
    seq = draw(st.integers(0, 0xFFFFFFFF))
    t = draw(st.integers(0, 5 * MS))
    frames = []
    for _ in range(n):
        fault = draw(
            st.sampled_from(
                ["ok"] * 6
                + [
                    "repeat",
                    "skip",
                    "back",
                    "old",
                    "ahead",
                    "same_time",
                    "cid",
                    "version",
                    "type",
                    "flip",
                    "cut",
                ]
            )
        )
        msg = draw(messages)
        step = draw(st.integers(1, 3 * MS))
        if fault == "repeat":
            s, tt = seq - 1, t + step
        elif fault == "skip":
            s, tt = seq + draw(st.integers(1, 4)), t + step
        elif fault == "back":
            s, tt = seq - draw(st.integers(2, 100)), t + step
        elif fault == "same_time":
            s, tt = seq, t
        else:
            s, tt = seq, t + step
        if fault == "old":
            tt = t - 100 * MS
        if fault == "ahead":
            tt = t + 500 * MS
        cid = CONNECTION_ID if fault != "cid" else CONNECTION_ID ^ draw(st.integers(1, 0xFF))
        if fault in ("version", "type"):
            header = Header(
                PROTOCOL_VERSION + 1 if fault == "version" else PROTOCOL_VERSION,
                int(msg.message_type) if fault == "version" else draw(st.sampled_from([0, 1, 2, 3, 9])),
                cid,
                s % (1 << 32),
                tt,
            )
            wire = cobs_encode(encode_raw_frame(header, encode_payload(msg))) + b"\x00"
        else:
            wire = encode_frame(msg, cid, s % (1 << 32), tt)
        if fault == "flip":
            i = draw(st.integers(0, len(wire) - 2))
            wire = wire[:i] + bytes([wire[i] ^ draw(st.integers(1, 255))]) + wire[i + 1 :]
        if fault == "cut":
            wire = wire[: draw(st.integers(0, len(wire) - 1))]
        frames.append((wire, tt))
        seq = s + 1
        t = max(t, tt)
    return [w for w, _ in frames]


@st.composite
def streams(draw: st.DrawFn) -> tuple[Role, list[tuple[bytes, int]]]:
    role = draw(st.sampled_from(ROLES))
    frames = _frames_for(role, draw)
    blob = draw(st.sampled_from([b"", b"\x00"])) + b"".join(frames)
    if draw(st.booleans()):
        junk = draw(st.binary(max_size=40))
        at = draw(st.integers(0, len(blob)))
        blob = blob[:at] + junk + blob[at:]
    # split the bytes at random points, each chunk arriving a little later than the last
    cuts = sorted(set(draw(st.lists(st.integers(0, len(blob)), max_size=10))))
    chunks = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True)]
    t = draw(st.integers(0, 6 * MS))
    steps = []
    for chunk in chunks:
        t += draw(st.integers(0, 4 * MS))
        steps.append((chunk, t))
    return role, steps


@settings(max_examples=400, deadline=None)
@given(
    streams(),
    st.sampled_from([POLICY, LinkPolicy(max_delay_ns=2 * MS, watchdog_ns=5 * MS, tolerated_losses=2)]),
)
@pytest.mark.requirement("SR-LINK-11")
def test_compiled_receiver_decides_as_the_reference(
    stream: tuple[Role, list[tuple[bytes, int]]], policy: LinkPolicy
) -> None:
    role, steps = stream
    run_both(role, policy, steps)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ROLES), st.lists(st.tuples(st.binary(max_size=500), st.integers(0, 10**9)), max_size=6)
)
@pytest.mark.requirement("SR-LINK-11")
def test_garbage_is_judged_as_the_reference_judges_it(role: Role, chunks: list[tuple[bytes, int]]) -> None:
    steps = sorted(chunks, key=lambda c: c[1])
    run_both(role, POLICY, steps)


def test_a_long_run_without_delimiter_is_corruption_in_both() -> None:
    run_both(Role.CONTROLLER, POLICY, [(b"\x01" * 500, 1), (b"\x00", 2)])
    run_both(Role.CONTROLLER, POLICY, [(b"\x00" + b"\x05" * 300, 1), (b"\x05" * 300, 2)])


def test_reset_clears_the_latched_error_as_the_reference_does() -> None:
    fast = CompiledReceiver(Role.CONTROLLER, POLICY)
    ref = Endpoint(Role.CONTROLLER, CONNECTION_ID, POLICY, 0)
    bad = b"\x00" + encode_frame(RobotState(0.1, 0, False, 1), CONNECTION_ID + 1, 0, 1 * MS)
    assert fast.feed(bad, 2 * MS) == reference_feed(ref, bad, 2 * MS)
    assert fast.state == cl.STATE_CODES[ref.state]
    cl.reset(fast.rx, 0, 3 * MS)
    ref.reset(3 * MS)
    good = b"\x00" + encode_frame(RobotState(0.1, 0, False, 1), CONNECTION_ID, 5, 4 * MS)
    assert same_events(fast.feed(good, 4 * MS), reference_feed(ref, good, 4 * MS))
    assert fast.state == cl.STATE_CODES[ref.state]


@settings(max_examples=300, deadline=None)
@given(commands, st.integers(0, 0xFFFFFFFF), st.integers(-(2**62), 2**62))
def test_compiled_command_frames_are_the_reference_bytes(cmd: Command, seq: int, t_ns: int) -> None:
    rx = cl.new_receivers([Role.CONTROLLER], [CONNECTION_ID], [POLICY], 0)
    rx[0]["tx_seq"] = seq
    rx[0]["preamble"] = 0
    record = cmd.to_record(t_ns).astype(COMMAND_DTYPE)
    out = np.zeros(64, dtype=np.uint8)
    n = cl.encode_command(rx, 0, record, t_ns, np.zeros(64, dtype=np.uint8), out, TABLE)
    assert out[:n].tobytes() == encode_frame(Command.from_record(record[0]), CONNECTION_ID, seq, t_ns)
    assert int(rx[0]["tx_seq"]) == (seq + 1) % (1 << 32)


def test_the_first_command_frame_carries_a_preamble_delimiter() -> None:
    ref = Endpoint(Role.CONTROLLER, CONNECTION_ID, POLICY, 0)
    rx = cl.new_receivers([Role.CONTROLLER], [CONNECTION_ID], [POLICY], 0)
    record = Command(0, 0.25).to_record(7)
    out = np.zeros(64, dtype=np.uint8)
    for t in (7, 9):
        n = cl.encode_command(rx, 0, record, t, np.zeros(64, dtype=np.uint8), out, TABLE)
        assert out[:n].tobytes() == ref.send(Command.from_record(record[0]), t)


@given(st.integers(0, 0xFFFF))
def test_half_floats_decode_as_numpy_decodes_them(bits: int) -> None:
    expected = np.array([bits], dtype=np.uint16).view(np.float16).astype(np.float32)[0]
    got = np.array([cl.half_bits_to_float_bits(bits)], dtype=np.uint32).view(np.float32)[0]
    assert (np.isnan(expected) and np.isnan(got)) or expected == got


def test_detections_decode_every_person_field() -> None:
    det = detections(person_count=5, seed=3)
    assert isinstance(det, Detections)
    fast = CompiledReceiver(Role.SENSOR_RECEIVER, POLICY)
    ref = Endpoint(Role.SENSOR_RECEIVER, CONNECTION_ID, POLICY, 0)
    wire = b"\x00" + encode_frame(det, CONNECTION_ID, 0, 1 * MS)
    got, expected = fast.feed(wire, 2 * MS), reference_feed(ref, wire, 2 * MS)
    assert len(got) == 1 and same_events(got, expected)


@given(seq=st.integers(0, 0xFFFFFFFF), t_ns=st.integers(-(2**63), 2**63 - 1))
def test_compiled_sync_request_frames_are_the_reference_bytes(seq: int, t_ns: int) -> None:
    rx = cl.new_receivers([Role.SENSOR_RECEIVER], [CONNECTION_ID], [POLICY], 0)
    rx[0]["tx_seq"] = seq
    rx[0]["preamble"] = 0
    out = np.zeros(64, dtype=np.uint8)
    n = cl.encode_sync_request(rx, 0, t_ns, np.zeros(64, dtype=np.uint8), out, TABLE)
    assert out[:n].tobytes() == encode_frame(SyncRequest(), CONNECTION_ID, seq, t_ns)
    assert int(rx[0]["tx_seq"]) == (seq + 1) % 2**32
