"""HIL scenarios as data: people walking on the floor, turned into the sensor's detection frames.

A scenario is a small frozen spec (angles, speeds, gaps in metres, times in milliseconds). `build_plan`
resolves it against a cell's geometry into concrete floor tracks (int64 ns keyframes); `detection_frames`
samples those tracks at a sensor's frame rate with its declared timing, exactly as the rig will send them.
Everything here is pure: no clock, no port.

Gaps are distances from the hazard region (the floor projection of everything the robot can reach).
A gap measured "from the edge" is measured from the stop boundary along the person's path: the farther
of the outermost protective zone and the required separation distance the caller passes in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np
import shapely

from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, Sensor, ns
from cobotguard.safety.reasons import Reason
from cobotguard.safety.records import DETECTION_DTYPE, MAX_PERSONS

GapFrom = Literal["hazard", "edge"]
SeenBy = Literal["all", "last"]
PERSON_REASONS = frozenset({Reason.PERSON_IN_PROTECTIVE_ZONE, Reason.SEPARATION_BELOW_SP})


class Expect(Enum):
    """What a scenario demands of the controller."""

    STOP = "stop"  # robot at rest before any person reaches the hazard region, within T_r
    NO_STOP = "no_stop"  # person stays outside the stop boundary: no protective stop (slowing is fine)
    RESTART = "restart"  # stop, then no restart until the zone is clear and a valid reset (or auto time)


@dataclass(frozen=True)
class Walk:
    """One person: appears, walks straight toward the hazard region's centre, may stop, dwell and leave."""

    angle_deg: float  # direction the person comes from, seen from the hazard centre; 0 = from +x
    speed_mps: float
    start_gap_m: float = 1.0
    start_gap_from: GapFrom = "edge"
    stop_gap_m: float | None = 0.0  # where the walk ends; None: walk on to the hazard region's centre
    stop_gap_from: GapFrom = "hazard"
    appear_ms: float = 0.0
    dwell_ms: float = 0.0  # time spent standing at the stop point before leaving
    leave: bool = False  # after the dwell, walk back out the same way and disappear


Anchor = Literal["dwell", "leave", "clear"]  # last person stopped walking in / started leaving / gone


@dataclass(frozen=True)
class ResetPulse:
    """The reset input high between two instants, each given as an anchor of the scenario + offset_ms."""

    rise: tuple[Anchor, float]
    fall: tuple[Anchor, float]
    restarts: bool  # whether the rising edge is a valid reset (zone clear, an edge, not held over)


@dataclass(frozen=True)
class Scenario:
    """A named scenario: people, reset input, how long to run it and what is expected."""

    name: str
    description: str
    walks: tuple[Walk, ...]
    expect: Expect
    resets: tuple[ResetPulse, ...] = ()
    tail_ms: float = 400.0  # run on this long after the last person's last keyframe
    stop_reasons: frozenset[Reason] = PERSON_REASONS  # what the first stop must name (a fault: its own)
    seen_by: SeenBy = "all"  # "last": only the cell's last sensor reports the people, the others see nobody
    fault: str | None = None  # a catalogue fault (hil.faults) that acts on the first frame of the run
    # the robot obeys a lowered speed limit this long after the documented overspeed grace has run out
    robot_slows_late_ms: float | None = None
    steady: bool = False  # while the people stand still, the command must not change (no cycling)


@dataclass(frozen=True)
class Track:
    """A person's floor path: linear between keyframes, present from the first to the last keyframe."""

    t_ns: np.ndarray  # int64, strictly increasing, relative to the scenario start
    xy_m: np.ndarray  # (K, 2) float64

    def position(self, t_ns: np.ndarray) -> np.ndarray:
        """(T, 2) positions at the given times; NaN where the person is not present."""
        t = np.asarray(t_ns, dtype=np.int64)
        out = np.full((t.shape[0], 2), np.nan)
        present = (t >= self.t_ns[0]) & (t <= self.t_ns[-1])
        tf = t[present].astype(np.float64)
        kf = self.t_ns.astype(np.float64)
        out[present, 0] = np.interp(tf, kf, self.xy_m[:, 0])
        out[present, 1] = np.interp(tf, kf, self.xy_m[:, 1])
        return out


