"""Exercise 4 (visible tests): timing harness, power-law fit, FLOP counts, crossover, scaling run.

No test here reads a real clock: the timing harness is driven by a fake clock whose time moves only when
the timed function runs, by a scripted "cost" per call. FLOPs are compared with PyTorch's own counter.
"""


import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from llm_basics.model import ModelConfig, TransformerBlock

from grader.judge.compare import numbers

MODULE = "ex4_scaling"


class CostClock:
    """A fake clock: reading it costs nothing; calling ``fn`` moves time on by that call's scripted cost."""

    def __init__(self, costs):
        self.costs = list(costs)
        self.now = 0.0
        self.calls = 0
        self.readings = 0
        self.grad_enabled = []

    def __call__(self):
        self.readings += 1
        return self.now

    def fn(self):
        if self.calls >= len(self.costs):
            pytest.fail(f"fn() was called more than warmup + repeats = {len(self.costs)} times")
        self.grad_enabled.append(torch.is_grad_enabled())
        self.now += self.costs[self.calls]
        self.calls += 1


class TickClock:
    """A fake clock that moves on by 1.0 at every reading, so every timed call 'takes' exactly 1.0."""

    def __init__(self):
        self.readings = 0

    def __call__(self):
        self.readings += 1
        return float(self.readings)


