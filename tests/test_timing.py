"""safety.timing: the cell's timing arithmetic, by hand, and its rounding (always up)."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.safety import timing
from cobotguard.safety.link import COMMAND_FRAME_BYTES

MS = 1_000_000


def sensor(**changes: float) -> SimpleNamespace:
    """A 30 fps sensor: exposure/readout 20 ms, inference 5 ms, transport 2 ms, one missed frame."""
    fields = {
        "frame_rate_hz": 30.0,
        "exposure_readout_ms": 20.0,
        "inference_worst_ms": 5.0,
        "transport_latency_ms": 2.0,
        "tolerated_missed_frames": 1,
    }
    return SimpleNamespace(**(fields | changes))


def link(**changes: float) -> SimpleNamespace:
    """A 1 Mbaud link with 32-byte commands and a robot polling every 10 ms."""
    fields = {"baud": 1_000_000, "command_frame_bytes": 32, "receiver_cycle_ms": 10.0}
    return SimpleNamespace(**(fields | changes))


@pytest.mark.requirement("SR-BUD-5")
def test_milliseconds_round_up_to_whole_nanoseconds() -> None:
    assert timing.ns(2.41) == 2_410_000
    assert timing.ns(0.0000001) == 1  # 0.1 ns is not 0 ns
    assert timing.ns(33.3333333333) == 33_333_334


@pytest.mark.requirement("SR-BUD-5")
def test_frame_period_rounds_up() -> None:
    assert timing.frame_period_ns(30.0) == 33_333_334  # 33_333_333.3 ns: up, never to nearest
    assert timing.frame_period_ns(15.0) == 66_666_667
    assert timing.frame_period_ns(20.0) == 50_000_000  # exact stays exact
    with pytest.raises(ValueError, match="frame_rate_hz"):
        timing.frame_period_ns(0.0)


@given(st.floats(0.1, 1000.0))
def test_a_frame_period_is_never_shorter_than_the_camera_s(frame_rate_hz: float) -> None:
    period, rate = timing.frame_period_ns(frame_rate_hz), Fraction(frame_rate_hz)  # exact arithmetic
    assert period * rate >= 1_000_000_000 > (period - 1) * rate


def test_sensor_latency_says_what_it_includes() -> None:
    s = sensor()
    assert timing.frames_wait_ns(s) == 2 * 33_333_334  # the frame and one tolerated missed frame
    assert timing.inference_ns(s) == 5 * MS
    assert timing.sent_latency_ns(s) == 25 * MS  # exposure/readout + inference: no transport
    assert timing.sensor_latency_ns(s) == 27 * MS  # + transport: exposure start -> received
    assert timing.sensor_max_age_ns(s) == 2 * 33_333_334 + 27 * MS
    assert timing.sensor_link_watchdog_ns(s) == 2 * 33_333_334 + 2 * MS
    assert timing.sensor_link_max_delay_ns(s) == 2 * MS
    assert timing.sensor_link_max_delay_ns(sensor(transport_latency_ms=0.0)) == 1  # never 0: all late


def test_an_emulated_inference_is_a_fraction_of_the_worst_case_rounded_up() -> None:
    s = sensor(inference_worst_ms=0.000003)  # 3 ns
    assert timing.inference_ns(s, 0.5) == 2
    assert timing.inference_ns(s, 0.0) == 0
    assert timing.sent_latency_ns(sensor(), 0.5) == 20 * MS + 2_500_000
    with pytest.raises(ValueError, match="inference_fraction"):
        timing.inference_ns(s, 1.5)


def test_serial_line_time_by_hand() -> None:
    assert timing.line_time_ns(COMMAND_FRAME_BYTES, 115_200) == 2_604_167  # 30 bytes x 10 bits, rounded up
    assert timing.line_time_ns(COMMAND_FRAME_BYTES, 1_000_000) == 300_000
    assert timing.line_time_ns(16, 115_200) == 1_388_889  # the 1.39 ms of a 16-byte frame
    assert timing.line_time_ns(1, 9600, bits_per_byte=11) == 1_145_834  # 8E1 or 8N2
    with pytest.raises(ValueError, match="baud"):
        timing.line_time_ns(1, 0)


@given(st.integers(1, 300), st.integers(1, 10_000_000))
def test_min_baud_is_the_lowest_rate_that_fits(n_bytes: int, within_ns: int) -> None:
    baud = timing.min_baud(n_bytes, within_ns)
    assert timing.line_time_ns(n_bytes, baud) <= within_ns
    assert baud == 1 or timing.line_time_ns(n_bytes, baud - 1) > within_ns


def test_command_delivery_and_the_normal_gap_between_commands() -> None:
    assert timing.command_frame_ns(link()) == 320_000
    assert timing.command_delivery_ns(link()) == 10_320_000
    assert timing.command_gap_ns(2 * MS, 38 * MS, link()) == 50_320_000  # cycle + worst step + delivery


@pytest.mark.parametrize(
    ("period", "worst", "wake_on_data", "wait"),
    [
        (5 * MS, 2 * MS, False, 5 * MS),  # the next release
        (5 * MS, 7 * MS, False, 7 * MS),  # a late cycle skips the releases it overlapped
        (5 * MS, 2 * MS, True, 2 * MS),  # a step in progress, no tick to wait for
    ],
)
def test_the_controller_stage(period: int, worst: int, wake_on_data: bool, wait: int) -> None:
    assert timing.controller_wait_ns(period, worst, wake_on_data) == wait
    assert timing.controller_stage_ns(period, worst, wake_on_data) == wait + worst
