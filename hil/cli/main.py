"""Entry point of the `cobotguard` command; subcommand modules are imported only when chosen."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cobotguard.hil.cli.common import CommandError, ExitCode, print_error, report_error

# name -> (module, one-line help). Modules import their heavy dependencies inside run().
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("cobotguard.hil.cli.check", "validate a cell configuration and print its latency budget"),
    "run": ("cobotguard.hil.cli.run", "run the safety controller on serial ports"),
    "hil": ("cobotguard.hil.cli.hil", "hardware-in-the-loop rig: play robot and sensor against a controller"),
    "report": ("cobotguard.hil.cli.report", "timing report from trace files"),
    "demo": ("cobotguard.hil.cli.demo", "the whole chain on embedded defaults, no hardware needed"),
    "detect": ("cobotguard.hil.cli.detect", "run the person detector on image files"),
    "capability": (
        "cobotguard.hil.cli.capability",
        "measure a sensor's detection capability on a recording with ground truth",
    ),
    "replay": ("cobotguard.hil.cli.replay", "re-run the safety step on a recorded trace"),
    "campaign": (
        "cobotguard.hil.cli.campaign",
        "validate a cell over many randomized approaches and faults on the simulated clock",
    ),
    "calibrate": (
        "cobotguard.hil.cli.calibrate",
        "measure step latencies on this machine, propose worst_step_ms",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="cobotguard",
        description="Safety controller for collaborative robots (not a certified safety device).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the chosen subcommand and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except CommandError as exc:
        return report_error(args.command, exc)
    except KeyboardInterrupt:
        print_error(args.command, "interrupted")
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
