"""The checked latency budget: reaction time, ISO/TS 15066 separation, ISO 13855 zone distances, verdict.

Everything here runs at configuration time (never in the loop). Times are int64 nanoseconds; each
stage's number comes from `safety.timing` (rounded up), which the step's parameters, the link set-up and
the rig use too. The arithmetic and the standards are explained in docs/budget.md.

- T_r (reaction time) = worst sensor stage + controller stage + link stage + robot stop input, where
  sensor = frame period x (1 + tolerated missed frames) + exposure/readout + inference + transport
  (+ the clock offset's error limit for a sensor on a clock of its own),
  controller = wait + worst-case step, link = command frame bits / baud + receiver cycle; the wait is
  max(cycle period, worst step) on the tick, the worst step with controller.wake_on_data.
- ISO/TS 15066: S_p = S_h + S_r + S_s + C + Z_d + Z_r with S_h = v_h (T_r + T_s), S_r = v_r T_r.
- ISO 13855 for static protective zones: S = K T + C (+ Z_d + Z_r), T = T_r + T_s.
- Human speed per ISO 13855: K = 2.0 m/s; where that gives more than 0.5 m, K = 1.6 m/s with at least
  0.5 m.
- Held persons (controller.person_hold_ms): no term of T_r or S_p; `hold_terms` states the hold and the
  growth of a held person's Z_d (availability).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import shapely

from cobotguard.safety import timing
from cobotguard.safety.config import CellConfig, Sensor
from cobotguard.safety.config_rules import covered_area
from cobotguard.safety.stopping import stopping_at, stopping_rows
from cobotguard.safety.timing import NS_PER_S, ns

HUMAN_SPEED_MPS = 1.6  # ISO 13855 K beyond 0.5 m
HUMAN_SPEED_NEAR_MPS = 2.0  # ISO 13855 K within 0.5 m
NEAR_LIMIT_M = 0.5  # ISO 13855: the distance at which K switches, and the minimum with K = 1.6
SPEED_RESOLUTION_MPS = 1e-4  # bisection stops when the bracket is this narrow


@dataclass(frozen=True)
class Term:
    """One line of the budget: a named quantity, its value, its unit and where it came from."""

    symbol: str
    description: str
    value: float
    unit: str  # "ms", "m", "m/s", "s"
    source: str  # configuration key paths, a standard, or the formula


@dataclass(frozen=True)
class ZoneMargin:
    """A zone's distance from the hazard region against what it needs."""

    name: str
    type: str  # "warning" or "protective"
    distance_m: float | None  # shortest way from outside the zone to the hazard region
    required_m: float | None  # ISO 13855 S (protective zones)
    margin_m: float | None  # distance - required; None for warning zones (not credited)
    note: str = ""


@dataclass(frozen=True)
class BudgetReport:
    """The whole budget of a configuration, as `cobotguard check` shows it."""

    terms: tuple[Term, ...]
    reaction_time_ns: int
    stop_time_ns: int  # T_s at the robot's maximum speed
    stop_distance_m: float  # S_s at the robot's maximum speed
    human_speed_mps: float  # K used for S_p
    protective_separation_m: float  # S_p at the robot's maximum speed
    zone_separation_m: float  # ISO 13855 S for static protective zones at the maximum speed
    zones: tuple[ZoneMargin, ...]
    coverage_margin_m: float | None  # separation monitoring: sensed reach beyond the hazard - S_p
    max_speed_mps: float
    max_safe_robot_speed_mps: float
    verdict: str  # "safe" or "unsafe"
    reasons: tuple[str, ...] = field(default=())

    @property
    def safe(self) -> bool:
        """True when every checked margin is >= 0 at the robot's maximum speed."""
        return self.verdict == "safe"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the keys `cobotguard check --json` prints)."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "reaction_time_s": self.reaction_time_ns / NS_PER_S,
            "reaction_time_ns": self.reaction_time_ns,
            "stop_time_s": self.stop_time_ns / NS_PER_S,
            "stop_distance_m": self.stop_distance_m,
            "human_speed_mps": self.human_speed_mps,
            "protective_separation_m": self.protective_separation_m,
            "zone_separation_m": self.zone_separation_m,
            "coverage_margin_m": self.coverage_margin_m,
            "max_speed_mps": self.max_speed_mps,
            "max_safe_robot_speed_mps": self.max_safe_robot_speed_mps,
            "zones": [asdict(z) for z in self.zones],
            "terms": [asdict(t) for t in self.terms],
        }


