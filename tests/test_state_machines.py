"""Exhaustive checks of the two state machines: the controller's transition table and the link receiver's.

tests/test_step_states.py checks single transitions; this module checks paths. It enumerates every
(state, event, permission) combination of `safety.states.TRANSITIONS` and every (state, input) of
`safety.link.states.TRANSITIONS` and searches the graphs they span for the safety properties:

- no path leads from a stop to motion without a reset edge where the configuration requires one;
- every fault latches: once a fault stop is entered, only a reset edge leads out of the fault states;
- no transition is less restrictive than the cycle's demand, or more restrictive without cause;
- every state is reachable from the initial one, and none is a dead end (production can always resume).

The link receiver's table is also played through both receivers that implement it (the sans-IO
`Endpoint` and the compiled kernels), state by state and input by input.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import numpy as np
import pytest
from link_support import CONNECTION_ID, POLICY

from cobotguard.safety.link import NEED_DATA, Command, Endpoint, Role, encode_frame
from cobotguard.safety.link import compiled as cl
from cobotguard.safety.link.codec import MAX_FRAME_BYTES
from cobotguard.safety.link.crc import TABLE as CRC_TABLE
from cobotguard.safety.link.states import TRANSITIONS as LINK_TRANSITIONS
from cobotguard.safety.link.states import Input, ReceiverState
from cobotguard.safety.reasons import CommandKind
from cobotguard.safety.states import STOPPED_STATES, TRANSITIONS, ControllerState, Event, Permission

S, E, P = ControllerState, Event, Permission
MOTION = frozenset({S.RUNNING, S.SLOWED})
FAULT_STATES = frozenset({S.FAULT_STOPPED, S.AWAITING_FAULT_RESET})
INITIAL = S.NOT_ARMED
ALL_COMBINATIONS = list(itertools.product(S, E, P))

# what each event demands: (strict level, release level with hysteresis); 0 run, 1 slow, 2 stop, 3 fault
DEMAND = {
    E.FAULT: (3, 3),
    E.STOP: (2, 2),
    E.SLOW_HOLD_STOP: (1, 2),
    E.HOLD_STOP: (0, 2),
    E.SLOW: (1, 1),
    E.HOLD_SLOW: (0, 1),
    E.CLEAR: (0, 0),
}
LEVEL = {S.RUNNING: 0, S.SLOWED: 1, **dict.fromkeys(STOPPED_STATES, 2)}

# The step gives AUTO only when the configuration allows an automatic restart (safety.step, part 4), and
# RESET only on a rising edge of the reset input. Both cell kinds are checked.
PERMISSIONS_WITHOUT_RESET = {
    "manual restart": frozenset({P.NONE}),
    "automatic restart": frozenset({P.NONE, P.AUTO}),
}


def _reachable(
    starts: Iterable[ControllerState], permissions: Iterable[Permission] = tuple(P)
) -> set[ControllerState]:
    """Every state some sequence of events reaches from `starts`, with only `permissions` granted."""
    allowed = tuple(permissions)
    seen = set(starts)
    frontier = list(seen)
    while frontier:
        state = frontier.pop()
        for event, permission in itertools.product(E, allowed):
            target = TRANSITIONS[state][event][permission]
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def _predecessors(target: ControllerState) -> set[ControllerState]:
    return {s for s, e, p in ALL_COMBINATIONS if TRANSITIONS[s][e][p] == target and s != target}


# ---------------------------------------------------------------------------------- the controller


@pytest.mark.requirement("SR-RST-5")
def test_the_table_is_total_and_closed() -> None:
    assert set(TRANSITIONS) == set(S)
    for state, event, permission in ALL_COMBINATIONS:
        assert TRANSITIONS[state][event][permission] in set(S), (state, event, permission)


@pytest.mark.requirement("SR-RST-2")
@pytest.mark.parametrize("cell", sorted(PERMISSIONS_WITHOUT_RESET))
@pytest.mark.parametrize("stop", sorted(STOPPED_STATES))
def test_no_path_from_a_stop_to_motion_without_a_reset_edge(cell: str, stop: ControllerState) -> None:
    permissions = PERMISSIONS_WITHOUT_RESET[cell]
    reset_required = cell == "manual restart" or stop in FAULT_STATES or stop == INITIAL
    reached = _reachable([stop], permissions)
    if reset_required:
        assert not reached & MOTION, f"{cell}: {stop.name} reaches {sorted(reached & MOTION)} unreset"
    else:  # a protective stop of an automatic-restart cell restarts after the clear time
        assert reached & MOTION


@pytest.mark.requirement("SR-RST-2")
def test_every_edge_from_a_stop_into_motion_is_a_permitted_restart_when_clear() -> None:
    for state, event, permission in ALL_COMBINATIONS:
        target = TRANSITIONS[state][event][permission]
        if state in STOPPED_STATES and target in MOTION:
            automatic = permission == P.AUTO and state == S.AWAITING_RESET
            assert permission == P.RESET or automatic, (state, event, permission)
            # clear of every stop criterion, hysteresis included
            assert DEMAND[event][1] <= 1, (state, event, permission)


@pytest.mark.requirement("SR-RST-2", "SR-RST-3")
def test_only_a_waiting_state_restarts_so_a_reset_pressed_before_the_cause_went_counts_for_nothing() -> None:
    # The step reads the reset input once a cycle: an edge seen in the cycle a stop's or a fault's cause goes
    # away may have been pressed while the person was still inside. It leads to the waiting state only.
    waiting = {S.NOT_ARMED, S.AWAITING_RESET, S.AWAITING_FAULT_RESET}
    for state, event, permission in ALL_COMBINATIONS:
        if state in STOPPED_STATES - waiting:
            assert TRANSITIONS[state][event][permission] not in MOTION, (state, event, permission)


def _stop_states_allowed(state: ControllerState, event: Event) -> set[ControllerState]:
    """The states a cycle may lead to, motion aside: each stop state is entered by its own cause only."""
    strict, release = DEMAND[event]
    if event == E.FAULT:  # the fault is named (start-up keeps waiting for its first reset edge)
        return {S.NOT_ARMED} if state == INITIAL else {S.FAULT_STOPPED}
    if state in FAULT_STATES:  # the fault is gone: the interlock, whatever the zones demand
        return {S.AWAITING_FAULT_RESET}
    if state == INITIAL:
        return {S.NOT_ARMED}
    if strict >= 2 or (release >= 2 and state in STOPPED_STATES):  # a person stops it, or holds its stop
        return {S.PROTECTIVE_STOPPED}
    return {S.AWAITING_RESET} if state in STOPPED_STATES else set()


@pytest.mark.requirement("SR-RST-3", "SR-ZONE-4")
def test_each_stop_state_is_entered_by_its_own_cause_only() -> None:
    # The command of a stop state names its cause (FAULT_STOPPED the fault, PROTECTIVE_STOPPED the person,
    # the waiting states the interlock): a stop state entered without its cause would stop without cause
    # or misreport why. Which motion a cycle may lead to is checked by the tests above and below.
    for state, event, permission in ALL_COMBINATIONS:
        target = TRANSITIONS[state][event][permission]
        if target not in MOTION:
            assert target in _stop_states_allowed(state, event), (state, event, permission, target)


@pytest.mark.requirement("SR-RST-3")
@pytest.mark.parametrize("state", sorted(S))
def test_every_fault_latches(state: ControllerState) -> None:
    for permission in P:
        entered = TRANSITIONS[state][E.FAULT][permission]
        latched = FAULT_STATES | {INITIAL} if state == INITIAL else FAULT_STATES
        assert entered in latched, (state, permission)
        # once in, nothing but a reset edge leads out of the fault states, whatever happens meanwhile
        for cell, permissions in PERMISSIONS_WITHOUT_RESET.items():
            assert _reachable([entered], permissions) <= latched, (cell, state, permission)


@pytest.mark.requirement("SR-RST-3")
def test_a_reset_during_a_fault_or_a_stop_demand_restarts_nothing() -> None:
    for state, event in itertools.product(STOPPED_STATES, E):
        if DEMAND[event][1] >= 2:
            assert TRANSITIONS[state][event][P.RESET] in STOPPED_STATES, (state, event)


@pytest.mark.requirement("SR-ZONE-3")
def test_a_restriction_is_released_only_beyond_its_hysteresis() -> None:
    # the release evaluation (with hysteresis) keeps what the cell already does, up to what it still demands
    for state, event, permission in ALL_COMBINATIONS:
        target = TRANSITIONS[state][event][permission]
        assert LEVEL[target] >= min(LEVEL[state], DEMAND[event][1]), (state, event, permission, target)


@pytest.mark.requirement("SR-ZONE-3")
def test_no_transition_is_less_restrictive_than_the_demand() -> None:
    for state, event, permission in ALL_COMBINATIONS:
        target = TRANSITIONS[state][event][permission]
        strict, _ = DEMAND[event]
        assert LEVEL[target] >= min(strict, 2), (state, event, permission, target)
        if strict == 3:
            assert target in FAULT_STATES | {INITIAL}, (state, event, permission, target)


@pytest.mark.requirement("SR-ZONE-3")
def test_no_transition_from_motion_is_more_restrictive_than_its_cause() -> None:
    """From motion, the new level is the strict demand, raised only by hysteresis up to the current level."""
    for state in MOTION:
        for event, permission in itertools.product(E, P):
            target = TRANSITIONS[state][event][permission]
            strict, release = DEMAND[event]
            if strict >= 2:
                continue
            ceiling = max(strict, min(release, LEVEL[state]))
            assert strict <= LEVEL[target] <= ceiling, (state, event, permission, target)


@pytest.mark.requirement("SR-RST-4")
def test_a_permitted_restart_goes_to_the_level_the_zones_allow() -> None:
    for state, event, permission in ALL_COMBINATIONS:
        target = TRANSITIONS[state][event][permission]
        if state in STOPPED_STATES and target in MOTION:
            assert LEVEL[target] == DEMAND[event][1], (state, event, permission, target)


WAITING = (S.NOT_ARMED, S.AWAITING_RESET, S.AWAITING_FAULT_RESET)  # clear of every cause: wait for permission


@pytest.mark.requirement("SR-RST-2")
@pytest.mark.parametrize("state", WAITING)
def test_a_waiting_stop_restarts_on_the_first_permitted_clear_cycle(state: ControllerState) -> None:
    """Never stop without cause: once clear, a reset edge (or the automatic restart) restarts at once."""
    permissions = [P.RESET, P.AUTO] if state == S.AWAITING_RESET else [P.RESET]
    for event, permission in itertools.product(E, permissions):
        if DEMAND[event][1] <= 1:
            target = TRANSITIONS[state][event][permission]
            assert target in MOTION and LEVEL[target] == DEMAND[event][1], (state, event, permission)


@pytest.mark.requirement("SR-RST-5")
def test_every_state_is_reachable_from_start_up() -> None:
    assert _reachable([INITIAL]) == set(S)
    for state in set(S) - {INITIAL}:
        assert _predecessors(state), f"{state.name} has no way in"


@pytest.mark.requirement("SR-RST-5")
def test_start_up_is_entered_only_once() -> None:
    assert not _predecessors(INITIAL)


@pytest.mark.requirement("SR-RST-5")
@pytest.mark.parametrize("state", sorted(S))
def test_no_state_is_a_dead_end(state: ControllerState) -> None:
    successors = {TRANSITIONS[state][e][p] for e, p in itertools.product(E, P)} - {state}
    assert successors, f"{state.name} has no way out"
    # production can always resume: with the zones clear and a reset edge, every state gets back to RUNNING
    assert S.RUNNING in _reachable([state], [P.NONE, P.RESET])
    if state != INITIAL:  # and every state but start-up can be entered again from anywhere
        assert all(state in _reachable([other]) for other in set(S) - {INITIAL})


# ---------------------------------------------------------------------------------- the link receiver

L, IN = ReceiverState, Input
LINK_COMBINATIONS = list(itertools.product(L, IN))


def _link_reachable(
    starts: Iterable[ReceiverState], inputs: Iterable[Input] = tuple(IN)
) -> set[ReceiverState]:
    allowed = tuple(inputs)
    seen = set(starts)
    frontier = list(seen)
    while frontier:
        state = frontier.pop()
        for event in allowed:
            target = LINK_TRANSITIONS[(state, event)]
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def test_the_link_table_is_total() -> None:
    assert set(LINK_TRANSITIONS) == set(LINK_COMBINATIONS)


@pytest.mark.requirement("SR-LINK-10")
def test_every_link_error_latches_until_a_reset() -> None:
    for state, event in LINK_COMBINATIONS:
        if event in (IN.FRAME_REJECTED, IN.WATCHDOG_EXPIRED) and state != L.AWAITING_FIRST:
            assert LINK_TRANSITIONS[(state, event)] == L.ERROR, (state, event)
    assert LINK_TRANSITIONS[(L.AWAITING_FIRST, IN.FRAME_REJECTED)] == L.ERROR
    # the watchdog is armed by the first accepted frame: before it there is nothing to time out
    assert LINK_TRANSITIONS[(L.AWAITING_FIRST, IN.WATCHDOG_EXPIRED)] == L.AWAITING_FIRST
    no_reset = [i for i in IN if i != IN.RESET]
    assert _link_reachable([L.ERROR], no_reset) == {L.ERROR}


@pytest.mark.requirement("SR-LINK-10")
def test_a_reset_link_needs_a_valid_frame_before_it_counts_as_connected() -> None:
    for state in L:
        assert LINK_TRANSITIONS[(state, IN.RESET)] == L.AWAITING_FIRST
    assert {s for s, i in LINK_COMBINATIONS if LINK_TRANSITIONS[(s, i)] == L.CONNECTED} == {
        L.AWAITING_FIRST,
        L.CONNECTED,
    }
    for state, event in LINK_COMBINATIONS:
        if LINK_TRANSITIONS[(state, event)] == L.CONNECTED:
            assert event == IN.FRAME_ACCEPTED, (state, event)


@pytest.mark.requirement("SR-LINK-10")
def test_every_link_state_is_reachable_and_none_is_a_dead_end() -> None:
    assert _link_reachable([L.AWAITING_FIRST]) == set(L)
    for state in L:
        assert L.CONNECTED in _link_reachable([state]), f"{state.name} never connects again"
        assert {LINK_TRANSITIONS[(state, i)] for i in IN} - {state}, f"{state.name} has no way out"


MS = 1_000_000
LATER = 500 * MS  # well past the watchdog (POLICY.watchdog_ns) of a frame received at 1 ms


def _frame(seq: int, t_ns: int, connection_id: int = CONNECTION_ID) -> bytes:
    return encode_frame(Command(CommandKind.RUN, 0.25), connection_id, seq, t_ns)


class _Reference:
    """The sans-IO Endpoint of a robot, driven by table inputs."""

    def __init__(self) -> None:
        self.ep = Endpoint(Role.ROBOT, CONNECTION_ID, POLICY, 0)
        self.ep.feed(b"\x00", 0)
        self.seq = 0

    def feed(self, data: bytes, t_ns: int) -> None:
        self.ep.feed(data, t_ns)
        while self.ep.next_event() is not NEED_DATA:
            pass

    def watchdog(self, t_ns: int) -> None:
        self.ep.check_watchdog(t_ns)

    def reset(self, t_ns: int) -> None:
        self.ep.reset(t_ns)

    @property
    def state(self) -> ReceiverState:
        return self.ep.state


class _Compiled:
    """The compiled receiver kernels of a robot, driven by table inputs."""

    def __init__(self) -> None:
        self.rx = cl.new_receivers([Role.ROBOT], [CONNECTION_ID], [POLICY], 0)
        self.buffers = cl.new_buffers(1)
        self.raw = np.zeros(MAX_FRAME_BYTES, dtype=np.uint8)
        self.feed(b"\x00", 0)

    def feed(self, data: bytes, t_ns: int) -> None:
        arr = np.frombuffer(data, dtype=np.uint8)
        pos = 0
        while pos < arr.shape[0]:
            pos = cl.feed(
                self.rx, 0, self.buffers, arr, pos, arr.shape[0], t_ns, self.raw, CRC_TABLE, cl.REASON_TABLE
            )
            if int(self.rx[0]["event"]) == cl.EVENT_ERROR:
                break

    def watchdog(self, t_ns: int) -> None:
        cl.check_watchdog(self.rx, 0, t_ns)

    def reset(self, t_ns: int) -> None:
        cl.reset(self.rx, 0, t_ns)

    @property
    def state(self) -> ReceiverState:
        return list(ReceiverState)[int(self.rx[0]["state"])]


def _bring_to(receiver: _Reference | _Compiled, state: ReceiverState) -> int:
    """Drive a fresh receiver into `state`; returns the sequence number a next valid frame carries."""
    if state == L.CONNECTED:
        receiver.feed(_frame(0, 1 * MS), 1 * MS)
    elif state == L.ERROR:
        receiver.feed(_frame(0, 1 * MS, connection_id=CONNECTION_ID + 1), 1 * MS)
    assert receiver.state == state
    return 1


def _apply(receiver: _Reference | _Compiled, event: Input, seq: int) -> None:
    inputs: dict[Input, Callable[[], None]] = {
        IN.FRAME_ACCEPTED: lambda: receiver.feed(_frame(seq, 2 * MS), 2 * MS),
        IN.FRAME_REJECTED: lambda: receiver.feed(_frame(seq, 2 * MS, CONNECTION_ID + 1), 2 * MS),
        IN.WATCHDOG_EXPIRED: lambda: receiver.watchdog(LATER),
        IN.RESET: lambda: receiver.reset(2 * MS),
    }
    inputs[event]()


@pytest.mark.requirement("SR-LINK-11")
@pytest.mark.parametrize("implementation", [_Reference, _Compiled], ids=["endpoint", "compiled"])
@pytest.mark.parametrize(("state", "event"), LINK_COMBINATIONS, ids=lambda v: v.name)
def test_both_receivers_follow_the_table(
    implementation: type[_Reference | _Compiled], state: ReceiverState, event: Input
) -> None:
    receiver = implementation()
    seq = _bring_to(receiver, state)
    _apply(receiver, event, seq)
    assert receiver.state == LINK_TRANSITIONS[(state, event)]
