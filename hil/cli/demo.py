"""`cobotguard demo`: the whole chain on the embedded default cell, then the timing report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cobotguard.hil.cli.common import CommandError, ExitCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    parser.add_argument(
        "--duration", type=float, default=20.0, metavar="S", help="seconds the camera runs (default 20)"
    )
    parser.add_argument(
        "--out", metavar="DIR", default="cobotguard-demo", help="folder for the trace and the report files"
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the HTML and PNG report (no matplotlib)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 only when every deadline held."""
    from cobotguard.hil.demo import DemoError, DemoOptions, Status, format_status, run_demo
    from cobotguard.hil.report.render import terminal_table

    live = sys.stdout.isatty()
    last_printed = [0.0]

    def on_status(status: Status) -> None:
        line = format_status(status)
        if live:
            print("\r" + line, end="", flush=True)
        elif status.t_s - last_printed[0] >= 2.0:  # a log, not a terminal: a line every 2 s
            last_printed[0] = status.t_s
            print(line, flush=True)

    def on_note(text: str) -> None:
        if live:
            print("\r\033[K", end="")
        print(f"cobotguard demo: {text}", flush=True)

    options = DemoOptions(duration_s=args.duration, out_dir=Path(args.out), plots=not args.no_plots)
    try:
        result = run_demo(options, on_status, on_note)
    except DemoError as exc:
        if live:
            print()
        raise CommandError(str(exc)) from None
    if live:
        print()
    print()
    print(terminal_table(result.results))
    print()
    stats = result.controller_stats
    if stats:
        print(
            f"controller: {stats.get('cycles', 0)} cycles, {stats.get('overruns', 0)} overruns, "
            f"{stats.get('skipped_releases', 0)} skipped releases; camera: {result.frames_published} frames; "
            f"operator resets: {result.resets}"
        )
    if result.link_errors:
        print(f"link errors latched by the controller ({len(result.link_errors)}, each cleared by a reset):")
        for line in result.link_errors:
            print(f"  {line}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"trace: {result.trace_path}")
    for path in result.report_files:
        print(f"report: {path}")
    if result.deadline_held:
        print("every deadline held")
        return ExitCode.OK
    print("DEADLINE MISSED: see the table above", file=sys.stderr)
    return ExitCode.DEADLINE_MISSED
