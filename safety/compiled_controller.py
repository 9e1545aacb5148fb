"""The safety controller on the compiled hard loop (`safety.cycle`): arming, supervision, trace, close.

Library use, with the robot link and one sensor link per configured sensor as file descriptors (serial
ports opened with pyserial, ptys, socket pairs)::

    from cobotguard.safety.compiled_controller import CompiledController

    controller = CompiledController(cfg, robot_fd, [sensor_fd], trace_path="run.cgtrace")
    controller.arm()                      # checksum, budget, compile everything; raises ArmError
    controller.run(duration_ns=10**10)    # or until=callable, or stop() from a signal handler
    controller.close()                    # final stop command, trace flushed
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from cobotguard.safety import syscalls
from cobotguard.safety.cycle import (
    C_END_NS,
    C_RESET_LEVEL,
    C_RESET_PULSES,
    C_STOP,
    DEFAULT_SPIN_NS,
    L_COMMANDS,
    L_NEXT_RELEASE,
    L_RESET_PREV,
    N_LOOP,
    N_STATS,
    PENDING_FRAMES_PER_SENSOR,
    READ_CHUNK,
    ROBOT_LINK,
    S_CYCLES,
    S_DATA_STEPS,
    S_FRAMES_IN,
    S_FRAMES_LOST,
    S_LINK_FAULTS,
    S_MAX_CYCLE,
    S_MAX_WAKE,
    S_OVERRUNS,
    S_SKIPPED,
    TRACE_RING_SECONDS,
    hard_loop,
    warm_up,
)
from cobotguard.safety.executor import ArmError, LoopStats, check_budget, check_checksum, write_not_armed_stop
from cobotguard.safety.link import compiled as cl
from cobotguard.safety.link.codec import MAX_FRAME_BYTES
from cobotguard.safety.link.crc import TABLE
from cobotguard.safety.link.endpoint import Role
from cobotguard.safety.reasons import Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    DETECTION_DTYPE,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.trace import CYCLE_DTYPE, DETECTION_TRACE_DTYPE, RING_DROPPED, RING_HEAD, RING_TAIL


class CompiledController:
    """The safety controller on the compiled hard loop, over file descriptors (serial ports, ptys, pipes).

    The robot link and one sensor link per configured sensor, in configuration order. Same public
    interface as `safety.executor.Controller`: arm(), run(duration_ns | until), stop(), close(),
    set_reset(), press_reset(), `stats`, `warnings`. run() starts the loop in its own thread (real-time
    settings apply to that thread) and supervises it from the calling thread, so signal handlers run.
    """

    SUPERVISE_S = 0.01  # how often run() looks at stop requests, `until` and the loop thread

    def __init__(
        self,
        cfg: Any,
        robot_fd: int,
        sensor_fds: list[int],
        trace_path: str | Path | None = None,
        expected_checksum: str | None = None,
        *,
        realtime: bool = True,
        cpu: int | None = None,
        rt_priority: int = 80,
        spin_ns: int = DEFAULT_SPIN_NS,
        producer: str = "cobotguard controller (compiled loop)",
        allow_unsafe_budget: bool = False,
    ) -> None:
        from cobotguard.safety.checksum import config_checksum
        from cobotguard.safety.config import ns
        from cobotguard.safety.link import clock_sync
        from cobotguard.safety.link.setup import robot_link_policy, sensor_clock_policy, sensor_link_policy
        from cobotguard.safety.params import build_params
        from cobotguard.safety.step import new_state

        if len(sensor_fds) != len(cfg.sensors):
            raise ValueError(f"{len(sensor_fds)} sensor descriptor(s) for {len(cfg.sensors)} sensor(s)")
        self.cfg = cfg
        self.trace_path = Path(trace_path) if trace_path is not None else None
        self.expected_checksum = expected_checksum
        self.realtime = realtime
        self.cpu = cpu
        self.rt_priority = rt_priority
        self.spin_ns = spin_ns
        self.producer = producer
        self.allow_unsafe_budget = allow_unsafe_budget
        self.checksum_short, self.checksum_long = config_checksum(cfg)
        self.period_ns = ns(cfg.controller.cycle_period_ms)
        self.deadline_ns = ns(cfg.controller.worst_step_ms)
        self.wake_on_data = bool(getattr(cfg.controller, "wake_on_data", False))
        self.n_sensors = len(cfg.sensors)
        self.warnings: list[str] = []
        self.armed = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._loop_error: BaseException | None = None
        self._recorder: Any = None
        self._memory_lock: Any = None

        fds = [robot_fd, *sensor_fds]
        for fd in fds:
            os.set_blocking(fd, False)  # the loop never blocks in read or write, only in ppoll
        self.pollfds = syscalls.pollfds_for(fds)
        now = time.monotonic_ns()
        roles = [Role.CONTROLLER] + [Role.SENSOR_RECEIVER] * self.n_sensors
        ids = [cfg.link.connection_id] + [s.connection_id for s in cfg.sensors.values()]
        policies = [robot_link_policy(cfg, Role.CONTROLLER)]
        policies += [sensor_link_policy(cfg, name) for name in cfg.sensors]
        self.receivers = cl.new_receivers(roles, ids, policies, now)
        clock_policies = [clock_sync.ClockPolicy()] + [sensor_clock_policy(cfg, name) for name in cfg.sensors]
        self.clocks = clock_sync.new_clocks(clock_policies, now)  # index as receivers: 0 is the robot link
        # Everything the loop touches is allocated here, once.
        self.params = build_params(cfg)
        self.state = new_state(self.params)
        self.detections = empty_detections(MAX_SENSORS)
        self.robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        self.command = np.zeros(1, dtype=COMMAND_DTYPE)
        self._buffers = cl.new_buffers(len(fds))
        self._raw = np.zeros(MAX_FRAME_BYTES, dtype=np.uint8)
        self._rbuf = np.zeros(READ_CHUNK, dtype=np.uint8)
        self._tx_scratch = np.zeros(64, dtype=np.uint8)
        self._tx_out = np.zeros(64, dtype=np.uint8)
        self._pending = np.zeros((MAX_SENSORS, PENDING_FRAMES_PER_SENSOR), dtype=DETECTION_DTYPE)
        self._pending_head = np.zeros(MAX_SENSORS, dtype=np.int64)
        self._pending_count = np.zeros(MAX_SENSORS, dtype=np.int64)
        self._u32, self._f32 = cl.float_scratch()
        self._port_failed = np.zeros(len(fds), dtype=np.int64)
        self._write_failed = np.zeros(1, dtype=np.int64)
        self.control = np.zeros(4, dtype=np.int64)
        self.loop_stats = np.zeros(N_STATS, dtype=np.int64)
        self._loop = np.zeros(N_LOOP, dtype=np.int64)
        self._ts = syscalls.new_timespec()
        capacity = max(1024, int(TRACE_RING_SECONDS * 1e9 / self.period_ns) * 2)
        self._cycles = np.zeros(capacity, dtype=CYCLE_DTYPE)  # replaced by the trace ring when tracing
        self._cycles_ctr = np.zeros(3, dtype=np.int64)
        self._frames = np.zeros(capacity, dtype=DETECTION_TRACE_DTYPE)
        self._frames_ctr = np.zeros(3, dtype=np.int64)
        self._ring_capacity = capacity
        self._stop_command()

    # ----------------------------------------------------------------- public API

    @property
    def stats(self) -> LoopStats:
        """The loop's counters (as the Python executor's LoopStats)."""
        s = self.loop_stats
        dropped = int(self._cycles_ctr[RING_DROPPED] + self._frames_ctr[RING_DROPPED])
        return LoopStats(
            cycles=int(s[S_CYCLES]),
            overruns=int(s[S_OVERRUNS]),
            skipped_releases=int(s[S_SKIPPED]),
            max_wake_latency_ns=int(s[S_MAX_WAKE]),
            max_cycle_ns=int(s[S_MAX_CYCLE]),
            frames_in=int(s[S_FRAMES_IN]),
            frames_lost=int(s[S_FRAMES_LOST]),
            link_faults=int(s[S_LINK_FAULTS]),
            trace_dropped=dropped if self.trace_path is not None else 0,
        )

    @property
    def data_steps(self) -> int:
        """Steps run because a detection frame became readable (not on a release)."""
        return int(self.loop_stats[S_DATA_STEPS])

    def arm(self) -> None:
        """Check checksum and budget, compile and warm everything, open the trace. Raises ArmError."""
        if self.armed:
            return
        from cobotguard.safety import step
        from cobotguard.safety.link import clock_sync

        check_checksum(self.cfg, self.expected_checksum)
        check_budget(self.cfg, self.allow_unsafe_budget)
        try:
            step.warm_up(self.params)
            warm_up()
        except Exception as exc:  # a loop that cannot compile must never run
            raise ArmError(Reason.STATE_INVALID, f"hard loop failed to compile or warm up: {exc}") from exc
        self.state = step.new_state(self.params)
        if self.trace_path is not None:
            self._open_trace()
        self._discard_input()
        now = time.monotonic_ns()
        for k in range(self.receivers.shape[0]):
            cl.reset(self.receivers, k, now)
            clock_sync.reset(self.clocks, k, now)
        self._loop[L_NEXT_RELEASE] = now + self.period_ns
        self._loop[L_RESET_PREV] = 1  # like the step: a reset input already high at start-up is no edge
        self.armed = True

    def run(self, duration_ns: int | None = None, until: Any = None) -> LoopStats:
        """Run until `duration_ns` has passed, `until()` is true (checked every 10 ms) or `stop()`."""
        self.arm()
        if self.control[C_STOP]:
            return self.stats
        self._loop_error = None
        self._thread = threading.Thread(
            target=self._loop_thread, args=(duration_ns,), name="hard-loop", daemon=True
        )
        self._thread.start()
        while self._thread.is_alive():
            self._thread.join(self.SUPERVISE_S)
            if until is not None and until():
                self.control[C_STOP] = 1
        self._thread = None
        self.control[C_END_NS] = 0
        if self._loop_error is not None:
            raise RuntimeError(f"hard loop failed: {self._loop_error}") from self._loop_error
        return self.stats

    def stop(self) -> None:
        """End the loop after its current step (any thread or a signal handler); final."""
        self.control[C_STOP] = 1

    def close(self) -> None:
        """Stop the loop, send a final stop command, flush and close the trace. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        try:
            self._stop_command()
            now = time.monotonic_ns()
            self.command[0]["t_ns"] = now
            n = cl.encode_command(
                self.receivers, ROBOT_LINK, self.command, now, self._tx_scratch, self._tx_out, TABLE
            )
            robot_fd = int(self.pollfds[ROBOT_LINK] & 0x7FFFFFFF)
            syscalls.write_all(robot_fd, self._tx_out, n)
            self._loop[L_COMMANDS] += 1
        finally:
            if self._memory_lock is not None:
                self._memory_lock.restore()
                self._memory_lock = None
            if self._recorder is not None:
                self._recorder.close(
                    stats={**self.stats.as_dict(), "data_steps": self.data_steps},
                    final_command_seq=int(self._loop[L_COMMANDS]),
                    warnings=self.warnings,
                )
                self._recorder = None

    def set_reset(self, level: bool) -> None:
        """Set the reset input level (a restart needs a rising edge: low, then high)."""
        self.control[C_RESET_LEVEL] = 1 if level else 0

    def press_reset(self, cycles: int = 1) -> None:
        """A reset pulse: the input reads high for `cycles` steps, then low again."""
        self.control[C_RESET_PULSES] = max(1, cycles)

    def __enter__(self) -> CompiledController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- inside

    def _stop_command(self) -> None:
        write_not_armed_stop(self.command, int(self.cfg.robot.stop_category))

    def _open_trace(self) -> None:
        from cobotguard.safety.trace import TraceRecorder, TraceWriter, header_for_config

        assert self.trace_path is not None
        header = header_for_config(
            self.cfg,
            self.producer,
            n_sensors=self.n_sensors,
            detections_stream="detections",
            link_fault_mode="shell",
            deadline_ns=self.deadline_ns,
            loop="compiled",
            wake_on_data=self.wake_on_data,
        )
        streams = {"cycles": CYCLE_DTYPE, "detections": DETECTION_TRACE_DTYPE}
        writer = TraceWriter(self.trace_path, header, streams)
        self._recorder = TraceRecorder(writer, capacity=self._ring_capacity)
        cycles, frames = self._recorder.ring("cycles"), self._recorder.ring("detections")
        self._cycles, self._cycles_ctr = cycles.buf, cycles.counters
        self._frames, self._frames_ctr = frames.buf, frames.counters
        self._recorder.start()

    def _discard_input(self) -> None:
        """Drop bytes that arrived before arming (bounded, in case a peer streams faster than we read)."""
        for k in range(self.pollfds.shape[0]):
            fd = int(self.pollfds[k] & 0x7FFFFFFF)
            for _ in range(1024):
                try:
                    if not os.read(fd, READ_CHUNK):
                        break
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break

    def _args(self) -> tuple[Any, ...]:
        return (
            self.params, self.state, self.detections, self.robot, self.command, self.n_sensors,
            self.period_ns, self.deadline_ns, self.spin_ns, self.wake_on_data, self.pollfds, self._rbuf,
            self.receivers, self._buffers, self._raw, self._tx_scratch, self._tx_out, self._pending,
            self._pending_head, self._pending_count, self._u32, self._f32, self._port_failed,
            self._write_failed, self.control, self.loop_stats, self._loop, self._cycles,
            self._cycles.view(np.uint8), self._cycles_ctr, self._frames, self._frames.view(np.uint8),
            self._frames_ctr, self.detections.view(np.uint8), self.robot.view(np.uint8),
            self.command.view(np.uint8), self._ts, self.clocks,
        )  # fmt: skip

    def _loop_thread(self, duration_ns: int | None) -> None:
        settings = None
        try:
            if self.realtime:
                from cobotguard.safety.realtime import apply_loop_realtime

                lock = self._memory_lock is None
                settings = apply_loop_realtime(self.rt_priority, self.cpu, lock, self.warnings)
                if settings.memory_locked:
                    self._memory_lock = settings
            if not self._recorder:
                self._cycles_ctr[RING_TAIL] = self._cycles_ctr[RING_HEAD]  # no trace: nothing drains
                self._frames_ctr[RING_TAIL] = self._frames_ctr[RING_HEAD]
            # The schedule starts now, after the real-time set-up (mlockall alone takes 100+ ms):
            # releases that fell between run() calls or into the set-up were never due.
            now = time.monotonic_ns()
            if self._loop[L_NEXT_RELEASE] <= now:
                self._loop[L_NEXT_RELEASE] = now + self.period_ns
            release = int(self._loop[L_NEXT_RELEASE])
            self.control[C_END_NS] = release + duration_ns if duration_ns is not None else 0
            hard_loop(*self._args())
        except BaseException as exc:  # reported by run(); close() still sends the final stop
            self._loop_error = exc
        finally:
            if settings is not None:
                settings.restore(unlock_memory=False)
