"""The executor's ports on the serial safety link: sans-IO endpoints (`safety.link`) over byte transports.

`open_controller_ports(cfg, robot_port, sensor_port)` opens one robot link and one sensor link per
configured sensor (port specifications: serial device names, pyserial URLs, or `inproc://NAME` for
ports registered in-process). Each port has a reader thread (`ThreadedInbox`) that blocks on the port
and stamps every chunk with its arrival time; the loop only feeds those chunks to the sans-IO endpoints,
never waiting on a port (`link_ports(..., reader_threads=False)` polls from the loop instead, stamping
chunks with the poll time). Sensor lines run at their `serial_baud` when declared. A link error latches
its endpoint (IEC 61784-3: stop until an operator reset) and is reported to the step every cycle through
`take_fault` until `reset_link` is called (the executor calls it on the reset input's rising edge).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cobotguard.safety.ports import INPROCESS_SCHEME, RobotPort, SensorSource, lookup_inprocess
from cobotguard.safety.reasons import Reason

READ_CHUNK = 4096  # bytes read per port per cycle at most; more waits for the next cycle


class PortError(ValueError):
    """A port could not be opened; the message names it and says why."""


class ByteTransport(Protocol):
    """What the ports need of a `safety.link.transport.Transport`, opened with a zero read timeout."""

    def read(self, max_bytes: int = READ_CHUNK) -> bytes:
        """Whatever has arrived (possibly b""), without waiting."""
        ...

    def write(self, data: bytes) -> None:
        """Write all of `data` or raise (TransportError, an OSError) when it cannot without blocking."""
        ...

    def close(self) -> None:
        """Release the port."""
        ...


def _discard_input(transport: ByteTransport) -> None:
    """Drop bytes that arrived before arming (bounded, in case the peer streams faster than we read)."""
    for _ in range(1024):
        if not transport.read(READ_CHUNK):
            return


def _write(transport: ByteTransport, data: bytes) -> bool:
    try:
        transport.write(data)
    except OSError:  # TransportError: write timed out, port gone
        return False
    return True


def _read(transport: ByteTransport) -> tuple[bytes, bool]:
    try:
        return transport.read(READ_CHUNK), True
    except OSError:
        return b"", False


class PolledInbox:
    """Reads its transport when the loop polls it; a chunk's receive time is the poll time.

    Simple, no thread; but bytes that arrive just after a poll look one cycle older than they are.
    """

    def __init__(self, transport: ByteTransport) -> None:
        self.transport = transport
        self.failed = False

    def start(self) -> None:
        """Drop what arrived before arming."""
        _discard_input(self.transport)

    def feed_into(self, endpoint: Any, now_ns: int) -> None:
        """Read what is there and feed it, stamped `now_ns`."""
        data, ok = _read(self.transport)
        self.failed = self.failed or not ok
        if data:
            endpoint.feed(data, now_ns)

    def stop(self) -> None:
        """Nothing to stop."""


class ThreadedInbox:
    """A reader thread blocks on the transport and stamps each chunk with its arrival time.

    The link's delay check then measures the transport's latency, not the loop's polling delay (which the
    budget already counts in the controller stage). The thread sleeps in the port's read (interpreter lock
    released), so it wakes only when bytes arrive or the read timeout passes.
    """

    IDLE_WAIT_S = 0.0005  # only for transports opened without a read timeout

    def __init__(self, transport: ByteTransport, clock: Callable[[], int] | None = None) -> None:
        import threading
        import time

        self.transport = transport
        self.failed = False
        self._clock = clock or time.monotonic_ns
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-reader", daemon=True)

    def start(self) -> None:
        """Drop what arrived before arming, then start reading."""
        _discard_input(self.transport)
        if not self._thread.is_alive():
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            data, ok = _read(self.transport)
            if not ok:
                self.failed = True
                if self._stop.wait(0.01):
                    return
            elif data:
                self._chunks.append((data, self._clock()))
            else:
                self._stop.wait(self.IDLE_WAIT_S)

    def feed_into(self, endpoint: Any, now_ns: int) -> None:
        """Feed every chunk that arrived by `now_ns`, each stamped with its own arrival time.

        Chunks stamped after `now_ns` wait for the next cycle: stamping them `now_ns` would date them
        before their sender's clock and read as a clock disagreement.
        """
        chunks = self._chunks
        while chunks and chunks[0][1] <= now_ns:
            data, t = chunks.popleft()
            endpoint.feed(data, t)

    def stop(self) -> None:
        """End the reader thread (before the transport is closed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)


