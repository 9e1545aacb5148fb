"""Per-stage latencies from a trace: the path of a frame from exposure to a robot at rest.

The stages follow one detection frame (stream "detections", each record tagged with the cycle that took it
in) through the controller's cycle record (stream "cycles") to the robot's own reports:

    sensor exposure -> inference done -> metadata received -> step done -> command written
        -> robot acknowledged -> robot at rest

"Robot acknowledged" is the first robot state whose last accepted command sequence covers the command the
frame's cycle wrote (or, when the trace has a "rig" stream with the rig's receive times, that time).
"Robot at rest" is measured for stops caused by a person: the first robot state reporting standstill after
the stop was acknowledged. The loop itself is measured per cycle against its *scheduled* release, with the
releases a stalled loop skipped filled in (see `stats.latencies_against_schedule`), so a stall is counted
at its full length instead of as one slow cycle.

Deadlines are the budget's terms (safety.budget) for the configuration stored in the trace header, so a
trace is judged by the configuration it was recorded under: exposure -> inference done by T_exposure +
T_inference, then T_transport, T_cycle + T_step, T_frame + T_receiver, T_stop_input + T_s, and the end-to-end
stages by the sums along the way. Everything here is pure: arrays in,
arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cobotguard.hil.report.stats import latencies_against_schedule
from cobotguard.safety import stopping
from cobotguard.safety.reasons import CommandKind, Reason
from cobotguard.safety.trace import Tear

PERSON_REASONS = (
    Reason.PERSON_IN_WARNING_ZONE,
    Reason.PERSON_IN_PROTECTIVE_ZONE,
    Reason.SEPARATION_BELOW_SP,
)

STAGE_NAMES = (
    "exposure -> inference done",
    "inference done -> metadata received",
    "metadata received -> step done",
    "step done -> command written",
    "command written -> robot acknowledged",
    "robot acknowledged -> robot at rest",
)
END_TO_END_NAMES = (
    "end to end: exposure -> command written",
    "end to end: exposure -> robot acknowledged",
    "end to end: exposure -> robot at rest",
)
LOOP_NAMES = (
    "loop: scheduled -> wake",
    "loop: scheduled -> command written",
)


@dataclass(frozen=True)
class Stage:
    """One stage's latency sample (int64 ns) and the deadline it is judged against, if any."""

    name: str
    latencies_ns: np.ndarray
    deadline_ns: int | None = None
    deadline_source: str = ""  # where the deadline comes from in the configuration
    omitted: int = 0  # samples filled in for releases a stalled loop skipped


@dataclass(frozen=True)
class TraceStages:
    """Everything the report needs from one trace."""

    path: str
    header: dict[str, Any]
    stages: list[Stage]
    cycles: int
    frames: int
    overruns: int  # cycles that the executor flagged as following a missed deadline
    frames_missed: int  # gaps in the sensors' frame counters
    stops: int  # person-caused stops measured to robot at rest
    dropped: dict[str, int] = field(default_factory=dict)
    complete: bool = True
    notes: list[str] = field(default_factory=list)  # why something could not be judged
    tear: Tear | None = None  # where and how a torn trace stopped: the report covers the prefix before it

    @property
    def checksum(self) -> str:
        """The short checksum of the configuration the trace was recorded under."""
        return str(self.header.get("config_checksum", "?"))

    def stage(self, name: str) -> Stage | None:
        """The stage with this name, if the trace had data for it."""
        return next((s for s in self.stages if s.name == name), None)


