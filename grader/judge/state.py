"""The judge's state, in one place: one ``JudgeState`` under one StashKey of the pytest config.

The hooks (grader.judge.plugin) and the serving loop (grader.judge.serve) both read and write it; a serving
session grades many submissions in turn, so what one submission leaves here is cleared by ``end_submission``
before the next (a forked judge takes its copy with it when it exits).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from grader import limits

if TYPE_CHECKING:
    from grader.worker.client import WorkerClient


@dataclass
class JudgeState:
    client: WorkerClient | None = None  # the worker of the submission being graded (the `student` fixture's)
    zygote: tuple[Any, Any] = (None, None)  # (pid, control socket) of the zygote shared by a session's judges
    # With max_strikes N > 0, after N timeouts or crashes in one exercise its remaining tests are not run: quick
    # feedback for a student with an endless loop (`make grade` uses 2). Final grading leaves it at 0, so every
    # test is run and a loop in one function costs only the tests that call it.
    max_strikes: int = 0
    strikes: dict[str, int] = field(default_factory=dict)  # exercise -> tests that timed out or crashed the worker
    reports: dict[str, list[pytest.TestReport]] = field(default_factory=dict)  # nodeid -> its reports so far
    passed: dict[str, bool] = field(default_factory=dict)  # nodeid -> passed on its own (the gates' verdicts)
    protections: dict = field(default_factory=dict)  # the worker's confinement and count, last said in the events
    events_fd: int | None = None  # where emit writes (--grader-events, or the file a serving request names)
    cpu_seconds: float = limits.CPU_SECONDS  # per-test limits of a judge's own client (and of the warm-up)
    wall_seconds: float = limits.WALL_SECONDS

    def emit(self, event: dict) -> None:
        """Write one event as one line with a single unbuffered write, so a crash never leaves half a record."""
        if self.events_fd is not None:
            os.write(self.events_fd, (json.dumps(event) + "\n").encode())

    def close_events(self) -> None:
        if self.events_fd is not None:
            os.close(self.events_fd)
        self.events_fd = None

    def end_submission(self, items: list[pytest.Item]) -> None:
        """Forget what grading one submission left here: its reports, the confinement it reported, and the output
        pytest keeps on each item (none of it may carry over to the next submission's record)."""
        self.reports.clear()
        self.passed.clear()
        self.protections = {}  # each judge reports its own worker's confinement
        for item in items:
            item._report_sections = []


STATE = pytest.StashKey[JudgeState]()


def state_of(config: pytest.Config) -> JudgeState:
    return config.stash[STATE]
