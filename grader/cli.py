"""``python -m grader``: a thin command line over functions that the project tests call directly."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from grader.judge.session import DEFAULT_TIMEOUT, DEFAULT_WALL, GradingError, Limits

DEFAULT_RESULTS = Path(".grades/results.json")


def cmd_grade(args: argparse.Namespace) -> int:
    from grader import report, results
    from grader.grading import grade

    progress = report.progress_line(sys.stderr) if sys.stderr.isatty() else None
    if progress:
        progress.status("starting: importing torch and collecting the graded tests...")
    limits = Limits(timeout=args.timeout, wall=args.wall_timeout, max_strikes=args.max_strikes)
    notice = report.LongTestNotice(sys.stderr, limits.timeout, progress=progress)
    doc = grade(args.target, exercises=args.exercise, hidden=args.hidden, limits=limits, on_progress=progress,
                notice=notice)
    if progress:
        progress.clear()
    results.write(doc, Path(args.json))
    if args.junit_xml:
        results.write_named(Path(args.junit_xml), results.to_junit_xml(doc))
    report.print_report(doc, verbose=args.verbose)
    print(f"Full results: {args.json}" + (f", JUnit XML: {args.junit_xml}" if args.junit_xml else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader", description="Grade and manage the lesson exercises.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade one submission and print what to fix")
    g.add_argument("--target", default="exercises",
                   help="exercises (default), or any folder of exN_*.py files (instructors: solutions)")
    g.add_argument("--exercise", "-e", action="append", help="grade only this exercise (ex2, 2, ex2_topk_attention)")
    g.add_argument("--hidden", action="store_true",
                   help="also run tests/hidden (instructors; the student copy has none)")
    g.add_argument("--json", default=str(DEFAULT_RESULTS), help=f"where to write the results (default {DEFAULT_RESULTS})")
    g.add_argument("--junit-xml", help="also write JUnit XML here")
    g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"CPU seconds your code may use per test (default {DEFAULT_TIMEOUT:g})")
    g.add_argument("--wall-timeout", type=float, default=DEFAULT_WALL, metavar="S",
                   help=f"wall-clock seconds a test may wait for your code: a backstop for sleeping or blocked code"
                        f" (default {DEFAULT_WALL:g})")
    g.add_argument("--max-strikes", type=int, default=2, metavar="N",
                   help="after N timeouts or crashes in one exercise, skip its other tests (default 2; 0 runs all)")
    g.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and captured output")
    g.set_defaults(func=cmd_grade)

    from grader.plots import add_plots_parser

    add_plots_parser(sub)
    from grader.watch import add_watch_parser

    add_watch_parser(sub)
    for module, function in _OPTIONAL_COMMANDS:
        # the student release ships without the instructor tools; look next to this file only, so that another
        # copy of the project installed in the same environment cannot lend them
        here = Path(__file__).parent.joinpath(*module.split(".")[1:])  # grader.a.b -> grader/a/b
        if not (here.with_suffix(".py").is_file() or (here / "__init__.py").is_file()):
            continue
        getattr(importlib.import_module(module), function)(sub)
    return parser


# Instructor tools: present in this repository, left out of the student release.
_OPTIONAL_COMMANDS = (
    ("grader.instructor.check", "add_check_parser"),
    ("grader.instructor.stubs", "add_stubs_parser"),
    ("grader.instructor.release", "add_release_parser"),
    ("grader.platforms.gradescope", "add_gradescope_parser"),
    ("grader.batch.cli", "add_batch_parser"),
    ("grader.batch.cli", "add_export_parser"),
    ("grader.batch.cli", "add_analyze_parser"),
    ("grader.platforms.nbgrader.cli", "add_nbgrader_parser"),
    ("grader.instructor.mutation", "add_mutation_parser"),
)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GradingError as exc:
        print(f"grader: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grader: interrupted", file=sys.stderr)
        return 130
