"""Real IMX500 adapter: the sensor's output tensors, KPI and frame counter -> DETECTION_DTYPE frames.

The parsing is plain numpy over the data exactly as the sensor hands it to the host (through libcamera
and picamera2), so it is tested without a camera:

* `CnnOutputTensor`: one flat float32 array with every output tensor back to back; each tensor is cut out
  by its element count and reshaped in Fortran order (the sensor serialises the first dimension fastest).
* `CnnOutputTensorInfo`: a packed little-endian struct: network name (64 bytes), tensor count (u32), and
  8 entries of (element count u32, dimension count u32, 8 x u16 sizes).
* `CnnKpiInfo`: two u32 words, DNN runtime and DSP runtime, in microseconds.
* SSD post-processed output ("bscn"): boxes [N, 4] (y0, x0, y1, x1 normalised), scores [N], classes [N],
  count [1]. The count is clamped to [0, N]; a NaN anywhere in the used rows makes the frame INVALID.
* The 8-bit frame counter of the DNN output: a counter equal to the previous one means the host handed
  back the previous result (what the host libraries do when the network is slower than a frame); that
  frame is INVALID and carries no persons, so an old detection is never passed off as new.

`Imx500Camera` is the live part; it imports picamera2 (the optional `imx500` extra) only when started.
It has not been run against a camera in this project; the parsing it relies on is what the tests cover.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cobotguard.safety.reasons import HealthFlag
from cobotguard.safety.records import FRAME_COUNTER_MODULO
from cobotguard.sensor.metadata import MetadataBuilder

NETWORK_NAME_LEN = 64
MAX_NUM_TENSORS = 8
MAX_NUM_DIMENSIONS = 8
_TENSOR_ENTRY = struct.Struct("<II" + "H" * MAX_NUM_DIMENSIONS)
_TENSOR_INFO_HEAD = struct.Struct(f"<{NETWORK_NAME_LEN}sI")
TENSOR_INFO_BYTES = _TENSOR_INFO_HEAD.size + MAX_NUM_TENSORS * _TENSOR_ENTRY.size
_KPI = struct.Struct("<II")


class Imx500ParseError(ValueError):
    """The sensor's output does not have the expected layout; the message says what was found."""


@dataclass(frozen=True)
class TensorInfo:
    """Network name and the shape of each output tensor."""

    network_name: str
    shapes: tuple[tuple[int, ...], ...]


def pack_tensor_info(network_name: str, shapes: list[tuple[int, ...]]) -> bytes:
    """The `CnnOutputTensorInfo` bytes for these shapes (the inverse of `parse_tensor_info`; for tests)."""
    if len(shapes) > MAX_NUM_TENSORS:
        raise ValueError(f"at most {MAX_NUM_TENSORS} tensors")
    out = bytearray(_TENSOR_INFO_HEAD.pack(network_name.encode()[:NETWORK_NAME_LEN], len(shapes)))
    for i in range(MAX_NUM_TENSORS):
        shape = shapes[i] if i < len(shapes) else ()
        sizes = list(shape) + [0] * (MAX_NUM_DIMENSIONS - len(shape))
        out += _TENSOR_ENTRY.pack(int(np.prod(shape)) if shape else 0, len(shape), *sizes)
    return bytes(out)


def parse_tensor_info(raw: bytes | bytearray | memoryview) -> TensorInfo:
    """Decode `CnnOutputTensorInfo`."""
    data = bytes(raw)
    if len(data) != TENSOR_INFO_BYTES:
        raise Imx500ParseError(f"tensor info is {len(data)} bytes, expected {TENSOR_INFO_BYTES}")
    name_raw, count = _TENSOR_INFO_HEAD.unpack_from(data, 0)
    if count > MAX_NUM_TENSORS:
        raise Imx500ParseError(f"tensor info says {count} tensors, at most {MAX_NUM_TENSORS} fit")
    shapes = []
    for i in range(count):
        entry = _TENSOR_ENTRY.unpack_from(data, _TENSOR_INFO_HEAD.size + i * _TENSOR_ENTRY.size)
        n_elements, n_dims, sizes = entry[0], entry[1], entry[2:]
        if not 1 <= n_dims <= MAX_NUM_DIMENSIONS:
            raise Imx500ParseError(f"tensor {i}: {n_dims} dimensions, expected 1..{MAX_NUM_DIMENSIONS}")
        shape = tuple(int(s) for s in sizes[:n_dims])
        if int(np.prod(shape)) != n_elements:
            raise Imx500ParseError(f"tensor {i}: shape {shape} does not hold its {n_elements} elements")
        shapes.append(shape)
    return TensorInfo(name_raw.rstrip(b"\0").decode("utf-8", "replace"), tuple(shapes))