class _Deadlines:
    """Per-stage deadlines: the budget's terms for the configuration stored in the trace header.

    Each stage is judged by the budget terms that cover it (safety.budget.reaction_stages): the wait
    for a frame (T_frames) is not part of any measured stage, because every latency here starts at the
    exposure of a frame that was taken.
    """

    def __init__(self, header: dict[str, Any]) -> None:
        self.problem = ""
        self.terms: dict[str, tuple[int, str]] = {}
        self.cycle_period_ns: int | None = header.get("cycle_period_ns")
        raw = header.get("config")
        if not isinstance(raw, dict):
            self.problem = "the trace header holds no configuration: stages have no deadlines"
            return
        try:
            from cobotguard.safety import budget
            from cobotguard.safety.config import CellConfig, ns

            cfg = CellConfig.model_validate(raw)
            sensors = budget.sensor_stages(cfg)
            by_symbol = {st.symbol: st for st in budget.reaction_stages(cfg)}
            stop_ns, _ = stopping.stopping_at(cfg.robot, cfg.robot.max_speed_mps)
        except Exception as exc:  # any schema drift: report without deadlines rather than fail
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.problem = f"the configuration in the trace header does not validate ({first}): no deadlines"
            return

        def worst(prefix: str) -> tuple[int, str]:
            rows = [st for stages in sensors.values() for st in stages if st.symbol.startswith(prefix)]
            top = max(rows, key=lambda st: st.ns)
            return top.ns, top.symbol

        def term(symbol: str) -> tuple[int, str]:
            return by_symbol[symbol].ns, symbol

        exposure, inference = worst("T_exposure"), worst("T_inference")
        self.terms = {
            "exposure": exposure,
            "inference": inference,
            "transport": worst("T_transport"),
            "cycle": term("T_cycle"),
            "step": term("T_step"),
            "frame": term("T_frame"),
            "receiver": term("T_receiver"),
            "stop_input": term("T_stop_input"),
            "stop": (stop_ns, "T_s(robot.max_speed_mps)"),
        }
        if self.cycle_period_ns is None:
            self.cycle_period_ns = ns(cfg.controller.cycle_period_ms)

    def sum_of(self, *names: str) -> tuple[int | None, str]:
        """The sum of budget terms and how it was formed, or (None, "") without a configuration."""
        if not self.terms:
            return None, ""
        picked = [self.terms[n] for n in names]
        return sum(v for v, _ in picked), " + ".join(symbol for _, symbol in picked)


