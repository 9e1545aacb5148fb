"""Synthetic cell scenes: real photos of people walking on a rendered floor, seen through the camera model.

The people are cut from photos that ship with scikit-image and matplotlib (the astronaut Eileen Collins,
the cameraman, Grace Hopper). They are portraits, not full-body shots: each shows only the top part of a
standing person (`Sprite.body_share`, measured from the head size in the photo: about 50 % of the body
for the astronaut, 61 % for the cameraman, 29 % for Grace Hopper). A walker is drawn in one of two ways:

- true extent (`Walker(..., true_extent=True)`): the cut-out covers only that top share of a person of
  `height_m` standing at the floor point: its top at the head, scaled to the body share, the legs not
  drawn (as if hidden). The ground truth box is the visible part; `height_fraction` is still the whole
  person's apparent height. This is the realistic case, and the one recall is measured on: what the
  detector sees is an upper body of the size it would have on a real person at that distance.
- stand-in (the default, kept for the controller demos): the cut-out is stretched to the person's full
  projected height with its bottom centre on the foot point, so the foot point the sensor path takes from
  the box bottom is the person's floor position. A portrait stretched to a standing person's height is
  not a realistic walker (an upper body 1.5-1.75 m tall); do not measure detection capability on it.

A scene is deterministic: the same time gives the same image and the same ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cobotguard.safety.camera import CameraModel

# (y0, x0, y1, x1) of the person in each photo, in that photo's pixels.
PERSON_CROPS: dict[str, tuple[int, int, int, int]] = {
    "astronaut": (20, 0, 512, 380),
    "cameraman": (55, 0, 512, 310),
    "grace_hopper": (10, 0, 600, 512),
}
# Twice the eye-to-chin distance in each photo's pixels (the eyes sit half-way down an adult head),
# measured by eye on the photos; an adult standing is about 7.5 heads tall (artists' canon).
HEAD_HEIGHT_PX: dict[str, float] = {"astronaut": 130.0, "cameraman": 100.0, "grace_hopper": 270.0}
HEADS_PER_BODY = 7.5
FEATHER = 0.06  # share of the cut-out's width/height blended into the background at its edges


def load_photo(name: str) -> np.ndarray:
    """The RGB photo (uint8 H,W,3) that person `name` comes from (needs scikit-image / matplotlib)."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    if name == "cameraman":
        from skimage import data

        return np.ascontiguousarray(np.repeat(data.camera()[:, :, None], 3, axis=2))
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        with Image.open(path) as img:
            return np.ascontiguousarray(np.asarray(img.convert("RGB")))
    raise ValueError(f"unknown person photo {name!r}; expected one of {sorted(PERSON_CROPS)}")


@dataclass(frozen=True)
class Sprite:
    """A person cut-out: RGB pixels and a feathered alpha of the same size."""

    name: str
    rgb: np.ndarray  # uint8 (h, w, 3)
    alpha: np.ndarray  # float32 (h, w) in [0, 1]
    body_share: float = 1.0  # share of a standing person's height (from the head down) the cut-out shows

    @property
    def aspect(self) -> float:
        """Width over height."""
        return self.rgb.shape[1] / self.rgb.shape[0]


