"""A cell prepared for a campaign, chunks of approaches run through the kernel, outcomes classified.

`prepare(cfg)` resolves everything the compiled simulation needs once; `run_chunk` draws and simulates
approaches [first, first + count) of a seed; `violations` and `stops_without_cause` judge the kernel's
results. The checks are those of tests/test_timing_properties.py:

- contact: the person's reach (true gap <= C + Z_r) meets the hazard region before the robot is at rest;
- late stop: the stop command, or braking, later than T_r after the true gap first fell to S_p (at the
  speed the robot moved with then) less Z_d, or no stop at all;
- restart: a RUN or SLOW command after a stop, although no reset is ever given (manual restart cells);
- fault: an injected fault not stopped within the time the configuration promises (`hil.sim.watchdog_ns`).

A stop without cause: a stop while no fault had begun and the person had never come within any stop's
reach (S_p at the robot's maximum speed, or a protective zone, each with 2 Z_d: the measurement error
and the step's own Z_d, plus what a held person's Z_d grows in the hold time, controller.person_hold_ms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cobotguard.hil.campaign.draw import (
    APPROACH_DTYPE,
    FACTS_DTYPE,
    MAX_COVER_VERTICES,
    MAX_FAULTS,
    Pattern,
    decode,
    draws,
)
from cobotguard.hil.campaign.kernel import (
    FAULT_CODES,
    LOG_COLUMNS,
    RESULT_DTYPE,
    WORK_DTYPE,
    resolve_line,
    simulate_all,
)
from cobotguard.hil.campaign.kernel import simulate as simulate_one
from cobotguard.hil.sim import Fault, watchdog_ns
from cobotguard.safety import timing
from cobotguard.safety.budget import sensor_uncertainty_m, separation_required_m
from cobotguard.safety.checksum import config_checksum
from cobotguard.safety.config import CellConfig, Sensor, stepped_on_the_tick
from cobotguard.safety.config_rules import covered_area
from cobotguard.safety.params import build_params
from cobotguard.safety.reasons import Reason
from cobotguard.safety.records import COMMAND_DTYPE, MAX_SENSORS, ROBOT_STATE_DTYPE, empty_detections
from cobotguard.safety.step import new_state

TAIL_NS = 500_000_000  # simulated on after the person's last move, or after the robot is at rest
FAULT_PROBABILITY = 0.25
FAULT_WINDOW_NS = 1_500_000_000  # a fault begins within this time of the run start

# The faults a campaign injects: (name, hil.sim fault, variant, the hil.faults catalogue entry it plays).
# The catalogue's byte-level link faults (corruption, insertion, masquerade, addressing, garbage bytes,
# a wrong connection ID, a lost robot frame) end at the link endpoint before the step; the HIL rig
# (`cobotguard hil`) covers them, a campaign does not.
CAMPAIGN_FAULTS: tuple[tuple[str, Fault, int, str | None], ...] = (
    ("sensor_silence", Fault.SENSOR_SILENT, 0, "sensor_silence"),
    ("unacceptable_delay", Fault.FRAMES_LATE, 10, "unacceptable_delay"),
    ("repetition", Fault.COUNTER_JUMP, 0, "repetition"),
    ("incorrect_sequence", Fault.COUNTER_JUMP, 1, "incorrect_sequence"),
    ("frames_lost_beyond_tolerance", Fault.COUNTER_JUMP, 3, None),
    ("unknown_sensor_index", Fault.CORRUPT_METADATA, 3, "unknown_sensor_index"),
    ("nan_position", Fault.CORRUPT_METADATA, 0, None),
    ("lens_covered", Fault.CORRUPT_METADATA, 1, None),
    ("too_many_persons", Fault.CORRUPT_METADATA, 2, None),
    ("loop_overrun", Fault.LOOP_OVERRUN, 0, None),
    ("robot_heartbeat_loss", Fault.ROBOT_SILENT, 0, "robot_heartbeat_loss"),
)
assert len(CAMPAIGN_FAULTS) <= MAX_FAULTS

VIOLATIONS = ("contact", "late_stop", "restart", "fault_late")


@dataclass(frozen=True)
class PreparedCell:
    """A cell ready for the kernel: the tick-stepped configuration, its parameters, the facts and the
    checksum of the configuration as given."""

    cfg: CellConfig
    params: np.ndarray
    facts: np.ndarray
    checksum: str

    @property
    def manual_restart(self) -> bool:
        """Whether restarts need a reset (the campaign never gives one after arming)."""
        return int(self.params[0]["restart_automatic"]) == 0


def _iso_fast_below_mps(cfg: CellConfig) -> float:
    """The highest robot speed at which S_p <= 0.5 m (ISO 13855 then assumes 2.0 m/s); -1 if none."""
    top = cfg.robot.max_speed_mps
    if separation_required_m(cfg, 0.0) > 0.5:
        return -1.0
    if separation_required_m(cfg, top) <= 0.5:
        return top
    lo, hi = 0.0, top
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if separation_required_m(cfg, mid) <= 0.5 else (lo, mid)
    return lo


def prepare(cfg: CellConfig) -> PreparedCell:
    """Resolve a cell for the campaign; ValueError names what the simulation cannot model."""
    checksum = config_checksum(cfg)[0]  # the cell as given (the report names it)
    cfg = stepped_on_the_tick(cfg)  # the simulation releases cycles on the tick (as hil.sim does)
    rates = {s.frame_rate_hz for s in cfg.sensors.values()}
    if len(rates) != 1:
        raise ValueError(f"sensors.*.frame_rate_hz: the simulation needs one frame rate, got {sorted(rates)}")
    hazard = np.asarray(cfg.robot.hazard_polygon_m, dtype=float)
    if not _convex(hazard):
        raise ValueError("robot.hazard_polygon_m: the simulation needs a convex hazard region")
    params = build_params(cfg)
    p = params[0]
    n = int(p["n_sensors"])
    facts = np.zeros(1, dtype=FACTS_DTYPE)
    f = facts[0]
    z_d = sensor_uncertainty_m(cfg)
    f["n_sensors"] = n
    f["frame_period_ns"] = timing.frame_period_ns(rates.pop())
    f["robot_max_speed_mps"] = cfg.robot.max_speed_mps
    f["iso_fast_below_mps"] = _iso_fast_below_mps(cfg)
    vertices = p["hazard_vertices"][: p["hazard_n"]]
    f["hazard_centre"] = vertices.mean(axis=0)
    f["n_faults"] = len(CAMPAIGN_FAULTS)
    f["fault_probability"] = FAULT_PROBABILITY
    f["walk_horizon_ns"] = FAULT_WINDOW_NS
    f["link_ns"] = timing.command_delivery_ns(cfg.link)
    f["robot_reaction_ns"] = timing.ns(cfg.robot.stop_input_reaction_ms)
    f["arm_after_ns"] = int(p["sensor_max_age_ns"][:n].max()) + 2 * int(p["cycle_period_ns"])
    # S_p(v, Z_d) already holds one Z_d; the measurement error adds the other, and a person the sensor
    # stops seeing (leaving its covered area) is held with a Z_d growing at 1.6 m/s for the hold time
    held = float(p["human_speed_far_mps"]) * int(p["person_hold_ns"]) / 1e9
    f["free_hazard_m"] = separation_required_m(cfg, cfg.robot.max_speed_mps) + z_d + held
    f["free_zone_m"] = 2 * z_d + held
    f["tail_ns"] = TAIL_NS
    for i, (name, sensor) in enumerate(cfg.sensors.items()):
        ring = _coverage_ring(name, sensor)
        f["cover_n"][i] = len(ring)
        f["cover_vertices"][i, : len(ring)] = ring
    for k, (_, fault, variant, _catalogue) in enumerate(CAMPAIGN_FAULTS):
        f["fault_kind"][k] = FAULT_CODES[fault]
        f["fault_variant"][k] = variant
        f["fault_watchdog_ns"][k] = watchdog_ns(params, fault)
    return PreparedCell(cfg, params, facts, checksum)


def _coverage_ring(name: str, sensor: Sensor) -> np.ndarray:
    """The sensor's covered floor area as one ring of vertices; ValueError if it is not one polygon."""
    from cobotguard.safety.camera import CameraModelError

    try:
        area = covered_area(sensor)
    except CameraModelError as exc:
        raise ValueError(f"sensors.{name}: no covered area ({exc})") from None
    if area.geom_type != "Polygon" or len(area.interiors) or area.is_empty:
        raise ValueError(f"sensors.{name}: the simulation needs a covered area of one polygon, no holes")
    ring = np.asarray(area.exterior.coords, dtype=float)[:-1]
    if len(ring) > MAX_COVER_VERTICES:
        raise ValueError(f"sensors.{name}: {len(ring)} covered-area vertices, at most {MAX_COVER_VERTICES}")
    return ring


