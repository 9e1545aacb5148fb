"""Timing-report statistics on latency samples with known answers."""

import numpy as np
import pytest

from cobotguard.hil.report.stats import (
    block_maxima,
    choose_block_size,
    count_misses,
    fit_worst_case,
    histogram,
    latencies_against_schedule,
    summarize,
)

US = 1_000
MS = 1_000_000


def test_summary_quantiles_are_observed_samples() -> None:
    # 10 000 samples: 9 944 at 100 µs, 50 at 5 ms, 5 at 9 ms, 1 at 20 ms.
    # Sorted ranks (0-based): 100 µs at 0..9943, 5 ms at 9944..9993, 9 ms at 9994..9998, 20 ms at 9999.
    # method="higher" takes rank ceil(q * 9999): median 5000 -> 100 µs; p99 9900 -> 100 µs;
    # p99.9 ceil(9989.001) = 9990 -> 5 ms; p99.99 ceil(9998.0001) = 9999 -> 20 ms.
    values = np.concatenate(
        [np.full(9944, 100 * US), np.full(50, 5 * MS), np.full(5, 9 * MS), np.array([20 * MS])]
    ).astype(np.int64)
    np.random.default_rng(1).shuffle(values)
    s = summarize(values)
    assert s.count == 10_000
    assert s.min_ns == 100 * US
    assert s.quantiles_ns == {"median": 100 * US, "p99": 100 * US, "p99.9": 5 * MS, "p99.99": 20 * MS}
    assert s.max_ns == 20 * MS
    assert s.resolved("p99.99")


def test_small_sample_marks_unresolved_quantiles() -> None:
    s = summarize(np.arange(1, 101, dtype=np.int64))  # 1..100
    assert s.quantiles_ns["median"] == 51  # rank ceil(0.5 * 99) = 50 -> value 51
    assert s.quantiles_ns["p99"] == 100
    assert s.resolved("p99")
    assert not s.resolved("p99.9")


def test_empty_sample() -> None:
    s = summarize(np.empty(0, dtype=np.int64))
    assert s.count == 0 and s.max_ns == 0


def test_deadline_met_exactly_is_not_a_miss() -> None:
    assert count_misses(np.array([999, 1000, 1001, 5000], dtype=np.int64), 1000) == 2


