"""`cobotguard detect`: run the person detector on image files and show what a mounted camera would report.

With a cell configuration and a sensor, each person's floor position and Z_d are computed exactly as the
sensor publishes them (`sensor.metadata`): the foot point (bottom centre of the box) through that sensor's
camera model, Z_d from the pixel footprint at that range and never below the declared uncertainty.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cobotguard.hil.cli.common import (
    CommandError,
    ExitCode,
    add_json_option,
    load_cell_config,
    print_error,
    select_sensor,
)

if TYPE_CHECKING:
    import numpy as np

    from cobotguard.safety.camera import CameraModel
    from cobotguard.safety.config import Sensor
    from cobotguard.sensor.detector import DetectionResult

DEFAULT_MIN_SCORE = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    parser.add_argument("--config", metavar="CONFIG", help="cell configuration (TOML): adds floor positions")
    parser.add_argument(
        "--sensor", metavar="ID", help="sensor name in the configuration (default: the only one)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="use the int8 SSDLite instead of the sensor's model (fp32 without --config)",
    )
    parser.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    parser.add_argument(
        "--min-score",
        type=float,
        default=None,
        help=f"lowest score reported (default: the sensor's min_score, or {DEFAULT_MIN_SCORE})",
    )
    add_json_option(parser)


@dataclass
class Floor:
    """The configured sensor whose camera maps boxes to the floor."""

    name: str
    index: int  # position in the configuration's sensor list
    sensor: Sensor
    camera: CameraModel


@dataclass
class ImageReport:
    """What the detector saw in one image."""

    path: str
    width: int
    height: int
    persons: list[dict[str, Any]] = field(default_factory=list)
    preprocess_us: int = 0
    inference_us: int = 0
    postprocess_us: int = 0
    notes: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    if args.sensor is not None and args.config is None:
        raise CommandError("--sensor needs --config")
    floor = _load_floor(args.config, args.sensor) if args.config is not None else None
    if args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    min_score = args.min_score
    if min_score is None:
        min_score = floor.sensor.min_score if floor is not None else DEFAULT_MIN_SCORE
    if not 0.0 < min_score <= 1.0:
        raise CommandError(f"--min-score must be in (0, 1], got {min_score}")

    from cobotguard.sensor.detector import Detector
    from cobotguard.sensor.tiling import make_detector

    model = "int8" if args.int8 else floor.sensor.detector_model if floor is not None else "fp32"
    if floor is not None:  # the sensor's own detector: its tiling too
        detector = make_detector(floor.sensor, model, threads=args.threads, min_score=min_score)
    else:
        detector = Detector(model, threads=args.threads, min_score=min_score)
    detector.warm_up(runs=2)  # compile and allocate first, so the reported times are steady-state
    reports: list[ImageReport] = []
    errors: list[dict[str, str]] = []
    for path in args.images:
        frame_or_error = _read_rgb(path)
        if isinstance(frame_or_error, str):
            print_error("detect", f"{path}: {frame_or_error}")
            errors.append({"path": path, "error": frame_or_error})
            continue
        frame = frame_or_error
        result = detector.detect(frame)
        reports.append(_report(path, frame, result, floor))

    if args.json:
        print(json.dumps(_as_json(reports, errors, model, min_score, floor), indent=2))
    else:
        _print_text(reports, model, floor)
    return ExitCode.INVALID_INPUT if errors else ExitCode.OK


def _load_floor(config_path: str, sensor_name: str | None) -> Floor:
    """The chosen sensor's camera model; raises CommandError when the configuration gives none."""
    from cobotguard.safety.camera import CameraModel, CameraModelError

    cfg = load_cell_config(config_path)
    sensor_name = select_sensor(cfg, config_path, sensor_name)
    names = list(cfg.sensors)
    sensor = cfg.sensors[sensor_name]
    try:
        camera = CameraModel.from_config(sensor)
    except CameraModelError as exc:
        raise CommandError(f"{config_path}: sensors.{sensor_name}: {exc}") from None
    return Floor(sensor_name, names.index(sensor_name), sensor, camera)


