"""Grade variants of a reference solution (mutants and alternative implementations) in the project tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.grading import REPO_ROOT, grade
from grader.judge.session import Limits

SOLUTIONS = REPO_ROOT / "solutions"


def solution_text(module: str) -> str:
    return (SOLUTIONS / f"{module}.py").read_text()


def mutate(module: str, *replacements: tuple[str, str]) -> str:
    """The reference text with each (old, new) replaced once; fails loudly if ``old`` is not found exactly once."""
    text = solution_text(module)
    for old, new in replacements:
        count = text.count(old)
        assert count == 1, f"mutant pattern found {count} times in solutions/{module}.py: {old!r}"
        text = text.replace(old, new)
    return text


def grade_text(tmp_path: Path, module: str, text: str, *, timeout: float = 30.0) -> dict:
    """Grade one exercise whose file holds ``text`` (visible and hidden tests); returns the exercise summary
    plus the failed tests under ``"failed"``."""
    folder = tmp_path / "submission"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(text)
    exercise = module.split("_", 1)[0]
    doc = grade(folder, exercises=[exercise], hidden=True, limits=Limits(timeout=timeout))
    summary = dict(doc["lesson"]["exercises"][0])
    summary["failed"] = [t for t in doc["tests"] if t["status"] != "passed"]
    summary["messages"] = " | ".join(f"{t['extra_data']['hint']} {t['extra_data']['reason']}" for t in summary["failed"])
    return summary



def half_done(module: str, functions: list[str]) -> str:
    """The reference with every solution block inside the named functions (or methods) left as its stub: a
    submission that wrote the rest."""
    import ast

    from grader.course import Block, render, segments

    text = solution_text(module)
    spans = [(node.lineno, node.end_lineno) for node in ast.walk(ast.parse(text))
             if isinstance(node, ast.FunctionDef) and node.name in functions]
    exercise = module.split("_", 1)[0]

    def block_text(index: int, block: Block) -> list[str]:
        stubbed = any(start < block.line < end for start, end in spans)
        return block.stub(exercise) if stubbed else block.body

    return render(segments(text), block_text)
