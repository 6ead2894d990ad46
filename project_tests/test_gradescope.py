"""The Gradescope autograder end to end: build autograder.zip, unpack it the way Gradescope does, and run
``run_autograder`` on the reference, the stubs, a broken, a looping and an empty submission; ``setup.sh`` on an
image whose python3 is 3.10 (Ubuntu 22.04), with the Python 3.10 of pyenv where this machine has one."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import results
from grader.platforms import gradescope, gradescope_zip

sys.path.insert(0, str(Path(__file__).parent))
from helpers import student_visible  # noqa: E402
from grader.results import SCHEMA_PATH, load_points
from grader.judge.session import Limits
from grader.instructor.stubs import expected_stubs

REPO = Path(__file__).resolve().parent.parent
POINTS = load_points(REPO / "tests")
NAMES = {ex: meta["name"] for ex, meta in POINTS.items()}
SCHEMA = json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    return gradescope_zip.build_autograder(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def autograder(tmp_path, autograder_zip):
    """run(files, folder="exercises") -> (results document, run_autograder's process), in a fresh /autograder."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # zipfile drops the permissions that Gradescope's unzip keeps
            os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python3 = bin_dir / "python3"  # `python3` in run_autograder is this project's interpreter

    def run(files: dict[str, str], folder: str = "exercises", *, python: str = sys.executable):
        python3.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
        python3.chmod(0o755)
        where = root / "submission" / folder
        where.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (where / name).write_text(text)
        env = {**os.environ, "AUTOGRADER_ROOT": str(root), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(
            [str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True, timeout=900
        )
        doc = json.loads((root / "results" / "results.json").read_text())
        check_gradescope_format(doc)
        return doc, proc

    return run


def check_gradescope_format(doc: dict) -> None:
    """Gradescope's results.json: its schema, and nothing but Gradescope's own keys at the top level."""
    import jsonschema  # here, not at the top: importing it costs 1.4 s at every collection

    jsonschema.validate(doc, SCHEMA)
    extra = set(doc) - set(gradescope.GRADESCOPE_KEYS)
    assert not extra, f"keys Gradescope does not know belong under extra_data: {sorted(extra)}"


def lesson(doc: dict) -> dict:
    return doc["extra_data"]["lesson"]


def by_exercise(doc: dict) -> dict[str, dict]:
    return {e["id"]: e for e in lesson(doc)["exercises"]}


def function_counts(hidden: bool) -> dict[str, int]:
    """exN -> number of test functions (not cases) in its visible or hidden suite."""
    folder = REPO / "tests" / ("hidden" if hidden else "")
    return {ex: sum(line.startswith("def test_") for p in folder.glob(f"test_{ex}_*.py")
                    for line in p.read_text().splitlines()) for ex in POINTS}


def reference() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((REPO / "solutions").glob("ex*_*.py"))}


def test_zip_layout(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        requirements = zf.read("requirements.txt").decode()
        run_script = zf.read("run_autograder").decode()
    for script in ("setup.sh", "run_autograder"):
        assert (infos[script].external_attr >> 16) & stat.S_IXUSR, f"{script} must be executable"
    assert "torch==2.13.0" in requirements.splitlines()
    assert zf_text(autograder_zip, "requirements.lock") == (REPO / "requirements.lock").read_text()
    assert "AUTOGRADER_ROOT" in run_script and "gradescope-run" in run_script
    names = set(infos)
    for ex, name in NAMES.items():
        assert any(n.startswith(f"tests/test_{ex}_") for n in names)
        assert any(n.startswith(f"tests/hidden/test_{ex}_") for n in names), f"hidden tests of {ex} missing"
    assert {"tests/points.json", "tests/conftest.py", "grader/judge/plugin.py", "llm_basics/model.py"} <= names
    assert not any(n.startswith(("solutions/", "exercises/")) or "__pycache__" in n for n in names)


def test_zip_is_reproducible(autograder_zip, tmp_path):
    again = gradescope_zip.build_autograder(tmp_path)
    assert again.read_bytes() == autograder_zip.read_bytes()


def test_empty_submission_is_ungradable_with_a_reason(autograder):
    doc, _ = autograder({"notes.txt": "I ran out of time"}, folder=".")
    assert doc["score"] == 0 and lesson(doc)["status"] == "ungradable"
    assert doc["output"].startswith("Ungradable: no exercise files found")
    assert doc["extra_data"]["max_score"] == sum(p["visible"] + p["hidden"] for p in POINTS.values())


def test_a_grader_that_cannot_start_still_writes_results(autograder):
    doc, _ = autograder(reference(), python="/bin/false")
    assert doc["score"] == 0 and doc["output"].startswith("Ungradable: the autograder could not run")


@pytest.mark.slow
def test_reference_scores_full_marks(autograder):
    doc, proc = autograder(reference())
    assert proc.returncode == 0
    assert (doc["score"], doc["extra_data"]["max_score"]) == (100, 100), doc["output"]
    # one box per test function, and by default one box of hidden counts per exercise, shown once published
    visible = [t for t in doc["tests"] if not t["extra_data"]["hidden"]]
    hidden = [t for t in doc["tests"] if t["extra_data"]["hidden"] and not t["extra_data"].get("staff")]
    staff = [t for t in doc["tests"] if t["extra_data"].get("staff")]
    assert len(visible) == sum(function_counts(hidden=False).values())
    assert [t["extra_data"]["exercise"] for t in hidden] == list(POINTS)
    assert all(t["visibility"] == "after_published" for t in hidden)
    assert all(t["visibility"] == "visible" for t in visible)
    assert len(visible + hidden) < 50, "students see about 40 boxes, not one per parametrized case"
    assert len(staff) == sum(function_counts(hidden=True).values())
    assert all(t["visibility"] == "hidden" and t["status"] == "passed" for t in staff)
    for t in hidden:
        ex = t["extra_data"]["exercise"]
        functions = function_counts(hidden=True)[ex]
        assert t["output"] == f"{functions} of {functions} hidden tests passed (10 of 10 points)."
        assert (t["score"], t["max_score"]) == (POINTS[ex]["hidden"], POINTS[ex]["hidden"])


@pytest.mark.slow
def test_stubs_score_zero(autograder):
    doc, _ = autograder(expected_stubs(), folder="my-repo/exercises")
    assert doc["score"] == 0 and lesson(doc)["status"] == "graded"
    visible = [t for t in doc["tests"] if not t["extra_data"]["hidden"]]
    assert all(t["extra_data"]["kinds"] == ["not_implemented"] for t in visible)
    assert "my-repo/exercises/" in doc["output"]


@pytest.mark.slow
def test_broken_submission_costs_only_the_broken_exercises(autograder):
    files = reference()
    first, missing, *rest = list(NAMES.values())
    broken = files[f"{first}.py"] + "\n\ndef oops(:\n    pass\n"
    bad_line = broken.count("\n") - 1
    files[f"{first}.py"] = broken
    del files[f"{missing}.py"]
    doc, _ = autograder(files)
    scores = by_exercise(doc)
    exercise_of = {name: ex for ex, name in NAMES.items()}
    first_ex, missing_ex = exercise_of[first], exercise_of[missing]
    assert scores[first_ex]["score"] == 0 and scores[missing_ex]["score"] == 0
    for ex in NAMES:
        if ex not in (first_ex, missing_ex):
            assert scores[ex]["score"] == scores[ex]["max_score"] > 0
    visible = [t for t in doc["tests"] if not t["extra_data"]["hidden"]]
    syntax = [t["output"] for t in visible if t["extra_data"]["exercise"] == first_ex]
    assert syntax and all(f"{first}.py line {bad_line}: SyntaxError" in out for out in syntax)
    gone = [t["output"] for t in visible if t["extra_data"]["exercise"] == missing_ex]
    assert gone and all(f"no {missing}.py in the submission" in out for out in gone)
    # hidden tests reach students as counts only
    hidden = {t["extra_data"]["exercise"]: t for t in doc["tests"] if t["extra_data"]["hidden"]
              and not t["extra_data"].get("staff")}
    assert hidden[first_ex]["output"].startswith("0 of ") and hidden[first_ex]["score"] == 0
    assert all(set(t["extra_data"]) == {"exercise", "hidden", "tests", "passed"} for t in hidden.values())
    assert f"{missing_ex}: missing" in doc["output"]


def zf_text(autograder_zip, name: str) -> str:
    with zipfile.ZipFile(autograder_zip) as zf:
        return zf.read(name).decode()


def _setup_lines(autograder_zip, first: str, last: str) -> str:
    """The lines of setup.sh from the one starting with ``first`` to the one starting with ``last`` (indent
    ignored), dedented."""
    lines = [line.strip() for line in zf_text(autograder_zip, "setup.sh").splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i, line in enumerate(lines) if i >= start and line.startswith(last))
    install = next(i for i, line in enumerate(lines) if i > start and "pip install" in line)
    assert end < install, "the Python is chosen before the (long) pip install"
    return "\n".join(lines[start:end + 1])


def _setup_commands(autograder_zip) -> list[str]:
    """setup.sh's commands, one per line (continuation lines joined, comments dropped)."""
    text = zf_text(autograder_zip, "setup.sh").replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_setup_installs_from_the_lock_with_uv_in_the_locks_python(autograder_zip):
    """Read what setup.sh runs: uv from pip, a venv with the lock's Python, the runtime requirements under the
    lock (hashes checked by uv), torch's CPU build from PyTorch's index where it answers; pip only without uv."""
    commands = _setup_commands(autograder_zip)
    get_uv = next(i for i, c in enumerate(commands) if c.endswith("-m pip install --quiet uv; then UV=\"$ROOT/uv/bin/uv\"; fi"))
    venv = commands.index('"$UV" venv --python "$LOCK_PYTHON" "$VENV"')
    uv_install = next(i for i, c in enumerate(commands) if c.startswith('"$UV" pip install'))
    assert get_uv < venv < uv_install
    assert commands[uv_install].endswith('-r "$SRC/requirements.txt" --constraint "$LOCK"')
    assert '"${BACKEND[@]}"' in commands[uv_install] and "BACKEND=(--torch-backend cpu)" in commands
    assert "LOCK_PYTHON=\"$(sed -n 's/^# python: //p' \"$LOCK\")\"" in commands
    pip_install = next(i for i, c in enumerate(commands) if c.startswith('"$VENV/bin/python" -m pip install'))
    assert commands[pip_install].endswith('--constraint "$ROOT/constraints.txt"')
    assert commands.index("else") < pip_install < commands.index("fi", pip_install)  # the pip path is the fallback


def test_setup_pip_path_takes_the_locks_versions_without_hashes(autograder_zip, tmp_path):
    """pip checks all hashes or none, and torch has none: the pip path's constraints are the lock's pins."""
    strip = next(c for c in _setup_commands(autograder_zip) if c.startswith("sed -e '/--hash=/d'"))
    (tmp_path / "source").mkdir()
    shutil.copy2(REPO / "requirements.lock", tmp_path / "source" / "requirements.lock")
    script = f'ROOT="{tmp_path}"; LOCK="$ROOT/source/requirements.lock"\n{strip}'
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True)
    text = (tmp_path / "constraints.txt").read_text()
    assert "--hash" not in text and "\\" not in text
    assert re.findall(r"^(\S+)==(\S+)$", text, re.M) == re.findall(r"^(\S+)==(\S+?)(?: \\)?$",
                                                                     (REPO / "requirements.lock").read_text(), re.M)


def _fake_image(tmp_path: Path, python3: str) -> tuple[Path, dict]:
    """A bin folder whose python3 is ``python3`` and whose apt-get only logs what it was asked for, except that
    installing python3.11 puts pyenv's 3.11 (or this interpreter) on PATH as Ubuntu's package would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{python3}" "$@"\n')
    python311 = _pyenv_python("3.11") or sys.executable
    (bin_dir / "apt-get").write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{tmp_path}/apt.log"\n'
        f'case "$*" in *python3.11*) printf \'#!/bin/sh\\nexec "{python311}" "$@"\\n\' > "{bin_dir}/python3.11";'
        f' chmod +x "{bin_dir}/python3.11";; esac\n'
    )
    for name in ("python3", "apt-get"):
        (bin_dir / name).chmod(0o755)
    return bin_dir, {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def _pyenv_python(version: str) -> str | None:
    """The newest pyenv interpreter of ``version`` (3.10, 3.11...) on this machine, or None."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob(f"{version}.*/bin/python{version}"), key=lambda p: [int(x) for x in
                   p.parts[-3].split(".") if x.isdigit()])
    return str(found[-1]) if found else None


