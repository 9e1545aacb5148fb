"""Behaviour of the compiled safety step, one rule at a time, on the example cell and a simulated clock."""

import math

import numpy as np
import pytest

from cobotguard.hil.sim import Harness, example_config
from cobotguard.safety import stopping
from cobotguard.safety.config import CellConfig
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import CommandKind, HealthFlag, Reason
from cobotguard.safety.records import COMMAND_DTYPE, MAX_SENSORS, ROBOT_STATE_DTYPE, empty_detections
from cobotguard.safety.reference import separation_m
from cobotguard.safety.states import ControllerState
from cobotguard.safety.step import new_state, step_py, warm_up
from cobotguard.safety.warmup import write_robot

K, R = CommandKind, Reason
WARNING_ZONE, PROTECTIVE_ZONE = 0, 1  # zone indices in example_config
HAZARD_EDGE_X = 0.9  # the example hazard region is the square |x|, |y| <= 0.9


def zones_only(**kw):
    return Harness(example_config(separation=False, **kw))


def assert_command(c, kind, reason, *, sensor=-1, person=-1, zone=-1):
    got = (
        K(c["kind"]),
        R(c["reason"]),
        int(c["reason_sensor"]),
        int(c["reason_person"]),
        int(c["reason_zone"]),
    )
    assert got == (kind, reason, sensor, person, zone)


@pytest.mark.requirement("SR-RST-1")
def test_not_armed_until_a_reset_edge():
    cell = zones_only()
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_NO_DATA, sensor=0)  # robot reports, sensor never did
    cell.frame()
    assert_command(cell.tick(), K.FAULT_STOP, R.NOT_ARMED)
    cell.frame()
    assert K(cell.tick(reset=1)["kind"]) == K.RUN
    assert cell.controller_state == ControllerState.RUNNING


@pytest.mark.requirement("SR-RST-1")
def test_a_reset_held_high_from_start_up_does_not_arm():
    cell = zones_only()
    for _ in range(5):
        cell.frame()
        assert_command(cell.tick(reset=1), K.FAULT_STOP, R.NOT_ARMED)
    cell.frame()
    cell.tick(reset=0)
    cell.frame()
    assert K(cell.tick(reset=1)["kind"]) == K.RUN


@pytest.mark.requirement("SR-ZONE-6")
def test_run_carries_the_robot_maximum_speed():
    cell = zones_only()
    cell.arm()
    cell.frame([(10.0, 0.0)])
    c = cell.tick()
    assert_command(c, K.RUN, R.NONE)
    assert c["speed_limit_mps"] == 1.0


@pytest.mark.requirement("SR-ZONE-2")
def test_warning_zone_slows_to_its_limit_and_names_sensor_person_zone():
    cell = zones_only()
    cell.arm()
    cell.frame([(10.0, 0.0), (2.5, 0.0)])
    c = cell.tick()
    assert_command(c, K.SLOW, R.PERSON_IN_WARNING_ZONE, sensor=0, person=1, zone=WARNING_ZONE)
    assert c["speed_limit_mps"] == 0.25


@pytest.mark.requirement("SR-ZONE-1", "SR-RST-2")
def test_protective_zone_stops_with_its_category_then_needs_clear_zones_and_a_reset_edge():
    cell = zones_only()
    cell.arm()
    cell.frame([(1.4, 0.0)])
    c = cell.tick()
    assert_command(
        c, K.PROTECTIVE_STOP, R.PERSON_IN_PROTECTIVE_ZONE, sensor=0, person=0, zone=PROTECTIVE_ZONE
    )
    assert c["stop_category"] == 1
    cell.frame([(1.4, 0.0)])
    assert K(cell.tick(reset=1)["kind"]) == K.PROTECTIVE_STOP  # reset while the zone is occupied: ignored
    cell.frame([])
    assert_command(cell.tick(reset=1), K.PROTECTIVE_STOP, R.RESTART_INTERLOCK)  # clear, reset still held
    for _ in range(20):
        cell.frame([])
        assert_command(cell.tick(reset=1), K.PROTECTIVE_STOP, R.RESTART_INTERLOCK)  # held high: no restart
    cell.frame([])
    cell.tick(reset=0)
    cell.frame([])
    assert_command(cell.tick(reset=1), K.RUN, R.NONE)


@pytest.mark.requirement("SR-RST-4")
def test_restart_into_a_warning_zone_is_slowed_not_run():
    cell = zones_only()
    cell.arm()
    cell.frame([(1.4, 0.0)])
    cell.tick()
    cell.frame([(2.5, 0.0)])
    cell.tick()
    cell.frame([(2.5, 0.0)])
    assert K(cell.tick(reset=1)["kind"]) == K.SLOW


