"""Make the exercise stubs from the reference solutions (one source, two views).

In ``solutions/exN_*.py`` a block of reference code is fenced like this::

    # BEGIN SOLUTION TODO: keep the k largest scores of each query row
    ...reference code...
    # END SOLUTION

In ``exercises/exN_*.py`` the block becomes the TODO line and a ``raise NotImplementedError("exN: ...")`` at the
same indentation. Everything outside the blocks (signatures, docstrings, numbered step comments) is kept.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO_ROOT / "solutions"
EXERCISES = REPO_ROOT / "exercises"

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:\s+TODO:\s*(?P<todo>.*?))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
HEADER = '"""Reference solution'  # a solution file may open with a note that it is the reference


class StubError(ValueError):
    """A solution file whose markers do not pair up."""


def make_stub(source: str, exercise: str) -> str:
    """Return the stub text for one solution file's text."""
    out: list[str] = []
    inside = None  # (line number, indent, todo) of the open block
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise StubError(f"line {number}: BEGIN SOLUTION inside the block opened at line {inside[0]}")
            todo = begin.group("todo") or "write this part"
            inside = (number, begin.group("indent"), todo)
        elif end:
            if not inside:
                raise StubError(f"line {number}: END SOLUTION without a BEGIN SOLUTION")
            _, indent, todo = inside
            message = f"{exercise}: {todo}".replace("\\", "\\\\").replace('"', '\\"')
            out.append(f"{indent}# TODO: {todo}\n")
            out.append(f'{indent}raise NotImplementedError("{message}")\n')
            inside = None
        elif not inside:
            out.append(line)
    if inside:
        raise StubError(f"line {inside[0]}: BEGIN SOLUTION is never closed")
    return "".join(out)


def solution_files(solutions: Path = SOLUTIONS) -> list[Path]:
    return sorted(solutions.glob("ex*_*.py"))


def expected_stubs(solutions: Path = SOLUTIONS) -> dict[str, str]:
    """File name -> stub text, for every solution file."""
    stubs = {}
    for path in solution_files(solutions):
        exercise = path.name.split("_", 1)[0]
        try:
            stubs[path.name] = make_stub(path.read_text(), exercise)
        except StubError as exc:
            raise StubError(f"{path.name}: {exc}") from None
    return stubs


def write_stubs(solutions: Path = SOLUTIONS, exercises: Path = EXERCISES) -> list[Path]:
    exercises.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected_stubs(solutions).items():
        path = exercises / name
        path.write_text(text)
        written.append(path)
    return written


def stale_stubs(solutions: Path = SOLUTIONS, exercises: Path = EXERCISES) -> list[str]:
    """Names of stubs that are missing or differ from what the generator makes."""
    stale = []
    for name, text in expected_stubs(solutions).items():
        path = exercises / name
        if not path.is_file() or path.read_text() != text:
            stale.append(name)
    return stale


def add_stubs_parser(sub) -> None:
    p = sub.add_parser("stubs", help="write exercises/ from solutions/")
    p.add_argument("--check", action="store_true", help="only report stubs that differ from the generator's output")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    if args.check:
        stale = stale_stubs()
        for name in stale:
            print(f"exercises/{name} differs from what `make stubs` generates from solutions/{name}")
        return 1 if stale else 0
    for path in write_stubs():
        print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return 0
