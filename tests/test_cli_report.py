"""`cobotguard report` on synthetic traces with known answers, and its handling of damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cobotguard.hil.cli.main import main
from cobotguard.hil.report.stages import stages_from_trace
from cobotguard.hil.sim import example_config
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.trace import (
    CYCLE_DTYPE,
    DETECTION_TRACE_DTYPE,
    TraceWriter,
    header_for_config,
    read_trace,
)

US = 1_000
MS = 1_000_000

# the example cell: T_exposure 10 ms, T_inference 5 ms, T_transport 2 ms, T_cycle 1 ms, T_step 0.2 ms,
# T_frame 24 B x 10 bit / 1 Mbaud = 0.24 ms, T_receiver 1 ms, T_stop_input 24 ms, T_s(1 m/s) 380 ms
CFG = example_config()
HEADER = header_for_config(CFG, "test")
CHECKSUM = HEADER["config_checksum"]

STALL_CYCLE = 1000  # wakes 30 ms late; the loop then skips the releases it slept through
STALL_NS = 30 * MS
STOP_CYCLE = 1500  # a person triggers a protective stop here
REST_AFTER_CYCLES = 150  # the robot reports standstill 150 cycles later
FRAME_CYCLES = np.arange(20, 2000, 33)  # cycles that take in a new frame


def synthetic_streams(stall: bool = True, jitter: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A 1 ms loop with fixed stage times, one 30 ms stall, frames every 33 cycles, one person stop.

    Every recorded cycle: wake 50 µs after release, step from +60 to +80 µs, command written at +90 µs.
    The robot's state in cycle k acknowledges cycle k-1's command (by its link number) and was sent 300 µs
    after it was written.
    Each frame: exposure, inference done 8 ms later, received 0.2 ms after that and 0.1 ms before the
    release of the cycle that takes it in. With `jitter`, each wake-up is 0..200 µs later (seeded).
    """
    releases = np.arange(2000, dtype=np.int64)
    if stall:
        releases = releases[(releases <= STALL_CYCLE) | (releases > STALL_CYCLE + 30)]
    c = np.zeros(releases.size, dtype=CYCLE_DTYPE)
    c["cycle"] = releases
    c["t_scheduled_ns"] = releases * MS
    c["t_wake_ns"] = c["t_scheduled_ns"] + 50 * US
    c["t_wake_ns"][releases == STALL_CYCLE] += STALL_NS if stall else 0
    if jitter:
        c["t_wake_ns"] += np.random.default_rng(5).integers(0, 200 * US, size=releases.size)
    c["t_inputs_ns"] = c["t_wake_ns"] + 5 * US
    c["now_ns"] = c["t_inputs_ns"]
    c["t_step_start_ns"] = c["t_wake_ns"] + 10 * US
    c["t_step_end_ns"] = c["t_step_start_ns"] + 20 * US
    c["t_command_written_ns"] = c["t_step_end_ns"] + 10 * US
    c["command_seq"] = np.arange(1, releases.size + 1)  # the executor counts its commands from 1
    stopped = releases >= STOP_CYCLE
    c["command"]["kind"] = np.where(stopped, CommandKind.PROTECTIVE_STOP, CommandKind.RUN)
    c["command"]["reason"] = np.where(stopped, Reason.SEPARATION_BELOW_SP, Reason.NONE)
    # the robot reports the link's number of the command it got: the link counts commands from 0
    c["robot"]["last_command_seq"][1:] = np.arange(releases.size - 1)
    c["robot"]["t_sent_ns"][1:] = c["t_command_written_ns"][:-1] + 300 * US
    c["robot"]["at_rest"] = releases >= STOP_CYCLE + 1 + REST_AFTER_CYCLES
    c["robot"]["speed_mps"] = np.where(c["robot"]["at_rest"] == 1, 0.0, 1.0)

    d = np.zeros(FRAME_CYCLES.size, dtype=DETECTION_TRACE_DTYPE)
    d["cycle"] = FRAME_CYCLES
    d["sensor_index"] = 0
    d["frame_counter"] = np.arange(FRAME_CYCLES.size) % 256
    d["t_received_ns"] = FRAME_CYCLES * MS - 100 * US
    d["t_inference_done_ns"] = d["t_received_ns"] - 200 * US
    d["t_sent_ns"] = d["t_inference_done_ns"] + 100 * US
    d["t_exposure_ns"] = d["t_inference_done_ns"] - 8 * MS
    return c, d


