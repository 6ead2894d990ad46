"""Gradescope: build ``autograder.zip``, and grade one submission inside Gradescope's container.

``python -m grader gradescope --out dist/gradescope`` writes ``dist/gradescope/autograder.zip``. Gradescope
unpacks it into ``/autograder/source``, so the zip's top level is that folder::

    setup.sh          run once when Gradescope builds the image: a venv with the lock's Python, uv installs
                      requirements.txt under requirements.lock (pip where uv cannot be had)
    requirements.txt  the project's dependencies (torch pinned)
    requirements.lock every version and file hash of the instructor's tested venv (``make lock``)
    run_autograder    run for every submission: grades /autograder/submission into /autograder/results/results.json
    llm_basics/  grader/  resources/  tests/ (hidden suites included)

Any Ubuntu base image works. ``setup.sh`` gets uv from pip and makes the venv ``/autograder/venv`` with the
Python the lock was made for (one the image has, or a managed one uv downloads), whatever the image's ``python3``
is. Where uv cannot be had, pip installs the lock's versions into Ubuntu's Python 3.11 or newer (hypothesis is
pinned, 6.170.17, and needs 3.11; on Ubuntu 22.04, whose ``python3`` is 3.10, its ``python3.11`` package).

``run_autograder`` calls ``python -m grader gradescope-run``, which takes only the expected exercise files out
of the submission (``grader.intake.collect``: at most three folders deep, ``exercises/<name>.py`` preferred), grades them
with the visible and hidden suites within a whole-submission time budget (``--budget``: Gradescope records
nothing at all for a run it stops at its own limit), and writes Gradescope's ``results.json`` (``render``):

* one box per test function: the cases of a parametrized test are added up into one box whose output names the
  failing cases (students saw ~150 boxes otherwise); the instructor's full document keeps every case;
* hidden tests as counts only by default (one "hidden tests" box per exercise, ``--hidden-detail counts``), or a
  box per hidden test with its hint and points (``--hidden-detail tests``), never its name, reason or output;
  ``--hidden-visibility`` says when students see those boxes (``after_published`` by default);
* everything that is not one of Gradescope's own keys (``max_score``, the ``lesson`` record) under
  ``extra_data``;
* every output declared ``"text"`` (``output_format`` at the top and on each box, ``test_output_format``,
  ``test_name_format``): Gradescope's default, ``simple_format``, renders some HTML, and ``md`` and ``html`` would
  render a crafted message's link or image. As ``text`` it is shown as written; control characters (terminal
  escape codes) are shown as escapes too (``grader.untrusted.printable``).

A submission that cannot be graded still gets a results.json: score 0 and an output that says why.
``AUTOGRADER_ROOT`` replaces ``/autograder`` (for local tests).
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from grader.untrusted import printable

REPO_ROOT = Path(__file__).resolve().parents[2]  # grader/platforms/ -> the repository
ZIP_NAME = "autograder.zip"
SHIPPED_FOLDERS = ("llm_basics", "grader", "resources", "tests")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis"}
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so the same sources always give the same zip
CPU_WHEELS = "https://download.pytorch.org/whl/cpu"
MIN_PYTHON = (3, 11)  # hypothesis 6.170.17 (pinned: derandomized examples, and so grades, depend on it) needs 3.11

# Gradescope stops a run after 10 minutes by default and then records 0 and no test at all: the tests stop
# well before that, and the ones left are recorded as not run. One test may still overrun the budget by its own
# limits (10 s of CPU, 60 s wall-clock), and starting the grader costs a few seconds.
DEFAULT_BUDGET = 300.0
VISIBILITIES = ("hidden", "after_due_date", "after_published")
HIDDEN_DETAILS = ("counts", "tests")
DEFAULT_HIDDEN_VISIBILITY = "after_published"
DEFAULT_HIDDEN_DETAIL = "counts"
MAX_CASES_LISTED = 5  # failing cases of one parametrized test named in its box
# How Gradescope shows each output and test name: as plain text, never as Markdown or HTML (see the docstring).
OUTPUT_FORMAT = "text"
OUTPUT_CHARS = 20_000  # one box's output, at most (a reason is ~300 characters, printed output 2,000)

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image. Any Ubuntu base image works (22.04 or
# newer). Everything comes from requirements.lock, made by `make lock` from the venv the instructor's tests ran
# in: the same versions, checked against the lock's file hashes, in the Python the lock was made for.
# AUTOGRADER_ROOT replaces /autograder (local tests).
set -euxo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SRC="$ROOT/source"
VENV="$ROOT/venv"
LOCK="$SRC/requirements.lock"
LOCK_PYTHON="$(sed -n 's/^# python: //p' "$LOCK")"
CPU_INDEX=https://download.pytorch.org/whl/cpu
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv
# uv, from pip, in a venv of its own (Ubuntu 24.04's pip refuses to install into the system's Python)
UV=""
if python3 -m venv "$ROOT/uv" && "$ROOT/uv/bin/python" -m pip install --quiet uv; then UV="$ROOT/uv/bin/uv"; fi
if [ -n "$UV" ]; then
    # the lock's Python, exactly: one the image has, or a managed one that uv downloads
    "$UV" venv --python "$LOCK_PYTHON" "$VENV"
    # torch's CPU build (the lock pins X+cpu): from PyTorch's index (uv's --torch-backend) where it answers, else
    # from what uv's own settings name (UV_FIND_LINKS, UV_INDEX): --torch-backend alone fails offline
    BACKEND=(--torch-backend cpu)
    python3 -c "import urllib.request as u; u.urlopen(u.Request('$CPU_INDEX/torch/', method='HEAD'), timeout=20)" \\
        || BACKEND=()
    "$UV" pip install --python "$VENV/bin/python" "${BACKEND[@]}" -r "$SRC/requirements.txt" --constraint "$LOCK"
else
    echo "uv could not be installed: installing with pip (slower), in Ubuntu's Python rather than $LOCK_PYTHON"
    # Python >= 3.11 is needed: hypothesis is pinned (6.170.17, so that grades never change with its version)
    # and needs it. Ubuntu 22.04's python3 is 3.10: there, take Ubuntu's own python3.11 package (universe).
    PYTHON=python3
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        apt-get install -y --no-install-recommends python3.11 python3.11-venv
        PYTHON=python3.11
    fi
    # fail now, with a message that says what to do, if there is still no suitable Python
    NEED="Python 3.11 or newer is needed and could not be installed: choose a newer Ubuntu base image"
    "$PYTHON" -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else '$NEED')"
    "$PYTHON" -m venv "$VENV"
    # the lock's versions without its hashes: pip checks every requirement's hash or none, and torch has none
    sed -e '/--hash=/d' -e 's/ *\\\\$//' "$LOCK" > "$ROOT/constraints.txt"
    "$VENV/bin/python" -m pip install --no-cache-dir --extra-index-url "$CPU_INDEX" -r "$SRC/requirements.txt" \\
        --constraint "$ROOT/constraints.txt"
fi
# fail the image build now, not at the first submission, if something is missing
cd "$SRC" && "$VENV/bin/python" -c "import torch, pytest, hypothesis, grader.judge.plugin, llm_basics"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission: the student's files are in $ROOT/submission, the grade goes to
# $ROOT/results/results.json. AUTOGRADER_ROOT replaces /autograder (for local tests).
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
RESULTS="$ROOT/results/results.json"
PYTHON="$ROOT/venv/bin/python"  # made by setup.sh
[ -x "$PYTHON" ] || PYTHON=python3
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
if cd "$ROOT/source"; then
    "$PYTHON" -m grader gradescope-run --submission "$ROOT/submission" --results "$RESULTS" {options}
    status=$?
else
    status=1
fi
if [ ! -s "$RESULTS" ]; then
    # the grader itself could not start (a broken image?): Gradescope still gets a result that says so
    message="Ungradable: the autograder could not run (exit code $status). Please tell your instructor."
    printf '{"score": 0, "output": "%s", "tests": []}\\n' "$message" > "$RESULTS"
fi
exit 0
"""


