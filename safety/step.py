"""The deterministic safety step: (params, state, inputs, now_ns) -> (state, command), compiled with numba.

One call per controller cycle. No I/O, no clock reads, no allocation: the caller passes preallocated
record arrays and the time, the step updates `state` in place and writes one COMMAND_DTYPE record.

    params = build_params(cfg)          # safety.params, once
    state = new_state(params)           # NOT_ARMED
    warm_up(params)                     # compile and run every branch before arming
    step(params, state, detections, robot, reset_input, overrun, now_ns, command_out)

Inputs besides the records: reset_input (the reset button, 0/1; only a rising edge counts) and overrun
(1 when the executor's previous cycle missed its deadline, which latches a fault stop). Link errors are
applied by the executor on top of the command (safety.executor.step_caller).

What it decides, each cycle (most restrictive wins, a stop short-circuits any release):
1. faults: the executor's overrun flag, an invalid state or time running backwards, robot state missing,
   stale or invalid, a robot faster than it was allowed (speed supervision, below), and per sensor:
   never received, frame older than its budget, late frame, counter repeated / out of order / gap
   beyond the tolerated missed frames (8-bit wrapping), health flags, too many persons, NaN or
   out-of-range values. Any fault -> FAULT_STOP naming the sensor.
2. per person of every sensor, seen or held: ISO/TS 15066 separation (distance to the hazard region vs
   S_p at the robot's current speed, Z_d included) and static warning (slow) / protective (stop) zones,
   each inflated by the person's Z_d.
3. the same with the release hysteresis added: only used to decide whether a restriction may be released.
4. one `Event` and one `Permission` -> `safety.states.TRANSITION_TABLE` -> next state -> command.

The command's stop_category is 0 for RUN and SLOW (ignored there); speed_limit_mps is 0 for stops.

Held persons (params.person_hold_ns > 0; docs/sensor.md, "Held persons"): per sensor the state keeps a
table of the persons of the newest valid frame and of those held. When a valid new frame arrives, each
table entry last seen at exposure t (Z_d z) is accounted for when a new person (Z_d z') lies within
z + 1.6 m/s x (t_exposure - t) + z' of it; one not accounted for is held, unless its hold has ended
(now - t > hold) or even its largest disc (Z_d z + 1.6 m/s x hold) reaches no zone and no S_p region
(params.hold_hazard_reach_m). Every cycle a held person is checked like a seen one with
Z_d = z + 1.6 m/s x (now - t), until its hold ends; its findings name person HELD_PERSON_BASE + its index.
Seen and held persons together may not exceed the sensor's max_persons (SENSOR_TOO_MANY_PERSONS).

Speed supervision (ROBOT_OVERSPEED): every command's speed_limit_mps (RUN: the maximum, SLOW: the zone's
limit, stops: 0) is a limit the robot must keep. A higher limit holds at once. A lower one holds for
robot reports received from its deadline on: the command's step time + the grace, which is
params.robot_overspeed_grace_ns when the configuration fixes it (robot.overspeed_grace_ms), else
params.robot_obey_ns (step, link both ways, stop input reaction) + the stopping time from the speed the
robot reported until the command took effect (for a slow-down a conservative bound). A report faster than
the limit held + params.robot_speed_tolerance_mps is a fault stop. S_p always uses the reported speed,
never the commanded one.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cobotguard.safety.geometry import region_distance_squared_within
from cobotguard.safety.params import NO_CATEGORY, ZONE_PROTECTIVE
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    DETECTION_DTYPE,
    FRAME_COUNTER_MODULO,
    HELD_PERSON_BASE,
    MAX_PERSONS,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
)
from cobotguard.safety.states import TRANSITION_TABLE, ControllerState, Event, Permission
from cobotguard.safety.warmup import warm_up_inputs

STATE_DTYPE = np.dtype(
    [
        ("state", np.int32),  # ControllerState
        ("state_entered_ns", np.int64),  # when the current state was entered (auto-restart clear time)
        ("reset_prev", np.int32),  # reset input of the previous cycle (edge detection)
        ("latched_category", np.int32),  # most restrictive stop category of the current stop; 3 = none
        ("slow_limit_mps", np.float64),  # speed limit held while SLOWED
        ("last_now_ns", np.int64),
        ("cycles", np.int64),
        ("last_rx_ns", np.int64, (MAX_SENSORS,)),  # t_received_ns of the newest frame seen; 0 = none
        ("last_counter", np.int32, (MAX_SENSORS,)),  # its frame counter; -1 = none
        ("frame_fault", np.int32, (MAX_SENSORS,)),  # Reason found when the newest frame arrived; 0 = none
        # speed supervision (see `supervise_speed`): the robot's reported speed must stay at or below
        # speed_allowed_mps (+ tolerance); a lower commanded limit (speed_target_mps) replaces it for
        # reports received from speed_deadline_ns on. Nothing pending when target == allowed.
        ("speed_allowed_mps", np.float64),
        ("speed_target_mps", np.float64),
        ("speed_since_ns", np.int64),  # step time of the command that lowered the target
        ("speed_seen_mps", np.float64),  # highest speed reported until that command took effect
        ("speed_deadline_ns", np.int64),
        # held persons (see the module doc): per sensor, entries [0, held_count) are held, entries
        # [held_count, hold_count) copy the persons of the frame received at hold_rx_ns; hold_z_d_m is the
        # Z_d when last seen (at least the sensor's), hold_seen_ns the exposure of the frame that saw it
        ("hold_rx_ns", np.int64, (MAX_SENSORS,)),
        ("hold_fault", np.int32, (MAX_SENSORS,)),  # Reason found when the table was updated; 0 = none
        ("held_count", np.int32, (MAX_SENSORS,)),
        ("hold_count", np.int32, (MAX_SENSORS,)),
        ("hold_x_m", np.float64, (MAX_SENSORS, MAX_PERSONS)),
        ("hold_y_m", np.float64, (MAX_SENSORS, MAX_PERSONS)),
        ("hold_z_d_m", np.float64, (MAX_SENSORS, MAX_PERSONS)),
        ("hold_seen_ns", np.int64, (MAX_SENSORS, MAX_PERSONS)),
    ]
)

# Plain ints for the compiled code (numba folds module-level ints into constants).
_RUN = int(CommandKind.RUN)
_SLOW = int(CommandKind.SLOW)
_PSTOP = int(CommandKind.PROTECTIVE_STOP)
_FSTOP = int(CommandKind.FAULT_STOP)

_S_NOT_ARMED = int(ControllerState.NOT_ARMED)
_S_RUNNING = int(ControllerState.RUNNING)
_S_SLOWED = int(ControllerState.SLOWED)
_S_PSTOPPED = int(ControllerState.PROTECTIVE_STOPPED)
_S_AWAITING = int(ControllerState.AWAITING_RESET)
_S_FSTOPPED = int(ControllerState.FAULT_STOPPED)
_S_AWAITING_FAULT = int(ControllerState.AWAITING_FAULT_RESET)
_N_STATES = len(ControllerState)

_E_FAULT = int(Event.FAULT)
_E_STOP = int(Event.STOP)
_E_SLOW_HOLD_STOP = int(Event.SLOW_HOLD_STOP)
_E_HOLD_STOP = int(Event.HOLD_STOP)
_E_SLOW = int(Event.SLOW)
_E_HOLD_SLOW = int(Event.HOLD_SLOW)
_E_CLEAR = int(Event.CLEAR)

_P_NONE = int(Permission.NONE)
_P_AUTO = int(Permission.AUTO)
_P_RESET = int(Permission.RESET)

_R_NONE = int(Reason.NONE)
_R_WARNING = int(Reason.PERSON_IN_WARNING_ZONE)
_R_PROTECTIVE = int(Reason.PERSON_IN_PROTECTIVE_ZONE)
_R_SEPARATION = int(Reason.SEPARATION_BELOW_SP)
_R_INTERLOCK = int(Reason.RESTART_INTERLOCK)
_R_NOT_ARMED = int(Reason.NOT_ARMED)
_R_NO_DATA = int(Reason.SENSOR_NO_DATA)
_R_STALE = int(Reason.SENSOR_STALE)
_R_MISSED = int(Reason.SENSOR_FRAMES_MISSED)
_R_REPEATED = int(Reason.SENSOR_COUNTER_REPEATED)
_R_OUT_OF_ORDER = int(Reason.SENSOR_COUNTER_OUT_OF_ORDER)
_R_HEALTH = int(Reason.SENSOR_HEALTH)
_R_TOO_MANY = int(Reason.SENSOR_TOO_MANY_PERSONS)
_R_BAD_VALUE = int(Reason.SENSOR_BAD_VALUE)
_R_TIME = int(Reason.SENSOR_TIME_INCONSISTENT)
_R_ROBOT_NO_DATA = int(Reason.ROBOT_NO_DATA)
_R_ROBOT_STALE = int(Reason.ROBOT_STALE)
_AGE_UNKNOWN_NS = -(1 << 62)  # an origin older than any timeout at any monotonic time (no overflow)
_R_ROBOT_BAD = int(Reason.ROBOT_BAD_VALUE)
_R_ROBOT_OVERSPEED = int(Reason.ROBOT_OVERSPEED)
_R_OVERRUN = int(Reason.LOOP_OVERRUN)
_R_STATE_INVALID = int(Reason.STATE_INVALID)

_N_KINDS = len(CommandKind)
_HALF_COUNTER = FRAME_COUNTER_MODULO // 2
_TABLE = TRANSITION_TABLE
_NS_PER_S = 1_000_000_000


def new_state(params: np.ndarray) -> np.ndarray:
    """A fresh controller state (shape (1,), STATE_DTYPE): NOT_ARMED, no frame seen yet, reset not armed.

    Nothing has been commanded yet, so the robot is held only to its maximum speed; the first command
    (a stop, while NOT_ARMED) starts the supervision.
    """
    state = np.zeros(1, dtype=STATE_DTYPE)
    state[0]["speed_allowed_mps"] = params[0]["robot_max_speed_mps"]
    state[0]["speed_target_mps"] = params[0]["robot_max_speed_mps"]
    state[0]["state"] = _S_NOT_ARMED
    state[0]["latched_category"] = NO_CATEGORY
    state[0]["reset_prev"] = 1  # a reset input already high at start-up is not a rising edge
    state[0]["last_counter"][:] = -1
    return state


@njit(cache=False, inline="always")
def stopping_at(p, speed: float) -> tuple[int, float]:
    """Stop time (ns) and distance (m) at `speed`: the first table row at or above it (conservative)."""
    n = p.n_stop_points
    k = n - 1
    for i in range(n):
        if p.stop_speed_mps[i] >= speed:
            k = i
            break
    return p.stop_time_ns[k], p.stop_distance_m[k]


@njit(cache=False, inline="always")
def protective_separation_m(p, speed: float, z_d: float) -> float:
    """ISO/TS 15066 S_p at robot `speed` for a person with uncertainty `z_d` (as safety.budget computes it).

    S_p = v_h (T_r + T_s) + v_r T_r + S_s + C + Z_d + Z_r, v_h = 2.0 m/s, or 1.6 m/s (S_p >= 0.5 m) where
    2.0 m/s gives more than 0.5 m (ISO 13855).
    """
    stop_ns, stop_m = stopping_at(p, speed)
    rest = speed * p.reaction_time_ns / _NS_PER_S + stop_m + p.intrusion_m + z_d + p.robot_z_r_m
    t = (p.reaction_time_ns + stop_ns) / _NS_PER_S
    near = p.human_speed_near_mps * t + rest
    if near <= p.human_speed_switch_m:
        return near
    return max(p.human_speed_far_mps * t + rest, p.human_speed_switch_m)


@njit(cache=False)
def receive_frames(p, s, detections) -> None:
    """Check the frame counter of every frame that arrived since the last cycle; remember the result."""
    for i in range(p.n_sensors):
        d = detections[i]
        t = d.t_received_ns
        if t == 0 or t == s.last_rx_ns[i]:
            continue
        fault = _R_NONE
        c = d.frame_counter
        if t < s.last_rx_ns[i]:
            fault = _R_TIME
        elif c < 0 or c >= FRAME_COUNTER_MODULO:
            fault = _R_BAD_VALUE
        elif s.last_counter[i] >= 0:
            gap = (c - s.last_counter[i]) % FRAME_COUNTER_MODULO
            if gap == 0:
                fault = _R_REPEATED
            elif gap > _HALF_COUNTER:
                fault = _R_OUT_OF_ORDER
            elif gap - 1 > p.sensor_tolerated_missed[i]:
                fault = _R_MISSED
        if fault != _R_TIME and fault != _R_BAD_VALUE:
            s.last_counter[i] = c
        s.last_rx_ns[i] = t
        s.frame_fault[i] = fault


@njit(cache=False, inline="always")
def _finite_within(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value <= high


@njit(cache=False)
def check_sensor(p, s, d, i: int, now_ns: int) -> int:
    """The first fault of sensor i's newest frame (then: more held persons than it may report), or NONE."""
    if d.t_received_ns == 0:
        return _R_NO_DATA
    if d.sensor_index != i:
        return _R_BAD_VALUE
    if not (d.t_exposure_ns <= d.t_inference_done_ns <= d.t_sent_ns <= d.t_received_ns <= now_ns):
        return _R_TIME
    if s.frame_fault[i] != _R_NONE:
        return s.frame_fault[i]
    if now_ns - d.t_exposure_ns > p.sensor_max_age_ns[i]:
        return _R_STALE
    if d.t_received_ns - d.t_exposure_ns > p.sensor_max_latency_ns[i]:
        return _R_STALE
    if d.health != 0:
        return _R_HEALTH
    if d.person_count < 0 or d.inference_us < 0:
        return _R_BAD_VALUE
    if d.person_count > p.sensor_max_persons[i] or d.person_count > MAX_PERSONS:
        return _R_TOO_MANY
    limit = p.max_coordinate_m
    for j in range(d.person_count):
        person = d.persons[j]
        if not (
            _finite_within(person.x_m, -limit, limit)
            and _finite_within(person.y_m, -limit, limit)
            and _finite_within(person.z_d_m, 0.0, p.max_z_d_m)
            and _finite_within(person.score, 0.0, 1.0)
        ):
            return _R_BAD_VALUE
    return s.hold_fault[i]


