"""Age by echo (docs/protocol.md, section 7.1): the controller ages a robot state by the command it echoes.

The robot's clock is offset by arbitrary amounts and drifts; the reference Endpoint and the compiled
receiver must accept the same states with the same age origin, and reject echoes of commands never sent
(insertion), echoes that go backwards (incorrect sequence), and echoes too old (unacceptable delay).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from link_support import CONNECTION_ID
from test_link_compiled import CompiledReceiver, reference_feed

from cobotguard.hil.robot import RobotClock
from cobotguard.safety.link import (
    NEED_DATA,
    DelayCheck,
    Endpoint,
    LinkError,
    LinkPolicy,
    Received,
    RobotState,
    Role,
    encode_frame,
)
from cobotguard.safety.link import compiled as cl
from cobotguard.safety.link.crc import TABLE
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import COMMAND_DTYPE

MS = 1_000_000
ECHO = LinkPolicy(max_delay_ns=30 * MS, watchdog_ns=100 * MS, delay_check=DelayCheck.ECHO, echo_ring=8)
ROBOT_END = LinkPolicy(max_delay_ns=20 * MS, watchdog_ns=50 * MS, delay_check=DelayCheck.NONE)


class Both:
    """The reference controller end and the compiled one, sending the same commands, fed the same bytes."""

    def __init__(self, policy: LinkPolicy = ECHO) -> None:
        self.ref = Endpoint(Role.CONTROLLER, CONNECTION_ID, policy, 0)
        self.fast = CompiledReceiver(Role.CONTROLLER, policy)
        self.scratch = np.zeros(64, dtype=np.uint8)
        self.out = np.zeros(64, dtype=np.uint8)
        self.command = np.zeros(1, dtype=COMMAND_DTYPE)
        self.ref.feed(b"\x00", 0)
        self.fast.feed(b"\x00", 0)

    def send(self, t_ns: int) -> int:
        """Both ends send a command stamped t_ns; returns its sequence number."""
        from cobotguard.safety.link import Command

        seq = self.ref.next_seq
        self.ref.send(Command(CommandKind.RUN, 0.25), t_ns)
        self.command[0] = Command(CommandKind.RUN, 0.25).to_record(t_ns)[0]
        cl.encode_command(self.fast.rx, 0, self.command, t_ns, self.scratch, self.out, TABLE)
        return seq

    def feed(self, data: bytes, t_rx: int) -> list[tuple[str, object]]:
        """Feed both; they must agree; returns the reference's events."""
        ref = reference_feed(self.ref, data, t_rx)
        fast = self.fast.feed(data, t_rx)
        assert len(ref) == len(fast)
        for (kind_r, val_r), (kind_f, val_f) in zip(ref, fast, strict=True):
            assert kind_r == kind_f
            if kind_r == "accepted":
                assert val_r.tobytes() == val_f.tobytes()  # type: ignore[attr-defined]
            else:
                assert val_r == val_f
        return ref


def state_frame(seq: int, echo: int, t_robot_ns: int) -> bytes:
    """A ROBOT_STATE echoing `echo` (-1: none), the robot's sequence `seq`, sent at its clock's t."""
    return encode_frame(RobotState(0.1, CommandKind.RUN, False, echo), CONNECTION_ID, seq, t_robot_ns)


@pytest.mark.requirement("SR-ROB-4")
def test_a_state_is_aged_from_the_command_it_echoes_whatever_the_robot_clock_says():
    both = Both()
    echo = both.send(1000 * MS)
    events = both.feed(state_frame(0, echo, -(3600 * 10**9)), 1012 * MS)  # robot clock an hour behind
    ((kind, record),) = events
    assert kind == "accepted"
    assert record["t_sent_ns"][0] == 1000 * MS  # our clock: the command's send time
    assert record["t_received_ns"][0] == 1012 * MS


@pytest.mark.requirement("SR-ROB-4")
def test_an_echo_older_than_the_limit_is_an_unacceptable_delay():
    both = Both()
    echo = both.send(1000 * MS)
    assert both.feed(state_frame(0, echo, 5), 1030 * MS + 1) == [
        ("error", int(Reason.LINK_UNACCEPTABLE_DELAY))
    ]


def test_an_echo_at_the_limit_passes():
    both = Both()
    echo = both.send(1000 * MS)
    assert both.feed(state_frame(0, echo, 5), 1030 * MS)[0][0] == "accepted"


@pytest.mark.requirement("SR-ROB-4")
def test_an_echo_of_a_command_never_sent_is_an_insertion():
    both = Both()
    both.send(1000 * MS)
    assert both.feed(state_frame(0, 7, 5), 1001 * MS) == [("error", int(Reason.LINK_INSERTION))]


def test_an_echo_before_any_command_is_an_insertion():
    both = Both()
    assert both.feed(state_frame(0, 0, 5), 1001 * MS) == [("error", int(Reason.LINK_INSERTION))]


@pytest.mark.requirement("SR-ROB-4")
def test_an_echo_that_goes_backwards_is_an_incorrect_sequence():
    both = Both()
    first = both.send(1000 * MS)
    second = both.send(1002 * MS)
    assert both.feed(state_frame(0, second, 5), 1003 * MS)[0][0] == "accepted"
    assert both.feed(state_frame(1, first, 6), 1004 * MS) == [("error", int(Reason.LINK_INCORRECT_SEQUENCE))]


