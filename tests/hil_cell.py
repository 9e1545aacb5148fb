"""A small test cell with round numbers for the HIL rig's pure tests (scenarios, faults, verdicts)."""

from __future__ import annotations

from cobotguard.safety.config import CellConfig

HAZARD = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]


def make_cell(restart: str = "manual", with_zones: bool = True) -> CellConfig:
    """A small square cell: 1 m hazard square, a protective ring to 1.0 m, a warning ring to 2.0 m."""
    zones = {}
    if with_zones:
        zones = {
            "protective": {
                "type": "protective",
                "polygon_m": [(-1.5, -1.5), (1.5, -1.5), (1.5, 1.5), (-1.5, 1.5)],
                "stop_category": 1,
            },
            "warning": {
                "type": "warning",
                "polygon_m": [(-2.5, -2.5), (2.5, -2.5), (2.5, 2.5), (-2.5, 2.5)],
                "speed_limit_mps": 0.25,
            },
        }
    return CellConfig.model_validate(
        {
            "schema_version": 1,
            "name": "test cell",
            "robot": {
                "name": "arm",
                "max_speed_mps": 1.0,
                "payload_kg": 2.0,
                "stop_category": 1,
                "stop_input_reaction_ms": 8.0,
                "position_uncertainty_m": 0.05,
                "state_period_ms": 5.0,
                "hazard_polygon_m": HAZARD,
                "stopping": [
                    {"speed_mps": 0.0, "payload_kg": 2.0, "stop_time_ms": 0.0, "stop_distance_m": 0.0},
                    {"speed_mps": 1.0, "payload_kg": 2.0, "stop_time_ms": 250.0, "stop_distance_m": 0.15},
                ],
            },
            "sensors": {
                "cam": {
                    "connection_id": 0x0101,
                    "frame_rate_hz": 30.0,
                    "exposure_readout_ms": 10.0,
                    "inference_worst_ms": 12.0,
                    "transport_latency_ms": 2.0,
                    "tolerated_missed_frames": 1,
                    "max_persons": 8,
                    "image_width_px": 640,
                    "image_height_px": 480,
                    "min_person_height_px": 120.0,
                    "assumed_person_height_m": 1.5,
                    "position_uncertainty_m": 0.1,
                    "min_score": 0.5,
                }
            },
            "zones": zones,
            "separation": {"enabled": True, "intrusion_distance_m": 0.2, "stop_category": 1},
            "controller": {
                "cycle_period_ms": 1.0,
                "worst_step_ms": 0.1,
                "restart": restart,
                "auto_restart_clear_ms": 1000.0 if restart == "automatic" else None,
                "release_hysteresis_m": 0.1,
                "robot_state_timeout_ms": 20.0,
            },
            "link": {
                "baud": 115200,
                "connection_id": 0x0201,
                "command_frame_bytes": 40,
                "state_frame_bytes": 40,
                "receiver_cycle_ms": 1.0,
                "command_watchdog_ms": 20.0,
                "max_delay_ms": 10.0,
            },
        }
    )