def _fake_python(tmp_path: Path, version: tuple) -> str:
    """An interpreter that reports ``version`` and is otherwise this one."""
    path = tmp_path / f"python{'.'.join(map(str, version))}"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; sys.version_info = {version!r}; '
                    f'exec(sys.argv[2])" "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("version, installs", [((3, 10, 12), True), ((3, 11, 0), False), ((3, 12, 3), False)])
def test_setup_brings_python_3_11_where_the_image_has_an_older_one(autograder_zip, tmp_path, version, installs):
    """Ubuntu 22.04's python3 is 3.10: setup.sh installs Ubuntu's python3.11 beside it; newer images keep theirs."""
    choose = _setup_lines(autograder_zip, "PYTHON=python3", "fi")
    _, env = _fake_image(tmp_path, _fake_python(tmp_path, version))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", choose + '\necho "chose $PYTHON"'], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "apt.log").read_text() if (tmp_path / "apt.log").exists() else ""
    assert ("python3.11 python3.11-venv" in log) == installs, log
    assert proc.stdout.strip() == ("chose python3.11" if installs else "chose python3")


def test_setup_fails_early_without_a_suitable_python(autograder_zip, tmp_path):
    check = _setup_lines(autograder_zip, "NEED=", '"$PYTHON" -c')
    _, env = _fake_image(tmp_path, _fake_python(tmp_path, (3, 10, 12)))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "PYTHON=python3\n" + check], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Python 3.11 or newer is needed" in proc.stderr


