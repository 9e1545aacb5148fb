"""`cobotguard detect` on real photos, with and without a cell configuration, and on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cobotguard.hil.cli.main import main

CELL_TOML = """
schema_version = 1
name = "detect-test-cell"

[robot]
name = "test-arm"
max_speed_mps = 1.0
payload_kg = 2.0
stop_category = 1
stop_input_reaction_ms = 10.0
position_uncertainty_m = 0.02
state_period_ms = 5.0
hazard_polygon_m = [[3.0, -0.5], [4.0, -0.5], [4.0, 0.5], [3.0, 0.5]]
stopping = [
  { speed_mps = 0.0, payload_kg = 2.0, stop_time_ms = 0.0, stop_distance_m = 0.0 },
  { speed_mps = 1.0, payload_kg = 2.0, stop_time_ms = 300.0, stop_distance_m = 0.15 },
]

[sensors.front]
connection_id = 1
frame_rate_hz = 30.0
exposure_readout_ms = 10.0
inference_worst_ms = 20.0
transport_latency_ms = 2.0
tolerated_missed_frames = 1
max_persons = 8
image_width_px = 512
image_height_px = 512
min_person_height_px = 120.0
assumed_person_height_m = 1.5
position_uncertainty_m = 0.05
min_score = 0.5
intrinsics = { fx_px = 400.0, fy_px = 400.0, cx_px = 256.0, cy_px = 256.0 }
mounting = { position_m = [0.0, 0.0, 2.5], yaw_deg = 0.0, pitch_deg = 30.0, roll_deg = 0.0 }

[separation]
enabled = true
intrusion_distance_m = 0.85
stop_category = 1

[controller]
cycle_period_ms = 5.0
worst_step_ms = 1.0
restart = "manual"
release_hysteresis_m = 0.1
robot_state_timeout_ms = 50.0

[link]
baud = 1000000
connection_id = 7
command_frame_bytes = 32
state_frame_bytes = 32
receiver_cycle_ms = 1.0
command_watchdog_ms = 50.0
max_delay_ms = 20.0
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    skimage_data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("detect")
    paths = {
        "astronaut": root / "astronaut.png",
        "camera": root / "camera man.jpg",
        "empty": root / "empty.png",
        "standing": root / "standing.png",
        "text": root / "notes.png",
        "truncated": root / "truncated.jpg",
        "cell": root / "cell.toml",
    }
    Image.fromarray(skimage_data.astronaut()).save(paths["astronaut"])
    Image.fromarray(skimage_data.camera()).save(paths["camera"], quality=95)  # greyscale JPEG
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(paths["empty"])
    standing = np.full((512, 512, 3), 128, np.uint8)  # feet inside the image, well above its bottom edge
    standing[150:450, 150:450] = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((300, 300)))
    Image.fromarray(standing).save(paths["standing"])
    paths["text"].write_text("this is not an image\n")
    paths["truncated"].write_bytes(paths["camera"].read_bytes()[:600])
    paths["cell"].write_text(CELL_TOML)
    return paths


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(["detect", "--json", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_text_output_names_each_person(files, capsys) -> None:
    code = main(["detect", str(files["astronaut"]), str(files["empty"])])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "astronaut.png (512x512): 1 person;" in out
    assert "person 1: score 0.9" in out
    assert "empty.png (320x240): 0 persons;" in out
    assert "inference" in out and err == ""


def test_json_lists_persons_and_reports_bad_files(files, capsys) -> None:
    paths = [files[k] for k in ("astronaut", "text", "camera", "truncated")] + [
        files["cell"].parent / "gone.png"
    ]
    code, doc, err = run_json(capsys, *map(str, paths))
    assert code == 2  # some files failed, the others were still processed
    assert [img["path"] for img in doc["images"]] == [str(files["astronaut"]), str(files["camera"])]
    for img in doc["images"]:
        (person,) = img["persons"]
        assert len(person["box"]) == 4
        y0, x0, y1, x1 = person["box"]
        assert 0.0 <= y0 < y1 <= 1.0 and 0.0 <= x0 < x1 <= 1.0
        assert person["score"] >= 0.85
        assert img["inference_us"] > 0
    assert doc["model"] == "fp32"
    failed = {e["path"]: e["error"] for e in doc["errors"]}
    assert set(failed) == {str(files["text"]), str(files["truncated"]), str(paths[-1])}
    for path in failed:
        assert f"cobotguard detect: {path}: " in err
    assert "PNG or JPEG" in failed[str(files["text"])]
    assert "no such file" in failed[str(paths[-1])]
    assert "Traceback" not in err


def test_config_adds_floor_positions_that_map_back_to_the_foot_point(files, capsys) -> None:
    from cobotguard.safety.camera import CameraModel
    from cobotguard.safety.config_load import load_config

    code, doc, err = run_json(capsys, "--int8", "--config", str(files["cell"]), str(files["standing"]))
    assert code == 0, err
    assert doc["model"] == "int8" and doc["sensor"] == "front"
    (person,) = doc["images"][0]["persons"]
    x, y = person["floor_m"]
    y0, x0, y1, x1 = person["box"]
    assert 0.8 < y1 < 0.95
    camera = CameraModel.from_config(load_config(files["cell"]).sensors["front"])
    foot = ((x0 + x1) / 2 * 512, y1 * 512)  # bottom centre of the box
    assert camera.floor_to_pixel(x, y) == pytest.approx(foot, abs=1e-6)
    assert x > 0.0  # in front of the camera, which looks along +x
    assert 0.05 <= person["z_d_m"] < 0.5  # never below the declared Z_d
    assert person["declared_z_d_m"] == 0.05


def test_text_output_with_config_shows_floor_and_z_d(files, capsys) -> None:
    code = main(["detect", "--config", str(files["cell"]), "--sensor", "front", str(files["camera"])])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "floor x=" in out and "Z_d=" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sensor", "front"], "--sensor needs --config"),
        (["--config", "CELL", "--sensor", "back"], "no sensor 'back'; configured sensors: front"),
        (["--config", "MISSING"], "x.toml"),
        (["--min-score", "1.5"], "--min-score must be in (0, 1]"),
        (["--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_bad_options_exit_2_with_a_message(files, capsys, argv: list[str], message: str) -> None:
    argv = [
        a.replace("CELL", str(files["cell"])).replace("MISSING", str(files["cell"].with_name("x.toml")))
        for a in argv
    ]
    code = main(["detect", *argv, str(files["astronaut"])])
    out, err = capsys.readouterr()
    assert code == 2
    assert message in err and out == ""


def test_invalid_config_lists_its_problems(files, capsys) -> None:
    bad = files["cell"].with_name("bad.toml")
    bad.write_text(CELL_TOML.replace("min_score = 0.5", "min_score = 2.0"))
    code = main(["detect", "--config", str(bad), str(files["astronaut"])])
    _, err = capsys.readouterr()
    assert code == 2
    assert "configuration invalid" in err and "min_score" in err
