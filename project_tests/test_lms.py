"""LMS downloads and gradebooks: a Canvas and a Moodle "download all submissions" (re-uploads, zips in zips,
folders too deep, misnamed files) are graded into the right students with their LMS ids, and the totals are
merged into the gradebook file each LMS exported, in a form its importer takes as it is.

Grading uses the small fake suite of test_batch.py (two exercises, 3 points each)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FAST, GOOD, read_csv, write_folder  # noqa: E402

from grader.batch import batch_grade  # noqa: E402
from grader.platforms import lms
from grader.platforms.roster import load_roster  # noqa: E402
from grader.batch.gradebook import Seals  # noqa: E402
from grader.intake.entries import original_name, scan  # noqa: E402
from grader.cli import main  # noqa: E402
from grader.judge.session import GradingError  # noqa: E402

WRONG = {"ex1_alpha.py": "def add(a, b):\n    return 0\n", "ex2_beta.py": "def mul(a, b):\n    return 0\n"}


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def canvas_download(subs: Path) -> None:
    """Canvas's "Download Submissions", unzipped: <name>[_LATE]_<user id>_<attachment id>_<file name>."""
    files = {
        # re-uploads: Canvas renamed the second upload ex1_alpha-1.py; the newest attachment counts
        "doejane_101_9001_ex1_alpha.py": WRONG["ex1_alpha.py"],
        "doejane_101_9050_ex1_alpha-1.py": GOOD["ex1_alpha.py"],
        "doejane_101_9002_ex2_beta.py": GOOD["ex2_beta.py"],
        # a late zip holding a clone
        "smithbob_LATE_102_9100_submission.zip": zip_bytes({f"lesson-main/exercises/{n}": t for n, t in GOOD.items()}),
        # a misnamed upload: named in the reason, not taken
        "leecarl_103_9200_ex1_alpha.py": GOOD["ex1_alpha.py"],
        "leecarl_103_9201_ex2_beta (1).py": GOOD["ex2_beta.py"],
        # the files four folders deep inside a zip: said, not taken
        "ngdana_104_9300_work.zip": zip_bytes({f"a/b/c/d/{n}": t for n, t in GOOD.items()}),
        # a zip in a zip
        "parkfay_106_9500_outer.zip": zip_bytes({"inner.zip": zip_bytes(GOOD), "notes.txt": "hi"}),
        # a text entry only
        "kimeve_105_text.html": "<p>I did it on paper</p>",
        # a student whose later re-upload of one file is wrong: the newest still counts
        "o_brienpat_107_9601_ex1_alpha.py": GOOD["ex1_alpha.py"],
        "o_brienpat_107_9602_ex2_beta.py": GOOD["ex2_beta.py"],
        "o_brienpat_107_9700_ex2_beta-1.py": WRONG["ex2_beta.py"],
        # a student of another section, not in the exported gradebook
        "outsiderzed_999_9800_ex1_alpha.py": GOOD["ex1_alpha.py"],
    }
    subs.mkdir(parents=True)
    for name, data in files.items():
        (subs / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    (subs / "README.txt").write_text("not a submission")


def moodle_download(subs: Path) -> None:
    """Moodle's "Download all submissions", unzipped: a folder per student and plugin (or loose files)."""
    write_folder(subs / "Jane Doe_201_assignsubmission_file_", {
        "lesson1.zip": zip_bytes({f"lesson1-main/exercises/{n}": t for n, t in GOOD.items()})})
    write_folder(subs / "Jane Doe_201_assignsubmission_onlinetext_", {"onlinetext.html": "<p>see the zip</p>"})
    write_folder(subs / "Bob Smith_202_assignsubmission_file", dict(GOOD))  # Moodle 4.1+: no trailing _
    write_folder(subs / "Carl Lee_203_assignsubmission_file_", {"a/b/c/d/ex1_alpha.py": GOOD["ex1_alpha.py"],
                                                                "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "Dana Ng_204_assignsubmission_file_", {"work.rar": b"Rar!\x1a\x07\x00 not really"})
    for name, text in GOOD.items():  # "download submissions in folders" off
        (subs / f"Eve Kim_205_assignsubmission_file_{name}").write_text(text)
    write_folder(subs / "Fay Park_206_assignsubmission_file_", {
        "Ex1_Alpha.py": GOOD["ex1_alpha.py"], "submission.zip": zip_bytes({"inner.zip": zip_bytes(
            {"ex2_beta.py": GOOD["ex2_beta.py"]})})})


# ----------------------------------------------------------------------------------------------------------
# Intake
# ----------------------------------------------------------------------------------------------------------


def test_canvas_reupload_suffix_is_dropped_as_canvas_adds_it():
    assert original_name("ex1_special_tokens-1.py") == ("ex1_special_tokens.py", 1)
    assert original_name("ex1_special_tokens-12.py") == ("ex1_special_tokens.py", 12)
    assert original_name("work-2.tar.gz") == ("work.tar.gz", 2)
    assert original_name("ex1-0b6f1c2e-1234-4abc-8def-0123456789ab.py") == ("ex1.py", -1)  # after 8 tries: a UUID
    assert original_name("ex1_special_tokens.py") == ("ex1_special_tokens.py", 0)


def test_scan_groups_canvas_and_moodle_files_by_student(tmp_path):
    canvas_download(tmp_path / "canvas")
    moodle_download(tmp_path / "moodle")
    skipped: dict[str, str] = {}
    found = scan(tmp_path / "canvas", tmp_path / "out", skipped)
    assert skipped == {"README.txt": "not a folder or a supported archive (.zip, .tar.gz, .tgz)"}
    assert sorted(found) == ["doejane_101", "kimeve_105", "leecarl_103", "ngdana_104", "o_brienpat_107",
                             "outsiderzed_999", "parkfay_106", "smithbob_102"]
    jane = found["doejane_101"][0]
    assert (jane.lms, jane.lms_id, jane.late) == ("canvas", "101", False)
    assert [(p.name, p.path.name) for p in jane.parts] == [("ex1_alpha.py", "doejane_101_9050_ex1_alpha-1.py"),
                                                           ("ex2_beta.py", "doejane_101_9002_ex2_beta.py")]
    assert found["smithbob_102"][0].late
    found = scan(tmp_path / "moodle", tmp_path / "out")
    assert sorted(found) == ["Bob Smith_202", "Carl Lee_203", "Dana Ng_204", "Eve Kim_205", "Fay Park_206",
                             "Jane Doe_201"]
    assert [e.lms_id for e in found["Jane Doe_201"]] == ["201"] and len(found["Jane Doe_201"][0].parts) == 2
    assert [p.name for p in found["Eve Kim_205"][0].parts] == ["ex1_alpha.py", "ex2_beta.py"]


def test_a_whole_class_download_is_refused_with_what_to_do(suite, tmp_path):
    """A Canvas download left zipped (or a Moodle one unzipped into a folder of its own) is many students: it is
    skipped with a message saying to unzip it (or move its files up), never graded as one student."""
    canvas_download(tmp_path / "canvas")
    moodle_download(tmp_path / "moodle")
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "submissions.zip").write_bytes(zip_bytes(
        {p.name: p.read_bytes() for p in (tmp_path / "canvas").iterdir() if p.is_file()}))
    (tmp_path / "moodle").rename(subs / "moodle-download")
    (subs / "alice.zip").write_bytes(zip_bytes({f"lesson-main/exercises/{n}": t for n, t in GOOD.items()}))
    # one student's own work whose file names happen to look like Canvas's is still that student's
    write_folder(subs / "bob", {**GOOD, "2024_01_notes.txt": "a", "2025_02_notes.txt": "b"})
    skipped: dict[str, str] = {}
    assert sorted(scan(subs, tmp_path / "out", skipped)) == ["alice", "bob"]
    assert skipped == {
        "submissions.zip": "a Canvas download of 8 students' submissions, still zipped: unzip it into the submissions"
                           " folder (each student then gets a row), or grade the unzipped folder; it is not graded"
                           " as one student",
        "moodle-download": "holds a Moodle download of 6 students' submissions, not one student's: move what it"
                           " holds up into the submissions folder (each student then gets a row), or grade it as"
                           " the submissions folder itself"}
    (subs / "alice.zip").unlink()
    shutil.rmtree(subs / "bob")
    log = io.StringIO()
    assert batch_grade(subs, tmp_path / "out", tests_dir=suite, **{**FAST, "stream": log}) == []
    assert "warning: skipped submissions.zip: a Canvas download of 8 students' submissions, still zipped: unzip" \
        in log.getvalue()
    assert "submissions.zip: a Canvas download" in (tmp_path / "out" / "skipped.txt").read_text()
    assert read_csv(tmp_path / "out") == {}


def test_canvas_download_is_graded_into_the_right_students(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    canvas_download(subs)
    batch_grade(subs, out, tests_dir=suite, **FAST)
    rows = read_csv(out)
    assert list(rows) == ["doejane_101", "kimeve_105", "leecarl_103", "ngdana_104", "o_brienpat_107",
                          "outsiderzed_999", "parkfay_106", "smithbob_102"]
    assert {s: r["lms_id"] for s, r in rows.items()} == {
        "doejane_101": "101", "kimeve_105": "105", "leecarl_103": "103", "ngdana_104": "104", "o_brienpat_107": "107",
        "outsiderzed_999": "999", "parkfay_106": "106", "smithbob_102": "102"}
    totals = {s: (r["status"], r["total"]) for s, r in rows.items()}
    assert totals == {"doejane_101": ("graded", "6"), "kimeve_105": ("ungradable", ""),
                      "leecarl_103": ("graded", "3"), "ngdana_104": ("ungradable", ""),
                      "o_brienpat_107": ("graded", "4"), "outsiderzed_999": ("graded", "3"),
                      "parkfay_106": ("graded", "6"), "smithbob_102": ("graded", "6")}
    assert rows["leecarl_103"]["reason"] == ('ex2: missing: found "leecarl_103_9201_ex2_beta (1).py", not taken: '
                                             'rename it to ex2_beta.py')
    deep = rows["ngdana_104"]["reason"]
    assert deep == ("no exercise files found (expected ex1_alpha.py, ex2_beta.py): found ex1_alpha.py, ex2_beta.py "
                    'in "ngdana_104_9300_work.zip/a/b/c/d/", 4 folders deep, not taken: the grader looks at most 2 '
                    "folders deep (as in repo/exercises/): move them up"), deep
    assert "kimeve_105_text.html" in rows["kimeve_105"]["reason"]
    doc = json.loads((out / "doejane_101" / "results.json").read_text())
    assert doc["lesson"]["sources"]["ex1_alpha.py"] == "doejane_101_9050_ex1_alpha-1.py, newest of 2 uploads"
    assert (doc["lesson"]["lms"], doc["lesson"]["lms_id"], doc["lesson"]["late"]) == ("canvas", "101", False)
    assert json.loads((out / "smithbob_102" / "results.json").read_text())["lesson"]["late"] is True
    assert json.loads((out / "parkfay_106" / "results.json").read_text())["lesson"]["sources"] == {
        "ex1_alpha.py": "parkfay_106_9500_outer.zip/inner.zip/ex1_alpha.py",
        "ex2_beta.py": "parkfay_106_9500_outer.zip/inner.zip/ex2_beta.py"}
    assert "ex2_beta.py" in json.loads((out / "o_brienpat_107" / "results.json").read_text())["output"]

    # ... and merged into the gradebook Canvas exported, matched by the Canvas user id
    exported = tmp_path / "canvas_export.csv"
    exported.write_bytes(CANVAS_EXPORT.encode("utf-8-sig"))
    merged = tmp_path / "import.csv"
    assert main(["export", "canvas", "--gradebook", str(exported), "--assignment", "Lesson 1", "--batch", str(out),
                 "--to", str(merged)]) == 0
    check_canvas_import(exported, merged)


CANVAS_EXPORT = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Lesson 1 (5001),Quiz 1 (5002),Current Score,Unposted Current Score,"
    "Final Score,Unposted Final Score\r\n"
    "    Points Possible,,,,,10.00,5.00,(read only),(read only),(read only),(read only)\r\n"
    ",,,,,Manual Posting,,,,,\r\n"
    '"Doe, Jane",101,S101,jdoe,Section A,,4.00,80.00,80.00,26.67,26.67\r\n'
    '"Smith, Bob",102,S102,bsmith,Section A,2.00,5.00,100.00,100.00,46.67,46.67\r\n'
    '"Lee, Carl",103,S103,clee,Section B,,3.00,60.00,60.00,20.00,20.00\r\n'
    '"Ng, Dana",104,S104,dng,Section B,,,,,0.00,0.00\r\n'
    '"Kim, Eve",105,S105,ekim,Section B,,,,,0.00,0.00\r\n'
    '"Park, Fay",106,S106,fpark,Section A,,,,,0.00,0.00\r\n'
    '"O_Brien, Pat",107,S107,pobrien,Section A,,,,,0.00,0.00\r\n'
    '"Quiet, Quinn",108,S108,qquiet,Section A,,5.00,100.00,100.00,33.33,33.33\r\n'
    '"Student, Test",900,,,Section A,,,,,,\r\n'
)


def check_canvas_import(exported: Path, merged: Path) -> None:
    """The merged file is the export with the Lesson 1 cells filled, and it follows the importer's rules."""
    before = list(csv.reader(io.StringIO(exported.read_bytes().decode("utf-8-sig"))))
    raw = merged.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # written as Canvas wrote it
    after = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert after[0] == before[0] and len(after) == len(before)
    header = after[0]
    # Canvas's importer: Student, ID first; the student columns end with Section; "Points Possible" row
    assert "Student" in header[0] and "ID" in header[1] and header[4] == "Section"
    assert after[1][0].strip() == "Points Possible" and after[1][5] == "10.00"
    column = header.index("Lesson 1 (5001)")
    scores = {row[1]: row[column] for row in after[3:]}
    # 6/6 -> 10 of Canvas's 10 points, 3/6 -> 5, 4/6 -> 6.67; ungradable students keep what they had
    assert scores == {"101": "10", "102": "10", "103": "5", "104": "", "105": "", "106": "10", "107": "6.67",
                      "108": "", "900": ""}
    for b, a in zip(before, after):  # nothing else changed
        assert b[:column] + b[column + 1:] == a[:column] + a[column + 1:]


def test_canvas_merge_reports_who_could_not_be_matched(tmp_path):
    sheet = lms.Sheet.read(_write(tmp_path / "export.csv", CANVAS_EXPORT))
    grades = [_row("doejane_101", "101", "6"), _row("ngdana_104", "104", "", status="ungradable", reason="no files"),
              _row("outsiderzed_999", "999", "3"), _row("plainfolder", "", "6")]
    merge = lms.merge_canvas(sheet, grades, "lesson 1")  # a title matches in any case
    assert merge.column == "Lesson 1 (5001)" and merge.points == 10 and not merge.new_column
    assert merge.written == ["Doe, Jane (ID 101)"] and merge.changed == 1
    assert merge.not_graded == ["Ng, Dana (ID 104) (ungradable: no files)"]
    assert merge.no_student == ["outsiderzed_999 (LMS id 999)", "plainfolder (no LMS id: not from an LMS download)"]
    assert "Quiet, Quinn (ID 108)" in merge.no_submission and not any("Test" in s for s in merge.no_submission)
    report = merge.report()
    assert "students in the gradebook without a submission (6)" in report
    assert "submissions without a student in the gradebook (2)" in report


def test_canvas_new_assignment_column_and_semicolons(tmp_path):
    text = CANVAS_EXPORT.replace(",", ";").replace('"Doe; Jane"', '"Doe, Jane"')
    sheet = lms.Sheet.read(_write(tmp_path / "export.csv", text))
    assert sheet.delimiter == ";"
    merge = lms.merge_canvas(sheet, [_row("doejane_101", "101", "3")], "Lesson 2")
    assert merge.new_column and merge.column == "Lesson 2" and merge.points == 6  # the batch's maximum
    assert sheet.rows[0][-1] == "Lesson 2" and sheet.rows[1][-1] == "6"  # Canvas creates it with 6 points
    jane = next(r for r in sheet.rows if r[1] == "101")
    assert jane[-1] == "3"
    sheet.write(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8-sig").splitlines()[0].endswith(";Lesson 2")


def test_canvas_merge_refuses_what_canvas_would_misread(tmp_path):
    with pytest.raises(GradingError, match="header must start with Student, ID"):
        lms.merge_canvas(lms.Sheet.read(_write(tmp_path / "a.csv", "Name,Score\nx,1\n")), [], "Lesson 1")
    sheet = lms.Sheet.read(_write(tmp_path / "b.csv", CANVAS_EXPORT))
    with pytest.raises(GradingError, match="read-only"):
        lms.merge_canvas(sheet, [], "Current Score")
    with pytest.raises(GradingError, match="worth 10 points in Canvas, not 25"):
        lms.merge_canvas(sheet, [], "Lesson 1", points=25)


def test_export_from_plain_folders_needs_a_roster_and_fails_loudly_without(suite, tmp_path, private_tmp, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "jane", GOOD)
    write_folder(subs / "carl", WRONG)
    write_folder(subs / "zoe", GOOD)  # in no LMS file: said, not written
    batch_grade(subs, out, tests_dir=suite, **FAST)
    exported = _write(tmp_path / "export.csv", CANVAS_EXPORT)
    merged = tmp_path / "import.csv"
    command = ["export", "canvas", "--gradebook", str(exported), "--assignment", "Lesson 1", "--batch", str(out),
               "--to", str(merged)]
    assert main(command) == 2  # without a roster nothing matches: an error, and no file to import by mistake
    err = capsys.readouterr().err
    assert "no submission matches a student of the LMS file, so nothing was written: 3 of the batch's 3 rows have" \
           " no LMS id (carl, jane, zoe: plain folders, not an LMS download). Give --roster FILE" in err, err
    assert not merged.exists()

    roster = _write(tmp_path / "roster.csv", "student,lms_id,email\njane,101,j@example.org\ncarl,103,\nmax,104,\n")
    assert main([*command, "--roster", str(roster)]) == 0
    printed = capsys.readouterr().out
    assert "2 scores written" in printed and "zoe (no LMS id: not from an LMS download)" in printed
    assert "in the roster, not in the batch (1): max" in printed
    rows = {r[1]: r for r in csv.reader(io.StringIO(merged.read_text()))}
    assert (rows["101"][5], rows["103"][5]) == ("10", "1.67")  # 6/6 and 1/6 of Canvas's 10 points
    moodle = _write(tmp_path / "worksheet.csv", MOODLE_WORKSHEET)
    moodle_roster = _write(tmp_path / "m.csv", "student,lms_id\njane,Participant 201\ncarl,203\n")
    assert main(["export", "moodle", "--gradebook", str(moodle), "--batch", str(out), "--roster", str(moodle_roster),
                 "--to", str(tmp_path / "upload.csv")]) == 0
    grades = [r["Grade"] for r in csv.DictReader(io.StringIO((tmp_path / "upload.csv").read_text()))]
    assert grades == ["100", "16.67", "", ""]


def test_a_bad_roster_is_refused_with_its_line(tmp_path):
    cases = {
        "name,email\njane,j@x\n": "line 1: no student column",
        "student,lms_id\njane,101\ncarl,\n": "line 3: no lms_id (carl,)",
        "student,lms_id\njane,101\n\njane,102\n": "line 4: jane already has the LMS id 101, not 102",
        "student,lms_id\njane,101\ncarl,101\n": "line 3: the LMS id 101 is already jane's",
    }
    for text, message in cases.items():
        with pytest.raises(GradingError, match=re.escape(message)):
            load_roster(_write(tmp_path / "roster.csv", text))
    assert load_roster(_write(tmp_path / "roster.csv", "Student,ID\r\njane,101\r\njane,101\r\n")) == {"jane": "101"}


MOODLE_WORKSHEET = (
    "Identifier,\"Full name\",\"Email address\",Status,Grade,\"Maximum Grade\",\"Grade can be changed\","
    "\"Last modified (submission)\",\"Last modified (grade)\",\"Feedback comments\"\n"
    "\"Participant 201\",\"Jane Doe\",jane@example.org,\"Submitted for grading\",,100.00,Yes,"
    "\"Monday, 2 March 2026, 10:00 AM\",-,\n"
    "\"Participant 203\",\"Carl Lee\",carl@example.org,\"Submitted for grading\",40.00,100.00,Yes,"
    "\"Monday, 2 March 2026, 11:00 AM\",\"Tuesday, 3 March 2026, 9:00 AM\",\"good start\"\n"
    "\"Participant 204\",\"Dana Ng\",dana@example.org,\"Submitted for grading\",,100.00,No,-,-,\n"
    "\"Participant 207\",\"Gus Hill\",gus@example.org,\"No submission\",,100.00,Yes,-,-,\n"
)


def test_moodle_download_is_graded_and_merged_into_the_grading_worksheet(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    moodle_download(subs)
    batch_grade(subs, out, tests_dir=suite, **FAST)
    rows = read_csv(out)
    assert {s: (r["lms_id"], r["status"], r["total"]) for s, r in rows.items()} == {
        "Bob Smith_202": ("202", "graded", "6"), "Carl Lee_203": ("203", "graded", "3"),
        "Dana Ng_204": ("204", "ungradable", ""), "Eve Kim_205": ("205", "graded", "6"),
        "Fay Park_206": ("206", "graded", "3"), "Jane Doe_201": ("201", "graded", "6")}
    assert rows["Carl Lee_203"]["reason"].startswith('ex1: missing: found "a/b/c/d/ex1_alpha.py", 4 folders deep')
    assert "not opened: work.rar (not a supported archive" in rows["Dana Ng_204"]["reason"]
    # a misnamed file beside an archive: the archive's exercise is taken, the misnamed one is named
    assert rows["Fay Park_206"]["reason"] == 'ex1: missing: found "Ex1_Alpha.py", not taken: rename it to ex1_alpha.py'
    assert all(Seals(out).verify(s) for s in rows)

    worksheet = _write(tmp_path / "worksheet.csv", MOODLE_WORKSHEET)
    merged = tmp_path / "upload.csv"
    assert main(["export", "moodle", "--gradebook", str(worksheet), "--batch", str(out), "--to", str(merged)]) == 0
    after = list(csv.DictReader(io.StringIO(merged.read_text())))
    assert [r["Grade"] for r in after] == ["100", "50", "", ""]  # 6/6 and 3/6 of Moodle's 100
    before = list(csv.DictReader(io.StringIO(MOODLE_WORKSHEET)))
    for b, a in zip(before, after):  # Moodle skips a grade older than its own: Last modified (grade) stays
        assert {k: v for k, v in b.items() if k != "Grade"} == {k: v for k, v in a.items() if k != "Grade"}


def test_moodle_merge_needs_the_worksheet_columns_and_reports_the_rest(tmp_path):
    with pytest.raises(GradingError, match="'Last modified \\(grade\\)'"):
        lms.merge_moodle(lms.Sheet.read(_write(tmp_path / "a.csv", "Identifier,Grade\nParticipant 1,2\n")), [])
    sheet = lms.Sheet.read(_write(tmp_path / "w.csv", MOODLE_WORKSHEET))
    grades = [_row("Jane Doe_201", "201", "6"), _row("Dana Ng_204", "204", "3"), _row("Zed_209", "209", "6")]
    merge = lms.merge_moodle(sheet, grades)
    assert merge.written == ["Jane Doe (Participant 201)"] and merge.points == 100
    assert merge.skipped == ["Dana Ng (Participant 204) (the grade is locked in the LMS)"]
    assert merge.no_student == ["Zed_209 (LMS id 209)"]
    assert merge.no_submission == ["Carl Lee (Participant 203)", "Gus Hill (Participant 207)"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _row(student: str, lms_id: str, total: str, *, status: str = "graded", reason: str = "") -> dict:
    return {"student": student, "lms_id": lms_id, "total": total, "max": "6", "status": status, "reason": reason}


def test_a_canvas_student_named_late_is_not_marked_late(tmp_path):
    """Canvas writes ``<name>[_late]_<user id>_...`` and leaves the name out only for an anonymous file, so in
    ``late_12_...`` the word is the student's sortable name, on time; ``doejane_late_13_...`` is late, and so is an
    anonymous ``late_anon_x1_...``."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("late_12_9001_ex1_alpha.py", "doejane_late_13_9002_ex1_alpha.py", "late_anon_x1_9003_ex1_alpha.py"):
        (subs / name).write_text("x = 1\n")
    found = scan(subs, tmp_path / "out")
    assert {student: entries[0].late for student, entries in found.items()} == {
        "late_12": False, "doejane_13": True, "anon_x1": True}
