"""The compiled resize + normalise: TF1 bilinear against a plain numpy reference and the graph itself;
area averaging against an exact box-filter integral."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.sensor.preprocess import (
    DEFAULT_RESIZE,
    NET_SIZE,
    Preprocessor,
    area_resize_normalise_kernel,
    area_tables,
    check_frame,
    resize_tables,
)


def reference_tf1_bilinear(frame: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ResizeBilinear (align_corners=False, half_pixel_centers=False) then x*2/255-1, step by step."""
    in_h, in_w = frame.shape[:2]
    img = frame.astype(np.float32)
    out = np.empty((out_h, out_w, 3), dtype=np.float32)
    y_scale = np.float32(in_h) / np.float32(out_h)
    x_scale = np.float32(in_w) / np.float32(out_w)
    for i in range(out_h):
        in_y = np.float32(i) * y_scale
        top_y = int(np.floor(in_y))
        bottom_y = min(int(np.ceil(in_y)), in_h - 1)
        y_lerp = np.float32(in_y - np.float32(top_y))
        for j in range(out_w):
            in_x = np.float32(j) * x_scale
            left_x = int(np.floor(in_x))
            right_x = min(int(np.ceil(in_x)), in_w - 1)
            x_lerp = np.float32(in_x - np.float32(left_x))
            top = img[top_y, left_x] + (img[top_y, right_x] - img[top_y, left_x]) * x_lerp
            bottom = img[bottom_y, left_x] + (img[bottom_y, right_x] - img[bottom_y, left_x]) * x_lerp
            out[i, j] = top + (bottom - top) * y_lerp
    return out * np.float32(2.0 / 255.0) - np.float32(1.0)


