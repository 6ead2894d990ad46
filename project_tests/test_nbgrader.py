"""The nbgrader course: generated from the single source, and graded exactly like the batch grader.

The fast tests check the generator, the cell runtime and the extraction without Jupyter. The end-to-end test
(slow, and only with nbgrader installed: the ``dev`` extra) runs ``nbgrader generate_assignment``, hands in
three notebooks (the reference, the untouched release, a partial answer) and a fourth that forges its kernel's
scores, runs ``nbgrader autograde`` and both exports, and compares the exported scores, exercise by exercise,
with ``python -m grader grade --hidden`` on the same code written as ``.py`` files.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from grader import cli, results
from grader.nbgrader_cell import cell_value, grade_tests, silenced
from grader.nbgrader_export import (
    ASSIGNMENT,
    EXERCISE_CSV,
    NOTEBOOK,
    SOLUTIONS,
    TESTS_DIR,
    CourseError,
    build_course,
    REVIEW_DIFFERS,
    build_notebook,
    extract_submission,
    half_solved,
    nbgrader,
    nbgrader_solution,
    score_row,
    write_samples,
)
from grader.course import BEGIN, END

POINTS = results.load_points(TESTS_DIR)


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


# ----------------------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------------------


def test_solution_markers_become_nbgrader_markers():
    """# BEGIN SOLUTION TODO: x becomes a TODO line and ### BEGIN SOLUTION, at the block's indentation."""
    ours = "def f():\n    # BEGIN SOLUTION TODO: return one\n    return 1\n    # END SOLUTION\n"
    assert nbgrader_solution(ours) == (
        "def f():\n    # TODO: return one\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    )


def test_solution_with_unclosed_block_is_rejected():
    """A BEGIN SOLUTION that is never closed is an error that names the file."""
    with pytest.raises(CourseError, match="never closed"):
        nbgrader_solution("# BEGIN SOLUTION\nx = 1\n", "solutions/ex9_x.py")


def test_nbgrader_delimiter_inside_code_is_rejected():
    """Text that nbgrader would read as one of its markers cannot slip into a cell."""
    with pytest.raises(CourseError, match="BEGIN HIDDEN TESTS"):
        nbgrader_solution('x = "### BEGIN HIDDEN TESTS"\n')


def test_course_has_config_and_one_notebook_and_no_python_files(tmp_path):
    """The assignment folder holds the notebook only: nbgrader would release a .py file verbatim."""
    course = build_course(tmp_path / "course")
    assert (course / "nbgrader_config.py").is_file()
    files = sorted(p.name for p in (course / "source" / ASSIGNMENT).iterdir())
    assert files == [NOTEBOOK], f"expected only {NOTEBOOK}, got {files}"
    config = (course / "nbgrader_config.py").read_text()
    compile(config, "nbgrader_config.py", "exec")
    assert str(Path.cwd()) not in config and str(course) not in config, "no machine-specific paths"


def test_every_exercise_has_a_solution_cell_and_two_graded_cells_worth_its_points():
    """Visible and hidden test cells carry the points of tests/points.json; the notebook is worth 100."""
    notebook = build_notebook()
    grades = {}
    for cell in notebook["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade"):
            grades[meta["grade_id"]] = meta["points"]
            assert meta["locked"], f"{meta['grade_id']}: a test cell must be locked"
    present = [ex for ex, meta in POINTS.items() if (SOLUTIONS / f"{meta['name']}.py").is_file()]
    for ex in present:
        assert grades[f"{ex}_visible_tests"] == POINTS[ex]["visible"]
        assert grades[f"{ex}_hidden_tests"] == POINTS[ex]["hidden"]
    solution_cells = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert [_source(c).split("\n", 1)[0] for c in solution_cells] == [
        f"%%exercise {POINTS[ex]['name']}" for ex in present
    ]


def test_visible_test_cell_holds_the_test_file_verbatim():
    """The graded code is the suite of tests/, byte for byte (after the magic line)."""
    notebook = build_notebook()
    ex, meta = next(iter(POINTS.items()))
    cell = next(c for c in notebook["cells"] if c["id"] == f"{ex}_visible_tests")
    first, _, body = _source(cell).partition("\n")
    assert first == f"%%graded_tests test_{meta['name']}.py {meta['visible']:g}"
    assert body == (TESTS_DIR / f"test_{meta['name']}.py").read_text().strip("\n")


def test_half_solved_keeps_every_other_block():
    """The partial sample answers the 1st and 3rd blocks and leaves the 2nd as its stub."""
    source = "".join(
        f"# BEGIN SOLUTION TODO: part {i}\nx{i} = {i}\n# END SOLUTION\n" for i in range(3)
    )
    got = half_solved(source, "ex9")
    assert "x0 = 0" in got and "x2 = 2" in got and "x1 = 1" not in got
    assert 'raise NotImplementedError("ex9: part 1")' in got
    assert not any(BEGIN.match(line) or END.match(line) for line in got.splitlines())


# ----------------------------------------------------------------------------------------------------------
# The cell runtime, without a kernel
# ----------------------------------------------------------------------------------------------------------


def test_cell_value_never_exceeds_the_cells_points():
    """Three thirds of 5 points add up to a hair above 5 in floating point; the cell shows 5."""
    assert cell_value(5 / 3 + 5 / 3 + 5 / 3, 5) <= 5
    assert cell_value(2 / 3, 5) == 0.666667


def test_graded_cell_gives_partial_credit_and_nothing_on_stderr(demo_tests, make_submission, capfd):
    """A test cell grades one suite against the saved module: points of the passing tests, stderr silent."""
    folder = make_submission(ex1_demo="def add(a, b):\n    return a + b\n\ndef work(n):\n    return 0\n")
    source = (demo_tests / "test_ex1_demo.py").read_text()
    doc, earned = grade_tests("test_ex1_demo.py", source, folder=folder, tests_dir=demo_tests)
    assert earned == pytest.approx(1.0), "add passes (1 point), work fails its 4 cases (2 points)"
    assert [t["status"] for t in doc["tests"]].count("passed") == 1
    out, err = capfd.readouterr()
    assert err == "", f"expected nothing on stderr, got {err!r}"


def test_hidden_test_cell_is_graded_as_hidden(demo_tests, make_submission):
    """A file under hidden/ counts as hidden tests, as in the batch grader."""
    folder = make_submission()
    source = (demo_tests / "hidden" / "test_ex1_demo_hidden.py").read_text()
    doc, earned = grade_tests("hidden/test_ex1_demo_hidden.py", source, folder=folder, tests_dir=demo_tests)
    assert earned == 1.0
    assert doc["lesson"]["hidden_run"] and doc["tests"][0]["extra_data"]["hidden"]


def test_silenced_swallows_file_descriptor_output(capfd):
    """Writes to fd 2 (e.g. from C code or a child process) inside silenced() never reach stderr."""
    import os

    with silenced():
        os.write(2, b"noise\n")
        print("more noise")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_extract_submission_writes_the_exercise_cells(tmp_path):
    """extract_submission gives back exactly the code of each %%exercise cell."""
    notebook = {"cells": [
        {"cell_type": "markdown", "source": "# hi"},
        {"cell_type": "code", "source": ["%%exercise ex9_demo\n", "def f():\n", "    return 1\n"]},
    ]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook))
    written = extract_submission(path, tmp_path / "out")
    assert [p.name for p in written] == ["ex9_demo.py"]
    assert written[0].read_text() == "def f():\n    return 1\n"


