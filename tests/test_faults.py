"""Fault injectors as stream transforms: what each one writes, and when, for a run of frames."""

from __future__ import annotations

import struct
import zlib

import pytest
from hil_cell import make_cell

from cobotguard.hil import faults as fl
from cobotguard.safety.reasons import Reason
from cobotguard.safety.timing import frame_period_ns

MS = 1_000_000


class ToyCodec:
    """A transparent stand-in for the link's encoder: header, payload, CRC, then a 0x00 delimiter."""

    head = struct.Struct("<BHQq")

    def encode(self, msg_type: int, connection_id: int, seq: int, t_sent_ns: int, payload: bytes) -> bytes:
        body = self.head.pack(msg_type, connection_id, seq, t_sent_ns) + payload
        return body + struct.pack("<I", zlib.crc32(body)) + b"\x00"

    def flip_bit(self, wire: bytes, bit: int) -> bytes:
        out = bytearray(wire)
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    def decode(self, wire: bytes) -> tuple[int, int, int, int, bytes, bool]:
        body, crc = wire[:-5], struct.unpack("<I", wire[-5:-1])[0]
        msg_type, cid, seq, t = self.head.unpack_from(body)
        return msg_type, cid, seq, t, body[self.head.size :], zlib.crc32(body) == crc


CODEC = ToyCodec()


def frames(n: int, start_seq: int = 7, period_ns: int = 10 * MS) -> list[fl.OutFrame]:
    out = []
    for i in range(n):
        t = 1_000 * MS + i * period_ns
        payload = bytes([i]) * 5
        wire = CODEC.encode(3, 101, start_seq + i, t, payload)
        out.append(fl.OutFrame(t, 3, 101, start_seq + i, t, payload, wire))
    return out


def run(injector: fl.Injector, n: int = 4) -> list[tuple[int, bytes]]:
    writes = []
    for f in frames(n):
        writes += injector.push(f, CODEC)
    return writes


def seqs(writes: list[tuple[int, bytes]]) -> list[int]:
    return [CODEC.decode(w)[2] for _, w in writes if w.endswith(b"\x00") and len(w) > 20]


def test_pass_through_base_injector_changes_nothing():
    writes = run(fl.Injector())
    assert writes == [(f.t_ns, f.wire) for f in frames(4)]


def test_corrupt_flips_one_bit_of_the_first_frame_only():
    inj = fl.Corrupt(bit=13)
    writes = run(inj)
    original = frames(4)
    assert [t for t, _ in writes] == [f.t_ns for f in original]
    diff = [bin(a ^ b).count("1") for a, b in zip(writes[0][1], original[0].wire, strict=True)]
    assert sum(diff) == 1
    assert CODEC.decode(writes[0][1])[5] is False
    assert [w for _, w in writes[1:]] == [f.wire for f in original[1:]]
    assert inj.acted_ns == original[0].t_ns


def test_repeat_writes_the_same_bytes_twice_once():
    assert seqs(run(fl.Repeat())) == [7, 7, 8, 9, 10]


def test_reorder_writes_a_frame_again_after_its_successor():
    inj = fl.Reorder()
    writes = run(inj)
    assert seqs(writes) == [7, 8, 7, 9, 10]
    # the late copy goes out with its successor, at the successor's time
    assert writes[1][0] == writes[2][0] == frames(4)[1].t_ns
    assert inj.acted_ns == frames(4)[1].t_ns


def test_drop_loses_exactly_count_frames():
    inj = fl.Drop()
    assert seqs(run(inj)) == [8, 9, 10]
    assert inj.acted_ns == frames(1)[0].t_ns
    assert seqs(run(fl.Drop(2))) == [9, 10]


def test_delay_shifts_every_frame_and_keeps_order():
    writes = run(fl.Delay(30 * MS))
    assert [t for t, _ in writes] == [f.t_ns + 30 * MS for f in frames(4)]
    assert seqs(writes) == [7, 8, 9, 10]


def test_insert_adds_a_valid_frame_with_the_next_sequence_number_but_an_old_time():
    writes = run(fl.Insert(age_ns=5_000 * MS))
    assert seqs(writes) == [7, 7, 8, 9, 10]
    inserted = CODEC.decode(writes[0][1])
    assert inserted[5] is True  # correctly protected
    assert inserted[3] == frames(1)[0].t_sent_ns - 5_000 * MS


