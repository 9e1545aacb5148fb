"""Frame sources: synthetic scenes with ground truth, image sequences, videos, injected faults."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cobotguard.safety.camera import CameraModel
from cobotguard.safety.reasons import HealthFlag
from cobotguard.sensor.health import HealthMonitor
from cobotguard.sensor.scene import PERSON_CROPS, Scene, Trajectory, Walker, load_sprite
from cobotguard.sensor.sources import (
    FaultySource,
    ImageSequenceSource,
    SourceError,
    SyntheticSource,
    VideoSource,
)

W, H = 320, 240
CAM = CameraModel.from_pose(250.0, 250.0, 160.0, 120.0, (0.0, 0.0, 2.8), 0.0, 30.0, 0.0, W, H)
S = 1_000_000_000


@pytest.fixture(scope="module")
def scene() -> Scene:
    walk = Trajectory.from_points([(S, 8.0, 1.0), (5 * S, 2.0, 0.0)])  # appears after 1 s, 4 s walk
    return Scene(CAM, [Walker(load_sprite("astronaut"), walk, height_m=1.75)])


def test_trajectory_interpolates_and_is_absent_outside_its_times() -> None:
    path = Trajectory.walk((0.0, 0.0), (3.0, 4.0), 2.5, t_start_ns=S)  # 5 m in 2 s
    assert path.times_ns.tolist() == [S, 3 * S]
    assert path.position_at(2 * S) == pytest.approx((1.5, 2.0))
    assert path.position_at(S - 1) is None and path.position_at(3 * S + 1) is None
    with pytest.raises(ValueError, match="increase"):
        Trajectory.from_points([(0, 0.0, 0.0), (0, 1.0, 1.0)])
    with pytest.raises(ValueError, match="positive speed"):
        Trajectory.walk((0.0, 0.0), (1.0, 0.0), 0.0)


def test_sprites_come_from_the_real_photos() -> None:
    for name in PERSON_CROPS:
        sprite = load_sprite(name)
        assert sprite.rgb.dtype == np.uint8 and sprite.rgb.shape[2] == 3
        assert sprite.alpha.shape == sprite.rgb.shape[:2] and sprite.alpha.max() == 1.0
        bottom_middle = sprite.alpha[-1, sprite.alpha.shape[1] // 2]
        assert bottom_middle == 1.0  # feet are not faded: the box bottom stays the foot point


def test_person_is_drawn_where_the_camera_sees_the_floor_point(scene: Scene) -> None:
    source = SyntheticSource(scene)
    frame = source.read(60, 3 * S)
    assert frame is not None and frame.image.shape == (H, W, 3) and frame.image.flags["C_CONTIGUOUS"]
    (truth,) = frame.truth
    assert (truth.x_m, truth.y_m) == pytest.approx((5.0, 0.5))
    y0, x0, y1, x1 = truth.box
    u, v = CAM.floor_to_pixel(5.0, 0.5)
    assert 0.5 * (x0 + x1) * W == pytest.approx(u, abs=1.0)
    assert y1 * H == pytest.approx(v, abs=1.0)
    assert (y1 - y0) * H == pytest.approx(float(CAM.person_height_px(5.0, 0.5, 1.75)), abs=1.5)
    assert truth.height_fraction == pytest.approx((y1 - y0), abs=0.01) and truth.fully_visible
    # The pixels inside the box are the photo, not the floor.
    inside = frame.image[int(y0 * H) + 5 : int(y1 * H) - 5, int(x0 * W) + 5 : int(x1 * W) - 5]
    floor = source.scene.background[int(y0 * H) + 5 : int(y1 * H) - 5, int(x0 * W) + 5 : int(x1 * W) - 5]
    assert np.abs(inside.astype(int) - floor).mean() > 20


def test_portraits_show_only_the_top_of_the_body() -> None:
    shares = {name: load_sprite(name).body_share for name in PERSON_CROPS}
    assert all(0.2 < share < 0.7 for share in shares.values()), shares  # head and torso, never the legs
    assert shares["grace_hopper"] < shares["astronaut"] < shares["cameraman"]


def test_true_extent_walker_covers_only_its_body_share() -> None:
    sprite = load_sprite("astronaut")
    path = Trajectory.from_points([(0, 5.0, 0.5), (S, 5.0, 0.5)])
    (stand_in,) = Scene(CAM, [Walker(sprite, path, 1.75)]).render(0)[1]
    image, (true,) = Scene(CAM, [Walker(sprite, path, 1.75, true_extent=True)]).render(0)
    assert true.height_fraction == pytest.approx(stand_in.height_fraction)  # the same person
    drawn = (true.box[2] - true.box[0]) * H
    _, v_low = CAM.project(5.0, 0.5, 1.75 * (1.0 - sprite.body_share))  # where the cut-out ends
    _, v_head = CAM.project(5.0, 0.5, 1.75)
    assert drawn == pytest.approx(float(v_low - v_head), abs=1.5)
    assert true.visible_fraction == pytest.approx(drawn / H, abs=1.5 / H)
    assert drawn < 0.6 * stand_in.height_fraction * H
    assert true.box[0] * H == pytest.approx(float(v_head), abs=1.0)  # the head is where a standing one's is
    u_foot, v_foot = CAM.floor_to_pixel(5.0, 0.5)
    assert true.box[2] * H < v_foot - 10  # the legs are not drawn: floor below the cut-out
    below = image[int(true.box[2] * H) + 2 : int(v_foot), int(u_foot) - 2 : int(u_foot) + 2]
    floor = Scene(CAM).background[int(true.box[2] * H) + 2 : int(v_foot), int(u_foot) - 2 : int(u_foot) + 2]
    assert np.array_equal(below, floor)


def test_person_grows_as_they_come_closer(scene: Scene) -> None:
    heights = [scene.render(t)[1][0].height_fraction for t in (S, 2 * S, 3 * S, 4 * S)]
    assert heights == sorted(heights) and heights[-1] > 1.5 * heights[0]


def test_empty_times_show_only_the_floor(scene: Scene) -> None:
    image, truth = scene.render(0)
    assert truth == [] and np.array_equal(image, scene.background)


def test_synthetic_frames_are_deterministic_and_never_frozen(scene: Scene) -> None:
    a = SyntheticSource(scene, seed=3)
    b = SyntheticSource(scene, seed=3)
    assert np.array_equal(a.read(5, 0).image, b.read(5, 0).image)  # type: ignore[union-attr]
    monitor = HealthMonitor((H, W, 3))
    flags = [monitor.check(a.read(i, 0).image) for i in range(6)]  # type: ignore[union-attr]
    assert flags == [HealthFlag.OK] * 6  # a still scene still has read noise


def test_synthetic_source_ends_after_its_duration(scene: Scene) -> None:
    source = SyntheticSource(scene, duration_ns=S)
    assert source.read(0, S) is not None and source.read(1, S + 1) is None


def test_people_far_away_are_drawn_behind_near_ones() -> None:
    near = Walker(load_sprite("grace_hopper"), Trajectory.from_points([(0, 3.0, 0.0), (S, 3.0, 0.0)]))
    far = Walker(load_sprite("cameraman"), Trajectory.from_points([(0, 6.0, 0.0), (S, 6.0, 0.0)]))
    image, truths = Scene(CAM, [near, far]).render(0)
    alone, _ = Scene(CAM, [near]).render(0)
    y0, x0, y1, x1 = truths[-1].box
    assert truths[-1].name == "grace_hopper"
    h_px, w_px = (y1 - y0) * H, (x1 - x0) * W  # stay clear of the near cut-out's feathered edges
    region = (
        slice(int(y0 * H + 0.08 * h_px), int(y1 * H) - 2),
        slice(int(x0 * W + 0.08 * w_px), int(x1 * W - 0.08 * w_px)),
    )
    assert np.array_equal(image[region], alone[region])  # the far person is hidden where they overlap


def write_images(folder: Path, count: int, size: tuple[int, int] = (W, H)) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"frame_{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_image_sequence_from_folder_glob_and_list(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 3)
    for spec in (tmp_path, str(tmp_path / "frame_*.png"), paths):
        source = ImageSequenceSource(spec)
        assert (source.width_px, source.height_px) == (W, H)
        frames = [source.read(i, 0) for i in range(4)]
        assert frames[3] is None
        assert np.array_equal(frames[1].image, np.asarray(Image.open(paths[1])))  # type: ignore[union-attr]
    looped = ImageSequenceSource(tmp_path, loop=True)
    assert np.array_equal(looped.read(4, 0).image, looped.read(1, 0).image)  # type: ignore[union-attr]


def test_grey_images_become_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((H, W), 77, np.uint8)).save(tmp_path / "grey.png")
    frame = ImageSequenceSource(tmp_path / "grey.png").read(0, 0)
    assert frame is not None and frame.image.shape == (H, W, 3) and (frame.image == 77).all()


def test_image_sequence_errors_name_the_file(tmp_path: Path) -> None:
    write_images(tmp_path, 1)
    bad = tmp_path / "frame_001.png"
    bad.write_text("not an image")
    source = ImageSequenceSource(tmp_path)
    with pytest.raises(SourceError, match=r"frame_001\.png: not a readable image"):
        source.read(1, 0)
    with pytest.raises(SourceError, match="no images"):
        ImageSequenceSource(_empty(tmp_path))
    with pytest.raises(SourceError, match="matches no files"):
        ImageSequenceSource(str(tmp_path / "*.jpeg"))
    with pytest.raises(SourceError, match="no such file"):
        ImageSequenceSource(tmp_path / "missing.png")
    mixed_dir = tmp_path / "mixed"
    mixed_dir.mkdir()
    write_images(mixed_dir, 1)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(mixed_dir / "frame_zzz.png")
    mixed = ImageSequenceSource(mixed_dir)
    with pytest.raises(SourceError, match="10x10"):
        mixed.read(1, 0)


def _empty(folder: Path) -> Path:
    target = folder / "empty"
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_animated_image_is_a_video(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pages = [Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)) for _ in range(3)]
    path = tmp_path / "clip.png"
    pages[0].save(path, save_all=True, append_images=pages[1:])  # an animated PNG
    video = VideoSource(path)
    assert len(video.frames) == 3 and (video.width_px, video.height_px) == (W, H)
    assert np.array_equal(video.read(2, 0).image, np.asarray(pages[2]))  # type: ignore[union-attr]
    assert video.read(3, 0) is None


def test_container_video_without_pyav_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # as if the `video` extra were not installed
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(SourceError, match="PyAV"):
        VideoSource(path)


def _write_mp4(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}  # near-lossless, so the test can compare pixels
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_mp4_video_decodes_with_pyav(tmp_path: Path) -> None:
    pytest.importorskip("av")
    frames = []
    for k in range(5):  # flat colours with a moving block: survive lossy coding within a few levels
        image = np.full((H, W, 3), 40 + 30 * k, dtype=np.uint8)
        image[40:120, 20 + 40 * k : 100 + 40 * k] = (200, 30, 30)
        frames.append(image)
    path = tmp_path / "clip.mp4"
    _write_mp4(path, frames)
    video = VideoSource(path)
    assert len(video.frames) == 5 and (video.width_px, video.height_px) == (W, H)
    for k, expected in enumerate(frames):
        got = video.read(k, 0)
        assert got is not None and got.image.flags["C_CONTIGUOUS"]
        assert np.abs(got.image[60:100, 40 + 40 * k : 80 + 40 * k].astype(int) - (200, 30, 30)).max() < 25
        assert abs(int(got.image[200, 300, 0]) - int(expected[200, 300, 0])) < 8
    assert video.read(5, 0) is None


def test_broken_mp4_is_refused_with_the_file_name(tmp_path: Path) -> None:
    pytest.importorskip("av")
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(SourceError, match="broken.mp4"):
        VideoSource(path)


@pytest.mark.parametrize(
    ("fault", "flag"),
    [
        ("freeze", HealthFlag.FROZEN),
        ("cover", HealthFlag.LENS_COVERED),
        ("blind", HealthFlag.OVEREXPOSED),
        ("dark", HealthFlag.UNDEREXPOSED),
        ("bright", HealthFlag.OVEREXPOSED),
    ],
)
def test_injected_faults_trip_the_health_checks(scene: Scene, fault: str, flag: HealthFlag) -> None:
    source = FaultySource(SyntheticSource(scene), [(3, 4, fault)])
    monitor = HealthMonitor((H, W, 3))
    flags = [monitor.check(source.read(i, 3 * S).image) for i in range(7)]  # type: ignore[union-attr]
    assert flags[:3] == [HealthFlag.OK] * 3
    assert all(flag in f for f in flags[3:5])
    assert flags[6] == HealthFlag.OK
    with pytest.raises(ValueError, match="unknown fault"):
        FaultySource(source, [(0, 1, "smudge")])
