"""The robot emulator: a sans-IO core that follows link commands with the cell's stopping model, and a thin
runner that drives it over a transport.

Motion is one-dimensional (path speed and distance along the path) and analytic, so results do not depend
on how often `advance` is called:
- a command takes effect `robot.stop_input_reaction_ms` after it was received (the robot's reaction);
- a stop (PROTECTIVE_STOP, FAULT_STOP, or any target speed of 0) brakes from the speed v0 at that instant
  with the stopping time T_s and distance S_s that `safety.budget.stopping_at` gives for v0, along
  v(t) = v0 (1 - t/T_s)^k with k = v0 T_s / S_s - 1, which covers exactly S_s in exactly T_s;
  (if the data claim S_s >= v0 T_s, k = 0: full speed for T_s, a distance of v0 T_s);
- slowing to a lower non-zero speed ramps down at v0 / T_s(v0), speeding up ramps at `accel_mps2`;
  a robot that is braking finishes the stop before it starts again;
- the robot's own command watchdog (`link.command_watchdog_ms`), and every other link error, stop it
  (FAULT_STOP, after the same reaction delay) and latch until `reset(now_ns)`.

Every time passed in is the rig's (true) time. With a `RobotClock`, the robot's link endpoint (its sender
times and its watchdog) runs on a clock of its own, offset and drifting from that; the motion does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.link import (
    NEED_DATA,
    Command,
    Endpoint,
    Event,
    LinkError,
    Received,
    ReceiverState,
    RobotState,
    Role,
    robot_link_endpoint,
)
from cobotguard.safety.link.transport import Transport, TransportError
from cobotguard.safety.reasons import CommandKind, Reason

NS_PER_S = 1_000_000_000
DEFAULT_ACCEL_MPS2 = 2.0


def _stopping(cfg: CellConfig) -> Callable[[float], tuple[int, float]]:
    from cobotguard.safety.stopping import stopping_at

    return lambda speed: stopping_at(cfg.robot, speed)


@dataclass(frozen=True, slots=True)
class Phase:
    """One analytic piece of motion starting at t0_ns from position x0_m with speed v0_mps.

    kind "cruise": constant v0. "ramp": linear towards v1 at rate a (m/s^2, signed), then cruise.
    "brake": v0 (1 - t/T)^k down to rest at t0 + T.
    """

    kind: str
    t0_ns: int
    x0_m: float
    v0_mps: float
    v1_mps: float = 0.0
    a_mps2: float = 0.0
    duration_ns: int = 0
    k: float = 1.0

    @property
    def end_ns(self) -> int | None:
        """When this phase hands over to a cruise (None: cruise lasts forever)."""
        return None if self.kind == "cruise" else self.t0_ns + self.duration_ns

    def at(self, t_ns: int) -> tuple[float, float]:
        """(position m, speed m/s) at t_ns, for t0 <= t_ns <= end."""
        t = (t_ns - self.t0_ns) / NS_PER_S
        if self.kind == "cruise":
            return self.x0_m + self.v0_mps * t, self.v0_mps
        if self.kind == "ramp":
            return self.x0_m + self.v0_mps * t + 0.5 * self.a_mps2 * t * t, self.v0_mps + self.a_mps2 * t
        big_t = self.duration_ns / NS_PER_S
        rest = max(0.0, 1.0 - t / big_t)
        x = self.x0_m + self.v0_mps * big_t / (self.k + 1.0) * (1.0 - rest ** (self.k + 1.0))
        return x, (self.v0_mps * rest**self.k if rest > 0.0 else 0.0)


@dataclass(slots=True)
class RobotClock:
    """The robot's own clock: robot time = true time + offset, running fast by drift_ppm (slow if < 0),
    from `origin_ns` of true time; `jump(delta_ns)` steps it (a clock set by hand or by a bad sync)."""

    offset_ns: int = 0
    drift_ppm: float = 0.0
    origin_ns: int = 0
    step_ns: int = 0

    def __post_init__(self) -> None:
        if not -1000.0 <= self.drift_ppm <= 1000.0:
            raise ValueError(f"drift_ppm: expected -1000..1000 (a quartz clock), got {self.drift_ppm}")

    def robot_ns(self, true_ns: int) -> int:
        """The robot clock's reading at true time `true_ns` (exact integer arithmetic, rounded down)."""
        elapsed = true_ns - self.origin_ns
        ppb = round(self.drift_ppm * 1000)
        return true_ns + self.offset_ns + self.step_ns + elapsed * ppb // 1_000_000_000

    def jump(self, delta_ns: int) -> None:
        """Step the clock by delta_ns from now on."""
        self.step_ns += delta_ns


@dataclass(frozen=True, slots=True)
class _Pending:
    t_effective_ns: int
    kind: CommandKind
    target_mps: float


