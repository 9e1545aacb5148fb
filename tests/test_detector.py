"""The detector on real photos, differentially against the in-graph oracle, and its buffer contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cobotguard.sensor.decode import PERSON_CLASS
from cobotguard.sensor.detector import FRAME_COUNTER_MODULO, DetectionResult, Detector, model_path
from cobotguard.sensor.oracle import FULL_MODEL_FILE, OracleDetector


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (y0, x0, y1, x1) boxes."""
    inter_h = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    inter_w = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = inter_h * inter_w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def photos() -> dict[str, np.ndarray]:
    """The three photos of people that ship inside test dependencies."""
    skimage_data = pytest.importorskip("skimage.data")
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    grey = skimage_data.camera()
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as img:
        grace = np.asarray(img.convert("RGB"))
    return {
        "astronaut": np.ascontiguousarray(skimage_data.astronaut()),
        "camera": np.ascontiguousarray(np.stack([grey, grey, grey], axis=-1)),
        "grace_hopper": grace,
    }


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return photos()


@pytest.fixture(scope="module")
def fp32() -> Detector:
    det = Detector("fp32", threads=2, min_score=0.5)
    det.warm_up()
    return det


@pytest.fixture(scope="module")
def fp32_tf1() -> Detector:
    """The graph's own resize: the differential tests against the oracle need identical inputs."""
    det = Detector("fp32", threads=2, min_score=0.5, resize="tf1_bilinear")
    det.warm_up()
    return det


@pytest.fixture(scope="module")
def int8() -> Detector:
    det = Detector("int8", threads=2, min_score=0.5)
    det.warm_up()
    return det


@pytest.fixture(scope="module")
def oracle() -> OracleDetector:
    return OracleDetector(threads=2, min_score=0.5)


@pytest.fixture(scope="module")
def oracle_results(images: dict[str, np.ndarray], oracle: OracleDetector) -> dict[str, DetectionResult]:
    return {name: oracle.detect(img) for name, img in images.items()}


def persons(result: DetectionResult) -> list[tuple[np.ndarray, float]]:
    return [(result.boxes[i].copy(), float(result.scores[i])) for i in range(result.count)]


def assert_same_persons(got: DetectionResult, want: DetectionResult, min_iou: float = 0.9) -> None:
    """Same number of persons, and each of ours overlaps a distinct oracle person with IoU >= min_iou."""
    assert got.count == want.count, (persons(got), persons(want))
    unmatched = list(range(want.count))
    for i in range(got.count):
        ious = [box_iou(got.boxes[i], want.boxes[j]) for j in unmatched]
        assert ious, "more persons than the oracle"
        best = int(np.argmax(ious))
        assert ious[best] >= min_iou, (i, ious, persons(got), persons(want))
        unmatched.pop(best)


@pytest.mark.parametrize("resize", ["area", "tf1_bilinear"])
@pytest.mark.parametrize("name", ["astronaut", "camera", "grace_hopper"])
def test_fp32_finds_the_person_in_each_photo(
    name: str, resize: str, images, fp32: Detector, fp32_tf1: Detector, oracle_results
) -> None:
    result = (fp32 if resize == "area" else fp32_tf1).detect(images[name])
    assert result.count == 1
    assert result.scores[0] >= 0.85
    assert result.classes[0] == PERSON_CLASS
    y0, x0, y1, x1 = result.boxes[0]
    assert 0.0 <= y0 < y1 <= 1.0 and 0.0 <= x0 < x1 <= 1.0
    assert y1 - y0 > 0.8  # each photo is a portrait filling most of the height
    assert_same_persons(result, oracle_results[name])


@pytest.mark.parametrize("name", ["astronaut", "camera", "grace_hopper"])
def test_int8_finds_the_same_person_as_the_oracle(name: str, images, int8: Detector, oracle_results) -> None:
    result = int8.detect(images[name])
    assert result.scores[0] >= 0.85
    assert_same_persons(result, oracle_results[name])


