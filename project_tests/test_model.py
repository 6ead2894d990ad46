"""Tests of llm_basics.model: config checks, norms, the pre-norm block, parameter counts, TinyLM."""

import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from llm_basics.attention import causal_mask
from llm_basics.model import (
    FeedForward,
    ModelConfig,
    RMSNorm,
    TinyLM,
    TransformerBlock,
    count_parameters,
    make_norm,
)

SMALL = dict(vocab_size=50, context_length=8, d_model=16, n_heads=4, n_layers=2)



def test_config_defaults_and_ffn_dim():
    cfg = ModelConfig()
    assert (cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.n_heads, cfg.n_layers) == (512, 128, 64, 4, 2)
    assert cfg.ffn_dim == 256
    assert ModelConfig(d_ff=100).ffn_dim == 100


def test_config_is_frozen():
    cfg = ModelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(d_model=64, n_heads=5), "divisible"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(context_length=-1), "context_length"),
        (dict(n_layers=0), "n_layers"),
        (dict(d_model=0), "d_model"),
        (dict(d_ff=0), "d_ff"),
        (dict(n_heads=2.0), "n_heads"),
        (dict(norm="batchnorm"), "norm"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_rmsnorm_matches_formula_and_has_weight_only():
    torch.manual_seed(0)
    norm = RMSNorm(6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 6))
    x = torch.randn(2, 3, 6)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    assert torch.allclose(norm(x), expected, atol=1e-6)
    assert [name for name, _ in norm.named_parameters()] == ["weight"]


def test_make_norm_kinds_and_parameter_counts():
    ln = make_norm("layernorm", 10, bias=True)
    assert isinstance(ln, nn.LayerNorm) and count_parameters(ln) == 20
    assert count_parameters(make_norm("layernorm", 10, bias=False)) == 10
    rms = make_norm("rmsnorm", 10, bias=True)
    assert isinstance(rms, RMSNorm) and count_parameters(rms) == 10
    with pytest.raises(ValueError, match="norm"):
        make_norm("groupnorm", 10, bias=True)


def test_feedforward_is_fc1_gelu_fc2():
    torch.manual_seed(0)
    ffn = FeedForward(8, 32, bias=True)
    x = torch.randn(2, 3, 8)
    expected = ffn.fc2(F.gelu(ffn.fc1(x)))
    assert torch.allclose(ffn(x), expected)
    assert count_parameters(ffn) == 2 * 8 * 32 + 32 + 8


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_block_is_pre_norm(norm):
    torch.manual_seed(0)
    block = TransformerBlock(ModelConfig(**SMALL, norm=norm)).double()
    # give the norms non-trivial gains so that skipping or misplacing one would show
    with torch.no_grad():
        for n in (block.norm1, block.norm2):
            n.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    h = x + block.attn(block.norm1(x))
    expected = h + block.ffn(block.norm2(h))
    assert torch.allclose(block(x), expected, atol=1e-12)


def test_block_is_causal():
    torch.manual_seed(0)
    block = TransformerBlock(ModelConfig(**SMALL)).double()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    y = block(x)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 16, dtype=torch.float64)  # change the future only
    assert torch.allclose(block(x2)[:, :4], y[:, :4], atol=1e-12)


def _block_formula(d, d_ff, *, bias, norm):
    attn = 4 * d * d + (4 * d if bias else 0)
    ffn = 2 * d * d_ff + ((d_ff + d) if bias else 0)
    per_norm = d if norm == "rmsnorm" else (2 * d if bias else d)
    return attn + ffn + 2 * per_norm


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("bias", [True, False])
def test_block_parameter_count_matches_formula(norm, bias):
    cfg = ModelConfig(**SMALL, d_ff=24, norm=norm, bias=bias)
    block = TransformerBlock(cfg)
    assert count_parameters(block) == _block_formula(16, 24, bias=bias, norm=norm)


def test_bias_off_means_no_bias_anywhere():
    model = TinyLM(ModelConfig(**SMALL, bias=False))
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())


def test_layernorm_has_more_parameters_than_rmsnorm():
    ln = count_parameters(TinyLM(ModelConfig(**SMALL, norm="layernorm")))
    rms = count_parameters(TinyLM(ModelConfig(**SMALL, norm="rmsnorm")))
    n_norms = 2 * SMALL["n_layers"] + 1
    assert ln - rms == n_norms * SMALL["d_model"]  # the LayerNorm biases


def test_tied_weights_share_storage_and_are_counted_once():
    tied = TinyLM(ModelConfig(**SMALL, tie_weights=True))
    untied = TinyLM(ModelConfig(**SMALL, tie_weights=False))
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert tied.lm_head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    assert untied.lm_head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    V, d = SMALL["vocab_size"], SMALL["d_model"]
    assert count_parameters(untied) - count_parameters(tied) == V * d
    assert count_parameters(tied) == sum(p.numel() for p in tied.parameters())


def test_tinylm_parameter_count_matches_formula():
    cfg = ModelConfig(**SMALL)
    V, T, d, L = cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.n_layers
    expected = V * d + T * d + L * _block_formula(d, cfg.ffn_dim, bias=True, norm="layernorm") + 2 * d
    assert count_parameters(TinyLM(cfg)) == expected


def test_init_follows_gpt2_recipe():
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(vocab_size=400, context_length=64, d_model=64, n_heads=4, n_layers=2))
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].ffn.fc1.weight.std().item() - 0.02) < 0.002
    assert (model.blocks[0].attn.q_proj.bias == 0).all()
    assert (model.norm_f.weight == 1).all()


def test_tinylm_logits_shape():
    model = TinyLM(ModelConfig(**SMALL))
    ids = torch.randint(0, 50, (3, 8))
    assert model(ids).shape == (3, 8, 50)
    assert model(ids[:, :1]).shape == (3, 1, 50)


def test_tinylm_rejects_too_long_input():
    model = TinyLM(ModelConfig(**SMALL))
    with pytest.raises(ValueError, match="context_length"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_tinylm_rejects_1d_input():
    model = TinyLM(ModelConfig(**SMALL))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))


def test_tinylm_is_causal():
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(**SMALL)).eval()
    ids = torch.randint(0, 50, (1, 8))
    ids2 = ids.clone()
    ids2[0, 5:] = (ids2[0, 5:] + 1) % 50
    with torch.no_grad():
        assert torch.allclose(model(ids)[:, :5], model(ids2)[:, :5], atol=1e-6)


def test_causal_mask_is_what_the_model_uses():
    # the attention weights returned by a block's attention are lower-triangular
    block = TransformerBlock(ModelConfig(**SMALL))
    _, w = block.attn(torch.randn(1, 5, 16), return_weights=True)
    assert (w.masked_select(~causal_mask(5)) == 0).all()
