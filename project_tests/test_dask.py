"""Batch grading on Dask (``--scheduler``): the same gradebook as a local batch, and no row lost or doubled when
workers die.

The fault tests share one LocalCluster of 2 worker processes (started here, reached by its tcp:// address like any
cluster) and a tiny suite; the comparison with ``--jobs 2`` grades the real lesson with ``--scheduler local:2``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import signal
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from grader import batch
from grader.batch import batch_grade
from grader.batch.lifecycle import Interrupted
from grader.judge.session import GradingError

distributed = pytest.importorskip("distributed", reason="Dask is an optional extra: pip install -e '.[dask]'")

from grader.batch import dask_pool  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from helpers import GOOD, POINTS, STUB, SUITE, _verdicts, lesson_submissions, read_csv, write_folder  # noqa: E402

FAST = dict(test_timeout=5.0, memory_mb=512, timeout_per_submission=60.0, progress=None)

# The suite of test_batch.py, plus a way for a submission to kill the Dask worker grading it (every time): when
# add(1, 2) returns "stop the machine", the test (in the judge, which descends from the Dask worker: judge ->
# judge session -> Dask worker) kills that worker, as an out-of-memory kill or a crashed node would. Only a Dask
# worker is ever killed: under --jobs the judge session's parent is the batch itself, and nothing happens.
CRASHING_SUITE = {**SUITE, "test_ex1_alpha.py": '''
    import os
    import signal

    import pytest


    def stop_the_grading_machine():
        session = os.getppid()
        with open(f"/proc/{session}/stat") as f:
            worker = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{worker}/cmdline", "rb") as f:
            command = f.read()
        if b"dask" in command or b"spawn_main" in command:
            os.kill(worker, signal.SIGKILL)

    @pytest.mark.points(1)
    def test_add_sums(student):
        """add(a, b) returns a + b."""
        got = student("ex1_alpha").add(1, 2)
        if got == "stop the machine":
            stop_the_grading_machine()
        assert got == 3, f"expected 3, got {got}"

    @pytest.mark.points(1)
    def test_add_zero(student):
        """add(a, 0) returns a."""
        got = student("ex1_alpha").add(5, 0)
        assert got == 5, f"expected 5, got {got}"
'''}
SLOW_GOOD = {**GOOD, "ex2_beta.py": "import time\n\ndef mul(a, b):\n    time.sleep(0.3)\n    return a * b\n"}
CRASHER = {**GOOD, "ex1_alpha.py": "def add(a, b):\n    return 'stop the machine'\n"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dask-suite") / "tests"
    (root / "hidden").mkdir(parents=True)
    (root / "points.json").write_text(json.dumps(POINTS))
    for name, text in CRASHING_SUITE.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, configured as ``--scheduler local:2`` configures its own."""
    with dask_pool.local_cluster(2) as cluster:
        yield cluster


def worker_pids(cluster) -> list[int]:
    return [nanny.process.pid for nanny in cluster.workers.values() if nanny.process and nanny.process.pid]


def csv_rows(out: Path) -> list[dict]:
    with open(out / "grades.csv", newline="") as f:
        return list(csv.DictReader(f))


class OnRow(io.StringIO):
    """A progress stream that calls ``action`` once, when the ``after``-th row is shown."""

    def __init__(self, after: int, action) -> None:
        super().__init__()
        self.after, self.action, self.done = after, action, False

    def write(self, text: str) -> int:
        n = super().write(text)
        if not self.done and self.getvalue().count("\n") >= self.after and text.startswith("["):
            self.done = True
            self.action()
        return n


# ----------------------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------------------


def test_cli_takes_a_scheduler_instead_of_jobs(tmp_path):
    parser = argparse.ArgumentParser()
    batch.add_batch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["batch", "subs", "--out", "o", "--scheduler", "tcp://10.0.0.1:8786"])
    assert args.scheduler == "tcp://10.0.0.1:8786"
    assert parser.parse_args(["batch", "subs", "--out", "o"]).scheduler is None
    with pytest.raises(SystemExit):
        parser.parse_args(["batch", "subs", "--out", "o", "--scheduler", "local:2", "--jobs", "2"])
    for bad in ("local:", "local:0", "local:two"):
        with pytest.raises(GradingError, match="local:N"):
            dask_pool.connect(bad)


def test_an_unreachable_scheduler_gives_error_rows(tmp_path, suite, monkeypatch):
    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT", 1.0)
    write_folder(tmp_path / "subs" / "ann", GOOD)
    rows = batch_grade(tmp_path / "subs", tmp_path / "out", tests_dir=suite, scheduler="tcp://127.0.0.1:9",
                       **FAST)
    assert [(r["student"], r["status"]) for r in rows] == [("ann", "error")]
    assert "could not reach the Dask scheduler" in rows[0]["reason"]


