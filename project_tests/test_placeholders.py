"""Points mean the code works (issue 23): code that computes nothing scores 0, and the held-back rule.

The placeholder corpus (grader/instructor/placeholders.py: zeros, empty results, constants, the input, the
previous call's input, always ValueError/TypeError, values equal to everything, argument checks alone; plus the
hand-written exploits of project_tests/placeholders/) is graded in one judge session, hidden tests included;
every placeholder must score 0 in every test of its exercise and leave its mark (it ran). `python -m grader
check` runs the same grading."""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path

import pytest

from grader.course import HIDDEN_HELD_BACK, held_back
from grader.grading import grade
from grader.instructor import placeholders
from grader.judge.session import Limits
from grader.results import load_points

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"


def _signatures(text: str) -> dict[str, list[str]]:
    tree = ast.parse(text)
    return {node.name: [a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]]
            for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("kind", placeholders.KINDS)
def test_placeholders_keep_every_signature_and_compile(kind):
    for module in placeholders.modules().values():
        reference = _signatures((placeholders.SOLUTIONS / f"{module}.py").read_text(encoding="utf-8"))
        text = placeholders.placeholder_source(module, kind)
        compile(text, f"{module}.py", "exec")
        assert "BEGIN SOLUTION" not in text, f"{module} ({kind}) still holds a solution block"
        got = _signatures(text)
        for name, args in got.items():
            if name in reference and not name.startswith("_"):
                assert args == reference[name], (
                    f"{module}.{name} ({kind}): arguments {args}, expected {reference[name]}"
                )
        assert text.count("return _placeholder(") >= 2, f"{module} ({kind}): no function became a placeholder"


def test_corpus_holds_the_exploits_of_the_issue():
    names = set(placeholders.corpus())
    exploits = {"zero_attention", "empty_tensor", "empty_array", "decode_last_text", "constant_why", "always_equal"}
    assert {f"exploit-{name}" for name in exploits} <= names
    assert {f"placeholder-{kind}" for kind in placeholders.KINDS} <= names


@pytest.mark.slow
def test_every_placeholder_scores_zero_and_ran():
    """One judge session grades the whole corpus (a judge forked per submission): 0 points everywhere, and the
    mark of each placeholder in the output of its exercise's tests."""
    docs = placeholders.grade_corpus()
    problems = [p for name, files in placeholders.corpus().items()
                for p in placeholders._problems_of(name, files, docs[name])]
    assert not problems, "\n".join(problems)
    for name, doc in docs.items():
        assert doc["tests"] and doc["score"] == 0, f"{name} scored {doc['score']}"


def _test_names(path: Path) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), re.M)}


@pytest.mark.parametrize("ex", list(load_points()))
def test_held_back_rules_name_real_tests(ex):
    """Each held-back test and its gate exist; a gate is in the test's own file or in the visible file; the
    released manifest names visible tests only (a hidden test's name never reaches students)."""
    name = load_points()[ex]["name"]
    visible = _test_names(TESTS / f"test_{name}.py")
    hidden = _test_names(TESTS / "hidden" / f"test_{name}_hidden.py")
    released = load_points()[ex].get("held_back", {})
    hidden_rules = json.loads((TESTS / "hidden" / HIDDEN_HELD_BACK).read_text()).get(ex, {})
    assert set(released) <= visible and set(hidden_rules) <= hidden
    rules = held_back(ex)
    for test, gate in rules.items():
        gate_function = gate.split("[", 1)[0]
        own_file = visible if test in visible else hidden
        assert gate_function in own_file | visible, f"{ex}: the gate {gate} of {test} is not a test of its file"
        # no chains: a gate is held back by nothing, or (one case gating its siblings) by itself
        assert rules.get(gate_function, gate) == gate, f"{ex}: the gate {gate} of {test} is itself held back"


HELD_SUITE = {
    "points.json": json.dumps({"ex1": {"name": "ex1_calc", "title": "Calc", "visible": 2, "hidden": 0,
                                       "held_back": {"test_div_rejects_zero": "test_div_worked_example"}}}),
    "test_ex1_calc.py": '''
        import pytest

        @pytest.mark.points(1)
        def test_div_rejects_zero(student):
            """div(a, 0) raises ZeroDivisionError."""
            with pytest.raises(ZeroDivisionError):
                student("ex1_calc").div(1, 0)

        @pytest.mark.points(1)
        def test_div_worked_example(student):
            """div(6, 3) is 2.0."""
            got = student("ex1_calc").div(6, 3)
            assert got == 2.0, f"expected 2.0, got {got}"
    ''',
}


@pytest.mark.slow
def test_judge_holds_a_test_back_until_its_gate_passes(tmp_path):
    """The held test comes first in the file and passes alone: it counts only when the gate passes too, and its
    record says which gate (the gate runs first, whatever the file's order)."""
    tests = tmp_path / "tests"
    tests.mkdir()
    for file_name, text in HELD_SUITE.items():
        (tests / file_name).write_text(textwrap.dedent(text))
    codes = {"checks-only": "def div(a, b):\n    if b == 0:\n        raise ZeroDivisionError\n    return 0.0\n",
             "works": "def div(a, b):\n    return a / b\n"}
    docs = {}
    for name, code in codes.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "ex1_calc.py").write_text(code)
        docs[name] = grade(tmp_path / name, tests_dir=tests, limits=Limits(timeout=10.0))
    held = {t["name"].split(": ")[-1]: t for t in docs["checks-only"]["tests"]}["test_div_rejects_zero"]
    assert held["status"] == "failed" and held["extra_data"]["kind"] == "held_back"
    assert "counts once test_div_worked_example passes" in held["output"]
    assert held["output"].startswith("div(a, 0) raises ZeroDivisionError."), "the hint comes first, as always"
    assert docs["checks-only"]["score"] == 0
    assert docs["works"]["score"] == 2
