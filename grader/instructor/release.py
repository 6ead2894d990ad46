"""``python -m grader release``: write the repository a student clones (no solutions, no hidden tests).

What goes in, and from where::

    README.md        this repository's README minus every <!-- instructor-only --> ... <!-- /instructor-only -->
    Makefile         this one minus every # BEGIN instructor-only ... # END instructor-only block
    pyproject.toml   this one, without the instructor-only optional dependencies (bench, nbgrader)
    .gitignore       this one (and LICENSE, requirements.lock: the setup installs its versions, and
                     requirements.imports, the student's group only: the files whose bytecode the setup writes)
    llm_basics/      the given lesson code, as is
    resources/       the lesson text and walkthroughs, as is
    exercises/       the stubs, generated fresh from solutions/ (never copied from exercises/)
    tests/           the visible graded suites, conftest.py and points.json (so hidden points show as "not run")
    grader/          only what `make grade` and `make plots` import (found by following the imports);
                     the instructor commands live in the modules left out, so cli.py lists none
    project_tests/   the tests of llm_basics only (`make test` in the release)

Before anything is written to ``--out``, the release is built in a temporary folder and checked: no line of a
solution block and no hidden test name may appear in any of its files, and ``python -m grader --help`` must run
there and list no instructor command. A release that fails a check is never written.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grader import install_bytecode
from grader.course import REPO_ROOT, Block, segments

# grader modules that `make grade` starts from (install: the Makefile's setup step); whatever they import from
# grader.* comes along
# comes along; a subpackage (judge/, worker/, intake/) is shipped whole, its files only (not its subfolders)
STUDENT_ENTRY_MODULES = ("__init__", "__main__", "cli", "judge.plugin", "judge.session", "grading", "results",
                         "report", "install")
# never shipped, even when something imports them (they need solutions/ or hidden tests, or give them away): these
# folders of grader/, by name
INSTRUCTOR_MODULES = frozenset({"instructor", "platforms", "batch"})
# subcommands taken out of the release's cli.py
INSTRUCTOR_COMMANDS = frozenset({"check", "stubs", "release", "gradescope", "gradescope-run", "batch", "nbgrader"})
GRADER_DATA_SUFFIXES = (".ini", ".json")
PROJECT_TESTS = ("test_tokenizer.py", "test_corpus.py", "test_attention.py", "test_model.py", "test_generation.py")
INSTRUCTOR_EXTRAS = ("dev", "bench", "dask")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".DS_Store", ".pytest_cache", ".hypothesis")

README_BEGIN = "<!-- instructor-only -->"
README_END = "<!-- /instructor-only -->"
MAKEFILE_BEGIN = "# BEGIN instructor-only"
MAKEFILE_END = "# END instructor-only"
MARKER_FILE = ".lesson-release"  # marks a folder this module wrote, so a rebuild may replace it

MIN_SECRET_CHARS = 26  # shorter solution lines ("return out, weights") are too generic to count as a leak
GENERIC_LINE = re.compile(r"^[\s\)\]\}:,]*$|^(return|raise|pass|break|continue|else:|try:|finally:)\b.{0,30}$")


class ReleaseError(RuntimeError):
    """The release could not be built, or would give something away; the message says what."""


# ----------------------------------------------------------------------------------------------------------
# README, Makefile, pyproject.toml
# ----------------------------------------------------------------------------------------------------------


def strip_instructor_sections(
    text: str, begin: str = README_BEGIN, end: str = README_END, *, name: str = "README.md"
) -> str:
    """Drop every ``begin`` ... ``end`` section (markers included); text without markers comes back unchanged."""
    out: list[str] = []
    opened_at = None
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped == begin:
            if opened_at is not None:
                raise ReleaseError(f"{name} line {number}: {begin} inside the section opened at line {opened_at}")
            opened_at = number
        elif stripped == end:
            if opened_at is None:
                raise ReleaseError(f"{name} line {number}: {end} without a {begin} before it")
            opened_at = None
        elif opened_at is None:
            out.append(line)
    if opened_at is not None:
        raise ReleaseError(f"{name} line {opened_at}: {begin} is never closed with {end}")
    return re.sub(r"\n{3,}", "\n\n", "".join(out))


FALLBACK_README = """\
# Lesson 1: LLM basics

