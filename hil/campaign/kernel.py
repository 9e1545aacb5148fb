"""One approach on the simulated clock, compiled: sensors, a walking person, the real step, the robot.

The same discrete-event model as `hil.sim.CellSim.run` (tests/test_campaign.py checks they agree), with
no Python object per cycle and no allocation per approach (a worker's buffers: WORK_DTYPE), so that a
campaign runs thousands of approaches per second per core: frames exposed at the sensor's phase and
period, received after a latency up to the declared worst case (FIFO per sensor), missed at most
`tolerated` in a row; the controller released on the tick, a late cycle skipping to the latest passed
release; the robot keeping each lowered limit from when it reaches it, braking after the link delay and
its stop-input reaction and at rest after the stopping time at its speed. Faults are `hil.sim.Fault`s,
acting on frames exposed (or cycles run) from their onset on.

Unlike `CellSim`, a sensor reports the person only inside its covered floor area (where it sees the
smallest declared person), and the run goes on after the robot is at rest, until the person's last move
plus a tail, so that a restart without a reset shows. Times in the results are int64 ns from the run
start; -1: never.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cobotguard.hil.campaign.draw import Pattern
from cobotguard.hil.sim import Fault
from cobotguard.safety.geometry import distance_to_region, region_distance_squared
from cobotguard.safety.params import ZONE_PROTECTIVE
from cobotguard.safety.reasons import CommandKind, HealthFlag
from cobotguard.safety.records import FRAME_COUNTER_MODULO, MAX_SENSORS
from cobotguard.safety.step import protective_separation_m, step, stopping_at
from cobotguard.safety.warmup import T0_NS

MAX_SEGMENTS = 4
LOG_COLUMNS = 7  # see simulate()
QUEUE = 64  # frames in flight per sensor, and lowered limits on their way to the robot

# hil.sim.Fault as codes for the compiled simulation
FAULT_CODES = {fault: code for code, fault in enumerate(Fault)}
_F_SILENT = FAULT_CODES[Fault.SENSOR_SILENT]
_F_LATE = FAULT_CODES[Fault.FRAMES_LATE]
_F_JUMP = FAULT_CODES[Fault.COUNTER_JUMP]
_F_CORRUPT = FAULT_CODES[Fault.CORRUPT_METADATA]
_F_OVERRUN = FAULT_CODES[Fault.LOOP_OVERRUN]
_F_ROBOT_SILENT = FAULT_CODES[Fault.ROBOT_SILENT]

_RUN = int(CommandKind.RUN)
_SLOW = int(CommandKind.SLOW)
_PSTOP = int(CommandKind.PROTECTIVE_STOP)
_LENS = int(HealthFlag.LENS_COVERED)
_WALK, _RUN_P, _GO, _LEAVE, _EDGE = (int(p) for p in Pattern)

RESULT_DTYPE = np.dtype(
    [
        ("stop_ns", np.int64),  # first stop command written after arming
        ("stop_kind", np.int32),
        ("stop_reason", np.int32),
        ("stop_speed_mps", np.float64),  # the speed the robot reported to that step
        ("brake_ns", np.int64),
        ("rest_ns", np.int64),
        ("restart_ns", np.int64),  # first RUN or SLOW written after the stop (no reset is ever given)
        ("within_sp_ns", np.int64),  # true gap first <= S_p (at the speed the robot moved with then) - Z_d
        ("contact_ns", np.int64),  # true gap first <= C + Z_r: the person's reach meets the hazard
        ("min_gap_m", np.float64),  # smallest true gap to the hazard region while the robot moved
        ("stop_free", np.int32),  # 1: at the stop the person had never come near enough for one
        ("fault_at_ns", np.int64),  # onset of the injected fault; -1: none
        ("fault_watchdog_ns", np.int64),
        ("end_ns", np.int64),  # simulated until
        ("cycles", np.int64),
    ]
)


_NO_JUMP = -(1 << 40)  # COUNTER_JUMP: the sensor's counter offset is not chosen yet

# One worker's buffers for simulate(), preallocated (campaign.runner.Scratch) and reused by every approach.
WORK_DTYPE = np.dtype(
    [
        ("line", np.float64, (6,)),  # see resolve_line
        ("seg_t", np.int64, (MAX_SEGMENTS,)),  # the person's progress in pieces, see _segments
        ("seg_s", np.float64, (MAX_SEGMENTS,)),
        ("seg_v", np.float64, (MAX_SEGMENTS,)),
        ("pend_exp", np.int64, (MAX_SENSORS, QUEUE)),  # frames in flight per sensor: exposure,
        ("pend_rx", np.int64, (MAX_SENSORS, QUEUE)),  # reception,
        ("pend_k", np.int64, (MAX_SENSORS, QUEUE)),  # frame number,
        ("pend_beyond", np.uint8, (MAX_SENSORS, QUEUE)),  # exposed after the fault's onset
        ("head", np.int64, (MAX_SENSORS,)),
        ("tail", np.int64, (MAX_SENSORS,)),
        ("next_frame", np.int64, (MAX_SENSORS,)),
        ("miss_run", np.int64, (MAX_SENSORS,)),
        ("jump", np.int64, (MAX_SENSORS,)),
        ("last_counter", np.int64, (MAX_SENSORS,)),
        ("low_at", np.int64, (QUEUE,)),  # lowered limits on their way to the robot
        ("low_limit", np.float64, (QUEUE,)),
        ("speed_t", np.int64, (QUEUE,)),
        ("speed_v", np.float64, (QUEUE,)),
    ]
)


@njit(cache=False, inline="always")
def _uniform(key, stream: int, a: int, b: int) -> float:
    """A uniform in [0, 1) from (key, stream, a, b): splitmix64's finaliser on a mixed counter."""
    z = (
        key
        + np.uint64(stream + 1) * np.uint64(0x9E3779B97F4A7C15)
        + np.uint64(a + 1) * np.uint64(0xD1B54A32D192ED03)
        + np.uint64(b + 1) * np.uint64(0x8CB92BA72F3D8DD7)
    )
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=False)
def _stop_free(p, f, x: float, y: float, extra: float) -> bool:
    """Whether a person whose true position is (x, y) is farther than `extra` from any stop's reach."""
    reach = f.free_hazard_m + extra
    if p.ssm_enabled != 0 and distance_to_region(p.hazard_vertices, p.hazard_n, x, y) <= reach:
        return False
    for k in range(p.n_zones):
        near = distance_to_region(p.zone_vertices[k], p.zone_n[k], x, y) <= f.free_zone_m + extra
        if p.zone_kind[k] == ZONE_PROTECTIVE and near:
            return False
    return True


