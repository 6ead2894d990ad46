"""Exercise 3 (visible tests): parameter counts from formulas and from numel, and the table that explains them.

The oracle is always PyTorch itself: ``sum(p.numel() for p in module.parameters())`` on the given llm_basics
modules, which yields a shared (tied) tensor once.
"""

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llm_basics.attention import MultiHeadAttention
from llm_basics.model import FeedForward, ModelConfig, TinyLM, TransformerBlock, make_norm

MODULE = "ex3_parameter_accounting"
COMPONENTS = ["token_embedding", "position_embedding", "attention", "ffn", "block_norms", "final_norm", "lm_head"]


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=None)
def child_counts(build, *args, **kwargs) -> dict[str, int]:
    """numel of each child of ``build(*args, **kwargs)``, and of the whole under "total", once per argument: the
    derandomized examples are the same in every grading, so a batch computes these before its first student."""
    with torch.device("meta"):  # shapes only: no weights drawn (the test's random state stays), and faster
        module = build(*args, **kwargs)
    return {"total": numel(module), **{name: numel(child) for name, child in module.named_children()}}


def total_params(cfg: ModelConfig) -> int:
    """The real count of TinyLM(cfg), once per config."""
    return child_counts(TinyLM, cfg)["total"]


@st.composite
def configs(draw, *, tie=st.booleans(), bias=st.booleans(), norm=st.sampled_from(["layernorm", "rmsnorm"])):
    """Small ModelConfigs over every option; d_model is a multiple of n_heads."""
    n_heads = draw(st.sampled_from([1, 2, 4]))
    d_model = n_heads * draw(st.integers(1, 6))
    return ModelConfig(
        vocab_size=draw(st.integers(1, 60)),
        context_length=draw(st.integers(1, 20)),
        d_model=d_model,
        n_heads=n_heads,
        n_layers=draw(st.integers(1, 3)),
        d_ff=draw(st.one_of(st.none(), st.integers(1, 40))),
        norm=draw(norm),
        bias=draw(bias),
        tie_weights=draw(tie),
    )


def check_int(value, what: str) -> None:
    """Counts are ints: 80, not 80.0 (nor a tensor, nor a numpy number)."""
    assert type(value) is int, f"expected {what} to be an int, got {type(value).__name__} {value!r}"


def describe(cfg: ModelConfig) -> str:
    return (
        f"V={cfg.vocab_size}, T={cfg.context_length}, d={cfg.d_model}, n_heads={cfg.n_heads}, L={cfg.n_layers}, "
        f"d_ff={cfg.d_ff} (ffn_dim={cfg.ffn_dim}), norm={cfg.norm}, bias={cfg.bias}, tied={cfg.tie_weights}"
    )


@pytest.mark.points(2)
@pytest.mark.parametrize("d_model", [1, 4, 12, 64], ids=["d=1", "d=4", "d=12", "d=64"])
def test_attention_params_matches_module(student, d_model):
    """attention_params(d, bias=True) is 4·d² weights (q, k, v and out projections) plus 4·d biases, an int."""
    ex = student(MODULE)
    got = ex.attention_params(d_model, bias=True)
    expected = child_counts(MultiHeadAttention, d_model, 1, bias=True)["total"]
    check_int(got, f"attention_params({d_model})")
    assert got == expected, (
        f"expected {expected} for d={d_model} with bias (4·d² weights of q, k, v, out projections + 4·d biases), "
        f"got {got}"
    )


@pytest.mark.points(2)
@given(d_model=st.integers(1, 40), d_ff=st.integers(1, 80), bias=st.booleans())
def test_ffn_params_matches_module(student, d_model, d_ff, bias):
    """ffn_params(d, d_ff, bias=...) is 2·d·d_ff weights, plus d_ff + d biases only when bias is true (an int)."""
    ex = student(MODULE)
    got = ex.ffn_params(d_model, d_ff, bias=bias)
    expected = child_counts(FeedForward, d_model, d_ff, bias=bias)["total"]
    check_int(got, f"ffn_params({d_model}, {d_ff}, bias={bias})")
    assert got == expected, (
        f"expected {expected} for the FFN with d={d_model}, d_ff={d_ff}, bias={bias} "
        f"(2·d·d_ff weights + d_ff + d biases when bias), got {got}"
    )


@pytest.mark.points(2)
@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_norm_params_matches_module(student, kind, bias):
    """norm_params: LayerNorm has a weight (d) and a bias (d, only with bias=True); RMSNorm has a weight only."""
    ex = student(MODULE)
    d_model = 24
    got = ex.norm_params(d_model, kind=kind, bias=bias)
    expected = numel(make_norm(kind, d_model, bias=bias))
    check_int(got, f"norm_params({d_model}, kind={kind!r}, bias={bias})")
    assert got == expected, f"expected {expected} for a {kind} norm of width {d_model} with bias={bias}, got {got}"


@pytest.mark.points(2)
@given(cfg=configs())
def test_block_params_matches_block(student, cfg):
    """block_params(cfg) gives attention, ffn, norm1, norm2 of one TransformerBlock; n_heads changes nothing."""
    ex = student(MODULE)
    got = ex.block_params(cfg)
    block = child_counts(TransformerBlock, cfg)
    expected = {"attention": block["attn"], "ffn": block["ffn"], "norm1": block["norm1"], "norm2": block["norm2"]}
    assert isinstance(got, dict) and set(got) == set(expected), (
        f"expected a dict with keys {sorted(expected)}, got {got!r}"
    )
    for key, value in expected.items():
        assert got[key] == value, (
            f"expected {key} = {value} for {describe(cfg)} (n_heads must not change the count; "
            f"biases and norm weights only when present), got {got[key]}"
        )
        check_int(got[key], f"block_params(cfg)[{key!r}]")


