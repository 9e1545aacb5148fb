"""Benchmark: how stable is the HIL rig's verdict? `cobotguard hil --virtual` run N times in a row.

Each run starts a fresh controller and plays every scenario and fault (or the ones given). The table lists
per run: runs passed, failed for safety, failed for availability, runs repeated by --attempts, and the
failures. With --load, `stress-ng` runs beside the whole series (default: one CPU at 50 %, as the rig's
acceptance target asks). The summary gives the number of runs whose every scenario and fault passed, the
failures by class and by name, and the wall time per run (median, max).

    python bench/bench_hil_repeat.py --runs 10
    python bench/bench_hil_repeat.py --runs 10 --load
    python bench/bench_hil_repeat.py --runs 3 --out runs.json -- --scenarios walk_in_front_1.6 --faults

Arguments after `--` go to `cobotguard hil` unchanged.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_LOAD = "--cpu 1 --cpu-load 50"


def one_run(extra: list[str], timeout_s: float) -> dict[str, Any]:
    """One `cobotguard hil --virtual --json` session: its JSON document, exit code and wall time."""
    cmd = [sys.executable, "-m", "cobotguard.hil.cli.main", "hil", "--virtual", "--json", *extra]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    wall = time.monotonic() - t0
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        doc = {"scenarios": [], "notes": [f"no JSON (exit {done.returncode}): {done.stderr[-2000:]}"]}
    return {"code": done.returncode, "wall_s": wall, "doc": doc}


def summarise(run: dict[str, Any]) -> tuple[collections.Counter[str], list[str], int]:
    """Verdict counts, failure lines and repeated runs of one session."""
    counts: collections.Counter[str] = collections.Counter()
    lines = []
    repeated = 0
    for entry in run["doc"].get("scenarios", []):
        verdict = entry.get("failure_class") or "passed"
        counts[verdict] += 1
        repeated += int(entry.get("attempts", 1)) - 1
        for failure in entry.get("failures", []):
            lines.append(f"{entry['name']}: {failure['class']}: {failure['message']}")
        if entry.get("machine_cause"):
            lines.append(f"{entry['name']}: machine cause: {entry['machine_cause']}")
    return counts, lines, repeated


def main() -> int:
    """Run the series and print the tallies."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--load",
        nargs="?",
        const=DEFAULT_LOAD,
        default=None,
        metavar="ARGS",
        help=f"run stress-ng with these arguments beside the series (default when given: {DEFAULT_LOAD!r})",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per session")
    parser.add_argument("--out", type=Path, help="write every session's JSON here")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    stress = None
    if args.load is not None:
        exe = shutil.which("stress-ng")
        if exe is None:
            print("stress-ng not found (apt-get install stress-ng)", file=sys.stderr)
            return 2
        quiet = subprocess.DEVNULL
        stress = subprocess.Popen([exe, *args.load.split()], stdout=quiet, stderr=quiet)
        print(f"load: stress-ng {args.load}")
    runs = []
    try:
        head = ("run", "exit", "passed", "safety", "avail", "repeat", "wall s")
        print(" ".join(f"{h:>{w}s}" for h, w in zip(head, (4, 4, 6, 6, 6, 6, 7), strict=True)))
        for i in range(1, args.runs + 1):
            run = one_run(extra, args.timeout)
            counts, lines, repeated = summarise(run)
            run.update(counts=dict(counts), failures=lines, repeated=repeated)
            runs.append(run)
            print(
                f"{i:4d} {run['code']:4d} {counts['passed']:6d} {counts['safety']:6d} "
                f"{counts['availability']:6d} {repeated:6d} {run['wall_s']:7.1f}",
                flush=True,
            )
            for line in lines:
                print(f"       {line}", flush=True)
    finally:
        if stress is not None:
            stress.terminate()
            stress.wait()
    clean = sum(1 for r in runs if r["code"] == 0)
    by_class: collections.Counter[str] = collections.Counter()
    by_name: collections.Counter[str] = collections.Counter()
    for r in runs:
        for entry in r["doc"].get("scenarios", []):
            if entry.get("failure_class"):
                by_class[entry["failure_class"]] += 1
                by_name[entry["name"]] += 1
    walls = [r["wall_s"] for r in runs]
    per_session = len(runs[0]["doc"].get("scenarios", [])) if runs else 0
    print(f"\nsessions with every scenario and fault passed: {clean}/{len(runs)} ({per_session} runs each)")
    print(f"failed runs by class: {dict(by_class) or 'none'}; by name: {dict(by_name) or 'none'}")
    print(f"runs repeated by --attempts: {sum(r['repeated'] for r in runs)}")
    if walls:
        print(f"wall time per session: median {statistics.median(walls):.1f} s, max {max(walls):.1f} s")
    if args.out is not None:
        args.out.write_text(json.dumps(runs, indent=1))
    return 0 if clean == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
