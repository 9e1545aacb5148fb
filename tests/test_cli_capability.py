"""`cobotguard capability` end to end on a drawn sequence, and `check --capability` on its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from capability_support import ColourDetector, draw, write_sequence
from config_support import DEFAULT_CELL, default_raw, to_toml

from cobotguard.hil.cli.main import main

RED, GREEN = (200, 0, 0), (0, 200, 0)
FRAMES = 8


@pytest.fixture
def sequence(tmp_path: Path) -> tuple[Path, Path]:
    """640x480: red person 144 px (30 %) and green person 96 px (20 %) in every frame."""
    images = [draw(640, 480, [(RED, 100, 200, 60, 144), (GREEN, 400, 300, 40, 96)]) for _ in range(FRAMES)]
    folder = write_sequence(tmp_path / "frames", images)
    truth = tmp_path / "gt.txt"
    truth.write_text(
        "".join(f"{f},1,100,200,60,144,1,-1,-1,-1\n{f},2,400,300,40,96,1,-1,-1,-1\n" for f in range(1, 9))
    )
    return folder, truth


def _use(monkeypatch: pytest.MonkeyPatch, scores: dict) -> None:
    """The sensor's detector (make_detector, tiling included) runs on the colour stand-in."""
    monkeypatch.setattr(
        "cobotguard.sensor.tiling.Detector",
        lambda model, threads, min_score: ColourDetector(scores, min_score),
    )


