"""Run graded pytest suites in a forked child and collect one record per test, whatever the student code does.

The parent imports torch (and the other heavy modules) once, then forks. The child runs an ordinary pytest
session with the grading plugin, which writes an event line before and after every test. If the child dies in
the middle of a test (``os._exit``, a segfault, the memory limit, a hang that the per-test timeout cannot
interrupt), the parent marks that test as lost and forks again for the tests that are left. So a crash costs
the test that crashed, never the report.
"""

from __future__ import annotations

import collections
import faulthandler
import gc
import json
import os
import resource
import select
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.plugin import STRIKE_KINDS, cut_short_reason

GRADER_DIR = Path(__file__).resolve().parent
PYTEST_INI = GRADER_DIR / "graded_pytest.ini"
DEFAULT_TIMEOUT = 10.0  # CPU seconds the student code may use per test (the reference needs well under 1 s)
DEFAULT_WALL = 60.0  # wall-clock backstop per test, for code that sleeps or blocks rather than computes
HARD_GRACE = 10.0  # extra seconds before the parent kills a judge that stopped reporting (a bug of ours)
OUTPUT_LIMIT = 32 * 1024 * 1024  # bytes a child may write to any file (captured prints included)
MAX_RESTARTS = 200


class GradingError(RuntimeError):
    """Grading itself could not run (not the student's fault): the message says why."""


@dataclass
class Limits:
    timeout: float = DEFAULT_TIMEOUT  # CPU seconds of the worker per test, measured by the judge
    wall: float = DEFAULT_WALL
    # extra address space allowed on top of what the parent already maps: a runaway allocation becomes a
    # MemoryError in that test instead of swapping the machine
    memory_bytes: int | None = 4 * 2**30
    output_bytes: int = OUTPUT_LIMIT
    max_strikes: int = 0  # > 0: skip an exercise's other tests after this many timeouts/crashes (quick feedback)


@dataclass
class SessionResult:
    tests: list[dict] = field(default_factory=list)  # describe_test() dicts, in collection order
    records: dict[str, dict] = field(default_factory=dict)  # nodeid -> folded record
    log: str = ""  # what the child printed outside of tests (truncated)
    restarts: int = 0
    tampered: list[str] = field(default_factory=list)  # events that no honest pytest session writes
    protections: dict = field(default_factory=dict)  # which confinement the worker had (grader.judge.confine)
    workers: int = 0  # worker processes started (one, plus one after each crash or timeout)


_PRELOADED = False
_FLOPS_WARM = False