def test_extract_submission_never_writes_outside_its_folder(tmp_path):
    """The exercise name in a notebook is the student's text: one that is not exN_name is left out."""
    cells = [{"cell_type": "code", "source": f"%%exercise {name}\nx = 1\n"} for name in ("../../evil", "ex9_ok")]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": cells}))
    written = extract_submission(tmp_path / "nb.ipynb", tmp_path / "out" / "a")
    assert [p.name for p in written] == ["ex9_ok.py"]
    assert sorted(p.name for p in tmp_path.rglob("*.py")) == ["ex9_ok.py"]


def test_extract_takes_a_submitted_folder_one_subfolder_per_student(tmp_path, capsys):
    """--extract submitted/ (or several notebooks) writes OUT/<student>/exN_*.py, the batch grader's layout."""
    for student, code in (("alice", "x = 1\n"), ("bob", "x = 2\n")):
        path = tmp_path / "submitted" / student / ASSIGNMENT / NOTEBOOK
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": f"%%exercise ex9_demo\n{code}"}]}))
    broken = tmp_path / "submitted" / "carol" / ASSIGNMENT / NOTEBOOK
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    out = tmp_path / "py"
    assert cli.main(["nbgrader", "--extract", str(tmp_path / "submitted"), "--out", str(out)]) == 1
    assert (out / "alice" / "ex9_demo.py").read_text() == "x = 1\n"
    assert (out / "bob" / "ex9_demo.py").read_text() == "x = 2\n"
    assert "skipped carol" in capsys.readouterr().out
    two = [str(tmp_path / "submitted" / s / ASSIGNMENT / NOTEBOOK) for s in ("alice", "bob")]
    assert cli.main(["nbgrader", "--extract", *two, "--out", str(tmp_path / "two")]) == 0
    assert sorted(p.parent.name for p in (tmp_path / "two").rglob("*.py")) == ["alice", "bob"]


