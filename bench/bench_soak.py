"""Availability soak: the default cell, empty and healthy, played over pty pairs for --minutes; every stop is
a stop without cause.

The cell is hil/defaults/cell.toml (or --config) with wake_on_data = true (when the configuration model has
the key) and worst_step_ms from --worst-step-ms (default: the file's value); nothing else is changed, so
the link and robot-state timeouts are the file's. The compiled controller (safety.compiled_controller) opens
the pty slaves as its serial ports, its loop thread pinned to --cpu with SCHED_FIFO 80 and mlockall; the
robot emulator (hil.robot) and the sensor peers (one empty DETECTIONS frame per frame period, per sensor)
run in one forked child process pinned to --peer-cpu at normal priority (bench_loop.PeerCell). Reset is
pressed at the start and, once the cell has reached RUN, every time it leaves RUN (after noting the time
and the Reason), again every 50 ms until it runs; the robot emulator's latched self-stop is cleared by the
same press, as the operator's reset does in the demo.

Reported, from the controller's trace (every step), counted from the first RUN:
- stops without cause: every step whose command is not RUN right after a step whose command was RUN, by
  Reason (the first non-RUN command's reason), and stops per hour;
- fraction of time not in RUN (a command holds until the next one is written);
- overruns and skipped releases (the controller's counters for the whole run, and from the trace after the
  first RUN: the counters include the loop's start, when mlockall runs in the loop thread);
- command interval (command written -> next command written, every step): p99, p99.9, max, against the
  robot's command watchdog;
- the controller share over ptys (sensor peer write() -> command written by the step that took the frame
  in), as in bench/bench_loop.py;
- the sensor peer's own delay (frame stamped -> write() called) against the sensor link's age limit (the
  sensor's transport_latency_ms: an older frame on arrival is LINK_UNACCEPTABLE_DELAY), the frames no step
  took in, and for each stop the last frame sent before it: how long the peer held it, whether it arrived;
- hypervisor steal time on this VM during the run, other processes' real-time threads, and the robot
  emulator's own self-stops.

--load runs `stress-ng --cpu 1 --cpu-load 50` (not pinned) for the whole run. Not a test: nothing is asserted.

    python bench/bench_soak.py [--minutes 30] [--worst-step-ms 10] [--load] [--trace-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from bench_loop import (
    DEFAULT_CELL,
    Load,
    bench_config,
    controller_share,
    host_notes,
    run_controller,
    steal_note,
    steal_ticks,
    stops_in,
    summarise,
)

from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.timing import sensor_link_max_delay_ns


def analyse(run: Any, cfg: Any) -> dict[str, Any]:
    """The availability figures from one soak's trace and counters."""
    from cobotguard.safety.cycle import TRIGGER_TICK

    c = run.trace.streams["cycles"]
    kinds = c["command"]["kind"]
    written = c["t_command_written_ns"]
    is_run = kinds == int(CommandKind.RUN)
    out: dict[str, Any] = {
        "steps": int(c.size),
        "step_index_gaps": int(np.count_nonzero(np.diff(c["cycle"]) != 1)) if c.size else 0,
        "stats": run.stats,
        "data_steps": run.data_steps,
        "warnings": run.warnings,
        "robot_self_stops": Counter(reason for _, reason in run.peers["robot_faults"]),
        "peer_lost_writes": run.peers["lost_writes"],
        "peer_error": run.peers.get("error"),
    }
    if not is_run.any():
        out["first_run_s"] = None
        return out
    first = int(np.flatnonzero(is_run)[0])
    after = c[first:]
    span_ns = int(written[-1] - written[first])
    stops = [(first + i, reason) for i, reason in stops_in(after)]
    out["first_run_s"] = (int(written[first]) - run.t_run_ns) / 1e9
    out["observed_s"] = span_ns / 1e9
    out["stops"] = [((int(written[i]) - run.t_run_ns) / 1e9, Reason(r).name) for i, r in stops]
    out["stops_by_reason"] = dict(Counter(Reason(r).name for _, r in stops).most_common())
    out["stops_per_hour"] = len(stops) / (span_ns / 3.6e12) if span_ns > 0 else float("nan")
    held = np.diff(written[first:])  # each command holds until the next one is written
    not_run_ns = int(held[~is_run[first:-1]].sum()) if held.size else 0
    out["fraction_not_in_run"] = not_run_ns / span_ns if span_ns > 0 else float("nan")
    out["overrun_inputs_after_first_run"] = int(np.count_nonzero(after["overrun"]))
    ticks = after[after["trigger"] == TRIGGER_TICK]
    period_ns = int(round(cfg.controller.cycle_period_ms * 1e6))
    gaps = np.diff(ticks["t_scheduled_ns"]) // period_ns - 1
    out["skipped_releases_after_first_run"] = int(gaps[gaps > 0].sum()) if gaps.size else 0
    out["command_interval"] = summarise(held)
    out["command_interval_ticks_only"] = summarise(np.diff(ticks["t_command_written_ns"]))
    out["command_watchdog_ms"] = cfg.link.command_watchdog_ms
    out["intervals_over_watchdog"] = int(np.count_nonzero(held > cfg.link.command_watchdog_ms * 1e6))
    share = controller_share(run, out["first_run_s"])
    out["controller_share"] = summarise(share["total"])
    out["controller_share_to_read"] = summarise(share["to_read"])
    out["controller_share_read_to_written"] = summarise(share["read_to_written"])
    out["frames"] = {
        "sent": share["frames_sent"],
        "in_trace": share["frames_in_trace"],
        "joined": share["joined"],
    }
    out["stops_seen_by_supervisor"] = len(run.seen_stops)
    # the sensor peer's own delay (frame stamped with t_sent_ns -> write() called), against the sensor link's
    # age limit (the sensor's transport_latency_ms): a frame older than that on arrival is rejected
    sent = np.array(run.peers["sent"], dtype=np.int64).reshape(-1, 4)
    sent = sent[np.argsort(sent[:, 0])]
    limit_ns = min(sensor_link_max_delay_ns(sensor) for sensor in cfg.sensors.values())
    out["sensor_age_limit_ms"] = limit_ns / 1e6
    if sent.shape[0] > 1:
        held = sent[:, 1] - sent[:, 0]
        out["peer_stamp_to_write"] = summarise(held)
        out["peer_frame_gap"] = summarise(np.diff(sent[:, 0]))
        out["peer_frames_written_after_age_limit"] = [
            ((int(t) - run.t_run_ns) / 1e9, int(d) / 1e6)
            for t, d in zip(sent[held > limit_ns, 0], held[held > limit_ns], strict=True)
        ]
        taken = np.isin(sent[:, 0], run.trace.streams["detections"]["t_sent_ns"])
        window = (sent[:, 0] >= written[first]) & (sent[:, 0] <= written[-1])
        out["frames_sent_not_taken_in"] = int(np.count_nonzero(window & ~taken))
        # the frame sent last before each stop: how long the peer held it, and did it reach a step
        before_stop = []
        for i, reason in stops:
            k = int(np.searchsorted(sent[:, 0], written[i])) - 1
            if k >= 0:
                before_stop.append(
                    ((int(written[i]) - run.t_run_ns) / 1e9, Reason(reason).name, int(held[k]) / 1e6,
                     (int(written[i]) - int(sent[k, 0])) / 1e6, bool(taken[k]))
                )  # fmt: skip
        out["last_frame_before_each_stop"] = before_stop
    return out


