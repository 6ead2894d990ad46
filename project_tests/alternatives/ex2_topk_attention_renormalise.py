"""ex2 alternative: softmax over the visible keys FIRST, then zero the dropped ones and renormalise.

softmax restricted to a set S equals the full softmax zeroed outside S and divided by its sum over S, so this
is the same function (only the rounding differs). Selection uses argsort on (score, -index) via a stable sort.
"""

import math

import torch


def topk_mask(scores, top_k):
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(scores.size(-1)).expand_as(order).contiguous())
    return (rank < top_k) & (scores != float("-inf"))


def topk_attention(q, k, v, top_k, *, causal=True):
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"bad top_k {top_k!r}")
    if causal and q.size(-2) != k.size(-2):
        raise ValueError("Tq != Tk")
    scores = q @ k.mT / math.sqrt(q.size(-1))
    if causal:
        future = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    keep = topk_mask(scores, top_k)
    p = torch.softmax(scores, dim=-1) * keep
    weights = p / p.sum(-1, keepdim=True)
    return weights @ v, weights