@dataclass(frozen=True)
class Plan:
    """A scenario resolved against one cell: tracks, reset input changes and the expectation."""

    name: str
    expect: Expect
    tracks: tuple[Track, ...]
    duration_ns: int
    reset_changes: tuple[tuple[int, int], ...] = ()  # (t_ns, level), time-ordered
    valid_reset_ns: int | None = None  # first instant a restart is allowed (edge or automatic)
    clear_ns: int | None = None  # last person gone
    dwell_ns: int | None = None  # last person stopped walking in
    leave_ns: int | None = None  # last person started leaving
    notes: dict[str, float] = field(default_factory=dict)
    stop_reasons: frozenset[Reason] = PERSON_REASONS
    seen_by: SeenBy = "all"
    fault: str | None = None
    fault_deadline_ns: int = 0  # the fault's deadline (hil.faults), when the plan plays one
    overspeed_grace_ns: int | None = None  # a robot slowing late: the grace a lower limit allows it
    overspeed_deadline_ns: int = 0  # ... and the time the controller then has to stop it
    robot_slow_delay_ns: int = 0  # the emulated robot applies a lowered limit this long after receipt
    steady: bool = False

    def sees(self, sensor_index: int, n_sensors: int) -> bool:
        """Whether this sensor reports the plan's people."""
        return self.seen_by == "all" or sensor_index == n_sensors - 1


