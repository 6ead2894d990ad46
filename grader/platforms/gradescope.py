"""Gradescope: grade one submission inside Gradescope's container, and the ``gradescope`` commands.

``python -m grader gradescope --out dist/gradescope`` writes ``dist/gradescope/autograder.zip``
(``grader.platforms.gradescope_zip``: its layout, ``setup.sh`` and ``run_autograder``).

``run_autograder`` calls ``python -m grader gradescope-run``, which takes only the expected exercise files out
of the submission (``grader.intake.collect``: at most three folders deep, ``exercises/<name>.py`` preferred), grades them
with the visible and hidden suites within a whole-submission time budget (``--budget``: Gradescope records
nothing at all for a run it stops at its own limit), and writes Gradescope's ``results.json`` (``render``):

* one box per test function: the cases of a parametrized test are added up into one box whose output names the
  failing cases (students saw ~150 boxes otherwise); the instructor's full document keeps every case;
* hidden tests as counts only by default (one "hidden tests" box per exercise, ``--hidden-detail counts``), or a
  box per hidden test with its hint and points (``--hidden-detail tests``), never its name, reason or output;
  ``--hidden-visibility`` says when students see those boxes (``after_published`` by default);
* for course staff, a box per hidden test function with its name, points, hint and the reason of every failing
  case, always ``"visibility": "hidden"`` (Gradescope: "test case will never be shown to students"; instructors
  see every test), whatever ``--hidden-visibility`` says: a reason can hold a hidden test's input. Gradescope's
  score is the top-level ``score``, which overrides the sum of the boxes, so these points are not counted twice;
  Gradescope hides the total from students while a box is hidden (shown once grades are published);
* stdout (``stdout_visibility`` always ``hidden``: instructors only) holds the report and the same record of
  every failed hidden test;
* everything that is not one of Gradescope's own keys (``max_score``, the ``lesson`` record) under
  ``extra_data``;
* every output declared ``"text"`` (``output_format`` at the top and on each box, ``test_output_format``,
  ``test_name_format``): Gradescope's default, ``simple_format``, renders some HTML, and ``md`` and ``html`` would
  render a crafted message's link or image. As ``text`` it is shown as written; control characters (terminal
  escape codes) are shown as escapes too (``grader.untrusted.printable``).

A submission that cannot be graded still gets a results.json: score 0 and an output that says why.
``AUTOGRADER_ROOT`` replaces ``/autograder`` (for local tests).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from grader.platforms.gradescope_zip import (
    DEFAULT_BUDGET, DEFAULT_HIDDEN_DETAIL, DEFAULT_HIDDEN_VISIBILITY, HIDDEN_DETAILS, VISIBILITIES, GradescopeError,
    build_autograder,
)
from grader.untrusted import printable

MAX_CASES_LISTED = 5  # failing cases of one parametrized test named in its box
# How Gradescope shows each output and test name: as plain text, never as Markdown or HTML (see the docstring).
OUTPUT_FORMAT = "text"
OUTPUT_CHARS = 20_000  # one box's output, at most (a reason is ~300 characters, printed output 2,000)


# ----------------------------------------------------------------------------------------------------------
# Grading one submission (inside the container)
# ----------------------------------------------------------------------------------------------------------


def _note_problems(doc: dict, sub) -> None:
    """Say, in the tests of each exercise that was not graded, why; and list what was graded on top."""
    for test in doc["tests"]:
        problem = sub.problems.get(test["extra_data"]["exercise"])
        if problem:
            test["output"] = f"Not graded: {problem}"
            test["extra_data"]["reason"] = problem
    doc["output"] += "\n" + sub.summary()
    doc["lesson"]["target"] = "exercises"
    doc["lesson"]["submission"] = {"sources": dict(sub.sources), "problems": dict(sub.problems)}


def grade_submission(submission: Path, *, tests_dir: Path | None = None, limits=None) -> dict:
    """The results document for the submission folder ``submission``, hidden tests included; never raises."""
    from grader import results
    from grader.intake.collect import build_sandbox, collect
    from grader.grading import TESTS_DIR, grade
    from grader.judge.session import GradingError

    tests_dir = Path(tests_dir or TESTS_DIR)
    start = time.perf_counter()
    points = results.load_points(tests_dir)
    exercises = list(points)

    def ungradable(reason: str) -> dict:
        return results.ungradable(reason, points=points, exercises=exercises,
                                  execution_time=time.perf_counter() - start)

    if not Path(submission).is_dir():
        return ungradable(f"no submission folder at {submission}")
    try:
        sub = collect(Path(submission), {ex: meta["name"] for ex, meta in points.items()})
        if sub.error:
            return ungradable(sub.error)
        with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
            exercises_dir, tests = build_sandbox(Path(tmp), sub.files, tests_dir)
            doc = grade(exercises_dir, hidden=True, tests_dir=tests, limits=limits)
        _note_problems(doc, sub)
        doc["lesson"].update(submission_times(Path(submission).parent / "submission_metadata.json"))
        budget = getattr(limits, "budget", None)
        doc["lesson"]["budget"] = {"seconds": budget, "not_run": sum(
            1 for t in doc["tests"] if t["extra_data"].get("kind") == "not_run")}
        return doc
    except GradingError as exc:
        return ungradable(str(exc))
    except Exception as exc:  # noqa: BLE001 - Gradescope must get a results.json whatever went wrong
        return ungradable(f"the grader failed ({type(exc).__name__}: {exc}); please tell your instructor")


def submission_times(path: Path) -> dict:
    """When the submission came and was due, from Gradescope's ``submission_metadata.json`` (beside the submission
    folder: ``created_at``, ``assignment.due_date``; documented at gradescope-autograders.readthedocs.io), as the
    results document records them (``submitted_at``, ``due``, ``late``; grader.batch.adjustments reads them); {}
    when there is no such file or it is not Gradescope's."""
    import json
    from datetime import datetime

    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        submitted, due = meta.get("created_at"), (meta.get("assignment") or {}).get("due_date")
        out = {"submitted_at": datetime.fromisoformat(submitted).isoformat()}
        if due:
            out.update(due=datetime.fromisoformat(due).isoformat(),
                       late=datetime.fromisoformat(submitted) > datetime.fromisoformat(due))
        return out
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


