"""`cobotguard check CONFIG [--json] [--expect-checksum C] [--capability REPORT.json ...]`: validate a cell
and print its budget.

With `--capability`, each report (written by `cobotguard capability`) must back its sensor's declared
`min_person_height_px`, measured with that sensor's image size, min_score and tiling; otherwise unsafe.
Exit codes: 0 = safe, 1 = unsafe (the reasons are printed), 2 = invalid input (one line per problem).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from cobotguard.hil.cli.common import (
    ExitCode,
    InvalidInputError,
    add_config_argument,
    add_json_option,
    load_cell_config,
)

if TYPE_CHECKING:
    from cobotguard.safety.budget import BudgetReport
    from cobotguard.safety.config import CellConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    add_config_argument(parser)
    add_json_option(parser)
    parser.add_argument(
        "--expect-checksum",
        metavar="C",
        help="fail (exit 1) unless the configuration's checksum (short or long) is C",
    )
    parser.add_argument(
        "--capability",
        action="append",
        default=[],
        metavar="REPORT.json",
        help="a `cobotguard capability` report that must back its sensor's min_person_height_px "
        "(repeat for several sensors)",
    )


def run(args: argparse.Namespace) -> int:
    """Validate, evaluate and print; returns the exit code."""
    from cobotguard.safety.budget import evaluate
    from cobotguard.safety.checksum import checksum_matches, config_checksum

    cfg = load_cell_config(args.config, as_json=args.json)
    report = evaluate(cfg)
    short, long = config_checksum(cfg)
    reasons = list(report.reasons)
    verdict = report.verdict
    if args.expect_checksum is not None and not checksum_matches(cfg, args.expect_checksum):
        reasons.insert(0, f"checksum {short} ({long}) differs from the expected {args.expect_checksum}")
        verdict = "unsafe"
    capability = _capability_reasons(cfg, args.capability, args.json)
    if capability:
        reasons += capability
        verdict = "unsafe"
    if args.json:
        out = report.to_dict()
        out.update(checksum=short, checksum_sha256=long, verdict=verdict, reasons=reasons)
        out["config"] = str(args.config)
        print(json.dumps(out, indent=2))
    else:
        print(_table(cfg.name, str(args.config), report, short, long, verdict, reasons))
    return ExitCode.SAFE if verdict == "safe" else ExitCode.UNSAFE


def _capability_reasons(cfg: CellConfig, paths: list[str], as_json: bool) -> list[str]:
    """Why the given capability reports do not back the cell (exit 2 when one cannot be read)."""
    from cobotguard.hil.capability.report import ReportError, load_report, report_problems

    reasons: list[str] = []
    unreadable: list[str] = []
    for path in paths:
        try:
            report = load_report(path)
        except ReportError as exc:
            unreadable.append(str(exc))
            continue
        reasons += report_problems(cfg, report, f"capability {path}")
    if unreadable:
        raise InvalidInputError(unreadable, "capability report invalid", as_json=as_json)
    return reasons


def _fmt(value: float | None, unit: str) -> str:
    """A value with its unit; ms with three decimals, metres with three, speeds with four."""
    if value is None:
        return "-"
    digits = {"ms": 3, "m": 3, "m/s": 4}.get(unit, 4)
    return f"{value:.{digits}f} {unit}"


def _table(
    name: str, path: str, report: BudgetReport, short: str, long: str, verdict: str, reasons: list[str]
) -> str:
    """The human-readable budget: every term, its value and source; zones; speed limit; verdict."""
    lines = [f"cell: {name}", f"file: {path}", "", f"{'term':<20} {'value':>14}  meaning  [source]"]
    lines.append("-" * 100)
    for term in report.terms:
        lines.append(
            f"{term.symbol:<20} {_fmt(term.value, term.unit):>14}  {term.description}  [{term.source}]"
        )
    lines += ["", f"{'zone':<20} {'type':<11} {'distance':>10} {'required':>10} {'margin':>10}  note"]
    lines.append("-" * 100)
    for z in report.zones:
        lines.append(
            f"{z.name:<20} {z.type:<11} {_fmt(z.distance_m, 'm'):>10} {_fmt(z.required_m, 'm'):>10} "
            f"{_fmt(z.margin_m, 'm'):>10}  {z.note}".rstrip()
        )
    if report.coverage_margin_m is not None:
        lines.append(
            f"{'(separation)':<20} {'coverage':<11} {'':>10} {_fmt(report.protective_separation_m, 'm'):>10} "
            f"{_fmt(report.coverage_margin_m, 'm'):>10}  sensed reach around the hazard region - S_p"
        )
    lines += [
        "",
        f"reaction time T_r            {report.reaction_time_ns / 1e6:.3f} ms",
        f"protective separation S_p    {report.protective_separation_m:.3f} m (ISO/TS 15066, at "
        f"{report.max_speed_mps} m/s)",
        f"static zone distance S       {report.zone_separation_m:.3f} m (ISO 13855)",
        f"max safe robot speed         {report.max_safe_robot_speed_mps:.4f} m/s "
        f"(configured max {report.max_speed_mps} m/s)",
        f"checksum                     {short}  (sha256 {long})",
        f"verdict                      {verdict.upper()}",
    ]
    lines += [f"  reason: {r}" for r in reasons]
    return "\n".join(lines)
