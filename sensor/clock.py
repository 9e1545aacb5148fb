"""A sensor host's own clock and its side of the clock sync (docs/protocol.md, section 14).

`OwnClock` reads a base clock (CLOCK_MONOTONIC by default) through an offset and a drift, and can be
stepped or given another drift while running (fault injection). `SyncResponder` is the sensor end's
sans-IO answer to SYNC_REQUESTs: bytes in (stamped on the sensor's clock), SYNC_REPLY frames out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

NS_PER_S = 1_000_000_000
PPB_PER_PPM = 1_000


class OwnClock:
    """base() + offset + drift x (base() - origin) + steps, in int64 ns; callable like time.monotonic_ns.

    Monotonic as long as the drift stays above -10^6 ppm and no negative step is applied.
    """

    def __init__(
        self, offset_ns: int = 0, drift_ppm: float = 0.0, base: Callable[[], int] = time.monotonic_ns
    ) -> None:
        """A clock `offset_ns` ahead of `base` now, running `drift_ppm` fast (negative: slow)."""
        self.base = base
        self._origin = base()
        self._at_origin = self._origin + offset_ns
        self._drift_ppb = round(drift_ppm * PPB_PER_PPM)

    def at(self, t_base_ns: int) -> int:
        """The reading of this clock at base time t_base_ns."""
        elapsed = t_base_ns - self._origin
        return self._at_origin + elapsed + elapsed * self._drift_ppb // NS_PER_S

    def __call__(self) -> int:
        """Now, on this clock."""
        return self.at(self.base())

    @property
    def drift_ppm(self) -> float:
        """The drift it runs at now."""
        return self._drift_ppb / PPB_PER_PPM

    def step(self, step_ns: int) -> None:
        """Jump by step_ns from now on (as a clock set while running)."""
        self._at_origin += step_ns

    def set_drift(self, drift_ppm: float) -> None:
        """Run at another drift from now on, without a jump."""
        now = self.base()
        self._at_origin = self.at(now)
        self._origin = now
        self._drift_ppb = round(drift_ppm * PPB_PER_PPM)


class SyncResponder:
    """The sensor end of the clock sync, on a `Role.SENSOR` endpoint (safety.link.Endpoint).

    `receive(data, t_ns)` feeds bytes that arrived at sensor time t_ns and returns the SYNC_REPLY frames
    to write, each stamped with `clock()` when built. A receiver error (a lost or damaged request) is
    counted and the receiver reset: the controller judges the time, by the replies it does not get.
    """

    def __init__(self, endpoint: Any, clock: Callable[[], int]) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.replies = 0
        self.errors = 0
        self.last_sent_ns: int | None = None  # the sender time of the last frame this end sent

    def receive(self, data: bytes, t_ns: int) -> bytes:
        """Replies (possibly b"") to the requests completed by `data`."""
        from cobotguard.safety.link import NEED_DATA, LinkError, Received, SyncReply, SyncRequest

        self.endpoint.feed(data, t_ns)
        out = b""
        while (event := self.endpoint.next_event()) is not NEED_DATA:
            if isinstance(event, LinkError):
                self.errors += 1
                self.endpoint.reset(t_ns)
                break
            if isinstance(event, Received) and isinstance(event.message, SyncRequest):
                reply = SyncReply(event.seq, event.t_sent_ns, event.t_received_ns)
                now = self.clock()
                out += self.endpoint.send(reply, now)
                self.last_sent_ns = now
                self.replies += 1
        return out
