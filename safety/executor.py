"""The cyclic executor: runs the safety step on a fixed tick with absolute deadlines (the imperative shell).

Library use::

    from cobotguard.safety.config_load import load_config
    from cobotguard.safety.executor import Controller
    from cobotguard.safety.ports import QueueRobotPort, QueueSensorSource

    cfg = load_config("cell.toml")
    sensors, robot = QueueSensorSource(), QueueRobotPort()
    controller = Controller(cfg, sensors, robot, trace_path="run.cgtrace", expected_checksum="1a2b3c4d")
    controller.arm()            # compiles and warms the step, checks the checksum; raises ArmError
    controller.run(duration_ns=10_000_000_000)   # or run(until=callable), or stop() from another thread
    controller.close()          # final stop command, trace flushed and closed

Each cycle k is released at r_k = t0 + k * period and must have written its command by its deadline
r_k + worst_step (`controller.worst_step_ms`): the budget counts on it. The worst step may be longer than
the period. Per cycle: wake at the release (sleep, then spin), take in at most one new frame per sensor
and the newest robot state, run the step, send its command (the robot's heartbeat), record the cycle.

Overruns: a cycle that wakes at or after its deadline runs the step with the overrun input set; a cycle
that writes its command after its deadline sets it for the next cycle. Either way the step fault-stops
(LOOP_OVERRUN, latched until a reset). Nothing else is an overrun.

Late cycles: a cycle that writes its command after later releases have passed (within its worst step, or
an overrun) is followed at once by the latest of those releases, woken late; the ones before it are
skipped and counted in `LoopStats.skipped_releases`, never run back to back. Skipping alone does not set
the overrun input: the cycle that runs is judged by its own deadline. So a frame that arrives just after
a cycle read its inputs waits at most max(period, worst step) for the release of the cycle that takes it
in, which is the controller wait T_cycle of the budget (safety.budget.controller_wait_stage).

This executor steps on the tick only. A configuration with `controller.wake_on_data = true` budgets on a
loop that steps a frame as soon as it is readable (the compiled loop,
`safety.compiled_controller.CompiledController`): `Controller.arm()` refuses it.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from cobotguard.safety.clock import Clock, MonotonicClock, is_real_time
from cobotguard.safety.ports import ResetHook, RobotPort, SensorSource, StartHook
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    DETECTION_DTYPE,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.trace import (
    CYCLE_DTYPE,
    DETECTION_TRACE_DTYPE,
    TraceRecorder,
    TraceWriter,
    header_for_config,
)

PENDING_FRAMES_PER_SENSOR = 8  # frames waiting to enter the step, per sensor; more is a LINK_LOSS fault
RECEIVE_BATCH = MAX_SENSORS * 4  # frames taken from the sensor source per cycle
TRACE_RING_SECONDS = 2.0  # ring capacity in seconds of cycles: the drain thread may stall this long
GIL_SWITCH_INTERVAL_S = 5e-5  # while armed: bounds how long the drain thread can keep the loop waiting
CLOSE_WAIT_S = 1.0  # close() from another thread waits this long for the loop's current cycle to end
QUIET_MARGIN_NS = 300_000  # the drain thread starts a pass only this long before the loop begins to spin


class ArmError(RuntimeError):
    """The controller refuses to arm: checksum mismatch, unsafe budget, step not compilable (`.reason`)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_checksum(cfg: Any, expected: str | None) -> None:
    """Raise ArmError (CHECKSUM_MISMATCH) when a checksum is expected and the configuration's differs."""
    from cobotguard.safety.checksum import checksum_matches, config_checksum

    if expected is not None and not checksum_matches(cfg, expected):
        short, long = config_checksum(cfg)
        raise ArmError(
            Reason.CHECKSUM_MISMATCH,
            f"configuration checksum {short} ({long}) does not match the expected {expected}; "
            "refusing to arm",
        )


def check_budget(cfg: Any, allow_unsafe_budget: bool = False) -> None:
    """Raise ArmError (BUDGET_UNSAFE) when the latency budget is unsafe, unless explicitly allowed."""
    from cobotguard.safety.budget import evaluate

    report = evaluate(cfg)
    if not report.safe and not allow_unsafe_budget:
        raise ArmError(
            Reason.BUDGET_UNSAFE,
            "the configuration's latency budget is unsafe; refusing to arm: " + "; ".join(report.reasons),
        )