# ----------------------------------------------------------------------------------------------------------
# Gradescope's results.json, rendered from the results document
# ----------------------------------------------------------------------------------------------------------

GRADESCOPE_KEYS = ("score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
                   "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard")


def _function_of(test: dict) -> str:
    """The test function a case belongs to: its node id without the parameters."""
    return test["extra_data"]["nodeid"].split("[", 1)[0]


def _case_of(test: dict) -> str:
    nodeid = test["extra_data"]["nodeid"]
    return nodeid[nodeid.index("["):] if "[" in nodeid else ""


def _grouped(tests: list[dict]) -> list[list[dict]]:
    """Tests grouped by test function, in the order of their first case."""
    groups: dict[str, list[dict]] = {}
    for test in tests:
        groups.setdefault(_function_of(test), []).append(test)
    return list(groups.values())


def _text(text: str) -> str:
    """An output as Gradescope's ``text`` format shows it: no control characters, cut to OUTPUT_CHARS."""
    return printable(text, OUTPUT_CHARS)


def _points(x: float) -> float:
    """A box's points: a sum of cases rounded to 4 decimals each, shown to 2 (Gradescope's total is ``score``)."""
    return round(x + 0.0, 2)


def _visible_box(cases: list[dict], number: str, listed: int = MAX_CASES_LISTED) -> dict:
    """One box for the cases of one visible test function: points added up, the failing cases named (the first
    ``listed`` of them)."""
    first = cases[0]
    extra = first["extra_data"]
    failed = [c for c in cases if c["status"] != "passed"]
    lines = []
    if failed:
        hint = extra.get("hint", "")
        if len(cases) == 1:
            lines = [first["output"]] if first.get("output") else [hint]
        else:
            lines = [hint] if hint else []
            reasons = [case["extra_data"].get("reason") or case["output"] or "failed" for case in failed]
            if len(set(reasons)) == 1:  # one reason for every failing case (not run, a syntax error...): say it once
                lines.append(f"{len(failed)} of {len(cases)} cases failed: {reasons[0]}")
            else:
                lines.append(f"{len(failed)} of {len(cases)} cases failed:")
                for case, reason in list(zip(failed, reasons))[:listed]:
                    lines.append(f"  {_case_of(case)}: {reason}")
                if len(failed) > listed:
                    lines.append(f"  ... and {len(failed) - listed} more")
    return {
        "name": first["name"].split("[", 1)[0],
        "number": number,
        "score": _points(sum(c["score"] for c in cases)),
        "max_score": _points(sum(c["max_score"] for c in cases)),
        "status": "failed" if failed else "passed",
        "output": _text("\n".join(line for line in lines if line)),
        "output_format": OUTPUT_FORMAT,
        "visibility": "visible",
        "tags": [extra["exercise"], "visible"],
        "extra_data": {"exercise": extra["exercise"], "hidden": False, "cases": len(cases),
                       "failed_cases": len(failed), "kinds": sorted({c["extra_data"]["kind"] for c in failed})},
    }