def load_sprite(name: str) -> Sprite:
    """Cut person `name` out of its photo, with soft edges so no hard rectangle is pasted."""
    y0, x0, y1, x1 = PERSON_CROPS[name]
    rgb = np.ascontiguousarray(load_photo(name)[y0:y1, x0:x1])
    h, w = rgb.shape[:2]
    ramp_y = np.clip(np.minimum(np.arange(h), h - 1 - np.arange(h)) / (FEATHER * h), 0.0, 1.0)
    ramp_x = np.clip(np.minimum(np.arange(w), w - 1 - np.arange(w)) / (FEATHER * w), 0.0, 1.0)
    ramp_y[h // 2 :] = 1.0  # the feet stay sharp: the box bottom is the foot point
    alpha = (ramp_y[:, None] * ramp_x[None, :]).astype(np.float32)
    return Sprite(name, rgb, alpha, body_share(name))


def body_share(name: str) -> float:
    """Share of a standing person's height that the cut-out of `name` shows, from its head size."""
    y0, _, y1, _ = PERSON_CROPS[name]
    return min(1.0, (y1 - y0) / (HEADS_PER_BODY * HEAD_HEIGHT_PX[name]))


@dataclass(frozen=True)
class Trajectory:
    """Piecewise-linear floor path: (t_ns, x_m, y_m) waypoints with increasing times."""

    times_ns: np.ndarray
    xy_m: np.ndarray  # (K, 2)

    @classmethod
    def from_points(cls, points: Sequence[tuple[int, float, float]]) -> Trajectory:
        """Build from (t_ns, x_m, y_m) tuples; times must increase."""
        arr = np.asarray(points, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 1:
            raise ValueError("a trajectory needs (t_ns, x_m, y_m) waypoints")
        times = arr[:, 0].astype(np.int64)
        if np.any(np.diff(times) <= 0):
            raise ValueError("trajectory waypoint times must increase")
        return cls(times, arr[:, 1:].copy())

    @classmethod
    def walk(
        cls, start_xy: tuple[float, float], end_xy: tuple[float, float], speed_mps: float, t_start_ns: int = 0
    ) -> Trajectory:
        """A straight walk from start to end at constant speed."""
        distance = float(np.hypot(end_xy[0] - start_xy[0], end_xy[1] - start_xy[1]))
        if speed_mps <= 0.0 or distance <= 0.0:
            raise ValueError("a walk needs a positive speed and two different points")
        duration_ns = int(round(distance / speed_mps * 1e9))
        return cls.from_points([(t_start_ns, *start_xy), (t_start_ns + duration_ns, *end_xy)])

    def position_at(self, t_ns: int) -> tuple[float, float] | None:
        """Floor position at time t, or None before the first / after the last waypoint."""
        if t_ns < self.times_ns[0] or t_ns > self.times_ns[-1]:
            return None
        x = float(np.interp(t_ns, self.times_ns, self.xy_m[:, 0]))
        y = float(np.interp(t_ns, self.times_ns, self.xy_m[:, 1]))
        return x, y


@dataclass(frozen=True)
class Walker:
    """One person in a scene: which photo, how tall, where and when."""

    sprite: Sprite
    path: Trajectory
    height_m: float = 1.75
    true_extent: bool = False  # draw only the body share the photo shows (see the module docstring)


@dataclass(frozen=True)
class PersonTruth:
    """Ground truth of one person in one rendered frame."""

    name: str
    x_m: float
    y_m: float
    box: tuple[float, float, float, float]  # pasted cut-out, normalised y0, x0, y1, x1, clipped to the image
    height_fraction: float  # the whole person's unclipped apparent height over the image height
    fully_visible: bool  # the drawn cut-out lies inside the image
    visible_fraction: float = -1.0  # the drawn cut-out's unclipped height over the image height


@dataclass
class Scene:
    """A floor seen by one camera with people walking on it; `render(t_ns)` draws one frame."""

    camera: CameraModel
    walkers: list[Walker] = field(default_factory=list)
    tile_m: float = 0.5
    seed: int = 0
    background: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.background = render_floor(self.camera, self.tile_m, self.seed)

    def render(
        self, t_ns: int, out: np.ndarray | None = None, background: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[PersonTruth]]:
        """The frame at scene time t (uint8 H,W,3) and the ground truth of everyone drawn in it.

        `out` receives the frame when given; `background` replaces the scene's own (e.g. a noisy copy).
        """
        cam = self.camera
        floor = self.background if background is None else background
        frame = floor.copy() if out is None else out
        if out is not None:
            np.copyto(frame, floor)
        placed = []
        for walker in self.walkers:
            xy = walker.path.position_at(t_ns)
            if xy is None:
                continue
            u, v = cam.floor_to_pixel(*xy)
            if not np.isfinite(u):
                continue
            depth = float(np.hypot(xy[0] - cam.centre_m[0], xy[1] - cam.centre_m[1]))
            placed.append((depth, walker, xy, u, v))
        truths = []
        for _, walker, xy, u, v in sorted(placed, key=lambda p: -p[0]):  # far ones first
            height_px = float(cam.person_height_px(xy[0], xy[1], walker.height_m))
            if walker.true_extent:  # the cut-out spans heights [(1 - share) * h, h] above the floor point
                low_m = walker.height_m * (1.0 - walker.sprite.body_share)
                u_top, v_top = (float(c) for c in cam.project(xy[0], xy[1], walker.height_m))
                u, v = (float(c) for c in cam.project(xy[0], xy[1], low_m))
                drawn_px = float(np.hypot(u - u_top, v - v_top))
            else:
                drawn_px = height_px
            truth = paste(frame, walker.sprite, u, v, drawn_px)
            if truth is not None:
                y0, x0, y1, x1, full = truth
                truths.append(
                    PersonTruth(
                        walker.sprite.name,
                        xy[0],
                        xy[1],
                        (y0, x0, y1, x1),
                        height_px / cam.height_px,
                        full,
                        drawn_px / cam.height_px,
                    )
                )
        return frame, truths


def paste(
    frame: np.ndarray, sprite: Sprite, u_foot: float, v_foot: float, height_px: float
) -> tuple[float, float, float, float, bool] | None:
    """Alpha-blend the sprite scaled to `height_px` with its bottom centre at (u, v); returns the clipped
    normalised box and whether it is fully inside, or None when nothing of it is visible."""
    from PIL import Image

    frame_h, frame_w = frame.shape[:2]
    h = int(round(height_px))
    w = int(round(height_px * sprite.aspect))
    if h < 2 or w < 2:
        return None
    top = int(round(v_foot)) - h
    left = int(round(u_foot - w / 2.0))
    r0, r1 = max(top, 0), min(top + h, frame_h)
    c0, c1 = max(left, 0), min(left + w, frame_w)
    if r0 >= r1 or c0 >= c1:
        return None
    rgb = np.asarray(Image.fromarray(sprite.rgb).resize((w, h), Image.Resampling.BILINEAR))
    alpha = np.asarray(Image.fromarray(sprite.alpha, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    sr, sc = slice(r0 - top, r1 - top), slice(c0 - left, c1 - left)
    a = alpha[sr, sc, None]
    region = frame[r0:r1, c0:c1]
    region[...] = (a * rgb[sr, sc] + (1.0 - a) * region + 0.5).astype(np.uint8)
    full = top >= 0 and left >= 0 and top + h <= frame_h and left + w <= frame_w
    return r0 / frame_h, c0 / frame_w, r1 / frame_h, c1 / frame_w, full


def render_floor(cam: CameraModel, tile_m: float = 0.5, seed: int = 0) -> np.ndarray:
    """A tiled concrete floor and a plain back wall, as the camera sees them (uint8 H,W,3)."""
    rng = np.random.default_rng(seed)
    h, w = cam.height_px, cam.width_px
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x, y = cam.pixel_to_floor(u, v)
    on_floor = np.isfinite(x) & (np.hypot(x - cam.centre_m[0], y - cam.centre_m[1]) < 30.0)
    xs, ys = np.where(on_floor, x, 0.0), np.where(on_floor, y, 0.0)
    fx, fy = np.mod(xs / tile_m, 1.0), np.mod(ys / tile_m, 1.0)
    grout = (np.minimum(fx, 1 - fx) < 0.02) | (np.minimum(fy, 1 - fy) < 0.02)
    shade = 0.08 * np.sin(0.7 * xs + 0.3) * np.cos(0.5 * ys)
    floor = 130.0 * (1.0 + shade) - 15.0 * grout  # a real concrete floor: faint joints
    wall = 165.0 - 25.0 * v / h
    grey = np.where(on_floor, floor, wall) + rng.normal(0.0, 3.0, (h, w))
    tint = np.array([1.0, 0.98, 0.93])
    return np.ascontiguousarray(np.clip(grey[:, :, None] * tint, 0, 255).astype(np.uint8))
