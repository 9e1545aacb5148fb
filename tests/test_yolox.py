"""The YOLOX-Nano path: decode + NMS on hand-made outputs, the letterbox, the shipped files, real photos."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pytest

from cobotguard.sensor.decode import PERSON_CLASS
from cobotguard.sensor.detector import MODEL_DIR, MODEL_FILES, YOLOX_MODELS, Detector, model_path
from cobotguard.sensor.yolox import (
    N_OUTPUTS,
    PAD_VALUE,
    YOLOX_NMS_IOU,
    Letterbox,
    YoloxDetector,
    grid_table,
    letterbox_size,
    yolox_decode_nms_kernel,
)

PROVENANCE = MODEL_DIR / "PROVENANCE.md"


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (y0, x0, y1, x1) boxes."""
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# -- decode + NMS on a hand-made output -------------------------------------------------------------------


def grid_row(grid: np.ndarray, stride: int, cell_x: int, cell_y: int) -> int:
    """The output row of one grid cell."""
    hits = np.flatnonzero((grid[:, 2] == stride) & (grid[:, 0] == cell_x) & (grid[:, 1] == cell_y))
    assert hits.size == 1
    return int(hits[0])


def put(
    raw: np.ndarray,
    grid: np.ndarray,
    stride: int,
    cx: float,
    cy: float,
    w: float,
    h: float,
    obj: float,
    cls: int = 0,
    cls_score: float = 1.0,
) -> None:
    """Write the raw output that decodes to a box centred at (cx, cy) network pixels, size w x h."""
    cell_x, cell_y = int(cx // stride), int(cy // stride)
    row = grid_row(grid, stride, cell_x, cell_y)
    raw[row, 0] = cx / stride - cell_x
    raw[row, 1] = cy / stride - cell_y
    raw[row, 2] = math.log(w / stride)
    raw[row, 3] = math.log(h / stride)
    raw[row, 4] = obj
    raw[row, 5 + cls] = cls_score


def decode(raw: np.ndarray, grid: np.ndarray, pic_h: int, pic_w: int, min_score: float = 0.5, cap: int = 10):
    n = raw.shape[0]
    boxes = np.zeros((cap, 4), np.float32)
    scores = np.zeros(cap, np.float32)
    classes = np.full(cap, -1.0, np.float32)
    count = yolox_decode_nms_kernel(
        raw,
        grid,
        min_score,
        YOLOX_NMS_IOU,
        1.0 / pic_h,
        1.0 / pic_w,
        np.zeros(n, np.float32),
        np.zeros(n, np.int32),
        np.zeros((n, 4), np.float32),
        boxes,
        scores,
        classes,
    )
    return count, boxes[:count], scores[:count], classes[:count]


def test_grid_covers_the_three_strides_row_major() -> None:
    grid = grid_table(416, 416)
    assert grid.shape == (52 * 52 + 26 * 26 + 13 * 13, 3)
    assert grid[:3].tolist() == [[0, 0, 8], [1, 0, 8], [2, 0, 8]]
    assert grid[52].tolist() == [0, 1, 8]
    assert grid[52 * 52].tolist() == [0, 0, 16]
    assert grid[-1].tolist() == [12, 12, 32]
    assert grid_table(480, 640).shape[0] == 60 * 80 + 30 * 40 + 15 * 20


def test_known_boxes_decode_to_their_pixels_and_scores() -> None:
    grid = grid_table(416, 416)
    raw = np.zeros((grid.shape[0], N_OUTPUTS), np.float32)
    put(raw, grid, 32, cx=176, cy=112, w=128, h=192, obj=0.9, cls_score=0.8)  # x 112..240, y 16..208
    put(raw, grid, 8, cx=340, cy=300, w=20, h=60, obj=0.7)  # x 330..350, y 270..330
    count, boxes, scores, classes = decode(raw, grid, 416, 416)
    assert count == 2
    np.testing.assert_allclose(scores, [0.72, 0.7], rtol=1e-6)
    np.testing.assert_allclose(boxes[0] * 416, [16, 112, 208, 240], atol=1e-3)
    np.testing.assert_allclose(boxes[1] * 416, [270, 330, 330, 350], atol=1e-3)
    assert (classes == PERSON_CLASS).all()


def test_only_persons_above_the_threshold_are_reported() -> None:
    grid = grid_table(416, 416)
    raw = np.zeros((grid.shape[0], N_OUTPUTS), np.float32)
    put(raw, grid, 16, cx=100, cy=100, w=50, h=80, obj=0.95, cls=2, cls_score=0.95)  # a car
    raw[grid_row(grid, 16, 6, 6), 5] = 0.1  # ... that is not a person
    put(raw, grid, 16, cx=300, cy=300, w=50, h=80, obj=0.6, cls_score=0.8)  # person at 0.48: below
    assert decode(raw, grid, 416, 416)[0] == 0
    count, boxes, scores, _ = decode(raw, grid, 416, 416, min_score=0.4)
    assert count == 1 and abs(scores[0] - 0.48) < 1e-6
    np.testing.assert_allclose(boxes[0] * 416, [260, 275, 340, 325], atol=1e-3)


def test_overlapping_persons_are_suppressed_and_separate_ones_kept() -> None:
    grid = grid_table(416, 416)
    raw = np.zeros((grid.shape[0], N_OUTPUTS), np.float32)
    put(raw, grid, 16, cx=200, cy=200, w=60, h=160, obj=0.9)
    put(raw, grid, 8, cx=206, cy=204, w=60, h=160, obj=0.8)  # IoU ~0.8 with the first: dropped
    put(raw, grid, 8, cx=250, cy=200, w=60, h=160, obj=0.7)  # IoU 0.09: a second person beside it
    count, boxes, scores, _ = decode(raw, grid, 416, 416)
    assert count == 2
    np.testing.assert_allclose(scores, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_allclose(boxes[1] * 416, [120, 220, 280, 280], atol=1e-3)


def test_boxes_map_through_the_letterbox_and_are_clipped_to_the_frame() -> None:
    # a 640x480 frame in a 416x416 input is a 416x312 picture at the top-left: a net pixel is 640/416 px
    pic_h, pic_w = letterbox_size(480, 640, 416, 416)
    assert (pic_h, pic_w) == (312, 416)
    grid = grid_table(416, 416)
    raw = np.zeros((grid.shape[0], N_OUTPUTS), np.float32)
    put(raw, grid, 32, cx=208, cy=156, w=208, h=156, obj=0.9)  # the frame's centre, half its size
    put(raw, grid, 32, cx=400, cy=300, w=64, h=64, obj=0.8)  # reaches into the grey padding
    count, boxes, _, _ = decode(raw, grid, pic_h, pic_w)
    assert count == 2
    np.testing.assert_allclose(boxes[0], [0.25, 0.25, 0.75, 0.75], atol=1e-5)
    assert boxes[1][2] == 1.0 and boxes[1][3] == 1.0


# -- the letterbox ----------------------------------------------------------------------------------------


def test_letterbox_places_the_picture_top_left_in_bgr_and_pads_grey() -> None:
    net = np.zeros((1, 3, 416, 416), np.float32)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[..., 0] = 200  # red
    frame[240:480, 320:640, 2] = 100  # blue in the bottom-right quarter
    assert Letterbox(net)(frame) == (312, 416)
    b, g, r = net[0]
    np.testing.assert_allclose(r[:312], 200, atol=1e-4)
    assert (g[:312] == 0).all()
    np.testing.assert_allclose(b[156:312, 208:416], 100, atol=1e-4)
    assert (b[:156] == 0).all() and (b[:312, :208] == 0).all()
    assert (net[0, :, 312:] == PAD_VALUE).all()


def test_letterbox_refills_the_padding_when_the_frame_size_changes() -> None:
    net = np.zeros((1, 3, 416, 416), np.float32)
    box = Letterbox(net)
    box(np.full((416, 416, 3), 7, np.uint8))  # fills the whole input
    assert box(np.full((480, 640, 3), 7, np.uint8)) == (312, 416)
    assert (net[0, :, 312:] == PAD_VALUE).all()
    np.testing.assert_allclose(net[0, :, :312], 7, atol=1e-5)  # the area weights sum to 1 in float32
    assert box(np.full((640, 480, 3), 9, np.uint8)) == (416, 312)  # portrait: padding on the right
    assert (net[0, :, :, 312:] == PAD_VALUE).all()
    np.testing.assert_allclose(net[0, :, :, :312], 9, atol=1e-5)


def test_letterbox_at_the_network_size_passes_pixels_unchanged() -> None:
    net = np.zeros((1, 3, 480, 640), np.float32)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert Letterbox(net)(frame) == (480, 640)
    assert (net[0] == frame[..., ::-1].transpose(2, 0, 1)).all()


# -- the shipped files ------------------------------------------------------------------------------------


def provenance_sha256() -> dict[str, str]:
    """file name -> sha256 from PROVENANCE.md's sha256 lists."""
    return {m[2]: m[1] for m in re.finditer(r"^([0-9a-f]{64})  (\S+)$", PROVENANCE.read_text(), re.M)}


def test_model_files_match_their_provenance_sha256() -> None:
    listed = provenance_sha256()
    shipped = {p.name for p in MODEL_DIR.iterdir() if p.name != PROVENANCE.name}
    assert shipped == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((MODEL_DIR / name).read_bytes()).hexdigest() == digest, name


# the derived files, the code block in PROVENANCE.md that makes each, and the package version it was run with
DERIVED = [("yolox_nano_480x640.onnx", 0, "onnx", "1.23.2")]


@pytest.mark.parametrize(("name", "block", "package", "version"), DERIVED)
def test_derived_models_are_what_the_documented_code_makes(name, block, package, version, tmp_path) -> None:
    installed = pytest.importorskip(package).__version__
    if installed != version:
        pytest.skip(f"{name} was made with {package} {version}; {installed} may write other bytes")
    code = re.findall(r"```python\n(.*?)```", PROVENANCE.read_text(), re.S)[block]
    dst = tmp_path / name
    exec(code, {"SRC": str(MODEL_DIR / "yolox_nano.onnx"), "DST": str(dst), "__name__": "provenance"})
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == provenance_sha256()[name]


def test_names_select_the_yolox_detector_and_ssdlite_stays_the_default() -> None:
    assert set(YOLOX_MODELS) <= set(MODEL_FILES)
    for name in YOLOX_MODELS:
        assert model_path(name).is_file()
    det = Detector("yolox_nano_480x640", threads=1, min_score=0.4)
    assert isinstance(det, YoloxDetector) and det.net_size == (480, 640) and det.min_score == 0.4
    assert det.iou_threshold == YOLOX_NMS_IOU
    assert type(Detector()) is Detector and Detector().model_name == "fp32"


@pytest.mark.parametrize("kwargs", [{"threads": 0}, {"min_score": 0.0}, {"resize": "tf1_bilinear"}])
def test_rejects_bad_options(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Detector("yolox_nano", **kwargs)


def test_rejects_a_network_that_is_not_yolox() -> None:
    with pytest.raises(ValueError, match="not a YOLOX COCO network"):
        YoloxDetector(model_path("fp32"))


# -- real photos ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    dets = {name: Detector(name, threads=2, min_score=0.5) for name in YOLOX_MODELS}
    for det in dets.values():
        det.warm_up()
    return dets


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


# The astronaut (Eileen Collins) in skimage's 512x512 photo, read off the photo by eye: top of the hair to
# the bottom edge, left to right edge of the suit (not the flag, not the helmet she holds).
ASTRONAUT_BOX = np.array([0.03, 0.03, 1.0, 0.72])


@pytest.mark.parametrize("name", YOLOX_MODELS)
def test_finds_the_astronaut(name: str, detectors, astronaut: np.ndarray) -> None:
    result = detectors[name].detect(astronaut)
    assert result.valid and result.count == 1
    assert result.scores[0] >= 0.8 and result.classes[0] == PERSON_CLASS
    assert box_iou(result.boxes[0], ASTRONAUT_BOX) >= 0.85, result.boxes[0]


@pytest.mark.parametrize("name", YOLOX_MODELS)
def test_finds_the_astronaut_composited_into_a_camera_frame(name: str, detectors, astronaut) -> None:
    from PIL import Image

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[160:480, 360:640] = np.asarray(Image.fromarray(astronaut).resize((280, 320)))
    y0, x0, y1, x1 = ASTRONAUT_BOX  # where it lands in the frame
    want = np.array([160 + 320 * y0, 360 + 280 * x0, 160 + 320 * y1, 360 + 280 * x1]) / [480, 640, 480, 640]
    result = detectors[name].detect(frame)
    assert result.count == 1 and result.scores[0] >= 0.7
    assert box_iou(result.boxes[0], want) >= 0.8, (result.boxes[0], want)


@pytest.mark.parametrize("name", YOLOX_MODELS)
def test_no_person_on_empty_frames(name: str, detectors) -> None:
    rng = np.random.default_rng(3)
    for frame in (np.zeros((480, 640, 3), np.uint8), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)):
        result = detectors[name].detect(frame)
        assert result.valid and result.count == 0
        assert not result.boxes.any() and not result.scores.any()


def test_buffers_are_reused_and_the_result_padded(detectors, astronaut: np.ndarray) -> None:
    det = detectors["yolox_nano"]
    buffers = [a.ctypes.data for a in (det._input, det._raw, det.result.boxes, det.result.scores)]
    first = det.detect(astronaut)
    first_counter = first.frame_counter
    second = det.detect(np.zeros((480, 640, 3), np.uint8))
    assert first is second and second.count == 0 and not second.boxes.any()
    assert [a.ctypes.data for a in (det._input, det._raw, det.result.boxes, det.result.scores)] == buffers
    assert second.frame_counter == (first_counter + 1) % 256
    assert second.total_us > 0 and second.inference_us > 0
