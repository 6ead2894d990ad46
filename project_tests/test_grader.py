"""The grader on small demo submissions: scores, statuses and messages for every kind of failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from grader import report, results
from grader.grading import grade, needs_flop_counter, normalise_exercise
from grader.judge.session import GradingError, Limits

REPO = Path(__file__).resolve().parent.parent
FAST = Limits(timeout=2.0)


def by_name(doc: dict) -> dict[str, dict]:
    return {t["extra_data"]["nodeid"].split("::")[-1]: t for t in doc["tests"]}


def exercise(doc: dict, ex: str) -> dict:
    return next(e for e in doc["lesson"]["exercises"] if e["id"] == ex)


def test_good_submission_scores_everything(demo_tests, make_submission):
    doc = grade(make_submission(), tests_dir=demo_tests, hidden=True, limits=FAST)
    assert (doc["score"], doc["max_score"]) == (6, 6)
    assert all(t["status"] == "passed" for t in doc["tests"])


def test_hidden_tests_not_run_by_default_but_announced(demo_tests, make_submission):
    doc = grade(make_submission(), tests_dir=demo_tests, limits=FAST)
    assert doc["max_score"] == 5 and doc["lesson"]["hidden_points_not_run"] == 1
    text = report.render_plain(doc)
    assert "1 not run here" in text and "hidden tests" in text.lower()


def test_parametrized_points_are_split_over_cases(demo_tests, make_submission):
    sub = make_submission(ex1_demo="def add(a, b):\n    return a + b\ndef work(n):\n    return 1\n")
    doc = grade(sub, tests_dir=demo_tests, limits=FAST)
    cases = [t for name, t in by_name(doc).items() if name.startswith("test_work_returns_n")]
    assert [t["max_score"] for t in cases] == [0.5] * 4
    assert exercise(doc, "ex1")["visible_score"] == 1.5  # add (1) + the n == 1 case (0.5)


def test_wrong_answer_reports_hint_and_reason(demo_tests, make_submission):
    doc = grade(make_submission(ex1_demo="def add(a, b):\n    return a - b\ndef work(n):\n    return n\n"),
                tests_dir=demo_tests, limits=FAST)
    test = by_name(doc)["test_add_sums"]
    assert test["status"] == "failed" and test["score"] == 0
    assert test["extra_data"]["hint"] == "add(a, b) returns a + b."
    assert test["extra_data"]["reason"] == "expected 3, got -1"
    assert "expected 3, got -1" in report.render_plain(doc)


def test_syntax_error_costs_only_that_exercise(demo_tests, make_submission):
    doc = grade(make_submission(ex1_demo="def add(a, b)\n    return a + b\n"), tests_dir=demo_tests, limits=FAST)
    assert exercise(doc, "ex1")["score"] == 0
    assert exercise(doc, "ex2")["score"] == 2
    reason = by_name(doc)["test_add_sums"]["extra_data"]["reason"]
    assert "ex1_demo.py line 1: SyntaxError" in reason


def test_import_error_names_file_and_line(demo_tests, make_submission):
    doc = grade(make_submission(ex1_demo="x = 1\nimport not_a_module_anywhere\n"), tests_dir=demo_tests, limits=FAST)
    reason = by_name(doc)["test_add_sums"]["extra_data"]["reason"]
    assert "ex1_demo.py line 2" in reason and "ModuleNotFoundError" in reason


def test_missing_file_is_reported(demo_tests, make_submission):
    doc = grade(make_submission(ex2_other=None), tests_dir=demo_tests, limits=FAST)
    assert "ex2_other.py not found" in by_name(doc)["test_twice_doubles"]["extra_data"]["reason"]
    assert exercise(doc, "ex1")["score"] == 3


def test_not_implemented_is_reported_as_such(demo_tests, make_submission):
    sub = make_submission(ex2_other='def twice(x):\n    raise NotImplementedError("ex2: double it")\n')
    doc = grade(sub, tests_dir=demo_tests, limits=FAST)
    test = by_name(doc)["test_twice_doubles"]
    assert test["extra_data"]["kind"] == "not_implemented"
    assert "not implemented yet: ex2: double it" in test["extra_data"]["reason"]


@pytest.mark.slow
def test_infinite_loop_costs_that_test_only(demo_tests, make_submission):
    sub = make_submission(ex1_demo="def add(a, b):\n    return a + b\ndef work(n):\n    while n == 2:\n        pass\n    return n\n")
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=1.0))
    tests = by_name(doc)
    assert tests["test_work_returns_n[2]"]["extra_data"]["kind"] == "timeout"
    assert "timed out" in tests["test_work_returns_n[2]"]["extra_data"]["reason"]
    assert tests["test_work_returns_n[2]"]["extra_data"]["cpu"] >= 1.0  # the stopped worker's CPU time counts
    assert doc["score"] == 4.5


def test_sys_exit_is_reported_and_grading_goes_on(demo_tests, make_submission):
    sub = make_submission(ex1_demo="import sys\ndef add(a, b):\n    sys.exit(3)\ndef work(n):\n    return n\n")
    doc = grade(sub, tests_dir=demo_tests, limits=FAST)
    test = by_name(doc)["test_add_sums"]
    assert test["extra_data"]["kind"] == "exit" and "sys.exit(3)" in test["extra_data"]["reason"]
    assert doc["score"] == 4


def test_os_exit_costs_one_test_and_the_rest_are_graded(demo_tests, make_submission):
    sub = make_submission(ex1_demo="import os\ndef add(a, b):\n    return a + b\ndef work(n):\n    if n == 3:\n        os._exit(7)\n    return n\n")
    doc = grade(sub, tests_dir=demo_tests, limits=FAST)
    test = by_name(doc)["test_work_returns_n[3]"]
    assert test["extra_data"]["kind"] == "crash" and "exit code 7" in test["extra_data"]["reason"]
    assert doc["score"] == 4.5 and doc["lesson"]["restarts"] == 1


def test_segfault_is_contained(demo_tests, make_submission):
    sub = make_submission(ex2_other="import ctypes\ndef twice(x):\n    return ctypes.string_at(0)\n")
    doc = grade(sub, tests_dir=demo_tests, limits=FAST)
    assert "SIGSEGV" in by_name(doc)["test_twice_doubles"]["extra_data"]["reason"]
    assert exercise(doc, "ex1")["score"] == 3


def test_print_flood_is_truncated(demo_tests, make_submission):
    sub = make_submission(ex1_demo="def add(a, b):\n    for _ in range(200000):\n        print('spam' * 10)\n    return 0\ndef work(n):\n    return n\n")
    doc = grade(sub, tests_dir=demo_tests, limits=FAST)
    captured = by_name(doc)["test_add_sums"]["extra_data"]["captured_output"]
    assert "output truncated" in captured and len(captured) < 3000


def test_memory_bomb_is_contained(demo_tests, make_submission):
    sub = make_submission(ex2_other="def twice(x):\n    return len(bytearray(8 * 1024**3))\n")
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=5.0, memory_bytes=1024**3))
    test = by_name(doc)["test_twice_doubles"]
    assert test["status"] == "failed" and "memory" in test["extra_data"]["reason"]
    assert exercise(doc, "ex1")["score"] == 3


def test_unmarked_graded_test_is_an_error(demo_tests, make_submission):
    (demo_tests / "test_ex2_other.py").write_text("def test_unmarked(student):\n    pass\n")
    with pytest.raises(GradingError, match="without @pytest.mark.points"):
        grade(make_submission(), tests_dir=demo_tests, limits=FAST)


COUNT_WITHOUT_DYNAMO = """
import sys
from grader.judge.session import preload
preload()
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
with FlopCounterMode(display=False) as real:
    torch.ones(4, 3) @ torch.ones(3, 5)
