"""Choose a detector's score threshold and NMS IoU from its measured PR curve (prints, never asserts).

The rule, fixed before any number was looked at:

- R(t, iou): k-frame recall (k = 2) of the ground-truth persons at or above 25 % of the frame height (the
  size the shipped cells declare), on the selection sequence; F(t, iou): false positives per frame there,
  every size.
- Feasible: F <= the shipped path's F on the same frames (SSDLite fp32 at min_score 0.5, its own NMS):
  the new operating point may not stop the robot without cause more often than today's.
- R* = the best R among feasible points. Chosen: among feasible points with R >= R* - 1 point, the
  highest threshold (the fewest false stops for recall within noise); equal thresholds go to the NMS IoU
  nearest the model's own default (no evidence to move it).
- The other sequences are the check: the same (t, iou), with their R and F beside the shipped path's.

Each NMS IoU is one run at a low score floor; every threshold is that run filtered (greedy NMS by score:
what the detector reports at t is its floor output with scores >= t).

    python bench/select_operating_point.py --data DIR --model yolox_nano [--select-on TUD-Stadtmitte]
        [--check TUD-Campus] [--iou 0.35 0.45 0.55 0.65] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cobotguard.hil.capability.measure import run_sequence  # noqa: E402
from cobotguard.hil.capability.metrics import (  # noqa: E402
    FALSE_POSITIVE,
    Matched,
    found_within,
    match_sequence,
)
from cobotguard.sensor.detector import MODEL_FILES, Detector  # noqa: E402
from cobotguard.sensor.sources import VideoSource  # noqa: E402
from cobotguard.sensor.truth import read_mot_truth  # noqa: E402

FLOOR = 0.05
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 .. 0.90
SHIPPED_MODEL = "fp32"
SHIPPED_MIN_SCORE = 0.5
MIN_FRACTION = 0.25  # of the frame height: the size the shipped cells declare
K = 2
WITHIN = 0.01  # "within 1 point" of the best recall


def point(m: Matched, threshold: float) -> dict[str, float]:
    """R (k-frame recall from MIN_FRACTION), per-frame recall there, F (FP/frame) at this threshold."""
    found = m.gt_match_score >= threshold
    found_k = found_within(m.gt_frame, m.gt_track, found, K)
    large = m.gt_fraction >= MIN_FRACTION
    above = m.det_score >= threshold
    fp = int(np.sum(above & (m.det_kind == FALSE_POSITIVE)))
    return {
        "threshold": threshold,
        "recall_k": float(found_k[large].mean()),
        "recall": float(found[large].mean()),
        "n": int(large.sum()),
        "fp_per_frame": fp / m.frames,
    }


def matched(det: Any, frames: list[np.ndarray], truth: Any) -> Matched:
    """One run of a detector over the frames (in memory), matched with the ground truth."""
    h, w = frames[0].shape[:2]
    det.warm_up(h, w, runs=1)

    class _Frames:
        height_px, width_px = h, w

        def read(self, index: int, t_ns: int) -> Any:
            from cobotguard.sensor.sources import Frame

            return Frame(frames[index], index) if index < len(frames) else None

    run = run_sequence(det, _Frames())
    return match_sequence(run.detections, truth, w, h)


def detector(model: str, iou: float | None, min_score: float) -> Any:
    """A shipped model at this score floor and NMS IoU (None: the model's default), 2 threads."""
    kwargs = {} if iou is None else {"iou_threshold": iou}
    return Detector(model, threads=2, min_score=min_score, **kwargs)


def choose(
    curve: dict[float, list[dict[str, float]]], shipped_fp: float, default_iou: float
) -> dict[str, Any]:
    """The rule in the module docstring."""
    feasible = [(iou, p) for iou, pts in curve.items() for p in pts if p["fp_per_frame"] <= shipped_fp]
    if not feasible:
        return {"chosen": None, "reason": "no point at or below the shipped path's FP/frame"}
    best = max(p["recall_k"] for _, p in feasible)
    near = [(iou, p) for iou, p in feasible if p["recall_k"] >= best - WITHIN - 1e-12]
    iou, p = max(near, key=lambda ip: (ip[1]["threshold"], -abs(ip[0] - default_iou)))
    return {"best_recall_k": best, "chosen": {"iou": iou, **p}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, type=Path, help="folder holding NAME/NAME.mp4, NAME/gt/gt.txt"
    )
    parser.add_argument("--model", default="yolox_nano", choices=sorted(MODEL_FILES))
    parser.add_argument("--select-on", default="TUD-Stadtmitte")
    parser.add_argument("--check", nargs="*", default=["TUD-Campus"])
    parser.add_argument("--iou", nargs="+", type=float, default=[0.35, 0.45, 0.55, 0.65])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    default_iou = Detector(args.model, threads=1).iou_threshold
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; model {args.model}, k = {K}")
    out: dict[str, Any] = {}
    for name in [args.select_on, *args.check]:
        video = VideoSource(args.data / name / f"{name}.mp4")
        truth = read_mot_truth(args.data / name / "gt" / "gt.txt")
        frames = video.frames
        shipped = point(
            matched(detector(SHIPPED_MODEL, None, SHIPPED_MIN_SCORE), frames, truth), SHIPPED_MIN_SCORE
        )
        curve = {}
        for iou in args.iou:
            m = matched(detector(args.model, iou, FLOOR), frames, truth)
            curve[iou] = [point(m, t) for t in THRESHOLDS]
        out[name] = {"shipped": shipped, "curve": {str(k): v for k, v in curve.items()}}
        print(
            f"\n{name}: shipped ({SHIPPED_MODEL} at {SHIPPED_MIN_SCORE}): "
            f"R {100 * shipped['recall_k']:.1f} % "
            f"(per frame {100 * shipped['recall']:.1f} %, n {shipped['n']}), F {shipped['fp_per_frame']:.3f}"
        )
        print("   thr " + "".join(f"   IoU {iou:.2f}: R / F   " for iou in args.iou))
        for i, t in enumerate(THRESHOLDS):
            cells = "".join(
                f"  {100 * curve[iou][i]['recall_k']:5.1f} % / {curve[iou][i]['fp_per_frame']:.3f}  "
                for iou in args.iou
            )
            print(f"  {t:.2f}{cells}")
        if name == args.select_on:
            choice = choose(curve, shipped["fp_per_frame"], default_iou)
            out["selection"] = {"on": name, **choice}
            print(f"\nselected on {name}: {choice}")
    chosen = out["selection"].get("chosen")
    if chosen:
        for name in args.check:
            pts = out[name]["curve"][str(chosen["iou"])]
            p = next(q for q in pts if q["threshold"] == chosen["threshold"])
            s = out[name]["shipped"]
            print(
                f"check on {name} at threshold {chosen['threshold']}, IoU {chosen['iou']}: "
                f"R {100 * p['recall_k']:.1f} % (per frame {100 * p['recall']:.1f} %), "
                f"F {p['fp_per_frame']:.3f}; "
                f"shipped R {100 * s['recall_k']:.1f} %, F {s['fp_per_frame']:.3f}"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
