"""The judge's one door to the student's code: the worker that runs it (``make_client``), what that worker may
read (``worker_read_paths``) and never read (``seal_secrets``), the ``Student`` proxy the ``student`` fixture
hands to tests, and the rule that no worker carries a hidden test's inputs into a visible test."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from grader import facilities
from grader.course import REPO_ROOT, resolve_target
from grader.judge.state import state_of


def seal_secrets(config: pytest.Config) -> list[str]:
    """Where workers drop to a uid of their own (root without Landlock or namespaces), make the repository
    unreadable to it before any worker starts, as Landlock would: by default it is world-readable, and that uid
    owns nothing, so the file modes are all that stands between it and the hidden tests. Not only ``solutions/``
    and ``tests/hidden/``: ``.git`` holds every version of both (a submission read them from its packs), and
    ``.grades/`` the hidden tests' names. So every entry at the top of the repository is sealed but those a
    worker reads (``llm_basics/``, a ``.venv`` inside it); the folder a worker grades is shared with that worker's
    group alone while it runs (grader.worker.uid.share_read_only), and the ways to what it reads are opened
    (``open_ways``: the search bit, nothing to list). A checkout with no secret (a student's release) is left as
    it is."""
    from grader.worker import uid  # Linux only (fcntl): imported where it is asked about

    if config.getoption("--grader-no-confine") or not uid.needs_uid_drop(facilities.present()):
        return []
    secrets = [p for p in (REPO_ROOT / "solutions", REPO_ROOT / "tests" / "hidden") if p.exists()]
    for arg in config.args:  # a copy of the tests elsewhere (Gradescope's sandbox) carries its own hidden/
        path = Path(arg.split("::")[0])
        secrets += [p for p in (path, path.parent, path / "hidden") if p.name == "hidden" and p.exists()]
    if not secrets:  # a student's release, graded as root in a container: nothing to hide, nothing changed
        return []
    return uid.seal([*unread_by_workers(REPO_ROOT, worker_read_paths(REPO_ROOT)), *secrets])


def unread_by_workers(root: Path, read: list[str]) -> list[Path]:
    """The entries at the top of ``root`` that hold nothing of ``read`` (what a worker reads): neither one of them
    nor an ancestor of one. A link counts by where it is, never by where it points."""
    kept = [Path(os.path.realpath(p)) for p in read]
    real_root = Path(os.path.realpath(root))
    return [entry for entry in sorted(root.iterdir())
            if not any(k.is_relative_to(real_root / entry.name) for k in kept)]


def worker_read_paths(target: Path) -> list[str]:
    """What the worker may read: the Python installation and llm_basics (the submission copy is added by the
    client). Never the repository itself, its tests, solutions or grader."""
    here = facilities.present()
    if not (here.landlock or here.setuid):  # Landlock's rules, and the ways a worker of its own uid must pass
        return []
    from grader.worker import confine  # as in seal_secrets

    return [*confine.default_read_paths(exclude=[REPO_ROOT]), str(REPO_ROOT / "llm_basics")]


def make_client(config: pytest.Config, *, target: str, workdir: str | None = None, cpu_seconds: float,
                wall_seconds: float, memory_bytes: int | None = None, zygote=None, cpu: int | None = None):
    """The judge's connection to the worker that runs ``target`` (started on first use, on ``cpu`` if given)."""
    from grader.worker.client import WorkerClient, WorkerLimits  # the client imports torch

    folder = resolve_target(target)
    limits = WorkerLimits(cpu_seconds=cpu_seconds, wall_seconds=wall_seconds)
    if memory_bytes is not None:
        limits.memory_bytes = memory_bytes or None
    return WorkerClient(
        folder, Path(workdir or tempfile.mkdtemp(prefix="judge-")), limits=limits,
        read_paths=worker_read_paths(folder), confine=not config.getoption("--grader-no-confine"),
        zygote=zygote if zygote is not None else state_of(config).zygote[1], cpu=cpu,
    )


class Student:
    """The ``student`` fixture: ``student("ex2_topk_attention")`` is the graded module, as a proxy.

    Calls go to the worker process and come back as plain data. Files cross as bytes, never as paths the judge
    opens (the worker's folder is the worker's to fill with links and FIFOs): ``student.write(name, data)`` has
    the worker write a file a test needs and returns its path for the student code, ``student.read(name)`` has the
    worker read back a regular file the student code wrote, and ``student.path(name)`` names a file without
    touching it. ``student.once(items)`` is a one-shot iterable for the student code (a generator in the worker), and
    ``ex.fn.observe(...)`` calls ``fn`` and returns what the worker saw (grader.worker.proxies.Observation)."""

    def __init__(self, client) -> None:
        self._client = client

    def __call__(self, name: str):
        from grader.worker.client import ImportFailure

        try:
            return self._client.module(name)
        except ImportFailure as exc:
            pytest.fail(str(exc), pytrace=False)

    @staticmethod
    def once(items):
        """``items`` as an iterable the student code can walk only once (rebuilt in the worker as a generator)."""
        from grader.worker.rebuild import OneShot  # imports torch and llm_basics, as the client does

        return OneShot(items)

    def path(self, name: str) -> Path:
        """Where the file ``name`` of the worker's folder is, for the student code (the test never opens it)."""
        if self._client.sock is None:
            self._client._spawn()
        return self._client.private / name

    def write(self, name: str, data: bytes | str) -> Path:
        """Have the worker write ``data`` (str: as UTF-8) to the file ``name`` of its folder; returns its path."""
        return self._client.put_file(name, data.encode("utf-8") if isinstance(data, str) else data)

    def read(self, name: str) -> bytes:
        """The bytes of the file ``name`` the student code wrote in its folder (a regular file; capped in size)."""
        return self._client.get_file(name)


def _keep_hidden_inputs_in(client, hidden: bool) -> None:
    """No worker that has run a hidden test runs a test whose output reaches the student.

    What a hidden test hands to the student code stays in the worker's memory (and its folder): a later visible
    test could print it, raise it, or return it into a visible test's message. So a worker that has served a
    hidden test is stopped before the next visible test, which gets a fresh one. What a hidden test's own run
    shows (its output, reason and traceback) is left out of what students get (grader.results.for_students):
    what remains is whether it passed."""
    if hidden:
        client.ran_hidden = True
    elif client.ran_hidden:
        folder = client.private
        client.kill()
        shutil.rmtree(folder, ignore_errors=True)  # what it wrote there too (no link followed: rmtree uses fds)
        client.ran_hidden = False
