"""The demo: the whole chain on the embedded default cell, in one command, with no hardware.

    synthetic camera (real photos of people walking into the cell)
      -> the real person detector -> detection metadata ──pty──> the safety controller (compiled loop)
      -> command frames ──pty──> the robot emulator -> robot state ──pty──> the controller
      every stage timestamped -> trace -> timing report

Why four processes. The machines this runs on have two cores and Python has one interpreter lock per
process. A thread that needs the lock waits while another thread holds it, and a thread holding it can be
preempted by any other load on the machine: a real-time thread sharing an interpreter with busy ordinary
threads inherits their scheduling (priority inversion). So each part with a deadline gets its own
interpreter:

* the **controller** runs alone in its own process (spawned: a fresh interpreter, no threads or locks
  inherited from the caller, which may be a test session with thread pools running), on the real serial
  link over two pty pairs. Its hard loop is compiled and holds no interpreter lock (safety.cycle); it runs
  at SCHED_FIFO where permitted, pinned to a CPU of its own (the last one), and wakes when a detection
  frame arrives. Everything else in every process (its trace drain, the robot, camera and detector) is
  kept off that CPU (`safety.realtime.split_cpus`), nothing else spins, and only the robot emulator is
  real-time there (below);
* the **robot emulator** (hil.robot) runs in its own process too: the controller stops the cell when
  robot state is older than its timeout, so the robot must not queue behind anything else;
* the **camera** renders the synthetic cell in its own process into shared memory, ahead of exposure (a
  real camera has its image at readout; rendering is not the sensor's latency);
* the **main process** is the sensor and the operator: the sensor emulator with the detector in a thread
  of ordinary priority (see SENSOR_NICE for why not real-time), publishing metadata on the sensor link;
  the operator pressing the reset input when the robot stands still in an empty cell (judged from the
  scene's ground truth); the live status line.

The detector runs the int8 backbone on one thread: on two cores that leaves a core for the controller and
the robot, and it is about twice as fast as fp32 here. Everything the controller did is in its trace; at
the end the trace goes through the same timing report as `cobotguard report`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cobotguard.hil.demo_cell import (
    NS_PER_S,
    ROBOT_FIELDS,
    Status,
    cell_clear,
    format_status,
    last_stop_reason,
    plan_visits,
    reset_delay_ns,
)
from cobotguard.safety.realtime import keep_off_cpu, split_cpus
from cobotguard.safety.reasons import CommandKind, Reason

__all__ = ["DemoError", "DemoOptions", "DemoResult", "Status", "format_status", "run_demo"]

DEFAULT_CONFIG = Path(__file__).resolve().parent / "defaults" / "cell.toml"
DEFAULT_OUT_DIR = Path("cobotguard-demo")
# The demo runs the int8 SSDLite on one thread, whatever model the cell declares: one thread leaves the
# other core to the controller on a 2-core host, and the default cell's yolox_nano cost the demo its
# deadlines there (bench/bench_demo_models.py, docs/sensor.md). DemoOptions(detector_model=None) runs the
# sensor's own `model` instead.
DEMO_DETECTOR_MODEL = "int8"
TRACE_NAME = "controller.cgtrace"


@dataclass
class DemoOptions:
    """What `cobotguard demo` was asked for."""

    duration_s: float = 20.0
    out_dir: Path = DEFAULT_OUT_DIR
    plots: bool = True
    config: Path = DEFAULT_CONFIG
    detector_model: str | None = DEMO_DETECTOR_MODEL  # None: the sensor's `model` key (int8 if it has none)
    detector_threads: int = 1


@dataclass
class DemoResult:
    """What the demo produced: the trace, the report files, the analysed report, and counters."""

    trace_path: Path
    report_files: list[Path]
    results: list[Any]  # hil.report.analysis.TraceResult, one
    frames_published: int
    resets: int
    controller_stats: dict[str, Any] = field(default_factory=dict)
    link_errors: list[str] = field(default_factory=list)  # each link error the controller latched, first 20
    warnings: list[str] = field(default_factory=list)

    @property
    def deadline_held(self) -> bool:
        """True when every deadline of the run held."""
        return all(r.deadline_held for r in self.results)


class DemoError(RuntimeError):
    """The demo could not run (a missing piece, a process that failed); the message says which."""


# ---- the processes ----


class _Shared:
    """Numbers the robot process publishes for the status line and the operator (lock-free shared memory)."""

    def __init__(self, ctx: Any) -> None:
        self.robot = ctx.RawArray("d", len(ROBOT_FIELDS))  # see ROBOT_FIELDS
        self.reset = ctx.RawValue("i", 0)  # the controller's reset input level
        self.stop_controller = ctx.Event()
        self.stop_robot = ctx.Event()
        self.controller_ready = ctx.Event()
        self.results = ctx.SimpleQueue()  # (who, dict) from the children

    def robot_value(self, name: str) -> float:
        """One field of the robot's published numbers."""
        return float(self.robot[ROBOT_FIELDS.index(name)])


