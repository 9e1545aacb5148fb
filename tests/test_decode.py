"""Compiled SSD decode + NMS against a plain numpy reference of the graph's post-processing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.sensor.decode import MAX_DETECTIONS, NMS_IOU, PERSON_CLASS, anchor_centres, decode_nms_kernel
from cobotguard.sensor.detector import ANCHORS_FILE, MODEL_DIR, N_ANCHORS

ANCHORS = np.load(MODEL_DIR / ANCHORS_FILE)
CENTRES = anchor_centres(ANCHORS)


def reference_decode(encodings: np.ndarray) -> np.ndarray:
    """TF Faster R-CNN box coder, scales (10, 10, 5, 5), clipped to [0, 1]; float32 like the graph."""
    a = ANCHORS.astype(np.float32)
    ha = a[:, 2] - a[:, 0]
    wa = a[:, 3] - a[:, 1]
    ya = a[:, 0] + ha / np.float32(2)
    xa = a[:, 1] + wa / np.float32(2)
    ty, tx, th, tw = (encodings[:, k] for k in range(4))
    yc = ty / np.float32(10) * ha + ya
    xc = tx / np.float32(10) * wa + xa
    h = np.exp(th / np.float32(5)) * ha
    w = np.exp(tw / np.float32(5)) * wa
    boxes = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1).astype(np.float32)
    return np.clip(boxes, np.float32(0), np.float32(1))


def reference_iou(a: np.ndarray, b: np.ndarray) -> np.float32:
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    if area_a <= 0 or area_b <= 0:
        return np.float32(0)
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    return inter / (area_a + area_b - inter)


def reference_postprocess(
    encodings: np.ndarray, scores: np.ndarray, min_score: float, iou: float, capacity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS over all anchors scoring >= min_score, highest score first, ties by index."""
    boxes = reference_decode(encodings)
    candidates = np.nonzero(scores >= min_score)[0]
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    kept: list[int] = []
    for k in order:
        box = boxes[k]
        if (box[2] - box[0]) * (box[3] - box[1]) <= 0:
            continue
        if any(reference_iou(boxes[m], box) > iou for m in kept):
            continue
        kept.append(int(k))
        if len(kept) == capacity:
            break
    return boxes[kept], scores[kept]


def run_kernel(
    encodings: np.ndarray,
    scores: np.ndarray,
    min_score: float,
    iou: float = NMS_IOU,
    capacity: int = MAX_DETECTIONS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out_boxes = np.zeros((capacity, 4), dtype=np.float32)
    out_scores = np.zeros(capacity, dtype=np.float32)
    out_classes = np.full(capacity, -1.0, dtype=np.float32)
    count = decode_nms_kernel(
        encodings,
        scores,
        CENTRES,
        min_score,
        iou,
        np.zeros(N_ANCHORS, dtype=np.int32),
        np.zeros((N_ANCHORS, 4), dtype=np.float32),
        out_boxes,
        out_scores,
        out_classes,
    )
    return out_boxes[:count], out_scores[:count], out_classes[:count]


def random_outputs(seed: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    encodings = (rng.normal(0.0, spread, (N_ANCHORS, 4))).astype(np.float32)
    scores = rng.random(N_ANCHORS).astype(np.float32) ** 4  # mostly low, like a real frame
    return encodings, scores


@given(
    seed=st.integers(0, 2**32 - 1),
    spread=st.sampled_from([0.5, 2.0, 8.0]),
    min_score=st.sampled_from([0.05, 0.3, 0.5, 0.9]),
    iou=st.sampled_from([0.3, 0.6, 0.9]),
    capacity=st.sampled_from([1, 5, 100]),
)
def test_matches_numpy_reference(
    seed: int, spread: float, min_score: float, iou: float, capacity: int
) -> None:
    encodings, scores = random_outputs(seed, spread)
    boxes, got_scores, classes = run_kernel(encodings, scores, min_score, iou, capacity)
    want_boxes, want_scores = reference_postprocess(encodings, scores, min_score, iou, capacity)
    assert len(got_scores) == len(want_scores)
    np.testing.assert_array_equal(got_scores, want_scores)
    np.testing.assert_allclose(boxes, want_boxes, rtol=0, atol=1e-6)
    assert np.all(classes == PERSON_CLASS)


def test_equal_scores_keep_the_lower_anchor_index() -> None:
    encodings = np.zeros((N_ANCHORS, 4), dtype=np.float32)
    scores = np.zeros(N_ANCHORS, dtype=np.float32)
    # anchors 0..2 share a location with different aspect ratios; same score: index order decides
    scores[[2, 1]] = 0.8
    boxes, got_scores, _ = run_kernel(encodings, scores, 0.5, iou=0.0)
    assert len(got_scores) == 1
    np.testing.assert_allclose(boxes[0], reference_decode(encodings)[1], atol=1e-7)


def test_overlapping_boxes_are_suppressed_and_distant_ones_kept() -> None:
    encodings = np.zeros((N_ANCHORS, 4), dtype=np.float32)
    scores = np.zeros(N_ANCHORS, dtype=np.float32)
    scores[100] = 0.9
    scores[101] = 0.8  # same cell as 100: near-identical box
    scores[1900] = 0.7  # a large anchor elsewhere
    boxes, got_scores, _ = run_kernel(encodings, scores, 0.5)
    want_boxes, want_scores = reference_postprocess(encodings, scores, 0.5, NMS_IOU, MAX_DETECTIONS)
    np.testing.assert_array_equal(got_scores, want_scores)
    assert 0.9 in got_scores and 0.7 in got_scores


def test_boxes_are_clipped_and_boxes_outside_the_image_dropped() -> None:
    encodings = np.zeros((N_ANCHORS, 4), dtype=np.float32)
    scores = np.zeros(N_ANCHORS, dtype=np.float32)
    scores[0] = 0.9  # corner anchor reaches past the image edge
    scores[5] = 0.8
    encodings[5, 0] = -1000.0  # centre far above the image: no area after clipping
    boxes, got_scores, _ = run_kernel(encodings, scores, 0.5)
    assert list(got_scores) == [pytest.approx(0.9)]
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert ANCHORS[0].min() < 0.0


def test_no_candidates_gives_zero_count() -> None:
    encodings, _ = random_outputs(1, 1.0)
    boxes, got_scores, _ = run_kernel(encodings, np.zeros(N_ANCHORS, dtype=np.float32), 0.5)
    assert len(got_scores) == 0 and boxes.shape == (0, 4)


def test_anchor_centres_round_trip() -> None:
    c = CENTRES
    rebuilt = np.stack(
        [c[:, 0] - c[:, 2] / 2, c[:, 1] - c[:, 3] / 2, c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2], 1
    )
    np.testing.assert_allclose(rebuilt, ANCHORS, atol=1e-6)
