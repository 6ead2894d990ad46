"""ex2 alternative: one query at a time, ranking the visible keys with Python's sorted on (-score, index)."""

import math

import torch


def topk_mask(scores, top_k):
    flat = scores.reshape(-1, scores.size(-1))  # (rows, n)
    keep = torch.zeros(flat.shape, dtype=torch.bool)
    for r, row in enumerate(flat.tolist()):
        finite = [j for j, s in enumerate(row) if s != float("-inf")]
        for j in sorted(finite, key=lambda j: (-row[j], j))[:top_k]:
            keep[r, j] = True
    return keep.reshape(scores.shape)


def topk_attention(q, k, v, top_k, *, causal=True):
    if type(top_k) is not int or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    if causal and q.size(-2) != k.size(-2):
        raise ValueError("causal attention needs as many queries as keys")
    lead = q.shape[:-2]
    qf = q.reshape(-1, q.size(-2), q.size(-1))
    kf = k.reshape(-1, k.size(-2), k.size(-1))
    vf = v.reshape(-1, v.size(-2), v.size(-1))
    t_q, t_k = qf.size(1), kf.size(1)
    out_rows, weight_rows = [], []
    for n in range(qf.size(0)):
        for i in range(t_q):
            seen = i + 1 if causal else t_k
            s = (kf[n, :seen] @ qf[n, i]) / math.sqrt(q.size(-1))  # (seen,)
            ranked = sorted(range(seen), key=lambda j, row=s.tolist(): (-row[j], j))[:top_k]
            idx = torch.tensor(ranked, dtype=torch.long)
            p = torch.softmax(s[idx], dim=0)  # (kept,)
            w = torch.zeros(t_k, dtype=q.dtype).index_put((idx,), p)  # (Tk,)
            weight_rows.append(w)
            out_rows.append(w @ vf[n])
    weights = torch.stack(weight_rows).reshape(*lead, t_q, t_k)
    out = torch.stack(out_rows).reshape(*lead, t_q, v.size(-1))
    return out, weights
