"""The rig's event timeline and its verdicts: pure functions over recorded events.

The rig records what it saw on the wires as `RIG_EVENT_DTYPE` records (trace stream "rig"): detection
frames it wrote, commands it read, robot states it sent, the reset input, injected faults. A run's verdict
is computed afterwards from those events and the scenario's ground truth, so it can be recomputed from a
trace and tested on hand-made timelines. All times are int64 ns on the rig's monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np

from cobotguard.hil import scenarios as sc
from cobotguard.safety.reasons import CommandKind, Reason


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
    VERIFIED = 10  # the cell was proven running, nothing latched, both links live; value = rig tries


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
PERSON_REASONS = sc.PERSON_REASONS
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


class FailureClass(StrEnum):
    """What a failed run says about the cell."""

    # the robot was not kept safe: a stop late, for the wrong reason, or missing; a person reached the
    # hazard while it moved; motion released without a valid reset
    SAFETY = "safety"
    # the cell stopped, or stayed stopped, without cause (people bypass a safeguard that does this)
    AVAILABILITY = "availability"


@dataclass(frozen=True)
class Failure:
    """One reason a run failed, with its class."""

    failure_class: FailureClass
    message: str

    def __str__(self) -> str:
        return f"{self.failure_class.value}: {self.message}"

    def to_json(self) -> dict[str, str]:
        """The JSON entry of this failure."""
        return {"class": self.failure_class.value, "message": self.message}


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
    failures: list[Failure] = field(default_factory=list)
    times_ns: dict[str, int] = field(default_factory=dict)  # named instants, relative to the run start
    attempts: int = 1  # runs it took: earlier ones failed for a machine cause (see stall_evidence)
    # evidence that the machine, not the cell, caused an availability failure (see stall_evidence)
    machine_cause: str | None = None
    verified: dict[str, Any] | None = None  # the state the rig proved before the run's clock started

    def fail(self, failure_class: FailureClass, message: str) -> None:
        """Record a failure (the outcome no longer passes)."""
        self.failures.append(Failure(failure_class, message))
        self.passed = False

    @property
    def messages(self) -> list[str]:
        """The failures' messages."""
        return [f.message for f in self.failures]

    @property
    def failure_class(self) -> FailureClass | None:
        """The worst class among the failures: safety before availability; None when it passed."""
        classes = {f.failure_class for f in self.failures}
        for worst in (FailureClass.SAFETY, FailureClass.AVAILABILITY):
            if worst in classes:
                return worst
        return None

    def to_json(self) -> dict[str, Any]:
        """The JSON entry of this run."""
        worst = self.failure_class
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "failure_class": None if worst is None else worst.value,
            "min_separation_m": self.min_separation_m,
            "reaction_time_s": self.reaction_time_s,
            "reaction_budget_s": self.reaction_budget_s,
            "stop_reason": self.stop_reason,
            "failures": [f.to_json() for f in self.failures],
            "machine_cause": self.machine_cause,
            "times_s": {k: v / 1e9 for k, v in self.times_ns.items()},
            "attempts": self.attempts,
            "verified": self.verified,
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


def _stop_due(
    plan: sc.Plan, events: np.ndarray, t0_ns: int, budget: Budget, out: Outcome
) -> tuple[int | None, int]:
    """When the first stop became due and how long the controller had for it (absolute ns, ns).

    A person: entering a protective zone or coming closer than S_p at the robot's speed then (ground
    truth), with T_r to brake. A fault played into the scenario: when it acted, with its deadline. A robot
    that kept its speed after a lower limit: the lower limit's receipt plus the documented grace, with the
    robot state timeout to act on the reports.
    """
    if plan.fault is not None:
        injected = of_kind(events, RigEvent.FAULT_INJECTED)
        injected = injected[injected["t_ns"] >= t0_ns]
        return (int(injected[0]["t_ns"]) if len(injected) else None), plan.fault_deadline_ns
    if plan.overspeed_grace_ns is not None:
        cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
        lower = cmds[(cmds["t_ns"] >= t0_ns) & (cmds["command_kind"] == int(CommandKind.SLOW))]
        if not len(lower):
            return None, plan.overspeed_deadline_ns
        out.times_ns["slow_received"] = int(lower[0]["t_ns"]) - t0_ns
        return int(lower[0]["t_ns"]) + plan.overspeed_grace_ns, plan.overspeed_deadline_ns
    t_abs, nearest = _ground_truth(plan, t0_ns, budget)
    states = of_kind(events, RigEvent.ROBOT_STATE_SENT)
    speed = step_values(states["t_ns"], t_abs, states["speed_mps"], before=np.nan)
    due = _in_protective_zone(plan, t_abs - t0_ns, budget)
    if budget.separation_m is not None:
        known = np.isfinite(speed)
        levels, index = np.unique(speed[known], return_inverse=True)
        sp = np.full(len(speed), -np.inf)
        sp[known] = np.array([budget.separation_m(float(v)) for v in levels])[index]
        due |= np.isfinite(nearest) & (nearest < sp)
    return (int(t_abs[np.argmax(due)]) if due.any() else None), budget.reaction_time_ns


