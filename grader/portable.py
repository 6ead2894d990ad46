"""The portable path: processes, CPU time and waiting where the Linux facilities are missing (macOS, Windows, a
container that forbids some of them, or ``GRADER_WITHOUT=...``; see grader.facilities).

On Linux the judge session, each judge and each worker are forked from a parent that already imported torch
(milliseconds each). Where fork is absent (Windows) or unsafe after torch loaded the system frameworks (macOS),
this module starts fresh interpreters instead:

    grading parent ── spawn ──> judge session (imports torch, collects; grades each submission in its own
                                 process, one after the other: grader.judge.serve)
                                   └── spawn ──> worker (imports torch itself, ~2 s; grader.worker.spawned)

A spawned worker's start-up is never charged to a test: the judge measures its CPU time from the moment the
worker says hello, and does not count the wait for it against the wall-clock backstop. A spare worker is started
ahead of need (``Spares``), so that after a crash or a timeout the next test finds one already warm, and so that
the first worker's torch import overlaps the session's own collection.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

CPU_LIMIT_EXIT = 75  # a spawned worker's own CPU watch ended it (grader.worker.spawned); the judge says "timeout"


# ----------------------------------------------------------------------------------------------------------
# CPU time of another process
# ----------------------------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds (user + system, its threads and waited-for children) of process ``pid``.

    Where the ``proc`` facility is present: the process's own CPU clock (``clock_gettime`` on the clock id
    ``clock_getcpuclockid(pid)`` names: every thread, exited ones included, to the nanosecond) plus its
    waited-for children from ``/proc/<pid>/stat`` (one ``pread`` on a file kept open). The judge reads it twice
    per test and every 0.1 s while the worker computes. ``/proc/<pid>/stat`` alone counts in clock ticks of
    10 ms, so a test's share was rounded to 0 or 10 ms; it stays the fallback where the clock cannot be read.
    Elsewhere psutil (macOS, Windows, Linux without our /proc reading). ``available`` is False when neither works
    (no /proc at all): the spawned worker's own CPU watch then enforces the limit."""

    def __init__(self, pid: int, *, proc: bool) -> None:
        self.pid = pid
        self._fd: int | None = None
        self._psutil = None
        self._clock: int | None = None
        if proc and sys.platform == "linux":
            try:
                self._fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                self._ticks = os.sysconf("SC_CLK_TCK")
            except (OSError, AttributeError, ValueError):
                self._fd = None
            if self._fd is not None:
                self._clock = _process_clock(pid)
        if self._fd is None:
            self._psutil = _psutil_process(pid)

    @property
    def available(self) -> bool:
        return self._fd is not None or self._psutil is not None

    def seconds(self) -> float:
        if self._fd is not None and sys.platform == "linux":
            try:
                fields = os.pread(self._fd, 1024, 0).rsplit(b")", 1)[1].split()
            except (OSError, ValueError, IndexError):
                return 0.0
            if self._clock is not None:
                try:  # utime, stime in ticks: read only for the children (cutime, cstime)
                    return time.clock_gettime(self._clock) + (int(fields[13]) + int(fields[14])) / self._ticks
                except (OSError, ValueError, IndexError):
                    self._clock = None  # gone, or not readable: the ticks from now on, for this process
            try:
                return sum(int(x) for x in fields[11:15]) / self._ticks
            except (ValueError, IndexError):
                return 0.0
        if self._psutil is not None:
            try:
                t = self._psutil.cpu_times()
            except Exception:  # noqa: BLE001 - gone, or not ours to read
                return 0.0
            return t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
        return 0.0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._psutil = None


def _process_clock(pid: int) -> int | None:
    """The id of process ``pid``'s CPU-time clock, as Linux's ``clock_getcpuclockid`` computes it (the pid, its
    bits inverted and shifted, and 2 for the clock that sums every thread's run time), or None where it cannot be
    read. Python has ``time.clock_gettime`` but not ``clock_getcpuclockid``."""
    if sys.platform != "linux":  # the encoding is Linux's (and Windows has no clock_gettime)
        return None
    clock = ((~pid) << 3) | 2
    try:
        time.clock_gettime(clock)
    except (OSError, OverflowError, AttributeError):
        return None
    return clock


