"""The course staff's adjustments: extensions, a late policy and per-student overrides, in one TOML file.

``python -m grader batch SUBMISSIONS --out OUT --adjustments FILE`` (default ``OUT/adjustments.toml`` when it
exists) reads it at every run, re-grading or not, and applies it to what the run writes: ``grades.csv`` (the
columns ``late``, ``penalty`` and ``adjusted_total``; the per-exercise scores and ``total`` stay as graded),
``feedback.md`` and so the Canvas and Moodle exports (which take ``adjusted_total``). The results documents are
never changed: the file is applied to them each time, so editing it and running again changes only what it says.

    [late]
    due = 2026-03-06T23:59:00      # the due date (a TOML date and time; with an offset, or the local time)
    per = "day"                    # the penalty is per day or per "hour" started after the due date
    penalty = 10                   # percent of the score taken off per day (or hour) started
    cap = 50                       # at most this percent in all (default 100)
    grace = 15                     # minutes after the due date that still count as on time (default 0)
    moodle_worksheet = "worksheet.csv"  # optional: Moodle's grading worksheet, for its submission times

    [[extension]]                  # one per student: a due date of their own
    student = "doejane_101"        # the student id of grades.csv
    due = 2026-03-09T23:59:00      # or: days = 3 (after [late] due)

    [[override]]                   # a score set by hand, with the reason the student is shown
    student = "Bob Smith_202"
    exercise = "ex2"               # an exercise id, or "total" (the default): the final total, penalty included
    score = 3
    reason = "regrade request: the hidden test's input was outside the spec"

When is a submission late: Gradescope's ``submission_metadata.json`` gives its time and due date (recorded in the
results document); Moodle's worksheet gives ``Last modified (submission)`` (English dates, in the time zone of
whoever downloaded it), matched by participant id; Canvas's download marks late files ``_LATE_`` but gives no
time, so such a submission counts as one period late (the first day or hour's penalty) unless the student has an
extension. A submission without any of these is not late.

Every mistake in the file stops the run with one message that names the file and its line.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

ADJUSTMENTS_NAME = "adjustments.toml"  # OUT/adjustments.toml: read by every batch run into OUT unless another is named
PERIODS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
KEYS = {
    "": {"late", "extension", "override"},
    "late": {"due", "per", "penalty", "cap", "grace", "moodle_worksheet"},
    "extension": {"student", "due", "days"},
    "override": {"student", "exercise", "score", "reason"},
}
MOODLE_DATE = "%A, %d %B %Y, %I:%M %p"  # Moodle's strftimedatetime in English: "Monday, 2 March 2026, 10:00 AM"


class AdjustmentsError(ValueError):
    """A mistake in the adjustments file (or the worksheet it names), its message naming the file and line."""


@dataclass(frozen=True)
class LatePolicy:
    due: datetime | None = None
    per: str = "day"
    penalty: float = 0.0  # percent per period started
    cap: float = 100.0  # percent
    grace: timedelta = timedelta(0)


@dataclass(frozen=True)
class Override:
    student: str
    exercise: str  # an exercise id or "total"
    score: float
    reason: str


@dataclass
class Adjustment:
    """What the adjustments do to one student's grade."""

    late: str = ""  # "" (nothing known), "no", "2 days", "yes (time unknown)"
    penalty: float = 0.0  # percent taken off
    total: float | None = None  # the adjusted total; None: the submission was not graded
    notes: list[str] = field(default_factory=list)  # one line each, for the row's reason and the feedback

    def row(self) -> dict:
        return {"late": self.late, "penalty": f"{self.penalty:g}" if self.penalty else "",
                "adjusted_total": "" if self.total is None else f"{self.total:g}"}


