"""The sensor clock estimator (safety/link/clock_sync.py) on simulated clocks: ages are never
underestimated inside the declared drift, and steps, excess drift, silence and a grown bound stop."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobotguard.safety.link import clock_sync as cs
from cobotguard.safety.reasons import Reason

MS = 1_000_000
S = 1_000_000_000
PERIOD = 100 * MS
TIMEOUT = 50 * MS
LIMIT = 5 * MS
DRIFT_PPM = 100


def policy(**changes: int) -> cs.ClockPolicy:
    values = dict(
        own=True, period_ns=PERIOD, timeout_ns=TIMEOUT, limit_ns=LIMIT, drift_ppb=DRIFT_PPM * cs.PPB_PER_PPM,
        max_delay_ns=10 * MS, max_clock_lead_ns=MS,
    )  # fmt: skip
    values.update(changes)
    return cs.ClockPolicy(**values)  # type: ignore[arg-type]


class SensorClock:
    """A sensor clock: offset_ns + t + t x drift_ppb / 1e9 (floored), optionally stepped at step_at_ns."""

    def __init__(self, offset_ns: int, drift_ppb: int, step_ns: int = 0, step_at_ns: int | None = None):
        self.offset_ns, self.drift_ppb = offset_ns, drift_ppb
        self.step_ns, self.step_at_ns = step_ns, step_at_ns

    def __call__(self, t: int) -> int:
        stepped = self.step_ns if self.step_at_ns is not None and t >= self.step_at_ns else 0
        return self.offset_ns + t + (t * self.drift_ppb) // S + stepped


def exchange(clocks, sensor, t1: int, d_out: int, turnaround: int, d_back: int, seq: int) -> int:
    """One request at controller time t1 and its reply; returns the fault take_reply reports."""
    assert cs.request_due(clocks, 0, t1) == 1
    cs.request_sent(clocks, 0, seq, t1)
    s2 = sensor(t1 + d_out)
    s3 = sensor(t1 + d_out + turnaround)
    return int(cs.take_reply(clocks, 0, seq, t1, s2, s3, t1 + d_out + turnaround + d_back))


delays = st.integers(0, 400_000)  # one way, ns: up to 0.4 ms


@settings(max_examples=200, deadline=None)
@given(
    offset=st.integers(-(10**13), 10**13),  # up to about 2.8 hours either way
    drift=st.integers(-DRIFT_PPM * 1000, DRIFT_PPM * 1000),
    trips=st.lists(st.tuples(delays, st.integers(0, 200_000), delays), min_size=1, max_size=12),
    exposure_back=st.integers(0, 150 * MS),
)
@pytest.mark.requirement("SR-SENS-9")
def test_age_is_never_underestimated_within_the_declared_drift(offset, drift, trips, exposure_back):
    sensor = SensorClock(offset, drift)
    start = 5 * S
    clocks = cs.new_clocks([policy()], start)
    t = start
    for seq, (d_out, turnaround, d_back) in enumerate(trips):
        assert exchange(clocks, sensor, t, d_out, turnaround, d_back, seq) == 0
        t4 = t + d_out + turnaround + d_back
        assert cs.check(clocks, 0, t4) == 0
        for exposure in (t4 - exposure_back, t4, t - exposure_back // 3):
            converted = int(cs.to_controller_ns(clocks, 0, sensor(exposure)))
            assert converted <= exposure  # now - converted >= the true age
            bound = int(cs.bound_at(clocks, 0, exposure))
            slack = 3 * cs.drift_ns(DRIFT_PPM * 1000, bound) + 4  # rounding, and drift over the bound itself
            assert exposure - converted <= 2 * bound + slack  # and not loose
        t += PERIOD


def test_the_bound_is_half_the_round_trip_less_the_turnaround_plus_drift():
    clocks = cs.new_clocks([policy()], 0)
    sensor = SensorClock(-42 * S, 0)
    assert exchange(clocks, sensor, S, 300_000, 100_000, 100_000, 0) == 0
    c = clocks[0]
    # interval [t1 - s2, t4 - s3] = [42 s - 0.3 ms, 42 s + 0.1 ms], widened by 100 ppm of the 0.5 ms trip
    assert int(c["offset_ns"]) == 42 * S - 100_000
    assert int(c["bound_ns"]) == 200_000 + 50
    assert int(cs.bound_at(clocks, 0, S + 500_000 + S)) == 200_050 + 100_000  # + 100 ppm of a second


def test_minimum_delay_filter_keeps_the_tighter_estimate():
    clocks = cs.new_clocks([policy()], 0)
    sensor = SensorClock(7 * S, 0)
    assert exchange(clocks, sensor, S, 10_000, 0, 10_000, 0) == 0
    tight = int(clocks[0]["bound_ns"])
    assert exchange(clocks, sensor, S + PERIOD, 1_000_000, 0, 1_000_000, 1) == 0  # a slow round trip
    assert int(clocks[0]["bound_ns"]) == tight and int(clocks[0]["t_ref_ns"]) == S + 20_000
    assert int(clocks[0]["last_sample_bound_ns"]) > tight


@pytest.mark.requirement("SR-SENS-9")
def test_unanswered_request_is_sync_lost_after_the_timeout_not_before():
    clocks = cs.new_clocks([policy()], 0)
    cs.request_sent(clocks, 0, 0, S)
    assert cs.check(clocks, 0, S + TIMEOUT) == 0
    assert cs.check(clocks, 0, S + TIMEOUT + 1) == Reason.SENSOR_CLOCK_SYNC_LOST
    assert cs.request_due(clocks, 0, S + 10 * PERIOD) == 0  # one request in flight at a time


def test_a_late_or_stray_reply_is_ignored():
    clocks = cs.new_clocks([policy()], 0)
    cs.request_sent(clocks, 0, 4, S)
    assert cs.take_reply(clocks, 0, 3, S, 1, 2, S + 10) == 0  # answers an older request
    assert cs.take_reply(clocks, 0, 4, S - 1, 1, 2, S + 10) == 0  # echoes another time
    assert int(clocks[0]["replies_ignored"]) == 2 and int(clocks[0]["outstanding"]) == 1
    assert int(clocks[0]["has_estimate"]) == 0


@pytest.mark.requirement("SR-SENS-9")
def test_bound_past_half_the_limit_without_a_better_estimate_stops():
    # converted ages may be overstated by twice the bound: that is what the limit limits
    clocks = cs.new_clocks([policy()], 0)
    sensor = SensorClock(0, 0)
    assert exchange(clocks, sensor, S, 50_000, 0, 50_000, 0) == 0
    t4, bound = S + 100_000, int(clocks[0]["bound_ns"])
    grown = t4 + (LIMIT // 2 - bound - 1_000) * 10_000  # 100 ppm: 1 ns per 10 us; 1 us below half
    assert cs.check(clocks, 0, grown) == 0 and 2 * cs.bound_at(clocks, 0, grown) < LIMIT
    assert cs.check(clocks, 0, grown + 2_000 * 10_000) == Reason.SENSOR_CLOCK_BOUND


def test_a_round_trip_wider_than_the_limit_is_bound_exceeded():
    clocks = cs.new_clocks([policy()], 0)
    assert exchange(clocks, SensorClock(0, 0), S, 6 * MS, 0, 6 * MS, 0) == 0
    assert cs.check(clocks, 0, S + 12 * MS) == Reason.SENSOR_CLOCK_BOUND


def run_until_fault(sensor, clocks, rounds: int = 100) -> tuple[int, int]:
    """Exchanges every period (0.1 ms each way); the first fault and its round, or (0, rounds)."""
    t = S
    for n in range(rounds):
        fault = exchange(clocks, sensor, t, 100_000, 10_000, 100_000, n) or int(cs.check(clocks, 0, t + MS))
        if fault:
            return fault, n
        t += PERIOD
    return 0, rounds


@pytest.mark.requirement("SR-SENS-9")
def test_clock_steps_of_one_second_either_way_are_steps():
    for step in (S, -S):
        sensor = SensorClock(3600 * S, 0, step_ns=step, step_at_ns=S + 5 * PERIOD + 1)
        # found by the first reply after the step
        assert run_until_fault(sensor, cs.new_clocks([policy()], 0)) == (Reason.SENSOR_CLOCK_STEP, 5)


def test_a_small_step_within_the_bounds_passes():
    sensor = SensorClock(0, 0, step_ns=50_000, step_at_ns=S + 5 * PERIOD + 1)
    assert run_until_fault(sensor, cs.new_clocks([policy()], 0))[0] == 0


@pytest.mark.requirement("SR-SENS-9")
def test_drift_beyond_the_declared_limit_is_drift_within_a_second():
    sensor = SensorClock(-42 * S, 1_000_000)  # 1000 ppm against 100 declared
    fault, n = run_until_fault(sensor, cs.new_clocks([policy()], 0))
    assert fault == Reason.SENSOR_CLOCK_DRIFT and n <= 10


@pytest.mark.requirement("SR-SENS-9")
def test_drift_at_the_declared_limit_never_faults():
    for drift in (DRIFT_PPM * 1000, -DRIFT_PPM * 1000):
        assert run_until_fault(SensorClock(3600 * S, drift), cs.new_clocks([policy()], 0), 300)[0] == 0


def test_reset_forgets_the_estimate_and_requests_at_once():
    clocks = cs.new_clocks([policy()], 0)
    assert exchange(clocks, SensorClock(0, 0), S, 1000, 0, 1000, 0) == 0
    cs.reset(clocks, 0, 2 * S)
    assert int(clocks[0]["has_estimate"]) == 0 and cs.request_due(clocks, 0, 2 * S) == 1


def test_shared_clock_never_requests_nor_faults():
    clocks = cs.new_clocks([cs.ClockPolicy()], 0)
    assert cs.request_due(clocks, 0, 10 * S) == 0 and cs.check(clocks, 0, 10 * S) == 0


def test_drift_ns_rounds_up_without_overflow():
    assert cs.drift_ns(100_000, 1) == 1
    assert cs.drift_ns(100_000, -S) == 100_000
    assert cs.drift_ns(1_000_000, 2**62) == -(-(2**62) * 1_000_000 // S)


def test_frame_checks_on_converted_times():
    clocks = cs.new_clocks([policy()], 0)
    assert exchange(clocks, SensorClock(0, 0), S, 1_000, 0, 1_000, 0) == 0
    assert cs.frame_fault(clocks, 0, S, S, S + 10 * MS) == 0
    assert cs.frame_fault(clocks, 0, S, S, S + 10 * MS + 1) == Reason.LINK_UNACCEPTABLE_DELAY
    assert cs.frame_fault(clocks, 0, S, S + MS, S) == 0
    assert cs.frame_fault(clocks, 0, S, S + MS + 1, S) == Reason.SENSOR_CLOCK_STEP  # from the future
    # an exposure so far from the estimate that its age could be overstated beyond the limit
    far = S - (LIMIT // 2) * 10_000
    assert cs.frame_fault(clocks, 0, far, S, S) == Reason.SENSOR_CLOCK_BOUND


@settings(max_examples=100, deadline=None)
@given(
    offset=st.integers(-(10**13), 10**13),
    drift=st.integers(-DRIFT_PPM * 1000, DRIFT_PPM * 1000),
    trip=st.tuples(delays, st.integers(0, 200_000), delays),
    age=st.integers(0, 300 * MS),
    since=st.integers(0, 2 * S),
)
def test_a_frame_passing_its_checks_is_overstated_by_at_most_the_limit(offset, drift, trip, age, since):
    """Within the declared drift: the converted age lies in [true age, true age + limit] whenever the
    frame passes frame_fault and the cycle's check, so the step's limits (+ the error limit) never stop a
    frame that is within its budget, and never pass one older than budget + limit."""
    sensor = SensorClock(offset, drift)
    clocks = cs.new_clocks([policy()], 0)
    d_out, turnaround, d_back = trip
    assert exchange(clocks, sensor, S, d_out, turnaround, d_back, 0) == 0
    now = S + d_out + turnaround + d_back + since
    exposure = now - age
    converted = int(cs.to_controller_ns(clocks, 0, sensor(exposure)))
    if cs.check(clocks, 0, now) or cs.frame_fault(clocks, 0, sensor(exposure), converted, converted) == (
        Reason.SENSOR_CLOCK_BOUND
    ):
        return  # the estimate is too uncertain: the cell stops with SENSOR_CLOCK_BOUND, by name
    assert age <= now - converted <= age + LIMIT
