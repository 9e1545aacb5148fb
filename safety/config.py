"""The cell configuration: the schema (pydantic models) and the names its problems are reported in.

Units are in the key names (_ms, _m, _mps, _hz, _px, _deg, _kg). Required keys have no default, so a
missing key fails loudly. Unknown keys are rejected, and numbers are not accepted as strings or booleans
(nor booleans as numbers). Durations are converted to int64 nanoseconds by the accessors that the core
uses (see `ns`, from `safety.timing`).

Loading and validation (`load_config`, `loads_config`, `config_from_dict`) live in `safety.config_load`,
above the cross-field rules (`safety.config_rules`), which in turn build on these models. Field reference:
docs/configuration.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from cobotguard.safety.timing import ns as ns  # the configuration's ms -> int64 ns, re-exported for its users

NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)]
PosFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False, strict=True)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Point2 = tuple[FiniteFloat, FiniteFloat]
Point3 = tuple[FiniteFloat, FiniteFloat, FiniteFloat]
StrictBool = Annotated[bool, Field(strict=True)]


# Speed supervision tolerance when `robot.speed_tolerance_mps` is absent (the value the step always used).
DEFAULT_SPEED_TOLERANCE_MPS = 0.02
# The heartbeat the link protocol assumed before the period was a key (the rig's robot sent it): files
# written before then keep loading, and keep their meaning.
DEFAULT_STATE_PERIOD_MS = 4.0
# The largest drift a sensor clock may declare (ppm): crystal oscillators drift 20-100 ppm, and the
# estimator's bound assumes a drift far below one half.
MAX_CLOCK_DRIFT_PPM = 1000.0


def _exact_int(value: Any) -> Any:
    """Reject booleans and floats where an integer code is expected (a Literal alone accepts them)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("the integer 0, 1 or 2")
    return value


StopCategoryCode = Annotated[Literal[0, 1, 2], BeforeValidator(_exact_int)]


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
    stop_category: StopCategoryCode  # category the stopping data was measured for
    stop_input_reaction_ms: NonNegFloat  # command received -> braking starts
    position_uncertainty_m: NonNegFloat  # Z_r
    hazard_polygon_m: list[Point2]  # floor projection of everything the robot can reach
    stopping: list[StoppingPoint]
    # The robot sends ROBOT_STATE at least this often (and answers each command with one); the controller's
    # staleness limit, controller.robot_state_timeout_ms, is this period plus its tolerance.
    state_period_ms: PosFloat = DEFAULT_STATE_PERIOD_MS
    # Speed supervision (ROBOT_OVERSPEED): a reported speed up to the limit held + this passes (measurement
    # noise). The default is the value the step used before it was configurable.
    speed_tolerance_mps: NonNegFloat = DEFAULT_SPEED_TOLERANCE_MPS
    # After a lower limit is commanded, how long until the robot's reports must keep it. Absent: derived per
    # command from the link, the stop input reaction and the stopping time at the robot's speed
    # (safety.params.robot_obey_ns + T_s); given: that fixed time, at least the derived one at max speed.
    overspeed_grace_ms: PosFloat | None = None
    # Whose clock the robot's sender times are on. "shared": the controller's CLOCK_MONOTONIC (one host),
    # so the robot link's delay check compares them with ours. "own": a clock of its own (a robot
    # controller, a safety PLC); the controller then ages each ROBOT_STATE by the command it echoes
    # (docs/protocol.md, section 7.1) and the robot's sender time only has to increase.
    clock: Literal["shared", "own"] = "shared"


class Intrinsics(_Strict):
    """Pinhole intrinsics in pixels."""

    fx_px: PosFloat
    fy_px: PosFloat
    cx_px: FiniteFloat
    cy_px: FiniteFloat


class Mounting(_Strict):
    """Camera pose in the cell frame: position and yaw/pitch/roll (pitch > 0 looks down)."""

    position_m: Point3
    yaw_deg: FiniteFloat
    pitch_deg: FiniteFloat
    roll_deg: FiniteFloat


