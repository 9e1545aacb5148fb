"""Fault injectors for the HIL rig: message- and byte-level transforms of the frames the rig writes.

Each fault names the link it acts on (the sensor link carries DETECTIONS, the robot link ROBOT_STATE,
both towards the controller), the Reasons the controller must report, and the time it has to do so.
An injector is a small sans-IO state machine: the rig hands it every outgoing frame (`OutFrame`: the
message fields and their encoding) once the fault is active, and writes whatever it returns, at the
times it returns. A `Codec` (the link's encoder, wrapped by the rig) re-encodes changed fields.

The eight IEC 61784-3 error classes, plus sensor silence, robot heartbeat loss, garbage bytes and a
wrong connection ID, each as one small class below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from safety.config import CellConfig, ns
from safety.reasons import Reason

LinkName = Literal["sensor", "robot"]


@dataclass(frozen=True)
class OutFrame:
    """One frame the rig is about to write: the message fields and their encoding on the wire."""

    t_ns: int  # when the rig would write it
    msg_type: int
    connection_id: int
    seq: int
    t_sent_ns: int  # the sender timestamp in the frame
    payload: bytes
    wire: bytes  # the encoded frame, delimiters included


class Codec(Protocol):
    """What injectors need from the link: re-encode with changed fields, and damage a frame's content."""

    def encode(self, msg_type: int, connection_id: int, seq: int, t_sent_ns: int, payload: bytes) -> bytes:
        """A correctly framed and protected frame with these fields."""
        ...

    def flip_bit(self, wire: bytes, bit: int) -> bytes:
        """The frame with one bit of its protected content inverted, still correctly framed."""
        ...


Writes = list[tuple[int, bytes]]  # (write at ns, bytes), in order


def reencode(codec: Codec, frame: OutFrame, **changes: int | bytes) -> bytes:
    """The frame with some fields changed, encoded afresh (a valid CRC over the changed content)."""
    f = replace(frame, **changes)  # type: ignore[arg-type]
    return codec.encode(f.msg_type, f.connection_id, f.seq, f.t_sent_ns, f.payload)


class Injector:
    """Base: passes frames through unchanged. `acted` becomes the time it first changed something."""

    def __init__(self) -> None:
        self.acted_ns: int | None = None

    def _act(self, t_ns: int) -> None:
        if self.acted_ns is None:
            self.acted_ns = t_ns

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """What to write for this frame (possibly nothing, possibly more, possibly later)."""
        return [(frame.t_ns, frame.wire)]


class Once(Injector):
    """Acts on the first frame only, then passes frames through."""

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """Act on the first frame, pass the rest."""
        if self.acted_ns is not None:
            return [(frame.t_ns, frame.wire)]
        self._act(frame.t_ns)
        return self.first(frame, codec)

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The writes replacing the first frame."""
        raise NotImplementedError


class Corrupt(Once):
    """Corruption: one bit of the protected content inverted (the CRC no longer matches)."""

    def __init__(self, bit: int = 13) -> None:
        super().__init__()
        self.bit = bit

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The first frame with a bit flipped."""
        return [(frame.t_ns, codec.flip_bit(frame.wire, self.bit))]


class Repeat(Once):
    """Unintended repetition: the same frame (same sequence number) written twice."""

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The frame, then the very same bytes again."""
        return [(frame.t_ns, frame.wire), (frame.t_ns, frame.wire)]


class Swap(Injector):
    """Incorrect sequence: two consecutive frames written in the opposite order."""

    def __init__(self) -> None:
        super().__init__()
        self._held: OutFrame | None = None
        self._done = False

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """Hold the first frame, then write the second before it."""
        if self._done:
            return [(frame.t_ns, frame.wire)]
        if self._held is None:
            self._held = frame
            return []
        self._done = True
        self._act(frame.t_ns)
        return [(frame.t_ns, frame.wire), (frame.t_ns, self._held.wire)]


class Drop(Once):
    """Loss: one frame never written (the next one shows the gap in the sequence numbers)."""

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """Nothing."""
        return []


class Delay(Injector):
    """Unacceptable delay: every frame from now on written `delay_ns` late, order kept."""

    def __init__(self, delay_ns: int) -> None:
        super().__init__()
        self.delay_ns = delay_ns

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """The frame, later."""
        self._act(frame.t_ns)
        return [(frame.t_ns + self.delay_ns, frame.wire)]


class Insert(Once):
    """Insertion: an extra, correctly protected frame that no sender sent, ahead of the real one.

    It reuses the connection ID and a plausible sequence number far from the expected one, so only the
    sequence check can tell it from a real frame.
    """

    def __init__(self, seq_offset: int = 1000) -> None:
        super().__init__()
        self.seq_offset = seq_offset

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The inserted frame, then the real one."""
        extra = reencode(codec, frame, seq=frame.seq + self.seq_offset)
        return [(frame.t_ns, extra), (frame.t_ns, frame.wire)]


