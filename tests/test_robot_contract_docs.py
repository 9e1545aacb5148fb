"""The robot's contract as documented (protocol.md section 13, integration.md section 10) against the code.

The tables of both pages are parsed and checked against the configuration model, the default cell, the
compiled safety step (with the reference step alongside) and the state table, so that a change to either
the documents or the code alone fails here: the parameters and their defaults, the speed supervision's
tolerance and grace, the robot state period, which reason wins when several causes apply, and what
releases a slow-down or a stop.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from pydantic.fields import FieldInfo

from cobotguard.hil.robot import RobotEmulator, RobotRunner
from cobotguard.safety import reference
from cobotguard.safety.budget import evaluate, reaction_stages, robot_silence_reaction_ns
from cobotguard.safety.config import CellConfig, Controller, Robot, ns
from cobotguard.safety.config_load import load_config
from cobotguard.safety.link import Received, RobotState, Role, drain, robot_link_endpoint
from cobotguard.safety.link.codec import decode_robot_state, encode_robot_state
from cobotguard.safety.link.setup import robot_link_policy
from cobotguard.safety.link.transport import memory_pair
from cobotguard.safety.params import build_params, derived_grace_ns, overspeed_grace_ns
from cobotguard.safety.reasons import CommandKind, HealthFlag, Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    MAX_PERSONS,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.states import TRANSITIONS, ControllerState, Event, Permission
from cobotguard.safety.step import apply_link_fault, new_state, step
from cobotguard.safety.timing import NS_PER_MS, line_time_ns

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = REPO / "docs" / "protocol.md"
INTEGRATION = REPO / "docs" / "integration.md"
DOCS = (PROTOCOL, INTEGRATION)
DEFAULT_CELL = REPO / "hil" / "defaults" / "cell.toml"
TWO_CAMERAS = REPO / "examples" / "two_camera_cell.toml"

PARAMETERS = ("key", "default", "default cell", "meaning")
PRIORITY = ("rank", "cause", "reason", "code", "when it applies")
RELEASE = ("state", "command", "reason", "ends when", "release", "then")

MS = 1_000_000
T0 = 1_000_000_000_000
EPS_MPS = 1e-6


# -- reading the documents -------------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def doc_table(path: Path, header: tuple[str, ...]) -> list[dict[str, str]]:
    """The one table of `path` with exactly these column names, as rows of {column: text}."""
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("|") and tuple(_cells(line)) == header]
    assert len(starts) == 1, f"{path.name}: {len(starts)} tables headed {header}"
    rows = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells, strict=True)))
    assert rows, f"{path.name}: the table headed {header} is empty"
    return rows


def code(text: str) -> str:
    """The first `code span` of a cell, or the cell itself."""
    match = re.search(r"`([^`]+)`", text)
    return match.group(1) if match else text.strip()


def parameters(path: Path) -> dict[str, dict[str, str]]:
    return {code(row["key"]): row for row in doc_table(path, PARAMETERS)}


def default_cell_number(path: Path, key: str) -> float:
    return float(parameters(path)[key]["default cell"])


# -- driving the step ------------------------------------------------------------------------------------


FAR = (-20.0, 0.0)  # outside every zone of the default cell, far beyond S_p
WARNING_SPOT = (-2.5, 0.0)  # in the warning zone only
PROTECTIVE_SPOT = (-1.93, 0.0)  # in the protective zone, beyond S_p (+ hysteresis) at the robot at rest
SEPARATION_SPOT = (-1.0, 0.0)  # closer than S_p (and in the protective zone)


@dataclass
class Inputs:
    """One cycle's inputs, free to be spoilt by a cause before the step sees them."""

    detections: np.ndarray
    robot: np.ndarray
    state: np.ndarray
    now: int
    overrun: int = 0
    reset: int = 0


