"""The compiled hard loop (safety.cycle) on real descriptors, with a robot and a sensor speaking the link.

These tests run on the real clock but assert behaviour only (states reached, reasons, counts that a GIL-
or allocation-bound loop could not reach), never durations; speed is measured in bench/bench_loop.py.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cycle_support import Cell
from numba.core.runtime import _nrt_python, rtsys

from cobotguard.safety import cycle
from cobotguard.safety.compiled_controller import CompiledController
from cobotguard.safety.config import CellConfig
from cobotguard.safety.config_load import load_config
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.replay import replay
from cobotguard.safety.trace import read_trace

DEFAULT_CELL = Path(__file__).resolve().parent.parent / "hil" / "defaults" / "cell.toml"
GUARD_S = 20.0  # a guard against hanging, never an assertion on speed


OWN_CLOCK = {
    "clock": "own",
    "clock_sync_period_ms": 50.0,
    "clock_error_limit_ms": 5.0,
    "clock_max_drift_ppm": 200.0,
}


def cell_config(
    wake_on_data: bool = True, worst_step_ms: float = 10.0, n_sensors: int = 1, own_clock: bool = False
) -> CellConfig:
    """The default cell with a worst step that covers this noisy machine (and a second camera if asked;
    with own_clock, the camera on a clock of its own)."""
    data = load_config(DEFAULT_CELL).model_dump()
    if own_clock:
        data["sensors"]["cam0"].update(OWN_CLOCK)
    data["controller"].update(
        worst_step_ms=worst_step_ms, wake_on_data=wake_on_data, robot_state_timeout_ms=60.0
    )
    data["link"].update(command_watchdog_ms=80.0)
    if n_sensors == 2:
        data["sensors"]["cam1"] = dict(data["sensors"]["cam0"], connection_id=102)
    return CellConfig.model_validate(data)


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    cycle.warm_up()


def wait_for(predicate, guard_s: float = GUARD_S) -> bool:  # type: ignore[no-untyped-def]
    give_up = time.monotonic() + guard_s
    while time.monotonic() < give_up:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class Running:
    """A CompiledController over a Cell, its run() in a background thread."""

    def __init__(
        self,
        cfg: CellConfig,
        trace_path=None,
        realtime: bool = False,
        peers_apart: bool = False,
        sensor_clock=None,
        answer_sync: bool = True,
    ) -> None:  # type: ignore[no-untyped-def]
        self.cell = Cell(cfg)
        for peer in self.cell.sensors:
            peer.clock = sensor_clock or peer.clock
            peer.answer_sync = answer_sync
        self.ctl = CompiledController(
            cfg, self.cell.robot_fd, self.cell.sensor_fds, trace_path=trace_path, realtime=realtime
        )
        self.ctl.arm()
        if peers_apart:
            self.cell.start_process()
        else:
            self.cell.start()
        self.thread = threading.Thread(target=self.ctl.run, daemon=True)
        self.thread.start()

    def kind(self) -> int:
        return int(self.ctl.command[0]["kind"])

    def reason(self) -> int:
        return int(self.ctl.command[0]["reason"])

    def reset_until_run(self) -> bool:
        def running() -> bool:
            if self.kind() != int(CommandKind.RUN):
                self.ctl.press_reset()
                time.sleep(0.05)
            return self.kind() == int(CommandKind.RUN)

        return wait_for(running)

    def close(self) -> None:
        self.ctl.stop()
        self.thread.join(GUARD_S)
        self.ctl.close()
        self.cell.close()


def test_a_healthy_cell_runs_after_a_reset_and_stops_for_a_person(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = Running(cell_config(), trace_path=tmp_path / "t.cgtrace")
    try:
        assert run.reset_until_run(), f"never reached RUN: reason {Reason(run.reason()).name}"
        run.cell.sensors[0].persons = [(1.0, 0.0)]  # inside the protective zone
        assert wait_for(lambda: run.kind() == int(CommandKind.PROTECTIVE_STOP))
        assert run.reason() in (int(Reason.PERSON_IN_PROTECTIVE_ZONE), int(Reason.SEPARATION_BELOW_SP))
        assert run.ctl.data_steps > 0  # frames were stepped as they arrived, not only on the tick
    finally:
        run.close()
    trace = read_trace(tmp_path / "t.cgtrace")
    cycles = trace.streams["cycles"]
    assert trace.complete and cycles.size == run.ctl.stats.cycles
    assert np.all(np.diff(cycles["cycle"]) == 1)
    data = cycles[cycles["trigger"] == cycle.TRIGGER_DATA]
    assert data.size > 0 and np.all(data["new_frames"] != 0)  # a data step always takes in a frame
    ticks = cycles[cycles["trigger"] == cycle.TRIGGER_TICK]
    assert np.all(np.diff(ticks["t_scheduled_ns"]) % run.ctl.period_ns == 0)
    assert trace.streams["detections"].size == run.ctl.stats.frames_in
    result = replay(trace)  # the recorded inputs through the reference path give the same commands
    assert result.identical and result.cycles == cycles.size, result.divergence


def test_tick_mode_steps_only_on_releases(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = Running(cell_config(wake_on_data=False), trace_path=tmp_path / "t.cgtrace")
    try:
        assert run.reset_until_run()
    finally:
        run.close()
    cycles = read_trace(tmp_path / "t.cgtrace").streams["cycles"]
    assert run.ctl.data_steps == int(np.count_nonzero(cycles["trigger"] == cycle.TRIGGER_RESET))
    assert not np.any(cycles["trigger"] == cycle.TRIGGER_DATA)


@pytest.mark.requirement("SR-LINK-8")
def test_a_frame_naming_another_sensor_latches_addressing_until_reset() -> None:
    run = Running(cell_config(n_sensors=2))
    try:
        assert run.reset_until_run()
        run.cell.sensors[1].sensor_index_override = 0  # sensor 1's line carries frames claiming sensor 0
        assert wait_for(lambda: run.reason() == int(Reason.LINK_ADDRESSING))
        time.sleep(0.1)
        assert run.reason() == int(Reason.LINK_ADDRESSING)  # latched: no RUN between the bad frames
        assert run.kind() == int(CommandKind.FAULT_STOP)
        run.cell.sensors[1].sensor_index_override = None
        assert run.reset_until_run()
    finally:
        run.close()


def test_the_loop_keeps_running_while_another_thread_holds_the_gil() -> None:
    """With the switch interval at 1000 s, the busy main thread never hands the GIL over: a loop that needed
    it could not complete a single cycle meanwhile."""
    run = Running(cell_config())
    try:
        assert wait_for(lambda: run.ctl.stats.cycles > 10)
        old = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        try:
            before = int(run.ctl.loop_stats[cycle.S_CYCLES])
            end = time.monotonic_ns() + 300_000_000
            spins = 0
            while time.monotonic_ns() < end:
                spins += 1
            after = int(run.ctl.loop_stats[cycle.S_CYCLES])
        finally:
            sys.setswitchinterval(old)
        assert after - before > 10, (before, after, spins)
    finally:
        run.close()


@pytest.mark.requirement("SR-EXE-6")
def test_the_loop_allocates_nothing_while_it_runs() -> None:
    """numba's runtime counts every allocation: none while the loop runs (its arrays are all preallocated)."""
    _nrt_python.memsys_enable_stats()
    run = Running(cell_config(), peers_apart=True)  # the peers' own numba calls would be counted too
    try:
        assert run.reset_until_run()
        before = rtsys.get_allocation_stats()
        cycles_before = run.ctl.stats.cycles
        time.sleep(0.3)
        after = rtsys.get_allocation_stats()
        assert run.ctl.stats.cycles > cycles_before
    finally:
        run.close()
    assert after.alloc == before.alloc and after.mi_alloc == before.mi_alloc


