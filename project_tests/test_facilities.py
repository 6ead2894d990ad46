"""grader.facilities (which OS facilities the grader may use) and results.write_named (paths a user names)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from grader import facilities, results


@pytest.fixture
def without(monkeypatch):
    """Switch facilities off for one test, and probe again afterwards."""

    def switch(value: str) -> facilities.Facilities:
        monkeypatch.setenv(facilities.ENV, value)
        return facilities.refresh()

    yield switch
    monkeypatch.delenv(facilities.ENV, raising=False)
    facilities.refresh()


def test_facilities_switched_off_are_missing(without):
    here = without("")
    assert here.switched_off == ()
    off = without("landlock, namespaces,pidfd")
    assert off.switched_off == ("pidfd", "landlock", "namespaces")
    assert (off.landlock_abi, off.namespaces, off.pidfd) == (0, False, False)
    assert {"pidfd", "landlock", "namespaces"} <= set(off.missing())
    assert (off.fork, off.proc) == (here.fork, here.proc)  # the others are untouched
    everything = without("all")
    assert everything.missing() == list(facilities.NAMES)
    assert everything.start_method == "spawn"
    record = everything.record()
    assert record["start_method"] == "spawn" and record["switched_off"] == list(facilities.NAMES)


def test_facilities_unknown_name_stops_with_the_known_ones(without):
    with pytest.raises(SystemExit, match="unknown facility landlok.*known: fork"):
        without("landlok")


def test_facilities_on_this_linux_machine(without):
    here = without("")
    if not here.platform.startswith("linux"):
        pytest.skip("the project's machines are Linux")
    assert here.fork and here.proc and here.rlimits and here.start_method == "fork"


def test_write_named_replaces_a_regular_file_atomically(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")
    inode = os.stat(path).st_ino
    results.write_named(path, "new")
    assert path.read_text() == "new" and os.stat(path).st_ino != inode  # a new file, renamed into place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left


def test_write_named_writes_through_a_link_without_replacing_it(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    results.write_named(link, "new")
    assert stat.S_ISLNK(os.lstat(link).st_mode)  # renaming over it would have replaced the link
    assert target.read_text() == "new"


def test_write_named_writes_into_a_pipe_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    results.write_named(fifo, "through the pipe")
    reader.join(10)
    assert got == ["through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.slow
def test_grading_without_landlock_and_namespaces_reports_them_absent(tmp_path, host_modes):
    """The switch reaches the worker: the results document says the protections were off, and why. Graded from
    a copy of the repository: as root this is the uid mode, which seals the hidden tests and solutions of the
    checkout it runs from (host_modes checks that nothing else is left changed)."""
    import json
    import shutil
    import subprocess
    import sys

    from grader.course import REPO_ROOT

    repo = tmp_path / "repo"
    for part in ("grader", "llm_basics", "tests", "solutions", "exercises"):
        shutil.copytree(REPO_ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "r.json"
    env = {**os.environ, facilities.ENV: "landlock,namespaces", "PYTHONPATH": str(repo)}
    subprocess.run([sys.executable, "-m", "grader", "grade", "--target", "solutions", "-e", "ex1", "--json", str(out)],
                   cwd=repo, env=env, check=True, capture_output=True)
    lesson = json.loads(out.read_text())["lesson"]
    assert lesson["facilities"]["switched_off"] == ["landlock", "namespaces"]
    assert lesson["facilities"]["landlock_abi"] == 0
    prot = lesson["protections"]
    assert prot["filesystem"] is False and prot["user_namespace"] is False and prot["pid_namespace"] is False