def _convex(points: np.ndarray) -> bool:
    """Whether a simple polygon's turns all have one sign."""
    d1 = np.roll(points, -1, axis=0) - points
    d2 = np.roll(d1, -1, axis=0)
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    return bool(np.all(cross >= -1e-12) or np.all(cross <= 1e-12))


class Scratch:
    """The kernel's buffers for one worker: reused for every chunk it runs."""

    def __init__(self, cell: PreparedCell) -> None:
        self.template = new_state(cell.params)
        self.state = new_state(cell.params)
        self.detections = empty_detections(MAX_SENSORS)
        self.robot = np.zeros(1, dtype=ROBOT_STATE_DTYPE)
        self.command = np.zeros(1, dtype=COMMAND_DTYPE)
        self.work = np.zeros(1, dtype=WORK_DTYPE)
        self.no_log = np.zeros((0, LOG_COLUMNS), dtype=np.int64)
        self.no_log_count = np.zeros(1, dtype=np.int64)


def approaches(cell: PreparedCell, seed: int, first: int, count: int) -> np.ndarray:
    """Approaches [first, first + count) of campaign `seed` for the cell."""
    out = np.zeros(count, dtype=APPROACH_DTYPE)
    p = cell.params[0]
    vertices, n = p["hazard_vertices"], int(p["hazard_n"])
    for j in range(count):
        u, key = draws(seed, first + j)
        decode(cell.facts, vertices, n, u, key, out, j)
    return out


