"""The cell's timing arithmetic, in one place: int64 nanoseconds, always rounded up.

Every duration the budget, the step's parameters, the link set-up, the simulator, the HIL rig and the
emulators derive from the configuration is computed here, so that they all agree to the nanosecond.
Rounding is always up: a budget term or a deadline that is one nanosecond too long is harmless, one
nanosecond too short promises what the hardware may not deliver.

Functions take plain numbers, or objects with the configuration's field names (`safety.config.Sensor`,
`Link`; see the protocols below). This module imports nothing else of the package, so any module may use
it without an import cycle.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Protocol

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
UART_BITS_PER_BYTE = 10  # UART 8N1: start bit, 8 data bits, stop bit


class SensorTiming(Protocol):
    """The timing fields of a sensor's configuration (`safety.config.Sensor`)."""

    @property
    def frame_rate_hz(self) -> float: ...
    @property
    def exposure_readout_ms(self) -> float: ...
    @property
    def inference_worst_ms(self) -> float: ...
    @property
    def transport_latency_ms(self) -> float: ...
    @property
    def tolerated_missed_frames(self) -> int: ...


class LinkTiming(Protocol):
    """The timing fields of the robot link's configuration (`safety.config.Link`)."""

    @property
    def baud(self) -> int: ...
    @property
    def command_frame_bytes(self) -> int: ...
    @property
    def receiver_cycle_ms(self) -> float: ...


def ns(ms: float) -> int:
    """Milliseconds from the configuration as int64 nanoseconds (rounded up: budgets never shrink)."""
    whole = int(ms * NS_PER_MS)
    return whole if whole >= ms * NS_PER_MS else whole + 1


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounded up (positive denominator)."""
    return -(-numerator // denominator)


# -- sensors ---------------------------------------------------------------------------------------------


def frame_period_ns(frame_rate_hz: float) -> int:
    """One frame period in ns, rounded up.

    Up, because the budget waits whole periods for a frame: a period rounded down would promise the next
    frame before a camera at that rate delivers it. Emulated cameras (rig, simulator, emulator) run on
    this same period, so they never deliver sooner than the budget assumes. Exact (rational) arithmetic:
    a float quotient could round down onto a whole nanosecond.
    """
    if not frame_rate_hz > 0.0:
        raise ValueError(f"frame_rate_hz: expected > 0, got {frame_rate_hz}")
    return math.ceil(NS_PER_S / Fraction(frame_rate_hz))


def frames_wait_ns(sensor: SensorTiming) -> int:
    """T_frames: frame period x (1 + tolerated missed frames), the longest wait for a frame that arrives."""
    return frame_period_ns(sensor.frame_rate_hz) * (1 + sensor.tolerated_missed_frames)


def inference_ns(sensor: SensorTiming, fraction: float = 1.0) -> int:
    """Inference time: the declared worst case, or a fraction of it (emulated sensors), rounded up."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"inference_fraction: expected 0..1, got {fraction}")
    worst = ns(sensor.inference_worst_ms)
    return min(worst, math.ceil(worst * fraction))  # the min: float noise must not exceed the worst case


def sent_latency_ns(sensor: SensorTiming, inference_fraction: float = 1.0) -> int:
    """Start of exposure -> metadata sent: exposure/readout + inference. Transport NOT included."""
    return ns(sensor.exposure_readout_ms) + inference_ns(sensor, inference_fraction)


def sensor_clock_error_ns(sensor: SensorTiming) -> int:
    """The most a sensor's converted timestamps may age a frame beyond its true age: the clock offset's
    error limit for a sensor with a clock of its own (`clock = "own"`), else 0."""
    if getattr(sensor, "clock", "shared") != "own":
        return 0
    limit = getattr(sensor, "clock_error_limit_ms", None)
    return 0 if limit is None else ns(limit)  # missing, the configuration check refuses the cell


def sensor_clock_sync_timeout_ns(sensor: SensorTiming) -> int:
    """How long a clock sync request may go unanswered: clock_sync_timeout_ms, else the sync period."""
    timeout = getattr(sensor, "clock_sync_timeout_ms", None) or sensor.clock_sync_period_ms  # type: ignore[attr-defined]
    return ns(timeout)


def sensor_latency_ns(sensor: SensorTiming) -> int:
    """Start of exposure -> metadata received, worst case: exposure/readout + worst inference + transport,
    plus the clock's error limit for a sensor on its own clock (its ages are measured that much older).

    The oldest a frame may be when it arrives (the step's per-frame latency supervision).
    """
    return sent_latency_ns(sensor) + ns(sensor.transport_latency_ms) + sensor_clock_error_ns(sensor)


def sensor_max_age_ns(sensor: SensorTiming) -> int:
    """The sensor's stage of T_r: `frames_wait_ns` + `sensor_latency_ns`.

    Also the oldest (now - start of exposure) the newest frame may be: older data breaks the budget.
    """
    return frames_wait_ns(sensor) + sensor_latency_ns(sensor)


def sensor_link_max_delay_ns(sensor: SensorTiming) -> int:
    """A sensor link frame older than its transport latency (plus the clock's error limit, for a sensor on
    its own clock) on arrival is late (at least 1 ns)."""
    return max(1, ns(sensor.transport_latency_ms) + sensor_clock_error_ns(sensor))


def sensor_link_watchdog_ns(sensor: SensorTiming) -> int:
    """Longest silence of a sensor link: the tolerated missed frames plus one period, plus transport."""
    return frames_wait_ns(sensor) + ns(sensor.transport_latency_ms)


