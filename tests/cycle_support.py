"""Peers for the compiled hard loop: a robot and sensors on socket pairs, each a thread speaking the link."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.link import Detections, Endpoint, Role, sensor_link_endpoint
from cobotguard.safety.link.transport import Transport
from cobotguard.safety.records import MAX_PERSONS, PERSON_DTYPE
from cobotguard.safety.timing import frame_period_ns


class SocketTransport(Transport):
    """One end of a socket pair as a link transport (reads wait up to 1 ms)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name = "socket"

    def write(self, data: bytes) -> None:
        """Write all of data."""
        self.sock.sendall(data)

    def read(self, max_bytes: int = 4096) -> bytes:
        """What arrived within 1 ms."""
        ready, _, _ = select.select([self.sock], [], [], 0.001)
        return self.sock.recv(max_bytes) if ready else b""

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


@dataclass
class SensorPeer:
    """One DETECTIONS frame per period with `persons` (floor x, y), exposed 10 ms before it is sent.

    `clock`: the sensor's clock (the controller's by default; an `OwnClock` for a sensor with its own).
    `answer_sync`: answer SYNC_REQUESTs (a sensor on its own clock must; False plays one that cannot).
    """

    endpoint: Endpoint
    sock: socket.socket
    index: int
    period_ns: int
    persons: list[tuple[float, float]] = field(default_factory=list)
    sent: int = 0
    sensor_index_override: int | None = None
    clock: Callable[[], int] = time.monotonic_ns
    answer_sync: bool = True

    def frame(self, now: int) -> bytes:
        import numpy as np

        persons = np.zeros(min(len(self.persons), MAX_PERSONS), dtype=PERSON_DTYPE)
        for j, (x, y) in enumerate(self.persons[:MAX_PERSONS]):
            persons[j]["x_m"], persons[j]["y_m"], persons[j]["z_d_m"], persons[j]["score"] = x, y, 0.1, 0.9
        index = self.index if self.sensor_index_override is None else self.sensor_index_override
        det = Detections(
            index, self.sent % 256, len(self.persons), 0, 3100, now - 10_000_000, now - 2_000_000, persons
        )
        self.sent += 1
        return self.endpoint.send(det, now)

    def run(self, stop: threading.Event) -> None:
        from cobotguard.sensor.clock import SyncResponder

        responder = SyncResponder(self.endpoint, self.clock)
        next_t = time.monotonic_ns()
        while not stop.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.0005)
                if ready:
                    data = self.sock.recv(4096)
                    replies = responder.receive(data, self.clock()) if self.answer_sync else b""
                    if replies:
                        self.sock.sendall(replies)
                if time.monotonic_ns() >= next_t:
                    self.sock.sendall(self.frame(self.clock()))
                    next_t += self.period_ns
            except OSError:
                return


class Cell:
    """Socket pairs for the robot link and each sensor link; the peers run in threads."""

    def __init__(self, cfg: CellConfig) -> None:
        from cobotguard.hil.robot import RobotEmulator, RobotRunner

        self.cfg = cfg
        self.stop = threading.Event()
        robot_ours, robot_theirs = socket.socketpair()
        self.robot_fd = robot_ours.fileno()
        self._keep = [robot_ours, robot_theirs]
        now = time.monotonic_ns()
        self.robot = RobotEmulator(cfg, now)
        self.runner = RobotRunner(self.robot, SocketTransport(robot_theirs), state_period_ns=ns(5.0))
        self.sensor_fds: list[int] = []
        self.sensors: list[SensorPeer] = []
        for k, name in enumerate(cfg.sensors):
            ours, theirs = socket.socketpair()
            self._keep += [ours, theirs]
            self.sensor_fds.append(ours.fileno())
            period = frame_period_ns(cfg.sensors[name].frame_rate_hz)
            self.sensors.append(
                SensorPeer(sensor_link_endpoint(cfg, name, Role.SENSOR, now), theirs, k, period)
            )
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.threads = [threading.Thread(target=self.runner.run, args=(self.stop,), daemon=True)]
        self.threads += [threading.Thread(target=s.run, args=(self.stop,), daemon=True) for s in self.sensors]
        for t in self.threads:
            t.start()

    def start_process(self) -> None:
        """Run the peers in a forked child process instead (its numba allocations are not ours)."""
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._child_stop = ctx.Event()
        self._child = ctx.Process(target=self._child_main, daemon=True)
        self._child.start()

    def _child_main(self) -> None:
        self.start()
        self._child_stop.wait()
        self.stop.set()

    def close(self) -> None:
        if getattr(self, "_child", None) is not None:
            self._child_stop.set()
            self._child.join(5.0)
        self.stop.set()
        for t in self.threads:
            t.join(2.0)
        for s in self._keep:
            s.close()
