"""A link endpoint: sans-IO glue between bytes and messages (h11 style).

Feed it received bytes with `feed(data, now_ns)`, take events with `next_event()` until NEED_DATA, turn
messages into bytes with `send(message, now_ns)`, and call `check_watchdog(now_ns)` every cycle after
draining events. No port, no thread, no clock inside: time is passed in.

Any error (the eight IEC 61784-3 classes or the watchdog) latches the endpoint into ReceiverState.ERROR,
reported once by next_event (or by check_watchdog) as a LinkError and kept in `.error`; further bytes are
dropped until `reset(now_ns)`. ERROR means stop. Sending stays possible in every state (the controller
must keep commanding a stop; the robot must keep reporting its state).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np

from cobotguard.safety.link import acceptance
from cobotguard.safety.link.acceptance import DelayCheck, EchoRing, LinkPolicy, PeerHistory
from cobotguard.safety.link.codec import (
    DELIMITER,
    MAX_FRAME_BYTES,
    SEQ_MODULO,
    FrameError,
    decode_payload,
    encode_frame,
    parse_frame,
)
from cobotguard.safety.link.crc import warm_up
from cobotguard.safety.link.messages import (
    Command,
    Message,
    MessageType,
    RobotState,
    SyncReply,
    SyncRequest,
)
from cobotguard.safety.link.states import Input, ReceiverState, transition
from cobotguard.safety.reasons import Reason


class Role(Enum):
    """Which end of which link this endpoint is; decides what it sends and what it accepts."""

    CONTROLLER = "controller"  # robot link, controller end: sends COMMAND, accepts ROBOT_STATE
    ROBOT = "robot"  # robot link, robot end: sends ROBOT_STATE, accepts COMMAND
    SENSOR = "sensor"  # sensor link, sensor end: sends DETECTIONS and SYNC_REPLY, accepts SYNC_REQUEST
    # sensor link, controller end: accepts DETECTIONS and SYNC_REPLY, sends SYNC_REQUEST
    SENSOR_RECEIVER = "sensor_receiver"


ROLE_SENDS: dict[Role, frozenset[MessageType]] = {
    Role.CONTROLLER: frozenset({MessageType.COMMAND}),
    Role.ROBOT: frozenset({MessageType.ROBOT_STATE}),
    Role.SENSOR: frozenset({MessageType.DETECTIONS, MessageType.SYNC_REPLY}),
    Role.SENSOR_RECEIVER: frozenset({MessageType.SYNC_REQUEST}),
}
ROLE_ACCEPTS: dict[Role, frozenset[MessageType]] = {
    Role.CONTROLLER: frozenset({MessageType.ROBOT_STATE}),
    Role.ROBOT: frozenset({MessageType.COMMAND}),
    Role.SENSOR: frozenset({MessageType.SYNC_REQUEST}),
    Role.SENSOR_RECEIVER: frozenset({MessageType.DETECTIONS, MessageType.SYNC_REPLY}),
}


class LocalProtocolError(ValueError):
    """We (the local application) tried to break the protocol, e.g. send a type our role must not send."""


class _NeedData(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = _NeedData.NEED_DATA
"""Returned by next_event when no complete frame is waiting."""
NeedData = Literal[_NeedData.NEED_DATA]


@dataclass(frozen=True, slots=True)
class Received:
    """A frame that passed every check: the message and its link metadata."""

    message: Message
    seq: int
    t_sent_ns: int  # sender's timestamp from the header
    t_received_ns: int  # now_ns of the feed() call that completed the frame
    connection_id: int
    # Aged by echo (DelayCheck.ECHO): the send time, on our clock, of the command the state echoes (0: it
    # echoes none, its age is unknown); the record's sender time. None: the header's sender time counts.
    t_origin_ns: int | None = None

    def to_record(self) -> np.ndarray:
        """The message as a one-element record array (COMMAND_DTYPE, ROBOT_STATE_DTYPE, DETECTION_DTYPE)."""
        if isinstance(self.message, Command):
            return self.message.to_record(self.t_sent_ns)
        if isinstance(self.message, SyncRequest | SyncReply):
            raise TypeError(f"{self.message.message_type.name} has no record form")
        t_sent = self.t_sent_ns if self.t_origin_ns is None else self.t_origin_ns
        return self.message.to_record(t_sent, self.t_received_ns)


@dataclass(frozen=True, slots=True)
class LinkError:
    """A detected link error. The fault lies with the channel or the peer; the link is latched (stop)."""

    reason: Reason  # one of Reason.LINK_*
    detail: str
    t_ns: int  # when it was detected (receive time of the frame, or the watchdog check time)


Event = Received | LinkError


@dataclass(slots=True)
class LinkStats:
    """Counters for reports and tests."""

    bytes_received: int = 0
    bytes_dropped: int = 0  # before synchronisation or while latched
    frames_accepted: int = 0
    frames_rejected: int = 0
    frames_sent: int = 0


@dataclass(slots=True)
class _Chunk:
    data: bytes | None  # None: no delimiter within MAX_FRAME_BYTES
    t_received_ns: int


class Endpoint:
    """One end of a link. See the module docstring for the calling pattern."""

    def __init__(self, role: Role, connection_id: int, policy: LinkPolicy, now_ns: int) -> None:
        """Create an endpoint in AWAITING_FIRST; compiles the CRC kernel if needed (do it before arming)."""
        if not 1 <= connection_id <= 0xFFFF:
            raise ValueError(f"connection_id: expected 1..65535, got {connection_id}")
        warm_up()
        self.role = role
        self.connection_id = connection_id
        self.policy = policy
        self.stats = LinkStats()
        self._sends = ROLE_SENDS[role]
        self._accepts = ROLE_ACCEPTS[role]
        self._tx_seq = 0
        self._preamble = True  # the first frame is preceded by a delimiter so a fresh receiver syncs at once
        self._state = ReceiverState.AWAITING_FIRST
        self._error: LinkError | None = None
        self._last: PeerHistory | None = None
        self._echo_ring = EchoRing(policy.echo_ring) if policy.delay_check is DelayCheck.ECHO else None
        self._last_echo = -1
        self._last_valid_ns = now_ns
        self._buffer = bytearray()
        self._synced = False
        self._chunks: deque[_Chunk] = deque()

    # ------------------------------------------------------------ state

    @property
    def state(self) -> ReceiverState:
        """AWAITING_FIRST (no data yet), CONNECTED, or ERROR (latched)."""
        return self._state

    @property
    def error(self) -> LinkError | None:
        """The latched error, None unless state is ERROR."""
        return self._error

    @property
    def synced(self) -> bool:
        """Whether a delimiter was received since the last reset: a frame that arrives now is read whole."""
        return self._synced

    @property
    def last_received_seq(self) -> int:
        """Sequence number of the last accepted frame, -1 if none since the last reset."""
        return -1 if self._last is None else self._last.seq

    @property
    def next_seq(self) -> int:
        """Sequence number the next sent frame will carry."""
        return self._tx_seq

    def _enter(self, event: Input) -> None:
        self._state = transition(self._state, event)

    def _latch(self, reason: Reason, detail: str, t_ns: int) -> LinkError:
        err = LinkError(reason, detail, t_ns)
        self._enter(Input.FRAME_REJECTED if reason is not Reason.LINK_TIMEOUT else Input.WATCHDOG_EXPIRED)
        self._error = err
        self._chunks.clear()
        self._buffer.clear()
        return err

    # ------------------------------------------------------------ receiving

    def feed(self, data: bytes, now_ns: int) -> None:
        """Hand over received bytes; frames completed by them are stamped with now_ns."""
        self.stats.bytes_received += len(data)
        if self._state is ReceiverState.ERROR:
            self.stats.bytes_dropped += len(data)
            return
        parts = bytes(data).split(DELIMITER)
        for part in parts[:-1]:
            chunk = bytes(self._buffer) + part
            self._buffer.clear()
            if not self._synced:
                self._synced = True  # bytes before the first delimiter may be the tail of a frame
                self.stats.bytes_dropped += len(chunk)
            elif chunk:  # empty chunks (extra delimiters) are allowed and ignored
                self._chunks.append(_Chunk(chunk, now_ns))
        self._buffer += parts[-1]
        if len(self._buffer) > MAX_FRAME_BYTES - 1:
            self._buffer.clear()
            self._chunks.append(_Chunk(None, now_ns))

    def next_event(self) -> Event | NeedData:
        """The next Received or LinkError, or NEED_DATA. A LinkError is returned once; then NEED_DATA."""
        if self._state is ReceiverState.ERROR or not self._chunks:
            return NEED_DATA
        chunk = self._chunks.popleft()
        try:
            return self._accept(chunk)
        except FrameError as exc:
            self.stats.frames_rejected += 1
            return self._latch(exc.reason, exc.detail, chunk.t_received_ns)

    def _accept(self, chunk: _Chunk) -> Received:
        if chunk.data is None:
            raise FrameError(Reason.LINK_CORRUPTION, f"no frame delimiter within {MAX_FRAME_BYTES} bytes")
        header, payload = parse_frame(chunk.data)
        for verdict in (
            acceptance.check_addressing(header, self.connection_id),
            acceptance.check_role(header, self._accepts, self._sends),
        ):
            if verdict is not None:
                raise FrameError(*verdict)
        message = decode_payload(header.message_type, payload)
        verdict = acceptance.check_sequence(header, self._last, self.policy.tolerated_losses)
        if verdict is not None:
            raise FrameError(*verdict)
        origin: int | None = None
        if self._echo_ring is not None and isinstance(message, RobotState):
            verdict, origin = acceptance.check_echo(
                message.last_command_seq, self._last_echo, chunk.t_received_ns, self._echo_ring, self.policy
            )
        elif self.policy.delay_check is DelayCheck.SENDER_TIME:
            verdict = acceptance.check_delay(header, chunk.t_received_ns, self.policy)
        if verdict is not None:
            raise FrameError(*verdict)
        self._enter(Input.FRAME_ACCEPTED)
        self._last = PeerHistory(header.seq, header.t_sent_ns)
        if origin is not None and isinstance(message, RobotState) and message.last_command_seq >= 0:
            self._last_echo = message.last_command_seq
        self._last_valid_ns = chunk.t_received_ns
        self.stats.frames_accepted += 1
        return Received(
            message, header.seq, header.t_sent_ns, chunk.t_received_ns, header.connection_id, origin
        )

    def reject(self, reason: Reason, detail: str, t_ns: int) -> LinkError:
        """Latch an error the application found in an accepted frame (e.g. a sensor line carrying another
        sensor's frames: LINK_ADDRESSING); as any link error, it holds until `reset`."""
        self.stats.frames_rejected += 1
        return self._latch(reason, detail, t_ns)

    def check_watchdog(self, now_ns: int) -> LinkError | None:
        """Latch LINK_TIMEOUT if connected and nothing valid arrived for longer than the watchdog time.

        Call after draining next_event(). Returns the new error, or None.
        """
        if self._state is not ReceiverState.CONNECTED:
            return None
        silent_ns = now_ns - self._last_valid_ns
        if silent_ns <= self.policy.watchdog_ns:
            return None
        return self._latch(
            Reason.LINK_TIMEOUT,
            f"no valid frame for {silent_ns} ns, watchdog {self.policy.watchdog_ns} ns",
            now_ns,
        )

    def reset(self, now_ns: int) -> None:
        """Explicit reset (operator action): clear the error and all receive state; back to AWAITING_FIRST."""
        self._enter(Input.RESET)
        self._error = None
        self._last = None
        self._last_echo = -1
        self._last_valid_ns = now_ns
        self._buffer.clear()
        self._chunks.clear()
        self._synced = False

    # ------------------------------------------------------------ sending

    def send(self, message: Message, now_ns: int) -> bytes:
        """The bytes to write for `message`, stamped with now_ns and the next sequence number."""
        if message.message_type not in self._sends:
            raise LocalProtocolError(
                f"a {self.role.value} endpoint does not send {message.message_type.name}"
            )
        frame = encode_frame(message, self.connection_id, self._tx_seq, now_ns)
        if self._echo_ring is not None:
            self._echo_ring.record(self._tx_seq, now_ns)
        self._tx_seq = (self._tx_seq + 1) % SEQ_MODULO
        self.stats.frames_sent += 1
        if self._preamble:
            self._preamble = False
            return DELIMITER + frame
        return frame


def link_error_reasons() -> frozenset[Reason]:
    """Every Reason an endpoint can report."""
    return frozenset(r for r in Reason if r.name.startswith("LINK_"))
