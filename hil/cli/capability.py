"""`cobotguard capability CONFIG --video V --truth GT.txt`: measure a sensor's detection capability.

Runs the sensor's detector exactly as configured (min_score, tiling) over a recorded sequence with
ground truth and reports recall per person-height band, k-frame recall (k = tolerated_missed_frames + 1),
false positives per frame, miss streaks and the precision/recall curve, and whether the sensor's
`min_person_height_px` is backed. Exit codes: 0 backed, 1 not backed, 2 invalid input.

A subcommand of its own rather than `detect --truth`: `detect` inspects single images, this judges a
configuration against a whole sequence and writes a report that `check --capability` reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cobotguard.hil.cli.common import (
    CommandError,
    ExitCode,
    add_config_argument,
    add_json_option,
    load_cell_config,
    select_sensor,
)

if TYPE_CHECKING:
    from cobotguard.safety.config import Sensor
    from cobotguard.sensor.sources import FrameSource

FLOOR_SCORE = 0.05  # the precision/recall curve's lowest threshold


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    add_config_argument(parser)
    parser.add_argument(
        "--video",
        required=True,
        metavar="PATH",
        help="the recording: a video file (MP4 etc. need the `video` extra), an animated image, or a "
        "folder / glob of images in frame order",
    )
    parser.add_argument(
        "--truth", required=True, metavar="GT.txt", help="ground truth, MOTChallenge format (frames from 1)"
    )
    parser.add_argument(
        "--sensor", metavar="NAME", help="sensor in the configuration (default: the only one)"
    )
    models = parser.add_mutually_exclusive_group()
    models.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="the shipped detector to measure instead of the sensor's own (its `model` key, fp32 when "
        "absent): fp32, int8, yolox_nano, yolox_nano_480x640",
    )
    models.add_argument("--int8", action="store_true", help="the int8 SSDLite (same as --model int8)")
    parser.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    parser.add_argument(
        "--min-band-samples",
        type=int,
        default=None,
        metavar="N",
        help="persons a height band needs to back a size (default 20)",
    )
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="only the first N frames")
    parser.add_argument("--out", metavar="DIR", help="write capability.json, PNG plots and index.html here")
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from cobotguard.hil.capability.measure import merged_at, run_sequence, run_tiles
    from cobotguard.hil.capability.metrics import Matched, match_sequence
    from cobotguard.hil.capability.render import text_summary, write_outputs
    from cobotguard.hil.capability.report import build_report, report_problems
    from cobotguard.hil.capability.summary import MIN_BAND_SAMPLES
    from cobotguard.safety.checksum import config_checksum
    from cobotguard.sensor.tiling import TiledDetector
    from cobotguard.sensor.truth import GroundTruth, TruthError, read_mot_truth

    if args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    min_samples = MIN_BAND_SAMPLES if args.min_band_samples is None else args.min_band_samples
    if min_samples < 1:
        raise CommandError(f"--min-band-samples must be at least 1, got {min_samples}")
    cfg = load_cell_config(args.config, as_json=args.json)
    name = select_sensor(cfg, args.config, args.sensor)
    sensor = cfg.sensors[name]
    try:
        truth = read_mot_truth(args.truth)
    except TruthError as exc:
        raise CommandError(str(exc)) from None
    source = open_source(args.video)
    from cobotguard.sensor.detector import MODEL_FILES

    model = "int8" if args.int8 else args.model if args.model is not None else sensor.detector_model
    if model not in MODEL_FILES:
        raise CommandError(f"--model: {model!r}; expected one of {', '.join(sorted(MODEL_FILES))}")
    width, height = source.width_px, source.height_px
    try:
        detector = _detector(sensor, model, args.threads, None, source)
        measured_run = run_sequence(detector, source, args.max_frames)
        frames = len(measured_run.detections)
        if args.max_frames is not None:
            truth = GroundTruth(truth.path, tuple(b for b in truth.boxes if b.frame <= frames))
        measured = match_sequence(measured_run.detections, truth, width, height)
        floor_detector = _detector(sensor, model, args.threads, FLOOR_SCORE, source)
        if isinstance(floor_detector, TiledDetector):
            tiles = run_tiles(floor_detector, source, args.max_frames)
            merge_iou = floor_detector.tiling.merge_iou

            def matched_at(threshold: float) -> Matched:
                detections = merged_at(tiles, threshold, merge_iou, width, height)
                return match_sequence(detections, truth, width, height)

        else:
            floor_run = run_sequence(floor_detector, source, args.max_frames)
            floor = match_sequence(floor_run.detections, truth, width, height)

            def matched_at(threshold: float) -> Matched:
                return floor

    except ValueError as exc:  # a frame that cannot be read (SourceError), ground truth past the end
        raise CommandError(str(exc)) from None
    report = build_report(
        config_path=str(args.config),
        checksum=config_checksum(cfg)[0],
        sensor_name=name,
        sensor=sensor,
        model=model,
        video=str(args.video),
        truth=str(args.truth),
        measured=measured,
        matched_at=matched_at,
        floor_score=FLOOR_SCORE,
        latency_ms=measured_run.latency_ms(),
        min_samples=min_samples,
    )
    problems = report_problems(cfg, report, "this measurement")
    report["verdict"]["problems"] = problems
    report["verdict"]["backed"] = not problems
    if args.out is not None:
        write_outputs(report, Path(args.out))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(text_summary(report))
        for problem in problems:
            print(f"  reason: {problem}")
        if args.out is not None:
            print(f"report: {Path(args.out) / 'index.html'}")
    return ExitCode.OK if not problems else ExitCode.FAILED


def open_source(spec: str) -> FrameSource:
    """A video file, an animated image, or a folder / glob of images; CommandError when unreadable."""
    from cobotguard.sensor.sources import ImageSequenceSource, SourceError, VideoSource

    path = Path(spec)
    try:
        if path.is_dir() or any(ch in spec for ch in "*?["):
            return ImageSequenceSource(spec)
        return VideoSource(path)
    except SourceError as exc:
        raise CommandError(str(exc)) from None


def _detector(sensor: Sensor, model: str, threads: int, min_score: float | None, source: FrameSource) -> Any:
    """The sensor's detector (tiling included), warmed up for the source's frame size."""
    from cobotguard.sensor.tiling import make_detector

    detector = make_detector(sensor, model, threads=threads, min_score=min_score)
    detector.warm_up(source.height_px, source.width_px, runs=2)
    return detector
