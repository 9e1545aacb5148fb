"""`cobotguard run CONFIG --robot-port PORT --sensor-port PORT`: the safety controller as its own process.

Ports are serial device names (/dev/ttyUSB0), pyserial URLs (socket://host:port, loop://) or, for tests
and embedding, `inproc://NAME` ports registered with `safety.ports.register_inprocess`. The controller
arms (configuration valid, budget safe, checksum as expected, step compiled), then sends a command every
cycle until --duration has passed or SIGINT/SIGTERM arrives; then it sends a final stop command and
flushes the trace. SIGUSR1 presses the reset input for one cycle (the operator's reset button).

Exit codes: 0 clean shutdown, 1 the loop failed while running, 2 invalid input or refused to arm.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from cobotguard.hil.cli.common import (
    CommandError,
    ExitCode,
    add_config_argument,
    load_cell_config,
    print_error,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    add_config_argument(parser)
    parser.add_argument("--robot-port", required=True, metavar="PORT", help="serial device or pyserial URL")
    parser.add_argument(
        "--sensor-port",
        required=True,
        action="append",
        metavar="PORT",
        help="serial device or pyserial URL; repeat once per sensor, in configuration order",
    )
    parser.add_argument("--trace", metavar="PATH", help="write the controller trace here")
    parser.add_argument(
        "--expect-checksum",
        metavar="C",
        help="refuse to arm unless the configuration's checksum (short or long) is C",
    )
    parser.add_argument(
        "--duration", type=float, metavar="S", help="stop after S seconds (default: until a signal)"
    )
    parser.add_argument(
        "--cpu",
        type=int,
        metavar="N",
        help="pin the loop thread to CPU N (the compiled loop: every other thread stays off it)",
    )
    parser.add_argument(
        "--loop",
        choices=("compiled", "python"),
        default="compiled",
        help="compiled: the GIL-free hard loop on the ports' file descriptors (default; needed for "
        "controller.wake_on_data); python: the plain-Python reference executor",
    )
    parser.add_argument(
        "--no-realtime",
        action="store_true",
        help="do not try SCHED_FIFO / mlockall (they are tried by default)",
    )


def run(args: argparse.Namespace) -> int:
    """Load, open ports, arm, run until the duration or a signal, shut down cleanly; returns the exit code."""
    if not hasattr(signal, "SIGUSR1"):
        return _run(args)
    original = signal.getsignal(signal.SIGUSR1)
    signal.signal(
        signal.SIGUSR1, signal.SIG_IGN
    )  # a reset pressed while we load and compile must not kill us
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGUSR1, original)


def _run(args: argparse.Namespace) -> int:
    from cobotguard.safety.compiled_controller import CompiledController
    from cobotguard.safety.executor import ArmError, Controller
    from cobotguard.safety.link_ports import PortError, open_controller_ports, open_port_descriptors
    from cobotguard.safety.realtime import keep_off_cpu

    if args.duration is not None and not args.duration > 0:
        raise CommandError(f"--duration: expected a positive number of seconds, got {args.duration}")
    cfg = load_cell_config(args.config)
    compiled = args.loop == "compiled" and not any(
        p.startswith("inproc://") for p in [args.robot_port, *args.sensor_port]
    )
    try:
        if compiled:  # descriptors for the compiled loop, port objects for the Python one
            ports: Any = open_port_descriptors(cfg, args.robot_port, args.sensor_port)
        else:
            ports = open_controller_ports(cfg, robot_port=args.robot_port, sensor_port=args.sensor_port)
    except PortError as exc:
        raise CommandError(str(exc)) from None

    try:
        common: dict[str, Any] = {
            "trace_path": args.trace,
            "expected_checksum": args.expect_checksum,
            "realtime": not args.no_realtime,
            "cpu": args.cpu,
            "producer": "cobotguard run",
        }
        if compiled:
            controller: Any = CompiledController(cfg, ports.robot_fd, ports.sensor_fds, **common)
        else:
            controller = Controller(cfg, ports.sensor_source, ports.robot_port, **common)
        if compiled and args.cpu is not None:
            keep_off_cpu(args.cpu)  # this process's other threads (trace drain) stay off the loop's CPU
        controller.arm()
    except ArmError as exc:
        ports.close()
        raise CommandError(str(exc)) from None
    except OSError as exc:  # the trace file could not be created
        ports.close()
        raise CommandError(f"cannot write trace {args.trace}: {exc.strerror}") from None

    return _run_armed(controller, ports, args)


def _run_armed(controller: Any, ports: Any, args: argparse.Namespace) -> int:
    """Run with signal handlers installed; always close (final stop, trace flushed) and restore them."""
    stopped_by: list[str] = []

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        stopped_by.append(signal.Signals(signum).name)
        controller.stop()

    def on_reset(_signum: int, _frame: FrameType | None) -> None:
        controller.press_reset()

    handled = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    previous = {s: signal.getsignal(s) for s in handled}
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_stop)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, on_reset)
    cfg = controller.cfg
    print(
        f"cobotguard run: armed '{cfg.name}' checksum {controller.checksum_short}, cycle "
        f"{controller.period_ns / 1e6:.3f} ms; robot {args.robot_port}, sensor {', '.join(args.sensor_port)}"
        + (f", trace {args.trace}" if args.trace else ""),
        flush=True,
    )
    code = ExitCode.OK
    try:
        duration_ns = int(args.duration * 1e9) if args.duration is not None else None
        controller.run(duration_ns=duration_ns)
    except Exception as exc:  # the loop itself failed: stop the robot, keep the trace, say what happened
        print_error("run", f"loop failed: {type(exc).__name__}: {exc}")
        code = ExitCode.FAILED
    finally:
        try:
            controller.close()
        finally:
            ports.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
    for warning in controller.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    st = controller.stats
    why = "duration reached" if code == ExitCode.OK else "failed"
    if stopped_by:
        why = f"stopped by {stopped_by[0]}"
    print(
        f"cobotguard run: {why} after {st.cycles} cycles: {st.overruns} overruns, {st.skipped_releases} "
        f"releases skipped, {st.link_faults} cycles with link faults, {st.frames_in} frames in, "
        f"{st.trace_dropped} trace records dropped; final stop command sent",
        flush=True,
    )
    return code