@njit(cache=False)
def resolve_line(p, f, a, line) -> None:
    """line = (start x, start y, unit direction x, y, length to the aim point, EDGE standing progress)."""
    ux = math.cos(math.radians(a.angle_deg))
    uy = math.sin(math.radians(a.angle_deg))
    extra = p.release_hysteresis_m + a.start_margin_m
    hi = 0.05
    while hi < 100.0 and not _stop_free(p, f, a.aim_x_m + ux * hi, a.aim_y_m + uy * hi, extra):
        hi += 0.05
    lo = max(hi - 0.05, 0.0)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _stop_free(p, f, a.aim_x_m + ux * mid, a.aim_y_m + uy * mid, extra):
            hi = mid
        else:
            lo = mid
    line[0] = a.aim_x_m + ux * hi
    line[1] = a.aim_y_m + uy * hi
    line[2] = -ux
    line[3] = -uy
    line[4] = hi
    # EDGE: the farthest progress at which the person is still edge_margin outside every stop's reach
    lo, hi2 = 0.0, hi
    if not _stop_free(p, f, line[0], line[1], a.edge_margin_m):
        line[5] = 0.0
        return
    for _ in range(40):
        mid = 0.5 * (lo + hi2)
        if _stop_free(p, f, line[0] - ux * mid, line[1] - uy * mid, a.edge_margin_m):
            lo = mid
        else:
            hi2 = mid
    line[5] = lo