def _controller_process(
    cfg: Any, trace_path: str, sensor_path: str, robot_paths: Any, shared: _Shared
) -> None:
    """Child process: open the link ports, arm the compiled loop (compiles it), run until told to stop.

    The loop thread runs at SCHED_FIFO on a CPU of its own; this process's other threads (supervision,
    trace drain) stay on the other CPUs at normal priority.
    """
    code = 0
    info: dict[str, Any] = {}
    try:
        from cobotguard.safety.compiled_controller import CompiledController
        from cobotguard.safety.link_ports import open_port_descriptors
        from cobotguard.safety.reasons import Reason

        loop_cpu, _ = split_cpus()
        if loop_cpu is not None:
            keep_off_cpu(loop_cpu)  # supervision and trace drain: off the loop's CPU
        robot_path = robot_paths.get(timeout=PORT_TIMEOUT_S)
        ports = open_port_descriptors(cfg, robot_path, [sensor_path])
        link_names = ["robot", *cfg.sensors]
        link_errors: list[str] = []
        noted: list[int] = [0] * len(link_names)
        try:
            controller = CompiledController(
                cfg,
                ports.robot_fd,
                ports.sensor_fds,
                trace_path=trace_path,
                cpu=loop_cpu,
                producer="cobotguard demo controller",
            )
            controller.arm()
            ready = [False]

            def supervise() -> bool:
                controller.set_reset(shared.reset.value != 0)
                for k, name in enumerate(link_names):  # name each link error as it latches
                    reason = int(controller.receivers[k]["error_reason"])
                    if reason != noted[k]:
                        noted[k] = reason
                        if reason and len(link_errors) < MAX_LINK_ERRORS_NOTED:
                            link_errors.append(f"{name}: {Reason(reason).name}")
                if not ready[0] and controller.stats.cycles > 0:
                    # ready once the loop steps (after its real-time set-up: mlockall takes 100+ ms): a
                    # robot starting earlier would queue states that the first step judges late
                    ready[0] = True
                    shared.controller_ready.set()
                return bool(shared.stop_controller.is_set())

            try:
                controller.run(until=supervise)
            finally:
                controller.close()
        finally:
            ports.close()
        info = {
            "stats": {**controller.stats.as_dict(), "data_steps": controller.data_steps},
            "warnings": list(controller.warnings),
            "link_errors": link_errors,
        }
    except BaseException as exc:  # reported to the parent, which names it
        info = {"error": f"{type(exc).__name__}: {exc}"}
        code = 1
    shared.results.put(("controller", info))
    os._exit(code)


def _robot_process(cfg: Any, robot_paths: Any, shared: _Shared) -> None:
    """Child process: the robot emulator on the master end of the robot link's pty, until told to stop."""
    code = 0
    info: dict[str, Any] = {}
    try:
        info = _run_robot(cfg, robot_paths, shared)
    except BaseException as exc:
        info = {"error": f"{type(exc).__name__}: {exc}"}
        code = 1
    shared.results.put(("robot", info))
    os._exit(code)


