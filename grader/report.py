"""Render a results document for a person: a table per run, then what to fix, hint first.

Rich output on a terminal; plain text when the output is not a terminal or ``NO_COLOR`` is set. A reason, a
traceback, printed output, a student id come from the submission: every line is written through
``grader.untrusted`` (control characters shown as escapes), so that no escape code from a submission reaches the
terminal (a crafted one could clear the line and write "100/100" in its place).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import defaultdict

from grader.untrusted import one_line, printable


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{round(x, 2):g}"  # 1/3 of a point shows as 0.33


def _lost_by_exercise(doc: dict) -> dict[str, list[dict]]:
    lost = defaultdict(list)
    for test in doc["tests"]:
        if test["status"] != "passed":
            lost[test["extra_data"]["exercise"]].append(test)
    return lost


def _rows(doc: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for ex in doc["lesson"]["exercises"]:
        visible = f"{_fmt(ex['visible_score'])} / {_fmt(ex['visible_max'])}"
        if ex["hidden_run"]:
            hidden = f"{_fmt(ex['hidden_score'])} / {_fmt(ex['hidden_max'])}"
        else:
            hidden = f"{_fmt(ex['hidden_max'])} not run here" if ex["hidden_max"] else "-"
        total = f"{_fmt(ex['score'])} / {_fmt(ex['max_score'])}"
        rows.append((f"{ex['id']}  {ex['title']}", visible, hidden, total))
    return rows


MAX_CASES_SHOWN = 2  # failing cases of one parametrized test shown without -v


def _by_function(tests: list[dict]) -> dict[str, list[dict]]:
    """Failed tests grouped by test function (the cases of a parametrized test together), in order."""
    groups: dict[str, list[dict]] = {}
    for test in tests:
        function = test["extra_data"]["nodeid"].split("::", 1)[-1].split("[", 1)[0]
        groups.setdefault(function, []).append(test)
    return groups


def _advice(doc: dict, verbose: bool) -> list[tuple[str, str]]:
    """(style, line) pairs: what was lost and why, grouped by exercise; no control character in any line."""
    return [(style, printable(text).replace("\n", " ").replace("\t", " "))
            for style, text in _raw_advice(doc, verbose)]


def _raw_advice(doc: dict, verbose: bool) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    names = {ex["id"]: ex["name"] for ex in doc["lesson"]["exercises"]}
    target = doc["lesson"]["target"]
    for ex, tests in _lost_by_exercise(doc).items():
        visible = [t for t in tests if not t["extra_data"]["hidden"]]
        hidden = [t for t in tests if t["extra_data"]["hidden"]]
        lines.append(("bold", f"{ex}  {names.get(ex, ex)}.py"))
        if visible and all(t["extra_data"]["kind"] == "not_implemented" for t in visible) and not verbose:
            lines.append(("yellow", f"  not started: all {len(visible)} visible tests reach a NotImplementedError."))
            lines.append(("", f"  Open {target}/{names.get(ex, ex)}.py and replace each TODO."))
            continue
        reasons = {t["extra_data"]["reason"] for t in visible}
        if len(visible) > 1 and len(reasons) == 1 and not verbose:  # e.g. a syntax error: say it once
            lines.append(("red", f"  x all {len(visible)} visible tests fail the same way:"))
            lines.append(("dim", f"      -> {reasons.pop()}"))
            visible = []
        for function, cases in _by_function(visible).items():
            lost = _fmt(sum(t["max_score"] for t in cases))
            label = f"{function}  ({len(cases)} cases)" if len(cases) > 1 else cases[0]["extra_data"]["nodeid"].split("::", 1)[-1]
            lines.append(("red", f"  x {label}  (-{lost})"))
            if cases[0]["extra_data"]["hint"]:
                lines.append(("", f"      {cases[0]['extra_data']['hint']}"))
            shown = cases if verbose else cases[:MAX_CASES_SHOWN]
            for test in shown:
                extra = test["extra_data"]
                case = extra["nodeid"][len(extra["nodeid"].split("[", 1)[0]):] if len(cases) > 1 else ""
                if extra["reason"]:
                    lines.append(("dim", f"      -> {case + ' ' if case else ''}{extra['reason']}"))
                if verbose and extra["details"]:
                    details = _without_pytest_hints(extra["details"]).rstrip().splitlines()[-30:]
                    lines += [("dim", "        " + line) for line in details]
                if verbose and extra["captured_output"]:
                    lines.append(("dim", "      your code printed:"))
                    lines += [("dim", "        " + line) for line in extra["captured_output"].rstrip().splitlines()[-15:]]
            more = len(cases) - len(shown)
            if more > 0:
                lines.append(("dim", f"      ... and {more} more case{'s' if more != 1 else ''} (-v shows them all)"))
        if hidden:
            lost = sum(t["max_score"] for t in hidden)
            lost = round(lost, 2)
            lines.append(("yellow", f"  {len(hidden)} hidden test{'s' if len(hidden) != 1 else ''} failed "
                                    f"({_fmt(lost)} point{'' if lost == 1 else 's'})."))
    return lines


def _passed(doc: dict) -> list[tuple[str, str]]:
    """(style, line) pairs for ``-v``: each visible test that passed and the points it earned, by exercise (hidden
    tests are never named to a student)."""
    lines: list[tuple[str, str]] = []
    exercise = None
    for test in doc["tests"]:
        extra = test["extra_data"]
        if test["status"] != "passed" or extra["hidden"]:
            continue
        if extra["exercise"] != exercise:
            exercise = extra["exercise"]
            lines.append(("bold", exercise))
        lines.append(("green", f"  ok {extra['nodeid'].split('::', 1)[-1]}  (+{_fmt(test['score'])})"))
    return [(style, printable(text).replace("\n", " ")) for style, text in lines]


# pytest's own advice in an assertion's explanation names pytest's options, which `make grade` does not take
_PYTEST_HINT = re.compile(r"^\s*(Use -v to get more diff|\.\.\.Full output truncated.*use '-vv' to show)\s*$")


def _without_pytest_hints(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _PYTEST_HINT.match(line))


def focus_exercise(doc: dict) -> str | None:
    """The exercise the student is most likely working on: the only one graded, else the first one started but
    not finished, else the first one not finished."""
    unfinished = [ex for ex in doc["lesson"]["exercises"] if ex["visible_score"] < ex["visible_max"]]
    if not unfinished:
        return None
    lost = _lost_by_exercise(doc)
    started = [ex for ex in unfinished
               if ex["visible_score"] > 0 or any(t["extra_data"]["kind"] != "not_implemented" for t in lost[ex["id"]])]
    return (started or unfinished)[0]["id"]


def _tip(doc: dict, watching: bool) -> str | None:
    if all(t["status"] == "passed" for t in doc["tests"]):
        return None
    if watching:
        return ("Tip: save the file again to grade it again; `make watch GRADE_ARGS=-v` adds tracebacks and what your"
                " code printed.")
    ex = focus_exercise(doc)
    one = (f"`make grade EX={ex}` grades only {ex}; `make watch EX={ex}` grades it each time you save it; "
           if ex and len(doc["lesson"]["exercises"]) > 1 else
           f"`make watch EX={ex}` grades {ex} each time you save it; " if ex else "")
    return f"Tip: {one}`make grade GRADE_ARGS=-v` adds tracebacks, what your code printed and the tests that passed."


def _footer(doc: dict, *, watching: bool = False) -> list[str]:
    lesson = doc["lesson"]
    out = [f"Total: {_fmt(doc['score'])} / {_fmt(doc['max_score'])} points."]
    if lesson["hidden_points_not_run"]:
        out.append(
            f"Hidden tests: {_fmt(lesson['hidden_points_not_run'])} more points are in hidden tests that your"
            " instructor runs; they are not run locally, so pass the visible ones and test edge cases yourself."
        )
    tip = _tip(doc, watching)
    if tip:
        out.append(tip)
    if lesson.get("restarts"):
        out.append(f"Note: the process running your code was restarted {lesson['restarts']} time(s) after a crash"
                   " or a timeout.")
    return out


def use_rich(stream=None) -> bool:
    stream = stream or sys.stdout
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def render_plain(doc: dict, *, verbose: bool = False, watching: bool = False) -> str:
    headers = ("Exercise", "Visible", "Hidden", "Total")
    rows = _rows(doc)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [f"Grading {one_line(doc['lesson']['target'])}/", "", line(headers), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    passed = _passed(doc) if verbose else []
    if passed:
        out += ["", "Passed:"] + [text for _, text in passed]
    advice = _advice(doc, verbose)
    if advice:
        out += ["", "What to fix:"] + [text for _, text in advice]
    return "\n".join(out + [""] + _footer(doc, watching=watching)) + "\n"


def render_rich(doc: dict, console, *, verbose: bool = False, watching: bool = False) -> None:
    from rich.table import Table

    from rich.markup import escape

    table = Table(title=escape(f"Grading {one_line(doc['lesson']['target'])}/"), title_justify="left")
    for header, justify in (("Exercise", "left"), ("Visible", "right"), ("Hidden", "right"), ("Total", "right")):
        table.add_column(header, justify=justify)
    for ex, row in zip(doc["lesson"]["exercises"], _rows(doc)):
        style = "green" if ex["max_score"] and ex["score"] == ex["max_score"] else ("red" if not ex["score"] else "yellow")
        table.add_row(*row, style=style)
    console.print(table)
    passed = _passed(doc) if verbose else []
    if passed:
        console.print("\n[bold]Passed:[/bold]")
        for style, text in passed:
            console.print(text, style=style or None, markup=False, highlight=False, soft_wrap=True)
    advice = _advice(doc, verbose)
    if advice:
        console.print("\n[bold]What to fix:[/bold]")
        for style, text in advice:
            console.print(text, style=style or None, markup=False, highlight=False, soft_wrap=True)
    console.print()
    for text in _footer(doc, watching=watching):
        console.print(text, markup=False, highlight=False)


def print_report(doc: dict, *, verbose: bool = False, stream=None, watching: bool = False) -> None:
    """``watching``: the report of one save in ``make watch`` (its tip says how to go on there)."""
    stream = stream or sys.stdout
    if use_rich(stream):
        from rich.console import Console

        render_rich(doc, Console(file=stream), verbose=verbose, watching=watching)
    else:
        stream.write(render_plain(doc, verbose=verbose, watching=watching))


class progress_line:  # noqa: N801 - used like a function: on_progress=progress_line(sys.stderr)
    """One status line, rewritten in place, while the tests run (only on a terminal)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.width = 0

    def __call__(self, done: int, total: int, nodeid: str) -> None:
        name = nodeid.split("/")[-1]
        text = f"  grading {done}/{total}  {one_line(name)}"[:100]
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def status(self, text: str) -> None:
        """Say what a wait is for until the first test starts (importing torch, collecting the tests)."""
        text = "  " + one_line(text)[:98]
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        self.stream.write("\r" + " " * self.width + "\r")
        self.stream.flush()


