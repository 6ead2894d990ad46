"""What a batch writes besides the results documents (grader.results builds those): rows, the CSV, the seals.

Everything here is a function of results documents (grader.results): the scheduler (grader.batch.scheduler)
decides what to grade, this module decides what the instructor reads.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from grader.batch.adjustments import Adjustments
from grader.untrusted import csv_row

INSTRUCTOR = ".grader-instructor"  # OUT/.grader-instructor/<student>.json: the full results documents

REASON_CHARS = 200  # one exercise's part of a gradebook reason


def _num(x) -> str:
    return "" if x is None else f"{x:g}"


def _short(text: str, limit: int = REASON_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def common_failure(doc: dict, ex: str) -> str | None:
    """The reason every test of ``ex`` failed with, when they all failed with the same one (e.g. a SyntaxError)."""
    tests = [t for t in doc["tests"] if t.get("extra_data", {}).get("exercise") == ex
             and not t.get("extra_data", {}).get("hidden")]  # a hidden test's reason never reaches a row
    if not tests or any(t.get("status") == "passed" for t in tests):
        return None
    reasons = {t.get("extra_data", {}).get("reason", "") for t in tests}
    reason = reasons.pop() if len(reasons) == 1 else ""
    return reason or None


NOT_STARTED = "not started: every test stops at a TODO (NotImplementedError)"


def not_started(doc: dict, ex: str) -> bool:
    """Every visible test of ``ex`` reached a TODO of the stub (its NotImplementedError): not started, whatever
    function each test called first (their reasons differ, so ``common_failure`` finds none)."""
    kinds = [t.get("extra_data", {}).get("kind") for t in doc["tests"]
             if t.get("extra_data", {}).get("exercise") == ex and not t.get("extra_data", {}).get("hidden")]
    return bool(kinds) and all(kind == "not_implemented" for kind in kinds)


def row_from_doc(student: str, doc: dict, ex_ids: list[str], adjustments: Adjustments | None = None) -> dict:
    """The gradebook row of one results document, with the course staff's adjustments applied (grader.batch.adjustments:
    the exercise columns and ``total`` stay as graded, ``adjusted_total`` is what the LMS exports take)."""
    row = _graded_row(student, doc, ex_ids)
    adjustment = (adjustments or Adjustments()).apply(student, doc)
    row.update(adjustment.row())
    row["reason"] = "; ".join(part for part in (row["reason"], *adjustment.notes) if part)
    return row


def _graded_row(student: str, doc: dict, ex_ids: list[str]) -> dict:
    lesson = doc["lesson"]
    status = lesson.get("status", "graded")
    row = {"student": student, "lms_id": str(lesson.get("lms_id") or ""), "max": _num(doc["max_score"]),
           "status": status}
    by_id = {e["id"]: e for e in lesson.get("exercises", [])}
    if status == "graded":
        for ex in ex_ids:
            row[ex] = _num(by_id[ex]["score"]) if ex in by_id else ""
        row["total"] = _num(doc["score"])
        notes = []
        for e in lesson["exercises"]:
            why = e.get("problem") or (NOT_STARTED if not_started(doc, e["id"]) else common_failure(doc, e["id"]))
            if why:
                notes.append(f"{e['id']}: {_short(why)}")
        kinds = [t.get("extra_data", {}).get("kind") for t in doc["tests"]]
        if kinds.count("crash"):
            notes.append(f"{kinds.count('crash')} test(s) crashed the grading process")
        if kinds.count("timeout"):
            notes.append(f"{kinds.count('timeout')} test(s) timed out")
        if lesson.get("needs_regrade"):
            notes.append("re-grade: a test waited past the wall-clock backstop (a stalled machine, or sleeping"
                         " code); the next run grades it again")
        elif lesson.get("backstop_final"):
            notes.append(f"a test waited past the wall-clock backstop in {lesson.get('backstop_gradings')} gradings"
                         " in a row: kept as a timeout, not graded again (--force re-grades it)")
        if lesson.get("review"):
            notes.append("review by hand, it mentions " + " / ".join(lesson["review"]))
        row["reason"] = "; ".join(notes)
    else:
        row.update({ex: "" for ex in ex_ids})
        row["total"] = ""
        row["reason"] = lesson.get("reason", "")
    return row


PENDING_REASON = "not graded: the batch was stopped before this submission was graded; run the batch again"


class Gradebook:
    """``OUT/grades.csv``: one row per student, sorted by student id, replaced atomically (a temporary file, then a
    rename) as rows come, at most every ``WRITE_EVERY`` seconds and at the end. So the file is always whole and
    holds every row graded so far, earlier runs' included (``earlier``: the rows of sealed results documents)."""

    WRITE_EVERY = 0.5  # seconds

    def __init__(self, path: Path, ex_ids: list[str], earlier: dict[str, dict] | None = None) -> None:
        self.path = path
        self.columns = ["student", "lms_id", *ex_ids, "total", "max", "late", "penalty", "adjusted_total", "status",
                        "reason"]
        self.by_student: dict[str, dict] = dict(earlier or {})
        self.written, self.dirty = 0.0, False
        self.write()

    @property
    def rows(self) -> list[dict]:
        return [self.by_student[s] for s in sorted(self.by_student)]

    def add(self, row: dict) -> None:
        self.by_student[row["student"]] = row
        self.dirty = True
        self.write_if_due()

    def write_if_due(self) -> None:
        if self.dirty and time.monotonic() - self.written >= self.WRITE_EVERY:
            self.write()

    def pending(self, student: str, lms_id: str = "") -> None:
        """A row for a submission the batch did not get to (kept out of the way of an earlier run's row)."""
        if student not in self.by_student:
            self.by_student[student] = {"student": student, "lms_id": lms_id, "status": "pending",
                                        "reason": PENDING_REASON}

    def write(self) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            # a student id or a reason is the submission's text: no control character, no formula (csv_row)
            writer.writerows(csv_row(row) for row in self.rows)
        tmp.replace(self.path)
        self.written, self.dirty = time.monotonic(), False

    def finish(self) -> list[dict]:
        self.write()
        return self.rows