```bash
make grade   # grade your exercises (sets itself up on first run)
make test    # check the lesson code in llm_basics/
```

Fill in the TODOs in `exercises/`; each file's docstring explains the task. `make` lists every target.
"""


def student_readme(repo: Path = REPO_ROOT) -> str:
    path = repo / "README.md"
    if not path.is_file():
        return FALLBACK_README
    return strip_instructor_sections(path.read_text(encoding="utf-8"))


def student_makefile(repo: Path = REPO_ROOT) -> str:
    """The Makefile without its ``# BEGIN instructor-only`` ... ``# END instructor-only`` blocks."""
    text = (repo / "Makefile").read_text(encoding="utf-8")
    return strip_instructor_sections(text, MAKEFILE_BEGIN, MAKEFILE_END, name="Makefile")


def student_pyproject(text: str) -> str:
    """Drop the instructor-only optional dependency groups (one line each) from ``[project.optional-dependencies]``."""
    out, section = [], ""
    for line in text.splitlines(keepends=True):
        header = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1).strip()
        key = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*=", line)
        if section == "project.optional-dependencies" and key and key.group(1) in INSTRUCTOR_EXTRAS:
            if not line.split("#", 1)[0].rstrip().endswith("]"):
                raise ReleaseError(f"pyproject.toml: write the optional dependency group {key.group(1)!r} on one line")
            continue
        out.append(line)
    return "".join(out)


# ----------------------------------------------------------------------------------------------------------
# grader/: which modules (instructor commands live in modules the release leaves out, so they vanish)
# ----------------------------------------------------------------------------------------------------------


def _module_file(dotted: str, grader_dir: Path) -> str | None:
    """``judge.plugin`` -> ``judge/plugin.py`` (or ``judge/__init__.py`` for a package), relative to grader/."""
    parts = [p for p in dotted.split(".") if p]
    for rel in (Path(*parts).with_suffix(".py") if parts else None, Path(*parts, "__init__.py")):
        if rel is not None and (grader_dir / rel).is_file():
            return rel.as_posix()
    return None


