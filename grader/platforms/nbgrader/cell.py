"""The notebook side of the nbgrader course: three cell magics that the lesson notebook's first cell loads.

    %load_ext grader.platforms.nbgrader.cell

``%%exercise ex2_topk_attention [--start]``
    One piece of an exercise module: its imports (the cell with ``--start``, which begins the module afresh),
    a function or class to write, or given code. Run top to bottom, the pieces are saved together, in order,
    as ``ex2_topk_attention.py`` in a folder private to this kernel (running a piece again replaces it in
    place), and the module is imported (as ``from ex2_topk_attention import *``) so that the next cells can try
    it. While nbgrader autogrades, the code is only saved: it then runs nowhere but in the grader's sandboxed
    worker, exactly as a ``.py`` submission would, so a crash or an endless loop in it cannot take the kernel
    (and the other exercises) down. ``grader.platforms.nbgrader.submissions.exercise_sources`` joins the same cells in notebook
    order for the judge.

``%%graded_tests test_ex2_topk_attention.py 15``
    An autograded test cell; its body is only a comment. It grades the saved module with that test file, with
    the same runner, plugin and results code as ``python -m grader``: a visible file is read from ``tests/``
    beside the notebook (shipped with the assignment, and put back from the course's source copy when nbgrader
    grades), a hidden one (``hidden/test_..._hidden.py``) from the instructor's repository, only where that has
    it (so the hidden tests are in no notebook: not the release, the autograded copy or the feedback). The cell
    prints what was lost and why (for hidden tests: the hint only), and its value is the points earned, which is
    how nbgrader gives partial credit. The value never exceeds the cell's points, and nothing is written to
    stderr (nbgrader gives 0 to a cell with any stderr output). While nbgrader autogrades, the cell runs no test:
    it shows the judge's results for the notebook's code, computed before the kernel started
    (``grader.platforms.nbgrader.preprocessors.JudgeBeforeKernel``), and the kernel cannot read the hidden tests
    (``grader.platforms.nbgrader.kernel``). This runs in the student's kernel, where any cell the student added ran first
    and may have replaced this very module: the value is feedback for the student. The grades come from the
    export (``grader.platforms.nbgrader.exporter.ExerciseScoresExport``), which grades the notebook's code again with the
    judge.

``%%walkthrough``
    Runs the lesson's walkthrough code. It is not graded, so it is skipped while nbgrader autogrades.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType

from grader.untrusted import one_line

MODULE_RE = re.compile(r"^ex\d+_\w+$")
TEST_FILE_RE = re.compile(r"^(?P<hidden>hidden/)?test_(?P<ex>ex\d+)_\w+\.py$")
SUPPORT_SUFFIXES = (".py", ".json")  # conftest.py, points.json, helper modules: copied next to the test file

_folder: Path | None = None


def autograding() -> bool:
    """True while ``nbgrader autograde`` runs the notebook (nbgrader sets this variable for the kernel)."""
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def submission_folder() -> Path:
    """The folder (one per kernel) where the exercise cells are saved as ``exN_*.py``: the graded target."""
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="lesson1-notebook-"))
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def save_exercise(name: str, source: str, folder: Path | None = None) -> Path:
    """Write one exercise module as ``<folder>/<name>.py``."""
    if not MODULE_RE.match(name):
        raise ValueError(f"%%exercise needs an exercise module name like ex1_special_tokens, got {name!r}")
    path = (folder or submission_folder()) / f"{name}.py"
    path.write_text(source)
    return path


# The pieces of each exercise module run in this kernel: name -> {piece key: code}, in the order first run.
_pieces: dict[str, dict[str, str]] = {}
_cell_id: list[str | None] = [None]  # the id of the cell running now, when the front end says it


def _remember_cell_id(info) -> None:
    _cell_id[0] = getattr(info, "cell_id", None)


def piece_key(source: str) -> str:
    """What identifies a piece when re-run: the cell's id, else the first name it defines, else its text."""
    if _cell_id[0]:
        return f"cell:{_cell_id[0]}"
    match = re.search(r"^(?:async\s+)?(?:def|class)\s+(\w+)", source, re.MULTILINE)
    return f"def:{match.group(1)}" if match else f"text:{hash(source)}"


def save_piece(name: str, source: str, *, start: bool = False, key: str | None = None,
               folder: Path | None = None) -> Path:
    """Add (or replace) one piece of module ``name`` and save the module: ``start`` begins it afresh."""
    if start:
        _pieces[name] = {}
    pieces = _pieces.setdefault(name, {})
    pieces[key or piece_key(source)] = source.strip("\n")
    return save_exercise(name, "\n\n\n".join(pieces.values()) + "\n", folder)


def _tests_dir() -> Path:
    from grader.grading import TESTS_DIR

    return TESTS_DIR


