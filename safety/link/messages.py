"""The link messages as small immutable types that validate themselves when constructed.

Link metadata (sequence number, sender timestamp, connection ID) is not part of a message: the endpoint adds
it when sending and reports it beside the message when receiving (see `safety.link.endpoint.Received`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from cobotguard.safety.reasons import CommandKind, Reason, StopCategory
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    DETECTION_DTYPE,
    MAX_PERSONS,
    PERSON_DTYPE,
    ROBOT_STATE_DTYPE,
)

MAX_WIRE_SPEED_MPS = 65.535  # speeds travel as uint16 millimetres per second


class MessageType(IntEnum):
    """Message type byte of the frame header."""

    COMMAND = 1  # controller -> robot, every cycle; also the controller's heartbeat
    ROBOT_STATE = 2  # robot -> controller
    DETECTIONS = 3  # sensor -> controller, one detection frame
    SYNC_REQUEST = 4  # controller -> sensor with a clock of its own: asks for the sensor's time
    SYNC_REPLY = 5  # sensor -> controller: echoes a SYNC_REQUEST with the sensor's receive time


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _int_in(name: str, value: int, lo: int, hi: int) -> None:
    if type(value) is int and lo <= value <= hi:
        return  # the common case, checked fast
    _require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and lo <= value <= hi,
        f"{name}: expected an integer in [{lo}, {hi}], got {value!r}",
    )


_MEMBERS: dict[type[IntEnum], dict[int, IntEnum]] = {
    cls: {int(m): m for m in cls} for cls in (CommandKind, StopCategory, Reason)
}


def _enum(name: str, cls: type[IntEnum], value: int) -> IntEnum:
    if type(value) is cls:
        return value  # already a member
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    member = _MEMBERS[cls].get(int(value)) if ok else None
    if member is None:
        raise ValueError(f"{name}: {value!r} is not a {cls.__name__} value")
    return member


def _speed(name: str, value: float) -> None:
    if type(value) is float and 0.0 <= value <= MAX_WIRE_SPEED_MPS:
        return  # the common case (NaN fails the comparison and gets the full check)
    _require(
        isinstance(value, (int, float, np.floating))
        and math.isfinite(value)
        and 0.0 <= value <= MAX_WIRE_SPEED_MPS,
        f"{name}: expected a finite speed in [0, {MAX_WIRE_SPEED_MPS}] m/s, got {value!r}",
    )


@dataclass(frozen=True, slots=True)
class Command:
    """Controller -> robot, once per cycle. Speeds travel in whole mm/s, rounded down (never faster)."""

    kind: CommandKind
    speed_limit_mps: float = 0.0
    stop_category: StopCategory = StopCategory.CAT1
    reason: Reason = Reason.NONE
    reason_sensor: int = -1
    reason_person: int = -1
    reason_zone: int = -1

    message_type = MessageType.COMMAND

    def __post_init__(self) -> None:
        for name, cls in (("kind", CommandKind), ("stop_category", StopCategory), ("reason", Reason)):
            value = getattr(self, name)
            if type(value) is not cls:
                object.__setattr__(self, name, _enum(name, cls, value))
        _speed("speed_limit_mps", self.speed_limit_mps)
        for name in ("reason_sensor", "reason_person", "reason_zone"):
            _int_in(name, getattr(self, name), -1, 127)

    @classmethod
    def from_record(cls, record: np.void | np.ndarray) -> Command:
        """From one COMMAND_DTYPE record (t_ns becomes the frame's sender timestamp, not a field)."""
        return cls(
            kind=CommandKind(int(record["kind"])),
            speed_limit_mps=float(record["speed_limit_mps"]),
            stop_category=StopCategory(int(record["stop_category"])),
            reason=Reason(int(record["reason"])),
            reason_sensor=int(record["reason_sensor"]),
            reason_person=int(record["reason_person"]),
            reason_zone=int(record["reason_zone"]),
        )

    def to_record(self, t_ns: int) -> np.ndarray:
        """As a one-element COMMAND_DTYPE array, with t_ns (use the frame's sender timestamp)."""
        out = np.zeros(1, dtype=COMMAND_DTYPE)
        out["kind"] = self.kind
        out["speed_limit_mps"] = self.speed_limit_mps
        out["stop_category"] = self.stop_category
        out["reason"] = self.reason
        out["reason_sensor"] = self.reason_sensor
        out["reason_person"] = self.reason_person
        out["reason_zone"] = self.reason_zone
        out["t_ns"] = t_ns
        return out


@dataclass(frozen=True, slots=True)
class RobotState:
    """Robot -> controller. Speed travels in whole mm/s, rounded up (never slower than it is).

    last_command_seq is the link sequence number of the last command the robot accepted, -1 for none.
    """

    speed_mps: float
    mode: CommandKind
    at_rest: bool
    last_command_seq: int = -1

    message_type = MessageType.ROBOT_STATE

    def __post_init__(self) -> None:
        _speed("speed_mps", self.speed_mps)
        object.__setattr__(self, "mode", _enum("mode", CommandKind, self.mode))
        _require(
            isinstance(self.at_rest, (bool, np.bool_)), f"at_rest: expected a bool, got {self.at_rest!r}"
        )
        object.__setattr__(self, "at_rest", bool(self.at_rest))
        _int_in("last_command_seq", self.last_command_seq, -1, 0xFFFFFFFF)

    def to_record(self, t_sent_ns: int, t_received_ns: int) -> np.ndarray:
        """As a one-element ROBOT_STATE_DTYPE array with the link timestamps filled in."""
        out = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        out["speed_mps"] = self.speed_mps
        out["mode"] = self.mode
        out["at_rest"] = int(self.at_rest)
        out["last_command_seq"] = self.last_command_seq
        out["t_sent_ns"] = t_sent_ns
        out["t_received_ns"] = t_received_ns
        return out


def _frozen_persons(persons: np.ndarray) -> np.ndarray:
    arr = np.array(persons, dtype=PERSON_DTYPE, copy=True).reshape(-1)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Sensor -> controller: one DETECTION_DTYPE frame without t_sent_ns (the frame's sender timestamp)
    and t_received_ns (set by the receiver).

    `persons` holds min(person_count, MAX_PERSONS) PERSON_DTYPE records: a count above the maximum travels
    as reported, so the controller can stop on it; nothing is silently dropped. Wire precision: x, y, score
    as float32 (x, y within 1 um inside 16 m), z_d as float32 rounded up, box as float16 (about 1/4000);
    NaN and infinity travel unchanged so the safety step can reject them.
    """

    sensor_index: int
    frame_counter: int
    person_count: int
    health: int
    inference_us: int
    t_exposure_ns: int
    t_inference_done_ns: int
    persons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=PERSON_DTYPE))

    message_type = MessageType.DETECTIONS

    def __post_init__(self) -> None:
        _int_in("sensor_index", self.sensor_index, 0, 255)
        _int_in("frame_counter", self.frame_counter, 0, 255)
        _int_in("person_count", self.person_count, 0, 255)
        _int_in("health", self.health, 0, 0xFFFFFFFF)
        _int_in("inference_us", self.inference_us, -(2**31), 2**31 - 1)
        _int_in("t_exposure_ns", self.t_exposure_ns, -(2**63), 2**63 - 1)
        _int_in("t_inference_done_ns", self.t_inference_done_ns, -(2**63), 2**63 - 1)
        persons = _frozen_persons(self.persons)
        expected = min(self.person_count, MAX_PERSONS)
        _require(
            persons.shape[0] == expected,
            f"persons: expected min(person_count, {MAX_PERSONS}) = {expected} records, "
            f"got {persons.shape[0]}",
        )
        object.__setattr__(self, "persons", persons)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        return self._scalars() == other._scalars() and self.persons.tobytes() == other.persons.tobytes()

    def __hash__(self) -> int:
        return hash((self._scalars(), self.persons.tobytes()))

    def _scalars(self) -> tuple[int, ...]:
        return (
            int(self.sensor_index),
            int(self.frame_counter),
            int(self.person_count),
            int(self.health),
            int(self.inference_us),
            int(self.t_exposure_ns),
            int(self.t_inference_done_ns),
        )

    @classmethod
    def from_record(cls, record: np.void | np.ndarray) -> Detections:
        """From one DETECTION_DTYPE record (t_sent_ns and t_received_ns are not carried as fields)."""
        count = int(record["person_count"])
        return cls(
            sensor_index=int(record["sensor_index"]),
            frame_counter=int(record["frame_counter"]),
            person_count=count,
            health=int(record["health"]),
            inference_us=int(record["inference_us"]),
            t_exposure_ns=int(record["t_exposure_ns"]),
            t_inference_done_ns=int(record["t_inference_done_ns"]),
            persons=np.asarray(record["persons"])[: min(count, MAX_PERSONS)],
        )

    def to_record(self, t_sent_ns: int, t_received_ns: int) -> np.ndarray:
        """As a one-element DETECTION_DTYPE array with the link timestamps filled in."""
        out = np.zeros(1, dtype=DETECTION_DTYPE)
        out["sensor_index"] = self.sensor_index
        out["frame_counter"] = self.frame_counter
        out["person_count"] = self.person_count
        out["health"] = self.health
        out["inference_us"] = self.inference_us
        out["t_exposure_ns"] = self.t_exposure_ns
        out["t_inference_done_ns"] = self.t_inference_done_ns
        out["t_sent_ns"] = t_sent_ns
        out["t_received_ns"] = t_received_ns
        out["persons"][0, : self.persons.shape[0]] = self.persons
        return out


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Controller -> sensor: the controller's send time and the request's number are the frame's header
    (sender time and sequence number); the payload is empty."""

    message_type = MessageType.SYNC_REQUEST


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Sensor -> controller, answering one SYNC_REQUEST: its sequence number and sender time echoed, and
    the sensor's clock when the request arrived. The sensor's reply time is the frame's sender time."""

    request_seq: int
    request_t_ns: int
    t_request_received_ns: int

    message_type = MessageType.SYNC_REPLY

    def __post_init__(self) -> None:
        _int_in("request_seq", self.request_seq, 0, 0xFFFFFFFF)
        _int_in("request_t_ns", self.request_t_ns, -(2**63), 2**63 - 1)
        _int_in("t_request_received_ns", self.t_request_received_ns, -(2**63), 2**63 - 1)


Message = Command | RobotState | Detections | SyncRequest | SyncReply
