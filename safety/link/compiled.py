"""The link receiver and the command encoder as numba kernels: the hard loop's copy of `safety.link`.

The sans-IO `Endpoint` (plain Python) is the reference; this module does the same work on preallocated
arrays, with no Python object and no allocation, so the compiled hard loop can run it without the GIL.
A hypothesis differential test (tests/test_link_compiled.py) feeds both the same byte streams and
requires the same accepted frames, the same error Reasons and the same receiver states.

One receiver is one RECEIVER_DTYPE record plus a row of a (links, MAX_FRAME_BYTES) byte buffer. Calling
pattern, per chunk of bytes that arrived at `t_rx`:

    pos = 0
    while pos < n:
        pos = feed(rx, k, buffers, data, pos, n, t_rx, raw, table)
        if rx[k]["event"] == EVENT_ACCEPTED: ...  # raw[:rx[k]["frame_bytes"]] holds the decoded frame
        elif rx[k]["event"] == EVENT_ERROR: break  # latched; rx[k]["error_reason"] says why
    check_watchdog(rx, k, now_ns)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cobotguard.safety.link.acceptance import ECHO_RING_CAPACITY, DelayCheck, LinkPolicy
from cobotguard.safety.link.codec import (
    COMMAND_PAYLOAD,
    CRC_BYTES,
    DETECTIONS_FIXED,
    FLAG_AT_REST,
    FLAG_HAS_COMMAND,
    HEADER_BYTES,
    MAX_FRAME_BYTES,
    PERSON_WIRE_BYTES,
    PROTOCOL_VERSION,
    ROBOT_STATE_PAYLOAD,
    SEQ_MODULO,
    SYNC_REPLY_PAYLOAD,
)
from cobotguard.safety.link.crc import TABLE, crc32_kernel, unframe_kernel
from cobotguard.safety.link.endpoint import ROLE_ACCEPTS, ROLE_SENDS, Role
from cobotguard.safety.link.messages import MessageType
from cobotguard.safety.link.states import ReceiverState
from cobotguard.safety.reasons import CommandKind, Reason, StopCategory
from cobotguard.safety.records import MAX_PERSONS

# receiver states, as small ints (the order of safety.link.states.ReceiverState)
STATE_CODES = {state: i for i, state in enumerate(ReceiverState)}
_AWAITING = STATE_CODES[ReceiverState.AWAITING_FIRST]
_CONNECTED = STATE_CODES[ReceiverState.CONNECTED]
_ERROR = STATE_ERROR = STATE_CODES[ReceiverState.ERROR]  # latched: the application stops

EVENT_NONE = 0  # every byte consumed, no frame completed (need data)
EVENT_ACCEPTED = 1  # a frame passed every check: it is decoded in `raw`
EVENT_ERROR = 2  # a frame was rejected: the receiver is latched in ERROR

_DELAY_SENDER = int(DelayCheck.SENDER_TIME)
_DELAY_ECHO = int(DelayCheck.ECHO)

RECEIVER_DTYPE = np.dtype(
    [
        # configuration (set once by `new_receivers`)
        ("connection_id", np.int32),
        ("accepts", np.int32),  # bit m set: this end accepts MessageType m
        ("sends", np.int32),  # bit m set: this end sends MessageType m
        ("max_delay_ns", np.int64),
        ("watchdog_ns", np.int64),
        ("tolerated_losses", np.int64),
        ("clock_offset_ns", np.int64),
        ("max_clock_lead_ns", np.int64),
        # receiver state
        ("state", np.int32),  # STATE_CODES
        ("error_reason", np.int32),  # Reason of the latched error; 0 = none
        ("error_t_ns", np.int64),
        ("has_last", np.int32),  # a frame was accepted since the last reset
        ("last_seq", np.int64),
        ("last_t_sent_ns", np.int64),
        ("last_valid_ns", np.int64),  # watchdog reference
        ("synced", np.int32),  # a delimiter was seen since the last reset
        ("buffered", np.int32),  # bytes of an unfinished frame in the buffer row
        # the last feed() result
        ("event", np.int32),
        ("message_type", np.int32),
        ("seq", np.int64),
        ("t_sent_ns", np.int64),
        ("t_received_ns", np.int64),
        ("frame_bytes", np.int32),  # decoded frame length in `raw` (header + payload + CRC)
        # counters
        ("bytes_received", np.int64),
        ("bytes_dropped", np.int64),
        ("frames_accepted", np.int64),
        ("frames_rejected", np.int64),
        # sending side
        ("tx_seq", np.int64),
        ("preamble", np.int32),  # the next sent frame is preceded by a delimiter
        # age by echo (DelayCheck.ECHO, a robot on its own clock): the reference's EchoRing
        ("delay_check", np.int32),  # DelayCheck
        ("t_origin_ns", np.int64),  # the accepted frame's sender time on our clock (echo: command's)
        ("last_echo", np.int64),  # the previous accepted state's echo; -1 none since reset
        ("echo_ring", np.int64),  # entries of echo_sent_ns in use (LinkPolicy.echo_ring)
        ("echo_sent", np.int64),  # commands recorded (not wrapped)
        ("echo_newest", np.int64),  # sequence number of the newest command recorded
        ("echo_sent_ns", np.int64, (ECHO_RING_CAPACITY,)),  # send times by sequence mod echo_ring
    ]
)

_HALF_SEQ = SEQ_MODULO // 2
_MAX_CHUNK = MAX_FRAME_BYTES - 1
_COMMAND = int(MessageType.COMMAND)
_ROBOT_STATE = int(MessageType.ROBOT_STATE)
_DETECTIONS = int(MessageType.DETECTIONS)
_SYNC_REQUEST = int(MessageType.SYNC_REQUEST)
_SYNC_REPLY = int(MessageType.SYNC_REPLY)
_SYNC_REPLY_PAYLOAD = SYNC_REPLY_PAYLOAD.size
_COMMAND_PAYLOAD = COMMAND_PAYLOAD.size
_STATE_PAYLOAD = ROBOT_STATE_PAYLOAD.size
_DET_FIXED = DETECTIONS_FIXED.size
_PERSON = PERSON_WIRE_BYTES
_FLAGS = FLAG_AT_REST | FLAG_HAS_COMMAND
_N_KINDS = len(CommandKind)
_N_CATEGORIES = len(StopCategory)
_MAX_PERSONS = MAX_PERSONS

_R_CORRUPTION = int(Reason.LINK_CORRUPTION)
_R_REPETITION = int(Reason.LINK_REPETITION)
_R_SEQUENCE = int(Reason.LINK_INCORRECT_SEQUENCE)
_R_LOSS = int(Reason.LINK_LOSS)
_R_DELAY = int(Reason.LINK_UNACCEPTABLE_DELAY)
_R_INSERTION = int(Reason.LINK_INSERTION)
_R_MASQUERADE = int(Reason.LINK_MASQUERADE)
_R_ADDRESSING = int(Reason.LINK_ADDRESSING)
_R_TIMEOUT = int(Reason.LINK_TIMEOUT)


def valid_reasons() -> np.ndarray:
    """Lookup table: valid_reasons()[code] is 1 when `code` is a Reason (a COMMAND may carry only those)."""
    table = np.zeros(256, dtype=np.uint8)
    for reason in Reason:
        table[int(reason)] = 1
    return table


REASON_TABLE = valid_reasons()


def new_receivers(
    roles: list[Role], connection_ids: list[int], policies: list[LinkPolicy], now_ns: int
) -> np.ndarray:
    """One receiver record per link, in AWAITING_FIRST; roles decide what each accepts and sends."""
    rx = np.zeros(len(roles), dtype=RECEIVER_DTYPE)
    for k, (role, cid, policy) in enumerate(zip(roles, connection_ids, policies, strict=True)):
        if not 1 <= cid <= 0xFFFF:
            raise ValueError(f"connection_id: expected 1..65535, got {cid}")
        r = rx[k]
        r["connection_id"] = cid
        r["accepts"] = sum(1 << int(m) for m in ROLE_ACCEPTS[role])
        r["sends"] = sum(1 << int(m) for m in ROLE_SENDS[role])
        r["max_delay_ns"] = policy.max_delay_ns
        r["watchdog_ns"] = policy.watchdog_ns
        r["tolerated_losses"] = policy.tolerated_losses
        r["clock_offset_ns"] = policy.clock_offset_ns
        r["max_clock_lead_ns"] = policy.max_clock_lead_ns
        if policy.echo_ring > ECHO_RING_CAPACITY:
            raise ValueError(f"echo_ring: {policy.echo_ring} entries, expected at most {ECHO_RING_CAPACITY}")
        r["delay_check"] = int(policy.delay_check)
        r["echo_ring"] = policy.echo_ring
        r["preamble"] = 1
        reset(rx, k, now_ns)
    return rx


def new_buffers(n_links: int) -> np.ndarray:
    """The byte buffers of `n_links` receivers (unfinished frames wait here between feeds)."""
    return np.zeros((n_links, MAX_FRAME_BYTES), dtype=np.uint8)


# ---------------------------------------------------------------- little-endian fields


@njit(cache=False, inline="always")
def u16_at(b, i):
    """Unsigned 16-bit little-endian integer at b[i]."""
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8)


@njit(cache=False, inline="always")
def u32_at(b, i):
    """Unsigned 32-bit little-endian integer at b[i]."""
    return u16_at(b, i) | (u16_at(b, i + 2) << 16)


@njit(cache=False, inline="always")
def i32_at(b, i):
    """Signed 32-bit little-endian integer at b[i]."""
    v = u32_at(b, i)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@njit(cache=False, inline="always")
def i64_at(b, i):
    """Signed 64-bit little-endian integer at b[i]."""
    lo = np.uint64(u32_at(b, i))
    hi = np.uint64(u32_at(b, i + 4))
    return np.int64(lo | (hi << np.uint64(32)))


@njit(cache=False, inline="always")
def i8_at(b, i):
    """Signed byte at b[i]."""
    v = np.int64(b[i])
    return v - 256 if v >= 128 else v


@njit(cache=False, inline="always")
def put_u16(b, i, v):
    """Store v as unsigned 16-bit little endian at b[i]."""
    b[i] = v & 0xFF
    b[i + 1] = (v >> 8) & 0xFF


@njit(cache=False, inline="always")
def put_u32(b, i, v):
    """Store v as unsigned 32-bit little endian at b[i]."""
    put_u16(b, i, v & 0xFFFF)
    put_u16(b, i + 2, (v >> 16) & 0xFFFF)


@njit(cache=False, inline="always")
def put_i64(b, i, v):
    """Store v as 64-bit little endian at b[i]."""
    u = np.uint64(v)
    for k in range(8):
        b[i + k] = np.uint8((u >> np.uint64(8 * k)) & np.uint64(0xFF))


# ---------------------------------------------------------------- receiving


@njit(cache=False)
def reset(rx, k, now_ns):
    """Operator reset of receiver k: clear the error and all receive state; back to AWAITING_FIRST."""
    r = rx[k]
    r.state = _AWAITING
    r.error_reason = 0
    r.error_t_ns = 0
    r.has_last = 0
    r.last_seq = -1
    r.last_t_sent_ns = 0
    r.last_valid_ns = now_ns
    r.synced = 0
    r.buffered = 0
    r.event = EVENT_NONE
    r.last_echo = -1  # the send times stay: the sequence numbers we send are not reset


@njit(cache=False)
def latch(rx, k, reason, t_ns):
    """Latch receiver k in ERROR for `reason` (detected at t_ns): it stops until an operator reset."""
    r = rx[k]
    r.state = _ERROR
    r.error_reason = reason
    r.error_t_ns = t_ns
    r.buffered = 0
    r.event = EVENT_ERROR


@njit(cache=False)
def check_payload(message_type, raw, start, length, reasons):
    """LINK_CORRUPTION when a payload of this type is malformed (as the reference decoders judge), else 0."""
    if message_type == _COMMAND:
        if length != _COMMAND_PAYLOAD:
            return _R_CORRUPTION
        if raw[start] >= _N_KINDS or raw[start + 1] >= _N_CATEGORIES or reasons[raw[start + 2]] == 0:
            return _R_CORRUPTION
        for i in range(3, 6):
            if i8_at(raw, start + i) < -1:
                return _R_CORRUPTION
        return 0
    if message_type == _ROBOT_STATE:
        if length != _STATE_PAYLOAD:
            return _R_CORRUPTION
        flags = np.int64(raw[start + 3])
        if raw[start + 2] >= _N_KINDS or flags & ~_FLAGS:
            return _R_CORRUPTION
        if flags & FLAG_HAS_COMMAND == 0 and u32_at(raw, start + 4) != 0:
            return _R_CORRUPTION
        return 0
    if message_type == _SYNC_REQUEST:
        return 0 if length == 0 else _R_CORRUPTION
    if message_type == _SYNC_REPLY:
        return 0 if length == _SYNC_REPLY_PAYLOAD else _R_CORRUPTION
    # DETECTIONS
    if length < _DET_FIXED:
        return _R_CORRUPTION
    records = int(raw[start + 2])
    if records > _MAX_PERSONS:
        records = _MAX_PERSONS
    if length != _DET_FIXED + _PERSON * records:
        return _R_CORRUPTION
    return 0


@njit(cache=False)
def _accept(rx, k, chunk, n, t_rx, raw, table, reasons):
    """Run the reference's checks, in its order, on one COBS chunk; set the event (accepted or error)."""
    r = rx[k]
    if n > _MAX_CHUNK:
        return _R_CORRUPTION
    size = unframe_kernel(chunk, n, raw, table)
    if size < HEADER_BYTES + CRC_BYTES:  # invalid COBS, CRC mismatch or too short
        return _R_CORRUPTION
    if raw[0] != PROTOCOL_VERSION:
        return _R_MASQUERADE
    if u16_at(raw, 2) != r.connection_id:
        return _R_ADDRESSING
    message_type = np.int64(raw[1])
    if message_type < _COMMAND or message_type > _SYNC_REPLY:
        return _R_MASQUERADE  # unknown type
    if (r.sends >> message_type) & 1 or not (r.accepts >> message_type) & 1:
        return _R_MASQUERADE  # an echo of our own type, or a type this end does not accept
    bad = check_payload(message_type, raw, HEADER_BYTES, size - CRC_BYTES - HEADER_BYTES, reasons)
    if bad:
        return bad
    seq = u32_at(raw, 4)
    t_sent = i64_at(raw, 8)
    if r.has_last:
        gap = (seq - r.last_seq) % SEQ_MODULO
        if gap == 0:
            return _R_REPETITION
        if gap >= _HALF_SEQ:
            return _R_SEQUENCE
        if t_sent <= r.last_t_sent_ns:
            return _R_INSERTION
        if gap > 1 + r.tolerated_losses:
            return _R_LOSS
    origin = t_sent
    echo = np.int64(-1)
    if r.delay_check == _DELAY_SENDER:
        age = t_rx - (t_sent + r.clock_offset_ns)
        if age > r.max_delay_ns or age < -r.max_clock_lead_ns:
            return _R_DELAY
    elif r.delay_check == _DELAY_ECHO:  # only a controller end, which accepts nothing but ROBOT_STATE
        if raw[HEADER_BYTES + 3] & FLAG_HAS_COMMAND:
            echo = u32_at(raw, HEADER_BYTES + 4)
        bad, origin = check_echo(r, echo, t_rx)
        if bad:
            return bad
    r.t_origin_ns = origin
    if echo >= 0:
        r.last_echo = echo
    r.state = _CONNECTED
    r.has_last = 1
    r.last_seq = seq
    r.last_t_sent_ns = t_sent
    r.last_valid_ns = t_rx
    r.frames_accepted += 1
    r.event = EVENT_ACCEPTED
    r.message_type = message_type
    r.seq = seq
    r.t_sent_ns = t_sent
    r.t_received_ns = t_rx
    r.frame_bytes = size
    return 0


