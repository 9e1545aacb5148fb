"""Bytes <-> messages: the frame layout, plain encode/decode functions chosen from tables.

Frame on the wire: COBS(header | payload | crc32) followed by one 0x00 delimiter. All integers little endian.
header (16 bytes): version u8, message type u8, connection ID u16, sequence number u32, sender time i64 ns.
The CRC (see safety.link.crc) covers header and payload. docs/protocol.md specifies every byte.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import NamedTuple, NoReturn

import numpy as np

from cobotguard.safety.link.cobs import CobsError, cobs_decode, cobs_encode, cobs_encoded_size
from cobotguard.safety.link.crc import TABLE, crc32, unframe_kernel
from cobotguard.safety.link.messages import (
    Command,
    Detections,
    Message,
    MessageType,
    RobotState,
    SyncReply,
    SyncRequest,
)
from cobotguard.safety.reasons import Reason
from cobotguard.safety.records import MAX_PERSONS, PERSON_DTYPE

PROTOCOL_VERSION = 1
DELIMITER = b"\x00"

HEADER = struct.Struct("<BBHIq")
CRC = struct.Struct("<I")
COMMAND_PAYLOAD = struct.Struct("<BBBbbbH")  # kind, stop category, reason, sensor, person, zone, mm/s
ROBOT_STATE_PAYLOAD = struct.Struct("<HBBI")  # mm/s, mode, flags, last command sequence
DETECTIONS_FIXED = struct.Struct("<BBBIiqq")  # sensor, counter, count, health, inference us, t_exp, t_inf
SYNC_REPLY_PAYLOAD = struct.Struct("<Iqq")  # request sequence, request sender time, sensor receive time
WIRE_PERSON_DTYPE = np.dtype(
    [("x_m", "<f4"), ("y_m", "<f4"), ("z_d_m", "<f4"), ("score", "<f4"), ("box", "<f2", (4,))]
)

HEADER_BYTES = HEADER.size  # 16
CRC_BYTES = CRC.size  # 4
PERSON_WIRE_BYTES = WIRE_PERSON_DTYPE.itemsize  # 24

FLAG_AT_REST = 0x01
FLAG_HAS_COMMAND = 0x02  # last_command_seq is meaningful

SEQ_MODULO = 1 << 32


def frame_wire_bytes(payload_bytes: int) -> int:
    """Bytes on the wire for a payload of this size: COBS(header + payload + CRC) plus the delimiter."""
    return cobs_encoded_size(HEADER_BYTES + payload_bytes + CRC_BYTES) + 1


def detections_frame_bytes(person_records: int) -> int:
    """Bytes on the wire for a DETECTIONS frame carrying this many person records."""
    return frame_wire_bytes(DETECTIONS_FIXED.size + PERSON_WIRE_BYTES * person_records)


COMMAND_FRAME_BYTES = frame_wire_bytes(COMMAND_PAYLOAD.size)  # 30
ROBOT_STATE_FRAME_BYTES = frame_wire_bytes(ROBOT_STATE_PAYLOAD.size)  # 30
MAX_DETECTIONS_FRAME_BYTES = detections_frame_bytes(MAX_PERSONS)  # 434
SYNC_REQUEST_FRAME_BYTES = frame_wire_bytes(0)  # 22
SYNC_REPLY_FRAME_BYTES = frame_wire_bytes(SYNC_REPLY_PAYLOAD.size)  # 42
MAX_FRAME_BYTES = max(COMMAND_FRAME_BYTES, ROBOT_STATE_FRAME_BYTES, MAX_DETECTIONS_FRAME_BYTES)


class FrameError(ValueError):
    """A received frame is unusable; `reason` is the IEC 61784-3 error class it is evidence of."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason
        self.detail = detail


class Header(NamedTuple):
    """The link fields of a frame (a named tuple: built for every frame, so cheap to construct)."""

    version: int
    message_type: int
    connection_id: int
    seq: int
    t_sent_ns: int


# ---------------------------------------------------------------- quantisation (documented precision)


def _mm_per_s_down(speed_mps: float) -> int:
    return math.floor(round(speed_mps * 1000.0, 6))


def _mm_per_s_up(speed_mps: float) -> int:
    return math.ceil(round(speed_mps * 1000.0, 6))


# ---------------------------------------------------------------- payload encoders


def encode_command(msg: Command) -> bytes:
    """COMMAND payload (8 bytes)."""
    return COMMAND_PAYLOAD.pack(
        msg.kind,
        msg.stop_category,
        msg.reason,
        msg.reason_sensor,
        msg.reason_person,
        msg.reason_zone,
        _mm_per_s_down(msg.speed_limit_mps),
    )