# -- reaction time ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One worst-case stage of the reaction time."""

    symbol: str
    description: str
    ns: int
    source: str


def sensor_stage_parts(name: str, s: Sensor) -> list[Stage]:
    """One sensor's stages: waiting for the frames it may miss, exposure/readout, inference, transport."""
    key = f"sensors.{name}"
    return [
        Stage(
            f"T_frames[{name}]",
            f"frame period x (1 + {s.tolerated_missed_frames} tolerated missed)",
            timing.frames_wait_ns(s),
            f"{key}.frame_rate_hz, {key}.tolerated_missed_frames",
        ),
        Stage(f"T_exposure[{name}]", "exposure + readout", ns(s.exposure_readout_ms),
              f"{key}.exposure_readout_ms"),
        Stage(f"T_inference[{name}]", "worst-case inference", timing.inference_ns(s),
              f"{key}.inference_worst_ms"),
        Stage(f"T_transport[{name}]", "metadata transport", ns(s.transport_latency_ms),
              f"{key}.transport_latency_ms"),
    ] + ([Stage(f"T_clock[{name}]", "error bound of the sensor clock's offset",
                timing.sensor_clock_error_ns(s), f"{key}.clock_error_limit_ms")]
         if s.clock == "own" else [])  # fmt: skip


def sensor_stages(cfg: CellConfig) -> dict[str, list[Stage]]:
    """Per sensor (in configuration order): its stages, see `sensor_stage_parts`."""
    return {name: sensor_stage_parts(name, s) for name, s in cfg.sensors.items()}


def worst_sensor(cfg: CellConfig) -> tuple[str, int]:
    """The sensor with the longest stage and that stage in ns (a person may be seen by it alone)."""
    totals = {name: timing.sensor_max_age_ns(s) for name, s in cfg.sensors.items()}
    name = max(totals, key=lambda n: totals[n])
    return name, totals[name]


def controller_wait_stage(cfg: CellConfig) -> Stage:
    """T_cycle: how long a frame may wait from its arrival to the release of the cycle that takes it in.

    Tick (controller.wake_on_data false): the frame arrived after the cycle released at r read its
    inputs. The next cycle that runs is released at r + period or, when the cycle released at r wrote its
    command later than that (within its worst step, which may exceed the period), at the latest release
    before that write (safety.executor): at most max(period, worst step) after r. Wake on data: the frame
    is stepped as soon as it is readable, after at most a step already in progress (a worst step).
    """
    period_ns = ns(cfg.controller.cycle_period_ms)
    worst_ns = ns(cfg.controller.worst_step_ms)
    wait_ns = timing.controller_wait_ns(period_ns, worst_ns, cfg.controller.wake_on_data)
    if cfg.controller.wake_on_data:
        return Stage(
            "T_cycle",
            "a step in progress when the frame became readable (wake on data: no wait for the tick)",
            wait_ns,
            "controller.worst_step_ms, controller.wake_on_data",
        )
    if worst_ns <= period_ns:
        return Stage(
            "T_cycle",
            "controller cycle (data waits for the next release)",
            wait_ns,
            "controller.cycle_period_ms",
        )
    return Stage(
        "T_cycle",
        "controller cycle (data waits for the next release that runs: a cycle late within the worst step, "
        "longer than the cycle, skips the releases it overlapped)",
        wait_ns,
        "controller.cycle_period_ms, controller.worst_step_ms",
    )