@dataclass
class Cell:
    """A configuration, the step's state and a clock: healthy frames and robot reports every cycle."""

    cfg: CellConfig
    params: np.ndarray = field(init=False)
    state: np.ndarray = field(init=False)
    now: int = T0
    counter: int = 0
    robot_speed: float = 0.0
    persons: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    health: int = 0

    def __post_init__(self) -> None:
        self.params = build_params(self.cfg)
        self.state = new_state(self.params)

    @property
    def controller_state(self) -> ControllerState:
        return ControllerState(int(self.state[0]["state"]))

    def copy(self) -> Cell:
        twin = copy.copy(self)  # the same configuration and parameters; its own state and people
        twin.state = self.state.copy()
        twin.persons = {k: list(v) for k, v in self.persons.items()}
        return twin

    def inputs(self) -> Inputs:
        detections = empty_detections(MAX_SENSORS)
        for i in range(len(self.cfg.sensors)):
            d = detections[i]
            d["sensor_index"] = i
            d["frame_counter"] = self.counter % 256
            d["health"] = self.health
            d["inference_us"] = 1000
            d["t_exposure_ns"] = self.now - 10 * MS
            d["t_inference_done_ns"] = self.now - 5 * MS
            d["t_sent_ns"] = self.now - 2 * MS
            d["t_received_ns"] = self.now - 1 * MS
            people = self.persons.get(i, [])
            d["person_count"] = len(people)
            for j in range(MAX_PERSONS):
                x, y = people[j] if j < len(people) else FAR
                d["persons"][j]["x_m"], d["persons"][j]["y_m"] = x, y
                d["persons"][j]["z_d_m"] = 0.1
                d["persons"][j]["score"] = 0.9
        robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        r = robot[0]
        r["speed_mps"] = self.robot_speed
        r["at_rest"] = int(self.robot_speed == 0.0)
        r["t_sent_ns"] = self.now - 2 * MS
        r["t_received_ns"] = self.now - 1 * MS
        return Inputs(detections, robot, self.state, self.now)

    def tick(
        self,
        *,
        reset: int = 0,
        advance_ns: int | None = None,
        spoil: Callable[[Inputs], None] | None = None,
        link_fault: int = 0,
    ) -> np.void:
        """Advance one cycle (or `advance_ns`), step, and return the command; the reference must agree."""
        self.now += ns(self.cfg.controller.cycle_period_ms) if advance_ns is None else advance_ns
        self.counter += 1
        inputs = self.inputs()
        inputs.reset = reset
        if spoil is not None:
            spoil(inputs)
        twin_state = self.state.copy()
        command = np.zeros(1, dtype=COMMAND_DTYPE)
        twin_command = np.zeros(1, dtype=COMMAND_DTYPE)
        args = (inputs.reset, inputs.overrun, inputs.now)
        step(self.params, self.state, inputs.detections, inputs.robot, *args, command)
        reference.step(
            self.params, twin_state, inputs.detections.copy(), inputs.robot.copy(), *args, twin_command
        )
        assert command.tobytes() == twin_command.tobytes(), (command, twin_command)
        assert self.state.tobytes() == twin_state.tobytes()
        if link_fault:
            apply_link_fault(self.params, command, link_fault)
        return command[0]

    def arm(self) -> Cell:
        self.tick()
        assert Reason(int(self.tick(reset=1)["reason"])) is Reason.NONE
        assert self.controller_state is ControllerState.RUNNING
        return self


def what(command: np.void) -> tuple[CommandKind, Reason]:
    return CommandKind(int(command["kind"])), Reason(int(command["reason"]))


@pytest.fixture(scope="module")
def default_cfg() -> CellConfig:
    """The default cell without its hold of missed persons: the release rules are those of persons seen
    (a vanished person held keeps what it caused up to controller.person_hold_ms longer; test_step_hold)."""
    cfg = load_config(DEFAULT_CELL)
    return cfg.model_copy(update={"controller": cfg.controller.model_copy(update={"person_hold_ms": 0.0})})


# -- 13.1 parameters -------------------------------------------------------------------------------------

KEYS = {
    "robot.state_period_ms": (Robot, "state_period_ms"),
    "controller.robot_state_timeout_ms": (Controller, "robot_state_timeout_ms"),
    "robot.speed_tolerance_mps": (Robot, "speed_tolerance_mps"),
    "robot.overspeed_grace_ms": (Robot, "overspeed_grace_ms"),
}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_defaults_are_the_models(path: Path) -> None:
    rows = parameters(path)
    assert set(rows) == set(KEYS)
    for key, row in rows.items():
        model, name = KEYS[key]
        info: FieldInfo = model.model_fields[name]
        documented = row["default"]
        if documented == "required":
            assert info.is_required(), key
        elif documented == "derived":
            assert not info.is_required() and info.default is None, key
        else:
            assert not info.is_required() and info.default == float(documented), key


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_default_cell_values_are_the_cells(path: Path, default_cfg: CellConfig) -> None:
    cfg = default_cfg
    assert default_cell_number(path, "robot.state_period_ms") == cfg.robot.state_period_ms
    assert (
        default_cell_number(path, "controller.robot_state_timeout_ms")
        == cfg.controller.robot_state_timeout_ms
    )
    assert default_cell_number(path, "robot.speed_tolerance_mps") == cfg.robot.speed_tolerance_mps
    assert cfg.robot.overspeed_grace_ms is None  # so the documented value is the derived one at max speed
    grace_ns = derived_grace_ns(cfg, cfg.robot.max_speed_mps)
    assert ns(default_cell_number(path, "robot.overspeed_grace_ms")) == grace_ns
    assert overspeed_grace_ns(cfg, cfg.robot.max_speed_mps) == grace_ns