def encode_robot_state(msg: RobotState) -> bytes:
    """ROBOT_STATE payload (8 bytes)."""
    has_command = msg.last_command_seq >= 0
    flags = (FLAG_AT_REST if msg.at_rest else 0) | (FLAG_HAS_COMMAND if has_command else 0)
    return ROBOT_STATE_PAYLOAD.pack(
        _mm_per_s_up(msg.speed_mps), msg.mode, flags, msg.last_command_seq if has_command else 0
    )


def encode_detections(msg: Detections) -> bytes:
    """DETECTIONS payload (27 bytes + 24 per person record)."""
    fixed = DETECTIONS_FIXED.pack(
        msg.sensor_index,
        msg.frame_counter,
        msg.person_count,
        msg.health,
        msg.inference_us,
        msg.t_exposure_ns,
        msg.t_inference_done_ns,
    )
    persons = msg.persons
    wire = np.empty(persons.shape[0], dtype=WIRE_PERSON_DTYPE)
    wire["x_m"] = persons["x_m"]
    wire["y_m"] = persons["y_m"]
    z_d = persons["z_d_m"]
    z32 = z_d.astype(np.float32)
    low = z32.astype(np.float64) < z_d  # round the uncertainty up: it must never shrink in transit
    z32[low] = np.nextafter(z32[low], np.float32(np.inf))
    wire["z_d_m"] = z32
    wire["score"] = persons["score"]
    wire["box"] = persons["box"]
    return fixed + wire.tobytes()


def encode_sync_request(msg: SyncRequest) -> bytes:
    """SYNC_REQUEST payload (empty: the header carries the request's number and time)."""
    return b""


def encode_sync_reply(msg: SyncReply) -> bytes:
    """SYNC_REPLY payload (20 bytes)."""
    return SYNC_REPLY_PAYLOAD.pack(msg.request_seq, msg.request_t_ns, msg.t_request_received_ns)


# ---------------------------------------------------------------- payload decoders


def _expect_length(payload: bytes, expected: int, what: str) -> None:
    if len(payload) != expected:
        raise FrameError(
            Reason.LINK_CORRUPTION, f"{what} payload is {len(payload)} bytes, expected {expected}"
        )


def decode_command(payload: bytes) -> Command:
    """Command from its payload; raises FrameError."""
    _expect_length(payload, COMMAND_PAYLOAD.size, "COMMAND")
    kind, cat, reason, sensor, person, zone, mm = COMMAND_PAYLOAD.unpack(payload)
    try:
        return Command(kind, mm / 1000.0, cat, reason, sensor, person, zone)
    except ValueError as exc:
        raise FrameError(Reason.LINK_CORRUPTION, f"COMMAND payload invalid: {exc}") from None


def decode_robot_state(payload: bytes) -> RobotState:
    """RobotState from its payload; raises FrameError."""
    _expect_length(payload, ROBOT_STATE_PAYLOAD.size, "ROBOT_STATE")
    mm, mode, flags, last_seq = ROBOT_STATE_PAYLOAD.unpack(payload)
    if flags & ~(FLAG_AT_REST | FLAG_HAS_COMMAND):
        raise FrameError(Reason.LINK_CORRUPTION, f"ROBOT_STATE flags 0x{flags:02x} has reserved bits set")
    if not flags & FLAG_HAS_COMMAND and last_seq != 0:
        raise FrameError(Reason.LINK_CORRUPTION, "ROBOT_STATE last command sequence set without its flag")
    try:
        return RobotState(
            mm / 1000.0, mode, bool(flags & FLAG_AT_REST), last_seq if flags & FLAG_HAS_COMMAND else -1
        )
    except ValueError as exc:
        raise FrameError(Reason.LINK_CORRUPTION, f"ROBOT_STATE payload invalid: {exc}") from None


def decode_detections(payload: bytes) -> Detections:
    """Detections from their payload; raises FrameError."""
    if len(payload) < DETECTIONS_FIXED.size:
        raise FrameError(
            Reason.LINK_CORRUPTION,
            f"DETECTIONS payload is {len(payload)} bytes, at least {DETECTIONS_FIXED.size}",
        )
    sensor, counter, count, health, inference_us, t_exp, t_inf = DETECTIONS_FIXED.unpack_from(payload)
    records = min(count, MAX_PERSONS)
    _expect_length(
        payload, DETECTIONS_FIXED.size + PERSON_WIRE_BYTES * records, f"DETECTIONS ({count} persons)"
    )
    wire = np.frombuffer(payload, dtype=WIRE_PERSON_DTYPE, count=records, offset=DETECTIONS_FIXED.size)
    persons = np.zeros(records, dtype=PERSON_DTYPE)
    for name in ("x_m", "y_m", "z_d_m", "score", "box"):
        persons[name] = wire[name]
    try:
        return Detections(sensor, counter, count, health, inference_us, t_exp, t_inf, persons)
    except ValueError as exc:
        raise FrameError(Reason.LINK_CORRUPTION, f"DETECTIONS payload invalid: {exc}") from None