@pytest.mark.requirement("SR-ZONE-3")
def test_hysteresis_only_delays_release():
    cell = zones_only()  # release hysteresis 0.1 m, Z_d 0.1 m, warning zone edge at x = 3.0
    cell.arm([(5.0, 0.0)])
    cell.frame([(3.15, 0.0)])
    assert K(cell.tick()["kind"]) == K.RUN  # within the hysteresis band only: nothing starts
    cell.frame([(3.05, 0.0)])
    assert K(cell.tick()["kind"]) == K.SLOW  # strictly inside (with Z_d): slows at once
    cell.frame([(3.15, 0.0)])
    c = cell.tick()
    assert K(c["kind"]) == K.SLOW and c["reason_zone"] == WARNING_ZONE  # held until beyond the band
    cell.frame([(3.25, 0.0)])
    assert K(cell.tick()["kind"]) == K.RUN


@pytest.mark.requirement("SR-ZONE-3")
def test_a_protective_stop_is_held_within_the_hysteresis_band():
    cell = zones_only()  # protective zone edge 1.5: strict within 1.6, held within 1.7
    cell.arm([(5.0, 0.0)])
    cell.frame([(1.55, 0.0)])
    assert K(cell.tick()["kind"]) == K.PROTECTIVE_STOP
    cell.frame([(1.65, 0.0)])
    assert_command(
        cell.tick(), K.PROTECTIVE_STOP, R.PERSON_IN_PROTECTIVE_ZONE, sensor=0, person=0, zone=PROTECTIVE_ZONE
    )
    cell.frame([(1.75, 0.0)])
    assert_command(cell.tick(), K.PROTECTIVE_STOP, R.RESTART_INTERLOCK)


@pytest.mark.requirement("SR-RST-2")
def test_automatic_restart_after_the_configured_clear_time():
    cell = Harness(example_config(separation=False, restart="automatic", auto_restart_clear_ms=50.0))
    cell.arm()
    cell.frame([(1.4, 0.0)])
    cell.tick()
    cell.frame([])
    cell.tick()
    waited = 0
    while K(cell.command[0]["kind"]) != K.RUN:
        assert R(cell.command[0]["reason"]) == R.RESTART_INTERLOCK
        cell.frame([])
        cell.tick()
        waited += cell.cycle_ns
        assert waited <= 60_000_000
    assert waited == 50_000_000


@pytest.mark.requirement("SR-RST-3")
def test_automatic_restart_never_follows_a_fault():
    cell = Harness(example_config(separation=False, restart="automatic", auto_restart_clear_ms=10.0))
    cell.arm()
    cell.frame([], health=int(HealthFlag.LENS_COVERED))
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_HEALTH, sensor=0)
    for _ in range(100):
        cell.frame([])
        assert_command(cell.tick(), K.FAULT_STOP, R.RESTART_INTERLOCK)
    cell.frame([])
    assert K(cell.tick(reset=1)["kind"]) == K.RUN


def ssm_cell(speed=0.5):
    return Harness(example_config(zones=False), robot_speed_mps=speed)


@pytest.mark.requirement("SR-SSM-1")
def test_separation_stops_inside_sp_at_the_current_speed_and_not_outside():
    cell = ssm_cell(0.5)
    sp = separation_m(cell.params[0], 0.5, 0.1)
    cell.arm()
    cell.frame([(HAZARD_EDGE_X + sp + 0.1 + 1e-3, 0.0)])  # beyond S_p + hysteresis
    assert K(cell.tick()["kind"]) == K.RUN
    cell.frame([(HAZARD_EDGE_X + sp - 1e-6, 0.0)])
    c = cell.tick()
    assert_command(c, K.PROTECTIVE_STOP, R.SEPARATION_BELOW_SP, sensor=0, person=0)
    assert c["stop_category"] == 1


@pytest.mark.requirement("SR-SSM-1")
def test_separation_depends_on_the_robots_current_speed():
    slow_sp = separation_m(build_params(example_config())[0], 0.1, 0.1)
    fast_sp = separation_m(build_params(example_config())[0], 1.0, 0.1)
    assert fast_sp > slow_sp + 0.3
    x = HAZARD_EDGE_X + (slow_sp + fast_sp) / 2
    slow, fast = ssm_cell(0.1), ssm_cell(1.0)
    for cell, expected in ((slow, K.RUN), (fast, K.PROTECTIVE_STOP)):
        cell.arm()
        cell.frame([(x, 0.0)])
        assert K(cell.tick()["kind"]) == expected


def with_a_far_category_0_zone(*, separation=True, speed=0.5):
    """The example cell plus a category-0 protective zone far from everyone: a category-1 stop then does
    not settle the cycle (a stop of category 0 remains possible), so every person is weighed."""
    raw = example_config(separation=separation).model_dump()
    far = [(5.0, 5.0), (6.0, 5.0), (6.0, 6.0), (5.0, 6.0)]
    raw["zones"]["far"] = {"type": "protective", "polygon_m": far, "stop_category": 0}
    return Harness(CellConfig.model_validate(raw), robot_speed_mps=speed)


@pytest.mark.requirement("SR-ZONE-4")
def test_two_persons_inside_sp_name_the_first_when_a_lower_category_is_possible():
    cell = with_a_far_category_0_zone()
    sp = separation_m(cell.params[0], 0.5, 0.1)
    d = 1.75 - HAZARD_EDGE_X  # clear of the protective zone (1.5) by more than Z_d + hysteresis
    assert sp > d + 0.05
    cell.arm([(10.0, 0.0)])
    cell.frame([(HAZARD_EDGE_X + d, 0.0), (0.0, HAZARD_EDGE_X + d)])
    c = cell.tick()
    assert_command(c, K.PROTECTIVE_STOP, R.SEPARATION_BELOW_SP, sensor=0, person=0)
    assert c["stop_category"] == 1


