"""The endpoint: every IEC 61784-3 error class detected and named, the watchdog, latching and reset."""

import pytest
from link_support import CONNECTION_ID, MS, POLICY, RUN, STATE, STOP, detections, endpoint, synced

from cobotguard.safety.config_load import load_config
from cobotguard.safety.link import (
    NEED_DATA,
    TRANSITIONS,
    Command,
    Endpoint,
    Header,
    Input,
    LinkError,
    LinkPolicy,
    LocalProtocolError,
    MessageType,
    Pair,
    Received,
    ReceiverState,
    Role,
    drain,
    encode_frame,
    encode_payload,
    encode_raw_frame,
    link_error_reasons,
    robot_link_endpoint,
    sensor_link_endpoint,
)
from cobotguard.safety.link.cobs import cobs_encode
from cobotguard.safety.reasons import Reason


def frame(message=RUN, seq=0, t=1 * MS, cid=CONNECTION_ID) -> bytes:  # type: ignore[no-untyped-def]
    return encode_frame(message, cid, seq, t)


def receive(ep: Endpoint, *frames: bytes, t: int = 2 * MS) -> list:  # type: ignore[type-arg]
    ep.feed(b"".join(frames), t)
    return drain(ep)


def only_error(events: list) -> LinkError:  # type: ignore[type-arg]
    errors = [e for e in events if isinstance(e, LinkError)]
    assert len(errors) == 1, events
    return errors[0]


# ------------------------------------------------------------------ normal operation


def test_pair_exchanges_commands_and_states() -> None:
    pair = Pair(endpoint(Role.CONTROLLER), endpoint(Role.ROBOT))
    for i in range(5):
        (ev,) = pair.a_to_b(RUN, t_send_ns=(i + 1) * MS, t_receive_ns=(i + 1) * MS + 300_000)
        assert isinstance(ev, Received) and ev.message == RUN and ev.seq == i
        assert ev.t_sent_ns == (i + 1) * MS and ev.t_received_ns == (i + 1) * MS + 300_000
        (back,) = pair.b_to_a(STATE, t_send_ns=(i + 1) * MS + 400_000)
        assert isinstance(back, Received) and back.message == STATE
    assert pair.a.state is pair.b.state is ReceiverState.CONNECTED
    assert pair.b.last_received_seq == 4 and pair.a.next_seq == 5


def test_first_frame_carries_a_delimiter_so_a_fresh_receiver_syncs() -> None:
    ctl = endpoint(Role.CONTROLLER)
    first = ctl.send(RUN, MS)
    assert first[0] == 0 and ctl.send(RUN, 2 * MS)[0] != 0
    robot = endpoint(Role.ROBOT)
    assert [type(e) for e in receive(robot, first)] == [Received]


def test_bytes_before_the_first_delimiter_are_skipped() -> None:
    robot = endpoint(Role.ROBOT)
    tail_of_a_frame = frame()[5:]
    events = receive(robot, tail_of_a_frame, frame(seq=1, t=1_500_000))
    assert [type(e) for e in events] == [Received]
    assert robot.stats.bytes_dropped == len(tail_of_a_frame) - 1


def test_frames_split_across_feeds_are_reassembled() -> None:
    robot = synced(Role.ROBOT)
    data = frame() + frame(seq=1, t=1_500_000)
    for i in range(len(data)):
        robot.feed(data[i : i + 1], 2 * MS)
    assert [e.seq for e in drain(robot)] == [0, 1]


def test_records_carry_link_times() -> None:
    pair = Pair(endpoint(Role.SENSOR), endpoint(Role.SENSOR_RECEIVER))
    (ev,) = pair.a_to_b(detections(2), t_send_ns=MS, t_receive_ns=3 * MS)
    rec = ev.to_record()
    assert rec["t_sent_ns"][0] == MS and rec["t_received_ns"][0] == 3 * MS and rec["person_count"][0] == 2


def test_awaiting_first_is_not_latched_and_has_no_watchdog() -> None:
    robot = endpoint(Role.ROBOT)
    assert robot.check_watchdog(10_000 * MS) is None
    assert robot.state is ReceiverState.AWAITING_FIRST


# ------------------------------------------------------------------ the eight error classes + watchdog


