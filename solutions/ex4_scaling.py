"""Exercise 4: how the cost of a Transformer block grows with the sequence length T.

A Transformer block does two kinds of work:

* **per-token work** (the Q, K, V and output projections, and the feed-forward MLP): every token goes
  through the same matrices, so this cost grows like ``T`` (linear);
* **token-pair work** (attention scores ``q @ k^T`` and the weighted sum ``weights @ v``): every query meets
  every key, so this cost grows like ``T**2`` (quadratic).

For short sequences the linear part dominates; past some length the quadratic part takes over. In this
exercise you measure that in three ways: with a stopwatch (a careful timing harness), by counting (an
analytic FLOP formula, checked against PyTorch's own ``FlopCounterMode``), and by fitting a power law
``y = c * x**p`` on log-log axes (the slope ``p`` is the growth exponent).

FLOP convention (the one ``torch.utils.flop_counter.FlopCounterMode`` uses): a matmul of an ``(m, k)``
matrix with a ``(k, n)`` matrix costs ``2 * m * n * k`` FLOPs (one multiply and one add per term); only
matmuls are counted (no softmax, norms, GELU or bias adds). With batch ``B``, length ``T``, width
``d = cfg.d_model`` and MLP width ``d_ff = cfg.ffn_dim``, one block forward costs::

    projections  4 matmuls (B*T, d) @ (d, d)            4 * 2*B*T*d*d     = 8*B*T*d**2     linear in T
    attention    scores (T, hd) @ (hd, T) and           2 * 2*B*T*T*d     = 4*B*T**2*d     quadratic in T
                 weighted sum (T, T) @ (T, hd),
                 for each of the H heads (H * hd = d)
    ffn          2 matmuls (B*T, d) @ (d, d_ff) and     2 * 2*B*T*d*d_ff  = 4*B*T*d*d_ff   linear in T
                 (B*T, d_ff) @ (d_ff, d)

The causal mask does not save anything here: the full ``T x T`` score matrix is computed, then masked.

Worked example: ``d = 64``, ``d_ff = 256``, ``B = 1``, ``T = 128``::

    projections = 8 * 128 * 64**2      =  4_194_304
    attention   = 4 * 128**2 * 64      =  4_194_304
    ffn         = 4 * 128 * 64 * 256   =  8_388_608
    total                              = 16_777_216
    crossover   = 2 * 64 + 256         =        384   (attention == projections + ffn at T = 384)

Also in this file (given, nothing to write): ``save_scaling_plot`` times a real block over a range of
lengths and draws time and FLOPs against T on log-log axes, once your functions work.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from llm_basics.model import ModelConfig, TransformerBlock

__all__ = [
    "time_forward",
    "fit_power_law",
    "block_flops",
    "measured_flops",
    "crossover_length",
    "scaling_run",
    "save_scaling_plot",
]


def time_forward(
    fn: Callable[[], object],
    *,
    warmup: int = 2,
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Time ``fn()`` carefully and return ``{"median": float, "times": [float, ...], "warmup": int, "repeats": int}``.

    A single stopwatch reading is noisy: the first calls are slow (memory is allocated, caches are cold) and
    any call can be hit by another process. So:

    * call ``fn()`` ``warmup`` times first and throw those calls away (they are NOT timed at all);
    * then time ``repeats`` calls, each one on its own: ``start = clock(); fn(); stop = clock()``, and keep
      ``stop - start`` (call ``clock`` exactly twice per timed call, never during the warm-up);
    * report the MEDIAN of the timed calls (robust to one slow outlier; not the mean, not the first call).
      For an even number of times the median is the mean of the two middle values (``statistics.median``).

    Everything runs with autograd switched off (``with torch.no_grad():``), as inference would: no graph
    is recorded, so the timing is of the forward pass alone.

    ``clock`` is any function returning the current time in seconds (default ``time.perf_counter``); tests
    pass a fake one, so use ``clock()`` and nothing else to read the time.

    Raises ``ValueError`` if ``warmup < 0`` or ``repeats < 1``.

    Example (a fake clock that jumps by the "cost" of each call; the costs are 100, 50, 5, 1, 2, 9, 4)::

        >>> result = time_forward(fn, warmup=2, repeats=5, clock=fake_clock)
        >>> result["times"]            # the two warm-up calls (100, 50) are not in here
        [5.0, 1.0, 2.0, 9.0, 4.0]
        >>> result["median"], result["warmup"], result["repeats"]
        (4.0, 2, 5)
    """
    # 1. check the counts
    # BEGIN SOLUTION TODO: raise ValueError when warmup < 0 or repeats < 1
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    # END SOLUTION
    # 2. with autograd off (torch.no_grad()): call fn() `warmup` times, untimed
    # 3. still with autograd off: `repeats` times, read clock() just before and just after one fn() call
    #    and keep the difference in a list `times`
    # BEGIN SOLUTION TODO: warm up without timing, then time each of the `repeats` calls with clock()
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        for _ in range(repeats):
            start = clock()
            fn()
            times.append(float(clock() - start))
    # END SOLUTION
    # 4. the median of the timed calls, and the settings used
    # BEGIN SOLUTION TODO: return {"median": median of times, "times": times, "warmup": warmup, "repeats": repeats}
    median = statistics.median(times)
    return {"median": float(median), "times": times, "warmup": warmup, "repeats": repeats}
    # END SOLUTION