def _copy_support(src: Path, dst: Path) -> None:
    """Copy what a graded test file needs beside it (conftest.py, points.json, helpers), never a test file."""
    dst.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        return
    for path in src.iterdir():
        if path.is_file() and path.suffix in SUPPORT_SUFFIXES and not path.name.startswith("test_"):
            shutil.copy(path, dst / path.name)


@contextlib.contextmanager
def silenced():
    """Send everything (Python streams, file descriptors 1 and 2, warnings) to a scratch file.

    The kernel's streams are not fork-safe, and anything on stderr would cost the whole cell its points.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = (os.dup(1), os.dup(2))
    old = (sys.stdout, sys.stderr)
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            sys.stdout = sys.stderr = io.StringIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stdout, sys.stderr = old
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def grade_tests(
    test_file: str,
    source: str,
    *,
    folder: Path | None = None,
    tests_dir: Path | None = None,
) -> tuple[dict, float]:
    """Grade the saved exercise with one graded test file (given as text).

    Returns the results document and the points earned, unrounded (the document rounds each test's points).

    ``test_file`` is the file's path under ``tests/`` (``test_ex1_special_tokens.py`` or
    ``hidden/test_ex1_special_tokens_hidden.py``): it names the exercise and says whether the tests are hidden.
    """
    from grader import results
    from grader.judge.session import Limits, run_session

    match = TEST_FILE_RE.match(test_file)
    if not match:
        raise ValueError(f"not a graded test file name: {test_file!r}")
    exercise, hidden = match.group("ex"), bool(match.group("hidden"))
    tests_dir = tests_dir or _tests_dir()
    folder = folder or submission_folder()
    points = results.load_points(tests_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lesson1-cell-") as tmp:
        graded = Path(tmp) / "tests"
        _copy_support(tests_dir, graded)
        _copy_support(tests_dir / "hidden", graded / "hidden")
        path = graded / test_file
        path.write_text(source)
        with silenced():
            session = run_session([path], target=folder, rootdir=Path(tmp), exercises=[exercise], limits=Limits())
    doc = results.build(
        session,
        points=points,
        target=str(folder),
        hidden_run=hidden,
        exercises=[exercise],
        execution_time=time.perf_counter() - start,
    )
    earned = sum(
        info["points"] for info in session.tests if getattr(session.records.get(info["nodeid"]), "passed", False)
    )
    return doc, earned


def cell_value(earned: float, cap: float) -> float:
    """What the cell shows: the points earned to 6 decimals, never above ``cap`` (nbgrader fails above it).

    Six decimals, not two: nbgrader adds the two cells of an exercise, and rounding each to 2 decimals could
    make that sum differ by 0.01 from the batch grader's rounded exercise total.
    """
    return min(float(cap), round(earned, 6))


def feedback(doc: dict, earned: float, cap: float) -> str:
    """A few lines for the student: the score, then the points lost per test function (the cases of a
    parametrized test together) with its hint and the first reason. A hidden test is its hint and points only:
    its name, reason and output can hold its literals."""
    hidden = doc["lesson"]["hidden_run"]
    lines = [f"{'hidden' if hidden else 'visible'} tests: {earned:g} / {cap:g} points"]
    groups: dict[str, list[dict]] = {}
    for test in doc["tests"]:
        groups.setdefault(test["extra_data"]["nodeid"].split("[", 1)[0], []).append(test)
    for cases in groups.values():
        failed = [t for t in cases if t["status"] != "passed"]
        if not failed:
            continue
        lost = round(sum(t["max_score"] for t in failed), 2)
        extra = failed[0]["extra_data"]
        if hidden:
            lines.append(f"  lost {lost:g}: {extra['hint'] or 'a hidden test failed'}")
            continue
        name = failed[0]["name"].split(": ", 1)[-1].split("[", 1)[0]
        count = f" ({len(failed)} of {len(cases)} cases)" if len(cases) > 1 else ""
        why = " - ".join(x for x in (extra["hint"], one_line(extra["reason"])) if x)  # a reason is the student's text
        lines.append(f"  lost {lost:g}: {name}{count}: {why}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# The IPython magics
# ----------------------------------------------------------------------------------------------------------


def load_exercise(path: Path) -> ModuleType:
    """Import a saved exercise as the module ``exN_name`` (not ``__main__``: its main block must not run)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _exercise_magic(line: str, cell: str):
    words = line.split()
    if not words or len(words) > 2 or (len(words) == 2 and words[1] != "--start"):
        raise ValueError("usage: %%exercise <exercise module name> [--start]")
    name, start = words[0], len(words) == 2
    if not start and name not in _pieces:
        print(f"(run the cell that starts with `%%exercise {name} --start` first: it holds the module's imports)")
    path = save_piece(name, cell, start=start)
    if autograding():
        return None
    from IPython import get_ipython

    module = load_exercise(path)
    # as after `from exN_name import *`, plus the module itself, so the next cells can try the code
    public = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
    namespace = get_ipython().user_ns
    namespace.update({n: getattr(module, n) for n in public if hasattr(module, n)})
    namespace[path.stem] = module
    return None