def print_report(report: dict[str, Any]) -> None:
    """The human-readable report."""
    a = report["analysis"]
    st = a["stats"]
    print(
        f"cobotguard availability soak: {report['minutes']:g} min, '{report['cell']}', cycle "
        f"{report['cycle_period_ms']:g} ms, worst_step_ms {report['worst_step_ms']:g}, wake_on_data "
        f"{report['wake_on_data']}, load: {report['load'] or 'none'}"
    )
    if a.get("first_run_s") is None:
        print("the cell never reached RUN: nothing to report")
        return
    print(
        f"first RUN {a['first_run_s']:.3f} s after start; observed {a['observed_s'] / 60:.2f} min from then"
    )
    n_stops = len(a["stops"])
    print(
        f"stops without cause: {n_stops} ({a['stops_per_hour']:.1f} per hour); by reason: "
        + (", ".join(f"{k} {v}" for k, v in a["stops_by_reason"].items()) or "none")
    )
    for t, reason in a["stops"][:25]:
        print(f"  stop at {t:10.3f} s: {reason}")
    if n_stops > 25:
        print(f"  ... {n_stops - 25} more (--json lists them all)")
    print(f"fraction of time not in RUN: {a['fraction_not_in_run']:.4%}")
    print(
        f"overruns: {st['overruns']} (controller counter, whole run); steps with the overrun input set "
        f"after the first RUN: {a['overrun_inputs_after_first_run']}"
    )
    print(
        f"skipped releases: {st['skipped_releases']} (controller counter, whole run, includes the loop's "
        f"start); after the first RUN: {a['skipped_releases_after_first_run']}"
    )
    print(
        f"steps: {a['steps']} ({a['data_steps']} data steps), frames in {st['frames_in']}, lost "
        f"{st['frames_lost']}, steps with link faults {st['link_faults']}, trace records dropped "
        f"{st['trace_dropped']}, step index gaps in the trace {a['step_index_gaps']}"
    )
    print(f"{'distribution (us)':52s} {'n':>8s} {'median':>9s} {'p99':>9s} {'p99.9':>9s} {'max':>9s}")
    for label, key in (
        ("command interval (every command)", "command_interval"),
        ("command interval (tick steps only)", "command_interval_ticks_only"),
        ("controller share: peer write->command written", "controller_share"),
        ("  peer write->controller read", "controller_share_to_read"),
        ("  controller read->command written", "controller_share_read_to_written"),
        ("sensor peer: frame stamped->write() called", "peer_stamp_to_write"),
        ("sensor peer: interval between frames", "peer_frame_gap"),
    ):
        if key not in a:
            continue
        r = a[key]
        print(
            f"{label:52s} {r['n']:8d} {r['median_us']:9.1f} {r['p99_us']:9.1f} {r['p99.9_us']:9.1f} "
            f"{r['max_us']:9.1f}"
        )
    print(
        f"command intervals over the robot's command watchdog ({a['command_watchdog_ms']:g} ms): "
        f"{a['intervals_over_watchdog']}"
    )
    if "peer_frames_written_after_age_limit" in a:
        late = a["peer_frames_written_after_age_limit"]
        print(
            f"sensor frames the peer itself wrote more than the sensor link's age limit "
            f"({a['sensor_age_limit_ms']:g} ms, transport_latency_ms) after stamping them: {len(late)}"
            + "".join(f"; at {t:.3f} s: {d:.1f} ms" for t, d in late[:10])
        )
        print(f"sensor frames sent after the first RUN that no step took in: {a['frames_sent_not_taken_in']}")
        for t, reason, held, age, taken in a["last_frame_before_each_stop"][:25]:
            print(
                f"  stop at {t:10.3f} s ({reason}): the last frame sent before it was held {held:.2f} ms "
                f"by the peer before write(), stamped {age:.2f} ms before the stop, "
                + ("taken in by a step" if taken else "never taken in by a step")
            )
    print(
        "robot emulator self-stops: "
        + (", ".join(f"{k} {v}" for k, v in a["robot_self_stops"].items()) or "none")
        + f"; peer writes not taken: {a['peer_lost_writes']}"
        + (f"; peer error: {a['peer_error']}" if a["peer_error"] else "")
    )
    for note in report["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the report (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--config", type=Path, default=DEFAULT_CELL)
    parser.add_argument(
        "--worst-step-ms", type=float, default=None, help="default: the configuration's value"
    )
    parser.add_argument("--cpu", type=int, default=1, help="the controller's CPU (default 1)")
    parser.add_argument("--peer-cpu", type=int, default=0, help="the peers' and our other threads' CPU")
    parser.add_argument("--load", action="store_true", help="run stress-ng --cpu 1 --cpu-load 50 meanwhile")
    parser.add_argument("--trace-dir", type=Path, default=None, help="keep the controller's trace here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cfg = bench_config(args.config, worst_step_ms=args.worst_step_ms, wake_on_data=True)
    notes = host_notes()
    seconds = args.minutes * 60.0

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    from cobotguard.safety import cycle

    cycle.warm_up()
    load = Load(seconds + 120) if args.load else None
    before = steal_ticks()
    t0 = time.monotonic()
    try:
        run = run_controller(
            cfg,
            seconds,
            compiled=True,
            realtime=True,
            cpu=args.cpu,
            peer_cpu=args.peer_cpu,
            trace_dir=args.trace_dir,
            progress=progress,
        )
    finally:
        if load is not None:
            load.stop()
    notes.append(
        f"{steal_note(before, steal_ticks(), args.cpu)} during the run ({time.monotonic() - t0:.0f} s)"
    )
    notes.append("controller warnings: " + ("; ".join(run.warnings) or "none"))
    notes.append(
        "other processes' real-time threads seen during the run (1 s looks): "
        + (
            ", ".join(f"{name} from {a:.0f} s to {b:.0f} s" for name, (a, b) in sorted(run.other_rt.items()))
            or "none"
        )
    )
    report = {
        "minutes": args.minutes,
        "cell": cfg.name,
        "cycle_period_ms": cfg.controller.cycle_period_ms,
        "worst_step_ms": cfg.controller.worst_step_ms,
        "wake_on_data": getattr(cfg.controller, "wake_on_data", None),
        "load": load.description if load else None,
        "analysis": analyse(run, cfg),
        "notes": notes,
    }
    if args.json:
        print(json.dumps(report, indent=1, default=lambda o: dict(o) if isinstance(o, Counter) else str(o)))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
