"""The latency budget: hand-computed cases (arithmetic shown) and properties of the formulas."""

from __future__ import annotations

from typing import Any

import pytest
import shapely
from config_support import DEFAULT_CELL, EXAMPLES, default_raw, round_number_raw, square
from hypothesis import assume, given
from hypothesis import strategies as st

from cobotguard.safety import budget as budget_module
from cobotguard.safety.budget import (
    Stage,
    distance_to_outside_m,
    evaluate,
    iso13855_distance_m,
    link_loss_reaction_ns,
    max_safe_speed_mps,
    reaction_stages,
    reaction_time_ns,
    robot_silence_reaction_ns,
    sensor_stages,
    separation_required_m,
    zone_required_m,
)
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.config_load import config_from_dict, load_config
from cobotguard.safety.stopping import stopping_at, stopping_curve_ns
from cobotguard.safety.timing import sensor_latency_ns, sensor_max_age_ns

MS = 1_000_000


def schema_only(raw: dict[str, Any]) -> CellConfig:
    """Schema validation only: fast, for properties that do not need geometry checks."""
    return CellConfig.model_validate(raw)


# -- hand-computed ------------------------------------------------------------------------------------


@pytest.mark.requirement("SR-BUD-1")
def test_reaction_time_by_hand() -> None:
    cfg = config_from_dict(round_number_raw())
    # sensor:     frame period 1000/20 = 50 ms, x (1 + 1 missed)  = 100 ms
    #             + exposure/readout 10 + inference 20 + transport 5 = 135 ms
    # controller: cycle 5 + worst step 5                            =  10 ms
    # link:       50 B x 10 bit / 100 000 baud = 5 ms, + receiver 10  =  15 ms
    # robot:      stop input reaction                               =  40 ms
    # T_r = 135 + 10 + 15 + 40                                      = 200 ms
    assert reaction_time_ns(cfg) == 200 * MS
    # Link loss: the robot's watchdog (100 ms) replaces frame + receiver (15 ms): 200 - 15 + 100 = 285 ms.
    assert link_loss_reaction_ns(cfg) == 285 * MS


@pytest.mark.requirement("SR-BUD-1")
def test_robot_silence_reaction_by_hand() -> None:
    raw = round_number_raw()
    raw["controller"].update(worst_step_ms=7.5, robot_state_timeout_ms=30.0)
    cfg = config_from_dict(raw)
    # state timeout 30 + wait for the tick max(5, 7.5) + worst step 7.5 + command frame 5 + receiver 10
    # + stop input 40 = 100 ms
    assert robot_silence_reaction_ns(cfg) == 100 * MS
    terms = {t.symbol: t for t in evaluate(cfg).terms}
    assert (terms["T_robot_silent"].value, terms["T_robot_silent"].unit) == (100.0, "ms")


def _controller_stages(cfg: CellConfig) -> dict[str, Stage]:
    return {st.symbol: st for st in reaction_stages(cfg) if st.symbol in ("T_cycle", "T_step")}


@pytest.mark.requirement("SR-BUD-1")
def test_a_worst_step_longer_than_the_cycle_is_the_wait_on_the_tick_by_hand() -> None:
    raw = round_number_raw()
    raw["controller"]["worst_step_ms"] = 7.5  # the 5 ms tick, some cycles take up to 7.5 ms
    cfg = config_from_dict(raw)
    stages = _controller_stages(cfg)
    # A frame arrives just after the cycle released at r read its inputs; that cycle writes its command
    # as late as r + 7.5 ms, so the next cycle that runs is released at r + 5 ms (r + 10 ms has not passed
    # yet): the frame waits up to max(5, 7.5) = 7.5 ms for that release, then the step takes 7.5 ms.
    assert stages["T_cycle"].ns == 7_500_000 and stages["T_step"].ns == 7_500_000
    assert stages["T_cycle"].source == "controller.cycle_period_ms, controller.worst_step_ms"
    # T_r = 135 + 7.5 + 7.5 + 15 + 40 = 205 ms
    assert reaction_time_ns(cfg) == 205 * MS


