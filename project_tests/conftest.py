"""Fixtures for the project's own tests: a small demo suite that exercises the grader without the real lesson."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import textwrap
import warnings
from pathlib import Path

# nbgrader imports setuptools, whose distutils shim asserts that no stdlib distutils was imported before it; in one
# long test process something always was (seen in a full run: every in-process nbgrader test errored at setup).
# Use the stdlib distutils (Python 3.11 still has it) so the import order does not matter.
os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import HEAVY, heavy, write_suite  # noqa: E402

# Many of these tests fork graders from this process; a child forked after a multi-threaded torch op can
# deadlock in its first matmul, so the whole project suite runs torch on one thread from the start.
torch.set_num_threads(1)

# A process started in the background by a non-interactive shell (`cmd &`, nohup) starts with SIGINT ignored, and
# Python keeps it ignored: a `make watch` this suite starts inherits that, and one Ctrl-C cannot stop it
# (test_watch hung so, twice, in whole-suite runs launched that way; its /proc status showed SIGINT, SIGQUIT and
# SIGHUP ignored). Every test starts with Python's own SIGINT handler; a test that changed it is named in a warning.
_SIGINT_PUT = []


@pytest.fixture(autouse=True)
def _sigint_handler_restored(request):
    found = signal.getsignal(signal.SIGINT)
    if found is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if _SIGINT_PUT:  # not the launcher's choice, which the first test finds: a test before this one changed it
            warnings.warn(f"SIGINT's handler was {found!r} before {request.node.nodeid} (a test before it changed it)")
    if not _SIGINT_PUT:
        _SIGINT_PUT.append(True)
    yield


DEMO_POINTS = {
    "ex1": {"name": "ex1_demo", "title": "Demo one", "visible": 3, "hidden": 1},
    "ex2": {"name": "ex2_other", "title": "Demo two", "visible": 2, "hidden": 0},
}

DEMO_TESTS = {
    "test_ex1_demo.py": '''
        import pytest

        @pytest.mark.points(1)
        def test_add_sums(student):
            """add(a, b) returns a + b."""
            got = student("ex1_demo").add(1, 2)
            assert got == 3, f"expected 3, got {got}"

        @pytest.mark.points(2)
        @pytest.mark.parametrize("n", [1, 2, 3, 4])
        def test_work_returns_n(student, n):
            """work(n) returns n."""
            got = student("ex1_demo").work(n)
            assert got == n, f"expected {n}, got {got}"
    ''',
    "hidden/test_ex1_demo_hidden.py": '''
        import pytest

        @pytest.mark.points(1)
        def test_add_negative(student):
            """add works for negative numbers."""
            assert student("ex1_demo").add(-1, -2) == -3, "expected -3"
    ''',
    "test_ex2_other.py": '''
        import pytest

        @pytest.mark.points(2)
        def test_twice_doubles(student):
            """twice(x) returns 2 * x."""
            got = student("ex2_other").twice(4)
            assert got == 8, f"expected 8, got {got}"
    ''',
}

GOOD = {
    "ex1_demo.py": "def add(a, b):\n    return a + b\n\ndef work(n):\n    return n\n",
    "ex2_other.py": "def twice(x):\n    return 2 * x\n",
}


@pytest.fixture
def demo_tests(tmp_path: Path) -> Path:
    """A graded-suite folder laid out like tests/, with 6 points over two exercises (1 hidden)."""
    root = tmp_path / "suite" / "tests"
    (root / "hidden").mkdir(parents=True)
    (root / "points.json").write_text(json.dumps(DEMO_POINTS))
    (root / "conftest.py").write_text((Path(__file__).parent.parent / "tests" / "conftest.py").read_text())
    for name, text in DEMO_TESTS.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def make_submission(tmp_path: Path):
    """make_submission(ex1_demo=source, ...) -> folder with GOOD files overridden by the given sources."""
    counter = iter(range(1000))

    def make(**sources: str) -> Path:
        folder = tmp_path / f"submission{next(counter)}"
        folder.mkdir()
        files = dict(GOOD)
        files.update({f"{k}.py": None if v is None else textwrap.dedent(v) for k, v in sources.items()})
        for name, text in files.items():
            if text is not None:
                (folder / name).write_text(text)
        return folder

    return make


# ---------------------------------------------------------------------------------- host modes (uid mode)
_REPO = Path(__file__).resolve().parent.parent


def _ancestors(*paths) -> set[Path]:
    found = set()
    for path in paths:
        real = Path(os.path.realpath(path))
        found |= {real, *real.parents}
    return found


def host_modes_before(*paths) -> dict[Path, int]:
    """The modes of every folder a grading as root with workers of their own uid may change: the ancestors of
    ``paths`` and of the Python installation, the repository's tests/hidden and solutions."""
    import sys
    import sysconfig

    folders = _ancestors(*paths, sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["purelib"],
                         sysconfig.get_paths()["stdlib"], _REPO / "tests" / "hidden", _REPO / "solutions")
    return {p: os.lstat(p).st_mode & 0o7777 for p in folders if p.exists()}


def host_modes_put_back(before: dict[Path, int]) -> dict[str, tuple[str, str]]:
    """Every mode of ``before`` that changed, as path -> (before, now); each is put back."""
    changed = {}
    for path, mode in before.items():
        try:
            now = os.lstat(path).st_mode & 0o7777
        except OSError:
            continue
        if now != mode:
            changed[str(path)] = (oct(mode), oct(now))
            os.chmod(path, mode)
    return changed


@pytest.fixture
def host_modes(tmp_path):
    """For a test that grades as root with workers of their own uid: the host's modes (``host_modes_before``)
    recorded before; after, each is checked (the grader puts back what it opened) and put back whatever
    happened, so that no test leaves the host changed."""
    before = host_modes_before(tmp_path)
    yield before
    changed = host_modes_put_back(before)
    assert not changed, f"the grading left modes changed on the host (put back now): {changed}"


# ---------------------------------------------------------------------------------- the batch tests' fixtures
@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """The fake suite of helpers.py (two exercises, 3 points each, 1 of them hidden), laid out like tests/."""
    return write_suite(tmp_path / "suite" / "tests")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch) -> Path:
    """A temp dir of our own for the duration of the test: whatever lands in it was written outside OUT."""
    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def pytest_collection_modifyitems(config, items):
    """Tests marked ``heavy`` cost minutes and have a cheap form that always runs: skipped unless asked for, so
    that `make test` keeps within CI's budget (15 minutes on 2 cores)."""
    if heavy():
        return
    skip = pytest.mark.skip(reason=f"heavy: run with {HEAVY}=1 (make test-heavy)")
    for item in items:
        if item.get_closest_marker("heavy"):
            item.add_marker(skip)