@pytest.mark.requirement("SR-ZONE-4")
def test_a_separation_stop_held_by_two_persons_in_the_hysteresis_band_names_the_first():
    cell = ssm_cell(0.5)
    sp = separation_m(cell.params[0], 0.5, 0.1)
    cell.arm()
    cell.frame([(HAZARD_EDGE_X + sp - 0.01, 0.0)])
    assert K(cell.tick()["kind"]) == K.PROTECTIVE_STOP
    band = HAZARD_EDGE_X + sp + 0.05  # beyond S_p, within S_p + hysteresis (0.1)
    cell.frame([(band, 0.0), (0.0, band)])
    assert_command(cell.tick(), K.PROTECTIVE_STOP, R.SEPARATION_BELOW_SP, sensor=0, person=0)


@pytest.mark.requirement("SR-SSM-2")
def test_separation_uses_the_larger_of_reported_and_declared_z_d():
    cell = ssm_cell(0.5)
    sp_declared = separation_m(cell.params[0], 0.5, 0.1)
    cell.arm()
    x = HAZARD_EDGE_X + sp_declared + 0.3  # clear with the sensor's declared Z_d = 0.1 ...
    cell.frame([(x, 0.0)], z_d_m=0.05)
    assert K(cell.tick()["kind"]) == K.RUN
    cell.frame([(x, 0.0)], z_d_m=0.5)  # ... but not with this frame's larger uncertainty
    assert K(cell.tick()["kind"]) == K.PROTECTIVE_STOP


@pytest.mark.requirement("SR-SSM-3")
def test_separation_and_stopping_match_the_budget_module():
    budget = pytest.importorskip("cobotguard.safety.budget")
    from cobotguard.safety.step import protective_separation_m, stopping_at

    for cfg in (example_config(), example_config(n_sensors=3, tolerated_missed_frames=0)):
        p = build_params(cfg)[0]
        assert p["reaction_time_ns"] == budget.reaction_time_ns(cfg)
        for speed in (0.0, 0.1, 0.25, 0.26, 0.4, 0.5, 0.9, 1.0):
            assert tuple(stopping_at(p, speed)) == stopping.stopping_at(cfg.robot, speed), speed
            for z_d in (0.0, 0.1, 0.35):
                expected = budget.separation_required_m(cfg, speed, z_d_m=z_d)
                assert protective_separation_m(p, speed, z_d) == expected, (speed, z_d)
                assert separation_m(p, speed, z_d) == expected, (speed, z_d)


@pytest.mark.requirement("SR-SSM-3")
def test_a_speed_beyond_the_stopping_table_takes_its_fastest_row():
    from cobotguard.safety.step import stopping_at

    cfg = example_config()
    p = build_params(cfg)[0]
    n = int(p["n_stop_points"])
    fastest = (int(p["stop_time_ns"][n - 1]), float(p["stop_distance_m"][n - 1]))
    assert fastest[0] > 0 and fastest[1] > 0.0
    top = float(p["stop_speed_mps"][n - 1])
    for speed in (top, top + 0.01, 2 * top, 100.0):
        assert tuple(stopping_at(p, speed)) == fastest, speed


@pytest.mark.requirement("SR-SENS-3")
def test_a_counter_wrapped_to_zero_is_supervised_like_any_other():
    cell = zones_only()
    cell.arm()
    while cell.counters[0] != 255:
        cell.frame([(10.0, 0.0)])
        assert K(cell.tick()["kind"]) == K.RUN
    cell.frame([(10.0, 0.0)])  # 255 -> 0: the 8-bit wrap, not a fault
    assert_command(cell.tick(), K.RUN, R.NONE)
    cell.frame([(10.0, 0.0)], counter_step=0)  # 0 again: repeated
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_COUNTER_REPEATED, sensor=0)


@pytest.mark.requirement("SR-SENS-6")
@pytest.mark.parametrize("score", [1.0 + 1e-6, 1.5, -1e-6, math.nan])
def test_a_score_outside_0_to_1_is_a_bad_value(score):
    cell = zones_only()
    cell.arm()
    cell.frame([(10.0, 0.0)])
    cell.detections[0]["persons"][0]["score"] = score
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_BAD_VALUE, sensor=0)


@pytest.mark.requirement("SR-HOLD-1")
def test_a_missed_person_exactly_at_the_hold_reach_of_the_hazard_is_still_held():
    from cobotguard.safety.geometry import region_distance_squared_within
    from cobotguard.safety.step import may_matter

    p = build_params(example_config(zones=False, person_hold_ms=100.0))[0]
    z_d = 0.1
    reach = p["hold_hazard_reach_m"] + z_d + p["release_hysteresis_m"]
    x = HAZARD_EDGE_X + reach
    d2 = region_distance_squared_within(p["hazard_edges"], p["hazard_n"], p["hazard_bounds"], x, 0.0, reach)
    assert d2 == reach * reach  # exactly on the bound, which is inclusive
    assert may_matter(p, x, 0.0, z_d)
    assert not may_matter(p, math.nextafter(x, math.inf), 0.0, z_d)


