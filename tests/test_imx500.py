"""IMX500 adapter: output tensors laid out exactly as the sensor delivers them, no camera needed."""

import struct

import numpy as np
import pytest

from cobotguard.safety.camera import CameraModel
from cobotguard.safety.reasons import HealthFlag
from cobotguard.sensor.imx500 import (
    TENSOR_INFO_BYTES,
    Imx500Adapter,
    Imx500ParseError,
    SsdLayout,
    pack_tensor_info,
    parse_kpi,
    parse_tensor_info,
    split_output_tensor,
)
from cobotguard.sensor.metadata import MetadataBuilder, persons_of

N = 10  # the network's maximum detections
PERIOD_NS = 33_333_333
CAM = CameraModel.from_pose(500.0, 500.0, 320.0, 240.0, (0.0, 0.0, 3.0), 0.0, 35.0, 0.0, 640, 480)
SHAPES = [(N, 4), (N,), (N,), (1,)]


def sensor_output(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, count: float) -> np.ndarray:
    """The flat float32 CnnOutputTensor: tensors back to back, each serialised first dimension fastest."""
    full_boxes = np.zeros((N, 4), np.float32)
    full_scores = np.zeros(N, np.float32)
    full_classes = np.zeros(N, np.float32)
    k = len(boxes)
    full_boxes[:k], full_scores[:k], full_classes[:k] = boxes, scores, classes
    return np.concatenate(
        [full_boxes.ravel(order="F"), full_scores, full_classes, np.array([count], np.float32)]
    ).astype(np.float32)


def kpi(dnn_us: int, dsp_us: int = 500) -> bytes:
    return struct.pack("<II", dnn_us, dsp_us)


INFO = pack_tensor_info("ssd_mobilenet_person", SHAPES)
BOXES = np.array([[0.2, 0.1, 0.7, 0.3], [0.1, 0.5, 0.6, 0.7], [0.3, 0.6, 0.9, 0.8]], np.float32)


def adapter() -> Imx500Adapter:
    return Imx500Adapter(MetadataBuilder(CAM, 1, 0.05), PERIOD_NS, min_score=0.5)


def test_tensor_info_round_trips_and_has_the_sensor_struct_size() -> None:
    assert len(INFO) == TENSOR_INFO_BYTES == 64 + 4 + 8 * (4 + 4 + 16)
    info = parse_tensor_info(INFO)
    assert info.network_name == "ssd_mobilenet_person" and info.shapes == tuple(SHAPES)


def test_fortran_order_reshape_recovers_boxes() -> None:
    flat = sensor_output(BOXES, np.ones(3), np.zeros(3), 3)
    boxes, scores, classes, count = split_output_tensor(flat, tuple(SHAPES))
    assert boxes[:3] == pytest.approx(BOXES)
    # A C-order reshape of the same bytes mixes coordinates of different boxes.
    assert not np.allclose(flat[: 4 * N].reshape(N, 4)[:3], BOXES)
    assert count[0] == 3


def test_persons_are_parsed_into_a_detection_frame() -> None:
    flat = sensor_output(BOXES, np.array([0.9, 0.3, 0.8]), np.array([0, 0, 0]), 3)
    rec = adapter().convert(flat, INFO, kpi(3100), 42, 1_000, 2_000)[0]
    assert rec["health"] == 0 and rec["frame_counter"] == 42 and rec["inference_us"] == 3100
    assert rec["person_count"] == 2  # the 0.3 score is below min_score
    persons = persons_of(rec)
    assert persons["box"] == pytest.approx(BOXES[[0, 2]])
    assert persons["score"] == pytest.approx([0.9, 0.8])
    u, v = 0.5 * (BOXES[0, 1] + BOXES[0, 3]) * 640, BOXES[0, 2] * 480
    assert (persons["x_m"][0], persons["y_m"][0]) == pytest.approx(CAM.pixel_to_floor(u, v), abs=1e-4)
    assert (rec["t_exposure_ns"], rec["t_sent_ns"]) == (1_000, 2_000)


def test_other_classes_are_not_persons() -> None:
    flat = sensor_output(BOXES, np.full(3, 0.9), np.array([0, 2, 15]), 3)
    assert adapter().convert(flat, INFO, kpi(3100), 1, 0, 0)["person_count"][0] == 1


