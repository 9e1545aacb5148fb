"""Emulated ports carrying a configuration's traffic: its robot and sensors on pty pairs, in a child process.

`Traffic(cfg)` makes one pty pair for the robot link and one per sensor (configuration order) and starts
a forked child process that plays the peers on the pty masters:

- the robot: `hil.robot.RobotEmulator` behind a `RobotRunner`, answering every command with its state
  (and sending it at least every `link.receiver_cycle_ms` when commands stop);
- each sensor: one DETECTIONS frame per frame period of an empty cell (no persons, health 0, counter
  + 1 mod 256, its configuration index), exposed `exposure_readout_ms` + an inference time before it is
  sent (`inference_fraction` of `inference_worst_ms`).

The controller gets the tty ends, opened non-blocking as a serial port would be (`robot_fd`,
`sensor_fds`, for `safety.compiled_controller.CompiledController`). The child runs at normal priority,
pinned to `peer_cpus` when given, so the peers share neither the controller's CPU nor its interpreter
and numba allocations::

    with Traffic(cfg, peer_cpus={0}) as traffic:
        controller = CompiledController(cfg, traffic.robot_fd, traffic.sensor_fds)
        ...
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Iterable
from typing import Any

from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.link import Detections, Role, sensor_link_endpoint
from cobotguard.safety.link.transport import PtyTransport, TransportError

POLL_NS = 1_000_000  # the child waits for robot commands at most this long between sensor checks
STOP_TIMEOUT_S = 2.0  # how long close() waits for the child before terminating it


class SensorPeer:
    """One sensor's side of its link: a DETECTIONS frame of an empty cell per frame period."""

    def __init__(
        self, cfg: CellConfig, name: str, index: int, now_ns: int, inference_fraction: float = 0.5
    ) -> None:
        """The sensor `name` (configuration index `index`); its first frame is due at now_ns."""
        sensor = cfg.sensors[name]
        self.endpoint = sensor_link_endpoint(cfg, name, Role.SENSOR, now_ns)
        self.index = index
        self.period_ns = timing.frame_period_ns(sensor.frame_rate_hz)
        self.exposure_ns = ns(sensor.exposure_readout_ms)
        self.inference_ns = timing.inference_ns(sensor, inference_fraction)
        self.sent = 0
        self.next_ns = now_ns

    def frame(self, now_ns: int) -> bytes:
        """The next frame, sent at now_ns: inference done now, exposure before that."""
        t_exposure = now_ns - self.exposure_ns - self.inference_ns
        det = Detections(self.index, self.sent % 256, 0, 0, self.inference_ns // 1000, t_exposure, now_ns)
        self.sent += 1
        return self.endpoint.send(det, now_ns)

    def due(self, now_ns: int) -> bool:
        """True when a frame is due; moves the schedule on (slots already over are skipped)."""
        if now_ns < self.next_ns:
            return False
        self.next_ns += self.period_ns
        if self.next_ns <= now_ns:
            self.next_ns = now_ns + self.period_ns
        return True


class Traffic:
    """The robot link and one link per sensor as pty pairs, the peers in a forked child process."""

    def __init__(
        self, cfg: CellConfig, peer_cpus: Iterable[int] | None = None, inference_fraction: float = 0.5
    ) -> None:
        """Make the pty pairs, open the controller's ends and start the peers (pinned to peer_cpus)."""
        self.cfg = cfg
        self.peer_cpus = set(peer_cpus) if peer_cpus else None
        self.inference_fraction = inference_fraction
        self._closed = False
        self._robot_io = PtyTransport(baud=cfg.link.baud)
        self._sensor_io = [PtyTransport(baud=s.serial_baud) for s in cfg.sensors.values()]
        flags = os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK
        self.robot_fd = os.open(self._robot_io.peer_path, flags)
        self.sensor_fds = [os.open(io.peer_path, flags) for io in self._sensor_io]
        ctx = multiprocessing.get_context("fork")
        self._stop = ctx.Event()
        self._child: Any = ctx.Process(target=self._serve, name="cobotguard-traffic", daemon=True)
        self._child.start()

    @property
    def alive(self) -> bool:
        """True while the peers' process runs."""
        return bool(self._child.is_alive())

    def _serve(self) -> None:
        """The child process: answer the robot's commands, send each sensor's frames, until stopped."""
        from cobotguard.hil.robot import RobotEmulator, RobotRunner

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us through close()
        if self.peer_cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self.peer_cpus)
        now = time.monotonic_ns()
        robot = RobotRunner(RobotEmulator(self.cfg, now), self._robot_io)  # at robot.state_period_ms
        sensors = [
            SensorPeer(self.cfg, name, k, now, self.inference_fraction)
            for k, name in enumerate(self.cfg.sensors)
        ]
        while not self._stop.is_set():
            now = time.monotonic_ns()
            for sensor, io in zip(sensors, self._sensor_io, strict=True):
                if sensor.due(now):
                    with contextlib.suppress(TransportError):  # a controller that stopped reading
                        io.write(sensor.frame(now))
            next_due = min((s.next_ns for s in sensors), default=now + POLL_NS)
            self._robot_io.read_timeout_ns = max(0, min(next_due - time.monotonic_ns(), POLL_NS))
            with contextlib.suppress(TransportError):
                robot.poll()

    def close(self) -> None:
        """Stop the peers and close every port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._child.join(STOP_TIMEOUT_S)
        if self._child.is_alive():
            self._child.terminate()
            self._child.join(STOP_TIMEOUT_S)
        for fd in [self.robot_fd, *self.sensor_fds]:
            with contextlib.suppress(OSError):
                os.close(fd)
        for io in [self._robot_io, *self._sensor_io]:
            io.close()

    def __enter__(self) -> Traffic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
