"""Batch grading on a Dask cluster: ``python -m grader batch SUBMISSIONS --out OUT --scheduler ADDRESS``.

``ADDRESS`` is a running Dask scheduler (``tcp://host:8786``) or ``local:N``, a ``distributed.LocalCluster`` of N
worker processes on this machine (for trying it out). Dask is optional: ``pip install -e '.[dask]'``.

This process (the client) does everything a local batch does but grade: it reads every submission before any
student code runs, decides what needs grading (the same hash, seals and re-runs), builds every results document
with ``Batch.finish`` from the judge's events, shows the same progress and is the only one that writes OUT. Each
Dask task grades one submission on a worker (grader.batch.dask_worker), through the same judge session, worker,
confinement and limits as a local batch, and returns the judge's events: the verdicts are the same.

Faults:
* A worker that dies (killed, out of memory, its machine gone) costs time only: Dask runs its task again on
  another worker. The client takes each task's result once, so no row is lost or written twice.
* A submission that was running every time its worker died is ungradable after ``TRIES`` deaths. Dask counts a
  death against every task *assigned* to the dead worker, queued ones too; so each task tells the client when it
  starts (an event), and a task that Dask gives up on (``KilledWorker``) but that was not running at most of those
  deaths is sent again under a new key (at most ``RESUBMITS`` times), as is one whose result was lost with its
  worker (graded there, then the worker died before the result reached the client).
* A task that fails for a reason of ours (a worker whose grading code differs from the client's, suites that do
  not collect) gets an "error" row, graded again by the next run; Dask retries it once first.
* An interrupted client keeps every finished row (the gradebook and the seals are written as rows come) and
  cancels what is left; the next run grades only what is missing.
"""

from __future__ import annotations

import dataclasses
import multiprocessing.forkserver
import signal
import threading
import time
import uuid
from collections import Counter

from grader.batch.dask_worker import PLUGIN_NAME, START_TOPIC, GraderSetup, Suite, differences, grade_submission
from grader.batch.scheduler import Batch, Job, Outcome
from grader.judge.session import GradingError

LOCAL = "local:"
TRIES = 3  # deaths of a worker, while it graded a submission, after which that submission is ungradable
RESUBMITS = 2  # times a task Dask gave up on is sent again because it was not the one killing workers
CONNECT_TIMEOUT = 30.0  # seconds to reach the scheduler
POLL = 0.1


def dask_config() -> dict:
    """Settings of a cluster started here (``local:N``): a worker process per core and one task at a time each,
    Dask's own bound on worker deaths set to ours, and no statistical profiler sampling the worker every 10 ms
    (it costs CPU that grading could use, and nothing here reads it)."""
    return {
        "distributed.scheduler.allowed-failures": TRIES - 1,
        "distributed.worker.profile.enabled": False,
        "distributed.worker.daemon": True,
    }


def local_cluster(n_workers: int):
    """A LocalCluster of ``n_workers`` single-threaded worker processes, configured like ``--scheduler local:N``.

    The workers are forked from a forkserver that has imported torch and the grading modules once
    (grader.batch.dask_preload), so a worker starts in a fraction of a second instead of importing them itself.
    That setting is left on in this process (a nanny reads it again when it restarts a worker that died)."""
    import dask
    from distributed import LocalCluster
    from distributed.utils import get_mp_context

    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    get_mp_context().set_forkserver_preload(["distributed", "grader.batch.dask_preload"])
    # Stopping is this process's job (it cancels the tasks and closes the cluster), but a Ctrl-C in a terminal
    # reaches the whole process group: each worker would die of it with a traceback. A SIGINT ignored here while
    # the forkserver starts stays ignored in it (across exec) and in every worker it forks.
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
    with dask.config.set(dask_config()):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            silence_logs=40)


def connect(address: str):
    """(client, cluster or None) for ``--scheduler``: ``local:N`` starts a LocalCluster here."""
    try:
        from distributed import Client
    except ImportError:
        raise GradingError("--scheduler needs Dask: pip install -e '.[dask]' (make test installs it)") from None
    cluster = None
    if address.startswith(LOCAL):
        count = address[len(LOCAL):]
        if not count.isdigit() or int(count) < 1:
            raise GradingError(f"--scheduler {address}: write local:N with N the number of worker processes")
        cluster = local_cluster(int(count))
        address = cluster.scheduler_address
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise GradingError(f"could not reach the Dask scheduler at {address}: {exc}") from None
    return client, cluster