class CalibrationPoint(_Strict):
    """A pixel and the floor point it sees, for a homography fit."""

    pixel: Point2
    floor_m: Point2


class Tiling(_Strict):
    """Tiled inference (sensor.tiling): overlapping tiles, optionally the whole frame too, merged.

    Small persons fill more of the network's input, at the cost of one inference per tile (docs/sensor.md).
    """

    columns: Annotated[int, Field(ge=1, le=4, strict=True)]
    rows: Annotated[int, Field(ge=1, le=4, strict=True)]
    overlap: Annotated[float, Field(ge=0.0, lt=0.5, allow_inf_nan=False, strict=True)]  # of a tile's size
    full_frame: StrictBool = True  # also infer the whole frame (large persons, cut by every tile)
    merge_iou: Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False, strict=True)] = 0.5

    @model_validator(mode="after")
    def _at_least_two_tiles(self) -> Tiling:
        if self.columns * self.rows < 2:
            raise ValueError(f"at least 2 tiles (columns x rows), got {self.columns} x {self.rows}")
        return self


# The person detectors shipped in cobotguard.sensor (sensor.detector.MODEL_FILES; a test keeps the two
# lists equal): SSDLite MobileNetV2 fp32 and int8, YOLOX-Nano at 416 letterboxed and at 640x480.
DETECTOR_MODELS = ("fp32", "int8", "yolox_nano", "yolox_nano_480x640")
DetectorModel = Literal["fp32", "int8", "yolox_nano", "yolox_nano_480x640"]
DEFAULT_DETECTOR_MODEL = "fp32"  # what a sensor without the `model` key runs


class Sensor(_Strict):
    """One person-detection camera: timing, geometry and detection capability."""

    connection_id: Annotated[int, Field(ge=1, le=0xFFFF, strict=True)]
    frame_rate_hz: PosFloat
    exposure_readout_ms: NonNegFloat
    inference_worst_ms: NonNegFloat
    transport_latency_ms: NonNegFloat  # worst case; with serial_baud, at least the largest frame's line time
    tolerated_missed_frames: Annotated[int, Field(ge=0, le=16, strict=True)]
    max_persons: Annotated[int, Field(ge=1, strict=True)]
    image_width_px: Annotated[int, Field(gt=0, strict=True)]
    image_height_px: Annotated[int, Field(gt=0, strict=True)]
    min_person_height_px: PosFloat  # detection capability: smallest person the detector finds
    assumed_person_height_m: PosFloat  # smallest person the cell must protect
    position_uncertainty_m: NonNegFloat  # Z_d declared for this sensor
    min_score: Annotated[float, Field(gt=0.0, lt=1.0, strict=True)]
    intrinsics: Intrinsics | None = None
    mounting: Mounting | None = None
    calibration_points: list[CalibrationPoint] | None = None
    # Line rate when the metadata travels over a serial line (UART 8N1); absent: it does not (in-process,
    # or another transport whose whole latency transport_latency_ms declares).
    serial_baud: Annotated[int, Field(gt=0, strict=True)] | None = None
    # Tiled inference; absent: one inference of the whole frame (and absent from the checksum's canonical
    # form, so cells written before the key keep their checksums).
    tiling: Tiling | None = None
    # The shipped detector this sensor runs (DETECTOR_MODELS); absent: DEFAULT_DETECTOR_MODEL, and absent
    # from the checksum's canonical form like `tiling`.
    model: DetectorModel | None = None

    # Whose clock the sensor's timestamps are on. "shared": the controller's CLOCK_MONOTONIC (one host).
    # "own": a clock of its own, synchronised over the sensor link (docs/protocol.md, section 14) every
    # clock_sync_period_ms; a reply later than clock_sync_timeout_ms (default: the period), an offset
    # error bound above clock_error_limit_ms, a step, or drift beyond clock_max_drift_ppm stop the cell.
    # The bound counts in the sensor's stage of T_r. Absent keys stay out of the checksum's canonical form.
    # Which keys go with which clock: safety.config_rules.sensor_clock_problems.
    clock: Literal["shared", "own"] = "shared"
    clock_sync_period_ms: PosFloat | None = None
    clock_sync_timeout_ms: PosFloat | None = None
    clock_error_limit_ms: PosFloat | None = None
    clock_max_drift_ppm: (
        Annotated[float, Field(ge=0.0, le=MAX_CLOCK_DRIFT_PPM, allow_inf_nan=False, strict=True)] | None
    ) = None

    @property
    def detector_model(self) -> str:
        """The detector this sensor runs: its `model`, or the default when it declares none."""
        return self.model if self.model is not None else DEFAULT_DETECTOR_MODEL