def find_test_file(test_file: str, *, here: Path | None = None) -> Path | None:
    """Where a test cell's suite is: a visible file in ``tests/`` beside the notebook (else in the repository's
    ``tests/``), a hidden file in the instructor's repository only. None when it is not on this machine."""
    match = TEST_FILE_RE.match(test_file)
    if not match:
        raise ValueError(f"not a graded test file name: {test_file!r}")
    candidates = [_tests_dir() / test_file]
    if not match.group("hidden"):
        candidates.insert(0, (here or Path.cwd()) / "tests" / test_file)
    return next((path for path in candidates if path.is_file()), None)


# Set by grader.platforms.nbgrader.preprocessors.JudgeBeforeKernel while nbgrader autogrades: a JSON file, written before the
# kernel started, of what each test cell shows ({test file: {"value": points, "feedback": text}}).
JUDGED_ENV = "LESSON1_JUDGED_CELLS"


def judged_cell(test_file: str) -> dict:
    """What a test cell shows while nbgrader autogrades: the judge's results for it, computed outside this kernel
    (which has no hidden test to run: grader.platforms.nbgrader.kernel hides them)."""
    path = os.environ.get(JUDGED_ENV)
    if not path:
        raise RuntimeError(f"{test_file}: no results of the judge (autograde with the course's nbgrader_config.py)")
    with open(path) as f:
        judged = json.load(f)
    if test_file not in judged:
        raise RuntimeError(f"{test_file}: the judge has no results for this cell")
    return judged[test_file]


def _graded_tests_magic(line: str, cell: str):
    parts = line.split()
    if len(parts) != 2:
        raise ValueError("usage: %%graded_tests <test file under tests/> <points>")
    test_file, cap = parts[0], float(parts[1])
    if autograding():  # the judge graded this notebook's code before the kernel started: show that
        judged = judged_cell(test_file)
        print(judged["feedback"])
        return cell_value(float(judged["value"]), cap)
    path = find_test_file(test_file)
    if path is None:
        if autograding():  # a grade cell whose tests are missing must not earn its points by printing nothing
            raise RuntimeError(f"{test_file}: not found here (grade where the lesson repository is installed)")
        if TEST_FILE_RE.match(test_file).group("hidden"):
            print(f"These {cap:g} points are hidden tests: they run when your notebook is graded.")
            return None
        raise FileNotFoundError(f"tests/{test_file} is missing: it comes with the assignment, beside the notebook")
    tests_dir = path.parent.parent if path.parent.name == "hidden" else path.parent
    doc, earned = grade_tests(test_file, path.read_text(), tests_dir=tests_dir)
    value = cell_value(earned, cap)
    print(feedback(doc, value, cap))
    return value


def _walkthrough_magic(line: str, cell: str):
    if autograding():
        print("(walkthrough code is not graded: skipped while grading)")
        return None
    from IPython import get_ipython

    get_ipython().run_cell(cell, store_history=False)
    return None


def private_hypothesis_home() -> None:
    """Hypothesis keeps a cache of the literals of every local module it saw (``.hypothesis/constants``) in the
    folder it was imported from: the notebook's, which nbgrader copies into the feedback. Keep it in a folder
    private to this kernel instead."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(submission_folder().with_name(submission_folder().name + "-hypothesis"))
    atexit.register(shutil.rmtree, submission_folder().with_name(submission_folder().name + "-hypothesis"), True)


def refuse_unlaunched_kernel() -> None:
    """While autograde runs, the kernel must have come through the course's launcher (grader.platforms.nbgrader.kernel:
    the hidden tests out of its reach, or autograde's log saying they are not). Without it, the course's
    nbgrader_config.py was not used and nothing kept the student's cells from the hidden tests: the kernel ends
    here, and autograde fails this notebook (no feedback is made) instead of grading it unconfined."""
    from grader.platforms.nbgrader.kernel import LAUNCHED_ENV, REFUSED

    if autograding() and not os.environ.get(LAUNCHED_ENV):
        print("grader: this kernel was not started through the course's launcher, so it could read the hidden "
              "tests: run `nbgrader autograde` in the course folder (where the course's nbgrader_config.py is)",
              file=sys.stderr, flush=True)
        os._exit(REFUSED)


def load_ipython_extension(ipython) -> None:
    """``%load_ext grader.platforms.nbgrader.cell``: register the magics and import the heavy modules once."""
    from grader.judge.session import preload

    refuse_unlaunched_kernel()

    with silenced():
        preload()  # torch, pytest, hypothesis: imported once, so each graded cell forks in milliseconds
    private_hypothesis_home()
    ipython.register_magic_function(_exercise_magic, "cell", "exercise")
    ipython.register_magic_function(_graded_tests_magic, "cell", "graded_tests")
    ipython.register_magic_function(_walkthrough_magic, "cell", "walkthrough")
    ipython.events.register("pre_run_cell", _remember_cell_id)
