"""Experiment: static int8 YOLOX-Nano, calibrated on the demo's synthetic cell; recall and time beside fp32.

Calibration frames are the demo's own scenes (`cobotguard demo`'s cell, camera and walking person, as
`hil.demo_camera.synthetic_source` renders them), letterboxed as the detector does: never the pedestrian
recordings, which are only measured on. Variants (onnxruntime `quantize_static`, per-channel int8
weights, uint8 activations, `reduce_range`):

- `qop-conv`: QOperator format, only the convolutions quantised (the SiLU's Sigmoid and Mul stay fp32),
  the three prediction convolutions of the head left in fp32;
- `qop-all`: QOperator, every op onnxruntime can quantise (as the earlier, rejected attempt);

then, on each recorded sequence (`NAME/NAME.mp4`, `NAME/gt/gt.txt` under --data), the k-frame recall of
persons from 25 % of the frame height and the false positives per frame at min_score 0.5, beside fp32's,
and the frame -> metadata time of each, interleaved in the same process (prints, never asserts).

    python bench/yolox_int8.py --data DIR [--variants qop-conv qop-all] [--frames 64] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from select_operating_point import MIN_FRACTION, K, matched, point  # noqa: E402

from cobotguard.hil.demo import DEFAULT_CONFIG  # noqa: E402
from cobotguard.hil.demo_camera import synthetic_source  # noqa: E402
from cobotguard.hil.demo_cell import NS_PER_S, plan_visits  # noqa: E402
from cobotguard.safety.config_load import load_config  # noqa: E402
from cobotguard.sensor.detector import model_path  # noqa: E402
from cobotguard.sensor.sources import VideoSource  # noqa: E402
from cobotguard.sensor.truth import read_mot_truth  # noqa: E402
from cobotguard.sensor.yolox import Letterbox, YoloxDetector  # noqa: E402

HEAD_PREDICTIONS = ("head.cls_preds", "head.reg_preds", "head.obj_preds")


def calibration_inputs(frames: int) -> list[np.ndarray]:
    """The demo cell's frames, evenly over a 60 s run, letterboxed to YOLOX's 416 x 416 input."""
    sensor = next(iter(load_config(DEFAULT_CONFIG).sensors.values()))
    duration_ns = 60 * NS_PER_S
    source = synthetic_source(sensor, plan_visits(duration_ns))
    out = []
    for i in range(frames):
        frame = source.read(i, i * duration_ns // frames)
        assert frame is not None
        x = np.zeros((1, 3, 416, 416), np.float32)
        Letterbox(x)(frame.image)
        out.append(x)
    return out


def head_prediction_nodes(path: Path) -> list[str]:
    """The names of the head's three prediction convolutions (their weights name them)."""
    import onnx

    graph = onnx.load(str(path)).graph
    return [n.name for n in graph.node if n.op_type == "Conv" and n.input[1].startswith(HEAD_PREDICTIONS)]


def quantise(variant: str, src: Path, dst: Path, inputs: list[np.ndarray]) -> None:
    """Write the int8 variant of `src` to `dst`."""
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(logging.ERROR)

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"images": x} for x in inputs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    options = {}
    if variant == "qop-conv":
        options = {"op_types_to_quantize": ["Conv"], "nodes_to_exclude": head_prediction_nodes(src)}
    quantize_static(
        str(src), str(dst), Frames(), quant_format=QuantFormat.QOperator, per_channel=True,
        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, **options,
    )  # fmt: skip


def timings(
    paths: dict[str, Path], frames: list[np.ndarray], rounds: int = 10
) -> dict[str, dict[str, float]]:
    """Frame -> metadata time per model (2 threads), interleaved by rounds; median, p99, CPU median (ms)."""
    dets = {name: YoloxDetector(str(p), threads=2, min_score=0.5) for name, p in paths.items()}
    for d in dets.values():
        d.warm_up(480, 640, runs=3)
    wall: dict[str, list[int]] = {n: [] for n in dets}
    cpu: dict[str, list[int]] = {n: [] for n in dets}
    for _ in range(rounds):
        for name, d in dets.items():
            for f in frames:
                t0, c0 = time.monotonic_ns(), time.process_time_ns()
                d.detect(f)
                wall[name].append(time.monotonic_ns() - t0)
                cpu[name].append(time.process_time_ns() - c0)
    return {
        n: {
            "median": float(np.median(wall[n]) / 1e6),
            "p99": float(np.percentile(wall[n], 99) / 1e6),
            "cpu_median": float(np.median(cpu[n]) / 1e6),
        }
        for n in dets
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--sequences", nargs="+", default=["TUD-Stadtmitte", "TUD-Campus"])
    parser.add_argument("--variants", nargs="+", default=["qop-conv", "qop-all"])
    parser.add_argument("--frames", type=int, default=64, help="calibration frames")
    parser.add_argument("--keep", type=Path, default=None, help="write the int8 files here")
    args = parser.parse_args(argv)
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; k = {K}, from {MIN_FRACTION}")
    src = model_path("yolox_nano")
    inputs = calibration_inputs(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"fp32": src}
        for variant in args.variants:
            paths[variant] = folder / f"yolox_nano_int8_{variant}.onnx"
            quantise(variant, src, paths[variant], inputs)
        first_frames: list[np.ndarray] = []
        for name in args.sequences:
            video = VideoSource(args.data / name / f"{name}.mp4")
            truth = read_mot_truth(args.data / name / "gt" / "gt.txt")
            first_frames += video.frames[:20]
            for label, path in paths.items():
                p = point(
                    matched(YoloxDetector(str(path), threads=2, min_score=0.5), video.frames, truth), 0.5
                )
                print(
                    f"{name:<16}{label:<10} R {100 * p['recall_k']:5.1f} % "
                    f"(per frame {100 * p['recall']:5.1f} %), FP/frame {p['fp_per_frame']:.3f}"
                )
        t = timings(paths, first_frames)
        base = t["fp32"]
        for label, s in t.items():
            print(
                f"time {label:<10} median {s['median']:.2f} ms, p99 {s['p99']:.2f} ms, "
                f"CPU {s['cpu_median']:.2f} ms; / fp32: median {s['median'] / base['median']:.2f}x, "
                f"CPU {s['cpu_median'] / base['cpu_median']:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