@njit(cache=False)
def _segments(a, line, seg_t, seg_s, seg_v) -> int:
    """The person's progress along the line as linear pieces: returns their count; the last one lasts."""
    v = a.speed_mps
    length = line[4]
    pattern = a.pattern
    seg_t[0] = 0
    seg_s[0] = 0.0
    seg_v[0] = v
    if pattern in (_WALK, _RUN_P):
        seg_t[1] = np.int64(length / v * 1e9)
        seg_s[1] = length
        seg_v[1] = 0.0
        return 2
    if pattern == _EDGE:
        seg_t[1] = np.int64(line[5] / v * 1e9)
        seg_s[1] = line[5]
        seg_v[1] = 0.0
        return 2
    pause_s = a.pause_fraction * length
    seg_t[1] = np.int64(pause_s / v * 1e9)
    seg_s[1] = pause_s
    seg_v[1] = 0.0
    seg_t[2] = seg_t[1] + a.pause_ns
    seg_s[2] = pause_s
    if pattern == _GO:
        seg_v[2] = v
        seg_t[3] = seg_t[2] + np.int64((length - pause_s) / v * 1e9)
        seg_s[3] = length
    else:  # _LEAVE: back out the same way
        seg_v[2] = -v
        seg_t[3] = seg_t[2] + seg_t[1]
        seg_s[3] = 0.0
    seg_v[3] = 0.0
    return 4


@njit(cache=False, inline="always")
def _progress(seg_t, seg_s, seg_v, n: int, t: int) -> float:
    if t <= 0:
        return 0.0
    k = n - 1
    while k > 0 and seg_t[k] > t:
        k -= 1
    return seg_s[k] + seg_v[k] * (t - seg_t[k]) * 1e-9


@njit(cache=False, inline="always")
def _gap(p, line, s: float) -> float:
    return distance_to_region(p.hazard_vertices, p.hazard_n, line[0] + line[2] * s, line[1] + line[3] * s)


@njit(cache=False)
def _first_within(p, line, seg_t, seg_s, seg_v, n: int, t_from: int, t_to: int, gap: float) -> int:
    """First time (ns) in [t_from, t_to] the true gap to the hazard region is <= gap; -1 if never.

    Walking in, the gap to a convex hazard region falls monotonically (the aim point is inside), so
    each piece walking in is bisected; standing or leaving, the piece's start decides.
    """
    for k in range(n):
        t0 = max(seg_t[k], t_from)
        t1 = min(seg_t[k + 1] if k + 1 < n else t_to, t_to)
        if t0 > t1:
            continue
        if _gap(p, line, _progress(seg_t, seg_s, seg_v, n, t0)) <= gap:
            return t0
        if seg_v[k] <= 0.0 or _gap(p, line, _progress(seg_t, seg_s, seg_v, n, t1)) > gap:
            continue
        lo, hi = t0, t1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _gap(p, line, _progress(seg_t, seg_s, seg_v, n, mid)) <= gap:
                hi = mid
            else:
                lo = mid
        return hi
    return -1


@njit(cache=False)
def _within_sp(p, line, seg_t, seg_s, seg_v, n: int, speed_t, speed_v, n_speeds: int, end: int) -> int:
    """First time the true gap falls to S_p at the speed the robot moves with then, without Z_d.

    S_p(v, Z_d) - Z_d: the measurement may place the person up to Z_d farther away. The robot's speed
    is piecewise constant (speed_t, speed_v: from when each speed holds).
    """
    z_d = 0.0
    for i in range(p.n_sensors):
        z_d = max(z_d, p.sensor_z_d_m[i])
    for k in range(n_speeds):
        t_to = speed_t[k + 1] if k + 1 < n_speeds else end
        gap = protective_separation_m(p, speed_v[k], z_d) - z_d
        found = _first_within(p, line, seg_t, seg_s, seg_v, n, speed_t[k], t_to, gap)
        if found >= 0:
            return found
    return -1


@njit(cache=False)
def _farthest(seg_t, seg_s, seg_v, n: int, end: int) -> float:
    """The farthest progress along the line in [0, end]."""
    best = _progress(seg_t, seg_s, seg_v, n, end)
    for k in range(n):
        if seg_t[k] <= end:
            best = max(best, seg_s[k])
    return best