def _run_robot(cfg: Any, robot_paths: Any, shared: _Shared) -> dict[str, Any]:
    """Serve the robot link: hil.robot's emulator and runner, plus the numbers for the status line."""
    from cobotguard.hil.robot import RobotEmulator, RobotRunner
    from cobotguard.safety.config import ns
    from cobotguard.safety.link import Command, Received
    from cobotguard.safety.link.transport import PtyTransport
    from cobotguard.safety.realtime import apply_realtime

    cycle_ns = ns(cfg.link.receiver_cycle_ms)
    transport = PtyTransport(baud=cfg.link.baud, read_timeout_ns=cycle_ns)
    try:
        robot_paths.put(transport.peer_path)
        _warm_robot_link(cfg)  # compile the link code now: compiling on the first command makes it stale
        # start once the controller is armed: nothing piles up on the link while it compiles
        while not shared.controller_ready.wait(0.1):
            if shared.stop_robot.is_set():
                return {}
        loop_cpu, _ = split_cpus()
        if loop_cpu is not None:
            keep_off_cpu(loop_cpu)  # on the CPUs the controller's loop leaves free
        # real-time, unlike the camera: it stands in for a robot controller's own hardware and mostly sleeps;
        # at normal priority beside the nice -15 detector its states were late by up to 745 ms (measured)
        warnings = apply_realtime(ROBOT_PRIORITY, lock_memory=False).warnings
        # a robot joining a running link: commands queued before it listened are stale, not late news
        drain_until = time.monotonic_ns() + 5 * cycle_ns
        while time.monotonic_ns() < drain_until:
            transport.read()
        emulator = RobotEmulator(cfg, time.monotonic_ns())
        runner = RobotRunner(emulator, transport)  # its state at least every robot.state_period_ms
        numbers = shared.robot
        kind, reason, stop_reason, commands, seq = int(CommandKind.FAULT_STOP), 0, 0, 0, -1
        reset_level = 0
        while not shared.stop_robot.is_set():
            for event in runner.poll():
                if isinstance(event, Received) and isinstance(event.message, Command):
                    kind, reason = int(event.message.kind), int(event.message.reason)
                    stop_reason = last_stop_reason(stop_reason, kind, reason)
                    commands, seq = commands + 1, event.seq
            level = shared.reset.value
            if level and not reset_level and emulator.fault is not None:
                emulator.reset(time.monotonic_ns())  # the operator's reset also clears the robot's latch
            reset_level = level
            if emulator.fault is not None:
                stop_reason = last_stop_reason(
                    stop_reason, CommandKind.FAULT_STOP, int(emulator.fault.reason)
                )
            values = (emulator.speed_mps, int(emulator.at_rest), kind, reason, stop_reason, commands, seq)
            for index, value in enumerate(values):
                numbers[index] = value
        return {"commands": commands, "warnings": warnings}
    finally:
        transport.close()


def _warm_robot_link(cfg: Any) -> None:
    """Pass one command and one state frame through a throwaway robot: nothing compiles on the live link."""
    from cobotguard.hil.robot import RobotEmulator
    from cobotguard.safety.link import Command, Role, robot_link_endpoint

    now = time.monotonic_ns()
    controller_end = robot_link_endpoint(cfg, Role.CONTROLLER, now)
    robot = RobotEmulator(cfg, now)
    robot.receive(controller_end.send(Command(CommandKind.FAULT_STOP, reason=Reason.NOT_ARMED), now), now)
    controller_end.feed(robot.state_frame(now), now)
    controller_end.next_event()


class _Watch:
    """The latest detection frame the sensor published, for the status line (thread-safe)."""

    def __init__(self, cfg: Any) -> None:
        import shapely

        self._hazard = shapely.Polygon(cfg.robot.hazard_polygon_m)
        self._lock = threading.Lock()
        self._persons: Any = np.zeros(0)
        self._t_ns = 0
        self.frames = 0

    def saw(self, record: np.ndarray) -> None:
        """Keep the persons of a published frame."""
        n = int(min(int(record["person_count"][0]), record["persons"].shape[1]))
        with self._lock:
            self._persons = record["persons"][0, :n].copy()
            self._t_ns = time.monotonic_ns()
            self.frames += 1

    def nearest_m(self, max_age_ns: int) -> float | None:
        """Nearest person's distance to the hazard region minus its Z_d (None: nobody seen lately)."""
        import shapely

        with self._lock:
            persons, t = self._persons, self._t_ns
        if persons.size == 0 or time.monotonic_ns() - t > max_age_ns:
            return None
        xs, ys, z_d = persons["x_m"], persons["y_m"], persons["z_d_m"]
        distances = [
            float(self._hazard.distance(shapely.Point(float(xs[i]), float(ys[i])))) - float(z_d[i])
            for i in range(len(persons))
            if np.isfinite(xs[i]) and np.isfinite(ys[i])
        ]
        return min(distances) if distances else None