# -- 13.3 speed supervision: tolerance and grace, by behaviour --------------------------------------------


def slowed_at_full_speed(cfg: CellConfig) -> tuple[Cell, int]:
    """A robot at its maximum speed when a person enters the warning zone: the SLOW command and its time."""
    cell = Cell(cfg, robot_speed=cfg.robot.max_speed_mps).arm()
    cell.persons = {0: [WARNING_SPOT]}
    command = cell.tick()
    assert what(command) == (CommandKind.SLOW, Reason.PERSON_IN_WARNING_ZONE)
    return cell, int(command["t_ns"])


def report(cell: Cell, received_ns: int, speed: float) -> np.void:
    """One cycle 1 ms after a report received at `received_ns` showing `speed`."""

    def at(inputs: Inputs) -> None:
        inputs.robot[0]["speed_mps"] = speed
        inputs.robot[0]["t_received_ns"] = received_ns
        inputs.robot[0]["t_sent_ns"] = received_ns - MS

    return cell.tick(advance_ns=received_ns + MS - cell.now, spoil=at)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_tolerance_and_grace_hold_against_a_slow_limit(
    path: Path, default_cfg: CellConfig
) -> None:
    tolerance = default_cell_number(path, "robot.speed_tolerance_mps")
    grace_ns = ns(default_cell_number(path, "robot.overspeed_grace_ms"))
    limit = default_cfg.zones["warning"].speed_limit_mps
    assert limit is not None
    cell, commanded_ns = slowed_at_full_speed(default_cfg)
    over, under = limit + tolerance + EPS_MPS, limit + tolerance - EPS_MPS
    max_speed = default_cfg.robot.max_speed_mps
    cases = [
        (commanded_ns + grace_ns - 1, max_speed, Reason.PERSON_IN_WARNING_ZONE),  # within the grace
        (commanded_ns + grace_ns - 1, over, Reason.PERSON_IN_WARNING_ZONE),
        (commanded_ns + grace_ns, over, Reason.ROBOT_OVERSPEED),  # grace over: tolerance + epsilon
        (commanded_ns + grace_ns, under, Reason.PERSON_IN_WARNING_ZONE),  # tolerance - epsilon
        (commanded_ns + grace_ns, limit, Reason.PERSON_IN_WARNING_ZONE),
    ]
    for received_ns, speed, expected in cases:
        assert Reason(int(report(cell.copy(), received_ns, speed)["reason"])) is expected, (
            received_ns,
            speed,
        )


def test_the_documented_wire_example_120_mm_s_passes_121_stops(default_cfg: CellConfig) -> None:
    # protocol.md 13.3: after the grace, "120 mm/s on the wire passes, 121 mm/s stops the cell"
    text = " ".join(PROTOCOL.read_text(encoding="utf-8").split())
    match = re.search(r"\((\d+) mm/s on the wire passes, (\d+) mm/s stops the cell\)", text)
    assert match is not None
    passes, stops = (int(g) for g in match.groups())
    cell, commanded_ns = slowed_at_full_speed(default_cfg)
    after = commanded_ns + overspeed_grace_ns(default_cfg, default_cfg.robot.max_speed_mps)
    for mm_per_s, expected in ((passes, Reason.PERSON_IN_WARNING_ZONE), (stops, Reason.ROBOT_OVERSPEED)):
        measured = (mm_per_s - 0.5) / 1000.0  # a measured speed the robot rounds up to this many mm/s
        wire = decode_robot_state(encode_robot_state(RobotState(measured, CommandKind.SLOW, False, 1)))
        assert round(wire.speed_mps * 1000) == mm_per_s
        assert Reason(int(report(cell.copy(), after, wire.speed_mps)["reason"])) is expected, mm_per_s


@pytest.mark.requirement("SR-ROB-2")
def test_above_the_maximum_speed_there_is_neither_tolerance_nor_grace(default_cfg: CellConfig) -> None:
    cell, commanded_ns = slowed_at_full_speed(default_cfg)
    command = report(cell, commanded_ns + MS, default_cfg.robot.max_speed_mps + EPS_MPS)
    assert what(command) == (CommandKind.FAULT_STOP, Reason.ROBOT_OVERSPEED)


