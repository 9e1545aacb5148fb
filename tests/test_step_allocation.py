"""The warmed step allocates nothing: no Python objects (tracemalloc), no numba runtime memory, no compiling.

This is not a timing test; speed is measured in bench/bench_step.py.
"""

import tracemalloc

import numpy as np
import pytest
from numba import njit
from numba.core.runtime import _nrt_python, rtsys

from cobotguard.hil.sim import example_config
from cobotguard.safety.params import build_params
from cobotguard.safety.records import COMMAND_DTYPE
from cobotguard.safety.step import new_state, step, warm_up
from cobotguard.safety.warmup import warm_up_inputs


def prepared_cycles(params):
    """Materialised warm-up inputs (copies), so the measured loop only calls the step."""
    return [(d.copy(), r.copy(), reset, overrun, now) for d, r, reset, overrun, now in warm_up_inputs(params)]


@njit(cache=False)
def _allocates() -> float:
    return np.empty(3).sum()


@njit(cache=False)
def _same_arguments(params, state, detections, robot, reset_input, overrun, now_ns, command_out) -> None:
    """Does nothing: calling it costs what unboxing the step's arguments costs (one MemInfo per array)."""


def test_numba_runtime_allocations_are_counted():
    """Positive control for the check below: a kernel that allocates is seen."""
    _nrt_python.memsys_enable_stats()
    _allocates()
    before = rtsys.get_allocation_stats().alloc
    _allocates()
    assert rtsys.get_allocation_stats().alloc > before


@pytest.mark.parametrize("hold_ms", [0.0, 100.0], ids=["no hold", "held persons"])
def test_warmed_step_allocates_nothing(hold_ms):
    params = build_params(example_config(n_sensors=4, person_hold_ms=hold_ms))
    warm_up(params)
    cycles = prepared_cycles(params)
    state = new_state(params)
    command = np.zeros(1, dtype=COMMAND_DTYPE)
    signatures = len(step.signatures)
    step(params, state, *cycles[0][:4], cycles[0][4], command)  # first call of this exact set of types

    _same_arguments(params, state, *cycles[0][:4], cycles[0][4], command)
    _nrt_python.memsys_enable_stats()

    def nrt_allocations(kernel) -> int:
        before = rtsys.get_allocation_stats().alloc
        for detections, robot, reset, overrun, now in cycles:
            kernel(params, state, detections, robot, reset, overrun, now, command)
        return rtsys.get_allocation_stats().alloc - before

    baseline = nrt_allocations(_same_arguments)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(20):
            for detections, robot, reset, overrun, now in cycles:
                step(params, state, detections, robot, reset, overrun, now, command)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    in_step = nrt_allocations(step)

    grown = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0 and "tracemalloc" not in str(s)]
    ours = [s for s in grown if "safety" in str(s.traceback)]
    assert ours == [], ours
    assert sum(s.size_diff for s in grown) < 1024, grown[:5]
    assert in_step == baseline, "the compiled step allocated numba runtime memory beyond argument unboxing"
    assert len(step.signatures) == signatures, "the step compiled a new specialisation after warm-up"
