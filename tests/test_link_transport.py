"""Transports: pty master <-> pyserial on the slave, the virtual null-modem, in-memory pairs."""

import sys
import threading

import pytest
from link_support import MS, RUN, STATE, endpoint

from cobotguard.safety.link import COMMAND_FRAME_BYTES, Received, Role, drain
from cobotguard.safety.link.transport import (
    MemoryTransport,
    PtyTransport,
    SerialTransport,
    TransportError,
    VirtualNullModem,
    memory_pair,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty pairs need Linux")


def read_until(transport, n: int, tries: int = 200) -> bytes:  # type: ignore[no-untyped-def]
    data = b""
    for _ in range(tries):
        data += transport.read()
        if len(data) >= n:
            break
    return data


@linux_only
def test_link_over_a_pty_and_pyserial() -> None:
    with PtyTransport(baud=115_200) as master:
        assert isinstance(master, PtyTransport)
        port = SerialTransport(master.peer_path, 115_200, read_timeout_ns=20 * MS)
        try:
            assert port.exclusive
            ctl, robot = endpoint(Role.CONTROLLER), endpoint(Role.ROBOT)
            port.write(ctl.send(RUN, MS))
            robot.feed(read_until(master, COMMAND_FRAME_BYTES + 1), 2 * MS)
            (ev,) = drain(robot)
            assert isinstance(ev, Received) and ev.message == RUN
            master.write(robot.send(STATE, 3 * MS))
            ctl.feed(read_until(port, COMMAND_FRAME_BYTES + 1), 4 * MS)
            (back,) = drain(ctl)
            assert isinstance(back, Received) and back.message == STATE
        finally:
            port.close()


@linux_only
def test_exclusive_access_refuses_a_second_opener() -> None:
    with PtyTransport() as master:
        first = SerialTransport(master.peer_path, 115_200)
        try:
            with pytest.raises(TransportError, match="cannot open"):
                SerialTransport(master.peer_path, 115_200)
        finally:
            first.close()


@linux_only
def test_virtual_null_modem_carries_bytes_both_ways() -> None:
    with VirtualNullModem() as modem:
        a = SerialTransport(modem.port_a, 1_000_000, read_timeout_ns=20 * MS)
        b = SerialTransport(modem.port_b, 1_000_000, read_timeout_ns=20 * MS)
        try:
            a.write(b"ping\x00" * 100)
            assert read_until(b, 500) == b"ping\x00" * 100
            b.write(b"pong")
            assert read_until(a, 4) == b"pong"
        finally:
            a.close()
            b.close()


def test_missing_port_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="/dev/does-not-exist"):
        SerialTransport("/dev/does-not-exist", 115_200)


def test_pyserial_url_loopback() -> None:
    port = SerialTransport("loop://", 115_200, read_timeout_ns=5 * MS)
    try:
        port.write(b"abc")
        assert read_until(port, 3) == b"abc"
    finally:
        port.close()


def test_memory_pair_between_threads() -> None:
    left, right = memory_pair(read_timeout_ns=50 * MS)
    assert isinstance(left, MemoryTransport)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(read_until(right, 6)))
    reader.start()
    left.write(b"abc")
    left.write(b"def")
    reader.join()
    assert got == [b"abcdef"]
    assert left.read() == b""  # timeout, nothing for the other direction


@linux_only
def test_a_pty_whose_peer_stops_reading_times_out_instead_of_hanging() -> None:
    with PtyTransport(write_timeout_ns=10 * MS) as master:
        port = SerialTransport(master.peer_path, 115_200)  # opened, never read
        try:
            with pytest.raises(TransportError, match="write timed out"):
                for _ in range(1_000):
                    master.write(bytes(1024))
        finally:
            port.close()