def run_autograder_script(*, budget: float = DEFAULT_BUDGET, hidden_visibility: str = DEFAULT_HIDDEN_VISIBILITY,
                          hidden_detail: str = DEFAULT_HIDDEN_DETAIL, timeout: float | None = None) -> str:
    """``run_autograder`` with the grading options chosen when the zip was built."""
    options = ["--budget", f"{budget:g}", "--hidden-visibility", hidden_visibility, "--hidden-detail", hidden_detail]
    if timeout is not None:
        options += ["--timeout", f"{timeout:g}"]
    return RUN_AUTOGRADER.replace("{options}", " ".join(shlex.quote(o) for o in options))


class GradescopeError(RuntimeError):
    """The autograder could not be built; the message says why."""


# ----------------------------------------------------------------------------------------------------------
# Building autograder.zip
# ----------------------------------------------------------------------------------------------------------


def requirements_txt(repo: Path = REPO_ROOT) -> str:
    """The project's runtime dependencies, exactly as pyproject.toml lists them; setup.sh installs them under
    requirements.lock (shipped beside it), which pins every version and, for all but torch, every file's hash."""
    import tomllib  # here, not at the top: the container only needs Python >= 3.11 to grade, not to build

    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = project["dependencies"]
    if not any(d.replace(" ", "").startswith("torch==") for d in deps):
        raise GradescopeError("pyproject.toml must pin torch (torch==X.Y.Z): a range resolves to a CUDA build")
    header = ("# Installed by setup.sh with --constraint requirements.lock: the versions (and file hashes) the\n"
              "# instructor's tests ran with, and torch's CPU build.\n")
    return header + "".join(f"{d}\n" for d in deps)


