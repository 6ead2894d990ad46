"""Scores: the judge's grade of a notebook's code, what each test cell shows, and a row of the grades file.

While ``nbgrader autograde`` runs, no test runs in the student's kernel: the judge grades the notebook's
``%%exercise`` code first (``judged_cells``, saved by ``write_judged`` for the kernel started next), and the
test cells show those results. The points a kernel leaves are feedback, not a grade: ``exercise_scores`` reads
them from nbgrader's gradebook only to compare them with the judge's (``score_row``'s ``review``).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from grader import results
from grader.platforms.nbgrader.cell import JUDGED_ENV, TEST_FILE_RE, cell_value, feedback
from grader.platforms.nbgrader.notebook import TESTS_DIR
from grader.platforms.nbgrader.submissions import extract_submission, source_of

JUDGED_CELLS = "lesson1-judged-"  # prefix of the file of each notebook's judged test cells (grader.platforms.nbgrader.cell)
JUDGE_LOG = "JudgeBeforeKernel"  # the log line's prefix that bench/bench_nbgrader.py reads


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


def judged_cells(doc: dict, cells: list[dict]) -> dict[str, dict]:
    """{test file: {"value": points, "feedback": text}} for each ``%%graded_tests FILE POINTS`` cell: what the
    cell shows, from the judge's results document of the notebook's code (hidden tests: hints and points only)."""
    judged = {}
    for cell in cells:
        words = source_of(cell).partition("\n")[0].split()
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


def write_judged(judged: dict[str, dict]) -> Path:
    """Save what each test cell shows, for the kernel started next (its path in ``JUDGED_ENV``, which the kernel
    inherits); the previous notebook's file is removed first."""
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
    path = os.environ.pop(JUDGED_ENV, None)
    if path:
        Path(path).unlink(missing_ok=True)
