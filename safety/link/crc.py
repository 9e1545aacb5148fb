"""CRC-32 of the safety link: parameters, a table-driven numba kernel, and a Hamming-distance tool.

Parameters (see docs/protocol.md for why this polynomial):
width 32, polynomial 0xF4ACFB13 (OPC UA Safety; Koopman 0xFA567D89), init 0xFFFFFFFF, input and output
reflected (least significant bit first, the order a UART puts bits on the line), final XOR 0xFFFFFFFF.
Check value (CRC of the ASCII bytes "123456789"): see CHECK_VALUE.
"""

from __future__ import annotations

import numpy as np
from numba import njit

WIDTH = 32
POLYNOMIAL = 0xF4ACFB13
INIT = 0xFFFFFFFF
REFLECT_IN = True
REFLECT_OUT = True
XOR_OUT = 0xFFFFFFFF
CHECK_VALUE = 0x1697D06A  # crc32(b"123456789"); asserted in tests against the `crc` library


def _reflect(value: int, bits: int) -> int:
    out = 0
    for i in range(bits):
        if value >> i & 1:
            out |= 1 << (bits - 1 - i)
    return out


def _make_table(polynomial: int) -> np.ndarray:
    """256-entry table for the reflected (LSB-first) algorithm."""
    reflected = _reflect(polynomial, WIDTH)
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        reg = byte
        for _ in range(8):
            reg = (reg >> 1) ^ reflected if reg & 1 else reg >> 1
        table[byte] = reg
    return table


TABLE = _make_table(POLYNOMIAL)


@njit(cache=False, nogil=True)
def crc32_kernel(data: np.ndarray, length: int, table: np.ndarray) -> np.uint32:
    """CRC of data[:length] (uint8 array) with a reflected table; init and final XOR applied."""
    reg = np.uint32(0xFFFFFFFF)
    for i in range(length):
        reg = table[(reg ^ np.uint32(data[i])) & np.uint32(0xFF)] ^ (reg >> np.uint32(8))
    return reg ^ np.uint32(0xFFFFFFFF)


@njit(cache=False, nogil=True)
def unframe_kernel(src: np.ndarray, n: int, dst: np.ndarray, table: np.ndarray) -> int:
    """COBS-decode src[:n] into dst and check the CRC in its last 4 bytes (little endian), in one call.

    Returns the decoded length when framing and CRC are valid, -1 for invalid framing, -2 for a CRC
    mismatch or a frame too short to hold one (callers re-run the reference code for the details).
    """
    if n == 0:
        return -1
    pos = 0
    out = 0
    while pos < n:
        code = int(src[pos])
        if code == 0:
            return -1
        end = pos + code
        if end > n:
            return -1
        for i in range(pos + 1, end):
            byte = src[i]
            if byte == 0:
                return -1
            dst[out] = byte
            out += 1
        if code != 0xFF and end < n:
            dst[out] = 0
            out += 1
        pos = end
    if out < 4:
        return -2
    body = out - 4
    received = (
        np.uint32(dst[body])
        | (np.uint32(dst[body + 1]) << np.uint32(8))
        | (np.uint32(dst[body + 2]) << np.uint32(16))
        | (np.uint32(dst[body + 3]) << np.uint32(24))
    )
    if crc32_kernel(dst, body, table) != received:
        return -2
    return out


def crc32(data: bytes | bytearray | memoryview) -> int:
    """The link CRC of `data` as an unsigned int."""
    view = np.frombuffer(data, dtype=np.uint8)
    return int(crc32_kernel(view, view.shape[0], TABLE))


def warm_up() -> None:
    """Compile the CRC and COBS kernels now (call before arming, never inside the loop)."""
    crc32(b"123456789")
    src = np.frombuffer(b"\x03\x11\x22\x02\x33", dtype=np.uint8)
    unframe_kernel(src, src.shape[0], np.empty(5, dtype=np.uint8), TABLE)


def undetected_weights(polynomial: int, data_bits: int, max_weight: int) -> list[int]:
    """Error weights (2..max_weight, at most 6) for which some pattern in a `data_bits` + 32 bit codeword
    passes the CRC undetected; empty means Hamming distance > max_weight at that length.

    Config-time analysis only (numpy, seconds for a few thousand bits). Uses the syndromes x^i mod G of
    every bit position: a weight-w pattern is undetected iff the XOR of its w syndromes is zero.
    """
    n = data_bits + WIDTH
    full = (1 << WIDTH) | polynomial
    syndromes = np.zeros(n, dtype=np.uint64)
    reg = 1
    for i in range(n):
        syndromes[i] = reg
        reg <<= 1
        if reg >> WIDTH:
            reg ^= full
    found: list[int] = []
    even_only = bin(full).count("1") % 2 == 0  # divisible by (x + 1): every odd weight is detected
    s = syndromes
    # weight 2: two equal syndromes
    if len(np.unique(s)) < n:
        found.append(2)
    first, second = np.triu_indices(n, 1)
    if max_weight >= 3 and not even_only and np.isin(s[first] ^ s[second], s).any():
        found.append(3)
    if max_weight >= 4:
        pairs = np.sort(s[first] ^ s[second])
        if (pairs[1:] == pairs[:-1]).any():  # two distinct pairs with equal XOR: a weight-4 (or 2) codeword
            found.append(4)
    if max_weight >= 5 and not even_only:
        raise NotImplementedError("odd weights >= 5 only for polynomials divisible by x + 1")
    if max_weight >= 6 and not found:
        a, b, c = _triples(n)
        triples = np.sort(s[a] ^ s[b] ^ s[c])
        if (triples[1:] == triples[:-1]).any():  # no weight <= 4 codeword, so a collision is weight 6
            found.append(6)
    return found


def _triples(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.arange(n)
    i, j = np.triu_indices(n, 1)
    ii = np.repeat(i, n - j - 1)
    jj = np.repeat(j, n - j - 1)
    kk = np.concatenate([idx[b + 1 :] for b in j]) if len(j) else idx[:0]
    return ii, jj, kk
