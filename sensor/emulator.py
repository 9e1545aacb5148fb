"""The sensor emulator: a frame source at a fixed frame rate -> detector -> detection metadata, published.

Timeline of frame k (all int64 ns on the injected clock):
  t_exposure = t_start + k * frame_period   exposure starts (the frame's timestamp)
  t_available = t_exposure + exposure_readout   the frame is read out; the emulator waits for this instant
  health checks + detector run
  t_inference_done                               read from the clock after the detector returns
  t_sent                                         read from the clock just before publishing
Inference (t_inference_done - t_available) longer than the frame period sets INFERENCE_SLOW. Frames
exposed while the detector was still busy were never inferred: each is published as INVALID with no
persons and its own frame counter (the real sensor's behaviour without the host libraries' hazard of
handing back the previous result), and the emulator carries on with the next frame still ahead of it.

Publishers: any callable taking the (1,)-shaped record; `LatestQueue` for in-process use by the library,
`SerialPublisher` for the HIL rig and `cobotguard run` (the link protocol's DETECTIONS message).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cobotguard.safety.camera import CameraModel
from cobotguard.safety.clock import Clock
from cobotguard.safety.config import Sensor, ns
from cobotguard.safety.reasons import HealthFlag
from cobotguard.safety.records import FRAME_COUNTER_MODULO
from cobotguard.safety.timing import frame_period_ns
from cobotguard.sensor.health import HealthMonitor, timing_flags
from cobotguard.sensor.health import warm_up as health_warm_up
from cobotguard.sensor.metadata import MetadataBuilder
from cobotguard.sensor.sources import FrameSource

Publish = Callable[[np.ndarray], None]


class DetectorOutput(Protocol):
    """What the emulator reads from a detector result (the IMX500 "bscn" tensors and the KPI)."""

    boxes: np.ndarray
    scores: np.ndarray
    count: int
    inference_us: int


class PersonDetector(Protocol):
    """`sensor.detector.Detector` or any stand-in with the same `detect`."""

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> Any:
        """Detect persons in an RGB uint8 frame."""
        ...


@dataclass(frozen=True)
class EmulatorTiming:
    """The sensor's declared timing, in nanoseconds."""

    frame_period_ns: int
    exposure_readout_ns: int

    @classmethod
    def from_config(cls, sensor_cfg: Sensor) -> EmulatorTiming:
        """Frame period and readout of a configured sensor."""
        return cls(frame_period_ns(sensor_cfg.frame_rate_hz), ns(sensor_cfg.exposure_readout_ms))


@dataclass
class EmulatorStats:
    """What a run did: frames published, of which inferred / invalid / with health flags set."""

    published: int = 0
    inferred: int = 0
    skipped_invalid: int = 0
    flagged: int = 0
    latencies_ns: list[int] = field(default_factory=list)  # t_sent - t_available of inferred frames


