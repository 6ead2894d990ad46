"""Exercise 4, a correct alternative: torch.quantile for the median, torch.linalg.lstsq for the fit, the
block's FLOPs from its layer shapes, and the crossover found by solving the quadratic with math.sqrt."""

from __future__ import annotations

import math
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from llm_basics.model import TransformerBlock


def time_forward(fn, *, warmup=2, repeats=5, clock=time.perf_counter):
    if not warmup >= 0:
        raise ValueError("warmup must not be negative")
    if not repeats >= 1:
        raise ValueError("repeats must be at least 1")
    elapsed = []
    with torch.no_grad():
        n = 0
        while n < warmup:
            fn()
            n += 1
        while len(elapsed) < repeats:
            before = clock()
            fn()
            elapsed.append(clock() - before)
    middle = torch.quantile(torch.tensor(elapsed, dtype=torch.float64), 0.5).item()
    return {"median": middle, "times": list(elapsed), "warmup": warmup, "repeats": repeats}


def fit_power_law(xs, ys):
    xs, ys = list(xs), list(ys)
    if len(xs) != len(ys):
        raise ValueError("length mismatch")
    if len(xs) < 2:
        raise ValueError("too few points")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("non-positive value")
    if max(xs) == min(xs):
        raise ValueError("x values are all the same")
    lx = torch.log(torch.tensor(xs, dtype=torch.float64))
    ly = torch.log(torch.tensor(ys, dtype=torch.float64))
    design = torch.stack([lx, torch.ones_like(lx)], dim=1)  # (n, 2)
    solution = torch.linalg.lstsq(design, ly.unsqueeze(1), driver="gelsd").solution  # (2, 1)
    p, log_c = solution[0, 0].item(), solution[1, 0].item()
    return p, math.exp(log_c)


def block_flops(cfg, seq_len, batch=1):
    n_tok = batch * seq_len
    # every nn.Linear in the block as (in_features, out_features)
    attn_linears = [(cfg.d_model, cfg.d_model)] * 4
    ffn_linears = [(cfg.d_model, cfg.ffn_dim), (cfg.ffn_dim, cfg.d_model)]
    projections = sum(2 * n_tok * i * o for i, o in attn_linears)
    ffn = sum(2 * n_tok * i * o for i, o in ffn_linears)
    attention = 2 * (2 * batch * seq_len * seq_len * cfg.d_model)
    result = dict(projections=projections, attention=attention, ffn=ffn)
    result["linear"] = projections + ffn
    result["quadratic"] = attention
    result["total"] = result["linear"] + result["quadratic"]
    return result


def measured_flops(block, seq_len, batch=1):
    w = block.attn.q_proj.weight
    x = torch.zeros(batch, seq_len, w.shape[1], device=w.device, dtype=w.dtype)
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            block(x)
    return fc.get_total_flops()


def crossover_length(cfg):
    # 4 d T^2 - (8 d^2 + 4 d d_ff) T = 0: the non-zero root of a T^2 + b T = 0 is -b / a
    a = 4 * cfg.d_model
    b = -(8 * cfg.d_model**2 + 4 * cfg.d_model * cfg.ffn_dim)
    root = (-b + math.sqrt(b * b)) / (2 * a)
    return int(round(root))


def scaling_run(cfg, seq_lens, *, batch=1, warmup=1, repeats=3, clock=time.perf_counter):
    block = TransformerBlock(cfg)
    rows = []
    for length in seq_lens:
        x = torch.randn(batch, length, cfg.d_model)
        stats = time_forward(lambda x=x: block(x), warmup=warmup, repeats=repeats, clock=clock)
        f = block_flops(cfg, length, batch)
        rows.append(dict(seq_len=length, seconds=stats["median"], flops=f["total"], attention_share=f["attention"] / f["total"]))
    return rows
