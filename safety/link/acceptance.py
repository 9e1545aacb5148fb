"""Pure acceptance checks of a received frame: addressing, roles, sequence and timing.

Each check returns None when the frame is acceptable, or (Reason, detail) naming the IEC 61784-3 error
class that the frame is evidence of. Order matters: the most specific explanation is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from cobotguard.safety.link.codec import SEQ_MODULO, Header
from cobotguard.safety.link.messages import MessageType
from cobotguard.safety.reasons import Reason

Verdict = tuple[Reason, str] | None
_MESSAGE_TYPES = {int(m): m for m in MessageType}
DEFAULT_MAX_CLOCK_LEAD_NS = 1_000_000


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """Timing and tolerance of one receiving endpoint (all times int64 ns)."""

    max_delay_ns: int  # frame older than this on arrival (receive time - sender time): unacceptable delay
    watchdog_ns: int  # no valid frame for longer than this after the first one: timeout
    tolerated_losses: int = 0  # sequence gaps of up to this many missing frames are accepted
    clock_offset_ns: int = 0  # receiver clock minus sender clock; 0 when both read one CLOCK_MONOTONIC
    max_clock_lead_ns: int = (
        DEFAULT_MAX_CLOCK_LEAD_NS  # sender time may be ahead of the receiver's by this much
    )

    def __post_init__(self) -> None:
        if self.max_delay_ns <= 0 or self.watchdog_ns <= 0:
            raise ValueError("max_delay_ns and watchdog_ns must be > 0 (a zero timeout would disable them)")
        if self.tolerated_losses < 0 or self.max_clock_lead_ns < 0:
            raise ValueError("tolerated_losses and max_clock_lead_ns must be >= 0")


class PeerHistory(NamedTuple):
    """What the receiver remembers of the last accepted frame."""

    seq: int
    t_sent_ns: int


def check_addressing(header: Header, connection_id: int) -> Verdict:
    """A frame for another connection is an addressing error."""
    if header.connection_id != connection_id:
        return (
            Reason.LINK_ADDRESSING,
            f"connection ID 0x{header.connection_id:04x}, this link is 0x{connection_id:04x}",
        )
    return None


def check_role(header: Header, accepts: frozenset[MessageType], sends: frozenset[MessageType]) -> Verdict:
    """A valid frame of a type the peer must not send (or our own type: an echo) is a masquerade."""
    kind = header.message_type
    known = _MESSAGE_TYPES
    if kind not in known:
        return Reason.LINK_MASQUERADE, f"unknown message type {kind}"
    if known[kind] in sends:
        return (
            Reason.LINK_MASQUERADE,
            f"{known[kind].name} frame is a type this end sends (echo or loop-back?)",
        )
    if known[kind] not in accepts:
        return Reason.LINK_MASQUERADE, f"{known[kind].name} frame is not a type this end accepts"
    return None


def check_sequence(header: Header, last: PeerHistory | None, tolerated_losses: int) -> Verdict:
    """Repetition, incorrect sequence, insertion and loss, from sequence numbers and sender times."""
    if last is None:
        return None  # the first frame after reset sets the baseline
    gap = (header.seq - last.seq) % SEQ_MODULO
    if gap == 0:
        return Reason.LINK_REPETITION, f"sequence {header.seq} received again"
    if gap >= SEQ_MODULO // 2:
        return Reason.LINK_INCORRECT_SEQUENCE, f"sequence {header.seq} is older than the last {last.seq}"
    if header.t_sent_ns <= last.t_sent_ns:
        return (
            Reason.LINK_INSERTION,
            f"sequence {header.seq} advanced but sender time {header.t_sent_ns} did not "
            f"(last {last.t_sent_ns}): not from the peer's stream",
        )
    if gap > 1 + tolerated_losses:
        return Reason.LINK_LOSS, f"{gap - 1} frame(s) lost between sequence {last.seq} and {header.seq}"
    return None


def check_delay(header: Header, t_received_ns: int, policy: LinkPolicy) -> Verdict:
    """Age on arrival must lie in [-max_clock_lead_ns, max_delay_ns]."""
    age = t_received_ns - (header.t_sent_ns + policy.clock_offset_ns)
    if age > policy.max_delay_ns:
        return (
            Reason.LINK_UNACCEPTABLE_DELAY,
            f"frame {header.seq} is {age} ns old, limit {policy.max_delay_ns} ns",
        )
    if age < -policy.max_clock_lead_ns:
        return (
            Reason.LINK_UNACCEPTABLE_DELAY,
            f"frame {header.seq} sender time is {-age} ns ahead of the receiver clock "
            f"(limit {policy.max_clock_lead_ns} ns): clocks disagree, its age is unknown",
        )
    return None
