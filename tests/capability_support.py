"""A stand-in detector that finds solid-colour rectangles, and sequences drawn for it (exact ground truth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cobotguard.sensor.detector import DetectionResult

BACKGROUND = (90, 90, 90)


class ColourDetector:
    """ "Detects" every rectangle drawn in one of its colours, with that colour's score.

    Each known colour gives at most one box: the bounding box of its pixels in the frame (or crop).
    """

    def __init__(self, scores: dict[tuple[int, int, int], float], min_score: float = 0.5) -> None:
        self.scores = scores
        self.min_score = min_score
        self.frames_seen: list[tuple[int, int]] = []
        self.result = DetectionResult(
            np.zeros((16, 4), np.float32), np.zeros(16, np.float32), np.zeros(16, np.float32)
        )

    def warm_up(self, height: int = 480, width: int = 640, runs: int = 3) -> None:
        """Nothing to compile."""

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> DetectionResult:
        """Bounding boxes (normalised y0, x0, y1, x1) of the known colours scoring >= min_score."""
        self.frames_seen.append(frame.shape[:2])
        h, w = frame.shape[:2]
        r = self.result
        n = 0
        for colour, score in sorted(self.scores.items(), key=lambda item: -item[1]):
            if score < self.min_score:
                continue
            ys, xs = np.nonzero(np.all(frame == np.array(colour, np.uint8), axis=2))
            if ys.size == 0:
                continue
            r.boxes[n] = (ys.min() / h, xs.min() / w, (ys.max() + 1) / h, (xs.max() + 1) / w)
            r.scores[n] = score
            n += 1
        r.count = n
        r.valid = True
        return r


def draw(width: int, height: int, rects: list[tuple[tuple[int, int, int], int, int, int, int]]) -> np.ndarray:
    """A grey frame with filled rectangles (colour, x, y, w, h)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    for colour, x, y, w, h in rects:
        image[y : y + h, x : x + w] = colour
    return image


def write_sequence(folder: Path, frames: list[np.ndarray]) -> Path:
    """Frames as numbered PNG files in `folder`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(frames, start=1):
        Image.fromarray(image).save(folder / f"{k:06d}.png")
    return folder
