"""A sensor's clock offset from round trips, with a bound on its error: a sans-IO state machine, compiled.

For a sensor whose clock is not the controller's (`[sensors.NAME] clock = "own"`), the controller sends
a SYNC_REQUEST every sync period (its send time t1 and sequence number in the header); the sensor answers
with a SYNC_REPLY echoing both, with its receive time s2 (payload) and its reply time s3 (header). The
controller receives the reply at t4. Cristian's algorithm: the sensor's receive happened after t1 and its
reply before t4, so the offset (controller clock minus sensor clock) lies in [t1 - s2, t4 - s3]. The
estimate is the middle of that interval and its error bound half its width (half the round trip less
the sensor's turnaround), plus the declared maximum drift times the round trip, then growing at the
declared drift rate with the estimate's age. Like NTP's minimum-delay filter, the estimate with the
smaller bound at the time a reply arrives is kept.

A sensor timestamp t becomes controller time `t + offset - bound`: never later than the true time, so
an age measured from it (now - exposure) is never underestimated (docs/protocol.md, section 14).

Faults (each a Reason, latched by the caller like a link error until the operator's reset):
  SENSOR_CLOCK_SYNC_LOST  a request unanswered for longer than the sync timeout
  SENSOR_CLOCK_BOUND      twice the error bound (the most a converted age can be overstated) exceeds the
                          sensor's limit, so that a frame within its budget is never judged stale
  SENSOR_CLOCK_STEP       a sample outside the previous sample's bound (plus its own): a clock step
  SENSOR_CLOCK_DRIFT      consistent with the previous sample, but not with the kept estimate or the first
                          one since the reset, grown at the declared drift: the clocks drift apart faster
                          than declared

One link is one CLOCK_DTYPE record; every function takes (clocks, k, ...) and works in place, with no
allocation and no Python object, so the compiled loop runs it. Plain Python may call them as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from cobotguard.safety.reasons import Reason

NS_PER_S = 1_000_000_000
PPB_PER_PPM = 1_000

CLOCK_DTYPE = np.dtype(
    [
        # configuration (set once by `new_clocks`)
        ("own", np.int32),  # 0: the sensor shares the controller's clock; nothing here applies
        ("period_ns", np.int64),  # a request every period
        ("timeout_ns", np.int64),  # a request unanswered this long: SENSOR_CLOCK_SYNC_LOST
        ("limit_ns", np.int64),  # an error bound above this: SENSOR_CLOCK_BOUND
        ("drift_ppb", np.int64),  # declared maximum drift between the two clocks, parts per billion
        ("max_delay_ns", np.int64),  # the link's delay check on converted sender times
        ("max_clock_lead_ns", np.int64),
        # the kept estimate
        ("has_estimate", np.int32),
        ("offset_ns", np.int64),  # controller clock minus sensor clock
        ("bound_ns", np.int64),  # error bound at t_ref_ns
        ("t_ref_ns", np.int64),  # controller time the bound grows from (the reply's arrival)
        # the first estimate since the reset: the baseline of the drift check
        ("anchor_offset_ns", np.int64),
        ("anchor_bound_ns", np.int64),
        ("anchor_t_ref_ns", np.int64),
        # the request in flight
        ("outstanding", np.int32),
        ("request_seq", np.int64),
        ("request_t_ns", np.int64),
        ("next_request_ns", np.int64),
        # the last estimate's numbers and counters, for traces and reports
        ("fault", np.int32),  # Reason of the last fault found; 0: none
        ("last_rtt_ns", np.int64),
        ("last_sample_offset_ns", np.int64),
        ("last_sample_bound_ns", np.int64),
        ("last_sample_t_ns", np.int64),  # the last sample's t4 (the step check's reference)
        ("requests", np.int64),
        ("replies", np.int64),
        ("replies_ignored", np.int64),  # replies to no request in flight (late after a timeout, or stray)
    ]
)

_R_SYNC_LOST = int(Reason.SENSOR_CLOCK_SYNC_LOST)
_R_BOUND = int(Reason.SENSOR_CLOCK_BOUND)
_R_STEP = int(Reason.SENSOR_CLOCK_STEP)
_R_DRIFT = int(Reason.SENSOR_CLOCK_DRIFT)
_R_DELAY = int(Reason.LINK_UNACCEPTABLE_DELAY)


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """How one sensor link synchronises (all times int64 ns); `own=False`: a shared clock, no sync."""

    own: bool = False
    period_ns: int = 0
    timeout_ns: int = 0
    limit_ns: int = 0
    drift_ppb: int = 0
    max_delay_ns: int = 0  # the link's delay limit, applied to converted sender times
    max_clock_lead_ns: int = 0

    def __post_init__(self) -> None:
        if self.own and min(self.period_ns, self.timeout_ns, self.limit_ns, self.max_delay_ns) <= 0:
            raise ValueError("an own clock needs period_ns, timeout_ns, limit_ns and max_delay_ns > 0")
        if self.drift_ppb < 0 or self.max_clock_lead_ns < 0:
            raise ValueError("drift_ppb and max_clock_lead_ns must be >= 0")


def new_clocks(policies: list[ClockPolicy], now_ns: int) -> np.ndarray:
    """One CLOCK_DTYPE record per link, without an estimate; the first request is due at once."""
    clocks = np.zeros(len(policies), dtype=CLOCK_DTYPE)
    for k, policy in enumerate(policies):
        c = clocks[k]
        c["own"] = 1 if policy.own else 0
        c["period_ns"] = policy.period_ns
        c["timeout_ns"] = policy.timeout_ns
        c["limit_ns"] = policy.limit_ns
        c["drift_ppb"] = policy.drift_ppb
        c["max_delay_ns"] = policy.max_delay_ns
        c["max_clock_lead_ns"] = policy.max_clock_lead_ns
        reset(clocks, k, now_ns)
    return clocks


@njit(cache=False, nogil=True)
def drift_ns(drift_ppb, dt_ns):
    """The most two clocks drifting at `drift_ppb` part apart in |dt_ns|, rounded up (no int64 overflow)."""
    dt = dt_ns if dt_ns >= 0 else -dt_ns
    whole = dt // NS_PER_S
    rest = dt - whole * NS_PER_S
    return whole * drift_ppb + (rest * drift_ppb + NS_PER_S - 1) // NS_PER_S


@njit(cache=False, nogil=True)
def bound_at(clocks, k, t_ns):
    """The kept estimate's error bound at controller time t_ns (its bound grown by drift since t_ref)."""
    c = clocks[k]
    return c.bound_ns + drift_ns(c.drift_ppb, t_ns - c.t_ref_ns)


