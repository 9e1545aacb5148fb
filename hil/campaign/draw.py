"""Approaches as pure functions of (seed, index): uniform draws, then a compiled decoding into a record.

`draws(seed, index)` takes numpy's SeedSequence([seed, index]) (so chunks may run in any order on any
engine) and returns N_DRAWS uniforms and a 64-bit noise key; `decode` turns them, with the cell's
`facts`, into one APPROACH_DTYPE record: the walking pattern, the robot's programmed speed, sensor timing
within the declared worst case, frame misses within the tolerance, link and step times, and a fault.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numba import njit

from cobotguard.safety.records import MAX_SENSORS

N_DRAWS = 32
MAX_FAULTS = 16
MAX_COVER_VERTICES = 512  # of a sensor's covered floor area


class Pattern(IntEnum):
    """How the person moves along a straight line toward a point inside the hazard region."""

    WALK = 0  # walks in at a constant speed and stays
    RUN = 1  # the same near the ISO 13855 speed
    STOP_AND_GO = 2  # walks, stands still for a while, walks on
    STOP_AND_LEAVE = 3  # walks in part of the way, stands, walks back out and stays outside
    EDGE = 4  # walks up to just outside the stop boundary and stands there


# cumulative weights of the patterns (WALK .. EDGE)
PATTERN_CUMULATIVE = np.array([0.30, 0.50, 0.65, 0.80, 1.00])

APPROACH_DTYPE = np.dtype(
    [
        ("pattern", np.int32),
        ("angle_deg", np.float64),  # where the person comes from, seen from the hazard centre
        ("aim_x_m", np.float64),  # the point inside the hazard region the person walks toward
        ("aim_y_m", np.float64),
        ("speed_mps", np.float64),  # walking speed
        ("start_margin_m", np.float64),  # start this far outside the stop boundary (+ hysteresis)
        ("pause_fraction", np.float64),  # STOP_AND_GO / STOP_AND_LEAVE: where along the way it stands
        ("pause_ns", np.int64),
        ("edge_margin_m", np.float64),  # EDGE: stands this far outside the stop boundary
        ("error_fraction", np.float64),  # measured position this fraction of Z_d farther away
        ("robot_speed_mps", np.float64),  # programmed speed (the robot keeps lower SLOW limits)
        ("phase_ns", np.int64, (MAX_SENSORS,)),
        ("latency_fraction", np.float64),  # of the declared worst latency, jittered down per frame
        ("miss_probability", np.float64),  # per frame, never more in a row than tolerated
        ("link_delay_fraction", np.float64),
        ("step_fraction", np.float64),  # of the worst step; per cycle up to it when step_jitter
        ("step_jitter", np.int32),
        ("fault", np.int32),  # index into the campaign's fault table, -1: none
        ("fault_at_ns", np.int64),  # relative to the run start
        ("counter_start", np.int32),
        ("noise_key", np.uint64),  # per-frame latency jitter and misses
    ]
)

# What decode needs to know about the cell (campaign.runner.cell_facts fills it).
FACTS_DTYPE = np.dtype(
    [
        ("n_sensors", np.int32),
        ("frame_period_ns", np.int64),
        ("robot_max_speed_mps", np.float64),
        ("iso_fast_below_mps", np.float64),  # robot speeds up to this give S_p <= 0.5 m: 2.0 m/s applies
        ("hazard_centre", np.float64, (2,)),
        ("n_faults", np.int32),
        ("fault_probability", np.float64),
        ("walk_horizon_ns", np.int64),  # the longest time a fault may wait for
        # the simulation (campaign.kernel)
        ("link_ns", np.int64),  # command link, worst case
        ("robot_reaction_ns", np.int64),  # stop input -> braking
        ("arm_after_ns", np.int64),  # the reset pulse comes this long after T0 (frames flowing)
        ("free_hazard_m", np.float64),  # beyond this true gap to the hazard no S_p stop is due at any speed
        ("free_zone_m", np.float64),  # ... and beyond this true gap to every protective zone no zone stop
        ("tail_ns", np.int64),  # simulated on after the person's last move (restarts show here)
        ("fault_kind", np.int32, (MAX_FAULTS,)),  # campaign.kernel.FAULT_* codes
        ("fault_variant", np.int32, (MAX_FAULTS,)),
        ("fault_watchdog_ns", np.int64, (MAX_FAULTS,)),  # onset -> fault stop, promised (hil.sim)
        # where each sensor sees the smallest declared person (safety.config_rules.covered_area)
        ("cover_n", np.int32, (MAX_SENSORS,)),
        ("cover_vertices", np.float64, (MAX_SENSORS, MAX_COVER_VERTICES, 2)),
    ]
)


def draws(seed: int, index: int) -> tuple[np.ndarray, np.uint64]:
    """The uniforms in [0, 1) and the noise key of approach `index` of campaign `seed`."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))
    return rng.random(N_DRAWS), np.uint64(rng.integers(0, 2**63, dtype=np.int64))


