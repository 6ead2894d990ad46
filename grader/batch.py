"""Grade a folder of submissions into ``OUT/grades.csv``, one row per student, whatever the submissions do.

``python -m grader batch SUBMISSIONS --out OUT [--jobs N] [--force] [--timeout-per-submission S] [--memory-mb M]``

* ``SUBMISSIONS`` holds one entry per student: a folder or a ``.zip`` / ``.tar.gz`` / ``.tgz``. The student id is
  the entry name without its archive suffix. Names starting with ``.`` are ignored; any other regular file
  (``README.txt``, a ``.rar``) gets no row: it is listed with its reason in ``OUT/skipped.txt`` and a warning
  is printed. When two entries give the
  same id (``alice/`` and ``alice.zip``), neither is graded: the one row for ``alice`` is ungradable and names
  both entries, so the instructor decides which one counts.
* Only the exercise files are taken (``grader.sandbox`` has the search rule and the archive checks). Each
  submission's files are written to a fresh folder ``OUT/.sandbox/<student>/`` (removed afterwards).
* This process preloads torch once and starts one judge session (``grader.runner.JudgeServer``) that collects
  the visible and hidden suites once; the session forks a judge per submission (``--jobs`` at a time), and the
  judge runs the student code only in its confined worker (``grader.judge``). The judge writes an event stream;
  this process, the only one that writes OUT, builds ``OUT/<student>/results.json`` and ``feedback.md`` from it.
  A submission that runs past ``--timeout-per-submission`` is stopped ("timed out"); its worker, and whatever
  the worker started (a PID namespace), go with it.
* Each row is appended to ``OUT/grades.csv`` as soon as its submission is done, so an interrupted run loses
  nothing already graded; at the end the file is rewritten sorted by student id.
* A re-run skips a submission whose taken files, tests, grading code (``llm_basics/**/*.py``,
  ``grader/**/*.py``, ``*.ini``, ``*.json``) and limits hash to the ``submission_hash`` stored in its
  ``results.json``, if that document carries this grader's seal (``Seals``) and was not cut short by the
  wall-clock backstop (``--force`` grades everything again).
* A graded row's reason lists, per exercise, why it was not graded (missing, ambiguous...), and the one reason
  shared by all its tests when they all fail the same way (a SyntaxError, an import error), cut to one line.
"""

from __future__ import annotations

import argparse
import csv
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
from grader.grading import TESTS_DIR, suite_files
from grader.runner import (DEFAULT_TIMEOUT, DEFAULT_WALL, GradingError, JudgeServer, Limits, SessionResult, absorb, describe_status,
                           preload, read_events)
from grader.sandbox import Caps, Submission

DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
DEFAULT_SUBMISSION_TIMEOUT = 600.0  # seconds of wall clock for one whole submission
DEFAULT_MEMORY_MB = 2048  # address space a submission may add on top of the preloaded interpreter
SANDBOX = ".sandbox"
CSV_NAME = "grades.csv"
SKIPPED_NAME = "skipped.txt"
NOT_A_SUBMISSION = "not a folder or a supported archive (.zip, .tar.gz, .tgz)"
REASON_CHARS = 200  # one exercise's part of a gradebook reason


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


# ----------------------------------------------------------------------------------------------------------
# Results documents and rows
# ----------------------------------------------------------------------------------------------------------


def _empty_doc(target: str) -> dict:
    return {
        "score": 0.0, "max_score": 0.0, "execution_time": 0.0, "output": "", "visibility": "visible",
        "stdout_visibility": "hidden", "tests": [],
        "lesson": {"status": "graded", "target": target, "hidden_run": True, "hidden_points_not_run": 0,
                   "exercises": [], "restarts": 0},
    }


