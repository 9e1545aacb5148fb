"""The tiled merge as first written in plain Python (per-frame lists and arrays), kept as the reference
that the compiled merge of cobotguard.sensor.tiling must match box for box."""

from __future__ import annotations

import numpy as np

from cobotguard.sensor.tiling import COVER, CUT_BOTTOM, CUT_LEFT, CUT_RIGHT, CUT_TOP, JOIN_AGREEMENT


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


def reference_merge(
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