with torch.device("meta"), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as meta:
    q = torch.ones(1, 2, 8, 4)
    torch.nn.functional.scaled_dot_product_attention(q, q, q)
print(real.get_total_flops(), meta.get_total_flops(), "torch._dynamo" in sys.modules)
"""


@pytest.mark.slow
def test_counting_flops_after_preload_does_not_import_the_compiler():
    """The first FlopCounterMode count used to import torch._dynamo (~0.7 s of CPU, in the judge and in the
    worker): preload marks torch's compiler-skipping wrappers as already skipped. Same counts: 2·m·k·n for a
    matmul, 4·L²·d for attention on the meta device (batch 1, 2 heads, L = 8, d = 4)."""
    out = subprocess.run([sys.executable, "-c", COUNT_WITHOUT_DYNAMO], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(2 * 4 * 3 * 5), str(2 * 4 * 8 * 8 * 4), "False"]


def test_flop_counting_is_warmed_before_forking_only_for_a_written_flop_exercise(tmp_path):
    """A FLOP count on the meta device imports torch's symbolic shapes (~0.45 s): imported once before forking
    only when both the judge and the worker will count FLOPs, that is when the exercise has no
    NotImplementedError left (a stub fails first)."""
    points = json.loads((REPO / "tests" / "points.json").read_text())
    flagged = [ex for ex, meta in points.items() if meta.get("counts_flops")]
    assert flagged == ["ex4"]  # ex3's meta-device models do not need them (the lesson's layers skip their init)
    name = points["ex4"]["name"]
    assert needs_flop_counter(points, list(points), REPO / "solutions")
    assert not needs_flop_counter(points, list(points), REPO / "exercises")
    assert not needs_flop_counter(points, ["ex1", "ex2", "ex3"], REPO / "solutions")
    assert not needs_flop_counter(points, list(points), tmp_path)  # nothing submitted
    half = (REPO / "solutions" / f"{name}.py").read_text() + "\ndef later():\n    raise NotImplementedError\n"
    (tmp_path / f"{name}.py").write_text(half)
    assert not needs_flop_counter(points, ["ex4"], tmp_path)


def test_exercise_names_are_normalised():
    assert normalise_exercise("2") == normalise_exercise("ex2") == normalise_exercise("ex2_topk_attention.py") == "ex2"
    with pytest.raises(GradingError, match="unknown exercise"):
        normalise_exercise("ex9")


@pytest.mark.slow
def test_results_validate_against_gradescope_schema(demo_tests, make_submission):
    import jsonschema  # here, not at the top: importing it costs 1.4 s at every collection

    schema = json.loads(results.SCHEMA_PATH.read_text())
    doc = grade(make_submission(ex1_demo="def add(a, b):\n    return 0\n"), tests_dir=demo_tests, hidden=True, limits=FAST)
    jsonschema.validate(doc, schema)
    hidden = [t for t in doc["tests"] if t["extra_data"]["hidden"]]
    assert hidden and all(t["visibility"] == "after_published" for t in hidden)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "visibility": "sometimes"}, schema)


def test_junit_xml_is_rendered_from_results(demo_tests, make_submission):
    doc = grade(make_submission(ex2_other="def twice(x):\n    return x\n"), tests_dir=demo_tests, limits=FAST)
    root = ET.fromstring(results.to_junit_xml(doc))
    failures = root.findall(".//failure")
    assert len(root.findall(".//testcase")) == len(doc["tests"]) and len(failures) == 1
    assert failures[0].get("message") == "expected 8, got 4"


@pytest.mark.slow
def test_cli_grade_writes_json_and_prints_plain_table(tmp_path):
    out = tmp_path / "results.json"
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "grade", "--exercise", "ex3", "--json", str(out), "--junit-xml", str(junit)],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert [e["id"] for e in doc["lesson"]["exercises"]] == ["ex3"]
    assert "Exercise" in proc.stdout and "not run here" in proc.stdout and "\x1b[" not in proc.stdout
    ET.parse(junit)


def test_cli_reports_usage_problems_with_exit_2():
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", "--exercise", "ex9"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown exercise 'ex9'" in proc.stderr


@pytest.mark.slow
def test_endless_loop_at_import_costs_one_timeout_not_one_per_test(demo_tests, make_submission):
    sub = make_submission(ex1_demo="while True:\n    pass\n")
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=1.0))
    ex1 = [t for t in doc["tests"] if t["extra_data"]["exercise"] == "ex1"]
    assert all("did not finish within the time limit" in t["extra_data"]["reason"] for t in ex1)
    assert doc["lesson"]["restarts"] == 1  # one timeout, then the remembered error; not one per test
    assert exercise(doc, "ex2")["score"] == 2


def test_module_that_crashes_at_import_is_imported_once(demo_tests, make_submission):
    """An import that kills the worker is remembered: one crash, and every test of that exercise says why."""
    sub = make_submission(ex1_demo="import os\nos._exit(9)\n")
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=2.0, max_strikes=2))
    reasons = [t["extra_data"]["reason"] for t in doc["tests"] if t["extra_data"]["exercise"] == "ex1"]
    assert len(reasons) == 5 and all("importing it crashed" in r and "exit code 9" in r for r in reasons)
    assert doc["lesson"]["restarts"] == 1
    assert exercise(doc, "ex2")["score"] == 2


@pytest.mark.slow
def test_two_timeouts_cut_the_rest_of_that_exercise(demo_tests, make_submission):
    sub = make_submission(ex1_demo="def add(a, b):\n    return a + b\ndef work(n):\n    while n >= 2:\n        pass\n    return n\n")
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=1.0, max_strikes=2))
    kinds = {name: t["extra_data"]["kind"] for name, t in by_name(doc).items()}
    assert kinds["test_work_returns_n[2]"] == kinds["test_work_returns_n[3]"] == "timeout"
    assert kinds["test_work_returns_n[4]"] == "cut"
    assert "endless loop" in by_name(doc)["test_work_returns_n[4]"]["extra_data"]["reason"]
    assert exercise(doc, "ex2")["score"] == 2 and exercise(doc, "ex1")["score"] == 1.5


def test_report_on_a_terminal_is_a_coloured_table_with_the_hints(demo_tests, make_submission):
    import io

    from rich.console import Console

    doc = grade(make_submission(ex2_other="def twice(x):\n    return x\n"), tests_dir=demo_tests, limits=FAST)
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=120, record=True)
    report.render_rich(doc, console)
    screen = console.export_text()
    assert "\x1b[" in console.file.getvalue()  # colour codes went to the terminal
    assert "Exercise" in screen and "Demo two" in screen and "0 / 2" in screen
    assert "twice(x) returns 2 * x." in screen and "expected 8, got 4" in screen
    assert "1 not run here" in screen and "not run locally" in screen


def test_no_color_or_a_pipe_gives_plain_text(monkeypatch, demo_tests, make_submission):
    import io

    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    doc = grade(make_submission(), tests_dir=demo_tests, limits=FAST)
    assert report.use_rich(FakeTTY()) and not report.use_rich(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    out = FakeTTY()
    report.print_report(doc, stream=out)
    assert not report.use_rich(out) and "\x1b[" not in out.getvalue() and "5 / 5" in out.getvalue()


@pytest.mark.slow
def test_final_grading_runs_every_test_whatever_timed_out_before(demo_tests, make_submission):
    """Without max_strikes (batch, Gradescope, nbgrader) a loop costs only the tests that reach it."""
    sub = make_submission(ex1_demo="def add(a, b):\n    return a + b\ndef work(n):\n    while n in (2, 3):\n        pass\n    return n\n")
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=1.0))
    kinds = {name: t["extra_data"]["kind"] for name, t in by_name(doc).items()}
    assert kinds["test_work_returns_n[2]"] == kinds["test_work_returns_n[3]"] == "timeout"
    assert kinds["test_work_returns_n[4]"] == "passed"


FORGER = """
import glob, json, os
def twice(x):
    # look for the grader's event stream among our open descriptors and claim every test passed
    for fd in glob.glob('/proc/self/fd/*'):
        try:
            path = os.readlink(fd)
        except OSError:
            continue
        if 'events-' in path:
            os.write(int(fd.rsplit('/', 1)[1]), (json.dumps({'event': 'result', 'nodeid': 'x', 'outcome': 'passed',
                'kind': 'passed', 'reason': '', 'longrepr': '', 'output': '', 'duration': 0}) + '\\n').encode())
    os._exit(0)