@pytest.mark.parametrize("name", ["astronaut", "camera", "grace_hopper"])
def test_fp32_equals_the_oracle_down_to_low_scores(
    name: str, images, fp32_tf1: Detector, oracle: OracleDetector
) -> None:
    """Same resize, network, decode and NMS: every box above 0.05 agrees, not just the confident one."""
    fp32_tf1.min_score = oracle.min_score = 0.05
    try:
        got = fp32_tf1.detect(images[name]).copy()
        want = oracle.detect(images[name])
    finally:
        fp32_tf1.min_score = oracle.min_score = 0.5
    assert got.count >= 1
    assert_same_persons(got, want, min_iou=0.99)
    np.testing.assert_allclose(got.scores[: got.count], want.scores[: want.count], atol=1e-4)


def composite(photo: np.ndarray, height_px: int, x0: int, background: int = 128) -> np.ndarray:
    """A 640x480 frame with `photo` scaled to `height_px` tall, standing on the bottom edge."""
    from PIL import Image

    width_px = max(1, round(photo.shape[1] * height_px / photo.shape[0]))
    scaled = np.asarray(Image.fromarray(photo).resize((width_px, height_px), Image.Resampling.BILINEAR))
    frame = np.full((480, 640, 3), background, dtype=np.uint8)
    frame[480 - height_px :, x0 : x0 + width_px] = scaled[:, : 640 - x0]
    return frame


def test_fp32_and_int8_agree_with_the_oracle_on_composited_frames(images, fp32_tf1, int8, oracle) -> None:
    for photo in images.values():
        for height_px, x0 in ((360, 20), (240, 300), (200, 100)):
            frame = composite(photo, height_px, x0)
            want = oracle.detect(frame)
            assert_same_persons(fp32_tf1.detect(frame), want)
            if want.count and want.scores[0] > 0.8:  # int8 moves scores: compare only clear cases
                best = int8.detect(frame)
                assert best.count >= 1
                assert max(box_iou(best.boxes[i], want.boxes[0]) for i in range(best.count)) >= 0.9


@pytest.mark.parametrize("model", ["fp32", "int8"])
@pytest.mark.parametrize("frame_name", ["black", "grey", "white", "noise", "gradient", "brick"])
def test_no_person_on_empty_frames(model: str, frame_name: str, fp32, int8) -> None:
    rng = np.random.default_rng(11)
    frames = {
        "black": np.zeros((480, 640, 3), np.uint8),
        "grey": np.full((480, 640, 3), 128, np.uint8),
        "white": np.full((480, 640, 3), 255, np.uint8),
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "gradient": np.broadcast_to(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (480, 640, 3)),
    }
    if frame_name == "brick":
        brick = pytest.importorskip("skimage.data").brick()
        frames["brick"] = np.stack([brick] * 3, axis=-1)
    det = fp32 if model == "fp32" else int8
    result = det.detect(np.ascontiguousarray(frames[frame_name]))
    assert result.count == 0
    assert not result.boxes.any() and not result.scores.any()


def test_result_is_reused_and_padded(images, fp32: Detector) -> None:
    first = fp32.detect(images["astronaut"])
    kept = first.copy()
    boxes_buffer = first.boxes
    second = fp32.detect(np.zeros((480, 640, 3), np.uint8))
    assert second is first and second.boxes is boxes_buffer  # the same preallocated arrays
    assert second.count == 0 and not second.boxes.any()  # rows past count are zeroed, nothing stale
    assert kept.count == 1 and kept.boxes[0].any()  # a copy is not overwritten
    assert first.boxes.shape == (100, 4) and first.scores.shape == (100,) and first.classes.shape == (100,)


