"""Camera geometry: projection round trips, homography vs pose, uncertainty and covered area."""

import numpy as np
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.safety.camera import (
    CameraModel,
    CameraModelError,
    covered_polygon,
    covered_polygon_of,
    fit_homography,
    pose_angles,
    pose_rotation,
)
from cobotguard.safety.config import CalibrationPoint, Intrinsics, Mounting, Sensor

W, H = 640, 480


def sensor(**geometry: object) -> Sensor:
    """A sensor block with the given geometry and typical detection capability."""
    base = dict(
        connection_id=1, frame_rate_hz=30.0, exposure_readout_ms=10.0, inference_worst_ms=20.0,
        transport_latency_ms=1.0, tolerated_missed_frames=1, max_persons=8, image_width_px=W,
        image_height_px=H, min_person_height_px=120.0, assumed_person_height_m=1.5,
        position_uncertainty_m=0.1, min_score=0.5,
    )  # fmt: skip
    base.update(geometry)
    return Sensor(**base)


def pose_sensor(yaw: float = 0.0, pitch: float = 35.0, roll: float = 0.0, z: float = 3.0) -> Sensor:
    return sensor(
        intrinsics=Intrinsics(fx_px=500.0, fy_px=500.0, cx_px=320.0, cy_px=240.0),
        mounting=Mounting(position_m=(0.0, 0.0, z), yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll),
    )


poses = st.tuples(
    st.floats(-180.0, 180.0), st.floats(15.0, 89.0), st.floats(-30.0, 30.0), st.floats(1.0, 6.0)
)


@given(pose=poses, u=st.floats(0.0, W), v=st.floats(0.0, H))
def test_pixel_floor_pixel_round_trip(pose: tuple[float, float, float, float], u: float, v: float) -> None:
    cam = CameraModel.from_config(pose_sensor(*pose))
    x, y = cam.pixel_to_floor(u, v)
    if np.isnan(x):  # above the horizon: no floor there
        return
    u2, v2 = cam.floor_to_pixel(x, y)
    assert u2 == pytest.approx(u, abs=1e-6)
    assert v2 == pytest.approx(v, abs=1e-6)


@given(pose=poses, fu=st.floats(0.05, 0.95), fv=st.floats(0.05, 0.95))
def test_floor_pixel_floor_round_trip(pose: tuple[float, float, float, float], fu: float, fv: float) -> None:
    cam = CameraModel.from_config(pose_sensor(*pose))
    x, y = cam.pixel_to_floor(fu * W, fv * H)
    if np.isnan(x) or np.hypot(x, y) > 50.0:
        return
    u, v = cam.floor_to_pixel(x, y)
    x2, y2 = cam.pixel_to_floor(u, v)
    assert (x2, y2) == pytest.approx((x, y), abs=1e-6 * max(1.0, np.hypot(x, y)))


def test_mounting_conventions() -> None:
    # Looking along +x and down: the image centre sees the floor ahead on +x, at height / tan(pitch).
    cam = CameraModel.from_config(pose_sensor(yaw=0.0, pitch=45.0, z=2.0))
    x, y = cam.pixel_to_floor(320.0, 240.0)
    assert (x, y) == pytest.approx((2.0, 0.0))
    # Image right is -y (to the camera's right when looking along +x), image bottom is nearer.
    _, y_right = cam.pixel_to_floor(600.0, 240.0)
    x_bottom, _ = cam.pixel_to_floor(320.0, 470.0)
    assert y_right < 0.0 and x_bottom < 2.0
    # yaw 90 deg looks along +y.
    cam90 = CameraModel.from_config(pose_sensor(yaw=90.0, pitch=45.0, z=2.0))
    assert cam90.pixel_to_floor(320.0, 240.0) == pytest.approx((0.0, 2.0))
    # Above the horizon there is no floor.
    flat = CameraModel.from_config(pose_sensor(pitch=10.0))
    assert np.isnan(flat.pixel_to_floor(320.0, 0.0)[0])


