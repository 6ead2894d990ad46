"""Grade a folder of submissions into ``OUT/grades.csv``, one row per student, whatever the submissions do.

``python -m grader batch SUBMISSIONS --out OUT [--jobs N] [--force] [--timeout-per-submission S] [--memory-mb M]``

* ``SUBMISSIONS`` holds one entry per student: a folder or a ``.zip`` / ``.tar.gz`` / ``.tgz``. The student id is
  the entry name without its archive suffix. Names starting with ``.`` are ignored; any other regular file
  (``README.txt``, a ``.rar``) gets no row: it is listed with its reason in ``OUT/skipped.txt`` and a warning
  is printed. When two entries give the
  same id (``alice/`` and ``alice.zip``), neither is graded: the one row for ``alice`` is ungradable and names
  both entries, so the instructor decides which one counts.
* Only the exercise files are taken (``grader.sandbox`` has the search rule and the archive checks). Each
  submission is graded in a fresh sandbox ``OUT/.sandbox/<student>/`` (removed afterwards) with fresh copies
  of the visible and hidden tests.
* This process preloads torch once, then forks one worker per submission (``--jobs`` at a time). The worker
  takes its own process group and address-space / CPU limits, and calls ``grading.grade``, which forks the
  pytest child that runs the student code. The worker writes ``OUT/<student>/results.json`` and
  ``feedback.md``. A worker that runs past ``--timeout-per-submission`` is stopped ("timed out"); one that dies
  gets a row that says so. Processes that student code leaves behind, even ones that left their process
  group, are re-parented to this process (a Linux child subreaper) and killed.
* Each row is appended to ``OUT/grades.csv`` as soon as its submission is done, so an interrupted run loses
  nothing already graded; at the end the file is rewritten sorted by student id.
* A re-run skips a submission whose taken files, tests, grading code (``llm_basics/*.py``, ``grader/*.py``,
  ``*.ini``, ``*.json``) and limits hash to the ``submission_hash`` stored in its ``results.json`` (``--force``
  grades everything again).
* A graded row's reason lists, per exercise, why it was not graded (missing, ambiguous...), and the one reason
  shared by all its tests when they all fail the same way (a SyntaxError, an import error), cut to one line.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import io
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from grader import feedback, results, sandbox
from grader.grading import TESTS_DIR, grade
from grader.runner import DEFAULT_TIMEOUT, GradingError, Limits, describe_status, preload
from grader.sandbox import Caps, Submission

DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
DEFAULT_SUBMISSION_TIMEOUT = 600.0  # seconds of wall clock for one whole submission
DEFAULT_MEMORY_MB = 2048  # address space a submission may add on top of the preloaded interpreter
STOP_GRACE = 5.0  # seconds a stopped worker has to clean up before its process group is killed
WORKER_SLACK = 256 * 1024 * 1024  # the worker's own headroom above the pytest child's memory budget
SANDBOX = ".sandbox"
CSV_NAME = "grades.csv"
SKIPPED_NAME = "skipped.txt"
NOT_A_SUBMISSION = "not a folder or a supported archive (.zip, .tar.gz, .tgz)"
REASON_CHARS = 200  # one exercise's part of a gradebook reason
EXIT_STOPPED = 75


@dataclass
class Job:
    student: str
    entry: str  # entry name(s) in the submissions folder, for messages
    sub: Submission | None = None
    digest: str = ""
    pid: int = 0
    pidfd: int = -1
    started: float = 0.0
    stopping: bool = False
    sandbox: Path | None = None


@dataclass
class Options:
    jobs: int = DEFAULT_JOBS
    force: bool = False
    timeout_per_submission: float = DEFAULT_SUBMISSION_TIMEOUT
    memory_mb: int | None = DEFAULT_MEMORY_MB
    test_timeout: float = DEFAULT_TIMEOUT
    caps: Caps = field(default_factory=Caps)

    def settings(self) -> dict:
        """The limits that change a grade: part of the submission hash."""
        return {"test_timeout": self.test_timeout, "memory_mb": self.memory_mb,
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


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _set_limit(which: int, soft: int, hard: int) -> None:
    """Lower a limit to (soft, hard), never above the hard limit this process already has."""
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


class _Stopped(BaseException):
    """Raised in a worker by SIGTERM: unwinding runs the runner's clean-up (it kills the pytest child)."""