def demo_detector_model(sensor_cfg: Any, opts: DemoOptions) -> str:
    """The model the demo runs: the one asked for, else the sensor's `model`, else DEMO_DETECTOR_MODEL."""
    if opts.detector_model is not None:
        return opts.detector_model
    return sensor_cfg.model if sensor_cfg.model is not None else DEMO_DETECTOR_MODEL


def _detector(sensor_cfg: Any, opts: DemoOptions) -> Any:
    """The sensor's person detector (its min_score and tiling), compiled and warmed up for its frame size."""
    from cobotguard.sensor.tiling import make_detector

    detector = make_detector(sensor_cfg, demo_detector_model(sensor_cfg, opts), threads=opts.detector_threads)
    detector.warm_up(int(sensor_cfg.image_height_px), int(sensor_cfg.image_width_px))
    return detector


def _warm_on_real_frame(emulator: Any, detector: Any, camera: Any) -> None:
    """Run the detector and every health check (the frozen-image one runs from the second frame on) on
    a real frame, then forget it, so frame 0 is not compared with a warm-up frame."""
    frame = camera.read(0, 0)
    detector.detect(frame.image)
    emulator.health.check(frame.image)
    emulator.health.check(frame.image)
    emulator.health.reset()


def _sensor_thread(emulator: Any, t_start_ns: int, failures: list[str]) -> None:
    """The sensor's thread: ordinary scheduling with a larger share of the CPU (see SENSOR_NICE)."""
    from cobotguard.hil.demo_camera import CameraError

    with contextlib.suppress(OSError, AttributeError):  # not permitted / not POSIX: plain priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SENSOR_NICE)
    try:
        emulator.run(t_start_ns=t_start_ns)
    except CameraError as exc:
        failures.append(str(exc))


# Real-time priorities (SCHED_FIFO where permitted): the controller's hard loop, 80, on its own CPU; the
# robot emulator stands in for dedicated hardware and mostly sleeps, so it gets its own, lower, priority
# on the other CPUs. The sensor thread must not be real-time: at a real-time priority its 20 ms of
# inference per frame kept the kernel's ordinary-priority workers off the CPU, and a pty's bytes only
# move when such a worker runs (flush_to_ldisc), so every link stalled for the length of an inference
# (seen as 17-20 ms gaps in robot state and link timeouts).
# It gets a larger share of the CPU instead (a negative nice value), which those workers can still preempt.
SENSOR_NICE = -15
ROBOT_PRIORITY = 70  # the robot emulator (SCHED_FIFO where permitted), on the CPUs the loop leaves free
SWITCH_INTERVAL_S = 0.0005  # the sensor thread gets the interpreter back quickly from the status line
RESET_PULSE_NS = 100_000_000  # the operator holds the reset button this long
STATUS_PERIOD_S = 0.2
READY_TIMEOUT_S = 240.0  # the controller compiles its step before it arms; slow on a busy machine
PORT_TIMEOUT_S = 60.0  # the robot process names its pty within this time
MAX_LINK_ERRORS_NOTED = 20


