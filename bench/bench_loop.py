"""Hard-loop latency at 500 Hz and 1 kHz: the compiled loop over pty pairs, the Python executor over the same
kind of ptys, and cyclictest (C) on the same CPU, all in one run.

Measured per cycle period (--periods-ms, default 2 and 1), one mode after the other, in this one process,
in --rounds interleaved rounds (default 4: cyclictest, compiled, Python, cyclictest, compiled, ...; each
distribution pools its rounds), so that the shared machine's changing noise hits every mode alike:

- cyclictest (C, SCHED_FIFO 80, mlockall, pinned to --cpu): wake-up latency = woke - asked for. The floor
  this machine gives a periodic real-time thread.
- compiled loop (safety.compiled_controller, wake_on_data = true), tick steps only: release -> command
  written (wake-up, reading the ports, step, command encoded and written to the robot pty), from its trace;
  and its wake-up alone. Data steps are excluded here: they have no release.
- Python executor (safety.executor.Controller, wake_on_data = false), same cell, same placement, its own ptys:
  release -> command written, from its trace. The baseline of the "compiled / Python" ratios.
- controller share over ptys: a detection frame's bytes handed to write() by the sensor peer (the peer
  reads CLOCK_MONOTONIC just before the write) -> the command bytes written by the step that took the frame
  in, joined through the trace's "detections" stream (`cycle`, `t_sent_ns`). Both ends read CLOCK_MONOTONIC
  on this machine. Split into peer write -> controller read (tty layer + wake-up) and read -> written.

The cell is hil/defaults/cell.toml (or --config), with the cycle period set per mode, the sensor frame rate
set to --frame-hz (default 100 Hz, for enough frames per mode; the controller checks frames against that
rate) and worst_step_ms as in the file unless --worst-step-ms. It is empty: reset is pressed at the start
and again (at most every 50 ms) whenever the cell is not in RUN; such stops are counted and printed.

Placement: the controller's loop thread pinned to --cpu with SCHED_FIFO 80 and mlockall; the robot emulator
(hil.robot) and the sensor peers in one forked child process pinned to --peer-cpu at normal priority (it
waits in select, it does not spin); this process's other threads (supervision, trace drain, the Python
executor's port readers) pinned to --peer-cpu too. --variants adds, for the compiled loop: not pinned
(SCHED_FIFO), pinned without SCHED_FIFO (and without mlockall), neither, no spin before the release
(spin_ns = 0: ppoll sleeps until the release), and socket pairs instead of ptys (everything else as the
default: it shows what the tty layer adds). --own-clock adds the compiled loop with every sensor on a clock
of its own (clock = "own", a SYNC_REQUEST every 50 ms, error limit 2 ms; the peers' clocks 42 s behind,
100 ppm slow, answering each request at once), beside the compiled loop on one clock in the same rounds:
the cost of the clock sync in the loop (docs/protocol.md, section 14). --load runs
`stress-ng --cpu 1 --cpu-load 50` (not pinned: the kernel places it) for the whole run.

Each mode's note says what else was going on: the hypervisor's steal time (/proc/stat) and other processes'
real-time threads seen during the mode. --sample-waits samples the loop thread's kernel wait channel
(/proc/PID/task/TID/wchan) every 1 ms from another process: e.g. "D __flush_work" is the loop waiting in
poll or read on a tty for the kernel's flip-buffer work (a normal-priority kworker) to deliver the bytes.

The first --warmup-s of every controller mode is left out (first-touch page faults, the robot's first
state). The machine's noise (a shared VM) dominates the tails: read distributions, never one number.
Not a test: nothing is asserted. Targets printed: compiled p99.9 <= 2 x cyclictest p99.9 (same period,
same run); controller share p99 <= 0.3 ms and p99.9 <= 1 ms.

    python bench/bench_loop.py [--seconds 10] [--periods-ms 2,1] [--load] [--variants] [--own-clock]
                               [--sample-waits] [--json]
    python bench/bench_loop.py --sleep-modes --no-executor   # plain/spin sleeps and cyclictest only

--sleep-modes adds the Python sleep modes (plain sleep vs sleep-then-spin, with and without SCHED_FIFO).
bench/bench_soak.py imports the pty cell and the supervision from here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cobotguard.safety.clock import sleep_until_plain, sleep_until_spin
from cobotguard.safety.realtime import apply_realtime

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CELL = REPO / "hil" / "defaults" / "cell.toml"
QUANTILES = (0.5, 0.99, 0.999)
RT_PRIORITY = 80
RESET_RETRY_NS = 50_000_000  # press reset again this long after the last press while the cell is not in RUN
SHARE_P99_TARGET_US = 300.0
SHARE_P999_TARGET_US = 1000.0
CYCLICTEST_RATIO_TARGET = 2.0


# ---------------------------------------------------------------------------------------------- statistics


def quantile(ordered: list[int] | Any, q: float) -> float:
    """Linear-interpolated quantile of sorted samples (numpy's default method)."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summarise(samples: list[int] | Any) -> dict[str, float]:
    """n, median, p99, p99.9, max in microseconds (samples in ns)."""
    ordered = sorted(int(x) for x in samples)
    if not ordered:
        return {"n": 0, "median_us": float("nan"), "p99_us": float("nan"), "p99.9_us": float("nan"),
                "max_us": float("nan")}  # fmt: skip
    q = [quantile(ordered, x) for x in QUANTILES]
    return {
        "n": len(ordered),
        "median_us": q[0] / 1e3,
        "p99_us": q[1] / 1e3,
        "p99.9_us": q[2] / 1e3,
        "max_us": ordered[-1] / 1e3,
    }


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is not positive."""
    return a / b if b > 0 else float("nan")


# ---------------------------------------------------------------------------------------------- the host


def host_notes() -> list[str]:
    """What the machine is and what else runs on it now (load average, busiest other processes)."""
    notes = [f"host: {os.cpu_count()} CPUs, kernel {os.uname().release}, load average "
             + " ".join(f"{x:.2f}" for x in os.getloadavg())]  # fmt: skip
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        top = subprocess.run(
            ["ps", "-eo", "pcpu,pid,comm", "--sort=-pcpu", "--no-headers"],
            capture_output=True, text=True, timeout=5,
        ).stdout.splitlines()  # fmt: skip
        busy = [line.split(None, 2) for line in top[:8]]
        others = [f"{c} ({p}%)" for p, pid, c in busy if int(pid) != os.getpid() and float(p) >= 5.0]
        notes.append("busy processes at start (ps %CPU, lifetime average): " + (", ".join(others) or "none"))
    return notes


def foreign_rt_threads() -> set[str]:
    """User-space threads of other processes running SCHED_FIFO or SCHED_RR now, as "comm (pid) prio N"
    (kernel threads left out). They compete with the controller for its CPU."""
    found: set[str] = set()
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    head, tail = f.read().rsplit(")", 1)
                fields = tail.split()
                ppid, rt_priority, policy = int(fields[1]), int(fields[37]), int(fields[38])
                if policy in (1, 2) and ppid != 2 and int(pid) != 2:
                    found.add(f"{head.split('(', 1)[1]} ({pid}) prio {rt_priority}")
    return found


def steal_ticks() -> dict[str, int]:
    """Steal time per CPU line of /proc/stat ("cpu" is all CPUs), in USER_HZ ticks: time the hypervisor
    ran something else while this VM's virtual CPU wanted to run."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu"):
                fields = line.split()
                out[fields[0]] = int(fields[8]) if len(fields) > 8 else 0
    return out


def steal_note(before: dict[str, int], after: dict[str, int], cpu: int | None) -> str:
    """Steal time between two steal_ticks() readings, for all CPUs and the controller's, in ms."""
    hz = os.sysconf("SC_CLK_TCK")
    total = (after.get("cpu", 0) - before.get("cpu", 0)) * 1000 // hz
    text = f"hypervisor steal {total} ms (all CPUs)"
    if cpu is not None:
        key = f"cpu{cpu}"
        text += f", {(after.get(key, 0) - before.get(key, 0)) * 1000 // hz} ms on CPU {cpu}"
    return text


class Load:
    """`stress-ng --cpu 1 --cpu-load 50` in its own session, not pinned; stopped by stop()."""

    def __init__(self, seconds: float) -> None:
        exe = shutil.which("stress-ng")
        if exe is None:
            raise SystemExit("--load needs stress-ng (apt-get install stress-ng)")
        self.cmd = [exe, "--cpu", "1", "--cpu-load", "50", "--timeout", f"{int(seconds) + 60}s", "--quiet"]
        every_cpu = set(range(os.cpu_count() or 1))
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, every_cpu),  # not our pinning: the kernel places it
        )
        time.sleep(0.5)

    @property
    def description(self) -> str:
        return " ".join(["stress-ng", *self.cmd[1:]]) + " (not pinned)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: stress-ng and its workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


