"""Open a judge session and submit to it: a pytest session with the grading plugin, forked from a parent that
imported torch once (grader.judge.preload). ``JudgeSession.for_suites`` is the one way to open one (``grade``,
``watch``, a batch, a Dask worker); ``submit`` gives back a ``Grading`` (grader.judge.handle), which owns that
submission's replies, deadline and outcome.

The judge never runs student code (grader.judge: the worker does), so it does not crash because of it: the
parent starts it, asks it to grade one submission or many (a batch), and reads the event stream it writes (one
line per collected suite, test start and test result). The judge collects the tests once and forks a judge per
submission (grader.judge.serve), so a batch pays for imports and collection once.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader import facilities, limits as caps, portable
from grader.course import TESTS_DIR
from grader.judge.events import absorb, open_events, read_events, report_progress  # noqa: F401 - re-exported (older imports)
from grader.judge.handle import HARD_GRACE, Grading
from grader.judge.preload import enter_session, keep_dynamo_unloaded, preload  # noqa: F401 - re-exported
from grader.processes import describe_status, kill, run_child  # noqa: F401 - describe_status is re-exported
from grader.records import GradingError, Outcome, SessionResult  # noqa: F401 - re-exported (older imports)
from grader.untrusted_paths import create_new, read_regular


GRADER_DIR = Path(__file__).resolve().parents[1]  # grader/judge/ -> grader/
PYTEST_INI = GRADER_DIR / "graded_pytest.ini"
DEFAULT_TIMEOUT = caps.CPU_SECONDS  # CPU seconds the student code may use per test (the reference needs well under 1 s)
DEFAULT_WALL = caps.WALL_SECONDS  # wall-clock backstop per test, for code that sleeps or blocks rather than computes
OUTPUT_LIMIT = caps.OUTPUT_BYTES  # bytes a child may write to any file (captured prints included)


@dataclass
class Limits:
    timeout: float = DEFAULT_TIMEOUT  # CPU seconds of the worker per test, measured by the judge
    wall: float = DEFAULT_WALL
    # extra address space allowed on top of what the parent already maps: a runaway allocation becomes a
    # MemoryError in that test instead of swapping the machine
    memory_bytes: int | None = caps.MEMORY_BYTES
    output_bytes: int = OUTPUT_LIMIT
    max_strikes: int = 0  # > 0: skip an exercise's other tests after this many timeouts/crashes (quick feedback)
    # Whole-submission budget, wall-clock seconds (None: none). Checked by the judge between tests: once it is used
    # up, every test not yet run is recorded as not run (kind "not_run", the reason says why) and the results are
    # written as usual. A platform that kills a slow grading outright (Gradescope, after 10 minutes) would
    # otherwise record nothing.
    # The test running when the budget runs out is not cut short: it still has its own limits above.
    budget: float | None = None


def _child(args: list[str], log_path: Path, workdir: Path, limits: Limits) -> None:
    """Runs in the forked judge session: never returns."""

    def session() -> int:
        if sys.platform != "linux":  # forked: the Linux path only (grader.facilities)
            raise OSError("the fork path runs on Linux only")
        os.setpgid(0, 0)  # own process group
        enter_session(log_path, workdir, limits.output_bytes)
        import pytest

        return int(pytest.main(args))

    run_child(session)


def suite_files(exercises: list[str], *, hidden: bool, tests_dir: Path = TESTS_DIR) -> list[Path]:
    files = []
    for ex in exercises:
        visible = sorted(tests_dir.glob(f"test_{ex}_*.py"))
        if not visible:
            raise GradingError(f"no visible tests for {ex} in {tests_dir}")
        files += visible
        if hidden:
            files += sorted((tests_dir / "hidden").glob(f"test_{ex}_*.py"))
    return files


class JudgeSession:
    """A judge session (pytest with the grading plugin, in a forked child) that has collected ``test_paths`` once
    and grades any number of submissions, each in a judge forked from it (grader.judge.serve).

    Several threads may share one (a Dask worker's task threads): ``poll`` reads the replies under a lock and
    hands each to its Grading."""

    # Called with the session's pid just before a portable session is ended at a grading's deadline; returns
    # something with ``reap(grace=...)`` (grader.batch.lifecycle.ProcessTree). The batch sets it: the judge
    # package never imports the batch.
    reaper: Callable | None = None

    @classmethod
    def for_suites(cls, exercises: list[str], *, hidden: bool, tmpdir: Path, limits: Limits,
                   tests_dir: Path = TESTS_DIR, flop_counter: bool = False, warm_with: Path | None = None,
                   warm_exercises: list[str] | None = None, extra_args: tuple[str, ...] = ()) -> "JudgeSession":
        """Preload, choose the suites and start: the one way to open a session (grade, watch, batch, Dask).

        Spawned (no fork), the session imports torch itself: nothing is preloaded here then."""
        if facilities.present().fork:
            saved, tempfile.tempdir = tempfile.tempdir, str(tmpdir)  # whatever the imports write stays there
            try:
                preload(flop_counter=flop_counter)
            finally:
                tempfile.tempdir = saved
        files = suite_files(exercises, hidden=hidden, tests_dir=tests_dir)
        return cls(files, rootdir=tests_dir.parent, tmpdir=tmpdir, limits=limits, extra_args=extra_args,
                   warm_with=warm_with, warm_exercises=warm_exercises)

    def __init__(self, test_paths: list[Path], *, rootdir: Path, tmpdir: Path, limits: Limits,
                 extra_args: tuple[str, ...] = (), warm_with: Path | None = None,
                 warm_exercises: list[str] | None = None) -> None:
        self.tmpdir = tmpdir
        self.limits = limits
        self.log_path = tmpdir / "judge.log"
        self.next_id = 0
        self.gradings: dict[int, Grading] = {}  # request id -> its handle, until it is done
        self._lock = threading.Lock()
        self.spawned: subprocess.Popen | None = None
        self._status: int | None = None  # the session's wait status, once polled (no pidfd)
        args = [
            *map(str, test_paths),
            "-c", str(PYTEST_INI),
            "--rootdir", str(rootdir),
            "--confcutdir", str(rootdir),
            "-p", "grader.judge.plugin",
            "-p", "no:cacheprovider",
            # plugins a graded run never uses; each costs a little in every test (~10% of a run in all)
            "-p", "no:logging", "-p", "no:warnings", "-p", "no:faulthandler", "-p", "no:doctest",
            "-p", "no:junitxml", "-p", "no:pastebin", "-p", "no:unittest", "-p", "no:stepwise",
            "-p", "no:setuponly", "-p", "no:setupplan",
            "-p", "no:terminal",  # the judge reports through its events; progress output costs time in every test
            "--strict-markers",
            # capture in memory, not in pytest's default temporary file: judges forked from this session would
            # share that file (and its offset), and one student's output could land in another's record
            "--capture=sys",
            f"--grader-cpu-limit={limits.timeout}", f"--grader-wall-limit={limits.wall}",  # the warm-up's too
            # grade the reference once before serving (in these exercises only, when given)
            *([f"--grader-warm={warm_with}"] if warm_with else []),
            *([f"--grader-warm-exercises={','.join(warm_exercises)}"] if warm_with and warm_exercises else []),
            *extra_args,
        ]
        if not facilities.present().fork:
            self._spawn(args)
            return
        if sys.platform != "linux":  # fork is the Linux path only (grader.facilities)
            raise OSError("the fork path runs on Linux only")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args.append(f"--grader-serve={theirs.fileno()}")
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            ours.close()
            _child(args, self.log_path, tmpdir, limits)
        theirs.close()
        self.sock = ours
        self.pidfd = os.pidfd_open(self.pid) if facilities.present().pidfd else None
        self._lines = None

    def _spawn(self, args: list[str]) -> None:
        """The portable path: the session is a fresh interpreter (``python -m grader.judge.entry``) that imports
        torch and collects by itself, and grades each submission in its own process, one at a time. Requests and
        replies are lines of JSON on a stream socket (no SOCK_SEQPACKET on macOS or Windows)."""
        self.sock, self.spawned = portable.spawn_session(
            args, log_path=self.log_path, workdir=self.tmpdir, output_bytes=self.limits.output_bytes)
        self.pid, self.pidfd = self.spawned.pid, None
        self._lines = portable.Lines(self.sock)

    def submit(self, target: str | Path, exercises: list[str], *, events: Path, workdir: Path,
               limits: Limits | None = None, cpu: int | None = None, deadline: float | None = None,
               stall: float | None = None, on_event=None, on_wait=None) -> Grading:
        """Ask the session to grade ``target``; ``cpu``: the CPU its judge and worker run on (None: any);
        ``deadline``, ``stall``, ``on_event``, ``on_wait``: see grader.judge.handle.Grading."""
        with self._lock:
            rid = self._send(target, exercises, events=events, workdir=workdir, limits=limits or self.limits,
                             cpu=cpu)
            # opened now and kept: whatever a worker later puts under that name is not what is read
            grading = Grading(self, rid, exercises, open_events(events), deadline=deadline, stall=stall,
                              on_event=on_event, on_wait=on_wait)
            self.gradings[rid] = grading
        return grading

    def _send(self, target: str | Path, exercises: list[str], *, events: Path, workdir: Path, limits: Limits,
              cpu: int | None) -> int:
        self.next_id += 1
        workdir.mkdir(parents=True, exist_ok=True)
        os.close(create_new(events))  # a new file: a name a worker put there first is removed, not used
        request = json.dumps({
            "op": "grade", "id": self.next_id, "target": str(target), "exercises": list(exercises),
            "events": str(events), "workdir": str(workdir), "cpu_seconds": limits.timeout,
            "wall_seconds": limits.wall, "memory_bytes": limits.memory_bytes or 0, "max_strikes": limits.max_strikes,
            "budget_seconds": limits.budget or 0, "cpu": cpu,
        }).encode()
        try:
            if self._lines is not None:
                self.sock.sendall(request + b"\n")
            else:
                self.sock.send(request)
        except OSError:  # the session ended before it could serve (a collection error, say)
            self._ended()
        return self.next_id

    def _ended(self):
        if self.spawned is not None:
            how = portable.describe_returncode(self.spawned.wait())
        else:
            how = describe_status(self._status if self._status is not None else os.waitpid(self.pid, 0)[1])
        self.pid = None
        raise GradingError(f"pytest could not collect the graded tests ({how}):\n{_tail(self.log_path)[-3000:]}")

    def _gone(self, ready: list) -> bool:
        """Whether the session process has ended (its pidfd readable, or polled where there is none)."""
        if self.pidfd is not None:
            return self.pidfd in ready
        if self.spawned is not None:
            return self.spawned.poll() is not None
        if self.pid is None or sys.platform == "win32":  # (a forked session: never on Windows)
            return False
        done, status = os.waitpid(self.pid, os.WNOHANG)  # our own child: no /proc needed to know it ended
        if done:
            self._status = status
        return bool(done)

    def poll(self, timeout: float) -> list[Grading]:
        """Read the replies that arrive within ``timeout`` seconds and give each to its Grading; returns those
        that finished. GradingError when the session itself ended."""
        finished = []
        with self._lock:
            for reply in self.replies(timeout):
                grading = self.gradings.get(reply.get("started") or reply.get("done"))
                if grading is None:
                    continue
                grading._take(reply)
                if grading.done():
                    del self.gradings[grading.id]
                    finished.append(grading)
        return finished

    def wait(self, gradings, timeout: float) -> list[Grading]:
        """Like ``concurrent.futures.wait(..., FIRST_COMPLETED)``: poll once, enforce the deadlines of
        ``gradings``, and return those of them that are done."""
        self.poll(timeout)
        now = time.monotonic()
        for grading in gradings:
            grading._check_time(now)
        return [grading for grading in gradings if grading.done()]

    def end(self, grading: Grading) -> None:
        """The portable path's stop: ``grading``'s judge is the session itself, so the session and everything
        below it (spawned workers, what they started) go. ``grading`` ends stopped; the others sent to this
        session never started, and never will (their sender sends them to a new session)."""
        tree = self.reaper(self.pid) if self.reaper is not None else None  # before anything is killed
        kill(self.pid)
        self.close()
        if tree is not None:
            tree.reap(grace=0.0)  # its spawned workers have their own sessions and may be computing: they go now
        self.gradings.pop(grading.id, None)
        grading._finish(0)
        for other in self.gradings.values():
            other.abandon()
        self.gradings.clear()

    def replies(self, timeout: float) -> list[dict]:
        """Replies that arrived within ``timeout`` seconds; GradingError when the session itself ended."""
        if self._lines is not None:
            out = self._lines.read(timeout) or []
            if not out and self._gone([]):
                self._ended()
            return out
        if sys.platform != "linux":  # the forked session's socket (SOCK_SEQPACKET)
            raise OSError("the fork path runs on Linux only")
        ready, _, _ = select.select([self.sock, *([self.pidfd] if self.pidfd is not None else [])], [], [],
                                    timeout)
        out = []
        while self.sock in ready:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, ConnectionError):
                break
            if not data:
                break
            out.append(json.loads(data))
        if not out and self._gone(ready):
            self._ended()
        return out

    def close(self) -> None:
        try:
            self.sock.close()  # the session ends when its request socket closes
            if self.spawned is not None:
                try:
                    self.spawned.wait(5.0)
                except subprocess.TimeoutExpired:
                    self.spawned.kill()
                    self.spawned.wait()
            elif self.pid is not None:
                if self.pidfd is not None:
                    if select.select([self.pidfd], [], [], 5.0)[0] == []:
                        kill(self.pid)
                else:
                    deadline = time.monotonic() + 5.0
                    while self._status is None and not self._gone([]) and time.monotonic() < deadline:
                        time.sleep(portable.POLL_SECONDS)
                    if self._status is None:
                        kill(self.pid)
                if self._status is None:
                    os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)
            self.pid = self.pidfd = None




JudgeServer = JudgeSession  # the name before issue 25 (platforms/nbgrader/cell.py and older scripts)


def run_session(test_paths: list[Path], *, target: str | Path, rootdir: Path, exercises: list[str],
                limits: Limits | None = None, flop_counter: bool = False, on_progress=None) -> SessionResult:
    """Grade ``target`` once in a session of its own (grader.platforms.nbgrader.cell): kept for that caller;
    ``grading.grade`` is the path everything else takes."""
    if facilities.present().fork:
        preload(flop_counter=flop_counter)
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        session = JudgeSession(test_paths, rootdir=rootdir, tmpdir=Path(tmp), limits=limits)
        try:
            return follow(session.submit(target, exercises, events=Path(tmp) / "events.jsonl",
                                         workdir=Path(tmp) / "work", stall=limits.wall + HARD_GRACE,
                                         on_event=_progress(on_progress)))
        finally:
            session.close()


def follow(grading: Grading) -> SessionResult:
    """Wait for ``grading``; its records, or GradingError when its judge stopped before recording every test."""
    outcome = grading.result()
    result = outcome.session()
    if outcome.status != 0:
        result.log = _tail(grading.session.log_path)
        if result.incomplete():
            raise GradingError(f"the judge stopped ({describe_status(outcome.status)}):\n{result.log[-3000:]}")
    return result


def _progress(on_progress):
    if on_progress is None:
        return None
    return lambda events: report_progress(events, on_progress)


def _tail(path: Path, limit: int = 20000) -> str:
    try:
        data = read_regular(path, limit=limit, tail=True)  # beside the workers' folders: no link, no FIFO
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")