PY310 = _pyenv_python("3.10")


@pytest.mark.slow
@pytest.mark.skipif(PY310 is None, reason="no Python 3.10 here (pyenv's /root/.pyenv/versions/3.10.*): the "
                                          "Ubuntu 22.04 simulation needs a real 3.10 as python3")
def test_ubuntu_22_04_image_installs_and_grades(autograder_zip, tmp_path):
    """Gradescope's newest base image, simulated: python3 is a real Python 3.10, apt-get only hands over a Python
    3.11 as Ubuntu's python3.11 package would. setup.sh runs unchanged (uv from pip, a venv with the lock's
    Python, found on this machine since uv may not download one here, the requirements under the lock, the import
    check), then run_autograder grades the reference with that venv while python3 is still 3.10.

    Not simulated: apt itself, and PyTorch's CPU wheel index and uv's Python downloads (not reachable here): uv
    gets this machine's pip settings through its own variables (UV_FIND_LINKS...), as an image behind a mirror
    would, and takes torch 2.13.0+cpu from the local wheel folder."""
    from grader import install

    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():
            os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    _, env = _fake_image(tmp_path, PY310)
    env.update(AUTOGRADER_ROOT=str(root), PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_PROGRESS_BAR="off",
               UV_PYTHON_DOWNLOADS="never", **_uv_variables(install.pip_config(sys.executable)))
    assert subprocess.run([PY310, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"]).returncode == 0
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, capture_output=True, text=True,
                           timeout=1500)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert "uv could not be installed" not in setup.stdout and "+ /" in setup.stderr
    assert re.search(r"^\+ \S+/uv/bin/uv pip install --python \S+ --compile-bytecode -r \S+ --constraint "
                     r"\S+requirements.lock$", setup.stderr, re.M), setup.stderr[-3000:]
    venv_python = root / "venv" / "bin" / "python"
    # the image holds torch's bytecode: no submission compiles it again
    assert list((root / "venv").glob("lib/python3*/site-packages/torch/__pycache__/__init__.*.pyc"))
    version = subprocess.run([str(venv_python), "-c", "import platform, torch; print(platform.python_version(),"
                              " torch.__version__)"], capture_output=True, text=True).stdout
    assert version.split() == [(REPO / "requirements.lock").read_text().split("# python: ")[1].split()[0],
                               "2.13.0+cpu"]
    where = root / "submission" / "exercises"
    where.mkdir(parents=True)
    for name, text in reference().items():
        (where / name).write_text(text)
    subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True, timeout=900)
    doc = json.loads((root / "results" / "results.json").read_text())
    check_gradescope_format(doc)
    assert doc["score"] == 100, doc["output"]


