"""libc calls the compiled hard loop makes without the interpreter: clock, wait, read, write.

numba calls ctypes function pointers in nopython mode, so a `@njit(nogil=True)` function can read the
clock, wait in ppoll and move bytes through file descriptors with no Python object and no GIL. Buffers
are passed as addresses (`array.ctypes.data`); every buffer is preallocated by the caller.

Linux only (CLOCK_MONOTONIC = 1, struct pollfd and struct timespec layouts of x86-64 and aarch64).
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
from numba import njit

CLOCK_MONOTONIC = 1  # Linux value; time.monotonic_ns reads the same clock
POLLIN = 0x001
POLLERR = 0x008
POLLHUP = 0x010
POLLNVAL = 0x020
POLL_FAILED = POLLERR | POLLHUP | POLLNVAL
NS_PER_S = 1_000_000_000

# struct pollfd {int fd; short events; short revents;}: 8 bytes, packed as one int64 per descriptor
POLLFD_DTYPE = np.dtype([("fd", np.int32), ("events", np.int16), ("revents", np.int16)])


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


_LIBC = _libc()

_clock_gettime = _LIBC.clock_gettime
_clock_gettime.argtypes = [ctypes.c_int, ctypes.c_void_p]
_clock_gettime.restype = ctypes.c_int

_ppoll = _LIBC.ppoll
_ppoll.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p]
_ppoll.restype = ctypes.c_int

_read = _LIBC.read
_read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_read.restype = ctypes.c_ssize_t

_write = _LIBC.write
_write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_write.restype = ctypes.c_ssize_t


def new_timespec() -> np.ndarray:
    """A preallocated struct timespec (two int64: seconds, nanoseconds)."""
    return np.zeros(2, dtype=np.int64)


@njit(cache=False, nogil=True)
def monotonic_ns(ts: np.ndarray) -> int:
    """CLOCK_MONOTONIC in int64 ns, read through libc into the scratch timespec `ts`."""
    _clock_gettime(CLOCK_MONOTONIC, ts.ctypes.data)
    return ts[0] * NS_PER_S + ts[1]


@njit(cache=False, nogil=True)
def wait_readable(pollfds: np.ndarray, n: int, timeout_ns: int, ts: np.ndarray) -> int:
    """ppoll on the first `n` pollfds (POLLFD_DTYPE viewed as int64) for at most `timeout_ns` (>= 0).

    Returns the number of descriptors with events (0: timeout, -1: interrupted or failed; callers just
    look at the clock again). `revents` are cleared first, so stale events never survive a call.
    """
    for i in range(n):
        pollfds[i] = pollfds[i] & np.int64(0x0000FFFFFFFFFFFF)  # clear revents (the top 16 bits)
    if timeout_ns < 0:
        timeout_ns = 0
    ts[0] = timeout_ns // NS_PER_S
    ts[1] = timeout_ns % NS_PER_S
    return _ppoll(pollfds.ctypes.data, n, ts.ctypes.data, 0)


@njit(cache=False, inline="always")
def revents(pollfds: np.ndarray, i: int) -> int:
    """The revents of pollfd i after `wait_readable`."""
    return int((pollfds[i] >> np.int64(48)) & np.int64(0xFFFF))


@njit(cache=False, nogil=True)
def read_into(fd: int, buf: np.ndarray, max_bytes: int) -> int:
    """read(2) up to `max_bytes` into `buf` (uint8); bytes read, 0 at end of file, -1 nothing or error."""
    return _read(fd, buf.ctypes.data, max_bytes)


@njit(cache=False, nogil=True)
def write_all(fd: int, buf: np.ndarray, n: int) -> bool:
    """write(2) the first `n` bytes of `buf` without waiting; False if the descriptor took fewer."""
    done = 0
    for _ in range(4):  # a pty or UART may take a frame in parts; a full buffer is a failure, not a wait
        k = _write(fd, buf[done:].ctypes.data, n - done)
        if k <= 0:
            return False
        done += k
        if done >= n:
            return True
    return False


def pollfds_for(fds: list[int]) -> np.ndarray:
    """A pollfd array (as int64, one per descriptor) waiting for input on each of `fds`."""
    table = np.zeros(len(fds), dtype=POLLFD_DTYPE)
    table["fd"] = fds
    table["events"] = POLLIN
    return table.view(np.int64).copy()


def warm_up() -> None:
    """Compile every kernel here (before arming, never in the loop)."""
    ts = new_timespec()
    monotonic_ns(ts)
    fds = pollfds_for([-1])  # a negative descriptor is ignored by ppoll
    wait_readable(fds, 1, 0, ts)
    revents(fds, 0)
    buf = np.zeros(1, dtype=np.uint8)
    read_into(-1, buf, 1)
    write_all(-1, buf, 1)