@pytest.mark.requirement("SR-LINK-1")
def test_corruption() -> None:
    bad = bytearray(frame())
    bad[10] ^= 0x04
    err = only_error(receive(synced(Role.ROBOT), bytes(bad)))
    assert err.reason is Reason.LINK_CORRUPTION and "CRC" in err.detail


@pytest.mark.requirement("SR-LINK-1")
def test_corruption_by_garbage_without_delimiter() -> None:
    err = only_error(receive(synced(Role.ROBOT), b"\x55" * 600))
    assert err.reason is Reason.LINK_CORRUPTION and "no frame delimiter" in err.detail


@pytest.mark.requirement("SR-LINK-2")
def test_unintended_repetition() -> None:
    events = receive(synced(Role.ROBOT), frame(seq=3), frame(seq=3))
    assert isinstance(events[0], Received)
    assert only_error(events).reason is Reason.LINK_REPETITION


@pytest.mark.requirement("SR-LINK-3")
def test_incorrect_sequence() -> None:
    events = receive(synced(Role.ROBOT), frame(seq=3, t=MS), frame(seq=4, t=MS + 1), frame(seq=3, t=MS))
    assert only_error(events).reason is Reason.LINK_INCORRECT_SEQUENCE


@pytest.mark.requirement("SR-LINK-4")
def test_loss() -> None:
    events = receive(synced(Role.ROBOT), frame(seq=3, t=MS), frame(seq=5, t=MS + 10))
    err = only_error(events)
    assert err.reason is Reason.LINK_LOSS and "1 frame(s) lost" in err.detail


@pytest.mark.requirement("SR-LINK-4")
def test_loss_within_tolerance_is_accepted() -> None:
    policy = LinkPolicy(max_delay_ns=20 * MS, watchdog_ns=50 * MS, tolerated_losses=1)
    events = receive(synced(Role.ROBOT, policy), frame(seq=3, t=MS), frame(seq=5, t=MS + 10))
    assert all(isinstance(e, Received) for e in events)
    events = receive(synced(Role.ROBOT, policy), frame(seq=3, t=MS), frame(seq=6, t=MS + 10))
    assert only_error(events).reason is Reason.LINK_LOSS


@pytest.mark.requirement("SR-LINK-3")
def test_sequence_wraps_around() -> None:
    events = receive(synced(Role.ROBOT), frame(seq=0xFFFFFFFF, t=MS), frame(seq=0, t=MS + 10))
    assert all(isinstance(e, Received) for e in events)


@pytest.mark.requirement("SR-LINK-5")
def test_unacceptable_delay() -> None:
    err = only_error(receive(synced(Role.ROBOT), frame(t=MS), t=MS + POLICY.max_delay_ns + 1))
    assert err.reason is Reason.LINK_UNACCEPTABLE_DELAY
    assert isinstance(receive(synced(Role.ROBOT), frame(t=MS), t=MS + POLICY.max_delay_ns)[0], Received)


@pytest.mark.requirement("SR-LINK-5")
def test_sender_time_ahead_of_the_receiver_is_a_delay_error() -> None:
    err = only_error(receive(synced(Role.ROBOT), frame(t=10 * MS), t=10 * MS - POLICY.max_clock_lead_ns - 1))
    assert err.reason is Reason.LINK_UNACCEPTABLE_DELAY and "ahead" in err.detail


@pytest.mark.requirement("SR-LINK-5")
def test_a_sender_clock_exactly_the_default_lead_ahead_is_accepted_one_ns_more_is_not() -> None:
    # docs/protocol.md: the maximum clock lead defaults to 1 ms, and the bound itself is acceptable
    assert isinstance(receive(synced(Role.ROBOT), frame(t=10 * MS), t=9 * MS)[0], Received)
    err = only_error(receive(synced(Role.ROBOT), frame(t=10 * MS), t=9 * MS - 1))
    assert err.reason is Reason.LINK_UNACCEPTABLE_DELAY


@pytest.mark.requirement("SR-LINK-3")
def test_half_the_sequence_space_ahead_is_out_of_order_just_below_it_is_loss() -> None:
    # a difference of 2**31 is as far behind as ahead: the receiver must not take it for frames lost
    events = receive(synced(Role.ROBOT), frame(seq=0, t=MS), frame(seq=2**31, t=MS + 10))
    assert only_error(events).reason is Reason.LINK_INCORRECT_SEQUENCE
    events = receive(synced(Role.ROBOT), frame(seq=0, t=MS), frame(seq=2**31 - 1, t=MS + 10))
    assert only_error(events).reason is Reason.LINK_LOSS


