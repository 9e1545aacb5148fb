"""The campaign report as terminal lines, a polar map of the smallest gap per direction, and HTML.

Functions return strings or bytes; the CLI prints and writes. matplotlib (the `plots` extra) is imported
by the plot function only, through its object-oriented API, as in hil.report.render.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

NS_PER_MS = 1_000_000
VIOLATION_WORDS = {
    "contact": "contact before the robot was at rest",
    "late_stop": "stop later than T_r after the person entered S_p",
    "restart": "restart without a reset",
    "fault_late": "fault not stopped within its watchdog time",
}


def _ms(value_ns: int | None) -> str:
    return "never" if value_ns is None else f"{value_ns / NS_PER_MS:.3f} ms"


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report for the terminal."""
    runs = report["runs"]
    lines = [
        f"campaign of {report['cell']!r} (checksum {report['checksum']}), seed {report['seed']}: "
        f"{runs} approaches in {report['chunks']} chunks, {report['stopped']} stopped",
        f"patterns: {_counts(report['patterns'])}",
        f"faults injected: {_counts(report['faults'])}",
        f"faults of the catalogue not simulated here (link endpoint; see `cobotguard hil`): "
        f"{', '.join(report['faults_not_simulated'])}",
        f"first stop reasons: {_counts(report['stop_reasons'])}",
        "",
        "violations (replay one with --replay SEED:INDEX):",
    ]
    seed = report["seed"]
    for kind, count in report["violations"]["counts"].items():
        lines.append(f"  {VIOLATION_WORDS[kind]}: {count}")
    for v in report["violations"]["listed"]:
        lines.append(f"    {seed}:{v['index']}  {v['kind']}  {_violation_detail(v)}")
    uncaused = report["stops_without_cause"]
    lines.append(f"stops without cause: {uncaused['count']}")
    for u in uncaused["listed"]:
        lines.append(f"    {seed}:{u['index']}  {u['reason']} at {_ms(u['stop_ns'])}")
    q = report["min_gap_m"]
    lines += [
        "",
        f"smallest true gap to the hazard region while the robot moved (m; contact at "
        f"{report['contact_gap_m']:.3f}): min {_gap(q['min'])}, 1 % {_gap(q['p01'])}, 5 % {_gap(q['p05'])}, "
        f"median {_gap(q['median'])}",
        "  from (deg)   count      min      1 %      5 %   median",
    ]
    for b in report["min_gap_by_direction"]:
        lines.append(
            f"  {b['from_deg']:5.0f}-{b['to_deg']:<5.0f} {b['count']:7d} {_gap(b['min']):>8} "
            f"{_gap(b['p01']):>8} {_gap(b['p05']):>8} {_gap(b['median']):>8}"
        )
    lines.append(f"verdict: {report['verdict'].upper()}")
    return lines


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _violation_detail(v: dict[str, Any]) -> str:
    if v["kind"] == "contact":
        return f"reach meets the hazard at {_ms(v['contact_ns'])}, at rest {_ms(v['rest_ns'])}"
    if v["kind"] == "late_stop":
        return f"within S_p at {_ms(v['within_sp_ns'])}, stop due {_ms(v['stop_due_ns'])}, " + (
            f"commanded {_ms(v['stop_ns'])}, braking {_ms(v['brake_ns'])}"
        )
    if v["kind"] == "restart":
        return f"stopped {_ms(v['stop_ns'])}, restarted {_ms(v['restart_ns'])}"
    return f"fault at {_ms(v['fault_at_ns'])}, due {_ms(v['fault_due_ns'])}, stop {_ms(v['stop_ns'])}"


def polar_figure(report: dict[str, Any]) -> Any:
    """A polar map: per approach sector, the smallest gap (min, 1 %, median) around the hazard region."""
    from matplotlib.figure import Figure

    bins = report["min_gap_by_direction"]
    fig = Figure(figsize=(6.4, 6.4))
    ax = fig.add_subplot(projection="polar")
    width = math.radians(360.0 / len(bins))
    centres = [math.radians(b["from_deg"]) + width / 2 for b in bins]
    layers = (("median", "#9ecae1", "median"), ("p01", "#3182bd", "1 %"), ("min", "#08306b", "min"))
    for key, colour, label in layers:
        values = [b[key] if b[key] is not None else 0.0 for b in bins]
        ax.bar(centres, values, width=width * 0.9, color=colour, label=label, alpha=0.9)
    ax.set_rlabel_position(67.5)  # the gap scale between two sectors' labels, off the bars' edges
    ax.tick_params(axis="y", labelsize=7)
    for label in ax.get_yticklabels():  # readable over the bars
        label.set_bbox({"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    reach = report["contact_gap_m"]
    ring = [i * 2 * math.pi / 180 for i in range(181)]
    ax.plot(ring, [reach] * len(ring), color="#cb181d", lw=1.5, label=f"contact ({reach:.2f} m)")
    ax.set_title(
        f"smallest gap to the hazard region while the robot moved (m)\n{report['cell']}, "
        f"{report['runs']} approaches, seed {report['seed']}",
        fontsize=9,
    )
    ax.legend(loc="lower left", bbox_to_anchor=(-0.1, -0.12), fontsize=8, ncol=4)
    return fig


def to_png(report: dict[str, Any]) -> bytes:
    """The polar map as a PNG image (needs matplotlib: the `plots` extra)."""
    from cobotguard.hil.report.render import _png

    return _png(polar_figure(report))


def to_html(report: dict[str, Any]) -> str:
    """A self-contained page: the report's text and the polar map."""
    data = base64.b64encode(to_png(report)).decode()
    image = f'<img alt="smallest gap per approach direction" src="data:image/png;base64,{data}">'
    text = html.escape("\n".join(report_lines(report)))
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>cobotguard campaign</title>"
        "<style>body{font-family:sans-serif;margin:2em} pre{font-size:12px;background:#f6f6f6;"
        "padding:1em;overflow-x:auto} img{max-width:100%}</style></head><body>"
        f"<h1>cobotguard campaign</h1><p><b>{html.escape(report['verdict'].upper())}</b></p>"
        f"{image}<pre>{text}</pre></body></html>\n"
    )
