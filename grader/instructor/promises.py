"""The promise map: every behaviour an exercise docstring promises, and the graded tests that check it.

``tests/promises.toml`` lists, per exercise, each sentence of a docstring in ``solutions/exN_*.py`` that
promises behaviour (a value, a type, an error and its message, an accepted input kind, a dtype, a side effect
that must not happen) with the graded tests that fail when that promise alone is broken::

    [[promise]]
    where = "ex1_special_tokens.SpecialTokenizer.decode"     # module[.Class].function, or the module
    says = "An id that is not an int in ``0 .. vocab_size - 1`` -> ``ValueError`` naming that id"
    tests = ["test_decode_unknown_id_raises"]                 # test functions of that exercise's suites

and, per exercise docstring whose sentences were all looked at, its fingerprint::

    [[docstring]]
    where = "ex1_special_tokens.SpecialTokenizer.decode"
    reviewed = "8ae9daeab610" The check
(:func:`check_promises`, part of ``make check``) fails when:

* a promise has no test, or names a test that is not in the exercise's visible or hidden suite (a test was
  deleted or renamed: the promise lost its test);
* the text a promise quotes is no longer in its docstring (the docstring changed under the map);
* a docstring of the exercise (the module's, and that of every function or class with a solution block) has
  no promise, or its fingerprint differs from the reviewed one: a sentence was added or changed, so its
  promises must be looked at again (the message gives the new fingerprint to record once they are).

Quotes are compared with whitespace collapsed, so re-wrapping a docstring does not break the map.
"""

from __future__ import annotations

import ast
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from grader import results
from grader.course import REPO_ROOT, TESTS_DIR, Block, segments

PROMISES_NAME = "promises.toml"


@dataclass(frozen=True)
class Promise:
    where: str
    says: str
    tests: tuple[str, ...]


def normalise(text: str) -> str:
    return " ".join(text.split())


def fingerprint(docstring: str) -> str:
    return hashlib.sha256(normalise(docstring).encode()).hexdigest()[:12]


def exercise_docstrings(path: Path) -> dict[str, str]:
    """``module[.Class].function`` -> docstring, for the module and every function or class of ``path`` that
    holds a solution block (the given helpers, such as plots, have no promises to keep)."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    module = path.stem
    out = {module: ast.get_docstring(tree) or ""}

    blocks = [part.line for part in segments(text) if isinstance(part, Block)]

    def has_block(node) -> bool:
        return any(node.lineno <= line <= node.end_lineno for line in blocks)

    def visit(body, prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and has_block(node):
                name = f"{prefix}.{node.name}"
                doc = ast.get_docstring(node)
                if doc:
                    out[name] = doc
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name)

    visit(tree.body, module)
    return out


def graded_tests(tests_dir: Path, module: str) -> set[str]:
    """Names of the graded test functions of one exercise (its visible and hidden suites)."""
    ex = module.split("_", 1)[0]
    names: set[str] = set()
    for path in sorted(tests_dir.glob(f"test_{ex}_*.py")) + sorted((tests_dir / "hidden").glob(f"test_{ex}_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def load_map(tests_dir: Path = TESTS_DIR) -> tuple[list[Promise], dict[str, str]]:
    path = tests_dir / PROMISES_NAME
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    promises = [
        Promise(str(p.get("where", "")), str(p.get("says", "")), tuple(str(t) for t in p.get("tests", [])))
        for p in data.get("promise", [])
    ]
    return promises, {str(d.get("where", "")): str(d.get("reviewed", "")) for d in data.get("docstring", [])}


def check_promises(tests_dir: Path = TESTS_DIR, solutions: Path = REPO_ROOT / "solutions") -> tuple[bool, list[str]]:
    """(ok, problems): every promise has a test that exists, quotes its docstring, and every docstring is mapped."""
    tests_dir = Path(tests_dir)
    if not (tests_dir / PROMISES_NAME).is_file():
        return False, [f"no promise map: {tests_dir / PROMISES_NAME}"]
    promises, reviewed = load_map(tests_dir)
    problems: list[str] = []
    docstrings: dict[str, str] = {}
    tests: dict[str, set[str]] = {}
    for meta in results.load_points(tests_dir).values():
        module = meta["name"]
        docstrings.update(exercise_docstrings(solutions / f"{module}.py"))
        tests[module] = graded_tests(tests_dir, module)
    mapped: dict[str, int] = {}
    for p in promises:
        label = f"promise {p.says[:70]!r} ({p.where})"
        if p.where not in docstrings:
            problems.append(f"{label}: no exercise docstring named {p.where!r}")
            continue
        mapped[p.where] = mapped.get(p.where, 0) + 1
        if not p.says.strip() or normalise(p.says) not in normalise(docstrings[p.where]):
            problems.append(f"{label}: this text is not in the docstring any more")
        if not p.tests:
            problems.append(f"{label}: no test checks it")
        module = p.where.split(".", 1)[0]
        for name in p.tests:
            if name not in tests.get(module, set()):
                problems.append(f"{label}: its test {name} is not in the graded suites of {module}")
    for where, doc in docstrings.items():
        if not mapped.get(where):
            problems.append(f"the docstring of {where} has no promise in {PROMISES_NAME}")
        elif reviewed.get(where) != fingerprint(doc):
            problems.append(
                f"the docstring of {where} changed since its promises were mapped: review them, then set its "
                f'[[docstring]] entry to reviewed = "{fingerprint(doc)}" in {PROMISES_NAME}'
            )
    for where in sorted(set(reviewed) - set(docstrings)):
        problems.append(f"a [[docstring]] entry names {where!r}, which is no exercise docstring: drop it")
    return not problems, problems


def summary(tests_dir: Path = TESTS_DIR) -> str:
    promises, _ = load_map(tests_dir)
    per: dict[str, int] = {}
    for p in promises:
        ex = p.where.split("_", 1)[0]
        per[ex] = per.get(ex, 0) + 1
    return ", ".join(f"{ex} {n}" for ex, n in sorted(per.items()))
