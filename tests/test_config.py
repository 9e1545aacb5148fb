"""Loading and validating the cell configuration: every class of invalid input gets one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from config_support import DEFAULT_CELL, EXAMPLES, default_raw, square, to_toml
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.safety.config import (
    DEFAULT_SPEED_TOLERANCE_MPS,
    DEFAULT_STATE_PERIOD_MS,
    CellConfig,
    ConfigError,
    ns,
)
from cobotguard.safety.config_load import config_from_dict, load_config, loads_config
from cobotguard.safety.link import COMMAND_FRAME_BYTES, ROBOT_STATE_FRAME_BYTES, detections_frame_bytes
from cobotguard.safety.records import MAX_PERSONS, MAX_SENSORS, MAX_VERTICES, MAX_ZONES

SOURCE = "cell.toml"


def problems_of(raw: dict[str, Any]) -> list[str]:
    """The problem lines for a raw configuration (fails the test when it is valid)."""
    with pytest.raises(ConfigError) as exc:
        config_from_dict(raw, SOURCE)
    problems = exc.value.problems
    for line in problems:
        assert line.startswith(f"{SOURCE}: "), line
        assert "expected" in line, line
        assert "\n" not in line
    return problems


def one_problem(raw: dict[str, Any], key_path: str, *words: str) -> str:
    """Exactly one problem, at `key_path`, mentioning every word."""
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    line = problems[0]
    assert line.startswith(f"{SOURCE}: {key_path}:"), line
    for word in words:
        assert word in line, (word, line)
    return line


# -- valid files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DEFAULT_CELL, *sorted(EXAMPLES.glob("*.toml"))], ids=lambda p: Path(p).name)
def test_shipped_configurations_are_valid(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, CellConfig)
    assert len(cfg.sensors) >= 1


def test_sensor_order_is_kept() -> None:
    cfg = load_config(EXAMPLES / "two_camera_cell.toml")
    assert list(cfg.sensors) == ["west", "east"]


@pytest.mark.requirement("SR-BUD-5")
def test_ns_rounds_up() -> None:
    assert ns(1.0) == 1_000_000
    assert ns(0.0000001) == 1
    assert ns(2.5) == 2_500_000


# -- schema: unknown key, wrong type, wrong unit, missing, negative -----------------------------------


@pytest.mark.requirement("SR-CFG-1")
def test_unknown_key_names_the_close_match() -> None:
    raw = default_raw()
    raw["robot"]["max_speed"] = raw["robot"].pop("max_speed_mps")
    problems = problems_of(raw)
    unknown = [p for p in problems if "robot.max_speed:" in p]
    assert len(unknown) == 1 and "did you mean 'max_speed_mps'" in unknown[0]
    missing = [p for p in problems if "robot.max_speed_mps:" in p]
    assert len(missing) == 1 and "missing" in missing[0]


def test_unknown_top_level_table() -> None:
    raw = default_raw()
    raw["robots"] = {}
    one_problem(raw, "robots", "unknown key", "robot")


def test_wrong_unit_in_the_key_name_is_an_unknown_key() -> None:
    raw = default_raw()
    raw["controller"]["cycle_period_s"] = 0.002
    del raw["controller"]["cycle_period_ms"]
    problems = problems_of(raw)
    expected = "controller.cycle_period_s: unknown key (did you mean 'cycle_period_ms'?)"
    assert any(expected in p for p in problems), problems


def test_unit_written_into_the_value() -> None:
    raw = default_raw()
    raw["robot"]["stop_input_reaction_ms"] = "24 ms"
    one_problem(raw, "robot.stop_input_reaction_ms", "'24 ms'", "milliseconds", "unit is in the key name")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("controller", "cycle_period_ms", True),  # a boolean is not a number
        ("link", "baud", 115200.5),  # not an integer
        ("link", "baud", "115200"),  # a string is not a number
        ("separation", "enabled", 1),  # a number is not a boolean
        ("robot", "stop_category", 1.0),  # category codes are integers
        ("controller", "restart", "sometimes"),
        ("robot", "hazard_polygon_m", 5),
    ],
)
def test_wrong_type(section: str, key: str, value: Any) -> None:
    raw = default_raw()
    raw[section][key] = value
    one_problem(raw, f"{section}.{key}", "got", repr(value))


def test_missing_field() -> None:
    raw = default_raw()
    del raw["sensors"]["cam0"]["inference_worst_ms"]
    one_problem(raw, "sensors.cam0.inference_worst_ms", "missing", "milliseconds")


def test_missing_section() -> None:
    raw = default_raw()
    del raw["link"]
    one_problem(raw, "link", "missing")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("controller", "worst_step_ms"), -1.0),
        (("sensors", "cam0", "transport_latency_ms"), -0.5),
        (("link", "command_watchdog_ms"), 0.0),
        (("robot", "stopping", 0, "stop_time_ms"), -10.0),
    ],
)
def test_negative_or_zero_time(path: tuple[Any, ...], value: float) -> None:
    raw = default_raw()
    node: Any = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    dotted = ".".join(str(p) for p in path).replace(".0.", "[0].")
    one_problem(raw, dotted, "got", str(value), "greater than")


def test_not_a_number() -> None:
    raw = default_raw()
    raw["robot"]["max_speed_mps"] = float("nan")
    one_problem(raw, "robot.max_speed_mps", "finite")


def test_point_with_too_few_coordinates() -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["mounting"]["position_m"] = [1.0, 2.0]
    one_problem(raw, "sensors.cam0.mounting.position_m", "too few", "3 numbers")


# -- stopping table ----------------------------------------------------------------------------------


@pytest.mark.requirement("SR-CFG-2")
def test_stopping_time_falling_with_speed() -> None:
    raw = default_raw()
    raw["robot"]["stopping"][2]["stop_time_ms"] = 90.0  # 0.5 m/s faster than at 0.25 m/s (100 ms)
    one_problem(raw, "robot.stopping[2].stop_time_ms", "non-monotone", "0.25 m/s")


@pytest.mark.requirement("SR-CFG-2")
def test_stopping_distance_falling_with_speed_in_an_unsorted_table() -> None:
    raw = default_raw()
    rows = raw["robot"]["stopping"]
    rows.reverse()  # order in the file does not matter
    rows[0]["stop_distance_m"] = 0.001  # 1.0 m/s at 5 kg stops within 1 mm
    problems = problems_of(raw)
    assert len(problems) == 2  # below 0.75 m/s at 5 kg, and below 1.0 m/s at 2.5 kg
    assert all(p.startswith(f"{SOURCE}: robot.stopping[0].stop_distance_m:") for p in problems)
    assert "grow with speed" in problems[0] and "grow with payload" in problems[1]


@pytest.mark.requirement("SR-CFG-2")
def test_stopping_falling_with_payload() -> None:
    raw = default_raw()
    raw["robot"]["stopping"][6]["stop_time_ms"] = 99.0  # 0.25 m/s at 5 kg, below 2.5 kg's 100 ms
    one_problem(raw, "robot.stopping[6].stop_time_ms", "payload")


def test_repeated_speed_row() -> None:
    raw = default_raw()
    raw["robot"]["stopping"][1]["speed_mps"] = 0.1
    problems = problems_of(raw)
    assert any("robot.stopping[1].speed_mps" in p and "one row per speed" in p for p in problems)


@pytest.mark.requirement("SR-CFG-2")
def test_max_speed_beyond_the_stopping_table() -> None:
    raw = default_raw()
    raw["robot"]["max_speed_mps"] = 1.2
    one_problem(raw, "robot.max_speed_mps", "beyond the stopping table", "at most 1.0")


@pytest.mark.requirement("SR-CFG-2")
def test_payload_beyond_the_stopping_table() -> None:
    raw = default_raw()
    raw["robot"]["payload_kg"] = 6.0
    one_problem(raw, "robot.payload_kg", "beyond the stopping table", "5.0 kg")


def test_empty_stopping_table() -> None:
    raw = default_raw()
    raw["robot"]["stopping"] = []
    one_problem(raw, "robot.stopping", "empty")


# -- polygons ----------------------------------------------------------------------------------------


@pytest.mark.requirement("SR-CFG-3")
def test_self_intersecting_zone() -> None:
    raw = default_raw()
    raw["zones"]["protective"]["polygon_m"] = [[-1.9, -1.9], [1.9, 1.9], [1.9, -1.9], [-1.9, 1.9]]
    one_problem(raw, "zones.protective.polygon_m", "Self-intersection", "simple polygon")


def test_self_intersecting_hazard_region() -> None:
    raw = default_raw()
    raw["robot"]["hazard_polygon_m"] = [[0, 0], [0.3, 0.3], [0.3, 0], [0, 0.3]]
    one_problem(raw, "robot.hazard_polygon_m", "Self-intersection")


@pytest.mark.requirement("SR-CFG-3")
def test_too_few_vertices() -> None:
    raw = default_raw()
    raw["zones"]["warning"]["polygon_m"] = [[0, 0], [1, 0]]
    one_problem(raw, "zones.warning.polygon_m", "2 vertices", "at least 3")


@pytest.mark.requirement("SR-CFG-3")
def test_too_many_vertices() -> None:
    import math

    raw = default_raw()
    n = MAX_VERTICES + 1
    raw["zones"]["protective"]["polygon_m"] = [
        [1.9 * math.cos(2 * math.pi * i / n), 1.9 * math.sin(2 * math.pi * i / n)] for i in range(n)
    ]
    problems = problems_of(raw)
    assert any(f"{n} vertices; expected at most {MAX_VERTICES}" in p for p in problems), problems


def test_repeated_closing_vertex() -> None:
    raw = default_raw()
    polygon = square(1.9)
    raw["zones"]["protective"]["polygon_m"] = [*polygon, polygon[0]]
    one_problem(raw, "zones.protective.polygon_m[0]", "repeats", "closes itself")


@pytest.mark.requirement("SR-CFG-3")
def test_collinear_polygon_has_no_area() -> None:
    raw = default_raw()
    raw["zones"]["warning"]["polygon_m"] = [[0, 0], [1, 0], [2, 0]]
    problems = problems_of(raw)
    assert any("zones.warning.polygon_m" in p for p in problems), problems


# -- coverage ----------------------------------------------------------------------------------------


@pytest.mark.requirement("SR-CFG-4")
def test_zone_outside_every_sensor_covered_area() -> None:
    raw = default_raw()
    raw["zones"]["warning"]["polygon_m"] = square(0.5, cx=-9.0)  # behind the camera
    one_problem(raw, "zones.warning.polygon_m", "outside every sensor's covered area", "x=-9")


@pytest.mark.requirement("SR-CFG-4")
def test_zone_partly_outside_the_covered_area() -> None:
    raw = default_raw()
    raw["zones"]["protective"]["polygon_m"] = square(2.3)  # the camera sees to about x = 1.97 m
    line = one_problem(raw, "zones.protective.polygon_m", "% (", "outside every sensor's covered area")
    assert "lies outside" not in line


@pytest.mark.requirement("SR-CFG-4")
def test_second_camera_covers_what_the_first_misses() -> None:
    raw = default_raw()
    raw["zones"]["protective"]["polygon_m"] = [[-2.3, -1.5], [2.3, -1.5], [2.3, 1.5], [-2.3, 1.5]]
    with pytest.raises(ConfigError):
        config_from_dict(raw, SOURCE)  # cam0 alone sees to about x = 1.97 m
    east = default_raw()["sensors"]["cam0"]
    east["connection_id"] = 102
    east["mounting"].update(position_m=[5.7, 0.0, 2.5], yaw_deg=180.0)
    raw["sensors"]["east"] = east
    config_from_dict(raw, SOURCE)  # no problem: the union of both covered areas holds the zone


def test_camera_that_sees_no_floor() -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["mounting"]["pitch_deg"] = -30.0  # looking at the sky
    problems = problems_of(raw)
    assert any(p.startswith(f"{SOURCE}: sensors.cam0:") and "covers no floor" in p for p in problems)


def test_camera_on_the_floor_is_one_problem() -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["mounting"]["position_m"] = [-5.7, 0.0, 0.0]
    one_problem(raw, "sensors.cam0", "camera height must be above the floor")  # zones not also blamed


# -- sensors -----------------------------------------------------------------------------------------


def test_sensor_without_geometry() -> None:
    raw = default_raw()
    del raw["sensors"]["cam0"]["mounting"]
    problems = problems_of(raw)
    assert any("sensors.cam0:" in p and "no floor geometry" in p for p in problems), problems


def test_too_few_calibration_points() -> None:
    raw = default_raw()
    sensor = raw["sensors"]["cam0"]
    del sensor["mounting"]
    sensor["calibration_points"] = [{"pixel": [0, 0], "floor_m": [1, 1]}] * 3
    problems = problems_of(raw)
    assert any("3 calibration points" in p and "at least 4" in p for p in problems), problems


def test_calibration_points_instead_of_a_pose() -> None:
    from cobotguard.safety.camera import CameraModel

    raw = default_raw()
    sensor = raw["sensors"]["cam0"]
    cam = CameraModel.from_config(load_config(DEFAULT_CELL).sensors["cam0"])
    points = []
    for x, y in [(-1.5, -1.5), (1.5, -1.5), (1.5, 1.5), (-1.5, 1.5), (0.0, 0.0)]:
        u, v = cam.floor_to_pixel(x, y)
        points.append({"pixel": [u, v], "floor_m": [x, y]})
    del sensor["mounting"]
    sensor["calibration_points"] = points
    cfg = config_from_dict(raw, SOURCE)
    assert len(cfg.sensors["cam0"].calibration_points or []) == 5


def test_mounting_and_calibration_points_together() -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["calibration_points"] = [{"pixel": [0, 0], "floor_m": [1, 1]}] * 4
    one_problem(raw, "sensors.cam0.calibration_points", "one geometry source")


@pytest.mark.requirement("SR-CFG-8")
def test_too_many_persons() -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["max_persons"] = MAX_PERSONS + 1
    one_problem(raw, "sensors.cam0.max_persons", f"at most {MAX_PERSONS}")


@pytest.mark.requirement("SR-CFG-8")
def test_inference_slower_than_a_frame() -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["inference_worst_ms"] = 70.0  # 15 Hz: 66.7 ms per frame
    one_problem(raw, "sensors.cam0.inference_worst_ms", "longer than a frame", "66.667")


@pytest.mark.requirement("SR-CFG-8")
def test_too_many_sensors() -> None:
    raw = default_raw()
    cam = raw["sensors"]["cam0"]
    for i in range(MAX_SENSORS):
        extra = dict(cam, connection_id=200 + i)
        raw["sensors"][f"extra{i}"] = extra
    problems = problems_of(raw)
    assert any(f"{MAX_SENSORS + 1} sensors; expected at most {MAX_SENSORS}" in p for p in problems)


def test_no_sensor() -> None:
    raw = default_raw()
    raw["sensors"] = {}
    problems = problems_of(raw)
    assert any("sensors: no sensor declared" in p for p in problems), problems


@pytest.mark.requirement("SR-CFG-8")
def test_duplicate_connection_ids() -> None:
    raw = default_raw()
    raw["link"]["connection_id"] = raw["sensors"]["cam0"]["connection_id"]
    one_problem(raw, "link.connection_id", "also used by sensors.cam0.connection_id")


# -- zones -------------------------------------------------------------------------------------------


def test_too_many_zones() -> None:
    raw = default_raw()
    for i in range(MAX_ZONES - 1):
        raw["zones"][f"extra{i}"] = {"type": "warning", "polygon_m": square(1.0), "speed_limit_mps": 0.1}
    one_problem(raw, "zones", f"{MAX_ZONES + 1} zones", f"at most {MAX_ZONES}")


@pytest.mark.requirement("SR-CFG-5")
def test_warning_zone_needs_a_speed_limit() -> None:
    raw = default_raw()
    del raw["zones"]["warning"]["speed_limit_mps"]
    one_problem(raw, "zones.warning.speed_limit_mps", "missing")


@pytest.mark.requirement("SR-CFG-5")
def test_warning_zone_speed_limit_must_slow_the_robot() -> None:
    raw = default_raw()
    raw["zones"]["warning"]["speed_limit_mps"] = 0.25
    one_problem(raw, "zones.warning.speed_limit_mps", "does not slow")


@pytest.mark.requirement("SR-CFG-5")
def test_protective_zone_needs_a_stop_category() -> None:
    raw = default_raw()
    del raw["zones"]["protective"]["stop_category"]
    one_problem(raw, "zones.protective.stop_category", "missing", "0, 1 or 2")


def test_protective_zone_rejects_a_speed_limit() -> None:
    raw = default_raw()
    raw["zones"]["protective"]["speed_limit_mps"] = 0.1
    one_problem(raw, "zones.protective.speed_limit_mps", "only on warning zones")


def test_warning_zone_rejects_a_stop_category() -> None:
    raw = default_raw()
    raw["zones"]["warning"]["stop_category"] = 1
    one_problem(raw, "zones.warning.stop_category", "only on protective zones")


@pytest.mark.requirement("SR-CFG-5")
def test_stop_category_must_match_the_stopping_data() -> None:
    raw = default_raw()
    raw["zones"]["protective"]["stop_category"] = 0
    raw["separation"]["stop_category"] = 2
    problems = problems_of(raw)
    assert len(problems) == 2
    assert all("robot's stopping data is for category 1" in p for p in problems)


@pytest.mark.requirement("SR-CFG-5")
def test_nothing_would_stop_the_robot() -> None:
    raw = default_raw()
    raw["separation"]["enabled"] = False
    del raw["zones"]["protective"]
    one_problem(raw, "separation.enabled", "no protective zone")


# -- controller and link -----------------------------------------------------------------------------


@pytest.mark.requirement("SR-CFG-6")
def test_automatic_restart_needs_a_clear_time() -> None:
    raw = default_raw()
    raw["controller"]["restart"] = "automatic"
    one_problem(raw, "controller.auto_restart_clear_ms", "missing", "automatic")


def test_automatic_restart_with_a_clear_time() -> None:
    raw = default_raw()
    raw["controller"].update(restart="automatic", auto_restart_clear_ms=2000.0)
    assert config_from_dict(raw, SOURCE).controller.auto_restart_clear_ms == 2000.0


@pytest.mark.requirement("SR-CFG-6")
def test_manual_restart_rejects_a_clear_time() -> None:
    raw = default_raw()
    raw["controller"]["auto_restart_clear_ms"] = 2000.0
    one_problem(raw, "controller.auto_restart_clear_ms", "manual")


def test_a_worst_step_longer_than_the_cycle_is_valid() -> None:
    raw = default_raw()
    raw["controller"]["worst_step_ms"] = 7.5  # measured: some cycles take longer than the 2 ms tick
    cfg = config_from_dict(raw, SOURCE)
    assert cfg.controller.worst_step_ms > cfg.controller.cycle_period_ms


@pytest.mark.requirement("SR-CFG-7")
def test_a_worst_step_too_long_for_the_robot_watchdog_names_both_keys() -> None:
    raw = default_raw()
    raw["controller"]["worst_step_ms"] = 38.0  # 2 + 38 + 0.32 + 10 = 50.32 ms >= the 50 ms watchdog
    raw["controller"]["robot_state_timeout_ms"] = 60.0  # above 5 + 0.48 + 38: the robot state rule holds
    one_problem(
        raw, "link.command_watchdog_ms", "50.0 ms", "more than 50.320 ms", "controller.worst_step_ms 38.0",
        "controller.cycle_period_ms 2.0",
    )  # fmt: skip
    raw["controller"]["worst_step_ms"] = 37.0
    config_from_dict(raw, SOURCE)


def test_watchdog_shorter_than_normal_traffic() -> None:
    raw = default_raw()
    raw["link"]["command_watchdog_ms"] = 5.0  # 2 + 10 + 0.32 + 10 ms of normal gap (worst step 10 ms)
    one_problem(raw, "link.command_watchdog_ms", "22.320")


def test_a_file_without_the_robot_state_period_keeps_the_protocols_old_heartbeat() -> None:
    raw = default_raw()
    del raw["robot"]["state_period_ms"]
    assert config_from_dict(raw, SOURCE).robot.state_period_ms == DEFAULT_STATE_PERIOD_MS == 4.0


@pytest.mark.requirement("SR-CFG-7")
def test_the_robot_state_timeout_must_hold_the_period_a_frame_and_a_cycle() -> None:
    raw = default_raw()
    raw["robot"]["state_period_ms"] = 10.0  # 10 + 0.48 (48 B at 1 Mbaud) + max(2, 10) = 20.48 >= 20 ms
    one_problem(
        raw, "controller.robot_state_timeout_ms", "20.0 ms", "more than 20.480 ms",
        "robot.state_period_ms 10.0", "one state frame 0.480",
        "max(controller.cycle_period_ms, controller.worst_step_ms) = 10.0",
    )  # fmt: skip
    raw["robot"]["state_period_ms"] = 9.5
    assert config_from_dict(raw, SOURCE).robot.state_period_ms == 9.5


def test_a_state_period_shorter_than_a_state_frame() -> None:
    raw = default_raw()
    raw["robot"]["state_period_ms"] = 0.4  # a 48 B state frame takes 0.48 ms at 1 Mbaud
    one_problem(raw, "robot.state_period_ms", "0.4 ms", "0.480 ms", "link.baud")


def test_speed_supervision_keys_default_to_the_old_fixed_behaviour() -> None:
    cfg = config_from_dict(default_raw(), SOURCE)
    assert cfg.robot.speed_tolerance_mps == DEFAULT_SPEED_TOLERANCE_MPS == 0.02
    assert cfg.robot.overspeed_grace_ms is None


@pytest.mark.requirement("SR-CFG-10")
def test_a_speed_tolerance_must_stay_below_every_slow_limit() -> None:
    raw = default_raw()
    raw["robot"]["speed_tolerance_mps"] = 0.1  # the warning zone slows to 0.1 m/s
    one_problem(raw, "robot.speed_tolerance_mps", "0.1 m/s", "zones.warning.speed_limit_mps", "expected less")
    raw["robot"]["speed_tolerance_mps"] = 0.3  # beyond the maximum speed (0.25 m/s) too
    problems = problems_of(raw)
    assert len(problems) == 2 and all("robot.speed_tolerance_mps: 0.3 m/s" in p for p in problems)
    assert any("robot.max_speed_mps" in p for p in problems)
    raw["robot"]["speed_tolerance_mps"] = -0.01
    one_problem(raw, "robot.speed_tolerance_mps", "greater than or equal to 0")


@pytest.mark.requirement("SR-CFG-10")
def test_a_fixed_overspeed_grace_must_cover_an_obeying_robot() -> None:
    raw = default_raw()
    raw["robot"]["overspeed_grace_ms"] = 173.0  # 74 ms to the robot and back + T_s 100 ms at 0.25 m/s
    one_problem(
        raw, "robot.overspeed_grace_ms", "173.0 ms", "at least 174.000 ms", "74.000 ms", "100.000 ms",
        "robot.max_speed_mps 0.25",
    )  # fmt: skip
    raw["robot"]["overspeed_grace_ms"] = 174.0
    assert config_from_dict(raw, SOURCE).robot.overspeed_grace_ms == 174.0
    raw["robot"]["overspeed_grace_ms"] = 0.0
    one_problem(raw, "robot.overspeed_grace_ms", "greater than 0")


def test_wake_on_data_defaults_to_false() -> None:
    raw = default_raw()
    del raw["controller"]["wake_on_data"]  # the default cell declares it
    assert config_from_dict(raw, SOURCE).controller.wake_on_data is False
    raw["controller"]["wake_on_data"] = True
    assert config_from_dict(raw, SOURCE).controller.wake_on_data is True


@pytest.mark.parametrize("value", [1, 0, "true", "yes"])
def test_wake_on_data_is_a_boolean(value: Any) -> None:
    raw = default_raw()
    raw["controller"]["wake_on_data"] = value
    one_problem(raw, "controller.wake_on_data", "got", repr(value), "boolean")


@pytest.mark.parametrize(
    ("key", "needed"),
    [("command_frame_bytes", COMMAND_FRAME_BYTES), ("state_frame_bytes", ROBOT_STATE_FRAME_BYTES)],
)
def test_link_frame_sizes_against_the_protocol(key: str, needed: int) -> None:
    raw = default_raw()
    raw["link"][key] = needed - 1
    one_problem(raw, f"link.{key}", f"at least {needed}", "protocol")
    raw["link"][key] = needed
    config_from_dict(raw, SOURCE)


@pytest.mark.requirement("SR-CFG-7")
def test_command_frame_longer_than_the_cycle() -> None:
    raw = default_raw()
    # 32 B x 10 bit / 150 000 baud = 2.133 ms > 2 ms cycle; the 30 B state frame takes 2.000 ms: fits.
    raw["link"].update(baud=150_000, state_frame_bytes=30)
    one_problem(
        raw, "link.baud", "32-byte command frame", "2.133 ms", "cycle (2.0 ms)", "at least 160000 baud",
        "backlog",
    )  # fmt: skip
    raw["link"]["baud"] = 160_000  # exactly one cycle: 320 bit / 160 kbaud = 2 ms
    config_from_dict(raw, SOURCE)


def test_state_frame_longer_than_the_cycle() -> None:
    raw = default_raw()
    # 32 B commands take 1.6 ms at 200 kbaud (fit), 48 B robot states 2.4 ms (do not: one per command).
    raw["link"]["baud"] = 200_000
    one_problem(raw, "link.baud", "48-byte robot state frame", "2.400 ms", "at least 240000 baud")


def test_the_old_115200_baud_default_cannot_carry_a_2_ms_cycle() -> None:
    raw = default_raw()
    raw["link"]["baud"] = 115_200  # 2.778 ms per command frame, 4.167 ms per state frame
    problems = [p for p in problems_of(raw) if "link.baud:" in p]
    assert len(problems) == 2
    assert "2.778 ms" in problems[0] and "4.167 ms" in problems[1]


@pytest.mark.requirement("SR-CFG-7")
def test_sensor_serial_line_must_carry_the_largest_frame_within_the_transport_latency() -> None:
    raw = default_raw()
    # max_persons 8: 241 B x 10 bit / 115 200 baud = 20.9201 ms, shown rounded up: 20.921 ms > 8 ms.
    assert detections_frame_bytes(8) == 241
    raw["sensors"]["cam0"]["serial_baud"] = 115_200
    one_problem(
        raw, "sensors.cam0.transport_latency_ms", "8.0 ms", "241 B", "max_persons = 8", "115200 baud",
        "at least 20.921 ms",
    )  # fmt: skip
    raw["sensors"]["cam0"]["transport_latency_ms"] = 20.921
    config_from_dict(raw, SOURCE)


def test_sensor_serial_line_frame_grows_with_max_persons() -> None:
    raw = default_raw()
    raw["controller"]["person_hold_ms"] = 0.0  # a shorter transport shortens the stale limit below the hold
    raw["sensors"]["cam0"].update(serial_baud=1_000_000, transport_latency_ms=2.41)  # 241 B: just fits
    config_from_dict(raw, SOURCE)
    raw["sensors"]["cam0"]["max_persons"] = 9  # 266 B (24 more, and one more COBS code byte): 2.66 ms
    one_problem(raw, "sensors.cam0.transport_latency_ms", "266 B", "at least 2.660 ms")


def test_without_serial_baud_the_transport_latency_is_the_integrators_word() -> None:
    raw = default_raw()
    raw["controller"]["person_hold_ms"] = 0.0  # a shorter transport shortens the stale limit below the hold
    del raw["sensors"]["cam0"]["serial_baud"]  # e.g. in-process: no line time to cover
    raw["sensors"]["cam0"]["transport_latency_ms"] = 0.0
    assert config_from_dict(raw, SOURCE).sensors["cam0"].serial_baud is None


@pytest.mark.parametrize("value", [0, -9600, 115200.0, "115200", True])
def test_serial_baud_is_a_positive_integer(value: Any) -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["serial_baud"] = value
    one_problem(raw, "sensors.cam0.serial_baud", "got", repr(value))


def test_default_cell_lines_run_at_1_mbaud() -> None:
    cfg = load_config(DEFAULT_CELL)
    assert cfg.link.baud == 1_000_000 and cfg.sensors["cam0"].serial_baud == 1_000_000


# -- all problems at once, files, TOML syntax ---------------------------------------------------------


@pytest.mark.requirement("SR-CFG-1")
def test_every_problem_is_reported_at_once() -> None:
    raw = default_raw()
    raw["robot"]["max_speed"] = 1.0  # unknown key (robot table now fails the schema)
    raw["robot"]["hazard_polygon_m"] = [[0, 0], [0.3, 0.3], [0.3, 0], [0, 0.3]]  # still checked
    raw["robot"]["stopping"][1]["stop_distance_m"] = 0.0  # still checked
    raw["controller"]["auto_restart_clear_ms"] = 2000.0  # with restart = "manual"
    raw["zones"]["warning"]["polygon_m"] = [[0, 0], [1, 0]]
    raw["link"]["baud"] = "fast"
    problems = problems_of(raw)
    for key in (
        "robot.max_speed:",
        "robot.hazard_polygon_m:",
        "robot.stopping[1].stop_distance_m:",
        "controller.auto_restart_clear_ms:",
        "zones.warning.polygon_m:",
        "link.baud:",
    ):
        assert sum(key in p for p in problems) == 1, (key, problems)


def test_a_broken_sensor_does_not_make_zones_look_unseen() -> None:
    import tomllib

    raw = tomllib.loads((EXAMPLES / "two_camera_cell.toml").read_text())
    raw["sensors"]["east"]["frame_rate_hz"] = "fast"  # west alone does not see the east half
    one_problem(raw, "sensors.east.frame_rate_hz", "'fast'")


@pytest.mark.requirement("SR-CFG-1")
def test_load_config_from_file_names_the_file(tmp_path: Path) -> None:
    raw = default_raw()
    raw["controller"]["auto_restart_clear_ms"] = 2000.0
    path = tmp_path / "bad cell.toml"
    path.write_text(to_toml(raw))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems == [
        f'{path}: controller.auto_restart_clear_ms: set with restart = "manual"; expected it only with '
        'restart = "automatic" (a manual reset does not time out)'
    ]


@pytest.mark.requirement("SR-CFG-1")
def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('schema_version = 1\nname = "x"\n[robot]\nmax_speed_mps = = 1\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (line,) = exc.value.problems
    assert line.startswith(f"{path}: line 4, column ")
    assert "TOML syntax error" in line and "expected" in line


@pytest.mark.requirement("SR-CFG-1")
def test_not_utf8_gives_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems == [
        f"{path}: byte 11: not UTF-8 (invalid continuation byte); expected a UTF-8 encoded TOML file"
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml")
    assert "cannot read the file" in exc.value.problems[0]


def test_loads_config_round_trips_the_writer() -> None:
    cfg = loads_config(to_toml(default_raw()), "text")
    assert cfg == load_config(DEFAULT_CELL)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        loads_config("schema_version = 2\n")


# -- robustness: any mutation gives a configuration or ConfigError, never another exception -----------

_ANY_VALUE = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-10.0, 10.0),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.floats(-10.0, 10.0), max_size=4),
    st.lists(st.lists(st.floats(-5.0, 5.0), min_size=2, max_size=2), max_size=6),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _leaf_paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [path] + [p for k, v in data.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(data, list):
        return [path] + [p for i, v in enumerate(data) for p in _leaf_paths(v, (*path, i))]
    return [path]


@given(
    path=st.sampled_from([p for p in _leaf_paths(default_raw()) if p]),
    value=_ANY_VALUE,
    delete=st.booleans(),
)
def test_any_mutation_is_valid_or_a_config_error(path: tuple[Any, ...], value: Any, delete: bool) -> None:
    raw = default_raw()
    node: Any = raw
    for part in path[:-1]:
        node = node[part]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    try:
        config_from_dict(raw, SOURCE)
    except ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith(f"{SOURCE}: ") and "expected" in line and "\n" not in line, line


def test_person_hold_defaults_to_off_and_the_default_cell_holds() -> None:
    raw = default_raw()
    del raw["controller"]["person_hold_ms"]
    assert config_from_dict(raw, SOURCE).controller.person_hold_ms == 0.0
    # the shipped cell holds a missed person just under its camera's stale limit (199.334 ms)
    assert load_config(DEFAULT_CELL).controller.person_hold_ms == 199.0


@pytest.mark.requirement("SR-CFG-11")
def test_person_hold_up_to_the_stale_limit() -> None:
    # the default camera: 2 x 66.666667 ms (15 fps, one tolerated missed frame) + 8 + 50 + 8 ms
    raw = default_raw()
    raw["controller"]["person_hold_ms"] = 199.334  # 199.333334 ms, rounded up to the microsecond
    assert config_from_dict(raw, SOURCE).controller.person_hold_ms == 199.334
    raw["controller"]["person_hold_ms"] = 199.335
    one_problem(raw, "controller.person_hold_ms", "199.335 ms", "sensors.cam0", "199.334 ms")
    raw["controller"]["person_hold_ms"] = 250.0
    line = one_problem(
        raw, "controller.person_hold_ms", "250.0 ms", "stale limit", "sensors.cam0", "199.334 ms"
    )
    assert "or 0 (off)" in line
    raw["sensors"]["cam0"]["tolerated_missed_frames"] = 2  # a longer stale limit: 266 ms
    assert config_from_dict(raw, SOURCE).controller.person_hold_ms == 250.0


@pytest.mark.requirement("SR-CFG-11")
def test_person_hold_bound_names_each_sensor_it_exceeds() -> None:
    raw = default_raw()
    second = dict(raw["sensors"]["cam0"], connection_id=102, tolerated_missed_frames=3)
    raw["sensors"]["cam1"] = second
    raw["controller"]["person_hold_ms"] = 250.0  # beyond cam0's 199.334 ms, within cam1's 332.667 ms
    one_problem(raw, "controller.person_hold_ms", "sensors.cam0")


@pytest.mark.parametrize("value", [-1.0, "100", True])
def test_person_hold_is_a_non_negative_number(value: Any) -> None:
    raw = default_raw()
    raw["controller"]["person_hold_ms"] = value
    problems = problems_of(raw)
    assert any(line.startswith(f"{SOURCE}: controller.person_hold_ms:") for line in problems), problems
