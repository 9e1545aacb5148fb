"""The campaign's results file: JSON lines, a header then one line per chunk, flushed as each arrives.

A rerun with the same file reads it back and skips the chunks it holds, provided the header matches
(seed, chunk size, configuration checksum, format). A last line without its newline was torn by an
interrupted write: it is reported, cut off and its chunk run again. Any other line that does not parse is
an error naming the file and line (fail closed: a damaged results file is never read silently).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

FORMAT = "cobotguard-campaign/1"


class StoreError(ValueError):
    """The results file cannot be used: the message names the file, line and what was expected."""


@dataclass
class Loaded:
    """What a results file held: its chunks by number and whether a torn last line was cut off."""

    chunks: dict[int, dict[str, Any]] = field(default_factory=dict)
    torn_line: int | None = None  # the line number of a torn last line (cut off)


def header(seed: int, chunk_size: int, checksum: str, cell_name: str) -> dict[str, Any]:
    """The first line of a results file."""
    return {"format": FORMAT, "seed": seed, "chunk_size": chunk_size, "checksum": checksum, "cell": cell_name}


def load(path: Path, expected: dict[str, Any]) -> Loaded:
    """Read a results file written for the header `expected`; cut off a torn last line (see module doc)."""
    loaded = Loaded()
    if not path.exists() or path.stat().st_size == 0:
        return loaded
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, last = lines[:-1], lines[-1]  # `last` is b"" when the file ends with a newline
    if last:
        loaded.torn_line = len(complete) + 1
    if not complete:
        # only a torn header: nothing was done yet
        _truncate(path, 0)
        return loaded
    first = _parse(path, 1, complete[0])
    for key in ("format", "seed", "chunk_size", "checksum"):
        if first.get(key) != expected[key]:
            raise StoreError(
                f"{path}: line 1: written for {key} {first.get(key)!r}, this run has {expected[key]!r}; "
                "give another --out, or delete the file to start over"
            )
    for number, raw in enumerate(complete[1:], start=2):
        record = _parse(path, number, raw)
        chunk = record.get("chunk")
        if record.get("type") != "chunk" or not isinstance(chunk, int) or chunk < 0:
            raise StoreError(f"{path}: line {number}: expected a chunk record with a chunk number")
        if chunk in loaded.chunks:
            raise StoreError(f"{path}: line {number}: chunk {chunk} appears twice")
        loaded.chunks[chunk] = record
    if last:
        _truncate(path, len(data) - len(last))
    return loaded


def _parse(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: line {number}: not a JSON object ({exc})") from None
    if not isinstance(record, dict):
        raise StoreError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
    return record


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)


class Writer:
    """Appends chunk lines to a results file, each flushed and synced before the next."""

    def __init__(self, path: Path, head: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        self._fh: IO[str] = path.open("a", encoding="utf-8")
        if new:
            self._write(head)

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def add(self, chunk: dict[str, Any]) -> None:
        """Append one chunk record."""
        self._write(chunk)

    def close(self) -> None:
        """Close the file."""
        self._fh.close()
