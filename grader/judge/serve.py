"""One judge session, many submissions: collect the suites once, then fork a judge per submission.

The runner starts pytest with ``--grader-serve=FD``. After collection, instead of running the tests, the session
waits on FD (a SOCK_SEQPACKET socket, one JSON request per message) for submissions to grade. For each it forks
a child that inherits the collected tests, the imported test modules and the warm torch; the child points the
``student`` fixture at that submission, runs the tests of the requested exercises through pytest's own
``pytest_runtest_protocol`` and writes the usual event stream. So a batch pays for imports and collection once,
not once per submission, and a single ``make grade`` goes through exactly the same code.

Requests and replies::

    -> {"op": "grade", "id": 7, "target": ..., "workdir": ..., "events": ..., "exercises": [...],
        "cpu_seconds": 10, "wall_seconds": 60, "memory_bytes": ..., "max_strikes": 0, "budget_seconds": 0}
    <- {"started": 7, "pid": 1234}             the child judge (the caller may kill it at its own time limit)
    <- {"done": 7, "status": 0}                its wait status
    -> {"op": "stop"}                           (or the socket closed): the session ends
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time

import pytest

from grader import facilities, limits
from grader.judge import student as door, suite
from grader.judge.state import state_of
from grader.judge.verdicts import budget_reason, not_run_record
from grader.processes import die_with_parent, kill, pin_to_cpu, run_child
from grader.untrusted_paths import open_regular


def warm_hypothesis(items: list[pytest.Item]) -> None:
    """Pay here, once, what every forked judge would pay again for each Hypothesis test.

    - Draw from the test's strategies: their first use builds tables (``st.characters()`` alone costs ~50 ms)
      that no submission can change. The examples drawn here are thrown away.
    - Hash the test's source: with ``derandomize`` Hypothesis seeds each run from ``function_digest(test)``, and
      computes it twice per run (reading and tokenizing the test's source). The seed and the key computed here
      are the same values, so each test still runs exactly the examples it ran before. A parametrized test is
      left alone: where Hypothesis's pytest plugin is loaded, it mixes each case's node id into the digest."""
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis import given as drawing_from
    from hypothesis import strategies as st

    handles, parametrized = {}, set()
    for item in items:
        wrapped, handle = suite.hypothesis_test(item)
        given = getattr(handle, "_given_kwargs", None)  # Hypothesis's record of the test's @given(...)
        if not isinstance(given, dict) or not given:
            continue
        handles.setdefault(id(handle), (wrapped, handle, given))
        if getattr(item, "callspec", None) is not None:
            parametrized.add(id(handle))
    # one example per test (``.example()`` draws ten): the first draw builds the tables; each further one cost
    # as much again, and ran before every submission's grading
    once = settings(database=None, max_examples=2, deadline=None, verbosity=Verbosity.quiet,
                    phases=(Phase.generate,), suppress_health_check=list(HealthCheck))
    for key, (wrapped, handle, kwargs) in handles.items():
        try:
            drawing_from(st.fixed_dictionaries(kwargs))(once(lambda drawn: None))()
        except Exception:  # noqa: BLE001 - an invalid strategy is reported by its test, in the judge
            pass
        if key not in parametrized:
            try:
                _pin_seed(wrapped, handle)
            except Exception:  # noqa: BLE001 - Hypothesis then computes the seed itself, in every judge
                pass


def _pin_seed(wrapped, handle) -> None:
    from hypothesis import seed
    from hypothesis.internal.reflection import function_digest

    settings = getattr(wrapped, "_hypothesis_internal_use_settings", None)
    if getattr(wrapped, "_hypothesis_internal_use_seed", None) is None and getattr(settings, "derandomize", False):
        digest = function_digest(handle.inner_test)
        seed(int.from_bytes(digest, "big"))(wrapped)  # what derandomize would draw from, once per session
        wrapped._hypothesis_internal_database_key = digest  # what run_engine would compute (no database)


def serve(session: pytest.Session, fd: int) -> None:
    requests = socket.socket(fileno=fd)
    infos = {item.nodeid: suite.describe_test(item) for item in session.items}
    warm_hypothesis(session.items)
    for item in session.items:  # pytest works out each item's location (a relative path) when it first runs it:
        item.location  # noqa: B018 - once here, for every judge forked from this session
    if session.config.getoption("--grader-warm"):
        chosen = session.config.getoption("--grader-warm-exercises")
        warm_up(session, session.config.getoption("--grader-warm"), warm_items(session.items, infos, chosen))
    gc.collect()
    gc.freeze()  # the children share these pages: keep the collector from touching (and copying) them
    if not facilities.present().fork:
        return _serve_in_process(session, requests, infos)
    if sys.platform != "linux":  # fork is the Linux path only (grader.facilities)
        raise OSError("the fork path runs on Linux only")
    running: dict[int, tuple[int, int]] = {}  # pidfd -> (request id, pid)
    try:
        while True:
            ready, _, _ = select.select([requests, *running], [], [])
            if requests in ready:
                data = requests.recv(1 << 20)
                if not data:
                    break
                msg = json.loads(data)
                if msg.get("op") != "grade":
                    break
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    requests.close()
                    _grade_one(session, msg, infos)
                running[os.pidfd_open(pid)] = (msg["id"], pid)
                requests.send(json.dumps({"started": msg["id"], "pid": pid}).encode())
            for pidfd in [p for p in ready if p is not requests]:
                rid, pid = running.pop(pidfd)
                _, status = os.waitpid(pid, 0)
                os.close(pidfd)
                requests.send(json.dumps({"done": rid, "status": status}).encode())
    finally:
        for pidfd, (_, pid) in running.items():
            kill(pid)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            os.close(pidfd)


def _serve_in_process(session: pytest.Session, requests: socket.socket, infos: dict) -> None:
    """The portable path (no fork): grade each submission here, one after the other, as the warm-up does.

    Requests and replies are lines of JSON (grader.portable.Lines). A submission's judge state (its client,
    strikes, events, reports, captured output) is set up before and cleared after it, so the next one starts
    as a forked judge would; the judge never runs student code, so a submission cannot change this process
    (its worker is another interpreter)."""
    from grader import portable

    # the same floor as a forked judge's, once for the session that grades here (Linux: RLIMIT_AS); without it one
    # reply that named one buffer many times took the session to 9.4 GiB
    limit_judge_memory()
    lines = portable.Lines(requests)
    try:
        while True:
            batch = lines.read(None)
            if batch is None:
                return
            for msg in batch:
                if msg.get("op") != "grade":
                    return
                lines.send({"started": msg["id"], "pid": os.getpid()})
                status = 0
                try:
                    _judge(session, msg, infos)
                except Exception:  # noqa: BLE001 - a bug of ours: the log says what, the caller reports it
                    import traceback

                    traceback.print_exc()
                    status = 1 << 8  # a wait status meaning "exit code 1", as a forked judge's would read
                finally:  # what a forked judge takes with it when it exits
                    state = state_of(session.config)
                    state.close_events()
                    state.end_submission(session.items)
                sys.stdout.flush()
                sys.stderr.flush()
                lines.send({"done": msg["id"], "status": status})
    finally:
        portable.SPARES.close()


def _run_tests(session: pytest.Session, items: list[pytest.Item], client, *, budget: float = 0.0) -> None:
    """Run ``items`` through pytest's own protocol against the worker of ``client``, writing the event stream."""
    state = state_of(session.config)
    state.client = client
    state.strikes = {}
    state.passed = {}
    items = suite.visible_first(items)  # looked up at each call: a test of the guard reorders them there
    start = time.monotonic()
    try:
        for i, item in enumerate(items):
            if budget and time.monotonic() - start > budget:
                # out of time: the tests left are recorded as not run, so that the results are still complete
                for rest in items[i:]:
                    state.emit(not_run_record(rest.nodeid, budget_reason(budget)))
                break
            nextitem = items[i + 1] if i + 1 < len(items) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
    finally:
        client.close()


