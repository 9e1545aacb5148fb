"""Benchmark campaigns: approaches per second per core, scaling to 2 workers, and the Ray engine.

The cell is the default cell (hil/defaults/cell.toml) unless CONFIG is given. Measured in one process,
after the kernel has compiled (and, for Ray, after each Ray worker has compiled it on a warm-up run):

- per approach, chunk by chunk (wall and CPU time of each chunk / its size), one worker in this process:
  median, p99, p99.9 and max over the chunks;
- the baseline in the same process: hil.sim.CellSim (the Python discrete-event loop the timing
  properties use) on the same approaches as plain walks, per approach; the ratio of medians;
- the engines: local with 1 worker (this process), local with 2 workers (process pool), and Ray on 2
  CPUs (a local Ray), each over the same approaches: approaches/s on the wall clock, the ratio to 1
  worker, and CPU seconds per approach summed over the workers (the chunks' own process time).

Targets (issue 13): >= 2,000 approaches/s per core for the default cell and >= 1.8x on 2 cores. On a
shared machine the wall-clock rates are loaded; CPU time per approach is the steadier number.

    python bench/bench_campaign.py [CONFIG] [--runs N] [--chunk-size C] [--baseline N] [--no-ray]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cobotguard.hil.campaign import engines, runner
from cobotguard.hil.sim import CellSim, Run, Walk
from cobotguard.safety.checksum import canonical_json
from cobotguard.safety.config_load import load_config
from cobotguard.safety.geometry import distance_to_region

DEFAULT_CELL = Path(__file__).resolve().parents[1] / "hil" / "defaults" / "cell.toml"
SEED = 2026


def distribution(per_approach_s: np.ndarray) -> str:
    us = per_approach_s * 1e6
    q = np.percentile(us, [50, 99, 99.9])
    return f"median {q[0]:8.1f} us  p99 {q[1]:8.1f} us  p99.9 {q[2]:8.1f} us  max {us.max():8.1f} us"


def per_chunk(cell: runner.PreparedCell, runs: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(wall, cpu) seconds per approach of each chunk, one worker in this process."""
    scratch = runner.Scratch(cell)
    wall, cpu = [], []
    for k in range(runs // chunk):
        w0, c0 = time.perf_counter(), time.process_time()
        runner.run_chunk(cell, SEED, k, chunk, scratch)
        wall.append((time.perf_counter() - w0) / chunk)
        cpu.append((time.process_time() - c0) / chunk)
    return np.asarray(wall), np.asarray(cpu)


def cellsim_baseline(cell: runner.PreparedCell, count: int) -> np.ndarray:
    """Seconds per approach of hil.sim.CellSim on the same approaches, as plain walks."""
    sim = CellSim(cell.cfg, cell.params)
    p = cell.params[0]
    centre = cell.facts[0]["hazard_centre"]
    out = []
    for a in runner.approaches(cell, SEED, 0, count):
        line = runner.walk_line(cell, a)
        walk = Walk(
            angle_deg=float(a["angle_deg"]),
            speed_mps=float(a["speed_mps"]),
            start_gap_m=float(distance_to_region(p["hazard_vertices"], p["hazard_n"], line[0], line[1])),
            aim_offset_m=(float(a["aim_x_m"] - centre[0]), float(a["aim_y_m"] - centre[1])),
            error_fraction=float(a["error_fraction"]),
        )
        run = Run(
            robot_speed_mps=float(a["robot_speed_mps"]),
            walk=walk,
            sensor_phase_ns=tuple(int(v) for v in a["phase_ns"][: int(p["n_sensors"])]),
            latency_fraction=float(a["latency_fraction"]),
            link_delay_fraction=float(a["link_delay_fraction"]),
            step_fraction=float(a["step_fraction"]),
        )
        t0 = time.perf_counter()
        sim.run(run, until_ns=int(line[4] / float(a["speed_mps"]) * 1e9) + runner.TAIL_NS)
        out.append(time.perf_counter() - t0)
    return np.asarray(out)


def engine_rate(canonical: str, runs: int, chunk: int, **kw) -> tuple[float, float]:
    """(approaches/s on the wall clock, CPU s per approach summed over the chunks) for one engine."""
    chunks = list(range(runs // chunk))
    t0 = time.perf_counter()
    records = list(engines.run_chunks(canonical, SEED + 1, chunk, chunks, **kw))
    wall = time.perf_counter() - t0
    n = sum(r["count"] for r in records)
    return n / wall, sum(r["cpu_s"] for r in records) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, default=DEFAULT_CELL)
    parser.add_argument("--runs", type=int, default=20_000, help="approaches per engine (default 20000)")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--baseline", type=int, default=20, help="approaches through CellSim (default 20)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    args = parser.parse_args()
    cfg = load_config(args.config)
    cell = runner.prepare(cfg)
    canonical = canonical_json(cfg).decode()
    runner.simulate(cell, runner.approaches(cell, 0, 0, 2))  # compile
    print(f"cell: {args.config} ({cell.checksum}); chunks of {args.chunk_size}")

    wall, cpu = per_chunk(cell, args.runs, args.chunk_size)
    base = cellsim_baseline(cell, args.baseline)
    print(f"kernel, per approach (wall):  {distribution(wall)}")
    print(f"kernel, per approach (CPU):   {distribution(cpu)}")
    print(f"CellSim baseline (wall):      {distribution(base)}  ({len(base)} approaches)")
    print(f"ratio of medians CellSim / kernel: {np.median(base) / np.median(wall):.0f}x")

    rows = [("local, 1 worker", engine_rate(canonical, args.runs, args.chunk_size, workers=1))]
    rows.append(("local, 2 workers", engine_rate(canonical, args.runs, args.chunk_size, workers=2)))
    if not args.no_ray:
        try:
            import ray
        except ImportError:
            print("ray: not installed (the cluster extra); skipped")
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                engine_rate(canonical, 8 * 50, 50, engine="ray", workers=2)  # each worker compiles
                rows.append(("ray, 2 CPUs", engine_rate(canonical, args.runs, args.chunk_size, engine="ray")))
            finally:
                ray.shutdown()
    one = rows[0][1][0]
    print(f"{'engine':<18} {'approaches/s':>13} {'x 1 worker':>11} {'CPU us/approach':>16}")
    for name, (rate, cpu_per) in rows:
        print(f"{name:<18} {rate:13.0f} {rate / one:11.2f} {cpu_per * 1e6:16.1f}")
    print(f"CPU-time rate, 1 worker: {1 / np.median(cpu):.0f} approaches/s per core (median chunk)")


if __name__ == "__main__":
    main()
