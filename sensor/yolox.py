"""YOLOX-Nano (COCO) as the emulated sensor's person detector: letterbox -> ONNX network -> decode + NMS.

Same interface and buffer contract as `sensor.detector.Detector` (which builds this class for the model
names in detector.YOLOX_MODELS): every buffer is allocated once, the network's input and
output are bound through onnxruntime's IOBinding, the returned `DetectionResult` is reused by the next
`detect()`, and boxes come out as normalised (y0, x0, y1, x1) of the frame, class 0 = person.

The network (see models/PROVENANCE.md) takes float32 [1,3,H,W] planar BGR in 0..255, unnormalised, with
the picture scaled to fit and placed at the top-left corner, the rest grey 114 (YOLOX's own letterbox).
The resize here is the area-averaging kernel of sensor.preprocess (antialiased); for a frame of exactly
the network's size (640x480 into "yolox_nano_480x640") its weights are 1 and 0, so pixels pass unchanged.
The output [1,A,85] holds, per grid cell of strides 8, 16 and 32 (row-major, stride 8 first), raw
(x, y, log w, log h), then objectness and 80 class scores, both already through a sigmoid in this export.
A person's score is objectness x class-0 score.
"""

from __future__ import annotations

import time
from pathlib import Path

import numba
import numpy as np

from cobotguard.sensor.decode import MAX_DETECTIONS, greedy_nms, select_candidates
from cobotguard.sensor.detector import DetectionResult, Detector, model_path
from cobotguard.sensor.preprocess import DEFAULT_RESIZE, area_resize_affine_kernel, area_tables, check_frame

INPUT_NAME = "images"
OUTPUT_NAME = "output"
STRIDES = (8, 16, 32)
N_OUTPUTS = 85  # x, y, log w, log h, objectness, 80 COCO class scores
PERSON_COCO_CLASS = 0
PAD_VALUE = 114.0  # YOLOX's letterbox grey
YOLOX_NMS_IOU = 0.55  # chosen from the PR curve by bench/select_operating_point.py (docs/sensor.md)
YOLOX_RESIZE_MODES = ("area",)


def grid_table(net_h: int, net_w: int) -> np.ndarray:
    """float32 [A,3] (x cell, y cell, stride) for each output row of a net_h x net_w YOLOX network."""
    rows = []
    for stride in STRIDES:
        ys, xs = np.meshgrid(np.arange(net_h // stride), np.arange(net_w // stride), indexing="ij")
        rows.append(np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, stride)], axis=1))
    return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


def letterbox_size(frame_h: int, frame_w: int, net_h: int, net_w: int) -> tuple[int, int]:
    """Height and width of the frame scaled to fit the network input, aspect kept (YOLOX rounds down)."""
    ratio = min(net_h / frame_h, net_w / frame_w)
    return max(1, int(frame_h * ratio)), max(1, int(frame_w * ratio))


@numba.njit(cache=False, nogil=True)
def yolox_decode_nms_kernel(
    raw: np.ndarray,
    grid: np.ndarray,
    min_score: float,
    iou_threshold: float,
    inv_h: float,
    inv_w: float,
    person_scores: np.ndarray,
    cand_idx: np.ndarray,
    cand_boxes: np.ndarray,
    out_boxes: np.ndarray,
    out_scores: np.ndarray,
    out_classes: np.ndarray,
) -> int:
    """Decode YOLOX rows whose person score reaches min_score, NMS them, write the kept ones; returns count.

    raw: float32 [A,85]; grid: from `grid_table`; inv_h, inv_w: 1 / the letterboxed picture's height and
    width in network pixels (the picture sits at the top-left, so this maps to normalised frame
    coordinates); person_scores: float32 [A], cand_idx: int32 [A], cand_boxes: float32 [A,4] scratch.
    """
    for a in range(raw.shape[0]):
        person_scores[a] = raw[a, 4] * raw[a, 5 + PERSON_COCO_CLASS]
    n = select_candidates(person_scores, min_score, cand_idx)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    half = np.float32(0.5)
    fh = np.float32(inv_h)
    fw = np.float32(inv_w)
    for k in range(n):
        a = cand_idx[k]
        stride = grid[a, 2]
        xc = (raw[a, 0] + grid[a, 0]) * stride
        yc = (raw[a, 1] + grid[a, 1]) * stride
        w = np.exp(raw[a, 2]) * stride
        h = np.exp(raw[a, 3]) * stride
        # clipped to the frame: the grey padding is not part of it
        cand_boxes[k, 0] = min(max((yc - half * h) * fh, zero), one)
        cand_boxes[k, 1] = min(max((xc - half * w) * fw, zero), one)
        cand_boxes[k, 2] = min(max((yc + half * h) * fh, zero), one)
        cand_boxes[k, 3] = min(max((xc + half * w) * fw, zero), one)
    return greedy_nms(
        cand_idx, n, person_scores, cand_boxes, iou_threshold, out_boxes, out_scores, out_classes
    )


