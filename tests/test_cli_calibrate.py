"""`cobotguard calibrate`: the JSON result's structure and invariants, the proposal rule, invalid input.

One short real measurement (2 s on the default cell) is shared by the tests that read its result; they
assert relations between the numbers (proposal >= observed maximum, rounding, the budget's arithmetic),
never how fast anything was.
"""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from config_support import DEFAULT_CELL, default_raw, to_toml

from cobotguard.hil.cli import calibrate
from cobotguard.hil.cli.main import main
from cobotguard.safety.budget import reaction_stages, reaction_time_ns
from cobotguard.safety.config import ns
from cobotguard.safety.config_load import load_config

QUANTILE_ORDER = ["min", "median", "p99", "p99.9", "p99.99", "max"]


def run_calibrate(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["calibrate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def measured() -> tuple[int, dict[str, Any]]:
    """One 2-second calibration of the default cell, as JSON (module scope: it compiles the loop once)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["calibrate", str(DEFAULT_CELL), "--seconds", "2", "--json"])
    return code, json.loads(out.getvalue())


def test_json_has_the_distribution_the_fit_the_proposal_and_both_budgets(
    measured: tuple[int, dict[str, Any]],
) -> None:
    code, r = measured
    for key in ("config", "cell", "checksum", "seconds", "load", "cpu", "peer_cpus", "measured_with",
                "warnings", "steps", "latency_ns", "exceedance_per_step", "fit", "proposal", "budget",
                "verdict"):  # fmt: skip
        assert key in r, key
    assert r["seconds"] == 2 and r["load"] is None and r["exceedance_per_step"] == 1e-9
    assert r["measured_with"]["controller.worst_step_ms"]["measured_with"] == calibrate.MEASURE_WORST_STEP_MS
    steps = r["steps"]
    assert steps["count"] == sum(steps["by_trigger"].values()) > 0
    assert steps["by_trigger"]["tick"] > 0
    assert steps["by_trigger"]["data"] > 0  # the default cell wakes on data: frames are stepped on arrival
    for key in ("overruns", "skipped_releases", "trace_dropped", "not_running", "reset_presses"):
        assert isinstance(steps[key], int) and steps[key] >= 0
    lat = r["latency_ns"]
    values = [lat[k] for k in QUANTILE_ORDER]
    assert values == sorted(values) and values[0] > 0
    assert set(r["budget"]) == {"configured", "proposed"}
    assert code == (0 if r["verdict"] == "safe" else 1)
    assert (r["verdict"] == "safe") == (r["budget"]["proposed"]["verdict"] == "safe")


def test_proposal_is_rounded_up_to_a_tenth_of_a_ms_and_never_below_the_observed_maximum(
    measured: tuple[int, dict[str, Any]],
) -> None:
    _, r = measured
    proposal = r["proposal"]["worst_step_ms"]
    assert round(proposal * 10) == pytest.approx(proposal * 10, abs=1e-9)
    observed = r["latency_ns"]["max"]
    assert ns(proposal) >= observed
    fit = r["fit"]
    if r["proposal"]["estimate"]:
        assert fit is not None and fit["usable"]
        basis = max(fit["return_level_ns"], observed)
    else:
        assert "no estimate" in r["proposal"]["method"]
        basis = calibrate.SAFETY_FACTOR * observed
    assert basis <= ns(proposal) <= basis + calibrate.RESOLUTION_NS  # the next 0.1 ms up
    assert r["budget"]["proposed"]["worst_step_ms"] == proposal


def test_budget_with_the_proposal_changes_t_r_by_the_controller_terms_only(
    measured: tuple[int, dict[str, Any]],
) -> None:
    _, r = measured
    cfg = load_config(DEFAULT_CELL)
    before, after = r["budget"]["configured"], r["budget"]["proposed"]
    assert before["reaction_time_ns"] == reaction_time_ns(cfg)
    assert before["worst_step_ms"] == cfg.controller.worst_step_ms
    assert set(before["controller_terms_ns"]) == {"T_cycle", "T_step"}
    change = sum(after["controller_terms_ns"].values()) - sum(before["controller_terms_ns"].values())
    assert after["reaction_time_ns"] == before["reaction_time_ns"] + change
    proposed_cfg = calibrate.with_worst_step(cfg, r["proposal"]["worst_step_ms"])
    assert after["reaction_time_ns"] == reaction_time_ns(proposed_cfg)
    terms = {s.symbol: s.ns for s in reaction_stages(proposed_cfg)}
    assert after["controller_terms_ns"] == {"T_cycle": terms["T_cycle"], "T_step": terms["T_step"]}
    for b in (before, after):
        assert b["max_safe_robot_speed_mps"] <= b["max_speed_mps"]
        assert b["verdict"] in ("safe", "unsafe", "invalid")


def test_text_output_names_the_proposal_and_both_budgets(measured: tuple[int, dict[str, Any]]) -> None:
    _, r = measured
    text = calibrate.render(r)
    assert f"proposal: controller.worst_step_ms = {r['proposal']['worst_step_ms']:g}" in text
    assert "measured with controller.worst_step_ms = 100" in text
    for row in ("T_r", "S_p (separation)", "highest safe speed", "verdict"):
        assert any(line.startswith(row) for line in text.splitlines()), row
    assert ("NO ESTIMATE" in text) == (not r["proposal"]["estimate"])


# -- the proposal rule, on made-up fits ------------------------------------------------------------------


def fake_fit(level_ns: float, usable: bool = True) -> SimpleNamespace:
    return SimpleNamespace(usable=usable, return_levels_ns={1e-9: level_ns})


def test_a_usable_fit_gives_its_return_level_rounded_up() -> None:
    lat = np.array([100_000, 250_000, 1_230_000], dtype=np.int64)
    p = calibrate.propose(lat, 1e-9, fake_fit(2_345_678.0))
    assert (p.worst_step_ms, p.estimate, p.return_level_ns) == (2.4, True, 2_345_678.0)


def test_a_fit_below_the_observed_maximum_gives_the_maximum_rounded_up() -> None:
    lat = np.array([100_000, 3_000_001], dtype=np.int64)
    p = calibrate.propose(lat, 1e-9, fake_fit(1_000_000.0))
    assert p.worst_step_ms == 3.1 and p.estimate and "observed maximum" in p.method


@pytest.mark.parametrize("estimate", [None, fake_fit(5e6, usable=False)])
def test_without_a_usable_fit_the_observed_maximum_times_the_safety_factor(estimate: Any) -> None:
    lat = np.array([100_000, 1_050_000], dtype=np.int64)
    p = calibrate.propose(lat, 1e-9, estimate)
    assert p.worst_step_ms == 2.1 and not p.estimate and "no estimate" in p.method


def test_measurement_copy_has_the_large_worst_step_and_a_valid_watchdog() -> None:
    cfg = load_config(DEFAULT_CELL)
    measured_cfg, changed = calibrate.measurement_config(cfg)
    assert measured_cfg.controller.worst_step_ms == calibrate.MEASURE_WORST_STEP_MS
    assert changed["controller.worst_step_ms"][:2] == (cfg.controller.worst_step_ms, 100.0)
    assert measured_cfg.link.command_watchdog_ms > cfg.controller.cycle_period_ms + 100.0
    assert measured_cfg.controller.robot_state_timeout_ms > cfg.robot.state_period_ms + 100.0
    assert set(changed) == {
        "controller.worst_step_ms", "link.command_watchdog_ms", "controller.robot_state_timeout_ms"
    }  # fmt: skip
    unchanged = measured_cfg.model_dump()
    unchanged["controller"]["worst_step_ms"] = cfg.controller.worst_step_ms
    unchanged["link"]["command_watchdog_ms"] = cfg.link.command_watchdog_ms
    unchanged["controller"]["robot_state_timeout_ms"] = cfg.controller.robot_state_timeout_ms
    assert unchanged == cfg.model_dump()


# -- invalid input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seconds", "0"], "--seconds"),
        (["--seconds", "nan"], "--seconds"),
        (["--exceedance", "1.5"], "--exceedance"),
        (["--exceedance", "0"], "--exceedance"),
        (["--cpu", "4096"], "--cpu"),
    ],
)
def test_invalid_options_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, out, err = run_calibrate(capsys, DEFAULT_CELL, *args)
    assert code == 2 and out == ""
    assert err.splitlines()[0].startswith(expected)
    assert "Traceback" not in err


def test_an_invalid_configuration_exits_2_naming_the_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    raw = default_raw()
    raw["controller"]["worst_step_ms"] = -1.0
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(raw))
    code, _, err = run_calibrate(capsys, path, "--seconds", "1")
    assert code == 2
    assert f"{path}: controller.worst_step_ms" in err


def test_a_missing_file_exits_2_and_json_says_invalid(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    code, out, _ = run_calibrate(capsys, tmp_path / "none.toml", "--json")
    assert code == 2
    result = json.loads(out)
    assert result["verdict"] == "invalid" and "none.toml" in result["problems"][0]


def test_load_without_stress_ng_exits_2_saying_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calibrate.shutil, "which", lambda name: None)
    code, _, err = run_calibrate(capsys, DEFAULT_CELL, "--load")
    assert code == 2 and "stress-ng is not installed" in err