@njit(cache=False, inline="always")
def _between(u: float, low: float, high: float) -> float:
    return low + (high - low) * u


@njit(cache=False, inline="always")
def _or_worst(u_choice: float, u: float, low: float, high: float) -> float:
    """A quarter of the time exactly `high` (the declared worst case), else uniform in [low, high]."""
    return high if u_choice < 0.25 else _between(u, low, high)


@njit(cache=False)
def decode(facts, hazard_vertices, hazard_n: int, u, noise_key, approaches, j: int) -> None:
    """Fill approaches[j] (APPROACH_DTYPE) from the uniforms `u` for the cell `facts`."""
    f = facts[0]
    out = approaches[j]
    pattern = 0
    while pattern < 4 and u[0] >= PATTERN_CUMULATIVE[pattern]:
        pattern += 1
    out.pattern = pattern
    out.angle_deg = 360.0 * u[1]
    # aim: a point between the hazard centre and a point on one of its edges (inside a convex region)
    k = min(int(u[2] * hazard_n), hazard_n - 1)
    k2 = (k + 1) % hazard_n
    b = u[3]
    a = 0.95 * u[4]
    ex = b * hazard_vertices[k, 0] + (1.0 - b) * hazard_vertices[k2, 0]
    ey = b * hazard_vertices[k, 1] + (1.0 - b) * hazard_vertices[k2, 1]
    cx = f.hazard_centre[0]
    cy = f.hazard_centre[1]
    out.aim_x_m = cx + a * (ex - cx)
    out.aim_y_m = cy + a * (ey - cy)
    robot = f.robot_max_speed_mps if u[5] < 0.3 else _between(u[6], 0.05, 1.0) * f.robot_max_speed_mps
    out.robot_speed_mps = robot
    human = 2.0 if robot <= f.iso_fast_below_mps else 1.6  # ISO 13855, as the budget assumes
    if pattern == 1:
        out.speed_mps = _between(u[7], 0.8, 1.0) * human
    else:
        out.speed_mps = _between(u[7], 0.2, min(1.6, human))
    out.start_margin_m = _between(u[8], 0.02, 0.5)
    out.pause_fraction = _between(u[9], 0.1, 1.0)
    out.pause_ns = np.int64(_between(u[10], 0.05, 1.5) * 1e9)
    out.edge_margin_m = _between(u[11], 0.005, 0.2)
    out.error_fraction = _or_worst(u[12], u[13], 0.0, 1.0)
    for i in range(f.n_sensors):
        out.phase_ns[i] = min(np.int64(u[14 + i] * f.frame_period_ns), f.frame_period_ns - 1)
    out.latency_fraction = _or_worst(u[18], u[19], 0.0, 1.0)
    out.miss_probability = 0.0 if u[20] < 0.5 else _between(u[21], 0.0, 0.6)
    out.link_delay_fraction = _or_worst(u[22], u[23], 0.0, 1.0)
    out.step_fraction = _or_worst(u[24], u[25], 0.0, 1.0)
    out.step_jitter = 1 if u[26] < 0.5 else 0
    if f.n_faults > 0 and u[27] < f.fault_probability:
        out.fault = min(int(u[28] * f.n_faults), f.n_faults - 1)
        out.fault_at_ns = np.int64(u[29] * f.walk_horizon_ns)
    else:
        out.fault = -1
        out.fault_at_ns = 0
    out.counter_start = min(int(u[30] * 256), 255)
    out.noise_key = noise_key


def approach(seed: int, index: int, facts: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Approach `index` of campaign `seed` for the cell (`facts`, `params`): a (1,) APPROACH_DTYPE array."""
    out = np.zeros(1, dtype=APPROACH_DTYPE)
    u, key = draws(seed, index)
    p = params[0]
    decode(facts, p["hazard_vertices"], int(p["hazard_n"]), u, key, out, 0)
    return out