# ----------------------------------------------------------------------------------------------------------
# Faults, on one shared cluster
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_workers_with_other_grading_code_refuse_to_grade(tmp_path, suite, cluster, monkeypatch):
    read = dask_pool.Suite.read

    def from_another_checkout(tests_dir, points, **kwargs):  # as if the client ran other code than the workers
        theirs = read(tests_dir, points, **kwargs)
        return dataclasses.replace(theirs, environment={**theirs.environment, "torch": "1.0.0"})

    monkeypatch.setattr(dask_pool.Suite, "read", from_another_checkout)
    write_folder(tmp_path / "subs" / "ann", GOOD)
    rows = batch_grade(tmp_path / "subs", tmp_path / "out", tests_dir=suite, scheduler=cluster.scheduler_address,
                       **FAST)
    assert [(r["student"], r["status"]) for r in rows] == [("ann", "error")]
    assert "2 Dask worker(s) grade with other code or packages" in rows[0]["reason"]
    assert "on the worker, 1.0.0 on the client" in rows[0]["reason"]


@pytest.mark.slow
def test_a_worker_killed_mid_batch_costs_only_time(tmp_path, suite, cluster):
    subs, out = tmp_path / "subs", tmp_path / "out"
    students = [f"s{i}" for i in range(8)]
    for student in students:
        write_folder(subs / student, SLOW_GOOD)
    write_folder(subs / "stubs", STUB)
    victims = []

    def kill_a_worker():
        pid = worker_pids(cluster)[0]
        victims.append(pid)
        os.kill(pid, signal.SIGKILL)

    rows = batch_grade(subs, out, tests_dir=suite, scheduler=cluster.scheduler_address,
                       **{**FAST, "progress": "plain"}, stream=OnRow(2, kill_a_worker))
    assert victims, "no worker was killed"
    written = csv_rows(out)
    assert sorted(r["student"] for r in written) == sorted([*students, "stubs"])  # each row once
    assert [r["student"] for r in rows] == sorted([*students, "stubs"])
    for row in written:
        want = "0" if row["student"] == "stubs" else "6"
        assert (row["status"], row["total"]) == ("graded", want), row
    doc = json.loads((out / "s7" / "results.json").read_text())
    assert doc["lesson"]["protections"], "the Dask worker graded without reporting its confinement"


@pytest.mark.slow
def test_a_submission_that_kills_every_worker_is_ungradable_after_bounded_tries(tmp_path, suite, cluster):
    subs, out = tmp_path / "subs", tmp_path / "out"
    write_folder(subs / "crasher", CRASHER)
    for student in ("ann", "bob", "cat"):
        write_folder(subs / student, GOOD)
    log = io.StringIO()
    rows = {r["student"]: r for r in batch_grade(subs, out, tests_dir=suite, scheduler=cluster.scheduler_address,
                                                 **{**FAST, "progress": "plain"}, stream=log)}
    assert rows["crasher"]["status"] == "ungradable", rows["crasher"]
    assert f"died each time ({dask_pool.TRIES} tries" in rows["crasher"]["reason"]
    for student in ("ann", "bob", "cat"):  # graded, though queued on the same dying workers
        assert (rows[student]["status"], rows[student]["total"]) == ("graded", "6"), (rows[student]["reason"], log.getvalue()[-2000:])
    assert len(csv_rows(out)) == 4
    assert "could not be graded" in (out / "crasher" / "feedback.md").read_text()


@pytest.mark.slow
def test_an_interrupted_client_keeps_finished_rows_and_resumes(tmp_path, suite, cluster):
    subs, out = tmp_path / "subs", tmp_path / "out"
    students = [f"s{i}" for i in range(6)]
    for student in students:
        write_folder(subs / student, SLOW_GOOD)
    with pytest.raises(Interrupted):
        batch_grade(subs, out, tests_dir=suite, scheduler=cluster.scheduler_address,
                    **{**FAST, "progress": "plain"}, stream=OnRow(2, lambda: os.kill(os.getpid(), signal.SIGINT)))
    first = {r["student"]: r for r in csv_rows(out)}
    assert sorted(first) == students  # every student has a row: graded, or pending
    graded = {s for s, r in first.items() if r["status"] == "graded"}
    assert 2 <= len(graded) < len(students), first
    assert all(r["status"] == "pending" for s, r in first.items() if s not in graded), first

    log = io.StringIO()
    rows = batch_grade(subs, out, tests_dir=suite, scheduler=cluster.scheduler_address,
                       **{**FAST, "progress": "plain"}, stream=log)
    assert log.getvalue().count("skipped (unchanged)") == len(graded)
    assert [(r["student"], r["status"], r["total"]) for r in rows] == [(s, "graded", "6") for s in students]


