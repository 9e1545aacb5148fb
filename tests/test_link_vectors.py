"""The test vectors published in docs/protocol.md, checked against the implementation."""

import re
from pathlib import Path

import numpy as np
import pytest

from cobotguard.safety.link import (
    NEED_DATA,
    Command,
    DelayCheck,
    Detections,
    Endpoint,
    LinkError,
    LinkPolicy,
    Received,
    ReceiverState,
    RobotState,
    Role,
    SyncReply,
    SyncRequest,
    drain,
    encode_frame,
)
from cobotguard.safety.link.cobs import cobs_decode
from cobotguard.safety.link.crc import CHECK_VALUE, crc32
from cobotguard.safety.reasons import CommandKind, HealthFlag, Reason, StopCategory
from cobotguard.safety.records import PERSON_DTYPE

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _persons() -> np.ndarray:
    p = np.zeros(2, dtype=PERSON_DTYPE)
    p[0] = (1.5, -2.25, 0.1, 0.875, (0.25, 0.5, 0.75, 0.625))
    p[1] = (-0.75, 3.0, 0.05, 0.5, (0.0, 0.125, 1.0, 0.25))
    return p


STOP_CAT1 = StopCategory.CAT1
VECTORS = {
    "command_run": (Command(CommandKind.RUN, 1.5), 0x0101, 0, 1_000_000_000),
    "command_protective_stop": (
        Command(CommandKind.PROTECTIVE_STOP, 0.0, STOP_CAT1, Reason.PERSON_IN_PROTECTIVE_ZONE, 0, 2, 1),
        0x0101,
        1,
        1_002_000_000,
    ),
    "command_slow_seq_wrap": (
        Command(CommandKind.SLOW, 0.1, StopCategory.CAT2, Reason.PERSON_IN_WARNING_ZONE, 0, 0, 3),
        0x0101,
        0xFFFFFFFF,
        5_000_000_000_000,
    ),
    "robot_state_moving": (RobotState(0.25, CommandKind.RUN, False, 1), 0x0101, 0, 1_001_000_000),
    "robot_state_at_rest_no_command": (
        RobotState(0.0, CommandKind.FAULT_STOP, True, -1),
        0x0101,
        17,
        1_003_000_000,
    ),
    "robot_state_own_clock": (RobotState(0.25, CommandKind.RUN, False, 2), 0x0101, 3, 3_601_012_101_200),
    "detections_empty": (Detections(0, 255, 0, 0, 3100, 990_000_000, 996_000_000), 101, 5, 1_000_000_000),
    "detections_two_persons": (
        Detections(1, 12, 2, 0, 22_000, 980_000_000, 1_002_000_000, _persons()),
        102,
        6,
        1_004_000_000,
    ),
    "sync_request": (SyncRequest(), 0x0065, 7, 3_600_000_000_000),
    "sync_reply": (SyncReply(7, 3_600_000_000_000, 3_558_000_200_000), 0x0065, 42, 3_558_000_250_000),
    "detections_lens_covered": (
        Detections(0, 0, 0, int(HealthFlag.LENS_COVERED | HealthFlag.FROZEN), 0, 0, 0),
        101,
        256,
        1_234_567_890_123,
    ),
}


def documented_vectors() -> dict[str, dict[str, str]]:
    """name -> {header, payload, crc, wire} from the ```vector blocks of the protocol page."""
    out: dict[str, dict[str, str]] = {}
    for block in re.findall(r"```vector\n(.*?)```", DOC.read_text(), flags=re.S):
        lines = dict(line.split(None, 1) for line in block.strip().splitlines())
        out[lines["vector"].strip()] = lines
    return out


def hexbytes(text: str) -> bytes:
    return b"" if text.strip() == "-" else bytes.fromhex(text.replace(" ", ""))


def test_every_vector_is_documented_and_checked() -> None:
    assert set(documented_vectors()) == set(VECTORS)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_documented_vector(name: str) -> None:
    doc = documented_vectors()[name]
    message, cid, seq, t = VECTORS[name]
    wire = encode_frame(message, cid, seq, t)
    assert wire == hexbytes(doc["wire"])
    raw = cobs_decode(wire[:-1])
    assert raw[:16] == hexbytes(doc["header"])
    assert raw[16:-4] == hexbytes(doc["payload"])
    value, _, crc_bytes = doc["crc"].partition("=")
    assert crc32(raw[:-4]) == int(value, 16)
    assert raw[-4:] == hexbytes(crc_bytes)


def test_documented_check_value() -> None:
    assert f"0x{CHECK_VALUE:08X}" in DOC.read_text()
    assert crc32(b"123456789") == 0x1697D06A


# -- the receiver vectors table ------------------------------------------------------------------

MS = 1_000_000
S = 1_000_000_000
POLICY = LinkPolicy(max_delay_ns=20 * MS, watchdog_ns=50 * MS)