def test_wake_on_data_waits_for_a_step_in_progress_not_for_the_tick_by_hand() -> None:
    raw = round_number_raw()
    raw["controller"].update(worst_step_ms=2.0, wake_on_data=True)  # the 5 ms tick, a 2 ms worst step
    cfg = config_from_dict(raw)
    stages = _controller_stages(cfg)
    assert stages["T_cycle"].ns == 2 * MS and stages["T_step"].ns == 2 * MS
    assert stages["T_cycle"].source == "controller.worst_step_ms, controller.wake_on_data"
    assert "wake on data" in stages["T_cycle"].description
    assert "no wait for the tick" in stages["T_cycle"].description
    # T_r = 135 + 2 + 2 + 15 + 40 = 194 ms; on the tick the frame waits the whole 5 ms period: 197 ms.
    assert reaction_time_ns(cfg) == 194 * MS
    raw["controller"]["wake_on_data"] = False
    tick = config_from_dict(raw)
    assert _controller_stages(tick)["T_cycle"].ns == 5 * MS
    assert reaction_time_ns(tick) == 197 * MS


def test_wake_on_data_term_in_the_report() -> None:
    raw = default_raw()
    raw["controller"]["wake_on_data"] = True
    terms = {t.symbol: t for t in evaluate(config_from_dict(raw)).terms}
    assert terms["T_cycle"].value == pytest.approx(10.0)  # the default cell's worst step
    assert terms["T_cycle"].source == "controller.worst_step_ms, controller.wake_on_data"
    stages = ("T_sensor", "T_cycle", "T_step", "T_frame", "T_receiver", "T_stop_input")
    assert sum(terms[s].value for s in stages) == pytest.approx(terms["T_r"].value)


@given(
    period_ms=st.floats(0.1, 50.0),
    worst_ms=st.floats(0.01, 100.0),
)
def test_the_controller_share_is_never_below_one_step_plus_the_wait_the_mode_allows(
    period_ms: float, worst_ms: float
) -> None:
    raw = default_raw()
    raw["controller"].update(cycle_period_ms=period_ms, worst_step_ms=worst_ms, wake_on_data=False)
    tick = schema_only(raw)
    raw["controller"]["wake_on_data"] = True
    wake = schema_only(raw)
    period_ns, worst_ns = ns(period_ms), ns(worst_ms)
    tick_share = sum(st.ns for st in _controller_stages(tick).values())
    wake_share = sum(st.ns for st in _controller_stages(wake).values())
    assert tick_share == max(period_ns, worst_ns) + worst_ns
    assert wake_share == 2 * worst_ns
    assert wake_share <= tick_share  # waking on data never makes the budget worse
    assert reaction_time_ns(wake) <= reaction_time_ns(tick)


@pytest.mark.requirement("SR-BUD-2")
def test_iso13855_static_zone_by_hand() -> None:
    cfg = config_from_dict(round_number_raw())
    report = evaluate(cfg)
    # T = T_r + T_s(0.5 m/s) = 200 + 300 = 500 ms.
    # K = 2.0: S = 2.0 x 0.5 + 0.85 = 1.85 m > 0.5 m, so K = 1.6: S = 1.6 x 0.5 + 0.85 = 1.65 m (>= 0.5 m).
    # Supplements Z_d + Z_r = 0.10 + 0.05: S = 1.80 m.
    assert report.zone_separation_m == pytest.approx(1.80, abs=1e-12)
    # The zone (half-width 1.9 m) around the hazard square (half-width 0.5 m): distance 1.4 m.
    # Margin 1.4 - 1.8 = -0.4 m: unsafe.
    (zone,) = report.zones
    assert zone.distance_m == pytest.approx(1.4)
    assert zone.margin_m == pytest.approx(-0.4)
    assert report.verdict == "unsafe"
    assert "short by 0.400 m" in report.reasons[0]
    # Highest safe speed: at 0.25 m/s, T = 200 + 200 = 400 ms, S = 1.6 x 0.4 + 0.85 + 0.15 = 1.64 m > 1.4 m;
    # every row is too slow to stop, so the answer is 0 m/s.
    assert report.max_safe_robot_speed_mps == 0.0


@pytest.mark.requirement("SR-BUD-2")
def test_iso13855_safe_when_the_zone_is_wide_enough() -> None:
    raw = round_number_raw()
    raw["robot"]["hazard_polygon_m"] = square(0.05)
    cfg = schema_only(raw)  # the zone distance is now 1.9 - 0.05 = 1.85 m against 1.80 m
    report = evaluate(cfg)
    assert report.zones[0].margin_m == pytest.approx(0.05)
    assert report.verdict == "safe"
    assert report.max_safe_robot_speed_mps == 0.5


