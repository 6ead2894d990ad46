"""Prepare a process to fork judges from: the heavy imports once, torch on one thread, the compiler kept out.

The parent (``grade``, ``watch``, a batch, a Dask worker) calls ``preload`` before it opens a judge session
(grader.judge.session); the session's process calls ``enter_session`` first thing, forked or spawned.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import signal
import sys
from pathlib import Path

from grader import facilities


_PRELOADED = False
_FLOPS_WARM = False


def keep_dynamo_unloaded() -> int:
    """Stop torch from importing its compiler (torch._dynamo, ~0.7 s of CPU) on the first FLOP count.

    torch wraps some functions in ``torch._disable_dynamo``, among them every TorchDispatchMode's
    ``__torch_dispatch__`` (FlopCounterMode's, in the judge's oracles and in ex4's student code) and the
    reference implementations of the meta device's ops (``torch._refs``). The wrapper imports torch._dynamo on
    its first call, to build a version of the function that the compiler skips, and caches it on the function as
    ``__dynamo_disable``. Grading never compiles, so each of these functions is cached as its own skipped
    version: the first call runs it directly, as every later call would. Other wrappers (the optimizers', say)
    are left alone, and so are wrappers made later (a TorchDispatchMode subclass defined by a test): slower,
    never different. Must run before ``gc.freeze()``, which hides objects from ``gc.get_referrers``. Returns how
    many functions were set: 0 if torch's internals change (still correct, slower)."""
    import types

    try:
        import torch._compile

        inner = next(c for c in torch._compile._disable_dynamo.__code__.co_consts
                     if isinstance(c, types.CodeType) and c.co_name == "inner")
        slot = inner.co_freevars.index("fn")
        done = 0
        for wrapper in gc.get_referrers(inner):  # the functions whose code is ``inner``: every wrapper made so far
            if type(wrapper) is not types.FunctionType or wrapper.__code__ is not inner:
                continue
            fn = wrapper.__closure__[slot].cell_contents
            ours = fn.__name__ == "__torch_dispatch__" or (fn.__module__ or "").startswith("torch._refs")
            if ours and getattr(fn, "__dynamo_disable", None) is None:
                fn.__dynamo_disable = fn
                done += 1
        return done
    except Exception:  # noqa: BLE001 - torch's internals changed: the first count imports the compiler, as before
        return 0


def preload(*, flop_counter: bool = False) -> None:
    """Import the heavy modules once in this process so that forked children start in milliseconds.

    ``flop_counter``: also what the first FLOP count on the meta device imports (torch's symbolic shapes, with
    sympy: ~0.45 s of CPU), which the judge and the worker would otherwise each import (ex4)."""
    global _PRELOADED, _FLOPS_WARM
    if not _PRELOADED:
        import hypothesis  # noqa: F401
        import numpy  # noqa: F401
        import pytest  # noqa: F401
        import torch
        import torch.utils.flop_counter  # noqa: F401 - its FlopCounterMode is one of the wrappers set below

        import grader.worker.client  # noqa: F401
        import grader.judge.plugin  # noqa: F401
        import llm_basics.attention  # noqa: F401
        import llm_basics.generation  # noqa: F401
        import llm_basics.model  # noqa: F401
        import llm_basics.tokenizer  # noqa: F401

        # A forked child can deadlock in its first matmul if the parent ever ran a multi-threaded op.
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already ran: the intra-op setting is what matters
            pass
        keep_dynamo_unloaded()
        _PRELOADED = True
    if flop_counter and not _FLOPS_WARM:
        import torch.fx.experimental.symbolic_shapes  # noqa: F401 - torch._check on a meta tensor imports it
        _FLOPS_WARM = True
    # keep the parent's objects out of the children's collections (no copy-on-write storm); no collection first:
    # it finds a few dozen objects after the imports and costs ~0.1 s of every run
    gc.freeze()


def enter_session(log_path: Path, workdir: Path, output_bytes: int) -> None:
    """Set up the judge session's process (forked, or spawned by grader.judge.entry)."""
    faulthandler.disable()  # a parent's faulthandler (pytest's) would dump our crashes onto its stderr
    os.chdir(workdir)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", closefd=False, errors="replace")  # the parent's may be a capture object
    sys.stderr = open(2, "w", closefd=False, errors="replace")
    if sys.platform != "win32" and facilities.present().rlimits:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    sys.dont_write_bytecode = True  # the judge never leaves compiled tests behind
