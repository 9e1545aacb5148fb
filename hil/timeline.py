"""The rig's event timeline and its verdicts: pure functions over recorded events.

The rig records what it saw on the wires as `RIG_EVENT_DTYPE` records (trace stream "rig"): detection
frames it wrote, commands it read, robot states it sent, the reset input, injected faults. A run's verdict
is computed afterwards from those events and the scenario's ground truth, so it can be recomputed from a
trace and tested on hand-made timelines. All times are int64 ns on the rig's monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from hil import scenarios as sc
from safety.reasons import CommandKind, Reason


class RigEvent(IntEnum):
    """Kinds of rig events (values are part of the trace format: append, never renumber)."""

    RUN_START = 0  # scenario or fault run starts (scenario time 0); value = run index
    DETECTION_SENT = 1  # a detection frame written: sensor_index, frame_counter, seq; t_ref = exposure
    COMMAND_RECEIVED = 2  # a valid command read: command_seq, kind, reason, speed limit; t_ref = step time
    ROBOT_STATE_SENT = 3  # a robot state written: speed, at_rest, reset level, seq
    ROBOT_AT_REST = 4  # the emulated robot came to rest
    ROBOT_MOVING = 5  # the emulated robot started moving
    RESET_CHANGED = 6  # the reset input changed level (reset)
    FAULT_INJECTED = 7  # a fault started acting; value = index in the fault catalogue
    RUN_END = 8
    LINK_ERROR = 9  # the rig's own receiver rejected controller bytes; reason = the link error


# One record per event. `command_seq`/`t_command_received_ns` (commands) and `t_at_rest_ns` (robot at
# rest) are filled only on their own events, so the timing report can use them as columns directly.
RIG_EVENT_DTYPE = np.dtype(
    [
        ("t_ns", np.int64),
        ("kind", np.int32),  # RigEvent
        ("sensor_index", np.int32),
        ("frame_counter", np.int32),
        ("command_kind", np.int32),  # CommandKind of a received command
        ("reason", np.int32),  # Reason of a received command or link error
        ("at_rest", np.int32),
        ("reset", np.int32),
        ("value", np.int32),
        ("seq", np.int64),  # link sequence number of a message sent or received
        # a received command's number: its link sequence number while running; in a written trace with
        # the controller's streams, the controller's own count (its "cycles" command_seq); else -1
        ("command_seq", np.int64),
        ("t_command_received_ns", np.int64),  # = t_ns on COMMAND_RECEIVED, else 0
        ("t_at_rest_ns", np.int64),  # = t_ns on ROBOT_AT_REST, else 0
        ("t_ref_ns", np.int64),  # exposure time of a detection, step time of a command
        ("speed_mps", np.float64),  # robot speed (robot states) or commanded speed limit (commands)
    ]
)

STOP_KINDS = (int(CommandKind.PROTECTIVE_STOP), int(CommandKind.FAULT_STOP))
PERSON_REASONS = frozenset({Reason.PERSON_IN_PROTECTIVE_ZONE, Reason.SEPARATION_BELOW_SP})
# stops for these mean the controller (or the robot's watchdog) detected that time itself went wrong
STALL_REASONS = frozenset({Reason.LOOP_OVERRUN, Reason.LINK_TIMEOUT, Reason.LINK_UNACCEPTABLE_DELAY})
SAMPLE_NS = 1_000_000  # ground truth is sampled every millisecond
CONTACT_M = 1e-6  # a gap this small is contact (geometry is computed in float64)


def event(kind: RigEvent, t_ns: int, **values: Any) -> np.ndarray:
    """One rig event record (fields not given are zero)."""
    rec = np.zeros(1, dtype=RIG_EVENT_DTYPE)
    rec["t_ns"] = t_ns
    rec["kind"] = int(kind)
    rec["command_seq"] = -1
    if kind == RigEvent.COMMAND_RECEIVED:
        rec["t_command_received_ns"] = t_ns
    elif kind == RigEvent.ROBOT_AT_REST:
        rec["t_at_rest_ns"] = t_ns
    for name, value in values.items():
        rec[name] = value
    return rec


@dataclass(frozen=True)
class Budget:
    """The numbers a verdict is judged against, taken from the cell's budget."""

    reaction_time_ns: int  # T_r
    robot_reaction_ns: int  # command received -> braking starts (the emulated robot's stop input)
    separation_m: Callable[[float], float] | None  # S_p at a robot speed; None: no separation monitoring
    hazard_polygon_m: Sequence[Sequence[float]]
    protective_zones_m: tuple[Sequence[Sequence[float]], ...] = ()
    restart_deadline_ns: int = 500_000_000  # a valid reset -> motion resumes within this


