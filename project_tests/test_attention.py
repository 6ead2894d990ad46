"""Tests of llm_basics.attention against torch's own attention and against properties."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_basics.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

TOL = dict(atol=1e-6, rtol=1e-6)



def _qkv(seed, batch, heads, t_q, t_k, d, dv=None, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    shape = lambda t, w: (batch, heads, t, w)  # noqa: E731
    q = torch.randn(shape(t_q, d), generator=g, dtype=torch.float64)
    k = torch.randn(shape(t_k, d), generator=g, dtype=torch.float64)
    v = torch.randn(shape(t_k, dv or d), generator=g, dtype=torch.float64)
    return [x.requires_grad_(requires_grad) for x in (q, k, v)]


def test_causal_mask_shape_and_values():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    expected = torch.tensor([[i >= j for j in range(4)] for i in range(4)])
    assert torch.equal(m, expected)


def test_causal_mask_rectangular_matches_torch_alignment():
    m = causal_mask(2, 5)
    assert m.shape == (2, 5)
    assert torch.equal(m, torch.ones(2, 5, dtype=torch.bool).tril())
    assert m.sum().item() == 3


shapes = st.tuples(
    st.integers(1, 3),  # batch
    st.integers(1, 3),  # heads
    st.integers(1, 7),  # t_q
    st.integers(1, 7),  # t_k
    st.integers(1, 8),  # d
    st.integers(1, 5),  # dv
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(shapes=shapes, seed=st.integers(0, 2**31 - 1), causal=st.booleans(), use_mask=st.booleans())
def test_sdpa_matches_torch_in_float64(shapes, seed, causal, use_mask):
    batch, heads, t_q, t_k, d, dv = shapes
    q, k, v = _qkv(seed, batch, heads, t_q, t_k, d, dv)
    mask = None
    if use_mask:
        g = torch.Generator().manual_seed(seed + 1)
        mask = torch.rand(batch, 1, t_q, t_k, generator=g) > 0.3  # broadcast over heads
    out, w = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)

    ref_mask = mask
    if causal:
        cm = torch.ones(t_q, t_k, dtype=torch.bool).tril()
        ref_mask = cm if mask is None else (mask & cm)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask)
    assert out.shape == (batch, heads, t_q, dv) and w.shape == (batch, heads, t_q, t_k)
    assert torch.allclose(out, ref, **TOL), (out - ref).abs().max()
    assert not torch.isnan(out).any() and not torch.isnan(w).any()


def test_sdpa_causal_flag_matches_torch_is_causal():
    q, k, v = _qkv(0, 2, 4, 6, 6, 8)
    out, _ = scaled_dot_product_attention(q, k, v, causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(out, ref, **TOL)


def test_sdpa_causal_and_mask_combine():
    q, k, v = _qkv(1, 2, 3, 5, 5, 4)
    pad = torch.tensor([True, True, True, False, False])  # keys 3 and 4 are padding
    out, w = scaled_dot_product_attention(q, k, v, mask=pad, causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=pad & causal_mask(5))
    assert torch.allclose(out, ref, **TOL)
    assert (w[..., 3:] == 0).all()
    assert (w.triu(1) == 0).all()


def test_sdpa_weights_rows_sum_to_one_or_zero():
    q, k, v = _qkv(2, 1, 2, 4, 4, 3)
    mask = torch.tensor([[True, False, True, False], [False] * 4, [True] * 4, [False, False, False, True]])
    _, w = scaled_dot_product_attention(q, k, v, mask=mask)
    sums = w.sum(-1)  # (1, 2, 4)
    expected = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64).expand_as(sums)
    assert torch.allclose(sums, expected, **TOL)
    assert (w[~mask.expand_as(w)] == 0).all()


def test_sdpa_fully_masked_row_has_no_nan_in_output_or_gradient():
    q, k, v = _qkv(3, 2, 2, 3, 4, 5, requires_grad=True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False  # query 1 sees nothing
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert not torch.isnan(out).any() and not torch.isnan(w).any()
    assert (out[:, :, 1] == 0).all() and (w[:, :, 1] == 0).all()
    (out.sum() + (w * 2).sum()).backward()
    for t in (q, k, v):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert (q.grad[:, :, 1] == 0).all()  # the empty row does not depend on its query


def test_sdpa_everything_masked_is_all_zero_and_finite_gradient():
    q, k, v = _qkv(4, 1, 1, 2, 3, 2, requires_grad=True)
    out, w = scaled_dot_product_attention(q, k, v, mask=torch.zeros(2, 3, dtype=torch.bool))
    assert (out == 0).all() and (w == 0).all()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.slow
def test_sdpa_gradient_matches_torch():
    q, k, v = _qkv(5, 2, 2, 5, 5, 4, requires_grad=True)
    q2, k2, v2 = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    mask = torch.rand(5, 5, generator=torch.Generator().manual_seed(0)) > 0.4
    out, _ = scaled_dot_product_attention(q, k, v, mask=mask, causal=True)
    ref = F.scaled_dot_product_attention(q2, k2, v2, attn_mask=mask & causal_mask(5))
    g = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out.backward(g)
    ref.backward(g)
    for a, b in ((q, q2), (k, k2), (v, v2)):
        assert torch.allclose(a.grad, b.grad, **TOL)


def test_sdpa_rejects_float_mask():
    q, k, v = _qkv(6, 1, 1, 2, 2, 2)
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(q, k, v, mask=torch.zeros(2, 2))


def _torch_mha_reference(mha, x, causal, mask=None):
    B, T, C = x.shape
    H = mha.n_heads

    def heads(t):
        return t.view(B, T, H, C // H).transpose(1, 2)

    q, k, v = heads(mha.q_proj(x)), heads(mha.k_proj(x)), heads(mha.v_proj(x))
    m = mask
    if causal:
        cm = causal_mask(T)
        m = cm if m is None else (m & cm)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    return mha.out_proj(y.transpose(1, 2).reshape(B, T, C))


@pytest.mark.parametrize("causal", [True, False])
def test_mha_matches_torch_reference(causal):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, causal=causal).double()
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    out, w = mha(x, return_weights=True)
    assert out.shape == (3, 7, 16) and w.shape == (3, 4, 7, 7)
    assert torch.allclose(out, _torch_mha_reference(mha, x, causal), **TOL)
    if causal:
        assert (w.triu(1) == 0).all()


def test_mha_with_padding_mask_matches_torch_reference():
    torch.manual_seed(1)
    mha = MultiHeadAttention(8, 2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])  # (B, T) key padding
    mask = keep[:, None, None, :]  # (B, 1, 1, T)
    out = mha(x, mask=mask)
    assert torch.allclose(out, _torch_mha_reference(mha, x, True, mask), **TOL)


def test_mha_uses_swapped_attention_fn():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, causal=True)
    calls = []

    def fake_attention(q, k, v, *, mask, causal):
        calls.append((tuple(q.shape), mask, causal))
        return torch.zeros_like(v), torch.zeros(*q.shape[:-1], k.shape[-2])

    mha.attention_fn = fake_attention
    out = mha(torch.randn(2, 3, 8))
    assert calls == [((2, 2, 3, 4), None, True)]
    # zero attention output -> the result is just the output projection's bias
    assert torch.allclose(out, mha.out_proj.bias.expand(2, 3, 8))


def test_mha_rejects_bad_head_count():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def test_mha_bias_off_has_no_bias_parameters():
    mha = MultiHeadAttention(8, 2, bias=False)
    assert sum(p.numel() for p in mha.parameters()) == 4 * 8 * 8
    assert all(lin.bias is None for lin in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj))
