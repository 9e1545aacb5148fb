"""Mutation of the two transition tables: does tests/test_state_machines.py catch every wrong entry?

Sets each entry of the controller's table (`cobotguard.safety.states.TRANSITIONS`, every state x event x
permission) and of the link receiver's (`cobotguard.safety.link.states.TRANSITIONS`) in turn to every
other state, in memory, and runs the path and property checks of tests/test_state_machines.py in this
process (pytest -x; the test that plays the table through the compiled receivers is left out, it reads
compiled code, not the dict). Prints how many changes were caught and lists those that were not.

    nice -n 19 python bench/table_mutation.py

bench/mutation.py mutates the helpers that build the tables; this mutates the entries themselves.
Takes about a second per change (900-odd changes): minutes, not part of the unit-test run.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cobotguard.safety import states as controller
from cobotguard.safety.link import states as link

REPO = Path(__file__).resolve().parents[1]
TESTS = str(REPO / "tests" / "test_state_machines.py")


def tests_pass() -> bool:
    """Run the table checks quietly; True when every one passes."""
    args = ["-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", "-k", "not both_receivers", TESTS]
    with contextlib.redirect_stdout(io.StringIO()):
        return pytest.main(args) == 0


def entry_changes() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(description, apply, undo) for every entry of both tables and every other target state."""
    table = controller.TRANSITIONS
    for s, e, p in itertools.product(controller.ControllerState, controller.Event, controller.Permission):
        original = table[s][e][p]
        for new in controller.ControllerState:
            if new != original:

                def apply(s=s, e=e, p=p, new=new) -> None:
                    table[s][e][p] = new

                def undo(s=s, e=e, p=p, original=original) -> None:
                    table[s][e][p] = original

                yield f"controller {s.name} {e.name} {p.name}: {original.name} -> {new.name}", apply, undo
    links = link.TRANSITIONS
    for key, original in list(links.items()):
        for new in link.ReceiverState:
            if new != original:

                def apply_link(key=key, new=new) -> None:
                    links[key] = new

                def undo_link(key=key, original=original) -> None:
                    links[key] = original

                where = f"link {key[0].name} {key[1].name}"
                yield f"{where}: {original.name} -> {new.name}", apply_link, undo_link


def main() -> int:
    """Change every entry in turn; print the count caught and every change not caught."""
    if not tests_pass():
        raise SystemExit("table_mutation: tests/test_state_machines.py fails on the unchanged tables")
    missed, total = [], 0
    for description, apply, undo in entry_changes():
        apply()
        try:
            caught = not tests_pass()
        finally:
            undo()
        total += 1
        missed += [] if caught else [description]
    n_caught = total - len(missed)
    print(f"{total} entry changes, {n_caught} caught ({100.0 * n_caught / total:.1f} %)")
    for description in missed:
        print(f"  not caught: {description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
