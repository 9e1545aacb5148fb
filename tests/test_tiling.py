"""Tiled inference: tile geometry, merging across tiles (cut persons), coordinates, configuration."""

from __future__ import annotations

import numpy as np
import pytest
from capability_support import ColourDetector, draw
from config_support import default_raw

from cobotguard.safety.checksum import canonical_dict, config_checksum
from cobotguard.safety.config import DETECTOR_MODELS, CellConfig, Tiling
from cobotguard.safety.config_load import config_from_dict
from cobotguard.sensor.detector import MODEL_FILES, Detector
from cobotguard.sensor.tiling import (
    CUT_BOTTOM,
    CUT_LEFT,
    CUT_RIGHT,
    CUT_TOP,
    TiledDetector,
    cut_sides,
    make_detector,
    merge_tiles,
    tile_windows,
)
from cobotguard.sensor.yolox import YoloxDetector

RED, GREEN, BLUE = (200, 0, 0), (0, 200, 0), (0, 0, 200)


def test_tiles_cover_the_frame_and_overlap_as_configured() -> None:
    windows = tile_windows(640, 480, 2, 2, 0.25)
    assert windows == [(0, 0, 366, 275), (274, 0, 640, 275), (0, 205, 366, 480), (274, 205, 640, 480)]
    assert tile_windows(640, 480, 3, 1, 0.0) == [(0, 0, 214, 480), (213, 0, 427, 480), (426, 0, 640, 480)]
    for columns, rows, overlap in ((2, 2, 0.25), (3, 2, 0.2), (4, 3, 0.4), (1, 2, 0.0)):
        w = tile_windows(640, 480, columns, rows, overlap)
        covered = np.zeros((480, 640), bool)
        for x0, y0, x1, y1 in w:
            covered[y0:y1, x0:x1] = True
            assert (x1 - x0, y1 - y0) == (w[0][2] - w[0][0], w[0][3] - w[0][1])  # equal tiles
        assert covered.all() and len(w) == columns * rows


def test_cut_sides_only_on_borders_inside_the_frame() -> None:
    inner = (274, 205, 640, 480)  # bottom-right tile: its left and top borders are inside the frame
    assert cut_sides(np.array([0.0, 0.0, 1.0, 1.0]), inner, 640, 480) == CUT_LEFT | CUT_TOP
    assert cut_sides(np.array([0.3, 0.3, 0.6, 0.6]), inner, 640, 480) == 0
    top_left = (0, 0, 366, 275)
    assert cut_sides(np.array([0.0, 0.0, 0.995, 0.99]), top_left, 640, 480) == CUT_RIGHT | CUT_BOTTOM


def test_merge_keeps_the_whole_box_over_its_cut_parts() -> None:
    whole = [0.2, 0.1, 0.8, 0.3]
    top_part = [0.2, 0.1, 0.55, 0.3]  # cut at the bottom of an upper tile, higher score than the whole
    bottom_part = [0.45, 0.1, 0.8, 0.3]
    other = [0.2, 0.6, 0.5, 0.7]  # another person
    boxes, scores = merge_tiles(
        np.array([top_part, whole, bottom_part, other]),
        np.array([0.9, 0.7, 0.6, 0.8]),
        np.array([CUT_BOTTOM, 0, CUT_TOP, 0]),
        0.5,
    )
    assert boxes.tolist() == [other, whole] and scores.tolist() == [0.8, 0.7]


def test_merge_joins_the_two_halves_of_a_person_seen_only_in_tiles() -> None:
    left = [0.2, 0.30, 0.8, 0.52]  # cut on the right of the left tile
    right = [0.22, 0.45, 0.8, 0.6]  # cut on the left of the right tile; overlaps in the shared band
    beside = [0.2, 0.40, 0.35, 0.50]  # a smaller person's top, cut by the same border: rows do not agree
    boxes, scores = merge_tiles(
        np.array([left, right, beside]),
        np.array([0.6, 0.7, 0.65]),
        np.array([CUT_RIGHT, CUT_LEFT, CUT_RIGHT]),
        0.5,
    )
    assert boxes.tolist()[0] == pytest.approx([0.2, 0.30, 0.8, 0.6]) and scores[0] == 0.7
    assert len(boxes) == 2 and boxes.tolist()[1] == beside


