"""The demo's camera: a process that renders the synthetic cell into shared memory ahead of exposure.

A real camera has its image at readout; rendering people onto a floor is the demo's cost, not the
sensor's latency. Rendering in a thread of the sensor's own process made the sensor thread wait for the
interpreter lock whenever the renderer held it while preempted by other load (the metadata then left
10 ms late, and the sensor link rightly rejected it). In its own process the renderer shares no lock with
the sensor: it fills a ring of frame slots in shared memory, never more than the ring ahead of the frame
the sensor asks for, and the sensor copies the slot out when it needs the frame.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from cobotguard.hil.demo_cell import NS_PER_S, PEOPLE, Visit

SLOTS = 8  # frames rendered ahead at most
POLL_S = 0.0005  # how often the sensor checks whether its frame is there yet
WAIT_FOR_FRAME_S = 5.0  # a frame not rendered in this time: the camera process is gone or stuck


class CameraError(RuntimeError):
    """The camera process failed; the message says why."""


class SharedFrameCamera:
    """A FrameSource whose frames a child process renders into shared memory (see the module docstring)."""

    def __init__(self, ctx: Any, sensor_cfg: Any, visits: list[Visit], frame_period_ns: int) -> None:
        from multiprocessing import shared_memory

        self.width_px = int(sensor_cfg.image_width_px)
        self.height_px = int(sensor_cfg.image_height_px)
        self._shape = (SLOTS, self.height_px, self.width_px, 3)
        self._shm = shared_memory.SharedMemory(create=True, size=int(np.prod(self._shape)))
        self._frames: np.ndarray = np.ndarray(self._shape, dtype=np.uint8, buffer=self._shm.buf)
        self._rendered = ctx.RawValue("q", -1)  # highest frame index in the ring
        self._wanted = ctx.RawValue("q", 0)  # the frame the sensor reads now; older slots may be reused
        self._stop = ctx.Event()
        self._errors = ctx.SimpleQueue()
        self._process = ctx.Process(
            target=_render_process,
            args=(
                self._shm.name,
                self._shape,
                sensor_cfg,
                visits,
                frame_period_ns,
                self._rendered,
                self._wanted,
                self._stop,
                self._errors,
            ),
            name="cobotguard-camera",
            daemon=True,
        )
        self._process.start()

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the first frame is rendered; CameraError if the process failed."""
        deadline = time.monotonic() + timeout_s
        while self._rendered.value < 0:
            self._check_alive()
            if time.monotonic() > deadline:
                raise CameraError(f"the camera process rendered nothing in {timeout_s:.0f} s")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        if not self._process.is_alive():
            why = self._errors.get() if not self._errors.empty() else "it ended without saying why"
            raise CameraError(f"the camera process failed: {why}")

    def read(self, index: int, t_ns: int) -> Any:
        """Frame `index` (a copy out of its slot); frames before it are given up for reuse."""
        from cobotguard.sensor.sources import Frame

        self._wanted.value = index
        deadline = time.monotonic() + WAIT_FOR_FRAME_S
        while self._rendered.value < index:
            if time.monotonic() > deadline:
                self._check_alive()
                raise CameraError(f"frame {index} was not rendered within {WAIT_FOR_FRAME_S:.0f} s")
            time.sleep(POLL_S)
        return Frame(self._frames[index % SLOTS].copy(), index)

    def close(self) -> None:
        """Stop the process and release the shared memory."""
        self._stop.set()
        self._process.join(timeout=2.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=2.0)
        del self._frames
        self._shm.close()
        self._shm.unlink()


def next_to_render(next_index: int, wanted: int, slots: int) -> int | None:
    """The frame the renderer should draw next, or None while the ring is full.

    Frames the sensor has already passed are skipped; a frame is drawn only while it is fewer than `slots`
    ahead of the one the sensor reads, so its slot never holds a frame the sensor still needs.
    """
    index = max(next_index, wanted)
    return index if index < wanted + slots else None


def _render_process(
    shm_name: str,
    shape: tuple[int, int, int, int],
    sensor_cfg: Any,
    visits: list[Visit],
    frame_period_ns: int,
    rendered: Any,
    wanted: Any,
    stop: Any,
    errors: Any,
) -> None:
    """Child process: render frame i (scene time i * period) into slot i % SLOTS, staying ahead."""
    from multiprocessing import shared_memory

    code = 0
    try:
        # the parent owns the segment and unlinks it; spawned children share its resource tracker, which
        # keeps one registration per name, so mapping it here adds nothing to clean up
        shm = shared_memory.SharedMemory(name=shm_name)
        frames: np.ndarray = np.ndarray(shape, dtype=np.uint8, buffer=shm.buf)
        source = synthetic_source(sensor_cfg, visits)
        index = 0
        while not stop.is_set():
            step = next_to_render(index, int(wanted.value), shape[0])
            if step is None:
                time.sleep(POLL_S)  # the ring is full: the sensor has not asked for these yet
                continue
            index = step
            frame = source.read(index, index * frame_period_ns)
            if frame is None:
                break
            frames[index % shape[0]] = frame.image
            rendered.value = index
            index += 1
        del frames
        shm.close()
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")
        code = 1
    os._exit(code)


def synthetic_source(sensor_cfg: Any, visits: list[Visit]) -> Any:
    """The synthetic cell seen by the configured camera, with the demo's people walking in."""
    from cobotguard.safety.camera import CameraModel
    from cobotguard.sensor.scene import Scene, Trajectory, Walker, load_sprite
    from cobotguard.sensor.sources import SyntheticSource

    camera = CameraModel.from_config(sensor_cfg)
    try:
        sprites = {person: load_sprite(person) for person in PEOPLE}
    except ImportError as exc:
        raise CameraError(
            f"the demo's people are photos that ship inside matplotlib and scikit-image ({exc.name} is "
            "missing): pip install 'cobotguard[demo]'"
        ) from None
    walkers = [Walker(sprites[v.person], Trajectory.from_points(v.waypoints())) for v in visits]
    return SyntheticSource(Scene(camera, walkers), duration_ns=None)


__all__ = ["NS_PER_S", "CameraError", "SharedFrameCamera", "next_to_render", "synthetic_source"]
