"""Rig verdicts on hand-made event timelines: pass, late stop, wrong reason, restart interlock, faults."""

from __future__ import annotations

import numpy as np
import pytest
from hil_cell import HAZARD, make_cell

from hil import scenarios as sc
from hil.timeline import Budget, RigEvent, evaluate_fault, evaluate_scenario, event
from safety.reasons import CommandKind, Reason

MS = 1_000_000
T0 = 10_000 * MS
TR = 120 * MS
ROBOT_REACTION = 8 * MS
STOP_TIME = 250 * MS


def budget(separation: float | None = 0.6, zones: bool = True) -> Budget:
    cell = make_cell()
    protective = tuple(z.polygon_m for z in cell.zones.values() if z.type == "protective") if zones else ()
    return Budget(
        reaction_time_ns=TR,
        robot_reaction_ns=ROBOT_REACTION,
        separation_m=None if separation is None else (lambda v: separation),
        hazard_polygon_m=HAZARD,
        protective_zones_m=protective,
        restart_deadline_ns=300 * MS,
    )


def timeline(
    plan: sc.Plan,
    stop_at_ns: int | None,
    reason: Reason = Reason.PERSON_IN_PROTECTIVE_ZONE,
    release_at_ns: int | None = None,
) -> np.ndarray:
    """Commands every 1 ms, robot states every 4 ms; the robot brakes linearly after a stop."""
    end = T0 + plan.duration_ns
    recs = [event(RigEvent.RUN_START, T0)]
    stopped = False
    t_rest = None
    for t in range(T0 - 50 * MS, end, MS):
        if (
            stop_at_ns is not None
            and t >= T0 + stop_at_ns
            and (release_at_ns is None or t < T0 + release_at_ns)
        ):
            kind, why = CommandKind.PROTECTIVE_STOP, reason
            if not stopped:
                stopped = True
                t_rest = t + ROBOT_REACTION + STOP_TIME
                recs.append(event(RigEvent.ROBOT_AT_REST, t_rest))
        else:
            kind, why = CommandKind.RUN, Reason.NONE
        recs.append(event(RigEvent.COMMAND_RECEIVED, t, command_kind=int(kind), reason=int(why)))
        if t % (4 * MS) == 0:
            rest = int(
                t_rest is not None and t >= t_rest and (release_at_ns is None or t < T0 + release_at_ns)
            )
            recs.append(event(RigEvent.ROBOT_STATE_SENT, t, at_rest=rest, speed_mps=0.0 if rest else 1.0))
    return np.concatenate(recs)


def plan_of(name: str) -> sc.Plan:
    return sc.build_plan(sc.get_scenario(name), make_cell(), required_separation_m=0.6)


def test_walk_in_stopped_in_time_passes_with_reaction_time_and_separation():
    plan = plan_of("walk_in_front_1.6")
    # the person crosses the protective zone edge (x = 1.5, gap 1.0 m) after 1.0 m of 2.5 m: at 625 ms
    stop = 700 * MS
    out = evaluate_scenario(plan, timeline(plan, stop), T0, budget())
    assert out.passed, out.failures
    assert out.times_ns["stop_due"] == pytest.approx(625 * MS, abs=MS)
    assert out.reaction_time_s == pytest.approx((stop + ROBOT_REACTION - 625 * MS) / 1e9, abs=1.5e-3)
    # at rest 258 ms after the stop: the person walked 1.6 * (0.7 + 0.258) m from x = -2.5
    expected_gap = 2.5 - 1.6 * (stop + ROBOT_REACTION + STOP_TIME) / 1e9 - 0.5
    assert out.min_separation_m == pytest.approx(expected_gap, abs=0.01)
    assert out.stop_reason == "PERSON_IN_PROTECTIVE_ZONE"
    assert out.to_json()["passed"] is True


def test_stop_later_than_the_reaction_budget_fails():
    plan = plan_of("walk_in_front_1.6")
    out = evaluate_scenario(plan, timeline(plan, 625 * MS + TR), T0, budget())
    assert not out.passed
    assert any("exceeds T_r" in f for f in out.failures)


