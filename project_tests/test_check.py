"""The promises of the real lesson: one source, reference 100, stubs 0, a half-done submission in between,
and the same score on every run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader.instructor import stubs
from grader.instructor.check import check_hints, check_reference, check_stubs
from grader.grading import REPO_ROOT, grade
from helpers import heavy  # noqa: E402

SOLUTIONS = REPO_ROOT / "solutions"


def test_exercises_are_what_the_generator_makes():
    assert stubs.solution_files(), "no solutions/ex*_*.py found"
    assert stubs.stale_stubs() == [], "exercises/ differs from solutions/: run `make stubs`"


def test_every_solution_has_blocks_and_every_stub_raises():
    for name, text in stubs.expected_stubs().items():
        source = (SOLUTIONS / name).read_text()
        assert "# BEGIN SOLUTION" in source, f"{name} has no solution block"
        assert f'raise NotImplementedError("{name.split("_")[0]}: ' in text
        assert "# BEGIN SOLUTION" not in text and "# END SOLUTION" not in text


def test_stub_generator_rejects_unbalanced_markers():
    with pytest.raises(stubs.StubError, match="never closed"):
        stubs.make_stub("def f():\n    # BEGIN SOLUTION\n    return 1\n", "ex9")
    with pytest.raises(stubs.StubError, match="without a BEGIN"):
        stubs.make_stub("def f():\n    return 1\n    # END SOLUTION\n", "ex9")


def test_stub_keeps_everything_outside_the_block():
    source = 'def f(x):\n    """Doc."""\n    # 1. double it\n    # BEGIN SOLUTION TODO: return twice x\n    return 2 * x\n    # END SOLUTION\n'
    assert stubs.make_stub(source, "ex9") == (
        'def f(x):\n    """Doc."""\n    # 1. double it\n    # TODO: return twice x\n'
        '    raise NotImplementedError("ex9: return twice x")\n'
    )


@pytest.mark.slow
def test_every_hint_is_a_whole_sentence():
    ok, problems = check_hints()
    assert ok, problems


def test_a_hint_cut_mid_sentence_fails_the_check(tmp_path: Path):
    tests = tmp_path / "tests"
    (tests / "hidden").mkdir(parents=True)
    (tests / "test_ex9_whole.py").write_text('def test_a():\n    """Rows sum to 1 (a softmax per query)."""\n')
    (tests / "hidden" / "test_ex9_cut_hidden.py").write_text(
        'def helper():\n    pass\n\n\ndef test_b():\n    """Bad arguments raise TypeError for a bare str;\n'
        '    ValueError for a duplicate."""\n\n\ndef test_c():\n    pass\n')
    ok, problems = check_hints(tests)
    assert not ok
    assert problems == [
        "tests/hidden/test_ex9_cut_hidden.py line 5 (test_b): the hint is cut mid-sentence: 'Bad arguments raise "
        "TypeError for a bare str;' (make its first line a whole sentence; details go after a blank line)",
        "tests/hidden/test_ex9_cut_hidden.py line 10 (test_c): no docstring, so no hint",
    ]


@pytest.mark.slow
def test_reference_scores_full_marks_including_hidden():
    ok, problems = check_reference()
    assert ok, "\n".join(problems)


def test_untouched_stubs_score_zero_and_fail_only_as_not_implemented():
    ok, problems = check_stubs()
    assert ok, "\n".join(problems)


def test_half_done_submission_gets_exactly_the_finished_exercises(tmp_path: Path):
    for name, text in stubs.expected_stubs().items():
        (tmp_path / name).write_text(text)
    for path in stubs.solution_files()[:2]:
        shutil.copy(path, tmp_path / path.name)
    doc = grade(tmp_path, hidden=True)
    scores = {e["id"]: e["score"] for e in doc["lesson"]["exercises"]}
    assert scores == {"ex1": 25, "ex2": 25, "ex3": 0, "ex4": 0}
    assert doc["score"] == 50 and doc["max_score"] == 100


@pytest.mark.slow
def test_grading_the_reference_again_and_again_gives_identical_results():
    """4 gradings of the reference (10 with GRADER_HEAVY_TESTS=1) give the same verdicts and 100."""
    runs = [grade("solutions", hidden=True) for _ in range(10 if heavy() else 4)]
    fingerprints = {tuple((t["name"], t["score"]) for t in doc["tests"]) for doc in runs}
    assert len(fingerprints) == 1 and runs[0]["score"] == 100