# ---------------------------------------------------------------------------------------------------
# The scenario catalogue. Speeds stay within ISO 13855's walking assumption (1.6 m/s) so every one of them
# must pass on a safe configuration; faster walkers belong to tests that probe the assumptions.

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "walk_in_front_1.6",
        "one person walks straight at the robot from the front at 1.6 m/s",
        (Walk(angle_deg=180.0, speed_mps=1.6),),
        Expect.STOP,
    ),
    Scenario(
        "walk_in_side_1.0",
        "one person walks in from the side at 1.0 m/s",
        (Walk(angle_deg=90.0, speed_mps=1.0),),
        Expect.STOP,
    ),
    Scenario(
        "walk_in_diagonal_1.6",
        "one person walks in diagonally at 1.6 m/s",
        (Walk(angle_deg=-135.0, speed_mps=1.6),),
        Expect.STOP,
    ),
    Scenario(
        "walk_in_slow_0.5",
        "one person creeps in at 0.5 m/s",
        (Walk(angle_deg=160.0, speed_mps=0.5, start_gap_m=0.2),),
        Expect.STOP,
    ),
    Scenario(
        "two_people",
        "two people walk in from different sides, the second 300 ms later and faster",
        (
            Walk(angle_deg=90.0, speed_mps=1.0),
            Walk(angle_deg=180.0, speed_mps=1.6, appear_ms=300.0),
        ),
        Expect.STOP,
    ),
    Scenario(
        "stop_at_edge",
        "one person walks in and stops 0.3 m outside the stop boundary: slow down at most, no stop",
        (Walk(angle_deg=180.0, speed_mps=1.0, stop_gap_m=0.3, stop_gap_from="edge", dwell_ms=800.0),),
        Expect.NO_STOP,
        tail_ms=0.0,
    ),
    Scenario(
        "leave_and_restart",
        "a person walks in (stop), a reset is pressed while inside, reset is pressed again and held while "
        "the person leaves and after, then a fresh reset edge: only that edge may restart",
        (
            Walk(
                angle_deg=180.0,
                speed_mps=1.6,
                start_gap_m=0.3,
                stop_gap_m=0.2,
                stop_gap_from="hazard",
                dwell_ms=700.0,
                leave=True,
            ),
        ),
        Expect.RESTART,
        resets=(
            ResetPulse(rise=("dwell", 200.0), fall=("dwell", 300.0), restarts=False),
            ResetPulse(rise=("leave", -100.0), fall=("clear", 400.0), restarts=False),
            ResetPulse(rise=("clear", 800.0), fall=("clear", 900.0), restarts=True),
        ),
        tail_ms=800.0,
    ),
    Scenario(
        "stand_at_edge_10s",
        "one person walks up to 0.2 m outside the stop boundary (beyond the default camera's 0.1 m "
        "position uncertainty) and stands there for 10 s: slow down at most, no stop, and no cycling "
        "between commands while the person stands",
        (Walk(angle_deg=180.0, speed_mps=1.0, stop_gap_m=0.2, stop_gap_from="edge", dwell_ms=10_000.0),),
        Expect.NO_STOP,
        tail_ms=0.0,
        steady=True,
    ),
    Scenario(
        "one_sensor_sees",
        "one person walks in at 1.6 m/s seen by the cell's last sensor only (occluded from the others)",
        (Walk(angle_deg=180.0, speed_mps=1.6),),
        Expect.STOP,
        seen_by="last",
    ),
    Scenario(
        "person_during_fault_stop",
        "a corrupted detection frame latches a fault stop; a person then walks in and stands inside; a "
        "reset pressed while the person is inside must not restart; after the person leaves, a fresh reset "
        "does",
        (
            Walk(
                angle_deg=90.0,
                speed_mps=1.2,
                start_gap_m=0.3,
                stop_gap_m=0.3,
                stop_gap_from="hazard",
                appear_ms=300.0,
                dwell_ms=1_000.0,
                leave=True,
            ),
        ),
        Expect.RESTART,
        fault="corruption",
        resets=(
            ResetPulse(rise=("dwell", 300.0), fall=("dwell", 400.0), restarts=False),
            ResetPulse(rise=("clear", 800.0), fall=("clear", 900.0), restarts=True),
        ),
        tail_ms=800.0,
    ),
    Scenario(
        "reset_with_person_inside",
        "one person walks into the protective zone and stands there 3 s while reset is pressed three "
        "times: the cell must not restart; after the person leaves, a fresh reset restarts it",
        (
            Walk(
                angle_deg=-135.0,
                speed_mps=1.0,
                start_gap_m=0.3,
                stop_gap_m=-0.3,
                stop_gap_from="edge",
                dwell_ms=3_000.0,
                leave=True,
            ),
        ),
        Expect.RESTART,
        resets=(
            ResetPulse(rise=("dwell", 500.0), fall=("dwell", 600.0), restarts=False),
            ResetPulse(rise=("dwell", 1_500.0), fall=("dwell", 1_600.0), restarts=False),
            ResetPulse(rise=("dwell", 2_500.0), fall=("dwell", 2_600.0), restarts=False),
            ResetPulse(rise=("clear", 800.0), fall=("clear", 900.0), restarts=True),
        ),
        tail_ms=800.0,
    ),
    Scenario(
        "late_slowdown_overspeed",
        "one person walks into the warning zone and stands outside the stop boundary; the robot keeps its "
        "speed 200 ms beyond the documented overspeed grace after RUN -> SLOW: ROBOT_OVERSPEED stop",
        (Walk(angle_deg=180.0, speed_mps=1.0, stop_gap_m=0.3, stop_gap_from="edge", dwell_ms=1_500.0),),
        Expect.STOP,
        stop_reasons=frozenset({Reason.ROBOT_OVERSPEED}),
        robot_slows_late_ms=200.0,
        tail_ms=0.0,
    ),
)


def scenario_names() -> list[str]:
    """Names of the catalogue's scenarios, in order."""
    return [s.name for s in SCENARIOS]


def get_scenario(name: str) -> Scenario:
    """The catalogue scenario with this name (KeyError naming the known ones otherwise)."""
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(f"unknown scenario {name!r}; known: {', '.join(scenario_names())}")


# ---------------------------------------------------------------------------------------------------
# Geometry (config-time, shapely)


def _polygon(points: Sequence[Sequence[float]]) -> shapely.Polygon:
    return shapely.Polygon([(float(x), float(y)) for x, y in points])