Inbox = PolledInbox | ThreadedInbox


class LinkSensorSource:
    """SensorSource over one sensor link per configured sensor (Role.SENSOR_RECEIVER endpoints).

    `clocks` (safety.link.clock_sync, one record per sensor link): for a sensor on its own clock, the
    source sends its SYNC_REQUESTs, takes its SYNC_REPLYs into the offset estimate and hands frames on in
    controller time (docs/protocol.md, section 14); a clock fault latches the link like a link error.
    """

    def __init__(
        self, endpoints: Sequence[Any], inboxes: Sequence[Inbox], clocks: np.ndarray | None = None
    ) -> None:
        from cobotguard.safety.link import clock_sync

        self.endpoints = list(endpoints)
        self.inboxes = list(inboxes)
        self._pending: deque[np.ndarray] = deque()
        policies = [clock_sync.ClockPolicy()] * len(self.endpoints)
        self.clocks = clocks if clocks is not None else clock_sync.new_clocks(policies, 0)

    def receive(self, now_ns: int, frames: np.ndarray) -> int:
        """Feed what arrived to each endpoint and copy accepted DETECTIONS frames into `frames`."""
        from cobotguard.safety.link import NEED_DATA, Detections, Received, SyncReply

        for index, (endpoint, inbox) in enumerate(zip(self.endpoints, self.inboxes, strict=True)):
            inbox.feed_into(endpoint, now_ns)
            while (event := endpoint.next_event()) is not NEED_DATA:
                if not isinstance(event, Received):
                    continue
                if isinstance(event.message, SyncReply):
                    self._take_sync_reply(index, event)
                    continue
                if not isinstance(event.message, Detections):
                    continue
                claimed = int(event.message.sensor_index)
                if claimed != index:  # another sensor's frame on this sensor's line: latched until reset
                    endpoint.reject(
                        Reason.LINK_ADDRESSING,
                        f"frame names sensor {claimed} on the line of sensor {index}",
                        event.t_received_ns,
                    )
                    break
                record = event.to_record()
                if self.clocks[index]["own"] and not self._to_controller_clock(index, record):
                    continue
                self._pending.append(record)
            endpoint.check_watchdog(now_ns)
            self._sync_clock(index, now_ns)
        n = 0
        while self._pending and n < len(frames):
            frames[n] = self._pending.popleft()[0]
            n += 1
        return n

    def _take_sync_reply(self, index: int, event: Any) -> None:
        from cobotguard.safety.link import clock_sync

        m = event.message
        times = (m.request_t_ns, m.t_request_received_ns, event.t_sent_ns, event.t_received_ns)
        fault = clock_sync.take_reply(self.clocks, index, m.request_seq, *times)
        if fault:
            self.endpoint_fault(index, int(fault), "SYNC_REPLY", event.t_received_ns)

    def _to_controller_clock(self, index: int, record: np.ndarray) -> bool:
        """A sensor-clock frame's times in controller time; False: drop it (no estimate yet, or late)."""
        from cobotguard.safety.link import clock_sync

        if not self.clocks[index]["has_estimate"]:
            return False  # its age cannot be known yet: the step sees no data
        exposure = int(record["t_exposure_ns"][0])
        for key in ("t_exposure_ns", "t_inference_done_ns", "t_sent_ns"):
            record[key] = clock_sync.to_controller_ns(self.clocks, index, int(record[key][0]))
        t_rx = int(record["t_received_ns"][0])
        fault = clock_sync.frame_fault(self.clocks, index, exposure, int(record["t_sent_ns"][0]), t_rx)
        if fault:
            self.endpoint_fault(index, int(fault), "DETECTIONS", t_rx)
            return False
        return True

    def _sync_clock(self, index: int, now_ns: int) -> None:
        """Latch a clock fault; send the SYNC_REQUEST that is due."""
        from cobotguard.safety.link import SyncRequest, clock_sync

        endpoint = self.endpoints[index]
        if not self.clocks[index]["own"] or endpoint.error is not None:
            return
        fault = clock_sync.check(self.clocks, index, now_ns)
        if fault:
            self.endpoint_fault(index, int(fault), "clock sync", now_ns)
        elif endpoint.synced and clock_sync.request_due(self.clocks, index, now_ns):
            # not before a delimiter since the reset: the reply would be dropped as a frame's tail
            seq = endpoint.next_seq
            _write(self.inboxes[index].transport, endpoint.send(SyncRequest(), now_ns))
            clock_sync.request_sent(self.clocks, index, seq, now_ns)

    def endpoint_fault(self, index: int, reason: int, what: str, t_ns: int) -> None:
        """Latch sensor link `index` for a clock fault (or a delay on converted times)."""
        self.endpoints[index].reject(Reason(reason), f"{what}: sensor clock of sensor {index}", t_ns)

    def start(self, now_ns: int) -> None:
        """At arming: drop bytes that waited while the step compiled and start the endpoints afresh."""
        from cobotguard.safety.link import clock_sync

        for index, (endpoint, inbox) in enumerate(zip(self.endpoints, self.inboxes, strict=True)):
            inbox.start()
            endpoint.reset(now_ns)
            clock_sync.reset(self.clocks, index, now_ns)
        self._pending.clear()

    def take_fault(self) -> int:
        """The latched error of the first faulty sensor link (reported every cycle until reset), LINK_LOSS
        once after a port read failed, or 0."""
        for endpoint in self.endpoints:
            if endpoint.error is not None:
                return int(endpoint.error.reason)
        for inbox in self.inboxes:
            if inbox.failed:
                inbox.failed = False
                return int(Reason.LINK_LOSS)
        return 0

    def reset_link(self, now_ns: int) -> None:
        """Operator reset: clear latched errors (AWAITING_FIRST again) and their links' clock estimates."""
        from cobotguard.safety.link import clock_sync

        for index, endpoint in enumerate(self.endpoints):
            if endpoint.error is not None:
                endpoint.reset(now_ns)
                clock_sync.reset(self.clocks, index, now_ns)

    def stop(self) -> None:
        """Stop the reader threads."""
        for inbox in self.inboxes:
            inbox.stop()


