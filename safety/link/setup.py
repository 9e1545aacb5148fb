"""Endpoints built from the cell configuration: which connection ID, which timeouts, for which end."""

from __future__ import annotations

import math

from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.link.acceptance import DEFAULT_MAX_CLOCK_LEAD_NS, DelayCheck, LinkPolicy
from cobotguard.safety.link.clock_sync import PPB_PER_PPM, ClockPolicy
from cobotguard.safety.link.endpoint import Endpoint, Role

UNCHECKED_NS = 1 << 62  # a limit no time difference reaches: the check is done elsewhere, or not at all


def robot_link_policy(cfg: CellConfig, role: Role) -> LinkPolicy:
    """Timing of the robot link: the controller's watchdog is robot_state_timeout_ms, the robot's is
    link.command_watchdog_ms; both reject frames older than link.max_delay_ms. No loss is tolerated.

    With the robot on its own clock (robot.clock = "own") the controller ages states by echo instead
    (`robot_echo_policy`) and the robot's end has no delay check: its command watchdog bounds command age.
    """
    if role is Role.CONTROLLER:
        watchdog = ns(cfg.controller.robot_state_timeout_ms)
    elif role is Role.ROBOT:
        watchdog = ns(cfg.link.command_watchdog_ms)
    else:
        raise ValueError(f"{role} is not an end of the robot link")
    if cfg.robot.clock == "own":
        if role is Role.CONTROLLER:
            return robot_echo_policy(cfg)
        return LinkPolicy(max_delay_ns=ns(cfg.link.max_delay_ms), watchdog_ns=watchdog,
                          delay_check=DelayCheck.NONE)  # fmt: skip
    return LinkPolicy(max_delay_ns=ns(cfg.link.max_delay_ms), watchdog_ns=watchdog)


def robot_echo_max_age_ns(cfg: CellConfig) -> int:
    """The robot link's echo limit: the oldest a ROBOT_STATE may be on arrival, from its echoed command."""
    return timing.robot_echo_max_age_ns(
        ns(cfg.controller.cycle_period_ms), ns(cfg.controller.worst_step_ms), ns(cfg.link.max_delay_ms),
        cfg.link,
    )  # fmt: skip


def robot_echo_ring_entries(cfg: CellConfig) -> int:
    """How many command send times the controller keeps to age robot states by echo."""
    data_periods = (
        [timing.frame_period_ns(s.frame_rate_hz) for s in cfg.sensors.values()]
        if cfg.controller.wake_on_data
        else []
    )
    return timing.robot_echo_ring_entries(
        robot_echo_max_age_ns(cfg), ns(cfg.controller.cycle_period_ms), ns(cfg.controller.worst_step_ms),
        data_periods,
    )  # fmt: skip


def robot_echo_policy(cfg: CellConfig) -> LinkPolicy:
    """The controller's end of the robot link with the robot on its own clock: states aged by echo."""
    return LinkPolicy(
        max_delay_ns=robot_echo_max_age_ns(cfg),
        watchdog_ns=ns(cfg.controller.robot_state_timeout_ms),
        delay_check=DelayCheck.ECHO,
        echo_ring=robot_echo_ring_entries(cfg),
    )


def sensor_link_policy(cfg: CellConfig, sensor_name: str) -> LinkPolicy:
    """Timing of a sensor link: frames older than the sensor's transport_latency_ms are late; the watchdog
    allows the tolerated missed frames plus one period, and the same number of lost link frames.

    A sensor on its own clock: the receiver does not compare raw sender times with its clock (they are on
    another one); the delay check applies to sender times converted with the measured offset and its
    bound instead (`sensor_clock_policy`, safety.link.clock_sync.frame_fault).
    """
    sensor = cfg.sensors[sensor_name]
    own = sensor.clock == "own"
    return LinkPolicy(
        max_delay_ns=UNCHECKED_NS if own else timing.sensor_link_max_delay_ns(sensor),
        watchdog_ns=timing.sensor_link_watchdog_ns(sensor),
        tolerated_losses=sensor.tolerated_missed_frames,
        max_clock_lead_ns=UNCHECKED_NS if own else DEFAULT_MAX_CLOCK_LEAD_NS,
    )


def sensor_clock_policy(cfg: CellConfig, sensor_name: str) -> ClockPolicy:
    """How the controller synchronises with a sensor's clock (`ClockPolicy()` for a shared clock)."""
    sensor = cfg.sensors[sensor_name]
    if sensor.clock != "own":
        return ClockPolicy()
    assert sensor.clock_sync_period_ms is not None and sensor.clock_error_limit_ms is not None
    drift_ppm = sensor.clock_max_drift_ppm or 0.0
    return ClockPolicy(
        own=True,
        period_ns=ns(sensor.clock_sync_period_ms),
        timeout_ns=timing.sensor_clock_sync_timeout_ns(sensor),
        limit_ns=ns(sensor.clock_error_limit_ms),
        drift_ppb=math.ceil(drift_ppm * PPB_PER_PPM),
        max_delay_ns=timing.sensor_link_max_delay_ns(sensor),
        max_clock_lead_ns=DEFAULT_MAX_CLOCK_LEAD_NS,
    )


def sensor_end_policy(cfg: CellConfig, sensor_name: str) -> LinkPolicy:
    """The sensor's receiver (SYNC_REQUESTs): every check but time. It cannot know the offset, and its
    replies' round trip bounds the delay at the controller; it never times out on its own."""
    return LinkPolicy(max_delay_ns=UNCHECKED_NS, watchdog_ns=UNCHECKED_NS, max_clock_lead_ns=UNCHECKED_NS)


def robot_link_endpoint(cfg: CellConfig, role: Role, now_ns: int) -> Endpoint:
    """The controller's (Role.CONTROLLER) or the robot's (Role.ROBOT) end of the robot link."""
    return Endpoint(role, cfg.link.connection_id, robot_link_policy(cfg, role), now_ns)


def sensor_link_endpoint(cfg: CellConfig, sensor_name: str, role: Role, now_ns: int) -> Endpoint:
    """The sensor's (Role.SENSOR) or the controller's (Role.SENSOR_RECEIVER) end of a sensor link."""
    if role not in (Role.SENSOR, Role.SENSOR_RECEIVER):
        raise ValueError(f"{role} is not an end of a sensor link")
    sensor = cfg.sensors[sensor_name]
    if role is Role.SENSOR:
        return Endpoint(role, sensor.connection_id, sensor_end_policy(cfg, sensor_name), now_ns)
    return Endpoint(role, sensor.connection_id, sensor_link_policy(cfg, sensor_name), now_ns)
