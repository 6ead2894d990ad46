"""The batch scheduler: which submissions to grade, in what order, how many at once, and when to stop one.

One judge session (grader.judge.session.JudgeSession) collects the suites once; each submission is a request to it,
followed through its handle (grader.judge.handle.Grading: its deadline, its stop, its outcome). This process reads
every submission before any student code runs, and it alone writes OUT (results documents, feedback, the
gradebook), from the events the judges write.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from grader import facilities, feedback, results
from grader.intake import collect as sandbox, digest as hashes, review
from grader.batch.adjustments import ADJUSTMENTS_NAME, Adjustments
from grader.batch.gradebook import INSTRUCTOR, Gradebook, Seals, earlier_rows, row_from_doc, unknown_students
from grader.intake.entries import NOT_A_SUBMISSION, Entry, report_skipped, scan
from grader.batch.lifecycle import Interrupted, ProcessTree, StopSignals
from grader.batch.reruns import DEFAULT_BACKSTOP_REGRADES, Reruns
from grader.grading import TESTS_DIR, suite_files
from grader.processes import kill
from grader.batch.progress import Display
from grader.judge.handle import Grading
from grader.judge.session import DEFAULT_TIMEOUT, DEFAULT_WALL, GradingError, JudgeSession, Limits
from grader.intake.collect import Caps, Submission
from grader.records import Outcome
from grader.instructor.stubs import expected_stubs
from grader.untrusted_paths import write_new

DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
DEFAULT_SUBMISSION_TIMEOUT = 600.0  # seconds of wall clock for one whole submission
DEFAULT_MEMORY_MB = 2048  # address space a submission's worker may add on top of the preloaded interpreter
WARM_FROM = 4  # submissions that must have started an exercise for the judge session to warm it up (_server)
SANDBOX = ".sandbox"
CSV_NAME = "grades.csv"
SKIPPED_NAME = "skipped.txt"


def out_names() -> set[str]:
    """The names of OUT's own files (lower case: a case-insensitive file system mixes up ``Grades.csv`` too). A
    submission named like one would have its folder made where the file goes: ``grades.csv/`` beside a student
    stopped the batch (no row for anyone after it), ``adjustments.toml/`` blocked every later run."""
    from grader.batch.analysis import HISTOGRAMS_CSV, ITEMS_CSV, PNG, SIMILARITY_CSV, SIMILARITY_HTML
    from grader.platforms.lms import LMS_NAMES, import_csv_name

    names = {CSV_NAME, CSV_NAME + ".tmp", SKIPPED_NAME, ADJUSTMENTS_NAME, ITEMS_CSV, HISTOGRAMS_CSV, PNG,
             SIMILARITY_HTML, SIMILARITY_CSV, *(import_csv_name(lms) for lms in LMS_NAMES)}
    return {name.lower() for name in names}


def refuse_out_names(entries: dict[str, list[Entry]], skipped: dict[str, str]) -> None:
    """Move the entries whose student id is one of OUT's own names (``out_names``) to ``skipped``, with what to do."""
    taken = out_names()
    for student in [s for s in entries if s.lower() in taken]:
        for entry in entries.pop(student):
            skipped[entry.label] = (f"named like one of the batch's own files in OUT ({student}): rename it (the"
                                    " student id is the entry's name) to grade it")
__all__ = ["NOT_A_SUBMISSION", "Batch", "Options", "scan"]


@dataclass
class Job:
    student: str
    entry: str  # entry name(s) in the submissions folder, for messages
    meta: dict = field(default_factory=dict)  # where the submission came from (student, entry, LMS id), kept in results
    sub: Submission | None = None
    digest: str = ""
    sandbox: Path | None = None
    exercises: list[str] = field(default_factory=list)
    cpu: int | None = None  # the CPU its judge and worker share (a local batch spreads its judges over the CPUs)
    grading: Grading | None = None  # its handle in the judge session while it runs (a local batch)
    backstops: int = 0  # earlier gradings of the same submission in a row that ended at the wall-clock backstop


