"""Differential test: the compiled step and the plain-Python reference agree bit for bit.

Random configurations and random input sequences (frames with persons near every boundary, counter
jumps, corrupt values, stale data, robot faults, reset edges, overruns, time jumps, persons the detector
misses, with and without holding them) are fed to both; after every cycle the command records and the
state records must be byte-identical.
"""

import math

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from cobotguard.hil.sim import example_config
from cobotguard.safety import reference
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    HELD_PERSON_BASE,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.states import ControllerState
from cobotguard.safety.step import new_state, step
from cobotguard.safety.timing import sensor_max_age_ns
from cobotguard.safety.warmup import T0_NS, write_frame, write_robot

# interesting x coordinates in the example cell: hazard edge 0.9, protective 1.5, warning 3.0, Z_d and
# hysteresis 0.1 each, S_p between about 0.8 m and 1.9 m beyond the hazard edge
KEY_X = [
    0.0,
    0.95,
    1.45,
    1.55,
    1.6,
    1.65,
    1.7,
    1.75,
    1.8,
    2.0,
    2.2,
    2.3,
    2.6,
    2.9,
    3.05,
    3.1,
    3.15,
    3.2,
    3.25,
    3.3,
    3.5,
    3.7,
    3.9,
    4.2,
    5.0,
]

coordinates = st.one_of(st.sampled_from(KEY_X), st.sampled_from(KEY_X), st.floats(-4.0, 4.0, allow_nan=False))
persons = st.one_of(
    st.just("same"),  # the same people as in this sensor's previous frame: lets restrictions be held
    st.just("miss"),  # the previous frame's people but the first: the detector missed one (held persons)
    st.just("miss"),
    st.lists(
        st.tuples(
            coordinates, st.sampled_from([0.0, 0.0, 0.0, 1.0, -2.5]), st.sampled_from([0.0, 0.1, 0.1, 0.3])
        ),
        max_size=2,
    ),
    st.lists(st.tuples(coordinates, coordinates, st.sampled_from([0.0, 0.1, 0.3])), max_size=3),
    # a crowd up to max_persons (8): followed by other people, more are held than the sensor may report
    st.lists(st.tuples(coordinates, coordinates, st.just(0.1)), min_size=5, max_size=8),
)
# for the held-person runs: at most two people, on different lines, so that a miss leaves a person whom
# nobody else in the frame accounts for
sparse_persons = st.one_of(
    st.just("same"),
    st.just("miss"),
    st.just("miss"),
    st.lists(
        st.tuples(coordinates, st.sampled_from([0.0, 1.6, -2.5]), st.sampled_from([0.0, 0.1, 0.3])),
        max_size=2,
        unique_by=lambda person: person[1],
    ),
)
# faults are rare (one glitch kind per cycle at most) so that sequences spend most cycles in the
# running, slowed and stopped states where hysteresis and the restart interlock matter
GLITCHES = ["counter+0", "counter+2", "counter+3", "counter+4", "counter-1", "counter+128", "late", "health",
            "too_many", "nan", "huge", "index", "time"]  # fmt: skip


@st.composite
def cycles(draw, n_sensors, quiet=False):
    """One cycle's inputs: per-sensor frames (or none), a glitch, robot, reset, overrun, clock advance.

    quiet: sparse people, fewer faults and frames some ms apart, so that held persons decide commands.
    """
    frames = []
    for _ in range(n_sensors):
        if draw(st.integers(0, 5)) == 0:
            frames.append(None)  # no new frame this cycle
        else:
            people = draw(sparse_persons if quiet else persons)
            frames.append((people, draw(st.sampled_from([1_000_000, 10_000_000, 17_000_000]))))
    glitch = draw(st.sampled_from(["none"] * (400 if quiet else 50) + GLITCHES))
    glitch_sensor = draw(st.integers(0, n_sensors - 1))
    # None = no report; "obey" = the last command's limit (at most 0.5), which keeps speed supervision quiet
    faulty_robot = [] if quiet else [1.2, math.nan, -1.0, None]
    robot = draw(st.sampled_from([0.5] * 15 + ["obey"] * 15 + [0.0, 0.1, 0.26, 1.0, *faulty_robot]))
    reset = draw(st.sampled_from([0, 0, 1]))
    overrun = draw(st.sampled_from([0] * 60 + ([] if quiet else [1])))
    if quiet:
        advance = draw(st.sampled_from([1_000_000] * 10 + [5_000_000, 10_000_000, 33_000_000]))
    else:
        advance = draw(st.sampled_from([1_000_000] * 60 + [33_000_000, 150_000_000, 0, -1]))
    return frames, (glitch, glitch_sensor), robot, reset, overrun, advance


@st.composite
def scenarios(draw, held=False):
    """A cell (keyword arguments of example_config) and its inputs; held: a hold and quiet inputs."""
    n_sensors = draw(st.integers(1, 3))
    options = dict(
        n_sensors=n_sensors,
        restart=draw(st.sampled_from(["manual", "automatic"])),
        auto_restart_clear_ms=draw(st.sampled_from([1.0, 5.0, 40.0])),
        separation=draw(st.booleans()),
        zones=draw(st.booleans()),
        release_hysteresis_m=draw(st.sampled_from([0.0, 0.1, 0.5])),
        tolerated_missed_frames=draw(st.integers(0, 3)),
    )
    holds = person_holds(options["tolerated_missed_frames"])
    options["person_hold_ms"] = draw(holds.filter(lambda ms: ms > 0.0) if held else holds)
    return options, draw(st.lists(cycles(n_sensors, quiet=held), min_size=10 if held else 1, max_size=60))


