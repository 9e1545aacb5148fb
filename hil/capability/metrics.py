"""Detection capability from detections and ground truth: matching, recall per size band, misses in a row.

Definitions (docs/sensor.md, "Detection capability on real recordings"):

* **Matching**, per frame: detections in descending score order (ties: detector order); each takes the
  not yet matched, considered ground-truth box it overlaps most, if that IoU is >= `min_iou` (0.5, the
  PASCAL VOC / MOTChallenge rule). A detection left over that overlaps a box marked not to be considered
  (flag 0) by >= `min_iou` is ignored; any other is a false positive (so is a second detection of one
  person). Ground-truth boxes are clipped to the image first (the detector's boxes are), and a box with
  nothing inside the image is not considered.
* **Size** of a person: the clipped box's height as a fraction of the frame height. Bands are [lo, hi).
* **Recall** in a band: matched considered boxes / considered boxes of that band, over every frame.
* **k-frame recall** (k = tolerated_missed_frames + 1): the box of track i in frame t counts as found when
  track i is matched in any frame t..t+k-1 in which it has a considered box (frames past the sequence's
  end, or where the track is not annotated, do not count: the window is never padded with hits).
* **Miss streak** of a track: a run of consecutive frames in which it has a considered box and is not
  matched; a frame in which it is not annotated ends the run. Each track's longest run is reported.
* **False positives per frame**: false positives / frames of the sequence (frames without persons count).

Greedy matching by score decides each detection from higher-scoring ones only, so matching every
detection above a low floor once gives, for any threshold s above it, exactly the matches a detector
reporting only scores >= s would get: the precision/recall curve comes from one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cobotguard.sensor.truth import GroundTruth

DEFAULT_BAND_EDGES = (0.0, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.60, 1.0)  # fractions of frame height
MIN_IOU = 0.5
TRUE_POSITIVE, FALSE_POSITIVE, IGNORED = 1, 0, -1


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections in pixels: boxes [n, 4] as (x0, y0, x1, y1), scores [n]."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def from_normalised(
        cls, boxes_yxyx: np.ndarray, scores: np.ndarray, width: int, height: int
    ) -> FrameDetections:
        """From the detector's normalised (y0, x0, y1, x1) boxes (copied)."""
        b = np.asarray(boxes_yxyx, dtype=np.float64).reshape(-1, 4)
        px = np.stack([b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], axis=1)
        return cls(px, np.asarray(scores, dtype=np.float64).reshape(-1).copy())


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` [n, 4] with every box of `b` [m, 4], both (x0, y0, x1, y1)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0.0, inter / union, 0.0)


def match_frame(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_considered: np.ndarray,
    min_iou: float = MIN_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one frame: (matching detection per GT box or -1, kind of each detection)."""
    n, m = len(det_scores), len(gt_boxes)
    gt_match = np.full(m, -1, dtype=np.int64)
    kinds = np.full(n, FALSE_POSITIVE, dtype=np.int8)
    if n == 0 or m == 0:
        return gt_match, kinds
    ious = iou_matrix(det_boxes, gt_boxes)
    considered = np.asarray(gt_considered, dtype=bool)
    for d in np.argsort(-np.asarray(det_scores), kind="stable"):
        free = np.where(considered & (gt_match < 0), ious[d], -1.0)
        j = int(np.argmax(free))
        if free[j] >= min_iou:
            gt_match[j] = d
            kinds[d] = TRUE_POSITIVE
        elif np.any(ious[d][~considered] >= min_iou):
            kinds[d] = IGNORED
    return gt_match, kinds


@dataclass(frozen=True)
class Matched:
    """Every considered ground-truth box and every detection of a sequence, after matching."""

    frames: int
    width: int
    height: int
    gt_frame: np.ndarray  # int64, 1-based
    gt_track: np.ndarray  # int64
    gt_height_px: np.ndarray  # float64, clipped to the image
    gt_match_score: np.ndarray  # float64: score of the matching detection, -inf when unmatched
    det_score: np.ndarray  # float64
    det_kind: np.ndarray  # int8: TRUE_POSITIVE, FALSE_POSITIVE, IGNORED

    @property
    def gt_fraction(self) -> np.ndarray:
        """Each box's height as a fraction of the frame height."""
        return self.gt_height_px / self.height


def match_sequence(
    detections: Sequence[FrameDetections],
    truth: GroundTruth,
    width: int,
    height: int,
    min_iou: float = MIN_IOU,
) -> Matched:
    """Match every frame's detections (index 0 = frame 1 of the ground truth) with the ground truth."""
    if truth.last_frame > len(detections):
        raise ValueError(
            f"{truth.path}: ground truth for frame {truth.last_frame}, but the sequence has "
            f"{len(detections)} frame(s)"
        )
    cols = truth.as_arrays()
    x0 = np.clip(cols["x0"], 0.0, width)
    x1 = np.clip(cols["x1"], 0.0, width)
    y0 = np.clip(cols["y0"], 0.0, height)
    y1 = np.clip(cols["y1"], 0.0, height)
    visible = (x1 > x0) & (y1 > y0)
    considered = cols["considered"] & visible
    boxes = np.stack([x0, y0, x1, y1], axis=1)
    match_score = np.full(len(boxes), -np.inf)
    det_scores: list[np.ndarray] = []
    det_kinds: list[np.ndarray] = []
    for index, dets in enumerate(detections):
        rows = np.flatnonzero(cols["frame"] == index + 1)
        gt_match, kinds = match_frame(dets.boxes, dets.scores, boxes[rows], considered[rows], min_iou)
        hit = gt_match >= 0
        match_score[rows[hit]] = dets.scores[gt_match[hit]]
        det_scores.append(np.asarray(dets.scores, dtype=np.float64))
        det_kinds.append(kinds)
    keep = considered
    return Matched(
        frames=len(detections),
        width=width,
        height=height,
        gt_frame=cols["frame"][keep],
        gt_track=cols["track"][keep],
        gt_height_px=(y1 - y0)[keep],
        gt_match_score=match_score[keep],
        det_score=np.concatenate(det_scores) if det_scores else np.zeros(0),
        det_kind=np.concatenate(det_kinds) if det_kinds else np.zeros(0, dtype=np.int8),
    )


def found_within(frames: np.ndarray, tracks: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
    """Per box: is its track found in any of its annotated frames t..t+k-1 (see the module docstring)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = np.zeros(len(frames), dtype=bool)
    for track in np.unique(tracks):
        rows = np.flatnonzero(tracks == track)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        f, hit = frames[rows], found[rows]
        hit_frames = f[hit]
        # the first hit at or after t, if any, must lie before t + k
        nxt = np.searchsorted(hit_frames, f, side="left")
        has = nxt < len(hit_frames)
        ok = np.zeros(len(rows), dtype=bool)
        ok[has] = hit_frames[nxt[has]] <= f[has] + (k - 1)
        out[rows] = ok
    return out


def longest_miss_streaks(frames: np.ndarray, tracks: np.ndarray, found: np.ndarray) -> dict[int, int]:
    """Each track's longest run of consecutive annotated frames without a match."""
    longest: dict[int, int] = {}
    for track in np.unique(tracks):
        rows = np.flatnonzero(tracks == track)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        best = run = 0
        previous = None
        for frame, hit in zip(frames[rows], found[rows], strict=True):
            if hit or (previous is not None and frame != previous + 1):
                run = 0
            if not hit:
                run += 1
                best = max(best, run)
            previous = frame
        longest[int(track)] = best
    return longest