class LinkRobotPort:
    """RobotPort over the robot link (Role.CONTROLLER endpoint): commands out, robot states in."""

    def __init__(self, endpoint: Any, transport: ByteTransport, inbox: Inbox | None = None) -> None:
        from cobotguard.safety.link import Command

        self.endpoint = endpoint
        self.transport = transport
        self.inbox = inbox if inbox is not None else PolledInbox(transport)
        self._command_type = Command
        self._write_failed = False
        self.write_failures = 0

    def receive_state(self, now_ns: int, state: np.ndarray) -> bool:
        """Feed received bytes; the newest accepted ROBOT_STATE goes into `state[0]`."""
        from cobotguard.safety.link import NEED_DATA, Received

        self.inbox.feed_into(self.endpoint, now_ns)
        got = False
        while (event := self.endpoint.next_event()) is not NEED_DATA:
            if isinstance(event, Received):
                state[0] = event.to_record()[0]
                got = True
        self.endpoint.check_watchdog(now_ns)
        return got

    def send_command(self, command: np.ndarray, seq: int, now_ns: int) -> None:
        """Encode and write one COMMAND frame (the link numbers it; `seq` is the executor's count)."""
        frame = self.endpoint.send(self._command_type.from_record(command[0]), now_ns)
        if not _write(self.transport, frame):
            self._write_failed = True
            self.write_failures += 1

    def start(self, now_ns: int) -> None:
        """At arming: drop bytes that waited while the step compiled and start the endpoint afresh."""
        self.inbox.start()
        self.endpoint.reset(now_ns)

    def take_fault(self) -> int:
        """The latched robot-link error, or LINK_LOSS once after a port read or write failed; else 0."""
        if self.endpoint.error is not None:
            return int(self.endpoint.error.reason)
        if self._write_failed or self.inbox.failed:
            self._write_failed = False
            self.inbox.failed = False
            return int(Reason.LINK_LOSS)
        return 0

    def reset_link(self, now_ns: int) -> None:
        """Operator reset: clear a latched error."""
        if self.endpoint.error is not None:
            self.endpoint.reset(now_ns)

    def stop(self) -> None:
        """Stop the reader thread."""
        self.inbox.stop()


