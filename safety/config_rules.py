"""Validation rules that span fields of the cell configuration (the schema checks each field alone).

Each rule returns problem lines "key.path: what was wrong; expected ...". `cell_problems` runs them all on
a schema-valid configuration; `partial_problems` runs those whose sections did validate when others did
not, so one pass reports every problem. Geometry uses shapely (configuration time only, never the loop).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import shapely
from pydantic import BaseModel, TypeAdapter, ValidationError

from cobotguard.safety.config import (
    CellConfig,
    Controller,
    Link,
    Robot,
    Sensor,
    Separation,
    StoppingPoint,
    Zone,
    key_path,
    ns,
    unit_of,
)
from cobotguard.safety.link.codec import (
    COMMAND_FRAME_BYTES,
    ROBOT_STATE_FRAME_BYTES,
    SYNC_REPLY_FRAME_BYTES,
    SYNC_REQUEST_FRAME_BYTES,
    detections_frame_bytes,
)
from cobotguard.safety.records import MAX_PERSONS, MAX_SENSORS, MAX_VERTICES, MAX_ZONES
from cobotguard.safety.timing import (
    NS_PER_MS,
    UART_BITS_PER_BYTE,
    command_frame_ns,
    command_gap_ns,
    frame_period_ns,
    line_time_ns,
    min_baud,
    robot_echo_max_age_ns,
    robot_echo_ring_entries,
    robot_echo_stale_ns,
    robot_obey_ns,
    robot_state_gap_ns,
    sensor_clock_sync_timeout_ns,
    sensor_max_age_ns,
)

AREA_TOLERANCE_M2 = 1e-4  # a zone may stick out of the covered area by at most this much (1 cm^2)
# The smallest frames the link protocol sends (safety.link.codec); the link's declared sizes must hold them.
PROTOCOL_FRAME_BYTES = {
    "command_frame_bytes": COMMAND_FRAME_BYTES,
    "state_frame_bytes": ROBOT_STATE_FRAME_BYTES,
}


def cell_problems(cfg: CellConfig) -> list[str]:
    """Every cross-field problem of a schema-valid configuration."""
    return _problems(
        cfg.robot, dict(cfg.sensors), dict(cfg.zones), cfg.separation, cfg.controller, cfg.link,
        len(cfg.sensors), len(cfg.zones),
    )  # fmt: skip


def partial_problems(raw: Mapping[str, Any]) -> list[str]:
    """Cross-field problems among the sections that validate on their own (the rest failed the schema)."""
    if not isinstance(raw, Mapping):
        return []
    sections = {name: _try(model, raw.get(name)) for name, model in _SECTION_MODELS.items()}
    out: list[str] = []
    raw_robot = _table(raw.get("robot"))
    if sections["robot"] is None and raw_robot:  # check the parts of a broken robot table that are fine
        hazard = _try_field(Robot, "hazard_polygon_m", raw_robot)
        if hazard is not None:
            out += polygon_problems("robot.hazard_polygon_m", hazard)
        stopping = _try_field(Robot, "stopping", raw_robot)
        if stopping is not None:
            out += stopping_problems(
                stopping,
                _try_field(Robot, "payload_kg", raw_robot),
                _try_field(Robot, "max_speed_mps", raw_robot),
            )
    raw_sensors = _table(raw.get("sensors"))
    raw_zones = _table(raw.get("zones"))
    sensors = {k: s for k, v in raw_sensors.items() if (s := _try(Sensor, v)) is not None}
    zones = {k: z for k, v in raw_zones.items() if (z := _try(Zone, v)) is not None}
    out += _problems(
        sections["robot"], sensors, zones, sections["separation"], sections["controller"], sections["link"],
        len(raw_sensors), len(raw_zones), complete=False,
    )  # fmt: skip
    if len(sensors) == len(raw_sensors):  # coverage is judged only with every sensor present
        out += coverage_problems(sensors, zones)
    return out


_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "robot": Robot,
    "separation": Separation,
    "controller": Controller,
    "link": Link,
}


def _table(value: Any) -> Mapping[str, Any]:
    """A TOML table, or an empty one when the value is something else (reported by the schema)."""
    return value if isinstance(value, Mapping) else {}


def _try_field(model: type[BaseModel], name: str, raw: Mapping[str, Any]) -> Any:
    """One field of a section validated on its own, or None when missing or invalid."""
    if name not in raw:
        return None
    field = model.model_fields[name]
    try:
        return TypeAdapter(field.rebuild_annotation()).validate_python(raw[name])
    except ValidationError:
        return None


def _try(model: type[BaseModel], raw: Any) -> Any:
    """The validated section, or None when it has schema errors of its own (reported elsewhere)."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _problems(
    robot: Robot | None,
    sensors: dict[str, Sensor],
    zones: dict[str, Zone],
    separation: Separation | None,
    controller: Controller | None,
    link: Link | None,
    n_sensors: int,
    n_zones: int,
    complete: bool = True,
) -> list[str]:
    """All rules over whatever sections are available."""
    out: list[str] = []
    if n_sensors > MAX_SENSORS:
        out.append(f"sensors: {n_sensors} sensors; expected at most {MAX_SENSORS} (MAX_SENSORS)")
    if n_sensors == 0 and complete:
        out.append("sensors: no sensor declared; expected at least one [sensors.NAME] table")
    if n_zones > MAX_ZONES:
        out.append(f"zones: {n_zones} zones; expected at most {MAX_ZONES} (MAX_ZONES)")
    if robot is not None:
        out += robot_problems(robot)
    for name, sensor in sensors.items():
        out += sensor_problems(name, sensor)
        out += sensor_link_problems(name, sensor)
        out += sensor_clock_problems(name, sensor)
    for name, zone in zones.items():
        out += zone_problems(name, zone, robot)
    if separation is not None:
        out += separation_problems(separation, robot, zones, complete)
    if controller is not None:
        out += controller_problems(controller)
        out += hold_problems(controller, sensors)
    if link is not None:
        out += link_problems(link, controller, sensors)
    if robot is not None and controller is not None and link is not None:
        out += robot_timing_problems(robot, controller, link)
        out += robot_clock_problems(robot, controller, link, sensors)
    if complete:
        out += coverage_problems(sensors, zones)
    return out


