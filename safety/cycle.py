"""The hard cycle as one compiled, GIL-free function: bytes off the ports -> step -> command bytes written.

`hard_loop` is a numba nopython function compiled with `nogil=True`. Between releases it waits in ppoll
on the robot and sensor file descriptors with the next release as its timeout; it reads what arrived
(non-blocking), deframes and checks it (safety.link.compiled: COBS, CRC, the receiver's acceptance
checks and state table), runs the safety step, encodes and writes the command and fills the cycle's
trace record into the ring. No Python object, no allocation, no reader thread on that path: the clock,
ppoll, read and write are libc calls (safety.syscalls).

Releases: cycle k is released at t0 + k * period and sends a command (the robot's heartbeat). With
`controller.wake_on_data`, a detection frame is stepped (and a command sent) as soon as it is readable,
instead of waiting for the next release. Deadlines: a step must have written its command within
`controller.worst_step_ms` of its release (a data step: of the moment its data was found readable).
A step later than that sets the next step's overrun input (FAULT_STOP, LOOP_OVERRUN). A late step within
its deadline is not an overrun: the releases it overlapped are skipped and counted.

Python arms, supervises (stop, reset button, duration) through the `control` array, and drains the
trace rings from another thread; see `safety.compiled_controller.CompiledController`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numba import njit

from cobotguard.safety import syscalls
from cobotguard.safety.executor import fill_cycle_record
from cobotguard.safety.link import clock_sync as cs
from cobotguard.safety.link import compiled as cl
from cobotguard.safety.link.codec import MAX_FRAME_BYTES
from cobotguard.safety.link.crc import TABLE
from cobotguard.safety.link.endpoint import Role
from cobotguard.safety.link.messages import MessageType
from cobotguard.safety.reasons import Reason
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    DETECTION_DTYPE,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.step import apply_link_fault
from cobotguard.safety.step import step as safety_step
from cobotguard.safety.trace import CYCLE_DTYPE, DETECTION_TRACE_DTYPE, RING_DROPPED, RING_HEAD, RING_TAIL

PENDING_FRAMES_PER_SENSOR = 8  # frames waiting to enter the step, per sensor; more is a LINK_LOSS fault
READ_CHUNK = 4096  # bytes read per descriptor per wake-up at most
TRACE_RING_SECONDS = 2.0  # ring capacity in seconds of cycles: the drain thread may stall this long
DEFAULT_SPIN_NS = 200_000  # wait in ppoll until this long before a release, then poll without waiting

# control: written by Python, read by the loop
C_STOP, C_RESET_LEVEL, C_RESET_PULSES, C_END_NS = range(4)
# stats: written by the loop, read by Python (LoopStats fields, plus data steps)
(
    S_CYCLES,
    S_OVERRUNS,
    S_SKIPPED,
    S_MAX_WAKE,
    S_MAX_CYCLE,
    S_FRAMES_IN,
    S_FRAMES_LOST,
    S_LINK_FAULTS,
    S_DATA_STEPS,
    S_WRITE_FAILURES,
    S_PORT_FAILURES,
) = range(11)
N_STATS = 11
# loop state kept between hard_loop calls
L_NEXT_RELEASE, L_STEP_INDEX, L_PENDING_OVERRUN, L_RESET_PREV, L_COMMANDS, L_FRAMES_FAULT = range(6)
N_LOOP = 6
# triggers recorded per step
TRIGGER_TICK, TRIGGER_DATA, TRIGGER_RESET = 0, 1, 2

ROBOT_LINK = 0  # receivers and descriptors: index 0 is the robot link, 1 + s is sensor s

_R_LOSS = int(Reason.LINK_LOSS)
_R_ADDRESSING = int(Reason.LINK_ADDRESSING)
_ROBOT_STATE = int(MessageType.ROBOT_STATE)
_DETECTIONS = int(MessageType.DETECTIONS)
_SYNC_REPLY = int(MessageType.SYNC_REPLY)
_ERROR_STATE = cl.STATE_ERROR
_DETECTION_BYTES = DETECTION_DTYPE.itemsize


@njit(cache=False, nogil=True)
def _to_controller_clock(clocks, k, rx, frame):
    """A sensor-clock frame's timestamps in controller time (earliest possible: its age is never
    underestimated), then its checks (clock_sync.frame_fault); returns the fault to latch, or 0."""
    exposure = frame.t_exposure_ns
    frame.t_exposure_ns = cs.to_controller_ns(clocks, k, exposure)
    frame.t_inference_done_ns = cs.to_controller_ns(clocks, k, frame.t_inference_done_ns)
    frame.t_sent_ns = cs.to_controller_ns(clocks, k, frame.t_sent_ns)
    return cs.frame_fault(clocks, k, exposure, frame.t_sent_ns, rx[k].t_received_ns)


@njit(cache=False, nogil=True)
def _take_sync_reply(clocks, k, rx, raw):
    """An accepted SYNC_REPLY on link k into its clock estimate; a clock fault latches the link."""
    r = rx[k]
    fault = cs.take_reply(clocks, k, cl.sync_reply_request_seq(raw), cl.sync_reply_request_t_ns(raw),
                          cl.sync_reply_received_ns(raw), r.t_sent_ns, r.t_received_ns)  # fmt: skip
    if fault:
        cl.latch(rx, k, fault, r.t_received_ns)


@njit(cache=False, nogil=True)
def _check_clocks(n_links, clocks, rx, now_ns):
    """Latch the sensor links whose clock sync failed (a reply overdue, a bound past its limit)."""
    for k in range(1, n_links):
        if clocks[k].own == 0 or rx[k].state == _ERROR_STATE:
            continue
        fault = cs.check(clocks, k, now_ns)
        if fault:
            cl.latch(rx, k, fault, now_ns)


@njit(cache=False, nogil=True)
def _send_sync_requests(n_links, clocks, rx, pollfds, scratch, out, ts):
    """Send the SYNC_REQUESTs that are due (after the command: they never delay it)."""
    for k in range(1, n_links):
        # not before the receiver has seen a delimiter since its reset: a reply arriving first would be
        # dropped as the tail of a frame, and the sync lost (the sensor's next frame brings one)
        if clocks[k].own == 0 or rx[k].state == _ERROR_STATE or rx[k].synced == 0:
            continue
        now = syscalls.monotonic_ns(ts)
        if cs.request_due(clocks, k, now):
            seq = rx[k].tx_seq
            n = cl.encode_sync_request(rx, k, now, scratch, out, TABLE)
            # a request the line does not take is never answered: the sync timeout reports it
            syscalls.write_all(int(pollfds[k] & np.int64(0x7FFFFFFF)), out, n)
            cs.request_sent(clocks, k, seq, now)


@njit(cache=False, nogil=True)
def _queue_frame(rx, k, raw, pending, pending_head, pending_count, u32, f32, stats, loop, clocks):
    """An accepted DETECTIONS frame of sensor link k into its sensor's pending queue (in controller time)."""
    s = k - 1
    if clocks[k].own != 0 and clocks[k].has_estimate == 0:
        return  # before the first clock estimate its age cannot be known: dropped, the step sees no data
    if pending_count[s] >= PENDING_FRAMES_PER_SENSOR:
        stats[S_FRAMES_LOST] += 1
        if loop[L_FRAMES_FAULT] == 0:
            loop[L_FRAMES_FAULT] = _R_LOSS
        return
    slot = (pending_head[s] + pending_count[s]) % PENDING_FRAMES_PER_SENSOR
    cl.decode_detections(rx, k, raw, pending[s], slot, u32, f32)
    if pending[s, slot].sensor_index != s:  # a frame naming another sensor on this sensor's line
        cl.latch(rx, k, _R_ADDRESSING, rx[k].t_received_ns)
        return
    if clocks[k].own != 0:
        fault = _to_controller_clock(clocks, k, rx, pending[s, slot])
        if fault:
            cl.latch(rx, k, fault, rx[k].t_received_ns)
            return
    pending_count[s] += 1


