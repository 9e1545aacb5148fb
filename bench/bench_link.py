"""Benchmark: link encode/decode time per frame, beside the time the frame takes on a real serial line.

For COMMAND, ROBOT_STATE and DETECTIONS (0, 2, 16 persons) frames, times `Endpoint.send` (encode: payload,
header, CRC, COBS) and `Endpoint.feed` + `next_event` (decode: split, COBS, CRC, every acceptance check,
message construction) one frame per call, in interleaved rounds so that load from other processes hits
all cases alike. Baseline in the same run: `struct.pack` of the same header + payload and `zlib.crc32`
(C, no COBS, no checks, no message objects) - the least any framing in Python can cost. Also the CRC kernel
alone against the `crc` library (the test oracle), and the pty transfer of a command frame (write on the
master, read through pyserial on the slave). With the robot on its own clock, the controller's end records
each command's send time and ages each ROBOT_STATE by its echo (`DelayCheck.ECHO`): the cases "/echo" time
that end beside the same frames on one clock ("COMMAND" and "ROBOT_STATE"), in the same rounds.

Prints distributions (median, p99, p99.9, max, in microseconds); never asserts. On a shared VM the tails
come from the machine: read the medians for cost and the tails for the environment.

    python bench/bench_link.py [--frames 20000] [--rounds 5] [--skip-pty]
"""

from __future__ import annotations

import argparse
import gc
import struct
import sys
import time
import zlib
from collections.abc import Callable

import numpy as np

from cobotguard.safety.link import (  # noqa: E402
    NEED_DATA,
    Command,
    DelayCheck,
    Detections,
    Endpoint,
    LinkPolicy,
    Message,
    RobotState,
    Role,
    encode_frame,
    encode_payload,
)
from cobotguard.safety.link.crc import crc32  # noqa: E402
from cobotguard.safety.reasons import CommandKind, Reason, StopCategory  # noqa: E402
from cobotguard.safety.records import PERSON_DTYPE  # noqa: E402
from cobotguard.safety.timing import line_time_ns  # noqa: E402

CID = 0x0101
POLICY = LinkPolicy(max_delay_ns=10**15, watchdog_ns=10**15)  # timing checks pass: we time the code
ECHO_POLICY = LinkPolicy(max_delay_ns=10**15, watchdog_ns=10**15, delay_check=DelayCheck.ECHO, echo_ring=72)
ECHOED = 41  # the command sequence number the timed robot states echo
BAUDS = (115_200, 1_000_000)
HEADER = struct.Struct("<BBHIq")


def persons(n: int) -> np.ndarray:
    """n plausible person records."""
    rng = np.random.default_rng(n)
    out = np.zeros(n, dtype=PERSON_DTYPE)
    out["x_m"], out["y_m"] = rng.uniform(-5, 5, n), rng.uniform(-5, 5, n)
    out["z_d_m"], out["score"] = 0.1, 0.9
    out["box"] = (0.2, 0.3, 0.8, 0.5)
    return out


CASES: list[tuple[str, Role, Role, Message]] = [
    (
        "COMMAND",
        Role.CONTROLLER,
        Role.ROBOT,
        Command(CommandKind.SLOW, 0.1, StopCategory.CAT1, Reason.PERSON_IN_WARNING_ZONE, 0, 1, 1),
    ),
    ("ROBOT_STATE", Role.ROBOT, Role.CONTROLLER, RobotState(0.25, CommandKind.RUN, False, ECHOED)),
    *[
        (
            f"DETECTIONS/{n}",
            Role.SENSOR,
            Role.SENSOR_RECEIVER,
            Detections(0, 7, n, 0, 21_000, 10, 20, persons(n)),
        )
        for n in (0, 2, 16)
    ],
]