@njit(cache=False, inline="always")
def held_z_d_m(p, z_d: float, seen_ns: int, now_ns: int) -> float:
    """Z_d at `now_ns` of a person last seen at exposure `seen_ns` with `z_d`: grown at 1.6 m/s."""
    return z_d + p.human_speed_far_mps * (now_ns - seen_ns) / _NS_PER_S


@njit(cache=False)
def may_matter(p, x: float, y: float, z_d: float) -> bool:
    """Whether a disc (x, y, z_d) reaches a zone or the S_p region at any speed, hysteresis included."""
    h = p.release_hysteresis_m
    if p.ssm_enabled != 0:
        reach = p.hold_hazard_reach_m + z_d + h
        d2 = region_distance_squared_within(p.hazard_edges, p.hazard_n, p.hazard_bounds, x, y, reach)
        if d2 <= reach * reach:
            return True
    reach = z_d + h
    for k in range(p.n_zones):
        d2 = region_distance_squared_within(p.zone_edges[k], p.zone_n[k], p.zone_bounds[k], x, y, reach)
        if d2 <= reach * reach:
            return True
    return False


@njit(cache=False)
def hold_persons(p, s, detections, now_ns: int) -> None:
    """Update each sensor's table of seen and held persons from its new frame, if valid (module doc)."""
    if p.person_hold_ns <= 0:
        return
    speed = p.human_speed_far_mps
    for i in range(p.n_sensors):
        d = detections[i]
        t = d.t_received_ns
        if t == 0 or t == s.hold_rx_ns[i]:
            continue
        s.hold_fault[i] = _R_NONE
        if check_sensor(p, s, d, i, now_ns) != _R_NONE:
            continue  # faulty: this cycle stops; the table waits until the frame (or a later one) is valid
        s.hold_rx_ns[i] = t
        exposure = d.t_exposure_ns
        floor = p.sensor_z_d_m[i]
        capacity = min(p.sensor_max_persons[i], MAX_PERSONS) - d.person_count
        kept = 0
        for k in range(s.hold_count[i]):  # compacted in place: entry k moves to kept <= k
            x = s.hold_x_m[i, k]
            y = s.hold_y_m[i, k]
            z_d = s.hold_z_d_m[i, k]
            seen = s.hold_seen_ns[i, k]
            if now_ns - seen > p.person_hold_ns:
                continue
            gate = held_z_d_m(p, z_d, seen, exposure)
            accounted = False
            for j in range(d.person_count):
                person = d.persons[j]
                reach = gate + max(person.z_d_m, floor)
                dx = person.x_m - x
                dy = person.y_m - y
                if dx * dx + dy * dy <= reach * reach:
                    accounted = True
                    break
            if accounted or not may_matter(p, x, y, z_d + speed * p.person_hold_ns / _NS_PER_S):
                continue
            if kept >= capacity:
                s.hold_fault[i] = _R_TOO_MANY  # fail closed: a person it cannot hold stops the cell
                continue
            s.hold_x_m[i, kept] = x
            s.hold_y_m[i, kept] = y
            s.hold_z_d_m[i, kept] = z_d
            s.hold_seen_ns[i, kept] = seen
            kept += 1
        s.held_count[i] = kept
        n = kept
        for j in range(d.person_count):
            person = d.persons[j]
            s.hold_x_m[i, n] = person.x_m
            s.hold_y_m[i, n] = person.y_m
            # not max(): -0.0 against a 0.0 floor must give the same bits in the reference
            s.hold_z_d_m[i, n] = person.z_d_m if person.z_d_m > floor else floor
            s.hold_seen_ns[i, n] = exposure
            n += 1
        for k in range(n, s.hold_count[i]):  # unused entries are zero
            s.hold_x_m[i, k] = 0.0
            s.hold_y_m[i, k] = 0.0
            s.hold_z_d_m[i, k] = 0.0
            s.hold_seen_ns[i, k] = 0
        s.hold_count[i] = n


