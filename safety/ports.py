"""Port interfaces between the cyclic executor and the outside world, and in-process implementations.

The executor talks to a `SensorSource` (detection frames in) and a `RobotPort` (robot state in, one
command out every cycle). The serial link implements the same two interfaces, so the executor is the
same in library use, in simulated-clock tests and on the wire. Receive errors are reported as a
`Reason` code (LINK_*) through `take_fault`, and the executor feeds them to the step, which stops.

Two hooks are optional (the executor uses them when a port has them, see `StartHook` and `ResetHook`):
`start(now_ns)`, called once when the controller arms, and `reset_link(now_ns)`, called on each rising
edge of the operator's reset input. Ports that latch errors (the serial link's) need `reset_link`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol, runtime_checkable

import numpy as np

from cobotguard.safety.reasons import Reason
from cobotguard.safety.records import COMMAND_DTYPE, DETECTION_DTYPE, ROBOT_STATE_DTYPE


class SensorSource(Protocol):
    """Detection frames in."""

    def receive(self, now_ns: int, frames: np.ndarray) -> int:
        """Copy frames that arrived since the last call into `frames[:n]` (DETECTION_DTYPE); return n.

        Never more than `len(frames)`; frames left over are returned by the next call, oldest first.
        `t_received_ns` must be set (to when the frame arrived, or `now_ns`).
        """
        ...

    def take_fault(self) -> int:
        """The Reason of a receive error to give the step this cycle (0: none); called once per cycle.

        Either report an error once (the in-process ports: the first since the last call, then cleared)
        or latch it and report it every cycle until `reset_link` (the serial link's ports).
        """
        ...


class RobotPort(Protocol):
    """Robot state in, commands out."""

    def receive_state(self, now_ns: int, state: np.ndarray) -> bool:
        """Copy the newest robot state that arrived since the last call into `state[0]`; False if none."""
        ...

    def send_command(self, command: np.ndarray, seq: int, now_ns: int) -> None:
        """Send `command[0]` (COMMAND_DTYPE) with sequence number `seq`; called every cycle (heartbeat)."""
        ...

    def take_fault(self) -> int:
        """The Reason of a receive error to give the step this cycle (0: none); called once per cycle.

        Either report an error once (the in-process ports: the first since the last call, then cleared)
        or latch it and report it every cycle until `reset_link` (the serial link's ports).
        """
        ...


@runtime_checkable
class StartHook(Protocol):
    """Optional on a SensorSource or RobotPort: `Controller.arm()` calls `start` once, after compiling."""

    def start(self, now_ns: int) -> None:
        """Get ready to run from `now_ns`, e.g. drop bytes that queued up while the step compiled."""
        ...


@runtime_checkable
class ResetHook(Protocol):
    """Optional on a SensorSource or RobotPort: called on each rising edge of the operator's reset input,
    before that cycle's inputs are read (so a cleared error is not reported in the reset's cycle)."""

    def reset_link(self, now_ns: int) -> None:
        """Clear latched receive errors (the step's restart interlock still decides whether to restart)."""
        ...


class _FaultLatch:
    def __init__(self) -> None:
        self._fault = 0

    def report_fault(self, reason: Reason | int) -> None:
        """Record a receive error; the first one since the last `take_fault` is kept."""
        if self._fault == 0:
            self._fault = int(reason)

    def take_fault(self) -> int:
        """The first receive error since the last call (0: none), cleared."""
        fault, self._fault = self._fault, 0
        return fault


class QueueSensorSource(_FaultLatch):
    """In-process sensor input: another thread (or a test) calls `put(frame)`; thread-safe."""

    def __init__(self, max_pending: int = 64) -> None:
        super().__init__()
        self._pending: deque[np.ndarray] = deque()
        self._max_pending = max_pending
        self._lock = threading.Lock()

    def put(self, frame: np.ndarray) -> None:
        """Queue frames (DETECTION_DTYPE record or array); a full queue is a LINK_LOSS fault."""
        record = np.array(frame, dtype=DETECTION_DTYPE).reshape(-1)
        with self._lock:
            for i in range(len(record)):
                if len(self._pending) >= self._max_pending:
                    self.report_fault(Reason.LINK_LOSS)
                    return
                self._pending.append(record[i : i + 1])

    def receive(self, now_ns: int, frames: np.ndarray) -> int:
        """Move queued frames (oldest first) into `frames`, stamping `t_received_ns` if the sender did not."""
        n = 0
        with self._lock:
            while self._pending and n < len(frames):
                frames[n] = self._pending.popleft()[0]
                if frames[n]["t_received_ns"] == 0:
                    frames[n]["t_received_ns"] = now_ns
                n += 1
        return n


class QueueRobotPort(_FaultLatch):
    """In-process robot: `set_state` from another thread or a test; commands kept as the latest and counted.

    `history` > 0 also keeps that many recent (seq, command) pairs (copies; for tests and demos).
    """

    def __init__(self, history: int = 0) -> None:
        super().__init__()
        self._state = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        self._state_new = False
        self._lock = threading.Lock()
        self.last_command = np.zeros(1, dtype=COMMAND_DTYPE)
        self.last_seq = -1
        self.commands_sent = 0
        self.history: deque[tuple[int, np.ndarray]] = deque(maxlen=history or None)
        self._keep_history = history > 0

    def set_state(self, state: np.ndarray) -> None:
        """Publish a robot state (ROBOT_STATE_DTYPE record or 1-element array)."""
        with self._lock:
            self._state[0] = np.asarray(state, dtype=ROBOT_STATE_DTYPE).reshape(-1)[0]
            self._state_new = True

    def receive_state(self, now_ns: int, state: np.ndarray) -> bool:
        """Copy the newest published state into `state[0]`, stamping `t_received_ns` if unset."""
        with self._lock:
            if not self._state_new:
                return False
            state[0] = self._state[0]
            self._state_new = False
        if state[0]["t_received_ns"] == 0:
            state[0]["t_received_ns"] = now_ns
        return True

    def send_command(self, command: np.ndarray, seq: int, now_ns: int) -> None:
        """Keep the command as `last_command` (and in `history` when enabled)."""
        self.last_command[0] = command[0]
        self.last_seq = seq
        self.commands_sent += 1
        if self._keep_history:
            self.history.append((seq, command.copy()))


# In-process ports by name, for `inproc://NAME` port specifications (tests and embedding applications).
_INPROCESS: dict[str, object] = {}
_INPROCESS_LOCK = threading.Lock()
INPROCESS_SCHEME = "inproc://"


def register_inprocess(name: str, port: object) -> str:
    """Make `port` reachable as `inproc://NAME`; returns that specification."""
    with _INPROCESS_LOCK:
        _INPROCESS[name] = port
    return INPROCESS_SCHEME + name


def unregister_inprocess(name: str) -> None:
    """Forget an in-process port (no error when unknown)."""
    with _INPROCESS_LOCK:
        _INPROCESS.pop(name, None)


def lookup_inprocess(spec: str) -> object:
    """The port registered for an `inproc://NAME` specification; KeyError naming it when unknown."""
    name = spec[len(INPROCESS_SCHEME) :] if spec.startswith(INPROCESS_SCHEME) else spec
    with _INPROCESS_LOCK:
        if name not in _INPROCESS:
            known = ", ".join(sorted(_INPROCESS)) or "none"
            raise KeyError(f"no in-process port named {name!r} (registered: {known})")
        return _INPROCESS[name]
