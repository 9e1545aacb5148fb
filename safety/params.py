"""Numeric parameters of the safety step, built once from a validated `CellConfig`.

The step reads one `PARAMS_DTYPE` record: int64 nanosecond times, polygons padded to MAX_VERTICES,
the stopping table for the cell's payload, and per-sensor supervision budgets. Nothing here runs in
the loop; everything the loop needs is precomputed.
"""

from __future__ import annotations

import numpy as np

from cobotguard.safety import budget, stopping, timing
from cobotguard.safety.config import DEFAULT_SPEED_TOLERANCE_MPS, CellConfig, ns
from cobotguard.safety.geometry import edge_table, polygon_bounds
from cobotguard.safety.records import MAX_SENSORS, MAX_VERTICES, MAX_ZONES

MAX_STOP_POINTS = 32  # rows of the stopping table after payload selection
NO_CATEGORY = 3  # latched stop category when no stop is latched (categories are 0..2)

ZONE_WARNING = 0
ZONE_PROTECTIVE = 1


# Floor coordinates beyond this are treated as corrupt metadata (no cell is a kilometre wide).
MAX_COORDINATE_M = 1000.0
# Person position uncertainty beyond this is treated as corrupt metadata.
MAX_Z_D_M = 10.0
# Speed supervision: how far the reported speed may exceed the allowed speed (measurement noise) before
# the robot counts as not obeying, when the configuration does not say (robot.speed_tolerance_mps).
ROBOT_SPEED_TOLERANCE_MPS = DEFAULT_SPEED_TOLERANCE_MPS

PARAMS_DTYPE = np.dtype(
    [
        ("n_sensors", np.int32),
        ("reaction_time_ns", np.int64),  # T_r of the whole chain
        ("cycle_period_ns", np.int64),
        ("worst_step_ns", np.int64),  # declared worst-case step time (watchdog bounds in tests, sim)
        ("robot_max_speed_mps", np.float64),  # RUN speed limit; above it the robot is overspeeding
        ("robot_z_r_m", np.float64),
        ("robot_state_timeout_ns", np.int64),
        ("robot_age_by_echo", np.int32),  # 1: robot.clock = "own", a state's age runs from its echoed command
        ("fault_stop_category", np.int32),  # the category the stopping data was measured for
        ("n_stop_points", np.int32),
        ("stop_speed_mps", np.float64, (MAX_STOP_POINTS,)),  # ascending
        ("stop_time_ns", np.int64, (MAX_STOP_POINTS,)),
        ("stop_distance_m", np.float64, (MAX_STOP_POINTS,)),
        ("hazard_n", np.int32),
        ("hazard_vertices", np.float64, (MAX_VERTICES, 2)),
        ("hazard_bounds", np.float64, (8,)),  # bounding box and circle, see safety.geometry.polygon_bounds
        ("hazard_edges", np.float64, (6, MAX_VERTICES)),  # see safety.geometry.edge_table
        ("ssm_enabled", np.int32),
        ("intrusion_m", np.float64),  # C
        ("ssm_stop_category", np.int32),
        ("human_speed_near_mps", np.float64),
        ("human_speed_far_mps", np.float64),
        ("human_speed_switch_m", np.float64),
        ("n_zones", np.int32),
        ("zone_kind", np.int32, (MAX_ZONES,)),  # ZONE_WARNING or ZONE_PROTECTIVE
        ("zone_n", np.int32, (MAX_ZONES,)),
        ("zone_vertices", np.float64, (MAX_ZONES, MAX_VERTICES, 2)),
        ("zone_bounds", np.float64, (MAX_ZONES, 8)),
        ("zone_edges", np.float64, (MAX_ZONES, 6, MAX_VERTICES)),
        ("min_stop_category", np.int32),  # most restrictive category any stop source can give; 3 = none
        ("zone_speed_limit_mps", np.float64, (MAX_ZONES,)),
        ("zone_stop_category", np.int32, (MAX_ZONES,)),
        ("sensor_max_age_ns", np.int64, (MAX_SENSORS,)),  # now - t_exposure of the newest frame
        ("sensor_max_latency_ns", np.int64, (MAX_SENSORS,)),  # t_received - t_exposure of one frame
        ("sensor_tolerated_missed", np.int32, (MAX_SENSORS,)),
        ("sensor_max_persons", np.int32, (MAX_SENSORS,)),
        ("sensor_z_d_m", np.float64, (MAX_SENSORS,)),
        ("restart_automatic", np.int32),
        ("auto_restart_clear_ns", np.int64),
        ("release_hysteresis_m", np.float64),
        ("max_coordinate_m", np.float64),
        ("max_z_d_m", np.float64),
        # speed supervision: after a command lowers the allowed speed, the robot must report at most the
        # new limit (+ tolerance) in reports received from the grace on: robot_overspeed_grace_ns when the
        # configuration fixes it (> 0), else robot_obey_ns + T_s(its speed)
        ("robot_obey_ns", np.int64),
        ("robot_speed_tolerance_mps", np.float64),
        ("robot_overspeed_grace_ns", np.int64),  # 0: derived per command
        # held persons (docs/sensor.md): how long after the exposure that last saw a person it is held
        # (0: off), and a bound on S_p - Z_d at every speed the robot may report, so that a held person
        # whose largest disc reaches neither that nor a zone can be dropped
        ("person_hold_ns", np.int64),
        ("hold_hazard_reach_m", np.float64),
    ]
)


