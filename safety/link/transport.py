"""Thin byte transports for the link: pyserial ports, pty pairs (virtual null-modem for CI), in-memory pairs.

They know nothing about frames. Each has `write(data)`, `read(max_bytes) -> bytes` (waits up to the read
timeout for the first byte, then returns whatever is there; b"" on timeout), `close()`, and `baud` (the
nominal line rate, used only for wire-time reports with `safety.timing.line_time_ns`: a pty or a memory
pipe ignores it).
Timeouts are int64 nanoseconds like everywhere else; pyserial's float seconds stay inside this module.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from abc import ABC, abstractmethod
from types import TracebackType

DEFAULT_READ_TIMEOUT_NS = 1_000_000  # 1 ms: a loop polling its port should not block longer
DEFAULT_WRITE_TIMEOUT_NS = 50_000_000


class TransportError(OSError):
    """The port failed: could not open, write timed out, or the peer went away."""


class Transport(ABC):
    """A byte pipe with timeouts; also a context manager."""

    name: str = "transport"
    baud: int | None = None

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Write all of `data` or raise TransportError (e.g. write timeout)."""

    @abstractmethod
    def read(self, max_bytes: int = 4096) -> bytes:
        """Bytes available now, waiting up to the read timeout for the first; b"" on timeout."""

    @abstractmethod
    def close(self) -> None:
        """Release the port (idempotent)."""

    def fileno(self) -> int:
        """A file descriptor to select() on, when there is one."""
        raise TransportError(f"{self.name} has no file descriptor")

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- pyserial


class SerialTransport(Transport):
    """A serial port by device name (/dev/ttyUSB0, COM3) or pyserial URL (loop://, socket://host:port).

    Opens 8N1 with exclusive access (POSIX lock) and the driver's low-latency mode where supported; which
    of them took effect is in `.exclusive` and `.low_latency`.
    """

    def __init__(
        self,
        port: str,
        baud: int,
        read_timeout_ns: int = DEFAULT_READ_TIMEOUT_NS,
        write_timeout_ns: int = DEFAULT_WRITE_TIMEOUT_NS,
        exclusive: bool = True,
        low_latency: bool = True,
    ) -> None:
        import serial  # pyserial; imported here so users of the pty and memory transports do not need it

        self.name = port
        self.baud = baud
        self.exclusive = exclusive
        self.low_latency = False
        try:
            kwargs: dict[str, object] = {
                "baudrate": baud,
                "timeout": read_timeout_ns / 1e9,
                "write_timeout": write_timeout_ns / 1e9,
                "do_not_open": True,
            }
            if exclusive and os.name == "posix":
                kwargs["exclusive"] = True
            else:
                self.exclusive = False
            self._port = serial.serial_for_url(port, **kwargs)
            self._port.open()
        except (serial.SerialException, ValueError, OSError) as exc:
            raise TransportError(f"{port}: cannot open at {baud} baud: {exc}") from exc
        if low_latency and hasattr(self._port, "set_low_latency_mode"):
            try:
                self._port.set_low_latency_mode(True)
                self.low_latency = True
            except (OSError, ValueError, NotImplementedError):
                self.low_latency = False  # ptys and many USB adapters refuse; not an error
        self._serial_exception = serial.SerialException

    def write(self, data: bytes) -> None:
        """Write all of `data`; TransportError on write timeout."""
        try:
            written = self._port.write(data)
        except self._serial_exception as exc:  # SerialTimeoutException is a subclass
            raise TransportError(f"{self.name}: write failed: {exc}") from exc
        if written is not None and written != len(data):
            raise TransportError(f"{self.name}: wrote {written} of {len(data)} bytes")

    def read(self, max_bytes: int = 4096) -> bytes:
        """Bytes available now, waiting up to the read timeout for the first."""
        try:
            waiting = self._port.in_waiting
            if waiting:
                return bytes(self._port.read(min(waiting, max_bytes)))
            first = self._port.read(1)
            if not first:
                return b""
            rest = min(self._port.in_waiting, max_bytes - 1)
            return bytes(first) + (bytes(self._port.read(rest)) if rest else b"")
        except self._serial_exception as exc:
            raise TransportError(f"{self.name}: read failed: {exc}") from exc

    def flush(self) -> None:
        """Wait until every written byte has left the driver."""
        self._port.flush()

    def fileno(self) -> int:
        """The port's file descriptor (POSIX ports only)."""
        try:
            return int(self._port.fileno())
        except (AttributeError, ValueError) as exc:
            raise TransportError(f"{self.name} has no file descriptor") from exc

    def close(self) -> None:
        """Close the port."""
        self._port.close()