SENSOR_FAULTS = {
    "stale": (lambda c: c.tick(advance_ns=200_000_000), R.SENSOR_STALE),
    "late frame": (lambda c: (c.frame(latency_ns=40_000_000), c.tick()), R.SENSOR_STALE),
    "repeated counter": (lambda c: (c.frame(counter_step=0), c.tick()), R.SENSOR_COUNTER_REPEATED),
    "counter backwards": (lambda c: (c.frame(counter_step=-3), c.tick()), R.SENSOR_COUNTER_OUT_OF_ORDER),
    "too many missed": (lambda c: (c.frame(counter_step=4), c.tick()), R.SENSOR_FRAMES_MISSED),
    "health flag": (lambda c: (c.frame(health=int(HealthFlag.FROZEN)), c.tick()), R.SENSOR_HEALTH),
    "too many persons": (lambda c: (c.frame(person_count=9), c.tick()), R.SENSOR_TOO_MANY_PERSONS),
    "nan position": (lambda c: (c.frame([(math.nan, 1.0)]), c.tick()), R.SENSOR_BAD_VALUE),
    "far away position": (lambda c: (c.frame([(1e6, 1.0)]), c.tick()), R.SENSOR_BAD_VALUE),
    "negative count": (lambda c: (c.frame(person_count=-1), c.tick()), R.SENSOR_BAD_VALUE),
}


@pytest.mark.requirement("SR-SENS-1", "SR-SENS-2", "SR-SENS-3", "SR-SENS-4", "SR-SENS-5", "SR-SENS-6")
@pytest.mark.parametrize("name", sorted(SENSOR_FAULTS))
def test_sensor_faults_fault_stop_naming_the_sensor(name):
    act, reason = SENSOR_FAULTS[name]
    cell = zones_only()
    cell.arm()
    act(cell)
    assert_command(cell.command[0], K.FAULT_STOP, reason, sensor=0)
    assert cell.command[0]["stop_category"] == 1  # the category the stopping data was measured for


@pytest.mark.requirement("SR-SENS-3")
def test_tolerated_missed_frames_and_counter_wrap_are_fine():
    cell = zones_only()  # tolerates 2 missed frames
    cell.arm()
    cell.frame(counter_step=3)
    assert K(cell.tick()["kind"]) == K.RUN
    cell.counters[0] = 254
    cell.detections[0]["frame_counter"] = 254
    cell.state[0]["last_counter"][0] = 254
    for _ in range(4):  # 255, 0, 1, 2
        cell.frame()
        assert K(cell.tick()["kind"]) == K.RUN


@pytest.mark.requirement("SR-SENS-6")
def test_frame_from_the_wrong_sensor_slot_is_a_fault():
    cell = zones_only()
    cell.arm()
    cell.frame()
    cell.detections[0]["sensor_index"] = 2
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_BAD_VALUE, sensor=0)


@pytest.mark.requirement("SR-SENS-7")
def test_timestamps_out_of_order_are_a_fault():
    cell = zones_only()
    cell.arm()
    cell.frame()
    cell.detections[0]["t_sent_ns"] = cell.detections[0]["t_received_ns"] + 1
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_TIME_INCONSISTENT, sensor=0)


@pytest.mark.requirement("SR-ROB-1")
def test_a_robot_that_never_reported_is_no_data_and_never_arms():
    cell = zones_only()
    cell.robot_silent = True
    for reset in (0, 1, 0, 1):
        cell.frame()
        assert_command(cell.tick(reset=reset), K.FAULT_STOP, R.ROBOT_NO_DATA)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: setattr(c, "robot_silent", True) or c.tick(advance_ns=25_000_000), R.ROBOT_STALE),
        (lambda c: setattr(c, "robot_speed_mps", math.nan) or c.tick(), R.ROBOT_BAD_VALUE),
        (lambda c: setattr(c, "robot_speed_mps", -0.1) or c.tick(), R.ROBOT_BAD_VALUE),
        (lambda c: setattr(c, "robot_speed_mps", 1.2) or c.tick(), R.ROBOT_OVERSPEED),
    ],
)
@pytest.mark.requirement("SR-ROB-1", "SR-ROB-2")
def test_robot_state_faults(change, reason):
    cell = zones_only()
    cell.arm()
    cell.frame()
    change(cell)
    assert_command(cell.command[0], K.FAULT_STOP, reason)


def _robot_report(cell, *, at_rest=0, mode=0, speed_mps=0.0, received_after_ns=0):
    """Run one cycle whose robot report is written by hand: received `received_after_ns` after the tick."""
    cell.robot_silent = True
    t_received = cell.now + cell.cycle_ns + received_after_ns
    write_robot(cell.robot, speed_mps, t_received, mode=mode, at_rest=at_rest)
    cell.frame([(10.0, 0.0)])
    return cell.tick()