def wire(name: str) -> bytes:
    return hexbytes(documented_vectors()[name]["wire"])


def robot_end(cid: int = 0x0101) -> Endpoint:
    ep = Endpoint(Role.ROBOT, cid, POLICY, 0)
    ep.feed(b"\x00", 0)
    return ep


def outcome(ep: Endpoint, *deliveries: tuple[bytes, int]) -> Reason | ReceiverState:
    for data, t in deliveries:
        ep.feed(data, t)
        for event in drain(ep):
            if isinstance(event, LinkError):
                return event.reason
            assert isinstance(event, Received)
    assert ep.next_event() is NEED_DATA
    return ep.state


def seq_frame(seq: int, t: int) -> bytes:
    return encode_frame(VECTORS["command_run"][0], 0x0101, seq, t)


def test_receiver_vectors() -> None:
    run, t0 = wire("command_run"), S + MS
    assert outcome(robot_end(), (run, t0)) is ReceiverState.CONNECTED
    assert outcome(robot_end(), (run, t0), (run, t0)) is Reason.LINK_REPETITION
    stop = wire("command_protective_stop")
    assert outcome(robot_end(), (stop, S + 3 * MS), (run, S + 3 * MS)) is Reason.LINK_INCORRECT_SEQUENCE
    assert outcome(robot_end(), (run, t0), (seq_frame(2, S + 2 * MS), S + 3 * MS)) is Reason.LINK_LOSS
    assert outcome(robot_end(), (run, S + 20 * MS + 100)) is Reason.LINK_UNACCEPTABLE_DELAY
    assert outcome(robot_end(), (run, t0), (seq_frame(1, S - MS), t0)) is Reason.LINK_INSERTION
    assert outcome(robot_end(), (wire("robot_state_moving"), t0)) is Reason.LINK_MASQUERADE
    assert outcome(robot_end(0x0202), (run, t0)) is Reason.LINK_ADDRESSING
    bad = bytearray(run)
    bad[10] ^= 0x04
    assert outcome(robot_end(), (bytes(bad), t0)) is Reason.LINK_CORRUPTION
    ep = robot_end()
    assert outcome(ep, (run, t0)) is ReceiverState.CONNECTED
    assert ep.check_watchdog(t0 + 50 * MS) is None
    err = ep.check_watchdog(t0 + 50 * MS + 100)
    assert err is not None and err.reason is Reason.LINK_TIMEOUT


# -- section 14: the clock estimator's worked example ------------------------------------------------------


def estimator_rows() -> dict[str, str]:
    """step -> values, from the estimator table of section 14.4."""
    text = DOC.read_text().split("### 14.4", 1)[1]
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", text, flags=re.M)
    return {step: values for step, values in rows if step not in ("step", "---")}


def numbers(text: str) -> list[int]:
    """The integers in a row (digits grouped by spaces), not those in names like t1."""
    found = re.findall(r"(?<![A-Za-z\d])(?:\d[\d ]*\d|\d)", text.replace("10^9", ""))
    return [int(n.replace(" ", "")) for n in found]


