"""Gradescope's ``autograder.zip``: ``python -m grader gradescope --out dist/gradescope`` writes it.

Gradescope unpacks it into ``/autograder/source``, so the zip's top level is that folder::

    setup.sh          run once when Gradescope builds the image: a venv with the lock's Python, uv installs
                      requirements.txt under requirements.lock (pip where uv cannot be had)
    requirements.txt  the project's dependencies (torch pinned)
    requirements.lock every version and file hash of the instructor's tested venv (``make lock``)
    run_autograder    run for every submission: ``python -m grader gradescope-run`` (``grader.platforms.gradescope``)
                      with the grading options chosen here, into /autograder/results/results.json
    llm_basics/  grader/  resources/  tests/ (hidden suites included)

Any Ubuntu base image works. ``setup.sh`` gets uv from pip and makes the venv ``/autograder/venv`` with the
Python the lock was made for (one the image has, or a managed one uv downloads), whatever the image's ``python3``
is. Where uv cannot be had, pip installs the lock's versions into Ubuntu's Python 3.11 or newer (hypothesis is
pinned, 6.170.17, and needs 3.11; on Ubuntu 22.04, whose ``python3`` is 3.10, its ``python3.11`` package).

The grading options (the budget, when and how hidden tests are shown) are written into ``run_autograder`` when
the zip is built, so their defaults live here; ``grader.platforms.gradescope`` reads them.
"""

from __future__ import annotations

import shlex
import zipfile
from pathlib import Path

from grader.course import REPO_ROOT

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
    # --compile-bytecode: the image is built once and every submission starts from it; without the bytecode
    # (pip writes it, uv does not by default) each submission's processes would compile torch again
    "$UV" pip install --python "$VENV/bin/python" "${BACKEND[@]}" --compile-bytecode -r "$SRC/requirements.txt" \\
        --constraint "$LOCK"
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
