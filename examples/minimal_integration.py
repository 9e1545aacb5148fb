"""Minimal integration: the cobotguard controller as a library, with in-process ports and no hardware.

The steps an integrator takes, in order:

1. load the cell configuration and look at its budget and checksum (`cobotguard check` does the same);
2. create the ports: a `QueueSensorSource` (the camera side calls `put(frame)`) and a `QueueRobotPort`
   (the robot side calls `set_state(state)` and reads `last_command`);
3. build the `Controller` with the checksum that was validated, `arm()` it (compiles the safety step:
   a few seconds), `run()` it;
4. press reset (the operator's button): the controller starts stopped (NOT_ARMED) and only runs after a
   reset edge; then watch the commands and their reasons while a person walks in and out again;
5. `close()`: a final stop command, the trace flushed.

The run uses a SimulatedClock, so it is deterministic and takes seconds, most of it compiling the step.
`between_cycles` below stands in for the camera and robot threads of a real cell: `Controller.run` calls
its `until=` callable before every cycle. In a real cell, drop `clock=`, keep `realtime=True`, and let the
camera and robot threads call `put` and `set_state` on their own.

    python examples/minimal_integration.py [CELL.toml] [--trace run.cgtrace] [--expect-checksum C]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cobotguard.safety.budget import evaluate
from cobotguard.safety.checksum import config_checksum
from cobotguard.safety.clock import SimulatedClock
from cobotguard.safety.config import CellConfig, ConfigError, stepped_on_the_tick
from cobotguard.safety.config_load import load_config
from cobotguard.safety.executor import ArmError, Controller
from cobotguard.safety.ports import QueueRobotPort, QueueSensorSource
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import DETECTION_DTYPE, FRAME_COUNTER_MODULO, ROBOT_STATE_DTYPE
from cobotguard.safety.timing import frame_period_ns

DEFAULT_CELL = Path(__file__).resolve().parents[1] / "hil" / "defaults" / "cell.toml"
MS = 1_000_000
START_NS = 1_000 * MS  # the simulated clock's start (any positive time will do)

# The script of the scene, in ns since the start.
RESET_AT_NS = (300 * MS, 6_200 * MS)  # the operator presses reset: at start-up, and after the person left
CAMERA_STOPS_AT_NS = 7_000 * MS  # the camera goes silent: the controller must stop on its own
END_NS = 7_500 * MS
# A person walks from (-5.0, 0.2) toward the robot at 1.6 m/s, stands, and walks back out of view.
WALK_NS_XY = (
    (1_000 * MS, -5.0, 0.2),
    (3_000 * MS, -1.8, 0.2),
    (3_500 * MS, -1.8, 0.2),
    (5_800 * MS, -5.5, 0.2),
)

INFERENCE_NS = 20 * MS  # exposure start -> metadata ready, as the camera would report it
SEND_NS = 1 * MS  # metadata ready -> published


def person_at(t_ns: int) -> tuple[float, float] | None:
    """Where the person stands at scene time t_ns (piecewise linear), or None when out of view."""
    points = WALK_NS_XY
    if t_ns < points[0][0] or t_ns > points[-1][0]:
        return None
    for (t0, x0, y0), (t1, x1, y1) in zip(points, points[1:], strict=False):
        if t0 <= t_ns <= t1:
            f = (t_ns - t0) / (t1 - t0)
            return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
    return None


def detection_frame(
    sensor_index: int, counter: int, t_exposure_ns: int, persons: Sequence[tuple[float, float]], z_d_m: float
) -> np.ndarray:
    """One DETECTION_DTYPE frame as a camera adapter publishes it (floor positions already computed).

    A real sensor path fills the same fields: sensor.imx500.Imx500Adapter or sensor.emulator do it from
    boxes and the camera model. t_received_ns stays 0: the in-process port stamps it on receipt.
    """
    frame = np.zeros(1, dtype=DETECTION_DTYPE)
    f = frame[0]
    f["sensor_index"] = sensor_index
    f["frame_counter"] = counter % FRAME_COUNTER_MODULO
    f["person_count"] = len(persons)
    f["health"] = 0  # HealthFlag.OK: any set bit stops the cell
    f["inference_us"] = INFERENCE_NS // 1000
    f["t_exposure_ns"] = t_exposure_ns
    f["t_inference_done_ns"] = t_exposure_ns + INFERENCE_NS
    f["t_sent_ns"] = t_exposure_ns + INFERENCE_NS + SEND_NS
    for j, (x, y) in enumerate(persons):
        f["persons"][j]["x_m"] = x
        f["persons"][j]["y_m"] = y
        f["persons"][j]["z_d_m"] = z_d_m
        f["persons"][j]["score"] = 0.9
    return frame


class SimulatedCamera:
    """Publishes one frame per frame period into the sensor source, as a camera thread would."""

    def __init__(self, cfg: CellConfig, sensors: QueueSensorSource, t0_ns: int) -> None:
        sensor = next(iter(cfg.sensors.values()))  # sensor index 0 = the first configured sensor
        self.period_ns = frame_period_ns(sensor.frame_rate_hz)
        self.z_d_m = sensor.position_uncertainty_m
        self.sensors = sensors
        self.t0_ns = t0_ns
        self.next_exposure_ns = t0_ns
        self.counter = 0

    def publish_due(self, now_ns: int) -> None:
        """Put every frame whose metadata has been sent by now."""
        while self.next_exposure_ns + INFERENCE_NS + SEND_NS <= now_ns:
            t_exposure = self.next_exposure_ns
            if t_exposure - self.t0_ns >= CAMERA_STOPS_AT_NS:
                return  # silent from here on: no frame ever means "nobody there"
            where = person_at(t_exposure - self.t0_ns)
            persons = [where] if where is not None else []
            self.sensors.put(detection_frame(0, self.counter, t_exposure, persons, self.z_d_m))
            self.counter += 1
            self.next_exposure_ns += self.period_ns


class SimulatedRobot:
    """A robot that takes the last command's speed limit at once and reports its state every cycle."""

    def __init__(self, robot_port: QueueRobotPort) -> None:
        self.port = robot_port
        self.state = np.zeros(1, dtype=ROBOT_STATE_DTYPE)

    def follow(self, now_ns: int) -> None:
        """Apply the newest command, then publish the state (t_received_ns 0: stamped on receipt)."""
        command = self.port.last_command[0]
        moving = int(command["kind"]) in (CommandKind.RUN, CommandKind.SLOW)
        s = self.state[0]
        s["speed_mps"] = float(command["speed_limit_mps"]) if moving else 0.0
        s["mode"] = int(command["kind"])
        s["at_rest"] = 0 if moving else 1
        s["last_command_seq"] = self.port.last_seq
        s["t_sent_ns"] = now_ns
        s["t_received_ns"] = 0
        self.port.set_state(self.state)


