"""Recall of the emulated sensor against the size of the person in the image (prints, never asserts).

Synthetic walk-ins (sensor.scene) through the default cell's camera (hil/defaults/cell.toml, cam0,
640x480): each photo's person walks toward the camera along two lanes, a person of the cell's
assumed height (1.5 m), sampled evenly in apparent size. Every frame runs through the detector for each
model (fp32, int8, or those given with --model, e.g. yolox_nano) and resize mode ("area", "tf1_bilinear";
YOLOX models have only "area"); a person counts as found when a detection overlaps the drawn cut-out with
IoU >= 0.5.

Two ways to draw the walkers: "true" (the portrait covers only the share of the body the photo shows:
the realistic case) and "stand-in" (the portrait stretched to the full standing height, as the controller
demos draw it; shown for comparison, not a realistic person). For true-extent walkers, sizes are the
drawn part's height over the frame height ("visible"), which is what the detector sees.

Prints recall per size band and, per model and mode, the smallest size from which recall (all photos
together, and the worst photo) stays >= 95 %: the detection capability to declare.

    python bench/bench_recall.py [--positions 60] [--scenes true,stand-in] [--threads 2] [--mount Z,PITCH]
                                 [--model NAME ...]

`--mount 1.3,5` re-mounts the camera 1.3 m high, pitched 5 degrees down (same intrinsics), so that
nearby people fill more of the frame: the default pole mount never shows a torso taller than ~0.45 of
the frame fully inside it.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from cobotguard.safety.camera import CameraModel  # noqa: E402
from cobotguard.safety.config_load import load_config  # noqa: E402
from cobotguard.sensor.detector import MODEL_FILES, YOLOX_MODELS, Detector  # noqa: E402
from cobotguard.sensor.preprocess import RESIZE_MODES  # noqa: E402
from cobotguard.sensor.scene import Scene, Trajectory, Walker, load_sprite  # noqa: E402
from cobotguard.sensor.sources import SyntheticSource  # noqa: E402

SPRITES = ("astronaut", "cameraman", "grace_hopper")
MODELS = ("fp32", "int8")
LANES_M = (-0.6, 0.5)  # across the camera's view axis
BANDS = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.60, 0.80, 1.01)
FROM = (0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50)
TARGET = 0.95
MATCH_IOU = 0.5


def box_iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    """IoU of two (y0, x0, y1, x1) boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def walk_positions(camera: CameraModel, lane_m: float, count: int) -> list[tuple[float, float]]:
    """Floor points along a lane toward the camera, spaced evenly in 1 / distance (about apparent size)."""
    cx, cy = camera.centre_m[0], camera.centre_m[1]
    inverse = np.linspace(1.0 / 14.0, 1.0 / 1.2, count)
    return [(cx + 1.0 / k, cy + lane_m) for k in inverse]


def measure(
    camera: CameraModel, height_m: float, positions: int, true_extent: bool, detectors: dict
) -> dict[tuple[str, str, str], list[tuple[float, bool, float]]]:
    """(model, mode, sprite) -> [(size fraction, found, best IoU)] over fully visible persons."""
    out: dict[tuple[str, str, str], list[tuple[float, bool, float]]] = {}
    for name in SPRITES:
        sprite = load_sprite(name)
        if not true_extent:
            sprite = dataclasses.replace(sprite, body_share=1.0)
        for lane in LANES_M:
            points = walk_positions(camera, lane, positions)
            path = Trajectory.from_points([(k, x, y) for k, (x, y) in enumerate(points)])
            source = SyntheticSource(Scene(camera, [Walker(sprite, path, height_m, true_extent)]))
            for k in range(len(points)):
                frame = source.read(k, k)
                assert frame is not None
                if len(frame.truth) != 1 or not frame.truth[0].fully_visible:
                    continue
                truth = frame.truth[0]
                size = truth.visible_fraction if true_extent else truth.height_fraction
                for (model, mode), det in detectors.items():
                    result = det.detect(frame.image)
                    ious = [box_iou(result.boxes[i], truth.box) for i in range(result.count)]
                    best = max(ious, default=0.0)
                    out.setdefault((model, mode, name), []).append((size, best >= MATCH_IOU, best))
    return out


def recall(samples: list[tuple[float, bool, float]], lo: float, hi: float = 9.0) -> tuple[float, int]:
    """Recall and count of the samples with lo <= size < hi."""
    hits = [found for size, found, _ in samples if lo <= size < hi]
    return (sum(hits) / len(hits) if hits else float("nan")), len(hits)


