"""The report's numbers: per-stage statistics of each trace, ready for any renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cobotguard.hil.report.stages import Stage, TraceStages
from cobotguard.hil.report.stats import (
    Histogram,
    LatencySummary,
    WorstCaseEstimate,
    count_misses,
    fit_worst_case,
    histogram,
    summarize,
)

# 20 blocks of 50: with smaller blocks the maxima are far from their extreme value limit, and the fit
# says more about the method than about the latencies.
MIN_SAMPLES_FOR_FIT = 1000


@dataclass(frozen=True)
class StageResult:
    """One stage of one trace: the sample's summary, its misses, histogram and tail model."""

    stage: Stage
    summary: LatencySummary
    misses: int | None  # None when the stage has no deadline
    histogram: Histogram
    worst_case: WorstCaseEstimate | None


@dataclass(frozen=True)
class TraceResult:
    """All stages of one trace."""

    trace: TraceStages
    stages: list[StageResult]

    @property
    def deadline_misses(self) -> int:
        """Latencies over their deadline, all stages together.

        A cycle the executor flags as overrun is already a miss of the loop stage (its command was written
        after the next release), so the flags are shown but not added again.
        """
        return sum(s.misses or 0 for s in self.stages)

    @property
    def deadline_held(self) -> bool:
        """True when nothing missed its deadline and the trace was read to a clean end."""
        return self.deadline_misses == 0 and self.trace.complete


def analyze_stage(stage: Stage, fit: bool = True, mc_samples: int = 199) -> StageResult:
    """Summary, deadline misses, histogram and (with enough samples) the extreme value fit of a stage."""
    values = stage.latencies_ns
    estimate = None
    if fit and values.size >= MIN_SAMPLES_FOR_FIT:
        estimate = fit_worst_case(values, deadline_ns=stage.deadline_ns, mc_samples=mc_samples)
    return StageResult(
        stage=stage,
        summary=summarize(values),
        misses=None if stage.deadline_ns is None else count_misses(values, stage.deadline_ns),
        histogram=histogram(values),
        worst_case=estimate,
    )


def analyze(traces: Sequence[TraceStages], fit: bool = True, mc_samples: int = 199) -> list[TraceResult]:
    """Analyse each trace's stages (several traces are compared side by side by the renderers)."""
    return [
        TraceResult(t, [analyze_stage(s, fit=fit, mc_samples=mc_samples) for s in t.stages]) for t in traces
    ]