@pytest.mark.requirement("SR-BUD-2")
def test_iso13855_near_rules() -> None:
    # K = 2.0 while S <= 0.5 m: T = 0.2 s, C = 0 -> S = 0.4 m.
    assert iso13855_distance_m(200 * MS, 0.0) == pytest.approx((2.0, 0.4))
    # T = 0.28 s, C = 0: 2.0 x 0.28 = 0.56 > 0.5, so K = 1.6: 0.448 m, but never below 0.5 m.
    assert iso13855_distance_m(280 * MS, 0.0) == pytest.approx((1.6, 0.5))
    # T = 0.5 s, C = 0.85: 1.85 > 0.5, K = 1.6: 0.8 + 0.85 = 1.65 m.
    assert iso13855_distance_m(500 * MS, 0.85) == pytest.approx((1.6, 1.65))
    # T = 0.25 s, C = 0: 2.0 x 0.25 = 0.5 m exactly is still "not more than 0.5 m": K = 2.0.
    assert iso13855_distance_m(250 * MS, 0.0) == (2.0, 0.5)


@pytest.mark.requirement("SR-BUD-2", "SR-BUD-3")
def test_distance_to_outside_counts_only_an_area_around_the_hazard() -> None:
    hazard = shapely.box(-1.0, -1.0, 1.0, 1.0)
    assert distance_to_outside_m(shapely.box(-3.0, -3.0, 2.5, 4.0), hazard) == 1.5  # nearest edge: x = 2.5
    assert distance_to_outside_m(shapely.box(5.0, 5.0, 6.0, 6.0), hazard) == 0.0  # beside it: no protection
    assert distance_to_outside_m(shapely.box(0.0, -3.0, 3.0, 3.0), hazard) == 0.0  # overlaps it: none either
    assert distance_to_outside_m(shapely.Polygon(), hazard) == 0.0


@pytest.mark.requirement("SR-BUD-2")
def test_a_margin_of_exactly_zero_is_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config_from_dict(round_number_raw())
    # the distance equals the ISO 13855 minimum: that meets it (the margins are computed elsewhere)
    monkeypatch.setattr(budget_module, "_margins", lambda *args: [0.0])
    assert max_safe_speed_mps(cfg) == cfg.robot.max_speed_mps
    monkeypatch.setattr(budget_module, "_margins", lambda *args: [-1e-12])
    assert max_safe_speed_mps(cfg) == 0.0


@pytest.mark.requirement("SR-SSM-3")
def test_iso_ts_15066_separation_by_hand() -> None:
    raw = round_number_raw()
    raw["separation"]["enabled"] = True
    cfg = schema_only(raw)
    # T_r = 0.2 s, v_r = 0.5 m/s, T_s = 0.3 s, S_s = 0.1 m, C = 0.85, Z_d = 0.1, Z_r = 0.05.
    # S_h = 1.6 x (0.2 + 0.3) = 0.8    (2.0 m/s would give 1.0 + ... > 0.5 m, so 1.6 m/s)
    # S_r = 0.5 x 0.2         = 0.1
    # S_s                     = 0.1
    # S_p = 0.8 + 0.1 + 0.1 + 0.85 + 0.1 + 0.05 = 2.0 m
    assert separation_required_m(cfg, 0.5) == pytest.approx(2.0)
    report = evaluate(cfg)
    assert report.protective_separation_m == pytest.approx(2.0)
    assert report.human_speed_mps == 1.6
    terms = {t.symbol: t.value for t in report.terms}
    assert terms["S_h"] == pytest.approx(0.8)
    assert terms["S_r"] == pytest.approx(0.1)
    assert terms["S_s"] == pytest.approx(0.1)
    assert terms["T_r"] == pytest.approx(200.0)
    assert terms["T_s"] == pytest.approx(300.0)
    # At 0.25 m/s: T_s = 0.2 s, S_s = 0.05 m:
    # S_p = 1.6 x 0.4 + 0.25 x 0.2 + 0.05 + 0.85 + 0.1 + 0.05 = 0.64 + 0.05 + 0.05 + 1.0 = 1.74 m
    assert separation_required_m(cfg, 0.25) == pytest.approx(1.74)
    # A detection with its own, smaller Z_d (0.02 m) needs 0.08 m less.
    assert separation_required_m(cfg, 0.25, z_d_m=0.02) == pytest.approx(1.66)