def _grader_imports(source: str, grader_dir: Path, package: str = "") -> set[str]:
    """Dotted names (relative to grader) of the grader modules that ``source`` imports (at any level, lazily or
    not); ``package``: the dotted package of the importing file, for relative imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.partition(".")[2] for a in node.names if a.name.startswith("grader.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = [p for p in package.split(".") if p]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            elif node.module == "grader" or (node.module or "").startswith("grader."):
                module = node.module.partition(".")[2]
            else:
                continue
            found.add(module)
            for a in node.names:  # from grader.judge import plugin: the submodule too
                if _module_file(f"{module}.{a.name}", grader_dir):
                    found.add(f"{module}.{a.name}".strip("."))
    return {m for m in found if m}


def student_grader_files(grader_dir: Path) -> dict[str, str]:
    """Path under grader/ (``judge/plugin.py``) -> text of every grader file the release ships."""
    files: dict[str, str] = {}
    todo = [rel for m in STUDENT_ENTRY_MODULES if (rel := _module_file(m, grader_dir))]
    while todo:
        rel = todo.pop()
        if rel in files or rel.split("/")[0] in INSTRUCTOR_MODULES:
            continue
        files[rel] = (grader_dir / rel).read_text(encoding="utf-8")
        folder = Path(rel).parent
        if folder != Path("."):  # a subpackage: shipped whole (its own files), with the packages above it
            todo += [(folder / p.name).as_posix() for p in sorted((grader_dir / folder).glob("*.py"))]
            todo += [(parent / "__init__.py").as_posix() for parent in folder.parents if parent != Path(".")]
        package = ".".join(Path(rel).parent.parts if Path(rel).name == "__init__.py" else Path(rel).parent.parts)
        for dep in _grader_imports(files[rel], grader_dir, package):
            if (dep_rel := _module_file(dep, grader_dir)) and dep_rel not in files:
                todo.append(dep_rel)
    for path in sorted(grader_dir.iterdir()):
        if path.suffix in GRADER_DATA_SUFFIXES and path.is_file():
            files[path.name] = path.read_text(encoding="utf-8")
    return files


# ----------------------------------------------------------------------------------------------------------
# What must never be in a release
# ----------------------------------------------------------------------------------------------------------


def split_solution(text: str) -> tuple[list[str], list[str]]:
    """(lines inside solution blocks, lines outside them) of one solution file; markers belong to neither."""
    inside_lines, outside_lines = [], []
    for part in segments(text):
        if isinstance(part, Block):
            inside_lines += [line.rstrip("\r\n") for line in part.body]
        else:
            outside_lines.append(part.rstrip("\r\n"))
    return inside_lines, outside_lines


def public_text(repo: Path = REPO_ROOT) -> str:
    """Everything students are meant to read: the lesson code and text, the llm_basics tests, the visible suites,
    and the parts of the solution files outside the blocks (what the stubs keep)."""
    paths = [p for folder in ("llm_basics", "resources") for p in sorted((repo / folder).rglob("*"))]
    paths += [repo / "project_tests" / name for name in PROJECT_TESTS]
    paths += sorted((repo / "tests").glob("*.py"))
    paths = [p for p in paths if p.is_file() and "__pycache__" not in p.parts]
    parts = [p.read_text(encoding="utf-8", errors="ignore") for p in paths]
    for path in sorted((repo / "solutions").glob("*.py")):
        parts.append("\n".join(split_solution(path.read_text(encoding="utf-8"))[1]))
    return "\n".join(parts)


def secret_lines(repo: Path = REPO_ROOT) -> set[str]:
    """Distinctive lines of the solution blocks: what a release must not contain.

    Short or generic lines do not count, nor does a line that students are given anyway (see ``public_text``:
    a solution may share a line with the lesson code, or with an oracle in a visible test).
    """
    public = public_text(repo)
    secrets = set()
    for path in sorted((repo / "solutions").glob("*.py")):
        for line in split_solution(path.read_text(encoding="utf-8"))[0]:
            line = line.strip()
            if len(line) >= MIN_SECRET_CHARS and not GENERIC_LINE.match(line) and line not in public:
                secrets.add(line)
    return secrets


def hidden_test_names(repo: Path = REPO_ROOT) -> set[str]:
    names = set()
    for path in sorted((repo / "tests" / "hidden").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def find_leaks(release: Path, repo: Path = REPO_ROOT) -> list[str]:
    """Every (file, secret) pair where a release file holds a solution line or a hidden test name."""
    secrets = secret_lines(repo)
    names = hidden_test_names(repo)
    name_re = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b") if names else None
    leaks = []
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        rel = path.relative_to(release)
        if rel.parts[0] == ".venv" or "__pycache__" in rel.parts:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        leaks += [f"{rel}: solution line {line!r}" for line in sorted(secrets) if line in text]
        if name_re:
            leaks += [f"{rel}: hidden test name {m!r}" for m in sorted(set(name_re.findall(text)))]
    for banned in ("solutions", "tests/hidden"):
        if (release / banned).exists():
            leaks.append(f"{banned}/ is in the release")
    return leaks


# ----------------------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------------------


# `python -m grader ARGS` run in a release folder with this interpreter, blind to this repository: an editable
# install of the project (pip install -e) adds an import finder that would otherwise find grader.instructor.release & co.
# here even when the release leaves them out.
RUN_GRADER_DETACHED = (
    "import runpy, sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]; "
    "sys.argv[0] = 'python -m grader'; "
    "runpy.run_module('grader', run_name='__main__', alter_sys=True)"
)


def cli_commands(release: Path) -> list[str]:
    """The subcommands ``python -m grader --help`` lists when run in ``release`` (checks that the cli imports)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_GRADER_DETACHED, "--help"],
        cwd=release, env=env, capture_output=True, text=True, timeout=60,
    )
    if proc.returncode != 0:
        raise ReleaseError(f"`python -m grader --help` fails in the release:\n{proc.stderr[-2000:]}")
    match = re.search(r"\{([a-z0-9_,-]+)\}", proc.stdout)
    if not match:
        raise ReleaseError(f"cannot find the command list in `python -m grader --help`:\n{proc.stdout}")
    return match.group(1).split(",")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _assemble(stage: Path, repo: Path) -> None:
    from grader.instructor.stubs import expected_stubs

    _write(stage / "README.md", student_readme(repo))
    _write(stage / "pyproject.toml", student_pyproject((repo / "pyproject.toml").read_text(encoding="utf-8")))
    for name in (".gitignore", "LICENSE", "requirements.lock"):
        if (repo / name).is_file():
            shutil.copy2(repo / name, stage / name)
    if (repo / install_bytecode.LIST.name).is_file():  # the student's group only
        _write(stage / install_bytecode.LIST.name,
               install_bytecode.student_list((repo / install_bytecode.LIST.name).read_text(encoding="utf-8")))
    for folder in ("llm_basics", "resources"):
        shutil.copytree(repo / folder, stage / folder, ignore=IGNORE)
    for name, text in expected_stubs(repo / "solutions").items():
        _write(stage / "exercises" / name, text)
    tests = repo / "tests"
    (stage / "tests").mkdir()
    for path in sorted(tests.glob("test_*.py")) + [tests / "conftest.py", tests / "points.json"]:
        if path.is_file():
            shutil.copy2(path, stage / "tests" / path.name)
    grader_dir = repo / "grader"
    for name, text in student_grader_files(grader_dir).items():
        _write(stage / "grader" / name, text)
    for name in PROJECT_TESTS:
        if (repo / "project_tests" / name).is_file():
            _write(stage / "project_tests" / name, (repo / "project_tests" / name).read_text(encoding="utf-8"))