@pytest.mark.points(2)
@given(cfg=configs())
def test_model_params_total_matches_numel(student, cfg):
    """model_params(cfg) adds up to the real count; a tied head is 0 (its matrix is the token embedding)."""
    ex = student(MODULE)
    got = ex.model_params(cfg)
    model = child_counts(TinyLM, cfg)
    keys = ["token_embedding", "position_embedding", "blocks", "final_norm", "lm_head"]
    assert isinstance(got, dict) and set(got) == set(keys), f"expected a dict with keys {keys}, got {got!r}"
    for key in keys:
        check_int(got[key], f"model_params(cfg)[{key!r}]")
    head = 0 if cfg.tie_weights else cfg.vocab_size * cfg.d_model
    assert got["lm_head"] == head, (
        f"expected lm_head = {head} (tied={cfg.tie_weights}: a tied head shares the token embedding and is "
        f"counted once, under token_embedding), got {got['lm_head']}"
    )
    assert got["position_embedding"] == model["pos_emb"], (
        f"expected position_embedding = T·d = {model['pos_emb']}, got {got['position_embedding']}"
    )
    assert got["blocks"] == model["blocks"], (
        f"expected blocks = {model['blocks']} for {describe(cfg)} (L blocks), got {got['blocks']}"
    )
    total = model["total"]
    assert sum(got.values()) == total, f"expected a total of {total} for {describe(cfg)}, got {sum(got.values())}"


@pytest.mark.points(2)
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_measured_params_counts_tied_head_once(student, tie):
    """measured_params(model) counts numel per child and gives a tied (shared) head 0, like model.parameters()."""
    ex = student(MODULE)
    cfg = ModelConfig(vocab_size=50, context_length=8, d_model=8, n_heads=2, n_layers=2, tie_weights=tie)
    model = TinyLM(cfg)
    got = ex.measured_params(model)
    expected = {name: numel(child) for name, child in model.named_children()}
    if tie:
        expected["lm_head"] = 0
    assert got == expected, (
        f"expected {expected} (tied={tie}: a shared tensor is counted once, under tok_emb), got {got!r}"
    )
    for name, value in got.items():
        check_int(value, f"measured_params(model)[{name!r}]")
    assert sum(got.values()) == numel(model), f"expected a total of {numel(model)}, got {sum(got.values())}"


@pytest.mark.points(2)
@given(cfg=configs())
def test_explain_rows_add_up(student, cfg):
    """explain(cfg): one row per component; exact == measured per row; both columns sum to the real count."""
    ex = student(MODULE)
    rows = ex.explain(cfg)
    names = [row.get("component") for row in rows] if isinstance(rows, list) else rows
    assert names == COMPONENTS, f"expected the components {COMPONENTS} in that order, got {names!r}"
    total = total_params(cfg)
    for row in rows:
        name = row["component"]
        assert row["exact"] == row["measured"], (
            f"expected exact == measured for {name} with {describe(cfg)}, got {row['exact']} vs {row['measured']}"
        )
        assert row["difference"] == row["exact"] - row["approx"], (
            f"expected difference = exact - approx for {name}, got {row['difference']} "
            f"(exact {row['exact']}, approx {row['approx']})"
        )
        assert isinstance(row["formula"], str) and row["formula"], (
            f"expected a formula string for {name}, got {row['formula']!r}"
        )
        assert isinstance(row["why"], str) and row["why"].strip(), (
            f"expected a 'why' sentence (a non-empty str) for {name} with {describe(cfg)}, got {row['why']!r}"
        )
        for key in ("approx", "exact", "measured", "difference"):
            check_int(row[key], f"the {key} of {name}")
    exact = sum(row["exact"] for row in rows)
    measured = sum(row["measured"] for row in rows)
    assert exact == total, f"expected the exact column to sum to {total} for {describe(cfg)}, got {exact}"
    assert measured == total, (
        f"expected the measured column to sum to {total} (a tied tensor counted once), got {measured}"
    )


@pytest.mark.points(1)
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_explain_why_names_the_cause(student, tie):
    """Each 'why' names its cause: bias, norm, embedding, heads, tied/untied (see the explain docstring)."""
    ex = student(MODULE)
    cfg = ModelConfig(vocab_size=40, context_length=8, d_model=8, n_heads=2, n_layers=2, tie_weights=tie)
    rows = {row["component"]: row for row in ex.explain(cfg)}
    wanted = {
        "token_embedding": ["embedding"],
        "position_embedding": ["embedding"],
        "attention": ["bias", "heads"],
        "ffn": ["bias"],
        "block_norms": ["norm"],
        "final_norm": ["norm"],
        "lm_head": ["tied" if tie else "untied"],
    }
    whys = {str(row["why"]) for row in rows.values()}
    assert len(whys) > 1, (
        f"expected each row's 'why' to explain that row's difference, got one sentence for all: {whys}"
    )
    for name, words in wanted.items():
        why = str(rows[name]["why"]).lower()
        for word in words:
            assert word in why, f"expected the 'why' of {name} to mention {word!r}, got {rows[name]['why']!r}"