def test_estimator_rows_of_section_14() -> None:
    from cobotguard.safety.link import clock_sync as cs

    rows = estimator_rows()
    t1, s2, s3, t4 = numbers(rows["the reply above, received at t4"])
    policy = cs.ClockPolicy(True, 100 * MS, 50 * MS, 2 * MS, 100_000, 4 * MS, MS)
    clocks = cs.new_clocks([policy], 0)
    cs.request_sent(clocks, 0, 7, t1)
    assert cs.take_reply(clocks, 0, 7, t1, s2, s3, t4) == 0
    assert numbers(rows["slack = drift(400 000)"]) == [400_000 // 10_000]
    offset, bound = int(clocks[0]["offset_ns"]), int(clocks[0]["bound_ns"])
    assert numbers(rows["low, high"]) == [t1 - s2 - 40, t4 - s3 + 40]
    assert numbers(rows["offset, bound (at t_ref = t4)"]) == [offset, bound]
    assert numbers(rows["bound one second later, at t4 + 10^9"]) == [int(cs.bound_at(clocks, 0, t4 + S))]
    exposure_row = next(k for k in rows if k.startswith("a frame exposed at sensor time"))
    exposure = numbers(exposure_row)[0]
    e = exposure + offset
    b = int(cs.bound_at(clocks, 0, e))
    assert numbers(rows[exposure_row]) == [e, b, int(cs.to_controller_ns(clocks, 0, exposure))]
    assert numbers(rows[next(k for k in rows if k.startswith("that frame's age error"))]) == [
        int(cs.age_error_ns(clocks, 0, e))
    ]
    for seconds, row in ((8, "no better estimate for 8 s"), (9, "for 9 s, checked")):
        key = next(k for k in rows if k.startswith(row))
        t = t4 + seconds * S
        assert numbers(rows[key]) == [int(cs.bound_at(clocks, 0, t)), int(cs.age_error_ns(clocks, 0, t))]
        fault = int(cs.check(clocks, 0, t))
        assert (fault == 0) if seconds == 8 else Reason(fault).name in rows[key]
    step_row = next(k for k in rows if k.startswith("the sensor's clock steps back 1 s"))
    *_, t1b, s2b, s3b, t4b = numbers(step_row)
    assert cs.request_due(clocks, 0, t1b) == 1
    cs.request_sent(clocks, 0, 8, t1b)
    assert Reason(int(cs.take_reply(clocks, 0, 8, t1b, s2b, s3b, t4b))).name in rows[step_row]
    fresh = cs.new_clocks([policy], 0)
    cs.request_sent(fresh, 0, 0, t1)
    lost = Reason(int(cs.check(fresh, 0, t1 + 50 * MS + 1)))
    assert lost.name in rows[next(k for k in rows if k.startswith("no reply to a request"))]


# -- the echo vectors table (section 7.1) -------------------------------------------------------------

ECHO_POLICY = LinkPolicy(max_delay_ns=30 * MS, watchdog_ns=100 * MS, delay_check=DelayCheck.ECHO, echo_ring=8)


def ahead(t_ns: int) -> int:
    """r(t): a robot clock 3600 s ahead and 100 ppm fast."""
    return 3600 * S + t_ns + t_ns * 100 // 1_000_000


def behind(t_ns: int) -> int:
    """r'(t): a robot clock 42 s behind and 100 ppm slow."""
    return -42 * S + t_ns - t_ns * 100 // 1_000_000


def echo_outcome(
    sent: list[int], states: list[tuple[int, int, int]]
) -> tuple[Reason | ReceiverState, list[int]]:
    """A controller end sends commands at `sent`, then takes states (echo, robot sender time, received at);
    the outcome and the accepted states' sender times on the controller's clock."""
    ep = Endpoint(Role.CONTROLLER, 0x0101, ECHO_POLICY, 0)
    ep.feed(b"\x00", 0)
    for t in sent:
        ep.send(Command(CommandKind.RUN, 0.25), t)
    origins: list[int] = []
    for seq, (echo, t_robot, t_rx) in enumerate(states):
        ep.feed(encode_frame(RobotState(0.1, CommandKind.RUN, False, echo), 0x0101, seq, t_robot), t_rx)
        for event in drain(ep):
            if isinstance(event, LinkError):
                return event.reason, origins
            assert isinstance(event, Received)
            origins.append(event.to_record()["t_sent_ns"][0])
    return ep.state, origins


def test_echo_vectors() -> None:
    ms = MS
    t = S  # 1.000 s
    assert echo_outcome([t], [(0, ahead(t + 10 * ms), t + 12 * ms)]) == (ReceiverState.CONNECTED, [t])
    three = [t, t + 2 * ms, t + 4 * ms]
    states = [(0, behind(t + ms), t + 3 * ms), (2, behind(t + 5 * ms), t + 6 * ms),
              (2, behind(t + 10 * ms), t + 34 * ms)]  # fmt: skip
    assert echo_outcome(three, states) == (ReceiverState.CONNECTED, [t, t + 4 * ms, t + 4 * ms])
    late = [(0, ahead(t + 5 * ms), t + 30 * ms + 1)]
    assert echo_outcome([t], late)[0] is Reason.LINK_UNACCEPTABLE_DELAY
    assert echo_outcome([t], [(1, ahead(t + ms), t + 2 * ms)])[0] is Reason.LINK_INSERTION
    assert echo_outcome([], [(0, ahead(t + ms), t + 2 * ms)])[0] is Reason.LINK_INSERTION
    back = [(1, ahead(t + 3 * ms), t + 4 * ms), (0, ahead(t + 5 * ms), t + 6 * ms)]
    assert echo_outcome([t, t + 2 * ms], back)[0] is Reason.LINK_INCORRECT_SEQUENCE
    nine = [t + k * ms for k in range(9)]
    assert echo_outcome(nine, [(0, ahead(t + 9 * ms), t + 10 * ms)])[0] is Reason.LINK_UNACCEPTABLE_DELAY
    first = (0, ahead(t + ms), t + 2 * ms)
    stepped_back = [first, (0, ahead(t + 3 * ms) - S, t + 4 * ms)]
    assert echo_outcome([t], stepped_back)[0] is Reason.LINK_INSERTION
    stepped_forward = [first, (0, ahead(t + 3 * ms) + S, t + 4 * ms)]
    assert echo_outcome([t], stepped_forward) == (ReceiverState.CONNECTED, [t, t])
    assert echo_outcome([t], [(-1, behind(t + ms), t + 2 * ms)]) == (ReceiverState.CONNECTED, [0])
