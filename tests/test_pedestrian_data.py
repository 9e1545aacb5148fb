"""The capability path on real recordings (MOTChallenge-packaged TUD sequences), when a copy is at hand.

The sequences are licensed for test use only and are not part of the repository: point
COBOTGUARD_PEDESTRIANS at a folder holding `TUD-Campus/TUD-Campus.mp4` and `TUD-Campus/gt/gt.txt`; without
it (as in CI) these tests skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from config_support import DEFAULT_CELL

from cobotguard.hil.cli.main import main
from cobotguard.sensor.sources import VideoSource
from cobotguard.sensor.truth import read_mot_truth

ROOT = os.environ.get("COBOTGUARD_PEDESTRIANS")
CAMPUS = Path(ROOT or ".") / "TUD-Campus"

pytestmark = pytest.mark.skipif(
    not ROOT or not (CAMPUS / "gt" / "gt.txt").is_file(),
    reason="set COBOTGUARD_PEDESTRIANS to the pedestrian sequences",
)


def test_video_and_truth_agree() -> None:
    pytest.importorskip("av")
    video = VideoSource(CAMPUS / "TUD-Campus.mp4")
    truth = read_mot_truth(CAMPUS / "gt" / "gt.txt")
    assert (video.width_px, video.height_px) == (640, 480)
    assert len(video.frames) == truth.last_frame == 71


def test_capability_runs_the_real_detector(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("av")
    code = main(
        ["capability", str(DEFAULT_CELL), "--video", str(CAMPUS / "TUD-Campus.mp4"),
         "--truth", str(CAMPUS / "gt" / "gt.txt"), "--max-frames", "10", "--json"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and report["frames"] == 10
    assert report["overall"]["n"] > 30
    assert report["overall"]["recall"] > 0.3  # a sanity floor, far below what the detector does here
