"""The detector as originally built: resize, decode and NMS inside the ONNX graph.

Used as the oracle in differential tests and as the baseline in the benchmark; not for the real-time path
(it allocates every frame and is slower).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cobotguard.sensor.decode import MAX_DETECTIONS, PERSON_CLASS
from cobotguard.sensor.detector import MODEL_DIR, DetectionResult, session_options
from cobotguard.sensor.preprocess import check_frame

FULL_MODEL_FILE = "ssdlite_person_full.onnx"


class OracleDetector:
    """SSDLite person detector with the graph's own resize, box decoding and NMS (IoU 0.6, 100 boxes)."""

    def __init__(self, threads: int = 2, min_score: float = 0.5, model: str | Path | None = None) -> None:
        """Load the full graph; detections below `min_score` are dropped from the output."""
        import onnxruntime as ort

        path = Path(model) if model is not None else MODEL_DIR / FULL_MODEL_FILE
        self.min_score = float(min_score)
        self.session = ort.InferenceSession(
            str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._frames = 0

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> DetectionResult:
        """Detect persons in `frame` (uint8 [H,W,3] RGB); returns a newly allocated result."""
        check_frame(frame)
        t0 = time.monotonic_ns()
        _, boxes, scores, _ = self.session.run(None, {"image_tensor:0": frame[None]})
        t1 = time.monotonic_ns()
        keep = scores[0] >= self.min_score
        count = int(keep.sum())
        out = DetectionResult(
            np.zeros((MAX_DETECTIONS, 4), dtype=np.float32),
            np.zeros(MAX_DETECTIONS, dtype=np.float32),
            np.zeros(MAX_DETECTIONS, dtype=np.float32),
        )
        out.boxes[:count] = boxes[0][keep]
        out.scores[:count] = scores[0][keep]
        out.classes[:count] = PERSON_CLASS  # the graph says 1 (0 is background); the IMX500 says 0
        out.count = count
        out.inference_us = (t1 - t0) // 1000
        out.frame_counter = self._frames % 256
        out.t_exposure_ns = int(t_exposure_ns)
        out.t_done_ns = time.monotonic_ns()
        out.valid = True
        self._frames += 1
        return out
