"""Exercise 4 (hidden tests): the corners of the timing harness, noisy fits, batch, per-part FLOPs, meta blocks.

As in the visible suite, no real clock is read: fake clocks script the time, and FLOPs come from
PyTorch's own FlopCounterMode.
"""

import functools
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llm_basics.model import ModelConfig, TransformerBlock

from grader.judge.compare import number, numbers

MODULE = "ex4_scaling"


class EventClock:
    """A fake clock that logs every reading and every call of ``fn``; ``fn`` moves time on by its cost."""

    def __init__(self, costs):
        self.costs = list(costs)
        self.now = 0.0
        self.calls = 0
        self.log = []

    def __call__(self):
        self.log.append("clock")
        return self.now

    def fn(self):
        if self.calls >= len(self.costs):
            pytest.fail(f"fn() was called more than warmup + repeats = {len(self.costs)} times")
        self.log.append("fn")
        self.now += self.costs[self.calls]
        self.calls += 1


class TickClock:
    """A fake clock that moves on by 1.0 at every reading."""

    def __init__(self):
        self.readings = 0

    def __call__(self):
        self.readings += 1
        return float(self.readings)


@functools.lru_cache(maxsize=None)  # the count depends only on its arguments: once per session
def module_flops(cfg, seq_len, batch=1):
    """FlopCounterMode's count of one block forward, split by submodule: projections, attention, ffn."""
    # the count depends only on shapes; a small block computes faster on the CPU than through meta's shape functions
    device = "cpu" if batch * seq_len * max(seq_len, cfg.d_model) <= 2**18 else "meta"
    with torch.random.fork_rng(devices=[]), torch.device(device):  # the test's random state is left as it was
        block = TransformerBlock(cfg)
        x = torch.randn(batch, seq_len, cfg.d_model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(x)
    counts = counter.get_flop_counts()
    attn = counts["TransformerBlock.attn"]
    attention = sum(n for op, n in attn.items() if "bmm" in str(op))
    return {
        "projections": sum(attn.values()) - attention,
        "attention": attention,
        "ffn": sum(counts["TransformerBlock.ffn"].values()),
        "total": counter.get_total_flops(),
    }


@pytest.mark.points(1)
@pytest.mark.parametrize(
    "costs, warmup, repeats, want",
    [([7.0, 3.0, 1.0, 8.0, 6.0], 1, 4, 4.5), ([2.0, 9.0, 4.0], 0, 3, 4.0), ([3.0, 7.0], 1, 1, 7.0)],
    ids=["even-repeats", "no-warmup", "one-repeat"],
)
def test_time_forward_median_corner_cases(student, costs, warmup, repeats, want):
    """time_forward: an even count's median is the mean of the two middle times; warmup=0 and repeats=1 work."""
    ex = student(MODULE)
    clock = EventClock(costs)
    result = ex.time_forward(clock.fn, warmup=warmup, repeats=repeats, clock=clock)
    timed = costs[warmup:]
    assert clock.calls == warmup + repeats, f"expected {warmup + repeats} calls of fn(), got {clock.calls}"
    number(result.get("median"), want, f"median of the timed calls {timed}:")


@pytest.mark.points(1)
def test_time_forward_reads_clock_around_each_call(student):
    """time_forward reads clock() just before and just after each timed call, and never during warm-up."""
    ex = student(MODULE)
    clock = EventClock([1.0] * 5)
    ex.time_forward(clock.fn, warmup=2, repeats=3, clock=clock)
    want = ["fn", "fn"] + ["clock", "fn", "clock"] * 3
    assert clock.log == want, f"expected the calls {want}, got {clock.log}"


@pytest.mark.points(1.5)
def test_fit_power_law_noisy_data(student):
    """fit_power_law on noisy data gives the least-squares line of log y against log x."""
    ex = student(MODULE)
    xs = [16, 32, 64, 128, 256, 512, 1024, 2048]
    noise = [0.05, -0.08, 0.02, 0.1, -0.04, -0.06, 0.07, -0.03]
    ys = [0.5 * x**1.7 * math.exp(e) for x, e in zip(xs, noise)]
    slope, intercept = np.polyfit(np.log(xs), np.log(ys), 1)
    got = ex.fit_power_law(xs, ys)
    numbers(got, (float(slope), math.exp(intercept)), "(exponent, coefficient) of the log-log least-squares fit",
            rel=1e-9)
    xs, ys = [4, 4, 16, 64, 64], [9.0, 11.0, 70.0, 500.0, 420.0]  # a repeated x: two measurements of one length
    slope, intercept = np.polyfit(np.log(xs), np.log(ys), 1)
    got = ex.fit_power_law(xs, ys)
    numbers(got, (float(slope), math.exp(intercept)), f"(exponent, coefficient) of the fit of xs={xs}, ys={ys}",
            rel=1e-9)


@pytest.mark.points(0.5)
def test_fit_power_law_rejects_equal_x(student):
    """fit_power_law raises ValueError when all x are equal (no line can be fitted)."""
    ex = student(MODULE)
    with pytest.raises(ValueError):
        ex.fit_power_law([3.0, 3.0, 3.0], [1.0, 2.0, 4.0])
        pytest.fail("expected ValueError for xs=[3, 3, 3], got no error")


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [2, 5], ids=["batch=2", "batch=5"])
def test_block_flops_counts_batch(student, batch):
    """block_flops scales every part with the batch size (the FLOP counter sees batch * T tokens)."""
    ex = student(MODULE)
    cfg = ModelConfig(d_model=32, n_heads=2)
    got = ex.block_flops(cfg, 40, batch)  # the student's answer first: a stub fails fast
    want = module_flops(cfg, 40, batch)
    wrong = {key: got.get(key) for key in want if got.get(key) != want[key]}
    assert not wrong, f"expected {want} for batch={batch}, got wrong parts {wrong}"


