"""The Dask worker's side of a Dask batch (grader.batch.dask_pool): one warm judge session per worker process, and
the task that grades one submission with it.

A Dask worker grades exactly as a local batch does: the same judge session (grader.judge.session.JudgeServer: pytest
with the grading plugin, the suites collected once, a judge forked per submission, the student code only in the
judge's confined worker), the same limits, the same event stream. Only the transport differs: the submission's
taken files come in the task (a few KB, never a path on a shared disk), and the judge's events go back in its
result, to the client, which alone builds the results document and writes OUT.

What a worker keeps between tasks (``Host``, one per worker process): torch imported and set to one thread, the
suites written to the worker's scratch folder and collected by the judge session. The first task on a worker
pays for that (a few seconds); every later one costs what a submission costs locally.

The suites are shipped, not read from the worker's checkout: the client sends its own ``tests/`` once per worker
(``GraderSetup``, a worker plugin that the scheduler also hands to workers that join or restart later), so a
worker grades with exactly the tests the client hashed into every row's ``submission_hash``, and the hidden tests
need no copy on every machine's disk. The grading code cannot be shipped that way (it is imported before any
task: torch, the plugin, ``llm_basics``), so each worker compares its own with the client's (``environment()``:
the code digest and the versions that could change a verdict) and refuses to grade when they differ.

Fork safety: a Dask worker process has threads (its event loop, the task threads). The judge session is forked
from it once, after ``preload`` has set torch to one thread (a child forked after a multi-threaded torch op can
deadlock in its first matmul); every later fork (a judge, its zygote, the worker) happens in that single-threaded
session, never in the Dask worker.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from grader.intake import collect as sandbox, digest as hashes
from grader.judge.session import GradingError, JudgeSession, Limits
from grader.untrusted_paths import write_new

try:  # the client side imports this module too; a worker always has distributed
    from distributed import WorkerPlugin, get_worker
except ImportError:  # pragma: no cover - only without Dask, where nothing here is used
    WorkerPlugin, get_worker = object, None

PLUGIN_NAME = "lesson-grader"
START_TOPIC = "lesson-grader-start"  # a task tells the client where and when it started (grader.batch.dask_pool)
PACKAGES = ("torch", "numpy", "pytest", "hypothesis")  # versions that could change a verdict
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis"}


def environment() -> dict[str, str]:
    """What must be the same on the client and every worker for a verdict to be the same."""
    env = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "grading code": hashes.code_digest()}
    for name in PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "not installed"
    return env


def differences(worker: dict, client: dict) -> str:
    """'torch 2.5.1 on the worker, 2.13.0 on the client; ...', or '' when the two environments match."""
    return "; ".join(f"{k} {worker.get(k)!s:.12} on the worker, {client.get(k)!s:.12} on the client"
                     for k in sorted(set(worker) | set(client)) if worker.get(k) != client.get(k))


@dataclass(frozen=True)
class Suite:
    """What a worker needs for a batch, sent once per worker: the graded suites' files and digest, and the
    client's environment to compare with."""

    digest: str  # hashes.tests_digest() of the client's tests/ (part of every submission_hash)
    dirname: str  # the tests folder's name: test node ids ("tests/test_ex1_x.py::test_y") read the same
    files: dict  # relative POSIX path -> bytes
    exercises: tuple  # every exercise id of the course manifest, in order
    warm_flops: bool  # an exercise counts FLOPs: torch's symbolic shapes are imported before the fork (points.json)
    environment: dict
    # the reference files the session grades once before serving, as a local batch's does (its ``_warm_plan``):
    # file name -> bytes, for the exercises enough submissions have started; without it every judge pays the
    # first calls of its suites' oracles itself (~0.5 s of CPU a submission, measured with perf)
    warm: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, tests_dir: Path, points: dict, warm: dict | None = None) -> "Suite":
        files = {}
        for path in sorted(p for p in tests_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(tests_dir)
            if SKIPPED_PARTS.isdisjoint(rel.parts) and rel.suffix != ".pyc":
                files[rel.as_posix()] = path.read_bytes()
        return cls(digest=hashes.tests_digest(tests_dir), dirname=tests_dir.name, files=files,
                   exercises=tuple(points), environment=environment(), warm=dict(warm or {}),
                   warm_flops=any(meta.get("counts_flops") for meta in points.values()))


class Host:
    """This worker process's judge session for one suite: started by the first task, used by every later one.

    Several task threads (a worker with ``--nthreads`` > 1) share it: the session grades their submissions side by
    side, and one thread at a time reads its replies and hands each to the thread that waits for it."""

    def __init__(self, suite: Suite, root: Path) -> None:
        self.digest = suite.digest
        self.root = root
        shutil.rmtree(root, ignore_errors=True)
        tests = root / "suite" / suite.dirname
        for rel, data in suite.files.items():
            (tests / rel).parent.mkdir(parents=True, exist_ok=True)
            (tests / rel).write_bytes(data)
        if hashes.tests_digest(tests) != suite.digest:
            raise GradingError("the suites written on this worker do not hash like the client's")
        reference = root / "reference"
        reference.mkdir()
        for name, data in suite.warm.items():
            write_new(reference / Path(name).name, data)
        warm = [ex for ex in suite.exercises if any(name.startswith(ex + "_") for name in suite.warm)]
        self.server = JudgeSession.for_suites(list(suite.exercises), hidden=True, tmpdir=root, limits=Limits(),
                                              tests_dir=tests, flop_counter=suite.warm_flops,
                                              warm_with=reference if warm else None, warm_exercises=warm)
        self.probe()

    def probe(self) -> None:
        """A request with no exercise: returns once the session has collected every suite (a collection error
        is a GradingError here, before any submission is at stake), and pays the first fork."""
        box = Path(tempfile.mkdtemp(prefix="probe-", dir=self.root))
        try:
            self.server.submit(box / "none", [], events=box / "events.jsonl", workdir=box / "work").result(0.1)
        finally:
            shutil.rmtree(box, ignore_errors=True)

    def grade(self, files: dict[str, bytes], exercises: list[str], limits: Limits, timeout: float) -> dict:
        """Grade one submission (its taken files); the judge's events and wait status, as plain data."""
        box = Path(tempfile.mkdtemp(prefix="sub-", dir=self.root))
        try:
            target = box / "exercises"
            target.mkdir()
            for name, data in files.items():
                write_new(target / Path(name).name, data)
            # --timeout-per-submission, enforced here by the handle: the client cannot reach this judge's pid
            outcome = self.server.submit(target, exercises, events=box / "events.jsonl", workdir=box / "work",
                                         limits=limits, deadline=timeout).result(0.1)
            return outcome.to_plain()
        finally:
            shutil.rmtree(box, ignore_errors=True)

    def close(self) -> None:
        try:
            self.server.close()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# One Host per worker process, for the suite of the plugin registered last.
_lock = threading.Lock()
_state: dict = {"suite": None, "root": None, "host": None, "broken": ""}


class GraderSetup(WorkerPlugin):
    """Gives each worker (those there now, and any that joins or restarts later) the batch's suites. Cheap: the
    judge session starts with the first task. Registering the same suite again keeps a warm session."""

    name = PLUGIN_NAME

    def __init__(self, suite: Suite) -> None:
        self.suite = suite

    def setup(self, worker) -> None:
        with _lock:
            host = _state["host"]
            if host is not None and host.digest != self.suite.digest:
                _state["host"] = None
                host.close()
            if _state["suite"] is None or _state["suite"].digest != self.suite.digest:
                _state["broken"] = ""
            _state["suite"] = self.suite
            _state["root"] = Path(worker.local_directory) / PLUGIN_NAME

    def teardown(self, worker) -> None:
        """When the worker closes, end its judge session and wait for it (a session left to end on its own, once
        its socket closes, would stay a zombie where PID 1 reaps nothing, as in some containers). Otherwise a
        new registration is replacing this one: ``setup`` keeps the session if the suite is the same."""
        if getattr(worker.status, "name", "") not in ("closing", "closing_gracefully", "closed"):
            return
        with _lock:
            host, _state["host"] = _state["host"], None
        if host is not None:
            host.close()


def _host(digest: str) -> tuple[Host, float]:
    """This worker's warm Host for ``digest`` (started now if needed) and the seconds spent starting it."""
    with _lock:
        suite, host = _state["suite"], _state["host"]
        if suite is None or suite.digest != digest:
            raise GradingError("this worker has not received the batch's suites (another batch replaced them?)")
        if _state["broken"]:
            raise GradingError(_state["broken"])
        if host is not None:
            return host, 0.0
        mismatch = differences(environment(), suite.environment)
        if mismatch:
            _state["broken"] = f"worker {socket.gethostname()} grades with other code or packages: {mismatch}"
            raise GradingError(_state["broken"])
        started = time.monotonic()
        try:
            host = Host(suite, _state["root"])
        except GradingError as exc:  # the suites do not collect: the same on every try, so remember it
            _state["broken"] = str(exc)
            raise
        _state["host"] = host
        return host, time.monotonic() - started


def _drop(host: Host) -> None:
    with _lock:
        if _state["host"] is host:
            _state["host"] = None
    host.close()


def grade_submission(files: dict[str, bytes], exercises: list[str], limits: dict, timeout: float,
                     digest: str) -> dict:
    """The Dask task: grade one submission's taken files on this worker. Returns plain data: the judge's events,
    its wait status, the seconds of grading, whether it was stopped at ``timeout``, and where it ran."""
    worker = get_worker()
    worker.log_event(START_TOPIC, {"key": str(worker.get_current_task()), "worker": worker.address})
    host, warmup = _host(digest)
    try:
        reply = host.grade(files, exercises, Limits(**limits), timeout)
    except GradingError:  # the session itself ended: the next task (or Dask's retry of this one) starts another
        _drop(host)
        raise
    reply.update(worker=worker.address, host=socket.gethostname(), warmup=warmup)
    return reply

