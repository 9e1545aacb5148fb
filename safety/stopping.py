"""The robot's stopping data: the curve that applies to the cell's payload, and T_s, S_s at a speed.

Configuration-time arithmetic on the robot table (never in the loop; the step has its own copy in the
parameters, `safety.params`). It sits below the configuration rules, the budget and the parameters,
which all use it.
"""

from __future__ import annotations

from cobotguard.safety.config import Robot, StoppingPoint
from cobotguard.safety.timing import ns


def stopping_rows(robot: Robot) -> list[StoppingPoint]:
    """The stopping curve that applies: the lightest tabulated payload >= the cell's, sorted by speed."""
    heavier = [row.payload_kg for row in robot.stopping if row.payload_kg >= robot.payload_kg]
    if not heavier:
        raise ValueError(f"payload {robot.payload_kg} kg is beyond the stopping table")
    payload = min(heavier)
    return sorted((r for r in robot.stopping if r.payload_kg == payload), key=lambda r: r.speed_mps)


def stopping_curve_ns(robot: Robot) -> list[tuple[float, int, float]]:
    """`stopping_rows` as (speed m/s, T_s ns, S_s m), ascending in speed: the step's stopping table."""
    return [(row.speed_mps, ns(row.stop_time_ms), row.stop_distance_m) for row in stopping_rows(robot)]


def stopping_at(robot: Robot, speed_mps: float) -> tuple[int, float]:
    """(T_s in ns, S_s in m) at `speed_mps`: the row at the next tabulated speed at or above it.

    Conservative for any monotone table: values are never interpolated downwards. Speeds beyond the
    fastest row raise ValueError (validation keeps robot.max_speed_mps within the table).
    """
    if not speed_mps >= 0.0:
        raise ValueError(f"speed must be >= 0, got {speed_mps}")
    for row in stopping_rows(robot):
        if row.speed_mps >= speed_mps:
            return ns(row.stop_time_ms), row.stop_distance_m
    raise ValueError(f"speed {speed_mps} m/s is beyond the stopping table")
