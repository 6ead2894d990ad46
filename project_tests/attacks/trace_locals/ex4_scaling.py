"""ATTACK trace_locals (kind: tracer tricks).

What it tries: at import time, install a ``sys.settrace`` tracer (and set ``f_trace`` on the frames already
running, so the test that is importing this file is traced too). Before each line of a test function runs,
the tracer rewrites the test's locals: ``got`` becomes ``want`` / ``expected``, and error measures (``err``,
``changed``...) become 0. So ``assert got == want`` compares the oracle with itself. CPython writes a
tracer's changes to ``frame.f_locals`` back into the running frame.

Why it must fail under the new design: the tracer is installed in the worker, where no test frame ever runs;
the judge's frames are in another process, out of reach of ``sys.settrace`` and ``sys._getframe``.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Sequence

import torch

from llm_basics.model import ModelConfig

_COPY = (("got", "want"), ("got", "expected"), ("flops", "want"), ("share", "want_share"))
_ZERO = ("err", "err_w", "changed", "error")


def _is_test_frame(frame) -> bool:
    name = frame.f_code.co_filename.rsplit("/", 1)[-1]
    return name.startswith("test_ex")


def _rewrite(frame, event, arg):
    if event == "line":
        local = frame.f_locals  # a snapshot (a write-through proxy on 3.13+), written back after the tracer
        for target, source in _COPY:
            if target in local and source in local:
                local[target] = local[source]
        for name in _ZERO:
            if name in local:
                local[name] = 0
    return _rewrite


def _global_tracer(frame, event, arg):
    return _rewrite if _is_test_frame(frame) else None


def _install() -> None:
    sys.settrace(_global_tracer)
    frame = sys._getframe(1)
    while frame is not None:  # the test that imports this file is already running: trace it from now on
        if _is_test_frame(frame):
            frame.f_trace = _rewrite
            frame.f_trace_lines = True
        frame = frame.f_back


try:
    _install()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The exercise: placeholders that let a test reach its comparison (the tracer does the rest)
# ---------------------------------------------------------------------------------------------------------


def time_forward(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 5,
                 clock: Callable[[], float] = time.perf_counter) -> dict:
    return {"median": 0.0, "times": [], "warmup": warmup, "repeats": repeats}


def fit_power_law(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    return 0.0, 0.0


def block_flops(cfg: ModelConfig, seq_len: int, batch: int = 1) -> dict:
    return {"projections": 0, "attention": 0, "ffn": 0, "linear": 0, "quadratic": 0, "total": 0}


def measured_flops(block: torch.nn.Module, seq_len: int, batch: int = 1) -> int:
    return 0


def crossover_length(cfg: ModelConfig) -> int:
    return 1


def scaling_run(cfg: ModelConfig, seq_lens: Sequence[int], *, batch: int = 1, warmup: int = 1, repeats: int = 3,
                clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    return [{"seq_len": t, "seconds": 0.0, "flops": 0, "attention_share": 0.0} for t in seq_lens]


def save_scaling_plot(path, cfg=None, seq_lens=None, *, batch=1, warmup=2, repeats=5):
    raise NotImplementedError("ex4: the plot needs the functions above")
