"""Two endpoints wired together through bytes, for tests and simulations (no transport, no clock)."""

from __future__ import annotations

from dataclasses import dataclass

from cobotguard.safety.link.endpoint import NEED_DATA, Endpoint, Event
from cobotguard.safety.link.messages import Message


def drain(endpoint: Endpoint) -> list[Event]:
    """Every event waiting in `endpoint`, in order."""
    events: list[Event] = []
    while (event := endpoint.next_event()) is not NEED_DATA:
        events.append(event)
    return events


@dataclass
class Pair:
    """`a` and `b` connected by an ideal wire; use `transfer` directly to deliver tampered bytes."""

    a: Endpoint
    b: Endpoint

    def a_to_b(self, message: Message, t_send_ns: int, t_receive_ns: int | None = None) -> list[Event]:
        """Send from a, deliver to b (at t_receive_ns, default the send time); b's events."""
        t_receive = t_send_ns if t_receive_ns is None else t_receive_ns
        return self.transfer(self.a, self.b, self.a.send(message, t_send_ns), t_receive)

    def b_to_a(self, message: Message, t_send_ns: int, t_receive_ns: int | None = None) -> list[Event]:
        """Send from b, deliver to a; a's events."""
        t_receive = t_send_ns if t_receive_ns is None else t_receive_ns
        return self.transfer(self.b, self.a, self.b.send(message, t_send_ns), t_receive)

    @staticmethod
    def transfer(sender: Endpoint, receiver: Endpoint, data: bytes, t_receive_ns: int) -> list[Event]:
        """Feed `data` to the receiver at t_receive_ns and drain its events."""
        receiver.feed(data, t_receive_ns)
        return drain(receiver)
