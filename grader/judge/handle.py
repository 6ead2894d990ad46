"""The grading handle: what submitting a submission to a judge session (grader.judge.session) gives back.

Like a ``concurrent.futures.Future``, a ``Grading`` owns what belongs to one submission: its replies from the
session ("started" with the judge's pid, then "done" with its wait status), its events file (opened when it was
submitted, read through that descriptor only: grader.judge.events), its deadline, how it is stopped, and its
``Outcome`` (grader.records). Whoever waits on it (``grade``, ``watch``, a batch, a Dask worker) drives the
session through ``result()`` or ``session.wait(...)``; nobody else reads replies or kills judges.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from grader.judge import events as event_stream
from grader.processes import kill
from grader.records import Outcome

HARD_GRACE = 10.0  # extra seconds before the parent kills a judge that stopped reporting (a bug of ours)


class Grading:
    """One submission in a judge session. ``deadline``: seconds from its start (the "started" reply, not while
    the session warmed up) after which it is stopped; ``stall``: seconds without a new event after which its
    judge is killed (the judge bounds every wait on student code, so only a bug of ours gets there);
    ``on_event``: called with every event as it arrives (progress lines); ``on_wait``: called with the time at
    every poll while it runs (a notice for a test that has run long)."""

    def __init__(self, session, rid: int, exercises: list[str], events_fd: int, *, deadline: float | None = None,
                 stall: float | None = None, on_event: Callable[[list[dict]], None] | None = None,
                 on_wait: Callable[[float], None] | None = None) -> None:
        self.session, self.id, self.exercises = session, rid, list(exercises)
        self.judge_pid: int | None = None
        self.submitted = self.started = time.monotonic()
        self.status: int | None = None
        self.stopped = False
        self.deadline, self.stall, self.on_event, self.on_wait = deadline, stall, on_event, on_wait
        self._fd: int | None = events_fd
        self._events: list[dict] = []
        self._offset = 0
        self._last_event = time.monotonic()
        self._outcome: Outcome | None = None

    def done(self) -> bool:
        return self.status is not None

    def running(self) -> bool:
        """The judge has started (its deadline counts from then)."""
        return self.judge_pid is not None and self.status is None

    def result(self, poll: float = 0.05) -> Outcome:
        """Wait for the grading to end (enforcing its deadline and stall limit) and return how it ended."""
        while not self.done():
            self.session.poll(poll)
            self._check_time(time.monotonic())
        return self.outcome()

    def outcome(self) -> Outcome:
        """How a finished grading ended: its wait status and every event its judge wrote."""
        if self._outcome is None:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    self._offset = event_stream.read_events(fd, self._offset, self._events)
                except OSError:
                    pass
                finally:
                    os.close(fd)
            self._outcome = Outcome(status=self.status or 0, events=self._events, stopped=self.stopped,
                                    elapsed=self.ended - self.started)
        return self._outcome

    def stop(self) -> None:
        """Stop at the deadline: kill the judge (its worker's launcher sees the judge go and kills the worker).
        On the portable path the judge is the session itself: the session ends (grader.judge.session)."""
        if self.stopped or self.done():
            return
        self.stopped = True
        if self.session.spawned is not None:
            self.session.end(self)
        elif self.judge_pid:
            kill(self.judge_pid)

    def abandon(self) -> None:
        """The session went before this grading ended: close its events file (nothing more will come)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- driven by the session --------------------------------------------------------------------------------

    def _take(self, reply: dict) -> None:
        if "pid" in reply:
            self.judge_pid = reply["pid"]
            self.started = time.monotonic()  # its time limit starts now, not while the session warmed up
        if "status" in reply:
            self._finish(reply["status"])

    def _finish(self, status: int) -> None:
        self.ended = time.monotonic()
        self.status = status

    def _check_time(self, now: float) -> None:
        if self.done():
            return
        if self.stall is not None or self.on_event is not None:
            self._follow(now)
        if self.on_wait is not None:
            self.on_wait(now)
        if (self.deadline is not None and self.judge_pid and not self.stopped
                and now - self.started > self.deadline):
            self.stop()

    def _follow(self, now: float) -> None:
        """Read the events that arrived; kill a judge silent for longer than ``stall``."""
        count = len(self._events)
        if self._fd is not None:
            self._offset = event_stream.read_events(self._fd, self._offset, self._events)
        if len(self._events) != count:
            self._last_event = now
            if self.on_event is not None:
                self.on_event(self._events)
        elif self.stall is not None and self.judge_pid and now - self._last_event > self.stall:
            kill(self.judge_pid)
            self._last_event = now