def gaps_to_region(xy_m: np.ndarray, polygon: Sequence[Sequence[float]]) -> np.ndarray:
    """Distance of each point (..., 2) to a floor polygon (0 inside); NaN points stay NaN."""
    xy = np.asarray(xy_m, dtype=np.float64)
    flat = xy.reshape(-1, 2)
    out = np.full(flat.shape[0], np.nan)
    ok = np.isfinite(flat).all(axis=1)
    if ok.any():
        out[ok] = shapely.distance(shapely.points(flat[ok]), _polygon(polygon))
    return out.reshape(xy.shape[:-1])


def _ray_point_at_gap(
    centre: np.ndarray, direction: np.ndarray, polygon: shapely.Polygon, gap_m: float
) -> np.ndarray:
    """The farthest point on the ray from the centre within gap_m of the polygon (bisection)."""
    lo, hi = 0.0, 1.0
    while shapely.distance(shapely.Point(*(centre + hi * direction)), polygon) <= gap_m:
        hi *= 2.0
        if hi > 1e4:
            raise ValueError("ray never reaches the requested gap")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if shapely.distance(shapely.Point(*(centre + mid * direction)), polygon) <= gap_m:
            lo = mid
        else:
            hi = mid
    return centre + lo * direction


def _ray_exit_gap(
    centre: np.ndarray, direction: np.ndarray, hazard: shapely.Polygon, zones: Sequence[shapely.Polygon]
) -> float:
    """Gap to the hazard region at which the ray leaves every given zone for good (0 if none)."""
    best = 0.0
    for zone in zones:
        far = shapely.LineString([tuple(centre), tuple(centre + 1e4 * direction)])
        inter = far.intersection(zone)
        if inter.is_empty:
            continue
        pts = np.asarray(shapely.get_coordinates(inter))
        s = (pts - centre) @ direction
        exit_point = centre + float(s.max()) * direction
        best = max(best, float(shapely.distance(shapely.Point(*exit_point), hazard)))
    return best


def stop_boundary_gap_m(cfg: CellConfig, angle_deg: float, required_separation_m: float) -> float:
    """Gap to the hazard region, along an approach angle, at which a protective stop becomes due."""
    hazard = _polygon(cfg.robot.hazard_polygon_m)
    centre = np.asarray(hazard.centroid.coords[0])
    direction = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    zones = [_polygon(z.polygon_m) for z in cfg.zones.values() if z.type == "protective"]
    zone_gap = _ray_exit_gap(centre, direction, hazard, zones)
    separation_gap = required_separation_m if cfg.separation.enabled else 0.0
    return max(zone_gap, separation_gap)


# ---------------------------------------------------------------------------------------------------
# Resolving a scenario against a cell


def _walk_track(cfg: CellConfig, walk: Walk, required_separation_m: float) -> tuple[Track, int, int]:
    """The walk's track, the time (ns) it stops walking in and the time it starts leaving."""
    if walk.speed_mps <= 0.0:
        raise ValueError(f"walk speed must be > 0 m/s, got {walk.speed_mps}")
    hazard = _polygon(cfg.robot.hazard_polygon_m)
    centre = np.asarray(hazard.centroid.coords[0])
    direction = np.array([math.cos(math.radians(walk.angle_deg)), math.sin(math.radians(walk.angle_deg))])
    edge = stop_boundary_gap_m(cfg, walk.angle_deg, required_separation_m)

    def gap(value: float, frm: GapFrom) -> float:
        return value + (edge if frm == "edge" else 0.0)

    start_gap = gap(walk.start_gap_m, walk.start_gap_from)
    start = _ray_point_at_gap(centre, direction, hazard, start_gap)
    if walk.stop_gap_m is None:
        end = centre.copy()
    else:
        stop_gap = gap(walk.stop_gap_m, walk.stop_gap_from)
        if stop_gap >= start_gap:
            raise ValueError(f"stop gap {stop_gap:.3f} m is not inside the start gap {start_gap:.3f} m")
        end = _ray_point_at_gap(centre, direction, hazard, stop_gap)
    t0 = ns(walk.appear_ms)
    walk_ns = int(round(float(np.linalg.norm(end - start)) / walk.speed_mps * 1e9))
    times = [t0, t0 + walk_ns]
    points = [start, end]
    if walk.dwell_ms > 0.0:
        times.append(times[-1] + ns(walk.dwell_ms))
        points.append(end)
    leave = times[-1]
    if walk.leave:
        times.append(times[-1] + walk_ns)
        points.append(start)
    track = Track(np.asarray(times, dtype=np.int64), np.asarray(points, dtype=np.float64))
    return track, t0 + walk_ns, leave