def fit_power_law(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Fit ``y = c * x**p`` by least squares on log-log axes; return ``(p, c)`` as floats.

    Taking logs turns the power law into a straight line: ``log y = p * log x + log c``. So fit a line
    ``v = p * u + b`` through the points ``(u, v) = (log x, log y)`` by ordinary least squares and return
    the slope ``p`` (the exponent) and ``c = exp(b)`` (the coefficient, back on the original scale)::

        p = sum((u - mean_u) * (v - mean_v)) / sum((u - mean_u)**2)
        b = mean_v - p * mean_u

    Raises ``ValueError`` if ``xs`` and ``ys`` differ in length, if there are fewer than 2 points, if any
    value is <= 0 (it has no logarithm), or if all x are equal (no line can be fitted).

    Example::

        >>> fit_power_law([1, 2, 4, 8], [3, 12, 48, 192])       # y = 3 * x**2
        (2.0, 3.0)                                              # (up to rounding)
    """
    # 1. check the input
    # BEGIN SOLUTION TODO: raise ValueError for unequal lengths, < 2 points, values <= 0, all x equal
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys must have the same length, got {len(xs)} and {len(ys)}")
    if len(xs) < 2:
        raise ValueError(f"need at least 2 points to fit a power law, got {len(xs)}")
    if any(x <= 0 for x in xs) or any(y <= 0 for y in ys):
        raise ValueError("every x and y must be positive (a power law is fitted on their logarithms)")
    if len(set(xs)) < 2:
        raise ValueError("need at least 2 different x values to fit a power law")
    # END SOLUTION
    # 2. go to log-log space
    # BEGIN SOLUTION TODO: u = log of each x, v = log of each y
    u = [math.log(x) for x in xs]
    v = [math.log(y) for y in ys]
    # END SOLUTION
    # 3. least-squares line v = p * u + b
    # BEGIN SOLUTION TODO: slope p and intercept b of the least-squares line through (u, v)
    mean_u = sum(u) / len(u)
    mean_v = sum(v) / len(v)
    s_uv = sum((a - mean_u) * (b - mean_v) for a, b in zip(u, v))
    s_uu = sum((a - mean_u) ** 2 for a in u)
    slope = s_uv / s_uu
    intercept = mean_v - slope * mean_u
    # END SOLUTION
    # 4. back from log space: the coefficient is exp(intercept)
    # BEGIN SOLUTION TODO: return (exponent, coefficient) = (p, exp(b)) as floats
    return float(slope), float(math.exp(intercept))
    # END SOLUTION


def block_flops(cfg: ModelConfig, seq_len: int, batch: int = 1) -> dict:
    """Analytic FLOPs of one ``TransformerBlock(cfg)`` forward on a ``(batch, seq_len, d_model)`` input.

    Count only matmuls, ``2 * m * n * k`` for an ``(m, k) @ (k, n)`` product (see the table at the top of
    this file). Use ``d = cfg.d_model`` and ``d_ff = cfg.ffn_dim`` (NOT ``cfg.d_ff``, which may be None).
    Return a dict of ints::

        "projections"  8 * B * T * d**2        Q, K, V and output projections
        "attention"    4 * B * T**2 * d        scores q @ k^T AND the weighted sum weights @ v
        "ffn"          4 * B * T * d * d_ff    fc1 and fc2
        "linear"       projections + ffn       the part that grows like T
        "quadratic"    attention               the part that grows like T**2
        "total"        linear + quadratic

    The number of heads does not matter: H heads of width d / H cost the same as one head of width d.

    Example::

        >>> block_flops(ModelConfig(d_model=64, n_heads=4), 128)
        {'projections': 4194304, 'attention': 4194304, 'ffn': 8388608,
         'linear': 12582912, 'quadratic': 4194304, 'total': 16777216}
    """
    # 1. the sizes
    # BEGIN SOLUTION TODO: B, T, d and d_ff (from cfg.ffn_dim)
    B, T = batch, seq_len
    d = cfg.d_model
    d_ff = cfg.ffn_dim
    # END SOLUTION
    # 2. per-token matmuls: 4 projections (B*T, d) @ (d, d), then fc1 (d -> d_ff) and fc2 (d_ff -> d)
    # BEGIN SOLUTION TODO: projections = 4 matmuls of 2*B*T*d*d; ffn = 2 matmuls of 2*B*T*d*d_ff
    projections = 4 * (2 * B * T * d * d)
    ffn = 2 * (2 * B * T * d * d_ff)
    # END SOLUTION
    # 3. token-pair matmuls: the scores and the weighted sum, each 2*B*T*T*d over all heads together
    # BEGIN SOLUTION TODO: attention = scores (2*B*T*T*d) + weighted sum (2*B*T*T*d)
    scores = 2 * B * T * T * d
    weighted_sum = 2 * B * T * T * d
    attention = scores + weighted_sum
    # END SOLUTION
    # 4. group into the linear and quadratic terms
    # BEGIN SOLUTION TODO: return the dict with projections, attention, ffn, linear, quadratic, total
    linear = projections + ffn
    quadratic = attention
    return {
        "projections": projections,
        "attention": attention,
        "ffn": ffn,
        "linear": linear,
        "quadratic": quadratic,
        "total": linear + quadratic,
    }
    # END SOLUTION


def measured_flops(block: torch.nn.Module, seq_len: int, batch: int = 1) -> int:
    """FLOPs of one forward of ``block`` (a ``TransformerBlock``) as counted by PyTorch; returns an int.

    Run ``block`` on a random input of shape ``(batch, seq_len, d_model)`` (``d_model =
    block.attn.d_model``) inside ``FlopCounterMode(display=False)``, then return the counter's
    ``get_total_flops()`` as an ``int``. Switch autograd off (no graph is kept; the count is the same). Make
    the input on the same device and with the same dtype as the block's parameters
    (``next(block.parameters())``): then it also works for a block on the ``"meta"`` device, which has shapes
    but no data, so even a huge block is counted in no time.

    Example::

        >>> measured_flops(TransformerBlock(ModelConfig(d_model=64, n_heads=4)), 128)
        16777216
    """
    # 1. a random input like the block's parameters
    # BEGIN SOLUTION TODO: x = torch.randn(batch, seq_len, d_model) on the parameters' device and dtype
    param = next(block.parameters())
    x = torch.randn(batch, seq_len, block.attn.d_model, device=param.device, dtype=param.dtype)  # (B, T, d)
    # END SOLUTION
    # 2. one forward under the counter (and torch.no_grad()); return its total
    # BEGIN SOLUTION TODO: run block(x) inside FlopCounterMode(display=False); return get_total_flops()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(x)
    return int(counter.get_total_flops())
    # END SOLUTION


def crossover_length(cfg: ModelConfig) -> int:
    """The sequence length T where the quadratic term equals the linear terms (for any batch size), as an int.

    Solve ``4*B*T**2*d = 8*B*T*d**2 + 4*B*T*d*d_ff`` for ``T > 0`` (divide both sides by ``4*B*T*d``).
    Shorter sequences are dominated by the per-token matmuls, longer ones by attention. Use
    ``d_ff = cfg.ffn_dim``. The answer is always a whole number: return it as an ``int`` (``384``, not
    ``384.0``).

    Example::

        >>> crossover_length(ModelConfig(d_model=64, n_heads=4))          # d_ff = 4 * 64
        384
    """
    # BEGIN SOLUTION TODO: return the T > 0 where 4*T*T*d == 8*T*d*d + 4*T*d*d_ff
    return 2 * cfg.d_model + cfg.ffn_dim
    # END SOLUTION


def scaling_run(
    cfg: ModelConfig,
    seq_lens: Sequence[int],
    *,
    batch: int = 1,
    warmup: int = 1,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict]:
    """Time one real ``TransformerBlock(cfg)`` at each length in ``seq_lens``; return one row per length.

    Build ONE block for the whole run. For each ``T`` in ``seq_lens`` (in the given order): make a random
    input ``x`` of shape ``(batch, T, cfg.d_model)``, time ``block(x)`` with your :func:`time_forward`
    (passing ``warmup``, ``repeats`` and ``clock`` on), and count it with your :func:`block_flops`. Each row::

        {"seq_len": T, "seconds": median time, "flops": total FLOPs, "attention_share": quadratic / total}

    (``seq_len`` and ``flops`` are ints, ``seconds`` and ``attention_share`` floats.)

    Example (with a fake clock that advances by 1.0 at every reading, so every timed call "takes" 1.0)::

        >>> scaling_run(ModelConfig(d_model=64, n_heads=4), [128], clock=ticking_clock)
        [{'seq_len': 128, 'seconds': 1.0, 'flops': 16777216, 'attention_share': 0.25}]
    """
    # 1. one block for the whole run
    # BEGIN SOLUTION TODO: build one TransformerBlock from cfg
    block = TransformerBlock(cfg)
    # END SOLUTION
    rows = []
    for seq_len in seq_lens:
        # 2. a random (batch, T, d) input, timed with time_forward and counted with block_flops
        # BEGIN SOLUTION TODO: time block(x) with time_forward(..., warmup=, repeats=, clock=) and count FLOPs
        x = torch.randn(batch, seq_len, cfg.d_model)  # (B, T, d)
        timing = time_forward(lambda: block(x), warmup=warmup, repeats=repeats, clock=clock)
        flops = block_flops(cfg, seq_len, batch)
        # END SOLUTION
        # 3. one row per length
        # BEGIN SOLUTION TODO: append {"seq_len", "seconds", "flops", "attention_share"} to rows
        rows.append(
            {
                "seq_len": seq_len,
                "seconds": timing["median"],
                "flops": flops["total"],
                "attention_share": flops["quadratic"] / flops["total"],
            }
        )
        # END SOLUTION
    return rows


# ----------------------------------------------------------------------------------------------------------
# Given: the plot (works once the functions above work). Run it with `make plots`.
# ----------------------------------------------------------------------------------------------------------

DEFAULT_PLOT_CONFIG = ModelConfig(d_model=64, n_heads=4)
DEFAULT_SEQ_LENS = (16, 32, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048)


def slope_note(cfg: ModelConfig, batch: int, tail: list[tuple[int, float, int]], p_tail: float) -> str:
    """Why the measured time grew faster than T^2 past the crossover, from the measured ``(T, seconds, FLOPs)``
    rows: time = FLOPs / speed (FLOPs per second), so a speed that falls as T grows adds to the FLOPs' slope."""
    p_flops, _ = fit_power_law([t for t, _, _ in tail], [f for _, _, f in tail])
    (t_a, s_a, f_a), (t_b, s_b, f_b) = tail[0], tail[-1]
    scores_mb = cfg.n_heads * batch * t_b * t_b * 4 / 2**20  # float32 attention scores of one forward
    return (f"why a slope above 2: time = FLOPs / speed. From T = {t_a} on the FLOPs grow like T^{p_flops:.2f} "
            f"(right panel), and the speed fell as T grew ({f_a / s_a / 1e9:.1f} GFLOP/s at T = {t_a}, "
            f"{f_b / s_b / 1e9:.1f} GFLOP/s at T = {t_b}): the {cfg.n_heads} heads' T x T scores "
            f"({scores_mb:.0f} MB at T = {t_b}) no longer fit in the processor's cache and come from slower "
            "main memory, and the masking and softmax over them, which FLOPs do not count, grow like T^2 too. "
            f"Together: T^{p_tail:.2f}. (On a busy machine the timings are noisier, too.)")


def save_scaling_plot(
    path: str | Path,
    cfg: ModelConfig | None = None,
    seq_lens: Sequence[int] | None = None,
    *,
    batch: int = 1,
    warmup: int = 1,
    repeats: int = 3,
) -> Path:
    """Time a real block over ``seq_lens``, and write a log-log PNG of time and FLOPs against T to ``path``.

    Left panel: the median time per forward, with the fitted power laws (over all lengths, and over the
    lengths past the crossover). Right panel: the analytic FLOPs (total, linear and quadratic terms) with
    their fitted exponents, and a marker where the quadratic term catches up with the linear ones. Also
    prints a short summary and, while it times them (the longest take seconds each), one progress line on a
    terminal, rewritten in place for each length, or a single line that says what it times when the output
    is not a terminal (a log, a pipe). Real
    timings (on one CPU thread): the numbers change from run to run and from machine to machine; the FLOP
    panel does not.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = cfg or DEFAULT_PLOT_CONFIG
    seq_lens = sorted(set(seq_lens or DEFAULT_SEQ_LENS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: steadier timings, and no fight with other processes for the cores
    rows = []
    live = sys.stdout.isatty()  # a progress line rewritten in place on a terminal; one line in a log
    if not live:
        print(f"ex4: timing one block forward at {len(seq_lens)} lengths, T = {seq_lens[0]}..{seq_lens[-1]}")
    try:
        for i, seq_len in enumerate(seq_lens, start=1):
            if live:
                print(f"\rex4: timing one block forward at T = {seq_len} ({i}/{len(seq_lens)})", end="", flush=True)
            rows += scaling_run(cfg, [seq_len], batch=batch, warmup=warmup, repeats=repeats)
        if live:
            print()
    finally:
        torch.set_num_threads(threads)
    ts = [row["seq_len"] for row in rows]
    secs = [row["seconds"] for row in rows]
    parts = [block_flops(cfg, t, batch) for t in ts]
    cross = crossover_length(cfg)

    def fitted(xs, ys):
        p, c = fit_power_law(xs, ys)
        return p, [c * x**p for x in xs]

    fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(12, 4.8))

    # left: measured time
    p_all, line_all = fitted(ts, secs)
    ax_t.loglog(ts, [s * 1e3 for s in secs], "o", color="tab:blue", label="median time per forward")
    ax_t.loglog(ts, [s * 1e3 for s in line_all], "-", color="tab:blue", alpha=0.6, label=f"fit, all T: T^{p_all:.2f}")
    summary_tail, why = "", ""
    tail = [(t, s, part["total"]) for t, s, part in zip(ts, secs, parts) if t >= cross]
    if len(tail) >= 2:
        p_tail, line_tail = fitted([t for t, _, _ in tail], [s for _, s, _ in tail])
        ax_t.loglog([t for t, _, _ in tail], [s * 1e3 for s in line_tail], "--", color="tab:red",
                    label=f"fit, T >= {cross}: T^{p_tail:.2f}")
        summary_tail = f", and like T^{p_tail:.2f} from T = {cross} on"
        if p_tail > 2:
            why = slope_note(cfg, batch, tail, p_tail)
            ax_t.text(0.98, 0.02, "slope > 2: the speed (FLOP/s) fell as T grew:\nthe T x T scores outgrow the cache",
                      transform=ax_t.transAxes, ha="right", va="bottom", fontsize=8, color="tab:red")
    ax_t.axvline(cross, color="gray", linestyle=":", label=f"FLOP crossover T = {cross}")
    ax_t.set_xlabel("sequence length T")
    ax_t.set_ylabel("milliseconds")
    ax_t.set_title("measured time (CPU, one block forward)")
    ax_t.legend(fontsize=8, loc="upper left")
    ax_t.grid(True, which="both", alpha=0.3)

    # right: analytic FLOPs, split into the linear and quadratic terms
    for key, style, color in (("total", "o-", "black"), ("linear", "s--", "tab:green"), ("quadratic", "^--", "tab:orange")):
        ys = [part[key] for part in parts]
        p, _ = fitted(ts, ys)
        ax_f.loglog(ts, ys, style, color=color, markersize=4, label=f"{key}: fit T^{p:.2f}")
    at_cross = block_flops(cfg, cross, batch)
    ax_f.axvline(cross, color="gray", linestyle=":")
    ax_f.plot([cross], [at_cross["quadratic"]], "*", color="red", markersize=14,
              label=f"crossover T = 2d + d_ff = {cross}")
    ax_f.set_xlabel("sequence length T")
    ax_f.set_ylabel("FLOPs (matmuls only)")
    ax_f.set_title(f"FLOPs: d={cfg.d_model}, d_ff={cfg.ffn_dim}, batch={batch}")
    ax_f.legend(fontsize=8, loc="upper left")
    ax_f.grid(True, which="both", alpha=0.3)

    fig.suptitle("How one Transformer block scales with the sequence length (log-log axes)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

    print(f"ex4: the quadratic attention term overtakes the linear terms at T = {cross} (= 2*d + d_ff "
          f"with d={cfg.d_model}, d_ff={cfg.ffn_dim}); beyond it attention is most of the FLOPs.")
    print(f"ex4: measured time grows like T^{p_all:.2f} over T = {ts[0]}..{ts[-1]}{summary_tail} "
          "(the masking and softmax also touch T*T numbers, but only matmuls are counted as FLOPs).")
    if why:
        print(f"ex4: {why}")
    print(f"ex4: wrote {path}")
    return path
