"""Pure acceptance checks of a received frame: addressing, roles, sequence and timing.

Each check returns None when the frame is acceptable, or (Reason, detail) naming the IEC 61784-3 error
class that the frame is evidence of. Order matters: the most specific explanation is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from cobotguard.safety.link.codec import SEQ_MODULO, Header
from cobotguard.safety.link.messages import MessageType
from cobotguard.safety.reasons import Reason

Verdict = tuple[Reason, str] | None
# The most command send times a receiver keeps for age by echo (the compiled receiver's record holds this
# many; the configuration check keeps a cell's ring within it).
ECHO_RING_CAPACITY = 512
_MESSAGE_TYPES = {int(m): m for m in MessageType}
DEFAULT_MAX_CLOCK_LEAD_NS = 1_000_000


class DelayCheck(IntEnum):
    """How a receiver bounds the age of a frame (check 10 of docs/protocol.md, section 7)."""

    SENDER_TIME = 0  # receive time - (sender time + clock offset): both ends on one clock (or a known offset)
    ECHO = 1  # controller end of a robot on its own clock: receive time - send time of the echoed command
    NONE = 2  # robot end of a robot on its own clock: its command watchdog bounds command age


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
    delay_check: DelayCheck = DelayCheck.SENDER_TIME
    echo_ring: int = 0  # with DelayCheck.ECHO: how many command send times the sender side remembers

    def __post_init__(self) -> None:
        if self.max_delay_ns <= 0 or self.watchdog_ns <= 0:
            raise ValueError("max_delay_ns and watchdog_ns must be > 0 (a zero timeout would disable them)")
        if self.tolerated_losses < 0 or self.max_clock_lead_ns < 0:
            raise ValueError("tolerated_losses and max_clock_lead_ns must be >= 0")
        if (self.delay_check is DelayCheck.ECHO) != (self.echo_ring > 0):
            raise ValueError("echo_ring: expected > 0 exactly when delay_check is DelayCheck.ECHO")


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


class EchoRing:
    """Send times of the last `size` commands, by sequence number: what an echo is aged against.

    Preallocated; `record` overwrites the oldest entry. `sent` counts every command recorded (not
    wrapped), so an echo of a sequence number never sent is told from one that fell out of the ring.
    """

    __slots__ = ("size", "sent_ns", "sent", "newest_seq")

    def __init__(self, size: int) -> None:
        """An empty ring of `size` entries (size > 0)."""
        if size <= 0:
            raise ValueError(f"echo ring size: expected > 0, got {size}")
        self.size = size
        self.sent_ns = [0] * size
        self.sent = 0
        self.newest_seq = 0

    def record(self, seq: int, t_sent_ns: int) -> None:
        """Remember that command `seq` was stamped and sent at t_sent_ns."""
        self.sent_ns[seq % self.size] = t_sent_ns
        self.sent += 1
        self.newest_seq = seq


def check_echo(
    echo: int, last_echo: int, t_received_ns: int, ring: EchoRing, policy: LinkPolicy
) -> tuple[Verdict, int]:
    """Age a ROBOT_STATE by the command it echoes: (verdict, the echoed command's send time).

    `echo` is the state's last command sequence (-1: none accepted yet; its age is unknown, which the
    step treats as stale, so the send time returned is 0); `last_echo` the previous accepted state's
    (-1 when none since reset). Classes: an echo of a command never sent is insertion (the frame answers
    a stream this controller did not send); an echo behind the previous one is an incorrect sequence;
    an echo too old for the ring, or aged beyond the limit, is an unacceptable delay.
    """
    if echo < 0:
        return None, 0
    back = (ring.newest_seq - echo) % SEQ_MODULO  # how many commands ago it was sent; 0: the newest
    if ring.sent == 0 or back >= SEQ_MODULO // 2 or back >= ring.sent:
        return (
            Reason.LINK_INSERTION,
            f"robot state echoes command {echo}, which this controller never sent "
            f"(newest sent {ring.newest_seq if ring.sent else 'none'}): not a reply to this link",
        ), 0
    if last_echo >= 0 and (echo - last_echo) % SEQ_MODULO >= SEQ_MODULO // 2:
        return (
            Reason.LINK_INCORRECT_SEQUENCE,
            f"robot state echoes command {echo}, behind the previous state's echo {last_echo}",
        ), 0
    if back >= ring.size:
        return (
            Reason.LINK_UNACCEPTABLE_DELAY,
            f"robot state echoes command {echo}, sent {back} commands ago: older than the "
            f"{ring.size} remembered, so older than the limit {policy.max_delay_ns} ns",
        ), 0
    t_command_ns = ring.sent_ns[echo % ring.size]
    age = t_received_ns - t_command_ns
    if age > policy.max_delay_ns:
        return (
            Reason.LINK_UNACCEPTABLE_DELAY,
            f"robot state echoing command {echo} is up to {age} ns old, limit {policy.max_delay_ns} ns",
        ), 0
    if age < -policy.max_clock_lead_ns:
        return (
            Reason.LINK_UNACCEPTABLE_DELAY,
            f"robot state echoing command {echo} arrived {-age} ns before that command was sent",
        ), 0
    return None, t_command_ns