def _raise_stopped(signum, frame):  # noqa: ARG001
    raise _Stopped()


def _worker(job: Job, out: Path, tests_dir: Path, points: dict, opts: Options) -> None:
    """Runs in the forked worker: grade one submission, write its results and feedback, never return."""
    code = 1
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, _raise_stopped)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
        box = job.sandbox
        (box / "tmp").mkdir(parents=True, exist_ok=True)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        log = os.open(box / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), line_buffering=True)
        tempfile.tempdir = str(box / "tmp")  # the runner's scratch space stays inside the sandbox
        os.environ["TMPDIR"] = tempfile.tempdir
        if opts.memory_mb:
            cap = _address_space() + opts.memory_mb * 2**20 + WORKER_SLACK
            _set_limit(resource.RLIMIT_AS, cap, cap)
        # CPU seconds are counted per process (the pytest child starts from 0): a backstop behind the wall clock
        cpu = int(opts.timeout_per_submission) + 10
        _set_limit(resource.RLIMIT_CPU, cpu, cpu + 5)
        sub = job.sub
        exercises_dir, tests_copy = sandbox.build_sandbox(box, sub.files, tests_dir)
        present = [ex for ex, meta in points.items() if f"{meta['name']}.py" in sub.files]
        meta = {"student": job.student, "entry": job.entry, "sources": sub.sources, "submission_hash": job.digest,
                "review": sandbox.suspicious(sub.files)}
        try:
            if present:
                limits = Limits(timeout=opts.test_timeout,
                                memory_bytes=opts.memory_mb * 2**20 if opts.memory_mb else None)
                doc = grade(exercises_dir, exercises=present, hidden=True, tests_dir=tests_copy, limits=limits)
            else:
                doc = _empty_doc(job.entry)
            doc = add_ungraded_exercises(doc, sub.problems, points)
            doc["output"] += "\n" + sub.summary()  # the same "Files graded / Not graded" block as on Gradescope
            doc["lesson"]["target"] = job.entry
            doc["lesson"].update(meta)
        except GradingError as exc:
            doc = ungradable_doc(f"grading failed (not the student's fault): {exc}", points, status="error", **meta)
        results.write(doc, out / job.student / "results.json")
        (out / job.student / "feedback.md").write_text(feedback.render(doc, student=job.student))
        code = 0
    except _Stopped:
        code = EXIT_STOPPED
    except BaseException:  # noqa: BLE001 - the parent turns this into a row; the log keeps the traceback
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