def test_masquerade_and_readdress_re_encode_with_a_valid_crc():
    m = run(fl.Masquerade(msg_type=1))[0][1]
    assert CODEC.decode(m)[0] == 1 and CODEC.decode(m)[5]
    a = run(fl.Readdress(0xBEEF))[0][1]
    assert CODEC.decode(a)[1] == 0xBEEF and CODEC.decode(a)[5]
    # the payload and sequence number are untouched
    assert CODEC.decode(a)[2] == 7 and CODEC.decode(a)[4] == bytes([0]) * 5


def test_garbage_precedes_the_frame_and_ends_with_a_delimiter():
    writes = run(fl.Garbage())
    assert writes[0][1].endswith(b"\x00")
    assert seqs(writes[1:]) == [7, 8, 9, 10]


def test_silence_writes_nothing_at_all():
    inj = fl.Silence()
    assert run(inj) == []
    assert inj.acted_ns == frames(1)[0].t_ns


def test_catalogue_covers_every_iec_61784_3_class_and_the_extra_faults():
    names = fl.fault_names()
    assert len(names) == len(set(names))
    link_reasons = {r for f in fl.FAULTS if "iec61784-3" in f.tags for r in f.expected}
    assert link_reasons == {
        Reason.LINK_CORRUPTION,
        Reason.LINK_REPETITION,
        Reason.LINK_INCORRECT_SEQUENCE,
        Reason.LINK_LOSS,
        Reason.LINK_UNACCEPTABLE_DELAY,
        Reason.LINK_INSERTION,
        Reason.LINK_MASQUERADE,
        Reason.LINK_ADDRESSING,
    }
    for extra in ("sensor_silence", "robot_heartbeat_loss", "garbage_bytes", "wrong_connection_id"):
        assert extra in names
    with pytest.raises(KeyError, match="known"):
        fl.get_fault("nope")


def test_deadlines_follow_the_configuration():
    cell = make_cell()  # cycle 1 ms, worst step 0.1 ms, max delay 10 ms, transport 2 ms, state timeout 20 ms
    assert fl.receipt_deadline_ns(cell) == 10 * MS + 1 * MS + 100_000
    from cobotguard.safety.link import Role, robot_link_policy, sensor_link_policy

    # 10 ms beyond what the receiving end tolerates on that link
    sensor_limit = sensor_link_policy(cell, "cam").max_delay_ns
    assert fl.delay_injected_ns(cell, "sensor") == sensor_limit + 10 * MS
    assert (
        fl.delay_injected_ns(cell, "robot") == robot_link_policy(cell, Role.CONTROLLER).max_delay_ns + 10 * MS
    )
    assert fl.heartbeat_deadline_ns(cell) == 20 * MS + fl.receipt_deadline_ns(cell)
    for fault in fl.FAULTS:
        if not fl.applies(fault, cell):
            assert "sensor-clock" in fault.tags  # only the clock faults need a sensor on its own clock
            continue
        assert fault.deadline_ns(cell) > 0
        assert isinstance(fault.make(cell), fl.Injector)
    # a misrouted sensor frame carries the robot link's ID, a misrouted robot frame a sensor's
    assert fl._foreign_id(cell, "sensor") == cell.link.connection_id
    assert fl._foreign_id(cell, "robot") == cell.sensors["cam"].connection_id


# ---------------------------------------------------------------------------------------------------
# Against the real link: each injected fault is detected by the receiving endpoint and named as expected