@pytest.mark.requirement("SR-LINK-9")
def test_a_peer_that_goes_silent_stops_the_cell_with_a_link_timeout() -> None:
    run = Running(cell_config())
    try:
        assert run.reset_until_run()
        run.cell.stop.set()  # robot and sensor threads end: nothing arrives any more
        assert wait_for(lambda: run.kind() == int(CommandKind.FAULT_STOP))
        assert run.reason() in (int(Reason.LINK_TIMEOUT), int(Reason.SENSOR_STALE), int(Reason.ROBOT_STALE))
    finally:
        run.close()


def test_a_port_that_hangs_up_latches_link_loss_once_and_the_loop_keeps_its_tick() -> None:
    run = Running(cell_config())
    try:
        assert run.reset_until_run()
        run.cell.stop.set()
        for t in run.cell.threads:
            t.join(2.0)
        run.cell._keep[1].close()  # the robot's end of the robot link: our end reads end of file
        robot_link = run.ctl.receivers[cycle.ROBOT_LINK]
        assert wait_for(lambda: int(robot_link["error_reason"]) == int(Reason.LINK_LOSS))
        steps = run.ctl.stats.cycles
        time.sleep(0.2)
        assert int(run.ctl.loop_stats[cycle.S_PORT_FAILURES]) == 1  # no longer polled: no busy loop
        # about one step per release since: 0.2 s / 2 ms = 100 (a spinning loop would make thousands)
        assert run.ctl.stats.cycles - steps < 1000
        assert run.kind() == int(CommandKind.FAULT_STOP)
        assert int(robot_link["error_reason"]) == int(Reason.LINK_LOSS)  # latched until a reset
    finally:
        run.close()


