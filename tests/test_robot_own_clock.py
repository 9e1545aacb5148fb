"""The emulated robot on a clock of its own, against the controller's end of the robot link (simulated time).

The controller commands every cycle and ages each state by the command it echoes; the robot's clock is
offset and drifts. Within the declared delays nothing stops; every robot-link fault is still named.
"""

from __future__ import annotations

import pytest
from config_support import default_raw

import cobotguard.hil.faults as fl
from cobotguard.hil.robot import RobotClock, RobotEmulator
from cobotguard.safety.config_load import config_from_dict
from cobotguard.safety.link import NEED_DATA, Command, LinkError, Received, Role, robot_link_endpoint
from cobotguard.safety.reasons import CommandKind
from cobotguard.safety.timing import ns

MS = 1_000_000
S = 1_000_000_000


def own_cell():
    raw = default_raw()
    raw["robot"]["clock"] = "own"
    raw["controller"]["robot_state_timeout_ms"] = 70.0
    return config_from_dict(raw)


def test_the_robot_clock_is_offset_and_drifts_exactly():
    clock = RobotClock(offset_ns=3600 * S, drift_ppm=100.0, origin_ns=10 * S)
    assert clock.robot_ns(10 * S) == 3610 * S
    assert clock.robot_ns(20 * S) == 3620 * S + 1 * MS  # 100 ppm of 10 s
    clock.jump(-S)
    assert clock.robot_ns(20 * S) == 3619 * S + 1 * MS
    slow = RobotClock(offset_ns=-42 * S, drift_ppm=-100.0)
    assert slow.robot_ns(10 * S) == -32 * S - 1 * MS


def test_a_drift_beyond_a_quartz_clock_is_refused():
    with pytest.raises(ValueError, match="drift_ppm"):
        RobotClock(drift_ppm=5000.0)


def test_an_offset_robot_clock_needs_a_cell_that_says_own():
    shared = config_from_dict(default_raw())
    with pytest.raises(ValueError, match='robot.clock = "own"'):
        RobotEmulator(shared, 0, clock=RobotClock(offset_ns=S))
    RobotEmulator(shared, 0, clock=RobotClock(origin_ns=0))  # the rig's own clock: fine


def run_cell(cfg, clock, *, seconds=2.0, command_delay_ns=None, state_delay_ns=None, fault=None):
    """Simulated time in 0.1 ms steps: the controller commands every cycle; the robot answers each command
    and sends a state every state period; frames travel the declared worst delays unless given. Returns the
    controller's link errors, the robot's, the ages (now - origin) seen at each cycle, and the injector."""
    t0 = 5 * S
    controller = robot_link_endpoint(cfg, Role.CONTROLLER, t0)
    robot = RobotEmulator(cfg, t0, clock=clock)
    cycle = ns(cfg.controller.cycle_period_ms)
    period = ns(cfg.robot.state_period_ms)
    command_delay = ns(cfg.link.max_delay_ms) if command_delay_ns is None else command_delay_ns
    state_delay = ns(cfg.link.max_delay_ms) if state_delay_ns is None else state_delay_ns
    codec = fl.LinkCodec()
    injector = fault.make(cfg) if fault is not None else None
    to_robot: list[tuple[int, bytes]] = []
    to_controller: list[tuple[int, bytes]] = []
    errors, robot_errors, ages = [], [], []
    newest = None
    last_state = None
    step = 100_000
    for now in range(t0, t0 + int(seconds * S), step):
        if (now - t0) % cycle == 0:
            to_robot.append((now + command_delay, controller.send(Command(CommandKind.RUN, 0.25), now)))
            if newest is not None:
                ages.append(now - newest)
        replied = False
        while to_robot and to_robot[0][0] <= now:
            for event in robot.receive(to_robot.pop(0)[1], now):
                replied |= isinstance(event, Received)
                if isinstance(event, LinkError):
                    robot_errors.append(event)
        if (err := robot.check_watchdog(now)) is not None:
            robot_errors.append(err)
        if replied or last_state is None or now - last_state >= period:
            wire = robot.state_frame(now)
            last_state = now
            writes = [(now + state_delay, wire)]
            if injector is not None and now >= t0 + S // 2:
                out = codec.out_frame(now, wire)
                writes = [(t + state_delay, w) for t, w in injector.push(out, codec)]
            to_controller += writes
            to_controller.sort(key=lambda w: w[0])
        while to_controller and to_controller[0][0] <= now:
            controller.feed(to_controller.pop(0)[1], now)
        while (event := controller.next_event()) is not NEED_DATA:
            if isinstance(event, Received):
                assert event.t_origin_ns is not None
                if event.message.last_command_seq >= 0:  # type: ignore[union-attr]
                    assert event.t_origin_ns <= now - state_delay  # never younger than it is
                    newest = event.t_origin_ns
            else:
                errors.append(event)
        if (err := controller.check_watchdog(now)) is not None:
            errors.append(err)
        if errors:
            break
    return errors, robot_errors, ages, injector


@pytest.mark.parametrize(
    ("offset_s", "drift_ppm"), [(3600, 100.0), (-42, -100.0), (0, 0.0), (10**6, 100.0), (-(10**6), -100.0)]
)
def test_within_the_declared_delays_nothing_stops_whatever_the_robot_clock(offset_s, drift_ppm):
    cfg = own_cell()
    errors, robot_errors, ages, _ = run_cell(cfg, RobotClock(offset_s * S, drift_ppm, origin_ns=5 * S))
    assert errors == [] and robot_errors == []
    assert ages and max(ages) <= ns(cfg.controller.robot_state_timeout_ms)


def test_states_delivered_later_than_the_echo_limit_allows_are_an_unacceptable_delay():
    cfg = own_cell()
    clock = RobotClock(3600 * S, 100.0, origin_ns=5 * S)
    errors, _, _, _ = run_cell(cfg, clock, state_delay_ns=ns(cfg.link.max_delay_ms) + 13 * MS)
    assert errors and errors[0].reason.name == "LINK_UNACCEPTABLE_DELAY"


ROBOT_FAULTS = [f.name for f in fl.FAULTS if f.link == "robot" and f.endpoint_detects]


@pytest.mark.parametrize("name", ROBOT_FAULTS)
def test_each_robot_link_fault_is_named_with_the_robot_on_its_own_clock(name):
    cfg = own_cell()
    fault = fl.get_fault(name)
    clock = RobotClock(3600 * S, 100.0, origin_ns=5 * S)
    errors, _, _, injector = run_cell(cfg, clock, fault=fault, command_delay_ns=MS, state_delay_ns=MS)
    assert errors, f"{name}: nothing noticed"
    assert errors[0].reason in fault.expected, f"{name}: {errors[0]}"
    assert errors[0].t_ns - injector.acted_ns <= fault.deadline_ns(cfg) + 2 * MS  # state delay + a step


def test_a_robot_clock_stepped_forward_by_a_second_stops_nothing():
    cfg = own_cell()
    forward = fl.Fault("forward", "", "robot", frozenset(), lambda c: 1, lambda c: fl.ClockStep(S))
    errors, robot_errors, _, injector = run_cell(
        cfg, RobotClock(3600 * S, 100.0, origin_ns=5 * S), fault=forward
    )
    assert injector.acted_ns is not None
    assert errors == [] and robot_errors == []