def test_an_echo_that_fell_out_of_the_ring_is_an_unacceptable_delay():
    both = Both()
    old = both.send(1000 * MS)
    for k in range(ECHO.echo_ring):  # the ring remembers echo_ring commands: `old` is overwritten
        both.send(1001 * MS + k)
    assert both.feed(state_frame(0, old, 5), 1010 * MS) == [("error", int(Reason.LINK_UNACCEPTABLE_DELAY))]


def test_a_state_without_echo_is_accepted_with_an_unknown_age():
    both = Both()
    ((kind, record),) = both.feed(state_frame(0, -1, 5), 1001 * MS)
    assert kind == "accepted"
    assert record["last_command_seq"][0] == -1
    assert record["t_sent_ns"][0] == 0  # no origin: the step treats it as stale


def test_a_robot_clock_stepped_back_is_an_insertion_and_one_stepped_forward_is_harmless():
    both = Both()
    echo = both.send(1000 * MS)
    assert both.feed(state_frame(0, echo, 10**9), 1002 * MS)[0][0] == "accepted"
    assert both.feed(state_frame(1, echo, 2 * 10**9 + 1), 1004 * MS)[0][0] == "accepted"  # +1 s step
    assert both.feed(state_frame(2, echo, 10**9 + 2), 1006 * MS) == [("error", int(Reason.LINK_INSERTION))]


def test_a_reset_keeps_the_send_times_but_forgets_the_last_echo():
    both = Both()
    first = both.send(1000 * MS)
    second = both.send(1002 * MS)
    assert both.feed(state_frame(0, second, 5), 1003 * MS)[0][0] == "accepted"
    both.ref.reset(1004 * MS)
    cl.reset(both.fast.rx, 0, 1004 * MS)
    both.feed(b"\x00", 1004 * MS)
    ((kind, record),) = both.feed(state_frame(1, first, 6), 1005 * MS)  # a new connection's baseline
    assert kind == "accepted" and record["t_sent_ns"][0] == 1000 * MS


def test_the_robot_end_on_its_own_clock_has_no_delay_check():
    robot = Endpoint(Role.ROBOT, CONNECTION_ID, ROBOT_END, 0)
    from cobotguard.safety.link import Command

    robot.feed(b"\x00" + encode_frame(Command(CommandKind.RUN, 0.25), CONNECTION_ID, 0, 10**12), 5)
    assert isinstance(robot.next_event(), Received)  # sender time a thousand seconds "ahead"
    robot.feed(encode_frame(Command(CommandKind.RUN, 0.25), CONNECTION_ID, 1, 10**12 - 1), 6)
    event = robot.next_event()
    assert isinstance(event, LinkError) and event.reason is Reason.LINK_INSERTION
    assert robot.next_event() is NEED_DATA


def test_the_policy_refuses_an_echo_ring_without_echo_ageing_and_the_reverse():
    with pytest.raises(ValueError, match="echo_ring"):
        LinkPolicy(max_delay_ns=MS, watchdog_ns=MS, echo_ring=4)
    with pytest.raises(ValueError, match="echo_ring"):
        LinkPolicy(max_delay_ns=MS, watchdog_ns=MS, delay_check=DelayCheck.ECHO)


def test_the_compiled_receiver_refuses_a_ring_larger_than_its_record():
    big = LinkPolicy(max_delay_ns=MS, watchdog_ns=MS, delay_check=DelayCheck.ECHO, echo_ring=10_000)
    with pytest.raises(ValueError, match="echo_ring"):
        cl.new_receivers([Role.CONTROLLER], [CONNECTION_ID], [big], 0)


@given(
    offset_s=st.integers(-(10**6), 10**6),
    drift_ppm=st.floats(-100.0, 100.0),
    steps=st.lists(
        st.tuples(
            st.integers(1 * MS, 12 * MS),  # command gap (cycle and step jitter)
            st.integers(0, 12 * MS),  # command delivery
            st.integers(0, 8 * MS),  # state delivery
            st.integers(-1, 2),  # which command the robot echoes: the newest it took (0) or an older one
        ),
        min_size=1,
        max_size=40,
    ),
)
@pytest.mark.requirement("SR-ROB-4")
def test_reference_and_compiled_agree_with_any_robot_clock_offset_and_drift(offset_s, drift_ppm, steps):
    """Commands and states with random timing; the robot's sender times on an offset, drifting clock.
    Both receivers agree on every verdict and age origin, and an accepted state is never aged younger
    than it is (its origin is no later than the send of the command it answers)."""
    both = Both()
    clock = RobotClock(offset_ns=offset_s * 10**9, drift_ppm=drift_ppm)
    t, sent = 1000 * MS, []
    last_robot_t = None
    for robot_seq, (gap, command_delay, state_delay, back) in enumerate(steps):
        t += gap
        sent.append((both.send(t), t))
        echo_index = max(0, len(sent) - 1 - back) if back >= 0 else None
        t_robot_send = t + command_delay
        robot_t = clock.robot_ns(t_robot_send)
        if last_robot_t is not None and robot_t <= last_robot_t:
            robot_t = last_robot_t + 1
        last_robot_t = robot_t
        echo = -1 if echo_index is None else sent[echo_index][0]
        events = both.feed(state_frame(robot_seq, echo, robot_t), t_robot_send + state_delay)
        if not events or events[0][0] == "error":
            break
        record = events[0][1]
        if echo_index is not None:
            assert record["t_sent_ns"][0] == sent[echo_index][1] <= t_robot_send  # type: ignore[index]
