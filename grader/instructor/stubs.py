"""Make the exercise stubs from the reference solutions (one source, two views).

In ``solutions/exN_*.py`` a block of reference code is fenced like this::

    # BEGIN SOLUTION TODO: keep the k largest scores of each query row
    ...reference code...
    # END SOLUTION

In ``exercises/exN_*.py`` the block becomes the TODO line and a ``raise NotImplementedError("exN: ...")`` at the
same indentation. Everything outside the blocks (signatures, docstrings, numbered step comments) is kept.
"""

from __future__ import annotations

from pathlib import Path

from grader.course import EXERCISES, REPO_ROOT, SOLUTIONS, SolutionBlockError, render, segments  # noqa: F401

HEADER = '"""Reference solution'  # a solution file may open with a note that it is the reference
StubError = SolutionBlockError  # a solution file whose markers do not pair up


def make_stub(source: str, exercise: str) -> str:
    """Return the stub text for one solution file's text."""
    return render(segments(source), lambda _, block: block.stub(exercise))


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
