"""COBS framing: round trips, no zero bytes inside, exact overhead, and clear errors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.safety.link.cobs import CobsError, cobs_decode, cobs_encode, cobs_encoded_size


@given(st.binary(max_size=800))
def test_round_trip_without_zeros(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= cobs_encoded_size(len(data))
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 508, 509])
@pytest.mark.parametrize("fill", [b"\x00", b"\x01", b"\xff"])
def test_block_boundaries(n: int, fill: bytes) -> None:
    data = fill * n
    encoded = cobs_encode(data)
    assert len(encoded) <= cobs_encoded_size(n)
    if 0 not in data:
        assert len(encoded) == cobs_encoded_size(n)
    assert cobs_decode(encoded) == data


def test_known_encodings() -> None:
    # examples from Cheshire and Baker / the usual references
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x00\x00") == b"\x01\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"


@pytest.mark.parametrize(
    ("encoded", "words"),
    [
        (b"", "empty"),
        (b"\x05\x11\x22", "claims 4 bytes"),
        (b"\x03\x11\x00", "zero byte"),
        (b"\x00", "zero byte at offset 0"),
    ],
)
def test_invalid_encodings_are_named(encoded: bytes, words: str) -> None:
    with pytest.raises(CobsError, match=words):
        cobs_decode(encoded)


@given(st.binary(max_size=500), st.booleans())
def test_compiled_unframing_agrees_with_the_reference(data: bytes, valid_crc: bool) -> None:
    import numpy as np

    from cobotguard.safety.link.crc import TABLE, crc32, unframe_kernel

    raw = data + (crc32(data) ^ (0 if valid_crc else 1)).to_bytes(4, "little")
    for chunk in (cobs_encode(raw), data):  # a real frame, and arbitrary bytes as if they were one
        out = np.empty(len(chunk), dtype=np.uint8)
        size = unframe_kernel(np.frombuffer(chunk, dtype=np.uint8), len(chunk), out, TABLE)
        try:
            ref = cobs_decode(chunk)
        except CobsError:
            assert size == -1
            continue
        ok = len(ref) >= 4 and int.from_bytes(ref[-4:], "little") == crc32(ref[:-4])
        assert size == (len(ref) if ok else -2)
        if ok:
            assert out[:size].tobytes() == ref
