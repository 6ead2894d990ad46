"""``python -m grader batch``: the command line over grader.batch.run.batch_grade."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.batch.lifecycle import Interrupted
from grader.batch.reruns import DEFAULT_BACKSTOP_REGRADES
from grader.batch.run import batch_grade
from grader.batch.scheduler import DEFAULT_JOBS, DEFAULT_MEMORY_MB, DEFAULT_SUBMISSION_TIMEOUT
from grader.judge.session import DEFAULT_TIMEOUT, DEFAULT_WALL


DESCRIPTION = """\
Grade every submission in SUBMISSIONS into OUT: one row per student in OUT/grades.csv, whatever the
submissions do. A later run grades only what changed, and an interrupted one (Ctrl-C, SIGTERM) stops every
grading process, keeps every row graded so far and resumes there.

Entries of SUBMISSIONS (names starting with "." are ignored), and the student id each gives:
  <id>/  <id>.zip  <id>.tar.gz  <id>.tgz            one student: <id> (no LMS id)
  <name>[_LATE]_<user id>_<attachment id>_<file>     a file of Canvas's "Download Submissions": student
                                                     <name>_<user id>, LMS id <user id>; a re-upload is
                                                     <file>-1, -2...: the newest counts
  <name>[_LATE]_<user id>_text.html, _link.html      a Canvas text or URL entry (not graded)
  <Full Name>_<id>_assignsubmission_<plugin>[_]/     a folder of Moodle's "Download all submissions": student
                                                     <Full Name>_<id>, LMS id <id> (the participant id)
  <Full Name>_<id>_assignsubmission_<plugin>_<file>  the same, downloaded without folders
  any other file                                     skipped, listed in OUT/skipped.txt
In a submission, <exercise>.py is taken from at most 3 levels deep (one in exercises/ wins) and archives
inside it are opened; a misnamed file, a file too deep or an archive that could not be opened is named in
the row's reason, never taken.

OUT/grades.csv columns: student, lms_id, one per exercise (ex1, ex2...: points as graded), total, max, late
(no | 2 days | 3 hours | yes (time unknown): a Canvas _LATE_ file), penalty (percent taken off for lateness),
adjusted_total (total after --adjustments: what the exports take), status (graded | ungradable: the
submission cannot be graded, not a 0 | error: the grader failed, graded again next run | pending: not reached
before an interruption), reason. Beside it: <student>/results.json (the student's copy: hidden tests as hint
and points), .grader-instructor/<student>.json (the full record), <student>/feedback.md (for the student), item_analysis.csv/.png, score_histograms.csv,
similarity.html. `python -m grader export canvas|moodle` merges the totals into the LMS's gradebook file.
"""


def cmd_batch(args: argparse.Namespace) -> int:
    try:
        rows = _grade(args)
    except Interrupted as exc:
        print(f"grader: {exc}; the gradebook holds every row graded so far: run the same command to go on",
              file=sys.stderr)
        return 128 + exc.signum
    if not args.no_analysis:
        _analyze(args)
    return 1 if any(r["status"] == "error" for r in rows) else 0


def _analyze(args: argparse.Namespace) -> None:
    from grader.batch.analysis import analyze

    try:
        written = analyze(Path(args.out), Path(args.submissions))
    except Exception as exc:  # noqa: BLE001 - the grades are written; an analysis failure must not hide them
        print(f"warning: the item analysis failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        return
    if written:
        print("analysis: " + ", ".join(str(path) for path in written.values()))


def _grade(args: argparse.Namespace) -> list[dict]:
    return batch_grade(
        Path(args.submissions), Path(args.out), jobs=DEFAULT_JOBS if args.jobs is None else args.jobs,
        force=args.force,
        timeout_per_submission=args.timeout_per_submission, memory_mb=args.memory_mb or None,
        test_timeout=args.timeout, wall_timeout=args.wall_timeout, scheduler=args.scheduler,
        adjustments=args.adjustments,
        backstop_regrades=args.backstop_regrades,
    )


def add_batch_parser(sub) -> argparse.ArgumentParser:
    b = sub.add_parser("batch", help="grade a folder of submissions (folders, .zip, .tar.gz) into a CSV gradebook",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("submissions", help="folder of submissions: plain entries, or a Canvas or Moodle download, unzipped")
    b.add_argument("--out", required=True, help="where to write grades.csv and <student>/results.json, feedback.md")
    where = b.add_mutually_exclusive_group()
    where.add_argument("--jobs", "-j", type=int,  # no default here: argparse would not see "--jobs 2" given
                       help=f"submissions graded at the same time on this machine (default {DEFAULT_JOBS})")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on a Dask cluster instead: its scheduler (tcp://HOST:PORT), or local:N to start"
                            " N worker processes here (needs the dask extra: pip install -e '.[dask]')")
    b.add_argument("--force", action="store_true", help="grade again even submissions that have not changed")
    b.add_argument("--no-analysis", action="store_true",
                   help="skip the item analysis and the similarity report written at the end")
    b.add_argument("--timeout-per-submission", type=float, default=DEFAULT_SUBMISSION_TIMEOUT, metavar="S",
                   help=f"wall-clock seconds for one whole submission (default {DEFAULT_SUBMISSION_TIMEOUT:g})")
    b.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, metavar="M",
                   help=f"memory a submission may use, in MB (default {DEFAULT_MEMORY_MB}; 0 = no limit)")
    b.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"CPU seconds the student code may use per test (default {DEFAULT_TIMEOUT:g})")
    b.add_argument("--wall-timeout", type=float, default=DEFAULT_WALL, metavar="S",
                   help=f"wall-clock seconds a test may wait for the student code, a backstop for sleeping or blocked"
                        f" code; a test stopped there marks its row for re-grading (default {DEFAULT_WALL:g})")
    b.add_argument("--adjustments", metavar="FILE",
                   help="the course staff's extensions, late policy and overrides (a TOML file: see the README),"
                        " applied at every run (default OUT/adjustments.toml when it exists)")
    b.add_argument("--backstop-regrades", type=int, default=DEFAULT_BACKSTOP_REGRADES, metavar="N",
                   help=f"re-runs that grade a row cut short by the wall-clock backstop again, at most N times; then"
                        f" its test is kept as a timeout (default {DEFAULT_BACKSTOP_REGRADES})")
    b.set_defaults(func=cmd_batch)
    return b


def add_export_parser(sub) -> None:
    """``python -m grader export canvas|moodle`` (grader.platforms.lms)."""
    from grader.platforms.lms import add_export_parser as add

    add(sub)


def add_analyze_parser(sub) -> None:
    """``python -m grader analyze`` (grader.batch.analysis)."""
    from grader.batch.analysis import add_analyze_parser as add

    add(sub)
