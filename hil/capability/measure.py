"""Run a detector over a recorded sequence: detections per frame in pixels, and each frame's latency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cobotguard.hil.capability.metrics import FrameDetections
from cobotguard.sensor.sources import FrameSource
from cobotguard.sensor.tiling import TiledDetector, merge_tiles


@dataclass
class SequenceRun:
    """What one detector reported on every frame of a sequence."""

    detections: list[FrameDetections] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)  # wall time of each detect() call

    def latency_ms(self) -> dict[str, float]:
        """Median, p99 and max frame -> detections time, in milliseconds."""
        a = np.asarray(self.latency_ns, dtype=np.float64) / 1e6
        if a.size == 0:
            return {}
        return {"median": float(np.median(a)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def run_sequence(detector: Any, source: FrameSource, max_frames: int | None = None) -> SequenceRun:
    """Detect persons in every frame of `source` (from index 0 until it ends or `max_frames`)."""
    run = SequenceRun()
    index = 0
    while max_frames is None or index < max_frames:
        frame = source.read(index, 0)
        if frame is None:
            break
        t0 = time.monotonic_ns()
        result = detector.detect(frame.image)
        run.latency_ns.append(time.monotonic_ns() - t0)
        n = result.count
        run.detections.append(
            FrameDetections.from_normalised(
                result.boxes[:n], result.scores[:n], source.width_px, source.height_px
            )
        )
        index += 1
    return run


@dataclass(frozen=True)
class TileBoxes:
    """One frame's boxes from every tile, before merging (normalised y0, x0, y1, x1 of the frame)."""

    boxes: np.ndarray
    scores: np.ndarray
    cuts: np.ndarray


def run_tiles(detector: TiledDetector, source: FrameSource, max_frames: int | None = None) -> list[TileBoxes]:
    """Every frame's tile boxes before merging (see `sensor.tiling`: merge them per threshold)."""
    out = []
    index = 0
    while max_frames is None or index < max_frames:
        frame = source.read(index, 0)
        if frame is None:
            break
        boxes, scores, cuts, _ = detector.detect_tiles(frame.image)
        out.append(TileBoxes(boxes, scores, cuts))
        index += 1
    return out


def merged_at(
    tiles: list[TileBoxes], threshold: float, merge_iou: float, width: int, height: int
) -> list[FrameDetections]:
    """What the tiled detector reports at `threshold`: each frame's tile boxes filtered, then merged."""
    out = []
    for t in tiles:
        keep = t.scores >= threshold
        boxes, scores = merge_tiles(t.boxes[keep], t.scores[keep], t.cuts[keep], merge_iou)
        out.append(FrameDetections.from_normalised(boxes, scores, width, height))
    return out