def run_demo(
    opts: DemoOptions,
    on_status: Callable[[Status], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo; `on_status` gets a snapshot about 5 times a second, `on_note` progress lines."""
    from cobotguard.safety import budget
    from cobotguard.safety.clock import MonotonicClock
    from cobotguard.safety.config import ConfigError
    from cobotguard.safety.config_load import load_config
    from cobotguard.sensor.emulator import SensorEmulator

    note = on_note or (lambda _line: None)
    try:
        cfg = load_config(opts.config)
    except ConfigError as exc:
        raise DemoError("\n".join(exc.problems)) from None
    if opts.duration_s <= 0:
        raise DemoError(f"--duration must be positive, got {opts.duration_s}")
    duration_ns = int(opts.duration_s * NS_PER_S)
    out_dir = Path(opts.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from None
    trace_path = out_dir / TRACE_NAME

    from cobotguard.hil.demo_camera import CameraError, SharedFrameCamera
    from cobotguard.safety.link import Role, sensor_link_endpoint
    from cobotguard.safety.link.transport import PtyTransport
    from cobotguard.safety.timing import frame_period_ns
    from cobotguard.sensor.emulator import link_publisher

    ctx = multiprocessing.get_context("spawn")
    shared = _Shared(ctx)
    robot_paths = ctx.Queue()
    sensor_name = next(iter(cfg.sensors))
    sensor_link = PtyTransport(baud=cfg.link.baud)  # the camera's end; the controller opens the other
    processes = [
        ctx.Process(
            target=_controller_process,
            args=(cfg, str(trace_path), sensor_link.peer_path, robot_paths, shared),
            name="cobotguard-controller",
            daemon=True,
        ),
        ctx.Process(
            target=_robot_process, args=(cfg, robot_paths, shared), name="cobotguard-robot", daemon=True
        ),
    ]
    for p in processes:
        p.start()
    loop_cpu, _ = split_cpus()
    # camera (spawned below) and detector: off the controller's CPU
    old_affinity = keep_off_cpu(loop_cpu) if loop_cpu is not None else None
    sensor_cfg = cfg.sensors[sensor_name]
    visits = plan_visits(duration_ns)
    camera = SharedFrameCamera(ctx, sensor_cfg, visits, frame_period_ns(sensor_cfg.frame_rate_hz))
    note("controller, robot and camera started; loading the detector while the step compiles")
    watch = _Watch(cfg)
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    resets = 0
    results: dict[str, dict[str, Any]] = {}
    emulator = None
    camera_failure: list[str] = []
    try:
        detector = _detector(sensor_cfg, opts)
        camera.wait_ready(READY_TIMEOUT_S)
        endpoint = sensor_link_endpoint(cfg, sensor_name, Role.SENSOR, time.monotonic_ns())
        publish = link_publisher(endpoint, sensor_link.write)

        def publish_and_watch(record: np.ndarray) -> None:
            publish(record)
            watch.saw(record)

        t_wait = time.monotonic()
        while not shared.controller_ready.wait(0.2):
            if not processes[0].is_alive() or time.monotonic() - t_wait > READY_TIMEOUT_S:
                _collect(shared, results)
                raise DemoError(
                    "the controller did not arm: " + results.get("controller", {}).get("error", "timed out")
                )
        note("controller armed; the camera starts")
        clock = MonotonicClock()
        emulator = SensorEmulator.from_config(sensor_cfg, 0, camera, detector, publish_and_watch, clock)
        _warm_on_real_frame(emulator, detector, camera)
        t_start = clock.now_ns() + 50_000_000
        sensor_thread = threading.Thread(
            target=_sensor_thread,
            args=(emulator, t_start, camera_failure),
            name="demo-sensor",
            daemon=True,
        )
        sensor_thread.start()

        waiting_since: int | None = None
        pulse_end = 0
        frame_age = 3 * frame_period_ns(sensor_cfg.frame_rate_hz)
        while True:
            now = time.monotonic_ns()
            if now >= t_start + duration_ns:
                break
            if camera_failure:
                break
            if not all(p.is_alive() for p in processes):
                _collect(shared, results)
                raise DemoError(_child_failure(results))
            kind = int(shared.robot_value("command_kind"))
            reason = int(shared.robot_value("command_reason"))
            nearest = watch.nearest_m(frame_age)
            # the operator looks at the cell (the scene's ground truth, not the detector) and presses
            # reset when the robot has stood still for a while and nobody is there
            if pulse_end and now >= pulse_end:
                shared.reset.value = 0
                pulse_end = 0
            # (judged by the robot at rest, not by the commands it received: a latched link drops those)
            at_rest = shared.robot_value("at_rest") != 0
            if (at_rest or kind >= CommandKind.PROTECTIVE_STOP) and cell_clear(visits, now - t_start):
                waiting_since = waiting_since or now
                if not pulse_end and now - waiting_since >= reset_delay_ns(reason):
                    shared.reset.value = 1
                    pulse_end = now + RESET_PULSE_NS
                    waiting_since = None
                    resets += 1
            else:
                waiting_since = None
            if on_status is not None:
                speed = max(0.0, shared.robot_value("speed_mps"))
                on_status(
                    Status(
                        t_s=(now - t_start) / NS_PER_S,
                        robot_kind=int(shared.robot_value("command_kind")),
                        robot_speed_mps=speed,
                        at_rest=at_rest,
                        nearest_m=nearest,
                        s_p_m=budget.separation_required_m(cfg, min(speed, cfg.robot.max_speed_mps)),
                        last_stop_reason=int(shared.robot_value("stop_reason")),
                        frames=watch.frames,
                        resets=resets,
                    )
                )
            time.sleep(STATUS_PERIOD_S if not pulse_end else min(STATUS_PERIOD_S, RESET_PULSE_NS / NS_PER_S))
        emulator.stop()
        sensor_thread.join(timeout=5.0)
        time.sleep(0.2)  # the last frames reach the controller
        if sensor_thread.is_alive() or camera_failure:
            raise DemoError(camera_failure[0] if camera_failure else "the sensor thread did not stop")
    except CameraError as exc:
        raise DemoError(str(exc)) from None
    finally:
        sys.setswitchinterval(old_switch)
        if old_affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, old_affinity)
        if emulator is not None:
            emulator.stop()
        camera.close()
        shared.reset.value = 0
        shared.stop_controller.set()
        processes[0].join(timeout=10.0)
        shared.stop_robot.set()
        processes[1].join(timeout=5.0)
        for p in processes:
            if p.is_alive():
                p.kill()
                p.join(timeout=2.0)
        sensor_link.close()
        _collect(shared, results)

    if "error" in results.get("controller", {}):
        raise DemoError(_child_failure(results))
    return _report(trace_path, out_dir, opts, emulator, resets, results, note)


def _collect(shared: _Shared, results: dict[str, dict[str, Any]]) -> None:
    """Take whatever the children reported."""
    while not shared.results.empty():
        who, info = shared.results.get()
        results[who] = info


def _child_failure(results: dict[str, dict[str, Any]]) -> str:
    """Which child failed and why."""
    for who in ("controller", "robot"):
        if "error" in results.get(who, {}):
            return f"the {who} process failed: {results[who]['error']}"
    return "a child process ended early without saying why"


def _report(
    trace_path: Path,
    out_dir: Path,
    opts: DemoOptions,
    emulator: Any,
    resets: int,
    results: dict[str, dict[str, Any]],
    note: Callable[[str], None],
) -> DemoResult:
    """Read the controller's trace, analyse it, and write the report files."""
    import json

    from cobotguard.hil.report.analysis import analyze
    from cobotguard.hil.report.render import to_json
    from cobotguard.hil.report.stages import stages_from_trace
    from cobotguard.safety.trace import TraceError, read_trace

    try:
        trace = read_trace(trace_path)
    except TraceError as exc:
        raise DemoError(f"the controller's trace is unreadable: {exc}") from None
    note("analysing the trace")
    analysed = analyze([stages_from_trace(trace)])
    files = [out_dir / "report.json"]
    files[0].write_text(json.dumps(to_json(analysed), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    if opts.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            note("matplotlib is not installed (pip install 'cobotguard[plots]'): no HTML/PNG report")
        else:
            from cobotguard.hil.report.render import to_html, to_png

            (out_dir / "report.png").write_bytes(to_png(analysed))
            (out_dir / "report.html").write_text(to_html(analysed), encoding="utf-8")
            files += [out_dir / "report.html", out_dir / "report.png"]
    controller = results.get("controller", {})
    return DemoResult(
        trace_path=trace_path,
        report_files=files,
        results=analysed,
        frames_published=emulator.stats.published if emulator is not None else 0,
        resets=resets,
        controller_stats=controller.get("stats", {}),
        link_errors=list(controller.get("link_errors", [])),
        warnings=[
            f"{who}: {w}" for who in ("controller", "robot") for w in results.get(who, {}).get("warnings", [])
        ],
    )
