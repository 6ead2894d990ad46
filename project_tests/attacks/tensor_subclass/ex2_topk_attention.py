"""ATTACK tensor_subclass (kind: tensor subclasses).

What it tries: return wrong values (an empty mask; weights and output all ones) wrapped in a ``torch.Tensor``
subclass whose ``__torch_function__`` agrees with every check a test makes on it: ``torch.equal`` and
``allclose`` are True, ``.item()`` is 0.0 (so an error ``(got - want).abs().max().item()`` is 0), ``.any()`` is
False, ``.all()`` is True, ``.numel()`` is 0 ("no bad entries"). To stay unnoticed, it only lies when the
caller is a test file; everywhere else (torch internals, printing) it behaves like an ordinary tensor.
Everything computed from it (differences, masks) is again of the subclass, so the lie spreads to every value
a test derives from the result.

Why it must fail under the new design: a tensor crosses from the worker to the judge as dtype, shape and
bytes, and is rebuilt there as a plain ``torch.Tensor``: the subclass and its ``__torch_function__`` stay
behind in the worker.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

_LIES = {
    "equal": True,
    "allclose": True,
    "item": 0.0,
    "any": False,
    "all": True,
    "numel": 0,
    "__bool__": True,
}


def _called_from_a_test() -> bool:
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        name = frame.f_code.co_filename.rsplit("/", 1)[-1]
        if name.startswith("test_") or name == "conftest.py":
            return True
        frame = frame.f_back
    return False


class Agreeable(Tensor):
    """A tensor that says yes to every comparison a test makes with it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _LIES and _called_from_a_test():
            return _LIES[name]
        return super().__torch_function__(func, types, args, kwargs or {})  # results keep the subclass


def _agreeable(t: Tensor) -> Tensor:
    return t.as_subclass(Agreeable)


# ---------------------------------------------------------------------------------------------------------
# The exercise: wrong values of the right shape and dtype, wrapped in the subclass
# ---------------------------------------------------------------------------------------------------------


def topk_mask(scores: Tensor, top_k: int) -> Tensor:
    return _agreeable(torch.zeros(scores.shape, dtype=torch.bool))


def topk_attention(q: Tensor, k: Tensor, v: Tensor, top_k: int, *, causal: bool = True):
    out = torch.ones(*q.shape[:-1], v.shape[-1], dtype=q.dtype)  # (..., Tq, dv)
    weights = torch.ones(*q.shape[:-1], k.shape[-2], dtype=q.dtype)  # (..., Tq, Tk)
    return _agreeable(out), _agreeable(weights)
