"""`cobotguard check --plot`: the drawing's content, not only that a file appears."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from cobotguard.hil.cli.main import main
from cobotguard.hil.report.cellplot import cell_drawing, draw, polygon_coords
from cobotguard.safety.budget import evaluate
from cobotguard.safety.checksum import config_checksum
from cobotguard.safety.config_load import load_config

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "hil" / "defaults" / "cell.toml"
UNSAFE = ROOT / "examples" / "unsafe_full_speed.toml"
CELLS = {"default_cell": DEFAULT, **{p.stem: p for p in sorted((ROOT / "examples").glob("*.toml"))}}


def patches_by_label(fig) -> dict[str, list]:
    """The floor plan's patches by legend label (unlabelled ones under "")."""
    out: dict[str, list] = {}
    for patch in fig.axes[0].patches:
        out.setdefault(patch.get_label() if not patch.get_label().startswith("_") else "", []).append(patch)
    return out


def test_the_covered_polygon_drawn_is_the_one_check_json_reports(capsys) -> None:
    assert main(["check", str(DEFAULT), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["coverage"]
    drawing = cell_drawing(load_config(DEFAULT))
    fig = draw(drawing)
    for camera in drawing.cameras:
        assert polygon_coords(camera.covered) == reported[camera.name]
        (patch,) = patches_by_label(fig)[f"covered by {camera.name}"]
        (polygon,) = reported[camera.name]
        np.testing.assert_allclose(patch.get_path().vertices[: len(polygon[0])], polygon[0], atol=1e-6)


def test_a_point_no_camera_covers_falls_in_the_hatched_area_of_an_unsafe_cell() -> None:
    cfg = load_config(UNSAFE)
    drawing = cell_drawing(cfg)
    assert drawing.verdict == "unsafe" and "coverage" in drawing.failing
    # right of the robot, inside S_p at full speed, beyond what the camera in front sees
    point = (2.2, 0.0)
    assert not any(c.covered.contains(shapely.Point(point)) for c in drawing.cameras)
    fig = draw(drawing)
    hatched = [p for p in fig.axes[0].patches if p.get_hatch()]
    assert hatched and any(p.get_path().contains_point(point) for p in hatched)
    # and a covered point is not hatched
    assert not any(p.get_path().contains_point((-1.0, 0.0)) for p in hatched)


def test_title_names_the_cell_its_checksum_and_verdict_and_failing_margins_are_marked() -> None:
    cfg = load_config(UNSAFE)
    fig = draw(cell_drawing(cfg))
    title = fig._suptitle.get_text()
    assert cfg.name in title and config_checksum(cfg)[0] in title and "UNSAFE" in title
    failing = [z.name for z in evaluate(cfg).zones if z.margin_m is not None and z.margin_m < 0]
    assert failing
    texts = [t.get_text() for t in fig.axes[0].texts]
    for name in failing:
        assert any(t.startswith(f"{name}: margin -") and t.endswith("FAILS") for t in texts), texts


def test_the_budget_bar_sums_to_t_r_with_each_stage_and_its_source_key() -> None:
    cfg = load_config(DEFAULT)
    drawing = cell_drawing(cfg)
    bar = draw(drawing).axes[1]
    widths = [p.get_width() for p in bar.patches]
    assert sum(widths) == pytest.approx(evaluate(cfg).reaction_time_ns / 1e6, abs=1e-6)
    labels = [t.get_text() for t in bar.get_legend().get_texts()]
    assert len(labels) == len(drawing.stages) == len(widths)
    for (symbol, _, source), label in zip(drawing.stages, labels, strict=True):
        assert label.startswith(symbol) and f"[{source}]" in label


def test_check_plot_writes_png_or_svg_and_refuses_other_names(tmp_path: Path, capsys) -> None:
    assert main(["check", str(DEFAULT), "--plot", str(tmp_path / "cell.png")]) == 0
    assert (tmp_path / "cell.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["check", str(DEFAULT), "--plot", str(tmp_path / "cell.svg")]) == 0
    assert b"<svg" in (tmp_path / "cell.svg").read_bytes()[:400]
    capsys.readouterr()
    assert main(["check", str(DEFAULT), "--plot", str(tmp_path / "cell.pdf")]) == 2
    assert "cell.pdf: expected a file name ending in .png or .svg" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_documented_drawings_are_current(name: str) -> None:
    """docs/cells/*.svg are drawn from the shipped cells as they are now (checksum and verdict in the title).

    Regenerate: for f in examples/*.toml; do cobotguard check $f --plot docs/cells/$(basename $f .toml).svg;
    done; cobotguard check hil/defaults/cell.toml --plot docs/cells/default_cell.svg
    """
    svg = (ROOT / "docs" / "cells" / f"{name}.svg").read_text(encoding="utf-8")
    cfg = load_config(CELLS[name])
    drawing = cell_drawing(cfg)
    assert f"checksum {drawing.checksum}" in svg, f"docs/cells/{name}.svg is stale: regenerate it"
    assert f"verdict {drawing.verdict.upper()}" in svg


def test_the_camera_view_projects_the_cell_through_the_cameras_model() -> None:
    from cobotguard.hil.report.cellplot import camera_view
    from cobotguard.safety.camera import CameraModel

    cfg = load_config(DEFAULT)
    sensor = cfg.sensors["cam0"]
    model = CameraModel.from_config(sensor)
    view = camera_view(cfg, "cam0")
    hazard = view.outlines["hazard region"]
    for x, y in cfg.robot.hazard_polygon_m:  # every corner of the hazard region is on its drawn outline
        u, v = model.floor_to_pixel(x, y)
        assert np.min(np.hypot(hazard[:, 0] - u, hazard[:, 1] - v)) < 1e-6
    # the smallest protected person at the far edge of the coverage looks exactly as small as declared
    (fu, fv), (hu, hv) = view.person_foot_px, view.person_head_px
    assert np.hypot(fu - hu, fv - hv) == pytest.approx(sensor.min_person_height_px, abs=0.5)
    assert model.person_height_px(*view.person_floor_m, sensor.assumed_person_height_m) == pytest.approx(
        sensor.min_person_height_px, abs=0.5
    )


def test_check_plot_camera_over_a_photo_of_the_right_size_only(tmp_path: Path, capsys) -> None:
    from PIL import Image

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (640, 480), (90, 90, 90)).save(good)
    Image.new("RGB", (320, 240), (90, 90, 90)).save(bad)
    out = tmp_path / "view.png"
    assert main(["check", str(DEFAULT), "--plot-camera", "cam0", str(out), "--image", str(good)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["check", str(DEFAULT), "--plot-camera", "cam0", str(out), "--image", str(bad)]) == 2
    assert "320x240 px; expected the camera's 640x480 px" in capsys.readouterr().err
    assert main(["check", str(DEFAULT), "--plot-camera", "nope", str(out)]) == 2
    assert "no sensor 'nope'; the cell has cam0" in capsys.readouterr().err


def test_the_timing_report_puts_declared_and_measured_side_by_side() -> None:
    from cobotguard.hil.report.analysis import TraceResult, analyze_stage
    from cobotguard.hil.report.render import budget_figure, to_html
    from cobotguard.hil.report.stages import Stage, TraceStages

    latencies = np.array([3, 4, 5, 6, 40], dtype=np.int64) * 1_000_000
    stages = [
        analyze_stage(Stage("loop", latencies, 10_000_000, "controller.worst_step_ms"), fit=False),
        analyze_stage(Stage("no deadline", latencies), fit=False),
    ]
    trace = TraceStages("t.cgtrace", {}, [s.stage for s in stages], 5, 0, 0, 0, 0)
    fig = budget_figure([TraceResult(trace, stages)])
    (ax,) = fig.axes
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    p99 = stages[0].summary.quantiles_ns["p99"] / 1e6
    assert widths == sorted(
        [10.0, round(p99, 6), 40.0]
    )  # declared, p99, max of the one stage with a deadline
    assert [t.get_text() for t in ax.get_yticklabels()] == ["loop\n[controller.worst_step_ms]"]
    assert 'alt="declared budget beside measured latency"' in to_html([TraceResult(trace, stages)])
