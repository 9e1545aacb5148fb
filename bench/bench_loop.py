"""Loop wake-up latency at 1 kHz: plain sleep vs sleep-then-spin, with and without SCHED_FIFO, the real
executor (compiled step, trace on), and cyclictest (C) side by side when it is installed.

Wake-up latency = time the loop woke up - the absolute deadline it asked for. Every mode runs in this one
process, one after the other, so the ratios compare like with like; the machine's noise (a shared VM)
dominates the tails, so read distributions, never one number. Not a test: nothing is asserted.

    python bench/bench_loop.py [--cycles 5000] [--period-us 1000] [--spin-us 200] [--no-rt] [--json]

With --no-executor it needs only the standard library (numpy is imported for the executor run only),
so it can be copied to a bare target machine to compare its loop latency with this one.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from safety.clock import sleep_until_plain, sleep_until_spin
from safety.realtime import apply_realtime

QUANTILES = (0.5, 0.99, 0.999)
stats_warnings: list[str] = []


def wake_latencies(sleep_until: Callable[[int], int], cycles: int, period_ns: int) -> list[int]:
    """Run `cycles` releases on an absolute grid and return wake time - release, ns."""
    out = [0] * cycles
    t0 = time.monotonic_ns() + period_ns
    for k in range(cycles):
        release = t0 + k * period_ns
        out[k] = sleep_until(release) - release
    return out


def executor_latencies(
    cycles: int, period_ms: float, realtime: bool
) -> tuple[dict[str, list[int]], dict[str, int]]:
    """The real Controller (compiled step, trace ring and drain thread) on queue ports, from its trace."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from loop_support import make_cell

    from safety.executor import Controller
    from safety.ports import QueueRobotPort, QueueSensorSource
    from safety.trace import read_trace

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.cgtrace"
        controller = Controller(
            make_cell(cycle_period_ms=period_ms),
            QueueSensorSource(),
            QueueRobotPort(),
            trace_path=path,
            realtime=realtime,
        )
        controller.run(duration_ns=int(cycles * period_ms * 1e6))
        controller.close()
        stats_warnings[:] = controller.warnings
        c = read_trace(path).streams["cycles"]
    return {
        "executor wake-up": (c["t_wake_ns"] - c["t_scheduled_ns"]).tolist(),
        "executor release->command written": (c["t_command_written_ns"] - c["t_scheduled_ns"]).tolist(),
        "executor step (in the loop)": (c["t_step_end_ns"] - c["t_step_start_ns"]).tolist(),
    }, controller.stats.as_dict()


def cyclictest_latencies(cycles: int, period_us: int) -> tuple[list[int] | None, str]:
    """cyclictest's 1 us histogram as samples (overflows at its max); None when not installed."""
    exe = shutil.which("cyclictest")
    if exe is None:
        return None, "cyclictest not installed (apt-get install rt-tests); skipped"
    cmd = [exe, "-m", "-p", "80", "-i", str(period_us), "-l", str(cycles), "-q", "-h", "10000"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=cycles * period_us / 1e6 + 30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cyclictest failed to run: {exc}"
    buckets: list[int] = []
    counts: list[int] = []
    max_us = 0
    overflows = 0
    for line in done.stdout.splitlines():
        row = re.match(r"^(\d+)\s+(\d+)\s*$", line)
        if row:
            buckets.append(int(row.group(1)))
            counts.append(int(row.group(2)))
        elif line.startswith("# Max Latencies:"):
            max_us = int(line.split(":")[1].split()[0])
        elif line.startswith("# Histogram Overflows:"):
            overflows = int(line.split(":")[1].split()[0])
    if not counts:
        return None, f"cyclictest gave no histogram (exit {done.returncode}): {done.stderr.strip()[:200]}"
    samples = [bucket * 1000 for bucket, count in zip(buckets, counts, strict=True) for _ in range(count)]
    samples += [max_us * 1000] * overflows
    return samples, " ".join(cmd[1:])


def quantile(ordered: list[int], q: float) -> float:
    """Linear-interpolated quantile of sorted samples (numpy's default method)."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(samples: list[int]) -> dict[str, float]:
    """n, median, p99, p99.9, max in microseconds."""
    ordered = sorted(samples)
    q = [quantile(ordered, x) for x in QUANTILES]
    return {
        "n": len(ordered),
        "median_us": q[0] / 1e3,
        "p99_us": q[1] / 1e3,
        "p99.9_us": q[2] / 1e3,
        "max_us": ordered[-1] / 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every mode and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5000, help="cycles per mode (default 5000 = 5 s)")
    parser.add_argument("--period-us", type=int, default=1000)
    parser.add_argument("--spin-us", type=int, default=200, help="spin window before the deadline")
    parser.add_argument("--no-rt", action="store_true", help="skip the SCHED_FIFO modes")
    parser.add_argument("--no-executor", action="store_true", help="skip the full executor run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    period_ns = args.period_us * 1000
    spin_ns = args.spin_us * 1000
    results: dict[str, dict[str, float]] = {}
    notes: list[str] = []

    def spin(deadline: int) -> int:
        return sleep_until_spin(deadline, spin_ns)

    results["plain sleep"] = summarise(wake_latencies(sleep_until_plain, args.cycles, period_ns))
    results[f"sleep-then-spin ({args.spin_us} us)"] = summarise(wake_latencies(spin, args.cycles, period_ns))
    if not args.no_rt:
        settings = apply_realtime(priority=80, lock_memory=True)
        notes.extend(settings.warnings)
        tag = "SCHED_FIFO" if not settings.warnings else "FIFO refused"
        try:
            results[f"plain sleep, {tag}"] = summarise(
                wake_latencies(sleep_until_plain, args.cycles, period_ns)
            )
            results[f"sleep-then-spin, {tag}"] = summarise(wake_latencies(spin, args.cycles, period_ns))
        finally:
            settings.restore()
    if not args.no_executor:
        latencies, stats = executor_latencies(args.cycles, args.period_us / 1000, not args.no_rt)
        for name, samples in latencies.items():
            results[name] = summarise(samples)
        notes.append(
            "executor: {cycles} cycles, {overruns} overruns, {skipped_releases} releases skipped, "
            "{trace_dropped} trace records dropped; warnings: {w}".format(
                w="; ".join(stats_warnings) or "none", **stats
            )
        )
    c_samples, how = cyclictest_latencies(args.cycles, args.period_us)
    if c_samples is not None:
        results["cyclictest (C, SCHED_FIFO 80, mlockall)"] = summarise(c_samples)
        notes.append(f"cyclictest {how}")
    else:
        notes.append(how)

    baseline = results["plain sleep"]
    if args.json:
        print(json.dumps({"period_us": args.period_us, "results": results, "notes": notes}, indent=1))
        return 0
    print(f"wake-up latency at {1e6 / args.period_us:.0f} Hz, {args.cycles} cycles per mode (us)")
    print(f"{'mode':42s} {'n':>6s} {'median':>9s} {'p99':>9s} {'p99.9':>9s} {'max':>9s} {'p99/plain':>9s}")
    for name, r in results.items():
        ratio = r["p99_us"] / baseline["p99_us"] if baseline["p99_us"] > 0 else float("nan")
        print(
            f"{name:42s} {r['n']:6d} {r['median_us']:9.1f} {r['p99_us']:9.1f} {r['p99.9_us']:9.1f} "
            f"{r['max_us']:9.1f} {ratio:9.3f}"
        )
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
