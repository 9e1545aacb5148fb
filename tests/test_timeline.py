"""Rig verdicts on hand-made event timelines: pass, late stop, wrong reason, restart interlock, faults."""

from __future__ import annotations

import numpy as np
import pytest
from hil_cell import HAZARD, make_cell

from cobotguard.hil import scenarios as sc
from cobotguard.hil.timeline import Budget, FailureClass, RigEvent, evaluate_fault, evaluate_scenario, event
from cobotguard.safety.reasons import CommandKind, Reason

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
    assert not out.passed and out.failure_class is FailureClass.SAFETY
    assert any("exceeds the allowed 120.0 ms" in f for f in out.messages)


def test_no_stop_at_all_fails_and_reports_contact():
    plan = plan_of("walk_in_side_1.0")
    out = evaluate_scenario(plan, timeline(plan, None), T0, budget())
    assert not out.passed and out.failure_class is FailureClass.SAFETY
    assert "no stop command received" in out.messages
    assert "a person reached the hazard region while the robot was moving" in out.messages
    assert out.min_separation_m == pytest.approx(0.0, abs=1e-9)


def test_stop_for_a_fault_reason_is_not_a_protective_pass():
    plan = plan_of("walk_in_front_1.6")
    out = evaluate_scenario(plan, timeline(plan, 650 * MS, reason=Reason.SENSOR_STALE), T0, budget())
    assert not out.passed and out.failure_class is FailureClass.SAFETY
    assert any("SENSOR_STALE" in f for f in out.messages)


def test_a_stop_before_anything_made_one_due_is_an_availability_failure():
    plan = plan_of("walk_in_front_1.6")  # a stop is due at 625 ms
    out = evaluate_scenario(plan, timeline(plan, 200 * MS, reason=Reason.SENSOR_STALE), T0, budget())
    assert not out.passed and out.failure_class is FailureClass.AVAILABILITY
    assert [f.failure_class for f in out.failures] == [FailureClass.AVAILABILITY]
    assert "a stop without cause" in out.messages[0]


def test_a_stall_stop_in_time_is_availability_but_a_late_one_is_still_safety():
    plan = plan_of("walk_in_front_1.6")
    in_time = evaluate_scenario(plan, timeline(plan, 650 * MS, reason=Reason.LOOP_OVERRUN), T0, budget())
    assert in_time.failure_class is FailureClass.AVAILABILITY
    assert "detected a stall" in in_time.messages[0]
    late = evaluate_scenario(plan, timeline(plan, 625 * MS + TR, reason=Reason.LOOP_OVERRUN), T0, budget())
    assert late.failure_class is FailureClass.SAFETY
    assert {f.failure_class for f in late.failures} == {FailureClass.SAFETY, FailureClass.AVAILABILITY}
    assert late.to_json()["failure_class"] == "safety"
    assert {f["class"] for f in late.to_json()["failures"]} == {"safety", "availability"}


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
    assert not out.passed and "stop without cause" in out.messages[0]
    assert out.failure_class is FailureClass.AVAILABILITY


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
    assert not early.passed and any("interlock" in f for f in early.messages)
    assert early.failure_class is FailureClass.SAFETY
    never = evaluate_scenario(plan, timeline(plan, stop), T0, budget())
    assert "no restart after the valid reset" in never.messages
    assert never.failure_class is FailureClass.AVAILABILITY


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
    ("stop_after", "reason", "running", "message", "failure_class"),
    [
        (None, Reason.NONE, True, "no stop", FailureClass.SAFETY),
        (3 * MS, Reason.SENSOR_STALE, True, "expected one of LINK_CORRUPTION", FailureClass.SAFETY),
        (3 * MS, Reason.LOOP_OVERRUN, True, "detected a stall", FailureClass.AVAILABILITY),
        (50 * MS, Reason.LINK_CORRUPTION, True, "allowed 20.0 ms", FailureClass.SAFETY),
        (3 * MS, Reason.LINK_CORRUPTION, False, "not running", FailureClass.AVAILABILITY),
    ],
)
def test_fault_verdict_failures(stop_after, reason, running, message, failure_class):
    out = evaluate_fault("corruption", fault_timeline(stop_after, reason, running), T0, EXPECTED, 20 * MS)
    assert not out.passed
    assert any(message in f for f in out.messages), out.failures
    assert out.failure_class is failure_class


