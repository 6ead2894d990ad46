"""Exercise 2 (hidden tests): top-k attention against a brute-force oracle, ties, dtypes, gradients, shapes.

The brute-force oracle below ranks the visible keys of every query with Python's ``sorted`` on
``(-score, key index)`` -- the documented tie rule spelled out -- and takes a softmax over the kept ones.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.judge.compare import same_tensor, tensor_like

MODULE = "ex2_topk_attention"


def brute_force(q, k, v, top_k, causal):
    """Loop over every query row: rank its visible keys by (-score, index), keep top_k, softmax over them."""
    lead = q.shape[:-2]
    t_q, t_k, d = q.size(-2), k.size(-2), q.size(-1)
    qf, kf, vf = (x.reshape(-1, x.size(-2), x.size(-1)) for x in (q, k, v))
    scores = qf @ kf.transpose(-2, -1) / math.sqrt(d)  # (N, Tq, Tk)
    weights = torch.zeros_like(scores)
    for n in range(scores.size(0)):
        for i in range(t_q):
            visible = range(i + 1) if causal else range(t_k)
            row = scores[n, i].tolist()
            kept = sorted(visible, key=lambda j: (-row[j], j))[:top_k]
            weights[n, i, kept] = torch.softmax(scores[n, i, kept], 0)
    out = weights @ vf
    return out.reshape(*lead, t_q, v.size(-1)), weights.reshape(*lead, t_q, t_k)


@st.composite
def problems(draw):
    """Small problems with integer-valued inputs in [-2, 2], so tied scores are common."""
    lead = draw(st.sampled_from([(), (2,), (2, 3)]))
    causal = draw(st.booleans())
    t_q = draw(st.integers(1, 7))
    t_k = t_q if causal else draw(st.integers(1, 7))
    d, dv = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    top_k = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)

    def ints(*shape):
        return torch.randint(-2, 3, shape, generator=gen).to(torch.float64)

    return ints(*lead, t_q, d), ints(*lead, t_k, d), ints(*lead, t_k, dv), top_k, causal


@pytest.mark.points(3)
@settings(report_multiple_bugs=False)
@given(problems())
def test_topk_attention_matches_bruteforce(student, problem):
    """Random small problems with many tied scores match a per-row brute force (lower key index wins ties).

    Causal and not (Tq != Tk when not causal); each row keeps min(top_k, visible keys) keys."""
    q, k, v, top_k, causal = problem
    out, w = student(MODULE).topk_attention(q, k, v, top_k, causal=causal)
    expected_out, expected_w = brute_force(q, k, v, top_k, causal)
    shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)}, top_k={top_k}, causal={causal}"
    tensor_like(w, expected_w, f"weights ({shapes})")
    tensor_like(out, expected_out, f"output ({shapes})")
    assert torch.equal(w != 0, expected_w != 0), (
        f"expected kept keys (non-zero weights) {(expected_w != 0).int().reshape(-1, k.size(-2)).tolist()}, "
        f"got {(w != 0).int().reshape(-1, k.size(-2)).tolist()} ({shapes}; ties: lower key index wins)"
    )
    err = max((w - expected_w).abs().max().item(), (out - expected_out).abs().max().item())
    assert err < 1e-6, f"expected the brute-force weights and output, max error {err:.3g} ({shapes})"


@pytest.mark.points(2)
@pytest.mark.parametrize("top_k", [1, 2, 3], ids=["k=1", "k=2", "k=3"])
def test_topk_attention_ties_keep_lower_key_index(student, top_k):
    """All keys identical, so every score ties: query i keeps keys 0..min(top_k, i+1)-1 with equal weights."""
    T = 5
    q = torch.randn(T, 4, dtype=torch.float64)
    k = torch.ones(T, 4, dtype=torch.float64)
    v = torch.arange(1, T + 1, dtype=torch.float64).unsqueeze(-1)  # value j is j + 1
    out, w = student(MODULE).topk_attention(q, k, v, top_k)
    expected = torch.zeros(T, T, dtype=torch.float64)
    for i in range(T):
        n = min(top_k, i + 1)
        expected[i, :n] = 1.0 / n
    same_tensor(w, expected, "weights (ties: lower key index wins)", atol=1e-9,
                show=lambda t: t.numpy().round(3).tolist())
    same_tensor(out, expected @ v, "output = weights @ v (value j is j + 1)", atol=1e-9,
                show=lambda t: t.flatten().numpy().round(3).tolist())


@pytest.mark.points(2)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_topk_attention_keeps_dtype(student, dtype):
    """float32 and bfloat16 inputs give float32 and bfloat16 results: same dtype, no NaN, exactly-k, accurate.

    Exactly min(k, i+1) keys per row, and full attention close to a float32 computation."""
    T, d = 6, 8
    q32, k32, v32 = (torch.randn(2, T, d) for _ in range(3))
    q, k, v = q32.to(dtype), k32.to(dtype), v32.to(dtype)
    ex = student(MODULE)
    out, w = ex.topk_attention(q, k, v, 2)
    assert out.dtype == dtype and w.dtype == dtype, (
        f"expected dtype {dtype} for output and weights, got {out.dtype}, {w.dtype}"
    )
    assert not out.isnan().any() and not w.isnan().any(), f"expected no NaN in {dtype}, got NaN"
    counts = (w != 0).sum(-1)[0].tolist()
    expected_counts = [min(2, i + 1) for i in range(T)]
    assert counts == expected_counts, f"expected {expected_counts} non-zero weights per row in {dtype}, got {counts}"
    full, _ = ex.topk_attention(q, k, v, T)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    err = (full.float() - expected).abs().max().item()
    assert err < tol, f"expected full attention within {tol} of a float32 computation in {dtype}, max error {err:.3g}"


@pytest.mark.points(2)
def test_topk_attention_gradients_flow(student):
    """Gradients reach q, k and v: backward works, agrees with finite differences, no NaN even for huge scores."""
    ex = student(MODULE)
    q, k, v = (torch.randn(2, 5, 3, dtype=torch.float64) for _ in range(3))
    r = torch.randn(2, 5, 3, dtype=torch.float64)

    def loss(q, k, v):
        return (ex.topk_attention(q, k, v, 2)[0] * r).sum()

    # d loss / d (q, k, v), by autograd where your function runs (loss = sum(output * r))
    grads = ex.topk_attention.backward((q, k, v, 2), weights=[r, None])
    _, w = ex.topk_attention(q, k, v, 2)
    assert grads[2] is not None, "expected a gradient on v, got None (is the graph cut, e.g. by .detach()?)"
    same_tensor(grads[2], w.transpose(-2, -1) @ r, "the gradient on v: weights^T @ (d loss / d output), as output ="
                " weights @ v", atol=1e-9)
    eps = 1e-6
    for i, (name, t) in enumerate(zip("qkv", (q, k, v))):
        assert grads[i] is not None, f"expected a gradient on {name}, got None (is the graph cut, e.g. by .detach()?)"
        u = torch.randn_like(t)  # a random direction: d loss / d t along u, by central differences
        plus = [x + eps * u if x is t else x for x in (q, k, v)]
        minus = [x - eps * u if x is t else x for x in (q, k, v)]
        numeric = ((loss(*plus) - loss(*minus)) / (2 * eps)).item()
        analytic = (grads[i] * u).sum().item()
        assert abs(numeric - analytic) < 1e-5 * max(1.0, abs(numeric)), (
            f"expected the gradient on {name} to match finite differences ({numeric:.6g}), got {analytic:.6g}"
        )
    big = [1e5 * torch.randn(6, 8) for _ in range(3)]  # scores ~ 1e10: a finite stand-in for -inf is not enough
    grads = ex.topk_attention.backward((*big, 3), weights=[torch.ones(6, 8), torch.randn(6, 6)])
    for name, g in zip("qkv", grads):
        assert g is not None, f"expected a gradient on {name}, got None (is the graph cut, e.g. by .detach()?)"
        assert torch.isfinite(g).all(), f"expected finite gradients on {name} for huge scores, got NaN/inf"
    out, w = ex.topk_attention(*big, 3)
    expected_out, expected_w = brute_force(*(t.double() for t in big), 3, True)
    same_tensor(w != 0, expected_w != 0, "kept keys for huge scores (dropped keys get exactly 0, as with -inf)",
                show=lambda t: t.int().tolist())
    same_tensor(w, expected_w.float(), "weights for huge scores (|scores| ~ 1e10)", atol=1e-4)
    same_tensor(out, expected_out.float(), "a finite output for huge scores, as the oracle's", atol=1.0, rtol=1e-4)


@pytest.mark.points(1)
def test_topk_attention_causal_needs_square(student):
    """causal=True needs Tq == Tk and raises ValueError otherwise; causal=False accepts Tq != Tk."""
    ex = student(MODULE)
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    out, w = ex.topk_attention(q, k, v, 2, causal=False)
    tensor_like(w, torch.empty(3, 5), "weights with causal=False")
    same_tensor(out, w @ v, "output = weights @ v, of shape (3, 2), with causal=False", atol=1e-6)
    try:
        ex.topk_attention(q, k, v, 2)
    except ValueError:
        return
    pytest.fail("expected ValueError for causal=True with Tq=3 != Tk=5, got no error")