def _hidden_boxes(ex: str, module: str, functions: list[list[dict]], *, visibility: str, detail: str,
                  number: str) -> list[dict]:
    """The hidden tests of one exercise: one box with the counts, or one box per test function with its hint.
    Never a hidden test's name, node id, reason or output: its parameters and messages can hold its literals."""
    extra = {"exercise": ex, "hidden": True}
    if detail == "counts":
        passed = sum(all(c["status"] == "passed" for c in cases) for cases in functions)
        score = sum(c["score"] for cases in functions for c in cases)
        top = sum(c["max_score"] for cases in functions for c in cases)
        return [{
            "name": f"{module}: hidden tests",
            "number": f"{number}.h",
            "score": _points(score),
            "max_score": _points(top),
            "status": "passed" if passed == len(functions) else "failed",
            "output": f"{passed} of {len(functions)} hidden tests passed ({score:.4g} of {top:.4g} points).",
            "output_format": OUTPUT_FORMAT,
            "visibility": visibility,
            "tags": [ex, "hidden"],
            "extra_data": {**extra, "tests": len(functions), "passed": passed},
        }]
    boxes = []
    for i, cases in enumerate(functions, start=1):
        hint = cases[0]["extra_data"].get("hint", "")
        ok = all(c["status"] == "passed" for c in cases)
        boxes.append({
            "name": f"{module}: hidden test {i}",
            "number": f"{number}.h{i}",
            "score": _points(sum(c["score"] for c in cases)),
            "max_score": _points(sum(c["max_score"] for c in cases)),
            "status": "passed" if ok else "failed",
            "output": "" if ok else _text(hint),
            "output_format": OUTPUT_FORMAT,
            "visibility": visibility,
            "tags": [ex, "hidden"],
            "extra_data": {**extra, "hint": hint},
        })
    return boxes


def _staff_boxes(ex: str, functions: list[list[dict]], number: str) -> list[dict]:
    """The instructor's record of the hidden tests of one exercise: a box per test function with its name, points,
    hint and every failing case's reason, always ``"visibility": "hidden"`` (never shown to students)."""
    boxes = []
    for i, cases in enumerate(functions, start=1):
        box = _visible_box(cases, f"{number}.s{i}", listed=len(cases))
        box.update(visibility="hidden", tags=[ex, "hidden", "staff"])
        box["extra_data"] = {**box["extra_data"], "hidden": True, "staff": True}
        boxes.append(box)
    return boxes


def staff_record(doc: dict) -> str:
    """The failed hidden tests, case by case, for the run's stdout (which only instructors see): what a student
    report counts ("2 hidden tests failed") named, with points and reason."""
    failed = [t for t in doc.get("tests", []) if t["extra_data"].get("hidden") and t["status"] != "passed"]
    if not failed:
        return ""
    lines = [f"Hidden tests failed ({len(failed)}; course staff only, as is all of stdout):"]
    for test in failed:
        extra = test["extra_data"]
        lines.append(f"  x {extra.get('nodeid', test['name'])}  (-{test['max_score']:g}, {extra.get('kind', '')})")
        lines.append(f"      -> {extra.get('reason') or extra.get('hint') or 'failed'}")
    return printable("\n".join(lines)) + "\n"


def render(doc: dict, *, hidden_visibility: str = DEFAULT_HIDDEN_VISIBILITY,
           hidden_detail: str = DEFAULT_HIDDEN_DETAIL) -> dict:
    """Gradescope's ``results.json`` for a results document: Gradescope's keys only at the top level (the rest
    under ``extra_data``), one box per test function, hidden tests as counts or hints (see the module docstring).
    The document itself (every case, every reason) is the instructor's record and is printed to stdout."""
    if hidden_visibility not in VISIBILITIES or hidden_detail not in HIDDEN_DETAILS:
        raise ValueError(f"hidden tests: visibility one of {VISIBILITIES}, detail one of {HIDDEN_DETAILS}")
    lesson = doc.get("lesson", {})
    modules = {e["id"]: e.get("name", e["id"]) for e in lesson.get("exercises", [])}
    tests = []
    order = list(modules) + [t["extra_data"]["exercise"] for t in doc["tests"]]  # exercises without a summary last
    for ex in dict.fromkeys(order):
        mine = [t for t in doc["tests"] if t["extra_data"]["exercise"] == ex]
        number = ex[2:] if ex.startswith("ex") else ex
        visible = _grouped([t for t in mine if not t["extra_data"].get("hidden")])
        tests += [_visible_box(cases, f"{number}.{i}") for i, cases in enumerate(visible, start=1)]
        hidden = _grouped([t for t in mine if t["extra_data"].get("hidden")])
        if hidden:
            tests += _hidden_boxes(ex, modules.get(ex, ex), hidden, visibility=hidden_visibility,
                                   detail=hidden_detail, number=number)
            tests += _staff_boxes(ex, hidden, number)
    for box in tests:  # a box's name is a test's name (and its parametrize ids): text, like its output
        box["name_format"] = OUTPUT_FORMAT
    output = doc.get("output", "")
    not_run = [t for t in doc["tests"] if t["extra_data"].get("kind") == "not_run"]
    if not_run:
        budget = (lesson.get("budget") or {}).get("seconds")
        output += (f"\n{len(not_run)} tests were not run: grading stopped at its time budget"
                   + (f" ({budget:g} s)" if budget else "") + ". Look for an endless loop in the tests that timed out.")
    return {
        "score": doc["score"],
        "execution_time": doc.get("execution_time", 0.0),
        "output": _text(output),
        "output_format": OUTPUT_FORMAT,
        "test_output_format": OUTPUT_FORMAT,
        "test_name_format": OUTPUT_FORMAT,
        "visibility": doc.get("visibility", "visible"),
        "stdout_visibility": "hidden",  # stdout holds the instructor's record (staff_record), never for students
        "tests": tests,
        "extra_data": {"max_score": doc.get("max_score"), "lesson": lesson,
                       "hidden_tests": {"visibility": hidden_visibility, "detail": hidden_detail}},
    }