def build_plan(scenario: Scenario, cfg: CellConfig, required_separation_m: float) -> Plan:
    """Resolve a scenario against a cell; required_separation_m is S_p at the robot's maximum speed."""
    tracks: list[Track] = []
    arrivals: list[int] = []
    leaves: list[int] = []
    for walk in scenario.walks:
        track, arrival, leave = _walk_track(cfg, walk, required_separation_m)
        tracks.append(track)
        arrivals.append(arrival)
        leaves.append(leave)
    if len(tracks) > MAX_PERSONS:
        raise ValueError(f"{len(tracks)} people exceed MAX_PERSONS={MAX_PERSONS}")
    last_keyframe = max(int(t.t_ns[-1]) for t in tracks)
    duration = last_keyframe + ns(scenario.tail_ms)
    dwell = max(arrivals)
    leave = max(leaves)
    clear = last_keyframe if all(w.leave for w in scenario.walks) else None
    anchors: dict[str, int | None] = {"dwell": dwell, "leave": leave, "clear": clear}

    def instant(point: tuple[Anchor, float]) -> int:
        base = anchors[point[0]]
        if base is None:
            raise ValueError(f"{scenario.name}: reset anchored at {point[0]!r} but not every person leaves")
        return base + int(round(point[1] * 1e6))

    changes: list[tuple[int, int]] = []
    valid_reset: int | None = None
    for pulse in scenario.resets:
        t_on, t_off = instant(pulse.rise), instant(pulse.fall)
        if t_off <= t_on:
            raise ValueError(f"{scenario.name}: reset pulse falls before it rises")
        changes += [(t_on, 1), (t_off, 0)]
        if pulse.restarts and valid_reset is None:
            valid_reset = t_on
        duration = max(duration, t_off + ns(scenario.tail_ms))
    changes.sort()
    if cfg.controller.restart == "automatic" and clear is not None:
        auto = clear + ns(cfg.controller.auto_restart_clear_ms or 0.0)
        valid_reset = auto if valid_reset is None else min(valid_reset, auto)
    return Plan(
        name=scenario.name,
        expect=scenario.expect,
        tracks=tuple(tracks),
        duration_ns=duration,
        reset_changes=tuple(changes),
        valid_reset_ns=valid_reset,
        clear_ns=clear,
        dwell_ns=dwell,
        leave_ns=leave,
        notes={"required_separation_m": required_separation_m},
        seen_by=scenario.seen_by,
        steady=scenario.steady,
        **_stop_expectation(scenario, cfg),
    )


def _stop_expectation(scenario: Scenario, cfg: CellConfig) -> dict[str, Any]:
    """The Plan fields that say which stop the scenario expects, and by when."""
    from cobotguard.hil import faults as fl

    fields: dict[str, Any] = {"stop_reasons": scenario.stop_reasons}
    if scenario.fault is not None:
        fault = fl.get_fault(scenario.fault)
        fields.update(fault=fault.name, stop_reasons=fault.expected, fault_deadline_ns=fault.deadline_ns(cfg))
    if scenario.robot_slows_late_ms is not None:
        from cobotguard.safety.params import overspeed_grace_ns

        grace = overspeed_grace_ns(cfg, cfg.robot.max_speed_mps)  # the rig's robot runs at the maximum
        fields.update(
            overspeed_grace_ns=grace,
            # the controller acts on a report at the latest when the report would be stale
            overspeed_deadline_ns=fl.heartbeat_deadline_ns(cfg),
            robot_slow_delay_ns=grace + ns(scenario.robot_slows_late_ms),
        )
    return fields


