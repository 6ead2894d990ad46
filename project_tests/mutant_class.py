"""A made-up class built from the project's own mutants, for looking at the batch's item analysis and similarity
report on the real lesson: each student hands in, per exercise, the reference, the untouched stub, or one of
the hand-written mutants of ``test_exN_variants.py`` (chosen with a fixed seed), and two students share one
alternative implementation of ex2 (``alternatives/``), which the similarity report should find.

``python project_tests/mutant_class.py SUBMISSIONS [--students N]`` writes the class (one folder per student).
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from grader.course import EXERCISES, SOLUTIONS  # noqa: E402
from variants import mutate  # noqa: E402

COPIED = "ex2_topk_attention_loop.py"  # the alternative two students share


def mutants(module: str) -> list[tuple[str, str]]:
    """(name, text) of every hand-written mutant of ``module`` that still applies to the reference."""
    tests = importlib.import_module(f"test_{module.split('_', 1)[0]}_variants")
    found = tests.MUTANTS.items() if isinstance(tests.MUTANTS, dict) else ((m[0], (m[1],)) for m in tests.MUTANTS)
    out = []
    for name, spec in found:
        try:
            out.append((name, mutate(module, *spec[0])))
        except AssertionError:  # the reference moved on: that mutant no longer applies
            continue
    return out


def build(folder: Path, modules: list[str], *, students: int = 16, seed: int = 7) -> dict[str, dict[str, str]]:
    """Write the class into ``folder``; returns student -> module -> what was handed in."""
    rng = random.Random(seed)
    pool = {m: mutants(m) for m in modules}
    plan: dict[str, dict[str, str]] = {}
    for i in range(1, students + 1):
        student = f"student{i:02d}"
        plan[student] = {}
        for module in modules:
            roll = rng.random()
            kind = "stub" if roll < 0.15 else "reference" if roll < 0.4 or not pool[module] else "mutant"
            if kind == "mutant":
                name, text = rng.choice(pool[module])
            else:
                name = kind
                text = ((EXERCISES if kind == "stub" else SOLUTIONS) / f"{module}.py").read_text()
            _write(folder / student / f"{module}.py", text)
            plan[student][module] = name
    copied = (HERE / "alternatives" / COPIED).read_text()
    for student in ("copier_a", "copier_b"):
        plan[student] = {}
        for module in modules:
            source = copied if module == "ex2_topk_attention" else (SOLUTIONS / f"{module}.py").read_text()
            _write(folder / student / f"{module}.py", source)
            plan[student][module] = "alternative (copied)" if module == "ex2_topk_attention" else "reference"
    return plan


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions")
    parser.add_argument("--students", type=int, default=16)
    parser.add_argument("--given", metavar="DIR", help="also copy the reference and stubs used to DIR/solutions, DIR/exercises")
    args = parser.parse_args()
    points = json.loads((HERE.parent / "tests" / "points.json").read_text())
    modules = [m["name"] for m in points.values()]
    plan = build(Path(args.submissions), modules, students=args.students)
    if args.given:  # the reference and stubs this class was made from: the similarity report's boilerplate
        for folder in (SOLUTIONS, EXERCISES):
            for module in modules:
                _write(Path(args.given) / folder.name / f"{module}.py", (folder / f"{module}.py").read_text())
    for student, handed in plan.items():
        print(student, "  ".join(f"{m.split('_', 1)[0]}={what}" for m, what in handed.items()))


if __name__ == "__main__":
    main()