def _uv_variables(settings: dict) -> dict:
    """uv's own variables for pip's settings (what an image behind a mirror would set)."""
    env = {"UV_INDEX_STRATEGY": "unsafe-best-match"}
    if settings.get("find-links"):
        env["UV_FIND_LINKS"] = ",".join(settings["find-links"])
    if settings.get("extra-index-url"):
        env["UV_INDEX"] = " ".join(settings["extra-index-url"])
    if settings.get("constraint"):
        env["UV_CONSTRAINT"] = " ".join(settings["constraint"])
    return env


@pytest.mark.skipif(PY310 is None, reason="no Python 3.10 here (pyenv's /root/.pyenv/versions/3.10.*)")
def test_results_code_runs_on_a_bare_python_3_10(tmp_path):
    """Under a bare Python 3.10 (no torch, no pytest), the bundle's code that needs neither imports, renders
    the same results.json as this interpreter and writes it: the runner, the results, the submission sandbox,
    the report and the Gradescope renderer have nothing of 3.11 only. (Grading itself runs on the 3.11 that
    setup.sh brings: hypothesis 6.170.17 needs it.)"""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import grader.judge.session, grader.intake.collect, grader.report\n"
        "from grader import results\n"
        "from grader.platforms import gradescope\n"
        "doc = json.loads(sys.stdin.read())\n"
        "out = gradescope.render(doc, hidden_detail='tests')\n"
        f"results.write(out, Path({str(tmp_path / 'results.json')!r}))\n"
        "print(sys.version_info[:2])\n"
    )
    proc = subprocess.run([PY310, "-I", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + script],
                          input=json.dumps(DOC), capture_output=True, text=True, env={**os.environ,
                          "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(3, 10)"
    assert json.loads((tmp_path / "results.json").read_text()) == gradescope.render(DOC, hidden_detail="tests")


def test_build_message_says_any_ubuntu_image_and_the_budget(tmp_path, capsys):
    parser = __import__("grader.cli", fromlist=["build_parser"]).build_parser()
    args = parser.parse_args(["gradescope", "--out", str(tmp_path), "--budget", "240"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "any Ubuntu base image" in printed and "240 s" in printed


def test_grading_options_go_into_run_autograder(tmp_path):
    """--budget, --hidden-visibility and --hidden-detail given when the zip is built are what each run uses."""
    path = gradescope_zip.build_autograder(tmp_path, budget=120, hidden_visibility="after_due_date", hidden_detail="tests")
    with zipfile.ZipFile(path) as zf:
        script = zf.read("run_autograder").decode()
    assert "--budget 120 --hidden-visibility after_due_date --hidden-detail tests" in script
    with pytest.raises(gradescope_zip.GradescopeError):
        gradescope_zip.build_autograder(tmp_path, hidden_visibility="visible")


# ----------------------------------------------------------------------------------------------------------
# results.json: one box per test function, hidden tests as counts or hints, extras under extra_data
# ----------------------------------------------------------------------------------------------------------


def _case(ex: str, nodeid: str, score: float, top: float, *, hidden=False, kind="passed", reason="", hint="h"):
    status = "passed" if kind == "passed" else "failed"
    name = nodeid.split("::")[-1]
    return {"name": f"{ex}_mod: {name}", "number": "", "score": score, "max_score": top, "status": status,
            "output": "" if status == "passed" else f"{hint}\n{reason}", "visibility": "visible", "tags": [],
            "extra_data": {"nodeid": nodeid, "exercise": ex, "hidden": hidden, "hint": hint, "kind": kind,
                           "reason": reason, "details": "secret traceback", "captured_output": "secret output"}}


def _doc(tests: list[dict]) -> dict:
    return {"score": sum(t["score"] for t in tests), "max_score": 10.0, "execution_time": 1.0, "output": "Score",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
            "lesson": {"status": "graded", "exercises": [{"id": "ex1", "name": "ex1_mod"}]}}


SECRET = "tests/hidden/test_ex1_mod_hidden.py::test_secret_edge[literal-42]"
DOC = _doc([
    _case("ex1", "tests/test_ex1_mod.py::test_one", 1.0, 1.0),
    _case("ex1", "tests/test_ex1_mod.py::test_cases[a]", 0.5, 0.5),
    _case("ex1", "tests/test_ex1_mod.py::test_cases[b]", 0.0, 0.5, kind="failed", reason="expected 1, got 2"),
    _case("ex1", "tests/test_ex1_mod.py::test_cases[c]", 0.0, 0.5, kind="timeout", reason="timed out"),
    _case("ex1", SECRET, 0.0, 2.0, hidden=True, kind="failed", reason="expected 42", hint="edge cases"),
    _case("ex1", "tests/hidden/test_ex1_mod_hidden.py::test_other", 1.0, 1.0, hidden=True),
])


def test_parametrized_cases_fold_into_one_box_that_names_the_failing_ones():
    out = gradescope.render(DOC)
    check_gradescope_format(out)
    cases = next(t for t in out["tests"] if t["name"] == "ex1_mod: test_cases")
    assert (cases["score"], cases["max_score"], cases["status"]) == (0.5, 1.5, "failed")
    assert cases["output"].splitlines() == ["h", "2 of 3 cases failed:", "  [b]: expected 1, got 2", "  [c]: timed out"]
    assert cases["extra_data"]["kinds"] == ["failed", "timeout"]
    assert [t["name"] for t in out["tests"] if not t["extra_data"]["hidden"]] == ["ex1_mod: test_one",
                                                                                "ex1_mod: test_cases"]


def test_extras_live_under_extra_data():
    out = gradescope.render(DOC)
    assert out["extra_data"]["max_score"] == 10.0 and out["extra_data"]["lesson"]["status"] == "graded"
    assert "lesson" not in out and "max_score" not in out


@pytest.mark.parametrize("detail", gradescope_zip.HIDDEN_DETAILS)
@pytest.mark.parametrize("visibility", gradescope_zip.VISIBILITIES)
def test_hidden_tests_show_counts_or_hints_never_their_text(detail, visibility):
    out = gradescope.render(DOC, hidden_visibility=visibility, hidden_detail=detail)
    hidden = [t for t in out["tests"] if t["extra_data"]["hidden"] and not t["extra_data"].get("staff")]
    assert hidden and all(t["visibility"] == visibility for t in hidden)
    text = json.dumps(hidden)
    for secret in ("test_secret_edge", "literal-42", "expected 42", "secret traceback", "secret output"):
        assert secret not in text
    if detail == "counts":
        [box] = hidden
        assert box["output"] == "1 of 2 hidden tests passed (1 of 3 points)." and box["score"] == 1.0
        assert "edge cases" not in text
    else:
        assert [t["output"] for t in hidden] == ["edge cases", ""]
        assert [t["name"] for t in hidden] == ["ex1_mod: hidden test 1", "ex1_mod: hidden test 2"]


def test_default_hidden_tests_are_counts_shown_once_published():
    [box] = [t for t in gradescope.render(DOC)["tests"] if t["extra_data"]["hidden"] and not t["extra_data"].get("staff")]
    assert box["visibility"] == "after_published" and box["name"] == "ex1_mod: hidden tests"


def test_a_looping_submission_stops_at_the_budget_and_still_writes_results(demo_tests, make_submission, tmp_path):
    """Every test loops: a few time out, the budget runs out, the tests left are recorded as not run, and
    results.json is still written with every test in it."""
    loop = "def add(a, b):\n    while True:\n        pass\n\ndef work(n):\n    while True:\n        pass\n"
    folder = make_submission(ex1_demo=loop)
    results_path = tmp_path / "results.json"
    doc = gradescope.run(folder, results_path, tests_dir=demo_tests, limits=Limits(timeout=0.5, budget=0.2))
    kinds = [t["extra_data"]["kind"] for t in doc["tests"]]
    assert kinds[0] == "timeout" and "not_run" in kinds, kinds
    assert kinds[kinds.index("not_run"):] == ["not_run"] * (len(kinds) - kinds.index("not_run"))
    assert doc["lesson"]["budget"] == {"seconds": 0.2, "not_run": kinds.count("not_run")}
    written = json.loads(results_path.read_text())
    check_gradescope_format(written)
    ex2 = next(t for t in written["tests"] if t["extra_data"]["exercise"] == "ex2")
    assert ex2["score"] == 0 and "time budget (0.2 s)" in ex2["output"], "good code after the budget is not run"
    assert "tests were not run: grading stopped at its time budget (0.2 s)" in written["output"]


def test_no_budget_runs_every_test(demo_tests, make_submission, tmp_path):
    doc = gradescope.run(make_submission(), tmp_path / "results.json", tests_dir=demo_tests, limits=Limits(budget=None))
    assert doc["score"] == doc["max_score"] and doc["lesson"]["budget"]["not_run"] == 0


def test_output_block_is_the_submission_summary(tmp_path, monkeypatch):
    """Gradescope's "Files graded / Not graded" block is sandbox.Submission.summary (the batch uses it too)."""
    from grader.intake import collect as sandbox

    folder = tmp_path / "sub" / "exercises"
    folder.mkdir(parents=True)
    first, *_ = NAMES.values()
    (folder / f"{first}.py").write_text("X = 1\n")
    sub = sandbox.collect(tmp_path / "sub", NAMES)
    points = results.load_points()
    # what grade_submission does with a graded document (here: none of the exercises graded)
    doc = results.with_submission(results.empty("exercises"), sub, target="exercises", points=points)
    assert doc["output"] == "Score: 0 / 75\n" + sub.summary()
    assert f"  {first}.py (found at exercises/{first}.py)" in doc["output"] and "Not graded" in doc["output"]
    not_graded = [t for t in doc["tests"] if t["extra_data"]["kind"] == "not_graded"]
    assert len(not_graded) == len(points) - 1 and all(t["extra_data"]["reason"] for t in not_graded)


# ex1 of a submission that says whether the worker could list the hidden tests: the autograder's own and the
# copy the grading sandbox holds next to the submission's files
READ_HIDDEN = '''\
import os
folders = {"source": os.path.join(os.environ.get("AUTOGRADER_ROOT", "/autograder"), "source", "tests", "hidden"),
           "sandbox": os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "hidden")}
marks = []
for name, folder in folders.items():
    try:
        marks.append(f"{name} listed {len(os.listdir(folder))}")
    except OSError as exc:
        marks.append(f"{name} refused ({type(exc).__name__})")
raise RuntimeError(f"atk-gradescope_hidden: {', '.join(marks)} as uid {os.getuid()}")
'''


@pytest.mark.slow
@pytest.mark.skipif(not (sys.platform == "linux" and hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="the uid drop happens only when the grader runs as root (Linux)")
def test_uid_mode_seals_the_hidden_tests_before_student_code_runs(autograder, monkeypatch, host_modes):
    """run_autograder as root with Landlock and namespaces switched off (a Gradescope host may lack them): the
    worker runs as its own uid and cannot list the autograder's tests/hidden nor the sandbox's copy (both are
    there: this process, root, lists them), the other three exercises still score full marks, hidden tests
    included, and the host's modes are as before (host_modes)."""
    monkeypatch.setenv("GRADER_WITHOUT", "landlock,namespaces")
    files = {**reference(), "ex1_special_tokens.py": READ_HIDDEN}
    doc, proc = autograder(files)
    assert lesson(doc)["protections"]["uid"] and not lesson(doc)["protections"]["filesystem"], lesson(doc)
    text = json.dumps(doc)
    assert "atk-gradescope_hidden: source refused (PermissionError), sandbox refused (PermissionError)" in text, (
        text[:3000])
    root = Path(proc.args[0]).parent.parent
    assert os.listdir(root / "source" / "tests" / "hidden"), "positive control: the hidden tests are there"
    assert doc["score"] == 100 - POINTS["ex1"]["visible"] - POINTS["ex1"]["hidden"], doc["output"]


# ----------------------------------------------------------------------------------------------------------
# The instructor's record: every hidden test for staff (visibility "hidden"), nothing of it for students
# ----------------------------------------------------------------------------------------------------------

HIDDEN_INPUT = 9081726354  # a hidden test's input, which its reason carries ("expected 9081726354, got 0")
MORE_HIDDEN = f'''
import pytest

@pytest.mark.points(1)
def test_work_secret_input(student):
    """work(n) returns n for large n too."""
    got = student("ex1_demo").work({HIDDEN_INPUT})
    assert got == {HIDDEN_INPUT}, f"expected {HIDDEN_INPUT}, got {{got}}"
'''
HALF_DONE = {  # add right for positives only, work right for small n; ex2 not started
    "ex1_demo": "def add(a, b):\n    return abs(a) + abs(b)\n\ndef work(n):\n    return n if n < 100 else 0\n",
    "ex2_other": "def twice(x):\n    raise NotImplementedError('ex2: double x')\n",
}


def test_staff_read_every_failed_hidden_test_and_students_none(demo_tests, make_submission, tmp_path, capsys):
    """A half-done submission: each failed hidden test is a box that only staff see (its name, points, reason,
    with the hidden input the reason holds) whatever --hidden-visibility says, and is named on stdout (staff
    only); the boxes students see (the counts, shown as --hidden-visibility says) hold none of it."""
    (demo_tests / "hidden" / "test_ex1_demo_more_hidden.py").write_text(MORE_HIDDEN)
    folder = make_submission(**HALF_DONE)
    (folder.parent / "submission_metadata.json").write_text(json.dumps({
        "created_at": "2026-03-07T10:30:00.000000-08:00", "users": [{"email": "s@example.org", "id": 7}],
        "assignment": {"due_date": "2026-03-06T23:59:00.000000-08:00", "late_due_date": None}}))
    doc = gradescope.run(folder, tmp_path / "results.json", tests_dir=demo_tests)
    stdout = capsys.readouterr().out
    failed = sorted(t["extra_data"]["nodeid"].split("::")[-1] for t in doc["tests"]
                    if t["extra_data"]["hidden"] and t["status"] == "failed")
    assert failed == ["test_add_negative", "test_work_secret_input"]
    for visibility in gradescope_zip.VISIBILITIES:
        out = json.loads((tmp_path / "results.json").read_text()) if visibility == "after_published" else (
            gradescope.render(doc, hidden_visibility=visibility))
        check_gradescope_format(out)
        assert 0 < out["score"] < out["extra_data"]["max_score"], "a half-done submission"
        staff = {t["name"].split(": ")[-1]: t for t in out["tests"] if t["extra_data"].get("staff")}
        assert sorted(staff) == failed and all(t["visibility"] == "hidden" for t in staff.values())
        assert f"expected {HIDDEN_INPUT}, got 0" in staff["test_work_secret_input"]["output"]
        assert staff["test_add_negative"]["output"].startswith("add works for negative numbers.\nexpected -3")
        assert all((t["score"], t["max_score"]) == (0, 1) for t in staff.values())
        # what students see: the counts, with the visibility asked for, and nothing of the hidden tests' text
        counts = [t for t in out["tests"] if t["extra_data"]["hidden"] and not t["extra_data"].get("staff")]
        assert [(t["visibility"], t["output"]) for t in counts] == [
            (visibility, "0 of 2 hidden tests passed (0 of 2 points).")]
        seen = student_visible(out)
        text = json.dumps({**seen, "tests": seen["tests"] + counts})  # the counts too, even while hidden
        for secret in (str(HIDDEN_INPUT), *failed, "expected -3"):
            assert secret not in text, f"{secret!r} reaches what a student sees ({visibility})"
        assert out["score"] == sum(t["score"] for t in out["tests"] if not t["extra_data"].get("staff"))
        assert out["stdout_visibility"] == "hidden"
    # stdout: the student's report, then the failed hidden tests by name (stdout is the instructor's alone)
    assert "Hidden tests failed (2; course staff only" in stdout and str(HIDDEN_INPUT) in stdout
    assert all(name in stdout for name in failed)
    # the submission's time from Gradescope's submission_metadata.json
    assert (doc["lesson"]["late"], doc["lesson"]["submitted_at"]) == (True, "2026-03-07T10:30:00-08:00")