@pytest.mark.requirement("SR-BUD-4")
def test_stopping_uses_the_next_row_up_and_the_next_payload_up() -> None:
    cfg = load_config(DEFAULT_CELL)  # payload 2.0 kg -> the 2.5 kg curve
    assert stopping_at(cfg.robot, 0.25) == (100 * MS, 0.015)
    assert stopping_at(cfg.robot, 0.26) == (160 * MS, 0.045)  # between rows: the faster row
    assert stopping_at(cfg.robot, 0.0) == (60 * MS, 0.005)  # below the first row: the first row
    heavier = cfg.robot.model_copy(update={"payload_kg": 3.0})  # -> the 5 kg curve
    assert stopping_at(heavier, 0.25) == (120 * MS, 0.02)
    with pytest.raises(ValueError, match="beyond the stopping table"):
        stopping_at(cfg.robot, 1.01)


@pytest.mark.requirement("SR-BUD-1")
def test_every_term_has_a_source_and_the_stages_add_up() -> None:
    report = evaluate(load_config(DEFAULT_CELL))
    terms = {t.symbol: t for t in report.terms}
    assert all(t.source for t in report.terms)
    stages = ("T_sensor", "T_cycle", "T_step", "T_frame", "T_receiver", "T_stop_input")
    assert sum(terms[s].value for s in stages) == pytest.approx(terms["T_r"].value)
    sensor_parts = ("T_frames[cam0]", "T_exposure[cam0]", "T_inference[cam0]", "T_transport[cam0]")
    assert sum(terms[s].value for s in sensor_parts) == pytest.approx(terms["T_sensor"].value)
    assert terms["T_cycle"].source == "controller.worst_step_ms, controller.wake_on_data"


def test_default_cell_budget() -> None:
    report = evaluate(load_config(DEFAULT_CELL))
    # 2 x 66.667 + 8 + 50 + 8 = 199.333 ms sensor, + 10 + 10 (wake on data: a step in progress, then the
    # step) + 0.32 (32 B at 1 Mbaud) + 10 (the robot takes it in) + 24 = 253.653 ms.
    assert report.reaction_time_ns == 2 * 66_666_667 + 66 * MS + 20 * MS + 320_000 + 34 * MS
    assert report.verdict == "safe"
    assert report.max_safe_robot_speed_mps == 0.25
    # T_r + T_s = 0.353653 s; S = 1.6 x 0.353653 + 0.85 + 0.1 + 0.05 = 1.566 m; zone 1.65 m away.
    assert report.zone_separation_m == pytest.approx(1.6 * 0.353653334 + 1.0)
    assert report.zones[0].margin_m == pytest.approx(1.65 - 1.6 * 0.353653334 - 1.0)


def test_sensor_stage_helpers_match_the_budget_terms() -> None:
    cfg = load_config(EXAMPLES / "two_camera_cell.toml")
    for name, sensor in cfg.sensors.items():
        # 30 Hz: 33_333_334 ns x (1 + 1 missed) + exposure 20 + inference 5 + transport 2 ms
        assert sensor_latency_ns(sensor) == 27 * MS
        assert sensor_max_age_ns(sensor) == 2 * 33_333_334 + 27 * MS
        assert sensor_max_age_ns(sensor) == sum(st.ns for st in sensor_stages(cfg)[name])
    terms = {t.symbol: t.value for t in evaluate(cfg).terms}
    assert terms["T_sensor"] * MS == pytest.approx(sensor_max_age_ns(cfg.sensors["west"]))


def test_stopping_curve_in_ns_is_the_payload_curve() -> None:
    robot = load_config(DEFAULT_CELL).robot  # 2.0 kg -> the 2.5 kg rows, ascending
    curve = stopping_curve_ns(robot)
    assert curve[0] == (0.10, 60 * MS, 0.005) and curve[-1] == (1.00, 300 * MS, 0.150)
    assert [row[0] for row in curve] == [0.10, 0.25, 0.50, 0.75, 1.00]
    assert all(stopping_at(robot, v) == (t, s) for v, t, s in curve)


