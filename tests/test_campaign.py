"""Campaigns: the compiled approach simulation, its determinism, its verdicts, resuming and the engines.

- the kernel agrees with hil.sim.CellSim (the simulator the timing properties use) on plain walks;
- an approach is a pure function of (seed, index): any chunking, any order, any engine, the same results;
- the deliberately unsafe example produces violations whose SEED:INDEX replays to the same violation,
  and the shipped safe cells none; a robot that ignores its stop would be caught (contact);
- the report: --json, the polar map (PNG) and the HTML page;
- the results file: resumed chunks are skipped, a torn last line is cut off and redone, a damaged line
  or a file of another seed is an error naming the file and line.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import shapely

from cobotguard.hil.campaign import aggregate, engines, runner, store
from cobotguard.hil.campaign.draw import N_DRAWS, Pattern, draws
from cobotguard.hil.cli.main import main
from cobotguard.hil.faults import get_fault
from cobotguard.hil.sim import CellSim, Run, Walk
from cobotguard.safety.checksum import canonical_json
from cobotguard.safety.config_load import load_config
from cobotguard.safety.config_rules import covered_area
from cobotguard.safety.geometry import distance_to_region
from cobotguard.safety.reasons import CommandKind

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CELL = ROOT / "hil" / "defaults" / "cell.toml"
UNSAFE = ROOT / "examples" / "unsafe_full_speed.toml"


@cache
def cell(path: Path = DEFAULT_CELL) -> runner.PreparedCell:
    return runner.prepare(load_config(path))


def test_draws_are_a_pure_function_of_seed_and_index() -> None:
    u, key = draws(7, 123)
    again, key_again = draws(7, 123)
    assert u.shape == (N_DRAWS,) and np.array_equal(u, again) and key == key_again
    assert not np.array_equal(u, draws(7, 124)[0])
    assert not np.array_equal(u, draws(8, 123)[0])
    c = cell()
    one_by_one = np.concatenate([runner.approaches(c, 7, i, 1) for i in range(20)])
    assert one_by_one.tobytes() == runner.approaches(c, 7, 0, 20).tobytes()


def test_results_do_not_depend_on_chunking_or_order() -> None:
    c = cell()
    whole = runner.simulate(c, runner.approaches(c, 3, 0, 60))
    parts = [runner.simulate(c, runner.approaches(c, 3, first, 20)) for first in (40, 0, 20)]
    assert np.concatenate([parts[1], parts[2], parts[0]]).tobytes() == whole.tobytes()


def test_the_kernel_agrees_with_the_cell_simulator_on_plain_walks() -> None:
    """Same start point, walk, sensor phase, link and step times (no jitter, no misses, full coverage of
    the walk): the same stop command, reason, braking and rest times as hil.sim.CellSim."""
    c = cell(ROOT / "examples" / "ur5e_single_camera.toml")
    sim = CellSim(c.cfg, c.params)
    batch = runner.approaches(c, 11, 0, 40)
    batch["pattern"] = 0  # walk in and stay
    batch["latency_fraction"] = 0.0  # CellSim jitters any latency with its own generator
    batch["miss_probability"] = 0.0
    batch["step_jitter"] = 0
    batch["fault"] = -1
    batch["counter_start"] = 0
    results = runner.simulate(c, batch)
    p = c.params[0]
    compared = 0
    centre = c.facts[0]["hazard_centre"]
    seen = covered_area(c.cfg.sensors["cam0"])
    for a, r in zip(batch, results, strict=True):
        line = runner.walk_line(c, a)
        aim = (float(a["aim_x_m"]), float(a["aim_y_m"]))
        if not shapely.LineString([(line[0], line[1]), aim]).within(seen):
            continue  # CellSim sees the person everywhere, the kernel only where the camera does
        walk = Walk(
            angle_deg=float(a["angle_deg"]),
            speed_mps=float(a["speed_mps"]),
            start_gap_m=float(distance_to_region(p["hazard_vertices"], p["hazard_n"], line[0], line[1])),
            aim_offset_m=(aim[0] - float(centre[0]), aim[1] - float(centre[1])),
            error_fraction=float(a["error_fraction"]),
        )
        run = Run(
            robot_speed_mps=float(a["robot_speed_mps"]),
            walk=walk,
            sensor_phase_ns=(int(a["phase_ns"][0]),),
            latency_fraction=0.0,
            link_delay_fraction=float(a["link_delay_fraction"]),
            step_fraction=float(a["step_fraction"]),
        )
        out = sim.run(run, until_ns=int(r["end_ns"]))
        assert out.stop_command_ns is not None
        assert out.stop_command_ns - out.start_ns == r["stop_ns"]
        assert out.stop_reason == r["stop_reason"]
        assert out.brake_ns - out.start_ns == r["brake_ns"]
        assert out.rest_ns - out.start_ns == r["rest_ns"]
        compared += 1
    assert compared >= 20


def test_the_unsafe_example_has_violations_that_replay() -> None:
    c = cell(UNSAFE)
    chunk = runner.run_chunk(c, 0, 0, 600, runner.Scratch(c))
    assert chunk["violations"], "the deliberately unsafe cell passed 600 approaches"
    for v in chunk["violations"][:5]:
        again = runner.replay(c, 0, v["index"])
        assert v["kind"] in again.violations
        assert runner.violation_details(c, again.result) == {
            k: v[k] for k in runner.violation_details(c, again.result)
        }


SAFE_CELLS = (
    DEFAULT_CELL,
    ROOT / "examples" / "ur5e_single_camera.toml",
    ROOT / "examples" / "two_camera_cell.toml",
)


@pytest.mark.parametrize("path", SAFE_CELLS, ids=lambda p: p.stem)
def test_the_shipped_safe_cells_have_no_violation_and_no_stop_without_cause(path: Path) -> None:
    c = cell(path)
    chunk = runner.run_chunk(c, 5, 0, 1500, runner.Scratch(c))
    assert chunk["violations"] == []
    assert chunk["stops_without_cause"] == []
    assert 0 < chunk["stopped"] < 1500  # people came in (stops) and stood at the edge (none)
    assert sum(chunk["faults"].values()) > 0  # faults were injected too


def test_every_campaign_fault_stops_the_robot_within_its_watchdog_time() -> None:
    """Each fault, on a person standing at the edge (no other cause): a fault stop within its time."""
    c = cell()
    names = [name for name, *_rest in runner.CAMPAIGN_FAULTS]
    for _name, _fault, _variant, catalogue in runner.CAMPAIGN_FAULTS:
        if catalogue is not None:
            get_fault(catalogue)  # a fault of the catalogue by that name exists
    batch = runner.approaches(c, 4, 0, len(names))
    batch["pattern"] = int(Pattern.EDGE)
    batch["fault"] = np.arange(len(names))
    batch["fault_at_ns"] = 300_000_000
    r = runner.simulate(c, batch)
    for name, result in zip(names, r, strict=True):
        assert result["stop_kind"] == int(CommandKind.FAULT_STOP), name
        assert 300_000_000 <= result["stop_ns"] <= 300_000_000 + result["fault_watchdog_ns"], name
    assert not any(mask.any() for mask in runner.violations(c, r).values())
    assert not runner.stops_without_cause(r).any()


def test_a_robot_that_ignores_its_stop_is_caught() -> None:
    """The checks can fail: with the stop reaction pushed out by 5 s, walks in end in contact."""
    c = cell()
    slow = runner.PreparedCell(c.cfg, c.params, c.facts.copy(), c.checksum)
    slow.facts[0]["robot_reaction_ns"] = 5_000_000_000
    batch = runner.approaches(slow, 2, 0, 200)
    masks = runner.violations(slow, runner.simulate(slow, batch))
    assert masks["contact"].any() and masks["late_stop"].any()


def test_stops_without_cause_are_reported() -> None:
    """A cell whose stop reach the check underestimates: every stop of a walk-in is without cause."""
    c = cell()
    blind = runner.PreparedCell(c.cfg, c.params, c.facts.copy(), c.checksum)
    blind.facts[0]["free_hazard_m"] = 0.0
    blind.facts[0]["free_zone_m"] = -10.0  # nothing counts as near
    r = runner.simulate(blind, runner.approaches(blind, 2, 0, 100))
    assert runner.stops_without_cause(r).sum() > 0


# -- the results file ------------------------------------------------------------------------------------


def _cli(tmp_path: Path, *extra: str, config: Path = DEFAULT_CELL) -> int:
    return main(["campaign", str(config), "--out", str(tmp_path / "r.jsonl"), "--workers", "1", *extra])


def test_a_rerun_skips_the_chunks_done_and_redoes_a_torn_last_line(tmp_path: Path, capsys) -> None:
    args = ("--runs", "300", "--chunk-size", "100", "--seed", "4", "--json")
    assert _cli(tmp_path, *args) == 0
    first = json.loads(capsys.readouterr().out)
    path = tmp_path / "r.jsonl"
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 5 and lines[-1] == b""  # header, 3 chunks, final newline
    # a write torn in the middle of the last chunk
    path.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][: len(lines[3]) // 2])
    assert _cli(tmp_path, *args) == 0
    captured = capsys.readouterr()
    assert "line 4 was torn" in captured.err
    again = json.loads(captured.out)
    assert again["resumed_chunks"] == 2 and again["engine"]["approaches_run"] == 100
    for key in ("violations", "stops_without_cause", "min_gap_by_direction", "stop_reasons", "runs"):
        assert again[key] == first[key]
    # nothing left to do: every chunk is read back
    assert _cli(tmp_path, *args) == 0
    assert json.loads(capsys.readouterr().out)["engine"]["approaches_run"] == 0


def test_a_damaged_line_or_another_seed_is_an_error(tmp_path: Path, capsys) -> None:
    args = ("--runs", "200", "--chunk-size", "100", "--seed", "4")
    assert _cli(tmp_path, *args) == 0
    capsys.readouterr()
    assert _cli(tmp_path, "--runs", "200", "--chunk-size", "100", "--seed", "5") == 2
    assert "line 1: written for seed 4, this run has 5" in capsys.readouterr().err
    path = tmp_path / "r.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1][:-3] + "@@@", lines[2]]) + "\n")
    assert _cli(tmp_path, *args) == 2
    assert "r.jsonl: line 2: not a JSON object" in capsys.readouterr().err


def test_store_reads_back_what_it_wrote(tmp_path: Path) -> None:
    head = store.header(1, 10, "abcd", "cell")
    writer = store.Writer(tmp_path / "x.jsonl", head)
    writer.add({"type": "chunk", "chunk": 3, "count": 10})
    writer.close()
    loaded = store.load(tmp_path / "x.jsonl", head)
    assert list(loaded.chunks) == [3] and loaded.torn_line is None


# -- the command and the engines ---------------------------------------------------------------------


def test_replay_prints_the_timeline_and_fails_on_a_violation(tmp_path: Path, capsys) -> None:
    c = cell(UNSAFE)
    index = runner.run_chunk(c, 0, 0, 600, runner.Scratch(c))["violations"][0]["index"]
    assert main(["campaign", str(UNSAFE), "--replay", f"0:{index}"]) == 1
    out = capsys.readouterr().out
    assert f"approach 0:{index}" in out
    assert "command changes" in out and ("PROTECTIVE_STOP" in out or "SLOW" in out)
    assert "violations: " in out and "violations: none" not in out


def test_the_report_as_json_png_and_html(tmp_path: Path, capsys) -> None:
    """--json carries the verdict and the violations by index; the polar map and the page are written."""
    pytest.importorskip("matplotlib")
    page = tmp_path / "report.html"
    args = ("--runs", "400", "--chunk-size", "200", "--json", "--html", str(page))
    assert _cli(tmp_path, *args, config=UNSAFE) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "fail" and report["runs"] == 400
    listed = report["violations"]["listed"]
    assert listed and sum(report["violations"]["counts"].values()) >= len(listed)
    assert all(v["kind"] in runner.VIOLATIONS and 0 <= v["index"] < 400 for v in listed)
    assert len(report["min_gap_by_direction"]) == aggregate.DIRECTION_BINS
    assert sum(b["count"] for b in report["min_gap_by_direction"]) == 400
    png = Path(report["files"]["polar map"])
    assert png == tmp_path / "r.png" and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert report["files"]["html"] == str(page)
    text = page.read_text(encoding="utf-8")
    assert "data:image/png;base64," in text and "FAIL" in text and f"0:{listed[0]['index']}" in text


def test_bad_options_are_named(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["campaign", str(DEFAULT_CELL), "--replay", "0:x"])
    assert exc.value.code == 2
    assert "expected SEED:INDEX" in capsys.readouterr().err
    assert main(["campaign", str(DEFAULT_CELL), "--address", "10.0.0.1:6379"]) == 2
    assert "--address: only with --engine ray" in capsys.readouterr().err


def test_the_local_pool_gives_the_same_chunks_as_one_process() -> None:
    canonical = canonical_json(load_config(DEFAULT_CELL)).decode()
    inline = sorted(engines.run_chunks(canonical, 9, 50, [0, 1, 2]), key=lambda c: c["chunk"])
    pooled = sorted(engines.run_chunks(canonical, 9, 50, [2, 0, 1], workers=2), key=lambda c: c["chunk"])
    strip = [{k: v for k, v in c.items() if k != "cpu_s"} for c in inline]
    assert strip == [{k: v for k, v in c.items() if k != "cpu_s"} for c in pooled]


def test_ray_gives_the_same_results_as_the_local_engine() -> None:
    pytest.importorskip("ray", reason="the cluster extra is not installed")
    canonical = canonical_json(load_config(DEFAULT_CELL)).decode()
    local = sorted(engines.run_chunks(canonical, 9, 40, [0, 1]), key=lambda c: c["chunk"])
    remote = engines.run_chunks(canonical, 9, 40, [1, 0], engine="ray", workers=1)
    remote = sorted(remote, key=lambda c: c["chunk"])
    c = cell()
    assert aggregate.summarise(c, 9, local) | {"cpu_s": 0} == aggregate.summarise(c, 9, remote) | {"cpu_s": 0}
    strip = [{k: v for k, v in x.items() if k != "cpu_s"} for x in local]
    assert strip == [{k: v for k, v in x.items() if k != "cpu_s"} for x in remote]