class Letterbox:
    """Frame -> YOLOX input (planar BGR, 0..255, top-left letterbox), written into one preallocated array."""

    def __init__(self, out: np.ndarray) -> None:
        """`out` is the float32 [1,3,H,W] network input to write into."""
        if out.dtype != np.float32 or out.ndim != 4 or out.shape[:2] != (1, 3) or not out.flags.c_contiguous:
            raise ValueError("input buffer must be C-contiguous float32 [1, 3, H, W]")
        self.out = out
        self.net_h, self.net_w = int(out.shape[2]), int(out.shape[3])
        # [H,W,3] view of the planar input with the channels reversed: the kernel writes RGB as BGR
        self._hwc_bgr = out[0].transpose(1, 2, 0)[:, :, ::-1]
        self._sizes: dict[tuple[int, int], tuple] = {}
        self._last: tuple[int, int] | None = None

    def tables_for(self, in_h: int, in_w: int) -> tuple:
        """(area tables, output view, picture height, picture width) for this frame size, built once."""
        key = (in_h, in_w)
        entry = self._sizes.get(key)
        if entry is None:
            pic_h, pic_w = letterbox_size(in_h, in_w, self.net_h, self.net_w)
            tables = area_tables(in_h, in_w, pic_h, pic_w)
            entry = (tables, self._hwc_bgr[:pic_h, :pic_w], pic_h, pic_w)
            self._sizes[key] = entry
        return entry

    def warm_up(self, in_h: int = 480, in_w: int = 640) -> None:
        """Compile the kernel (for writable and read-only frames) and build the tables for this size."""
        frame = np.zeros((in_h, in_w, 3), dtype=np.uint8)
        self(frame)
        frame.flags.writeable = False
        self(frame)

    def __call__(self, frame: np.ndarray) -> tuple[int, int]:
        """Letterbox `frame` (uint8 [H,W,3] RGB) into the input; returns the picture's (height, width)."""
        check_frame(frame)
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        key = (frame.shape[0], frame.shape[1])
        t, view, pic_h, pic_w = self.tables_for(*key)
        if key != self._last:
            # the padding only changes with the frame size; the kernel overwrites the picture every frame
            self.out.fill(PAD_VALUE)
            self._last = key
        area_resize_affine_kernel(
            frame, t.y_start, t.y_w, t.x_start, t.x_w, t.row, view, np.float32(1.0), np.float32(0.0)
        )
        return pic_h, pic_w