# ---------------------------------------------------------------------------------------------- the cell


def bench_config(
    path: Path = DEFAULT_CELL,
    period_ms: float | None = None,
    worst_step_ms: float | None = None,
    wake_on_data: bool | None = True,
    frame_hz: float | None = None,
    own_clock: bool = False,
) -> Any:
    """The cell of `path` with the given overrides (None: as in the file). wake_on_data is set only when
    the configuration model has the key. own_clock: every sensor on a clock of its own (OWN_CLOCK_KEYS
    unless the file sets clock = "own" already)."""
    from cobotguard.safety.config import CellConfig, Controller
    from cobotguard.safety.config_load import load_config

    data = load_config(path).model_dump()
    if period_ms is not None:
        data["controller"]["cycle_period_ms"] = period_ms
    if worst_step_ms is not None:
        data["controller"]["worst_step_ms"] = worst_step_ms
    if wake_on_data is not None and "wake_on_data" in Controller.model_fields:
        data["controller"]["wake_on_data"] = wake_on_data
    if frame_hz is not None:
        for sensor in data["sensors"].values():
            sensor["frame_rate_hz"] = frame_hz
    if own_clock:
        for sensor in data["sensors"].values():
            if sensor.get("clock") != "own":
                sensor.update(OWN_CLOCK_KEYS)
    return CellConfig.model_validate(data)


# The own-clock mode's sensor clock (examples/sensor_own_clock.toml's sync settings), and how far the
# peers' own clocks run from the controller's (the issue's target: 42 s behind, 100 ppm slow).
OWN_CLOCK_KEYS = {
    "clock": "own",
    "clock_sync_period_ms": 50.0,
    "clock_error_limit_ms": 2.0,
    "clock_max_drift_ppm": 200.0,
}
PEER_CLOCK_OFFSET_NS = -42_000_000_000
PEER_CLOCK_DRIFT_PPM = -100.0


def _warm_peers(cfg: Any) -> None:
    """Pass a command, a state frame and a detection frame through throwaway endpoints: nothing compiles
    on the live links."""
    import numpy as np

    from cobotguard.hil.robot import RobotEmulator
    from cobotguard.safety.link import Command, Detections, Role, robot_link_endpoint, sensor_link_endpoint
    from cobotguard.safety.reasons import CommandKind, Reason
    from cobotguard.safety.records import PERSON_DTYPE

    now = time.monotonic_ns()
    controller_end = robot_link_endpoint(cfg, Role.CONTROLLER, now)
    robot = RobotEmulator(cfg, now)
    robot.receive(controller_end.send(Command(CommandKind.FAULT_STOP, reason=Reason.NOT_ARMED), now), now)
    controller_end.feed(robot.state_frame(now), now)
    controller_end.next_event()
    for name in cfg.sensors:
        sender = sensor_link_endpoint(cfg, name, Role.SENSOR, now)
        receiver = sensor_link_endpoint(cfg, name, Role.SENSOR_RECEIVER, now)
        det = Detections(0, 0, 0, 0, 3100, now - 10_000_000, now - 2_000_000, np.zeros(0, dtype=PERSON_DTYPE))
        receiver.feed(sender.send(det, now), now)
        receiver.next_event()


