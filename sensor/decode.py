"""SSD box decoding and greedy non-maximum suppression, compiled, into preallocated outputs.

Matches the detector graph's own post-processing (the in-graph oracle): the TF Faster R-CNN box coder
with scale factors (10, 10, 5, 5) over the model's anchors, then greedy NMS at IoU 0.6 (a box is dropped
when its IoU with a kept, higher-scoring box is *greater* than the threshold), highest score first, ties
by anchor index. Only anchors whose score reaches `min_score` are decoded: greedy NMS keeps a box
depending only on boxes that score higher, so filtering first gives the same kept boxes as the oracle
above that score.

Boxes are clipped to the image and boxes left with no area are dropped, as the graph does.

Output follows the IMX500 "bscn" convention: boxes [N,4] as normalised (y0, x0, y1, x1), scores [N],
classes [N] (float, 0 = person: the IMX500 reports class indices without the background), count.
"""

from __future__ import annotations

import numba
import numpy as np

SCALE_Y = np.float32(10.0)
SCALE_X = np.float32(10.0)
SCALE_H = np.float32(5.0)
SCALE_W = np.float32(5.0)
NMS_IOU = 0.6  # the graph's NMS IoU threshold
MAX_DETECTIONS = 100  # the graph keeps at most 100 boxes
PERSON_CLASS = 0.0  # class index reported for a person (background excluded, as the IMX500 does)


def anchor_centres(anchors_yxyx: np.ndarray) -> np.ndarray:
    """Anchors (ymin, xmin, ymax, xmax) -> float32 [A,4] (y centre, x centre, height, width)."""
    a = np.asarray(anchors_yxyx, dtype=np.float32)
    h = a[:, 2] - a[:, 0]
    w = a[:, 3] - a[:, 1]
    yc = a[:, 0] + h / np.float32(2.0)
    xc = a[:, 1] + w / np.float32(2.0)
    return np.ascontiguousarray(np.stack([yc, xc, h, w], axis=1), dtype=np.float32)


@numba.njit(cache=False, nogil=True)
def _before(scores: np.ndarray, a: int, b: int) -> bool:
    """Candidate order: higher score first, then lower anchor index."""
    sa = scores[a]
    sb = scores[b]
    return sa > sb or (sa == sb and a < b)


@numba.njit(cache=False, nogil=True)
def _sift_down(idx: np.ndarray, scores: np.ndarray, start: int, end: int) -> None:
    """Heap helper: the heap's root is the candidate that comes *last* in candidate order."""
    root = start
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and _before(scores, idx[child], idx[child + 1]):
            child += 1
        if _before(scores, idx[root], idx[child]):
            tmp = idx[root]
            idx[root] = idx[child]
            idx[child] = tmp
            root = child
        else:
            return


@numba.njit(cache=False, nogil=True)
def _sort_candidates(idx: np.ndarray, n: int, scores: np.ndarray) -> None:
    """In-place heap sort of idx[:n] into candidate order (no allocation, O(n log n))."""
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(idx, scores, start, n)
    for end in range(n - 1, 0, -1):
        tmp = idx[0]
        idx[0] = idx[end]
        idx[end] = tmp
        _sift_down(idx, scores, 0, end)


@numba.njit(cache=False, nogil=True)
def _iou_rows(b: np.ndarray, i: int, j: int) -> float:
    """IoU of rows i and j of b (y0, x0, y1, x1), as TF's NMS computes it (corners sorted, 0 if empty)."""
    ymin_i = min(b[i, 0], b[i, 2])
    xmin_i = min(b[i, 1], b[i, 3])
    ymax_i = max(b[i, 0], b[i, 2])
    xmax_i = max(b[i, 1], b[i, 3])
    ymin_j = min(b[j, 0], b[j, 2])
    xmin_j = min(b[j, 1], b[j, 3])
    ymax_j = max(b[j, 0], b[j, 2])
    xmax_j = max(b[j, 1], b[j, 3])
    area_i = (ymax_i - ymin_i) * (xmax_i - xmin_i)
    area_j = (ymax_j - ymin_j) * (xmax_j - xmin_j)
    if area_i <= 0.0 or area_j <= 0.0:
        return 0.0
    inter_h = max(min(ymax_i, ymax_j) - max(ymin_i, ymin_j), 0.0)
    inter_w = max(min(xmax_i, xmax_j) - max(xmin_i, xmin_j), 0.0)
    inter = inter_h * inter_w
    return inter / (area_i + area_j - inter)


