"""The hardware-in-the-loop rig: plays the robot and the sensors on serial lines against a controller.

The rig is the imperative shell around pure parts: scenarios (hil.scenarios) say where people are,
fault injectors (hil.faults) say what happens to the bytes, the robot emulator (hil.robot) follows the
controller's commands, and the verdicts (hil.timeline) are computed afterwards from the recorded events.

One controller session serves every run: between runs the rig presses reset (the controller's reset
input also clears latched link errors) and waits for motion again. With `virtual`, the rig makes a pty
pair per line, starts `cobotguard run` on their other ends and presses reset with SIGUSR1; with real ports
the operator starts the controller, and the rig presses reset with a command (`reset_command`) or asks
the operator to. The live loop is hil.session.Session; this module is the process and file shell.

Every event is timestamped on the rig's monotonic clock (CLOCK_MONOTONIC, shared with a controller on the
same machine). After the session the rig writes one trace (safety.trace): the controller's "cycles" and
"detections" streams, when it can read the controller's trace, plus the rig's "rig" stream.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cobotguard.hil import faults as fl
from cobotguard.hil import scenarios as sc
from cobotguard.hil.session import MS, RigError, Session
from cobotguard.hil.timeline import RIG_EVENT_DTYPE, Budget, FailureClass, Outcome, RigEvent, stall_evidence
from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.realtime import keep_off_cpu, split_cpus

__all__ = [
    "ControllerProcess",
    "RigError",
    "RigOptions",
    "RigReport",
    "Session",
    "run_rig",
    "with_controller_seq",
    "write_trace",
]


@dataclass
class RigOptions:
    """What to run and where."""

    config_path: Path
    scenarios: list[str]
    faults: list[str]
    virtual: bool = True
    robot_port: str | None = None
    sensor_ports: list[str] = field(default_factory=list)  # one per configured sensor
    baud: int | None = None
    trace_dir: Path | None = None
    startup_timeout_s: float = 120.0
    progress: Callable[[str], None] = lambda line: None
    controller_args: list[str] = field(default_factory=list)  # extra `cobotguard run` arguments
    inference_fraction: float = 0.5  # emulated inference time as a fraction of the declared worst case
    # The rig is a measuring instrument: it asks for SCHED_FIFO below the controller's priority (80) so
    # that other processes on a busy machine do not stall it (0: stay at normal priority).
    rt_priority: int = 60
    reset_command: str | None = None  # real ports: a shell command that presses the controller's reset
    # Runs per scenario or fault at most: a failed run is repeated only when the system detected a stall
    # and failed closed (hil.timeline.stall_evidence); the discarded runs are listed in the notes.
    attempts: int = 1
    # Sensors with clock = "own" run on a clock this far ahead of the rig's (negative: behind), drifting
    # this fast (ppm; negative: slow). Sensors on the shared clock read the rig's.
    sensor_clock_offset_s: float = 0.0
    sensor_drift_ppm: float = 0.0
    # The emulated robot's own clock (robot.clock = "own" in the cell): offset from the rig's clock and
    # drift; both 0 for a robot on the controller's clock.
    robot_clock_offset_s: float = 0.0
    robot_drift_ppm: float = 0.0


def robot_clock_problem(cfg: CellConfig, options: RigOptions) -> str | None:
    """Why the cell cannot run with the options' robot clock, or None."""
    if (options.robot_clock_offset_s or options.robot_drift_ppm) and cfg.robot.clock != "own":
        return (
            f"--robot-clock-offset {options.robot_clock_offset_s} / --robot-drift {options.robot_drift_ppm}: "
            f'the cell {options.config_path} says robot.clock = "{cfg.robot.clock}", so the controller '
            "would compare the robot's sender times with its own clock; expected a cell with "
            '[robot] clock = "own" (e.g. hil/defaults/robot_own_clock.toml)'
        )
    return None