@njit(cache=False, inline="always")
def robot_state_origin_ns(p, r) -> int:
    """Our clock's time the robot state is at least as new as: its receive time, or with the robot on its
    own clock the send time of the command it echoes (its sender time field; one that echoes no command
    has no known age and counts as infinitely old)."""
    if p.robot_age_by_echo == 0:
        return r.t_received_ns
    if r.last_command_seq < 0:
        return _AGE_UNKNOWN_NS
    return r.t_sent_ns


@njit(cache=False)
def check_robot(p, r, now_ns: int) -> int:
    """The first fault of the robot's reported state, or Reason.NONE."""
    if r.t_received_ns == 0:
        return _R_ROBOT_NO_DATA
    if r.t_received_ns > now_ns:
        return _R_ROBOT_BAD
    if now_ns - robot_state_origin_ns(p, r) > p.robot_state_timeout_ns:
        return _R_ROBOT_STALE
    if not math.isfinite(r.speed_mps) or r.speed_mps < 0.0:
        return _R_ROBOT_BAD
    if r.at_rest != 0 and r.at_rest != 1:
        return _R_ROBOT_BAD
    if r.mode < 0 or r.mode >= _N_KINDS:
        return _R_ROBOT_BAD
    if r.speed_mps > p.robot_max_speed_mps:
        return _R_ROBOT_OVERSPEED
    return _R_NONE


