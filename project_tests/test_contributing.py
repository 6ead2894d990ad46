"""CONTRIBUTING.md cannot drift silently: every repository path it names exists, and its "add an exercise" row
names exactly the files project_tests/test_course.py's fifth exercise touches."""

from __future__ import annotations

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
