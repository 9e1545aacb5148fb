"""Held persons: a person the next frame misses is held with growing uncertainty (docs/sensor.md, section 7).

Both implementations (the compiled step and the plain-Python reference) are driven through the same
scripted cells on a simulated clock; the differential test holds them identical on random inputs. The
property at the end compares the same input stream with the hold on and off: holding never permits a
higher speed in any cycle.
"""

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from test_step_differential import apply_cycle, cycles, person_holds

from cobotguard.hil.sim import Harness, example_config
from cobotguard.safety import reference
from cobotguard.safety.config import ns
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    HELD_PERSON_BASE,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.step import new_state, step
from cobotguard.safety.warmup import T0_NS, warm_up_inputs

HOLD_MS = 110.0  # the example cell's stale limit is 117 ms (3 frames at 30 fps + 17 ms latency)
HOLD_NS = ns(HOLD_MS)
MS = 1_000_000
FRAME_NS = 33 * MS  # frames every 33 ms, so that every frame stays fresh
IMPLEMENTATIONS = pytest.mark.parametrize("step_fn", [step, reference.step], ids=["compiled", "reference"])


def harness(step_fn, hold_ms: float = HOLD_MS) -> Harness:
    """The example cell (warning zone +-3 m, protective zone +-1.5 m, hazard +-0.9 m, Z_d 0.1 m), armed."""
    h = Harness(example_config(person_hold_ms=hold_ms), step_fn)
    h.arm()
    assert CommandKind(int(h.tick()["kind"])) == CommandKind.RUN
    return h


def run_until(h: Harness, t_ns: int, persons=()) -> np.void:
    """Tick until now reaches t_ns, with a frame of `persons` every FRAME_NS; the last command."""
    command = None
    while h.now < t_ns:
        if h.now - int(h.detections[0]["t_received_ns"]) >= FRAME_NS:
            h.frame(persons)  # received now, stepped by the tick below
        command = h.tick(advance_ns=min(MS, t_ns - h.now))
    assert command is not None
    return command


def kind(command: np.void) -> CommandKind:
    """The command's kind."""
    return CommandKind(int(command["kind"]))


@pytest.mark.requirement("SR-HOLD-1")
@IMPLEMENTATIONS
def test_a_missed_person_keeps_the_stop_until_the_hold_ends(step_fn):
    h = harness(step_fn)
    h.frame([(1.45, 0.0)])  # inside the protective zone
    command = h.tick()
    assert kind(command) == CommandKind.PROTECTIVE_STOP and int(command["reason_person"]) == 0
    seen = int(h.detections[0]["t_exposure_ns"])
    h.robot_speed_mps = 0.0  # it obeys
    h.frame([])  # the detector misses the person
    command = h.tick()
    assert kind(command) == CommandKind.PROTECTIVE_STOP
    assert (int(command["reason_sensor"]), int(command["reason_person"])) == (0, HELD_PERSON_BASE)
    command = run_until(h, seen + HOLD_NS)  # held while now - seen <= hold
    assert int(command["reason_person"]) == HELD_PERSON_BASE
    command = h.tick()  # 1 ms later the hold has ended: released to the restart interlock
    assert kind(command) == CommandKind.PROTECTIVE_STOP
    assert Reason(int(command["reason"])) == Reason.RESTART_INTERLOCK


@IMPLEMENTATIONS
def test_without_a_hold_the_missed_frame_releases_at_once(step_fn):
    h = harness(step_fn, hold_ms=0.0)
    h.frame([(1.45, 0.0)])
    assert kind(h.tick()) == CommandKind.PROTECTIVE_STOP
    h.frame([])
    assert Reason(int(h.tick()["reason"])) == Reason.RESTART_INTERLOCK


@pytest.mark.requirement("SR-HOLD-1")
@IMPLEMENTATIONS
def test_the_held_uncertainty_grows_at_the_iso_13855_walking_speed(step_fn):
    # 0.25 m outside the warning zone (edge at x = 3.0), Z_d 0.1 m: held, the disc reaches the zone when
    # 0.1 + 1.6 m/s x t = 0.25 m, t = 93.75 ms after the exposure that saw the person
    h = harness(step_fn)
    h.frame([(3.25, 0.0)])
    assert kind(h.tick()) == CommandKind.RUN
    seen = int(h.detections[0]["t_exposure_ns"])
    assert kind(run_until(h, seen + 93 * MS)) == CommandKind.RUN
    assert int(h.state[0]["held_count"][0]) == 1
    assert float(h.state[0]["hold_z_d_m"][0][0]) == 0.1 and int(h.state[0]["hold_seen_ns"][0][0]) == seen
    command = run_until(h, seen + 94 * MS)
    assert kind(command) == CommandKind.SLOW
    assert Reason(int(command["reason"])) == Reason.PERSON_IN_WARNING_ZONE
    assert int(command["reason_person"]) == HELD_PERSON_BASE
    assert kind(run_until(h, seen + HOLD_NS)) == CommandKind.SLOW
    assert kind(h.tick()) == CommandKind.RUN  # the hold has ended (slowing has no restart interlock)