class Reaper:
    """Makes this process the child subreaper, so processes orphaned by student code come back to it, and
    kills them. Children that existed before the batch started are left alone."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.before = set(self._children())
        self.previous = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            value = ctypes.c_int(0)
            if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) == 0:
                self.previous = value.value
                libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            self._libc = libc
        except (OSError, AttributeError):
            self._libc = None

    def _children(self) -> dict[int, tuple[str, int]]:
        """pid -> (state, process group) for every child of this process."""
        found = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.me:
                found[int(name)] = (fields[0], int(fields[2]))
        return found

    def sweep(self, active: set[int]) -> int:
        """Kill and reap every stray child (not an active worker, not there before); returns how many."""
        killed = 0
        own_group = os.getpgrp()
        for _ in range(20):
            strays = {pid: info for pid, info in self._children().items()
                      if pid not in active and pid not in self.before}
            if not strays:
                break
            for pid, (state, group) in strays.items():
                if group not in (own_group, pid) and group > 1:
                    _killpg(group)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                killed += state != "Z"
            time.sleep(0.02)
            for pid in strays:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        return killed

    def close(self) -> None:
        if self._libc is not None and self.previous is not None:
            self._libc.prctl(_PR_SET_CHILD_SUBREAPER, self.previous, 0, 0, 0)


def _killpg(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
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
                   test_timeout=test_timeout, caps=caps)
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

    def launch(job: Job) -> None:
        # once, on the first submission that needs grading: torch (and, for ex4's FLOP counts, torch._dynamo)
        # is then imported in every worker for free
        box_root.mkdir(parents=True, exist_ok=True)
        saved, tempfile.tempdir = tempfile.tempdir, str(box_root)  # torch's warm-up writes a cache dir: keep it in OUT
        try:
            preload(flop_counter="ex4" in points)
        finally:
            tempfile.tempdir = saved
        folder = out / job.student
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "feedback.md"):
            (folder / name).unlink(missing_ok=True)
        job.sandbox = box_root / job.student
        shutil.rmtree(job.sandbox, ignore_errors=True)
        job.sandbox.mkdir(parents=True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _worker(job, out, tests_dir, points, opts)
        job.pid, job.pidfd, job.started = pid, os.pidfd_open(pid), time.monotonic()
        running[pid] = job

    def finish(job: Job, status: int) -> None:
        os.close(job.pidfd)
        _killpg(job.pid)  # whatever is left in the worker's group
        reaper.sweep(set(running))
        elapsed = time.monotonic() - job.started
        doc = None
        path = out / job.student / "results.json"
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and path.is_file():
            try:
                doc = json.loads(path.read_text())
            except ValueError:
                doc = None
        meta = {"student": job.student, "entry": job.entry, "sources": job.sub.sources,
                "submission_hash": job.digest}
        if doc is None:
            if job.stopping:
                reason = f"timed out after {opts.timeout_per_submission:g} s (the whole submission)"
            else:
                detail = describe_status(status)
                last = _last_line(job.sandbox / "worker.log")
                reason = f"grading process died ({detail}{': ' + last if last else ''})"
            doc = ungradable_doc(reason, points, **meta)
            record(job.student, doc, elapsed, write=True)
        else:
            record(job.student, doc, elapsed, write=False)
        shutil.rmtree(job.sandbox, ignore_errors=True)

    reaper = Reaper()
    running: dict[int, Job] = {}
    # every submission is read before any student code runs: code graded early cannot change a later one
    queue = deque(job for job in (prepare(student, paths) for student, paths in sorted(entries.items())) if job)
    try:
        while queue or running:
            while queue and len(running) < opts.jobs:
                launch(queue.popleft())
            if not running:
                continue
            ready, _, _ = select.select([j.pidfd for j in running.values()], [], [], 0.2)
            for job in [j for j in running.values() if j.pidfd in ready]:
                _, status = os.waitpid(job.pid, 0)
                del running[job.pid]
                finish(job, status)
            now = time.monotonic()
            for job in running.values():
                late = now - job.started - opts.timeout_per_submission
                if late > 0 and not job.stopping:
                    job.stopping = True
                    _signal(job.pid, signal.SIGTERM)  # the worker unwinds and kills its pytest child
                elif late > STOP_GRACE:
                    _killpg(job.pid)
            display.tick()
    except BaseException:
        for job in running.values():
            _signal(job.pid, signal.SIGTERM)
        time.sleep(0.2)
        for job in running.values():
            _killpg(job.pid)
            os.waitpid(job.pid, 0)
            os.close(job.pidfd)
            shutil.rmtree(job.sandbox, ignore_errors=True)
        running.clear()
        raise
    finally:
        reaper.sweep(set(running))
        reaper.close()
        rows = book.finish()
        shutil.rmtree(box_root, ignore_errors=True)  # every sandbox is finished by now
        summary = (f"{len(rows)} submissions: {counts['graded']} graded, {counts['ungradable']} ungradable, "
                   f"{counts['error']} errors, {counts['skipped']} unchanged (skipped) in "
                   f"{time.monotonic() - start:.1f} s -> {out / CSV_NAME}")
        if skipped:
            summary += f" ({len(skipped)} other entr{'y' if len(skipped) == 1 else 'ies'} skipped: {out / SKIPPED_NAME})"
        display.close(summary)
    return rows


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _last_line(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4000))
            lines = f.read().decode("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def cmd_batch(args: argparse.Namespace) -> int:
    rows = batch_grade(
        Path(args.submissions), Path(args.out), jobs=args.jobs, force=args.force,
        timeout_per_submission=args.timeout_per_submission, memory_mb=args.memory_mb or None,
        test_timeout=args.timeout,
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
                   help=f"seconds allowed per test (default {DEFAULT_TIMEOUT:g})")
    b.set_defaults(func=cmd_batch)
    return b
