"""Detection metadata: foot point -> floor position, Z_d, counts, invalid frames, counter wrap."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.safety.camera import CameraModel
from cobotguard.safety.reasons import HealthFlag
from cobotguard.safety.records import DETECTION_DTYPE, MAX_PERSONS
from cobotguard.sensor.metadata import FOOT_POINT_PX, MetadataBuilder, persons_of

W, H = 640, 480
CAM = CameraModel.from_pose(500.0, 500.0, 320.0, 240.0, (0.0, 0.0, 3.0), 0.0, 35.0, 0.0, W, H)
DECLARED = 0.05


def box_standing_at(x: float, y: float, height_px: float = 150.0, width_px: float = 60.0) -> np.ndarray:
    """A normalised y0, x0, y1, x1 box whose bottom centre is the pixel of floor point (x, y)."""
    u, v = CAM.floor_to_pixel(x, y)
    return np.array([(v - height_px) / H, (u - width_px / 2) / W, v / H, (u + width_px / 2) / W])


def build(boxes: np.ndarray, scores: np.ndarray | None = None, count: int | None = None, health: int = 0):
    n = len(boxes)
    scores = np.full(n, 0.9) if scores is None else scores
    builder = MetadataBuilder(CAM, 2, DECLARED)
    rec = builder.build(boxes, scores, n if count is None else count, 7, health, 12_345, 100, 200, 300)
    assert rec.dtype == DETECTION_DTYPE and rec.shape == (1,)
    return rec


@given(x=st.floats(2.5, 9.0), y=st.floats(-1.5, 1.5))
def test_foot_point_maps_back_to_the_floor_point(x: float, y: float) -> None:
    rec = build(box_standing_at(x, y)[None, :])
    (person,) = persons_of(rec)
    assert (person["x_m"], person["y_m"]) == pytest.approx((x, y), abs=1e-4)
    assert person["z_d_m"] >= DECLARED
    assert person["z_d_m"] >= CAM.footprint_uncertainty_m(*CAM.floor_to_pixel(x, y), FOOT_POINT_PX) - 1e-9


def test_fields_are_stamped() -> None:
    boxes = np.stack([box_standing_at(3.0, 0.0), box_standing_at(5.0, 1.0)])
    rec = build(boxes, np.array([0.8, 0.6]))[0]
    assert rec["sensor_index"] == 2 and rec["frame_counter"] == 7 and rec["person_count"] == 2
    assert rec["inference_us"] == 12_345 and rec["health"] == 0
    assert (rec["t_exposure_ns"], rec["t_inference_done_ns"], rec["t_sent_ns"]) == (100, 200, 300)
    assert rec["t_received_ns"] == 0  # stamped by the controller, not the sensor
    assert rec["persons"]["score"][:2] == pytest.approx([0.8, 0.6])
    assert rec["persons"]["box"][1] == pytest.approx(boxes[1])
    assert (rec["persons"][2:] == np.zeros(1, rec["persons"].dtype)).all()


def test_z_d_grows_with_range_and_never_undercuts_the_declared_value() -> None:
    near, far = persons_of(build(np.stack([box_standing_at(2.5, 0.0), box_standing_at(12.0, 0.0)])))
    assert DECLARED <= near["z_d_m"] < far["z_d_m"]


def test_invalid_frame_carries_no_persons() -> None:
    boxes = np.stack([box_standing_at(3.0, 0.0)])
    rec = build(boxes, health=int(HealthFlag.INVALID))[0]
    assert rec["person_count"] == 0 and rec["health"] == HealthFlag.INVALID
    assert not rec["persons"]["score"].any()


def test_too_many_persons_are_reported_as_counted_not_truncated_silently() -> None:
    boxes = np.stack([box_standing_at(3.0 + 0.2 * i, 0.0) for i in range(MAX_PERSONS + 3)])
    rec = build(boxes)[0]
    assert rec["person_count"] == MAX_PERSONS + 3  # the controller stops on it
    assert len(persons_of(rec)) == MAX_PERSONS


def test_frame_counter_wraps_at_8_bits() -> None:
    builder = MetadataBuilder(CAM, 0, DECLARED)
    rec = builder.build(np.zeros((0, 4)), np.zeros(0), 0, 300, 0, 0, 0, 0, 0)
    assert rec["frame_counter"][0] == 300 % 256


def test_box_cut_off_at_the_bottom_covers_every_possible_foot_position() -> None:
    # A person so close that the feet are below the image: the box ends at the bottom edge.
    box = np.array([[0.3, 0.45, 1.0, 0.55]])
    (person,) = persons_of(build(box))
    u = 0.5 * W
    edge = np.array(CAM.pixel_to_floor(u, float(H)))
    nadir = CAM.centre_m[:2]
    for share in np.linspace(0.0, 1.0, 11):  # anywhere from under the camera to the edge's floor point
        truth = nadir + share * (edge - nadir)
        assert np.hypot(person["x_m"] - truth[0], person["y_m"] - truth[1]) <= person["z_d_m"] + 1e-9


def test_foot_point_above_the_horizon_is_not_a_number() -> None:
    shallow = CameraModel.from_pose(500.0, 500.0, 320.0, 240.0, (0.0, 0.0, 3.0), 0.0, 10.0, 0.0, W, H)
    rec = MetadataBuilder(shallow, 0, DECLARED).build(
        np.array([[0.0, 0.4, 0.05, 0.5]]), np.array([0.9]), 1, 0, 0, 0, 0, 0, 0
    )
    (person,) = persons_of(rec)
    assert np.isnan(person["x_m"]) and person["z_d_m"] == np.inf  # the controller's bad-value check stops


def test_builder_reuses_its_record() -> None:
    builder = MetadataBuilder(CAM, 0, DECLARED)
    first = builder.build(np.stack([box_standing_at(3.0, 0.0)]), np.array([0.9]), 1, 0, 0, 0, 0, 0, 0)
    kept = first.copy()
    second = builder.build(np.zeros((0, 4)), np.zeros(0), 0, 1, 0, 0, 0, 0, 0)
    assert second is first and kept["person_count"][0] == 1 and second["person_count"][0] == 0
