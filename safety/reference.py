"""Plain-Python reference implementation of the safety step: the oracle for differential tests.

Same signature and same effect as `safety.step.step`, written independently for reading rather than
speed: findings are collected as a list and the most restrictive one is picked with `min`; the state
machine is the `safety.states.TRANSITIONS` dict; geometry is `math` on Python floats. It must produce
bit-identical commands and states for identical inputs. Held persons (a person missed by a frame, see
docs/sensor.md) are kept as lists of dicts per sensor and written back to the state's table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cobotguard.safety.params import NO_CATEGORY, ZONE_PROTECTIVE
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import FRAME_COUNTER_MODULO, HELD_PERSON_BASE, MAX_PERSONS
from cobotguard.safety.states import ControllerState, Permission, event_for, next_state

# --- geometry -----------------------------------------------------------------------------------------


Edge = tuple[float, float, float, float, float, float]  # ax, ay, by, dx, dy, 1/|d|^2 (safety.geometry)


def _distance2(edges: list[Edge], x: float, y: float) -> float:
    """Squared distance to the closed polygon region (0 inside), from the parameters' edge table."""
    crossings = 0
    nearest = math.inf
    for ax, ay, by, dx, dy, inverse in edges:
        px, py = x - ax, y - ay
        t = min(max((px * dx + py * dy) * inverse, 0.0), 1.0)
        ex, ey = px - t * dx, py - t * dy
        nearest = min(nearest, ex * ex + ey * ey)
        side = dx * py - dy * px  # > 0: the point is left of the edge
        upward = ay <= y < by
        downward = by <= y < ay
        if (upward and side > 0.0) or (downward and side < 0.0):
            crossings += 1  # the ray from the point to +x crosses this edge
    return 0.0 if crossings % 2 else nearest


# --- parameters as Python values ----------------------------------------------------------------------


def _edges(table: np.ndarray, n: int) -> list[Edge]:
    return [tuple(float(v) for v in table[:, k]) for k in range(int(n))]  # type: ignore[misc]


def _stopping(p: np.void, speed: float) -> tuple[int, float]:
    """(T_s ns, S_s m) of the first table row at or above `speed`, else the last row."""
    speeds = [float(v) for v in p["stop_speed_mps"][: p["n_stop_points"]]]
    k = next((i for i, v in enumerate(speeds) if v >= speed), len(speeds) - 1)
    return int(p["stop_time_ns"][k]), float(p["stop_distance_m"][k])


def separation_m(p: np.void, speed: float, z_d: float) -> float:
    """S_p at robot `speed` for uncertainty `z_d`, from the parameter record (same rule as the step)."""
    stop_ns, stop_m = _stopping(p, speed)
    t_r_ns = int(p["reaction_time_ns"])
    rest = speed * t_r_ns / 1_000_000_000 + stop_m + float(p["intrusion_m"]) + z_d + float(p["robot_z_r_m"])
    t = (t_r_ns + stop_ns) / 1_000_000_000
    switch = float(p["human_speed_switch_m"])
    near = float(p["human_speed_near_mps"]) * t + rest
    if near <= switch:
        return near
    return max(float(p["human_speed_far_mps"]) * t + rest, switch)


# --- findings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One restriction found this cycle; `order` keeps ties deterministic (first found wins)."""

    order: int
    reason: Reason
    sensor: int
    person: int
    zone: int
    category: int = NO_CATEGORY  # stops
    limit: float = math.inf  # slows


def _sensor_fault(p: np.void, s: np.void, d: np.void, i: int, now: int) -> Reason:
    if d["t_received_ns"] == 0:
        return Reason.SENSOR_NO_DATA
    if d["sensor_index"] != i:
        return Reason.SENSOR_BAD_VALUE
    times = [int(d[k]) for k in ("t_exposure_ns", "t_inference_done_ns", "t_sent_ns", "t_received_ns")] + [
        now
    ]
    if times != sorted(times):
        return Reason.SENSOR_TIME_INCONSISTENT
    if s["frame_fault"][i] != 0:
        return Reason(int(s["frame_fault"][i]))
    if now - int(d["t_exposure_ns"]) > int(p["sensor_max_age_ns"][i]):
        return Reason.SENSOR_STALE
    if int(d["t_received_ns"]) - int(d["t_exposure_ns"]) > int(p["sensor_max_latency_ns"][i]):
        return Reason.SENSOR_STALE
    if d["health"] != 0:
        return Reason.SENSOR_HEALTH
    count = int(d["person_count"])
    if count < 0 or d["inference_us"] < 0:
        return Reason.SENSOR_BAD_VALUE
    if count > min(int(p["sensor_max_persons"][i]), MAX_PERSONS):
        return Reason.SENSOR_TOO_MANY_PERSONS
    bound = float(p["max_coordinate_m"])

    def ok(v: float, lo: float, hi: float) -> bool:
        return math.isfinite(v) and lo <= v <= hi

    for person in d["persons"][:count]:
        if not (
            ok(float(person["x_m"]), -bound, bound)
            and ok(float(person["y_m"]), -bound, bound)
            and ok(float(person["z_d_m"]), 0.0, float(p["max_z_d_m"]))
            and ok(float(person["score"]), 0.0, 1.0)
        ):
            return Reason.SENSOR_BAD_VALUE
    return Reason(int(s["hold_fault"][i]))


