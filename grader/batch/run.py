"""``batch_grade``: grade a folder of submissions here (grader.batch.scheduler) or on a Dask cluster
(grader.batch.dask_pool); it imports both, so neither imports the other."""

from __future__ import annotations

from pathlib import Path

from grader import results
from grader.batch.adjustments import ADJUSTMENTS_NAME, Adjustments, AdjustmentsError
from grader.batch.scheduler import DEFAULT_JOBS, DEFAULT_MEMORY_MB, DEFAULT_SUBMISSION_TIMEOUT, Batch, Options
from grader.grading import TESTS_DIR
from grader.intake.collect import Caps
from grader.batch.reruns import DEFAULT_BACKSTOP_REGRADES
from grader.judge.session import DEFAULT_TIMEOUT, DEFAULT_WALL, GradingError


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
    scheduler: str | None = None,
    adjustments: Path | None = None,
    backstop_regrades: int = DEFAULT_BACKSTOP_REGRADES,
) -> list[dict]:
    """Grade every entry of ``submissions`` into ``out``; returns the gradebook rows sorted by student id.
    ``scheduler``: grade on that Dask cluster (``tcp://host:port``, or ``local:N`` to start one here) instead of
    ``jobs`` at a time in this machine's judge session (grader.batch.dask_pool). ``adjustments``: the course
    staff's file (grader.batch.adjustments), by default ``out/adjustments.toml`` when there is one.
    ``backstop_regrades``: how many times a result cut short by the wall-clock backstop is graded again before it
    is kept (grader.batch.reruns)."""
    submissions, out, tests_dir = Path(submissions), Path(out), Path(tests_dir)
    if not submissions.is_dir():
        raise GradingError(f"no such folder: {submissions}")
    if jobs < 1:
        raise GradingError("--jobs must be at least 1")
    opts = Options(jobs=jobs, force=force, timeout_per_submission=timeout_per_submission, memory_mb=memory_mb,
                   test_timeout=test_timeout, wall_timeout=wall_timeout, caps=caps, backstop_regrades=backstop_regrades,
                   adjustments=load_adjustments(adjustments, out, tests_dir))
    if scheduler:
        from grader.batch.dask_pool import DaskBatch  # Dask is an optional dependency

        return DaskBatch(submissions, out, tests_dir, opts, progress, stream, scheduler=scheduler).run()
    return Batch(submissions, out, tests_dir, opts, progress, stream).run()


def load_adjustments(path: Path | None, out: Path, tests_dir: Path) -> Adjustments:
    """The adjustments file named, else ``OUT/adjustments.toml`` if it exists, else none; a mistake in it stops the
    batch before anything is graded, with a message that names its line."""
    path = Path(path) if path else out / ADJUSTMENTS_NAME
    if not path.exists() and path == out / ADJUSTMENTS_NAME:
        return Adjustments()
    try:
        return Adjustments.load(path, results.load_points(tests_dir))
    except AdjustmentsError as exc:
        raise GradingError(str(exc)) from None
