"""The student release: what it holds, that it gives nothing away, and that `make grade` works in a clean copy."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from grader.instructor import release
from grader.instructor.stubs import expected_stubs

REPO = Path(__file__).resolve().parent.parent
STUDENT_COMMANDS = {"grade", "plots", "watch"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return release.build_release(tmp_path_factory.mktemp("dist") / "student")


def run_grader(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m grader ARGS` in ``folder`` with this interpreter, blind to the editable install of this repo
    (which would otherwise let the release import grader modules it does not ship)."""
    return subprocess.run(
        [sys.executable, "-c", release.RUN_GRADER_DETACHED, *args],
        cwd=folder, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"},
    )


# ----------------------------------------------------------------------------------------------------------
# What is in it
# ----------------------------------------------------------------------------------------------------------


def test_release_layout(built):
    top = {p.name for p in built.iterdir()}
    assert top == {
        "README.md", "Makefile", "pyproject.toml", "requirements.lock", "requirements.imports", ".gitignore", "LICENSE", release.MARKER_FILE,
        "llm_basics", "resources", "exercises", "tests", "grader", "project_tests",
    }
    assert not (built / "solutions").exists() and not (built / "tests" / "hidden").exists()
    assert sorted(p.name for p in (built / "project_tests").iterdir()) == sorted(release.PROJECT_TESTS)
    visible = sorted(p.name for p in (REPO / "tests").glob("test_*.py"))
    assert sorted(p.name for p in (built / "tests").iterdir()) == sorted([*visible, "conftest.py", "points.json"])
    grader_files = {p.relative_to(built / "grader").as_posix() for p in (built / "grader").rglob("*") if p.is_file()}
    needed = {"cli.py", "judge/plugin.py", "judge/session.py", "judge/serve.py", "judge/entry.py", "grading.py",
              "results.py", "report.py", "graded_pytest.ini", "install.py", "watch.py", "worker/client.py",
              "worker/worker.py", "worker/spawned.py", "worker/confine.py", "worker/seccomp.py"}
    assert needed <= grader_files
    assert not {f for f in grader_files if f.split("/")[0] in {"instructor", "platforms", "batch"}}
    assert not list(built.rglob("__pycache__"))


def test_exercises_are_fresh_stubs(built):
    stubs = expected_stubs()
    assert {p.name: p.read_text() for p in (built / "exercises").iterdir()} == stubs


def test_readme_drops_instructor_sections(built):
    text = (built / "README.md").read_text()
    assert "make grade" in text and "## The exercises" in text
    assert "For instructors" not in text and "instructor-only" not in text
    assert "make release" not in text and "solutions/" not in text


def readme_paths(text: str) -> set[str]:
    """Every word of a code block or code span, and every link target, of a README: what it may name as a file."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    code = blocks + re.findall(r"`([^`]+)`", prose)
    words = {w.lstrip("(").rstrip(".,;:)") for span in code for w in span.split()}
    return (words | set(re.findall(r"\]\(([^)\s#]+)\)", prose))) - {""}


def missing_from_release(release_dir: Path) -> list[str]:
    """The files and folders of this repository that the release's README names but the release lacks."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    folders = {parent.as_posix() for name in tracked for parent in Path(name).parents} - {"."}
    named = {p.rstrip("/") for p in readme_paths((release_dir / "README.md").read_text())}
    return sorted(p for p in named if (p in tracked or p in folders) and not (release_dir / p).exists())


def test_readme_names_no_file_the_release_lacks(built):
    """A file or folder of this repository that the student README names (a code block or span, a link) is in the
    release: the README never sends a student to a file they do not have."""
    named = readme_paths((built / "README.md").read_text())
    assert {"exercises/", "llm_basics/threads.py", "resources/lesson-1-llm-basics/step1_tokenizer_basics.py",
            "resources/lesson-1-llm-basics/README.md"} <= named, named
    assert missing_from_release(built) == []


def test_the_readme_check_finds_a_file_the_release_lacks(built, tmp_path):
    copy = tmp_path / "student"
    shutil.copytree(built, copy)
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\nMeasured with `bench/bench_watch.py --runs 3`; see [the code](solutions/).\n")
    assert missing_from_release(copy) == ["bench/bench_watch.py", "solutions"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_release_git_is_a_fresh_repository_with_one_commit(built, tmp_path, monkeypatch, capsys):
    from grader.cli import main

    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))  # no user configured: the fallback
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    out = tmp_path / "lesson1-student"
    assert main(["release", "--out", str(out), "--git"]) == 0
    assert "a new git repository, first commit" in capsys.readouterr().out

    def git(*args):
        return subprocess.run(["git", *args], cwd=out, capture_output=True, text=True, check=True).stdout.strip()

    assert git("rev-parse", "--show-toplevel") == str(out.resolve())  # its own repository, not the instructor's
    assert git("rev-list", "--count", "HEAD") == "1" and git("branch", "--show-current") == "main"
    assert git("status", "--porcelain") == ""  # every file committed
    assert sorted(git("ls-files").split()) == sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".git" not in p.relative_to(out).parts)
    assert git("log", "-1", "--format=%an") == "Course staff"


def test_strip_instructor_sections():
    keep = "# Title\n\ntext\n"
    assert release.strip_instructor_sections(keep) == keep
    text = "a\n<!-- instructor-only -->\nsecret\n<!-- /instructor-only -->\nb\n"
    assert release.strip_instructor_sections(text) == "a\nb\n"
    for broken in ("a\n<!-- instructor-only -->\nsecret\n", "a\n<!-- /instructor-only -->\n"):
        with pytest.raises(release.ReleaseError, match="line"):
            release.strip_instructor_sections(broken)


