"""Encoding and decoding: round trips, documented precision, frame sizes, and errors named by class."""

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from link_support import RUN, STATE, STOP, commands, detection_messages, detections, robot_states

from cobotguard.safety.link import (
    COMMAND_FRAME_BYTES,
    MAX_DETECTIONS_FRAME_BYTES,
    ROBOT_STATE_FRAME_BYTES,
    Command,
    Detections,
    FrameError,
    Header,
    RobotState,
    decode_frame,
    detections_frame_bytes,
    encode_frame,
    encode_payload,
    encode_raw_frame,
)
from cobotguard.safety.link.cobs import cobs_decode, cobs_encode
from cobotguard.safety.link.codec import PROTOCOL_VERSION
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import COMMAND_DTYPE, DETECTION_DTYPE, MAX_PERSONS


def roundtrip(message, seq=5, t=123_456_789):  # type: ignore[no-untyped-def]
    header, decoded = decode_frame(encode_frame(message, 0x0101, seq, t)[:-1])
    assert header == Header(PROTOCOL_VERSION, int(message.message_type), 0x0101, seq, t)
    return decoded


def test_frame_size_constants_match_real_frames() -> None:
    assert len(encode_frame(RUN, 1, 0, 0)) == COMMAND_FRAME_BYTES == 30
    assert len(encode_frame(STATE, 1, 0, 0)) == ROBOT_STATE_FRAME_BYTES == 30
    full = detections(MAX_PERSONS)
    assert len(encode_frame(full, 1, 0, 0)) <= MAX_DETECTIONS_FRAME_BYTES == detections_frame_bytes(16) == 434
    assert len(encode_frame(detections(0), 1, 0, 0)) <= detections_frame_bytes(0)


@given(commands)
def test_command_round_trip_rounds_speed_down(cmd: Command) -> None:
    out = roundtrip(cmd)
    assert out.speed_limit_mps <= cmd.speed_limit_mps + 1e-12
    assert cmd.speed_limit_mps - out.speed_limit_mps < 0.001
    assert (out.kind, out.stop_category, out.reason) == (cmd.kind, cmd.stop_category, cmd.reason)
    assert (out.reason_sensor, out.reason_person, out.reason_zone) == (
        cmd.reason_sensor,
        cmd.reason_person,
        cmd.reason_zone,
    )
    assert roundtrip(out) == out  # quantisation is idempotent


@given(robot_states)
def test_robot_state_round_trip_rounds_speed_up(state: RobotState) -> None:
    out = roundtrip(state)
    # up, after rounding to 1e-6 mm/s to absorb binary noise (0.25 m/s is 250.00000000000003 mm/s): a speed
    # may lose at most 0.5e-9 m/s, e.g. 2.5e-12 m/s travels as 0 (hypothesis found it)
    assert out.speed_mps >= state.speed_mps - 0.5e-9
    assert out.speed_mps - state.speed_mps < 0.001
    assert (out.mode, out.at_rest, out.last_command_seq) == (
        state.mode,
        state.at_rest,
        state.last_command_seq,
    )
    assert roundtrip(out) == out


@given(detection_messages())
def test_detections_round_trip_within_documented_precision(msg: Detections) -> None:
    out = roundtrip(msg)
    assert isinstance(out, Detections)
    assert out._scalars() == msg._scalars()
    a, b = msg.persons, out.persons
    assert b.shape == a.shape
    np.testing.assert_allclose(b["x_m"], a["x_m"], atol=5e-6)  # float32 within +-50 m
    np.testing.assert_allclose(b["y_m"], a["y_m"], atol=5e-6)
    assert (b["z_d_m"] >= a["z_d_m"]).all()  # uncertainty never shrinks
    np.testing.assert_allclose(b["z_d_m"], a["z_d_m"], rtol=1.2e-7, atol=1e-30)
    np.testing.assert_array_equal(b["score"], a["score"])  # float32 already: exact, NaN included
    np.testing.assert_allclose(b["box"], a["box"], atol=2.5e-4)  # float16 in [0, 1]
    assert roundtrip(out) == out


