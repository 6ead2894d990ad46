"""A roster: which LMS student each submission of a batch of plain folders is (``export ... --roster FILE``).

A batch of plain entries (``alice/``, ``bob.zip``) has no LMS id in ``grades.csv``: the download's file names are
where a Canvas or Moodle batch reads it. A roster gives it, as a CSV with a header row and two columns:

    student,lms_id
    alice,4211
    bob,4212

``student`` is the entry's name as in ``grades.csv`` (a folder's name, an archive's name without ``.zip``);
``lms_id`` is the student's id in the LMS file: Canvas's ``ID`` column, or the number in Moodle's ``Identifier``
(``Participant 4212``: ``4212`` or the whole ``Participant 4212``). Other columns are ignored. A roster's id wins
over one read from a download. Each mistake is refused with the line it is on: a missing column, an empty cell,
one student given two ids, or one id given to two students.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from grader.judge.session import GradingError
from grader.untrusted import one_line

STUDENT_COLUMNS = ("student", "folder")
ID_COLUMNS = ("lms_id", "id", "identifier")


def _column(header: list[str], names: tuple[str, ...], path: Path) -> int:
    found = [i for i, cell in enumerate(header) if cell.strip().lower() in names]
    if not found:
        raise GradingError(f"{path} line 1: no {names[0]} column (a roster's header is: student,lms_id)")
    return found[0]


def load_roster(path: Path) -> dict[str, str]:
    """Student id -> LMS id, read from ``path``; GradingError naming the line of the first mistake."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GradingError(f"cannot read the roster {path}: {exc}") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise GradingError(f"{path} is empty: a roster's header is student,lms_id, then a row per student")
    student_at, id_at = _column(rows[0], STUDENT_COLUMNS, path), _column(rows[0], ID_COLUMNS, path)
    roster: dict[str, str] = {}
    owner: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        student = row[student_at].strip() if len(row) > student_at else ""
        lms_id = row[id_at].strip() if len(row) > id_at else ""
        lms_id = re.sub(r"^Participant\s+", "", lms_id, flags=re.IGNORECASE)
        if not student or not lms_id:
            raise GradingError(f"{path} line {number}: {'no student' if not student else 'no lms_id'} "
                               f"({one_line(','.join(row), 80)})")
        if roster.get(student, lms_id) != lms_id:
            raise GradingError(f"{path} line {number}: {one_line(student, 60)} already has the LMS id "
                               f"{roster[student]}, not {one_line(lms_id, 30)}")
        if owner.get(lms_id, student) != student:
            raise GradingError(f"{path} line {number}: the LMS id {one_line(lms_id, 30)} is already "
                               f"{one_line(owner[lms_id], 60)}'s")
        roster[student], owner[lms_id] = lms_id, student
    return roster


def apply_roster(grades: list[dict], roster: dict[str, str]) -> list[str]:
    """Give each row of ``grades`` its student's LMS id from ``roster``; returns the roster's students that have no
    row in the batch (a name misspelt, or a student who handed nothing in)."""
    students = {row["student"] for row in grades}
    for row in grades:
        if row["student"] in roster:
            row["lms_id"] = roster[row["student"]]
    return sorted(set(roster) - students)
