"""`[sensors.NAME] clock`: validation, checksum, budget and link set-up of a sensor on its own clock."""

from typing import Any

import pytest
from config_support import default_raw

from cobotguard.safety import timing
from cobotguard.safety.budget import evaluate, reaction_time_ns, sensor_stages
from cobotguard.safety.checksum import config_checksum
from cobotguard.safety.config import ConfigError
from cobotguard.safety.config_load import config_from_dict
from cobotguard.safety.link import Role, sensor_clock_policy, sensor_link_endpoint, sensor_link_policy
from cobotguard.safety.link.setup import UNCHECKED_NS
from cobotguard.safety.params import build_params

OWN = {
    "clock": "own",
    "clock_sync_period_ms": 100.0,
    "clock_error_limit_ms": 2.0,
    "clock_max_drift_ppm": 100.0,
}
MS = 1_000_000


def cell(**sensor_keys: Any):
    raw = default_raw()
    name = next(iter(raw["sensors"]))
    raw["sensors"][name].update(sensor_keys)
    return config_from_dict(raw, "test cell"), name


def problems(**sensor_keys: Any) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        cell(**sensor_keys)
    return [line.removeprefix("test cell: ") for line in exc.value.problems]


def test_shared_is_the_default_and_keeps_the_checksum():
    default, _ = cell()
    explicit, _ = cell(clock="shared")
    assert config_checksum(explicit) == config_checksum(default)
    assert config_checksum(default)[0] == "c316db8d"  # the default cell's published checksum
    own, _ = cell(**OWN)
    assert config_checksum(own) != config_checksum(default)


@pytest.mark.requirement("SR-CFG-12")
def test_own_clock_counts_its_error_limit_in_the_sensor_stage_and_t_r():
    shared, name = cell()
    own, _ = cell(**OWN)
    stages = sensor_stages(own)[name]
    assert stages[-1].symbol == f"T_clock[{name}]" and stages[-1].ns == 2 * MS
    assert sum(s.ns for s in stages) == timing.sensor_max_age_ns(own.sensors[name])
    assert reaction_time_ns(own) == reaction_time_ns(shared) + 2 * MS
    assert evaluate(own).reaction_time_ns == evaluate(shared).reaction_time_ns + 2 * MS
    p_own, p_shared = build_params(own)[0], build_params(shared)[0]
    assert p_own["sensor_max_age_ns"][0] == p_shared["sensor_max_age_ns"][0] + 2 * MS
    assert p_own["sensor_max_latency_ns"][0] == p_shared["sensor_max_latency_ns"][0] + 2 * MS


def test_own_clock_link_policies():
    own, name = cell(**OWN, clock_sync_timeout_ms=30.0)
    receiver = sensor_link_policy(own, name)
    assert receiver.max_delay_ns == receiver.max_clock_lead_ns == UNCHECKED_NS  # raw times: another clock
    clock = sensor_clock_policy(own, name)
    sensor = own.sensors[name]
    assert clock.own and clock.period_ns == 100 * MS and clock.timeout_ns == 30 * MS
    assert clock.limit_ns == 2 * MS and clock.drift_ppb == 100_000
    assert clock.max_delay_ns == timing.ns(sensor.transport_latency_ms) + 2 * MS
    assert sensor_link_endpoint(own, name, Role.SENSOR, 0).policy.max_delay_ns == UNCHECKED_NS
    shared, _ = cell()
    assert not sensor_clock_policy(shared, name).own
    assert sensor_link_policy(shared, name).max_delay_ns == timing.ns(sensor.transport_latency_ms)


def test_sync_timeout_defaults_to_the_period():
    own, name = cell(**OWN)
    assert sensor_clock_policy(own, name).timeout_ns == 100 * MS


@pytest.mark.requirement("SR-CFG-12")
def test_clock_keys_without_an_own_clock_are_refused_by_name():
    (line,) = problems(clock_sync_period_ms=100.0)
    assert line.startswith('sensors.cam0.clock_sync_period_ms: only with clock = "own"')


def test_own_clock_names_each_missing_key():
    lines = problems(clock="own")
    assert [line.split(":")[0] for line in lines] == [
        "sensors.cam0.clock_sync_period_ms",
        "sensors.cam0.clock_error_limit_ms",
        "sensors.cam0.clock_max_drift_ppm",
    ]


def test_unknown_clock_and_excessive_drift_are_refused():
    assert any("sensors.cam0.clock" in line for line in problems(clock="ntp"))
    assert any("clock_max_drift_ppm" in line for line in problems(**{**OWN, "clock_max_drift_ppm": 2000.0}))


@pytest.mark.requirement("SR-CFG-12")
def test_error_limit_must_exceed_what_the_sync_can_keep():
    # twice (100 ppm over a 100 ms period and a 100 ms timeout: 20 us, plus half of 64 B at 1 Mbaud:
    # 0.32 ms), plus 100 ppm of that twice: 680 068 ns
    (line,) = problems(**{**OWN, "clock_error_limit_ms": 0.68})
    assert line.startswith("sensors.cam0.clock_error_limit_ms: 0.68 ms is not above") and "0.681 ms" in line
    cell(**{**OWN, "clock_error_limit_ms": 0.681})


def test_the_shipped_own_clock_cells_are_the_default_cells_with_the_clock_keys():
    """examples/sensor_own_clock.toml is hil/defaults/cell.toml, examples/own_clocks.toml is
    hil/defaults/robot_own_clock.toml, each with only the camera's clock keys (and the name) changed, and
    both are SAFE with the error limit in T_r."""
    from config_support import DEFAULT_CELL, EXAMPLES

    from cobotguard.safety.config_load import load_config

    keys = {"clock", "clock_sync_period_ms", "clock_error_limit_ms", "clock_max_drift_ppm"}
    pairs = (("sensor_own_clock.toml", "cell.toml"), ("own_clocks.toml", "robot_own_clock.toml"))
    for own_name, base_name in pairs:
        own, base = load_config(EXAMPLES / own_name), load_config(DEFAULT_CELL.with_name(base_name))
        mine, theirs = own.model_dump(), base.model_dump()
        cam, base_cam = mine["sensors"]["cam0"], theirs["sensors"]["cam0"]
        assert cam["clock"] == "own" and {k for k in cam if cam[k] != base_cam[k]} <= keys
        for data in (mine, theirs):
            data.pop("name"), data.pop("sensors")
        assert mine == theirs, own_name
        assert evaluate(own).verdict == "safe"
        assert reaction_time_ns(own) == reaction_time_ns(base) + timing.ns(2.0)  # T_clock: the 2 ms limit
