"""The nbgrader course: generated from the single source, and graded exactly like the batch grader.

The fast tests check the generator, the cell runtime and the extraction without Jupyter. The end-to-end test
(slow, and only with nbgrader installed: the ``dev`` extra) runs ``nbgrader generate_assignment``, hands in
three notebooks (the reference, the untouched release, a partial answer) and a fourth that forges its kernel's
scores, runs ``nbgrader autograde`` and both exports, and compares the exported scores, exercise by exercise,
with ``python -m grader grade --hidden`` on the same code written as ``.py`` files.
"""

from __future__ import annotations

import ast
import csv
import html
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader import cli, results
from grader.platforms.nbgrader.cell import cell_value, grade_tests, silenced
from grader.platforms.nbgrader.course_folder import SAMPLE_STUDENTS, build_course, half_solved, nbgrader, write_samples
from grader.platforms.nbgrader.kernel import warn_unconfined_once
from grader.platforms.nbgrader.notebook import (
    ASSIGNMENT,
    EXERCISE_CSV,
    NOTEBOOK,
    SOLUTIONS,
    TESTS_DIR,
    CourseError,
    build_notebook,
    docstring_markdown,
    nbgrader_solution,
)
from grader.platforms.nbgrader.scores import (
    JUDGE_LOG,
    JUDGED_CELLS,
    REVIEW_DIFFERS,
    forget_judged,
    judged_cells,
    score_row,
    write_judged,
)
from grader.platforms.nbgrader.submissions import exercise_sources, extract_submission
from grader.course import BEGIN, END

POINTS = results.load_points(TESTS_DIR)
REPO = TESTS_DIR.parent


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


def test_course_ships_the_notebook_and_the_visible_suites_only(tmp_path):
    """The assignment is the notebook and tests/ with the visible suites (no solution, no hidden test): nbgrader
    releases every file of the folder verbatim."""
    course = build_course(tmp_path / "course")
    assert (course / "nbgrader_config.py").is_file()
    assignment = course / "source" / ASSIGNMENT
    files = sorted(p.relative_to(assignment).as_posix() for p in assignment.rglob("*") if p.is_file())
    visible = sorted(f"tests/test_{meta['name']}.py" for meta in POINTS.values())
    assert files == sorted([NOTEBOOK, "tests/conftest.py", "tests/points.json", *visible]), files
    for name in visible:
        assert (assignment / name).read_bytes() == (TESTS_DIR / name.split("/", 1)[1]).read_bytes()
    config = (course / "nbgrader_config.py").read_text()
    compile(config, "nbgrader_config.py", "exec")
    assert str(Path.cwd()) not in config and str(course) not in config, "no machine-specific paths"


def test_course_readme_installs_an_extra_that_exists(tmp_path):
    """The course README's setup (`grader/install.py --extras X`: uv, under requirements.lock) names an extra of
    pyproject.toml that brings nbgrader."""
    import re
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    readme = (build_course(tmp_path / "course") / "README.md").read_text()
    named = re.findall(r"python3 grader/install\.py --venv \.venv --extras (\w+)`", readme)
    assert named and all(any(d.startswith("nbgrader") for d in extras.get(x, [])) for x in named), named


def test_every_exercise_has_solution_cells_and_two_graded_cells_worth_its_points():
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
    firsts = [_source(c).split("\n", 1)[0] for c in solution_cells]
    assert sorted(set(firsts)) == sorted(f"%%exercise {POINTS[ex]['name']}" for ex in present)