def link_run(fault: fl.Fault, n: int = 12, latency_ns: int = 300_000) -> list:
    """Simulated time: the rig's endpoint sends a frame per period through the injector; the controller's
    endpoint receives it `latency_ns` later and checks its watchdog every millisecond."""
    from cobotguard.safety.link import NEED_DATA, Detections, LinkError, RobotState, Role
    from cobotguard.safety.link.setup import robot_link_endpoint, sensor_link_endpoint
    from cobotguard.safety.reasons import CommandKind

    cell = make_cell()
    t = 1_000_000 * MS
    if fault.link == "sensor":
        tx = sensor_link_endpoint(cell, "cam", Role.SENSOR, t)
        rx = sensor_link_endpoint(cell, "cam", Role.SENSOR_RECEIVER, t)
        period = frame_period_ns(cell.sensors["cam"].frame_rate_hz)

        def message(i: int):
            return Detections(0, i % 256, 0, 0, 12_000, t + i * period - 22 * MS, t + i * period)

    else:
        tx = robot_link_endpoint(cell, Role.ROBOT, t)
        rx = robot_link_endpoint(cell, Role.CONTROLLER, t)
        period = fl.robot_state_period_ns(cell)

        def message(i: int):
            return RobotState(1.0, CommandKind.RUN, False, -1)

    codec = fl.LinkCodec()
    injector = fault.make(cell)
    writes: list[tuple[int, bytes]] = []
    for i in range(n):
        now = t + i * period
        out = codec.out_frame(now, tx.send(message(i), now))
        writes += injector.push(out, codec) if i >= 3 else [(out.t_ns, out.wire)]
    errors = []
    end = t + n * period + 200 * MS
    pending = sorted(writes, key=lambda w: w[0])
    now = t
    while now < end:
        while pending and pending[0][0] + latency_ns <= now:
            rx.feed(pending.pop(0)[1], now)
        while (event := rx.next_event()) is not NEED_DATA:
            if isinstance(event, LinkError):
                errors.append(event)
        if (err := rx.check_watchdog(now)) is not None:
            errors.append(err)
        now += MS
    return errors, injector


@pytest.mark.parametrize("name", [f.name for f in fl.FAULTS if f.endpoint_detects])
def test_each_fault_is_named_by_the_receiving_endpoint(name):
    fault = fl.get_fault(name)
    errors, injector = link_run(fault)
    assert errors, f"{name}: the receiver noticed nothing"
    assert errors[0].reason in fault.expected, f"{name}: {errors[0]}"
    assert injector.acted_ns is not None
    # detected within the fault's deadline (simulated time: the receiver's own view)
    assert errors[0].t_ns - injector.acted_ns <= fault.deadline_ns(make_cell())


def test_unfaulted_stream_is_accepted_without_errors():
    clean = fl.Fault("none", "", "sensor", frozenset(), lambda c: 1, lambda c: fl.Injector())
    errors, _ = link_run(clean, n=6)
    # only the watchdog after the stream ends
    assert [e.reason for e in errors] == [Reason.LINK_TIMEOUT]
    clean_robot = fl.Fault("none", "", "robot", frozenset(), lambda c: 1, lambda c: fl.Injector())
    errors, _ = link_run(clean_robot, n=6)
    assert [e.reason for e in errors] == [Reason.LINK_TIMEOUT]


class _FullPort:
    """A port whose buffer stays full: every write times out (a controller that stopped reading)."""

    def __init__(self) -> None:
        self.attempts = 0

    def write(self, data: bytes) -> None:
        from cobotguard.safety.link.transport import TransportError

        self.attempts += 1
        raise TransportError("pty: write timed out, 48 bytes not taken")


def test_the_rig_loses_bytes_a_stalled_controller_does_not_take_instead_of_failing() -> None:
    """Like a serial line, the rig's writes never fail the session: lost bytes are counted (the
    controller's link detects the gap and stops; the rig's report notes the count)."""
    from cobotguard.hil.session import Session

    robot, sensor = _FullPort(), _FullPort()
    session = Session(make_cell(), robot, [sensor], press_reset=None)
    session._send_state(session.now())
    session.start_streaming()
    session._send_frame(session.sensors[0])
    assert (robot.attempts, sensor.attempts) == (1, 1)
    assert session.writes_dropped == 2


# ---------------------------------------------------------------------------------------------------
# Sensor clock faults (a first sensor with clock = "own", docs/protocol.md section 14)


def own_clock_cell():  # type: ignore[no-untyped-def]
    """The test cell with its camera on its own clock: sync every 20 ms, timeout 30 ms, limit 2 ms."""
    cell = make_cell()
    cam = cell.sensors["cam"].model_copy(
        update={
            "clock": "own",
            "clock_sync_period_ms": 20.0,
            "clock_sync_timeout_ms": 30.0,
            "clock_error_limit_ms": 2.0,
            "clock_max_drift_ppm": 100.0,
        }
    )
    return cell.model_copy(update={"sensors": {"cam": cam}})