@njit(cache=False, nogil=True)
def _read_links(n_links, pollfds, rbuf, rx, buffers, raw, robot, pending, pending_head, pending_count,
                u32, f32, port_failed, stats, loop, ts, clocks):  # fmt: skip
    """Read every readable descriptor and feed its receiver; returns how many sensor frames were queued."""
    frames = 0
    for k in range(n_links):
        events = syscalls.revents(pollfds, k)
        if events == 0:
            continue
        fd = int(pollfds[k] & np.int64(0x7FFFFFFF))
        got = syscalls.read_into(fd, rbuf, READ_CHUNK) if not events & syscalls.POLLNVAL else -1
        if got <= 0:
            if got == 0 or events & syscalls.POLL_FAILED:  # end of file, hang-up or error: the port is gone
                pollfds[k] = pollfds[k] | np.int64(0x80000000)  # negative fd: ppoll ignores it until reset
                port_failed[k] = 1
                stats[S_PORT_FAILURES] += 1
                if rx[k].state != _ERROR_STATE:  # the link latches LINK_LOSS until the operator's reset
                    cl.latch(rx, k, _R_LOSS, syscalls.monotonic_ns(ts))
            continue
        t_rx = syscalls.monotonic_ns(ts)
        pos = 0
        while pos < got:
            pos = cl.feed(rx, k, buffers, rbuf, pos, got, t_rx, raw, TABLE, cl.REASON_TABLE)
            if rx[k].event != cl.EVENT_ACCEPTED:
                break
            if rx[k].message_type == _ROBOT_STATE:
                cl.decode_robot_state(rx, k, raw, robot)
            elif rx[k].message_type == _DETECTIONS:
                _queue_frame(rx, k, raw, pending, pending_head, pending_count, u32, f32, stats, loop, clocks)
                frames += 1
            elif rx[k].message_type == _SYNC_REPLY:
                _take_sync_reply(clocks, k, rx, raw)
    return frames


