"""`cobotguard calibrate CONFIG`: measure the compiled loop's steps on this machine, propose worst_step_ms.

The compiled controller (`safety.compiled_controller.CompiledController`) runs the configuration against
emulated peers (`hil.traffic.Traffic`: the robot and every sensor on pty pairs, in a child process) with
real-time settings, for --seconds. Its measurement copy of the configuration has a large worst step
(`MEASURE_WORST_STEP_MS`, and the robot's command watchdog raised where validation requires it), so that no
step of the measurement overruns; the configuration file is never changed. Each step's latency is release
-> command written, as the loop's deadline counts it (a data step's release is when its data was found
readable). The tail is fitted with the timing report's extreme value machinery (`hil.report.stats`) and
the proposal is the latency exceeded with probability --exceedance per step, rounded up to 0.1 ms and never
below the observed maximum; when the fit is rejected, the observed maximum x `SAFETY_FACTOR`. Then the
budget with the configured and the proposed worst step side by side. docs/budget.md explains it.

Exit codes: 0 the proposal keeps the cell safe, 1 it does not (or the loop failed while measuring),
2 invalid input (configuration, options, stress-ng missing) or the controller refused to arm.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cobotguard.hil.cli.common import (
    CommandError,
    ExitCode,
    InvalidInputError,
    add_config_argument,
    add_json_option,
    load_cell_config,
)

if TYPE_CHECKING:
    import numpy as np

    from cobotguard.safety.compiled_controller import CompiledController
    from cobotguard.safety.config import CellConfig

MEASURE_WORST_STEP_MS = 100.0  # the measurement's worst step: far beyond any step, so none overruns
SAFETY_FACTOR = 2.0  # without an estimate: the observed maximum times this
RESOLUTION_NS = 100_000  # proposals are rounded up to 0.1 ms
WARM_UP_NS = 1_000_000_000  # run this long before measuring (start-up, first frames, reset)
RESET_EVERY_NS = 50_000_000  # while the cell is not running, press its reset this often
STRESS = ["stress-ng", "--cpu", "1", "--cpu-load", "50"]
NOTHING_MEASURED = "nothing measured"  # how invalid input ends, after the count of problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    add_config_argument(parser)
    parser.add_argument(
        "--seconds", type=float, default=60.0, metavar="S", help="how long to measure (default 60)"
    )
    parser.add_argument(
        "--load", action="store_true", help="run `stress-ng --cpu 1 --cpu-load 50` beside the loop"
    )
    parser.add_argument(
        "--exceedance",
        type=float,
        default=1e-9,
        metavar="P",
        help="propose the step latency exceeded with this probability per step (default 1e-9)",
    )
    add_json_option(parser)
    parser.add_argument(
        "--cpu", type=int, metavar="N", help="pin the loop to CPU N (default: the last); peers on the others"
    )


# -- measuring -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """What one calibration run recorded: every step's latency and what the loop counted."""

    latencies_ns: np.ndarray  # t_command_written - t_scheduled, one per step, in step order
    triggers: Counter[str]  # steps per trigger: tick, data, reset
    overruns: int
    skipped_releases: int
    trace_dropped: int
    not_running: int  # steps whose command was not RUN
    stops: Counter[str]  # RUN -> a stop, per reason
    reset_presses: int
    warnings: list[str]
    stress_exit: int | None  # stress-ng's exit status when it ended before we stopped it
    steal_ns: int | None  # CPU time the hypervisor took from this machine meanwhile (all CPUs), if known


def measurement_config(cfg: CellConfig) -> tuple[CellConfig, dict[str, tuple[float, float, str]]]:
    """The configuration with the large worst step (and the watchdog and state timeout validation needs)."""
    from cobotguard.safety.config_load import config_from_dict
    from cobotguard.safety.timing import NS_PER_MS, command_gap_ns, line_time_ns, ns, robot_state_gap_ns

    data = cfg.model_dump()
    controller, link = data["controller"], data["link"]
    changed: dict[str, tuple[float, float, str]] = {}
    worst = max(controller["worst_step_ms"], MEASURE_WORST_STEP_MS)
    changed["controller.worst_step_ms"] = (controller["worst_step_ms"], worst, "so that no step overruns")
    controller["worst_step_ms"] = worst
    # validation: the watchdog must exceed the longest normal gap between commands; take twice that
    gap = command_gap_ns(ns(controller["cycle_period_ms"]), ns(worst), cfg.link) / NS_PER_MS
    if link["command_watchdog_ms"] <= gap:
        why = "as validation requires with that worst step"
        changed["link.command_watchdog_ms"] = (link["command_watchdog_ms"], math.ceil(2 * gap), why)
        link["command_watchdog_ms"] = float(math.ceil(2 * gap))
    # and the robot state timeout must exceed the state period + a state frame + the wait for a cycle
    state_frame_ns = line_time_ns(link["state_frame_bytes"], link["baud"])
    state_gap = (
        robot_state_gap_ns(
            ns(cfg.robot.state_period_ms), state_frame_ns, ns(controller["cycle_period_ms"]), ns(worst)
        )
        / NS_PER_MS
    )
    if controller["robot_state_timeout_ms"] <= state_gap:
        why = "as validation requires with that worst step"
        changed["controller.robot_state_timeout_ms"] = (
            controller["robot_state_timeout_ms"], math.ceil(2 * state_gap), why
        )  # fmt: skip
        controller["robot_state_timeout_ms"] = float(math.ceil(2 * state_gap))
    return config_from_dict(data, "(measurement copy)"), changed


