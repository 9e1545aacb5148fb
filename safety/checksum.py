"""Configuration checksum: SHA-256 over a canonical form of the validated configuration.

The canonical form is the validated model (defaults filled in, every number as the float or int the
schema makes of it) written as JSON with sorted keys, no whitespace and ASCII only. So comments, key
order inside a table, formatting and `1` vs `1.0` do not change it; any value does. Sensors and zones
stay in their declared order, because that order gives their indices in detection frames, commands and
traces. Shown short (first 8 hex digits, like a safety controller's checksum) and long (64 hex digits).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cobotguard.safety.config import CellConfig

SHORT_HEX_DIGITS = 8


def _normalised(value: Any) -> Any:
    """Named tables as ordered [name, value] pairs; -0.0 as 0.0 (same number, same checksum)."""
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(v) for v in value]
    if isinstance(value, float) and value == 0.0:
        return 0.0
    return value


# Keys that joined the model after cells were checksummed, left out of the canonical form while they hold
# this value (off): the cells written before keep their checksum, any other value is part of it.
OMITTED_WHEN_OFF: dict[tuple[str, str], Any] = {
    ("controller", "person_hold_ms"): 0.0,
    ("robot", "clock"): "shared",
}
# Optional sensor keys introduced after checksums were in use: left out of the canonical form while
# absent (None), so that existing cells keep their checksums; present, they count like any value.
OMITTED_WHEN_ABSENT = (
    "tiling",
    "model",
    "clock_sync_period_ms",
    "clock_sync_timeout_ms",
    "clock_error_limit_ms",
    "clock_max_drift_ppm",
)
# Sensor keys introduced later with a default that keeps the earlier meaning: left out while they hold it.
OMITTED_SENSOR_DEFAULTS: dict[str, Any] = {"clock": "shared"}


def canonical_dict(cfg: CellConfig) -> dict[str, Any]:
    """The validated configuration as plain data, sensors and zones as ordered [name, table] pairs."""
    data = _normalised(cfg.model_dump(mode="python"))
    for (section, key), off in OMITTED_WHEN_OFF.items():
        if data[section].get(key) == off:
            del data[section][key]
    for table in data["sensors"].values():
        for key in OMITTED_WHEN_ABSENT:
            if table.get(key) is None:
                table.pop(key, None)
        for key, default in OMITTED_SENSOR_DEFAULTS.items():
            if table.get(key) == default:
                del table[key]
    data["sensors"] = [[name, table] for name, table in data["sensors"].items()]
    data["zones"] = [[name, table] for name, table in data["zones"].items()]
    return data


def canonical_json(cfg: CellConfig) -> bytes:
    """The canonical byte string the checksum is taken over."""
    text = json.dumps(canonical_dict(cfg), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)  # fmt: skip
    return text.encode("ascii")


def config_from_canonical(data: bytes | str) -> CellConfig:
    """Rebuild a configuration from its canonical JSON (round trip keeps the checksum)."""
    raw = json.loads(data)
    raw["sensors"] = dict(raw["sensors"])
    raw["zones"] = dict(raw["zones"])
    return CellConfig.model_validate(raw)


def config_checksum(cfg: CellConfig) -> tuple[str, str]:
    """(short, long): the first 8 and all 64 hex digits of the SHA-256 of the canonical form."""
    digest = hashlib.sha256(canonical_json(cfg)).hexdigest()
    return digest[:SHORT_HEX_DIGITS], digest


def checksum_matches(cfg: CellConfig, expected: str) -> bool:
    """True when `expected` (short or long, any case) is this configuration's checksum."""
    short, long = config_checksum(cfg)
    wanted = expected.strip().lower()
    return wanted in (short, long)
