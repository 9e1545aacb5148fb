"""`cobotguard run` (not yet available)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    print("cobotguard run: not yet available", file=sys.stderr)
    return 2