def add_ungraded_exercises(doc: dict, problems: dict[str, str], points: dict) -> dict:
    """Give each exercise in ``problems`` (missing, ambiguous, undecodable...) a 0 with its reason, in order."""
    graded = {e["id"]: e for e in doc["lesson"]["exercises"]}
    ordered = []
    for ex, meta in points.items():
        if ex in graded:
            ordered.append(graded[ex])
        elif ex in problems:
            total = float(meta["visible"] + meta["hidden"])
            ordered.append({
                "id": ex, "name": meta["name"], "title": meta["title"], "score": 0.0, "max_score": total,
                "visible_score": 0.0, "visible_max": float(meta["visible"]), "hidden_score": 0.0,
                "hidden_max": float(meta["hidden"]), "hidden_run": True, "problem": problems[ex],
            })
            doc["tests"].append({
                "name": f"{meta['name']}: not graded", "number": f"{ex[2:]}.0", "score": 0.0,
                "max_score": total, "status": "failed", "output": problems[ex], "visibility": "visible",
                "tags": [ex, "not_graded"],
                "extra_data": {"nodeid": f"{meta['name']}.py", "exercise": ex, "hidden": False, "hint": "",
                               "kind": "not_graded", "reason": problems[ex], "details": "",
                               "captured_output": "", "duration": 0.0},
            })
    doc["lesson"]["exercises"] = ordered
    doc["score"] = round(sum(e["score"] for e in ordered), 2)
    doc["max_score"] = round(sum(e["max_score"] for e in ordered), 2)
    doc["output"] = f"Score: {doc['score']:g} / {doc['max_score']:g}"
    return doc


def ungradable_doc(reason: str, points: dict, *, status: str = "ungradable", **meta) -> dict:
    doc = results.ungradable(reason, points=points, exercises=list(points))
    doc["lesson"]["status"] = status
    doc["lesson"].update(meta)
    return doc


def _num(x) -> str:
    return "" if x is None else f"{x:g}"


