"""The graded tests as the judge sees them before running any: points and exercise per item, what a report says
about a test, the order tests run in, and the Hypothesis tests' early stop at a stub's TODO.

Here rather than in the plugin so that the serving loop (grader.judge.serve) reads them without the hooks."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from grader.course import exercise_of, held_back

POINTS = pytest.StashKey[float]()
EXERCISE = pytest.StashKey[str]()  # the exercise a test grades, found once (the judge asks at every test)
# a held-back test's gate: (its name as the manifest gives it, the node ids of the collected tests it stands for)
GATE = pytest.StashKey[tuple[str, tuple[str, ...]]]()
IS_GATE = pytest.StashKey[bool]()


def exercise_of_test(item: pytest.Item) -> str:
    if EXERCISE not in item.stash:
        path = Path(str(item.path))
        item.stash[EXERCISE] = exercise_of(path.name) or path.stem
    return item.stash[EXERCISE]


def describe_test(item: pytest.Item) -> dict:
    """What a report needs to know about a test, without running it."""
    path = Path(str(item.path))
    doc = (getattr(item, "obj", None).__doc__ or "").strip() if getattr(item, "obj", None) else ""
    return {
        "nodeid": item.nodeid,
        "name": item.name,
        "function": getattr(item, "originalname", None) or item.name,
        "exercise": exercise_of_test(item),
        "file": path.name,
        "hidden": is_hidden(item),
        "hint": doc.splitlines()[0].strip() if doc else "",
        "points": item.stash.get(POINTS, 0.0),
    }


def is_hidden(item: pytest.Item) -> bool:
    """A test of tests/hidden/ (never judged by folders above tests/)."""
    return Path(str(item.path)).parent.name == "hidden"


def visible_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The visible tests, then the hidden ones, each in their order: then one worker serves the visible tests and
    the next the hidden ones (grader.judge.student._keep_hidden_inputs_in), instead of a new worker at every
    exercise. Among each, the gates of held-back tests come first, so that their verdicts are known in time."""
    return sorted(items, key=lambda item: (is_hidden(item), not item.stash.get(IS_GATE, False)))


def _suite_root(item: pytest.Item) -> Path:
    """The folder of the manifest: tests/ for a test of tests/ or of tests/hidden/."""
    folder = Path(str(item.path)).parent
    return folder.parent if is_hidden(item) else folder


def attach_gates(items: list[pytest.Item]) -> None:
    """Mark each held-back test with its gate (tests/points.json ``held_back``, grader.course.held_back), and each
    gate as one. A gate not collected with its tests (a hidden file graded alone) holds nothing back."""
    rules: dict[tuple[Path, str], dict[str, str]] = {}
    by_function: dict[str, list[str]] = {}
    for item in items:
        by_function.setdefault(f"{exercise_of_test(item)}::{_function_id(item).rsplit('::', 1)[-1]}", []).append(
            item.nodeid)
    for item in items:
        key = (_suite_root(item), exercise_of_test(item))
        if key not in rules:
            rules[key] = held_back(key[1], key[0])
        gate = rules[key].get(_function_id(item).rsplit("::", 1)[-1])
        if gate is None:
            continue
        function = gate.split("[", 1)[0]
        found = by_function.get(f"{exercise_of_test(item)}::{function}", [])
        nodeids = tuple(n for n in found if "[" not in gate or n.endswith("::" + gate))
        item.stash[GATE] = (gate, nodeids)
    gates = {nodeid for item in items if GATE in item.stash for nodeid in item.stash[GATE][1]}
    for item in items:
        item.stash[IS_GATE] = item.nodeid in gates


def _function_id(item: pytest.Item) -> str:
    """The node id without its parameters: the cases of one parametrized test share it (classes kept apart)."""
    return item.nodeid.split("[", 1)[0]


def split_points(items: list[pytest.Item]) -> None:
    """Every graded test must say what it is worth; a parametrized test splits its points over its cases."""
    unmarked = [item.nodeid for item in items if item.get_closest_marker("points") is None]
    if unmarked:
        raise pytest.UsageError(
            "graded tests without @pytest.mark.points(n): " + ", ".join(unmarked) + " (every graded test needs points)"
        )
    siblings: dict[str, int] = {}
    for item in items:
        siblings[_function_id(item)] = siblings.get(_function_id(item), 0) + 1
    for item in items:
        marker = item.get_closest_marker("points")
        value = marker.args[0] if len(marker.args) == 1 else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.points(n) with one positive number")
        item.stash[POINTS] = float(value) / siblings[_function_id(item)]


class _NotWrittenYet(BaseException):
    """Carries a student's NotImplementedError out of Hypothesis's runner, which lets a BaseException through at
    once (the plugin's ``pytest_pyfunc_call`` raises the student's error again, for pytest to report as usual)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


def hypothesis_test(item: pytest.Item):
    """(function, handle) of a Hypothesis test: the test's function (a method's function, for a test in a class)
    and its ``.hypothesis`` attribute; (function, None) for any other test."""
    function = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    return function, getattr(function, "hypothesis", None)


def _stop_at_stubs(item: pytest.Item) -> None:
    """A Hypothesis test of ``item`` ends at the first example whose call of the student code raises
    NotImplementedError (a TODO not written yet): there is no failing example to look for in a function not
    written yet. Hypothesis would run that example a second time and format its traceback twice, a tenth of a
    judge's CPU in a batch of unfinished submissions. The record is the same: kind "not_implemented" and the
    student's traceback. Hypothesis lets a test replace each example's call (``.hypothesis.inner_test``)."""
    from grader.worker.client import StudentError  # the client imports torch: not before a test needs it

    handle = hypothesis_test(item)[1]
    inner = getattr(handle, "inner_test", None)
    if inner is None or getattr(inner, "_grader_stops_at_stubs", False):
        return

    @functools.wraps(inner)
    def example(*args, **kwargs):
        try:
            return inner(*args, **kwargs)
        except StudentError as exc:
            if isinstance(exc, NotImplementedError):
                raise _NotWrittenYet(exc) from None
            raise

    example._grader_stops_at_stubs = True
    handle.inner_test = example


def examples_from_the_tests_alone() -> bool:
    """Make the examples of every Hypothesis test depend on that test alone; True if the change was made.

    Hypothesis (6.131 and later) sometimes draws, instead of a fresh value, a constant found in the source of a
    "local" module, meaning any module imported so far from outside site-packages and the standard library. In
    the judge those are the grader's modules and the lesson's, never the student's code (it runs in the worker).
    So a derandomized test ran different examples depending on what the judge had imported before it: in a
    whole grading, after ``--exercise ex4`` alone, in a batch after its warm-up. The same code could then get a
    different grade. Parsing those modules also cost the first such test 0.1 s of CPU. The pool of local constants
    stays empty here; Hypothesis's own built-in constants still apply. The hook is internal to Hypothesis (pinned in
    requirements.lock): if it moves, nothing changes and the function says so."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:
        return False
    if not callable(getattr(providers, "_get_local_constants", None)) or not hasattr(providers, "CONSTANTS_CACHE"):
        return False
    none = Constants()
    providers._get_local_constants = lambda: none
    providers.CONSTANTS_CACHE.cache.clear()  # any pool drawn from before now
    return True
