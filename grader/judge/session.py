"""Run the judge: a pytest session with the grading plugin, forked from a parent that imported torch once.

The judge never runs student code (grader.judge: the worker does), so it does not crash because of it: the
parent starts it, asks it to grade one submission or many (a batch), and reads the event stream it writes (one
line per collected suite, test start and test result). The judge collects the tests once and forks a judge per
submission (grader.judge.serve), so a batch pays for imports and collection once.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import select
import socket
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader import facilities, limits as caps, portable
from grader.processes import describe_status, kill, run_child  # noqa: F401 - describe_status is re-exported
from grader.records import GradingError, TestRecord  # noqa: F401 - GradingError is re-exported
from grader.untrusted_paths import create_new, open_regular, read_regular


GRADER_DIR = Path(__file__).resolve().parents[1]  # grader/judge/ -> grader/
PYTEST_INI = GRADER_DIR / "graded_pytest.ini"
DEFAULT_TIMEOUT = caps.CPU_SECONDS  # CPU seconds the student code may use per test (the reference needs well under 1 s)
DEFAULT_WALL = caps.WALL_SECONDS  # wall-clock backstop per test, for code that sleeps or blocks rather than computes
HARD_GRACE = 10.0  # extra seconds before the parent kills a judge that stopped reporting (a bug of ours)
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


@dataclass
class SessionResult:
    tests: list[dict] = field(default_factory=list)  # describe_test() dicts, in collection order
    records: dict[str, TestRecord] = field(default_factory=dict)  # nodeid -> what happened in that test
    log: str = ""  # what the child printed outside of tests (truncated)
    restarts: int = 0  # judge restarts: none since the judge runs no student code (kept in the document)
    protections: dict = field(default_factory=dict)  # which confinement the worker had (grader.worker.confine)
    workers: int = 0  # worker processes started (one, plus one after each crash or timeout)


_PRELOADED = False
_FLOPS_WARM = False


def keep_dynamo_unloaded() -> int:
    """Stop torch from importing its compiler (torch._dynamo, ~0.7 s of CPU) on the first FLOP count.

    torch wraps some functions in ``torch._disable_dynamo``, among them every TorchDispatchMode's
    ``__torch_dispatch__`` (FlopCounterMode's, in the judge's oracles and in ex4's student code) and the
    reference implementations of the meta device's ops (``torch._refs``). The wrapper imports torch._dynamo on
    its first call, to build a version of the function that the compiler skips, and caches it on the function as
    ``__dynamo_disable``. Grading never compiles, so each of these functions is cached as its own skipped
    version: the first call runs it directly, as every later call would. Other wrappers (the optimizers', say)
    are left alone, and so are wrappers made later (a TorchDispatchMode subclass defined by a test): slower,
    never different. Must run before ``gc.freeze()``, which hides objects from ``gc.get_referrers``. Returns how
    many functions were set: 0 if torch's internals change (still correct, slower)."""
    import types

    try:
        import torch._compile

        inner = next(c for c in torch._compile._disable_dynamo.__code__.co_consts
                     if isinstance(c, types.CodeType) and c.co_name == "inner")
        slot = inner.co_freevars.index("fn")
        done = 0
        for wrapper in gc.get_referrers(inner):  # the functions whose code is ``inner``: every wrapper made so far
            if type(wrapper) is not types.FunctionType or wrapper.__code__ is not inner:
                continue
            fn = wrapper.__closure__[slot].cell_contents
            ours = fn.__name__ == "__torch_dispatch__" or (fn.__module__ or "").startswith("torch._refs")
            if ours and getattr(fn, "__dynamo_disable", None) is None:
                fn.__dynamo_disable = fn
                done += 1
        return done
    except Exception:  # noqa: BLE001 - torch's internals changed: the first count imports the compiler, as before
        return 0


def preload(*, flop_counter: bool = False) -> None:
    """Import the heavy modules once in this process so that forked children start in milliseconds.

    ``flop_counter``: also what the first FLOP count on the meta device imports (torch's symbolic shapes, with
    sympy: ~0.45 s of CPU), which the judge and the worker would otherwise each import (ex4)."""
    global _PRELOADED, _FLOPS_WARM
    if not _PRELOADED:
        import hypothesis  # noqa: F401
        import numpy  # noqa: F401
        import pytest  # noqa: F401
        import torch
        import torch.utils.flop_counter  # noqa: F401 - its FlopCounterMode is one of the wrappers set below

        import grader.worker.client  # noqa: F401
        import grader.judge.plugin  # noqa: F401
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
        keep_dynamo_unloaded()
        _PRELOADED = True
    if flop_counter and not _FLOPS_WARM:
        import torch.fx.experimental.symbolic_shapes  # noqa: F401 - torch._check on a meta tensor imports it
        _FLOPS_WARM = True
    # keep the parent's objects out of the children's collections (no copy-on-write storm); no collection first:
    # it finds a few dozen objects after the imports and costs ~0.1 s of every run
    gc.freeze()


def enter_session(log_path: Path, workdir: Path, output_bytes: int) -> None:
    """Set up the judge session's process (forked, or spawned by grader.judge.entry)."""
    faulthandler.disable()  # a parent's faulthandler (pytest's) would dump our crashes onto its stderr
    os.chdir(workdir)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", closefd=False, errors="replace")  # the parent's may be a capture object
    sys.stderr = open(2, "w", closefd=False, errors="replace")
    if sys.platform != "win32" and facilities.present().rlimits:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    sys.dont_write_bytecode = True  # the judge never leaves compiled tests behind


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


class JudgeServer:
    """A judge session (pytest with the grading plugin, in a forked child) that has collected ``test_paths`` once
    and grades any number of submissions, each in a judge forked from it (grader.judge.serve)."""

    def __init__(self, test_paths: list[Path], *, rootdir: Path, tmpdir: Path, limits: Limits,
                 extra_args: tuple[str, ...] = (), warm_with: Path | None = None,
                 warm_exercises: list[str] | None = None) -> None:
        self.tmpdir = tmpdir
        self.limits = limits
        self.log_path = tmpdir / "judge.log"
        self.next_id = 0
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
               limits: Limits | None = None, cpu: int | None = None) -> int:
        """Ask the session to grade ``target``; ``cpu``: the CPU its judge and worker run on (None: any)."""
        limits = limits or self.limits
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


def run_session(
    test_paths: list[Path],
    *,
    target: str | Path,
    rootdir: Path,
    exercises: list[str],
    limits: Limits | None = None,
    extra_args: tuple[str, ...] = (),
    flop_counter: bool = False,
    on_progress=None,
    server: JudgeServer | None = None,
) -> SessionResult:
    """Grade ``target`` with the graded tests in ``test_paths``; returns every test's record.

    ``server``: a session that has already collected ``test_paths`` and stays open (``grader.watch`` keeps one
    for all the saves of a sitting); by default a session is started for this one submission and closed."""
    if facilities.present().fork:  # spawned, the judge session imports torch itself: nothing to share here
        preload(flop_counter=flop_counter)
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tmpdir = Path(tmp)
        if server is not None:
            events_path = tmpdir / "events.jsonl"
            server.submit(target, exercises, events=events_path, workdir=tmpdir / "work", limits=limits)
            return follow(server, events_path, limits, on_progress)
        server = JudgeServer(test_paths, rootdir=rootdir, tmpdir=tmpdir, limits=limits, extra_args=extra_args)
        try:
            events_path = tmpdir / "events.jsonl"
            server.submit(target, exercises, events=events_path, workdir=tmpdir / "work")
            return follow(server, events_path, limits, on_progress)
        finally:
            server.close()


def follow(server: JudgeServer, events_path: Path, limits: Limits, on_progress=None) -> SessionResult:
    """Wait for the one submission in flight on ``server``, reading its events; returns its records."""
    result = SessionResult()
    events: list[dict] = []
    offset, judge_pid, status = 0, None, None
    last_event = time.monotonic()
    fd = open_events(events_path)
    try:
        while status is None:
            for reply in server.replies(0.05):
                judge_pid = reply.get("pid", judge_pid)
                status = reply.get("status", status)
            count = len(events)
            offset = read_events(fd, offset, events)
            if len(events) != count:
                last_event = time.monotonic()
                if on_progress:
                    _report_progress(events, on_progress)
            elif judge_pid and time.monotonic() - last_event > limits.wall + HARD_GRACE:
                # the judge bounds every wait on student code, so only a bug of ours gets here
                kill(judge_pid)
                last_event = time.monotonic()
        read_events(fd, offset, events)
    finally:
        os.close(fd)
    absorb(result, events)
    if status != 0:
        result.log = _tail(server.log_path)
        missing = [t["nodeid"] for t in result.tests if t["nodeid"] not in result.records]
        if not result.tests or missing:
            raise GradingError(f"the judge stopped ({describe_status(status)}):\n{result.log[-3000:]}")
    return result


def _tail(path: Path, limit: int = 20000) -> str:
    try:
        data = read_regular(path, limit=limit, tail=True)  # beside the workers' folders: no link, no FIFO
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def _report_progress(events: list[dict], on_progress) -> None:
    tests = next((e["tests"] for e in events if e["event"] == "collected"), [])
    done = sum(1 for e in events if e["event"] == "result")
    current = next((e["nodeid"] for e in reversed(events) if e["event"] == "start"), "")
    on_progress(done, len(tests), current)


def open_events(path: Path) -> int:
    """A descriptor of the events file ``submit`` made, for read_events. Opened at once and kept, the file read is
    the one the parent made, whatever a worker without Landlock later puts under its name (a link, a FIFO, a
    forged copy): the judge opened it before any worker of its submission ran."""
    return open_regular(path)


def _read_from(fd: int, offset: int) -> bytes:
    """Everything in the file behind ``fd`` from ``offset`` on."""
    parts = []
    if sys.platform != "linux":  # no pread on Windows: seek, then read (the descriptor is ours alone)
        os.lseek(fd, offset, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    while chunk := os.pread(fd, 1 << 20, offset + sum(map(len, parts))):
        parts.append(chunk)
    return b"".join(parts)


def read_events(source: Path | int, offset: int, into: list[dict]) -> int:
    """Append the whole event lines past ``offset`` to ``into``; returns the new offset. ``source``: a descriptor
    from open_events, or a path, read only as a regular file (never through a link, never from a FIFO)."""
    if isinstance(source, int):
        data = _read_from(source, offset)
    else:
        data = read_regular(source, offset=offset)
    end = data.rfind(b"\n") + 1  # only whole lines
    for line in data[:end].splitlines():
        if line.strip():
            into.append(json.loads(line))
    return offset + end


def absorb(result: SessionResult, events: list[dict]) -> None:
    """Take one judge's events into ``result`` (the judge is ours: its events are trusted as written)."""
    for event in events:
        kind = event["event"]
        if kind == "collected":
            result.tests = list(event["tests"])
        elif kind == "result":
            result.records[event["nodeid"]] = TestRecord.from_event(event)
        elif kind == "sandbox":
            result.protections = dict(event["protections"])
            result.workers = max(result.workers, int(event.get("workers", 0)))
