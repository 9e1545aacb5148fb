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

The result has the detector's own layout (`DetectionResult`, boxes normalised to the whole frame), with the
tiles' preprocess, inference and decode times summed.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

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
    mx, my = EDGE_MARGIN, EDGE_MARGIN
    cut = 0
    if x0 > 0 and box[1] <= mx:
        cut |= CUT_LEFT
    if x1 < width and box[3] >= 1.0 - mx:
        cut |= CUT_RIGHT
    if y0 > 0 and box[0] <= my:
        cut |= CUT_TOP
    if y1 < height and box[2] >= 1.0 - my:
        cut |= CUT_BOTTOM
    return cut


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0.0 else 0.0


def _area(b: np.ndarray) -> float:
    return float(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0))


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    h = min(a[2], b[2]) - max(a[0], b[0])
    w = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(h, 0.0) * max(w, 0.0))


def _span_iou(a0: float, a1: float, b0: float, b1: float) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0.0 else 0.0


def _joinable(a: np.ndarray, cut_a: int, b: np.ndarray, cut_b: int) -> bool:
    """Two cut boxes that overlap and are cut on facing sides, with agreeing extents along the border."""
    if _intersection(a, b) <= 0.0:
        return False
    facing = _facing(cut_a, cut_b)
    rows_agree = facing & CUT_LEFT and _span_iou(a[0], a[2], b[0], b[2]) >= JOIN_AGREEMENT
    columns_agree = facing & CUT_TOP and _span_iou(a[1], a[3], b[1], b[3]) >= JOIN_AGREEMENT
    return bool(rows_agree or columns_agree)


def merge_tiles(
    boxes: np.ndarray, scores: np.ndarray, cuts: np.ndarray, merge_iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge boxes from every tile (normalised y0, x0, y1, x1 of the frame): see the module docstring.

    Returns (boxes, scores), highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    kept_boxes: list[np.ndarray] = []
    kept_scores: list[float] = []
    kept_cuts: list[int] = []
    for i in order:
        if cuts[i]:
            continue
        if all(_iou(boxes[i], k) <= merge_iou for k in kept_boxes):
            kept_boxes.append(boxes[i].astype(np.float64))
            kept_scores.append(float(scores[i]))
            kept_cuts.append(0)
    for i in order:
        if not cuts[i]:
            continue
        box = boxes[i].astype(np.float64)
        partner = next(
            (
                j
                for j, k in enumerate(kept_boxes)
                if kept_cuts[j] and _joinable(k, kept_cuts[j], box, cuts[i])
            ),
            None,
        )
        if partner is None:
            area = _area(box)
            covered = any(
                _iou(box, k) > merge_iou or (area > 0.0 and _intersection(box, k) / area >= COVER)
                for k in kept_boxes
            )
            if not covered:
                kept_boxes.append(box)
                kept_scores.append(float(scores[i]))
                kept_cuts.append(int(cuts[i]))
            continue
        k = kept_boxes[partner]
        kept_boxes[partner] = np.array(
            [min(k[0], box[0]), min(k[1], box[1]), max(k[2], box[2]), max(k[3], box[3])]
        )
        kept_cuts[partner] = (kept_cuts[partner] | int(cuts[i])) & ~_facing(kept_cuts[partner], int(cuts[i]))
    if not kept_boxes:
        return np.zeros((0, 4)), np.zeros(0)
    out_order = np.argsort(-np.asarray(kept_scores), kind="stable")
    return np.asarray(kept_boxes)[out_order], np.asarray(kept_scores)[out_order]


def _facing(cut_a: int, cut_b: int) -> int:
    """The cut bits that a join of two facing halves closes."""
    closed = 0
    if (cut_a & CUT_RIGHT and cut_b & CUT_LEFT) or (cut_a & CUT_LEFT and cut_b & CUT_RIGHT):
        closed |= CUT_LEFT | CUT_RIGHT
    if (cut_a & CUT_BOTTOM and cut_b & CUT_TOP) or (cut_a & CUT_TOP and cut_b & CUT_BOTTOM):
        closed |= CUT_TOP | CUT_BOTTOM
    return closed


class TiledDetector:
    """Runs a detector over overlapping tiles (and the whole frame) and merges the boxes."""

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

    def windows(self, height: int, width: int) -> list[tuple[int, ...]]:
        """The tile windows for this frame size (computed once per size)."""
        key = (height, width)
        if key not in self._windows:
            t = self.tiling
            self._windows[key] = tile_windows(width, height, t.columns, t.rows, t.overlap)
        return self._windows[key]

    def warm_up(self, height: int = 480, width: int = 640, runs: int = 3) -> None:
        """Warm the detector up for the whole frame and the tile size, then run the tiled path."""
        x0, y0, x1, y1 = self.windows(height, width)[0]
        self.detector.warm_up(height, width, runs=1)
        self.detector.warm_up(y1 - y0, x1 - x0, runs=1)
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(runs):
            self.detect(frame)
        self.frames = 0

    def detect_tiles(
        self, frame: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]:
        """Every tile's boxes before merging: (boxes in frame coordinates, scores, CUT_* bits, and the summed
        preprocess / inference / decode microseconds)."""
        height, width = frame.shape[:2]
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        cuts: list[np.ndarray] = []
        pre = inf = post = 0
        if self.tiling.full_frame:
            r = self.detector.detect(frame)
            boxes.append(r.boxes[: r.count].astype(np.float64))
            scores.append(r.scores[: r.count].astype(np.float64))
            cuts.append(np.zeros(r.count, dtype=np.int64))
            pre, inf, post = pre + r.preprocess_us, inf + r.inference_us, post + r.postprocess_us
        for window in self.windows(height, width):
            x0, y0, x1, y1 = window
            crop = self._crops.get((y1 - y0, x1 - x0))
            if crop is None:
                crop = self._crops.setdefault((y1 - y0, x1 - x0), np.empty((y1 - y0, x1 - x0, 3), np.uint8))
            np.copyto(crop, frame[y0:y1, x0:x1])
            r = self.detector.detect(crop)
            tile_boxes = r.boxes[: r.count].astype(np.float64)
            cuts.append(np.array([cut_sides(b, window, width, height) for b in tile_boxes], dtype=np.int64))
            mapped = np.empty_like(tile_boxes)
            mapped[:, 0] = (y0 + tile_boxes[:, 0] * (y1 - y0)) / height
            mapped[:, 1] = (x0 + tile_boxes[:, 1] * (x1 - x0)) / width
            mapped[:, 2] = (y0 + tile_boxes[:, 2] * (y1 - y0)) / height
            mapped[:, 3] = (x0 + tile_boxes[:, 3] * (x1 - x0)) / width
            boxes.append(mapped)
            scores.append(r.scores[: r.count].astype(np.float64))
            pre, inf, post = pre + r.preprocess_us, inf + r.inference_us, post + r.postprocess_us
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(cuts), (pre, inf, post)

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> DetectionResult:
        """Detect persons in `frame` (uint8 [H,W,3] RGB) tile by tile; returns the reused result."""
        result = self.result
        result.valid = False
        boxes, scores, cuts, (pre, inf, post) = self.detect_tiles(frame)
        t0 = time.monotonic_ns()
        merged_boxes, merged_scores = merge_tiles(boxes, scores, cuts, self.tiling.merge_iou)
        count = min(len(merged_scores), len(result.scores))
        result.boxes[:count] = merged_boxes[:count]
        result.scores[:count] = merged_scores[:count]
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
