"""Worst-case timing properties on a simulated clock (discrete-event, no wall clock).

Inside the configuration's assumptions (a person approaching from any angle at up to the ISO 13855 speed,
frame latency up to the declared worst case, up to the tolerated missed frames, link and step times up to
their declared worst case, also a worst step longer than the cycle with late cycles that skip releases,
Z_d measurement error away from the hazard), the stop is commanded and braking
starts no later than T_r after the person first comes within S_p, and the emulated robot is at rest before
the person reaches the hazard region; the same holds with a detector that misses the person in frames,
when the controller holds a missed person (controller.person_hold_ms) for as long as the misses last.
Beyond the assumptions (sensor silent, late frames, counter jumps, corrupt metadata, loop overrun, robot
silent) a fault stop is commanded within the watchdog time. Inside the assumptions, nothing stops a cell
where nobody comes near.

The robot link with the robot on its own clock (robot.clock = "own"): whatever the robot clock's offset
and a drift within +-100 ppm, with every delay within its declared worst case, the controller accepts every
state, never ages one younger than it is, and its newest state never exceeds the staleness limit; a state
later than the echo limit is an unacceptable delay.
"""

from dataclasses import replace
from functools import cache
from pathlib import Path

from hypothesis import example, given, note
from hypothesis import strategies as st

from cobotguard.hil.sim import CellSim, Fault, Run, Walk, example_config, watchdog_ns
from cobotguard.safety.budget import separation_required_m
from cobotguard.safety.config import CellConfig, stepped_on_the_tick
from cobotguard.safety.config_load import config_from_dict, load_config
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.timing import frame_period_ns, sensor_latency_ns

Z_D = 0.1  # the example sensors' declared Z_d (persons report the same)


DEFAULT_CELL = Path(__file__).resolve().parents[1] / "hil" / "defaults" / "cell.toml"


# None: the cell's own worst step (0.2 of 1 ms in the example cell, 10 ms on a 2 ms cycle in the default
# cell); the others are longer than either cycle, so late cycles overlap releases and skip them
WORST_STEPS_MS = (None, 2.5, 4.5)


@cache
def cell(n_sensors: int, tolerated: int, zones: bool, worst_step_ms: float | None = None) -> CellSim:
    """The example cell (n_sensors >= 1), or the default demo cell (n_sensors == 0)."""
    if n_sensors == 0:
        cfg = stepped_on_the_tick(load_config(DEFAULT_CELL))  # the simulator models the tick executor
        if worst_step_ms is not None:
            raw = cfg.model_dump(mode="python")
            raw["controller"]["worst_step_ms"] = worst_step_ms
            cfg = config_from_dict(raw, f"default cell, worst step {worst_step_ms} ms")
    else:
        steps = {} if worst_step_ms is None else {"worst_step_ms": worst_step_ms}
        cfg = example_config(n_sensors=n_sensors, tolerated_missed_frames=tolerated, zones=zones, **steps)
    return CellSim(cfg, build_params(cfg))


def step_fractions():
    """Per-cycle step times (fractions of the worst step): quick and worst-case cycles mixed."""
    return st.lists(st.sampled_from([0.0, 0.1, 1.0]) | st.floats(0.0, 1.0), max_size=6).map(tuple)


@st.composite
def missed_frames(draw, tolerated: int, horizon: int = 120):
    """Frame numbers that never arrive, never more than `tolerated` in a row."""
    pattern = draw(st.lists(st.booleans(), min_size=horizon, max_size=horizon))
    missed, run = [], 0
    for k, miss in enumerate(pattern):
        if miss and run < tolerated:
            missed.append(k)
            run += 1
        else:
            run = 0
    return tuple(missed)