def warm_flop_counter() -> None:
    """The first FlopCounterMode count, or the first model built on the meta device, imports torch._dynamo
    (~1 s of CPU): pay it once here, before forking, instead of once per child (ex4's suites count FLOPs, ex3's
    build models on the meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False):
        torch.ones(2, 2) @ torch.ones(2, 2)


def preload(*, flop_counter: bool = False) -> None:
    """Import the heavy modules once in this process so that forked children start in milliseconds."""
    global _PRELOADED, _FLOPS_WARM
    if not _PRELOADED:
        import hypothesis  # noqa: F401
        import numpy  # noqa: F401
        import pytest  # noqa: F401
        import torch

        import grader.judge.client  # noqa: F401
        import grader.plugin  # noqa: F401
        import llm_basics.attention  # noqa: F401
        import llm_basics.generation  # noqa: F401
        import llm_basics.model  # noqa: F401
        import llm_basics.tokenizer  # noqa: F401

        # A forked child can deadlock in its first matmul if the parent ever ran a multi-threaded op.
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already ran: the intra-op setting is what matters
            pass
        _PRELOADED = True
    if flop_counter and not _FLOPS_WARM:
        warm_flop_counter()  # after set_num_threads(1): the warm-up matmul must not start a thread pool
        _FLOPS_WARM = True
    gc.collect()
    gc.freeze()  # keep the parent's objects out of the children's collections (no copy-on-write storm)


def _child(args: list[str], log_path: Path, workdir: Path, limits: Limits) -> None:
    """Runs in the forked child: never returns."""
    code = 70
    try:
        os.setpgid(0, 0)  # own process group: the parent can kill everything the student code spawned
        faulthandler.disable()  # a parent's faulthandler (pytest's) would dump our crashes onto its stderr
        os.chdir(workdir)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = open(1, "w", closefd=False, errors="replace")  # the parent's may be a capture object
        sys.stderr = open(2, "w", closefd=False, errors="replace")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        sys.dont_write_bytecode = True  # the judge never leaves compiled tests behind
        import pytest

        code = pytest.main(args)
    except BaseException:  # noqa: BLE001 - report anything, then leave without running the parent's cleanup
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(int(code) if isinstance(code, int) else 70)


def describe_status(status: int) -> str:
    """A wait status in words: 'exit code 3' or 'killed by signal SIGSEGV'."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by signal {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def run_session(
    test_paths: list[Path],
    *,
    target: str | Path,
    rootdir: Path,
    limits: Limits | None = None,
    extra_args: tuple[str, ...] = (),
    flop_counter: bool = False,
    on_progress=None,
) -> SessionResult:
    """Grade ``target`` with the graded tests in ``test_paths``; returns every test's record."""
    preload(flop_counter=flop_counter)
    limits = limits or Limits()
    result = SessionResult()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tmpdir = Path(tmp)
        workdir = tmpdir / "work"
        workdir.mkdir()
        state_path = tmpdir / "state.json"
        for attempt in range(MAX_RESTARTS):
            events_path = tmpdir / f"events-{attempt}.jsonl"
            log_path = tmpdir / f"log-{attempt}.txt"
            state_path.write_text(json.dumps({"done": list(result.records), "strikes": _strikes(result)}))
            args = [
                *map(str, test_paths),
                "-c", str(PYTEST_INI),
                "--rootdir", str(rootdir),
                "--confcutdir", str(rootdir),
                "-p", "grader.plugin",
                "-p", "no:cacheprovider",
                # plugins a graded run never uses; each costs a little in every test (~10% of a run in all)
                "-p", "no:logging", "-p", "no:warnings", "-p", "no:faulthandler", "-p", "no:doctest",
                "-p", "no:junitxml", "-p", "no:pastebin", "-p", "no:unittest", "-p", "no:stepwise",
                "-p", "no:setuponly", "-p", "no:setupplan",
                "--strict-markers",
                "-q", "--no-header", "-rN", "--tb=native",  # native tracebacks: no AST work per failure
                f"--grader-cpu-limit={limits.timeout:g}",
                f"--grader-wall-limit={limits.wall:g}",
                f"--grader-workdir={workdir}",
                f"--target={target}",
                f"--grader-events={events_path}",
                f"--grader-state={state_path}",
                f"--grader-max-strikes={limits.max_strikes}",
                *extra_args,
            ]
            before = _digest(test_paths)
            status, events = _run_child(args, events_path, log_path, workdir, limits, _progress(result, on_progress))
            if _digest(test_paths) != before:
                result.tampered.append("the graded test files changed while the tests ran")
            result.log += _tail(log_path)
            progressed = _absorb(result, events)
            lost = _lost_test(events)
            if lost is None and status == "hard-timeout":
                # quiet between tests: the last test that started is where the child got stuck, whatever result
                # was written for it
                lost = next((e["nodeid"] for e in reversed(events) if e["event"] == "start"), None)
            if lost is not None:
                kind = "timeout" if status == "hard-timeout" else "crash"
                reason = (
                    f"did not finish within {limits.wall + HARD_GRACE:g} s and was stopped (stuck inside a"
                    " long computation?)"
                    if kind == "timeout"
                    else f"the grading process stopped while running this test ({status}): os._exit(),"
                    " pytest.exit(), a crash, or the memory limit"
                )
                result.records[lost] = {
                    "event": "result", "nodeid": lost, "outcome": "failed", "kind": kind, "reason": reason,
                    "longrepr": "", "output": "", "duration": 0.0,
                }
                progressed = True
            if result.tampered:
                break  # the rest of the session cannot be trusted; grading.grade() reports it
            if not result.tests and not result.records:
                raise GradingError(f"pytest could not collect the graded tests ({status}):\n{result.log[-3000:]}")
            # the same rule as in the child (--grader-max-strikes): an exercise whose tests timed out or crashed
            # the process max_strikes times is not run further
            strikes = _strikes(result)
            for info in result.tests:
                if not limits.max_strikes or info["nodeid"] in result.records:
                    continue
                if strikes.get(info["exercise"], 0) >= limits.max_strikes:
                    result.records[info["nodeid"]] = {
                        "event": "result", "nodeid": info["nodeid"], "outcome": "failed", "kind": "cut",
                        "reason": cut_short_reason(info["exercise"], limits.max_strikes),
                        "longrepr": "", "output": "", "duration": 0.0,
                    }
            remaining = [t["nodeid"] for t in result.tests if t["nodeid"] not in result.records]
            if not remaining:
                break
            if not progressed:
                for nodeid in remaining:
                    result.records[nodeid] = {
                        "event": "result", "nodeid": nodeid, "outcome": "failed", "kind": "crash",
                        "reason": f"not run: the grading process kept dying before this test ({status})",
                        "longrepr": "", "output": "", "duration": 0.0,
                    }
                break
            result.restarts += 1
    return result


