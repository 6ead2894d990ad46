"""A batch stopped by SIGTERM or Ctrl-C stops every grading process before it exits, leaves a whole gradebook
with every row graded so far, and the next run resumes where it stopped. Uses test_batch.py's fake suite."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FAST, GOOD, alive, processes_named, write_folder  # noqa: E402

from grader.batch import batch_grade  # noqa: E402
from grader.batch.gradebook import Gradebook, Seals  # noqa: E402
from grader.batch.lifecycle import ProcessTree, descendants  # noqa: E402
from grader.judge.events import open_events  # noqa: E402
from grader.judge.handle import Grading  # noqa: E402
from grader.judge.session import JudgeSession  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Names itself (the comm name in /proc) and leaves a child behind, then sleeps in every test: a submission that
# is still being graded when the batch is stopped.
SLOW = """
import ctypes, os, time

def _name(n):
    ctypes.CDLL(None).prctl(15, n.encode(), 0, 0, 0)  # PR_SET_NAME

_name("slowpoke-worker")
try:  # refused by the syscall filter (grader.worker.seccomp); where it is missing, the child stays behind
    if os.fork() == 0:
        _name("slowpoke-child")
        time.sleep(1000)
except PermissionError:
    pass

def add(a, b):
    time.sleep(30)
    return a + b
"""

DRIVER = """
import sys
from pathlib import Path
from grader.batch import batch_grade
from grader.batch.lifecycle import Interrupted
subs, out, suite = map(Path, sys.argv[1:4])
try:
    batch_grade(subs, out, tests_dir=suite, jobs=2, test_timeout=2.0, memory_mb=512, timeout_per_submission=60.0,
                progress="plain")  # test_batch.FAST: the same limits, so that a re-run can call a result unchanged
except Interrupted as exc:  # what `python -m grader batch` does
    print(f"grader: {exc}", file=sys.stderr)
    sys.exit(128 + exc.signum)
"""


def rows_of(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_batch_leaves_no_process_and_a_whole_gradebook_and_resumes(suite, tmp_path, private_tmp, signum):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for student in ("a1", "a2"):
        write_folder(subs / student, GOOD)
    for student in ("s1", "s2", "s3"):
        write_folder(subs / student, {"ex1_alpha.py": SLOW, "ex2_beta.py": GOOD["ex2_beta.py"]})
    batch = subprocess.Popen([sys.executable, "-c", DRIVER, str(subs), str(out), str(suite)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def graded_fast_and_slow_running() -> bool:
            assert batch.poll() is None, batch.communicate()
            done = (out / "grades.csv").is_file() and {"a1", "a2"} <= set(rows_of(out))
            return done and len(processes_named("slowpoke-")) >= 2

        wait_for(graded_fast_and_slow_running, 60, "a1, a2 graded and s1, s2 running")
        started = descendants(batch.pid)
        assert len(started) >= 4  # the judge session, judges, their zygote, launchers, workers, their children
        batch.send_signal(signum)
        stdout, stderr = batch.communicate(timeout=30)
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.wait()

    # stopped, and nothing it started is left: not a worker, not a process a submission started
    assert batch.returncode == 128 + signum, (batch.returncode, stderr)
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    assert not processes_named("slowpoke-"), "a grading process outlived the batch"
    assert not [pid for pid in started if alive(pid)], "a process the batch started outlived it"
    assert not (out / ".sandbox").exists()
    assert "3 not graded (stopped by" in stdout

    # the gradebook is whole: every row graded so far, and what was not reached says so
    rows = rows_of(out)
    assert {s: (r["status"], r["total"]) for s, r in rows.items()} == {
        "a1": ("graded", "6"), "a2": ("graded", "6"), "s1": ("pending", ""), "s2": ("pending", ""),
        "s3": ("pending", "")}
    assert rows["s1"]["reason"].startswith("not graded: the batch was stopped")
    seals = Seals(out)
    assert seals.verify("a1") and seals.verify("a2") and not (out / "s1" / "results.json").exists()

    # the next run resumes: what was graded is not graded again
    for student in ("s1", "s2", "s3"):
        write_folder(subs / student, GOOD)
    log = io.StringIO()
    returned = batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert log.getvalue().count("skipped (unchanged)") == 2 and "2 unchanged (skipped)" in log.getvalue()
    assert [(r["student"], r["total"]) for r in returned] == [(s, "6") for s in ("a1", "a2", "s1", "s2", "s3")]
    assert {s: r["status"] for s, r in rows_of(out).items()} == dict.fromkeys(("a1", "a2", "s1", "s2", "s3"),
                                                                              "graded")


def test_rows_of_earlier_runs_stay_in_the_gradebook(suite, tmp_path, private_tmp):
    """Grading a second folder into the same OUT (late submissions, say) keeps the first folder's rows."""
    out = tmp_path / "out"
    write_folder(tmp_path / "first" / "ann", GOOD)
    write_folder(tmp_path / "late" / "bob", {"ex1_alpha.py": GOOD["ex1_alpha.py"]})
    batch_grade(tmp_path / "first", out, tests_dir=suite, **FAST)
    log = io.StringIO()
    rows = batch_grade(tmp_path / "late", out, tests_dir=suite, **{**FAST, "progress": "plain"}, stream=log)
    assert [(r["student"], r["total"]) for r in rows] == [("ann", "6"), ("bob", "3")]
    assert list(rows_of(out)) == ["ann", "bob"] and "(with 1 row of earlier runs)" in log.getvalue()
    # a results document this grader did not write is not read back
    forged = json.loads((out / "ann" / "results.json").read_text())
    forged["score"] = 5.0
    (out / "ann" / "results.json").write_text(json.dumps(forged))
    batch_grade(tmp_path / "late", out, tests_dir=suite, **FAST)
    assert list(rows_of(out)) == ["bob"]