class _KeepRunning:
    """run()'s `until`: presses the reset while the command is not RUN (start-up, a link hiccup)."""

    def __init__(self, controller: CompiledController) -> None:
        self.controller = controller
        self.presses = 0
        self._last_ns = 0

    def __call__(self) -> bool:
        from cobotguard.safety.reasons import CommandKind

        now = time.monotonic_ns()
        if (
            int(self.controller.command[0]["kind"]) != CommandKind.RUN
            and now - self._last_ns >= RESET_EVERY_NS
        ):
            self.controller.press_reset()
            self.presses += 1
            self._last_ns = now
        return False


def measure(cfg: CellConfig, seconds: float, cpu: int, load: bool) -> Measurement:
    """Run the compiled loop on emulated traffic for `seconds` and read its steps back from the trace."""
    from cobotguard.hil.traffic import Traffic
    from cobotguard.safety.compiled_controller import CompiledController
    from cobotguard.safety.trace import read_trace

    peers = set(os.sched_getaffinity(0)) - {cpu}
    with tempfile.TemporaryDirectory(prefix="cobotguard-calibrate-") as tmp, Traffic(cfg, peers) as traffic:
        path = Path(tmp) / "calibrate.cgtrace"
        controller = CompiledController(
            cfg,
            traffic.robot_fd,
            traffic.sensor_fds,
            trace_path=path,
            realtime=True,
            cpu=cpu,
            producer="cobotguard calibrate",
            allow_unsafe_budget=True,  # emulated peers only; the large worst step inflates the budget
        )
        stress: subprocess.Popen[bytes] | None = None
        keeper = _KeepRunning(controller)
        stress_exit = None
        try:
            controller.arm()
            # Not measured: the loop thread's real-time set-up (mlockall) delays the first release, and the
            # cell needs frames and a reset before it runs.
            controller.run(duration_ns=WARM_UP_NS, until=keeper)
            before, presses_before, steal_before = controller.stats, keeper.presses, _steal_ns()
            if load:
                timeout = f"{math.ceil(seconds) + 60}s"  # ends by itself should we be killed
                stress = subprocess.Popen(
                    [*STRESS, "--timeout", timeout, "--quiet"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            controller.run(duration_ns=int(seconds * 1e9), until=keeper)
            steal_after = _steal_ns()
        finally:
            try:
                controller.close()
            finally:
                if stress is not None:
                    stress_exit = stress.poll()
                    _stop(stress)
        cycles = read_trace(path).streams["cycles"]
        after = controller.stats
    measured = cycles[(cycles["cycle"] >= before.cycles) & (cycles["cycle"] < after.cycles)]
    return _measurement(
        measured,
        overruns=after.overruns - before.overruns,
        skipped_releases=after.skipped_releases - before.skipped_releases,
        trace_dropped=after.trace_dropped,
        reset_presses=keeper.presses - presses_before,
        warnings=list(controller.warnings),
        stress_exit=stress_exit,
        steal_ns=None if steal_before is None or steal_after is None else steal_after - steal_before,
    )


def _steal_ns() -> int | None:
    """CPU time stolen by the hypervisor since boot, all CPUs (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        return int(fields[8]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End a child process we started (SIGTERM, then SIGKILL)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _measurement(cycles: np.ndarray, **counts: Any) -> Measurement:
    """The latencies, triggers and stops of the measured cycle records, with the loop's counts."""
    import numpy as np

    from cobotguard.safety.cycle import TRIGGER_DATA, TRIGGER_RESET, TRIGGER_TICK
    from cobotguard.safety.reasons import CommandKind, Reason

    names = {TRIGGER_TICK: "tick", TRIGGER_DATA: "data", TRIGGER_RESET: "reset"}
    triggers: Counter[str] = Counter({name: 0 for name in names.values()})
    triggers.update(names.get(int(t), str(int(t))) for t in cycles["trigger"])
    kinds = cycles["command"]["kind"].astype(np.int64)
    running = kinds == CommandKind.RUN
    stops: Counter[str] = Counter()
    if running.any():
        first = int(np.argmax(running))
        after = np.flatnonzero(running[first:-1] & ~running[first + 1 :]) + first + 1
        stops.update(Reason(int(r)).name for r in cycles["command"]["reason"][after])
    return Measurement(
        latencies_ns=(cycles["t_command_written_ns"] - cycles["t_scheduled_ns"]).astype(np.int64),
        triggers=triggers,
        not_running=int(np.count_nonzero(~running)),
        stops=stops,
        **counts,
    )


# -- the proposal ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """The proposed worst step and how it was reached."""

    worst_step_ms: float
    estimate: bool  # True: from the extreme value fit; False: observed max x SAFETY_FACTOR
    return_level_ns: float | None  # the fitted latency exceeded with the given probability per step
    method: str


def round_up_ns(value_ns: float) -> int:
    """Rounded up to the proposal's resolution (0.1 ms)."""
    return math.ceil(value_ns / RESOLUTION_NS) * RESOLUTION_NS


def propose(latencies_ns: np.ndarray, exceedance: float, estimate: Any) -> Proposal:
    """worst_step_ms from a usable fit (never below the observed max), else observed max x SAFETY_FACTOR."""
    observed = int(latencies_ns.max())
    if estimate is not None and estimate.usable:
        level = estimate.return_levels_ns[exceedance]
        chosen = max(level, observed)
        source = "the fitted return level" if level >= observed else "the observed maximum (above the fit)"
        method = f"latency exceeded with probability {exceedance:g} per step; {source}, rounded up to 0.1 ms"
        return Proposal(round_up_ns(chosen) / 1e6, True, level, method)
    method = f"no estimate could be made: observed maximum x {SAFETY_FACTOR:g}, rounded up to 0.1 ms"
    level = estimate.return_levels_ns[exceedance] if estimate is not None else None
    return Proposal(round_up_ns(observed * SAFETY_FACTOR) / 1e6, False, level, method)


def budget_summary(cfg: CellConfig, source: str) -> dict[str, Any]:
    """The budget's key numbers for `cfg` as validation and safety.budget give them."""
    from cobotguard.safety.budget import evaluate, reaction_stages
    from cobotguard.safety.config import ConfigError
    from cobotguard.safety.config_load import config_from_dict

    try:
        config_from_dict(cfg.model_dump(), source)
        problems: list[str] = []
    except ConfigError as exc:
        problems = exc.problems
    report = evaluate(cfg)
    controller_terms = {s.symbol: s.ns for s in reaction_stages(cfg) if s.symbol in ("T_cycle", "T_step")}
    return {
        "worst_step_ms": cfg.controller.worst_step_ms,
        "valid": not problems,
        "problems": problems,
        "reaction_time_ns": report.reaction_time_ns,
        "controller_terms_ns": controller_terms,
        "protective_separation_m": report.protective_separation_m,
        "zone_separation_m": report.zone_separation_m,
        "zones": [
            {"name": z.name, "type": z.type, "required_m": z.required_m, "margin_m": z.margin_m}
            for z in report.zones
        ],
        "coverage_margin_m": report.coverage_margin_m,
        "max_speed_mps": report.max_speed_mps,
        "max_safe_robot_speed_mps": report.max_safe_robot_speed_mps,
        "verdict": report.verdict if not problems else "invalid",
        "reasons": list(report.reasons) + problems,
    }


def with_worst_step(cfg: CellConfig, worst_step_ms: float) -> CellConfig:
    """A copy of the configuration with another controller.worst_step_ms (schema-checked only)."""
    from cobotguard.safety.config import CellConfig

    data = cfg.model_dump()
    data["controller"]["worst_step_ms"] = worst_step_ms
    return CellConfig.model_validate(data)


# -- the command -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Check the input, measure, fit, propose and print; returns the exit code."""
    from cobotguard.safety.config import ConfigError
    from cobotguard.safety.executor import ArmError

    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if args.cpu is None else args.cpu
    problems = []
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        problems.append(f"--seconds: got {args.seconds}; expected a positive number of seconds")
    if not 0.0 < args.exceedance < 1.0:
        problems.append(f"--exceedance: got {args.exceedance}; expected a probability between 0 and 1")
    if cpu not in allowed:
        problems.append(f"--cpu: got {cpu}; expected one of the CPUs this process may use: {allowed}")
    if args.load and shutil.which(STRESS[0]) is None:
        problems.append("--load: stress-ng is not installed; install it (apt-get install stress-ng)")
    cfg = None
    try:
        cfg = load_cell_config(args.config)
        measured_cfg, changed = measurement_config(cfg)
    except (InvalidInputError, ConfigError) as exc:  # reported together with the options' problems
        problems += exc.problems
    if problems or cfg is None:
        raise InvalidInputError(problems, NOTHING_MEASURED, as_json=args.json)

    if not args.json:
        print(
            f"cobotguard calibrate: measuring '{cfg.name}' for {args.seconds:g} s"
            + (" under load" if args.load else "")
            + " (the controller compiles first)",
            flush=True,
        )
    try:
        measured = measure(measured_cfg, args.seconds, cpu, args.load)
    except ArmError as exc:
        problem = f"controller refused to arm: {exc}"
        raise InvalidInputError([problem], NOTHING_MEASURED, as_json=args.json) from None
    except RuntimeError as exc:
        raise CommandError(f"measurement failed: {exc}", ExitCode.FAILED) from None
    if measured.latencies_ns.size == 0:
        problem = f"--seconds: {args.seconds:g} s held no step to measure; expected longer"
        raise InvalidInputError([problem], NOTHING_MEASURED, as_json=args.json)
    result = analyse(cfg, str(args.config), measured, args.exceedance)
    result.update(
        seconds=args.seconds,
        load=" ".join(STRESS) if args.load else None,
        cpu=cpu,
        peer_cpus=[c for c in allowed if c != cpu],
        measured_with={
            k: {"configured": a, "measured_with": b, "why": why} for k, (a, b, why) in changed.items()
        },
    )
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(render(result))
    return ExitCode.SAFE if result["verdict"] == "safe" else ExitCode.UNSAFE


def analyse(cfg: CellConfig, source: str, measured: Measurement, exceedance: float) -> dict[str, Any]:
    """The result object: distribution, fit, proposal and the budget as configured and as proposed."""
    from cobotguard.hil.report.stats import fit_worst_case, summarize
    from cobotguard.safety.checksum import config_checksum

    summary = summarize(measured.latencies_ns)
    with warnings.catch_warnings():  # scipy's bootstrap warns when a resampled fit degenerates; the
        warnings.simplefilter("ignore", RuntimeWarning)  # goodness-of-fit p-values already say so
        estimate = fit_worst_case(measured.latencies_ns, probabilities=(exceedance,))
    proposal = propose(measured.latencies_ns, exceedance, estimate)
    configured = budget_summary(cfg, source)
    proposed = budget_summary(with_worst_step(cfg, proposal.worst_step_ms), source)
    fit = None
    if estimate is not None:
        fit = {
            "model": estimate.model,
            "block_size": estimate.block_size,
            "n_blocks": estimate.n_blocks,
            "gev_shape_xi": _finite(estimate.gev_shape_xi),
            "tests": [
                {
                    "test": t.test,
                    "distribution": t.distribution,
                    "statistic": _finite(t.statistic),
                    "pvalue": _finite(t.pvalue),
                }
                for t in estimate.tests
            ],
            "usable": estimate.usable,
            "return_level_ns": _finite(proposal.return_level_ns),
            "note": estimate.note,
        }
    notes = list(measured.warnings)
    if measured.stress_exit is not None:
        notes.append(f"stress-ng ended early (exit status {measured.stress_exit}): the load was partial")
    return {
        "config": source,
        "cell": cfg.name,
        "checksum": config_checksum(cfg)[0],
        "warnings": notes,
        "steps": {
            "count": summary.count,
            "by_trigger": dict(measured.triggers),
            "overruns": measured.overruns,
            "skipped_releases": measured.skipped_releases,
            "trace_dropped": measured.trace_dropped,
            "not_running": measured.not_running,
            "stops": dict(measured.stops),
            "reset_presses": measured.reset_presses,
        },
        "steal_ns": measured.steal_ns,
        "latency_ns": {"min": summary.min_ns, **summary.quantiles_ns, "max": summary.max_ns},
        "exceedance_per_step": exceedance,
        "fit": fit,
        "proposal": {
            "worst_step_ms": proposal.worst_step_ms,
            "estimate": proposal.estimate,
            "method": proposal.method,
        },
        "budget": {"configured": configured, "proposed": proposed},
        "verdict": "safe" if proposed["verdict"] == "safe" else "unsafe",
    }


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: None for them."""
    return value if value is not None and math.isfinite(value) else None


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ms(value_ns: float | None) -> str:
    return "-" if value_ns is None else f"{value_ns / 1e6:.3f} ms"


def _m(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} m"


def render(r: dict[str, Any]) -> str:
    """The result as text: measurement, distribution, fit, proposal, budget before and after."""
    steps, lat = r["steps"], r["latency_ns"]
    lines = [f"cell: {r['cell']}", f"file: {r['config']} (checksum {r['checksum']}; the file is not changed)"]
    lines.append(
        f"measured: {r['seconds']:g} s, loop SCHED_FIFO on CPU {r['cpu']}, peers on CPU(s) "
        f"{', '.join(map(str, r['peer_cpus'])) or 'the same'}"
        + (f", beside `{r['load']}`" if r["load"] else "")
    )
    for key, v in r["measured_with"].items():
        lines.append(
            f"  measured with {key} = {v['measured_with']:g} (configured {v['configured']:g}) {v['why']}"
        )
    lines += [f"  warning: {w}" for w in r["warnings"]]
    if r["steal_ns"] is not None:
        lines.append(f"  CPU time taken by the hypervisor meanwhile (steal, all CPUs): {_ms(r['steal_ns'])}")
    by = ", ".join(f"{n} {k}" for k, n in steps["by_trigger"].items())
    lines += [
        f"steps: {steps['count']} ({by}); overruns {steps['overruns']}; skipped releases "
        f"{steps['skipped_releases']}; trace records dropped {steps['trace_dropped']}",
        f"  not RUN: {steps['not_running']} steps; stops: "
        + (", ".join(f"{k} x{n}" for k, n in steps["stops"].items()) or "none")
        + f"; reset presses {steps['reset_presses']}",
        "latency release -> command written: "
        + ", ".join(f"{k} {_ms(v)}" for k, v in lat.items() if k != "min"),
    ]
    fit = r["fit"]
    if fit is None:
        lines.append("extreme value fit: too few blocks or distinct block maxima; NO ESTIMATE")
    else:
        tests = "; ".join(f"{t['test']} ({t['distribution']}) p = {_g(t['pvalue'])}" for t in fit["tests"])
        lines.append(
            f"extreme value fit: {fit['model']} on {fit['n_blocks']} blocks of {fit['block_size']} steps, "
            f"xi = {_g(fit['gev_shape_xi'])}; {tests}"
        )
        level = _ms(fit["return_level_ns"])
        if fit["usable"]:
            lines.append(
                f"  latency exceeded with probability {r['exceedance_per_step']:g} per step: {level}"
            )
        else:
            lines.append(
                f"  fit rejected: NO ESTIMATE (its {r['exceedance_per_step']:g} level would be {level})"
            )
        lines.append(f"  {fit['note']}")
    p = r["proposal"]
    lines.append(f"proposal: controller.worst_step_ms = {p['worst_step_ms']:g} ({p['method']})")
    conf, prop = r["budget"]["configured"], r["budget"]["proposed"]
    lines += ["", f"{'budget':<26} {'as configured':>16} {'proposed':>16}", "-" * 60]
    for (name, before), (_, after) in zip(_budget_rows(conf), _budget_rows(prop), strict=True):
        lines.append(f"{name:<26} {before:>16} {after:>16}")
    lines += [f"  reason (proposed): {reason}" for reason in prop["reasons"]]
    safe = r["verdict"] == "safe"
    lines.append("the proposal keeps the cell safe" if safe else "the proposal does NOT keep the cell safe")
    return "\n".join(lines)


def _budget_rows(b: dict[str, Any]) -> list[tuple[str, str]]:
    """One budget summary as (name, value) rows for the side-by-side table."""
    terms = b["controller_terms_ns"]
    rows = [
        ("controller.worst_step_ms", f"{b['worst_step_ms']:g} ms"),
        ("T_cycle", _ms(terms["T_cycle"])),
        ("T_step", _ms(terms["T_step"])),
        ("T_r", _ms(b["reaction_time_ns"])),
        ("S_p (separation)", _m(b["protective_separation_m"])),
        ("S (static zones)", _m(b["zone_separation_m"])),
    ]
    rows += [(f"margin zone {z['name']}", _m(z["margin_m"])) for z in b["zones"] if z["type"] == "protective"]
    if b["coverage_margin_m"] is not None:
        rows.append(("margin separation", _m(b["coverage_margin_m"])))
    rows += [
        ("highest safe speed", f"{b['max_safe_robot_speed_mps']:.4f} m/s"),
        ("verdict", b["verdict"].upper()),
    ]
    return rows