def test_a_fixed_grace_replaces_the_derived_one(default_cfg: CellConfig) -> None:
    robot = default_cfg.robot.model_copy(update={"overspeed_grace_ms": 300.0})
    cfg = default_cfg.model_copy(update={"robot": robot})
    cell, commanded_ns = slowed_at_full_speed(cfg)
    over = 0.1 + cfg.robot.speed_tolerance_mps + EPS_MPS
    assert (
        Reason(int(report(cell.copy(), commanded_ns + 300 * MS - 1, over)["reason"]))
        is not Reason.ROBOT_OVERSPEED
    )
    assert Reason(int(report(cell.copy(), commanded_ns + 300 * MS, over)["reason"])) is Reason.ROBOT_OVERSPEED


def test_a_configured_tolerance_is_the_one_supervised(default_cfg: CellConfig) -> None:
    robot = default_cfg.robot.model_copy(update={"speed_tolerance_mps": 0.05})
    cfg = default_cfg.model_copy(update={"robot": robot})
    cell, commanded_ns = slowed_at_full_speed(cfg)
    after = commanded_ns + overspeed_grace_ns(cfg, cfg.robot.max_speed_mps)
    assert Reason(int(report(cell.copy(), after, 0.15 - EPS_MPS)["reason"])) is Reason.PERSON_IN_WARNING_ZONE
    assert Reason(int(report(cell.copy(), after, 0.15 + EPS_MPS)["reason"])) is Reason.ROBOT_OVERSPEED


def test_documented_default_grace_example(default_cfg: CellConfig) -> None:
    # protocol.md 13.3: "74 + T_s(0.25 m/s) 100 = 174 ms" for the default cell
    text = PROTOCOL.read_text(encoding="utf-8")
    match = re.search(
        r"starts\s+a\s+grace\s+of\s+(\d+)\s+\+\s+T_s\(([\d.]+)\s+m/s\)\s+(\d+)\s+=\s+(\d+)\s+ms", text
    )
    assert match is not None
    obey_ms, speed, stop_ms, grace_ms = (float(g) for g in match.groups())
    assert speed == default_cfg.robot.max_speed_mps
    assert int(build_params(default_cfg)[0]["robot_obey_ns"]) == ns(obey_ms)
    assert derived_grace_ns(default_cfg, speed) == ns(obey_ms) + ns(stop_ms) == ns(grace_ms)


