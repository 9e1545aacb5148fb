"""The capability report (JSON): how it is assembled, read back, and held against a cell configuration.

`cobotguard capability` writes it; `cobotguard check --capability REPORT.json` refuses a cell whose sensor
declares a smaller `min_person_height_px` than the report backs, or whose sensor the report does not
describe (another sensor name, image size, score threshold or tiling).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cobotguard.hil.capability.metrics import MIN_IOU, Matched
from cobotguard.hil.capability.summary import (
    MIN_BAND_SAMPLES,
    REQUIRED_RECALL,
    band_table,
    overall,
    pr_curve,
    streaks,
    verdict,
)

if TYPE_CHECKING:
    from cobotguard.safety.config import CellConfig, Sensor

REPORT_KIND = "cobotguard capability report"
REPORT_VERSION = 1


class ReportError(ValueError):
    """A capability report cannot be read or is not one."""


def detector_settings(sensor: Sensor, model: str) -> dict[str, Any]:
    """The sensor's detector settings a report was measured with (and must match to back the sensor)."""
    return {
        "model": model,
        "min_score": sensor.min_score,
        "tiling": None if sensor.tiling is None else sensor.tiling.model_dump(mode="python"),
    }


def build_report(
    *,
    config_path: str,
    checksum: str,
    sensor_name: str,
    sensor: Sensor,
    model: str,
    video: str,
    truth: str,
    measured: Matched,
    matched_at: Callable[[float], Matched],
    floor_score: float,
    latency_ms: dict[str, float],
    min_samples: int = MIN_BAND_SAMPLES,
) -> dict[str, Any]:
    """The report of one sequence: `measured` ran the sensor's detector as configured; `matched_at(t)` is
    the same detector's matching at score threshold t (from a run at `floor_score`: the PR curve)."""
    k = sensor.tolerated_missed_frames + 1
    bands = band_table(measured, sensor.min_score, k)
    return {
        "kind": REPORT_KIND,
        "version": REPORT_VERSION,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": config_path,
        "config_checksum": checksum,
        "sensor": sensor_name,
        "video": video,
        "truth": truth,
        "frames": measured.frames,
        "width_px": measured.width,
        "height_px": measured.height,
        "detector": detector_settings(sensor, model),
        "k_frames": k,
        "matching": {
            "min_iou": MIN_IOU,
            "rule": "greedy by score; flag-0 ground truth ignored; ground truth clipped to the image",
        },
        "overall": overall(measured, sensor.min_score, k),
        "bands": bands,
        "streaks": streaks(measured, sensor.min_score, k),
        "pr_curve": {"floor_score": floor_score, "points": pr_curve(matched_at, k)},
        "latency_ms": latency_ms,
        "declared": {
            "image_width_px": sensor.image_width_px,
            "image_height_px": sensor.image_height_px,
            "min_person_height_px": sensor.min_person_height_px,
            "tolerated_missed_frames": sensor.tolerated_missed_frames,
            "inference_worst_ms": sensor.inference_worst_ms,
        },
        "verdict": verdict(
            bands,
            measured.height,
            sensor.min_person_height_px,
            sensor.image_height_px,
            REQUIRED_RECALL,
            min_samples,
        ),
    }


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a capability report; raises ReportError naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        raise ReportError(f"{path}: not a capability report (written by `cobotguard capability`)")
    if data.get("version") != REPORT_VERSION:
        raise ReportError(f"{path}: report version {data.get('version')!r}; expected {REPORT_VERSION}")
    missing = [
        key
        for key in ("sensor", "width_px", "height_px", "detector", "bands", "verdict", "k_frames")
        if key not in data
    ]
    if missing:
        raise ReportError(f"{path}: report lacks {', '.join(missing)}")
    return data


def report_problems(cfg: CellConfig, report: dict[str, Any], where: str) -> list[str]:
    """Why this report does not back the cell's sensor (empty when it does); `where` names the report."""
    name = report["sensor"]
    if name not in cfg.sensors:
        return [
            f"{where}: made for sensor {name!r}; the configuration's sensors are {', '.join(cfg.sensors)}"
        ]
    sensor = cfg.sensors[name]
    head = f"{where} (sensor {name})"
    problems = []
    size = (report["width_px"], report["height_px"])
    if size != (sensor.image_width_px, sensor.image_height_px):
        problems.append(
            f"{head}: measured on {size[0]}x{size[1]} frames; the sensor's image is "
            f"{sensor.image_width_px}x{sensor.image_height_px}: measure at the sensor's own image size"
        )
    settings = detector_settings(sensor, sensor.detector_model)
    for key in ("model", "min_score", "tiling"):
        if report["detector"].get(key) != settings[key]:
            problems.append(
                f"{head}: measured with {key} = {report['detector'].get(key)}; the sensor declares "
                f"{settings[key]}: measure the detector as configured"
            )
    if report["k_frames"] != sensor.tolerated_missed_frames + 1:
        problems.append(
            f"{head}: k-frame recall over {report['k_frames']} frame(s); the sensor tolerates "
            f"{sensor.tolerated_missed_frames} missed frame(s), so k = {sensor.tolerated_missed_frames + 1}"
        )
    old = report["verdict"]
    now = verdict(
        report["bands"],
        report["height_px"],
        sensor.min_person_height_px,
        sensor.image_height_px,
        old.get("required_recall_k", REQUIRED_RECALL),
        old.get("min_band_samples", MIN_BAND_SAMPLES),
    )
    if not now["backed"]:
        problems.append(f"{head}: {now['reason']}")
    return problems
