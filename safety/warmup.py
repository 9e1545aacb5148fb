"""Inputs that take the safety step through every branch before arming, and the record fillers they use.

`safety.step.warm_up` runs the step over `warm_up_inputs(params)` so that nothing compiles after arming.
`write_frame` and `write_robot` fill one detection / robot state record; the simulator and the tests
build their inputs with them too. Times are int64 ns from `T0_NS` on; nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cobotguard.safety.reasons import HealthFlag
from cobotguard.safety.records import FRAME_COUNTER_MODULO, MAX_SENSORS, ROBOT_STATE_DTYPE, empty_detections

T0_NS = 1_000_000_000  # warm-up (and simulated) time starts here (0 means "never received" in the records)


def write_frame(
    detections: np.ndarray,
    sensor_index: int,
    counter: int,
    t_exposure_ns: int,
    t_received_ns: int,
    persons: Sequence[tuple[float, float, float]] = (),
    *,
    health: int = 0,
    person_count: int | None = None,
    score: float = 0.9,
) -> None:
    """Fill detections[sensor_index] with one frame; persons are (x_m, y_m, z_d_m) floor points."""
    d = detections[sensor_index]
    d["sensor_index"] = sensor_index
    d["frame_counter"] = counter
    d["person_count"] = len(persons) if person_count is None else person_count
    d["health"] = health
    d["inference_us"] = 3100
    d["t_exposure_ns"] = t_exposure_ns
    d["t_inference_done_ns"] = t_exposure_ns + (t_received_ns - t_exposure_ns) // 2
    d["t_sent_ns"] = t_received_ns
    d["t_received_ns"] = t_received_ns
    d["persons"] = np.zeros_like(d["persons"])
    for j, (x, y, z_d) in enumerate(persons):
        d["persons"][j]["x_m"] = x
        d["persons"][j]["y_m"] = y
        d["persons"][j]["z_d_m"] = z_d
        d["persons"][j]["score"] = score


def write_robot(
    robot: np.ndarray, speed_mps: float, t_received_ns: int, *, mode: int = 0, at_rest: int = 0
) -> None:
    """Fill robot[0] with a state report received at t_received_ns."""
    r = robot[0]
    r["speed_mps"] = speed_mps
    r["mode"] = mode
    r["at_rest"] = at_rest
    r["t_sent_ns"] = t_received_ns
    r["t_received_ns"] = t_received_ns


def warm_up_inputs(params: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, int, int, int]]:
    """Inputs that take the step through every state and check, as (detections, robot, reset, overrun, now).

    The buffers are reused between items; consume each item (call the step) before the next.
    """
    p = params[0]
    n = int(p["n_sensors"])
    period = int(p["cycle_period_ns"])
    detections = empty_detections(MAX_SENSORS)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    now = T0_NS
    counter = 0
    moving = 0.5 * float(p["robot_max_speed_mps"])  # within every limit but a stop's, up to the last item
    stop_times = p["stop_time_ns"][: p["n_stop_points"]]
    # past any speed-supervision deadline (derived, or the configured fixed grace)
    grace = max(int(p["robot_obey_ns"]) + int(stop_times.max()), int(p["robot_overspeed_grace_ns"])) + period
    hazard = p["hazard_vertices"][: p["hazard_n"]]
    far = (float(hazard[:, 0].max()) + 50.0, 0.0, 0.1)
    near = (float(hazard[:, 0].max()) + 0.01, 0.0, 0.1)
    zone_points = []
    for k in range(int(p["n_zones"])):
        vertices = p["zone_vertices"][k][: p["zone_n"][k]]
        inner = vertices[0] + 0.01 * (vertices.mean(axis=0) - vertices[0])  # just inside a corner
        zone_points.append((float(inner[0]), float(inner[1]), 0.1))
    placements: list[list[tuple[float, float, float]]] = [
        [far],
        [near],
        *[[z] for z in zone_points],
        [far],
        [],
    ]

    def fresh(persons: Sequence[tuple[float, float, float]], speed: float = moving, **kw: int) -> None:
        nonlocal counter
        counter = (counter + 1) % FRAME_COUNTER_MODULO
        for i in range(n):
            write_frame(detections, i, counter, now - 2 * period, now - period, persons, **kw)
        write_robot(robot, speed, now - period)

    yield detections, robot, 0, 0, now  # never received anything
    for persons in placements:
        for reset in (0, 1, 0, 1, 0):
            now += period
            fresh(persons)
            yield detections, robot, reset, 0, now
    hold = int(p["person_hold_ns"])
    if hold > 0:
        # held persons: seen, missed (held), seen again (accounted for), missed (held) until its hold ends
        # before the next frame (skipped), dropped by that frame; a far one dropped at once; then a crowd
        # that the next frame's other crowd leaves more held than max_persons allows (a fault)
        for persons in ([near], [], [near], []):
            now += period
            fresh(persons)
            yield detections, robot, 0, 0, now
        last_seen = now - 3 * period  # the exposure of the frame before (fresh() exposes 2 periods back)
        now = max(now + period, last_seen + hold + 1)
        write_robot(robot, moving, now - period)
        yield detections, robot, 0, 0, now
        crowd = int(p["sensor_max_persons"][:n].min())
        for persons in ([far], [], [near] * crowd, [far] * crowd, [far]):
            now += period
            fresh(persons)
            yield detections, robot, 0, 0, now
    for kw in ({"health": int(HealthFlag.FROZEN)}, {"person_count": 999}, {}):
        now += period
        fresh([far], **kw)
        yield detections, robot, 0, 0, now
    now += period
    yield detections, robot, 0, 1, now  # overrun
    now += period * 1000
    yield detections, robot, 0, 0, now  # everything stale
    for reset in (0, 1, 0):
        now += period
        fresh([far], speed=0.0)  # came to rest in time for the fault stop: no overspeed
        yield detections, robot, reset, 0, now
    # speed supervision: stopped while speeding up (a later, faster report moves the deadline), then
    # still moving after the deadline
    now += period
    fresh([near], speed=0.8 * moving)
    yield detections, robot, 0, 0, now
    for speed in (moving, moving):
        now += period
        fresh([near], speed=speed)
        yield detections, robot, 0, 0, now
    now += grace
    fresh([near])
    yield detections, robot, 0, 0, now
