"""Generated mutants (grader/instructor/mutants.py, grader/instructor/mutation.py): made only inside the solution blocks, graded with the batch grader,
and every survivor triaged in project_tests/mutation_triage.toml. The full run is `make mutation`; these tests
check the driver on the real solutions without grading them all."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from grader.instructor import mutants, mutation
from grader.results import load_points


@functools.lru_cache(maxsize=None)
def mutants_of(module: str) -> tuple:
    return tuple(mutants.generate(module))


MODULES = [meta["name"] for meta in load_points().values()]


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_mutants_change_only_solution_blocks(module):
    text = (mutants.SOLUTIONS / f"{module}.py").read_text(encoding="utf-8")
    inside = mutants.solution_block_lines(text)
    found = mutants_of(module)
    assert len(found) > 50, f"only {len(found)} mutants of {module}"
    for m in found:
        old, new = text.splitlines(), m.source.splitlines()
        changed = [i + 1 for i, (a, b) in enumerate(zip(old, new)) if a != b]
        first = changed[0] if changed else len(old) + 1
        assert first in inside, f"{m.id} changes line {first}, outside every solution block: {m.change}"
    ids = [m.id for m in found]
    assert len(ids) == len(set(ids)), "two mutants share an id"


@pytest.mark.slow
def test_operator_families_are_all_used():
    """Operators, comparisons, constants, off-by-ones, removed statements, swapped arguments, dropped checks."""
    ops = {m.operator for module in MODULES for m in mutants_of(module)}
    for family in ("mutmut swap_op", "mutmut number", "integer - 1", "remove statement", "swap arguments",
                   "mutmut arg_removal", "mutmut name", "mutmut string", "slice off by one"):
        assert family in ops, f"no mutant made by {family!r}"
    dropped_checks = [m for module in MODULES for m in mutants_of(module)
                      if m.operator == "remove statement" and m.before.startswith("if ") and "raise" in m.before]
    assert len(dropped_checks) >= 10


@pytest.mark.slow
def test_mutant_ids_survive_an_unrelated_edit():
    """An id names the function and the changed line, so editing another part of the file keeps it."""
    text = (mutants.SOLUTIONS / "ex4_scaling.py").read_text(encoding="utf-8")
    edited = text.replace('"""Exercise 4:', '"""Exercise 4 (edited docstring, two lines longer):\n\n', 1)
    assert edited != text
    before = {m.id for m in mutants.generate("ex4_scaling", text)}
    after = {m.id for m in mutants.generate("ex4_scaling", edited)}
    assert before == after


@pytest.mark.slow
def test_triage_file_names_only_generated_mutants():
    triage = mutation.load_triage()
    ids = {m.id for module in MODULES for m in mutants_of(module)}
    stale = (set(triage.equivalent) | set(triage.unobservable) | set(triage.killed)) - ids
    assert not stale, f"triage entries that match no mutant: {sorted(stale)}"
    assert all(entry.get("why", "").strip() for entry in [*triage.equivalent.values(), *triage.unobservable.values()])


def _fake(exercise: str, key: str) -> mutants.Mutant:
    return mutants.Mutant(f"{exercise}-{key}", exercise, "ex4_scaling", "f", "op", 1, "a", "b", "")


def test_judge_flags_untriaged_survivors_and_wrong_triage():
    survivor, equivalent, wrongly_equivalent, fixed, regressed = (_fake("ex4", k) for k in "abcde")
    triage = mutation.Triage(
        equivalent={equivalent.id: {"why": "same"}, wrongly_equivalent.id: {"why": "same"}},
        killed={fixed.id: {"test": "test_x"}, regressed.id: {"test": "test_y"}},
    )
    scores = {survivor.id: 25.0, equivalent.id: 25.0, wrongly_equivalent.id: 20.0, fixed.id: 24.0,
              regressed.id: 25.0}
    verdicts = mutation.judge([survivor, equivalent, wrongly_equivalent, fixed, regressed], scores, triage)
    status = {v.mutant.id: v.status for v in verdicts}
    assert status == {survivor.id: "survived", equivalent.id: "equivalent",
                      wrongly_equivalent.id: "killed, but triaged equivalent", fixed.id: "killed",
                      regressed.id: "survived, but triaged killed"}
    found = mutation.problems(verdicts, triage, complete=False)
    assert any("untriaged survivor ex4-a" in p for p in found)
    assert any("ex4-c is triaged as equivalent but a test kills it" in p for p in found)
    assert any("ex4-e is triaged as killed by test_y but survives" in p for p in found)
    assert any("below 99%" in p for p in found)  # 2 killed of 4 non-equivalent
    summary = mutation.summarise(verdicts)["ex4"]
    assert (summary.generated, summary.killed, summary.equivalent, summary.survived) == (5, 2, 1, 2)


@pytest.mark.slow
def test_driver_grades_a_small_subset(tmp_path: Path):
    """Every mutant of crossover_length (a one-line function) is graded by the batch grader and killed."""
    verdicts, found = mutation.run(["ex4"], select=lambda m: m.function == "crossover_length", out=tmp_path,
                                   progress=None)
    assert len(verdicts) >= 5
    assert {v.status for v in verdicts} == {"killed"}, [(v.mutant.change, v.score) for v in verdicts]
    assert found == []
    assert (tmp_path / "graded" / "grades.csv").is_file()
    table = mutation.format_summary(mutation.summarise(verdicts))
    assert "ex4" in table and "100.0%" in table