def _capability(capsys, sequence, out: Path, *extra: str) -> tuple[int, str, str]:
    folder, truth = sequence
    code = main(
        ["capability", str(DEFAULT_CELL), "--video", str(folder), "--truth", str(truth), "--out", str(out),
         "--min-band-samples", "1", *extra]
    )  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_backed_capability_exits_0_and_writes_the_report(tmp_path, capsys, monkeypatch, sequence) -> None:
    _use(monkeypatch, {RED: 0.9, GREEN: 0.8})
    code, out, _ = _capability(capsys, sequence, tmp_path / "report")
    assert code == 0, out
    assert "verdict: BACKED" in out
    for name in ("capability.json", "recall_by_band.png", "pr_curve.png", "miss_streaks.png", "index.html"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    report = json.loads((tmp_path / "report" / "capability.json").read_text())
    assert report["sensor"] == "cam0" and report["k_frames"] == 2 and report["frames"] == FRAMES
    n = {b["lo"]: (b["n"], b["found"], b["found_k"]) for b in report["bands"] if b["n"]}
    assert n == {0.20: (8, 8, 8), 0.30: (8, 8, 8)}
    assert report["overall"]["fp_per_frame"] == 0.0
    assert report["verdict"]["backed_from_fraction"] == 0.20 and report["verdict"]["backed"]
    code = main(["check", str(DEFAULT_CELL), "--capability", str(tmp_path / "report" / "capability.json")])
    assert code == 0


def test_unbacked_capability_exits_1_and_check_refuses(tmp_path, capsys, monkeypatch, sequence) -> None:
    _use(monkeypatch, {RED: 0.9, GREEN: 0.3})  # the 20 % person scores below min_score 0.5
    code, out, _ = _capability(capsys, sequence, tmp_path / "report", "--json")
    assert code == 1
    report = json.loads(out)
    bands = {b["lo"]: b for b in report["bands"]}
    assert bands[0.20]["recall"] == 0.0 and bands[0.30]["recall"] == 1.0
    assert report["streaks"]["longest_per_track"] == {"1": 0, "2": FRAMES}
    assert report["verdict"]["backed_from_fraction"] == 0.30 and not report["verdict"]["backed"]
    curve = {p["threshold"]: p for p in report["pr_curve"]["points"]}
    assert curve[0.25]["recall"] == 1.0 and curve[0.35]["recall"] == 0.5  # the floor run reports 0.3
    path = tmp_path / "report" / "capability.json"
    code = main(["check", str(DEFAULT_CELL), "--capability", str(path)])
    out = capsys.readouterr().out
    assert code == 1 and "verdict                      UNSAFE" in out
    assert (
        f"reason: capability {path} (sensor cam0): min_person_height_px 120 (25.0% of 480 px) is below what "
        "the measurement backs: 95% k-frame recall holds only from 30% of the frame height (144 px) up"
    ) in out

    # a cell declaring 30 % is backed by the same report (the coverage check may still object: not here)
    raw = default_raw()
    raw["sensors"]["cam0"]["min_person_height_px"] = 144.0
    cell = tmp_path / "cell.toml"
    cell.write_text(to_toml(raw))
    main(["check", str(cell), "--capability", str(path)])
    assert "capability" not in capsys.readouterr().out


def test_check_says_when_the_report_is_for_another_sensor_or_size(
    tmp_path, capsys, monkeypatch, sequence
) -> None:
    _use(monkeypatch, {RED: 0.9, GREEN: 0.8})
    _capability(capsys, sequence, tmp_path / "report")
    path = tmp_path / "report" / "capability.json"
    report = json.loads(path.read_text())
    for change, expected in (
        ({"sensor": "cam9"}, "made for sensor 'cam9'; the configuration's sensors are cam0"),
        ({"width_px": 320}, "measured on 320x480 frames; the sensor's image is 640x480"),
        (
            {"detector": {**report["detector"], "min_score": 0.3}},
            "measured with min_score = 0.3; the sensor declares 0.5",
        ),
        (
            {"detector": {**report["detector"], "model": "int8"}},
            "measured with model = int8; the sensor declares yolox_nano",
        ),
        ({"k_frames": 1}, "k-frame recall over 1 frame(s); the sensor tolerates 1 missed frame(s), so k = 2"),
    ):
        other = tmp_path / "other.json"
        other.write_text(json.dumps({**report, **change}))
        code = main(["check", str(DEFAULT_CELL), "--capability", str(other)])
        out = capsys.readouterr().out
        assert code == 1 and expected in out, out


def test_unreadable_inputs_exit_2(tmp_path, capsys, monkeypatch, sequence) -> None:
    _use(monkeypatch, {RED: 0.9})
    folder, truth = sequence
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,100,200,60,144,1\n1,2,400,300,-40,96,1\n")
    assert main(["capability", str(DEFAULT_CELL), "--video", str(folder), "--truth", str(bad)]) == 2
    assert "bad.txt:2: field w: -40; a box's width and height must be > 0" in capsys.readouterr().err
    late = tmp_path / "late.txt"
    late.write_text("9,1,100,200,60,144,1\n")
    assert main(["capability", str(DEFAULT_CELL), "--video", str(folder), "--truth", str(late)]) == 2
    assert "ground truth for frame 9, but the sequence has 8 frame(s)" in capsys.readouterr().err
    assert (
        main(["capability", str(DEFAULT_CELL), "--video", str(tmp_path / "no.mp4"), "--truth", str(truth)])
        == 2
    )
    assert "no.mp4: no such file" in capsys.readouterr().err
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    assert main(["check", str(DEFAULT_CELL), "--capability", str(notes)]) == 2
    assert "notes.json: not a capability report" in capsys.readouterr().err


def test_tiled_sensor_is_measured_through_its_tiles(tmp_path, capsys, monkeypatch, sequence) -> None:
    seen: list[ColourDetector] = []

    def factory(model: str, threads: int, min_score: float) -> ColourDetector:
        seen.append(ColourDetector({RED: 0.9, GREEN: 0.8}, min_score))
        return seen[-1]

    monkeypatch.setattr("cobotguard.sensor.tiling.Detector", factory)
    raw = default_raw()
    raw["sensors"]["cam0"]["tiling"] = {"columns": 2, "rows": 2, "overlap": 0.25}
    cell = tmp_path / "cell.toml"
    cell.write_text(to_toml(raw))
    folder, truth = sequence
    code = main(["capability", str(cell), "--video", str(folder), "--truth", str(truth), "--json",
                 "--min-band-samples", "1"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["detector"]["tiling"]["columns"] == 2
    assert report["overall"]["recall"] == 1.0 and report["overall"]["false_positives"] == 0
    assert {(275, 366), (480, 640)} <= set(seen[0].frames_seen)  # tiles and the whole frame