def reaction_stages(cfg: CellConfig) -> list[Stage]:
    """The stages summed into T_r after the worst sensor: controller, link, robot stop input."""
    name, sensor_ns = worst_sensor(cfg)
    return [
        Stage("T_sensor", f"worst sensor stage ({name})", sensor_ns, f"sensors.{name}.*"),
        controller_wait_stage(cfg),
        Stage("T_step", "worst-case step until the command is written", ns(cfg.controller.worst_step_ms),
              "controller.worst_step_ms"),
        Stage("T_frame", f"command frame on the line ({cfg.link.command_frame_bytes} B x "
              f"{timing.UART_BITS_PER_BYTE} bit / {cfg.link.baud} baud)", timing.command_frame_ns(cfg.link),
              "link.command_frame_bytes, link.baud"),
        Stage("T_receiver", "robot polls its port", ns(cfg.link.receiver_cycle_ms), "link.receiver_cycle_ms"),
        *echo_stages(cfg),
        Stage("T_stop_input", "robot stop input -> braking starts", ns(cfg.robot.stop_input_reaction_ms),
              "robot.stop_input_reaction_ms"),
    ]  # fmt: skip


def echo_stages(cfg: CellConfig) -> list[Stage]:
    """With the robot on its own clock (robot.clock = "own"), T_echo: the robot cannot time a command,
    and the controller's echo check lets a command's delivery pass up to the whole echo limit (cycle, worst
    step, both link delays), so T_r counts that limit beyond T_frame + T_receiver. None on one clock."""
    if cfg.robot.clock != "own":
        return []
    period_ns, worst_ns = ns(cfg.controller.cycle_period_ms), ns(cfg.controller.worst_step_ms)
    echo_ns = timing.robot_echo_max_age_ns(period_ns, worst_ns, ns(cfg.link.max_delay_ms), cfg.link)
    counted = timing.command_delivery_ns(cfg.link)
    return [
        Stage("T_echo", "robot on its own clock: a command may arrive as late as the echo limit lets pass "
              "(beyond T_frame + T_receiver)", max(0, echo_ns - counted),
              "controller.cycle_period_ms + controller.worst_step_ms + max(link.max_delay_ms, T_frame + "
              "T_receiver) + link.max_delay_ms - T_frame - T_receiver"),
    ]  # fmt: skip


def reaction_time_ns(cfg: CellConfig) -> int:
    """T_r: the sum of the worst-case stages, in ns."""
    return sum(stage.ns for stage in reaction_stages(cfg))


def link_loss_reaction_ns(cfg: CellConfig) -> int:
    """Reaction when the link fails right after the last good command: the robot's watchdog stops it."""
    by_symbol = {stage.symbol: stage.ns for stage in reaction_stages(cfg)}
    return (
        reaction_time_ns(cfg)
        - by_symbol["T_frame"]
        - by_symbol["T_receiver"]
        + ns(cfg.link.command_watchdog_ms)
    )


def robot_silence_reaction_ns(cfg: CellConfig) -> int:
    """Reaction when the robot's states stop: the staleness limit (robot.state_period_ms plus its tolerance,
    controller.robot_state_timeout_ms), the next cycle on the tick (robot states do not wake a data step),
    its worst step, then the stop's way to the brakes as in T_r."""
    by_symbol = {stage.symbol: stage.ns for stage in reaction_stages(cfg)}
    period_ns, worst_ns = ns(cfg.controller.cycle_period_ms), ns(cfg.controller.worst_step_ms)
    return (
        ns(cfg.controller.robot_state_timeout_ms)
        + max(period_ns, worst_ns)
        + worst_ns
        + by_symbol["T_frame"]
        + by_symbol["T_receiver"]
        + by_symbol["T_stop_input"]
    )


# -- stopping --------------------------------------------------------------------------------------------


# -- distances -------------------------------------------------------------------------------------------