@njit(cache=False, inline="always")
def grace_ns(p, speed: float) -> int:
    """After a lower limit: the configured fixed grace, or the one derived from the robot's `speed`."""
    if p.robot_overspeed_grace_ns > 0:
        return p.robot_overspeed_grace_ns
    stop_ns, _ = stopping_at(p, speed)
    return p.robot_obey_ns + stop_ns


@njit(cache=False)
def supervise_speed(p, s, r) -> int:
    """Hold a robot with a valid report to the speed it was allowed; ROBOT_OVERSPEED if it is faster.

    A pending lower limit takes over for reports received from its deadline on; until the command has
    taken effect (robot_obey_ns after it), a higher reported speed moves a derived deadline to that speed's
    stopping time (the robot may still have been speeding up towards the old limit).
    """
    if s.speed_target_mps < s.speed_allowed_mps:
        t = r.t_received_ns
        if t <= s.speed_since_ns + p.robot_obey_ns and r.speed_mps > s.speed_seen_mps:
            s.speed_seen_mps = r.speed_mps
            s.speed_deadline_ns = max(s.speed_deadline_ns, s.speed_since_ns + grace_ns(p, r.speed_mps))
        if t >= s.speed_deadline_ns:
            s.speed_allowed_mps = s.speed_target_mps
    if r.speed_mps > s.speed_allowed_mps + p.robot_speed_tolerance_mps:
        return _R_ROBOT_OVERSPEED
    return _R_NONE


