"""Resize an RGB frame to the network input and normalise it: area averaging (default) or TF1 bilinear.

Two resize modes, both compiled passes over preallocated outputs with tables built once per frame size:

- `"tf1_bilinear"` reproduces the detector graph's own TF1 `ResizeBilinear` (align_corners=False,
  half_pixel_centers=False): output pixel `i` samples input coordinate `i * (in_size / out_size)`,
  bilinear between `floor` and `min(floor + 1, in_size - 1)`, in float32. It is kept bit-exact so that
  the detector can be tested differentially against the in-graph oracle (`ssdlite_person_full.onnx`).
- `"area"` averages every input pixel that an output pixel covers (a box filter with fractional edge
  weights, like OpenCV's INTER_AREA), so a downscale does not alias. Each output row is built from a
  vertically averaged input row (a preallocated scratch row), then averaged horizontally.

Both then compute `x * (2 / 255) - 1`.

Why `"area"` is the default: measured with bench/bench_recall.py (default cell camera, 640x480, the
photos walking in at their true extent, 2 lanes x 60 frames per photo, min_score 0.5, found = IoU >= 0.5
with the drawn person), recall over every person from a given fraction of the frame height up:

    from             0.15   0.20   0.25   0.30   0.35   0.40
    fp32 area         83 %   90 %   89 %   85 %   94 %  100 %
    fp32 tf1_bilinear 77 %   85 %   82 %   81 %   88 %  100 %
    int8 area         73 %   77 %   73 %   75 %   85 %  100 %
    int8 tf1_bilinear 68 %   74 %   72 %   72 %   75 %   85 %

With the camera re-mounted low (1.3 m, 5 deg down) so torsos fill up to 0.8 of the frame, area again led
at every threshold (from 0.25: fp32 95 % vs 90 %, int8 87 % vs 78 %). At 640x480 -> 300x300 the TF1
kernel reads only about 1 column in 2 and 1 row in 1.6, so the picture of a small person aliases and its
score jumps from frame to frame; averaging every covered pixel removes that. Area is not better in every
size band of every photo (the photos' scores are not monotonic in size with either kernel), and on the
stretched stand-in walkers (not realistic people) the two were within a few points with area ahead. The
photos themselves are still found with IoU >= 0.9 against the in-graph oracle (scores move a little:
astronaut 0.932 vs 0.902), and the kernel costs the same as the bilinear one (~0.8 ms median for a
640x480 frame on the 2-core VM, both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

NET_SIZE = 300  # the SSDLite person detector takes 300x300 RGB
NORM_SCALE = np.float32(2.0 / 255.0)  # the graph's Preprocessor/mul constant
NORM_OFFSET = np.float32(1.0)
RESIZE_MODES = ("area", "tf1_bilinear")
DEFAULT_RESIZE = "area"  # see the module docstring for the measurement behind this choice


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


@dataclass(frozen=True)
class AreaTables:
    """Box-filter taps for one (input size -> output size) resize, and the scratch row it needs.

    Output row `i` averages input rows `y_start[i] + k` with weights `y_w[i, k]` (weights sum to 1;
    unused taps have weight 0 and a valid index); columns likewise.
    """

    y_start: np.ndarray  # int32 [out_h]
    y_w: np.ndarray  # float32 [out_h, taps_y]
    x_start: np.ndarray  # int32 [out_w]
    x_w: np.ndarray  # float32 [out_w, taps_x]
    row: np.ndarray  # float32 [in_w, 3], scratch for one vertically averaged input row
    in_h: int
    in_w: int


def _area_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start index and overlap weights of the input pixels under each output pixel, along one axis."""
    scale = in_size / out_size
    # No more taps than input pixels: the kernel reads every tap, even one of weight 0, without bounds
    # checks, so a tap past the edge (a 1-pixel-wide frame) would read beyond the scratch row (0 * NaN).
    taps = min(int(np.ceil(scale)) + 1, in_size)
    start = np.zeros(out_size, dtype=np.int32)
    weights = np.zeros((out_size, taps), dtype=np.float64)
    for i in range(out_size):
        lo, hi = i * scale, (i + 1) * scale
        first = min(int(np.floor(lo)), in_size - 1)
        start[i] = min(first, in_size - taps)
        for k in range(taps):
            p = start[i] + k
            weights[i, k] = max(0.0, min(hi, p + 1.0) - max(lo, float(p)))
    weights /= weights.sum(axis=1, keepdims=True)
    return start, weights.astype(np.float32)


