"""The Gradescope autograder end to end: build autograder.zip, unpack it the way Gradescope does, and run
``run_autograder`` on the reference, the stubs, a broken and an empty submission."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from grader import gradescope
from grader.results import SCHEMA_PATH, load_points
from grader.stubs import expected_stubs

REPO = Path(__file__).resolve().parent.parent
POINTS = load_points(REPO / "tests")
NAMES = {ex: meta["name"] for ex, meta in POINTS.items()}
SCHEMA = json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    return gradescope.build_autograder(tmp_path_factory.mktemp("dist"))


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
        jsonschema.validate(doc, SCHEMA)
        return doc, proc

    return run


def by_exercise(doc: dict) -> dict[str, dict]:
    return {e["id"]: e for e in doc["lesson"]["exercises"]}


def reference() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((REPO / "solutions").glob("ex*_*.py"))}


def test_zip_layout(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        requirements = zf.read("requirements.txt").decode()
        run_script = zf.read("run_autograder").decode()
    for script in ("setup.sh", "run_autograder"):
        assert (infos[script].external_attr >> 16) & stat.S_IXUSR, f"{script} must be executable"
    assert "torch==2.13.0" in requirements.splitlines() and "download.pytorch.org/whl/cpu" in requirements
    assert "AUTOGRADER_ROOT" in run_script and "gradescope-run" in run_script
    names = set(infos)
    for ex, name in NAMES.items():
        assert any(n.startswith(f"tests/test_{ex}_") for n in names)
        assert any(n.startswith(f"tests/hidden/test_{ex}_") for n in names), f"hidden tests of {ex} missing"
    assert {"tests/points.json", "tests/conftest.py", "grader/plugin.py", "llm_basics/model.py"} <= names
    assert not any(n.startswith(("solutions/", "exercises/")) or "__pycache__" in n for n in names)


def test_zip_is_reproducible(autograder_zip, tmp_path):
    again = gradescope.build_autograder(tmp_path)
    assert again.read_bytes() == autograder_zip.read_bytes()


def test_empty_submission_is_ungradable_with_a_reason(autograder):
    doc, _ = autograder({"notes.txt": "I ran out of time"}, folder=".")
    assert doc["score"] == 0 and doc["lesson"]["status"] == "ungradable"
    assert doc["output"].startswith("Ungradable: no exercise files found")
    assert doc["max_score"] == sum(p["visible"] + p["hidden"] for p in POINTS.values())


def test_a_grader_that_cannot_start_still_writes_results(autograder):
    doc, _ = autograder(reference(), python="/bin/false")
    assert doc["score"] == 0 and doc["output"].startswith("Ungradable: the autograder could not run")


@pytest.mark.slow
def test_reference_scores_full_marks(autograder):
    doc, proc = autograder(reference())
    assert proc.returncode == 0
    assert (doc["score"], doc["max_score"]) == (100, 100), doc["output"]
    hidden = [t for t in doc["tests"] if t["extra_data"]["hidden"]]
    assert hidden and all(t["visibility"] == "after_published" for t in hidden)
    assert all(t["visibility"] == "visible" for t in doc["tests"] if not t["extra_data"]["hidden"])


@pytest.mark.slow
def test_stubs_score_zero(autograder):
    doc, _ = autograder(expected_stubs(), folder="my-repo/exercises")
    assert doc["score"] == 0 and doc["lesson"]["status"] == "graded"
    assert all(t["extra_data"]["kind"] == "not_implemented" for t in doc["tests"])
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
    # hidden tests reach students as their hint and points only, never a reason or a name
    hidden = [t for t in doc["tests"] if t["extra_data"]["hidden"]]
    assert hidden and all(t["output"] == t["extra_data"]["hint"] for t in hidden if t["status"] != "passed")
    assert all(set(t["extra_data"]) == {"exercise", "hidden", "hint", "kind"} for t in hidden)
    assert f"{missing_ex}: missing" in doc["output"]


def _python_check(autograder_zip) -> str:
    with zipfile.ZipFile(autograder_zip) as zf:
        setup = zf.read("setup.sh").decode()
    lines = setup.splitlines()
    [check] = [line for line in lines if "sys.version_info" in line]
    install = next(i for i, line in enumerate(lines) if line.startswith("pip3 install"))
    assert lines.index(check) < install, "the Python check must come before the (long) pip install"
    return check


def test_setup_fails_early_on_an_old_python(autograder_zip, tmp_path):
    check = _python_check(autograder_zip)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python3 = bin_dir / "python3"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def run(version: tuple) -> subprocess.CompletedProcess:
        # a python3 that reports `version`: the check line runs unchanged, as setup.sh runs it
        python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c '
                           f'"import sys; sys.version_info = {version!r}; exec(sys.argv[2])" "$@"\n')
        python3.chmod(0o755)
        return subprocess.run(["bash", "-euo", "pipefail", "-c", check], env=env, capture_output=True, text=True)

    old = run((3, 10, 12))
    assert old.returncode != 0
    assert "Python 3.11 or newer is needed: choose Ubuntu 24.04 in the Gradescope autograder settings" in old.stderr
    assert run((3, 11, 0)).returncode == 0 and run((3, 12, 3)).returncode == 0


def test_build_message_names_the_ubuntu_image(tmp_path, capsys):
    import argparse

    assert gradescope._cmd_build(argparse.Namespace(out=str(tmp_path))) == 0
    printed = capsys.readouterr().out
    assert "Ubuntu 24.04" in printed and "Python 3.11" in printed


def test_output_block_is_the_submission_summary(tmp_path, monkeypatch):
    """Gradescope's "Files graded / Not graded" block is sandbox.Submission.summary (the batch uses it too)."""
    from grader import sandbox

    folder = tmp_path / "sub" / "exercises"
    folder.mkdir(parents=True)
    first, *_ = NAMES.values()
    (folder / f"{first}.py").write_text("X = 1\n")
    sub = sandbox.collect(tmp_path / "sub", NAMES)
    doc = {"output": "Score: 0 / 100", "tests": [], "lesson": {}}
    gradescope._note_problems(doc, sub)
    assert doc["output"] == "Score: 0 / 100\n" + sub.summary()
    assert f"  {first}.py (found at exercises/{first}.py)" in doc["output"] and "Not graded" in doc["output"]
