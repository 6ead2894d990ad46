"""The results document: one JSON per grading run, a superset of Gradescope's ``results.json``.

Gradescope reads ``score``, ``max_score``, ``execution_time``, ``output``, ``visibility``,
``stdout_visibility`` and ``tests[]`` (``name``, ``number``, ``score``, ``max_score``, ``status``, ``output``,
``visibility``, ``tags``, ``extra_data``). Everything this project adds lives under the ``lesson`` key, so every
other view (terminal table, CSV, feedback, nbgrader) is rendered from this one document.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from grader import facilities
from grader.course import load_manifest
from grader.records import ExerciseSummary, Kind, Outcome, SessionResult, TestRecord

if TYPE_CHECKING:
    from grader.intake.collect import Submission

SCHEMA_PATH = Path(__file__).resolve().parent / "gradescope_results.schema.json"
HIDDEN_VISIBILITY = "after_published"  # Gradescope shows these once grades are published


load_points = load_manifest  # the course manifest (grader.course): per exercise, name, title, points


def _round(x: float) -> float:
    return round(x + 0.0, 4)


def build(
    session: SessionResult,
    *,
    points: dict,
    target: str,
    hidden_run: bool,
    exercises: list[str],
    execution_time: float,
) -> dict:
    """Turn a session's records into the results document."""
    tests, per_ex = _tests(session, points, exercises)
    summary = _exercise_summaries(per_ex, points, exercises, hidden_run)
    score = round(sum(e["score"] for e in summary), 2)
    max_score = round(sum(e["max_score"] for e in summary), 2)
    not_run = round(sum(e["hidden_max"] for e in summary if not e["hidden_run"]), 2)
    text = f"Score: {score:g} / {max_score:g}"
    if not_run:
        text += f" ({not_run:g} more points are in hidden tests, which are not run here)"
    return {
        "score": score,
        "max_score": max_score,
        "execution_time": round(execution_time, 3),
        "output": text,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "lesson": _lesson(session, tests, summary, hidden_run, target, not_run),
    }


def _tests(session: SessionResult, points: dict, exercises: list[str]) -> tuple[list[dict], dict[str, dict]]:
    """The test entries, in collection order, and per exercise the points won and possible on each side."""
    tests = []
    per_ex = {ex: _bucket() for ex in exercises}
    for number, info in enumerate(session.tests, start=1):
        record = session.records.get(info["nodeid"]) or TestRecord(info["nodeid"])
        bucket = per_ex.setdefault(info["exercise"], _bucket())
        side = "hidden" if info["hidden"] else "visible"
        bucket[f"{side}_score"] += info["points"] if record.passed else 0.0
        bucket[f"{side}_max"] += info["points"]
        tests.append(_test_entry(number, info, record, points))
    return tests, per_ex


def _bucket() -> dict[str, float]:
    return {"visible_score": 0.0, "visible_max": 0.0, "hidden_score": 0.0, "hidden_max": 0.0}


def _test_entry(number: int, info: dict, record: TestRecord, points: dict) -> dict:
    """The one place a test entry is written (graded tests, and the "not graded" entry of a missing exercise):
    ``info`` is the test as the judge described it (grader.judge.events), ``record`` what happened in it."""
    ex, hidden = info["exercise"], info["hidden"]
    not_graded = record.kind is Kind.NOT_GRADED
    lines = [] if record.passed else [line for line in (info["hint"], record.reason) if line]
    extra = {
        "nodeid": info["nodeid"], "exercise": ex, "hidden": hidden, "hint": info["hint"],
        "kind": record.kind.value, "reason": record.reason, "details": record.longrepr,
        "captured_output": record.output, "duration": record.duration, "cpu": record.cpu,
    }
    if not not_graded:  # an exercise that never ran has no backstop flag (the documents kept their shape)
        extra["backstop"] = record.backstop
    return {
        "name": f"{points.get(ex, {}).get('name', ex)}: {info['name']}",
        "number": f"{ex[2:]}.{number}",
        "score": _round(info["points"] if record.passed else 0.0),
        "max_score": _round(info["points"]),
        "status": "passed" if record.passed else "failed",
        "output": "\n".join(lines),
        "visibility": HIDDEN_VISIBILITY if hidden else "visible",
        "tags": [ex, "not_graded" if not_graded else "hidden" if hidden else "visible"],
        "extra_data": extra,
    }


