"""Write the nbgrader course (``make nbgrader``): the lesson as one notebook, generated from the single source.

    python -m grader nbgrader --out dist/nbgrader

writes::

    dist/nbgrader/
        nbgrader_config.py           course settings (solution stub, cell timeout)
        README.md                    the nbgrader commands, in order
        source/lesson1/lesson1.ipynb the instructor's notebook: lesson text, walkthrough code, four exercises

Each exercise is three cells, made from ``solutions/``, ``tests/`` and ``tests/hidden/``:

1. a solution cell ``%%exercise exN_name`` holding the exercise module; our ``# BEGIN SOLUTION TODO: ...`` /
   ``# END SOLUTION`` become a ``# TODO: ...`` line and nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``,
   so ``nbgrader generate_assignment`` replaces every block by a stub under its TODO line;
2. an autograded test cell ``%%graded_tests test_exN_name.py 15`` holding the visible suite, verbatim;
3. an autograded test cell holding the hidden suite inside ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``.

The magics live in ``grader.nbgrader_cell``: a test cell grades the saved module and leaves the points earned as
its value (nbgrader's partial credit). That value is computed inside the student's own kernel, which also runs
any cell the student added, so it is feedback, not a grade: ``nbgrader export`` (``grades.csv``) shows it as is.

``nbgrader export --exporter grader.nbgrader_export.ExerciseScoresExport`` writes the grades
(``exercise_grades.csv``, a column per exercise): it takes the ``%%exercise`` cells of each SUBMITTED notebook
and grades that code with ``grader.grading.grade`` (the judge, hidden tests included), the one grading path of
``python -m grader``. nbgrader's kernel total is kept beside it (``kernel_score``), and ``review`` says when the
two disagree, so an instructor can look at that notebook.

This module imports nothing heavy, so that ``python -m grader`` stays fast without nbgrader installed.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import results
from grader.nbgrader_cell import MODULE_RE
from grader.stubs import BEGIN, END, SOLUTIONS

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
LESSON_DIR = REPO_ROOT / "resources" / "lesson-1-llm-basics"
DEFAULT_OUT = Path("dist/nbgrader")

COURSE_ID = "llm-basics"
ASSIGNMENT = "lesson1"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
EXERCISE_CSV = "exercise_grades.csv"

# Where things go: after the lesson section whose heading starts with this number.
EXERCISES_AFTER = {"ex1": "2.", "ex2": "3.", "ex3": "4.", "ex4": "4."}
WALKTHROUGHS_AFTER = {"2.": "step1_tokenizer_basics.py", "3.": "step2_attention_and_transformer.py"}
SECTIONS_LEFT_OUT = ("6.", "7.")  # how to run the scripts and `make grade`: the notebook says it its own way

# nbgrader's delimiters: none of them may appear anywhere else in a cell, or nbgrader misreads the cell.
NB_DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
CODE_STUB = 'raise NotImplementedError("write this part: see the TODO line above")'
CELL_TIMEOUT = 1800  # s; each graded test inside a cell has its own limit (grader.runner.DEFAULT_TIMEOUT)


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
    out, inside = [], False
    for line_no, line in enumerate(source.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise CourseError(f"{where} line {line_no}: BEGIN SOLUTION inside an open block")
            indent, todo = begin.group("indent"), begin.group("todo") or "write this part"
            out += [f"{indent}# TODO: {todo}", f"{indent}### BEGIN SOLUTION"]
            inside = True
        elif end:
            if not inside:
                raise CourseError(f"{where} line {line_no}: END SOLUTION without a BEGIN SOLUTION")
            out.append(line.replace("# END SOLUTION", "### END SOLUTION"))
            inside = False
        else:
            _check_delimiters(line, f"{where} line {line_no}")
            out.append(line)
    if inside:
        raise CourseError(f"{where}: a BEGIN SOLUTION is never closed")
    return "\n".join(out)


def exercise_cells(ex: str, meta: dict, solution: str, visible: str, hidden: str | None) -> list[dict]:
    """The intro, solution and test cells of one exercise."""
    name, title = meta["name"], meta["title"]
    total = meta["visible"] + meta["hidden"]
    intro = (
        f"## Exercise {ex[2:]}: {title} ({total:g} points)\n\n"
        f"Fill in the cell below: replace every `raise NotImplementedError(...)` under a `# TODO` line. Keep its "
        f"first line, `%%exercise {name}`: it saves the cell as `{name}.py`, the file that is graded, and then "
        f"runs it so that you can try your code in a new cell. Everything the exercise needs must be in this "
        f"cell, as in a `.py` file.\n\n"
        f"The next cell runs the visible tests ({meta['visible']:g} points) and prints every lost point with "
        f"a hint. The cell after it holds the hidden tests ({meta['hidden']:g} points), which run when your "
        f"notebook is graded."
    )
    test_file = f"test_{name}.py"
    _check_delimiters(visible, f"tests/{test_file}")
    cells = [
        markdown(intro, f"{ex}_intro"),
        _cell("code", f"%%exercise {name}\n" + nbgrader_solution(solution, f"solutions/{name}.py"),
              f"{ex}_solution", _meta(f"{ex}_solution", solution=True, locked=False)),
        _cell("code", f"%%graded_tests {test_file} {meta['visible']:g}\n{visible}", f"{ex}_visible_tests",
              _meta(f"{ex}_visible_tests", grade=True, points=meta["visible"])),
    ]
    if hidden is not None and meta["hidden"]:
        hidden_file = f"hidden/test_{name}_hidden.py"
        _check_delimiters(hidden, f"tests/{hidden_file}")
        body = (
            f"%%graded_tests {hidden_file} {meta['hidden']:g}\n"
            f"# {meta['hidden']:g} points of hidden tests: nbgrader puts them back when it grades the notebook.\n"
            f"### BEGIN HIDDEN TESTS\n{hidden.rstrip()}\n### END HIDDEN TESTS"
        )
        cells.append(_cell("code", body, f"{ex}_hidden_tests",
                           _meta(f"{ex}_hidden_tests", grade=True, points=meta["hidden"])))
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
        read_only_code("%load_ext grader.nbgrader_cell", "setup"),
    ]
    placed: set[str] = set()

    def add_exercises(number: str | None) -> None:
        for ex, meta in points.items():
            if ex in placed or (number is not None and EXERCISES_AFTER.get(ex) != number):
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

# Every ### BEGIN SOLUTION ... ### END SOLUTION block becomes this line, under the block's "# TODO: ..." line.
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}

# A test cell runs a whole graded suite in a sandboxed child process, where every test has its own time
# limit; the cell limit only has to stop a runaway cell that the student added.
c.Execute.timeout = {CELL_TIMEOUT}
'''

COURSE_README = f"""\
# nbgrader course: lesson 1, LLM basics

