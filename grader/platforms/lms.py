"""``python -m grader export canvas|moodle``: the batch's totals merged into the gradebook file the LMS exported.

The instructor downloads the LMS's own file, and gets back the same file with one column filled in, matched by
the LMS id that the batch read from the download's file names (``grades.csv``'s ``lms_id``), or, for a batch of
plain folders, that a roster gives (``--roster FILE``: grader.platforms.roster). Everything else in the file is
left exactly as it was, so the LMS imports it as it is. When no submission matches a student of the file, nothing
is written and the command fails, saying why (plain folders without a roster, or another course's file).

**Canvas** (Grades > Export, then Grades > Import). Rules checked against Canvas's importer
(``lib/gradebook_importer.rb`` in canvas-lms) and Instructure's guide to importing grades:

* the header's first cell contains ``Student`` and its second ``ID``; the student columns run up to ``Section``
  (``SIS User ID``, ``SIS Login ID``, ``Integration ID`` and ``Root Account`` may come between);
* a row whose first cell contains ``Points Possible`` gives each assignment's points; rows of only ``Muted`` or
  ``Manual Posting`` are not students; ``Current Score``, ``Final Grade`` and the like are read-only and ignored;
* a student is matched by the ``ID`` column (the Canvas user id, the one in the download's file names), then by
  SIS ids, then by name; an assignment column by the id in ``Title (id)``, else by title; a column with no
  matching assignment creates a new assignment, with the points of the ``Points Possible`` row;
* either ``,`` or ``;`` separates fields; a blank cell or ``-`` is no score, ``EX`` is excused.

So the column for ``--assignment`` is the existing ``NAME (id)`` or ``NAME`` column, or a new ``NAME`` column at
the end (with the batch's maximum, or ``--points``, in its Points Possible cell). A score is the batch's total
scaled to the column's points possible. Students are matched by ``ID`` only.

**Moodle**: the assignment's grading worksheet (Submissions > Download grading worksheet, then Upload grading
worksheet; "Offline grading worksheet" must be on in the assignment's feedback types). Rules checked against
``mod/assign/feedback/offline`` (importgradeslib.php, locallib.php):

* columns are found by their header: ``Identifier`` (``Participant <id>``, the id in the download's folder names),
  ``Grade`` and ``Last modified (grade)`` must all be there or the upload is refused; ``Maximum Grade`` is the scale;
* a grade is skipped when it is empty, negative, above the assignment's maximum, unchanged, locked (``Grade can
  be changed``: No), or older than the grade Moodle holds: ``Last modified (grade)`` is kept as exported, so
  tick "Allow updating records that have been modified more recently in Moodle than in the spreadsheet" to
  replace grades someone changed in Moodle after the download.

The one cell written is a number, which a spreadsheet never reads as a formula; every other cell is the LMS's own,
written back as read. Not written, and reported (names and reasons on one line, control characters shown as
escapes: they come from the LMS file and the submissions): submissions that are not graded (ungradable, error,
pending), rows without an LMS id or whose id is not in the file ("submissions without a student"), and students
in the file with no graded submission ("students without a submission": left as they were).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.judge.session import GradingError
from grader.platforms.roster import apply_roster, load_roster
from grader.untrusted import one_line

TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z")  # Canvas's Assignment.title_and_id
NOT_A_STUDENT = re.compile(r"^\s*(Muted|Manual Posting.*)?\s*$", re.IGNORECASE)
TEST_STUDENTS = {"Student, Test", "Test Student"}


@dataclass
class Sheet:
    rows: list[list[str]]
    delimiter: str = ","
    bom: bool = False
    newline: str = "\r\n"

    @classmethod
    def read(cls, path: Path) -> "Sheet":
        raw = Path(path).read_bytes()
        bom = raw.startswith(b"\xef\xbb\xbf")
        text = raw.decode("utf-8-sig")
        head = text.splitlines()[:3]
        delimiter = ";" if head and all(len(_split(line, ";")) > len(_split(line, ",")) for line in head) else ","
        newline = "\r\n" if "\r\n" in text[:4096] else "\n"
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
        return cls(rows, delimiter, bom, newline)

    def write(self, path: Path) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.delimiter, lineterminator=self.newline).writerows(self.rows)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes((b"\xef\xbb\xbf" if self.bom else b"") + buffer.getvalue().encode("utf-8"))


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


@dataclass
class Merge:
    """What a merge did: the column written, the students scored, and everyone it could not match."""

    column: str
    points: float
    written: list[str] = field(default_factory=list)  # students given a score
    changed: int = 0  # of which the score in the file was different
    new_column: bool = False
    no_submission: list[str] = field(default_factory=list)  # in the LMS file, no graded submission
    no_student: list[str] = field(default_factory=list)  # graded here, not in the LMS file (or no LMS id)
    not_graded: list[str] = field(default_factory=list)  # in the LMS file, but ungradable/error/pending here
    skipped: list[str] = field(default_factory=list)  # matched, but the LMS would refuse the cell (locked...)

    def report(self) -> str:
        lines = [f"{'new column' if self.new_column else 'column'} {self.column!r}: {len(self.written)} scores "
                 f"written ({self.changed} changed), out of {self.points:g} points"]
        for title, names in (("students in the gradebook without a submission", self.no_submission),
                             ("submissions without a student in the gradebook", self.no_student),
                             ("not graded, left as they were", self.not_graded),
                             ("not written", self.skipped)):
            if names:
                lines.append(f"{title} ({len(names)}): " + "; ".join(one_line(name) for name in names))
        return "\n".join(lines)


def load_grades(grades_csv: Path) -> list[dict]:
    try:
        with open(grades_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise GradingError(f"cannot read the batch's gradebook {grades_csv}: {exc.strerror}") from None
    if rows and "lms_id" not in rows[0]:
        raise GradingError(f"{grades_csv} has no lms_id column: grade the submissions again with this grader")
    return rows


def _by_lms_id(grades: list[dict], merge: Merge, present: set[str]) -> dict[str, dict]:
    """Graded rows by LMS id; rows without one, or whose id is not in the LMS file, go to ``no_student``."""
    found: dict[str, list[dict]] = {}
    for row in grades:
        if not row.get("lms_id"):
            merge.no_student.append(f"{row['student']} (no LMS id: not from an LMS download)")
        elif row["lms_id"] not in present:
            merge.no_student.append(f"{row['student']} (LMS id {row['lms_id']})")
        else:
            found.setdefault(row["lms_id"], []).append(row)
    out = {}
    for lms_id, rows in found.items():
        if len(rows) > 1:
            merge.skipped.append(f"LMS id {lms_id}: {len(rows)} rows ({', '.join(r['student'] for r in rows)})")
        else:
            out[lms_id] = rows[0]
    if grades and not out:
        raise GradingError(_nothing_matched(grades))
    return out


def _nothing_matched(grades: list[dict]) -> str:
    """Why no row of the batch matched a student of the LMS file (nothing is written then), and what to do."""
    without = [row["student"] for row in grades if not row.get("lms_id")]
    if without:
        shown = ", ".join(one_line(s, 40) for s in without[:3]) + (", ..." if len(without) > 3 else "")
        return (f"no submission matches a student of the LMS file, so nothing was written: {len(without)} of the "
                f"batch's {len(grades)} rows have no LMS id ({shown}: plain folders, not an LMS download). Give "
                f"--roster FILE, a CSV with the columns student,lms_id (each folder's name and its student's id)")
    ids = ", ".join(one_line(row["lms_id"], 20) for row in grades[:3]) + (", ..." if len(grades) > 3 else "")
    return (f"no submission matches a student of the LMS file, so nothing was written: none of the batch's LMS ids "
            f"({ids}) is in it. Is it this course's and this assignment's file?")


def _score(row: dict, points: float) -> float:
    """The row's grade scaled to the LMS's points: its ``adjusted_total`` (the course staff's adjustments applied,
    grader.batch.adjustments), or ``total`` in a gradebook written before adjustments existed."""
    top = float(row["max"] or 0)
    total = row.get("adjusted_total") or row["total"]
    return round(float(total) / top * points, 2) if top else 0.0


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except (ValueError, AttributeError):
        return None


def _cell(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _write(merge: Merge, cells: list[str], index: int, label: str, row: dict | None, *, locked: bool = False) -> None:
    """Fill one student's cell from their batch row (or say why not)."""
    if row is None:
        merge.no_submission.append(label)
    elif row["status"] != "graded":
        reason = one_line(row["reason"], 80)
        merge.not_graded.append(f"{label} ({row['status']}: {reason})")
    elif locked:
        merge.skipped.append(f"{label} (the grade is locked in the LMS)")
    else:
        while len(cells) <= index:
            cells.append("")
        value = _cell(_score(row, merge.points))
        merge.changed += _number(cells[index]) != _number(value)
        cells[index] = value
        merge.written.append(label)