class Zone(_Strict):
    """A static floor zone and its action."""

    type: Literal["warning", "protective"]
    polygon_m: list[Point2]
    speed_limit_mps: NonNegFloat | None = None  # warning zones: slow to this speed
    stop_category: StopCategoryCode | None = None  # protective zones


class Separation(_Strict):
    """Dynamic speed and separation monitoring (ISO/TS 15066) around the hazard region."""

    enabled: StrictBool
    intrusion_distance_m: NonNegFloat  # C
    stop_category: StopCategoryCode


class Controller(_Strict):
    """The cyclic executor and the restart policy."""

    cycle_period_ms: PosFloat
    worst_step_ms: PosFloat  # release -> command written (wake-up + step + write); may exceed the period
    restart: Literal["manual", "automatic"]
    auto_restart_clear_ms: PosFloat | None = None  # required when restart = "automatic", else absent
    release_hysteresis_m: NonNegFloat  # extra clearance before a restriction is released
    robot_state_timeout_ms: PosFloat
    # false: a frame waits for the next release (the tick). true: the loop waits on its input file
    # descriptors and steps a frame as soon as it is readable; only the compiled loop
    # (safety.compiled_controller.CompiledController) does, the plain-Python safety.executor.Controller
    # refuses to arm. The budget's controller stage depends on it (docs/budget.md).
    wake_on_data: StrictBool = False
    # A person missed by a frame is held for this long after the exposure that last saw it, its Z_d growing
    # at 1.6 m/s (docs/sensor.md, "Held persons"); 0: off. At most every sensor's stale limit.
    person_hold_ms: NonNegFloat = 0.0


class Link(_Strict):
    """The serial safety link to the robot."""

    baud: Annotated[int, Field(gt=0, strict=True)]
    connection_id: Annotated[int, Field(ge=1, le=0xFFFF, strict=True)]
    command_frame_bytes: Annotated[int, Field(gt=0, strict=True)]
    state_frame_bytes: Annotated[int, Field(gt=0, strict=True)]
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


# -- errors, key names and units -------------------------------------------------------------------------

_UNITS = {
    "_ms": "milliseconds",
    "_mps": "metres per second",
    "_m": "metres",
    "_hz": "hertz",
    "_px": "pixels",
    "_deg": "degrees",
    "_kg": "kilograms",
}


class ConfigError(ValueError):
    """The configuration is invalid; `.problems` holds one line per problem, all of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def stepped_on_the_tick(cfg: CellConfig) -> CellConfig:
    """The same cell with `controller.wake_on_data = false`: for the plain-Python executor, whose in-process
    ports have no descriptor to wait on. Its checksum differs, and `Controller.arm()` checks its budget."""
    controller = cfg.controller.model_copy(update={"wake_on_data": False})
    return cfg.model_copy(update={"controller": controller})


def key_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a TOML key path: robot.stopping[2].speed_mps, sensors."a.b".frame_rate_hz."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else '"' + part.replace('"', '\\"') + '"'
            out += ("." if out else "") + name
    return out or "(top level)"


def unit_of(key: str) -> str | None:
    """The unit a key name declares by its suffix, e.g. 'milliseconds' for stop_time_ms."""
    for suffix, unit in _UNITS.items():
        if key.endswith(suffix):
            return unit
    return None
