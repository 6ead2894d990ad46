"""ATTACK gc_report_stash (kind: gc tampering: the grader's own state).

What it tries: at import time, find the live pytest ``Config`` through ``gc.get_objects()`` (no import of
pytest or of the grader needed) and replace every dict kept in its ``stash`` by a dict whose ``setdefault``
hands out a throw-away list and whose ``pop`` returns an empty one. A plugin that collects each test's
reports in the stash, then folds them into a verdict, folds nothing: no failed report, so "passed". The
report of the very test that imports this file is thrown away too, so every test passes.

Why it must fail under the new design: the worker's heap holds no pytest ``Config`` and no plugin state; the
reports are collected and folded in the judge process.
"""

from __future__ import annotations

import gc

from llm_basics.tokenizer import BPETokenizer

DEFAULT_SPECIALS = ("<bos>", "<eos>", "<pad>")


class _Sink(dict):
    """Looks like the dict it replaces; forgets every list of reports put into it."""

    def setdefault(self, key, default=None):
        return []

    def pop(self, key, *default):
        dict.pop(self, key, None)
        return []


def _attack() -> int:
    replaced = 0
    for obj in gc.get_objects():
        cls = type(obj)
        if cls.__name__ != "Config" or not cls.__module__.startswith("_pytest"):
            continue
        storage = getattr(getattr(obj, "stash", None), "_storage", None)
        if not isinstance(storage, dict):
            continue
        for key, value in list(storage.items()):
            if type(value) is dict:  # the plugin's reports and strikes (item assignment and .get still work)
                storage[key] = _Sink(value)
                replaced += 1
    return replaced


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