@pytest.mark.requirement("SR-ROB-1")
@pytest.mark.parametrize(("at_rest", "kind"), [(0, K.RUN), (1, K.RUN), (2, K.FAULT_STOP), (-1, K.FAULT_STOP)])
def test_at_rest_is_valid_as_0_or_1_only(at_rest, kind):
    cell = zones_only()
    cell.arm()
    c = _robot_report(cell, at_rest=at_rest, received_after_ns=-1)
    assert_command(c, kind, R.NONE if kind == K.RUN else R.ROBOT_BAD_VALUE)


@pytest.mark.requirement("SR-ROB-1")
@pytest.mark.parametrize(
    ("mode", "kind"), [(0, K.RUN), (len(K) - 1, K.RUN), (len(K), K.FAULT_STOP), (-1, K.FAULT_STOP)]
)
def test_the_robot_mode_is_valid_as_a_command_kind_only(mode, kind):
    cell = zones_only()
    cell.arm()
    c = _robot_report(cell, mode=mode, received_after_ns=-1)
    assert_command(c, kind, R.NONE if kind == K.RUN else R.ROBOT_BAD_VALUE)


@pytest.mark.requirement("SR-ROB-1")
def test_a_robot_report_received_exactly_now_is_valid_one_ns_later_is_in_the_future():
    cell = zones_only()
    cell.arm()
    assert_command(_robot_report(cell, received_after_ns=0), K.RUN, R.NONE)
    assert_command(_robot_report(cell, received_after_ns=1), K.FAULT_STOP, R.ROBOT_BAD_VALUE)


@pytest.mark.requirement("SR-SENS-7")
def test_stage_times_may_be_equal():
    cell = zones_only()
    cell.arm()
    cell.frame([(10.0, 0.0)], latency_ns=0)  # exposed, inferred, sent and received at one instant ...
    d = cell.detections[0]
    assert d["t_exposure_ns"] == d["t_inference_done_ns"] == d["t_sent_ns"] == d["t_received_ns"]
    assert_command(cell.tick(advance_ns=0), K.RUN, R.NONE)  # ... and stepped at that instant too


@pytest.mark.requirement("SR-SENS-6")
def test_an_inference_time_of_zero_is_valid_a_negative_one_is_not():
    cell = zones_only()
    cell.arm()
    cell.frame([(10.0, 0.0)])
    cell.detections[0]["inference_us"] = 0
    assert_command(cell.tick(), K.RUN, R.NONE)
    cell.frame([(10.0, 0.0)])
    cell.detections[0]["inference_us"] = -1
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_BAD_VALUE, sensor=0)


@pytest.mark.requirement("SR-ZONE-4")
def test_of_two_warning_zones_the_lower_limit_wins_wherever_it_comes_in_the_table():
    raw = example_config(separation=False).model_dump()
    near = [(-2.0, -2.0), (2.0, -2.0), (2.0, 2.0), (-2.0, 2.0)]
    raw["zones"]["near"] = {"type": "warning", "polygon_m": near, "speed_limit_mps": 0.1}  # zone index 2
    cell = Harness(CellConfig.model_validate(raw))
    cell.arm([(10.0, 0.0)])
    cell.frame([(2.5, 0.0)])  # the outer zone only
    c = cell.tick()
    assert_command(c, K.SLOW, R.PERSON_IN_WARNING_ZONE, sensor=0, person=0, zone=WARNING_ZONE)
    assert c["speed_limit_mps"] == 0.25
    cell.frame([(1.8, 0.0)])  # both: the second zone of the table is the stricter one
    c = cell.tick()
    assert_command(c, K.SLOW, R.PERSON_IN_WARNING_ZONE, sensor=0, person=0, zone=2)
    assert c["speed_limit_mps"] == 0.1


@pytest.mark.requirement("SR-ZONE-3", "SR-ZONE-4")
def test_a_slow_down_held_by_a_stops_hysteresis_band_keeps_its_limit_and_names_that_person_and_zone():
    cell = with_a_far_category_0_zone(separation=False)  # the far zone (index 2) is outside the warning one
    cell.arm([(10.0, 0.0)])
    cell.frame([(2.5, 0.0)])
    assert K(cell.tick()["kind"]) == K.SLOW
    cell.frame([(4.85, 5.5)])  # 0.15 m from the far zone: beyond Z_d (0.1), within Z_d + hysteresis (0.2)
    c = cell.tick()
    assert_command(c, K.SLOW, R.PERSON_IN_PROTECTIVE_ZONE, sensor=0, person=0, zone=2)
    assert c["speed_limit_mps"] == 0.25


@pytest.mark.requirement("SR-ZONE-4")
def test_two_persons_in_one_warning_zone_name_the_first():
    cell = zones_only()
    cell.arm()
    cell.frame([(2.5, 0.0), (0.0, 2.5)])
    assert_command(cell.tick(), K.SLOW, R.PERSON_IN_WARNING_ZONE, sensor=0, person=0, zone=WARNING_ZONE)
    cell.frame([(3.15, 0.0), (0.0, 3.15)])  # both in the hysteresis band only: the slow-down holds
    assert_command(cell.tick(), K.SLOW, R.PERSON_IN_WARNING_ZONE, sensor=0, person=0, zone=WARNING_ZONE)