def test_exact_values_survive() -> None:
    assert roundtrip(STOP) == STOP
    assert roundtrip(STATE) == STATE
    assert roundtrip(Command(CommandKind.SLOW, 0.29)).speed_limit_mps == 0.29  # no binary-rounding loss


def test_too_many_persons_travel_as_reported() -> None:
    msg = detections(20)
    out = roundtrip(msg)
    assert out.person_count == 20 and out.persons.shape[0] == MAX_PERSONS


def test_records_convert_both_ways() -> None:
    msg = detections(3)
    rec = msg.to_record(t_sent_ns=1_000, t_received_ns=2_000)
    assert rec.dtype == DETECTION_DTYPE and rec["t_sent_ns"][0] == 1_000 and rec["t_received_ns"][0] == 2_000
    assert Detections.from_record(rec[0]) == msg
    cmd_rec = STOP.to_record(t_ns=77)
    assert cmd_rec.dtype == COMMAND_DTYPE and cmd_rec["t_ns"][0] == 77
    assert Command.from_record(cmd_rec[0]) == STOP


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Command(CommandKind.RUN, math.nan), "speed_limit_mps"),
        (lambda: Command(CommandKind.RUN, -0.1), "speed_limit_mps"),
        (lambda: Command(9, 0.1), "kind"),  # type: ignore[arg-type]
        (lambda: Command(CommandKind.RUN, 0.1, reason_zone=200), "reason_zone"),
        (lambda: RobotState(0.1, CommandKind.RUN, 1, 0), "at_rest"),  # type: ignore[arg-type]
        (lambda: RobotState(0.1, CommandKind.RUN, True, 2**32), "last_command_seq"),
        (lambda: detections(3).__class__(0, 256, 0, 0, 0, 0, 0), "frame_counter"),
        (lambda: Detections(0, 1, 3, 0, 0, 0, 0), "persons"),
    ],
)
def test_messages_validate_themselves(build, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=field):
        build()


def _reframe(message_type: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    return cobs_encode(encode_raw_frame(Header(version, message_type, 1, 0, 0), payload))


@pytest.mark.parametrize(
    ("chunk", "reason", "words"),
    [
        (b"\x02\x05", Reason.LINK_CORRUPTION, "shorter"),
        (b"\x05\x11", Reason.LINK_CORRUPTION, "framing"),
        (b"\x01" * 500, Reason.LINK_CORRUPTION, "exceeds"),
        (_reframe(1, encode_payload(RUN), version=2), Reason.LINK_MASQUERADE, "version 2"),
        (_reframe(9, encode_payload(RUN)), Reason.LINK_MASQUERADE, "unknown message type 9"),
        (_reframe(1, encode_payload(RUN) + b"\x00"), Reason.LINK_CORRUPTION, "9 bytes, expected 8"),
        (_reframe(1, struct.pack("<BBBbbbH", 7, 1, 0, -1, -1, -1, 0)), Reason.LINK_CORRUPTION, "kind"),
        (_reframe(2, struct.pack("<HBBI", 0, 0, 0x80, 0)), Reason.LINK_CORRUPTION, "reserved"),
        (_reframe(3, encode_payload(detections(2))[:-1]), Reason.LINK_CORRUPTION, "2 persons"),
    ],
)
def test_bad_frames_name_their_error_class(chunk: bytes, reason: Reason, words: str) -> None:
    with pytest.raises(FrameError, match=words) as info:
        decode_frame(chunk)
    assert info.value.reason is reason


@given(st.integers(min_value=0, max_value=28 * 8 - 1))
def test_any_single_bit_flip_is_a_corruption(bit: int) -> None:
    raw = bytearray(cobs_decode(encode_frame(STOP, 1, 3, 4)[:-1]))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FrameError) as info:
        decode_frame(cobs_encode(bytes(raw)))
    assert info.value.reason is Reason.LINK_CORRUPTION