def robot_obey_ns(cfg: CellConfig) -> int:
    """`safety.timing.robot_obey_ns` for this cell: the overspeed grace without the stopping time."""
    return timing.robot_obey_ns(
        ns(cfg.controller.worst_step_ms),
        ns(cfg.robot.stop_input_reaction_ms),
        ns(cfg.link.max_delay_ms),
        cfg.link,
    )


def derived_grace_ns(cfg: CellConfig, speed_mps: float) -> int:
    """The overspeed grace derived for a robot reporting `speed_mps` when a lower limit is commanded."""
    return robot_obey_ns(cfg) + stopping.stopping_at(cfg.robot, speed_mps)[0]


def overspeed_grace_ns(cfg: CellConfig, speed_mps: float) -> int:
    """From a command lowering the limit to the first report that must keep it: fixed, or derived."""
    if cfg.robot.overspeed_grace_ms is not None:
        return ns(cfg.robot.overspeed_grace_ms)
    return derived_grace_ns(cfg, speed_mps)


def hold_hazard_reach_m(cfg: CellConfig, reaction_ns: int) -> float:
    """An upper bound of S_p - Z_d over every speed up to robot.max_speed_mps (any stopping row).

    S_p never exceeds its 2.0 m/s form (ISO 13855: 1.6 m/s only where 2.0 m/s gives more than 0.5 m), so
    the largest 2.0 m/s form over the table's rows, with v_r T_r at the maximum speed, bounds it; the
    slack covers rounding in the step's arithmetic.
    """
    t_r = reaction_ns / timing.NS_PER_S
    rows = stopping.stopping_curve_ns(cfg.robot)
    travel = max(budget.HUMAN_SPEED_NEAR_MPS * (t_r + t_s / timing.NS_PER_S) + s_s for _, t_s, s_s in rows)
    robot = cfg.robot
    rest = robot.max_speed_mps * t_r + cfg.separation.intrusion_distance_m + robot.position_uncertainty_m
    return (travel + rest) * (1.0 + 1e-9) + 1e-6


def _pad_polygon(points: list[tuple[float, float]], what: str) -> tuple[np.ndarray, int]:
    if len(points) > 1 and tuple(points[0]) == tuple(points[-1]):
        points = points[:-1]  # closed rings are stored open
    if not 3 <= len(points) <= MAX_VERTICES:
        raise ValueError(f"{what}: {len(points)} vertices, expected 3..{MAX_VERTICES}")
    out = np.zeros((MAX_VERTICES, 2))
    out[: len(points)] = np.asarray(points, dtype=np.float64)
    return out, len(points)


