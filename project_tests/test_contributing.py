"""CONTRIBUTING.md cannot drift silently: every repository path it names exists; its "add an exercise" row names
exactly the files project_tests/test_course.py's fifth exercise touches; its LMS row every module that names
Canvas and Moodle in code; its wire row every module that sends or handles a judge-to-worker request."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = (REPO / "CONTRIBUTING.md").read_text()
# a path in backticks: a top-level folder of this repository, then at least one more part
PATH = re.compile(r"`((?:grader|project_tests|tests|solutions|exercises|bench|llm_basics|resources)/[\w./-]+?)`")


def _concrete(path: str) -> str:
    """The row's placeholder exercise (exN_name) as the fifth exercise of test_course.py (ex5_toy)."""
    return path.replace("exN_name", "ex5_toy").replace("exN_", "ex5_")


def test_every_path_contributing_names_exists():
    named = {p.rstrip("/.") for p in PATH.findall(DOC) if "exN" not in p and "*" not in p and "<" not in p}
    assert named, "no path found in CONTRIBUTING.md: the pattern no longer matches its style"
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"CONTRIBUTING.md names paths that do not exist: {missing}"


def test_the_add_an_exercise_row_names_the_files_the_fifth_exercise_touches():
    row = next(line for line in DOC.splitlines() if line.startswith("| add an exercise |"))
    named = {_concrete(p) for p in PATH.findall(row) if "exN" in p or p.endswith((".json", ".toml"))}
    named -= {"project_tests/test_course.py", "project_tests/test_contributing.py"}
    source = (REPO / "project_tests" / "test_course.py").read_text()
    written = {"/".join(re.findall(r'"([^"]+)"', chain))
               for chain in re.findall(r'\(copy((?: / "[^"]+")+)\)\.(?:write_text|open)', source)}
    written.add("exercises/ex5_toy.py")  # what `make stubs` writes (test_course.py runs it, then reads this file)
    assert '"exercises" / "ex5_toy.py"' in source and 'run(["stubs"]' in source
    assert named == written, f"CONTRIBUTING names {sorted(named)}, test_course.py touches {sorted(written)}"


def _row(title: str) -> str:
    return next(line for line in DOC.splitlines() if line.startswith(f"| {title} |"))


def _strings(path: Path) -> str:
    """Every string constant of a module but its docstrings: what the code says, not what it explains."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return "\n".join(node.value for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs)


def test_the_lms_row_names_every_module_that_knows_an_lms_by_name():
    """A new LMS goes wherever Canvas and Moodle are named in code (a pattern, a merge, a choice, a help line)."""
    named = {p for p in PATH.findall(_row("support a new LMS")) if p.startswith("grader/")}
    knowing = {p.relative_to(REPO).as_posix() for p in sorted((REPO / "grader").rglob("*.py"))
               if re.search(r"moodle", _strings(p), re.I) and re.search(r"canvas", _strings(p), re.I)}
    assert named == knowing, f"the row names {sorted(named)}; Canvas and Moodle are named in {sorted(knowing)}"


def test_the_wire_row_names_every_module_that_sends_or_handles_a_request():
    """A new judge-to-worker operation is named in OPS, sent by the client or a proxy, handled by the worker."""
    from grader.worker import wire

    requests = sorted({name for name, value in vars(wire).items()
                       if name.isupper() and isinstance(value, str) and ("judge", value) in wire.OPS})
    assert requests, "wire.py names no operation the judge sends: the row's check has nothing to check"
    pattern = re.compile(r"\bwire\.(" + "|".join(requests) + r")\b")
    using = {p.relative_to(REPO).as_posix() for p in sorted((REPO / "grader").rglob("*.py"))
             if pattern.search(p.read_text())}
    change = _row("add a wire operation (judge <-> worker)").split(" | ")[1]
    named = set(PATH.findall(change))
    assert named == using | {"grader/worker/wire.py"}, f"the row names {sorted(named)}; requests are in {sorted(using)}"