def decode_sync_request(payload: bytes) -> SyncRequest:
    """SyncRequest from its (empty) payload; raises FrameError."""
    _expect_length(payload, 0, "SYNC_REQUEST")
    return SyncRequest()


def decode_sync_reply(payload: bytes) -> SyncReply:
    """SyncReply from its payload; raises FrameError."""
    _expect_length(payload, SYNC_REPLY_PAYLOAD.size, "SYNC_REPLY")
    return SyncReply(*SYNC_REPLY_PAYLOAD.unpack(payload))


# ---------------------------------------------------------------- tables

ENCODERS: dict[MessageType, Callable[..., bytes]] = {
    MessageType.COMMAND: encode_command,
    MessageType.ROBOT_STATE: encode_robot_state,
    MessageType.DETECTIONS: encode_detections,
    MessageType.SYNC_REQUEST: encode_sync_request,
    MessageType.SYNC_REPLY: encode_sync_reply,
}
DECODERS: dict[MessageType, Callable[[bytes], Message]] = {
    MessageType.COMMAND: decode_command,
    MessageType.ROBOT_STATE: decode_robot_state,
    MessageType.DETECTIONS: decode_detections,
    MessageType.SYNC_REQUEST: decode_sync_request,
    MessageType.SYNC_REPLY: decode_sync_reply,
}


# ---------------------------------------------------------------- frames


def encode_payload(message: Message) -> bytes:
    """The payload bytes of a message."""
    return ENCODERS[message.message_type](message)


def encode_raw_frame(header: Header, payload: bytes) -> bytes:
    """header | payload | CRC, before COBS. For fault injection, any header values are allowed."""
    head = HEADER.pack(
        header.version, header.message_type, header.connection_id, header.seq, header.t_sent_ns
    )
    body = head + payload
    return body + CRC.pack(crc32(body))


def encode_frame(message: Message, connection_id: int, seq: int, t_sent_ns: int) -> bytes:
    """A complete frame on the wire (COBS-encoded, with the trailing 0x00) for one message."""
    header = Header(PROTOCOL_VERSION, int(message.message_type), connection_id, seq % SEQ_MODULO, t_sent_ns)
    return cobs_encode(encode_raw_frame(header, encode_payload(message))) + DELIMITER


def parse_frame(chunk: bytes) -> tuple[Header, bytes]:
    """Header and payload of one received frame (COBS-encoded, delimiter removed); checks COBS, length,
    CRC and version, not the payload. Raises FrameError."""
    if len(chunk) > MAX_FRAME_BYTES - 1:
        raise FrameError(Reason.LINK_CORRUPTION, f"frame of {len(chunk)} bytes exceeds {MAX_FRAME_BYTES - 1}")
    src = np.frombuffer(chunk, dtype=np.uint8)
    raw = np.empty(len(chunk), dtype=np.uint8)
    size = unframe_kernel(src, len(chunk), raw, TABLE)
    if size < 0:
        _explain_unframe_failure(chunk)
    if size < HEADER_BYTES + CRC_BYTES:
        raise FrameError(Reason.LINK_CORRUPTION, f"frame of {size} bytes is shorter than header + CRC")
    body_size = size - CRC_BYTES
    header = Header(*HEADER.unpack_from(raw.data))
    if header.version != PROTOCOL_VERSION:
        raise FrameError(
            Reason.LINK_MASQUERADE, f"protocol version {header.version}, expected {PROTOCOL_VERSION}"
        )
    return header, raw[HEADER_BYTES:body_size].tobytes()


def _explain_unframe_failure(chunk: bytes) -> NoReturn:
    """Raise the detailed FrameError for a chunk the compiled kernel rejected (the slow, reference path)."""
    try:
        raw = cobs_decode(chunk)
    except CobsError as exc:
        raise FrameError(Reason.LINK_CORRUPTION, f"framing: {exc}") from None
    if len(raw) < HEADER_BYTES + CRC_BYTES:
        raise FrameError(Reason.LINK_CORRUPTION, f"frame of {len(raw)} bytes is shorter than header + CRC")
    (received,) = CRC.unpack_from(raw, len(raw) - CRC_BYTES)
    computed = crc32(raw[:-CRC_BYTES])
    raise FrameError(
        Reason.LINK_CORRUPTION, f"CRC 0x{received:08x} does not match the computed 0x{computed:08x}"
    )


def decode_payload(message_type: int, payload: bytes) -> Message:
    """The message of a given type from its payload; an unknown type is a masquerade. Raises FrameError."""
    try:
        kind = MessageType(message_type)
    except ValueError:
        raise FrameError(Reason.LINK_MASQUERADE, f"unknown message type {message_type}") from None
    return DECODERS[kind](payload)


def decode_frame(chunk: bytes) -> tuple[Header, Message]:
    """Header and message of one received frame without its delimiter; context-free checks only."""
    header, payload = parse_frame(chunk)
    return header, decode_payload(header.message_type, payload)