# -- serial lines ----------------------------------------------------------------------------------------


def line_time_ns(n_bytes: int, baud: int, bits_per_byte: int = UART_BITS_PER_BYTE) -> int:
    """Time n_bytes occupy a serial line at `baud` (8N1: 10 bits a byte), rounded up.

    A pty ignores the baud rate; this is the floor a real line imposes.
    """
    if baud <= 0:
        raise ValueError(f"baud: expected > 0, got {baud}")
    return ceil_div(n_bytes * bits_per_byte * NS_PER_S, baud)


def min_baud(n_bytes: int, within_ns: int, bits_per_byte: int = UART_BITS_PER_BYTE) -> int:
    """The lowest baud rate at which n_bytes fit on the line within `within_ns`."""
    return ceil_div(n_bytes * bits_per_byte * NS_PER_S, within_ns)


def command_frame_ns(link: LinkTiming) -> int:
    """T_frame: the command frame's time on the robot link."""
    return line_time_ns(link.command_frame_bytes, link.baud)


def command_delivery_ns(link: LinkTiming) -> int:
    """T_frame + T_receiver: command written -> taken in by the robot, worst case (it polls its port)."""
    return command_frame_ns(link) + ns(link.receiver_cycle_ms)


# -- the controller --------------------------------------------------------------------------------------


def controller_wait_ns(cycle_period_ns: int, worst_step_ns: int, wake_on_data: bool) -> int:
    """T_cycle: input readable -> release of the cycle that takes it in (safety.budget explains why).

    On the tick: max(period, worst step), since a cycle late within its worst step skips the releases it
    overlapped. Waking on data: a step already in progress, at most the worst step.
    """
    return worst_step_ns if wake_on_data else max(cycle_period_ns, worst_step_ns)


def controller_stage_ns(cycle_period_ns: int, worst_step_ns: int, wake_on_data: bool = False) -> int:
    """T_cycle + T_step: input readable (or a fault seen) -> the command that reacts to it written."""
    return controller_wait_ns(cycle_period_ns, worst_step_ns, wake_on_data) + worst_step_ns


def command_gap_ns(cycle_period_ns: int, worst_step_ns: int, link: LinkTiming) -> int:
    """The longest normal gap between two commands at the robot: one cycle, a worst step, the delivery.

    The robot's command watchdog must be longer, or it stops the robot on normal jitter.
    """
    return cycle_period_ns + worst_step_ns + command_delivery_ns(link)


def robot_state_gap_ns(
    state_period_ns: int, state_frame_ns: int, cycle_period_ns: int, worst_step_ns: int
) -> int:
    """The longest normal gap between two robot states taken in: the robot's period, a state frame on the
    line, the controller's wait for its next cycle (max(period, worst step)).

    The controller's robot state timeout must be longer, or a robot that keeps its period stops the cell.
    """
    return state_period_ns + state_frame_ns + max(cycle_period_ns, worst_step_ns)


def robot_obey_ns(
    worst_step_ns: int, stop_input_reaction_ns: int, max_delay_ns: int, link: LinkTiming
) -> int:
    """Time an obeying robot may take, besides its stopping time, before a report shows a lower limit kept.

    The command is written (a worst step), reaches the robot (accepted up to the link's max delay; at
    least its line time + the robot's receive cycle), the robot reacts (its stop input reaction), and the
    report saying so comes back (accepted up to the max delay). The overspeed grace adds the stopping time.
    """
    delivery = max(max_delay_ns, command_delivery_ns(link))
    return worst_step_ns + delivery + stop_input_reaction_ns + max_delay_ns


# -- the robot link on the robot's own clock (age by echo) -----------------------------------------------


def robot_echo_max_age_ns(
    cycle_period_ns: int, worst_step_ns: int, max_delay_ns: int, link: LinkTiming
) -> int:
    """The oldest a ROBOT_STATE may be on arrival, measured from the command it echoes (own robot clock).

    The robot echoes its newest accepted command, so a state is answered by a command stamped at most one
    gap earlier (a cycle and a worst step), delivered to the robot (accepted up to the link's max delay;
    at least its line time + the robot's receive cycle) and, once answered, back within the max delay.
    """
    delivery = max(max_delay_ns, command_delivery_ns(link))
    return cycle_period_ns + worst_step_ns + delivery + max_delay_ns


def robot_echo_stale_ns(echo_max_age_ns: int, cycle_period_ns: int, worst_step_ns: int) -> int:
    """The oldest the newest robot state's echo may be at a step: its age on arrival, then the wait for
    the next cycle (max(period, worst step): robot states do not wake a data step)."""
    return echo_max_age_ns + max(cycle_period_ns, worst_step_ns)


def robot_echo_ring_entries(
    window_ns: int, cycle_period_ns: int, worst_step_ns: int, data_periods_ns: list[int]
) -> int:
    """Send times the controller keeps for echo ageing: twice the commands it can write within `window_ns`.

    Commands are stamped up to a worst step after their release: one per release of the cycle in the
    window widened by a worst step, one per sensor frame taken in (data steps, `data_periods_ns`; empty
    when the loop does not wake on data) plus one bunched frame each, and a reset step. Doubled, so that
    jitter beyond the declared times cannot push a still acceptable echo out of the ring.
    """
    span = window_ns + worst_step_ns
    commands = ceil_div(span, cycle_period_ns) + 1 + 1
    for period in data_periods_ns:
        commands += ceil_div(span, period) + 2
    return 2 * commands
