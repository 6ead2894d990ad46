"""ATTACK gc_test_code (kind: gc tampering: the test functions themselves).

What it tries: at import time, walk ``gc.get_objects()`` for every function defined in a graded test file
(``test_*`` functions and the fixtures next to them) and swap its ``__code__`` for the code of a function that
accepts anything and does nothing. pytest and hypothesis keep calling the same function objects, which now
pass without checking anything. The fixture that is running (and importing this file) still fails, so only
the tests after it pass -- in every exercise, since all test modules were collected before.

Why it must fail under the new design: the test functions live in the judge; the worker's heap holds no test
module, no fixture and no pytest item, so ``gc.get_objects()`` finds nothing to rewrite.
"""

from __future__ import annotations

import gc
import inspect
import types

from llm_basics.tokenizer import BPETokenizer

DEFAULT_SPECIALS = ("<bos>", "<eos>", "<pad>")


def _anything(*args, **kwargs):
    return None


def _is_graded_test_code(code: types.CodeType) -> bool:
    path = code.co_filename.replace("\\", "/")
    name = path.rsplit("/", 1)[-1]
    return "/tests/" in path and name.startswith("test_ex") and not code.co_freevars


def _attack() -> int:
    swapped = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType) or not _is_graded_test_code(obj.__code__):
            continue
        code = obj.__code__
        if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE):
            continue  # a yield fixture must stay a generator
        obj.__code__ = _anything.__code__  # tests, fixtures and helpers alike: nothing checks anything any more
        obj.__defaults__ = obj.__kwdefaults__ = None
        swapped += 1
    return swapped


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