@njit(cache=False)
def _deliver(
    p, a, f, detections, i: int, line, seg_t, seg_s, seg_v, n: int, exposure: int, received: int,
    k: int, beyond: bool, fault: int, variant: int, start: int, jump, last_counter,
) -> None:
    """Write sensor i's frame k (hil.sim.CellSim._deliver's rules) into detections[i]."""
    d = detections[i]
    counter = (a.counter_start + k) % FRAME_COUNTER_MODULO
    z_d = p.sensor_z_d_m[i]
    count = 0
    x = 0.0
    y = 0.0
    if start >= 0:
        s = _progress(seg_t, seg_s, seg_v, n, exposure - start) if exposure >= start else 0.0
        e = a.error_fraction * z_d if exposure >= start else 0.0
        # seen where the sensor sees the smallest declared person; the measurement is off by up to Z_d
        # away from the hazard region (the worst case)
        tx = line[0] + line[2] * s
        ty = line[1] + line[3] * s
        if region_distance_squared(f.cover_vertices[i], f.cover_n[i], tx, ty) == 0.0:
            x = tx - line[2] * e
            y = ty - line[3] * e
            count = 1
    health = 0
    index = i
    if beyond and fault == _F_JUMP:
        if jump[i] == _NO_JUMP:
            steps = (0, -1, -4, 2 + np.int64(p.sensor_tolerated_missed[i]), 100, 128, 200)
            target = last_counter[i] + steps[variant % 7]
            jump[i] = target - counter
        counter = (counter + jump[i]) % FRAME_COUNTER_MODULO
    last_counter[i] = counter
    if beyond and fault == _F_CORRUPT:
        v = variant % 4
        if v == 0:
            x = np.nan
            y = 0.0
            count = 1
        elif v == 1:
            health = _LENS
        elif v == 2:
            count = p.sensor_max_persons[i] + 1
        else:
            index = (i + 1) % MAX_SENSORS
    d.sensor_index = index
    d.frame_counter = counter
    d.person_count = count
    d.health = health
    d.inference_us = 3100
    d.t_exposure_ns = exposure
    d.t_inference_done_ns = exposure + (received - exposure) // 2
    d.t_sent_ns = received
    d.t_received_ns = received
    for j in range(min(max(count, 1), d.persons.shape[0])):
        d.persons[j].x_m = x if j == 0 else 0.0
        d.persons[j].y_m = y if j == 0 else 0.0
        d.persons[j].z_d_m = z_d if j == 0 else 0.0
        d.persons[j].score = 0.9 if j == 0 else 0.0


@njit(cache=False)
def _speed_change(speed_t, speed_v, n_speeds: int, t: int, a, limit: float) -> int:
    """Note the robot's speed from t on (min of its programmed speed and the limit it keeps)."""
    v = min(a.robot_speed_mps, limit)
    if n_speeds > 0 and speed_v[n_speeds - 1] == v:
        return n_speeds
    if n_speeds >= speed_t.shape[0]:
        raise RuntimeError("campaign simulation: too many speed changes")
    if n_speeds > 0 and t <= speed_t[n_speeds - 1]:
        n_speeds -= 1  # replaced at the same instant
    speed_t[n_speeds] = max(t, 0)
    speed_v[n_speeds] = v
    return n_speeds + 1


