"""The rig's live side: one select loop that plays the robot and the sensors on their transports.

`Session` owns the emulated robot (hil.robot.RobotEmulator and its link endpoint), one sensor stream per
configured sensor (a link endpoint and a frame schedule), the fault injectors in the path of the bytes it
writes, and the event log the verdicts are computed from (hil.timeline). It knows nothing of processes:
the caller hands it transports, a way to press the controller's reset, and a liveness check.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cobotguard.hil import faults as fl
from cobotguard.hil import scenarios as sc
from cobotguard.hil.timeline import (
    RIG_EVENT_DTYPE,
    STOP_KINDS,
    Budget,
    FailureClass,
    Outcome,
    RigEvent,
    event,
)
from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.reasons import CommandKind, Reason

MS = 1_000_000
ARM_TIMEOUT_NS = 6_000 * MS  # after the first command: data flowing, reset pressed, motion
RESET_RETRY_NS = 700 * MS
SETTLE_NS = 300 * MS  # steady running before a run starts
FAULT_TAIL_NS = 150 * MS  # keep recording after the stop a fault caused
FAULT_GRACE_NS = 400 * MS  # wait this long beyond a fault's deadline before judging "no stop"
VERIFY_TRIES = 3  # times the rig brings the cell to run and tries to prove it before giving up on a run


class RigError(RuntimeError):
    """The rig could not run: a port would not open, the controller did not start or went away."""


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
    last_sent_ns: int | None = None
    # a sensor on a clock of its own (`clock = "own"`): that clock (sensor.clock.OwnClock over the rig's)
    # stamps its frames, and its responder answers the controller's SYNC_REQUESTs
    clock: Any = None
    responder: Any = None
    answer_sync: bool = True

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
        robot_clock: Any = None,
        sensor_clock_offset_ns: int = 0,
        sensor_drift_ppm: float = 0.0,
    ) -> None:
        """sensor_io: one transport per configured sensor, in configuration order (or one transport);
        robot_clock: the emulated robot's own clock (hil.robot.RobotClock), None for the rig's.

        Sensors with `clock = "own"` run on a clock `sensor_clock_offset_ns` ahead of the rig's, drifting
        by `sensor_drift_ppm`, and answer SYNC_REQUESTs; the others read the rig's clock."""
        from cobotguard.hil.robot import RobotEmulator
        from cobotguard.safety.link import Role, sensor_link_endpoint
        from cobotguard.sensor.clock import OwnClock, SyncResponder

        self.cfg = cfg
        self.clock = clock
        self.robot_io = robot_io
        self._press = press_reset
        self._alive = alive
        now = clock()
        self.robot = RobotEmulator(cfg, now, program_speed_mps=robot_speed_mps, clock=robot_clock)
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
                timing.frame_period_ns(sensor.frame_rate_hz),
                timing.sent_latency_ns(sensor, inference_fraction),
            )
            for index, ((name, sensor), io) in enumerate(zip(cfg.sensors.items(), ios, strict=True))
        ]
        for stream in self.sensors:
            if stream.sensor.clock == "own":
                stream.clock = OwnClock(sensor_clock_offset_ns, sensor_drift_ppm, base=clock)
                stream.responder = SyncResponder(stream.endpoint, stream.clock)
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
        self.last_command_ns: int | None = None  # when the last valid command arrived
        self.command_since_ns: int | None = None  # when the last command's kind began
        self.stop_onsets: list[int] = []  # receive times of stop commands that followed motion
        self.was_at_rest = True
        self._state_seq = 0
        self.writes_dropped = 0  # writes the controller's port did not take in time (a stalled controller)

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
        self._write_to(io, data)

    def _write_to(self, io: Any, data: bytes) -> None:
        """Write like a serial line: bytes the controller does not take in time are lost, not an error.

        A real line never blocks its sender; when the receiver stops reading (a stalled controller),
        its buffer overflows and bytes are lost, which the controller's link detects and stops for.
        """
        try:
            io.write(data)
        except OSError:  # TransportError: the port's buffer stayed full for the write timeout
            self.writes_dropped += 1

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
            self._write_to(stream.io, wire)  # faults act on the first sensor's link only
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
        from cobotguard.safety.link import LinkError, Received

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
                if self.last_command is None or self.last_command[0] != kind:
                    self.command_since_ns = now
                self.last_command = (kind, reason)
                self.last_command_ns = now
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
        self.robot.reset_link(now)
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
        from cobotguard.safety.link import Detections

        t_exp = stream.next_exposure_ns
        plan = self.plan
        if (
            plan is not None
            and plan.sees(stream.index, len(self.sensors))
            and self.plan_t0_ns <= t_exp <= self.plan_t0_ns + plan.duration_ns
        ):
            xy = sc.positions(plan, np.array([t_exp - self.plan_t0_ns], dtype=np.int64))[0]
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
        now = self.now()  # the sender time is when the frame is handed to the port
        t_sent = now
        if stream.clock is not None:  # its own clock stamps it: the rig's times, read on that clock
            for key in ("t_exposure_ns", "t_inference_done_ns"):
                frame[key] = stream.clock.at(int(frame[key][0]))
            t_sent = stream.clock.at(now)
        msg = Detections.from_record(frame[0])
        wire = stream.endpoint.send(msg, t_sent)
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
        stream.last_sent_ns = now

    def _on_sensor_bytes(self, stream: SensorStream, data: bytes) -> None:
        """SYNC_REQUESTs from the controller: answered at once on the sensor's clock (unless muted)."""
        if stream.responder is None or not stream.answer_sync:
            return
        replies = stream.responder.receive(data, stream.clock())
        if not replies:
            return
        injector = self.injectors["sensor"] if stream.index == 0 else None
        if injector is not None and not injector.every_frame:
            self._write_to(stream.io, replies)  # this fault acts on DETECTIONS only
        else:
            self._send("sensor", replies, self.now(), stream)  # in order with the frames it delays

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
        synced = [s.io.fileno() for s in self.sensors if s.responder is not None]  # they read requests
        heartbeat = fl.robot_state_period_ns(self.cfg)
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
            ready, _, _ = select.select([fd, *synced], [], [], min(timeout, 0.05))
            now = self.now()
            if fd in ready:
                data = self.robot_io.read(4096)
                if data:
                    self._on_robot_bytes(data, now)
                elif not self._alive():
                    raise RigError("the controller went away")
            for stream in self.sensors:
                if stream.responder is not None and stream.io.fileno() in ready:
                    self._on_sensor_bytes(stream, stream.io.read(4096))
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
            if not self.running() or self.robot.fault is not None:
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

    def verify(self, held_ns: int = SETTLE_NS) -> dict[str, Any] | str:
        """Prove the cell ready for a run, now: the evidence, or why it is not ready.

        Ready is: the last command is RUN with no reason and has held for `held_ns` (nothing latched, no
        person seen, the restart interlock released); commands arrive within the robot's watchdog and the
        rig's robot accepts them (the robot link is live both ways); every sensor's frames went out on
        schedule and no write was lost (the sensor links are live); the robot moves.
        """
        now = self.now()
        why: list[str] = []
        if self.last_command is None or self.last_command_ns is None or self.command_since_ns is None:
            return "no command from the controller yet"
        kind, reason = self.last_command
        if kind != int(CommandKind.RUN) or reason != int(Reason.NONE):
            why.append(f"last command {CommandKind(kind).name} ({Reason(reason).name}), not RUN")
        elif now - self.command_since_ns < held_ns:
            why.append(f"RUN held only {(now - self.command_since_ns) / 1e6:.0f} ms of {held_ns / 1e6:.0f}")
        command_age = now - self.last_command_ns
        if command_age > ns(self.cfg.link.command_watchdog_ms):
            why.append(f"no command for {command_age / 1e6:.1f} ms (robot link)")
        if self.robot.fault is not None:
            why.append(f"the rig's robot has latched {self.robot.fault.reason.name} (robot link)")
        frame_ages = {}
        for stream in self.sensors:
            age = None if stream.last_sent_ns is None else now - stream.last_sent_ns
            frame_ages[stream.name] = None if age is None else round(age / 1e6, 3)
            if age is None or age > stream.period_ns + stream.latency_ns:
                why.append(f"sensor {stream.name}: no frame sent on schedule (sensor link)")
        if self.writes_dropped:
            why.append(f"{self.writes_dropped} write(s) to the controller lost")
        if self.robot.speed_mps <= 0.0:
            why.append("the robot is not moving")
        if why:
            return "; ".join(why)
        return {
            "command": "RUN",
            "run_held_ms": round((now - self.command_since_ns) / 1e6, 3),
            "last_command_age_ms": round(command_age / 1e6, 3),
            "frame_age_ms": frame_ages,
            "robot_speed_mps": round(float(self.robot.speed_mps), 6),
        }

    def start_clock(
        self, name: str, kind: str, prompt: Callable[[str], None] | None = None
    ) -> tuple[int, dict[str, Any]] | Outcome:
        """Bring the cell to a verified RUN and pick the run's time 0 (the next frame's exposure).

        The proof is taken right before time 0 and logged (RigEvent.VERIFIED). A cell that cannot be
        proven ready in VERIFY_TRIES tries fails the run as unavailable, naming what was missing.
        """
        why: dict[str, Any] | str = "not tried"
        for tries in range(1, VERIFY_TRIES + 1):
            if (not self.running() or self.robot.fault is not None) and not self.bring_to_run(prompt=prompt):
                why = self._not_running()
                continue
            # a cell that just came back (or still slows for the last run's person) gets time to settle
            self.pump(
                self.now() + SETTLE_NS + RESET_RETRY_NS, stop_when=lambda: isinstance(self.verify(), dict)
            )
            t0 = self.next_exposure_ns + self.period_ns
            self.pump(t0 - MS)
            why = self.verify()
            if isinstance(why, dict) and self.now() < t0 and self.next_exposure_ns <= t0:
                self.log.add(RigEvent.VERIFIED, self.now(), value=tries)
                why["tries"] = tries
                return t0, why
            if isinstance(why, dict):
                why = "the rig itself was late for the run's first frame"
        out = Outcome(name, kind, passed=True)
        out.fail(FailureClass.AVAILABILITY, f"the cell could not be brought to a verified RUN: {why}")
        return out

    def _not_running(self) -> str:
        last = self.last_command
        return (
            "no command"
            if last is None
            else (
                f"controller did not return to motion (last command {CommandKind(last[0]).name}, "
                f"{Reason(last[1]).name})"
            )
        )

    def run_scenario(
        self, plan: sc.Plan, budget: Budget, index: int, prompt: Callable[[str], None] | None = None
    ) -> Outcome:
        """Bring the cell to a verified RUN, play one scenario from the next frame on, and judge it."""
        from cobotguard.hil.timeline import evaluate_scenario

        started = self.start_clock(plan.name, "scenario", prompt)
        if isinstance(started, Outcome):
            return started
        t0, evidence = started
        self.plan, self.plan_t0_ns = plan, t0
        self.log.add(RigEvent.RUN_START, t0, value=index)
        previous = 0
        for t_rel, level in plan.reset_changes:
            if level == 1 and previous == 0:
                self.reset_presses.append(t0 + t_rel)
            previous = level
        fault = None if plan.fault is None else fl.get_fault(plan.fault)
        injector = None
        if fault is not None:
            injector = self.injectors[fault.link] = fault.make(self.cfg)
            injector.bind(self.sensors[0])
        self.robot.obey_lower_limits_late(plan.robot_slow_delay_ns)
        try:
            self.pump(t0 + plan.duration_ns)
        finally:
            self.robot.obey_lower_limits_late(0)
            self.plan = None
            self.reset_presses.clear()
            if injector is not None:
                injector.end()
            if fault is not None:
                self.injectors[fault.link] = None
                self.pending.clear()
        if injector is not None and injector.acted_ns is not None:
            self.log.add(RigEvent.FAULT_INJECTED, injector.acted_ns, value=index)
        self.log.add(RigEvent.RUN_END, self.now(), value=index)
        out = evaluate_scenario(plan, self.log.array(t0 - 200 * MS), t0, budget)
        out.verified = evidence
        if injector is not None and injector.acted_ns is None:
            out.fail(FailureClass.AVAILABILITY, "the scenario's fault never acted (no frame on its link)")
        return out

    def run_fault(self, fault: fl.Fault, index: int, prompt: Callable[[str], None] | None = None) -> Outcome:
        """Bring the cell to a verified RUN, inject one fault on its link, judge the controller's answer."""
        from cobotguard.hil.timeline import evaluate_fault

        started = self.start_clock(fault.name, "fault", prompt)
        if isinstance(started, Outcome):
            return started
        _, evidence = started
        t_start = self.now()
        self.log.add(RigEvent.RUN_START, t_start, value=index)
        injector = fault.make(self.cfg)
        injector.bind(self.sensors[0])
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
        self.pump(self.now() + FAULT_TAIL_NS)  # the stop must hold (latched) through the tail
        injector.end()
        self.injectors[fault.link] = None
        self.pending.clear()  # late frames of a delay fault are not sent after it ends
        acted = injector.acted_ns if injector.acted_ns is not None else give_up
        self.log.add(RigEvent.FAULT_INJECTED, acted, value=index)
        self.log.add(RigEvent.RUN_END, self.now(), value=index)
        out = evaluate_fault(fault.name, self.log.array(t_start - 200 * MS), acted, fault.expected, deadline)
        out.verified = evidence
        if injector.acted_ns is None:
            out.fail(FailureClass.AVAILABILITY, "the fault never acted (no frame on its link)")
        return out
