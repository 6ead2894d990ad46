"""Stopping a batch cleanly: SIGINT and SIGTERM become a request to stop, and nothing the batch started outlives it.

The default SIGTERM ends the batch parent at once: no gradebook is written, ``OUT/.sandbox`` stays, and the judge
session only notices when its socket closes. ``StopSignals`` turns SIGINT and SIGTERM into a flag that the
scheduler's loop reads (a second signal while it is not yet stopping raises ``KeyboardInterrupt``, for a batch
stuck before its loop). The scheduler then kills its running judges and closes the judge session; ``ProcessTree``
holds a pidfd on every process below the session, taken before anything is killed, waits until each has gone and
kills what has not, so that when the batch returns no worker or process of a submission is left.

Where pidfds or /proc are missing (macOS, Windows, ``GRADER_WITHOUT=pidfd,proc``: grader.facilities), the tree is
read with psutil and held as ``psutil.Process`` objects, which check a process's start time before they signal it
(so a pid the system reused is never killed); without psutil either, the pids are polled (grader.portable).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time

from grader import facilities, portable
from grader.processes import kill

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The batch stopped on a signal after writing its gradebook; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class StopSignals:
    """Within ``with StopSignals() as stop:``, SIGINT/SIGTERM set ``stop.signum``. Only in the main thread of the
    process that entered it: a child forked inside (the judge session) gets the default action back."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.stopping = False  # set once the batch is closing: later signals are ignored, the close is quick
        self._owner = os.getpid()
        self._saved: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if os.getpid() != self._owner:  # a forked child that has not reset its handlers: behave as the default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.signum is not None and not self.stopping:
            raise KeyboardInterrupt  # a second signal: stop waiting for the loop
        self.signum = self.signum or signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._saved.items():
            signal.signal(sig, previous)
        self._saved.clear()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), as /proc shows them now (psutil without /proc)."""
    if not facilities.present().proc:
        return portable.children_of(pid)
    children, found, stack = _children_map(), [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class ProcessTree:
    """Every process of ``root`` and below it, taken now; ``reap()`` waits for all to go, then kills the rest.

    A pidfd per process where the pidfd facility is present, else a ``psutil.Process`` per process (or, with no
    psutil, its pid)."""

    def __init__(self, root: int | None) -> None:
        self.pidfds: dict[int, int] = {}
        self.others: dict[int, object] = {}  # pid -> psutil.Process, or None where psutil cannot hold it
        pids = [root, *descendants(root)] if root else []
        if facilities.present().pidfd and sys.platform == "linux":
            for pid in pids:
                try:
                    self.pidfds[pid] = os.pidfd_open(pid)
                except OSError:  # gone already
                    pass
            return
        for pid in pids:
            self.others[pid] = _held(pid)

    def reap(self, grace: float = 5.0) -> list[int]:
        """Wait up to ``grace`` seconds for every process to end, SIGKILL the rest; returns the pids killed."""
        if not self.pidfds or sys.platform != "linux":  # (the guard tells the type checker: pidfds are Linux's)
            return self._reap_others(grace)
        pending = _wait(dict(self.pidfds), grace)
        killed = []
        for pid, fd in pending.items():
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        _wait(pending, 2.0)  # a killed process is gone within milliseconds
        for fd in self.pidfds.values():
            os.close(fd)
        self.pidfds.clear()
        return killed

    def _reap_others(self, grace: float) -> list[int]:
        held = {pid: p for pid, p in self.others.items() if p is not None}
        bare = [pid for pid, p in self.others.items() if p is None]
        self.others.clear()
        killed = []
        alive = _wait_held(list(held.values()), grace)
        for process in alive:
            try:
                process.kill()  # psutil checks the start time first: never a reused pid
                killed.append(process.pid)
            except Exception:  # noqa: BLE001 - psutil.Error: gone meanwhile
                pass
        _wait_held(alive, 2.0)
        for pid in portable.wait_pids(bare, grace):
            kill(pid)
            killed.append(pid)
        portable.wait_pids(bare, 2.0)
        return killed


def _wait_held(processes: list, seconds: float) -> list:
    """Poll until every ``psutil.Process`` has ended (a zombie has: a container's init may never reap it, and
    psutil's own wait would wait for that) or ``seconds`` passed; returns those still running."""
    deadline = time.monotonic() + seconds
    left = [p for p in processes if _running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(portable.POLL_SECONDS)
        left = [p for p in left if _running(p)]
    return left


def _running(process) -> bool:
    try:
        import psutil

        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - gone
        return False


def _held(pid: int):
    """A ``psutil.Process`` for ``pid``, or None (no psutil, or it cannot read the process table here)."""
    try:
        import psutil

        return psutil.Process(pid)
    except Exception:  # noqa: BLE001 - no psutil, gone already, or no /proc for it to read
        return None


def _wait(pending: dict[int, int], seconds: float) -> dict[int, int]:
    """Wait until every pidfd in ``pending`` (pid -> fd) is readable (its process ended); returns those left."""
    deadline = time.monotonic() + seconds
    while pending:
        left = deadline - time.monotonic()
        ready, _, _ = select.select(list(pending.values()), [], [], max(left, 0))
        pending = {pid: fd for pid, fd in pending.items() if fd not in ready}
        if left <= 0:
            break
    return pending
