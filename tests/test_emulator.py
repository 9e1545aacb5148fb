"""The sensor emulator: timestamps on a simulated clock, skipped frames, publishers, and the real detector
end to end on a synthetic walk-in (no detections on empty frames, floor positions). Recall against person
size is tested once, in tests/test_detector.py."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from cobotguard.safety.camera import CameraModel
from cobotguard.safety.clock import SimulatedClock
from cobotguard.safety.config_load import load_config
from cobotguard.safety.reasons import HealthFlag
from cobotguard.safety.records import DETECTION_DTYPE
from cobotguard.sensor.emulator import EmulatorTiming, LatestQueue, SensorEmulator, SerialPublisher
from cobotguard.sensor.metadata import MetadataBuilder, persons_of
from cobotguard.sensor.scene import Scene, Trajectory, Walker, load_sprite
from cobotguard.sensor.sources import Frame, SyntheticSource

PERIOD = 66_666_667
READOUT = 8_000_000
W, H = 64, 48
SMALL_CAM = CameraModel.from_pose(50.0, 50.0, 32.0, 24.0, (0.0, 0.0, 2.5), 0.0, 30.0, 0.0, W, H)
BOX = np.array([[0.2, 0.4, 0.9, 0.6]], np.float32)


class NoiseSource:
    """Cheap frames that differ every time (so health stays quiet)."""

    width_px, height_px = W, H

    def __init__(self, frames: int | None = None) -> None:
        self.frames = frames
        self.rng = np.random.default_rng(0)

    def read(self, index: int, t_ns: int) -> Frame | None:
        if self.frames is not None and index >= self.frames:
            return None
        return Frame(self.rng.integers(0, 255, (H, W, 3), dtype=np.uint8), index)


@dataclass
class Result:
    boxes: np.ndarray
    scores: np.ndarray
    count: int
    inference_us: int


@dataclass
class ScriptedDetector:
    """A stand-in for the detector that takes a scripted time on the simulated clock."""

    clock: SimulatedClock
    inference_ns: list[int]
    calls: list[int] = field(default_factory=list)

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> Result:
        spent = self.inference_ns[len(self.calls) % len(self.inference_ns)]
        self.calls.append(t_exposure_ns)
        self.clock.advance(spent)
        return Result(BOX.copy(), np.array([0.9], np.float32), 1, spent // 1000)


def emulator(inference_ns: list[int], frames: int | None = None, start: int = 1_000_000_000):
    clock = SimulatedClock(start)
    queue = LatestQueue(maxlen=1000)
    det = ScriptedDetector(clock, inference_ns)
    emu = SensorEmulator(
        NoiseSource(frames),
        det,
        MetadataBuilder(SMALL_CAM, 0, 0.1),
        EmulatorTiming(PERIOD, READOUT),
        queue,
        clock,
    )
    return emu, queue, det, clock


def test_frames_are_stamped_on_the_schedule() -> None:
    emu, queue, det, _ = emulator([20_000_000])
    stats = emu.run(max_frames=5, t_start_ns=2_000_000_000)
    records = np.concatenate(queue.drain())
    assert records.dtype == DETECTION_DTYPE and len(records) == 5 == stats.published == stats.inferred
    expected_exposure = 2_000_000_000 + PERIOD * np.arange(5)
    assert records["t_exposure_ns"].tolist() == expected_exposure.tolist()
    assert det.calls == expected_exposure.tolist()  # the detector gets the exposure time
    assert (records["t_inference_done_ns"] - records["t_exposure_ns"]).tolist() == [READOUT + 20_000_000] * 5
    assert (records["t_sent_ns"] >= records["t_inference_done_ns"]).all()
    assert records["frame_counter"].tolist() == [0, 1, 2, 3, 4]
    assert (records["health"] == 0).all() and (records["person_count"] == 1).all()
    assert (records["inference_us"] == 20_000).all()
    assert stats.latencies_ns == [20_000_000] * 5


def test_frame_counter_wraps_at_256() -> None:
    emu, queue, _, _ = emulator([1_000_000])
    emu.run(max_frames=260)
    counters = np.concatenate(queue.drain())["frame_counter"]
    assert counters[255] == 255 and counters[256] == 0 and counters[259] == 3


def test_slow_inference_is_flagged_and_missed_frames_are_invalid_not_old_detections() -> None:
    # Frame 1 takes 2.5 frame periods: frames 2 and 3 are read out while the detector is busy.
    emu, queue, det, _ = emulator(
        [10_000_000, int(2.5 * PERIOD), 10_000_000, 10_000_000, 10_000_000], start=0
    )
    stats = emu.run(max_frames=6, t_start_ns=0)
    records = np.concatenate(queue.drain())
    assert records["frame_counter"].tolist() == [0, 1, 2, 3, 4, 5]  # every exposed frame, once
    health = [HealthFlag(int(h)) for h in records["health"]]
    assert health[0] == HealthFlag.OK
    assert health[1] == HealthFlag.INFERENCE_SLOW and records["person_count"][1] == 1
    for skipped in (2, 3):
        assert HealthFlag.INVALID in health[skipped] and records["person_count"][skipped] == 0
        assert not records["persons"]["score"][skipped].any()  # frame 1's person is not re-sent
        assert records["t_exposure_ns"][skipped] == skipped * PERIOD
    assert health[4] == HealthFlag.OK and health[5] == HealthFlag.OK
    assert stats.skipped_invalid == 2 and stats.inferred == 4 and len(det.calls) == 4
    assert det.calls[2] == 4 * PERIOD  # the emulator resumed with the next frame still ahead


def test_run_ends_with_the_source_and_on_stop() -> None:
    emu, queue, _, _ = emulator([1_000_000], frames=3)
    assert emu.run().published == 3
    emu2, _, det, _ = emulator([1_000_000])
    emu2.stop()
    assert emu2.run().published == 0 and det.calls == []


def test_frozen_source_is_reported_in_the_metadata() -> None:
    class Frozen(NoiseSource):
        def read(self, index: int, t_ns: int) -> Frame | None:
            return Frame(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8), index)

    clock = SimulatedClock(0)
    queue = LatestQueue(100)
    emu = SensorEmulator(
        Frozen(), ScriptedDetector(clock, [1_000_000]), MetadataBuilder(SMALL_CAM, 0, 0.1),
        EmulatorTiming(PERIOD, READOUT), queue, clock,
    )  # fmt: skip
    emu.run(max_frames=3)
    health = np.concatenate(queue.drain())["health"].tolist()
    assert health == [0, HealthFlag.FROZEN, HealthFlag.FROZEN]


def test_latest_queue_drops_the_oldest_never_the_newest() -> None:
    queue = LatestQueue(maxlen=2)
    for counter in range(4):
        rec = np.zeros(1, DETECTION_DTYPE)
        rec["frame_counter"] = counter
        queue(rec)
    assert [int(r["frame_counter"][0]) for r in queue.drain()] == [2, 3] and queue.dropped == 2
    assert queue.drain() == []


def test_serial_publisher_writes_one_encoded_message_per_record() -> None:
    written: list[bytes] = []
    publisher = SerialPublisher(lambda rec: bytes([int(rec["frame_counter"][0])]), written.append)
    emu, _, _, clock = emulator([1_000_000])
    emu.publish = publisher
    emu.run(max_frames=3)
    assert written == [b"\x00", b"\x01", b"\x02"] and publisher.sent == 3


# -- the real detector, end to end ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cell_sensor():  # type: ignore[no-untyped-def]
    return load_config("hil/defaults/cell.toml").sensors["cam0"]


@pytest.fixture(scope="module")
def detector(cell_sensor):  # type: ignore[no-untyped-def]
    from cobotguard.sensor.detector import Detector

    det = Detector("fp32", threads=1, min_score=cell_sensor.min_score, spinning=False)  # shared CI cores
    det.warm_up(cell_sensor.image_height_px, cell_sensor.image_width_px, runs=1)
    return det


def walk_in(cell_sensor, sprite: str, frames: int, empty_frames: int):  # type: ignore[no-untyped-def]
    """Run the emulator on a walk toward the camera, after `empty_frames` frames of empty floor."""
    camera = CameraModel.from_config(cell_sensor)
    period = EmulatorTiming.from_config(cell_sensor).frame_period_ns
    t0 = empty_frames * period
    path = Trajectory.from_points([(t0, 4.0, 0.8), (t0 + (frames - 1) * period, -3.5, 0.2)])
    person = Walker(load_sprite(sprite), path, height_m=cell_sensor.assumed_person_height_m)
    source = SyntheticSource(Scene(camera, [person]))
    return source, camera


def run_walk_in(cell_sensor, detector, sprite: str, frames: int, empty_frames: int):  # type: ignore[no-untyped-def]
    source, _ = walk_in(cell_sensor, sprite, frames, empty_frames)
    queue = LatestQueue(maxlen=1000)
    emu = SensorEmulator.from_config(cell_sensor, 0, source, detector, queue, SimulatedClock(0))
    emu.run(max_frames=empty_frames + frames, t_start_ns=0)
    return np.concatenate(queue.drain()), emu.truth


def box_iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    y0, x0 = max(a[0], b[0]), max(a[1], b[1])
    y1, x1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, y1 - y0) * max(0.0, x1 - x0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def recall_of(records: np.ndarray, truth: dict, min_height: float = 0.25):  # type: ignore[no-untyped-def]
    """(hits, eligible, floor position errors) over frames whose person is >= min_height and fully seen."""
    hits, eligible, errors = 0, 0, []
    for rec in records:
        frame_truth = truth.get(int(rec["frame_counter"]))
        if not frame_truth or frame_truth[0].height_fraction < min_height or not frame_truth[0].fully_visible:
            continue
        person = frame_truth[0]
        eligible += 1
        matched = [p for p in persons_of(rec) if box_iou(p["box"], person.box) >= 0.4]
        if matched:
            hits += 1
            errors.append(float(np.hypot(matched[0]["x_m"] - person.x_m, matched[0]["y_m"] - person.y_m)))
    return hits, eligible, errors


EMPTY_FRAMES = 4
NEAR_HEIGHT = 0.45  # people this tall are found in every frame (see tests/test_detector.py)


@pytest.fixture(scope="module")
def walk_in_run(cell_sensor, detector):  # type: ignore[no-untyped-def]
    """Grace Hopper walking in after EMPTY_FRAMES frames of empty floor, run once for the tests below.

    She is drawn as a stand-in (stretched to the full standing height, box bottom on the foot point):
    this walk-in tests the floor positions the emulator publishes, which need the feet where the box
    ends, not recall (a portrait stretched to a standing height is not a realistic person).
    """
    return run_walk_in(cell_sensor, detector, "grace_hopper", frames=32, empty_frames=EMPTY_FRAMES)


def test_walk_in_no_detection_on_empty_frames(walk_in_run) -> None:  # type: ignore[no-untyped-def]
    records, _ = walk_in_run
    assert (records["health"] == 0).all()
    assert (records["person_count"][:EMPTY_FRAMES] == 0).all()


def test_walk_in_floor_positions_are_near_the_person(walk_in_run) -> None:  # type: ignore[no-untyped-def]
    records, truth = walk_in_run
    hits, eligible, errors = recall_of(records, truth, NEAR_HEIGHT)
    assert eligible >= 5 and hits >= 5
    # The foot point lands near the person's floor position.
    assert float(np.median(errors)) < 0.15 and max(errors) < 0.5


def test_link_publisher_sends_detections_the_controller_end_accepts() -> None:
    from cobotguard.safety.link.endpoint import Role
    from cobotguard.safety.link.pair import drain
    from cobotguard.safety.link.setup import sensor_link_endpoint
    from cobotguard.sensor.emulator import link_publisher

    cfg = load_config("hil/defaults/cell.toml")
    clock = SimulatedClock(5_000_000_000)
    sender = sensor_link_endpoint(cfg, "cam0", Role.SENSOR, clock.now_ns())
    receiver = sensor_link_endpoint(cfg, "cam0", Role.SENSOR_RECEIVER, clock.now_ns())
    wire: list[bytes] = []
    kept = LatestQueue(100)

    def publish(record: np.ndarray) -> None:
        kept(record)
        send(record)

    send = link_publisher(sender, wire.append)
    emu = SensorEmulator(
        NoiseSource(), ScriptedDetector(clock, [5_000_000]), MetadataBuilder(SMALL_CAM, 0, 0.1),
        EmulatorTiming(PERIOD, READOUT), publish, clock,
    )  # fmt: skip
    emu.run(max_frames=3)
    published = np.concatenate(kept.drain())
    received = []
    for data, rec in zip(wire, published, strict=True):
        receiver.feed(data, int(rec["t_sent_ns"]) + 100_000)
        (event,) = drain(receiver)
        received.append(event.to_record())  # type: ignore[union-attr]
    got = np.concatenate(received)
    for name in ("frame_counter", "person_count", "health", "inference_us", "t_exposure_ns", "t_sent_ns"):
        assert got[name].tolist() == published[name].tolist()
    assert got["persons"]["x_m"][:, 0] == pytest.approx(published["persons"]["x_m"][:, 0], abs=1e-5)
    assert (got["t_received_ns"] == published["t_sent_ns"] + 100_000).all()


def test_from_config_takes_timing_and_refuses_frames_of_another_size(cell_sensor) -> None:  # type: ignore[no-untyped-def]
    timing = EmulatorTiming.from_config(cell_sensor)
    assert timing.frame_period_ns == pytest.approx(1e9 / cell_sensor.frame_rate_hz, abs=1)
    assert timing.exposure_readout_ns == int(cell_sensor.exposure_readout_ms * 1e6)
    clock = SimulatedClock(0)
    with pytest.raises(ValueError, match="64x48"):
        SensorEmulator.from_config(cell_sensor, 0, NoiseSource(), ScriptedDetector(clock, [1]), print, clock)