def test_frame_counter_wraps_at_8_bits_and_times_are_reported() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    det = Detector("int8", threads=1, max_detections=4)
    det.warm_up(48, 64, runs=1)
    counters = []
    for i in range(3):
        result = det.detect(frame, t_exposure_ns=1000 + i)
        counters.append(result.frame_counter)
        assert result.t_exposure_ns == 1000 + i
        assert result.inference_us > 0 and result.total_us >= result.inference_us
        assert result.t_done_ns > 0
    assert counters == [0, 1, 2]
    det.frames = 2 * FRAME_COUNTER_MODULO - 1  # as after 511 frames
    assert det.detect(frame).frame_counter == 255
    assert det.detect(frame).frame_counter == 0
    assert det.result.boxes.shape == (4, 4)


def test_model_paths() -> None:
    assert model_path("fp32").is_file() and model_path("int8").is_file()
    with pytest.raises(FileNotFoundError, match="no_such_model.onnx"):
        model_path("no_such_model.onnx")


def test_rejects_a_model_that_is_not_the_backbone() -> None:
    with pytest.raises(ValueError, match="not the SSDLite person backbone"):
        Detector(Path(model_path("fp32")).with_name(FULL_MODEL_FILE))


@pytest.mark.parametrize(
    "kwargs", [{"threads": 0}, {"min_score": 0.0}, {"min_score": 1.5}, {"max_detections": 0}]
)
def test_rejects_bad_options(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Detector("int8", **kwargs)


def test_rejects_frames_that_are_not_rgb_uint8_and_marks_the_old_result_invalid(
    images, fp32: Detector
) -> None:
    result = fp32.detect(images["astronaut"])
    assert result.valid and result.count == 1
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        fp32.detect(np.zeros((480, 640), np.uint8))
    assert not result.valid  # the previous detections must not pass for this frame's
    assert fp32.detect(images["astronaut"]).valid


# -- a synthetic walk-in: recall against the size of the person in the image -----------------------------

# The photos are portraits, so each walker is drawn at its true extent (sensor.scene): only the share of
# a 1.5 m person that the photo shows, and sizes are that drawn part's height over the frame height.
# Measured with bench/bench_recall.py (2 lanes x 60 frames per photo, area resize), recall from a size up:
#   default cell camera (pole, 2.5 m, 28 deg down; torsos reach ~0.45 of the frame):
#     fp32: 89 % from 0.25, >= 95 % from 0.36 (all photos) / 0.36 (worst photo)
#     int8: 73 % from 0.25, >= 95 % from 0.39 / 0.39
#   the same camera re-mounted 1.3 m high, 5 deg down (torsos up to ~0.8 of the frame):
#     fp32: 95 % from 0.25, >= 95 % from 0.27 (all photos) / 0.46 (worst photo: the astronaut)
#     int8: 87 % from 0.25, >= 95 % from 0.43 / 0.47
# Every person from half the frame height up was found, by both models, on both mounts.
RELIABLE_HEIGHT_FRACTION = 0.50
WALK_LANES_M = (-0.6, 0.5)
WALK_EMPTY_FRAMES = 4
LOW_MOUNT = (1.3, 5.0)  # height (m), pitch (deg): brings people close enough to fill half the frame


def walk_positions(camera, lane_m: float, far_m: float, near_m: float, count: int):  # type: ignore[no-untyped-def]
    """Floor points toward the camera, evenly in 1 / distance (about evenly in apparent size)."""
    cx, cy = camera.centre_m[0], camera.centre_m[1]
    return [(cx + 1.0 / k, cy + lane_m) for k in np.linspace(1.0 / far_m, 1.0 / near_m, count)]


@pytest.fixture(scope="module")
def walk_in(fp32: Detector, int8: Detector) -> dict[str, dict[str, list]]:
    """Per model: (mount, visible height fraction, found) per fully visible person; counts on empty frames."""
    from cobotguard.safety.camera import CameraModel
    from cobotguard.safety.config_load import load_config
    from cobotguard.sensor.scene import Scene, Trajectory, Walker, load_sprite
    from cobotguard.sensor.sources import SyntheticSource

    cell = load_config("hil/defaults/cell.toml").sensors["cam0"]
    pole = CameraModel.from_config(cell)
    k, (x_m, y_m, _) = cell.intrinsics, cell.mounting.position_m
    low = CameraModel.from_pose(
        k.fx_px, k.fy_px, k.cx_px, k.cy_px, (x_m, y_m, LOW_MOUNT[0]), 0.0, LOW_MOUNT[1], 0.0, 640, 480
    )
    walks = {"pole": (pole, 6.0, 1.2, 16), "low": (low, 2.2, 1.1, 8)}
    outcome: dict[str, dict[str, list]] = {m: {"persons": [], "empty_counts": []} for m in ("fp32", "int8")}
    for name in ("astronaut", "cameraman", "grace_hopper"):
        sprite = load_sprite(name)
        for mount, (camera, far_m, near_m, count) in walks.items():
            for lane in WALK_LANES_M:
                points = walk_positions(camera, lane, far_m, near_m, count)
                path = Trajectory.from_points(
                    [(WALK_EMPTY_FRAMES + i, x, y) for i, (x, y) in enumerate(points)]
                )
                walker = Walker(sprite, path, cell.assumed_person_height_m, true_extent=True)
                source = SyntheticSource(Scene(camera, [walker]))
                for i in range(WALK_EMPTY_FRAMES if mount == "pole" else 0, WALK_EMPTY_FRAMES + len(points)):
                    frame = source.read(i, i)
                    assert frame is not None
                    for model, det in (("fp32", fp32), ("int8", int8)):
                        result = det.detect(frame.image)
                        if not frame.truth:
                            outcome[model]["empty_counts"].append(result.count)
                        for truth in frame.truth:
                            found = any(
                                box_iou(result.boxes[j], truth.box) >= 0.5 for j in range(result.count)
                            )
                            if truth.fully_visible:
                                outcome[model]["persons"].append((mount, truth.visible_fraction, found))
    return outcome


def recall(persons: list[tuple[str, float, bool]], min_fraction: float, mount: str = "") -> tuple[float, int]:
    """Recall over persons at least `min_fraction` of the frame tall (on one mount, or on all)."""
    hits = [found for where, fraction, found in persons if fraction >= min_fraction and mount in ("", where)]
    return (sum(hits) / len(hits) if hits else float("nan")), len(hits)


@pytest.mark.parametrize("model", ["fp32", "int8"])
def test_walk_in_finds_people_above_the_reliable_height(model: str, walk_in) -> None:
    value, n = recall(walk_in[model]["persons"], RELIABLE_HEIGHT_FRACTION)
    assert n >= 8, "the walk-in must bring people close enough to test the capability"
    assert value >= 0.95, f"{model}: recall {value:.2f} over {n} frames"


@pytest.mark.parametrize("model", ["fp32", "int8"])
def test_walk_in_reports_nobody_in_the_empty_cell(model: str, walk_in) -> None:
    counts = walk_in[model]["empty_counts"]
    assert len(counts) >= 6 * WALK_EMPTY_FRAMES and not any(counts)


@pytest.mark.xfail(
    strict=True,
    reason="issue 4 asks for recall >= 95 % from 25 % of the frame height; measured through the default cell "
    "camera on true-extent walk-ins (area resize, bench/bench_recall.py): 89 % fp32, 73 % int8 (TF1 bilinear "
    "resize: 82 %, 72 %); the astronaut and cameraman drop below score 0.5 between 0.25 and 0.45",
)
@pytest.mark.parametrize("model", ["fp32", "int8"])
def test_walk_in_finds_people_a_quarter_of_the_frame_tall(model: str, walk_in) -> None:
    value, _ = recall(walk_in[model]["persons"], 0.25, mount="pole")
    assert value >= 0.95
