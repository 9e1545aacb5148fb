"""The traceability matrix: each safety requirement of docs/requirements.md and the tests that show it.

Tests name their requirements with `@pytest.mark.requirement("SR-...")` (on a test function, a test class,
or a module's `pytestmark`). This script reads the requirement table of docs/requirements.md and the test
files (statically, with `ast`: nothing is imported or run) and prints requirement -> tests.

    python tools/trace_matrix.py              # the matrix as text
    python tools/trace_matrix.py --markdown   # as a Markdown table
    python tools/trace_matrix.py --check      # also exit 1 on any problem (as tests/test_requirements.py)

Problems: a requirement without a test, a test naming an unknown ID, a malformed or repeated ID, a marker
whose ID is not a string literal.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS_DOC = REPO / "docs" / "requirements.md"
TESTS = REPO / "tests"
ID_PATTERN = re.compile(r"SR-[A-Z]+-[1-9][0-9]*")
_BEGIN, _END = "<!-- requirements:begin -->", "<!-- requirements:end -->"


@dataclass(frozen=True)
class Requirement:
    """One row of the requirement table."""

    id: str
    text: str
    source: str
    reasons: tuple[str, ...]  # Reason member names the requirement's behaviour produces
    line: int  # in docs/requirements.md


def parse_requirements(path: Path = REQUIREMENTS_DOC) -> tuple[list[Requirement], list[str]]:
    """The table between the requirements:begin/end comments, and the problems found reading it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    problems: list[str] = []
    try:
        start, end = lines.index(_BEGIN), lines.index(_END)
    except ValueError:
        return [], [f"{path.name}: no {_BEGIN} ... {_END} table"]
    rows: list[Requirement] = []
    seen: set[str] = set()
    for number in range(start + 1, end):
        line = lines[number].strip()
        where = f"{path.name}:{number + 1}"
        if not line or line.startswith(("| ID ", "|---")):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 4:
            problems.append(
                f"{where}: expected 4 columns (ID, requirement, source, reasons), got {len(cells)}"
            )
            continue
        rid, text, source, reasons = cells
        if not ID_PATTERN.fullmatch(rid):
            problems.append(f"{where}: ID {rid!r} is not of the form SR-GROUP-N")
            continue
        if rid in seen:
            problems.append(f"{where}: ID {rid} is repeated")
            continue
        if not text or not source:
            problems.append(f"{where}: {rid} has no requirement text or no source")
        seen.add(rid)
        names = () if reasons == "-" else tuple(r.strip().strip("`") for r in reasons.split(","))
        rows.append(Requirement(rid, text, source, names, number + 1))
    return rows, problems


def _requirement_ids(decorator: ast.expr, where: str, problems: list[str]) -> list[str]:
    """The IDs of one `pytest.mark.requirement(...)` decorator (none for any other decorator)."""
    if not isinstance(decorator, ast.Call):
        return []
    func = decorator.func
    if not (isinstance(func, ast.Attribute) and func.attr == "requirement"):
        return []
    ids = []
    for arg in decorator.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            ids.append(arg.value)
        else:
            problems.append(f"{where}: a requirement marker takes string literals only")
    if not ids:
        problems.append(f"{where}: a requirement marker without an ID")
    return ids


def _module_marks(tree: ast.Module, where: str, problems: list[str]) -> list[str]:
    ids: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            for value in values:
                ids += _requirement_ids(value, where, problems)
    return ids


def _visit(
    body: list[ast.stmt],
    relative: str,
    prefix: str,
    inherited: list[str],
    marks: dict[str, list[str]],
    problems: list[str],
) -> None:
    """Record the requirement IDs of every test function in `body` (classes recursed into)."""
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            where = f"{relative}:{node.lineno}"
            ids = [i for d in node.decorator_list for i in _requirement_ids(d, where, problems)]
            _visit(node.body, relative, f"{prefix}{node.name}::", inherited + ids, marks, problems)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            where = f"{relative}:{node.lineno}"
            ids = [i for d in node.decorator_list for i in _requirement_ids(d, where, problems)]
            if ids and not node.name.startswith("test"):
                problems.append(f"{where}: {node.name} is not a test, but names {ids}")
            if node.name.startswith("test") and inherited + ids:
                marks[f"{relative}::{prefix}{node.name}"] = inherited + ids


def collect_markers(tests: Path = TESTS) -> tuple[dict[str, list[str]], list[str]]:
    """test node ID (`tests/test_x.py::test_y`, `...::TestC::test_y`) -> requirement IDs, and problems."""
    marks: dict[str, list[str]] = {}
    problems: list[str] = []
    for path in sorted(tests.glob("test_*.py")):
        relative = path.relative_to(tests.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _visit(tree.body, relative, "", _module_marks(tree, relative, problems), marks, problems)
    return marks, problems


def matrix(requirements: list[Requirement], marks: dict[str, list[str]]) -> dict[str, list[str]]:
    """requirement ID -> the tests naming it (in file order)."""
    out: dict[str, list[str]] = {r.id: [] for r in requirements}
    for test, ids in marks.items():
        for rid in ids:
            if rid in out and test not in out[rid]:
                out[rid].append(test)
    return out


def check(requirements: list[Requirement], marks: dict[str, list[str]]) -> list[str]:
    """Requirements without a test and tests naming an unknown or malformed ID."""
    known = {r.id for r in requirements}
    problems = [
        f"{t}: names unknown requirement {rid}" for t, ids in marks.items() for rid in ids if rid not in known
    ]
    by_id = matrix(requirements, marks)
    problems += [
        f"docs/requirements.md:{r.line}: {r.id} has no test (mark one with "
        f'@pytest.mark.requirement("{r.id}"))'
        for r in requirements
        if not by_id[r.id]
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Print the matrix; with --check, exit 1 when any problem is found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--check", action="store_true", help="exit 1 on any problem")
    args = parser.parse_args(argv)
    requirements, problems = parse_requirements()
    marks, mark_problems = collect_markers()
    problems += mark_problems + check(requirements, marks)
    by_id = matrix(requirements, marks)
    if args.markdown:
        print("| requirement | source | tests |")
        print("|---|---|---|")
        for r in requirements:
            tests = "<br>".join(f"`{t}`" for t in by_id[r.id]) or "**none**"
            print(f"| {r.id} | {r.source} | {tests} |")
    else:
        for r in requirements:
            print(f"{r.id}  ({r.source})")
            for t in by_id[r.id] or ["NO TEST"]:
                print(f"    {t}")
    tested = sum(bool(v) for v in by_id.values())
    print(
        f"\n{len(requirements)} requirements, {tested} with at least one test, "
        f"{len(set(marks))} tests naming one; {len(problems)} problem(s)",
        file=sys.stderr,
    )
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