def iso13855_distance_m(time_ns: int, constant_m: float) -> tuple[float, float]:
    """(K, S) for S = K T + constant: K = 2.0 m/s; if S > 0.5 m, K = 1.6 m/s and S >= 0.5 m."""
    t = time_ns / NS_PER_S
    near = HUMAN_SPEED_NEAR_MPS * t + constant_m
    if near <= NEAR_LIMIT_M:
        return HUMAN_SPEED_NEAR_MPS, near
    return HUMAN_SPEED_MPS, max(HUMAN_SPEED_MPS * t + constant_m, NEAR_LIMIT_M)


def sensor_uncertainty_m(cfg: CellConfig) -> float:
    """Z_d: the largest declared position uncertainty among the sensors."""
    return max(s.position_uncertainty_m for s in cfg.sensors.values())


def separation_required_m(
    cfg: CellConfig,
    robot_speed_mps: float,
    *,
    reaction_ns: int | None = None,
    z_d_m: float | None = None,
) -> float:
    """ISO/TS 15066 S_p at a robot speed: v_h (T_r + T_s) + v_r T_r + S_s + C + Z_d + Z_r.

    v_h follows ISO 13855 (2.0 m/s, or 1.6 m/s where S_p > 0.5 m). `reaction_ns` and `z_d_m` default
    to the configuration's T_r and worst declared Z_d; the controller may pass a detection's own Z_d.
    """
    t_r = reaction_time_ns(cfg) if reaction_ns is None else reaction_ns
    z_d = sensor_uncertainty_m(cfg) if z_d_m is None else z_d_m
    t_s, s_s = stopping_at(cfg.robot, robot_speed_mps)
    rest = (
        robot_speed_mps * t_r / NS_PER_S
        + s_s
        + cfg.separation.intrusion_distance_m
        + z_d
        + cfg.robot.position_uncertainty_m
    )
    return iso13855_distance_m(t_r + t_s, rest)[1]


def zone_required_m(cfg: CellConfig, robot_speed_mps: float, *, reaction_ns: int | None = None) -> float:
    """ISO 13855 S = K (T_r + T_s) + C, plus Z_d + Z_r, for a static protective zone."""
    t_r = reaction_time_ns(cfg) if reaction_ns is None else reaction_ns
    t_s, _ = stopping_at(cfg.robot, robot_speed_mps)
    _, s = iso13855_distance_m(t_r + t_s, cfg.separation.intrusion_distance_m)
    return s + sensor_uncertainty_m(cfg) + cfg.robot.position_uncertainty_m


def distance_to_outside_m(area: Any, hazard: Any) -> float:
    """Shortest distance from the hazard region to any point outside `area` (0 if it is not inside)."""
    if area.is_empty or not area.contains(hazard):
        return 0.0
    return float(hazard.distance(area.boundary))


def zone_distances_m(cfg: CellConfig) -> dict[str, float]:
    """Per zone: the shortest way from outside it to the hazard region."""
    hazard = shapely.Polygon(cfg.robot.hazard_polygon_m)
    return {
        name: distance_to_outside_m(shapely.Polygon(z.polygon_m), hazard) for name, z in cfg.zones.items()
    }


def sensed_reach_m(cfg: CellConfig) -> float:
    """How far around the hazard region the sensors see the smallest person without a gap."""
    seen = shapely.union_all([covered_area(s) for s in cfg.sensors.values()])
    return distance_to_outside_m(seen, shapely.Polygon(cfg.robot.hazard_polygon_m))


# -- evaluation ------------------------------------------------------------------------------------------


def _margins(
    cfg: CellConfig, speed: float, t_r: int, distances: dict[str, float], reach: float | None
) -> list[float]:
    """Every checked margin at a robot speed (protective zones, then separation coverage)."""
    required = zone_required_m(cfg, speed, reaction_ns=t_r)
    out = [distances[name] - required for name, z in cfg.zones.items() if z.type == "protective"]
    if cfg.separation.enabled and reach is not None:
        out.append(reach - separation_required_m(cfg, speed, reaction_ns=t_r))
    return out