def test_slowest_sensor_sets_the_sensor_stage() -> None:
    cfg = load_config(EXAMPLES / "two_camera_cell.toml")
    raw = cfg.model_dump()
    raw["sensors"]["east"]["transport_latency_ms"] += 7.0
    slower = schema_only(raw)
    assert reaction_time_ns(slower) == reaction_time_ns(cfg) + 7 * MS


@pytest.mark.requirement("SR-BUD-3")
def test_unsafe_example_says_why_and_how_fast_is_safe() -> None:
    report = evaluate(load_config(EXAMPLES / "unsafe_full_speed.toml"))
    assert report.verdict == "unsafe"
    assert any("zone protective" in r and "short by" in r for r in report.reasons)
    assert 0.0 < report.max_safe_robot_speed_mps < 1.0
    slowed = load_config(EXAMPLES / "unsafe_full_speed.toml").model_dump()
    slowed["robot"]["max_speed_mps"] = report.max_safe_robot_speed_mps
    assert evaluate(schema_only(slowed)).verdict == "safe"


def test_to_dict_has_the_documented_keys() -> None:
    out = evaluate(load_config(DEFAULT_CELL)).to_dict()
    for key in ("verdict", "reaction_time_s", "protective_separation_m", "max_safe_robot_speed_mps", "zones"):
        assert key in out
    assert {"name", "margin_m"} <= set(out["zones"][0])


# -- properties ----------------------------------------------------------------------------------------

TIME_TERMS: list[tuple[str, ...]] = [
    ("sensors", "cam0", "exposure_readout_ms"),
    ("sensors", "cam0", "inference_worst_ms"),
    ("sensors", "cam0", "transport_latency_ms"),
    ("controller", "cycle_period_ms"),
    ("controller", "worst_step_ms"),
    ("link", "receiver_cycle_ms"),
    ("robot", "stop_input_reaction_ms"),
]


