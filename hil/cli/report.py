"""`cobotguard report TRACE...`: per-stage latencies, deadline misses and a worst-case estimate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_INVALID_INPUT = 2
EXIT_DEADLINE_MISSED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    parser.add_argument("traces", nargs="+", metavar="TRACE", help="trace files (several: side by side)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument("--html", metavar="PATH", help="also write an HTML report with plots")
    parser.add_argument("--png", metavar="PATH", help="also write the plots as a PNG image")
    parser.add_argument(
        "--fail-on-miss",
        action="store_true",
        help="exit 1 when any deadline was missed (or a trace is incomplete)",
    )
    parser.add_argument(
        "--no-fit", action="store_true", help="skip the extreme value fit (faster on very large traces)"
    )


def run(args: argparse.Namespace) -> int:
    """Read every trace, print the report, write the requested files; returns the exit code."""
    from hil.report.analysis import analyze
    from hil.report.render import terminal_table, to_json
    from hil.report.stages import stages_from_trace
    from safety.trace import TraceError, read_trace

    traces = []
    failed = False
    for path in args.traces:
        try:
            traces.append(stages_from_trace(read_trace(path)))
        except TraceError as exc:
            print(f"cobotguard report: {exc}", file=sys.stderr)
            failed = True
    if failed:
        return EXIT_INVALID_INPUT
    results = analyze(traces, fit=not args.no_fit)
    if args.json:
        print(json.dumps(to_json(results), indent=2, allow_nan=False, default=_json_default))
    else:
        print(terminal_table(results))
    code = _write_files(results, args.html, args.png)
    if code:
        return code
    if args.fail_on_miss and not all(r.deadline_held for r in results):
        return EXIT_DEADLINE_MISSED
    return 0


def _json_default(value: object) -> object:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_files(results: list, html_path: str | None, png_path: str | None) -> int:
    """Write the HTML and PNG reports; returns an exit code (0 when all went well)."""
    if not html_path and not png_path:
        return 0
    from hil.report.render import to_html, to_png

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plots = False
        if png_path:
            print(
                "cobotguard report: --png needs matplotlib: pip install 'cobotguard[plots]'", file=sys.stderr
            )
            return EXIT_INVALID_INPUT
        print("cobotguard report: no matplotlib, so the HTML report has no plots", file=sys.stderr)
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
        print(f"cobotguard report: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    return 0