class SensorEmulator:
    """Runs a source through the detector at the sensor's frame rate and publishes its metadata."""

    def __init__(
        self,
        source: FrameSource,
        detector: PersonDetector,
        builder: MetadataBuilder,
        timing: EmulatorTiming,
        publish: Publish,
        clock: Clock,
        health: HealthMonitor | None = None,
    ) -> None:
        self.source = source
        self.detector = detector
        self.builder = builder
        self.timing = timing
        self.publish = publish
        self.clock = clock
        self.health = health or HealthMonitor((source.height_px, source.width_px, 3))
        self.stats = EmulatorStats()
        self.truth: dict[int, tuple[Any, ...]] = {}  # frame index -> ground truth, for synthetic sources
        self._stop = threading.Event()

    @classmethod
    def from_config(
        cls,
        sensor_cfg: Sensor,
        sensor_index: int,
        source: FrameSource,
        detector: PersonDetector,
        publish: Publish,
        clock: Clock,
    ) -> SensorEmulator:
        """An emulator for one configured sensor (camera model, Z_d, timing from the configuration)."""
        camera = CameraModel.from_config(sensor_cfg)
        if (source.width_px, source.height_px) != (camera.width_px, camera.height_px):
            raise ValueError(
                f"source frames are {source.width_px}x{source.height_px}, the sensor is configured for "
                f"{camera.width_px}x{camera.height_px}"
            )
        builder = MetadataBuilder(camera, sensor_index, sensor_cfg.position_uncertainty_m)
        return cls(source, detector, builder, EmulatorTiming.from_config(sensor_cfg), publish, clock)

    def warm_up(self, image: np.ndarray | None = None) -> None:
        """Compile the health kernels (on `image` if given), then forget it: frame 0 is judged fresh."""
        health_warm_up()
        if image is not None:
            self.health.check(image)
        self.health.reset()

    def stop(self) -> None:
        """Ask `run` to return after the current frame (thread-safe)."""
        self._stop.set()

    def run(self, max_frames: int | None = None, t_start_ns: int | None = None) -> EmulatorStats:
        """Emulate until the source ends, `max_frames` frames are published, or `stop()` is called."""
        period = self.timing.frame_period_ns
        readout = self.timing.exposure_readout_ns
        t_start = self.clock.now_ns() if t_start_ns is None else int(t_start_ns)
        index = 0
        while not self._stop.is_set() and (max_frames is None or self.stats.published < max_frames):
            t_exposure = t_start + index * period
            t_available = self.clock.sleep_until(t_exposure + readout)
            frame = self.source.read(index, t_exposure - t_start)
            if frame is None:
                break
            if frame.truth:
                self.truth[index] = frame.truth
            self._infer(index, frame.image, t_exposure, t_available)
            index += 1
            # frames whose readout finished while the detector was busy were never inferred
            now = self.clock.now_ns()
            while t_start + index * period + readout < now:
                if max_frames is not None and self.stats.published >= max_frames:
                    break
                self._publish_skipped(index, t_start + index * period, now)
                index += 1
        return self.stats

    def _infer(self, index: int, image: np.ndarray, t_exposure: int, t_available: int) -> None:
        flags = self.health.check(image)
        result = self.detector.detect(image, t_exposure)
        t_done = self.clock.now_ns()
        flags |= timing_flags(t_done - t_available, self.timing.frame_period_ns, True, index, index)
        record = self.builder.build(
            result.boxes, result.scores, int(result.count), index, int(flags),
            int(result.inference_us), t_exposure, t_done, t_done,
        )  # fmt: skip
        record["t_sent_ns"] = self.clock.now_ns()
        self.stats.inferred += 1
        self.stats.latencies_ns.append(int(record["t_sent_ns"][0]) - t_available)
        self._send(record)

    def _publish_skipped(self, index: int, t_exposure: int, now: int) -> None:
        flags = HealthFlag.INVALID | HealthFlag.INFERENCE_SLOW
        record = self.builder.build(
            np.zeros((0, 4)), np.zeros(0), 0, index, int(flags), 0, t_exposure, now, now
        )
        record["t_sent_ns"] = self.clock.now_ns()
        self.stats.skipped_invalid += 1
        self._send(record)

    def _send(self, record: np.ndarray) -> None:
        if int(record["health"][0]) != 0:
            self.stats.flagged += 1
        self.stats.published += 1
        self.publish(record.copy())


def frame_counter(index: int) -> int:
    """The 8-bit wrapping counter the sensor reports for frame `index`."""
    return index % FRAME_COUNTER_MODULO


class LatestQueue:
    """In-process publisher: a bounded, thread-safe queue of records for the library's controller.

    When full, the oldest record is dropped (the controller sees the counter gap and judges it); the newest
    is never dropped, so the controller is never handed old data in place of new.
    """

    def __init__(self, maxlen: int = 8) -> None:
        self._records: collections.deque[np.ndarray] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0

    def __call__(self, record: np.ndarray) -> None:
        """Publish one record (a copy is kept)."""
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self.dropped += 1
            self._records.append(record.copy())

    def drain(self) -> list[np.ndarray]:
        """All records published since the last drain, oldest first."""
        with self._lock:
            out = list(self._records)
            self._records.clear()
            return out


class SerialPublisher:
    """Publisher over a byte stream (serial port, pty): encodes each record as a DETECTIONS message.

    `encode(record) -> bytes` is the link protocol's sensor-side encoder; `write(data)` the transport's.
    """

    def __init__(self, encode: Callable[[np.ndarray], bytes], write: Callable[[bytes], Any]) -> None:
        self.encode = encode
        self.write = write
        self.sent = 0

    def __call__(self, record: np.ndarray) -> None:
        """Encode and write one record."""
        self.write(self.encode(record))
        self.sent += 1


def link_publisher(endpoint: Any, write: Callable[[bytes], Any]) -> SerialPublisher:
    """DETECTIONS over the safety link: each record becomes one frame from `endpoint` (a `Role.SENSOR`
    `safety.link.endpoint.Endpoint`), stamped with the record's t_sent_ns, written with `write`
    (e.g. a `safety.link.transport` transport's write)."""
    from cobotguard.safety.link.messages import Detections

    def encode(record: np.ndarray) -> bytes:
        rec = record.reshape(-1)[0]
        return bytes(endpoint.send(Detections.from_record(rec), int(rec["t_sent_ns"])))

    return SerialPublisher(encode, write)
