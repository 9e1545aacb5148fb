"""Camera geometry: pixels <-> floor, per-detection position uncertainty, and the covered floor area.

Pure numpy (no onnxruntime); used at configuration time and by the sensor path per frame.

Conventions
-----------
* Cell frame: right-handed, x and y on the floor, z up, metres. The floor is the plane z = 0.
* Pixels: continuous coordinates, (0, 0) is the top-left corner of the image, u grows to the right,
  v grows downwards, the image spans [0, W] x [0, H]. A normalised box coordinate times W (or H) is a
  pixel coordinate in this convention.
* Camera frame (OpenCV style): x to the image's right, y to the image's bottom, z along the optical axis.
  u = fx * x / z + cx, v = fy * y / z + cy.
* Mounting pose: `position_m` is the optical centre in the cell frame. With yaw = pitch = roll = 0 the
  camera looks along +x, horizontal, image right = -y, image down = -z. Then, in this order:
  yaw turns the viewing direction about +z (counter-clockwise seen from above, +x toward +y);
  pitch tilts it down (pitch > 0 looks down, 90 deg looks straight down);
  roll turns the image about the viewing axis (roll > 0 turns the image's right axis toward its down axis,
  i.e. the camera rotates clockwise as seen from behind it).
* A floor homography H maps homogeneous floor points (x, y, 1) to pixels: (u, v, 1) ~ H (x, y, 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cobotguard.safety.config import Sensor

ArrayLike = Any  # float or array of floats; results broadcast like numpy


class CameraModelError(ValueError):
    """The sensor's geometry cannot be turned into a camera model; the message says what is missing."""


def pose_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation taking cell-frame vectors to camera-frame vectors (rows: camera right, down, forward)."""
    yaw, pitch, roll = np.radians([yaw_deg, pitch_deg, roll_deg])
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(forward, right)
    right_rolled = np.cos(roll) * right + np.sin(roll) * down
    down_rolled = -np.sin(roll) * right + np.cos(roll) * down
    return np.stack([right_rolled, down_rolled, forward])


def pose_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of `pose_rotation`: (yaw_deg, pitch_deg, roll_deg) of a cell->camera rotation."""
    right, down, forward = rotation
    pitch = np.arcsin(np.clip(-forward[2], -1.0, 1.0))
    horizontal = np.hypot(forward[0], forward[1])
    # Looking straight up or down, yaw is carried by the image axes and roll is zero by choice.
    yaw = np.arctan2(forward[1], forward[0]) if horizontal > 1e-9 else np.arctan2(-right[0], right[1])
    base = pose_rotation(float(np.degrees(yaw)), float(np.degrees(pitch)), 0.0)
    roll = np.arctan2(float(right @ base[1]), float(right @ base[0]))
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def fit_homography(floor_xy: np.ndarray, pixels_uv: np.ndarray) -> np.ndarray:
    """Floor->pixel homography from >= 4 point pairs (normalised DLT, least squares by SVD)."""
    src = np.asarray(floor_xy, dtype=np.float64)
    dst = np.asarray(pixels_uv, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise CameraModelError(
            f"expected two (N, 2) point lists of equal length, got {src.shape} and {dst.shape}"
        )
    if src.shape[0] < 4:
        raise CameraModelError(f"a floor homography needs at least 4 calibration points, got {src.shape[0]}")
    t_src, t_dst = _normaliser(src), _normaliser(dst)
    s = _apply(t_src, src)
    d = _apply(t_dst, dst)
    n = s.shape[0]
    a = np.zeros((2 * n, 9))
    a[0::2, 0:2], a[0::2, 2] = s, 1.0
    a[0::2, 6:8] = -d[:, :1] * s
    a[0::2, 8] = -d[:, 0]
    a[1::2, 3:5], a[1::2, 5] = s, 1.0
    a[1::2, 6:8] = -d[:, 1:2] * s
    a[1::2, 8] = -d[:, 1]
    _, singular, vt = np.linalg.svd(a)
    if singular.size >= 8 and singular[7] < 1e-9 * singular[0]:
        raise CameraModelError("calibration points are degenerate (three or more on one line?)")
    h_norm = vt[-1].reshape(3, 3)
    h = np.linalg.inv(t_dst) @ h_norm @ t_src
    return h / np.linalg.norm(h)


def _normaliser(points: np.ndarray) -> np.ndarray:
    """Hartley normalisation: centroid to the origin, mean distance sqrt(2)."""
    centre = points.mean(axis=0)
    spread = np.sqrt(((points - centre) ** 2).sum(axis=1)).mean()
    if spread <= 0.0:
        raise CameraModelError("calibration points all coincide")
    scale = np.sqrt(2.0) / spread
    return np.array([[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]], [0.0, 0.0, 1.0]])


