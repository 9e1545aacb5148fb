"""A simulated-clock, discrete-event cell: sensors, a person, the controller's cycle and an emulated robot.

Everything runs on integer nanoseconds that the simulation advances itself; nothing reads a clock. The
controller is the real compiled step called once per simulated cycle, released on the tick like
`safety.executor.Controller`: a cycle released at r writes its command by r + worst step (its share of the
worst step is `Run.step_fraction` / `Run.step_fractions`); when that is after later releases (a worst step
longer than the period), the next cycle is the latest of them, started at once, and the ones before it are
skipped, as the executor does. The sensors produce DETECTION_DTYPE
frames with the declared timing (phase, latency up to the worst case, missed frames up to the tolerated
count), some of them without the walking person (`Run.undetected`: the detector missed them); the robot
reacts to a stop after the link delay and its stop-input reaction and comes to rest after the stopping
time of the configuration's stopping model; it is at rest until the controller first lets it move,
and keeps every SLOW limit once the command has reached it (so it never trips the step's speed
supervision). Used by the timing-property and step tests, and reusable by the HIL rig and
the demo (`example_config`, `CellSim`, `Harness`; the record fillers are `safety.warmup`'s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.geometry import distance_to_region
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import CommandKind, HealthFlag, Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    FRAME_COUNTER_MODULO,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.step import new_state, step, stopping_at
from cobotguard.safety.warmup import T0_NS, write_frame, write_robot


def example_config(
    *,
    n_sensors: int = 1,
    restart: str = "manual",
    auto_restart_clear_ms: float | None = None,
    separation: bool = True,
    zones: bool = True,
    release_hysteresis_m: float = 0.1,
    tolerated_missed_frames: int = 2,
    worst_step_ms: float = 0.2,
    person_hold_ms: float = 0.0,
) -> CellConfig:
    """A small UR5e-class cell: a 1.8 m square hazard region, 30 fps cameras, 1 ms cycle (schema only)."""
    sensor = {
        "frame_rate_hz": 30.0,
        "exposure_readout_ms": 10.0,
        "inference_worst_ms": 5.0,
        "transport_latency_ms": 2.0,
        "tolerated_missed_frames": tolerated_missed_frames,
        "max_persons": 8,
        "image_width_px": 640,
        "image_height_px": 480,
        "min_person_height_px": 60.0,
        "assumed_person_height_m": 1.5,
        "position_uncertainty_m": 0.1,
        "min_score": 0.5,
    }
    zone_table = {
        "warning": {
            "type": "warning",
            "polygon_m": [(-3.0, -3.0), (3.0, -3.0), (3.0, 3.0), (-3.0, 3.0)],
            "speed_limit_mps": 0.25,
        },
        "protective": {
            "type": "protective",
            "polygon_m": [(-1.5, -1.5), (1.5, -1.5), (1.5, 1.5), (-1.5, 1.5)],
            "stop_category": 1,
        },
    }
    return CellConfig.model_validate(
        {
            "schema_version": 1,
            "name": "example cell",
            "robot": {
                "name": "UR5e-class",
                "max_speed_mps": 1.0,
                "payload_kg": 3.0,
                "stop_category": 1,
                "stop_input_reaction_ms": 24.0,
                "position_uncertainty_m": 0.05,
                "state_period_ms": 5.0,
                "hazard_polygon_m": [(-0.9, -0.9), (0.9, -0.9), (0.9, 0.9), (-0.9, 0.9)],
                "stopping": [
                    {"speed_mps": 0.25, "payload_kg": 5.0, "stop_time_ms": 120.0, "stop_distance_m": 0.02},
                    {"speed_mps": 0.5, "payload_kg": 5.0, "stop_time_ms": 220.0, "stop_distance_m": 0.07},
                    {"speed_mps": 1.0, "payload_kg": 5.0, "stop_time_ms": 380.0, "stop_distance_m": 0.22},
                ],
            },
            "sensors": {f"cam{k}": dict(sensor, connection_id=k + 1) for k in range(n_sensors)},
            "zones": zone_table if zones else {},
            "separation": {"enabled": separation, "intrusion_distance_m": 0.2, "stop_category": 1},
            "controller": {
                "cycle_period_ms": 1.0,
                "worst_step_ms": worst_step_ms,
                "restart": restart,
                "auto_restart_clear_ms": auto_restart_clear_ms,
                "release_hysteresis_m": release_hysteresis_m,
                "robot_state_timeout_ms": 20.0,
                "person_hold_ms": person_hold_ms,
            },
            "link": {
                "baud": 1_000_000,
                "connection_id": 100,
                "command_frame_bytes": 24,
                "state_frame_bytes": 32,
                "receiver_cycle_ms": 1.0,
                "command_watchdog_ms": 20.0,
                "max_delay_ms": 10.0,
            },
        }
    )


# --- discrete-event cell simulation ---------------------------------------------------------------------


class Fault(Enum):
    """Faults beyond the declared assumptions, injected from `Run.fault_at_ns` on."""

    NONE = "none"
    SENSOR_SILENT = "sensor silent"  # no more frames
    FRAMES_LATE = "frames late"  # frames arrive later than the declared worst-case latency
    COUNTER_JUMP = "counter jump"  # the frame counter skips, repeats or goes backwards
    CORRUPT_METADATA = "corrupt metadata"  # NaN position, health flag, too many persons, wrong sensor index
    LOOP_OVERRUN = "loop overrun"  # the executor reports a missed deadline
    ROBOT_SILENT = "robot silent"  # no more robot state reports


@dataclass(frozen=True)
class Walk:
    """A person walking straight from `start_gap_m` outside the hazard region toward a point inside it."""

    angle_deg: float  # where the person comes from, seen from the hazard region's centre
    speed_mps: float
    start_gap_m: float
    aim_offset_m: tuple[float, float] = (0.0, 0.0)  # aim point relative to the hazard centre
    error_fraction: float = 1.0  # measured position is this fraction of Z_d farther away than the truth


@dataclass(frozen=True)
class Run:
    """One simulated run: robot speed, sensor timing, link and step delays, a walk and/or a fault."""

    robot_speed_mps: float  # the program speed; the robot is slower while a SLOW limit below it holds
    walk: Walk | None
    sensor_phase_ns: tuple[int, ...]  # exposure phase of each sensor within its frame period
    latency_fraction: float  # each frame's latency = fraction x declared worst case (jittered by seed)
    missed: tuple[int, ...] = ()  # frame numbers (all sensors) that never arrive
    undetected: tuple[int, ...] = ()  # frame numbers (all sensors) that arrive without the walking person
    link_delay_fraction: float = 1.0  # command link delay as a fraction of the declared link term
    step_fraction: float = 1.0  # release -> command written, as a fraction of the declared worst step
    # per cycle instead (cycle k takes step_fractions[k % len]); empty: every cycle takes step_fraction
    step_fractions: tuple[float, ...] = ()
    seed: int = 0  # per-frame latency jitter
    fault: Fault = Fault.NONE
    fault_at_ns: int = 0  # relative to the walk/run start
    fault_variant: int = 0  # which flavour of the fault (counter jump size, corruption kind)
    counter_start: int = 0


@dataclass
class Outcome:
    """What happened: when the controller armed, first commanded a stop, and the robot came to rest."""

    armed_ns: int | None = None
    start_ns: int = 0  # the walk / the fault clock starts here
    stop_command_ns: int | None = None  # command written (cycle start + step time)
    stop_kind: int = -1
    stop_reason: int = -1
    stop_speed_mps: float = 0.0  # the speed the robot reported to the step that commanded the stop
    brake_ns: int | None = None
    rest_ns: int | None = None
    commands: list[tuple[int, int, int]] = field(default_factory=list)  # (t, kind, reason) when it changed
    skipped_releases: int = 0  # releases passed over because an earlier cycle wrote its command after them

    def describe(self) -> str:
        """One line per command change, readable in a shrunk counterexample."""
        lines = [f"armed at {self.armed_ns}, run starts at {self.start_ns}"]
        for t, kind, reason in self.commands:
            lines.append(f"  t={t - self.start_ns:+d} ns  {CommandKind(kind).name:<16} {Reason(reason).name}")
        return "\n".join(lines)


class CellSim:
    """The cell on a simulated clock: call `run(spec)` to get an `Outcome`."""

    def __init__(self, cfg: CellConfig, params: np.ndarray, step_fn=None) -> None:
        if cfg.controller.wake_on_data:
            raise ValueError(
                "controller.wake_on_data = true: CellSim models the loop that steps on the tick "
                "(cobotguard.safety.executor.Controller), not one that wakes on data; its runs would "
                "not keep the budget's wake-on-data T_r. Simulate with controller.wake_on_data = false"
            )
        self.cfg = cfg
        self.params = params
        self.p = params[0]
        self.step = step if step_fn is None else step_fn
        self.new_state = new_state
        sensor = next(iter(cfg.sensors.values()))
        self.frame_period_ns = timing.frame_period_ns(sensor.frame_rate_hz)  # all sensors run at this rate
        self.cycle_ns = int(self.p["cycle_period_ns"])
        self.worst_step_ns = int(self.p["worst_step_ns"])
        # worst-case link: the command frame on the line + the robot polling its port (budget stages)
        self.link_ns = timing.command_delivery_ns(cfg.link)
        self.robot_reaction_ns = ns(cfg.robot.stop_input_reaction_ms)
        self._lines: dict[Walk, tuple[tuple[float, float], tuple[float, float], float]] = {}
        hazard = self.p["hazard_vertices"][: self.p["hazard_n"]]
        self.hazard_centre = (float(hazard[:, 0].mean()), float(hazard[:, 1].mean()))

    # -- geometry of a walk --
    def walk_position(self, walk: Walk, t_ns: int) -> tuple[float, float]:
        """True floor position at t_ns (walk starts at 0)."""
        start, direction = self._walk_line(walk)
        s = walk.speed_mps * t_ns * 1e-9
        return start[0] + direction[0] * s, start[1] + direction[1] * s

    def _walk_line(self, walk: Walk) -> tuple[tuple[float, float], tuple[float, float]]:
        """(start point, unit direction) of a walk; the aim point is walk_length_m(walk) ahead."""
        cached = self._lines.get(walk)
        if cached is not None:
            return cached[0], cached[1]
        cx, cy = self.hazard_centre
        ax, ay = cx + walk.aim_offset_m[0], cy + walk.aim_offset_m[1]
        a = math.radians(walk.angle_deg)
        ux, uy = math.cos(a), math.sin(a)
        # walk outward from the aim point until the gap to the hazard region is start_gap_m
        lo, hi = 0.0, 100.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if self.distance_to_hazard((ax + ux * mid, ay + uy * mid)) < walk.start_gap_m:
                lo = mid
            else:
                hi = mid
        start = (ax + ux * hi, ay + uy * hi)
        self._lines[walk] = (start, (-ux, -uy), hi)
        return start, (-ux, -uy)

    def walk_length_m(self, walk: Walk) -> float:
        """Distance from the walk's start to its aim point inside the hazard region."""
        self._walk_line(walk)
        return self._lines[walk][2]

    def distance_to_hazard(self, xy: tuple[float, float]) -> float:
        """True distance from a floor point to the hazard region."""
        return float(distance_to_region(self.p["hazard_vertices"], self.p["hazard_n"], xy[0], xy[1]))

    def first_time_within(self, walk: Walk, gap_m: float) -> int:
        """First walk time (ns) at which the true distance to the hazard region is <= gap_m."""
        # the distance falls monotonically until the aim point (convex hazard region, aim inside it)
        lo, hi = 0, int(self.walk_length_m(walk) / walk.speed_mps * 1e9)
        if self.distance_to_hazard(self.walk_position(walk, lo)) <= gap_m:
            return 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.distance_to_hazard(self.walk_position(walk, mid)) <= gap_m:
                hi = mid
            else:
                lo = mid
        return hi

    # -- the run --
    def run(self, spec: Run, *, until_ns: int) -> Outcome:
        """Simulate from T0 until `until_ns` after the run start (or the robot is at rest)."""
        p = self.p
        n_sensors = int(p["n_sensors"])
        rng = np.random.default_rng(spec.seed)
        state = self.new_state(self.params)
        detections = empty_detections(MAX_SENSORS)
        robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        command = np.zeros(1, dtype=COMMAND_DTYPE)
        out = Outcome()
        max_latency = [int(v) for v in p["sensor_max_latency_ns"][:n_sensors]]
        z_d = [float(v) for v in p["sensor_z_d_m"][:n_sensors]]
        # arm: frames flowing, then a reset pulse; the walk and the fault clock start after arming
        arm_at = T0_NS + int(max(p["sensor_max_age_ns"][:n_sensors])) + 2 * self.cycle_ns
        next_frame = [0] * n_sensors
        pending: list[list[tuple[int, int, int, bool]]] = [[] for _ in range(n_sensors)]
        robot_speed = 0.0  # at rest until armed
        limit_at_robot = math.inf  # the commanded limit the robot keeps (after link delay and reaction)
        lowered: list[tuple[int, float]] = []  # (when it takes effect at the robot, lower limit) pending
        last_limit = math.inf
        self._jump_offset: list[int | None] = [None] * n_sensors
        missed, self._undetected = frozenset(spec.missed), frozenset(spec.undetected)  # looked up per frame
        self._last_counter = [0] * n_sensors
        last_kind = -1
        t = T0_NS  # now: when the cycle wakes and reads its inputs
        release = T0_NS  # when it was released (on the tick)
        cycle = 0
        reset_high_until = 0
        while True:
            start = out.start_ns if out.armed_ns is not None else None
            if start is not None and t > start + until_ns:
                break
            if out.rest_ns is not None and t > out.rest_ns:
                break
            rel = t - start if start is not None else None
            fault_on = spec.fault is not Fault.NONE and rel is not None and rel >= spec.fault_at_ns
            # sensors: schedule every frame exposed up to now, deliver those received by now
            for i in range(n_sensors):
                while True:
                    k = next_frame[i]
                    exposure = (
                        T0_NS + spec.sensor_phase_ns[i % len(spec.sensor_phase_ns)] + k * self.frame_period_ns
                    )
                    if exposure > t:
                        break
                    next_frame[i] += 1
                    jitter = 1.0 - 0.5 * float(rng.random()) if spec.latency_fraction > 0 else 0.0
                    latency = int(max_latency[i] * min(1.0, spec.latency_fraction * jitter))
                    exp_rel = exposure - start if start is not None else None
                    beyond = (
                        spec.fault is not Fault.NONE and exp_rel is not None and exp_rel >= spec.fault_at_ns
                    )
                    if beyond and spec.fault is Fault.SENSOR_SILENT:
                        continue
                    if beyond and spec.fault is Fault.FRAMES_LATE:
                        latency = max_latency[i] + 1 + spec.fault_variant * 1_000_000
                    if k in missed and not beyond:
                        continue
                    pending[i].append((exposure, exposure + latency, k, beyond))
                while pending[i] and pending[i][0][1] <= t:
                    exposure, received, k, beyond = pending[i].pop(0)
                    self._deliver(detections, i, spec, exposure, received, k, beyond, z_d[i], start)
            # robot state report: every cycle, just received, unless silent
            robot_silent = fault_on and spec.fault is Fault.ROBOT_SILENT
            while lowered and lowered[0][0] <= t:
                limit_at_robot = lowered.pop(0)[1]
            robot_speed = 0.0 if out.armed_ns is None else min(spec.robot_speed_mps, limit_at_robot)
            if not robot_silent:
                at_rest = out.rest_ns is not None and t >= out.rest_ns
                write_robot(
                    robot, 0.0 if at_rest else robot_speed, t - self.cycle_ns // 2, at_rest=int(at_rest)
                )
            reset = 1 if t < reset_high_until else 0
            if out.armed_ns is None and t >= arm_at and reset_high_until == 0:
                reset_high_until = t + 3 * self.cycle_ns
                reset = 1
            overrun = 1 if fault_on and spec.fault is Fault.LOOP_OVERRUN else 0
            self.step(self.params, state, detections, robot, reset, overrun, t, command)
            kind = int(command[0]["kind"])
            fractions = spec.step_fractions or (spec.step_fraction,)
            fraction = fractions[cycle % len(fractions)]
            # a cycle woken late (its predecessor wrote after this release) still writes by release + worst
            # step: never earlier than it woke, never later than its deadline
            written = max(release + int(self.worst_step_ns * fraction), t)
            if kind != last_kind:
                out.commands.append((written, kind, int(command[0]["reason"])))
                last_kind = kind
            limit = float(command[0]["speed_limit_mps"])
            slowing = out.armed_ns is not None and kind <= int(CommandKind.SLOW)  # stops: brake_ns, rest_ns
            if slowing and out.stop_command_ns is None and limit != last_limit:
                if limit > last_limit:
                    lowered.clear()  # a higher limit the robot may use at once
                    limit_at_robot = limit
                else:
                    reaches = written + int(self.link_ns * spec.link_delay_fraction) + self.robot_reaction_ns
                    lowered.append((reaches, limit))
            last_limit = limit
            if out.armed_ns is None:
                if kind in (int(CommandKind.RUN), int(CommandKind.SLOW)):
                    out.armed_ns = t
                    out.start_ns = t + self.cycle_ns
            elif out.stop_command_ns is None and kind >= int(CommandKind.PROTECTIVE_STOP):
                out.stop_command_ns = written
                out.stop_kind = kind
                out.stop_reason = int(command[0]["reason"])
                out.stop_speed_mps = float(robot[0]["speed_mps"])
                out.brake_ns = written + int(self.link_ns * spec.link_delay_fraction) + self.robot_reaction_ns
                if robot_speed > 0.0:
                    stop_ns, _ = stopping_at(p, robot_speed)
                    out.rest_ns = out.brake_ns + int(stop_ns)
                else:
                    out.rest_ns = out.brake_ns
            if out.armed_ns is None and t > arm_at + 100 * self.cycle_ns:
                raise RuntimeError("simulated controller did not arm:\n" + out.describe())
            # the next release, or the latest one that passed before this command was written (the ones
            # before it are skipped); it wakes at its release, or at once when that has passed
            cycle += 1
            release += self.cycle_ns
            passed = (written - release) // self.cycle_ns
            if passed > 0:
                release += passed * self.cycle_ns
                out.skipped_releases += passed
            t = max(release, written)
        return out

    def _deliver(
        self,
        detections: np.ndarray,
        i: int,
        spec: Run,
        exposure: int,
        received: int,
        k: int,
        beyond: bool,
        z_d: float,
        start: int | None,
    ) -> None:
        counter = (spec.counter_start + k) % FRAME_COUNTER_MODULO
        persons: list[tuple[float, float, float]] = []
        if k in self._undetected:
            pass  # the detector missed the person in this frame
        elif spec.walk is not None and start is not None and exposure >= start:
            x, y = self.walk_position(spec.walk, exposure - start)
            # worst case: the measurement is off by up to Z_d, away from the hazard region
            _, (dx, dy) = self._walk_line(spec.walk)
            e = spec.walk.error_fraction * z_d
            persons.append((x - dx * e, y - dy * e, z_d))
        elif spec.walk is not None and start is not None:
            x, y = self.walk_position(spec.walk, 0)
            persons.append((x, y, z_d))
        health = 0
        count = None
        index_override = None
        if beyond and spec.fault is Fault.COUNTER_JUMP:
            if self._jump_offset[i] is None:
                # the first frame from the fault on steps from the last counter *sent*: 0 repeats it,
                # -1/-4 go back, the others skip more frames than tolerated; later frames count on from it
                steps = (0, -1, -4, 2 + int(self.p["sensor_tolerated_missed"][i]), 100, 128, 200)
                target = self._last_counter[i] + steps[spec.fault_variant % len(steps)]
                self._jump_offset[i] = target - counter
            counter = (counter + (self._jump_offset[i] or 0)) % FRAME_COUNTER_MODULO
        self._last_counter[i] = counter
        if beyond and spec.fault is Fault.CORRUPT_METADATA:
            variant = spec.fault_variant % 4
            if variant == 0:
                persons = [(float("nan"), 0.0, z_d)]
            elif variant == 1:
                health = int(HealthFlag.LENS_COVERED)
            elif variant == 2:
                count = int(self.p["sensor_max_persons"][i]) + 1
            else:
                index_override = (i + 1) % MAX_SENSORS
        write_frame(detections, i, counter, exposure, received, persons, health=health, person_count=count)
        if index_override is not None:
            detections[i]["sensor_index"] = index_override