@IMPLEMENTATIONS
@pytest.mark.parametrize(("y", "held"), [(0.25, 0), (0.26, 1)])
def test_a_new_person_within_the_gate_accounts_for_the_previous_one(step_fn, y, held):
    # gate: Z_d 0.1 + 1.6 m/s x 33 ms between the exposures + Z_d 0.1 = 0.2528 m
    h = harness(step_fn)
    h.frame([(3.25, 0.0)])
    for _ in range(33):
        h.tick()
    h.frame([(3.25, y)])  # exposed 33 ms after the first
    h.tick()
    state = h.state[0]
    assert int(state["held_count"][0]) == held
    assert int(state["hold_count"][0]) == held + 1
    assert float(state["hold_y_m"][0][held]) == y  # the new frame's person follows the held ones


@IMPLEMENTATIONS
@pytest.mark.parametrize(("x", "held"), [(3.30, 1), (3.45, 0), (20.0, 0)])
def test_a_missed_person_whose_largest_disc_reaches_nothing_is_dropped(step_fn, x, held):
    # largest disc: 0.1 + 1.6 m/s x 110 ms = 0.276 m, plus the hysteresis 0.1 m: reaches 0.376 m, so
    # from x = 3.376 on it cannot reach the warning zone (the S_p region ends about 2.9 m out)
    h = harness(step_fn)
    h.frame([(x, 0.0)])
    h.tick()
    h.frame([])
    h.tick()
    assert int(h.state[0]["held_count"][0]) == held


@pytest.mark.requirement("SR-HOLD-2")
@IMPLEMENTATIONS
def test_more_held_persons_than_the_sensor_may_report_is_a_fault_stop(step_fn):
    h = harness(step_fn)
    row = [(-2.5 + 0.7 * j, 2.5) for j in range(8)]  # max_persons = 8, all in the warning zone
    h.frame(row)
    assert kind(h.tick()) == CommandKind.SLOW
    h.frame([(x, -y) for x, y in row[:1]])  # one of them accounts for nobody: 8 held + 1 seen
    command = h.tick()
    assert kind(command) == CommandKind.FAULT_STOP
    assert Reason(int(command["reason"])) == Reason.SENSOR_TOO_MANY_PERSONS
    assert int(command["reason_sensor"]) == 0
    assert int(h.state[0]["held_count"][0]) == 7  # as many as fit; the fault stops the robot


@IMPLEMENTATIONS
def test_held_persons_up_to_max_persons_are_no_fault(step_fn):
    h = harness(step_fn)
    row = [(-2.5 + 0.7 * j, 2.5) for j in range(8)]
    h.frame(row)
    h.tick()
    h.frame([])
    command = h.tick()
    assert kind(command) == CommandKind.SLOW and int(command["reason_person"]) == HELD_PERSON_BASE
    assert int(h.state[0]["held_count"][0]) == 8


@IMPLEMENTATIONS
def test_another_sensor_does_not_account_for_a_held_person(step_fn):
    h = Harness(example_config(n_sensors=2, person_hold_ms=HOLD_MS), step_fn)
    h.arm()
    h.tick()
    h.frame([(1.45, 0.0)], sensor=0)
    h.frame([(1.45, 0.0)], sensor=1)
    h.tick()
    h.frame([], sensor=0)  # sensor 1 still sees the person: sensor 0 holds it all the same
    command = h.tick()
    assert (int(command["reason_sensor"]), int(command["reason_person"])) == (0, HELD_PERSON_BASE)
    assert int(h.state[0]["held_count"][0]) == 1 and int(h.state[0]["held_count"][1]) == 0


def test_hold_hazard_reach_bounds_separation_at_every_speed():
    for cfg in (example_config(person_hold_ms=50.0), example_config(zones=False, release_hysteresis_m=0.5)):
        p = build_params(cfg)[0]
        top = float(p["robot_max_speed_mps"])
        for speed in np.linspace(0.0, top, 201):
            for z_d in (0.0, 0.1, 0.5):
                assert reference.separation_m(p, float(speed), z_d) - z_d <= float(p["hold_hazard_reach_m"])
    assert int(build_params(example_config())[0]["person_hold_ns"]) == 0
    assert int(build_params(example_config(person_hold_ms=50.0))[0]["person_hold_ns"]) == 50 * MS


