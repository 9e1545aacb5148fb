"""The cyclic executor on a simulated clock: heartbeat, overruns, checksum refusal, trace round trip."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from loop_support import MS, ScriptedRobot, ScriptedSensor, command_array, make_cell

from cobotguard.safety.checksum import config_checksum
from cobotguard.safety.clock import SimulatedClock
from cobotguard.safety.executor import ArmError, Controller
from cobotguard.safety.ports import QueueRobotPort, QueueSensorSource
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.trace import TraceError, read_trace

START_NS = 1_000 * MS


def _controller(
    tmp_path: Path | None = None, **kwargs: object
) -> tuple[Controller, ScriptedSensor, ScriptedRobot]:
    wake_latency = kwargs.pop("wake_latency_ns", None)
    send_delay = kwargs.pop("send_delay_ns", None)
    clock = SimulatedClock(START_NS, wake_latency_ns=wake_latency)  # type: ignore[arg-type]
    sensor = ScriptedSensor(clock, persons=kwargs.pop("persons", lambda _t: []))  # type: ignore[arg-type]
    robot = ScriptedRobot(clock, send_delay_ns=send_delay)  # type: ignore[arg-type]
    trace = tmp_path / "run.cgtrace" if tmp_path is not None else None
    cell = kwargs.pop("cell", None) or make_cell()
    controller = Controller(
        cell,
        sensor,
        robot,
        trace_path=trace,
        clock=clock,
        realtime=False,
        **kwargs,  # type: ignore[arg-type]
    )
    return controller, sensor, robot


def _run_and_reset(controller: Controller, before_ms: int = 50, after_ms: int = 50) -> None:
    controller.run(duration_ns=before_ms * MS)
    controller.press_reset()
    controller.run(duration_ns=after_ms * MS)


@pytest.mark.requirement("SR-EXE-5")
def test_a_command_every_cycle_on_the_period_grid(tmp_path: Path) -> None:
    controller, _sensor, robot = _controller(tmp_path)
    controller.run(duration_ns=100 * MS)
    controller.close()
    cycles = read_trace(tmp_path / "run.cgtrace").streams["cycles"]
    assert len(cycles) == 100
    assert controller.stats.cycles == 100 and controller.stats.overruns == 0
    assert list(cycles["cycle"]) == list(range(100))
    assert np.all(np.diff(cycles["t_scheduled_ns"]) == MS)
    assert list(cycles["command_seq"]) == list(range(1, 101))
    # the port got exactly those commands, plus the final stop on close
    assert [seq for seq, _ in robot.commands] == list(range(1, 102))
    np.testing.assert_array_equal(cycles["command"], command_array(robot.commands[:100]))


@pytest.mark.requirement("SR-RST-1")
def test_starts_stopped_and_runs_only_after_a_reset_edge() -> None:
    controller, _sensor, robot = _controller()
    controller.run(duration_ns=50 * MS)
    assert set(robot.kinds()) == {CommandKind.FAULT_STOP}
    assert int(robot.commands[-1][1][0]["reason"]) == Reason.NOT_ARMED
    controller.press_reset()
    controller.run(duration_ns=10 * MS)
    assert robot.kinds()[-1] == CommandKind.RUN


def test_a_person_close_by_stops_the_robot() -> None:
    controller, _sensor, robot = _controller(
        persons=lambda t: [(1.0, 0.0)] if t > START_NS + 100 * MS else []
    )
    _run_and_reset(controller, 50, 200)
    last = robot.commands[-1][1][0]
    assert int(last["kind"]) == CommandKind.PROTECTIVE_STOP
    assert int(last["reason_sensor"]) == 0 and int(last["reason_person"]) == 0


@pytest.mark.requirement("SR-EXE-1")
def test_a_late_wake_up_is_an_overrun_and_fault_stops() -> None:
    late_release = START_NS + 40 * MS  # the release of one cycle, woken 2.5 periods late

    def wake_latency(deadline: int) -> int:
        return 5 * MS // 2 if deadline == late_release else 0

    controller, _sensor, robot = _controller(wake_latency_ns=wake_latency)
    _run_and_reset(controller, 10, 20)
    assert robot.kinds()[-1] == CommandKind.RUN
    controller.run(duration_ns=30 * MS)
    reasons = [int(c[0]["reason"]) for _, c in robot.commands]
    assert Reason.LOOP_OVERRUN in reasons
    first = reasons.index(Reason.LOOP_OVERRUN)
    assert robot.kinds()[first] == CommandKind.FAULT_STOP
    assert all(k == CommandKind.FAULT_STOP for k in robot.kinds()[first:])  # latched until reset
    assert controller.stats.overruns >= 1
    assert controller.stats.skipped_releases >= 1


@pytest.mark.requirement("SR-EXE-1")
def test_a_command_written_after_the_deadline_fault_stops_the_next_cycle(tmp_path: Path) -> None:
    slow_cycle = 30

    def send_delay(n: int) -> int:
        return 2 * MS if n == slow_cycle else 0

    controller, _sensor, robot = _controller(tmp_path, send_delay_ns=send_delay)
    _run_and_reset(controller, 10, 50)
    controller.close()
    kinds = robot.kinds()
    assert kinds[slow_cycle - 1] == CommandKind.RUN  # the slow cycle itself already wrote RUN
    assert kinds[slow_cycle] == CommandKind.FAULT_STOP
    assert int(robot.commands[slow_cycle][1][0]["reason"]) == Reason.LOOP_OVERRUN
    cycles = read_trace(tmp_path / "run.cgtrace").streams["cycles"]
    assert cycles["overrun"][slow_cycle] == 1
    assert np.diff(cycles["cycle"]).max() > 1  # the missed releases were skipped, not run back to back
    assert controller.stats.overruns == 1


@pytest.mark.requirement("SR-EXE-1")
def test_a_command_later_than_the_worst_step_time_is_an_overrun_even_inside_the_period() -> None:
    cell = make_cell(cycle_period_ms=2.0, worst_step_ms=0.5)  # the budget counts on 0.5 ms, not 2 ms

    def send_delay(n: int) -> int:
        return MS if n == 20 else 100_000  # 1 ms once: late for the budget, still inside the period

    controller, _sensor, robot = _controller(cell=cell, send_delay_ns=send_delay)
    _run_and_reset(controller, 20, 60)
    reasons = [int(c[0]["reason"]) for _, c in robot.commands]
    assert reasons.count(Reason.LOOP_OVERRUN) >= 1
    assert reasons.index(Reason.LOOP_OVERRUN) == 20  # the cycle right after the late one
    assert controller.stats.overruns == 1 and controller.stats.skipped_releases == 0


SLOW = 20  # the command of this cycle (1-based, as the scripted robot counts them) is the late one


def _one_late_cycle(
    tmp_path: Path, how: str, late_ns: int, worst_step_ms: float = 3.5
) -> tuple[Controller, ScriptedRobot, np.ndarray]:
    """A 1 ms tick with the given worst step; cycle SLOW stalls `late_ns` while waking or writing."""
    cell = make_cell(cycle_period_ms=1.0, worst_step_ms=worst_step_ms)
    slow_release = START_NS + SLOW * MS  # arm() releases the first cycle at START_NS + 1 ms

    def wake_latency(release: int) -> int:
        return late_ns if how == "wake" and release == slow_release else 0

    def send_delay(n: int) -> int:
        return late_ns if how == "write" and n == SLOW else 0

    controller, _sensor, robot = _controller(
        tmp_path, cell=cell, wake_latency_ns=wake_latency, send_delay_ns=send_delay
    )
    controller.run(duration_ns=10 * MS)
    controller.press_reset()
    controller.run(duration_ns=40 * MS)
    controller.close()
    cycles = read_trace(tmp_path / "run.cgtrace").streams["cycles"]
    return controller, robot, cycles


@pytest.mark.parametrize("how", ["wake", "write"])
def test_a_cycle_late_within_its_worst_step_is_no_overrun_and_skips_the_releases_it_overlapped(
    tmp_path: Path, how: str
) -> None:
    # 1 ms tick, 3.5 ms worst step: cycle SLOW wakes, or writes its command, 2.5 ms after its release
    controller, robot, cycles = _one_late_cycle(tmp_path, how, 5 * MS // 2)
    reasons = [int(c[0]["reason"]) for _, c in robot.commands]
    assert Reason.LOOP_OVERRUN not in reasons
    assert robot.kinds()[SLOW:-1] == [CommandKind.RUN] * (len(robot.commands) - SLOW - 1)  # until close
    assert controller.stats.overruns == 0 and not cycles["overrun"].any()
    # the releases at +1 ms and +2 ms passed while it ran: the one at +2 ms runs at once (woken 0.5 ms
    # late), the one at +1 ms is skipped and counted, never run back to back
    assert controller.stats.skipped_releases == 1
    late = int(np.flatnonzero(cycles["command_seq"] == SLOW)[0])
    release = int(cycles["t_scheduled_ns"][late])
    assert int(cycles["t_command_written_ns"][late]) - release == 5 * MS // 2
    after = cycles[late + 1]
    assert int(after["cycle"]) - int(cycles["cycle"][late]) == 2
    assert int(after["t_scheduled_ns"]) == release + 2 * MS
    assert int(after["t_wake_ns"]) == release + 5 * MS // 2
    # so a frame that arrived just after the late cycle read its inputs waits at most max(period, worst
    # step) for the release of the cycle that takes it in (the budget's T_cycle on the tick)
    assert int(after["t_scheduled_ns"]) - release <= 7 * MS // 2
    assert np.all(np.diff(cycles["t_scheduled_ns"]) % MS == 0)


@pytest.mark.requirement("SR-EXE-1")
@pytest.mark.parametrize("how", ["wake", "write"])
def test_a_cycle_later_than_its_worst_step_is_an_overrun_and_fault_stops(tmp_path: Path, how: str) -> None:
    # the same 3.5 ms worst step, but cycle SLOW wakes, or writes its command, 4 ms after its release
    controller, robot, cycles = _one_late_cycle(tmp_path, how, 4 * MS)
    reasons = [int(c[0]["reason"]) for _, c in robot.commands]
    first = reasons.index(Reason.LOOP_OVERRUN)
    # woken after its deadline: that very cycle fault-stops; written after it: the next cycle does
    assert first == (SLOW - 1 if how == "wake" else SLOW)
    assert all(k == CommandKind.FAULT_STOP for k in robot.kinds()[first:])  # latched until a reset
    assert controller.stats.overruns == 1
    assert controller.stats.skipped_releases == 3  # +1, +2 and +3 ms; +4 ms runs at once
    late = int(np.flatnonzero(cycles["command_seq"] == SLOW)[0])
    assert int(cycles["overrun"][late]) == (1 if how == "wake" else 0)
    assert int(cycles["overrun"][late + 1]) == 1  # its command was late either way


@pytest.mark.requirement("SR-EXE-1")
def test_a_worst_step_equal_to_the_lateness_is_still_in_time(tmp_path: Path) -> None:
    # written exactly at release + worst step: the deadline is met (only later is an overrun)
    controller, robot, _cycles = _one_late_cycle(tmp_path, "write", 3 * MS, worst_step_ms=3.0)
    assert controller.stats.overruns == 0 and controller.stats.skipped_releases == 2
    assert Reason.LOOP_OVERRUN not in [int(c[0]["reason"]) for _, c in robot.commands]


def test_a_frame_behind_a_late_cycle_is_acted_on_within_the_budgets_controller_share(tmp_path: Path) -> None:
    """A worst step longer than the period costs more than "period + worst step": the budget counts it."""
    from cobotguard.safety.budget import reaction_stages

    cell = make_cell(cycle_period_ms=1.0, worst_step_ms=3.5)
    # the scripted camera exposes at START - 20 ms + k x 66.67 ms and sends 13 ms later; from the fourth
    # exposure (START + 180 ms) on, a person stands in the protective zone. That frame is sent at
    # START + 193 ms + 1 ns: just after the cycle released at START + 193 ms read its inputs.
    sent = START_NS - 20 * MS + 3 * 66_666_667 + 13 * MS
    late_seq = 193  # that cycle's command (one per release so far) goes out 3.4 ms after its release

    def send_delay(n: int) -> int:
        # the late cycle, then the next one (released at +3 ms, woken at +3.4 ms) at its deadline
        return {late_seq: 3_400_000, late_seq + 1: 3_100_000}.get(n, 0)

    controller, _sensor, robot = _controller(
        tmp_path,
        cell=cell,
        send_delay_ns=send_delay,
        persons=lambda t: [(1.0, 0.0)] if t >= START_NS + 150 * MS else [],
    )
    _run_and_reset(controller, 50, 160)
    controller.close()
    cycles = read_trace(tmp_path / "run.cgtrace").streams["cycles"]
    stop = robot.kinds().index(CommandKind.PROTECTIVE_STOP)
    assert stop + 1 == late_seq + 1  # the cycle after the late one saw the person
    rec = cycles[cycles["command_seq"] == late_seq + 1][0]
    assert int(rec["t_scheduled_ns"]) == START_NS + (late_seq + 3) * MS  # +1, +2 ms skipped
    # no overrun: each wrote by its deadline; each skipped the two releases before the one it let run
    assert controller.stats.overruns == 0 and controller.stats.skipped_releases == 4
    waited = int(rec["t_command_written_ns"]) - sent  # frame available -> stop command written
    share = {st.symbol: st.ns for st in reaction_stages(cell)}
    assert waited > 1 * MS + 7 * MS // 2  # more than period + worst step
    assert waited <= share["T_cycle"] + share["T_step"]  # max(period, worst step) + worst step


def test_wake_on_data_refuses_to_arm_the_tick_executor(tmp_path: Path) -> None:
    raw = make_cell().model_dump(mode="python")
    raw["controller"]["wake_on_data"] = True
    from cobotguard.safety.config_load import config_from_dict

    cell = config_from_dict(raw, "wake on data")
    for allow_unsafe_budget in (False, True):  # not a verdict to override: the budget's wait is wrong
        controller, _sensor, robot = _controller(tmp_path, cell=cell, allow_unsafe_budget=allow_unsafe_budget)
        with pytest.raises(ArmError) as info:
            controller.arm()
        assert info.value.reason == Reason.BUDGET_UNSAFE
        message = str(info.value)
        for words in (
            "waking on data",
            "cobotguard.safety.compiled_controller.CompiledController",
            "set controller.wake_on_data = false".capitalize(),
        ):
            assert words in message, message
        assert not controller.armed
        with pytest.raises(ArmError):
            controller.run(duration_ns=10 * MS)
        assert robot.commands == []
        assert not (tmp_path / "run.cgtrace").exists()
    controller, _sensor, _robot = _controller(tmp_path, cell=make_cell())  # the same cell on the tick
    controller.arm()
    assert controller.armed


@pytest.mark.requirement("SR-EXE-3")
def test_checksum_mismatch_refuses_to_arm(tmp_path: Path) -> None:
    controller, _sensor, robot = _controller(tmp_path, expected_checksum="deadbeef")
    with pytest.raises(ArmError) as info:
        controller.arm()
    assert info.value.reason == Reason.CHECKSUM_MISMATCH
    assert not controller.armed
    with pytest.raises(ArmError):
        controller.run(duration_ns=10 * MS)
    assert robot.commands == []
    assert not (tmp_path / "run.cgtrace").exists()


@pytest.mark.requirement("SR-EXE-3")
@pytest.mark.parametrize("which", [0, 1])
def test_matching_checksum_short_or_long_arms(which: int) -> None:
    expected = config_checksum(make_cell())[which].upper()
    controller, _sensor, _robot = _controller(expected_checksum=expected)
    controller.arm()
    assert controller.armed


def test_trace_round_trip_header_and_inputs(tmp_path: Path) -> None:
    controller, _sensor, _robot = _controller(tmp_path, persons=lambda t: [(2.0, 0.0)])
    _run_and_reset(controller, 20, 280)
    controller.close()
    trace = read_trace(tmp_path / "run.cgtrace")
    assert trace.complete
    short, long = config_checksum(make_cell())
    assert trace.header["config_checksum"] == short
    assert trace.header["config_checksum_long"] == long
    assert trace.header["cycle_period_ns"] == MS
    assert trace.header["reaction_time_ns"] > 0
    cycles, frames = trace.streams["cycles"], trace.streams["detections"]
    assert len(frames) >= 3
    # every frame is tagged with the cycle that took it in, and that cycle says so
    for frame in frames:
        rec = cycles[cycles["cycle"] == frame["cycle"]][0]
        assert rec["new_frames"] & 1
        assert rec["frame_counter"][0] == frame["frame_counter"]
        assert frame["t_exposure_ns"] < frame["t_received_ns"] <= rec["now_ns"]
    assert int((cycles["new_frames"] != 0).sum()) == len(frames)
    assert np.all(cycles["t_wake_ns"] <= cycles["t_step_start_ns"])
    assert np.all(cycles["t_step_start_ns"] <= cycles["t_step_end_ns"])
    assert np.all(cycles["t_step_end_ns"] <= cycles["t_command_written_ns"])
    assert trace.summary is not None and trace.summary["stats"]["cycles"] == 300


@pytest.mark.requirement("SR-EVD-1")
def test_torn_trace_is_detected(tmp_path: Path) -> None:
    controller, _sensor, _robot = _controller(tmp_path)
    controller.run(duration_ns=20 * MS)
    controller.close()
    path = tmp_path / "run.cgtrace"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(TraceError, match="byte"):
        read_trace(path)


@pytest.mark.requirement("SR-LINK-10")
def test_link_fault_fault_stops_with_the_link_reason() -> None:
    controller, sensor, robot = _controller()
    _run_and_reset(controller, 20, 20)
    assert robot.kinds()[-1] == CommandKind.RUN
    sensor.fault = int(Reason.LINK_CORRUPTION)
    controller.run(duration_ns=1 * MS)
    last = robot.commands[-1][1][0]
    assert int(last["kind"]) == CommandKind.FAULT_STOP
    assert int(last["reason"]) == Reason.LINK_CORRUPTION


def test_frames_arriving_together_enter_one_per_cycle_in_order(tmp_path: Path) -> None:
    controller, sensor, robot = _controller(tmp_path)
    _run_and_reset(controller, 20, 20)
    sensor.hold = True
    controller.run(duration_ns=140 * MS)
    assert len(sensor.pending) == 2  # two frames pile up, then arrive in one poll
    sensor.hold = False
    controller.run(duration_ns=5 * MS)
    controller.close()
    frames = read_trace(tmp_path / "run.cgtrace").streams["detections"]
    last_two = frames[-2:]
    assert list(np.diff(last_two["cycle"])) == [1]  # consecutive cycles, none dropped
    assert (int(last_two["frame_counter"][1]) - int(last_two["frame_counter"][0])) % 256 == 1
    assert last_two["t_received_ns"][0] < last_two["t_received_ns"][1]
    # they arrived far beyond their latency budget: that is a fault, never silently accepted
    last = robot.commands[-2][1][0]
    assert int(last["kind"]) == CommandKind.FAULT_STOP and int(last["reason"]) == Reason.SENSOR_STALE


@pytest.mark.requirement("SR-EXE-5")
def test_close_sends_a_final_stop_and_is_idempotent() -> None:
    controller, _sensor, robot = _controller()
    _run_and_reset(controller, 20, 20)
    controller.close()
    controller.close()
    seq, last = robot.commands[-1]
    assert int(last[0]["kind"]) == CommandKind.FAULT_STOP
    assert seq == controller.stats.cycles + 1


def test_gc_is_frozen_and_disabled_only_while_running() -> None:
    controller, _sensor, _robot = _controller()
    seen: list[bool] = []

    def until() -> bool:
        seen.append(gc.isenabled())
        return len(seen) > 5

    controller.run(until=until)
    assert seen and not any(seen)
    assert gc.isenabled()


def test_queue_ports_carry_frames_and_commands() -> None:
    clock = SimulatedClock(START_NS)
    sensors, robot = QueueSensorSource(), QueueRobotPort(history=8)
    controller = Controller(make_cell(), sensors, robot, clock=clock, realtime=False)
    controller.run(duration_ns=5 * MS)
    assert robot.commands_sent == 5 and robot.last_seq == 5 and len(robot.history) == 5
    assert int(robot.last_command[0]["reason"]) == Reason.ROBOT_NO_DATA


@pytest.mark.requirement("SR-EXE-4")
def test_an_unsafe_budget_refuses_to_arm_unless_explicitly_allowed() -> None:
    raw = make_cell().model_dump(mode="python")
    raw["robot"]["max_speed_mps"] = 1.0  # far too fast for this cell's zones
    from cobotguard.safety.config_load import config_from_dict

    unsafe = config_from_dict(raw, "unsafe")
    clock = SimulatedClock(START_NS)
    sensor, robot = ScriptedSensor(clock), ScriptedRobot(clock)
    controller = Controller(unsafe, sensor, robot, clock=clock, realtime=False)
    with pytest.raises(ArmError) as info:
        controller.arm()
    assert info.value.reason == Reason.BUDGET_UNSAFE and "unsafe" in str(info.value)
    allowed = Controller(unsafe, sensor, robot, clock=clock, realtime=False, allow_unsafe_budget=True)
    allowed.arm()
    assert allowed.armed


@pytest.mark.requirement("SR-EXE-6")
def test_memory_does_not_grow_with_cycles(tmp_path: Path) -> None:
    """gc is disabled while running, so a per-cycle allocation that is kept (or a reference cycle) would
    grow without bound: after warm-up, thousands of cycles must leave the loop's memory as it was."""
    import tracemalloc

    controller, _sensor, robot = _controller(tmp_path)
    robot.keep_history = False
    _run_and_reset(controller, 100, 200)
    loop_files = ("executor.py", "ports.py", "clock.py", "step.py", "trace.py")  # not the test ports
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        controller.run(duration_ns=5000 * MS)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        controller.close()
    grown = sum(
        stat.size_diff
        for stat in after.compare_to(before, "filename")
        if stat.traceback[0].filename.endswith(loop_files)
    )
    assert grown < 16 * 1024  # a leak of a single small object per cycle would be > 100 KiB


