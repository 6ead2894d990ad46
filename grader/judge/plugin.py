"""The grading pytest plugin: its options, the hooks, and the `student` fixture.

Loaded explicitly (``-p grader.judge.plugin``) by the grading runner; to run a suite by hand without the runner:
``python -m pytest -p grader.judge.plugin tests/test_ex2_topk_attention.py --target solutions``. It does three things:

1. checks that every collected graded test carries ``@pytest.mark.points(n)`` and splits ``n`` over the cases
   of a parametrized test (grader.judge.suite);
2. gives tests the ``student`` fixture, the only door to the code being graded (``--target``,
   grader.judge.student);
3. writes one JSON line per event (collected tests, test started, test finished, grader.judge.verdicts) to
   ``--grader-events`` so that the runner, in another process, knows what happened even when the student code
   kills this process.

Its state is one ``JudgeState`` (grader.judge.state); with ``--grader-serve`` the session hands its run loop to
grader.judge.serve, which grades many submissions with these same hooks.
"""

from __future__ import annotations

import os
import time

import pytest

from grader import facilities, limits
from grader.judge import serve, student as door, suite
from grader.judge.state import STATE, JudgeState, state_of
from grader.judge.verdicts import CutShort, _fold, cut_short_reason, hold_back, reason_from_excinfo
from grader.records import STRIKE_KINDS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("grader", "grading of the lesson exercises")
    group.addoption(
        "--target",
        default="exercises",
        help="which code is graded: 'exercises' (default), 'solutions', or a folder holding exN_*.py files",
    )
    group.addoption("--grader-events", default=None, help="append one JSON line per grading event to this file")
    group.addoption(
        "--grader-max-strikes",
        type=int,
        default=0,
        help="after this many timeouts or crashes in one exercise, skip its other tests (0: never)",
    )
    group.addoption("--grader-cpu-limit", type=float, default=limits.CPU_SECONDS,
                    help=f"CPU seconds the student code may use per test (default {limits.CPU_SECONDS:g})")
    group.addoption("--grader-wall-limit", type=float, default=limits.WALL_SECONDS,
                    help=f"wall-clock seconds a test may wait for the student code (backstop, default "
                         f"{limits.WALL_SECONDS:g})")
    group.addoption("--grader-workdir", default=None, help="folder for the workers' private folders")
    group.addoption("--grader-no-confine", action="store_true",
                    help="run the worker without Landlock and namespaces (debugging only)")
    group.addoption("--grader-serve", type=int, default=None,
                    help="after collection, grade the submissions requested on this descriptor (grader.judge.serve)")
    group.addoption("--grader-warm", default=None,
                    help="before serving, grade the reference in this folder once (grader.judge.serve.warm_up)")
    group.addoption("--grader-warm-exercises", default=None,
                    help="comma-separated exercise ids: the warm-up runs their tests only (default: every test)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "points(n): points a graded test is worth (a parametrized test splits them over its cases)"
    )
    state = config.stash[STATE] = JudgeState(
        max_strikes=config.getoption("--grader-max-strikes"),
        cpu_seconds=config.getoption("--grader-cpu-limit"), wall_seconds=config.getoption("--grader-wall-limit"),
    )
    if not hasattr(config.option, "tbstyle"):  # a judge runs without the terminal plugin, which owns --tb
        config.option.tbstyle = "native"  # Python's own traceback text: the record keeps it for the instructor
    door.seal_secrets(config)
    suite.examples_from_the_tests_alone()  # before the first example is drawn
    path = config.getoption("--grader-events")
    state.events_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
    if config.getoption("--grader-serve") is not None and not facilities.present().fork:
        # the portable path: the first worker interpreter imports torch while this session collects
        from grader import portable  # the portable path only (it starts interpreters; the fork path never does)

        portable.SPARES.prepare(os.getcwd())
    elif config.getoption("--grader-serve") is not None:
        # one zygote for every submission of the session, forked now: before any test module is imported
        from grader.worker.zygote import start_zygote

        state.zygote = start_zygote()
    else:
        # this session is the judge (in a process of the caller's, a notebook's kernel say): no CPU is pinned
        state.client = door.make_client(
            config, target=config.getoption("--target"), workdir=config.getoption("--grader-workdir"),
            cpu_seconds=state.cpu_seconds, wall_seconds=state.wall_seconds,
        )