def reliable_from(samples: list[tuple[float, bool, float]]) -> float:
    """Smallest size s such that recall over every size >= s' stays >= TARGET for all s' >= s."""
    sizes = sorted({round(size, 3) for size, _, _ in samples})
    best = float("nan")
    for s in reversed(sizes):
        value, n = recall(samples, s)
        if n and value < TARGET:
            break
        best = s
    return best


def configurations(models: tuple[str, ...]) -> list[tuple[str, str]]:
    """(model, resize mode) pairs to measure: YOLOX has only the area resize."""
    return [(m, mode) for m in models for mode in RESIZE_MODES if m not in YOLOX_MODELS or mode == "area"]


def print_tables(title: str, results: dict, configs: list[tuple[str, str]]) -> None:
    """Recall per band and the reliable size, per model, mode and photo."""
    print(f"\n== {title}")
    bands = list(zip(BANDS[:-1], BANDS[1:], strict=True))
    header = " ".join(f"{lo:.2f}-{min(hi, 1):.2f}" for lo, hi in bands)
    print(f"{'model':18} {'resize':12} {'photo':12} recall per size band (fraction of frame height)")
    print(f"{'':45}{header}")
    for model, mode in configs:
        for name in SPRITES:
            samples = results.get((model, mode, name), [])
            cells = []
            for lo, hi in bands:
                value, n = recall(samples, lo, hi)
                cells.append(f"{value:6.0%}/{n:<2d}" if n else f"{'-':>9}")
            print(f"{model:18} {mode:12} {name:12} " + " ".join(f"{c:>9}" for c in cells))
    print(f"\nrecall from a size up (all photos together), and the size from which it stays >= {TARGET:.0%}")
    heads = " ".join(f">={f:.2f}" for f in FROM)
    print(f"{'model':18} {'resize':12} {heads}   reliable from: all / worst photo")
    for model, mode in configs:
        together = [s for name in SPRITES for s in results.get((model, mode, name), [])]
        cells = [f"{recall(together, f)[0]:6.1%}" for f in FROM]
        worst = max(reliable_from(results.get((model, mode, name), [])) for name in SPRITES)
        reliable = f"{reliable_from(together):.3f} / {worst:.3f}"
        print(f"{model:18} {mode:12} " + " ".join(cells) + f"   {reliable}")
    print("\nper photo, size from which recall stays >= 95 %:")
    for model, mode in configs:
        per = {name: reliable_from(results.get((model, mode, name), [])) for name in SPRITES}
        print(f"  {model:18} {mode:12} " + "  ".join(f"{k} {v:.3f}" for k, v in per.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=60, help="frames per lane and photo")
    parser.add_argument("--scenes", default="true,stand-in", help="true, stand-in or both, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default="hil/defaults/cell.toml")
    parser.add_argument("--sensor", default="cam0")
    parser.add_argument("--mount", default=None, help="camera height (m) and pitch (deg), e.g. 1.3,5")
    parser.add_argument("--model", action="append", choices=sorted(MODEL_FILES), help="instead of fp32, int8")
    args = parser.parse_args(argv)
    sensor_cfg = load_config(args.config).sensors[args.sensor]
    camera = CameraModel.from_config(sensor_cfg)
    if args.mount:
        z_m, pitch_deg = (float(v) for v in args.mount.split(","))
        k = sensor_cfg.intrinsics
        x_m, y_m, _ = sensor_cfg.mounting.position_m
        camera = CameraModel.from_pose(
            k.fx_px, k.fy_px, k.cx_px, k.cy_px, (x_m, y_m, z_m), sensor_cfg.mounting.yaw_deg, pitch_deg,
            0.0, sensor_cfg.image_width_px, sensor_cfg.image_height_px,
        )  # fmt: skip
    configs = configurations(tuple(args.model) if args.model else MODELS)
    detectors = {}
    for model, mode in configs:
        det = Detector(model, threads=args.threads, min_score=sensor_cfg.min_score, resize=mode)
        det.warm_up(sensor_cfg.image_height_px, sensor_cfg.image_width_px, runs=1)
        detectors[(model, mode)] = det
    print(
        f"camera {args.config}:{args.sensor} (mount {args.mount or 'as configured'}), "
        f"{camera.width_px}x{camera.height_px}, person "
        f"{sensor_cfg.assumed_person_height_m} m, min_score {sensor_cfg.min_score}, "
        f"match IoU >= {MATCH_IOU}; cells: recall/frames"
    )
    for scene in args.scenes.split(","):
        true_extent = scene.strip() == "true"
        results = measure(camera, sensor_cfg.assumed_person_height_m, args.positions, true_extent, detectors)
        axis = "drawn (visible) part" if true_extent else "whole (stretched) person"
        drawn = "at true extent" if true_extent else "as stand-ins"
        print_tables(f"walkers drawn {drawn}; size = {axis}", results, configs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
