"""ATTACK cmp_patch (kind: patching comparisons).

What it tries: at import time, make the comparisons that tests rely on always agree: ``torch.equal``,
``torch.allclose``, ``torch.isclose`` (and the ``Tensor`` methods of the same names) return True, and
``pytest.approx`` objects compare equal to anything. The functions below then only need to return tensors of
the right shape and dtype (with wrong values) for a test that compares with one of these to pass.

Why it must fail under the new design: the patches live in the worker's copy of torch and pytest; the judge
compares the returned tensors, rebuilt from bytes, with its own untouched torch.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor


def _always_true(*args, **kwargs):
    return True


def _patch_comparisons() -> None:
    torch.equal = _always_true
    torch.allclose = _always_true
    torch.isclose = lambda a, b, *args, **kwargs: torch.ones(torch.broadcast_shapes(a.shape, b.shape), dtype=torch.bool)
    torch.Tensor.equal = _always_true
    torch.Tensor.allclose = _always_true
    for name in ("_pytest.python_api", "_pytest.approx", "pytest"):
        module = sys.modules.get(name)
        for cls_name in ("ApproxBase", "ApproxScalar", "ApproxSequenceLike", "ApproxMapping", "ApproxNumpy"):
            cls = getattr(module, cls_name, None)
            if isinstance(cls, type):
                cls.__eq__ = lambda self, other: True
                cls.__ne__ = lambda self, other: False


try:
    _patch_comparisons()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The exercise: wrong answers of the right shape and dtype (an empty mask; weights and output all ones, which
# no honest check accepts)
# ---------------------------------------------------------------------------------------------------------


def topk_mask(scores: Tensor, top_k: int) -> Tensor:
    return torch.zeros(scores.shape, dtype=torch.bool)


def topk_attention(q: Tensor, k: Tensor, v: Tensor, top_k: int, *, causal: bool = True):
    out = torch.ones(*q.shape[:-1], v.shape[-1], dtype=q.dtype)  # (..., Tq, dv)
    weights = torch.ones(*q.shape[:-1], k.shape[-2], dtype=q.dtype)  # (..., Tq, Tk)
    return out, weights
