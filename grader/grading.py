"""Grade one submission: choose the suites, run them (grader.judge.session), build the results document."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from grader import results
from grader.judge.session import HARD_GRACE, GradingError, JudgeSession, Limits, follow, suite_files  # noqa: F401
from grader.judge.events import report_progress

from grader.course import REPO_ROOT, TESTS_DIR, resolve_target  # noqa: F401 - REPO_ROOT: imported from here by project tests


def exercise_ids(tests_dir: Path = TESTS_DIR) -> list[str]:
    return list(results.load_points(tests_dir))


def normalise_exercise(name: str, tests_dir: Path = TESTS_DIR) -> str:
    """'ex2', '2', 'ex2_topk_attention' and 'ex2_topk_attention.py' all mean exercise ex2."""
    points = results.load_points(tests_dir)
    key = name.strip().removesuffix(".py")
    key = f"ex{key}" if key.isdigit() else key
    for ex, meta in points.items():
        if key in (ex, meta["name"]):
            return ex
    raise GradingError(f"unknown exercise {name!r}: choose one of {', '.join(points)}")


def has_hidden_tests(tests_dir: Path = TESTS_DIR) -> bool:
    return any((tests_dir / "hidden").glob("test_ex*.py"))


def needs_flop_counter(points: dict, exercises: list[str], folder: Path) -> bool:
    """Whether to import torch's symbolic shapes before forking the judge and the worker
    (``preload(flop_counter=True)``).

    Counting FLOPs on the meta device imports them (sympy, ~0.45 s of CPU) in the process that counts: the judge
    for the suites' oracles, the worker for the student's code ("counts_flops" in points.json). Importing them
    once here saves one import when both need them: when the exercise is written. While its file still raises
    NotImplementedError somewhere, the tests fail before any count (the student is called first), so the
    import is left to whichever process needs it, if any: a stub costs nothing."""
    for ex in exercises:
        if not points[ex].get("counts_flops"):
            continue
        try:
            with open(folder / f"{points[ex]['name']}.py", "rb") as f:
                source = f.read(1 << 20).decode(errors="replace")  # a submitted file is read, never run, here
        except OSError:
            continue  # not submitted: nothing of it runs
        if "NotImplementedError" not in source:
            return True
    return False


def grade(
    target: str | Path = "exercises",
    *,
    exercises: list[str] | None = None,
    hidden: bool = False,
    tests_dir: Path = TESTS_DIR,
    limits: Limits | None = None,
    on_progress=None,
    server=None,
    notice=None,
) -> dict:
    """Grade ``target`` (exercises, solutions, or a folder of exN_*.py files) and return the results document.

    ``server``: an open ``JudgeSession`` that has collected these suites (``grader.watch``), else one is
    started for this call. ``notice``: a ``grader.report.LongTestNotice`` (says when a test runs long)."""
    start = time.perf_counter()
    points = results.load_points(tests_dir)
    chosen = [normalise_exercise(e, tests_dir) for e in exercises] if exercises else list(points)
    hidden = hidden and has_hidden_tests(tests_dir)
    suite_files(chosen, hidden=hidden, tests_dir=tests_dir)  # an exercise without tests: an error before any start
    # a relative target is relative to the caller's folder, not to the judge's (which runs elsewhere)
    where = resolve_target(target)
    warm = needs_flop_counter(points, chosen, REPO_ROOT / where)
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        tmpdir = Path(tmp)
        own = server is None
        if own:
            server = JudgeSession.for_suites(chosen, hidden=hidden, tmpdir=tmpdir, limits=limits,
                                             tests_dir=tests_dir, flop_counter=warm)
        try:
            def on_event(events: list[dict]) -> None:
                if on_progress:
                    report_progress(events, on_progress)
                if notice:
                    notice.events(events)

            grading = server.submit(where, chosen, events=tmpdir / "events.jsonl", workdir=tmpdir / "work",
                                    limits=limits, stall=limits.wall + HARD_GRACE, on_event=on_event, on_wait=notice)
            session = follow(grading)
        finally:
            if own:
                server.close()
    return results.build(
        session,
        points=points,
        target=str(target),
        hidden_run=hidden,
        exercises=chosen,
        execution_time=time.perf_counter() - start,
    )
