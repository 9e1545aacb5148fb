"""Fault injectors for the HIL rig: message- and byte-level transforms of the frames the rig writes.

Each fault names the link it acts on (the sensor link carries DETECTIONS, the robot link ROBOT_STATE,
both towards the controller), the Reasons the controller must report, and the time it has to do so.
An injector is a small sans-IO state machine: the rig hands it every outgoing frame (`OutFrame`: the
message fields and their encoding) once the fault is active, and writes whatever it returns, at the
times it returns. A `Codec` (the link's encoder, wrapped by the rig) re-encodes changed fields.

The eight IEC 61784-3 error classes, plus an unknown sensor index, sensor silence, robot heartbeat loss,
garbage bytes and a wrong connection ID, each as one small class below. Every run also checks that the
stop holds (latched) until the rig's reset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.reasons import Reason

LinkName = Literal["sensor", "robot"]


def robot_state_period_ns(cfg: CellConfig) -> int:
    """How often the rig's emulated robot reports its state without a command to answer: the cell's period."""
    return ns(cfg.robot.state_period_ms)


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
    """Base: passes frames through unchanged. `acted` becomes the time it first changed something.

    On the sensor link it sees DETECTIONS frames only, unless `every_frame` (then SYNC_REPLYs too).
    """

    every_frame = False

    def __init__(self) -> None:
        self.acted_ns: int | None = None

    def bind(self, stream: object) -> None:
        """The sensor stream it acts on (hil.session.SensorStream); only clock faults need it."""

    def end(self) -> None:
        """The run is over: undo what would outlast it (a clock's drift, a muted sync)."""

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


class Reorder(Injector):
    """Incorrect sequence: a frame arrives again after its successor (an out-of-order, late copy).

    Unlike swapping two frames, this never shows a sequence gap first, so the receiver names it an
    incorrect sequence whatever its tolerance for lost frames.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held: OutFrame | None = None
        self._done = False

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """Pass the first frame and remember it; write it again right after the second."""
        if self._done:
            return [(frame.t_ns, frame.wire)]
        if self._held is None:
            self._held = frame
            return [(frame.t_ns, frame.wire)]
        self._done = True
        self._act(frame.t_ns)
        return [(frame.t_ns, frame.wire), (frame.t_ns, self._held.wire)]


class Drop(Injector):
    """Loss: `count` consecutive frames never written (the next one shows the gap in the sequence)."""

    def __init__(self, count: int = 1) -> None:
        super().__init__()
        self.count = count
        self._dropped = 0

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """Nothing for the first `count` frames, then pass."""
        if self._dropped >= self.count:
            return [(frame.t_ns, frame.wire)]
        self._act(frame.t_ns)
        self._dropped += 1
        return []


class Delay(Injector):
    """Unacceptable delay: every frame from now on written `delay_ns` late, order kept."""

    every_frame = True  # sync replies too, or they would overtake the frames it holds back

    def __init__(self, delay_ns: int) -> None:
        super().__init__()
        self.delay_ns = delay_ns

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """The frame, later."""
        self._act(frame.t_ns)
        return [(frame.t_ns + self.delay_ns, frame.wire)]


class Insert(Once):
    """Insertion: an extra, correctly protected frame that the peer never sent, ahead of the real one.

    It carries the expected connection ID and the next sequence number, but a sender time from long ago
    (a frame replayed from elsewhere): only the sender-time check can tell it from a real frame.
    """

    def __init__(self, age_ns: int = 10_000_000_000) -> None:
        super().__init__()
        self.age_ns = age_ns

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The inserted frame, then the real one."""
        extra = reencode(codec, frame, t_sent_ns=frame.t_sent_ns - self.age_ns)
        return [(frame.t_ns, extra), (frame.t_ns, frame.wire)]


class ClockStep(Injector):
    """The sender's clock steps by delta_ns: this frame and every later one carries a sender time moved by
    it (a clock set by hand, or by a bad time sync). Stepped back, the next frame's sender time does not
    increase: insertion, whichever clock the link's delay check uses."""

    def __init__(self, delta_ns: int) -> None:
        super().__init__()
        self.delta_ns = delta_ns

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """The frame with its sender time moved by the step."""
        self._act(frame.t_ns)
        return [(frame.t_ns, reencode(codec, frame, t_sent_ns=frame.t_sent_ns + self.delta_ns))]


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


class Reindex(Once):
    """Addressing inside the payload: a correctly protected detection frame naming a sensor index the cell
    does not have (a misconfigured camera, or frames meant for another cell)."""

    def __init__(self, sensor_index: int) -> None:
        super().__init__()
        self.sensor_index = sensor_index

    def first(self, frame: OutFrame, codec: Codec) -> Writes:
        """The frame with its payload's sensor index changed."""
        from cobotguard.safety.link.codec import decode_detections, encode_detections

        message = replace(decode_detections(frame.payload), sensor_index=self.sensor_index)
        return [(frame.t_ns, reencode(codec, frame, payload=encode_detections(message)))]


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


class SensorClockFault(Injector):
    """Acts on the sensor's own clock (a `sensor.clock.OwnClock`) when the first frame after it is armed
    goes out; the frames themselves pass unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.stream: object | None = None

    def bind(self, stream: object) -> None:
        """The sensor stream whose clock this fault acts on."""
        self.stream = stream

    def push(self, frame: OutFrame, codec: Codec) -> Writes:
        """Act on the clock at the first frame, pass every frame."""
        if self.acted_ns is None:
            self._act(frame.t_ns)
            self.act_on(self.stream)
        return [(frame.t_ns, frame.wire)]

    def act_on(self, stream: object) -> None:
        """What the fault does to the stream's clock."""
        raise NotImplementedError


class ClockJump(SensorClockFault):
    """The sensor's clock is set forward or back by `step_ns` while running."""

    def __init__(self, step_ns: int) -> None:
        super().__init__()
        self.step_ns = step_ns

    def act_on(self, stream: object) -> None:
        """Jump."""
        stream.clock.step(self.step_ns)  # type: ignore[attr-defined]


class ClockDrift(SensorClockFault):
    """The sensor's clock runs at `drift_ppm` from now on (beyond the declared limit); restored after."""

    def __init__(self, drift_ppm: float) -> None:
        super().__init__()
        self.drift_ppm = drift_ppm
        self._before: float | None = None

    def act_on(self, stream: object) -> None:
        """Change the drift."""
        clock = stream.clock  # type: ignore[attr-defined]
        self._before = clock.drift_ppm
        clock.set_drift(self.drift_ppm)

    def end(self) -> None:
        """Back to the drift before."""
        if self._before is not None:
            self.stream.clock.set_drift(self._before)  # type: ignore[union-attr]


class SyncMute(SensorClockFault):
    """The sensor stops answering SYNC_REQUESTs (its detections keep coming); restored after."""

    def act_on(self, stream: object) -> None:
        """Stop answering."""
        stream.answer_sync = False  # type: ignore[attr-defined]

    def end(self) -> None:
        """Answer again."""
        if self.stream is not None:
            self.stream.answer_sync = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------
# Deadlines: how long after the fault acts the controller may take to command the stop


def _cycle_ns(cfg: CellConfig) -> int:
    """From a fault seen on receipt to its stop written: T_cycle on the tick (robot-link errors wait for
    the next release even when the loop wakes on data) + T_step."""
    return timing.controller_stage_ns(ns(cfg.controller.cycle_period_ms), ns(cfg.controller.worst_step_ms))


def link_max_delay_ns(cfg: CellConfig, link: LinkName) -> int:
    """The receiving endpoint's delay tolerance on this link (safety.link.setup decides it)."""
    from cobotguard.safety.link.endpoint import Role
    from cobotguard.safety.link.setup import robot_link_policy

    if link == "sensor":  # on converted times for a sensor on its own clock (its receiver checks none)
        return max(timing.sensor_link_max_delay_ns(sensor) for sensor in cfg.sensors.values())
    return robot_link_policy(cfg, Role.CONTROLLER).max_delay_ns


def receipt_deadline_ns(cfg: CellConfig) -> int:
    """Errors seen on receipt: the link's delay tolerance for the frame, then one controller cycle."""
    return ns(cfg.link.max_delay_ms) + _cycle_ns(cfg)


def delay_injected_ns(cfg: CellConfig, link: LinkName) -> int:
    """The delay injected: 10 ms beyond the receiving end's tolerance."""
    return link_max_delay_ns(cfg, link) + 10_000_000


def sensor_silence_deadline_ns(cfg: CellConfig) -> int:
    """A silent sensor must be noticed within the reaction time budget T_r."""
    from cobotguard.safety.budget import reaction_time_ns

    return reaction_time_ns(cfg)


def _own_clock_sensor(cfg: CellConfig) -> Any:
    """The first sensor (faults act on its link), which these faults need on a clock of its own."""
    sensor = next(iter(cfg.sensors.values()))
    if sensor.clock != "own":
        raise ValueError("the first sensor shares the controller's clock: no clock to fault")
    return sensor


def _clock_policy(cfg: CellConfig) -> Any:
    from cobotguard.safety.link.setup import sensor_clock_policy

    _own_clock_sensor(cfg)
    return sensor_clock_policy(cfg, next(iter(cfg.sensors)))


def clock_jump_deadline_ns(cfg: CellConfig) -> int:
    """A jump shows in the next frame that leaves the sensor (a detection or a sync reply): within a frame
    period or a sync period, whichever is shorter, then its time on the link and one controller cycle."""
    sensor, policy = _own_clock_sensor(cfg), _clock_policy(cfg)
    first = min(timing.frame_period_ns(sensor.frame_rate_hz), policy.period_ns)
    return first + timing.sensor_link_max_delay_ns(sensor) + _cycle_ns(cfg)


def sync_lost_deadline_ns(cfg: CellConfig) -> int:
    """The next request goes out within a sync period; unanswered for the timeout, one cycle to stop."""
    policy = _clock_policy(cfg)
    return policy.period_ns + policy.timeout_ns + _cycle_ns(cfg)


EXCESS_DRIFT_PPM = 300.0  # the drift fault's clock runs this much beyond the declared limit


def excess_drift_ppm(cfg: CellConfig) -> float:
    """The drift fault's rate: the declared limit plus EXCESS_DRIFT_PPM."""
    return float(_own_clock_sensor(cfg).clock_max_drift_ppm or 0.0) + EXCESS_DRIFT_PPM


def drift_deadline_ns(cfg: CellConfig) -> int:
    """Beyond the declared drift by EXCESS_DRIFT_PPM, the estimates part by more than two bounds (each at
    most the error limit) within 2 x limit / excess; then the next reply (a sync period and a timeout)
    shows it and one controller cycle stops."""
    policy = _clock_policy(cfg)
    apart_ns = -(-2 * policy.limit_ns * 10**6 // int(EXCESS_DRIFT_PPM))
    return apart_ns + policy.period_ns + policy.timeout_ns + _cycle_ns(cfg)


def heartbeat_deadline_ns(cfg: CellConfig) -> int:
    """Robot states missing: the robot state timeout, then one controller cycle, then a receipt error."""
    return ns(cfg.controller.robot_state_timeout_ms) + receipt_deadline_ns(cfg)


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
    make: Callable[[CellConfig], Injector]  # a fresh injector for this cell
    tags: tuple[str, ...] = field(default=())
    # False: a link endpoint alone cannot tell (the frame is valid on the wire); the controller, which
    # knows the cell's sensors, must
    endpoint_detects: bool = True


def _foreign_id(cfg: CellConfig, link: LinkName) -> int:
    """A connection ID that belongs to another link of the same cell (a misrouted frame)."""
    if link == "sensor":
        return cfg.link.connection_id
    return next(iter(cfg.sensors.values())).connection_id


UNKNOWN_CONNECTION_ID = 0xBEEF
COMMAND_TYPE = 1  # safety.link.messages.MessageType.COMMAND: what a masquerading frame claims to be
IEC = ("iec61784-3",)
CLOCK = ("sensor-clock",)  # need a first sensor with clock = "own"; skipped on a shared clock

FAULTS: tuple[Fault, ...] = (
    Fault(
        "corruption",
        "one bit of a detection frame inverted on the line",
        "sensor",
        frozenset({Reason.LINK_CORRUPTION}),
        receipt_deadline_ns,
        lambda cfg: Corrupt(),
        IEC,
    ),
    Fault(
        "repetition",
        "a detection frame delivered twice",
        "sensor",
        frozenset({Reason.LINK_REPETITION}),
        receipt_deadline_ns,
        lambda cfg: Repeat(),
        IEC,
    ),
    Fault(
        "incorrect_sequence",
        "a detection frame delivered again after its successor",
        "sensor",
        frozenset({Reason.LINK_INCORRECT_SEQUENCE}),
        receipt_deadline_ns,
        lambda cfg: Reorder(),
        IEC,
    ),
    Fault(
        "loss",
        "one robot state frame lost (the robot link tolerates no loss)",
        "robot",
        frozenset({Reason.LINK_LOSS}),
        lambda cfg: robot_state_period_ns(cfg) + receipt_deadline_ns(cfg),
        lambda cfg: Drop(1),
        IEC,
    ),
    Fault(
        "unacceptable_delay",
        "detection frames held back 10 ms beyond the sensor link's delay tolerance",
        "sensor",
        frozenset({Reason.LINK_UNACCEPTABLE_DELAY}),
        lambda cfg: delay_injected_ns(cfg, "sensor") + receipt_deadline_ns(cfg),
        lambda cfg: Delay(delay_injected_ns(cfg, "sensor")),
        IEC,
    ),
    Fault(
        "insertion",
        "a correctly protected frame with the next sequence number but a sender time from long ago",
        "sensor",
        frozenset({Reason.LINK_INSERTION}),
        receipt_deadline_ns,
        lambda cfg: Insert(),
        IEC,
    ),
    Fault(
        "masquerade",
        "a correctly protected COMMAND frame posing on the sensor link",
        "sensor",
        frozenset({Reason.LINK_MASQUERADE}),
        receipt_deadline_ns,
        lambda cfg: Masquerade(COMMAND_TYPE),
        IEC,
    ),
    Fault(
        "addressing",
        "a detection frame carrying the robot link's connection ID (misrouted)",
        "sensor",
        frozenset({Reason.LINK_ADDRESSING}),
        receipt_deadline_ns,
        lambda cfg: Readdress(_foreign_id(cfg, "sensor")),
        IEC,
    ),
    Fault(
        "unknown_sensor_index",
        "a correctly protected detection frame naming a sensor index the cell does not have; the stop "
        "must hold (latched) while valid frames follow",
        "sensor",
        frozenset({Reason.LINK_ADDRESSING}),
        receipt_deadline_ns,
        lambda cfg: Reindex(len(cfg.sensors)),
        endpoint_detects=False,
    ),
    Fault(
        "sensor_silence",
        "the sensor stops sending",
        "sensor",
        frozenset({Reason.SENSOR_STALE, Reason.SENSOR_FRAMES_MISSED, Reason.LINK_TIMEOUT}),
        sensor_silence_deadline_ns,
        lambda cfg: Silence(),
    ),
    Fault(
        "robot_heartbeat_loss",
        "the robot stops sending its state",
        "robot",
        frozenset({Reason.ROBOT_STALE, Reason.ROBOT_NO_DATA, Reason.LINK_TIMEOUT}),
        heartbeat_deadline_ns,
        lambda cfg: Silence(),
    ),
    Fault(
        "garbage_bytes",
        "noise bytes on the robot line between two frames",
        "robot",
        frozenset({Reason.LINK_CORRUPTION}),
        receipt_deadline_ns,
        lambda cfg: Garbage(),
    ),
    Fault(
        "wrong_connection_id",
        f"a robot state frame with an unknown connection ID (0x{UNKNOWN_CONNECTION_ID:04X})",
        "robot",
        frozenset({Reason.LINK_ADDRESSING}),
        receipt_deadline_ns,
        lambda cfg: Readdress(UNKNOWN_CONNECTION_ID),
    ),
    Fault(
        "sensor_clock_jump_forward",
        "the sensor's own clock is set 1 s forward while running",
        "sensor",
        frozenset({Reason.SENSOR_CLOCK_STEP}),
        clock_jump_deadline_ns,
        lambda cfg: ClockJump(1_000_000_000),
        CLOCK,
        endpoint_detects=False,  # the controller's clock estimate tells, not the endpoint
    ),
    Fault(
        "sensor_clock_jump_back",
        "the sensor's own clock is set 1 s back while running (its sender times go back: the link may "
        "name the insertion before the estimate sees the step)",
        "sensor",
        frozenset({Reason.SENSOR_CLOCK_STEP, Reason.LINK_INSERTION}),
        clock_jump_deadline_ns,
        lambda cfg: ClockJump(-1_000_000_000),
        CLOCK,
        endpoint_detects=False,  # the controller's clock estimate tells, not the endpoint
    ),
    Fault(
        "sensor_clock_drift",
        f"the sensor's own clock drifts {EXCESS_DRIFT_PPM:.0f} ppm beyond its declared clock_max_drift_ppm",
        "sensor",
        frozenset({Reason.SENSOR_CLOCK_DRIFT}),
        drift_deadline_ns,
        lambda cfg: ClockDrift(excess_drift_ppm(cfg)),
        CLOCK,
        endpoint_detects=False,  # the controller's clock estimate tells, not the endpoint
    ),
    Fault(
        "sensor_sync_silence",
        "the sensor stops answering the controller's clock sync requests (its frames keep coming)",
        "sensor",
        frozenset({Reason.SENSOR_CLOCK_SYNC_LOST}),
        sync_lost_deadline_ns,
        lambda cfg: SyncMute(),
        CLOCK,
        endpoint_detects=False,  # the controller's clock estimate tells, not the endpoint
    ),
    Fault(
        "robot_state_delay",
        "robot state frames held back 10 ms beyond the robot link's delay tolerance (with the robot on its "
        "own clock: beyond the echo limit)",
        "robot",
        frozenset({Reason.LINK_UNACCEPTABLE_DELAY, Reason.LINK_TIMEOUT, Reason.ROBOT_STALE}),
        lambda cfg: delay_injected_ns(cfg, "robot") + receipt_deadline_ns(cfg),
        lambda cfg: Delay(delay_injected_ns(cfg, "robot")),
    ),
    Fault(
        "robot_clock_back",
        "the robot's clock steps back by 1 s (its sender times stop increasing)",
        "robot",
        frozenset({Reason.LINK_INSERTION}),
        receipt_deadline_ns,
        lambda cfg: ClockStep(-1_000_000_000),
        IEC,
    ),
    Fault(
        "robot_corruption",
        "one bit of a robot state frame inverted on the line",
        "robot",
        frozenset({Reason.LINK_CORRUPTION}),
        receipt_deadline_ns,
        lambda cfg: Corrupt(bit=21),
    ),
)


def fault_names() -> list[str]:
    """Names of the catalogue's faults, in order."""
    return [f.name for f in FAULTS]


def applies(fault: Fault, cfg: CellConfig) -> bool:
    """Whether the fault can be injected into this cell (clock faults: a first sensor on its own clock)."""
    return "sensor-clock" not in fault.tags or next(iter(cfg.sensors.values())).clock == "own"


def get_fault(name: str) -> Fault:
    """The catalogue fault with this name (KeyError naming the known ones otherwise)."""
    for f in FAULTS:
        if f.name == name:
            return f
    raise KeyError(f"unknown fault {name!r}; known: {', '.join(fault_names())}")


# ---------------------------------------------------------------------------------------------------
# The link's codec, as injectors need it


class LinkCodec:
    """`Codec` over safety.link: re-encode frames with any header values, damage their content."""

    def encode(self, msg_type: int, connection_id: int, seq: int, t_sent_ns: int, payload: bytes) -> bytes:
        """A correctly framed and CRC-protected frame with these fields."""
        from cobotguard.safety.link.cobs import cobs_encode
        from cobotguard.safety.link.codec import DELIMITER, PROTOCOL_VERSION, Header, encode_raw_frame

        header = Header(PROTOCOL_VERSION, msg_type, connection_id, seq % (1 << 32), t_sent_ns)
        return cobs_encode(encode_raw_frame(header, payload)) + DELIMITER

    def flip_bit(self, wire: bytes, bit: int) -> bytes:
        """The frame with one bit of header, payload or CRC inverted, re-framed (COBS stays valid)."""
        from cobotguard.safety.link.cobs import cobs_decode, cobs_encode

        lead = len(wire) - len(wire.lstrip(b"\x00"))
        raw = bytearray(cobs_decode(wire[lead:].rstrip(b"\x00")))
        raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
        return wire[:lead] + cobs_encode(bytes(raw)) + b"\x00"

    def out_frame(self, t_ns: int, wire: bytes) -> OutFrame:
        """Describe a frame the rig's endpoint produced (a leading delimiter is kept in `wire`)."""
        from cobotguard.safety.link.codec import parse_frame

        header, payload = parse_frame(wire.strip(b"\x00"))
        return OutFrame(
            t_ns, header.message_type, header.connection_id, header.seq, header.t_sent_ns, payload, wire
        )