@njit(cache=False)
def check_echo(r, echo, t_rx):
    """(Reason or 0, send time of the echoed command): the reference's acceptance.check_echo on record r."""
    if echo < 0:
        return 0, np.int64(0)  # no command accepted yet: age unknown (the step treats it as stale)
    back = (r.echo_newest - echo) % SEQ_MODULO
    if r.echo_sent == 0 or back >= _HALF_SEQ or back >= r.echo_sent:
        return _R_INSERTION, np.int64(0)
    if r.last_echo >= 0 and (echo - r.last_echo) % SEQ_MODULO >= _HALF_SEQ:
        return _R_SEQUENCE, np.int64(0)
    if back >= r.echo_ring:
        return _R_DELAY, np.int64(0)
    sent = r.echo_sent_ns[echo % r.echo_ring]
    age = t_rx - sent
    if age > r.max_delay_ns or age < -r.max_clock_lead_ns:
        return _R_DELAY, np.int64(0)
    return 0, sent


@njit(cache=False)
def feed(rx, k, buffers, data, pos, n, t_rx, raw, table, reasons):
    """Consume data[pos:n] (received at t_rx) up to and including the next frame that completes.

    Returns the position after what was consumed. rx[k].event: EVENT_ACCEPTED (raw holds the frame, call
    again from the returned position), EVENT_ERROR (latched; the rest of the data is dropped) or EVENT_NONE
    (everything consumed; an unfinished frame waits in the buffer).
    """
    r = rx[k]
    r.event = EVENT_NONE
    if pos >= n:
        return n
    if r.state == _ERROR:
        r.bytes_received += n - pos
        r.bytes_dropped += n - pos
        return n
    buf = buffers[k]
    start = pos
    while pos < n:
        end = pos
        while end < n and data[end] != 0:
            end += 1
        part = end - pos
        if end == n:  # no delimiter: keep the tail for the next feed
            r.bytes_received += n - start
            total = r.buffered + part
            if total > _MAX_CHUNK:
                r.frames_rejected += 1
                latch(rx, k, _R_CORRUPTION, t_rx)
                return n
            for i in range(part):
                buf[r.buffered + i] = data[pos + i]
            r.buffered = total
            return n
        total = r.buffered + part
        if r.synced == 0:  # bytes before the first delimiter may be the tail of a frame: drop them
            r.synced = 1
            r.bytes_dropped += total
            r.buffered = 0
        elif total > 0:  # empty chunks (extra delimiters) are allowed and ignored
            if total <= _MAX_CHUNK:
                for i in range(part):
                    buf[r.buffered + i] = data[pos + i]
            r.buffered = 0
            reason = _accept(rx, k, buf, total, t_rx, raw, table, reasons)
            if reason:
                r.bytes_received += n - start
                r.frames_rejected += 1
                r.bytes_dropped += n - end - 1
                latch(rx, k, reason, t_rx)
                return n
            r.bytes_received += end + 1 - start
            return end + 1
        pos = end + 1
    r.bytes_received += n - start
    return n