@njit(cache=False)
def command_speed(p, s, limit: float, robot_speed: float, now_ns: int) -> None:
    """Record the speed limit just commanded: a higher one holds at once, a lower one after its grace.

    robot_speed is the reported speed when the report is valid, else the robot's maximum speed.
    """
    if limit >= s.speed_allowed_mps:
        s.speed_allowed_mps = limit  # raised (or kept): nothing pending
        s.speed_target_mps = limit
    elif limit >= s.speed_target_mps:
        s.speed_target_mps = limit  # still lower than allowed, but no lower than what is pending
    else:
        deadline = now_ns + grace_ns(p, robot_speed)
        if s.speed_target_mps < s.speed_allowed_mps:
            deadline = max(deadline, s.speed_deadline_ns)  # lowered again: the earlier grace still runs
        s.speed_target_mps = limit
        s.speed_since_ns = now_ns
        s.speed_seen_mps = robot_speed
        s.speed_deadline_ns = deadline


@njit(cache=False, inline="always")
def _write(
    c, kind: int, limit: float, category: int, reason: int, sensor: int, person: int, zone: int, now: int
) -> None:
    c.kind = kind
    c.speed_limit_mps = limit
    c.stop_category = category
    c.reason = reason
    c.reason_sensor = sensor
    c.reason_person = person
    c.reason_zone = zone
    c.t_ns = now