@pytest.mark.requirement("SR-ZONE-4")
def test_two_persons_in_one_protective_zone_name_the_first_when_a_lower_category_is_possible():
    cell = with_a_far_category_0_zone(separation=False)
    cell.arm([(10.0, 0.0)])
    cell.frame([(1.2, 0.0), (0.0, 1.2)])
    c = cell.tick()
    assert_command(
        c, K.PROTECTIVE_STOP, R.PERSON_IN_PROTECTIVE_ZONE, sensor=0, person=0, zone=PROTECTIVE_ZONE
    )
    assert c["stop_category"] == 1


@pytest.mark.requirement("SR-ZONE-4")
def test_a_stop_held_by_two_persons_in_the_hysteresis_band_names_the_first():
    cell = zones_only()  # protective zone edge 1.5: strict within 1.6, held within 1.7
    cell.arm([(5.0, 0.0)])
    cell.frame([(1.55, 0.0)])
    assert K(cell.tick()["kind"]) == K.PROTECTIVE_STOP
    cell.frame([(1.65, 0.0), (0.0, 1.65)])
    c = cell.tick()
    assert_command(
        c, K.PROTECTIVE_STOP, R.PERSON_IN_PROTECTIVE_ZONE, sensor=0, person=0, zone=PROTECTIVE_ZONE
    )


@pytest.mark.requirement("SR-LINK-10")
@pytest.mark.parametrize(
    ("kind", "category", "expected_category"),
    [
        (K.RUN, 0, 1),
        (K.SLOW, 0, 1),
        (K.PROTECTIVE_STOP, 0, 0),
        (K.PROTECTIVE_STOP, 1, 1),
        (K.FAULT_STOP, 0, 0),
    ],
)
def test_a_link_error_fault_stops_naming_it_and_never_weakens_a_stop(kind, category, expected_category):
    from cobotguard.safety.step import apply_link_fault

    params = build_params(example_config())  # the stopping data's category: 1
    command = np.zeros(1, dtype=COMMAND_DTYPE)
    command[0]["kind"], command[0]["stop_category"], command[0]["reason_person"] = kind, category, 3
    apply_link_fault(params, command, int(R.LINK_CORRUPTION))
    assert_command(command[0], K.FAULT_STOP, R.LINK_CORRUPTION)
    assert (command[0]["stop_category"], command[0]["speed_limit_mps"]) == (expected_category, 0.0)


@pytest.mark.requirement("SR-EXE-1")
def test_overrun_flag_fault_stops():
    cell = zones_only()
    cell.arm()
    cell.frame()
    assert_command(cell.tick(overrun=1), K.FAULT_STOP, R.LOOP_OVERRUN)


@pytest.mark.requirement("SR-EXE-2")
def test_invalid_state_value_and_time_going_backwards_fail_closed():
    cell = zones_only()
    cell.arm()
    cell.state[0]["state"] = 99
    cell.frame()
    assert_command(cell.tick(), K.FAULT_STOP, R.STATE_INVALID)
    assert cell.controller_state == ControllerState.FAULT_STOPPED
    cell = zones_only()
    cell.arm()
    cell.frame()
    assert_command(cell.tick(advance_ns=-5), K.FAULT_STOP, R.STATE_INVALID)


@pytest.mark.requirement("SR-ZONE-4", "SR-SENS-8")
def test_several_sensors_most_restrictive_wins_and_a_faulty_one_stops_the_cell():
    cell = Harness(example_config(n_sensors=3, separation=False))
    cell.arm()
    cell.frame([(2.5, 0.0)], sensor=0)
    cell.frame([(10.0, 0.0), (1.4, 0.0)], sensor=1)
    cell.frame([], sensor=2)
    assert_command(
        cell.tick(), K.PROTECTIVE_STOP, R.PERSON_IN_PROTECTIVE_ZONE, sensor=1, person=1, zone=PROTECTIVE_ZONE
    )
    cell = Harness(example_config(n_sensors=3, separation=False))
    cell.arm()
    cell.frame([], sensor=0)
    cell.frame([], sensor=1)
    cell.frame([], sensor=2, health=int(HealthFlag.INVALID))
    assert_command(cell.tick(), K.FAULT_STOP, R.SENSOR_HEALTH, sensor=2)


@pytest.mark.requirement("SR-SENS-1")
def test_no_data_never_means_no_person():
    cell = Harness(example_config(n_sensors=2, separation=False))
    cell.arm()
    cell.frame([], sensor=0)  # sensor 1 delivered once during arming, then nothing
    c = cell.tick(advance_ns=150_000_000)
    assert K(c["kind"]) == K.FAULT_STOP and c["reason"] == R.SENSOR_STALE