def build_release(out: Path, *, repo: Path = REPO_ROOT) -> Path:
    """Write the student release to ``out`` (replacing an earlier release there) and return ``out``."""
    out = Path(out).resolve()
    repo = Path(repo).resolve()
    if out == repo or out in repo.parents:
        raise ReleaseError(f"refusing to write the release over {out}: choose a new folder such as dist/student")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER_FILE).is_file())):
        raise ReleaseError(f"{out} exists and is not an earlier release (no {MARKER_FILE}): remove it or pick another")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _assemble(stage, repo)
        commands = cli_commands(stage)
        instructor = sorted(set(commands) & INSTRUCTOR_COMMANDS)
        if instructor:
            raise ReleaseError(f"the release's `python -m grader --help` still lists {', '.join(instructor)}")
        _write(stage / "Makefile", student_makefile(repo))
        _write(stage / MARKER_FILE, "Written by `python -m grader release`; a rebuild replaces this folder.\n")
        leaks = find_leaks(stage, repo)
        if leaks:
            raise ReleaseError("the release would give away:\n  " + "\n  ".join(leaks[:20]))
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return out


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def add_release_parser(sub) -> None:
    p = sub.add_parser("release", help="write the student release (no solutions, no hidden tests)")
    p.add_argument("--out", default="dist/student", help="folder to write (default dist/student)")
    p.add_argument("--git", action="store_true",
                   help="make the release a fresh git repository with its first commit (grader/instructor/release_git.py)")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    from grader.instructor.release_git import GitError, first_commit

    try:
        out = build_release(Path(args.out))
        commit = first_commit(out) if args.git else None
    except (ReleaseError, GitError) as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    files = sum(1 for p in out.rglob("*") if p.is_file() and ".git" not in p.relative_to(out).parts)
    print(f"wrote the student release to {args.out} ({files} files); try it: cd {args.out} && make grade")
    if commit:
        print(f"a new git repository, first commit {commit[:12]} on main: git remote add origin URL && git push -u"
              " origin main")
    return 0
