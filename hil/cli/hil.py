"""`cobotguard hil`: play the robot and the sensor against a controller, run scenarios and faults."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cobotguard.hil.cli.common import CommandError, ExitCode, load_cell_config

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "defaults" / "cell.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--virtual",
        action="store_true",
        help="make two pty pairs and start the controller (`cobotguard run`) as a subprocess (default)",
    )
    where.add_argument(
        "--robot-port", metavar="PORT", help="serial port wired to the controller's robot port"
    )
    parser.add_argument(
        "--sensor-port",
        action="append",
        metavar="PORT",
        help="serial port wired to a sensor port of the controller; repeat once per sensor, in config order",
    )
    parser.add_argument("--baud", type=int, default=None, help="baud rate (default: the config's link.baud)")
    parser.add_argument(
        "--reset-command",
        metavar="CMD",
        help="with real ports: a command that presses the controller's reset (cobotguard run resets on "
        "SIGUSR1, e.g. 'ssh cell kill -USR1 PID'); without it the rig asks the operator",
    )
    parser.add_argument(
        "--config", metavar="CONFIG", default=str(DEFAULT_CONFIG), help="cell configuration (TOML)"
    )
    parser.add_argument(
        "--scenarios",
        nargs="*",
        metavar="NAME",
        default=None,
        help="scenarios to run (default: all; give none to run no scenario); `--list` shows them",
    )
    parser.add_argument(
        "--faults",
        nargs="*",
        metavar="NAME",
        default=None,
        help="faults to inject (default: all; give none to inject no fault)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and faults, then exit")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--trace-dir", metavar="DIR", help="write the rig's and the controller's traces here")
    parser.add_argument(
        "--attempts",
        type=int,
        default=1,
        metavar="N",
        help="run a failed scenario or fault again, up to N runs in all, but only after an availability "
        "failure (a stop without cause) that the machine demonstrably caused: the controller or the "
        "robot's watchdog detected a stall and stopped for it; never after a safety failure; default 1",
    )
    parser.add_argument(
        "--sensor-clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the emulated sensors' own clocks this far ahead of the controller's (negative: behind); "
        'needs sensors with clock = "own" in the cell',
    )
    parser.add_argument(
        "--sensor-drift",
        type=float,
        default=0.0,
        metavar="PPM",
        help="let the emulated sensors' own clocks drift by PPM (negative: slow), within each sensor's "
        "clock_max_drift_ppm",
    )
    parser.add_argument(
        "--robot-clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help='the emulated robot\'s clock runs this far ahead of the controller\'s (negative: behind); '
        'needs a cell with [robot] clock = "own"',
    )
    parser.add_argument(
        "--robot-drift",
        type=float,
        default=0.0,
        metavar="PPM",
        help='the emulated robot\'s clock runs fast by this many parts per million (negative: slow; '
        '-1000..1000); needs a cell with [robot] clock = "own"',
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="seconds to wait for the controller's first command (it compiles before arming)",
    )


def _list() -> int:
    from cobotguard.hil.faults import FAULTS
    from cobotguard.hil.scenarios import SCENARIOS

    print("scenarios:")
    for s in SCENARIOS:
        print(f"  {s.name:24s} {s.description}")
    print("faults:")
    for f in FAULTS:
        print(f"  {f.name:24s} {f.description}")
    return 0


def _select(kind: str, given: list[str] | None, known: list[str]) -> list[str]:
    if given is None:
        return list(known)
    unknown = [name for name in given if name not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {', '.join(unknown)}; known: {', '.join(known)}")
    return list(given)


def _check_sensor_clock(cfg: object, offset_s: float, drift_ppm: float) -> None:
    """An own clock's offset and drift need sensors on their own clock, and a drift within each limit."""
    import math

    if not (math.isfinite(offset_s) and abs(offset_s) < 9e9 and math.isfinite(drift_ppm)):
        raise CommandError("--sensor-clock-offset and --sensor-drift must be finite (offset within 9e9 s)")
    if offset_s == 0.0 and drift_ppm == 0.0:
        return
    sensors = cfg.sensors  # type: ignore[attr-defined]
    shared = [name for name, s in sensors.items() if s.clock != "own"]
    if len(shared) == len(sensors):
        raise CommandError(
            '--sensor-clock-offset/--sensor-drift need a cell whose sensors have clock = "own" '
            f"(sensors {', '.join(shared)} share the controller's clock; see docs/configuration.md)"
        )
    for name, s in sensors.items():
        if s.clock == "own" and abs(drift_ppm) > (s.clock_max_drift_ppm or 0.0):
            raise CommandError(
                f"--sensor-drift {drift_ppm} ppm is beyond sensors.{name}.clock_max_drift_ppm "
                f"({s.clock_max_drift_ppm} ppm): the cell would stop for it (the sensor_clock_drift fault "
                "tests that)"
            )


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    if args.list:
        return _list()
    from cobotguard.hil.faults import fault_names
    from cobotguard.hil.rig import RigError, RigOptions, run_rig
    from cobotguard.hil.scenarios import scenario_names

    try:
        scenarios = _select("scenario", args.scenarios, scenario_names())
        faults = _select("fault", args.faults, fault_names())
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.attempts < 1:
        raise CommandError(f"--attempts must be at least 1, got {args.attempts}")
    if args.robot_port is not None and args.sensor_port is None:
        raise CommandError("--robot-port needs --sensor-port (or use --virtual)")
    if args.reset_command is not None and args.robot_port is None:
        raise CommandError("--reset-command is for real ports (--virtual resets by itself)")
    if args.sensor_port is not None and args.robot_port is None:
        raise CommandError("--sensor-port needs --robot-port (or use --virtual)")
    if not -1000.0 <= args.robot_drift <= 1000.0:
        raise CommandError(f"--robot-drift must be within -1000..1000 ppm, got {args.robot_drift}")
    cfg = load_cell_config(args.config)
    _check_sensor_clock(cfg, args.sensor_clock_offset, args.sensor_drift)
    trace_dir = Path(args.trace_dir) if args.trace_dir else None
    if trace_dir is not None:
        try:
            trace_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"{trace_dir}: cannot create: {exc.strerror}") from None
    options = RigOptions(
        config_path=Path(args.config),
        scenarios=scenarios,
        faults=faults,
        virtual=args.robot_port is None,
        robot_port=args.robot_port,
        sensor_ports=list(args.sensor_port or []),
        baud=args.baud,
        trace_dir=trace_dir,
        startup_timeout_s=args.startup_timeout,
        attempts=args.attempts,
        reset_command=args.reset_command,
        progress=_progress,
        sensor_clock_offset_s=args.sensor_clock_offset,
        sensor_drift_ppm=args.sensor_drift,
        robot_clock_offset_s=args.robot_clock_offset,
        robot_drift_ppm=args.robot_drift,
    )
    from cobotguard.hil.rig import robot_clock_problem

    problem = robot_clock_problem(cfg, options)
    if problem is not None:
        raise CommandError(problem)
    import signal

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through run_rig, which stops the controller it started

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        report = run_rig(cfg, options)
    except RigError as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, allow_nan=False))
    else:
        print(report.table())
    return ExitCode.OK if report.passed else ExitCode.FAILED