@numba.njit(cache=False, nogil=True)
def select_candidates(scores: np.ndarray, min_score: float, cand_idx: np.ndarray) -> int:
    """Indices of scores >= min_score into cand_idx[:n], in candidate order; returns n."""
    n = 0
    for a in range(scores.shape[0]):
        if scores[a] >= min_score:
            cand_idx[n] = a
            n += 1
    _sort_candidates(cand_idx, n, scores)
    return n


@numba.njit(cache=False, nogil=True)
def greedy_nms(
    cand_idx: np.ndarray,
    n: int,
    scores: np.ndarray,
    cand_boxes: np.ndarray,
    iou_threshold: float,
    out_boxes: np.ndarray,
    out_scores: np.ndarray,
    out_classes: np.ndarray,
) -> int:
    """Greedy NMS of the n sorted candidates (boxes in cand_boxes[:n], clipped); returns the kept count.

    cand_boxes row k is candidate cand_idx[k]'s box (y0, x0, y1, x1); rows [0, kept) are overwritten.
    """
    capacity = out_scores.shape[0]
    kept = 0
    # cand_boxes rows [0, kept) are compacted to hold the kept boxes, so each candidate is checked
    # against kept boxes only.
    for k in range(n):
        if kept >= capacity:
            break
        # the graph drops boxes left with no area after clipping (entirely outside the image)
        if (cand_boxes[k, 2] - cand_boxes[k, 0]) * (cand_boxes[k, 3] - cand_boxes[k, 1]) <= 0.0:
            continue
        suppressed = False
        for m in range(kept):
            if _iou_rows(cand_boxes, m, k) > iou_threshold:
                suppressed = True
                break
        if suppressed:
            continue
        for c in range(4):
            cand_boxes[kept, c] = cand_boxes[k, c]
            out_boxes[kept, c] = cand_boxes[k, c]
        out_scores[kept] = scores[cand_idx[k]]
        out_classes[kept] = PERSON_CLASS
        kept += 1
    return kept


@numba.njit(cache=False, nogil=True)
def decode_nms_kernel(
    encodings: np.ndarray,
    scores: np.ndarray,
    centres: np.ndarray,
    min_score: float,
    iou_threshold: float,
    cand_idx: np.ndarray,
    cand_boxes: np.ndarray,
    out_boxes: np.ndarray,
    out_scores: np.ndarray,
    out_classes: np.ndarray,
) -> int:
    """Decode boxes scoring >= min_score, NMS them, write the kept ones; returns the count.

    encodings: float32 [A,4] (ty, tx, th, tw); scores: float32 [A] person scores; centres: float32 [A,4]
    from `anchor_centres`; cand_idx: int32 [A] and cand_boxes: float32 [A,4] scratch; out_*: capacity N.
    """
    n = select_candidates(scores, min_score, cand_idx)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for k in range(n):
        a = cand_idx[k]
        ya = centres[a, 0]
        xa = centres[a, 1]
        ha = centres[a, 2]
        wa = centres[a, 3]
        yc = encodings[a, 0] / np.float32(10.0) * ha + ya
        xc = encodings[a, 1] / np.float32(10.0) * wa + xa
        h = np.exp(encodings[a, 2] / np.float32(5.0)) * ha
        w = np.exp(encodings[a, 3] / np.float32(5.0)) * wa
        # clipped to the image, as the graph clips to its window [0, 0, 1, 1] before NMS
        cand_boxes[k, 0] = min(max(yc - h / np.float32(2.0), zero), one)
        cand_boxes[k, 1] = min(max(xc - w / np.float32(2.0), zero), one)
        cand_boxes[k, 2] = min(max(yc + h / np.float32(2.0), zero), one)
        cand_boxes[k, 3] = min(max(xc + w / np.float32(2.0), zero), one)
    return greedy_nms(cand_idx, n, scores, cand_boxes, iou_threshold, out_boxes, out_scores, out_classes)
