"""Write the nbgrader course (``make nbgrader``): the lesson as one notebook, generated from the single source.

    python -m grader nbgrader --out dist/nbgrader

writes::

    dist/nbgrader/
        nbgrader_config.py           course settings (stubs, feedback filter, cell timeout)
        README.md                    the nbgrader commands, in order
        source/lesson1/lesson1.ipynb the instructor's notebook: lesson text, walkthrough code, four exercises
        source/lesson1/tests/        the visible suites (with conftest.py, points.json), shipped with the notebook

Each exercise reads like a handout, made from ``solutions/``, ``tests/`` and ``tests/hidden/``:

1. its task: the module docstring, as text;
2. the module's code, a cell per function or class to write (``%%exercise exN_name``; nbgrader solution
   cells, whose ``# BEGIN SOLUTION TODO: ...`` blocks become ``### BEGIN SOLUTION`` under a ``# TODO: ...`` line),
   with the given code (imports, helpers) in read-only cells between them; the first cell has ``--start``.
   ``generate_assignment`` turns each block into the stub of ``exercises/`` (``TodoStubs``);
3. an autograded cell ``%%graded_tests test_exN_name.py 15`` that runs the visible suite from ``tests/``;
4. an autograded cell ``%%graded_tests hidden/test_exN_name_hidden.py 10`` for the hidden suite: no hidden test
   is in any notebook, and released cells are their source cells (no "checksum changed" warnings).

While ``nbgrader autograde`` runs, no test runs in the student's kernel: ``JudgeBeforeKernel`` grades the
notebook's ``%%exercise`` code with the judge first (hidden tests included, the code in the confined worker), the
test cells show those results (hints and points for hidden tests), and the kernel starts in a mount namespace
where ``tests/hidden/`` and ``solutions/`` are empty (``grader.platforms.nbgrader.kernel``), so a cell that reads them gets
nothing and the feedback needs no redaction.

The magics live in ``grader.platforms.nbgrader.cell``: a test cell grades the saved module and leaves the points earned as
its value (nbgrader's partial credit). That value is computed inside the student's own kernel, which also runs
any cell the student added, so it is feedback, not a grade: ``nbgrader export`` (``grades.csv``) shows it as is.

``nbgrader export --exporter grader.platforms.nbgrader.export.ExerciseScoresExport`` writes the grades
(``exercise_grades.csv``, a column per exercise): it takes the ``%%exercise`` cells of each SUBMITTED notebook
and grades that code with ``grader.grading.grade`` (the judge, hidden tests included), the one grading path of
``python -m grader``. nbgrader's kernel total is kept beside it (``kernel_score``), and ``review`` says when the
two disagree, so an instructor can look at that notebook.

This module imports nothing heavy, so that ``python -m grader`` stays fast without nbgrader installed.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import results
from grader.platforms.nbgrader.cell import MODULE_RE
from grader.untrusted import csv_row
from grader.course import BEGIN, END, SOLUTIONS, Block, SolutionBlockError, exercise_of, render, segments

REPO_ROOT = Path(__file__).resolve().parents[3]  # grader/platforms/nbgrader/ -> the repository
TESTS_DIR = REPO_ROOT / "tests"
LESSON_DIR = REPO_ROOT / "resources" / "lesson-1-llm-basics"
DEFAULT_OUT = Path("dist/nbgrader")

COURSE_ID = "llm-basics"
ASSIGNMENT = "lesson1"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
EXERCISE_CSV = "exercise_grades.csv"

# Where things go: after the lesson section whose heading starts with this number.
WALKTHROUGHS_AFTER = {"2.": "step1_tokenizer_basics.py", "3.": "step2_attention_and_transformer.py"}
SECTIONS_LEFT_OUT = ("6.", "7.")  # how to run the scripts and `make grade`: the notebook says it its own way

# nbgrader's delimiters: none of them may appear anywhere else in a cell, or nbgrader misreads the cell.
NB_DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
CODE_STUB = 'raise NotImplementedError("write this part: see the TODO line above")'
CELL_TIMEOUT = 1800  # s; each graded test inside a cell has its own limit (grader.judge.session.DEFAULT_TIMEOUT)


class CourseError(ValueError):
    """The single source cannot be turned into a notebook (the message says which file and why)."""


# ----------------------------------------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------------------------------------


def _meta(grade_id: str, *, solution=False, grade=False, locked=True, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _cell(kind: str, source: str, cell_id: str, metadata: dict | None = None) -> dict:
    cell = {"cell_type": kind, "id": cell_id, "metadata": metadata or {}, "source": source.strip("\n")}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def markdown(source: str, grade_id: str) -> dict:
    return _cell("markdown", source, grade_id, _meta(grade_id))


def read_only_code(source: str, grade_id: str) -> dict:
    return _cell("code", source, grade_id, _meta(grade_id))


def _check_delimiters(text: str, where: str) -> None:
    for line_no, line in enumerate(text.splitlines(), start=1):
        for word in NB_DELIMITERS:
            if word in line:
                raise CourseError(f"{where} line {line_no} contains {word!r}, which nbgrader reads as a marker")


def nbgrader_solution(source: str, where: str = "solution") -> str:
    """Our solution markers -> nbgrader's: ``# BEGIN SOLUTION TODO: x`` gives ``# TODO: x`` + ``### BEGIN SOLUTION``."""
    try:
        parts = segments(source)
    except SolutionBlockError as exc:
        raise CourseError(f"{where} {exc}") from None
    for line_no, line in enumerate(source.splitlines(), start=1):
        if not (BEGIN.match(line) or END.match(line)):
            _check_delimiters(line, f"{where} line {line_no}")

    def fenced(_, block):
        return [f"{block.indent}# TODO: {block.todo}\n", f"{block.indent}### BEGIN SOLUTION\n", *block.body,
                f"{block.indent}### END SOLUTION\n"]

    return render(parts, fenced).rstrip("\n")


