"""Outcomes: one record per test, with a one-line reason a student can act on.

The plugin's report hook asks ``reason_from_excinfo`` what a failure means; ``_fold`` turns a test's setup, call
and teardown reports into its one ``TestRecord``; the serving loop writes ``not_run_record`` for the tests a
submission's time budget left out."""

from __future__ import annotations

import re

import pytest

from grader.limits import OUTPUT_CHARS, REASON_CHARS
from grader.records import Kind, TestRecord


class CutShort(Exception):
    """Raised instead of running a test of an exercise that already used up its strikes."""


def cut_short_reason(exercise: str, limit: int) -> str:
    return (
        f"not run: {limit} tests of {exercise} already timed out or crashed (an endless loop?);"
        " fix that first, then grade again"
    )


def budget_reason(budget: float) -> str:
    return (
        f"not run: grading this submission used up its time budget ({budget:g} s) before this test; earlier"
        " tests that timed out (an endless loop?) use it fastest"
    )


def hold_back(record: TestRecord, gate: tuple[str, tuple[str, ...]] | None, passed: dict[str, bool]) -> TestRecord:
    """A test that passed counts only once its gate passed (tests/points.json ``held_back``, grader.course.held_back):
    otherwise its record says so. A test that failed keeps its own reason: that one names the mistake."""
    if gate is None or not record.passed or not gate[1]:
        # no gate collected with it: a hidden file graded alone (a notebook's hidden cell, feedback only); every
        # grading of a submission collects an exercise's visible and hidden files together
        return record
    name, nodeids = gate
    if all(passed.get(nodeid, False) for nodeid in nodeids):
        return record
    why = "which did not run before it" if any(nodeid not in passed for nodeid in nodeids) else ""
    record.outcome, record.kind = "failed", Kind.HELD_BACK
    record.reason = _one_line(f"this test passed, but counts once {name} passes{' (' + why + ')' if why else ''}:"
                              f" make that one pass first")
    return record


def not_run_record(nodeid: str, reason: str) -> dict:
    """The result event of a test that was never started (grader.judge.serve: the submission's budget ran out)."""
    return {"event": "result", "nodeid": nodeid, "outcome": "failed", "kind": "not_run", "reason": reason,
            "longrepr": "", "output": "", "duration": 0.0, "backstop": False}


def _one_line(text: str, limit: int = REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason_from_excinfo(excinfo: pytest.ExceptionInfo, item: pytest.Item) -> tuple[str, str]:
    """(kind, reason): kind is one of not_implemented, timeout, failed, error, exit."""
    from grader.worker.client import StudentError, StudentExit, WorkerLost  # the client imports torch

    exc = excinfo.value
    if isinstance(exc, CutShort):
        return "cut", str(exc)
    if isinstance(exc, WorkerLost):
        if exc.kind == "timeout":
            return "timeout", _one_line(f"timed out: your code {exc}; is there an infinite loop?")
        return "crash", _one_line(f"{exc} while running this test")
    if isinstance(exc, NotImplementedError):
        return "not_implemented", _one_line(f"not implemented yet: {exc}")
    if isinstance(exc, StudentExit):
        return "exit", f"the code called sys.exit({exc.exit_code}); a function under test must return, not exit"
    if isinstance(exc, StudentError):
        if isinstance(exc, MemoryError):
            return "error", f"ran out of memory{exc.where()}: is something growing without bound?"
        return "error", _one_line(f"{exc.student_type}: {exc}{exc.where()}")
    if isinstance(exc, AssertionError):
        first = str(exc).split("\nassert ")[0] if str(exc) else "assertion failed"
        where = _student_line(exc, StudentError)
        return "failed", _one_line(first, REASON_CHARS - len(where)) + where
    if isinstance(exc, pytest.fail.Exception):
        where = _student_line(exc, StudentError)
        return "failed", _one_line(str(exc), REASON_CHARS - len(where)) + where
    # an error of the test itself (a judge bug, or an unexpected value the test could not handle)
    return "error", _one_line(f"{type(exc).__name__}: {exc}")


def _student_line(exc: BaseException, student_error: type) -> str:
    """Where the student code raised, when a test failed while handling that exception (``except Exception as
    exc: pytest.fail(f"expected ValueError, got {type(exc).__name__}")``): ' (ex2_topk_attention.py line 42)'."""
    seen = exc.__cause__ or exc.__context__
    for _ in range(5):  # a short chain: the test's own handling, never a loop
        if seen is None:
            return ""
        if isinstance(seen, student_error):
            where = _one_line(seen.where(), 120)
            return f" {where}" if where and where.strip("()") not in str(exc) else ""
        seen = seen.__cause__ or seen.__context__
    return ""


_INTERNAL_FRAME = re.compile(r'^  File ".*[/\\](_pytest|pluggy|pytest_timeout\.py)')


def _without_pytest_frames(text: str) -> str:
    """A native traceback without the frames of pytest's own machinery (they say nothing about the bug)."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("  File "):
            skipping = bool(_INTERNAL_FRAME.match(line))
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out)


def _fold(nodeid: str, reports: list[pytest.TestReport]) -> TestRecord:
    """Fold the setup/call/teardown reports of one test into one record."""
    outcome, kind, reason, longrepr, backstop = "passed", "passed", "", "", False
    for rep in reports:
        if rep.failed or (rep.skipped and rep.when != "teardown"):
            outcome = "failed"
            props = dict(rep.user_properties)
            if rep.skipped:
                if hasattr(rep, "wasxfail"):
                    kind, reason = "skipped", "the code marked this test as an expected failure (xfail): not graded as passed"
                else:
                    detail = rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else rep.longrepr
                    kind, reason = "skipped", "skipped: " + _one_line(str(detail))
            else:
                kind = props.get("grader_kind", "failed")
                reason = props.get("grader_reason") or _one_line((rep.longreprtext.strip().splitlines() or [""])[-1])
                backstop = bool(props.get("grader_backstop"))
            longrepr = props.get("grader_student_tb") or _without_pytest_frames(rep.longreprtext)
            break
    output = "".join(text for title, text in (reports[-1].sections if reports else []) if "Captured" in title)
    if len(output) > OUTPUT_CHARS:
        output = output[:OUTPUT_CHARS] + f"\n... output truncated ({len(output)} characters in all)"
    return TestRecord(nodeid=nodeid, outcome=outcome, kind=Kind(kind), reason=reason, longrepr=longrepr[-4000:],
                      output=output, duration=round(sum(rep.duration for rep in reports), 4), backstop=backstop)