@njit(cache=False)
def step(params, state, detections, robot, reset_input: int, overrun: int, now_ns: int, command_out) -> None:
    """One safety cycle: update `state[0]` in place and write `command_out[0]` (see the module doc)."""
    p = params[0]
    s = state[0]
    r = robot[0]

    receive_frames(p, s, detections)
    hold_persons(p, s, detections, now_ns)

    # 1. faults, first found wins: executor, state, robot, sensors in index order
    fault = _R_NONE
    fault_sensor = -1
    state_valid = 0 <= s.state < _N_STATES
    robot_fault = check_robot(p, r, now_ns)
    if not state_valid or now_ns < s.last_now_ns:
        fault = _R_STATE_INVALID
    elif overrun != 0:
        fault = _R_OVERRUN
    elif robot_fault != _R_NONE:
        fault = robot_fault
    else:
        fault = supervise_speed(p, s, r)
        if fault == _R_NONE:
            for i in range(p.n_sensors):
                f = check_sensor(p, s, detections[i], i, now_ns)
                if f != _R_NONE:
                    fault = f
                    fault_sensor = i
                    break

    # 2./3. persons against separation and zones, strict and with release hysteresis. A finding is
    # (category or speed limit, reason, sensor, person, zone); a later one replaces it only when it is
    # strictly more restrictive, so ties go to the first found (sensor, then person, then SSM, then zones).
    stop = (NO_CATEGORY, _R_NONE, -1, -1, -1)
    hold_stop = stop
    slow = (np.inf, _R_NONE, -1, -1, -1)
    hold_slow = slow
    # A strict stop of the most restrictive category any source can give settles the cycle: nothing found
    # later can replace it (ties go to the first found), and with a strict stop nothing else is used.
    settled = False
    if fault == _R_NONE:
        h = p.release_hysteresis_m
        speed = r.speed_mps
        for i in range(p.n_sensors):
            if settled:
                break
            d = detections[i]
            seen_count = d.person_count
            for j in range(seen_count + s.held_count[i]):  # the frame's persons, then the held ones
                if settled:
                    break
                if j < seen_count:
                    person = d.persons[j]
                    x = person.x_m
                    y = person.y_m
                    z_d = max(person.z_d_m, p.sensor_z_d_m[i])
                    who = j
                else:
                    k = j - seen_count
                    seen_ns = s.hold_seen_ns[i, k]
                    if now_ns - seen_ns > p.person_hold_ns:
                        continue  # its hold has ended
                    x = s.hold_x_m[i, k]
                    y = s.hold_y_m[i, k]
                    z_d = held_z_d_m(p, s.hold_z_d_m[i, k], seen_ns, now_ns)
                    who = HELD_PERSON_BASE + k
                if p.ssm_enabled != 0:
                    sp = protective_separation_m(p, speed, z_d)
                    released = sp + h
                    d2 = region_distance_squared_within(
                        p.hazard_edges, p.hazard_n, p.hazard_bounds, x, y, released
                    )
                    if d2 <= released * released:
                        found = (int(p.ssm_stop_category), _R_SEPARATION, i, who, -1)
                        if d2 <= sp * sp and found[0] < stop[0]:
                            stop = found
                            settled = stop[0] == p.min_stop_category
                        hold_stop = found if found[0] < hold_stop[0] else hold_stop
                released = z_d + h
                for k in range(p.n_zones):
                    if settled:
                        break
                    d2 = region_distance_squared_within(
                        p.zone_edges[k], p.zone_n[k], p.zone_bounds[k], x, y, released
                    )
                    if not d2 <= released * released:
                        continue
                    strict = d2 <= z_d * z_d
                    if p.zone_kind[k] == ZONE_PROTECTIVE:
                        found = (int(p.zone_stop_category[k]), _R_PROTECTIVE, i, who, k)
                        if strict and found[0] < stop[0]:
                            stop = found
                            settled = stop[0] == p.min_stop_category
                        hold_stop = found if found[0] < hold_stop[0] else hold_stop
                    else:
                        limited = (float(p.zone_speed_limit_mps[k]), _R_WARNING, i, who, k)
                        if strict and limited[0] < slow[0]:
                            slow = limited
                        hold_slow = limited if limited[0] < hold_slow[0] else hold_slow

    # 4. event and permission -> transition table -> next state
    if fault != _R_NONE:
        event = _E_FAULT
    elif stop[1] != _R_NONE:
        event = _E_STOP
    elif slow[1] != _R_NONE:
        event = _E_SLOW_HOLD_STOP if hold_stop[1] != _R_NONE else _E_SLOW
    elif hold_stop[1] != _R_NONE:
        event = _E_HOLD_STOP
    elif hold_slow[1] != _R_NONE:
        event = _E_HOLD_SLOW
    else:
        event = _E_CLEAR
    reset_now = 1 if reset_input != 0 else 0
    if reset_now == 1 and s.reset_prev == 0:
        permission = _P_RESET
    elif p.restart_automatic != 0 and now_ns - s.state_entered_ns >= p.auto_restart_clear_ns:
        permission = _P_AUTO
    else:
        permission = _P_NONE
    nxt = _TABLE[s.state, event, permission] if state_valid else _S_FSTOPPED
    if nxt != s.state:
        s.state = nxt
        s.state_entered_ns = now_ns
    s.reset_prev = reset_now
    if now_ns > s.last_now_ns:
        s.last_now_ns = now_ns
    s.cycles += 1

    # 5. the command of the new state
    c = command_out[0]
    fault_cat = min(s.latched_category, p.fault_stop_category)
    if nxt == _S_RUNNING:
        s.latched_category = NO_CATEGORY
        _write(c, _RUN, p.robot_max_speed_mps, 0, _R_NONE, -1, -1, -1, now_ns)
    elif nxt == _S_SLOWED:
        s.latched_category = NO_CATEGORY
        if hold_slow[1] != _R_NONE:
            s.slow_limit_mps = hold_slow[0]
            _write(c, _SLOW, hold_slow[0], 0, hold_slow[1], hold_slow[2], hold_slow[3], hold_slow[4], now_ns)
        else:  # held by a stop criterion's hysteresis band: keep the last limit
            _write(
                c, _SLOW, s.slow_limit_mps, 0, hold_stop[1], hold_stop[2], hold_stop[3], hold_stop[4], now_ns
            )
    elif nxt == _S_PSTOPPED:
        cause = stop if stop[1] != _R_NONE else hold_stop
        cat = min(s.latched_category, cause[0])
        s.latched_category = cat
        _write(c, _PSTOP, 0.0, cat, cause[1], cause[2], cause[3], cause[4], now_ns)
    elif nxt == _S_AWAITING:
        cat = s.latched_category if s.latched_category != NO_CATEGORY else fault_cat
        s.latched_category = cat
        _write(c, _PSTOP, 0.0, cat, _R_INTERLOCK, -1, -1, -1, now_ns)
    elif nxt == _S_FSTOPPED:
        s.latched_category = fault_cat
        _write(c, _FSTOP, 0.0, fault_cat, fault, fault_sensor, -1, -1, now_ns)
    elif nxt == _S_AWAITING_FAULT:
        s.latched_category = fault_cat
        _write(c, _FSTOP, 0.0, fault_cat, _R_INTERLOCK, -1, -1, -1, now_ns)
    else:  # NOT_ARMED
        s.latched_category = fault_cat
        if fault != _R_NONE:
            _write(c, _FSTOP, 0.0, fault_cat, fault, fault_sensor, -1, -1, now_ns)
        else:
            _write(c, _FSTOP, 0.0, fault_cat, _R_NOT_ARMED, -1, -1, -1, now_ns)

    # 6. speed supervision of what was just commanded
    robot_speed = r.speed_mps if robot_fault == _R_NONE else p.robot_max_speed_mps
    command_speed(p, s, c.speed_limit_mps, robot_speed, now_ns)