def test_tiled_detector_maps_tile_boxes_to_the_frame() -> None:
    frame = draw(
        640,
        480,
        [(RED, 20, 20, 30, 60), (GREEN, 500, 300, 40, 100), (BLUE, 300, 100, 40, 200)],  # blue: across tiles
    )
    inner = ColourDetector({RED: 0.9, GREEN: 0.8, BLUE: 0.7})
    tiled = TiledDetector(inner, Tiling(columns=2, rows=2, overlap=0.25, full_frame=False))
    tiled.warm_up(480, 640, runs=1)
    r = tiled.detect(frame)
    got = sorted((round(float(s), 2), np.round(r.boxes[i] * [480, 640, 480, 640]).tolist()) for i, s in
                 enumerate(r.scores[: r.count]))  # fmt: skip
    # blue (x 300-340, y 100-300) is in all four tiles, cut in each: its pieces are joined into one box
    assert got == [(0.7, [100, 300, 300, 340]), (0.8, [300, 500, 400, 540]), (0.9, [20, 20, 80, 50])]
    assert r.valid and r.frame_counter == 0 and (inner.frames_seen[-1] == (275, 366))


def test_make_detector_follows_the_sensor() -> None:
    raw = default_raw()
    plain = make_detector(config_from_dict(raw).sensors["cam0"])
    assert isinstance(plain, Detector) and plain.min_score == 0.5
    raw["sensors"]["cam0"]["tiling"] = {"columns": 3, "rows": 2, "overlap": 0.2, "full_frame": False}
    tiled = make_detector(config_from_dict(raw).sensors["cam0"], "int8", min_score=0.3)
    assert isinstance(tiled, TiledDetector) and tiled.detector.min_score == 0.3
    assert tiled.tiling.columns == 3 and not tiled.tiling.full_frame and tiled.tiling.merge_iou == 0.5


def test_sensor_model_key_chooses_the_detector_and_the_argument_overrides_it() -> None:
    raw = default_raw()
    del raw["sensors"]["cam0"]["model"]  # the default cell's yolox_nano: absent, a sensor runs fp32
    assert isinstance(make_detector(config_from_dict(raw).sensors["cam0"]), Detector)
    assert make_detector(config_from_dict(raw).sensors["cam0"]).model_name == "fp32"
    raw["sensors"]["cam0"]["model"] = "yolox_nano"
    sensor = config_from_dict(raw).sensors["cam0"]
    assert isinstance(make_detector(sensor), YoloxDetector)
    assert make_detector(sensor, "int8").model_name == "int8"
    raw["sensors"]["cam0"]["tiling"] = {"columns": 2, "rows": 2, "overlap": 0.25}
    tiled = make_detector(config_from_dict(raw).sensors["cam0"])
    assert isinstance(tiled, TiledDetector) and isinstance(tiled.detector, YoloxDetector)


def test_sensor_model_key_is_validated_and_counted_only_when_present() -> None:
    assert sorted(DETECTOR_MODELS) == sorted(MODEL_FILES)  # the config's list is the shipped one
    raw = default_raw()
    del raw["sensors"]["cam0"]["model"]
    base = config_checksum(config_from_dict(raw))
    raw["sensors"]["cam0"]["model"] = "fp32"  # the default written out is still a declaration
    assert config_checksum(config_from_dict(raw)) != base
    raw["sensors"]["cam0"]["model"] = "yolox"
    with pytest.raises(ValueError) as info:
        config_from_dict(raw)
    assert "sensors.cam0.model: got 'yolox'; expected 'fp32', 'int8', 'yolox_nano'" in str(info.value)
    del raw["sensors"]["cam0"]["model"]
    assert config_from_dict(raw).sensors["cam0"].detector_model == "fp32"
    assert config_checksum(config_from_dict(raw)) == base
    assert "model" not in canonical_dict(config_from_dict(raw))["sensors"][0][1]  # not even as null


def test_tiling_configuration_is_validated_and_counted_only_when_present() -> None:
    raw = default_raw()
    base = config_checksum(config_from_dict(raw))
    raw["sensors"]["cam0"]["tiling"] = {"columns": 2, "rows": 2, "overlap": 0.25}
    assert config_checksum(config_from_dict(raw)) != base
    for bad, message in (
        ({"columns": 1, "rows": 1, "overlap": 0.2}, "at least 2 tiles (columns x rows), got 1 x 1"),
        ({"columns": 5, "rows": 1, "overlap": 0.2}, "sensors.cam0.tiling.columns: got 5"),
        ({"columns": 2, "rows": 2, "overlap": 0.5}, "sensors.cam0.tiling.overlap: got 0.5"),
        ({"columns": 2, "rows": 2, "overlap": 0.2, "tiles": 4}, "sensors.cam0.tiling.tiles: unknown key"),
    ):
        raw["sensors"]["cam0"]["tiling"] = bad
        with pytest.raises(ValueError, match="tiling") as info:
            config_from_dict(raw)
        assert message in str(info.value)
    del raw["sensors"]["cam0"]["tiling"]
    assert CellConfig.model_validate(raw).sensors["cam0"].tiling is None
    assert config_checksum(config_from_dict(raw)) == base
