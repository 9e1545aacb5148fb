"""Helpers for the config, budget, checksum and check-CLI tests: cells as raw TOML data, a TOML writer."""

from __future__ import annotations

import copy
import random
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CELL = REPO / "hil" / "defaults" / "cell.toml"
EXAMPLES = REPO / "examples"

_DEFAULT_RAW = tomllib.loads(DEFAULT_CELL.read_text())


def default_raw() -> dict[str, Any]:
    """A fresh copy of the default cell as parsed TOML (dicts and lists)."""
    return copy.deepcopy(_DEFAULT_RAW)


def square(half: float, cx: float = 0.0, cy: float = 0.0) -> list[list[float]]:
    """A square polygon of half-width `half` around (cx, cy), counter-clockwise."""
    return [[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half], [cx - half, cy + half]]


def round_number_raw() -> dict[str, Any]:
    """A cell with round numbers for hand-computed budgets (the default camera, so geometry is valid).

    T_r = sensor (2 x 50 + 10 + 20 + 5 = 135 ms) + controller (5 + 5 ms) + link (50 B x 10 bit / 100 kbaud
    = 5 ms, one cycle, + 10 ms receiver) + robot stop input 40 ms = 200 ms. At 0.5 m/s: T_s = 300 ms,
    S_s = 0.1 m. The sensor's serial line (1 Mbaud) carries its largest frame in 2.41 ms < 5 ms.
    """
    raw = default_raw()
    raw["controller"]["person_hold_ms"] = 0.0  # the default cell's hold exceeds these sensors' stale limit
    raw["robot"].update(
        max_speed_mps=0.5,
        payload_kg=2.0,
        stop_input_reaction_ms=40.0,
        position_uncertainty_m=0.05,
        hazard_polygon_m=square(0.5),
        stopping=[
            {"speed_mps": 0.25, "payload_kg": 2.0, "stop_time_ms": 200.0, "stop_distance_m": 0.05},
            {"speed_mps": 0.5, "payload_kg": 2.0, "stop_time_ms": 300.0, "stop_distance_m": 0.1},
        ],
    )
    raw["sensors"]["cam0"].update(
        frame_rate_hz=20.0,
        tolerated_missed_frames=1,
        exposure_readout_ms=10.0,
        inference_worst_ms=20.0,
        transport_latency_ms=5.0,
        position_uncertainty_m=0.1,
    )
    raw["controller"].update(cycle_period_ms=5.0, worst_step_ms=5.0, wake_on_data=False)  # on the tick
    raw["link"].update(
        baud=100_000, command_frame_bytes=50, receiver_cycle_ms=10.0, command_watchdog_ms=100.0
    )
    raw["separation"].update(enabled=False, intrusion_distance_m=0.85)
    raw["zones"] = {"protective": {"type": "protective", "polygon_m": square(1.9), "stop_category": 1}}
    return raw


def _value(value: Any) -> str:
    """One TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def to_toml(raw: dict[str, Any], shuffle: random.Random | None = None, comments: bool = False) -> str:
    """Write parsed TOML data back as TOML; optionally shuffle key order inside tables and add comments."""
    lines: list[str] = []

    def order(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        if shuffle is not None:
            shuffle.shuffle(items)
        return items

    def table(prefix: str, data: dict[str, Any]) -> None:
        scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
        tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
        if prefix:
            lines.append(f"\n[{prefix}]" + ("   # a table" if comments else ""))
        for k, v in order(scalars):
            lines.append(f"{_key(k)} = {_value(v)}" + ("  # comment" if comments else ""))
        for k, v in order(tables) if shuffle is not None and prefix not in ("sensors", "zones") else tables:
            table(f"{prefix}.{_key(k)}" if prefix else _key(k), v)

    table("", raw)
    return "\n".join(lines) + "\n"
