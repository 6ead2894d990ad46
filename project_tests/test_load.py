"""The same grade on a starved machine: the reference scores 100 (hidden tests included) while CPU-bound
processes compete for every core, and gradings of one half-done submission under that load give the same results
documents apart from durations (6 of them, 20 and the Gradescope entry point too with GRADER_HEAVY_TESTS=1).

A cgroup CPU quota would be the cleaner way to give grading half a CPU, but the cgroup controllers of these
machines do not throttle (measured: a quota of 0.5 CPU left a busy loop unthrottled), so the load is made the
other way the issue allows: 2 CPU-bound competitors per core for the whole run (4 in the full form).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.platforms import gradescope
from grader.batch import batch_grade
from grader.grading import grade
from helpers import heavy  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VOLATILE = {"duration", "cpu", "execution_time"}


@pytest.fixture
def starved():
    """Busy loops for the duration of the test: 2 per core, each process then gets a third of a core or less
    (4 per core in the full form, GRADER_HEAVY_TESTS=1)."""
    per_core = 4 if heavy() else 2
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(per_core * (os.cpu_count() or 1))]
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def reference(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in (REPO / "solutions").glob("ex*_*.py"):
        shutil.copy(path, folder / path.name)
    return folder


def stable(doc):
    """The document without what measures time."""
    if isinstance(doc, dict):
        return {k: stable(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [stable(v) for v in doc]
    return doc


@pytest.mark.slow
def test_reference_scores_full_marks_when_starved(starved, tmp_path):
    doc = grade(reference(tmp_path / "ref"), hidden=True)
    assert (doc["score"], doc["max_score"]) == (100, 100), [t["extra_data"]["reason"] for t in doc["tests"]
                                                            if t["status"] != "passed"]
    if heavy():  # the Gradescope entry point grades through the same function (test_gradescope checks it)
        gs = gradescope.run(reference(tmp_path / "gs" / "submission"), tmp_path / "gs" / "results.json")
        assert (gs["score"], gs["max_score"]) == (100, 100)


def half_done(folder: Path) -> Path:
    """ex2 and ex4 (the timing harness) solved, ex1 and ex3 the untouched stubs: passes and failures both."""
    folder.mkdir(parents=True)
    for name in ("ex2_topk_attention.py", "ex4_scaling.py"):
        shutil.copy(REPO / "solutions" / name, folder / name)
    for name in ("ex1_special_tokens.py", "ex3_parameter_accounting.py"):
        shutil.copy(REPO / "exercises" / name, folder / name)
    return folder


@pytest.mark.slow
def test_many_gradings_under_load_are_identical(starved, tmp_path):
    """6 copies of a half-done submission (20 with GRADER_HEAVY_TESTS=1) graded in one batch under load: the
    same results documents apart from what measures time."""
    subs = tmp_path / "subs"
    for i in range(20 if heavy() else 6):
        half_done(subs / f"copy{i:02d}")
    rows = batch_grade(subs, tmp_path / "out", jobs=2, progress=None)
    assert {row["total"] for row in rows} == {"50"}
    docs = [stable(json.loads((tmp_path / "out" / row["student"] / "results.json").read_text())) for row in rows]
    for doc in docs:
        for key in ("target", "student", "entry", "sources", "submission_hash"):
            doc["lesson"].pop(key, None)
    assert all(doc == docs[0] for doc in docs[1:])
    with open(tmp_path / "out" / "grades.csv", newline="") as f:
        assert all(row["status"] == "graded" for row in csv.DictReader(f))
