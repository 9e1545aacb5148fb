"""`cobotguard report TRACE...`: per-stage latencies, deadline misses and a worst-case estimate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cobotguard.hil.cli.common import CommandError, ExitCode, add_json_option, print_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    parser.add_argument("traces", nargs="+", metavar="TRACE", help="trace files (several: side by side)")
    add_json_option(parser)
    parser.add_argument("--html", metavar="PATH", help="also write an HTML report with plots")
    parser.add_argument("--png", metavar="PATH", help="also write the plots as a PNG image")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when any deadline was missed")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless every trace is full evidence of a pass: every deadline held, no record lost, "
        "nothing it could not judge (a torn trace exits 3 either way)",
    )
    parser.add_argument(
        "--no-fit", action="store_true", help="skip the extreme value fit (faster on very large traces)"
    )


def run(args: argparse.Namespace) -> int:
    """Read every trace, print the report, write the requested files; returns the exit code."""
    from cobotguard.hil.report.analysis import analyze
    from cobotguard.hil.report.render import terminal_table, to_json
    from cobotguard.hil.report.stages import stages_from_trace
    from cobotguard.safety.trace import TraceError, read_trace

    traces = []
    failed = torn = False
    for path in args.traces:
        try:
            trace = read_trace(path, allow_incomplete=True)
        except TraceError as exc:
            print_error("report", str(exc))  # every unreadable trace is named before giving up
            failed = True
            continue
        if trace.tear is not None:
            # the records before the tear are the evidence of what happened: report them, never as whole
            print_error("report", f"{path}: {trace.tear.describe()}; reporting that prefix")
            torn = True
        traces.append(stages_from_trace(trace))
    if failed:
        return ExitCode.INVALID_INPUT
    results = analyze(traces, fit=not args.no_fit)
    if args.json:
        print(json.dumps(to_json(results), indent=2, allow_nan=False, default=_json_default))
    else:
        print(terminal_table(results))
    _write_files(results, args.html, args.png)
    return _exit_code(results, torn=torn, fail_on_miss=args.fail_on_miss, strict=args.strict)


def _exit_code(results: list, *, torn: bool, fail_on_miss: bool, strict: bool) -> ExitCode:
    """TORN for any torn trace, else the verdict the options ask for (docs/trace.md, "Torn traces")."""
    if torn:
        return ExitCode.TORN
    if (fail_on_miss or strict) and any(r.deadline_misses for r in results):
        return ExitCode.DEADLINE_MISSED
    if strict and any(any(r.trace.dropped.values()) or r.trace.notes for r in results):
        return ExitCode.FAILED
    return ExitCode.OK


def _json_default(value: object) -> object:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_files(results: list, html_path: str | None, png_path: str | None) -> None:
    """Write the HTML and PNG reports; raises CommandError when one cannot be written."""
    if not html_path and not png_path:
        return
    from cobotguard.hil.report.render import to_html, to_png

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plots = False
        if png_path:
            raise CommandError("--png needs matplotlib: pip install 'cobotguard[plots]'") from None
        print_error("report", "no matplotlib, so the HTML report has no plots")
    else:
        plots = True
    try:
        if png_path:
            Path(png_path).write_bytes(to_png(results))
            print(f"wrote {png_path}", file=sys.stderr)
        if html_path:
            Path(html_path).write_text(to_html(results, with_plots=plots), encoding="utf-8")
            print(f"wrote {html_path}", file=sys.stderr)
    except OSError as exc:
        raise CommandError(f"cannot write {exc.filename}: {exc.strerror}") from None