def _serve_peers(cfg: Any, robot_io: Any, sensor_io: list[Any], go: Any, stop: Any, resets: Any) -> dict:
    """The child's loop: the robot emulator answers commands (and sends its state at least every receiver
    cycle), each sensor sends an empty DETECTIONS frame at its frame rate, stamping the write."""
    import numpy as np

    from cobotguard.hil.robot import RobotEmulator, RobotRunner
    from cobotguard.safety.config import ns
    from cobotguard.safety.link import Detections, Role, sensor_link_endpoint
    from cobotguard.safety.link.transport import TransportError
    from cobotguard.safety.records import PERSON_DTYPE
    from cobotguard.safety.timing import frame_period_ns

    _warm_peers(cfg)
    while not go.wait(0.05):
        if stop.is_set():
            return {"sent": [], "robot_faults": [], "lost_writes": 0}
    from cobotguard.sensor.clock import OwnClock, SyncResponder

    cycle_ns = max(ns(cfg.link.receiver_cycle_ms), 100_000)
    now = time.monotonic_ns()
    emulator = RobotEmulator(cfg, now)
    runner = RobotRunner(emulator, robot_io)  # its state at least every robot.state_period_ms
    empty = np.zeros(0, dtype=PERSON_DTYPE)
    # per sensor: endpoint, transport, index, period, next due, frames sent
    sensors = [
        [sensor_link_endpoint(cfg, name, Role.SENSOR, now), io, k,
         frame_period_ns(cfg.sensors[name].frame_rate_hz), now, 0]
        for k, (name, io) in enumerate(zip(cfg.sensors, sensor_io, strict=True))
    ]  # fmt: skip
    # sensors on their own clock: that clock stamps their frames, and their responder answers SYNC_REQUESTs
    clocks = [
        OwnClock(PEER_CLOCK_OFFSET_NS, PEER_CLOCK_DRIFT_PPM) if cfg.sensors[name].clock == "own" else None
        for name in cfg.sensors
    ]
    responders = [
        SyncResponder(s[0], c) if c is not None else None for s, c in zip(sensors, clocks, strict=True)
    ]
    synced = [io.fileno() for io, r in zip(sensor_io, responders, strict=True) if r is not None]
    listen = [robot_io.fileno(), *synced]
    if len(listen) == 1:
        listen = []  # every sensor on our clock: the robot's read waits, as before
    sent: list[
        tuple[int, int, int, int]
    ] = []  # (t_sent_ns in the frame, write called, write returned, sensor)
    robot_faults: list[tuple[int, str]] = []
    lost_writes = 0
    seen_resets = resets.value
    fault_before = None
    while not stop.is_set():
        now = time.monotonic_ns()
        due = min(s[4] for s in sensors) if sensors else now + cycle_ns
        robot_io.read_timeout_ns = max(0, min(cycle_ns, due - now))
        if listen:  # wait for a command or a SYNC_REQUEST, whichever comes first
            ready, _, _ = select.select(listen, [], [], robot_io.read_timeout_ns / 1e9)
            for io, responder, clock in zip(sensor_io, responders, clocks, strict=True):
                if responder is not None and io.fileno() in ready:
                    try:
                        io.write(responder.receive(io.read(4096), clock()))
                    except TransportError:
                        lost_writes += 1
            robot_io.read_timeout_ns = 0  # the command is there, or none came in time
        try:
            runner.poll()
        except TransportError:
            lost_writes += 1  # the controller did not take the state frame in time: lost, as on a line
        now = time.monotonic_ns()
        if emulator.fault is not None and fault_before is None:
            robot_faults.append((now, emulator.fault.reason.name))
        fault_before = emulator.fault
        if resets.value != seen_resets:  # the operator's reset also clears the robot's latch
            seen_resets = resets.value
            if emulator.fault is not None:
                emulator.reset(now)
        for s in sensors:
            if now < s[4]:
                continue
            at = clocks[s[2]].at if clocks[s[2]] is not None else int  # the sensor's clock, or ours
            det = Detections(s[2], s[5] % 256, 0, 0, 3100, at(now - 10_000_000), at(now - 2_000_000), empty)
            frame = s[0].send(det, at(now))
            t_write = time.monotonic_ns()
            try:
                s[1].write(frame)
            except TransportError:
                lost_writes += 1
            sent.append((now, t_write, time.monotonic_ns(), s[2]))
            s[5] += 1
            s[4] += s[3]
            if now - s[4] >= s[3]:  # this process was held up for more than a frame period: skip ahead
                s[4] = now + s[3]
        now = time.monotonic_ns()
    return {"sent": sent, "robot_faults": robot_faults, "lost_writes": lost_writes}