def _apply(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to (N, 2) points."""
    p = np.column_stack([points, np.ones(points.shape[0])]) @ h.T
    return p[:, :2] / p[:, 2:3]


def intrinsic_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3x3 pinhole matrix K."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _focal_from_homography(h: np.ndarray, cx: float, cy: float) -> float:
    """Focal length (square pixels, principal point known) implied by a floor homography (Zhang)."""
    m = np.linalg.inv(intrinsic_matrix(1.0, 1.0, cx, cy)) @ h
    h1, h2 = m[:, 0], m[:, 1]
    estimates = []
    denominator = h1[2] * h2[2]
    if abs(denominator) > 1e-12:
        estimates.append(-(h1[0] * h2[0] + h1[1] * h2[1]) / denominator)
    denominator = h2[2] ** 2 - h1[2] ** 2
    if abs(denominator) > 1e-12:
        estimates.append((h1[0] ** 2 + h1[1] ** 2 - h2[0] ** 2 - h2[1] ** 2) / denominator)
    good = [e for e in estimates if np.isfinite(e) and e > 0.0]
    if not good:
        raise CameraModelError(
            "the calibration points alone do not fix the focal length (camera looking straight down?); "
            "give intrinsics as well"
        )
    return float(np.sqrt(good[0]))


def _pose_from_homography(h: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (cell->camera) and optical centre in the cell frame from H = K [r1 r2 t]."""
    m = np.linalg.inv(k) @ h
    scale = 2.0 / (np.linalg.norm(m[:, 0]) + np.linalg.norm(m[:, 1]))
    r1, r2, t = scale * m[:, 0], scale * m[:, 1], scale * m[:, 2]
    if t[2] < 0.0:  # choose the sign that puts the floor in front of the camera
        r1, r2, t = -r1, -r2, -t
    rotation_cols = np.column_stack([r1, r2, np.cross(r1, r2)])
    u, _, vt = np.linalg.svd(rotation_cols)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0.0:
        raise CameraModelError(
            "calibration points describe a mirrored floor frame (x, y, z up must be right-handed)"
        )
    centre = -rotation.T @ t
    if centre[2] <= 0.0:
        raise CameraModelError(
            "calibration points put the camera below the floor; check the floor coordinates"
        )
    return rotation, centre


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera over the floor plane; geometry queries broadcast over numpy arrays."""

    k: np.ndarray  # 3x3 intrinsics
    rotation: np.ndarray  # 3x3, cell -> camera
    centre_m: np.ndarray  # optical centre in the cell frame
    homography: np.ndarray  # 3x3, floor (x, y, 1) -> pixel (u, v, 1)
    width_px: int
    height_px: int

    @classmethod
    def from_pose(
        cls,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        position_m: tuple[float, float, float],
        yaw_deg: float,
        pitch_deg: float,
        roll_deg: float,
        width_px: int,
        height_px: int,
    ) -> CameraModel:
        """A camera from intrinsics and its mounting pose."""
        k = intrinsic_matrix(fx, fy, cx, cy)
        rotation = pose_rotation(yaw_deg, pitch_deg, roll_deg)
        centre = np.asarray(position_m, dtype=np.float64)
        if centre[2] <= 0.0:
            raise CameraModelError(f"camera height must be above the floor, got z = {centre[2]} m")
        t = -rotation @ centre
        homography = k @ np.column_stack([rotation[:, 0], rotation[:, 1], t])
        return cls(k, rotation, centre, homography / np.linalg.norm(homography), width_px, height_px)

    @classmethod
    def from_calibration(
        cls,
        floor_xy: np.ndarray,
        pixels_uv: np.ndarray,
        width_px: int,
        height_px: int,
        intrinsics: tuple[float, float, float, float] | None = None,
    ) -> CameraModel:
        """A camera from >= 4 floor points and the pixels that see them.

        The fitted homography maps pixels to the floor. The pose (needed for how tall a person looks) is
        recovered from it with the given intrinsics (fx, fy, cx, cy), or, without them, assuming square
        pixels and the principal point at the image centre.
        """
        homography = fit_homography(floor_xy, pixels_uv)
        floor_h = np.column_stack([np.asarray(floor_xy, dtype=np.float64), np.ones(len(floor_xy))])
        if np.median((floor_h @ homography.T)[:, 2]) < 0.0:
            homography = -homography
        if intrinsics is None:
            cx, cy = width_px / 2.0, height_px / 2.0
            f = _focal_from_homography(homography, cx, cy)
            k = intrinsic_matrix(f, f, cx, cy)
        else:
            k = intrinsic_matrix(*intrinsics)
        rotation, centre = _pose_from_homography(homography, k)
        return cls(k, rotation, centre, homography, width_px, height_px)

    @classmethod
    def from_config(cls, sensor_cfg: Sensor) -> CameraModel:
        """The camera of one configured sensor: intrinsics + mounting if given, else calibration points."""
        s = sensor_cfg
        intr = s.intrinsics
        if intr is not None and s.mounting is not None:
            m = s.mounting
            return cls.from_pose(
                intr.fx_px, intr.fy_px, intr.cx_px, intr.cy_px, m.position_m,
                m.yaw_deg, m.pitch_deg, m.roll_deg, s.image_width_px, s.image_height_px,
            )  # fmt: skip
        if s.calibration_points:
            floor = np.array([p.floor_m for p in s.calibration_points], dtype=np.float64)
            pixels = np.array([p.pixel for p in s.calibration_points], dtype=np.float64)
            k_tuple = None if intr is None else (intr.fx_px, intr.fy_px, intr.cx_px, intr.cy_px)
            return cls.from_calibration(floor, pixels, s.image_width_px, s.image_height_px, k_tuple)
        raise CameraModelError(
            "needs intrinsics and mounting, or at least 4 calibration_points (pixel + floor_m)"
        )

    # -- geometry ---------------------------------------------------------------------------------

    @property
    def pose_deg(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees, in the module's mounting conventions."""
        return pose_angles(self.rotation)

    def pixel_to_floor(self, u: ArrayLike, v: ArrayLike) -> tuple[Any, Any]:
        """Floor (x, y) seen at pixel (u, v); NaN where the pixel's ray does not meet the floor ahead."""
        u_arr, v_arr = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))
        pix = np.stack([u_arr, v_arr, np.ones_like(u_arr)], axis=-1)
        ray_cam = pix @ np.linalg.inv(self.k).T
        ray_cell = ray_cam @ self.rotation  # R^T applied to each row
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -self.centre_m[2] / ray_cell[..., 2]
            ok = ray_cell[..., 2] < -1e-12
            x = np.where(ok, self.centre_m[0] + t * ray_cell[..., 0], np.nan)
            y = np.where(ok, self.centre_m[1] + t * ray_cell[..., 1], np.nan)
        if np.ndim(u) == 0 and np.ndim(v) == 0:
            return float(x), float(y)
        return x, y

    def project(self, x: ArrayLike, y: ArrayLike, z: ArrayLike = 0.0) -> tuple[Any, Any]:
        """Pixel (u, v) of cell point (x, y, z); NaN for points behind the camera."""
        xa, ya, za = np.broadcast_arrays(
            np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64)
        )
        points = np.stack([xa, ya, za], axis=-1) - self.centre_m
        cam = points @ self.rotation.T
        pix = cam @ self.k.T
        with np.errstate(divide="ignore", invalid="ignore"):
            ahead = cam[..., 2] > 1e-9
            u = np.where(ahead, pix[..., 0] / pix[..., 2], np.nan)
            v = np.where(ahead, pix[..., 1] / pix[..., 2], np.nan)
        if np.ndim(x) == 0 and np.ndim(y) == 0 and np.ndim(z) == 0:
            return float(u), float(v)
        return u, v

    def floor_to_pixel(self, x: ArrayLike, y: ArrayLike) -> tuple[Any, Any]:
        """Pixel (u, v) that sees floor point (x, y); NaN behind the camera."""
        return self.project(x, y, 0.0)

    def reprojection_error_px(self, floor_xy: np.ndarray, pixels_uv: np.ndarray) -> np.ndarray:
        """Pixel distance between where each floor point projects and the pixel said to see it
        (to check calibration points against a mounting pose, or a fit against its own points)."""
        floor = np.asarray(floor_xy, dtype=np.float64).reshape(-1, 2)
        pixels = np.asarray(pixels_uv, dtype=np.float64).reshape(-1, 2)
        u, v = self.floor_to_pixel(floor[:, 0], floor[:, 1])
        return np.hypot(np.asarray(u) - pixels[:, 0], np.asarray(v) - pixels[:, 1])

    def footprint_uncertainty_m(self, u: ArrayLike, v: ArrayLike, pixels: float = 1.0) -> Any:
        """Z_d from geometry: farthest floor distance from (u, v)'s floor point to the corners of a
        `pixels`-wide square of pixels centred on it (inf where the square leaves the floor)."""
        half = pixels / 2.0
        x0, y0 = self.pixel_to_floor(u, v)
        worst = np.zeros(np.shape(x0))
        for du, dv in ((-half, -half), (half, -half), (-half, half), (half, half)):
            x1, y1 = self.pixel_to_floor(np.asarray(u) + du, np.asarray(v) + dv)
            worst = np.maximum(worst, np.hypot(np.asarray(x1) - x0, np.asarray(y1) - y0))
        worst = np.where(np.isnan(worst), np.inf, worst)
        return float(worst) if np.ndim(worst) == 0 else worst

    def person_height_px(self, x: ArrayLike, y: ArrayLike, height_m: float) -> Any:
        """Image length (pixels) of a vertical person of `height_m` standing at floor (x, y)."""
        uf, vf = self.project(x, y, 0.0)
        uh, vh = self.project(x, y, height_m)
        return np.hypot(np.asarray(uh) - uf, np.asarray(vh) - vf)

    def in_image(self, u: ArrayLike, v: ArrayLike) -> Any:
        """True where (u, v) lies inside the image (edges included)."""
        u_arr, v_arr = np.asarray(u), np.asarray(v)
        return (u_arr >= 0.0) & (u_arr <= self.width_px) & (v_arr >= 0.0) & (v_arr <= self.height_px)

    def visible_person(self, u: ArrayLike, v: ArrayLike, height_m: float, min_height_px: float) -> Any:
        """True where a person whose foot point is at pixel (u, v) is fully in the image and tall enough."""
        x, y = self.pixel_to_floor(u, v)
        uh, vh = self.project(x, y, height_m)
        tall = np.hypot(np.asarray(uh) - u, np.asarray(vh) - v) >= min_height_px
        return self.in_image(u, v) & self.in_image(uh, vh) & tall & np.isfinite(x)


