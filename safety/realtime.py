"""Real-time settings for the loop thread: SCHED_FIFO, CPU affinity, mlockall, and undoing them.

Each setting is tried and, when the system does not permit it, reported as a one-line warning instead
of failing: the loop still runs, with worse wake-up latency, and the caller says so to the user.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from dataclasses import dataclass, field

_MCL_CURRENT = 1
_MCL_FUTURE = 2


@dataclass
class RealtimeSettings:
    """What was applied to the calling thread, what was refused, and how to restore it."""

    applied: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _old_policy: int | None = None
    _old_param: os.sched_param | None = None
    _old_affinity: set[int] | None = None
    _locked: bool = False

    @property
    def memory_locked(self) -> bool:
        """True while this object holds the process memory locked."""
        return self._locked

    def restore(self, unlock_memory: bool = True) -> None:
        """Put the calling thread's scheduling back and (unless told not to) unlock memory."""
        if self._old_policy is not None and self._old_param is not None:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, self._old_policy, self._old_param)
            self._old_policy = None
        if self._old_affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self._old_affinity)
            self._old_affinity = None
        if self._locked and unlock_memory:
            libc = _libc()
            if libc is not None:
                libc.munlockall()
            self._locked = False


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def apply_realtime(priority: int = 80, cpu: int | None = None, lock_memory: bool = True) -> RealtimeSettings:
    """Try SCHED_FIFO at `priority`, pinning to `cpu` (None: leave affinity) and mlockall for this thread.

    Linux applies scheduling policy and affinity per thread: call this from the loop's own thread.
    """
    settings = RealtimeSettings()
    if hasattr(os, "sched_setscheduler"):
        try:
            settings._old_policy = os.sched_getscheduler(0)
            settings._old_param = os.sched_getparam(0)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            settings.applied.append(f"SCHED_FIFO priority {priority}")
        except OSError as exc:
            settings._old_policy = None
            settings.warnings.append(
                f"SCHED_FIFO not permitted ({exc.strerror}); the loop runs at normal priority and its "
                "wake-up latency is not bounded (run as root or grant CAP_SYS_NICE / an rtprio limit)"
            )
    else:
        settings.warnings.append("SCHED_FIFO not available on this platform; wake-up latency is not bounded")
    if cpu is not None:
        try:
            settings._old_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {cpu})
            settings.applied.append(f"pinned to CPU {cpu}")
        except (OSError, AttributeError) as exc:
            settings._old_affinity = None
            settings.warnings.append(f"CPU affinity {cpu} not set ({exc}); the loop may migrate between CPUs")
    if lock_memory:
        libc = _libc()
        if libc is not None and libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) == 0:
            settings._locked = True
            settings.applied.append("memory locked (mlockall)")
        else:
            errno = ctypes.get_errno() if libc is not None else 0
            settings.warnings.append(
                f"mlockall failed ({os.strerror(errno) if errno else 'no libc'}); page faults may delay the "
                "loop (raise the memlock limit or run with CAP_IPC_LOCK)"
            )
    return settings


def split_cpus() -> tuple[int | None, set[int] | None]:
    """A CPU for the hard loop alone (the last allowed one) and the CPUs for everything else.

    (None, None) where fewer than two CPUs are allowed: then nothing is pinned.
    """
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2:
        return None, None
    return allowed[-1], set(allowed[:-1])


def keep_off_cpu(cpu: int) -> set[int] | None:
    """Pin the calling thread (and threads it starts later) to the allowed CPUs other than `cpu`.

    Returns the previous affinity to restore, or None when nothing was changed (no other CPU, or refused).
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    before = os.sched_getaffinity(0)
    others = before - {cpu}
    if not others or others == before:
        return None
    try:
        os.sched_setaffinity(0, others)
    except OSError:
        return None
    return before


def apply_loop_realtime(
    priority: int, cpu: int | None, lock_memory: bool, warnings: list[str]
) -> RealtimeSettings:
    """`apply_realtime` for a loop thread; refusals not yet in `warnings` are added to it and logged."""
    import logging

    settings = apply_realtime(priority, cpu, lock_memory=lock_memory)
    for warning in settings.warnings:
        if warning not in warnings:
            warnings.append(warning)
            logging.getLogger("cobotguard.executor").warning(warning)
    return settings
