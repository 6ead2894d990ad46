"""The instructor's notebook, made from the single source: the lesson text, the walkthrough code, and each
exercise as a handout (``build_notebook``).

Each exercise reads like a handout, made from ``solutions/``, ``tests/`` and ``tests/hidden/``:

1. its task: the module docstring, as text;
2. the module's code, a cell per function or class to write (``%%exercise exN_name``; nbgrader solution
   cells, whose ``# BEGIN SOLUTION TODO: ...`` blocks become ``### BEGIN SOLUTION`` under a ``# TODO: ...`` line),
   with the given code (imports, helpers) in read-only cells between them; the first cell has ``--start``.
   ``generate_assignment`` turns each block into the stub of ``exercises/`` (``preprocessors.TodoStubs``);
3. an autograded cell ``%%graded_tests test_exN_name.py 15`` that runs the visible suite from ``tests/``;
4. an autograded cell ``%%graded_tests hidden/test_exN_name_hidden.py 10`` for the hidden suite: no hidden test
   is in any notebook, and released cells are their source cells (no "checksum changed" warnings).

The names below (the assignment, the notebook, the grades file) are the course's: the other modules of this
package read them from here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from grader import results
from grader.course import BEGIN, END, REPO_ROOT, SOLUTIONS, SolutionBlockError, render, segments

TESTS_DIR = REPO_ROOT / "tests"
LESSON_DIR = REPO_ROOT / "resources" / "lesson-1-llm-basics"

ASSIGNMENT = "lesson1"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
EXERCISE_CSV = "exercise_grades.csv"

# Where things go: after the lesson section whose heading starts with this number.
WALKTHROUGHS_AFTER = {"2.": "step1_tokenizer_basics.py", "3.": "step2_attention_and_transformer.py"}
SECTIONS_LEFT_OUT = ("6.", "7.")  # how to run the scripts and `make grade`: the notebook says it its own way

# nbgrader's delimiters: none of them may appear anywhere else in a cell, or nbgrader misreads the cell.
NB_DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


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