@functools.lru_cache(maxsize=None)  # the count depends only on its arguments: once per session
def counted_flops(cfg, seq_len, batch=1):
    """FlopCounterMode's count of one TransformerBlock forward, split into bmm (attention) and the rest."""
    # the count depends only on shapes; a small block computes faster on the CPU than through meta's shape functions
    device = "cpu" if batch * seq_len * max(seq_len, cfg.d_model) <= 2**18 else "meta"
    with torch.random.fork_rng(devices=[]), torch.device(device):  # the test's random state is left as it was
        block = TransformerBlock(cfg)
        x = torch.randn(batch, seq_len, cfg.d_model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(x)
    glob = counter.get_flop_counts()["Global"]
    bmm = sum(n for op, n in glob.items() if "bmm" in str(op))
    return {"total": counter.get_total_flops(), "bmm": bmm, "other": counter.get_total_flops() - bmm}


# the scripted costs: 2 warm-up calls (100, 50), then 5 timed calls (5, 1, 2, 9, 4)
COSTS = [100.0, 50.0, 5.0, 1.0, 2.0, 9.0, 4.0]


@pytest.mark.points(2)
def test_time_forward_returns_median(student):
    """time_forward returns the MEDIAN of the timed calls (not the mean, not the first call)."""
    ex = student(MODULE)
    clock = CostClock(COSTS)
    result = ex.time_forward(clock.fn, warmup=2, repeats=5, clock=clock)
    assert isinstance(result, dict), f"expected a dict, got {type(result).__name__}"
    got = result.get("median")
    assert got == pytest.approx(4.0), (
        f"expected median 4.0 of the timed calls [5, 1, 2, 9, 4] (mean would be 4.2, first call 5.0), got {got}"
    )
    assert type(got) is float, f"expected the median as a float, got {type(got).__name__} {got!r}"


@pytest.mark.points(2)
def test_time_forward_skips_warmup_calls(student):
    """time_forward calls fn() `warmup` times untimed, then times `repeats` calls one by one."""
    ex = student(MODULE)
    clock = CostClock(COSTS)
    result = ex.time_forward(clock.fn, warmup=2, repeats=5, clock=clock)
    assert clock.calls == 7, f"expected fn() to be called warmup + repeats = 7 times, got {clock.calls}"
    raw = result.get("times", [])
    assert isinstance(raw, list) and all(type(t) is float for t in raw), (
        f"expected times to be a list of floats, got {raw!r}"
    )
    numbers(raw, [5.0, 1.0, 2.0, 9.0, 4.0], "times (the warm-up calls cost 100 and 50 and are not timed)")
    settings = (result.get("warmup"), result.get("repeats"))
    assert settings == (2, 5), f"expected warmup 2 and repeats 5 in the result, got {settings}"
    assert clock.readings == 10, (
        f"expected the clock to be read twice per timed call (10 readings for 5 repeats) and never during the"
        f" warm-up, got {clock.readings} readings"
    )


@pytest.mark.points(1)
def test_time_forward_runs_without_grad(student):
    """time_forward runs every call of fn() with autograd off (torch.no_grad())."""
    ex = student(MODULE)
    clock = CostClock([1.0] * 5)
    ex.time_forward(clock.fn, warmup=2, repeats=3, clock=clock)
    assert clock.grad_enabled and not any(clock.grad_enabled), (
        f"expected torch.is_grad_enabled() False in every call, got {clock.grad_enabled}"
    )


@pytest.mark.points(0.5)
@pytest.mark.parametrize("warmup, repeats", [(-1, 5), (2, 0), (0, -3)],
                         ids=["warmup=-1", "repeats=0", "repeats=-3"])
def test_time_forward_rejects_bad_counts(student, warmup, repeats):
    """time_forward raises ValueError when warmup < 0 or repeats < 1."""
    ex = student(MODULE)
    clock = CostClock([1.0] * 10)
    with pytest.raises(ValueError):
        ex.time_forward(clock.fn, warmup=warmup, repeats=repeats, clock=clock)
        pytest.fail(f"expected ValueError for warmup={warmup}, repeats={repeats}, got no error")


@pytest.mark.points(2)
@settings(report_multiple_bugs=False)  # one clear failure message rather than a group of them
@given(
    exponent=st.floats(-3.0, 3.0),
    coefficient=st.floats(1e-3, 1e3),
    xs=st.lists(st.integers(1, 10_000), min_size=2, max_size=8, unique=True),
)
def test_fit_power_law_recovers_exact_law(student, exponent, coefficient, xs):
    """fit_power_law returns (exponent, coefficient) of an exact power law y = c * x**p."""
    ex = student(MODULE)
    ys = [coefficient * x**exponent for x in xs]
    got = ex.fit_power_law(xs, ys)
    assert isinstance(got, tuple) and len(got) == 2, f"expected a tuple (exponent, coefficient), got {got!r}"
    p, c = got
    assert type(p) is float and type(c) is float, (
        f"expected two floats, got ({type(p).__name__}, {type(c).__name__})"
    )
    assert p == pytest.approx(exponent, rel=1e-6, abs=1e-6) and c == pytest.approx(coefficient, rel=1e-5), (
        f"expected (exponent, coefficient) = ({exponent:.6g}, {coefficient:.6g}) for xs={xs}, got ({p}, {c})"
    )


@pytest.mark.points(0.5)
@pytest.mark.parametrize(
    "xs, ys",
    [([2.0], [4.0]), ([1.0, 2.0], [1.0]), ([1.0, 0.0, 3.0], [1.0, 2.0, 3.0]), ([1.0, 2.0], [3.0, -1.0])],
    ids=["one-point", "unequal-lengths", "zero-x", "negative-y"],
)
def test_fit_power_law_rejects_bad_input(student, xs, ys):
    """fit_power_law raises ValueError for < 2 points, unequal lengths, or values <= 0."""
    ex = student(MODULE)
    with pytest.raises(ValueError):
        ex.fit_power_law(xs, ys)
        pytest.fail(f"expected ValueError for xs={xs}, ys={ys}, got no error")


FLOP_CASES = [
    (ModelConfig(d_model=16, n_heads=2), 7, 1),
    (ModelConfig(d_model=64, n_heads=4), 128, 1),
    (ModelConfig(d_model=32, n_heads=4, d_ff=48, bias=False), 50, 1),
    (ModelConfig(d_model=48, n_heads=3, norm="rmsnorm"), 200, 2),
]


@pytest.mark.points(2)
@pytest.mark.parametrize("cfg, seq_len, batch", FLOP_CASES, ids=["d16-T7", "d64-T128", "d32-ff48-T50", "d48-T200-B2"])
def test_block_flops_total_matches_flop_counter(student, cfg, seq_len, batch):
    """block_flops(cfg, T, batch)["total"] equals FlopCounterMode's count of one block forward."""
    ex = student(MODULE)
    got = ex.block_flops(cfg, seq_len, batch).get("total")  # the student's answer first: a stub fails fast
    want = counted_flops(cfg, seq_len, batch)["total"]
    assert got == want, (
        f"expected total {want} FLOPs for d={cfg.d_model}, d_ff={cfg.ffn_dim}, T={seq_len}, batch={batch}, got {got}"
    )


@pytest.mark.points(1)
def test_block_flops_worked_example(student):
    """block_flops gives the docstring's worked example (d=64, d_ff=256, T=128) part by part, as ints."""
    ex = student(MODULE)
    want = {
        "projections": 4_194_304,
        "attention": 4_194_304,
        "ffn": 8_388_608,
        "linear": 12_582_912,
        "quadratic": 4_194_304,
        "total": 16_777_216,
    }
    got = ex.block_flops(ModelConfig(d_model=64, n_heads=4), 128)
    wrong = {key: got.get(key) for key in want if got.get(key) != want[key]}
    assert not wrong, f"expected {want}, got wrong parts {wrong}"
    not_int = {key: value for key, value in got.items() if type(value) is not int}
    assert not not_int, f"expected a dict of ints, got {not_int}"


@pytest.mark.points(1)
def test_measured_flops_matches_flop_counter(student):
    """measured_flops(block, T) returns FlopCounterMode's total for one forward of the block, as an int."""
    ex = student(MODULE)
    cfg = ModelConfig(d_model=32, n_heads=4)
    block = TransformerBlock(cfg)
    got = ex.measured_flops(block, 9)
    want = counted_flops(cfg, 9)["total"]
    assert got == want, f"expected {want} FLOPs for d=32, T=9, got {got}"
    assert type(got) is int, f"expected an int, got {type(got).__name__} {got!r}"


@pytest.mark.points(1)
@pytest.mark.parametrize(
    "cfg",
    [ModelConfig(d_model=16, n_heads=2), ModelConfig(d_model=32, n_heads=4, d_ff=40)],
    ids=["d16", "d32-ff40"],
)
def test_crossover_length_balances_terms(student, cfg):
    """crossover_length(cfg) is the T (an int) where attention's FLOPs equal the projections' + FFN's."""
    ex = student(MODULE)
    got = ex.crossover_length(cfg)
    assert type(got) is int and got > 0, f"expected a positive int, got {type(got).__name__} {got!r}"
    counts = counted_flops(cfg, int(got))
    assert counts["bmm"] == counts["other"], (
        f"expected attention FLOPs == linear FLOPs at the T you return; at your T={got} (d={cfg.d_model},"
        f" d_ff={cfg.ffn_dim}) attention is {counts['bmm']} and linear {counts['other']}: the crossover is off"
    )


@pytest.mark.points(1)
def test_scaling_run_rows(student):
    """scaling_run returns one row per length with the median time (from the given clock) and the FLOPs."""
    ex = student(MODULE)
    cfg = ModelConfig(d_model=16, n_heads=2)
    rows = ex.scaling_run(cfg, [4, 12], warmup=1, repeats=3, clock=TickClock())
    assert [row.get("seq_len") for row in rows] == [4, 12], f"expected seq_len 4 then 12, got {rows}"
    seconds = [row.get("seconds") for row in rows]
    assert seconds == [1.0, 1.0], f"expected seconds [1.0, 1.0] from a clock ticking 1.0 per reading, got {seconds}"
    flops = [row.get("flops") for row in rows]
    want = [counted_flops(cfg, 4)["total"], counted_flops(cfg, 12)["total"]]
    assert flops == want, f"expected flops {want}, got {flops}"
    share = [row.get("attention_share") for row in rows]
    want_share = [counted_flops(cfg, t)["bmm"] / counted_flops(cfg, t)["total"] for t in (4, 12)]
    numbers(share, want_share, "attention_share of each row")
    types = [tuple(type(row.get(key)).__name__ for key in ("seq_len", "seconds", "flops", "attention_share")) for row in rows]
    assert all(t == ("int", "float", "int", "float") for t in types), (
        f"expected (int, float, int, float) for (seq_len, seconds, flops, attention_share), got {types}"
    )


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["float64", "bfloat16"])
def test_measured_flops_in_the_blocks_dtype(student, dtype):
    """measured_flops works for a float64 or bfloat16 block: make the input in the dtype of the block's parameters."""
    ex = student(MODULE)
    cfg = ModelConfig(d_model=16, n_heads=2)
    block = TransformerBlock(cfg).to(dtype)
    try:
        got = ex.measured_flops(block, 6)
    except RuntimeError as err:
        if isinstance(err, NotImplementedError):  # not written yet: reported as such
            raise
        pytest.fail(f"expected a count for a {dtype} block, got RuntimeError: {err} (an input in another dtype than"
                    " the block's?)", pytrace=False)
    want = counted_flops(cfg, 6)["total"]
    assert got == want, f"expected {want} FLOPs for a {dtype} block with d=16, T=6, got {got}"
