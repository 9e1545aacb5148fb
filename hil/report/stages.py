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

Deadlines come from the configuration stored in the trace header (the same numbers the budget adds up),
so a trace is judged by the configuration it was recorded under. Everything here is pure: arrays in,
arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hil.report.stats import latencies_against_schedule
from safety.reasons import CommandKind, Reason

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

    @property
    def checksum(self) -> str:
        """The short checksum of the configuration the trace was recorded under."""
        return str(self.header.get("config_checksum", "?"))

    def stage(self, name: str) -> Stage | None:
        """The stage with this name, if the trace had data for it."""
        return next((s for s in self.stages if s.name == name), None)


def _ms_ns(ms: float) -> int:
    """Configuration milliseconds as int64 ns, rounded up (as safety.config.ns does)."""
    return int(math.ceil(ms * 1_000_000 - 1e-6))


class _Deadlines:
    """Per-stage deadlines read from the trace header's configuration (None when a number is absent)."""

    def __init__(self, header: dict[str, Any]) -> None:
        cfg = header.get("config") if isinstance(header.get("config"), dict) else {}
        assert isinstance(cfg, dict)
        self.sensors: list[dict[str, Any]] = list((cfg.get("sensors") or {}).values())
        self.sensor_names: list[str] = list((cfg.get("sensors") or {}).keys())
        self.controller: dict[str, Any] = cfg.get("controller") or {}
        self.link: dict[str, Any] = cfg.get("link") or {}
        self.robot: dict[str, Any] = cfg.get("robot") or {}
        self.cycle_period_ns: int | None = header.get("cycle_period_ns")
        if self.cycle_period_ns is None and "cycle_period_ms" in self.controller:
            self.cycle_period_ns = _ms_ns(self.controller["cycle_period_ms"])

    def _max_sensor(self, *keys: str) -> tuple[int | None, str]:
        if not self.sensors or any(k not in s for s in self.sensors for k in keys):
            return None, ""
        total = max(sum(float(s[k]) for k in keys) for s in self.sensors)
        return _ms_ns(total), "max over sensors of " + " + ".join(f"sensors.*.{k}" for k in keys)

    def inference(self) -> tuple[int | None, str]:
        return self._max_sensor("exposure_readout_ms", "inference_worst_ms")

    def transport(self) -> tuple[int | None, str]:
        return self._max_sensor("transport_latency_ms")

    def controller_term(self) -> tuple[int | None, str]:
        c = self.controller
        if "cycle_period_ms" not in c or "worst_step_ms" not in c:
            return None, ""
        return (
            _ms_ns(float(c["cycle_period_ms"]) + float(c["worst_step_ms"])),
            "controller.cycle_period_ms + controller.worst_step_ms",
        )

    def link_term(self) -> tuple[int | None, str]:
        k = self.link
        if not {"command_frame_bytes", "baud", "receiver_cycle_ms", "max_delay_ms"} <= k.keys():
            return None, ""
        # the receiver accepts a command up to link.max_delay_ms old; that is the wire-side deadline
        return _ms_ns(float(k["max_delay_ms"])), "link.max_delay_ms"

    def sum_of(self, *terms: tuple[int | None, str]) -> tuple[int | None, str]:
        if any(value is None for value, _ in terms):
            return None, ""
        return sum(int(v) for v, _ in terms if v is not None), " + ".join(f"({s})" for _, s in terms)


def _ack_times(cycles: np.ndarray, rig: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(command seq, earliest time the robot is known to have it), sorted by seq, running-max covered."""
    if (
        rig is not None
        and rig.size
        and {"command_seq", "t_command_received_ns"} <= set(rig.dtype.names or ())
    ):
        seq = rig["command_seq"].astype(np.int64)
        t = rig["t_command_received_ns"].astype(np.int64)
    else:
        robot = cycles["robot"]
        valid = robot["t_sent_ns"] > 0
        seq = robot["last_command_seq"][valid].astype(np.int64)
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
) -> TraceStages:
    """Per-stage latencies and deadlines of one trace's streams."""
    d = _Deadlines(header)
    stages: list[Stage] = []

    def add(name: str, values: np.ndarray, deadline: tuple[int | None, str] = (None, ""), omitted: int = 0):
        values = np.asarray(values, dtype=np.int64)
        if values.size:
            stages.append(Stage(name, values, deadline[0], deadline[1], omitted))

    cycles = cycles[np.argsort(cycles["cycle"], kind="stable")] if cycles.size else cycles
    by_cycle = {int(c): i for i, c in enumerate(cycles["cycle"])} if cycles.size else {}

    # frame path: detections joined to the cycle that took each frame in
    if detections.size and cycles.size:
        row = np.array([by_cycle.get(int(c), -1) for c in detections["cycle"]], dtype=np.int64)
        det = detections[row >= 0]
        cyc = cycles[row[row >= 0]]
    else:
        det, cyc = detections[:0], cycles[:0]
    ack_seq, ack_t = _ack_times(cycles, rig) if cycles.size else (np.empty(0, np.int64),) * 2
    acked = _first_ack(ack_seq, ack_t, cyc["command_seq"].astype(np.int64)) if det.size else np.empty(0)
    has_ack = acked >= 0

    inference = d.inference()
    transport = d.transport()
    controller = d.controller_term()
    link = d.link_term()
    add("exposure -> inference done", det["t_inference_done_ns"] - det["t_exposure_ns"], inference)
    add("inference done -> metadata received", det["t_received_ns"] - det["t_inference_done_ns"], transport)
    add("metadata received -> step done", cyc["t_step_end_ns"] - det["t_received_ns"], controller)
    if cycles.size:
        add("step done -> command written", cycles["t_command_written_ns"] - cycles["t_step_end_ns"])
    if det.size:
        add("command written -> robot acknowledged", (acked - cyc["t_command_written_ns"])[has_ack], link)

    # stops caused by a person: from the frame that triggered them to the robot at rest
    at_rest_lat, e2e_rest = _stops_to_rest(cycles, detections, ack_seq, ack_t, rig)
    add("robot acknowledged -> robot at rest", at_rest_lat)

    e2e_written = d.sum_of(inference, transport, controller)
    add(
        "end to end: exposure -> command written",
        cyc["t_command_written_ns"] - det["t_exposure_ns"],
        e2e_written,
    )
    if det.size:
        add(
            "end to end: exposure -> robot acknowledged",
            (acked - det["t_exposure_ns"])[has_ack],
            d.sum_of(inference, transport, controller, link),
        )
    add("end to end: exposure -> robot at rest", e2e_rest)

    # the loop, per release, against its schedule
    overruns = 0
    if cycles.size:
        add("loop: scheduled -> wake", cycles["t_wake_ns"] - cycles["t_scheduled_ns"])
        period = d.cycle_period_ns
        if period:
            measured = latencies_against_schedule(
                cycles["t_scheduled_ns"], cycles["t_command_written_ns"], int(period), cycles["t_wake_ns"]
            )
            add(
                "loop: scheduled -> command written",
                measured.latencies_ns,
                (int(period), "controller.cycle_period_ms (the next release)"),
                measured.omitted,
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
        from safety.trace import CYCLE_DTYPE

        cycles = np.zeros(0, dtype=CYCLE_DTYPE)
    if detections is None:
        from safety.trace import DETECTION_TRACE_DTYPE

        detections = np.zeros(0, dtype=DETECTION_TRACE_DTYPE)
    return stages_from_streams(
        trace.path,
        trace.header,
        cycles,
        detections,
        streams.get("rig"),
        dropped=trace.dropped,
        complete=trace.complete,
    )
