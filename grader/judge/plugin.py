"""The grading pytest plugin: a points marker, an option group, the `student` fixture, and an event stream.

Loaded explicitly (``-p grader.judge.plugin``) by the grading runner; to run a suite by hand without the runner:
``python -m pytest -p grader.judge.plugin tests/test_ex2_topk_attention.py --target solutions``. It does three things:

1. checks that every collected graded test carries ``@pytest.mark.points(n)`` and splits ``n`` over the cases
   of a parametrized test;
2. gives tests the ``student`` fixture, the only door to the code being graded (``--target``);
3. writes one JSON line per event (collected tests, test started, test finished) to ``--grader-events`` so that
   the runner, in another process, knows what happened even when the student code kills this process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from grader import facilities
from grader.course import REPO_ROOT, exercise_of
from grader.records import STRIKE_KINDS, Kind, TestRecord

MAX_OUTPUT_CHARS = 2000
MAX_REASON_CHARS = 300

POINTS = pytest.StashKey[float]()
EXERCISE = pytest.StashKey[str]()  # the exercise a test grades, found once (the judge asks at every test)
REPORTS = pytest.StashKey[dict]()
STRIKES = pytest.StashKey[dict]()  # exercise -> tests that timed out or crashed the worker
PROTECTIONS = pytest.StashKey[dict]()  # the worker's confinement and count, last said in the event stream

# With --grader-max-strikes N (N > 0), after N timeouts or crashes in one exercise its remaining tests are not
# run: quick feedback for a student with an endless loop (`make grade` uses 2). Final grading leaves it at 0,
# so every test is run and a loop in one function costs only the tests that call it.


class CutShort(Exception):
    """Raised instead of running a test of an exercise that already used up its strikes."""


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
    group.addoption("--grader-cpu-limit", type=float, default=10.0,
                    help="CPU seconds the student code may use per test (default 10)")
    group.addoption("--grader-wall-limit", type=float, default=60.0,
                    help="wall-clock seconds a test may wait for the student code (backstop, default 60)")
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
    config.stash[REPORTS] = {}
    if not hasattr(config.option, "tbstyle"):  # a judge runs without the terminal plugin, which owns --tb
        config.option.tbstyle = "native"  # Python's own traceback text: the record keeps it for the instructor
    config.stash[STRIKES] = {}
    seal_secrets(config)
    path = config.getoption("--grader-events")
    config._grader_events_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
    config.stash[MAX_STRIKES] = config.getoption("--grader-max-strikes")
    if config.getoption("--grader-serve") is not None and not facilities.present().fork:
        # the portable path: the first worker interpreter imports torch while this session collects
        from grader import portable

        portable.SPARES.prepare(os.getcwd())
    elif config.getoption("--grader-serve") is not None:
        # one zygote for every submission of the session, forked now: before any test module is imported
        from grader.worker.zygote import start_zygote

        config.stash[ZYGOTE] = start_zygote()
    else:
        # this session is the judge (in a process of the caller's, a notebook's kernel say): no CPU is pinned
        config.stash[CLIENT] = make_client(
            config, target=config.getoption("--target"), workdir=config.getoption("--grader-workdir"),
            cpu_seconds=config.getoption("--grader-cpu-limit"), wall_seconds=config.getoption("--grader-wall-limit"),
        )


def seal_secrets(config: pytest.Config) -> list[str]:
    """Where workers drop to a uid of their own (root without Landlock or namespaces), make the hidden tests and
    the solutions unreadable to it before any worker starts: by default they are world-readable, and that uid
    owns nothing, so the file modes are all that stands between it and them."""
    from grader import facilities
    from grader.worker import confine

    if config.getoption("--grader-no-confine") or not confine.needs_uid_drop(facilities.present()):
        return []
    folders = [REPO_ROOT / "solutions", REPO_ROOT / "tests" / "hidden"]
    for arg in config.args:  # a copy of the tests elsewhere (Gradescope's sandbox) carries its own hidden/
        path = Path(arg.split("::")[0])
        folders += [p for p in (path, path.parent, path / "hidden") if p.name == "hidden"]
    return confine.seal(folders)


def emit(config: pytest.Config, event: dict) -> None:
    """Write one event as one line with a single unbuffered write, so a crash never leaves half a record."""
    fd = getattr(config, "_grader_events_fd", None)
    if fd is not None:
        os.write(fd, (json.dumps(event) + "\n").encode())


# ----------------------------------------------------------------------------------------------------------
# Which code is graded
# ----------------------------------------------------------------------------------------------------------


def resolve_target(target: str) -> Path:
    """'exercises' and 'solutions' name folders of the repository; anything else is a path."""
    if target in ("exercises", "solutions"):
        return REPO_ROOT / target
    return Path(target).expanduser().resolve()


CLIENT = pytest.StashKey["WorkerClient"]()
ZYGOTE = pytest.StashKey[tuple]()  # (pid, control socket) of the zygote shared by a serving session's judges
MAX_STRIKES = pytest.StashKey[int]()


def worker_read_paths(target: Path) -> list[str]:
    """What the worker may read: the Python installation and llm_basics (the submission copy is added by the
    client). Never the repository itself, its tests, solutions or grader."""
    here = facilities.present()
    if not (here.landlock or here.setuid):  # Landlock's rules, and the ways a worker of its own uid must pass
        return []
    from grader.worker import confine

    return [*confine.default_read_paths(exclude=[REPO_ROOT]), str(REPO_ROOT / "llm_basics")]


def make_client(config: pytest.Config, *, target: str, workdir: str | None = None, cpu_seconds: float,
                wall_seconds: float, memory_bytes: int | None = None, zygote=None, cpu: int | None = None):
    """The judge's connection to the worker that runs ``target`` (started on first use, on ``cpu`` if given)."""
    import tempfile

    from grader.worker.client import WorkerClient, WorkerLimits

    folder = resolve_target(target)
    limits = WorkerLimits(cpu_seconds=cpu_seconds, wall_seconds=wall_seconds)
    if memory_bytes is not None:
        limits.memory_bytes = memory_bytes or None
    return WorkerClient(
        folder, Path(workdir or tempfile.mkdtemp(prefix="judge-")), limits=limits,
        read_paths=worker_read_paths(folder), confine=not config.getoption("--grader-no-confine"),
        zygote=zygote if zygote is not None else config.stash.get(ZYGOTE, (None, None))[1], cpu=cpu,
    )