def _robot_fault(p: np.void, r: np.void, now: int) -> Reason:
    t = int(r["t_received_ns"])
    speed = float(r["speed_mps"])
    if t == 0:
        return Reason.ROBOT_NO_DATA
    if t > now:
        return Reason.ROBOT_BAD_VALUE
    if int(p["robot_age_by_echo"]) == 0:
        origin = t
    elif int(r["last_command_seq"]) < 0:
        origin = None  # echoes no command: its age cannot be bounded
    else:
        origin = int(r["t_sent_ns"])  # the echoed command's send time, on our clock
    if origin is None or now - origin > int(p["robot_state_timeout_ns"]):
        return Reason.ROBOT_STALE
    if not math.isfinite(speed) or speed < 0.0 or r["at_rest"] not in (0, 1):
        return Reason.ROBOT_BAD_VALUE
    if not 0 <= r["mode"] < len(CommandKind):
        return Reason.ROBOT_BAD_VALUE
    if speed > float(p["robot_max_speed_mps"]):
        return Reason.ROBOT_OVERSPEED
    return Reason.NONE


def _grace(p: np.void, speed: float) -> int:
    """The grace after a lower limit: fixed by the configuration (> 0), else obey time + T_s(speed)."""
    fixed = int(p["robot_overspeed_grace_ns"])
    return fixed if fixed > 0 else int(p["robot_obey_ns"]) + _stopping(p, speed)[0]


def _speed_pending(s: np.void) -> bool:
    return float(s["speed_target_mps"]) < float(s["speed_allowed_mps"])


def _overspeed(p: np.void, s: np.void, r: np.void) -> Reason:
    """Speed supervision of a valid report: is the robot faster than the limit that holds for it?"""
    speed, received = float(r["speed_mps"]), int(r["t_received_ns"])
    if _speed_pending(s):
        since = int(s["speed_since_ns"])
        if received <= since + int(p["robot_obey_ns"]) and speed > float(s["speed_seen_mps"]):
            s["speed_seen_mps"] = speed  # still speeding up when the lower limit reached it
            s["speed_deadline_ns"] = max(int(s["speed_deadline_ns"]), since + _grace(p, speed))
        if received >= int(s["speed_deadline_ns"]):
            s["speed_allowed_mps"] = s["speed_target_mps"]
    too_fast = speed > float(s["speed_allowed_mps"]) + float(p["robot_speed_tolerance_mps"])
    return Reason.ROBOT_OVERSPEED if too_fast else Reason.NONE


def _commanded(p: np.void, s: np.void, limit: float, robot_speed: float, now: int) -> None:
    """Remember the limit just commanded: raising holds at once, lowering after the robot's grace."""
    allowed, target = float(s["speed_allowed_mps"]), float(s["speed_target_mps"])
    if limit >= allowed:
        s["speed_allowed_mps"] = s["speed_target_mps"] = limit
        return
    if limit >= target:
        s["speed_target_mps"] = limit
        return
    deadline = now + _grace(p, robot_speed)
    if _speed_pending(s):
        deadline = max(deadline, int(s["speed_deadline_ns"]))
    s["speed_target_mps"] = limit
    s["speed_since_ns"] = now
    s["speed_seen_mps"] = robot_speed
    s["speed_deadline_ns"] = deadline


