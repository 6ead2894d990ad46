"""The batch scheduler: which submissions to grade, in what order, how many at once, and when to stop one.

One judge session (grader.runner.JudgeServer) collects the suites once; each submission is a request to it. This
process reads every submission before any student code runs, and it alone writes OUT (results documents,
feedback, the gradebook), from the events the judges write.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from grader import feedback, results, sandbox
from grader.batch.gradebook import (Gradebook, Seals, add_ungraded_exercises, empty_doc, row_from_doc,
                                    ungradable_doc)
from grader.grading import TESTS_DIR, suite_files
from grader.report import Display
from grader.runner import (DEFAULT_TIMEOUT, DEFAULT_WALL, GradingError, JudgeServer, Limits, SessionResult, absorb,
                           describe_status, preload, read_events)
from grader.sandbox import Caps, Submission

DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
DEFAULT_SUBMISSION_TIMEOUT = 600.0  # seconds of wall clock for one whole submission
DEFAULT_MEMORY_MB = 2048  # address space a submission's worker may add on top of the preloaded interpreter
SANDBOX = ".sandbox"
CSV_NAME = "grades.csv"
SKIPPED_NAME = "skipped.txt"
NOT_A_SUBMISSION = "not a folder or a supported archive (.zip, .tar.gz, .tgz)"


@dataclass
class Job:
    student: str
    entry: str  # entry name(s) in the submissions folder, for messages
    sub: Submission | None = None
    digest: str = ""
    judge_pid: int = 0  # the judge forked for this submission (reported by the judge session)
    started: float = 0.0
    stopping: bool = False
    sandbox: Path | None = None
    exercises: list[str] = field(default_factory=list)


@dataclass
class Options:
    jobs: int = DEFAULT_JOBS
    force: bool = False
    timeout_per_submission: float = DEFAULT_SUBMISSION_TIMEOUT
    memory_mb: int | None = DEFAULT_MEMORY_MB
    test_timeout: float = DEFAULT_TIMEOUT
    wall_timeout: float = DEFAULT_WALL
    caps: Caps = field(default_factory=Caps)

    def limits(self) -> Limits:
        return Limits(timeout=self.test_timeout, wall=self.wall_timeout,
                      memory_bytes=self.memory_mb * 2**20 if self.memory_mb else None)

    def settings(self) -> dict:
        """The limits that change a grade: part of the submission hash."""
        return {"test_timeout": self.test_timeout, "wall_timeout": self.wall_timeout, "memory_mb": self.memory_mb,
                "timeout_per_submission": self.timeout_per_submission}


def scan(submissions: Path, out: Path, skipped: dict[str, str] | None = None) -> dict[str, list[Path]]:
    """Student id -> entries with that id (more than one is a duplicate); skips dot-names and OUT itself. A
    regular file that is not a supported archive is no submission: it goes to ``skipped`` (name -> reason)."""
    out_resolved = out.resolve()
    found: dict[str, list[Path]] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or entry.resolve() == out_resolved:
            continue
        if not entry.is_symlink() and entry.is_file() and sandbox.entry_kind(entry) == "unsupported":
            if skipped is not None:
                skipped[entry.name] = NOT_A_SUBMISSION
            continue
        found.setdefault(sandbox.student_id(entry), []).append(entry)
    return found


def _report_skipped(skipped: dict[str, str], out: Path, stream) -> None:
    """``OUT/skipped.txt`` lists the entries that got no row (removed when there are none); one warning each."""
    path = out / SKIPPED_NAME
    if not skipped:
        path.unlink(missing_ok=True)
        return
    path.write_text("".join(f"{name}: {reason}\n" for name, reason in sorted(skipped.items())))
    stream = stream or sys.stderr
    for name, reason in sorted(skipped.items()):
        stream.write(f"warning: skipped {name}: {reason} (listed in {path})\n")
    stream.flush()


def _entry_label(path: Path) -> str:
    return path.name + ("/" if path.is_dir() and not path.is_symlink() else "")


class Batch:
    """One run over a submissions folder. ``run()`` grades what needs grading and returns the sorted rows."""

    def __init__(self, submissions: Path, out: Path, tests_dir: Path, opts: Options, progress, stream) -> None:
        self.out, self.tests_dir, self.opts = out, tests_dir, opts
        self.points = results.load_points(tests_dir)
        out.mkdir(parents=True, exist_ok=True)
        skipped: dict[str, str] = {}
        self.entries = scan(submissions, out, skipped)
        self.skipped = skipped
        _report_skipped(skipped, out, stream)
        self.tests, self.code = sandbox.tests_digest(tests_dir), sandbox.code_digest()
        self.book = Gradebook(out / CSV_NAME, list(self.points))
        self.seals = Seals(out)
        self.display = Display(len(self.entries), progress, stream)
        self.box_root = out / SANDBOX
        self.counts = {"graded": 0, "ungradable": 0, "error": 0, "skipped": 0}
        self.server: JudgeServer | None = None
        self.running: dict[int, Job] = {}  # request id -> job
        self.queue: deque[Job] = deque()
        self.start = time.monotonic()

    # -- rows -------------------------------------------------------------------------------------------------

    def record(self, student: str, doc: dict, seconds: float | None, *, write: bool) -> None:
        if write:
            results.write(doc, self.out / student / "results.json")
            (self.out / student / "feedback.md").write_text(feedback.render(doc, student=student))
        if seconds is not None:
            self.seals.seal(student)
        row = row_from_doc(student, doc, list(self.points))
        self.book.add(row)
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        self.counts["skipped"] += seconds is None
        self.display.finished(row, seconds)

    def prepare(self, student: str, paths: list[Path]) -> Job | None:
        """Everything that needs no grading is recorded here; returns a Job to run otherwise."""
        label = ", ".join(_entry_label(p) for p in paths)
        if len(paths) > 1:
            self.record(student, ungradable_doc(f"duplicate student id: {label} (keep one entry)", self.points,
                                                student=student, entry=label), 0.0, write=True)
            return None
        wanted = {ex: meta["name"] for ex, meta in self.points.items()}
        try:
            sub = sandbox.collect(paths[0], wanted, self.opts.caps)
        except Exception as exc:  # noqa: BLE001 - e.g. a file we may not read: this row, not the batch
            sub = Submission(student=student, entry=paths[0], error=f"could not read the submission ({exc})")
        if sub.error:
            self.record(student, ungradable_doc(sub.error, self.points, student=student, entry=label), 0.0,
                        write=True)
            return None
        digest = sandbox.submission_hash(sub, tests=self.tests, settings=self.opts.settings(), code=self.code)
        old = self._unchanged(student, digest)
        if old is not None:
            self.record(student, old, None, write=False)
            return None
        return Job(student=student, entry=label, sub=sub, digest=digest)

    def _unchanged(self, student: str, digest: str) -> dict | None:
        """The earlier results document, if this grader wrote it (its seal), for the same submission, and final."""
        previous = self.out / student / "results.json"
        if self.opts.force or not previous.is_file() or not self.seals.verify(student):
            return None
        try:
            old = json.loads(previous.read_text())
            lesson = old["lesson"]
        except (ValueError, KeyError, TypeError, OSError):
            return None
        final = lesson.get("status") != "error" and not lesson.get("needs_regrade")
        return old if lesson.get("submission_hash") == digest and final else None

    # -- grading ----------------------------------------------------------------------------------------------

    def _server(self) -> JudgeServer:
        """Started on the first submission that needs grading: torch, torch._dynamo for the exercises that need
        it, and the collection of every suite are paid here, once for the batch."""
        if self.server is None:
            self.box_root.mkdir(parents=True, exist_ok=True)
            saved, tempfile.tempdir = tempfile.tempdir, str(self.box_root)  # torch's warm-up writes a cache dir
            try:
                preload(flop_counter=any(meta.get("warm_torch_dynamo") for meta in self.points.values()))
            finally:
                tempfile.tempdir = saved
            files = suite_files(list(self.points), hidden=True, tests_dir=self.tests_dir)
            self.server = JudgeServer(files, rootdir=self.tests_dir.parent, tmpdir=self.box_root,
                                      limits=self.opts.limits())
        return self.server

    def launch(self, job: Job) -> None:
        folder = self.out / job.student
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "feedback.md"):
            (folder / name).unlink(missing_ok=True)
        job.exercises = [ex for ex, meta in self.points.items() if f"{meta['name']}.py" in job.sub.files]
        if not job.exercises:
            self.finish(job, None)
            return
        server = self._server()
        job.sandbox = self.box_root / job.student
        shutil.rmtree(job.sandbox, ignore_errors=True)
        exercises_dir = job.sandbox / "exercises"
        exercises_dir.mkdir(parents=True)
        for name, data in job.sub.files.items():
            (exercises_dir / name).write_bytes(data)
        job.started = time.monotonic()
        rid = server.submit(exercises_dir, job.exercises, events=job.sandbox / "events.jsonl",
                            workdir=job.sandbox / "work")
        self.running[rid] = job

    def finish(self, job: Job, status: int | None) -> None:
        """Build the submission's results document from its judge's events (here, in the trusted parent)."""
        elapsed = time.monotonic() - job.started if job.started else 0.0
        meta = {"student": job.student, "entry": job.entry, "sources": job.sub.sources,
                "submission_hash": job.digest, "review": sandbox.suspicious(job.sub.files)}
        doc = empty_doc(job.entry) if status is None else self._document(job, status, elapsed, meta)
        if doc["lesson"].get("status", "graded") == "graded":
            doc = add_ungraded_exercises(doc, job.sub.problems, self.points)
            doc["output"] += "\n" + job.sub.summary()  # the same "Files graded / Not graded" block as on Gradescope
            doc["lesson"]["target"] = job.entry
            doc["lesson"].update(meta)
        self.record(job.student, doc, elapsed, write=True)
        if job.sandbox is not None:
            shutil.rmtree(job.sandbox, ignore_errors=True)

    def _document(self, job: Job, status: int, elapsed: float, meta: dict) -> dict:
        session = SessionResult()
        absorb(session, _events(job.sandbox / "events.jsonl"))
        missing = [t for t in session.tests if t["nodeid"] not in session.records]
        if job.stopping:
            return ungradable_doc(f"timed out after {self.opts.timeout_per_submission:g} s (the whole submission)",
                                  self.points, **meta)
        if status != 0 or not session.tests or missing:
            why = f"the judge stopped ({describe_status(status)})" if status else "the judge reported no tests"
            return ungradable_doc(f"grading failed (not the student's fault): {why}", self.points, status="error",
                                  **meta)
        return results.build(session, points=self.points, target=job.entry, hidden_run=True,
                             exercises=job.exercises, execution_time=elapsed)

    def abandon(self, exc: GradingError) -> None:
        """The judge session itself failed (the suites do not collect, say): every row left says so."""
        for job in [*self.running.values(), *self.queue]:
            meta = {"student": job.student, "entry": job.entry, "submission_hash": job.digest}
            self.record(job.student, ungradable_doc(f"grading failed (not the student's fault): {_first_line(exc)}",
                                                    self.points, status="error", **meta), 0.0, write=True)
        self.running.clear()
        self.queue.clear()

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> list[dict]:
        # every submission is read before any student code runs: code graded early cannot change a later one
        jobs = (self.prepare(student, paths) for student, paths in sorted(self.entries.items()))
        self.queue = deque(job for job in jobs if job)
        try:
            while self.queue or self.running:
                try:
                    while self.queue and len(self.running) < self.opts.jobs:
                        self.launch(self.queue.popleft())
                    replies = self.server.replies(0.2) if self.running else []
                except GradingError as exc:
                    self.abandon(exc)
                    break
                self._take(replies)
                self._stop_late()
                self.display.tick()
        finally:
            self.close()
        return self.book.rows

    def _take(self, replies: list[dict]) -> None:
        for reply in replies:
            rid = reply.get("started") or reply.get("done")
            job = self.running.get(rid)
            if job is None:
                continue
            if "pid" in reply:
                job.judge_pid = reply["pid"]
            else:
                del self.running[rid]
                self.finish(job, reply["status"])

    def _stop_late(self) -> None:
        now = time.monotonic()
        for job in self.running.values():
            if now - job.started > self.opts.timeout_per_submission and job.judge_pid and not job.stopping:
                job.stopping = True
                _kill(job.judge_pid)  # its worker's launcher sees the judge go and kills the worker

    def close(self) -> None:
        for job in self.running.values():  # interrupted: nothing of a stopped submission keeps running
            if job.judge_pid:
                _kill(job.judge_pid)
        if self.server is not None:
            self.server.close()
        self.running.clear()
        rows = self.book.finish()
        shutil.rmtree(self.box_root, ignore_errors=True)  # every sandbox is finished by now
        c = self.counts
        summary = (f"{len(rows)} submissions: {c['graded']} graded, {c['ungradable']} ungradable, "
                   f"{c['error']} errors, {c['skipped']} unchanged (skipped) in "
                   f"{time.monotonic() - self.start:.1f} s -> {self.out / CSV_NAME}")
        if self.skipped:
            n = len(self.skipped)
            summary += f" ({n} other entr{'y' if n == 1 else 'ies'} skipped: {self.out / SKIPPED_NAME})"
        self.display.close(summary)


def batch_grade(
    submissions: Path,
    out: Path,
    *,
    jobs: int = DEFAULT_JOBS,
    tests_dir: Path = TESTS_DIR,
    force: bool = False,
    timeout_per_submission: float = DEFAULT_SUBMISSION_TIMEOUT,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
    test_timeout: float = DEFAULT_TIMEOUT,
    wall_timeout: float = DEFAULT_WALL,
    caps: Caps = Caps(),
    progress: str | None = "auto",
    stream=None,
) -> list[dict]:
    """Grade every entry of ``submissions`` into ``out``; returns the gradebook rows sorted by student id."""
    submissions, out, tests_dir = Path(submissions), Path(out), Path(tests_dir)
    if not submissions.is_dir():
        raise GradingError(f"no such folder: {submissions}")
    if jobs < 1:
        raise GradingError("--jobs must be at least 1")
    opts = Options(jobs=jobs, force=force, timeout_per_submission=timeout_per_submission, memory_mb=memory_mb,
                   test_timeout=test_timeout, wall_timeout=wall_timeout, caps=caps)
    return Batch(submissions, out, tests_dir, opts, progress, stream).run()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _events(path: Path) -> list[dict]:
    events: list[dict] = []
    try:
        read_events(path, 0, events)
    except OSError:
        pass
    return events