def test_exercise_cells_are_the_module_a_function_per_cell():
    """Each solution cell is one function or class of the exercise; the cells of one exercise, joined as the
    judge joins them, are its solution module without the docstring (shown as text) and the main block."""
    notebook = build_notebook()
    for ex, meta in POINTS.items():
        name = meta["name"]
        cells = [c for c in notebook["cells"] if _source(c).split("\n", 1)[0].split()[:2] == ["%%exercise", name]]
        assert _source(cells[0]).startswith(f"%%exercise {name} --start\n")
        for cell in cells:
            if cell["metadata"]["nbgrader"]["solution"]:
                tree = ast.parse(_source(cell).split("\n", 1)[1])
                assert len(tree.body) == 1 and isinstance(tree.body[0], (ast.FunctionDef, ast.ClassDef))
            else:
                assert cell["metadata"]["nbgrader"]["locked"], "given code is read-only"
        joined = exercise_sources_of(notebook)[name]
        reference = ast.parse((SOLUTIONS / f"{name}.py").read_text())
        reference.body = [node for node in reference.body[1:]
                          if not (isinstance(node, ast.If) and "__name__" in ast.unparse(node.test))]
        assert ast.dump(ast.parse(joined)) == ast.dump(reference), f"{name}: the cells are not the module"
        intro = next(c for c in notebook["cells"] if c["id"] == f"{ex}_intro")
        first_rule = ast.get_docstring(ast.parse((SOLUTIONS / f"{name}.py").read_text())).splitlines()[2]
        assert first_rule.rstrip(":") in _source(intro), "the task (module docstring) is the exercise's text"


def exercise_sources_of(notebook: dict) -> dict[str, str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nb.ipynb"
        path.write_text(json.dumps(notebook))
        return exercise_sources(path)


def test_test_cells_are_a_few_lines_and_hold_no_test():
    """The visible suite is a file beside the notebook and the hidden one stays in the repository: a test cell
    is its magic line and a comment."""
    notebook = build_notebook()
    hidden_text = "\n".join(p.read_text() for p in (TESTS_DIR / "hidden").glob("test_*.py"))
    for ex, meta in POINTS.items():
        visible = _source(next(c for c in notebook["cells"] if c["id"] == f"{ex}_visible_tests"))
        hidden = _source(next(c for c in notebook["cells"] if c["id"] == f"{ex}_hidden_tests"))
        assert visible.splitlines()[0] == f"%%graded_tests test_{meta['name']}.py {meta['visible']:g}"
        assert hidden.splitlines()[0] == f"%%graded_tests hidden/test_{meta['name']}_hidden.py {meta['hidden']:g}"
        for cell in (visible, hidden):
            assert len(cell.splitlines()) <= 3 and "def test" not in cell and "HIDDEN TESTS" not in cell
    code = "\n".join(_source(c) for c in notebook["cells"])
    assert not any(line.strip() in code for line in hidden_text.splitlines() if line.startswith("def test_"))


def test_docstring_becomes_markdown():
    doc = "Exercise 9: x.\n\nShapes::\n\n    q (T, d)\n\nMore ``code``."
    assert docstring_markdown(doc, drop_title="Exercise 9") == "Shapes:\n\n    q (T, d)\n\nMore ``code``."


def test_exercise_sources_join_the_pieces_and_start_begins_afresh(tmp_path):
    cells = [
        {"cell_type": "code", "source": "%%exercise ex9_demo --start\nold = 1\n"},
        {"cell_type": "code", "source": "%%exercise ex9_demo --start\nimport math\n"},
        {"cell_type": "markdown", "source": "text"},
        {"cell_type": "code", "source": ["%%exercise ex9_demo\n", "def f():\n", "    return math.pi\n"]},
        {"cell_type": "code", "source": "%%exercise ex9_demo --bogus\nx = 1\n"},
    ]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": cells}))
    assert exercise_sources(tmp_path / "nb.ipynb") == {"ex9_demo": "import math\n\n\ndef f():\n    return math.pi\n"}


def test_kernel_saves_pieces_in_order_and_replaces_a_piece_run_again(tmp_path):
    """The kernel side of the same rule: run again, a piece is replaced where it was; --start begins afresh."""
    from grader.platforms.nbgrader import cell as nbgrader_cell

    save = nbgrader_cell.save_piece
    save("ex9_demo", "import math\n", start=True, key="a", folder=tmp_path)
    save("ex9_demo", "def f():\n    return 1\n", key="b", folder=tmp_path)
    save("ex9_demo", "def g():\n    return 2\n", key="c", folder=tmp_path)
    path = save("ex9_demo", "def f():\n    return 3\n", key="b", folder=tmp_path)
    assert path.read_text() == "import math\n\n\ndef f():\n    return 3\n\n\ndef g():\n    return 2\n"
    assert save("ex9_demo", "x = 0\n", start=True, key="a", folder=tmp_path).read_text() == "x = 0\n"


def test_test_files_come_from_beside_the_notebook_or_the_repository(tmp_path):
    """Visible suites from tests/ beside the notebook (the assignment's copy), hidden ones from the repository."""
    from grader.platforms.nbgrader.cell import find_test_file

    name = f"test_{POINTS['ex1']['name']}.py"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / name).write_text("# the assignment's copy\n")
    assert find_test_file(name, here=tmp_path) == tmp_path / "tests" / name
    assert find_test_file(name, here=tmp_path / "elsewhere") == TESTS_DIR / name
    hidden = f"hidden/test_{POINTS['ex1']['name']}_hidden.py"
    assert find_test_file(hidden, here=tmp_path) == TESTS_DIR / hidden


