"""Strict comparisons for the graded suites: one set of helpers, so that every suite checks the same way.

A result is checked for what it is before its values are: a tensor's type, dtype, shape and device exactly (no
broadcasting: ``torch.allclose`` finds an empty tensor of shape (0, 1, 1) close to anything, and ``.all()`` of an
empty tensor is True), a number's type (``numpy.empty(0) == pytest.approx(x)`` is True), a sequence's type and
length. Each helper raises AssertionError with a one-line "expected ..., got ..." message (the reason a student
sees), naming ``what`` was checked. The suites import them (``from grader.judge.compare import ...``); they run in
the judge, on the plain values the worker sent back.
"""

from __future__ import annotations

import math
from numbers import Real

import pytest

EMPTY_DIFFERS = "an empty result never equals a non-empty expectation"


def _describe(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:200]


def tensor_like(got, expected, what: str = "the result") -> None:
    """``got`` is a plain tensor of ``expected``'s dtype, shape and device (its values are not looked at)."""
    import torch

    assert type(got) is torch.Tensor, f"expected {what} to be a torch.Tensor, got {_describe(got)}"
    assert got.dtype == expected.dtype, f"expected {what} of dtype {expected.dtype}, got {got.dtype}"
    assert tuple(got.shape) == tuple(expected.shape), (
        f"expected {what} of shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        + (f" ({EMPTY_DIFFERS})" if got.numel() == 0 and expected.numel() else "")
    )
    assert got.device == expected.device, f"expected {what} on {expected.device}, got {got.device}"


def same_tensor(got, expected, what: str = "the result", *, atol: float = 0.0, rtol: float = 0.0,
                show=None) -> None:
    """``tensor_like``, then every value within ``atol + rtol * |expected|`` (exactly equal when both are 0; NaN
    never equals anything). ``show(tensor)``: how to print a tensor in the message (default: its max error)."""
    import torch

    tensor_like(got, expected, what)
    if atol == 0.0 and rtol == 0.0:
        ok = torch.equal(got, expected)
    else:
        ok = bool(torch.isclose(got, expected, atol=atol, rtol=rtol).all())
    if ok:
        return
    if show is not None:
        raise AssertionError(f"expected {what} {show(expected)}, got {show(got)}")
    if got.dtype == torch.bool or not got.is_floating_point():
        raise AssertionError(f"expected {what} {expected.tolist()}, got {got.tolist()}"[:600])
    err = (got.double() - expected.double()).abs().nan_to_num(nan=math.inf).max().item()
    raise AssertionError(f"expected {what} within {atol:g} + {rtol:g}·|expected| of the oracle, max error {err:.3g}")


def number(got, expected: float, what: str = "the result", *, rel: float | None = None,
           abs: float | None = None) -> None:
    """``got`` is a real number (an int or a float, never a bool, an array or a tensor) equal to ``expected`` as
    ``pytest.approx(expected, rel=rel, abs=abs)`` says."""
    assert isinstance(got, Real) and not isinstance(got, bool), (
        f"expected {what} to be a number (int or float), got {_describe(got)}"
    )
    assert got == pytest.approx(expected, rel=rel, abs=abs), f"expected {what} {expected!r}, got {got!r}"


def numbers(got, expected, what: str = "the result", *, rel: float | None = None, abs: float | None = None) -> None:
    """``got`` is a sequence of ``expected``'s type (list or tuple) and length, of numbers each equal to the
    expected one as ``pytest.approx`` says."""
    kind = type(expected)
    assert type(got) is kind, (
        f"expected {what} to be a {kind.__name__} of {len(expected)} numbers, got {_describe(got)}"
    )
    assert len(got) == len(expected), (
        f"expected {what} to hold {len(expected)} numbers, got {len(got)}: {got!r}"[:400]
        + (f" ({EMPTY_DIFFERS})" if not got and expected else "")
    )
    for i, (a, b) in enumerate(zip(got, expected)):
        number(a, b, f"{what}[{i}] (of {list(expected)!r})", rel=rel, abs=abs)


def token_ids(ids, vocab_size: int, what: str = "the ids") -> None:
    """``ids`` is a list of ints, each a token id in ``0..vocab_size-1``."""
    assert type(ids) is list, f"expected {what} to be a list of ints, got {_describe(ids)}"
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab_size]
    assert not bad, f"expected {what} to be ints in 0..{vocab_size - 1} (the vocabulary), got {bad[:5]!r}"