def _digest(test_paths: list[Path]) -> str:
    """A hash of every file in the folders of the graded tests (the suites, conftest.py, points.json)."""
    import hashlib

    h = hashlib.sha256()
    for folder in sorted({Path(p).resolve().parent for p in test_paths}):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _tail(path: Path, limit: int = 20000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


def _progress(result: SessionResult, on_progress):
    """Adapts ``on_progress(done, total, nodeid)`` to the events of one child (None when nobody listens)."""
    if on_progress is None:
        return None
    before = len(result.records)

    def seen(events: list[dict]) -> None:
        tests = next((e["tests"] for e in events if e["event"] == "collected"), [])
        done = before + sum(1 for e in events if e["event"] == "result")
        current = next((e["nodeid"] for e in reversed(events) if e["event"] == "start"), "")
        on_progress(done, max(len(result.tests), before + len(tests)), current)

    return seen


def _run_child(args, events_path: Path, log_path: Path, workdir: Path, limits: Limits, seen=None):
    events_path.touch()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(args, log_path, workdir, limits)
    pidfd = os.pidfd_open(pid)
    events: list[dict] = []
    offset = 0
    running: tuple[str, float] | None = None
    last_event = time.monotonic()
    status_text = ""
    try:
        while True:
            ready, _, _ = select.select([pidfd], [], [], 0.05)
            count = len(events)
            offset = _read_events(events_path, offset, events)
            if seen and len(events) != count:
                seen(events)
            running = _current(events, running)
            if ready:
                _, status = os.waitpid(pid, 0)
                status_text = describe_status(status)
                break
            if len(events) != count:
                last_event = time.monotonic()
            # stuck inside one test, or between tests (an honest child is never quiet that long)
            since = running[1] if running else last_event
            if time.monotonic() - since > limits.wall + HARD_GRACE:
                _kill_group(pid)
                os.waitpid(pid, 0)
                status_text = "hard-timeout"
                break
    finally:
        os.close(pidfd)
        _kill_group(pid)  # anything the student code left running
    _read_events(events_path, offset, events)
    return status_text, events


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_events(path: Path, offset: int, into: list[dict]) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # only whole lines
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or event.get("event") not in EVENT_KEYS or not EVENT_KEYS[event["event"]] <= set(event):
            event = {"event": "garbage", "line": line[:200].decode("utf-8", errors="replace")}
        into.append(event)
    return offset + end


# what each event must carry; anything else in the events file is reported as tampering
EVENT_KEYS = {
    "collected": {"tests"},
    "start": {"nodeid"},
    "result": {"nodeid", "outcome", "kind", "reason", "longrepr", "output", "duration"},
    "sandbox": {"protections"},
}


def _current(events: list[dict], running: tuple[str, float] | None) -> tuple[str, float] | None:
    """The test that has started and not finished, with the time we first saw it start."""
    started = _lost_test(events)
    if started is None:
        return None
    if running and running[0] == started:
        return running
    return (started, time.monotonic())


def _absorb(result: SessionResult, events: list[dict]) -> bool:
    """Take one child's events into ``result``; return whether any test got a result.

    An honest session writes one "collected" event, then for each test a "start" and a "result" with the same
    node id, for tests it collected, once each. Anything else was written by the code under test (it runs in
    the same process) and is recorded in ``result.tampered``.
    """
    progressed, started, collected_here = False, None, False
    for event in events:
        kind = event["event"]
        if kind == "sandbox":
            result.protections = dict(event["protections"])
            result.workers = max(result.workers, int(event.get("workers", 0)))
        elif kind == "collected" and not collected_here:
            collected_here = True
            known = {t["nodeid"] for t in result.tests}
            if result.tests and not {t["nodeid"] for t in event["tests"]} <= known:
                result.tampered.append("a restarted session collected tests the first one did not")
            if not result.tests:
                result.tests = list(event["tests"])
        elif kind == "start" and collected_here and started is None:
            started = event["nodeid"]
        elif kind == "result" and event["nodeid"] == started and started not in result.records:
            result.records[started] = event
            progressed, started = True, None
        else:
            result.tampered.append(f"unexpected {kind!r} event ({event.get('nodeid') or event.get('line', '')})")
    return progressed


def _strikes(result: SessionResult) -> dict[str, int]:
    """Per exercise, how many of its tests timed out or crashed the process so far."""
    exercise = {t["nodeid"]: t["exercise"] for t in result.tests}
    counts = collections.Counter(
        exercise.get(nodeid, "") for nodeid, record in result.records.items() if record["kind"] in STRIKE_KINDS
    )
    return dict(counts)


def _lost_test(events: list[dict]) -> str | None:
    """The node id of a test that started and has no result (yet, or ever if the child died)."""
    started = None
    for event in events:
        if event["event"] == "start":
            started = event["nodeid"]
        elif event["event"] == "result" and event["nodeid"] == started:
            started = None
    return started