def _receive(p: np.void, s: np.void, detections: np.ndarray) -> None:
    for i in range(int(p["n_sensors"])):
        d = detections[i]
        t = int(d["t_received_ns"])
        last_t = int(s["last_rx_ns"][i])
        if t in (0, last_t):
            continue
        counter = int(d["frame_counter"])
        last = int(s["last_counter"][i])
        if t < last_t:
            fault = Reason.SENSOR_TIME_INCONSISTENT
        elif not 0 <= counter < FRAME_COUNTER_MODULO:
            fault = Reason.SENSOR_BAD_VALUE
        else:
            gap = (counter - last) % FRAME_COUNTER_MODULO
            if last < 0:
                fault = Reason.NONE
            elif gap == 0:
                fault = Reason.SENSOR_COUNTER_REPEATED
            elif gap > FRAME_COUNTER_MODULO // 2:
                fault = Reason.SENSOR_COUNTER_OUT_OF_ORDER
            elif gap - 1 > int(p["sensor_tolerated_missed"][i]):
                fault = Reason.SENSOR_FRAMES_MISSED
            else:
                fault = Reason.NONE
            s["last_counter"][i] = counter
        s["last_rx_ns"][i] = t
        s["frame_fault"][i] = int(fault)


# --- held persons -------------------------------------------------------------------------------------


Entry = dict[str, float | int]  # a table entry: x, y, z_d (when last seen), seen (that frame's exposure)


def _grown(p: np.void, z_d: float, seen: int, now: int) -> float:
    """Z_d at `now` of a person last seen at exposure `seen`: + 1.6 m/s (ISO 13855) x the time since."""
    return z_d + float(p["human_speed_far_mps"]) * (now - seen) / 1_000_000_000


def _reaches_anything(p: np.void, x: float, y: float, z_d: float) -> bool:
    """Does the disc reach a zone, or the S_p region at some speed, with the release hysteresis?"""
    h = float(p["release_hysteresis_m"])
    regions = [(_edges(p["zone_edges"][k], p["zone_n"][k]), z_d + h) for k in range(int(p["n_zones"]))]
    if p["ssm_enabled"]:
        hazard = _edges(p["hazard_edges"], p["hazard_n"])
        regions.insert(0, (hazard, float(p["hold_hazard_reach_m"]) + z_d + h))
    return any(_distance2(edges, x, y) <= reach * reach for edges, reach in regions)


def _table(s: np.void, i: int) -> list[Entry]:
    """Sensor i's table of held and seen persons, from the state."""
    fields = (("x", "hold_x_m", float), ("y", "hold_y_m", float), ("z_d", "hold_z_d_m", float),
              ("seen", "hold_seen_ns", int))  # fmt: skip
    return [{name: kind(s[key][i][k]) for name, key, kind in fields} for k in range(int(s["hold_count"][i]))]


def _hold(p: np.void, s: np.void, detections: np.ndarray, now: int) -> None:
    """On a sensor's new valid frame: the persons no new one accounts for are held (or dropped)."""
    if int(p["person_hold_ns"]) <= 0:
        return
    for i in range(int(p["n_sensors"])):
        d = detections[i]
        received = int(d["t_received_ns"])
        if received in (0, int(s["hold_rx_ns"][i])):
            continue
        s["hold_fault"][i] = 0
        if _sensor_fault(p, s, d, i, now) != Reason.NONE:
            continue
        s["hold_rx_ns"][i] = received
        _hold_from_frame(p, s, d, i, now)


def _hold_from_frame(p: np.void, s: np.void, d: np.void, i: int, now: int) -> None:
    """Sensor i's table after its valid frame d: the persons still held, then the frame's own."""
    hold = int(p["person_hold_ns"])
    v = float(p["human_speed_far_mps"])
    exposure = int(d["t_exposure_ns"])
    floor = float(p["sensor_z_d_m"][i])
    new: list[Entry] = []
    for q in d["persons"][: int(d["person_count"])]:
        z_d = float(q["z_d_m"])
        new.append({"x": float(q["x_m"]), "y": float(q["y_m"]), "z_d": z_d if z_d > floor else floor,
                    "seen": exposure})  # fmt: skip

    def accounted(old: Entry) -> bool:
        gate = _grown(p, float(old["z_d"]), int(old["seen"]), exposure)
        for person in new:
            dx, dy = float(person["x"]) - float(old["x"]), float(person["y"]) - float(old["y"])
            reach = gate + float(person["z_d"])
            if dx * dx + dy * dy <= reach * reach:
                return True
        return False

    def matters(old: Entry) -> bool:
        largest = float(old["z_d"]) + v * hold / 1_000_000_000  # its Z_d when the hold ends
        return _reaches_anything(p, float(old["x"]), float(old["y"]), largest)

    previous = _table(s, i)
    lasting = [old for old in previous if now - int(old["seen"]) <= hold]
    kept = [old for old in lasting if not accounted(old) and matters(old)]
    room = min(int(p["sensor_max_persons"][i]), MAX_PERSONS) - len(new)
    if len(kept) > room:
        s["hold_fault"][i] = int(Reason.SENSOR_TOO_MANY_PERSONS)
        kept = kept[:room]
    table = kept + new
    blank: Entry = {"x": 0.0, "y": 0.0, "z_d": 0.0, "seen": 0}
    for k, entry in enumerate(table + [blank] * (len(previous) - len(table))):
        s["hold_x_m"][i][k] = entry["x"]
        s["hold_y_m"][i][k] = entry["y"]
        s["hold_z_d_m"][i][k] = entry["z_d"]
        s["hold_seen_ns"][i][k] = entry["seen"]
    s["held_count"][i] = len(kept)
    s["hold_count"][i] = len(table)


