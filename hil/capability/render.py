"""The capability report for people: a text table, PNG plots (matplotlib) and an HTML page beside them."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

REPORT_JSON = "capability.json"
PLOTS = {
    "recall_by_band.png": "Recall per person height band (frame and k-frame), with 95 % confidence intervals",
    "pr_curve.png": "Precision / recall over the score threshold",
    "miss_streaks.png": "Longest run of missed frames per track",
}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def text_summary(report: dict[str, Any]) -> str:
    """The report as a few aligned tables for a terminal."""
    det, o, v, s = report["detector"], report["overall"], report["verdict"], report["streaks"]
    k = report["k_frames"]
    tiling = det["tiling"]
    tiles = "off" if tiling is None else f"{tiling['columns']}x{tiling['rows']}, overlap {tiling['overlap']}"
    lines = [
        f"sequence: {report['video']} ({report['frames']} frames, "
        f"{report['width_px']}x{report['height_px']})",
        f"sensor: {report['sensor']}  model {det['model']}  min_score {det['min_score']}  tiling {tiles}  "
        f"k = {k} frame(s)",
        "",
        f"{'height band':<14}{'pixels':>12}{'persons':>9}{'recall':>9}{'k-frame':>9}   k-frame 95 % CI",
    ]
    for b in report["bands"]:
        if b["n"] == 0:
            continue
        lo, hi = b["recall_k_ci95"]
        lines.append(
            f"{100 * b['lo']:>4.0f}-{100 * b['hi']:<3.0f} %    {b['lo_px']:>5.0f}-{b['hi_px']:<5.0f}"
            f"{b['n']:>9}{_pct(b['recall']):>9}{_pct(b['recall_k']):>9}   {_pct(lo)} - {_pct(hi)}"
        )
    lines += [
        f"{'all':<26}{o['n']:>9}{_pct(o['recall']):>9}{_pct(o['recall_k']):>9}",
        "",
        f"false positives: {o['false_positives']} ({o['fp_per_frame']:.3f} per frame); "
        f"precision {_pct(o['precision'])}",
        f"longest miss streak per track: max {s['max']} frame(s); {s['tracks_missed_k_frames_in_a_row']} of "
        f"{s['tracks']} tracks missed {k} or more frames in a row; histogram {s['histogram']}",
    ]
    lat = report.get("latency_ms") or {}
    if lat:
        lines.append(
            f"latency per frame (this machine): median {lat['median']:.1f} ms, p99 {lat['p99']:.1f} ms, "
            f"max {lat['max']:.1f} ms; declared inference_worst_ms "
            f"{report['declared']['inference_worst_ms']:g}"
        )
    lines += ["", f"verdict: {'BACKED' if v['backed'] else 'NOT BACKED'}: {v['reason']}"]
    return "\n".join(lines)


def write_outputs(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write capability.json, the PNG plots (with matplotlib) and index.html; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / REPORT_JSON]
    written[0].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plots = _plots(report, out_dir)
    written += plots
    page = out_dir / "index.html"
    page.write_text(_html(report, [p.name for p in plots]), encoding="utf-8")
    written.append(page)
    return written


def _plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    bands = [b for b in report["bands"] if b["n"] > 0]
    labels = [f"{100 * b['lo']:.0f}-{100 * b['hi']:.0f}" for b in bands]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(bands))
    for offset, key, name in (
        (-0.2, "recall", "per frame"),
        (0.2, "recall_k", f"{report['k_frames']}-frame"),
    ):
        values = [100 * b[key] for b in bands]
        below = [100 * (b[key] - b[key + "_ci95"][0]) for b in bands]
        above = [100 * (b[key + "_ci95"][1] - b[key]) for b in bands]
        ci = [below, above]
        ax.bar([x + offset for x in xs], values, width=0.4, yerr=ci, capsize=3, label=name)
    ax.axhline(100 * report["verdict"]["required_recall_k"], color="k", linestyle="--", linewidth=1)
    ax.set_xticks(list(xs), labels)
    ax.set_xlabel("person height, % of frame height")
    ax.set_ylabel("recall, %")
    ax.set_ylim(0, 105)
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "recall_by_band.png"))

    points = [p for p in report["pr_curve"]["points"] if p["precision"] is not None]  # None: no detections
    fig, ax = plt.subplots(figsize=(5, 4))
    rec = [100 * p["recall"] for p in points]
    prec = [100 * p["precision"] for p in points]
    ax.plot(rec, prec, marker=".")
    for p, r, q in zip(points, rec, prec, strict=True):
        ax.annotate(f"{p['threshold']:.2f}", (r, q), fontsize=6)
    ax.set_xlabel("recall, %")
    ax.set_ylabel("precision, %")
    ax.set_title("labels: score threshold", fontsize=8)
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "pr_curve.png"))

    hist = report["streaks"]["histogram"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([int(k) for k in hist], list(hist.values()))
    ax.set_xlabel("longest run of missed frames")
    ax.set_ylabel("tracks")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "miss_streaks.png"))
    plt.close("all")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    return path


def _html(report: dict[str, Any], plots: list[str]) -> str:
    esc = html.escape
    figures = "".join(
        f'<figure><img src="{esc(name)}" alt="{esc(PLOTS.get(name, name))}">'
        f"<figcaption>{esc(PLOTS.get(name, name))}</figcaption></figure>"
        for name in plots
    )
    if not plots:
        figures = (
            "<p>No plots: matplotlib is not installed (<code>pip install 'cobotguard[plots]'</code>).</p>"
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>cobotguard capability</title></head><body>"
        f"<h1>Detection capability: sensor {esc(str(report['sensor']))}</h1>"
        f"<pre>{esc(text_summary(report))}</pre>{figures}"
        f"<p>Data: <a href='{REPORT_JSON}'>{REPORT_JSON}</a>. Definitions: docs/sensor.md, "
        "section “Detection capability on real recordings”.</p></body></html>\n"
    )
