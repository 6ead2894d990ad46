"""The course's shape, written once: where things are, the manifest of exercises, and the solution blocks.

The manifest is ``tests/points.json``: per exercise id (``ex1``...), its module ``name``, ``title``, ``visible``
and ``hidden`` points, and what code needs to know about it (``counts_flops``: its suites or reference
count FLOPs on the meta device, which needs torch's symbolic shapes: imported once before forking), and which tests
are held back (``held_back``: test function -> its gate, see ``held_back``). Its files
follow from the name: ``solutions/<name>.py``, ``exercises/<name>.py``, ``tests/test_<id>_*.py`` and
``tests/hidden/test_<id>_*.py``. Adding an exercise is: the solution, the suites, one manifest entry, ``make stubs``.

A solution block is fenced by ``# BEGIN SOLUTION TODO: <instruction>`` and ``# END SOLUTION``; ``segments``
is the one parser of that format (stubs, the release's leak check, nbgrader and the mutants all use it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
SOLUTIONS = REPO_ROOT / "solutions"
EXERCISES = REPO_ROOT / "exercises"
MANIFEST = "points.json"
HIDDEN_HELD_BACK = "held_back.json"  # in tests/hidden/: the held-back rules of the hidden tests

EXERCISE_ID = re.compile(r"(?:^|[/\\_])(?:test_)?(ex\d+)(?=_)")


GRADED_FOLDERS = ("exercises", "solutions")  # the targets that name a folder of the repository


def resolve_target(target: str | Path) -> Path:
    """The folder of the code graded for ``--target``: 'exercises' and 'solutions' name folders of the repository;
    anything else is a path, relative to the caller's folder (a judge runs elsewhere: it is given this one)."""
    if str(target) in GRADED_FOLDERS:
        return REPO_ROOT / str(target)
    return Path(target).expanduser().resolve()


def load_manifest(tests_dir: Path = TESTS_DIR) -> dict:
    """``tests/points.json``: exercise id -> {name, title, visible, hidden, ...}, in course order."""
    return json.loads((Path(tests_dir) / MANIFEST).read_text())


def exercise_of(name: str) -> str | None:
    """'ex2' for 'ex2_topk_attention.py', 'test_ex2_topk_attention.py' or 'tests/hidden/test_ex2_x_hidden.py'."""
    match = EXERCISE_ID.search(Path(name).name if "/" in name or "\\" in name else name)
    return match.group(1) if match else None


def held_back(exercise: str, tests_dir: Path = TESTS_DIR) -> dict[str, str]:
    """An exercise's held-back tests: test function name -> the gate that must pass before it counts.

    A test that code computing nothing could pass (a placeholder that returns zeros, its input, a constant, or
    raises ValueError for everything) counts only once its gate passes: a test of the same exercise that every
    placeholder fails (the worked example, a check that the output depends on the input), in the same file or in
    the exercise's visible file. The gate is a test function (every case of it must pass) or one case of one,
    ``test_name[case-id]``. The rules of the visible tests are the manifest's ``held_back``; those of the hidden
    tests are in ``tests/hidden/held_back.json`` (exercise id -> rules), which never leaves the instructor's
    copy with them. The judge alone applies them (grader.judge.verdicts.hold_back)."""
    tests_dir = Path(tests_dir)
    manifest = load_manifest(tests_dir) if (tests_dir / MANIFEST).is_file() else {}
    hidden = tests_dir / "hidden" / HIDDEN_HELD_BACK
    rules = {**manifest.get(exercise, {}).get("held_back", {}),
             **(json.loads(hidden.read_text()).get(exercise, {}) if hidden.is_file() else {})}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in rules.items()):
        raise ValueError(f"held_back of {exercise} must map test names to gate names, got {rules!r}")
    return rules


# ----------------------------------------------------------------------------------------------------------
# Solution blocks
# ----------------------------------------------------------------------------------------------------------

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:\s+TODO:\s*(?P<todo>.*?))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
DEFAULT_TODO = "write this part"


class SolutionBlockError(ValueError):
    """A solution file whose markers do not pair up."""


@dataclass
class Block:
    """One solution block: its BEGIN line number (1-based), indentation, instruction and the lines inside."""

    line: int
    indent: str
    todo: str
    body: list[str] = field(default_factory=list)  # with their line ends

    def stub(self, exercise: str) -> list[str]:
        """The TODO line and the ``raise NotImplementedError("exN: ...")`` that replace the block in a stub."""
        message = f"{exercise}: {self.todo}".replace("\\", "\\\\").replace('"', '\\"')
        return [f"{self.indent}# TODO: {self.todo}\n", f'{self.indent}raise NotImplementedError("{message}")\n']


def segments(source: str) -> list[str | Block]:
    """The file in order: each line outside a block (a str, line end kept) and each Block; markers are in
    neither. Raises SolutionBlockError when a block is nested, unopened or never closed."""
    out: list[str | Block] = []
    block: Block | None = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if block is not None:
                raise SolutionBlockError(f"line {number}: BEGIN SOLUTION inside the block opened at line {block.line}")
            block = Block(number, begin.group("indent"), begin.group("todo") or DEFAULT_TODO)
        elif end:
            if block is None:
                raise SolutionBlockError(f"line {number}: END SOLUTION without a BEGIN SOLUTION")
            out.append(block)
            block = None
        elif block is not None:
            block.body.append(line)
        else:
            out.append(line)
    if block is not None:
        raise SolutionBlockError(f"line {block.line}: BEGIN SOLUTION is never closed")
    return out


def render(parts: list[str | Block], block_text) -> str:
    """Join ``segments`` back into a file, each block replaced by ``block_text(index, block)`` (a list of lines)."""
    out: list[str] = []
    index = 0
    for part in parts:
        if isinstance(part, Block):
            out += block_text(index, part)
            index += 1
        else:
            out.append(part)
    return "".join(out)
