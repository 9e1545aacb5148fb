"""Where a campaign's chunks run: this process, a process pool over this machine's cores, or Ray.

Every engine runs the same pure function of (configuration, seed, chunk), so the results are the same on
all of them; only the order in which chunks come back differs (the report sorts them). Each worker
prepares the cell once (and compiles the kernel once); with the local pool on Linux the workers are
forked from a process that has compiled it already.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from cobotguard.hil.campaign.runner import PreparedCell, Scratch, approaches, prepare, run_chunk, simulate
from cobotguard.safety.checksum import config_from_canonical

ENGINES = ("local", "ray")


class EngineError(RuntimeError):
    """An engine cannot start (a missing extra, an unreachable cluster)."""


_CELLS: dict[str, tuple[PreparedCell, Scratch]] = {}


def _cell(canonical: str) -> tuple[PreparedCell, Scratch]:
    """The prepared cell of a canonical configuration, once per process."""
    key = hashlib.sha256(canonical.encode()).hexdigest()
    if key not in _CELLS:
        cell = prepare(config_from_canonical(canonical))
        _CELLS[key] = (cell, Scratch(cell))
    return _CELLS[key]


def chunk_task(canonical: str, seed: int, chunk: int, chunk_size: int) -> dict[str, Any]:
    """One chunk of the campaign, in whatever process runs it."""
    cell, scratch = _cell(canonical)
    return run_chunk(cell, seed, chunk, chunk_size, scratch)


def run_chunks(
    canonical: str,
    seed: int,
    chunk_size: int,
    chunks: Sequence[int],
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Chunk records as they complete, in any order."""
    if engine == "ray":
        yield from _ray(canonical, seed, chunk_size, chunks, workers, address)
    elif workers <= 1:
        for chunk in chunks:
            yield chunk_task(canonical, seed, chunk, chunk_size)
    else:
        yield from _pool(canonical, seed, chunk_size, chunks, workers)


def _pool(
    canonical: str, seed: int, chunk_size: int, chunks: Sequence[int], workers: int
) -> Iterator[dict[str, Any]]:
    # fork after compiling here: the workers start with the kernel compiled (spawn elsewhere)
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    if method == "fork":
        cell, scratch = _cell(canonical)
        simulate(cell, approaches(cell, seed, 0, 1), scratch)  # compiles the kernel before forking
    context = multiprocessing.get_context(method)
    queue = list(chunks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: set[Future[dict[str, Any]]] = set()
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:  # a few ahead, so results stream
                    pending.add(pool.submit(chunk_task, canonical, seed, queue.pop(0), chunk_size))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def _ray(
    canonical: str, seed: int, chunk_size: int, chunks: Sequence[int], workers: int, address: str | None
) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise EngineError(
            "--engine ray needs Ray: install the cluster extra, pip install 'cobotguard[cluster]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address is None:
                ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"--address {address}: cannot join the Ray cluster ({exc})") from None
    try:
        task = ray.remote(chunk_task)
        capacity = max(int(ray.cluster_resources().get("CPU", workers)), 1)
        queue = list(chunks)
        pending: list[Any] = []
        while queue or pending:
            while queue and len(pending) < 2 * capacity:
                pending.append(task.remote(canonical, seed, queue.pop(0), chunk_size))
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
