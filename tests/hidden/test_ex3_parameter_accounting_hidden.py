"""Exercise 3 (hidden tests): more configurations (no bias, RMSNorm, untied head, odd d_ff, one layer, a GPT-2
sized model on the meta device) and the identities that tie the table's columns together."""

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llm_basics.attention import MultiHeadAttention
from llm_basics.model import FeedForward, ModelConfig, TinyLM, TransformerBlock

MODULE = "ex3_parameter_accounting"


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=None)
def total_params(cfg: ModelConfig) -> int:
    """The real count of TinyLM(cfg), once per config."""
    with torch.device("meta"):  # shapes only: no weights drawn (the test's random state stays), and faster
        return numel(TinyLM(cfg))


@st.composite
def configs(draw, *, tie=st.booleans(), bias=st.booleans(), norm=st.sampled_from(["layernorm", "rmsnorm"])):
    n_heads = draw(st.sampled_from([1, 2, 3, 4]))
    return ModelConfig(
        vocab_size=draw(st.integers(1, 300)),
        context_length=draw(st.integers(1, 64)),
        d_model=n_heads * draw(st.integers(1, 16)),
        n_heads=n_heads,
        n_layers=draw(st.integers(1, 4)),
        d_ff=draw(st.one_of(st.none(), st.integers(1, 100))),
        norm=draw(norm),
        bias=draw(bias),
        tie_weights=draw(tie),
    )


def describe(cfg: ModelConfig) -> str:
    return (
        f"V={cfg.vocab_size}, T={cfg.context_length}, d={cfg.d_model}, n_heads={cfg.n_heads}, L={cfg.n_layers}, "
        f"d_ff={cfg.d_ff} (ffn_dim={cfg.ffn_dim}), norm={cfg.norm}, bias={cfg.bias}, tied={cfg.tie_weights}"
    )


@pytest.mark.points(1)
@pytest.mark.parametrize("d_model", [1, 6, 32], ids=["d=1", "d=6", "d=32"])
def test_attention_params_without_bias(student, d_model):
    """attention_params(d, bias=False) is exactly 4·d²: no biases are counted when bias is off."""
    ex = student(MODULE)
    got = ex.attention_params(d_model, bias=False)
    expected = numel(MultiHeadAttention(d_model, 1, bias=False))
    assert got == expected, f"expected {expected} = 4·d² for d={d_model} with bias=False (no biases), got {got}"


@pytest.mark.points(1)
@pytest.mark.parametrize("d_model", [1, 10, 96], ids=["d=1", "d=10", "d=96"])
def test_norm_params_rmsnorm_has_no_bias(student, d_model):
    """RMSNorm has a weight of d numbers and never a bias, even when bias=True."""
    ex = student(MODULE)
    for bias in (True, False):
        got = ex.norm_params(d_model, kind="rmsnorm", bias=bias)
        assert got == d_model, f"expected {d_model} for an RMSNorm of width {d_model} (bias={bias}; no bias), got {got}"


@pytest.mark.points(1.5)
@given(cfg=configs(tie=st.just(False)))
def test_model_params_untied_head(student, cfg):
    """An untied head is its own V×d matrix (no bias); the total still matches the real count."""
    ex = student(MODULE)
    got = ex.model_params(cfg)
    head = cfg.vocab_size * cfg.d_model
    assert got["lm_head"] == head, f"expected lm_head = V·d = {head} for an untied head, got {got['lm_head']}"
    total = total_params(cfg)
    assert sum(got.values()) == total, f"expected a total of {total} for {describe(cfg)}, got {sum(got.values())}"


@pytest.mark.points(1)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_model_params_independent_of_heads(student, bias):
    """n_heads does not change any count: the heads share out the d columns of the projections."""
    ex = student(MODULE)
    counts = {}
    for n_heads in (1, 2, 4, 8, 16):
        cfg = ModelConfig(vocab_size=100, context_length=16, d_model=32, n_heads=n_heads, n_layers=2, bias=bias)
        counts[n_heads] = ex.model_params(cfg)
        assert sum(counts[n_heads].values()) == total_params(cfg), (
            f"expected a total of {total_params(cfg)} with n_heads={n_heads} (heads add no weights), "
            f"got {sum(counts[n_heads].values())}"
        )
    assert all(c == counts[1] for c in counts.values()), f"expected the same counts for every n_heads, got {counts}"