@njit(cache=False, nogil=True)
def reset(clocks, k, now_ns):
    """Forget every estimate and the request in flight (start, operator reset); a request is due now."""
    c = clocks[k]
    c.has_estimate = 0
    c.offset_ns = 0
    c.bound_ns = 0
    c.t_ref_ns = 0
    c.anchor_offset_ns = 0
    c.anchor_bound_ns = 0
    c.anchor_t_ref_ns = 0
    c.outstanding = 0
    c.request_seq = -1
    c.request_t_ns = 0
    c.next_request_ns = now_ns
    c.fault = 0


@njit(cache=False, nogil=True)
def request_due(clocks, k, now_ns):
    """1 when a SYNC_REQUEST is to be sent now: an own clock, nothing in flight, its period over."""
    c = clocks[k]
    return 1 if c.own != 0 and c.outstanding == 0 and now_ns >= c.next_request_ns else 0


@njit(cache=False, nogil=True)
def request_sent(clocks, k, seq, t_sent_ns):
    """Record the SYNC_REQUEST just sent with link sequence `seq` and sender time t_sent_ns."""
    c = clocks[k]
    c.outstanding = 1
    c.request_seq = seq
    c.request_t_ns = t_sent_ns
    c.next_request_ns = t_sent_ns + c.period_ns
    c.requests += 1


@njit(cache=False, nogil=True)
def _abs(x):
    return x if x >= 0 else -x


