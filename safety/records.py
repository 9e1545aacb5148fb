"""Fixed-size records exchanged between the sensor path, the safety step, the link and the trace.

Maximum counts are declared here; exceeding one is a fault (stop), never a silent truncation.
All times are int64 nanoseconds on the monotonic clock; distances in metres; speeds in m/s.
"""

import numpy as np

MAX_PERSONS = 16  # persons per detection frame
MAX_SENSORS = 4  # sensors per cell
MAX_ZONES = 8  # static zones per cell
MAX_VERTICES = 16  # vertices per zone or hazard polygon
FRAME_COUNTER_MODULO = 256  # the IMX500's frame counter is 8 bits and wraps
# A command's reason_person for a held person (missed by the newest frame): this + its index in the
# sensor's held table, so it never reads as a person of the frame (and still fits the link's i8).
HELD_PERSON_BASE = MAX_PERSONS

PERSON_DTYPE = np.dtype(
    [
        ("x_m", np.float64),  # floor position in the cell frame (foot point)
        ("y_m", np.float64),
        ("z_d_m", np.float64),  # position uncertainty of this detection
        ("score", np.float32),
        ("box", np.float32, (4,)),  # y0, x0, y1, x1 normalised (IMX500 "bscn" convention)
    ]
)

DETECTION_DTYPE = np.dtype(
    [
        ("sensor_index", np.int32),  # index into the configuration's sensor list
        ("frame_counter", np.int32),  # 0..255, wraps
        ("person_count", np.int32),  # as reported; > MAX_PERSONS or the sensor's max is a fault
        ("health", np.uint32),  # HealthFlag bits
        ("inference_us", np.int32),  # KPI: DNN runtime in microseconds
        ("t_exposure_ns", np.int64),  # start of exposure
        ("t_inference_done_ns", np.int64),
        ("t_sent_ns", np.int64),  # metadata published by the sensor
        ("t_received_ns", np.int64),  # metadata received by the controller
        ("persons", PERSON_DTYPE, (MAX_PERSONS,)),
    ]
)

ROBOT_STATE_DTYPE = np.dtype(
    [
        ("speed_mps", np.float64),  # current TCP speed
        ("mode", np.int32),  # CommandKind the robot is executing
        ("at_rest", np.int32),  # 1 when the robot reports standstill
        ("last_command_seq", np.int64),  # sequence number of the last command the robot accepted
        ("t_sent_ns", np.int64),
        ("t_received_ns", np.int64),
    ]
)

COMMAND_DTYPE = np.dtype(
    [
        ("kind", np.int32),  # CommandKind
        ("speed_limit_mps", np.float64),  # meaningful for RUN (max) and SLOW
        ("stop_category", np.int32),  # StopCategory, meaningful for stops
        ("reason", np.int32),  # Reason
        ("reason_sensor", np.int32),  # -1 when not sensor-related
        ("reason_person", np.int32),  # -1 when not person-related; >= HELD_PERSON_BASE: a held person
        ("reason_zone", np.int32),  # -1 when not zone-related
        ("t_ns", np.int64),  # time of the step that produced it
    ]
)


def empty_detections(n: int = 1) -> np.ndarray:
    """Zeroed detection records (no data: the step treats them as 'never received')."""
    out = np.zeros(n, dtype=DETECTION_DTYPE)
    out["sensor_index"] = -1
    out["frame_counter"] = -1
    return out