def covered_polygon(sensor_cfg: Sensor, columns: int = 97, rows: int = 241) -> np.ndarray:
    """Floor polygon (K, 2), counter-clockwise, where this sensor can see the smallest declared person.

    A foot point counts when a person of `assumed_person_height_m` standing there is at least
    `min_person_height_px` tall in the image and fully inside it. The region is traced column by column
    in the image; each column keeps one contiguous run of good foot pixels, its ends refined by bisection
    and then kept on the good side, so the polygon never claims area that fails the test at the samples.
    An empty (0, 2) array means the sensor covers nothing.
    """
    cam = CameraModel.from_config(sensor_cfg)
    return covered_polygon_of(
        cam, sensor_cfg.assumed_person_height_m, sensor_cfg.min_person_height_px, columns, rows
    )


def covered_polygon_of(
    cam: CameraModel, person_height_m: float, min_height_px: float, columns: int = 97, rows: int = 241
) -> np.ndarray:
    """`covered_polygon` for an explicit camera model and detection capability."""
    us = np.linspace(0.0, cam.width_px, columns)
    vs = np.linspace(0.0, cam.height_px, rows)
    good = cam.visible_person(us[None, :], vs[:, None], person_height_m, min_height_px)  # (rows, columns)

    runs: list[tuple[int, int] | None] = [_longest_run(good[:, c]) for c in range(columns)]
    col_run = _longest_run(np.array([r is not None for r in runs]))
    if col_run is None:
        return np.zeros((0, 2))
    cols = np.arange(col_run[0], col_run[1] + 1)
    first = np.array([runs[c][0] for c in cols])  # type: ignore[index]
    last = np.array([runs[c][1] for c in cols])  # type: ignore[index]
    u_cols = us[cols]
    # Refine each run's ends between the last good and the first bad sample (all columns at once).
    v_top = _bisect(cam, u_cols, vs[first], vs[np.maximum(first - 1, 0)], person_height_m, min_height_px)
    v_bot = _bisect(cam, u_cols, vs[last], vs[np.minimum(last + 1, rows - 1)], person_height_m, min_height_px)
    top = np.column_stack([u_cols, v_top])
    bottom = np.column_stack([u_cols, v_bot])
    outline = np.vstack([top, bottom[::-1]])
    x, y = cam.pixel_to_floor(outline[:, 0], outline[:, 1])
    polygon = np.column_stack([x, y])
    polygon = polygon[np.isfinite(polygon).all(axis=1)]
    if polygon.shape[0] < 3:
        return np.zeros((0, 2))
    polygon = _drop_repeats(polygon)
    if _signed_area(polygon) < 0.0:
        polygon = polygon[::-1]
    return polygon


