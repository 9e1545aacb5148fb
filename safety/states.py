"""The controller's state machine as data: states, events, restart permissions and the transition table.

Every state change of the safety step happens by looking up `TRANSITION_TABLE[state, event, permission]`
and nowhere else (h11 style). The step turns each cycle's inputs into exactly one `Event` (what the
strict and the release evaluation demand) and one `Permission` (may a stopped cell restart now).

Rules encoded here:
- a stop or a fault always wins at once; hysteresis only delays *release* (the HOLD_* events);
- after any stop the cell stays stopped until the zones are clear *and* a reset rising edge arrives, or,
  after a protective stop only, the automatic-restart time has elapsed (when the configuration allows it);
- fault stops and start-up (NOT_ARMED) always need a reset edge.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class ControllerState(IntEnum):
    """Where the controller is; the command kind follows from it."""

    NOT_ARMED = 0  # start-up: stopped until the first reset edge with everything clear
    RUNNING = 1
    SLOWED = 2
    PROTECTIVE_STOPPED = 3  # a person is (or was, within the release hysteresis) too close
    AWAITING_RESET = 4  # protective stop, zones clear: waiting for a reset edge or the auto-restart time
    FAULT_STOPPED = 5  # a fault is present
    AWAITING_FAULT_RESET = 6  # fault gone: waiting for a reset edge (never automatic)


class Event(IntEnum):
    """What one cycle's evaluation demands: (strict level, release level with hysteresis) folded to one."""

    FAULT = 0  # any fault
    STOP = 1  # strict: stop
    SLOW_HOLD_STOP = 2  # strict: slow; with hysteresis: stop
    HOLD_STOP = 3  # strict: clear; with hysteresis: stop
    SLOW = 4  # strict: slow; with hysteresis: slow
    HOLD_SLOW = 5  # strict: clear; with hysteresis: slow
    CLEAR = 6  # nothing restricts motion, even with hysteresis


class Permission(IntEnum):
    """Whether a stopped cell may restart this cycle."""

    NONE = 0
    AUTO = 1  # automatic restart allowed and the state has lasted the configured clear time
    RESET = 2  # reset input rising edge this cycle


S = ControllerState
E = Event

_ANY = (Permission.NONE, Permission.AUTO, Permission.RESET)


def _same(target: ControllerState) -> dict[Permission, ControllerState]:
    return {p: target for p in _ANY}


def _restart(
    waiting: ControllerState, target: ControllerState, *, auto: bool
) -> dict[Permission, ControllerState]:
    return {
        Permission.NONE: waiting,
        Permission.AUTO: target if auto else waiting,
        Permission.RESET: target,
    }


def _waiting_for_edge(waiting: ControllerState, on_fault: ControllerState) -> dict[Event, dict]:
    return {
        E.FAULT: _same(on_fault),
        E.STOP: _same(waiting),
        E.SLOW_HOLD_STOP: _same(waiting),
        E.HOLD_STOP: _same(waiting),
        E.SLOW: _restart(waiting, S.SLOWED, auto=False),
        E.HOLD_SLOW: _restart(waiting, S.SLOWED, auto=False),
        E.CLEAR: _restart(waiting, S.RUNNING, auto=False),
    }


