"""Sensor self-checks, reported as `HealthFlag` bits in every detection frame (IEC 61496 style).

Image checks look at a strided sample of the frame's luma (cheap, numba, no allocation):
a near-uniform image means a covered or blinded lens; most samples clipped high or low means over- or
under-exposure. The frozen-image check compares the whole frame with the previous one (a real sensor's
noise makes two consecutive frames differ somewhere; the comparison stops at the first difference).
Timing checks: inference slower than the frame period is INFERENCE_SLOW; a frame whose inference did
not finish, or whose result belongs to another frame, is INVALID and carries no persons: old
detections are never passed off as new (the IMX500 host libraries do that, and it is a hazard).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from cobotguard.safety.reasons import HealthFlag

STAT_MEAN, STAT_STD, STAT_HIGH, STAT_LOW = 0, 1, 2, 3


@dataclass(frozen=True)
class HealthThresholds:
    """Limits of the image checks, on 8-bit luma."""

    stride_px: int = 8  # sample every stride-th pixel in both directions
    uniform_std: float = 4.0  # luma standard deviation below this: covered or blinded lens
    high_luma: int = 250  # a sample at or above this is clipped high
    low_luma: int = 6  # a sample at or below this is clipped low
    overexposed_fraction: float = 0.5  # more than this share clipped high: overexposed
    underexposed_fraction: float = 0.6  # more than this share clipped low: underexposed


@njit(cache=False, nogil=True)
def luma_stats(image: np.ndarray, stride: int, high: int, low: int, out: np.ndarray) -> None:
    """Mean, standard deviation, share >= high, share <= low of strided luma samples into out[0:4]."""
    rows, cols, channels = image.shape
    total = 0.0
    total_sq = 0.0
    n_high = 0
    n_low = 0
    n = 0
    for r in range(stride // 2, rows, stride):
        for c in range(stride // 2, cols, stride):
            if channels >= 3:
                y = (
                    77 * np.int32(image[r, c, 0])
                    + 150 * np.int32(image[r, c, 1])
                    + 29 * np.int32(image[r, c, 2])
                ) >> 8
            else:
                y = np.int32(image[r, c, 0])
            total += y
            total_sq += y * y
            if y >= high:
                n_high += 1
            if y <= low:
                n_low += 1
            n += 1
    if n == 0:
        out[0] = 0.0
        out[1] = 0.0
        out[2] = 0.0
        out[3] = 1.0
        return
    mean = total / n
    var = total_sq / n - mean * mean
    out[0] = mean
    out[1] = np.sqrt(var) if var > 0.0 else 0.0
    out[2] = n_high / n
    out[3] = n_low / n


@njit(cache=False, nogil=True)
def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two flat uint8 arrays are identical (stops at the first difference)."""
    if a.shape[0] != b.shape[0]:
        return False
    for i in range(a.shape[0]):  # noqa: SIM110 (an explicit loop: numba compiles it to an early exit)
        if a[i] != b[i]:
            return False
    return True


def image_flags(stats: np.ndarray, limits: HealthThresholds) -> HealthFlag:
    """Flags from `luma_stats` output (pure)."""
    flags = HealthFlag.OK
    if stats[STAT_STD] < limits.uniform_std:
        flags |= HealthFlag.LENS_COVERED
    if stats[STAT_HIGH] > limits.overexposed_fraction:
        flags |= HealthFlag.OVEREXPOSED
    if stats[STAT_LOW] > limits.underexposed_fraction:
        flags |= HealthFlag.UNDEREXPOSED
    return flags


def timing_flags(
    inference_ns: int, frame_period_ns: int, finished: bool, result_frame: int, frame: int
) -> HealthFlag:
    """Flags from the inference timing and from whose frame the result is (pure).

    `result_frame` is the frame counter the detector's output was computed from, `frame` the frame being
    reported; a mismatch means the output is stale (or early) and must not be sent as this frame's.
    """
    flags = HealthFlag.OK
    if inference_ns > frame_period_ns:
        flags |= HealthFlag.INFERENCE_SLOW
    if not finished or result_frame != frame:
        flags |= HealthFlag.INVALID
    return flags


def as_hwc(image: np.ndarray) -> np.ndarray:
    """A C-contiguous (H, W, C) uint8 view of a grey or colour frame (one layout, one compiled kernel)."""
    if image.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"frames must be (H, W) or (H, W, C), got shape {image.shape}")
    return np.ascontiguousarray(image)


class HealthMonitor:
    """Image health of a stream of frames; keeps the previous frame for the frozen-image check."""

    def __init__(self, shape: tuple[int, ...], limits: HealthThresholds | None = None) -> None:
        self.limits = limits or HealthThresholds()
        self._stats = np.zeros(4, dtype=np.float64)
        self._previous = np.zeros(int(np.prod(shape)), dtype=np.uint8)
        self._have_previous = False

    @property
    def stats(self) -> np.ndarray:
        """Luma statistics of the last checked frame: mean, std, share clipped high, share clipped low."""
        return self._stats

    def check(self, image: np.ndarray) -> HealthFlag:
        """Image flags of this frame (covered, frozen, over-/under-exposed); remembers it for the next."""
        hwc = as_hwc(image)
        flat = hwc.reshape(-1)
        if flat.shape[0] != self._previous.shape[0]:
            raise ValueError(
                f"frame has {flat.shape[0]} bytes, the monitor was built for {self._previous.shape[0]}"
            )
        luma_stats(hwc, self.limits.stride_px, self.limits.high_luma, self.limits.low_luma, self._stats)
        flags = image_flags(self._stats, self.limits)
        if self._have_previous and same_bytes(flat, self._previous):
            flags |= HealthFlag.FROZEN
        np.copyto(self._previous, flat)
        self._have_previous = True
        return flags

    def reset(self) -> None:
        """Forget the previous frame (after a deliberate restart of the stream)."""
        self._have_previous = False


def warm_up() -> None:
    """Compile the kernels before the loop starts (no JIT in the loop)."""
    for channels in (1, 3):
        image = np.zeros((16, 16, channels), dtype=np.uint8)
        luma_stats(image, 4, 250, 6, np.zeros(4))
    flat = np.zeros(8, dtype=np.uint8)
    same_bytes(flat, flat)