def test_pyproject_keeps_dependencies_and_drops_instructor_extras(built):
    mine = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    theirs = tomllib.loads((built / "pyproject.toml").read_text())["project"]
    assert theirs["dependencies"] == mine["dependencies"]
    assert not set(theirs.get("optional-dependencies", {})) & set(release.INSTRUCTOR_EXTRAS)


def test_makefile_has_only_student_targets(built):
    text = (built / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", text, flags=re.M))
    assert targets == {"help", "setup", "grade", "watch", "test", "walkthrough", "plots", "clean"}
    assert "--target solutions" not in text
    if shutil.which("make"):
        out = subprocess.run(["make", "help"], cwd=built, capture_output=True, text=True, timeout=60).stdout
        assert "make grade" in out and "make release" not in out and "make check" not in out


def test_cli_in_release_lists_no_instructor_commands(built):
    proc = run_grader(built, "--help")
    assert proc.returncode == 0, proc.stderr
    commands = set(re.search(r"\{([a-z,-]+)\}", proc.stdout).group(1).split(","))
    assert "grade" in commands and commands <= STUDENT_COMMANDS
    proc = run_grader(built, "release")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


# ----------------------------------------------------------------------------------------------------------
# It gives nothing away (an independent scan: not release.find_leaks, which the build itself runs)
# ----------------------------------------------------------------------------------------------------------


def _solution_lines() -> set[str]:
    """Distinctive lines of the solution blocks, minus what students are given anyway."""
    public = []
    for folder in ("llm_basics", "resources"):
        public += [p.read_text(errors="ignore") for p in (REPO / folder).rglob("*") if p.is_file()]
    public += [(REPO / "project_tests" / n).read_text() for n in release.PROJECT_TESTS]
    public += [p.read_text() for p in (REPO / "tests").glob("*.py")]
    secret = []
    for path in sorted((REPO / "solutions").glob("*.py")):
        inside = False
        for line in path.read_text().splitlines():
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            else:
                (secret if inside else public).append(line.strip())
    public_text = "\n".join(public)
    generic = re.compile(r"^(return|raise|else|try|finally|pass)\b.{0,30}$")
    return {s for s in secret if len(s) > 25 and not generic.match(s) and s not in public_text}


def _hidden_names() -> set[str]:
    names = set()
    for path in (REPO / "tests" / "hidden").glob("*.py"):
        names |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)
                  and n.name.startswith("test_")}
    return names


def _scan(folder: Path) -> list[str]:
    secrets, names = _solution_lines(), _hidden_names()
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found += [f"{path.relative_to(folder)}: {s!r}" for s in secrets if s in text]
        found += [f"{path.relative_to(folder)}: {n}" for n in names if re.search(rf"\b{n}\b", text)]
    return found


def test_the_scan_has_something_to_look_for():
    assert len(_solution_lines()) > 20, "every exercise should have distinctive solution lines"
    assert len(_hidden_names()) >= len(json.loads((REPO / "tests" / "points.json").read_text()))


def test_release_holds_no_solution_line_and_no_hidden_test_name(built):
    assert _scan(built) == []
    assert release.find_leaks(built) == []


def test_the_scan_catches_a_planted_leak(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    secret = sorted(_solution_lines())[0]
    hidden = sorted(_hidden_names())[0]
    (copy / "grader" / "notes.py").write_text(f"    {secret}\n# see {hidden}\n")
    for found in (_scan(copy), release.find_leaks(copy)):
        assert any(repr(secret) in f for f in found) and any(hidden in f for f in found), found


def test_build_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(release.ReleaseError, match="not an earlier release"):
        release.build_release(foreign)
    assert (foreign / "thesis.tex").exists()
    with pytest.raises(release.ReleaseError, match="refusing"):
        release.build_release(REPO)


@pytest.mark.slow
def test_rebuild_replaces_an_earlier_release(built, tmp_path):
    out = tmp_path / "student"
    release.build_release(out)
    (out / "stale.txt").write_text("from an older release")
    release.build_release(out)
    assert not (out / "stale.txt").exists() and (out / "Makefile").is_file()


# ----------------------------------------------------------------------------------------------------------
# `make grade` works in a clean copy (the grading part of it: a full `make grade` would build a 1 GB venv)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_stubs_score_zero_in_a_clean_copy_with_hidden_points_not_run(built, tmp_path):
    copy = tmp_path / "clone"
    shutil.copytree(built, copy)
    proc = run_grader(copy, "grade")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((copy / ".grades" / "results.json").read_text())
    points = json.loads((REPO / "tests" / "points.json").read_text())
    assert doc["score"] == 0
    assert doc["max_score"] == sum(p["visible"] for p in points.values())
    assert doc["lesson"]["hidden_points_not_run"] == sum(p["hidden"] for p in points.values())
    assert all(t["extra_data"]["kind"] == "not_implemented" for t in doc["tests"])
    assert not any(t["extra_data"]["hidden"] for t in doc["tests"])
    for ex in doc["lesson"]["exercises"]:
        assert ex["hidden_run"] is False and ex["hidden_max"] == points[ex["id"]]["hidden"]
    assert "not run here" in proc.stdout and "Total: 0 /" in proc.stdout
