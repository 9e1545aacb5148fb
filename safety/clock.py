"""Injected clocks: the real monotonic clock and a simulated one for tests, both in int64 nanoseconds.

The executor never calls `time` itself; it asks its clock. `MonotonicClock.sleep_until` waits for an
absolute deadline by sleeping until `spin_ns` before it (absolute `clock_nanosleep` where libc has it)
and then spinning on the clock, which trades one core's time for a wake-up latency that does not depend
on the scheduler's timer slack. `SimulatedClock` only moves when told to, so timing tests are exact.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Protocol

DEFAULT_SPIN_NS = 200_000  # sleep to deadline - 200 us, then spin: enough for this VM's wake-up jitter


class Clock(Protocol):
    """What the executor needs from a clock."""

    def now_ns(self) -> int:
        """Current time, int64 nanoseconds on a monotonic clock."""
        ...

    def sleep_until(self, deadline_ns: int) -> int:
        """Return no earlier than `deadline_ns`; returns the time of waking."""
        ...


def is_real_time(clock: object) -> bool:
    """Does time pass on its own on `clock`? (`real_time` attribute; a clock without one counts as real.)"""
    return bool(getattr(clock, "real_time", True))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_CLOCK_MONOTONIC = 1  # Linux value; time.monotonic_ns reads the same clock
_TIMER_ABSTIME = 1


def _load_clock_nanosleep() -> Callable[[int], None] | None:
    """An absolute-deadline sleep on CLOCK_MONOTONIC through libc, or None where unavailable."""
    try:
        if time.get_clock_info("monotonic").implementation != "clock_gettime(CLOCK_MONOTONIC)":
            return None
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)  # releases the GIL
        fn = libc.clock_nanosleep
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.POINTER(_Timespec)]
    fn.restype = ctypes.c_int
    request = _Timespec()  # preallocated: no allocation per call beyond ctypes' own conversion
    request_ref = ctypes.byref(request)

    def sleep_abs(deadline_ns: int) -> None:
        request.tv_sec, request.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        while fn(_CLOCK_MONOTONIC, _TIMER_ABSTIME, request_ref, None) != 0:  # EINTR: sleep again
            pass

    return sleep_abs


_sleep_abs = _load_clock_nanosleep()


def sleep_until_plain(deadline_ns: int) -> int:
    """Baseline: one relative `time.sleep` to the deadline, no spinning. Returns the wake time."""
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)
    return time.monotonic_ns()


def sleep_until_spin(deadline_ns: int, spin_ns: int = DEFAULT_SPIN_NS) -> int:
    """Sleep until `spin_ns` before the absolute deadline, then spin on the clock. Returns the wake time."""
    coarse = deadline_ns - spin_ns
    now = time.monotonic_ns()
    if coarse > now:
        if _sleep_abs is not None:
            _sleep_abs(coarse)
        else:
            time.sleep((coarse - now) / 1e9)
    now = time.monotonic_ns()
    while now < deadline_ns:
        now = time.monotonic_ns()
    return now


class MonotonicClock:
    """The real clock: `time.monotonic_ns`, sleep-then-spin to absolute deadlines."""

    real_time = True  # time passes on its own: the loop cannot wait for its trace without missing deadlines

    def __init__(self, spin_ns: int = DEFAULT_SPIN_NS) -> None:
        if spin_ns < 0:
            raise ValueError("spin_ns must be >= 0")
        self.spin_ns = spin_ns

    def now_ns(self) -> int:
        """Current time on CLOCK_MONOTONIC, nanoseconds."""
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> int:
        """Wait for the absolute deadline (sleep, then spin the last `spin_ns`); returns the wake time."""
        return sleep_until_spin(deadline_ns, self.spin_ns)


class SimulatedClock:
    """A clock that moves only when told: `advance(ns)`, or `sleep_until` jumping to the deadline.

    `wake_latency_ns(deadline)` (optional) says how late each wake-up is, to model a late scheduler;
    ports and test hooks call `advance` to model time spent in a stage.
    """

    real_time = False  # time stands still while the loop waits (e.g. for its trace to be written)

    def __init__(self, start_ns: int = 0, wake_latency_ns: Callable[[int], int] | None = None) -> None:
        self._now = int(start_ns)
        self._wake_latency_ns = wake_latency_ns

    def now_ns(self) -> int:
        """Current simulated time."""
        return self._now

    def advance(self, duration_ns: int) -> int:
        """Move time forward by `duration_ns` (>= 0); returns the new time."""
        if duration_ns < 0:
            raise ValueError("a simulated clock never goes backwards")
        self._now += int(duration_ns)
        return self._now

    def sleep_until(self, deadline_ns: int) -> int:
        """Jump to the deadline (if it is ahead) plus the modelled wake-up latency; returns the wake time."""
        late = self._wake_latency_ns(deadline_ns) if self._wake_latency_ns is not None else 0
        self._now = max(self._now, int(deadline_ns)) + max(0, int(late))
        return self._now
