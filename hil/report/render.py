"""Rendering the report: a terminal table, a JSON document, and plots as PNG or a self-contained HTML page.

Functions return strings or bytes; printing and writing files is the CLI's job. matplotlib is imported
only by the plot functions (the optional `plots` extra), through its object-oriented API so that no global
backend is switched.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from cobotguard.hil.report.analysis import MIN_SAMPLES_FOR_FIT, StageResult, TraceResult
from cobotguard.hil.report.stats import EVIDENCE_NOTE, QUANTILES

NS_PER_MS = 1_000_000


def _ms(value_ns: float | int | None) -> str:
    return "-" if value_ns is None else f"{value_ns / NS_PER_MS:.3f}"


def _probability(p: float) -> str:
    # below 1e-15 the number says only that the model's tail is light; print no false precision
    return "< 1e-15" if p < 1e-15 else f"{p:.2g}"


def _label(index: int, count: int) -> str:
    return f"[{index + 1}] " if count > 1 else ""


def trace_heading(result: TraceResult, index: int = 0, count: int = 1) -> list[str]:
    """Lines describing one trace: file, producer, configuration checksum, budget, counts."""
    t = result.trace
    h = t.header
    lines = [
        f"{_label(index, count)}{t.path}",
        f"    producer {h.get('producer', '?')}, config {h.get('config_name', '?')} "
        f"checksum {t.checksum} ({h.get('config_checksum_long', '?')})",
        f"    reaction time T_r {_ms(h.get('reaction_time_ns'))} ms, "
        f"cycle period {_ms(h.get('cycle_period_ns'))} ms",
        f"    {t.cycles} cycles, {t.frames} frames ({t.frames_missed} missed), {t.stops} person stops, "
        f"{t.overruns} cycles flagged overrun",
    ]
    lost = {k: v for k, v in t.dropped.items() if v}
    if lost:
        lines.append(f"    RECORDS LOST to full trace buffers: {lost}")
    for note in t.notes:
        lines.append(f"    NOTE: {note}")
    if t.tear is not None:
        lines.append(f"    TORN: {t.tear.describe()}; the report covers that intact prefix only")
    elif not t.complete:
        lines.append("    INCOMPLETE: the trace was not closed cleanly; statistics cover what was read")
    return lines


def _stage_order(results: Sequence[TraceResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        for s in r.stages:
            if s.stage.name not in names:
                names.append(s.stage.name)
    return names


def _find(result: TraceResult, name: str) -> StageResult | None:
    return next((s for s in result.stages if s.stage.name == name), None)


def terminal_table(results: Sequence[TraceResult]) -> str:
    """The report as text: per trace a heading, then one row per stage (per trace when comparing)."""
    count = len(results)
    out: list[str] = []
    for i, r in enumerate(results):
        out.extend(trace_heading(r, i, count))
    out.append("")
    columns = ["stage", "n", "min", *(name for name, _ in QUANTILES), "max", "deadline", "misses"]
    rows: list[list[str]] = []
    for name in _stage_order(results):
        for i, r in enumerate(results):
            s = _find(r, name)
            if s is None:
                continue
            summary = s.summary
            quantiles = [
                _ms(summary.quantiles_ns[q]) + ("" if summary.resolved(q) else "*") for q, _ in QUANTILES
            ]
            label = name if i == 0 or count == 1 else ""
            if count > 1:
                label = f"{label:<44}[{i + 1}]" if label else f"{'':<44}[{i + 1}]"
            filled = f" (+{s.stage.omitted} skipped)" if s.stage.omitted else ""
            rows.append(
                [
                    label,
                    f"{summary.count}{filled}",
                    _ms(summary.min_ns),
                    *quantiles,
                    _ms(summary.max_ns),
                    _ms(s.stage.deadline_ns),
                    "-" if s.misses is None else str(s.misses),
                ]
            )
    widths = [max(len(c), *(len(row[j]) for row in rows)) if rows else len(c) for j, c in enumerate(columns)]
    out.append("latency in ms; * = fewer samples than the quantile needs (about the maximum)")
    out.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(columns)))
    for row in rows:
        out.append("  ".join(v.ljust(widths[j]) if j == 0 else v.rjust(widths[j]) for j, v in enumerate(row)))
    out.append("")
    out.extend(histogram_lines(results))
    out.extend(worst_case_lines(results))
    out.append("")
    for i, r in enumerate(results):
        verdict = "every deadline held" if r.deadline_held else f"{r.deadline_misses} DEADLINE MISSES"
        if not r.trace.complete:
            verdict += " (trace incomplete)"
        out.append(f"{_label(i, count)}{r.trace.path}: {verdict}")
    return "\n".join(out)


TEXT_HISTOGRAM_STAGES = ("end to end: exposure -> command written", "loop: scheduled -> command written")
BAR_WIDTH = 40


def histogram_lines(results: Sequence[TraceResult], bins: int = 10) -> list[str]:
    """Text histograms (about `bins` log-spaced bins, like cyclictest's) of the end-to-end and loop stages."""
    from cobotguard.hil.report.stats import histogram

    lines: list[str] = []
    count = len(results)
    for name in TEXT_HISTOGRAM_STAGES:
        for i, r in enumerate(results):
            s = _find(r, name)
            if s is None:
                continue
            low, high = max(1, s.summary.min_ns), max(2, s.summary.max_ns)
            decades = max(np.log10(high) - np.log10(low), 1e-3)
            h = histogram(s.stage.latencies_ns, bins_per_decade=max(1, int(np.ceil(bins / decades))))
            top = max(int(h.counts.max()), 1)
            deadline = s.stage.deadline_ns
            lines.append(f"histogram {_label(i, count)}{name} (ms; count; | = deadline bin)")
            for lo, hi, n in zip(h.edges_ns[:-1], h.edges_ns[1:], h.counts, strict=True):
                mark = "|" if deadline is not None and lo <= deadline < hi else " "
                bar = "#" * (int(np.ceil(BAR_WIDTH * n / top)) if n else 0)
                lines.append(f"  {_ms(int(lo)):>9} - {_ms(int(hi)):>9} {mark} {int(n):>7} {bar}")
            if deadline is not None and deadline >= int(h.edges_ns[-1]):
                lines.append(f"  deadline {_ms(deadline)} ms: above every sample")
            lines.append("")
    return lines


def worst_case_lines(results: Sequence[TraceResult]) -> list[str]:
    """The extreme value estimates, labelled as evidence, not proof."""
    lines = [f"worst-case estimate ({EVIDENCE_NOTE}):"]
    any_fit = False
    count = len(results)
    for i, r in enumerate(results):
        for s in r.stages:
            w = s.worst_case
            if w is None:
                continue
            any_fit = True
            tests = ", ".join(f"{t.test} ({t.distribution}) p={t.pvalue:.3g}" for t in w.tests)
            levels = ", ".join(f"p={p:g}: {_ms(v)} ms" for p, v in w.return_levels_ns.items())
            exceed = ""
            if w.deadline_exceedance_per_sample is not None:
                exceed = f"; P(one sample > deadline) ~ {_probability(w.deadline_exceedance_per_sample)}"
            lines.append(
                f"  {_label(i, count)}{s.stage.name}: {w.model}, xi={w.gev_shape_xi:+.3f}, "
                f"{w.n_blocks} blocks of {w.block_size}; {tests}"
            )
            if w.usable:
                lines.append(f"      latency exceeded per sample with {levels}{exceed}")
            elif w.poor_fit:
                lines.append(
                    f"      NO ESTIMATE: the {w.model} model is rejected at 5 % and gives no evidence here "
                    "(the maxima are not extreme-value distributed: see the histogram and the maximum)"
                )
            else:
                lines.append(
                    "      NO ESTIMATE: the fitted tail is too heavy to have a mean (xi >= 1); the sample "
                    "holds rare stalls that a tail model cannot bound"
                )
    if not any_fit:
        lines.append(
            f"  (no stage has enough samples for a fit: at least {MIN_SAMPLES_FOR_FIT}, and block maxima "
            "that take more than a few values)"
        )
    return lines


def _summary_json(s: StageResult) -> dict[str, Any]:
    summary = s.summary
    out: dict[str, Any] = {
        "name": s.stage.name,
        "count": summary.count,
        "omitted_filled": s.stage.omitted,
        "min_ns": summary.min_ns,
        "mean_ns": summary.mean_ns,
    }
    for name, _ in QUANTILES:
        key = name.replace(".", "_")
        out[f"{key}_ns"] = summary.quantiles_ns[name]
        out[f"{key}_resolved"] = summary.resolved(name)
    out.update(
        {
            "max_ns": summary.max_ns,
            "deadline_ns": s.stage.deadline_ns,
            "deadline_source": s.stage.deadline_source or None,
            "misses": s.misses,
            "histogram": {
                "edges_ns": s.histogram.edges_ns.tolist(),
                "counts": s.histogram.counts.tolist(),
            },
            "worst_case": None,
        }
    )
    w = s.worst_case
    if w is not None:
        out["worst_case"] = {
            "note": w.note,
            "model": w.model,
            "block_size": w.block_size,
            "blocks": w.n_blocks,
            "gev": {"xi": w.gev_shape_xi, "loc_ns": w.gev_loc_ns, "scale_ns": w.gev_scale_ns},
            "gumbel": {"loc_ns": w.gumbel_loc_ns, "scale_ns": w.gumbel_scale_ns},
            "goodness_of_fit": [
                {
                    "test": t.test,
                    "distribution": t.distribution,
                    "statistic": t.statistic,
                    "pvalue": t.pvalue,
                    "note": t.note,
                }
                for t in w.tests
            ],
            "return_levels": [
                {"exceedance_per_sample": p, "latency_ns": v} for p, v in w.return_levels_ns.items()
            ],
            "deadline_exceedance_per_sample": w.deadline_exceedance_per_sample,
            "poor_fit": w.poor_fit,
            "usable": w.usable,
        }
    return out


def to_json(results: Sequence[TraceResult]) -> dict[str, Any]:
    """The report as a JSON-serialisable document."""
    traces = []
    for r in results:
        t = r.trace
        h = t.header
        traces.append(
            {
                "path": t.path,
                "producer": h.get("producer"),
                "config_name": h.get("config_name"),
                "checksum": h.get("config_checksum"),
                "checksum_long": h.get("config_checksum_long"),
                "reaction_time_ns": h.get("reaction_time_ns"),
                "cycle_period_ns": h.get("cycle_period_ns"),
                "complete": t.complete,
                "tear": None if t.tear is None else t.tear.as_json(),
                "cycles": t.cycles,
                "frames": t.frames,
                "frames_missed": t.frames_missed,
                "person_stops": t.stops,
                "overruns": t.overruns,
                "dropped": t.dropped,
                "notes": t.notes,
                "deadline_misses": r.deadline_misses,
                "deadline_held": r.deadline_held,
                "stages": [_summary_json(s) for s in r.stages],
            }
        )
    return _finite(
        {
            "traces": traces,
            "deadline_held": all(r.deadline_held for r in results),
            "worst_case_note": EVIDENCE_NOTE,
        }
    )


def _finite(value: Any) -> Any:
    """The document with plain Python numbers, and null for any NaN or infinity (strict JSON has neither)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ---- plots (matplotlib, imported lazily) ----


def _figure(results: Sequence[TraceResult]) -> Any:
    """One figure: a latency histogram per stage (traces overlaid), then exceedance curves."""
    from matplotlib.figure import Figure

    names = _stage_order(results)
    fitted = [
        n for n in names if any((s := _find(r, n)) and s.worst_case and s.worst_case.usable for r in results)
    ]
    cols = 3
    hist_rows = max(1, -(-len(names) // cols))
    tail_rows = -(-len(fitted) // cols)
    fig = Figure(figsize=(5.0 * cols, 3.2 * (hist_rows + tail_rows)))
    # a fixed layout: constrained layout costs seconds of tick measurement on a busy 2-core machine
    grid = fig.add_gridspec(
        hist_rows + tail_rows, cols, left=0.05, right=0.98, bottom=0.06, top=0.93, hspace=0.55, wspace=0.25
    )
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for n_index, name in enumerate(names):
        ax = fig.add_subplot(grid[n_index // cols, n_index % cols])
        for i, r in enumerate(results):
            s = _find(r, name)
            if s is None:
                continue
            edges_ms = s.histogram.edges_ns / NS_PER_MS
            ax.stairs(
                s.histogram.counts,
                edges_ms,
                color=colors[i % len(colors)],
                label=f"[{i + 1}] n={s.summary.count}",
            )
            if s.stage.deadline_ns is not None:
                ax.axvline(s.stage.deadline_ns / NS_PER_MS, color="red", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("latency (ms)", fontsize=8)
        ax.set_ylabel("count", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for f_index, name in enumerate(fitted):
        ax = fig.add_subplot(grid[hist_rows + f_index // cols, f_index % cols])
        for i, r in enumerate(results):
            s = _find(r, name)
            if s is None or s.worst_case is None or not s.worst_case.usable:
                continue
            color = colors[i % len(colors)]
            values = np.sort(s.stage.latencies_ns) / NS_PER_MS
            empirical = 1.0 - np.arange(values.size) / values.size
            # a long trace: every point of the tail, evenly spaced points of the body
            keep = np.unique(
                np.concatenate(
                    [
                        np.linspace(0, values.size - 1, 2000).astype(np.int64),
                        np.arange(max(0, values.size - 2000), values.size),
                    ]
                )
            )
            ax.step(values[keep], empirical[keep], where="post", color=color, label=f"[{i + 1}] measured")
            w = s.worst_case
            # the curve only as far as the data and the deadline make it worth reading
            limit = 10 * max(int(s.summary.max_ns), s.stage.deadline_ns or 0)
            shown = w.curve_ns <= limit
            ax.plot(
                w.curve_ns[shown] / NS_PER_MS,
                w.curve_probability[shown],
                color=color,
                linestyle=":",
                label=f"[{i + 1}] {w.model} fit",
            )
            if s.stage.deadline_ns is not None:
                ax.axvline(s.stage.deadline_ns / NS_PER_MS, color="red", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()
        ax.set_ylim(1e-10, 1.5)
        ax.set_title(f"exceedance: {name}", fontsize=9)
        ax.set_xlabel("latency (ms)", fontsize=8)
        ax.set_ylabel("P(one sample > latency)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle("cobotguard timing report (fits are evidence, not proof)", fontsize=11)
    return fig


def budget_figure(results: Sequence[TraceResult]) -> Any:
    """Declared beside measured: per stage with a deadline, the budget's term next to the measured p99
    and maximum of each trace (the deadline comes from the configuration stored in the trace)."""
    from matplotlib.figure import Figure

    rows = [(r, s) for r in results for s in r.stages if s.stage.deadline_ns is not None]
    fig = Figure(figsize=(11, 1.2 + 0.7 * max(1, len(rows))), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    labels = []
    for i, (result, s) in enumerate(rows):
        y = len(rows) - 1 - i
        p99 = s.summary.quantiles_ns.get("p99", s.summary.max_ns)
        ax.barh(
            y + 0.25,
            s.stage.deadline_ns / 1e6,
            height=0.25,
            color="tab:gray",
            label="declared" if i == 0 else None,
        )
        ax.barh(y, p99 / 1e6, height=0.25, color="tab:blue", label="measured p99" if i == 0 else None)
        ax.barh(
            y - 0.25,
            s.summary.max_ns / 1e6,
            height=0.25,
            color="tab:red",
            label="measured max" if i == 0 else None,
        )
        prefix = f"{_label(results.index(result), len(results))} " if len(results) > 1 else ""
        source = s.stage.deadline_source.replace(", ", ",\n")  # long key lists on their own lines
        labels.append((y, f"{prefix}{s.stage.name}\n[{source}]"))
    ax.set_yticks([y for y, _ in labels], [text for _, text in labels], fontsize=7)
    ax.set_xlabel("ms")
    ax.set_title("declared budget beside measured latency, per stage", fontsize=10)
    if rows:
        ax.legend(fontsize=7, loc="lower right")
    return fig


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def to_png(results: Sequence[TraceResult]) -> bytes:
    """The plots as one PNG image (needs matplotlib: the `plots` extra)."""
    return _png(_figure(results))


def to_html(results: Sequence[TraceResult], with_plots: bool = True) -> str:
    """A self-contained HTML page: headings, the table, the worst-case estimate and the plots."""
    image = ""
    if with_plots:
        data = base64.b64encode(to_png(results)).decode()
        image = f'<img alt="latency histograms and exceedance curves" src="data:image/png;base64,{data}">'
        budget = base64.b64encode(_png(budget_figure(results))).decode()
        image += f'<img alt="declared budget beside measured latency" src="data:image/png;base64,{budget}">'
    text = html.escape(terminal_table(results))
    verdict = "every deadline held" if all(r.deadline_held for r in results) else "DEADLINE MISSES"
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>cobotguard timing report</title>"
        "<style>body{font-family:sans-serif;margin:2em} pre{font-size:12px;background:#f6f6f6;"
        "padding:1em;overflow-x:auto} img{max-width:100%}</style></head><body>"
        f"<h1>cobotguard timing report</h1><p><b>{html.escape(verdict)}</b></p>"
        f"<p>{html.escape(EVIDENCE_NOTE.capitalize())}.</p>"
        f"<pre>{text}</pre>{image}</body></html>\n"
    )