# -- 13.2 the robot state period -------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_state_timeout_is_what_the_step_and_the_link_supervise(
    path: Path, default_cfg: CellConfig
) -> None:
    timeout_ns = ns(default_cell_number(path, "controller.robot_state_timeout_ms"))
    assert robot_link_policy(default_cfg, Role.CONTROLLER).watchdog_ns == timeout_ns
    cell = Cell(default_cfg).arm()

    def aged(age_ns: int) -> Callable[[Inputs], None]:
        def spoil(inputs: Inputs) -> None:
            inputs.robot[0]["t_received_ns"] = inputs.now - age_ns
            inputs.robot[0]["t_sent_ns"] = inputs.now - age_ns - MS

        return spoil

    assert what(cell.copy().tick(spoil=aged(timeout_ns))) == (CommandKind.RUN, Reason.NONE)
    assert what(cell.copy().tick(spoil=aged(timeout_ns + 1))) == (CommandKind.FAULT_STOP, Reason.ROBOT_STALE)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_the_documented_state_period_fits_the_timeout_with_its_tolerance(
    path: Path, default_cfg: CellConfig
) -> None:
    period = default_cell_number(path, "robot.state_period_ms")
    timeout = default_cell_number(path, "controller.robot_state_timeout_ms")
    c, link = default_cfg.controller, default_cfg.link
    frame_ms = line_time_ns(link.state_frame_bytes, link.baud) / NS_PER_MS
    normal_gap = period + frame_ms + max(c.cycle_period_ms, c.worst_step_ms)
    assert normal_gap < timeout
    # protocol.md 13.2 spells the default cell's sum out
    number = r"\s+([\d.]+)\s+"
    pattern = rf"for\s+the\s+default\s+cell{number}\+{number}\+{number}={number}ms\s+<{number}ms"
    match = re.search(pattern, PROTOCOL.read_text(encoding="utf-8"))
    assert match is not None
    p, frame, wait, total, limit = (float(g) for g in match.groups())
    assert (p, limit) == (period, timeout)
    assert frame == pytest.approx(frame_ms)
    assert wait == max(c.cycle_period_ms, c.worst_step_ms)
    assert total == pytest.approx(normal_gap)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_the_emulated_robot_sends_at_the_documented_period(path: Path, default_cfg: CellConfig) -> None:
    period_ns = ns(default_cell_number(path, "robot.state_period_ms"))
    controller_side, robot_side = memory_pair(read_timeout_ns=1)
    clock = [0]
    runner = RobotRunner(RobotEmulator(default_cfg, 0), robot_side, clock=lambda: clock[0])
    controller = robot_link_endpoint(default_cfg, Role.CONTROLLER, 0)
    sent: list[int] = []
    for t in range(0, 10 * period_ns, MS // 4):  # no commands: the robot's own period alone
        clock[0] = t
        runner.poll()
        controller.feed(controller_side.read(), t)
        sent += [e.t_sent_ns for e in drain(controller) if isinstance(e, Received)]
    assert len(sent) == 10
    assert set(np.diff(sent)) == {period_ns}


def test_the_budget_prints_the_robot_silence_reaction(default_cfg: CellConfig) -> None:
    terms = {t.symbol: t for t in evaluate(default_cfg).terms}
    assert terms["T_robot_silent"].value == robot_silence_reaction_ns(default_cfg) / 1e6
    stages = {stage.symbol: stage.ns for stage in reaction_stages(default_cfg)}
    c = default_cfg.controller
    link_and_robot = stages["T_frame"] + stages["T_receiver"] + stages["T_stop_input"]
    tick_and_step = max(ns(c.cycle_period_ms), ns(c.worst_step_ms)) + ns(c.worst_step_ms)
    assert (
        robot_silence_reaction_ns(default_cfg)
        == ns(c.robot_state_timeout_ms) + tick_and_step + link_and_robot
    )


# -- 13.4 which reason wins ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """Spoils one cycle's inputs so that one check applies; `slots` are what it writes (no two share one)."""

    slots: frozenset[str]
    spoil: Callable[[Inputs], None]


def _person(index: int, spot: tuple[float, float]) -> Callable[[Inputs], None]:
    def spoil(inputs: Inputs) -> None:
        d = inputs.detections[0]
        d["persons"][index]["x_m"], d["persons"][index]["y_m"] = spot
        d["person_count"] = max(int(d["person_count"]), index + 1)

    return spoil


def _set(record: str, name: str, value: Callable[[Inputs], float | int]) -> Callable[[Inputs], None]:
    def spoil(inputs: Inputs) -> None:
        target = inputs.robot[0] if record == "robot" else inputs.detections[0]
        target[name] = value(inputs)

    return spoil


def _state(**values: float) -> Callable[[Inputs], None]:
    def spoil(inputs: Inputs) -> None:
        for name, value in values.items():
            inputs.state[0][name] = value

    return spoil


def _both(*spoils: Callable[[Inputs], None]) -> Callable[[Inputs], None]:
    def spoil(inputs: Inputs) -> None:
        for s in spoils:
            s(inputs)

    return spoil


def _counter(offset: int) -> Callable[[Inputs], int]:
    return lambda inputs: (int(inputs.state[0]["last_counter"][0]) + offset) % 256


def causes(cfg: CellConfig) -> dict[str, Cause]:
    """Every documented cause on the default cell (one sensor, a robot at rest, armed and running)."""
    timeout_ns = ns(cfg.controller.robot_state_timeout_ms)
    max_age_ns = int(build_params(cfg)[0]["sensor_max_age_ns"][0])
    sensor = next(iter(cfg.sensors.values()))

    def arrival(inputs: Inputs) -> None:
        inputs.state[0]["last_rx_ns"][0] = inputs.detections[0]["t_received_ns"] + 1

    def invalid(inputs: Inputs) -> None:
        inputs.state[0]["state"] = 99

    def overrun(inputs: Inputs) -> None:
        inputs.overrun = 1

    def bad_score(inputs: Inputs) -> None:
        _person(3, FAR)(inputs)
        inputs.detections[0]["persons"][3]["score"] = 2.0

    return {
        "state-invalid": Cause(frozenset({"state"}), invalid),
        "overrun": Cause(frozenset({"overrun"}), overrun),
        "robot-no-data": Cause(frozenset({"robot.t"}), _set("robot", "t_received_ns", lambda i: 0)),
        "robot-future": Cause(frozenset({"robot.t"}), _set("robot", "t_received_ns", lambda i: i.now + 1)),
        "robot-stale": Cause(
            frozenset({"robot.t"}), _set("robot", "t_received_ns", lambda i: i.now - timeout_ns - 1)
        ),
        "robot-bad-value": Cause(frozenset({"robot.at_rest"}), _set("robot", "at_rest", lambda i: 2)),
        "robot-above-max": Cause(
            frozenset({"robot.speed"}), _set("robot", "speed_mps", lambda i: cfg.robot.max_speed_mps + 0.01)
        ),
        # a SLOW limit of 0.1 m/s holds (its grace over); the robot reports 0.2 m/s
        "robot-overspeed": Cause(
            frozenset({"robot.speed", "state.speed"}),
            _both(
                _state(speed_allowed_mps=0.1, speed_target_mps=0.1), _set("robot", "speed_mps", lambda i: 0.2)
            ),
        ),
        "sensor-no-data": Cause(frozenset({"frame.t"}), _set("frame", "t_received_ns", lambda i: 0)),
        "sensor-index": Cause(frozenset({"frame.index"}), _set("frame", "sensor_index", lambda i: 1)),
        "sensor-time": Cause(
            frozenset({"frame.inference"}),
            _set("frame", "t_inference_done_ns", lambda i: int(i.detections[0]["t_sent_ns"]) + 1),
        ),
        "sensor-arrival": Cause(frozenset({"state.last_rx"}), arrival),
        "sensor-counter-range": Cause(
            frozenset({"frame.counter"}), _set("frame", "frame_counter", lambda i: 300)
        ),
        "sensor-counter-repeated": Cause(
            frozenset({"frame.counter"}), _set("frame", "frame_counter", _counter(0))
        ),
        "sensor-counter-out-of-order": Cause(
            frozenset({"frame.counter"}), _set("frame", "frame_counter", _counter(-1))
        ),
        "sensor-frames-missed": Cause(
            frozenset({"frame.counter"}),
            _set("frame", "frame_counter", _counter(sensor.tolerated_missed_frames + 2)),
        ),
        "sensor-stale": Cause(
            frozenset({"frame.exposure"}), _set("frame", "t_exposure_ns", lambda i: i.now - max_age_ns - MS)
        ),
        "sensor-health": Cause(
            frozenset({"frame.health"}), _set("frame", "health", lambda i: int(HealthFlag.FROZEN))
        ),
        "sensor-negative": Cause(
            frozenset({"frame.inference_us"}), _set("frame", "inference_us", lambda i: -1)
        ),
        "sensor-too-many": Cause(
            frozenset({"frame.too_many"}), _set("frame", "person_count", lambda i: sensor.max_persons + 1)
        ),
        "sensor-values": Cause(frozenset({"person3"}), bad_score),
        "separation": Cause(frozenset({"person1"}), _person(1, SEPARATION_SPOT)),
        "protective-zone": Cause(frozenset({"person2"}), _person(2, PROTECTIVE_SPOT)),
        "warning-zone": Cause(frozenset({"person0"}), _person(0, WARNING_SPOT)),
        "none": Cause(frozenset(), lambda inputs: None),
    }


@dataclass(frozen=True)
class Row:
    rank: int
    cause: str
    reason: str
    code: str


def priority(path: Path) -> list[Row]:
    return [
        Row(int(r["rank"]), code(r["cause"]), code(r["reason"]), r["code"]) for r in doc_table(path, PRIORITY)
    ]


def reasons_of(row: Row) -> set[Reason]:
    if row.reason.endswith("*"):
        return {r for r in Reason if r.name.startswith(row.reason[:-1])}
    return {Reason[row.reason]}


@pytest.fixture(scope="module")
def running(default_cfg: CellConfig) -> Cell:
    return Cell(default_cfg).arm()


def outcome(running: Cell, *spoils: Callable[[Inputs], None]) -> np.void:
    return running.copy().tick(spoil=_both(*spoils))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_priority_table_is_well_formed(path: Path, default_cfg: CellConfig) -> None:
    rows = priority(path)
    assert [r.rank for r in rows] == sorted(r.rank for r in rows)
    assert {r.cause for r in rows} == set(causes(default_cfg)) | {"link"}
    for row in rows:
        codes = sorted(int(r) for r in reasons_of(row))
        assert row.code == (str(codes[0]) if len(codes) == 1 else f"{codes[0]}-{codes[-1]}"), row
    named = set().union(*(reasons_of(r) for r in rows))
    waiting = {Reason.RESTART_INTERLOCK, Reason.NOT_ARMED}  # 13.5: the waiting states' own reasons
    refusals = {Reason.CHECKSUM_MISMATCH, Reason.BUDGET_UNSAFE}  # never in a command
    assert named | waiting | refusals == set(Reason)


def test_both_documents_give_the_same_priority() -> None:
    assert [(r.rank, r.cause, r.reason, r.code) for r in priority(PROTOCOL)] == [
        (r.rank, r.cause, r.reason, r.code) for r in priority(INTEGRATION)
    ]


@pytest.mark.requirement("SR-ZONE-4")
@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_each_cause_alone_gives_its_documented_reason(
    path: Path, default_cfg: CellConfig, running: Cell
) -> None:
    catalogue = causes(default_cfg)
    for row in priority(path):
        if row.cause == "link":
            continue
        got = Reason(int(outcome(running, catalogue[row.cause].spoil)["reason"]))
        assert got in reasons_of(row), (row, got)


@pytest.mark.requirement("SR-ZONE-4")
def test_the_higher_ranked_cause_wins_every_pair(default_cfg: CellConfig, running: Cell) -> None:
    catalogue = causes(default_cfg)
    rows = [r for r in priority(PROTOCOL) if r.cause != "link"]
    checked = 0
    for first, second in combinations(rows, 2):
        a, b = catalogue[first.cause], catalogue[second.cause]
        if first.rank == second.rank or a.slots & b.slots:
            continue  # ties: below; a shared slot: the two cannot be set together
        for order in ((a, b), (b, a)):
            got = Reason(int(outcome(running, *(c.spoil for c in order))["reason"]))
            assert got in reasons_of(first), (first.cause, second.cause, got)
        checked += 1
    assert checked > 250


def test_a_link_fault_wins_over_every_cause(default_cfg: CellConfig, running: Cell) -> None:
    rows = priority(PROTOCOL)
    links = [r for r in rows if r.cause == "link"]  # the link errors, and sensor clock faults latched alike
    assert rows[: len(links)] == links and all(r.rank > rows[0].rank for r in rows[len(links) :])
    for name, cause in causes(default_cfg).items():
        for link in (Reason.LINK_CORRUPTION, Reason.LINK_TIMEOUT, Reason.SENSOR_CLOCK_STEP):
            command = running.copy().tick(spoil=cause.spoil, link_fault=int(link))
            assert what(command) == (CommandKind.FAULT_STOP, link), name


@pytest.mark.requirement("SR-ZONE-4")
def test_tied_stops_go_to_the_first_person_and_separation_before_zones(running: Cell) -> None:
    # rank 23: equal categories (the configuration makes them so), then the first found
    zone_first = outcome(running, _person(0, PROTECTIVE_SPOT), _person(1, SEPARATION_SPOT))
    assert (Reason(int(zone_first["reason"])), int(zone_first["reason_person"])) == (
        Reason.PERSON_IN_PROTECTIVE_ZONE, 0)  # fmt: skip
    separation_first = outcome(running, _person(0, SEPARATION_SPOT), _person(1, PROTECTIVE_SPOT))
    assert (Reason(int(separation_first["reason"])), int(separation_first["reason_person"])) == (
        Reason.SEPARATION_BELOW_SP, 0)  # fmt: skip
    both = outcome(running, _person(0, SEPARATION_SPOT))  # also in the protective zone
    assert Reason(int(both["reason"])) is Reason.SEPARATION_BELOW_SP


@pytest.mark.requirement("SR-ZONE-4")
def test_a_lower_sensor_index_wins_over_any_fault_of_a_higher_one() -> None:
    cell = Cell(load_config(TWO_CAMERAS)).arm()

    def bad_score_on_0(inputs: Inputs) -> None:  # sensor-values, the last sensor check
        inputs.detections[0]["person_count"] = 1
        inputs.detections[0]["persons"][0]["score"] = 2.0

    def no_data_on_1(inputs: Inputs) -> None:  # sensor-no-data, the first sensor check
        inputs.detections[1]["t_received_ns"] = 0

    def health_on_0(inputs: Inputs) -> None:
        inputs.detections[0]["health"] = int(HealthFlag.FROZEN)

    def wrong_index_on_1(inputs: Inputs) -> None:
        inputs.detections[1]["sensor_index"] = 0

    for spoils, reason in (
        ((bad_score_on_0, no_data_on_1), Reason.SENSOR_BAD_VALUE),
        ((health_on_0, wrong_index_on_1), Reason.SENSOR_HEALTH),
    ):
        command = cell.copy().tick(spoil=_both(*spoils))
        assert (Reason(int(command["reason"])), int(command["reason_sensor"])) == (reason, 0)
        command = cell.copy().tick(spoil=spoils[1])
        assert int(command["reason_sensor"]) == 1  # alone, sensor 1's fault names itself


# -- 13.5 releases ---------------------------------------------------------------------------------------

RELEASES = {
    # release -> the permissions with which CLEAR leaves the state
    "automatic": {Permission.NONE, Permission.AUTO, Permission.RESET},
    "reset": {Permission.RESET},
    "reset or automatic restart": {Permission.AUTO, Permission.RESET},
}


def release_rows(path: Path) -> list[dict[str, str]]:
    return doc_table(path, RELEASE)


def reach(cell: Cell, state: ControllerState) -> Reason | None:
    """Drive the step into `state`; the reason of the cause that led there (None: no cause)."""
    if state is ControllerState.NOT_ARMED:
        cell.tick()
        return None
    cell.arm()
    if state in (ControllerState.SLOWED,):
        cell.persons = {0: [WARNING_SPOT]}
        cell.tick()
        return Reason.PERSON_IN_WARNING_ZONE
    if state in (ControllerState.PROTECTIVE_STOPPED, ControllerState.AWAITING_RESET):
        cell.persons = {0: [PROTECTIVE_SPOT]}
        cell.tick()
        if state is ControllerState.AWAITING_RESET:
            cell.persons = {}
            cell.tick()
        return Reason.PERSON_IN_PROTECTIVE_ZONE
    cell.health = int(HealthFlag.FROZEN)
    cell.tick()
    if state is ControllerState.AWAITING_FAULT_RESET:
        cell.health = 0
        cell.tick()
    return Reason.SENSOR_HEALTH


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_release_table_covers_every_state_but_running(path: Path) -> None:
    states = [ControllerState[code(r["state"])] for r in release_rows(path)]
    assert sorted(states) == sorted(set(ControllerState) - {ControllerState.RUNNING})


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_release_rules_are_the_state_tables(path: Path) -> None:
    for row in release_rows(path):
        state, then = ControllerState[code(row["state"])], ControllerState[code(row["then"])]
        leaving = {p for p in Permission if TRANSITIONS[state][Event.CLEAR][p] != state}
        assert leaving == RELEASES[row["release"]], row
        assert {TRANSITIONS[state][Event.CLEAR][p] for p in leaving} == {then}, row


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_release_rows_by_the_step(path: Path, default_cfg: CellConfig) -> None:
    auto_controller = default_cfg.controller.model_copy(
        update={"restart": "automatic", "auto_restart_clear_ms": 100.0}
    )
    automatic = default_cfg.model_copy(update={"controller": auto_controller})
    for row in release_rows(path):
        state, then = ControllerState[code(row["state"])], ControllerState[code(row["then"])]
        for cfg in (default_cfg, automatic):
            cell = Cell(cfg)
            cause = reach(cell, state)
            assert cell.controller_state is state, row
            command = cell.tick()
            assert CommandKind[row["command"]] is CommandKind(int(command["kind"])), row
            documented = re.findall(r"`([A-Z_]+)`", row["reason"])
            got = Reason(int(command["reason"]))
            assert got is (Reason[documented[0]] if documented else cause), row
            cell.persons, cell.health = {}, 0  # every cause gone
            release = row["release"]
            for _ in range(
                int(150 * MS / ns(cfg.controller.cycle_period_ms))
            ):  # past the automatic clear time
                cell.tick()
                if cell.controller_state is not state:
                    break
            released_alone = release == "automatic" or (
                release == "reset or automatic restart" and cfg.controller.restart == "automatic"
            )
            if released_alone:
                assert cell.controller_state is then, (row, cfg.controller.restart)
                continue
            assert cell.controller_state is state, (row, cfg.controller.restart)
            cell.tick(reset=1)
            assert cell.controller_state is then, row


@pytest.mark.requirement("SR-RST-2")
def test_slow_needs_no_reset_but_a_stop_does(default_cfg: CellConfig) -> None:
    # the sentence both documents make about SLOW, with the hysteresis band in between
    for path in DOCS:
        assert "needs no reset" in path.read_text(encoding="utf-8")
    cell = Cell(default_cfg).arm()
    cell.persons = {0: [WARNING_SPOT]}
    assert what(cell.tick())[0] is CommandKind.SLOW
    cell.persons = {0: [(-3.0, 0.0)]}  # still in the warning zone's polygon
    assert what(cell.tick())[0] is CommandKind.SLOW
    cell.persons = {}
    assert what(cell.tick()) == (CommandKind.RUN, Reason.NONE)
