"""The promise map (tests/promises.toml, grader/instructor/promises.py): every behaviour an exercise docstring promises has a
graded test, and `make check` fails as soon as one loses it."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from grader.instructor import check as check_module
from grader.instructor import promises
from grader.grading import REPO_ROOT, TESTS_DIR


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    """A copy of tests/ that a test may break."""
    copy = tmp_path / "tests"
    shutil.copytree(TESTS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def remove_test(path: Path, name: str) -> None:
    """Delete the function ``name`` (with its decorators) from the test file ``path``."""
    text = path.read_text(encoding="utf-8")
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = text.splitlines(keepends=True)
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    path.write_text("".join(lines[:start] + lines[node.end_lineno:]), encoding="utf-8")


def test_every_promise_has_a_test():
    ok, problems = promises.check_promises()
    assert ok, "\n".join(problems)


def test_every_exercise_has_promises_in_every_docstring():
    mapped, _ = promises.load_map()
    per_exercise = {p.where.split("_", 1)[0] for p in mapped}
    assert per_exercise == {"ex1", "ex2", "ex3", "ex4"}
    assert len(mapped) >= 100


def test_check_fails_when_a_promise_loses_its_only_test(suites: Path):
    remove_test(suites / "hidden" / "test_ex1_special_tokens_hidden.py", "test_load_missing_file_raises_file_not_found")
    ok, problems = promises.check_promises(suites)
    assert not ok
    assert any("FileNotFoundError" in p and "test_load_missing_file_raises_file_not_found is not in the graded"
               in p for p in problems), problems


def test_check_fails_when_a_promise_lists_no_test(suites: Path):
    text = (suites / "promises.toml").read_text(encoding="utf-8")
    text = text.replace('tests = ["test_load_missing_file_raises_file_not_found"]', "tests = []", 1)
    (suites / "promises.toml").write_text(text, encoding="utf-8")
    ok, problems = promises.check_promises(suites)
    assert not ok and any("FileNotFoundError" in p and "no test checks it" in p for p in problems), problems


def test_check_fails_when_a_docstring_changes_under_the_map(tmp_path: Path):
    solutions = tmp_path / "solutions"
    shutil.copytree(REPO_ROOT / "solutions", solutions)
    path = solutions / "ex4_scaling.py"
    text = path.read_text(encoding="utf-8")
    text = text.replace("Raises ``ValueError`` if ``warmup < 0`` or ``repeats < 1``.",
                        "Raises ``ValueError`` if ``warmup < 0``. A new promise: ``fn`` is called with no argument.", 1)
    path.write_text(text, encoding="utf-8")
    ok, problems = promises.check_promises(solutions=solutions)
    assert not ok
    assert any("``repeats < 1``" in p and "not in the docstring any more" in p for p in problems), problems
    assert any("ex4_scaling.time_forward changed since its promises were mapped" in p for p in problems), problems


@pytest.mark.slow
def test_make_check_fails_when_a_promise_loses_its_test(suites: Path, monkeypatch, capsys):
    """`python -m grader check` (make check) runs the promise check: a lost test makes it fail."""
    remove_test(suites / "test_ex4_scaling.py", "test_crossover_length_balances_terms")
    remove_test(suites / "hidden" / "test_ex4_scaling_hidden.py", "test_crossover_length_splits_the_regimes")
    real = promises.check_promises
    monkeypatch.setattr(promises, "check_promises", lambda: real(suites))
    monkeypatch.setattr(check_module, "check_reference", lambda: (True, []))  # graded elsewhere (test_check.py)
    monkeypatch.setattr(check_module, "check_stubs", lambda: (True, []))
    assert check_module.check(verbose=True) is False
    out = capsys.readouterr().out
    assert "FAIL every docstring promise has a test" in out
    assert "test_crossover_length_balances_terms is not in the graded suites" in out
