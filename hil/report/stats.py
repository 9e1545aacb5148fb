"""Latency statistics for the timing report: pure functions on int64 nanosecond arrays.

Three rules shape this module:

* Quantiles never interpolate below what was observed: `numpy.quantile(method="higher")` returns a
  sample at or above the requested rank, so a reported p99 is a latency that really happened.
* Latencies are measured against the time a thing was *scheduled* to happen, not against when the late
  loop finally woke up. A loop that stalls for 50 ms and then measures "wake -> done" sees one slow cycle
  and 49 that never existed; that is coordinated omission (Gil Tene). `latencies_against_schedule` counts
  the stalled cycle at its full lateness and gives every skipped slot the latency it really suffered.
* The worst-case estimate is extreme value statistics on block maxima (as in measurement-based
  probabilistic WCET analysis): it is *evidence*, never proof. It assumes the blocks are independent and
  identically distributed, which a VM with other tenants does not promise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

QUANTILES: tuple[tuple[str, float], ...] = (
    ("median", 0.5),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
)

EVIDENCE_NOTE = (
    "probabilistic estimate from an extreme value fit on block maxima: evidence, not proof; it assumes "
    "independent, identically distributed blocks and says nothing about behaviour never sampled"
)


@dataclass(frozen=True)
class LatencySummary:
    """Order statistics of one latency sample, in nanoseconds."""

    count: int
    min_ns: int
    quantiles_ns: dict[str, int]  # name -> value; see QUANTILES
    max_ns: int
    mean_ns: float

    def resolved(self, name: str) -> bool:
        """Whether the sample holds at least 1 / (1 - q) values (else the quantile is about the maximum)."""
        q = dict(QUANTILES)[name]
        return self.count >= round(1.0 / (1.0 - q))


def summarize(latencies_ns: np.ndarray) -> LatencySummary:
    """Count, min, median, p99, p99.9, p99.99, max and mean (quantiles are observed samples)."""
    values = np.asarray(latencies_ns, dtype=np.int64)
    if values.size == 0:
        return LatencySummary(0, 0, {name: 0 for name, _ in QUANTILES}, 0, 0.0)
    qs = np.quantile(values, [q for _, q in QUANTILES], method="higher")
    return LatencySummary(
        count=int(values.size),
        min_ns=int(values.min()),
        quantiles_ns={name: int(v) for (name, _), v in zip(QUANTILES, qs, strict=True)},
        max_ns=int(values.max()),
        mean_ns=float(values.mean()),
    )


def count_misses(latencies_ns: np.ndarray, deadline_ns: int) -> int:
    """How many latencies exceed the deadline (a latency equal to the deadline meets it)."""
    return int(np.count_nonzero(np.asarray(latencies_ns, dtype=np.int64) > deadline_ns))


@dataclass(frozen=True)
class ScheduledLatencies:
    """Latencies measured from scheduled times, including the slots a stalled loop skipped."""

    latencies_ns: np.ndarray  # int64, one per recorded cycle then one per omitted slot
    recorded: int  # how many came from recorded cycles
    omitted: int  # how many scheduled slots had no record and were filled in


def latencies_against_schedule(
    t_scheduled_ns: np.ndarray,
    t_done_ns: np.ndarray,
    period_ns: int,
    t_start_ns: np.ndarray | None = None,
) -> ScheduledLatencies:
    """Done minus scheduled per cycle, plus a latency for every scheduled slot the loop skipped.

    A slot that was due but has no record (a gap of more than 1.5 periods between consecutive scheduled
    times) is served by the late cycle before the gap if that cycle started at or after the slot (it read
    the slot's inputs), otherwise by the next recorded cycle. Without start times every skipped slot is
    charged to the next recorded cycle, which can only overstate.
    """
    scheduled = np.asarray(t_scheduled_ns, dtype=np.int64)
    done = np.asarray(t_done_ns, dtype=np.int64)
    start = None if t_start_ns is None else np.asarray(t_start_ns, dtype=np.int64)
    if scheduled.shape != done.shape or (start is not None and start.shape != done.shape):
        raise ValueError("t_scheduled_ns, t_done_ns and t_start_ns must have the same length")
    if period_ns <= 0:
        raise ValueError("period_ns must be positive")
    recorded = done - scheduled
    if scheduled.size < 2:
        return ScheduledLatencies(recorded, int(recorded.size), 0)
    gaps = np.diff(scheduled)
    missing_per_gap = np.maximum(np.rint(gaps / period_ns).astype(np.int64) - 1, 0)
    total_missing = int(missing_per_gap.sum())
    if total_missing == 0:
        return ScheduledLatencies(recorded, int(recorded.size), 0)
    filled = np.empty(total_missing, dtype=np.int64)
    out = 0
    for gap_index in np.flatnonzero(missing_per_gap):
        k = np.arange(1, missing_per_gap[gap_index] + 1, dtype=np.int64)
        slots = scheduled[gap_index] + k * period_ns
        served = np.full(slots.size, done[gap_index + 1], dtype=np.int64)
        if start is not None:
            served[slots <= start[gap_index]] = done[gap_index]
        filled[out : out + slots.size] = served - slots
        out += slots.size
    return ScheduledLatencies(np.concatenate([recorded, filled]), int(recorded.size), total_missing)


@dataclass(frozen=True)
class Histogram:
    """Counts of latencies in log-spaced bins (edges in nanoseconds, len(edges) = len(counts) + 1)."""

    edges_ns: np.ndarray
    counts: np.ndarray


def histogram(latencies_ns: np.ndarray, bins_per_decade: int = 10) -> Histogram:
    """Log-spaced histogram from the minimum to the maximum (cyclictest's, on a log axis).

    Latencies below 1 ns (only possible with clocks that disagree) are counted in the first bin.
    """
    values = np.maximum(np.asarray(latencies_ns, dtype=np.int64), 1)
    if values.size == 0:
        return Histogram(np.array([1, 2], dtype=np.int64), np.zeros(1, dtype=np.int64))
    low, high = int(values.min()), int(values.max())
    n_bins = max(1, int(np.ceil((np.log10(high) - np.log10(low)) * bins_per_decade)))
    edges = np.unique(np.ceil(np.logspace(np.log10(low), np.log10(high), n_bins + 1)).astype(np.int64))
    edges[0] = low
    if edges.size < 2:
        edges = np.array([low, high + 1], dtype=np.int64)
    elif edges[-1] <= high:
        edges[-1] = high + 1  # the last bin holds the maximum
    counts, _ = np.histogram(values, bins=edges)
    return Histogram(edges, counts.astype(np.int64))


def block_maxima(latencies_ns: np.ndarray, block_size: int) -> np.ndarray:
    """Maximum of each consecutive block of `block_size` samples (a trailing partial block is dropped)."""
    values = np.asarray(latencies_ns, dtype=np.int64)
    n_blocks = values.size // block_size
    return values[: n_blocks * block_size].reshape(n_blocks, block_size).max(axis=1)


def choose_block_size(n: int, min_blocks: int = 20, preferred: int = 50) -> int:
    """Blocks of `preferred` samples when that gives at least `min_blocks` blocks, else smaller."""
    if n >= preferred * min_blocks:
        return preferred
    return max(1, n // min_blocks)


@dataclass(frozen=True)
class GoodnessOfFit:
    """One goodness-of-fit test of the block maxima against a fitted distribution."""

    test: str
    distribution: str
    statistic: float
    pvalue: float
    note: str


@dataclass(frozen=True)
class WorstCaseEstimate:
    """An extreme value model of the latency tail, fitted on block maxima."""

    model: str  # "gumbel" or "gev": the one used for return levels (the heavier tail)
    block_size: int
    n_blocks: int
    gev_shape_xi: float  # > 0: heavy (Frechet) tail; 0: Gumbel; < 0: bounded tail
    gev_loc_ns: float
    gev_scale_ns: float
    gumbel_loc_ns: float
    gumbel_scale_ns: float
    tests: list[GoodnessOfFit]
    return_levels_ns: dict[float, float]  # per-sample exceedance probability -> latency
    deadline_ns: int | None
    deadline_exceedance_per_sample: float | None
    curve_ns: np.ndarray = field(repr=False)  # latency grid of the exceedance curve
    curve_probability: np.ndarray = field(repr=False)  # per-sample exceedance probability on the grid
    note: str = EVIDENCE_NOTE

    @property
    def poor_fit(self) -> bool:
        """True when a goodness-of-fit test rejects the model used at the 5 % level."""
        return any(t.pvalue < REJECT_AT for t in self.tests if t.distribution == self.model)

    @property
    def usable(self) -> bool:
        """False when the model is rejected or its tail has no finite mean (xi >= 1): no levels to quote."""
        return not self.poor_fit and not (self.model == "gev" and self.gev_shape_xi >= 1.0)


MIN_BLOCKS = 10
REJECT_AT = 0.05  # goodness-of-fit tests reject a model below this p-value
# Block maxima that take only a few values (a quantised clock, a synthetic trace) have no tail to fit;
# a continuous distribution fitted to them says more about the optimiser than about the latencies.
MIN_DISTINCT_MAXIMA = 5
RETURN_PROBABILITIES = (1e-3, 1e-6, 1e-9)


def _per_sample_exceedance(block_sf: np.ndarray, block_size: int) -> np.ndarray:
    """P(one sample > x) from P(block max > x), assuming independent samples inside a block."""
    with np.errstate(divide="ignore"):
        return -np.expm1(np.log1p(-np.clip(block_sf, 0.0, 1.0)) / block_size)


def fit_worst_case(
    latencies_ns: np.ndarray,
    deadline_ns: int | None = None,
    block_size: int | None = None,
    probabilities: tuple[float, ...] = RETURN_PROBABILITIES,
    mc_samples: int = 199,
    seed: int = 0,
) -> WorstCaseEstimate | None:
    """Fit Gumbel and GEV to block maxima; None with too few blocks or too few distinct maxima.

    Return levels use the GEV when its shape says the tail is heavier than Gumbel (xi > 0) and the data do
    not reject it, and the Gumbel otherwise: a fitted bounded tail (xi < 0) is optimistic beyond the data,
    so it is never used.
    Goodness of fit: Anderson-Darling for the Gumbel with a parametric-bootstrap p-value (correct when the
    parameters are estimated from the same data), and Kolmogorov-Smirnov for the GEV (its p-value is
    optimistic because the parameters come from the same data).
    """
    from scipy import stats

    values = np.asarray(latencies_ns, dtype=np.int64)
    size = block_size or choose_block_size(values.size)
    maxima = block_maxima(values, size) if size >= 1 else np.empty(0, np.int64)
    if maxima.size < MIN_BLOCKS or np.unique(maxima).size < MIN_DISTINCT_MAXIMA:
        return None
    # fit in microseconds: the optimisers are better conditioned near 1 than near 1e6
    x = maxima.astype(np.float64) / 1_000.0
    gumbel_loc, gumbel_scale = stats.gumbel_r.fit(x)
    # start the GEV optimiser at the Gumbel fit (xi = 0): from scipy's default start it can wander off
    c, gev_loc, gev_scale = stats.genextreme.fit(x, 0.0, loc=gumbel_loc, scale=gumbel_scale)
    xi = -float(c)  # scipy's shape c is minus the usual xi
    gumbel = stats.gumbel_r(gumbel_loc, gumbel_scale)
    gev = stats.genextreme(c, gev_loc, gev_scale)

    ad = stats.goodness_of_fit(
        stats.gumbel_r, x, statistic="ad", n_mc_samples=mc_samples, rng=np.random.default_rng(seed)
    )
    ks = stats.kstest(x, gev.cdf)
    # the heavier tail of the models the data do not reject; if both are rejected, the heavier one
    # (and the estimate is then flagged as a poor fit and not quoted)
    gev_heavier = xi > 0
    gev_ok, gumbel_ok = ks.pvalue >= REJECT_AT, ad.pvalue >= REJECT_AT
    if gev_heavier and (gev_ok or not gumbel_ok):
        chosen, model = gev, "gev"
    else:
        chosen, model = gumbel, "gumbel"
    tests = [
        GoodnessOfFit(
            "anderson-darling",
            "gumbel",
            float(ad.statistic),
            float(ad.pvalue),
            f"parametric bootstrap, {mc_samples} samples",
        ),
        GoodnessOfFit(
            "kolmogorov-smirnov",
            "gev",
            float(ks.statistic),
            float(ks.pvalue),
            "parameters estimated from the same data: p-value optimistic",
        ),
    ]

    return_levels: dict[float, float] = {}
    for p in probabilities:
        block_p = -np.expm1(size * np.log1p(-p))  # P(block max > level) for per-sample p
        return_levels[float(p)] = float(chosen.isf(block_p)) * 1_000.0

    exceed: float | None = None
    if deadline_ns is not None:
        exceed = float(_per_sample_exceedance(np.array([chosen.sf(deadline_ns / 1_000.0)]), size)[0])

    top_us = max(return_levels.values(), default=float(x.max()) * 1_000.0) / 1_000.0
    if deadline_ns is not None:
        top_us = max(top_us, deadline_ns / 1_000.0)
    grid_us = np.linspace(float(np.quantile(x, 0.1)), max(top_us, float(x.max())) * 1.05, 200)
    curve_p = _per_sample_exceedance(chosen.sf(grid_us), size)
    return WorstCaseEstimate(
        model=model,
        block_size=size,
        n_blocks=int(maxima.size),
        gev_shape_xi=xi,
        gev_loc_ns=float(gev_loc) * 1_000.0,
        gev_scale_ns=float(gev_scale) * 1_000.0,
        gumbel_loc_ns=float(gumbel_loc) * 1_000.0,
        gumbel_scale_ns=float(gumbel_scale) * 1_000.0,
        tests=tests,
        return_levels_ns=return_levels,
        deadline_ns=deadline_ns,
        deadline_exceedance_per_sample=exceed,
        curve_ns=grid_us * 1_000.0,
        curve_probability=curve_p,
    )