def _longest_run(mask: np.ndarray) -> tuple[int, int] | None:
    """(first, last) index of the longest run of True, or None."""
    best: tuple[int, int] | None = None
    start = -1
    for i, flag in enumerate(np.append(mask, False)):
        if flag and start < 0:
            start = i
        elif not flag and start >= 0:
            if best is None or (i - 1 - start) > (best[1] - best[0]):
                best = (start, i - 1)
            start = -1
    return best


def _bisect(
    cam: CameraModel, u: np.ndarray, v_good: np.ndarray, v_bad: np.ndarray, height_m: float, min_px: float
) -> np.ndarray:
    """Per column, the boundary between a good and a bad foot pixel, returned on the good side.

    Where v_good equals v_bad (the run reaches the image edge) the good sample is returned unchanged.
    """
    good = np.asarray(v_good, dtype=np.float64).copy()
    bad = np.asarray(v_bad, dtype=np.float64).copy()
    for _ in range(30):
        mid = 0.5 * (good + bad)
        ok = np.asarray(cam.visible_person(u, mid, height_m, min_px), dtype=bool)
        good = np.where(ok, mid, good)
        bad = np.where(ok, bad, mid)
    return good


def _drop_repeats(polygon: np.ndarray) -> np.ndarray:
    """Remove consecutive duplicate vertices (and a closing duplicate)."""
    keep = np.ones(len(polygon), dtype=bool)
    keep[1:] = np.hypot(*(polygon[1:] - polygon[:-1]).T) > 1e-9
    out = polygon[keep]
    if len(out) > 1 and np.hypot(*(out[0] - out[-1])) <= 1e-9:
        out = out[:-1]
    return out


def _signed_area(polygon: np.ndarray) -> float:
    """Shoelace area, positive for counter-clockwise."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
