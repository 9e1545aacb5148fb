"""Capability figures on a hand-built sequence whose every number is worked out in the comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cobotguard.hil.capability.metrics import (
    FALSE_POSITIVE,
    IGNORED,
    TRUE_POSITIVE,
    FrameDetections,
    found_within,
    iou_matrix,
    longest_miss_streaks,
    match_frame,
    match_sequence,
)
from cobotguard.hil.capability.summary import (
    backed_band,
    band_table,
    clopper_pearson,
    overall,
    pr_curve,
    streaks,
    verdict,
)
from cobotguard.sensor.truth import read_mot_truth

W, H = 100, 200
T1 = (10, 50, 10, 30)  # 15 % of the frame height: band 15-20 %
T2 = (50, 20, 30, 90)  # 45 %: band 40-60 %
T3 = (80, 150, 10, 20)  # flag 0: not considered
T4 = (30, 180, 10, 60)  # runs out of the image: clipped to 20 px = 10 %, band 10-15 %


def _px(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y + h]


@pytest.fixture
def matched(tmp_path: Path):
    """Six frames, k = 2 in the figures below.

    track 1 (15 %): matched in frames 1, 2, 5 (score 0.6); missed 3, 4, 6
    track 2 (45 %): matched in every frame but 3 (score 0.8)
    track 3 (flag 0): frame 2, detected (0.7): ignored, not a false positive
    track 4 (10 % after clipping): frame 1, never detected
    false positives: frame 4 a box on nothing (0.9); frame 6 a second box on track 2 (0.55)
    """
    lines = []
    for f in range(1, 7):
        lines.append(f"{f},1,{','.join(map(str, T1))},1,-1,-1,-1")
        lines.append(f"{f},2,{','.join(map(str, T2))},1,-1,-1,-1")
    lines.append(f"2,3,{','.join(map(str, T3))},0,-1,-1,-1")
    lines.append(f"1,4,{','.join(map(str, T4))},1,-1,-1,-1")
    path = tmp_path / "gt.txt"
    path.write_text("\n".join(lines) + "\n")
    frames = []
    for f in range(1, 7):
        boxes, scores = [], []
        if f in (1, 2, 5):
            boxes.append(_px(*T1))
            scores.append(0.6)
        if f != 3:
            boxes.append(_px(*T2))
            scores.append(0.8)
        if f == 2:
            boxes.append(_px(*T3))
            scores.append(0.7)
        if f == 4:
            boxes.append(_px(0, 0, 5, 5))
            scores.append(0.9)
        if f == 6:
            boxes.append(_px(52, 20, 30, 90))
            scores.append(0.55)
        frames.append(FrameDetections(np.array(boxes, float).reshape(-1, 4), np.array(scores, float)))
    return match_sequence(frames, read_mot_truth(path), W, H)


def _band(bands: list[dict], lo: float) -> dict:
    return next(b for b in bands if b["lo"] == lo)


def test_recall_per_band_and_k_frame_recall(matched) -> None:
    bands = band_table(matched, 0.5, k=2)
    assert [b["n"] for b in bands] == [0, 1, 6, 0, 0, 0, 6, 0]
    small, large, clipped = _band(bands, 0.15), _band(bands, 0.40), _band(bands, 0.10)
    assert (small["found"], small["found_k"]) == (3, 4)  # k-frame: frames 1, 2, 4 (hit in 5), 5; not 3, 6
    assert small["recall"] == pytest.approx(0.5) and small["recall_k"] == pytest.approx(4 / 6)
    assert (large["found"], large["found_k"]) == (5, 6)  # frame 3's miss is bridged by frame 4
    assert (clipped["n"], clipped["found"], clipped["found_k"]) == (1, 0, 0)
    assert small["lo_px"] == pytest.approx(30.0) and small["hi_px"] == pytest.approx(40.0)
    assert small["recall_k_ci95"] == pytest.approx(list(clopper_pearson(4, 6)))


def test_overall_false_positives_and_precision(matched) -> None:
    o = overall(matched, 0.5, k=2)
    assert (o["n"], o["found"], o["true_positives"], o["false_positives"]) == (13, 8, 8, 2)
    assert o["recall"] == pytest.approx(8 / 13) and o["recall_k"] == pytest.approx(10 / 13)
    assert o["fp_per_frame"] == pytest.approx(2 / 6) and o["precision"] == pytest.approx(0.8)
    assert sorted(matched.det_kind.tolist()).count(IGNORED) == 1


def test_miss_streaks(matched) -> None:
    s = streaks(matched, 0.5, k=2)
    assert s["longest_per_track"] == {"1": 2, "2": 1, "4": 1}
    assert s["histogram"] == {"1": 2, "2": 1}
    assert (s["max"], s["tracks"], s["tracks_missed_k_frames_in_a_row"]) == (2, 3, 1)


def test_pr_curve_equals_a_detector_that_reports_only_higher_scores(matched) -> None:
    points = {p["threshold"]: p for p in pr_curve(lambda _: matched, k=2)}
    at = points[0.7]  # track 1 (0.6) and the duplicate (0.55) drop out; the 0.9 false positive stays
    assert (at["found"], at["true_positives"], at["false_positives"]) == (5, 5, 1)
    assert at["recall_k"] == pytest.approx(6 / 13) and at["precision"] == pytest.approx(5 / 6)
    assert points[0.95]["found"] == 0 and points[0.95]["precision"] is None
    assert points[0.5]["found"] == 8


def test_verdict_backs_from_the_smallest_band_with_every_band_above_passing(matched) -> None:
    bands = band_table(matched, 0.5, k=2)
    assert backed_band(bands, 0.95, min_samples=1) == 6  # 40-60 % passes, 15-20 % (4/6) does not
    v = verdict(bands, H, 50.0, H, 0.95, 1)
    assert v["backed_from_fraction"] == 0.40 and v["backed_from_px"] == pytest.approx(80.0)
    assert not v["backed"] and "below what the measurement backs" in v["reason"]
    assert verdict(bands, H, 80.0, H, 0.95, 1)["backed"]
    assert not verdict(bands, H, 79.0, H, 0.95, 1)["backed"]
    assert verdict(bands, H, 400.0, 4 * H, 0.95, 1)["backed_from_px"] == pytest.approx(320.0)
    nothing = verdict(bands, H, 80.0, H, 0.95, 7)  # no band has 7 persons
    assert nothing["backed_from_fraction"] is None and not nothing["backed"]
    assert backed_band(bands, 0.6, min_samples=1) == 2  # 15-20 % at 4/6 passes a 60 % requirement


def test_found_within_does_not_pad_the_window_over_annotation_gaps() -> None:
    frames = np.array([1, 2, 5, 6])
    tracks = np.ones(4, dtype=int)
    found = np.array([False, False, True, False])
    assert found_within(frames, tracks, found, 2).tolist() == [False, False, True, False]
    assert found_within(frames, tracks, found, 4).tolist() == [False, True, True, False]
    assert found_within(frames, tracks, found, 1).tolist() == found.tolist()
    assert longest_miss_streaks(frames, tracks, np.array([False, False, False, True])) == {1: 2}


def test_match_frame_prefers_the_higher_score_and_counts_a_duplicate_as_false_positive() -> None:
    gt = np.array([_px(0, 0, 10, 20)])
    dets = np.array([_px(0, 0, 10, 20), _px(1, 0, 10, 20), _px(50, 50, 5, 5)])
    gt_match, kinds = match_frame(dets, np.array([0.6, 0.9, 0.7]), gt, np.array([True]))
    assert gt_match.tolist() == [1]
    assert kinds.tolist() == [FALSE_POSITIVE, TRUE_POSITIVE, FALSE_POSITIVE]
    low_iou = np.array([_px(0, 10, 10, 20)])  # IoU 1/3 with the person: a miss and a false positive
    assert match_frame(low_iou, np.array([0.9]), gt, np.array([True]))[0].tolist() == [-1]
    assert iou_matrix(low_iou, gt)[0, 0] == pytest.approx(1 / 3)


def test_truth_beyond_the_sequence_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("3,1,0,0,10,10,1\n")
    empty = FrameDetections(np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(ValueError, match=r"gt.txt: ground truth for frame 3, but the sequence has 2 frame"):
        match_sequence([empty, empty], read_mot_truth(path), W, H)