@pytest.mark.requirement("SR-EXE-6")
def test_nothing_compiles_after_arming(tmp_path: Path) -> None:
    """Every compiled function the loop calls was compiled by arm(): running adds no specialisation."""
    from cobotguard.safety import step
    from cobotguard.safety.executor import fill_cycle_record

    controller, _sensor, _robot = _controller(tmp_path, persons=lambda t: [(1.0, 2.5)])
    controller.arm()
    before = (len(step.step.signatures), len(fill_cycle_record.signatures))
    _run_and_reset(controller, 100, 300)
    controller.close()
    assert (len(step.step.signatures), len(fill_cycle_record.signatures)) == before


def test_close_from_another_thread_ends_the_loop_first() -> None:
    import threading

    from cobotguard.safety.clock import MonotonicClock

    sensors, robot = QueueSensorSource(), QueueRobotPort()
    controller = Controller(make_cell(), sensors, robot, clock=MonotonicClock(), realtime=False)
    controller.arm()
    loop = threading.Thread(target=controller.run)  # no duration: only stop/close ends it
    loop.start()
    while controller.stats.cycles < 5 and loop.is_alive():
        loop.join(0.01)
    controller.close()
    loop.join(5)
    assert not loop.is_alive()
    assert robot.last_seq == controller.stats.cycles + 1  # the final stop came after the last cycle
    assert int(robot.last_command[0]["reason"]) == Reason.NOT_ARMED