def simulate(cell: PreparedCell, batch: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """The kernel's results for each approach of `batch`."""
    s = Scratch(cell) if scratch is None else scratch
    results = np.zeros(len(batch), dtype=RESULT_DTYPE)
    buffers = (s.state, s.template, s.detections, s.robot, s.command, s.work)
    simulate_all(cell.params, cell.facts, batch, *buffers, results, s.no_log, s.no_log_count)
    return results


def violations(cell: PreparedCell, r: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks, one per kind in VIOLATIONS, over the results `r`."""
    t_r = int(cell.params[0]["reaction_time_ns"])
    stopped = r["stop_ns"] >= 0
    at_rest = np.where(stopped, r["rest_ns"], np.iinfo(np.int64).max)
    entered = r["within_sp_ns"] >= 0
    late = entered & (
        ~stopped | (r["stop_ns"] > r["within_sp_ns"] + t_r) | (r["brake_ns"] > r["within_sp_ns"] + t_r)
    )
    faulted = r["fault_at_ns"] >= 0
    fault_due = r["fault_at_ns"] + r["fault_watchdog_ns"]
    # a fault that began before the stop must have stopped the robot within its watchdog time
    fault_late = faulted & (~stopped | (r["stop_ns"] >= r["fault_at_ns"])) & (
        ~stopped & (r["end_ns"] > fault_due) | stopped & (r["stop_ns"] > fault_due)
    )
    restart = (r["restart_ns"] >= 0) if cell.manual_restart else np.zeros(len(r), dtype=bool)
    return {
        "contact": (r["contact_ns"] >= 0) & (r["contact_ns"] <= at_rest),
        "late_stop": late,
        "restart": restart,
        "fault_late": fault_late,
    }


def stops_without_cause(r: np.ndarray) -> np.ndarray:
    """Mask: a stop while no fault had begun and nobody had come within any stop's reach."""
    stopped = r["stop_ns"] >= 0
    fault_before = (r["fault_at_ns"] >= 0) & (r["fault_at_ns"] <= r["stop_ns"])
    return stopped & ~fault_before & (r["stop_free"] == 1)


def direction_deg(batch: np.ndarray) -> np.ndarray:
    """Where each person came from, seen from the hazard centre, in [0, 360)."""
    return np.mod(batch["angle_deg"], 360.0)


def describe_approach(cell: PreparedCell, a: np.void) -> dict[str, Any]:
    """One approach as plain values (the replay's header)."""
    fault = int(a["fault"])
    n = int(cell.params[0]["n_sensors"])
    return {
        "pattern": Pattern(int(a["pattern"])).name.lower(),
        "from_deg": round(float(a["angle_deg"]), 3),
        "aim_m": [round(float(a["aim_x_m"]), 4), round(float(a["aim_y_m"]), 4)],
        "speed_mps": round(float(a["speed_mps"]), 4),
        "robot_speed_mps": round(float(a["robot_speed_mps"]), 4),
        "error_fraction": round(float(a["error_fraction"]), 4),
        "latency_fraction": round(float(a["latency_fraction"]), 4),
        "miss_probability": round(float(a["miss_probability"]), 4),
        "link_delay_fraction": round(float(a["link_delay_fraction"]), 4),
        "step_fraction": round(float(a["step_fraction"]), 4),
        "step_jitter": bool(a["step_jitter"]),
        "phase_ns": [int(v) for v in a["phase_ns"][:n]],
        "fault": CAMPAIGN_FAULTS[fault][0] if fault >= 0 else None,
        "fault_at_ns": int(a["fault_at_ns"]) if fault >= 0 else None,
    }


def _event_ns(value: int) -> int | None:
    return None if value < 0 else int(value)


def violation_details(cell: PreparedCell, r: np.void) -> dict[str, Any]:
    """The times behind a result's verdict, in ns from the run start (None: never)."""
    t_r = int(cell.params[0]["reaction_time_ns"])
    within = int(r["within_sp_ns"])
    return {
        "stop_ns": _event_ns(int(r["stop_ns"])),
        "brake_ns": _event_ns(int(r["brake_ns"])),
        "rest_ns": _event_ns(int(r["rest_ns"])),
        "within_sp_ns": _event_ns(within),
        "stop_due_ns": within + t_r if within >= 0 else None,
        "contact_ns": _event_ns(int(r["contact_ns"])),
        "restart_ns": _event_ns(int(r["restart_ns"])),
        "fault_at_ns": _event_ns(int(r["fault_at_ns"])),
        "fault_due_ns": int(r["fault_at_ns"] + r["fault_watchdog_ns"]) if r["fault_at_ns"] >= 0 else None,
        "min_gap_m": round(float(r["min_gap_m"]), 4),
    }


def run_chunk(cell: PreparedCell, seed: int, chunk: int, chunk_size: int, scratch: Scratch) -> dict[str, Any]:
    """Approaches [chunk * chunk_size, (chunk + 1) * chunk_size) of `seed`, summarised as a chunk record."""
    cpu = time.process_time()
    first = chunk * chunk_size
    batch = approaches(cell, seed, first, chunk_size)
    r = simulate(cell, batch, scratch)
    masks = violations(cell, r)
    found: list[dict[str, Any]] = []
    for kind in VIOLATIONS:
        for j in np.flatnonzero(masks[kind]):
            found.append({"index": first + int(j), "kind": kind, **violation_details(cell, r[j])})
    uncaused = []
    for j in np.flatnonzero(stops_without_cause(r)):
        reason = Reason(int(r[j]["stop_reason"])).name
        uncaused.append({"index": first + int(j), "reason": reason, "stop_ns": int(r[j]["stop_ns"])})
    stopped = r["stop_ns"] >= 0
    reasons, counts = np.unique(r["stop_reason"][stopped], return_counts=True)
    fault_counts = np.bincount(batch["fault"] + 1, minlength=len(CAMPAIGN_FAULTS) + 1)
    return {
        "type": "chunk",
        "chunk": chunk,
        "first": first,
        "count": chunk_size,
        # per approach: where the person came from (0.1 degree) and the smallest gap while the robot moved
        "from_ddeg": np.round(direction_deg(batch) * 10).astype(int).tolist(),
        "min_gap_mm": np.round(r["min_gap_m"] * 1000).astype(int).tolist(),
        "stopped": int(stopped.sum()),
        "stop_reasons": {Reason(int(k)).name: int(c) for k, c in zip(reasons, counts, strict=True)},
        "patterns": {p.name.lower(): int((batch["pattern"] == p).sum()) for p in Pattern},
        "faults": {name: int(fault_counts[k + 1]) for k, (name, *_rest) in enumerate(CAMPAIGN_FAULTS)},
        "violations": found,
        "stops_without_cause": uncaused,
        "cycles": int(r["cycles"].sum()),
        "cpu_s": round(time.process_time() - cpu, 6),
    }


@dataclass(frozen=True)
class Replayed:
    """One approach run again with its command changes logged."""

    seed: int
    index: int
    approach: dict[str, Any]
    result: np.void
    log: np.ndarray  # (K, LOG_COLUMNS) int64, see campaign.kernel.simulate
    violations: list[str]
    without_cause: bool


def replay(cell: PreparedCell, seed: int, index: int, max_changes: int = 10_000) -> Replayed:
    """Approach `index` of campaign `seed`, run alone, with its timeline."""
    batch = approaches(cell, seed, index, 1)
    s = Scratch(cell)
    results = np.zeros(1, dtype=RESULT_DTYPE)
    log = np.zeros((max_changes, LOG_COLUMNS), dtype=np.int64)
    count = np.zeros(1, dtype=np.int64)
    buffers = (s.state, s.template, s.detections, s.robot, s.command, s.work)
    simulate_one(cell.params, cell.facts, batch, 0, *buffers, results, log, count)
    masks = violations(cell, results)
    return Replayed(
        seed,
        index,
        describe_approach(cell, batch[0]),
        results[0],
        log[: int(count[0])].copy(),
        [kind for kind in VIOLATIONS if masks[kind][0]],
        bool(stops_without_cause(results)[0]),
    )


def timeline_lines(cell: PreparedCell, r: Replayed) -> list[str]:
    """The replay for the terminal: the approach, each command change, the events, the verdict."""
    from cobotguard.safety.reasons import CommandKind

    lines = [f"approach {r.seed}:{r.index} of {cell.cfg.name!r} (checksum {cell.checksum})"]
    lines += [f"  {key}: {value}" for key, value in r.approach.items()]
    lines.append("command changes (t from the run start; gap: the person's true gap to the hazard region):")
    for t, kind, reason, sensor, person, gap_um, armed in r.log:
        when = f"{t / 1e6:+10.3f} ms" if armed else f"{'arming':>10} +{t / 1e6:.3f} ms"
        who = f" sensor {sensor}" if sensor >= 0 else ""
        who += f" person {person}" if person >= 0 else ""
        lines.append(
            f"  {when}  {CommandKind(int(kind)).name:<16} {Reason(int(reason)).name:<28}{who}"
            + (f"  gap {gap_um / 1e6:.3f} m" if armed else "")
        )
    details = violation_details(cell, r.result)
    lines.append("events (ns from the run start):")
    lines += [f"  {key}: {value}" for key, value in details.items()]
    verdict = ", ".join(r.violations) if r.violations else "none"
    lines.append(f"violations: {verdict}")
    lines.append(f"stop without cause: {'yes' if r.without_cause else 'no'}")
    return lines


def walk_line(cell: PreparedCell, a: np.void) -> np.ndarray:
    """(start x, start y, unit direction x, y, length to the aim point, EDGE stand) of an approach."""
    line = np.zeros(6)
    resolve_line(cell.params[0], cell.facts[0], a, line)
    return line
