"""`cobotguard check CONFIG [--json] [--expect-checksum C] [--capability REPORT.json ...] [--plot FILE]
[--plot-camera SENSOR FILE [--image PHOTO]]`: validate a cell and print its budget.

With --plot, the cell is drawn too (cobotguard.hil.report.cellplot): floor plan, coverage, S_p rings and the
T_r stages, to PNG or SVG by the file's suffix (needs the `[plots]` extra).

With `--capability`, each report (written by `cobotguard capability`) must back its sensor's declared
`min_person_height_px`, measured with that sensor's image size, min_score and tiling; otherwise unsafe.
Exit codes: 0 = safe, 1 = unsafe (the reasons are printed), 2 = invalid input (one line per problem).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from cobotguard.hil.cli.common import (
    CommandError,
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
        "--plot",
        metavar="FILE",
        type=Path,
        help="also draw the cell: floor plan with zones, coverage and S_p rings, and the T_r stages "
        "(.png or .svg; needs matplotlib, the [plots] extra)",
    )
    parser.add_argument(
        "--plot-camera",
        nargs=2,
        metavar=("SENSOR", "FILE"),
        help="also draw what one camera sees: zones, hazard and S_p ring projected into its image, and the "
        "smallest protected person at the far edge of its coverage (.png or .svg)",
    )
    parser.add_argument(
        "--image",
        metavar="PHOTO",
        type=Path,
        help="with --plot-camera: draw over this photo taken from that camera (the camera's image size)",
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
    if args.plot is not None:
        _check_plot_target(args.plot)
    if args.plot_camera is not None:
        sensor_name, camera_file = args.plot_camera[0], Path(args.plot_camera[1])
        if sensor_name not in cfg.sensors:
            raise CommandError(
                f"--plot-camera: no sensor {sensor_name!r}; the cell has {', '.join(cfg.sensors)}"
            )
        _check_plot_target(camera_file)
    if args.image is not None and args.plot_camera is None:
        raise CommandError("--image goes with --plot-camera SENSOR FILE")
    if args.image is not None and not args.image.is_file():
        raise CommandError(f"--image: {args.image} is not a file")
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
        out["coverage"] = _coverage(cfg)
        print(json.dumps(out, indent=2))
    else:
        print(_table(cfg.name, str(args.config), report, short, long, verdict, reasons))
    if args.plot is not None:
        from cobotguard.hil.report.cellplot import cell_drawing, render_floor_plan

        render_floor_plan(cell_drawing(cfg), args.plot)
    if args.plot_camera is not None:
        from cobotguard.hil.report.cellplot import camera_view, render_camera_view

        try:
            render_camera_view(camera_view(cfg, sensor_name), camera_file, args.image)
        except ValueError as exc:
            raise CommandError(f"--image: {exc}") from None
    return ExitCode.SAFE if verdict == "safe" else ExitCode.UNSAFE


def _check_plot_target(path: Path) -> None:
    """Refuse a --plot target we cannot write before any work is done (exit 2)."""
    from cobotguard.hil.report.cellplot import plot_suffix

    try:
        plot_suffix(path)
        import matplotlib  # noqa: F401
    except ValueError as exc:
        raise CommandError(f"--plot: {exc}") from None
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'cobotguard[plots]'") from None
    if not path.parent.is_dir():
        raise CommandError(f"--plot: {path.parent} is not a directory")


def _coverage(cfg: CellConfig) -> dict[str, list[list[list[list[float]]]]]:
    """Each sensor's covered floor (the polygons the floor plan draws), as lists of rings of [x, y]."""
    from cobotguard.hil.report.cellplot import polygon_coords
    from cobotguard.safety.camera import CameraModelError
    from cobotguard.safety.config_rules import covered_area

    out = {}
    for name, sensor in cfg.sensors.items():
        try:
            out[name] = polygon_coords(covered_area(sensor))
        except CameraModelError:
            out[name] = []
    return out


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
