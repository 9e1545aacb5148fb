"""The compiled tiled merge: box for box what the plain-Python reference merge gives, and no allocation.

The reference (tests/tiling_reference.py) is the merge as first written, with per-frame lists; random
frames of tile boxes, cut on random sides, with repeated scores, exercise every branch (NMS of whole
boxes, joined halves, covered and kept cut boxes).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from numba import njit
from numba.core.runtime import _nrt_python, rtsys
from tiling_reference import reference_merge

from cobotguard.safety.config import Tiling
from cobotguard.sensor.detector import DetectionResult
from cobotguard.sensor.tiling import (
    CUT_BOTTOM,
    CUT_LEFT,
    CUT_RIGHT,
    CUT_TOP,
    TiledDetector,
    add_tile_boxes,
    cut_sides,
    merge_tiles,
    merge_tiles_kernel,
    tile_windows,
)


def random_tile_boxes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n boxes (normalised y0, x0, y1, x1), scores on a coarse grid (ties), and random CUT_* bits."""
    centre = rng.uniform(0.0, 1.0, (n, 2))
    size = rng.uniform(0.02, 0.6, (n, 2))
    if n > 1:  # near-copies of earlier boxes: the overlaps that NMS, joins and covers act on
        twins = rng.random(n) < 0.5
        source = rng.integers(0, n, n)
        centre[twins] = centre[source[twins]] + rng.normal(0, 0.03, (int(twins.sum()), 2))
        size[twins] = size[source[twins]] * rng.uniform(0.5, 1.2, (int(twins.sum()), 1))
    boxes = np.clip(np.concatenate([centre - size / 2, centre + size / 2], axis=1)[:, [0, 1, 2, 3]], 0, 1)
    boxes = boxes[:, [0, 1, 2, 3]]
    scores = np.round(rng.uniform(0.3, 1.0, n), 1)
    cuts = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 16, n)).astype(np.int64)
    cuts[rng.random(n) < 0.3] = rng.choice([CUT_LEFT, CUT_RIGHT, CUT_TOP, CUT_BOTTOM], 1)[0]
    return boxes, scores, cuts


@pytest.mark.parametrize("merge_iou", [0.3, 0.5, 0.7])
def test_compiled_merge_matches_the_reference_on_random_tile_boxes(merge_iou: float) -> None:
    rng = np.random.default_rng(11)
    joined = 0
    for _ in range(400):
        n = int(rng.integers(0, 40))
        boxes, scores, cuts = random_tile_boxes(rng, n)
        want_boxes, want_scores = reference_merge(boxes, scores, cuts, merge_iou)
        got_boxes, got_scores = merge_tiles(boxes, scores, cuts, merge_iou)
        np.testing.assert_array_equal(got_scores, want_scores)
        np.testing.assert_array_equal(got_boxes.reshape(-1, 4), want_boxes.reshape(-1, 4))
        joined += sum(not any((b == row).all() for row in boxes) for b in want_boxes)
    assert joined > 50  # the join branch ran (a joined box is none of the input boxes)


def test_tile_boxes_are_mapped_and_cut_as_the_reference_does() -> None:
    rng = np.random.default_rng(3)
    width, height = 640, 480
    out_boxes, out_scores, out_cuts = np.zeros((64, 4)), np.zeros(64), np.zeros(64, np.int64)
    for window in tile_windows(width, height, 2, 2, 0.25):
        x0, y0, x1, y1 = window
        tile = rng.uniform(0, 1, (20, 4)).astype(np.float32)
        tile[:5, 1] = 0.01  # on the left border
        tile[5:10, 2] = 0.995  # on the bottom border
        tile_scores = rng.uniform(0.5, 1, 20).astype(np.float32)
        end = add_tile_boxes(tile, tile_scores, 20, x0, y0, x1, y1, width, height, True,
                             out_boxes, out_scores, out_cuts, 4)  # fmt: skip
        assert end == 24
        t = tile.astype(np.float64)
        want = np.stack(
            [(y0 + t[:, 0] * (y1 - y0)) / height, (x0 + t[:, 1] * (x1 - x0)) / width,
             (y0 + t[:, 2] * (y1 - y0)) / height, (x0 + t[:, 3] * (x1 - x0)) / width], axis=1,
        )  # fmt: skip
        np.testing.assert_array_equal(out_boxes[4:24], want)
        np.testing.assert_array_equal(out_scores[4:24], tile_scores.astype(np.float64))
        assert list(out_cuts[4:24]) == [cut_sides(b, window, width, height) for b in t]
        assert (out_cuts[4:9] & CUT_LEFT).all() == (x0 > 0)
    with pytest.raises(ValueError, match="buffers"):
        add_tile_boxes(tile, tile_scores, 20, 0, 0, 10, 10, width, height, True,
                       out_boxes, out_scores, out_cuts, 50)  # fmt: skip


