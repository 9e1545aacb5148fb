"""hil.traffic: the sensor peer's frames, and a compiled controller on a Traffic reaching RUN.

Behaviour only (frames decoded, states reached, the child process ended), never durations.
"""

from __future__ import annotations

import threading
import time

import pytest
from config_support import DEFAULT_CELL

from cobotguard.hil.traffic import SensorPeer, Traffic
from cobotguard.safety.config import CellConfig, ns
from cobotguard.safety.config_load import load_config
from cobotguard.safety.link import Detections, Received, Role, sensor_link_endpoint
from cobotguard.safety.reasons import CommandKind
from cobotguard.safety.timing import frame_period_ns

GUARD_S = 60.0  # a guard against hanging (the loop compiles first), never an assertion on speed


def decode(cfg: CellConfig, frames: list[tuple[bytes, int]]) -> list[Received]:
    """(frame, arrival time) pairs through a controller-side sensor endpoint: what it accepted."""
    receiver = sensor_link_endpoint(cfg, "cam0", Role.SENSOR_RECEIVER, frames[0][1])
    out = []
    for frame, t in frames:
        receiver.feed(frame, t)
        while isinstance(event := receiver.next_event(), Received):
            out.append(event)
    return out


def test_sensor_peer_sends_an_empty_healthy_cell_with_counters_and_stage_times() -> None:
    cfg = load_config(DEFAULT_CELL)
    sensor = cfg.sensors["cam0"]
    t0 = 10**12
    peer = SensorPeer(cfg, "cam0", 0, t0)
    peer.sent = 254  # the counter wraps at 256
    period = frame_period_ns(sensor.frame_rate_hz)
    times = [t0 + k * period for k in range(3)]
    received = decode(cfg, [(peer.frame(t), t) for t in times])
    assert len(received) == 3
    messages = [r.message for r in received]
    assert all(isinstance(m, Detections) for m in messages)
    assert [m.frame_counter for m in messages] == [254, 255, 0]  # type: ignore[union-attr]
    inference = ns(sensor.inference_worst_ms) // 2
    for t, r in zip(times, received, strict=True):
        m = r.message
        assert isinstance(m, Detections)
        assert (m.sensor_index, m.person_count, m.health) == (0, 0, 0)
        assert m.t_inference_done_ns == t == r.t_sent_ns
        assert m.t_exposure_ns == t - ns(sensor.exposure_readout_ms) - inference


def test_sensor_peer_schedule_skips_slots_that_are_over() -> None:
    cfg = load_config(DEFAULT_CELL)
    peer = SensorPeer(cfg, "cam0", 0, 1_000)
    assert peer.due(1_000) and not peer.due(1_001)
    assert peer.due(1_000 + peer.period_ns)
    late = 1_000 + 10 * peer.period_ns
    assert peer.due(late) and not peer.due(late + 1)  # one frame for the missed slots, then on schedule
    assert peer.next_ns == late + peer.period_ns


def test_a_compiled_controller_on_traffic_runs_after_a_reset_and_the_peers_stop_on_close() -> None:
    from cobotguard.safety.compiled_controller import CompiledController

    cfg = load_config(DEFAULT_CELL)
    data = cfg.model_dump()  # a worst step that covers a noisy shared machine: no overrun stops here
    data["controller"].update(worst_step_ms=10.0, robot_state_timeout_ms=60.0)
    data["link"].update(command_watchdog_ms=80.0)
    cfg = type(cfg).model_validate(data)
    traffic = Traffic(cfg)
    controller = CompiledController(cfg, traffic.robot_fd, traffic.sensor_fds, realtime=False)
    thread: threading.Thread | None = None
    try:
        assert traffic.alive
        controller.arm()
        thread = threading.Thread(target=controller.run, daemon=True)
        thread.start()
        give_up = time.monotonic() + GUARD_S
        while controller.command[0]["kind"] != CommandKind.RUN and time.monotonic() < give_up:
            controller.press_reset()
            time.sleep(0.05)
        assert controller.command[0]["kind"] == CommandKind.RUN
        assert controller.robot[0]["t_received_ns"] > 0  # the robot answers
        assert controller.stats.frames_in > 0  # the sensor sends
    finally:
        controller.stop()
        if thread is not None:
            thread.join(GUARD_S)
        controller.close()
        traffic.close()
    assert not traffic.alive
    traffic.close()  # idempotent


@pytest.mark.parametrize("cpus", [None, {0}])
def test_traffic_gives_one_tty_per_link_and_ends_its_peers(cpus: set[int] | None) -> None:
    import os

    cfg = load_config(DEFAULT_CELL)
    with Traffic(cfg, peer_cpus=cpus) as traffic:
        assert len(traffic.sensor_fds) == len(cfg.sensors)
        assert all(os.isatty(fd) for fd in [traffic.robot_fd, *traffic.sensor_fds])
        assert traffic.alive
    assert not traffic.alive