def area_tables(in_h: int, in_w: int, out_h: int = NET_SIZE, out_w: int = NET_SIZE) -> AreaTables:
    """Build the box-filter taps for resizing an `in_h` x `in_w` frame to `out_h` x `out_w`."""
    if in_h < 1 or in_w < 1:
        raise ValueError(f"frame size must be positive, got {in_h}x{in_w}")
    y_start, y_w = _area_axis(in_h, out_h)
    x_start, x_w = _area_axis(in_w, out_w)
    return AreaTables(y_start, y_w, x_start, x_w, np.zeros((in_w, 3), dtype=np.float32), in_h, in_w)


@numba.njit(cache=False, nogil=True, fastmath=False)
def area_resize_normalise_kernel(
    frame: np.ndarray,
    y_start: np.ndarray,
    y_w: np.ndarray,
    x_start: np.ndarray,
    x_w: np.ndarray,
    row: np.ndarray,
    out: np.ndarray,
) -> None:
    """Area-averaging resize of uint8 `frame` [H,W,3] into float32 `out` [oh,ow,3], normalised to [-1, 1]."""
    area_resize_affine_kernel(frame, y_start, y_w, x_start, x_w, row, out, NORM_SCALE, -NORM_OFFSET)


@numba.njit(cache=False, nogil=True, fastmath=False)
def area_resize_affine_kernel(
    frame: np.ndarray,
    y_start: np.ndarray,
    y_w: np.ndarray,
    x_start: np.ndarray,
    x_w: np.ndarray,
    row: np.ndarray,
    out: np.ndarray,
    scale: np.float32,
    offset: np.float32,
) -> None:
    """Area-averaging resize of uint8 `frame` [H,W,3] into float32 `out` [oh,ow,3] as value * scale + offset.

    `out` may be any strided view (e.g. a letterbox region of a planar BGR input seen as [H,W,3]).
    """
    zero = np.float32(0.0)
    width3 = frame.shape[1] * 3
    pixels = frame.reshape((frame.shape[0], width3))  # a view: rows as flat runs, so the loops vectorise
    acc = row.reshape(width3)
    taps_y = y_w.shape[1]
    taps_x = x_w.shape[1]
    for i in range(out.shape[0]):
        r = y_start[i]
        wy = y_w[i, 0]
        for x in range(width3):
            acc[x] = wy * np.float32(pixels[r, x])
        for k in range(1, taps_y):
            wy = y_w[i, k]
            if wy == zero:
                continue
            r = y_start[i] + k
            for x in range(width3):
                acc[x] += wy * np.float32(pixels[r, x])
        for j in range(out.shape[1]):
            c0 = x_start[j]
            s0 = zero
            s1 = zero
            s2 = zero
            for k in range(taps_x):
                wx = x_w[j, k]
                s0 += wx * row[c0 + k, 0]
                s1 += wx * row[c0 + k, 1]
                s2 += wx * row[c0 + k, 2]
            out[i, j, 0] = s0 * scale + offset
            out[i, j, 1] = s1 * scale + offset
            out[i, j, 2] = s2 * scale + offset


class Preprocessor:
    """Frame -> network input, reusing one output buffer and per-size tables between frames."""

    def __init__(self, out: np.ndarray | None = None, mode: str = DEFAULT_RESIZE) -> None:
        """`out` is the float32 [300,300,3] buffer to write into (e.g. a view of the session's input);
        `mode` is "area" (antialiased, the default) or "tf1_bilinear" (exactly the graph's own resize)."""
        if mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
        if out is None:
            out = np.empty((NET_SIZE, NET_SIZE, 3), dtype=np.float32)
        if out.dtype != np.float32 or out.ndim != 3 or out.shape[2] != 3 or not out.flags.c_contiguous:
            raise ValueError("output buffer must be C-contiguous float32 [H, W, 3]")
        self.out = out
        self.mode = mode
        self._tables: dict[tuple[int, int], ResizeTables | AreaTables] = {}

    def tables_for(self, in_h: int, in_w: int) -> ResizeTables | AreaTables:
        """The tables for this frame size and mode (built on first use; call before the loop starts)."""
        key = (in_h, in_w)
        tables = self._tables.get(key)
        if tables is None:
            out_h, out_w = self.out.shape[0], self.out.shape[1]
            if self.mode == "area":
                tables = area_tables(in_h, in_w, out_h, out_w)
            else:
                tables = resize_tables(in_h, in_w, out_h, out_w)
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
        if isinstance(t, AreaTables):
            area_resize_normalise_kernel(frame, t.y_start, t.y_w, t.x_start, t.x_w, t.row, self.out)
        else:
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