class SocketPeerTransport:
    """The peer's end of a socket pair, with the transport interface the peers use (write, read with
    `read_timeout_ns`, close); for comparing the tty layer with no tty layer at all."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(0.05)  # a controller that stops reading must not hang the peer
        self.read_timeout_ns = 1_000_000

    def write(self, data: bytes) -> None:
        from cobotguard.safety.link.transport import TransportError

        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise TransportError(f"socket: write failed: {exc}") from exc

    def read(self, max_bytes: int = 4096) -> bytes:
        ready, _, _ = select.select([self.sock], [], [], self.read_timeout_ns / 1e9)
        if not ready:
            return b""
        try:
            return self.sock.recv(max_bytes)
        except (BlockingIOError, TimeoutError):
            return b""

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class PeerCell:
    """The robot link and one link per sensor, as pty pairs (transport="pty": the controller opens the
    slave paths `robot_path`, `sensor_paths` as its serial ports, like `cobotguard run`) or socket pairs
    (transport="socket": the controller gets `robot_fd`, `sensor_fds`). The robot emulator and the sensor
    peers run in one forked child process (pinned to `peer_cpu` unless None, normal priority).

    Start the child (it compiles its link code), arm the controller, then go(); close() returns what the
    child recorded: `sent` (t_sent_ns, t_write_ns, t_written_ns, sensor) per frame, `robot_faults`
    (t_ns, reason) each time the robot latched a self-stop, `lost_writes`.
    """

    def __init__(self, cfg: Any, peer_cpu: int | None = 0, transport: str = "pty") -> None:
        from cobotguard.safety.link.transport import PtyTransport

        self.cfg = cfg
        self.peer_cpu = peer_cpu
        self.transport = transport
        self._ours: list[socket.socket] = []
        if transport == "pty":
            self.robot_io: Any = PtyTransport(baud=cfg.link.baud)
            self.sensor_io: list[Any] = [PtyTransport() for _ in cfg.sensors]
            self.robot_path = self.robot_io.peer_path
            self.sensor_paths = [io.peer_path for io in self.sensor_io]
        elif transport == "socket":
            pairs = [socket.socketpair() for _ in range(1 + len(cfg.sensors))]
            self._ours = [ours for ours, _ in pairs]
            self.robot_io = SocketPeerTransport(pairs[0][1])
            self.sensor_io = [SocketPeerTransport(theirs) for _, theirs in pairs[1:]]
            self.robot_fd = self._ours[0].fileno()
            self.sensor_fds = [ours.fileno() for ours in self._ours[1:]]
        else:
            raise ValueError(f"transport: expected pty or socket, got {transport!r}")
        ctx = multiprocessing.get_context("fork")
        self._go = ctx.Event()
        self._stop = ctx.Event()
        self._resets = ctx.Value("q", 0)
        self._results, child_end = ctx.Pipe(duplex=False)
        self._child = ctx.Process(target=self._child_main, args=(child_end,), daemon=True)
        self._child.start()
        child_end.close()

    def _child_main(self, conn: Any) -> None:
        try:
            if self.peer_cpu is not None:
                os.sched_setaffinity(0, {self.peer_cpu})
            else:
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            result = _serve_peers(self.cfg, self.robot_io, self.sensor_io, self._go, self._stop, self._resets)
        except BaseException as exc:  # reported by close(), never a hang
            result = {
                "sent": [],
                "robot_faults": [],
                "lost_writes": 0,
                "error": f"{type(exc).__name__}: {exc}",
            }
        conn.send(result)
        conn.close()

    def go(self) -> None:
        """Start serving (call right before the controller's run)."""
        self._go.set()

    def press_reset(self) -> None:
        """Tell the robot emulator that the operator pressed reset (it clears a latched self-stop)."""
        with self._resets.get_lock():
            self._resets.value += 1

    def close(self) -> dict:
        """Stop the child, collect what it recorded, close the ptys."""
        self._stop.set()
        result: dict = {
            "sent": [],
            "robot_faults": [],
            "lost_writes": 0,
            "error": "peer process gave no result",
        }
        if self._results.poll(30.0):
            result = self._results.recv()
        self._child.join(10.0)
        if self._child.is_alive():
            self._child.terminate()
            self._child.join(5.0)
        self.robot_io.close()
        for io in self.sensor_io:
            io.close()
        for ours in self._ours:
            ours.close()
        return result


@dataclass
class Supervisor:
    """Presses reset at the start and, at most every 50 ms, whenever the cell is not in RUN; notes each time
    it saw the cell leave RUN (its own 10 ms look; the trace has every step)."""

    controller: Any
    cell: PeerCell
    t0_ns: int = 0
    in_run: bool = False
    ever_run: bool = False
    last_press_ns: int = -(10**18)
    seen_stops: list[tuple[float, str]] = field(default_factory=list)

    def poll(self) -> None:
        from cobotguard.safety.reasons import CommandKind, Reason

        now = time.monotonic_ns()
        command = self.controller.command[0]
        if int(command["kind"]) == int(CommandKind.RUN):
            self.in_run = self.ever_run = True
            return
        if self.in_run:
            self.in_run = False
            self.seen_stops.append(((now - self.t0_ns) / 1e9, Reason(int(command["reason"])).name))
        if now - self.last_press_ns >= RESET_RETRY_NS:
            self.last_press_ns = now
            self.controller.press_reset()
            self.cell.press_reset()


@dataclass
class ControllerRun:
    """What one controller session left: its trace, counters, what the peers recorded."""

    trace: Any
    stats: dict
    data_steps: int
    warnings: list[str]
    peers: dict
    seen_stops: list[tuple[float, str]]
    t_run_ns: int  # when run() was called
    seconds: float
    # other processes' real-time threads seen (1 s looks): name -> (first, last) seconds after run() started
    other_rt: dict[str, tuple[float, float]] = field(default_factory=dict)
    wait_channels: dict[str, int] = field(default_factory=dict)  # with sample_waits: state+wchan -> samples


class WaitSampler:
    """A forked process that reads the loop thread's state and kernel wait channel (/proc/.../wchan) every
    `interval_s`: where the loop thread sleeps or blocks. Costs a little CPU on `cpu`."""

    def __init__(self, cpu: int | None, interval_s: float = 0.001) -> None:
        ctx = multiprocessing.get_context("fork")
        self._tid = ctx.Value("q", 0)
        self._stop = ctx.Event()
        self._results, child_end = ctx.Pipe(duplex=False)
        self._child = ctx.Process(
            target=self._main, args=(os.getpid(), cpu, interval_s, child_end), daemon=True
        )
        self._child.start()
        child_end.close()

    def watch(self, tid: int) -> None:
        self._tid.value = tid

    def _main(self, pid: int, cpu: int | None, interval_s: float, conn: Any) -> None:
        from collections import Counter

        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        counts: Counter[str] = Counter()
        while not self._stop.is_set():
            tid = self._tid.value
            if tid:
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                    with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                        wchan = f.read().strip()
                    counts[f"{state} {wchan if wchan != '0' else '-'}"] += 1
                except OSError:
                    pass
            time.sleep(interval_s)
        conn.send(dict(counts))
        conn.close()

    def close(self) -> dict[str, int]:
        self._stop.set()
        counts = self._results.recv() if self._results.poll(10.0) else {}
        self._child.join(5.0)
        return counts


def _loop_thread_id() -> int | None:
    for thread in threading.enumerate():
        if thread.name == "hard-loop" and thread.native_id is not None:
            return thread.native_id
    return None


def run_controller(
    cfg: Any,
    seconds: float,
    *,
    compiled: bool = True,
    realtime: bool = True,
    cpu: int | None = 1,
    peer_cpu: int | None = 0,
    pin_without_realtime: bool = False,
    transport: str = "pty",
    spin_ns: int | None = None,
    sample_waits: bool = False,
    trace_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ControllerRun:
    """One controller (compiled or Python) on a fresh PeerCell for `seconds`, supervised; returns its trace.

    cpu: the loop thread's CPU (None: not pinned). realtime: SCHED_FIFO 80 and mlockall (the controller's
    own settings). pin_without_realtime: pin the loop thread to `cpu` from outside, without SCHED_FIFO.
    transport: "pty" or "socket" (compiled only). spin_ns: the compiled loop's spin window before each
    release (None: its default). sample_waits: sample the loop thread's wait channel.
    """
    from cobotguard.safety.trace import read_trace

    work = Path(tempfile.mkdtemp(prefix="bench-", dir=trace_dir))
    path = work / ("compiled.cgtrace" if compiled else "python.cgtrace")
    every_cpu = set(range(os.cpu_count() or 1))
    os.sched_setaffinity(0, {peer_cpu} if peer_cpu is not None else every_cpu)  # us, and threads we start
    if transport != "pty" and not compiled:
        raise ValueError("the Python executor runs on ptys only here")
    sampler = WaitSampler(peer_cpu) if sample_waits else None
    cell = PeerCell(cfg, peer_cpu, transport)
    ports: Any = None
    controller: Any = None
    waits: dict[str, int] = {}
    try:
        if compiled:
            from cobotguard.safety.compiled_controller import CompiledController
            from cobotguard.safety.link_ports import open_port_descriptors

            if transport == "pty":
                ports = open_port_descriptors(cfg, cell.robot_path, cell.sensor_paths)
                robot_fd, sensor_fds = ports.robot_fd, ports.sensor_fds
            else:
                robot_fd, sensor_fds = cell.robot_fd, cell.sensor_fds
            controller = CompiledController(
                cfg, robot_fd, sensor_fds, trace_path=path, realtime=realtime,
                cpu=cpu if realtime else None, rt_priority=RT_PRIORITY, producer="bench_loop",
                **({} if spin_ns is None else {"spin_ns": spin_ns}),
            )  # fmt: skip
        else:
            from cobotguard.safety.executor import Controller
            from cobotguard.safety.link_ports import open_controller_ports

            ports = open_controller_ports(cfg, cell.robot_path, cell.sensor_paths)
            controller = Controller(
                cfg, ports.sensor_source, ports.robot_port, trace_path=path, realtime=realtime,
                cpu=cpu if realtime else None, rt_priority=RT_PRIORITY, producer="bench_loop",
            )  # fmt: skip
        controller.arm()
        supervisor = Supervisor(controller, cell)
        failure: list[BaseException] = []

        def body() -> None:
            try:
                controller.run(duration_ns=int(seconds * 1e9))
            except BaseException as exc:  # reported below
                failure.append(exc)

        runner = threading.Thread(target=body, name="bench-run", daemon=True)
        cell.go()
        t_run = time.monotonic_ns()
        supervisor.t0_ns = t_run
        runner.start()
        pinned = not pin_without_realtime
        watched = sampler is None
        last_note = t_run
        last_rt_look = 0
        other_rt: dict[str, tuple[float, float]] = {}
        while runner.is_alive():
            if time.monotonic_ns() - last_rt_look >= 1e9:
                last_rt_look = time.monotonic_ns()
                at = (last_rt_look - t_run) / 1e9
                for name in foreign_rt_threads():
                    other_rt[name] = (other_rt.get(name, (at, at))[0], at)
            if not (pinned and watched):
                tid = _loop_thread_id() if compiled else runner.native_id
                if tid is not None and not pinned and cpu is not None:
                    os.sched_setaffinity(tid, {cpu})
                    pinned = True
                if tid is not None and sampler is not None and not watched:
                    sampler.watch(tid)
                    watched = True
            supervisor.poll()
            if progress is not None and time.monotonic_ns() - last_note >= 60e9:
                last_note = time.monotonic_ns()
                progress(f"  {(last_note - t_run) / 60e9:.0f} min: {controller.stats.cycles} steps, "
                         f"{len(supervisor.seen_stops)} stops seen")  # fmt: skip
            runner.join(0.01)
        if failure:
            raise RuntimeError(f"controller run failed: {failure[0]}") from failure[0]
    finally:
        if sampler is not None:
            waits = sampler.close()
        if controller is not None:
            controller.close()
        peers = cell.close()
        if ports is not None:
            ports.close()
    trace = read_trace(path)
    stats = controller.stats.as_dict()
    data_steps = int(getattr(controller, "data_steps", 0))
    warnings = list(controller.warnings)
    if trace_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return ControllerRun(
        trace, stats, data_steps, warnings, peers, supervisor.seen_stops, t_run, seconds, other_rt, waits
    )


def skip_warmup(cycles: Any, t_run_ns: int, warmup_s: float) -> Any:
    """The cycle records released at least `warmup_s` after run() was called."""
    return cycles[cycles["t_scheduled_ns"] >= t_run_ns + int(warmup_s * 1e9)]


def controller_share(run: ControllerRun, warmup_s: float = 0.0, clock_error_ns: int = 0) -> dict[str, Any]:
    """Per frame taken in: peer write() called -> command written by the step that took it in (ns arrays),
    and its two parts; frames that could not be joined are counted.

    Frames join the peer's record by sender time: exactly on one clock; from a sensor on its own clock the
    trace holds the sender time converted to ours, up to `clock_error_ns` earlier than the true one (the
    clock error limit, below a frame period), so it joins the first frame sent at or after it within that.
    """
    import numpy as np

    from cobotguard.safety.cycle import TRIGGER_DATA

    cycles = run.trace.streams["cycles"]
    frames = run.trace.streams["detections"]
    sent = np.array(run.peers["sent"], dtype=np.int64).reshape(-1, 4)
    out: dict[str, Any] = {"frames_sent": int(sent.shape[0]), "frames_in_trace": int(frames.size)}
    if frames.size == 0 or sent.shape[0] == 0 or cycles.size == 0:
        nothing = np.zeros(0, np.int64)
        out.update(
            total=nothing, to_read=nothing, read_to_written=nothing, joined=0, data_step_share=float("nan")
        )
        return out
    order = np.argsort(cycles["cycle"], kind="stable")
    step_ids = cycles["cycle"][order]
    at = np.searchsorted(step_ids, frames["cycle"])
    at = np.minimum(at, step_ids.size - 1)
    in_trace = step_ids[at] == frames["cycle"]
    step = cycles[order][at]
    by_sent = np.argsort(sent[:, 0])
    sent_t = sent[by_sent, 0]
    j = np.minimum(np.searchsorted(sent_t, frames["t_sent_ns"]), sent_t.size - 1)
    early = sent_t[j] - frames["t_sent_ns"]
    matched = (early >= 0) & (early <= clock_error_ns)
    t_write = sent[by_sent, 1][j]
    keep = in_trace & matched & (frames["t_received_ns"] >= t_run_after(run, warmup_s))
    written = step["t_command_written_ns"]
    out["total"] = (written - t_write)[keep]
    out["to_read"] = (frames["t_received_ns"] - t_write)[keep]
    out["read_to_written"] = (written - frames["t_received_ns"])[keep]
    out["joined"] = int(np.count_nonzero(in_trace & matched))
    out["data_step_share"] = (
        float(np.mean(step["trigger"][keep] == TRIGGER_DATA)) if keep.any() else float("nan")
    )
    return out


def t_run_after(run: ControllerRun, warmup_s: float) -> int:
    return run.t_run_ns + int(warmup_s * 1e9)


# ---------------------------------------------------------------------------------------------- the modes


def wake_latencies(sleep_until: Callable[[int], int], cycles: int, period_ns: int) -> list[int]:
    """Run `cycles` releases on an absolute grid and return wake time - release, ns."""
    out = [0] * cycles
    t0 = time.monotonic_ns() + period_ns
    for k in range(cycles):
        release = t0 + k * period_ns
        out[k] = sleep_until(release) - release
    return out


def cyclictest_latencies(seconds: float, period_us: int, cpu: int | None) -> tuple[list[int] | None, str]:
    """cyclictest's 1 us histogram as samples (overflows at its max); None when not installed."""
    exe = shutil.which("cyclictest")
    if exe is None:
        return None, "cyclictest not installed (apt-get install rt-tests); skipped"
    loops = str(max(1, round(seconds * 1e6 / period_us)))
    cmd = [
        exe,
        "-m",
        "-p",
        str(RT_PRIORITY),
        "-i",
        str(period_us),
        "-t",
        "1",
        "-l",
        loops,
        "-q",
        "-h",
        "10000",
    ]
    if cpu is not None:
        cmd[1:1] = ["-a", str(cpu)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cyclictest failed to run: {exc}"
    buckets: list[int] = []
    counts: list[int] = []
    max_us = 0
    overflows = 0
    for line in done.stdout.splitlines():
        row = re.match(r"^(\d+)\s+(\d+)\s*$", line)
        if row:
            buckets.append(int(row.group(1)))
            counts.append(int(row.group(2)))
        elif line.startswith("# Max Latencies:"):
            max_us = int(line.split(":")[1].split()[0])
        elif line.startswith("# Histogram Overflows:"):
            overflows = int(line.split(":")[1].split()[0])
    if not counts:
        return None, f"cyclictest gave no histogram (exit {done.returncode}): {done.stderr.strip()[:200]}"
    samples = [bucket * 1000 for bucket, count in zip(buckets, counts, strict=True) for _ in range(count)]
    samples += [max_us * 1000] * overflows
    return samples, "cyclictest " + " ".join(cmd[1:])


def stops_in(cycles: Any) -> list[tuple[int, int]]:
    """(index, Reason) of every step whose command is not RUN right after a step whose command was RUN."""
    import numpy as np

    from cobotguard.safety.reasons import CommandKind

    is_run = cycles["command"]["kind"] == int(CommandKind.RUN)
    left = np.flatnonzero(is_run[:-1] & ~is_run[1:]) + 1
    return [(int(i), int(cycles["command"]["reason"][i])) for i in left]


@dataclass
class ModeTally:
    """One mode's counters summed over its rounds, and what else was going on meanwhile."""

    counts: Counter = field(default_factory=Counter)
    stops: Counter = field(default_factory=Counter)
    waits: Counter = field(default_factory=Counter)
    other_rt: set[str] = field(default_factory=set)
    warnings: set[str] = field(default_factory=set)
    steal_ms: int = 0
    steal_cpu_ms: int = 0
    rounds: int = 0

    def add_steal(self, before: dict[str, int], after: dict[str, int], cpu: int | None) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        self.steal_ms += (after.get("cpu", 0) - before.get("cpu", 0)) * 1000 // hz
        if cpu is not None:
            key = f"cpu{cpu}"
            self.steal_cpu_ms += (after.get(key, 0) - before.get(key, 0)) * 1000 // hz

    def steal_text(self, cpu: int | None) -> str:
        return f"hypervisor steal {self.steal_ms} ms (all CPUs), {self.steal_cpu_ms} ms on CPU {cpu}"


def controller_variants(
    args: argparse.Namespace,
) -> list[tuple[str, bool, int | None, bool, str, int | None, bool]]:
    """(name, SCHED_FIFO + mlockall, loop CPU, pin from outside, transport, spin_ns or None for the
    controller's default, sensors on their own clock) of each compiled-loop mode."""
    variants: list[tuple[str, bool, int | None, bool, str, int | None, bool]] = [
        ("compiled", True, args.cpu, False, "pty", None, False)
    ]
    if args.own_clock:
        variants.append(("compiled, sensor on its own clock", True, args.cpu, False, "pty", None, True))
    if args.variants:
        variants += [
            ("compiled, not pinned (SCHED_FIFO)", True, None, False, "pty", None, False),
            ("compiled, pinned, no SCHED_FIFO", False, args.cpu, True, "pty", None, False),
            ("compiled, not pinned, no SCHED_FIFO", False, None, False, "pty", None, False),
            ("compiled, no spin before the release", True, args.cpu, False, "pty", 0, False),
            ("compiled, socket pairs (no tty layer)", True, args.cpu, False, "socket", None, False),
        ]
    return variants


def measure_period(
    period_ms: float, args: argparse.Namespace, notes: list[str]
) -> dict[str, dict[str, float]]:
    """cyclictest, the compiled loop (and its variants) and the Python executor at one period, interleaved
    in --rounds rounds of --seconds / --rounds each (so slow changes in the machine's noise hit every mode
    alike); the distributions pool every round."""
    import numpy as np

    from cobotguard.safety.config import ns
    from cobotguard.safety.cycle import TRIGGER_TICK
    from cobotguard.safety.reasons import Reason

    raw: dict[str, list[Any]] = {}
    tallies: dict[str, ModeTally] = {}
    seconds = args.seconds / args.rounds
    how = ""

    def add(name: str, samples: Any) -> None:
        raw.setdefault(name, []).append(np.asarray(samples, dtype=np.int64))

    for _ in range(args.rounds):
        tally = tallies.setdefault("cyclictest", ModeTally())
        before = steal_ticks()
        samples, how = cyclictest_latencies(seconds, round(period_ms * 1000), args.cpu)
        tally.add_steal(before, steal_ticks(), args.cpu)
        tally.rounds += 1
        if samples is not None:
            add("cyclictest wake-up (C)", samples)
        if args.no_executor:
            continue
        for name, realtime, cpu, pin_outside, transport, spin_ns, own in controller_variants(args):
            cfg = bench_config(args.config, period_ms, args.worst_step_ms, True, args.frame_hz, own)
            tally = tallies.setdefault(name, ModeTally())
            before = steal_ticks()
            run = run_controller(cfg, seconds, compiled=True, realtime=realtime, cpu=cpu,
                                 peer_cpu=args.peer_cpu if cpu is not None else None,
                                 pin_without_realtime=pin_outside, transport=transport, spin_ns=spin_ns,
                                 sample_waits=args.sample_waits)  # fmt: skip
            tally.add_steal(before, steal_ticks(), args.cpu)
            c = skip_warmup(run.trace.streams["cycles"], run.t_run_ns, args.warmup_s)
            ticks = c[c["trigger"] == TRIGGER_TICK]
            release_to_written = ticks["t_command_written_ns"] - ticks["t_scheduled_ns"]
            add(f"{name}: release->command written (ticks)", release_to_written)
            add(f"{name}: wake-up (ticks)", ticks["t_wake_ns"] - ticks["t_scheduled_ns"])
            error_ns = max((ns(s.clock_error_limit_ms or 0.0) for s in cfg.sensors.values()), default=0)
            share = controller_share(run, args.warmup_s, error_ns)
            add(f"{name}: controller share (peer write->command written)", share["total"])
            if name in ("compiled", "compiled, sensor on its own clock"):
                add(f"{name}:   peer write->controller read", share["to_read"])
                add(f"{name}:   controller read->command written", share["read_to_written"])
            tally.rounds += 1
            tally.counts.update({k: int(v) for k, v in run.stats.items() if isinstance(v, int)})
            tally.counts.update(
                data_steps=run.data_steps,
                late_ticks=int(np.count_nonzero(release_to_written > cfg.controller.worst_step_ms * 1e6)),
                robot_self_stops=len(run.peers["robot_faults"]),
                frames_sent=share["frames_sent"],
                frames_joined=share["joined"],
            )
            tally.stops.update(Reason(r).name for _, r in stops_in(c))
            tally.waits.update(run.wait_channels)
            tally.other_rt |= set(run.other_rt)
            tally.warnings |= set(run.warnings)
            if "error" in run.peers:
                tally.warnings.add(f"peer error: {run.peers['error']}")
        if not args.no_python:
            cfg = bench_config(args.config, period_ms, args.worst_step_ms, False, args.frame_hz)
            tally = tallies.setdefault("python executor", ModeTally())
            before = steal_ticks()
            run = run_controller(
                cfg, seconds, compiled=False, realtime=True, cpu=args.cpu, peer_cpu=args.peer_cpu
            )
            tally.add_steal(before, steal_ticks(), args.cpu)
            c = skip_warmup(run.trace.streams["cycles"], run.t_run_ns, args.warmup_s)
            add("python executor: release->command written", c["t_command_written_ns"] - c["t_scheduled_ns"])
            add("python executor: wake-up", c["t_wake_ns"] - c["t_scheduled_ns"])
            tally.rounds += 1
            tally.counts.update({k: int(v) for k, v in run.stats.items() if isinstance(v, int)})
            tally.stops.update(Reason(r).name for _, r in stops_in(c))
            tally.other_rt |= set(run.other_rt)
            tally.warnings |= set(run.warnings)

    results = {name: summarise(np.concatenate(parts)) for name, parts in raw.items()}
    for name, t in tallies.items():
        k = t.counts
        head = f"{period_ms:g} ms {name} ({t.rounds} rounds): "
        if name == "cyclictest":
            notes.append(head + f"{how}; {t.steal_text(args.cpu)}")
            continue
        text = (
            f"{k['cycles']} steps ({k['data_steps']} data steps), {k['overruns']} overruns, "
            f"{k['skipped_releases']} releases skipped (each round's start included), "
        )
        if name != "python executor":
            text += (
                f"{k['late_ticks']} measured ticks later than worst_step_ms, {k['frames_in']} frames in, "
                f"{k['frames_lost']} lost, controller share joined {k['frames_joined']} of "
                f"{k['frames_sent']} frames sent, robot self-stops {k['robot_self_stops']}, "
            )
        text += (
            f"{k['trace_dropped']} trace records dropped; stops out of RUN: {dict(t.stops) or 'none'}; "
            f"{t.steal_text(args.cpu)}; other processes' real-time threads seen: "
            f"{', '.join(sorted(t.other_rt)) or 'none'}; warnings: {'; '.join(sorted(t.warnings)) or 'none'}"
        )
        notes.append(head + text)
        if t.waits:
            total = sum(t.waits.values())
            top = t.waits.most_common(6)
            notes.append(
                head
                + f"loop thread state and wait channel, {total} samples: "
                + ", ".join(f"{w} {n / total:.2%}" for w, n in top)
            )
    return results


def verdicts(period_ms: float, results: dict[str, dict[str, float]]) -> list[str]:
    """The ratio lines and the targets for one period."""
    lines = []
    compiled = results.get("compiled: release->command written (ticks)")
    cyc = results.get("cyclictest wake-up (C)")
    python = results.get("python executor: release->command written")
    if compiled and cyc:
        r = ratio(compiled["p99.9_us"], cyc["p99.9_us"])
        lines.append(
            f"compiled p99.9 / cyclictest p99.9 = {compiled['p99.9_us']:.1f} / {cyc['p99.9_us']:.1f} "
            f"= {r:.2f} (target <= {CYCLICTEST_RATIO_TARGET:g}): "
            + ("MET" if r <= CYCLICTEST_RATIO_TARGET else "NOT MET")
        )
        for label, res in results.items():
            if label.startswith("compiled, ") and label.endswith("release->command written (ticks)"):
                lines.append(f"  {label.split(':')[0]}: p99.9 / cyclictest p99.9 = "
                             f"{ratio(res['p99.9_us'], cyc['p99.9_us']):.2f}")  # fmt: skip
    if compiled and python:
        lines.append(
            "compiled / python executor (release->command written): "
            + ", ".join(f"{q} {ratio(compiled[k], python[k]):.3f}"
                        for q, k in (("median", "median_us"), ("p99", "p99_us"), ("p99.9", "p99.9_us"),
                                     ("max", "max_us")))
        )  # fmt: skip
    own = "compiled, sensor on its own clock"
    for what in ("release->command written (ticks)", "controller share (peer write->command written)"):
        base, mine = results.get(f"compiled: {what}"), results.get(f"{own}: {what}")
        if base and mine and base["n"] and mine["n"]:
            lines.append(
                f"sensor on its own clock / one clock ({what}): "
                + ", ".join(f"{q} {ratio(mine[k], base[k]):.3f}"
                            for q, k in (("median", "median_us"), ("p99", "p99_us"), ("p99.9", "p99.9_us"),
                                         ("max", "max_us")))
            )  # fmt: skip
    share = results.get("compiled: controller share (peer write->command written)")
    if share and share["n"]:
        ok99 = share["p99_us"] <= SHARE_P99_TARGET_US
        ok999 = share["p99.9_us"] <= SHARE_P999_TARGET_US
        lines.append(
            f"controller share over ptys (wake_on_data = true, n={share['n']}): "
            f"p99 {share['p99_us'] / 1e3:.3f} ms (target <= 0.3 ms: {'MET' if ok99 else 'NOT MET'}), "
            f"p99.9 {share['p99.9_us'] / 1e3:.3f} ms "
            f"(target <= 1 ms: {'MET' if ok999 else 'NOT MET'})"
            + ("; p99.9 of fewer than 1000 frames is close to their max" if share["n"] < 1000 else "")
        )
    return lines


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run every mode and print the tables (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="seconds per mode and period (default 10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds the seconds are split into (default 4)"
    )
    parser.add_argument("--periods-ms", default="2,1", help="cycle periods, comma-separated (default 2,1)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CELL)
    parser.add_argument(
        "--worst-step-ms", type=float, default=None, help="default: the configuration's value"
    )
    parser.add_argument("--frame-hz", type=float, default=100.0, help="sensor frame rate (default 100)")
    parser.add_argument("--cpu", type=int, default=1, help="the controller's CPU (default 1)")
    parser.add_argument(
        "--peer-cpu", type=int, default=0, help="the peers' and our other threads' CPU (default 0)"
    )
    parser.add_argument(
        "--warmup-s", type=float, default=0.5, help="left out at the start of each controller mode"
    )
    parser.add_argument("--load", action="store_true", help="run stress-ng --cpu 1 --cpu-load 50 meanwhile")
    parser.add_argument("--variants", action="store_true", help="also: compiled loop unpinned / without FIFO")
    parser.add_argument(
        "--own-clock",
        action="store_true",
        help="also: the compiled loop with every sensor on its own clock (42 s behind, 100 ppm slow), "
        "synchronised over its link; ratios against the compiled loop on one clock, same rounds",
    )
    parser.add_argument("--no-python", action="store_true", help="skip the Python executor baseline")
    parser.add_argument(
        "--sample-waits", action="store_true", help="sample the compiled loop thread's kernel wait channel"
    )
    parser.add_argument("--no-executor", action="store_true", help="skip every controller (cyclictest only)")
    parser.add_argument("--sleep-modes", action="store_true", help="add the Python sleep modes")
    parser.add_argument("--cycles", type=int, default=5000, help="cycles per sleep mode (default 5000)")
    parser.add_argument("--spin-us", type=int, default=200, help="spin window of the sleep-then-spin mode")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    periods = [float(p) for p in args.periods_ms.split(",") if p.strip()]
    notes = host_notes()
    compiled_modes = (6 if args.variants else 1) + (1 if args.own_clock else 0)
    modes = 1 + (0 if args.no_executor else compiled_modes + (0 if args.no_python else 1))
    total_s = len(periods) * modes * args.seconds
    load = Load(total_s + 120) if args.load else None
    if load is not None:
        notes.append(f"load: {load.description}, for the whole run")
    report: dict[str, Any] = {"periods": {}, "notes": notes, "load": load.description if load else None}
    try:
        if not args.no_executor:
            from cobotguard.safety import cycle

            cycle.warm_up()  # compile once, before any timing
        for period_ms in periods:
            results: dict[str, dict[str, float]] = {}
            period_ns = int(period_ms * 1e6)
            if args.sleep_modes:
                spin_ns = args.spin_us * 1000

                def spin(deadline: int, spin_ns: int = spin_ns) -> int:
                    return sleep_until_spin(deadline, spin_ns)

                results["sleep: plain"] = summarise(wake_latencies(sleep_until_plain, args.cycles, period_ns))
                results[f"sleep: then spin ({args.spin_us} us)"] = summarise(
                    wake_latencies(spin, args.cycles, period_ns)
                )
                settings = apply_realtime(priority=RT_PRIORITY, cpu=args.cpu, lock_memory=True)
                notes.extend(settings.warnings)
                try:
                    results["sleep: plain, SCHED_FIFO"] = summarise(
                        wake_latencies(sleep_until_plain, args.cycles, period_ns)
                    )
                    results["sleep: then spin, SCHED_FIFO"] = summarise(
                        wake_latencies(spin, args.cycles, period_ns)
                    )
                finally:
                    settings.restore()
            results.update(measure_period(period_ms, args, notes))
            report["periods"][f"{period_ms:g}"] = {
                "results": results,
                "verdicts": verdicts(period_ms, results),
            }
    finally:
        if load is not None:
            load.stop()

    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"cobotguard hard-loop latency, {args.seconds:g} s per mode and period in {args.rounds} interleaved "
        f"rounds, load: "
        f"{load.description if load else 'none'}; microseconds; first {args.warmup_s:g} s of each "
        "controller mode left out"
    )
    for period_ms, block in report["periods"].items():
        results = block["results"]
        base = results.get("cyclictest wake-up (C)")
        print(f"\nperiod {period_ms} ms ({1e3 / float(period_ms):.0f} Hz)")
        print(
            f"{'mode':66s} {'n':>7s} {'median':>8s} {'p99':>8s} {'p99.9':>8s} {'max':>8s} {'p99.9/cyc':>9s}"
        )
        for name, r in results.items():
            rel = ratio(r["p99.9_us"], base["p99.9_us"]) if base else float("nan")
            print(f"{name:66s} {r['n']:7d} {r['median_us']:8.1f} {r['p99_us']:8.1f} {r['p99.9_us']:8.1f} "
                  f"{r['max_us']:8.1f} {rel:9.2f}")  # fmt: skip
        for line in block["verdicts"]:
            print(line)
    print()
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