def _short(text: str, limit: int = REASON_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def common_failure(doc: dict, ex: str) -> str | None:
    """The reason every test of ``ex`` failed with, when they all failed with the same one (e.g. a SyntaxError)."""
    tests = [t for t in doc["tests"] if t.get("extra_data", {}).get("exercise") == ex]
    if not tests or any(t.get("status") == "passed" for t in tests):
        return None
    reasons = {t.get("extra_data", {}).get("reason", "") for t in tests}
    reason = reasons.pop() if len(reasons) == 1 else ""
    return reason or None


def row_from_doc(student: str, doc: dict, ex_ids: list[str]) -> dict:
    lesson = doc["lesson"]
    status = lesson.get("status", "graded")
    row = {"student": student, "max": _num(doc["max_score"]), "status": status}
    by_id = {e["id"]: e for e in lesson.get("exercises", [])}
    if status == "graded":
        for ex in ex_ids:
            row[ex] = _num(by_id[ex]["score"]) if ex in by_id else ""
        row["total"] = _num(doc["score"])
        notes = []
        for e in lesson["exercises"]:
            why = e.get("problem") or common_failure(doc, e["id"])
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
        if lesson.get("review"):
            notes.append("review by hand, it mentions " + " / ".join(lesson["review"]))
        row["reason"] = "; ".join(notes)
    else:
        row.update({ex: "" for ex in ex_ids})
        row["total"] = ""
        row["reason"] = lesson.get("reason", "")
    return row


class Gradebook:
    """``OUT/grades.csv``: rows appended as they come (open, append, flush, close), sorted at the end."""

    def __init__(self, path: Path, ex_ids: list[str]) -> None:
        self.path = path
        self.columns = ["student", *ex_ids, "total", "max", "status", "reason"]
        self.rows: list[dict] = []
        with open(path, "w", newline="") as f:
            csv.DictWriter(f, self.columns).writeheader()

    def add(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
            f.flush()

    def finish(self) -> list[dict]:
        self.rows.sort(key=lambda r: r["student"])
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)
        return self.rows


# ----------------------------------------------------------------------------------------------------------
# Processes: limits, the worker, and stray processes left by student code
# ----------------------------------------------------------------------------------------------------------


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------------------------------------
# Progress
# ----------------------------------------------------------------------------------------------------------


class Display:
    """A rich progress bar on a terminal; one plain line per submission otherwise; nothing with mode None."""

    def __init__(self, total: int, mode: str | None, stream) -> None:
        from grader.report import use_rich

        self.stream = stream or sys.stdout
        self.mode = ("rich" if use_rich(self.stream) else "plain") if mode == "auto" else mode
        self.total, self.done, self.failed = total, 0, 0
        self.progress = None
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            # auto_refresh=False: no refresh thread, because this process forks workers.
            self.progress = Progress(
                TextColumn("[bold]Grading"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[red]failed {task.fields[failed]}"), TimeElapsedColumn(), TextColumn("left"),
                TimeRemainingColumn(), console=Console(file=self.stream), auto_refresh=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("grading", total=total, failed=0)
            self.progress.refresh()

    def tick(self) -> None:
        if self.progress is not None:
            self.progress.refresh()

    def finished(self, row: dict, seconds: float | None) -> None:
        self.done += 1
        self.failed += row["status"] != "graded"
        if self.mode == "rich":
            self.progress.update(self.task, advance=1, failed=self.failed)
            if row["status"] != "graded":
                self.progress.console.print(f"{row['student']}: {row['status']}: {row['reason']}",
                                            markup=False, highlight=False)
            self.progress.refresh()
        elif self.mode == "plain":
            width = len(str(self.total))
            what = (f"{row['total']}/{row['max']}" if row["status"] == "graded"
                    else f"{row['status']}: {row['reason']}")
            when = "skipped (unchanged)" if seconds is None else f"{seconds:.1f} s"
            self.stream.write(f"[{self.done:>{width}}/{self.total}] {row['student']}  {what}  ({when})\n")
            self.stream.flush()

    def close(self, summary: str) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.mode is not None:
            self.stream.write(summary + "\n")
            self.stream.flush()


# ----------------------------------------------------------------------------------------------------------
# The batch
# ----------------------------------------------------------------------------------------------------------


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
    points = results.load_points(tests_dir)
    ex_ids = list(points)
    wanted = {ex: meta["name"] for ex, meta in points.items()}
    out.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}
    entries = scan(submissions, out, skipped)
    _report_skipped(skipped, out, stream)
    tests = sandbox.tests_digest(tests_dir)
    code = sandbox.code_digest()
    book = Gradebook(out / CSV_NAME, ex_ids)
    display = Display(len(entries), progress, stream)
    box_root = out / SANDBOX
    counts = {"graded": 0, "ungradable": 0, "error": 0, "skipped": 0}
    start = time.monotonic()

    seals = Seals(out)

    def record(student: str, doc: dict, seconds: float | None, *, write: bool) -> None:
        if write:
            results.write(doc, out / student / "results.json")
            (out / student / "feedback.md").write_text(feedback.render(doc, student=student))
        if seconds is not None:
            seals.seal(student)
        row = row_from_doc(student, doc, ex_ids)
        book.add(row)
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        counts["skipped"] += seconds is None
        display.finished(row, seconds)

    def prepare(student: str, paths: list[Path]) -> Job | None:
        """Everything that needs no grading is recorded here; returns a Job to run otherwise."""
        label = ", ".join(_entry_label(p) for p in paths)
        if len(paths) > 1:
            record(student, ungradable_doc(f"duplicate student id: {label} (keep one entry)", points,
                                           student=student, entry=label), 0.0, write=True)
            return None
        try:
            sub = sandbox.collect(paths[0], wanted, opts.caps)
        except Exception as exc:  # noqa: BLE001 - e.g. a file we may not read: this row, not the batch
            sub = Submission(student=student, entry=paths[0], error=f"could not read the submission ({exc})")
        if sub.error:
            record(student, ungradable_doc(sub.error, points, student=student, entry=label), 0.0, write=True)
            return None
        digest = sandbox.submission_hash(sub, tests=tests, settings=opts.settings(), code=code)
        previous = out / student / "results.json"
        if not opts.force and previous.is_file() and seals.verify(student):
            try:
                old = json.loads(previous.read_text())
                if (old["lesson"].get("submission_hash") == digest and old["lesson"].get("status") != "error"
                        and not old["lesson"].get("needs_regrade")):
                    record(student, old, None, write=False)
                    return None
            except (ValueError, KeyError, TypeError, OSError):
                pass
        return Job(student=student, entry=label, sub=sub, digest=digest)

    server: JudgeServer | None = None
    running: dict[int, Job] = {}  # request id -> job

    def launch(job: Job) -> None:
        nonlocal server
        folder = out / job.student
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "feedback.md"):
            (folder / name).unlink(missing_ok=True)
        job.exercises = [ex for ex, meta in points.items() if f"{meta['name']}.py" in job.sub.files]
        if not job.exercises:
            finish(job, None)
            return
        if server is None:  # once, on the first submission that needs grading: torch, torch._dynamo for the
            # exercises that need it, and the collection of every suite are paid here, once for the batch
            box_root.mkdir(parents=True, exist_ok=True)
            saved, tempfile.tempdir = tempfile.tempdir, str(box_root)  # torch's warm-up writes a cache dir
            try:
                preload(flop_counter=any(meta.get("warm_torch_dynamo") for meta in points.values()))
            finally:
                tempfile.tempdir = saved
            files = suite_files(list(points), hidden=True, tests_dir=tests_dir)
            server = JudgeServer(files, rootdir=tests_dir.parent, tmpdir=box_root, limits=opts.limits())
        job.sandbox = box_root / job.student
        shutil.rmtree(job.sandbox, ignore_errors=True)
        exercises_dir = job.sandbox / "exercises"
        exercises_dir.mkdir(parents=True)
        for name, data in job.sub.files.items():
            (exercises_dir / name).write_bytes(data)
        job.started = time.monotonic()
        rid = server.submit(exercises_dir, job.exercises, events=job.sandbox / "events.jsonl",
                            workdir=job.sandbox / "work")
        running[rid] = job

    def finish(job: Job, status: int | None) -> None:
        """Build the submission's results document from its judge's events (here, in the trusted parent)."""
        elapsed = time.monotonic() - job.started if job.started else 0.0
        meta = {"student": job.student, "entry": job.entry, "sources": job.sub.sources,
                "submission_hash": job.digest, "review": sandbox.suspicious(job.sub.files)}
        if status is None:
            doc = _empty_doc(job.entry)
        else:
            session = SessionResult()
            absorb(session, _events(job.sandbox / "events.jsonl"))
            missing = [t for t in session.tests if t["nodeid"] not in session.records]
            if job.stopping:
                doc = ungradable_doc(f"timed out after {opts.timeout_per_submission:g} s (the whole submission)",
                                     points, **meta)
            elif status != 0 or not session.tests or missing:
                why = f"the judge stopped ({describe_status(status)})" if status else "the judge reported no tests"
                doc = ungradable_doc(f"grading failed (not the student's fault): {why}", points, status="error",
                                     **meta)
            else:
                doc = results.build(session, points=points, target=job.entry, hidden_run=True,
                                    exercises=job.exercises, execution_time=elapsed)
        if doc["lesson"].get("status", "graded") == "graded":
            doc = add_ungraded_exercises(doc, job.sub.problems, points)
            doc["output"] += "\n" + job.sub.summary()  # the same "Files graded / Not graded" block as on Gradescope
            doc["lesson"]["target"] = job.entry
            doc["lesson"].update(meta)
        record(job.student, doc, elapsed, write=True)
        if job.sandbox is not None:
            shutil.rmtree(job.sandbox, ignore_errors=True)

    # every submission is read before any student code runs: code graded early cannot change a later one
    queue = deque(job for job in (prepare(student, paths) for student, paths in sorted(entries.items())) if job)
    def abandon(exc: GradingError) -> None:
        """The judge session itself failed (the suites do not collect, say): every row left says so."""
        for job in [*running.values(), *queue]:
            meta = {"student": job.student, "entry": job.entry, "submission_hash": job.digest}
            record(job.student, ungradable_doc(f"grading failed (not the student's fault): {_first_line(exc)}",
                                               points, status="error", **meta), 0.0, write=True)
        running.clear()
        queue.clear()

    try:
        while queue or running:
            try:
                while queue and len(running) < opts.jobs:
                    launch(queue.popleft())
                replies = server.replies(0.2) if running else []
            except GradingError as exc:
                abandon(exc)
                break
            for reply in replies:
                job = running.get(reply.get("started") or reply.get("done"))
                if job is None:
                    continue
                if "pid" in reply:
                    job.judge_pid = reply["pid"]
                else:
                    del running[reply["done"]]
                    finish(job, reply["status"])
            now = time.monotonic()
            for job in running.values():
                if now - job.started > opts.timeout_per_submission and job.judge_pid and not job.stopping:
                    job.stopping = True
                    _kill(job.judge_pid)  # its worker's launcher sees the judge go and kills the worker
            display.tick()
    finally:
        for job in running.values():  # interrupted: nothing of a stopped submission keeps running
            if job.judge_pid:
                _kill(job.judge_pid)
        if server is not None:
            server.close()
        running.clear()
        rows = book.finish()
        shutil.rmtree(box_root, ignore_errors=True)  # every sandbox is finished by now
        summary = (f"{len(rows)} submissions: {counts['graded']} graded, {counts['ungradable']} ungradable, "
                   f"{counts['error']} errors, {counts['skipped']} unchanged (skipped) in "
                   f"{time.monotonic() - start:.1f} s -> {out / CSV_NAME}")
        if skipped:
            summary += f" ({len(skipped)} other entr{'y' if len(skipped) == 1 else 'ies'} skipped: {out / SKIPPED_NAME})"
        display.close(summary)
    return rows


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:REASON_CHARS]


