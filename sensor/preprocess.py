"""Resize an RGB frame to the network input and normalise it, as the detector's TF1 graph does.

The graph resizes with TF1 `ResizeBilinear` (align_corners=False, half_pixel_centers=False): output pixel
`i` samples input coordinate `i * (in_size / out_size)`, bilinear between `floor` and `min(floor + 1,
in_size - 1)`, in float32; then `x * (2 / 255) - 1`. The index and weight tables depend only on the frame
and network sizes, so they are built once per frame size (`ResizeTables`); the per-frame work is one
compiled pass writing into a preallocated output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

NET_SIZE = 300  # the SSDLite person detector takes 300x300 RGB
NORM_SCALE = np.float32(2.0 / 255.0)  # the graph's Preprocessor/mul constant
NORM_OFFSET = np.float32(1.0)


@dataclass(frozen=True)
class ResizeTables:
    """Source rows/columns and interpolation weights for one (input size -> output size) resize."""

    y_lo: np.ndarray  # int32 [out_h]
    y_hi: np.ndarray  # int32 [out_h]
    y_w: np.ndarray  # float32 [out_h], weight of y_hi
    x_lo: np.ndarray  # int32 [out_w]
    x_hi: np.ndarray  # int32 [out_w]
    x_w: np.ndarray  # float32 [out_w], weight of x_hi
    in_h: int
    in_w: int


def _axis_table(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF1 legacy bilinear sampling along one axis, in float32 like the TF kernel."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.arange(out_size, dtype=np.float32) * scale
    lo_f = np.floor(src)
    lo = lo_f.astype(np.int32)
    hi = np.minimum(np.ceil(src).astype(np.int32), in_size - 1).astype(np.int32)
    weight = (src - lo_f).astype(np.float32)
    return lo, hi, weight


def resize_tables(in_h: int, in_w: int, out_h: int = NET_SIZE, out_w: int = NET_SIZE) -> ResizeTables:
    """Build the sampling tables for resizing an `in_h` x `in_w` frame to `out_h` x `out_w`."""
    if in_h < 1 or in_w < 1:
        raise ValueError(f"frame size must be positive, got {in_h}x{in_w}")
    y_lo, y_hi, y_w = _axis_table(in_h, out_h)
    x_lo, x_hi, x_w = _axis_table(in_w, out_w)
    return ResizeTables(y_lo, y_hi, y_w, x_lo, x_hi, x_w, in_h, in_w)


@numba.njit(cache=False, nogil=True, fastmath=False)
def resize_normalise_kernel(
    frame: np.ndarray,
    y_lo: np.ndarray,
    y_hi: np.ndarray,
    y_w: np.ndarray,
    x_lo: np.ndarray,
    x_hi: np.ndarray,
    x_w: np.ndarray,
    out: np.ndarray,
) -> None:
    """Bilinear resize of uint8 `frame` [H,W,3] into float32 `out` [oh,ow,3], normalised to [-1, 1]."""
    scale = np.float32(2.0 / 255.0)
    one = np.float32(1.0)
    out_h = out.shape[0]
    out_w = out.shape[1]
    for i in range(out_h):
        r0 = y_lo[i]
        r1 = y_hi[i]
        wy = y_w[i]
        for j in range(out_w):
            c0 = x_lo[j]
            c1 = x_hi[j]
            wx = x_w[j]
            for c in range(3):
                tl = np.float32(frame[r0, c0, c])
                tr = np.float32(frame[r0, c1, c])
                bl = np.float32(frame[r1, c0, c])
                br = np.float32(frame[r1, c1, c])
                top = tl + (tr - tl) * wx
                bottom = bl + (br - bl) * wx
                value = top + (bottom - top) * wy
                out[i, j, c] = value * scale - one


class Preprocessor:
    """Frame -> network input, reusing one output buffer and per-size tables between frames."""

    def __init__(self, out: np.ndarray | None = None) -> None:
        """`out` is the float32 [300,300,3] buffer to write into (e.g. a view of the session's input)."""
        if out is None:
            out = np.empty((NET_SIZE, NET_SIZE, 3), dtype=np.float32)
        if out.dtype != np.float32 or out.ndim != 3 or out.shape[2] != 3 or not out.flags.c_contiguous:
            raise ValueError("output buffer must be C-contiguous float32 [H, W, 3]")
        self.out = out
        self._tables: dict[tuple[int, int], ResizeTables] = {}

    def tables_for(self, in_h: int, in_w: int) -> ResizeTables:
        """The sampling tables for this frame size (built on first use; call before the loop starts)."""
        key = (in_h, in_w)
        tables = self._tables.get(key)
        if tables is None:
            tables = resize_tables(in_h, in_w, self.out.shape[0], self.out.shape[1])
            self._tables[key] = tables
        return tables

    def warm_up(self, in_h: int = 480, in_w: int = 640) -> None:
        """Compile the kernel (for writable and read-only frames) and build the tables for this size."""
        frame = np.zeros((in_h, in_w, 3), dtype=np.uint8)
        self(frame)
        frame.flags.writeable = False  # e.g. np.asarray(PIL image): numba compiles a separate variant
        self(frame)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Resize and normalise `frame` (uint8 [H,W,3] RGB) into the output buffer and return it.

        A frame that is not C-contiguous is copied first (one allocation); sources should hand over
        contiguous frames.
        """
        check_frame(frame)
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        t = self.tables_for(frame.shape[0], frame.shape[1])
        resize_normalise_kernel(frame, t.y_lo, t.y_hi, t.y_w, t.x_lo, t.x_hi, t.x_w, self.out)
        return self.out


def check_frame(frame: np.ndarray) -> None:
    """Raise ValueError unless `frame` is a uint8 [H,W,3] array."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise ValueError(f"expected an RGB frame as uint8 [H, W, 3], got {dtype} with shape {shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame is empty: shape {frame.shape}")