# -- polygons ------------------------------------------------------------------------------------------


def polygon_problems(path: str, points: Sequence[tuple[float, float]]) -> list[str]:
    """A floor polygon must have 3..MAX_VERTICES distinct vertices, no self-intersection, and an area."""
    n = len(points)
    if n < 3:
        return [f"{path}: {n} vertices; expected at least 3 [x, y] vertices in metres (a polygon)"]
    out: list[str] = []
    if n > MAX_VERTICES:
        out.append(f"{path}: {n} vertices; expected at most {MAX_VERTICES} (MAX_VERTICES)")
    for i in range(n):
        if tuple(points[i]) == tuple(points[i - 1]):
            which = "the last vertex" if i == 0 else f"vertex {i - 1}"
            out.append(
                f"{path}[{i % n}]: repeats {which} {list(points[i])}; expected distinct consecutive "
                "vertices (the polygon closes itself, do not repeat the first vertex)"
            )
    if out:
        return out
    polygon = shapely.Polygon(points)
    if not polygon.is_valid:
        reason = shapely.is_valid_reason(polygon)
        return [f"{path}: invalid polygon ({reason}); expected a simple polygon whose edges do not cross"]
    if polygon.area <= 1e-9:
        return [f"{path}: the polygon has no area; expected at least 3 vertices not on one line"]
    return []


# -- robot ---------------------------------------------------------------------------------------------


def robot_problems(robot: Robot) -> list[str]:
    """Hazard polygon, stopping table monotonicity, payload and speed within the table, speed tolerance."""
    out = polygon_problems("robot.hazard_polygon_m", robot.hazard_polygon_m) + stopping_problems(
        robot.stopping, robot.payload_kg, robot.max_speed_mps
    )
    if robot.speed_tolerance_mps >= robot.max_speed_mps:
        out.append(
            f"robot.speed_tolerance_mps: {robot.speed_tolerance_mps} m/s is not below robot.max_speed_mps "
            f"({robot.max_speed_mps} m/s); expected less (a robot that keeps moving after a stop at up to "
            "this speed passes the speed supervision)"
        )
    return out