Generated by `make nbgrader` from `solutions/`, `tests/` and the lesson text; regenerate rather than edit.
Run the commands from this folder, in the Python environment where the lesson repository is installed
(`pip install -e ".[dev]"`, which brings nbgrader): the notebook's kernel imports `llm_basics` and `grader`.

    nbgrader generate_assignment {ASSIGNMENT}      # release/{ASSIGNMENT}/{NOTEBOOK}: solutions and hidden tests removed
    # collect the students' notebooks as submitted/<student id>/{ASSIGNMENT}/{NOTEBOOK}
    nbgrader autograde {ASSIGNMENT}
    nbgrader export --exporter grader.nbgrader_export.ExerciseScoresExport   # {EXERCISE_CSV}: the grades

The points that `autograde` records are computed in the student's own kernel, which runs every cell of the
notebook, including cells the student added: treat them (and `nbgrader export`'s grades.csv, and the
formgrader) as feedback. The exporter grades the code of each submitted notebook's `%%exercise` cells with the
repository's judge, hidden tests included, exactly as `python -m grader grade --hidden` would: its columns are
the grades. `kernel_score` is nbgrader's total, and `review` says when it differs from the judge's.

The exporter grades one notebook after another (a few seconds each). For a large class, grade in parallel:

    python -m grader nbgrader --extract submitted --out py   # py/<student id>/exN_*.py
    python -m grader batch py --out grades --jobs 4