def _set(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _get(raw: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = raw
    for part in path:
        node = node[part]
    return node


@given(
    term=st.sampled_from(TIME_TERMS),
    extra_ms=st.floats(0.0, 500.0),
    speed=st.floats(0.0, 0.25),
    wake_on_data=st.booleans(),
)
@pytest.mark.requirement("SR-BUD-6")
def test_separation_grows_with_every_time_term(
    term: tuple[str, ...], extra_ms: float, speed: float, wake_on_data: bool
) -> None:
    raw = default_raw()
    raw["controller"]["wake_on_data"] = wake_on_data
    base = schema_only(raw)
    _set(raw, term, _get(raw, term) + extra_ms)
    longer = schema_only(raw)
    assert reaction_time_ns(longer) >= reaction_time_ns(base)
    assert separation_required_m(longer, speed) >= separation_required_m(base, speed)
    assert zone_required_m(longer, speed) >= zone_required_m(base, speed)


@given(
    missed=st.integers(0, 15),
    slower_hz=st.floats(1.0, 15.0),
    slower_baud=st.integers(1200, 115200),
    more_bytes=st.integers(0, 200),
)
@pytest.mark.requirement("SR-BUD-6")
def test_separation_grows_with_frame_and_link_terms(
    missed: int, slower_hz: float, slower_baud: int, more_bytes: int
) -> None:
    raw = default_raw()
    base = schema_only(raw)
    cam = raw["sensors"]["cam0"]
    cam.update(tolerated_missed_frames=cam["tolerated_missed_frames"] + missed, frame_rate_hz=slower_hz)
    raw["link"].update(baud=slower_baud, command_frame_bytes=raw["link"]["command_frame_bytes"] + more_bytes)
    worse = schema_only(raw)
    assert reaction_time_ns(worse) >= reaction_time_ns(base)
    assert separation_required_m(worse, 0.25) >= separation_required_m(base, 0.25)


@pytest.mark.requirement("SR-BUD-6")
@given(low=st.floats(0.0, 1.0), high=st.floats(0.0, 1.0), t_r_ms=st.floats(0.0, 2000.0))
def test_separation_grows_with_robot_speed(low: float, high: float, t_r_ms: float) -> None:
    low, high = sorted((low, high))
    cfg = schema_only(default_raw())
    t_r = int(t_r_ms * MS)
    assert separation_required_m(cfg, low, reaction_ns=t_r) <= separation_required_m(
        cfg, high, reaction_ns=t_r
    )
    assert zone_required_m(cfg, low, reaction_ns=t_r) <= zone_required_m(cfg, high, reaction_ns=t_r)


@pytest.mark.requirement("SR-BUD-6")
@given(t1=st.integers(0, 3_000_000_000), t2=st.integers(0, 3_000_000_000), c=st.floats(0.0, 2.0))
def test_iso13855_distance_is_monotone_and_continuous_in_time(t1: int, t2: int, c: float) -> None:
    t1, t2 = sorted((t1, t2))
    assert iso13855_distance_m(t1, c)[1] <= iso13855_distance_m(t2, c)[1]
    # no jump at the 0.5 m switch: a nanosecond more never adds more than 2 m/s x 1 ns
    assert iso13855_distance_m(t1 + 1, c)[1] - iso13855_distance_m(t1, c)[1] <= 2.0e-9 + 1e-12


@pytest.mark.requirement("SR-BUD-2")
@given(margin=st.floats(-0.5, 0.5))
def test_verdict_flips_exactly_where_the_zone_margin_crosses_zero(margin: float) -> None:
    assume(abs(margin) > 1e-9)
    raw = round_number_raw()  # S = 1.80 m, hazard half-width 0.5 m
    raw["zones"]["protective"]["polygon_m"] = square(0.5 + 1.80 + margin)
    report = evaluate(schema_only(raw))
    assert report.zones[0].margin_m == pytest.approx(margin, abs=1e-9)
    assert report.verdict == ("safe" if margin >= 0 else "unsafe")
    assert (report.max_safe_robot_speed_mps == 0.5) == (margin >= 0)


@pytest.mark.requirement("SR-BUD-3")
@given(extra_c=st.floats(-0.3, 0.3))
def test_verdict_flips_where_the_separation_coverage_margin_crosses_zero(extra_c: float) -> None:
    raw = default_raw()
    del raw["zones"]["protective"]
    raw["separation"]["intrusion_distance_m"] += extra_c
    report = evaluate(schema_only(raw))
    assert report.coverage_margin_m is not None
    assume(abs(report.coverage_margin_m) > 1e-9)
    assert report.verdict == ("safe" if report.coverage_margin_m >= 0 else "unsafe")


@pytest.mark.requirement("SR-BUD-3")
@given(speed_limit=st.floats(0.0, 0.5))
def test_max_safe_speed_is_the_edge_of_safety(speed_limit: float) -> None:
    raw = round_number_raw()
    raw["robot"]["hazard_polygon_m"] = square(0.12)  # distance 1.78 m: safe up to 0.25 m/s rows only
    cfg = schema_only(raw)
    v_safe = evaluate(cfg).max_safe_robot_speed_mps
    assert v_safe == 0.25  # the edge is the 0.25 m/s row: above it the 0.5 m/s row's stopping applies
    raw["robot"]["max_speed_mps"] = max(speed_limit, 1e-6)
    verdict = evaluate(schema_only(raw)).verdict
    if raw["robot"]["max_speed_mps"] <= v_safe:
        assert verdict == "safe"
    elif raw["robot"]["max_speed_mps"] > v_safe + 1e-4:
        assert verdict == "unsafe"


def test_person_hold_terms_and_nothing_else_changes() -> None:
    raw = default_raw()
    raw["controller"]["person_hold_ms"] = 0.0
    off = evaluate(config_from_dict(raw))
    assert not {"T_hold", "Z_hold"} & {t.symbol for t in off.terms}
    raw["controller"]["person_hold_ms"] = 150.0
    held = evaluate(config_from_dict(raw))
    terms = {t.symbol: t for t in held.terms}
    assert terms["T_hold"].value == pytest.approx(150.0)
    assert terms["T_hold"].source == "controller.person_hold_ms"
    assert terms["Z_hold"].value == pytest.approx(1.6 * 0.150)  # ISO 13855 walking speed x the hold
    assert terms["Z_hold"].unit == "m"
    # a held person only adds findings: T_r, S_p, S and the verdict are those of the cell without it
    assert held.reaction_time_ns == off.reaction_time_ns
    assert held.protective_separation_m == off.protective_separation_m
    assert held.zone_separation_m == off.zone_separation_m
    assert (held.verdict, held.max_safe_robot_speed_mps) == (off.verdict, off.max_safe_robot_speed_mps)
    assert [t for t in held.terms if t.symbol not in ("T_hold", "Z_hold")] == list(off.terms)
