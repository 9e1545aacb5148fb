"""The plumbing every subcommand shares: exit codes, the configuration loader's errors, the error line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from config_support import DEFAULT_CELL, default_raw, to_toml

from cobotguard.hil.cli import check
from cobotguard.hil.cli.common import ExitCode
from cobotguard.hil.cli.main import main

# every subcommand that reads a cell configuration: its argv around the file, and how its invalid input ends
WITH_CONFIG: dict[str, tuple[Callable[[str], list[str]], str]] = {
    "check": (lambda cfg: ["check", cfg], "configuration invalid"),
    "run": (
        lambda cfg: ["run", cfg, "--robot-port", "inproc://r", "--sensor-port", "inproc://s"],
        "configuration invalid",
    ),
    "hil": (lambda cfg: ["hil", "--config", cfg], "configuration invalid"),
    "detect": (lambda cfg: ["detect", "--config", cfg, "photo.png"], "configuration invalid"),
    "calibrate": (lambda cfg: ["calibrate", cfg], "nothing measured"),
}


def test_the_numeric_contract() -> None:
    """The numbers README.md and docs/ promise; each subcommand's words for them are the same numbers."""
    assert [ExitCode.OK, ExitCode.FAILED, ExitCode.INVALID_INPUT, ExitCode.INTERRUPTED] == [0, 1, 2, 130]
    assert ExitCode.SAFE == ExitCode.IDENTICAL == 0
    assert ExitCode.UNSAFE == ExitCode.DEADLINE_MISSED == ExitCode.DIVERGED == 1


def _run_with_config(
    capsys: pytest.CaptureFixture[str], command: str, path: Path
) -> tuple[int, str, list[str]]:
    argv, _ = WITH_CONFIG[command]
    code = main(argv(str(path)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


def _assert_one_problem(command: str, out: str, err: list[str], first: str) -> None:
    """One line naming the file first, then the count in the subcommand's error form; nothing on stdout."""
    _, outcome = WITH_CONFIG[command]
    assert out == ""
    assert len(err) == 2, err
    assert err[0].startswith(first), err[0]
    assert err[1] == f"cobotguard {command}: 1 problem(s); {outcome}"


@pytest.mark.parametrize("command", WITH_CONFIG)
def test_a_missing_configuration_exits_2_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    path = tmp_path / "absent.toml"
    code, out, err = _run_with_config(capsys, command, path)
    assert code == ExitCode.INVALID_INPUT
    _assert_one_problem(command, out, err, f"{path}: cannot read the file (")
    assert "expected a readable TOML file" in err[0]


@pytest.mark.parametrize("command", WITH_CONFIG)
def test_a_toml_syntax_error_exits_2_naming_the_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    path = tmp_path / "cell.toml"
    path.write_text('schema_version = 1\nname = "x"\n[robot\nmax_speed_mps = 0.5\n')
    code, out, err = _run_with_config(capsys, command, path)
    assert code == ExitCode.INVALID_INPUT
    _assert_one_problem(command, out, err, f"{path}: line 3, column ")
    assert "TOML syntax error" in err[0] and "expected valid TOML" in err[0]


@pytest.mark.parametrize("command", WITH_CONFIG)
def test_an_unknown_key_exits_2_naming_the_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    raw = default_raw()
    raw["robot"]["max_speed"] = 0.5
    path = tmp_path / "cell.toml"
    path.write_text(to_toml(raw))
    code, out, err = _run_with_config(capsys, command, path)
    assert code == ExitCode.INVALID_INPUT
    _assert_one_problem(command, out, err, f"{path}: robot.max_speed: unknown key")
    assert "max_speed_mps" in err[0]  # what was expected


@pytest.mark.parametrize(
    "argv",
    [
        [
            "run",
            str(DEFAULT_CELL),
            "--robot-port",
            "inproc://r",
            "--sensor-port",
            "inproc://s",
            "--duration",
            "0",
        ],
        ["hil", "--scenarios", "nope"],
        ["hil", "--trace-dir", "/dev/null/traces"],
        ["report", "absent.cgtrace"],
        ["demo", "--duration", "0"],
        ["detect", "--threads", "0", "photo.png"],
        ["replay", "absent.cgtrace"],
    ],
    ids=lambda argv: " ".join(argv[:1] + argv[-2:]),
)
def test_one_error_line_in_one_form(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> None:
    """Invalid input that is not a list of problems is one `cobotguard SUBCOMMAND: ...` line, exit 2."""
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == ExitCode.INVALID_INPUT
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"cobotguard {argv[0]}: ") and len(line) > len(f"cobotguard {argv[0]}: ")


def test_ctrl_c_exits_130_saying_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(check, "run", interrupted)
    assert main(["check", str(DEFAULT_CELL)]) == ExitCode.INTERRUPTED == 130
    assert capsys.readouterr().err == "cobotguard check: interrupted\n"