def evaluate_scenario(plan: sc.Plan, events: np.ndarray, t0_ns: int, budget: Budget) -> Outcome:
    """Judge a scenario run from its events and ground truth; every failure is safety or availability.

    STOP: the first stop after the start names an expected reason (a person's, unless the scenario says
    otherwise), the robot is at rest before any person reaches the hazard region, and braking starts no
    later than the allowed time after the stop first became due (see _stop_due). NO_STOP: no stop at all.
    RESTART: as STOP, then no motion before the first valid reset (or automatic restart time), and motion
    again within the restart deadline after it. A steady scenario also forbids any change of command
    while its people stand still.
    """
    out = Outcome(plan.name, "scenario", passed=True)
    t_abs, nearest = _ground_truth(plan, t0_ns, budget)
    states = of_kind(events, RigEvent.ROBOT_STATE_SENT)
    at_rest = step_values(states["t_ns"], t_abs, states["at_rest"].astype(np.float64), before=0.0)
    seen = (at_rest < 0.5) & np.isfinite(nearest)
    out.min_separation_m = float(nearest[seen].min()) if seen.any() else None

    t_due, allowed_ns = _stop_due(plan, events, t0_ns, budget, out)
    out.reaction_budget_s = allowed_ns / 1e9
    if t_due is not None:
        out.times_ns["stop_due"] = t_due - t0_ns
    stop = first_stop(events, t0_ns)
    if stop is not None:
        out.stop_reason = _reason_name(int(stop["reason"]))
        out.times_ns["stop_received"] = int(stop["t_ns"]) - t0_ns
        rests = of_kind(events, RigEvent.ROBOT_AT_REST)
        later = rests[rests["t_ns"] >= stop["t_ns"]]
        if len(later):
            out.times_ns["at_rest"] = int(later[0]["t_ns"]) - t0_ns

    if plan.expect is sc.Expect.NO_STOP:
        if stop is not None:
            out.fail(
                FailureClass.AVAILABILITY,
                f"stop without cause ({out.stop_reason}) at {(int(stop['t_ns']) - t0_ns) / 1e6:.1f} ms",
            )
    elif stop is None:
        out.fail(FailureClass.SAFETY, "no stop command received")
    else:
        _judge_stop(plan, stop, t_due, allowed_ns, budget, out)
    if out.min_separation_m is not None and out.min_separation_m <= CONTACT_M:
        out.fail(FailureClass.SAFETY, "a person reached the hazard region while the robot was moving")
    if plan.expect is sc.Expect.RESTART:
        _judge_restart(plan, events, t0_ns, stop, budget, out)
    if plan.steady:
        _judge_steady(plan, events, t0_ns, budget, out)
    return out


def _judge_stop(
    plan: sc.Plan, stop: np.ndarray, t_due: int | None, allowed_ns: int, budget: Budget, out: Outcome
) -> None:
    """The first stop's reason and timing. A stop for another reason before anything made one due is a
    stop without cause (availability), as is one for a stall the controller detected; any other wrong
    reason, and any stop later than allowed, is a safety failure."""
    t_stop = int(stop["t_ns"])
    reason = int(stop["reason"])
    if reason not in plan.stop_reasons:
        expected = ", ".join(sorted(Reason(r).name for r in plan.stop_reasons))
        message = f"first stop for {out.stop_reason}, expected one of {expected}"
        if t_due is None or t_stop < t_due:
            out.fail(FailureClass.AVAILABILITY, f"{message}: a stop without cause, before one was due")
        elif reason in STALL_REASONS:
            out.fail(FailureClass.AVAILABILITY, f"{message}: the controller detected a stall")
        else:
            out.fail(FailureClass.SAFETY, message)
    if t_due is None:
        return
    braking = t_stop + (
        budget.robot_reaction_ns if plan.fault is None and plan.overspeed_grace_ns is None else 0
    )
    reaction = braking - t_due
    out.reaction_time_s = reaction / 1e9
    if reaction > allowed_ns:
        out.fail(
            FailureClass.SAFETY,
            f"reaction time {reaction / 1e6:.1f} ms exceeds the allowed {allowed_ns / 1e6:.1f} ms",
        )


