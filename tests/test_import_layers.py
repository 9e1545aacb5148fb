"""The safety core's import graph: no cycles, and nothing of the rig, the sensor path or onnxruntime.

Read from the source with `ast`, so every import counts: module level, function-local and those under
TYPE_CHECKING. An import of a name from a package counts as an import of the submodule when there is
one of that name (`from cobotguard.safety.link import codec`), else of the package's __init__.

The repository's folders safety/, sensor/ and hil/ install as cobotguard.safety, cobotguard.sensor and
cobotguard.hil (pyproject.toml), so that PyPI's own `safety` and `sensor` can be installed beside them:
no code here may import the bare names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = "safety"
DISTRIBUTION = "cobotguard"  # the installed parent of the repository's folders
FORBIDDEN = (f"{DISTRIBUTION}.hil", f"{DISTRIBUTION}.sensor", "onnxruntime")
FOLDERS = ("safety", "sensor", "hil")
# not .ci: its coexistence check imports PyPI's own safety on purpose
PYTHON_TREES = (*FOLDERS, "tests", "bench", "examples")


def module_files(package: str = CORE) -> dict[str, Path]:
    """Every module of the package by its installed dotted name (a package is its __init__)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = [DISTRIBUTION, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """(dotted name, line) of everything the module imports; `from a import b` gives a.b."""
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parts = module.split(".")
                anchor = parts[: len(parts) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return out


def owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lives in: itself when it is one (a submodule), else the longest prefix."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {module of the package it imports: first line that does}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for name, line in sorted(imported_names(module, path), key=lambda item: item[1]):
            target = owning_module(name, modules)
            if target is not None and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search)."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, {})):
            if nxt in on_stack:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in done and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)) is not None:
            return cycle
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    """The cycle as 'a (a.py:12) -> b (b.py:40) -> a' lines."""
    hops = []
    for a, b in zip(cycle, cycle[1:], strict=False):
        where = modules[a].relative_to(ROOT)
        hops.append(f"{a} imports {b} ({where}:{graph[a][b]})")
    return "import cycle: " + "; ".join(hops)


def test_the_graph_sees_function_local_and_type_checking_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle hidden in a function or under TYPE_CHECKING is still a cycle."""
    (tmp_path / "a.py").write_text("def f():\n    from pkg import b\n")
    (tmp_path / "b.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from pkg.c import X\n")
    (tmp_path / "c.py").write_text("from .a import f\n")
    modules = {f"pkg.{p.stem}": p for p in tmp_path.glob("*.py")}
    graph = import_graph(modules)
    assert graph == {"pkg.a": {"pkg.b": 2}, "pkg.b": {"pkg.c": 3}, "pkg.c": {"pkg.a": 1}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    del graph["pkg.c"]["pkg.a"]
    assert find_cycle(graph) is None


def test_the_safety_core_has_no_import_cycle() -> None:
    modules = module_files()
    graph = import_graph(modules)
    assert len(graph) > 20 and "cobotguard.safety.link.setup" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, describe(cycle, graph, modules)


@pytest.mark.parametrize("forbidden", FORBIDDEN)
def test_the_safety_core_never_imports_the_rig_the_sensor_path_or_onnxruntime(forbidden: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in module_files().items()
        for name, line in imported_names(module, path)
        if name == forbidden or name.startswith(forbidden + ".")
    ]
    assert not found, "\n".join(found)


def test_no_code_imports_the_bare_folder_names() -> None:
    """`import safety` would find PyPI's scanner (or nothing) once installed: only cobotguard.* names."""
    found = []
    for tree in PYTHON_TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
                    for name in names
                    if name.split(".")[0] in FOLDERS
                ]
    assert not found, "\n".join(found)


def test_the_wheel_installs_only_under_the_distributions_name() -> None:
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert setuptools["package-dir"] == {f"{DISTRIBUTION}.{folder}": folder for folder in FOLDERS}
    packages = setuptools["packages"]
    assert all(name.startswith(f"{DISTRIBUTION}.") for name in packages), packages
    # every folder with an __init__.py is listed, so nothing is left out of the wheel
    on_disk = {
        ".".join((DISTRIBUTION, *init.parent.relative_to(ROOT).parts))
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert on_disk == set(packages)
