"""The emulated on-sensor person detector: preprocess -> ONNX backbone -> compiled decode + NMS.

Output follows the IMX500 "bscn" convention (boxes [N,4] normalised y0,x0,y1,x1; scores [N]; classes [N];
count) plus the KPI the sensor reports (DNN runtime in microseconds) and an 8-bit wrapping frame counter.

Every buffer is allocated once: the network input and outputs are bound to preallocated arrays through
onnxruntime's IOBinding, and the preprocess and decode kernels write into preallocated arrays. The returned
`DetectionResult` is the detector's own, overwritten by the next `detect()`; call `.copy()` to keep it.
Call `warm_up()` before the real-time loop starts (numba compiles, onnxruntime allocates its arena).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cobotguard.sensor.decode import MAX_DETECTIONS, NMS_IOU, anchor_centres, decode_nms_kernel
from cobotguard.sensor.preprocess import DEFAULT_RESIZE, NET_SIZE, Preprocessor

MODEL_DIR = Path(__file__).resolve().parent / "models"
MODEL_FILES = {
    "fp32": "ssdlite_person_backbone.onnx",
    "int8": "ssdlite_person_backbone_int8.onnx",
    # YOLOX-Nano (COCO): Detector(...) builds a sensor.yolox.YoloxDetector for these
    "yolox_nano": "yolox_nano.onnx",
    "yolox_nano_480x640": "yolox_nano_480x640.onnx",
}
YOLOX_MODELS = ("yolox_nano", "yolox_nano_480x640")
ANCHORS_FILE = "ssdlite_anchors_yxyx.npy"
INPUT_NAME = "Preprocessor/sub:0"
ENCODINGS_NAME = "Squeeze:0"
SCORES_NAME = "Postprocessor/convert_scores:0"
N_ANCHORS = 1917
PERSON_SCORE_COLUMN = 1  # column 0 is background
FRAME_COUNTER_MODULO = 256  # the IMX500's frame counter is 8 bits


@dataclass
class DetectionResult:
    """One frame's detections in the IMX500 "bscn" layout; rows [0, count) are valid, the rest zero."""

    boxes: np.ndarray  # float32 [N,4] normalised y0, x0, y1, x1
    scores: np.ndarray  # float32 [N]
    classes: np.ndarray  # float32 [N], 0 = person
    count: int = 0
    inference_us: int = 0  # KPI: DNN (backbone) runtime
    preprocess_us: int = 0  # resize + normalise
    postprocess_us: int = 0  # decode + NMS (the IMX500's "DSP" part)
    frame_counter: int = 0  # 0..255, wraps
    t_exposure_ns: int = -1  # as given to detect(); -1 when not given
    t_done_ns: int = 0  # monotonic time when the metadata was ready
    valid: bool = False  # False until a detect() completes, and while or after one fails: fail closed

    def copy(self) -> DetectionResult:
        """A deep copy that later frames do not overwrite."""
        return DetectionResult(
            self.boxes.copy(),
            self.scores.copy(),
            self.classes.copy(),
            self.count,
            self.inference_us,
            self.preprocess_us,
            self.postprocess_us,
            self.frame_counter,
            self.t_exposure_ns,
            self.t_done_ns,
            self.valid,
        )

    @property
    def total_us(self) -> int:
        """Frame -> metadata time: preprocess + inference + postprocess."""
        return self.preprocess_us + self.inference_us + self.postprocess_us


def model_path(model: str | Path) -> Path:
    """Resolve a shipped model's name (see MODEL_FILES) to its file; anything else is taken as a path."""
    if isinstance(model, str) and model in MODEL_FILES:
        return MODEL_DIR / MODEL_FILES[model]
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(
            f"detector model not found: {path} (expected one of {sorted(MODEL_FILES)} or an .onnx file)"
        )
    return path


def session_options(threads: int, spinning: bool = False):  # -> onnxruntime.SessionOptions
    """onnxruntime options for a single-stream, low-latency session with `threads` intra-op threads.

    Worker threads do not spin between frames by default: the sensor shares the host with the safety
    loop, and spinning workers take a core from it (on a loaded 2-core host they also made the 2-thread
    detector slower: see bench/bench_detector.py).
    """
    import onnxruntime as ort

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