def _judged(scores: dict[str, float], status: str = "graded") -> dict:
    exercises = [{"id": ex, "score": score} for ex, score in scores.items()]
    return {"score": sum(scores.values()), "max_score": 50.0,
            "lesson": {"status": status, "exercises": exercises, "reason": "why"}}


def test_export_row_has_the_judges_scores_and_flags_a_kernel_that_disagrees():
    """The row's scores are the judge's; nbgrader's kernel total is beside them, and a disagreement is flagged."""
    agree = score_row("lesson1", "s1", _judged({"ex1": 25.0, "ex2": 12.75}), {"ex1": (25.0, 25), "ex2": (12.75, 25)})
    assert (agree["ex1"], agree["score"], agree["kernel_score"], agree["review"]) == ("25", "37.75", "37.75", "")
    forged = score_row("lesson1", "s2", _judged({"ex1": 0.0, "ex2": 0.0}), {"ex1": (25.0, 25), "ex2": (25.0, 25)})
    assert (forged["ex1"], forged["score"], forged["kernel_score"]) == ("0", "0", "50")
    assert forged["review"].startswith(REVIEW_DIFFERS) and "ex1 kernel 25 judge 0" in forged["review"]
    lost = score_row("lesson1", "s3", _judged({}, status="ungradable"), {"ex1": (25.0, 25)})
    assert "score" not in lost and lost["review"] == "ungradable: why", "ungradable is not a 0"


# ----------------------------------------------------------------------------------------------------------
# End to end: generate_assignment, three submissions, autograde, export; compared with python -m grader
# ----------------------------------------------------------------------------------------------------------


# A cell the student adds after the setup cell: it replaces the grading function in the kernel, so that every
# test cell shows its full points without running a test. The exercise cells are the untouched stubs.
FORGERY = """\
import grader.nbgrader_cell as cell
cell.grade_tests = lambda test_file, source, **kw: ({"lesson": {"hidden_run": False}, "tests": []}, 1e9)
"""


def hand_in_forgery(course: Path) -> None:
    notebook = json.loads((course / "release" / ASSIGNMENT / NOTEBOOK).read_text())
    setup = next(i for i, c in enumerate(notebook["cells"]) if c["id"] == "setup")
    notebook["cells"].insert(setup + 1, {"cell_type": "code", "id": "mine", "metadata": {},
                                         "execution_count": None, "outputs": [], "source": FORGERY})
    path = course / "submitted" / "forger" / ASSIGNMENT / NOTEBOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1))


def _check(process: subprocess.Popen, what: str) -> None:
    out, _ = process.communicate()
    assert process.returncode == 0, f"nbgrader {what} failed:\n{out[-4000:]}"


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """Run the whole nbgrader round trip once; grade the same code with python -m grader alongside."""
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("nbgrader")
    course = build_course(tmp / "course")
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        env[name] = str(tmp / name.lower())  # no user or machine Jupyter settings leak in
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _check(nbgrader(course, "generate_assignment", ASSIGNMENT, env=env, **pipes), "generate_assignment")
    submitted = write_samples(course)
    hand_in_forgery(course)
    autograde = nbgrader(course, "autograde", ASSIGNMENT, env=env, **pipes)
    # meanwhile, the batch grader on the same code as .py files (python -m grader, in this process)
    batch = {}
    for student, notebook in submitted.items():
        folder = extract_submission(notebook, tmp / "py" / student)[0].parent
        out = tmp / "py" / f"{student}.json"
        assert cli.main(["grade", "--target", str(folder), "--hidden", "--json", str(out)]) == 0
        batch[student] = json.loads(out.read_text())
    _check(autograde, "autograde")
    _check(nbgrader(course, "export", env=env, **pipes), "export")
    exporter = "grader.nbgrader_export.ExerciseScoresExport"
    _check(nbgrader(course, "export", "--exporter", exporter, env=env, **pipes), "export --exporter")
    return {"course": course, "batch": batch}