def test_the_warm_up_inputs_take_the_step_through_the_hold():
    params = build_params(example_config(n_sensors=2, person_hold_ms=HOLD_MS))
    state = new_state(params)
    command = np.zeros(1, COMMAND_DTYPE)
    held, expired_in_table, overflow, named = False, False, False, False
    for detections, robot, reset, overrun, now in warm_up_inputs(params):
        reference.step(params, state, detections, robot, reset, overrun, now, command)
        s = state[0]
        held |= int(s["held_count"][0]) > 0
        seen = s["hold_seen_ns"][0][: int(s["held_count"][0])]
        expired_in_table |= bool(np.any(now - seen > HOLD_NS))
        overflow |= int(s["hold_fault"][0]) == int(Reason.SENSOR_TOO_MANY_PERSONS)
        named |= int(command[0]["reason_person"]) >= HELD_PERSON_BASE
    assert held and expired_in_table and overflow and named


# -- holding never releases earlier --------------------------------------------------------------------
# Both runs arm identically, then see the same inputs with the reset input low: every release is the
# step's own (a slow-down ending, a stop's cause gone, the automatic restart's clear time). Reset presses
# are left out on purpose: a state that waits for a reset restarts on the first clear cycle with a press,
# so a stop that lasts longer, from any cause, can let a later press restart one cycle before a run that
# a new cause stopped in between (from RUNNING a protective stop first has to clear, then be reset). That
# is the restart interlock's rule, with or without holding.


@st.composite
def hold_scenarios(draw):
    """The differential test's cells and inputs, with a hold (> 0) to compare against none."""
    n_sensors = draw(st.integers(1, 3))
    tolerated = draw(st.integers(0, 3))
    options = dict(
        n_sensors=n_sensors,
        restart=draw(st.sampled_from(["manual", "automatic"])),
        auto_restart_clear_ms=draw(st.sampled_from([1.0, 5.0, 40.0])),
        separation=draw(st.booleans()),
        zones=draw(st.booleans()),
        release_hysteresis_m=draw(st.sampled_from([0.0, 0.1, 0.5])),
        tolerated_missed_frames=tolerated,
    )
    hold_ms = draw(person_holds(tolerated).filter(lambda v: v > 0.0))
    quiet = draw(st.booleans())
    return options, hold_ms, draw(st.lists(cycles(n_sensors, quiet=quiet), min_size=1, max_size=60))


def permitted_speed(command: np.void) -> float:
    """The speed a command lets the robot move at: the maximum (RUN), the zone's limit (SLOW), 0 (stops)."""
    if int(command["kind"]) >= int(CommandKind.PROTECTIVE_STOP):
        return 0.0
    return float(command["speed_limit_mps"])


@pytest.mark.requirement("SR-HOLD-2")
@given(hold_scenarios())
def test_holding_never_permits_more_than_not_holding(scenario):
    options, hold_ms, sequence = scenario
    runs = {}
    for hold in (0.0, hold_ms):
        params = build_params(example_config(**options, person_hold_ms=hold))
        runs[hold] = (params, new_state(params), np.zeros(1, COMMAND_DTYPE))
    n_sensors = options["n_sensors"]
    detections = empty_detections(MAX_SENSORS)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    counters, previous, now = [0] * MAX_SENSORS, [[] for _ in range(MAX_SENSORS)], T0_NS
    arming = [([([], MS)] * n_sensors, ("none", 0), 0.0, reset, 0, MS) for reset in (0, 1, 0)]
    for n, (frames, glitch, robot_speed, reset, overrun, advance) in enumerate(arming + sequence):
        now += advance
        reset = reset if n < len(arming) else 0
        # the same robot for both: one that keeps the lower of the two limits (a fixed speed would trip
        # the speed supervision on a history that differs between them), or a fault for both
        if robot_speed is not None and (robot_speed == "obey" or 0.0 <= robot_speed <= 1.0):
            robot_speed = min(0.5, *(float(c[0]["speed_limit_mps"]) for _, _, c in runs.values()))
        apply_cycle(detections, robot, counters, previous, now, frames, glitch, robot_speed)
        for params, state, command in runs.values():
            step(params, state, detections, robot, reset, overrun, now, command)
        without, held = (runs[h][2][0] for h in (0.0, hold_ms))
        if n == len(arming) - 1:
            assert CommandKind(int(held["kind"])) == CommandKind.RUN == CommandKind(int(without["kind"]))
        note(f"cycle {n}: without {CommandKind(int(without['kind'])).name} {permitted_speed(without)}, "
             f"held {CommandKind(int(held['kind'])).name} {permitted_speed(held)}")  # fmt: skip
        assert permitted_speed(held) <= permitted_speed(without), f"cycle {n}"
