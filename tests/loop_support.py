"""Test helpers for the executor, replay and `cobotguard run`: a small cell and scripted ports.

The scripted ports run against a SimulatedClock: the sensor emits frames at its frame rate with
consistent stage timestamps, the robot reports a state every cycle and follows the last command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from cobotguard.safety.clock import SimulatedClock
from cobotguard.safety.config import CellConfig
from cobotguard.safety.config_load import config_from_dict, load_config
from cobotguard.safety.reasons import CommandKind
from cobotguard.safety.records import COMMAND_DTYPE, DETECTION_DTYPE, ROBOT_STATE_DTYPE

MS = 1_000_000


DEFAULT_CELL = Path(__file__).resolve().parents[1] / "hil" / "defaults" / "cell.toml"


def make_cell(
    restart: str = "manual", cycle_period_ms: float = 1.0, worst_step_ms: float | None = None
) -> CellConfig:
    """The default demo cell (one 15 Hz camera, UR5e-class robot at 0.25 m/s, 0.6 m hazard square,
    protective square to 1.95 m, warning area to |y| 3.1 m) with a 1 ms cycle unless told otherwise."""
    raw = load_config(DEFAULT_CELL).model_dump(mode="python")
    raw["controller"]["cycle_period_ms"] = cycle_period_ms
    raw["controller"]["worst_step_ms"] = worst_step_ms if worst_step_ms is not None else cycle_period_ms
    raw["controller"]["restart"] = restart
    raw["controller"]["auto_restart_clear_ms"] = 500.0 if restart == "automatic" else None
    raw["controller"]["wake_on_data"] = False  # these tests drive the plain-Python executor: the tick
    return config_from_dict(raw, "loop test cell")


# person positions as a function of time: list of (x, y) on the floor
Persons = Callable[[int], list[tuple[float, float]]]


def nobody(_t: int) -> list[tuple[float, float]]:
    """No person in the cell."""
    return []


class ScriptedSensor:
    """A camera on the simulated clock: exposure, +12 ms inference done, +1 ms sent, received on poll."""

    def __init__(self, clock: SimulatedClock, persons: Persons = nobody, period_ns: int = 66_666_667) -> None:
        self.clock = clock
        self.persons = persons
        self.period_ns = period_ns
        self.next_exposure_ns = clock.now_ns() - 20 * MS
        self.counter = 0
        self.silent = False  # frames are lost
        self.hold = False  # frames are held back and delivered together later
        self.pending: list[np.ndarray] = []
        self.fault = 0

    def _frame(self, t_exposure: int) -> np.ndarray:
        frame = np.zeros(1, dtype=DETECTION_DTYPE)
        f = frame[0]
        f["sensor_index"] = 0
        f["frame_counter"] = self.counter
        f["t_exposure_ns"] = t_exposure
        f["t_inference_done_ns"] = t_exposure + 12 * MS
        f["t_sent_ns"] = t_exposure + 13 * MS
        people = self.persons(t_exposure)
        f["person_count"] = len(people)
        for j, (x, y) in enumerate(people):
            f["persons"][j]["x_m"] = x
            f["persons"][j]["y_m"] = y
            f["persons"][j]["z_d_m"] = 0.1
            f["persons"][j]["score"] = 0.9
        self.counter = (self.counter + 1) % 256
        return frame

    def receive(self, now_ns: int, frames: np.ndarray) -> int:
        """Frames whose send time has passed (all at once after `hold` is lifted), oldest first."""
        while self.next_exposure_ns + 13 * MS <= now_ns:
            frame = self._frame(self.next_exposure_ns)
            self.next_exposure_ns += self.period_ns
            if not self.silent:
                self.pending.append(frame)
        n = 0
        while self.pending and not self.hold and n < len(frames):
            frame = self.pending.pop(0)
            frame[0]["t_received_ns"] = now_ns
            frames[n] = frame[0]
            n += 1
        return n

    def take_fault(self) -> int:
        """A fault planted by the test, once."""
        fault, self.fault = self.fault, 0
        return fault


class ScriptedRobot:
    """A robot that reports its state every cycle and moves at the commanded limit (instant response)."""

    def __init__(self, clock: SimulatedClock, send_delay_ns: Callable[[int], int] | None = None) -> None:
        self.clock = clock
        self.commands: list[tuple[int, np.ndarray]] = []
        self.speed = 0.0
        self.mode = int(CommandKind.FAULT_STOP)
        self.send_delay_ns = send_delay_ns
        self.keep_history = True  # False: keep only the last command (memory tests)
        self.fault = 0

    def receive_state(self, now_ns: int, state: np.ndarray) -> bool:
        """A fresh state every call."""
        s = state[0]
        s["speed_mps"] = self.speed
        s["mode"] = self.mode
        s["at_rest"] = 1 if self.speed == 0.0 else 0
        s["last_command_seq"] = self.commands[-1][0] if self.commands else 0
        s["t_sent_ns"] = now_ns
        s["t_received_ns"] = now_ns
        return True

    def send_command(self, command: np.ndarray, seq: int, now_ns: int) -> None:
        """Keep a copy; follow it; optionally spend simulated time (a slow port)."""
        if self.keep_history or not self.commands:
            self.commands.append((seq, command.copy()))
        else:
            self.commands[-1] = (seq, self.commands[-1][1])
            self.commands[-1][1][:] = command
        kind = int(command[0]["kind"])
        self.mode = kind
        self.speed = float(min(command[0]["speed_limit_mps"], 0.5)) if kind <= CommandKind.SLOW else 0.0
        if self.send_delay_ns is not None:
            self.clock.advance(self.send_delay_ns(len(self.commands)))

    def take_fault(self) -> int:
        """A fault planted by the test, once."""
        fault, self.fault = self.fault, 0
        return fault

    def kinds(self) -> list[int]:
        """Command kinds in order."""
        return [int(c[0]["kind"]) for _, c in self.commands]


def command_array(commands: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """The commands as one COMMAND_DTYPE array."""
    return np.concatenate([c for _, c in commands]) if commands else np.zeros(0, dtype=COMMAND_DTYPE)


def robot_state(speed: float = 0.0, t_ns: int = 1) -> np.ndarray:
    """One robot state record."""
    state = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    state[0]["speed_mps"] = speed
    state[0]["at_rest"] = int(speed == 0.0)
    state[0]["t_sent_ns"] = t_ns
    state[0]["t_received_ns"] = t_ns
    return state
