"""``python -m grader batch``: the command line over grader.batch.scheduler.batch_grade."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.batch.scheduler import (DEFAULT_JOBS, DEFAULT_MEMORY_MB, DEFAULT_SUBMISSION_TIMEOUT, batch_grade)
from grader.runner import DEFAULT_TIMEOUT, DEFAULT_WALL


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