@njit(cache=False, nogil=True)
def apply_link_fault(params, command_out, link_fault: int) -> None:
    """A link error turns this cycle's command into a FAULT_STOP naming it (never weakening a stop).

    Executors whose step takes no link-fault input call it after the step (safety.executor.step_caller,
    safety.cycle.hard_loop), so the rule has one home that replay and tests share.
    """
    c = command_out[0]
    category = np.int32(params[0].fault_stop_category)
    if c.kind >= _PSTOP:
        category = min(category, np.int32(c.stop_category))
    c.kind = _FSTOP
    c.speed_limit_mps = 0.0
    c.stop_category = category
    c.reason = link_fault
    c.reason_sensor = -1
    c.reason_person = -1
    c.reason_zone = -1


def check_buffers(
    params: np.ndarray, state: np.ndarray, detections: np.ndarray, robot: np.ndarray, command_out: np.ndarray
) -> None:
    """Raise ValueError unless the arrays have the dtypes and shapes the step expects."""
    from cobotguard.safety.params import PARAMS_DTYPE

    expected = (
        ("params", params, PARAMS_DTYPE, 1),
        ("state", state, STATE_DTYPE, 1),
        ("detections", detections, DETECTION_DTYPE, MAX_SENSORS),
        ("robot", robot, ROBOT_STATE_DTYPE, 1),
        ("command_out", command_out, COMMAND_DTYPE, 1),
    )
    for name, array, dtype, length in expected:
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != (length,):
            got = f"{getattr(array, 'dtype', type(array))} {getattr(array, 'shape', '')}"
            raise ValueError(f"{name}: expected a ({length},) array of its record dtype, got {got}")


def step_py(
    params: np.ndarray,
    state: np.ndarray,
    detections: np.ndarray,
    robot: np.ndarray,
    reset_input: int,
    overrun: int,
    now_ns: int,
) -> np.ndarray:
    """Checked Python entry point (replay, HIL, tests): run one step and return a copy of the command."""
    command = np.zeros(1, dtype=COMMAND_DTYPE)
    check_buffers(params, state, detections, robot, command)
    step(params, state, detections, robot, int(reset_input), int(overrun), int(now_ns), command)
    return command


def warm_up(params: np.ndarray) -> None:
    """Compile the step and run every branch on scratch buffers, so nothing compiles after arming."""
    state = new_state(params)
    command = np.zeros(1, dtype=COMMAND_DTYPE)
    for detections, robot, reset_input, overrun, now_ns in warm_up_inputs(params):
        step(params, state, detections, robot, reset_input, overrun, now_ns, command)
