"""Limits measure the student's own work: CPU time per test, a wall-clock backstop marked for re-grading, and
faults at import time that cost only their exercise, in local and in batch grading."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from grader.batch import batch_grade
from grader.batch.gradebook import INSTRUCTOR
from grader.grading import grade
from grader.judge.session import Limits

IGNORES_SIGNALS_AND_LOOPS = """
    import signal
    for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        pass
"""

RECURSES_AT_IMPORT = """
    import sys
    sys.setrecursionlimit(10**6)

    def deeper(n):
        return deeper(n + 1) + 1

    deeper(0)
"""

SLEEPS = """
    import time

    def twice(x):
        time.sleep(30)
        return 2 * x
"""


def exercise(doc: dict, ex: str) -> dict:
    return next(e for e in doc["lesson"]["exercises"] if e["id"] == ex)


def batch_rows(demo_tests: Path, tmp_path: Path, submission: Path, **limits) -> tuple[dict, Path]:
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir(exist_ok=True)
    if not (subs / "sub").exists():
        shutil.copytree(submission, subs / "sub")
    batch_grade(subs, out, tests_dir=demo_tests, jobs=1, progress=None, **limits)
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}["sub"], out


@pytest.mark.parametrize("source", [IGNORES_SIGNALS_AND_LOOPS, RECURSES_AT_IMPORT], ids=["loop-ignoring-signals",
                                                                                          "deep-recursion"])
@pytest.mark.slow
def test_import_time_fault_costs_only_its_exercise_locally(demo_tests, make_submission, source):
    sub = make_submission(ex1_demo=textwrap.dedent(source))
    doc = grade(sub, tests_dir=demo_tests, hidden=True, limits=Limits(timeout=1.0, wall=20.0))
    assert exercise(doc, "ex2")["score"] == 2 and exercise(doc, "ex1")["score"] == 0
    reasons = {t["extra_data"]["reason"] for t in doc["tests"] if t["extra_data"]["exercise"] == "ex1"}
    assert len(reasons) == 1 and "importing it" in reasons.pop()  # one fault, remembered for every test
    assert doc["lesson"]["restarts"] == 1  # it cost one worker and one limit, not one per test


@pytest.mark.parametrize("source", [IGNORES_SIGNALS_AND_LOOPS, RECURSES_AT_IMPORT], ids=["loop-ignoring-signals",
                                                                                          "deep-recursion"])
def test_import_time_fault_costs_only_its_exercise_in_batch(demo_tests, make_submission, tmp_path, source):
    sub = make_submission(ex1_demo=textwrap.dedent(source))
    row, out = batch_rows(demo_tests, tmp_path, sub, test_timeout=1.0)
    assert (row["status"], row["ex1"], row["ex2"], row["total"]) == ("graded", "0", "2", "2")
    assert json.loads((out / "sub" / "results.json").read_text())["lesson"]["restarts"] == 1


def test_a_cpu_loop_is_a_timeout_that_names_cpu_time(demo_tests, make_submission):
    sub = make_submission(ex2_other="def twice(x):\n    while True:\n        pass\n")
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=1.0, wall=30.0))
    test = next(t for t in doc["tests"] if t["name"].endswith("test_twice_doubles"))
    assert test["extra_data"]["kind"] == "timeout" and "1 s of CPU time" in test["extra_data"]["reason"]
    assert not doc["lesson"]["needs_regrade"]  # its own CPU use: a final result


def test_an_endless_loop_is_announced_before_its_limit(demo_tests, make_submission):
    """While a test runs long, the student hears which one and what stops it, rather than nothing until the report."""
    import io

    from grader.report import LongTestNotice

    sub = make_submission(ex2_other="def twice(x):\n    while True:\n        pass\n")
    said = io.StringIO()
    notice = LongTestNotice(said, 1.0, after=0.2)
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=1.0, wall=30.0, max_strikes=1), notice=notice)
    lines = said.getvalue().splitlines()
    assert len(lines) == 1, lines  # once, for the test that ran long (the next ones are cut short)
    assert lines[0].startswith("  still running ex2_other test_") and lines[0].endswith(
        "s: a test is stopped once your code has used 1 s of CPU time (an endless loop?)"), lines
    name = lines[0].split()[3]
    test = next(t for t in doc["tests"] if t["extra_data"]["nodeid"].endswith("::" + name))
    assert test["extra_data"]["kind"] == "timeout"


def test_a_long_test_notice_comes_once_and_only_while_it_runs():
    import io

    from grader.report import LongTestNotice

    said = io.StringIO()
    notice = LongTestNotice(said, 10.0, after=3.0)
    start = {"event": "start", "nodeid": "tests/test_ex2_topk_attention.py::test_rows[case]"}
    notice.events([{"event": "collected"}, start])
    begun = notice.since
    notice(begun + 2.9)
    assert said.getvalue() == ""
    notice(begun + 3.2)
    notice(begun + 9.0)
    assert said.getvalue() == ("  still running ex2_topk_attention test_rows[case] after 3 s: a test is stopped once"
                               " your code has used 10 s of CPU time (an endless loop?)\n")
    notice.events([start, {"event": "result", "nodeid": start["nodeid"]}])
    notice(begun + 100.0)
    assert said.getvalue().count("still running") == 1


@pytest.mark.slow
def test_sleeping_past_the_backstop_is_a_timeout_marked_for_regrade(demo_tests, make_submission, tmp_path):
    sub = make_submission(ex2_other=textwrap.dedent(SLEEPS))
    doc = grade(sub, tests_dir=demo_tests, limits=Limits(timeout=5.0, wall=1.5))
    test = next(t for t in doc["tests"] if t["name"].endswith("test_twice_doubles"))
    assert test["extra_data"]["kind"] == "timeout" and "wall-clock" in test["extra_data"]["reason"]
    assert doc["lesson"]["needs_regrade"] and exercise(doc, "ex1")["score"] == 3

    # in a batch: the row says it will be graded again, and a re-run does so rather than calling it unchanged
    limits = {"test_timeout": 5.0, "wall_timeout": 1.5}
    row, out = batch_rows(demo_tests, tmp_path, sub, **limits)
    assert row["status"] == "graded" and "re-grade" in row["reason"] and "timed out" in row["reason"]
    first = json.loads((out / "sub" / "results.json").read_text())["execution_time"]
    row, out = batch_rows(demo_tests, tmp_path, sub, **limits)
    assert json.loads((out / "sub" / "results.json").read_text())["execution_time"] != first


@pytest.mark.slow
def test_a_sleeping_submission_is_regraded_at_most_twice_then_kept_as_a_timeout(demo_tests, make_submission,
                                                                                 tmp_path):
    sub = make_submission(ex2_other=textwrap.dedent(SLEEPS))
    limits = {"test_timeout": 5.0, "wall_timeout": 0.5}  # a small backstop keeps each grading cheap
    times = []
    for run in range(4):
        row, out = batch_rows(demo_tests, tmp_path, sub, **limits)
        doc = json.loads((out / "sub" / "results.json").read_text())
        times.append(doc["execution_time"])
        lesson = json.loads((out / INSTRUCTOR / "sub.json").read_text())["lesson"]
        if run < 2:  # the first grading, then the first re-grade: marked for another
            assert lesson["needs_regrade"] and lesson["backstop_gradings"] == run + 1, lesson
            assert "re-grade" in row["reason"], row
    # the second re-grade (the third grading) is final: the test is a timeout that says why
    assert len(set(times[:3])) == 3 and times[3] == times[2], times  # the fourth run reused it
    assert not lesson["needs_regrade"] and lesson["backstop_final"] and lesson["backstop_gradings"] == 3
    assert "kept as a timeout, not graded again" in row["reason"] and "re-grade:" not in row["reason"], row
    test = next(t for t in doc["tests"] if t["name"].endswith("test_twice_doubles"))
    assert test["extra_data"]["kind"] == "timeout"
    assert "wall-clock" in test["extra_data"]["reason"] and "in 3 gradings of this submission in a row" in \
        test["extra_data"]["reason"]
    assert test["extra_data"]["reason"] in test["output"]


def test_every_default_limit_and_cap_comes_from_grader_limits():
    """grader/limits.py is the one place a limit is written: the session's Limits, the worker client's limits and
    output cap, the worker's message cap, the plugin's option defaults and the judge's reason cap all read it."""
    from types import SimpleNamespace

    from grader import limits
    from grader.judge import plugin, verdicts
    from grader.worker import client, worker

    session = Limits()
    assert (session.timeout, session.wall, session.memory_bytes, session.output_bytes) == (
        limits.CPU_SECONDS, limits.WALL_SECONDS, limits.MEMORY_BYTES, limits.OUTPUT_BYTES)
    wl = client.WorkerLimits()
    assert (wl.cpu_seconds, wl.wall_seconds, wl.memory_bytes, wl.output_bytes, wl.disk_bytes) == (
        limits.CPU_SECONDS, limits.WALL_SECONDS, limits.MEMORY_BYTES, limits.OUTPUT_BYTES, limits.DISK_BYTES)
    assert client.MAX_OUTPUT_CHARS == limits.OUTPUT_CHARS and worker.MAX_MESSAGE_CHARS == limits.MESSAGE_CHARS
    defaults = {}

    class Group:  # records what the plugin declares (pytest's own Parser is private to construct)
        def addoption(self, name, **kwargs):
            defaults[name] = kwargs.get("default")

    plugin.pytest_addoption(SimpleNamespace(getgroup=lambda *args: Group()))
    assert defaults["--grader-cpu-limit"] == limits.CPU_SECONDS and defaults["--grader-wall-limit"] == limits.WALL_SECONDS
    assert len(verdicts._one_line("x " * 1000)) == limits.REASON_CHARS