@pytest.mark.slow
def test_a_stopped_forced_run_says_what_the_next_run_grades(tmp_path, suite, cluster):
    """A --force run stopped part-way says "N not graded: run the batch again"; the plain re-run then grades those
    N (they had earlier rows, so it would otherwise skip them as unchanged), and no others."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    students = [f"s{i}" for i in range(5)]
    for student in students:
        write_folder(subs / student, SLOW_GOOD)
    run = dict(tests_dir=suite, scheduler=cluster.scheduler_address, **{**FAST, "progress": "plain"})
    batch_grade(subs, out, **run, stream=io.StringIO())
    stopped = OnRow(2, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(Interrupted):
        batch_grade(subs, out, force=True, **run, stream=stopped)
    summary = stopped.getvalue().splitlines()[-1]
    forced = {line.split()[1] for line in stopped.getvalue().splitlines() if line.startswith("[")}
    left = len(students) - len(forced)
    assert left > 0, stopped.getvalue()
    assert f"{left} not graded (stopped by SIGINT: run the batch again to grade them; {left} keep their earlier" \
           " grade until then)" in summary, summary
    assert all(r["status"] == "graded" for r in csv_rows(out))  # the earlier rows stay meanwhile

    log = io.StringIO()
    batch_grade(subs, out, **run, stream=log)
    lines = [line for line in log.getvalue().splitlines() if line.startswith("[")]
    assert {line.split()[1] for line in lines if "skipped (unchanged)" not in line} == set(students) - forced, lines
    assert not (out / ".force-pending.json").exists()


# ----------------------------------------------------------------------------------------------------------
# The real lesson: the same gradebook as --jobs 2
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_lesson_batch_on_dask_matches_local_jobs(tmp_path):
    subs = tmp_path / "subs"
    lesson_submissions(subs)
    local = read_csv(_graded(subs, tmp_path / "local", jobs=2))
    dask = read_csv(_graded(subs, tmp_path / "dask", scheduler="local:2"))
    assert dask == local  # the CSV has no durations: every column must match
    assert local["reference"]["total"] == local["reference"]["max"] and local["stubs"]["total"] == "0"
    assert local["redteam"]["total"] == "0" and local["redteam"]["status"] == "graded"
    for student in local:
        ours = json.loads((tmp_path / "dask" / student / "results.json").read_text())
        theirs = json.loads((tmp_path / "local" / student / "results.json").read_text())
        assert _verdicts(ours) == _verdicts(theirs), student
        assert ours["lesson"]["protections"] == theirs["lesson"]["protections"]


def _graded(subs: Path, out: Path, **how) -> Path:
    batch_grade(subs, out, progress=None, test_timeout=30.0, **how)
    return out


class _Future:
    """A Dask future as the client sees it after its worker died: ``lost``, or ``finished`` with a result that
    cannot be read any more."""

    def __init__(self, key: str, status: str) -> None:
        self.key, self.status, self.released = key, status, False

    def result(self):
        raise RuntimeError("the result went with its worker")

    def release(self) -> None:
        self.released = True


def test_a_result_lost_with_its_worker_is_graded_again_not_an_error():
    """A submission graded on a worker that died (killed by a later submission) before its result reached the
    client: its task is sent again under a new key (at most RESUBMITS times), never turned into an error row;
    the race seen under load, where an innocent submission got "the Dask task was lost"."""
    batch = object.__new__(dask_pool.DaskBatch)
    batch.running, batch.futures, batch.lock = {}, {}, threading.Lock()
    batch.resent, batch.deaths, batch.starts = Counter(), Counter(), Counter()
    sent, finished = [], []
    batch._submit = sent.append
    batch.finish = lambda job, outcome: finished.append((job, outcome))
    job = SimpleNamespace(student="ann")
    for n, status in enumerate(["lost", "finished"] + ["lost"] * (dask_pool.RESUBMITS - 1)):
        batch.running[f"k{n}"] = job
        future = _Future(f"k{n}", status)
        batch._take_future(future)
        assert future.released
        if n < dask_pool.RESUBMITS:
            assert (sent, finished) == ([job] * (n + 1), []), n
    (_, outcome), = finished  # past RESUBMITS: an error row, graded again by the next run
    assert sent == [job] * dask_pool.RESUBMITS and "lost" in outcome.error
