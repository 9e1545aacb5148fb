"""robot.clock: the key, its checksum, its configuration check, the budget's T_echo and the link set-up."""

from __future__ import annotations

import pytest
from config_support import REPO, default_raw

from cobotguard.safety.budget import evaluate, reaction_stages, reaction_time_ns
from cobotguard.safety.checksum import config_checksum
from cobotguard.safety.config_load import ConfigError, config_from_dict, load_config
from cobotguard.safety.link import DelayCheck, Role, robot_link_policy
from cobotguard.safety.link.acceptance import ECHO_RING_CAPACITY
from cobotguard.safety.link.setup import robot_echo_ring_entries
from cobotguard.safety.timing import command_delivery_ns

MS = 1_000_000
OWN_CELL = REPO / "hil" / "defaults" / "robot_own_clock.toml"


def own_raw(timeout_ms: float = 70.0) -> dict:
    raw = default_raw()
    raw["robot"]["clock"] = "own"
    raw["controller"]["robot_state_timeout_ms"] = timeout_ms
    return raw


def test_shared_written_out_keeps_the_default_cells_checksum():
    raw = default_raw()
    before = config_checksum(config_from_dict(raw))[0]
    raw["robot"]["clock"] = "shared"
    assert config_checksum(config_from_dict(raw))[0] == before == "c316db8d"


def test_own_changes_the_checksum():
    assert config_checksum(config_from_dict(own_raw()))[0] != "c316db8d"


def test_an_unknown_clock_names_the_key():
    raw = default_raw()
    raw["robot"]["clock"] = "gps"
    with pytest.raises(ConfigError, match=r"robot\.clock"):
        config_from_dict(raw)


@pytest.mark.requirement("SR-CFG-12")
def test_own_with_the_shared_timeout_is_refused_with_the_bound():
    with pytest.raises(ConfigError) as err:
        config_from_dict(own_raw(timeout_ms=20.0))
    text = str(err.value)
    assert "controller.robot_state_timeout_ms" in text and 'robot.clock = "own"' in text
    assert "more than 62.000 ms" in text  # echo limit 2 + 10 + 20 + 20 = 52 ms, then the next cycle 10 ms


def test_own_just_above_the_bound_is_accepted_and_at_it_refused():
    config_from_dict(own_raw(timeout_ms=62.001))
    with pytest.raises(ConfigError):
        config_from_dict(own_raw(timeout_ms=62.0))


@pytest.mark.requirement("SR-CFG-12")
def test_a_ring_larger_than_the_receiver_holds_is_refused():
    raw = own_raw(timeout_ms=5000.0)
    raw["link"]["max_delay_ms"] = 2000.0
    raw["link"]["command_watchdog_ms"] = 5000.0
    with pytest.raises(ConfigError, match=f"at most {ECHO_RING_CAPACITY}"):
        config_from_dict(raw)


@pytest.mark.requirement("SR-CFG-12")
def test_t_r_counts_the_echo_limit_for_a_robot_on_its_own_clock():
    shared, own = config_from_dict(default_raw()), config_from_dict(own_raw())
    assert "T_echo" not in [s.symbol for s in reaction_stages(shared)]
    (echo,) = [s for s in reaction_stages(own) if s.symbol == "T_echo"]
    # echo limit 52 ms (cycle 2 + worst step 10 + command delivery 20 + state 20) less T_frame + T_receiver
    assert echo.ns == 52 * MS - command_delivery_ns(own.link)
    assert reaction_time_ns(own) == reaction_time_ns(shared) + echo.ns


def test_the_link_set_up_ages_by_echo_at_the_controller_and_not_at_the_robot():
    own = config_from_dict(own_raw())
    controller = robot_link_policy(own, Role.CONTROLLER)
    assert controller.delay_check is DelayCheck.ECHO
    assert controller.max_delay_ns == 52 * MS
    assert controller.watchdog_ns == 70 * MS
    assert controller.echo_ring == robot_echo_ring_entries(own) <= ECHO_RING_CAPACITY
    assert robot_link_policy(own, Role.ROBOT).delay_check is DelayCheck.NONE
    shared = config_from_dict(default_raw())
    assert robot_link_policy(shared, Role.CONTROLLER).delay_check is DelayCheck.SENDER_TIME
    assert robot_link_policy(shared, Role.ROBOT).delay_check is DelayCheck.SENDER_TIME


def test_the_ring_holds_every_command_the_echo_limit_can_span():
    own = config_from_dict(own_raw())
    # ticks: (52 + 10) ms / 2 ms + 2 = 33; data steps at 15 fps: ceil(62 / 66.67) + 2 = 3; doubled
    assert robot_echo_ring_entries(own) == 2 * (33 + 3)


def test_the_shipped_own_clock_cell_is_valid_and_safe():
    cfg = load_config(OWN_CELL)
    assert cfg.robot.clock == "own"
    assert evaluate(cfg).safe