# ----------------------------------------------------------------------------------------------------------
# Canvas
# ----------------------------------------------------------------------------------------------------------


def _canvas_column(header: list[str], first: int, assignment: str) -> int | None:
    """The assignment's column: ``NAME (id)`` or ``NAME`` exactly, else the same title in any case."""
    titles = {i: (TITLE_AND_ID.match(h).group(1) if TITLE_AND_ID.match(h) else h) for i, h in enumerate(header)
              if i >= first}
    for same in (lambda t, h: h == assignment or t == assignment,
                 lambda t, h: t.casefold() == assignment.casefold()):
        hits = [i for i, t in titles.items() if same(t, header[i])]
        if len(hits) > 1:
            raise GradingError(f"{len(hits)} columns are titled {assignment!r}: name one as 'Title (id)'")
        if hits:
            return hits[0]
    return None


LMS_NAMES = ("canvas", "moodle")  # what `export` merges into


def import_csv_name(lms: str) -> str:
    """The merged CSV ``export`` writes into OUT by default (``canvas-import.csv``): one of OUT's own names."""
    return f"{lms}-import.csv"


def merge_canvas(sheet: Sheet, grades: list[dict], assignment: str, points: float | None = None) -> Merge:
    header = sheet.rows[0] if sheet.rows else []
    if len(header) < 4 or "Student" not in header[0] or "ID" not in header[1]:
        raise GradingError("not a Canvas gradebook export: its header must start with Student, ID (Grades > Export)")
    section = next((i for i, h in enumerate(header) if "Section" in h), None)
    if section is None:
        raise GradingError("not a Canvas gradebook export: no Section column (Canvas requires it to import)")
    index = _canvas_column(header, section + 1, assignment)
    pp_row = next((r for r in sheet.rows[1:] if r and "Points Possible" in r[0]), None)
    if pp_row is None:  # Canvas reads a new assignment's points from this row: make one
        pp_row = ["Points Possible"]
        sheet.rows.insert(1, pp_row)
    known = _number(pp_row[index]) if index is not None and index < len(pp_row) else None
    if index is not None and "read only" in (pp_row[index:index + 1] or [""])[0]:
        raise GradingError(f"column {header[index]!r} is read-only in Canvas")
    if known is not None and points is not None and abs(known - points) > 1e-9:
        raise GradingError(f"{header[index]!r} is worth {known:g} points in Canvas, not {points:g}: change it there")
    top = known if known is not None else points
    if top is None:
        top = float(max((_number(r["max"]) or 0 for r in grades), default=0)) or 100.0
    merge = Merge(assignment if index is None else header[index], top, new_column=index is None)
    if index is None:
        header.append(assignment)
        index = len(header) - 1
        for row in sheet.rows[1:]:  # every row as wide as the header: the new column's cells start blank
            row.extend([""] * (len(header) - len(row)))
    if known is None:
        _write_points(pp_row, index, top)
    students = [r for r in sheet.rows[1:] if r and r is not pp_row and not all(NOT_A_STUDENT.match(c) for c in r)]
    ids = {r[1].strip() for r in students if len(r) > 1}
    matched = _by_lms_id(grades, merge, ids)
    for cells in students:
        uid = cells[1].strip() if len(cells) > 1 else ""
        if cells[0].strip() in TEST_STUDENTS:
            continue
        _write(merge, cells, index, f"{cells[0]} (ID {uid})", matched.get(uid))
    return merge