def max_safe_speed_mps(cfg: CellConfig) -> float:
    """The highest robot speed (<= max_speed_mps) at which every checked margin is >= 0; 0 if none."""
    t_r = reaction_time_ns(cfg)
    distances = zone_distances_m(cfg)
    reach = sensed_reach_m(cfg) if cfg.separation.enabled else None
    return _max_safe_speed(cfg, t_r, distances, reach)


def _max_safe_speed(cfg: CellConfig, t_r: int, distances: dict[str, float], reach: float | None) -> float:
    def safe(v: float) -> bool:
        return all(m >= 0.0 for m in _margins(cfg, v, t_r, distances, reach))

    low, high = 0.0, cfg.robot.max_speed_mps
    if safe(high):
        return high
    if not safe(low):
        return 0.0
    while high - low > SPEED_RESOLUTION_MPS:  # every margin falls with speed: bisection is exact
        mid = 0.5 * (low + high)
        low, high = (mid, high) if safe(mid) else (low, mid)
    # The stopping data is a step function of speed, so the edge is often a table row: land on it exactly.
    rows = [r.speed_mps for r in stopping_rows(cfg.robot) if low < r.speed_mps < high and safe(r.speed_mps)]
    return max(rows, default=low)


def hold_terms(cfg: CellConfig) -> list[Term]:
    """Held persons (controller.person_hold_ms > 0): the hold and the growth of Z_d by its end.

    Not in T_r or S_p: a held person only adds stops and slows. Its Z_d grows by up to Z_hold, so a
    person missed near a zone or the S_p boundary stops or slows the robot up to Z_hold earlier, and
    keeps it stopped up to the hold longer than a seen one (the availability cost, docs/budget.md).
    """
    hold_ms = cfg.controller.person_hold_ms
    if hold_ms <= 0.0:
        return []
    hold_ns = ns(hold_ms)
    return [
        Term("T_hold", "a person missed by a frame is held this long after the exposure that last saw it",
             hold_ns / 1e6, "ms", "controller.person_hold_ms"),
        Term("Z_hold", "growth of a held person's Z_d by the end of its hold (availability: stops and "
             "slows earlier, releases later; not in S_p)", HUMAN_SPEED_MPS * hold_ns / NS_PER_S, "m",
             "ISO 13855 1.6 m/s x T_hold"),
    ]  # fmt: skip


