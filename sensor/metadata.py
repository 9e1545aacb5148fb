"""Detector output + camera model -> one DETECTION_DTYPE frame (the metadata the sensor publishes).

Foot point: the bottom centre of a person's box, mapped to the floor through the camera model.
Z_d per person: the larger of the sensor's declared position uncertainty and the floor footprint of
`FOOT_POINT_PX` pixels around the foot point (the box bottom's own localisation error grows with range).
A box cut off by the bottom of the image hides the feet: the person stands somewhere on the floor between
the camera's nadir and the image's bottom edge, so the position is the middle of that segment and Z_d
covers all of it. A foot point whose ray misses the floor gives NaN coordinates, which the controller
treats as a bad value (stop): an unplaceable person never means "nobody there".
A frame flagged INVALID carries no persons; counts above MAX_PERSONS are reported as they are (the
controller stops on them), and only the first MAX_PERSONS are written.
"""

from __future__ import annotations

import numpy as np

from cobotguard.safety.camera import CameraModel
from cobotguard.safety.reasons import HealthFlag
from cobotguard.safety.records import DETECTION_DTYPE, FRAME_COUNTER_MODULO, MAX_PERSONS

FOOT_POINT_PX = 4.0  # how far (pixels) the box bottom may sit from the true foot point
BOTTOM_EDGE = 0.995  # a box whose bottom reaches this (normalised) is cut off by the image edge


class MetadataBuilder:
    """Fills detection frames for one sensor; reuses one record, so copy what you keep."""

    def __init__(self, camera: CameraModel, sensor_index: int, declared_z_d_m: float) -> None:
        self.camera = camera
        self.sensor_index = int(sensor_index)
        self.declared_z_d_m = float(declared_z_d_m)
        self.record = np.zeros(1, dtype=DETECTION_DTYPE)
        self._nadir = np.array(camera.centre_m[:2], dtype=np.float64)  # floor point below the camera

    def build(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        count: int,
        frame_counter: int,
        health: int,
        inference_us: int,
        t_exposure_ns: int,
        t_inference_done_ns: int,
        t_sent_ns: int,
    ) -> np.ndarray:
        """The frame's record (shape (1,)); boxes are normalised y0, x0, y1, x1 rows [0, count)."""
        rec = self.record
        rec[0] = 0
        rec["sensor_index"] = self.sensor_index
        rec["frame_counter"] = int(frame_counter) % FRAME_COUNTER_MODULO
        rec["health"] = int(health)
        rec["inference_us"] = int(inference_us)
        rec["t_exposure_ns"] = t_exposure_ns
        rec["t_inference_done_ns"] = t_inference_done_ns
        rec["t_sent_ns"] = t_sent_ns
        if int(health) & HealthFlag.INVALID:
            rec["person_count"] = 0
            return rec
        rec["person_count"] = int(count)
        n = min(int(count), MAX_PERSONS, len(boxes))
        if n > 0:
            self._place(np.asarray(boxes[:n], dtype=np.float64), np.asarray(scores[:n]), rec["persons"][0])
        return rec

    def _place(self, boxes: np.ndarray, scores: np.ndarray, persons: np.ndarray) -> None:
        """Floor positions and Z_d of n boxes into persons[:n]."""
        cam = self.camera
        n = boxes.shape[0]
        u = 0.5 * (boxes[:, 1] + boxes[:, 3]) * cam.width_px
        v = boxes[:, 2] * cam.height_px
        x, y = cam.pixel_to_floor(u, v)
        z_d = np.maximum(self.declared_z_d_m, cam.footprint_uncertainty_m(u, v, FOOT_POINT_PX))
        cut = boxes[:, 2] >= BOTTOM_EDGE
        if cut.any():
            # the feet are below the image: anywhere between the nadir and the bottom edge's floor point
            edge_x, edge_y = cam.pixel_to_floor(u[cut], np.full(int(cut.sum()), float(cam.height_px)))
            mid_x = 0.5 * (edge_x + self._nadir[0])
            mid_y = 0.5 * (edge_y + self._nadir[1])
            half = 0.5 * np.hypot(edge_x - self._nadir[0], edge_y - self._nadir[1])
            x[cut], y[cut] = mid_x, mid_y
            z_d[cut] = half + np.maximum(self.declared_z_d_m, z_d[cut])
        bad = ~np.isfinite(x) | ~np.isfinite(y)
        z_d[bad] = np.inf
        persons["x_m"][:n] = x
        persons["y_m"][:n] = y
        persons["z_d_m"][:n] = z_d
        persons["score"][:n] = scores
        persons["box"][:n] = boxes


def persons_of(record: np.ndarray) -> np.ndarray:
    """The valid persons of a detection record (a view of rows [0, min(count, MAX_PERSONS)))."""
    rec = record.reshape(-1)[0]
    return rec["persons"][: max(0, min(int(rec["person_count"]), MAX_PERSONS))]