def _persons(p: np.void, s: np.void, d: np.void, i: int, now: int) -> list[tuple[int, float, float, float]]:
    """(index, x, y, Z_d) of sensor i's persons: the frame's, then the held ones whose hold lasts."""
    floor = float(p["sensor_z_d_m"][i])
    out = [
        (j, float(q["x_m"]), float(q["y_m"]), max(float(q["z_d_m"]), floor))
        for j, q in enumerate(d["persons"][: int(d["person_count"])])
    ]
    for k, entry in enumerate(_table(s, i)[: int(s["held_count"][i])]):
        seen = int(entry["seen"])
        if now - seen <= int(p["person_hold_ns"]):
            z_d = _grown(p, float(entry["z_d"]), seen, now)
            out.append((HELD_PERSON_BASE + k, float(entry["x"]), float(entry["y"]), z_d))
    return out


def _person_findings(
    p: np.void, s: np.void, detections: np.ndarray, speed: float, now: int
) -> tuple[list[Finding], list[Finding]]:
    """(strict, with hysteresis) findings for every person, seen or held, of every sensor."""
    strict: list[Finding] = []
    held: list[Finding] = []
    h = float(p["release_hysteresis_m"])
    hazard = _edges(p["hazard_edges"], p["hazard_n"])
    zones = [_edges(p["zone_edges"][k], p["zone_n"][k]) for k in range(int(p["n_zones"]))]
    order = 0
    for i in range(int(p["n_sensors"])):
        for j, x, y, z_d in _persons(p, s, detections[i], i, now):
            candidates = []
            if p["ssm_enabled"]:
                sp = separation_m(p, speed, z_d)
                candidates.append(
                    (hazard, sp, Reason.SEPARATION_BELOW_SP, -1, int(p["ssm_stop_category"]), math.inf)
                )
            for k, zone in enumerate(zones):
                if p["zone_kind"][k] == ZONE_PROTECTIVE:
                    candidates.append(
                        (
                            zone,
                            z_d,
                            Reason.PERSON_IN_PROTECTIVE_ZONE,
                            k,
                            int(p["zone_stop_category"][k]),
                            math.inf,
                        )
                    )
                else:
                    candidates.append(
                        (
                            zone,
                            z_d,
                            Reason.PERSON_IN_WARNING_ZONE,
                            k,
                            NO_CATEGORY,
                            float(p["zone_speed_limit_mps"][k]),
                        )
                    )
            for polygon, radius, reason, zone_index, category, limit in candidates:
                finding = Finding(order, reason, i, j, zone_index, category, limit)
                order += 1
                d2 = _distance2(polygon, x, y)
                if d2 <= radius * radius:
                    strict.append(finding)
                    held.append(finding)
                elif d2 <= (radius + h) * (radius + h):
                    held.append(finding)
    return strict, held


def _most_restrictive_stop(findings: list[Finding]) -> Finding | None:
    stops = [f for f in findings if f.category != NO_CATEGORY]
    return min(stops, key=lambda f: (f.category, f.order)) if stops else None


def _slowest(findings: list[Finding]) -> Finding | None:
    slows = [f for f in findings if f.category == NO_CATEGORY]
    return min(slows, key=lambda f: (f.limit, f.order)) if slows else None


def _level(stop: Finding | None, slow: Finding | None) -> int:
    return 2 if stop is not None else 1 if slow is not None else 0


