"""Frame sources for the emulated sensor: synthetic cell scenes, image sequences, video files, faults.

Every source delivers `Frame`s: a C-contiguous uint8 RGB image (H, W, 3), its index, and for synthetic
scenes the ground truth. `read(index, t_ns)` returns the frame exposed at scene time t_ns (nanoseconds
since the source started), or None when the source has ended. Sources are deterministic: reading the
same index and time twice gives the same image.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from cobotguard.sensor.scene import PersonTruth, Scene

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")
MULTI_FRAME_SUFFIXES = (".gif", ".png", ".apng", ".tif", ".tiff", ".webp")


class SourceError(ValueError):
    """A frame source cannot deliver: the message names the file and what was expected."""


@dataclass(frozen=True)
class Frame:
    """One camera frame."""

    image: np.ndarray  # uint8 (H, W, 3) RGB, C-contiguous
    index: int
    truth: tuple[PersonTruth, ...] = ()  # synthetic scenes only


class FrameSource(Protocol):
    """Anything that can hand the emulator a frame for a frame index and exposure time."""

    width_px: int
    height_px: int

    def read(self, index: int, t_ns: int) -> Frame | None:
        """The frame with this index, exposed at scene time t_ns; None at the end of the source."""
        ...


def as_rgb(image: np.ndarray, where: str) -> np.ndarray:
    """Grey, RGB or RGBA uint8 -> C-contiguous RGB uint8; `where` names the frame in errors."""
    if image.dtype != np.uint8:
        raise SourceError(f"{where}: expected 8-bit pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise SourceError(f"{where}: expected a grey, RGB or RGBA image, got shape {image.shape}")
    return np.ascontiguousarray(image)


class SyntheticSource:
    """A rendered `Scene` with sensor read noise, so consecutive frames of a still scene still differ.

    The noise is baked into a few copies of the background (cycled by frame index); people are pasted
    over it without noise, which keeps a frame's cost at one copy plus the pasting.
    """

    def __init__(
        self, scene: Scene, duration_ns: int | None = None, noise_sigma: float = 2.0, seed: int = 0
    ) -> None:
        self.scene = scene
        self.width_px = scene.camera.width_px
        self.height_px = scene.camera.height_px
        self.duration_ns = duration_ns
        rng = np.random.default_rng(seed)
        base = scene.background.astype(np.float64)
        self._backgrounds = [
            np.clip(base + rng.normal(0.0, noise_sigma, base.shape), 0, 255).round().astype(np.uint8)
            for _ in range(4)
        ]

    def read(self, index: int, t_ns: int) -> Frame | None:
        """Render the scene at t_ns over the noisy background of this index."""
        if self.duration_ns is not None and t_ns > self.duration_ns:
            return None
        background = self._backgrounds[index % len(self._backgrounds)]
        image, truth = self.scene.render(t_ns, background=background)
        return Frame(image, index, tuple(truth))


def expand_paths(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """A folder (its images, sorted by name), a glob pattern, one file, or a list of files."""
    if isinstance(spec, str | Path):
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise SourceError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            return found
        if any(ch in str(spec) for ch in "*?["):
            found = [Path(p) for p in sorted(glob.glob(str(spec)))]
            if not found:
                raise SourceError(f"{spec}: the pattern matches no files")
            return found
        return [path]
    return [Path(p) for p in spec]


def read_image(path: Path) -> np.ndarray:
    """Decode one PNG/JPEG/... file to RGB uint8, with an error naming the file when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return as_rgb(np.asarray(img.convert("RGB")), str(path))
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise SourceError(f"{path}: not a readable image ({exc})") from None


class ImageSequenceSource:
    """Frames from image files, one per frame, in order; optionally looping."""

    def __init__(self, spec: str | Path | Sequence[str | Path], loop: bool = False) -> None:
        self.paths = expand_paths(spec)
        self.loop = loop
        first = read_image(self.paths[0])
        self.height_px, self.width_px = first.shape[:2]

    def read(self, index: int, t_ns: int) -> Frame | None:
        """Frame `index` (t_ns is ignored: a recorded sequence has its own timing)."""
        if index >= len(self.paths) and not self.loop:
            return None
        path = self.paths[index % len(self.paths)]
        image = read_image(path)
        if image.shape[:2] != (self.height_px, self.width_px):
            raise SourceError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, the sequence is "
                f"{self.width_px}x{self.height_px}"
            )
        return Frame(image, index)


