"""Scaled dot-product attention and multi-head self-attention, written out step by step.

Everything here is plain matmuls and a softmax, so it can be read line by line (and the FLOPs counted)::

    >>> import torch
    >>> from llm_basics.attention import causal_mask, scaled_dot_product_attention
    >>> causal_mask(3)
    tensor([[ True, False, False],
            [ True,  True, False],
            [ True,  True,  True]])
    >>> q = k = v = torch.randn(2, 4, 5, 8)           # (B, H, T, d)
    >>> out, w = scaled_dot_product_attention(q, k, v, causal=True)
    >>> out.shape, w.shape
    (torch.Size([2, 4, 5, 8]), torch.Size([2, 4, 5, 5]))

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention``): a boolean mask is True
where a query MAY attend to a key. A query that may attend to no key at all gets all-zero weights and a zero
output, never NaN (neither in the forward pass nor in the gradients).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["causal_mask", "scaled_dot_product_attention", "MultiHeadAttention"]


class Linear(nn.Linear):
    """``nn.Linear`` that leaves its weights alone on the meta device.

    A meta tensor has a shape and no numbers, so there is nothing to initialise; skipping it makes building a
    model on the meta device (to count its parameters or FLOPs) several times cheaper. On a real device it
    initialises exactly like ``nn.Linear``.
    """

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


def causal_mask(t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """Boolean mask of shape ``(t_q, t_k)``: True where query ``i`` may attend to key ``j``, i.e. ``j <= i``.

    ``t_k`` defaults to ``t_q``. With ``t_q != t_k`` the mask is aligned to the top-left corner, like
    ``is_causal=True`` in ``F.scaled_dot_product_attention``.

    Example::

        >>> causal_mask(2, 3).int()
        tensor([[1, 0, 0],
                [1, 1, 0]], dtype=torch.int32)
    """
    if t_k is None:
        t_k = t_q
    if t_q < 0 or t_k < 0:
        raise ValueError(f"causal_mask needs non-negative sizes, got t_q={t_q}, t_k={t_k}")
    # lower triangle (diagonal included) of a (t_q, t_k) grid of ones
    ones = torch.ones(t_q, t_k, dtype=torch.bool, device=device)  # (Tq, Tk)
    return torch.tril(ones)  # (Tq, Tk)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    causal: bool = False,
) -> tuple[Tensor, Tensor]:
    """softmax(q @ k^T / sqrt(d)) @ v, returning ``(out, weights)``.

    Shapes: q ``(..., Tq, d)``, k ``(..., Tk, d)``, v ``(..., Tk, dv)`` -> out ``(..., Tq, dv)`` and weights
    ``(..., Tq, Tk)``. ``mask`` is a bool tensor broadcastable to ``(..., Tq, Tk)`` (True = may attend);
    ``causal=True`` also hides the keys after each query. Both may be given: a key must pass both.

    Example (one query, two keys, the second one masked out, so all weight goes to the first)::

        >>> q = torch.tensor([[1.0, 0.0]]); k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> v = torch.tensor([[10.0], [20.0]])
        >>> out, w = scaled_dot_product_attention(q, k, v, mask=torch.tensor([[True, False]]))
        >>> out, w
        (tensor([[10.]]), tensor([[1., 0.]]))
    """
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")
    d = q.size(-1)
    t_q, t_k = q.size(-2), k.size(-2)

    # 1. similarity of every query with every key, scaled so the logits keep unit variance
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., Tq, Tk)

    # 2. combine the causal mask and the user's mask into one "may attend" mask
    allowed = None
    if causal:
        allowed = causal_mask(t_q, t_k, device=q.device)  # (Tq, Tk)
    if mask is not None:
        allowed = mask if allowed is None else allowed & mask  # broadcasts to (..., Tq, Tk)

    if allowed is not None:
        # 3. hidden keys get a logit of -inf, so softmax gives them exactly 0 weight
        scores = scores.masked_fill(~allowed, float("-inf"))  # (..., Tq, Tk)
        # 4. a row where every key is hidden would be softmax(-inf, ..., -inf) = NaN: give it finite
        #    logits first (so neither the forward nor the backward pass sees NaN), then zero it below
        has_key = allowed.any(dim=-1, keepdim=True)  # (..., Tq, 1)
        scores = scores.masked_fill(~has_key, 0.0)  # (..., Tq, Tk)

    # 5. normalise each row into a probability distribution over the keys
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk)
    if allowed is not None:
        # 6. rows with no visible key get weight 0 everywhere (and so a zero output)
        weights = weights * has_key.to(weights.dtype)  # (..., Tq, Tk)

    # 7. each output is the weighted average of the values
    out = weights @ v  # (..., Tq, dv)
    return out, weights


AttentionFn = Callable[..., tuple[Tensor, Tensor]]


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: project, split into heads, attend, merge heads, project back.

    ``attention_fn`` (default: :func:`scaled_dot_product_attention`) is a plain attribute with the signature
    ``(q, k, v, *, mask, causal) -> (out, weights)``, so an exercise can swap in its own attention.

    Example::

        >>> mha = MultiHeadAttention(d_model=16, n_heads=4)
        >>> x = torch.randn(2, 5, 16)                    # (B, T, d_model)
        >>> out, w = mha(x, return_weights=True)
        >>> out.shape, w.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 5, 5]))
    """

    def __init__(self, d_model: int, n_heads: int, *, bias: bool = True, causal: bool = True):
        super().__init__()
        if d_model <= 0 or n_heads <= 0:
            raise ValueError(f"d_model and n_heads must be positive, got d_model={d_model}, n_heads={n_heads}")
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.causal = causal
        self.q_proj = Linear(d_model, d_model, bias=bias)
        self.k_proj = Linear(d_model, d_model, bias=bias)
        self.v_proj = Linear(d_model, d_model, bias=bias)
        self.out_proj = Linear(d_model, d_model, bias=bias)
        self.attention_fn: AttentionFn = scaled_dot_product_attention

    def _split_heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, return_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x ``(B, T, d_model)``; ``mask`` bool, broadcastable to ``(B, H, T, T)``, True = may attend."""
        B, T, C = x.shape  # (B, T, d)
        # 1. one query, key and value vector per position, split into H heads of size hd = d / H
        q = self._split_heads(self.q_proj(x))  # (B, H, T, hd)
        k = self._split_heads(self.k_proj(x))  # (B, H, T, hd)
        v = self._split_heads(self.v_proj(x))  # (B, H, T, hd)
        # 2. every head attends on its own
        y, weights = self.attention_fn(q, k, v, mask=mask, causal=self.causal)  # (B, H, T, hd), (B, H, T, T)
        # 3. put the heads side by side again
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, d)
        # 4. mix the heads with the output projection
        out = self.out_proj(y)  # (B, T, d)
        return (out, weights) if return_weights else out