def warm_items(items: list[pytest.Item], infos: dict, chosen: str | None) -> list[pytest.Item]:
    """The tests the warm-up runs: those of the exercises in ``chosen`` (``--grader-warm-exercises``: ids separated
    by commas), or every test."""
    wanted = None if chosen is None else set(chosen.split(","))
    return [item for item in items if wanted is None or infos[item.nodeid]["exercise"] in wanted]


WARM_BUDGET = 60.0  # seconds the warm-up may take in all; the tests left then run cold in each judge


def warm_up(session: pytest.Session, target: str, items: list[pytest.Item]) -> None:
    """Grade the reference in ``target`` once with ``items``, here, before any judge is forked (``--grader-warm``).

    What the tests compute that does not depend on the submission (oracles cached per argument, FLOP counts,
    models built for their parameter counts) and what a first run pays (Hypothesis's engine, PyTorch's first
    calls, pytest's fixture machinery) is then inherited by every judge instead of being paid by each: a batch
    grades faster from its second submission on. The reference runs in a worker like any submission, so its
    code never enters this process; the results are thrown away, and nothing of them reaches a submission's
    record: each judge starts with its own client, strikes and event stream."""
    state = state_of(session.config)
    events_fd, state.events_fd = state.events_fd, None  # its events go nowhere
    try:
        with tempfile.TemporaryDirectory(prefix="warm-") as tmp:
            # the session's own per-test limits (the runner passes them as --grader-cpu-limit/--grader-wall-limit)
            client = door.make_client(session.config, target=target, workdir=tmp, cpu_seconds=state.cpu_seconds,
                                      wall_seconds=state.wall_seconds)
            _run_tests(session, items, client, budget=WARM_BUDGET)
    except Exception as exc:  # noqa: BLE001 - a failed warm-up costs time, never a grade
        print(f"grader: the warm-up run failed ({type(exc).__name__}: {exc}); grading goes on without it",
              file=sys.stderr)
        try:  # no fixture of a test that the failure cut short may stay set up for the judges to inherit
            session._setupstate.teardown_exact(None)
        except Exception:  # noqa: BLE001
            pass
    finally:
        state.events_fd = events_fd
        state.end_submission(session.items)


