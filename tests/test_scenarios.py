"""HIL scenarios: tracks from specs, reset input, and the detection frames the rig sends."""

from __future__ import annotations

import numpy as np
import pytest
from hil_cell import HAZARD, make_cell
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.hil import scenarios as sc


def test_catalogue_names_are_unique_and_cover_the_issue():
    names = sc.scenario_names()
    assert len(names) == len(set(names))
    expects = {s.expect for s in sc.SCENARIOS}
    assert expects == set(sc.Expect)
    assert any(len(s.walks) == 2 for s in sc.SCENARIOS)
    assert len({w.angle_deg for s in sc.SCENARIOS for w in s.walks}) >= 3
    assert len({w.speed_mps for s in sc.SCENARIOS for w in s.walks}) >= 3
    with pytest.raises(KeyError, match="known"):
        sc.get_scenario("nope")


def test_stop_boundary_is_the_farther_of_protective_zone_and_separation():
    cell = make_cell()
    # straight ahead the protective square reaches 1.0 m beyond the hazard square
    assert sc.stop_boundary_gap_m(cell, 0.0, 0.6) == pytest.approx(1.0, abs=1e-6)
    assert sc.stop_boundary_gap_m(cell, 0.0, 1.4) == pytest.approx(1.4)
    # on the diagonal the square corner lies sqrt(2) * 1.0 m from the hazard corner
    assert sc.stop_boundary_gap_m(cell, 45.0, 0.6) == pytest.approx(2**0.5, abs=1e-6)
    assert sc.stop_boundary_gap_m(make_cell(with_zones=False), 0.0, 0.6) == pytest.approx(0.6)


