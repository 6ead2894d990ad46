"""``python -m grader watch`` (``make watch``): grade an exercise each time you save it.

One process pays for ``import torch`` and for collecting the graded suites once, at the start: it keeps a judge
session open (``grader.judge.session.JudgeServer``, with every visible suite collected). Each save of an exercise file
submits that exercise to the session, which forks a judge for it, which forks its worker, exactly as ``make
grade`` does: the save goes through ``grader.grading.grade`` with the open session passed in, so the verdicts are
the same. The report of the saved exercise is then redrawn.

Why it is fast: a forked judge starts in milliseconds, and an unfinished exercise fails its tests at once, so
the report comes back in a fraction of a second; a finished exercise costs its tests' own compute.
``bench/bench_watch.py`` measures the time from a save to the report.

Saves are noticed with ``watchfiles`` (inotify on Linux, FSEvents on macOS) within ~50 ms, and a look at the
exercise files' signatures (mtime, size, inode) every 0.2 s catches a save wherever no event arrives (some
network and container file systems). Only the exercise files themselves count: an editor's swap, backup and
temporary files are ignored, and so are files in other folders. A save made while an exercise is being graded
is graded right after it.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader import grading, report, results
from grader.judge.session import DEFAULT_TIMEOUT, DEFAULT_WALL, GradingError, JudgeSession, Limits

QUIET_MS = 50  # a save is graded once its folder has been quiet this long (an editor may write a file in steps)
TICK_MS = 200  # with no save, the watcher still wakes this often (to say it is ready; a stat of four files)
CLEAR_SCREEN = "\033[H\033[2J\033[3J"
STARTING = "starting: importing torch and collecting the graded tests (once per `make watch`)..."


class Sitting:
    """torch imported once and the visible suites collected once; then one ``grade`` per save."""

    def __init__(self, target: str | Path, exercises: list[str], limits: Limits) -> None:
        self.target, self.exercises, self.limits = target, exercises, limits
        self.points = results.load_points()
        self._tmp = tempfile.TemporaryDirectory(prefix="watch-")
        self.server: JudgeSession | None = None

    def start(self) -> None:
        # the first FLOP count on the meta device (ex4) imports torch's symbolic shapes: pay it here, once
        self.server = JudgeSession.for_suites(
            self.exercises, hidden=False, tmpdir=Path(self._tmp.name), limits=self.limits,
            flop_counter=any(self.points[ex].get("counts_flops") for ex in self.exercises))

    def grade(self, exercises: list[str], on_progress=None) -> dict:
        if self.server is None:  # the session ended (an error of ours, reported); start a fresh one
            self.start()
        try:
            return grading.grade(self.target, exercises=exercises, limits=self.limits, on_progress=on_progress,
                                 server=self.server)
        except GradingError:
            self.server.close()
            self.server = None
            raise

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self._tmp.cleanup()


def exercise_files(folder: Path, exercises: list[str]) -> dict[str, str]:
    """File name -> exercise id, for the exercises watched."""
    points = results.load_points()
    return {f"{points[ex]['name']}.py": ex for ex in exercises}


def signatures(folder: Path, files: dict[str, str]) -> dict[str, tuple]:
    """Exercise id -> what identifies the saved version of its file (a save changes one of these)."""
    found = {}
    for name, ex in files.items():
        try:
            st = (folder / name).stat()
        except OSError:
            found[ex] = ()
        else:
            found[ex] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return found


def saved_exercises(graded: dict[str, tuple], folder: Path, files: dict[str, str]) -> list[str]:
    """The exercises whose file was saved since ``graded`` (its signatures) and still exists. Comparing
    signatures, not trusting each event, also catches a save made while the watcher was starting, and leaves
    out an event that changed nothing."""
    now = signatures(folder, files)
    return sorted(ex for ex, sig in now.items() if sig and sig != graded.get(ex))


def watch(
    target: str | Path = "exercises",
    *,
    exercises: list[str] | None = None,
    limits: Limits | None = None,
    verbose: bool = False,
    out=None,
    err=None,
    stop_event=None,
) -> int:
    """Grade ``exercises`` (default: all) in ``target`` once, then each time one of their files is saved, until
    Ctrl-C (or ``stop_event`` is set). Returns the exit code."""
    import watchfiles

    from grader.course import resolve_target

    out = out or sys.stdout
    err = err or sys.stderr
    tty = out.isatty()
    chosen = [grading.normalise_exercise(e) for e in exercises] if exercises else grading.exercise_ids()
    folder = resolve_target(str(target)).resolve()
    files = exercise_files(folder, chosen)
    limits = limits or Limits(max_strikes=2)
    shown = target if isinstance(target, str) and target in ("exercises", "solutions") else folder
    waiting = (f"Watching {shown}/ ({', '.join(sorted(files))}): save a file to grade it again. Ctrl-C stops.")

    sitting = Sitting(target, chosen, limits)
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        faulthandler.register(signal.SIGUSR1, file=err, all_threads=True)  # `kill -USR1`: where every thread is
    try:
        started = time.perf_counter()
        progress = report.progress_line(err) if err.isatty() else None
        if progress:
            progress.status(STARTING)
        sitting.start()
        graded = signatures(folder, files)
        _show(sitting, chosen, out, verbose, f"Graded {', '.join(chosen)} at start-up", started, tty, progress)
        ready = False
        # yield_on_timeout: an empty batch every TICK_MS, so the first one says the watcher runs (then, and not
        # before, "Watching" is printed, and a save made during the start-up is found by its signature)
        for _ in watchfiles.watch(folder, watch_filter=lambda _, path: Path(path).name in files, step=QUIET_MS,
                                  rust_timeout=TICK_MS, yield_on_timeout=True, recursive=False,
                                  stop_event=stop_event, raise_interrupt=True, debug=False):
            saved = saved_exercises(graded, folder, files)
            if not ready:
                ready = True
                if not saved:
                    print(waiting, file=out, flush=True)
            if saved:
                graded.update({ex: sig for ex, sig in signatures(folder, files).items() if ex in saved})
                _grade_saved(sitting, saved, files, out, err, verbose, tty)
                print(waiting, file=out, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        _close(sitting)
    print("\nStopped watching.", file=out, flush=True)
    return 0


def _grade_saved(sitting: Sitting, saved: list[str], files: dict[str, str], out, err, verbose: bool,
                 tty: bool) -> None:
    """Grade the exercises whose files were just saved, and show the result."""
    seen = time.perf_counter()
    names = ", ".join(name for name, ex in files.items() if ex in saved)
    if tty:
        out.write(CLEAR_SCREEN)
    print(f"{names} saved at {time.strftime('%H:%M:%S')}: grading...", file=out, flush=True)
    _show(sitting, saved, out, verbose, "Graded", seen, tty,
          report.progress_line(err) if err.isatty() else None, clear=False)


def _close(sitting: Sitting) -> None:
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # a second Ctrl-C must not
    sitting.close()  # cut the clean-up short
    if main:
        signal.signal(signal.SIGINT, previous)


def _show(sitting: Sitting, exercises: list[str], out, verbose: bool, what: str, since: float, tty: bool,
          progress, *, clear: bool = True) -> None:
    """Grade ``exercises`` and print their report (``progress``: the status line on a terminal, or None)."""
    try:
        doc = sitting.grade(exercises, on_progress=progress)
    except GradingError as exc:
        if progress:
            progress.clear()
        print(f"grader: {exc}", file=out, flush=True)
        return
    if progress:
        progress.clear()
    if tty and clear:
        out.write(CLEAR_SCREEN)
    report.print_report(doc, verbose=verbose, stream=out, watching=True)
    print(f"{what} in {time.perf_counter() - since:.2f} s.", file=out, flush=True)


def add_watch_parser(sub) -> None:
    p = sub.add_parser("watch", help="grade an exercise each time you save it (Ctrl-C stops)")
    p.add_argument("--target", default="exercises", help="exercises (default), or any folder of exN_*.py files")
    p.add_argument("--exercise", "-e", action="append", help="watch only this exercise (ex2, 2, ex2_topk_attention)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"CPU seconds your code may use per test (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--wall-timeout", type=float, default=DEFAULT_WALL, metavar="S",
                   help=f"wall-clock backstop per test (default {DEFAULT_WALL:g})")
    p.add_argument("--max-strikes", type=int, default=2, metavar="N",
                   help="after N timeouts or crashes in one exercise, skip its other tests (default 2; 0 runs all)")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and captured output")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    limits = Limits(timeout=args.timeout, wall=args.wall_timeout, max_strikes=args.max_strikes)
    return watch(args.target, exercises=args.exercise, limits=limits, verbose=args.verbose)