@pytest.mark.requirement("SR-ZONE-5")
def test_a_stop_category_never_relaxes_during_a_stop():
    cfg = example_config(separation=False)
    zones = dict(cfg.zones)
    zones["inner"] = zones["protective"].model_copy(
        update={"polygon_m": [(-1.2, -1.2), (1.2, -1.2), (1.2, 1.2), (-1.2, 1.2)], "stop_category": 0}
    )
    cell = Harness(cfg.model_copy(update={"zones": zones}))
    cell.arm()
    cell.frame([(1.1, 0.0)])
    assert cell.tick()["stop_category"] == 0
    cell.frame([(1.45, 0.0)])  # only the category-1 zone now, but the stop stays category 0
    assert cell.tick()["stop_category"] == 0


def test_step_py_checks_buffers_and_returns_a_command():
    params = build_params(example_config())
    state = new_state(params)
    detections = empty_detections(MAX_SENSORS)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    command = step_py(params, state, detections, robot, 0, 0, 1_000)
    assert command.dtype == COMMAND_DTYPE and K(command[0]["kind"]) == K.FAULT_STOP
    with pytest.raises(ValueError, match="detections"):
        step_py(params, state, detections[:2], robot, 0, 0, 2_000)


def test_warm_up_leaves_no_trace_in_a_fresh_state():
    params = build_params(example_config(n_sensors=2))
    warm_up(params)
    assert new_state(params)[0]["cycles"] == 0


# --- speed supervision: the robot must keep what it was commanded ------------------------------------

HALF_CYCLE = 500_000  # the harness's robot reports are received half a cycle before the step


def slowed_cell(speed=0.5):
    """Zones only, armed, robot at `speed`; a person in the warning zone: SLOW to 0.25 at the last tick."""
    cell = Harness(example_config(separation=False), robot_speed_mps=speed)
    cell.arm()
    cell.frame([(2.5, 0.0)])
    c = cell.tick()
    assert K(c["kind"]) == K.SLOW and c["speed_limit_mps"] == 0.25
    return cell


def grace_deadline(cell, commanded_ns, speed):
    """When a report must show the lower limit kept: step + link + reaction + report, + T_s(speed)."""
    from cobotguard.safety.step import stopping_at

    return commanded_ns + int(cell.params[0]["robot_obey_ns"]) + int(stopping_at(cell.params[0], speed)[0])


def run_until_report_at(cell, persons, report_ns):
    """Tick with fresh frames until the robot report received at report_ns has been stepped; the commands."""
    commands = []
    while cell.now + cell.cycle_ns - HALF_CYCLE < report_ns:
        cell.frame(persons)
        commands.append(cell.tick())
    cell.frame(persons)
    commands.append(cell.tick(advance_ns=report_ns + HALF_CYCLE - cell.now))
    assert cell.robot[0]["t_received_ns"] == report_ns
    return commands


@pytest.mark.requirement("SR-ROB-3")
def test_the_grace_covers_step_link_both_ways_and_stop_input_reaction():
    p = build_params(example_config())[0]
    # 0.2 ms step + 10 ms command accepted up to max_delay + 24 ms reaction + 10 ms report up to max_delay
    assert p["robot_obey_ns"] == 44_200_000
    assert p["robot_speed_tolerance_mps"] == 0.02


@pytest.mark.requirement("SR-ROB-2")
def test_a_robot_that_keeps_a_slow_limit_in_time_is_not_faulted():
    cell = slowed_cell(0.5)
    deadline = grace_deadline(cell, cell.now, 0.5)
    commands = run_until_report_at(cell, [(2.5, 0.0)], deadline - 100_000_000)
    cell.robot_speed_mps = 0.25  # slowed down well inside its stopping time
    commands += run_until_report_at(cell, [(2.5, 0.0)], deadline + 500_000_000)
    assert {(K(c["kind"]), R(c["reason"])) for c in commands} == {(K.SLOW, R.PERSON_IN_WARNING_ZONE)}


@pytest.mark.requirement("SR-ROB-2")
def test_a_robot_that_ignores_slow_is_fault_stopped_at_the_grace_deadline_not_before():
    cell = slowed_cell(0.5)
    deadline = grace_deadline(cell, cell.now, 0.5)
    commands = run_until_report_at(cell, [(2.5, 0.0)], deadline - 1)
    assert all(K(c["kind"]) == K.SLOW for c in commands)  # the whole grace, up to the last nanosecond
    cell.frame([(2.5, 0.0)])
    c = cell.tick(advance_ns=1)  # the report received at the deadline still says 0.5 m/s
    assert_command(c, K.FAULT_STOP, R.ROBOT_OVERSPEED, sensor=-1)
    assert c["stop_category"] == 1
    cell.robot_speed_mps = 0.0
    cell.frame([])
    assert_command(cell.tick(), K.FAULT_STOP, R.RESTART_INTERLOCK)  # latched until a reset edge


@pytest.mark.requirement("SR-ROB-2")
def test_a_robot_that_keeps_moving_after_a_protective_stop_is_fault_stopped():
    cell = zones_only()  # robot at 0.5 m/s
    cell.arm()
    cell.frame([(1.4, 0.0)])
    assert K(cell.tick()["kind"]) == K.PROTECTIVE_STOP
    deadline = grace_deadline(cell, cell.now, 0.5)
    commands = run_until_report_at(cell, [(1.4, 0.0)], deadline - 1)
    assert all(K(c["kind"]) == K.PROTECTIVE_STOP for c in commands)
    cell.frame([(1.4, 0.0)])
    assert_command(cell.tick(advance_ns=1), K.FAULT_STOP, R.ROBOT_OVERSPEED)