def split_output_tensor(flat: Any, shapes: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    """Cut the flat float32 output into its tensors, each reshaped in Fortran order (the sensor's layout)."""
    data = np.asarray(flat, dtype=np.float32).reshape(-1)
    needed = sum(int(np.prod(s)) for s in shapes)
    if data.size < needed:
        raise Imx500ParseError(
            f"output tensor has {data.size} floats, the shapes {list(shapes)} need {needed}"
        )
    tensors, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        tensors.append(data[offset : offset + size].reshape(shape, order="F"))
        offset += size
    return tensors


def parse_kpi(raw: bytes | bytearray | memoryview) -> tuple[int, int]:
    """`CnnKpiInfo` -> (DNN runtime us, DSP runtime us)."""
    data = bytes(raw)
    if len(data) != _KPI.size:
        raise Imx500ParseError(f"KPI info is {len(data)} bytes, expected {_KPI.size}")
    dnn_us, dsp_us = _KPI.unpack(data)
    return int(dnn_us), int(dsp_us)


@dataclass(frozen=True)
class SsdLayout:
    """Where the SSD post-processor's outputs are and what they mean for this network."""

    boxes: int = 0  # index of the [N, 4] box tensor
    scores: int = 1
    classes: int = 2
    count: int = 3
    person_class: int = 0
    xy_order: bool = False  # True when boxes are (x0, y0, x1, y1) instead of the IMX500's (y0, x0, y1, x1)
    input_size_px: tuple[int, int] | None = None  # (width, height) when boxes are in input-tensor pixels


def parse_ssd(
    tensors: list[np.ndarray], layout: SsdLayout, min_score: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Persons above `min_score`: (boxes [k, 4] normalised y0, x0, y1, x1, scores [k], k)."""
    try:
        boxes = np.asarray(tensors[layout.boxes], dtype=np.float64)
        scores = np.asarray(tensors[layout.scores], dtype=np.float64).reshape(-1)
        classes = np.asarray(tensors[layout.classes], dtype=np.float64).reshape(-1)
        count_raw = float(np.asarray(tensors[layout.count]).reshape(-1)[0])
    except IndexError:
        needed = max(layout.boxes, layout.scores, layout.classes, layout.count) + 1
        raise Imx500ParseError(f"expected at least {needed} output tensors, got {len(tensors)}") from None
    if boxes.ndim == 1 and boxes.size % 4 == 0:
        boxes = boxes.reshape(-1, 4, order="F")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise Imx500ParseError(f"box tensor has shape {boxes.shape}, expected [N, 4]")
    n = boxes.shape[0]
    if scores.size != n or classes.size != n:
        raise Imx500ParseError(f"{n} boxes but {scores.size} scores and {classes.size} classes")
    if not np.isfinite(count_raw):
        raise Imx500ParseError(f"detection count is {count_raw}")
    count = int(min(max(int(count_raw), 0), n))  # as the host libraries do: clamp to the tensor size
    used_boxes, used_scores, used_classes = boxes[:count], scores[:count], classes[:count]
    if not (
        np.isfinite(used_boxes).all() and np.isfinite(used_scores).all() and np.isfinite(used_classes).all()
    ):
        raise Imx500ParseError("NaN or infinity in the detections")
    if layout.xy_order:
        used_boxes = used_boxes[:, [1, 0, 3, 2]]
    if layout.input_size_px is not None:
        w, h = layout.input_size_px
        used_boxes = used_boxes / np.array([h, w, h, w], dtype=np.float64)
    keep = (np.rint(used_classes) == layout.person_class) & (used_scores >= min_score)
    return used_boxes[keep], used_scores[keep], int(keep.sum())


class Imx500Adapter:
    """Turns one IMX500 output (tensors, KPI, frame counter, exposure time) into a detection record."""

    def __init__(
        self,
        builder: MetadataBuilder,
        frame_period_ns: int,
        min_score: float,
        layout: SsdLayout | None = None,
    ) -> None:
        self.builder = builder
        self.frame_period_ns = int(frame_period_ns)
        self.min_score = float(min_score)
        self.layout = layout or SsdLayout()
        self.last_counter: int | None = None
        self.last_error: str | None = None

    def convert(
        self,
        output_tensor: Any,
        tensor_info: bytes | bytearray | memoryview | None,
        kpi: bytes | bytearray | memoryview | None,
        frame_counter: int | None,
        t_exposure_ns: int,
        t_received_ns: int,
        health: int = 0,
    ) -> np.ndarray:
        """The detection record (shape (1,), reused) for one sensor output; faults become health flags."""
        flags = HealthFlag(int(health))
        dnn_us = 0
        boxes = np.zeros((0, 4))
        scores = np.zeros(0)
        count = 0
        self.last_error = None
        try:
            if output_tensor is None or tensor_info is None:
                raise Imx500ParseError("no output tensor for this frame")
            if frame_counter is None:
                raise Imx500ParseError("no frame counter for this frame")
            counter = int(frame_counter) % FRAME_COUNTER_MODULO
            if kpi is not None:
                dnn_us, _dsp_us = parse_kpi(kpi)
                if dnn_us * 1000 > self.frame_period_ns:
                    flags |= HealthFlag.INFERENCE_SLOW
            if counter == self.last_counter:
                raise Imx500ParseError(f"frame counter {counter} repeated: the previous result handed back")
            self.last_counter = counter
            info = parse_tensor_info(tensor_info)
            tensors = split_output_tensor(output_tensor, info.shapes)
            boxes, scores, count = parse_ssd(tensors, self.layout, self.min_score)
        except Imx500ParseError as exc:
            self.last_error = str(exc)
            flags |= HealthFlag.INVALID
        shown = self.last_counter if self.last_counter is not None else 0
        return self.builder.build(
            boxes, scores, count, shown, int(flags), dnn_us, t_exposure_ns, t_received_ns, t_received_ns
        )


class Imx500Camera:
    """A live IMX500 through picamera2 (optional extra `imx500`); yields detection records.

    `frame_counter_of(metadata)` must return the DNN output's 8-bit frame counter for a request (where the
    libcamera build exposes it); `exposure_ns_of(metadata)` the exposure start on the monotonic clock.
    """

    def __init__(
        self,
        network_file: str,
        adapter: Imx500Adapter,
        frame_counter_of: Callable[[Mapping[str, Any]], int | None],
        exposure_ns_of: Callable[[Mapping[str, Any]], int],
        clock: Callable[[], int],
    ) -> None:
        self.network_file = network_file
        self.adapter = adapter
        self.frame_counter_of = frame_counter_of
        self.exposure_ns_of = exposure_ns_of
        self.clock = clock

    def records(self) -> Iterator[np.ndarray]:
        """Start the camera and yield one record per frame (copies), until the caller stops iterating."""
        try:
            from picamera2 import Picamera2
            from picamera2.devices import IMX500
        except ImportError:
            raise RuntimeError("the IMX500 adapter needs picamera2: install cobotguard[imx500]") from None
        imx = IMX500(self.network_file)
        camera = Picamera2(imx.camera_num)
        camera.start(camera.create_preview_configuration(), show_preview=False)
        try:
            while True:
                md = camera.capture_metadata()
                received = self.clock()
                yield self.adapter.convert(
                    md.get("CnnOutputTensor"),
                    md.get("CnnOutputTensorInfo"),
                    md.get("CnnKpiInfo"),
                    self.frame_counter_of(md),
                    self.exposure_ns_of(md),
                    received,
                ).copy()
        finally:
            camera.stop()