# (state, event) -> {permission: next state}
TRANSITIONS: dict[ControllerState, dict[Event, dict[Permission, ControllerState]]] = {
    S.NOT_ARMED: _waiting_for_edge(S.NOT_ARMED, on_fault=S.NOT_ARMED),
    S.RUNNING: {
        E.FAULT: _same(S.FAULT_STOPPED),
        E.STOP: _same(S.PROTECTIVE_STOPPED),
        E.SLOW_HOLD_STOP: _same(S.SLOWED),
        E.HOLD_STOP: _same(S.RUNNING),  # hysteresis never delays a stop, nor starts one
        E.SLOW: _same(S.SLOWED),
        E.HOLD_SLOW: _same(S.RUNNING),
        E.CLEAR: _same(S.RUNNING),
    },
    S.SLOWED: {
        E.FAULT: _same(S.FAULT_STOPPED),
        E.STOP: _same(S.PROTECTIVE_STOPPED),
        E.SLOW_HOLD_STOP: _same(S.SLOWED),
        E.HOLD_STOP: _same(S.SLOWED),
        E.SLOW: _same(S.SLOWED),
        E.HOLD_SLOW: _same(S.SLOWED),  # release only beyond the hysteresis
        E.CLEAR: _same(S.RUNNING),  # slowing has no restart interlock
    },
    S.PROTECTIVE_STOPPED: {
        E.FAULT: _same(S.FAULT_STOPPED),
        E.STOP: _same(S.PROTECTIVE_STOPPED),
        E.SLOW_HOLD_STOP: _same(S.PROTECTIVE_STOPPED),
        E.HOLD_STOP: _same(S.PROTECTIVE_STOPPED),
        E.SLOW: _same(S.AWAITING_RESET),  # clear of every stop criterion, with hysteresis
        E.HOLD_SLOW: _same(S.AWAITING_RESET),
        E.CLEAR: _same(S.AWAITING_RESET),
    },
    S.AWAITING_RESET: {
        E.FAULT: _same(S.FAULT_STOPPED),
        E.STOP: _same(S.PROTECTIVE_STOPPED),
        E.SLOW_HOLD_STOP: _same(S.PROTECTIVE_STOPPED),  # no longer clear: the clear time starts over
        E.HOLD_STOP: _same(S.PROTECTIVE_STOPPED),
        E.SLOW: _restart(S.AWAITING_RESET, S.SLOWED, auto=True),
        E.HOLD_SLOW: _restart(S.AWAITING_RESET, S.SLOWED, auto=True),
        E.CLEAR: _restart(S.AWAITING_RESET, S.RUNNING, auto=True),
    },
    S.FAULT_STOPPED: {
        E.FAULT: _same(S.FAULT_STOPPED),
        E.STOP: _same(S.AWAITING_FAULT_RESET),
        E.SLOW_HOLD_STOP: _same(S.AWAITING_FAULT_RESET),
        E.HOLD_STOP: _same(S.AWAITING_FAULT_RESET),
        E.SLOW: _same(S.AWAITING_FAULT_RESET),
        E.HOLD_SLOW: _same(S.AWAITING_FAULT_RESET),
        E.CLEAR: _same(S.AWAITING_FAULT_RESET),
    },
    S.AWAITING_FAULT_RESET: _waiting_for_edge(S.AWAITING_FAULT_RESET, on_fault=S.FAULT_STOPPED),
}


def _compile_table() -> np.ndarray:
    table = np.full((len(S), len(E), len(Permission)), -1, dtype=np.int32)
    for state, by_event in TRANSITIONS.items():
        for event, by_permission in by_event.items():
            for permission, target in by_permission.items():
                table[state, event, permission] = target
    return table


# TRANSITION_TABLE[state, event, permission] -> next state; read by the compiled step.
TRANSITION_TABLE: np.ndarray = _compile_table()
TRANSITION_TABLE.setflags(write=False)

STOPPED_STATES = frozenset(
    {S.NOT_ARMED, S.PROTECTIVE_STOPPED, S.AWAITING_RESET, S.FAULT_STOPPED, S.AWAITING_FAULT_RESET}
)


def next_state(state: ControllerState, event: Event, permission: Permission) -> ControllerState:
    """The state after `event` with restart `permission`, from the table."""
    return TRANSITIONS[state][event][permission]


def event_for(strict_level: int, release_level: int) -> Event:
    """Fold the strict and the release (hysteresis) levels (0 run, 1 slow, 2 stop, 3 fault) to an event."""
    if strict_level >= 3:
        return E.FAULT
    if strict_level == 2:
        return E.STOP
    if strict_level == 1:
        return E.SLOW_HOLD_STOP if release_level >= 2 else E.SLOW
    if release_level >= 2:
        return E.HOLD_STOP
    if release_level == 1:
        return E.HOLD_SLOW
    return E.CLEAR


def diagram() -> str:
    """A Graphviz dot drawing of the transition table (for the docs)."""
    lines = ["digraph controller {"]
    for state, by_event in TRANSITIONS.items():
        for event, by_permission in by_event.items():
            targets = set(by_permission.values())
            for permission, target in by_permission.items():
                if target == state or (len(targets) == 1 and permission != Permission.NONE):
                    continue
                label = event.name if len(targets) == 1 else f"{event.name}+{permission.name}"
                lines.append(f'  {state.name} -> {target.name} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines)
