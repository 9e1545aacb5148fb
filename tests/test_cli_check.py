"""`cobotguard check`: exit codes, the budget table, JSON keys, checksum expectation, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from config_support import DEFAULT_CELL, EXAMPLES, default_raw, to_toml

from cobotguard.hil.cli.main import main
from cobotguard.safety.checksum import config_checksum
from cobotguard.safety.config_load import load_config


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "path", [DEFAULT_CELL, EXAMPLES / "ur5e_single_camera.toml", EXAMPLES / "two_camera_cell.toml"]
)
def test_safe_cells_exit_0(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, _ = run_check(capsys, path)
    assert code == 0
    assert "verdict                      SAFE" in out
    short, _ = config_checksum(load_config(path))
    assert short in out


def test_table_shows_every_term_with_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_check(capsys, DEFAULT_CELL)
    for symbol, source in [
        ("T_frames[cam0]", "sensors.cam0.frame_rate_hz"),
        ("T_cycle", "controller.wake_on_data"),
        ("T_frame", "link.baud"),
        ("T_stop_input", "robot.stop_input_reaction_ms"),
        ("S_p", "S_h + S_r + S_s + C + Z_d + Z_r"),
        ("C", "separation.intrusion_distance_m"),
    ]:
        line = next(line for line in out.splitlines() if line.startswith(symbol + " "))
        assert source in line
    assert "253.653 ms" in out
    assert "0.320 ms  command frame on the line (32 B x 10 bit / 1000000 baud)" in out
    assert "max safe robot speed" in out


def test_unsafe_example_exits_1_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, EXAMPLES / "unsafe_full_speed.toml")
    assert code == 1
    assert "verdict                      UNSAFE" in out
    assert "reason: zone protective: 1.600 m from the hazard region, needs 1.673 m (short by 0.073 m)" in out
    assert "highest safe robot speed with these zones: 0.5000 m/s" in out


def test_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, DEFAULT_CELL, "--json")
    assert code == 0
    data = json.loads(out)
    short, long = config_checksum(load_config(DEFAULT_CELL))
    assert data["checksum"] == short and data["checksum_sha256"] == long
    assert data["verdict"] == "safe"
    assert data["reaction_time_s"] == pytest.approx(0.253653, abs=1e-6)
    assert data["protective_separation_m"] == pytest.approx(1.644, abs=1e-3)
    assert data["max_safe_robot_speed_mps"] == 0.25
    assert [z["name"] for z in data["zones"]] == ["protective", "warning"]
    assert data["zones"][0]["margin_m"] == pytest.approx(0.084, abs=1e-3)
    assert data["zones"][1]["margin_m"] is None  # warning zones are not credited
    assert all({"symbol", "value", "unit", "source"} <= set(t) for t in data["terms"])


def test_json_unsafe(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, EXAMPLES / "unsafe_full_speed.toml", "--json")
    data = json.loads(out)
    assert code == 1 and data["verdict"] == "unsafe" and data["reasons"]
    assert data["zones"][0]["margin_m"] < 0


def test_expected_checksum(capsys: pytest.CaptureFixture[str]) -> None:
    short, long = config_checksum(load_config(DEFAULT_CELL))
    assert run_check(capsys, DEFAULT_CELL, "--expect-checksum", short)[0] == 0
    assert run_check(capsys, DEFAULT_CELL, "--expect-checksum", long)[0] == 0
    code, out, _ = run_check(capsys, DEFAULT_CELL, "--expect-checksum", "deadbeef")
    assert code == 1
    assert f"checksum {short}" in out and "differs from the expected deadbeef" in out


def test_invalid_config_exits_2_one_line_per_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = default_raw()
    raw["controller"]["worst_step_ms"] = -1.0
    raw["zones"]["warning"]["polygon_m"] = [[0, 0], [1, 1], [1, 0], [0, 1]]
    path = tmp_path / "cell.toml"
    path.write_text(to_toml(raw))
    code, out, err = run_check(capsys, path)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{path}: controller.worst_step_ms: got -1.0; expected")
    assert lines[1].startswith(f"{path}: zones.warning.polygon_m: invalid polygon (Self-intersection")
    assert lines[-1] == "cobotguard check: 2 problem(s); configuration invalid"
    assert "Traceback" not in err


def test_invalid_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cell.toml"
    path.write_text("[robot\n")
    code, out, _ = run_check(capsys, path, "--json")
    assert code == 2
    data = json.loads(out)
    assert data["verdict"] == "invalid"
    assert data["problems"][0].startswith(f"{path}: line 1, column")


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_check(capsys, tmp_path / "nope.toml")
    assert code == 2 and "cannot read the file" in err and "Traceback" not in err