def write_not_armed_stop(command: np.ndarray, stop_category: int) -> None:
    """command[0] becomes the stop sent before arming and at close: FAULT_STOP, reason NOT_ARMED."""
    cmd = command[0]
    cmd["kind"] = int(CommandKind.FAULT_STOP)
    cmd["speed_limit_mps"] = 0.0
    cmd["stop_category"] = stop_category
    cmd["reason"] = int(Reason.NOT_ARMED)
    cmd["reason_sensor"] = -1
    cmd["reason_person"] = -1
    cmd["reason_zone"] = -1


@dataclass
class LoopStats:
    """Counters of a run, for the CLI and the trace summary."""

    cycles: int = 0  # cycles executed
    overruns: int = 0  # cycles that wrote their command after their deadline (release + worst step)
    skipped_releases: int = 0  # releases passed over because an earlier cycle wrote its command after them
    paused_releases: int = 0  # releases that fell between run() calls (not running: no overrun)
    max_wake_latency_ns: int = 0
    max_cycle_ns: int = 0  # release to command written
    frames_in: int = 0
    frames_lost: int = 0  # frames dropped because a sensor's pending queue was full
    link_faults: int = 0  # cycles with a receive error fed to the step
    trace_dropped: int = 0  # trace records lost to a full ring (real-time clock only)
    trace_sync_drains: int = 0  # simulated clock: the loop wrote a full ring to the file itself

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (JSON-ready)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Core:
    """The functional core the executor drives: parameter building, state, warm-up and the step."""

    build_params: Callable[[Any], np.ndarray]
    new_state: Callable[[np.ndarray], np.ndarray]
    warm_up: Callable[[np.ndarray], None]
    step: Callable[..., None]


def default_core() -> Core:
    """The numba-compiled core: safety.params.build_params and safety.step."""
    from cobotguard.safety import step
    from cobotguard.safety.params import build_params

    return Core(build_params, step.new_state, step.warm_up, step.step)


StepCaller = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int, int, np.ndarray], None]


def link_fault_mode(core: Core) -> str:
    """ "step" when the core's step takes a `link_fault` input, "shell" when the executor applies it."""
    import inspect

    py_func = getattr(core.step, "py_func", core.step)
    return "step" if "link_fault" in inspect.signature(py_func).parameters else "shell"


def step_caller(core: Core) -> StepCaller:
    """`call(params, state, detections, robot, reset, overrun, link_fault, now_ns, command)` for a core.

    A step with a `link_fault` input gets it directly (the step latches the fault and needs a reset).
    A step without one is called as is, and a link fault then overrides its command with a fault stop
    naming the link Reason for that cycle (not latched by the step; the step's own staleness checks stop
    the cell if the link stays broken). Replay uses the same caller, so it reproduces either behaviour.
    """
    from cobotguard.safety.step import apply_link_fault

    fn = core.step
    if link_fault_mode(core) == "step":
        return fn

    def call(
        params: np.ndarray,
        state: np.ndarray,
        detections: np.ndarray,
        robot: np.ndarray,
        reset: int,
        overrun: int,
        link_fault: int,
        now_ns: int,
        command: np.ndarray,
    ) -> None:
        fn(params, state, detections, robot, reset, overrun, now_ns, command)
        if link_fault:
            apply_link_fault(params, command, link_fault)

    return call


_ROBOT_OFFSET = CYCLE_DTYPE.fields["robot"][1]  # type: ignore[index]
_COMMAND_OFFSET = CYCLE_DTYPE.fields["command"][1]  # type: ignore[index]


@njit(cache=False, nogil=True)
def fill_cycle_record(
    buf,
    buf_u8,
    slot,
    cycle,
    release,
    t_wake,
    now,
    t_start,
    t_end,
    t_written,
    overrun,
    reset,
    link_fault,
    new_frames,
    seq,
    detections,
    robot_u8,
    command_u8,
):
    """Write one CYCLE_DTYPE record into buf[slot] in place (no allocation, no Python objects)."""
    r = buf[slot]
    r.cycle = cycle
    r.t_scheduled_ns = release
    r.t_wake_ns = t_wake
    r.t_inputs_ns = now
    r.now_ns = now
    r.t_step_start_ns = t_start
    r.t_step_end_ns = t_end
    r.t_command_written_ns = t_written
    r.overrun = overrun
    r.reset_input = reset
    r.link_fault = link_fault
    r.new_frames = new_frames
    r.command_seq = seq
    for i in range(detections.shape[0]):
        r.frame_counter[i] = detections[i].frame_counter
    base = slot * buf.itemsize
    for k in range(robot_u8.shape[0]):
        buf_u8[base + _ROBOT_OFFSET + k] = robot_u8[k]
    for k in range(command_u8.shape[0]):
        buf_u8[base + _COMMAND_OFFSET + k] = command_u8[k]