def person_holds(tolerated_missed_frames: int):
    """controller.person_hold_ms for the example cell: off, short, or up to the sensors' stale limit."""
    sensor = next(iter(example_config(tolerated_missed_frames=tolerated_missed_frames).sensors.values()))
    limit_ms = sensor_max_age_ns(sensor) // 1000 / 1000
    return st.sampled_from([0.0, 0.0, 2.0, 20.0, 0.5 * limit_ms, limit_ms])


def apply_cycle(detections, robot, counters, previous, now, frames, glitch, robot_speed):
    kind, glitch_sensor = glitch
    for i, frame in enumerate(frames):
        if frame is None:
            continue
        people, latency = frame
        if people == "same":
            people = previous[i]
        elif people == "miss":
            people = previous[i][1:]
        previous[i] = people
        counter_step = (
            int(kind.removeprefix("counter")) if kind.startswith("counter") and i == glitch_sensor else 1
        )
        counters[i] = (counters[i] + counter_step) % 256
        if kind == "late" and i == glitch_sensor:
            latency = 30_000_000
        write_frame(detections, i, counters[i], now - latency, now, people)
        if i != glitch_sensor:
            continue
        d = detections[i]
        if kind == "health":
            d["health"] = 2
        elif kind == "too_many":
            d["person_count"] = 9
        elif kind == "nan" and len(people):
            d["persons"][0]["x_m"] = math.nan
        elif kind == "huge" and len(people):
            d["persons"][0]["y_m"] = 1e9
        elif kind == "index":
            d["sensor_index"] = 3
        elif kind == "time":
            d["t_inference_done_ns"] = now + 1
    if robot_speed is not None:
        write_robot(robot, robot_speed, now - 300_000)


def describe(c):
    return (
        f"{CommandKind(c['kind']).name} {Reason(c['reason']).name} sensor={c['reason_sensor']} "
        f"person={c['reason_person']} zone={c['reason_zone']} cat={c['stop_category']} "
        f"limit={c['speed_limit_mps']}"
    )


@pytest.mark.requirement("SR-ZONE-4")
@given(scenarios())
def test_compiled_step_and_reference_agree_bit_for_bit(scenario):
    agree_bit_for_bit(scenario)


@given(scenarios(held=True))
def test_compiled_step_and_reference_agree_on_held_persons(scenario):
    agree_bit_for_bit(scenario)


def agree_bit_for_bit(scenario):
    """Run both implementations over the scenario; commands and states must be byte-identical."""
    options, sequence = scenario  # options: keyword arguments of example_config
    params = build_params(example_config(**options))
    state_fast, state_ref = new_state(params), new_state(params)
    cmd_fast, cmd_ref = np.zeros(1, COMMAND_DTYPE), np.zeros(1, COMMAND_DTYPE)
    detections = empty_detections(MAX_SENSORS)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    counters = [0] * MAX_SENSORS
    previous = [[] for _ in range(MAX_SENSORS)]
    now = T0_NS
    for n, (frames, glitch, robot_speed, reset, overrun, advance) in enumerate(sequence):
        now += advance
        if robot_speed == "obey":
            robot_speed = min(float(cmd_ref[0]["speed_limit_mps"]), 0.5)
        apply_cycle(detections, robot, counters, previous, now, frames, glitch, robot_speed)
        step(params, state_fast, detections, robot, reset, overrun, now, cmd_fast)
        reference.step(params, state_ref, detections, robot, reset, overrun, now, cmd_ref)
        note(f"cycle {n}: {ControllerState(int(state_ref[0]['state'])).name:<20} {describe(cmd_ref[0])}")
        assert cmd_fast.tobytes() == cmd_ref.tobytes(), f"cycle {n}: compiled {describe(cmd_fast[0])}"
        assert state_fast.tobytes() == state_ref.tobytes(), (
            f"cycle {n}: states differ\n{state_fast}\n{state_ref}"
        )


def test_the_differential_inputs_reach_every_state():
    """Guard against a vacuous differential test: a scripted sequence visits every controller state."""
    from cobotguard.safety.warmup import warm_up_inputs

    params = build_params(example_config(n_sensors=2))
    state = new_state(params)
    command = np.zeros(1, COMMAND_DTYPE)
    seen = set()
    for detections, robot, reset, overrun, now in warm_up_inputs(params):
        reference.step(params, state, detections, robot, reset, overrun, now, command)
        seen.add(ControllerState(int(state[0]["state"])))
    assert seen == set(ControllerState)


def test_the_differential_inputs_hold_persons():
    """Guard against a vacuous hold: a drawn "miss" leaves a held person, and it stops the robot."""
    params = build_params(example_config(person_hold_ms=50.0))
    states = {impl: new_state(params) for impl in (step, reference.step)}
    commands = {impl: np.zeros(1, COMMAND_DTYPE) for impl in states}
    detections = empty_detections(MAX_SENSORS)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    counters, previous, now = [0] * MAX_SENSORS, [[] for _ in range(MAX_SENSORS)], T0_NS
    script = [([], 0), ([], 1), ([(1.45, 0.0, 0.1)], 0), ("miss", 0), (None, 0)]  # arm, person, missed
    for people, reset in script:
        now += 1_000_000
        frames = [None if people is None else (people, 1_000_000)]
        apply_cycle(detections, robot, counters, previous, now, frames, ("none", 0), 0.0)
        for impl, state in states.items():
            impl(params, state, detections, robot, reset, 0, now, commands[impl])
        assert commands[step].tobytes() == commands[reference.step].tobytes()
        assert states[step].tobytes() == states[reference.step].tobytes()
    state, command = states[step][0], commands[step][0]
    assert int(state["held_count"][0]) == 1 and int(detections[0]["person_count"]) == 0
    assert CommandKind(int(command["kind"])) == CommandKind.PROTECTIVE_STOP
    assert int(command["reason_person"]) == HELD_PERSON_BASE