def lock_text(repo: Path = REPO_ROOT) -> str:
    """requirements.lock, which setup.sh installs from; the build fails where it is missing or out of date."""
    from grader import lockfile

    problems = lockfile.check(repo / lockfile.LOCK.name, repo / "pyproject.toml")
    if problems:
        raise GradescopeError("requirements.lock: " + "; ".join(problems))
    return (repo / lockfile.LOCK.name).read_text(encoding="utf-8")


def _files(repo: Path) -> list[tuple[str, Path]]:
    found = []
    for folder in SHIPPED_FOLDERS:
        for path in sorted((repo / folder).rglob("*")):
            rel = path.relative_to(repo)
            if path.is_file() and not SKIPPED_PARTS & set(rel.parts) and path.suffix != ".pyc":
                found.append((rel.as_posix(), path))
    return found


def _add(zf: zipfile.ZipFile, name: str, data: bytes, *, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix, so that the permissions below are honoured
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    zf.writestr(info, data)


def build_autograder(out: Path, *, repo: Path = REPO_ROOT, budget: float = DEFAULT_BUDGET,
                     hidden_visibility: str = DEFAULT_HIDDEN_VISIBILITY, hidden_detail: str = DEFAULT_HIDDEN_DETAIL,
                     timeout: float | None = None) -> Path:
    """Write ``out/autograder.zip`` and return its path; the grading options go into its ``run_autograder``."""
    if hidden_visibility not in VISIBILITIES or hidden_detail not in HIDDEN_DETAILS:
        raise GradescopeError(f"hidden tests: visibility one of {VISIBILITIES}, detail one of {HIDDEN_DETAILS}")
    repo = Path(repo).resolve()
    if not (repo / "tests" / "hidden").is_dir():
        raise GradescopeError(f"{repo / 'tests' / 'hidden'} is missing: build the autograder from the instructor copy")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / ZIP_NAME
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        _add(zf, "setup.sh", SETUP_SH.encode(), executable=True)
        script = run_autograder_script(budget=budget, hidden_visibility=hidden_visibility,
                                       hidden_detail=hidden_detail, timeout=timeout)
        _add(zf, "run_autograder", script.encode(), executable=True)
        _add(zf, "requirements.txt", requirements_txt(repo).encode())
        _add(zf, "requirements.lock", lock_text(repo).encode())
        for name, path in _files(repo):
            _add(zf, name, path.read_bytes())
    tmp.replace(target)
    return target


# ----------------------------------------------------------------------------------------------------------
# Grading one submission (inside the container)
# ----------------------------------------------------------------------------------------------------------


def _note_problems(doc: dict, sub) -> None:
    """Say, in the tests of each exercise that was not graded, why; and list what was graded on top."""
    for test in doc["tests"]:
        problem = sub.problems.get(test["extra_data"]["exercise"])
        if problem:
            test["output"] = f"Not graded: {problem}"
            test["extra_data"]["reason"] = problem
    doc["output"] += "\n" + sub.summary()
    doc["lesson"]["target"] = "exercises"
    doc["lesson"]["submission"] = {"sources": dict(sub.sources), "problems": dict(sub.problems)}


def grade_submission(submission: Path, *, tests_dir: Path | None = None, limits=None) -> dict:
    """The results document for the submission folder ``submission``, hidden tests included; never raises."""
    from grader import results
    from grader.intake import collect as sandbox
    from grader.grading import TESTS_DIR, grade
    from grader.judge.session import GradingError

    tests_dir = Path(tests_dir or TESTS_DIR)
    start = time.perf_counter()
    points = results.load_points(tests_dir)
    exercises = list(points)

    def ungradable(reason: str) -> dict:
        return results.ungradable(reason, points=points, exercises=exercises,
                                  execution_time=time.perf_counter() - start)

    if not Path(submission).is_dir():
        return ungradable(f"no submission folder at {submission}")
    try:
        sub = sandbox.collect(Path(submission), {ex: meta["name"] for ex, meta in points.items()})
        if sub.error:
            return ungradable(sub.error)
        with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
            exercises_dir, tests = sandbox.build_sandbox(Path(tmp), sub.files, tests_dir)
            doc = grade(exercises_dir, hidden=True, tests_dir=tests, limits=limits)
        _note_problems(doc, sub)
        budget = getattr(limits, "budget", None)
        doc["lesson"]["budget"] = {"seconds": budget, "not_run": sum(
            1 for t in doc["tests"] if t["extra_data"].get("kind") == "not_run")}
        return doc
    except GradingError as exc:
        return ungradable(str(exc))
    except Exception as exc:  # noqa: BLE001 - Gradescope must get a results.json whatever went wrong
        return ungradable(f"the grader failed ({type(exc).__name__}: {exc}); please tell your instructor")


# ----------------------------------------------------------------------------------------------------------
# Gradescope's results.json, rendered from the results document
# ----------------------------------------------------------------------------------------------------------

GRADESCOPE_KEYS = ("score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
                   "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard")


def _function_of(test: dict) -> str:
    """The test function a case belongs to: its node id without the parameters."""
    return test["extra_data"]["nodeid"].split("[", 1)[0]


def _case_of(test: dict) -> str:
    nodeid = test["extra_data"]["nodeid"]
    return nodeid[nodeid.index("["):] if "[" in nodeid else ""


def _grouped(tests: list[dict]) -> list[list[dict]]:
    """Tests grouped by test function, in the order of their first case."""
    groups: dict[str, list[dict]] = {}
    for test in tests:
        groups.setdefault(_function_of(test), []).append(test)
    return list(groups.values())


def _text(text: str) -> str:
    """An output as Gradescope's ``text`` format shows it: no control characters, cut to OUTPUT_CHARS."""
    return printable(text, OUTPUT_CHARS)


def _points(x: float) -> float:
    """A box's points: a sum of cases rounded to 4 decimals each, shown to 2 (Gradescope's total is ``score``)."""
    return round(x + 0.0, 2)


def _visible_box(cases: list[dict], number: str) -> dict:
    """One box for the cases of one visible test function: points added up, the failing cases named."""
    first = cases[0]
    extra = first["extra_data"]
    failed = [c for c in cases if c["status"] != "passed"]
    lines = []
    if failed:
        hint = extra.get("hint", "")
        if len(cases) == 1:
            lines = [first["output"]] if first.get("output") else [hint]
        else:
            lines = [hint] if hint else []
            reasons = [case["extra_data"].get("reason") or case["output"] or "failed" for case in failed]
            if len(set(reasons)) == 1:  # one reason for every failing case (not run, a syntax error...): say it once
                lines.append(f"{len(failed)} of {len(cases)} cases failed: {reasons[0]}")
            else:
                lines.append(f"{len(failed)} of {len(cases)} cases failed:")
                for case, reason in list(zip(failed, reasons))[:MAX_CASES_LISTED]:
                    lines.append(f"  {_case_of(case)}: {reason}")
                if len(failed) > MAX_CASES_LISTED:
                    lines.append(f"  ... and {len(failed) - MAX_CASES_LISTED} more")
    return {
        "name": first["name"].split("[", 1)[0],
        "number": number,
        "score": _points(sum(c["score"] for c in cases)),
        "max_score": _points(sum(c["max_score"] for c in cases)),
        "status": "failed" if failed else "passed",
        "output": _text("\n".join(line for line in lines if line)),
        "output_format": OUTPUT_FORMAT,
        "visibility": "visible",
        "tags": [extra["exercise"], "visible"],
        "extra_data": {"exercise": extra["exercise"], "hidden": False, "cases": len(cases),
                       "failed_cases": len(failed), "kinds": sorted({c["extra_data"]["kind"] for c in failed})},
    }


def _hidden_boxes(ex: str, module: str, functions: list[list[dict]], *, visibility: str, detail: str,
                  number: str) -> list[dict]:
    """The hidden tests of one exercise: one box with the counts, or one box per test function with its hint.
    Never a hidden test's name, node id, reason or output: its parameters and messages can hold its literals."""
    extra = {"exercise": ex, "hidden": True}
    if detail == "counts":
        passed = sum(all(c["status"] == "passed" for c in cases) for cases in functions)
        score = sum(c["score"] for cases in functions for c in cases)
        top = sum(c["max_score"] for cases in functions for c in cases)
        return [{
            "name": f"{module}: hidden tests",
            "number": f"{number}.h",
            "score": _points(score),
            "max_score": _points(top),
            "status": "passed" if passed == len(functions) else "failed",
            "output": f"{passed} of {len(functions)} hidden tests passed ({score:.4g} of {top:.4g} points).",
            "output_format": OUTPUT_FORMAT,
            "visibility": visibility,
            "tags": [ex, "hidden"],
            "extra_data": {**extra, "tests": len(functions), "passed": passed},
        }]
    boxes = []
    for i, cases in enumerate(functions, start=1):
        hint = cases[0]["extra_data"].get("hint", "")
        ok = all(c["status"] == "passed" for c in cases)
        boxes.append({
            "name": f"{module}: hidden test {i}",
            "number": f"{number}.h{i}",
            "score": _points(sum(c["score"] for c in cases)),
            "max_score": _points(sum(c["max_score"] for c in cases)),
            "status": "passed" if ok else "failed",
            "output": "" if ok else _text(hint),
            "output_format": OUTPUT_FORMAT,
            "visibility": visibility,
            "tags": [ex, "hidden"],
            "extra_data": {**extra, "hint": hint},
        })
    return boxes


def render(doc: dict, *, hidden_visibility: str = DEFAULT_HIDDEN_VISIBILITY,
           hidden_detail: str = DEFAULT_HIDDEN_DETAIL) -> dict:
    """Gradescope's ``results.json`` for a results document: Gradescope's keys only at the top level (the rest
    under ``extra_data``), one box per test function, hidden tests as counts or hints (see the module docstring).
    The document itself (every case, every reason) is the instructor's record and is printed to stdout."""
    if hidden_visibility not in VISIBILITIES or hidden_detail not in HIDDEN_DETAILS:
        raise ValueError(f"hidden tests: visibility one of {VISIBILITIES}, detail one of {HIDDEN_DETAILS}")
    lesson = doc.get("lesson", {})
    modules = {e["id"]: e.get("name", e["id"]) for e in lesson.get("exercises", [])}
    tests = []
    order = list(modules) + [t["extra_data"]["exercise"] for t in doc["tests"]]  # exercises without a summary last
    for ex in dict.fromkeys(order):
        mine = [t for t in doc["tests"] if t["extra_data"]["exercise"] == ex]
        number = ex[2:] if ex.startswith("ex") else ex
        visible = _grouped([t for t in mine if not t["extra_data"].get("hidden")])
        tests += [_visible_box(cases, f"{number}.{i}") for i, cases in enumerate(visible, start=1)]
        hidden = _grouped([t for t in mine if t["extra_data"].get("hidden")])
        if hidden:
            tests += _hidden_boxes(ex, modules.get(ex, ex), hidden, visibility=hidden_visibility,
                                   detail=hidden_detail, number=number)
    for box in tests:  # a box's name is a test's name (and its parametrize ids): text, like its output
        box["name_format"] = OUTPUT_FORMAT
    output = doc.get("output", "")
    not_run = [t for t in doc["tests"] if t["extra_data"].get("kind") == "not_run"]
    if not_run:
        budget = (lesson.get("budget") or {}).get("seconds")
        output += (f"\n{len(not_run)} tests were not run: grading stopped at its time budget"
                   + (f" ({budget:g} s)" if budget else "") + ". Look for an endless loop in the tests that timed out.")
    return {
        "score": doc["score"],
        "execution_time": doc.get("execution_time", 0.0),
        "output": _text(output),
        "output_format": OUTPUT_FORMAT,
        "test_output_format": OUTPUT_FORMAT,
        "test_name_format": OUTPUT_FORMAT,
        "visibility": doc.get("visibility", "visible"),
        "stdout_visibility": doc.get("stdout_visibility", "hidden"),
        "tests": tests,
        "extra_data": {"max_score": doc.get("max_score"), "lesson": lesson,
                       "hidden_tests": {"visibility": hidden_visibility, "detail": hidden_detail}},
    }


def run(submission: Path, results_path: Path, *, tests_dir: Path | None = None, limits=None,
        hidden_visibility: str = DEFAULT_HIDDEN_VISIBILITY, hidden_detail: str = DEFAULT_HIDDEN_DETAIL) -> dict:
    """Grade ``submission`` and write Gradescope's results.json to ``results_path``; returns the full document."""
    from grader import report, results

    doc = grade_submission(submission, tests_dir=tests_dir, limits=limits)
    results.write(render(doc, hidden_visibility=hidden_visibility, hidden_detail=hidden_detail), Path(results_path))
    report.print_report(doc, stream=sys.stdout)  # Gradescope keeps stdout for the instructor (stdout_visibility)
    return doc


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def _add_options(p, *, timeout_default) -> None:
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="S",
                   help=f"wall-clock seconds for all the tests of a submission; the tests left then are recorded as"
                        f" not run (default {DEFAULT_BUDGET:g}: Gradescope's own limit is 10 minutes, after which it"
                        f" records nothing)")
    p.add_argument("--hidden-visibility", choices=VISIBILITIES, default=DEFAULT_HIDDEN_VISIBILITY,
                   help=f"when students see the hidden-test boxes (default {DEFAULT_HIDDEN_VISIBILITY})")
    p.add_argument("--hidden-detail", choices=HIDDEN_DETAILS, default=DEFAULT_HIDDEN_DETAIL,
                   help="counts: one box per exercise with the hidden points earned (default); tests: one box per"
                        " hidden test with its hint and points")
    p.add_argument("--timeout", type=float, default=timeout_default, help="CPU seconds allowed per test")


