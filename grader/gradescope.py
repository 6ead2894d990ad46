"""Gradescope: build ``autograder.zip``, and grade one submission inside Gradescope's container.

``python -m grader gradescope --out dist/gradescope`` writes ``dist/gradescope/autograder.zip``. Gradescope
unpacks it into ``/autograder/source``, so the zip's top level is that folder::

    setup.sh          run once when Gradescope builds the image: Python, then pip install -r requirements.txt
    requirements.txt  the project's dependencies (torch pinned), with PyTorch's CPU wheel index
    run_autograder    run for every submission: grades /autograder/submission into /autograder/results/results.json
    llm_basics/  grader/  resources/  tests/ (hidden suites included)

``run_autograder`` calls ``python3 -m grader gradescope-run``, which takes only the expected exercise files out
of the submission (``grader.sandbox``: at most three folders deep, ``exercises/<name>.py`` preferred), grades them
with the visible and hidden suites, and writes the results document (hidden tests are ``after_published``).
A submission that cannot be graded still gets a results.json: score 0 and an output that says why.
``AUTOGRADER_ROOT`` replaces ``/autograder`` (for local tests).
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ZIP_NAME = "autograder.zip"
SHIPPED_FOLDERS = ("llm_basics", "grader", "resources", "tests")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis"}
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so the same sources always give the same zip
CPU_WHEELS = "https://download.pytorch.org/whl/cpu"

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
# Choose the Ubuntu 24.04 base image in the assignment settings: the project needs Python >= 3.11.
set -euxo pipefail
apt-get update
apt-get install -y --no-install-recommends python3 python3-pip
# fail now, with a message that says what to do, if the base image's Python is too old
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: choose Ubuntu 24.04 in the Gradescope autograder settings")'
# The image exists only to grade, so install system-wide (Ubuntu 24.04 marks its Python "externally managed").
export PIP_BREAK_SYSTEM_PACKAGES=1
# requirements.txt pins torch==2.13.0 and adds PyTorch's CPU wheel index, so pip takes the small CPU-only
# build (2.13.0+cpu) instead of PyPI's CUDA build (several GB, and the autograder has no GPU).
pip3 install --no-cache-dir -r /autograder/source/requirements.txt
# fail the image build now, not at the first submission, if something is missing
cd /autograder/source && python3 -c "import torch, pytest, hypothesis, grader.plugin, llm_basics"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission: the student's files are in $ROOT/submission, the grade goes to
# $ROOT/results/results.json. AUTOGRADER_ROOT replaces /autograder (for local tests).
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
if cd "$ROOT/source"; then
    python3 -m grader gradescope-run --submission "$ROOT/submission" --results "$RESULTS"
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


class GradescopeError(RuntimeError):
    """The autograder could not be built; the message says why."""


# ----------------------------------------------------------------------------------------------------------
# Building autograder.zip
# ----------------------------------------------------------------------------------------------------------


def requirements_txt(repo: Path = REPO_ROOT) -> str:
    """The project's runtime dependencies, exactly as pyproject.toml lists them, plus the CPU wheel index."""
    import tomllib  # here, not at the top: the container only needs Python >= 3.11 to grade, not to build

    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = project["dependencies"]
    if not any(d.replace(" ", "").startswith("torch==") for d in deps):
        raise GradescopeError("pyproject.toml must pin torch (torch==X.Y.Z): a range resolves to a CUDA build")
    header = (
        "# Installed by setup.sh. PyTorch's CPU index offers torch==<pin>+cpu, which pip prefers to PyPI's CUDA\n"
        "# build of the same version: no GPU libraries are downloaded.\n"
        f"--extra-index-url {CPU_WHEELS}\n"
    )
    return header + "".join(f"{d}\n" for d in deps)


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


def build_autograder(out: Path, *, repo: Path = REPO_ROOT) -> Path:
    """Write ``out/autograder.zip`` and return its path."""
    repo = Path(repo).resolve()
    if not (repo / "tests" / "hidden").is_dir():
        raise GradescopeError(f"{repo / 'tests' / 'hidden'} is missing: build the autograder from the instructor copy")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / ZIP_NAME
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        _add(zf, "setup.sh", SETUP_SH.encode(), executable=True)
        _add(zf, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
        _add(zf, "requirements.txt", requirements_txt(repo).encode())
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
    from grader import results, sandbox
    from grader.grading import TESTS_DIR, grade
    from grader.runner import GradingError

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
        return doc
    except GradingError as exc:
        return ungradable(str(exc))
    except Exception as exc:  # noqa: BLE001 - Gradescope must get a results.json whatever went wrong
        return ungradable(f"the grader failed ({type(exc).__name__}: {exc}); please tell your instructor")


def run(submission: Path, results_path: Path, *, tests_dir: Path | None = None, limits=None) -> dict:
    """Grade ``submission`` and write Gradescope's results.json to ``results_path``."""
    from grader import report, results

    doc = grade_submission(submission, tests_dir=tests_dir, limits=limits)
    results.write(results.for_students(doc), Path(results_path))  # students see hidden tests as hints only
    report.print_report(doc, stream=sys.stdout)  # Gradescope keeps stdout for the instructor (stdout_visibility)
    return doc


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def add_gradescope_parser(sub) -> None:
    from grader.runner import DEFAULT_TIMEOUT

    p = sub.add_parser("gradescope", help="write autograder.zip for a Gradescope programming assignment")
    p.add_argument("--out", default="dist/gradescope", help="folder for autograder.zip (default dist/gradescope)")
    p.set_defaults(func=_cmd_build)

    r = sub.add_parser("gradescope-run", help="grade one submission inside Gradescope (used by run_autograder)")
    r.add_argument("--submission", default="/autograder/submission", help="folder holding the student's files")
    r.add_argument("--results", default="/autograder/results/results.json", help="where to write results.json")
    r.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds allowed per test")
    r.set_defaults(func=_cmd_run)


def _cmd_build(args) -> int:
    try:
        path = build_autograder(Path(args.out))
    except GradescopeError as exc:
        print(f"gradescope: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}: upload it as the autograder of a Gradescope programming assignment, and choose the "
          "Ubuntu 24.04 base image in the autograder settings (setup.sh needs Python 3.11 or newer)")
    return 0


def _cmd_run(args) -> int:
    from grader.runner import Limits

    run(Path(args.submission), Path(args.results), limits=Limits(timeout=args.timeout))
    return 0