class Detector:
    """SSDLite MobileNetV2 person detector emulating an IMX500's on-sensor output."""

    def __new__(cls, model: str | Path = "fp32", *args: object, **kwargs: object) -> Detector:
        """A YOLOX model name builds a sensor.yolox.YoloxDetector (same interface), anything else this."""
        if cls is Detector and isinstance(model, str) and model in YOLOX_MODELS:
            from cobotguard.sensor.yolox import YoloxDetector

            return super().__new__(YoloxDetector)
        return super().__new__(cls)

    def __init__(
        self,
        model: str | Path = "fp32",
        threads: int = 2,
        min_score: float = 0.5,
        max_detections: int = MAX_DETECTIONS,
        iou_threshold: float = NMS_IOU,
        spinning: bool = False,
        resize: str = DEFAULT_RESIZE,
    ) -> None:
        """Load the backbone ("fp32", "int8" or an .onnx path) and allocate every buffer.

        `resize` is the preprocessing: "area" (antialiased, the default: see sensor.preprocess) or
        "tf1_bilinear" (the graph's own resize, for differential tests against the in-graph oracle).
        """
        import onnxruntime as ort

        if not 0.0 < min_score <= 1.0:
            raise ValueError(f"min_score must be in (0, 1], got {min_score}")
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        self.model_path = model_path(model)
        self.model_name = str(model)
        self.threads = threads
        self.min_score = float(min_score)
        self.iou_threshold = float(iou_threshold)
        self.session = ort.InferenceSession(
            str(self.model_path),
            sess_options=session_options(threads, spinning),
            providers=["CPUExecutionProvider"],
        )
        self._check_io()
        self._centres = anchor_centres(np.load(MODEL_DIR / ANCHORS_FILE))

        self._input = np.zeros((1, NET_SIZE, NET_SIZE, 3), dtype=np.float32)
        self._encodings = np.zeros((1, N_ANCHORS, 4), dtype=np.float32)
        self._scores2 = np.zeros((1, N_ANCHORS, 2), dtype=np.float32)
        self._person_scores = np.zeros(N_ANCHORS, dtype=np.float32)
        self._cand_idx = np.zeros(N_ANCHORS, dtype=np.int32)
        self._cand_boxes = np.zeros((N_ANCHORS, 4), dtype=np.float32)
        self._preprocess = Preprocessor(self._input[0], resize)
        self.resize = resize
        self._binding = self._bind()
        self.result = DetectionResult(
            np.zeros((max_detections, 4), dtype=np.float32),
            np.zeros(max_detections, dtype=np.float32),
            np.zeros(max_detections, dtype=np.float32),
        )
        self.frames = 0  # frames detected since warm-up; the frame counter is this modulo 256

    def _check_io(self) -> None:
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        expected_in = {INPUT_NAME: [1, NET_SIZE, NET_SIZE, 3]}
        expected_out = {ENCODINGS_NAME: [1, N_ANCHORS, 4], SCORES_NAME: [1, N_ANCHORS, 2]}
        if inputs != expected_in or outputs != expected_out:
            raise ValueError(
                f"{self.model_path}: not the SSDLite person backbone: inputs {inputs}, outputs {outputs}; "
                f"expected inputs {expected_in}, outputs {expected_out}"
            )

    def _bind(self):  # -> onnxruntime.IOBinding
        """Bind the network's input and outputs to our arrays, so no run allocates or copies them."""
        binding = self.session.io_binding()
        for name, array in (
            (INPUT_NAME, self._input),
            (ENCODINGS_NAME, self._encodings),
            (SCORES_NAME, self._scores2),
        ):
            kwargs = dict(
                name=name,
                device_type="cpu",
                device_id=0,
                element_type=np.float32,
                shape=array.shape,
                buffer_ptr=array.ctypes.data,
            )
            if name == INPUT_NAME:
                binding.bind_input(**kwargs)
            else:
                binding.bind_output(**kwargs)
        return binding

    def warm_up(self, height: int = 480, width: int = 640, runs: int = 3) -> None:
        """Compile the kernels, build the resize tables for this frame size and run the network."""
        self._preprocess.warm_up(height, width)
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(runs):
            self.detect(frame)
        self.frames = 0

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> DetectionResult:
        """Detect persons in `frame` (uint8 [H,W,3] RGB); returns the detector's reused result."""
        result = self.result
        result.valid = False  # an exception below leaves the previous detections marked invalid
        t0 = time.monotonic_ns()
        self._preprocess(frame)
        t1 = time.monotonic_ns()
        self.session.run_with_iobinding(self._binding)
        t2 = time.monotonic_ns()
        np.copyto(self._person_scores, self._scores2[0, :, PERSON_SCORE_COLUMN])
        count = decode_nms_kernel(
            self._encodings[0],
            self._person_scores,
            self._centres,
            self.min_score,
            self.iou_threshold,
            self._cand_idx,
            self._cand_boxes,
            result.boxes,
            result.scores,
            result.classes,
        )
        return self._finish(result, count, t0, t1, t2, t_exposure_ns)

    def _finish(
        self, result: DetectionResult, count: int, t0: int, t1: int, t2: int, t_exposure_ns: int
    ) -> DetectionResult:
        """Clear the unused slots, stamp the stage times and the frame counter (every model's last step)."""
        result.boxes[count:] = 0.0
        result.scores[count:] = 0.0
        result.classes[count:] = 0.0
        t3 = time.monotonic_ns()
        result.count = int(count)
        result.preprocess_us = (t1 - t0) // 1000
        result.inference_us = (t2 - t1) // 1000
        result.postprocess_us = (t3 - t2) // 1000
        result.frame_counter = self.frames % FRAME_COUNTER_MODULO
        result.t_exposure_ns = int(t_exposure_ns)
        result.t_done_ns = t3
        result.valid = True
        self.frames += 1
        return result
