"""The promises every release makes: the reference scores full marks, the untouched stubs score zero, code that
computes nothing (the placeholders of grader.instructor.placeholders) scores zero, and every behaviour an exercise
docstring promises is checked by a graded test (grader.instructor.promises)."""

from __future__ import annotations

import ast
import re
import tempfile
from pathlib import Path

from grader import results
from grader.instructor import stubs
from grader.grading import TESTS_DIR, grade


def check_reference(tests_dir: Path = TESTS_DIR, *, server=None) -> tuple[bool, list[str]]:
    """Grade the reference, hidden tests included: full marks, and the points points.json promises.
    ``server``: an open judge session that collected every suite, hidden included (else one is started)."""
    doc = grade("solutions", hidden=True, tests_dir=tests_dir, server=server)
    problems = [
        f"reference lost {t['max_score']:g} on {t['extra_data']['nodeid']}: {t['extra_data']['reason']}"
        for t in doc["tests"]
        if t["status"] != "passed"
    ]
    declared = results.load_points(tests_dir)
    full = sum(meta["visible"] + meta["hidden"] for meta in declared.values())  # 100 for this course
    if doc["score"] != doc["max_score"] or doc["max_score"] != full:
        problems.append(f"reference scored {doc['score']:g} / {doc['max_score']:g}, expected {full:g} / {full:g}")
    for ex in doc["lesson"]["exercises"]:  # the suites must carry exactly the points tests/points.json promises
        for side in ("visible", "hidden"):
            if ex[f"{side}_max"] != declared[ex["id"]][side]:
                problems.append(
                    f"{ex['id']} {side} tests carry {ex[f'{side}_max']:g} points, points.json says"
                    f" {declared[ex['id']][side]}"
                )
    return not problems, problems


def check_stubs(tests_dir: Path = TESTS_DIR, *, server=None) -> tuple[bool, list[str]]:
    """Grade freshly generated stubs (not whatever is in exercises/ now): every test must fail as not implemented.
    ``server``: as for ``check_reference``."""
    with tempfile.TemporaryDirectory(prefix="stubs-") as tmp:
        folder = Path(tmp)
        for name, text in stubs.expected_stubs().items():
            (folder / name).write_text(text)
        doc = grade(folder, hidden=True, tests_dir=tests_dir, server=server)
    problems = [
        f"stub test {t['extra_data']['nodeid']} {t['status']} as {t['extra_data']['kind']}: {t['extra_data']['reason']}"
        for t in doc["tests"]
        if t["status"] == "passed" or t["extra_data"]["kind"] != "not_implemented"
    ]
    if doc["score"] != 0:
        problems.append(f"untouched stubs scored {doc['score']:g}, expected 0")
    return not problems, problems


SENTENCE_END = re.compile(r"[.!?][)\"'”]*$")  # a hint ends a sentence: "... raise ValueError." or "(... a row.)"


def check_hints(tests_dir: Path = TESTS_DIR) -> tuple[bool, list[str]]:
    """Every graded test's hint (the first line of its docstring, what a student sees when it fails) is a whole
    sentence: it has one, and that line ends one, so no hint is cut mid-sentence."""
    problems = []
    for path in sorted(tests_dir.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("test"):
                continue
            doc = ast.get_docstring(node, clean=False) or ""
            first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
            where = f"{path.relative_to(tests_dir.parent).as_posix()} line {node.lineno} ({node.name})"
            if not first:
                problems.append(f"{where}: no docstring, so no hint")
            elif not SENTENCE_END.search(first):
                problems.append(f"{where}: the hint is cut mid-sentence: {first!r} (make its first line a whole "
                                "sentence; details go after a blank line)")
    return not problems, problems


def check(verbose: bool = False) -> bool:
    ok = True
    stale = stubs.stale_stubs()
    if stale:
        ok = False
        print("exercises/ is out of date (run `make stubs`): " + ", ".join(stale))
    from grader.instructor.placeholders import check_placeholders
    from grader.instructor.promises import check_promises

    checks = (("reference scores full marks", check_reference), ("stubs score 0", check_stubs),
              ("code that computes nothing scores 0 (grader/instructor/placeholders.py)", check_placeholders),
              ("every docstring promise has a test (tests/promises.toml)", check_promises),
              ("every hint is a whole sentence (a test docstring's first line)", check_hints))
    for label, fn in checks:
        passed, problems = fn()
        ok &= passed
        print(f"{'ok  ' if passed else 'FAIL'} {label}")
        for problem in problems if verbose else problems[:5]:
            print(f"     {problem}")
    return ok


def add_check_parser(sub) -> None:
    p = sub.add_parser("check", help="the reference must score full marks, the stubs and the placeholders zero, "
                                     "every promise a test")
    p.set_defaults(func=lambda args: 0 if check(verbose=True) else 1)