def stopping_problems(
    stopping: Sequence[StoppingPoint], payload_kg: float | None, max_speed_mps: float | None
) -> list[str]:
    """Stopping rows grow with speed and payload; the cell's payload and maximum speed are tabulated."""
    if not stopping:
        return ["robot.stopping: empty; expected the robot maker's stopping data, one row per speed"]
    out: list[str] = []
    rows = list(enumerate(stopping))
    payloads = sorted({row.payload_kg for _, row in rows})
    by_payload = {
        p: sorted((r for r in rows if r[1].payload_kg == p), key=lambda r: r[1].speed_mps) for p in payloads
    }
    for payload, group in by_payload.items():
        for (i_prev, prev), (i_row, row) in zip(group, group[1:], strict=False):
            if row.speed_mps == prev.speed_mps:
                out.append(
                    f"robot.stopping[{i_row}].speed_mps: {row.speed_mps} m/s at {payload} kg repeats row "
                    f"{i_prev}; expected one row per speed and payload"
                )
                continue
            for key, unit in (("stop_time_ms", "ms"), ("stop_distance_m", "m")):
                if getattr(row, key) < getattr(prev, key):
                    out.append(
                        f"robot.stopping[{i_row}].{key}: {getattr(row, key)} {unit} at {row.speed_mps} m/s "
                        f"is less than {getattr(prev, key)} {unit} at {prev.speed_mps} m/s (row {i_prev}, "
                        f"{payload} kg); expected stopping to grow with speed (non-monotone stopping table)"
                    )
    for lighter, heavier in zip(payloads, payloads[1:], strict=False):
        light_rows = {r.speed_mps: (i, r) for i, r in by_payload[lighter]}
        for i_row, row in by_payload[heavier]:
            if row.speed_mps not in light_rows:
                continue
            i_light, light = light_rows[row.speed_mps]
            for key in ("stop_time_ms", "stop_distance_m"):
                if getattr(row, key) < getattr(light, key):
                    out.append(
                        f"robot.stopping[{i_row}].{key}: {getattr(row, key)} at {heavier} kg is less than "
                        f"{getattr(light, key)} at {lighter} kg (row {i_light}) for {row.speed_mps} m/s; "
                        "expected stopping to grow with payload (non-monotone stopping table)"
                    )
    if payload_kg is None:
        return out
    if payload_kg > payloads[-1]:
        out.append(
            f"robot.payload_kg: {payload_kg} kg is beyond the stopping table (heaviest "
            f"{payloads[-1]} kg); expected stopping data for this payload or a heavier one"
        )
        return out
    curve_payload = min(p for p in payloads if p >= payload_kg)
    fastest = by_payload[curve_payload][-1][1].speed_mps
    if max_speed_mps is not None and max_speed_mps > fastest:
        out.append(
            f"robot.max_speed_mps: {max_speed_mps} m/s is beyond the stopping table (fastest row "
            f"{fastest} m/s for {curve_payload} kg); expected at most {fastest} m/s, or stopping data "
            "at the maximum speed"
        )
    return out


# -- sensors -------------------------------------------------------------------------------------------


def sensor_problems(name: str, sensor: Sensor) -> list[str]:
    """Geometry source, person count, inference against frame period, and that the camera model builds."""
    path = key_path(("sensors", name))
    out: list[str] = []
    if sensor.max_persons > MAX_PERSONS:
        out.append(f"{path}.max_persons: {sensor.max_persons}; expected at most {MAX_PERSONS} (MAX_PERSONS)")
    period_ns = frame_period_ns(sensor.frame_rate_hz)
    if ns(sensor.inference_worst_ms) > period_ns:
        out.append(
            f"{path}.inference_worst_ms: {sensor.inference_worst_ms} ms is longer than a frame "
            f"({period_ns / NS_PER_MS:.3f} ms at {sensor.frame_rate_hz} Hz); expected at most one frame "
            "period (a slower network hands back stale results), or a lower frame_rate_hz"
        )
    has_pose = sensor.intrinsics is not None and sensor.mounting is not None
    n_points = len(sensor.calibration_points or [])
    if sensor.mounting is not None and sensor.intrinsics is None:
        out.append(f"{path}.intrinsics: missing while mounting is given; expected fx_px, fy_px, cx_px, cy_px")
    elif sensor.mounting is not None and sensor.calibration_points is not None:
        out.append(
            f"{path}.calibration_points: given together with mounting; expected one geometry source, "
            "either intrinsics + mounting or calibration_points"
        )
    elif not has_pose and n_points < 4:
        out.append(
            f"{path}: no floor geometry ({n_points} calibration points, no mounting); expected intrinsics + "
            "mounting, or at least 4 calibration_points"
        )
    if out:
        return out
    from cobotguard.safety.camera import CameraModelError

    try:
        covered = covered_area(sensor)
    except CameraModelError as exc:
        return [
            f"{path}: camera geometry: {exc}; expected intrinsics + mounting, or calibration_points, of a "
            "camera above the floor that looks at it"
        ]
    if covered.is_empty:
        out.append(
            f"{path}: covers no floor: nowhere is a person of {sensor.assumed_person_height_m} m both fully "
            f"in the image and at least {sensor.min_person_height_px} px tall; expected a mounting that "
            "sees the cell"
        )
    return out