@dataclass
class Outcome:
    """The verdict of one run; `to_json` gives the CLI's per-scenario entry."""

    name: str
    kind: str  # "scenario" or "fault"
    passed: bool
    min_separation_m: float | None = None  # closest any person came to the hazard region while it moved
    reaction_time_s: float | None = None
    reaction_budget_s: float | None = None
    stop_reason: str | None = None
    failures: list[str] = field(default_factory=list)
    times_ns: dict[str, int] = field(default_factory=dict)  # named instants, relative to the run start
    attempts: int = 1  # runs it took: earlier ones failed while the machine stalled (see stall_evidence)

    def to_json(self) -> dict[str, Any]:
        """The JSON entry of this run."""
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "min_separation_m": self.min_separation_m,
            "reaction_time_s": self.reaction_time_s,
            "reaction_budget_s": self.reaction_budget_s,
            "stop_reason": self.stop_reason,
            "failures": list(self.failures),
            "times_s": {k: v / 1e9 for k, v in self.times_ns.items()},
            "attempts": self.attempts,
        }


def of_kind(events: np.ndarray, kind: RigEvent) -> np.ndarray:
    """The events of one kind, in time order."""
    sel = events[events["kind"] == int(kind)]
    return sel[np.argsort(sel["t_ns"], kind="stable")]


def step_values(times_ns: np.ndarray, at_ns: np.ndarray, values: np.ndarray, before: float) -> np.ndarray:
    """The value last set at or before each instant (a step function); `before` ahead of the first."""
    idx = np.searchsorted(times_ns, at_ns, side="right") - 1
    out = (
        np.where(idx >= 0, values[np.clip(idx, 0, None)], before)
        if len(times_ns)
        else np.full(len(at_ns), before)
    )
    return np.asarray(out, dtype=np.float64)


def first_stop(events: np.ndarray, after_ns: int) -> np.ndarray | None:
    """The first received stop command at or after an instant, or None."""
    cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
    hit = cmds[(cmds["t_ns"] >= after_ns) & np.isin(cmds["command_kind"], STOP_KINDS)]
    return hit[0] if len(hit) else None


def _reason_name(value: int) -> str:
    try:
        return Reason(value).name
    except ValueError:
        return f"unknown reason {value}"


def _ground_truth(plan: sc.Plan, t0_ns: int, budget: Budget) -> tuple[np.ndarray, np.ndarray]:
    """(sample times absolute, per-sample smallest gap of any person to the hazard; NaN = nobody)."""
    t_rel = np.arange(0, plan.duration_ns + 1, SAMPLE_NS, dtype=np.int64)
    xy = sc.positions(plan, t_rel)
    gaps = sc.gaps_to_region(xy, budget.hazard_polygon_m) if xy.shape[1] else np.full((len(t_rel), 0), 0.0)
    with np.errstate(all="ignore"):
        nearest = np.full(len(t_rel), np.nan) if gaps.shape[1] == 0 else _nanmin_rows(gaps)
    return t0_ns + t_rel, nearest


def _nanmin_rows(a: np.ndarray) -> np.ndarray:
    masked = np.where(np.isnan(a), np.inf, a)
    out = masked.min(axis=1)
    return np.where(np.isinf(out), np.nan, out)


def _in_protective_zone(plan: sc.Plan, t_rel: np.ndarray, budget: Budget) -> np.ndarray:
    if not budget.protective_zones_m or not plan.tracks:
        return np.zeros(len(t_rel), dtype=bool)
    xy = sc.positions(plan, t_rel)
    inside = np.zeros(len(t_rel), dtype=bool)
    for zone in budget.protective_zones_m:
        g = sc.gaps_to_region(xy, zone)
        inside |= (np.nan_to_num(g, nan=np.inf) <= 0.0).any(axis=1)
    return inside