@given(pose=st.tuples(st.floats(-179.0, 179.0), st.floats(-80.0, 89.0), st.floats(-60.0, 60.0)))
def test_pose_angles_invert_rotation(pose: tuple[float, float, float]) -> None:
    r = pose_rotation(*pose)
    assert r @ r.T == pytest.approx(np.eye(3), abs=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    assert pose_rotation(*pose_angles(r)) == pytest.approx(r, abs=1e-9)


@pytest.mark.parametrize("with_intrinsics", [True, False])
@pytest.mark.parametrize("pose", [(0.0, 35.0, 0.0, 3.0), (40.0, 50.0, 8.0, 2.5), (-120.0, 25.0, -5.0, 4.0)])
def test_homography_agrees_with_pose(pose: tuple[float, float, float, float], with_intrinsics: bool) -> None:
    truth = CameraModel.from_config(pose_sensor(*pose))
    pixels = np.array([[60.0, 300.0], [580.0, 310.0], [330.0, 470.0], [120.0, 440.0], [500.0, 420.0]])
    floor = np.column_stack(truth.pixel_to_floor(pixels[:, 0], pixels[:, 1]))
    points = [CalibrationPoint(pixel=tuple(p), floor_m=tuple(f)) for p, f in zip(pixels, floor, strict=True)]
    intr = Intrinsics(fx_px=500.0, fy_px=500.0, cx_px=320.0, cy_px=240.0) if with_intrinsics else None
    fitted = CameraModel.from_config(sensor(calibration_points=points, intrinsics=intr))

    assert fitted.centre_m == pytest.approx(truth.centre_m, abs=1e-6)
    assert fitted.pose_deg == pytest.approx(truth.pose_deg, abs=1e-6)
    grid_u, grid_v = np.meshgrid(np.linspace(0, W, 9), np.linspace(H / 2, H, 5))
    assert np.column_stack(fitted.pixel_to_floor(grid_u.ravel(), grid_v.ravel())) == pytest.approx(
        np.column_stack(truth.pixel_to_floor(grid_u.ravel(), grid_v.ravel())), abs=1e-6
    )


def test_homography_fit_with_pixel_noise_stays_close() -> None:
    truth = CameraModel.from_config(pose_sensor(20.0, 40.0, 0.0, 3.0))
    rng = np.random.default_rng(4)
    pixels = np.column_stack([rng.uniform(20, W - 20, 12), rng.uniform(H / 2, H - 10, 12)])
    floor = np.column_stack(truth.pixel_to_floor(pixels[:, 0], pixels[:, 1]))
    noisy = pixels + rng.normal(0.0, 0.5, pixels.shape)
    fitted = CameraModel.from_calibration(floor, noisy, W, H, (500.0, 500.0, 320.0, 240.0))
    xy = np.column_stack(fitted.pixel_to_floor(pixels[:, 0], pixels[:, 1]))
    assert np.abs(xy - floor).max() < 0.03
    assert fitted.reprojection_error_px(floor, noisy).max() < 3.0
    # A mounting pose that disagrees with the points by a few degrees shows up in pixels.
    tilted = CameraModel.from_config(pose_sensor(20.0, 43.0, 0.0, 3.0))
    assert tilted.reprojection_error_px(floor, pixels).min() > 5.0


def test_calibration_errors_are_clear() -> None:
    with pytest.raises(CameraModelError, match="at least 4"):
        fit_homography(np.zeros((3, 2)), np.zeros((3, 2)))
    collinear = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    with pytest.raises(CameraModelError, match="degenerate"):
        fit_homography(collinear, collinear * 100.0)
    with pytest.raises(CameraModelError, match="calibration_points"):
        CameraModel.from_config(sensor())
    # Straight down without intrinsics: the focal length is not fixed by the floor alone.
    down = CameraModel.from_config(pose_sensor(pitch=90.0))
    pixels = np.array([[100.0, 100.0], [500.0, 120.0], [520.0, 400.0], [90.0, 380.0]])
    floor = np.column_stack(down.pixel_to_floor(pixels[:, 0], pixels[:, 1]))
    with pytest.raises(CameraModelError, match="intrinsics"):
        CameraModel.from_calibration(floor, pixels, W, H)


def test_footprint_uncertainty_grows_with_range() -> None:
    cam = CameraModel.from_config(pose_sensor(pitch=35.0))
    near = cam.footprint_uncertainty_m(320.0, 460.0)
    far = cam.footprint_uncertainty_m(320.0, 150.0)
    assert 0.0 < near < far
    # One pixel at range r with focal f spans about r / f (more along the floor when seen at a slant).
    x, y = cam.pixel_to_floor(320.0, 460.0)
    assert near >= 0.5 * np.hypot(np.hypot(x, y), 3.0) / 500.0 * np.sqrt(2.0) / 2.0
    shallow = CameraModel.from_config(pose_sensor(pitch=20.0))
    assert shallow.footprint_uncertainty_m(320.0, 0.0) == np.inf  # above the horizon
    assert cam.footprint_uncertainty_m(np.array([320.0, 320.0]), np.array([460.0, 150.0])).shape == (2,)


def test_covered_polygon_only_claims_visible_people() -> None:
    cfg = pose_sensor(yaw=30.0, pitch=35.0, roll=5.0)
    cam = CameraModel.from_config(cfg)
    poly = covered_polygon(cfg)
    shape = shapely.Polygon(poly)
    assert shape.is_valid and shape.area > 1.0
    # Points well inside: the person is tall enough and fully in view.
    inner = shape.buffer(-0.05)
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = inner.bounds
    pts = np.column_stack([rng.uniform(minx, maxx, 4000), rng.uniform(miny, maxy, 4000)])
    inside = shapely.contains_xy(inner, pts[:, 0], pts[:, 1])
    pts = pts[inside]
    u, v = cam.floor_to_pixel(pts[:, 0], pts[:, 1])
    assert cam.visible_person(u, v, 1.5, 120.0).all()
    # Points well outside (but on the floor in front of the camera) fail the test.
    outer = shape.buffer(0.05)
    probe = np.column_stack([rng.uniform(-2, 12, 4000), rng.uniform(-2, 12, 4000)])
    out = ~shapely.contains_xy(outer, probe[:, 0], probe[:, 1])
    u, v = cam.floor_to_pixel(probe[out, 0], probe[out, 1])
    assert not cam.visible_person(u, v, 1.5, 120.0).any()


def test_covered_polygon_shrinks_with_a_weaker_detector_and_can_be_empty() -> None:
    cam = CameraModel.from_config(pose_sensor(pitch=35.0))
    strong = shapely.Polygon(covered_polygon_of(cam, 1.5, 80.0))
    weak = shapely.Polygon(covered_polygon_of(cam, 1.5, 160.0))
    assert weak.area < strong.area
    assert weak.difference(strong).area < 1e-3
    assert covered_polygon_of(cam, 1.5, 2000.0).shape == (0, 2)