@dataclass(frozen=True)
class Change:
    """A command that differs from the one before it (kind, speed limit or reason)."""

    t_ns: int  # since the start
    kind: CommandKind
    speed_limit_mps: float
    stop_category: int
    reason: Reason
    person_xy: tuple[float, float] | None

    def line(self, cfg: CellConfig) -> str:
        """One printable line."""
        if self.kind in (CommandKind.RUN, CommandKind.SLOW):
            what = f"{self.kind.name:<15} limit {self.speed_limit_mps:.2f} m/s"
        else:
            what = f"{self.kind.name:<15} category {self.stop_category}   "
        where = "nobody seen"
        if self.person_xy is not None:
            where = f"person at x={self.person_xy[0]:+.2f} y={self.person_xy[1]:+.2f} m"
        return f"  t={self.t_ns / 1e9:6.3f} s  {what}  {self.reason.name:<26} {where}"


def run_example(
    cell: str | Path = DEFAULT_CELL,
    trace_path: str | Path | None = None,
    expected_checksum: str | None = None,
    out=sys.stdout,  # noqa: ANN001 (a text stream)
) -> list[Change]:
    """Run the scene; print and return every change of command. Raises ConfigError or ArmError."""
    # 1. configuration, budget, checksum. In-process ports have no file descriptor for the compiled loop
    # to wait on, so this example runs the plain-Python executor, which steps on the tick: a cell that
    # wakes on data (the default cell) is run as the same cell on the tick, and its budget checked again.
    cfg = stepped_on_the_tick(load_config(cell))
    report = evaluate(cfg)
    short, _long = config_checksum(cfg)
    print(
        f"cell '{cfg.name}' checksum {short}: T_r {report.reaction_time_ns / 1e6:.1f} ms, "
        f"S_p {report.protective_separation_m:.3f} m at {report.max_speed_mps} m/s, verdict {report.verdict}",
        file=out,
    )
    if expected_checksum is None:
        # In a real cell this is the string recorded when the configuration was validated, kept with the
        # deployment; computing it at start-up, as here, would defeat the check.
        expected_checksum = short

    # 2. ports, 3. controller
    clock = SimulatedClock(START_NS)
    sensors = QueueSensorSource()
    robot_port = QueueRobotPort()
    controller = Controller(
        cfg,
        sensors,
        robot_port,
        trace_path=trace_path,
        expected_checksum=expected_checksum,
        clock=clock,
        realtime=False,  # a simulated run needs no SCHED_FIFO or mlockall
        producer="examples/minimal_integration.py",
    )
    print("arming (compiles and warms the safety step) ...", file=out, flush=True)
    controller.arm()
    t0 = clock.now_ns()
    camera = SimulatedCamera(cfg, sensors, t0)
    robot = SimulatedRobot(robot_port)
    changes: list[Change] = []
    resets = list(RESET_AT_NS)

    def note_command(now_ns: int) -> None:
        c = robot_port.last_command[0]
        key = (int(c["kind"]), round(float(c["speed_limit_mps"]), 6), int(c["reason"]))
        last = changes[-1] if changes else None
        if last is None or key != (int(last.kind), round(last.speed_limit_mps, 6), int(last.reason)):
            change = Change(
                int(c["t_ns"]) - t0,
                CommandKind(key[0]),
                key[1],
                int(c["stop_category"]),
                Reason(key[2]),
                person_at(now_ns - t0),
            )
            changes.append(change)
            print(change.line(cfg), file=out)

    def between_cycles() -> bool:
        now = clock.now_ns()
        if robot_port.commands_sent:
            note_command(now)
        camera.publish_due(now)
        robot.follow(now)
        if resets and now - t0 >= resets[0]:
            resets.pop(0)
            controller.press_reset()
        return now - t0 >= END_NS

    # 4. run; 5. close
    with controller:
        controller.run(until=between_cycles)
        note_command(clock.now_ns())
    stats = controller.stats
    print(
        f"{stats.cycles} cycles, {stats.frames_in} frames in, {stats.overruns} overruns; "
        f"final command {CommandKind(int(robot_port.last_command[0]['kind'])).name}",
        file=out,
    )
    if trace_path is not None:
        print(f"trace: {trace_path} (try `cobotguard replay {trace_path}`)", file=out)
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: exit 0 after the run, 2 on an invalid cell or a refusal to arm."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell", nargs="?", default=str(DEFAULT_CELL), help="cell configuration (TOML)")
    parser.add_argument("--trace", metavar="PATH", help="write the controller trace here")
    parser.add_argument("--expect-checksum", metavar="C", help="the checksum the cell was validated with")
    args = parser.parse_args(argv)
    try:
        run_example(args.cell, args.trace, args.expect_checksum)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    except ArmError as exc:
        print(f"refused to arm ({exc.reason.name}): {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