"""


def build_course(out_dir: Path | str = DEFAULT_OUT, *, solutions: Path = SOLUTIONS, tests_dir: Path = TESTS_DIR,
                 lesson_dir: Path = LESSON_DIR) -> Path:
    """Write the nbgrader course folder and return it."""
    out = Path(out_dir)
    notebook = build_notebook(solutions=solutions, tests_dir=tests_dir, lesson_dir=lesson_dir)
    source = out / "source" / ASSIGNMENT
    source.mkdir(parents=True, exist_ok=True)
    for stale in source.iterdir():  # the assignment folder holds the notebook only (no .py with solutions)
        if stale.is_file():
            stale.unlink()
    (source / NOTEBOOK).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    (out / "nbgrader_config.py").write_text(CONFIG)
    (out / "README.md").write_text(COURSE_README)
    return out


def exercise_sources(notebook: Path | str) -> dict[str, str]:
    """NAME -> code of the notebook's ``%%exercise NAME`` cells: the code a kernel run saves and grades.

    When a name appears twice the last cell wins (a kernel run from the top leaves that one saved). A name that
    is not an exercise module name (``ex2_x``) is left out: the notebook is the student's, and
    ``%%exercise ../../x`` must not become a path.
    """
    try:
        cells = json.loads(Path(notebook).read_text())["cells"]
        sources = {}
        for cell in cells:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            first, _, body = source.partition("\n")
            words = first.split()
            if cell["cell_type"] == "code" and words[:1] == ["%%exercise"] and len(words) == 2:
                if MODULE_RE.match(words[1]):
                    sources[words[1]] = body
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{notebook}: not a readable notebook ({type(exc).__name__}: {exc})"[:300]) from None
    return sources


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
    """Start ``python -m nbgrader ARGS`` in the course folder, with this interpreter's scripts on PATH.

    (nbgrader runs ``alembic`` by name when it creates the gradebook, so the environment's bin folder must be
    on PATH even when the environment is not activated.)
    """
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, **popen)


def half_solved(source: str, exercise: str) -> str:
    """A solution file with every other solution block (the 2nd, 4th, ...) left as its stub: a partial answer."""
    out, block, inside, keep = [], -1, None, True
    for line in source.splitlines(keepends=True):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            block += 1
            keep = block % 2 == 0
            inside = (begin.group("indent"), begin.group("todo") or "write this part")
        elif end:
            if not keep:
                indent, todo = inside
                out += [f"{indent}# TODO: {todo}\n", f"{indent}raise NotImplementedError({f'{exercise}: {todo}'!r})\n"]
            inside = None
        elif inside is None or keep:
            out.append(line)
    return "".join(out)


def fill_exercises(notebook: dict, sources: dict[str, str]) -> dict:
    """A copy of ``notebook`` whose ``%%exercise NAME`` cells hold ``sources[NAME]``: what a student hands in."""
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        first = source.partition("\n")[0]
        if cell["cell_type"] == "code" and first.startswith("%%exercise ") and first.split()[1] in sources:
            cell["source"] = first + "\n" + sources[first.split()[1]]
    return notebook


SAMPLE_STUDENTS = ("reference", "untouched", "partial")


def write_samples(course: Path, *, solutions: Path = SOLUTIONS) -> dict[str, Path]:
    """Hand in three sample notebooks after ``generate_assignment``: the reference (the source notebook), the
    untouched release, and a partial answer (every other solution block of each exercise left undone)."""
    course = Path(course)
    source = json.loads((course / "source" / ASSIGNMENT / NOTEBOOK).read_text())
    release = json.loads((course / "release" / ASSIGNMENT / NOTEBOOK).read_text())
    partial = {
        path.stem: half_solved(path.read_text(), path.name.split("_", 1)[0])
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
                writer.writerows(rows)

    return ExerciseScoresExport


def __getattr__(name: str):
    # nbgrader finds the exporter by name (``--exporter grader.nbgrader_export.ExerciseScoresExport``); it is
    # made on first use so that importing this module never imports nbgrader.
    if name == "ExerciseScoresExport":
        cls = _make_exporter()
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