def _write_points(pp_row: list[str], index: int, top: float) -> None:
    while len(pp_row) <= index:
        pp_row.append("")
    pp_row[index] = _cell(top)


# ----------------------------------------------------------------------------------------------------------
# Moodle
# ----------------------------------------------------------------------------------------------------------

MOODLE_REQUIRED = ("Identifier", "Grade", "Last modified (grade)")


def merge_moodle(sheet: Sheet, grades: list[dict], points: float | None = None) -> Merge:
    header = sheet.rows[0] if sheet.rows else []
    missing = [name for name in MOODLE_REQUIRED if name not in header]
    if missing:
        raise GradingError("not a Moodle grading worksheet (Download grading worksheet): no "
                           + ", ".join(repr(m) for m in missing) + " column (Moodle refuses the upload without it)")
    col = {name: header.index(name) for name in header}
    students = []  # (cells, participant id)
    for cells in sheet.rows[1:]:
        if len(cells) > col["Identifier"]:
            found = re.search(r"(\d+)\s*$", cells[col["Identifier"]])
            students.append((cells, found.group(1) if found else ""))
    maxima = {_number(c[col["Maximum Grade"]]) for c, _ in students
              if "Maximum Grade" in col and len(c) > col["Maximum Grade"]} - {None}
    top = points if points is not None else (maxima.pop() if len(maxima) == 1 else None)
    if top is None:
        raise GradingError("the worksheet has no single Maximum Grade: give the assignment's maximum with --points")
    merge = Merge("Grade", top)
    matched = _by_lms_id(grades, merge, {uid for _, uid in students})
    for cells, uid in students:
        name = cells[col["Full name"]] if "Full name" in col and len(cells) > col["Full name"] else ""
        label = f"{name} ({cells[col['Identifier']]})" if name else cells[col["Identifier"]]
        locked = "Grade can be changed" in col and cells[col["Grade can be changed"]].strip().lower() == "no"
        _write(merge, cells, col["Grade"], label, matched.get(uid), locked=locked)
    return merge


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def export(lms: str, gradebook: Path, grades_csv: Path, to: Path, *, assignment: str | None = None,
           points: float | None = None, roster: dict[str, str] | None = None) -> Merge:
    """Merge the batch's totals into the LMS file ``gradebook`` and write it to ``to``; ``roster``: student id ->
    LMS id for a batch of plain folders (grader.platforms.roster). GradingError, and nothing written, when the
    file is not the LMS's or no submission matches a student in it."""
    sheet = Sheet.read(gradebook)
    grades = load_grades(grades_csv)
    if roster:
        apply_roster(grades, roster)
    if lms == "canvas":
        if not assignment:
            raise GradingError("canvas needs --assignment NAME (the assignment's column title in Canvas)")
        merge = merge_canvas(sheet, grades, assignment, points)
    else:
        merge = merge_moodle(sheet, grades, points)
    sheet.write(to)
    return merge