# -- a sensor on a clock of its own (docs/protocol.md, section 14) ------------------------------------


def test_a_sensor_on_its_own_clock_runs_and_stops_for_a_person(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cobotguard.sensor.clock import OwnClock

    clock = OwnClock(offset_ns=-42 * 10**9, drift_ppm=-100.0)
    run = Running(cell_config(own_clock=True), trace_path=tmp_path / "t.cgtrace", sensor_clock=clock)
    try:
        assert run.reset_until_run(), f"never reached RUN: reason {Reason(run.reason()).name}"
        assert int(run.ctl.clocks[1]["replies"]) > 0 and int(run.ctl.clocks[1]["has_estimate"]) == 1
        offset = int(run.ctl.clocks[1]["offset_ns"])
        assert abs(offset - 42 * 10**9) < 5_000_000  # controller minus sensor clock, within the limit
        run.cell.sensors[0].persons = [(1.0, 0.0)]
        stopped = wait_for(lambda: run.kind() == int(CommandKind.PROTECTIVE_STOP))
        assert stopped, f"{CommandKind(run.kind()).name} {Reason(run.reason()).name}"
    finally:
        run.close()
    trace = read_trace(tmp_path / "t.cgtrace")
    frames = trace.streams["detections"]
    assert frames.size > 0 and np.all(frames["t_exposure_ns"] <= frames["t_received_ns"])  # controller time
    result = replay(trace)
    assert result.identical, result.divergence


def test_a_sensor_that_does_not_answer_sync_stops_the_cell_by_name() -> None:
    run = Running(cell_config(own_clock=True), answer_sync=False)
    try:
        assert wait_for(lambda: run.reason() == int(Reason.SENSOR_CLOCK_SYNC_LOST))
        assert run.kind() == int(CommandKind.FAULT_STOP)
    finally:
        run.close()


@pytest.mark.parametrize("step_s", [1, -1])
def test_a_sensor_clock_step_stops_the_cell(step_s: int) -> None:
    from cobotguard.sensor.clock import OwnClock

    clock = OwnClock(offset_ns=3600 * 10**9)
    run = Running(cell_config(own_clock=True), sensor_clock=clock)
    try:
        assert run.reset_until_run()
        clock.step(step_s * 10**9)
        # forward: every converted time is ahead of its arrival; backward: sender times go back (rule 2)
        expected = {int(Reason.SENSOR_CLOCK_STEP)} | ({int(Reason.LINK_INSERTION)} if step_s < 0 else set())
        assert wait_for(lambda: run.reason() in expected), Reason(run.reason()).name
    finally:
        run.close()