def evaluate_scenario(plan: sc.Plan, events: np.ndarray, t0_ns: int, budget: Budget) -> Outcome:
    """Judge a scenario run from its events and ground truth.

    STOP: the first stop after the start names a person reason, the robot is at rest before any person
    reaches the hazard region, and braking starts no later than T_r after a stop first became due (a
    person inside a protective zone, or closer than S_p at the robot's speed at that moment).
    NO_STOP: no stop command at all. RESTART: as STOP, then no motion before the first valid reset
    (or automatic restart time), and motion again within the restart deadline after it.
    """
    out = Outcome(plan.name, "scenario", passed=True, reaction_budget_s=budget.reaction_time_ns / 1e9)
    t_abs, nearest = _ground_truth(plan, t0_ns, budget)
    states = of_kind(events, RigEvent.ROBOT_STATE_SENT)
    at_rest = step_values(states["t_ns"], t_abs, states["at_rest"].astype(np.float64), before=0.0)
    speed = step_values(states["t_ns"], t_abs, states["speed_mps"], before=np.nan)
    moving = at_rest < 0.5
    seen = moving & np.isfinite(nearest)
    out.min_separation_m = float(nearest[seen].min()) if seen.any() else None

    # when a stop first became due, by ground truth (a stop that came earlier gives a negative time)
    due = _in_protective_zone(plan, t_abs - t0_ns, budget)
    if budget.separation_m is not None:
        known = np.isfinite(speed)
        levels, index = np.unique(speed[known], return_inverse=True)
        sp = np.full(len(speed), -np.inf)
        sp[known] = np.array([budget.separation_m(float(v)) for v in levels])[index]
        due |= np.isfinite(nearest) & (nearest < sp)
    t_due = int(t_abs[np.argmax(due)]) if due.any() else None
    if t_due is not None:
        out.times_ns["stop_due"] = t_due - t0_ns

    stop = first_stop(events, t0_ns)
    if stop is not None:
        out.stop_reason = _reason_name(int(stop["reason"]))
        out.times_ns["stop_received"] = int(stop["t_ns"]) - t0_ns
    rests = of_kind(events, RigEvent.ROBOT_AT_REST)
    if stop is not None:
        later = rests[rests["t_ns"] >= stop["t_ns"]]
        if len(later):
            out.times_ns["at_rest"] = int(later[0]["t_ns"]) - t0_ns

    if plan.expect is sc.Expect.NO_STOP:
        if stop is not None:
            out.failures.append(f"unexpected stop ({out.stop_reason}) at {int(stop['t_ns']) - t0_ns} ns")
    else:
        if stop is None:
            out.failures.append("no stop command received")
        else:
            if int(stop["reason"]) not in PERSON_REASONS:
                out.failures.append(f"first stop for {out.stop_reason}, expected a person reason")
            elif t_due is not None:
                braking = int(stop["t_ns"]) + budget.robot_reaction_ns
                reaction = braking - t_due
                out.reaction_time_s = reaction / 1e9
                if reaction > budget.reaction_time_ns:
                    out.failures.append(
                        f"reaction time {reaction / 1e6:.1f} ms exceeds T_r "
                        f"{budget.reaction_time_ns / 1e6:.1f} ms"
                    )
        if out.min_separation_m is not None and out.min_separation_m <= CONTACT_M:
            out.failures.append("a person reached the hazard region while the robot was moving")
    if plan.expect is sc.Expect.RESTART:
        out.failures += _restart_failures(plan, events, t0_ns, stop, budget, out)
    out.passed = not out.failures
    return out


