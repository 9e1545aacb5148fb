"""Ground truth of recorded sequences: person boxes per frame in the MOTChallenge text format.

One box per line, comma-separated: `frame, id, x, y, w, h, flag, ...` in pixels, top-left origin, frames
numbered from 1. Further columns (world coordinates in MOT15, class and visibility in MOT16 and later)
are read past. A `flag` of 0 marks a box not to be considered (MOT16+ writes 0 for anything that is not
a pedestrian to be found): it is neither a miss when undetected nor a false positive when detected.
Every error names the file, the line and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MOT_FIELDS = ("frame", "id", "x", "y", "w", "h", "flag")


class TruthError(ValueError):
    """A ground-truth file cannot be read: the message names the file, line and field."""


@dataclass(frozen=True)
class TruthBox:
    """One annotated person in one frame (pixels, top-left origin)."""

    frame: int  # 1-based, as in the file
    track: int
    x: float
    y: float
    w: float
    h: float
    considered: bool  # flag != 0


@dataclass(frozen=True)
class GroundTruth:
    """Every annotated box of a sequence, with where it came from."""

    path: Path
    boxes: tuple[TruthBox, ...]

    @property
    def last_frame(self) -> int:
        """The highest annotated frame number (0 when there are no boxes)."""
        return max((b.frame for b in self.boxes), default=0)

    def in_frame(self, frame: int) -> list[TruthBox]:
        """The boxes of one (1-based) frame, in file order."""
        return [b for b in self.boxes if b.frame == frame]

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Column arrays: frame, track (int64), x0, y0, x1, y1 (float64), considered (bool)."""
        b = self.boxes
        return {
            "frame": np.array([t.frame for t in b], dtype=np.int64),
            "track": np.array([t.track for t in b], dtype=np.int64),
            "x0": np.array([t.x for t in b], dtype=np.float64),
            "y0": np.array([t.y for t in b], dtype=np.float64),
            "x1": np.array([t.x + t.w for t in b], dtype=np.float64),
            "y1": np.array([t.y + t.h for t in b], dtype=np.float64),
            "considered": np.array([t.considered for t in b], dtype=bool),
        }


def _number(text: str, where: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TruthError(f"{where}: field {field}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise TruthError(f"{where}: field {field}: {text.strip()!r} is not a finite number")
    return value


def _integer(text: str, where: str, field: str) -> int:
    value = _number(text, where, field)
    if value != int(value):
        raise TruthError(f"{where}: field {field}: {text.strip()!r} is not a whole number")
    return int(value)


def parse_mot_line(line: str, where: str) -> TruthBox:
    """One MOTChallenge line -> a box; `where` ("file:line") prefixes every error."""
    parts = line.split(",")
    if len(parts) < len(MOT_FIELDS):
        raise TruthError(
            f"{where}: {len(parts)} field(s); expected at least {len(MOT_FIELDS)}: {', '.join(MOT_FIELDS)}"
        )
    frame = _integer(parts[0], where, "frame")
    if frame < 1:
        raise TruthError(f"{where}: field frame: {frame}; frames are numbered from 1")
    track = _integer(parts[1], where, "id")
    x, y, w, h = (_number(parts[i], where, MOT_FIELDS[i]) for i in range(2, 6))
    for name, size in (("w", w), ("h", h)):
        if size <= 0:
            raise TruthError(f"{where}: field {name}: {size:g}; a box's width and height must be > 0")
    flag = _number(parts[6], where, "flag")
    return TruthBox(frame, track, x, y, w, h, flag != 0)


def read_mot_truth(path: str | Path) -> GroundTruth:
    """Read a MOTChallenge ground-truth file (gt.txt); raises TruthError naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TruthError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TruthError(f"{path}: cannot read the ground truth ({exc})") from None
    boxes: list[TruthBox] = []
    seen: dict[tuple[int, int], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        box = parse_mot_line(line, where)
        key = (box.frame, box.track)
        if key in seen:
            raise TruthError(
                f"{where}: field id: track {box.track} already has a box in frame {box.frame} "
                f"(line {seen[key]})"
            )
        seen[key] = number
        boxes.append(box)
    if not boxes:
        raise TruthError(f"{path}: no boxes; expected lines `frame, id, x, y, w, h, flag, ...`")
    return GroundTruth(path, tuple(boxes))
