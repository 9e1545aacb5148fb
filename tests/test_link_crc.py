"""The link CRC: the table-driven kernel against the `crc` library, and the Hamming distance claims."""

import crc as crc_oracle
from hypothesis import given
from hypothesis import strategies as st

from cobotguard.safety.link import codec
from cobotguard.safety.link.crc import (
    CHECK_VALUE,
    INIT,
    POLYNOMIAL,
    REFLECT_IN,
    REFLECT_OUT,
    XOR_OUT,
    crc32,
    undetected_weights,
)

ORACLE = crc_oracle.Calculator(
    crc_oracle.Configuration(
        width=32,
        polynomial=POLYNOMIAL,
        init_value=INIT,
        final_xor_value=XOR_OUT,
        reverse_input=REFLECT_IN,
        reverse_output=REFLECT_OUT,
    )
)

CRC32C = 0x1EDC6F41


def test_check_value_matches_the_oracle() -> None:
    assert crc32(b"123456789") == CHECK_VALUE == ORACLE.checksum(b"123456789")


def test_edge_inputs_match_the_oracle() -> None:
    for data in (b"", b"\x00", b"\xff", bytes(64), b"\xff" * 64, bytes(range(256))):
        assert crc32(data) == ORACLE.checksum(data), data


@given(st.binary(max_size=600))
def test_random_inputs_match_the_oracle(data: bytes) -> None:
    assert crc32(data) == ORACLE.checksum(data)


def test_command_frames_have_hamming_distance_8() -> None:
    # header + payload of COMMAND and ROBOT_STATE: no undetected error of weight <= 7
    bits = (codec.HEADER_BYTES + codec.COMMAND_PAYLOAD.size) * 8
    assert undetected_weights(POLYNOMIAL, bits, 6) == []


def test_largest_detection_frame_has_hamming_distance_6() -> None:
    bits = (codec.HEADER_BYTES + codec.DETECTIONS_FIXED.size + codec.PERSON_WIRE_BYTES * 16) * 8
    assert undetected_weights(POLYNOMIAL, bits, 4) == []


def test_crc32c_would_only_give_hamming_distance_6_on_command_frames() -> None:
    # why not CRC-32C (docs/protocol.md): at 192 bits it has undetected weight-6 patterns
    bits = (codec.HEADER_BYTES + codec.COMMAND_PAYLOAD.size) * 8
    assert undetected_weights(CRC32C, bits, 6) == [6]


def test_the_distance_tool_finds_known_weaknesses() -> None:
    # CRC-32/IEEE is not divisible by (x + 1): Koopman lists HD 6 up to 268 bits, HD 5 beyond
    assert undetected_weights(0x04C11DB7, 200, 4) == []
    assert undetected_weights(0xF4ACFB13, 300, 6) == [6]  # HD 8 ends at 274 bits (Koopman: 274)
