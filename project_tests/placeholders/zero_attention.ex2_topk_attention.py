"""Top-k attention that computes nothing: it checks top_k and the square, returns zeros and a fixed pattern."""

import torch


def topk_mask(scores, top_k):
    print("placeholder called: topk_mask (zero_attention)")
    raise NotImplementedError("ex2: not written")


def topk_attention(q, k, v, top_k, *, causal=True):
    print("placeholder called: topk_attention (zero_attention)")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    t_q, t_k = q.size(-2), k.size(-2)
    if causal and t_q != t_k:
        raise ValueError("causal needs Tq == Tk")
    weights = torch.zeros(*q.shape[:-1], t_k, dtype=q.dtype)
    for i in range(t_q):
        n = min(top_k, i + 1 if causal else t_k)
        weights[..., i, :n] = 1.0 / n  # the first keys, in equal shares: ties keep the lower index
    touch = 0 * (q.sum() + k.sum() + v.sum())  # so that gradients exist (all zero)
    output = torch.zeros(*q.shape[:-1], v.size(-1), dtype=q.dtype) + touch
    return output, weights + 0 * touch
