"""The HIL rig judges every cell by the budget's own numbers, and emulates its sensors at the budget's timing.

For each shipped cell (examples/*.toml, hil/defaults/*.toml): the deadlines a rig verdict uses to call a
stop late (hil.timeline.Budget from hil.rig.cell_budget) are safety.budget's, and the frames the rig sends
(hil.scenarios, hil.session) follow the frame period and latency the budget and the step assume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from config_support import DEFAULT_CELL, EXAMPLES

from cobotguard.hil import scenarios as sc
from cobotguard.hil.rig import cell_budget, required_separation_m
from cobotguard.hil.session import Session
from cobotguard.safety import budget, stopping
from cobotguard.safety.config import ns
from cobotguard.safety.config_load import load_config
from cobotguard.safety.params import build_params

CELLS = [*sorted(EXAMPLES.glob("*.toml")), *sorted(DEFAULT_CELL.parent.glob("*.toml"))]


def test_every_shipped_cell_is_checked() -> None:
    assert len(CELLS) >= 4 and DEFAULT_CELL in CELLS


@pytest.mark.parametrize("path", CELLS, ids=lambda p: p.name)
def test_the_rig_calls_a_stop_late_by_the_budget_s_deadlines(path: Path) -> None:
    cfg = load_config(path)
    judged = cell_budget(cfg)
    stages = {stage.symbol: stage.ns for stage in budget.reaction_stages(cfg)}
    assert judged.reaction_time_ns == budget.reaction_time_ns(cfg) == sum(stages.values())
    assert judged.robot_reaction_ns == stages["T_stop_input"]
    assert list(judged.hazard_polygon_m) == list(cfg.robot.hazard_polygon_m)
    protective = [z.polygon_m for z in cfg.zones.values() if z.type == "protective"]
    assert list(judged.protective_zones_m) == protective
    if not cfg.separation.enabled:
        assert judged.separation_m is None
        return
    assert judged.separation_m is not None
    for row in stopping.stopping_rows(cfg.robot):
        speed = min(row.speed_mps, cfg.robot.max_speed_mps)
        assert judged.separation_m(speed) == budget.separation_required_m(cfg, speed)


@pytest.mark.parametrize("path", CELLS, ids=lambda p: p.name)
def test_the_rig_s_frames_keep_the_budget_s_sensor_timing(path: Path) -> None:
    cfg = load_config(path)
    params = build_params(cfg)[0]
    plan = sc.build_plan(sc.get_scenario("walk_in_front_1.6"), cfg, required_separation_m(cfg))
    session = Session(cfg, robot_io=None, sensor_io=[None] * len(cfg.sensors), press_reset=None)
    for index, (name, sensor) in enumerate(cfg.sensors.items()):
        parts = {stage.symbol.split("[")[0]: stage.ns for stage in budget.sensor_stages(cfg)[name]}
        period = parts["T_frames"] // (1 + sensor.tolerated_missed_frames)
        assert period * (1 + sensor.tolerated_missed_frames) == parts["T_frames"]
        # on its own clock the sensor's latency limit also holds the clock error limit (T_clock)
        transport = ns(sensor.transport_latency_ms) + parts.get("T_clock", 0)
        frames = sc.detection_frames(plan, sensor, index)
        assert len(frames) > 2
        np.testing.assert_array_equal(np.diff(frames["t_exposure_ns"]), period)
        # sent at the worst case: with the transport, the latency limit the step supervises
        sent = frames["t_sent_ns"] - frames["t_exposure_ns"]
        np.testing.assert_array_equal(sent, parts["T_exposure"] + parts["T_inference"])
        assert int(sent[0]) + transport == int(params["sensor_max_latency_ns"][index])
        # the live rig: the same period, and frames sent no later than the worst case
        stream = session.sensors[index]
        assert stream.period_ns == period
        assert stream.latency_ns + transport <= int(params["sensor_max_latency_ns"][index])