@st.composite
def approaches(draw, missing=False):
    """A cell and a walk-in. missing: cells where holding matters, with a warning zone (whose slow-down a
    missed person would release) and frames the sensor may miss."""
    n_sensors = draw(st.integers(0, 2))  # 0: the default demo cell
    tolerated = draw(st.integers(1 if missing else 0, 3)) if n_sensors else 0
    zones = draw(st.booleans()) if n_sensors and not missing else True
    worst_step_ms = draw(st.sampled_from(WORST_STEPS_MS))
    sim = cell(n_sensors, tolerated, zones, worst_step_ms)
    p = sim.p
    speed = draw(st.floats(0.05, float(p["robot_max_speed_mps"])))
    sp = separation_required_m(sim.cfg, speed, z_d_m=Z_D)
    human = 2.0 if sp <= 0.5 else 1.6  # the ISO 13855 speed the separation was computed for
    walk = Walk(
        angle_deg=draw(st.floats(0.0, 360.0)),
        speed_mps=draw(st.floats(0.2, human)),
        start_gap_m=sp + float(p["release_hysteresis_m"]) + draw(st.floats(0.05, 0.6)),
        aim_offset_m=(draw(st.floats(-0.8, 0.8)), draw(st.floats(-0.8, 0.8))),
        error_fraction=draw(st.floats(0.0, 1.0)),
    )
    period = frame_period_ns(next(iter(sim.cfg.sensors.values())).frame_rate_hz)
    run = Run(
        robot_speed_mps=speed,
        walk=walk,
        sensor_phase_ns=tuple(draw(st.integers(0, period - 1)) for _ in range(int(p["n_sensors"]))),
        latency_fraction=draw(st.floats(0.0, 1.0)),
        missed=draw(missed_frames(int(p["sensor_tolerated_missed"][0]))),
        link_delay_fraction=draw(st.floats(0.0, 1.0)),
        step_fraction=draw(st.floats(0.0, 1.0)),
        step_fractions=draw(step_fractions()),
        seed=draw(st.integers(0, 2**16)),
    )
    return (n_sensors, tolerated, zones, worst_step_ms), run


@given(approaches())
def test_stop_within_reaction_time_and_robot_at_rest_before_the_person_arrives(case):
    key, run = case
    check_stopped_in_time(cell(*key), run)


def check_stopped_in_time(sim: CellSim, run: Run) -> None:
    """The stop is commanded and braking starts within T_r of the person coming within S_p; at rest before
    the person reaches the hazard region."""
    p = sim.p
    t_r = int(p["reaction_time_ns"])
    walk = run.walk
    reach = sim.first_time_within(walk, sim.cfg.separation.intrusion_distance_m + float(p["robot_z_r_m"]))
    out = sim.run(run, until_ns=reach + 1_000_000_000)
    # the robot keeps a warning zone's SLOW limit once it reaches it: S_p at the speed it had when stopped
    # (a lower speed only ever replaces a higher one, so from that crossing on every step sees the person
    # within the S_p of the speed it uses)
    speed = out.stop_speed_mps if out.stop_command_ns is not None else run.robot_speed_mps
    sp = separation_required_m(sim.cfg, speed, z_d_m=Z_D)  # the budget's S_p, not the step's
    within = sim.first_time_within(walk, sp - Z_D)  # true distance <= S_p without the measurement error
    note(f"S_p {sp:.4f} m, within S_p at {within} ns, reaches the hazard at {reach} ns, T_r {t_r} ns")
    note(out.describe())
    assert out.stop_command_ns is not None, "never stopped"
    assert out.stop_speed_mps <= run.robot_speed_mps
    command, brake, rest = (t - out.start_ns for t in (out.stop_command_ns, out.brake_ns, out.rest_ns))
    note(f"stop commanded at {command} ns, braking at {brake} ns, at rest at {rest} ns")
    assert CommandKind(out.stop_kind) == CommandKind.PROTECTIVE_STOP
    assert command <= within + t_r
    assert brake <= within + t_r
    assert rest < reach


