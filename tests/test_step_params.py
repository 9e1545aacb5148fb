"""Parameters built from a configuration: units, padding, stopping curve, supervision budgets, errors."""

from pathlib import Path

import numpy as np
import pytest

from cobotguard.hil.sim import example_config
from cobotguard.safety import budget
from cobotguard.safety.config_load import load_config
from cobotguard.safety.params import NO_CATEGORY, ZONE_PROTECTIVE, ZONE_WARNING, build_params
from cobotguard.safety.records import MAX_VERTICES, MAX_ZONES

DEFAULT_CELL = Path(__file__).resolve().parents[1] / "hil" / "defaults" / "cell.toml"


def test_default_cell_parameters():
    cfg = load_config(DEFAULT_CELL)
    p = build_params(cfg)[0]
    assert p["n_sensors"] == 1
    assert p["reaction_time_ns"] == budget.reaction_time_ns(cfg)
    assert p["cycle_period_ns"] == 2_000_000 and p["worst_step_ns"] == 10_000_000
    # 15 fps, one tolerated missed frame: 2 x 66_666_667 ns + 8 + 50 + 8 ms
    assert p["sensor_max_age_ns"][0] == 2 * 66_666_667 + 66_000_000
    assert p["sensor_max_latency_ns"][0] == 66_000_000
    assert p["sensor_max_persons"][0] == 8 and p["sensor_tolerated_missed"][0] == 1
    # payload 2.0 kg selects the 2.5 kg curve
    assert p["n_stop_points"] == 5
    assert list(p["stop_speed_mps"][:5]) == [0.10, 0.25, 0.50, 0.75, 1.00]
    assert list(p["stop_time_ns"][:5]) == [60_000_000, 100_000_000, 160_000_000, 230_000_000, 300_000_000]
    assert p["robot_state_timeout_ns"] == 20_000_000
    assert p["restart_automatic"] == 0 and p["release_hysteresis_m"] == 0.1
    assert p["min_stop_category"] == 1


def test_zones_in_configuration_order_and_padded():
    cfg = load_config(DEFAULT_CELL)
    p = build_params(cfg)[0]
    assert p["n_zones"] == 2
    assert list(p["zone_kind"][:2]) == [ZONE_PROTECTIVE, ZONE_WARNING]
    assert p["zone_n"][0] == 4 and p["zone_n"][1] == 6
    assert p["zone_speed_limit_mps"][1] == 0.1 and p["zone_stop_category"][1] == NO_CATEGORY
    assert np.all(p["zone_vertices"][0][4:] == 0.0) and np.all(p["zone_edges"][0][:, 4:] == 0.0)
    assert np.all(p["zone_vertices"][2:] == 0.0)
    assert p["hazard_n"] == 4 and p["hazard_bounds"][6] >= 0.3 * np.sqrt(2)  # circle holds every vertex
    assert 0.29 < p["hazard_bounds"][7] < 0.3  # inner circle inside the 0.6 m square


def test_closed_rings_are_stored_open():
    cfg = example_config()
    ring = [*cfg.robot.hazard_polygon_m, cfg.robot.hazard_polygon_m[0]]
    closed = cfg.model_copy(update={"robot": cfg.robot.model_copy(update={"hazard_polygon_m": ring})})
    assert build_params(closed)[0]["hazard_n"] == 4


def test_automatic_restart_time_in_ns():
    p = build_params(example_config(restart="automatic", auto_restart_clear_ms=1500.0))[0]
    assert p["restart_automatic"] == 1 and p["auto_restart_clear_ns"] == 1_500_000_000


def test_beyond_the_declared_maxima_is_refused():
    cfg = example_config()
    zone = cfg.zones["warning"]
    with pytest.raises(ValueError, match="zones: 9 configured"):
        build_params(cfg.model_copy(update={"zones": {f"z{k}": zone for k in range(MAX_ZONES + 1)}}))
    many = [(float(np.cos(a)), float(np.sin(a))) for a in np.linspace(0, 6, MAX_VERTICES + 1)]
    with pytest.raises(ValueError, match="zones.warning.polygon_m: 17 vertices"):
        jagged = zone.model_copy(update={"polygon_m": many})
        build_params(cfg.model_copy(update={"zones": {"warning": jagged}}))


def test_a_warning_zone_needs_its_speed_limit():
    cfg = example_config()
    zone = cfg.zones["warning"].model_copy(update={"speed_limit_mps": None})
    with pytest.raises(ValueError, match="zones.warning.speed_limit_mps"):
        build_params(cfg.model_copy(update={"zones": {"warning": zone}}))
