"""Replay: a recorded run replays identically; a changed record or a changed step is found; bad input is 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from loop_support import MS, ScriptedRobot, ScriptedSensor, make_cell

from cobotguard.hil.cli.main import main
from cobotguard.safety.clock import SimulatedClock
from cobotguard.safety.executor import Controller, default_core
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.replay import ReplayError, replay
from cobotguard.safety.trace import TraceWriter, read_trace

START_NS = 1_000 * MS


def _walk_in(t: int) -> list[tuple[float, float]]:
    """From 150 ms a person walks at 1.6 m/s from (4, 2.5) to (1, 2.5) (warning area: slow), then to
    (1, 0.2) (protective zone: stop); a second person stands far away the whole time."""
    walked = max(0.0, (t - START_NS - 150 * MS) / 1e9 * 1.6)
    leg1 = min(walked, 3.0)
    leg2 = min(max(walked - 3.0, 0.0), 2.3)
    return [(4.0 - leg1, 2.5 - leg2), (-4.0, 0.0)]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace of a run: start-up, reset, run, slow, stop, a link fault, another reset."""
    path = tmp_path_factory.mktemp("replay") / "run.cgtrace"
    clock = SimulatedClock(START_NS)
    sensor = ScriptedSensor(clock, persons=_walk_in)
    robot = ScriptedRobot(clock)
    controller = Controller(make_cell(), sensor, robot, trace_path=path, clock=clock, realtime=False)
    controller.run(duration_ns=20 * MS)
    controller.press_reset()
    controller.run(duration_ns=4000 * MS)
    sensor.fault = int(Reason.LINK_CORRUPTION)
    controller.run(duration_ns=10 * MS)
    controller.press_reset()
    controller.run(duration_ns=100 * MS)
    controller.close()
    kinds = set(robot.kinds())
    assert {CommandKind.RUN, CommandKind.SLOW, CommandKind.PROTECTIVE_STOP, CommandKind.FAULT_STOP} <= kinds
    return path


def _rewrite(src: Path, dst: Path, edit: object) -> None:
    trace = read_trace(src)
    streams = {name: arr.copy() for name, arr in trace.streams.items()}
    edit(streams)  # type: ignore[operator]
    with TraceWriter(dst, trace.header, {n: a.dtype for n, a in streams.items()}) as writer:
        for name, arr in streams.items():
            writer.write(name, arr)


@pytest.mark.requirement("SR-EVD-2")
def test_a_recorded_run_replays_identically(recorded: Path) -> None:
    result = replay(read_trace(recorded))
    assert result.identical
    assert result.cycles == len(read_trace(recorded).streams["cycles"])


@pytest.mark.requirement("SR-EVD-2")
def test_a_changed_command_is_the_first_divergence(recorded: Path, tmp_path: Path) -> None:
    def edit(streams: dict[str, np.ndarray]) -> None:
        streams["cycles"]["command"]["reason"][700] += 1

    _rewrite(recorded, tmp_path / "t", edit)
    result = replay(read_trace(tmp_path / "t"))
    assert result.divergence is not None
    assert result.divergence.index == 700
    assert result.divergence.field == "command.reason"
    assert result.divergence.replayed == result.divergence.recorded - 1


def test_a_changed_input_diverges_where_it_matters(recorded: Path, tmp_path: Path) -> None:
    def edit(streams: dict[str, np.ndarray]) -> None:
        streams["cycles"]["overrun"][900] = 1

    _rewrite(recorded, tmp_path / "t", edit)
    d = replay(read_trace(tmp_path / "t")).divergence
    assert d is not None and d.index == 900 and d.field.startswith("command.")


@pytest.mark.requirement("SR-EVD-2")
def test_a_different_step_is_found(recorded: Path) -> None:
    real = default_core()

    def step_that_never_slows(
        params: np.ndarray,
        state: np.ndarray,
        detections: np.ndarray,
        robot: np.ndarray,
        reset: int,
        overrun: int,
        now_ns: int,
        command: np.ndarray,
    ) -> None:
        real.step(params, state, detections, robot, reset, overrun, now_ns, command)
        if command[0]["kind"] == CommandKind.SLOW:
            command[0]["kind"] = CommandKind.RUN

    core = type(real)(real.build_params, real.new_state, real.warm_up, step_that_never_slows)
    d = replay(read_trace(recorded), core=core).divergence
    assert d is not None and d.field == "command.kind"
    assert d.recorded == CommandKind.SLOW and d.replayed == CommandKind.RUN


def test_an_altered_embedded_config_is_refused(recorded: Path, tmp_path: Path) -> None:
    trace = read_trace(recorded)
    trace.header["config"]["controller"]["release_hysteresis_m"] = 0.0
    with pytest.raises(ReplayError, match="altered"):
        replay(trace)


def test_cli_exit_codes(recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(recorded)]) == 0
    assert "identical" in capsys.readouterr().out

    def edit(streams: dict[str, np.ndarray]) -> None:
        streams["cycles"]["command"]["kind"][1200] = CommandKind.PROTECTIVE_STOP

    changed = tmp_path / "changed"
    _rewrite(recorded, changed, edit)
    assert main(["replay", str(changed)]) == 1
    out = capsys.readouterr().out
    assert "first divergence at cycle" in out and "command.kind" in out and "RUN" in out

    torn = tmp_path / "torn"
    torn.write_bytes(recorded.read_bytes()[:-50])
    assert main(["replay", str(torn)]) == 3
    captured = capsys.readouterr()
    tear = read_trace(torn, allow_incomplete=True).tear
    assert tear is not None and tear.last_cycle is not None
    assert str(torn) in captured.err and "Traceback" not in captured.err
    assert f"torn at byte {tear.offset}" in captured.err and "torn END chunk" in captured.err
    assert f"the last intact cycle is {tear.last_cycle}" in captured.err
    assert f"{tear.records['cycles']} cycles replayed, identical" in captured.out
    assert main(["replay", "--allow-incomplete", str(torn)]) == 0
    capsys.readouterr()
    assert main(["replay", "--allow-incomplete", "--json", str(torn)]) == 0
    assert json.loads(capsys.readouterr().out)["tear"]["offset"] == tear.offset

    assert main(["replay", str(tmp_path / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_json_output(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["replay", "--json", str(recorded)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identical"] is True and out["cycles_replayed"] > 1000


def test_lost_records_cannot_be_replayed(recorded: Path, tmp_path: Path) -> None:
    trace = read_trace(recorded)
    trace.dropped["cycles"] = 3
    with pytest.raises(ReplayError, match="lost"):
        replay(trace)
