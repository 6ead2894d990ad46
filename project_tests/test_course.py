"""The course's shape lives in one manifest: a fifth exercise needs its solution, its suites, one manifest entry
and `make stubs`, and every tool (check, release, batch, Gradescope, nbgrader) handles it with no other edit."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.course import Block, SolutionBlockError, exercise_of, render, segments
from grader.instructor.promises import fingerprint

REPO = Path(__file__).resolve().parent.parent

TOY_SOLUTION = '''"""Exercise 5: a toy. ``double(x)`` returns twice ``x``."""


def double(x: int) -> int:
    """Return ``2 * x``.

    >>> double(3)
    6
    """
    # BEGIN SOLUTION TODO: return twice x
    return 2 * x
    # END SOLUTION
'''

TOY_VISIBLE = '''import pytest

MODULE = "ex5_toy"


@pytest.mark.points(3)
@pytest.mark.parametrize("x", [1, 2, 21])  # not 0: zeros would pass it (make check grades placeholders)
def test_double_doubles(student, x):
    """double(x) returns 2 * x."""
    got = student(MODULE).double(x)
    assert got == 2 * x, f"expected {2 * x}, got {got}"
'''

TOY_HIDDEN = '''import pytest

MODULE = "ex5_toy"


@pytest.mark.points(2)
def test_double_negative(student):
    """double works for negative numbers."""
    assert student(MODULE).double(-4) == -8, "expected -8"
'''


TOY_PROMISES = '''
[[promise]]
where = "ex5_toy"
says = "``double(x)`` returns twice ``x``."
tests = ["test_double_doubles", "test_double_negative"]

[[promise]]
where = "ex5_toy.double"
says = "Return ``2 * x``."
tests = ["test_double_doubles"]

[[docstring]]
where = "ex5_toy"
reviewed = "%s"

[[docstring]]
where = "ex5_toy.double"
reviewed = "%s"
''' % (fingerprint('Exercise 5: a toy. ``double(x)`` returns twice ``x``.'), fingerprint("Return ``2 * x``.\n\n>>> double(3)\n6"))


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"grader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def course_with_ex5(tmp_path_factory) -> Path:
    """A copy of this repository (tracked and new files) with a fifth exercise added the documented way."""
    copy = tmp_path_factory.mktemp("course") / "repo"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    (copy / "solutions" / "ex5_toy.py").write_text(TOY_SOLUTION)
    (copy / "tests" / "test_ex5_toy.py").write_text(TOY_VISIBLE)
    (copy / "tests" / "hidden" / "test_ex5_toy_hidden.py").write_text(TOY_HIDDEN)
    manifest = json.loads((copy / "tests" / "points.json").read_text())
    manifest["ex5"] = {"name": "ex5_toy", "title": "Toy", "visible": 3, "hidden": 2}  # the one manifest entry
    (copy / "tests" / "points.json").write_text(json.dumps(manifest, indent=1))
    with (copy / "tests" / "promises.toml").open("a") as promises:  # its docstring's promises, and their tests
        promises.write(TOY_PROMISES)
    run(["stubs"], copy)
    return copy


@pytest.mark.slow
def test_fifth_exercise_in_check_release_batch_gradescope_nbgrader(course_with_ex5, tmp_path):
    copy = course_with_ex5
    stub = (copy / "exercises" / "ex5_toy.py").read_text()
    assert 'raise NotImplementedError("ex5: return twice x")' in stub and "return 2 * x" not in stub

    out = run(["check"], copy).stdout
    assert "ok   reference scores full marks" in out and "ok   stubs score 0" in out

    run(["release", "--out", str(tmp_path / "student")], copy)
    release = tmp_path / "student"
    assert (release / "exercises" / "ex5_toy.py").is_file() and (release / "tests" / "test_ex5_toy.py").is_file()
    assert not (release / "solutions").exists() and not (release / "tests" / "hidden").exists()

    subs = tmp_path / "subs" / "alice"
    subs.mkdir(parents=True)
    for path in (copy / "solutions").glob("ex*_*.py"):
        shutil.copy(path, subs / path.name)
    run(["batch", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--jobs", "1"], copy)
    with open(tmp_path / "out" / "grades.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["ex5"], row["total"], row["max"]) == ("5", "105", "105")

    run(["gradescope", "--out", str(tmp_path / "gs")], copy)
    with zipfile.ZipFile(next((tmp_path / "gs").glob("*.zip"))) as zf:
        names = set(zf.namelist())
    assert {"tests/test_ex5_toy.py", "tests/hidden/test_ex5_toy_hidden.py"} <= names

    run(["nbgrader", "--out", str(tmp_path / "nb")], copy)
    notebook = next((tmp_path / "nb" / "source").rglob("*.ipynb")).read_text()
    assert "%%exercise ex5_toy" in notebook


def test_one_parser_for_solution_blocks():
    text = "a\n    # BEGIN SOLUTION TODO: do it\n    x = 1\n    # END SOLUTION\nb\n"
    parts = segments(text)
    assert parts[0] == "a\n" and parts[2] == "b\n" and isinstance(parts[1], Block)
    assert (parts[1].indent, parts[1].todo, parts[1].body) == ("    ", "do it", ["    x = 1\n"])
    assert render(parts, lambda i, block: block.body) == "a\n    x = 1\nb\n"
    assert render(parts, lambda i, block: block.stub("ex9")) == (
        'a\n    # TODO: do it\n    raise NotImplementedError("ex9: do it")\nb\n')
    for broken in ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n", "# END SOLUTION\n", "# BEGIN SOLUTION\nx\n"):
        with pytest.raises(SolutionBlockError):
            segments(broken)


def test_exercise_ids_are_read_one_way():
    assert [exercise_of(n) for n in ("ex2_topk_attention.py", "test_ex12_x.py", "tests/hidden/test_ex3_y_hidden.py",
                                     "notes.py")] == ["ex2", "ex12", "ex3", None]