class YoloxDetector(Detector):
    """YOLOX-Nano (COCO, class 0 = person) with the interface of the SSDLite `Detector`."""

    def __init__(
        self,
        model: str | Path = "yolox_nano",
        threads: int = 2,
        min_score: float = 0.5,
        max_detections: int = MAX_DETECTIONS,
        iou_threshold: float = YOLOX_NMS_IOU,
        spinning: bool = False,
        resize: str = DEFAULT_RESIZE,
    ) -> None:
        """Load a YOLOX network (a name in detector.YOLOX_MODELS or an .onnx path), allocate buffers."""
        import onnxruntime as ort

        from cobotguard.sensor.detector import session_options

        if not 0.0 < min_score <= 1.0:
            raise ValueError(f"min_score must be in (0, 1], got {min_score}")
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        if resize not in YOLOX_RESIZE_MODES:
            raise ValueError(f"resize {resize!r} is not available for YOLOX; expected {YOLOX_RESIZE_MODES}")
        self.model_path = model_path(model)
        self.model_name = str(model)
        self.threads = threads
        self.min_score = float(min_score)
        self.iou_threshold = float(iou_threshold)
        self.resize = resize
        self.session = ort.InferenceSession(
            str(self.model_path),
            sess_options=session_options(threads, spinning),
            providers=["CPUExecutionProvider"],
        )
        net_h, net_w = self._check_yolox_io()
        self.net_size = (net_h, net_w)
        self._grid = grid_table(net_h, net_w)
        n_rows = self._grid.shape[0]
        self._input = np.zeros((1, 3, net_h, net_w), dtype=np.float32)
        self._raw = np.zeros((1, n_rows, N_OUTPUTS), dtype=np.float32)
        self._person_scores = np.zeros(n_rows, dtype=np.float32)
        self._cand_idx = np.zeros(n_rows, dtype=np.int32)
        self._cand_boxes = np.zeros((n_rows, 4), dtype=np.float32)
        self._letterbox = Letterbox(self._input)
        self._binding = self._bind()
        self.result = DetectionResult(
            np.zeros((max_detections, 4), dtype=np.float32),
            np.zeros(max_detections, dtype=np.float32),
            np.zeros(max_detections, dtype=np.float32),
        )
        self.frames = 0

    def _check_yolox_io(self) -> tuple[int, int]:
        """The network's input height and width, after checking that it is a YOLOX COCO network."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        shape = inputs.get(INPUT_NAME) or []
        fixed = (
            len(inputs) == 1
            and len(shape) == 4
            and shape[:2] == [1, 3]
            and all(isinstance(d, int) and d > 0 and d % STRIDES[-1] == 0 for d in shape[2:])
        )
        net_h, net_w = (int(shape[2]), int(shape[3])) if fixed else (0, 0)
        if not fixed or outputs != {OUTPUT_NAME: [1, grid_table(net_h, net_w).shape[0], N_OUTPUTS]}:
            raise ValueError(
                f"{self.model_path}: not a YOLOX COCO network with a fixed input: inputs {inputs}, "
                f"outputs {outputs}"
            )
        return net_h, net_w

    def _bind(self):  # -> onnxruntime.IOBinding
        """Bind the network's input and output to our arrays, so no run allocates or copies them."""
        binding = self.session.io_binding()
        for name, array, bind in (
            (INPUT_NAME, self._input, binding.bind_input),
            (OUTPUT_NAME, self._raw, binding.bind_output),
        ):
            bind(
                name=name,
                device_type="cpu",
                device_id=0,
                element_type=np.float32,
                shape=array.shape,
                buffer_ptr=array.ctypes.data,
            )
        return binding

    def warm_up(self, height: int = 480, width: int = 640, runs: int = 3) -> None:
        """Compile the kernels, build the letterbox tables for this frame size and run the network."""
        self._letterbox.warm_up(height, width)
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(runs):
            self.detect(frame)
        self.frames = 0

    def detect(self, frame: np.ndarray, t_exposure_ns: int = -1) -> DetectionResult:
        """Detect persons in `frame` (uint8 [H,W,3] RGB); returns the detector's reused result."""
        result = self.result
        result.valid = False  # an exception below leaves the previous detections marked invalid
        t0 = time.monotonic_ns()
        pic_h, pic_w = self._letterbox(frame)
        t1 = time.monotonic_ns()
        self.session.run_with_iobinding(self._binding)
        t2 = time.monotonic_ns()
        count = yolox_decode_nms_kernel(
            self._raw[0],
            self._grid,
            self.min_score,
            self.iou_threshold,
            1.0 / pic_h,
            1.0 / pic_w,
            self._person_scores,
            self._cand_idx,
            self._cand_boxes,
            result.boxes,
            result.scores,
            result.classes,
        )
        return self._finish(result, count, t0, t1, t2, t_exposure_ns)