def write_trace(path: Path, stall: bool = True, close: bool = True, jitter: bool = False) -> Path:
    cycles, detections = synthetic_streams(stall, jitter)
    writer = TraceWriter(path, HEADER, {"cycles": CYCLE_DTYPE, "detections": DETECTION_TRACE_DTYPE})
    writer.write("cycles", cycles)
    writer.write("detections", detections)
    if close:
        writer.close()
    else:
        writer.flush()
    return path


def test_stages_have_the_known_latencies(tmp_path: Path) -> None:
    t = stages_from_trace(read_trace(write_trace(tmp_path / "a.cgtrace")))
    assert t.checksum == CHECKSUM
    assert t.frames == FRAME_CYCLES.size and t.frames_missed == 0

    def values(name: str) -> np.ndarray:
        stage = t.stage(name)
        assert stage is not None, name
        return stage.latencies_ns

    assert set(values("exposure -> inference done").tolist()) == {8 * MS}
    assert set(values("inference done -> metadata received").tolist()) == {200 * US}
    # received 0.1 ms before the release, step done 80 µs after it
    assert set(values("metadata received -> step done").tolist()) == {180 * US}
    assert set(values("step done -> command written").tolist()) == {10 * US}
    assert set(values("command written -> robot acknowledged").tolist()) == {300 * US}
    # 8 + 0.2 + 0.18 + 0.01 ms
    assert set(values("end to end: exposure -> command written").tolist()) == {8_390 * US}
    # deadlines are budget terms: 10 + 5 + 2 + 1 + 0.2 ms, and 0.24 + 1 ms for the link
    assert t.stage("end to end: exposure -> command written").deadline_ns == 18_200 * US
    assert t.stage("command written -> robot acknowledged").deadline_ns == 1_240 * US
    assert t.stage("robot acknowledged -> robot at rest").deadline_ns == 404 * MS

    # one person stop: acknowledged in the state of cycle 1501 (written(1500) + 0.3 ms), at rest in the
    # state of cycle 1651 (written(1650) + 0.3 ms): 150 ms apart. The triggering frame is the last one taken
    # in by cycle 1500: cycle 1472, exposed at 1472 - 0.1 - 0.2 - 8 = 1463.7 ms; at rest at 1650.39 ms.
    assert t.stops == 1
    assert values("robot acknowledged -> robot at rest").tolist() == [150 * MS]
    assert values("end to end: exposure -> robot at rest").tolist() == [186_690 * US]


def test_loop_stall_is_measured_against_the_schedule(tmp_path: Path) -> None:
    t = stages_from_trace(read_trace(write_trace(tmp_path / "a.cgtrace")))
    wake = t.stage("loop: scheduled -> wake")
    loop = t.stage("loop: scheduled -> command written")
    assert wake is not None and loop is not None
    # the stalled release is recorded once at 30.09 ms; releases 1001..1030 were skipped and are filled
    # in: the stalled cycle woke at 1030.05 ms and read them, so slot s waited 1030.09 - s ms.
    assert loop.omitted == 30
    assert loop.latencies_ns.size == 2000
    assert loop.latencies_ns.max() == STALL_NS + 90 * US
    assert loop.deadline_ns == 1 * MS
    # over the 1 ms period: the stalled cycle and slots 1001..1029 (29.09 ... 1.09 ms); slot 1030 waited 0.09
    assert int(np.count_nonzero(loop.latencies_ns > loop.deadline_ns)) == 30


