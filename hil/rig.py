"""The hardware-in-the-loop rig: plays the robot and the sensor on two serial lines against a controller.

The rig is the imperative shell around pure parts: scenarios (hil.scenarios) say where people are,
fault injectors (hil.faults) say what happens to the bytes, the robot emulator (hil.robot) follows the
controller's commands, and the verdicts (hil.timeline) are computed afterwards from the recorded events.

One controller session serves every run: between runs the rig presses reset (the controller's reset
input also clears latched link errors) and waits for motion again. With `virtual`, the rig makes two pty
pairs, starts `cobotguard run` on their other ends and presses reset with SIGUSR1; with real ports the
controller is started by the operator, and the rig can only run what needs no reset (one run).

Every event is timestamped on the rig's monotonic clock (CLOCK_MONOTONIC, shared with a controller on the
same machine). After the session the rig writes one trace (safety.trace): the controller's "cycles" and
"detections" streams, when it can read the controller's trace, plus the rig's "rig" stream.
"""

from __future__ import annotations

import gc
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hil import faults as fl
from hil import scenarios as sc
from hil.timeline import RIG_EVENT_DTYPE, STOP_KINDS, Budget, Outcome, RigEvent, event
from safety.config import CellConfig, ns

MS = 1_000_000
ARM_TIMEOUT_NS = 6_000 * MS  # after the first command: data flowing, reset pressed, motion
RESET_RETRY_NS = 700 * MS
SETTLE_NS = 300 * MS  # steady running before a run starts
FAULT_TAIL_NS = 150 * MS  # keep recording after the stop a fault caused
FAULT_GRACE_NS = 400 * MS  # wait this long beyond a fault's deadline before judging "no stop"


class RigError(RuntimeError):
    """The rig could not run: a port would not open, the controller did not start or went away."""


@dataclass
class RigOptions:
    """What to run and where."""

    config_path: Path
    scenarios: list[str]
    faults: list[str]
    virtual: bool = True
    robot_port: str | None = None
    sensor_ports: list[str] = field(default_factory=list)  # one per configured sensor
    baud: int | None = None
    trace_dir: Path | None = None
    startup_timeout_s: float = 120.0
    progress: Callable[[str], None] = lambda line: None
    controller_args: list[str] = field(default_factory=list)  # extra `cobotguard run` arguments
    inference_fraction: float = 0.5  # emulated inference time as a fraction of the declared worst case
    # The rig is a measuring instrument: it asks for SCHED_FIFO below the controller's priority (80) so
    # that other processes on a busy machine do not stall it (0: stay at normal priority).
    rt_priority: int = 60
    reset_command: str | None = None  # real ports: a shell command that presses the controller's reset


