"""``feedback.md`` for one student, rendered from a results document.

It shows the per-exercise scores, and for each lost *visible* test its hint and the one-line reason. Hidden
tests are only counted ("2 hidden tests failed (3.5 points)"): their names, hints and reasons never appear.

Text that came from the submission (a reason: an exception's message; a problem: a file name found; the student
id) is shown as a code span (``grader.untrusted.md_code``), so that it renders as the characters it holds: a
crafted message cannot add a line, a heading, a link, an image or HTML to the page.
"""

from __future__ import annotations

from collections import defaultdict

from grader.untrusted import md_code

TEXT_CHARS = 300  # one reason or problem, as the judge cuts a reason


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _line(text: str) -> str:
    """Our own text (a hint: the first docstring line of one of our tests) on one line."""
    return " ".join(str(text).split())


def _student_text(text: str) -> str:
    return md_code(text, TEXT_CHARS)


def render(doc: dict, *, student: str | None = None, adjustment=None) -> str:
    """``adjustment``: what the course staff's adjustments do to this grade (grader.batch.adjustments.Adjustment:
    its ``notes`` and ``total``), shown under the score. The same page comes from the full document and from the
    student's copy (grader.results.for_students), so a batch renders it again at every run."""
    lesson = doc["lesson"]
    title = f"# Feedback for {_student_text(student)}" if student else "# Feedback"
    out = [title, ""]
    if lesson["status"] != "graded":
        out += [
            "**Your submission could not be graded.**",
            "",
            f"Reason: {_student_text(lesson.get('reason', 'unknown'))}",
            "",
            "Nothing was scored. Fix the problem above and submit again, or ask your instructor.",
            "",
        ]
        return "\n".join(out)
    out += _score_table(doc)
    out += _adjusted(doc, adjustment)
    lost = defaultdict(list)
    for test in doc["tests"]:
        if test["status"] != "passed":
            lost[test.get("extra_data", {}).get("exercise", "")].append(test)
    sections = [line for ex in lesson["exercises"] for line in _exercise_section(ex, lost.get(ex["id"], []))]
    if sections:
        out += ["## What to fix", "", *sections]
    else:
        out += ["Everything passed. Well done.", ""]
    return "\n".join(out)


def _score_table(doc: dict) -> list[str]:
    out = [f"**Score: {_fmt(doc['score'])} / {_fmt(doc['max_score'])}**", ""]
    out += ["| Exercise | Visible | Hidden | Total |", "|---|---:|---:|---:|"]
    for ex in doc["lesson"]["exercises"]:
        hidden = f"{_fmt(ex['hidden_score'])} / {_fmt(ex['hidden_max'])}" if ex["hidden_run"] else "-"
        out.append(
            f"| {_cell(ex['id'] + ' ' + ex['title'])} | {_fmt(ex['visible_score'])} / {_fmt(ex['visible_max'])} "
            f"| {hidden} | {_fmt(ex['score'])} / {_fmt(ex['max_score'])} |"
        )
    out.append("")
    return out


def _adjusted(doc: dict, adjustment) -> list[str]:
    """The course staff's adjustments under the score: each one on a line ("late: -10% (1 day late)"), then the
    grade that counts. Their text is the instructor's (a reason written in the adjustments file)."""
    if adjustment is None or not adjustment.notes:
        return []
    lines = ["**Adjustments by your instructor:**", ""] + [f"- {_line(note)}" for note in adjustment.notes]
    if adjustment.total is not None:
        lines += ["", f"**Grade after adjustments: {_fmt(adjustment.total)} / {_fmt(doc['max_score'])}**"]
    return lines + [""]


def _exercise_section(ex: dict, lost: list[dict]) -> list[str]:
    """One exercise's part of "What to fix" (none when it lost nothing); ``lost``: its tests that did not pass."""
    lines = []
    if ex.get("problem"):
        lines.append(f"- Not graded: {_student_text(ex['problem'])}")
    # a missing or refused file is said once, by the "Not graded" line (its placeholder test holds the same)
    # a hidden test of the student's copy has no node id (grader.results.for_students): counted all the same
    tests = [t for t in lost if ("nodeid" in t.get("extra_data", {}) or t.get("extra_data", {}).get("hidden"))
             and t["extra_data"].get("kind") != "not_graded"]
    visible = [t for t in tests if not t["extra_data"]["hidden"]]
    hidden = [t for t in tests if t["extra_data"]["hidden"]]
    if visible and all(t["extra_data"]["kind"] == "not_implemented" for t in visible):
        lines.append(f"- Not started: all {len(visible)} visible tests reach a `NotImplementedError`.")
    else:
        for test in visible:
            extra = test["extra_data"]
            name = extra["nodeid"].split("::", 1)[-1]
            lines.append(f"- {md_code(name)} (-{_fmt(test['max_score'])})")
            if extra.get("hint"):
                lines.append(f"  - {_line(extra['hint'])}")
            if extra.get("reason"):
                lines.append(f"  - {_student_text(extra['reason'])}")
    if hidden:
        points = round(sum(t["max_score"] for t in hidden), 2)
        lines.append(f"- {len(hidden)} hidden test{'s' if len(hidden) != 1 else ''} failed "
                     f"({_fmt(points)} point{'' if points == 1 else 's'}).")
    return [f"### {ex['id']} {ex['title']} ({ex['name']}.py)", "", *lines, ""] if lines else []
