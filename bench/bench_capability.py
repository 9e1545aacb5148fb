"""Benchmark: detection capability on recorded sequences, single vs tiled inference (prints, never asserts).

For each sequence (`NAME/NAME.mp4` and `NAME/gt/gt.txt`, MOTChallenge format, under --data) and model, runs
the single-inference detector and the tiled one once at a low score floor, then evaluates exactly what
each would report at every score threshold (sensor/tiling.py: tile boxes filtered, then merged) and, for
the tiled path, every --merge-iou. Figures as `cobotguard capability` defines them (hil/capability).

"Small" variant (--small): a 2x2 mosaic of the sequence at half size, the four quadrants a quarter of the
sequence apart in time, so every person is half as tall (persons 25-60 % of the frame become 12-30 %):
a stand-in for a camera mounted farther away, built from the same real footage (sharper than a real
distant view, with artificial quadrant borders). Track ids are kept apart per quadrant and wrap.

Choosing the tiled path's min_score and merge_iou (--select-on NAME): on that sequence (native and small
together), the highest k-frame recall whose false positives per frame do not exceed the single path's at
the shipped min_score on the same frames; ties go to the higher threshold. Report the other sequences as
the check.

    python bench/bench_capability.py --data DIR [--sequences TUD-Stadtmitte TUD-Campus] [--models fp32 int8]
        [--tiling 2x2] [--overlap 0.25] [--merge-iou 0.4 0.5 0.6] [--small] [--select-on TUD-Stadtmitte]
        [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cobotguard.hil.capability.measure import merged_at, run_sequence, run_tiles  # noqa: E402
from cobotguard.hil.capability.metrics import match_sequence  # noqa: E402
from cobotguard.hil.capability.summary import band_table, overall  # noqa: E402
from cobotguard.safety.config import Tiling  # noqa: E402
from cobotguard.sensor.detector import Detector  # noqa: E402
from cobotguard.sensor.sources import Frame, VideoSource  # noqa: E402
from cobotguard.sensor.tiling import TiledDetector  # noqa: E402
from cobotguard.sensor.truth import GroundTruth, TruthBox, read_mot_truth  # noqa: E402

FLOOR = 0.05
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 16))  # 0.10 .. 0.75
SHIPPED_MIN_SCORE = 0.5


class ListSource:
    """Frames held in memory (a FrameSource)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.height_px, self.width_px = frames[0].shape[:2]

    def read(self, index: int, t_ns: int) -> Frame | None:
        """Frame `index`, or None past the end."""
        return Frame(self.frames[index], index) if index < len(self.frames) else None