def add_gradescope_parser(sub) -> None:
    from grader.judge.session import DEFAULT_TIMEOUT

    p = sub.add_parser("gradescope", help="write autograder.zip for a Gradescope programming assignment")
    p.add_argument("--out", default="dist/gradescope", help="folder for autograder.zip (default dist/gradescope)")
    _add_options(p, timeout_default=None)
    p.set_defaults(func=_cmd_build)

    r = sub.add_parser("gradescope-run", help="grade one submission inside Gradescope (used by run_autograder)")
    r.add_argument("--submission", default="/autograder/submission", help="folder holding the student's files")
    r.add_argument("--results", default="/autograder/results/results.json", help="where to write results.json")
    _add_options(r, timeout_default=DEFAULT_TIMEOUT)
    r.set_defaults(func=_cmd_run)


def _cmd_build(args) -> int:
    try:
        path = build_autograder(Path(args.out), budget=args.budget, hidden_visibility=args.hidden_visibility,
                                hidden_detail=args.hidden_detail, timeout=args.timeout)
    except GradescopeError as exc:
        print(f"gradescope: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}: upload it as the autograder of a Gradescope programming assignment (any Ubuntu base "
          f"image: setup.sh brings Python 3.11 where the image's is older). Each submission's tests stop after "
          f"{args.budget:g} s; keep Gradescope's autograder timeout above {args.budget + 120:g} s.")
    return 0


def _cmd_run(args) -> int:
    from grader.judge.session import Limits

    run(Path(args.submission), Path(args.results), limits=Limits(timeout=args.timeout, budget=args.budget or None),
        hidden_visibility=args.hidden_visibility, hidden_detail=args.hidden_detail)
    return 0