def test_no_stop_at_all_fails_and_reports_contact():
    plan = plan_of("walk_in_side_1.0")
    out = evaluate_scenario(plan, timeline(plan, None), T0, budget())
    assert not out.passed
    assert "no stop command received" in out.failures
    assert out.min_separation_m == pytest.approx(0.0, abs=1e-9)


def test_stop_for_a_fault_reason_is_not_a_protective_pass():
    plan = plan_of("walk_in_front_1.6")
    out = evaluate_scenario(plan, timeline(plan, 650 * MS, reason=Reason.SENSOR_STALE), T0, budget())
    assert not out.passed
    assert any("SENSOR_STALE" in f for f in out.failures)


def test_separation_monitoring_alone_sets_when_a_stop_is_due():
    plan = plan_of("walk_in_front_1.6")
    # the walk starts 2.0 m from the hazard; with S_p = 1.5 m (zones ignored) a stop is due after
    # 0.5 m of walking at 1.6 m/s: 312.5 ms
    out = evaluate_scenario(plan, timeline(plan, 400 * MS), T0, budget(separation=1.5, zones=False))
    assert out.times_ns["stop_due"] == pytest.approx(312.5 * MS, abs=MS)
    assert out.passed


def test_person_at_the_edge_passes_only_without_a_stop():
    plan = plan_of("stop_at_edge")
    assert evaluate_scenario(plan, timeline(plan, None), T0, budget()).passed
    out = evaluate_scenario(plan, timeline(plan, 900 * MS), T0, budget())
    assert not out.passed and "unexpected stop" in out.failures[0]


def test_restart_only_after_the_valid_reset():
    plan = plan_of("leave_and_restart")
    assert plan.valid_reset_ns is not None
    stop = 100 * MS
    good = evaluate_scenario(
        plan, timeline(plan, stop, release_at_ns=plan.valid_reset_ns + 30 * MS), T0, budget()
    )
    assert good.passed, good.failures
    assert good.times_ns["restart"] == plan.valid_reset_ns + 30 * MS
    # released while the reset was still held across the clear moment: interlock violated
    early = evaluate_scenario(plan, timeline(plan, stop, release_at_ns=plan.clear_ns), T0, budget())
    assert not early.passed and any("interlock" in f for f in early.failures)
    never = evaluate_scenario(plan, timeline(plan, stop), T0, budget())
    assert "no restart after the valid reset" in never.failures


def fault_timeline(stop_after_ns: int | None, reason: Reason, running_before: bool = True) -> np.ndarray:
    recs = []
    for t in range(T0 - 100 * MS, T0 + 300 * MS, MS):
        if stop_after_ns is not None and t >= T0 + stop_after_ns:
            kind, why = CommandKind.FAULT_STOP, reason
        elif not running_before:
            kind, why = CommandKind.FAULT_STOP, Reason.NOT_ARMED
        else:
            kind, why = CommandKind.RUN, Reason.NONE
        recs.append(event(RigEvent.COMMAND_RECEIVED, t, command_kind=int(kind), reason=int(why)))
    return np.concatenate(recs)


EXPECTED = frozenset({Reason.LINK_CORRUPTION})


def test_fault_stop_with_the_expected_reason_in_time_passes():
    out = evaluate_fault("corruption", fault_timeline(3 * MS, Reason.LINK_CORRUPTION), T0, EXPECTED, 20 * MS)
    assert out.passed
    assert out.reaction_time_s == pytest.approx(0.003)
    assert out.kind == "fault" and out.stop_reason == "LINK_CORRUPTION"


@pytest.mark.parametrize(
    ("stop_after", "reason", "running", "message"),
    [
        (None, Reason.NONE, True, "no stop"),
        (3 * MS, Reason.SENSOR_STALE, True, "expected one of LINK_CORRUPTION"),
        (50 * MS, Reason.LINK_CORRUPTION, True, "allowed 20.0 ms"),
        (3 * MS, Reason.LINK_CORRUPTION, False, "not running"),
    ],
)
def test_fault_verdict_failures(stop_after, reason, running, message):
    out = evaluate_fault("corruption", fault_timeline(stop_after, reason, running), T0, EXPECTED, 20 * MS)
    assert not out.passed
    assert any(message in f for f in out.failures), out.failures