def _exercise_summaries(per_ex: dict[str, dict], points: dict, exercises: list[str], hidden_run: bool) -> list[dict]:
    summary = []
    for ex in exercises:
        b = per_ex[ex]
        meta = points.get(ex, {"name": ex, "title": ex})
        summary.append(ExerciseSummary(
            id=ex, name=meta.get("name", ex), title=meta.get("title", ex),
            score=round(b["visible_score"] + b["hidden_score"], 2),
            max_score=round(b["visible_max"] + b["hidden_max"], 2),
            visible_score=round(b["visible_score"], 2), visible_max=round(b["visible_max"], 2),
            hidden_score=round(b["hidden_score"], 2) if hidden_run else None,
            hidden_max=round(b["hidden_max"] if hidden_run else float(meta.get("hidden", 0)), 2),
            hidden_run=hidden_run,
        ).to_dict())
    return summary


def _lesson(session: SessionResult, tests: list[dict], summary: list[dict], hidden_run: bool, target: str,
            not_run: float) -> dict:
    return {
        "status": "graded",
        "target": str(target),
        "hidden_run": hidden_run,
        "hidden_points_not_run": not_run,
        "exercises": summary,
        # worker processes replaced after a crash or a timeout (and judge restarts, which should not happen)
        "restarts": session.restarts + max(0, session.workers - 1),
        # which confinement the process running the student code had (grader.worker.confine)
        "protections": session.protections,
        # what this machine offers the grader, facility by facility (grader.facilities)
        "facilities": facilities.present().record(),
        # a test was stopped by the wall-clock backstop, not by its own CPU use: the machine may have been
        # stalled, so this result is not final and a re-run grades it again
        "needs_regrade": any(t["extra_data"]["backstop"] for t in tests),
    }


def ungradable(reason: str, *, points: dict, exercises: list[str], execution_time: float = 0.0,
               status: str = "ungradable", **meta) -> dict:
    """A document for a submission that could not be graded at all; its score is 0 but its status says why:
    "ungradable" (the submission's doing) or "error" (ours: a batch grades it again). ``meta``: where the
    submission came from, added to ``lesson``."""
    return {
        "score": 0.0,
        "max_score": float(sum(points[ex]["visible"] + points[ex]["hidden"] for ex in exercises)),
        "execution_time": round(execution_time, 3),
        "output": f"Ungradable: {reason}",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
        "lesson": {
            "status": status,
            "reason": reason,
            "target": "",
            "hidden_run": False,
            "hidden_points_not_run": 0,
            "exercises": [ExerciseSummary.empty(ex, points[ex], hidden_run=False).to_dict() for ex in exercises],
            "restarts": 0,
            **meta,
        },
    }


def empty(target: str, **meta) -> dict:
    """The document of a submission with no exercise to grade (each is then added as not graded)."""
    return {
        "score": 0.0, "max_score": 0.0, "execution_time": 0.0, "output": "", "visibility": "visible",
        "stdout_visibility": "hidden", "tests": [],
        "lesson": {"status": "graded", "target": target, "hidden_run": True, "hidden_points_not_run": 0,
                   "exercises": [], "restarts": 0, **meta},
    }


def from_outcome(outcome: Outcome, *, points: dict, target: str, exercises: list[str], hidden_run: bool,
                 timeout_per_submission: float | None = None, meta: dict | None = None) -> dict:
    """The document of one grading, however it ended (grader.records.Outcome.problem decides whether it gives
    a grade); ``meta`` is added to ``lesson`` either way."""
    problem = outcome.problem(timeout=timeout_per_submission)
    if problem is not None:
        status, reason = problem
        return ungradable(reason, points=points, exercises=list(points), status=status, **(meta or {}))
    doc = build(outcome.session(), points=points, target=target, hidden_run=hidden_run, exercises=exercises,
                execution_time=outcome.elapsed)
    doc["lesson"].update(meta or {})
    return doc


def with_submission(doc: dict, sub: Submission, *, target: str, points: dict) -> dict:
    """A graded document with what the submission itself says: a 0 with its reason for each exercise it could
    not hand in (missing, ambiguous, undecodable), and the "Files graded / Not graded" block under the score
    (as on Gradescope). An ungradable document is left as it is."""
    if doc["lesson"].get("status", "graded") != "graded":
        return doc
    doc = add_ungraded_exercises(doc, sub.problems, points)
    doc["output"] += "\n" + sub.summary()
    doc["lesson"]["target"] = target
    return doc