def evaluate(cfg: CellConfig) -> BudgetReport:
    """The full budget of a validated configuration."""
    robot, sep = cfg.robot, cfg.separation
    v_max = robot.max_speed_mps
    t_r = reaction_time_ns(cfg)
    t_s, s_s = stopping_at(robot, v_max)
    z_d = sensor_uncertainty_m(cfg)
    z_r = robot.position_uncertainty_m
    rest = v_max * t_r / NS_PER_S + s_s + sep.intrusion_distance_m + z_d + z_r
    k, s_p = iso13855_distance_m(t_r + t_s, rest)
    s_zone = zone_required_m(cfg, v_max, reaction_ns=t_r)
    distances = zone_distances_m(cfg)
    reach = sensed_reach_m(cfg) if sep.enabled else None

    terms: list[Term] = []
    for stages in sensor_stages(cfg).values():
        terms += [Term(st.symbol, st.description, st.ns / 1e6, "ms", st.source) for st in stages]
    for stage in reaction_stages(cfg):
        terms.append(Term(stage.symbol, stage.description, stage.ns / 1e6, "ms", stage.source))
    terms += [
        Term("T_r", "reaction time (sum of the stages above from T_sensor)", t_r / 1e6, "ms", "sum"),
        Term("T_link_loss", "reaction if the link dies just when the stop is due (robot watchdog instead "
             "of T_frame + T_receiver; information, not in T_r)", link_loss_reaction_ns(cfg) / 1e6, "ms",
             "T_r - T_frame - T_receiver + link.command_watchdog_ms"),
        Term("T_robot_silent", "reaction if the robot's states stop (robot.state_period_ms plus its "
             "tolerance runs out, the next tick, then the stop's way as in T_r; information, not in T_r)",
             robot_silence_reaction_ns(cfg) / 1e6, "ms", "controller.robot_state_timeout_ms + max(cycle, "
             "worst step) + T_step + T_frame + T_receiver + T_stop_input"),
        Term("v_r", "robot speed (maximum)", v_max, "m/s", "robot.max_speed_mps"),
        Term("T_s", "robot stopping time at v_r", t_s / 1e6, "ms",
             f"robot.stopping (payload {stopping_rows(robot)[0].payload_kg} kg, next row at or above v_r)"),
        Term("v_h", "human speed", k, "m/s", "ISO 13855: 2.0 m/s, 1.6 m/s beyond 0.5 m"),
        Term("S_h", "human travel v_h (T_r + T_s)", k * (t_r + t_s) / NS_PER_S, "m", "formula"),
        Term("S_r", "robot travel v_r T_r", v_max * t_r / NS_PER_S, "m", "formula"),
        Term("S_s", "robot stopping distance at v_r", s_s, "m", "robot.stopping"),
        Term("C", "intrusion distance (reach)", sep.intrusion_distance_m, "m",
             "separation.intrusion_distance_m"),
        Term("Z_d", "sensor position uncertainty (worst sensor)", z_d, "m",
             "sensors.*.position_uncertainty_m"),
        Term("Z_r", "robot position uncertainty", z_r, "m", "robot.position_uncertainty_m"),
        Term("S_p", "ISO/TS 15066 protective separation", s_p, "m", "S_h + S_r + S_s + C + Z_d + Z_r"),
        Term("S", "ISO 13855 distance for static protective zones", s_zone, "m",
             "K (T_r + T_s) + C + Z_d + Z_r"),
    ]  # fmt: skip
    terms += hold_terms(cfg)

    zones: list[ZoneMargin] = []
    reasons: list[str] = []
    for name, zone in cfg.zones.items():
        d = distances[name]
        if zone.type == "warning":
            zones.append(ZoneMargin(name, "warning", d, None, None, "slows the robot; not credited"))
            continue
        margin = d - s_zone
        note = "" if d > 0.0 else "does not enclose the hazard region"
        zones.append(ZoneMargin(name, "protective", d, s_zone, margin, note))
        if margin < 0.0:
            reasons.append(
                f"zone {name}: {d:.3f} m from the hazard region, needs {s_zone:.3f} m "
                f"(short by {-margin:.3f} m{'; ' + note if note else ''})"
            )
    coverage_margin = None
    if reach is not None:
        coverage_margin = reach - s_p
        if coverage_margin < 0.0:
            reasons.append(
                f"separation monitoring: sensors see {reach:.3f} m around the hazard region, S_p needs "
                f"{s_p:.3f} m (short by {-coverage_margin:.3f} m)"
            )
        terms.append(Term("R_seen", "sensed reach around the hazard region", reach, "m",
                          "sensors.* geometry and detection capability"))  # fmt: skip
    v_safe = _max_safe_speed(cfg, t_r, distances, reach)
    if reasons:
        reasons.append(f"highest safe robot speed with these zones: {v_safe:.4f} m/s (max {v_max} m/s)")
    return BudgetReport(
        terms=tuple(terms),
        reaction_time_ns=t_r,
        stop_time_ns=t_s,
        stop_distance_m=s_s,
        human_speed_mps=k,
        protective_separation_m=s_p,
        zone_separation_m=s_zone,
        zones=tuple(zones),
        coverage_margin_m=coverage_margin,
        max_speed_mps=v_max,
        max_safe_robot_speed_mps=v_safe,
        verdict="unsafe" if reasons else "safe",
        reasons=tuple(reasons),
    )
