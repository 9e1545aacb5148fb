"""The controller's transition table: complete, closed, and encoding the restart-interlock rules."""

import itertools
import re

import pytest

from cobotguard.safety.states import (
    STOPPED_STATES,
    TRANSITION_TABLE,
    TRANSITIONS,
    ControllerState,
    Event,
    Permission,
    diagram,
    event_for,
    next_state,
)

S, E, P = ControllerState, Event, Permission
ALL = list(itertools.product(S, E, P))


def test_table_covers_every_state_event_and_permission():
    assert set(TRANSITIONS) == set(S)
    for state in S:
        assert set(TRANSITIONS[state]) == set(E), state
        for event in E:
            assert set(TRANSITIONS[state][event]) == set(P), (state, event)
    assert (TRANSITION_TABLE >= 0).all()
    assert TRANSITION_TABLE.shape == (len(S), len(E), len(P))


@pytest.mark.parametrize(("state", "event", "permission"), ALL)
def test_compiled_table_matches_the_dict(state, event, permission):
    assert TRANSITION_TABLE[state, event, permission] == next_state(state, event, permission)


@pytest.mark.parametrize("state", [s for s in S if s != S.NOT_ARMED])
def test_a_fault_always_fault_stops(state):
    for permission in P:
        assert next_state(state, E.FAULT, permission) == S.FAULT_STOPPED


@pytest.mark.requirement("SR-ZONE-3")
@pytest.mark.parametrize("state", [S.RUNNING, S.SLOWED, S.AWAITING_RESET])
def test_a_stop_always_stops_at_once(state):
    for permission in P:
        assert next_state(state, E.STOP, permission) == S.PROTECTIVE_STOPPED


@pytest.mark.parametrize("event", [E.HOLD_STOP, E.HOLD_SLOW])
def test_hysteresis_alone_never_starts_a_restriction(event):
    assert next_state(S.RUNNING, event, P.NONE) == S.RUNNING


def test_no_stopped_state_restarts_without_permission():
    for state, event in itertools.product(STOPPED_STATES, E):
        assert next_state(state, event, P.NONE) in STOPPED_STATES, (state, event)


@pytest.mark.requirement("SR-RST-3")
def test_faults_and_start_up_never_restart_automatically():
    for state, event in itertools.product([S.FAULT_STOPPED, S.AWAITING_FAULT_RESET, S.NOT_ARMED], E):
        assert next_state(state, event, P.AUTO) in STOPPED_STATES, (state, event)


def test_a_reset_edge_restarts_only_when_clear_of_every_stop_criterion():
    for state in STOPPED_STATES:
        for event in (E.STOP, E.HOLD_STOP, E.SLOW_HOLD_STOP, E.FAULT):
            assert next_state(state, event, P.RESET) in STOPPED_STATES, (state, event)
    assert next_state(S.AWAITING_RESET, E.CLEAR, P.RESET) == S.RUNNING
    assert next_state(S.AWAITING_RESET, E.SLOW, P.RESET) == S.SLOWED
    assert next_state(S.AWAITING_FAULT_RESET, E.CLEAR, P.RESET) == S.RUNNING
    assert next_state(S.NOT_ARMED, E.HOLD_SLOW, P.RESET) == S.SLOWED


def test_a_protective_stop_must_pass_through_awaiting_reset():
    for event, permission in itertools.product(E, P):
        assert next_state(S.PROTECTIVE_STOPPED, event, permission) not in (S.RUNNING, S.SLOWED)
        assert next_state(S.FAULT_STOPPED, event, permission) not in (S.RUNNING, S.SLOWED)


def test_every_state_is_reachable_from_not_armed():
    seen = {S.NOT_ARMED}
    frontier = [S.NOT_ARMED]
    while frontier:
        state = frontier.pop()
        for event, permission in itertools.product(E, P):
            target = next_state(state, event, permission)
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(S)


@pytest.mark.parametrize(
    ("strict", "release", "event"),
    [
        (3, 3, E.FAULT),
        (2, 2, E.STOP),
        (1, 2, E.SLOW_HOLD_STOP),
        (1, 1, E.SLOW),
        (0, 2, E.HOLD_STOP),
        (0, 1, E.HOLD_SLOW),
        (0, 0, E.CLEAR),
    ],
)
def test_event_folding(strict, release, event):
    assert event_for(strict, release) == event


def test_diagram_names_every_state():
    text = diagram()
    for state in S:
        assert state.name in text


def test_diagram_draws_each_state_change_once_labelled_by_what_decides_it():
    edges = re.findall(r'(\w+) -> (\w+) \[label="([\w+]+)"\];', diagram())
    changes = {
        (state.name, target.name)
        for state, by_event in TRANSITIONS.items()
        for by_permission in by_event.values()
        for target in by_permission.values()
        if target != state
    }
    assert {(a, b) for a, b, _ in edges} == changes  # every change, no self-loop
    assert len(edges) == len(set(edges))  # an edge the permission does not decide is drawn once
    for a, _, label in edges:
        event, _, permission = label.partition("+")
        targets = set(TRANSITIONS[S[a]][E[event]].values())
        assert bool(permission) == (len(targets) > 1), label  # the permission named only where it decides


def test_the_compiled_table_is_read_only():
    assert not TRANSITION_TABLE.flags.writeable
    with pytest.raises(ValueError):
        TRANSITION_TABLE[0, 0, 0] = 0