def build_params(cfg: CellConfig) -> np.ndarray:
    """The step's parameter record (shape (1,), PARAMS_DTYPE) for a validated configuration."""
    if not 1 <= len(cfg.sensors) <= MAX_SENSORS:
        raise ValueError(f"sensors: {len(cfg.sensors)} configured, expected 1..{MAX_SENSORS}")
    if len(cfg.zones) > MAX_ZONES:
        raise ValueError(f"zones: {len(cfg.zones)} configured, expected at most {MAX_ZONES}")
    p = np.zeros(1, dtype=PARAMS_DTYPE)
    r = p[0]
    r["n_sensors"] = len(cfg.sensors)
    r["reaction_time_ns"] = budget.reaction_time_ns(cfg)
    r["cycle_period_ns"] = ns(cfg.controller.cycle_period_ms)
    r["worst_step_ns"] = ns(cfg.controller.worst_step_ms)
    r["robot_max_speed_mps"] = cfg.robot.max_speed_mps
    r["robot_z_r_m"] = cfg.robot.position_uncertainty_m
    r["robot_state_timeout_ns"] = ns(cfg.controller.robot_state_timeout_ms)
    r["robot_age_by_echo"] = 1 if cfg.robot.clock == "own" else 0
    r["fault_stop_category"] = cfg.robot.stop_category

    rows = stopping.stopping_curve_ns(cfg.robot)
    if not 1 <= len(rows) <= MAX_STOP_POINTS:
        raise ValueError(f"robot.stopping: {len(rows)} rows for the payload, expected 1..{MAX_STOP_POINTS}")
    r["n_stop_points"] = len(rows)
    for k, (speed, time_ns, distance) in enumerate(rows):
        r["stop_speed_mps"][k] = speed
        r["stop_time_ns"][k] = time_ns
        r["stop_distance_m"][k] = distance

    hazard, hazard_n = _pad_polygon(list(cfg.robot.hazard_polygon_m), "robot.hazard_polygon_m")
    r["hazard_n"] = hazard_n
    r["hazard_vertices"] = hazard
    r["hazard_bounds"] = polygon_bounds(hazard, hazard_n)
    r["hazard_edges"] = edge_table(hazard, hazard_n)

    r["ssm_enabled"] = int(cfg.separation.enabled)
    r["intrusion_m"] = cfg.separation.intrusion_distance_m
    r["ssm_stop_category"] = cfg.separation.stop_category
    r["human_speed_near_mps"] = budget.HUMAN_SPEED_NEAR_MPS  # ISO 13855 K, while S <= 0.5 m
    r["human_speed_far_mps"] = budget.HUMAN_SPEED_MPS
    r["human_speed_switch_m"] = budget.NEAR_LIMIT_M

    r["n_zones"] = len(cfg.zones)
    for k, (name, zone) in enumerate(cfg.zones.items()):
        vertices, n = _pad_polygon(list(zone.polygon_m), f"zones.{name}.polygon_m")
        r["zone_n"][k] = n
        r["zone_vertices"][k] = vertices
        r["zone_bounds"][k] = polygon_bounds(vertices, n)
        r["zone_edges"][k] = edge_table(vertices, n)
        if zone.type == "warning":
            if zone.speed_limit_mps is None:
                raise ValueError(f"zones.{name}.speed_limit_mps: missing, required for a warning zone")
            r["zone_kind"][k] = ZONE_WARNING
            r["zone_speed_limit_mps"][k] = zone.speed_limit_mps
            r["zone_stop_category"][k] = NO_CATEGORY
        else:
            if zone.stop_category is None:
                raise ValueError(f"zones.{name}.stop_category: missing, required for a protective zone")
            r["zone_kind"][k] = ZONE_PROTECTIVE
            r["zone_stop_category"][k] = zone.stop_category

    for k, sensor in enumerate(cfg.sensors.values()):
        r["sensor_max_age_ns"][k] = timing.sensor_max_age_ns(sensor)
        r["sensor_max_latency_ns"][k] = timing.sensor_latency_ns(sensor)
        r["sensor_tolerated_missed"][k] = sensor.tolerated_missed_frames
        r["sensor_max_persons"][k] = sensor.max_persons
        r["sensor_z_d_m"][k] = sensor.position_uncertainty_m

    categories = [cfg.separation.stop_category] if cfg.separation.enabled else []
    categories += [
        z.stop_category for z in cfg.zones.values() if z.type == "protective" and z.stop_category is not None
    ]
    r["min_stop_category"] = min(categories, default=NO_CATEGORY)

    r["restart_automatic"] = int(cfg.controller.restart == "automatic")
    auto_ms = cfg.controller.auto_restart_clear_ms
    if r["restart_automatic"] and auto_ms is None:
        raise ValueError("controller.auto_restart_clear_ms: missing, required when restart = 'automatic'")
    r["auto_restart_clear_ns"] = ns(auto_ms) if auto_ms is not None else 0
    r["release_hysteresis_m"] = cfg.controller.release_hysteresis_m
    r["max_coordinate_m"] = MAX_COORDINATE_M
    r["max_z_d_m"] = MAX_Z_D_M
    r["robot_obey_ns"] = robot_obey_ns(cfg)
    r["robot_speed_tolerance_mps"] = cfg.robot.speed_tolerance_mps
    grace_ms = cfg.robot.overspeed_grace_ms
    r["robot_overspeed_grace_ns"] = ns(grace_ms) if grace_ms is not None else 0
    r["person_hold_ns"] = ns(cfg.controller.person_hold_ms) if cfg.controller.person_hold_ms > 0 else 0
    r["hold_hazard_reach_m"] = hold_hazard_reach_m(cfg, int(r["reaction_time_ns"]))
    return p
