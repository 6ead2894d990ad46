"""ATTACK always_equal (kind: always-equal values).

What it tries: return values whose ``==`` is always True and ``!=`` always False: an ``int`` subclass and a
``float`` subclass (so ``isinstance(x, (int, float))`` holds), closed under arithmetic so that sums and
differences of them stay "equal to everything". ``got == expected``, ``got == pytest.approx(x)`` (Python asks
the left operand first) and ``[a, b] == [4, 12]`` (element-wise ``==``) all pass.

Why it must fail under the new design: only plain data crosses from the worker to the judge: an int
subclass arrives as the plain int it wraps, so the judge compares real numbers.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch

from llm_basics.model import ModelConfig


def _agree(cls):
    """Give ``cls`` (a subclass of int or float) an ``==`` that always agrees and arithmetic that keeps the
    class, so that sum(...) and a - b of such values still agree with everything."""
    base = cls.__mro__[1]

    def wrap(name):
        op = getattr(base, name)
        return lambda self, *args: _lift(op(self, *args))

    for name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                 "__rtruediv__", "__floordiv__", "__pow__", "__neg__", "__abs__"):
        setattr(cls, name, wrap(name))
    cls.__eq__ = lambda self, other: True
    cls.__ne__ = lambda self, other: False
    cls.__hash__ = base.__hash__
    return cls


@_agree
class AgreeInt(int):
    pass


@_agree
class AgreeFloat(float):
    pass


def _lift(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float):
        return AgreeFloat(value)
    return AgreeInt(value)


class AgreeDict(dict):
    """A dict that equals every other mapping, and whose missing keys are agreeable zeros."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = None

    def get(self, key, default=None):
        return dict.get(self, key, AgreeInt(0))

    def __missing__(self, key):
        return AgreeInt(0)


# ---------------------------------------------------------------------------------------------------------
# The exercise: agreeable zeros everywhere
# ---------------------------------------------------------------------------------------------------------


def time_forward(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 5,
                 clock: Callable[[], float] = time.perf_counter) -> dict:
    return AgreeDict(median=AgreeFloat(0.0), times=[], warmup=AgreeInt(0), repeats=AgreeInt(0))


def fit_power_law(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    return AgreeFloat(0.0), AgreeFloat(0.0)


def block_flops(cfg: ModelConfig, seq_len: int, batch: int = 1) -> dict:
    keys = ("projections", "attention", "ffn", "linear", "quadratic", "total")
    return AgreeDict({key: AgreeInt(0) for key in keys})


def measured_flops(block: torch.nn.Module, seq_len: int, batch: int = 1) -> int:
    return AgreeInt(0)


def crossover_length(cfg: ModelConfig) -> int:
    return AgreeInt(1)


def scaling_run(cfg: ModelConfig, seq_lens: Sequence[int], *, batch: int = 1, warmup: int = 1, repeats: int = 3,
                clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    return [AgreeDict(seq_len=AgreeInt(0), seconds=AgreeFloat(0.0), flops=AgreeInt(0),
                      attention_share=AgreeFloat(0.0)) for _ in seq_lens]


def save_scaling_plot(path, cfg=None, seq_lens=None, *, batch=1, warmup=2, repeats=5):
    raise NotImplementedError("ex4: the plot needs the functions above")


_ = math  # the stub imports it