@njit(cache=False, nogil=True)
def _take_in_frames(n_sensors, pending, pending_head, pending_count, detections, now_ns, stats):
    """Move at most one pending frame per sensor into the held set (as the Python executor); a mask."""
    mask = 0
    for s in range(n_sensors):
        if pending_count[s] == 0:
            continue
        head = pending_head[s]
        previous_rx = detections[s].t_received_ns
        detections[s] = pending[s, head]
        if detections[s].t_received_ns <= previous_rx:
            detections[s].t_received_ns = now_ns  # held back a step: it reaches the step now
        pending_head[s] = (head + 1) % PENDING_FRAMES_PER_SENSOR
        pending_count[s] -= 1
        mask |= 1 << s
        stats[S_FRAMES_IN] += 1
    return mask


@njit(cache=False, nogil=True)
def _link_fault(n_links, rx, port_failed, write_failed, loop):
    """The Reason given to the step this cycle: a lost frame, a latched sensor link, then the robot link."""
    fault = loop[L_FRAMES_FAULT]
    loop[L_FRAMES_FAULT] = 0
    for k in range(1, n_links):
        if fault == 0 and rx[k].state == _ERROR_STATE:
            fault = rx[k].error_reason
    if fault == 0 and rx[ROBOT_LINK].state == _ERROR_STATE:
        fault = rx[ROBOT_LINK].error_reason
    if write_failed[0]:
        write_failed[0] = 0
        if fault == 0:
            fault = _R_LOSS
    return fault


@njit(cache=False, nogil=True)
def _record(cycles_buf, cycles_u8, cycles_ctr, frames_buf, frames_u8, frames_ctr, det_u8, n_sensors,
            step_index, scheduled, t_wake, t_inputs, now, t_end, t_written, overrun, reset, link_fault,
            new_frames, seq, detections, robot_u8, command_u8, trigger):  # fmt: skip
    """The step's cycle record, and each new frame's record, into the trace rings (dropped when full)."""
    cap = cycles_buf.shape[0]
    head = cycles_ctr[RING_HEAD]
    if head - cycles_ctr[RING_TAIL] >= cap:
        cycles_ctr[RING_DROPPED] += 1
    else:
        slot = head % cap
        fill_cycle_record(cycles_buf, cycles_u8, slot, step_index, scheduled, t_wake, now, now, t_end,
                          t_written, overrun, reset, link_fault, new_frames, seq, detections, robot_u8,
                          command_u8)  # fmt: skip
        cycles_buf[slot].t_inputs_ns = t_inputs
        cycles_buf[slot].trigger = trigger
        cycles_ctr[RING_HEAD] = head + 1
    if new_frames == 0:
        return
    fcap = frames_buf.shape[0]
    size = frames_buf.itemsize
    for s in range(n_sensors):
        if not new_frames & (1 << s):
            continue
        fhead = frames_ctr[RING_HEAD]
        if fhead - frames_ctr[RING_TAIL] >= fcap:
            frames_ctr[RING_DROPPED] += 1
            continue
        slot = fhead % fcap
        base = slot * size
        for b in range(_DETECTION_BYTES):  # the frame record starts with the detection's packed fields
            frames_u8[base + b] = det_u8[s * _DETECTION_BYTES + b]
        frames_buf[slot].cycle = step_index
        frames_ctr[RING_HEAD] = fhead + 1