def _read_rgb(path: str) -> np.ndarray | str:
    """The image as uint8 RGB [H, W, 3], or why it could not be read."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.width < 1 or img.height < 1:
                return "image has no pixels"
            return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except IsADirectoryError:
        return "is a directory; expected a PNG or JPEG file"
    except FileNotFoundError:
        return "no such file"
    except PermissionError:
        return "permission denied"
    except Image.UnidentifiedImageError:
        return "not an image Pillow can read; expected a PNG or JPEG file"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"cannot decode the image ({exc}); expected a PNG or JPEG file"


def _report(path: str, frame: np.ndarray, result: DetectionResult, floor: Floor | None) -> ImageReport:
    height, width = frame.shape[:2]
    report = ImageReport(
        path, width, height, [], result.preprocess_us, result.inference_us, result.postprocess_us
    )
    for i in range(result.count):
        y0, x0, y1, x1 = (float(v) for v in result.boxes[i])
        report.persons.append({"box": [y0, x0, y1, x1], "score": float(result.scores[i])})
    if floor is not None:
        cam = floor.camera
        if abs(width * cam.height_px - height * cam.width_px) > max(width, height):
            report.notes.append(
                f"image is {width}x{height} but sensor {floor.name!r} is configured for "
                f"{cam.width_px}x{cam.height_px}: floor positions assume the configured field of view"
            )
        _add_floor_positions(floor, result, report.persons)
    return report


def _add_floor_positions(floor: Floor, result: DetectionResult, persons: list[dict[str, Any]]) -> None:
    """Floor position and Z_d of each person, exactly as the sensor publishes them (sensor.metadata)."""
    from cobotguard.safety.records import MAX_PERSONS
    from cobotguard.sensor.metadata import MetadataBuilder

    builder = MetadataBuilder(floor.camera, floor.index, floor.sensor.position_uncertainty_m)
    for start in range(0, result.count, MAX_PERSONS):  # one record holds MAX_PERSONS persons
        n = min(MAX_PERSONS, result.count - start)
        record = builder.build(
            result.boxes[start : start + n], result.scores[start : start + n], n, 0, 0, 0, 0, 0, 0
        )
        for k in range(n):
            placed = record["persons"][0][k]
            x, y, z_d = float(placed["x_m"]), float(placed["y_m"]), float(placed["z_d_m"])
            on_floor = math.isfinite(x) and math.isfinite(y)
            persons[start + k].update(
                {
                    "floor_m": [x, y] if on_floor else None,
                    "z_d_m": z_d if on_floor and math.isfinite(z_d) else None,
                    "declared_z_d_m": floor.sensor.position_uncertainty_m,
                }
            )


def _as_json(
    reports: list[ImageReport],
    errors: list[dict[str, str]],
    model: str,
    min_score: float,
    floor: Floor | None,
) -> dict[str, Any]:
    return {
        "model": model,
        "min_score": min_score,
        "sensor": floor.name if floor is not None else None,
        "images": [
            {
                "path": r.path,
                "width": r.width,
                "height": r.height,
                "persons": r.persons,
                "preprocess_us": r.preprocess_us,
                "inference_us": r.inference_us,
                "postprocess_us": r.postprocess_us,
                "notes": r.notes,
            }
            for r in reports
        ],
        "errors": errors,
    }


def _print_text(reports: list[ImageReport], model: str, floor: Floor | None) -> None:
    for r in reports:
        n = len(r.persons)
        print(
            f"{r.path} ({r.width}x{r.height}): {n} person{'' if n == 1 else 's'}; "
            f"inference {r.inference_us / 1000:.1f} ms ({model}), "
            f"preprocess {r.preprocess_us / 1000:.1f} ms, decode+NMS {r.postprocess_us / 1000:.2f} ms"
        )
        for note in r.notes:
            print(f"  note: {note}")
        for k, p in enumerate(r.persons, start=1):
            y0, x0, y1, x1 = p["box"]
            line = (
                f"  person {k}: score {p['score']:.3f}  box y0={y0:.3f} x0={x0:.3f} y1={y1:.3f} x1={x1:.3f}"
            )
            if floor is not None:
                if p["floor_m"] is None:
                    line += "  floor: none (the foot point's ray does not meet the floor)"
                else:
                    fx, fy = p["floor_m"]
                    z_d = "unbounded" if p["z_d_m"] is None else f"{p['z_d_m']:.3f} m"
                    line += f"  floor x={fx:.2f} m y={fy:.2f} m  Z_d={z_d}"
            print(line)