def _ack_times(cycles: np.ndarray, rig: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(command seq, earliest time the robot is known to have it), sorted by seq, running-max covered."""
    if (
        rig is not None
        and rig.size
        and {"command_seq", "t_command_received_ns"} <= set(rig.dtype.names or ())
    ):
        received = (rig["command_seq"] >= 0) & (rig["t_command_received_ns"] > 0)
        seq = rig["command_seq"][received].astype(np.int64)
        t = rig["t_command_received_ns"][received].astype(np.int64)
    else:
        # The robot reports the link's number of the last command it accepted. The link numbers the
        # commands from 0 in the order the recorded cycles send them (one per cycle), so link number n is
        # the command of the first recorded cycle plus n in the controller's own numbering.
        robot = cycles["robot"]
        valid = (robot["t_sent_ns"] > 0) & (robot["last_command_seq"] >= 0)
        seq = robot["last_command_seq"][valid].astype(np.int64) + int(cycles["command_seq"][0])
        t = robot["t_sent_ns"][valid].astype(np.int64)
    order = np.argsort(t, kind="stable")
    return np.maximum.accumulate(seq[order]) if seq.size else seq, t[order]


def _first_ack(ack_seq: np.ndarray, ack_t: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """For each command seq, the first time a report covers it (-1 when never)."""
    if ack_seq.size == 0:
        return np.full(seq.shape, -1, dtype=np.int64)
    idx = np.searchsorted(ack_seq, seq, side="left")
    out = np.full(seq.shape, -1, dtype=np.int64)
    ok = idx < ack_seq.size
    out[ok] = ack_t[idx[ok]]
    return out


def _frames_missed(detections: np.ndarray) -> int:
    """Counter gaps per sensor (the 8-bit counter wraps); repeated counters are not gaps."""
    missed = 0
    for sensor in np.unique(detections["sensor_index"]):
        counters = detections["frame_counter"][detections["sensor_index"] == sensor].astype(np.int64)
        steps = np.mod(np.diff(counters), 256)
        missed += int(np.sum(np.where(steps > 1, steps - 1, 0)))
    return missed


def stages_from_streams(
    path: str,
    header: dict[str, Any],
    cycles: np.ndarray,
    detections: np.ndarray,
    rig: np.ndarray | None = None,
    dropped: dict[str, int] | None = None,
    complete: bool = True,
    tear: Tear | None = None,
) -> TraceStages:
    """Per-stage latencies and deadlines of one trace's streams."""
    d = _Deadlines(header)
    stages: list[Stage] = []

    def add(name: str, values: np.ndarray, deadline: tuple[int | None, str] = (None, ""), omitted: int = 0):
        values = np.asarray(values, dtype=np.int64)
        if values.size:
            stages.append(Stage(name, values, deadline[0], deadline[1], omitted))

    cycles = cycles[np.argsort(cycles["cycle"], kind="stable")] if cycles.size else cycles

    # frame path: detections joined to the cycle that took each frame in
    if detections.size and cycles.size:
        keys = cycles["cycle"]
        at = np.clip(np.searchsorted(keys, detections["cycle"]), 0, keys.size - 1)
        row = np.where(keys[at] == detections["cycle"], at, -1).astype(np.int64)
        det = detections[row >= 0]
        cyc = cycles[row[row >= 0]]
    else:
        det, cyc = detections[:0], cycles[:0]
    ack_seq, ack_t = _ack_times(cycles, rig) if cycles.size else (np.empty(0, np.int64),) * 2
    acked = _first_ack(ack_seq, ack_t, cyc["command_seq"].astype(np.int64)) if det.size else np.empty(0)
    has_ack = acked >= 0

    add(
        "exposure -> inference done",
        det["t_inference_done_ns"] - det["t_exposure_ns"],
        d.sum_of("exposure", "inference"),
    )
    add(
        "inference done -> metadata received",
        det["t_received_ns"] - det["t_inference_done_ns"],
        d.sum_of("transport"),
    )
    add(
        "metadata received -> step done",
        cyc["t_step_end_ns"] - det["t_received_ns"],
        d.sum_of("cycle", "step"),
    )
    if cycles.size:
        add("step done -> command written", cycles["t_command_written_ns"] - cycles["t_step_end_ns"])
    if det.size:
        add(
            "command written -> robot acknowledged",
            (acked - cyc["t_command_written_ns"])[has_ack],
            d.sum_of("frame", "receiver"),
        )

    # stops caused by a person: from the frame that triggered them to the robot at rest
    at_rest_lat, e2e_rest = _stops_to_rest(cycles, detections, ack_seq, ack_t, rig)
    add("robot acknowledged -> robot at rest", at_rest_lat, d.sum_of("stop_input", "stop"))

    to_controller = ("exposure", "inference", "transport", "cycle", "step")
    add(
        "end to end: exposure -> command written",
        cyc["t_command_written_ns"] - det["t_exposure_ns"],
        d.sum_of(*to_controller),
    )
    if det.size:
        add(
            "end to end: exposure -> robot acknowledged",
            (acked - det["t_exposure_ns"])[has_ack],
            d.sum_of(*to_controller, "frame", "receiver"),
        )
    add(
        "end to end: exposure -> robot at rest",
        e2e_rest,
        d.sum_of(*to_controller, "frame", "receiver", "stop_input", "stop"),
    )

    # the loop, per release, against its schedule
    overruns = 0
    if cycles.size:
        # the compiled loop also steps when data arrives (trigger != 0): the schedule is the releases'
        data_steps = cycles[cycles["trigger"] != 0] if "trigger" in (cycles.dtype.names or ()) else cycles[:0]
        releases = cycles[cycles["trigger"] == 0] if data_steps.size else cycles
        add("loop: scheduled -> wake", releases["t_wake_ns"] - releases["t_scheduled_ns"])
        period = d.cycle_period_ns
        if period:
            measured = latencies_against_schedule(
                releases["t_scheduled_ns"],
                releases["t_command_written_ns"],
                int(period),
                releases["t_wake_ns"],
            )
            # the overrun deadline after each release if the trace records it (T_step), else the next release
            recorded = header.get("deadline_ns")
            deadline = (
                (int(recorded), "controller.worst_step_ms after the release (T_step)")
                if isinstance(recorded, int) and recorded > 0
                else (int(period), "cycle period (the next release)")
            )
            add("loop: scheduled -> command written", measured.latencies_ns, deadline, measured.omitted)
            if data_steps.size:
                add(
                    "loop: data readable -> command written",
                    data_steps["t_command_written_ns"] - data_steps["t_scheduled_ns"],
                    deadline,
                )
        overruns = int(np.count_nonzero(cycles["overrun"]))

    return TraceStages(
        path=path,
        header=header,
        stages=stages,
        cycles=int(cycles.size),
        frames=int(detections.size),
        overruns=overruns,
        frames_missed=_frames_missed(detections) if detections.size else 0,
        stops=int(at_rest_lat.size),
        dropped=dict(dropped or {}),
        complete=complete,
        notes=[d.problem] if d.problem else [],
        tear=tear,
    )


def _stops_to_rest(
    cycles: np.ndarray,
    detections: np.ndarray,
    ack_seq: np.ndarray,
    ack_t: np.ndarray,
    rig: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ack -> at rest, exposure -> at rest) for each person-caused stop of a moving robot."""
    empty = np.empty(0, dtype=np.int64)
    if cycles.size < 2 or detections.size == 0:
        return empty, empty
    kind = cycles["command"]["kind"]
    reason = cycles["command"]["reason"]
    stopping = kind >= CommandKind.PROTECTIVE_STOP
    onsets = np.flatnonzero(stopping[1:] & ~stopping[:-1]) + 1
    robot = cycles["robot"]
    rest_t = robot["t_sent_ns"].astype(np.int64)
    at_rest = robot["at_rest"] == 1
    if rig is not None and rig.size and {"t_at_rest_ns"} <= set(rig.dtype.names or ()):
        rig_rest = np.sort(rig["t_at_rest_ns"][rig["t_at_rest_ns"] > 0].astype(np.int64))
    else:
        rig_rest = None
    det_cycles = detections["cycle"].astype(np.int64)
    ack_lat, e2e = [], []
    for k in onsets:
        if int(reason[k]) not in PERSON_REASONS or robot["at_rest"][k - 1] == 1:
            continue  # a fault stop has no triggering frame; a robot already at rest has nothing to stop
        frame_rows = np.flatnonzero(det_cycles <= cycles["cycle"][k])
        if frame_rows.size == 0:
            continue
        exposure = int(detections["t_exposure_ns"][frame_rows[-1]])
        ack = _first_ack(ack_seq, ack_t, np.array([cycles["command_seq"][k]], dtype=np.int64))[0]
        if ack < 0:
            continue
        if rig_rest is not None:
            later = rig_rest[rig_rest >= ack]
            rest = int(later[0]) if later.size else -1
        else:
            later = np.flatnonzero(at_rest & (rest_t >= ack))
            rest = int(rest_t[later[0]]) if later.size else -1
        if rest < 0:
            continue
        ack_lat.append(rest - ack)
        e2e.append(rest - exposure)
    return np.array(ack_lat, dtype=np.int64), np.array(e2e, dtype=np.int64)


def stages_from_trace(trace: Any) -> TraceStages:
    """Per-stage latencies of a `safety.trace.Trace`."""
    streams = trace.streams
    cycles = streams.get("cycles")
    detections = streams.get("detections")
    if cycles is None:
        from cobotguard.safety.trace import CYCLE_DTYPE

        cycles = np.zeros(0, dtype=CYCLE_DTYPE)
    if detections is None:
        from cobotguard.safety.trace import DETECTION_TRACE_DTYPE

        detections = np.zeros(0, dtype=DETECTION_TRACE_DTYPE)
    return stages_from_streams(
        trace.path,
        trace.header,
        cycles,
        detections,
        streams.get("rig"),
        dropped=trace.dropped,
        complete=trace.complete,
        tear=trace.tear,
    )