@njit(cache=False, nogil=True)
def hard_loop(params, state, detections, robot, command, n_sensors, period_ns, deadline_ns, spin_ns,
              wake_on_data, pollfds, rbuf, rx, buffers, raw, tx_scratch, tx_out, pending, pending_head,
              pending_count, u32, f32, port_failed, write_failed, control, stats, loop, cycles_buf,
              cycles_u8, cycles_ctr, frames_buf, frames_u8, frames_ctr, det_u8, robot_u8, command_u8,
              ts, clocks):  # fmt: skip
    """Run releases and data steps until control[C_STOP] is set or the release at control[C_END_NS]."""
    n_links = n_sensors + 1
    robot_fd = int(pollfds[ROBOT_LINK] & np.int64(0x7FFFFFFF))
    while control[C_STOP] == 0:
        release = loop[L_NEXT_RELEASE]
        end_ns = control[C_END_NS]
        if end_ns > 0 and release >= end_ns:
            break
        pending_any = False
        for s in range(n_sensors):
            if pending_count[s] > 0:
                pending_any = True
        # ---- wait: for data (when waking on it) or until spin_ns before the release, then spin on the
        # clock alone: polling a tty can wait for the kernel's (ordinary-priority) delivery of its bytes
        now = syscalls.monotonic_ns(ts)
        ready = 0
        if wake_on_data and pending_any:
            pass  # step the next pending frame at once
        elif now < release - spin_ns:
            watched = n_links if wake_on_data else 0  # on the tick, inputs are read at the release only
            ready = syscalls.wait_readable(pollfds, watched, release - spin_ns - now, ts)
        else:
            while now < release:
                now = syscalls.monotonic_ns(ts)
        t_wake = syscalls.monotonic_ns(ts)
        due = t_wake >= release
        reset_level = 1 if control[C_RESET_PULSES] > 0 or control[C_RESET_LEVEL] != 0 else 0
        reset_edge = reset_level == 1 and loop[L_RESET_PREV] == 0
        if reset_edge:  # the operator's reset also clears latched link errors (it always runs a step)
            for k in range(n_links):
                if rx[k].state == _ERROR_STATE:
                    cl.reset(rx, k, t_wake)
                    cs.reset(clocks, k, t_wake)  # a fresh estimate, from a request at once
                if port_failed[k]:
                    port_failed[k] = 0
                    pollfds[k] = pollfds[k] & np.int64(~0x80000000)
        frames = 0
        if ready > 0:  # woken by data: take it in now; only a detection frame is worth a step
            frames = _read_links(n_links, pollfds, rbuf, rx, buffers, raw, robot, pending, pending_head,
                                 pending_count, u32, f32, port_failed, stats, loop, ts, clocks)  # fmt: skip
        if not (due or reset_edge or (wake_on_data and (frames > 0 or pending_any))):
            continue
        # ---- one step
        trigger = TRIGGER_TICK if due else (TRIGGER_RESET if reset_edge else TRIGGER_DATA)
        scheduled = release if due else t_wake
        if not wake_on_data and syscalls.wait_readable(pollfds, n_links, 0, ts) > 0:  # the tick's inputs
            _read_links(n_links, pollfds, rbuf, rx, buffers, raw, robot, pending, pending_head, pending_count,
                        u32, f32, port_failed, stats, loop, ts, clocks)  # fmt: skip
        t_inputs = syscalls.monotonic_ns(ts)
        for k in range(n_links):
            cl.check_watchdog(rx, k, t_inputs)
        _check_clocks(n_links, clocks, rx, t_inputs)
        if control[C_RESET_PULSES] > 0:
            control[C_RESET_PULSES] -= 1
        loop[L_RESET_PREV] = reset_level
        overrun = loop[L_PENDING_OVERRUN]
        if t_wake >= scheduled + deadline_ns:
            overrun = 1
        new_frames = _take_in_frames(n_sensors, pending, pending_head, pending_count, detections, t_inputs,
                                     stats)  # fmt: skip
        link_fault = _link_fault(n_links, rx, port_failed, write_failed, loop)
        if link_fault:
            stats[S_LINK_FAULTS] += 1
        now = syscalls.monotonic_ns(ts)
        safety_step(params, state, detections, robot, reset_level, overrun, now, command)
        if link_fault:
            apply_link_fault(params, command, link_fault)
        t_end = syscalls.monotonic_ns(ts)
        n = cl.encode_command(rx, ROBOT_LINK, command, t_end, tx_scratch, tx_out, TABLE)
        if not syscalls.write_all(robot_fd, tx_out, n):
            write_failed[0] = 1
            stats[S_WRITE_FAILURES] += 1
        t_written = syscalls.monotonic_ns(ts)
        _send_sync_requests(n_links, clocks, rx, pollfds, tx_scratch, tx_out, ts)
        loop[L_COMMANDS] += 1
        late = t_written > scheduled + deadline_ns
        loop[L_PENDING_OVERRUN] = 1 if late else 0
        if late:
            stats[S_OVERRUNS] += 1
        stats[S_CYCLES] += 1
        if trigger != TRIGGER_TICK:
            stats[S_DATA_STEPS] += 1
        else:
            stats[S_MAX_WAKE] = max(stats[S_MAX_WAKE], t_wake - release)
        stats[S_MAX_CYCLE] = max(stats[S_MAX_CYCLE], t_written - scheduled)
        _record(cycles_buf, cycles_u8, cycles_ctr, frames_buf, frames_u8, frames_ctr, det_u8, n_sensors,
                loop[L_STEP_INDEX], scheduled, t_wake, t_inputs, now, t_end, t_written, overrun, reset_level,
                link_fault, new_frames, loop[L_COMMANDS], detections, robot_u8, command_u8,
                trigger)  # fmt: skip
        loop[L_STEP_INDEX] += 1
        if due:
            next_release = release + period_ns
            behind = t_written - next_release  # releases that passed before the command went out
            if behind >= period_ns:  # the next release's slot is over: skip to the current one
                skipped = behind // period_ns
                next_release += skipped * period_ns
                stats[S_SKIPPED] += skipped
            loop[L_NEXT_RELEASE] = next_release
    return 0


