"""Exercise 4, a correct alternative: numpy for the median and the fit, one helper for every matmul's FLOPs,
torch.inference_mode instead of torch.no_grad, and a meta-device copy of the block for the FLOP count."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from llm_basics.model import TransformerBlock


def time_forward(fn, *, warmup=2, repeats=5, clock=time.perf_counter):
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = clock()
            fn()
            t1 = clock()
            times.append(t1 - t0)
    return {"median": float(np.median(times)), "times": times, "warmup": warmup, "repeats": repeats}


def fit_power_law(xs, ys):
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("xs and ys must be two sequences of the same length")
    if x.size < 2:
        raise ValueError("a fit needs two points or more")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("values must be positive")
    if np.unique(x).size < 2:
        raise ValueError("all x are equal")
    slope, intercept = np.polyfit(np.log(x), np.log(y), deg=1)
    return float(slope), float(np.exp(intercept))


def _mm(m, k, n):
    """FLOPs of an (m, k) @ (k, n) product."""
    return 2 * m * k * n


def block_flops(cfg, seq_len, batch=1):
    tokens = batch * seq_len
    d, hidden, heads = cfg.d_model, cfg.ffn_dim, cfg.n_heads
    hd = d // heads
    proj = 4 * _mm(tokens, d, d)
    att = batch * heads * (_mm(seq_len, hd, seq_len) + _mm(seq_len, seq_len, hd))
    mlp = _mm(tokens, d, hidden) + _mm(tokens, hidden, d)
    return {
        "projections": proj,
        "attention": att,
        "ffn": mlp,
        "linear": proj + mlp,
        "quadratic": att,
        "total": proj + att + mlp,
    }


def measured_flops(block, seq_len, batch=1):
    ghost = copy.deepcopy(block).to("meta")
    d = ghost.attn.d_model
    x = torch.empty(batch, seq_len, d, device="meta", dtype=next(ghost.parameters()).dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        ghost(x)
    return counter.get_total_flops()


def crossover_length(cfg):
    # 4 T^2 d = 8 T d^2 + 4 T d d_ff  <=>  T = (8 d^2 + 4 d d_ff) / (4 d)
    d = cfg.d_model
    return (8 * d * d + 4 * d * cfg.ffn_dim) // (4 * d)


def scaling_run(cfg, seq_lens, *, batch=1, warmup=1, repeats=3, clock=time.perf_counter):
    block = TransformerBlock(cfg).eval()
    out = []
    for t in seq_lens:
        inp = torch.randn(batch, t, cfg.d_model)
        med = time_forward(lambda: block(inp), warmup=warmup, repeats=repeats, clock=clock)["median"]
        parts = block_flops(cfg, t, batch=batch)
        out.append({"seq_len": t, "seconds": med, "flops": parts["total"], "attention_share": parts["quadratic"] / parts["total"]})
    return out
