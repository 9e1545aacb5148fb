"""A custom robot adapter: a `safety.ports.RobotPort` around a (hypothetical) vendor SDK's arm object.

Use this pattern when the robot is driven through its maker's library instead of cobotguard's serial
safety link. The adapter maps each command to vendor calls:

    CommandKind.RUN / SLOW           -> arm.resume() (only when leaving a stop), arm.set_speed_limit(limit)
    CommandKind.PROTECTIVE_STOP      -> arm.stop(STOP_MODES[command.stop_category])
    CommandKind.FAULT_STOP           -> arm.stop(STOP_MODES[command.stop_category])
    anything it does not recognise   -> arm.stop("stop0")
    every cycle                      -> arm.heartbeat() (the robot's own watchdog stops it when the
                                        controller, or this adapter, goes quiet)

and fails closed on vendor errors: the first `VendorError` latches a fault (reported to the controller
through `take_fault` every cycle, so the controller commands FAULT_STOP), the adapter stops the arm and
stops feeding its heartbeat, and it forwards no motion until the operator's reset (`reset_link`, called
by the controller on the reset input's rising edge).

`FakeVendorArm` stands in for the SDK so the example runs anywhere:

    python examples/custom_robot_adapter.py

It runs the controller on a SimulatedClock through: start-up, reset, a person in the protective zone,
reset, a vendor error (heartbeat rejected), and two resets: the first clears the adapter's latch; the
controller, which latches the fault too, then waits for a fresh reset edge with the fault gone. It
prints the commands and the vendor calls.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cobotguard.safety.clock import SimulatedClock
from cobotguard.safety.config import stepped_on_the_tick
from cobotguard.safety.config_load import load_config
from cobotguard.safety.executor import Controller
from cobotguard.safety.ports import QueueSensorSource
from cobotguard.safety.reasons import CommandKind, Reason, StopCategory
from cobotguard.safety.records import DETECTION_DTYPE
from cobotguard.safety.timing import frame_period_ns

# -------------------------------------------------------------------------------------------------------
# The vendor side (hypothetical). A real SDK object has calls like these; names differ per maker.


class VendorError(RuntimeError):
    """What the vendor SDK raises when a call fails (connection lost, robot refused, timeout)."""


@dataclass
class FakeVendorArm:
    """Stands in for `vendor_sdk.connect(...)`: speed follows the limit at once, a stop brings it to 0.

    `fail_on` names calls that raise VendorError (once each), to show the adapter failing closed.
    """

    max_speed_mps: float = 0.25
    speed_mps: float = 0.0
    limit_mps: float = 0.0
    stopped: str | None = "stop1"  # the arm powers up stopped
    calls: list[tuple[str, object]] = field(default_factory=list)  # (call, argument), heartbeats excluded
    heartbeats: int = 0
    fail_on: set[str] = field(default_factory=set)

    def _maybe_fail(self, call: str) -> None:
        if call in self.fail_on:
            self.fail_on.discard(call)
            raise VendorError(f"{call}: robot controller did not answer")

    def set_speed_limit(self, mps: float) -> None:
        """Limit the TCP speed (the robot keeps moving at or below it)."""
        self._maybe_fail("set_speed_limit")
        self.calls.append(("set_speed_limit", round(mps, 4)))
        self.limit_mps = mps
        if self.stopped is None:
            self.speed_mps = min(mps, self.max_speed_mps)

    def stop(self, mode: str) -> None:
        """Stop: "stop0" (power off at once), "stop1" (controlled, then power off), "stop2" (controlled)."""
        self._maybe_fail("stop")
        self.calls.append(("stop", mode))
        self.stopped = mode
        self.speed_mps = 0.0

    def resume(self) -> None:
        """Release a stop (the vendor's "continue"); the robot moves again at the current limit."""
        self._maybe_fail("resume")
        self.calls.append(("resume", None))
        self.stopped = None
        self.speed_mps = min(self.limit_mps, self.max_speed_mps)

    def heartbeat(self) -> None:
        """Feed the robot-side watchdog (a real robot stops when this stops arriving)."""
        self._maybe_fail("heartbeat")
        self.heartbeats += 1

    def tcp_speed(self) -> float:
        """Current TCP speed in m/s."""
        self._maybe_fail("tcp_speed")
        return self.speed_mps

    def is_stationary(self) -> bool:
        """True at standstill."""
        self._maybe_fail("is_stationary")
        return self.speed_mps == 0.0


# -------------------------------------------------------------------------------------------------------
# The adapter: this is the part an integrator writes.

STOP_MODES: dict[int, str] = {
    int(StopCategory.CAT0): "stop0",
    int(StopCategory.CAT1): "stop1",
    int(StopCategory.CAT2): "stop2",
}
# After a vendor error the arm's state is unknown: use the stop that depends least on the robot's own
# controller (category 0). Whether that is right for a cell is a risk-assessment decision.
MOST_RESTRICTIVE_MODE = "stop0"
FAULT_REASON = Reason.LINK_LOSS  # a command that may not have reached the robot; see docs/integration.md


class VendorRobotPort:
    """RobotPort over a vendor SDK arm. Every vendor call happens in the controller's cycle, so each must
    return quickly (bounded); an SDK call that can block belongs behind a non-blocking queue instead."""

    def __init__(self, arm: FakeVendorArm, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.arm = arm
        self.clock_ns = clock_ns
        self.fault = 0  # latched Reason (0: none) until reset_link
        self.last_error: str | None = None
        self._applied_kind = int(CommandKind.FAULT_STOP)  # what the arm is executing, as far as we know
        self._applied_limit = -1.0
        self._applied_mode: str | None = None
        self._last_seq = -1

    # -- RobotPort ---------------------------------------------------------------------------------

    def receive_state(self, now_ns: int, state: np.ndarray) -> bool:
        """Read speed and standstill from the SDK into state[0]; False (no new state) on a vendor error."""
        try:
            speed = self.arm.tcp_speed()
            at_rest = self.arm.is_stationary()
        except VendorError as exc:
            self._latch(f"reading the robot state: {exc}")
            return False  # the controller's robot_state_timeout_ms stops the cell if this persists
        s = state[0]
        s["speed_mps"] = speed  # passed as read: the safety step rejects NaN, negative or too fast
        s["mode"] = self._applied_kind
        s["at_rest"] = 1 if at_rest else 0
        s["last_command_seq"] = self._last_seq
        s["t_sent_ns"] = now_ns  # an SDK read has no sender clock; the read time is the honest value
        s["t_received_ns"] = self.clock_ns()
        return True

    def send_command(self, command: np.ndarray, seq: int, now_ns: int) -> None:
        """Apply command[0] through the SDK and feed the robot's watchdog; fail closed on any vendor error."""
        c = command[0]
        kind = int(c["kind"])
        try:
            if self.fault:
                self._stop(MOST_RESTRICTIVE_MODE)  # latched: never forward motion, whatever the command
                return  # and no heartbeat: the robot's own watchdog stops it if our stop did not arrive
            if kind in (CommandKind.RUN, CommandKind.SLOW):
                self._move(float(c["speed_limit_mps"]), kind)
            elif kind in (CommandKind.PROTECTIVE_STOP, CommandKind.FAULT_STOP):
                self._stop(STOP_MODES.get(int(c["stop_category"]), MOST_RESTRICTIVE_MODE), kind)
            else:
                self._stop(MOST_RESTRICTIVE_MODE)
            self.arm.heartbeat()
            self._last_seq = seq
        except VendorError as exc:
            self._latch(f"command {seq}: {exc}")
            # If this stop fails too, nothing more software can do: the missing heartbeat trips the robot's
            # own watchdog.
            with contextlib.suppress(VendorError):
                self._stop(MOST_RESTRICTIVE_MODE)

    def take_fault(self) -> int:
        """The latched fault Reason, reported every cycle until reset_link (the step does not latch it)."""
        return self.fault

    # -- optional hooks the Controller calls when present -----------------------------------------

    def start(self, now_ns: int) -> None:
        """At arming: command a stop before the first cycle (the controller starts stopped anyway)."""
        try:
            self._stop(STOP_MODES[int(StopCategory.CAT1)])
        except VendorError as exc:
            self._latch(f"at start: {exc}")

    def reset_link(self, now_ns: int) -> None:
        """Operator reset (rising edge of the reset input): clear the latch; the next command applies."""
        self.fault = 0
        self.last_error = None
        self._applied_mode = None  # the arm's state is unknown after an error: re-issue what comes next
        self._applied_limit = -1.0

    # -- internals -------------------------------------------------------------------------------

    def _latch(self, message: str) -> None:
        if not self.fault:
            self.fault = int(FAULT_REASON)
            self.last_error = message

    def _move(self, limit_mps: float, kind: int) -> None:
        if limit_mps != self._applied_limit:
            self.arm.set_speed_limit(limit_mps)  # limit first, so a resumed arm never runs faster
            self._applied_limit = limit_mps
        if self._applied_mode is not None or self._applied_kind not in (CommandKind.RUN, CommandKind.SLOW):
            self.arm.resume()  # leaving a stop: the controller only gets here after a reset edge
            self._applied_mode = None
        self._applied_kind = kind

    def _stop(self, mode: str, kind: int = int(CommandKind.FAULT_STOP)) -> None:
        if self._applied_mode != mode:
            self.arm.stop(mode)
            self._applied_mode = mode
        self._applied_kind = kind


# -------------------------------------------------------------------------------------------------------
# Running it against the fake arm on a simulated clock.

MS = 1_000_000
RESETS_MS = (300, 2_000, 3_000, 3_200)
PERSON_MS = (1_000, 1_500)  # a person stands in the protective zone during this window
VENDOR_ERROR_MS = 2_500  # the arm rejects a heartbeat at this time
END_MS = 3_500


@dataclass(frozen=True)
class Step:
    """A change of the controller's command, with the vendor calls made since the previous change."""

    t_ms: float
    kind: CommandKind
    reason: Reason
    vendor_calls: tuple[tuple[str, object], ...]


def empty_or_person_frame(counter: int, t_exposure_ns: int, person: bool) -> np.ndarray:
    """A detection frame from sensor 0 (nobody, or one person 1.5 m in front of the robot)."""
    frame = np.zeros(1, dtype=DETECTION_DTYPE)
    f = frame[0]
    f["frame_counter"] = counter % 256
    f["t_exposure_ns"] = t_exposure_ns
    f["t_inference_done_ns"] = t_exposure_ns + 20 * MS
    f["t_sent_ns"] = t_exposure_ns + 21 * MS
    if person:
        f["person_count"] = 1
        f["persons"][0]["x_m"], f["persons"][0]["y_m"] = -1.5, 0.0
        f["persons"][0]["z_d_m"], f["persons"][0]["score"] = 0.1, 0.9
    return frame


def run_example(cell: str | None = None, out=sys.stdout) -> tuple[list[Step], VendorRobotPort]:  # noqa: ANN001
    """Run the scene; print and return the command changes and the adapter."""
    from pathlib import Path

    # the plain-Python executor steps on the tick (its in-process ports have no descriptor to wait on)
    cfg = stepped_on_the_tick(
        load_config(cell or Path(__file__).resolve().parents[1] / "hil" / "defaults" / "cell.toml")
    )
    clock = SimulatedClock(1_000 * MS)
    arm = FakeVendorArm(max_speed_mps=cfg.robot.max_speed_mps)
    port = VendorRobotPort(arm, clock_ns=clock.now_ns)
    sensors = QueueSensorSource()
    controller = Controller(cfg, sensors, port, clock=clock, realtime=False, producer="custom_robot_adapter")
    print("arming (compiles and warms the safety step) ...", file=out, flush=True)
    controller.arm()
    t0 = clock.now_ns()
    period = frame_period_ns(next(iter(cfg.sensors.values())).frame_rate_hz)
    frames = {"next": t0, "counter": 0}
    resets = [t0 + ms * MS for ms in RESETS_MS]
    steps: list[Step] = []
    calls_seen = [0]
    failure_injected = [False]

    def between_cycles() -> bool:  # the camera thread and the operator, once per cycle
        now = clock.now_ns()
        while frames["next"] + 21 * MS <= now:
            t_ms = (frames["next"] - t0) / MS
            person = PERSON_MS[0] <= t_ms < PERSON_MS[1]
            sensors.put(empty_or_person_frame(frames["counter"], frames["next"], person))
            frames["counter"] += 1
            frames["next"] += period
        if resets and now >= resets[0]:
            resets.pop(0)
            controller.press_reset()
        if not failure_injected[0] and now - t0 >= VENDOR_ERROR_MS * MS:
            failure_injected[0] = True
            arm.fail_on.add("heartbeat")
        record(now)
        return now - t0 >= END_MS * MS

    def record(now: int) -> None:
        c = controller.command[0]  # the command the controller sent last cycle
        kind, reason = CommandKind(int(c["kind"])), Reason(int(c["reason"]))
        if steps and (steps[-1].kind, steps[-1].reason) == (kind, reason):
            return
        new_calls = tuple(arm.calls[calls_seen[0] :])
        calls_seen[0] = len(arm.calls)
        steps.append(Step((now - t0) / MS, kind, reason, new_calls))
        calls = ", ".join(name + ("()" if arg is None else f"({arg!r})") for name, arg in new_calls) or "-"
        print(f"  t={(now - t0) / 1e9:6.3f} s  {kind.name:<15} {reason.name:<26} vendor: {calls}", file=out)

    with controller:
        controller.run(until=between_cycles)
    print(
        f"after close: arm stopped={arm.stopped!r}, speed {arm.speed_mps} m/s, {arm.heartbeats} heartbeats; "
        f"adapter error seen: {port.last_error or 'none (cleared by the reset)'}",
        file=out,
    )
    return steps, port


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: optional cell path; exit 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    run_example(args[0] if args else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
