"""The examples in examples/ run and do what docs/integration.md says they do (so the docs cannot rot)."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cobotguard.safety.config_load import load_config
from cobotguard.safety.reasons import CommandKind, Reason, StopCategory
from cobotguard.safety.records import COMMAND_DTYPE, ROBOT_STATE_DTYPE
from cobotguard.safety.replay import replay
from cobotguard.safety.timing import sensor_max_age_ns
from cobotguard.safety.trace import read_trace

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MS = 1_000_000
STOPS = (CommandKind.PROTECTIVE_STOP, CommandKind.FAULT_STOP)


def load_example(name: str) -> ModuleType:
    """Import examples/NAME.py as a module (registered, so its dataclasses resolve their module)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def minimal() -> ModuleType:
    return load_example("minimal_integration")


@pytest.fixture(scope="module")
def adapter() -> ModuleType:
    return load_example("custom_robot_adapter")


@pytest.fixture(scope="module")
def minimal_run(minimal: ModuleType, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    trace = tmp_path_factory.mktemp("minimal") / "run.cgtrace"
    out = io.StringIO()
    changes = minimal.run_example(trace_path=trace, out=out)
    return changes, trace, out.getvalue()


# -- examples/minimal_integration.py ---------------------------------------------------------------------


def test_minimal_nothing_moves_before_the_first_reset(minimal, minimal_run) -> None:  # type: ignore[no-untyped-def]
    changes, _, _ = minimal_run
    first_reset = minimal.RESET_AT_NS[0]
    before = [c for c in changes if c.t_ns < first_reset]
    assert before and all(c.kind == CommandKind.FAULT_STOP for c in before)
    assert before[-1].reason == Reason.NOT_ARMED
    assert changes[len(before)].kind == CommandKind.RUN


def test_minimal_person_walking_in_slows_then_stops_the_robot(minimal_run) -> None:  # type: ignore[no-untyped-def]
    changes, _, _ = minimal_run
    kinds = [c.kind for c in changes]
    slow = kinds.index(CommandKind.SLOW)
    stop = kinds.index(CommandKind.PROTECTIVE_STOP)
    assert changes[slow].reason == Reason.PERSON_IN_WARNING_ZONE
    assert slow < stop
    assert changes[stop].reason in (Reason.PERSON_IN_PROTECTIVE_ZONE, Reason.SEPARATION_BELOW_SP)
    assert changes[stop].stop_category == StopCategory.CAT1
    # the person was still outside the protective zone (|x| > 1.95 m) when the stop was commanded
    assert changes[stop].person_xy is not None and changes[stop].person_xy[0] < -1.95


def test_minimal_no_restart_without_a_reset_edge(minimal, minimal_run) -> None:  # type: ignore[no-untyped-def]
    changes, _, _ = minimal_run
    second_reset = minimal.RESET_AT_NS[1]
    stop = next(i for i, c in enumerate(changes) if c.kind == CommandKind.PROTECTIVE_STOP)
    waiting = [c for c in changes[stop:] if c.t_ns < second_reset]
    assert all(c.kind == CommandKind.PROTECTIVE_STOP for c in waiting)
    assert waiting[-1].reason == Reason.RESTART_INTERLOCK
    after = next(c for c in changes if c.t_ns >= second_reset)
    assert after.kind == CommandKind.RUN


def test_minimal_silent_camera_fault_stops_within_its_budgeted_age(minimal, minimal_run) -> None:  # type: ignore[no-untyped-def]
    changes, _, _ = minimal_run
    last = changes[-1]
    assert last.kind == CommandKind.FAULT_STOP and last.reason == Reason.SENSOR_STALE
    cfg = load_config(minimal.DEFAULT_CELL)
    max_age = sensor_max_age_ns(next(iter(cfg.sensors.values())))
    assert minimal.CAMERA_STOPS_AT_NS < last.t_ns <= minimal.CAMERA_STOPS_AT_NS + max_age


def test_minimal_trace_replays_identically(minimal_run) -> None:  # type: ignore[no-untyped-def]
    _, trace_path, out = minimal_run
    trace = read_trace(trace_path)
    assert trace.complete and trace.header["producer"] == "examples/minimal_integration.py"
    assert replay(trace).identical
    assert "checksum" in out and "SENSOR_STALE" in out


def test_minimal_refuses_to_arm_with_another_checksum(minimal, capsys) -> None:  # type: ignore[no-untyped-def]
    assert minimal.main(["--expect-checksum", "00000000"]) == 2
    assert "CHECKSUM_MISMATCH" in capsys.readouterr().err


def test_minimal_invalid_cell_exits_2_naming_the_file(minimal, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 1\n")
    assert minimal.main([str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


# -- examples/custom_robot_adapter.py --------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter_run(adapter: ModuleType):  # type: ignore[no-untyped-def]
    return adapter.run_example(out=io.StringIO())


def test_adapter_resumes_only_on_reset_edges(adapter, adapter_run) -> None:  # type: ignore[no-untyped-def]
    steps, port = adapter_run
    resumes = [s.t_ms for s in steps for call, _ in s.vendor_calls if call == "resume"]
    assert len(resumes) >= 3  # after start-up, after the person, after the vendor error
    for t in resumes:
        assert any(reset <= t < reset + 5 for reset in adapter.RESETS_MS)  # the edge's cycle, or the next
    assert port.arm.stopped == "stop1"  # the final stop of close(), category 1 -> "stop1"


def test_adapter_maps_a_protective_stop_to_the_vendor_stop_mode(adapter, adapter_run) -> None:  # type: ignore[no-untyped-def]
    steps, _ = adapter_run
    stop = next(s for s in steps if s.kind == CommandKind.PROTECTIVE_STOP)
    assert stop.reason in (Reason.SEPARATION_BELOW_SP, Reason.PERSON_IN_PROTECTIVE_ZONE)
    assert ("stop", "stop1") in stop.vendor_calls
    assert adapter.PERSON_MS[0] <= stop.t_ms <= adapter.PERSON_MS[0] + 200


def test_adapter_vendor_error_fault_stops_until_reset(adapter, adapter_run) -> None:  # type: ignore[no-untyped-def]
    steps, _ = adapter_run
    i = next(i for i, s in enumerate(steps) if s.reason == Reason.LINK_LOSS)
    fault = steps[i]
    assert fault.kind == CommandKind.FAULT_STOP
    assert adapter.VENDOR_ERROR_MS <= fault.t_ms < adapter.VENDOR_ERROR_MS + 10
    assert ("stop", "stop0") in fault.vendor_calls
    first_reset_after = min(r for r in adapter.RESETS_MS if r > fault.t_ms)
    moving = [s for s in steps[i:] if s.kind in (CommandKind.RUN, CommandKind.SLOW)]
    assert moving and moving[0].t_ms >= first_reset_after  # no motion before an operator reset
    assert all(s.kind == CommandKind.FAULT_STOP for s in steps[i:] if s.t_ms < first_reset_after)


def _command(kind: CommandKind, limit: float = 0.0, category: int = 1) -> np.ndarray:
    c = np.zeros(1, dtype=COMMAND_DTYPE)
    c[0]["kind"], c[0]["speed_limit_mps"], c[0]["stop_category"] = int(kind), limit, category
    return c


def test_adapter_latches_a_vendor_error_and_forwards_no_motion(adapter) -> None:  # type: ignore[no-untyped-def]
    arm = adapter.FakeVendorArm()
    port = adapter.VendorRobotPort(arm, clock_ns=lambda: 5)
    port.send_command(_command(CommandKind.RUN, 0.2), 1, 0)
    assert arm.stopped is None and arm.speed_mps == pytest.approx(0.2)
    arm.fail_on.add("set_speed_limit")
    port.send_command(_command(CommandKind.SLOW, 0.1), 2, 0)
    assert arm.stopped == "stop0" and arm.speed_mps == 0.0
    beats = arm.heartbeats
    for seq in range(3, 6):
        port.send_command(_command(CommandKind.RUN, 0.2), seq, 0)
        assert port.take_fault() == Reason.LINK_LOSS  # every cycle, not once
    assert arm.stopped == "stop0" and arm.heartbeats == beats  # no motion, and the robot watchdog starves
    port.reset_link(0)
    assert port.take_fault() == 0
    port.send_command(_command(CommandKind.RUN, 0.2), 6, 0)
    assert arm.stopped is None and arm.calls[-2:] == [("set_speed_limit", 0.2), ("resume", None)]


def test_adapter_unknown_kind_or_category_stops_category_0(adapter) -> None:  # type: ignore[no-untyped-def]
    arm = adapter.FakeVendorArm()
    port = adapter.VendorRobotPort(arm)
    port.send_command(_command(CommandKind.RUN, 0.2), 1, 0)
    port.send_command(_command(CommandKind.PROTECTIVE_STOP, category=7), 2, 0)
    assert arm.stopped == "stop0"
    port.send_command(_command(CommandKind.RUN, 0.2), 3, 0)
    bogus = _command(CommandKind.RUN, 0.2)
    bogus[0]["kind"] = 9
    port.send_command(bogus, 4, 0)
    assert arm.stopped == "stop0"


def test_adapter_state_read_error_gives_no_state_and_a_fault(adapter) -> None:  # type: ignore[no-untyped-def]
    arm = adapter.FakeVendorArm()
    port = adapter.VendorRobotPort(arm, clock_ns=lambda: 7)
    state = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    assert port.receive_state(3, state) and state[0]["t_received_ns"] == 7 and state[0]["at_rest"] == 1
    arm.fail_on.add("tcp_speed")
    assert not port.receive_state(4, state)
    assert port.take_fault() == Reason.LINK_LOSS and "robot state" in port.last_error


# -- the documentation follows the code ------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_reason_is_explained_in_the_integration_guide() -> None:
    table = (DOCS / "integration.md").read_text(encoding="utf-8")
    missing = [r.name for r in Reason if f"`{r.name}` ({int(r)})" not in table]
    assert not missing, f"docs/integration.md section 9 lacks rows for {missing}"


def test_every_health_flag_is_explained_in_the_sensor_page() -> None:
    from cobotguard.safety.reasons import HealthFlag

    text = (DOCS / "sensor.md").read_text(encoding="utf-8")
    missing = [f.name for f in HealthFlag if f.value and f"`{f.name}` ({int(f)})" not in text]
    assert not missing, f"docs/sensor.md lacks {missing}"


def test_api_reference_shows_every_subcommand_and_option() -> None:
    import argparse

    from cobotguard.hil.cli.main import SUBCOMMANDS, build_parser

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    help_part = text[text.index("<!-- help:begin -->") : text.index("<!-- help:end -->")]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in SUBCOMMANDS:
        assert f"### `cobotguard {name} --help`" in help_part, f"docs/api.md: no --help of {name}"
        section = help_part.split(f"### `cobotguard {name} --help`", 1)[1].split("### ", 1)[0]
        options = [o for a in sub.choices[name]._actions for o in a.option_strings if o.startswith("--")]
        missing = [o for o in options if o not in section]
        assert not missing, f"docs/api.md: `cobotguard {name} --help` is out of date, lacks {missing}"


# -- the documentation's numbers -------------------------------------------------------------------------

NUMBER_DOCS = [EXAMPLES.parent / "docs" / name for name in ("integration.md", "trace.md", "hil.md")]
PLACEHOLDER_CHECKSUM = "1a2b3c4d"  # the docs' stand-in for "the checksum `check` printed for your cell"


def test_docs_quote_no_stale_checksum_or_budget() -> None:
    """Checksums in the docs are the placeholder or the default cell's own; the HIL example's budget
    column is the default cell's T_r (both change whenever the default cell does)."""
    import re

    from cobotguard.safety.budget import reaction_time_ns
    from cobotguard.safety.checksum import config_checksum

    cfg = load_config(EXAMPLES.parent / "hil" / "defaults" / "cell.toml")
    allowed = {PLACEHOLDER_CHECKSUM, config_checksum(cfg)[0]}
    budget = f"{round(reaction_time_ns(cfg) / 1e6)} ms"
    for doc in NUMBER_DOCS:
        text = doc.read_text()
        quoted = re.findall(r"(?:--expect-checksum |expected_checksum=\")([0-9a-fA-F]{8})\b", text)
        assert set(quoted) <= allowed, f"{doc.name}: checksums {set(quoted) - allowed} are stale"
        for row in re.findall(r"(?m)^\S+\s+(?:scenario|fault)\s+(?:PASS|FAIL)\b.*$", text):
            assert budget in row, f"{doc.name}: example row {row!r} does not show T_r {budget}"