def _events(path: Path) -> list[dict]:
    events: list[dict] = []
    try:
        read_events(path, 0, events)
    except OSError:
        pass
    return events


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def cmd_batch(args: argparse.Namespace) -> int:
    rows = batch_grade(
        Path(args.submissions), Path(args.out), jobs=args.jobs, force=args.force,
        timeout_per_submission=args.timeout_per_submission, memory_mb=args.memory_mb or None,
        test_timeout=args.timeout, wall_timeout=args.wall_timeout,
    )
    return 1 if any(r["status"] == "error" for r in rows) else 0


def add_batch_parser(sub) -> argparse.ArgumentParser:
    b = sub.add_parser("batch", help="grade a folder of submissions (folders, .zip, .tar.gz) into a CSV gradebook")
    b.add_argument("submissions", help="folder with one entry per student: a folder or a .zip/.tar.gz/.tgz")
    b.add_argument("--out", required=True, help="where to write grades.csv and <student>/results.json, feedback.md")
    b.add_argument("--jobs", "-j", type=int, default=DEFAULT_JOBS,
                   help=f"submissions graded at the same time (default {DEFAULT_JOBS})")
    b.add_argument("--force", action="store_true", help="grade again even submissions that have not changed")
    b.add_argument("--timeout-per-submission", type=float, default=DEFAULT_SUBMISSION_TIMEOUT, metavar="S",
                   help=f"wall-clock seconds for one whole submission (default {DEFAULT_SUBMISSION_TIMEOUT:g})")
    b.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, metavar="M",
                   help=f"memory a submission may use, in MB (default {DEFAULT_MEMORY_MB}; 0 = no limit)")
    b.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"CPU seconds the student code may use per test (default {DEFAULT_TIMEOUT:g})")
    b.add_argument("--wall-timeout", type=float, default=DEFAULT_WALL, metavar="S",
                   help=f"wall-clock seconds a test may wait for the student code, a backstop for sleeping or blocked"
                        f" code; a test stopped there marks its row for re-grading (default {DEFAULT_WALL:g})")
    b.set_defaults(func=cmd_batch)
    return b