def reference_area(frame: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Each output pixel is the mean of the input over its footprint, integrated exactly in float64."""

    def coverage(in_size: int, out_size: int) -> np.ndarray:
        scale = in_size / out_size
        lo = np.arange(out_size)[:, None] * scale
        pixel = np.arange(in_size)[None, :]
        overlap = np.clip(np.minimum(lo + scale, pixel + 1.0) - np.maximum(lo, pixel), 0.0, None)
        return overlap / overlap.sum(axis=1, keepdims=True)

    rows, cols = coverage(frame.shape[0], out_h), coverage(frame.shape[1], out_w)
    averaged = np.einsum("ij,jkc->ikc", rows, frame.astype(np.float64))
    averaged = np.einsum("ikc,lk->ilc", averaged, cols)
    return averaged * (2.0 / 255.0) - 1.0


@pytest.fixture(scope="module")
def small_pre() -> Preprocessor:
    """A preprocessor with a small output, so the pure-Python reference stays fast."""
    pre = Preprocessor(np.empty((23, 31, 3), dtype=np.float32), "tf1_bilinear")
    pre.warm_up(40, 50)
    return pre


@pytest.fixture(scope="module")
def small_area() -> Preprocessor:
    pre = Preprocessor(np.empty((23, 31, 3), dtype=np.float32), "area")
    pre.warm_up(40, 50)
    return pre


@pytest.fixture(scope="module")
def net_pre() -> Preprocessor:
    pre = Preprocessor(mode="tf1_bilinear")
    pre.warm_up()
    return pre


@pytest.fixture(scope="module")
def net_area() -> Preprocessor:
    pre = Preprocessor()
    pre.warm_up()
    return pre


def test_area_is_the_default() -> None:
    assert DEFAULT_RESIZE == "area" and Preprocessor().mode == "area"
    with pytest.raises(ValueError, match="resize mode"):
        Preprocessor(mode="nearest")


@given(h=st.integers(1, 120), w=st.integers(1, 120), seed=st.integers(0, 2**32 - 1))
def test_area_matches_the_box_filter_integral(small_area: Preprocessor, h: int, w: int, seed: int) -> None:
    frame = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_allclose(small_area(frame), reference_area(frame, 23, 31), rtol=0, atol=2e-6)


def test_area_at_network_size_for_a_camera_frame(net_area: Preprocessor) -> None:
    frame = np.random.default_rng(8).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    got = net_area(frame)
    assert got.shape == (NET_SIZE, NET_SIZE, 3)
    np.testing.assert_allclose(got, reference_area(frame, NET_SIZE, NET_SIZE), rtol=0, atol=2e-6)


def test_area_keeps_flat_colours_and_removes_aliasing(net_area: Preprocessor, net_pre: Preprocessor) -> None:
    flat = np.full((480, 640, 3), 77, dtype=np.uint8)
    np.testing.assert_allclose(net_area(flat), 77 * 2 / 255 - 1, atol=1e-6)
    stripes = np.zeros((480, 640, 3), dtype=np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: far above the output's Nyquist limit
    area_spread = float(np.ptp(net_area(stripes)[:, 10:-10]))
    bilinear_spread = float(np.ptp(net_pre(stripes)[:, 10:-10]))
    assert area_spread < 0.2 and bilinear_spread > 1.0  # averaged to grey vs sampled into false patterns


def test_area_tables_weights_sum_to_one_and_stay_in_range() -> None:
    t = area_tables(480, 640)
    np.testing.assert_allclose(t.y_w.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(t.x_w.sum(axis=1), 1.0, atol=1e-6)
    assert (t.y_start + t.y_w.shape[1] <= 480).all() and (t.x_start + t.x_w.shape[1] <= 640).all()
    assert t.row.shape == (640, 3)


@pytest.mark.parametrize(
    ("in_h", "in_w", "out_h", "out_w"),
    [(1, 1, 23, 31), (120, 1, 23, 31), (1, 120, 23, 31), (7, 5, 1, 1), (1, 1, NET_SIZE, NET_SIZE)],
)
def test_area_taps_stay_inside_the_frame(in_h: int, in_w: int, out_h: int, out_w: int) -> None:
    t = area_tables(in_h, in_w, out_h, out_w)
    assert (t.y_start >= 0).all() and (t.y_start + t.y_w.shape[1] <= in_h).all()
    assert (t.x_start >= 0).all() and (t.x_start + t.x_w.shape[1] <= in_w).all()


@pytest.mark.parametrize(("h", "w"), [(1, 1), (120, 1), (1, 120), (40, 50)])
def test_area_kernel_reads_nothing_past_the_scratch_row(h: int, w: int) -> None:
    # The kernel does no bounds checks: NaN just past the scratch row turns any stray read into NaN output.
    t = area_tables(h, w, 23, 31)
    padded = np.full((w + 4, 3), np.nan, dtype=np.float32)
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = np.empty((23, 31, 3), dtype=np.float32)
    area_resize_normalise_kernel(frame, t.y_start, t.y_w, t.x_start, t.x_w, padded[:w], out)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, reference_area(frame, 23, 31), rtol=0, atol=2e-6)


@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_numpy_reference(small_pre: Preprocessor, h: int, w: int, seed: int) -> None:
    frame = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = small_pre(frame)
    want = reference_tf1_bilinear(frame, 23, 31)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_matches_reference_at_network_size_for_a_camera_frame(net_pre: Preprocessor) -> None:
    frame = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = np.ascontiguousarray(np.repeat(np.repeat(frame, 10, axis=0), 10, axis=1))  # 480x640
    got = net_pre(frame)
    assert got.shape == (NET_SIZE, NET_SIZE, 3)
    want = reference_tf1_bilinear(frame, NET_SIZE, NET_SIZE)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_matches_the_graph_own_preprocessing(net_pre: Preprocessor) -> None:
    """The full model's `Preprocessor/sub:0` is what the backbone was trained on."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from cobotguard.sensor.detector import MODEL_DIR
    from cobotguard.sensor.oracle import FULL_MODEL_FILE

    model = onnx.load(str(MODEL_DIR / FULL_MODEL_FILE))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("Preprocessor/sub:0", onnx.TensorProto.FLOAT, None)
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    frame = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    (graph_out,) = session.run(["Preprocessor/sub:0"], {"image_tensor:0": frame[None]})
    graph_out = graph_out[0]
    if graph_out.shape[0] == 3:  # the converter may keep this tensor channels-first
        graph_out = graph_out.transpose(1, 2, 0)
    # ONNX Resize rounds differently from TF's kernel: agree to well under one grey level (2/255)
    np.testing.assert_allclose(net_pre(frame), graph_out, rtol=0, atol=5e-4)


@pytest.mark.parametrize("mode", ["area", "tf1_bilinear"])
def test_output_is_written_into_the_given_buffer(mode: str) -> None:
    buffer = np.full((1, NET_SIZE, NET_SIZE, 3), 9.0, dtype=np.float32)
    pre = Preprocessor(buffer[0], mode)
    frame = np.full((480, 640, 3), 255, dtype=np.uint8)
    result = pre(frame)
    assert np.shares_memory(result, buffer)
    np.testing.assert_allclose(buffer, 1.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["area", "tf1_bilinear"])
def test_read_only_and_strided_frames_give_the_same_result(mode: str, net_pre, net_area) -> None:
    pre = net_area if mode == "area" else net_pre
    frame = np.random.default_rng(5).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    want = pre(frame).copy()
    read_only = frame.copy()
    read_only.flags.writeable = False
    np.testing.assert_array_equal(pre(read_only), want)
    wide = np.zeros((200, 600, 3), dtype=np.uint8)
    wide[:, ::2] = frame
    np.testing.assert_array_equal(pre(wide[:, ::2]), want)


@pytest.mark.parametrize("mode", ["area", "tf1_bilinear"])
def test_identity_size_reproduces_pixels(mode: str) -> None:
    pre = Preprocessor(np.empty((4, 5, 3), dtype=np.float32), mode)
    frame = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    np.testing.assert_allclose(pre(frame), frame * (2.0 / 255.0) - 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((0, 10, 3), dtype=np.uint8),
        [[1, 2, 3]],
    ],
)
def test_rejects_frames_that_are_not_rgb_uint8(frame: object) -> None:
    with pytest.raises(ValueError, match="frame"):
        check_frame(frame)  # type: ignore[arg-type]


def test_tables_sample_like_tf1() -> None:
    t = resize_tables(600, 3, 300, 6)
    np.testing.assert_array_equal(t.y_lo[:3], [0, 2, 4])
    np.testing.assert_array_equal(t.y_w[:3], [0, 0, 0])
    np.testing.assert_array_equal(t.x_lo, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(t.x_hi, [0, 1, 1, 2, 2, 2])  # clamped at the last column
    np.testing.assert_allclose(t.x_w, [0, 0.5, 0, 0.5, 0, 0.5])
