"""The controller on the safety link, on a simulated clock: frames and states over in-memory transports,
a corrupted frame fault-stops with its link reason until the operator's reset clears the link."""

from __future__ import annotations

import numpy as np
import pytest
from loop_support import MS, make_cell

from cobotguard.safety.clock import SimulatedClock
from cobotguard.safety.executor import Controller
from cobotguard.safety.reasons import CommandKind, Reason

link = pytest.importorskip("cobotguard.safety.link")
transport = pytest.importorskip("cobotguard.safety.link.transport")

START_NS = 1_000 * MS


class Peers:
    """The robot and the camera on the far ends of memory pairs, driven by the test on the simulated clock."""

    def __init__(self, cfg: object, clock: SimulatedClock) -> None:
        from cobotguard.safety.link_ports import link_ports

        self.clock = clock
        robot_ours, self.robot_wire = transport.memory_pair(read_timeout_ns=0)
        sensor_ours, self.sensor_wire = transport.memory_pair(read_timeout_ns=0)
        now = clock.now_ns()
        self.ports = link_ports(cfg, robot_ours, [sensor_ours], now, reader_threads=False)
        self.robot = link.robot_link_endpoint(cfg, link.Role.ROBOT, now)
        self.sensor = link.sensor_link_endpoint(cfg, "cam0", link.Role.SENSOR, now)
        self.counter = 0
        self.commands: list[object] = []
        self.corrupt_next_frame = False
        self.corrupt_next_state = False
        self.sensor_index = 0  # the index the camera writes into its frames

    def tick(self) -> None:
        """Once per controller cycle: read commands, answer with a state; a frame every 66 ms."""
        now = self.clock.now_ns()
        self.robot.feed(self.robot_wire.read(), now)
        self.commands += [e.message for e in link.drain(self.robot) if isinstance(e, link.Received)]
        state = bytearray(self.robot.send(link.RobotState(0.0, CommandKind.FAULT_STOP, True), now))
        if self.corrupt_next_state:
            state[len(state) // 2] ^= 0x10
            self.corrupt_next_state = False
        self.robot_wire.write(bytes(state))
        if (now - START_NS) % (66 * MS) == 0:
            frame = link.Detections(self.sensor_index, self.counter, 0, 0, 1000, now - 12 * MS, now - MS)
            data = bytearray(self.sensor.send(frame, now))
            if self.corrupt_next_frame:
                data[len(data) // 2] ^= 0x10
                self.corrupt_next_frame = False
            self.sensor_wire.write(bytes(data))
            self.counter = (self.counter + 1) % 256


def _run(controller: Controller, peers: Peers, cycles: int) -> None:
    """`cycles` controller cycles, the peers acting before each (one run() call: it collects garbage)."""
    done = [0]

    def until() -> bool:
        if done[0] == cycles:
            return True
        done[0] += 1
        peers.tick()
        return False

    controller.run(until=until)


@pytest.fixture
def wired() -> tuple[Controller, Peers]:
    cfg = make_cell()
    clock = SimulatedClock(START_NS)
    peers = Peers(cfg, clock)
    controller = Controller(
        cfg, peers.ports.sensor_source, peers.ports.robot_port, clock=clock, realtime=False
    )
    controller.arm()
    return controller, peers


def test_commands_and_frames_cross_the_link_and_the_cell_runs(wired: tuple[Controller, Peers]) -> None:
    controller, peers = wired
    _run(controller, peers, 150)
    controller.press_reset()
    _run(controller, peers, 50)
    assert len(peers.commands) >= 190  # the heartbeat, decoded by the robot's endpoint
    assert peers.commands[-1].kind == CommandKind.RUN  # type: ignore[attr-defined]
    assert controller.stats.frames_in >= 2 and controller.stats.link_faults == 0


@pytest.mark.requirement("SR-LINK-10")
def test_a_corrupt_frame_stops_with_its_reason_until_reset(wired: tuple[Controller, Peers]) -> None:
    controller, peers = wired
    _run(controller, peers, 150)
    controller.press_reset()
    _run(controller, peers, 20)
    assert int(controller.command[0]["kind"]) == CommandKind.RUN
    peers.corrupt_next_frame = True
    _run(controller, peers, 70)  # the next frame goes out within 66 cycles
    assert int(controller.command[0]["kind"]) == CommandKind.FAULT_STOP
    assert peers.commands[-1].kind == CommandKind.FAULT_STOP  # type: ignore[attr-defined]
    faults_before = controller.stats.link_faults
    _run(controller, peers, 30)
    assert controller.stats.link_faults - faults_before == 30  # latched: reported every cycle
    assert int(controller.command[0]["kind"]) == CommandKind.FAULT_STOP
    reasons = {int(peers.ports.sensor_source.take_fault())}
    assert reasons == {Reason.LINK_CORRUPTION}
    controller.press_reset()  # the operator's reset also clears the latched link
    _run(controller, peers, 5)
    assert peers.ports.sensor_source.take_fault() == 0


@pytest.mark.requirement("SR-LINK-8")
def test_a_frame_naming_another_sensor_latches_addressing_until_reset(
    wired: tuple[Controller, Peers],
) -> None:
    controller, peers = wired
    _run(controller, peers, 150)
    controller.press_reset()
    _run(controller, peers, 20)
    assert int(controller.command[0]["kind"]) == CommandKind.RUN
    peers.sensor_index = 3  # the only sensor's line now carries frames that name sensor 3
    _run(controller, peers, 70)
    assert _kind_reason(controller) == (CommandKind.FAULT_STOP, Reason.LINK_ADDRESSING)
    peers.sensor_index = 0  # good frames again: the link stays latched, no RUN without a reset
    _run(controller, peers, 140)
    assert _kind_reason(controller) == (CommandKind.FAULT_STOP, Reason.LINK_ADDRESSING)
    controller.press_reset()  # clears the link; the frames it dropped meanwhile read as a counter gap,
    _run(controller, peers, 250)  # which clears once consecutive frames arrive again
    controller.press_reset()
    _run(controller, peers, 5)
    assert int(controller.command[0]["kind"]) == CommandKind.RUN


def _kind_reason(controller: Controller) -> tuple[int, int]:
    return int(controller.command[0]["kind"]), int(controller.command[0]["reason"])


def _running_then_sensor_link_latched(wired: tuple[Controller, Peers]) -> None:
    controller, peers = wired
    _run(controller, peers, 150)
    controller.press_reset()
    _run(controller, peers, 20)
    assert _kind_reason(controller)[0] == CommandKind.RUN
    peers.corrupt_next_frame = True
    _run(controller, peers, 150)  # latched long enough that the sensor's data has gone stale
    assert _kind_reason(controller) == (CommandKind.FAULT_STOP, Reason.LINK_CORRUPTION)


@pytest.mark.requirement("SR-RST-6")
def test_one_reset_edge_clears_a_latched_link_and_restarts_when_the_data_is_still_fresh(
    wired: tuple[Controller, Peers],
) -> None:
    """A corrupt robot-state frame latches the robot link; a reset at once (the robot's and the sensor's
    data still within their age limits) clears the latch and restarts with that one edge."""
    controller, peers = wired
    _run(controller, peers, 150)
    controller.press_reset()
    _run(controller, peers, 20)
    peers.corrupt_next_state = True
    _run(controller, peers, 3)
    assert _kind_reason(controller) == (CommandKind.FAULT_STOP, Reason.LINK_CORRUPTION)
    controller.press_reset()
    _run(controller, peers, 2)
    assert _kind_reason(controller)[0] == CommandKind.RUN
    assert peers.ports.robot_port.take_fault() == 0


@pytest.mark.requirement("SR-RST-6")
def test_a_latch_that_outlasted_the_data_takes_a_second_edge_once_data_is_fresh(
    wired: tuple[Controller, Peers],
) -> None:
    """The decided rule: an edge acts only on the cycle it arrives. The first edge clears the link's
    latch, but the sensor's data went stale while latched, so there is nothing safe to restart on; the
    restart needs a new, deliberate edge once data is fresh again (a remembered edge would restart the
    robot later, at a moment nobody chose)."""
    controller, peers = wired
    _running_then_sensor_link_latched(wired)
    controller.press_reset()
    _run(controller, peers, 150)  # fresh frames flow again
    assert peers.ports.sensor_source.take_fault() == 0  # the latch is gone
    assert _kind_reason(controller) == (CommandKind.FAULT_STOP, Reason.RESTART_INTERLOCK)
    controller.press_reset()
    _run(controller, peers, 2)
    assert _kind_reason(controller)[0] == CommandKind.RUN


@pytest.mark.requirement("SR-RST-6")
def test_a_reset_held_high_clears_the_latch_once_and_never_restarts(wired: tuple[Controller, Peers]) -> None:
    controller, peers = wired
    _running_then_sensor_link_latched(wired)
    controller.set_reset(True)  # the rising edge clears the latch ...
    _run(controller, peers, 400)  # ... and holding the button, with fresh data for 0.4 s, restarts nothing
    assert peers.ports.sensor_source.take_fault() == 0
    assert _kind_reason(controller) == (CommandKind.FAULT_STOP, Reason.RESTART_INTERLOCK)
    controller.set_reset(False)
    _run(controller, peers, 2)
    assert _kind_reason(controller)[0] != CommandKind.RUN
    controller.set_reset(True)  # released and pressed again: a new edge
    _run(controller, peers, 2)
    assert _kind_reason(controller)[0] == CommandKind.RUN


def test_stale_bytes_from_before_arming_are_dropped() -> None:
    cfg = make_cell()
    clock = SimulatedClock(START_NS)
    peers = Peers(cfg, clock)
    old = link.Detections(0, 7, 0, 0, 1000, START_NS - 900 * MS, START_NS - 800 * MS)
    peers.sensor_wire.write(peers.sensor.send(old, START_NS - 800 * MS))  # queued while we compiled
    clock.advance(500 * MS)
    controller = Controller(
        cfg, peers.ports.sensor_source, peers.ports.robot_port, clock=clock, realtime=False
    )
    controller.arm()
    _run(controller, peers, 5)
    assert controller.stats.link_faults == 0  # not an unacceptable delay: it was never received
    assert np.all(controller.detections["frame_counter"] != 7)


def test_sensor_lines_open_at_their_own_serial_baud(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sensor's `serial_baud` sets its line's rate; a sensor without one runs at `link.baud`."""
    import cobotguard.safety.link_ports as lp

    opened: list[tuple[str, int]] = []

    def fake_open(spec: str, baud: int, ports: lp.ControllerPorts) -> object:
        opened.append((spec, baud))
        return object()

    monkeypatch.setattr(lp, "_open_transport", fake_open)
    monkeypatch.setattr(lp, "link_ports", lambda *args, **kwargs: lp.ControllerPorts(None, None))  # type: ignore[arg-type]
    cell = make_cell()
    sensor = next(iter(cell.sensors.values()))
    assert sensor.serial_baud
    lp.open_controller_ports(cell, "robot-line", "sensor-line", now_ns=0)
    assert opened == [("robot-line", cell.link.baud), ("sensor-line", sensor.serial_baud)]
    opened.clear()
    from cobotguard.safety.config_load import config_from_dict

    raw = cell.model_dump(mode="python")
    next(iter(raw["sensors"].values()))["serial_baud"] = None
    raw["link"]["baud"] = 2_000_000
    plain = config_from_dict(raw, "no serial_baud")
    lp.open_controller_ports(plain, "robot-line", "sensor-line", now_ns=0)
    assert opened == [("robot-line", 2_000_000), ("sensor-line", 2_000_000)]


# -- a sensor on its own clock, on the plain-Python ports (simulated time) ----------------------------


def test_a_sensor_on_its_own_clock_syncs_and_its_frames_arrive_in_controller_time() -> None:
    from config_support import default_raw

    from cobotguard.safety.config_load import config_from_dict
    from cobotguard.safety.link import Detections, Role, sensor_link_endpoint
    from cobotguard.safety.link_ports import link_ports
    from cobotguard.safety.records import empty_detections
    from cobotguard.sensor.clock import OwnClock, SyncResponder

    raw = default_raw()
    raw["sensors"]["cam0"].update(
        clock="own", clock_sync_period_ms=100.0, clock_error_limit_ms=2.0, clock_max_drift_ppm=100.0
    )
    cfg = config_from_dict(raw, "own clock")
    t = [10**9]
    sensor_clock = OwnClock(offset_ns=-42 * 10**9, drift_ppm=-100.0, base=lambda: t[0])
    robot_ours, _ = transport.memory_pair(read_timeout_ns=0)
    sensor_ours, sensor_wire = transport.memory_pair(read_timeout_ns=0)
    source = link_ports(cfg, robot_ours, [sensor_ours], t[0], reader_threads=False).sensor_source
    source.start(t[0])
    peer = sensor_link_endpoint(cfg, "cam0", Role.SENSOR, 0)
    responder = SyncResponder(peer, sensor_clock)
    frames = empty_detections(4)

    def frame() -> int:
        """One DETECTIONS frame exposed 10 ms ago (sensor clock) reaches the controller 0.5 ms later."""
        s = sensor_clock()
        sensor_wire.write(
            peer.send(Detections(0, 1 + source.clocks[0]["replies"] % 200, 0, 0, 10, s - 10**7, s - 10**6), s)
        )
        t[0] += 500_000
        return source.receive(t[0], frames)

    assert source.receive(t[0], frames) == 0 and sensor_wire.read() == b""  # not before a delimiter
    assert frame() == 0  # dropped (no estimate: its age is unknown); its delimiter lets the request go
    t[0] += 200_000
    sensor_wire.write(responder.receive(sensor_wire.read(), sensor_clock()))
    t[0] += 200_000
    assert source.receive(t[0], frames) == 0 and source.clocks[0]["has_estimate"] == 1
    assert frame() == 1
    exposure_age = t[0] - int(frames[0]["t_exposure_ns"])
    assert 10_500_000 <= exposure_age <= 10_500_000 + 2 * 400_000  # true age + at most twice the bound
    assert frames[0]["t_received_ns"] == t[0]
    while source.take_fault() == 0:  # frames keep coming; the next request is never answered
        t[0] += 30 * 10**6
        frame()
        sensor_wire.read()
    assert source.take_fault() == int(Reason.SENSOR_CLOCK_SYNC_LOST)
    request_t = int(source.clocks[0]["request_t_ns"])
    assert request_t + 100 * 10**6 < source.endpoints[0].error.t_ns <= request_t + 130 * 10**6 + 500_000


def test_after_a_reset_the_sync_request_waits_for_a_delimiter() -> None:
    """A receiver reset mid-stream drops the bytes before the next delimiter: a reply arriving first would
    be lost with them (and the sync with it), so the request waits for the sensor's next frame."""
    from config_support import default_raw

    from cobotguard.safety.config_load import config_from_dict
    from cobotguard.safety.link import Detections, Role, sensor_link_endpoint
    from cobotguard.safety.link_ports import link_ports
    from cobotguard.safety.records import empty_detections
    from cobotguard.sensor.clock import OwnClock, SyncResponder

    raw = default_raw()
    raw["sensors"]["cam0"].update(
        clock="own", clock_sync_period_ms=100.0, clock_error_limit_ms=2.0, clock_max_drift_ppm=100.0
    )
    cfg = config_from_dict(raw, "own clock")
    t = [10**9]
    sensor_clock = OwnClock(offset_ns=3600 * 10**9, base=lambda: t[0])
    robot_ours, _ = transport.memory_pair(read_timeout_ns=0)
    sensor_ours, sensor_wire = transport.memory_pair(read_timeout_ns=0)
    source = link_ports(cfg, robot_ours, [sensor_ours], t[0], reader_threads=False).sensor_source
    source.start(t[0])
    peer = sensor_link_endpoint(cfg, "cam0", Role.SENSOR, 0)
    peer.send(Detections(0, 1, 0, 0, 10, 0, 0), sensor_clock())  # sent before the reset: no preamble now
    responder = SyncResponder(peer, sensor_clock)
    frames = empty_detections(4)
    for _ in range(3):
        t[0] += 10**6
        assert source.receive(t[0], frames) == 0
        sensor_wire.write(responder.receive(sensor_wire.read(), sensor_clock()))
    assert source.clocks[0]["requests"] == 0  # nothing to answer yet: the sync cannot be lost
    s = sensor_clock()
    sensor_wire.write(peer.send(Detections(0, 2, 0, 0, 10, s - 10**7, s - 10**6), s))
    t[0] += 10**6
    assert source.receive(t[0], frames) == 0  # the frame's delimiter synchronises; the request goes out
    assert source.clocks[0]["requests"] == 1
    t[0] += 200_000
    sensor_wire.write(responder.receive(sensor_wire.read(), sensor_clock()))
    t[0] += 200_000
    assert source.receive(t[0], frames) == 0
    assert source.clocks[0]["has_estimate"] == 1 and source.take_fault() == 0
