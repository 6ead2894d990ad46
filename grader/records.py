"""Typed records of a grading run, built here and serialised to the results document in one place.

A ``TestRecord`` is what the judge learned about one test (it travels in the event stream as a JSON line); an
``ExerciseSummary`` is one exercise's row of the results document. ``Kind`` names every way a test can end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum

from grader.processes import describe_status


class Kind(str, Enum):  # a str, so it compares and serialises as its value (Python 3.10 has no StrEnum)
    PASSED = "passed"
    FAILED = "failed"  # an assertion of the test failed: the answer was wrong
    ERROR = "error"  # the student code raised
    NOT_IMPLEMENTED = "not_implemented"  # the stub's NotImplementedError
    TIMEOUT = "timeout"  # CPU limit, or the wall-clock backstop (then TestRecord.backstop)
    CRASH = "crash"  # the worker died: os._exit, a signal, the memory limit
    EXIT = "exit"  # sys.exit() in a call
    CUT = "cut"  # not run: the exercise already timed out or crashed too often (quick feedback only)
    SKIPPED = "skipped"  # the code skipped or xfailed the test: never graded as passed
    NOT_GRADED = "not_graded"  # the exercise's file was missing, ambiguous or undecodable
    NOT_RUN = "not_run"  # no record at all
    HELD_BACK = "held_back"  # passed alone, but counts only once its gate passes (tests/points.json "held_back")

    def __str__(self) -> str:
        return self.value


STRIKE_KINDS = (Kind.TIMEOUT, Kind.CRASH)  # what counts towards --grader-max-strikes


class GradingError(RuntimeError):
    """Grading itself could not run (not the student's fault): the message says why."""


@dataclass
class TestRecord:
    nodeid: str
    outcome: str = "failed"  # "passed" or "failed"
    kind: Kind = Kind.NOT_RUN
    reason: str = ""
    longrepr: str = ""
    output: str = ""
    duration: float = 0.0  # wall-clock seconds of setup, call and teardown
    cpu: float = 0.0  # CPU seconds of the judge and the worker during the test (what the grading costs)
    backstop: bool = False  # stopped by the wall-clock backstop, not by its own CPU use: to be re-graded

    __test__ = False  # not a pytest test class, whatever its name

    def to_event(self) -> dict:
        # every field is a str, a number or a bool: no deep copy (asdict's) needed, and the judge writes one per test
        return {"event": "result", **{f.name: getattr(self, f.name) for f in fields(self)}, "kind": self.kind.value}

    @classmethod
    def from_event(cls, event: dict) -> "TestRecord":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in event.items() if k in known}
        values["kind"] = Kind(values.get("kind", Kind.NOT_RUN))
        return cls(**values)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


@dataclass
class ExerciseSummary:
    id: str
    name: str
    title: str
    score: float = 0.0
    max_score: float = 0.0
    visible_score: float = 0.0
    visible_max: float = 0.0
    hidden_score: float | None = 0.0
    hidden_max: float = 0.0
    hidden_run: bool = False
    problem: str | None = None  # why the exercise was not graded at all (missing file...)

    @classmethod
    def empty(cls, ex: str, meta: dict, *, hidden_run: bool, problem: str | None = None) -> "ExerciseSummary":
        """An exercise that earned nothing (not graded, or the submission was ungradable)."""
        return cls(id=ex, name=meta["name"], title=meta["title"], max_score=float(meta["visible"] + meta["hidden"]),
                   visible_max=float(meta["visible"]), hidden_score=0.0 if hidden_run else None,
                   hidden_max=float(meta["hidden"]), hidden_run=hidden_run, problem=problem)

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.problem is None:
            del out["problem"]
        return out


@dataclass
class SessionResult:
    """One submission's grading as the judge reported it: its tests and what happened in each."""

    tests: list[dict] = field(default_factory=list)  # describe_test() dicts, in collection order
    records: dict[str, TestRecord] = field(default_factory=dict)  # nodeid -> what happened in that test
    log: str = ""  # what the child printed outside of tests (truncated)
    restarts: int = 0  # judge restarts: none since the judge runs no student code (kept in the document)
    protections: dict = field(default_factory=dict)  # which confinement the worker had (grader.worker.confine)
    workers: int = 0  # worker processes started (one, plus one after each crash or timeout)

    def absorb(self, events: list[dict]) -> None:
        """Take one judge's events (the judge is ours: its events are trusted as written)."""
        for event in events:
            kind = event["event"]
            if kind == "collected":
                self.tests = list(event["tests"])
            elif kind == "result":
                self.records[event["nodeid"]] = TestRecord.from_event(event)
            elif kind == "sandbox":
                self.protections = dict(event["protections"])
                self.workers = max(self.workers, int(event.get("workers", 0)))

    def incomplete(self) -> bool:
        """THE rule: a judge that reported no tests, or not a record for every test it collected, did not
        grade (its end is an error of ours, never a score of 0)."""
        return not self.tests or any(t["nodeid"] not in self.records for t in self.tests)


@dataclass
class Outcome:
    """How one submission's grading ended, wherever it ran (a local batch, a Dask worker, ``grading.grade``):
    the judge's wait status and event stream, from which grader.results builds the document."""

    status: int = 0  # the judge's wait status (0: it ran every test)
    events: list[dict] = field(default_factory=list)
    elapsed: float = 0.0  # seconds of grading
    stopped: bool = False  # stopped at its deadline (--timeout-per-submission)
    lost: str = ""  # never graded, and why (an ungradable row): it stopped every grading machine it ran on
    error: str = ""  # the grading machinery failed, and why (an error row, graded again by the next run)

    def session(self) -> SessionResult:
        result = SessionResult()
        result.absorb(self.events)
        return result

    def problem(self, *, timeout: float | None = None) -> tuple[str, str] | None:
        """(status, reason) when this grading gives no grade, status "ungradable" (the submission's doing) or
        "error" (ours: graded again by the next run); None when it does. ``timeout``: the deadline it had."""
        if self.lost:
            return "ungradable", self.lost
        if self.error:
            return "error", f"grading failed (not the student's fault): {self.error}"
        if self.stopped:
            return "ungradable", f"timed out after {timeout or 0:g} s (the whole submission)"
        if self.status != 0 or self.session().incomplete():
            why = f"the judge stopped ({describe_status(self.status)})" if self.status else "the judge reported no tests"
            return "error", f"grading failed (not the student's fault): {why}"
        return None

    def to_plain(self) -> dict:
        """For Dask's transport (plain data only)."""
        return asdict(self)

    @classmethod
    def from_plain(cls, data: dict) -> "Outcome":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
