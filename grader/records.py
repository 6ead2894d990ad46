"""Typed records of a grading run, built here and serialised to the results document in one place.

A ``TestRecord`` is what the judge learned about one test (it travels in the event stream as a JSON line); an
``ExerciseSummary`` is one exercise's row of the results document. ``Kind`` names every way a test can end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum


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

    def __str__(self) -> str:
        return self.value


STRIKE_KINDS = (Kind.TIMEOUT, Kind.CRASH)


class GradingError(RuntimeError):
    """Grading itself could not run (not the student's fault): the message says why."""  # what counts towards --grader-max-strikes


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