def docstring_markdown(doc: str, *, drop_title: str = "") -> str:
    """A module docstring as notebook text: reST's ``::`` before a literal block becomes ``:`` (the indented block
    that follows is already a Markdown code block), the rest reads the same in Markdown. A first line that starts
    with ``drop_title`` (the cell's heading says it) is left out."""
    lines = []
    text = doc.strip("\n")
    if drop_title and text.startswith(drop_title):
        text = text.partition("\n")[2].strip("\n")
    for line in text.splitlines():
        if line.rstrip().endswith("::"):
            line = line.rstrip()[:-2].rstrip() + ":" if line.strip() != "::" else ""
        lines.append(line)
    return "\n".join(lines)


def split_module(source: str, where: str) -> tuple[str, list[tuple[str, str]]]:
    """(module docstring, [(kind, code)]): the exercise module in the pieces a handout shows, in file order.

    Each top-level function or class that holds a solution block is a piece of kind ``"solution"``; the code
    between them (imports, constants, the given helpers) is a piece of kind ``"given"``; the module docstring and
    the ``if __name__ == "__main__":`` block are left out. Comments just above a definition stay with it. The
    pieces joined with blank lines are the module again, without its docstring and main block.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CourseError(f"{where} line {exc.lineno}: {exc.msg}") from None
    lines = source.splitlines()
    body = list(tree.body)
    doc = ""
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        doc = body[0].value.value
        body = body[1:]
    spans: list[list] = []  # [kind, first line, last line] (0-based, end exclusive)
    previous_end = tree.body[0].end_lineno if doc else 0
    for node in body:
        end = node.end_lineno
        while end < len(lines) and END.match(lines[end]):  # a block that ends the function ends after its code
            end += 1
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            previous_end = end
            continue
        kind = "solution" if any(BEGIN.match(line) for line in lines[previous_end:end]) else "given"
        if kind == "given" and spans and spans[-1][0] == "given" and spans[-1][2] == previous_end:
            spans[-1][2] = end  # consecutive given code stays one piece, blank lines and all
        else:
            spans.append([kind, previous_end, end])
        previous_end = end
    return doc, [(kind, "\n".join(lines[first:last]).strip("\n")) for kind, first, last in spans]


def _count(n: float) -> str:
    return f"{n:g} point" + ("" if n == 1 else "s")


def exercise_cells(ex: str, meta: dict, solution: str, visible: str, hidden: str | None) -> list[dict]:
    """The cells of one exercise, a handout: the task (the module docstring), the module's code split into a
    cell per function to write (given code read-only between them), then two short test cells.

    The test cells hold no tests: the visible suite is a file shipped with the notebook (``tests/``), the hidden
    suite is read from the instructor's repository when nbgrader grades (so it is in no notebook, released,
    autograded or fed back). ``visible`` and ``hidden`` are the suites' text, checked for nbgrader's markers.
    """
    name, title = meta["name"], meta["title"]
    total = meta["visible"] + meta["hidden"]
    where = f"solutions/{name}.py"
    doc, pieces = split_module(solution, where)
    first_solution = next((i for i, (kind, _) in enumerate(pieces) if kind == "solution"), None)
    if first_solution is None:
        raise CourseError(f"{where}: no solution block, so nothing for a student to write")
    intro = (
        f"## Exercise {ex[2:]}: {title} ({_count(total)})\n\n"
        + (docstring_markdown(doc, drop_title=f"Exercise {ex[2:]}") + "\n\n" if doc else "")
        + f"**How to answer.** The cells below are the module `{name}.py`, one function (or class) per cell. Fill "
        f"in every `TODO`: replace its `raise NotImplementedError(...)` with your code. Keep each cell's first "
        f"line (`%%exercise {name}`): running the cells top to bottom saves them together as `{name}.py`, the "
        f"file that is graded, and imports it, so that you can try your functions in a new cell. The grey cells "
        f"hold given code (imports, helpers): run them too.\n\n"
        f"After the exercise, one cell runs the visible tests ({_count(meta['visible'])}, from "
        f"`tests/test_{name}.py` beside this notebook) and prints every lost point with a hint; the last one stands "
        f"for the hidden tests ({_count(meta['hidden'])}), which run when your notebook is graded."
    )
    cells = [markdown(intro, f"{ex}_intro")]
    for i, (kind, code) in enumerate(pieces):
        magic = f"%%exercise {name}" + (" --start" if i == 0 else "")
        number = sum(1 for k, _ in pieces[:i + 1] if k == kind)
        if kind == "solution":
            grade_id = f"{ex}_solution" if number == 1 else f"{ex}_solution{number}"
            cells.append(_cell("code", f"{magic}\n{nbgrader_solution(code, where)}", grade_id,
                               _meta(grade_id, solution=True, locked=False)))
        else:
            _check_delimiters(code, where)
            cells.append(read_only_code(f"{magic}\n{code}", f"{ex}_given{number}"))
    test_file = f"test_{name}.py"
    _check_delimiters(visible, f"tests/{test_file}")
    cells.append(_cell(
        "code",
        f"%%graded_tests {test_file} {meta['visible']:g}\n"
        f"# the visible tests of exercise {ex[2:]}: tests/{test_file}, beside this notebook",
        f"{ex}_visible_tests", _meta(f"{ex}_visible_tests", grade=True, points=meta["visible"])))
    if hidden is not None and meta["hidden"]:
        hidden_file = f"hidden/test_{name}_hidden.py"
        _check_delimiters(hidden, f"tests/{hidden_file}")
        cells.append(_cell(
            "code",
            f"%%graded_tests {hidden_file} {meta['hidden']:g}\n"
            f"# {_count(meta['hidden'])} of hidden tests: they run when your notebook is graded",
            f"{ex}_hidden_tests", _meta(f"{ex}_hidden_tests", grade=True, points=meta["hidden"])))
    return cells


# ----------------------------------------------------------------------------------------------------------
# The lesson text and the walkthrough code
# ----------------------------------------------------------------------------------------------------------


def lesson_sections(readme: str) -> tuple[str, list[tuple[str, str]]]:
    """(text before the first ``## ``, [(heading, section text with its heading)])."""
    parts = re.split(r"(?m)^(?=## )", readme)
    head, sections = parts[0], []
    for part in parts[1:]:
        heading = part.splitlines()[0][3:].strip()
        sections.append((heading, part.strip()))
    return head.strip(), sections


def walkthrough_cells(script: Path, tag: str) -> list[dict]:
    """A step script as read-only cells: its docstring as text, its code split at the ``# ----`` rulers.

    Lines that only make the script runnable from a clone (``sys.path``, ``__file__``) are left out, and
    ``if __name__ == "__main__": main()`` becomes a plain ``main()``. Each code cell runs through
    ``%%walkthrough``, which skips it while nbgrader grades.
    """
    text = script.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    doc = ast.get_docstring(tree) or script.stem
    drop: set[int] = set()  # 0-based line numbers to leave out
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        drop.update(range(body[0].lineno - 1, body[0].end_lineno))
    for node in body:
        segment = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        is_main = isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
        if is_main or (not isinstance(node, (ast.FunctionDef, ast.ClassDef)) and
                       ("__file__" in segment or "sys.path" in segment)):
            drop.update(range(node.lineno - 1, node.end_lineno))
            before = node.lineno - 2
            while before >= 0 and lines[before].lstrip().startswith("#") and not _is_ruler(lines[before]):
                drop.add(before)  # the comment that explains the dropped lines
                before -= 1
            if is_main:
                lines[node.lineno - 1] = "main()" if "main()" in segment else ""
                drop.discard(node.lineno - 1)
    chunks: list[list[str]] = [[]]
    for number, line in enumerate(lines):
        if number in drop:
            continue
        if _is_ruler(line):
            chunks.append([])
            continue
        if line == "main()":
            chunks.append([line])
            continue
        chunks[-1].append(re.sub(r"\s+# noqa: E402$", "", line))
    title, _, rest = doc.partition("\n")
    intro = f"### Walkthrough: {title.strip()}\n\nFrom `{script.name}`" + (
        f"\n\n```text\n{rest.strip()}\n```" if rest.strip() else ""
    ) + "\n\nThese cells are read-only: to experiment, copy one into a new cell."
    cells = [markdown(intro, f"{tag}_intro")]
    for number, chunk in enumerate(c for c in chunks if "".join(c).strip()):
        while chunk and not chunk[0].strip():
            chunk = chunk[1:]
        cells.append(read_only_code("%%walkthrough\n" + "\n".join(chunk).rstrip(), f"{tag}_code{number + 1}"))
    return cells


def _is_ruler(line: str) -> bool:
    return bool(re.match(r"^# ?-{20,}\s*$", line))


def _section_number(heading: str) -> str:
    return heading.split()[0] if heading and heading.split()[0].rstrip(".").isdigit() else ""


NOTEBOOK_INTRO = """
## How this notebook works

- Run the cells from the top. The first code cell loads the grading helpers (it takes a few seconds).
- The lesson's text is here, with the walkthrough code of steps 1 and 2; the lesson's own code is the
  `llm_basics` package, so read it next to this notebook.
- Each exercise is a cell that starts with `%%exercise`: fill in the `TODO`s. The cell after it runs the
  visible tests and shows your points for them; hidden tests run when the notebook is graded.
- Grading runs the whole notebook from the top in a fresh kernel: only the exercise cells are graded, and
  walkthrough cells are skipped.
"""


def build_notebook(
    *, solutions: Path = SOLUTIONS, tests_dir: Path = TESTS_DIR, lesson_dir: Path = LESSON_DIR
) -> dict:
    """The instructor's notebook (nbformat 4 as a plain dict)."""
    points = results.load_points(tests_dir)
    head, sections = lesson_sections((lesson_dir / "README.md").read_text())
    cells = [
        markdown(head + "\n" + NOTEBOOK_INTRO, "title"),
        read_only_code("%load_ext grader.platforms.nbgrader.cell", "setup"),
    ]
    placed: set[str] = set()

    def add_exercises(number: str | None) -> None:
        for ex, meta in points.items():
            if ex in placed or (number is not None and meta.get("lesson_section") != number):
                continue
            source = solutions / f"{meta['name']}.py"
            visible = tests_dir / f"test_{meta['name']}.py"
            hidden = tests_dir / "hidden" / f"test_{meta['name']}_hidden.py"
            if not source.is_file() or not visible.is_file():
                continue  # not written yet: the course holds the exercises that exist
            cells.extend(exercise_cells(ex, meta, source.read_text(), visible.read_text(),
                                        hidden.read_text() if hidden.is_file() else None))
            placed.add(ex)

    for index, (heading, text) in enumerate(sections):
        number = _section_number(heading)
        if number in SECTIONS_LEFT_OUT:
            continue
        cells.append(markdown(text, f"lesson_{index + 1}"))
        script = WALKTHROUGHS_AFTER.get(number)
        if script and (lesson_dir / script).is_file():
            cells.extend(walkthrough_cells(lesson_dir / script, f"step{script[4]}"))
        add_exercises(number)
    add_exercises(None)  # anything whose section is gone goes at the end
    if not placed:
        raise CourseError(f"no exercise has both solutions/exN_*.py and tests/test_exN_*.py in {tests_dir.parent}")
    step3 = next(iter(sorted(lesson_dir.glob("step3_*.py"))), None)
    if step3 is not None:
        cells.append(markdown(
            "## More\n\nStep 3 of the walkthrough trains a tiny model on this lesson and generates text "
            f"(about 20 s). It is a script: run `python resources/lesson-1-llm-basics/{step3.name}` in a "
            "terminal, or `make walkthrough` for all three steps.", "more"))
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


# ----------------------------------------------------------------------------------------------------------
# The course folder
# ----------------------------------------------------------------------------------------------------------

CONFIG = f'''\
# nbgrader settings of the lesson-1 course, written by `python -m grader nbgrader` (do not edit: regenerate).
c = get_config()  # noqa: F821 - nbgrader provides get_config

c.CourseDirectory.course_id = "{COURSE_ID}"

# Every ### BEGIN SOLUTION ... ### END SOLUTION block becomes the stub of exercises/, under the block's
# "# TODO: ..." line: raise NotImplementedError("exN: <that TODO>"). (This generic stub is nbgrader's fallback.)
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}

# A test cell runs a whole graded suite in a sandboxed child process, where every test has its own time
# limit; the cell limit only has to stop a runaway cell that the student added.
c.Execute.timeout = {CELL_TIMEOUT}

# Never copy a hypothesis cache from one step to the next (generate_feedback copies every file of the autograded
# folder): it holds literals of the modules a kernel imported. (The test cells keep theirs in a private folder.)
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".hypothesis"]

# nbgrader's own preprocessor lists, with one class swapped or added (grader.platforms.nbgrader.export):
# generate_assignment writes the stubs of exercises/ (TodoStubs instead of ClearSolutions), and
# autograde grades each notebook's code with the judge before its kernel starts (JudgeBeforeKernel: the test cells
# show those results) and starts the kernel with tests/hidden/ and solutions/ hidden from it (HiddenTestsExecute).
from grader.platforms.nbgrader.export import assignment_preprocessors, autograde_preprocessors  # noqa: E402

# Where user namespaces are missing, the kernel cannot be confined and could read the hidden tests: autograde says so
# once in its log and grades anyway. Uncomment to refuse instead (every notebook then fails to autograde there).
# c.HiddenTestsExecute.require_confinement = True

c.GenerateAssignment.preprocessors = assignment_preprocessors()
c.Autograde.autograde_preprocessors = autograde_preprocessors()
'''

COURSE_README = f"""\
# nbgrader course: lesson 1, LLM basics

Generated by `make nbgrader` from `solutions/`, `tests/` and the lesson text; regenerate rather than edit.
Run the commands from this folder, in the Python environment where the lesson repository is installed
(from the repository: `python3 grader/install.py --venv .venv --extras dev`, which brings nbgrader with uv and the
versions of `requirements.lock`): the notebook's kernel imports `llm_basics` and `grader`, and
`nbgrader_config.py` imports `grader`.

    nbgrader generate_assignment {ASSIGNMENT}      # release/{ASSIGNMENT}/: the notebook without solutions, and tests/
    # collect the students' notebooks as submitted/<student id>/{ASSIGNMENT}/{NOTEBOOK}
    nbgrader autograde {ASSIGNMENT}
    nbgrader export --exporter grader.platforms.nbgrader.export.ExerciseScoresExport   # {EXERCISE_CSV}: the grades
    nbgrader generate_feedback {ASSIGNMENT}        # feedback/<student id>/{ASSIGNMENT}/{ASSIGNMENT}.html

The assignment is the notebook and `tests/` beside it: the visible suites (and their `conftest.py` and
`points.json`), which the notebook's test cells run. Each exercise is a handout: its task, then the module's
code a cell per function (the stubs of `exercises/`), then two short test cells. The hidden tests are in no
notebook, and never within the reach of a student's kernel: `autograde` grades each notebook's code with this
repository's judge before its kernel starts (so grade where the repository is installed), the test cells show
those results (a hint and points per lost hidden test), and the kernel runs where `tests/hidden/` and
`solutions/` are empty folders (a user and mount namespace: Linux with unprivileged user namespaces). The
feedback shows every line of the notebook as written. Where user namespaces are missing, the grades are the same
but a cell a student adds can read the hidden tests: `autograde` says so once in its log ("NOT confined"), and
`c.HiddenTestsExecute.require_confinement = True` in `nbgrader_config.py` makes it refuse to start such a kernel instead.

The points that `autograde` records are computed in the student's own kernel, which runs every cell of the
notebook, including cells the student added: treat them (and `nbgrader export`'s grades.csv, and the
formgrader) as feedback. The exporter grades the code of each submitted notebook's `%%exercise` cells with the
repository's judge, hidden tests included, exactly as `python -m grader grade --hidden` would: its columns are
the grades. `kernel_score` is nbgrader's total, and `review` says when it differs from the judge's.

The kernel otherwise runs as you: it can read and write what you can, but the hidden tests and the solutions.
Where that matters, run `autograde` in a container or as a user of its own (one that cannot read the lesson
repository's `tests/hidden/` and `solutions/` where the kernel cannot be confined).

`autograde` prints no "checksum ... has changed" warning for an untouched notebook. (nbgrader warns when a
released read-only cell differs from its source, which a hidden-test block always made true: nbgrader issue
#1961. Here the released cells are the source cells.) Such a warning now means that a student changed a
read-only cell, which nbgrader then puts back.

The exporter grades one notebook after another (a few seconds each). For a large class, grade in parallel:

    python -m grader nbgrader --extract submitted --out py   # py/<student id>/exN_*.py
    python -m grader batch py --out grades --jobs 4
"""


SHIPPED_TESTS = ("conftest.py", "points.json")  # beside the visible suites, which need them


def build_course(out_dir: Path | str = DEFAULT_OUT, *, solutions: Path = SOLUTIONS, tests_dir: Path = TESTS_DIR,
                 lesson_dir: Path = LESSON_DIR) -> Path:
    """Write the nbgrader course folder and return it: the notebook, and the visible suites beside it."""
    out = Path(out_dir)
    notebook = build_notebook(solutions=solutions, tests_dir=tests_dir, lesson_dir=lesson_dir)
    source = out / "source" / ASSIGNMENT
    source.mkdir(parents=True, exist_ok=True)
    for stale in source.iterdir():  # the notebook and the visible tests only (never a .py with solutions)
        if stale.is_file():
            stale.unlink()
        elif stale.name == "tests":
            shutil.rmtree(stale)
    (source / NOTEBOOK).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    shipped = source / "tests"
    shipped.mkdir()
    names = {cell["source"].split()[1] for cell in notebook["cells"] if cell["source"].startswith("%%graded_tests ")}
    for name in sorted(n for n in names if "/" not in n) + list(SHIPPED_TESTS):
        shutil.copyfile(tests_dir / name, shipped / name)
    (out / "nbgrader_config.py").write_text(CONFIG)
    (out / "README.md").write_text(COURSE_README)
    return out


def exercise_sources(notebook: Path | str) -> dict[str, str]:
    """NAME -> code of the notebook's ``%%exercise NAME`` cells: the module a kernel run saves and grades.

    The cells of one name are joined in notebook order; a ``%%exercise NAME --start`` cell begins the module
    afresh (as running the notebook from the top does). A name that is not an exercise module name (``ex2_x``)
    is left out: the notebook is the student's, and ``%%exercise ../../x`` must not become a path.
    """
    try:
        return sources_of_cells(json.loads(Path(notebook).read_text())["cells"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{notebook}: not a readable notebook ({type(exc).__name__}: {exc})"[:300]) from None


def _source_of(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def sources_of_cells(cells: list[dict]) -> dict[str, str]:
    """``exercise_sources`` of a notebook's cells (raises KeyError, TypeError... on a malformed cell)."""
    pieces: dict[str, list[str]] = {}
    for cell in cells:
        source = _source_of(cell)
        first, _, body = source.partition("\n")
        words = first.split()
        if cell["cell_type"] != "code" or words[:1] != ["%%exercise"] or len(words) not in (2, 3):
            continue
        if not MODULE_RE.match(words[1]) or (len(words) == 3 and words[2] != "--start"):
            continue
        if len(words) == 3:
            pieces[words[1]] = []
        pieces.setdefault(words[1], []).append(body.strip("\n"))
    return {name: "\n\n\n".join(parts) + "\n" for name, parts in pieces.items()}


def extract_submission(notebook: Path | str, out_dir: Path | str) -> list[Path]:
    """Write every ``%%exercise`` cell of a notebook as ``<out_dir>/<name>.py``: the same code a cell grades."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in exercise_sources(notebook).items():
        path = out / f"{name}.py"
        path.write_text(body)
        written.append(path)
    return written


def find_notebooks(paths: list[Path | str]) -> tuple[dict[str, Path], list[str]]:
    """(student id -> notebook, problems) from notebook files and ``submitted/`` folders.

    A folder holds one subfolder per student (nbgrader's ``submitted/<student>/<assignment>/<notebook>``); the
    student's notebook is the one named ``lesson1.ipynb``, or else the only one. A notebook file given directly
    is the student named by its path (``submitted/<student>/lesson1/...``) or else by its file name.
    """
    found: dict[str, Path] = {}
    problems: list[str] = []

    def add(student: str, notebook: Path) -> None:
        if student in found:  # never two notebooks into one folder, where the second would overwrite files
            problems.append(f"{student}: {notebook} left out, {found[student]} was taken for this student")
        else:
            found[student] = notebook

    for path in map(Path, paths):
        if path.is_file():
            add(path.parent.parent.name if path.parent.name == ASSIGNMENT else path.stem, path)
            continue
        if not path.is_dir():
            problems.append(f"{path}: no such notebook or folder")
            continue
        for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            notebooks = [p for p in sorted(folder.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
            named = [p for p in notebooks if p.name == NOTEBOOK]
            chosen = named if len(named) == 1 else notebooks
            if len(chosen) == 1:
                add(folder.name, chosen[0])
            else:
                problems.append(f"{folder.name}: {len(notebooks)} notebooks in {folder}, expected one {NOTEBOOK}")
    return found, problems


def nbgrader(course: Path, *args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """Start ``python -m nbgrader ARGS`` in the course folder, with this interpreter's scripts on PATH and this
    repository first on the import path.

    (nbgrader runs ``alembic`` by name when it creates the gradebook, so the environment's bin folder must be
    on PATH even when the environment is not activated.)
    """
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # nbgrader, its config and the kernels import this very copy of the lesson (not another one installed in the
    # environment), so that its hidden tests and grader are the ones this process uses
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, **popen)


def half_solved(source: str, exercise: str) -> str:
    """A solution file with every other solution block (the 2nd, 4th, ...) left as its stub: a partial answer."""
    return render(segments(source), lambda i, block: block.body if i % 2 == 0 else block.stub(exercise))


def half_solved_pieces(source: str, exercise: str) -> list[str]:
    """The solution pieces of a solution file (``split_module``) with every other solution block of the whole
    file (the 2nd, 4th, ...) left as its stub, and no markers: a partial answer, one string per solution cell."""
    out, offset = [], 0
    for kind, code in split_module(source, exercise)[1]:
        if kind != "solution":
            continue
        parts = segments(code + "\n")
        out.append(render(parts, lambda i, block, o=offset: block.body if (i + o) % 2 == 0 else block.stub(exercise)))
        offset += sum(1 for part in parts if not isinstance(part, str))
    return out


def fill_exercises(notebook: dict, pieces: dict[str, list[str]]) -> dict:
    """A copy of ``notebook`` whose solution cells ``%%exercise NAME`` hold ``pieces[NAME]``, one after the
    other (the given cells are kept): what a student hands in."""
    notebook = json.loads(json.dumps(notebook))
    left = {name: list(codes) for name, codes in pieces.items()}
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        first = source.partition("\n")[0]
        words = first.split()
        solution = cell.get("metadata", {}).get("nbgrader", {}).get("solution")
        if cell["cell_type"] == "code" and words[:1] == ["%%exercise"] and solution and left.get(words[1]):
            cell["source"] = first + "\n" + left[words[1]].pop(0).strip("\n")
    return notebook


SAMPLE_STUDENTS = ("reference", "untouched", "partial")


def write_samples(course: Path, *, solutions: Path = SOLUTIONS) -> dict[str, Path]:
    """Hand in three sample notebooks after ``generate_assignment``: the reference (the source notebook), the
    untouched release, and a partial answer (every other solution block of each exercise left undone)."""
    course = Path(course)
    source = json.loads((course / "source" / ASSIGNMENT / NOTEBOOK).read_text())
    release = json.loads((course / "release" / ASSIGNMENT / NOTEBOOK).read_text())
    partial = {
        path.stem: half_solved_pieces(path.read_text(), path.name.split("_", 1)[0])
        for path in sorted(solutions.glob("ex*_*.py"))
    }
    notebooks = {"reference": source, "untouched": release, "partial": fill_exercises(release, partial)}
    written = {}
    for student, notebook in notebooks.items():
        path = course / "submitted" / student / ASSIGNMENT / NOTEBOOK
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        written[student] = path
    return written


def exercise_scores(gradebook, assignment: str, student: str) -> dict[str, tuple[float, float]]:
    """exN -> (score, max_score) of one submission, from its test cells' grades in an nbgrader gradebook.

    These are what the student's kernel left as the cells' values: a record to compare with, never a grade.
    """
    scores: dict[str, list[float]] = {}
    submission = gradebook.find_submission(assignment, student)
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            ex = grade.name.split("_")[0]
            total = scores.setdefault(ex, [0.0, 0.0])
            total[0] += grade.score or 0.0
            total[1] += grade.max_score or 0.0
    return {ex: (round(s, 2), round(m, 2)) for ex, (s, m) in sorted(scores.items())}


def judge_notebooks(notebooks: list[Path], *, tests_dir: Path = TESTS_DIR) -> dict:
    """The results document of the code in the notebooks' ``%%exercise`` cells, graded by the judge.

    The code is written to a fresh folder and graded by ``grader.grading.grade`` with the hidden tests, as any
    ``.py`` submission: this process only reads the notebook's JSON, the student code runs in the confined
    worker. Whatever goes wrong gives an ungradable document with the reason, never an exception: one bad
    notebook must not stop an export.
    """
    from grader.grading import grade

    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="nbgrader-judge-") as tmp:
            for notebook in notebooks:
                if not Path(notebook).is_file():
                    raise ValueError(f"the submitted notebook {notebook} is missing")
                extract_submission(notebook, tmp)
            return grade(tmp, hidden=True, tests_dir=tests_dir)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        points = results.load_points(tests_dir)
        return results.ungradable(f"{type(exc).__name__}: {exc}"[:300], points=points, exercises=list(points),
                                  execution_time=time.perf_counter() - start)


REVIEW_DIFFERS = "kernel score differs from the judge's"


def score_row(assignment: str, student: str, judged: dict, kernel: dict[str, tuple[float, float]]) -> dict:
    """One row of ``exercise_grades.csv``: the judge's scores, nbgrader's kernel total, and what to review."""
    kernel_total = round(sum(s for s, _ in kernel.values()), 2)
    row = {"assignment": assignment, "student_id": student, "kernel_score": f"{kernel_total:g}"}
    lesson = judged["lesson"]
    if lesson["status"] != "graded":
        # no score at all, rather than a 0 that reads like a graded empty notebook
        row.update(max_score=f"{judged['max_score']:g}", review=f"ungradable: {lesson.get('reason', '')}")
        return row
    differs = []
    for summary in lesson["exercises"]:
        ex, score = summary["id"], summary["score"]
        row[ex] = f"{score:g}"
        mine = kernel.get(ex, (0.0, 0.0))[0]
        if round(mine, 2) != round(score, 2):
            differs.append(f"{ex} kernel {mine:g} judge {score:g}")
    row.update(score=f"{judged['score']:g}", max_score=f"{judged['max_score']:g}",
               review=f"{REVIEW_DIFFERS} ({', '.join(differs)})" if differs else "")
    return row


# ----------------------------------------------------------------------------------------------------------
# nbgrader preprocessors (made on first use, like the exporter: importing this module never imports nbgrader)
# ----------------------------------------------------------------------------------------------------------

TODO_LINE = re.compile(r"^\s*# TODO: (?P<todo>.+?)\s*$")
JUDGED_CELLS = "lesson1-judged-"  # prefix of the file of each notebook's judged test cells (grader.platforms.nbgrader.cell)


def judged_cells(doc: dict, cells: list[dict]) -> dict[str, dict]:
    """{test file: {"value": points, "feedback": text}} for each ``%%graded_tests FILE POINTS`` cell: what the
    cell shows, from the judge's results document of the notebook's code (hidden tests: hints and points only)."""
    from grader.platforms.nbgrader.cell import TEST_FILE_RE, cell_value, feedback

    judged = {}
    for cell in cells:
        words = _source_of(cell).partition("\n")[0].split()
        if cell.get("cell_type") != "code" or words[:1] != ["%%graded_tests"] or len(words) != 3:
            continue
        match = TEST_FILE_RE.match(words[1])
        if not match:
            continue
        ex, hidden = match.group("ex"), bool(match.group("hidden"))
        tests = [t for t in doc["tests"] if t["extra_data"]["exercise"] == ex
                 and bool(t["extra_data"].get("hidden")) == hidden]
        cap = float(words[2])
        # the exercise's total, as the judge rounds it (a sum of the tests' rounded points can miss it by 0.0005)
        summary = next((e for e in doc["lesson"].get("exercises", []) if e["id"] == ex), {})
        value = cell_value(summary.get("hidden_score" if hidden else "visible_score") or 0.0, cap)
        shown = {"lesson": {"hidden_run": hidden}, "tests": tests}
        text = feedback(shown, value, cap)
        if doc["lesson"].get("status") not in (None, "graded"):
            text += "\n  not graded: " + str(doc["lesson"].get("reason", ""))[:300]
        judged[words[1]] = {"value": value, "feedback": text}
    return judged


# The file of judged test cells lives in a folder private to the autograde process: ForgetJudged removes each
# notebook's file once its kernel is done, and the folder goes when the process ends (also after a failed notebook).
_judged_folder: list[str] = []
JUDGE_LOG = "JudgeBeforeKernel"


def write_judged(judged: dict[str, dict]) -> Path:
    """Save what each test cell shows, for the kernel started next (its path in ``JUDGED_ENV``, which the kernel
    inherits); the previous notebook's file is removed first."""
    from grader.platforms.nbgrader.cell import JUDGED_ENV

    forget_judged()
    if not _judged_folder:
        folder = tempfile.mkdtemp(prefix=JUDGED_CELLS)
        atexit.register(shutil.rmtree, folder, True)
        _judged_folder.append(folder)
    fd, path = tempfile.mkstemp(dir=_judged_folder[0], suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(judged, f)
    os.environ[JUDGED_ENV] = path
    return Path(path)


def forget_judged() -> None:
    """Remove the judged cells of the last notebook (its kernel has finished) and forget their path."""
    from grader.platforms.nbgrader.cell import JUDGED_ENV

    path = os.environ.pop(JUDGED_ENV, None)
    if path:
        Path(path).unlink(missing_ok=True)


def _make_judge_before_kernel():
    from nbconvert.preprocessors import Preprocessor
    from traitlets import Bool

    class JudgeBeforeKernel(Preprocessor):
        """``autograde``, before the kernel starts: grade the notebook's ``%%exercise`` code with the judge (hidden
        tests included, student code in the confined worker) and leave what each test cell shows in a file whose
        path the kernel gets in its environment. So the kernel runs no test, and needs no hidden one."""

        enabled = Bool(True)

        def preprocess(self, nb, resources):
            from grader.grading import grade

            forget_judged()
            start = time.perf_counter()
            try:
                with tempfile.TemporaryDirectory(prefix="nbgrader-judge-") as tmp:
                    for name, body in sources_of_cells(nb.cells).items():
                        (Path(tmp) / f"{name}.py").write_text(body)
                    doc = grade(tmp, hidden=True, tests_dir=TESTS_DIR)
            except Exception as exc:  # noqa: BLE001 - one bad notebook must not stop autograde
                points = results.load_points(TESTS_DIR)
                doc = results.ungradable(f"{type(exc).__name__}: {exc}"[:300], points=points, exercises=list(points))
            write_judged(judged_cells(doc, nb.cells))  # the kernel, started next by Execute, reads it
            # what autograde pays for the judge (bench/bench_nbgrader.py reads this line)
            self.log.info("%s: judged the notebook's code in %.2f s", JUDGE_LOG, time.perf_counter() - start)
            return nb, resources

    return JudgeBeforeKernel


def _make_forget_judged():
    from nbconvert.preprocessors import Preprocessor
    from traitlets import Bool

    class ForgetJudged(Preprocessor):
        """``autograde``, after the kernel is done: remove the notebook's judged test cells."""

        enabled = Bool(True)

        def preprocess(self, nb, resources):
            forget_judged()
            return nb, resources

    return ForgetJudged


_warned_unconfined: list[str] = []  # autograde's log says once per process that its kernels are unconfined


def warn_unconfined_once(log, why: str) -> bool:
    """Say once, in autograde's log, that the kernels run where they can read the hidden tests; True if said now."""
    if _warned_unconfined:
        return False
    _warned_unconfined.append(why)
    log.warning(
        "The notebooks' kernels are NOT confined here (%s): a cell a student adds can read tests/hidden/ and "
        "solutions/ and print them into its feedback. The grades are not affected (the judge grades each "
        "notebook's code before its kernel starts). Autograde as a user who cannot read those folders, or where "
        "user namespaces are allowed; c.HiddenTestsExecute.require_confinement = True refuses to grade instead.",
        why)
    return True


def _make_hidden_tests_execute():
    from nbgrader.preprocessors import Execute
    from traitlets import Bool

    class HiddenTestsExecute(Execute):
        """nbgrader's Execute, whose kernel starts through ``grader.platforms.nbgrader.kernel``: no hidden test in reach, or
        (where the kernel cannot be confined) a warning once, or with ``require_confinement`` no kernel at all."""

        require_confinement = Bool(
            False, help="Refuse to start a kernel that could read the hidden tests (no user namespaces here): "
                        "autograde then fails every notebook rather than grade it unconfined.").tag(config=True)

        def __init__(self, *args, **kwargs):
            from grader.platforms.nbgrader.kernel import kernel_manager_class

            super().__init__(*args, **kwargs)
            if "kernel_manager_class" not in kwargs:
                self.kernel_manager_class = kernel_manager_class(self.require_confinement)

        def preprocess(self, nb, resources, *args, **kwargs):
            from grader.platforms.nbgrader.kernel import confinement

            confined, why = confinement()
            if not confined and not self.require_confinement:
                warn_unconfined_once(self.log, why)
            return super().preprocess(nb, resources, *args, **kwargs)

    return HiddenTestsExecute


def _make_todo_stubs():
    from nbgrader.preprocessors import ClearSolutions

    class TodoStubs(ClearSolutions):
        """``generate_assignment``: nbgrader's ClearSolutions, except that in an ``%%exercise exN_name`` cell a
        solution block under a ``# TODO: x`` line becomes ``raise NotImplementedError("exN: x")``, the stub of
        ``exercises/`` (grader.course.Block.stub), rather than one message for every block."""

        def _replace_solution_region(self, cell, language):
            words = cell.source.partition("\n")[0].split()
            exercise = exercise_of(words[1]) if cell.cell_type == "code" and len(words) > 1 and \
                words[0] == "%%exercise" else None
            if exercise is None:
                return super()._replace_solution_region(cell, language)
            out, inside, replaced = [], False, False
            for line in cell.source.split("\n"):
                if self.begin_solution_delimeter in line:
                    if inside:
                        raise RuntimeError("encountered nested begin solution statements")
                    indent = re.match(r"\s*", line).group(0)
                    todo = TODO_LINE.match(out[-1]) if out else None
                    if todo:
                        out.append(Block(0, indent, todo.group("todo")).stub(exercise)[1].rstrip("\n"))
                    else:
                        out += [indent + stub for stub in self.code_stub[language].split("\n")]
                    inside = replaced = True
                elif self.end_solution_delimeter in line:
                    inside = False
                elif not inside:
                    out.append(line)
            if inside:
                raise RuntimeError("no end solution statement found")
            cell.source = "\n".join(out)
            return replaced

    return TodoStubs


def _default_preprocessors(converter) -> list:
    return list(converter.class_traits()["preprocessors"].default())


def assignment_preprocessors() -> list:
    """``nbgrader generate_assignment``'s preprocessors, with ClearSolutions replaced by TodoStubs."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions

    stubs = __getattr__("TodoStubs")
    return [stubs if p is ClearSolutions else p for p in _default_preprocessors(GenerateAssignment)]


def autograde_preprocessors() -> list:
    """``nbgrader autograde``'s preprocessors (after sanitizing): JudgeBeforeKernel first, Execute's kernel started
    with the hidden tests out of its reach (HiddenTestsExecute), and ForgetJudged last."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    execute = __getattr__("HiddenTestsExecute")
    defaults = list(Autograde.class_traits()["autograde_preprocessors"].default())
    return [__getattr__("JudgeBeforeKernel"), *(execute if p is Execute else p for p in defaults),
            __getattr__("ForgetJudged")]


def _make_exporter():
    from nbgrader.api import MissingEntry
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.plugins import ExportPlugin

    class ExerciseScoresExport(ExportPlugin):
        """A row per student and assignment, the judge's score per exercise (``--to``, default exercise_grades.csv)."""

        def export(self, gradebook) -> None:
            # grade() imports torch (and warms the FLOP counter) once in this process, not once per submission.
            # nbgrader's ExportApp makes the plugin with itself as parent, and it holds the course folder
            # (``--CourseDirectory.root``, the cwd by default) and its layout
            coursedir = getattr(self.parent, "coursedir", None) or CourseDirectory(config=self.config)
            rows = []
            for assignment in gradebook.assignments:
                if self.assignment and assignment.name not in map(str, self.assignment):
                    continue
                for student in gradebook.students:
                    if self.student and student.id not in map(str, self.student):
                        continue
                    try:
                        submission = gradebook.find_submission(assignment.name, student.id)
                    except MissingEntry:
                        continue
                    folder = Path(coursedir.format_path(coursedir.submitted_directory, student.id, assignment.name))
                    start = time.perf_counter()
                    judged = judge_notebooks([folder / f"{nb.name}.ipynb" for nb in submission.notebooks])
                    row = score_row(assignment.name, student.id, judged,
                                    exercise_scores(gradebook, assignment.name, student.id))
                    self.log.info("Judged %s/%s in %.1f s: %s / %s (kernel %s) %s", assignment.name, student.id,
                                  time.perf_counter() - start, row.get("score", "-"), row["max_score"],
                                  row["kernel_score"], row["review"])
                    rows.append(row)
            exercises = list(results.load_points(TESTS_DIR))  # every column, even when no row could be graded
            columns = ["assignment", "student_id", *exercises, "score", "max_score", "kernel_score", "review"]
            dest = self.to or EXERCISE_CSV
            self.log.info("Exporting the judge's per-exercise grades to %s", dest)
            with open(dest, "w", newline="") as f:  # csv: a review note or a student id may hold a comma
                writer = csv.DictWriter(f, columns, restval="")
                writer.writeheader()
                writer.writerows(csv_row(row) for row in rows)  # a review note quotes the submission

    return ExerciseScoresExport


_LAZY = {"ExerciseScoresExport": _make_exporter, "JudgeBeforeKernel": _make_judge_before_kernel,
         "HiddenTestsExecute": _make_hidden_tests_execute, "ForgetJudged": _make_forget_judged,
         "TodoStubs": _make_todo_stubs}


def __getattr__(name: str):
    # nbgrader finds the exporter by name (``--exporter grader.platforms.nbgrader.export.ExerciseScoresExport``); it and the
    # preprocessors are made on first use so that importing this module never imports nbgrader.
    if name in _LAZY:
        cls = _LAZY[name]()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def cmd_nbgrader(args: argparse.Namespace) -> int:
    if args.extract:
        return cmd_extract(args.extract, Path(args.out))
    try:
        out = build_course(args.out)
    except CourseError as exc:
        print(f"grader nbgrader: {exc}")
        return 1
    print(f"wrote the nbgrader course to {out}/ (source/{ASSIGNMENT}/{NOTEBOOK}); next, from that folder:")
    print(f"  nbgrader generate_assignment {ASSIGNMENT}")
    return 0


def cmd_extract(paths: list[str], out: Path) -> int:
    """One notebook: its exercise files go into ``out``. Several, or a folder: into ``out/<student id>/``, the
    layout ``python -m grader batch`` grades."""
    if len(paths) == 1 and Path(paths[0]).is_file():
        notebooks, problems = {"": Path(paths[0])}, []  # out / "" is out
    else:
        notebooks, problems = find_notebooks(paths)
    for student, notebook in notebooks.items():
        try:
            written = extract_submission(notebook, out / student)
            print(f"{out / student}: {len(written)} exercise file(s) from {notebook}")
        except ValueError as exc:
            problems.append(f"{student or notebook}: {exc}")
    for problem in problems:
        print(f"skipped {problem}")
    return 1 if problems else 0


def add_nbgrader_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("nbgrader", help="write the nbgrader course (source/lesson1/lesson1.ipynb) to --out")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"course folder (default {DEFAULT_OUT})")
    p.add_argument("--extract", metavar="NOTEBOOK", nargs="+",
                   help="instead: write the exercise cells as exN_*.py files into --out; several notebooks or a "
                        "submitted/ folder go to --out/<student id>/, ready for `python -m grader batch`")
    p.set_defaults(func=cmd_nbgrader)
    return p