class Controller:
    """The safety controller: the step on a fixed tick, talking through a sensor source and a robot port.

    cfg: a validated CellConfig. sensor_source / robot_port: see safety.ports. trace_path: where to write
    the trace (None: no trace). expected_checksum: short or long configuration checksum that must match,
    or arming is refused. clock: MonotonicClock by default; a SimulatedClock makes runs exact and instant.
    realtime: try SCHED_FIFO / affinity (`cpu`) / mlockall while running (warnings in `.warnings`).
    reset_input: callable giving the reset input level each cycle (default: the level set by `set_reset`).
    core: the functional core (default: `default_core()`), replaceable for tests.
    allow_unsafe_budget: arm even when `safety.budget.evaluate` says the configuration is unsafe (for
    demonstrations of what goes wrong; never in a cell with people).
    """

    def __init__(
        self,
        cfg: Any,
        sensor_source: SensorSource,
        robot_port: RobotPort,
        trace_path: str | Path | None = None,
        expected_checksum: str | None = None,
        *,
        clock: Clock | None = None,
        realtime: bool = True,
        cpu: int | None = None,
        rt_priority: int = 80,
        reset_input: Callable[[], bool] | None = None,
        producer: str = "cobotguard controller",
        core: Core | None = None,
        allow_unsafe_budget: bool = False,
    ) -> None:
        from cobotguard.safety.checksum import config_checksum
        from cobotguard.safety.config import ns

        self.cfg = cfg
        self.sensor_source = sensor_source
        self.robot_port = robot_port
        self.trace_path = Path(trace_path) if trace_path is not None else None
        self.expected_checksum = expected_checksum
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.realtime = realtime
        self.cpu = cpu
        self.rt_priority = rt_priority
        self.producer = producer
        self.allow_unsafe_budget = allow_unsafe_budget
        self.core = core if core is not None else default_core()
        self._step = step_caller(self.core)
        self.checksum_short, self.checksum_long = config_checksum(cfg)
        self.period_ns = ns(cfg.controller.cycle_period_ms)
        # the budget assumes each command is written within worst_step_ms of its release: that is the
        # deadline, even where it is longer than the period
        self.deadline_ns = ns(cfg.controller.worst_step_ms)
        self.n_sensors = len(cfg.sensors)
        self.stats = LoopStats()
        self.warnings: list[str] = []
        self.armed = False
        self._reset_fn = reset_input
        self._reset_level = False
        self._reset_pulse = 0
        self._reset_prev = 1  # like the step: a reset input already high at start-up is not an edge
        self._stop_requested = threading.Event()
        self._recorder: TraceRecorder | None = None
        self._next_release_ns = 0
        self._cycle = 0
        self._pending_overrun = 0
        self._seq = 0
        self._closed = False
        self._memory_lock: Any = None  # RealtimeSettings that locked memory, unlocked by close()
        self._running = False  # inside run()
        self._loop_thread = 0  # the thread running run()
        self._between_cycles = True  # the current cycle's work is done (read by the drain thread)
        # On a simulated clock the loop outruns the drain thread by orders of magnitude, and waiting costs
        # no simulated time: a full ring is then drained by the loop itself, so no record is ever lost.
        # On the real clock waiting would miss deadlines: a full ring drops (counted and recorded).
        self._drain_when_full = not is_real_time(self.clock)

        # the ports' optional hooks (safety.ports.StartHook / ResetHook), looked up once
        ports = (sensor_source, robot_port)
        self._start_hooks = [p.start for p in ports if isinstance(p, StartHook)]
        self._reset_hooks = [p.reset_link for p in ports if isinstance(p, ResetHook)]
        # Everything the loop touches is allocated here, once.
        self.params = self.core.build_params(cfg)
        self.state = self.core.new_state(self.params)
        self.detections = empty_detections(MAX_SENSORS)  # the frame held per sensor, as the step sees it
        self.robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        self.command = np.zeros(1, dtype=COMMAND_DTYPE)
        self._stop_command()
        self._received = np.zeros(RECEIVE_BATCH, dtype=DETECTION_DTYPE)
        self._pending = np.zeros((MAX_SENSORS, PENDING_FRAMES_PER_SENSOR), dtype=DETECTION_DTYPE)
        self._pending_head = [0] * MAX_SENSORS
        self._pending_count = [0] * MAX_SENSORS
        self._robot_u8 = self.robot.view(np.uint8)
        self._command_u8 = self.command.view(np.uint8)
        self._frame_rec = np.zeros(1, dtype=DETECTION_TRACE_DTYPE)
        # The trace record starts with the detection's fields in the same packed layout: copy as one.
        self._frame_as_detection = self._frame_rec.view(np.uint8)[: DETECTION_DTYPE.itemsize].view(
            DETECTION_DTYPE
        )

    # ----------------------------------------------------------------- public API

    def arm(self) -> None:
        """Check the checksum and the budget, compile and warm the step, open the trace. Raises ArmError."""
        if self.armed:
            return
        check_checksum(self.cfg, self.expected_checksum)
        if self.cfg.controller.wake_on_data:
            raise ArmError(
                Reason.BUDGET_UNSAFE,
                "controller.wake_on_data = true: the budget counts on waking on data (a frame stepped as "
                "soon as it is readable), which only the compiled loop "
                "cobotguard.safety.compiled_controller.CompiledController does; this executor steps on "
                "the tick only. "
                "Set controller.wake_on_data = false to run this executor (the budget then counts the wait "
                "for the tick); refusing to arm",
            )
        check_budget(self.cfg, self.allow_unsafe_budget)
        try:
            self.core.warm_up(self.params)
        except Exception as exc:  # a step that cannot compile must never run
            raise ArmError(Reason.STATE_INVALID, f"safety step failed to compile or warm up: {exc}") from exc
        self.state = self.core.new_state(self.params)
        if self.trace_path is not None:
            header = header_for_config(
                self.cfg,
                self.producer,
                n_sensors=self.n_sensors,
                detections_stream="detections",
                link_fault_mode=link_fault_mode(self.core),
                deadline_ns=self.deadline_ns,
            )
            writer = TraceWriter(
                self.trace_path, header, {"cycles": CYCLE_DTYPE, "detections": DETECTION_TRACE_DTYPE}
            )
            capacity = max(1024, int(TRACE_RING_SECONDS * 1e9 / self.period_ns))
            may_drain = self._quiet if isinstance(self.clock, MonotonicClock) else None
            self._recorder = TraceRecorder(
                writer, capacity={"cycles": capacity, "detections": capacity}, may_drain=may_drain
            )
            self._recorder.start()
        self._cycles_ring = self._recorder.ring("cycles") if self._recorder else None
        self._frames_ring = self._recorder.ring("detections") if self._recorder else None
        if self._cycles_ring is not None:
            self._cycles_u8 = self._cycles_ring.buf.view(np.uint8)
            scratch = np.zeros(1, dtype=CYCLE_DTYPE)  # compile the record kernel now, not in the loop
            fill_cycle_record(
                scratch,
                scratch.view(np.uint8),
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                self.detections,
                self._robot_u8,
                self._command_u8,
            )
        now = self.clock.now_ns()
        for start in self._start_hooks:  # e.g. link ports drop what queued up while the step compiled
            start(now)
        self._next_release_ns = now + self.period_ns
        self.armed = True

    def run(self, duration_ns: int | None = None, until: Callable[[], bool] | None = None) -> LoopStats:
        """Run cycles until `duration_ns` has passed, `until()` is true (checked each cycle) or `stop()`.

        Arms first if needed. The calling thread becomes the loop thread (real-time settings apply to it
        while this call runs). Returns the counters; call again to continue, `close()` to finish.
        """
        self.arm()
        settings = None
        if self.realtime:
            from cobotguard.safety.realtime import apply_loop_realtime

            # memory is locked once and stays locked until close(): mlockall takes 100+ ms on a large process
            lock = self._memory_lock is None
            settings = apply_loop_realtime(self.rt_priority, self.cpu, lock, self.warnings)
            if settings.memory_locked:
                self._memory_lock = settings
        old_switch = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        gc.collect()
        gc.freeze()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        # Releases that fell between run() calls (or into the set-up above: mlockall can take 100+ ms)
        # were never due: the loop was not running. Skip them without flagging an overrun.
        now = self.clock.now_ns()
        if self._next_release_ns <= now:
            gap = (now - self._next_release_ns) // self.period_ns + 1
            self._next_release_ns += gap * self.period_ns
            self._cycle += gap
            self.stats.paused_releases += gap
        end_ns = self._next_release_ns + duration_ns if duration_ns is not None else None
        self._running = True
        self._loop_thread = threading.get_ident()
        try:
            while not self._stop_requested.is_set():
                if end_ns is not None and self._next_release_ns >= end_ns:
                    break
                if until is not None and until():
                    break
                self._run_cycle()
        finally:
            self._running = False
            if gc_was_enabled:
                gc.enable()
            gc.unfreeze()
            sys.setswitchinterval(old_switch)
            if settings is not None:
                settings.restore(unlock_memory=False)
        return self.stats

    def stop(self) -> None:
        """End the loop after the current cycle (any thread or a signal handler); final: later run() calls
        return at once, so call close() next."""
        self._stop_requested.set()

    def close(self) -> None:
        """Stop the loop (waiting for run() in another thread to return), send a final stop command, flush
        and close the trace. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._running and self._loop_thread != threading.get_ident():
            give_up = time.monotonic() + CLOSE_WAIT_S
            while self._running and time.monotonic() < give_up:
                time.sleep(0.001)
        now = self.clock.now_ns()
        self._stop_command()
        self.command[0]["t_ns"] = now
        self._seq += 1
        try:
            self.robot_port.send_command(self.command, self._seq, now)
        finally:
            if self._memory_lock is not None:
                self._memory_lock.restore()
                self._memory_lock = None
            if self._recorder is not None:
                self.stats.trace_dropped = sum(self._recorder.dropped.values())
                self._recorder.close(
                    stats=self.stats.as_dict(), final_command_seq=self._seq, warnings=self.warnings
                )
                self._recorder = None

    def set_reset(self, level: bool) -> None:
        """Set the reset input level (a restart needs a rising edge: low, then high)."""
        self._reset_level = bool(level)

    def press_reset(self, cycles: int = 1) -> None:
        """A reset pulse: the input reads high for `cycles` cycles, then low again."""
        self._reset_pulse = max(1, cycles)

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- the loop

    def _quiet(self) -> bool:
        """Called by the trace's drain thread: is the loop between cycles, well before its next wake-up?"""
        if not self._running or not self._between_cycles:
            return not self._running
        assert isinstance(self.clock, MonotonicClock)
        margin = self.clock.spin_ns + QUIET_MARGIN_NS
        return self.clock.now_ns() < self._next_release_ns - margin

    def _stop_command(self) -> None:
        write_not_armed_stop(self.command, int(self.cfg.robot.stop_category))

    def _reset_now(self) -> int:
        if self._reset_pulse > 0:
            self._reset_pulse -= 1
            return 1
        if self._reset_fn is not None:
            return int(bool(self._reset_fn()))
        return int(self._reset_level)

    def _reset_links(self, now_ns: int) -> None:
        for reset_link in self._reset_hooks:
            reset_link(now_ns)

    def _take_in_frames(self, now_ns: int) -> int:
        """Queue received frames per sensor; move at most one per sensor into the held set. Returns a mask."""
        received = self.sensor_source.receive(now_ns, self._received)
        fault = 0
        for i in range(received):
            frame = self._received[i]
            s = int(frame["sensor_index"])
            if not 0 <= s < self.n_sensors:
                fault = fault or int(Reason.LINK_ADDRESSING)
                continue
            if self._pending_count[s] >= PENDING_FRAMES_PER_SENSOR:
                self.stats.frames_lost += 1
                fault = fault or int(Reason.LINK_LOSS)
                continue
            slot = (self._pending_head[s] + self._pending_count[s]) % PENDING_FRAMES_PER_SENSOR
            self._pending[s, slot] = frame
            self._pending_count[s] += 1
        self._frames_fault = fault
        mask = 0
        for s in range(self.n_sensors):
            if self._pending_count[s]:
                head = self._pending_head[s]
                previous_rx = int(self.detections[s]["t_received_ns"])
                self.detections[s] = self._pending[s, head]
                if int(self.detections[s]["t_received_ns"]) <= previous_rx:
                    # arrived in the same batch as the previous frame and held back a cycle: it reaches
                    # the step now, so that is its receive time (the step tells frames apart by it)
                    self.detections[s]["t_received_ns"] = now_ns
                self._pending_head[s] = (head + 1) % PENDING_FRAMES_PER_SENSOR
                self._pending_count[s] -= 1
                mask |= 1 << s
                self.stats.frames_in += 1
        return mask

    def _run_cycle(self) -> None:
        clock = self.clock
        release = self._next_release_ns
        deadline = release + self.deadline_ns
        t_wake = clock.sleep_until(release)
        self._between_cycles = False
        overrun = self._pending_overrun
        if t_wake >= deadline:  # woke after the deadline: this cycle cannot meet it
            overrun = 1
        reset = self._reset_now()
        if reset and not self._reset_prev:
            self._reset_links(t_wake)  # the operator's reset also clears latched link errors
        self._reset_prev = reset
        new_frames = self._take_in_frames(t_wake)
        self.robot_port.receive_state(t_wake, self.robot)
        # int(): a port returning a numpy integer must not make the compiled code specialise in the loop
        link_fault = int(
            self._frames_fault or self.sensor_source.take_fault() or self.robot_port.take_fault()
        )
        if link_fault:
            self.stats.link_faults += 1
        now = clock.now_ns()
        t_step_start = now
        self._step(
            self.params,
            self.state,
            self.detections,
            self.robot,
            reset,
            overrun,
            link_fault,
            now,
            self.command,
        )
        t_step_end = clock.now_ns()
        self._seq += 1
        self.robot_port.send_command(self.command, self._seq, t_step_end)
        t_written = clock.now_ns()

        self._pending_overrun = 1 if t_written > deadline else 0
        stats = self.stats
        if self._pending_overrun:
            stats.overruns += 1
        stats.cycles += 1
        stats.max_wake_latency_ns = max(stats.max_wake_latency_ns, t_wake - release)
        stats.max_cycle_ns = max(stats.max_cycle_ns, t_written - release)

        if self._cycles_ring is not None:
            self._record(
                release,
                t_wake,
                now,
                t_step_start,
                t_step_end,
                t_written,
                overrun,
                reset,
                link_fault,
                new_frames,
            )

        self._cycle += 1
        next_release = release + self.period_ns
        passed = (t_written - next_release) // self.period_ns  # later releases that passed before the write
        if passed > 0:  # run the latest of them at once (woken late), skip the ones before it
            self._cycle += passed
            next_release += passed * self.period_ns
            stats.skipped_releases += passed
        self._next_release_ns = next_release  # no overrun for skipping: that cycle meets its deadline or not
        self._between_cycles = True

    def _record(
        self,
        release: int,
        t_wake: int,
        now: int,
        t_step_start: int,
        t_step_end: int,
        t_written: int,
        overrun: int,
        reset: int,
        link_fault: int,
        new_frames: int,
    ) -> None:
        ring = self._cycles_ring
        assert ring is not None and self._frames_ring is not None
        if self._drain_when_full and (ring.is_full() or self._frames_ring.is_full()):
            self._drain_now()
        slot = ring.claim()
        if slot >= 0:
            fill_cycle_record(
                ring.buf,
                self._cycles_u8,
                slot,
                self._cycle,
                release,
                t_wake,
                now,
                t_step_start,
                t_step_end,
                t_written,
                overrun,
                reset,
                link_fault,
                new_frames,
                self._seq,
                self.detections,
                self._robot_u8,
                self._command_u8,
            )
            ring.commit()
        if new_frames:
            frame = self._frame_rec[0]
            for s in range(self.n_sensors):
                if new_frames & (1 << s):
                    self._frame_as_detection[0] = self.detections[s]
                    frame["cycle"] = self._cycle
                    if self._drain_when_full and self._frames_ring.is_full():
                        self._drain_now()
                    self._frames_ring.push(self._frame_rec)

    def _drain_now(self) -> None:
        """Simulated clock only: write the rings to the file from the loop (time stands still meanwhile)."""
        assert self._recorder is not None
        self._recorder.drain()
        self.stats.trace_sync_drains += 1