def watchdog_ns(params: np.ndarray, fault: Fault) -> int:
    """Longest time from a fault's onset to the stop command that the configuration promises.

    After the fault shows, the next cycle is released at most max(period, worst step) later (a late cycle
    skips to the latest release before its command) and writes its command within the worst step: the
    controller's share of T_r on the tick (safety.timing.controller_stage_ns).
    """
    p = params[0]
    n = int(p["n_sensors"])
    tail = timing.controller_stage_ns(int(p["cycle_period_ns"]), int(p["worst_step_ns"]))
    if fault is Fault.LOOP_OVERRUN:
        return tail
    if fault is Fault.ROBOT_SILENT:
        return int(p["robot_state_timeout_ns"]) + tail
    return int(max(p["sensor_max_age_ns"][:n])) + tail


class Harness:
    """The step with its buffers and a simulated clock, driven one cycle at a time (tests, demos, HIL).

    `frame()` delivers a sensor frame received "now", `tick()` advances the clock one cycle (refreshing
    the robot report unless `robot_silent`) and runs the step, returning a copy of the command. The
    robot reports `robot_speed_mps` whatever it is told: set it to model a robot that obeys (the step's
    speed supervision fault-stops one still too fast once a lower limit's grace has passed).
    """

    def __init__(self, cfg: CellConfig, step_fn=None, *, robot_speed_mps: float = 0.5) -> None:
        self.cfg = cfg
        self.params = build_params(cfg)
        self.state = new_state(self.params)
        self.step = step if step_fn is None else step_fn
        self.detections = empty_detections(MAX_SENSORS)
        self.robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        self.command = np.zeros(1, dtype=COMMAND_DTYPE)
        self.now = T0_NS
        self.cycle_ns = int(self.params[0]["cycle_period_ns"])
        self.counters = [-1] * MAX_SENSORS
        self.robot_speed_mps = robot_speed_mps
        self.robot_silent = False
        self.reset = 0

    def frame(
        self,
        persons: Sequence[tuple[float, float]] = (),
        *,
        sensor: int = 0,
        z_d_m: float = 0.1,
        counter_step: int = 1,
        latency_ns: int = 5_000_000,
        health: int = 0,
        person_count: int | None = None,
    ) -> None:
        """Deliver a frame from `sensor` with persons at (x, y), received now, exposed latency_ns ago."""
        self.counters[sensor] = (self.counters[sensor] + counter_step) % FRAME_COUNTER_MODULO
        points = [(x, y, z_d_m) for x, y in persons]
        write_frame(
            self.detections,
            sensor,
            self.counters[sensor],
            self.now - latency_ns,
            self.now,
            points,
            health=health,
            person_count=person_count,
        )

    def all_frames(self, persons: Sequence[tuple[float, float]] = (), **kw) -> None:
        """Deliver the same scene from every configured sensor."""
        for i in range(int(self.params[0]["n_sensors"])):
            self.frame(persons, sensor=i, **kw)

    def tick(self, *, reset: int | None = None, overrun: int = 0, advance_ns: int | None = None) -> np.void:
        """Advance one cycle (or advance_ns), run the step, return the command record."""
        self.now += self.cycle_ns if advance_ns is None else advance_ns
        if reset is not None:
            self.reset = reset
        if not self.robot_silent:
            write_robot(self.robot, self.robot_speed_mps, self.now - self.cycle_ns // 2)
        self.step(
            self.params, self.state, self.detections, self.robot, self.reset, overrun, self.now, self.command
        )
        return self.command[0].copy()

    def arm(self, persons: Sequence[tuple[float, float]] = ()) -> np.void:
        """Fresh frames from every sensor, then a reset pulse: the cell runs (or slows) afterwards."""
        self.all_frames(persons)
        self.tick(reset=0)
        self.all_frames(persons)
        command = self.tick(reset=1)
        self.tick(reset=0)
        return command

    @property
    def controller_state(self) -> int:
        """The controller's ControllerState value."""
        return int(self.state[0]["state"])