def _psutil_process(pid: int):
    try:
        import psutil

        process = psutil.Process(pid)
        process.cpu_times()  # fails here, not on every later read, where the platform will not tell
        return process
    except Exception:  # noqa: BLE001 - no psutil, or it cannot read this process (Linux with no /proc)
        return None


# ----------------------------------------------------------------------------------------------------------
# spawned workers
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Spawned:
    """A worker interpreter started by ``spawn_worker``: its process and the judge's end of its socket."""

    popen: subprocess.Popen
    sock: socket.socket

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        if os.name == "posix":  # its own process group (start_new_session): what the student started goes too
            from grader.processes import kill

            kill(self.popen.pid, group=True)
        try:
            self.popen.kill()  # SIGKILL on Unix, TerminateProcess on Windows
            self.popen.wait(2.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def ended(self, timeout: float) -> str:
        """How the process ended, in words ('exit code 3', 'killed by signal SIGSEGV'), waiting up to ``timeout``."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return "it stopped"
        return describe_returncode(code)


def describe_returncode(code: int) -> str:
    """A ``Popen.returncode`` in the words of grader.processes.describe_status."""
    if code < 0:
        import signal

        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _connected_pair() -> tuple[socket.socket, socket.socket | None, dict]:
    """(ours, theirs or None, how the child finds its end). A Unix socket pair inherited by the child where the
    platform has one; else (Windows) a loopback listener that the child connects to and proves with a token."""
    if hasattr(socket, "AF_UNIX") and os.name == "posix" and not _FORCE_TCP:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return ours, theirs, {"fd": theirs.fileno()}
    listener = socket.create_server(("127.0.0.1", 0))
    return listener, None, {"port": listener.getsockname()[1], "token": secrets.token_hex(16)}


_FORCE_TCP = os.environ.get("GRADER_WORKER_TCP") == "1"  # the project tests take Windows's way on Linux


def spawn_worker(cwd: str) -> tuple[subprocess.Popen, socket.socket, dict]:
    """Start ``python -m grader.worker.spawned`` (it imports torch, then waits for its configuration).

    Returns the process, our end (a listener to ``accept_worker`` on, on Windows) and the address it was given.

    ``cwd`` must exist now, but the interpreter starts in the project root, not there: a spare outlives the
    submission it was started beside, whose folder is removed when that submission is done, and an interpreter
    whose folder was removed fails in ``import torch`` (the next submission's first test then lost its worker).
    The worker moves to its own private folder once configured (grader.worker.spawned)."""
    if not os.path.isdir(cwd):
        raise FileNotFoundError(cwd)
    ours, theirs, address = _connected_pair()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [_project_root(), env.get("PYTHONPATH", "")] if p)
    kwargs: dict = {"stdin": subprocess.DEVNULL, "cwd": _project_root(), "env": env}
    if theirs is not None:
        kwargs["pass_fds"] = (theirs.fileno(),)
        kwargs["start_new_session"] = True  # its own process group: the judge kills everything it starts
    else:
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    popen = subprocess.Popen([sys.executable, "-m", "grader.worker.spawned", json.dumps(address)], **kwargs)
    if theirs is not None:
        theirs.close()
    return popen, ours, address


def accept_worker(listener: socket.socket, address: dict, timeout: float) -> socket.socket:
    """The connected socket of a worker that got ``address`` (Windows's way); OSError when none proves itself."""
    listener.settimeout(timeout)
    try:
        conn, _ = listener.accept()
    finally:
        listener.close()
    conn.settimeout(timeout)
    token = b""
    while len(token) < len(address["token"]):
        chunk = conn.recv(len(address["token"]) - len(token))
        if not chunk:
            break
        token += chunk
    if not secrets.compare_digest(token, address["token"].encode()):
        conn.close()
        raise OSError("a connection without the worker's token")
    conn.settimeout(None)
    return conn


def connect_back(address: dict) -> socket.socket:
    """The worker's side of ``_connected_pair``."""
    if "fd" in address:
        return socket.socket(fileno=int(address["fd"]))
    sock = socket.create_connection(("127.0.0.1", int(address["port"])))
    sock.sendall(address["token"].encode())
    return sock


def spawn_session(args: list[str], *, log_path, workdir, output_bytes: int) -> tuple[socket.socket, subprocess.Popen]:
    """Start the judge session as ``python -m grader.judge.entry CONFIG``; returns our end of its request stream."""
    ours, theirs, address = _connected_pair()
    config = {"args": args, "log": str(log_path), "workdir": str(workdir), "output_bytes": output_bytes,
              "address": address}
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [_project_root(), env.get("PYTHONPATH", "")] if p)
    kwargs: dict = {"stdin": subprocess.DEVNULL, "env": env}
    if theirs is not None:
        kwargs["pass_fds"] = (theirs.fileno(),)
        kwargs["start_new_session"] = True
    sys.stdout.flush()
    sys.stderr.flush()
    popen = subprocess.Popen([sys.executable, "-m", "grader.judge.entry", json.dumps(config)], **kwargs)
    if theirs is not None:
        theirs.close()
    else:
        ours = accept_worker(ours, address, 120.0)
    return ours, popen


class Lines:
    """JSON messages, one per line, on a stream socket: the portable path's judge session protocol."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, message: dict) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def read(self, timeout: float | None) -> list[dict] | None:
        """The messages that arrived within ``timeout`` seconds (None: until some data); None at the end."""
        import select

        ready, _, _ = select.select([self.sock], [], [], timeout)
        if ready:
            try:
                data = self.sock.recv(1 << 20)
            except (BlockingIOError, ConnectionError):
                data = b""
            if not data:
                return None
            self._buffer += data
        *whole, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in whole if line.strip()]


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Spares:
    """Worker interpreters started ahead of need, each importing torch while the judge does something else.

    ``take()`` hands one over and starts its replacement, so a worker lost to a crash or a timeout is replaced
    by one that is already warm. One per judge process (a module-level instance, ``SPARES``)."""

    def __init__(self) -> None:
        self._ready: list[tuple[subprocess.Popen, socket.socket, dict]] = []
        self._cwd: str | None = None

    def prepare(self, cwd: str) -> None:
        """Start a spare now (at most one waits), if none is waiting."""
        self._cwd = cwd
        self._ready = [s for s in self._ready if s[0].poll() is None]
        if not self._ready:
            self._ready.append(spawn_worker(cwd))

    def take(self, cwd: str) -> tuple[subprocess.Popen, socket.socket, dict]:
        self._ready = [s for s in self._ready if s[0].poll() is None]
        spare = self._ready.pop(0) if self._ready else spawn_worker(cwd)
        self._ready.append(spawn_worker(cwd))
        return spare

    def close(self) -> None:
        for popen, sock, _ in self._ready:
            popen.kill()
            sock.close()
            try:
                popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._ready.clear()


SPARES = Spares()


# ----------------------------------------------------------------------------------------------------------
# waiting on processes without pidfds
# ----------------------------------------------------------------------------------------------------------

POLL_SECONDS = 0.02  # how often a process without a pidfd is checked while waiting for it


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie counts as ended), through psutil where it can tell, else signal 0."""
    try:
        import psutil

        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - no psutil, no /proc, or the process just went
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def wait_pids(pids: list[int], seconds: float) -> list[int]:
    """Poll until every pid in ``pids`` has ended or ``seconds`` passed; returns the pids still running."""
    deadline = time.monotonic() + seconds
    left = [p for p in pids if pid_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        left = [p for p in left if pid_alive(p)]
    return left


def children_of(pid: int) -> list[int]:
    """Every process below ``pid``, through psutil (no /proc of our own to read)."""
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001
        return []