@njit(cache=False)
def simulate(
    params, facts, approaches, j: int, state, template, detections, robot, command, work, results, log,
    log_count,
) -> None:
    """Run approaches[j] and write results[j]; state/detections/robot/command/work are scratch buffers.

    `template` is a fresh controller state (safety.step.new_state) copied into `state` first; the
    detection buffer is reset here. Each command change is logged while `log` (int64, LOG_COLUMNS
    wide) has room: written time from the run start, kind, reason, sensor, person, the true gap in um;
    log_count[0] counts them.
    """
    p = params[0]
    f = facts[0]
    a = approaches[j]
    out = results[j]
    state[0] = template[0]
    n_sensors = p.n_sensors
    for i in range(MAX_SENSORS):
        detections[i].sensor_index = -1
        detections[i].frame_counter = -1
        detections[i].person_count = 0
        detections[i].t_received_ns = 0
        detections[i].t_exposure_ns = 0
    w = work[0]
    line = w.line
    seg_t = w.seg_t
    seg_s = w.seg_s
    seg_v = w.seg_v
    resolve_line(p, f, a, line)
    n = _segments(a, line, seg_t, seg_s, seg_v)
    end = seg_t[n - 1] + f.tail_ns
    fault = -1
    variant = 0
    fault_at = -1
    if a.fault >= 0:
        fault = f.fault_kind[a.fault]
        variant = f.fault_variant[a.fault]
        fault_at = a.fault_at_ns
    cycle_ns = p.cycle_period_ns
    worst_step = p.worst_step_ns
    arm_at = T0_NS + f.arm_after_ns
    link_delay = np.int64(f.link_ns * a.link_delay_fraction)
    # queues: only entries between head and tail are read, so they need no clearing
    pend_exp = w.pend_exp
    pend_rx = w.pend_rx
    pend_k = w.pend_k
    pend_beyond = w.pend_beyond
    head = w.head
    tail = w.tail
    next_frame = w.next_frame
    miss_run = w.miss_run
    jump = w.jump
    last_counter = w.last_counter
    for i in range(MAX_SENSORS):
        head[i] = 0
        tail[i] = 0
        next_frame[i] = 0
        miss_run[i] = 0
        jump[i] = _NO_JUMP
        last_counter[i] = 0
    low_at = w.low_at
    low_limit = w.low_limit
    low_head = 0
    low_tail = 0
    speed_t = w.speed_t  # the robot's speed over the run: from when each holds (n_speeds of them)
    speed_v = w.speed_v
    n_speeds = 0
    limit_at_robot = np.inf
    last_limit = np.inf
    last_kind = -1
    armed = False
    start = -1
    stop_ns = -1
    rest_ns = -1
    out.stop_ns = -1
    out.stop_kind = -1
    out.stop_reason = -1
    out.stop_speed_mps = 0.0
    out.brake_ns = -1
    out.rest_ns = -1
    out.restart_ns = -1
    t = T0_NS
    release = T0_NS
    cycle = 0
    reset_high_until = 0
    while True:
        if armed and t > start + end:
            break
        # after the robot is at rest only a person leaving can tempt a restart: a tail is enough
        if rest_ns >= 0 and a.pattern != _LEAVE and t > rest_ns + f.tail_ns:
            break
        rel = t - start if armed else -1
        fault_on = fault >= 0 and armed and rel >= fault_at
        for i in range(n_sensors):
            period = f.frame_period_ns
            while True:
                k = next_frame[i]
                exposure = T0_NS + a.phase_ns[i] + k * period
                if exposure > t:
                    break
                next_frame[i] += 1
                latency = 0
                if a.latency_fraction > 0.0:
                    jitter = 1.0 - 0.5 * _uniform(a.noise_key, 0, i, k)
                    latency = np.int64(p.sensor_max_latency_ns[i] * min(1.0, a.latency_fraction * jitter))
                beyond = fault >= 0 and armed and exposure - start >= fault_at
                if beyond and fault == _F_SILENT:
                    continue
                if beyond and fault == _F_LATE:
                    latency = p.sensor_max_latency_ns[i] + 1 + variant * 1_000_000
                may_miss = not beyond and miss_run[i] < p.sensor_tolerated_missed[i]
                if may_miss and _uniform(a.noise_key, 1, i, k) < a.miss_probability:
                    miss_run[i] += 1
                    continue
                miss_run[i] = 0
                if tail[i] - head[i] >= QUEUE:
                    raise RuntimeError("campaign simulation: too many frames in flight")
                q = tail[i] % QUEUE
                pend_exp[i, q] = exposure
                pend_rx[i, q] = exposure + latency
                pend_k[i, q] = k
                pend_beyond[i, q] = 1 if beyond else 0
                tail[i] += 1
            while head[i] < tail[i] and pend_rx[i, head[i] % QUEUE] <= t:
                q = head[i] % QUEUE
                head[i] += 1
                _deliver(
                    p, a, f, detections, i, line, seg_t, seg_s, seg_v, n, pend_exp[i, q], pend_rx[i, q],
                    pend_k[i, q], pend_beyond[i, q] != 0, fault, variant, start, jump, last_counter,
                )
        while low_head < low_tail and low_at[low_head % QUEUE] <= t:
            limit_at_robot = low_limit[low_head % QUEUE]
            since = low_at[low_head % QUEUE] - start
            n_speeds = _speed_change(speed_t, speed_v, n_speeds, since, a, limit_at_robot)
            low_head += 1
        robot_speed = min(a.robot_speed_mps, limit_at_robot) if armed else 0.0
        if armed and n_speeds == 0:
            n_speeds = _speed_change(speed_t, speed_v, 0, 0, a, limit_at_robot)
        if not (fault_on and fault == _F_ROBOT_SILENT):
            at_rest = rest_ns >= 0 and t >= rest_ns
            r = robot[0]
            r.speed_mps = 0.0 if at_rest else robot_speed
            r.mode = 0
            r.at_rest = 1 if at_rest else 0
            r.t_sent_ns = t - cycle_ns // 2
            r.t_received_ns = t - cycle_ns // 2
        reset = 1 if t < reset_high_until else 0
        if not armed and t >= arm_at and reset_high_until == 0:
            reset_high_until = t + 3 * cycle_ns
            reset = 1
        overrun = 1 if fault_on and fault == _F_OVERRUN else 0
        step(params, state, detections, robot, reset, overrun, t, command)
        c = command[0]
        kind = c.kind
        fraction = a.step_fraction
        if a.step_jitter != 0:
            fraction *= _uniform(a.noise_key, 2, 0, cycle)
        written = max(release + np.int64(worst_step * fraction), t)
        if kind != last_kind:
            if log_count[0] < log.shape[0]:
                row = log[log_count[0]]
                row[0] = written - start if armed else written - T0_NS
                row[1] = kind
                row[2] = c.reason
                row[3] = c.reason_sensor
                row[4] = c.reason_person
                s_now = _progress(seg_t, seg_s, seg_v, n, written - start) if armed else 0.0
                row[5] = np.int64(round(_gap(p, line, s_now) * 1e6))
                row[6] = 1 if armed else 0
                log_count[0] += 1
            if stop_ns >= 0 and kind <= _SLOW and out.restart_ns < 0:
                out.restart_ns = written - start
            last_kind = kind
        limit = c.speed_limit_mps
        if armed and kind <= _SLOW and stop_ns < 0 and limit != last_limit:
            if limit > last_limit:
                low_head = low_tail  # a higher limit the robot may use at once
                limit_at_robot = limit
                n_speeds = _speed_change(speed_t, speed_v, n_speeds, written - start, a, limit_at_robot)
            else:
                if low_tail - low_head >= QUEUE:
                    raise RuntimeError("campaign simulation: too many lowered limits in flight")
                low_at[low_tail % QUEUE] = written + link_delay + f.robot_reaction_ns
                low_limit[low_tail % QUEUE] = limit
                low_tail += 1
        last_limit = limit
        if not armed:
            if kind in (_RUN, _SLOW):
                armed = True
                start = t + cycle_ns
        elif stop_ns < 0 and kind >= _PSTOP:
            stop_ns = written
            out.stop_ns = written - start
            out.stop_kind = kind
            out.stop_reason = c.reason
            out.stop_speed_mps = robot[0].speed_mps
            brake = written + link_delay + f.robot_reaction_ns
            out.brake_ns = brake - start
            rest_ns = brake
            if robot_speed > 0.0:
                stop_time, _ = stopping_at(p, robot_speed)
                rest_ns = brake + stop_time
            out.rest_ns = rest_ns - start
        if out.restart_ns >= 0:
            break
        if not armed and t > arm_at + 100 * cycle_ns:
            raise RuntimeError("campaign simulation: the controller did not arm")
        cycle += 1
        release += cycle_ns
        passed = (written - release) // cycle_ns
        if passed > 0:
            release += passed * cycle_ns
        t = max(release, written)
    sim_end = t - start
    out.end_ns = sim_end
    out.cycles = cycle
    out.within_sp_ns = _within_sp(p, line, seg_t, seg_s, seg_v, n, speed_t, speed_v, n_speeds, sim_end)
    reach = p.intrusion_m + p.robot_z_r_m
    out.contact_ns = _first_within(p, line, seg_t, seg_s, seg_v, n, 0, sim_end, reach)
    moving_until = out.rest_ns if stop_ns >= 0 else sim_end
    out.min_gap_m = _gap(p, line, _farthest(seg_t, seg_s, seg_v, n, moving_until))
    out.stop_free = 0
    if stop_ns >= 0:
        s = _farthest(seg_t, seg_s, seg_v, n, out.stop_ns)
        out.stop_free = 1 if _stop_free(p, f, line[0] + line[2] * s, line[1] + line[3] * s, 0.0) else 0
    out.fault_at_ns = fault_at
    out.fault_watchdog_ns = f.fault_watchdog_ns[a.fault] if a.fault >= 0 else 0


@njit(cache=False)
def simulate_all(
    params, facts, approaches, state, template, detections, robot, command, work, results, log, log_count
) -> None:
    """simulate() every approach in order (`log` may have no rows: nothing is logged then)."""
    for j in range(approaches.shape[0]):
        simulate(
            params, facts, approaches, j, state, template, detections, robot, command, work, results, log,
            log_count,
        )