@pytest.mark.parametrize(("count", "expected"), [(250.0, N), (-3.0, 0), (2.7, 2)])
def test_count_is_clamped_to_the_tensor_size(count: float, expected: int) -> None:
    boxes = np.tile(BOXES[:1], (N, 1))
    flat = sensor_output(boxes, np.full(N, 0.9), np.zeros(N), count)
    rec = adapter().convert(flat, INFO, kpi(3100), 1, 0, 0)[0]
    assert rec["person_count"] == expected and rec["health"] == 0


def test_rows_beyond_the_count_are_ignored() -> None:
    boxes = np.tile(BOXES[:1], (N, 1))
    flat = sensor_output(boxes, np.full(N, 0.9), np.zeros(N), 1)
    flat[4 * N + 5] = np.nan  # garbage in an unused score row
    assert adapter().convert(flat, INFO, kpi(3100), 1, 0, 0)["person_count"][0] == 1


def test_kpi_words_and_slow_inference() -> None:
    assert parse_kpi(kpi(3100, 700)) == (3100, 700)
    flat = sensor_output(BOXES, np.full(3, 0.9), np.zeros(3), 3)
    rec = adapter().convert(flat, INFO, kpi(40_000), 1, 0, 0)[0]
    assert rec["health"] == HealthFlag.INFERENCE_SLOW and rec["inference_us"] == 40_000
    with pytest.raises(Imx500ParseError, match="8"):
        parse_kpi(b"\0" * 4)


def test_repeated_frame_counter_is_invalid_never_the_old_detections_again() -> None:
    a = adapter()
    flat = sensor_output(BOXES, np.full(3, 0.9), np.zeros(3), 3)
    assert a.convert(flat, INFO, kpi(3100), 255, 0, 0)["person_count"][0] == 3
    stale = a.convert(flat, INFO, kpi(3100), 255, 33, 33)[0]  # the host handed back the same result
    assert stale["health"] & HealthFlag.INVALID and stale["person_count"] == 0
    assert "repeated" in (a.last_error or "")
    fresh = a.convert(flat, INFO, kpi(3100), 0, 66, 66)[0]  # 255 -> 0 is the 8-bit wrap, a new frame
    assert fresh["health"] == 0 and fresh["frame_counter"] == 0 and fresh["person_count"] == 3


@pytest.mark.parametrize(
    ("tensor", "info", "counter", "message"),
    [
        (None, INFO, 1, "no output tensor"),
        (np.zeros(3, np.float32), INFO, 1, "need"),
        (sensor_output(BOXES, np.full(3, 0.9), np.zeros(3), 3), INFO[:-1], 1, "bytes"),
        (sensor_output(BOXES, np.full(3, 0.9), np.zeros(3), np.nan), INFO, 1, "count"),
        (sensor_output(BOXES, np.array([0.9, np.nan, 0.9]), np.zeros(3), 3), INFO, 1, "NaN"),
        (sensor_output(BOXES, np.full(3, 0.9), np.zeros(3), 3), INFO, None, "frame counter"),
    ],
)
def test_malformed_output_is_an_invalid_frame(
    tensor: np.ndarray | None, info: bytes, counter: int | None, message: str
) -> None:
    a = adapter()
    rec = a.convert(tensor, info, kpi(3100), counter, 0, 0)[0]
    assert rec["health"] & HealthFlag.INVALID and rec["person_count"] == 0
    assert message in (a.last_error or "")


def test_tensor_info_errors_name_the_problem() -> None:
    bad = bytearray(INFO)
    struct.pack_into("<I", bad, 64, 9)
    with pytest.raises(Imx500ParseError, match="9 tensors"):
        parse_tensor_info(bytes(bad))
    bad = bytearray(INFO)
    struct.pack_into("<I", bad, 68, 41)  # tensor 0 claims 41 elements for a 10x4 shape
    with pytest.raises(Imx500ParseError, match="tensor 0"):
        parse_tensor_info(bytes(bad))


def test_xy_order_and_pixel_boxes_are_converted() -> None:
    layout = SsdLayout(xy_order=True, input_size_px=(320, 320))
    a = Imx500Adapter(MetadataBuilder(CAM, 0, 0.05), PERIOD_NS, 0.5, layout)
    xy_pixels = BOXES[:, [1, 0, 3, 2]] * 320.0
    flat = sensor_output(xy_pixels, np.full(3, 0.9), np.zeros(3), 3)
    persons = persons_of(a.convert(flat, INFO, kpi(3100), 1, 0, 0))
    assert persons["box"] == pytest.approx(BOXES, abs=1e-6)
