"""ex2 alternative: no sort at all -- the rank of a score is how many scores beat it (ties: lower index beats)."""

import math

import torch


def topk_mask(scores, top_k):
    n = scores.size(-1)
    a = scores.unsqueeze(-1)  # (..., n, 1): the entry being ranked
    b = scores.unsqueeze(-2)  # (..., 1, n): its rivals
    lower = torch.arange(n).unsqueeze(-1) > torch.arange(n)  # rival index < own index
    beats = (b > a) | ((b == a) & lower)  # (..., n, n)
    rank = beats.sum(-1)  # (..., n)
    return (rank < top_k) & torch.isfinite(scores)


def topk_attention(q, k, v, top_k, *, causal=True):
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError("top_k must be an int >= 1")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError("causal needs Tq == Tk")
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        t = q.shape[-2]
        scores = torch.where(torch.arange(t)[None, :] <= torch.arange(t)[:, None], scores, float("-inf"))
    scores = torch.where(topk_mask(scores, top_k), scores, float("-inf"))
    weights = scores.softmax(-1)
    return torch.matmul(weights, v), weights
