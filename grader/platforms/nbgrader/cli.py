"""``python -m grader nbgrader``: write the course folder, or extract the exercise files of notebooks."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.platforms.nbgrader.course_folder import DEFAULT_OUT, build_course
from grader.platforms.nbgrader.notebook import ASSIGNMENT, NOTEBOOK, CourseError
from grader.platforms.nbgrader.submissions import extract_submission, find_notebooks


def cmd_nbgrader(args: argparse.Namespace) -> int:
    if args.extract:
        return cmd_extract(args.extract, Path(args.out))
    try:
        out = build_course(args.out)
    except CourseError as exc:
        print(f"grader nbgrader: {exc}")
        return 1
    print(f"wrote the nbgrader course to {out}/ (source/{ASSIGNMENT}/{NOTEBOOK}); next, from that folder:")
    print(f"  nbgrader generate_assignment {ASSIGNMENT}")
    return 0


def cmd_extract(paths: list[str], out: Path) -> int:
    """One notebook: its exercise files go into ``out``. Several, or a folder: into ``out/<student id>/``, the
    layout ``python -m grader batch`` grades."""
    if len(paths) == 1 and Path(paths[0]).is_file():
        notebooks, problems = {"": Path(paths[0])}, []  # out / "" is out
    else:
        notebooks, problems = find_notebooks(paths)
    for student, notebook in notebooks.items():
        try:
            written = extract_submission(notebook, out / student)
            print(f"{out / student}: {len(written)} exercise file(s) from {notebook}")
        except ValueError as exc:
            problems.append(f"{student or notebook}: {exc}")
    for problem in problems:
        print(f"skipped {problem}")
    return 1 if problems else 0


def add_nbgrader_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("nbgrader", help="write the nbgrader course (source/lesson1/lesson1.ipynb) to --out")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"course folder (default {DEFAULT_OUT})")
    p.add_argument("--extract", metavar="NOTEBOOK", nargs="+",
                   help="instead: write the exercise cells as exN_*.py files into --out; several notebooks or a "
                        "submitted/ folder go to --out/<student id>/, ready for `python -m grader batch`")
    p.set_defaults(func=cmd_nbgrader)
    return p