def test_received_commands_take_the_controllers_numbering_by_sender_time():
    from cobotguard.hil.rig import with_controller_seq
    from cobotguard.safety.trace import CYCLE_DTYPE

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
    from cobotguard.hil.timeline import RIG_EVENT_DTYPE

    events = np.zeros(len(rows), dtype=RIG_EVENT_DTYPE)
    for i, (t_ms, kind, command_kind, reason) in enumerate(rows):
        events[i]["t_ns"] = t_ms * 1_000_000
        events[i]["kind"] = kind
        events[i]["command_kind"] = command_kind
        events[i]["reason"] = reason
    return events


def test_stall_evidence_names_a_stall_the_system_detected_and_nothing_else() -> None:
    from cobotguard.hil.timeline import stall_evidence

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


def _commands(*rows: tuple[int, CommandKind, Reason]) -> list[np.ndarray]:
    """(t from T0 in ms, kind, reason) as received commands, one per ms until the next row."""
    recs = []
    for (t_ms, kind, why), nxt in zip(rows, [*rows[1:], None], strict=True):
        end = nxt[0] if nxt is not None else t_ms + 1
        for t in range(t_ms, end):
            recs.append(
                event(RigEvent.COMMAND_RECEIVED, T0 + t * MS, command_kind=int(kind), reason=int(why))
            )
    return recs


def test_a_fault_stop_released_without_a_reset_is_a_safety_failure():
    run, stop = CommandKind.RUN, CommandKind.FAULT_STOP
    held = np.concatenate(
        _commands((-50, run, Reason.NONE), (3, stop, Reason.LINK_ADDRESSING), (200, stop, 0))
    )
    assert evaluate_fault("x", held, T0, frozenset({Reason.LINK_ADDRESSING}), 20 * MS).passed
    flapping = np.concatenate(
        _commands(
            (-50, run, Reason.NONE), (3, stop, Reason.LINK_ADDRESSING), (5, run, Reason.NONE), (9, run, 0)
        )
    )
    out = evaluate_fault("x", flapping, T0, frozenset({Reason.LINK_ADDRESSING}), 20 * MS)
    assert out.failure_class is FailureClass.SAFETY
    assert "without a reset" in out.messages[0]
    # a release after the rig's reset is what a reset is for
    assert evaluate_fault("x", flapping, T0, frozenset({Reason.LINK_ADDRESSING}), 20 * MS, T0 + 4 * MS).passed


def test_standing_still_forbids_any_change_of_command():
    cell = make_cell()
    plan = sc.build_plan(sc.get_scenario("stand_at_edge_10s"), cell, required_separation_m=0.6)
    assert plan.steady and plan.dwell_ns is not None
    dwell_ms = plan.dwell_ns // MS
    end_ms = plan.duration_ns // MS
    slow, run = CommandKind.SLOW, CommandKind.RUN
    steady = _commands((0, run, Reason.NONE), (dwell_ms - 300, slow, Reason.NONE), (end_ms, slow, 0))
    assert evaluate_scenario(plan, np.concatenate(steady), T0, budget()).passed
    cycling = _commands(
        (0, run, Reason.NONE), (dwell_ms - 300, slow, 0), (dwell_ms + 2_000, run, 0),
        (dwell_ms + 2_100, slow, 0), (end_ms, slow, 0),
    )  # fmt: skip
    out = evaluate_scenario(plan, np.concatenate(cycling), T0, budget())
    assert out.failure_class is FailureClass.AVAILABILITY
    assert "changed 2 time(s)" in out.messages[0]