@cache
def held_cell(
    n_sensors: int, tolerated: int, zones: bool, worst_step_ms: float | None, streak: int
) -> CellSim:
    """`cell(...)` holding a missed person just long enough to bridge `streak` frames in a row without them:
    (streak + 1) frame periods + the worst latency, rounded up to the microsecond."""
    base = cell(n_sensors, tolerated, zones, worst_step_ms)
    sensor = next(iter(base.cfg.sensors.values()))
    hold_ns = frame_period_ns(sensor.frame_rate_hz) * (streak + 1) + sensor_latency_ns(sensor)
    raw = base.cfg.model_dump(mode="python")
    raw["controller"]["person_hold_ms"] = -(-hold_ns // 1000) / 1000
    cfg = CellConfig.model_validate(raw)
    return CellSim(cfg, build_params(cfg))


@st.composite
def detector_misses(draw, tolerated: int, bridged: int, horizon: int = 1500):
    """(missed, undetected) frame numbers: frames that never arrive, at most `tolerated` in a row, and frames
    that arrive without the person; at most `bridged` frames in a row of either kind. A drawn burst of
    misses repeats every few to many frames over the whole walk, so that one falls where a release would
    matter (a person long inside S_p at full speed while a warning zone's limit keeps the robot slow)."""
    burst = draw(st.lists(st.sampled_from(["undetected", "undetected", "missed"]), min_size=1, max_size=4))
    every = draw(st.integers(len(burst) + 1, 60))
    offset = draw(st.integers(0, every - 1))
    missed: list[int] = []
    undetected: list[int] = []
    in_a_row = missing_in_a_row = 0
    for k in range(horizon):
        at = (k + offset) % every
        kind = burst[at] if at < len(burst) else "seen"
        if kind == "undetected" and in_a_row < bridged:
            undetected.append(k)
            in_a_row, missing_in_a_row = in_a_row + 1, 0
        elif kind == "missed" and in_a_row < bridged and missing_in_a_row < tolerated:
            missed.append(k)
            in_a_row, missing_in_a_row = in_a_row + 1, missing_in_a_row + 1
        else:
            in_a_row = missing_in_a_row = 0
    return tuple(missed), tuple(undetected)


@st.composite
def missed_approaches(draw):
    """`approaches()` with a detector that misses the person in frames, in a cell that holds them."""
    (n_sensors, tolerated, zones, worst_step_ms), run = draw(approaches(missing=True))
    sensors_tolerate = int(cell(n_sensors, tolerated, zones, worst_step_ms).p["sensor_tolerated_missed"][0])
    streak = draw(st.integers(min(1, sensors_tolerate), sensors_tolerate))
    sim = held_cell(n_sensors, tolerated, zones, worst_step_ms, streak)
    period = frame_period_ns(next(iter(sim.cfg.sensors.values())).frame_rate_hz)
    bridged = (int(sim.p["person_hold_ns"]) - int(sim.p["sensor_max_latency_ns"][0])) // period - 1
    assert streak <= bridged <= sensors_tolerate
    missed, undetected = draw(detector_misses(sensors_tolerate, bridged))
    run = replace(run, missed=missed, undetected=undetected)
    return (n_sensors, tolerated, zones, worst_step_ms, streak), run


@given(missed_approaches())
def test_a_person_missed_while_held_is_still_stopped_for_in_time(case):
    key, run = case
    sim = held_cell(*key)
    note(f"hold {int(sim.p['person_hold_ns'])} ns, undetected frames {run.undetected}, missed {run.missed}")
    check_stopped_in_time(sim, run)


EXPECTED_REASONS = {
    Fault.SENSOR_SILENT: {Reason.SENSOR_STALE},
    Fault.FRAMES_LATE: {Reason.SENSOR_STALE},
    Fault.COUNTER_JUMP: {
        Reason.SENSOR_COUNTER_REPEATED,
        Reason.SENSOR_COUNTER_OUT_OF_ORDER,
        Reason.SENSOR_FRAMES_MISSED,
    },
    Fault.CORRUPT_METADATA: {Reason.SENSOR_BAD_VALUE, Reason.SENSOR_HEALTH, Reason.SENSOR_TOO_MANY_PERSONS},
    Fault.LOOP_OVERRUN: {Reason.LOOP_OVERRUN},
    Fault.ROBOT_SILENT: {Reason.ROBOT_STALE},
}


def _draw_walkless_run(draw, **fault_fields):
    """A run with nobody walking in (1-2 sensors, jitter, misses and step times within spec)."""
    n_sensors = draw(st.integers(1, 2))
    tolerated = draw(st.integers(0, 3))
    worst_step_ms = draw(st.sampled_from(WORST_STEPS_MS))
    sim = cell(n_sensors, tolerated, True, worst_step_ms)
    period = frame_period_ns(next(iter(sim.cfg.sensors.values())).frame_rate_hz)
    run = Run(
        robot_speed_mps=draw(st.floats(0.0, 1.0)),
        walk=None,
        sensor_phase_ns=tuple(draw(st.integers(0, period - 1)) for _ in range(n_sensors)),
        latency_fraction=draw(st.floats(0.0, 1.0)),
        missed=draw(missed_frames(tolerated)),
        step_fraction=draw(st.floats(0.0, 1.0)),
        step_fractions=draw(step_fractions()),
        seed=draw(st.integers(0, 2**16)),
        **{name: draw(strategy) for name, strategy in fault_fields.items()},
    )
    return (n_sensors, tolerated, True, worst_step_ms), run


@st.composite
def faults(draw):
    return _draw_walkless_run(
        draw,
        fault=st.sampled_from([f for f in Fault if f is not Fault.NONE]),
        fault_at_ns=st.integers(0, 200_000_000),
        fault_variant=st.integers(0, 20),
    )


@given(faults())
def test_faults_beyond_the_assumptions_stop_within_the_watchdog_time(case):
    key, run = case
    sim = cell(*key)
    limit = watchdog_ns(sim.params, run.fault)
    out = sim.run(run, until_ns=run.fault_at_ns + limit + 50_000_000)
    note(out.describe())
    assert out.stop_command_ns is not None, "never stopped"
    after_fault = out.stop_command_ns - out.start_ns - run.fault_at_ns
    note(f"fault at {run.fault_at_ns} ns, stop {after_fault} ns later, watchdog {limit} ns")
    assert CommandKind(out.stop_kind) == CommandKind.FAULT_STOP
    assert Reason(out.stop_reason) in EXPECTED_REASONS[run.fault]
    assert 0 <= after_fault <= limit


@st.composite
def quiet_runs(draw):
    return _draw_walkless_run(draw)


@given(quiet_runs())
def test_inside_the_assumptions_an_empty_cell_never_stops(case):
    key, run = case
    sim = cell(*key)
    out = sim.run(run, until_ns=2_000_000_000)
    note(out.describe())
    assert out.stop_command_ns is None


def test_late_cycles_skip_releases_in_the_simulation_as_in_the_executor():
    # every cycle takes its whole 4.5 ms worst step on the 1 ms tick: each lets the latest release before
    # its command run next, woken at once, and skips the three before it; nothing overruns or stops
    run = Run(
        robot_speed_mps=0.5, walk=None, sensor_phase_ns=(0,), latency_fraction=1.0, step_fractions=(1.0,)
    )
    late = cell(1, 0, True, 4.5).run(run, until_ns=500_000_000)
    assert late.stop_command_ns is None, late.describe()
    assert late.skipped_releases > 0
    assert watchdog_ns(cell(1, 0, True, 4.5).params, Fault.LOOP_OVERRUN) == 4_500_000 + 4_500_000
    # within the period (0.2 ms of 1 ms) nothing is ever skipped
    on_time = cell(1, 0, True).run(run, until_ns=500_000_000)
    assert on_time.stop_command_ns is None and on_time.skipped_releases == 0
    assert watchdog_ns(cell(1, 0, True).params, Fault.LOOP_OVERRUN) == 1_000_000 + 200_000


# -- the robot link on the robot's own clock ------------------------------------------------------------


@cache
def own_clock_cell() -> CellConfig:
    """The shipped default cell with the robot on its own clock (hil/defaults/robot_own_clock.toml)."""
    return load_config(DEFAULT_CELL.with_name("robot_own_clock.toml"))


@st.composite
def robot_link_runs(draw):
    """A robot clock (offset in s, drift in ppm) and per cycle: the command's stamp within its worst step
    after the release, its delivery and the answering state's delivery, as fractions of their worst case."""
    fraction = st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)
    offset_s = draw(st.integers(-(10**7), 10**7))
    drift_ppm = draw(st.sampled_from([-100.0, 0.0, 100.0]) | st.floats(-100.0, 100.0))
    cycles = draw(st.lists(st.tuples(fraction, fraction, fraction), min_size=5, max_size=120))
    return offset_s, drift_ppm, cycles