class VideoSource:
    """Frames of a video file, decoded up front.

    Multi-frame images (animated GIF/PNG/WebP, multi-page TIFF) are read with Pillow. Other containers
    (MP4, AVI, MKV, ...) need PyAV, the optional `video` extra (`pip install 'cobotguard[video]'`; its
    wheels ship FFmpeg); without it such files are refused with an error that says so.
    """

    def __init__(self, path: str | Path, loop: bool = False, max_frames: int = 10_000) -> None:
        self.path = Path(path)
        self.loop = loop
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        if self.path.suffix.lower() in MULTI_FRAME_SUFFIXES:
            self.frames = _pillow_frames(self.path, max_frames)
        else:
            self.frames = _pyav_frames(self.path, max_frames)
        if not self.frames:
            raise SourceError(f"{self.path}: the video has no frames")
        self.height_px, self.width_px = self.frames[0].shape[:2]

    def read(self, index: int, t_ns: int) -> Frame | None:
        """Frame `index` of the video (t_ns is ignored)."""
        if index >= len(self.frames) and not self.loop:
            return None
        return Frame(self.frames[index % len(self.frames)], index)


def _pillow_frames(path: Path, max_frames: int) -> list[np.ndarray]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            frames: list[np.ndarray] = []
            for page in ImageSequence.Iterator(img):
                frames.append(as_rgb(np.asarray(page.convert("RGB")), f"{path} frame {len(frames)}"))
                if len(frames) >= max_frames:
                    break
            return frames
    except (UnidentifiedImageError, OSError) as exc:
        raise SourceError(f"{path}: not a readable video or multi-frame image ({exc})") from None


def _pyav_frames(path: Path, max_frames: int) -> list[np.ndarray]:
    try:
        import av
    except ImportError:
        raise SourceError(
            f"{path}: reading {path.suffix or 'this'} video needs PyAV (`pip install 'cobotguard[video]'`), "
            f"which is not installed; convert it to an image sequence or an animated GIF/PNG instead"
        ) from None
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SourceError(f"{path}: the file has no video stream")
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="rgb24")
                frames.append(as_rgb(np.ascontiguousarray(image), f"{path} frame {len(frames)}"))
                if len(frames) >= max_frames:
                    break
    except SourceError:
        raise
    except Exception as exc:  # FFmpeg's own errors vary by container and codec
        raise SourceError(f"{path}: cannot decode video ({exc})") from None
    return frames


FAULT_KINDS = ("freeze", "cover", "blind", "dark", "bright")


class FaultySource:
    """Wraps a source and injects camera faults on chosen frames (for health tests and the HIL rig).

    freeze: repeat the previous frame's bytes exactly; cover: a dark uniform image (lens covered);
    blind: a white image (lens blinded); dark: exposure / 40; bright: exposure x 4 (clipped).
    """

    def __init__(self, source: FrameSource, faults: Iterable[tuple[int, int, str]]) -> None:
        self.source = source
        self.width_px = source.width_px
        self.height_px = source.height_px
        self.faults = [(int(first), int(last), kind) for first, last, kind in faults]
        for first, last, kind in self.faults:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
            if last < first:
                raise ValueError(f"fault {kind!r}: last frame {last} before first frame {first}")
        self._previous: Frame | None = None

    def fault_at(self, index: int) -> str | None:
        """The fault injected on frame `index`, if any (the first listed wins)."""
        for first, last, kind in self.faults:
            if first <= index <= last:
                return kind
        return None

    def read(self, index: int, t_ns: int) -> Frame | None:
        """The wrapped source's frame, altered by the fault on this index."""
        frame = self.source.read(index, t_ns)
        if frame is None:
            return None
        kind = self.fault_at(index)
        if kind == "freeze" and self._previous is not None:
            frame = Frame(self._previous.image.copy(), index, self._previous.truth)
        elif kind == "cover":
            frame = Frame(np.full_like(frame.image, 20), index, frame.truth)
        elif kind == "blind":
            frame = Frame(np.full_like(frame.image, 255), index, frame.truth)
        elif kind == "dark":
            frame = Frame(frame.image // 40, index, frame.truth)
        elif kind == "bright":
            bright = np.clip(frame.image.astype(np.int16) * 4, 0, 255).astype(np.uint8)
            frame = Frame(bright, index, frame.truth)
        self._previous = frame
        return frame