def test_late_slowdown_expects_an_overspeed_stop_after_the_grace_and_not_before():
    cell = make_cell()
    plan = sc.build_plan(sc.get_scenario("late_slowdown_overspeed"), cell, required_separation_m=0.6)
    grace, allowed = plan.overspeed_grace_ns, plan.overspeed_deadline_ns
    assert grace is not None and allowed > 0
    assert plan.robot_slow_delay_ns == grace + 200 * MS
    assert plan.stop_reasons == frozenset({Reason.ROBOT_OVERSPEED})
    slow_ms, grace_ms = 500, grace // MS
    slow, run, stop = CommandKind.SLOW, CommandKind.RUN, CommandKind.FAULT_STOP

    def judged(stop_ms: int, reason: Reason = Reason.ROBOT_OVERSPEED):
        rows = _commands(
            (0, run, 0), (slow_ms, slow, 0), (stop_ms, stop, reason), (stop_ms + 50, stop, reason)
        )
        return evaluate_scenario(plan, np.concatenate(rows), T0, budget())

    in_time = judged(slow_ms + grace_ms + 5)
    assert in_time.passed, in_time.failures
    assert in_time.times_ns["stop_due"] == (slow_ms + grace_ms) * MS + grace % MS
    late = judged(slow_ms + grace_ms + allowed // MS + 5)
    assert late.failure_class is FailureClass.SAFETY
    # the controller counts the grace from its own step, before the rig received the command: a stop the
    # rig sees early is judged by its reason only, like a person stop made early by position uncertainty
    early = judged(slow_ms + grace_ms // 2)
    assert early.passed and early.reaction_time_s is not None and early.reaction_time_s < 0
    assert judged(slow_ms + grace_ms + 5, Reason.SENSOR_STALE).failure_class is FailureClass.SAFETY


def test_a_scenario_fault_is_judged_from_when_it_acted_with_the_faults_own_reasons():
    from cobotguard.hil import faults as fl

    cell = make_cell()
    plan = sc.build_plan(sc.get_scenario("person_during_fault_stop"), cell, required_separation_m=0.6)
    fault = fl.get_fault("corruption")
    assert plan.fault == "corruption" and plan.stop_reasons == fault.expected
    assert plan.fault_deadline_ns == fault.deadline_ns(cell)
    assert plan.valid_reset_ns is not None
    stop = CommandKind.FAULT_STOP
    valid_ms = plan.valid_reset_ns // MS
    rows = _commands(
        (0, CommandKind.RUN, 0), (40, stop, Reason.LINK_CORRUPTION), (valid_ms + 20, CommandKind.RUN, 0),
        (plan.duration_ns // MS, CommandKind.RUN, 0),
    )  # fmt: skip
    acted = event(RigEvent.FAULT_INJECTED, T0 + 35 * MS)
    out = evaluate_scenario(plan, np.concatenate([*rows, acted]), T0, budget())
    assert out.passed, out.failures
    assert out.reaction_time_s == pytest.approx(0.005)
    # released while the person stood inside (after the reset pressed then): the interlock is violated
    dwell_ms = plan.dwell_ns // MS
    early = _commands(
        (0, CommandKind.RUN, 0), (40, stop, Reason.LINK_CORRUPTION), (dwell_ms + 350, CommandKind.RUN, 0),
        (plan.duration_ns // MS, CommandKind.RUN, 0),
    )  # fmt: skip
    bad = evaluate_scenario(plan, np.concatenate([*early, acted]), T0, budget())
    assert bad.failure_class is FailureClass.SAFETY and "interlock" in bad.messages[0]


def test_only_the_last_sensor_sees_a_one_sensor_scenario():
    plan = sc.build_plan(sc.get_scenario("one_sensor_sees"), make_cell(), required_separation_m=0.6)
    assert [plan.sees(i, 2) for i in range(2)] == [False, True]
    assert plan.sees(0, 1)
    assert sc.build_plan(sc.get_scenario("walk_in_front_1.6"), make_cell(), 0.6).sees(0, 2)
