"""The robot emulator follows commands with the cell's stopping model and stops on its own watchdog."""

import pytest

from cobotguard.hil.robot import RobotEmulator, RobotRunner
from cobotguard.safety.config import ns
from cobotguard.safety.config_load import load_config
from cobotguard.safety.link import Command, Received, RobotState, Role, drain, robot_link_endpoint
from cobotguard.safety.link.transport import memory_pair
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.stopping import stopping_at

MS = 1_000_000
CFG = load_config("hil/defaults/cell.toml")
REACTION = ns(CFG.robot.stop_input_reaction_ms)
V = CFG.robot.max_speed_mps
RUN = Command(CommandKind.RUN, 10.0)
STOP = Command(CommandKind.PROTECTIVE_STOP, 0.0)


class Cell:
    """A controller endpoint and a robot emulator, commanding every 2 ms on a simulated clock."""

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.t = 0
        self.ctl = robot_link_endpoint(CFG, Role.CONTROLLER, 0)
        self.robot = RobotEmulator(CFG, 0, **kwargs)

    def command(self, cmd: Command, until_ns: int, step_ns: int = 2 * MS) -> None:
        while self.t < until_ns:
            self.t += step_ns
            self.robot.receive(self.ctl.send(cmd, self.t), self.t)
            self.robot.check_watchdog(self.t)
            self.robot.advance(self.t)

    def silent(self, until_ns: int, step_ns: int = 2 * MS) -> None:
        while self.t < until_ns:
            self.t += step_ns
            self.robot.check_watchdog(self.t)
            self.robot.advance(self.t)


def test_at_rest_until_commanded() -> None:
    cell = Cell()
    cell.silent(500 * MS)
    assert cell.robot.at_rest and cell.robot.reason is None
    state = cell.robot.state()
    assert state.mode is CommandKind.FAULT_STOP and state.last_command_seq == -1


def test_run_reaches_the_program_speed_after_the_reaction() -> None:
    cell = Cell()
    cell.command(RUN, REACTION)
    assert cell.robot.at_rest  # nothing happens before the reaction delay
    cell.command(RUN, 1_000 * MS)
    assert cell.robot.speed_mps == pytest.approx(V)
    state = cell.robot.state()
    assert state.mode is CommandKind.RUN and not state.at_rest and state.last_command_seq == 499


def test_speed_limit_is_obeyed() -> None:
    cell = Cell()
    cell.command(Command(CommandKind.SLOW, 0.1), 1_000 * MS)
    assert cell.robot.speed_mps == pytest.approx(0.1)
    cell.command(Command(CommandKind.RUN, 0.05), 2_000 * MS)  # slows down to a lower limit
    assert cell.robot.speed_mps == pytest.approx(0.05)


def test_stop_follows_the_stopping_table_exactly() -> None:
    cell = Cell()
    cell.command(RUN, 1_000 * MS)
    x_cmd = cell.robot.position_m
    cell.command(STOP, 1_002 * MS)  # the stop command is received at t = 1002 ms
    t_stop = 1_002 * MS
    stop_ns, stop_m = stopping_at(CFG.robot, V)
    cell.command(STOP, t_stop + REACTION + stop_ns + 10 * MS, step_ns=MS)
    robot = cell.robot
    assert robot.at_rest and robot.t_at_rest_ns == t_stop + REACTION + stop_ns
    travelled = robot.position_m - x_cmd
    assert travelled == pytest.approx(V * (REACTION + 2 * MS) / 1e9 + stop_m, rel=1e-6)


def test_motion_does_not_depend_on_the_polling_rate() -> None:
    results = []
    for step in (MS, 2 * MS, 7 * MS):
        cell = Cell()
        cell.command(RUN, 700 * MS, step_ns=2 * MS)
        cell.command(STOP, 702 * MS, step_ns=2 * MS)
        cell.robot.advance(702 * MS)
        t = 702 * MS
        while t < 1_100 * MS:
            t += step
            cell.robot.advance(t)
        results.append((cell.robot.position_m, cell.robot.t_at_rest_ns))
    assert results[0] == pytest.approx(results[1])
    assert results[0] == pytest.approx(results[2])