def _judge_restart(
    plan: sc.Plan, events: np.ndarray, t0_ns: int, stop: np.ndarray | None, budget: Budget, out: Outcome
) -> None:
    """No release before the valid reset (safety); a release soon after it (availability)."""
    if stop is None:
        return
    if plan.valid_reset_ns is None:
        out.fail(FailureClass.AVAILABILITY, "scenario has no valid reset: cannot judge the restart")
        return
    cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
    after_stop = cmds[cmds["t_ns"] > stop["t_ns"]]
    released = after_stop[~np.isin(after_stop["command_kind"], STOP_KINDS)]
    valid = t0_ns + plan.valid_reset_ns
    early = released[released["t_ns"] < valid]
    if len(early):
        out.fail(
            FailureClass.SAFETY,
            f"motion released at {(int(early[0]['t_ns']) - t0_ns) / 1e6:.1f} ms, before the valid reset at "
            f"{plan.valid_reset_ns / 1e6:.1f} ms (restart interlock violated)",
        )
    late = released[released["t_ns"] >= valid]
    if not len(late):
        out.fail(FailureClass.AVAILABILITY, "no restart after the valid reset")
        return
    out.times_ns["restart"] = int(late[0]["t_ns"]) - t0_ns
    if int(late[0]["t_ns"]) - valid > budget.restart_deadline_ns:
        out.fail(
            FailureClass.AVAILABILITY,
            f"restart {(int(late[0]['t_ns']) - valid) / 1e6:.0f} ms after the valid reset, "
            f"allowed {budget.restart_deadline_ns / 1e6:.0f} ms",
        )


def _judge_steady(plan: sc.Plan, events: np.ndarray, t0_ns: int, budget: Budget, out: Outcome) -> None:
    """While every person stands still (from T_r after the last one stopped), the command holds."""
    if plan.dwell_ns is None:
        return
    start = t0_ns + plan.dwell_ns + budget.reaction_time_ns
    end = t0_ns + (
        plan.leave_ns if plan.leave_ns is not None and plan.leave_ns > plan.dwell_ns else plan.duration_ns
    )
    cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
    window = cmds[(cmds["t_ns"] >= start) & (cmds["t_ns"] <= end)]
    changes = int(np.count_nonzero(np.diff(window["command_kind"]))) if len(window) else 0
    out.times_ns["steady_window"] = end - start
    if changes:
        out.fail(
            FailureClass.AVAILABILITY,
            f"the command changed {changes} time(s) in {(end - start) / 1e9:.1f} s while the person stood "
            "still (stop/slow-down cycling)",
        )


def evaluate_fault(
    name: str,
    events: np.ndarray,
    t_fault_ns: int,
    expected: frozenset[Reason],
    deadline_ns: int,
    t_reset_ns: int | None = None,
) -> Outcome:
    """Judge a fault run: a stop with an expected reason in time, held (latched) until the rig's reset.

    t_reset_ns: when the rig pressed reset after the fault (None: not yet; the stop must hold to the end).
    """
    out = Outcome(name, "fault", passed=True, reaction_budget_s=deadline_ns / 1e9)
    cmds = of_kind(events, RigEvent.COMMAND_RECEIVED)
    before = cmds[cmds["t_ns"] < t_fault_ns]
    if not len(before) or int(before[-1]["command_kind"]) in STOP_KINDS:
        # nothing to judge: the stop already in force says nothing about this fault
        out.fail(FailureClass.AVAILABILITY, "controller was not running when the fault was injected")
        return out
    stop = first_stop(events, t_fault_ns)
    if stop is None:
        out.fail(FailureClass.SAFETY, "no stop command after the fault")
        return out
    out.stop_reason = _reason_name(int(stop["reason"]))
    latency = int(stop["t_ns"]) - t_fault_ns
    out.reaction_time_s = latency / 1e9
    out.times_ns["stop_received"] = latency
    if int(stop["reason"]) not in expected:
        names = ", ".join(sorted(r.name for r in expected))
        message = f"stopped for {out.stop_reason}, expected one of {names}"
        if int(stop["reason"]) in STALL_REASONS:
            out.fail(FailureClass.AVAILABILITY, f"{message}: the controller detected a stall")
        else:
            out.fail(FailureClass.SAFETY, message)
    if latency > deadline_ns:
        out.fail(
            FailureClass.SAFETY,
            f"stop {latency / 1e6:.1f} ms after the fault, allowed {deadline_ns / 1e6:.1f} ms",
        )
    end = np.iinfo(np.int64).max if t_reset_ns is None else t_reset_ns
    held = cmds[(cmds["t_ns"] > stop["t_ns"]) & (cmds["t_ns"] < end)]
    released = held[~np.isin(held["command_kind"], STOP_KINDS)]
    if len(released):
        out.fail(
            FailureClass.SAFETY,
            f"the stop was released {(int(released[0]['t_ns']) - int(stop['t_ns'])) / 1e6:.1f} ms later "
            "without a reset (a link fault must latch)",
        )
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