def unknown_students(adjustments: Adjustments, known) -> str | None:
    """The warning for the students the adjustments file names that have no row (a typo, another section)."""
    names = sorted(adjustments.students() - set(known))
    if not names:
        return None
    return (f"warning: {adjustments.path} names {len(names)} student{'s' if len(names) != 1 else ''} with no"
            f" submission in this batch or OUT (use the student column of grades.csv): " + "; ".join(names))


def earlier_rows(out: Path, seals: "Seals", ex_ids: list[str], adjustments: Adjustments | None = None
                 ) -> dict[str, dict]:
    """The rows of every results document in OUT that this grader sealed (earlier runs, interrupted or not)."""
    rows = {}
    for student in sorted(seals.seals):
        if not seals.verify(student):
            continue
        try:
            doc = json.loads((out / student / "results.json").read_text())
            rows[student] = row_from_doc(student, doc, ex_ids, adjustments)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return rows


class Seals:
    """Which results documents this grader wrote: an HMAC of each ``OUT/<id>/results.json`` under a key kept in
    OUT (which no worker can read or write). A re-run trusts an earlier document only if its seal matches, so a
    file put there by anything else (a process that outlived grading on a platform without confinement, a
    hand edit) is graded again rather than called unchanged."""

    KEY, SEALS = ".grader-key", ".grader-seals.json"

    def __init__(self, out: Path) -> None:
        import hmac
        import secrets

        self._hmac, self.out = hmac, out
        key_path = out / self.KEY
        if not key_path.is_file():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, secrets.token_bytes(32))
            os.close(fd)
        self.key = key_path.read_bytes()
        try:
            self.seals = json.loads((out / self.SEALS).read_text())
        except (OSError, ValueError):
            self.seals = {}

    def _digest(self, student: str) -> str | None:
        try:
            data = (self.out / student / "results.json").read_bytes()
        except OSError:
            return None
        return self._hmac.new(self.key, data, "sha256").hexdigest()

    def seal(self, student: str) -> None:
        self.seals[student] = self._digest(student)
        tmp = self.out / (self.SEALS + ".tmp")
        tmp.write_text(json.dumps(self.seals, indent=0, sort_keys=True))
        tmp.replace(self.out / self.SEALS)

    def verify(self, student: str) -> bool:
        want = self.seals.get(student)
        got = self._digest(student)
        return bool(want and got) and self._hmac.compare_digest(want, got)