# ---------------------------------------------------------------- pty


class PtyTransport(Transport):
    """The master end of a pseudo-terminal; another process opens `peer_path` as its serial port.

    The slave is put in raw mode and kept open here, so bytes written before the peer opens it wait in the
    tty buffer and the master never sees a hang-up while the peer restarts.
    """

    def __init__(
        self,
        baud: int | None = None,
        read_timeout_ns: int = DEFAULT_READ_TIMEOUT_NS,
        write_timeout_ns: int = DEFAULT_WRITE_TIMEOUT_NS,
    ) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)  # a peer that stops reading must not hang the writer
        self.peer_path = os.ttyname(self._slave)
        self.name = f"pty:{self.peer_path}"
        self.baud = baud
        self.read_timeout_ns = read_timeout_ns
        self.write_timeout_ns = write_timeout_ns
        self._closed = False

    def write(self, data: bytes) -> None:
        """Write all of `data` to the master; TransportError if the peer does not take it in time."""
        view = memoryview(data)
        deadline = time.monotonic_ns() + self.write_timeout_ns
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                left_ns = deadline - time.monotonic_ns()
                if left_ns <= 0 or not select.select([], [self._master], [], left_ns / 1e9)[1]:
                    raise TransportError(
                        f"{self.name}: write timed out, {len(view)} bytes not taken"
                    ) from None
                continue
            except OSError as exc:
                raise TransportError(f"{self.name}: write failed: {exc}") from exc
            view = view[n:]

    def read(self, max_bytes: int = 4096) -> bytes:
        """Bytes available now, waiting up to the read timeout for the first."""
        ready, _, _ = select.select([self._master], [], [], self.read_timeout_ns / 1e9)
        if not ready:
            return b""
        try:
            return os.read(self._master, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise TransportError(f"{self.name}: read failed: {exc}") from exc

    def fileno(self) -> int:
        """The master's file descriptor."""
        return self._master

    def close(self) -> None:
        """Close both ends."""
        if not self._closed:
            self._closed = True
            os.close(self._master)
            os.close(self._slave)


class VirtualNullModem:
    """Two pty pairs bridged by a thread: `port_a` and `port_b` are device paths two other programs open
    as the two ends of a null-modem cable. For CI; adds a thread hop of latency."""

    def __init__(self) -> None:
        self._a = PtyTransport()
        self._b = PtyTransport()
        self.port_a = self._a.peer_path
        self.port_b = self._b.peer_path
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._bridge, name="null-modem", daemon=True)
        self._thread.start()

    def _bridge(self) -> None:
        fds = {self._a.fileno(): self._b, self._b.fileno(): self._a}
        while True:
            ready, _, _ = select.select([*fds, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                    fds[fd].write(data)
                except (OSError, TransportError):
                    continue  # a peer not open yet or gone: bytes are lost, as on a real cable

    def close(self) -> None:
        """Stop the bridge and close the ptys."""
        os.write(self._stop_w, b"x")
        self._thread.join()
        os.close(self._stop_r)
        os.close(self._stop_w)
        self._a.close()
        self._b.close()

    def __enter__(self) -> VirtualNullModem:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---------------------------------------------------------------- in memory


class _Pipe:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.cond = threading.Condition()


class MemoryTransport(Transport):
    """One end of an in-memory byte pipe (thread-safe); see memory_pair()."""

    def __init__(self, rx: _Pipe, tx: _Pipe, name: str, baud: int | None, read_timeout_ns: int) -> None:
        self._rx = rx
        self._tx = tx
        self.name = name
        self.baud = baud
        self.read_timeout_ns = read_timeout_ns

    def write(self, data: bytes) -> None:
        """Append to the peer's receive buffer."""
        with self._tx.cond:
            self._tx.buffer += data
            self._tx.cond.notify_all()

    def read(self, max_bytes: int = 4096) -> bytes:
        """Bytes available now, waiting up to the read timeout for the first."""
        with self._rx.cond:
            if not self._rx.buffer:
                self._rx.cond.wait(self.read_timeout_ns / 1e9)
            out = bytes(self._rx.buffer[:max_bytes])
            del self._rx.buffer[:max_bytes]
            return out

    def close(self) -> None:
        """Nothing to release."""


def memory_pair(
    baud: int | None = None, read_timeout_ns: int = DEFAULT_READ_TIMEOUT_NS
) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports (a null-modem cable without the cable)."""
    one, two = _Pipe(), _Pipe()
    return (
        MemoryTransport(one, two, "memory:a", baud, read_timeout_ns),
        MemoryTransport(two, one, "memory:b", baud, read_timeout_ns),
    )