class _StalledDrainRecorder:
    """Patch for TraceRecorder.start: no drain thread at all (the worst case of a loaded machine)."""

    @staticmethod
    def start(self: object) -> None:  # noqa: ARG004 - replaces a method
        """Never start the drain thread."""


def test_simulated_clock_drains_a_full_ring_instead_of_dropping(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the drain thread never runs: a simulated run far longer than the ring must still lose nothing
    from cobotguard.safety.replay import replay
    from cobotguard.safety.trace import TraceRecorder

    monkeypatch.setattr(TraceRecorder, "start", _StalledDrainRecorder.start)
    controller, _sensor, _robot = _controller(tmp_path, persons=lambda t: [(2.0, 0.0)])
    controller.run(duration_ns=20 * MS)
    controller.press_reset()
    controller.run(duration_ns=2_500 * MS)  # 2520 cycles through a 2000-cycle ring
    controller.close()
    assert controller.stats.trace_dropped == 0 and controller.stats.trace_sync_drains >= 1
    trace = read_trace(tmp_path / "run.cgtrace")
    assert trace.complete and not any(trace.dropped.values())
    assert list(trace.streams["cycles"]["cycle"]) == list(range(2520))
    assert replay(trace).identical


def test_real_time_clock_drops_a_full_ring_and_counts_it(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # on a real-time clock the loop never waits for the file: records are dropped, counted and recorded
    from cobotguard.safety.replay import ReplayError, replay
    from cobotguard.safety.trace import TraceRecorder

    class RealTimeLikeClock(SimulatedClock):
        real_time = True

    monkeypatch.setattr(TraceRecorder, "start", _StalledDrainRecorder.start)
    clock = RealTimeLikeClock(START_NS)
    sensor = ScriptedSensor(clock, persons=lambda _t: [])
    robot = ScriptedRobot(clock)
    controller = Controller(
        make_cell(), sensor, robot, trace_path=tmp_path / "run.cgtrace", clock=clock, realtime=False
    )
    controller.run(duration_ns=2_500 * MS)
    controller.close()
    assert controller.stats.trace_sync_drains == 0
    assert controller.stats.trace_dropped == 500  # 2500 cycles, 2000 slots, nothing drained until close
    trace = read_trace(tmp_path / "run.cgtrace")
    assert trace.dropped["cycles"] == 500 and len(trace.streams["cycles"]) == 2000
    with pytest.raises(ReplayError, match="full trace ring"):
        replay(trace)