@pytest.mark.points(1)
@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(vocab_size=7, context_length=3, d_model=6, n_heads=3, n_layers=1, d_ff=5),
        ModelConfig(vocab_size=7, context_length=3, d_model=6, n_heads=2, n_layers=1, d_ff=13, bias=False),
        ModelConfig(vocab_size=7, context_length=3, d_model=6, n_heads=1, n_layers=1, d_ff=2, norm="rmsnorm"),
    ],
    ids=["d_ff=5", "d_ff=13-no-bias", "d_ff=2-rmsnorm"],
)
def test_measured_params_block_children(student, cfg):
    """measured_params(block) counts the block's children norm1, attn, norm2, ffn; block_params agrees."""
    ex = student(MODULE)
    block = TransformerBlock(cfg)
    expected = {name: numel(child) for name, child in block.named_children()}
    got = ex.measured_params(block)
    assert got == expected, f"expected {expected} for a block with {describe(cfg)}, got {got!r}"
    formulas = ex.block_params(cfg)
    assert formulas["ffn"] == expected["ffn"], (
        f"expected ffn = {expected['ffn']} with d_ff={cfg.d_ff} (use cfg.ffn_dim, not 4·d), got {formulas['ffn']}"
    )


@pytest.mark.points(1)
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_explain_gpt2_small_on_meta(student, tie):
    """explain() on a GPT-2 small config (build the model on the meta device): 124,439,808 when tied."""
    ex = student(MODULE)
    gpt2 = ModelConfig(vocab_size=50257, context_length=1024, d_model=768, n_heads=12, n_layers=12, tie_weights=tie)
    # a second large config, so that the GPT-2 figure alone (it is in the hint) earns nothing
    wide = ModelConfig(vocab_size=32000, context_length=2048, d_model=1024, n_heads=16, n_layers=4, d_ff=2816,
                       norm="rmsnorm", tie_weights=tie)
    for cfg in (gpt2, wide):
        rows = ex.explain(cfg)
        expected = total_params(cfg)
        exact = sum(row["exact"] for row in rows)
        measured = sum(row["measured"] for row in rows)
        assert exact == expected, (
            f"expected {expected:,} parameters in the exact column for {describe(cfg)}, got {exact:,}")
        assert measured == expected, (
            f"expected {expected:,} parameters in the measured column for {describe(cfg)}, got {measured:,}")


@pytest.mark.points(1.5)
@given(cfg=configs())
def test_explain_total_identities(student, cfg):
    """Each row's approx is its headline formula, and the rest of its count is biases and norms.

    Headlines: L·4·d², L·2·d·d_ff, V·d, T·d, head V·d if untied, 0 for norms."""
    ex = student(MODULE)
    rows = {row["component"]: row for row in ex.explain(cfg)}
    V, T, d, L, d_ff = cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.n_layers, cfg.ffn_dim
    headline = {
        "token_embedding": V * d,
        "position_embedding": T * d,
        "attention": L * 4 * d * d,
        "ffn": L * 2 * d * d_ff,
        "block_norms": 0,
        "final_norm": 0,
        "lm_head": 0 if cfg.tie_weights else V * d,
    }
    for name, value in headline.items():
        assert rows[name]["approx"] == value, (
            f"expected approx {value} for {name} with {describe(cfg)} (the headline ignores biases and norms), "
            f"got {rows[name]['approx']}"
        )
    norm = 2 * d if (cfg.norm == "layernorm" and cfg.bias) else d
    biases = L * (4 * d + d_ff + d) if cfg.bias else 0
    extra = biases + (2 * L + 1) * norm
    difference = sum(row["difference"] for row in rows.values())
    assert difference == extra, (
        f"expected the differences to add up to {extra} (biases {biases} + norm weights/biases "
        f"{(2 * L + 1) * norm}) for {describe(cfg)}, got {difference}"
    )
    total = total_params(cfg)
    approx = sum(row["approx"] for row in rows.values())
    assert approx + difference == total, f"expected approx + difference == {total}, got {approx + difference}"