def test_received_commands_take_the_controllers_numbering_by_sender_time():
    from hil.rig import with_controller_seq
    from safety.trace import CYCLE_DTYPE

    cycles = np.zeros(3, dtype=CYCLE_DTYPE)
    cycles["command_seq"] = [11, 12, 13]
    cycles["t_step_end_ns"] = [100, 200, 300]
    events = np.concatenate(
        [
            event(RigEvent.COMMAND_RECEIVED, 210, command_seq=5, t_ref_ns=200),
            event(RigEvent.ROBOT_STATE_SENT, 215),
            event(RigEvent.COMMAND_RECEIVED, 310, command_seq=6, t_ref_ns=300),
            event(RigEvent.COMMAND_RECEIVED, 410, command_seq=7, t_ref_ns=400),  # no such cycle recorded
        ]
    )
    out = with_controller_seq(events, cycles)
    assert list(out["command_seq"]) == [12, -1, 13, -1]
    assert list(out["seq"][[0, 2, 3]]) == [5, 6, 7]  # the link's own numbers are kept
    assert list(out["t_command_received_ns"]) == [210, 0, 310, 410]


def _stall_events(*rows: tuple[int, int, int, int]) -> np.ndarray:
    """(t_ms, kind, command_kind, reason) rows as rig events."""
    from hil.timeline import RIG_EVENT_DTYPE

    events = np.zeros(len(rows), dtype=RIG_EVENT_DTYPE)
    for i, (t_ms, kind, command_kind, reason) in enumerate(rows):
        events[i]["t_ns"] = t_ms * 1_000_000
        events[i]["kind"] = kind
        events[i]["command_kind"] = command_kind
        events[i]["reason"] = reason
    return events


def test_stall_evidence_names_a_stall_the_system_detected_and_nothing_else() -> None:
    from hil.timeline import stall_evidence

    cmd, run, fault = int(RigEvent.COMMAND_RECEIVED), int(CommandKind.RUN), int(CommandKind.FAULT_STOP)
    steady = [(t, cmd, run, 0) for t in range(0, 40, 4)]
    persons = frozenset({Reason.PERSON_IN_PROTECTIVE_ZONE})
    # a controller that stopped for an overrun detected a stall
    overrun = _stall_events(*steady, (40, cmd, fault, int(Reason.LOOP_OVERRUN)))
    assert "LOOP_OVERRUN" in (stall_evidence(overrun, persons, 50_000_000) or "")
    # ... but not when the run provoked that very reason (a heartbeat-loss fault expects LINK_TIMEOUT)
    timeout = _stall_events(*steady, (40, cmd, fault, int(Reason.LINK_TIMEOUT)))
    assert stall_evidence(timeout, frozenset({Reason.LINK_TIMEOUT}), 50_000_000) is None
    # the robot's own watchdog rejecting the command link
    rig_error = _stall_events(*steady, (40, int(RigEvent.LINK_ERROR), 0, int(Reason.LINK_TIMEOUT)))
    assert "rejected the command link" in (stall_evidence(rig_error, persons, 50_000_000) or "")
    # no command for longer than the robot's watchdog
    gap = _stall_events(*steady, (800, cmd, run, 0))
    assert "command watchdog" in (stall_evidence(gap, persons, 50_000_000) or "")
    # the rig itself stalled: its frames (every 66 ms here) stopped for longer than the allowed gap
    sent = int(RigEvent.DETECTION_SENT)
    late_frames = _stall_events(*steady, (0, sent, 0, 0), (66, sent, 0, 0), (400, sent, 0, 0))
    assert "the rig stalled" in (stall_evidence(late_frames, persons, 50_000_000, 133_000_000) or "")
    assert stall_evidence(late_frames[:-1], persons, 50_000_000, 133_000_000) is None
    # a steady stream with a wrong stop is a failure on its own merits: no evidence
    wrong = _stall_events(*steady, (40, cmd, fault, int(Reason.SENSOR_STALE)))
    assert stall_evidence(wrong, persons, 50_000_000) is None
