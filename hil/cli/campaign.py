"""`cobotguard campaign CONFIG [--runs N] [--seed S] [--engine local|ray] [--address ADDR] [--json] [--html]
[--replay SEED:INDEX]`: the cell over many randomized approaches and faults on the simulated clock.

Results stream to a JSON-lines file (--out); a rerun with the same seed skips the chunks it holds. The
report lists violations with the SEED:INDEX that replays each, stops without cause and the smallest gap
per approach direction, drawn as a polar map (PNG beside the results when matplotlib is installed; HTML
with --html). Exit codes: 0 no violation and no stop without cause, 1 otherwise, 2 invalid input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from cobotguard.hil.cli.common import (
    CommandError,
    ExitCode,
    add_config_argument,
    add_json_option,
    load_cell_config,
    print_error,
)

DEFAULT_RUNS = 10_000
DEFAULT_CHUNK = 1_000


def _seed_index(text: str) -> tuple[int, int]:
    seed, sep, index = text.partition(":")
    if not sep or not seed.isdigit() or not index.isdigit():
        raise argparse.ArgumentTypeError(f"expected SEED:INDEX (two integers >= 0), got {text!r}")
    return int(seed), int(index)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this subcommand's arguments."""
    add_config_argument(parser)
    parser.add_argument(
        "--runs",
        type=_positive,
        default=DEFAULT_RUNS,
        metavar="N",
        help=f"approaches, rounded up to whole chunks (default {DEFAULT_RUNS})",
    )
    parser.add_argument("--seed", type=_seed, default=0, metavar="S", help="campaign seed (default 0)")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (default); ray: Ray, the [cluster] extra",
    )
    parser.add_argument(
        "--address", metavar="ADDR", help="with --engine ray: join this Ray cluster (else Ray runs locally)"
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        metavar="W",
        help="processes (local) or CPUs of a local Ray (default: this machine's cores)",
    )
    parser.add_argument(
        "--chunk-size",
        type=_positive,
        default=DEFAULT_CHUNK,
        metavar="C",
        help=f"approaches per chunk, the unit of resuming (default {DEFAULT_CHUNK})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="results file (JSON lines; default CONFIG-STEM.campaign-S.jsonl here)",
    )
    add_json_option(parser)
    parser.add_argument(
        "--html",
        nargs="?",
        const=True,
        default=None,
        metavar="FILE",
        help="also write the report as HTML (default: beside the results file)",
    )
    parser.add_argument(
        "--replay",
        type=_seed_index,
        metavar="SEED:INDEX",
        help="run one approach again and print its timeline (exit 1 if it violates)",
    )


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the campaign, or replay one approach; returns the exit code."""
    from cobotguard.hil.campaign.runner import prepare

    if args.address is not None and args.engine != "ray":
        raise CommandError("--address: only with --engine ray")
    cfg = load_cell_config(args.config, as_json=args.json)
    try:
        cell = prepare(cfg)
    except ValueError as exc:
        raise CommandError(f"{args.config}: {exc}") from None
    if args.replay is not None:
        return _replay(cell, *args.replay, as_json=args.json)
    return _campaign(args, cfg, cell)


def _replay(cell: Any, seed: int, index: int, *, as_json: bool) -> int:
    from cobotguard.hil.campaign.runner import replay, timeline_lines, violation_details

    r = replay(cell, seed, index)
    if as_json:
        columns = ("t_ns", "kind", "reason", "sensor", "person", "gap_um", "armed")
        print(
            json.dumps(
                {
                    "seed": seed,
                    "index": index,
                    "approach": r.approach,
                    "events": violation_details(cell, r.result),
                    "commands": [dict(zip(columns, map(int, row), strict=True)) for row in r.log],
                    "violations": r.violations,
                    "stop_without_cause": r.without_cause,
                },
                indent=2,
            )
        )
    else:
        print("\n".join(timeline_lines(cell, r)))
    return ExitCode.FAILED if r.violations or r.without_cause else ExitCode.OK


def _campaign(args: argparse.Namespace, cfg: Any, cell: Any) -> int:
    from tqdm import tqdm

    from cobotguard.hil.campaign import aggregate, engines, render, store
    from cobotguard.safety.checksum import canonical_json

    out: Path = args.out or Path(f"{Path(args.config).stem}.campaign-{args.seed}.jsonl")
    head = store.header(args.seed, args.chunk_size, cell.checksum, cell.cfg.name)
    try:
        loaded = store.load(out, head)
    except (store.StoreError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if loaded.torn_line is not None:
        print_error(
            "campaign", f"{out}: line {loaded.torn_line} was torn (no newline): cut off, its chunk runs again"
        )
    wanted = range(math.ceil(args.runs / args.chunk_size))
    todo = [c for c in wanted if c not in loaded.chunks]
    workers = args.workers or os.cpu_count() or 1
    writer = store.Writer(out, head)
    started = time.perf_counter()
    bar = tqdm(
        total=len(wanted) * args.chunk_size,
        initial=(len(wanted) - len(todo)) * args.chunk_size,
        unit="approach",
        unit_scale=True,
        desc="campaign",
        file=sys.stderr,
        disable=None,
    )
    try:
        records = engines.run_chunks(
            canonical_json(cfg).decode(),
            args.seed,
            args.chunk_size,
            todo,
            engine=args.engine,
            workers=workers,
            address=args.address,
        )
        for record in records:
            writer.add(record)
            loaded.chunks[record["chunk"]] = record
            bar.update(record["count"])
    except engines.EngineError as exc:
        raise CommandError(str(exc)) from None
    finally:
        bar.close()
        writer.close()
    wall = time.perf_counter() - started
    report = aggregate.summarise(cell, args.seed, [loaded.chunks[c] for c in wanted])
    ran = len(todo) * args.chunk_size
    report["results_file"] = str(out)
    report["resumed_chunks"] = len(wanted) - len(todo)
    report["engine"] = {
        "name": args.engine,
        "workers": workers,
        "address": args.address,
        "wall_s": round(wall, 3),
        "approaches_run": ran,
        "approaches_per_s": round(ran / wall, 1) if ran and wall > 0 else None,
    }
    report["files"] = _write_plots(args, out, report, render)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(render.report_lines(report)))
        for kind, path in report["files"].items():
            print(f"{kind}: {path}")
    return ExitCode.OK if report["verdict"] == "pass" else ExitCode.FAILED


def _write_plots(args: argparse.Namespace, out: Path, report: dict[str, Any], render: Any) -> dict[str, str]:
    """The polar map as PNG beside the results (when matplotlib is there), and HTML with --html."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if args.html is not None:
            raise CommandError("--html needs matplotlib: pip install 'cobotguard[plots]'") from None
        print_error("campaign", "no polar map: matplotlib is not installed (pip install 'cobotguard[plots]')")
        return {}
    png = out.with_suffix(".png")
    png.write_bytes(render.to_png(report))
    files = {"polar map": str(png)}
    if args.html is not None:
        page = out.with_suffix(".html") if args.html is True else Path(args.html)
        page.write_text(render.to_html(report), encoding="utf-8")
        files["html"] = str(page)
    return files