@dataclass
class RigReport:
    """Outcomes of a rig session."""

    config_name: str
    checksum: str
    reaction_time_ns: int
    outcomes: list[Outcome]
    trace_path: str | None = None
    controller_log: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every run passed."""
        return all(o.passed for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON document."""
        return {
            "config": self.config_name,
            "checksum": self.checksum,
            "reaction_time_s": self.reaction_time_ns / 1e9,
            "passed": self.passed,
            "scenarios": [o.to_json() for o in self.outcomes],
            "trace": self.trace_path,
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """A terminal table of the outcomes."""
        lines = [
            f"cell: {self.config_name}   checksum {self.checksum}   T_r {self.reaction_time_ns / 1e6:.1f} ms",
            f"{'run':26s} {'kind':8s} {'result':6s} {'min sep':>9s} {'reaction':>10s} {'budget':>9s}  reason",
            "-" * 100,
        ]
        for o in self.outcomes:
            sep = "-" if o.min_separation_m is None else f"{o.min_separation_m:.3f} m"
            rt = "-" if o.reaction_time_s is None else f"{o.reaction_time_s * 1e3:.1f} ms"
            budget = "-" if o.reaction_budget_s is None else f"{o.reaction_budget_s * 1e3:.0f} ms"
            lines.append(
                f"{o.name:26s} {o.kind:8s} {'PASS' if o.passed else 'FAIL':6s} {sep:>9s} {rt:>10s} "
                f"{budget:>9s}  {o.stop_reason or '-'}"
            )
            for failure in o.failures:
                lines.append(f"    {failure}")
        lines.append("-" * 100)
        n_pass = sum(o.passed for o in self.outcomes)
        lines.append(
            f"{n_pass}/{len(self.outcomes)} passed"
            + (f"; trace {self.trace_path}" if self.trace_path else "")
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def describe(out: Outcome) -> str:
    """One progress line for an outcome, failures on the lines below."""
    detail = []
    if out.min_separation_m is not None:
        detail.append(f"min separation {out.min_separation_m:.3f} m")
    if out.reaction_time_s is not None and out.reaction_budget_s is not None:
        detail.append(f"reaction {out.reaction_time_s * 1e3:.1f} ms of {out.reaction_budget_s * 1e3:.0f} ms")
    if out.stop_reason:
        detail.append(out.stop_reason)
    line = ("PASS" if out.passed else "FAIL") + (f" ({', '.join(detail)})" if detail else "")
    return line + "".join(f"\n    {failure}" for failure in out.failures)


def cell_budget(cfg: CellConfig) -> Budget:
    """The numbers verdicts are judged against, from the cell's budget."""
    from safety import budget

    max_speed = cfg.robot.max_speed_mps

    def separation(speed: float) -> float:
        return budget.separation_required_m(cfg, min(max(speed, 0.0), max_speed))

    return Budget(
        reaction_time_ns=budget.reaction_time_ns(cfg),
        robot_reaction_ns=ns(cfg.robot.stop_input_reaction_ms),
        separation_m=separation if cfg.separation.enabled else None,
        hazard_polygon_m=cfg.robot.hazard_polygon_m,
        protective_zones_m=tuple(z.polygon_m for z in cfg.zones.values() if z.type == "protective"),
    )


def required_separation_m(cfg: CellConfig) -> float:
    """S_p at the robot's maximum speed (where scenarios put the stop boundary)."""
    from safety import budget

    return budget.separation_required_m(cfg, cfg.robot.max_speed_mps)


# ---------------------------------------------------------------------------------------------------
# The controller as a subprocess (virtual mode)


class ControllerProcess:
    """`cobotguard run` on the far ends of two pty pairs; reset by SIGUSR1, stopped by SIGTERM."""

    def __init__(
        self,
        config_path: Path,
        robot_peer: str,
        sensor_peers: list[str],
        trace_path: Path,
        log_path: Path,
        extra: list[str],
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "hil.cli.main",
            "run",
            str(config_path),
            "--robot-port",
            robot_peer,
            *[arg for peer in sensor_peers for arg in ("--sensor-port", peer)],
            "--trace",
            str(trace_path),
            *extra,
        ]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def press_reset(self) -> None:
        """The operator's reset button."""
        if self.alive():
            self.proc.send_signal(signal.SIGUSR1)

    def log_tail(self, lines: int = 12) -> str:
        """The last lines of the controller's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (final stop command, trace flushed), then wait; kill if it hangs. Returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


# ---------------------------------------------------------------------------------------------------
# The session: one select loop that plays the robot and the sensor


class EventLog:
    """Rig events in a preallocated array that doubles when full (cheap to append and to read back)."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.buf = np.zeros(capacity, dtype=RIG_EVENT_DTYPE)
        self.n = 0

    def add(self, kind: RigEvent, t_ns: int, **values: Any) -> None:
        """Record one event."""
        if self.n == len(self.buf):
            self.buf = np.concatenate([self.buf, np.zeros(len(self.buf), dtype=RIG_EVENT_DTYPE)])
        self.buf[self.n] = event(kind, t_ns, **values)[0]
        self.n += 1

    def array(self, since_ns: int | None = None) -> np.ndarray:
        """A copy of all events (or of those at or after since_ns)."""
        arr = self.buf[: self.n]
        return (arr if since_ns is None else arr[arr["t_ns"] >= since_ns]).copy()


@dataclass
class SensorStream:
    """One emulated sensor: its link endpoint, its port and its frame schedule."""

    name: str
    index: int  # position in the configuration's sensor list
    sensor: Any  # safety.config.Sensor
    endpoint: Any  # safety.link.Endpoint, Role.SENSOR
    io: Any  # transport
    period_ns: int
    latency_ns: int  # exposure start -> frame sent
    counter: int = 0
    next_exposure_ns: int = 0

    @property
    def due_ns(self) -> int:
        """When the next frame is to be written."""
        return self.next_exposure_ns + self.latency_ns


class Session:
    """The rig's side of the links: the robot emulator on one transport, one sensor stream per sensor.

    Faults on "sensor" act on the first sensor's link.
    """

    def __init__(
        self,
        cfg: CellConfig,
        robot_io: Any,
        sensor_io: Any,
        press_reset: Callable[[], None] | None,
        alive: Callable[[], bool] = lambda: True,
        clock: Callable[[], int] = time.monotonic_ns,
        inference_fraction: float = 0.5,
        robot_speed_mps: float | None = None,
    ) -> None:
        """sensor_io: one transport per configured sensor, in configuration order (or one transport)."""
        from hil.robot import RobotEmulator
        from safety.link import Role, sensor_link_endpoint

        self.cfg = cfg
        self.clock = clock
        self.robot_io = robot_io
        self._press = press_reset
        self._alive = alive
        now = clock()
        self.robot = RobotEmulator(cfg, now, program_speed_mps=robot_speed_mps)  # None: max speed
        ios = list(sensor_io) if isinstance(sensor_io, (list, tuple)) else [sensor_io]
        if len(ios) != len(cfg.sensors):
            raise RigError(f"{len(ios)} sensor port(s) for {len(cfg.sensors)} configured sensor(s)")
        self.inference_fraction = inference_fraction
        self.sensors = [
            SensorStream(
                name,
                index,
                sensor,
                sensor_link_endpoint(cfg, name, Role.SENSOR, now),
                io,
                sc.frame_period_ns(sensor),
                sc.sensor_latency_ns(sensor, inference_fraction),
            )
            for index, ((name, sensor), io) in enumerate(zip(cfg.sensors.items(), ios, strict=True))
        ]
        self.codec = fl.LinkCodec()
        self.log = EventLog()
        self.streaming = False
        self.plan: sc.Plan | None = None
        self.plan_t0_ns = 0
        self.reset_presses: list[int] = []  # absolute times of scheduled presses
        self.injectors: dict[str, fl.Injector | None] = {"sensor": None, "robot": None}
        self.pending: list[tuple[int, int, str, bytes]] = []  # (due, order, link, bytes)
        self._order = 0
        self.last_state_ns: int | None = None
        self.last_command: tuple[int, int] | None = None  # (kind, reason)
        self.stop_onsets: list[int] = []  # receive times of stop commands that followed motion
        self.was_at_rest = True
        self._state_seq = 0

    # ------------------------------------------------------------ helpers

    def now(self) -> int:
        """The rig's clock."""
        return self.clock()

    @property
    def next_exposure_ns(self) -> int:
        """The first sensor's next exposure (scenarios start on it)."""
        return self.sensors[0].next_exposure_ns

    @property
    def period_ns(self) -> int:
        """The first sensor's frame period."""
        return self.sensors[0].period_ns

    def press_reset(self) -> None:
        """Press the controller's reset (and clear the emulated robot's latched self-stop)."""
        now = self.now()
        if self._press is not None:
            self._press()
        if self.robot.fault is not None:
            self.robot.reset(now)
        self.log.add(RigEvent.RESET_CHANGED, now, reset=1)

    def _write(self, link: str, data: bytes) -> None:
        io = self.sensors[0].io if link == "sensor" else self.robot_io
        io.write(data)

    def _queue(self, link: str, writes: fl.Writes) -> None:
        for t_due, data in writes:
            self.pending.append((t_due, self._order, link, data))
            self._order += 1
        self.pending.sort()

    def _flush_due(self, now: int) -> None:
        while self.pending and self.pending[0][0] <= now:
            _, _, link, data = self.pending.pop(0)
            self._write(link, data)

    def _send(self, link: str, wire: bytes, now: int, stream: SensorStream | None = None) -> None:
        if stream is not None and stream.index != 0:
            stream.io.write(wire)  # faults act on the first sensor's link only
            return
        injector = self.injectors[link]
        if injector is None:
            self._write(link, wire)
            return
        out = self.codec.out_frame(now, wire)
        self._queue(link, injector.push(out, self.codec))
        self._flush_due(now)

    # ------------------------------------------------------------ robot side

    def _on_robot_bytes(self, data: bytes, now: int) -> None:
        from safety.link import LinkError, Received

        replied = False
        for ev in self.robot.receive(data, now):
            if isinstance(ev, Received):
                cmd = ev.message
                kind, reason = int(cmd.kind), int(cmd.reason)  # type: ignore[union-attr]
                self.log.add(
                    RigEvent.COMMAND_RECEIVED,
                    now,
                    command_seq=ev.seq,
                    command_kind=kind,
                    reason=reason,
                    speed_mps=float(cmd.speed_limit_mps),  # type: ignore[union-attr]
                    t_ref_ns=ev.t_sent_ns,
                )
                if kind in STOP_KINDS and (
                    self.last_command is None or self.last_command[0] not in STOP_KINDS
                ):
                    self.stop_onsets.append(now)
                self.last_command = (kind, reason)
                replied = True
            elif isinstance(ev, LinkError):
                self._robot_link_error(ev, now)
        if replied and (self.last_state_ns is None or now > self.last_state_ns):
            self._send_state(now)  # one state per read: sender times must strictly increase

    def _robot_link_error(self, err: Any, now: int) -> None:
        """The emulated robot has stopped itself (latched until reset); the rig keeps listening so it can
        still measure: the endpoint is reset, the robot's self-stop is not."""
        self.log.add(RigEvent.LINK_ERROR, now, reason=int(err.reason))
        fault = self.robot.fault
        self.robot.endpoint.reset(now)
        self.robot.fault = fault

    def _send_state(self, now: int) -> None:
        now = max(now, self.now())  # the sender time is when the frame is handed to the port
        wire = self.robot.state_frame(now)
        state = self.robot.state()
        self._send("robot", wire, now)
        self.log.add(
            RigEvent.ROBOT_STATE_SENT,
            now,
            speed_mps=float(self.robot.speed_mps),
            at_rest=int(state.at_rest),
            seq=self._state_seq,
        )
        self._state_seq += 1
        self.last_state_ns = now
        if state.at_rest != self.was_at_rest:
            rest_t = self.robot.t_at_rest_ns if state.at_rest and self.robot.t_at_rest_ns else now
            self.log.add(RigEvent.ROBOT_AT_REST if state.at_rest else RigEvent.ROBOT_MOVING, int(rest_t))
            self.was_at_rest = bool(state.at_rest)

    # ------------------------------------------------------------ sensor side

    def _send_frame(self, stream: SensorStream) -> None:
        from safety.link import Detections

        t_exp = stream.next_exposure_ns
        if self.plan is not None and self.plan_t0_ns <= t_exp <= self.plan_t0_ns + self.plan.duration_ns:
            xy = sc.positions(self.plan, np.array([t_exp - self.plan_t0_ns], dtype=np.int64))[0]
        else:
            xy = np.zeros((0, 2))
        frame = np.zeros(1, dtype=sc.DETECTION_DTYPE)
        sc.fill_frame(
            frame,
            xy,
            stream.sensor,
            stream.index,
            stream.counter,
            t_exp,
            inference_fraction=self.inference_fraction,
        )
        msg = Detections.from_record(frame[0])
        now = self.now()  # the sender time is when the frame is handed to the port
        wire = stream.endpoint.send(msg, now)
        self._send("sensor", wire, now, stream)
        self.log.add(
            RigEvent.DETECTION_SENT,
            now,
            sensor_index=stream.index,
            frame_counter=int(frame["frame_counter"][0]),
            seq=stream.endpoint.next_seq - 1,
            t_ref_ns=t_exp,
            value=int(frame["person_count"][0]),
        )
        stream.counter += 1
        stream.next_exposure_ns += stream.period_ns

    # ------------------------------------------------------------ the loop

    def start_streaming(self) -> None:
        """Begin sending sensor frames (the robot answers commands from the start)."""
        if not self.streaming:
            self.streaming = True
            now = self.now()
            for k, stream in enumerate(self.sensors):  # spread the sensors over a frame period
                stream.next_exposure_ns = now + k * stream.period_ns // len(self.sensors)

    def pump(self, until_ns: int, stop_when: Callable[[], bool] | None = None) -> None:
        """Run the loop until `until_ns` (or until `stop_when()` is true)."""
        fd = self.robot_io.fileno()
        heartbeat = fl.ROBOT_STATE_PERIOD_NS
        while True:
            now = self.now()
            if now >= until_ns or (stop_when is not None and stop_when()):
                return
            deadlines = [until_ns]
            if self.streaming:
                deadlines += [stream.due_ns for stream in self.sensors]
            if self.last_state_ns is not None:
                deadlines.append(self.last_state_ns + heartbeat)
            if self.pending:
                deadlines.append(self.pending[0][0])
            if self.reset_presses:
                deadlines.append(self.reset_presses[0])
            timeout = max(0, min(deadlines) - now) / 1e9
            ready, _, _ = select.select([fd], [], [], min(timeout, 0.05))
            now = self.now()
            if ready:
                data = self.robot_io.read(4096)
                if data:
                    self._on_robot_bytes(data, now)
                elif not self._alive():
                    raise RigError("the controller went away")
            if (err := self.robot.check_watchdog(now)) is not None:
                self._robot_link_error(err, now)
            if self.last_state_ns is not None and now - self.last_state_ns >= heartbeat:
                self._send_state(now)
            if self.streaming:
                for stream in self.sensors:
                    if now >= stream.due_ns:
                        self._send_frame(stream)
            while self.reset_presses and self.reset_presses[0] <= now:
                self.reset_presses.pop(0)
                self.press_reset()
            self._flush_due(now)
            if not self._alive():
                raise RigError("the controller exited")

    # ------------------------------------------------------------ phases

    def wait_first_command(self, timeout_ns: int) -> None:
        """Wait for the controller's first valid command (it compiles and arms first)."""
        end = self.now() + timeout_ns
        self.pump(end, stop_when=lambda: self.last_command is not None)
        if self.last_command is None:
            raise RigError(f"no command from the controller within {timeout_ns / 1e9:.0f} s")
        if self.last_state_ns is None:
            self._send_state(self.now())

    def running(self) -> bool:
        """True when the last command lets the robot move."""
        return self.last_command is not None and self.last_command[0] not in STOP_KINDS

    def bring_to_run(
        self, timeout_ns: int = ARM_TIMEOUT_NS, prompt: Callable[[str], None] | None = None
    ) -> bool:
        """Press reset until the controller commands motion and the robot moves; False on timeout.

        Without a way to press reset, the operator is asked (via `prompt`) and given a minute.
        """
        if self._press is None:
            if not self.running() and prompt is not None:
                prompt("hil: press the controller's reset now (the cell is clear)")
            timeout_ns = max(timeout_ns, 60_000 * MS)
        end = self.now() + timeout_ns
        while self.now() < end:
            if not self.running():
                self.press_reset()
            self.pump(
                min(end, self.now() + RESET_RETRY_NS),
                stop_when=lambda: self.running() and self.robot.speed_mps > 0,
            )
            if self.running() and self.robot.speed_mps > 0:
                self.pump(self.now() + SETTLE_NS)
                if self.running():
                    return True
        return False

    def run_scenario(self, plan: sc.Plan, budget: Budget, index: int) -> Outcome:
        """Play one scenario from the next frame on and judge it."""
        from hil.timeline import evaluate_scenario

        t0 = self.next_exposure_ns + self.period_ns
        self.plan, self.plan_t0_ns = plan, t0
        self.log.add(RigEvent.RUN_START, t0, value=index)
        previous = 0
        for t_rel, level in plan.reset_changes:
            if level == 1 and previous == 0:
                self.reset_presses.append(t0 + t_rel)
            previous = level
        self.pump(t0 + plan.duration_ns)
        self.plan = None
        self.reset_presses.clear()
        self.log.add(RigEvent.RUN_END, self.now(), value=index)
        return evaluate_scenario(plan, self.log.array(t0 - 200 * MS), t0, budget)

    def run_fault(self, fault: fl.Fault, index: int) -> Outcome:
        """Inject one fault on its link and judge the controller's answer."""
        from hil.timeline import evaluate_fault

        t_start = self.now()
        self.log.add(RigEvent.RUN_START, t_start, value=index)
        injector = fault.make(self.cfg)
        self.injectors[fault.link] = injector
        deadline = fault.deadline_ns(self.cfg)
        give_up = t_start + deadline + FAULT_GRACE_NS + 500 * MS

        def stopped() -> bool:
            # cheap check in the loop: a stop command received since the fault acted
            acted = injector.acted_ns
            return acted is not None and (
                (self.last_command is not None and self.last_command[0] in STOP_KINDS)
                or any(t >= acted for t in self.stop_onsets[-3:])
            )

        self.pump(
            give_up,
            stop_when=lambda: (
                injector.acted_ns is not None
                and (stopped() or self.now() > injector.acted_ns + deadline + FAULT_GRACE_NS)
            ),
        )
        self.pump(self.now() + FAULT_TAIL_NS)
        self.injectors[fault.link] = None
        self.pending.clear()  # late frames of a delay fault are not sent after it ends
        acted = injector.acted_ns if injector.acted_ns is not None else give_up
        self.log.add(RigEvent.FAULT_INJECTED, acted, value=index)
        self.log.add(RigEvent.RUN_END, self.now(), value=index)
        out = evaluate_fault(fault.name, self.log.array(t_start - 200 * MS), acted, fault.expected, deadline)
        if injector.acted_ns is None:
            out.passed = False
            out.failures.append("the fault never acted (no frame on its link)")
        return out


# ---------------------------------------------------------------------------------------------------
# The whole session


def command_press(command: str) -> Callable[[], None]:
    """A reset button that runs a shell command (e.g. `ssh cell kill -USR1 PID`), without waiting for it."""
    import shlex

    argv = shlex.split(command)

    def press() -> None:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return press


def _open_real(options: RigOptions, cfg: CellConfig) -> tuple[Any, list[Any]]:
    """Open the robot port and one port per sensor; --baud overrides every configured rate."""
    from safety.link.transport import SerialTransport, TransportError

    sensors = list(cfg.sensors.values())
    if len(options.sensor_ports) != len(sensors):
        raise RigError(
            f"{len(options.sensor_ports)} --sensor-port given, the configuration has {len(sensors)} "
            "sensor(s): give one per sensor, in configuration order"
        )
    robot_baud = options.baud or cfg.link.baud
    # a sensor line may declare its own rate (serial_baud); otherwise it runs at the robot link's
    sensor_bauds = [options.baud or getattr(s, "serial_baud", None) or cfg.link.baud for s in sensors]
    opened: list[Any] = []
    try:
        opened.append(SerialTransport(str(options.robot_port), robot_baud))
        for port, baud in zip(options.sensor_ports, sensor_bauds, strict=True):
            opened.append(SerialTransport(port, baud))
    except TransportError as exc:
        for transport in opened:
            transport.close()
        raise RigError(str(exc)) from None
    return opened[0], opened[1:]


def run_rig(cfg: CellConfig, options: RigOptions) -> RigReport:
    """Run the selected scenarios and faults against one controller session."""
    from safety.budget import reaction_time_ns
    from safety.checksum import config_checksum

    budget = cell_budget(cfg)
    required = required_separation_m(cfg)
    plans = [sc.build_plan(sc.get_scenario(name), cfg, required) for name in options.scenarios]
    faults = [fl.get_fault(name) for name in options.faults]
    short, _ = config_checksum(cfg)
    report = RigReport(cfg.name, short, reaction_time_ns(cfg), [])
    work = Path(tempfile.mkdtemp(prefix="cobotguard-hil-"))
    trace_dir = options.trace_dir or work  # without a trace directory nothing is kept
    controller_trace = work / "controller.cgtrace"
    controller: ControllerProcess | None = None
    realtime: Any = None
    ios: list[Any] = []
    progress = options.progress
    try:
        if options.virtual:
            from safety.link.transport import PtyTransport

            robot_io = PtyTransport()
            sensor_io = [PtyTransport() for _ in cfg.sensors]
            ios = [robot_io, *sensor_io]
            log_path = trace_dir / "controller.log"
            controller = ControllerProcess(
                options.config_path,
                robot_io.peer_path,
                [io.peer_path for io in sensor_io],
                controller_trace,
                log_path,
                options.controller_args,
            )
            report.controller_log = str(log_path)
            press: Callable[[], None] | None = controller.press_reset
            alive = controller.alive
            progress(
                f"hil: controller started (pid {controller.proc.pid}) on "
                f"{robot_io.peer_path} (robot), {', '.join(io.peer_path for io in sensor_io)} (sensors)"
            )
        else:
            robot_io, sensor_io = _open_real(options, cfg)
            ios = [robot_io, *sensor_io]
            alive = lambda: True  # noqa: E731
            if options.reset_command:
                press = command_press(options.reset_command)
            else:
                press = None
                report.notes.append(
                    "real ports without --reset-command: the controller's reset must be pressed by hand "
                    "when the rig asks for it; the restart scenario cannot be timed"
                )
        # A full garbage collection over the many objects numba and shapely create stalls the rig for
        # tens of milliseconds: freeze what exists and pause the collector for the session.
        gc.collect()
        gc.freeze()
        gc.disable()
        if options.rt_priority > 0:
            from safety.realtime import apply_realtime

            realtime = apply_realtime(options.rt_priority, cpu=None, lock_memory=False)
            report.notes += [f"rig: {w}" for w in realtime.warnings]
        session = Session(
            cfg, robot_io, sensor_io, press, alive, inference_fraction=options.inference_fraction
        )
        progress("hil: waiting for the controller's first command (it compiles before arming)")
        try:
            session.wait_first_command(int(options.startup_timeout_s * 1e9))
        except RigError as exc:
            tail = controller.log_tail() if controller is not None else ""
            raise RigError(f"{exc}" + (f"; controller output:\n{tail}" if tail else "")) from None
        session.start_streaming()
        total = len(plans) + len(faults)
        runs: list[tuple[str, Any]] = [("scenario", p) for p in plans] + [("fault", f) for f in faults]
        for i, (kind, item) in enumerate(runs):
            label = f"[{i + 1}/{total}] {kind} {item.name}"
            progress(f"{label}: bringing the cell to run")
            if not session.bring_to_run(prompt=progress):
                last = session.last_command
                why = "no command" if last is None else f"last command kind {last[0]}, reason {last[1]}"
                out = Outcome(
                    item.name, kind, passed=False, failures=[f"controller did not return to motion ({why})"]
                )
            elif kind == "scenario":
                progress(f"{label}: running ({item.duration_ns / 1e9:.1f} s)")
                out = session.run_scenario(item, budget, i)
            else:
                progress(f"{label}: injecting on the {item.link} link")
                out = session.run_fault(item, i)
            report.outcomes.append(out)
            progress(f"{label}: {describe(out)}")
        session.pump(session.now() + 50 * MS)
        events = session.log.array()
    finally:
        gc.enable()
        gc.unfreeze()
        if realtime is not None:
            realtime.restore()
        if controller is not None:
            code = controller.stop()
            if code not in (0, None):
                report.notes.append(f"controller exited with code {code}; see {controller.log_path}")
        for io in ios:
            io.close()
    if options.trace_dir is not None:
        report.trace_path = str(write_trace(cfg, trace_dir / "hil.cgtrace", controller_trace, events, report))
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        report.controller_log = None
    return report


def write_trace(
    cfg: CellConfig, path: Path, controller_trace: Path, events: np.ndarray, report: RigReport
) -> Path:
    """One trace with the controller's streams (when readable) and the rig's events."""
    from safety.trace import TraceError, TraceWriter, header_for_config, read_trace

    streams: dict[str, np.ndarray] = {}
    header: dict[str, Any]
    try:
        trace = read_trace(controller_trace, allow_incomplete=True)
        header = dict(trace.header)
        for name in ("cycles", "detections"):
            if name in trace.streams:
                streams[name] = trace.streams[name]
        if trace.error is not None:
            report.notes.append(f"controller trace incomplete: {trace.error}")
    except TraceError as exc:
        report.notes.append(f"controller trace not readable ({exc}); the rig trace holds the rig stream only")
        header = header_for_config(cfg, "cobotguard hil")
    if "cycles" in streams:
        events = with_controller_seq(events, streams["cycles"])
    for key in ("format", "format_version", "streams"):
        header.pop(key, None)
    header["producer"] = "cobotguard hil"
    header["controller_producer"] = header.get("controller_producer", "cobotguard run")
    header["rig_runs"] = [o.to_json() for o in report.outcomes]
    dtypes = {name: arr.dtype for name, arr in streams.items()}
    dtypes["rig"] = RIG_EVENT_DTYPE
    with TraceWriter(path, header, dtypes) as writer:
        for name, arr in streams.items():
            writer.write(name, arr)
        writer.write("rig", events)
    return path


def with_controller_seq(events: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Number received commands as the controller's trace does.

    The link numbers frames itself (`seq`, kept as is); the controller's "cycles" stream numbers
    commands with its own count. Each command's sender time is the cycle's step end, so the join is
    exact; a command with no matching cycle gets -1.
    """
    out = events.copy()
    is_cmd = out["kind"] == int(RigEvent.COMMAND_RECEIVED)
    out["seq"][is_cmd] = out["command_seq"][is_cmd]
    order = np.argsort(cycles["t_step_end_ns"], kind="stable")
    keys = cycles["t_step_end_ns"][order]
    refs = out["t_ref_ns"][is_cmd]
    idx = np.clip(np.searchsorted(keys, refs), 0, max(len(keys) - 1, 0))
    found = (len(keys) > 0) & (keys[idx] == refs) if len(keys) else np.zeros(len(refs), dtype=bool)
    out["command_seq"][is_cmd] = np.where(found, cycles["command_seq"][order][idx] if len(keys) else -1, -1)
    return out