@njit(cache=False)
def check_watchdog(rx, k, now_ns):
    """Latch LINK_TIMEOUT if connected and nothing valid arrived for longer than the watchdog; 1 if so."""
    r = rx[k]
    if r.state != _CONNECTED or now_ns - r.last_valid_ns <= r.watchdog_ns:
        return 0
    latch(rx, k, _R_TIMEOUT, now_ns)
    return 1


# ---------------------------------------------------------------- decoding accepted frames


@njit(cache=False, inline="always")
def _f32(bits, scratch_u32, scratch_f32):
    scratch_u32[0] = np.uint32(bits)
    return scratch_f32[0]


@njit(cache=False)
def half_bits_to_float_bits(h):
    """IEEE binary16 bits -> binary32 bits (exact; NaN payloads kept), as numpy's half conversion."""
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    exp = h & 0x7C00
    sig = h & 0x03FF
    if exp == 0:
        if sig == 0:
            return sign
        shift = 0
        sig <<= 1
        while sig & 0x0400 == 0:
            sig <<= 1
            shift += 1
        return sign | ((127 - 15 - shift) << 23) | ((sig & 0x03FF) << 13)
    if exp == 0x7C00:
        return sign | 0x7F800000 | (sig << 13)
    return sign | (((h & 0x7FFF) + 0x1C000) << 13)