class Masquerade(Once):
    """Masquerade: a correctly protected frame of another message type posing on this link."""

    def __init__(self, msg_type: int) -> None:
        super().__init__()
        self.msg_type = msg_type

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The frame re-typed as another message."""
        return [(frame.t_ns, reencode(codec, frame, msg_type=self.msg_type))]


class Readdress(Once):
    """Addressing: a correctly protected frame carrying another connection ID (meant for someone else)."""

    def __init__(self, connection_id: int) -> None:
        super().__init__()
        self.connection_id = connection_id

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The frame with a foreign connection ID."""
        return [(frame.t_ns, reencode(codec, frame, connection_id=self.connection_id))]


class Garbage(Once):
    """Garbage bytes on the line: noise, then a delimiter, then the real frame."""

    def __init__(self, noise: bytes = bytes(range(0x41, 0x61)) + b"\xff\xfe\x07\x00") -> None:
        super().__init__()
        self.noise = noise

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """Noise, then the frame."""
        return [(frame.t_ns, self.noise), (frame.t_ns, frame.wire)]


class Silence(Injector):
    """The link goes silent: nothing is written from now on."""

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """Nothing."""
        self._act(frame.t_ns)
        return []


# ---------------------------------------------------------------------------------------------------
# Deadlines: how long after the fault acts the controller may take to command the stop


def _cycle_ns(cfg: CellConfig) -> int:
    return ns(cfg.controller.cycle_period_ms) + ns(cfg.controller.worst_step_ms)


def receipt_deadline_ns(cfg: CellConfig) -> int:
    """Errors seen on receipt: the link's delay tolerance for the frame, then one controller cycle."""
    return ns(cfg.link.max_delay_ms) + _cycle_ns(cfg)


def frame_gap_deadline_ns(cfg: CellConfig) -> int:
    """Errors seen at the next frame (loss): one sensor frame period more than a receipt error."""
    slowest = min(s.frame_rate_hz for s in cfg.sensors.values())
    return int(round(1e9 / slowest)) + receipt_deadline_ns(cfg)


def delay_deadline_ns(cfg: CellConfig) -> int:
    """A delayed frame is judged when it arrives: the injected delay plus a receipt error."""
    return delay_injected_ns(cfg) + receipt_deadline_ns(cfg)


def delay_injected_ns(cfg: CellConfig) -> int:
    """The delay injected: 10 ms beyond the link's tolerance."""
    return ns(cfg.link.max_delay_ms) + 10_000_000


def sensor_silence_deadline_ns(cfg: CellConfig) -> int:
    """A silent sensor must be noticed within the reaction time budget T_r."""
    from safety.budget import reaction_time_ns

    return reaction_time_ns(cfg)


def heartbeat_deadline_ns(cfg: CellConfig) -> int:
    """Robot states missing: the robot state timeout, then one controller cycle."""
    return ns(cfg.controller.robot_state_timeout_ms) + _cycle_ns(cfg)


# ---------------------------------------------------------------------------------------------------
# The catalogue


@dataclass(frozen=True)
class Fault:
    """A fault the rig can inject: which link, how, and what the controller must answer."""

    name: str
    description: str
    link: LinkName
    expected: frozenset[Reason]
    deadline_ns: Callable[[CellConfig], int]
    make: Callable[[CellConfig, int], Injector]  # (cell, foreign message type) -> a fresh injector
    tags: tuple[str, ...] = field(default=())


def _foreign_id(cfg: CellConfig, link: LinkName) -> int:
    """A connection ID that belongs to another link of the same cell (a misrouted frame)."""
    if link == "sensor":
        return cfg.link.connection_id
    return next(iter(cfg.sensors.values())).connection_id


UNKNOWN_CONNECTION_ID = 0xBEEF