def run(submission: Path, results_path: Path, *, tests_dir: Path | None = None, limits=None,
        hidden_visibility: str = DEFAULT_HIDDEN_VISIBILITY, hidden_detail: str = DEFAULT_HIDDEN_DETAIL) -> dict:
    """Grade ``submission`` and write Gradescope's results.json to ``results_path``; returns the full document."""
    from grader import report, results

    doc = grade_submission(submission, tests_dir=tests_dir, limits=limits)
    results.write(render(doc, hidden_visibility=hidden_visibility, hidden_detail=hidden_detail), Path(results_path))
    report.print_report(doc, stream=sys.stdout)  # Gradescope keeps stdout for the instructor (stdout_visibility)
    sys.stdout.write(staff_record(doc))
    return doc


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def _add_options(p, *, timeout_default) -> None:
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="S",
                   help=f"wall-clock seconds for all the tests of a submission; the tests left then are recorded as"
                        f" not run (default {DEFAULT_BUDGET:g}: Gradescope's own limit is 10 minutes, after which it"
                        f" records nothing)")
    p.add_argument("--hidden-visibility", choices=VISIBILITIES, default=DEFAULT_HIDDEN_VISIBILITY,
                   help=f"when students see the hidden-test boxes (default {DEFAULT_HIDDEN_VISIBILITY})")
    p.add_argument("--hidden-detail", choices=HIDDEN_DETAILS, default=DEFAULT_HIDDEN_DETAIL,
                   help="counts: one box per exercise with the hidden points earned (default); tests: one box per"
                        " hidden test with its hint and points")
    p.add_argument("--timeout", type=float, default=timeout_default, help="CPU seconds allowed per test")


def add_gradescope_parser(sub) -> None:
    from grader.judge.session import DEFAULT_TIMEOUT

    p = sub.add_parser("gradescope", help="write autograder.zip for a Gradescope programming assignment")
    p.add_argument("--out", default="dist/gradescope", help="folder for autograder.zip (default dist/gradescope)")
    _add_options(p, timeout_default=None)
    p.set_defaults(func=_cmd_build)

    r = sub.add_parser("gradescope-run", help="grade one submission inside Gradescope (used by run_autograder)")
    r.add_argument("--submission", default="/autograder/submission", help="folder holding the student's files")
    r.add_argument("--results", default="/autograder/results/results.json", help="where to write results.json")
    _add_options(r, timeout_default=DEFAULT_TIMEOUT)
    r.set_defaults(func=_cmd_run)


def _cmd_build(args) -> int:
    try:
        path = build_autograder(Path(args.out), budget=args.budget, hidden_visibility=args.hidden_visibility,
                                hidden_detail=args.hidden_detail, timeout=args.timeout)
    except GradescopeError as exc:
        print(f"gradescope: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}: upload it as the autograder of a Gradescope programming assignment (any Ubuntu base "
          f"image: setup.sh brings Python 3.11 where the image's is older). Each submission's tests stop after "
          f"{args.budget:g} s; keep Gradescope's autograder timeout above {args.budget + 120:g} s.")
    return 0


def _cmd_run(args) -> int:
    from grader.judge.session import Limits

    run(Path(args.submission), Path(args.results), limits=Limits(timeout=args.timeout, budget=args.budget or None),
        hidden_visibility=args.hidden_visibility, hidden_detail=args.hidden_detail)
    return 0