def sensor_link_problems(name: str, sensor: Sensor) -> list[str]:
    """Over a serial line, the declared transport latency must cover the largest frame's line time."""
    if sensor.serial_baud is None or sensor.max_persons > MAX_PERSONS:  # the second is reported elsewhere
        return []
    frame_bytes = detections_frame_bytes(sensor.max_persons)
    wire_ns = line_time_ns(frame_bytes, sensor.serial_baud)
    if ns(sensor.transport_latency_ms) >= wire_ns:
        return []
    path = key_path(("sensors", name))
    wire_ms = _ms_up(wire_ns)
    return [
        f"{path}.transport_latency_ms: {sensor.transport_latency_ms} ms is shorter than the largest "
        f"DETECTIONS frame on the serial line ({frame_bytes} B for max_persons = {sensor.max_persons}: "
        f"{frame_bytes} x {UART_BITS_PER_BYTE} bit / {sensor.serial_baud} baud = {wire_ms:.3f} ms); "
        f"expected at least {wire_ms:.3f} ms plus the adapter's and the receiver's latency (else full "
        "frames arrive late), or a higher serial_baud, or fewer max_persons"
    ]


def clock_bound_floor_ns(sensor: Sensor) -> int:
    """The smallest error bound a sensor on its own clock can keep just before a fresh estimate: half the
    sync round trip's line time (0 off a serial line), plus the declared drift over a sync period and a
    timeout (the oldest a kept estimate gets while the next reply may still come)."""
    from cobotguard.safety.link.clock_sync import PPB_PER_PPM, drift_ns

    wire_ns = 0
    if sensor.serial_baud is not None:
        wire_ns = line_time_ns(SYNC_REQUEST_FRAME_BYTES + SYNC_REPLY_FRAME_BYTES, sensor.serial_baud)
    age_ns = ns(sensor.clock_sync_period_ms or 0.0) + sensor_clock_sync_timeout_ns(sensor)
    drift_ppb = int(-(-(sensor.clock_max_drift_ppm or 0.0) * PPB_PER_PPM // 1))
    return -(-wire_ns // 2) + int(drift_ns(drift_ppb, age_ns))


def clock_age_error_floor_ns(sensor: Sensor) -> int:
    """The least a converted age may be overstated by (twice the bound floor, with the drift margin): the
    error limit must exceed it, or the cell stops for SENSOR_CLOCK_BOUND while the sync works."""
    from cobotguard.safety.link.clock_sync import PPB_PER_PPM, drift_ns

    floor = clock_bound_floor_ns(sensor)
    drift_ppb = int(-(-(sensor.clock_max_drift_ppm or 0.0) * PPB_PER_PPM // 1))
    return 2 * floor + 2 * int(drift_ns(drift_ppb, floor))


def sensor_clock_problems(name: str, sensor: Sensor) -> list[str]:
    """A sensor on its own clock: the error limit must leave room above the bound the sync can keep, and
    the sync timeout must cover a round trip's line time."""
    path = key_path(("sensors", name))
    keys = ("clock_sync_period_ms", "clock_sync_timeout_ms", "clock_error_limit_ms", "clock_max_drift_ppm")
    if sensor.clock != "own":
        return [
            f'{path}.{key}: only with clock = "own" (a sensor on the controller\'s clock is not '
            f'synchronised); expected clock = "own" in {path}, or no {key}'
            for key in keys
            if getattr(sensor, key) is not None
        ]
    missing = [key for key in keys if key != "clock_sync_timeout_ms" and getattr(sensor, key) is None]
    if missing:
        return [
            f'{path}.{key}: missing; expected it with clock = "own" ({unit_of(key) or "parts per million"})'
            for key in missing
        ]
    out = []
    floor_ns = clock_age_error_floor_ns(sensor)
    if ns(sensor.clock_error_limit_ms or 0.0) <= floor_ns:
        out.append(
            f"{path}.clock_error_limit_ms: {sensor.clock_error_limit_ms} ms is not above what the clock "
            f"sync can keep ({_ms_up(floor_ns):.3f} ms: twice the bound of half the sync round trip's line "
            f"time plus {sensor.clock_max_drift_ppm} ppm over a sync period and a timeout); expected "
            "more, a shorter clock_sync_period_ms, or a faster serial_baud"
        )
    if sensor.serial_baud is not None:
        trip_ns = line_time_ns(SYNC_REQUEST_FRAME_BYTES + SYNC_REPLY_FRAME_BYTES, sensor.serial_baud)
        if sensor_clock_sync_timeout_ns(sensor) <= trip_ns:
            out.append(
                f"{path}.clock_sync_timeout_ms: shorter than a sync round trip on the line "
                f"({_ms_up(trip_ns):.3f} ms at {sensor.serial_baud} baud); expected more"
            )
    return out


@functools.lru_cache(maxsize=64)
def _covered_area_cached(sensor_json: str) -> shapely.Polygon:
    from cobotguard.safety.camera import covered_polygon

    polygon = covered_polygon(Sensor.model_validate_json(sensor_json))
    if len(polygon) < 3:
        return shapely.Polygon()
    area = shapely.Polygon(polygon)
    return area if area.is_valid else shapely.make_valid(area)


def covered_area(sensor: Sensor) -> Any:
    """The floor area (shapely geometry) where this sensor sees the smallest declared person (cached)."""
    return _covered_area_cached(sensor.model_dump_json())


def coverage_problems(sensors: dict[str, Sensor], zones: dict[str, Zone]) -> list[str]:
    """Each zone must lie inside the union of the sensors' covered areas."""
    if not zones or not sensors:
        return []
    from cobotguard.safety.camera import CameraModelError

    areas = []
    for sensor in sensors.values():
        try:
            areas.append(covered_area(sensor))
        except CameraModelError:
            return []  # reported by sensor_problems; without this camera, coverage cannot be judged
    seen = shapely.union_all(areas) if areas else shapely.Polygon()
    out: list[str] = []
    for name, zone in zones.items():
        path = key_path(("zones", name, "polygon_m"))
        if polygon_problems(path, zone.polygon_m):
            continue
        polygon = shapely.Polygon(zone.polygon_m)
        blind = polygon.difference(seen)
        if blind.area <= AREA_TOLERANCE_M2:
            continue
        where = blind.representative_point()
        share = 100.0 * blind.area / polygon.area
        what = (
            "lies outside every sensor's covered area"
            if share > 99.99
            else (f"is {share:.1f} % ({blind.area:.2f} m^2) outside every sensor's covered area")
        )
        out.append(
            f"{path}: the zone {what} (e.g. at x={where.x:.2f}, y={where.y:.2f} m); expected the zone "
            "inside the floor area where some sensor sees the smallest declared person"
        )
    return out


# -- zones, separation, controller, link ---------------------------------------------------------------


def zone_problems(name: str, zone: Zone, robot: Robot | None) -> list[str]:
    """Polygon validity and the fields each zone type needs."""
    path = key_path(("zones", name))
    out = polygon_problems(f"{path}.polygon_m", zone.polygon_m)
    if zone.type == "warning":
        if zone.speed_limit_mps is None:
            out.append(f"{path}.speed_limit_mps: missing; expected the speed (m/s) a warning zone slows to")
        elif robot is not None and zone.speed_limit_mps >= robot.max_speed_mps:
            out.append(
                f"{path}.speed_limit_mps: {zone.speed_limit_mps} m/s does not slow the robot (max "
                f"{robot.max_speed_mps} m/s); expected less than robot.max_speed_mps"
            )
        elif robot is not None and robot.speed_tolerance_mps >= zone.speed_limit_mps:
            out.append(
                f"robot.speed_tolerance_mps: {robot.speed_tolerance_mps} m/s is not below "
                f"{path}.speed_limit_mps ({zone.speed_limit_mps} m/s); expected less (a robot at twice the "
                "zone's limit would pass the speed supervision)"
            )
        if zone.stop_category is not None:
            out.append(f"{path}.stop_category: set on a warning zone; expected it only on protective zones")
    else:
        if zone.stop_category is None:
            out.append(f"{path}.stop_category: missing; expected 0, 1 or 2 on a protective zone")
        elif robot is not None and zone.stop_category != robot.stop_category:
            out.append(_category_problem(f"{path}.stop_category", zone.stop_category, robot.stop_category))
        if zone.speed_limit_mps is not None:
            out.append(
                f"{path}.speed_limit_mps: set on a protective zone; expected it only on warning zones "
                "(a protective zone stops)"
            )
    return out


def _category_problem(path: str, category: int, measured: int) -> str:
    return (
        f"{path}: stop category {category}, but the robot's stopping data is for category {measured}; "
        f"expected {measured} (robot.stop_category), the category the stopping times hold for"
    )


def separation_problems(
    separation: Separation, robot: Robot | None, zones: dict[str, Zone], complete: bool
) -> list[str]:
    """Stop category consistent with the stopping data; at least one protective function."""
    out: list[str] = []
    if separation.enabled and robot is not None and separation.stop_category != robot.stop_category:
        out.append(
            _category_problem("separation.stop_category", separation.stop_category, robot.stop_category)
        )
    if complete and not separation.enabled and not any(z.type == "protective" for z in zones.values()):
        out.append(
            "separation.enabled: false and no protective zone; expected separation monitoring or at least "
            "one protective zone (nothing would stop the robot)"
        )
    return out


def controller_problems(controller: Controller) -> list[str]:
    """Restart policy fields (the worst step may be longer than the cycle: see link_problems)."""
    out: list[str] = []
    if controller.restart == "automatic" and controller.auto_restart_clear_ms is None:
        out.append(
            'controller.auto_restart_clear_ms: missing with restart = "automatic"; expected how long '
            "(ms) the zones must stay clear before the robot restarts by itself"
        )
    if controller.restart == "manual" and controller.auto_restart_clear_ms is not None:
        out.append(
            'controller.auto_restart_clear_ms: set with restart = "manual"; expected it only with '
            'restart = "automatic" (a manual reset does not time out)'
        )
    # worst_step_ms may exceed cycle_period_ms (a late cycle within its worst step skips the releases it
    # overlapped, and the budget prices that in); link.command_watchdog_ms bounds it from above.
    return out


def hold_problems(controller: Controller, sensors: dict[str, Sensor]) -> list[str]:
    """controller.person_hold_ms: 0 (off) or at most each sensor's stale limit (docs/sensor.md, Held persons).

    The stale limit (T_frames + latency) is the oldest a sensor's newest frame may be: a hold that long
    bridges as many frames in a row without the person as the sensor may miss. It is compared as written,
    in ms rounded up to the microsecond, so that the limit the message names is itself accepted.
    """
    out: list[str] = []
    for name, sensor in sensors.items():
        limit_ms = -(-sensor_max_age_ns(sensor) // 1000) / 1000
        if controller.person_hold_ms > limit_ms:
            out.append(
                f"controller.person_hold_ms: {controller.person_hold_ms} ms is longer than the stale limit "
                f"of {key_path(('sensors', name))} ({limit_ms:.3f} ms: frame period x "
                f"(1 + tolerated_missed_frames) + exposure/readout + inference + transport); expected at "
                "most that, or 0 (off): a person is held no longer than a frame may be old"
            )
    return out


def robot_timing_problems(robot: Robot, controller: Controller, link: Link) -> list[str]:
    """The robot's state period against the staleness limit and the line; a fixed overspeed grace."""
    out: list[str] = []
    period_ms = robot.state_period_ms
    frame_ns = line_time_ns(link.state_frame_bytes, link.baud)
    frame_ms = frame_ns / NS_PER_MS
    if frame_ms > period_ms:
        out.append(
            f"robot.state_period_ms: {period_ms} ms is shorter than one robot state frame on the line "
            f"({link.state_frame_bytes} B at {link.baud} baud: {frame_ms:.3f} ms); expected at least that, "
            "or a higher link.baud"
        )
    wait_ms = max(controller.cycle_period_ms, controller.worst_step_ms)
    gap_ns = robot_state_gap_ns(
        ns(period_ms), frame_ns, ns(controller.cycle_period_ms), ns(controller.worst_step_ms)
    )
    normal_gap_ms = gap_ns / NS_PER_MS
    if ns(controller.robot_state_timeout_ms) <= gap_ns:
        out.append(
            f"controller.robot_state_timeout_ms: {controller.robot_state_timeout_ms} ms; expected more than "
            f"{normal_gap_ms:.3f} ms (robot.state_period_ms {period_ms} + one state frame {frame_ms:.3f} + "
            f"the controller's wait for its next cycle, max(controller.cycle_period_ms, "
            f"controller.worst_step_ms) = {wait_ms}: the longest normal gap between two robot states taken "
            "in), or a shorter robot.state_period_ms; else a robot that keeps its period stops the cell"
        )
    if robot.overspeed_grace_ms is not None:
        out += _grace_problems(robot, controller, link, robot.overspeed_grace_ms)
    return out


def robot_clock_problems(
    robot: Robot, controller: Controller, link: Link, sensors: dict[str, Sensor]
) -> list[str]:
    """robot.clock = "own": the staleness limit must cover the echo bound, and its ring must fit."""
    from cobotguard.safety.link.acceptance import ECHO_RING_CAPACITY

    if robot.clock != "own":
        return []
    out: list[str] = []
    period_ns, worst_ns = ns(controller.cycle_period_ms), ns(controller.worst_step_ms)
    wait_ms = max(controller.cycle_period_ms, controller.worst_step_ms)
    echo_ns = robot_echo_max_age_ns(period_ns, worst_ns, ns(link.max_delay_ms), link)
    stale_ns = robot_echo_stale_ns(echo_ns, period_ns, worst_ns)
    if ns(controller.robot_state_timeout_ms) <= stale_ns:
        out.append(
            f'controller.robot_state_timeout_ms: {controller.robot_state_timeout_ms} ms with robot.clock = '
            f'"own"; expected more than {_ms_up(stale_ns):.3f} ms (the echo limit {_ms_up(echo_ns):.3f} ms: '
            f"controller.cycle_period_ms {controller.cycle_period_ms} + controller.worst_step_ms "
            f"{controller.worst_step_ms} + the command's delivery max(link.max_delay_ms, one command frame "
            f"+ link.receiver_cycle_ms) + the state's link.max_delay_ms {link.max_delay_ms}; then the wait "
            f"for the next cycle, max(cycle, worst step) {wait_ms}"
            "): a state is as old as the command it echoes, else a robot that answers in time stops the cell"
        )
    data_periods = (
        [frame_period_ns(s.frame_rate_hz) for s in sensors.values()] if controller.wake_on_data else []
    )
    entries = robot_echo_ring_entries(echo_ns, period_ns, worst_ns, data_periods)
    if entries > ECHO_RING_CAPACITY:
        out.append(
            f'robot.clock: "own" needs {entries} remembered command send times for the echo limit of '
            f"{_ms_up(echo_ns):.3f} ms at controller.cycle_period_ms {controller.cycle_period_ms}; expected "
            f"at most {ECHO_RING_CAPACITY}: a longer cycle or a shorter link.max_delay_ms"
        )
    return out


def _grace_problems(robot: Robot, controller: Controller, link: Link, grace_ms: float) -> list[str]:
    """A fixed overspeed grace must give an obeying robot its link, reaction and stopping time."""
    from cobotguard.safety.stopping import stopping_at

    try:
        stop_ns, _ = stopping_at(robot, robot.max_speed_mps)
    except ValueError:
        return []  # the stopping table does not cover the maximum speed: reported by robot_problems
    obey = robot_obey_ns(
        ns(controller.worst_step_ms), ns(robot.stop_input_reaction_ms), ns(link.max_delay_ms), link
    )
    needed_ns = obey + stop_ns
    if ns(grace_ms) >= needed_ns:
        return []
    return [
        f"robot.overspeed_grace_ms: {grace_ms} ms is shorter than an obeying robot may need "
        f"({_ms_up(needed_ns):.3f} ms: command written, delivered and reacted to, report back "
        f"{_ms_up(obey):.3f} ms + stopping time {_ms_up(stop_ns):.3f} ms at robot.max_speed_mps "
        f"{robot.max_speed_mps} m/s); expected at least {_ms_up(needed_ns):.3f} ms, or leave it out to "
        "derive the grace per command from the robot's speed"
    ]


def _ms_up(time_ns: int) -> float:
    """Nanoseconds as milliseconds, rounded up to the microsecond (a printed minimum that suffices)."""
    return -(-time_ns // 1000) / 1000.0


def link_problems(link: Link, controller: Controller | None, sensors: dict[str, Sensor]) -> list[str]:
    """Frame sizes the protocol needs, frames that fit the cycle, a workable watchdog, unique ids."""
    out: list[str] = []
    for key, needed in PROTOCOL_FRAME_BYTES.items():
        if getattr(link, key) < needed:
            out.append(
                f"link.{key}: {getattr(link, key)} bytes; expected at least {needed} "
                "(the link protocol's frame)"
            )
    frame_ns = command_frame_ns(link)
    frame_ms = frame_ns / NS_PER_MS
    if ns(link.max_delay_ms) < frame_ns:
        out.append(
            f"link.max_delay_ms: {link.max_delay_ms} ms is shorter than one command frame on the line "
            f"({frame_ms:.3f} ms at {link.baud} baud); expected more, or every frame counts as late"
        )
    if controller is not None:
        out += _frames_per_cycle_problems(link, controller)
        gap_ns = command_gap_ns(ns(controller.cycle_period_ms), ns(controller.worst_step_ms), link)
        if ns(link.command_watchdog_ms) <= gap_ns:
            out.append(
                f"link.command_watchdog_ms: {link.command_watchdog_ms} ms; expected more than "
                f"{gap_ns / NS_PER_MS:.3f} ms (controller.cycle_period_ms {controller.cycle_period_ms} + "
                f"controller.worst_step_ms {controller.worst_step_ms} + one frame {frame_ms:.3f} + "
                f"link.receiver_cycle_ms {link.receiver_cycle_ms}: the longest normal gap between two "
                "commands), or the robot stops on normal jitter"
            )
    owners: dict[int, str] = {}
    for name, sensor in sensors.items():
        path = key_path(("sensors", name, "connection_id"))
        if sensor.connection_id in owners:
            out.append(
                f"{path}: {sensor.connection_id} is also used by {owners[sensor.connection_id]}; expected "
                "a unique connection id per channel (addressing errors must be detectable)"
            )
        owners.setdefault(sensor.connection_id, path)
    if link.connection_id in owners:
        out.append(
            f"link.connection_id: {link.connection_id} is also used by {owners[link.connection_id]}; "
            "expected a unique connection id per channel (addressing errors must be detectable)"
        )
    return out


def _frames_per_cycle_problems(link: Link, controller: Controller) -> list[str]:
    """One command per cycle goes out, one robot state per command comes back: each must fit a cycle.

    A slower line queues frames faster than it sends them, so the backlog (and every frame's age) grows
    until all of them are late. A pty pair ignores the baud rate and hides this; a real line does not.
    """
    cycle_ns = ns(controller.cycle_period_ms)
    out: list[str] = []
    for frame_bytes, what, why in (
        (link.command_frame_bytes, "command frame", "the controller sends one every cycle"),
        (link.state_frame_bytes, "robot state frame", "the robot answers every command with one"),
    ):
        wire_ns = line_time_ns(frame_bytes, link.baud)
        if wire_ns <= cycle_ns:
            continue
        lowest = min_baud(frame_bytes, cycle_ns)
        out.append(
            f"link.baud: a {frame_bytes}-byte {what} takes {wire_ns / 1e6:.3f} ms on the line at {link.baud} "
            f"baud, longer than the controller cycle ({controller.cycle_period_ms} ms); expected at least "
            f"{lowest} baud ({why}, else the backlog grows until every frame is late), or a longer "
            "controller.cycle_period_ms"
        )
    return out
