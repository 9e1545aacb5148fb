"""The step's robot-state staleness with the robot on its own clock (robot.clock = "own").

The state's age runs from the send time of the command it echoes (its record's sender time, set by the
link), not from its receive time; a state that echoes no command has no known age and counts as stale.
Both the compiled step and the plain-Python reference are checked.
"""

import numpy as np
import pytest

from cobotguard.hil.sim import Harness, example_config
from cobotguard.safety import reference
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.step import step

MS = 1_000_000
STEPS = [pytest.param(step, id="compiled"), pytest.param(reference.step, id="reference")]


def armed(step_fn, age_by_echo: int) -> Harness:
    cell = Harness(example_config(separation=False), step_fn)
    cell.params[0]["robot_age_by_echo"] = age_by_echo
    cell.arm()
    return cell


def tick_with_robot(cell: Harness, *, origin_age_ns: int, echo: int = 3) -> tuple[CommandKind, Reason]:
    """One tick with a robot state received just now, whose sender time lies origin_age_ns back."""
    cell.robot_silent = True
    now = cell.now + cell.cycle_ns
    r = cell.robot[0]
    r["speed_mps"] = 0.0
    r["at_rest"] = 1
    r["mode"] = 0
    r["last_command_seq"] = echo
    r["t_received_ns"] = now - 1000
    r["t_sent_ns"] = now - origin_age_ns
    cell.all_frames()
    c = cell.tick()
    return CommandKind(int(c["kind"])), Reason(int(c["reason"]))


@pytest.mark.parametrize("step_fn", STEPS)
def test_echo_age_within_the_timeout_runs(step_fn):
    cell = armed(step_fn, 1)
    timeout = int(cell.params[0]["robot_state_timeout_ns"])
    assert tick_with_robot(cell, origin_age_ns=timeout) == (CommandKind.RUN, Reason.NONE)


@pytest.mark.requirement("SR-ROB-4")
@pytest.mark.parametrize("step_fn", STEPS)
def test_echo_age_beyond_the_timeout_is_stale_though_just_received(step_fn):
    cell = armed(step_fn, 1)
    timeout = int(cell.params[0]["robot_state_timeout_ns"])
    assert tick_with_robot(cell, origin_age_ns=timeout + 1) == (CommandKind.FAULT_STOP, Reason.ROBOT_STALE)


@pytest.mark.requirement("SR-ROB-4")
@pytest.mark.parametrize("step_fn", STEPS)
def test_a_state_echoing_no_command_is_stale(step_fn):
    cell = armed(step_fn, 1)
    assert tick_with_robot(cell, origin_age_ns=MS, echo=-1) == (CommandKind.FAULT_STOP, Reason.ROBOT_STALE)


@pytest.mark.parametrize("step_fn", STEPS)
def test_on_one_clock_the_receive_time_counts_as_before(step_fn):
    cell = armed(step_fn, 0)
    timeout = int(cell.params[0]["robot_state_timeout_ns"])
    assert tick_with_robot(cell, origin_age_ns=10 * timeout, echo=-1) == (CommandKind.RUN, Reason.NONE)


def test_the_parameter_follows_the_robot_clock_key():
    shared = example_config()
    raw = shared.model_dump(mode="python")
    raw["robot"]["clock"] = "own"
    own = type(shared).model_validate(raw)
    assert int(build_params(shared)[0]["robot_age_by_echo"]) == 0
    assert int(build_params(own)[0]["robot_age_by_echo"]) == 1


def test_compiled_and_reference_agree_on_echo_ageing():
    """Both implementations over a run of ages around the timeout, with and without an echo."""
    fast, ref = armed(step, 1), armed(reference.step, 1)
    timeout = int(fast.params[0]["robot_state_timeout_ns"])
    rng = np.random.default_rng(12)
    for _ in range(200):
        age = int(rng.integers(0, 2 * timeout))
        echo = int(rng.choice([-1, 0, 7]))
        reset = int(rng.integers(0, 2))
        fast.reset = ref.reset = reset
        a = tick_with_robot(fast, origin_age_ns=age, echo=echo)
        b = tick_with_robot(ref, origin_age_ns=age, echo=echo)
        assert a == b
        assert fast.state.tobytes() == ref.state.tobytes()