@pytest.mark.points(0.5)
@pytest.mark.parametrize("kind", ["batchnorm", "LayerNorm"])
def test_norm_params_rejects_unknown_kind(student, kind):
    """norm_params(d, kind=...) with a kind other than "layernorm" or "rmsnorm" raises ValueError naming the kind."""
    ex = student(MODULE)
    try:
        got = ex.norm_params(8, kind=kind)
    except ValueError as err:
        assert kind in str(err), f"expected the error message to name the kind {kind!r}, got {str(err)!r}"
        return
    pytest.fail(f"expected ValueError for kind={kind!r}, got {got!r}")


@pytest.mark.points(0.5)
def test_measured_params_any_module(student):
    """measured_params works on any module (a child without parameters gets 0) and on a model on the meta device."""
    ex = student(MODULE)
    ffn = FeedForward(6, 10, bias=True)
    expected = {"fc1": 70, "act": 0, "fc2": 66}
    got = ex.measured_params(ffn)
    assert got == expected, f"expected {expected} for FeedForward(6, 10) (the GELU 'act' has no parameters), got {got!r}"
    cfg = ModelConfig(vocab_size=1000, context_length=64, d_model=32, n_heads=2, n_layers=3, tie_weights=False)
    with torch.device("meta"):
        model = TinyLM(cfg)
    expected = {name: numel(child) for name, child in model.named_children()}
    got = ex.measured_params(model)
    assert got == expected, f"expected {expected} for a TinyLM on the meta device, got {got!r}"


def table_lines(text: str) -> list[str]:
    """The lines of a table, without a Markdown separator line such as |---|---|."""
    return [line for line in text.splitlines() if not (set(line.strip()) <= set("|-: ") and "-" in line)]


@pytest.mark.points(1)
def test_format_table_lists_rows_and_total(student):
    """format_table(rows): a header, then one line per row in order (name, formula, f"{n:,}" numbers, why), then total.

    The last line starts with 'total' (any case) and holds the four sums written with f"{n:,}"."""
    ex = student(MODULE)
    # rows of its own, not the student's explain(): a constant table beside an empty explain() scored here
    rows = [
        {"component": "token_embedding", "formula": "V·d", "approx": 38_597_376, "exact": 38_597_376,
         "measured": 38_597_376, "difference": 0, "why": "an embedding table of V rows"},
        {"component": "attention", "formula": "L·(4·d² + 4·d)", "approx": 28_311_552, "exact": 28_348_416,
         "measured": 28_348_416, "difference": 36_864, "why": "biases; n_heads does not change the count"},
        {"component": "final_norm", "formula": "2·d", "approx": 0, "exact": 1_536, "measured": 1_536,
         "difference": 1_536, "why": "the norm's weight and bias"},
    ]
    text = ex.format_table(rows)
    assert isinstance(text, str), f"expected a str, got {type(text).__name__}"
    lines = table_lines(text)
    assert len(lines) == len(rows) + 2, (
        f"expected {len(rows) + 2} lines (a header, {len(rows)} rows, the total), got {len(lines)}:\n{text}"
    )
    for row, line in zip(rows, lines[1:-1]):
        assert line.strip(" |").startswith(row["component"]), (
            f"expected line {lines.index(line) + 1} to start with {row['component']!r}, got {line!r}"
        )
        wanted = [row["formula"], str(row["why"])] + [f"{row[c]:,}" for c in ("approx", "exact", "measured", "difference")]
        missing = [w for w in wanted if w not in line]
        assert not missing, f"expected the line of {row['component']} to hold {missing}, got {line!r}"
    last = lines[-1]
    assert last.strip(" |").lower().startswith("total"), f"expected the last line to start with 'total', got {last!r}"
    sums = [f"{sum(row[c] for row in rows):,}" for c in ("approx", "exact", "measured", "difference")]
    missing = [n for n in sums if n not in last]
    assert not missing, f"expected the total line to hold the sums {sums}, missing {missing}: {last!r}"