def limit_judge_memory(extra: int = limits.JUDGE_MEMORY_BYTES) -> None:
    """Cap this judge's address space at what it uses now plus ``extra``. The wire already refuses a reply larger
    than it allows (and measures a header before decoding it); this is the floor under it, so that whatever gets
    past costs this submission's judge (a MemoryError, a lost row) and never the machine or the other judges."""
    if sys.platform != "linux":  # RLIMIT_AS is enforced on Linux only (macOS accepts it and ignores it)
        return
    import resource

    try:
        with open("/proc/self/statm") as f:
            in_use = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return  # no /proc: no figure to add to (the wire's limits still hold)
    cap = in_use + extra
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _grade_one(session: pytest.Session, msg: dict, infos: dict) -> None:
    """Runs in the forked child judge: grade one submission, never return."""

    def judge() -> None:
        die_with_parent()  # no judge outlives its session
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        pin_to_cpu(msg.get("cpu"))  # the CPU of this judge's slot in the batch; its worker runs there too
        limit_judge_memory()
        _judge(session, msg, infos)

    run_child(judge)  # a bug of ours: the log says what, the caller reports "grading failed"


def _judge(session: pytest.Session, msg: dict, infos: dict) -> None:
    """Grade the submission of request ``msg``: the same steps in a forked judge and on the portable path."""
    config = session.config
    state = state_of(config)
    # made by the trusted parent before this judge was asked: opened as that regular file, never created
    # here, never through a link or a FIFO a worker without Landlock could have put under its name
    state.events_fd = open_regular(msg["events"], os.O_WRONLY | os.O_APPEND)
    client = door.make_client(
        config, target=msg["target"], workdir=msg["workdir"], cpu_seconds=msg["cpu_seconds"],
        wall_seconds=msg["wall_seconds"], memory_bytes=msg.get("memory_bytes"), cpu=msg.get("cpu"),
    )
    state.max_strikes = int(msg.get("max_strikes", 0))
    wanted = set(msg["exercises"])
    items = [item for item in session.items if infos[item.nodeid]["exercise"] in wanted]
    state.emit({"event": "collected", "tests": [infos[item.nodeid] for item in items]})
    # whole-submission budget (grader.judge.session.Limits.budget)
    _run_tests(session, items, client, budget=float(msg.get("budget_seconds") or 0))