@pytest.mark.points(1)
@pytest.mark.parametrize(
    "cfg, seq_len",
    [
        (ModelConfig(d_model=24, n_heads=3), 31),
        (ModelConfig(d_model=32, n_heads=4, d_ff=80, bias=False), 64),
        (ModelConfig(d_model=128, n_heads=8, d_ff=100, norm="rmsnorm"), 300),
    ],
    ids=["d24-T31", "d32-ff80-nobias", "d128-ff100-T300"],
)
def test_block_flops_parts_match_modules(student, cfg, seq_len):
    """block_flops' projections, attention, ffn, linear and quadratic match the per-module FLOP counts."""
    ex = student(MODULE)
    got = ex.block_flops(cfg, seq_len)
    want = dict(module_flops(cfg, seq_len))  # a copy: the cached count is shared
    want["linear"] = want["projections"] + want["ffn"]
    want["quadratic"] = want["attention"]
    wrong = {key: got.get(key) for key in want if got.get(key) != want[key]}
    assert not wrong, f"expected {want} (d={cfg.d_model}, d_ff={cfg.ffn_dim}, T={seq_len}), got wrong parts {wrong}"


@pytest.mark.points(1)
@pytest.mark.parametrize("batch", [1, 3], ids=["batch=1", "batch=3"])
def test_measured_flops_meta_block_and_batch(student, batch):
    """measured_flops works on a block on the meta device and counts the whole batch."""
    ex = student(MODULE)
    cfg = ModelConfig(d_model=256, n_heads=8)
    with torch.device("meta"):
        block = TransformerBlock(cfg)
    got = ex.measured_flops(block, 1024, batch)
    want = module_flops(cfg, 1024, batch)["total"]
    assert got == want, f"expected {want} FLOPs for d=256, T=1024, batch={batch} (a meta block), got {got}"


@pytest.mark.points(1)
@pytest.mark.parametrize(
    "cfg",
    [ModelConfig(d_model=64, n_heads=4), ModelConfig(d_model=40, n_heads=5, d_ff=30), ModelConfig(d_model=8, n_heads=1)],
    ids=["d64", "d40-ff30", "d8"],
)
def test_crossover_length_splits_the_regimes(student, cfg):
    """crossover_length: below it the linear terms dominate, above it the quadratic term does."""
    ex = student(MODULE)
    t = ex.crossover_length(cfg)
    want = 2 * cfg.d_model + cfg.ffn_dim
    below, above = module_flops(cfg, want - 1), module_flops(cfg, want + 1)
    assert below["attention"] < below["projections"] + below["ffn"], "oracle check failed"
    assert above["attention"] > above["projections"] + above["ffn"], "oracle check failed"
    assert t == want, (
        f"expected crossover T = {want} for d={cfg.d_model}, d_ff={cfg.ffn_dim} (attention < linear at T={want - 1}, "
        f"> at T={want + 1}), got {t}"
    )


@pytest.mark.points(1)
def test_scaling_run_passes_settings(student):
    """scaling_run keeps the order of seq_lens and passes warmup, repeats and clock on to time_forward."""
    ex = student(MODULE)
    clock = TickClock()
    cfg = ModelConfig(d_model=16, n_heads=4, d_ff=24)
    rows = ex.scaling_run(cfg, [8, 3, 5], batch=2, warmup=0, repeats=2, clock=clock)
    assert [row.get("seq_len") for row in rows] == [8, 3, 5], f"expected seq_len 8, 3, 5 in that order, got {rows}"
    assert clock.readings == 3 * 2 * 2, (
        f"expected 12 clock readings (3 lengths x repeats=2 x 2 readings), got {clock.readings}"
    )
    flops = [row.get("flops") for row in rows]
    want = [module_flops(cfg, t, 2)["total"] for t in (8, 3, 5)]
    assert flops == want, f"expected flops {want} for batch=2, got {flops}"
    try:
        ex.scaling_run(cfg, [4], warmup=-1, clock=TickClock())
    except ValueError:
        return
    pytest.fail("expected the ValueError of time_forward for warmup=-1 (scaling_run passes warmup on), got none")


@pytest.mark.points(0.5)
def test_measured_flops_runs_without_grad(student):
    """measured_flops runs the block with autograd switched off (torch.no_grad()), and counts one forward."""
    ex = student(MODULE)
    cfg = ModelConfig(d_model=16, n_heads=4)
    seen = ex.measured_flops.observe(TransformerBlock(cfg), 5)
    want = module_flops(cfg, 5)["total"]
    assert seen.value == want, f"expected {want} FLOPs for d=16, T=5, got {seen.value}"
    assert seen.grad == [False], (
        f"expected the block to run once or more, always under torch.no_grad(); its forwards ran with grad modes"
        f" {seen.grad} (True: autograd was on)"
    )


@pytest.mark.points(0.5)
def test_scaling_run_builds_one_block(student):
    """scaling_run builds ONE TransformerBlock for the whole run, not one per length."""
    ex = student(MODULE)
    cfg = ModelConfig(d_model=16, n_heads=2)
    seen = ex.scaling_run.observe(cfg, [4, 6, 3], warmup=0, repeats=1, clock=TickClock())
    rows = seen.value if type(seen.value) is list else []
    got = [(row.get("seq_len"), row.get("flops")) for row in rows if type(row) is dict]
    want = [(t, module_flops(cfg, t)["total"]) for t in (4, 6, 3)]
    assert got == want, f"expected (seq_len, flops) rows {want}, got {seen.value}"
    built = seen.built.get("TransformerBlock", 0)
    assert built == 1, f"expected one TransformerBlock for the 3 lengths, got {built} built during the run"