def add_ungraded_exercises(doc: dict, problems: dict[str, str], points: dict) -> dict:
    """Give each exercise in ``problems`` (missing, ambiguous, undecodable...) a 0 with its reason, in order."""
    graded = {e["id"]: e for e in doc["lesson"]["exercises"]}
    ordered = []
    for ex, meta in points.items():
        if ex in graded:
            ordered.append(graded[ex])
        elif ex in problems:
            ordered.append(ExerciseSummary.empty(ex, meta, hidden_run=True, problem=problems[ex]).to_dict())
            info = {"nodeid": f"{meta['name']}.py", "exercise": ex, "hidden": False, "hint": "",
                    "name": "not graded", "points": float(meta["visible"] + meta["hidden"])}
            record = TestRecord(info["nodeid"], kind=Kind.NOT_GRADED, reason=problems[ex])
            doc["tests"].append(_test_entry(0, info, record, points))
    doc["lesson"]["exercises"] = ordered
    doc["score"] = round(sum(e["score"] for e in ordered), 2)
    doc["max_score"] = round(sum(e["max_score"] for e in ordered), 2)
    doc["output"] = f"Score: {doc['score']:g} / {doc['max_score']:g}"
    return doc


def for_students(doc: dict) -> dict:
    """The document as students may see it: a hidden test is its hint, its points and whether it passed. Its
    name, node id (parameters can hold literals of the test), reason, details and the output of the student code
    during it are left out, so nothing of a hidden test's source reaches a student."""
    out = dict(doc)
    out["tests"] = []
    count: dict[str, int] = {}
    for test in doc["tests"]:
        extra = test.get("extra_data", {})
        if not extra.get("hidden"):
            out["tests"].append(test)
            continue
        ex = extra.get("exercise", "")
        count[ex] = count.get(ex, 0) + 1
        hint = extra.get("hint", "")
        out["tests"].append({
            "name": f"{test['name'].split(':', 1)[0]}: hidden test {count[ex]}",
            "number": test.get("number"),
            "score": test["score"],
            "max_score": test["max_score"],
            "status": test["status"],
            "output": "" if test["status"] == "passed" else hint,
            "visibility": test.get("visibility", HIDDEN_VISIBILITY),
            "tags": test.get("tags", []),
            "extra_data": {"exercise": ex, "hidden": True, "hint": hint, "kind": extra.get("kind", "")},
        })
    return out


def write(doc: dict, path: Path) -> Path:
    write_named(Path(path), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def write_named(path: Path, text: str) -> None:
    """Write ``text`` to a path the user named (``--json``, ``--junit-xml``).

    A regular file (or a new name) is replaced atomically (a reader never sees half a file). Anything else the
    user named, a device (``/dev/null``, ``/dev/stdout``), a pipe or a symbolic link they made, is written in
    place: renaming over it would replace the device or the link itself (as root, ``--json /dev/null``
    replaced the machine's ``/dev/null`` with a regular file)."""
    # a lone surrogate (a file name's byte that is not UTF-8, in a reason) is written as its JSON escape, which reads
    # back as the same string: one such name must not cost the whole document (a batch stopped on one)
    data = text.encode("utf-8", "backslashreplace")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "wb") as f:
            f.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def to_junit_xml(doc: dict) -> str:
    """Render the results as JUnit XML (one testsuite per exercise), for CI systems and LMS importers."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="lesson1", tests=str(len(doc["tests"])))
    suites: dict[str, ET.Element] = {}
    for test in doc["tests"]:
        ex = test["extra_data"]["exercise"]
        if ex not in suites:
            suites[ex] = ET.SubElement(root, "testsuite", name=ex)
        case = ET.SubElement(
            suites[ex], "testcase", classname=ex, name=test["name"].split(": ", 1)[-1],
            time=f"{test['extra_data']['duration']:.3f}",
        )
        ET.SubElement(ET.SubElement(case, "properties"), "property", name="points",
                      value=f"{test['score']:g}/{test['max_score']:g}")
        if test["status"] != "passed":
            fail = ET.SubElement(case, "failure", message=test["extra_data"]["reason"] or "failed",
                                 type=test["extra_data"]["kind"])
            fail.text = test["extra_data"]["details"]
    for suite in suites.values():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