class Student:
    """The ``student`` fixture: ``student("ex2_topk_attention")`` is the graded module, as a proxy.

    Calls go to the worker process and come back as plain data. Files cross as bytes, never as paths the judge
    opens (the worker's folder is the worker's to fill with links and FIFOs): ``student.write(name, data)`` has
    the worker write a file a test needs and returns its path for the student code, ``student.read(name)`` has the
    worker read back a regular file the student code wrote, and ``student.path(name)`` names a file without
    touching it."""

    def __init__(self, client) -> None:
        self._client = client

    def __call__(self, name: str):
        from grader.worker.client import ImportFailure

        try:
            return self._client.module(name)
        except ImportFailure as exc:
            pytest.fail(str(exc), pytrace=False)

    def path(self, name: str) -> Path:
        """Where the file ``name`` of the worker's folder is, for the student code (the test never opens it)."""
        if self._client.sock is None:
            self._client._spawn()
        return self._client.private / name

    def write(self, name: str, data: bytes | str) -> Path:
        """Have the worker write ``data`` (str: as UTF-8) to the file ``name`` of its folder; returns its path."""
        return self._client.put_file(name, data.encode("utf-8") if isinstance(data, str) else data)

    def read(self, name: str) -> bytes:
        """The bytes of the file ``name`` the student code wrote in its folder (a regular file; capped in size)."""
        return self._client.get_file(name)


@pytest.fixture
def student(pytestconfig: pytest.Config) -> Student:
    """``student("ex2_topk_attention")`` returns the graded module (from ``--target``), run in the worker."""
    return Student(pytestconfig.stash[CLIENT])


# ----------------------------------------------------------------------------------------------------------
# Points and test metadata
# ----------------------------------------------------------------------------------------------------------


def exercise_of_test(item: pytest.Item) -> str:
    if EXERCISE not in item.stash:
        path = Path(str(item.path))
        item.stash[EXERCISE] = exercise_of(path.name) or path.stem
    return item.stash[EXERCISE]


