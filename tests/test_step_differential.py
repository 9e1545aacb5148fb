"""Differential test: the compiled step and the plain-Python reference agree bit for bit.

Random configurations and random input sequences (frames with persons near every boundary, counter
jumps, corrupt values, stale data, robot faults, reset edges, overruns, time jumps) are fed to both;
after every cycle the command records and the state records must be byte-identical.
"""

import math

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st

from cobotguard.hil.sim import example_config
from cobotguard.safety import reference
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.records import COMMAND_DTYPE, MAX_SENSORS, ROBOT_STATE_DTYPE, empty_detections
from cobotguard.safety.states import ControllerState
from cobotguard.safety.step import new_state, step
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
    st.lists(
        st.tuples(
            coordinates, st.sampled_from([0.0, 0.0, 0.0, 1.0, -2.5]), st.sampled_from([0.0, 0.1, 0.1, 0.3])
        ),
        max_size=2,
    ),
    st.lists(st.tuples(coordinates, coordinates, st.sampled_from([0.0, 0.1, 0.3])), max_size=3),
)
# faults are rare (one glitch kind per cycle at most) so that sequences spend most cycles in the
# running, slowed and stopped states where hysteresis and the restart interlock matter
GLITCHES = ["counter+0", "counter+2", "counter+3", "counter+4", "counter-1", "counter+128", "late", "health",
            "too_many", "nan", "huge", "index", "time"]  # fmt: skip


@st.composite
def cycles(draw, n_sensors):
    """One cycle's inputs: per-sensor frames (or none), a glitch, robot, reset, overrun, clock advance."""
    frames = []
    for _ in range(n_sensors):
        if draw(st.integers(0, 5)) == 0:
            frames.append(None)  # no new frame this cycle
        else:
            frames.append((draw(persons), draw(st.sampled_from([1_000_000, 10_000_000, 17_000_000]))))
    glitch = draw(st.sampled_from(["none"] * 50 + GLITCHES))
    glitch_sensor = draw(st.integers(0, n_sensors - 1))
    # None = no report; "obey" = the last command's limit (at most 0.5), which keeps speed supervision quiet
    robot = draw(
        st.sampled_from([0.5] * 15 + ["obey"] * 15 + [0.0, 0.1, 0.26, 1.0, 1.2, math.nan, -1.0, None])
    )
    reset = draw(st.sampled_from([0, 0, 1]))
    overrun = draw(st.sampled_from([0] * 60 + [1]))
    advance = draw(st.sampled_from([1_000_000] * 60 + [33_000_000, 150_000_000, 0, -1]))
    return frames, (glitch, glitch_sensor), robot, reset, overrun, advance


@st.composite
def scenarios(draw):
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
    return options, draw(st.lists(cycles(n_sensors), min_size=1, max_size=60))


def apply_cycle(detections, robot, counters, previous, now, frames, glitch, robot_speed):
    kind, glitch_sensor = glitch
    for i, frame in enumerate(frames):
        if frame is None:
            continue
        people, latency = frame
        people = previous[i] if people == "same" else people
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


@given(scenarios())
def test_compiled_step_and_reference_agree_bit_for_bit(scenario):
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
