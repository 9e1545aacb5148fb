"""The `cobotguard` command exposes every subcommand."""

import pytest

from cobotguard.hil.cli.main import SUBCOMMANDS, main


def test_every_subcommand_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("check", "run", "hil", "report", "demo", "detect", "replay"):
        assert name in SUBCOMMANDS
        assert name in out