def describe_test(item: pytest.Item) -> dict:
    """What a report needs to know about a test, without running it."""
    path = Path(str(item.path))
    doc = (getattr(item, "obj", None).__doc__ or "").strip() if getattr(item, "obj", None) else ""
    return {
        "nodeid": item.nodeid,
        "name": item.name,
        "function": getattr(item, "originalname", None) or item.name,
        "exercise": exercise_of_test(item),
        "file": path.name,
        "hidden": is_hidden(item),
        "hint": doc.splitlines()[0].strip() if doc else "",
        "points": item.stash.get(POINTS, 0.0),
    }


def is_hidden(item: pytest.Item) -> bool:
    """A test of tests/hidden/ (never judged by folders above tests/)."""
    return Path(str(item.path)).parent.name == "hidden"


def visible_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The visible tests, then the hidden ones, each in their order: then one worker serves the visible tests and
    the next the hidden ones (_keep_hidden_inputs_in), instead of a new worker at every exercise."""
    return sorted(items, key=is_hidden)


def _keep_hidden_inputs_in(client, hidden: bool) -> None:
    """No worker that has run a hidden test runs a test whose output reaches the student.

    What a hidden test hands to the student code stays in the worker's memory (and its folder): a later visible
    test could print it, raise it, or return it into a visible test's message. So a worker that has served a
    hidden test is stopped before the next visible test, which gets a fresh one. What a hidden test's own run
    shows (its output, reason and traceback) is left out of what students get (grader.results.for_students):
    what remains is whether it passed."""
    if hidden:
        client.ran_hidden = True
    elif client.ran_hidden:
        folder = client.private
        client.kill()
        shutil.rmtree(folder, ignore_errors=True)  # what it wrote there too (no link followed: rmtree uses fds)
        client.ran_hidden = False


def _function_id(item: pytest.Item) -> str:
    """The node id without its parameters: the cases of one parametrized test share it (classes kept apart)."""
    return item.nodeid.split("[", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # 1. every graded test must say what it is worth
    unmarked = [item.nodeid for item in items if item.get_closest_marker("points") is None]
    if unmarked:
        raise pytest.UsageError(
            "graded tests without @pytest.mark.points(n): " + ", ".join(unmarked) + " (every graded test needs points)"
        )
    # 2. a parametrized test splits its points over its cases
    siblings: dict[str, int] = {}
    for item in items:
        siblings[_function_id(item)] = siblings.get(_function_id(item), 0) + 1
    for item in items:
        marker = item.get_closest_marker("points")
        value = marker.args[0] if len(marker.args) == 1 else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.points(n) with one positive number")
        item.stash[POINTS] = float(value) / siblings[_function_id(item)]
    # 3. a property test ends at the first example that reaches a TODO of the stub (_stop_at_stubs)
    for item in items:
        _stop_at_stubs(item)
    # 4. tell the runner what will run (only once the collection is known to be valid); a serving session says
    # it per submission (grader.judge.serve)
    if config.getoption("--grader-serve") is None:
        emit(config, {"event": "collected", "tests": [describe_test(item) for item in items]})


class _NotWrittenYet(BaseException):
    """Carries a student's NotImplementedError out of Hypothesis's runner, which lets a BaseException through at
    once (``pytest_pyfunc_call`` raises the student's error again, for pytest to report as usual)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


def hypothesis_test(item: pytest.Item):
    """(function, handle) of a Hypothesis test: the test's function (a method's function, for a test in a class)
    and its ``.hypothesis`` attribute; (function, None) for any other test."""
    function = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    return function, getattr(function, "hypothesis", None)


def _stop_at_stubs(item: pytest.Item) -> None:
    """A Hypothesis test of ``item`` ends at the first example whose call of the student code raises
    NotImplementedError (a TODO not written yet): there is no failing example to look for in a function not
    written yet. Hypothesis would run that example a second time and format its traceback twice, a tenth of a
    judge's CPU in a batch of unfinished submissions. The record is the same: kind "not_implemented" and the
    student's traceback. Hypothesis lets a test replace each example's call (``.hypothesis.inner_test``)."""
    import functools

    from grader.worker.client import StudentError

    handle = hypothesis_test(item)[1]
    inner = getattr(handle, "inner_test", None)
    if inner is None or getattr(inner, "_grader_stops_at_stubs", False):
        return

    @functools.wraps(inner)
    def example(*args, **kwargs):
        try:
            return inner(*args, **kwargs)
        except StudentError as exc:
            if isinstance(exc, NotImplementedError):
                raise _NotWrittenYet(exc) from None
            raise

    example._grader_stops_at_stubs = True
    handle.inner_test = example


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    try:
        return (yield)
    except _NotWrittenYet as stop:
        raise stop.error from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    fd = session.config.getoption("--grader-serve")
    if fd is None or session.config.option.collectonly:
        return None
    from grader.judge.serve import serve

    serve(session, fd)
    return True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """Say a test started before it runs, and write its folded record once setup, call and teardown are done."""
    emit(item.config, {"event": "start", "nodeid": item.nodeid})
    client = item.config.stash[CLIENT]
    _keep_hidden_inputs_in(client, is_hidden(item))
    client.begin_test()
    judge_cpu = time.process_time()
    result = yield
    reports = item.config.stash[REPORTS].pop(item.nodeid, [])
    record = _fold(item.nodeid, reports)
    record.cpu = round(time.process_time() - judge_cpu + client.test_cpu(), 4)
    if record.kind in STRIKE_KINDS:
        exercise = exercise_of_test(item)
        item.config.stash[STRIKES][exercise] = item.config.stash[STRIKES].get(exercise, 0) + 1
    emit(item.config, record.to_event())
    sandbox = {"protections": client.protections, "workers": client.generation}
    if client.generation and sandbox != item.config.stash.get(PROTECTIONS, None):
        item.config.stash[PROTECTIONS] = sandbox
        emit(item.config, {"event": "sandbox", **sandbox})
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    limit = item.config.stash[MAX_STRIKES]
    exercise = exercise_of_test(item)
    if limit and item.config.stash[STRIKES].get(exercise, 0) >= limit:
        raise CutShort(cut_short_reason(exercise, limit))


def budget_reason(budget: float) -> str:
    return (
        f"not run: grading this submission used up its time budget ({budget:g} s) before this test; earlier"
        " tests that timed out (an endless loop?) use it fastest"
    )


def not_run_record(nodeid: str, reason: str) -> dict:
    """The result event of a test that was never started (grader.judge.serve: the submission's budget ran out)."""
    return {"event": "result", "nodeid": nodeid, "outcome": "failed", "kind": "not_run", "reason": reason,
            "longrepr": "", "output": "", "duration": 0.0, "backstop": False}


def cut_short_reason(exercise: str, limit: int) -> str:
    return (
        f"not run: {limit} tests of {exercise} already timed out or crashed (an endless loop?);"
        " fix that first, then grade again"
    )


# ----------------------------------------------------------------------------------------------------------
# Outcomes: one record per test, with a one-line reason a student can act on
# ----------------------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason_from_excinfo(excinfo: pytest.ExceptionInfo, item: pytest.Item) -> tuple[str, str]:
    """(kind, reason): kind is one of not_implemented, timeout, failed, error, exit."""
    from grader.worker.client import StudentError, StudentExit, WorkerLost

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
        return "failed", _one_line(first)
    if isinstance(exc, pytest.fail.Exception):
        return "failed", _one_line(str(exc))
    # an error of the test itself (a judge bug, or an unexpected value the test could not handle)
    return "error", _one_line(f"{type(exc).__name__}: {exc}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    from grader.worker.client import StudentError, WorkerLost

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
    item.config.stash[REPORTS].setdefault(item.nodeid, []).append(report)
    return report


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
    if len(output) > MAX_OUTPUT_CHARS:
        output = output[:MAX_OUTPUT_CHARS] + f"\n... output truncated ({len(output)} characters in all)"
    return TestRecord(nodeid=nodeid, outcome=outcome, kind=Kind(kind), reason=reason, longrepr=longrepr[-4000:],
                      output=output, duration=round(sum(rep.duration for rep in reports), 4), backstop=backstop)


def pytest_unconfigure(config: pytest.Config) -> None:
    client = config.stash.get(CLIENT, None)
    if client is not None:
        client.close()
    pid, control = config.stash.get(ZYGOTE, (None, None))
    if pid is not None:
        control.close()
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    fd = getattr(config, "_grader_events_fd", None)
    if fd is not None:
        os.close(fd)
        config._grader_events_fd = None
