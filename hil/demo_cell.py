"""The demo's scripted cell: who walks where and when, what the operator does, and the status line.

The people walk along a lane across the default cell, between the camera and the robot, close enough to
stop it; the operator (the demo itself) looks at the scene's ground truth, not at the detector, and
presses the reset input when the robot stands still in an empty cell. Everything here is data and pure
functions; hil.demo_camera renders the scene and hil.demo runs the processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cobotguard.safety.reasons import CommandKind, Reason

NS_PER_S = 1_000_000_000

# The person: the photo the int8 detector finds at every position of the default cell's walkway (the
# cameraman and the astronaut flicker in and out at some positions with int8; see the sensor tests).
PEOPLE = ("grace_hopper",)
LANE_X_M = -1.2  # the walkway across the cell, between the camera and the robot
ENTER_Y_M = 2.9  # where a person steps into the picture (beside the warning zone)
CLOSEST_Y_M = 0.9  # how close to the robot they walk (outside the hazard region)
LEAVE_Y_M = 3.4  # out of the picture again
WALK_SPEED_MPS = 1.2
DWELL_NS = 800_000_000
LEAD_IN_NS = 2_500_000_000  # empty cell first: the operator resets the armed controller, the robot starts
AFTER_CLEAR_NS = 1_500_000_000  # robot runs again before the next person comes


@dataclass(frozen=True)
class Visit:
    """One person walking in from one side, stopping close to the robot, and leaving."""

    person: str
    side: int  # +1: from +y, -1: from -y
    t_appear_ns: int

    def waypoints(self) -> list[tuple[int, float, float]]:
        """(t_ns, x_m, y_m) of the walk in, the dwell and the walk out (scene time)."""
        t_in = int((ENTER_Y_M - CLOSEST_Y_M) / WALK_SPEED_MPS * NS_PER_S)
        t_out = int((LEAVE_Y_M - CLOSEST_Y_M) / WALK_SPEED_MPS * NS_PER_S)
        t0 = self.t_appear_ns
        s = self.side
        return [
            (t0, LANE_X_M, s * ENTER_Y_M),
            (t0 + t_in, LANE_X_M, s * CLOSEST_Y_M),
            (t0 + t_in + DWELL_NS, LANE_X_M, s * CLOSEST_Y_M),
            (t0 + t_in + DWELL_NS + t_out, LANE_X_M, s * LEAVE_Y_M),
        ]

    @property
    def t_gone_ns(self) -> int:
        """When the person has left the picture."""
        return self.waypoints()[-1][0]


def plan_visits(duration_ns: int) -> list[Visit]:
    """People taking turns, from alternating sides, as many as fit into the duration (at least one)."""
    visits: list[Visit] = []
    t = LEAD_IN_NS
    while True:
        visit = Visit(PEOPLE[len(visits) % len(PEOPLE)], 1 if len(visits) % 2 == 0 else -1, t)
        if visits and visit.t_gone_ns > duration_ns:
            break
        visits.append(visit)
        t = visit.t_gone_ns + AFTER_CLEAR_NS
    return visits


CLEAR_MARGIN_NS = 300_000_000  # the operator waits this long after someone left before calling it clear
RESET_AFTER_NS = 400_000_000  # the operator presses reset when a clear cell has waited this long
FAULT_RESET_AFTER_NS = 800_000_000  # ... or this long after a fault (time to read the status line)


def cell_clear(visits: list[Visit], t_scene_ns: int) -> bool:
    """Whether nobody is in the picture at scene time t (what the operator sees)."""
    return not any(v.t_appear_ns <= t_scene_ns <= v.t_gone_ns + CLEAR_MARGIN_NS for v in visits)


def reset_delay_ns(reason: int) -> int:
    """How long the operator lets a stopped, clear cell wait before pressing reset."""
    return RESET_AFTER_NS if reason in WAITING_REASONS else FAULT_RESET_AFTER_NS


# ---- what the status line shows ----

ROBOT_FIELDS = ("speed_mps", "at_rest", "command_kind", "command_reason", "stop_reason", "commands", "seq")


@dataclass
class Status:
    """One snapshot for the live status line."""

    t_s: float
    robot_kind: int  # CommandKind the robot is executing (last command received)
    robot_speed_mps: float
    at_rest: bool
    nearest_m: float | None  # nearest person's distance to the hazard region (Z_d subtracted)
    s_p_m: float  # ISO/TS 15066 S_p at the robot's current speed
    last_stop_reason: int  # Reason of the last stop command; 0 = none yet
    frames: int
    resets: int


WAITING_REASONS = (Reason.NONE, Reason.NOT_ARMED, Reason.RESTART_INTERLOCK)


def last_stop_reason(previous: int, kind: int, reason: int) -> int:
    """The reason to show as "last stop" after a command: a stop's own cause, not the wait for a reset."""
    if kind >= CommandKind.PROTECTIVE_STOP and reason not in WAITING_REASONS:
        return reason
    return previous


def format_status(s: Status) -> str:
    """The status line: time, robot state and speed, nearest person against S_p, last stop reason."""
    kind = CommandKind(s.robot_kind).name if s.robot_kind in CommandKind._value2member_map_ else "?"
    rest = " at rest" if s.at_rest else ""
    if s.nearest_m is None:
        person = "nobody seen"
    else:
        mark = "<" if s.nearest_m < s.s_p_m else ">="
        person = f"nearest person {s.nearest_m:5.2f} m {mark} S_p {s.s_p_m:4.2f} m"
    reason = Reason(s.last_stop_reason).name if s.last_stop_reason in Reason._value2member_map_ else "?"
    stop = f"last stop: {reason}" if s.last_stop_reason else "no stop yet"
    return (
        f"t={s.t_s:5.1f}s  robot {kind:<15s} {s.robot_speed_mps:4.2f} m/s{rest:<8s}  {person}  "
        f"{stop}  frames {s.frames}  resets {s.resets}"
    )
