"""Deterministic replay: re-run the safety step on a trace's recorded inputs and find the first divergence.

The trace carries the configuration (checked against its checksum), each cycle's inputs (the robot
state, the reset level, the overrun and link-fault inputs, `now_ns`, which sensors delivered a new
frame) and each new frame in the "detections" stream. Replay rebuilds the step's parameters and a
fresh state, feeds the same inputs through the same step caller the executor uses, and compares
every command field and the frame counters the step saw, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cobotguard.safety.executor import Core, default_core, link_fault_mode, step_caller
from cobotguard.safety.records import (
    COMMAND_DTYPE,
    DETECTION_DTYPE,
    MAX_SENSORS,
    ROBOT_STATE_DTYPE,
    empty_detections,
)
from cobotguard.safety.trace import Trace


class ReplayError(ValueError):
    """The trace cannot be replayed (missing config, lost records, inconsistent streams)."""


@dataclass(frozen=True)
class Divergence:
    """The first place where the replayed step differs from the recording."""

    index: int  # position in the "cycles" stream
    cycle: int  # the cycle's release index
    field: str  # e.g. "command.reason"
    recorded: Any
    replayed: Any


@dataclass(frozen=True)
class ReplayResult:
    """How many cycles were replayed and the first divergence (None: identical)."""

    cycles: int
    divergence: Divergence | None
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        """True when every replayed command matched the recording."""
        return self.divergence is None


def config_of(trace: Trace) -> Any:
    """The CellConfig embedded in a trace header, checked against the header's checksum."""
    from cobotguard.safety.checksum import config_checksum
    from cobotguard.safety.config import CellConfig

    raw = trace.header.get("config")
    if not isinstance(raw, dict):
        raise ReplayError(f"{trace.path}: header has no 'config': not a controller trace, nothing to replay")
    try:
        cfg = CellConfig.model_validate(raw)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise ReplayError(f"{trace.path}: header 'config' is not a valid configuration: {first}") from None
    short, long = config_checksum(cfg)
    recorded = (trace.header.get("config_checksum"), trace.header.get("config_checksum_long"))
    if recorded[1] not in (None, long) or recorded[0] not in (None, short):
        raise ReplayError(
            f"{trace.path}: header config has checksum {short}, the header says {recorded[0]}: "
            "the embedded configuration was altered"
        )
    return cfg


def _frames_by_cycle(trace: Trace) -> dict[int, list[np.ndarray]]:
    frames = trace.streams.get("detections")
    by_cycle: dict[int, list[np.ndarray]] = {}
    if frames is None:
        return by_cycle
    for i in range(len(frames)):
        by_cycle.setdefault(int(frames["cycle"][i]), []).append(frames[i : i + 1])
    return by_cycle


def _first_difference(recorded: np.ndarray, replayed: np.ndarray, prefix: str) -> tuple[str, Any, Any] | None:
    """The first field (in dtype order) whose bytes differ, as (name, recorded, replayed)."""
    for name in recorded.dtype.names or ():
        a, b = recorded[name], replayed[name]
        if np.asarray(a).tobytes() != np.asarray(b).tobytes():
            return f"{prefix}.{name}", np.asarray(a).tolist(), np.asarray(b).tolist()
    return None


def replay(trace: Trace, core: Core | None = None) -> ReplayResult:
    """Re-run the step over every recorded cycle; stop at the first divergence."""
    from cobotguard.safety.config import ns

    cfg = config_of(trace)
    cycles = trace.streams.get("cycles")
    if cycles is None:
        raise ReplayError(f"{trace.path}: no 'cycles' stream: not a controller trace")
    lost = {name: n for name, n in trace.dropped.items() if n}
    if lost:
        raise ReplayError(
            f"{trace.path}: records lost to a full trace ring ({lost}); the inputs are incomplete, "
            "replay would not be faithful"
        )
    notes = []
    if not trace.complete:
        notes.append(f"trace incomplete ({trace.error}); replaying the {len(cycles)} cycles before the tear")
    if trace.header.get("cycle_period_ns") not in (None, ns(cfg.controller.cycle_period_ms)):
        notes.append("header cycle_period_ns differs from the embedded configuration")

    core = core if core is not None else default_core()
    recorded_mode = trace.header.get("link_fault_mode")
    if recorded_mode is not None and recorded_mode != link_fault_mode(core):
        notes.append(
            f"recorded with link faults applied by the {recorded_mode}, replayed with them applied by the "
            f"{link_fault_mode(core)}: cycles with a link fault may differ"
        )
    call = step_caller(core)
    params = core.build_params(cfg)
    state = core.new_state(params)
    detections = empty_detections(MAX_SENSORS)
    robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
    command = np.zeros(1, dtype=COMMAND_DTYPE)
    blank_command = np.zeros(1, dtype=COMMAND_DTYPE)
    frames = _frames_by_cycle(trace)
    n_sensors = len(cfg.sensors)
    detection_fields = DETECTION_DTYPE.names or ()

    for index in range(len(cycles)):
        rec = cycles[index]
        cycle = int(rec["cycle"])
        mask = int(rec["new_frames"])
        arrived = frames.pop(cycle, [])
        for s in range(n_sensors):
            if not mask & (1 << s):
                continue
            match = [f for f in arrived if int(f["sensor_index"][0]) == s]
            if len(match) != 1:
                raise ReplayError(
                    f"{trace.path}: cycle {cycle} took in a frame of sensor {s} but the detections stream "
                    f"has {len(match)} for it"
                )
            for name in detection_fields:
                detections[s][name] = match[0][name][0]
        if mask >> n_sensors:
            raise ReplayError(f"{trace.path}: cycle {cycle}: new-frame mask {mask:#x} names unknown sensors")
        robot[0] = rec["robot"]
        command[:] = blank_command  # every field must come from the step
        call(
            params,
            state,
            detections,
            robot,
            int(rec["reset_input"]),
            int(rec["overrun"]),
            int(rec["link_fault"]),
            int(rec["now_ns"]),
            command,
        )
        counters = detections["frame_counter"]
        if counters.tobytes() != np.asarray(rec["frame_counter"]).tobytes():
            return ReplayResult(
                index,
                Divergence(index, cycle, "frame_counter", rec["frame_counter"].tolist(), counters.tolist()),
                tuple(notes),
            )
        diff = _first_difference(rec["command"], command[0], "command")
        if diff is not None:
            return ReplayResult(index, Divergence(index, cycle, *diff), tuple(notes))
    if frames:
        notes.append(f"{sum(len(v) for v in frames.values())} recorded frames belong to no recorded cycle")
    return ReplayResult(len(cycles), None, tuple(notes))