def test_a_robot_at_rest_in_time_after_a_stop_is_not_faulted_and_restarts():
    cell = zones_only()
    cell.arm()
    cell.frame([(1.4, 0.0)])
    cell.tick()
    deadline = grace_deadline(cell, cell.now, 0.5)
    run_until_report_at(cell, [(1.4, 0.0)], deadline - 50_000_000)
    cell.robot_speed_mps = 0.0
    commands = run_until_report_at(cell, [], deadline + 100_000_000)
    assert all(K(c["kind"]) == K.PROTECTIVE_STOP for c in commands)
    cell.frame([])
    cell.tick(reset=1)
    cell.robot_speed_mps = 1.0  # a raised limit holds at once
    cell.frame([])
    assert_command(cell.tick(reset=0), K.RUN, R.NONE)


@pytest.mark.requirement("SR-ROB-2")
@pytest.mark.parametrize(("jitter", "faulted"), [(0.0, False), (0.019, False), (-0.05, False), (0.021, True)])
def test_speed_jitter_within_the_tolerance_is_no_fault(jitter, faulted):
    cell = slowed_cell(0.25 + jitter)
    deadline = grace_deadline(cell, cell.now, 0.25 + jitter)
    commands = run_until_report_at(cell, [(2.5, 0.0)], deadline + 50_000_000)
    kinds = {K(c["kind"]) for c in commands}
    assert kinds == ({K.SLOW, K.FAULT_STOP} if faulted else {K.SLOW})


@pytest.mark.requirement("SR-ROB-3")
def test_a_robot_still_speeding_up_gets_the_stopping_time_of_its_higher_speed():
    cell = slowed_cell(0.2)  # T_s(0.2) = 120 ms (the 0.25 m/s row)
    commanded = cell.now
    cell.robot_speed_mps = 0.3  # the next report, before the command took effect: T_s(0.3) = 220 ms
    early, late = grace_deadline(cell, commanded, 0.2), grace_deadline(cell, commanded, 0.3)
    assert late > early
    commands = run_until_report_at(cell, [(2.5, 0.0)], late - 1)
    assert all(K(c["kind"]) == K.SLOW for c in commands)
    cell.frame([(2.5, 0.0)])
    assert_command(cell.tick(advance_ns=1), K.FAULT_STOP, R.ROBOT_OVERSPEED)


@pytest.mark.requirement("SR-ROB-3")
def test_a_stop_while_a_slow_down_is_pending_keeps_the_earlier_grace_running():
    cell = slowed_cell(1.0)  # SLOW at 1.0 m/s: T_s = 380 ms
    slow_deadline = grace_deadline(cell, cell.now, 1.0)
    run_until_report_at(cell, [(2.5, 0.0)], cell.now + 100_000_000)
    cell.robot_speed_mps = 0.25  # kept the slow limit: its stop gets T_s(0.25) = 120 ms from now
    cell.frame([(1.4, 0.0)])
    assert K(cell.tick()["kind"]) == K.PROTECTIVE_STOP
    assert grace_deadline(cell, cell.now, 0.25) < slow_deadline
    commands = run_until_report_at(cell, [(1.4, 0.0)], slow_deadline - 1)  # still braking: no fault
    assert all(K(c["kind"]) == K.PROTECTIVE_STOP for c in commands)
    cell.frame([(1.4, 0.0)])
    assert_command(cell.tick(advance_ns=1), K.FAULT_STOP, R.ROBOT_OVERSPEED)


@pytest.mark.requirement("SR-SSM-1")
def test_separation_uses_the_reported_speed_not_the_commanded_limit():
    cell = Harness(example_config(), robot_speed_mps=1.0)
    p = cell.params[0]
    sp_commanded, sp_reported = separation_m(p, 0.25, 0.1), separation_m(p, 1.0, 0.1)
    cell.arm()
    cell.frame([(0.0, 2.8)])  # warning zone, beyond S_p at 1.0 m/s
    assert K(cell.tick()["kind"]) == K.SLOW
    x = HAZARD_EDGE_X + (sp_commanded + sp_reported) / 2  # clear at 0.25 m/s, not at the 1.0 m/s reported
    cell.frame([(x, 0.0)])
    assert_command(cell.tick(), K.PROTECTIVE_STOP, R.SEPARATION_BELOW_SP, sensor=0, person=0)


def test_warm_up_reaches_the_speed_supervision_fault():
    from cobotguard.safety.warmup import warm_up_inputs

    params = build_params(example_config(n_sensors=2))
    state = new_state(params)
    reasons = set()
    for detections, robot, reset, overrun, now in warm_up_inputs(params):
        reasons.add(R(step_py(params, state, detections, robot, reset, overrun, now)[0]["reason"]))
    assert R.ROBOT_OVERSPEED in reasons