def cmd_export(args) -> int:
    out = Path(args.batch)
    to = Path(args.to) if args.to else out / import_csv_name(args.lms)
    roster = load_roster(Path(args.roster)) if args.roster else None
    merge = export(args.lms, Path(args.gradebook), out / "grades.csv", to, assignment=getattr(args, "assignment", None),
                   points=args.points, roster=roster)
    print(merge.report())
    if roster:
        students = {row["student"] for row in load_grades(out / "grades.csv")}
        absent = sorted(set(roster) - students)
        if absent:
            print(f"in the roster, not in the batch ({len(absent)}): " + "; ".join(one_line(s) for s in absent))
    print(f"-> {to} (import it in {'Canvas: Grades > Import' if args.lms == 'canvas' else 'Moodle: Upload grading worksheet'})")
    return 0


def _help_text(lms: str) -> str:
    """The module's text for one LMS: what export does, that LMS's rules, and what is reported."""
    intro, rest = __doc__.split("\n\n", 2)[1], __doc__.split("**Canvas**", 1)[1]
    canvas, rest = rest.split("**Moodle**", 1)
    moodle, written = rest.split("\n\nThe one cell written", 1)
    own = "Canvas" + canvas if lms == "canvas" else "Moodle" + moodle
    return "\n\n".join([intro.strip(), own.strip(), ("The one cell written" + written).strip(),
                        "A batch of plain folders (no LMS download) needs --roster FILE: " + ROSTER_HELP])


ROSTER_HELP = ("a CSV with the header student,lms_id and a row per student: the entry's name in grades.csv and the "
               "student's id in the LMS file (grader/platforms/roster.py)")


def add_export_parser(sub) -> None:
    import argparse

    e = sub.add_parser("export", help="merge the batch's totals into a gradebook exported from Canvas or Moodle",
                       description="Merge the batch's totals into the gradebook file an LMS exported: "
                                   "`export canvas --help` and `export moodle --help` say how for each.")
    lms = e.add_subparsers(dest="lms", required=True, metavar="{canvas,moodle}")
    for name, title, gradebook in (
            ("canvas", "into a Canvas gradebook export (Grades > Export), to import in Canvas (Grades > Import)",
             "the CSV Canvas exported (Grades > Export)"),
            ("moodle", "into a Moodle assignment's grading worksheet, to upload back (Upload grading worksheet)",
             "the assignment's grading worksheet (Download grading worksheet)")):
        p = lms.add_parser(name, help=f"merge the batch's totals {title}", description=_help_text(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--gradebook", required=True, metavar="FILE", help=gradebook)
        if name == "canvas":
            p.add_argument("--assignment", required=True, metavar="NAME",
                           help="the assignment's column: 'NAME (id)' or NAME (a new column if it is not there)")
        p.add_argument("--batch", default="out/batch", metavar="OUT",
                       help="the batch's output folder, with grades.csv (default out/batch)")
        p.add_argument("--to", metavar="FILE",
                       help=f"where to write the merged CSV (default OUT/{import_csv_name(name)})")
        p.add_argument("--points", type=float, metavar="P",
                       help="the assignment's points in Canvas (default: its Points Possible; a new column: the "
                            "batch's maximum)" if name == "canvas" else
                            "the assignment's maximum grade (default: the worksheet's Maximum Grade)")
        p.add_argument("--roster", metavar="FILE", help="for a batch of plain folders: " + ROSTER_HELP)
        p.set_defaults(func=cmd_export)