"""


def test_forged_events_cannot_reach_the_judge(demo_tests, make_submission):
    """The worker holds no descriptor of the judge's: forging its records is impossible, the code just fails."""
    doc = grade(make_submission(ex1_demo="def add(a, b):\n    return 0\n", ex2_other=FORGER),
                tests_dir=demo_tests, hidden=True, limits=FAST)
    assert doc["lesson"]["status"] == "graded" and doc["score"] == 0
    assert by_name(doc)["test_twice_doubles"]["extra_data"]["kind"] == "crash"


def test_editing_the_graded_tests_from_student_code_is_refused(demo_tests, make_submission):
    before = {p: p.read_bytes() for p in demo_tests.rglob("*.py")}
    editor = (
        "import pathlib\n"
        f"p = pathlib.Path({str(demo_tests / 'test_ex2_other.py')!r})\n"
        "p.write_text(p.read_text().replace('assert ', 'assert True or '))\n"
        "def twice(x):\n    return 0\n"
    )
    doc = grade(make_submission(ex2_other=editor), tests_dir=demo_tests, limits=FAST)
    assert {p: p.read_bytes() for p in demo_tests.rglob("*.py")} == before
    assert exercise(doc, "ex2")["score"] == 0 and exercise(doc, "ex1")["score"] == 3
    assert "PermissionError" in by_name(doc)["test_twice_doubles"]["extra_data"]["reason"]