class RobotEmulator:
    """Sans-IO robot: `receive(data, now_ns)`, `advance(now_ns)`, `state_frame(now_ns)`; time passed in."""

    def __init__(
        self,
        cfg: CellConfig,
        now_ns: int,
        program_speed_mps: float | None = None,
        accel_mps2: float = DEFAULT_ACCEL_MPS2,
        stopping: Callable[[float], tuple[int, float]] | None = None,
        clock: RobotClock | None = None,
    ) -> None:
        """A robot at rest at path position 0, its link endpoint awaiting the first command."""
        self.cfg = cfg
        self.clock = RobotClock(origin_ns=now_ns) if clock is None else clock
        if self.clock.robot_ns(now_ns) != now_ns and cfg.robot.clock != "own":
            raise ValueError(
                'a robot clock offset or drift needs robot.clock = "own" in the cell (with "shared" the '
                "controller compares the robot's sender times with its own clock)"
            )
        self.endpoint: Endpoint = robot_link_endpoint(cfg, Role.ROBOT, self.clock.robot_ns(now_ns))
        self._sent_robot_ns = self.clock.robot_ns(now_ns) - 1  # the last sender time used
        self.reaction_ns = ns(cfg.robot.stop_input_reaction_ms)
        self.program_speed_mps = cfg.robot.max_speed_mps if program_speed_mps is None else program_speed_mps
        if not 0.0 <= self.program_speed_mps <= cfg.robot.max_speed_mps:
            raise ValueError(f"program_speed_mps: expected 0..{cfg.robot.max_speed_mps}")
        self.accel_mps2 = accel_mps2
        self.stopping = stopping or _stopping(cfg)
        self.mode = CommandKind.FAULT_STOP  # nothing commanded yet: stopped
        self.fault: LinkError | None = None  # latched self-stop reason
        self.t_at_rest_ns: int | None = now_ns  # when the robot came to rest; None while moving
        self.t_last_standstill_ns: int | None = None  # when the last braking ended (kept after a restart)
        self._phase = Phase("cruise", now_ns, 0.0, 0.0)
        self._target_mps = 0.0
        self._pending: list[_Pending] = []
        self._now_ns = now_ns
        self._slow_delay_ns = 0  # see obey_lower_limits_late
        self._slow_hold_until_ns: int | None = None

    # ------------------------------------------------------------ inputs

    def receive(self, data: bytes, now_ns: int) -> list[Event]:
        """Feed bytes from the controller; accepted commands are scheduled, link errors stop the robot."""
        self.endpoint.feed(data, self.clock.robot_ns(now_ns))
        events: list[Event] = []
        while (event := self.endpoint.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, Received) and isinstance(event.message, Command):
                self._schedule(event.message, now_ns)
            elif isinstance(event, LinkError):
                self._self_stop(event, now_ns)
        return events

    def check_watchdog(self, now_ns: int) -> LinkError | None:
        """The robot's own command watchdog (on the robot's clock); a timeout stops the robot (latched)."""
        err = self.endpoint.check_watchdog(self.clock.robot_ns(now_ns))
        if err is not None:
            self._self_stop(err, now_ns)
        return err

    def reset(self, now_ns: int) -> None:
        """Operator reset: clear a latched self-stop; the robot stays at rest until commanded."""
        self.advance(now_ns)
        self.endpoint.reset(self.clock.robot_ns(now_ns))
        self.fault = None
        self._target_mps = 0.0

    def reset_link(self, now_ns: int) -> None:
        """Reset the link endpoint only (the rig keeps listening after a self-stop, which stays latched)."""
        self.endpoint.reset(self.clock.robot_ns(now_ns))

    def _schedule(self, command: Command, t_received_ns: int) -> None:
        if command.kind in (CommandKind.PROTECTIVE_STOP, CommandKind.FAULT_STOP):
            target = 0.0
        else:
            target = min(self.program_speed_mps, command.speed_limit_mps)
        t_effective = t_received_ns + self.reaction_ns
        if self._slow_delay_ns and 0.0 < target < self._target_mps and self._slow_hold_until_ns is None:
            self._slow_hold_until_ns = t_received_ns + self._slow_delay_ns
        if target > 0.0 and self._slow_hold_until_ns is not None:
            t_effective = max(t_effective, self._slow_hold_until_ns)  # stops are never held back
        self._pending.append(_Pending(t_effective, command.kind, target))

    def obey_lower_limits_late(self, delay_ns: int) -> None:
        """Misbehave: keep the speed for delay_ns after the first lowered limit arrives (0: obey again)."""
        self._slow_delay_ns = delay_ns
        self._slow_hold_until_ns = None

    def _self_stop(self, err: LinkError, now_ns: int) -> None:
        if self.fault is None:
            self.fault = err
        self._pending.append(_Pending(now_ns + self.reaction_ns, CommandKind.FAULT_STOP, 0.0))

    # ------------------------------------------------------------ motion

    def advance(self, now_ns: int) -> None:
        """Move the emulated robot forward in time to now_ns (never backwards)."""
        if now_ns < self._now_ns:
            raise ValueError(f"time went backwards: {now_ns} < {self._now_ns}")
        self._pending.sort(key=lambda p: p.t_effective_ns)
        while self._pending and self._pending[0].t_effective_ns <= now_ns:
            pending = self._pending.pop(0)
            self._run_to(pending.t_effective_ns)
            self._apply(pending)
        self._run_to(now_ns)

    def _run_to(self, t_ns: int) -> None:
        phase = self._phase
        while (end := phase.end_ns) is not None and end <= t_ns:
            x, v = phase.at(end)
            if phase.kind == "brake":
                v = 0.0
                self.t_at_rest_ns = end
                self.t_last_standstill_ns = end
            else:
                v = phase.v1_mps
            phase = Phase("cruise", end, x, v)
            self._phase = phase
            if v == 0.0 and self._target_mps > 0.0 and self.fault is None:
                self._start_towards(self._target_mps, end)
                phase = self._phase
        self._now_ns = max(self._now_ns, t_ns)

    def _apply(self, pending: _Pending) -> None:
        if self.fault is not None and pending.kind is not CommandKind.FAULT_STOP:
            return  # latched: nothing but a stop until reset
        self.mode = pending.kind
        self._target_mps = pending.target_mps
        if self._phase.kind == "brake":
            return  # finish the stop as begun; at rest, _run_to restarts towards a non-zero target
        self._start_towards(pending.target_mps, pending.t_effective_ns)

    def _start_towards(self, target: float, t_ns: int) -> None:
        x, v = self._phase.at(t_ns)
        if target == 0.0:
            if v == 0.0:
                self._phase = Phase("cruise", t_ns, x, 0.0)
                return
            stop_ns, stop_m = self.stopping(v)
            k = max(0.0, v * (stop_ns / NS_PER_S) / stop_m - 1.0) if stop_m > 0.0 else 0.0
            self._phase = Phase("brake", t_ns, x, v, 0.0, 0.0, max(1, stop_ns), k)
        elif target == v:
            self._phase = Phase("cruise", t_ns, x, v)
        else:
            if target > v:
                a = self.accel_mps2
            else:
                stop_ns, _ = self.stopping(v)
                a = -v / (max(1, stop_ns) / NS_PER_S)
            duration = max(1, round((target - v) / a * NS_PER_S))
            self._phase = Phase("ramp", t_ns, x, v, target, a, duration)
        if v == 0.0 and target > 0.0:
            self.t_at_rest_ns = None

    # ------------------------------------------------------------ outputs

    @property
    def position_m(self) -> float:
        """Distance travelled along the path since start."""
        return self._phase.at(self._now_ns)[0]

    @property
    def speed_mps(self) -> float:
        """Current path speed."""
        return max(0.0, self._phase.at(self._now_ns)[1])

    @property
    def at_rest(self) -> bool:
        """True at standstill."""
        return self.speed_mps == 0.0

    @property
    def reason(self) -> Reason | None:
        """Why the robot stopped itself, None if it did not."""
        return None if self.fault is None else self.fault.reason

    def state(self) -> RobotState:
        """The state message for the controller."""
        mode = CommandKind.FAULT_STOP if self.fault is not None else self.mode
        return RobotState(
            speed_mps=min(self.speed_mps, 65.535),
            mode=mode,
            at_rest=self.at_rest,
            last_command_seq=self.endpoint.last_received_seq,
        )

    def state_frame(self, now_ns: int) -> bytes:
        """Advance to now_ns and encode the state message."""
        self.advance(now_ns)
        # a slow clock can read the same nanosecond twice: sender times must still strictly increase
        self._sent_robot_ns = max(self.clock.robot_ns(now_ns), self._sent_robot_ns + 1)
        return self.endpoint.send(self.state(), self._sent_robot_ns)