def test_report_json_counts_the_misses_and_fails_on_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_trace(tmp_path / "a.cgtrace", jitter=True)
    assert main(["report", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (trace,) = doc["traces"]
    assert trace["checksum"] == CHECKSUM
    loop = next(s for s in trace["stages"] if s["name"] == "loop: scheduled -> command written")
    # jitter of at most 0.2 ms moves no latency across the 1 ms deadline: the stalled cycle and the
    # skipped slots 1001..1029 still miss it, slot 1030 (0.09 ms + jitter) still meets it
    assert loop["misses"] == 30
    assert loop["max_ns"] >= STALL_NS + 90 * US
    worst = loop["worst_case"]
    assert worst is not None and "evidence" in worst["note"]
    assert {t["test"] for t in worst["goodness_of_fit"]} == {"anderson-darling", "kolmogorov-smirnov"}
    assert trace["deadline_misses"] == 30
    assert doc["deadline_held"] is False
    assert main(["report", str(path), "--fail-on-miss", "--no-fit"]) == 1


def test_clean_trace_holds_its_deadlines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_trace(tmp_path / "clean.cgtrace", stall=False)
    assert main(["report", str(path), "--fail-on-miss", "--no-fit"]) == 0
    out = capsys.readouterr().out
    assert CHECKSUM in out
    assert "every deadline held" in out
    # the text histogram: every frame took 8.39 ms end to end, far below the 18.2 ms budget
    assert "histogram end to end: exposure -> command written" in out
    assert "deadline 18.200 ms: above every sample" in out


def test_two_traces_side_by_side_with_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    before = write_trace(tmp_path / "before.cgtrace", stall=True)
    after = write_trace(tmp_path / "after.cgtrace", stall=False)
    html, png = tmp_path / "r.html", tmp_path / "r.png"
    code = main(["report", str(before), str(after), "--html", str(html), "--png", str(png), "--no-fit"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[1]" in out and "[2]" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    assert "data:image/png;base64," in page and CHECKSUM in page


def _torn(tmp_path: Path, name: str, cut: int) -> Path:
    """A trace of the synthetic run with its last `cut` bytes gone, as a crash leaves it."""
    path = write_trace(tmp_path / name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    return path


@pytest.mark.requirement("SR-EVD-1")
def test_torn_trace_reports_its_intact_prefix_and_where_it_tore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _torn(tmp_path, "t.cgtrace", 1000)  # into the last DATA chunk (detections), past every cycle
    whole = read_trace(write_trace(tmp_path / "whole.cgtrace"))
    assert main(["report", str(path)]) == 3
    captured = capsys.readouterr()
    assert str(path) in captured.err and "Traceback" not in captured.err
    tear = read_trace(path, allow_incomplete=True).tear
    assert tear is not None and "truncated file" in tear.how
    # where (byte and last intact cycle) and how it tore, on stderr and in the report's heading
    for text in (captured.err, captured.out):
        assert f"torn at byte {tear.offset}" in text and "truncated file" in text
    assert f"the last intact cycle is {int(whole.streams['cycles']['cycle'][-1])}" in captured.err
    assert "TORN" in captured.out and "trace incomplete" in captured.out
    # the intact prefix is reported: its cycles and the frames before the tear
    assert f"{whole.streams['cycles'].size} cycles" in captured.out
    assert tear.records["detections"] < whole.streams["detections"].size


def test_torn_trace_in_json_names_the_tear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _torn(tmp_path, "t.cgtrace", 3)
    assert main(["report", "--json", "--no-fit", str(path)]) == 3
    doc = json.loads(capsys.readouterr().out)["traces"][0]
    assert doc["complete"] is False and doc["deadline_held"] is False
    assert doc["tear"]["how"].startswith("torn END chunk") and doc["tear"]["offset"] > 0
    assert doc["tear"]["records"]["cycles"] == doc["cycles"] > 0


def test_corrupt_trace_reports_the_prefix_before_the_crc_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_trace(tmp_path / "c.cgtrace")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["report", "--no-fit", str(path)]) == 3
    err = capsys.readouterr().err
    assert str(path) in err and "byte" in err and "CRC" in err


def test_unclosed_trace_is_reported_as_torn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_trace(tmp_path / "open.cgtrace", close=False)
    assert main(["report", "--no-fit", str(path)]) == 3
    assert "no END chunk" in capsys.readouterr().err


def test_torn_exit_code_wins_over_the_verdict_flags(tmp_path: Path) -> None:
    path = _torn(tmp_path, "t.cgtrace", 3)
    assert main(["report", "--no-fit", "--fail-on-miss", str(path)]) == 3
    assert main(["report", "--no-fit", "--strict", str(path)]) == 3


def test_strict_fails_on_misses_lost_records_and_unjudged_traces(tmp_path: Path) -> None:
    stalled = write_trace(tmp_path / "stall.cgtrace")  # the 30 ms stall misses the loop's deadline
    assert main(["report", "--no-fit", str(stalled)]) == 0
    assert main(["report", "--no-fit", "--strict", str(stalled)]) == 1
    cycles, detections = synthetic_streams(stall=False)
    streams = {"cycles": CYCLE_DTYPE, "detections": DETECTION_TRACE_DTYPE}
    clean = tmp_path / "clean.cgtrace"
    with TraceWriter(clean, HEADER, streams) as w:
        w.write("cycles", cycles)
        w.write("detections", detections)
    assert main(["report", "--no-fit", "--strict", str(clean)]) == 0
    lossy = tmp_path / "lossy.cgtrace"
    with TraceWriter(lossy, HEADER, streams) as w:
        w.write("cycles", cycles)
        w.write("detections", detections)
        w.note_dropped("detections", 2)
    assert main(["report", "--no-fit", "--fail-on-miss", str(lossy)]) == 0
    assert main(["report", "--no-fit", "--strict", str(lossy)]) == 1
    unjudged = tmp_path / "unjudged.cgtrace"
    with TraceWriter(unjudged, dict(HEADER, config={"name": "half a cell"}), streams) as w:
        w.write("cycles", cycles)
        w.write("detections", detections)
    assert main(["report", "--no-fit", "--strict", str(unjudged)]) == 1


def test_missing_and_foreign_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello\n" * 20)
    assert main(["report", str(tmp_path / "absent.cgtrace"), str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "absent.cgtrace" in err and "cannot read" in err
    assert "notes.txt" in err and "not a cobotguard trace" in err


def test_trace_without_a_valid_configuration_has_no_deadlines(tmp_path: Path) -> None:
    cycles, detections = synthetic_streams(stall=False)
    header = dict(HEADER, config={"schema_version": 1, "name": "half a cell"})
    path = tmp_path / "odd.cgtrace"
    with TraceWriter(path, header, {"cycles": CYCLE_DTYPE, "detections": DETECTION_TRACE_DTYPE}) as w:
        w.write("cycles", cycles)
        w.write("detections", detections)
    t = stages_from_trace(read_trace(path))
    assert t.notes and "does not validate" in t.notes[0]
    assert all(s.deadline_ns is None for s in t.stages if not s.name.startswith("loop"))
    # the loop is still judged by the cycle period recorded in the header
    assert t.stage("loop: scheduled -> command written").deadline_ns == HEADER["cycle_period_ns"]


def test_json_is_strict_even_for_infinite_estimates() -> None:
    from cobotguard.hil.report.render import _finite

    doc = _finite({"a": [1.0, float("inf"), np.float64("nan")], "b": np.int64(3)})
    assert doc == {"a": [1.0, None, None], "b": 3}
    assert json.dumps(doc, allow_nan=False)


def test_loop_deadline_is_the_executors_overrun_deadline_when_recorded(tmp_path: Path) -> None:
    cycles, detections = synthetic_streams(stall=False, jitter=True)
    header = dict(HEADER, deadline_ns=200 * US)  # T_step = 0.2 ms in the example cell
    path = tmp_path / "deadline.cgtrace"
    with TraceWriter(path, header, {"cycles": CYCLE_DTYPE, "detections": DETECTION_TRACE_DTYPE}) as w:
        w.write("cycles", cycles)
        w.write("detections", detections)
    loop = stages_from_trace(read_trace(path)).stage("loop: scheduled -> command written")
    assert loop is not None and loop.deadline_ns == 200 * US
    # written 90 µs plus the wake jitter (0..200 µs) after the release: late when the jitter exceeds 110 µs
    late = int(np.count_nonzero(cycles["t_command_written_ns"] - cycles["t_scheduled_ns"] > 200 * US))
    assert late > 0
    assert int(np.count_nonzero(loop.latencies_ns > loop.deadline_ns)) == late