@njit(cache=False)
def decode_robot_state(rx, k, raw, out):
    """The accepted ROBOT_STATE in raw into out[0] (ROBOT_STATE_DTYPE)."""
    r = rx[k]
    p = HEADER_BYTES
    flags = np.int64(raw[p + 3])
    o = out[0]
    o.speed_mps = u16_at(raw, p) / 1000.0
    o.mode = raw[p + 2]
    o.at_rest = 1 if flags & FLAG_AT_REST else 0
    o.last_command_seq = u32_at(raw, p + 4) if flags & FLAG_HAS_COMMAND else -1
    o.t_sent_ns = r.t_origin_ns  # the header's sender time, or with age by echo the echoed command's
    o.t_received_ns = r.t_received_ns


@njit(cache=False)
def decode_detections(rx, k, raw, out, i, scratch_u32, scratch_f32):
    """The accepted DETECTIONS in raw into out[i] (DETECTION_DTYPE); persons beyond the count zeroed."""
    r = rx[k]
    p = HEADER_BYTES
    d = out[i]
    count = np.int64(raw[p + 2])
    d.sensor_index = raw[p]
    d.frame_counter = raw[p + 1]
    d.person_count = count
    d.health = u32_at(raw, p + 3)
    d.inference_us = i32_at(raw, p + 7)
    d.t_exposure_ns = i64_at(raw, p + 11)
    d.t_inference_done_ns = i64_at(raw, p + 19)
    d.t_sent_ns = r.t_sent_ns
    d.t_received_ns = r.t_received_ns
    records = count if count < _MAX_PERSONS else _MAX_PERSONS
    persons = d.persons
    for j in range(_MAX_PERSONS):
        q = persons[j]
        if j >= records:
            q.x_m = 0.0
            q.y_m = 0.0
            q.z_d_m = 0.0
            q.score = 0.0
            for b in range(4):
                q.box[b] = 0.0
            continue
        w = p + _DET_FIXED + _PERSON * j
        q.x_m = _f32(u32_at(raw, w), scratch_u32, scratch_f32)
        q.y_m = _f32(u32_at(raw, w + 4), scratch_u32, scratch_f32)
        q.z_d_m = _f32(u32_at(raw, w + 8), scratch_u32, scratch_f32)
        q.score = _f32(u32_at(raw, w + 12), scratch_u32, scratch_f32)
        for b in range(4):
            q.box[b] = _f32(half_bits_to_float_bits(u16_at(raw, w + 16 + 2 * b)), scratch_u32, scratch_f32)


