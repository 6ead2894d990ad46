"""Exercise 4 graded against plausible wrong solutions (each must lose points, with a message that names the
mistake) and against correct-but-different ones (each must score 25/25)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from variants import grade_text, mutate  # noqa: E402

MODULE = "ex4_scaling"
ALTERNATIVES = Path(__file__).parent / "alternatives"

# (id, replacements, words: at least one must appear in the failure messages)
MUTANTS = [
    (
        "no-warmup",
        [("        for _ in range(warmup):\n            fn()\n", "")],
        ["warm-up", "warmup"],
    ),
    (
        "warmup-timed",
        [
            (
                "        for _ in range(warmup):\n            fn()\n",
                "        for _ in range(warmup):\n            start = clock()\n            fn()\n"
                "            times.append(float(clock() - start))\n",
            )
        ],
        ["warm-up", "warmup"],
    ),
    ("mean-not-median", [("statistics.median(times)", "statistics.mean(times)")], ["median"]),
    ("first-run-not-median", [("statistics.median(times)", "times[0]")], ["median"]),
    (
        "grad-enabled",
        [("    with torch.no_grad():\n        for _ in range(warmup):", "    with torch.enable_grad():\n        for _ in range(warmup):")],
        ["no_grad", "autograd"],
    ),
    (
        "no-count-checks",
        [('        raise ValueError(f"warmup must be >= 0, got {warmup}")\n', "        pass\n")],
        ["ValueError"],
    ),
    (
        "fit-on-linear-scale",
        [("u = [math.log(x) for x in xs]", "u = [float(x) for x in xs]"), ("v = [math.log(y) for y in ys]", "v = [float(y) for y in ys]")],
        ["log"],
    ),
    ("fit-swapped", [("return float(slope), float(math.exp(intercept))", "return float(math.exp(intercept)), float(slope)")], ["exponent"]),
    ("fit-coefficient-not-exponentiated", [("return float(slope), float(math.exp(intercept))", "return float(slope), float(intercept)")], ["coefficient"]),
    ("fit-accepts-equal-x", [("    if len(set(xs)) < 2:\n", "    if len(set(xs)) < 1:\n")], ["equal"]),
    ("attention-missing-weighted-sum", [("attention = scores + weighted_sum", "attention = scores")], ["attention"]),
    ("ffn-counted-once", [("ffn = 2 * (2 * B * T * d * d_ff)", "ffn = 2 * B * T * d * d_ff")], ["ffn"]),
    ("ffn-width-guessed", [("    d = cfg.d_model\n    d_ff = cfg.ffn_dim\n", "    d = cfg.d_model\n    d_ff = 4 * d\n")], ["d_ff"]),
    ("batch-ignored", [("B, T = batch, seq_len", "B, T = 1, seq_len")], ["batch"]),
    ("measured-batch-ignored", [("x = torch.randn(batch, seq_len, block.attn.d_model", "x = torch.randn(1, seq_len, block.attn.d_model")], ["batch"]),
    ("measured-on-cpu-only", [("device=param.device, dtype=param.dtype", "dtype=param.dtype")], ["meta"]),
    ("crossover-off-by-2", [("return 2 * cfg.d_model + cfg.ffn_dim", "return (2 * cfg.d_model + cfg.ffn_dim) // 2")], ["crossover"]),
    ("scaling-run-real-clock", [("repeats=repeats, clock=clock)", "repeats=repeats)")], ["clock"]),
    # the promises seen through the proxy (issue 23): the block's dtype, no autograd, one block per run
    ("measured-in-default-dtype", [("device=param.device, dtype=param.dtype", "device=param.device")], ["dtype"]),
    ("measured-with-grad", [("    with torch.no_grad(), FlopCounterMode(display=False) as counter:",
                             "    with FlopCounterMode(display=False) as counter:")], ["no_grad", "autograd"]),
    ("scaling-run-block-per-length", [("    block = TransformerBlock(cfg)\n", ""),
                                      ("        x = torch.randn(batch, seq_len, cfg.d_model)  # (B, T, d)\n",
                                       "        x = torch.randn(batch, seq_len, cfg.d_model)  # (B, T, d)\n"
                                       "        block = TransformerBlock(cfg)\n")], ["ONE", "one block"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, replacements, words", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_loses_points(tmp_path, name, replacements, words):
    summary = grade_text(tmp_path, MODULE, mutate(MODULE, *replacements))
    assert summary["score"] < 25, f"mutant {name} scored {summary['score']} / 25"
    messages = summary["messages"]
    assert any(word.lower() in messages.lower() for word in words), (
        f"mutant {name}: no message names the mistake ({words}): {messages}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(ALTERNATIVES.glob(f"{MODULE.split('_')[0]}_*.py")), ids=lambda p: p.stem)
def test_alternative_scores_full_marks(tmp_path, path):
    summary = grade_text(tmp_path, MODULE, path.read_text())
    assert summary["score"] == 25, f"{path.name} scored {summary['score']} / 25: {summary['messages']}"