@dataclass
class Options:
    jobs: int = DEFAULT_JOBS
    force: bool = False
    timeout_per_submission: float = DEFAULT_SUBMISSION_TIMEOUT
    memory_mb: int | None = DEFAULT_MEMORY_MB
    test_timeout: float = DEFAULT_TIMEOUT
    wall_timeout: float = DEFAULT_WALL
    caps: Caps = field(default_factory=Caps)
    adjustments: Adjustments = field(default_factory=Adjustments)  # applied at every run; not part of the hash
    backstop_regrades: int = DEFAULT_BACKSTOP_REGRADES  # re-grades of a result cut short by the backstop

    def limits(self) -> Limits:
        return Limits(timeout=self.test_timeout, wall=self.wall_timeout,
                      memory_bytes=self.memory_mb * 2**20 if self.memory_mb else None)

    def settings(self) -> dict:
        """The limits that change a grade: part of the submission hash."""
        return {"test_timeout": self.test_timeout, "wall_timeout": self.wall_timeout, "memory_mb": self.memory_mb,
                "timeout_per_submission": self.timeout_per_submission}


class Batch:
    """One run over a submissions folder. ``run()`` grades what needs grading and returns the sorted rows.

    On the portable path (no fork: grader.facilities) the judge session grades one submission at a time in its
    own process, so a submission past its time limit is stopped by ending the session (and every process below
    it); the next submission starts a new one."""

    grades_here = True  # the workers run on this machine: its confinement is the batch's (not so on Dask)

    def __init__(self, submissions: Path, out: Path, tests_dir: Path, opts: Options, progress, stream) -> None:
        self.out, self.tests_dir, self.opts = out, tests_dir, opts
        self.points = results.load_points(tests_dir)
        out.mkdir(parents=True, exist_ok=True)
        seal_out(out)
        skipped: dict[str, str] = {}
        self.entries = scan(submissions, out, skipped)
        refuse_out_names(self.entries, skipped)
        self.skipped = skipped
        report_skipped(skipped, out / SKIPPED_NAME, stream)
        self.tests, self.code = hashes.tests_digest(tests_dir), hashes.code_digest()
        self.seals = Seals(out)
        self.reruns = Reruns(out, self.seals, force=opts.force, backstop_regrades=opts.backstop_regrades)
        # the gradebook starts with every row an earlier run graded: an interrupted run loses nothing
        self.book = Gradebook(out / CSV_NAME, list(self.points),
                              earlier_rows(out, self.seals, list(self.points), opts.adjustments))
        self.display = Display(len(self.entries), progress, stream)
        self.box_root = out / SANDBOX
        self.counts = {"graded": 0, "ungradable": 0, "error": 0, "skipped": 0}
        self.server: JudgeSession | None = None
        self.running: dict[int, Job] = {}  # request id -> job
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.queue: deque[Job] = deque()
        self.unprepared = dict(self.entries)  # students not read yet (the rows an interruption leaves pending)
        self.signals = StopSignals()
        self.start = time.monotonic()
        self.warning = facilities.unconfined_warning() if self.grades_here else None
        self.unknown = unknown_students(opts.adjustments, [*self.entries, *self.book.by_student])

    # -- rows -------------------------------------------------------------------------------------------------

    def record(self, student: str, doc: dict, seconds: float | None, *, write: bool) -> None:
        if write:
            # what may reach the student: hidden tests as hint and points; the instructor's full record (reasons,
            # tracebacks, output of hidden tests) is kept apart, where no worker can read and no student looks
            results.write(results.for_students(doc), self.out / student / "results.json")
            results.write(doc, self.out / INSTRUCTOR / f"{student}.json")
        # written at every run, graded or unchanged: the adjustments may have changed since
        adjustment = self.opts.adjustments.apply(student, doc)
        (self.out / student / "feedback.md").write_text(
            feedback.render(doc, student=student, adjustment=adjustment), encoding="utf-8", errors="backslashreplace")
        if seconds is not None:
            self.seals.seal(student)
        row = row_from_doc(student, doc, list(self.points), self.opts.adjustments)
        self.book.add(row)
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        self.counts["skipped"] += seconds is None
        self.display.finished(row, seconds)

    def prepare(self, student: str, entries: list[Entry]) -> Job | None:
        """Everything that needs no grading is recorded here; returns a Job to run otherwise."""
        meta = entries[0].meta()
        if len(entries) > 1:
            label = ", ".join(e.label for e in entries)
            self.record(student, self._ungradable(f"duplicate student id: {label} (keep one entry; names that differ"
                                                  " only in case are one id)",
                                                  **{**meta, "entry": label}), 0.0, write=True)
            return None
        wanted = {ex: m["name"] for ex, m in self.points.items()}
        entry = entries[0]
        try:
            sub = sandbox.collect(entry.path, wanted, self.opts.caps, parts=entry.parts, student=student)
        except Exception as exc:  # noqa: BLE001 - e.g. a file we may not read: this row, not the batch
            sub = Submission(student=student, entry=entry.path, error=f"could not read the submission ({exc})")
        if sub.error:
            self.record(student, self._ungradable(sub.error, **meta), 0.0, write=True)
            return None
        digest = hashes.submission_hash(sub, tests=self.tests, settings=self.opts.settings(), code=self.code)
        old = self.reruns.unchanged(student, digest)
        if old is not None:
            self.record(student, old, None, write=False)
            return None
        return Job(student=student, entry=entry.label, meta=meta, sub=sub, digest=digest,
                   backstops=self.reruns.backstop_gradings(student, digest))

    # -- grading ----------------------------------------------------------------------------------------------

    def _server(self, first: Job) -> JudgeSession:
        """Started on the first submission that needs grading (``first``): torch and the collection of every
        suite are paid here, once for the batch. Two things depend on which exercises the submissions have started
        (``_started_counts``):
        - torch's symbolic shapes are imported when a submission has started an exercise that counts FLOPs;
        - the session grades the reference once (``warm_up`` in grader.judge.serve), in each exercise that at
          least WARM_FROM submissions have started, so that the oracles and first calls of its suites are paid
          once too (~1 s for the whole course, saved again by each submission). An untouched stub's tests fail
          at their first call: warming them would save nothing."""
        if self.server is None:
            reference, warm, flops = self._warm_plan([first, *self.queue])
            self.box_root.mkdir(parents=True, exist_ok=True)  # whatever the imports write stays here
            self.server = JudgeSession.for_suites(
                list(self.points), hidden=True, tmpdir=self.box_root, limits=self.opts.limits(),
                tests_dir=self.tests_dir, flop_counter=flops, warm_with=reference if warm else None,
                warm_exercises=warm)
            # a portable session stopped at a deadline takes every process below it along (grader.judge.session.end)
            self.server.reaper = ProcessTree
        return self.server

    def _warm_plan(self, jobs: list[Job]) -> tuple[Path, list[str], bool]:
        """(the reference's folder, the exercises the session warms with it, whether it imports torch's symbolic
        shapes) for a session about to grade ``jobs``: the local one here, each Dask worker's (grader.batch.dask_pool)."""
        reference = self.tests_dir.parent / "solutions"
        started = self._started_counts(jobs, reference)
        warm = [ex for ex, meta in self.points.items()
                if started[ex] >= WARM_FROM and (reference / f"{meta['name']}.py").is_file()]
        return reference, warm, any(meta.get("counts_flops") and started[ex] for ex, meta in self.points.items())

    def _started_counts(self, jobs: list[Job], reference: Path) -> dict[str, int]:
        """Per exercise, how many of ``jobs`` hold a file for it other than its untouched stub (the stub made from
        the reference; any file when the course has no reference). Files are read, never run, here."""
        try:
            stubs = {name: text.replace("\r\n", "\n").strip() for name, text in expected_stubs(reference).items()}
        except Exception:  # noqa: BLE001 - a reference we cannot read (or parse): every file counts as started
            stubs = {}
        started = {}
        for ex, meta in self.points.items():
            name = f"{meta['name']}.py"
            started[ex] = sum(
                name in job.sub.files
                and job.sub.files[name].decode(errors="replace").replace("\r\n", "\n").strip() != stubs.get(name)
                for job in jobs
            )
        return started

    def begin(self, job: Job) -> bool:
        """What every grading starts with, local or on Dask; False when no exercise is left to grade (recorded)."""
        # an earlier results.json stays until this grading replaces it: until then the gradebook keeps its row
        (self.out / job.student).mkdir(parents=True, exist_ok=True)
        job.exercises = [ex for ex, meta in self.points.items() if f"{meta['name']}.py" in job.sub.files]
        if not job.exercises:
            self.finish(job, None)
        return bool(job.exercises)

    def launch(self, job: Job) -> None:
        if not self.begin(job):
            return
        try:
            server = self._server(job)
        except GradingError:
            self.queue.appendleft(job)  # the session could not start: this row is recorded with the others
            raise
        job.sandbox = self.box_root / job.student
        shutil.rmtree(job.sandbox, ignore_errors=True)
        exercises_dir = job.sandbox / "exercises"
        exercises_dir.mkdir(parents=True)
        for name, data in job.sub.files.items():
            write_new(exercises_dir / name, data)  # a link another submission's worker put here is not followed
        job.cpu = self._free_cpu()
        job.grading = server.submit(exercises_dir, job.exercises, events=job.sandbox / "events.jsonl",
                                    workdir=job.sandbox / "work", cpu=job.cpu,
                                    deadline=self.opts.timeout_per_submission)
        self.running[job.grading.id] = job

    def _free_cpu(self) -> int | None:
        """The CPU the fewest running judges use: each judge shares one with its worker (they take turns)."""
        used = Counter(job.cpu for job in self.running.values())
        return min(self.cpus, key=lambda cpu: used[cpu]) if self.cpus else None

    def finish(self, job: Job, outcome: Outcome | None) -> None:
        """Build the submission's results document from its judge's events (here, in the trusted parent), for a
        local batch and a Dask one alike; ``None``: it had no exercise to grade."""
        elapsed = outcome.elapsed if outcome is not None else 0.0
        meta = {**job.meta, "sources": job.sub.sources, "submission_hash": job.digest,
                "review": review.suspicious(job.sub.files)}
        if outcome is None:
            doc = results.empty(job.entry, **meta)
        else:
            doc = results.from_outcome(outcome, points=self.points, target=job.entry, exercises=job.exercises,
                                       hidden_run=True, timeout_per_submission=self.opts.timeout_per_submission,
                                       meta=meta)
        # the same "Files graded / Not graded" block as on Gradescope
        doc = results.with_submission(doc, job.sub, target=job.entry, points=self.points)
        self.record(job.student, self.reruns.settle(doc, job.backstops), elapsed, write=True)
        if job.sandbox is not None:
            shutil.rmtree(job.sandbox, ignore_errors=True)

    def _ungradable(self, reason: str, *, status: str = "ungradable", **meta) -> dict:
        return results.ungradable(reason, points=self.points, exercises=list(self.points), status=status, **meta)

    def abandon(self, exc: GradingError) -> None:
        """The judge session itself failed (the suites do not collect, say): every row left says so."""
        for job in [*self.running.values(), *self.queue]:
            meta = {**job.meta, "submission_hash": job.digest}
            self.record(job.student, self._ungradable(f"grading failed (not the student's fault): {_first_line(exc)}",
                                                      status="error", **meta), 0.0, write=True)
        self.running.clear()
        self.queue.clear()

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> list[dict]:
        """Grade, then close (always: on SIGINT/SIGTERM too); ``Interrupted`` after closing if a signal came."""
        for warning in (self.unknown, self.warning):
            if warning:
                print(warning, file=sys.stderr, flush=True)  # once, before any student code runs
        with StopSignals() as self.signals:
            try:
                self._prepare_all()
                self._loop()
            finally:
                self.signals.stopping = True
                self.close()
        if self.signals.signum:
            raise Interrupted(self.signals.signum)
        return self.book.rows

    def _prepare_all(self) -> None:
        # every submission is read before any student code runs: code graded early cannot change a later one
        for student, entries in self.entries.items():
            if self.signals.signum:
                break
            self.unprepared.pop(student, None)
            job = self.prepare(student, entries)
            if job:
                self.queue.append(job)
        self.book.write()

    def _loop(self) -> None:
        while (self.queue or self.running) and not self.signals.signum:
            try:
                while self.queue and len(self.running) < self.opts.jobs and not self.signals.signum:
                    self.launch(self.queue.popleft())
                # the handles enforce each submission's deadline (a stop on the portable path ends the session)
                done = self.server.wait([job.grading for job in self.running.values()], 0.2) if self.running else []
            except GradingError as exc:
                self.abandon(exc)
                break
            self._take(done)
            self.book.write_if_due()
            self.display.tick()

    def _take(self, done: list[Grading]) -> None:
        """Record the finished gradings; if a stop ended the session (the portable path), the submissions sent to it
        but not started go back to the queue, in the order they were sent, for the next session."""
        for grading in done:
            job = self.running.pop(grading.id)
            self.finish(job, grading.result())
        if self.server is not None and self.server.pid is None:
            self.server = None
            waiting = sorted(self.running.items())
            self.running.clear()
            for _, job in reversed(waiting):
                job.grading = None
                self.queue.appendleft(job)

    def close(self) -> None:
        """Stop what still runs (an interrupted batch), wait until every process the batch started has gone, then
        write the gradebook (submissions not graded get a "pending" row) and remove the sandboxes."""
        tree = ProcessTree(self.server.pid if self.server is not None else None)  # before anything is killed
        for job in self.running.values():
            if job.grading is not None and job.grading.judge_pid:
                kill(job.grading.judge_pid)  # its worker's launcher sees the judge go and kills the worker
            if job.grading is not None:
                job.grading.abandon()  # its events file: nothing more is read from it
        if self.server is not None:
            self.server.close()
        tree.reap()
        left = [(job.student, job.meta.get("lms_id", "")) for job in [*self.running.values(), *self.queue]]
        left += [(student, entries[0].lms_id) for student, entries in self.unprepared.items()]
        for student, lms_id in left:
            self.book.pending(student, lms_id)
        self.reruns.remember([student for student, _ in left])  # a stopped --force run: the next run owes them
        kept = sum(1 for student, _ in left if self.book.by_student[student]["status"] != "pending")
        self.running.clear()
        self.queue.clear()
        rows = self.book.finish()
        shutil.rmtree(self.box_root, ignore_errors=True)  # every sandbox is finished by now
        self.display.close(self._summary(rows, len(left), kept))

    def _summary(self, rows: list[dict], left: int, kept: int = 0) -> str:
        c, n = self.counts, len(self.entries)
        summary = (f"{n} submission{'s' if n != 1 else ''}: {c['graded']} graded, {c['ungradable']} ungradable, "
                   f"{c['error']} errors, {c['skipped']} unchanged (skipped)")
        if left:
            name = signal.Signals(self.signals.signum).name if self.signals.signum else "an error"
            summary += f", {left} not graded (stopped by {name}: run the batch again to grade them"
            summary += f"; {kept} keep their earlier grade until then)" if kept else ")"
        summary += f" in {time.monotonic() - self.start:.1f} s -> {self.out / CSV_NAME}"
        earlier = len(rows) - n
        if earlier > 0:
            summary += f" (with {earlier} row{'s' if earlier != 1 else ''} of earlier runs)"
        if self.skipped:
            k = len(self.skipped)
            summary += f" ({k} other entr{'y' if k == 1 else 'ies'} skipped: {self.out / SKIPPED_NAME})"
        for warning in (self.unknown, self.warning):
            summary += "\n" + warning if warning else ""
        return summary


def seal_out(out: Path) -> bool:
    """Where workers drop to a uid of their own (root without Landlock or namespaces), OUT (grades, every
    student's results, the grader's key, the sandboxes) becomes the instructor's alone: OUT is sealed and
    what the batch writes from now on is created without rights for group or others. Each worker then opens
    only the way to its own folders (grader.worker.uid.open_ways, put back by close_ways)."""
    from grader import facilities
    from grader.worker import uid

    if not uid.needs_uid_drop(facilities.present()):
        return False
    os.umask(0o077)
    uid.seal([out, out / Seals.KEY])
    return True


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]