def float_scratch() -> tuple[np.ndarray, np.ndarray]:
    """A 4-byte scratch word seen as uint32 and as float32 (bit reinterpretation without allocation)."""
    word = np.zeros(1, dtype=np.uint32)
    return word, word.view(np.float32)


# ---------------------------------------------------------------- sending


@njit(cache=False, inline="always")
def mm_per_s_down(speed):
    """Speed in whole mm/s, rounded down (never faster); as the reference: floor(round(v * 1000, 6))."""
    if not speed >= 0.0:  # NaN or negative: a stop speed
        return 0
    x = speed * 1000.0
    if x >= 65535.0:
        return 65535
    whole = np.floor(x)
    if x - whole >= 1.0 - 5e-7:  # the reference rounds to 6 decimals before flooring
        whole += 1.0
    return np.int64(whole)


@njit(cache=False)
def cobs_encode_into(src, n, dst, at):
    """COBS-encode src[:n] into dst from index `at`; returns the index after the last byte written."""
    code_at = at
    out = at + 1
    code = 1
    for i in range(n):
        byte = src[i]
        if byte == 0:
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
        else:
            dst[out] = byte
            out += 1
            code += 1
            if code == 0xFF:
                dst[code_at] = code
                code_at = out
                out += 1
                code = 1
    dst[code_at] = code
    return out