@pytest.mark.requirement("SR-LINK-5")
def test_clock_offset_is_applied() -> None:
    policy = LinkPolicy(max_delay_ns=20 * MS, watchdog_ns=50 * MS, clock_offset_ns=1_000 * MS)
    events = receive(synced(Role.ROBOT, policy), frame(t=MS), t=1_001 * MS + 5 * MS)
    assert isinstance(events[0], Received)


@pytest.mark.requirement("SR-LINK-6")
def test_insertion() -> None:
    # next sequence number, but a sender time that did not advance: not from the peer's stream
    events = receive(synced(Role.ROBOT), frame(seq=3, t=5 * MS), frame(seq=4, t=5 * MS - 10_000), t=6 * MS)
    assert only_error(events).reason is Reason.LINK_INSERTION


@pytest.mark.requirement("SR-LINK-7")
def test_masquerade_by_foreign_type() -> None:
    err = only_error(receive(synced(Role.SENSOR_RECEIVER), frame(RUN)))
    assert err.reason is Reason.LINK_MASQUERADE and "not a type this end accepts" in err.detail


@pytest.mark.requirement("SR-LINK-7")
def test_masquerade_by_echo_of_our_own_frames() -> None:
    err = only_error(receive(synced(Role.CONTROLLER), frame(RUN)))
    assert err.reason is Reason.LINK_MASQUERADE and "echo" in err.detail


@pytest.mark.requirement("SR-LINK-7")
def test_masquerade_by_unknown_type_or_version() -> None:
    unknown = cobs_encode(encode_raw_frame(Header(1, 77, CONNECTION_ID, 0, MS), encode_payload(RUN))) + b"\0"
    assert only_error(receive(synced(Role.ROBOT), unknown)).reason is Reason.LINK_MASQUERADE
    v2 = cobs_encode(encode_raw_frame(Header(2, 1, CONNECTION_ID, 0, MS), encode_payload(RUN))) + b"\0"
    assert only_error(receive(synced(Role.ROBOT), v2)).reason is Reason.LINK_MASQUERADE


@pytest.mark.requirement("SR-LINK-8")
def test_addressing() -> None:
    err = only_error(receive(synced(Role.ROBOT), frame(cid=0x0202)))
    assert err.reason is Reason.LINK_ADDRESSING and "0x0202" in err.detail


@pytest.mark.requirement("SR-LINK-9")
def test_watchdog_timeout() -> None:
    robot = synced(Role.ROBOT)
    receive(robot, frame(t=MS), t=2 * MS)
    assert robot.check_watchdog(2 * MS + POLICY.watchdog_ns) is None
    err = robot.check_watchdog(2 * MS + POLICY.watchdog_ns + 1)
    assert err is not None and err.reason is Reason.LINK_TIMEOUT
    assert robot.error == err and robot.state is ReceiverState.ERROR


def test_every_link_reason_is_reachable() -> None:
    # the tests above cover each; this keeps the list honest when a LINK_* reason is appended
    assert link_error_reasons() == {
        Reason.LINK_CORRUPTION,
        Reason.LINK_REPETITION,
        Reason.LINK_INCORRECT_SEQUENCE,
        Reason.LINK_LOSS,
        Reason.LINK_UNACCEPTABLE_DELAY,
        Reason.LINK_INSERTION,
        Reason.LINK_MASQUERADE,
        Reason.LINK_ADDRESSING,
        Reason.LINK_TIMEOUT,
    }


# ------------------------------------------------------------------ latching and reset


@pytest.mark.requirement("SR-LINK-10")
def test_error_latches_until_reset() -> None:
    robot = synced(Role.ROBOT)
    events = receive(robot, frame(seq=0), frame(seq=0), frame(seq=1, t=MS + 1))
    assert [type(e) for e in events] == [Received, LinkError]  # the valid frame after the error is dropped
    assert robot.state is ReceiverState.ERROR and robot.error is not None
    assert robot.next_event() is NEED_DATA  # reported once
    assert receive(robot, frame(seq=2, t=MS + 2)) == []
    assert robot.stats.bytes_dropped > 0
    robot.reset(3 * MS)
    assert robot.state is ReceiverState.AWAITING_FIRST and robot.error is None
    events = receive(robot, b"\0", frame(seq=9, t=3 * MS), t=3 * MS)
    assert [type(e) for e in events] == [Received] and robot.state is ReceiverState.CONNECTED


