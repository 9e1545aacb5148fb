"""docs/requirements.md against the tests and the code: every requirement shown by a test, no unknown IDs,
and the reasons the table names are the code's `Reason` codes (every link error class among them)."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from cobotguard.safety.link.endpoint import link_error_reasons
from cobotguard.safety.reasons import Reason

REPO = Path(__file__).resolve().parents[1]


def _load_trace_matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trace_matrix", REPO / "tools" / "trace_matrix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("trace_matrix", module)
    spec.loader.exec_module(module)
    return module


tm = _load_trace_matrix()


@pytest.fixture(scope="module")
def requirements() -> list:
    rows, problems = tm.parse_requirements()
    assert not problems, problems
    return rows


def test_the_table_is_well_formed(requirements: list) -> None:
    assert len(requirements) >= 50  # the table was read, not skipped
    groups = {r.id.rsplit("-", 1)[0] for r in requirements}
    assert {
        "SR-SSM",
        "SR-ZONE",
        "SR-SENS",
        "SR-ROB",
        "SR-RST",
        "SR-LINK",
        "SR-EXE",
        "SR-BUD",
        "SR-CFG",
    } <= groups
    for group in groups:  # numbered 1..n without gaps
        numbers = sorted(int(r.id.rsplit("-", 1)[1]) for r in requirements if r.id.startswith(group + "-"))
        assert numbers == list(range(1, len(numbers) + 1)), group


def test_every_requirement_has_a_test_and_every_test_names_a_known_one(requirements: list) -> None:
    marks, problems = tm.collect_markers()
    problems += tm.check(requirements, marks)
    assert not problems, "\n".join(problems)


def test_every_reason_named_is_a_reason_and_every_reason_is_named(requirements: list) -> None:
    named = {reason for r in requirements for reason in r.reasons}
    unknown = sorted(named - set(Reason.__members__))
    assert not unknown, f"docs/requirements.md names reasons that are not Reason members: {unknown}"
    unnamed = sorted(set(Reason.__members__) - named)
    assert not unnamed, (
        f"Reason {', '.join(unnamed)} is named by no requirement: add it to the reasons column of the "
        "requirement in docs/requirements.md whose behaviour produces it"
    )


def test_every_link_error_class_has_its_own_link_requirement(requirements: list) -> None:
    by_reason: dict[str, list[str]] = {}
    for r in requirements:
        if r.id.startswith("SR-LINK-"):
            for reason in r.reasons:
                by_reason.setdefault(reason, []).append(r.id)
    for reason in link_error_reasons():
        ids = by_reason.get(reason.name, [])
        assert len(ids) == 1, (
            f"link error class {reason.name} must be named by exactly one SR-LINK requirement in "
            f"docs/requirements.md, is named by {ids or 'none'}"
        )


def test_the_marker_is_registered_and_the_doc_links_the_matrix() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    markers = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("requirement(") for m in markers)
    assert "tools/trace_matrix.py" in tm.REQUIREMENTS_DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("table_row", "test_source", "expected"),
    [
        ("| SR-X-1 | a | b | - |", "", "SR-X-1 has no test"),
        (
            "| SR-X-1 | a | b | - |",
            '@pytest.mark.requirement("SR-X-2")\ndef test_a(): pass\n',
            "unknown requirement SR-X-2",
        ),
        ("| SR-X-1 | a | b | - |\n| SR-X-1 | c | d | - |", "", "SR-X-1 is repeated"),
        ("| X-1 | a | b | - |", "", "is not of the form"),
        ("| SR-X-1 | a | b |", "", "expected 4 columns"),
        (
            "| SR-X-1 | a | b | - |",
            "ID = 'SR-X-1'\n@pytest.mark.requirement(ID)\ndef test_a(): pass\n",
            "string literals",
        ),
        (
            "| SR-X-1 | a | b | - |",
            '@pytest.mark.requirement("SR-X-1")\ndef helper(): pass\n',
            "is not a test",
        ),
    ],
)
def test_the_checker_finds_each_kind_of_problem(
    tmp_path: Path, table_row: str, test_source: str, expected: str
) -> None:
    doc = tmp_path / "requirements.md"
    doc.write_text(
        f"<!-- requirements:begin -->\n| ID | r | s | reasons |\n|---|---|---|---|\n{table_row}\n"
        "<!-- requirements:end -->\n"
    )
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text("import pytest\n" + test_source)
    rows, problems = tm.parse_requirements(doc)
    marks, mark_problems = tm.collect_markers(tests)
    problems += mark_problems + tm.check(rows, marks)
    assert any(expected in p for p in problems), problems


def test_a_class_and_a_module_marker_reach_their_tests(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        'import pytest\npytestmark = [pytest.mark.requirement("SR-A-1")]\n'
        '@pytest.mark.requirement("SR-A-2")\nclass TestC:\n    def test_m(self): pass\n'
    )
    marks, problems = tm.collect_markers(tests)
    assert not problems
    assert marks == {"tests/test_x.py::TestC::test_m": ["SR-A-1", "SR-A-2"]}