def test_walk_in_track_starts_outside_the_boundary_and_ends_at_the_hazard_region():
    cell = make_cell()
    plan = sc.build_plan(sc.get_scenario("walk_in_front_1.6"), cell, required_separation_m=0.6)
    (track,) = plan.tracks
    # from the front (180 deg): boundary 1.0 m + lead-in 1.0 m beyond the hazard edge at x = -0.5
    np.testing.assert_allclose(track.xy_m[0], [-2.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(track.xy_m[-1], [-0.5, 0.0], atol=1e-6)
    # 2.0 m at 1.6 m/s
    assert track.t_ns[-1] == pytest.approx(2.0 / 1.6 * 1e9, abs=10)
    assert plan.duration_ns == track.t_ns[-1] + 400_000_000
    assert plan.expect is sc.Expect.STOP


def test_positions_are_nan_outside_the_track_and_linear_inside():
    track = sc.Track(np.array([100, 300], dtype=np.int64), np.array([[0.0, 0.0], [2.0, 4.0]]))
    pos = track.position(np.array([99, 100, 200, 300, 301]))
    assert np.isnan(pos[0]).all() and np.isnan(pos[4]).all()
    np.testing.assert_allclose(pos[1:4], [[0, 0], [1, 2], [2, 4]])


def test_stop_at_edge_stays_outside_the_boundary():
    cell = make_cell()
    plan = sc.build_plan(sc.get_scenario("stop_at_edge"), cell, required_separation_m=0.6)
    (track,) = plan.tracks
    t = np.arange(0, plan.duration_ns, 1_000_000)
    gaps = sc.gaps_to_region(track.position(t), HAZARD)
    assert np.nanmin(gaps) == pytest.approx(1.0 + 0.3, abs=1e-6)
    # it stands still for the dwell at the end
    np.testing.assert_allclose(track.xy_m[-1], track.xy_m[-2])


def test_restart_plan_orders_reset_pulses_around_dwell_and_clear():
    cell = make_cell()
    plan = sc.build_plan(sc.get_scenario("leave_and_restart"), cell, required_separation_m=0.6)
    assert plan.expect is sc.Expect.RESTART
    assert plan.dwell_ns is not None and plan.clear_ns is not None and plan.valid_reset_ns is not None
    assert plan.leave_ns is not None
    assert plan.dwell_ns < plan.leave_ns < plan.clear_ns < plan.valid_reset_ns
    # person inside during the first pulse, then reset pressed inside and held across the clear moment
    assert sc.reset_level(plan, plan.dwell_ns + 250_000_000) == 1
    assert sc.reset_level(plan, plan.dwell_ns + 350_000_000) == 0
    rise = plan.leave_ns - 100_000_000
    assert sc.reset_level(plan, rise - 1) == 0 and sc.reset_level(plan, rise) == 1
    hazard_gap = sc.gaps_to_region(sc.positions(plan, np.array([rise]))[0], HAZARD)
    assert hazard_gap[0] == pytest.approx(0.2)  # still standing next to the hazard when it is pressed
    assert sc.reset_level(plan, plan.clear_ns) == 1
    assert sc.reset_level(plan, plan.clear_ns + 500_000_000) == 0
    assert sc.reset_level(plan, plan.valid_reset_ns) == 1
    assert plan.valid_reset_ns == plan.clear_ns + 800_000_000
    # the person is gone (NaN) after clear
    assert np.isnan(sc.positions(plan, np.array([plan.clear_ns + 1]))).all()
    levels = [lvl for _, lvl in plan.reset_changes]
    assert levels == [1, 0, 1, 0, 1, 0]


def test_automatic_restart_allows_restart_after_the_clear_time():
    scenario = sc.Scenario(
        "auto", "leave with no reset", (sc.Walk(0.0, 1.6, stop_gap_m=0.2, leave=True),), sc.Expect.RESTART
    )
    plan = sc.build_plan(scenario, make_cell(restart="automatic"), 0.6)
    assert plan.clear_ns is not None
    assert plan.valid_reset_ns == plan.clear_ns + 1_000_000_000
    assert plan.reset_changes == ()


def test_detection_frames_follow_the_sensor_timing_and_counter():
    cell = make_cell()
    sensor = cell.sensors["cam"]
    plan = sc.build_plan(sc.get_scenario("two_people"), cell, 0.6)
    t0 = 5_000_000_000
    frames = sc.detection_frames(plan, sensor, 0, t0_ns=t0, counter0=250)
    period = 33_333_334  # 30 Hz, rounded up like the budget's frame period
    np.testing.assert_array_equal(np.diff(frames["t_exposure_ns"]), period)
    assert frames["t_exposure_ns"][0] == t0
    np.testing.assert_array_equal(frames["t_sent_ns"] - frames["t_exposure_ns"], 22_000_000)
    assert list(frames["frame_counter"][:8]) == [250, 251, 252, 253, 254, 255, 0, 1]
    # the second walker appears 300 ms later: one person, then two
    assert frames["person_count"][0] == 1
    assert frames["person_count"][int(0.4e9 / period)] == 2
    assert (frames["health"] == 0).all()
    first = frames["persons"][0][0]
    assert first["z_d_m"] == pytest.approx(0.1)
    assert first["score"] >= sensor.min_score
    # unused slots stay zero
    assert (frames["persons"][0][1:]["score"] == 0).all()


def test_too_many_people_for_the_sensor_is_an_error():
    cell = make_cell()
    crowd = tuple(sc.Walk(angle_deg=10.0 * i, speed_mps=1.0) for i in range(9))
    plan = sc.build_plan(sc.Scenario("crowd", "nine", crowd, sc.Expect.STOP), cell, 0.6)
    with pytest.raises(ValueError, match="exceed"):
        sc.detection_frames(plan, cell.sensors["cam"], 0)


def test_cell_frames_merge_sensors_in_send_order():
    cell = make_cell()
    plan = sc.build_plan(sc.get_scenario("walk_in_side_1.0"), cell, 0.6)
    frames = sc.cell_frames(plan, cell, t0_ns=0)
    assert (np.diff(frames["t_sent_ns"]) >= 0).all()
    assert set(frames["sensor_index"]) == {0}


@given(
    angle=st.floats(-180.0, 180.0),
    speed=st.floats(0.1, 2.0),
    start_gap=st.floats(0.05, 3.0),
)
def test_every_walk_in_approaches_monotonically_and_reaches_the_hazard_centre(angle, speed, start_gap):
    cell = make_cell()
    walk = sc.Walk(angle_deg=angle, speed_mps=speed, start_gap_m=start_gap, stop_gap_m=None)
    plan = sc.build_plan(sc.Scenario("w", "", (walk,), sc.Expect.STOP), cell, 0.6)
    (track,) = plan.tracks
    t = np.linspace(track.t_ns[0], track.t_ns[-1], 200).astype(np.int64)
    gaps = sc.gaps_to_region(track.position(t), HAZARD)
    assert gaps[0] == pytest.approx(sc.stop_boundary_gap_m(cell, angle, 0.6) + start_gap, abs=1e-6)
    assert gaps[-1] == 0.0
    np.testing.assert_allclose(track.xy_m[-1], [0.0, 0.0], atol=1e-9)
    assert (np.diff(gaps) <= 1e-9).all()
    # walking speed as specified
    step = np.linalg.norm(np.diff(track.xy_m, axis=0), axis=1) / (np.diff(track.t_ns) / 1e9)
    np.testing.assert_allclose(step, speed, rtol=1e-6)