def test_sending_continues_in_error() -> None:
    ctl = synced(Role.CONTROLLER)
    receive(ctl, frame(RUN))  # our own type: masquerade
    assert ctl.state is ReceiverState.ERROR
    assert len(ctl.send(STOP, 5 * MS)) > 0


def test_local_protocol_error_names_our_fault() -> None:
    with pytest.raises(LocalProtocolError, match="does not send ROBOT_STATE"):
        endpoint(Role.CONTROLLER).send(STATE, 0)
    with pytest.raises(LocalProtocolError):
        endpoint(Role.SENSOR_RECEIVER).send(detections(1), 0)


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="disable"):
        LinkPolicy(max_delay_ns=0, watchdog_ns=1)
    with pytest.raises(ValueError, match="disable"):
        LinkPolicy(max_delay_ns=1, watchdog_ns=0)
    with pytest.raises(ValueError, match="must be >= 0"):
        LinkPolicy(max_delay_ns=1, watchdog_ns=1, max_clock_lead_ns=-1)
    with pytest.raises(ValueError, match="must be >= 0"):
        LinkPolicy(max_delay_ns=1, watchdog_ns=1, tolerated_losses=-1)
    # the smallest valid policy: no losses tolerated, no clock lead allowed
    assert (
        LinkPolicy(max_delay_ns=1, watchdog_ns=1, tolerated_losses=0, max_clock_lead_ns=0).max_clock_lead_ns
        == 0
    )
    with pytest.raises(ValueError, match="connection_id"):
        Endpoint(Role.ROBOT, 0, POLICY, 0)


# ------------------------------------------------------------------ the transition table


def test_transition_table_is_total_and_error_latches() -> None:
    for state in ReceiverState:
        for event in Input:
            assert (state, event) in TRANSITIONS
    for event in Input:
        if event is not Input.RESET:
            assert TRANSITIONS[(ReceiverState.ERROR, event)] is ReceiverState.ERROR
        assert TRANSITIONS[(ReceiverState.ERROR, Input.RESET)] is ReceiverState.AWAITING_FIRST


def test_role_tables_pair_up() -> None:
    from cobotguard.safety.link import ROLE_ACCEPTS, ROLE_SENDS

    assert ROLE_SENDS[Role.CONTROLLER] == ROLE_ACCEPTS[Role.ROBOT] == {MessageType.COMMAND}
    assert ROLE_SENDS[Role.ROBOT] == ROLE_ACCEPTS[Role.CONTROLLER] == {MessageType.ROBOT_STATE}
    sensor_sends = {MessageType.DETECTIONS, MessageType.SYNC_REPLY}
    assert ROLE_SENDS[Role.SENSOR] == ROLE_ACCEPTS[Role.SENSOR_RECEIVER] == sensor_sends
    assert ROLE_SENDS[Role.SENSOR_RECEIVER] == ROLE_ACCEPTS[Role.SENSOR] == {MessageType.SYNC_REQUEST}


# ------------------------------------------------------------------ built from the configuration


def test_endpoints_from_the_default_cell() -> None:
    cfg = load_config("hil/defaults/cell.toml")
    robot = robot_link_endpoint(cfg, Role.ROBOT, 0)
    assert robot.connection_id == cfg.link.connection_id
    assert robot.policy.watchdog_ns == int(cfg.link.command_watchdog_ms * MS)
    assert robot.policy.max_delay_ns == int(cfg.link.max_delay_ms * MS)
    ctl = robot_link_endpoint(cfg, Role.CONTROLLER, 0)
    assert ctl.policy.watchdog_ns == int(cfg.controller.robot_state_timeout_ms * MS)
    name, sensor = next(iter(cfg.sensors.items()))
    rx = sensor_link_endpoint(cfg, name, Role.SENSOR_RECEIVER, 0)
    assert rx.connection_id == sensor.connection_id
    assert rx.policy.tolerated_losses == sensor.tolerated_missed_frames
    with pytest.raises(ValueError, match="not an end"):
        robot_link_endpoint(cfg, Role.SENSOR, 0)
    pair = Pair(ctl, robot)
    assert isinstance(pair.a_to_b(Command.from_record(STOP.to_record(0)[0]), MS)[0], Received)