def test_the_gradebook_file_is_replaced_whole(tmp_path):
    book = Gradebook(tmp_path / "grades.csv", ["ex1"], {"zed": {"student": "zed", "status": "graded"}})
    assert (tmp_path / "grades.csv").read_text().splitlines() == [
        "student,lms_id,ex1,total,max,late,penalty,adjusted_total,status,reason", "zed,,,,,,,,graded,"]
    book.add({"student": "amy", "lms_id": "7", "status": "graded", "total": "3"})
    book.pending("bob")
    book.pending("zed")  # an earlier run's row is kept, not replaced by "pending"
    assert [r["student"] for r in book.finish()] == ["amy", "bob", "zed"]
    assert rows_of(tmp_path)["bob"]["status"] == "pending" and rows_of(tmp_path)["zed"]["status"] == "graded"
    assert not list(tmp_path.glob("*.tmp"))


def test_process_tree_reaps_what_does_not_end(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n"
                              "time.sleep(60)\n"])
    try:
        wait_for(lambda: len(descendants(child.pid)) == 1, 10, "the grandchild")
        grandchild = descendants(child.pid)[0]
        tree = ProcessTree(child.pid)
        start = time.monotonic()
        assert sorted(tree.reap(grace=0.5)) == sorted([child.pid, grandchild])
        assert time.monotonic() - start < 5
        child.wait(timeout=5)
        assert not alive(grandchild)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()


# ----------------------------------------------------------------------------------------------------------
# The portable path (issue 26): no pidfds, no /proc of our own, spawned judge session and workers
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def portable_only(monkeypatch):
    """Every facility off (``GRADER_WITHOUT=all``), and the Linux calls the batch would use without asking
    grader.facilities made to fail, as on macOS: a batch that still reached them would break."""
    from grader import facilities
    from grader.batch import lifecycle

    def no_proc():
        raise AssertionError("/proc read on the portable path")

    monkeypatch.setenv(facilities.ENV, "all")
    monkeypatch.delattr(os, "pidfd_open")
    monkeypatch.setattr(lifecycle, "_children_map", no_proc)
    facilities.refresh()
    yield facilities.present()
    monkeypatch.undo()
    facilities.refresh()


@pytest.mark.slow
def test_portable_batch_grades_every_submission_and_warns_once(suite, tmp_path, private_tmp, portable_only, capsys):
    """``GRADER_WITHOUT=all``: two submissions of one exercise are graded by a spawned session (one at a time),
    nothing the batch started outlives it, and the missing confinement is said once on stderr and in the summary."""
    import psutil

    subs, out, log = tmp_path / "subs", tmp_path / "out", io.StringIO()
    # the stub first: the second submission's workers were started while the first one's folder existed
    write_folder(subs / "a_stub", {"ex1_alpha.py": 'def add(a, b):\n    raise NotImplementedError("ex1")\n'})
    write_folder(subs / "good", {"ex1_alpha.py": GOOD["ex1_alpha.py"]})
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    rows = {r["student"]: r for r in batch_grade(subs, out, tests_dir=suite, **{**FAST, "progress": "plain"},
                                                 stream=log)}
    assert [rows["good"][k] for k in ("ex1", "status")] == ["3", "graded"]
    assert [rows["a_stub"][k] for k in ("ex1", "status")] == ["0", "graded"]
    doc = json.loads((out / ".grader-instructor" / "good.json").read_text())
    assert doc["lesson"]["facilities"]["start_method"] == "spawn"
    assert not any(doc["lesson"]["protections"].values())
    left = [p for p in psutil.Process().children(recursive=True)
            if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]
    assert left == []
    err = capsys.readouterr().err
    assert err.count("UNCONFINED") == 1 and "landlock (switched off by GRADER_WITHOUT)" in err
    summary = log.getvalue().strip().splitlines()
    assert summary[-1].startswith("warning: this batch runs student code UNCONFINED")
    assert "2 submissions: 2 graded" in summary[-2]