@njit(cache=False)
def encode_command(rx, k, command, t_ns, scratch, out, table):
    """One COMMAND frame for command[0] (COMMAND_DTYPE) on link k into out; returns its length.

    Uses and advances the link's send sequence number; the first frame is preceded by a delimiter.
    """
    c = command[0]
    _put_header(rx, k, _COMMAND, t_ns, scratch)
    p = HEADER_BYTES
    scratch[p] = c.kind
    scratch[p + 1] = c.stop_category
    scratch[p + 2] = c.reason
    scratch[p + 3] = np.uint8(c.reason_sensor & 0xFF)
    scratch[p + 4] = np.uint8(c.reason_person & 0xFF)
    scratch[p + 5] = np.uint8(c.reason_zone & 0xFF)
    put_u16(scratch, p + 6, mm_per_s_down(c.speed_limit_mps))
    return _finish_frame(rx, k, scratch, p + _COMMAND_PAYLOAD, out, table, t_ns)


@njit(cache=False, inline="always")
def _put_header(rx, k, message_type, t_ns, scratch):
    """The header of the next frame link k sends (its send sequence number) into scratch[:16]."""
    r = rx[k]
    scratch[0] = PROTOCOL_VERSION
    scratch[1] = message_type
    put_u16(scratch, 2, r.connection_id)
    put_u32(scratch, 4, r.tx_seq)
    put_i64(scratch, 8, t_ns)