def _stalled_loop_that_catches_up() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 1 ms loop whose step takes 0.1 ms; cycle 500 wakes 50 ms late, then cycles run back to back."""
    n = 1000
    scheduled = np.arange(n, dtype=np.int64) * MS
    start = scheduled.copy()
    done = scheduled + 100 * US
    t = 0
    for i in range(n):
        start[i] = max(scheduled[i], t)
        if i == 500:
            start[i] = scheduled[i] + 50 * MS
        done[i] = start[i] + 100 * US
        t = done[i]
    return scheduled, start, done


def test_stall_hidden_by_wake_based_timing_is_shown_against_schedule() -> None:
    scheduled, start, done = _stalled_loop_that_catches_up()
    naive = done - start  # what a loop measuring "wake -> done" would record
    assert naive.max() == 100 * US
    assert count_misses(naive, 1 * MS) == 0

    measured = latencies_against_schedule(scheduled, done, 1 * MS, start)
    assert measured.omitted == 0
    assert measured.latencies_ns.max() == 50 * MS + 100 * US
    # cycle 500 + k is done at 550.1 + 0.1 k ms, due at 500 + k ms: latency 50.1 - 0.9 k ms.
    # It exceeds the 1 ms period while 50.1 - 0.9 k > 1, i.e. k <= 54: 55 misses.
    assert count_misses(measured.latencies_ns, 1 * MS) == 55


def test_slots_skipped_by_a_stalled_loop_are_filled_in() -> None:
    # The loop skips the slots it slept through: cycle 500 is due at 500 ms, starts at 550 ms and is
    # done at 550.1 ms; the next recorded cycle is due at 551 ms. Slots 501..550 have no record.
    scheduled = np.concatenate([np.arange(0, 501), np.arange(551, 1000)]).astype(np.int64) * MS
    start = scheduled.copy()
    start[500] = 550 * MS
    done = start + 100 * US
    naive = done - start
    assert naive.max() == 100 * US  # the stall is invisible

    measured = latencies_against_schedule(scheduled, done, 1 * MS, start)
    assert measured.recorded == 950
    assert measured.omitted == 50
    # slot s in 501..550 was read by cycle 500 (which started at 550 ms): latency 550.1 - s ms
    filled = np.sort(measured.latencies_ns[950:])
    expected = np.sort(550 * MS + 100 * US - np.arange(501, 551, dtype=np.int64) * MS)
    np.testing.assert_array_equal(filled, expected)
    # recorded cycle 500 itself: 50.1 ms late; slots 501..549 also exceed 1 ms (1.1 ... 49.1 ms)
    assert count_misses(measured.latencies_ns, 1 * MS) == 1 + 49
    assert summarize(measured.latencies_ns).max_ns == 50 * MS + 100 * US


def test_skipped_slots_without_start_times_are_charged_to_the_next_cycle() -> None:
    scheduled = np.array([0, 1, 4, 5], dtype=np.int64) * MS
    done = scheduled + 100 * US
    measured = latencies_against_schedule(scheduled, done, 1 * MS)
    assert measured.omitted == 2
    # slots 2 and 3 ms are served at the earliest by the cycle done at 4.1 ms
    assert sorted(measured.latencies_ns[4:].tolist()) == [1_100_000, 2_100_000]


def test_schedule_arrays_must_match() -> None:
    with pytest.raises(ValueError):
        latencies_against_schedule(np.zeros(3, np.int64), np.zeros(2, np.int64), MS)


def test_histogram_counts_every_sample_once() -> None:
    values = np.array([1 * US, 2 * US, 10 * US, 100 * US, 1 * MS, 1 * MS], dtype=np.int64)
    h = histogram(values)
    assert h.counts.sum() == values.size
    assert h.edges_ns[0] <= values.min() and h.edges_ns[-1] >= values.max()
    assert np.all(np.diff(h.edges_ns) > 0)
    # the two 1 ms samples fall in the last bin
    assert h.counts[-1] == 2


def test_block_maxima_and_block_size() -> None:
    values = np.array([1, 5, 2, 7, 3, 3, 9], dtype=np.int64)
    np.testing.assert_array_equal(block_maxima(values, 2), [5, 7, 3])  # the trailing 9 is a partial block
    assert choose_block_size(100_000) == 50
    assert choose_block_size(400) == 20


def test_worst_case_fit_recovers_an_exponential_tail() -> None:
    # Latency = 50 µs + exponential with mean 100 µs. Per-sample exceedance of 50 + x µs is exp(-x / 100),
    # so the per-sample 1e-6 return level is 50 + 100 ln(1e6) = 1431.6 µs, and P(> 1 ms) = exp(-9.5).
    rng = np.random.default_rng(7)
    values = (50 * US + rng.exponential(100 * US, size=50_000)).astype(np.int64)
    est = fit_worst_case(values, deadline_ns=1 * MS, mc_samples=199)
    assert est is not None
    assert est.block_size == 50 and est.n_blocks == 1000
    assert est.return_levels_ns[1e-6] == pytest.approx(1431.6 * US, rel=0.1)
    assert est.deadline_exceedance_per_sample == pytest.approx(np.exp(-9.5), rel=0.5)
    gumbel_ad = next(t for t in est.tests if t.test == "anderson-darling")
    assert gumbel_ad.pvalue > 0.01  # block maxima of an exponential are Gumbel: not rejected
    assert "evidence" in est.note
    assert est.usable
    # the exceedance curve falls as latency grows
    assert np.all(np.diff(est.curve_probability) <= 1e-15)


def test_goodness_of_fit_rejects_block_maxima_that_are_not_extreme_value_distributed() -> None:
    # Two regimes (a quiet machine and one with a periodic 5 ms hiccup every other block): the block
    # maxima are bimodal, which no single Gumbel describes.
    rng = np.random.default_rng(3)
    values = (100 * US + rng.integers(0, 10 * US, size=200 * 50)).astype(np.int64)
    values[::100] = 5 * MS + rng.integers(0, 10 * US, size=values[::100].size)
    est = fit_worst_case(values, block_size=50, mc_samples=199)
    assert est is not None
    gumbel_ad = next(t for t in est.tests if t.test == "anderson-darling")
    assert gumbel_ad.pvalue < 0.05
    assert est.poor_fit and not est.usable  # the report quotes no return levels from it


def test_worst_case_needs_enough_blocks() -> None:
    assert fit_worst_case(np.arange(50, dtype=np.int64), block_size=10) is None


def test_quantised_latencies_are_not_fitted() -> None:
    # a clock with 1 ms resolution: every block maximum is one of two values, there is no tail to fit
    values = (np.random.default_rng(0).integers(0, 2, size=2000) * MS).astype(np.int64)
    assert fit_worst_case(values) is None
    assert fit_worst_case(np.full(2000, 100 * US, dtype=np.int64)) is None