def test_watchdog_stops_the_robot_and_latches() -> None:
    cell = Cell()
    cell.command(RUN, 1_000 * MS)
    cell.silent(1_000 * MS + ns(CFG.link.command_watchdog_ms) + 2 * MS)
    robot = cell.robot
    assert robot.reason is Reason.LINK_TIMEOUT
    cell.silent(2_000 * MS)
    assert robot.at_rest and robot.state().mode is CommandKind.FAULT_STOP
    cell.command(RUN, 2_500 * MS)  # commands are ignored until reset
    assert robot.at_rest
    robot.reset(cell.t)
    cell.command(RUN, 3_500 * MS)
    assert robot.speed_mps == pytest.approx(V) and robot.reason is None


def test_a_corrupted_command_stops_the_robot() -> None:
    cell = Cell()
    cell.command(RUN, 1_000 * MS)
    bad = bytearray(cell.ctl.send(RUN, cell.t + MS))
    bad[8] ^= 0x10
    cell.robot.receive(bytes(bad), cell.t + MS)
    assert cell.robot.reason is Reason.LINK_CORRUPTION
    cell.command(RUN, 2_000 * MS)
    assert cell.robot.at_rest


def test_braking_finishes_before_a_restart() -> None:
    cell = Cell()
    cell.command(RUN, 1_000 * MS)
    cell.command(STOP, 1_002 * MS)
    stop_ns, _ = stopping_at(CFG.robot, V)
    cell.command(RUN, 1_002 * MS + REACTION + stop_ns // 2)  # RUN again while braking
    assert cell.robot.speed_mps > 0.0
    cell.command(RUN, 1_002 * MS + REACTION + stop_ns + MS, step_ns=MS)
    assert cell.robot.t_last_standstill_ns == 1_002 * MS + REACTION + stop_ns  # the stop completed
    cell.command(RUN, 3_000 * MS)
    assert cell.robot.speed_mps == pytest.approx(V)


def test_runner_answers_each_command_with_its_state() -> None:
    controller_side, robot_side = memory_pair(read_timeout_ns=1)
    clock = [0]
    runner = RobotRunner(RobotEmulator(CFG, 0), robot_side, state_period_ns=20 * MS, clock=lambda: clock[0])
    ctl = robot_link_endpoint(CFG, Role.CONTROLLER, 0)
    states: list[RobotState] = []
    for i in range(1, 101):
        clock[0] = i * 2 * MS
        controller_side.write(ctl.send(RUN, clock[0]))
        runner.poll()
        ctl.feed(controller_side.read(), clock[0])
        states += [e.message for e in drain(ctl) if isinstance(e, Received)]  # type: ignore[misc]
    assert len(states) == 100  # one reply per command
    assert states[-1].last_command_seq == 99 and states[-1].speed_mps >= V
    assert runner.connected
    beats = []
    for _ in range(10):  # commands stop: a heartbeat every state period, then the watchdog stops it
        clock[0] += 10 * MS
        runner.poll()
        ctl.feed(controller_side.read(), clock[0])
        beats += [e for e in drain(ctl) if isinstance(e, Received)]
    assert len(beats) == 5
    assert runner.emulator.reason is Reason.LINK_TIMEOUT and not runner.connected


def test_a_robot_told_to_obey_late_keeps_its_speed_for_the_delay_then_slows() -> None:
    cell = Cell()
    cell.command(RUN, 1_000 * MS)
    cell.robot.obey_lower_limits_late(300 * MS)
    slow = Command(CommandKind.SLOW, 0.1)
    cell.command(slow, 1_250 * MS)  # repeated every 2 ms: the hold runs from the first one
    assert cell.robot.speed_mps == pytest.approx(V)
    cell.command(slow, 2_000 * MS)
    assert cell.robot.speed_mps == pytest.approx(0.1)
    # a stop is never held back
    cell.command(RUN, 3_000 * MS)
    cell.robot.obey_lower_limits_late(300 * MS)
    cell.command(STOP, 3_000 * MS + REACTION + stopping_at(CFG.robot, V)[0] + 10 * MS)
    assert cell.robot.at_rest


def test_runner_sends_at_the_cells_state_period_by_default() -> None:
    _, robot_side = memory_pair(read_timeout_ns=1)
    runner = RobotRunner(RobotEmulator(CFG, 0), robot_side)
    assert runner.state_period_ns == ns(CFG.robot.state_period_ms)
