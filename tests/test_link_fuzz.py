"""Fuzzing the receiver: random bytes never crash it; corrupted frames are never accepted (counted)."""

import contextlib

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from link_support import CONNECTION_ID, MS, RUN, STATE, STOP, detections, synced

from cobotguard.safety.link import (
    NEED_DATA,
    FrameError,
    Header,
    LinkError,
    Received,
    ReceiverState,
    Role,
    decode_frame,
    drain,
    encode_frame,
    encode_raw_frame,
)
from cobotguard.safety.link.cobs import cobs_decode, cobs_encode

ROLES = list(Role)


@given(st.lists(st.binary(max_size=300), max_size=8), st.sampled_from(ROLES))
def test_random_bytes_never_crash_the_endpoint(chunks: list[bytes], role: Role) -> None:
    ep = synced(role)
    for i, chunk in enumerate(chunks):
        ep.feed(chunk, i * MS)
        for event in drain(ep):
            assert isinstance(event, Received | LinkError)
        ep.check_watchdog(i * MS)
    assert ep.next_event() is NEED_DATA


@given(st.binary(max_size=600))
def test_random_bytes_raise_only_frame_errors(chunk: bytes) -> None:
    with contextlib.suppress(FrameError):  # any other exception fails the test
        decode_frame(chunk)


@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(-(2**63), 2**63 - 1),
    st.binary(max_size=450),
    st.sampled_from(ROLES),
)
def test_frames_with_a_valid_crc_and_any_content_never_crash(
    version: int, kind: int, cid: int, seq: int, t: int, payload: bytes, role: Role
) -> None:
    wire = cobs_encode(encode_raw_frame(Header(version, kind, cid, seq, t), payload)) + b"\x00"
    ep = synced(role)
    ep.feed(wire, 0)
    for event in drain(ep):
        assert isinstance(event, Received | LinkError)


def _mutations(wire: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    """n corrupted copies of one frame: bit flips (1 to 7) before COBS, byte substitutions, truncations,
    insertions and deletions after COBS. None is identical to the original."""
    raw = cobs_decode(wire[:-1])
    out: list[bytes] = []
    while len(out) < n:
        how = rng.integers(0, 5)
        if how == 0:  # 1..7 bit flips in the protected frame: within the Hamming distance for short frames
            bad = bytearray(raw)
            for bit in rng.choice(len(raw) * 8, size=int(rng.integers(1, 8)), replace=False):
                bad[bit // 8] ^= 1 << (bit % 8)
            cand = cobs_encode(bytes(bad)) + b"\x00"
        elif how == 1:  # random bytes replaced on the line (may create delimiters)
            bad = bytearray(wire[:-1])
            for pos in rng.choice(len(bad), size=int(rng.integers(1, 4)), replace=False):
                bad[pos] = int(rng.integers(0, 256))
            cand = bytes(bad) + b"\x00"
        elif how == 2:  # truncated
            cand = wire[: int(rng.integers(1, len(wire) - 1))] + b"\x00"
        elif how == 3:  # a byte inserted
            pos = int(rng.integers(0, len(wire) - 1))
            cand = wire[:pos] + bytes([int(rng.integers(1, 256))]) + wire[pos:]
        else:  # a byte deleted
            pos = int(rng.integers(0, len(wire) - 1))
            cand = wire[:pos] + wire[pos + 1 :]
        if cand != wire:
            out.append(cand)
    return out


def test_corrupted_frames_are_never_accepted() -> None:
    rng = np.random.default_rng(20261130)
    per_frame = 1500
    cases = [
        (Role.ROBOT, RUN),
        (Role.ROBOT, STOP),
        (Role.CONTROLLER, STATE),
        (Role.SENSOR_RECEIVER, detections(0)),
        (Role.SENSOR_RECEIVER, detections(3, seed=1)),
        (Role.SENSOR_RECEIVER, detections(16, seed=2)),
    ]
    tried = accepted = rejected = 0
    for role, message in cases:
        wire = encode_frame(message, CONNECTION_ID, 12, MS)
        for bad in _mutations(wire, rng, per_frame):
            ep = synced(role)
            ep.feed(bad, 2 * MS)
            events = drain(ep)
            tried += 1
            accepted += sum(isinstance(e, Received) for e in events)
            rejected += ep.state is ReceiverState.ERROR
    assert tried == per_frame * len(cases) == 9000
    assert accepted == 0
    assert rejected == tried  # every corrupted frame was detected, none silently vanished