def _restart_failures(
    plan: sc.Plan, events: np.ndarray, t0_ns: int, stop: np.ndarray | None, budget: Budget, out: Outcome
) -> list[str]:
    if stop is None or plan.valid_reset_ns is None:
        return [] if stop is None else ["scenario has no valid reset: cannot judge the restart"]
    cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
    after_stop = cmds[cmds["t_ns"] > stop["t_ns"]]
    released = after_stop[~np.isin(after_stop["command_kind"], STOP_KINDS)]
    valid = t0_ns + plan.valid_reset_ns
    failures = []
    early = released[released["t_ns"] < valid]
    if len(early):
        failures.append(
            f"motion released at {int(early[0]['t_ns']) - t0_ns} ns, before the valid reset at "
            f"{plan.valid_reset_ns} ns (restart interlock violated)"
        )
    late = released[released["t_ns"] >= valid]
    if not len(late):
        failures.append("no restart after the valid reset")
    else:
        out.times_ns["restart"] = int(late[0]["t_ns"]) - t0_ns
        if int(late[0]["t_ns"]) - valid > budget.restart_deadline_ns:
            failures.append(
                f"restart {(int(late[0]['t_ns']) - valid) / 1e6:.0f} ms after the valid reset, "
                f"allowed {budget.restart_deadline_ns / 1e6:.0f} ms"
            )
    return failures


def evaluate_fault(
    name: str,
    events: np.ndarray,
    t_fault_ns: int,
    expected: frozenset[Reason],
    deadline_ns: int,
) -> Outcome:
    """Judge a fault run: running before the fault, then a stop with an expected reason in time."""
    out = Outcome(name, "fault", passed=True, reaction_budget_s=deadline_ns / 1e9)
    cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
    before = cmds[cmds["t_ns"] < t_fault_ns]
    if not len(before) or int(before[-1]["command_kind"]) in STOP_KINDS:
        out.failures.append("controller was not running when the fault was injected")
    stop = first_stop(events, t_fault_ns)
    if stop is None:
        out.failures.append("no stop command after the fault")
    else:
        out.stop_reason = _reason_name(int(stop["reason"]))
        latency = int(stop["t_ns"]) - t_fault_ns
        out.reaction_time_s = latency / 1e9
        out.times_ns["stop_received"] = latency
        if int(stop["reason"]) not in expected:
            names = ", ".join(sorted(r.name for r in expected))
            out.failures.append(f"stopped for {out.stop_reason}, expected one of {names}")
        if latency > deadline_ns:
            out.failures.append(
                f"stop {latency / 1e6:.1f} ms after the fault, allowed {deadline_ns / 1e6:.1f} ms"
            )
    out.passed = not out.failures
    return out


def stall_evidence(
    events: np.ndarray,
    expected: frozenset[Reason],
    command_gap_ns: int | None = None,
    frame_gap_ns: int | None = None,
) -> str | None:
    """Why a failed run's timing says nothing about the controller's logic, or None.

    Evidence is a stall that the system itself detected and failed closed for: a stop for an overrun or
    a link timeout/delay the run did not set out to provoke (not in `expected`), the rig's robot rejecting
    the command link for one of those reasons, or no command reaching the rig for longer than
    `command_gap_ns` (the robot's command watchdog: the robot would have stopped itself). The rig's own
    stall counts too: no detection frame sent for longer than `frame_gap_ns` (the controller then stops
    for stale sensor data, rightly). A run that failed without any of these failed on its own merits.
    """
    unexpected = sorted(int(r) for r in STALL_REASONS - expected)
    cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
    stall_stops = cmds[np.isin(cmds["command_kind"], STOP_KINDS) & np.isin(cmds["reason"], unexpected)]
    if len(stall_stops):
        return f"the controller stopped for {_reason_name(int(stall_stops[0]['reason']))}"
    errors = of_kind(events, RigEvent.LINK_ERROR)
    errors = errors[np.isin(errors["reason"], unexpected)]
    if len(errors):
        return f"the rig's robot rejected the command link for {_reason_name(int(errors[0]['reason']))}"
    if command_gap_ns is not None and len(cmds) > 1:
        gap = int(np.diff(cmds["t_ns"]).max())
        if gap > command_gap_ns:
            return (
                f"no command reached the rig for {gap / 1e6:.0f} ms, longer than the robot's command "
                f"watchdog ({command_gap_ns / 1e6:.0f} ms)"
            )
    frames = of_kind(events, RigEvent.DETECTION_SENT)
    frames = frames[frames["sensor_index"] == 0]
    if frame_gap_ns is not None and len(frames) > 1:
        gap = int(np.diff(frames["t_ns"]).max())
        if gap > frame_gap_ns:
            allowed = frame_gap_ns / 1e6
            return f"the rig stalled: no frame sent for {gap / 1e6:.0f} ms (allowed gap {allowed:.0f} ms)"
    return None
