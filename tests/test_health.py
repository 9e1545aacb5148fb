"""Sensor health checks: each fires on its fault and stays quiet on normal frames."""

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data

from cobotguard.safety.reasons import HealthFlag
from cobotguard.sensor.health import HealthMonitor, HealthThresholds, luma_stats, timing_flags


def photos() -> list[np.ndarray]:
    grace = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return [data.astronaut(), data.camera(), grace]


def noisy(image: np.ndarray, seed: int, sigma: float = 2.0) -> np.ndarray:
    """The frame as a real sensor would deliver it twice: same scene, different read noise."""
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_normal_frames_are_healthy(index: int) -> None:
    photo = photos()[index]
    monitor = HealthMonitor(photo.shape)
    for seed in range(3):
        assert monitor.check(noisy(photo, seed)) == HealthFlag.OK


def test_dim_but_textured_frame_is_healthy() -> None:
    dim = (data.astronaut() // 4).astype(np.uint8)
    assert HealthMonitor(dim.shape).check(noisy(dim, 0)) == HealthFlag.OK


@pytest.mark.requirement("SR-SENS-4")
def test_frozen_frame_is_flagged_and_clears_when_the_image_moves() -> None:
    frame = noisy(data.astronaut(), 0)
    monitor = HealthMonitor(frame.shape)
    assert monitor.check(frame) == HealthFlag.OK
    assert monitor.check(frame.copy()) == HealthFlag.FROZEN
    moved = frame.copy()
    moved[-1, -1, -1] ^= 1  # a single changed byte, far from the strided samples, is a new frame
    assert monitor.check(moved) == HealthFlag.OK


@pytest.mark.requirement("SR-SENS-4")
def test_covered_lens_is_flagged() -> None:
    covered = noisy(np.full((480, 640, 3), 60, np.uint8), 1, sigma=1.5)
    flags = HealthMonitor(covered.shape).check(covered)
    assert HealthFlag.LENS_COVERED in flags
    assert HealthFlag.UNDEREXPOSED not in flags and HealthFlag.OVEREXPOSED not in flags


def test_blinded_lens_is_flagged_covered_and_overexposed() -> None:
    white = np.full((480, 640, 3), 255, np.uint8)
    flags = HealthMonitor(white.shape).check(white)
    assert flags == HealthFlag.LENS_COVERED | HealthFlag.OVEREXPOSED


def test_overexposed_scene_with_texture_left_is_flagged() -> None:
    photo = data.astronaut().astype(np.float64)
    bright = np.clip(photo * 4.0 + 60.0, 0, 255).astype(np.uint8)
    flags = HealthMonitor(bright.shape).check(bright)
    assert HealthFlag.OVEREXPOSED in flags and HealthFlag.UNDEREXPOSED not in flags


def test_underexposed_scene_is_flagged() -> None:
    dark = (data.astronaut() // 40).astype(np.uint8)
    flags = HealthMonitor(dark.shape).check(dark)
    assert HealthFlag.UNDEREXPOSED in flags and HealthFlag.OVEREXPOSED not in flags


def test_grey_frames_use_the_same_checks() -> None:
    camera = data.camera()
    monitor = HealthMonitor(camera.shape)
    assert monitor.check(camera) == HealthFlag.OK
    assert monitor.check(camera) == HealthFlag.FROZEN
    assert HealthFlag.LENS_COVERED in HealthMonitor(camera.shape).check(np.zeros_like(camera))


def test_luma_stats_match_numpy() -> None:
    photo = data.astronaut()
    out = np.zeros(4)
    luma_stats(photo, 8, 250, 6, out)
    sample = photo[4::8, 4::8].astype(np.int32)
    luma = (77 * sample[..., 0] + 150 * sample[..., 1] + 29 * sample[..., 2]) >> 8
    assert out == pytest.approx([luma.mean(), luma.std(), (luma >= 250).mean(), (luma <= 6).mean()])


def test_monitor_rejects_frames_of_another_size() -> None:
    monitor = HealthMonitor((480, 640, 3))
    with pytest.raises(ValueError, match="bytes"):
        monitor.check(np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        monitor.check(np.zeros((480, 640, 3), np.float32))


def test_thresholds_are_adjustable() -> None:
    covered = noisy(np.full((64, 64, 3), 128, np.uint8), 2, sigma=3.0)
    assert HealthFlag.LENS_COVERED in HealthMonitor(covered.shape).check(covered)
    strict = HealthThresholds(uniform_std=1.0)
    assert HealthMonitor(covered.shape, strict).check(covered) == HealthFlag.OK


PERIOD = 33_333_333


def test_timing_quiet_when_inference_fits_the_frame() -> None:
    assert timing_flags(20_000_000, PERIOD, True, 7, 7) == HealthFlag.OK
    assert timing_flags(PERIOD, PERIOD, True, 7, 7) == HealthFlag.OK


@pytest.mark.requirement("SR-SENS-4")
def test_slow_inference_is_flagged() -> None:
    assert timing_flags(PERIOD + 1, PERIOD, True, 7, 7) == HealthFlag.INFERENCE_SLOW


@pytest.mark.requirement("SR-SENS-4")
def test_unfinished_inference_is_invalid() -> None:
    assert timing_flags(PERIOD + 5, PERIOD, False, 7, 7) == HealthFlag.INFERENCE_SLOW | HealthFlag.INVALID


def test_result_of_another_frame_is_invalid() -> None:
    # The previous frame's result handed back for this frame: the stale-data hazard.
    assert timing_flags(10_000_000, PERIOD, True, 6, 7) == HealthFlag.INVALID
