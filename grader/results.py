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

from grader import facilities
from grader.course import load_manifest
from grader.records import ExerciseSummary, SessionResult, TestRecord

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
    tests = []
    per_ex = {
        ex: {"visible_score": 0.0, "visible_max": 0.0, "hidden_score": 0.0, "hidden_max": 0.0}
        for ex in exercises
    }
    for number, info in enumerate(session.tests, start=1):
        record = session.records.get(info["nodeid"]) or TestRecord(info["nodeid"])
        score = info["points"] if record.passed else 0.0
        ex, hidden = info["exercise"], info["hidden"]
        bucket = per_ex.setdefault(
            ex, {"visible_score": 0.0, "visible_max": 0.0, "hidden_score": 0.0, "hidden_max": 0.0}
        )
        side = "hidden" if hidden else "visible"
        bucket[f"{side}_score"] += score
        bucket[f"{side}_max"] += info["points"]
        lines = [] if record.passed else [line for line in (info["hint"], record.reason) if line]
        tests.append(
            {
                "name": f"{points.get(ex, {}).get('name', ex)}: {info['name']}",
                "number": f"{ex[2:]}.{number}",
                "score": _round(score),
                "max_score": _round(info["points"]),
                "status": "passed" if record.passed else "failed",
                "output": "\n".join(lines),
                "visibility": HIDDEN_VISIBILITY if hidden else "visible",
                "tags": [ex, side],
                "extra_data": {
                    "nodeid": info["nodeid"],
                    "exercise": ex,
                    "hidden": hidden,
                    "hint": info["hint"],
                    "kind": record.kind.value,
                    "reason": record.reason,
                    "details": record.longrepr,
                    "captured_output": record.output,
                    "duration": record.duration,
                    "cpu": record.cpu,
                    "backstop": record.backstop,
                },
            }
        )
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
        "lesson": {
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
        },
    }


def ungradable(reason: str, *, points: dict, exercises: list[str], execution_time: float = 0.0) -> dict:
    """A document for a submission that could not be graded at all; its score is 0 but its status says why."""
    return {
        "score": 0.0,
        "max_score": float(sum(points[ex]["visible"] + points[ex]["hidden"] for ex in exercises)),
        "execution_time": round(execution_time, 3),
        "output": f"Ungradable: {reason}",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
        "lesson": {
            "status": "ungradable",
            "reason": reason,
            "target": "",
            "hidden_run": False,
            "hidden_points_not_run": 0,
            "exercises": [ExerciseSummary.empty(ex, points[ex], hidden_run=False).to_dict() for ex in exercises],
            "restarts": 0,
        },
    }


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
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
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