def run_robot_link(offset_s: int, drift_ppm: float, cycles, state_delay_extra_ns: int = 0):
    """Discrete events on one timeline: the controller's releases (it takes in the states that arrived,
    judges the newest one's age, sends a command stamped up to a worst step later); the robot on its own
    clock answering each command and sending its period; each frame delayed within its worst case.
    Returns (controller link errors, robot link errors, worst age seen at a step)."""
    import heapq

    from cobotguard.hil.robot import RobotClock, RobotEmulator
    from cobotguard.safety.link import NEED_DATA, Command, LinkError, Received, Role, robot_link_endpoint
    from cobotguard.safety.timing import command_delivery_ns, ns

    cfg = own_clock_cell()
    period, worst = ns(cfg.controller.cycle_period_ms), ns(cfg.controller.worst_step_ms)
    command_worst = max(ns(cfg.link.max_delay_ms), command_delivery_ns(cfg.link))
    state_worst = ns(cfg.link.max_delay_ms) + state_delay_extra_ns
    state_period = ns(cfg.robot.state_period_ms)
    t0 = 1_000_000_000
    controller = robot_link_endpoint(cfg, Role.CONTROLLER, t0)
    robot = RobotEmulator(cfg, t0, clock=RobotClock(offset_s * 1_000_000_000, drift_ppm, origin_ns=t0))
    events: list[tuple[int, int, int, bytes]] = []  # (time, order: states first, counter, bytes)
    counter = 0
    state_fraction = [cycles[0][2]]  # this cycle's, for the states the robot sends in it
    last_command_arrival = last_state_arrival = 0
    last_stamp = 0
    sent_at: dict[bytes, int] = {}
    newest_origin = None
    worst_age = 0
    robot_errors: list[LinkError] = []

    last_sent = [0]

    def robot_sends(now: int) -> None:
        nonlocal counter, last_state_arrival
        if now <= last_sent[0]:
            return  # one state per instant: its sender time must increase (as the rig sends them)
        last_sent[0] = now
        wire = robot.state_frame(now)
        arrival = max(last_state_arrival, now + int(state_fraction[0] * state_worst))
        last_state_arrival = arrival
        sent_at[wire] = now
        heapq.heappush(events, (arrival, 0, counter, wire))
        counter += 1

    last_state = t0
    robot_sends(t0)
    for k, (stamp_fraction, command_fraction, this_state_fraction) in enumerate(cycles):
        state_fraction[0] = this_state_fraction
        release = t0 + (k + 1) * period
        horizon = release
        while events and events[0][0] <= horizon:  # everything due before this release
            t, kind, _, data = heapq.heappop(events)
            while last_state + state_period < t:  # the robot's period, on the way (a reply at t covers t)
                last_state += state_period
                robot_sends(last_state)
            if kind == 0:  # a state reaches the controller
                controller.feed(data, t)
                while (event := controller.next_event()) is not NEED_DATA:
                    if isinstance(event, LinkError):
                        return [event], robot_errors, worst_age
                    assert isinstance(event, Received)
                    if event.message.last_command_seq >= 0:  # type: ignore[union-attr]
                        assert event.t_origin_ns is not None
                        assert event.t_origin_ns <= sent_at[data]  # never aged younger than it is
                        newest_origin = event.t_origin_ns
            else:  # a command reaches the robot, which answers it
                replied = any(isinstance(e, Received) for e in robot.receive(data, t))
                if (err := robot.check_watchdog(t)) is not None:
                    robot_errors.append(err)
                robot_errors += [e for e in robot.receive(b"", t) if isinstance(e, LinkError)]
                if replied:
                    robot_sends(t)
                    last_state = t
        if (err := controller.check_watchdog(release)) is not None:
            return [err], robot_errors, worst_age
        stamp = max(last_stamp + 1, release + int(stamp_fraction * worst))
        last_stamp = stamp
        if newest_origin is not None:
            worst_age = max(worst_age, stamp - newest_origin)  # the step's now is before its stamp
        wire = controller.send(Command(CommandKind.RUN, 0.25), stamp)
        arrival = max(last_command_arrival, stamp + int(command_fraction * command_worst))
        last_command_arrival = arrival
        heapq.heappush(events, (arrival, 1, counter, wire))
        counter += 1
    return [], robot_errors, worst_age