@pytest.fixture
def student(pytestconfig: pytest.Config) -> door.Student:
    """``student("ex2_topk_attention")`` returns the graded module (from ``--target``), run in the worker."""
    return door.Student(state_of(pytestconfig).client)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    suite.split_points(items)
    suite.attach_gates(items)
    # a property test ends at the first example that reaches a TODO of the stub
    for item in items:
        suite._stop_at_stubs(item)
    # tell the runner what will run (only once the collection is known to be valid); a serving session says it
    # per submission (grader.judge.serve)
    if config.getoption("--grader-serve") is None:
        state_of(config).emit({"event": "collected", "tests": [suite.describe_test(item) for item in items]})
        items[:] = suite.visible_first(items)  # run here by pytest's own loop: the gates first


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    try:
        return (yield)
    except suite._NotWrittenYet as stop:
        raise stop.error from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    fd = session.config.getoption("--grader-serve")
    if fd is None or session.config.option.collectonly:
        return None
    serve.serve(session, fd)
    return True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """Say a test started before it runs, and write its folded record once setup, call and teardown are done."""
    state = state_of(item.config)
    state.emit({"event": "start", "nodeid": item.nodeid})
    client = state.client
    # looked up in its module at each test, so that a test of the guard itself can switch it off there
    door._keep_hidden_inputs_in(client, suite.is_hidden(item))
    client.begin_test()
    judge_cpu = time.process_time()
    result = yield
    record = _fold(item.nodeid, state.reports.pop(item.nodeid, []))
    state.passed[item.nodeid] = record.passed
    record = hold_back(record, item.stash.get(suite.GATE, None), state.passed)
    record.cpu = round(time.process_time() - judge_cpu + client.test_cpu(), 4)
    if record.kind in STRIKE_KINDS:
        exercise = suite.exercise_of_test(item)
        state.strikes[exercise] = state.strikes.get(exercise, 0) + 1
    state.emit(record.to_event())
    sandbox = {"protections": client.protections, "workers": client.generation}
    if client.generation and sandbox != state.protections:
        state.protections = sandbox
        state.emit({"event": "sandbox", **sandbox})
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = state_of(item.config)
    exercise = suite.exercise_of_test(item)
    if state.max_strikes and state.strikes.get(exercise, 0) >= state.max_strikes:
        raise CutShort(cut_short_reason(exercise, state.max_strikes))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    from grader.worker.client import StudentError, WorkerLost  # the client imports torch

    student_tb = None
    if call.excinfo is not None and isinstance(call.excinfo.value, StudentError):
        # the record shows the student's own traceback: pytest's text for the judge's frames would be thrown
        # away, and formatting it is a fifth of a judge's CPU in a batch of unfinished submissions (a failure
        # in a test's call is formatted by repr_failure, one in a fixture's setup by _repr_failure_py)
        student_tb = call.excinfo.value.traceback_text()
        item.repr_failure = lambda excinfo: student_tb
        item._repr_failure_py = lambda excinfo, style=None: student_tb
    try:
        report = yield
    finally:
        item.__dict__.pop("repr_failure", None)
        item.__dict__.pop("_repr_failure_py", None)
    if call.excinfo is not None and not report.skipped:
        try:
            kind, reason = reason_from_excinfo(call.excinfo, item)
        except BaseException as exc:  # an exception whose __str__ fails must not take pytest down with it
            kind, reason = "error", f"{call.excinfo.typename} (its message could not be shown: {type(exc).__name__})"
        report.user_properties.append(("grader_kind", kind))
        report.user_properties.append(("grader_reason", reason))
        if student_tb is not None:
            report.user_properties.append(("grader_student_tb", student_tb))
        if isinstance(call.excinfo.value, WorkerLost) and call.excinfo.value.backstop:
            report.user_properties.append(("grader_backstop", True))
    state_of(item.config).reports.setdefault(item.nodeid, []).append(report)
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:  # configure failed before the state was made
        return
    if state.client is not None:
        state.client.close()
    pid, control = state.zygote
    if pid is not None:
        control.close()
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    state.close_events()