def positions(plan: Plan, t_ns: np.ndarray) -> np.ndarray:
    """(T, P, 2) ground-truth floor positions of every person; NaN where absent."""
    t = np.asarray(t_ns, dtype=np.int64)
    if not plan.tracks:
        return np.full((t.shape[0], 0, 2), np.nan)
    return np.stack([track.position(t) for track in plan.tracks], axis=1)


def reset_level(plan: Plan, t_ns: int) -> int:
    """The reset input level at a scenario time."""
    level = 0
    for t_change, value in plan.reset_changes:
        if t_change > t_ns:
            break
        level = value
    return level


# ---------------------------------------------------------------------------------------------------
# Sensor frames


def fill_frame(
    frame: np.ndarray,
    xy_m: np.ndarray,
    sensor: Sensor,
    sensor_index: int,
    counter: int,
    t_exposure_ns: int,
    score: float = 0.9,
    inference_fraction: float = 1.0,
) -> None:
    """Fill a 1-element DETECTION_DTYPE array: persons at the finite rows of xy_m (P, 2), sensor timing."""
    present = np.flatnonzero(np.isfinite(xy_m).all(axis=1)) if len(xy_m) else np.zeros(0, dtype=np.int64)
    limit = min(MAX_PERSONS, sensor.max_persons)
    if len(present) > limit:
        raise ValueError(f"{len(present)} persons in a frame exceed the limit {limit}")
    frame[:] = np.zeros(1, dtype=DETECTION_DTYPE)
    frame["sensor_index"] = sensor_index
    frame["frame_counter"] = counter % 256
    frame["person_count"] = len(present)
    frame["health"] = 0
    frame["inference_us"] = timing.inference_ns(sensor, inference_fraction) // 1000
    frame["t_exposure_ns"] = t_exposure_ns
    frame["t_inference_done_ns"] = t_exposure_ns + timing.sent_latency_ns(sensor, inference_fraction)
    frame["t_sent_ns"] = frame["t_inference_done_ns"]
    persons = frame["persons"][0]
    for slot, p in enumerate(present):
        persons[slot]["x_m"] = xy_m[p, 0]
        persons[slot]["y_m"] = xy_m[p, 1]
        persons[slot]["z_d_m"] = sensor.position_uncertainty_m
        persons[slot]["score"] = score
        persons[slot]["box"] = (0.2, 0.45, 0.95, 0.55)


def detection_frames(
    plan: Plan,
    sensor: Sensor,
    sensor_index: int,
    t0_ns: int = 0,
    counter0: int = 0,
    score: float = 0.9,
) -> np.ndarray:
    """The frames the sensor would publish during the plan, with times offset by t0_ns.

    Exposure k starts at t0 + k * period; each frame is sent at its worst-case latency after exposure
    (the rig writes it then). Persons are the tracks present at exposure start.
    """
    period = timing.frame_period_ns(sensor.frame_rate_hz)
    n = plan.duration_ns // period + 1
    t_rel = np.arange(n, dtype=np.int64) * period
    xy = positions(plan, t_rel)  # (n, P, 2)
    frames = np.zeros(n, dtype=DETECTION_DTYPE)
    for k in range(n):
        try:
            fill_frame(
                frames[k : k + 1], xy[k], sensor, sensor_index, counter0 + k, t0_ns + int(t_rel[k]), score
            )
        except ValueError as exc:
            raise ValueError(f"{plan.name}: {exc}") from None
    return frames


def cell_frames(plan: Plan, cfg: CellConfig, t0_ns: int = 0) -> np.ndarray:
    """Frames of every sensor in the cell, merged in send order."""
    parts = [
        detection_frames(plan, sensor, index, t0_ns) for index, sensor in enumerate(cfg.sensors.values())
    ]
    merged = np.concatenate(parts) if parts else np.zeros(0, dtype=DETECTION_DTYPE)
    return merged[np.argsort(merged["t_sent_ns"], kind="stable")]