class DaskBatch(Batch):
    """A Batch whose submissions are graded by Dask tasks (``self.running``: task key -> job)."""

    grades_here = False  # the workers' machines confine them, not this one (their results say how)

    def __init__(self, *args, scheduler: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.address = scheduler
        self.client = self.cluster = None
        self.tries = TRIES
        self.futures: dict = {}  # task key -> Future
        self.done = None  # distributed.as_completed over self.futures
        self.lock = threading.Lock()
        self.starts: Counter = Counter()  # task key -> starts reported by the task (START_TOPIC)
        self.deaths: Counter = Counter()  # student -> worker deaths while its submission was being graded
        self.resent: Counter = Counter()  # student -> times sent again under a new key

    # -- the cluster ------------------------------------------------------------------------------------------

    def _connect(self) -> None:
        """Reach the scheduler, send every worker the suites (a plugin: workers that join later get it too) and
        check that the workers grade with the client's code and packages."""
        from distributed import as_completed

        self.client, self.cluster = connect(self.address)
        self.client.subscribe_topic(START_TOPIC, self._started)
        # Dask gives up on a task after its scheduler's allowed-failures + 1 deaths (a lambda: sent by value, the
        # scheduler needs no grader)
        try:
            self.tries = min(TRIES, 1 + int(self.client.run_on_scheduler(lambda dask_scheduler:
                                                                        dask_scheduler.allowed_failures)))
        except Exception:  # noqa: BLE001 - a scheduler that refuses to run code: assume Dask's default (3)
            self.tries = TRIES
        reference, warm, _ = self._warm_plan(list(self.queue))
        suite = Suite.read(self.tests_dir, self.points, warm={
            f"{self.points[ex]['name']}.py": (reference / f"{self.points[ex]['name']}.py").read_bytes() for ex in warm})
        self.client.register_plugin(GraderSetup(suite), name=PLUGIN_NAME)
        theirs = self.client.run(_environment)
        bad = {addr: differences(env, suite.environment) for addr, env in theirs.items()}
        bad = {addr: why for addr, why in bad.items() if why}
        if bad:
            addr, why = next(iter(bad.items()))
            raise GradingError(f"{len(bad)} Dask worker(s) grade with other code or packages than this checkout "
                               f"(e.g. {addr}: {why}): start them from the same commit and environment")
        self.done = as_completed(loop=self.client.loop)
        self.settings = {"limits": dataclasses.asdict(self.opts.limits()),
                         "timeout": self.opts.timeout_per_submission, "digest": suite.digest}

    def _started(self, event) -> None:
        """A task began on a worker (called in the client's event-loop thread)."""
        _, msg = event
        with self.lock:
            self.starts[msg.get("key")] += 1

    def _submit(self, job: Job) -> None:
        key = f"lesson-grade-{uuid.uuid4().hex}"  # one task group ("lesson-grade") for the whole batch
        s = self.settings
        future = self.client.submit(grade_submission, job.sub.files, job.exercises, s["limits"], s["timeout"],
                                    s["digest"], key=key, retries=1)
        self.futures[key] = future
        self.running[key] = job
        self.done.add(future)

    # -- the loop ---------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        if not self.queue:
            return
        try:
            self._connect()
        except GradingError as exc:
            self.abandon(exc)
            return
        while self.queue and not self.signals.signum:
            job = self.queue.popleft()
            if self.begin(job):
                self._submit(job)
        while self.running and not self.signals.signum:
            if self.done.has_ready():
                for future in self.done.next_batch(block=False):
                    self._take_future(future)
            else:
                time.sleep(POLL)
            self.book.write_if_due()
            self.display.tick()

    def _take_future(self, future) -> None:
        key = future.key
        job = self.running.pop(key, None)
        self.futures.pop(key, None)
        if job is None:
            return
        outcome = None
        if future.status == "finished":
            try:
                outcome = Outcome.from_plain(future.result())  # Host.grade's Outcome.to_plain()
            except Exception:  # noqa: BLE001 - lost between its end and this read (its worker died): below
                pass
        if outcome is None:
            outcome = self._failed(job, key, future)
        future.release()
        if outcome is not None:
            self.finish(job, outcome)

    def _failed(self, job: Job, key: str, future) -> Outcome | None:
        """The Outcome of a task that did not finish, or None when it was sent again."""
        from distributed import KilledWorker

        if future.status in ("lost", "finished") and self.resent[job.student] < RESUBMITS:
            # graded, but its worker died (a submission after it killed it) before the result reached us: the
            # result went with it. Not this submission's doing: grade it again under a new key
            self.resent[job.student] += 1
            self._submit(job)
            return None
        try:
            exc = future.exception() if future.status == "error" else None
        except Exception as err:  # noqa: BLE001 - cancelled: the scheduler lost it (or is gone)
            exc = err
        if not isinstance(exc, KilledWorker):
            what = f"{type(exc).__name__}: {exc}" if exc is not None else f"the Dask task was {future.status}"
            return Outcome(error=f"on Dask, {_first_line(what)}")
        with self.lock:
            self.deaths[job.student] += self.starts.pop(key, 0)
        deaths = self.deaths[job.student]
        if deaths >= self.tries or self.resent[job.student] >= RESUBMITS:
            return Outcome(lost=f"the Dask worker grading it died each time ({max(deaths, self.tries)} tries: a "
                                f"crash, or its machine ran out of memory); not tried again")
        self.resent[job.student] += 1  # Dask counted deaths of workers it only waited on: not its fault
        self._submit(job)
        return None

    def close(self) -> None:
        """Cancel what is still running (an interrupted batch: those rows are pending, graded by the next run),
        write the gradebook, then leave the cluster (and stop it, if it was started here)."""
        if self.client is not None and self.futures:
            try:
                self.client.cancel(list(self.futures.values()), force=True)
            except Exception:  # noqa: BLE001 - the scheduler may be gone already
                pass
        try:
            super().close()
        finally:
            for thing in (self.client, self.cluster):
                if thing is not None:
                    try:
                        thing.close()
                    except Exception:  # noqa: BLE001 - closing after a lost connection
                        pass


def _environment() -> dict:
    from grader.batch.dask_worker import environment

    return environment()


def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0][:200]
