"""The receiver's state machine, as data: every state change of a link endpoint happens through TRANSITIONS.

    AWAITING_FIRST --frame accepted--> CONNECTED
    AWAITING_FIRST --frame rejected--> ERROR
    CONNECTED      --frame rejected or watchdog expired--> ERROR
    ERROR          --anything but reset--> ERROR (latched: the application stops)
    any            --reset--> AWAITING_FIRST

AWAITING_FIRST means "no valid frame yet": the application must treat it as no data (stop), but it is not
latched, so a peer that starts later can connect. The watchdog is armed from the first accepted frame on.
"""

from __future__ import annotations

from enum import Enum


class ReceiverState(Enum):
    """What the endpoint knows about the peer's stream."""

    AWAITING_FIRST = "awaiting_first"  # after creation or reset: no valid frame yet (no data: stop)
    CONNECTED = "connected"  # valid frames arriving in sequence and in time
    ERROR = "error"  # an error was detected; latched until reset (stop)


class Input(Enum):
    """What can happen to a receiver."""

    FRAME_ACCEPTED = "frame_accepted"
    FRAME_REJECTED = "frame_rejected"  # any of the IEC 61784-3 error classes
    WATCHDOG_EXPIRED = "watchdog_expired"
    RESET = "reset"  # explicit, by the application (operator action)


S = ReceiverState
TRANSITIONS: dict[tuple[ReceiverState, Input], ReceiverState] = {
    (S.AWAITING_FIRST, Input.FRAME_ACCEPTED): S.CONNECTED,
    (S.AWAITING_FIRST, Input.FRAME_REJECTED): S.ERROR,
    (S.AWAITING_FIRST, Input.WATCHDOG_EXPIRED): S.AWAITING_FIRST,  # not armed before the first frame
    (S.AWAITING_FIRST, Input.RESET): S.AWAITING_FIRST,
    (S.CONNECTED, Input.FRAME_ACCEPTED): S.CONNECTED,
    (S.CONNECTED, Input.FRAME_REJECTED): S.ERROR,
    (S.CONNECTED, Input.WATCHDOG_EXPIRED): S.ERROR,
    (S.CONNECTED, Input.RESET): S.AWAITING_FIRST,
    (S.ERROR, Input.FRAME_ACCEPTED): S.ERROR,  # never reached: frames are dropped unread in ERROR
    (S.ERROR, Input.FRAME_REJECTED): S.ERROR,
    (S.ERROR, Input.WATCHDOG_EXPIRED): S.ERROR,
    (S.ERROR, Input.RESET): S.AWAITING_FIRST,
}


def transition(state: ReceiverState, event: Input) -> ReceiverState:
    """The next state; the table is total, so this never fails for valid enum members."""
    return TRANSITIONS[(state, event)]