@dataclass
class RigReport:
    """Outcomes of a rig session."""

    config_name: str
    checksum: str
    reaction_time_ns: int
    outcomes: list[Outcome]
    trace_path: str | None = None
    controller_log: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every run passed."""
        return all(o.passed for o in self.outcomes)

    def tally(self) -> dict[str, int]:
        """Runs by verdict: passed, failed for safety, failed for availability."""
        counts = {"passed": 0, FailureClass.SAFETY.value: 0, FailureClass.AVAILABILITY.value: 0}
        for o in self.outcomes:
            worst = o.failure_class
            counts["passed" if worst is None else worst.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON document."""
        return {
            "config": self.config_name,
            "checksum": self.checksum,
            "reaction_time_s": self.reaction_time_ns / 1e9,
            "passed": self.passed,
            "tally": self.tally(),
            "scenarios": [o.to_json() for o in self.outcomes],
            "trace": self.trace_path,
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """A terminal table of the outcomes."""
        lines = [
            f"cell: {self.config_name}   checksum {self.checksum}   T_r {self.reaction_time_ns / 1e6:.1f} ms",
            f"{'run':26s} {'kind':8s} {'result':12s} {'min sep':>9s} {'reaction':>10s} "
            f"{'budget':>9s}  reason",
            "-" * 106,
        ]
        for o in self.outcomes:
            sep = "-" if o.min_separation_m is None else f"{o.min_separation_m:.3f} m"
            rt = "-" if o.reaction_time_s is None else f"{o.reaction_time_s * 1e3:.1f} ms"
            budget = "-" if o.reaction_budget_s is None else f"{o.reaction_budget_s * 1e3:.0f} ms"
            lines.append(
                f"{o.name:26s} {o.kind:8s} {_verdict(o):12s} {sep:>9s} {rt:>10s} "
                f"{budget:>9s}  {o.stop_reason or '-'}"
            )
            for failure in o.failures:
                lines.append(f"    {failure}")
        lines.append("-" * 106)
        tally = self.tally()
        lines.append(
            f"{tally['passed']}/{len(self.outcomes)} passed, {tally['safety']} failed for safety, "
            f"{tally['availability']} for availability"
            + (f"; trace {self.trace_path}" if self.trace_path else "")
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _verdict(out: Outcome) -> str:
    worst = out.failure_class
    return "PASS" if worst is None else worst.value.upper()


def describe(out: Outcome) -> str:
    """One progress line for an outcome, failures on the lines below."""
    detail = []
    if out.min_separation_m is not None:
        detail.append(f"min separation {out.min_separation_m:.3f} m")
    if out.reaction_time_s is not None and out.reaction_budget_s is not None:
        detail.append(f"reaction {out.reaction_time_s * 1e3:.1f} ms of {out.reaction_budget_s * 1e3:.0f} ms")
    if out.stop_reason:
        detail.append(out.stop_reason)
    line = ("PASS" if out.passed else f"FAIL {_verdict(out)}") + (f" ({', '.join(detail)})" if detail else "")
    if out.machine_cause:
        line += f"\n    machine cause: {out.machine_cause}"
    return line + "".join(f"\n    {failure}" for failure in out.failures)


def cell_budget(cfg: CellConfig) -> Budget:
    """The numbers verdicts are judged against, from the cell's budget."""
    from cobotguard.safety import budget

    max_speed = cfg.robot.max_speed_mps

    def separation(speed: float) -> float:
        return budget.separation_required_m(cfg, min(max(speed, 0.0), max_speed))

    return Budget(
        reaction_time_ns=budget.reaction_time_ns(cfg),
        robot_reaction_ns=ns(cfg.robot.stop_input_reaction_ms),
        separation_m=separation if cfg.separation.enabled else None,
        hazard_polygon_m=cfg.robot.hazard_polygon_m,
        protective_zones_m=tuple(z.polygon_m for z in cfg.zones.values() if z.type == "protective"),
    )


def required_separation_m(cfg: CellConfig) -> float:
    """S_p at the robot's maximum speed (where scenarios put the stop boundary)."""
    from cobotguard.safety import budget

    return budget.separation_required_m(cfg, cfg.robot.max_speed_mps)


# ---------------------------------------------------------------------------------------------------
# The controller as a subprocess (virtual mode)


class ControllerProcess:
    """`cobotguard run` on the far ends of two pty pairs; reset by SIGUSR1, stopped by SIGTERM."""

    def __init__(
        self,
        config_path: Path,
        robot_peer: str,
        sensor_peers: list[str],
        trace_path: Path,
        log_path: Path,
        extra: list[str],
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "cobotguard.hil.cli.main",
            "run",
            str(config_path),
            "--robot-port",
            robot_peer,
            *[arg for peer in sensor_peers for arg in ("--sensor-port", peer)],
            "--trace",
            str(trace_path),
            *extra,
        ]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def press_reset(self) -> None:
        """The operator's reset button."""
        if self.alive():
            self.proc.send_signal(signal.SIGUSR1)

    def log_tail(self, lines: int = 12) -> str:
        """The last lines of the controller's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (final stop command, trace flushed), then wait; kill if it hangs. Returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


# ---------------------------------------------------------------------------------------------------
# The whole session


def command_press(command: str) -> Callable[[], None]:
    """A reset button that runs a shell command (e.g. `ssh cell kill -USR1 PID`), without waiting for it."""
    import shlex

    argv = shlex.split(command)

    def press() -> None:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return press


def _open_real(options: RigOptions, cfg: CellConfig) -> tuple[Any, list[Any]]:
    """Open the robot port and one port per sensor; --baud overrides every configured rate."""
    from cobotguard.safety.link.transport import SerialTransport, TransportError

    sensors = list(cfg.sensors.values())
    if len(options.sensor_ports) != len(sensors):
        raise RigError(
            f"{len(options.sensor_ports)} --sensor-port given, the configuration has {len(sensors)} "
            "sensor(s): give one per sensor, in configuration order"
        )
    robot_baud = options.baud or cfg.link.baud
    # a sensor line may declare its own rate (serial_baud); otherwise it runs at the robot link's
    sensor_bauds = [options.baud or getattr(s, "serial_baud", None) or cfg.link.baud for s in sensors]
    opened: list[Any] = []
    try:
        opened.append(SerialTransport(str(options.robot_port), robot_baud))
        for port, baud in zip(options.sensor_ports, sensor_bauds, strict=True):
            opened.append(SerialTransport(port, baud))
    except TransportError as exc:
        for transport in opened:
            transport.close()
        raise RigError(str(exc)) from None
    return opened[0], opened[1:]


def _one_run(
    session: Session,
    kind: str,
    item: Any,
    index: int,
    budget: Budget,
    label: str,
    progress: Callable[[str], None],
) -> Outcome:
    """Bring the cell to a verified RUN, then play one scenario or inject one fault, and judge it."""
    if kind == "scenario":
        progress(f"{label}: verifying the cell, then running ({item.duration_ns / 1e9:.1f} s)")
        return session.run_scenario(item, budget, index, prompt=progress)
    progress(f"{label}: verifying the cell, then injecting on the {item.link} link")
    return session.run_fault(item, index, prompt=progress)


def run_rig(cfg: CellConfig, options: RigOptions) -> RigReport:
    """Run the selected scenarios and faults against one controller session."""
    from cobotguard.safety.budget import reaction_time_ns
    from cobotguard.safety.checksum import config_checksum

    problem = robot_clock_problem(cfg, options)
    if problem is not None:
        raise RigError(problem)
    budget = cell_budget(cfg)
    required = required_separation_m(cfg)
    plans = [sc.build_plan(sc.get_scenario(name), cfg, required) for name in options.scenarios]
    faults = [fl.get_fault(name) for name in options.faults]
    short, _ = config_checksum(cfg)
    report = RigReport(cfg.name, short, reaction_time_ns(cfg), [])
    for fault in faults:
        if not fl.applies(fault, cfg):
            report.notes.append(
                f"{fault.name}: not run: the first sensor shares the controller's clock "
                '(it needs clock = "own")'
            )
    faults = [f for f in faults if fl.applies(f, cfg)]
    work = Path(tempfile.mkdtemp(prefix="cobotguard-hil-"))
    trace_dir = options.trace_dir or work  # without a trace directory nothing is kept
    controller_trace = work / "controller.cgtrace"
    controller: ControllerProcess | None = None
    old_affinity: set[int] | None = None
    realtime: Any = None
    ios: list[Any] = []
    progress = options.progress
    try:
        if options.virtual:
            from cobotguard.safety.link.transport import PtyTransport

            robot_io = PtyTransport()
            sensor_io = [PtyTransport() for _ in cfg.sensors]
            ios = [robot_io, *sensor_io]
            log_path = trace_dir / "controller.log"
            # the controller's hard loop gets a CPU of its own; the rig plays robot and sensors beside it
            loop_cpu, _ = split_cpus()
            controller_args = list(options.controller_args)
            if loop_cpu is not None and "--cpu" not in controller_args:
                controller_args += ["--cpu", str(loop_cpu)]
            if loop_cpu is not None:
                old_affinity = keep_off_cpu(loop_cpu)
            controller = ControllerProcess(
                options.config_path,
                robot_io.peer_path,
                [io.peer_path for io in sensor_io],
                controller_trace,
                log_path,
                controller_args,
            )
            report.controller_log = str(log_path)
            press: Callable[[], None] | None = controller.press_reset
            alive = controller.alive
            progress(
                f"hil: controller started (pid {controller.proc.pid}) on "
                f"{robot_io.peer_path} (robot), {', '.join(io.peer_path for io in sensor_io)} (sensors)"
            )
        else:
            robot_io, sensor_io = _open_real(options, cfg)
            ios = [robot_io, *sensor_io]
            alive = lambda: True  # noqa: E731
            if options.reset_command:
                press = command_press(options.reset_command)
            else:
                press = None
                report.notes.append(
                    "real ports without --reset-command: the controller's reset must be pressed by hand "
                    "when the rig asks for it; the restart scenario cannot be timed"
                )
        # A full garbage collection over the many objects numba and shapely create stalls the rig for
        # tens of milliseconds: freeze what exists and pause the collector for the session.
        gc.collect()
        gc.freeze()
        gc.disable()
        if options.rt_priority > 0:
            from cobotguard.safety.realtime import apply_realtime

            realtime = apply_realtime(options.rt_priority, cpu=None, lock_memory=False)
            report.notes += [f"rig: {w}" for w in realtime.warnings]
        from cobotguard.hil.robot import RobotClock

        robot_clock = RobotClock(
            offset_ns=round(options.robot_clock_offset_s * 1e9),
            drift_ppm=options.robot_drift_ppm,
            origin_ns=time.monotonic_ns(),
        )
        session = Session(
            cfg, robot_io, sensor_io, press, alive, inference_fraction=options.inference_fraction,
            robot_clock=robot_clock, sensor_clock_offset_ns=round(options.sensor_clock_offset_s * 1e9),
            sensor_drift_ppm=options.sensor_drift_ppm,
        )  # fmt: skip
        progress("hil: waiting for the controller's first command (it compiles before arming)")
        try:
            session.wait_first_command(int(options.startup_timeout_s * 1e9))
        except RigError as exc:
            tail = controller.log_tail() if controller is not None else ""
            raise RigError(f"{exc}" + (f"; controller output:\n{tail}" if tail else "")) from None
        session.start_streaming()
        total = len(plans) + len(faults)
        runs: list[tuple[str, Any]] = [("scenario", p) for p in plans] + [("fault", f) for f in faults]
        watchdog_ns = ns(cfg.link.command_watchdog_ms)
        first = next(iter(cfg.sensors.values()))  # faults and the rig's frame schedule start with it
        frame_gap_ns = timing.frames_wait_ns(first)
        for i, (kind, item) in enumerate(runs):
            label = f"[{i + 1}/{total}] {kind} {item.name}"
            expected = item.stop_reasons if kind == "scenario" else frozenset(item.expected)
            for attempt in range(1, max(1, options.attempts) + 1):
                t_attempt = session.now()
                out = _one_run(session, kind, item, i, budget, label, progress)
                out.attempts = attempt
                if out.failure_class is FailureClass.AVAILABILITY:
                    events = session.log.array(t_attempt)
                    out.machine_cause = stall_evidence(events, expected, watchdog_ns, frame_gap_ns)
                # only a stop without cause that the machine demonstrably caused earns another run
                if out.passed or attempt >= options.attempts or out.machine_cause is None:
                    break
                note = (
                    f"{item.name}: run {attempt} discarded, an availability failure caused by the machine "
                    f"({'; '.join(out.messages)}): {out.machine_cause}"
                )
                report.notes.append(note)
                progress(f"{label}: {note}; running it again")
            report.outcomes.append(out)
            progress(f"{label}: {describe(out)}")
        session.pump(session.now() + 50 * MS)
        events = session.log.array()
        if session.writes_dropped:
            report.notes.append(
                f"rig: {session.writes_dropped} write(s) lost because the controller did not read its port "
                "in time (a stalled controller; its link detects the loss)"
            )
    finally:
        gc.enable()
        gc.unfreeze()
        if realtime is not None:
            realtime.restore()
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)
        if controller is not None:
            code = controller.stop()
            if code not in (0, None):
                report.notes.append(f"controller exited with code {code}; see {controller.log_path}")
        for io in ios:
            io.close()
    if options.trace_dir is not None:
        report.trace_path = str(write_trace(cfg, trace_dir / "hil.cgtrace", controller_trace, events, report))
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        report.controller_log = None
    return report


def write_trace(
    cfg: CellConfig, path: Path, controller_trace: Path, events: np.ndarray, report: RigReport
) -> Path:
    """One trace with the controller's streams (when readable) and the rig's events."""
    from cobotguard.safety.trace import TraceError, TraceWriter, header_for_config, read_trace

    streams: dict[str, np.ndarray] = {}
    header: dict[str, Any]
    try:
        trace = read_trace(controller_trace, allow_incomplete=True)
        header = dict(trace.header)
        for name in ("cycles", "detections"):
            if name in trace.streams:
                streams[name] = trace.streams[name]
        if trace.error is not None:
            report.notes.append(f"controller trace incomplete: {trace.error}")
    except TraceError as exc:
        report.notes.append(f"controller trace not readable ({exc}); the rig trace holds the rig stream only")
        header = header_for_config(cfg, "cobotguard hil")
    if "cycles" in streams:
        events = with_controller_seq(events, streams["cycles"])
    for key in ("format", "format_version", "streams"):
        header.pop(key, None)
    header["producer"] = "cobotguard hil"
    header["controller_producer"] = header.get("controller_producer", "cobotguard run")
    header["rig_runs"] = [o.to_json() for o in report.outcomes]
    dtypes = {name: arr.dtype for name, arr in streams.items()}
    dtypes["rig"] = RIG_EVENT_DTYPE
    with TraceWriter(path, header, dtypes) as writer:
        for name, arr in streams.items():
            writer.write(name, arr)
        writer.write("rig", events)
    return path


def with_controller_seq(events: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Number received commands as the controller's trace does.

    The link numbers frames itself (`seq`, kept as is); the controller's "cycles" stream numbers
    commands with its own count. Each command's sender time is the cycle's step end, so the join is
    exact; a command with no matching cycle gets -1.
    """
    out = events.copy()
    is_cmd = out["kind"] == int(RigEvent.COMMAND_RECEIVED)
    out["seq"][is_cmd] = out["command_seq"][is_cmd]
    order = np.argsort(cycles["t_step_end_ns"], kind="stable")
    keys = cycles["t_step_end_ns"][order]
    refs = out["t_ref_ns"][is_cmd]
    idx = np.clip(np.searchsorted(keys, refs), 0, max(len(keys) - 1, 0))
    found = (len(keys) > 0) & (keys[idx] == refs) if len(keys) else np.zeros(len(refs), dtype=bool)
    out["command_seq"][is_cmd] = np.where(found, cycles["command_seq"][order][idx] if len(keys) else -1, -1)
    return out
