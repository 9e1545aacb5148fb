"""Plumbing every `cobotguard` subcommand shares: exit codes, error lines, the configuration loader, options.

A subcommand's `run(args)` returns an `ExitCode`, or raises `CommandError` (`InvalidInputError` for a list of
problems); `hil.cli.main` prints it with `report_error` and exits with its code. This module stays light:
`main` imports every subcommand module to build the parser, so heavy imports wait until a loader runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cobotguard.safety.config import CellConfig


class ExitCode(IntEnum):
    """The exit status of every subcommand; the numbers are a documented contract (docs/api.md)."""

    OK = 0  # safe, identical, clean shutdown, every run passed, every deadline held
    FAILED = 1  # the subcommand's negative verdict
    INVALID_INPUT = 2  # configuration, options or files; argparse's own usage errors exit 2 as well
    TORN = 3  # report, replay: a trace was torn or unclosed; the intact records before the tear were used
    INTERRUPTED = 130  # Ctrl-C, as a shell reports a SIGINT death (128 + 2)
    # the same numbers in each subcommand's own words
    SAFE = 0
    IDENTICAL = 0
    UNSAFE = 1
    DEADLINE_MISSED = 1
    DIVERGED = 1


class CommandError(Exception):
    """Ends a subcommand: `main` prints `cobotguard SUBCOMMAND: MESSAGE` on stderr and exits with `code`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.INVALID_INPUT) -> None:
        super().__init__(message)
        self.code = code


class InvalidInputError(CommandError):
    """Invalid input found as a list of problems: one line each, then a count and the `outcome`.

    With `as_json` the problems go to stdout as `{"verdict": "invalid", "problems": [...]}` instead, for
    subcommands whose JSON result carries a verdict.
    """

    def __init__(
        self, problems: Sequence[str], outcome: str = "configuration invalid", *, as_json: bool = False
    ) -> None:
        super().__init__("\n".join(problems), ExitCode.INVALID_INPUT)
        self.problems = list(problems)
        self.outcome = outcome
        self.as_json = as_json


def print_error(command: str, message: str) -> None:
    """Print `cobotguard COMMAND: MESSAGE` on stderr: the one form of an error (or a notice about one)."""
    print(f"cobotguard {command}: {message}", file=sys.stderr)


def report_error(command: str, error: CommandError) -> ExitCode:
    """Print a subcommand's error in its form and return the code to exit with."""
    if isinstance(error, InvalidInputError):
        if error.as_json:
            print(json.dumps({"verdict": "invalid", "problems": error.problems}, indent=2))
        else:
            # each problem names its file and key first ("cell.toml: robot.max_speed: ..."), like a compiler
            for line in error.problems:
                print(line, file=sys.stderr)
            print_error(command, f"{len(error.problems)} problem(s); {error.outcome}")
    else:
        print_error(command, str(error))
    return error.code


def load_cell_config(path: str, *, as_json: bool = False) -> CellConfig:
    """Read and validate a cell configuration; raises InvalidInputError listing every problem (exit 2)."""
    from cobotguard.safety.config import ConfigError
    from cobotguard.safety.config_load import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise InvalidInputError(exc.problems, as_json=as_json) from None


def select_sensor(cfg: CellConfig, config_path: str, name: str | None) -> str:
    """The sensor chosen with --sensor, or the only configured one; raises CommandError otherwise."""
    names = list(cfg.sensors)
    if name is None:
        if len(names) != 1:
            listed = ", ".join(names)
            raise CommandError(
                f"{config_path}: {len(names)} sensors configured ({listed}); choose one with --sensor"
            )
        return names[0]
    if name not in cfg.sensors:
        raise CommandError(
            f"{config_path}: no sensor {name!r}; configured sensors: {', '.join(names) or 'none'}"
        )
    return name


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Register the positional CONFIG of the subcommands that need a cell configuration."""
    parser.add_argument("config", metavar="CONFIG", help="cell configuration (TOML)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Register --json: the result as one JSON object on stdout."""
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