def step(
    params: np.ndarray,
    state: np.ndarray,
    detections: np.ndarray,
    robot: np.ndarray,
    reset_input: int,
    overrun: int,
    now_ns: int,
    command_out: np.ndarray,
) -> None:
    """One safety cycle, in plain Python (same contract as `safety.step.step`)."""
    p, s, r, now = params[0], state[0], robot[0], int(now_ns)
    _receive(p, s, detections)
    _hold(p, s, detections, now)

    fault, fault_sensor = Reason.NONE, -1
    state_valid = int(s["state"]) in set(ControllerState)
    robot_fault = _robot_fault(p, r, now)
    if not state_valid or now < int(s["last_now_ns"]):
        fault = Reason.STATE_INVALID
    elif overrun:
        fault = Reason.LOOP_OVERRUN
    elif robot_fault != Reason.NONE:
        fault = robot_fault
    else:
        fault = _overspeed(p, s, r)
        if fault == Reason.NONE:
            for i in range(int(p["n_sensors"])):
                fault = _sensor_fault(p, s, detections[i], i, now)
                if fault != Reason.NONE:
                    fault_sensor = i
                    break

    strict: list[Finding] = []
    held: list[Finding] = []
    if fault == Reason.NONE:
        strict, held = _person_findings(p, s, detections, float(r["speed_mps"]), now)
    stop, slow = _most_restrictive_stop(strict), _slowest(strict)
    hold_stop, hold_slow = _most_restrictive_stop(held), _slowest(held)
    strict_level = 3 if fault != Reason.NONE else _level(stop, slow)
    event = event_for(strict_level, _level(hold_stop, hold_slow))

    reset_now = 1 if reset_input else 0
    if reset_now and not s["reset_prev"]:
        permission = Permission.RESET
    elif p["restart_automatic"] and now - int(s["state_entered_ns"]) >= int(p["auto_restart_clear_ns"]):
        permission = Permission.AUTO
    else:
        permission = Permission.NONE
    if state_valid:
        new = next_state(ControllerState(int(s["state"])), event, permission)
    else:
        new = ControllerState.FAULT_STOPPED
    if new != s["state"]:
        s["state"] = new
        s["state_entered_ns"] = now
    s["reset_prev"] = reset_now
    s["last_now_ns"] = max(int(s["last_now_ns"]), now)
    s["cycles"] += 1

    latched = int(s["latched_category"])
    fault_category = min(latched, int(p["fault_stop_category"]))

    def emit(
        kind: CommandKind,
        limit: float,
        category: int,
        reason: Reason,
        who: Finding | None = None,
        sensor: int = -1,
    ) -> None:
        c = command_out[0]
        c["kind"], c["speed_limit_mps"], c["stop_category"], c["reason"] = kind, limit, category, reason
        c["reason_sensor"] = who.sensor if who else sensor
        c["reason_person"] = who.person if who else -1
        c["reason_zone"] = who.zone if who else -1
        c["t_ns"] = now

    if new == ControllerState.RUNNING:
        s["latched_category"] = NO_CATEGORY
        emit(CommandKind.RUN, float(p["robot_max_speed_mps"]), 0, Reason.NONE)
    elif new == ControllerState.SLOWED:
        s["latched_category"] = NO_CATEGORY
        if hold_slow is not None:
            s["slow_limit_mps"] = hold_slow.limit
            emit(CommandKind.SLOW, hold_slow.limit, 0, hold_slow.reason, hold_slow)
        else:
            assert hold_stop is not None
            emit(CommandKind.SLOW, float(s["slow_limit_mps"]), 0, hold_stop.reason, hold_stop)
    elif new == ControllerState.PROTECTIVE_STOPPED:
        cause = stop if stop is not None else hold_stop
        assert cause is not None
        category = min(latched, cause.category)
        s["latched_category"] = category
        emit(CommandKind.PROTECTIVE_STOP, 0.0, category, cause.reason, cause)
    elif new == ControllerState.AWAITING_RESET:
        category = latched if latched != NO_CATEGORY else fault_category
        s["latched_category"] = category
        emit(CommandKind.PROTECTIVE_STOP, 0.0, category, Reason.RESTART_INTERLOCK)
    elif new == ControllerState.FAULT_STOPPED:
        s["latched_category"] = fault_category
        emit(CommandKind.FAULT_STOP, 0.0, fault_category, fault, sensor=fault_sensor)
    elif new == ControllerState.AWAITING_FAULT_RESET:
        s["latched_category"] = fault_category
        emit(CommandKind.FAULT_STOP, 0.0, fault_category, Reason.RESTART_INTERLOCK)
    else:
        s["latched_category"] = fault_category
        reason = fault if fault != Reason.NONE else Reason.NOT_ARMED
        emit(CommandKind.FAULT_STOP, 0.0, fault_category, reason, sensor=fault_sensor)

    robot_speed = float(r["speed_mps"]) if robot_fault == Reason.NONE else float(p["robot_max_speed_mps"])
    _commanded(p, s, float(command_out[0]["speed_limit_mps"]), robot_speed, now)
