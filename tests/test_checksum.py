"""The configuration checksum: formatting does not change it, any value does."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from config_support import DEFAULT_CELL, default_raw, to_toml
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from cobotguard.safety.checksum import (
    canonical_dict,
    canonical_json,
    checksum_matches,
    config_checksum,
    config_from_canonical,
)
from cobotguard.safety.config import CellConfig
from cobotguard.safety.config_load import load_config, loads_config


def _without_hold() -> dict:
    """The default cell as written before it held missed persons (the key absent)."""
    raw = default_raw()
    del raw["controller"]["person_hold_ms"]
    return raw


BASE = CellConfig.model_validate(default_raw())
BASE_SUM = config_checksum(BASE)


def leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every scalar's path in nested dicts/lists (the canonical form's values)."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in leaves(v, (*path, k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in leaves(v, (*path, i))]
    return [path]


def raw_leaves() -> list[tuple[Any, ...]]:
    return leaves(default_raw())


def changed(value: Any, step: float) -> Any:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + step if value >= 0 else value - step
    if isinstance(value, str):
        return {"manual": "automatic", "warning": "protective", "protective": "warning"}.get(
            value, value + "x"
        )
    raise AssertionError(value)


def mutated(path: tuple[Any, ...], step: float) -> tuple[dict[str, Any], CellConfig]:
    """The default cell with one value changed (skips the example if that leaves the schema)."""
    raw = default_raw()
    node: Any = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = changed(node[path[-1]], step)
    try:
        return raw, CellConfig.model_validate(raw)
    except ValidationError:
        assume(False)  # e.g. min_score >= 1 or schema_version 2: not a configuration at all
        raise


def test_checksum_shapes() -> None:
    short, long = BASE_SUM
    assert len(short) == 8 and len(long) == 64
    assert long.startswith(short)
    assert int(long, 16) >= 0


def test_checksum_matches_short_or_long_in_any_case() -> None:
    short, long = BASE_SUM
    assert checksum_matches(BASE, short) and checksum_matches(BASE, long.upper())
    assert not checksum_matches(BASE, "00000000")


@pytest.mark.requirement("SR-CFG-9")
def test_comments_key_order_and_number_spelling_do_not_change_it() -> None:
    plain = loads_config(to_toml(default_raw()))
    raw = default_raw()
    raw["controller"]["cycle_period_ms"] = 2  # integer spelling of 2.0
    shuffled = loads_config(to_toml(raw, shuffle=random.Random(7), comments=True))
    assert config_checksum(plain) == config_checksum(shuffled) == BASE_SUM


def test_defaults_written_out_do_not_change_it() -> None:
    raw = default_raw()
    raw["controller"]["auto_restart_clear_ms"] = None  # same as leaving it out
    assert config_checksum(CellConfig.model_validate(raw)) == BASE_SUM


def test_sensor_order_changes_it() -> None:
    raw = default_raw()
    second = dict(raw["sensors"]["cam0"], connection_id=102)
    raw["sensors"] = {"cam0": raw["sensors"]["cam0"], "cam1": second}
    swapped = dict(raw, sensors={"cam1": second, "cam0": raw["sensors"]["cam0"]})
    a = config_checksum(CellConfig.model_validate(raw))
    b = config_checksum(CellConfig.model_validate(swapped))
    assert a != b  # sensor index = position: swapping them changes which frames mean what


def test_canonical_form_is_sorted_compact_ascii() -> None:
    text = canonical_json(BASE)
    assert text.isascii()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")).encode()
    assert canonical_dict(BASE)["sensors"][0][0] == "cam0"


def test_file_round_trip() -> None:
    cfg = load_config(DEFAULT_CELL)
    assert config_checksum(config_from_canonical(canonical_json(cfg))) == config_checksum(cfg)


@pytest.mark.requirement("SR-CFG-9")
@given(path=st.sampled_from(raw_leaves()), step=st.sampled_from([1e-9, 1e-3, 0.5, 7.0]))
def test_any_value_change_changes_the_checksum(path: tuple[Any, ...], step: float) -> None:
    raw, cfg = mutated(path, step)
    assert config_checksum(cfg) != BASE_SUM


@given(path=st.sampled_from(raw_leaves()), step=st.sampled_from([1e-6, 0.25, 3.0]))
def test_parse_canonical_parse_keeps_the_checksum(path: tuple[Any, ...], step: float) -> None:
    raw, cfg = mutated(path, step)
    again = config_from_canonical(canonical_json(cfg))
    assert again == cfg
    assert config_checksum(again) == config_checksum(cfg)
    # and through TOML text again
    assert config_checksum(loads_config_schema(to_toml(raw))) == config_checksum(cfg)


def loads_config_schema(text: str) -> CellConfig:
    """TOML text -> schema-valid config (no cross-field rules: the mutation may break those)."""
    import tomllib

    return CellConfig.model_validate(tomllib.loads(text))


def test_serial_baud_is_part_of_the_canonical_form() -> None:
    assert canonical_dict(BASE)["sensors"][0][1]["serial_baud"] == 1_000_000
    raw = default_raw()
    del raw["sensors"]["cam0"]["serial_baud"]  # no serial line: a different cell
    without = CellConfig.model_validate(raw)
    assert canonical_dict(without)["sensors"][0][1]["serial_baud"] is None
    assert config_checksum(without) != BASE_SUM
    raw["sensors"]["cam0"]["serial_baud"] = 921_600
    assert config_checksum(CellConfig.model_validate(raw)) not in (BASE_SUM, config_checksum(without))


def test_wake_on_data_is_part_of_the_canonical_form() -> None:
    assert canonical_dict(BASE)["controller"]["wake_on_data"] is True  # the default cell declares it
    raw = default_raw()
    del raw["controller"]["wake_on_data"]
    absent = CellConfig.model_validate(raw)
    assert canonical_dict(absent)["controller"]["wake_on_data"] is False  # absent: the default, written out
    raw["controller"]["wake_on_data"] = False
    assert config_checksum(CellConfig.model_validate(raw)) == config_checksum(absent)
    raw["controller"]["wake_on_data"] = True  # a different controller stage in the budget: a different cell
    assert config_checksum(CellConfig.model_validate(raw)) == BASE_SUM != config_checksum(absent)


def test_default_cell_checksum() -> None:
    # Pinned: a change here changes every --expect-checksum in use; update docs/budget.md with it.
    # (eea777cf before controller.wake_on_data joined the model; 40027e0d before the default cell woke on
    # data with measured worst step, transport latency and robot receive time; be976f22 before the robot
    # table declared state_period_ms and carried speed_tolerance_mps and overspeed_grace_ms; a4edb165 before
    # the default cell declared model = "yolox_nano".)
    assert config_checksum(load_config(DEFAULT_CELL))[0] == "c316db8d"


@pytest.mark.parametrize("value", [0.0, -0.0])
def test_negative_zero_is_zero(value: float) -> None:
    raw = default_raw()
    raw["sensors"]["cam0"]["mounting"]["roll_deg"] = value
    assert config_checksum(CellConfig.model_validate(raw)) == BASE_SUM


def test_person_hold_off_is_left_out_of_the_canonical_form() -> None:
    # the cells written before the key existed keep their checksum; an enabled hold is part of it
    off = CellConfig.model_validate(_without_hold())
    assert "person_hold_ms" not in canonical_dict(off)["controller"]
    raw = _without_hold()
    raw["controller"]["person_hold_ms"] = 0.0
    assert config_checksum(CellConfig.model_validate(raw)) == config_checksum(off)
    raw["controller"]["person_hold_ms"] = 150.0
    held = CellConfig.model_validate(raw)
    assert canonical_dict(held)["controller"]["person_hold_ms"] == 150.0
    assert config_checksum(held) != config_checksum(off)
    again = config_from_canonical(canonical_json(held))
    assert again == held and config_checksum(again) == config_checksum(held)
    assert config_from_canonical(canonical_json(off)).controller.person_hold_ms == 0.0
