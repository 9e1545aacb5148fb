"""Benchmark: `cobotguard demo` with one detector against another, alternating runs (prints, never asserts).

Each run is the whole demo (camera process, sensor thread, compiled controller, robot emulator) on the
default cell; the runs alternate between the models so that load from other processes hits them alike.
Per run: deadline misses (all stages), controller overruns and skipped releases, operator resets, and the
robot's stops and slow-downs that began while the scene's ground truth had nobody in the cell (the demo's
own `cell_clear`): restrictions without cause.

    python bench/bench_demo_models.py [--models int8 yolox_nano] [--runs 3] [--duration 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cobotguard.hil.demo import DemoOptions, run_demo  # noqa: E402
from cobotguard.hil.demo_cell import NS_PER_S, Status, cell_clear, plan_visits  # noqa: E402
from cobotguard.safety.reasons import CommandKind  # noqa: E402


def one_run(model: str, duration_s: float, threads: int) -> dict[str, int]:
    """One demo run with this detector model: its tallies."""
    visits = plan_visits(int(duration_s * NS_PER_S))
    tally = {"stops_without_cause": 0, "slowdowns_without_cause": 0}
    last = [int(CommandKind.FAULT_STOP)]

    def on_status(s: Status) -> None:
        kind = s.robot_kind
        clear = cell_clear(visits, int(s.t_s * NS_PER_S))
        if clear and kind >= CommandKind.PROTECTIVE_STOP > last[0]:
            tally["stops_without_cause"] += 1
        elif clear and kind == CommandKind.SLOW and last[0] == CommandKind.RUN:
            tally["slowdowns_without_cause"] += 1
        last[0] = kind

    with tempfile.TemporaryDirectory() as tmp:
        opts = DemoOptions(
            duration_s=duration_s,
            out_dir=Path(tmp),
            plots=False,
            detector_model=model,
            detector_threads=threads,
        )
        result = run_demo(opts, on_status)
    stats = result.controller_stats
    return {
        "deadline_misses": sum(r.deadline_misses for r in result.results),
        "overruns": int(stats.get("overruns", 0)),
        "skipped_releases": int(stats.get("skipped_releases", 0)),
        "resets": result.resets,
        "visits": len(visits),
        **tally,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["int8", "yolox_nano"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1, help="detector threads (the demo's own: 1)")
    args = parser.parse_args(argv)
    totals: dict[str, dict[str, int]] = {m: {} for m in args.models}
    for run in range(args.runs):
        for model in args.models:
            load = os.getloadavg()[0]
            r = one_run(model, args.duration, args.threads)
            print(f"run {run + 1} {model:<20} load {load:.2f}: {r}", flush=True)
            for key, value in r.items():
                totals[model][key] = totals[model].get(key, 0) + value
    print("\ntotals over", args.runs, "runs each")
    for model, t in totals.items():
        print(f"  {model:<20} {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