class RobotRunner:
    """Thin shell: polls a transport, drives a RobotEmulator, answers each accepted command with its state
    and sends its state at least every `state_period_ns` (a heartbeat even when commands stop): by default
    the cell's `robot.state_period_ms`, the period the controller's staleness limit is checked against."""

    def __init__(
        self,
        emulator: RobotEmulator,
        transport: Transport,
        state_period_ns: int | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.emulator = emulator
        self.transport = transport
        if state_period_ns is None:
            state_period_ns = ns(emulator.cfg.robot.state_period_ms)
        self.state_period_ns = state_period_ns
        self.clock = clock
        self._last_state_ns: int | None = None

    def poll(self) -> list[Event]:
        """One cycle: read what arrived (waiting up to the transport's read timeout), react, report."""
        data = self.transport.read()
        now = self.clock()
        events = self.emulator.receive(data, now) if data else []
        self.emulator.check_watchdog(now)
        self.emulator.advance(now)
        replied = any(isinstance(e, Received) for e in events)
        due = self._last_state_ns is None or now - self._last_state_ns >= self.state_period_ns
        if replied or due:
            self.transport.write(self.emulator.state_frame(now))
            self._last_state_ns = now
        return events

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set or the transport fails."""
        while not stop.is_set():
            try:
                self.poll()
            except TransportError:
                return

    @property
    def connected(self) -> bool:
        """True while commands arrive in sequence and in time."""
        return self.emulator.endpoint.state is ReceiverState.CONNECTED