def warm_up() -> None:
    """Compile the link kernels, the syscalls and the hard loop (before arming, never in the loop)."""
    syscalls.warm_up()
    cl.warm_up()
    cs.warm_up()
    if hard_loop.signatures:  # compiled already (one signature: the buffers' types never change)
        return
    r, w = os.pipe()
    try:
        hard_loop(*_warm_up_args(r, w))  # stops before its first step: control[C_STOP] is set
    finally:
        os.close(r)
        os.close(w)


def _warm_up_args(read_fd: int, write_fd: int) -> tuple[Any, ...]:
    """Buffers of the hard loop's exact types, with the stop already requested."""
    from cobotguard.safety.link.acceptance import LinkPolicy
    from cobotguard.safety.params import PARAMS_DTYPE
    from cobotguard.safety.step import STATE_DTYPE

    policy = LinkPolicy(max_delay_ns=10**9, watchdog_ns=10**9)
    rx = cl.new_receivers([Role.CONTROLLER, Role.SENSOR_RECEIVER], [1, 2], [policy, policy], 0)
    cycles = np.zeros(4, dtype=CYCLE_DTYPE)
    frames = np.zeros(4, dtype=DETECTION_TRACE_DTYPE)
    detections = empty_detections(MAX_SENSORS)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    command = np.zeros(1, dtype=COMMAND_DTYPE)
    control = np.zeros(4, dtype=np.int64)
    control[C_STOP] = 1
    u32, f32 = cl.float_scratch()
    return (
        np.zeros(1, dtype=PARAMS_DTYPE), np.zeros(1, dtype=STATE_DTYPE), detections, robot, command, 1,
        1_000_000, 1_000_000, DEFAULT_SPIN_NS, True, syscalls.pollfds_for([write_fd, read_fd]),
        np.zeros(READ_CHUNK, dtype=np.uint8), rx, cl.new_buffers(2),
        np.zeros(MAX_FRAME_BYTES, dtype=np.uint8), np.zeros(64, dtype=np.uint8),
        np.zeros(64, dtype=np.uint8),
        np.zeros((MAX_SENSORS, PENDING_FRAMES_PER_SENSOR), dtype=DETECTION_DTYPE),
        np.zeros(MAX_SENSORS, dtype=np.int64), np.zeros(MAX_SENSORS, dtype=np.int64), u32, f32,
        np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int64), control,
        np.zeros(N_STATS, dtype=np.int64), np.zeros(N_LOOP, dtype=np.int64), cycles,
        cycles.view(np.uint8),
        np.zeros(3, dtype=np.int64), frames, frames.view(np.uint8), np.zeros(3, dtype=np.int64),
        detections.view(np.uint8), robot.view(np.uint8), command.view(np.uint8), syscalls.new_timespec(),
        cs.new_clocks([cs.ClockPolicy(), cs.ClockPolicy()], 0),
    )  # fmt: skip