def test_points_split_per_test_function_even_with_equal_names_in_two_classes(demo_tests, make_submission):
    (demo_tests / "test_ex2_other.py").write_text(
        "import pytest\n\nclass TestA:\n    @pytest.mark.points(1)\n    def test_it(self, student):\n        assert student('ex2_other').twice(1) == 2\n\n"
        "class TestB:\n    @pytest.mark.points(1)\n    def test_it(self, student):\n        assert student('ex2_other').twice(2) == 4\n"
    )
    doc = grade(make_submission(), tests_dir=demo_tests, limits=FAST)
    assert exercise(doc, "ex2")["visible_max"] == 2 and exercise(doc, "ex2")["visible_score"] == 2


def test_a_folder_named_hidden_above_the_suite_does_not_hide_tests(tmp_path, demo_tests, make_submission):
    import shutil

    moved = tmp_path / "hidden" / "tests"
    shutil.copytree(demo_tests, moved)
    doc = grade(make_submission(), tests_dir=moved, limits=FAST)
    assert all(t["visibility"] == "visible" for t in doc["tests"]) and doc["max_score"] == 5


def test_a_relative_target_is_relative_to_the_caller(demo_tests, make_submission, monkeypatch):
    sub = make_submission()
    monkeypatch.chdir(sub.parent)
    doc = grade(sub.name, tests_dir=demo_tests, limits=FAST)
    assert doc["score"] == 5 and doc["lesson"]["target"] == sub.name


def test_verbose_report_lists_the_visible_tests_that_passed_and_their_points(demo_tests, make_submission):
    """With -v a student sees which tests earned their points; hidden ones are never named; without -v, no list."""
    sub = make_submission(ex1_demo="def add(a, b):\n    return a + b\ndef work(n):\n    return 1\n")
    doc = grade(sub, tests_dir=demo_tests, hidden=True, limits=FAST)
    text = report.render_plain(doc, verbose=True)
    passed = text.split("Passed:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "  ok test_add_sums  (+1)" in passed and "  ok test_work_returns_n[1]  (+0.5)" in passed, passed
    assert not any("work_returns_n[2]" in line for line in passed)  # failed: under "What to fix"
    hidden = [t["extra_data"]["nodeid"].split("::")[-1] for t in doc["tests"]
              if t["extra_data"]["hidden"] and t["status"] == "passed"]
    assert hidden and not any(name in line for name in hidden for line in passed)
    assert "Passed:" not in report.render_plain(doc)