def test_hidden_feedback_is_hints_and_points_only(demo_tests, make_submission):
    from grader.platforms.nbgrader.cell import feedback

    folder = make_submission(ex1_demo="def add(a, b):\n    return 0\n\ndef work(n):\n    return n\n")
    source = (demo_tests / "hidden" / "test_ex1_demo_hidden.py").read_text()
    doc, earned = grade_tests("hidden/test_ex1_demo_hidden.py", source, folder=folder, tests_dir=demo_tests)
    text = feedback(doc, earned, 1)
    assert text.splitlines() == ["hidden tests: 0 / 1 points", "  lost 1: add works for negative numbers."]


@pytest.mark.slow
def test_todo_stubs_write_the_stubs_of_exercises():
    """generate_assignment's solution blocks become the stub of exercises/ (the TODO's own message)."""
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[dev]')")
    from nbformat.v4 import new_code_cell

    from grader.platforms.nbgrader import preprocessors
    from grader.instructor.stubs import expected_stubs

    stubs = preprocessors.TodoStubs()
    made = expected_stubs()  # what `make stubs` writes to exercises/
    notebook = build_notebook()
    for ex, meta in POINTS.items():
        stub_module = made[f"{meta['name']}.py"]
        for cell in notebook["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("solution") and cell["id"].startswith(f"{ex}_"):
                released = new_code_cell(_source(cell))
                stubs._replace_solution_region(released, "python")
                code = released.source.split("\n", 1)[1]
                assert "BEGIN SOLUTION" not in code, cell["id"]
                assert code in stub_module, f"{cell['id']} is not the stub of exercises/"


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
# Autograde's test cells show what the judge found before the kernel started (no kernel, no nbgrader here)
# ----------------------------------------------------------------------------------------------------------

HOSTILE_REASON = "ValueError: <b>x</b>\x1b[2K all passed"
HIDDEN_INPUT = "hidden-input-7f3a"  # what a hidden test's reason may hold: it must not reach the cell


def _judged_doc() -> dict:
    def test(nodeid, status, points, hidden, hint, reason):
        return {"name": f"ex1: {nodeid}", "status": status, "max_score": points, "score": 0.0,
                "extra_data": {"nodeid": nodeid, "exercise": "ex1", "hidden": hidden, "hint": hint, "reason": reason}}

    tests = [test("test_add", "passed", 1.0, False, "add adds.", ""),
             test("test_work[1]", "failed", 1.0, False, "work doubles.", HOSTILE_REASON),
             test("test_work[2]", "passed", 1.0, False, "work doubles.", ""),
             test("test_secret", "failed", 1.0, True, "add works for negative numbers.", HIDDEN_INPUT)]
    summary = {"id": "ex1", "visible_score": 2.0, "hidden_score": 0.0, "score": 2.0}
    return {"tests": tests, "lesson": {"status": "graded", "exercises": [summary]}}


JUDGED_NOTEBOOK = [
    {"cell_type": "markdown", "source": "%%graded_tests test_ex1_demo.py 3"},  # text, not a cell to fill
    {"cell_type": "code", "source": "%%exercise ex1_demo --start\ndef add(a, b):\n    return a + b"},
    {"cell_type": "code", "source": ["%%graded_tests test_ex1_demo.py 3\n", "# the visible tests"]},
    {"cell_type": "code", "source": "%%graded_tests hidden/test_ex1_demo_hidden.py 1\n# hidden"},
]


def test_judged_cells_are_the_judges_scores_and_hidden_ones_hints_only():
    judged = judged_cells(_judged_doc(), JUDGED_NOTEBOOK)
    assert sorted(judged) == ["hidden/test_ex1_demo_hidden.py", "test_ex1_demo.py"]
    visible, hidden = judged["test_ex1_demo.py"], judged["hidden/test_ex1_demo_hidden.py"]
    assert (visible["value"], hidden["value"]) == (2.0, 0.0)
    assert visible["feedback"].splitlines()[0] == "visible tests: 2 / 3 points"
    assert "work (1 of 2 cases): work doubles." in visible["feedback"] and "<b>x</b>" in visible["feedback"]
    assert "\x1b" not in visible["feedback"] and "\\x1b[2K" in visible["feedback"], "a reason is the student's text"
    assert hidden["feedback"].splitlines() == ["hidden tests: 0 / 1 points",
                                               "  lost 1: add works for negative numbers."]
    assert HIDDEN_INPUT in json.dumps(_judged_doc()) and HIDDEN_INPUT not in json.dumps(judged)


def test_judged_cells_of_an_ungradable_notebook_say_why():
    doc = results.ungradable("SyntaxError: bad", points=POINTS, exercises=list(POINTS))
    ex = next(iter(POINTS))
    name = f"test_{POINTS[ex]['name']}.py"
    judged = judged_cells(doc, [{"cell_type": "code", "source": f"%%graded_tests {name} 5\n"}])
    assert judged[name]["value"] == 0 and "not graded: SyntaxError: bad" in judged[name]["feedback"]


def test_test_cell_while_autograding_shows_the_judged_results_and_runs_no_test(monkeypatch, capsys):
    """In autograde the cell reads the judge's file (it never looks for a test file: test_ex1_demo.py exists
    nowhere here), caps its value at the cell's points, and fails loudly when there are no results."""
    from grader.platforms.nbgrader.cell import JUDGED_ENV, _graded_tests_magic

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.delenv(JUDGED_ENV, raising=False)
    with pytest.raises(RuntimeError, match="no results of the judge"):
        _graded_tests_magic("test_ex1_demo.py 3", "")
    path = write_judged({"test_ex1_demo.py": {"value": 1e9, "feedback": "visible tests: shown"}})
    try:
        assert os.environ[JUDGED_ENV] == str(path) and path.is_file()
        assert _graded_tests_magic("test_ex1_demo.py 3", "# the visible tests") == 3.0
        assert capsys.readouterr().out == "visible tests: shown\n"
        with pytest.raises(RuntimeError, match="no results for this cell"):
            _graded_tests_magic("hidden/test_ex1_demo_hidden.py 1", "")
        second = write_judged({})
        assert not path.exists() and second.is_file(), "the previous notebook's file is removed"
    finally:
        forget_judged()
    assert JUDGED_ENV not in os.environ and not second.exists()


def test_judged_cells_folder_goes_when_the_autograde_process_ends(tmp_path):
    """Even when no ForgetJudged ran (a notebook that failed), nothing of the judged cells outlives the process."""
    code = ("from grader.platforms.nbgrader.scores import write_judged\n"
            "path = write_judged({'x': {'value': 1, 'feedback': ''}})\n"
            "print(path, path.is_file())\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    path, existed = out.stdout.split()
    assert existed == "True", out.stderr
    assert Path(path).parent.parent == tmp_path and Path(path).parent.name.startswith(JUDGED_CELLS)
    assert not list(tmp_path.iterdir()), "the judged cells outlived the process"


# ----------------------------------------------------------------------------------------------------------
# The kernel's launcher: the hidden tests out of reach, or a warning once, or (required) no kernel
# ----------------------------------------------------------------------------------------------------------

# what a cell the student adds might run: its first line is the mark that it ran
PROBE = """\
import pathlib, sys
root = pathlib.Path(sys.argv[1])
print("hidden files seen:", len([*(root / "tests" / "hidden").glob("*.py"), *(root / "solutions").glob("*.py")]))
"""

# a notebook's setup cell (%load_ext) in a kernel that autograde started
SETUP_CELL = """import sys
from grader.platforms.nbgrader import cell
cell.refuse_unlaunched_kernel()
print("the setup cell went on")
"""


def _launch(*options: str, without: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADER_WITHOUT": without}
    command = [sys.executable, "-m", "grader.platforms.nbgrader.kernel", *options, "--", sys.executable, "-c", PROBE, str(REPO)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_kernel_launcher_hides_the_hidden_tests():
    from grader.facilities import present

    if not present().namespaces:
        pytest.skip("no user namespaces here: the launcher cannot hide anything (see the test below)")
    direct = subprocess.run([sys.executable, "-c", PROBE, str(REPO)], capture_output=True, text=True, timeout=60)
    seen = int(direct.stdout.split()[-1])
    assert seen > 0, "positive control: unconfined, the probe finds the hidden tests and solutions"
    for options in ((), ("--require",)):
        run = _launch(*options)
        assert (run.returncode, run.stdout, run.stderr) == (0, "hidden files seen: 0\n", ""), options


def test_kernel_launcher_without_namespaces_runs_unconfined_or_refuses():
    """GRADER_WITHOUT=namespaces (a container that forbids them): the kernel starts and can read the hidden tests
    (autograde's log says so once), or with --require it never starts."""
    from grader.platforms.nbgrader.kernel import REFUSED

    run = _launch(without="namespaces")
    assert run.returncode == 0 and int(run.stdout.split()[-1]) > 0, run.stderr
    refused = _launch("--require", without="namespaces")
    assert refused.returncode == REFUSED and refused.stdout == "", "the kernel started although confinement failed"
    assert "refusing to start the kernel" in refused.stderr and "GRADER_WITHOUT" in refused.stderr


def test_a_kernel_autograde_started_without_the_course_config_ends_before_grading():
    """Autograde run outside the course folder (nbgrader_config.py not read) starts nbgrader's own kernel, which
    could read the hidden tests: the setup cell ends that kernel, with what to do; through the launcher it goes on."""
    from grader.platforms.nbgrader.kernel import LAUNCHED_ENV, REFUSED

    env = {**os.environ, "PYTHONPATH": str(REPO), "NBGRADER_EXECUTION": "autograde"}
    env.pop(LAUNCHED_ENV, None)
    bare = subprocess.run([sys.executable, "-c", SETUP_CELL], env=env, capture_output=True, text=True, timeout=60)
    assert (bare.returncode, bare.stdout) == (REFUSED, ""), bare.stderr
    assert "not started through the course's launcher" in bare.stderr and "nbgrader_config.py" in bare.stderr
    command = [sys.executable, "-m", "grader.platforms.nbgrader.kernel", "--", sys.executable, "-c", SETUP_CELL]
    for without in ("", "namespaces"):  # confined, or unconfined with autograde's warning: both launched
        launched = subprocess.run(command, env={**env, "GRADER_WITHOUT": without}, capture_output=True, text=True,
                                  timeout=60)
        assert (launched.returncode, launched.stdout) == (0, "the setup cell went on\n"), launched.stderr
    outside = subprocess.run([sys.executable, "-c", SETUP_CELL], env={**env, "NBGRADER_EXECUTION": ""},
                             capture_output=True, text=True, timeout=60)
    assert outside.returncode == 0, "a student's own Jupyter (not autograde) needs no launcher"


def test_autograde_preprocessors_judge_first_forget_last_and_start_kernels_through_the_launcher():
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[dev]')")
    from traitlets.config import Config

    from grader.platforms.nbgrader import preprocessors

    names = [p.__name__ for p in preprocessors.autograde_preprocessors()]
    assert names[0] == "JudgeBeforeKernel" and names[-1] == "ForgetJudged" and "HiddenTestsExecute" in names
    assert "Execute" not in names
    config = Config()
    config.HiddenTestsExecute.require_confinement = True
    strict = preprocessors.HiddenTestsExecute(config=config).kernel_manager_class
    assert preprocessors.HiddenTestsExecute().kernel_manager_class.__name__ == "HiddenTestsKernelManager"
    assert strict.__name__ == "RequiredConfinementKernelManager"


def test_unconfined_kernels_are_said_once_in_the_log(monkeypatch):
    from grader.platforms.nbgrader import kernel

    class Log:
        said: list[str] = []

        def warning(self, text, *args):
            self.said.append(text % args)

    monkeypatch.setattr(kernel, "_warned_unconfined", [])
    log = Log()
    assert warn_unconfined_once(log, "user namespaces are switched off") is True
    assert warn_unconfined_once(log, "user namespaces are switched off") is False
    assert len(log.said) == 1 and "NOT confined here (user namespaces are switched off)" in log.said[0]
    assert "require_confinement" in log.said[0]


# ----------------------------------------------------------------------------------------------------------
# End to end: generate_assignment, three submissions, autograde, export; compared with python -m grader
# ----------------------------------------------------------------------------------------------------------


# A cell the student adds after the setup cell: it replaces the grading function in the kernel, so that every
# test cell shows its full points without running a test. The exercise cells are the untouched stubs.
FORGERY = """\
import grader.platforms.nbgrader.cell as cell
cell.judged_cell = lambda test_file: {"value": 1e9, "feedback": ""}
"""


# A cell the student adds: while autograde runs it (in the student's kernel, as the instructor), it prints the
# hidden suites, which the grader's repository holds, into the notebook's output, and so into the feedback; it
# first says how many it found (the mark that its hostile step ran).
LEAK = """\
from grader.grading import TESTS_DIR
found = sorted((TESTS_DIR / "hidden").glob("test_*.py")) + sorted((TESTS_DIR.parent / "solutions").glob("*.py"))
print(f"hidden files seen: {len(found)}")
for path in found:
    print(path.read_text())
"""


def hand_in_extra_cell(course: Path, student: str, code: str) -> None:
    """The untouched release, with one cell of the student's own right after the setup cell."""
    notebook = json.loads((course / "release" / ASSIGNMENT / NOTEBOOK).read_text())
    setup = next(i for i, c in enumerate(notebook["cells"]) if c["id"] == "setup")
    notebook["cells"].insert(setup + 1, {"cell_type": "code", "id": "mine", "metadata": {},
                                         "execution_count": None, "outputs": [], "source": code})
    path = course / "submitted" / student / ASSIGNMENT / NOTEBOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1))


def _check(process: subprocess.Popen, what: str) -> str:
    out, _ = process.communicate()
    assert process.returncode == 0, f"nbgrader {what} failed:\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """Run the whole nbgrader round trip once; grade the same code with python -m grader alongside."""
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("nbgrader")
    course = build_course(tmp / "course")
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        env[name] = str(tmp / name.lower())  # no user or machine Jupyter settings leak in
    env["TMPDIR"] = str(tmp / "tmp")  # what nbgrader and its kernels leave in the temporary folder is seen here
    (tmp / "tmp").mkdir()
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _check(nbgrader(course, "generate_assignment", ASSIGNMENT, env=env, **pipes), "generate_assignment")
    submitted = write_samples(course)
    hand_in_extra_cell(course, "forger", FORGERY)
    hand_in_extra_cell(course, "leaker", LEAK)
    autograde = nbgrader(course, "autograde", ASSIGNMENT, env=env, **pipes)
    # meanwhile, the batch grader on the same code as .py files (python -m grader, in this process)
    batch = {}
    for student, notebook in submitted.items():
        folder = extract_submission(notebook, tmp / "py" / student)[0].parent
        out = tmp / "py" / f"{student}.json"
        assert cli.main(["grade", "--target", str(folder), "--hidden", "--json", str(out)]) == 0
        batch[student] = json.loads(out.read_text())
    log = _check(autograde, "autograde")
    _check(nbgrader(course, "export", env=env, **pipes), "export")
    exporter = "grader.platforms.nbgrader.exporter.ExerciseScoresExport"
    _check(nbgrader(course, "export", "--exporter", exporter, env=env, **pipes), "export --exporter")
    _check(nbgrader(course, "generate_feedback", ASSIGNMENT, env=env, **pipes), "generate_feedback")
    return {"course": course, "batch": batch, "autograde_log": log, "tmp": tmp / "tmp"}


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


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _page_text(path: Path) -> str:
    """The text a browser shows for an HTML page (syntax highlighting splits code into many tags)."""
    parser = _Text()
    parser.feed(path.read_text())
    return "".join(parser.parts)


def _secret_lines() -> set[str]:
    """The lines that only the hidden suites have (not their hints, which students see), as the test sees them:
    stripped, longer than 12 characters, in no file a student has (visible suites, stubs, lesson code and text,
    scripts)."""
    public = set()
    for path in [*TESTS_DIR.glob("*.py"), *(REPO / "exercises").glob("*.py"), *(REPO / "llm_basics").rglob("*.py"),
                 *(REPO / "resources").rglob("*.py"), *(REPO / "resources").rglob("*.md")]:  # the lesson text too
        public |= {line.strip() for line in path.read_text().splitlines()}
    secret = set()
    for path in (TESTS_DIR / "hidden").glob("test_*.py"):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and ast.get_docstring(node):
                public.add(ast.get_docstring(node).splitlines()[0].strip())
        secret |= {line.strip() for line in text.splitlines()}
    # a hidden line that is part of a public line (`with torch.device("meta"):` in a stub, before its comment) is
    # public: honest feedback shows it
    everything_public = "\n".join(public)
    return {line for line in secret - public if len(line) > 12 and line not in everything_public}


@pytest.mark.slow
def test_feedback_html_holds_no_line_of_a_hidden_test(graded_course):
    """generate_feedback's HTML, for every student, shows no line of a hidden test but the student's own: the
    leaker's cell, run in the kernel, found no hidden file to print (its mark says 0, where this process, unconfined, finds them). No
    hypothesis cache (the literals of every module a kernel imported) is copied into the feedback either."""
    feedback = graded_course["course"] / "feedback"
    pages = sorted(feedback.glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.html"))
    assert {p.parent.parent.name for p in pages} == {*SAMPLE_STUDENTS, "forger", "leaker"}
    secret = _secret_lines()
    for page in pages:
        student = page.parent.parent.name
        # the student's own lines are shown back as written: a hidden test may share a line with a right answer
        notebook = json.loads((graded_course["course"] / "submitted" / student / ASSIGNMENT / NOTEBOOK).read_text())
        own = {line.strip() for cell in notebook["cells"] for line in _source(cell).splitlines()}
        theirs = secret - own
        assert len(theirs) > 100, f"{student}: the check needs hidden lines to look for"
        text = _page_text(page)
        leaked = sorted(line for line in theirs if line in text)
        assert not leaked, f"{student}: hidden test lines in the feedback: {leaked[:3]}"
    unconfined = len(list((TESTS_DIR / "hidden").glob("test_*.py")) + list(SOLUTIONS.glob("*.py")))
    assert unconfined > 0, "positive control: outside the kernel the leaker's code finds the hidden files"
    assert "hidden files seen: 0" in _page_text(feedback / "leaker" / ASSIGNMENT / f"{ASSIGNMENT}.html"), (
        "the leaker's cell did not run, or found hidden files")
    assert not list(feedback.rglob(".hypothesis")), "a hypothesis cache was copied into the feedback"


@pytest.mark.slow
def test_reference_feedback_shows_every_line_of_its_code(graded_course):
    """Nothing is redacted: every line of the reference's exercise cells is in its feedback page, as written."""
    course = graded_course["course"]
    page = _page_text(course / "feedback" / "reference" / ASSIGNMENT / f"{ASSIGNMENT}.html")
    code = exercise_sources(course / "submitted" / "reference" / ASSIGNMENT / NOTEBOOK)
    lines = {line.strip() for body in code.values() for line in body.splitlines() if line.strip()}
    assert len(lines) > 100, "the check needs code lines to look for"
    missing = sorted(line for line in lines if line not in page)
    assert not missing, f"lines of the reference's code missing from its feedback: {missing[:5]}"
    assert "removed]" not in page


@pytest.mark.slow
def test_judged_cells_do_not_outlive_autograde(graded_course):
    """The judge's results for each notebook's test cells (written before its kernel started) are gone once
    autograde ends, and autograde never said its kernels were unconfined (they were, in a namespace)."""
    log = graded_course["autograde_log"]
    notebooks = len(list((graded_course["course"] / "submitted").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}")))
    # nbgrader only logs an error in a config file and goes on with its defaults: see that ours were used
    assert log.count(f"{JUDGE_LOG}: judged the notebook's code in") == notebooks > 0, "JudgeBeforeKernel did not run"
    left = sorted(p.name for p in graded_course["tmp"].rglob(f"{JUDGED_CELLS}*"))
    assert not left, f"judged cells left in the temporary folder: {left}"
    assert "NOT confined" not in log


@pytest.mark.slow
def test_autograde_prints_no_checksum_warning(graded_course):
    """Released cells are their source cells (no hidden-test block to restore): nbgrader #1961's warnings are gone."""
    log = graded_course["autograde_log"]
    assert "Autograding" in log
    assert "checksum" not in log.lower(), [line for line in log.splitlines() if "hecksum" in line][:4]


@pytest.mark.slow
def test_release_is_a_handout_with_the_stubs_of_exercises(graded_course):
    """The released notebook's exercise cells are the stubs of exercises/, each TODO with its own message; the
    visible suites are released beside it."""
    from grader.instructor.stubs import expected_stubs

    release = graded_course["course"] / "release" / ASSIGNMENT
    made = expected_stubs()
    notebook = json.loads((release / NOTEBOOK).read_text())
    solution_cells = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert len(solution_cells) > len(POINTS), "a cell per function, not one per exercise"
    for cell in solution_cells:
        name = _source(cell).split("\n", 1)[0].split()[1]
        code = _source(cell).split("\n", 1)[1]
        assert code in made[f"{name}.py"], f"{cell['id']}: not the stub of exercises/{name}.py"
        assert "write this part" not in code
    for meta in POINTS.values():
        name = f"test_{meta['name']}.py"
        assert (release / "tests" / name).read_bytes() == (TESTS_DIR / name).read_bytes()