@given(robot_link_runs())
@example((3600, 100.0, [(1.0, 1.0, 1.0), (0.0, 1.0, 1.0)] * 30))  # the worst case: late, then early stamps
@example((-42, -100.0, [(1.0, 1.0, 1.0)] * 60))
def test_robot_on_its_own_clock_inside_the_assumptions_never_stops(case):
    from cobotguard.safety.timing import ns

    errors, robot_errors, worst_age = run_robot_link(*case)
    note(f"worst age at a step {worst_age} ns")
    assert errors == [] and robot_errors == []
    assert worst_age <= ns(own_clock_cell().controller.robot_state_timeout_ms)


@given(robot_link_runs())
def test_robot_states_later_than_the_echo_limit_are_an_unacceptable_delay(case):
    from cobotguard.safety.link import Role, robot_link_policy
    from cobotguard.safety.timing import ns

    offset_s, drift_ppm, cycles = case
    echo_limit = robot_link_policy(own_clock_cell(), Role.CONTROLLER).max_delay_ns
    late = [(a, b, 1.0) for a, b, _ in cycles] + [(0.0, 0.0, 1.0)] * 40
    # every state takes 1 ms longer than the whole echo limit (still within the 70 ms watchdog)
    extra = echo_limit + 1_000_000 - ns(own_clock_cell().link.max_delay_ms)
    errors, _, _ = run_robot_link(offset_s, drift_ppm, late, state_delay_extra_ns=extra)
    assert errors and errors[0].reason is Reason.LINK_UNACCEPTABLE_DELAY