FAULTS: tuple[Fault, ...] = (
    Fault(
        "corruption",
        "one bit of a detection frame inverted on the line",
        "sensor",
        frozenset({Reason.LINK_CORRUPTION}),
        receipt_deadline_ns,
        lambda cfg, other: Corrupt(),
        ("iec61784-3",),
    ),
    Fault(
        "repetition",
        "a detection frame delivered twice",
        "sensor",
        frozenset({Reason.LINK_REPETITION}),
        receipt_deadline_ns,
        lambda cfg, other: Repeat(),
        ("iec61784-3",),
    ),
    Fault(
        "incorrect_sequence",
        "two detection frames delivered in the wrong order",
        "sensor",
        frozenset({Reason.LINK_INCORRECT_SEQUENCE}),
        frame_gap_deadline_ns,
        lambda cfg, other: Swap(),
        ("iec61784-3",),
    ),
    Fault(
        "loss",
        "one detection frame lost",
        "sensor",
        frozenset({Reason.LINK_LOSS}),
        frame_gap_deadline_ns,
        lambda cfg, other: Drop(),
        ("iec61784-3",),
    ),
    Fault(
        "unacceptable_delay",
        "detection frames held back beyond the link's delay tolerance",
        "sensor",
        frozenset({Reason.LINK_UNACCEPTABLE_DELAY}),
        delay_deadline_ns,
        lambda cfg, other: Delay(delay_injected_ns(cfg)),
        ("iec61784-3",),
    ),
    Fault(
        "insertion",
        "a correctly protected frame nobody sent, with a sequence number far from the expected one",
        "sensor",
        frozenset({Reason.LINK_INSERTION}),
        receipt_deadline_ns,
        lambda cfg, other: Insert(),
        ("iec61784-3",),
    ),
    Fault(
        "masquerade",
        "a correctly protected frame of another message type posing as a detection frame",
        "sensor",
        frozenset({Reason.LINK_MASQUERADE}),
        receipt_deadline_ns,
        lambda cfg, other: Masquerade(other),
        ("iec61784-3",),
    ),
    Fault(
        "addressing",
        "a detection frame carrying the robot link's connection ID (misrouted)",
        "sensor",
        frozenset({Reason.LINK_ADDRESSING}),
        receipt_deadline_ns,
        lambda cfg, other: Readdress(_foreign_id(cfg, "sensor")),
        ("iec61784-3",),
    ),
    Fault(
        "sensor_silence",
        "the sensor stops sending",
        "sensor",
        frozenset({Reason.SENSOR_STALE, Reason.SENSOR_FRAMES_MISSED, Reason.LINK_TIMEOUT}),
        sensor_silence_deadline_ns,
        lambda cfg, other: Silence(),
    ),
    Fault(
        "robot_heartbeat_loss",
        "the robot stops sending its state",
        "robot",
        frozenset({Reason.ROBOT_STALE, Reason.ROBOT_NO_DATA, Reason.LINK_TIMEOUT}),
        heartbeat_deadline_ns,
        lambda cfg, other: Silence(),
    ),
    Fault(
        "garbage_bytes",
        "noise bytes on the robot line between two frames",
        "robot",
        frozenset({Reason.LINK_CORRUPTION}),
        receipt_deadline_ns,
        lambda cfg, other: Garbage(),
    ),
    Fault(
        "wrong_connection_id",
        f"a robot state frame with an unknown connection ID (0x{UNKNOWN_CONNECTION_ID:04X})",
        "robot",
        frozenset({Reason.LINK_ADDRESSING}),
        receipt_deadline_ns,
        lambda cfg, other: Readdress(UNKNOWN_CONNECTION_ID),
    ),
    Fault(
        "robot_corruption",
        "one bit of a robot state frame inverted on the line",
        "robot",
        frozenset({Reason.LINK_CORRUPTION}),
        receipt_deadline_ns,
        lambda cfg, other: Corrupt(bit=21),
    ),
)


def fault_names() -> list[str]:
    """Names of the catalogue's faults, in order."""
    return [f.name for f in FAULTS]


def get_fault(name: str) -> Fault:
    """The catalogue fault with this name (KeyError naming the known ones otherwise)."""
    for f in FAULTS:
        if f.name == name:
            return f
    raise KeyError(f"unknown fault {name!r}; known: {', '.join(fault_names())}")
