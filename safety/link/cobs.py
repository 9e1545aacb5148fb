"""Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999): frames without 0x00 bytes inside.

Encoding: split the data at every 0x00; each piece of up to 254 bytes is written as (length + 1) followed by
the bytes; a piece longer than 254 is written as 0xFF blocks of 254 bytes (which imply no zero) followed by
the remainder block. The decoder re-inserts a 0x00 after every block except 0xFF blocks and the last block.
Overhead: at most 1 + floor(n / 254) bytes for n bytes of data (exactly that when they hold no zero).
The frame delimiter 0x00 is added by the caller.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def cobs_encoded_size(n: int) -> int:
    """Largest encoded length of n data bytes (without the delimiter); exact for data without zeros."""
    return n + 1 + n // 254


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data`; the result contains no 0x00 byte."""
    out = bytearray()
    for piece in data.split(b"\x00"):
        while len(piece) >= 254:
            out.append(0xFF)
            out += piece[:254]
            piece = piece[254:]
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Decode one COBS block sequence (no delimiter); raises CobsError on a zero byte or a short block."""
    n = len(encoded)
    if n == 0:
        raise CobsError("empty frame")
    if 0 in encoded:
        raise CobsError(f"zero byte at offset {encoded.index(0)} inside a frame")
    pieces: list[bytes] = []
    pos = 0
    while pos < n:
        code = encoded[pos]
        end = pos + code
        if end > n:
            raise CobsError(f"block at offset {pos} claims {code - 1} bytes, only {n - pos - 1} left")
        pieces.append(encoded[pos + 1 : end])
        if code != 0xFF and end < n:
            pieces.append(b"\x00")
        pos = end
    return b"".join(pieces)
