"""The cell configuration: schema, loading and validation.

Units are in the key names (_ms, _m, _mps, _hz, _px, _deg, _kg). Required keys have no default, so a
missing key fails loudly. Unknown keys are rejected. Durations are converted to int64 nanoseconds by
the accessors that the core uses (see `ns`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
PosFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Point2 = tuple[Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]]
Point3 = tuple[
    Annotated[float, Field(allow_inf_nan=False)],
    Annotated[float, Field(allow_inf_nan=False)],
    Annotated[float, Field(allow_inf_nan=False)],
]


def ns(ms: float) -> int:
    """Milliseconds from the configuration as int64 nanoseconds (rounded up: budgets never shrink)."""
    whole = int(ms * 1_000_000)
    return whole if whole >= ms * 1_000_000 else whole + 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class StoppingPoint(_Strict):
    """One row of the robot maker's stopping data (ISO 10218 style)."""

    speed_mps: NonNegFloat
    payload_kg: NonNegFloat
    stop_time_ms: NonNegFloat
    stop_distance_m: NonNegFloat


class Robot(_Strict):
    """Robot stopping performance and where it can reach."""

    name: str
    max_speed_mps: PosFloat
    payload_kg: NonNegFloat  # the payload the cell runs with; selects the stopping curve
    stop_category: Literal[0, 1, 2]  # category the stopping data was measured for
    stop_input_reaction_ms: NonNegFloat  # command received -> braking starts
    position_uncertainty_m: NonNegFloat  # Z_r
    hazard_polygon_m: list[Point2]  # floor projection of everything the robot can reach
    stopping: list[StoppingPoint]


class Intrinsics(_Strict):
    """Pinhole intrinsics in pixels."""

    fx_px: PosFloat
    fy_px: PosFloat
    cx_px: float
    cy_px: float


class Mounting(_Strict):
    """Camera pose in the cell frame: position and yaw/pitch/roll (pitch > 0 looks down)."""

    position_m: Point3
    yaw_deg: float
    pitch_deg: float
    roll_deg: float


class CalibrationPoint(_Strict):
    """A pixel and the floor point it sees, for a homography fit."""

    pixel: Point2
    floor_m: Point2


class Sensor(_Strict):
    """One person-detection camera: timing, geometry and detection capability."""

    connection_id: Annotated[int, Field(ge=1, le=0xFFFF)]
    frame_rate_hz: PosFloat
    exposure_readout_ms: NonNegFloat
    inference_worst_ms: NonNegFloat
    transport_latency_ms: NonNegFloat
    tolerated_missed_frames: Annotated[int, Field(ge=0, le=16)]
    max_persons: Annotated[int, Field(ge=1)]
    image_width_px: Annotated[int, Field(gt=0)]
    image_height_px: Annotated[int, Field(gt=0)]
    min_person_height_px: PosFloat  # detection capability: smallest person the detector finds
    assumed_person_height_m: PosFloat  # smallest person the cell must protect
    position_uncertainty_m: NonNegFloat  # Z_d declared for this sensor
    min_score: Annotated[float, Field(gt=0.0, lt=1.0)]
    intrinsics: Intrinsics | None = None
    mounting: Mounting | None = None
    calibration_points: list[CalibrationPoint] | None = None


class Zone(_Strict):
    """A static floor zone and its action."""

    type: Literal["warning", "protective"]
    polygon_m: list[Point2]
    speed_limit_mps: NonNegFloat | None = None  # warning zones: slow to this speed
    stop_category: Literal[0, 1, 2] | None = None  # protective zones


class Separation(_Strict):
    """Dynamic speed and separation monitoring (ISO/TS 15066) around the hazard region."""

    enabled: bool
    intrusion_distance_m: NonNegFloat  # C
    stop_category: Literal[0, 1, 2]


class Controller(_Strict):
    """The cyclic executor and the restart policy."""

    cycle_period_ms: PosFloat
    worst_step_ms: PosFloat
    restart: Literal["manual", "automatic"]
    auto_restart_clear_ms: NonNegFloat | None = None  # required when restart = "automatic"
    release_hysteresis_m: NonNegFloat  # extra clearance before a restriction is released
    robot_state_timeout_ms: PosFloat


class Link(_Strict):
    """The serial safety link to the robot."""

    baud: Annotated[int, Field(gt=0)]
    connection_id: Annotated[int, Field(ge=1, le=0xFFFF)]
    command_frame_bytes: Annotated[int, Field(gt=0)]
    state_frame_bytes: Annotated[int, Field(gt=0)]
    receiver_cycle_ms: NonNegFloat  # robot side: how often it polls its port
    command_watchdog_ms: PosFloat  # robot stops itself when no valid command arrives in this time
    max_delay_ms: PosFloat  # a message older than this on arrival is an unacceptable delay


class CellConfig(_Strict):
    """A whole cell: robot, sensors, zones, separation monitoring, controller and link."""

    schema_version: Literal[1]
    name: str
    robot: Robot
    sensors: dict[str, Sensor]
    zones: dict[str, Zone] = Field(default_factory=dict)
    separation: Separation
    controller: Controller
    link: Link