@dataclass
class ControllerPorts:
    """The controller's two ports and how to close what was opened."""

    sensor_source: SensorSource
    robot_port: RobotPort
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close every transport that was opened (idempotent)."""
        while self.closers:
            self.closers.pop()()


READER_READ_TIMEOUT_NS = 20_000_000  # reader threads wake at least this often to notice a stop


def _open_transport(spec: str, baud: int, opened: ControllerPorts) -> ByteTransport:
    from cobotguard.safety.link.transport import SerialTransport, TransportError

    try:
        # reads block (in the reader thread only); writes never wait: the loop must not block on a port
        transport = SerialTransport(spec, baud, read_timeout_ns=READER_READ_TIMEOUT_NS, write_timeout_ns=0)
    except TransportError as exc:
        raise PortError(f"cannot open port {exc}") from None
    opened.closers.append(transport.close)
    return transport


def sensor_baud(sensor: Any, link_baud: int) -> int:
    """The rate a sensor line runs at: its own `serial_baud` when declared, else the link's `baud`."""
    return int(getattr(sensor, "serial_baud", None) or link_baud)


def link_ports(
    cfg: Any, robot: ByteTransport, sensors: Sequence[ByteTransport], now_ns: int, reader_threads: bool = True
) -> ControllerPorts:
    """Controller ports on already-open transports (one per configured sensor, in order), e.g. from
    `safety.link.transport.memory_pair()` when the robot or sensor runs in-process.

    reader_threads: stamp bytes with their arrival time in a reader thread per transport (give them a
    read timeout); False: the loop polls (give them a zero read timeout) and stamps with the poll time.
    """
    from cobotguard.safety.link import (
        Role,
        clock_sync,
        robot_link_endpoint,
        sensor_clock_policy,
        sensor_link_endpoint,
    )

    names = list(cfg.sensors)
    if len(sensors) != len(names):
        raise PortError(f"{len(sensors)} sensor transport(s) for {len(names)} sensor(s) ({', '.join(names)})")

    def inbox(transport: ByteTransport) -> Inbox:
        return ThreadedInbox(transport) if reader_threads else PolledInbox(transport)

    sensor_source = LinkSensorSource(
        [sensor_link_endpoint(cfg, n, Role.SENSOR_RECEIVER, now_ns) for n in names],
        [inbox(t) for t in sensors],
        clock_sync.new_clocks([sensor_clock_policy(cfg, n) for n in names], now_ns),
    )
    robot_port = LinkRobotPort(robot_link_endpoint(cfg, Role.CONTROLLER, now_ns), robot, inbox(robot))
    # reader threads stop before anything else is closed
    return ControllerPorts(sensor_source, robot_port, [robot_port.stop, sensor_source.stop])