def test_portable_time_limit_ends_the_session_and_requeues_the_rest(suite, tmp_path, private_tmp, portable_only):
    """On the portable path a submission's judge is the session itself: at the submission's time limit the session
    and every process below it go (held through psutil, no pidfd), the row says "timed out", and the submission
    waiting behind it goes back to the queue for a new session."""
    import psutil

    from grader.batch.scheduler import Batch, Options

    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "a_slow", {"ex1_alpha.py": GOOD["ex1_alpha.py"]})
    write_folder(subs / "b_next", {"ex1_alpha.py": GOOD["ex1_alpha.py"]})
    batch = Batch(subs, out, suite, Options(timeout_per_submission=5.0), None, io.StringIO())
    slow, waiting = (batch.prepare(s, e) for s, e in batch.entries.items())
    # a stand-in session: a process with a grandchild in its own session, as a spawned worker is
    code = ("import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
            " start_new_session=True)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    session = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert session.stdout.readline() == "ready\n"
    tree = [session.pid, *(p.pid for p in psutil.Process(session.pid).children(recursive=True))]
    assert len(tree) == 2

    class Spawned(JudgeSession):  # the real session's stop, on the stand-in process
        def __init__(self):
            self.pid, self.spawned, self.pidfd, self.gradings = session.pid, session, None, {}
            self._lock, self.reaper = threading.Lock(), ProcessTree

        def poll(self, timeout):
            return []

        def close(self):
            session.stdout.close()
            session.wait(5)
            self.pid = None

    batch.server = Spawned()
    slow.sandbox = tmp_path / "box" / "a"
    for rid, job in ((1, slow), (2, waiting)):
        events = tmp_path / f"events{rid}.jsonl"
        events.touch()
        job.grading = Grading(batch.server, rid, ["ex1"], open_events(events), deadline=5.0)
        batch.server.gradings[rid] = job.grading
    slow.grading.judge_pid, slow.grading.started = session.pid, time.monotonic() - 10
    batch.running = {1: slow, 2: waiting}
    batch._take(batch.server.wait([slow.grading, waiting.grading], 0.0))
    assert batch.server is None and batch.running == {} and list(batch.queue) == [waiting]
    assert waiting.grading is None
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in tree)
    row = next(r for r in batch.book.rows if r["student"] == "a_slow")
    assert row["status"] == "ungradable" and row["reason"].startswith("timed out after 5 s"), row


@pytest.mark.parametrize("without, warned", [
    ("", None),
    ("landlock", None),  # the forked worker still enters its namespaces
    ("landlock,fork", ["landlock (switched off", "namespaces (not entered by a spawned worker)"]),
    ("landlock,namespaces,setuid", ["landlock (switched off", "namespaces (switched off", "setuid (switched off"]),
    ("landlock,namespaces", "root"),  # as root, the forked worker drops to a uid of its own: no warning
])
def test_unconfined_warning_names_what_is_missing(monkeypatch, without, warned):
    """The batch warning appears exactly when the worker would get no Landlock, no namespaces and no uid drop,
    and names why each is missing."""
    from grader import facilities

    monkeypatch.setenv(facilities.ENV, without)
    try:
        here = facilities.refresh()
        if not without and not (here.landlock or (here.namespaces and here.fork)):
            pytest.skip("this machine offers no confinement of its own")
        if warned == "root":
            if not here.setuid:
                pytest.skip("the uid drop needs the grader to run as root")
            warned = None
        text = facilities.unconfined_warning()
    finally:
        monkeypatch.delenv(facilities.ENV)
        facilities.refresh()
    if warned is None:
        assert text is None
    else:
        assert text.startswith("warning: this batch runs student code UNCONFINED") and "Landlock" in text
        assert all(part in text for part in warned), text