def _rows(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
def test_release_has_no_solution_or_hidden_test_text(graded_course):
    """generate_assignment removed every solution block and every hidden test; the visible tests stay."""
    release = (graded_course["course"] / "release" / ASSIGNMENT / NOTEBOOK).read_text()
    code = "\n".join(_source(c) for c in json.loads(release)["cells"])
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"):
        assert marker not in code, f"the release still has {marker!r}"
    released_lines = {line.strip() for line in code.splitlines()}
    inside, public = set(), set()  # lines of solution blocks; lines anyone may see (outside blocks, visible tests)
    for ex, meta in POINTS.items():
        solution = SOLUTIONS / f"{meta['name']}.py"
        if not solution.is_file():
            continue
        in_block = False
        for line in solution.read_text().splitlines():
            if BEGIN.match(line) or END.match(line):
                in_block = bool(BEGIN.match(line))
            else:
                (inside if in_block else public).add(line.strip())
        public |= {line.strip() for line in (TESTS_DIR / f"test_{meta['name']}.py").read_text().splitlines()}
    secret = {line for line in inside - public if len(line) > 12}  # lines found only in solution blocks
    assert len(secret) > 50, "the check needs solution lines to look for"
    leaked = sorted(secret & released_lines)
    assert not leaked, f"solution lines in the release: {leaked[:5]}"
    for ex, meta in POINTS.items():
        hidden = TESTS_DIR / "hidden" / f"test_{meta['name']}_hidden.py"
        for line in hidden.read_text().splitlines() if hidden.is_file() else []:
            if line.startswith("def test_"):
                assert line.strip() not in released_lines, f"hidden test in the release: {line}"


@pytest.mark.slow
def test_autograded_test_cells_have_a_number_and_nothing_on_stderr(graded_course):
    """Every graded cell of every submission ends in a bare number, with no error and no stderr."""
    for student in ("reference", "untouched", "partial"):
        path = graded_course["course"] / "autograded" / student / ASSIGNMENT / NOTEBOOK
        for cell in json.loads(path.read_text())["cells"]:
            if not cell["metadata"].get("nbgrader", {}).get("grade"):
                continue
            kinds = [o.get("name", o["output_type"]) for o in cell["outputs"]]
            assert "stderr" not in kinds and "error" not in kinds, f"{student} {cell['id']}: {kinds}"
            assert kinds[-1] == "execute_result", f"{student} {cell['id']}: expected a number last, got {kinds}"


@pytest.mark.slow
def test_exported_scores_equal_the_batch_grader_exercise_by_exercise(graded_course):
    """nbgrader export gives, per exercise and in total, what python -m grader gives for the same code."""
    course = graded_course["course"]
    per_exercise = _rows(course / EXERCISE_CSV)
    totals = _rows(course / "grades.csv")
    for student, doc in graded_course["batch"].items():
        for summary in doc["lesson"]["exercises"]:
            got = round(float(per_exercise[student][summary["id"]]), 2)
            assert got == summary["score"], f"{student} {summary['id']}: nbgrader {got}, batch {summary['score']}"
        assert round(float(totals[student]["score"]), 2) == doc["score"], f"{student}: total differs"
        assert float(totals[student]["max_score"]) == doc["max_score"]
        assert per_exercise[student]["kernel_score"] == per_exercise[student]["score"]
        assert per_exercise[student]["review"] == "", f"{student}: {per_exercise[student]['review']}"


@pytest.mark.slow
def test_forged_kernel_scores_are_not_the_grade(graded_course):
    """A cell that fakes the test cells' values fools nbgrader's total, not the export: it grades the code."""
    course = graded_course["course"]
    kernel_total = float(_rows(course / "grades.csv")["forger"]["score"])
    assert kernel_total == pytest.approx(graded_course["batch"]["reference"]["max_score"]), "the forgery worked"
    row = _rows(course / EXERCISE_CSV)["forger"]
    assert [float(row[ex]) for ex in POINTS] == [0.0] * len(POINTS), "the stubs earn nothing"
    assert (float(row["score"]), float(row["kernel_score"])) == (0.0, kernel_total)
    assert row["review"].startswith(REVIEW_DIFFERS), row["review"]


@pytest.mark.slow
def test_reference_scores_full_marks_release_zero_and_partial_in_between(graded_course):
    """The three submissions span the range: 100, 0, and something in between."""
    totals = {student: float(row["score"]) for student, row in _rows(graded_course["course"] / "grades.csv").items()}
    top = graded_course["batch"]["reference"]["max_score"]
    assert totals["reference"] == pytest.approx(top)
    assert totals["untouched"] == 0
    assert 0 < totals["partial"] < top
