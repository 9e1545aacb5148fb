"""Mutation testing of the safety core: how many small, plausible bugs do the tests catch?

Each mutant is one AST operator change in one module of the safety core:

- comparison flips and boundary shifts (`<` -> `<=` / `>=`, `==` <-> `!=`, `is` <-> `is not`, ...);
- `and` <-> `or`;
- constant changes (0 <-> 1, -1 -> 0, n -> n + 1, True <-> False, x.y -> x.y + 1.0);
- arithmetic swaps (`+` <-> `-`, `*` <-> `//`).

The mutated module is written into a temporary copy of the `cobotguard.safety` package (the rest of the
project is linked, not copied), put first on PYTHONPATH, and the module's own test files run against it
with `pytest -x` in a subprocess with a timeout. A mutant is *killed* when the tests fail (or time out),
and *survives* when they pass. Each subprocess gets a fresh NUMBA_CACHE_DIR, so no compiled code of the
original (or of another mutant) is reused; JIT compilation stays on, because the compiled step is what
the product runs (NUMBA_DISABLE_JIT would test the Python semantics instead: integer wrap-around, typed
containers and the no-allocation tests differ).

    nice -n 19 python bench/mutation.py [--module step ...] [--sample N] [--seed S] [--json PATH]

`--sample N` draws N mutants per module at random (seeded) when a module has more; the report says how
many exist, how many ran, the score (killed / ran) per module, and lists every survivor with its line.
Known-equivalent mutants are listed in docs/mutation.md. Runs for minutes to hours: not part of the
unit-test run.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# module -> (path in the repository, the test files that exercise it)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "step": (
        "safety/step.py",
        (
            "tests/test_step.py",
            "tests/test_step_states.py",
            "tests/test_step_hold.py",
            "tests/test_step_differential.py",
            "tests/test_step_robot_echo.py",
        ),
    ),
    "states": ("safety/states.py", ("tests/test_step_states.py", "tests/test_state_machines.py")),
    "acceptance": (
        "safety/link/acceptance.py",
        ("tests/test_link_endpoint.py", "tests/test_link_compiled.py", "tests/test_link_vectors.py"),
    ),
    "budget": ("safety/budget.py", ("tests/test_budget.py", "tests/test_timing.py")),
}

_COMPARE_FLIPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.GtE),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
_BINOP_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
}
_SYMBOLS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.FloorDiv: "//",
    ast.And: "and",
    ast.Or: "or",
}


@dataclass(frozen=True)
class Mutant:
    """One mutation: which node (by its index in `ast.walk` order), what it does, and where."""

    module: str
    index: int  # position of the mutated node in ast.walk(tree)
    variant: int  # which of the node's mutations
    line: int
    description: str


def _constant_changes(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [1] if value == 0 else [0] if value in (1, -1) else [value + 1]
    if isinstance(value, float):
        return [value + 1.0]
    return []


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Nodes not to mutate: annotations, decorators, f-string messages, constants a `-` sign belongs to."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        unmutated: list[ast.AST | None] = []
        if isinstance(node, ast.AnnAssign | ast.arg):
            unmutated.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            unmutated.extend(node.decorator_list)  # dataclass(frozen=True) and the like: not logic
            if not isinstance(node, ast.ClassDef):
                unmutated.append(node.returns)
        elif isinstance(node, ast.JoinedStr):
            unmutated.append(node)  # f-string messages: their wording is tested elsewhere, not here
        elif (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
        ):
            skip.add(id(node.operand))  # mutated as one signed constant
        for subtree in unmutated:
            if subtree is not None:
                skip.update(id(n) for n in ast.walk(subtree))
    return skip


def _mutations(node: ast.AST) -> list[tuple[str, Callable[[ast.AST], ast.AST]]]:
    """(description, apply) for each mutation of one node; apply returns the replacement node."""
    out: list[tuple[str, Callable[[ast.AST], ast.AST]]] = []
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            for new in _COMPARE_FLIPS.get(type(op), ()):

                def flip(n: ast.AST, k: int = k, new: type = new) -> ast.AST:
                    assert isinstance(n, ast.Compare)
                    n.ops[k] = new()
                    return n

                out.append((f"`{_SYMBOLS[type(op)]}` -> `{_SYMBOLS[new]}`", flip))
    elif isinstance(node, ast.BoolOp):
        new_op = ast.Or if isinstance(node.op, ast.And) else ast.And

        def swap(n: ast.AST, new_op: type = new_op) -> ast.AST:
            assert isinstance(n, ast.BoolOp)
            n.op = new_op()
            return n

        out.append((f"`{_SYMBOLS[type(node.op)]}` -> `{_SYMBOLS[new_op]}`", swap))
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
        new_bin = _BINOP_SWAPS[type(node.op)]

        def arith(n: ast.AST, new_bin: type = new_bin) -> ast.AST:
            assert isinstance(n, ast.BinOp)
            n.op = new_bin()
            return n

        out.append((f"`{_SYMBOLS[type(node.op)]}` -> `{_SYMBOLS[new_bin]}`", arith))
    elif (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        value = -node.operand.value
        for new_value in _constant_changes(value):
            out.append((f"constant {value!r} -> {new_value!r}", lambda n, v=new_value: ast.Constant(v)))
    elif isinstance(node, ast.Constant):
        for new_value in _constant_changes(node.value):
            out.append((f"constant {node.value!r} -> {new_value!r}", lambda n, v=new_value: ast.Constant(v)))
    return out


def enumerate_mutants(module: str) -> list[Mutant]:
    """Every mutant of one module of MODULES."""
    path = REPO / MODULES[module][0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _skipped_nodes(tree)
    mutants = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for variant, (description, _) in enumerate(_mutations(node)):
            mutants.append(Mutant(module, index, variant, getattr(node, "lineno", 0), description))
    return mutants


def mutated_source(mutant: Mutant) -> str:
    """The module's source with the one mutation applied (formatted by ast.unparse)."""
    path = REPO / MODULES[mutant.module][0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))
    target = nodes[mutant.index]
    _, apply = _mutations(copy.deepcopy(target))[mutant.variant]
    replacement = apply(target)
    if replacement is not target:
        for parent in nodes:
            for name, value in ast.iter_fields(parent):
                if value is target:
                    setattr(parent, name, replacement)
                elif isinstance(value, list):
                    parent_list: list = value
                    for i, item in enumerate(parent_list):
                        if item is target:
                            parent_list[i] = replacement
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


