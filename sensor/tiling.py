"""Tiled inference: overlapping tiles of the frame (and optionally the whole frame) through the detector.

The network sees 300 x 300 pixels. A person 15 % of a 480-pixel frame tall is 45 network pixels tall in
the whole frame; in a tile of a grid `rows` high with `overlap` it is `rows - (rows - 1) * overlap` times
taller (1.75 x for 2 rows at 0.25), where the detector finds far more of them (docs/sensor.md). Each
tile is cropped into a preallocated buffer and run through the same detector; boxes are mapped back to
frame coordinates and merged across tiles:

1. A tile box whose side lies within `EDGE_MARGIN` of a tile border *inside* the frame is **cut**: the
   person probably goes on in the neighbouring tile. Borders on the frame's own edge do not cut.
2. Boxes that are not cut go through greedy NMS (highest score first; dropped when IoU > `merge_iou`
   with a kept box).
3. Cut boxes, highest score first: joined (union of both boxes, the higher score) with a kept cut box
   that is cut on the facing side and overlaps it, when their extents along the border agree (1-D IoU
   >= `JOIN_AGREEMENT`): the two halves of one person; else dropped when a kept box covers most of them
   (intersection over the cut box's area >= `COVER`, or IoU > `merge_iou`); else kept.

Each tile's detector keeps only scores >= its min_score and its NMS is greedy by score, so the tiles' boxes
at a higher threshold are those at a lower one filtered: `detect_tiles` at a low min_score, filtered and
merged per threshold, gives exactly what the tiled path reports at each threshold (the capability's
precision/recall curve does so).

Mapping the tile boxes to the frame and merging them are compiled kernels (`add_tile_boxes`,
`merge_tiles_kernel`) over buffers the `TiledDetector` allocates once; `warm_up` compiles them, and after
it a frame allocates no arrays. `merge_tiles` wraps the kernel with new arrays, for offline use.

The result has the detector's own layout (`DetectionResult`, boxes normalised to the whole frame), with the
tiles' preprocess, inference and decode times summed.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from cobotguard.sensor.decode import MAX_DETECTIONS, PERSON_CLASS
from cobotguard.sensor.detector import FRAME_COUNTER_MODULO, DetectionResult, Detector

if TYPE_CHECKING:
    from cobotguard.safety.config import Sensor, Tiling

EDGE_MARGIN = 0.02  # of the tile's size: a box side this close to an inner tile border is cut by it
COVER = 0.6  # a cut box mostly inside a kept box is part of that person
JOIN_AGREEMENT = 0.5  # two cut halves of one person span about the same rows (or columns)
CUT_LEFT, CUT_RIGHT, CUT_TOP, CUT_BOTTOM = 1, 2, 4, 8


def tile_windows(width: int, height: int, columns: int, rows: int, overlap: float) -> list[tuple[int, ...]]:
    """Tiles as (x0, y0, x1, y1) pixels: a columns x rows grid of equal tiles covering the frame, each
    sharing `overlap` of its width (height) with its neighbour."""
    if columns < 1 or rows < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"bad tiling {columns} x {rows}, overlap {overlap}")

    def axis(size: int, count: int) -> list[tuple[int, int]]:
        if count == 1:
            return [(0, size)]
        tile = min(size, math.ceil(size / (count - (count - 1) * overlap)))
        return [(s, s + tile) for s in (round(i * (size - tile) / (count - 1)) for i in range(count))]

    return [(x0, y0, x1, y1) for y0, y1 in axis(height, rows) for x0, x1 in axis(width, columns)]


def cut_sides(box: np.ndarray, window: tuple[int, ...], width: int, height: int) -> int:
    """CUT_* bits: the sides of a tile box (normalised y0, x0, y1, x1 in its tile) on inner tile borders."""
    x0, y0, x1, y1 = window
    return int(_cut_bits(box[0], box[1], box[2], box[3], x0, y0, x1, y1, width, height))


@numba.njit(cache=False, nogil=True)
def _cut_bits(
    by0: float,
    bx0: float,
    by1: float,
    bx1: float,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    width: int,
    height: int,
) -> int:
    cut = 0
    if x0 > 0 and bx0 <= EDGE_MARGIN:
        cut |= CUT_LEFT
    if x1 < width and bx1 >= 1.0 - EDGE_MARGIN:
        cut |= CUT_RIGHT
    if y0 > 0 and by0 <= EDGE_MARGIN:
        cut |= CUT_TOP
    if y1 < height and by1 >= 1.0 - EDGE_MARGIN:
        cut |= CUT_BOTTOM
    return cut


@numba.njit(cache=False, nogil=True)
def add_tile_boxes(
    tile_boxes: np.ndarray,
    tile_scores: np.ndarray,
    count: int,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    width: int,
    height: int,
    cut: bool,
    boxes: np.ndarray,
    scores: np.ndarray,
    cuts: np.ndarray,
    start: int,
) -> int:
    """Append one inference's boxes (normalised to its window) to boxes/scores/cuts at `start`, mapped to
    the frame, with their CUT_* bits when `cut` (a tile; the whole frame cuts nothing); returns the end."""
    if start + count > boxes.shape[0]:
        raise ValueError("more tile boxes than the tiled detector's buffers hold")
    th = float(y1 - y0)
    tw = float(x1 - x0)
    for i in range(count):
        by0 = float(tile_boxes[i, 0])
        bx0 = float(tile_boxes[i, 1])
        by1 = float(tile_boxes[i, 2])
        bx1 = float(tile_boxes[i, 3])
        k = start + i
        boxes[k, 0] = (y0 + by0 * th) / height
        boxes[k, 1] = (x0 + bx0 * tw) / width
        boxes[k, 2] = (y0 + by1 * th) / height
        boxes[k, 3] = (x0 + bx1 * tw) / width
        scores[k] = float(tile_scores[i])
        cuts[k] = _cut_bits(by0, bx0, by1, bx1, x0, y0, x1, y1, width, height) if cut else 0
    return start + count


@numba.njit(cache=False, nogil=True)
def _area(b: np.ndarray, i: int) -> float:
    return max(b[i, 2] - b[i, 0], 0.0) * max(b[i, 3] - b[i, 1], 0.0)


@numba.njit(cache=False, nogil=True)
def _intersection(a: np.ndarray, i: int, b: np.ndarray, j: int) -> float:
    h = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
    w = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
    return max(h, 0.0) * max(w, 0.0)


@numba.njit(cache=False, nogil=True)
def _iou(a: np.ndarray, i: int, b: np.ndarray, j: int) -> float:
    inter = _intersection(a, i, b, j)
    union = _area(a, i) + _area(b, j) - inter
    return inter / union if union > 0.0 else 0.0


@numba.njit(cache=False, nogil=True)
def _span_iou(a0: float, a1: float, b0: float, b1: float) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0.0 else 0.0


@numba.njit(cache=False, nogil=True)
def _facing(cut_a: int, cut_b: int) -> int:
    """The cut bits that a join of two facing halves closes."""
    closed = 0
    if (cut_a & CUT_RIGHT and cut_b & CUT_LEFT) or (cut_a & CUT_LEFT and cut_b & CUT_RIGHT):
        closed |= CUT_LEFT | CUT_RIGHT
    if (cut_a & CUT_BOTTOM and cut_b & CUT_TOP) or (cut_a & CUT_TOP and cut_b & CUT_BOTTOM):
        closed |= CUT_TOP | CUT_BOTTOM
    return closed


@numba.njit(cache=False, nogil=True)
def _joinable(a: np.ndarray, i: int, cut_a: int, b: np.ndarray, j: int, cut_b: int) -> bool:
    """Two cut boxes that overlap and are cut on facing sides, with agreeing extents along the border."""
    if _intersection(a, i, b, j) <= 0.0:
        return False
    facing = _facing(cut_a, cut_b)
    if facing & CUT_LEFT and _span_iou(a[i, 0], a[i, 2], b[j, 0], b[j, 2]) >= JOIN_AGREEMENT:
        return True
    return bool(facing & CUT_TOP) and _span_iou(a[i, 1], a[i, 3], b[j, 1], b[j, 3]) >= JOIN_AGREEMENT


@numba.njit(cache=False, nogil=True)
def _order_by_score(scores: np.ndarray, n: int, order: np.ndarray) -> None:
    """order[:n] = indices of scores[:n], highest first, equal scores in index order (a stable sort)."""
    for i in range(n):
        k = i
        while k > 0 and scores[order[k - 1]] < scores[i]:
            order[k] = order[k - 1]
            k -= 1
        order[k] = i


@numba.njit(cache=False, nogil=True)
def merge_tiles_kernel(
    boxes: np.ndarray,
    scores: np.ndarray,
    cuts: np.ndarray,
    n: int,
    merge_iou: float,
    order: np.ndarray,
    kept_boxes: np.ndarray,
    kept_scores: np.ndarray,
    kept_cuts: np.ndarray,
    out_boxes: np.ndarray,
    out_scores: np.ndarray,
) -> int:
    """Merge the first n tile boxes (see the module docstring) into out_boxes/out_scores, highest score
    first; returns how many were written (at most out_scores' length).

    boxes float64 [N,4], scores float64 [N], cuts int64 [N]; order int64 [N], kept_boxes float64 [N,4],
    kept_scores float64 [N], kept_cuts int64 [N] are scratch (N >= n); nothing is allocated.
    """
    _order_by_score(scores, n, order)
    m = 0
    for r in range(n):  # whole boxes: greedy NMS
        i = order[r]
        if cuts[i] != 0:
            continue
        keep = True
        for k in range(m):
            if _iou(boxes, i, kept_boxes, k) > merge_iou:
                keep = False
                break
        if keep:
            kept_boxes[m, :] = boxes[i, :]
            kept_scores[m] = scores[i]
            kept_cuts[m] = 0
            m += 1
    for r in range(n):  # cut boxes: joined with a facing half, dropped when covered, else kept
        i = order[r]
        cut = cuts[i]
        if cut == 0:
            continue
        partner = -1
        for j in range(m):
            if kept_cuts[j] != 0 and _joinable(kept_boxes, j, kept_cuts[j], boxes, i, cut):
                partner = j
                break
        if partner < 0:
            area = _area(boxes, i)
            covered = False
            for k in range(m):
                if _iou(boxes, i, kept_boxes, k) > merge_iou or (
                    area > 0.0 and _intersection(boxes, i, kept_boxes, k) / area >= COVER
                ):
                    covered = True
                    break
            if not covered:
                kept_boxes[m, :] = boxes[i, :]
                kept_scores[m] = scores[i]
                kept_cuts[m] = cut
                m += 1
            continue
        kept_boxes[partner, 0] = min(kept_boxes[partner, 0], boxes[i, 0])
        kept_boxes[partner, 1] = min(kept_boxes[partner, 1], boxes[i, 1])
        kept_boxes[partner, 2] = max(kept_boxes[partner, 2], boxes[i, 2])
        kept_boxes[partner, 3] = max(kept_boxes[partner, 3], boxes[i, 3])
        kept_cuts[partner] = (kept_cuts[partner] | cut) & ~_facing(kept_cuts[partner], cut)
    _order_by_score(kept_scores, m, order)  # the input order is no longer needed
    count = min(m, out_scores.shape[0])
    for r in range(count):
        k = order[r]
        out_boxes[r, :] = kept_boxes[k, :]
        out_scores[r] = kept_scores[k]
    return count


def merge_tiles(
    boxes: np.ndarray, scores: np.ndarray, cuts: np.ndarray, merge_iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge boxes from every tile (normalised y0, x0, y1, x1 of the frame): see the module docstring.

    Returns new (boxes, scores) arrays, highest score first: for offline use (the capability's PR curve);
    the detector merges into its preallocated buffers with `merge_tiles_kernel`.
    """
    n = len(scores)
    b = np.ascontiguousarray(boxes, dtype=np.float64).reshape(n, 4)
    out_boxes, out_scores = np.zeros((n, 4)), np.zeros(n)
    count = merge_tiles_kernel(
        b,
        np.ascontiguousarray(scores, dtype=np.float64),
        np.ascontiguousarray(cuts, dtype=np.int64),
        n,
        float(merge_iou),
        np.zeros(n, np.int64),
        np.zeros((n, 4)),
        np.zeros(n),
        np.zeros(n, np.int64),
        out_boxes,
        out_scores,
    )
    return out_boxes[:count], out_scores[:count]


class TiledDetector:
    """Runs a detector over overlapping tiles (and the whole frame) and merges the boxes.

    Every tile's boxes go into buffers allocated here, and the compiled merge writes into the result:
    after `warm_up` a frame allocates no arrays for the boxes (the crops are preallocated per tile size).
    """

    def __init__(self, detector: Any, tiling: Tiling, max_detections: int = MAX_DETECTIONS) -> None:
        """`detector` is a `Detector` (or anything with its `detect`); `tiling` the sensor's table."""
        self.detector = detector
        self.tiling = tiling
        self.min_score = getattr(detector, "min_score", None)
        self.result = DetectionResult(
            np.zeros((max_detections, 4), dtype=np.float32),
            np.zeros(max_detections, dtype=np.float32),
            np.zeros(max_detections, dtype=np.float32),
        )
        self.frames = 0
        self._windows: dict[tuple[int, int], list[tuple[int, ...]]] = {}
        self._crops: dict[tuple[int, int], np.ndarray] = {}
        inner = getattr(detector, "result", None)
        per_inference = MAX_DETECTIONS if inner is None else len(inner.scores)
        capacity = (tiling.columns * tiling.rows + 1) * per_inference
        self._boxes = np.zeros((capacity, 4))
        self._scores = np.zeros(capacity)
        self._cuts = np.zeros(capacity, np.int64)
        self._order = np.zeros(capacity, np.int64)
        self._kept_boxes = np.zeros((capacity, 4))
        self._kept_scores = np.zeros(capacity)
        self._kept_cuts = np.zeros(capacity, np.int64)

    def windows(self, height: int, width: int) -> list[tuple[int, ...]]:
        """The tile windows for this frame size (computed once per size)."""
        key = (height, width)
        if key not in self._windows:
            t = self.tiling
            self._windows[key] = tile_windows(width, height, t.columns, t.rows, t.overlap)
        return self._windows[key]

    def warm_up(self, height: int = 480, width: int = 640, runs: int = 3) -> None:
        """Warm the detector up for the whole frame and the tile size, then run the tiled path (compiling
        the mapping and merge kernels)."""
        x0, y0, x1, y1 = self.windows(height, width)[0]
        self.detector.warm_up(height, width, runs=1)
        self.detector.warm_up(y1 - y0, x1 - x0, runs=1)
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(runs):
            self.detect(frame)
        self.frames = 0

    def _collect(self, frame: np.ndarray) -> tuple[int, int, int, int]:
        """Run every inference of the frame into the tile buffers: (box count, summed preprocess,
        inference and decode microseconds)."""
        height, width = frame.shape[:2]
        n = pre = inf = post = 0
        if self.tiling.full_frame:
            r = self.detector.detect(frame)
            n = add_tile_boxes(
                r.boxes, r.scores, r.count, 0, 0, width, height, width, height, False,
                self._boxes, self._scores, self._cuts, n,
            )  # fmt: skip
            pre, inf, post = pre + r.preprocess_us, inf + r.inference_us, post + r.postprocess_us
        for window in self.windows(height, width):
            x0, y0, x1, y1 = window
            crop = self._crops.get((y1 - y0, x1 - x0))
            if crop is None:
                crop = self._crops.setdefault((y1 - y0, x1 - x0), np.empty((y1 - y0, x1 - x0, 3), np.uint8))
            np.copyto(crop, frame[y0:y1, x0:x1])
            r = self.detector.detect(crop)
            n = add_tile_boxes(
                r.boxes, r.scores, r.count, x0, y0, x1, y1, width, height, True,
                self._boxes, self._scores, self._cuts, n,
            )  # fmt: skip
            pre, inf, post = pre + r.preprocess_us, inf + r.inference_us, post + r.postprocess_us
        return n, pre, inf, post

    def detect_tiles(
        self, frame: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]:
        """Every tile's boxes before merging, as new arrays (for offline use): (boxes in frame coordinates,
        scores, CUT_* bits, and the summed preprocess / inference / decode microseconds)."""
        n, pre, inf, post = self._collect(frame)
        return self._boxes[:n].copy(), self._scores[:n].copy(), self._cuts[:n].copy(), (pre, inf, post)

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> DetectionResult:
        """Detect persons in `frame` (uint8 [H,W,3] RGB) tile by tile; returns the reused result."""
        result = self.result
        result.valid = False
        n, pre, inf, post = self._collect(frame)
        t0 = time.monotonic_ns()
        count = merge_tiles_kernel(
            self._boxes, self._scores, self._cuts, n, self.tiling.merge_iou, self._order,
            self._kept_boxes, self._kept_scores, self._kept_cuts, result.boxes, result.scores,
        )  # fmt: skip
        result.classes[:count] = PERSON_CLASS
        result.boxes[count:] = 0.0
        result.scores[count:] = 0.0
        result.classes[count:] = 0.0
        t1 = time.monotonic_ns()
        result.count = count
        result.preprocess_us = pre
        result.inference_us = inf
        result.postprocess_us = post + (t1 - t0) // 1000
        result.frame_counter = self.frames % FRAME_COUNTER_MODULO
        result.t_exposure_ns = int(t_exposure_ns)
        result.t_done_ns = t1
        result.valid = True
        self.frames += 1
        return result


def make_detector(
    sensor: Sensor, model: str | None = None, threads: int = 2, min_score: float | None = None
) -> Detector | TiledDetector:
    """The detector a configured sensor runs: its model and min_score (unless given), and its tiling."""
    detector = Detector(
        sensor.detector_model if model is None else model,
        threads=threads,
        min_score=sensor.min_score if min_score is None else min_score,
    )
    if sensor.tiling is None:
        return detector
    return TiledDetector(detector, sensor.tiling)