def open_controller_ports(
    cfg: Any, robot_port: str, sensor_port: str | Sequence[str], now_ns: int | None = None
) -> ControllerPorts:
    """Open the robot link and the sensor link(s) of `cfg`.

    `sensor_port` is one specification per configured sensor, in configuration order (a single string
    for a one-sensor cell). `inproc://NAME` specifications return registered in-process ports as they
    are (both must then be in-process). Raises PortError naming the port on any failure.
    """
    import time

    sensor_specs = [sensor_port] if isinstance(sensor_port, str) else list(sensor_port)
    if robot_port.startswith(INPROCESS_SCHEME) or any(s.startswith(INPROCESS_SCHEME) for s in sensor_specs):
        if len(sensor_specs) != 1:
            raise PortError("in-process ports: give one inproc:// sensor source for all sensors")
        try:
            return ControllerPorts(lookup_inprocess(sensor_specs[0]), lookup_inprocess(robot_port))  # type: ignore[arg-type]
        except KeyError as exc:
            raise PortError(str(exc.args[0])) from None
    names = list(cfg.sensors)
    if len(sensor_specs) != len(names):
        raise PortError(
            f"--sensor-port given {len(sensor_specs)} time(s), the configuration has {len(names)} sensor(s) "
            f"({', '.join(names)}): give one port per sensor, in that order"
        )
    try:
        import cobotguard.safety.link.transport  # noqa: F401 - fail here, naming the cause, not in the loop
    except ImportError as exc:
        raise PortError(
            f"serial ports need the safety link protocol (cobotguard.safety.link): {exc}"
        ) from None

    now = time.monotonic_ns() if now_ns is None else now_ns
    opened = ControllerPorts(None, None)  # type: ignore[arg-type]
    try:
        robot_transport = _open_transport(robot_port, cfg.link.baud, opened)
        # a sensor line may declare its own rate (serial_baud); otherwise it runs at the robot link's
        sensor_transports = [
            _open_transport(spec, sensor_baud(sensor, cfg.link.baud), opened)
            for spec, sensor in zip(sensor_specs, cfg.sensors.values(), strict=True)
        ]
    except PortError:
        opened.close()
        raise
    ports = link_ports(cfg, robot_transport, sensor_transports, now)
    ports.closers = opened.closers + ports.closers  # closed last-first: threads stop, then ports close
    return ports


@dataclass
class PortDescriptors:
    """Opened serial ports as file descriptors, for the compiled loop (safety.compiled_controller)."""

    robot_fd: int
    sensor_fds: list[int]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close every port that was opened (idempotent)."""
        while self.closers:
            self.closers.pop()()


def open_port_descriptors(cfg: Any, robot_port: str, sensor_ports: Sequence[str]) -> PortDescriptors:
    """Open the robot link and one sensor link per configured sensor; raises PortError naming the port."""
    from cobotguard.safety.link.transport import TransportError

    names = list(cfg.sensors)
    if len(sensor_ports) != len(names):
        raise PortError(
            f"--sensor-port given {len(sensor_ports)} time(s), the configuration has {len(names)} sensor(s) "
            f"({', '.join(names)}): give one port per sensor, in that order"
        )
    opened = ControllerPorts(None, None)  # type: ignore[arg-type]
    try:
        transports = [_open_transport(robot_port, cfg.link.baud, opened)]
        transports += [
            _open_transport(spec, sensor_baud(sensor, cfg.link.baud), opened)
            for spec, sensor in zip(sensor_ports, cfg.sensors.values(), strict=True)
        ]
        fds = [t.fileno() for t in transports]  # type: ignore[attr-defined]
    except TransportError as exc:
        opened.close()
        raise PortError(f"no file descriptor for the compiled loop ({exc}); use --loop python") from None
    except PortError:
        opened.close()
        raise
    return PortDescriptors(fds[0], fds[1:], opened.closers)