@dataclass
class Outcome:
    """What the tests said about one mutant."""

    mutant: Mutant
    status: str  # "killed", "survived", "timeout" (counted as killed) or "error" (could not be built)
    seconds: float
    failed_test: str = ""


def _package_copy(root: Path) -> Path:
    """A `cobotguard` namespace folder under root: a copy of safety/, links to sensor/ and hil/."""
    package = root / "cobotguard"
    package.mkdir()
    shutil.copytree(REPO / "safety", package / "safety", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("sensor", "hil"):
        (package / folder).symlink_to(REPO / folder)
    return package


def _run_tests(root: Path, tests: tuple[str, ...], timeout_s: float) -> tuple[str, float, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    env["NUMBA_CACHE_DIR"] = str(root / "numba-cache")
    env.pop("NUMBA_DISABLE_JIT", None)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    command += [str(REPO / t) for t in tests]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - started, ""
    seconds = time.perf_counter() - started
    if result.returncode == 0:
        return "survived", seconds, ""
    failed = next((ln for ln in result.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))), "")
    return "killed", seconds, failed


def check_isolation(root: Path) -> None:
    """Fail loudly unless the subprocess imports cobotguard.safety from the copy."""
    env = dict(os.environ, PYTHONPATH=str(root))
    where = subprocess.run(
        [sys.executable, "-c", "import cobotguard.safety.step as m; print(m.__file__)"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(root)):
        raise SystemExit(
            f"mutation: the copy is not imported ({where}); is cobotguard installed non-editable?"
        )


def run_mutants(mutants: list[Mutant], timeout_s: float) -> Iterator[Outcome]:
    """Test each mutant in its own package copy; yields the outcomes as they come."""
    for mutant in mutants:
        relative, tests = MODULES[mutant.module]
        with tempfile.TemporaryDirectory(prefix="cg-mutant-") as tmp:
            root = Path(tmp)
            package = _package_copy(root)
            try:
                source = mutated_source(mutant)
            except (SyntaxError, ValueError) as exc:
                yield Outcome(mutant, "error", 0.0, str(exc))
                continue
            (package / relative).write_text(source, encoding="utf-8")
            status, seconds, failed = _run_tests(root, tests, timeout_s)
            yield Outcome(mutant, status, seconds, failed)


def baseline_seconds(module: str) -> float:
    """Time of the module's tests on an unmutated copy; raises when they do not pass."""
    with tempfile.TemporaryDirectory(prefix="cg-baseline-") as tmp:
        root = Path(tmp)
        _package_copy(root)
        check_isolation(root)
        status, seconds, failed = _run_tests(root, MODULES[module][1], timeout_s=3600)
    if status != "survived":
        raise SystemExit(f"mutation: the tests of {module} fail without any mutation: {failed}")
    return seconds


def _where(m: Mutant) -> str:
    return f"{MODULES[m.module][0]}:{m.line}: {m.description}  [{m.index}.{m.variant}]"


def main(argv: list[str] | None = None) -> int:
    """Enumerate, sample and test mutants; print the score per module and the survivors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES), help="default: all")
    parser.add_argument("--sample", type=int, default=0, metavar="N", help="at most N mutants per module")
    parser.add_argument("--seed", type=int, default=14, help="seed of the sample (default 14)")
    parser.add_argument(
        "--mutant", action="append", metavar="I.V", help="only these mutants (as --list names them, [I.V])"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--json", metavar="PATH", help="also write every outcome as JSON")
    args = parser.parse_args(argv)

    modules = args.module or list(MODULES)
    results: dict[str, list[Outcome]] = {}
    counts: dict[str, int] = {}
    for module in modules:
        mutants = enumerate_mutants(module)
        counts[module] = len(mutants)
        if args.list:
            for m in mutants:
                print(_where(m))
            continue
        chosen = mutants
        if args.mutant:
            chosen = [m for m in mutants if f"{m.index}.{m.variant}" in args.mutant]
        elif args.sample and len(mutants) > args.sample:
            chosen = sorted(random.Random(args.seed).sample(mutants, args.sample), key=lambda m: m.line)
        base = baseline_seconds(module)
        timeout_s = 3 * base + 30
        print(
            f"{module}: {len(mutants)} mutants, testing {len(chosen)}; tests take {base:.0f} s unmutated",
            flush=True,
        )
        results[module] = []
        for outcome in run_mutants(chosen, timeout_s):
            results[module].append(outcome)
            print(f"  {outcome.status:8} {outcome.seconds:6.1f} s  {_where(outcome.mutant)}", flush=True)
    if args.list:
        return 0
    print()
    print(f"{'module':<32}{'mutants':>8}{'tested':>8}{'killed':>8}{'score':>8}")
    for module, outcomes in results.items():
        tested = [o for o in outcomes if o.status != "error"]
        killed = sum(o.status in ("killed", "timeout") for o in tested)
        score = 100.0 * killed / len(tested) if tested else float("nan")
        print(f"{MODULES[module][0]:<32}{counts[module]:>8}{len(tested):>8}{killed:>8}{score:>7.1f}%")
    survivors = [o for outcomes in results.values() for o in outcomes if o.status == "survived"]
    print(f"\n{len(survivors)} survivor(s):")
    for o in survivors:
        print(f"  {_where(o.mutant)}")
    if args.json:
        doc = {m: [dict(asdict(o), mutant=asdict(o.mutant)) for o in outs] for m, outs in results.items()}
        Path(args.json).write_text(json.dumps({"counts": counts, "outcomes": doc}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