@njit(cache=False)
def _finish_frame(rx, k, scratch, body, out, table, t_ns):
    """CRC after scratch[:body], COBS and the delimiter into out (a delimiter before the link's first
    frame); with the robot link aged by echo, remembers the send time t_ns under its sequence number;
    advances the send sequence number. Returns the frame's length in out."""
    r = rx[k]
    put_u32(scratch, body, np.int64(crc32_kernel(scratch, body, table)))
    at = 0
    if r.preamble:
        r.preamble = 0
        out[0] = 0
        at = 1
    end = cobs_encode_into(scratch, body + CRC_BYTES, out, at)
    out[end] = 0
    if r.delay_check == _DELAY_ECHO:
        r.echo_sent_ns[r.tx_seq % r.echo_ring] = t_ns
        r.echo_sent += 1
        r.echo_newest = r.tx_seq
    r.tx_seq = (r.tx_seq + 1) % SEQ_MODULO
    return end + 1


@njit(cache=False)
def encode_sync_request(rx, k, t_ns, scratch, out, table):
    """One SYNC_REQUEST frame (empty payload) on sensor link k into out; returns its length. Its sequence
    number is rx[k].tx_seq before the call."""
    _put_header(rx, k, _SYNC_REQUEST, t_ns, scratch)
    return _finish_frame(rx, k, scratch, HEADER_BYTES, out, table, t_ns)


@njit(cache=False, inline="always")
def sync_reply_request_seq(raw):
    """The accepted SYNC_REPLY's echoed request sequence number."""
    return u32_at(raw, HEADER_BYTES)


@njit(cache=False, inline="always")
def sync_reply_request_t_ns(raw):
    """The accepted SYNC_REPLY's echoed request sender time."""
    return i64_at(raw, HEADER_BYTES + 4)


@njit(cache=False, inline="always")
def sync_reply_received_ns(raw):
    """The accepted SYNC_REPLY's sensor time when the request arrived."""
    return i64_at(raw, HEADER_BYTES + 12)


def warm_up() -> None:
    """Compile every kernel here (before arming, never in the loop)."""
    from cobotguard.safety.link.codec import encode_frame
    from cobotguard.safety.link.messages import Command, RobotState
    from cobotguard.safety.records import COMMAND_DTYPE, ROBOT_STATE_DTYPE, empty_detections

    policy = LinkPolicy(max_delay_ns=10**9, watchdog_ns=10**9)
    rx = new_receivers([Role.CONTROLLER], [1], [policy], 0)
    buffers = new_buffers(1)
    raw = np.zeros(MAX_FRAME_BYTES, dtype=np.uint8)
    frame = b"\x00" + encode_frame(RobotState(0.1, CommandKind.RUN, False, 3), 1, 0, 5)
    data = np.frombuffer(frame, dtype=np.uint8)
    pos = 0
    while pos < data.shape[0]:
        pos = feed(rx, 0, buffers, data, pos, data.shape[0], 10, raw, TABLE, REASON_TABLE)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    decode_robot_state(rx, 0, raw, robot)
    u32, f32 = float_scratch()
    decode_detections(rx, 0, raw, empty_detections(1), 0, u32, f32)
    check_watchdog(rx, 0, 10**10)
    reset(rx, 0, 0)
    check_payload(_COMMAND, raw, 0, 0, REASON_TABLE)
    command = Command(CommandKind.RUN, 0.25).to_record(0)
    command_out = np.zeros(64, dtype=np.uint8)
    encode_command(rx, 0, command.astype(COMMAND_DTYPE), 1, np.zeros(64, dtype=np.uint8), command_out, TABLE)
    encode_sync_request(rx, 0, 2, np.zeros(64, dtype=np.uint8), command_out, TABLE)
