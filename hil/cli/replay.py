"""`cobotguard replay TRACE`: re-run the safety step on a recorded trace and report the first divergence.

Exit codes: 0 identical, 1 divergence, 2 invalid input (unreadable or non-replayable trace), 3 a torn or
unclosed trace whose intact prefix was replayed (with --allow-incomplete: that prefix's verdict, 0 or 1).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cobotguard.hil.cli.common import CommandError, ExitCode, add_json_option, print_error

_ENUM_FIELDS = {
    "command.kind": "CommandKind",
    "command.reason": "Reason",
    "command.stop_category": "StopCategory",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    parser.add_argument(
        "trace", metavar="TRACE", help="trace file written by `cobotguard run` or the library"
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="accept a torn or unclosed trace: exit with the verdict of the cycles before the tear "
        "instead of 3",
    )
    add_json_option(parser)


def _named(field: str, value: Any) -> str:
    """A value with its enum name where the field is an enum."""
    from cobotguard.safety import reasons

    enum_name = _ENUM_FIELDS.get(field)
    if enum_name is not None and isinstance(value, int):
        enum = getattr(reasons, enum_name)
        try:
            return f"{value} ({enum(value).name})"
        except ValueError:
            return f"{value} (not a {enum_name})"
    return repr(value)


def run(args: argparse.Namespace) -> int:
    """Replay the trace; returns the exit code."""
    from cobotguard.safety.replay import ReplayError, replay
    from cobotguard.safety.trace import TraceError, read_trace

    try:
        trace = read_trace(args.trace, allow_incomplete=True)
        tear = trace.tear
        if tear is not None:
            # the cycles before the tear are the evidence of what happened: replay them, never as whole
            print_error("replay", f"{args.trace}: {tear.describe()}; replaying that prefix")
        result = replay(trace)
    except (TraceError, ReplayError) as exc:
        raise CommandError(str(exc)) from None
    d = result.divergence
    if args.json:
        out: dict[str, Any] = {"trace": args.trace, "cycles_replayed": result.cycles, "identical": d is None}
        out["tear"] = None if tear is None else tear.as_json()
        if d is not None:
            out["divergence"] = {
                "index": d.index,
                "cycle": d.cycle,
                "field": d.field,
                "recorded": d.recorded,
                "replayed": d.replayed,
            }
        out["notes"] = list(result.notes)
        print(json.dumps(out))
    else:
        for note in result.notes:
            print(f"note: {note}")
        if d is None:
            print(f"{args.trace}: {result.cycles} cycles replayed, identical")
        else:
            print(
                f"{args.trace}: first divergence at cycle {d.cycle} (record {d.index}), {d.field}: "
                f"recorded {_named(d.field, d.recorded)}, replayed {_named(d.field, d.replayed)}"
            )
    if tear is not None and not args.allow_incomplete:
        return ExitCode.TORN
    return ExitCode.IDENTICAL if d is None else ExitCode.DIVERGED