@dataclass
class Adjustments:
    path: Path | None = None
    late: LatePolicy = field(default_factory=LatePolicy)
    extensions: dict[str, datetime] = field(default_factory=dict)
    overrides: dict[str, list[Override]] = field(default_factory=dict)
    submitted: dict[str, datetime] = field(default_factory=dict)  # LMS id -> submission time (Moodle's worksheet)

    @classmethod
    def load(cls, path: Path, points: dict) -> "Adjustments":
        """Read and check the file; ``points``: the course manifest (exercise ids and their points)."""
        import tomllib

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AdjustmentsError(f"{path}: cannot read the adjustments file ({exc})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            where = re.search(r"at line (\d+)", str(exc))
            line = f", line {where.group(1)}" if where else ""
            raise AdjustmentsError(f"{path}{line}: not valid TOML: {str(exc).split(' (at ')[0]}") from None
        return _Reader(path, text, points).read(data)

    def students(self) -> set[str]:
        return set(self.extensions) | set(self.overrides)

    def apply(self, student: str, doc: dict) -> Adjustment:
        """The adjustment of one student's results document (a graded one; any other gets none)."""
        lesson = doc.get("lesson", {})
        if lesson.get("status", "graded") != "graded":
            return Adjustment(notes=[f"an override of {o.exercise} is not applied: the submission was not graded"
                                     for o in self.overrides.get(student, [])])
        scores = {e["id"]: float(e["score"]) for e in lesson.get("exercises", [])}
        notes, final = [], None
        for o in self.overrides.get(student, []):
            if o.exercise == "total":
                final = o
                continue
            scores[o.exercise] = o.score
            notes.append(f"{o.exercise}: {o.score:g} points, set by the instructor ({o.reason})")
        late, periods = self.lateness(student, lesson)
        policy = self.late
        penalty = min(policy.cap, periods * policy.penalty)
        total = sum(scores.values()) * (1 - penalty / 100)
        if penalty:
            why = f"marked late, time unknown: one {policy.per} counted" if periods and late.startswith("yes") else (
                f"{late} late")
            notes.append(f"late: -{penalty:g}% ({why})")
        if final is not None:
            total = final.score
            notes.append(f"total: {final.score:g} points, set by the instructor ({final.reason})")
        return Adjustment(late=late, penalty=penalty, total=round(total + 0.0, 2), notes=notes)

    def lateness(self, student: str, lesson: dict) -> tuple[str, int]:
        """(what the ``late`` column says, periods late) from what is known of the submission's time."""
        policy = self.late
        due = self.extensions.get(student) or policy.due or _parse_time(lesson.get("due"))
        submitted = _parse_time(lesson.get("submitted_at")) or self.submitted.get(str(lesson.get("lms_id") or ""))
        if submitted is None:
            if lesson.get("late") and student not in self.extensions:  # Canvas's _LATE_: a time it does not give
                return "yes (time unknown)", 1
            return ("no" if lesson.get("late") is False or student in self.extensions else ""), 0
        if due is None:
            return "", 0
        submitted, due = _comparable(submitted, due)
        over = submitted - due - policy.grace
        if over <= timedelta(0):
            return "no", 0
        periods = math.ceil(over / PERIODS[policy.per])
        return f"{periods} {policy.per}{'s' if periods != 1 else ''}", periods


def _parse_time(text) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def _comparable(a: datetime, b: datetime) -> tuple[datetime, datetime]:
    """Two times one may subtract: when one has a time zone and the other not, both in this machine's local time."""
    if (a.tzinfo is None) == (b.tzinfo is None):
        return a, b
    local = lambda t: t.astimezone().replace(tzinfo=None) if t.tzinfo else t  # noqa: E731
    return local(a), local(b)


class _Reader:
    """Checks the parsed file, naming the line of each mistake (tomllib gives values, not lines: the lines are
    found in the text, table by table)."""

    def __init__(self, path: Path, text: str, points: dict) -> None:
        self.path, self.lines, self.points = path, text.splitlines(), points

    def fail(self, message: str, table: str = "", index: int = 0, key: str | None = None) -> None:
        line = self.line_of(table, index, key)
        raise AdjustmentsError(f"{self.path}{f', line {line}' if line else ''}: {message}")

    def line_of(self, table: str, index: int, key: str | None) -> int:
        """The line of ``key`` in the ``index``-th ``[table]`` / ``[[table]]`` (0 when it cannot be found)."""
        start, end = 0, len(self.lines)
        if table:
            header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
            starts = [i for i, line in enumerate(self.lines) if header.match(line)]
            if not starts:
                return 0
            start = starts[min(index, len(starts) - 1)]
            end = next((j for j in range(start + 1, len(self.lines)) if self.lines[j].lstrip().startswith("[")), end)
            if key is None:
                return start + 1
        pattern = re.compile(rf"^\s*(\[\[?\s*)?\"?{re.escape(key or '')}\"?\s*(=|\]|\.)")
        return next((j + 1 for j in range(start, end) if pattern.match(self.lines[j])), start + 1 if table else 0)

    def read(self, data: dict) -> Adjustments:
        for key in data:
            if key not in KEYS[""]:
                self.fail(f"unknown table {key!r}: the file holds [late], [[extension]] and [[override]]", key=key)
        late = self.policy(data.get("late", {}))
        adjustments = Adjustments(self.path, late)
        for i, item in enumerate(self.items(data, "extension")):
            student = self.student(item, "extension", i)
            if student in adjustments.extensions:
                self.fail(f"a second extension for {student!r}", "extension", i, "student")
            adjustments.extensions[student] = self.extension_due(item, i, late)
        seen = set()
        for i, item in enumerate(self.items(data, "override")):
            override = self.override(item, i)
            if (override.student, override.exercise) in seen:
                self.fail(f"a second override of {override.exercise} for {override.student!r}", "override", i)
            seen.add((override.student, override.exercise))
            adjustments.overrides.setdefault(override.student, []).append(override)
        if "moodle_worksheet" in data.get("late", {}):
            adjustments.submitted = self.worksheet(data["late"]["moodle_worksheet"])
        return adjustments

    def items(self, data: dict, table: str) -> list[dict]:
        items = data.get(table, [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            self.fail(f"{table} must be tables written [[{table}]]", key=table)
        for i, item in enumerate(items):
            self.known_keys(item, table, i)
        return items

    def known_keys(self, item: dict, table: str, index: int = 0) -> None:
        for key in item:
            if key not in KEYS[table]:
                self.fail(f"unknown key {key!r} in [{table}] (known: {', '.join(sorted(KEYS[table]))})",
                          table, index, key)

    def policy(self, late: dict) -> LatePolicy:
        if not isinstance(late, dict):
            self.fail("late must be a table: [late]", key="late")
        self.known_keys(late, "late")
        due = self.time(late["due"], "late", 0, "due") if "due" in late else None
        per = late.get("per", "day")
        if per not in PERIODS:
            self.fail(f"per must be \"day\" or \"hour\", not {per!r}", "late", 0, "per")
        penalty, cap = (self.number(late, key, "late", 0, default, 0, 100) for key, default in
                        (("penalty", 0.0), ("cap", 100.0)))
        grace = self.number(late, "grace", "late", 0, 0.0, 0, None)
        if penalty and due is None:
            self.fail("a late penalty needs the due date: due = 2026-03-06T23:59:00", "late")
        return LatePolicy(due, per, penalty, cap, timedelta(minutes=grace))

    def student(self, item: dict, table: str, index: int) -> str:
        student = item.get("student")
        if not isinstance(student, str) or not student.strip():
            self.fail("student must be the student id of grades.csv, as a string", table, index, "student")
        return student

    def extension_due(self, item: dict, index: int, late: LatePolicy) -> datetime:
        if ("due" in item) == ("days" in item):
            self.fail("an extension needs either due (a date and time) or days (after [late] due)", "extension", index)
        if "due" in item:
            return self.time(item["due"], "extension", index, "due")
        days = self.number(item, "days", "extension", index, 0.0, 0, None)
        if late.due is None:
            self.fail("days needs [late] due to count from", "extension", index, "days")
        return late.due + timedelta(days=days)

    def override(self, item: dict, index: int) -> Override:
        student = self.student(item, "override", index)
        exercise = item.get("exercise", "total")
        if exercise != "total" and exercise not in self.points:
            self.fail(f"exercise must be \"total\" or one of {', '.join(self.points)}, not {exercise!r}",
                      "override", index, "exercise")
        top = (sum(m["visible"] + m["hidden"] for m in self.points.values()) if exercise == "total"
               else self.points[exercise]["visible"] + self.points[exercise]["hidden"])
        if "score" not in item:
            self.fail("an override needs score", "override", index)
        score = self.number(item, "score", "override", index, 0.0, 0, top)
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            self.fail("an override needs a reason (the student is shown it)", "override", index, "reason")
        return Override(student, exercise, score, " ".join(reason.split()))

    def number(self, item: dict, key: str, table: str, index: int, default: float, low: float,
               high: float | None) -> float:
        value = item.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (
                high is not None and value > high):
            limits = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
            self.fail(f"{key} must be a number {limits}, not {value!r}", table, index, key)
        return float(value)

    def time(self, value, table: str, index: int, key: str) -> datetime:
        if isinstance(value, datetime):
            return value
        hint = f": give the time too, as {value.isoformat()}T23:59:00" if isinstance(value, date) else ""
        shown = value.isoformat() if isinstance(value, date) else repr(value)
        self.fail(f"{key} must be a TOML date and time such as 2026-03-06T23:59:00, not {shown}{hint}",
                  table, index, key)
        raise AssertionError  # fail raised

    def worksheet(self, name) -> dict[str, datetime]:
        """Participant id -> ``Last modified (submission)`` of Moodle's grading worksheet (relative to this file)."""
        if not isinstance(name, str):
            self.fail("moodle_worksheet must be a file name", "late", 0, "moodle_worksheet")
        path = self.path.parent / name
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            self.fail(f"cannot read moodle_worksheet {path} ({exc})", "late", 0, "moodle_worksheet")
        reader = csv.DictReader(text.splitlines(keepends=True))
        if not {"Identifier", "Last modified (submission)"} <= set(reader.fieldnames or []):
            self.fail(f"{path} is not a Moodle grading worksheet: it needs Identifier and Last modified (submission)",
                      "late", 0, "moodle_worksheet")
        found = {}
        for row in reader:
            pid = re.search(r"(\d+)\s*$", row["Identifier"] or "")
            when = (row["Last modified (submission)"] or "").strip()
            if not pid or when in ("", "-"):
                continue
            try:
                found[pid.group(1)] = datetime.strptime(when, MOODLE_DATE)
            except ValueError:
                raise AdjustmentsError(f"{path}, line {reader.line_num}: Last modified (submission) {when!r} is not"
                                       " a date like 'Monday, 2 March 2026, 10:00 AM' (download it in English)") from None
        return found