@njit(cache=False, nogil=True)
def take_reply(clocks, k, echo_seq, echo_t_ns, s2_ns, s3_ns, t4_ns):
    """A SYNC_REPLY (echoed request sequence and time, sensor receive time s2 and reply time s3) received
    at controller time t4_ns. Returns 0, or the fault Reason the sample shows (STEP, then DRIFT).

    A reply that does not answer the request in flight is ignored (counted): only a timely answer to the
    newest request may improve the estimate, and the sync timeout catches the missing one.
    """
    c = clocks[k]
    if c.own == 0 or c.outstanding == 0 or echo_seq != c.request_seq or echo_t_ns != c.request_t_ns:
        c.replies_ignored += 1
        return 0
    c.outstanding = 0
    c.replies += 1
    t1 = c.request_t_ns
    rtt = t4_ns - t1
    c.last_rtt_ns = rtt
    slack = drift_ns(c.drift_ppb, rtt)  # the sensor's turnaround, timed on its clock, may be off by drift
    low = t1 - s2_ns - slack
    high = t4_ns - s3_ns + slack
    if rtt < 0 or s3_ns < s2_ns or low > high:  # no offset fits both messages: the clocks jumped
        c.fault = _R_STEP
        return _R_STEP
    offset = low + (high - low) // 2
    bound = high - offset  # >= offset - low: rounded towards the larger half
    fault = 0
    if c.has_estimate != 0:
        previous = c.last_sample_bound_ns + drift_ns(c.drift_ppb, t4_ns - c.last_sample_t_ns)
        kept = bound_at(clocks, k, t4_ns)
        anchor = c.anchor_bound_ns + drift_ns(c.drift_ppb, t4_ns - c.anchor_t_ref_ns)
        if _abs(offset - c.last_sample_offset_ns) > bound + previous:
            fault = _R_STEP  # one sync period apart, the two samples cannot both hold: a jump
        elif _abs(offset - c.offset_ns) > bound + kept or _abs(offset - c.anchor_offset_ns) > bound + anchor:
            fault = _R_DRIFT  # consistent step by step, not over a longer baseline: drift beyond the limit
    c.last_sample_offset_ns = offset
    c.last_sample_bound_ns = bound
    c.last_sample_t_ns = t4_ns
    if fault != 0:
        c.fault = fault
        return fault
    if c.has_estimate != 0:
        if bound >= kept:
            return 0  # minimum-delay filter: the kept estimate is still the tighter one
    else:
        c.anchor_offset_ns = offset
        c.anchor_bound_ns = bound
        c.anchor_t_ref_ns = t4_ns
    c.has_estimate = 1
    c.offset_ns = offset
    c.bound_ns = bound
    c.t_ref_ns = t4_ns
    return 0


@njit(cache=False, nogil=True)
def age_error_ns(clocks, k, t_ns):
    """The most a timestamp converted at controller time t_ns overstates an age: the offset's error one
    way plus the bound subtracted, 2 x bound, and the drift margin of `to_controller_ns`."""
    c = clocks[k]
    b = bound_at(clocks, k, t_ns)
    return 2 * b + 2 * drift_ns(c.drift_ppb, b)


@njit(cache=False, nogil=True)
def check(clocks, k, now_ns):
    """Every cycle: SENSOR_CLOCK_SYNC_LOST for a request unanswered past the timeout, SENSOR_CLOCK_BOUND
    when ages converted now could be overstated by more than the limit, else 0."""
    c = clocks[k]
    if c.own == 0:
        return 0
    if c.outstanding != 0 and now_ns - c.request_t_ns > c.timeout_ns:
        c.fault = _R_SYNC_LOST
        return _R_SYNC_LOST
    if c.has_estimate != 0 and age_error_ns(clocks, k, now_ns) > c.limit_ns:
        c.fault = _R_BOUND
        return _R_BOUND
    return 0


@njit(cache=False, nogil=True)
def to_controller_ns(clocks, k, t_sensor_ns):
    """A sensor timestamp as the earliest controller time it can be: t + offset - bound (needs an estimate).

    The bound is taken at the estimated time t + offset, which may itself be off by the bound e; the drift
    over that distance is covered by e <= b / (1 - drift) <= b + 2 x drift x b (drift at most 1/2).
    """
    c = clocks[k]
    t = t_sensor_ns + c.offset_ns
    b = bound_at(clocks, k, t)
    return t - b - 2 * drift_ns(c.drift_ppb, b)


@njit(cache=False, nogil=True)
def frame_fault(clocks, k, t_exposure_sensor_ns, t_sent_controller_ns, t_received_ns):
    """A frame's checks after conversion: SENSOR_CLOCK_BOUND when its exposure's age could be overstated
    by more than the limit (so a frame within its budget is never judged stale); then the link's delay
    check on the converted sender time: LINK_UNACCEPTABLE_DELAY when it is too old, SENSOR_CLOCK_STEP when
    it is ahead of the receive time (the sensor's clock jumped forward since the estimate); else 0."""
    c = clocks[k]
    if age_error_ns(clocks, k, t_exposure_sensor_ns + c.offset_ns) > c.limit_ns:
        c.fault = _R_BOUND
        return _R_BOUND
    age = t_received_ns - t_sent_controller_ns
    if age > c.max_delay_ns:
        return _R_DELAY
    if age < -c.max_clock_lead_ns:
        return _R_STEP
    return 0


def warm_up() -> None:
    """Compile every function here (before arming, never in the loop)."""
    policy = ClockPolicy(True, 10**8, 10**8, 10**7, 100_000, 10**7, 10**6)
    clocks = new_clocks([policy], 0)
    request_due(clocks, 0, 0)
    request_sent(clocks, 0, 0, 0)
    take_reply(clocks, 0, 0, 0, 5, 6, 10)
    check(clocks, 0, 20)
    frame_fault(clocks, 0, 7, to_controller_ns(clocks, 0, 7), 20)
    reset(clocks, 0, 0)