class LongTestNotice:
    """One line, once per test, when a test has run ``after`` seconds (an endless loop otherwise shows nothing until
    its CPU limit stops it, 10 s of its own CPU time, and longer on a busy machine): which test is running, and
    what stops it. Called with the judge's events as they come (``events``) and with the time while waiting."""

    def __init__(self, stream, cpu_limit: float, *, after: float = 3.0, progress: progress_line | None = None) -> None:
        self.stream, self.cpu_limit, self.after, self.progress = stream, cpu_limit, after, progress
        self.current: str | None = None
        self.since = 0.0
        self.told: set[str] = set()

    def events(self, events: list[dict]) -> None:
        last = next((e for e in reversed(events) if e.get("event") in ("start", "result")), None)
        current = last["nodeid"] if last is not None and last["event"] == "start" else None
        if current != self.current:
            self.current, self.since = current, time.monotonic()

    def __call__(self, now: float) -> None:
        if self.current is None or self.current in self.told or now - self.since < self.after:
            return
        self.told.add(self.current)
        path, _, name = self.current.partition("::")
        exercise = path.rsplit("/", 1)[-1].removeprefix("test_").removesuffix(".py")
        if self.progress is not None:
            self.progress.clear()
        self.stream.write(f"  still running {one_line(exercise)} {one_line(name)} after {now - self.since:.0f} s: a "
                          f"test is stopped once your code has used {self.cpu_limit:g} s of CPU time (an endless "
                          "loop?)\n")
        self.stream.flush()
