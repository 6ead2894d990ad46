"""Batch grading: every kind of submission ends with one row in grades.csv that says what happened.

Most tests grade against a tiny fake suite (two exercises, 3 points each, 1 of them hidden) so that they stay
fast; one end-to-end test grades the real reference and stubs when they exist.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from grader import batch, feedback, results
from grader.intake import collect as sandbox, digest as hashes
from grader.batch import batch_grade
from grader.judge.session import GradingError, preload

from helpers import FAST, GOOD, POINTS, REPO, STUB, _real_lesson_ready, processes_named, read_csv, write_folder, write_zip


def write_tar(path: Path, files: dict[str, str | bytes], symlink: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type, info.linkname = tarfile.SYMTYPE, symlink[1]
            tf.addfile(info)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def children_of_me() -> list[int]:
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me:
                found.append(int(name))
    return found


# ----------------------------------------------------------------------------------------------------------
# One batch with every kind of bad submission
# ----------------------------------------------------------------------------------------------------------


def hostile_submissions(subs: Path, pids: Path) -> None:
    write_folder(subs / "ref", GOOD)
    write_folder(subs / "stubs", STUB)
    # a clone: exercises/ is preferred over a decoy at the top; its edited tests never reach the grading run
    write_folder(subs / "clone", {
        **{f"exercises/{n}": t for n, t in GOOD.items()},
        "ex1_alpha.py": "def add(a, b):\n    return 0\n",
        "tests/test_ex1_alpha.py": "def test_nothing():\n    pass\n",
        "README.md": "my work",
    })
    write_zip(subs / "refzip.zip", {f"refzip/exercises/{n}": t for n, t in GOOD.items()})
    write_tar(subs / "reftar.tar.gz", {f"exercises/{n}": t for n, t in GOOD.items()})
    write_tar(subs / "reftgz.tgz", dict(GOOD))
    (subs / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not really a zip archive" * 10)
    write_zip(subs / "evil.zip", {**GOOD, "../evil.py": "print('escaped')"})
    write_zip(subs / "absolute.zip", {**GOOD, "/abs/ex9.py": "x = 1"})
    write_tar(subs / "link.tar.gz", GOOD, symlink=("exercises/ex1_alpha.py", "/etc/passwd"))
    write_zip(subs / "bomb.zip", {**GOOD, "zeros.bin": b"\0" * (60 * 1024 * 1024)})
    (subs / "empty").mkdir()
    write_folder(subs / "latin1", {"ex1_alpha.py": b"# caf\xe9\ndef add(a, b):\n    return a + b\n",
                                   "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "dup", GOOD)
    write_zip(subs / "dup.zip", GOOD)
    (subs / "notes.txt").write_text("not a submission")
    write_folder(subs / "hang", {"ex1_alpha.py": GOOD["ex1_alpha.py"], "ex2_beta.py": "while True:\n    pass\n"})
    write_folder(subs / "exiter", {"ex1_alpha.py": "import os\nos._exit(3)\n", "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "forker", {
        # one child stays in the group, a grandchild leaves it (setsid) and is orphaned: both must be killed.
        # They name themselves (the comm name in /proc) so that the test can look for them afterwards; they
        # also try to leave a pid file outside the sandbox, which the confinement refuses.
        "ex1_alpha.py": f'''
            import ctypes, os, time
            def name(n):
                ctypes.CDLL(None).prctl(15, n.encode(), 0, 0, 0)  # PR_SET_NAME
                try:
                    open({str(pids)!r} + "/" + n + str(os.getpid()), "w").close()
                except OSError:
                    pass
            try:  # the syscall filter refuses fork (grader.worker.seccomp); where it is missing, the forks happen
                if os.fork() == 0:
                    name("forker-child")
                    time.sleep(1000)
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        name("forker-escaped")
                        time.sleep(1000)
                    os._exit(0)
            except PermissionError:
                pass
            time.sleep(0.3)

            def add(a, b):
                return a + b
        ''',
        "ex2_beta.py": GOOD["ex2_beta.py"],
    })
    write_folder(subs / "printer", {
        "ex1_alpha.py": "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)\n",
        "ex2_beta.py": GOOD["ex2_beta.py"],
    })
    write_folder(subs / "memhog", {
        "ex1_alpha.py": "buffer = bytearray(10**11)\n",
        "ex2_beta.py": "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n",
    })
    write_folder(subs / "sneaky", {
        **STUB,
        "conftest.py": '''
            import pytest

            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_makereport(item, call):
                outcome = yield
                report = outcome.get_result()
                report.outcome = "passed"
        ''',
        "sitecustomize.py": "import builtins\nbuiltins.NotImplementedError = type('X', (Exception,), {})\n",
        "evil.pth": "import os; os.environ['PWNED'] = '1'\n",
        "pytest.ini": "[pytest]\naddopts = -p no:grader.judge.plugin\n",
    })


@pytest.mark.slow
def test_hostile_batch_every_submission_gets_a_row(suite, tmp_path, private_tmp):
    subs, out, pids = tmp_path / "subs", tmp_path / "out", tmp_path / "pids"
    subs.mkdir()
    pids.mkdir()
    hostile_submissions(subs, pids)
    before, kids = snapshot(subs), set(children_of_me())
    preload()  # importing torch is not what is timed here
    started = time.monotonic()
    returned = batch_grade(subs, out, tests_dir=suite, **FAST)
    elapsed = time.monotonic() - started
    rows = read_csv(out)

    def check(student, status, reason="", total=None):
        row = rows[student]
        assert row["status"] == status, (student, row)
        assert reason.lower() in row["reason"].lower(), (student, row)
        if total is not None:
            assert row["total"] == total, (student, row)
        assert row["max"] == "6", (student, row)

    for student in ("ref", "clone", "refzip", "reftar", "reftgz"):
        check(student, "graded", total="6")
    check("stubs", "graded", total="0")
    check("sneaky", "graded", total="0")  # its conftest/sitecustomize/.pth/pytest.ini had no effect
    check("corrupt", "ungradable", "corrupt archive")
    check("evil", "ungradable", "path leaves the archive")
    check("absolute", "ungradable", "absolute path")
    check("link", "ungradable", "symlink")
    check("bomb", "ungradable", "archive too large when unpacked")
    check("empty", "ungradable", "no exercise files found")
    check("dup", "ungradable", "duplicate student id: dup/, dup.zip")
    assert "notes.txt" not in rows  # a stray file is no student: skipped.txt says so
    assert (out / "skipped.txt").read_text() == \
        "notes.txt: not a folder or a supported archive (.zip, .tar.gz, .tgz)\n"
    check("latin1", "graded", "ex1: ex1_alpha.py is not valid UTF-8 (byte 0xe9 at offset 5)", total="3")
    assert rows["latin1"]["ex1"] == "0" and rows["latin1"]["ex2"] == "3"
    check("hang", "graded", total="3")
    hang = json.loads((out / ".grader-instructor" / "hang.json").read_text())  # the instructor's full record
    assert all("time" in t["extra_data"]["reason"] for t in hang["tests"] if t["status"] != "passed")
    check("exiter", "graded", "crashed the grading process", total="3")
    check("forker", "graded", total="6")
    check("printer", "graded", total="3")
    check("memhog", "graded", total="0")
    assert [r["student"] for r in returned] == sorted(rows) == list(rows)  # the CSV is sorted by student
    assert len(rows) == 20  # 22 entries: dup/ and dup.zip share one row, notes.txt is skipped

    # what the results documents and feedback say
    latin1 = json.loads((out / "latin1" / "results.json").read_text())
    assert latin1["lesson"]["submission_hash"].startswith("sha256:")
    assert latin1["lesson"]["sources"] == {"ex1_alpha.py": "ex1_alpha.py", "ex2_beta.py": "ex2_beta.py"}
    assert json.loads((out / "clone" / "results.json").read_text())["lesson"]["sources"]["ex1_alpha.py"] == \
        "exercises/ex1_alpha.py"
    printer = json.loads((out / ".grader-instructor" / "printer.json").read_text())  # the instructor's full record
    assert any("File too large" in t["extra_data"]["reason"] for t in printer["tests"])
    memhog = json.loads((out / ".grader-instructor" / "memhog.json").read_text())  # the instructor's full record
    assert any("MemoryError" in t["extra_data"]["reason"] for t in memhog["tests"])
    student_doc = json.loads((out / "hang" / "results.json").read_text())  # what the student gets: hints only
    assert all(set(t["extra_data"]) == {"exercise", "hidden", "hint", "kind"}
               for t in student_doc["tests"] if t["extra_data"]["hidden"])
    text = (out / "stubs" / "feedback.md").read_text()
    assert "Not started" in text and "1 hidden test failed (1 point)" in text and "SECRET" not in text
    assert "could not be graded" in (out / "corrupt" / "feedback.md").read_text()
    assert os.environ.get("PWNED") is None

    # nothing written outside OUT, nothing left running, and the sandboxes are gone
    assert snapshot(subs) == before
    assert list(private_tmp.iterdir()) == []
    assert not (out / ".sandbox").exists()
    for entry in (e for e in out.iterdir() if not e.name.startswith(".grader-")):
        assert entry.name in ("grades.csv", "skipped.txt") or sorted(p.name for p in entry.iterdir()) == ["feedback.md", "results.json"]
    assert list(pids.iterdir()) == [], "the worker wrote outside its sandbox"
    assert not processes_named("forker-"), "a process started by a submission outlived its grading"
    assert set(children_of_me()) <= kids
    assert elapsed < 60  # ~15 s on 2 idle cores: the hang costs its per-test timeouts, nothing more


# ----------------------------------------------------------------------------------------------------------
# Re-runs, limits, crashes of the grading process itself
# ----------------------------------------------------------------------------------------------------------


def test_rerun_skips_unchanged_submissions_unless_forced(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "ann", GOOD)
    write_folder(subs / "bob", STUB)
    batch_grade(subs, out, tests_dir=suite, **FAST)
    stamp = (out / "ann" / "results.json").stat().st_mtime_ns

    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert log.getvalue().count("skipped (unchanged)") == 2
    assert (out / "ann" / "results.json").stat().st_mtime_ns == stamp
    assert read_csv(out)["ann"]["total"] == "6"

    (subs / "bob" / "ex2_beta.py").write_text(GOOD["ex2_beta.py"])  # bob changed one file
    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert log.getvalue().count("skipped (unchanged)") == 1
    assert read_csv(out)["bob"]["total"] == "3"

    # a results document this grader did not write (its seal does not match) is graded again, never trusted
    forged = json.loads((out / "bob" / "results.json").read_text())
    forged["score"] = forged["max_score"]
    (out / "bob" / "results.json").write_text(json.dumps(forged))
    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert log.getvalue().count("skipped (unchanged)") == 1 and read_csv(out)["bob"]["total"] == "3"

    (suite / "hidden" / "test_ex2_beta_hidden.py").write_text(
        (suite / "hidden" / "test_ex2_beta_hidden.py").read_text() + "\n# changed\n")  # a changed test
    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert "skipped (unchanged)" not in log.getvalue()

    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, force=True, **{**FAST, "progress": "plain"}, stream=log)
    assert "skipped (unchanged)" not in log.getvalue() and "2 submissions: 2 graded" in log.getvalue()
    assert list(private_tmp.iterdir()) == []


@pytest.mark.slow
def test_submission_wall_clock_limit_stops_a_hang(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "slow", {"ex1_alpha.py": "while True:\n    pass\n", "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "fine", GOOD)
    kids = set(children_of_me())
    preload()
    started = time.monotonic()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "test_timeout": 60.0, "timeout_per_submission": 4.0})
    assert time.monotonic() - started < 30  # the per-test timeout (60 s) never came into play
    rows = read_csv(out)
    assert rows["slow"]["status"] == "ungradable"
    assert rows["slow"]["reason"].startswith("timed out after 4 s")
    assert rows["fine"]["total"] == "6"
    doc = json.loads((out / "slow" / "results.json").read_text())
    assert doc["lesson"]["status"] == "ungradable" and doc["lesson"]["submission_hash"]
    assert set(children_of_me()) <= kids
    assert list(private_tmp.iterdir()) == []


def test_a_dying_judge_is_a_row_not_a_crash(suite, tmp_path, private_tmp, monkeypatch):
    from grader.judge import serve

    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "ann", GOOD)

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(serve, "_grade_one", die)  # the forked judge session inherits the patch
    batch_grade(subs, out, tests_dir=suite, **FAST)
    row = read_csv(out)["ann"]
    assert row["status"] == "error"
    assert row["reason"] == "grading failed (not the student's fault): the judge stopped (killed by signal SIGKILL)"
    doc = json.loads((out / "ann" / "results.json").read_text())
    assert doc["lesson"]["status"] == "error" and doc["output"].startswith("Ungradable: grading failed")


def test_a_grader_failure_is_an_error_row(suite, tmp_path, private_tmp, monkeypatch):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "ann", GOOD)
    write_folder(subs / "bob", STUB)
    (suite / "test_ex2_beta.py").write_text("def test_without_points(student):\n    pass\n")  # a broken suite
    batch_grade(subs, out, tests_dir=suite, **FAST)
    rows = read_csv(out)
    assert all(row["status"] == "error" and "could not collect" in row["reason"] for row in rows.values())
    assert sorted(rows) == ["ann", "bob"]


def test_missing_exercise_scores_zero_and_the_others_are_graded(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "half", {"ex1_alpha.py": GOOD["ex1_alpha.py"]})
    write_folder(subs / "twice", {"a/ex1_alpha.py": GOOD["ex1_alpha.py"], "b/ex1_alpha.py": GOOD["ex1_alpha.py"],
                                  "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "deep", {"a/b/c/ex1_alpha.py": GOOD["ex1_alpha.py"], "ex2_beta.py": GOOD["ex2_beta.py"]})
    batch_grade(subs, out, tests_dir=suite, **FAST)
    rows = read_csv(out)
    assert (rows["half"]["ex1"], rows["half"]["ex2"], rows["half"]["status"]) == ("3", "0", "graded")
    assert rows["half"]["reason"] == "ex2: missing: no ex2_beta.py in the submission"
    assert rows["twice"]["ex1"] == "0" and "ambiguous: 2 files" in rows["twice"]["reason"]
    assert rows["deep"]["ex1"] == "0" and "missing" in rows["deep"]["reason"]  # depth 4 is not searched
    doc = json.loads((out / "half" / "results.json").read_text())
    assert (doc["score"], doc["max_score"]) == (3, 6)
    assert "Not graded: `missing" in (out / "half" / "feedback.md").read_text()


def test_rich_progress_runs_without_a_terminal(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "ann", GOOD)
    (subs / "junk.txt").write_text("x")
    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "rich"}, stream=log)
    text = log.getvalue()
    assert "warning: skipped junk.txt" in text and "1 submission: 1 graded, 0 ungradable" in text
    assert "[1/1] ann  6/6  (" in text  # each student's score, above the bar


def test_time_left_is_the_pace_of_graded_submissions_counting_down(monkeypatch):
    from grader.batch import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    display = progress.Display(10, None, io.StringIO())
    assert display._left() == "estimating time left"
    graded = {"student": "x", "status": "graded", "total": "1", "max": "1", "reason": ""}
    for t in (10.0, 20.0):
        now[0] = t
        display.finished(graded, 2.0)
    assert display._left() == "about 1 min 20 s left"  # 8 left, one every 10 s
    now[0] = 50.0
    assert display._left() == "about 50 s left"  # counts down between submissions
    display.finished({**graded, "status": "ungradable"}, 0.0)
    display.finished(graded, None)  # an unchanged one costs nothing and does not slow the pace
    assert display.tally == {"graded": 3, "ungradable": 1, "error": 0}
    now[0] = 51.0
    assert display._left() == "about 59 s left"


# ----------------------------------------------------------------------------------------------------------
# Pieces: the search rule, archive limits, feedback, the command line
# ----------------------------------------------------------------------------------------------------------


WANTED = {ex: meta["name"] for ex, meta in POINTS.items()}


def test_student_ids_and_kinds(tmp_path):
    (tmp_path / "al.zip").write_bytes(b"")
    (tmp_path / "bo.tar.gz").write_bytes(b"")
    (tmp_path / "cy.TGZ").write_bytes(b"")
    (tmp_path / "dee").mkdir()
    assert [sandbox.student_id(tmp_path / n) for n in ("al.zip", "bo.tar.gz", "cy.TGZ", "dee")] == \
        ["al", "bo", "cy", "dee"]
    assert sandbox.entry_kind(tmp_path / "cy.TGZ") == "tar"


def test_archive_member_count_and_file_size_limits(tmp_path):
    many = write_zip(tmp_path / "many.zip", {f"f{i}.txt": "" for i in range(30)})
    assert "too many members" in sandbox.collect(many, WANTED, sandbox.Caps(max_members=20)).error
    big = write_tar(tmp_path / "big.tgz", {"ex1_alpha.py": "#" * 5000, "ex2_beta.py": GOOD["ex2_beta.py"]})
    sub = sandbox.collect(big, WANTED, sandbox.Caps(max_file_bytes=1000))
    assert sub.error is None and "too large (5,000 bytes" in sub.problems["ex1"] and "ex2_beta.py" in sub.files


def test_coding_cookie_is_respected(tmp_path):
    folder = write_folder(tmp_path / "s", {"ex1_alpha.py": b"# -*- coding: latin-1 -*-\n# caf\xe9\nX = 1\n"})
    sub = sandbox.collect(folder, WANTED)
    assert "ex1_alpha.py" in sub.files and "ex1" not in sub.problems


def test_feedback_counts_hidden_tests_without_describing_them():
    def test(name, hidden, passed):
        return {"status": "passed" if passed else "failed", "max_score": 1.5,
                "extra_data": {"nodeid": f"tests/x.py::{name}", "exercise": "ex1", "hidden": hidden,
                               "hint": f"hint of {name}", "kind": "failed", "reason": f"reason of {name}"}}

    doc = {"score": 1.5, "max_score": 6, "tests": [test("test_a", False, False), test("test_b", False, True),
                                                   test("test_secret1", True, False), test("test_secret2", True, False)],
           "lesson": {"status": "graded", "exercises": [
               {"id": "ex1", "name": "ex1_alpha", "title": "Alpha | pipes", "score": 1.5, "max_score": 6,
                "visible_score": 1.5, "visible_max": 3, "hidden_score": 0, "hidden_max": 3, "hidden_run": True}]}}
    text = feedback.render(doc, student="ann")
    assert "`test_a` (-1.5)" in text and "hint of test_a" in text and "reason of test_a" in text
    assert "2 hidden tests failed (3 points)." in text
    assert "secret" not in text and "test_b" not in text
    assert "Alpha \\| pipes" in text


def test_cli_parser_and_missing_folder(tmp_path):
    parser = argparse.ArgumentParser()
    batch.add_batch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["batch", "subs", "--out", "o", "--jobs", "3", "--force",
                              "--timeout-per-submission", "9", "--memory-mb", "100"])
    assert (args.submissions, args.out, args.jobs, args.force) == ("subs", "o", 3, True)
    assert (args.timeout_per_submission, args.memory_mb, args.func) == (9.0, 100, batch.cmd_batch)
    with pytest.raises(GradingError, match="no such folder"):
        batch_grade(tmp_path / "nope", tmp_path / "out", progress=None)


# ----------------------------------------------------------------------------------------------------------
# The real lesson, end to end
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(_real_lesson_ready() is not None, reason=f"real exercises not ready: {_real_lesson_ready()}")
def test_real_reference_scores_full_marks_and_stubs_zero(tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    points = json.loads((REPO / "tests" / "points.json").read_text())
    write_folder(subs / "reference", {f"exercises/{m['name']}.py": (REPO / "solutions" / f"{m['name']}.py").read_bytes()
                                      for m in points.values()})
    write_zip(subs / "stubs.zip", {f"{m['name']}.py": (REPO / "exercises" / f"{m['name']}.py").read_bytes()
                                   for m in points.values()})
    batch_grade(subs, out, jobs=2, progress=None, test_timeout=30.0)
    rows = read_csv(out)
    total = sum(m["visible"] + m["hidden"] for m in points.values())
    assert (rows["reference"]["status"], rows["reference"]["total"], rows["reference"]["max"]) == \
        ("graded", f"{total:g}", f"{total:g}"), rows["reference"]
    assert (rows["stubs"]["status"], rows["stubs"]["total"]) == ("graded", "0"), rows["stubs"]
    assert rows["stubs"]["reason"] == "; ".join(f"{ex}: {batch.NOT_STARTED}" for ex in points), rows["stubs"]
    assert list(private_tmp.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------
# Instructor review: reasons, near matches, stray files, the code hash, the results output
# ----------------------------------------------------------------------------------------------------------


def test_an_exercise_that_fails_entirely_says_why_in_the_row(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "dave", {"ex1_alpha.py": GOOD["ex1_alpha.py"], "ex2_beta.py": "def mul(a, b:\n    pass\n"})
    write_folder(subs / "eve", {"ex1_alpha.py": "import no_such_module_xyz\n", "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "fay", {"ex1_alpha.py": "def add(a, b):\n    return 3\n", "ex2_beta.py": GOOD["ex2_beta.py"]})
    batch_grade(subs, out, tests_dir=suite, **FAST)
    rows = read_csv(out)
    assert (rows["dave"]["ex2"], rows["dave"]["total"]) == ("0", "3")
    assert rows["dave"]["reason"].startswith("ex2: ex2_beta.py line 1: SyntaxError: "), rows["dave"]
    assert "ex1" not in rows["dave"]["reason"]
    assert rows["eve"]["reason"].startswith("ex1: ") and "no_such_module_xyz" in rows["eve"]["reason"], rows["eve"]
    assert rows["fay"]["reason"] == ""  # one test passes: the failures are ordinary test results


def test_a_long_shared_reason_is_one_short_line():
    doc = results.empty("x")
    doc["tests"] = [{"status": "failed", "extra_data": {"exercise": "ex1", "reason": "boom\n" + "y" * 1000,
                                                        "kind": "error"}} for _ in range(3)]
    doc["lesson"]["exercises"] = [{"id": "ex1", "score": 0.0}, {"id": "ex2", "score": 3.0, "problem": "missing: no"}]
    reason = batch.row_from_doc("s", doc, ["ex1", "ex2"])["reason"]
    first, second = reason.split("; ")
    assert first.startswith("ex1: boom yyy") and first.endswith("...") and len(first) <= 210 and "\n" not in first
    assert second == "ex2: missing: no"
    doc["tests"][0]["extra_data"]["reason"] = "something else"  # different reasons: nothing to summarise
    assert batch.row_from_doc("s", doc, ["ex1", "ex2"])["reason"] == "ex2: missing: no"


def test_every_not_started_exercise_is_in_the_reason():
    """A stub's tests each stop at the TODO of the function they call first, so their reasons differ: each
    exercise whose visible tests all did so is named as not started all the same."""
    doc = results.empty("x")
    kinds = {"ex1": ["not_implemented", "not_implemented"], "ex2": ["not_implemented", "failed"],
             "ex3": ["not_implemented", "not_implemented"]}
    doc["tests"] = [{"status": "failed", "extra_data": {"exercise": ex, "reason": f"not implemented yet: {ex}: f{i}",
                                                        "kind": kind, "hidden": False}}
                    for ex, ks in kinds.items() for i, kind in enumerate(ks)]
    doc["tests"].append({"status": "failed", "extra_data": {"exercise": "ex2", "kind": "not_implemented",
                                                            "hidden": True, "reason": "x"}})
    doc["lesson"]["exercises"] = [{"id": ex, "score": 0.0} for ex in kinds]
    assert batch.row_from_doc("s", doc, list(kinds))["reason"] == (
        f"ex1: {batch.NOT_STARTED}; ex3: {batch.NOT_STARTED}")


@pytest.mark.parametrize("misnamed", ["ex2_beta (1).py", "ex2_beta.py.txt", "Ex2_Beta.py", "exercises/ex2_bta.py"])
@pytest.mark.parametrize("kind", ["folder", "zip", "tar"])
def test_a_misnamed_file_is_named_in_the_reason_but_not_taken(tmp_path, misnamed, kind):
    files = {"ex1_alpha.py": GOOD["ex1_alpha.py"], misnamed: GOOD["ex2_beta.py"], "notes_ex2.txt": "x",
             "test_ex2_beta.py": "x"}
    entry = {"folder": lambda: write_folder(tmp_path / "s", files),
             "zip": lambda: write_zip(tmp_path / "s.zip", files),
             "tar": lambda: write_tar(tmp_path / "s.tgz", files)}[kind]()
    sub = sandbox.collect(entry, WANTED)
    assert set(sub.files) == {"ex1_alpha.py"}
    assert sub.problems == {"ex2": f'missing: found "{misnamed}", not taken: rename it to ex2_beta.py'}


def test_no_near_match_keeps_the_plain_missing_reason(tmp_path):
    sub = sandbox.collect(write_folder(tmp_path / "s", {"ex1_alpha.py": "X = 1\n", "beta.py": "", "ex3_x.py": ""}),
                          WANTED)
    assert sub.problems == {"ex2": "missing: no ex2_beta.py in the submission"}


def test_misnamed_file_in_the_row_and_feedback(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "gus", {"ex1_alpha.py": GOOD["ex1_alpha.py"], "ex2_beta (1).py": GOOD["ex2_beta.py"]})
    batch_grade(subs, out, tests_dir=suite, **FAST)
    row = read_csv(out)["gus"]
    message = 'missing: found "ex2_beta (1).py", not taken: rename it to ex2_beta.py'
    assert (row["ex2"], row["total"], row["reason"]) == ("0", "3", f"ex2: {message}")
    assert message in (out / "gus" / "feedback.md").read_text()


def test_stray_files_get_no_row_a_warning_and_a_line_in_skipped_txt(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "ann", GOOD)
    write_zip(subs / "bob.zip", GOOD)
    for name in ("README.txt", "notes.md", "carl.rar"):
        (subs / name).write_text("x")
    log = io.StringIO()
    rows = batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert [r["student"] for r in rows] == ["ann", "bob"] and list(read_csv(out)) == ["ann", "bob"]
    reason = "not a folder or a supported archive (.zip, .tar.gz, .tgz)"
    assert (out / "skipped.txt").read_text().splitlines() == \
        [f"README.txt: {reason}", f"carl.rar: {reason}", f"notes.md: {reason}"]
    for name in ("README.txt", "notes.md", "carl.rar"):
        assert f"warning: skipped {name}: {reason}" in log.getvalue()
        assert not (out / name).exists()
    for name in ("README.txt", "notes.md", "carl.rar"):
        (subs / name).unlink()
    batch_grade(subs, out, tests_dir=suite, **FAST)
    assert not (out / "skipped.txt").exists()  # it describes the last run


def test_a_change_to_the_grading_code_regrades_everyone(suite, tmp_path, private_tmp, monkeypatch):
    code = tmp_path / "repo"
    write_folder(code, {"llm_basics/model.py": "A = 1\n", "grader/judge/plugin.py": "B = 1\n",
                        "grader/graded_pytest.ini": "[pytest]\n", "grader/schema.json": "{}",
                        "grader/notes.txt": "not code", "tests/test_x.py": "", "llm_basics/sub/deep.py": ""})
    monkeypatch.setattr("grader.intake.digest.CODE_ROOT", code)
    digest = hashes.code_digest()
    for name in ("grader/notes.txt", "tests/test_x.py"):
        (code / name).write_text("changed")
        assert hashes.code_digest() == digest, name
    for name in ("llm_basics/model.py", "grader/judge/plugin.py", "grader/graded_pytest.ini", "grader/schema.json",
                 "llm_basics/sub/deep.py"):  # subpackages count too (grader/judge/ is one)
        (code / name).write_text((code / name).read_text() + "\n")
        assert hashes.code_digest() != digest, name
        digest = hashes.code_digest()

    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "ann", GOOD)
    batch_grade(subs, out, tests_dir=suite, **FAST)
    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert "skipped (unchanged)" in log.getvalue()
    (code / "llm_basics" / "model.py").write_text("A = 2  # a fix to the library\n")
    log = io.StringIO()
    batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert "skipped (unchanged)" not in log.getvalue() and "1 graded" in log.getvalue()


def test_results_output_lists_files_graded_and_not_graded(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "half", {"work/ex1_alpha.py": GOOD["ex1_alpha.py"]})
    batch_grade(subs, out, tests_dir=suite, **FAST)
    doc = json.loads((out / "half" / "results.json").read_text())
    sub = sandbox.collect(subs / "half", WANTED)
    assert doc["output"] == "Score: 3 / 6\n" + sub.summary()
    assert "Files graded:\n  ex1_alpha.py (found at work/ex1_alpha.py)" in doc["output"]
    assert "Not graded (these exercises score 0):\n  ex2: missing: no ex2_beta.py in the submission" in doc["output"]


def test_code_graded_early_cannot_change_a_later_submission(tmp_path, suite):
    subs = tmp_path / "subs"
    victim = subs / "zed"
    saboteur = (
        "import pathlib\n"
        f"for p in pathlib.Path({str(victim)!r}).glob('*.py'):\n"
        "    p.write_text('def add(a, b):\\n    return 0\\ndef mul(a, b):\\n    return 0\\n')\n"
        "def add(a, b):\n    return a + b\n"
    )
    write_folder(subs / "aaa", {"ex1_alpha.py": saboteur, "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(victim, GOOD)
    rows = {r["student"]: r for r in batch_grade(subs, tmp_path / "out", tests_dir=suite, **{**FAST, "jobs": 1})}
    assert rows["zed"]["status"] == "graded" and rows["zed"]["total"] == rows["zed"]["max"]


def test_code_that_reaches_into_the_grader_is_flagged_for_review(tmp_path, suite):
    from grader.intake.review import suspicious

    subs = tmp_path / "subs"
    sneaky = "import sys\ndef add(a, b):\n    sys.modules['grader.judge.plugin']\n    return a + b\n"
    write_folder(subs / "sneaky", {"ex1_alpha.py": sneaky, "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "honest", GOOD)
    rows = {r["student"]: r for r in batch_grade(subs, tmp_path / "out", tests_dir=suite, **FAST)}
    assert "review by hand" in rows["sneaky"]["reason"] and "sys.modules" in rows["sneaky"]["reason"]
    assert "review" not in rows["honest"]["reason"]
    for path in sorted((REPO / "solutions").glob("ex*.py")):  # the reference is never flagged
        assert suspicious({path.name: path.read_bytes()}) == [], path.name


@pytest.mark.parametrize("text, flagged", [
    ("from grader import plugin", "the grader"), ("x = grader", "the grader"), ("import _pytest", "the grader"),
    ("(pytest.fail)", "the grader"), ("open('tests/points.json')", "the test files"),
    ("import test_ex2_topk_attention", "the test files"), ("import ctypes", "ctypes"),
    ("upgrader = 1", None), ("grader_name = 1", None), ("mypytest = 1", None), ("latests/ = 1", None),
    ("latest_ex2 = 1", None), ("notctypes = 1", None), ("ctypes_like = 1", None),
    ("exec(base64.b64decode(b'eA=='))", "code made at run time"), ("eval ('1')", "code made at run time"),
    ("compile(src, 'x', 'exec')", "code made at run time"), ("__import__('os')", "code made at run time"),
    ("import importlib", "code made at run time"), ("import marshal", "code made at run time"),
    ("re.compile(r'\\w+')", None), ("self.eval()", None), ("model.eval()", None), ("evaluate(x)", None),
    ("executor(x)", None),
])
def test_the_review_flags_names_as_whole_words(text, flagged):
    from grader.intake.review import suspicious

    found = suspicious({"ex1_alpha.py": text.encode()})
    assert found == ([f"ex1_alpha.py: {flagged}"] if flagged else []), text


@pytest.mark.slow
@pytest.mark.skipif(_real_lesson_ready() is not None, reason=f"real exercises not ready: {_real_lesson_ready()}")
def test_the_warm_up_run_changes_no_verdict(tmp_path, private_tmp, monkeypatch):
    """The judge session grades the reference once before forking the judges, in the exercises enough
    submissions have started (grader.judge.serve.warm_up): every test of every submission must get the verdict
    it gets without it, whether every exercise is warmed or only some."""
    from grader.batch import scheduler
    from helpers import _verdicts, lesson_submissions

    subs = tmp_path / "subs"
    lesson_submissions(subs)  # the reference, the stubs, two ex2 mutants, a submission that reads the tests
    warmed = []

    class Session(scheduler.JudgeSession):  # the real session; says which exercises it warms
        def __init__(self, *args, **kwargs):
            warmed.append(kwargs["warm_exercises"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(scheduler, "JudgeSession", Session)
    docs = {}
    # ex2 is started by four of the five submissions (the reference, the mutants, the red team), the others by one
    for label, warm_from in (("all", 1), ("ex2", 2), ("cold", 10**6)):
        monkeypatch.setattr(scheduler, "WARM_FROM", warm_from)
        out = tmp_path / label
        batch_grade(subs, out, jobs=2, progress=None, test_timeout=30.0)
        docs[label] = {p.stem: json.loads(p.read_text()) for p in (out / ".grader-instructor").glob("*.json")}
    assert warmed == [["ex1", "ex2", "ex3", "ex4"], ["ex2"], []]
    assert sorted(docs["all"]) == sorted(docs["ex2"]) == sorted(docs["cold"]) == sorted(p.name for p in subs.iterdir())
    for student, doc in docs["cold"].items():
        for label in ("all", "ex2"):
            assert _verdicts(docs[label][student]) == _verdicts(doc), (label, student)
            assert docs[label][student]["lesson"]["protections"] == doc["lesson"]["protections"], (label, student)
    assert docs["all"]["reference"]["score"] == docs["all"]["reference"]["max_score"]


def test_the_batch_warms_up_only_the_exercises_its_submissions_started(tmp_path, monkeypatch):
    """An untouched stub's tests fail at their first call, so warming them up saves nothing: the session warms
    the exercises that at least WARM_FROM submissions changed, and imports torch's symbolic shapes (for FLOP
    counts) only when a submission changed an exercise that counts FLOPs, if only by a comment."""
    from grader.batch import scheduler

    points = json.loads((REPO / "tests" / "points.json").read_text())
    names = {ex: meta["name"] for ex, meta in points.items()}
    seen = []

    class Recorder:  # stands in for the judge session: records how it would start, then stops the batch
        @classmethod
        def for_suites(cls, exercises, **kwargs):
            seen.append({"flop_counter": kwargs.pop("flop_counter")})  # what the session would preload
            seen.append(kwargs)
            raise GradingError("stopped by the test")

    monkeypatch.setattr(scheduler, "JudgeSession", Recorder)

    def grade_batch(touch_flops: bool) -> tuple[dict, dict]:
        subs = tmp_path / f"subs-{touch_flops}"
        for i in range(scheduler.WARM_FROM + 1):
            files = {f"{name}.py": (REPO / "exercises" / f"{name}.py").read_bytes() for name in names.values()}
            if i < scheduler.WARM_FROM:  # ex1 solved by WARM_FROM students, ex2 by one only
                files[f"{names['ex1']}.py"] = (REPO / "solutions" / f"{names['ex1']}.py").read_bytes()
            if i == 0:
                files[f"{names['ex2']}.py"] = (REPO / "solutions" / f"{names['ex2']}.py").read_bytes()
            if touch_flops and i == 1:
                files[f"{names['ex4']}.py"] += b"\n# started: nothing written yet\n"
            write_folder(subs / f"student{i}", files)
        seen.clear()
        rows = batch_grade(subs, tmp_path / f"out-{touch_flops}", jobs=1, progress=None)
        # the stand-in stopped the batch: nothing graded, and every submission has its row all the same
        assert len(rows) == scheduler.WARM_FROM + 1 and {row["status"] for row in rows} == {"error"}
        return seen[0], seen[1]

    flops, server = grade_batch(touch_flops=False)
    assert server["warm_exercises"] == ["ex1"] and server["warm_with"] == REPO / "solutions"
    assert flops == {"flop_counter": False}
    flops, server = grade_batch(touch_flops=True)
    assert server["warm_exercises"] == ["ex1"]
    assert flops == {"flop_counter": True}


@pytest.mark.slow
def test_what_a_submission_prints_stays_in_its_own_record(suite, tmp_path, private_tmp):
    """Judges graded at the same time must not share pytest's capture: each record holds its own student's
    output, all of it, and nobody else's."""
    (suite / "test_ex1_loud.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.points(1)
        def test_add_five_times(student):
            """add, five times over: what it prints comes back between the calls."""
            for i in range(5):
                assert student("ex1_alpha").add(i, 1) == i + 1
    '''))
    subs, out = tmp_path / "subs", tmp_path / "out"
    students = ["alice", "bob", "carol", "dave"]
    for name in students:
        noisy = (
            "import time\n"
            "def _busy():\n    end = time.process_time() + 0.05\n    while time.process_time() < end:\n        pass\n"
            f"def add(a, b):\n    print('OUT-{name}-add')\n    _busy()\n    return a + b\n"
            f"def mul(a, b):\n    print('OUT-{name}-mul')\n    _busy()\n    return a * b\n"
        )
        write_folder(subs / name, {"ex1_alpha.py": noisy, "ex2_beta.py": noisy})
    batch_grade(subs, out, tests_dir=suite, **FAST)
    for name in students:
        doc = json.loads((out / ".grader-instructor" / f"{name}.json").read_text())
        assert len(doc["tests"]) == 7 and doc["score"] == doc["max_score"], doc["lesson"]
        for test in doc["tests"]:
            printed = test["extra_data"]["captured_output"]
            others = [s for s in students if s != name and f"OUT-{s}-" in printed]
            assert not others, f"{name}'s {test['name']} holds the output of {others}: {printed!r}"
            kind = "add" if "ex1" in test["extra_data"]["exercise"] else "mul"
            assert f"OUT-{name}-{kind}" in printed, f"{name}'s {test['name']} lost its output: {printed!r}"


GOOD_BYTES = {name: text.encode() for name, text in GOOD.items()}


def _tar(path: Path, members: dict[str, bytes], *, pax: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = dict(pax or {})
            tf.addfile(info, io.BytesIO(data))
    return path


def test_hostile_names_and_headers_cost_their_own_row_only(suite, tmp_path, private_tmp):
    """From an attack on the batch's intake: a folder and a tar member named with a byte that is not UTF-8 (the
    batch stopped at the first, with no row for anyone after it), a tar whose pax header declares far more than
    any name needs (tarfile reads it whole into memory before any cap sees it), four 100,000-character member
    names (a 33 KB archive once made a 33 MB gradebook cell), entries named like OUT's own files (grades.csv/
    stopped the batch, adjustments.toml/ blocked every later run) and loose files whose names carry terminal
    escapes and a newline. Each ends in its own row or a skipped line, escaped and cut short; ann is graded."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "ann", GOOD)
    raw = os.fsencode(subs) + b"/bob\xff"
    os.mkdir(raw)
    for name, text in GOOD.items():
        with open(raw + b"/" + name.encode(), "w") as f:
            f.write(text)
    bad_member = "ex1_alpha\udcff.py"  # how tarfile hands a member name with the byte 0xFF
    _tar(subs / "carl.tar.gz", {bad_member: b"x = 1\n"})
    big_pax = {"comment": "z" * (1024 * 1024)}
    _tar(subs / "dora.tar.gz", GOOD_BYTES, pax=big_pax)
    long_names = {f"{name[:-3]}{'x' * 100_000}.py": data for name, data in GOOD_BYTES.items()}
    _tar(subs / "eve.tar.gz", long_names)
    write_folder(subs / "grades.csv", GOOD)
    write_folder(subs / "Adjustments.toml", GOOD)
    for name in ("notes\x1b]0;PWNED\x07.txt", "fake\nann: forged line.txt"):
        (subs / name).write_text("x")
    # the positive controls: the hostile steps are what they claim to be
    with pytest.raises(UnicodeEncodeError):
        bad_member.encode("utf-8")
    with tarfile.open(subs / "dora.tar.gz") as plain:  # tarfile alone reads the whole header and goes on
        assert len(plain.next().pax_headers["comment"]) == 1024 * 1024
    log = io.StringIO()
    rows = {r["student"]: r for r in batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"},
                                                 stream=log)}
    assert set(rows) == {"ann", "bob\\udcff", "carl", "dora", "eve"}, sorted(rows)
    assert rows["ann"]["status"] == "graded" and float(rows["ann"]["total"]) == 6, rows["ann"]
    assert rows["bob\\udcff"]["status"] == "graded", rows["bob\\udcff"]
    assert rows["carl"]["status"] == "ungradable" and "ex1_alpha\\udcff.py" in rows["carl"]["reason"], rows["carl"]
    assert rows["dora"]["status"] == "ungradable" and "tar extended header" in rows["dora"]["reason"], rows["dora"]
    assert rows["eve"]["status"] == "ungradable" and len(rows["eve"]["reason"]) <= 600, len(rows["eve"]["reason"])
    assert (out / "grades.csv").is_file() and (out / "grades.csv").stat().st_size < 10_000
    assert not (out / "Adjustments.toml").exists() and not (out / "adjustments.toml").exists()
    skipped = (out / "skipped.txt").read_text(encoding="utf-8").splitlines()
    assert len(skipped) == 4, skipped
    assert any(line.startswith("grades.csv/: named like one of the batch's own files") for line in skipped), skipped
    assert any(line.startswith("fake\\nann: forged line.txt: ") for line in skipped), skipped
    assert any(line.startswith("notes\\x1b]0;PWNED\\x07.txt: ") for line in skipped), skipped
    assert "\x1b" not in log.getvalue() and "\nann: forged" not in log.getvalue()
    # names that differ only in case are one student id (one folder of OUT on macOS and Windows): both refused
    write_folder(subs / "Fay", GOOD)
    write_zip(subs / "fay.zip", GOOD)
    with_fay = {r["student"]: r for r in batch_grade(subs, out, tests_dir=suite, **FAST)}
    assert with_fay["Fay"]["status"] == "ungradable" and "Fay/, fay.zip" in with_fay["Fay"]["reason"], with_fay["Fay"]
    assert "fay" not in with_fay
    # that run read what the first wrote (the rows of the names that were not UTF-8 included)
    assert {s: r["status"] for s, r in with_fay.items() if s != "Fay"} == {s: r["status"] for s, r in rows.items()}