def test_clock_faults_apply_only_to_a_sensor_on_its_own_clock():
    clock_faults = [f for f in fl.FAULTS if "sensor-clock" in f.tags]
    assert {f.name for f in clock_faults} == {
        "sensor_clock_jump_forward",
        "sensor_clock_jump_back",
        "sensor_clock_drift",
        "sensor_sync_silence",
    }
    shared, own = make_cell(), own_clock_cell()
    assert not any(fl.applies(f, shared) for f in clock_faults)
    assert all(fl.applies(f, own) for f in fl.FAULTS)
    with pytest.raises(ValueError, match="shares the controller's clock"):
        fl.sync_lost_deadline_ns(shared)


def test_clock_fault_deadlines_follow_the_configuration():
    cell = own_clock_cell()  # cycle 1 ms, worst step 0.1 ms, frame period 33.3 ms, transport 2 ms
    cycle = 1 * MS + 100_000
    # a jump shows in the next reply (20 ms) or frame, whichever first, then the link's delay limit (the
    # transport latency plus the clock error limit) and one cycle
    assert fl.clock_jump_deadline_ns(cell) == 20 * MS + (2 + 2) * MS + cycle
    assert fl.sync_lost_deadline_ns(cell) == 20 * MS + 30 * MS + cycle
    assert fl.excess_drift_ppm(cell) == 100.0 + fl.EXCESS_DRIFT_PPM
    apart = -(-2 * 2 * MS * 10**6 // int(fl.EXCESS_DRIFT_PPM))  # two limits apart at the excess rate
    assert fl.drift_deadline_ns(cell) == apart + 20 * MS + 30 * MS + cycle


class FakeStream:
    """What the clock faults act on: a sensor stream's clock and its sync switch."""

    def __init__(self) -> None:
        from cobotguard.sensor.clock import OwnClock

        self.t = [10**9]
        self.clock = OwnClock(offset_ns=-42 * 10**9, drift_ppm=-100.0, base=lambda: self.t[0])
        self.answer_sync = True


def frame_at(t_ns: int) -> fl.OutFrame:
    return fl.OutFrame(t_ns, 2, 0x0101, 7, t_ns, b"", b"\x01\x00")


@pytest.mark.parametrize("step_s", [1, -1])
def test_clock_jump_steps_the_sensor_clock_once_and_passes_frames(step_s: int):
    stream = FakeStream()
    name = "sensor_clock_jump_" + ("forward" if step_s > 0 else "back")
    injector = fl.get_fault(name).make(own_clock_cell())
    injector.bind(stream)
    before = stream.clock()
    assert injector.push(frame_at(5), fl.LinkCodec()) == [(5, b"\x01\x00")]
    assert injector.acted_ns == 5 and stream.clock() - before == step_s * 10**9
    injector.push(frame_at(6), fl.LinkCodec())
    assert stream.clock() - before == step_s * 10**9  # once only
    injector.end()
    assert stream.clock() - before == step_s * 10**9  # a clock set stays set


def test_drift_and_sync_faults_act_and_are_undone_at_the_end():
    stream, cell = FakeStream(), own_clock_cell()
    drift = fl.get_fault("sensor_clock_drift").make(cell)
    drift.bind(stream)
    drift.push(frame_at(5), fl.LinkCodec())
    assert stream.clock.drift_ppm == fl.excess_drift_ppm(cell)
    drift.end()
    assert stream.clock.drift_ppm == -100.0
    mute = fl.get_fault("sensor_sync_silence").make(cell)
    mute.bind(stream)
    mute.push(frame_at(5), fl.LinkCodec())
    assert not stream.answer_sync
    mute.end()
    assert stream.answer_sync


def test_the_rig_refuses_a_sensor_clock_it_cannot_apply():
    from cobotguard.hil.cli.common import CommandError
    from cobotguard.hil.cli.hil import _check_sensor_clock

    _check_sensor_clock(make_cell(), 0.0, 0.0)  # nothing asked: any cell
    with pytest.raises(CommandError, match='clock = "own"'):
        _check_sensor_clock(make_cell(), -42.0, 0.0)
    _check_sensor_clock(own_clock_cell(), -42.0, -100.0)
    with pytest.raises(CommandError, match="beyond sensors.cam.clock_max_drift_ppm"):
        _check_sensor_clock(own_clock_cell(), -42.0, -150.0)
    with pytest.raises(CommandError, match="finite"):
        _check_sensor_clock(own_clock_cell(), float("nan"), 0.0)