def stats_us(samples_ns: list[int]) -> tuple[float, float, float, float]:
    """median, p99, p99.9, max in microseconds."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return (
        float(np.median(a)),
        float(np.percentile(a, 99)),
        float(np.percentile(a, 99.9)),
        float(a.max()),
    )


def time_calls(fn: Callable[[int], object], n: int) -> list[int]:
    """Per-call durations of fn(i) for i in range(n)."""
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = clock()
        fn(i)
        out[i] = clock() - t0
    return out


ECHO_CASES = ("COMMAND/echo", "ROBOT_STATE/echo")  # the controller's end aging states by echo


def bench_case(
    sender_role: Role, receiver_role: Role, message: Message, n: int, echo: bool = False
) -> dict[str, list[int]]:
    """encode, decode and baseline samples for one message kind (echo: the controller's end ages by echo)."""
    sender_policy = ECHO_POLICY if echo and sender_role is Role.CONTROLLER else POLICY
    sender = Endpoint(sender_role, CID, sender_policy, 0)
    sender.send(message, 0)  # the preamble byte goes with the first frame: keep it out of the samples
    encode = time_calls(lambda i: sender.send(message, i + 1), n)

    frames = [encode_frame(message, CID, i, i + 1) for i in range(n)]
    receiver_policy = ECHO_POLICY if echo and receiver_role is Role.CONTROLLER else POLICY
    receiver = Endpoint(receiver_role, CID, receiver_policy, 0)
    receiver.feed(b"\x00", 0)
    if receiver_policy is ECHO_POLICY:
        for _ in range(ECHOED + 1):  # the command the states echo was sent, at time 0
            receiver.send(Command(CommandKind.RUN, 0.25), 0)

    def decode(i: int) -> None:
        receiver.feed(frames[i], i + 1)
        if receiver.next_event() is NEED_DATA:
            raise RuntimeError("frame not decoded")

    decoded = time_calls(decode, n)
    payload = encode_payload(message)
    kind = int(message.message_type)

    def baseline(i: int) -> bytes:
        body = HEADER.pack(1, kind, CID, i, i) + payload
        return body + struct.pack("<I", zlib.crc32(body))

    base = time_calls(baseline, n)
    return {"encode": encode, "decode": decoded, "baseline": base}


def bench_crc(n: int) -> dict[str, list[int]]:
    """The CRC kernel against the pure-Python `crc` library, on a 24-byte and a 427-byte input."""
    import crc as crc_lib

    from cobotguard.safety.link import crc as link_crc

    oracle = crc_lib.Calculator(
        crc_lib.Configuration(32, link_crc.POLYNOMIAL, link_crc.INIT, link_crc.XOR_OUT, True, True),
        optimized=True,
    )
    short, long = bytes(range(24)), bytes(range(256)) + bytes(range(171))
    return {
        "kernel 24 B": time_calls(lambda i: crc32(short), n),
        "crc lib 24 B": time_calls(lambda i: oracle.checksum(short), max(1, n // 10)),
        "kernel 427 B": time_calls(lambda i: crc32(long), n),
        "crc lib 427 B": time_calls(lambda i: oracle.checksum(long), max(1, n // 50)),
    }


def bench_pty(n: int) -> list[int] | None:
    """Write a command frame on a pty master, read it through pyserial on the slave (same thread)."""
    if not sys.platform.startswith("linux"):
        return None
    from cobotguard.safety.link.transport import PtyTransport, SerialTransport

    frame = encode_frame(CASES[0][3], CID, 1, 1)
    with PtyTransport() as master:
        port = SerialTransport(master.peer_path, 115_200, read_timeout_ns=100_000_000)
        try:

            def transfer(i: int) -> None:
                master.write(frame)
                got = b""
                while len(got) < len(frame):
                    got += port.read()

            return time_calls(transfer, n)
        finally:
            port.close()


def row(name: str, op: str, samples: list[int], extra: str = "") -> str:
    med, p99, p999, mx = stats_us(samples)
    return f"{name:<15} {op:<9} {med:>8.2f} {p99:>8.2f} {p999:>8.2f} {mx:>9.1f}  {extra}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20_000, help="frames per case and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--skip-pty", action="store_true")
    args = parser.parse_args(argv)

    samples: dict[str, dict[str, list[int]]] = {name: {} for name, *_ in CASES}
    samples.update({name: {} for name in ECHO_CASES})
    gc.disable()
    try:
        bench_case(*CASES[0][1:], 200)  # warm-up: numba kernel compiled, caches filled
        for _ in range(args.rounds):
            for name, tx, rx, message in CASES:
                n = args.frames if not name.endswith("/16") else args.frames // 4
                for op, values in bench_case(tx, rx, message, n).items():
                    samples[name].setdefault(op, []).extend(values)
                if name in ("COMMAND", "ROBOT_STATE"):
                    for op, values in bench_case(tx, rx, message, n, echo=True).items():
                        samples[f"{name}/echo"].setdefault(op, []).extend(values)
        crc_samples = bench_crc(args.frames)
        pty = None if args.skip_pty else bench_pty(min(args.frames, 5_000))
    finally:
        gc.enable()

    print(f"link encode/decode per frame, {args.rounds} rounds (microseconds; gc off)")
    print(f"{'frame':<15} {'op':<9} {'median':>8} {'p99':>8} {'p99.9':>8} {'max':>9}  notes")
    for name, _tx, _rx, message in CASES:
        size = len(encode_frame(message, CID, 1, 1))
        wires = ", ".join(f"{line_time_ns(size, b) / 1e3:.0f} us at {b}" for b in BAUDS)
        base_med = stats_us(samples[name]["baseline"])[0]
        for op in ("encode", "decode", "baseline"):
            s = samples[name][op]
            note = f"{size} B on the wire: {wires}" if op == "encode" else ""
            if op != "baseline":
                note = f"{stats_us(s)[0] / base_med:.1f}x baseline; " + note
            print(row(name, op, s, note))
    print()
    print('the controller\'s end aging states by echo (robot.clock = "own") against one clock, same rounds')
    for name in ECHO_CASES:
        one_clock = name.split("/")[0]
        op = "encode" if one_clock == "COMMAND" else "decode"
        s, ref = samples[name][op], samples[one_clock][op]
        ratios = " ".join(f"{a / b:.2f}" for a, b in zip(stats_us(s), stats_us(ref), strict=True))
        print(row(name, op, s, f"vs one clock (median p99 p99.9 max): {ratios}"))
    print()
    print("CRC-32 (0xF4ACFB13)")
    for op, s in crc_samples.items():
        print(row("crc", op, s))
    k24, l24 = stats_us(crc_samples["kernel 24 B"])[0], stats_us(crc_samples["crc lib 24 B"])[0]
    print(f"kernel vs crc library at 24 B: {l24 / k24:.0f}x faster")
    if pty is not None:
        print()
        print(row("pty transfer", "COMMAND", pty, "write master -> read slave via pyserial, same thread"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