def small_variant(frames: list[np.ndarray], truth: GroundTruth) -> tuple[list[np.ndarray], GroundTruth]:
    """The 2x2 half-size mosaic described in the module docstring, and its ground truth."""
    from PIL import Image

    n = len(frames)
    h, w = frames[0].shape[:2]
    halves = [np.asarray(Image.fromarray(f).reduce(2)) for f in frames]  # 2x2 box filter
    hh, hw = halves[0].shape[:2]
    shift = [q * n // 4 for q in range(4)]
    mosaic = []
    for t in range(n):
        image = np.zeros((h, w, 3), np.uint8)
        for q in range(4):
            y0, x0 = (q // 2) * hh, (q % 2) * hw
            image[y0 : y0 + hh, x0 : x0 + hw] = halves[(t + shift[q]) % n]
        mosaic.append(image)
    boxes = []
    for b in truth.boxes:
        for q in range(4):
            t = (b.frame - 1 - shift[q]) % n
            wrapped = int(t + shift[q] >= n)
            y0, x0 = (q // 2) * hh, (q % 2) * hw
            boxes.append(
                TruthBox(t + 1, (b.track * 4 + q) * 2 + wrapped, x0 + b.x / 2, y0 + b.y / 2, b.w / 2, b.h / 2,
                         b.considered)
            )  # fmt: skip
    return mosaic, GroundTruth(truth.path, tuple(boxes))


def figures(matched: Any, threshold: float, k: int) -> dict[str, Any]:
    """Overall and per-band figures at one threshold (k = 1 and k)."""
    return {
        "threshold": threshold,
        "overall": overall(matched, threshold, k),
        "bands": [
            {key: b[key] for key in ("lo", "hi", "n", "recall", "recall_k")}
            for b in band_table(matched, threshold, k)
        ],
    }


def measure(
    frames: list[np.ndarray], truth: GroundTruth, model: str, tiling: Tiling, merge_ious: list[float], k: int
) -> dict[str, Any]:
    """Single and tiled figures at every threshold (and merge IoU), plus each path's latency at 0.5."""
    source = ListSource(frames)
    w, h = source.width_px, source.height_px
    out: dict[str, Any] = {}
    single = Detector(model, threads=2, min_score=FLOOR)
    single.warm_up(h, w)
    run = run_sequence(single, source)
    matched = match_sequence(run.detections, truth, w, h)
    out["single"] = [figures(matched, t, k) for t in THRESHOLDS]
    tiled = TiledDetector(Detector(model, threads=2, min_score=FLOOR), tiling)
    tiled.warm_up(h, w, runs=1)
    tiles = run_tiles(tiled, source)
    out["tiled"] = {}
    for merge_iou in merge_ious:
        rows = []
        for t in THRESHOLDS:
            m = match_sequence(merged_at(tiles, t, merge_iou, w, h), truth, w, h)
            rows.append(figures(m, t, k))
        out["tiled"][str(merge_iou)] = rows
    # latency of both paths as a sensor would run them (min_score 0.5), same frames, alternating
    fast = Detector(model, threads=2, min_score=SHIPPED_MIN_SCORE)
    slow = TiledDetector(Detector(model, threads=2, min_score=SHIPPED_MIN_SCORE), tiling)
    fast.warm_up(h, w)
    slow.warm_up(h, w, runs=1)
    lat: dict[str, list[int]] = {"single": [], "tiled": []}
    for image in frames:
        for name, det in (("single", fast), ("tiled", slow)):
            t0 = time.monotonic_ns()
            det.detect(image)
            lat[name].append(time.monotonic_ns() - t0)
    out["latency_ms"] = {
        name: {
            "median": float(np.median(v) / 1e6),
            "p99": float(np.percentile(v, 99) / 1e6),
            "max": float(np.max(v) / 1e6),
        }
        for name, v in lat.items()
    }
    return out


def _pct(v: float | None) -> str:
    return "   -" if v is None else f"{100 * v:4.0f}"


def print_rows(title: str, rows: list[dict[str, Any]], thresholds: tuple[float, ...]) -> None:
    """One line per threshold: per-band recall (k-frame in brackets), overall, FP/frame."""
    bands = [b for b in rows[0]["bands"] if b["n"]]
    head = "".join(f"{100 * b['lo']:>4.0f}-{100 * b['hi']:<3.0f}%(n={b['n']})".rjust(18) for b in bands)
    print(f"\n{title}\n  thr {head}      all (k)   FP/frame")
    for r in rows:
        if r["threshold"] not in thresholds:
            continue
        cells = "".join(
            f"{_pct(b['recall'])} ({_pct(b['recall_k'])})".rjust(18) for b in r["bands"] if b["n"]
        )
        o = r["overall"]
        print(
            f"  {r['threshold']:.2f}{cells}  {_pct(o['recall'])} ({_pct(o['recall_k'])})"
            f"   {o['fp_per_frame']:.3f}"
        )


def select(results: dict[str, Any], sequence: str, model: str) -> dict[str, Any]:
    """The tiled (threshold, merge IoU) with the best pooled k-frame recall at no more FP/frame than the
    single path at the shipped min_score, on `sequence` (native and small variants pooled)."""
    variants = [v for v in results[sequence] if model in results[sequence][v]]

    def pooled(rows_of_variant: list[list[dict[str, Any]]], t: float) -> tuple[float, float]:
        found = n = fp = 0.0
        for rows in rows_of_variant:
            o = next(r for r in rows if r["threshold"] == t)["overall"]
            found += o["recall_k"] * o["n"]
            n += o["n"]
            fp += o["false_positives"]  # same frames for both paths: counts compare like rates
        return found / n, fp

    base_recall, base_fp = pooled(
        [results[sequence][v][model]["single"] for v in variants], SHIPPED_MIN_SCORE
    )
    best: dict[str, Any] | None = None
    merge_ious = results[sequence][variants[0]][model]["tiled"].keys()
    for merge_iou in merge_ious:
        for t in THRESHOLDS:
            recall, fp = pooled([results[sequence][v][model]["tiled"][merge_iou] for v in variants], t)
            if fp > base_fp:
                continue
            candidate = {
                "threshold": t,
                "merge_iou": float(merge_iou),
                "recall_k": recall,
                "false_positives": fp,
            }
            if best is None or (recall, t) > (best["recall_k"], best["threshold"]):
                best = candidate
    return {"baseline_recall_k": base_recall, "baseline_false_positives": base_fp, "chosen": best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, type=Path, help="folder holding NAME/NAME.mp4, NAME/gt/gt.txt"
    )
    parser.add_argument("--sequences", nargs="+", default=["TUD-Stadtmitte", "TUD-Campus"])
    parser.add_argument("--models", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--tiling", default="2x2")
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--no-full-frame", action="store_true")
    parser.add_argument("--merge-iou", nargs="+", type=float, default=[0.5])
    parser.add_argument("--small", action="store_true", help="also the half-size 2x2 mosaic of each sequence")
    parser.add_argument("--k", type=int, default=2, help="k-frame window (tolerated_missed_frames + 1)")
    parser.add_argument("--select-on", default=None, help="choose threshold and merge IoU on this sequence")
    parser.add_argument("--show", nargs="+", type=float, default=[0.3, 0.4, 0.5])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    columns, rows = (int(v) for v in args.tiling.lower().split("x"))
    tiling = Tiling(columns=columns, rows=rows, overlap=args.overlap, full_frame=not args.no_full_frame)
    print(
        f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; tiling {tiling}; k = {args.k}"
    )
    results: dict[str, Any] = {}
    for name in args.sequences:
        video = VideoSource(args.data / name / f"{name}.mp4")
        truth = read_mot_truth(args.data / name / "gt" / "gt.txt")
        variants = {"native": (video.frames, truth)}
        if args.small:
            variants["small"] = small_variant(video.frames, truth)
        results[name] = {}
        for variant, (frames, gt) in variants.items():
            results[name][variant] = {}
            for model in args.models:
                r = measure(frames, gt, model, tiling, args.merge_iou, args.k)
                results[name][variant][model] = r
                shown = tuple(args.show)
                print_rows(f"{name} {variant} {model} single", r["single"], shown)
                for merge_iou, rows_ in r["tiled"].items():
                    print_rows(f"{name} {variant} {model} tiled, merge IoU {merge_iou}", rows_, shown)
                lat = r["latency_ms"]
                ratio = {k: lat["tiled"][k] / lat["single"][k] for k in ("median", "p99", "max")}
                print(f"  latency ms single {lat['single']}, tiled {lat['tiled']}, ratio {ratio}")
    if args.select_on:
        for model in args.models:
            choice = select(results, args.select_on, model)
            results.setdefault("selection", {})[model] = choice
            print(f"\nselected on {args.select_on} ({model}): {choice}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
