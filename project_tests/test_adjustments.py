"""The course staff's adjustments (grader.batch.adjustments): an extension, a late penalty and an override applied
to grades.csv, the Canvas and Moodle exports and feedback.md, the same after a re-run that grades nothing, and a
bad file refused with its line named.

One Canvas class and one Moodle class (2-3 students each) of the small fake suite (helpers.py: two exercises, 3
points each) are graded once per module."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FAST, GOOD, POINTS, read_csv, write_folder, write_suite  # noqa: E402

from grader.batch import batch_grade  # noqa: E402
from grader.batch.adjustments import Adjustments, AdjustmentsError  # noqa: E402
from grader.cli import main  # noqa: E402
from grader.judge.session import GradingError  # noqa: E402

WRONG_EX2 = {**GOOD, "ex2_beta.py": "def mul(a, b):\n    return a * b + 1\n"}  # fails every ex2 test

CANVAS_ADJUSTMENTS = """\
# the course staff's adjustments for lesson 1
[late]
due = 2026-03-06T23:59:00
per = "day"
penalty = 10
cap = 50

[[extension]]
student = "leecarl_103"
days = 2

[[extension]]
student = "ghostgus_999"   # not in this batch: reported
days = 1

[[override]]
student = "leecarl_103"
exercise = "ex2"
score = 3
reason = "regrade request: ex2 graded again by hand"
"""

CANVAS_EXPORT = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Lesson 1 (5001)\r\n"
    "    Points Possible,,,,,10.00\r\n"
    '"Doe, Jane",101,S101,jdoe,Section A,\r\n'
    '"Smith, Bob",102,S102,bsmith,Section A,\r\n'
    '"Lee, Carl",103,S103,clee,Section A,\r\n'
)

MOODLE_ADJUSTMENTS = """\
[late]
due = 2026-03-02T12:00:00
per = "day"
penalty = 10
grace = 15
moodle_worksheet = "worksheet.csv"
"""

MOODLE_WORKSHEET = (
    'Identifier,"Full name",Status,Grade,"Maximum Grade","Grade can be changed","Last modified (submission)",'
    '"Last modified (grade)"\n'
    '"Participant 201","Jane Doe","Submitted for grading",,100.00,Yes,"Monday, 2 March 2026, 12:10 PM",-\n'
    '"Participant 202","Bob Smith","Submitted for grading",,100.00,Yes,"Wednesday, 4 March 2026, 11:00 AM",-\n'
)


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """Both classes graded once, then once more with nothing to re-grade: (root, outputs of the first run, stderr)."""
    root = tmp_path_factory.mktemp("adjustments")
    suite = write_suite(root / "suite" / "tests")
    canvas = root / "canvas"
    canvas.mkdir()
    for student, files in (("doejane_101", GOOD), ("smithbob_LATE_102", GOOD), ("leecarl_LATE_103", WRONG_EX2)):
        for i, (name, text) in enumerate(files.items()):
            (canvas / f"{student}_{900 + i}_{name}").write_text(text)
    (root / "canvas.toml").write_text(CANVAS_ADJUSTMENTS)
    moodle = root / "moodle"
    for student in ("Jane Doe_201", "Bob Smith_202"):
        write_folder(moodle / f"{student}_assignsubmission_file", dict(GOOD))
    (root / "moodle-out").mkdir()
    (root / "moodle-out" / "adjustments.toml").write_text(MOODLE_ADJUSTMENTS)  # the default place: no option
    (root / "moodle-out" / "worksheet.csv").write_text(MOODLE_WORKSHEET)
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory(dir=root) as tmp:
        mp.setattr(tempfile, "tempdir", tmp)
        mp.setenv("TMPDIR", tmp)
        with contextlib.redirect_stderr(stderr):
            batch_grade(canvas, root / "canvas-out", tests_dir=suite, adjustments=root / "canvas.toml", **FAST)
        batch_grade(moodle, root / "moodle-out", tests_dir=suite, **FAST)
        first = {name: _outputs(root / name) for name in ("canvas-out", "moodle-out")}
        batch_grade(canvas, root / "canvas-out", tests_dir=suite, adjustments=root / "canvas.toml", **FAST)
        batch_grade(moodle, root / "moodle-out", tests_dir=suite, **FAST)
    return root, first, stderr.getvalue()


def _outputs(out: Path) -> dict[str, str]:
    """grades.csv and every feedback.md of OUT, as text."""
    found = {"grades.csv": (out / "grades.csv").read_text()}
    found.update({str(p.relative_to(out)): p.read_text() for p in sorted(out.glob("*/feedback.md"))})
    return found


def test_canvas_extension_penalty_and_override_in_grades_csv(classes):
    root, _, stderr = classes
    rows = read_csv(root / "canvas-out")
    got = {s: (r["total"], r["late"], r["penalty"], r["adjusted_total"]) for s, r in rows.items()}
    assert got == {
        "doejane_101": ("6", "no", "", "6"),  # on time: Canvas did not mark it late
        "smithbob_102": ("6", "yes (time unknown)", "10", "5.4"),  # _LATE_, no time: one day's penalty
        "leecarl_103": ("3", "no", "", "6"),  # _LATE_ but extended; ex2 set to 3 by hand
    }
    assert rows["leecarl_103"]["ex2"] == "0", "the exercise's raw score is kept"
    assert "ex2: 3 points, set by the instructor (regrade request: ex2 graded again by hand)" in (
        rows["leecarl_103"]["reason"])
    assert "late: -10% (marked late, time unknown: one day counted)" in rows["smithbob_102"]["reason"]
    assert "names 1 student with no submission in this batch or OUT" in stderr and "ghostgus_999" in stderr


def test_feedback_shows_the_adjustments(classes):
    root, _, _ = classes
    bob = (root / "canvas-out" / "smithbob_102" / "feedback.md").read_text()
    assert "- late: -10% (marked late, time unknown: one day counted)" in bob
    assert "**Grade after adjustments: 5.4 / 6**" in bob
    carl = (root / "canvas-out" / "leecarl_103" / "feedback.md").read_text()
    assert "- ex2: 3 points, set by the instructor (regrade request: ex2 graded again by hand)" in carl
    assert "**Grade after adjustments: 6 / 6**" in carl
    assert "hidden test failed" in carl, "the re-run renders the hidden count from the student's copy too"
    assert "Adjustments" not in (root / "canvas-out" / "doejane_101" / "feedback.md").read_text()


def test_moodle_worksheet_gives_the_submission_times(classes):
    root, _, _ = classes
    rows = read_csv(root / "moodle-out")
    got = {s: (r["late"], r["penalty"], r["adjusted_total"]) for s, r in rows.items()}
    # 10 minutes after the due date is within the 15 minutes' grace; 1 day 23 hours late is 2 days started
    assert got == {"Jane Doe_201": ("no", "", "6"), "Bob Smith_202": ("2 days", "20", "4.8")}
    assert "- late: -20% (2 days late)" in (root / "moodle-out" / "Bob Smith_202" / "feedback.md").read_text()


def test_exports_take_the_adjusted_total(classes):
    root, _, _ = classes
    exported, merged = root / "canvas-export.csv", root / "canvas-import.csv"
    exported.write_text(CANVAS_EXPORT)
    assert main(["export", "canvas", "--gradebook", str(exported), "--assignment", "Lesson 1",
                 "--batch", str(root / "canvas-out"), "--to", str(merged)]) == 0
    scores = {row[1]: row[5] for row in csv.reader(io.StringIO(merged.read_text()))}
    assert [scores[i] for i in ("101", "102", "103")] == ["10", "9", "10"]  # 6, 5.4 and 6 of 6 -> of 10
    worksheet, upload = root / "moodle-out" / "worksheet.csv", root / "moodle-upload.csv"
    assert main(["export", "moodle", "--gradebook", str(worksheet), "--batch", str(root / "moodle-out"),
                 "--to", str(upload)]) == 0
    assert [r["Grade"] for r in csv.DictReader(io.StringIO(upload.read_text()))] == ["100", "80"]


def test_a_rerun_that_grades_nothing_writes_the_same(classes):
    root, first, _ = classes
    for name, files in first.items():
        assert _outputs(root / name) == files, f"{name} changed on a re-run with nothing to re-grade"


def test_an_edited_file_applies_without_regrading(classes, tmp_path):
    """Only the file changed: no submission is graded again, every row follows the new file."""
    root, _, _ = classes
    edited = tmp_path / "edited.toml"
    edited.write_text(CANVAS_ADJUSTMENTS.replace("penalty = 10", "penalty = 25"))
    out = tmp_path / "out"
    import shutil

    shutil.copytree(root / "canvas-out", out)
    suite = root / "suite" / "tests"
    rows = {r["student"]: r for r in batch_grade(root / "canvas", out, tests_dir=suite, adjustments=edited, **FAST)}
    assert rows["smithbob_102"]["adjusted_total"] == "4.5" and rows["smithbob_102"]["penalty"] == "25"
    assert "late: -25%" in (out / "smithbob_102" / "feedback.md").read_text()


@pytest.mark.parametrize("edit, line, message", [
    (("score = 3", "score = 30"), 19, "score must be a number from 0 to 3, not 30"),
    (('per = "day"', 'per = "week"'), 4, 'per must be "day" or "hour"'),
    (("days = 2", "dayz = 2"), 10, "unknown key 'dayz' in [extension]"),
    (('reason = "regrade', 'reason = "" # "'), 20, "an override needs a reason"),
    (("due = 2026-03-06T23:59:00", "due = 2026-03-06"), 3, "give the time too, as 2026-03-06T23:59:00"),
    (("cap = 50", "cap = 50%"), 6, "not valid TOML"),
    (('exercise = "ex2"', 'exercise = "ex9"'), 18, "exercise must be \"total\" or one of ex1, ex2"),
    (('student = "ghostgus_999"', 'student = "leecarl_103"'), 13, "a second extension for 'leecarl_103'"),
])
def test_a_bad_file_is_refused_with_its_line(tmp_path, edit, line, message):
    path = tmp_path / "adjustments.toml"
    assert edit[0] in CANVAS_ADJUSTMENTS
    path.write_text(CANVAS_ADJUSTMENTS.replace(edit[0], edit[1], 1))
    with pytest.raises(AdjustmentsError) as info:
        Adjustments.load(path, POINTS)
    assert str(info.value).startswith(f"{path}, line {line}: ") and message in str(info.value), str(info.value)


def test_the_batch_stops_on_a_bad_file_before_grading(tmp_path, capsys):
    suite = write_suite(tmp_path / "suite" / "tests")
    subs = write_folder(tmp_path / "subs" / "alice", dict(GOOD)).parent
    bad = tmp_path / "bad.toml"
    bad.write_text("[late]\npenalty = 10\n")
    with pytest.raises(GradingError, match=r"bad.toml, line 1: a late penalty needs the due date"):
        batch_grade(subs, tmp_path / "out", tests_dir=suite, adjustments=bad, **FAST)
    assert not (tmp_path / "out" / "alice").exists(), "nothing is graded"
    assert main(["batch", str(subs), "--out", str(tmp_path / "out"), "--adjustments", str(bad)]) == 2
    assert "line 1: a late penalty needs the due date" in capsys.readouterr().err


def _doc(**lesson) -> dict:
    return {"score": 6.0, "max_score": 6.0, "lesson": {
        "status": "graded", "exercises": [{"id": "ex1", "score": 3.0}, {"id": "ex2", "score": 3.0}], **lesson}}


def test_hours_cap_grace_and_a_total_override(tmp_path):
    """Per hour, with Gradescope's times (offsets); the cap; the grace; a total override is the final grade."""
    adj = Adjustments()  # no file: nothing but what the results document says
    assert adj.apply("s", _doc()).late == "" and adj.apply("s", _doc()).total == 6
    path = tmp_path / "a.toml"
    path.write_text('[late]\ndue = 2026-03-06T23:59:00-08:00\nper = "hour"\npenalty = 5\ncap = 20\ngrace = 30\n'
                    '[[override]]\nstudent = "t"\nscore = 5.5\nreason = "agreed in office hours"\n')
    adj = Adjustments.load(path, POINTS)
    on_time = adj.apply("s", _doc(submitted_at="2026-03-07T00:20:00-08:00"))  # 21 minutes late: in the grace
    assert (on_time.late, on_time.penalty, on_time.total) == ("no", 0, 6)
    two = adj.apply("s", _doc(submitted_at="2026-03-07T10:40:00+01:00"))  # 1 h 41 min late (another zone)
    assert (two.late, two.penalty, two.total) == ("2 hours", 10, 5.4)
    capped = adj.apply("s", _doc(submitted_at="2026-03-08T00:00:00-08:00"))
    assert (capped.penalty, capped.total) == (20, 4.8)
    final = adj.apply("t", _doc(submitted_at="2026-03-08T00:00:00-08:00"))
    assert final.total == 5.5 and final.notes[-1] == "total: 5.5 points, set by the instructor (agreed in office hours)"
    ungradable = adj.apply("t", {"lesson": {"status": "ungradable"}})
    assert ungradable.total is None and "not applied" in ungradable.notes[0]