class RandomBoxes:
    """A stand-in detector: random boxes per call from a fixed list, written into its own result."""

    def __init__(self, frames: int, seed: int = 5) -> None:
        rng = np.random.default_rng(seed)
        self.outputs = [random_tile_boxes(rng, int(rng.integers(0, 12)))[:2] for _ in range(frames)]
        self.calls = 0
        self.result = DetectionResult(np.zeros((16, 4), np.float32), np.zeros(16, np.float32),
                                      np.zeros(16, np.float32))  # fmt: skip

    def warm_up(self, height: int = 480, width: int = 640, runs: int = 3) -> None:
        """Nothing to compile."""

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> DetectionResult:
        """The next stored output."""
        boxes, scores = self.outputs[self.calls % len(self.outputs)]
        self.calls += 1
        n = len(scores)
        self.result.boxes[:n], self.result.scores[:n], self.result.count = boxes, scores, n
        return self.result


def test_tiled_detector_reports_the_reference_merge_of_its_tile_boxes() -> None:
    tiling = Tiling(columns=2, rows=2, overlap=0.25, merge_iou=0.4)
    tiled = TiledDetector(RandomBoxes(97), tiling)
    twin = TiledDetector(RandomBoxes(97), tiling)
    frame = np.zeros((480, 640, 3), np.uint8)
    for _ in range(60):
        boxes, scores, cuts, _ = twin.detect_tiles(frame)
        want_boxes, want_scores = reference_merge(boxes, scores, cuts, tiling.merge_iou)
        r = tiled.detect(frame)
        assert r.valid and r.count == len(want_scores)
        np.testing.assert_array_equal(r.scores[: r.count], want_scores.astype(np.float32))
        np.testing.assert_array_equal(r.boxes[: r.count], want_boxes.reshape(-1, 4).astype(np.float32))
        assert not r.scores[r.count :].any() and not r.boxes[r.count :].any()


@njit(cache=False)
def _same_merge_arguments(boxes, scores, cuts, n, merge_iou, order, kb, ks, kc, out_boxes, out_scores) -> int:
    """Does nothing: what unboxing the merge kernel's arguments costs (one MemInfo per array)."""
    return 0


@njit(cache=False)
def _same_add_arguments(tb, ts, count, x0, y0, x1, y1, width, height, cut, boxes, scores, cuts, start) -> int:
    """Does nothing: what unboxing add_tile_boxes' arguments costs."""
    return 0


def test_warmed_tiled_merge_allocates_nothing_and_compiles_nothing() -> None:
    tiling = Tiling(columns=2, rows=2, overlap=0.25)
    tiled = TiledDetector(RandomBoxes(50), tiling)
    tiled.warm_up(480, 640, runs=3)
    frame = np.zeros((480, 640, 3), np.uint8)
    signatures = (len(merge_tiles_kernel.signatures), len(add_tile_boxes.signatures))
    n = tiled._collect(frame)[0]
    merge_args = (tiled._boxes, tiled._scores, tiled._cuts, n, 0.5, tiled._order, tiled._kept_boxes,
                  tiled._kept_scores, tiled._kept_cuts, tiled.result.boxes, tiled.result.scores)  # fmt: skip
    r = tiled.detector.detect(frame)
    add_args = (r.boxes, r.scores, r.count, 0, 0, 320, 240, 640, 480, True, tiled._boxes, tiled._scores,
                tiled._cuts, 0)  # fmt: skip
    _same_merge_arguments(*merge_args)
    _same_add_arguments(*add_args)
    _nrt_python.memsys_enable_stats()

    def nrt_allocations(kernel, args) -> int:
        before = rtsys.get_allocation_stats().alloc
        for _ in range(20):
            kernel(*args)
        return rtsys.get_allocation_stats().alloc - before

    assert nrt_allocations(merge_tiles_kernel, merge_args) == nrt_allocations(
        _same_merge_arguments, merge_args
    )
    assert nrt_allocations(add_tile_boxes, add_args) == nrt_allocations(_same_add_arguments, add_args)

    # Transient Python and numpy allocations show in the peak: the list-and-array merge of the past
    # peaked about 15 KB above the start on these frames, the compiled one about 0.5 KB (the stage times).
    tracemalloc.start()
    try:
        tiled.detect(frame)
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(50):
            tiled.detect(frame)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < 2048 and end - start < 512, (peak - start, end - start)
    assert (len(merge_tiles_kernel.signatures), len(add_tile_boxes.signatures)) == signatures
